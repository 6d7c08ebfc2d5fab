#!/usr/bin/perl

# What the service resolves for an event: the baseline and its source, the
# hourly rate, the currency and the agent cost, each from the admin
# command's settings. Values are frozen on the stored event, audit samples
# are kept only above the free plan, and excerpts are cut to 2000
# characters.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Encode qw(decode_utf8 encode_utf8);
use JSON::PP;
use Test::More;
use Humanhours::Stack;

my $stack = Humanhours::Stack->new;
$stack->start;

my $JSON = JSON::PP->new->utf8->canonical;


# Organisations, each with one live API key.

my %org;
my %key;

for my $setup (['pro', '--plan', 'pro'],
               ['usd', '--plan', 'agency', '--currency', 'USD',
                '--hourly-rate', '80'],
               ['free', '--plan', 'free'],
               ['downgraded', '--plan', 'pro'])
{
    my ($name, @options) = @$setup;
    $org{$name} = first_line($stack->admin('org', 'create', '--name', $name,
                                           @options));
    $key{$name} = first_line($stack->admin('key', 'create', '--org',
                                           $org{$name}));
}

$stack->admin('tasktype', 'override', '--org', $org{pro},
              'email_classification', '7');
$stack->admin('tasktype', 'create', '--org', $org{pro}, 'contract_redline',
              '--name', 'Contract redline', '--category', 'legal',
              '--minutes', '33.5');
$stack->admin('tasktype', 'create', '--org', $org{pro}, 'old_report',
              '--name', 'Old report', '--category', 'ops', '--minutes', '5');
$stack->admin('tasktype', 'archive', '--org', $org{pro}, 'old_report');
$stack->admin('rate', 'set', '--org', $org{pro}, 'priced-agent', '62.50');

# Overrides and custom types stay stored after a downgrade, unused.
$stack->admin('tasktype', 'override', '--org', $org{downgraded},
              'ticket_routing', '10');
$stack->admin('tasktype', 'create', '--org', $org{downgraded}, 'team_digest',
              '--name', 'Team digest', '--category', 'content',
              '--minutes', '20');
$stack->admin('org', 'set', $org{downgraded}, '--plan', 'free');

load_prices("openai/gpt-4o-mini,0.15,0.60\n"
            . "anthropic/claude-opus-4.8,15,75\n");


# The admin command's failures for what the plan or the catalogue forbids.

my @admin_cases = (
    [ 'override on free', 'feature_locked',
      'tasktype', 'override', '--org', $org{free}, 'ticket_routing', '9' ],
    [ 'custom type on free', 'feature_locked',
      'tasktype', 'create', '--org', $org{free}, 'my_type', '--name', 'x',
      '--category', 'ops', '--minutes', '3' ],
    [ 'override of a custom key', 'not a built-in task type',
      'tasktype', 'override', '--org', $org{pro}, 'contract_redline', '9' ],
    [ 'custom type with a built-in key', 'is a built-in task type',
      'tasktype', 'create', '--org', $org{pro}, 'ticket_routing',
      '--name', 'x', '--category', 'ops', '--minutes', '3' ],
    [ 'custom type defined twice', 'already has a custom task type',
      'tasktype', 'create', '--org', $org{pro}, 'contract_redline',
      '--name', 'x', '--category', 'legal', '--minutes', '3' ],
    [ 'zero minutes', 'above 0',
      'tasktype', 'override', '--org', $org{pro}, 'ticket_routing', '0' ],
    [ 'unknown organisation', 'not found',
      'rate', 'set', '--org', '999999', 'agent', '50' ],
);

for my $case (@admin_cases) {
    my ($name, $message, @args) = @$case;
    my $result = $stack->admin_result(@args);

    is $result->{exit_code}, 1, "admin $name: exit status 1";
    like $result->{stderr}, qr/\Q$message\E/, "admin $name: message";
}


# Resolution, one case a row: the request, then the expected response
# fields and stored columns, or the expected error.

