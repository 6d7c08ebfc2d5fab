#!/usr/bin/perl

# The plan limits at the edge: the per-key rate limit (429 rate_limited),
# the hard monthly cap of the free plan (429 quota_exceeded until the next
# month), paid plans past their included events, test keys that are never
# capped, the plan defaults that the admin command writes to Redis, and an
# accepted request that costs one Redis round trip.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX qw(floor);
use Test::More;
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm);
use Humanhours::Stack;

my $stack = Humanhours::Stack->new;
$stack->start;

my $body = '{"agent_id":"limiter","task_type":"ticket_routing",'
         . '"outcome":"success"}';


# The plan defaults in hh:org:<id>, and settings that replace them.

my @plans = (
    [ 'free', { rate_limit => 10, monthly_events => 500, hard_cap => 1 } ],
    [ 'pro', { rate_limit => 200, monthly_events => 10000, hard_cap => 0 } ],
    [ 'agency', { rate_limit => 500, monthly_events => 25000, hard_cap => 0 } ],
    [ 'enterprise', { rate_limit => 1000, monthly_events => undef,
                      hard_cap => 0 } ],
);

my $plans_org = create_org('plans', 'free');

for my $plan (@plans) {
    my ($name, $expected) = @$plan;

    $stack->admin('org', 'set', $plans_org, '--plan', $name);
    my $hash = org_hash($plans_org);

    is $hash->{plan}, $name, "$name defaults: plan";
    is $hash->{$_}, $expected->{$_}, "$name defaults: $_"
        for sort keys %$expected;
}

my $settings = $stack->admin('org', 'set', $plans_org, '--rate-limit', '7',
                             '--monthly-events', '70');
like $settings, qr/^$plans_org\tenterprise\tEUR\t45\t7\t70\tno$/m,
    'org set prints the settings in force';
is org_hash($plans_org)->{rate_limit}, 7, 'own rate limit in Redis';
is org_hash($plans_org)->{monthly_events}, 70, 'own monthly events in Redis';
is org_hash($plans_org)->{hard_cap}, 0, 'enterprise is never a hard cap';

$stack->admin('org', 'set', $plans_org, '--plan', 'pro');
is org_hash($plans_org)->{rate_limit}, 7, 'own rate limit kept over a plan change';

$stack->admin('org', 'set', $plans_org, '--rate-limit', 'default',
              '--monthly-events', 'default');
is org_hash($plans_org)->{rate_limit}, 200, 'rate limit back to the plan default';
is org_hash($plans_org)->{monthly_events}, 10000,
    'monthly events back to the plan default';

my @bad_settings = (
    [ 'rate limit 0', '--rate-limit', '0' ],
    [ 'rate limit text', '--rate-limit', 'fast' ],
    [ 'negative monthly events', '--monthly-events', '-1' ],
    [ 'monthly events above integer', '--monthly-events', '2147483648' ],
    [ 'unknown plan', '--plan', 'gold' ],
);

for my $case (@bad_settings) {
    my ($name, @args) = @$case;
    my $result = $stack->admin_result('org', 'set', $plans_org, @args);
    is $result->{exit_code}, 1, "org set with $name: exit status 1";
    like $result->{stderr}, qr/^humanhours-admin: org set: /,
        "org set with $name: message";
}


# Each change is in Redis when org set returns, even while the writer
# syncs: every org set notifies the writer, whose sync of the state before
# the next change must not overwrite that change.

my @stale;
for my $events (1 .. 30) {
    $stack->admin('org', 'set', $plans_org, '--monthly-events', $events);
    my ($stored) = $stack->redis_cli('HGET', "hh:org:$plans_org",
                                     'monthly_events') =~ /(\d+)/;
    push @stale, "$events: $stored" if $stored != $events;
}
is_deeply \@stale, [], 'org set: 30 changes in a row, each in Redis at once';
is $stack->running('writer'), 1, 'org set: the writer ran all along';


# Rate limit: a burst gets at most the limit per second and key, the rest
# 429 rate_limited with Retry-After; another key of the organisation keeps
# its own count.

my $rate_org = create_org('rate', 'pro');
my $rate_key = create_key($rate_org);
my $other_key = create_key($rate_org);
$stack->admin('org', 'set', $rate_org, '--rate-limit', '2');

