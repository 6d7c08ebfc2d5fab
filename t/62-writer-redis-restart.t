#!/usr/bin/perl

# Redis killed with SIGKILL under steady load through nginx and started
# again on its append-only file (appendfsync always): the edge answers 503
# while Redis is down, the writer reconnects by itself, and every event
# that got a 201 lands in Postgres.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::WriterTest qw(setup_org track_request start_load finish_load
                              metrics writer_env stream_length group_pending
                              events_count);

my $stack = Humanhours::Stack->new;
$stack->start(qw(redis postgres nginx));

my ($env, $port) = writer_env(HH_BACKOFF_MAX_MS => 1000);
$stack->start_writer(env => $env);

my $setup = setup_org($stack, 'redis-restart');

my $load = start_load($stack,
    request   => { track_request($setup->{key}) },
    per_round => 20,
    parallel  => 4,
    pause     => 0.05,
    seconds   => 60);

sleep 3;
cmp_ok events_count($stack), '>', 0, 'events stored before the crash';

my $killed_at = time;
$stack->kill_redis;
sleep 2;

my $values = metrics($port);
is $values->{hh_writer_redis_connected}, 0,
    'metrics answer and show Redis down';

$stack->start_redis;
my $restarted_at = time;

sleep 4;
my $results = finish_load($load);


# The edge refused while Redis was down and accepted again afterwards.

my @accepted = map { $_->{event_id} } grep { $_->{status} == 201 } @$results;
my @refused = grep { $_->{status} != 201 } @$results;
my @after = grep { $_->{started} > $restarted_at + 2 } @$results;

cmp_ok scalar @accepted, '>', 200, scalar(@accepted) . ' events accepted';
ok !(grep { $_->{status} != 201 && $_->{status} != 503 } @refused),
    'every refusal is a 503 (' . scalar(@refused) . ' of them)';
cmp_ok scalar @after, '>', 0, 'requests after the restart';
ok !(grep { $_->{status} != 201 } @after), 'all of them got a 201';


# Every accepted event lands. A request that Redis stored just before the
# kill but could not answer got a 503 and may land too.

$stack->wait_until(sub { events_count($stack) >= @accepted },
                   timeout => 40, interval => 0.5,
                   what => 'every accepted event in Postgres');

my $ids = join ',', map { "('$_')" } @accepted;
my ($found) = $stack->psql(
    "SELECT count(*) FROM (VALUES $ids) AS a(id)"
    . ' JOIN events e ON e.event_id = a.id');
is $found->[0], scalar @accepted,
    'every event id that got a 201 is stored';
cmp_ok events_count($stack), '<=', scalar(@accepted) + scalar(@refused),
    'nothing beyond the requests sent is stored';

$stack->wait_until(sub { stream_length($stack) == 0 }, timeout => 20,
                   what => 'the stream to empty');
is group_pending($stack), 0, 'nothing left pending';

my ($sums) = $stack->psql(
    'SELECT (SELECT sum(events) FROM daily_rollups), count(*) FROM events');
is $sums->[0], $sums->[1], 'rollups count each stored event once';

my $log = _slurp($stack->folder . '/writer.log');
like $log, qr/connected to Redis at .*reading the pending entries/,
    'the reconnect is logged';

$stack->check_error_log('nginx error log has no alert');

done_testing;


sub _slurp ($path) {
    open my $file, '<', $path or return '';
    local $/;
    return <$file>;
}
