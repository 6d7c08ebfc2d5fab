#!/usr/bin/perl

# SIGTERM during a batch: a batch that can still be stored is finished and
# acknowledged before the writer exits with 0; a batch that cannot is left
# pending, unacknowledged, and the writer exits with 0 at once; a second
# SIGTERM ends the writer at once. In each case the next writer picks up
# the rest and nothing is lost.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::WriterTest qw(setup_org stream_entry add_entries writer_env
                              stream_length group_pending events_count);

my $PSQL = ($ENV{HH_PG_BIN} // '/usr/lib/postgresql/15/bin') . '/psql';

my $stack = Humanhours::Stack->new;
$stack->start(qw(redis postgres));

$stack->start_writer(name => 'setup');
my $setup = setup_org($stack, 'sigterm');
$stack->stop_writer('setup');

my ($org, $key_id) = @$setup{qw(org key_id)};
my $total = 0;


# 1. SIGTERM while the batch waits for a lock that another session holds
#    for 3 s: the writer finishes the batch, then exits with 0.

my $locker = lock_rollups(3);

$stack->start_writer(name => 'w1', env => { HH_CLAIM_IDLE_MS => 60000 });
add(100);
wait_for_lock_wait();

# Not read by w1, which is busy with its batch.
add(300);

my $signalled = time;
kill 'TERM', $stack->pid('w1');
$stack->wait_until(sub { !$stack->running('w1') }, timeout => 15,
                   what => 'w1 to exit');
waitpid $locker, 0;

is $stack->exited('w1'), 0, 'w1 exited with 0';
cmp_ok time - $signalled, '>=', 1, 'after the lock was released';
is events_count($stack), 100, 'w1 finished its batch of 100';
is stream_length($stack), 300, 'the 300 entries it had not read remain';
is group_pending($stack), 0, 'and nothing is pending';
like slurp('w1'), qr/stopped by a signal with no batch in flight/,
    'w1 logs a clean stop';

$stack->start_writer(name => 'w2', env => { HH_BACKOFF_MAX_MS => 500 });
$stack->wait_until(sub { events_count($stack) == 400 }, timeout => 20,
                   what => 'w2 to store the other 300');
pass 'w2 stored the rest';


# 2. SIGTERM while the batch cannot be stored (INSERT on events revoked):
#    the writer exits at once with 0, leaving the batch pending.

$stack->psql('REVOKE INSERT ON events FROM humanhours', {},
             user => 'postgres');
add(50);

$stack->wait_until(sub { slurp('w2') =~ /permission denied.*retrying/ },
                   timeout => 20, what => 'w2 to fail on the revoked table');

$signalled = time;
kill 'TERM', $stack->pid('w2');
$stack->wait_until(sub { !$stack->running('w2') }, timeout => 5,
                   what => 'w2 to exit');

is $stack->exited('w2'), 0, 'w2 exited with 0';
cmp_ok time - $signalled, '<', 2, 'at once';
is group_pending($stack), 50, 'its batch of 50 stays pending';
like slurp('w2'), qr/the 50 stream entries in flight were not acknowledged/,
    'w2 logs the abandoned batch';

$stack->psql('GRANT INSERT ON events TO humanhours', {}, user => 'postgres');

$stack->start_writer(name => 'w3', env => { HH_CLAIM_IDLE_MS => 1000 });
$stack->wait_until(sub { events_count($stack) == 450 }, timeout => 20,
                   what => 'w3 to claim and store the batch of 50');
pass 'w3 claimed and stored the abandoned batch';
$stack->stop_writer('w3');


# 3. A second SIGTERM while the first one waits for the batch: the writer
#    ends at once, killed by the signal, and the next writer claims the
#    batch.

# The statement timeout, a quarter of HH_CLAIM_IDLE_MS, outlasts the test.
$stack->start_writer(name => 'w4', env => { HH_CLAIM_IDLE_MS => 60000 });
$locker = lock_rollups(30);
add(20);
wait_for_lock_wait();

kill 'TERM', $stack->pid('w4');
sleep 1;
ok $stack->running('w4'), 'w4 waits for its batch after one SIGTERM';

$signalled = time;
kill 'TERM', $stack->pid('w4');
$stack->wait_until(sub { !$stack->running('w4') }, timeout => 5,
                   what => 'w4 to exit');

my $status = $stack->exited('w4');
ok POSIX::WIFSIGNALED($status) && POSIX::WTERMSIG($status) == 15,
    'second SIGTERM ends w4 by the signal';
cmp_ok time - $signalled, '<', 2, 'at once';

$stack->psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             . " WHERE application_name = 'hh-test-locker'");
waitpid $locker, 0;

$stack->start_writer(name => 'w5', env => { HH_CLAIM_IDLE_MS => 1000 });
$stack->wait_until(sub { events_count($stack) == 470 }, timeout => 20,
                   what => 'w5 to claim and store the batch of 20');
pass 'w5 claimed and stored the batch of w4';


# Nothing lost, nothing twice.

is events_count($stack), $total, "all $total events stored";
my ($sum) = $stack->psql('SELECT sum(events) FROM daily_rollups');
is $sum->[0], $total, 'rollups count each once';
$stack->wait_until(sub { stream_length($stack) == 0 }, timeout => 10,
                   what => 'the stream to empty');
is group_pending($stack), 0, 'nothing pending';

done_testing;


sub add ($n) {
    add_entries($stack, [map { stream_entry($org, $key_id) } 1 .. $n]);
    $total += $n;
}

# Starts a psql that holds a SHARE lock on daily_rollups, which blocks the
# writer's upsert, for the given seconds. Returns its pid once it holds it.
sub lock_rollups ($seconds) {
    my $pid = fork // die "fork failed: $!";
    if ($pid == 0) {
        $ENV{PGAPPNAME} = 'hh-test-locker';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec($PSQL, '-X', '-q', '-h', '127.0.0.1', '-p', $stack->port('pg'),
             '-U', 'humanhours', 'humanhours', '-c',
             "BEGIN; LOCK TABLE daily_rollups IN SHARE MODE;"
             . " SELECT pg_sleep($seconds); COMMIT;")
            or POSIX::_exit(127);
    }

    $stack->wait_for_sql(
        "SELECT 1 FROM pg_locks WHERE relation = 'daily_rollups'::regclass"
        . " AND mode = 'ShareLock' AND granted", timeout => 10);
    return $pid;
}

sub wait_for_lock_wait () {
    $stack->wait_for_sql(
        "SELECT 1 FROM pg_stat_activity"
        . " WHERE application_name = 'humanhours-writer'"
        . " AND wait_event_type = 'Lock'", timeout => 10);
}

sub slurp ($name) {
    open my $file, '<', $stack->folder . "/$name.log" or return '';
    local $/;
    return <$file>;
}
