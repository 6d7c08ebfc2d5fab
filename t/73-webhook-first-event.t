#!/usr/bin/perl

# agent.first_event fires once per agent id of an organisation, however many
# of its events arrive at once and however many writers store them in
# concurrent transactions; an event stored again queues nothing.

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
Humanhours::WebhookTest->import(qw(webhook_env pro_org add_endpoint));

my $AGENTS = 12;
my $EVENTS_PER_AGENT = 25;
my $TOTAL = $AGENTS * $EVENTS_PER_AGENT;

my $folder = File::Temp::tempdir('webhook-receiver-XXXXXXXX', TMPDIR => 1,
                                 CLEANUP => 1);
my $receiver = Humanhours::WebhookReceiver->new(folder => $folder);

my $stack = Humanhours::Stack->new;

# Small batches, so that the events of one agent spread over the writers.
webhook_env($stack, HH_BATCH_SIZE => 4, HH_BATCH_MS => 20);
$stack->start(qw(redis postgres nginx));
$stack->start_writer(name => "writer$_") for 1 .. 3;

# Enterprise: its 1000 events a second per key take the burst.
my ($org, $key) = pro_org($stack, 'acme', 'enterprise');
# The organisation knows one agent from before it had an endpoint.
is $stack->request(headers => { Authorization => "Bearer $key" },
                   json => { agent_id => 'veteran', outcome => 'success',
                             task_type => 'email_classification' })->{status},
    201, 'event of an agent seen before the endpoint';
$stack->wait_for_sql("SELECT 1 FROM events WHERE agent_id = 'veteran'");

my ($endpoint) = add_endpoint($stack, $org, $receiver->url('/hooks'),
                              'agent.first_event');

# Agents interleaved, so that each batch mixes them.
my @requests;
for my $round (1 .. $EVENTS_PER_AGENT) {
    for my $agent (1 .. $AGENTS) {
        push @requests, {
            headers => { Authorization => "Bearer $key" },
            json    => { agent_id => "agent-$agent", outcome => 'success',
                         task_type => 'email_classification',
                         metadata => { round => $round } },
        };
    }
}
push @requests, {
    headers => { Authorization => "Bearer $key" },
    json    => { agent_id => 'veteran', outcome => 'success',
                 task_type => 'ticket_routing' },
};

my $statuses = $stack->request_many(requests => \@requests, parallel => 16);
is scalar(grep { $_ == 201 } @$statuses), $TOTAL + 1,
    "$TOTAL events of $AGENTS new agents and one of the known one accepted";

$stack->wait_for_sql("SELECT 1 WHERE (SELECT count(*) FROM events) = :n",
                     vars => { n => $TOTAL + 2 }, timeout => 60);
pass 'all events stored';

my @hooks = $receiver->wait_requests('/hooks', $AGENTS, 30);
sleep 1.5;
@hooks = $receiver->requests('/hooks');

my %per_agent;
for my $request (@hooks) {
    my $envelope = decode_json($request->{body});
    fail "unexpected delivery type $envelope->{type}"
        unless $envelope->{type} eq 'agent.first_event';
    push @{ $per_agent{ $envelope->{data}{agent_id} } }, $envelope;
}

is scalar @hooks, $AGENTS, "$AGENTS deliveries for $AGENTS new agents";
is_deeply [sort keys %per_agent],
    [sort map { "agent-$_" } 1 .. $AGENTS],
    'one agent.first_event per new agent, none for the known one';
ok !(grep { @{ $per_agent{$_} } != 1 } keys %per_agent),
    'no agent announced twice';

my ($rows) = $stack->psql(
    "SELECT count(*), count(DISTINCT data) FROM webhook_deliveries
      WHERE type = 'agent.first_event'");
is_deeply $rows, [$AGENTS, $AGENTS], 'outbox holds one row per agent';

for my $agent (sort keys %per_agent) {
    my $event = $per_agent{$agent}[0]{data}{event};
    my ($stored) = $stack->psql(
        "SELECT agent_id FROM events WHERE event_id = :'id'",
        { id => $event->{event_id} });
    is $stored->[0], $agent, "$agent: the event named is one of its own";
}

my ($batches) = $stack->psql(
    "SELECT count(DISTINCT stored_at) FROM events WHERE agent_id LIKE 'agent-%'");
cmp_ok $batches->[0], '>', 3, 'the events were stored in several transactions';


# Storing the same events again, as after a lost acknowledgement, inserts
# nothing and so queues nothing.

$stack->psql('INSERT INTO events SELECT * FROM events ON CONFLICT DO NOTHING');
my ($after) = $stack->psql('SELECT count(*) FROM webhook_deliveries');
is $after->[0], $AGENTS, 'events stored again queue no delivery';


# Two sessions store the first events of one agent at the same time: the
# second waits for the first transaction and then announces nothing.

sub racer_insert ($event_id) {
    return "INSERT INTO events (event_id, org_id, key_id, test, agent_id,"
        . " task_type, outcome, agent_duration_seconds, baseline_minutes,"
        . " baseline_source, hourly_rate, currency, hours_saved, cost_saved,"
        . " cost_source, net_saved, fingerprint, occurred_at, received_at)"
        . " SELECT '$event_id', org_id, key_id, test, 'racer', task_type,"
        . " outcome, agent_duration_seconds, baseline_minutes,"
        . " baseline_source, hourly_rate, currency, hours_saved, cost_saved,"
        . " cost_source, net_saved, fingerprint, occurred_at, received_at"
        . " FROM events WHERE agent_id = 'veteran' LIMIT 1;";
}

my $pg_bin = $ENV{HH_PG_BIN} // '/usr/lib/postgresql/15/bin';
my @psql = ("$pg_bin/psql", '-X', '-q', '-o', '/dev/null',
            '-v', 'ON_ERROR_STOP=1',
            '-h', '127.0.0.1', '-p', $stack->port('pg'), '-U', 'humanhours',
            'humanhours', '-c');

my $slow = fork // die "fork failed: $!";
if ($slow == 0) {
    exec @psql, 'BEGIN; ' . racer_insert('evt_RACER000000000000000000001')
        . ' SELECT pg_sleep(1.5); COMMIT;'
        or POSIX::_exit(127);
}

sleep 0.5;
my $started = time;
$stack->psql(racer_insert('evt_RACER000000000000000000002'));
my $waited = time - $started;
waitpid $slow, 0;
is $?, 0, 'first session committed';
cmp_ok $waited, '>', 0.5, 'second session waited for the first';

my ($racer) = $stack->psql(
    "SELECT count(*), min(event_id) FROM webhook_deliveries
      WHERE type = 'agent.first_event' AND event_id LIKE 'evt_RACER%'");
is_deeply $racer, [1, 'evt_RACER000000000000000000001'],
    'one agent.first_event, for the event committed first';

$stack->check_error_log;
done_testing();
