#!/usr/bin/perl

# The connect-time address check of webhook deliveries: loopback endpoints,
# named or literal, IPv4, IPv6 and IPv4-mapped, are rejected unless the
# allow-list names them; plain http:// needs its switch; and the address
# classifier in C checked against a table of addresses, with no connection
# made. Every address this test connects to is on the loopback interface.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;

require "$FindBin::Bin/79-webhook-receiver.t";
Humanhours::WebhookTest->import(qw(webhook_env pro_org add_endpoint
    track_event));

my $folder = File::Temp::tempdir('webhook-receiver-XXXXXXXX', TMPDIR => 1,
                                 CLEANUP => 1);
my $receiver = Humanhours::WebhookReceiver->new(folder => $folder);
my $port = $receiver->port;

my $stack = Humanhours::Stack->new;

# The writer starts with an empty allow-list; the admin command gets one
# where it needs to store a loopback URL.
webhook_env($stack, HH_WEBHOOK_ALLOW => undef, HH_WEBHOOK_TIME_SCALE => 0.01);
$stack->start;

my %allow = (env => { HH_WEBHOOK_ALLOW => '127.0.0.1,::1' });
my ($org, $key) = pro_org($stack, 'acme');


# Literal loopback URLs are rejected when the endpoint is added.

my $res = $stack->admin_result('webhook', 'add', '--org', $org,
    '--url', "http://127.0.0.1:$port/loop", '--events', 'event.created');
is $res->{exit_code}, 1, 'unlisted 127.0.0.1 rejected at add';
like $res->{stderr}, qr/127\.0\.0\.1 is a loopback address/,
    'error names the kind of address';

$res = $stack->admin_result('webhook', 'add', '--org', $org,
    '--url', 'https://169.254.169.254/latest', '--events', 'event.created');
like $res->{stderr}, qr/a cloud metadata address/,
    'metadata address rejected at add';

$res = $stack->admin_result('webhook', 'add', '--org', $org,
    '--url', 'https://user:pw@hooks.example/', '--events', 'event.created');
like $res->{stderr}, qr/user name or a password/, 'credentials in URL rejected';


# At connect time, on the address connected to.

my %endpoint;
for my $case (
    [ 'literal', "http://127.0.0.1:$port/literal" ],
    [ 'named',   "http://localhost:$port/named" ],
    [ 'mapped',  "http://[::ffff:127.0.0.1]:$port/mapped" ],
    [ 'ipv6',    "http://[::1]:$port/ipv6" ],
) {
    my ($name, $url) = @$case;
    my $out = $stack->admin_result(\%allow, 'webhook', 'add', '--org', $org,
        '--url', $url, '--events', 'event.created');
    is $out->{exit_code}, 0, "$name endpoint added with the allow-list"
        or diag $out->{stderr};
    ($endpoint{$name}) = split /\t/, $out->{stdout};
}

is track_event($stack, $key)->{status}, 201, 'event accepted';

sub first_error ($name) {
    my ($row) = $stack->wait_for_sql(
        'SELECT a.error FROM webhook_attempts a
           JOIN webhook_deliveries d ON d.id = a.delivery_id
          WHERE d.endpoint_id = :id AND a.finished_at IS NOT NULL
          ORDER BY a.delivery_id, a.attempt LIMIT 1',
        vars => { id => $endpoint{$name} }, interval => 0.2);
    return $row->[0];
}

like first_error('literal'),
    qr/^rejected the connection to 127\.0\.0\.1, which is a loopback address/,
    'unlisted 127.0.0.1 rejected at connect';
like first_error('named'),
    qr/^rejected the connection to (?:127\.0\.0\.1|::1), which is a loopback address/,
    'localhost rejected on the address it resolves to';
like first_error('mapped'),
    qr/^rejected the connection to ::ffff:127\.0\.0\.1, which is a loopback address/,
    'IPv4-mapped loopback rejected';
like first_error('ipv6'),
    qr/^rejected the connection to ::1, which is a loopback address/,
    'IPv6 loopback rejected';

is scalar $receiver->requests, 0, 'no request reached the receiver';


# With the allow-list, 127.0.0.1 gets through, also as IPv4-mapped; ::1 is
# not on the list and stays rejected.

$stack->stop_writer;
$ENV{HH_WEBHOOK_ALLOW} = '127.0.0.1';
$stack->start_writer;

is track_event($stack, $key)->{status}, 201, 'second event accepted';

my @literal = $receiver->wait_requests('/literal', 1);
ok scalar @literal >= 1, 'allow-listed 127.0.0.1 receives';
my @mapped = $receiver->wait_requests('/mapped', 1);
ok scalar @mapped >= 1, 'allow-listed address receives as IPv4-mapped too';
sleep 1;
is scalar $receiver->requests('/ipv6'), 0, '::1 still rejected';


# Plain http:// needs HH_WEBHOOK_ALLOW_HTTP at connect time too.

$stack->stop_writer;
$ENV{HH_WEBHOOK_ALLOW_HTTP} = 0;
$stack->start_writer;

my ($http_org, $http_key) = pro_org($stack, 'plain');
$res = $stack->admin_result({ env => { HH_WEBHOOK_ALLOW_HTTP => 1 } },
    'webhook', 'add', '--org', $http_org, '--url',
    "http://127.0.0.1:$port/plain", '--events', 'event.created');
($endpoint{plain}) = split /\t/, $res->{stdout};
track_event($stack, $http_key);

