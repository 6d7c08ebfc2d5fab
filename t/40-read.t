#!/usr/bin/perl

# The read endpoints: agents, task types and usage, answered from Redis
# state that the writer keeps, agreeing with SQL over the same events, one
# organisation never seeing another's data, and the n8n credential check.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(time sleep);
use Humanhours::Stack;

my $stack = Humanhours::Stack->new;
$stack->start;

my (%org, %key);
for my $name (qw(alpha beta)) {
    $org{$name} = $stack->admin('org', 'create', '--name', $name,
                                '--plan', 'pro');
    chomp $org{$name};
    $key{$name} = $stack->admin('key', 'create', '--org', $org{$name});
    chomp $key{$name};
}
my $test_key = $stack->admin('key', 'create', '--org', $org{alpha}, '--test');
chomp $test_key;

sub days_ago ($days) {
    return strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(time - $days * 86400 - 60));
}

sub track ($key, %fields) {
    my $res = $stack->request(
        method  => 'POST',
        path    => '/v1/track',
        headers => { Authorization => "Bearer $key",
                     'Content-Type' => 'application/json' },
        json    => { task_type => 'email_classification',
                     outcome => 'success', %fields });
    is $res->{status}, 201, "track $fields{agent_id}: 201";
    return $res->{json};
}

sub get ($key, $path) {
    return $stack->request(method => 'GET', path => $path,
                           headers => { Authorization => "Bearer $key" });
}


# Events across agents and days; "dormant" only older than 30 days.

my @events;
for my $spec (['classifier', 0, 4], ['classifier', 3, 4], ['router', 1, 10],
              ['router', 29, 1], ['summarizer', 2, 7], ['dormant', 40, 5],
              ['tie-a', 0, 6], ['tie-b', 0, 6])
{
    my ($agent, $days, $minutes) = @$spec;
    push @events, track($key{alpha}, agent_id => $agent,
                        occurred_at => days_ago($days),
                        human_baseline_minutes => $minutes,
                        agent_duration_seconds => 30);
}
push @events, track($key{beta}, agent_id => 'beta-only');
push @events, track($test_key, agent_id => 'test-agent');

$stack->wait_for_sql('SELECT count(*) FROM events HAVING count(*) = :n',
                     vars => { n => scalar @events });


# Agents agree with SQL once the writer has updated Redis.

my @expected = $stack->psql(<<'SQL', { org => $org{alpha} });
SELECT agent_id, count(*) FILTER (WHERE recent),
       round(coalesce(sum(hours_saved) FILTER (WHERE recent), 0)::numeric, 3),
       round(coalesce(sum(cost_saved) FILTER (WHERE recent), 0)::numeric, 2)
  FROM (SELECT agent_id, hours_saved, cost_saved,
               occurred_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                              AT TIME ZONE 'UTC' - interval '29 days' AS recent
          FROM events
         WHERE org_id = :'org' AND NOT test) e
 GROUP BY agent_id
 ORDER BY 3 DESC, 1
SQL

my $agents;
my $deadline = time + 20;
while (time < $deadline) {
    $agents = get($key{alpha}, '/v1/agents')->{json};
    last if $agents && @{ $agents->{agents} } == @expected
        && $agents->{agents}[0]{events} == $expected[0][1];
    sleep 0.25;
}

is scalar @{ $agents->{agents} }, scalar @expected, 'agents: one row per agent';
# Redis and SQL add the doubles in different orders, so a sum on a rounding
# tie may land one unit apart in the last decimal.
is_deeply [map { [$_->{agent_id}, $_->{events}] } @{ $agents->{agents} }],
    [map { [$_->[0], $_->[1]] } @expected],
    'agents: events of 30 days equal SQL, in order of hours saved';
for my $i (0 .. $#expected) {
    my ($got, $want) = ($agents->{agents}[$i], $expected[$i]);
    cmp_ok abs($got->{hours_saved} - $want->[2]), '<=', 0.0011,
        "agents: hours saved of $want->[0] equal SQL";
    cmp_ok abs($got->{money_saved} - $want->[3]), '<=', 0.011,
        "agents: money saved of $want->[0] equal SQL";
}
is $agents->{currency}, 'EUR', 'agents: currency';
ok !(grep { $_->{agent_id} eq 'beta-only' } @{ $agents->{agents} }),
    'agents: no agent of another organisation';

my ($dormant) = grep { $_->{agent_id} eq 'dormant' } @{ $agents->{agents} };
is $dormant->{events}, 0, 'agents: agent older than 30 days listed with zero';
like $dormant->{first_seen}, qr/^\d{4}-\d\d-\d\dT/, 'agents: first_seen';


# Pagination: pages of two, no repeats, no gaps.

my (@paged, $cursor, $pages);
while ($pages++ < 10) {
    my $path = '/v1/agents?limit=2' . ($cursor ? "&cursor=$cursor" : '');
    my $page = get($key{alpha}, $path)->{json};
    cmp_ok scalar @{ $page->{agents} }, '<=', 2, "page $pages: at most two";
    push @paged, map { $_->{agent_id} } @{ $page->{agents} };
    $cursor = $page->{next_cursor} or last;
}
is_deeply \@paged, [map { $_->{agent_id} } @{ $agents->{agents} }],
    'pages: the whole list once, in order';

