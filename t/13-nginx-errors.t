#!/usr/bin/perl

# Errors that nginx itself answers inside an API location (a broken chunked
# body, a body over the limit, a denied address) come back in the JSON
# error shape, never as nginx's HTML page.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Humanhours::Stack;

my $stack = Humanhours::Stack->new(
    require_https   => 'off',
    max_body_size   => '4k',
    server_config   => 'location = /v1/denied { humanhours_track; deny all; }',
);
$stack->start(qw(redis postgres nginx));

my $org = $stack->admin(qw(org create --name errors --plan pro));
chomp $org;
my $key = $stack->admin('key', 'create', '--org', $org);
chomp $key;


# Sends raw bytes over plain HTTP and returns status, headers and body.
sub raw_request ($bytes) {
    my $socket = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', PeerPort => $stack->port('http'),
        Timeout => 5) or die "connect: $!";
    print {$socket} $bytes;

    local $/;
    my $answer = <$socket> // '';
    close $socket;

    my ($head, $body) = split /\r\n\r\n/, $answer, 2;
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    my (undef, @lines) = split /\r\n/, $head;
    my %headers = map { lc($_->[0]) => $_->[1] }
                  map { [split /:\s*/, $_, 2] } @lines;
    my $json = eval { decode_json($body) };
    return { status => $status, headers => \%headers, body => $body,
             json => $json };
}

my $headers = "Host: localhost\r\nAuthorization: Bearer $key\r\n"
            . "Content-Type: application/json\r\nConnection: close\r\n";

my $res = raw_request("POST /v1/track HTTP/1.1\r\n$headers"
                      . "Transfer-Encoding: chunked\r\n\r\nzz\r\n");
is $res->{status}, 400, 'broken chunked body: 400';
is $res->{headers}{'content-type'}, 'application/json', 'broken chunked body: JSON';
is $res->{json}{error}{code}, 'bad_request', 'broken chunked body: bad_request';

my $large = '{"agent_id":"' . ('a' x 8000) . '"}';
$res = raw_request("POST /v1/track HTTP/1.1\r\n$headers"
                   . "Transfer-Encoding: chunked\r\n\r\n"
                   . sprintf('%x', length $large) . "\r\n$large\r\n0\r\n\r\n");
is $res->{status}, 413, 'chunked body over the limit: 413';
is $res->{json}{error}{code}, 'payload_too_large',
    'chunked body over the limit: payload_too_large';

$res = raw_request("POST /v1/track HTTP/1.1\r\n$headers"
                   . 'Content-Length: ' . length($large) . "\r\n\r\n$large");
is $res->{status}, 413, 'Content-Length over the limit: 413';
is $res->{json}{error}{code}, 'payload_too_large',
    'Content-Length over the limit: payload_too_large';

$res = raw_request("POST /v1/denied HTTP/1.1\r\n$headers"
                   . "Content-Length: 2\r\n\r\n{}");
is $res->{status}, 403, 'denied address: 403';
is $res->{json}{error}{code}, 'forbidden', 'denied address: forbidden';
ok length $res->{json}{error}{message}, 'denied address: message';

$res = $stack->request(method => 'GET', path => '/no/such/place',
                       scheme => 'http');
is $res->{status}, 404, 'outside the API: 404';
like $res->{body}, qr/<html>/i, 'outside the API: nginx page unchanged';

$stack->check_error_log('nginx errors');

done_testing;
