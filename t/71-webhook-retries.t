#!/usr/bin/perl

# Webhook retries against a scripted receiver: the schedule (with the delays
# shrunk by HH_WEBHOOK_TIME_SCALE), Retry-After, 410 Gone, a hanging
# receiver, a redirect, the per-endpoint cap, and the failing and disabled
# states after 5 and 20 failed deliveries in a row.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use List::Util qw(max);
use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;

require "$FindBin::Bin/79-webhook-receiver.t";
Humanhours::WebhookTest->import(qw(webhook_env pro_org add_endpoint
    track_event));

my $folder = File::Temp::tempdir('webhook-receiver-XXXXXXXX', TMPDIR => 1,
                                 CLEANUP => 1);
my $receiver = Humanhours::WebhookReceiver->new(
    folder    => $folder,
    responses => {
        '/flaky'       => [({ status => 500 }) x 3, { status => 200 }],
        '/gone'        => [{ status => 410 }],
        '/hang'        => [{ hang => 5 }, { status => 200 }],
        '/redirect'    => [{ status => 302,
                             headers => { Location => '/redirect-target' } },
                           { status => 200 }],
        '/busy'        => [{ status => 503, headers => { 'Retry-After' => 2 } },
                           { status => 200 }],
        '/slow'        => [{ status => 200, delay => 1 }],
        '/retry-cap'   => [{ status => 429,
                             headers => { 'Retry-After' => 100 } },
                           { status => 200 }],
        '/mostly-down' => [({ status => 500 }) x 25, { status => 200 }],
        '/down'        => [{ status => 500 }],
    },
);

my $stack = Humanhours::Stack->new;

# Phase one: delays of 0.3 s, 1.2 s, 6 s and 36 s instead of 30 s, 2 min,
# 10 min and 1 h; attempts time out after 1.5 s; 2 in flight per endpoint.
webhook_env($stack,
    HH_WEBHOOK_TIME_SCALE         => 0.01,
    HH_WEBHOOK_TIMEOUT_MS         => 1500,
    HH_WEBHOOK_CONNECT_TIMEOUT_MS => 1000,
    HH_WEBHOOK_PER_ENDPOINT       => 2);
$stack->start;

# One organisation per endpoint, so that each gets only its own deliveries.
my %endpoint;
my %key;
for my $path (qw(/flaky /gone /hang /redirect /busy /slow)) {
    (my $name = $path) =~ s{^/}{};
    my ($org, $key) = pro_org($stack, $name);
    ($endpoint{$path}) = add_endpoint($stack, $org, $receiver->url($path),
                                      'event.created');
    $key{$path} = $key;
}

# Returns the attempts of an endpoint's deliveries, oldest first.
sub attempts ($path) {
    return $stack->psql(
        'SELECT d.id, a.attempt, a.http_status, a.latency_ms, a.error,
                d.status
           FROM webhook_attempts a
           JOIN webhook_deliveries d ON d.id = a.delivery_id
          WHERE d.endpoint_id = :id
          ORDER BY d.id, a.attempt',
        { id => $endpoint{$path} });
}

sub wait_finished ($path, $count = 1, $timeout = 30) {
    $stack->wait_for_sql(
        "SELECT 1 WHERE (SELECT count(*) FROM webhook_deliveries
                          WHERE endpoint_id = :id AND status <> 'pending')
                        >= :count",
        vars => { id => $endpoint{$path}, count => $count },
        timeout => $timeout, interval => 0.2);
}

sub endpoint_row ($path) {
    my ($row) = $stack->psql(
        'SELECT status, failures, coalesce(disabled_reason, \'\')
           FROM webhook_endpoints WHERE id = :id',
        { id => $endpoint{$path} });
    return @$row;
}

for my $path (qw(/flaky /gone /hang /redirect /busy)) {
    is track_event($stack, $key{$path})->{status}, 201, "event for $path";
}

my $slow = $stack->request_many(
    request  => { headers => { Authorization => "Bearer $key{'/slow'}" },
                  json => { agent_id => 'a', task_type => 'email_classification',
                            outcome => 'success' } },
    count    => 6,
    parallel => 6);
is_deeply $slow, [(201) x 6], 'six events for /slow';


# Three failures, then a success: four attempts at the scheduled delays.

wait_finished('/flaky');
my @flaky = $receiver->requests('/flaky');
is scalar @flaky, 4, 'flaky receiver gets exactly four attempts';

my @gaps = map { $flaky[$_]{time} - $flaky[$_ - 1]{time} } 1 .. $#flaky;
my @delays = (0.3, 1.2, 6);
for my $i (0 .. $#delays) {
    cmp_ok $gaps[$i], '>=', $delays[$i] - 0.05,
        "attempt @{[$i + 2]} waits the scheduled $delays[$i] s";
    cmp_ok $gaps[$i], '<', $delays[$i] + 1,
        "attempt @{[$i + 2]} is not late";
}

my @ids = map { $_->{headers}{'webhook-id'} } @flaky;
is scalar(keys %{{ map { $_ => 1 } @ids }}), 1,
    'every attempt has the same webhook-id';
is scalar(keys %{{ map { $_->{body} => 1 } @flaky }}), 1,
    'every attempt has the same body';

my @rows = attempts('/flaky');
is_deeply [map { $_->[2] } @rows], [500, 500, 500, 200],
    'attempts recorded with their statuses';
is_deeply [map { $_->[4] } @rows], ['HTTP 500', 'HTTP 500', 'HTTP 500', ''],
    'attempts recorded with their errors';
ok !(grep { $_->[3] eq '' } @rows), 'attempts recorded with latency';
is $rows[-1][5], 'delivered', 'delivery delivered at last';
is_deeply [endpoint_row('/flaky')], ['active', 0, ''],
    'endpoint active, no failure counted';

