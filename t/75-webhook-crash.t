#!/usr/bin/perl

# A writer that dies during deliveries: killed with SIGKILL, its attempts
# are sent again by another writer once their lease ends, so a receiver may
# see a message twice but never loses one, and the webhook-id identifies
# the repeat; stopped with SIGTERM, it records them as interrupted and they
# are due again at once. Killed while storing events, the outbox still
# holds exactly one event.created per stored event.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;

require "$FindBin::Bin/79-webhook-receiver.t";
Humanhours::WebhookTest->import(qw(webhook_env pro_org add_endpoint
    track_event));

my $IN_FLIGHT = 8;

my $folder = File::Temp::tempdir('webhook-receiver-XXXXXXXX', TMPDIR => 1,
                                 CLEANUP => 1);
my $receiver = Humanhours::WebhookReceiver->new(
    folder    => $folder,
    responses => {
        '/killed'  => [({ status => 200, delay => 3 }) x $IN_FLIGHT,
                       { status => 200 }],
        '/stopped' => [({ status => 200, delay => 3 }) x $IN_FLIGHT,
                       { status => 200 }],
    },
);

my $stack = Humanhours::Stack->new;

# An attempt may take 4 s, and its lease ends 1 s after that.
webhook_env($stack,
    HH_WEBHOOK_TIMEOUT_MS   => 4000,
    HH_WEBHOOK_TIME_SCALE   => 0.01,
    HH_WEBHOOK_PER_ENDPOINT => $IN_FLIGHT);
$stack->start;

# Returns, per message id, how often the receiver got it.
sub received ($path) {
    my %count;
    $count{ $_->{headers}{'webhook-id'} }++ for $receiver->requests($path);
    return \%count;
}

sub send_events ($key, $count) {
    my $statuses = $stack->request_many(
        request  => { headers => { Authorization => "Bearer $key" },
                      json => { agent_id => 'a', outcome => 'success',
                                task_type => 'email_classification' } },
        count    => $count,
        parallel => $count);
    return scalar grep { $_ == 201 } @$statuses;
}


# SIGKILL while every attempt waits for its answer.

my ($org, $key) = pro_org($stack, 'acme');
my ($endpoint) = add_endpoint($stack, $org, $receiver->url('/killed'),
                              'event.created');

is send_events($key, $IN_FLIGHT), $IN_FLIGHT, "$IN_FLIGHT events accepted";
my @first = $receiver->wait_requests('/killed', $IN_FLIGHT);
is scalar @first, $IN_FLIGHT, 'all attempts in flight';

$stack->kill_writer;
my $killed_at = time;
$stack->start_writer(name => 'writer2');

$receiver->wait_requests('/killed', 2 * $IN_FLIGHT, 30);
my $resent_after = ($receiver->requests('/killed'))[-1]{time} - $killed_at;

$stack->wait_for_sql(
    "SELECT 1 WHERE (SELECT count(*) FROM webhook_deliveries
                      WHERE endpoint_id = :id AND status = 'delivered') = :n",
    vars => { id => $endpoint, n => $IN_FLIGHT });
pass 'every delivery delivered in the end';

my $counts = received('/killed');
is scalar keys %$counts, $IN_FLIGHT, 'no message lost';
ok !(grep { $_ > 2 } values %$counts), 'no message sent more than twice';
is scalar(grep { $_ == 2 } values %$counts), $IN_FLIGHT,
    'the interrupted attempts were sent again';
cmp_ok $resent_after, '>=', 4, 'sent again only after the lease ended';

my %bodies;
$bodies{ $_->{headers}{'webhook-id'} }{ $_->{body} } = 1
    for $receiver->requests('/killed');
ok !(grep { keys %$_ != 1 } values %bodies),
    'a repeat has the same webhook-id and the same body';

my %seen;
my @unique = grep { !$seen{ $_->{headers}{'webhook-id'} }++ }
             $receiver->requests('/killed');
is scalar @unique, $IN_FLIGHT,
    'dropping repeated webhook-ids leaves one of each';

my @attempts = $stack->psql(
    'SELECT a.attempt, coalesce(a.error, \'\'), a.sender
       FROM webhook_attempts a
       JOIN webhook_deliveries d ON d.id = a.delivery_id
      WHERE d.endpoint_id = :id ORDER BY a.delivery_id, a.attempt',
    { id => $endpoint });
