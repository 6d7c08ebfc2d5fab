#!/usr/bin/perl

# Expiry and eviction in the key cache. A verified key is verified again
# once its ttl has passed. A wrong secret is answered from the cache for
# failure_ttl, then verified again. When the zone is full, the least
# recently used entries go first: a key in use stays cached while an idle
# one is evicted and verified again on its next request.
#
# The zone is filled with wrong secrets for made-up key prefixes whose
# records this file writes into Redis, so that each one costs a single
# failed verification and no admin command.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::TestUtil qw(create_key prefix_of metrics growth);

# The TTL leaves the failure_ttl checks below, about 2 s with a loaded
# machine's argon2id, well inside it.
my $TTL_CACHE = 'zone=humanhours_keys:1m ttl=5s failure_ttl=1s';

# 32 KiB is the smallest zone the directive accepts (8 pages of 4 KiB),
# and it holds about 80 entries.
my $SMALL_CACHE = 'zone=humanhours_keys:32k ttl=300s';
my $FILL_BATCH = 8;
my $MAX_FILL_BATCHES = 40;
my $MAX_FILL_SECONDS = 30;

my @ALPHABET = ('A' .. 'Z', 'a' .. 'z', '0' .. '9');

my $stack = Humanhours::Stack->new(key_cache => $TTL_CACHE);
$stack->start;

my $org = $stack->admin(qw(org create --name expiry --plan enterprise));
chomp $org;
$stack->psql('UPDATE organisations SET rate_limit = 1000000 WHERE id = :org',
             { org => $org });
$stack->redis_cli('HSET', "hh:org:$org", 'rate_limit', '1000000');

$stack->wait_until(
    sub { $stack->redis_cli('EXISTS', 'hh:tasktypes') =~ /^1/ },
    timeout => 30,
    what    => 'the writer to copy the task types to Redis',
);

# The made-up key records below are not in Postgres, and a writer's sync
# must not race with them.
$stack->stop_writer;

my $body = '{"agent_id":"expiry-agent","task_type":"ticket_routing",'
         . '"outcome":"success"}';


# ttl: a key is verified again after 5 s.

my $key = create_key($stack, $org);

my ($res, $growth) = track_measured($key);
is $res->{status}, 201, 'ttl: first request 201';
is $growth->{humanhours_argon2id_verifications_total}, 1,
    'ttl: first request verified';

($res, $growth) = track_measured($key);
is $growth->{humanhours_key_cache_hits_total}, 1,
    'ttl: second request a cache hit';

sleep 5.5;
($res, $growth) = track_measured($key);
is $res->{status}, 201, 'ttl: after 5.5 s 201';
is $growth->{humanhours_argon2id_verifications_total}, 1,
    'ttl: after 5.5 s verified again';
is $growth->{humanhours_key_throttled_total}, 0,
    'ttl: the known key is not throttled';


# failure_ttl: a wrong secret is remembered for 1 s.

my $wrong = substr($key, 0, 17) . ('Q' x 48);

($res, $growth) = track_measured($wrong);
is $res->{json}{error}{code}, 'invalid_api_key', 'failure_ttl: wrong secret'
    . ' rejected';
is $growth->{humanhours_argon2id_failures_total}, 1,
    'failure_ttl: wrong secret verified and failed';

($res, $growth) = track_measured($wrong);
is $res->{json}{error}{code}, 'invalid_api_key',
    'failure_ttl: at once again rejected';
is $growth->{humanhours_argon2id_verifications_total}, 0,
    'failure_ttl: at once again not verified';

sleep 1.5;
($res, $growth) = track_measured($wrong);
is $res->{json}{error}{code}, 'invalid_api_key',
    'failure_ttl: after 1.5 s rejected';
is $growth->{humanhours_argon2id_failures_total}, 1,
    'failure_ttl: after 1.5 s verified again';

