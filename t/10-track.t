#!/usr/bin/perl

# POST /v1/track end to end: a 201 whose event reaches Postgres with the
# same event id and resolved values, and each error code the track path
# answers, always as the JSON error shape.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Humanhours::Stack;

my $stack = Humanhours::Stack->new;
$stack->start;

my $org = $stack->admin(qw(org create --name acme --plan pro));
chomp $org;
my $key = $stack->admin('key', 'create', '--org', $org);
chomp $key;
like $key, qr/^hh_live_[A-Za-z0-9]{8}_[A-Za-z0-9]{48}$/, 'key create prints a live key';

my %json = ('Content-Type' => 'application/json');
my %auth = (Authorization => "Bearer $key", %json);

my $example = {
    agent_id               => 'support-classifier',
    task_type              => 'email_classification',
    outcome                => 'success',
    agent_duration_seconds => 4,
    unknown_field          => 'dropped',
};


# The happy path: the documented example.

my $res = $stack->request(method => 'POST', path => '/v1/track',
                          headers => \%auth, json => $example);

is $res->{status}, 201, 'track answers 201';
is $res->{headers}{'content-type'}, 'application/json', 'answer is JSON';

my $event = $res->{json};
like $event->{event_id}, qr/^evt_[0-9A-HJKMNP-TV-Z]{26}$/, 'event id is evt_ and a ULID';
is $event->{agent_id}, 'support-classifier', 'agent_id echoed';
is $event->{resolved_baseline_minutes}, 4, 'baseline from the catalogue';
is $event->{resolved_baseline_source}, 'builtin', 'baseline source builtin';
is $event->{resolved_hourly_rate}, 45, 'default hourly rate';
is $event->{currency}, 'EUR', 'default currency';
is $event->{hours_saved}, 0.066, 'hours_saved as in the documented example';
is $event->{cost_saved}, 2.95, 'cost_saved as in the documented example';
is $event->{net_saved}, 2.95, 'net_saved without agent cost';
ok exists $event->{agent_cost} && !defined $event->{agent_cost}, 'agent_cost null';
is $event->{resolved_cost_source}, 'none', 'cost source none';
like $event->{occurred_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    'occurred_at in UTC with milliseconds';
like $res->{body}, qr/"resolved_baseline_minutes":4\.0,/, 'baseline printed as 4.0';
ok !exists $event->{unknown_field}, 'unknown field not echoed';

my @rows = $stack->wait_for_sql(
    'SELECT event_id, org_id, agent_id, task_type, outcome, baseline_minutes,
            baseline_source, hourly_rate, currency, round(hours_saved::numeric, 3),
            round(cost_saved::numeric, 2), cost_source, test
       FROM events WHERE event_id = :\'id\'',
    vars => { id => $event->{event_id} });

is scalar @rows, 1, 'one row in Postgres';
is_deeply $rows[0], [$event->{event_id}, $org, 'support-classifier',
                     'email_classification', 'success', 4, 'builtin', 45,
                     'EUR', '0.066', '2.95', 'none', 'f'],
    'row carries the same event id and resolved values';


# The n8n path and an event with everything.

# The body is written by hand: Perl's JSON encoder would round the number.
my $occurred_at = today() . 'T10:00:00+02:00';
$res = $stack->request(method => 'POST', path => '/api/v1/track',
    headers => \%auth, body => <<"JSON");
{"agent_id": "n8n", "task_type": "invoice_data_extraction",
 "outcome": "needs_review", "agent_duration_seconds": 12.5,
 "agent_cost": 0.25, "model": "openai/gpt-4o-mini",
 "metadata": {"big": 123456789012345678901234567890,
              "nested": {"list": [1, "zwei", null]}},
 "occurred_at": "$occurred_at"}
JSON
is $res->{status}, 201, '/api/v1/track answers 201';
is $res->{json}{agent_cost}, 0.25, 'provided agent cost kept';
is $res->{json}{resolved_cost_source}, 'provided', 'cost source provided';

my ($stored) = $stack->wait_for_sql(
    'SELECT metadata::text FROM events WHERE event_id = :\'id\'',
    vars => { id => $res->{json}{event_id} });
like $stored->[0], qr/123456789012345678901234567890/,
    'large metadata number stored exactly';


# Errors, each in the JSON shape.

my @cases = (
    [ 'missing authorization', 401, 'missing_authorization',
      { %json }, $example ],
    [ 'malformed key', 401, 'invalid_api_key',
      { %json, Authorization => 'Bearer hh_live_short_key' }, $example ],
    [ 'unknown key', 401, 'invalid_api_key',
      { %json, Authorization => 'Bearer hh_live_abcdefgh_' . ('x' x 48) },
      $example ],
    [ 'wrong secret', 401, 'invalid_api_key',
      { %json, Authorization => 'Bearer ' . substr($key, 0, 17) . ('Z' x 48) },
      $example ],
    [ 'basic scheme', 401, 'invalid_api_key',
      { %json, Authorization => "Basic $key" }, $example ],
    [ 'text body', 415, 'unsupported_media_type',
      { %auth, 'Content-Type' => 'text/plain' }, $example ],
    [ 'broken JSON', 400, 'invalid_json', \%auth, '{"agent_id": ' ],
    [ 'missing outcome', 422, 'validation_error', \%auth,
      { agent_id => 'a', task_type => 'email_classification' }, 'outcome' ],
    [ 'wrong outcome', 422, 'validation_error', \%auth,
      { %$example, outcome => 'Success' }, 'outcome' ],
    [ 'unknown task type', 422, 'unknown_task_type', \%auth,
      { %$example, task_type => 'no_such_task' }, 'task_type' ],
    [ 'array body', 422, 'validation_error', \%auth, '[1, 2]' ],
);

for my $case (@cases) {
    my ($name, $status, $code, $headers, $body, $field) = @$case;

    $res = $stack->request(method => 'POST', path => '/v1/track',
                           headers => $headers,
                           ref $body ? (json => $body) : (body => $body));

    is $res->{status}, $status, "$name: status $status";
    is $res->{json}{error}{code}, $code, "$name: code $code";
    is $res->{json}{error}{field}, $field, "$name: field";
    ok length $res->{json}{error}{message}, "$name: message";
}

$res = $stack->request(method => 'GET', path => '/v1/track', headers => \%auth);
is $res->{status}, 405, 'GET: 405';
is $res->{json}{error}{code}, 'method_not_allowed', 'GET: method_not_allowed';
is $res->{headers}{allow}, 'POST', 'GET: Allow: POST';

$res = $stack->request(method => 'POST', path => '/v1/track', scheme => 'http',
                       headers => \%auth, json => $example);
is $res->{status}, 403, 'plain HTTP: 403';
is $res->{json}{error}{code}, 'https_required', 'plain HTTP: https_required';


# Revocation, then the same key again.

$stack->admin('key', 'revoke', substr($key, 8, 8));

$res = $stack->request(method => 'POST', path => '/v1/track',
                       headers => \%auth, json => $example);
is $res->{status}, 401, 'revoked key: 401';
is $res->{json}{error}{code}, 'key_revoked', 'revoked key: key_revoked';


# Nothing that was refused reached Postgres.

my ($count) = $stack->psql('SELECT count(*) FROM events');
is $count->[0], 2, 'only the two accepted events are stored';

$stack->check_error_log('track');

done_testing;


sub today () {
    my @t = gmtime;
    return sprintf '%04d-%02d-%02d', $t[5] + 1900, $t[4] + 1, $t[3];
}
