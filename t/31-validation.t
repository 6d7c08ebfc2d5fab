#!/usr/bin/perl

# Every field rule of the track request body, one case a rule with its
# bounds, the JSON gate in front of them (400 for text that is not JSON,
# 422 naming the field for JSON that jsonb would refuse), the body size
# limit, and the transports: Content-Length and chunked, HTTP/1.1 and
# HTTP/2, and bodies that nginx buffers in a temporary file.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Encode qw(encode_utf8);
use JSON::PP;
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(time);
use Humanhours::Stack;

# A small buffer makes bodies above 1 KiB go through a temporary file.
my $stack = Humanhours::Stack->new(
    location_config => 'client_body_buffer_size 1k;');
$stack->start;

my $JSON = JSON::PP->new->utf8->canonical;

my $org = first_line($stack->admin(qw(org create --name rules --plan pro)));
my $key = first_line($stack->admin('key', 'create', '--org', $org));

# The longest task type key that the edge accepts, as a custom type.
my $longest_type = 'k' x 64;
$stack->admin('tasktype', 'create', '--org', $org, $longest_type,
              '--name', 'Longest key', '--category', 'ops', '--minutes', '2');

my %headers = (Authorization => "Bearer $key",
               'Content-Type' => 'application/json');

my $e_acute = encode_utf8("\x{e9}");           # 2 bytes, 1 character
my $base = '"agent_id":"validator","task_type":"ticket_routing",'
         . '"outcome":"success"';


# Field rules. Each case is [name, body, status, code, field]; a body is a
# hash of fields that replace the valid defaults (undef removes one), or
# raw text. 201 cases are checked in Postgres further below.

