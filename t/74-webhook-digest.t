#!/usr/bin/perl

# weekly.digest: with the writers' clock set to a Monday after 09:00 UTC
# (HH_WEBHOOK_NOW), one digest per organisation and mode is queued by
# exactly one of several writers, its numbers equal a SQL aggregate over the
# events of the 7 days before that Monday (and the daily rollups, when the
# writer fills them), and restarting the writers queues nothing more.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;

require "$FindBin::Bin/79-webhook-receiver.t";
Humanhours::WebhookTest->import(qw(webhook_env verify_humanhours pro_org
    add_endpoint));

my $DAY = 86400;

# The digest due next Monday covers this week, which has begun, so its
# events can be sent now (occurred_at may lie up to 24 hours ahead).
my $today = int(time / $DAY) * $DAY;
my $this_monday = $today - ((gmtime $today)[6] + 6) % 7 * $DAY;
my $next_monday = $this_monday + 7 * $DAY;

sub iso ($t) { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $t) }

my $folder = File::Temp::tempdir('webhook-receiver-XXXXXXXX', TMPDIR => 1,
                                 CLEANUP => 1);
my $receiver = Humanhours::WebhookReceiver->new(folder => $folder);

my $stack = Humanhours::Stack->new;
webhook_env($stack);
$stack->start;

my ($org, $live_key, $test_key) = pro_org($stack, 'acme');
my ($other_org, $other_key) = pro_org($stack, 'globex', 'agency');

my ($live_id, $live_secret) = add_endpoint($stack, $org,
    $receiver->url('/acme'), 'weekly.digest');
my ($test_id) = add_endpoint($stack, $org, $receiver->url('/acme-test'),
    'weekly.digest', '--test');
my ($other_id) = add_endpoint($stack, $other_org, $receiver->url('/globex'),
    'weekly.digest,event.created');
my ($late_org, $late_key) = pro_org($stack, 'initech');


# Events: seven agents over four task types, some with an agent cost, one
# the minute before the week began, and test events.

my @types = qw(email_classification ticket_routing invoice_data_extraction
               meeting_summary_30min);
my @requests;
for my $i (0 .. 27) {
    my %event = (
        agent_id               => 'agent-' . ($i % 7),
        task_type              => $types[$i % 4],
        outcome                => 'success',
        agent_duration_seconds => 3 + $i,
        occurred_at            => iso($this_monday + 60 * $i),
    );
    $event{agent_cost} = 0.01 * $i if $i % 3 == 0;
    push @requests, { headers => { Authorization => "Bearer $live_key" },
                      json => \%event };
}
push @requests, { headers => { Authorization => "Bearer $live_key" },
                  json => { agent_id => 'agent-0', outcome => 'success',
                            task_type => 'email_classification',
                            occurred_at => iso($this_monday - 60) } };
for my $i (0 .. 2) {
    push @requests, { headers => { Authorization => "Bearer $test_key" },
                      json => { agent_id => 'sandbox', outcome => 'success',
                                task_type => 'ticket_routing',
                                occurred_at => iso($this_monday + $i) } };
}
push @requests, { headers => { Authorization => "Bearer $other_key" },
                  json => { agent_id => 'solo', outcome => 'failure',
                            task_type => 'meeting_summary_30min',
                            occurred_at => iso($this_monday + 3600) } };

my $statuses = $stack->request_many(requests => \@requests, parallel => 8);
is scalar(grep { $_ == 201 } @$statuses), scalar @requests,
    'all events accepted';
$stack->wait_for_sql('SELECT 1 WHERE (SELECT count(*) FROM events) = :n',
                     vars => { n => scalar @requests });

# The real clock's digest (if any is due) is not for these new endpoints.
my ($none) = $stack->psql('SELECT count(*) FROM webhook_digests');
is $none->[0], 0, 'no digest queued before the digest time';


# Three writers whose clock says next Monday, 09:00:01 UTC. An endpoint
# created after that time gets no digest for that week.

add_endpoint($stack, $late_org, $receiver->url('/initech'), 'weekly.digest');
$stack->psql("UPDATE webhook_endpoints SET created_at = :'late'
               WHERE org_id = :org",
             { late => iso($next_monday + 9 * 3600 + 60), org => $late_org });

$stack->stop_writer;
$ENV{HH_WEBHOOK_NOW} = iso($next_monday + 9 * 3600 + 1);
$stack->start_writer(name => "writer$_") for 1 .. 3;

sub digests ($path) {
    return grep { decode_json($_->{body})->{type} eq 'weekly.digest' }
           $receiver->requests($path);
}

my @acme = $receiver->wait_requests('/acme', 1);
my @acme_test = $receiver->wait_requests('/acme-test', 1);
$receiver->wait_requests('/globex', 2);
sleep 1.5;
my @globex = digests('/globex');

is scalar $receiver->requests('/acme'), 1, 'one digest for the live endpoint';
is scalar $receiver->requests('/acme-test'), 1,
    'one digest for the test endpoint';
is scalar @globex, 1, 'one digest for the other organisation';
is scalar $receiver->requests('/initech'), 0,
    'no digest for an endpoint added after the digest time';

my @digests = $stack->psql(
    'SELECT org_id, week FROM webhook_digests ORDER BY org_id');
is_deeply \@digests,
    [[$org, strftime('%Y-%m-%d', gmtime $next_monday)],
     [$other_org, strftime('%Y-%m-%d', gmtime $next_monday)]],
    'one digest row per organisation, for the week of that Monday';

