#!/usr/bin/perl

# Proves the test harness: Humanhours::Stack starts Redis, Postgres with the
# migrations, the writer and nginx on loopback, the admin command reaches
# them, and everything stops again.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Humanhours::Stack;

my $stack = Humanhours::Stack->new;
my $build = $stack->build_dir;
my $have_admin = -x "$build/humanhours-admin";
my $have_writer = -x "$build/humanhours-writer";
my $have_module = -e $stack->module_file;


# Files made once per folder.

my $pepper_mode = (stat $stack->pepper_file)[2] & 07777;
cmp_ok -s $stack->pepper_file, '>=', 32, 'pepper file has 32 bytes or more';
is sprintf('%04o', $pepper_mode), '0600', 'pepper file is private';
ok -s $stack->cert_file, 'TLS certificate made';

my %ports = map { $_ => $stack->port($_) } qw(https http redis pg);
my %distinct = reverse %ports;
is scalar keys %distinct, 4, 'four distinct ports';


# Redis.

$stack->start_redis;
ok $stack->running('redis'), 'Redis runs';

my %redis_config = (
    appendonly         => 'yes',
    appendfsync        => 'always',
    'maxmemory-policy' => 'noeviction',
    bind               => '127.0.0.1',
);
for my $name (sort keys %redis_config) {
    my (undef, $value) = split /\n/, $stack->redis_cli('CONFIG', 'GET', $name);
    is $value, $redis_config{$name}, "Redis $name";
}

$stack->redis_cli('SET', 'hh:smoke', 'kept');
$stack->stop_redis;
ok !$stack->running('redis'), 'Redis stopped';
$stack->start_redis;
is $stack->redis_cli('GET', 'hh:smoke'), "kept\n",
    'Redis restart keeps data from the AOF';


# Postgres, with the migrations when the admin command is built.

$stack->start_postgres(migrate => $have_admin ? 1 : 0);
ok $stack->running('postgres'), 'Postgres runs';

is_deeply [$stack->psql('SELECT current_user, current_database()')],
    [['humanhours', 'humanhours']], 'psql reaches the humanhours database';

is_deeply [$stack->psql("SELECT :'text'", { text => "a'b" })], [["a'b"]],
    'psql passes variables as quoted literals';

is_deeply [$stack->psql('SHOW fsync', {}, user => 'postgres')], [['on']],
    'Postgres fsync is on';

my ($superuser) = $stack->psql(
    "SELECT rolsuper FROM pg_roles WHERE rolname = 'humanhours'");
is $superuser->[0], 'f', 'humanhours role is no superuser';


# The admin command.

SKIP: {
    skip 'humanhours-admin is not built', 6 unless $have_admin;

    my ($migrations) = $stack->psql('SELECT count(*) FROM schema_migrations');
    cmp_ok $migrations->[0], '>', 0, 'migrations recorded';

    my $id = $stack->admin('org', 'create', '--name', 'smoke', '--plan', 'pro');
    chomp $id;
    like $id, qr/^\d+$/, 'org create prints the organisation id';

    my ($header, @rows) = split /\n/, $stack->admin('org', 'list');
    is $header, "id\tname\tplan\tcurrency\thourly_rate", 'org list header';

    my @smoke = grep { $_->[1] eq 'smoke' } map { [split /\t/] } @rows;
    is scalar @smoke, 1, 'org list shows the organisation once';
    is $smoke[0][0], $id, 'org list shows its id';
    is $smoke[0][2], 'pro', 'org list shows its plan';
}

SKIP: {
    skip 'humanhours-admin is not built', 2 unless $have_admin;

    my $result = $stack->admin_result('org', 'create', '--plan', 'pro');
    is $result->{exit_code}, 1, 'org create without --name fails';
    like $result->{stderr}, qr/--name/, 'failure names the missing option';
}


# The writer.

SKIP: {
    skip 'humanhours-writer is not built', 3 unless $have_writer;

    $stack->start_writer;
    ok $stack->running('writer'), 'writer runs';
    is_deeply [$stack->writers], ['writer'], 'writers lists it';

    my $status = $stack->stop_writer;
    is $status, 0, 'writer exits with 0 on SIGTERM';
}


# nginx: without the module the harness still serves the benchmark
# location, which proves the configuration, TLS, HTTP/2 and the request
# helpers.

my %nginx_options = $have_module ? () : (module => 0);
my ($config_ok, $config_output) = $stack->nginx_config_test(%nginx_options);
ok $config_ok, 'nginx -t accepts the generated configuration'
    or diag $config_output;

$stack->start_nginx(%nginx_options);
ok $stack->running('nginx'), 'nginx runs'
    . ($have_module ? ' with the module' : ' without the module');

my $https = $stack->request(path => '/bench/return201');
is $https->{status}, 201, 'HTTPS over HTTP/1.1';

my $h2 = $stack->request(path => '/bench/return201', http2 => 1,
    json => { a => 1 });
is $h2->{status}, 201, 'HTTPS over HTTP/2';
is $h2->{headers}{'content-length'}, '0', 'response headers parsed';

my $plain = $stack->request(path => '/bench/return201', scheme => 'http');
is $plain->{status}, 201, 'plain HTTP';

my $missing = $stack->request(method => 'GET', path => '/nothing-here');
is $missing->{status}, 404, 'unknown path is 404';

my $statuses = $stack->request_many(
    request  => { path => '/bench/return201' },
    count    => 40,
    parallel => 8,
    http2    => 1,
);
is scalar(grep { $_ == 201 } @$statuses), 40, 'request_many: 40 of 40 are 201';

$stack->reload_nginx(http_config => 'keepalive_timeout 5s;');
is $stack->request(path => '/bench/return201')->{status}, 201,
    'nginx answers after a reload';

SKIP: {
    skip 'the module is not built', 2
        unless $have_module;

    my $metrics = $stack->request(method => 'GET',
        path => '/humanhours/metrics');
    is $metrics->{status}, 200, 'metrics location answers';

    my $no_key = $stack->request(path => '/v1/track', json => {});
    is $no_key->{status}, 401, 'track without Authorization is 401';
}

$stack->check_error_log;

done_testing;
