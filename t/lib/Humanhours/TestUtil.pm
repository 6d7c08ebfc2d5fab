package Humanhours::TestUtil;

# Helpers that several test files share: API keys, the module's counters
# from the metrics location, and wrk runs in the background with a Lua
# script that prints its summary as "hh NAME VALUE" lines.

use strict;
use warnings;
use feature qw(signatures);

use Exporter qw(import);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(create_key prefix_of metrics growth start_wrk
                    finish_wrk);


# Creates a live API key for the organisation and returns it.
sub create_key ($stack, $org) {
    my $key = $stack->admin('key', 'create', '--org', $org);
    chomp $key;
    return $key;
}

sub prefix_of ($key) {
    return substr $key, 8, 8;
}

# Returns the module's counters, keyed by metric name with any labels, from
# the metrics location.
sub metrics ($stack) {
    my $res = $stack->request(method => 'GET', path => '/humanhours/metrics',
                              scheme => 'http');
    die "the metrics location answered $res->{status}\n"
        unless $res->{status} == 200;

    my %values;
    for my $line (split /\n/, $res->{body}) {
        $values{$1} = $2 if $line =~ /^(\w+(?:\{[^}]*\})?) (\d+)$/;
    }
    return \%values;
}

# Returns how much each counter grew from one metrics() result to the next.
sub growth ($before, $after) {
    return { map { $_ => $after->{$_} - ($before->{$_} // 0) } keys %$after };
}

# Starts wrk in the background against the stack's HTTPS port, with one
# thread and the given connections and seconds. The script and the output
# go to NAME.lua and NAME.out in the stack folder.
sub start_wrk ($stack, $name, $lua, %opts) {
    my $folder = $stack->folder;
    my $script = "$folder/$name.lua";
    my $out = "$folder/$name.out";

    open my $file, '>', $script or die "cannot write $script: $!";
    print $file $lua or die "cannot write $script: $!";
    close $file or die "cannot write $script: $!";

    my @argv = ('wrk', '--threads', 1, '--connections', $opts{connections},
                '--duration', "$opts{seconds}s", '--timeout', '10s',
                '--script', $script, $stack->url('/v1/track'));

    my $pid = fork // die "fork for wrk failed: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        exec { $argv[0] } @argv or POSIX::_exit(127);
    }

    return { name => $name, pid => $pid, out => $out,
             deadline => time + $opts{seconds} + 20 };
}

# Waits for a wrk run, killing it when it overruns its duration by 20 s,
# and returns its summary: requests, errors, p50_us, p99_us, max_us,
# invalid_api_key (the sum over the threads, 0 when the script prints none)
# and statuses (status to count).
sub finish_wrk ($run) {
    my $status;
    while (1) {
        my $reaped = waitpid $run->{pid}, WNOHANG;
        if ($reaped == $run->{pid}) {
            $status = $?;
            last;
        }
        if (time > $run->{deadline}) {
            kill 'KILL', $run->{pid};
            waitpid $run->{pid}, 0;
            die "wrk $run->{name} did not finish in time\n";
        }
        sleep 0.1;
    }

    open my $file, '<', $run->{out} or die "cannot read $run->{out}: $!";
    my $text = do { local $/; <$file> };
    close $file;
    die "wrk $run->{name} failed (wait status $status):\n$text" if $status;

    my %result = (statuses => {}, invalid_api_key => 0);
    for my $line (split /\n/, $text) {
        if ($line =~ /^hh status (\d+) (\d+)$/) {
            $result{statuses}{$1} += $2;
        } elsif ($line =~ /^hh invalid_api_key (\d+)$/) {
            $result{invalid_api_key} += $1;
        } elsif ($line =~ /^hh (\w+) (\d+)$/) {
            $result{$1} = $2;
        }
    }
    die "wrk $run->{name} printed no summary:\n$text"
        unless defined $result{requests};

    return \%result;
}

1;