my @cases = (
    { name => 'baseline from the request', org => 'pro',
      body => { task_type => 'email_classification',
                human_baseline_minutes => 12, agent_duration_seconds => 60 },
      answer => { resolved_baseline_minutes => 12,
                  resolved_baseline_source => 'request',
                  hours_saved => 0.183, cost_saved => 8.25 },
      row => { baseline_minutes => 12, baseline_source => 'request' } },

    { name => 'baseline from an override', org => 'pro',
      body => { task_type => 'email_classification' },
      answer => { resolved_baseline_minutes => 7,
                  resolved_baseline_source => 'override',
                  hours_saved => 0.117, cost_saved => 5.25 },
      row => { baseline_minutes => 7, baseline_source => 'override' } },

    { name => 'baseline built in', org => 'pro',
      body => { task_type => 'ticket_routing' },
      answer => { resolved_baseline_minutes => 3,
                  resolved_baseline_source => 'builtin',
                  hours_saved => 0.05, cost_saved => 2.25 },
      row => { baseline_minutes => 3, baseline_source => 'builtin' } },

    { name => 'baseline of a custom type', org => 'pro',
      body => { task_type => 'contract_redline' },
      answer => { resolved_baseline_minutes => 33.5,
                  resolved_baseline_source => 'custom' },
      row => { baseline_minutes => 33.5, baseline_source => 'custom' } },

    { name => 'archived custom type', org => 'pro',
      body => { task_type => 'old_report' },
      error => [422, 'unknown_task_type', 'task_type'] },

    { name => 'undefined task type', org => 'pro',
      body => { task_type => 'no_such_task' },
      error => [422, 'unknown_task_type', 'task_type'] },

    { name => 'override of another organisation', org => 'free',
      body => { task_type => 'email_classification' },
      answer => { resolved_baseline_minutes => 4,
                  resolved_baseline_source => 'builtin' },
      row => { baseline_minutes => 4, baseline_source => 'builtin' } },

    { name => 'override after a downgrade', org => 'downgraded',
      body => { task_type => 'ticket_routing' },
      answer => { resolved_baseline_minutes => 3,
                  resolved_baseline_source => 'builtin' },
      row => { baseline_source => 'builtin' } },

    { name => 'custom type after a downgrade', org => 'downgraded',
      body => { task_type => 'team_digest' },
      error => [422, 'unknown_task_type', 'task_type'] },

    { name => 'hourly rate of the agent', org => 'pro',
      body => { agent_id => 'priced-agent' },
      answer => { resolved_hourly_rate => 62.5, currency => 'EUR' },
      row => { hourly_rate => 62.5, currency => 'EUR' } },

    { name => 'hourly rate of the organisation', org => 'usd',
      body => { agent_id => 'priced-agent' },
      answer => { resolved_hourly_rate => 80, currency => 'USD',
                  cost_saved => 4 },
      row => { hourly_rate => 80, currency => 'USD' } },

    { name => 'default hourly rate', org => 'pro',
      body => { agent_id => 'other-agent' },
      answer => { resolved_hourly_rate => 45, currency => 'EUR' },
      row => { hourly_rate => 45, currency => 'EUR' } },

    { name => 'agent cost provided', org => 'pro',
      body => { agent_cost => 0.25, model => 'openai/gpt-4o-mini',
                tokens_in => 1000000, tokens_out => 1000000 },
      answer => { agent_cost => 0.25, resolved_cost_source => 'provided',
                  net_saved => 2 },
      row => { agent_cost => 0.25, agent_cost_provided => 0.25,
               cost_source => 'provided' } },

    { name => 'agent cost computed', org => 'pro',
      body => { model => 'anthropic/claude-opus-4.8', tokens_in => 20000,
                tokens_out => 4000 },
      answer => { agent_cost => 0.6, resolved_cost_source => 'computed',
                  net_saved => 1.65 },
      row => { agent_cost => 0.6, agent_cost_provided => undef,
               cost_source => 'computed', input_price => 15,
               output_price => 75, tokens_in => 20000, tokens_out => 4000 } },

    { name => 'model without price', org => 'pro',
      body => { model => 'local/llama', tokens_in => 100, tokens_out => 100 },
      answer => { agent_cost => undef, resolved_cost_source => 'none',
                  net_saved => 2.25 },
      row => { agent_cost => undef, cost_source => 'none',
               input_price => undef, output_price => undef } },

    { name => 'priced model without tokens', org => 'pro',
      body => { model => 'openai/gpt-4o-mini' },
      answer => { agent_cost => undef, resolved_cost_source => 'none' },
      row => { agent_cost => undef, cost_source => 'none' } },

    { name => 'priced model with tokens_in only', org => 'pro',
      body => { model => 'openai/gpt-4o-mini', tokens_in => 1000000 },
      answer => { agent_cost => undef, resolved_cost_source => 'none' },
      row => { agent_cost => undef, cost_source => 'none' } },

    { name => 'tokens without model', org => 'pro',
      body => { tokens_in => 100, tokens_out => 100 },
      answer => { agent_cost => undef, resolved_cost_source => 'none' },
      row => { agent_cost => undef, cost_source => 'none', model => undef } },

    { name => 'duration above baseline', org => 'pro',
      body => { agent_duration_seconds => 600 },
      answer => { hours_saved => 0, cost_saved => 0, net_saved => 0 },
      row => { hours_saved => 0, agent_duration_seconds => 600 } },
);

