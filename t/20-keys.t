#!/usr/bin/perl

# Test keys (hh_test_) and key list. Events sent with a test key are stored
# with events.test = true and never count toward the monthly quota: a free
# organisation whose live key has used up its quota still accepts test
# events. key list shows prefix, mode, organisation, creation time, day of
# last use and revocation time of each key, and never a hash or a secret.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time);
use Humanhours::Stack;

my $QUOTA = 2;

my $stack = Humanhours::Stack->new;
$stack->start;

my $org = $stack->admin(qw(org create --name quota --plan free));
chomp $org;
my $other_org = $stack->admin(qw(org create --name other --plan pro));
chomp $other_org;

# A free organisation has a hard monthly cap, and a small one keeps the
# test short. Redis is written as well, because a writer copies the new value
# only on its next sync.
$stack->psql('UPDATE organisations SET monthly_events = :quota'
             . ' WHERE id = :org', { quota => $QUOTA, org => $org });
$stack->redis_cli('HSET', "hh:org:$org", 'monthly_events', $QUOTA);

my $live = create_key($org);
my $test = create_key($org, '--test');
my $other = create_key($other_org);

like $live, qr/^hh_live_[A-Za-z0-9]{8}_[A-Za-z0-9]{48}$/,
    'key create prints a live key';
like $test, qr/^hh_test_[A-Za-z0-9]{8}_[A-Za-z0-9]{48}$/,
    'key create --test prints a test key';

$stack->wait_until(
    sub { $stack->redis_cli('EXISTS', 'hh:tasktypes') =~ /^1/ },
    timeout => 30,
    what    => 'the writer to copy the task types to Redis',
);

my $month = utc_month();
my (%live_events, %test_events);


# Test events first: they must leave the whole quota to the live key.

for my $i (1 .. 3) {
    my $res = track($test, "test-before-$i");
    is $res->{status}, 201, "test key, event $i before the cap: 201";
    $test_events{ $res->{json}{event_id} } = 1 if $res->{status} == 201;
}

for my $i (1 .. $QUOTA) {
    my $res = track($live, "live-$i");
    is $res->{status}, 201, "live key, event $i of $QUOTA: 201";
    $live_events{ $res->{json}{event_id} } = 1 if $res->{status} == 201;
}

my $res = track($live, 'live-over');
is $res->{status}, 429, 'live key over the quota: 429';
is $res->{json}{error}{code}, 'quota_exceeded',
    'live key over the quota: quota_exceeded';
like $res->{headers}{'retry-after'} // '', qr/^\d+$/,
    'live key over the quota: Retry-After in seconds';


# Test events still go through once the live key is capped.

for my $i (1 .. 2) {
    $res = track($test, "test-after-$i");
    is $res->{status}, 201, "test key, event $i after the cap: 201";
    $test_events{ $res->{json}{event_id} } = 1 if $res->{status} == 201;
}

my %usage = split /\n/, $stack->redis_cli('HGETALL', "hh:usage:$org:$month");
is $usage{events}, $QUOTA, 'usage counts the live events only';
is $usage{test_events}, 5, 'usage counts the test events apart';


# In Postgres: test = true exactly for the test key's events.

my $total = keys(%live_events) + keys(%test_events);
$stack->wait_until(
    sub {
        my ($count) = $stack->psql(
            'SELECT count(*) FROM events WHERE org_id = :org', { org => $org });
        return $count->[0] == $total;
    },
    timeout => 30,
    what    => "the writer to store $total events",
);

my %stored = map { $_->[0] => $_->[1] } $stack->psql(
    'SELECT event_id, test FROM events WHERE org_id = :org', { org => $org });

is_deeply [sort grep { $stored{$_} eq 't' } keys %stored],
          [sort keys %test_events],
    'events of the test key are stored with test = true';
is_deeply [sort grep { $stored{$_} eq 'f' } keys %stored],
          [sort keys %live_events],
    'events of the live key are stored with test = false';


# key list.

