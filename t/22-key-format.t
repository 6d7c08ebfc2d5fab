#!/usr/bin/perl

# The Authorization header in every malformed shape we could think of, one
# table row each with the expected status and error code. The scheme is
# case-insensitive and may be followed by more than one space (RFC 9110,
# section 11.4: credentials = auth-scheme [ 1*SP token68 ]), and the
# whitespace around a field value is not part of it (section 5.5).

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Humanhours::Stack;

my $stack = Humanhours::Stack->new;
$stack->start;

my $org = $stack->admin(qw(org create --name formats --plan pro));
chomp $org;

my $live = $stack->admin('key', 'create', '--org', $org);
chomp $live;
my $test = $stack->admin('key', 'create', '--org', $org, '--test');
chomp $test;

like $live, qr/^hh_live_[A-Za-z0-9]{8}_[A-Za-z0-9]{48}$/, 'live key created';
like $test, qr/^hh_test_[A-Za-z0-9]{8}_[A-Za-z0-9]{48}$/, 'test key created';

my ($prefix, $secret) = $live =~ /^hh_live_(\w{8})_(\w{48})$/;
my ($test_prefix, $test_secret) = $test =~ /^hh_test_(\w{8})_(\w{48})$/;

$stack->wait_until(
    sub { $stack->redis_cli('EXISTS', 'hh:tasktypes') =~ /^1/ },
    timeout => 30,
    what    => 'the writer to copy the task types to Redis',
);

my $body = '{"agent_id":"format-agent","task_type":"ticket_routing",'
         . '"outcome":"success"}';

# Replaces the character at $index of $text.
sub with_char ($text, $index, $char) {
    my $copy = $text;
    substr($copy, $index, 1) = $char;
    return $copy;
}

my $short_prefix = substr $prefix, 0, 7;
my $long_prefix = $prefix . 'x';

