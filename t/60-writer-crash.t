#!/usr/bin/perl

# The writer killed with SIGKILL in the middle of a batch while 10,000
# events arrive through nginx: a second writer claims the batch that the
# first one left pending, and Postgres ends up with every event that got a
# 201, each once, with the registry and the rollups counting each once.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::WriterTest qw(setup_org track_request start_load finish_load
                              metrics writer_env group_pending stream_length
                              events_count);

my $EVENTS = 10_000;

my $stack = Humanhours::Stack->new;
$stack->start(qw(redis postgres nginx));

# The claim idle time is short so that the second writer claims soon.
my ($env) = writer_env(HH_CLAIM_IDLE_MS => 2000, HH_BATCH_SIZE => 500);
$stack->start_writer(name => 'first', env => $env);

my $setup = setup_org($stack, 'crash');

my $load = start_load($stack,
    request   => { track_request($setup->{key}) },
    total     => $EVENTS,
    per_round => 1000,
    parallel  => 10,
    pause     => 0);


# Kill the first writer while it holds a batch: delivered entries that it
# has not acknowledged. Under this load it nearly always does.

my $killed_in_batch = 0;
my $deadline = time + 60;

while (time < $deadline) {
    if (events_count($stack) >= 1000 && group_pending($stack) > 0) {
        $stack->kill_writer('first');
        $killed_in_batch = 1;
        last;
    }
    sleep 0.01;
}

ok $killed_in_batch, 'first writer killed with a batch pending';
my $left_pending = group_pending($stack);
cmp_ok $left_pending, '>', 0, "the batch stays pending ($left_pending)";

my ($env2, $port2) = writer_env(HH_CLAIM_IDLE_MS => 2000,
                                HH_BATCH_SIZE => 500);
$stack->start_writer(name => 'second', env => $env2);

my $results = finish_load($load, stop => 0, timeout => 120);
is scalar @$results, $EVENTS, "$EVENTS requests sent";

my @accepted = map { $_->{event_id} } grep { $_->{status} == 201 } @$results;
is scalar @accepted, $EVENTS, 'every request got a 201';


# Every accepted event lands, once.

$stack->wait_until(sub { events_count($stack) >= @accepted },
                   timeout => 60, interval => 0.5,
                   what => 'every accepted event in Postgres');

my $ids = join ',', map { "('$_')" } @accepted;
my ($found) = $stack->psql(
    "SELECT count(*), count(DISTINCT e.event_id) FROM (VALUES $ids) AS a(id)"
    . ' JOIN events e ON e.event_id = a.id');
is $found->[0], scalar @accepted, 'every event id that got a 201 is stored';
is $found->[1], scalar @accepted, 'each of them once';
is events_count($stack), scalar @accepted, 'no other event is stored';

my ($sums) = $stack->psql(
    'SELECT (SELECT sum(events) FROM daily_rollups),'
    . ' (SELECT sum(events) FROM agents),'
    . ' (SELECT sum(events) FROM automations)');
is_deeply $sums, [(scalar @accepted) x 3],
    'rollups, agents and automations count each event once';

$stack->wait_until(sub { stream_length($stack) == 0 }, timeout => 20,
                   what => 'the stream to empty');
is group_pending($stack), 0, 'nothing left pending';

my $values = metrics($port2);
cmp_ok $values->{hh_writer_entries_claimed_total}, '>=', $left_pending,
    'second writer claimed the pending batch';

like _slurp($stack->folder . '/second.log'),
    qr/claimed \d+ stream entries pending for over 2000 ms/,
    'the claim is logged';

$stack->check_error_log('nginx error log clean');

done_testing;


sub _slurp ($path) {
    open my $file, '<', $path or return '';
    local $/;
    return <$file>;
}
