#!/usr/bin/perl

# A full argon2id thread pool: with one thread and a queue of one per
# worker, many new keys at once get 503 unavailable with Retry-After for
# the verifications that do not fit. No request hangs, none is a 500, and
# each refused key verifies when it is sent again.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time);
use Humanhours::Stack;

my $KEYS = 40;
my $REQUEST_TIMEOUT = 20;

# Humanhours::Stack writes "thread_pool humanhours threads=2 max_queue=64;"
# and has no option to change it, so this file rewrites that line of the
# generated configuration.
my $THREAD_POOL = 'thread_pool humanhours threads=1 max_queue=1;';
{
    no warnings 'redefine';
    my $generate = \&Humanhours::Stack::_nginx_config;
    *Humanhours::Stack::_nginx_config = sub {
        my $text = $generate->(@_);
        $text =~ s/^thread_pool humanhours .*$/$THREAD_POOL/m
            or die "no thread_pool humanhours line in the nginx"
                   . " configuration to rewrite\n";
        return $text;
    };
}

my $stack = Humanhours::Stack->new;
$stack->start;

like slurp($stack->folder . '/nginx.conf'), qr/^\Q$THREAD_POOL\E$/m,
    'nginx runs with the tiny thread pool';

my $org = $stack->admin(qw(org create --name pool --plan enterprise));
chomp $org;
$stack->psql('UPDATE organisations SET rate_limit = 1000000 WHERE id = :org',
             { org => $org });
$stack->redis_cli('HSET', "hh:org:$org", 'rate_limit', '1000000');

my @keys;
for (1 .. $KEYS) {
    my $key = $stack->admin('key', 'create', '--org', $org);
    chomp $key;
    push @keys, $key;
}

$stack->wait_until(
    sub { $stack->redis_cli('EXISTS', 'hh:tasktypes') =~ /^1/ },
    timeout => 30,
    what    => 'the writer to copy the task types to Redis',
);

my $body = '{"agent_id":"pool-agent","task_type":"ticket_routing",'
         . '"outcome":"success"}';


# Every key at once. Each answer's headers go to a file of its own.

my $header_stem = $stack->folder . '/burst-headers';
my @requests = map {
    { %{ track($keys[$_]) },
      curl_args => ["dump-header = \"$header_stem.$_\""] }
} 0 .. $#keys;

my $started = time;
my $results = $stack->request_many(requests => \@requests,
                                   parallel => $KEYS, bodies => 1,
                                   timeout => $REQUEST_TIMEOUT);
my $seconds = time - $started;

my %statuses;
$statuses{ $_->{status} }++ for @$results;
diag 'answers to ' . $KEYS . ' new keys at once: '
    . join(', ', map { "$statuses{$_} x $_" } sort keys %statuses)
    . sprintf(' in %.1f s', $seconds);

is $statuses{0} // 0, 0, 'burst: every request got an answer';
is $statuses{500} // 0, 0, 'burst: no 500';
cmp_ok $statuses{503} // 0, '>', 0, 'burst: some answers are 503';
is(($statuses{201} // 0) + ($statuses{503} // 0), $KEYS,
   'burst: every answer is 201 or 503');
cmp_ok $seconds, '<', $REQUEST_TIMEOUT, 'burst: no request waited for'
    . ' its timeout';

my @refused = grep { $results->[$_]{status} == 503 } 0 .. $#keys;
my @codes = map { $results->[$_]{json}{error}{code} // 'none' } @refused;
my @retry_after = map { retry_after("$header_stem.$_") } @refused;

is scalar(grep { $_ ne 'unavailable' } @codes), 0,
    'burst: every 503 is unavailable'
    or diag "codes: @codes";
is scalar(grep { $_ !~ /^\d+$/ } @retry_after), 0,
    'burst: every 503 has Retry-After in seconds'
    or diag "Retry-After values: @retry_after";

like $stack->error_log, qr/thread pool "humanhours" is full/,
    'the full thread pool is logged';


# Each refused key again, one at a time: the pool has room now.

my $retried = $stack->request_many(
    requests => [map { track($keys[$_]) } @refused], parallel => 1);
is scalar(grep { $_ == 201 } @$retried), scalar @refused,
    'refused keys sent again one at a time: all 201';

$stack->check_error_log('thread pool');

done_testing;


sub track ($key) {
    return {
        method  => 'POST',
        path    => '/v1/track',
        headers => { Authorization => "Bearer $key",
                     'Content-Type' => 'application/json' },
        body    => $body,
    };
}

# Returns the Retry-After value in a file of response headers written by
# curl, or 'missing'.
sub retry_after ($path) {
    my $headers = slurp($path) // return 'missing';
    return $headers =~ /^Retry-After:\s*(\S+)\s*$/mi ? $1 : 'missing';
}

sub slurp ($path) {
    open my $file, '<:raw', $path or return undef;
    local $/;
    return <$file>;
}
