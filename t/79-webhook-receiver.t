#!/usr/bin/perl

# The webhook tests' own receiver and signature checks, and their self-test.
#
# The webhook tests (t/70-*.t to t/78-*.t) load this file with require and
# use the two packages below; run directly, it tests them. The receiver is a
# plain-HTTP server on 127.0.0.1 that logs every request with its exact body
# and answers each path from a script of responses. The signature checks are
# written from the published schemes with Digest::SHA, independently of the
# writer's C code, and are themselves checked against the Standard Webhooks
# test vector.

use strict;
use warnings;
use feature qw(say signatures);


package Humanhours::WebhookReceiver;

use Carp qw(croak);
use Digest::SHA qw(sha1_hex);
use Fcntl qw(:flock O_RDWR O_WRONLY O_CREAT O_APPEND);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);

# Bounds that keep a broken client from holding a handler forever.
my $HEADER_MAX = 64 * 1024;
my $BODY_MAX = 1024 * 1024;
my $READ_TIMEOUT = 10;

my %LIVE;    # pid of each running receiver, for END


# Starts a receiver in a child process. Options:
#   folder     where the request log and the per-path counters live
#   responses  { path => [response, ...] }: the nth request to a path gets
#              the nth response, and the last one repeats; a path with no
#              script gets 200. A response is { status, headers => {...},
#              body, delay => seconds before answering, hang => seconds
#              (read the request, then answer nothing for that long) }.
sub new ($class, %opts) {
    my $folder = $opts{folder} // croak 'folder is required';
    mkdir $folder;

    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => 0,
        Proto     => 'tcp',
        Listen    => 64,
        ReuseAddr => 1,
    ) or die "cannot listen on 127.0.0.1: $!";

    my $self = bless {
        owner     => $$,
        folder    => $folder,
        port      => $listen->sockport,
        responses => $opts{responses} // {},
        log       => "$folder/requests.jsonl",
    }, $class;

    my $parent = $$;
    my $pid = fork // die "fork failed: $!";

    if ($pid == 0) {
        $self->_serve($listen, $parent);
        _exit(0);
    }

    close $listen;
    $self->{pid} = $pid;
    $LIVE{$pid} = 1;

    return $self;
}

sub port ($self) { $self->{port} }

sub url ($self, $path = '/') {
    return "http://127.0.0.1:$self->{port}$path";
}

# Returns the logged requests, oldest first: { time (Unix seconds with
# fractions), method, path, headers (lower-case names), body (exact bytes) },
# or their number in scalar context. Optionally only those to one path.
sub requests ($self, $path = undef) {
    my @requests;

    open my $log, '<:raw', $self->{log}
        or return wantarray ? () : 0;


    while (my $line = <$log>) {
        my $request = decode_json($line);
        $request->{body} = decode_base64($request->{body});
        push @requests, $request
            if !defined $path || $request->{path} eq $path;
    }

    return wantarray ? @requests : scalar @requests;
}

# Waits until at least $count requests reached the path, for at most
# $timeout seconds, and returns them.
sub wait_requests ($self, $path, $count, $timeout = 30) {
    my $deadline = time + $timeout;

    while (1) {
        my @requests = $self->requests($path);
        return @requests if @requests >= $count || time >= $deadline;
        sleep 0.05;
    }
}

sub stop ($self) {
    my $pid = delete $self->{pid} or return;
    local ($?, $!);

    kill 'TERM', -$pid;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    delete $LIVE{$pid};
}

sub DESTROY ($self) {
    $self->stop if $$ == $self->{owner};
}

