#!/usr/bin/perl

# Postgres stopped for 30 seconds under steady load through nginx: the edge
# answers 201 throughout because Redis holds the backlog, the writer
# acknowledges nothing while Postgres is down and keeps serving metrics,
# and once Postgres is back every accepted event lands without a restart
# of the writer.

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

my $OUTAGE_S = 30;

my $stack = Humanhours::Stack->new;
$stack->start(qw(redis postgres nginx));

# A short back-off cap, so that the writer notices the return within 2 s.
my ($env, $port) = writer_env(HH_BACKOFF_MAX_MS => 2000);
$stack->start_writer(env => $env);

my $setup = setup_org($stack, 'pg-outage');

my $load = start_load($stack,
    request   => { track_request($setup->{key}) },
    per_round => 20,
    parallel  => 4,
    pause     => 0.1,
    seconds   => $OUTAGE_S + 60);

sleep 3;
cmp_ok events_count($stack), '>', 0, 'events stored before the outage';


# Postgres down.

my $stopped_at = time;
$stack->stop_postgres;
my $down_at = time;

# The batch in flight fails within a moment; after that nothing may be
# acknowledged until Postgres is back.
sleep 2;
my $before = metrics($port);
ok $before, 'metrics answer while Postgres is down';
is $before->{hh_writer_postgres_connected}, 0, 'metrics show Postgres down';

sleep $OUTAGE_S - 2 - (time - $down_at);

my $after = metrics($port);
is $after->{hh_writer_entries_acknowledged_total},
    $before->{hh_writer_entries_acknowledged_total},
    'nothing acknowledged while Postgres is down';
cmp_ok $after->{hh_writer_failures_total}, '>',
    $before->{hh_writer_failures_total}, 'the writer keeps retrying';

my $backlog = stream_length($stack);
my $backlog_at = time;
ok $stack->running('writer'), 'writer still runs';

$stack->start_postgres(migrate => 0);
my $restarted_at = time;

sleep 3;
my $results = finish_load($load);


# The edge answered 201 throughout.

my @during = grep { $_->{started} > $down_at
                    && $_->{ended} < $restarted_at } @$results;
cmp_ok scalar @during, '>', 100, scalar(@during) . ' requests during the outage';

my @failed = grep { $_->{status} != 201 } @$results;
is scalar @failed, 0, 'every request got a 201, before, during and after';

# Events accepted while Postgres was down can only be in the stream.
my $accepted_while_down = grep { $_->{status} == 201
                                 && $_->{started} > $down_at
                                 && $_->{ended} < $backlog_at } @$results;
cmp_ok $backlog, '>=', $accepted_while_down,
    "Redis holds the backlog ($backlog entries)";


# Every accepted event lands.

my @accepted = map { $_->{event_id} } grep { $_->{status} == 201 } @$results;

$stack->wait_until(sub { events_count($stack) >= @accepted },
                   timeout => 40, interval => 0.5,
                   what => 'every accepted event in Postgres');

my $ids = join ',', map { "('$_')" } @accepted;
my ($found) = $stack->psql(
    "SELECT count(*) FROM (VALUES $ids) AS a(id)"
    . ' JOIN events e ON e.event_id = a.id');
is $found->[0], scalar @accepted,
    scalar(@accepted) . ' accepted events stored';
is events_count($stack), scalar @accepted, 'and no other';

my ($sum) = $stack->psql('SELECT sum(events) FROM daily_rollups');
is $sum->[0], scalar @accepted, 'rollups count each event once';

$stack->wait_until(sub { stream_length($stack) == 0 }, timeout => 20,
                   what => 'the stream to empty');
is group_pending($stack), 0, 'nothing left pending';

my ($dead) = $stack->psql('SELECT count(*) FROM dead_letters');
is $dead->[0], 0, 'no dead letters';

my $log = _slurp($stack->folder . '/writer.log');
like $log, qr/retrying in \d+ ms/, 'the retries are logged';
like $log, qr/connected to Postgres/, 'the return is logged';

$stack->check_error_log('nginx error log clean');

done_testing;


sub _slurp ($path) {
    open my $file, '<', $path or return '';
    local $/;
    return <$file>;
}
