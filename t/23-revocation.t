#!/usr/bin/perl

# Revocation with no writer running: once key revoke returns, the next
# request with the key gets 401 key_revoked on every worker, for a key that
# both workers served from the cache and for one that was never cached.
# A writer that starts afterwards and syncs keeps the key revoked.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Humanhours::Stack;
use Humanhours::TestUtil qw(create_key prefix_of metrics growth);

my $WORKERS = 2;

# Burst size and the bound on bursts when looking for every worker.
my $BURST = 100;
my $MAX_BURSTS = 5;

# One line per track request, naming the worker that answered. The path is
# relative to the stack folder, which is nginx's prefix.
my $stack = Humanhours::Stack->new(
    workers         => $WORKERS,
    http_config     => q{log_format worker_pid '$pid $status';},
    location_config => 'access_log worker-pids.log worker_pid;',
);
$stack->start;

my $org = $stack->admin(qw(org create --name revoke --plan enterprise));
chomp $org;
$stack->psql('UPDATE organisations SET rate_limit = 1000000 WHERE id = :org',
             { org => $org });
$stack->redis_cli('HSET', "hh:org:$org", 'rate_limit', '1000000');

my $cached_key = create_key($stack, $org);
my $uncached_key = create_key($stack, $org);

$stack->wait_until(
    sub { $stack->redis_cli('EXISTS', 'hh:tasktypes') =~ /^1/ },
    timeout => 30,
    what    => 'the writer to copy the task types to Redis',
);

$stack->stop_writer;
ok !$stack->writers, 'no writer runs';

my $body = '{"agent_id":"revoke-agent","task_type":"ticket_routing",'
         . '"outcome":"success"}';


# Both workers serve the first key from the cache: one miss in all, and
# 201s from every worker.

my $before = metrics($stack);
my $log_offset = log_size();
my ($bursts, $accepted) = (0, 0);
my %workers;

while ($bursts < $MAX_BURSTS && keys %workers < $WORKERS) {
    my $statuses = $stack->request_many(request => track($cached_key),
                                        count => $BURST, parallel => $BURST);
    $accepted += grep { $_ == 201 } @$statuses;
    $bursts++;
    %workers = workers_since($log_offset, 201);
}
my $growth = growth($before, metrics($stack));

is $accepted, $BURST * $bursts, 'cached key: every request answered 201';
is scalar keys %workers, $WORKERS,
    "cached key: all $WORKERS workers answered it";
is $growth->{humanhours_key_cache_misses_total}, 1,
    'cached key: one cache miss';
is $growth->{humanhours_argon2id_verifications_total}, 1,
    'cached key: one argon2id verification';
is $growth->{humanhours_key_cache_hits_total}, $accepted - 1,
    'cached key: all other requests were cache hits';


# Revoke it. The very next request is refused.

my $revoked = $stack->admin('key', 'revoke', prefix_of($cached_key));
like $revoked, qr/^\Q${\ prefix_of($cached_key)}\E\t\d{4}-\d\d-\d\dT/,
    'key revoke prints the prefix and revocation time';

my $res = $stack->request(%{ track($cached_key) });
is $res->{status}, 401, 'cached key, next request: 401';
is $res->{json}{error}{code}, 'key_revoked',
    'cached key, next request: key_revoked';


# Every worker refuses it.

$log_offset = log_size();
($bursts, my $refused) = (0, 0);
%workers = ();

while ($bursts < $MAX_BURSTS && keys %workers < $WORKERS) {
    my $results = $stack->request_many(request => track($cached_key),
        count => $BURST, parallel => $BURST, bodies => 1);
    $refused += grep {
        $_->{status} == 401 && ($_->{json}{error}{code} // '') eq 'key_revoked'
    } @$results;
    $bursts++;
    %workers = workers_since($log_offset, 401);
}

is $refused, $BURST * $bursts, 'cached key: every later request refused';
is scalar keys %workers, $WORKERS,
    "cached key: all $WORKERS workers refused it";

# The key is checked before the body, whose errors would otherwise say
# nothing about the revocation.
$res = $stack->request(%{ track($cached_key) }, body => '{"agent_id":');
is $res->{status}, 401, 'cached key, broken body: 401';
is $res->{json}{error}{code}, 'key_revoked',
    'cached key, broken body: key_revoked';


# A key that no worker has seen yet.

$stack->admin('key', 'revoke', prefix_of($uncached_key));

$res = $stack->request(%{ track($uncached_key) });
is $res->{status}, 401, 'uncached key, first request: 401';
is $res->{json}{error}{code}, 'key_revoked',
    'uncached key, first request: key_revoked';

my $results = $stack->request_many(request => track($uncached_key),
    count => 20, parallel => 20, bodies => 1);
is scalar(grep { ($_->{json}{error}{code} // '') eq 'key_revoked' }
          @$results), 20,
    'uncached key, 20 at once: all key_revoked';


# Nothing after the revocations reached the stream: every accepted request
# of the first burst, and no more.

my ($length) = $stack->redis_cli('XLEN', 'hh:events') =~ /(\d+)/;
is $length, $accepted, 'stream holds only the events accepted before';


# A writer that starts now syncs the keys from Postgres and keeps them
# revoked.

my $log = $stack->folder . '/writer.log';
my $writer_log_offset = -s $log // 0;
$stack->start_writer;
$stack->wait_until(
    sub { read_from($log, $writer_log_offset) =~ /synced Redis/ },
    timeout => 30,
    what    => 'the writer to sync Redis',
);

for my $case (['cached key', $cached_key], ['uncached key', $uncached_key]) {
    my ($name, $key) = @$case;
    $res = $stack->request(%{ track($key) });
    is $res->{json}{error}{code}, 'key_revoked',
        "after a writer sync: $name still key_revoked";
}

$stack->check_error_log('revocation');

done_testing;


sub track ($key) {
    return {
        method  => 'POST',
        path    => '/v1/track',
        headers => { Authorization => "Bearer $key",
                     'Content-Type' => 'application/json' },
        body    => $body,
    };
}

sub log_size () {
    return -s $stack->folder . '/worker-pids.log' // 0;
}

# Returns a hash of worker pid to the number of answers with the status
# that the worker logged after the offset.
sub workers_since ($offset, $status) {
    my %count;
    for my $line (split /\n/, read_from($stack->folder . '/worker-pids.log',
                                        $offset))
    {
        my ($pid, $logged) = split ' ', $line;
        $count{$pid}++ if $logged == $status;
    }
    return %count;
}

sub read_from ($path, $offset) {
    open my $file, '<:raw', $path or return '';
    seek $file, $offset, 0;
    local $/;
    return <$file> // '';
}