for my $case (@cases) {
    my $res = track($case->{org}, $case->{body});
    check_case($case, $res);
}


# Frozen values: each change reaches the edge at once, without a writer,
# and the rows stored before it keep their values.

my %before = (
    rate     => track('pro', { agent_id => 'priced-agent' }),
    price    => track('pro', { model => 'anthropic/claude-opus-4.8',
                               tokens_in => 20000, tokens_out => 4000 }),
    currency => track('usd', {}),
    override => track('pro', { task_type => 'email_classification' }),
);
is $_->{status}, 201, 'event before the changes: 201' for values %before;

$stack->stop_writer;

$stack->admin('rate', 'set', '--org', $org{pro}, 'priced-agent', '100');
load_prices("anthropic/claude-opus-4.8,30,150\n");
$stack->admin('org', 'set', $org{usd}, '--currency', 'GBP',
              '--hourly-rate', '70');
$stack->admin('tasktype', 'override', '--org', $org{pro},
              'email_classification', '9');

my %after = (
    rate     => track('pro', { agent_id => 'priced-agent' }),
    price    => track('pro', { model => 'anthropic/claude-opus-4.8',
                               tokens_in => 20000, tokens_out => 4000 }),
    currency => track('usd', {}),
    override => track('pro', { task_type => 'email_classification' }),
);

is $after{rate}{json}{resolved_hourly_rate}, 100,
    'new agent rate answered without a writer';
is $after{price}{json}{agent_cost}, 1.2,
    'new price book answered without a writer';
is $after{currency}{json}{currency}, 'GBP',
    'new currency answered without a writer';
is $after{currency}{json}{resolved_hourly_rate}, 70,
    'new organisation rate answered without a writer';
is $after{override}{json}{resolved_baseline_minutes}, 9,
    'new override answered without a writer';

$stack->start_writer;

my %frozen = (
    rate     => [ 'hourly_rate', 62.5, 100 ],
    price    => [ 'agent_cost', 0.6, 1.2 ],
    currency => [ 'currency', 'USD', 'GBP' ],
    override => [ 'baseline_minutes', 7, 9 ],
);

for my $name (sort keys %frozen) {
    my ($column, $old, $new) = @{ $frozen{$name} };

    is_value(stored_row($before{$name})->{$column}, $old,
             "frozen $name: the earlier row keeps $column $old");
    is_value(stored_row($after{$name})->{$column}, $new,
             "frozen $name: the later row has $column $new");
}

is stored_row($before{price})->{input_price}, 15,
    'frozen price: the earlier row keeps its input price';
