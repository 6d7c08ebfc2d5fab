package Humanhours::WriterTest;

# Helpers for the writer's tests (t/6*.t) and auto/bench-writer on top of
# Humanhours::Stack: an organisation whose key is not rate limited, stream
# entries built as the module's track script builds them, background load
# through nginx, the writer's metrics, and Redis and Postgres counts.

use strict;
use warnings;
use feature qw(say signatures);

use Carp qw(croak);
use Digest::MD5 qw(md5_hex);
use Exporter qw(import);
use HTTP::Tiny;
use IO::Handle;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(setup_org stream_entry event_id add_entries
                    start_load finish_load metrics writer_env stream_length
                    group_pending events_count dead_consumer_pending
                    track_request);

# A rate limit far above what loopback tests reach.
my $NO_LIMIT = 10_000_000;

my $ULID_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
my $ULID_COUNTER = 0;


# Creates an enterprise organisation and a live key, lifts the key's rate
# limit, and waits until the writer's sync has copied the limit to Redis
# (a writer must run). Returns { org, key, key_id }.
sub setup_org ($stack, $name = 'writer-test') {
    my $org = $stack->admin('org', 'create', '--name', $name,
                            '--plan', 'enterprise');
    chomp $org;
    my $key = $stack->admin('key', 'create', '--org', $org);
    chomp $key;

    my $prefix = substr $key, 8, 8;
    my ($row) = $stack->psql(
        "UPDATE organisations SET rate_limit = $NO_LIMIT WHERE id = :'org';"
        . " SELECT id FROM api_keys WHERE prefix = :'prefix';"
        . " NOTIFY humanhours_sync;",
        { org => $org, prefix => $prefix });

    $stack->wait_until(
        sub {
            my $limit = $stack->redis_cli('HGET', "hh:org:$org",
                                          'rate_limit');
            return $limit =~ /^$NO_LIMIT$/m;
        },
        timeout => 20,
        what    => "the writer to sync the rate limit of organisation $org",
    );

    return { org => $org, key => $key, key_id => $row->[0] };
}

# Returns the request() arguments of a valid track call with the key.
sub track_request ($key, %json) {
    return (
        method  => 'POST',
        path    => '/v1/track',
        headers => { Authorization => "Bearer $key",
                     'Content-Type' => 'application/json' },
        json    => { agent_id => 'load-agent', task_type => 'ticket_routing',
                     outcome => 'success', agent_duration_seconds => 3,
                     %json },
    );
}

# Returns a new event id: "evt_", ten characters of the time in ms and
# sixteen of a counter and random bits, as a ULID has.
sub event_id () {
    my $ms = int(time * 1000);
    my $text = '';

    for (1 .. 10) {
        $text = substr($ULID_ALPHABET, $ms % 32, 1) . $text;
        $ms = int($ms / 32);
    }

    my $count = $ULID_COUNTER++;
    my $tail = '';
    for (1 .. 8) {
        $tail = substr($ULID_ALPHABET, $count % 32, 1) . $tail;
        $count = int($count / 32);
    }
    $tail .= substr($ULID_ALPHABET, int rand 32, 1) for 1 .. 8;

    return "evt_$text$tail";
}

