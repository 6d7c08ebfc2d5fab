package Humanhours::Stack;

# Starts and stops a local humanhours stack on 127.0.0.1: Redis, a Postgres
# cluster of its own, Debian's nginx with the module, and the writer. The test
# suite makes one per test file in a temporary folder on free ports; auto/run
# (make run) makes one in .run/ of the checkout on fixed ports and reuses its
# data. Every process it starts is stopped again when the object goes away.

use strict;
use warnings;
use feature qw(say signatures);

use Carp qw(croak);
use Config;
use Cwd qw(abs_path);
use Errno qw(ESRCH);
use Fcntl qw(O_WRONLY O_CREAT O_EXCL O_APPEND);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use IO::Socket::IP;
use JSON::PP;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(sleep time);

my $CHECKOUT = abs_path(dirname(__FILE__) . '/../../..');

my $PG_BIN = $ENV{HH_PG_BIN} // '/usr/lib/postgresql/15/bin';
my $NGINX  = $ENV{HH_NGINX} // '/usr/sbin/nginx';

# The pepper is raw random bytes. The module and the admin command strip one
# trailing newline and need at least 32 bytes left, so 48 bytes keep a margin.
my $PEPPER_BYTES = 48;

# Every stack made here (weak references), so that END stops them before
# global destruction, which destroys objects in no defined order.
my @LIVE_STACKS;

# Ports handed out by this process, so two stacks never get the same one.
my %PORTS_TAKEN;


# ---------------------------------------------------------------------------
# Construction and accessors
# ---------------------------------------------------------------------------