my @cases = (
    # Required fields, and their types.
    [ 'agent_id missing', { agent_id => undef }, 422, 'validation_error', 'agent_id' ],
    [ 'task_type missing', { task_type => undef }, 422, 'validation_error', 'task_type' ],
    [ 'outcome missing', { outcome => undef }, 422, 'validation_error', 'outcome' ],
    [ 'agent_id null', raw('"agent_id":null,"task_type":"ticket_routing","outcome":"success"'),
      422, 'validation_error', 'agent_id' ],
    [ 'agent_id number', { agent_id => 7 }, 422, 'validation_error', 'agent_id' ],
    [ 'task_type array', { task_type => ['ticket_routing'] }, 422, 'validation_error', 'task_type' ],
    [ 'outcome true', raw('"agent_id":"a","task_type":"ticket_routing","outcome":true'),
      422, 'validation_error', 'outcome' ],

    # agent_id: 1 to 128 characters.
    [ 'agent_id empty', { agent_id => '' }, 422, 'validation_error', 'agent_id' ],
    [ 'agent_id 1 character', { agent_id => 'a' }, 201 ],
    [ 'agent_id 128 characters', { agent_id => 'a' x 128 }, 201 ],
    [ 'agent_id 129 characters', { agent_id => 'a' x 129 }, 422, 'validation_error', 'agent_id' ],
    [ 'agent_id 128 two-byte characters',
      raw('"agent_id":"' . ($e_acute x 128) . '","task_type":"ticket_routing","outcome":"success"'),
      201 ],
    [ 'agent_id with spaces', { agent_id => ' spaced agent ' }, 201 ],
    [ 'agent_id 129 two-byte characters',
      raw('"agent_id":"' . ($e_acute x 129) . '","task_type":"ticket_routing","outcome":"success"'),
      422, 'validation_error', 'agent_id' ],

    # task_type: lowercase snake_case, 1 to 64 characters.
    [ 'task_type 64 characters', { task_type => $longest_type }, 201 ],
    [ 'task_type 65 characters', { task_type => 'k' x 65 }, 422, 'validation_error', 'task_type' ],
    [ 'task_type empty', { task_type => '' }, 422, 'validation_error', 'task_type' ],
    [ 'task_type capital', { task_type => 'Ticket_routing' }, 422, 'validation_error', 'task_type' ],
    [ 'task_type hyphen', { task_type => 'ticket-routing' }, 422, 'validation_error', 'task_type' ],
    [ 'task_type space', { task_type => 'ticket routing' }, 422, 'validation_error', 'task_type' ],
    [ 'task_type leading underscore', { task_type => '_ticket' }, 422, 'validation_error', 'task_type' ],
    [ 'task_type non-ASCII', { task_type => "caf\x{e9}" }, 422, 'validation_error', 'task_type' ],

    # outcome: one of three words, spelled exactly.
    [ 'outcome success', { outcome => 'success' }, 201 ],
    [ 'outcome failure', { outcome => 'failure' }, 201 ],
    [ 'outcome needs_review', { outcome => 'needs_review' }, 201 ],
    [ 'outcome Success', { outcome => 'Success' }, 422, 'validation_error', 'outcome' ],
    [ 'outcome failed', { outcome => 'failed' }, 422, 'validation_error', 'outcome' ],
    [ 'outcome needs-review', { outcome => 'needs-review' }, 422, 'validation_error', 'outcome' ],
    [ 'outcome empty', { outcome => '' }, 422, 'validation_error', 'outcome' ],

    # Numbers: finite, not negative.
    [ 'duration 0', { agent_duration_seconds => 0 }, 201 ],
    [ 'duration null', raw("$base,\"agent_duration_seconds\":null"), 201 ],
    [ 'duration negative', { agent_duration_seconds => -1 }, 422, 'validation_error', 'agent_duration_seconds' ],
    [ 'duration string', { agent_duration_seconds => '4' }, 422, 'validation_error', 'agent_duration_seconds' ],
    [ 'duration overflows a double', raw("$base,\"agent_duration_seconds\":1e400"),
      422, 'validation_error', 'agent_duration_seconds' ],
    [ 'duration of 400 digits', raw("$base,\"agent_duration_seconds\":" . ('9' x 400)),
      422, 'validation_error', 'agent_duration_seconds' ],
    [ 'duration NaN', raw("$base,\"agent_duration_seconds\":NaN"), 400, 'invalid_json' ],
    [ 'duration Infinity', raw("$base,\"agent_duration_seconds\":Infinity"), 400, 'invalid_json' ],
    [ 'duration -Infinity', raw("$base,\"agent_duration_seconds\":-Infinity"), 400, 'invalid_json' ],
    [ 'agent_cost 0', { agent_cost => 0 }, 201 ],
    [ 'agent_cost negative', { agent_cost => -0.01 }, 422, 'validation_error', 'agent_cost' ],
    [ 'agent_cost string', { agent_cost => '0.1' }, 422, 'validation_error', 'agent_cost' ],
    [ 'agent_cost overflows a double', raw("$base,\"agent_cost\":-1e400"),
      422, 'validation_error', 'agent_cost' ],

    # Token counts: non-negative integers.
    [ 'tokens 0', { tokens_in => 0, tokens_out => 0 }, 201 ],
    [ 'tokens_in fraction', raw("$base,\"tokens_in\":1.5,\"tokens_out\":1"),
      422, 'validation_error', 'tokens_in' ],
    [ 'tokens_out negative', { tokens_in => 1, tokens_out => -1 }, 422, 'validation_error', 'tokens_out' ],
    [ 'tokens_in string', { tokens_in => '10', tokens_out => 1 }, 422, 'validation_error', 'tokens_in' ],
    [ 'tokens_out 2^53 - 1', raw("$base,\"tokens_in\":1,\"tokens_out\":9007199254740991"), 201 ],
    [ 'tokens_out above 2^53', raw("$base,\"tokens_in\":1,\"tokens_out\":9007199254740993"),
      422, 'validation_error', 'tokens_out' ],

    # human_baseline_minutes: above 0.
    [ 'baseline 0', { human_baseline_minutes => 0 }, 422, 'validation_error', 'human_baseline_minutes' ],
    [ 'baseline negative', { human_baseline_minutes => -5 }, 422, 'validation_error', 'human_baseline_minutes' ],
    [ 'baseline tiny', raw("$base,\"human_baseline_minutes\":0.0001"), 201 ],

    # model: up to 128 characters.
    [ 'model 128 characters', { model => 'm' x 128 }, 201 ],
    [ 'model 129 characters', { model => 'm' x 129 }, 422, 'validation_error', 'model' ],
    [ 'model number', { model => 4 }, 422, 'validation_error', 'model' ],

    # metadata: an object, at most 8 KiB compacted and 8 levels deep.
    [ 'metadata string', { metadata => 'x' }, 422, 'validation_error', 'metadata' ],
    [ 'metadata array', { metadata => [1] }, 422, 'validation_error', 'metadata' ],
    [ 'metadata 8192 bytes', { metadata => { k => 'x' x 8184 } }, 201 ],
    [ 'metadata 8193 bytes', { metadata => { k => 'x' x 8185 } }, 422, 'validation_error', 'metadata' ],
    [ 'metadata 8192 bytes with white space',
      raw("$base,\"metadata\" : {\n  \"k\" :  \"" . ('x' x 8184) . "\"\n}"), 201 ],
    [ 'metadata 8192 bytes of escapes',
      raw("$base,\"metadata\":{\"k\":\"" . ('\u00e9' x 1364) . '"}'), 201 ],
    [ 'metadata 8198 bytes of escapes',
      raw("$base,\"metadata\":{\"k\":\"" . ('\u00e9' x 1365) . '"}'),
      422, 'validation_error', 'metadata' ],
    [ 'metadata 8 levels', raw("$base,\"metadata\":" . nested(8)), 201 ],
    [ 'metadata 9 levels', raw("$base,\"metadata\":" . nested(9)), 422, 'validation_error', 'metadata' ],

    # audit_sample: an object of two strings, a string and two integers.
    [ 'audit_sample string', { audit_sample => 'x' }, 422, 'validation_error', 'audit_sample' ],
    [ 'audit_sample excerpt number', { audit_sample => { input_excerpt => 5 } },
      422, 'validation_error', 'audit_sample' ],
    [ 'audit_sample output excerpt object', { audit_sample => { output_excerpt => {} } },
      422, 'validation_error', 'audit_sample' ],
    [ 'audit_sample model array', { audit_sample => { model => ['m'] } },
      422, 'validation_error', 'audit_sample' ],
    [ 'audit_sample tokens fraction', { audit_sample => { tokens_in => 0.5 } },
      422, 'validation_error', 'audit_sample' ],
    [ 'audit_sample tokens negative', { audit_sample => { tokens_out => -2 } },
      422, 'validation_error', 'audit_sample' ],

    # occurred_at: RFC 3339, with or without fraction and offset.
    [ 'occurred_at date only', { occurred_at => '2026-05-06' }, 422, 'validation_error', 'occurred_at' ],
    [ 'occurred_at without offset', { occurred_at => yesterday('10:42:00') },
      422, 'validation_error', 'occurred_at' ],
    [ 'occurred_at in words', { occurred_at => 'yesterday' }, 422, 'validation_error', 'occurred_at' ],
    [ 'occurred_at number', { occurred_at => 1_700_000_000 }, 422, 'validation_error', 'occurred_at' ],
    [ 'occurred_at 30 February', { occurred_at => '2026-02-30T10:00:00Z' },
      422, 'validation_error', 'occurred_at' ],
    [ 'occurred_at leap second', { occurred_at => yesterday('23:59:60Z') },
      422, 'validation_error', 'occurred_at' ],
    [ 'occurred_at offset without colon', { occurred_at => yesterday('10:42:00+0200') },
      422, 'validation_error', 'occurred_at' ],

    # The JSON gate: text that is not JSON is 400, JSON that jsonb refuses
    # is 422 naming the top-level field.
    [ 'empty body', '', 400, 'invalid_json' ],
    [ 'truncated body', "{$base", 400, 'invalid_json' ],
    [ 'trailing garbage', "{$base} x", 400, 'invalid_json' ],
    [ 'comment', "{$base /* note */}", 400, 'invalid_json' ],
    [ 'byte order mark', "\xef\xbb\xbf{$base}", 400, 'invalid_json' ],
    [ 'invalid UTF-8', raw("$base,\"metadata\":{\"k\":\"\xff\"}"), 400, 'invalid_json' ],
    [ 'overlong UTF-8', raw("$base,\"metadata\":{\"k\":\"\xc0\xaf\"}"), 400, 'invalid_json' ],
    [ 'NUL escape in agent_id',
      raw('"agent_id":"a\u0000b","task_type":"ticket_routing","outcome":"success"'),
      422, 'validation_error', 'agent_id' ],
    [ 'NUL escape in metadata', raw("$base,\"metadata\":{\"k\":\"\\u0000\"}"),
      422, 'validation_error', 'metadata' ],
    [ 'unpaired high surrogate', raw("$base,\"metadata\":{\"k\":\"\\ud800\"}"),
      422, 'validation_error', 'metadata' ],
    [ 'unpaired low surrogate', raw("$base,\"model\":\"\\udc00\""),
      422, 'validation_error', 'model' ],
    [ 'number beyond numeric', raw("$base,\"metadata\":{\"n\":1e131073}"),
      422, 'validation_error', 'metadata' ],
    [ 'duplicate top-level key', raw("$base,\"outcome\":\"failure\""),
      422, 'validation_error', 'outcome' ],
    [ 'duplicate key in metadata', raw("$base,\"metadata\":{\"a\":1,\"a\":2}"),
      422, 'validation_error', 'metadata' ],
    [ 'nesting too deep in audit_sample',
      raw("$base,\"audit_sample\":{\"extra\":" . nested(8) . '}'),
      422, 'validation_error', 'audit_sample' ],
    [ 'NUL escape in an unknown field', raw("$base,\"debug\":\"\\u0000\""),
      422, 'validation_error', 'debug' ],
    [ 'nesting too deep in an unknown field', raw("$base,\"debug\":" . nested(9)),
      422, 'validation_error', 'debug' ],
    [ 'JSON array', '[1,2]', 422, 'validation_error' ],
    [ 'JSON string', '"track"', 422, 'validation_error' ],
    [ 'JSON number', '42', 422, 'validation_error' ],
    [ '10,000 levels of arrays', ('[' x 10000) . (']' x 10000), 422, 'validation_error' ],
    [ '10,000 levels in metadata',
      raw("$base,\"metadata\":" . ('[' x 10000) . (']' x 10000)),
      422, 'validation_error', 'metadata' ],

    # What is dropped instead of refused.
    [ 'key repeated in another case', raw("$base,\"Agent_ID\":\"other\",\"OUTCOME\":\"bad\""), 201 ],
    [ 'unknown fields', { extra => { nested => [1, 2] }, source => 'sdk' }, 201 ],
    [ 'metadata number of 400 digits', raw("$base,\"metadata\":{\"n\":" . ('7' x 400) . '}'), 201 ],
);

