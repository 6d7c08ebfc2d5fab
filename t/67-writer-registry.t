#!/usr/bin/perl

# What a batch writes besides events: the agents and automations registry
# with first and last receipt times, the daily rollups per organisation,
# UTC day, agent, task type, test flag and currency, the key's last use,
# and the Redis hashes of the read endpoints. An event stored again changes
# none of them. New entries that trickle in are gathered into one batch for
# up to HH_BATCH_MS.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::WriterTest qw(setup_org stream_entry event_id add_entries
                              metrics writer_env stream_length events_count);

my $stack = Humanhours::Stack->new;
$stack->start(qw(redis postgres));

my ($env, $port) = writer_env(HH_BATCH_MS => 1000);
$stack->start_writer(env => $env);

my $setup = setup_org($stack, 'registry');
my ($org, $key_id) = @$setup{qw(org key_id)};

my %times = (
    d1a => '2026-03-01T23:59:59.000Z',
    d2a => '2026-03-02T00:00:01.000Z',
    d2b => '2026-03-02T08:30:00.500Z',
);

my $duplicate = event_id();

add_entries($stack, [
    stream_entry($org, $key_id, event_id => $duplicate, agent_id => 'alpha',
                 task_type => 'ticket_routing', occurred_at => $times{d1a},
                 received_at => $times{d1a}),
    stream_entry($org, $key_id, agent_id => 'alpha',
                 task_type => 'ticket_routing', occurred_at => $times{d2a},
                 received_at => $times{d2b}, agent_cost => '0.25'),
    stream_entry($org, $key_id, agent_id => 'alpha',
                 task_type => 'ticket_routing', occurred_at => $times{d2b},
                 received_at => $times{d2a}, model => 'gpt-x'),
    stream_entry($org, $key_id, agent_id => 'beta',
                 task_type => 'meeting_summary', occurred_at => $times{d2b},
                 received_at => $times{d2b}, test => 1),
]);

$stack->wait_until(sub { events_count($stack) == 4 }, timeout => 20,
                   what => 'four events stored');


# The registry.

my @agents = $stack->psql(
    'SELECT agent_id, first_seen, last_seen, events FROM agents'
    . ' WHERE org_id = :\'org\' ORDER BY agent_id', { org => $org });
is_deeply \@agents, [
    ['alpha', '2026-03-01 23:59:59+00', '2026-03-02 08:30:00.5+00', 3],
    ['beta', '2026-03-02 08:30:00.5+00', '2026-03-02 08:30:00.5+00', 1],
], 'one agents row per agent id with first and last receipt';

my @automations = $stack->psql(
    'SELECT agent_id, task_type, coalesce(model, \'-\'), key_id, events'
    . ' FROM automations WHERE org_id = :\'org\''
    . ' ORDER BY agent_id, model NULLS FIRST', { org => $org });
is_deeply \@automations, [
    ['alpha', 'ticket_routing', '-', $key_id, 2],
    ['alpha', 'ticket_routing', 'gpt-x', $key_id, 1],
    ['beta', 'meeting_summary', '-', $key_id, 1],
], 'one automations row per fingerprint';


# The rollups: a baseline of 4 minutes less 3 seconds of agent time, at 45
# an hour, saves 237 / 3600 hours and 2.9625 per event.

my @rollups = $stack->psql(
    'SELECT day, agent_id, task_type, test, currency, events,'
    . ' round(hours_saved::numeric, 6), round(cost_saved::numeric, 6),'
    . ' round(agent_cost::numeric, 6), round(net_saved::numeric, 6)'
    . ' FROM daily_rollups WHERE org_id = :\'org\''
    . ' ORDER BY day, agent_id', { org => $org });
is_deeply \@rollups, [
    ['2026-03-01', 'alpha', 'ticket_routing', 'f', 'EUR', 1,
     '0.065833', '2.962500', '0.000000', '2.962500'],
    ['2026-03-02', 'alpha', 'ticket_routing', 'f', 'EUR', 2,
     '0.131667', '5.925000', '0.250000', '5.675000'],
    ['2026-03-02', 'beta', 'meeting_summary', 't', 'EUR', 1,
     '0.065833', '2.962500', '0.000000', '2.962500'],
], 'rollups by UTC day of occurred_at, agent, task type and test flag';

my ($used) = $stack->psql('SELECT last_used_on FROM api_keys WHERE id = :\'id\'',
                          { id => $key_id });
like $used->[0], qr/^\d{4}-\d\d-\d\d$/, 'the key records its last use';


# The same event again: nothing changes.

add_entries($stack, [
    stream_entry($org, $key_id, event_id => $duplicate, agent_id => 'alpha',
                 task_type => 'ticket_routing', occurred_at => $times{d1a},
                 received_at => $times{d1a}) ]);

$stack->wait_until(
    sub { (metrics($port) // {})->{hh_writer_events_duplicate_total} },
    timeout => 20, what => 'the writer to see the duplicate');

is events_count($stack), 4, 'the duplicate adds no event';
my ($sums) = $stack->psql(
    'SELECT (SELECT sum(events) FROM agents), (SELECT sum(events) FROM'
    . ' automations), (SELECT sum(events) FROM daily_rollups)');
is_deeply $sums, [4, 4, 4], 'nor counts in the registry and the rollups';
is stream_length($stack), 0, 'and is deleted from the stream';


# The Redis hashes of the read endpoints: live agents with the time their
# first event was stored, and per UTC day of the last 32 the live events,
# hours and cost saved of each agent. The March days are older than that.

my $agents = $stack->redis_cli('HGETALL', "hh:org:$org:agents");
like $agents, qr/^alpha\n\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n$/,
    'agents hash: the live agent with its first stored time';

my @today = gmtime;
my $day = sprintf '%04d-%02d-%02d', $today[5] + 1900, $today[4] + 1, $today[3];
add_entries($stack, [
    map { stream_entry($org, $key_id, agent_id => 'gamma') } 1 .. 2 ]);
$stack->wait_until(sub { events_count($stack) == 6 }, timeout => 20,
                   what => 'two events of today');

my ($events, $hours, $cost) = split ' ',
    $stack->redis_cli('HGET', "hh:org:$org:day:$day", 'gamma');
is $events, 2, 'day hash: events of today';
is sprintf('%.6f %.4f', $hours, $cost), '0.131667 5.9250',
    'day hash: hours and cost saved';
my $ttl = $stack->redis_cli('TTL', "hh:org:$org:day:$day");
cmp_ok $ttl, '>=', 31 * 86400, 'day hash expires after 32 days';
cmp_ok $ttl, '<=', 32 * 86400, 'and not later';
is $stack->redis_cli('EXISTS', "hh:org:$org:day:2026-03-02"), "0\n",
    'no hash for days past the window';


# Entries that arrive one by one within HH_BATCH_MS share a batch.

my $before = metrics($port)->{hh_writer_batch_size_count};
for (1 .. 5) {
    add_entries($stack, [stream_entry($org, $key_id)]);
    sleep 0.05;
}

$stack->wait_until(sub { events_count($stack) == 11 }, timeout => 20,
                   what => 'five more events');
my $batches = metrics($port)->{hh_writer_batch_size_count} - $before;
cmp_ok $batches, '<=', 2, "five entries over 250 ms took $batches batches";

done_testing;