# The writer moves last_used_on forward in the transaction that stores the
# events, so it is set by now for both keys of the organisation.
my $today = utc_day();
my $listing = $stack->admin('key', 'list', '--org', $org);
my ($header, @rows) = split /\n/, $listing;

is $header, join("\t", qw(prefix mode org created_at last_used_on
                          revoked_at)),
    'key list: header names the six columns';
is scalar @rows, 2, 'key list --org: one row per key of the organisation';

my %listed = map { my @f = split /\t/, $_, -1; $f[0] => \@f } @rows;
my $now = time;

for my $case (['live', $live], ['test', $test]) {
    my ($mode, $key) = @$case;
    my $row = $listed{ prefix_of($key) };

    ok $row, "key list: $mode key listed by its prefix" or next;
    is scalar @$row, 6, "key list: $mode key row has six fields";
    is $row->[1], $mode, "key list: $mode key mode";
    is $row->[2], $org, "key list: $mode key organisation";
    like $row->[3], qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
        "key list: $mode key creation time in UTC";
    cmp_ok abs(utc_seconds($row->[3]) - $now), '<', 300,
        "key list: $mode key created within five minutes";
    is $row->[4], $today, "key list: $mode key last used today";
    is $row->[5], '-', "key list: $mode key not revoked";
}

my $revoke_output = $stack->admin('key', 'revoke', prefix_of($test));
my ($revoked_at) = $revoke_output =~ /\t(\S+)$/m;

my %after = map { my @f = split /\t/, $_, -1; $f[0] => \@f }
            grep { !/^prefix\t/ }
            split /\n/, $stack->admin('key', 'list', '--org', $org);

is $after{ prefix_of($test) }[5], $revoked_at,
    'key list: revoked key shows the revocation time';
like $after{ prefix_of($test) }[5] // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    'key list: revocation time in UTC';
is $after{ prefix_of($live) }[5], '-', 'key list: live key still not revoked';

my $all = $stack->admin('key', 'list');
my %all_prefixes = map { (split /\t/)[0] => 1 } split /\n/, $all;
ok $all_prefixes{ prefix_of($other) } && $all_prefixes{ prefix_of($live) },
    'key list without --org: keys of every organisation';
my ($unused) = grep { (split /\t/)[0] eq prefix_of($other) } split /\n/, $all;
is((split /\t/, $unused, -1)[4], '-', 'key list: unused key has no day of'
   . ' last use');


# Never a hash, a secret or a raw key.

for my $listed_output (['key list --org', $listing], ['key list', $all]) {
    my ($command, $output) = @$listed_output;

    unlike $output, qr/\$argon2/, "$command: no argon2id hash";
    for my $case (['live', $live], ['test', $test], ['other', $other]) {
        my ($name, $key) = @$case;
        my $secret = substr $key, 17;
        unlike $output, qr/\Q$secret\E/, "$command: no secret of the $name key";
    }
}

$stack->check_error_log('test keys and key list');

done_testing;


sub create_key ($org_id, @options) {
    my $key = $stack->admin('key', 'create', '--org', $org_id, @options);
    chomp $key;
    return $key;
}

sub prefix_of ($key) {
    return substr $key, 8, 8;
}

sub track ($key, $agent_id) {
    return $stack->request(
        method  => 'POST',
        path    => '/v1/track',
        headers => { Authorization => "Bearer $key",
                     'Content-Type' => 'application/json' },
        json    => { agent_id => $agent_id, task_type => 'ticket_routing',
                     outcome => 'success' },
    );
}

sub utc_month () {
    my @t = gmtime;
    return sprintf '%04d-%02d', $t[5] + 1900, $t[4] + 1;
}

sub utc_day () {
    my @t = gmtime;
    return sprintf '%04d-%02d-%02d', $t[5] + 1900, $t[4] + 1, $t[3];
}

# Returns the Unix time of a "YYYY-MM-DDTHH:MM:SSZ" timestamp.
sub utc_seconds ($timestamp) {
    require Time::Local;
    my ($y, $mo, $d, $h, $mi, $s) = $timestamp =~ /(\d+)/g;
    return Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y);
}