# waitpid sets $?, which in an END block is the test's exit status.
END {
    local ($?, $!);

    for my $pid (keys %LIVE) {
        kill 'TERM', -$pid;
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
}

# The child: accepts until its parent is gone, one handler process per
# connection so that a hanging answer holds up nobody else.
sub _serve ($self, $listen, $parent) {
    setpgrp(0, 0);
    $SIG{TERM} = sub { _exit(0) };
    $SIG{CHLD} = 'IGNORE';

    my $select = IO::Select->new($listen);

    while (getppid() == $parent) {
        next unless $select->can_read(0.5);

        my $client = $listen->accept or next;
        my $pid = fork;

        if (defined $pid && $pid == 0) {
            close $listen;
            $self->_handle($client);
            _exit(0);
        }

        close $client;
    }

    _exit(0);
}

sub _handle ($self, $client) {
    my $request = _read_request($client) or return;
    $request->{time} = time;

    my $count = $self->_count($request->{path});
    my $script = $self->{responses}{ $request->{path} } // [{ status => 200 }];
    my $response = $script->[ $count < @$script ? $count : -1 ];

    $self->_log($request);

    if ($response->{hang}) {
        sleep $response->{hang};
        return;
    }

    sleep $response->{delay} if $response->{delay};

    my $status = $response->{status} // 200;
    my $body = $response->{body} // "ok $count\n";
    my %headers = (%{ $response->{headers} // {} },
                   'Content-Length' => length $body,
                   'Connection'     => 'close');

    my $text = "HTTP/1.1 $status Script\r\n"
        . join('', map { "$_: $headers{$_}\r\n" } sort keys %headers)
        . "\r\n$body";
    print {$client} $text;
    close $client;
}

# Reads one request with a Content-Length body; returns undef on anything
# else or after the read timeout.
sub _read_request ($client) {
    my $data = '';
    my $deadline = time + $READ_TIMEOUT;
    my $select = IO::Select->new($client);

    while ($data !~ /\r\n\r\n/) {
        return undef if length $data > $HEADER_MAX || time > $deadline;
        $select->can_read(0.5) or next;
        sysread($client, $data, 65536, length $data) or return undef;
    }

    my ($head, $body) = split /\r\n\r\n/, $data, 2;
    my ($request_line, @lines) = split /\r\n/, $head;
    my ($method, $path) = $request_line =~ m{^(\S+) (\S+) HTTP/1\.[01]$}
        or return undef;

    my %headers;
    for my $line (@lines) {
        my ($name, $value) = $line =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        $headers{lc $name} = $value;
    }

    my $length = $headers{'content-length'} // 0;
    return undef if $length > $BODY_MAX;

    while (length $body < $length) {
        return undef if time > $deadline;
        $select->can_read(0.5) or next;
        sysread($client, $body, $length - length $body, length $body)
            or return undef;
    }

    return { method => $method, path => $path, headers => \%headers,
             body => $body };
}

# Counts the requests to a path across handler processes; returns the
# count before this one.
sub _count ($self, $path) {
    my $file = "$self->{folder}/count-" . sha1_hex($path);
    sysopen my $fh, $file, O_RDWR | O_CREAT or die "cannot open $file: $!";
    flock $fh, LOCK_EX;

    my $count = <$fh> // 0;
    seek $fh, 0, 0;
    truncate $fh, 0;
    print {$fh} $count + 1;
    close $fh;

    return $count;
}

sub _log ($self, $request) {
    my %entry = (%$request, body => encode_base64($request->{body}, ''));
    my $line = JSON::PP->new->canonical->encode(\%entry) . "\n";

    sysopen my $fh, $self->{log}, O_WRONLY | O_CREAT | O_APPEND
        or die "cannot open $self->{log}: $!";
    flock $fh, LOCK_EX;
    syswrite $fh, $line;
    close $fh;
}


package Humanhours::WebhookTest;

# Signature checks and the steps that every webhook test takes.

use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);

use Exporter qw(import);
our @EXPORT_OK = qw(webhook_env verify_humanhours verify_standard
                    pro_org add_endpoint track_event constant_time_equal);


# Sets the environment that humanhours-admin and the writers inherit: a
# server key file in the stack's folder, the allow-list and plain HTTP for
# the loopback receiver, and any overrides given.
sub webhook_env ($stack, %overrides) {
    my $key_file = $stack->folder . '/webhook-key';

    unless (-e $key_file) {
        open my $random, '<:raw', '/dev/urandom' or die "urandom: $!";
        read $random, my $bytes, 48;
        open my $out, '>:raw', $key_file or die "cannot write $key_file: $!";
        print {$out} $bytes;
        close $out;
        chmod 0600, $key_file;
    }

    my %env = (
        HH_WEBHOOK_KEY_FILE   => $key_file,
        HH_WEBHOOK_ALLOW      => '127.0.0.1',
        HH_WEBHOOK_ALLOW_HTTP => 1,
        HH_BATCH_MS           => 50,
        %overrides,
    );

    for my $name (keys %env) {
        if (defined $env{$name}) {
            $ENV{$name} = $env{$name};
        } else {
            delete $ENV{$name};
        }
    }
}

# Compares two strings in time independent of where they differ.
sub constant_time_equal ($a, $b) {
    return 0 unless length $a == length $b;
    my $diff = 0;
    $diff |= ord(substr $a, $_, 1) ^ ord(substr $b, $_, 1)
        for 0 .. length($a) - 1;
    return $diff == 0;
}

# X-Humanhours-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>], the hex
# HMAC-SHA256 of "<t>.<body>" keyed with the whole secret text. Returns the
# timestamp when one v1 matches, else undef. $max_age (seconds) rejects an
# old t, as receivers do with 300.
sub verify_humanhours ($secret, $header, $body, $max_age = undef) {
    return undef unless defined $header;

    my ($t) = $header =~ /(?:^|,)t=(\d+)(?:,|$)/ or return undef;
    my @v1 = $header =~ /(?:^|,)v1=([0-9a-f]{64})(?=,|$)/g;

    return undef if defined $max_age && abs(time - $t) > $max_age;

    my $expected = hmac_sha256_hex("$t.$body", $secret);
    for my $candidate (@v1) {
        return $t if constant_time_equal($candidate, $expected);
    }

    return undef;
}

# Standard Webhooks: webhook-signature is space-separated "v1,<base64>"
# entries, each the base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.
# <body>" keyed with the base64-decoded part of "whsec_<base64>". Returns
# true when one entry matches.
sub verify_standard ($secret, $headers, $body) {
    my $id = $headers->{'webhook-id'} // return 0;
    my $timestamp = $headers->{'webhook-timestamp'} // return 0;
    my $signatures = $headers->{'webhook-signature'} // return 0;

    (my $encoded = $secret) =~ s/^whsec_//;
    my $key = decode_base64($encoded);
    my $expected = encode_base64(hmac_sha256("$id.$timestamp.$body", $key),
                                 '');

    for my $entry (split / /, $signatures) {
        my ($version, $signature) = split /,/, $entry, 2;
        return 1 if $version eq 'v1' && defined $signature
                    && constant_time_equal($signature, $expected);
    }

    return 0;
}

# Creates an organisation on a plan (pro unless given) with a live and a
# test API key; returns (org id, live key, test key).
sub pro_org ($stack, $name, $plan = 'pro') {
    chomp(my $org = $stack->admin(qw(org create --name), $name,
                                  '--plan', $plan));
    chomp(my $live = $stack->admin('key', 'create', '--org', $org));
    chomp(my $test = $stack->admin('key', 'create', '--org', $org, '--test'));

    return ($org, $live, $test);
}

# Registers an endpoint; returns (endpoint id, secret).
sub add_endpoint ($stack, $org, $url, $events, @flags) {
    my $out = $stack->admin('webhook', 'add', '--org', $org, '--url', $url,
                            '--events', $events, @flags);
    chomp $out;
    my ($id, $secret) = split /\t/, $out;

    return ($id, $secret);
}

# Sends one track call; returns the response of Humanhours::Stack::request.
sub track_event ($stack, $key, %fields) {
    my %event = (
        agent_id               => 'support-classifier',
        task_type              => 'email_classification',
        outcome                => 'success',
        agent_duration_seconds => 4,
        %fields,
    );

    return $stack->request(
        headers => { Authorization => "Bearer $key" },
        json    => \%event,
    );
}


package main;

# The self-test, when this file runs on its own.
unless (caller) {
    require Test::More;
    Test::More->import;
    require File::Temp;

    Humanhours::WebhookTest->import(qw(verify_humanhours verify_standard));

    # The published Standard Webhooks test vector.
    my %headers = (
        'webhook-id'        => 'msg_p5jXN8AQM9LWM0D4loKWxJek',
        'webhook-timestamp' => '1614265330',
        'webhook-signature' => 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
    my $secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    my $body = '{"test": 2432232314}';

    ok(verify_standard($secret, \%headers, $body),
       'standard check accepts the published vector');
    ok(!verify_standard($secret, \%headers, $body . ' '),
       'standard check rejects another body');
    ok(verify_standard($secret, { %headers, 'webhook-signature' =>
                                  "v1,bm9wZQ== $headers{'webhook-signature'}" },
                       $body),
       'standard check accepts any of several signatures');

    my $hex = Digest::SHA::hmac_sha256_hex("1614265330.$body", $secret);
    is(verify_humanhours($secret, "t=1614265330,v1=$hex", $body), 1614265330,
       'humanhours check accepts its own scheme');
    ok(!defined verify_humanhours($secret, "t=1614265331,v1=$hex", $body),
       'humanhours check rejects another timestamp');
    ok(!defined verify_humanhours($secret, "t=1614265330,v1=$hex", $body, 300),
       'humanhours check rejects an old timestamp');

    my $folder = File::Temp::tempdir('webhook-receiver-XXXXXXXX', TMPDIR => 1,
                                     CLEANUP => 1);
    my $receiver = Humanhours::WebhookReceiver->new(
        folder    => $folder,
        responses => { '/flaky' => [{ status => 500 }, { status => 204 }] },
    );

    my $url = $receiver->url('/flaky');
    my @statuses = map {
        scalar `curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' --data-binary '{"n":$_}' $url`;
    } 1 .. 3;
    is_deeply(\@statuses, [500, 204, 204], 'receiver follows its script');

    my @requests = $receiver->wait_requests('/flaky', 3, 5);
    is(scalar @requests, 3, 'receiver logs every request');
    is($requests[1]{body}, '{"n":2}', 'receiver keeps the exact body');
    is($requests[0]{headers}{'content-type'}, 'application/json',
       'receiver keeps the headers');

    $receiver->stop;
    done_testing();
}

1;
