#!/usr/bin/perl

# What the writer shows of itself: --help lists every setting, the metrics
# port answers GET /metrics in Prometheus text format with the documented
# series and nothing else, log lines carry ids but no payload, and SIGHUP
# reopens HH_WRITER_LOG after a rotation.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use HTTP::Tiny;
use IO::Socket::IP;
use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::WriterTest qw(setup_org stream_entry add_entries metrics
                              writer_env stream_length events_count);

my $stack = Humanhours::Stack->new;


# --help.

my $help = `'@{[ $stack->build_dir ]}/humanhours-writer' --help`;
is $?, 0, '--help exits with 0';
for my $name (qw(HH_DATABASE HH_REDIS HH_CONSUMER HH_BATCH_SIZE HH_BATCH_MS
                 HH_CLAIM_IDLE_MS HH_MAX_DELIVERIES HH_BACKOFF_MAX_MS
                 HH_WRITER_METRICS HH_WRITER_LOG)) {
    like $help, qr/^  \Q$name\E /m, "--help lists $name";
}

my $bad = `HH_WRITER_METRICS=localhost:9 '@{[ $stack->build_dir ]}/humanhours-writer' 2>&1`;
isnt $?, 0, 'a host name for HH_WRITER_METRICS is rejected';
like $bad, qr/HH_WRITER_METRICS "localhost:9" is invalid/, 'with the variable named';


# Metrics.

$stack->start(qw(redis postgres));

my $log_file = $stack->folder . '/rotated.log';
my ($env, $port) = writer_env(HH_WRITER_LOG => $log_file);
$stack->start_writer(env => $env);

my $setup = setup_org($stack, 'observability');
my $secret_agent = 'agent-name-that-stays-out-of-logs';

add_entries($stack, [
    map { stream_entry($setup->{org}, $setup->{key_id},
                       agent_id => $secret_agent) } 1 .. 30 ]);
add_entries($stack, [
    stream_entry($setup->{org}, $setup->{key_id},
                 fields => { baseline_minutes => 'nan' }) ]);

$stack->wait_until(sub { stream_length($stack) == 0 }, timeout => 20,
                   what => 'the stream to empty');

my $http = HTTP::Tiny->new(timeout => 5);
my $res = $http->get("http://127.0.0.1:$port/metrics");
is $res->{status}, 200, 'GET /metrics: 200';
like $res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
    'Prometheus text format';

my $text = $res->{content};
my %types = $text =~ /^# TYPE (\S+) (\S+)$/mg;
my @malformed;
for my $line (grep { !/^#/ } split /\n/, $text) {
    my ($name) = $line =~ /^([a-z_]+)/;
    my $family = $name // '';
    $family =~ s/_(?:bucket|sum|count)$// unless $types{$family};
    push @malformed, $line
        unless $types{$family}
               && $line =~ /^[a-z_]+(?:\{[^}]*\})? (?:-?[0-9.e+-]+|\+Inf)$/;
}
is_deeply \@malformed, [], 'every series is well formed and has a TYPE';
like $text, qr/^hh_writer_info\{consumer="[^"]+",group="hh-writers",stream="hh:events"\} 1$/m,
    'info names the consumer';

my $values = metrics($port);
is $values->{hh_writer_events_inserted_total}, 30, 'events written';
is $values->{'hh_writer_dead_letters_total{reason="unparseable"}'}, 1,
    'dead letters';
cmp_ok $values->{hh_writer_batch_size_count}, '>=', 1, 'batches';
is $values->{hh_writer_batch_size_sum}, 31, 'batch sizes add up';
is $values->{'hh_writer_batch_size_bucket{le="+Inf"}'},
    $values->{hh_writer_batch_size_count}, 'histogram +Inf equals count';
cmp_ok $values->{'hh_writer_sync_runs_total{result="ok"}'}, '>=', 1,
    'sync runs';
for my $gauge (qw(hh_writer_stream_length hh_writer_pending_entries
                  hh_writer_consumer_lag_entries
                  hh_writer_oldest_entry_age_seconds)) {
    ok exists $values->{$gauge}, "$gauge present";
}
is $values->{hh_writer_postgres_connected}, 1, 'Postgres connected';
is $values->{hh_writer_redis_connected}, 1, 'Redis connected';

$res = $http->get("http://127.0.0.1:$port/nothing");
is $res->{status}, 404, 'other paths: 404';
$res = $http->request('POST', "http://127.0.0.1:$port/metrics");
is $res->{status}, 405, 'POST: 405';
is $res->{headers}{allow}, 'GET, HEAD', 'with Allow';

# A client that connects and sends nothing does not block the writer.
my $idle = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port)
    or die "cannot connect to the metrics port: $!";
add_entries($stack, [stream_entry($setup->{org}, $setup->{key_id})]);
$stack->wait_until(sub { stream_length($stack) == 0 }, timeout => 10,
                   what => 'the writer to go on beside an idle client');
ok metrics($port), 'metrics answer beside an idle client';
close $idle;


# Logs.

my $log = slurp($log_file);
like $log, qr/\[info\] humanhours-writer\[\d+\]: started as consumer /,
    'HH_WRITER_LOG receives the log';
like $log, qr/moved to dead letters after 1 deliveries: the entry does not parse: field "baseline_minutes"/,
    'dead letter logged with its reason';
like $log, qr/organisation \Q$setup->{org}\E, key \Q$setup->{key_id}\E/,
    'dead letter logged with organisation and key ids';
unlike $log, qr/\Q$secret_agent\E/, 'no payload in the log';


# SIGHUP after a rotation.

rename $log_file, "$log_file.1" or die "cannot rename $log_file: $!";
kill 'HUP', $stack->pid('writer');

$stack->wait_until(sub { slurp($log_file) =~ /reopened the log file/ },
                   timeout => 10, what => 'the writer to reopen its log');
pass 'SIGHUP reopened the log in a new file';
ok $stack->running('writer'), 'the writer still runs';

$stack->stop_writer;
like slurp($log_file), qr/stopped by a signal/, 'later lines go to the new file';
unlike slurp("$log_file.1"), qr/stopped by a signal/, 'not to the old one';

done_testing;


sub slurp ($path) {
    open my $file, '<', $path or return '';
    local $/;
    return <$file>;
}