# Each row: name, Authorization header, expected status, expected error
# code (undef for a 201), and a reason when the row is a known failure
# (Test::More TODO). A header of undef is not sent, and '' is sent empty.
my @cases = (
    # Missing or empty.
    ['no Authorization header', undef, 401, 'missing_authorization'],
    ['empty Authorization header', '', 401, 'missing_authorization'],

    # The scheme.
    ['scheme only', 'Bearer', 401, 'invalid_api_key'],
    ['scheme and a space', 'Bearer ', 401, 'invalid_api_key'],
    ['key without scheme', $live, 401, 'invalid_api_key'],
    ['Basic scheme', "Basic $live", 401, 'invalid_api_key'],
    ['Token scheme', "Token $live", 401, 'invalid_api_key'],
    ['scheme glued to key', "Bearer$live", 401, 'invalid_api_key'],
    ['colon after scheme', "Bearer: $live", 401, 'invalid_api_key'],
    ['lower-case scheme', "bearer $live", 201, undef],
    ['upper-case scheme', "BEARER $live", 201, undef],
    ['mixed-case scheme', "bEaReR $live", 201, undef],

    # Whitespace.
    ['two spaces after scheme', "Bearer  $live", 201, undef],
    ['spaces around the value', "   Bearer $live   ", 201, undef],
    ['tab after scheme', "Bearer\t$live", 401, 'invalid_api_key'],
    ['tab inside key', with_char("Bearer $live", 30, "\t"), 401,
     'invalid_api_key'],
    ['tab after key', "Bearer $live\t", 201, undef],
    ['space inside key', with_char("Bearer $live", 30, ' '), 401,
     'invalid_api_key'],

    # More than one key.
    ['two keys with a space', "Bearer $live $live", 401, 'invalid_api_key'],
    ['two keys with a comma', "Bearer $live,$live", 401, 'invalid_api_key'],
    ['two credentials', "Bearer $live, Bearer $live", 401,
     'invalid_api_key'],

    # The mode.
    ['unknown mode', "Bearer hh_prod_${prefix}_$secret", 401,
     'invalid_api_key'],
    ['upper-case mode', "Bearer hh_LIVE_${prefix}_$secret", 401,
     'invalid_api_key'],
    ['upper-case hh', "Bearer HH_live_${prefix}_$secret", 401,
     'invalid_api_key'],
    ['no hh', "Bearer live_${prefix}_$secret", 401, 'invalid_api_key'],
    ['live key sent as test', "Bearer hh_test_${prefix}_$secret", 401,
     'invalid_api_key'],
    ['test key sent as live', "Bearer hh_live_${test_prefix}_$test_secret",
     401, 'invalid_api_key'],

    # Lengths of the parts.
    ['prefix of 7', "Bearer hh_live_${short_prefix}_$secret", 401,
     'invalid_api_key'],
    ['prefix of 9', "Bearer hh_live_${long_prefix}_$secret", 401,
     'invalid_api_key'],
    ['prefix of 7, secret of 49',
     "Bearer hh_live_${short_prefix}_${secret}x", 401, 'invalid_api_key'],
    ['prefix of 9, secret of 47',
     "Bearer hh_live_${long_prefix}_" . substr($secret, 1), 401,
     'invalid_api_key'],
    ['secret of 47', "Bearer hh_live_${prefix}_" . substr($secret, 1), 401,
     'invalid_api_key'],
    ['secret of 49', "Bearer hh_live_${prefix}_${secret}x", 401,
     'invalid_api_key'],
    ['empty secret', "Bearer hh_live_${prefix}_", 401, 'invalid_api_key'],
    ['empty prefix', "Bearer hh_live__$secret", 401, 'invalid_api_key'],
    ['no separator before secret', "Bearer hh_live_$prefix$secret", 401,
     'invalid_api_key'],
    ['hyphens for underscores', "Bearer hh-live-$prefix-$secret", 401,
     'invalid_api_key'],
    ['key twice as long', "Bearer $live$live", 401, 'invalid_api_key'],

    # Characters outside [A-Za-z0-9].
    ['hyphen in secret', "Bearer " . with_char($live, 40, '-'), 401,
     'invalid_api_key'],
    ['underscore in secret', "Bearer " . with_char($live, 40, '_'), 401,
     'invalid_api_key'],
    ['plus in secret', "Bearer " . with_char($live, 40, '+'), 401,
     'invalid_api_key'],
    ['slash in secret', "Bearer " . with_char($live, 40, '/'), 401,
     'invalid_api_key'],
    ['padding after key', "Bearer ${live}=", 401, 'invalid_api_key'],
    ['equals in place of last character',
     "Bearer " . with_char($live, 64, '='), 401, 'invalid_api_key'],
    ['dot in prefix', "Bearer " . with_char($live, 10, '.'), 401,
     'invalid_api_key'],
    ['UTF-8 letter in secret',
     "Bearer " . substr($live, 0, 63) . "\xc3\xa9", 401, 'invalid_api_key'],
    ['quoted key', qq{Bearer "$live"}, 401, 'invalid_api_key'],

    # Well-formed, but not a key we know.
    ['unknown prefix', 'Bearer hh_live_Zz9Zz9Zz_' . ('a' x 48), 401,
     'invalid_api_key'],
    ['wrong secret', "Bearer hh_live_${prefix}_" . ('b' x 48), 401,
     'invalid_api_key'],

    # The keys themselves.
    ['live key', "Bearer $live", 201, undef],
    ['test key', "Bearer $test", 201, undef],
);

for my $case (@cases) {
    my ($name, $authorization, $status, $code, $todo) = @$case;

    my @headers = ('Content-Type' => 'application/json');
    my @curl_args;

    if (defined $authorization && $authorization eq '') {
        # curl drops "Name:" with no value; "Name;" sends it empty.
        push @curl_args, 'header = "Authorization;"';
    } elsif (defined $authorization) {
        push @headers, Authorization => $authorization;
    }

    my $res = $stack->request(method => 'POST', path => '/v1/track',
                              headers => \@headers, body => $body,
                              curl_args => \@curl_args);

    local $TODO = $todo;
    is $res->{status}, $status, "$name: status $status";
    is $res->{json} ? $res->{json}{error}{code} : 'no JSON body', $code,
        "$name: code " . ($code // 'none');
}


# A repeated Authorization header is rejected by nginx itself, before any
# handler runs.

my $res = $stack->request(method => 'POST', path => '/v1/track',
    headers => ['Content-Type' => 'application/json',
                Authorization => "Bearer $live",
                Authorization => "Bearer $live"],
    body => $body);

is $res->{status}, 400, 'two Authorization headers: 400';
{
    local $TODO = 'nginx answers a repeated Authorization header with its'
                . ' HTML 400 page, not the JSON error shape';
    is $res->{headers}{'content-type'}, 'application/json',
        'two Authorization headers: answer is JSON';
}


# The good key works after all of that.

$res = $stack->request(method => 'POST', path => '/v1/track',
    headers => { Authorization => "Bearer $live",
                 'Content-Type' => 'application/json' },
    body => $body);
is $res->{status}, 201, 'live key at the end: 201';

$stack->check_error_log('key formats');

done_testing;