my @listed = grep { /^msg_/ } split /\n/,
    $stack->admin('webhook', 'deliveries', '--endpoint', $endpoint{'/flaky'});
is scalar @listed, 4, 'deliveries lists the four attempts';
like $listed[0], qr/\tevent\.created\tdelivered\t1\t\S+\t500\t\d+\tHTTP 500\t-$/,
    'deliveries shows the first attempt';


# 410 Gone disables the endpoint.

wait_finished('/gone');
is scalar $receiver->requests('/gone'), 1, '410 gets no retry';
my ($status, $failures, $reason) = endpoint_row('/gone');
is $status, 'disabled', '410 disables the endpoint';
like $reason, qr/410 Gone/, 'reason names 410 Gone';
track_event($stack, $key{'/gone'});
sleep 1;
is scalar $receiver->requests('/gone'), 1, 'disabled endpoint gets nothing';
my ($queued) = $stack->psql(
    'SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = :id',
    { id => $endpoint{'/gone'} });
is $queued->[0], 1, 'no delivery queued for a disabled endpoint';


# A receiver that hangs times out.

wait_finished('/hang');
@rows = attempts('/hang');
is scalar @rows, 2, 'hanging receiver: a second attempt';
like $rows[0][4], qr/^timed out/, 'first attempt timed out';
is $rows[0][2], '', 'timed-out attempt has no status';
cmp_ok $rows[0][3], '>=', 1400, 'timed out after the 1.5 s timeout';
cmp_ok $rows[0][3], '<', 3000, 'and not much later';
is $rows[1][5], 'delivered', 'second attempt delivered';


# A redirect is a failure and is not followed.

wait_finished('/redirect');
@rows = attempts('/redirect');
is $rows[0][2], 302, 'redirect recorded with its status';
like $rows[0][4], qr/redirects are not followed/, 'redirect is a failure';
is scalar $receiver->requests('/redirect-target'), 0, 'redirect not followed';
is $rows[1][5], 'delivered', 'next attempt delivered';


# Retry-After of a 503 wins over a shorter scheduled delay.

wait_finished('/busy');
my @busy = $receiver->requests('/busy');
is scalar @busy, 2, '503 then 200: two attempts';
cmp_ok $busy[1]{time} - $busy[0]{time}, '>=', 1.95,
    'second attempt waited for Retry-After: 2';


# The per-endpoint cap: 2 attempts in flight at most.

wait_finished('/slow', 6);
my @slow = sort { $a->{time} <=> $b->{time} } $receiver->requests('/slow');
is scalar @slow, 6, 'slow receiver gets the six deliveries';
my $most = max map {
    my $t = $_->{time};
    scalar grep { $_->{time} <= $t && $_->{time} > $t - 0.95 } @slow;
} @slow;
is $most, 2, 'at most 2 attempts in flight to one endpoint';


# Phase two: delays of 30 ms, 120 ms, 0.6 s and 3.6 s.

$stack->stop_writer;
webhook_env($stack, HH_WEBHOOK_TIME_SCALE => 0.001);
$stack->start_writer;

for my $path (qw(/retry-cap /mostly-down /down)) {
    (my $name = $path) =~ s{^/}{};
    my ($org, $key) = pro_org($stack, $name);
    ($endpoint{$path}) = add_endpoint($stack, $org, $receiver->url($path),
                                      'event.created');
    $key{$path} = $key;
}

sub send_events ($path, $count) {
    my $statuses = $stack->request_many(
        request  => { headers => { Authorization => "Bearer $key{$path}" },
                      json => { agent_id => 'a', outcome => 'success',
                                task_type => 'email_classification' } },
        count    => $count,
        parallel => 5);
    is scalar(grep { $_ == 201 } @$statuses), $count,
        "$count events for $path";
}


# Retry-After longer than the schedule's longest delay is cut to it.

send_events('/retry-cap', 1);
wait_finished('/retry-cap', 1, 20);
my @capped = $receiver->requests('/retry-cap');
my $waited = $capped[1]{time} - $capped[0]{time};
cmp_ok $waited, '>=', 3.55, 'Retry-After: 100 waits the longest delay';
cmp_ok $waited, '<', 5, 'but no longer';


# 5 failed deliveries in a row mark the endpoint failing, and a delivered
# one makes it active again.

send_events('/mostly-down', 5);
wait_finished('/mostly-down', 5, 30);
is scalar $receiver->requests('/mostly-down'), 25,
    'five deliveries, five attempts each';
is_deeply [(endpoint_row('/mostly-down'))[0, 1]], ['failing', 5],
    'endpoint failing after 5 failed deliveries';

send_events('/mostly-down', 1);
wait_finished('/mostly-down', 6, 30);
is_deeply [(endpoint_row('/mostly-down'))[0, 1]], ['active', 0],
    'a delivered one makes it active again';


# 20 failed deliveries in a row disable it.

send_events('/down', 20);
wait_finished('/down', 20, 60);
($status, $failures, $reason) = endpoint_row('/down');
is $status, 'disabled', 'endpoint disabled after 20 failed deliveries';
is $failures, 20, 'failures counted';
like $reason, qr/20 deliveries in a row failed/, 'reason says why';
my ($states) = $stack->psql(
    "SELECT string_agg(DISTINCT status, ',') FROM webhook_deliveries
      WHERE endpoint_id = :id", { id => $endpoint{'/down'} });
is $states->[0], 'failed', 'all 20 deliveries failed';

my $writer_log = Humanhours::Stack::_slurp($stack->folder . '/writer.log');
like $writer_log, qr/failed at attempt 5 of 5: HTTP 500; no attempt follows, and the endpoint is disabled/,
    'writer logs the disabling';

$stack->check_error_log;
done_testing();