# Creates the stack folder, the pepper file and the TLS certificate; starts
# nothing. Options:
#   folder        persistent folder to use (kept at the end); default is a
#                 new folder under $TMPDIR, removed at the end unless HH_KEEP=1
#   ports         { https, http, redis, pg }; missing ones are picked free
#   workers       nginx worker_processes (2)
#   build         folder with the built binaries; default $HH_BUILD_DIR,
#                 else <checkout>/build
#   module        0 starts nginx without the module (no API locations)
#   http_config, server_config, location_config
#                 extra directive text for the http block, the server block
#                 and both track locations
#   require_https 'on' or 'off' for humanhours_require_https; unset leaves
#                 the module's default
#   max_body_size humanhours_max_body_size ('64k')
#   redis_timeout humanhours_redis_timeout ('1s')
#   key_cache     humanhours_key_cache ('zone=humanhours_keys:10m ttl=60s')
#   redis_config  extra lines for redis.conf
sub new ($class, %opts) {
    my $self = bless {
        owner_pid  => $$,
        checkout   => $CHECKOUT,
        build      => $opts{build} // $ENV{HH_BUILD_DIR} // "$CHECKOUT/build",
        workers    => $opts{workers} // 2,
        children   => {},
        exited     => {},
        nginx      => {
            module          => $opts{module} // 1,
            http_config     => $opts{http_config} // '',
            server_config   => $opts{server_config} // '',
            location_config => $opts{location_config} // '',
            require_https   => $opts{require_https},
            max_body_size   => $opts{max_body_size} // '64k',
            redis_timeout   => $opts{redis_timeout} // '1s',
            key_cache       => $opts{key_cache}
                               // 'zone=humanhours_keys:10m ttl=60s',
        },
        redis_config => $opts{redis_config} // '',
    }, $class;

    if (defined $opts{folder}) {
        $self->{folder} = abs_path($opts{folder}) // $opts{folder};
        make_path($self->{folder});
        $self->{temporary} = 0;
    } else {
        $self->{folder} = tempdir('humanhours-XXXXXXXX', TMPDIR => 1);
        $self->{temporary} = 1;
    }

    # The postgres user must be able to enter it to reach its data folder.
    chmod 0711, $self->{folder} if $self->{temporary};
    make_path("$self->{folder}/tmp");

    my %ports = %{ $opts{ports} // {} };
    for my $service (qw(https http redis pg)) {
        $self->{ports}{$service} = $ports{$service} // free_port();
    }

    $self->_make_pepper;
    $self->_make_pepper($self->webhook_key_file);
    $self->_make_certificate;
    $self->_install_signal_handlers;

    push @LIVE_STACKS, $self;
    weaken($LIVE_STACKS[-1]);

    return $self;
}

sub folder ($self)      { $self->{folder} }
sub build_dir ($self)   { $self->{build} }
sub checkout ($self)    { $self->{checkout} }
sub pepper_file ($self) { "$self->{folder}/pepper" }

# The server key that encrypts webhook secrets; made like the pepper.
sub webhook_key_file ($self) { "$self->{folder}/webhook-key" }
sub cert_file ($self)   { "$self->{folder}/tls/cert.pem" }

sub port ($self, $service) {
    return $self->{ports}{$service} // croak "no port for '$service'";
}

sub url ($self, $path, $scheme = 'https') {
    my $port = $self->port($scheme);
    return "$scheme://127.0.0.1:$port$path";
}

# Returns the libpq connection string of the stack's database.
sub conninfo ($self) {
    my $port = $self->port('pg');
    return "host=127.0.0.1 port=$port dbname=humanhours user=humanhours";
}

sub redis_address ($self) {
    return '127.0.0.1:' . $self->port('redis');
}

# Returns the environment that the writer and the admin command get.
sub env ($self) {
    return {
        HH_DATABASE    => $self->conninfo,
        HH_REDIS       => $self->redis_address,
        HH_PEPPER_FILE => $self->pepper_file,
        HH_WEBHOOK_KEY_FILE => $self->webhook_key_file,

        # The binaries build their default HH_DATABASE and HH_REDIS from
        # these; set too, so that nothing falls back to make run's ports.
        HH_PG_PORT     => $self->port('pg'),
        HH_REDIS_PORT  => $self->port('redis'),
    };
}


# ---------------------------------------------------------------------------
# Whole stack
# ---------------------------------------------------------------------------

# Starts the named parts in the order given; default is all of them.
sub start ($self, @parts) {
    @parts = qw(redis postgres nginx writer) unless @parts;

    for my $part (@parts) {
        my $method = "start_$part";
        croak "unknown part '$part'" unless $self->can($method);
        $self->$method;
    }

    return $self;
}

# Stops everything this object started, nginx first so that no request is
# accepted while the writer and Redis go away, and removes a temporary folder
# unless HH_KEEP=1. Nothing can be started afterwards.
sub stop_all ($self) {
    return if $self->{stopped} || $self->{owner_pid} != $$;
    $self->{stopped} = 1;

    local ($?, $@, $!);

    eval { $self->stop_nginx(timeout => 10) if $self->running('nginx'); 1 }
        or warn "stopping nginx failed: $@";

    for my $name ($self->writers) {
        eval { $self->stop_writer($name); 1 }
            or warn "stopping $name failed: $@";
    }

    eval { $self->stop_redis if $self->running('redis'); 1 }
        or warn "stopping Redis failed: $@";

    eval { $self->stop_postgres if $self->running('postgres'); 1 }
        or warn "stopping Postgres failed: $@";

    # Anything else spawned under another name.
    for my $name (keys %{ $self->{children} }) {
        $self->_stop_child($name, TERM => 5);
    }

    $self->_remove_folder;
}

sub DESTROY ($self) {
    $self->stop_all;
}

END {
    for my $stack (grep { defined } @LIVE_STACKS) {
        $stack->stop_all;
    }
}

sub _remove_folder ($self) {
    return unless $self->{temporary};

    if ($ENV{HH_KEEP}) {
        print STDERR "# HH_KEEP is set: stack folder kept in $self->{folder}\n";
        return;
    }

    remove_tree($self->{folder}, { safe => 0 });
}

# A test that is interrupted (Ctrl-C in prove, a timeout's SIGTERM) would
# otherwise die without running END, leaving the servers running.
sub _install_signal_handlers ($self) {
    my %numbers = (HUP => 1, INT => 2, TERM => 15);

    for my $signal (sort keys %numbers) {
        my $handler = $SIG{$signal};
        next if defined $handler && $handler ne '' && $handler ne 'DEFAULT';
        $SIG{$signal} = sub { exit 128 + $numbers{$signal} };
    }
}


# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

sub start_redis ($self) {
    croak 'Redis is already running' if $self->running('redis');

    my $folder = $self->{folder};
    make_path("$folder/redis");
    $self->_write_file("$folder/redis.conf", $self->_redis_config);

    $self->_spawn(
        name   => 'redis',
        argv   => ['redis-server', "$folder/redis.conf"],
        output => "$folder/redis.out",
    );

    $self->wait_until(
        sub { $self->_redis_ready },
        timeout => 20,
        what    => 'Redis to accept connections',
        process => 'redis',
        logs    => ["$folder/redis.log", "$folder/redis.out"],
    );

    return $self;
}

# Stops Redis with SIGTERM, which makes it flush the AOF and exit.
sub stop_redis ($self, %opts) {
    return $self->_stop_child('redis', TERM => $opts{timeout} // 20);
}

# Kills Redis with SIGKILL, as a crash would.
sub kill_redis ($self) {
    return $self->_stop_child('redis', KILL => 5);
}

# Restarts Redis on the same port with the same data.
sub restart_redis ($self) {
    $self->stop_redis if $self->running('redis');
    return $self->start_redis;
}

# Runs redis-cli against this stack's Redis and returns its stdout. Dies with
# stderr when redis-cli fails; Redis error replies arrive on stdout.
sub redis_cli ($self, @args) {
    my $result = $self->_capture(
        argv    => ['redis-cli', '-h', '127.0.0.1', '-p', $self->port('redis'),
                    @args],
        timeout => 30,
    );

    die "redis-cli @args failed: $result->{stderr}" if $result->{status};
    return $result->{stdout};
}

# Ready means that our child answers, not another server on the same port.
sub _redis_ready ($self) {
    my $result = $self->_capture(
        argv    => ['redis-cli', '-h', '127.0.0.1', '-p', $self->port('redis'),
                    'INFO', 'server'],
        timeout => 5,
    );
    return 0 if $result->{status};

    my ($pid) = $result->{stdout} =~ /^process_id:(\d+)/m;
    return defined $pid && $pid == $self->pid('redis');
}

sub _redis_config ($self) {
    my $folder = $self->{folder};
    my $port = $self->port('redis');

    # appendfsync always: an event that Redis acknowledged survives a crash.
    # noeviction: a test that sets maxmemory gets write errors when Redis is
    # full, never silently evicted events.
    return <<"EOF" . $self->{redis_config} . "\n";
# Generated by Humanhours::Stack at every start; edits are lost.
bind 127.0.0.1
port $port
protected-mode yes
daemonize no
pidfile $folder/redis.pid
logfile $folder/redis.log
dir $folder/redis
appendonly yes
appendfsync always
save ""
maxmemory-policy noeviction
EOF
}


# ---------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------

# Starts the stack's Postgres cluster, creating it on the first start, makes
# sure the humanhours role and database exist, and applies the migrations
# unless migrate => 0. The postmaster runs as a child of this process (not
# through pg_ctl start), so that it has a pid here and dies with this process.
sub start_postgres ($self, %opts) {
    croak 'Postgres is already running' if $self->running('postgres');

    my $data = $self->_pg_data;
    $self->_check_postgres_can_reach_folder;
    $self->_init_postgres unless -e "$data/PG_VERSION";
    $self->_write_postgres_config;
    $self->_stop_leftover_postgres;

    $self->_spawn(
        name         => 'postgres',
        argv         => ["$PG_BIN/postgres", '-D', $data],
        output       => $self->_pg_log,
        user         => 'postgres',
        death_signal => 'INT',
    );

    $self->wait_until(
        sub { $self->_postgres_ready },
        timeout => 60,
        what    => 'Postgres to accept connections',
        process => 'postgres',
        logs    => [$self->_pg_log],
    );

    $self->_create_database;
    $self->admin('migrate') if $opts{migrate} // 1;

    return $self;
}

# Stops Postgres with pg_ctl's fast mode: open transactions are rolled back,
# then the server shuts down cleanly. Returns the postmaster's wait status.
sub stop_postgres ($self, %opts) {
    return undef unless $self->running('postgres');
    my $timeout = $opts{timeout} // 60;

    my $result = $self->_capture(
        argv    => [$self->_as_postgres("$PG_BIN/pg_ctl", 'stop', '-D',
                    $self->_pg_data, '-m', 'fast', '-w', '-t', $timeout, '-s')],
        timeout => $timeout + 10,
    );
    warn "pg_ctl stop failed: $result->{stderr}" if $result->{status};

    # After a successful pg_ctl stop this only reaps the postmaster.
    return $self->_stop_child('postgres', QUIT => 10);
}

# Kills the postmaster with SIGKILL, as a crash would. The next start runs
# crash recovery.
sub kill_postgres ($self) {
    return $self->_stop_child('postgres', KILL => 5);
}

sub restart_postgres ($self, %opts) {
    $self->stop_postgres;
    return $self->start_postgres(migrate => 0, %opts);
}

# Runs SQL against the stack's database as the humanhours role and returns
# the rows as array references. Values from vars are passed with psql -v and
# used in the SQL as :'name' (a quoted literal) or :name. NULL comes back as
# an empty string, and a value that contains a tab or a newline splits wrongly.
sub psql ($self, $sql, $vars = {}, %opts) {
    my $user = $opts{user} // 'humanhours';
    my $database = $opts{database} // 'humanhours';

    my @argv = ("$PG_BIN/psql", '-X', '-A', '-t', '-q', '-F', "\t",
                '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1',
                '-p', $self->port('pg'), '-U', $user);
    for my $name (sort keys %$vars) {
        push @argv, '-v', "$name=$vars->{$name}";
    }
    push @argv, $database;

    my $result = $self->_capture(
        argv    => \@argv,
        stdin   => $sql,
        env     => { PGCONNECT_TIMEOUT => 5 },
        timeout => $opts{timeout} // 60,
    );
    die "psql failed: $result->{stderr}\nSQL: $sql\n" if $result->{status};

    # Every row ends with a newline; a row of one empty value is an empty line.
    my @lines = split /\n/, $result->{stdout}, -1;
    pop @lines;
    return map { length $_ ? [split /\t/, $_, -1] : [''] } @lines;
}

# The postmaster writes its pid on the first line of postmaster.pid and
# "ready" on the eighth once it accepts connections; pg_ctl -w waits for the
# same. A connection test alone could reach another server on the port.
sub _postgres_ready ($self) {
    my $content = _slurp($self->_pg_data . '/postmaster.pid') // return 0;
    my @lines = split /\n/, $content;

    return 0 unless @lines >= 8 && $lines[0] =~ /^\d+$/;
    return $lines[0] == $self->pid('postgres') && $lines[7] =~ /^ready\s*$/;
}

sub _pg_data ($self) { "$self->{folder}/pg" }
sub _pg_log ($self)  { "$self->{folder}/postgres.log" }

# initdb and postgres refuse to run as root, so as root they run as the
# postgres system user on a data folder that user owns.
sub _as_postgres ($self, @argv) {
    return @argv if $> != 0;
    return ('runuser', '-u', 'postgres', '--', @argv);
}

sub _chown_to_postgres ($self, @paths) {
    return if $> != 0;

    my (undef, undef, $uid, $gid) = getpwnam('postgres')
        or die "no postgres system user: install postgresql-15\n";
    chown $uid, $gid, @paths or die "chown postgres @paths: $!";
}

sub _check_postgres_can_reach_folder ($self) {
    return if $> != 0;

    my $result = $self->_capture(
        argv => [$self->_as_postgres('test', '-x', $self->{folder})],
    );
    return if $result->{status} == 0;

    die "the postgres user cannot enter $self->{folder}: allow it to "
        . "traverse every parent folder (chmod o+x) or use another folder\n";
}

sub _init_postgres ($self) {
    my $data = $self->_pg_data;

    make_path($data);
    chmod 0700, $data;
    $self->_chown_to_postgres($data);

    # --no-sync only for throw-away clusters: it skips initdb's own fsync
    # calls, not the server's (fsync stays on).
    my @no_sync = $self->{temporary} ? ('--no-sync') : ();

    my $result = $self->_capture(
        argv    => [$self->_as_postgres("$PG_BIN/initdb", '-D', $data,
                    '-U', 'postgres', '--auth=trust', '--encoding=UTF8',
                    '--no-locale', '--no-instructions', @no_sync)],
        timeout => 120,
    );
    die "initdb failed: $result->{stderr}$result->{stdout}"
        if $result->{status};

    # Trust, but only over TCP from 127.0.0.1: there is no Unix socket.
    $self->_write_file("$data/pg_hba.conf",
        "# Generated by Humanhours::Stack.\n"
        . "host all all 127.0.0.1/32 trust\n");

    open my $conf, '>>', "$data/postgresql.conf"
        or die "cannot append to $data/postgresql.conf: $!";
    print $conf "\ninclude_if_exists = 'humanhours.conf'\n";
    close $conf or die "cannot write $data/postgresql.conf: $!";
}

# Written at every start, so that a changed port takes effect on a reused
# cluster.
sub _write_postgres_config ($self) {
    my $path = $self->_pg_data . '/humanhours.conf';
    my $port = $self->port('pg');

    $self->_write_file($path, <<"EOF");
# Generated by Humanhours::Stack at every start; edits are lost.
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = on
synchronous_commit = on
log_line_prefix = '%m [%p] %q%u\@%d '
EOF
    $self->_chown_to_postgres($path);
}

# Where Linux's parent-death signal is not set (other architectures), a run
# killed with SIGKILL leaves its postmaster running on the reused folder;
# stop it so that this start does not fail on the pid file.
sub _stop_leftover_postgres ($self) {
    my $data = $self->_pg_data;
    return unless -e "$data/postmaster.pid";

    my $status = $self->_capture(
        argv => [$self->_as_postgres("$PG_BIN/pg_ctl", 'status', '-D', $data)],
    );
    return if $status->{status};

    warn "stopping a Postgres left running in $data\n";
    $self->_capture(
        argv    => [$self->_as_postgres("$PG_BIN/pg_ctl", 'stop', '-D', $data,
                    '-m', 'fast', '-w', '-t', '60', '-s')],
        timeout => 70,
    );
}

# Creates the humanhours role and database when they are missing. The role
# owns the database but is no superuser, as in a real installation.
sub _create_database ($self) {
    my $sql = <<'EOF';
SELECT 'CREATE ROLE humanhours LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'humanhours')
\gexec
SELECT 'CREATE DATABASE humanhours OWNER humanhours'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'humanhours')
\gexec
EOF

    $self->psql($sql, {}, user => 'postgres', database => 'postgres');
}


# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------

# Writes nginx.conf and starts nginx as a child (daemon off), then waits
# until it listens on both ports. Options override the constructor's
# nginx options for this and later starts and reloads.
sub start_nginx ($self, %opts) {
    croak 'nginx is already running' if $self->running('nginx');

    my $folder = $self->{folder};
    $self->_write_nginx_config(%opts);
    unlink "$folder/nginx.pid";

    $self->_spawn(
        name   => 'nginx',
        argv   => $self->_nginx_argv,
        output => "$folder/nginx.out",
    );

    # nginx writes its pid file after it bound every listening socket, so
    # the file, not a connection test that another server on the port could
    # pass, shows that this nginx is ready.
    $self->wait_until(
        sub {
            my $content = _slurp("$folder/nginx.pid") // return 0;
            my ($pid) = $content =~ /^(\d+)/;
            return defined $pid && $pid == $self->pid('nginx');
        },
        timeout => 20,
        what    => 'nginx to bind its ports',
        process => 'nginx',
        logs    => ["$folder/error.log", "$folder/nginx.out"],
    );

    return $self;
}

# Stops nginx gracefully (SIGQUIT), so that the module's exit hooks run and
# any shutdown-time alert reaches the error log; SIGTERM, then SIGKILL, if it
# takes longer than the timeout.
sub stop_nginx ($self, %opts) {
    return $self->_stop_child('nginx', QUIT => $opts{timeout} // 10,
                              TERM => 5);
}

# Rewrites nginx.conf with the given overrides and reloads it with SIGHUP.
# Returns once the new workers run and the old ones exited (a warning when
# the old ones are still busy after the timeout). Dies when nginx rejected
# the new configuration, quoting the [emerg] line, which stays in the error
# log; nginx_config_test tries a configuration without that.
sub reload_nginx ($self, %opts) {
    croak 'nginx is not running' unless $self->running('nginx');

    my $timeout = delete $opts{timeout} // 20;
    my $old_workers = $self->{workers};
    my $log = "$self->{folder}/error.log";
    my $offset = -s $log // 0;

    $self->_write_nginx_config(%opts);
    kill 'HUP', $self->pid('nginx');

    $self->wait_until(
        sub {
            my $new = _read_from($log, $offset);
            die "nginx rejected the new configuration: $1\n"
                if $new =~ /^(.*\[emerg\].*)$/m;
            my $started = () = $new =~ /start worker process \d+/g;
            return $started >= $self->{workers};
        },
        timeout => $timeout,
        what    => 'nginx to start new workers after reload',
        process => 'nginx',
    );

    my $exited = eval {
        $self->wait_until(
            sub {
                my $new = _read_from($log, $offset);
                my $count = () = $new =~ /worker process \d+ exited/g;
                return $count >= $old_workers;
            },
            timeout => $timeout,
            what    => 'the old nginx workers to exit after reload',
        );
    };
    warn $@ unless $exited;

    return $self;
}

# Checks the configuration with the given overrides with nginx -t. The
# overrides are not kept, and the file and log it uses are not those of the
# running nginx, so a rejected configuration leaves no [emerg] line in the
# error log. Returns (1, output) when nginx accepts it and (0, output)
# otherwise.
sub nginx_config_test ($self, %opts) {
    my $folder = $self->{folder};
    my %saved_options = %{ $self->{nginx} };
    my $saved_workers = $self->{workers};

    my $text = eval {
        $self->_apply_nginx_options(%opts);
        $self->_nginx_config;
    };
    my $error = $@;
    $self->{nginx} = \%saved_options;
    $self->{workers} = $saved_workers;
    die $error unless defined $text;

    $self->_write_file("$folder/nginx-test.conf", $text);
    my $result = $self->_capture(
        argv    => [$NGINX, '-t', '-p', "$folder/",
                    '-c', "$folder/nginx-test.conf",
                    '-e', "$folder/nginx-test.log"],
        timeout => 60,
    );

    my $output = $result->{stdout} . $result->{stderr};
    return ($result->{status} == 0 ? 1 : 0, $output);
}

sub module_file ($self) {
    return "$self->{build}/ngx_http_humanhours_module.so";
}

sub error_log ($self) {
    return _slurp("$self->{folder}/error.log") // '';
}

sub access_log ($self) {
    return _slurp("$self->{folder}/access.log") // '';
}

# Returns the [alert] and [emerg] lines of the error log.
sub error_log_alerts ($self) {
    return grep { /\[(?:alert|emerg)\]/ } split /\n/, $self->error_log;
}

# Stops nginx gracefully when it runs, so that alerts logged at shutdown
# count too, then asserts with Test::More that the error log has no [alert]
# or [emerg] line. Meant as the last check of a test file.
sub check_error_log ($self, $name = 'nginx error log has no alert or emerg') {
    require Test::More;

    $self->stop_nginx if $self->running('nginx');

    my @alerts = $self->error_log_alerts;
    my $ok = Test::More::ok(!@alerts, $name);
    Test::More::diag(join "\n", @alerts) if @alerts;

    return $ok;
}

sub _nginx_argv ($self) {
    my $folder = $self->{folder};
    return [$NGINX, '-p', "$folder/", '-c', "$folder/nginx.conf",
            '-e', "$folder/error.log"];
}

sub _write_nginx_config ($self, %opts) {
    $self->_apply_nginx_options(%opts);
    $self->_write_file("$self->{folder}/nginx.conf", $self->_nginx_config);
}

sub _apply_nginx_options ($self, %opts) {
    for my $key (keys %opts) {
        if ($key eq 'workers') {
            $self->{workers} = $opts{$key};
            next;
        }
        croak "unknown nginx option '$key'" unless exists $self->{nginx}{$key};
        $self->{nginx}{$key} = $opts{$key};
    }

    if ($self->{nginx}{module} && !-e $self->module_file) {
        die $self->module_file . " is missing: run 'make module' first\n";
    }

    for my $temp (qw(client_body proxy fastcgi uwsgi scgi)) {
        make_path("$self->{folder}/temp/$temp");
    }
}

sub _nginx_config ($self) {
    my $folder = $self->{folder};
    my $cfg = $self->{nginx};
    my $https = $self->port('https');
    my $http = $self->port('http');

    my $main = '';
    my $http_module = '';
    my $api_locations = '';

    if ($cfg->{module}) {
        my $module = $self->module_file;
        my $redis = $self->redis_address;
        my $pepper = $self->pepper_file;

        $main = "load_module $module;\n";

        $http_module = <<"EOF";
    humanhours_redis $redis;
    humanhours_redis_timeout $cfg->{redis_timeout};
    humanhours_pepper_file $pepper;
    humanhours_key_cache $cfg->{key_cache};
    humanhours_thread_pool humanhours;
EOF

        my $track = "            humanhours_track;\n"
            . "            humanhours_max_body_size $cfg->{max_body_size};\n";
        $track .= ' ' x 12
            . "humanhours_require_https $cfg->{require_https};\n"
            if defined $cfg->{require_https};
        $track .= _indent($cfg->{location_config}, 12);

        my $https = defined $cfg->{require_https}
            ? ' ' x 12 . "humanhours_require_https $cfg->{require_https};\n"
            : '';

        $api_locations = <<"EOF";
        location = /v1/track {
$track        }

        location = /api/v1/track {
$track        }

        location ~ ^(/api)?/v1/agents\$ {
            humanhours_agents;
$https        }

        location ~ ^(/api)?/v1/task-types\$ {
            humanhours_task_types;
$https        }

        location ~ ^(/api)?/v1/reports/usage\$ {
            humanhours_usage;
$https        }

        location = /humanhours/metrics {
            humanhours_metrics;
            allow 127.0.0.1;
            deny all;
        }

EOF
    }

    # As root, workers would run as nobody, who cannot write the temp folders
    # or read the pepper file, both owned by root.
    $main .= "user root;\n" if $> == 0;

    my $http_extra = _indent($cfg->{http_config}, 4);
    my $server_extra = _indent($cfg->{server_config}, 8);
    my $cert = $self->cert_file;
    my $key = "$folder/tls/key.pem";

    return <<"EOF";
# Generated by Humanhours::Stack at every start and reload; edits are lost.
${main}daemon off;
master_process on;
worker_processes $self->{workers};
error_log $folder/error.log info;
pid $folder/nginx.pid;
thread_pool humanhours threads=2 max_queue=64;

events {
    worker_connections 1024;
}

http {
    access_log $folder/access.log;

    client_body_temp_path $folder/temp/client_body;
    proxy_temp_path $folder/temp/proxy;
    fastcgi_temp_path $folder/temp/fastcgi;
    uwsgi_temp_path $folder/temp/uwsgi;
    scgi_temp_path $folder/temp/scgi;

    ssl_certificate $cert;
    ssl_certificate_key $key;

$http_module$http_extra
    server {
        listen 127.0.0.1:$https ssl http2;
        listen 127.0.0.1:$http;
        server_name localhost;
$server_extra
$api_locations        # The cheapest possible answer: the benchmark's baseline.
        location = /bench/return201 {
            return 201;
        }

        location / {
            return 404;
        }
    }
}
EOF
}

sub _indent ($text, $columns) {
    return '' if !defined $text || $text eq '';

    my $pad = ' ' x $columns;
    my $indented = join '', map { "$pad$_\n" } split /\n/, $text;
    return $indented;
}


# ---------------------------------------------------------------------------
# The writer and the admin command
# ---------------------------------------------------------------------------

# Starts build/humanhours-writer as a child with the stack's environment.
# Options: name (default 'writer'; each writer of several needs its own),
# env (extra variables), args (extra arguments). Its stdout and stderr go to
# <folder>/<name>.log. Dies when the writer exits within its first 300 ms.
sub start_writer ($self, %opts) {
    my $name = $opts{name} // 'writer';
    croak "$name is already running" if $self->running($name);

    my $binary = "$self->{build}/humanhours-writer";
    die "$binary is missing: run 'make' first\n" unless -x $binary;

    my $log = "$self->{folder}/$name.log";
    $self->_spawn(
        name   => $name,
        argv   => [$binary, @{ $opts{args} // [] }],
        env    => { %{ $self->env }, %{ $opts{env} // {} } },
        output => $log,
    );
    $self->{writer_names}{$name} = 1;

    # The writer has no readiness signal of its own yet; a short look at it
    # catches a bad environment or a failed connection at start-up.
    my $deadline = time + 0.3;
    while (time < $deadline) {
        die "$name exited at start:\n" . _tail($log)
            unless $self->running($name);
        sleep 0.05;
    }

    return $name;
}

# Stops a writer with SIGTERM, SIGKILL after the timeout. Returns its wait
# status ($? form), or undef when it was not running.
sub stop_writer ($self, $name = 'writer', %opts) {
    return $self->_stop_child($name, TERM => $opts{timeout} // 20);
}

# Kills a writer with SIGKILL, as a crash would.
sub kill_writer ($self, $name = 'writer') {
    return $self->_stop_child($name, KILL => 5);
}

# Returns the names of the writers that still run.
sub writers ($self) {
    return grep { $self->running($_) } sort keys %{ $self->{writer_names} };
}

# Runs build/humanhours-admin with the stack's environment and returns its
# stdout. Dies with its stderr when it fails.
sub admin ($self, @args) {
    my $result = $self->admin_result(@args);

    if ($result->{status}) {
        my $code = $result->{status} >> 8;
        die "humanhours-admin @args failed (exit $code): $result->{stderr}";
    }

    return $result->{stdout};
}

# Runs build/humanhours-admin and returns { status, exit_code, stdout, stderr }
# without dying, for tests of its failures. Options go in a hash reference as
# the first argument: { stdin => text, env => {...} }.
sub admin_result ($self, @args) {
    my %opts = ref $args[0] eq 'HASH' ? %{ shift @args } : ();

    my $binary = "$self->{build}/humanhours-admin";
    die "$binary is missing: run 'make' first\n" unless -x $binary;

    my $result = $self->_capture(
        argv    => [$binary, @args],
        env     => { %{ $self->env }, %{ $opts{env} // {} } },
        stdin   => $opts{stdin},
        timeout => 120,
    );
    $result->{exit_code} = $result->{status} >> 8;

    return $result;
}


# ---------------------------------------------------------------------------
# HTTP requests through curl
# ---------------------------------------------------------------------------

# Sends one request with curl, so that TLS, HTTP/2 and chunked bodies behave
# as with a real client. Arguments:
#   method   default POST
#   path     default /v1/track
#   scheme   https (default) or http
#   headers  hash reference, or array reference of name, value pairs; a value
#            of undef removes a header curl adds by itself (User-Agent,
#            Accept); Content-Type is sent only when given or with json
#   body     raw body bytes; json a data structure to send encoded as JSON
#            with Content-Type: application/json unless one is given
#   http2    1 for HTTP/2 (over TLS); default HTTP/1.1
#   timeout  seconds for the whole transfer (30)
#   curl_args extra curl config lines, such as 'limit-rate = "1k"'
# Returns { status, headers (lower-cased names; repeated ones joined with
# ", "), body, json (decoded body or undef), error (curl's stderr) }. A
# status of 0 means no response arrived.
sub request ($self, %args) {
    my $folder = "$self->{folder}/tmp";
    my $id = $self->{request_count}++;
    my $config_file = "$folder/curl-$$-$id.config";
    my $header_file = "$folder/curl-$$-$id.headers";
    my $body_file = "$folder/curl-$$-$id.body";

    my $config = $self->_curl_transfer_config(\%args, "$folder/curl-$$-$id");
    $config .= _curl_option('dump-header', $header_file);
    $config .= _curl_option('output', $body_file);
    $config .= _curl_option('write-out', '%{http_code}');
    $self->_write_file($config_file, $config);

    my $result = $self->_capture(
        argv    => ['curl', '-K', $config_file],
        timeout => ($args{timeout} // 30) + 10,
    );

    my $response = {
        status  => $result->{stdout} =~ /^(\d{3})$/ ? $1 + 0 : 0,
        headers => _parse_headers(_slurp($header_file) // ''),
        body    => _slurp($body_file) // '',
        error   => $result->{stderr},
    };
    $response->{json} = _decode_json($response->{body});

    unlink $config_file, $header_file, $body_file, "$folder/curl-$$-$id.data";
    return $response;
}

# Sends many requests with one curl process and returns their statuses in
# the order given (0 where no response arrived). Arguments:
#   requests  array reference of request() argument hashes, or
#   request and count: one request sent count times
#   parallel  transfers at once (default 10; 1 sends one after another)
#   http2, scheme, timeout  as for request(), for all of them
#   bodies    1 returns { status, body, json } hashes instead of statuses
sub request_many ($self, %args) {
    my @requests = $args{requests} ? @{ $args{requests} }
                 : (($args{request} // {}) x ($args{count} // 1));
    return [] unless @requests;

    my $folder = "$self->{folder}/tmp";
    my $batch = "$folder/many-$$-" . $self->{request_count}++;
    my $parallel = $args{parallel} // 10;
    my %shared = map { $_ => $args{$_} } grep { exists $args{$_} }
                 qw(http2 scheme timeout);

    my %body_files;
    my @blocks;
    for my $i (0 .. $#requests) {
        my %request = (%shared, %{ $requests[$i] });
        my $output = $args{bodies} ? "$batch.$i.body" : '/dev/null';

        my $block = $self->_curl_transfer_config(\%request, "$batch.$i",
            \%body_files);
        $block .= _curl_option('output', $output);
        $block .= _curl_option('write-out', "%{urlnum} %{http_code}\\n");
        push @blocks, $block;
    }

    $self->_write_file("$batch.config", join "next\n", @blocks);

    my @parallel = $parallel > 1
        ? ('--parallel', '--parallel-max', $parallel) : ();
    my $result = $self->_capture(
        argv    => ['curl', @parallel, '-K', "$batch.config"],
        timeout => 600,
    );

    my @statuses = (0) x @requests;
    for my $line (split /\n/, $result->{stdout}) {
        my ($index, $status) = $line =~ /^(\d+) (\d{3})$/ or next;
        $statuses[$index] = $status + 0;
    }

    my @results = @statuses;
    if ($args{bodies}) {
        @results = map {
            my $body = _slurp("$batch.$_.body") // '';
            { status => $statuses[$_], body => $body,
              json => _decode_json($body) };
        } 0 .. $#requests;
    }

    unlink "$batch.config", values %body_files,
        map { "$batch.$_.body" } 0 .. $#requests;
    return \@results;
}

# Returns the curl config lines for one transfer: URL, method, headers,
# body, protocol and the options every transfer gets. Bodies are written to
# files named from $stem; body_files, when given, shares one file among
# transfers with equal bodies.
sub _curl_transfer_config ($self, $args, $stem, $body_files = undef) {
    my $method = $args->{method} // 'POST';
    my $scheme = $args->{scheme} // 'https';
    my $path = $args->{path} // '/v1/track';

    my @headers = _header_pairs($args->{headers});
    my $body = $args->{body};

    if (exists $args->{json}) {
        $body = JSON::PP->new->utf8->canonical->encode($args->{json});
        push @headers, 'Content-Type' => 'application/json'
            unless _has_header(\@headers, 'Content-Type');
    }

    my $config = _curl_option('url', $self->url($path, $scheme));
    $config .= _curl_option('request', $method);

    # curl adds a form Content-Type to any body; tests choose their own.
    $config .= _curl_option('header', 'Content-Type:')
        if defined $body && !_has_header(\@headers, 'Content-Type');

    for (my $i = 0; $i < @headers; $i += 2) {
        my ($name, $value) = @headers[$i, $i + 1];
        $config .= _curl_option('header',
            defined $value ? "$name: $value" : "$name:");
    }

    if (defined $body) {
        my $file;
        if ($body_files) {
            $file = $body_files->{$body} //= "$stem.data";
        } else {
            $file = "$stem.data";
        }
        $self->_write_file($file, $body) unless -e $file;
        $config .= _curl_option('data-binary', "\@$file");
    }

    $config .= $args->{http2} ? "http2\n" : "http1.1\n";
    $config .= "insecure\nsilent\nshow-error\n";
    $config .= _curl_option('max-time', $args->{timeout} // 30);
    $config .= "$_\n" for @{ $args->{curl_args} // [] };

    return $config;
}

sub _curl_option ($name, $value) {
    $value =~ s/(["\\])/\\$1/g;
    $value =~ s/\n/\\n/g;
    $value =~ s/\r/\\r/g;
    $value =~ s/\t/\\t/g;
    return qq{$name = "$value"\n};
}

sub _has_header ($pairs, $name) {
    for (my $i = 0; $i < @$pairs; $i += 2) {
        return 1 if lc $pairs->[$i] eq lc $name;
    }
    return 0;
}

sub _header_pairs ($headers) {
    return () unless $headers;
    return @$headers if ref $headers eq 'ARRAY';
    return map { $_ => $headers->{$_} } sort keys %$headers;
}

# Parses curl's dump of response headers. Interim responses (100 Continue)
# come first in the dump, so only the last block counts.
sub _parse_headers ($dump) {
    my @blocks = grep { /^HTTP\// } split /\r?\n\r?\n/, $dump;
    return {} unless @blocks;

    my %headers;
    my (undef, @lines) = split /\r?\n/, $blocks[-1];
    for my $line (@lines) {
        my ($name, $value) = $line =~ /^([^:]+):\s*(.*?)\s*$/ or next;
        $name = lc $name;
        $headers{$name} = exists $headers{$name}
            ? "$headers{$name}, $value" : $value;
    }

    return \%headers;
}

sub _decode_json ($text) {
    return undef if !defined $text || $text eq '';
    return scalar eval { JSON::PP->new->utf8->decode($text) };
}


# ---------------------------------------------------------------------------
# Waiting and ports
# ---------------------------------------------------------------------------

# Calls $check every interval until it returns a true value, and returns
# that value. Dies after the timeout, or earlier when the named process
# exited, with the tail of the given log files. Options: timeout (10 s),
# interval (0.1 s), what (text for the message), process, logs.
sub wait_until ($self, $check, %opts) {
    my $timeout = $opts{timeout} // 10;
    my $interval = $opts{interval} // 0.1;
    my $what = $opts{what} // 'a condition';
    my $deadline = time + $timeout;

    while (1) {
        my $value = $check->();
        return $value if $value;

        if ($opts{process} && !$self->running($opts{process})) {
            die "$opts{process} exited while waiting for $what"
                . _tails($opts{logs});
        }
        if (time >= $deadline) {
            die "timed out after ${timeout}s waiting for $what"
                . _tails($opts{logs});
        }

        sleep $interval;
    }
}

# Waits until a TCP connection to 127.0.0.1:port succeeds.
sub wait_for_port ($self, $port, %opts) {
    return $self->wait_until(
        sub {
            my $socket = IO::Socket::IP->new(
                PeerHost => '127.0.0.1',
                PeerPort => $port,
                Proto    => 'tcp',
                Timeout  => 1,
            );
            return $socket ? 1 : 0;
        },
        what => "127.0.0.1:$port to accept connections",
        %opts,
    );
}

# Waits until the query returns at least one row, and returns the rows.
# Options: vars (as for psql), timeout (30 s), interval.
sub wait_for_sql ($self, $sql, %opts) {
    my $vars = delete $opts{vars} // {};
    my $rows;

    $self->wait_until(
        sub {
            my @rows = $self->psql($sql, $vars);
            $rows = \@rows;
            return scalar @rows;
        },
        what    => "a row from: $sql",
        timeout => 30,
        %opts,
    );

    return @$rows;
}

# Returns a port on 127.0.0.1 that nothing listens on. The port is picked
# below the kernel's ephemeral range, so outgoing connections cannot take it
# while a server on it is stopped for a restart; bind() to port 0 is the
# fallback when that range is too small.
sub free_port (@) {
    my $range = _slurp('/proc/sys/net/ipv4/ip_local_port_range') // '32768';
    my ($ephemeral_low) = split ' ', $range;
    my $low = 10000;
    my $high = $ephemeral_low - 1;

    for (1 .. 200) {
        my $port = $high > $low + 1000 ? $low + int rand($high - $low) : 0;
        my $socket = IO::Socket::IP->new(
            LocalHost => '127.0.0.1',
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 1,
        ) or next;

        $port = $socket->sockport;
        close $socket;
        next if $PORTS_TAKEN{$port}++;

        return $port;
    }

    die "no free port found on 127.0.0.1\n";
}


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

# Returns true while the named child runs. A child that exited
# is reaped here and its wait status kept in exited().
sub running ($self, $name) {
    my $child = $self->{children}{$name} or return 0;
    my $reaped = waitpid($child->{pid}, WNOHANG);
    return 1 if $reaped == 0;

    $self->{exited}{$name} = $reaped > 0 ? $? : -1;
    delete $self->{children}{$name};
    return 0;
}

# Returns the pid of a running child, else undef.
sub pid ($self, $name) {
    my $child = $self->{children}{$name} or return undef;
    return $child->{pid};
}

# Returns the wait status of a child that exited, in $? form.
sub exited ($self, $name) {
    return $self->{exited}{$name};
}

# Starts a long-running child in a process group of its own: Ctrl-C in the
# terminal then reaches only the Perl process, which stops the children in
# order, and a stop can reach grandchildren such as nginx's workers.
# Arguments: name, argv, output (file for stdout and stderr), env, user (run
# as that user when root), death_signal (sent when this process dies; TERM).
sub _spawn ($self, %args) {
    my $name = $args{name};
    my @argv = @{ $args{argv} };
    croak "cannot start $name: the stack was stopped" if $self->{stopped};

    my $pid = fork // die "fork for $name failed: $!";
    if ($pid == 0) {
        setpgrp(0, 0);

        # The log opens before the switch of user, so that it can sit in a
        # folder only root may write.
        open STDIN, '<', '/dev/null';
        sysopen my $out, $args{output}, O_WRONLY | O_CREAT | O_APPEND, 0644
            or _child_fail("cannot open $args{output}: $!");
        open STDOUT, '>&', $out or _child_fail("cannot redirect stdout: $!");
        open STDERR, '>&', $out or _child_fail("cannot redirect stderr: $!");

        _switch_user($args{user}) if $args{user} && $> == 0;
        _set_parent_death_signal($args{death_signal} // 'TERM');
        chdir $self->{folder};
        $ENV{$_} = $args{env}{$_} for keys %{ $args{env} // {} };

        exec { $argv[0] } @argv
            or _child_fail("cannot run $argv[0]: $!");
    }

    delete $self->{exited}{$name};
    $self->{children}{$name} = { pid => $pid, argv => \@argv };
    return $pid;
}

# Stops a child in steps: each step sends a signal and waits up to its
# timeout in seconds, as in _stop_child('nginx', QUIT => 10, TERM => 5).
# SIGKILL follows when the last step did not end it, and what is left of
# its process group is killed either way. Returns the wait status, or undef
# when the child was not running.
sub _stop_child ($self, $name, @steps) {
    my $child = $self->{children}{$name} or return undef;
    my $pid = $child->{pid};
    my $status;

    while (!defined $status && @steps) {
        my ($signal, $timeout) = splice @steps, 0, 2;

        kill $signal, $pid;
        $status = _wait_child($pid, $timeout);
        next if defined $status || $signal eq 'KILL';

        warn "$name (pid $pid) did not exit within ${timeout}s of"
            . " SIG$signal\n";
    }

    unless (defined $status) {
        kill 'KILL', $pid;
        $status = _wait_child($pid, 10) // -1;
    }

    # Orphaned members of its group, such as workers of a killed master.
    kill 'KILL', -$pid or $! == ESRCH
        or warn "cannot kill the process group of $name: $!";

    delete $self->{children}{$name};
    $self->{exited}{$name} = $status;
    return $status;
}

# Runs a command to completion with its output captured in files (pipes
# could fill and block a command that writes a lot). Arguments: argv, env,
# stdin (text), timeout (60 s). Returns { status, stdout, stderr }; status
# is the wait status, and a command that timed out is killed and reported
# with status -1.
sub _capture ($self, %args) {
    my @argv = @{ $args{argv} };
    my $stem = "$self->{folder}/tmp/run-$$-" . $self->{capture_count}++;
    my $timeout = $args{timeout} // 60;

    my $stdin = '/dev/null';
    if (defined $args{stdin}) {
        $stdin = "$stem.in";
        $self->_write_file($stdin, $args{stdin});
    }

    my $pid = fork // die "fork for $argv[0] failed: $!";
    if ($pid == 0) {
        chdir $self->{folder};
        $ENV{$_} = $args{env}{$_} for keys %{ $args{env} // {} };

        open STDIN, '<', $stdin or _child_fail("cannot open $stdin: $!");
        open STDOUT, '>', "$stem.out"
            or _child_fail("cannot open $stem.out: $!");
        open STDERR, '>', "$stem.err"
            or _child_fail("cannot open $stem.err: $!");

        exec { $argv[0] } @argv
            or _child_fail("cannot run $argv[0]: $!");
    }

    my $status = _wait_child($pid, $timeout);
    unless (defined $status) {
        kill 'KILL', $pid;
        _wait_child($pid, 10);
        $status = -1;
    }

    my $result = {
        status => $status,
        stdout => _slurp("$stem.out") // '',
        stderr => _slurp("$stem.err") // '',
    };
    $result->{stderr} .= "$argv[0] timed out after ${timeout}s\n"
        if $status == -1;

    unlink "$stem.in", "$stem.out", "$stem.err";
    return $result;
}

# Returns the wait status once the process exited, or undef after $timeout.
sub _wait_child ($pid, $timeout) {
    my $deadline = time + $timeout;

    while (1) {
        my $reaped = waitpid($pid, WNOHANG);
        return $? if $reaped == $pid;
        return -1 if $reaped < 0;
        return undef if time >= $deadline;
        sleep 0.02;
    }
}

# In a forked child: drops root for the named user, groups first.
sub _switch_user ($user) {
    my (undef, undef, $uid, $gid) = getpwnam($user)
        or _child_fail("no $user system user");

    $) = "$gid $gid";
    POSIX::setgid($gid) or _child_fail("setgid $user: $!");
    POSIX::setuid($uid) or _child_fail("setuid $user: $!");
    $ENV{HOME} = (getpwuid($uid))[7];
    $ENV{USER} = $ENV{LOGNAME} = $user;
}

# Asks Linux to send a signal to the child when this Perl process dies, even
# by SIGKILL, so that a killed test leaves no server behind. Linux clears
# the setting when the user id changes, so this runs after _switch_user.
# Other systems and architectures go without.
sub _set_parent_death_signal ($signal) {
    my %prctl = ('x86_64-linux' => 157, 'aarch64-linux' => 167);
    my ($arch) = $Config{archname} =~ /^(x86_64-linux|aarch64-linux)/
        or return;

    my $pr_set_pdeathsig = 1;
    my %numbers = (INT => 2, TERM => 15);
    syscall($prctl{$arch}, $pr_set_pdeathsig, $numbers{$signal});
}

# In a forked child: report and leave without running END blocks, which
# would otherwise stop the parent's servers.
sub _child_fail ($message) {
    print STDERR "$message\n";
    POSIX::_exit(127);
}


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

# Makes a secret file once per folder, the pepper unless another path is
# given: random bytes, readable by the owner only.
sub _make_pepper ($self, $path = $self->pepper_file) {
    return if -e $path;

    open my $random, '<:raw', '/dev/urandom'
        or die "cannot open /dev/urandom: $!";
    my $bytes;
    my $read = read $random, $bytes, $PEPPER_BYTES;
    die "short read from /dev/urandom" unless $read && $read == $PEPPER_BYTES;
    close $random;

    sysopen my $file, $path, O_WRONLY | O_CREAT | O_EXCL, 0600
        or die "cannot create $path: $!";
    binmode $file;
    print $file $bytes or die "cannot write $path: $!";
    close $file or die "cannot write $path: $!";
}

# Makes a self-signed certificate for localhost and 127.0.0.1 once per
# folder; clients use -k or --cacert with it.
sub _make_certificate ($self) {
    my $folder = "$self->{folder}/tls";
    return if -e "$folder/cert.pem" && -e "$folder/key.pem";

    make_path($folder);
    my $result = $self->_capture(
        argv => ['openssl', 'req', '-x509', '-newkey', 'ec',
                 '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                 '-subj', '/CN=localhost',
                 '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
                 '-days', '3650',
                 '-keyout', "$folder/key.pem", '-out', "$folder/cert.pem"],
    );
    die "openssl req failed: $result->{stderr}" if $result->{status};

    chmod 0600, "$folder/key.pem";
}

sub _write_file ($self, $path, $content) {
    open my $file, '>:raw', $path or die "cannot write $path: $!";
    print $file $content or die "cannot write $path: $!";
    close $file or die "cannot write $path: $!";
}

sub _slurp ($path) {
    open my $file, '<:raw', $path or return undef;
    local $/;
    my $content = <$file>;
    return $content // '';
}

sub _read_from ($path, $offset) {
    open my $file, '<:raw', $path or return '';
    seek $file, $offset, 0;
    local $/;
    return <$file> // '';
}

sub _tail ($path, $lines = 20) {
    my $content = _slurp($path) // return '';
    my @lines = split /\n/, $content;
    @lines = @lines[-$lines .. -1] if @lines > $lines;
    return "\n--- last lines of $path ---\n" . join("\n", @lines) . "\n";
}

sub _tails ($paths) {
    return '' unless $paths;
    return join '', map { _tail($_) } @$paths;
}

1;
