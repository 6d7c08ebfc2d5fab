#!/usr/bin/perl

# The shared key cache, read through the metrics location. 1000 requests
# with one key run argon2id once, whether they arrive one after another or
# at once from many connections, and a wrong secret among them does not
# split that one verification. A wrong secret for a cached prefix is
# rejected without displacing the good entry, and a wrong secret that just
# failed is rejected again without a second verification. A verification
# whose client left still fills the cache.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Humanhours::Stack;
use Humanhours::TestUtil qw(create_key metrics growth);

my $REQUESTS = 1000;

my $stack = Humanhours::Stack->new;
$stack->start;

my $org = $stack->admin(qw(org create --name cache --plan enterprise));
chomp $org;
lift_rate_limit($org);
wait_for_task_types();

my $body = '{"agent_id":"cache-agent","task_type":"email_classification",'
         . '"outcome":"success","agent_duration_seconds":3}';


# The metrics location.

my $res = $stack->request(method => 'GET', path => '/humanhours/metrics',
                          scheme => 'http');
is $res->{status}, 200, 'metrics: 200';
like $res->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
    'metrics: Prometheus text format';

for my $name (qw(humanhours_key_cache_hits_total
                 humanhours_key_cache_misses_total
                 humanhours_argon2id_verifications_total
                 humanhours_argon2id_failures_total
                 humanhours_key_throttled_total))
{
    like $res->{body}, qr/^# TYPE \Q$name\E counter\n\Q$name\E \d+$/m,
        "metrics: $name is a counter";
}


# One key, 1000 requests one after another.

my $sequential_key = create_key($stack, $org);
my $before = metrics($stack);

my $statuses = $stack->request_many(request => track($sequential_key),
                                    count => $REQUESTS, parallel => 1);
my $growth = growth($before, metrics($stack));

is count_of(201, $statuses), $REQUESTS,
    "one after another: $REQUESTS answers 201";
is $growth->{humanhours_argon2id_verifications_total}, 1,
    'one after another: one argon2id verification';
is $growth->{humanhours_key_cache_misses_total}, 1,
    'one after another: one cache miss';
is $growth->{humanhours_key_cache_hits_total}, $REQUESTS - 1,
    'one after another: the rest are cache hits';


# A new key, 1000 requests from 50 connections at once: the misses that
# arrive while the first one verifies wait for its result.

my $concurrent_key = create_key($stack, $org);
$before = metrics($stack);

$statuses = $stack->request_many(request => track($concurrent_key),
                                 count => $REQUESTS, parallel => 50);
$growth = growth($before, metrics($stack));

is count_of(201, $statuses), $REQUESTS, "at once: $REQUESTS answers 201";
is $growth->{humanhours_argon2id_verifications_total}, 1,
    'at once: one argon2id verification';
is $growth->{humanhours_key_cache_misses_total}, 1,
    'at once: one cache miss';
is $growth->{humanhours_key_cache_hits_total}, $REQUESTS - 1,
    'at once: the rest are cache hits';


# A new key sent 50 times at once together with one wrong secret for its
# prefix: the wrong secret is verified on its own, and the 50 misses of the
# good key still share one verification.

my $contested_key = create_key($stack, $org);
my @contested = (track(substr($contested_key, 0, 17) . ('V' x 48)),
                 (track($contested_key)) x 50);
$before = metrics($stack);

$statuses = $stack->request_many(requests => \@contested, parallel => 51);
$growth = growth($before, metrics($stack));

is $statuses->[0], 401, 'wrong secret among a burst: 401';
is count_of(201, $statuses), 50, 'wrong secret among a burst: good key 50'
    . ' answers 201';
is $growth->{humanhours_argon2id_failures_total}, 1,
    'wrong secret among a burst: one failed verification';
is $growth->{humanhours_argon2id_verifications_total}, 2,
    'wrong secret among a burst: one verification for the good key';


# A wrong secret for the cached prefix.

my $wrong_key = substr($concurrent_key, 0, 17) . ('W' x 48);
$before = metrics($stack);

$res = $stack->request(%{ track($wrong_key) });
$growth = growth($before, metrics($stack));

is $res->{status}, 401, 'wrong secret: 401';
is $res->{json}{error}{code}, 'invalid_api_key',
    'wrong secret: invalid_api_key';