my $writer_logs = join '', map {
    Humanhours::Stack::_slurp($stack->folder . "/writer$_.log") // ''
} 1 .. 3;
my @queued = $writer_logs =~ /queued (\d+) weekly\.digest deliveries/g;
is_deeply \@queued, [3], 'exactly one writer queued the digests';

ok verify_humanhours($live_secret, $acme[0]{headers}{'x-humanhours-signature'},
                     $acme[0]{body}),
    'digest is signed';


# The numbers: equal to the daily rollups where the writer fills them,
# else to a SQL aggregate over the events.

my $digest = decode_json($acme[0]{body});
is $digest->{type}, 'weekly.digest', 'type weekly.digest';
my $data = $digest->{data};

is $data->{organisation_id}, $org, 'organisation';
is $data->{mode}, 'live', 'live mode';
is $data->{period_start}, strftime('%Y-%m-%dT00:00:00.000Z',
                                   gmtime $this_monday), 'period start';
is $data->{period_end}, strftime('%Y-%m-%dT00:00:00.000Z',
                                 gmtime $next_monday), 'period end';
is $data->{currency}, 'EUR', 'currency';
is $data->{events}, 28, '28 events in the week, the earlier one left out';
like $acme[0]{body}, qr/"hours_saved":\d+\.\d{3},"cost_saved":\d+\.\d{2},/,
    'rounded to 3 and 2 decimals';

my %vars = (org => $org, from => iso($this_monday), to => iso($next_monday));
my $events_rows = "SELECT agent_id, task_type, 1 AS events, hours_saved,
                          cost_saved, coalesce(agent_cost, 0) AS agent_cost,
                          net_saved
                     FROM events
                    WHERE org_id = :org AND NOT test
                      AND occurred_at >= :'from' AND occurred_at < :'to'";
my $rollup_rows = "SELECT agent_id, task_type, events, hours_saved,
                          cost_saved, agent_cost, net_saved
                     FROM daily_rollups
                    WHERE org_id = :org AND NOT test
                      AND day >= :'from' AND day < :'to'";

my ($has_rollups) = $stack->psql(
    "SELECT to_regclass('daily_rollups') IS NOT NULL");
my $source = 'events';
if ($has_rollups->[0] eq 't') {
    my ($count) = $stack->psql("SELECT count(*) FROM ($rollup_rows) r",
                               \%vars);
    $source = 'rollups' if $count->[0] > 0;
}
diag "digest compared with the $source";

# Sums over one kind of rows: [name, events, hours_saved, cost_saved,
# agent_cost, net_saved], for the whole period or per group.
sub sums ($rows, $group = undef) {
    my $key = $group // "''";
    my $grouping = $group ? "GROUP BY $group"
                            . " ORDER BY sum(hours_saved) DESC, $group LIMIT 5"
                          : '';
    return $stack->psql(
        "SET extra_float_digits = 3;
         SELECT $key, sum(events), sum(hours_saved), sum(cost_saved),
                sum(agent_cost), sum(net_saved)
           FROM ($rows) r $grouping", \%vars);
}

# Compares digest numbers with sums. Sums of doubles taken in another order
# can differ in the last bit, which flips a value that lies on a rounding
# tie, so the rounded numbers may differ by one unit in the last place.
my @fields = qw(name events hours_saved cost_saved agent_cost net_saved);

sub compare ($entry, $name, $sums, $what) {
    is $name, $sums->[0], "$what: name";
    is $entry->{events}, $sums->[1], "$what: events";

    for my $i (2 .. 5) {
        my $unit = $i == 2 ? 0.001 : 0.01;
        cmp_ok abs($entry->{ $fields[$i] } - $sums->[$i]), '<=',
            $unit / 2 + 1e-9, "$what: $fields[$i]";
    }
}

my $rows = $source eq 'rollups' ? $rollup_rows : $events_rows;
my ($totals) = sums($rows);
compare($data, '', $totals, "totals and the $source");

for my $group (['top_agents', 'agent_id'], ['top_task_types', 'task_type']) {
    my ($member, $column) = @$group;
    my @want = sums($rows, $column);

    is scalar @{ $data->{$member} }, scalar @want,
        "$member: as many as the $source give";

    for my $i (0 .. $#want) {
        my $entry = $data->{$member}[$i];
        compare($entry, $entry->{$column}, $want[$i],
                "$member $i and the $source");
    }
}
is scalar @{ $data->{top_agents} }, 5, 'five of the seven agents listed';
is scalar @{ $data->{top_task_types} }, 4, 'all four task types listed';

my ($from_events) = sums($events_rows);
compare($data, '', $from_events, 'totals and the events');


# The test endpoint's digest covers the test events only.

my $test_data = decode_json($acme_test[0]{body})->{data};
is $test_data->{mode}, 'test', 'test digest in test mode';
is $test_data->{events}, 3, 'test digest counts the test events';
is_deeply [map { $_->{agent_id} } @{ $test_data->{top_agents} }], ['sandbox'],
    'test digest lists the test agent';

my $other = decode_json($globex[0]{body})->{data};
is $other->{events}, 1, 'other organisation: its own event';
is $other->{top_task_types}[0]{task_type}, 'meeting_summary_30min',
    'other organisation: its task type';


# Restarted writers with the same clock queue nothing more.

$stack->stop_writer("writer$_") for 1 .. 3;
$stack->start_writer(name => 'writer4');
sleep 1.5;
my ($count) = $stack->psql(
    "SELECT count(*) FROM webhook_deliveries WHERE type = 'weekly.digest'");
is $count->[0], 3, 'no digest queued twice';

$stack->check_error_log;
done_testing();