is stored_row($before{currency})->{hourly_rate}, 80,
    'frozen currency: the earlier row keeps its hourly rate';


# Each change is in Redis when the admin command returns, even while the
# writer syncs after the previous change's notification.

my @stale;
for my $step (1 .. 15) {
    load_prices("openai/gpt-4o-mini,$step,$step\n");
    my $price = $stack->redis_cli('HGET', 'hh:prices', 'openai/gpt-4o-mini');
    push @stale, "prices $step: $price" if $price ne "$step $step\n";

    $stack->admin('rate', 'set', '--org', $org{pro}, 'busy-agent', $step);
    my $rate = $stack->redis_cli('HGET', "hh:org:$org{pro}:rates", 'busy-agent');
    push @stale, "rate $step: $rate" if $rate ne "$step\n";
}
is_deeply \@stale, [], '15 price books and rates in a row, each in Redis at once';


# Audit samples: dropped for free organisations without an error, kept for
# Pro with the unknown fields dropped.

my $sample = { input_excerpt => 'Please classify this email.',
               output_excerpt => 'billing', model => 'openai/gpt-4o-mini',
               tokens_in => 12, tokens_out => 1, reviewer => 'dropped' };

my $free_sample = track('free', { audit_sample => $sample });
is $free_sample->{status}, 201, 'audit sample on free: 201';
ok !defined stored_row($free_sample)->{audit_sample},
    'audit sample on free: not stored';

my $pro_sample = track('pro', { audit_sample => $sample });
is $pro_sample->{status}, 201, 'audit sample on pro: 201';
is_deeply stored_row($pro_sample)->{audit_sample},
    { input_excerpt => 'Please classify this email.',
      output_excerpt => 'billing', model => 'openai/gpt-4o-mini',
      tokens_in => 12, tokens_out => 1 },
    'audit sample on pro: stored without unknown fields';


# Excerpts are cut after 2000 characters, whatever their bytes.

my $mixed = 'a' . ("\x{e9}" x 999) . ("\x{20ac}" x 600) . ("\x{1F600}" x 600);
my $exact = ("\x{1F600}" x 1000) . ("\x{e9}" x 1000);
my $short = "\x{20ac}" x 1999;

my @excerpt_cases = (
    [ '2200 characters of 1 to 4 bytes', $mixed, substr($mixed, 0, 2000) ],
    [ 'exactly 2000 characters', $exact, $exact ],
    [ '1999 characters', $short, $short ],
);

for my $case (@excerpt_cases) {
    my ($name, $text, $expected) = @$case;

    my $res = track('pro', { audit_sample => { input_excerpt => $text,
                                               output_excerpt => $text } });
    is $res->{status}, 201, "excerpt of $name: 201";

    my $stored = stored_row($res)->{audit_sample};
    is length($stored->{input_excerpt}), length($expected),
        "excerpt of $name: input length in characters";
    ok $stored->{input_excerpt} eq $expected,
        "excerpt of $name: input is the leading characters";
    ok $stored->{output_excerpt} eq $expected,
        "excerpt of $name: output is the leading characters";
}

# A character written as a surrogate-pair escape counts once.
my $escaped = $stack->request(
    headers => auth('pro'),
    body    => '{"agent_id":"a","task_type":"ticket_routing",'
             . '"outcome":"success","audit_sample":{"input_excerpt":"'
             . ('\ud83d\ude00' x 2001) . '"}}');
is $escaped->{status}, 201, 'escaped excerpt: 201';
ok stored_row($escaped)->{audit_sample}{input_excerpt} eq "\x{1F600}" x 2000,
    'escaped excerpt: cut after 2000 characters';


# Rounding of an exact tie in money: 3 minutes at 62.50 is 3.125.

my $tie = track('pro', { agent_id => 'tie-agent', task_type => 'ticket_routing' },
                rate => '62.50');
is $tie->{status}, 201, 'money tie: 201';
is stored_row($tie)->{cost_saved}, 3.125, 'money tie: stored unrounded';

