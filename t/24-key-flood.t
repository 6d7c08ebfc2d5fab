#!/usr/bin/perl

# A flood of wrong secrets for a valid key prefix, about 200 a second for
# 10 s, while valid requests with the cached key run: the valid requests all
# succeed (their p50 and p99 latency are printed), and argon2id runs at most
# verify_rate times a second for the prefix. Then a flood against a key that
# is not cached yet, which must not make the valid key look invalid.
#
# Both loads are wrk processes with a Lua script: one connection sends its
# next request a fixed delay after the last answer, so the rates are
# approximate and the measured ones are printed.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::TestUtil qw(create_key prefix_of start_wrk finish_wrk
                            metrics growth);

my $VERIFY_RATE = 5;              # verifications per second per prefix
my $FLOOD_SECONDS = 10;
my $FLOOD_CONNECTIONS = 8;
my $FLOOD_DELAY_MS = 30;          # 8 connections: at most 267 a second
my $VALID_CONNECTIONS = 2;
my $VALID_DELAY_MS = 10;          # 2 connections: at most 200 a second
my $COLD_FLOOD_SECONDS = 4;

# A throttle window starts at the first attempt after the last window
# ended, so S seconds span at most int(S) + 1 windows. The slack of two
# verifications is an estimate for the coarse time nginx caches per event
# loop iteration.
my $VERIFY_SLACK = 2;

my $KEY_CACHE = "zone=humanhours_keys:10m ttl=60s verify_rate=$VERIFY_RATE";

my $stack = Humanhours::Stack->new;

my ($accepted, $output) = $stack->nginx_config_test(key_cache => $KEY_CACHE);
ok $accepted, "humanhours_key_cache accepts verify_rate=$VERIFY_RATE"
    or diag $output;

# Without the parameter the module's default applies, which is the same 5.
$stack->start(qw(redis postgres));
$stack->start_nginx($accepted ? (key_cache => $KEY_CACHE) : ());
$stack->start_writer;

my $org = $stack->admin(qw(org create --name flood --plan enterprise));
chomp $org;
$stack->psql('UPDATE organisations SET rate_limit = 1000000 WHERE id = :org',
             { org => $org });
$stack->redis_cli('HSET', "hh:org:$org", 'rate_limit', '1000000');

my $key = create_key($stack, $org);
my $cold_key = create_key($stack, $org);

$stack->wait_until(
    sub { $stack->redis_cli('EXISTS', 'hh:tasktypes') =~ /^1/ },
    timeout => 30,
    what    => 'the writer to copy the task types to Redis',
);

my $body = '{"agent_id":"flood-agent","task_type":"ticket_routing",'
         . '"outcome":"success"}';

my $res = $stack->request(method => 'POST', path => '/v1/track',
    headers => { Authorization => "Bearer $key",
                 'Content-Type' => 'application/json' },
    body => $body);
is $res->{status}, 201, 'valid key before the flood: 201';


# The flood and the valid requests at the same time.

my $before = metrics($stack);
my $started = time;

my $flood = start_wrk($stack, 'flood', flood_script(prefix_of($key)),
    connections => $FLOOD_CONNECTIONS, seconds => $FLOOD_SECONDS);
my $valid = start_wrk($stack, 'valid', valid_script($key),
    connections => $VALID_CONNECTIONS, seconds => $FLOOD_SECONDS);

my $flood_result = finish_wrk($flood);
my $valid_result = finish_wrk($valid);
my $seconds = time - $started;
my $growth = growth($before, metrics($stack));

my $verifications = $growth->{humanhours_argon2id_verifications_total};
my $allowed = $VERIFY_RATE * (int($seconds) + 1) + $VERIFY_SLACK;

diag sprintf 'flood: %d wrong secrets in %.1f s (%.0f a second),'
    . ' %d throttled', $flood_result->{requests}, $seconds,
    $flood_result->{requests} / $seconds,
    $growth->{humanhours_key_throttled_total};
diag sprintf 'valid requests during the flood: %d, p50 %.2f ms,'
    . ' p99 %.2f ms, max %.2f ms', $valid_result->{requests},
    $valid_result->{p50_us} / 1000, $valid_result->{p99_us} / 1000,
    $valid_result->{max_us} / 1000;
diag "argon2id verifications during the flood: $verifications"
    . " (at most $allowed allowed)";