my @accepted;

for my $case (@cases) {
    my ($name, $body, $status, $code, $field) = @$case;

    my $res = $stack->request(headers => \%headers, body => make_body($body));
    check_answer($name, $res, $status, $code, $field);

    push @accepted, [$name, $res->{json}{event_id}, $body]
        if $status == 201 && $res->{status} == 201;
}


# Every accepted case reached Postgres with the values it was sent.

my %rows = stored_rows(map { $_->[1] } @accepted);

for my $accepted (@accepted) {
    my ($name, $id, $body) = @$accepted;
    ok $rows{$id}, "$name: stored";
}

my %by_name = map { $_->[0] => $rows{ $_->[1] } // {} } @accepted;

is $by_name{'agent_id 128 two-byte characters'}{agent_id}, "\x{e9}" x 128,
    'stored agent_id of two-byte characters';
is $by_name{'task_type 64 characters'}{task_type}, $longest_type,
    'stored task_type of 64 characters';
is $by_name{'task_type 64 characters'}{baseline_source}, 'custom',
    'task_type of 64 characters resolved as custom';
is $by_name{'outcome needs_review'}{outcome}, 'needs_review', 'stored outcome';
is $by_name{'agent_id with spaces'}{agent_id}, ' spaced agent ',
    'stored agent_id with its spaces';
is $by_name{'tokens_out 2^53 - 1'}{tokens_out}, 9007199254740991,
    'stored tokens_out of 2^53 - 1';
is $by_name{'model 128 characters'}{model}, 'm' x 128, 'stored model of 128 characters';
is length(JSON::PP->new->canonical->encode(
              $by_name{'metadata 8192 bytes with white space'}{metadata})),
    8192, 'stored metadata of 8192 bytes';
is $by_name{'key repeated in another case'}{agent_id}, 'validator',
    'key in another case: the exact key wins';
is $by_name{'key repeated in another case'}{outcome}, 'success',
    'key in another case: the other-case key is dropped';

my ($digits) = $stack->psql(
    'SELECT metadata::text FROM events WHERE event_id = :\'id\'',
    { id => (grep { $_->[0] eq 'metadata number of 400 digits' } @accepted)[0][1] });
is $digits->[0], '{"n": ' . ('7' x 400) . '}', 'metadata number of 400 digits stored exactly';


# Unknown fields are dropped at the top level and inside audit_sample.

my $stripped = $stack->request(
    headers => \%headers,
    body    => make_body({ unknown => 1,
                           audit_sample => { input_excerpt => 'in',
                                             reviewer => 'dropped',
                                             tokens_in => 3 } }));
is $stripped->{status}, 201, 'unknown fields: 201';
ok !exists $stripped->{json}{unknown}, 'unknown fields: not in the answer';
my %stripped = stored_rows($stripped->{json}{event_id});
is_deeply $stripped{ $stripped->{json}{event_id} }{audit_sample},
    { input_excerpt => 'in', tokens_in => 3 },
    'unknown fields: dropped from the stored audit sample';


# occurred_at: accepted forms are answered and stored as UTC with
# milliseconds; fractions below the millisecond are cut, not rounded.

my $day = strftime('%Y-%m-%d', gmtime(time - 86400));
my @times = (
    [ 'Z without fraction', "${day}T10:42:00Z", "${day}T10:42:00.000Z" ],
    [ 'Z with milliseconds', "${day}T10:42:00.123Z", "${day}T10:42:00.123Z" ],
    [ 'fraction of 1 digit', "${day}T10:42:00.5Z", "${day}T10:42:00.500Z" ],
    [ 'fraction of 6 digits', "${day}T10:42:00.123999Z", "${day}T10:42:00.123Z" ],
    [ 'positive offset', "${day}T10:42:00+02:00", "${day}T08:42:00.000Z" ],
    [ 'negative offset with fraction', "${day}T10:42:00.25-05:30",
      "${day}T16:12:00.250Z" ],
    [ 'zero offset', "${day}T10:42:00+00:00", "${day}T10:42:00.000Z" ],
    [ 'lowercase t and z', "${day}t10:42:00z", "${day}T10:42:00.000Z" ],
    [ 'space for T', "${day} 10:42:00Z", "${day}T10:42:00.000Z" ],
);

for my $case (@times) {
    my ($name, $sent, $expected) = @$case;

    my $res = $stack->request(headers => \%headers,
                              body => make_body({ occurred_at => $sent }));
    is $res->{status}, 201, "occurred_at $name: 201";
    is $res->{json}{occurred_at}, $expected, "occurred_at $name: answered in UTC";

    my %row = stored_rows($res->{json}{event_id});
    is $row{ $res->{json}{event_id} }{occurred_at}, $expected,
        "occurred_at $name: stored";
}

my $received = $stack->request(headers => \%headers, body => make_body({}));
my %received = stored_rows($received->{json}{event_id});
my $row = $received{ $received->{json}{event_id} };
is $row->{occurred_at}, $row->{received_at},
    'occurred_at omitted: the time of receipt';

# Bounds: 90 days back and 24 hours ahead, measured at receipt.
my @window = (
    [ '90 days minus 30 s past', -90 * 86400 + 30, 201 ],
    [ '90 days plus 1 s past', -90 * 86400 - 1, 422 ],
    [ '24 hours minus 30 s ahead', 86400 - 30, 201 ],
    [ '24 hours plus 1 s ahead', 86400 + 1, 422 ],
);

for my $case (@window) {
    my ($name, $offset, $status) = @$case;

    my $res = $stack->request(
        headers => \%headers,
        body    => make_body({ occurred_at => timestamp(time + $offset) }));
    check_answer("occurred_at $name", $res, $status,
                 $status == 201 ? () : ('occurred_at_out_of_range', 'occurred_at'));
}


# A duplicate written with an escape is refused, and field names the
# member as the API spells it.

my $escaped_duplicate = $stack->request(
    headers => \%headers, body => make_body(raw("$base,\"agent\\u005fid\":\"b\"")));
is $escaped_duplicate->{status}, 422, 'escaped duplicate key: 422';
is $escaped_duplicate->{json}{error}{code}, 'validation_error',
    'escaped duplicate key: validation_error';

is $escaped_duplicate->{json}{error}{field}, 'agent_id',
    'escaped duplicate key: field agent_id';


# Transports: each way of sending a body, small and buffered in a file.

my $small = make_body({ metadata => { size => 'small' } });
my $large = make_body({ metadata => { size => 'large', pad => 'p' x 5000 } });
my $log_offset = length $stack->error_log;

my @transports = (
    [ 'HTTP/1.1 with Content-Length', {} ],
    [ 'HTTP/1.1 chunked', { headers => { %headers, 'Transfer-Encoding' => 'chunked' } } ],
    [ 'HTTP/2', { http2 => 1 } ],
);

for my $transport (@transports) {
    my ($name, $opts) = @$transport;

    for my $body ([ 'small body', $small ], [ 'body in a temp file', $large ]) {
        my $res = $stack->request(headers => \%headers, %$opts,
                                  body => $body->[1]);
        is $res->{status}, 201, "$name, $body->[0]: 201";

        my $id = $res->{json}{event_id} // '';
        my %row = stored_rows($id);
        is $row{$id}{metadata}{size}, $body->[0] eq 'small body' ? 'small' : 'large',
            "$name, $body->[0]: stored";
    }

    my $huge = $stack->request(
        headers => \%headers, %$opts,
        body => make_body({ metadata => { pad => 'x' x (10 * 1024 * 1024) } }));
    check_answer("$name, 10 MB of metadata", $huge, 413, 'payload_too_large');
}

my $buffered = () = substr($stack->error_log, $log_offset)
                    =~ /a client request body is buffered to a temporary file/g;
cmp_ok $buffered, '>=', 3, 'large bodies went through temporary files';

$stack->check_error_log('validation');

done_testing;


# Marks text as the inside of a JSON object: raw('"a":1') is '{"a":1}'.
sub raw ($members) {
    return \"{$members}";
}

# Returns the body text: raw text as given, a reference from raw(), or the
# valid defaults with the hash's fields replaced (undef removes a field).
sub make_body ($body) {
    return $$body if ref $body eq 'SCALAR';
    return $body unless ref $body;

    my %fields = (agent_id => 'validator', task_type => 'ticket_routing',
                  outcome => 'success', %$body);
    delete $fields{$_} for grep { !defined $fields{$_} } keys %fields;

    return $JSON->encode(\%fields);
}

# A metadata object nested levels deep, itself included.
sub nested ($levels) {
    return ('{"a":' x ($levels - 1)) . '{"a":1}' . ('}' x ($levels - 1));
}

sub check_answer ($name, $res, $status, $code = undef, $field = undef) {
    is $res->{status}, $status, "$name: status $status";

    if ($status == 201) {
        like $res->{json}{event_id} // '', qr/^evt_/, "$name: event id";
        return;
    }

    is $res->{json}{error}{code}, $code, "$name: code $code";
    is $res->{json}{error}{field}, $field,
        "$name: field " . ($field // 'absent');
    ok length($res->{json}{error}{message} // ''), "$name: message";
}

# Waits until the writer stored every given event, and returns the rows
# as a hash of event id to row.
sub stored_rows (@ids) {
    my $list = join ',', map { "'$_'" } grep { /^evt_[0-9A-Z]{26}$/ } @ids;
    return () unless length $list;

    my $count = () = $list =~ /,/g;
    $stack->wait_until(
        sub {
            my ($row) = $stack->psql(
                "SELECT count(*) FROM events WHERE event_id IN ($list)");
            return $row->[0] == $count + 1;
        },
        timeout => 30, what => 'the writer to store the events');

    my @rows = $stack->psql(
        'SELECT event_id, to_jsonb(e) || jsonb_build_object('
        . '\'occurred_at\', to_char(occurred_at'
        . ' AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\'),'
        . ' \'received_at\', to_char(received_at AT TIME ZONE \'UTC\','
        . ' \'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\'))'
        . " FROM events e WHERE event_id IN ($list)");

    return map { $_->[0] => $JSON->decode($_->[1]) } @rows;
}

sub yesterday ($time) {
    return strftime('%Y-%m-%d', gmtime(time - 86400)) . "T$time";
}

# RFC 3339 in UTC with milliseconds.
sub timestamp ($seconds) {
    my $whole = int $seconds;
    return strftime('%Y-%m-%dT%H:%M:%S', gmtime $whole)
           . sprintf('.%03dZ', ($seconds - $whole) * 1000);
}

sub first_line ($text) {
    my ($line) = split /\n/, $text;
    return $line;
}