# Returns the field-value list of one stream entry as the track script
# writes it. Options: event_id, agent_id, task_type, agent_cost, model,
# occurred_at, received_at (RFC 3339), test, metadata (JSON text), and
# fields (a hash of raw fields that replace or add to the computed ones).
sub stream_entry ($org, $key_id, %opts) {
    my $now = _rfc3339(time);
    my $agent = $opts{agent_id} // 'bench-agent';
    my $task = $opts{task_type} // 'ticket_routing';
    my $model = $opts{model};

    my $event = join '',
        '{"event_id":"', $opts{event_id} // event_id(), '",',
        '"org_id":', $org, ',"key_id":', $key_id, ',',
        '"test":', ($opts{test} ? 'true' : 'false'), ',',
        '"agent_id":', _json_string($agent), ',',
        '"task_type":', _json_string($task), ',',
        '"outcome":"success","agent_duration_seconds":3,',
        '"agent_cost":', $opts{agent_cost} // 'null', ',',
        '"model":', defined $model ? _json_string($model) : 'null', ',',
        '"tokens_in":null,"tokens_out":null,',
        '"occurred_at":"', $opts{occurred_at} // $now, '",',
        '"received_at":"', $opts{received_at} // $now, '",',
        '"fingerprint":"', md5_hex(join "\0", $agent, $task, $model // '',
                                   $key_id), '"}';

    my %fields = (
        v                => '1',
        event            => $event,
        baseline_minutes => '4',
        baseline_source  => 'builtin',
        hourly_rate      => '45',
        currency         => 'EUR',
        input_price      => '',
        output_price     => '',
        defined $opts{metadata} ? (metadata => $opts{metadata}) : (),
        %{ $opts{fields} // {} },
    );

    my @order = qw(v event baseline_minutes baseline_source hourly_rate
                   currency input_price output_price metadata);
    my %seen;
    my @list;
    for my $name (@order, sort keys %fields) {
        next if $seen{$name}++ || !exists $fields{$name};
        push @list, $name, $fields{$name};
    }

    return \@list;
}

# Adds entries (each a field-value list) to hh:events with one redis-cli
# --pipe, and returns their stream ids in order.
sub add_entries ($stack, $entries) {
    my $file = $stack->folder . "/tmp/xadd-$$-" . int(rand 1e9) . '.resp';
    open my $out, '>:raw', $file or die "cannot write $file: $!";
    for my $fields (@$entries) {
        my @args = ('XADD', 'hh:events', '*', @$fields);
        print $out '*' . scalar(@args) . "\r\n";
        for my $arg (@args) {
            use bytes;
            print $out '$' . length($arg) . "\r\n$arg\r\n";
        }
    }
    close $out or die "cannot write $file: $!";

    my $port = $stack->port('redis');
    my $output = `redis-cli -h 127.0.0.1 -p $port --pipe < '$file' 2>&1`;
    unlink $file;
    die "redis-cli --pipe failed: $output" if $? || $output !~ /errors: 0,/;

    my ($replies) = $output =~ /replies: (\d+)/;
    die "redis-cli --pipe answered $replies of " . scalar(@$entries)
        unless $replies == @$entries;

    return;
}

# Starts a child that sends track requests through nginx until
# finish_load() or the time limit: rounds of `per_round` requests with
# request_many, `parallel` at once, then `pause` seconds. Options:
# request (hash of request() arguments), total (stop after that many),
# per_round (20), parallel (4), pause (0.1), seconds (120).
sub start_load ($stack, %opts) {
    my $file = $stack->folder . "/tmp/load-$$-" . int(rand 1e9);
    my $request = $opts{request} // croak 'request is required';
    my $per_round = $opts{per_round} // 20;
    my $parallel = $opts{parallel} // 4;
    my $pause = $opts{pause} // 0.1;
    my $deadline = time + ($opts{seconds} // 120);
    my $total = $opts{total};

    my $pid = fork // die "fork failed: $!";
    if ($pid == 0) {
        eval {
            open my $out, '>>', $file or die "cannot write $file: $!";
            $out->autoflush(1);
            my $sent = 0;

            while (time < $deadline && !-e "$file.stop") {
                my $count = $per_round;
                $count = $total - $sent if defined $total
                                           && $total - $sent < $count;
                last if $count <= 0;

                my $started = time;
                my $results = $stack->request_many(
                    request => $request, count => $count,
                    parallel => $parallel, bodies => 1);
                my $ended = time;
                $sent += $count;

                for my $res (@$results) {
                    my $id = ref $res->{json} eq 'HASH'
                           ? $res->{json}{event_id} // '-' : '-';
                    printf $out "%.3f %.3f %d %s\n", $started, $ended,
                        $res->{status}, $id;
                }

                sleep $pause if $pause > 0;
            }
            1;
        } or print STDERR "load child failed: $@";
        POSIX::_exit(0);
    }

    return { pid => $pid, file => $file };
}

# Stops the load child, or with stop => 0 waits until it has sent its
# total, and returns its results: a list of hashes { started, ended,
# status, event_id } (event_id '-' when none). Options: stop (1), timeout
# (120 s, after which the child is killed).
sub finish_load ($load, %opts) {
    if ($opts{stop} // 1) {
        open my $stop, '>', "$load->{file}.stop"
            or die "cannot stop load: $!";
        close $stop;
    }

    my $deadline = time + ($opts{timeout} // 120);
    while (waitpid($load->{pid}, POSIX::WNOHANG()) == 0) {
        if (time > $deadline) {
            kill 'KILL', $load->{pid};
            waitpid $load->{pid}, 0;
            last;
        }
        sleep 0.1;
    }

    my @results;
    open my $in, '<', $load->{file} or return [];
    while (my $line = <$in>) {
        my ($started, $ended, $status, $id) = split ' ', $line;
        push @results, { started => $started, ended => $ended,
                         status => $status, event_id => $id };
    }
    close $in;
    unlink $load->{file}, "$load->{file}.stop";

    return \@results;
}

# Returns the environment of a writer with its metrics on a free port, and
# the port: (env hash, port).
sub writer_env (%extra) {
    my $port = Humanhours::Stack::free_port();
    return ({ HH_WRITER_METRICS => "127.0.0.1:$port", %extra }, $port);
}

# Fetches http://127.0.0.1:port/metrics and returns { 'name{labels}' =>
# value }, or undef when the writer does not answer.
sub metrics ($port) {
    my $res = HTTP::Tiny->new(timeout => 5)
        ->get("http://127.0.0.1:$port/metrics");
    return undef unless $res->{success};

    my %values;
    for my $line (split /\n/, $res->{content}) {
        next if $line =~ /^#/;
        my ($name, $value) = $line =~ /^(\S+) (\S+)$/ or next;
        $values{$name} = $value;
    }
    return \%values;
}

sub stream_length ($stack) {
    my $text = $stack->redis_cli('XLEN', 'hh:events');
    chomp $text;
    return $text + 0;
}

# Entries delivered to the group and not yet acknowledged.
sub group_pending ($stack) {
    my ($count) = split /\n/, $stack->redis_cli('XPENDING', 'hh:events',
                                                'hh-writers');
    return ($count // 0) + 0;
}

# Pending entries per consumer: { name => count }.
sub dead_consumer_pending ($stack) {
    my @lines = split /\n/, $stack->redis_cli('XINFO', 'CONSUMERS',
                                              'hh:events', 'hh-writers');
    my %pending;
    my $name;
    for (my $i = 0; $i + 1 < @lines; $i += 2) {
        $name = $lines[$i + 1] if $lines[$i] eq 'name';
        $pending{$name} = $lines[$i + 1] + 0
            if $lines[$i] eq 'pending' && defined $name;
    }
    return \%pending;
}

sub events_count ($stack) {
    my ($row) = $stack->psql('SELECT count(*) FROM events');
    return $row->[0];
}

sub _json_string ($text) {
    return JSON::PP->new->utf8->allow_nonref->encode($text);
}

sub _rfc3339 ($seconds) {
    my @t = gmtime int $seconds;
    return sprintf '%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', $t[5] + 1900,
        $t[4] + 1, $t[3], $t[2], $t[1], $t[0],
        int(($seconds - int $seconds) * 1000);
}

1;