($res, $growth) = track_measured($key);
is $res->{status}, 201, 'failure_ttl: good key still 201';
is $growth->{humanhours_argon2id_verifications_total}, 0,
    'failure_ttl: good key still cached';


# LRU eviction in a zone of 32 KiB. A new zone size needs a new zone, so
# nginx restarts rather than reloads.

$stack->stop_nginx;
$stack->start_nginx(key_cache => $SMALL_CACHE);

my $idle_key = create_key($stack, $org);
my $busy_key = create_key($stack, $org);
my ($hash) = $stack->redis_cli('HGET', 'hh:key:' . prefix_of($idle_key),
                               'hash') =~ /(\S+)/;

for my $warm ($idle_key, $busy_key) {
    ($res) = track_measured($warm);
    is $res->{status}, 201, 'LRU: key verified before the fill';
}

my $start_metrics = metrics($stack);
my $started = time;
my ($batches, $fillers, $busy_hits) = (0, 0, 0);
my $evictions = 0;

while ($evictions == 0 && $batches < $MAX_FILL_BATCHES
       && time - $started < $MAX_FILL_SECONDS)
{
    my @requests = map { track_request(made_up_key($fillers + $_)) }
                   1 .. $FILL_BATCH;
    $fillers += $FILL_BATCH;
    $batches++;
    $stack->request_many(requests => \@requests, parallel => $FILL_BATCH);

    # The busy key is used after every batch, so it stays at the head.
    my ($busy, $busy_growth) = track_measured($busy_key);
    $busy_hits += $busy_growth->{humanhours_key_cache_hits_total};

    $evictions = metrics($stack)->{humanhours_key_cache_evictions_total}
               - $start_metrics->{humanhours_key_cache_evictions_total};
}

diag "LRU: $fillers made-up prefixes filled the zone,"
    . " $evictions entries evicted";

cmp_ok $evictions, '>', 0, 'LRU: the full zone evicted entries';
is $busy_hits, $batches, 'LRU: busy key a cache hit after every batch';

($res, $growth) = track_measured($busy_key);
is $res->{status}, 201, 'LRU: busy key 201 after the eviction';
is $growth->{humanhours_argon2id_verifications_total}, 0,
    'LRU: busy key not verified again';

($res, $growth) = track_measured($idle_key);
is $res->{status}, 201, 'LRU: idle key 201 after the eviction';
is $growth->{humanhours_key_cache_misses_total}, 1,
    'LRU: idle key was evicted (cache miss)';
is $growth->{humanhours_argon2id_verifications_total}, 1,
    'LRU: idle key verified again';

unlike $stack->error_log, qr/zone is full even after eviction/,
    'LRU: eviction always made room';
unlike $stack->error_log, qr/\[crit\].*no memory in humanhours key cache/,
    'LRU: eviction logs no [crit] line';

$stack->check_error_log('key cache expiry');

done_testing;


# Writes a key record for a made-up prefix into Redis, with the argon2id
# hash of another key, and returns a key with that prefix, which fails
# verification.
sub made_up_key ($n) {
    my $prefix = sprintf 'F%07d', $n;
    $stack->redis_cli('HSET', "hh:key:$prefix", 'id', 900000 + $n,
                      'org', $org, 'mode', 'live', 'hash', $hash,
                      'revoked', '0');
    my $secret = join '', map { $ALPHABET[rand @ALPHABET] } 1 .. 48;
    return "hh_live_${prefix}_$secret";
}

sub track_request ($api_key) {
    return {
        method  => 'POST',
        path    => '/v1/track',
        headers => { Authorization => "Bearer $api_key",
                     'Content-Type' => 'application/json' },
        body    => $body,
    };
}

# Sends one track request and returns the response and the growth of the
# module's counters around it.
sub track_measured ($api_key) {
    my $before = metrics($stack);
    my $response = $stack->request(%{ track_request($api_key) });
    return ($response, growth($before, metrics($stack)));
}