like first_error('plain'), qr/scheme is not allowed/,
    'http:// rejected without the switch';
is scalar $receiver->requests('/plain'), 0, 'nothing sent over plain HTTP';


# The classifier, called directly from C with a table of addresses.

my $build = $stack->build_dir;
my $checkout = $stack->checkout;
my $source = $stack->folder . '/address_table.c';
my $binary = $stack->folder . '/address_table';

open my $c, '>', $source or die "cannot write $source: $!";
print {$c} <<'EOF';
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include "webhook_address.h"

/* Prints "<address> <kind or allowed>" for each argument after the list. */
int
main(int argc, char **argv)
{
    int                  i;
    hhw_error_t          err;
    const char          *kind;
    webhook_allow_t      allow;
    struct sockaddr_in   sin;
    struct sockaddr_in6  sin6;

    if (webhook_allow_parse(argv[1], &allow, &err) != 0) {
        printf("invalid %s\n", err.text);
        return 0;
    }

    for (i = 2; i < argc; i++) {
        memset(&sin, 0, sizeof(sin));
        memset(&sin6, 0, sizeof(sin6));

        if (inet_pton(AF_INET, argv[i], &sin.sin_addr) == 1) {
            sin.sin_family = AF_INET;
            kind = webhook_address_check((struct sockaddr *) &sin,
                                         sizeof(sin), &allow);
        } else if (inet_pton(AF_INET6, argv[i], &sin6.sin6_addr) == 1) {
            sin6.sin6_family = AF_INET6;
            kind = webhook_address_check((struct sockaddr *) &sin6,
                                         sizeof(sin6), &allow);
        } else {
            kind = "unparsed";
        }

        printf("%s %s\n", argv[i], kind != NULL ? kind : "allowed");
    }

    return 0;
}
EOF
close $c;

my $cc = system('cc', '-std=gnu11', "-I$checkout/writer", "-I$checkout/common",
    '-o', $binary, $source, "$build/writer/webhook_address.o",
    "$build/writer/hhw_log.o", glob("$build/common/*.o"),
    '-lsodium', '-lcjson', '-lm');
is $cc, 0, 'address table program builds';

my %expected = (
    '8.8.8.8'                 => 'allowed',
    '172.32.0.1'              => 'allowed',
    '10.1.2.3'                => 'a private address',
    '172.16.0.1'              => 'a private address',
    '172.31.255.255'          => 'a private address',
    '192.168.1.1'             => 'a private address',
    '100.64.0.1'              => 'a private address',
    '127.0.0.1'               => 'a loopback address',
    '127.255.0.9'             => 'a loopback address',
    '0.0.0.0'                 => 'an unspecified address',
    '169.254.169.254'         => 'a cloud metadata address',
    '169.254.1.1'             => 'a link-local address',
    '100.100.100.200'         => 'a cloud metadata address',
    '168.63.129.16'           => 'a cloud metadata address',
    '192.0.0.192'             => 'a cloud metadata address',
    '224.0.0.1'               => 'a multicast address',
    '239.255.255.250'         => 'a multicast address',
    '255.255.255.255'         => 'a reserved address',
    '198.18.0.1'              => 'a reserved address',
    '2606:4700::1111'         => 'allowed',
    '::1'                     => 'a loopback address',
    '::'                      => 'an unspecified address',
    '::ffff:10.0.0.1'         => 'a private address',
    '::ffff:8.8.8.8'          => 'allowed',
    '::ffff:169.254.169.254'  => 'a cloud metadata address',
    '::127.0.0.1'             => 'a loopback address',
    '64:ff9b::a00:1'          => 'a private address',
    '64:ff9b::808:808'        => 'allowed',
    '2002:7f00:1::'           => 'a loopback address',
    '2001:0:4136:e378:8000:63bf:80ff:fffe' => 'a loopback address',
    'fe80::1'                 => 'a link-local address',
    'fc00::1'                 => 'a private address',
    'fd12:3456::1'            => 'a private address',
    'fd00:ec2::254'           => 'a cloud metadata address',
    'ff02::1'                 => 'a multicast address',
    '2001:db8::1'             => 'a reserved address',
);

my @addresses = sort keys %expected;
my %got = map { split / /, $_, 2 } split /\n/, `$binary '' @addresses`;
for my $address (@addresses) {
    is $got{$address}, $expected{$address}, "$address: $expected{$address}";
}

%got = map { split / /, $_, 2 } split /\n/,
    `$binary '127.0.0.0/8, fd00::/8' 127.5.5.5 ::ffff:127.0.0.1 fd12::1 fe80::1 10.0.0.1`;
is $got{'127.5.5.5'}, 'allowed', 'allow-list network admits an address';
is $got{'::ffff:127.0.0.1'}, 'allowed', 'allow-list admits it IPv4-mapped';
is $got{'fd12::1'}, 'allowed', 'allow-list admits an IPv6 network';
is $got{'fe80::1'}, 'a link-local address', 'others stay rejected';
is $got{'10.0.0.1'}, 'a private address', 'private stays rejected';

like `$binary '10.0.0.0/33' 10.0.0.1`, qr/^invalid .*"10\.0\.0\.0\/33"/,
    'bad prefix length rejected';
like `$binary 'example.com' 10.0.0.1`, qr/^invalid .*"example\.com"/,
    'host name rejected in the allow-list';

$stack->check_error_log;
done_testing();
