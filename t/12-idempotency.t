#!/usr/bin/perl

# Idempotency-Key: a retry with the same body gets 200 and the original
# bytes with Idempotent-Replayed: true; another body under the same key is
# 422 idempotency_key_reused; concurrent requests with one key store one
# event; keys are scoped to the organisation.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Humanhours::Stack;

my $stack = Humanhours::Stack->new;
$stack->start;

my @keys;
for my $name (qw(first second)) {
    my $org = $stack->admin('org', 'create', '--name', $name, '--plan', 'pro');
    chomp $org;
    my $key = $stack->admin('key', 'create', '--org', $org);
    chomp $key;
    push @keys, $key;
}

sub track ($key, $idempotency_key, $body) {
    return $stack->request(
        method  => 'POST',
        path    => '/v1/track',
        headers => { Authorization => "Bearer $key",
                     'Content-Type' => 'application/json',
                     defined $idempotency_key
                         ? ('Idempotency-Key' => $idempotency_key) : () },
        body    => $body);
}

my $body = '{"agent_id":"retrier","task_type":"ticket_routing",'
         . '"outcome":"success","agent_duration_seconds":2.5,'
         . '"model":"m","metadata":{"try":1}}';


# First request, then a retry.

my $first = track($keys[0], 'retry-1', $body);
is $first->{status}, 201, 'first request: 201';
ok !exists $first->{headers}{'idempotent-replayed'}, 'first request: not replayed';

my $again = track($keys[0], 'retry-1', $body);
is $again->{status}, 200, 'retry: 200';
is $again->{headers}{'idempotent-replayed'}, 'true', 'retry: Idempotent-Replayed';
is $again->{body}, $first->{body}, 'retry: the original bytes';


# The same key with another body.

(my $other = $body) =~ s/"try":1/"try":2/;
my $reused = track($keys[0], 'retry-1', $other);
is $reused->{status}, 422, 'other body: 422';
is $reused->{json}{error}{code}, 'idempotency_key_reused',
    'other body: idempotency_key_reused';
is $reused->{json}{error}{field}, 'Idempotency-Key', 'other body: field';


# Keys belong to one organisation.

my $elsewhere = track($keys[1], 'retry-1', $body);
is $elsewhere->{status}, 201, 'same key in another organisation: 201';
isnt $elsewhere->{json}{event_id}, $first->{json}{event_id},
    'same key in another organisation: a new event';


# Without a key every request is new.

my $plain1 = track($keys[0], undef, $body);
my $plain2 = track($keys[0], undef, $body);
is $plain1->{status}, 201, 'no key: 201';
is $plain2->{status}, 201, 'no key again: 201';
isnt $plain1->{json}{event_id}, $plain2->{json}{event_id}, 'no key: two events';


# Invalid keys.

for my $case (['too long', 'k' x 256], ['space', 'a b'],
              ['non-ASCII', "caf\x{e9}"])
{
    my ($name, $value) = @$case;
    my $res = track($keys[0], $value, $body);
    is $res->{status}, 422, "$name idempotency key: 422";
    is $res->{json}{error}{field}, 'Idempotency-Key', "$name idempotency key: field";
}


# Fifty at once with one key: one event.

my $results = $stack->request_many(
    request => { method => 'POST', path => '/v1/track',
                 headers => { Authorization => "Bearer $keys[0]",
                              'Content-Type' => 'application/json',
                              'Idempotency-Key' => 'burst' },
                 body => $body },
    count => 50, parallel => 50, bodies => 1);

my %statuses;
$statuses{$_->{status}}++ for @$results;
is $statuses{201}, 1, 'burst: exactly one 201';
is $statuses{200}, 49, 'burst: 49 replays';
my %ids = map { $_->{json}{event_id} => 1 } @$results;
is scalar keys %ids, 1, 'burst: one event id in all answers';

my ($burst_id) = keys %ids;
$stack->wait_for_sql('SELECT 1 FROM events WHERE event_id = :\'id\'',
                     vars => { id => $burst_id });
my ($count) = $stack->psql(
    'SELECT count(*) FROM events WHERE event_id = :\'id\'',
    { id => $burst_id });
is $count->[0], 1, 'burst: one row in Postgres';

$stack->check_error_log('idempotency');

done_testing;