is scalar @attempts, 2 * $IN_FLIGHT, 'two attempts recorded per delivery';
is scalar(grep { $_->[0] == 1 && $_->[1] =~ /^interrupted/ } @attempts),
    $IN_FLIGHT, 'first attempts recorded as interrupted';
is scalar(grep { $_->[0] == 2 && $_->[1] eq '' && $_->[2] =~ /-/ } @attempts),
    $IN_FLIGHT, 'second attempts succeeded';


# SIGTERM while attempts wait: recorded as interrupted, due again at once.

my ($org2, $key2) = pro_org($stack, 'globex');
my ($endpoint2) = add_endpoint($stack, $org2, $receiver->url('/stopped'),
                                'event.created');

is send_events($key2, $IN_FLIGHT), $IN_FLIGHT, "$IN_FLIGHT more events";
$receiver->wait_requests('/stopped', $IN_FLIGHT);

my $stopping = time;
is $stack->stop_writer('writer2'), 0, 'writer stops cleanly';
cmp_ok time - $stopping, '<', 3, 'without waiting for the answers';

my @interrupted = $stack->psql(
    "SELECT count(*) FROM webhook_attempts a
       JOIN webhook_deliveries d ON d.id = a.delivery_id
      WHERE d.endpoint_id = :id
        AND a.error = 'interrupted: the writer stopped during the attempt'
        AND d.status = 'pending' AND d.next_attempt_at <= now()",
    { id => $endpoint2 });
is $interrupted[0][0], $IN_FLIGHT, 'attempts recorded as interrupted, due now';

my $restarted = time;
$stack->start_writer(name => 'writer3');
$receiver->wait_requests('/stopped', 2 * $IN_FLIGHT, 30);
cmp_ok time - $restarted, '<', 3, 'sent again at once by the next writer';

$counts = received('/stopped');
is scalar keys %$counts, $IN_FLIGHT, 'no message lost at SIGTERM';
ok !(grep { $_ != 2 } values %$counts), 'each sent twice, same webhook-id';


# SIGKILL while events are being stored: the outbox rows commit with the
# events or not at all.

my ($org3, $key3) = pro_org($stack, 'initech');
add_endpoint($stack, $org3, $receiver->url('/burst'), 'event.created');

my @burst = ('curl', '-s', '--parallel', '--parallel-max', '10');
for my $i (1 .. 60) {
    push @burst, '--next' if $i > 1;
    push @burst, '-o', '/dev/null', '-k',
        '-H', "Authorization: Bearer $key3",
        '-H', 'Content-Type: application/json',
        '--data', '{"agent_id":"b","outcome":"success",'
                  . '"task_type":"email_classification"}',
        $stack->url('/v1/track');
}

for my $round (1 .. 3) {
    my $burst = fork // die "fork failed: $!";
    if ($burst == 0) {
        open STDERR, '>', '/dev/null';
        exec @burst or POSIX::_exit(127);
    }

    sleep 0.2 + rand 0.3;
    $stack->kill_writer("writer" . ($round + 2));
    $stack->start_writer(name => "writer" . ($round + 3));
    waitpid $burst, 0;
}

$stack->wait_for_sql(
    "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM events e
                                  WHERE e.org_id = :org
                                    AND NOT EXISTS (SELECT 1
                                          FROM webhook_deliveries d
                                         WHERE d.event_id = e.event_id))",
    vars => { org => $org3 });

sleep 1;
my ($outbox) = $stack->psql(
    "SELECT (SELECT count(*) FROM events WHERE org_id = :org),
            (SELECT count(*) FROM webhook_deliveries d
               JOIN webhook_endpoints w ON w.id = d.endpoint_id
              WHERE w.org_id = :org),
            (SELECT count(DISTINCT d.event_id) FROM webhook_deliveries d
               JOIN webhook_endpoints w ON w.id = d.endpoint_id
              WHERE w.org_id = :org)",
    { org => $org3 });
cmp_ok $outbox->[0], '>', 0, 'events stored across the kills';
is $outbox->[1], $outbox->[0], 'one outbox row per stored event';
is $outbox->[2], $outbox->[0], 'no event queued twice';

$stack->check_error_log;
done_testing();