is $growth->{humanhours_argon2id_verifications_total}, 1,
    'wrong secret: verified once';
is $growth->{humanhours_argon2id_failures_total}, 1,
    'wrong secret: counted as a failure';

$before = metrics($stack);
$res = $stack->request(%{ track($concurrent_key) });
$growth = growth($before, metrics($stack));

is $res->{status}, 201, 'good key after a wrong secret: 201';
is $growth->{humanhours_key_cache_hits_total}, 1,
    'good key after a wrong secret: cache hit';
is $growth->{humanhours_argon2id_verifications_total}, 0,
    'good key after a wrong secret: no verification';

# The default failure_ttl is 1 s, so a retry at once is answered from the
# cache's record of the failure.
$before = metrics($stack);
$res = $stack->request(%{ track($wrong_key) });
$growth = growth($before, metrics($stack));

is $res->{status}, 401, 'same wrong secret again: 401';
is $res->{json}{error}{code}, 'invalid_api_key',
    'same wrong secret again: invalid_api_key';
is $growth->{humanhours_argon2id_verifications_total}, 0,
    'same wrong secret again: no verification';

$before = metrics($stack);
$res = $stack->request(%{ track($concurrent_key) });
$growth = growth($before, metrics($stack));

is $res->{status}, 201, 'good key at the end: 201';
is $growth->{humanhours_argon2id_verifications_total}, 0,
    'good key at the end: no verification';


# Clients that leave while their key is being verified: the verification
# finishes without them and fills the cache, so the next request with
# each key is a hit.

my $LEAVING = 10;
my @leaving_keys = map { create_key($stack, $org) } 1 .. $LEAVING;
$before = metrics($stack);

my $left = $stack->request_many(requests => [map { track($_) }
                                              @leaving_keys],
                                parallel => $LEAVING, timeout => 0.05);

# Verifications end a moment after the clients left, so wait until the
# count stops growing.
my $verified = 0;
$stack->wait_until(
    sub {
        my $now = growth($before, metrics($stack))
                      ->{humanhours_argon2id_verifications_total};
        my $settled = $now > 0 && $now == $verified;
        $verified = $now;
        return $settled;
    },
    timeout  => 10,
    interval => 0.5,
    what     => 'the verifications of the leaving clients to end',
);

$statuses = $stack->request_many(requests => [map { track($_) }
                                              @leaving_keys],
                                 parallel => $LEAVING);
$growth = growth($before, metrics($stack));

diag count_of(0, $left) . " of $LEAVING clients left before an answer;"
    . " $verified keys verified";
cmp_ok $verified, '>', 0, 'clients that left: their keys were verified';
is count_of(201, $statuses), $LEAVING, 'clients that left: next requests 201';
is $growth->{humanhours_argon2id_verifications_total}, $LEAVING,
    'clients that left: each key verified once in all';


# The first key is still cached after all of that.

$before = metrics($stack);
$res = $stack->request(%{ track($sequential_key) });
$growth = growth($before, metrics($stack));

is $res->{status}, 201, 'first key again: 201';
is $growth->{humanhours_key_cache_hits_total}, 1, 'first key again: cache hit';

$stack->check_error_log('key cache');

done_testing;


# Returns request() arguments for one valid track call with the given key.
sub track ($key) {
    return {
        method  => 'POST',
        path    => '/v1/track',
        headers => { Authorization => "Bearer $key",
                     'Content-Type' => 'application/json' },
        body    => $body,
    };
}

sub count_of ($status, $statuses) {
    return scalar grep { $_ == $status } @$statuses;
}

# Raises the organisation's per-key rate limit, so that the load measures
# the cache and never sees 429. Redis is written as well, because a writer
# copies the new limit only on its next sync.
sub lift_rate_limit ($org_id) {
    $stack->psql('UPDATE organisations SET rate_limit = 1000000'
                 . ' WHERE id = :org', { org => $org_id });
    $stack->redis_cli('HSET', "hh:org:$org_id", 'rate_limit', '1000000');
}

# The writer copies the built-in task types to Redis when it starts.
sub wait_for_task_types () {
    $stack->wait_until(
        sub { $stack->redis_cli('EXISTS', 'hh:tasktypes') =~ /^1/ },
        timeout => 30,
        what    => 'the writer to copy the task types to Redis',
    );
}