wait_for_next_second();
my $started = time;
my $burst = $stack->request_many(request => track_request($rate_key),
                                 count => 20, parallel => 20, bodies => 1);
my $seconds = floor(time) - floor($started) + 1;

my %burst = count_answers($burst);
cmp_ok $burst{201} // 0, '>=', 1, 'rate limit: some of the burst accepted';
cmp_ok $burst{201} // 0, '<=', 2 * $seconds,
    "rate limit: at most 2 a second accepted over $seconds s";
is(($burst{201} // 0) + ($burst{'429 rate_limited'} // 0), 20,
   'rate limit: the rest refused with rate_limited');

my $other = $stack->request(%{ track_request($other_key) });
is $other->{status}, 201, 'rate limit: another key of the organisation is not limited';

my $limited = first_refusal($rate_key, 'rate_limited', 10);
ok $limited, 'rate limit: a refusal to inspect';
is $limited->{json}{error}{code}, 'rate_limited', 'rate limit: code';
ok !exists $limited->{json}{error}{field}, 'rate limit: no field';
is $limited->{headers}{'retry-after'}, 1, 'rate limit: Retry-After 1';

wait_for_next_second();
is $stack->request(%{ track_request($rate_key) })->{status}, 201,
    'rate limit: the next second accepts again';

my $rate_test_key = create_key($rate_org, '--test');
my $test_limited = first_refusal($rate_test_key, 'rate_limited', 10);
ok $test_limited, 'rate limit: a test key is limited as well';

# The plan's default for a free organisation is 10 a second.
my $free_rate_org = create_org('free-rate', 'free');
my $free_rate_key = create_key($free_rate_org);

wait_for_next_second();
$started = time;
my $free_burst = $stack->request_many(request => track_request($free_rate_key),
                                      count => 40, parallel => 40);
$seconds = floor(time) - floor($started) + 1;

my $free_accepted = grep { $_ == 201 } @$free_burst;
my $free_refused = grep { $_ == 429 } @$free_burst;
cmp_ok $free_accepted, '<=', 10 * $seconds,
    "free default: at most 10 a second accepted over $seconds s";
is $free_accepted + $free_refused, 40, 'free default: the rest refused with 429';


# Monthly cap of the free plan.

my $quota_org = create_org('quota', 'free');
my $quota_key = create_key($quota_org);
my $quota_test_key = create_key($quota_org, '--test');
$stack->admin('org', 'set', $quota_org, '--monthly-events', '3',
              '--rate-limit', '1000');

my @quota = map { $stack->request(%{ track_request($quota_key) }) } 1 .. 3;
is_deeply [ map { $_->{status} } @quota ], [201, 201, 201],
    'quota: the first 3 events of the month accepted';

my $capped = $stack->request(%{ track_request($quota_key) });
my $expected_wait = seconds_to_next_month();
is $capped->{status}, 429, 'quota: the 4th event refused with 429';
is $capped->{json}{error}{code}, 'quota_exceeded', 'quota: code';
ok !exists $capped->{json}{error}{field}, 'quota: no field';
like $capped->{headers}{'retry-after'} // '', qr/^\d+$/, 'quota: Retry-After in seconds';
cmp_ok abs(($capped->{headers}{'retry-after'} // 0) - $expected_wait), '<=', 5,
    "quota: Retry-After is the time to the next month UTC ($expected_wait s)";

my @tested = map { $stack->request(%{ track_request($quota_test_key) }) } 1 .. 2;
is_deeply [ map { $_->{status} } @tested ], [201, 201],
    'quota: test key accepted past the cap';

is usage($quota_org)->{events}, 3, 'quota: refusals and test events not counted';
is usage($quota_org)->{test_events}, 2, 'quota: test events counted apart';

# A refusal consumes nothing, so one more allowed event is exactly one.
$stack->admin('org', 'set', $quota_org, '--monthly-events', '4');
is $stack->request(%{ track_request($quota_key) })->{status}, 201,
    'quota: a raised cap applies to the next request';
is $stack->request(%{ track_request($quota_key) })->{status}, 429,
    'quota: and only up to the new cap';

for my $response (@tested) {
    my ($row) = $stack->wait_for_sql(
        'SELECT test, key_id FROM events WHERE event_id = :\'id\'',
        vars => { id => $response->{json}{event_id} });
    is $row->[0], 't', 'quota: test key event flagged test in Postgres';
}

my ($live) = $stack->wait_for_sql(
    'SELECT test FROM events WHERE event_id = :\'id\'',
    vars => { id => $quota[0]{json}{event_id} });
is $live->[0], 'f', 'quota: live key event not flagged test';

# A free organisation with no events a month at all still takes test events.
my $zero_org = create_org('zero', 'free');
my $zero_key = create_key($zero_org);
my $zero_test_key = create_key($zero_org, '--test');
$stack->admin('org', 'set', $zero_org, '--monthly-events', '0');
is $stack->request(%{ track_request($zero_key) })->{status}, 429,
    'quota 0: live key refused';
is $stack->request(%{ track_request($zero_test_key) })->{status}, 201,
    'quota 0: test key accepted';


# Paid plans keep accepting past their included events.

for my $plan (qw(pro agency)) {
    my $paid_org = create_org("paid-$plan", $plan);
    my $paid_key = create_key($paid_org);
    $stack->admin('org', 'set', $paid_org, '--monthly-events', '2');

    my @paid = map { $stack->request(%{ track_request($paid_key) }) } 1 .. 4;
    is_deeply [ map { $_->{status} } @paid ], [201, 201, 201, 201],
        "$plan: events past the included 2 accepted";
    is usage($paid_org)->{events}, 4, "$plan: all 4 counted";
}


# One round trip: with the key in the cache, an accepted request sends
# exactly one EVALSHA to Redis and no other command. The writer is
# stopped, because it sends commands of its own.

my $trip_org = create_org('round-trip', 'pro');
my $trip_key = create_key($trip_org);
my $requests = 20;

$stack->request(%{ track_request($trip_key) }) for 1 .. 4;
$stack->stop_writer;

my $length_before = xlen();
my $stats_before = command_stats();
my $monitor = Monitor->start($stack);

my @trip = map { $stack->request(%{ track_request($trip_key) }) } 1 .. $requests;

my @commands = $monitor->stop;
my $stats_after = command_stats();

is scalar(grep { $_->{status} == 201 } @trip), $requests,
    "round trip: $requests requests accepted";

my @from_clients = grep { $_->{client} ne 'lua' } @commands;
is scalar @from_clients, $requests,
    "round trip: $requests commands from clients";
is scalar(grep { lc $_->{name} eq 'evalsha' } @from_clients), $requests,
    'round trip: every one of them is EVALSHA';

is $stats_after->{evalsha} - ($stats_before->{evalsha} // 0), $requests,
    "round trip: INFO commandstats counts $requests EVALSHA calls";

# Redis counts the commands that the script runs in commandstats too, so
# every other command must have been run by the script, except those that
# this test sent itself.
my %by_script;
$by_script{ lc $_->{name} }++ for grep { $_->{client} eq 'lua' } @commands;

my %by_test = map { $_ => 1 } qw(evalsha info echo monitor);

for my $name (sort keys %$stats_after) {
    next if $by_test{$name};

    my $delta = $stats_after->{$name} - ($stats_before->{$name} // 0);
    next unless $delta;

    is $delta, $by_script{$name} // 0,
        "round trip: every $name call came from the track script";
}

is xlen() - $length_before, $requests,
    "round trip: $requests stream entries added";

$stack->start_writer;
my ($stored) = $stack->wait_for_sql(
    'SELECT count(*) FROM events WHERE org_id = :\'org\' HAVING count(*) = :n',
    vars => { org => $trip_org, n => $requests + 4 });
is $stored->[0], $requests + 4, 'round trip: all events stored once the writer runs';

$stack->check_error_log('limits');

done_testing;


sub create_org ($name, $plan) {
    my ($id) = split /\n/, $stack->admin('org', 'create', '--name', $name,
                                         '--plan', $plan);
    return $id;
}

sub create_key ($org, @options) {
    my ($key) = split /\n/, $stack->admin('key', 'create', '--org', $org,
                                          @options);
    return $key;
}

sub track_request ($key) {
    return { headers => { Authorization => "Bearer $key",
                          'Content-Type' => 'application/json' },
             body => $body };
}

sub org_hash ($org) {
    my %hash = split /\n/, $stack->redis_cli('HGETALL', "hh:org:$org");
    return \%hash;
}

sub usage ($org) {
    my @now = gmtime;
    my $month = sprintf '%04d-%02d', $now[5] + 1900, $now[4] + 1;
    my %hash = split /\n/, $stack->redis_cli('HGETALL', "hh:usage:$org:$month");
    return \%hash;
}

sub xlen () {
    my ($length) = $stack->redis_cli('XLEN', 'hh:events') =~ /(\d+)/;
    return $length;
}

# Returns command name to calls, from INFO commandstats.
sub command_stats () {
    my %calls;
    for my $line (split /\n/, $stack->redis_cli('INFO', 'commandstats')) {
        my ($name, $count) = $line =~ /^cmdstat_([^:]+):calls=(\d+)/ or next;
        $calls{$name} = $count;
    }
    return \%calls;
}

# Counts the answers of request_many(bodies => 1) by status, and by status
# and error code for refusals.
sub count_answers ($answers) {
    my %count;
    for my $answer (@$answers) {
        my $code = $answer->{json}{error}{code};
        $count{ $answer->{status} . (defined $code ? " $code" : '') }++;
    }
    return %count;
}

# Sends requests until one is refused with the code, and returns it.
sub first_refusal ($key, $code, $attempts) {
    for (1 .. $attempts) {
        my $res = $stack->request(%{ track_request($key) });
        return $res if ($res->{json}{error}{code} // '') eq $code;
    }
    return undef;
}

# Sleeps until just after the start of a second, so that a burst starts
# with a fresh per-second count.
sub wait_for_next_second () {
    sleep 1.02 - (time - floor(time));
}

sub seconds_to_next_month () {
    my @now = gmtime;
    my ($year, $month) = ($now[5] + 1900, $now[4] + 1);
    ($year, $month) = $month == 12 ? ($year + 1, 1) : ($year, $month + 1);
    return timegm(0, 0, 0, 1, $month - 1, $year) - time;
}


# redis-cli MONITOR in a child process: each command that Redis runs, with
# the client that sent it, "lua" for the commands of a script.
package Monitor;

use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

sub start ($class, $stack) {
    my $file = $stack->folder . '/monitor.out';
    my $pid = fork // die "fork for redis-cli MONITOR failed: $!";

    if ($pid == 0) {
        open STDOUT, '>', $file or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec { 'redis-cli' } 'redis-cli', '-h', '127.0.0.1',
            '-p', $stack->port('redis'), 'MONITOR'
            or POSIX::_exit(127);
    }

    my $self = bless { stack => $stack, pid => $pid, file => $file }, $class;
    $self->_wait_for_marker('hh-monitor-start');
    return $self;
}

# Stops the monitor and returns the commands seen between the markers, as
# { client, name } hashes.
sub stop ($self) {
    $self->_wait_for_marker('hh-monitor-stop');

    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;

    my @commands;
    my $seen_start = 0;

    open my $in, '<', $self->{file} or die "cannot read $self->{file}: $!";
    while (my $line = <$in>) {
        my ($client, $name) = $line =~ /^\d+\.\d+ \[\d+ (\S+)\] "([^"]+)"/
            or next;

        if ($line =~ /"hh-monitor-(start|stop)"/) {
            last if $1 eq 'stop' && $seen_start;
            $seen_start = 1 if $1 eq 'start';
            next;
        }

        push @commands, { client => $client, name => $name } if $seen_start;
    }
    close $in;

    return @commands;
}

# Sends ECHO marker until the monitor has written it, which shows that the
# monitor sees every later command.
sub _wait_for_marker ($self, $marker) {
    my $deadline = time + 10;

    while (time < $deadline) {
        $self->{stack}->redis_cli('ECHO', $marker);

        open my $in, '<', $self->{file} or die "cannot read $self->{file}: $!";
        local $/;
        my $seen = <$in> // '';
        close $in;

        return if index($seen, "\"$marker\"") >= 0;
        sleep 0.05;
    }

    die "redis-cli MONITOR did not show $marker within 10 s\n";
}
