#!/usr/bin/perl

# Stream entries that cannot be stored end in dead_letters and the entries
# around them are written: an entry that does not parse, entries that
# Postgres rejects inside a batch (found by splitting the batch), an entry
# delivered more than HH_MAX_DELIVERIES times, and an entry deleted from
# the stream while pending, which is only dropped.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::WriterTest qw(setup_org stream_entry event_id add_entries
                              metrics writer_env stream_length group_pending
                              events_count);

my $MARKER = 'payload-marker-5d1c';

my $stack = Humanhours::Stack->new;
$stack->start(qw(redis postgres));

$stack->start_writer(name => 'setup');
my $setup = setup_org($stack, 'dead-letters');
$stack->stop_writer('setup');

my ($org, $key_id) = @$setup{qw(org key_id)};


# One batch: good entries around an entry that does not parse (invalid
# UTF-8, a NUL byte and the marker in its event field) and an entry whose
# key id does not exist, which Postgres rejects.

my @good = map { event_id() } 1 .. 3;
my $rejected_id = event_id();

add_entries($stack, [
    stream_entry($org, $key_id, event_id => $good[0]),
    stream_entry($org, $key_id,
                 fields => { event => "{\"broken\": \xff\xfe\x00 $MARKER" }),
    stream_entry($org, $key_id, event_id => $good[1]),
    stream_entry($org, 999999, event_id => $rejected_id),
    stream_entry($org, $key_id, event_id => $good[2]),
]);

my @stream_ids = grep { /^\d+-\d+$/ } split /\n/,
                 $stack->redis_cli('XRANGE', 'hh:events', '-', '+');
is scalar @stream_ids, 5, 'five entries queued';

my ($env, $port) = writer_env();
$stack->start_writer(env => $env);

$stack->wait_for_sql('SELECT 1 FROM dead_letters HAVING count(*) = 2',
                     timeout => 20);
$stack->wait_until(sub { stream_length($stack) == 0 }, timeout => 20,
                   what => 'the stream to empty');

my %stored = map { $_->[0] => 1 } $stack->psql('SELECT event_id FROM events');
ok $stored{$_}, "good event $_ stored" for @good;
ok !$stored{$rejected_id}, 'rejected event not stored';
is group_pending($stack), 0, 'nothing left pending';

my @dead = $stack->psql(
    'SELECT stream_id, coalesce(event_id, \'\'), coalesce(org_id, 0),'
    . ' coalesce(key_id, 0), error, deliveries, payload'
    . ' FROM dead_letters ORDER BY stream_id');

is $dead[0][0], $stream_ids[1], 'unparseable entry in dead letters';
like $dead[0][4], qr/^the entry does not parse: field "event"/,
    'its error names the field';
is $dead[0][5], 1, 'moved on its first delivery';