my $bad = get($key{alpha}, '/v1/agents?limit=501');
is $bad->{status}, 422, 'limit 501: 422';
is $bad->{json}{error}{field}, 'limit', 'limit 501: field';


# The other organisation.

my $beta = get($key{beta}, '/api/v1/agents')->{json};
is_deeply [map { $_->{agent_id} } @{ $beta->{agents} }], ['beta-only'],
    'beta sees only its own agent';


# Usage.

my $usage = get($key{alpha}, '/v1/reports/usage');
is $usage->{status}, 200, 'usage: 200';
is $usage->{headers}{'cache-control'}, 'no-store', 'usage: no-store';
my ($live, $test) = @{ ($stack->psql(<<'SQL', { org => $org{alpha} }))[0] };
SELECT count(*) FILTER (WHERE NOT test), count(*) FILTER (WHERE test)
  FROM events
 WHERE org_id = :'org'
   AND received_at >= date_trunc('month', now() AT TIME ZONE 'UTC')
                      AT TIME ZONE 'UTC'
SQL
is $usage->{json}{events_this_month}, $live, 'usage: events equal SQL';
is $usage->{json}{test_events_this_month}, $test, 'usage: test events equal SQL';
is $usage->{json}{plan}, 'pro', 'usage: plan';
is $usage->{json}{events_included}, 10000, 'usage: events included';
is $usage->{json}{rate_limit_per_second}, 200, 'usage: rate limit';
is get($key{beta}, '/v1/reports/usage')->{json}{events_this_month}, 1,
    'usage: beta counts its own event';


# Task types.

my $types = get($key{alpha}, '/v1/task-types')->{json}{task_types};
is scalar @$types, 50, 'task types: the 50 built-in ones';
my ($email) = grep { $_->{key} eq 'email_classification' } @$types;
is $email->{category}, 'support', 'task types: category';
is $email->{baseline_minutes}, 4, 'task types: baseline';
is $email->{kind}, 'builtin', 'task types: kind';
ok length $email->{name}, 'task types: display name';

# A custom type and an override of alpha, which beta must not see.
$stack->admin('tasktype', 'create', '--org', $org{alpha}, 'contract_redline',
              '--name', 'Contract redline', '--category', 'legal',
              '--minutes', '45');
$stack->admin('tasktype', 'override', '--org', $org{alpha}, 'ticket_routing',
              '7.5');

my ($custom, $override);
$deadline = time + 20;
while (time < $deadline) {
    $types = get($key{alpha}, '/v1/task-types')->{json}{task_types};
    ($custom) = grep { $_->{key} eq 'contract_redline' } @$types;
    ($override) = grep { $_->{key} eq 'ticket_routing' } @$types;
    last if $custom && $custom->{category} eq 'legal'
        && $override->{kind} eq 'override';
    sleep 0.25;
}
is $custom->{kind}, 'custom', 'task types: custom type listed';
is $custom->{name}, 'Contract redline', 'task types: custom display name';
is $custom->{baseline_minutes}, 45, 'task types: custom baseline';
is $override->{kind}, 'override', 'task types: override listed';
is $override->{baseline_minutes}, 7.5, 'task types: override baseline';
ok defined $override->{original_baseline_minutes},
    'task types: original baseline beside the override';

my $beta_types = get($key{beta}, '/v1/task-types')->{json}{task_types};
ok !(grep { $_->{key} eq 'contract_redline' } @$beta_types),
    'task types: beta does not see alpha\'s custom type';
my ($beta_routing) = grep { $_->{key} eq 'ticket_routing' } @$beta_types;
is $beta_routing->{kind}, 'builtin', 'task types: beta does not see the override';

my $support = get($key{alpha}, '/v1/task-types?category=support')->{json};
ok @{ $support->{task_types} } > 0, 'category filter: some';
ok !(grep { $_->{category} ne 'support' } @{ $support->{task_types} }),
    'category filter: only support';


# Methods, and the n8n credential check.

my $head = $stack->request(method => 'HEAD', path => '/v1/agents',
                           headers => { Authorization => "Bearer $key{alpha}" });
is $head->{status}, 200, 'HEAD: 200';

my $post = $stack->request(method => 'POST', path => '/v1/agents',
                           headers => { Authorization => "Bearer $key{alpha}",
                                        'Content-Type' => 'application/json' },
                           body => '{}');
is $post->{status}, 405, 'POST: 405';
is $post->{headers}{allow}, 'GET, HEAD', 'POST: Allow';

my $n8n = get($key{beta}, '/api/v1/agents');
is $n8n->{status}, 200, 'n8n check: 200';
is ref $n8n->{json}, 'HASH', 'n8n check: JSON';

$stack->admin('key', 'revoke', substr($key{beta}, 8, 8));
$n8n = get($key{beta}, '/api/v1/agents');
is $n8n->{status}, 401, 'n8n check, revoked: 401';
is $n8n->{json}{error}{code}, 'key_revoked', 'n8n check, revoked: key_revoked';

$stack->check_error_log('read endpoints');

done_testing;
