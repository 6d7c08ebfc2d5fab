#!/usr/bin/perl

# nginx -s reload (SIGHUP to the master) under load: wrk keeps sending
# track requests with a cached key while nginx reloads twice, first on new
# connections, then on keep-alive ones. No request fails, the key is not
# verified again, because the cache zone outlives the reload, and the
# counters in the same zone keep counting.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::TestUtil qw(start_wrk finish_wrk metrics growth);

my $LOAD_SECONDS = 8;
my $CONNECTIONS = 4;
my $DELAY_MS = 5;
my $RELOADS = 2;

my $stack = Humanhours::Stack->new;
$stack->start;

my $org = $stack->admin(qw(org create --name reload --plan enterprise));
chomp $org;
$stack->psql('UPDATE organisations SET rate_limit = 1000000 WHERE id = :org',
             { org => $org });
$stack->redis_cli('HSET', "hh:org:$org", 'rate_limit', '1000000');

my $key = $stack->admin('key', 'create', '--org', $org);
chomp $key;

$stack->wait_until(
    sub { $stack->redis_cli('EXISTS', 'hh:tasktypes') =~ /^1/ },
    timeout => 30,
    what    => 'the writer to copy the task types to Redis',
);

my $body = '{"agent_id":"reload-agent","task_type":"ticket_routing",'
         . '"outcome":"success"}';

my $res = $stack->request(method => 'POST', path => '/v1/track',
    headers => { Authorization => "Bearer $key",
                 'Content-Type' => 'application/json' },
    body => $body);
is $res->{status}, 201, 'key cached before the load: 201';


# Reloads while wrk runs, each request on a connection of its own
# ("Connection: close"), so that no connection sits idle when an old worker
# exits. The listening sockets belong to the master, so connections that
# the old workers did not accept are accepted by the new ones.

my $pid_before = $stack->pid('nginx');
my ($result, $growth) = load_with_reloads('new connections', 1);

is $stack->pid('nginx'), $pid_before, 'new connections: the same master runs';
cmp_ok $result->{requests}, '>', 0, 'new connections: requests were sent';
is $result->{errors}, 0, 'new connections: no socket errors';
is $result->{statuses}{201} // 0, $result->{requests},
    'new connections: every request answered 201'
    or diag explain $result->{statuses};
is $growth->{humanhours_argon2id_verifications_total}, 0,
    'new connections: no argon2id verification across the reloads';
is $growth->{humanhours_key_cache_misses_total}, 0,
    'new connections: no cache miss across the reloads';
cmp_ok $growth->{humanhours_key_cache_hits_total}, '>=', $result->{requests},
    'new connections: the hit counter kept counting';
cmp_ok $growth->{humanhours_events_accepted_total}, '>=',
    $result->{requests}, 'new connections: the accepted counter kept counting';


# The same over keep-alive connections. An exiting worker closes its idle
# keep-alive connections, and wrk counts each as a read error and
# reconnects. An HTTP/1.1 client must expect that close on an idle
# connection (RFC 9112, section 9.3.1), so at most one error per connection
# and reload is allowed.

($result, $growth) = load_with_reloads('keep-alive', 0);

cmp_ok $result->{requests}, '>', 0, 'keep-alive: requests were sent';
cmp_ok $result->{errors}, '<=', $CONNECTIONS * $RELOADS,
    'keep-alive: at most one closed idle connection per connection and'
    . ' reload';
is $result->{statuses}{201} // 0, $result->{requests},
    'keep-alive: every request answered 201'
    or diag explain $result->{statuses};
is $growth->{humanhours_argon2id_verifications_total}, 0,
    'keep-alive: no argon2id verification across the reloads';
is $growth->{humanhours_key_cache_misses_total}, 0,
    'keep-alive: no cache miss across the reloads';


# After the load, the same key is still a hit.

my $before = metrics($stack);
$res = $stack->request(method => 'POST', path => '/v1/track',
    headers => { Authorization => "Bearer $key",
                 'Content-Type' => 'application/json' },
    body => $body);
$growth = growth($before, metrics($stack));

is $res->{status}, 201, 'after the reloads: 201';
is $growth->{humanhours_key_cache_hits_total}, 1,
    'after the reloads: cache hit';

$stack->check_error_log('reload under load');

done_testing;


# Runs wrk for LOAD_SECONDS while nginx reloads RELOADS times, and returns
# wrk's summary and the growth of the module's counters over the run.
sub load_with_reloads ($name, $connection_close) {
    my $before = metrics($stack);
    (my $file_stem = $name) =~ s/\W+/-/g;
    my $load = start_wrk($stack, $file_stem,
        load_script($key, $connection_close),
        connections => $CONNECTIONS, seconds => $LOAD_SECONDS);

    my $reloaded = 0;
    for my $reload (1 .. $RELOADS) {
        sleep 2;
        if (eval { $stack->reload_nginx; 1 }) {
            $reloaded++;
        } else {
            diag "$name: reload $reload failed: $@";
        }
    }

    my $result = finish_wrk($load);
    my $growth = growth($before, metrics($stack));

    is $reloaded, $RELOADS, "$name: nginx reloaded $RELOADS times";
    diag sprintf '%s: %d requests during %d reloads, %d socket errors,'
        . ' p50 %.2f ms, p99 %.2f ms, max %.2f ms', $name,
        $result->{requests}, $RELOADS, $result->{errors},
        $result->{p50_us} / 1000, $result->{p99_us} / 1000,
        $result->{max_us} / 1000;

    return ($result, $growth);
}


# ---------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------

sub load_script ($api_key, $connection_close) {
    my $close = $connection_close
        ? qq{wrk.headers["Connection"] = "close"\n} : '';

    return <<"LUA";
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function delay()
  return $DELAY_MS
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
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
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("hh status %d %d\\n", status, count))
    end
  end
end

wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $api_key"
$close
LUA
}