like $tie->{body}, qr/"cost_saved":3\.13,/,
    'money tie: rounded half away from zero';

# A token count sent alone is still stored with the event.

my $one_count = track('pro', { model => 'openai/gpt-4o-mini',
                               tokens_in => 1234 });
is $one_count->{status}, 201, 'tokens_in alone: 201';

is stored_row($one_count)->{tokens_in}, 1234, 'tokens_in alone: stored';


# An accepted event must be storable: derived values that overflow a
# double cannot be stored, so such a request is refused.

my ($huge) = split /\n/, $stack->admin('org', 'create', '--name', 'huge',
                                      '--plan', 'pro', '--hourly-rate',
                                      '999999999999999');
my ($huge_key) = split /\n/, $stack->admin('key', 'create', '--org', $huge);
my $overflow = $stack->request(
    headers => { Authorization => "Bearer $huge_key",
                 'Content-Type' => 'application/json' },
    body    => '{"agent_id":"a","task_type":"ticket_routing",'
             . '"outcome":"success","human_baseline_minutes":1e300}');

is $overflow->{status}, 422, 'overflowing cost_saved: 422';


$stack->check_error_log('resolution');

done_testing;


# Sends a track request for the organisation's key. The body is the
# defaults below with the given fields; rate, when given, is first set as
# the hourly rate of the body's agent id.
sub track ($name, $fields, %opts) {
    my $body = { agent_id => 'resolver', task_type => 'ticket_routing',
                 outcome => 'success', %$fields };

    if (defined $opts{rate}) {
        $stack->admin('rate', 'set', '--org', $org{$name}, $body->{agent_id},
                      $opts{rate});
    }

    return $stack->request(headers => auth($name),
                           body => $JSON->encode($body));
}

sub auth ($name) {
    return { Authorization => "Bearer $key{$name}",
             'Content-Type' => 'application/json' };
}

sub check_case ($case, $res) {
    my $name = $case->{name};

    if ($case->{error}) {
        my ($status, $code, $field) = @{ $case->{error} };

        is $res->{status}, $status, "$name: status $status";
        is $res->{json}{error}{code}, $code, "$name: code $code";
        is $res->{json}{error}{field}, $field, "$name: field";
        return;
    }

    is $res->{status}, 201, "$name: status 201";
    ok !exists $res->{json}{error}, "$name: no error";

    for my $field (sort keys %{ $case->{answer} }) {
        is_value($res->{json}{$field}, $case->{answer}{$field},
                 "$name: answer $field");
    }

    my $row = stored_row($res);

    for my $column (sort keys %{ $case->{row} }) {
        is_value($row->{$column}, $case->{row}{$column},
                 "$name: stored $column");
    }

    is $row->{event_id}, $res->{json}{event_id}, "$name: stored event id";
}

# Compares numbers within 1e-9, and strings and undef exactly.
sub is_value ($got, $expected, $name) {
    if (defined $expected && defined $got
        && $expected =~ /^-?\d+(?:\.\d+)?$/ && $got =~ /^-?[\d.e+-]+$/)
    {
        my $ok = ok abs($got - $expected) < 1e-9, $name;
        diag "got $got, expected $expected" unless $ok;
        return $ok;
    }

    return is $got, $expected, $name;
}

# Waits until the writer stored the event of a 201 and returns its row.
sub stored_row ($res) {
    my $id = $res->{json}{event_id} // return {};
    my ($row) = $stack->wait_for_sql(
        'SELECT to_jsonb(e)::text FROM events e WHERE event_id = :\'id\'',
        vars => { id => $id });

    return $JSON->decode($row->[0]);
}

sub load_prices ($rows) {
    my $file = $stack->folder . '/prices.csv';

    open my $csv, '>:raw', $file or die "cannot write $file: $!";
    print $csv "model,input_per_million,output_per_million\n", $rows;
    close $csv or die "cannot write $file: $!";

    $stack->admin('prices', 'load', $file);
}

sub first_line ($text) {
    my ($line) = split /\n/, $text;
    return $line;
}