my $payload = eval { JSON::PP->new->utf8->decode($dead[0][6]) };
ok $payload, 'its payload is JSON';
is $payload->{v}, '1', 'payload has the entry\'s fields';
like $payload->{event}, qr/^\{"broken": \x{fffd}\x{fffd}\x{0} \Q$MARKER\E$/,
    'invalid bytes became U+FFFD and the NUL survived';

is $dead[1][0], $stream_ids[3], 'rejected entry in dead letters';
is_deeply [@{ $dead[1] }[1 .. 3]], [$rejected_id, $org, 999999],
    'with its event, organisation and key ids';
like $dead[1][4], qr/^Postgres rejected the event: .*\(SQLSTATE 23503\)$/,
    'its error is the foreign key violation';

my $values = metrics($port);
is $values->{'hh_writer_dead_letters_total{reason="unparseable"}'}, 1,
    'metrics count the unparseable entry';
is $values->{'hh_writer_dead_letters_total{reason="rejected"}'}, 1,
    'metrics count the rejected entry';
is $values->{hh_writer_events_inserted_total}, 3, 'metrics count 3 events';

my $log = _slurp($stack->folder . '/writer.log');
like $log, qr/stream entry \Q$stream_ids[1]\E \(organisation unknown, key unknown\) moved to dead letters after 1 deliveries: the entry does not parse/,
    'unparseable entry logged by stream id';
like $log, qr/stream entry \Q$stream_ids[3]\E \(organisation $org, key 999999\) moved to dead letters after 1 deliveries: Postgres rejected it with SQLSTATE 23503/,
    'rejection logged with organisation, key and SQLSTATE';
unlike $log, qr/\Q$MARKER\E/, 'no payload in the log';


# A batch of 200 with three rejected entries scattered in it, one of them
# with an agent id too long for the registry's index (SQLSTATE 54000):
# splitting finds the three and stores the rest.

$stack->stop_writer;

my @long = map { ('a' .. 'z', 'A' .. 'Z', 0 .. 9)[rand 62] } 1 .. 10000;
my @batch;
my %bad = (20 => 999998, 101 => 'long', 177 => 999997);
for my $i (0 .. 199) {
    my $bad = $bad{$i};
    push @batch, !defined $bad ? stream_entry($org, $key_id)
               : $bad eq 'long' ? stream_entry($org, $key_id,
                                               agent_id => join '', @long)
               : stream_entry($org, $bad);
}
add_entries($stack, \@batch);

my $events_before = events_count($stack);
($env, $port) = writer_env(HH_BATCH_SIZE => 500, HH_BATCH_MS => 500);
$stack->start_writer(env => $env);

$stack->wait_for_sql('SELECT 1 FROM dead_letters HAVING count(*) = 5',
                     timeout => 20);
$stack->wait_until(sub { stream_length($stack) == 0 }, timeout => 20,
                   what => 'the stream to empty');

is events_count($stack) - $events_before, 197, '197 good events stored';
my @errors = map { $_->[0] } $stack->psql(
    'SELECT error FROM dead_letters ORDER BY stream_id OFFSET 2');
is scalar @errors, 3, 'three rejected entries in dead letters';
like $errors[1], qr/\(SQLSTATE 54000\)$/, 'long agent id: program limit';

$values = metrics($port);
is $values->{hh_writer_batch_size_count}, 1, 'all in one batch';

$log = _slurp($stack->folder . '/writer.log');
like $log, qr/Postgres rejected the 200 stream entries .* with SQLSTATE (?:23503|54000); storing each half/,
    'the split is logged';


# An entry delivered more often than HH_MAX_DELIVERIES (2): another
# consumer reads it three times and dies. And an entry deleted from the
# stream while pending at that consumer.

$stack->stop_writer;

my $tired_id = event_id();
add_entries($stack, [stream_entry($org, $key_id, event_id => $tired_id)]);
$stack->redis_cli(qw(XREADGROUP GROUP hh-writers ghost COUNT 1 STREAMS
                     hh:events >));
$stack->redis_cli(qw(XREADGROUP GROUP hh-writers ghost STREAMS hh:events 0))
    for 1 .. 2;

add_entries($stack, [stream_entry($org, $key_id)]);
$stack->redis_cli(qw(XREADGROUP GROUP hh-writers ghost COUNT 1 STREAMS
                     hh:events >));
my @ghost = grep { /^\d+-\d+$/ } split /\n/, $stack->redis_cli(
    qw(XPENDING hh:events hh-writers - + 10 ghost));
is scalar @ghost, 2, 'two entries pending at the dead consumer';
$stack->redis_cli('XDEL', 'hh:events', $ghost[1]);

($env, $port) = writer_env(HH_MAX_DELIVERIES => 2, HH_CLAIM_IDLE_MS => 1000);
$stack->start_writer(env => $env);

my ($row) = $stack->wait_for_sql(
    'SELECT deliveries, error FROM dead_letters WHERE event_id = :\'id\'',
    vars => { id => $tired_id }, timeout => 20);
is $row->[0], 4, 'moved on its fourth delivery';
like $row->[1], qr/^delivered 4 times without being stored, more than HH_MAX_DELIVERIES \(2\)$/,
    'its error gives the count and the limit';

$stack->wait_until(sub { group_pending($stack) == 0 }, timeout => 20,
                   what => 'nothing pending');
my ($tired_stored) = $stack->psql(
    'SELECT count(*) FROM events WHERE event_id = :\'id\'',
    { id => $tired_id });
is $tired_stored->[0], 0, 'its event is not stored';

$values = metrics($port);
is $values->{'hh_writer_dead_letters_total{reason="deliveries"}'}, 1,
    'metrics count it';

$log = _slurp($stack->folder . '/writer.log');
like $log, qr/dropped 1 pending entries that were deleted from stream/,
    'the deleted entry is dropped from the group';

done_testing;


sub _slurp ($path) {
    open my $file, '<', $path or return '';
    local $/;
    return <$file>;
}
