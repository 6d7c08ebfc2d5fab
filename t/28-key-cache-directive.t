#!/usr/bin/perl

# The humanhours_key_cache directive: zone=NAME:SIZE ttl=TIME
# verify_rate=N failure_ttl=TIME. Each parameter is checked with nginx -t,
# one table row per configuration. Then a stack runs with verify_rate=2 to
# show that the parameter, not the default of 5, bounds the verifications.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time);
use Humanhours::Stack;
use Humanhours::TestUtil qw(metrics);

my $stack = Humanhours::Stack->new;

# Each row: configuration, 1 when nginx must accept it, and for a rejected
# one a pattern of the [emerg] message.
my @cases = (
    ['zone=keys:10m', 1],
    ['zone=keys:32k', 1],
    ['zone=keys:10m ttl=60s', 1],
    ['zone=keys:10m ttl=300s', 1],
    ['zone=keys:10m ttl=500ms', 1],
    ['zone=keys:10m failure_ttl=5s', 1],
    ['zone=keys:10m verify_rate=5', 1],
    ['zone=keys:10m verify_rate=1000', 1],
    ['zone=keys:10m ttl=30s verify_rate=20 failure_ttl=2s', 1],
    ['verify_rate=5 failure_ttl=2s ttl=30s zone=keys:10m', 1],

    ['ttl=60s', 0, qr/must have the "zone" parameter/],
    ['zone=keys', 0, qr/invalid parameter "zone=keys"/],
    ['zone=keys:lots', 0, qr/invalid parameter "zone=keys:lots"/],
    ['zone=keys:16k', 0, qr/zone "zone=keys:16k" is too small/],
    ['zone=keys:10m ttl=0', 0, qr/"ttl=0" must be between 1ms and 300s/],
    ['zone=keys:10m ttl=301s', 0,
     qr/"ttl=301s" must be between 1ms and 300s/],
    ['zone=keys:10m ttl=soon', 0,
     qr/"ttl=soon" must be between 1ms and 300s/],
    ['zone=keys:10m failure_ttl=0', 0,
     qr/"failure_ttl=0" must be between 1ms and 300s/],
    ['zone=keys:10m verify_rate=0', 0,
     qr/invalid parameter "verify_rate=0"/],
    ['zone=keys:10m verify_rate=-1', 0,
     qr/invalid parameter "verify_rate=-1"/],
    ['zone=keys:10m verify_rate=many', 0,
     qr/invalid parameter "verify_rate=many"/],
    ['zone=keys:10m size=5', 0, qr/invalid parameter "size=5"/],
);

for my $case (@cases) {
    my ($config, $accepted, $message) = @$case;
    my ($ok, $output) = $stack->nginx_config_test(key_cache => $config);

    if ($accepted) {
        ok $ok, "accepted: $config" or diag $output;
    } else {
        ok !$ok, "rejected: $config";
        like $output, $message, "rejected with a message: $config";
    }
}

my ($ok, $output) = $stack->nginx_config_test(
    http_config => 'humanhours_key_cache zone=other:1m;');
ok !$ok, 'second humanhours_key_cache rejected';
like $output, qr/"humanhours_key_cache" directive is duplicate/,
    'second humanhours_key_cache: is duplicate';


# verify_rate=2 in effect: a burst of wrong secrets for one prefix runs
# argon2id at most twice a second.

my $VERIFY_RATE = 2;
my $BURST = 30;
my $cache = "zone=humanhours_keys:1m verify_rate=$VERIFY_RATE";

SKIP: {
    ($ok) = $stack->nginx_config_test(key_cache => $cache);
    skip "nginx rejects $cache, see the rows above", 4 unless $ok;

    $stack->start(qw(redis postgres));
    $stack->start_nginx(key_cache => $cache);

    my $org = $stack->admin(qw(org create --name directive --plan pro));
    chomp $org;
    my $key = $stack->admin('key', 'create', '--org', $org);
    chomp $key;

    my @requests = map {
        { method  => 'POST',
          path    => '/v1/track',
          headers => { Authorization => 'Bearer ' . substr($key, 0, 17)
                                        . sprintf('%048d', $_),
                       'Content-Type' => 'application/json' },
          body    => '{}' }
    } 1 .. $BURST;

    my $before = metrics($stack);
    my $started = time;
    my $statuses = $stack->request_many(requests => \@requests,
                                        parallel => 10);
    my $seconds = time - $started;
    my $after = metrics($stack);

    my $verifications = $after->{humanhours_argon2id_verifications_total}
                      - $before->{humanhours_argon2id_verifications_total};
    my $throttled = $after->{humanhours_key_throttled_total}
                  - $before->{humanhours_key_throttled_total};
    my $allowed = $VERIFY_RATE * (int($seconds) + 1);

    diag sprintf '%d wrong secrets in %.2f s: %d verified, %d throttled',
        $BURST, $seconds, $verifications, $throttled;

    is scalar(grep { $_ == 401 || $_ == 429 } @$statuses), $BURST,
        'verify_rate=2: every wrong secret 401, or 429 when throttled';
    cmp_ok $verifications, '<=', $allowed,
        "verify_rate=2: at most $allowed verifications";
    cmp_ok $verifications, '>', 0, 'verify_rate=2: some verified';
    cmp_ok $throttled, '>', 0, 'verify_rate=2: the rest throttled';
}

$stack->check_error_log('key cache directive');

done_testing;

