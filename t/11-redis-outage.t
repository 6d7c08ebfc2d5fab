#!/usr/bin/perl

# Redis stopped under a running nginx: track answers 503 unavailable with
# Retry-After, stores nothing, and answers 201 again once Redis is back,
# without a restart or reload of nginx.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time sleep);
use Humanhours::Stack;

my $stack = Humanhours::Stack->new;
$stack->start;

my $org = $stack->admin(qw(org create --name outage --plan pro));
chomp $org;
my $key = $stack->admin('key', 'create', '--org', $org);
chomp $key;

my %request = (
    method  => 'POST',
    path    => '/v1/track',
    headers => { Authorization => "Bearer $key",
                 'Content-Type' => 'application/json' },
    json    => { agent_id => 'outage-agent', task_type => 'ticket_routing',
                 outcome => 'success' },
);

my $res = $stack->request(%request);
is $res->{status}, 201, 'before the outage: 201';
my $before = $res->{json}{event_id};

$stack->wait_for_sql('SELECT 1 FROM events WHERE event_id = :\'id\'',
                     vars => { id => $before });

$stack->stop_redis;

for my $attempt (1 .. 3) {
    $res = $stack->request(%request);
    is $res->{status}, 503, "Redis down, attempt $attempt: 503";
    is $res->{json}{error}{code}, 'unavailable',
        "Redis down, attempt $attempt: unavailable";
    is $res->{headers}{'retry-after'}, '1',
        "Redis down, attempt $attempt: Retry-After";
}

$stack->start_redis;

# The workers reconnect after a back-off of at most two seconds.
my $deadline = time + 10;
my $status = 0;
while (time < $deadline) {
    $res = $stack->request(%request);
    $status = $res->{status};
    last if $status == 201;
    sleep 0.2;
}

is $status, 201, 'Redis back: 201 again without touching nginx';

my $after = $res->{json}{event_id};
$stack->wait_for_sql('SELECT 1 FROM events WHERE event_id = :\'id\'',
                     vars => { id => $after }, timeout => 20);

my ($count) = $stack->psql('SELECT count(*) FROM events');
is $count->[0], 2, 'exactly the two confirmed events are stored';

like $stack->error_log, qr/lost the connection to Redis/,
    'the lost connection is logged';

$stack->check_error_log('redis outage');

done_testing;