cmp_ok $flood_result->{requests} / $seconds, '>=', 10 * $VERIFY_RATE,
    'flood: at least ten times verify_rate a second';
is(($flood_result->{statuses}{401} // 0) + ($flood_result->{statuses}{429} // 0),
   $flood_result->{requests},
   'flood: every wrong secret answered 401 or, when throttled, 429');
cmp_ok $flood_result->{invalid_api_key}, '>', 0,
    'flood: verified wrong secrets answered invalid_api_key';
is $flood_result->{errors}, 0, 'flood: no socket errors';

cmp_ok $valid_result->{requests}, '>', 0, 'valid: requests were sent';
is $valid_result->{statuses}{201} // 0, $valid_result->{requests},
    'valid: every request answered 201';
is $valid_result->{errors}, 0, 'valid: no socket errors';

cmp_ok $verifications, '<=', $allowed,
    'argon2id verifications within verify_rate a second';
cmp_ok $verifications, '>', 0, 'wrong secrets were verified at all';
is $growth->{humanhours_argon2id_failures_total}, $verifications,
    'every verification was of a wrong secret';
cmp_ok $growth->{humanhours_key_throttled_total}, '>', 0,
    'throttled attempts are counted';


# A flood against a prefix whose valid key is not cached yet. A valid key
# may have to wait, but must never be told that it is invalid.

my $cold_flood = start_wrk($stack, 'cold-flood',
    flood_script(prefix_of($cold_key)),
    connections => $FLOOD_CONNECTIONS, seconds => $COLD_FLOOD_SECONDS);
sleep 1;

my @answers;
for my $attempt (1 .. 5) {
    push @answers, $stack->request(method => 'POST', path => '/v1/track',
        headers => { Authorization => "Bearer $cold_key",
                     'Content-Type' => 'application/json' },
        body => $body);
    sleep 0.3;
}
finish_wrk($cold_flood);

my @codes = map { $_->{json}{error}{code} // 'none' } @answers;
my @unretryable = grep {
    $_->{status} != 201 && !defined $_->{headers}{'retry-after'}
} @answers;

is scalar(grep { $_ eq 'invalid_api_key' } @codes), 0,
    'uncached valid key during a flood: never invalid_api_key'
    or diag 'error codes of the attempts: ' . join ', ', @codes;
is scalar @unretryable, 0,
    'uncached valid key during a flood: 201, or an error with Retry-After'
    or diag 'statuses of the attempts: '
            . join ', ', map { $_->{status} } @answers;

$stack->check_error_log('key flood');

done_testing;


# ---------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------

# Lua shared by both scripts: a per-connection delay, a count of statuses
# and of invalid_api_key bodies in each thread, and a summary that done()
# prints as "hh NAME VALUE" lines for finish_wrk().
sub lua_common ($delay_ms) {
    return <<"LUA";
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  statuses = {}
  invalid_api_key = 0
  math.randomseed(os.time() * 1000 + id)
end

function delay()
  return $delay_ms
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if body and string.find(body, '"code":"invalid_api_key"', 1, true) then
    invalid_api_key = invalid_api_key + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("hh requests %d\\n", summary.requests))
  io.write(string.format("hh errors %d\\n",
                         e.connect + e.read + e.write + e.timeout))
  io.write(string.format("hh p50_us %d\\nhh p99_us %d\\nhh max_us %d\\n",
                         latency:percentile(50), latency:percentile(99),
                         latency.max))
  for _, thread in ipairs(threads) do
    io.write(string.format("hh invalid_api_key %d\\n",
                           thread:get("invalid_api_key")))
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("hh status %d %d\\n", status, count))
    end
  end
end
LUA
}

sub valid_script ($api_key) {
    return lua_common($VALID_DELAY_MS) . <<"LUA";

wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $api_key"
LUA
}

# Each request carries the prefix with a new random secret.
sub flood_script ($prefix) {
    return lua_common($FLOOD_DELAY_MS) . <<"LUA";

local alphabet =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

function request()
  local secret = {}
  for i = 1, 48 do
    local n = math.random(1, #alphabet)
    secret[i] = alphabet:sub(n, n)
  end
  return wrk.format("POST", "/v1/track", {
    ["Authorization"] = "Bearer hh_live_${prefix}_" .. table.concat(secret),
    ["Content-Type"] = "application/json",
  }, '$body')
end
LUA
}
