#!/usr/bin/perl

# Three writers in one consumer group on 20,000 stream entries added while
# they run: every event is stored once, none is missing, the registry and
# the rollups match the events, and each writer stored a share.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use List::Util qw(sum);
use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;
use Humanhours::WriterTest qw(setup_org stream_entry event_id add_entries
                              metrics writer_env stream_length group_pending
                              events_count);

my $EVENTS = 20_000;
my $CHUNK = 2_000;
my @WRITERS = qw(w1 w2 w3);

my $stack = Humanhours::Stack->new;
$stack->start(qw(redis postgres));

my %ports;
for my $name (@WRITERS) {
    # Small batches, so that the work is spread over many reads.
    my ($env, $port) = writer_env(HH_BATCH_SIZE => 200, HH_BATCH_MS => 50);
    $stack->start_writer(name => $name, env => $env);
    $ports{$name} = $port;
}

my $setup = setup_org($stack, 'scale-out');

# Ten chunks a short while apart, so that the writers read while entries
# keep arriving; agents and task types vary, so that the writers update the
# same registry and rollup rows concurrently.
my @ids;
for (my $done = 0; $done < $EVENTS; $done += $CHUNK) {
    my @entries;
    for my $i ($done .. $done + $CHUNK - 1) {
        my $id = event_id();
        push @ids, $id;
        push @entries, stream_entry($setup->{org}, $setup->{key_id},
            event_id  => $id,
            agent_id  => 'agent-' . ($i % 7),
            task_type => (qw(ticket_routing email_classification
                             meeting_summary))[$i % 3],
            agent_cost => '0.01');
    }
    add_entries($stack, \@entries);
    sleep 0.2;
}

is scalar(keys %{{ map { $_ => 1 } @ids }}), $EVENTS,
    "$EVENTS distinct event ids queued";

$stack->wait_until(sub { events_count($stack) >= $EVENTS },
                   timeout => 60, interval => 0.5,
                   what => "$EVENTS events in Postgres");


# No duplicates, no gaps.

is events_count($stack), $EVENTS, "exactly $EVENTS events stored";

my %stored = map { $_->[0] => 1 } $stack->psql('SELECT event_id FROM events');
my @missing = grep { !$stored{$_} } @ids;
is scalar @missing, 0, 'no queued event is missing';

my ($sums) = $stack->psql(
    'SELECT (SELECT sum(events) FROM daily_rollups),'
    . ' (SELECT sum(events) FROM agents),'
    . ' (SELECT sum(events) FROM automations),'
    . ' (SELECT count(*) FROM agents),'
    . ' (SELECT count(*) FROM daily_rollups)');
is_deeply $sums, [$EVENTS, $EVENTS, $EVENTS, 7, 21],
    'rollups and registry count each event once, in 7 agents and 21 rollups';

my ($money) = $stack->psql(
    'SELECT round((SELECT sum(hours_saved) FROM daily_rollups)::numeric, 6)'
    . ' = round((SELECT sum(hours_saved) FROM events)::numeric, 6),'
    . ' round((SELECT sum(agent_cost) FROM daily_rollups)::numeric, 6)'
    . ' = round((SELECT sum(agent_cost) FROM events)::numeric, 6),'
    . ' round((SELECT sum(net_saved) FROM daily_rollups)::numeric, 6)'
    . ' = round((SELECT sum(net_saved) FROM events)::numeric, 6)');
is_deeply $money, [qw(t t t)],
    'rollup sums of hours, agent cost and net saved match the events';

$stack->wait_until(sub { stream_length($stack) == 0 }, timeout => 20,
                   what => 'the stream to empty');
is group_pending($stack), 0, 'nothing left pending';


# Work shared.

my %inserted;
my $duplicates = 0;
for my $name (@WRITERS) {
    my $values = metrics($ports{$name});
    $inserted{$name} = $values->{hh_writer_events_inserted_total};
    $duplicates += $values->{hh_writer_events_duplicate_total};
}

diag join ', ', map { "$_ inserted $inserted{$_}" } @WRITERS;
is sum(values %inserted), $EVENTS, 'the writers inserted all events between them';
is $duplicates, 0, 'no writer saw an event stored twice';

for my $name (@WRITERS) {
    cmp_ok $inserted{$name}, '>=', $EVENTS / 20,
        "$name inserted at least 5 %";
}

my $log = join '', map { _slurp($stack->folder . "/$_.log") } @WRITERS;
unlike $log, qr/\[error\]/, 'no writer logged an error';

done_testing;


sub _slurp ($path) {
    open my $file, '<', $path or return '';
    local $/;
    return <$file>;
}
