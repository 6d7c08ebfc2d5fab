#!/usr/bin/perl

# Webhook endpoints end to end: the admin command's webhook subcommands, the
# plan check, event.created and agent.first_event as signed envelopes whose
# signatures check out with the Perl code of t/79-webhook-receiver.t, live
# and test modes kept apart, secret rotation, the ping, and a delivery over
# HTTPS through nginx.

use strict;
use warnings;
use feature qw(say signatures);

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use Humanhours::Stack;

require "$FindBin::Bin/79-webhook-receiver.t";
Humanhours::WebhookTest->import(qw(webhook_env verify_humanhours
    verify_standard pro_org add_endpoint track_event));

my $tls_port = Humanhours::Stack::free_port();
my $receiver_folder = File::Temp::tempdir('webhook-receiver-XXXXXXXX',
                                          TMPDIR => 1, CLEANUP => 1);
my $receiver = Humanhours::WebhookReceiver->new(folder => $receiver_folder);
my $receiver_port = $receiver->port;

# nginx ends TLS in front of the plain receiver, so that one delivery goes
# over HTTPS with certificate verification.
my $stack = Humanhours::Stack->new(http_config => <<"EOF");
server {
    listen 127.0.0.1:$tls_port ssl;
    location / {
        proxy_pass http://127.0.0.1:$receiver_port;
    }
}
EOF

webhook_env($stack);
$ENV{HH_WEBHOOK_CA_FILE} = $stack->cert_file;
$stack->start;

my ($org, $live_key, $test_key) = pro_org($stack, 'acme');
my ($free_org) = pro_org($stack, 'thrifty', 'free');


# Adding endpoints: the plan, the URL and the event types are checked.

my $res = $stack->admin_result('webhook', 'add', '--org', $free_org,
    '--url', $receiver->url('/free'), '--events', 'event.created');
is $res->{exit_code}, 1, 'free organisation cannot add an endpoint';
like $res->{stderr}, qr/feature_locked/, 'error names feature_locked';

$res = $stack->admin_result({ env => { HH_WEBHOOK_ALLOW_HTTP => 0 } },
    'webhook', 'add', '--org', $org, '--url', $receiver->url('/plain'),
    '--events', 'event.created');
is $res->{exit_code}, 1, 'plain http rejected without the switch';
like $res->{stderr}, qr{must start with https://}, 'error names https';

$res = $stack->admin_result('webhook', 'add', '--org', $org,
    '--url', $receiver->url('/x'), '--events', 'event.deleted');
is $res->{exit_code}, 1, 'unknown event type rejected';
like $res->{stderr}, qr/unknown event type "event\.deleted"/,
    'error names the type';

$res = $stack->admin_result({ env => { HH_WEBHOOK_KEY_FILE =>
                                       $stack->folder . '/missing-key' } },
    'webhook', 'add', '--org', $org, '--url', $receiver->url('/x'),
    '--events', 'event.created');
is $res->{exit_code}, 1, 'no endpoint without the server key';
like $res->{stderr}, qr/HH_WEBHOOK_KEY_FILE/, 'error names the key file';

my ($live_id, $live_secret) = add_endpoint($stack, $org,
    $receiver->url('/live'), 'event.created,agent.first_event');
my ($test_id, $test_secret) = add_endpoint($stack, $org,
    $receiver->url('/test'), 'event.created', '--test');

like $live_id, qr/^\d+$/, 'add prints the endpoint id';
like $live_secret, qr{^whsec_[A-Za-z0-9+/]{43}=$}, 'add prints a whsec_ secret';
isnt $test_secret, $live_secret, 'each endpoint has its own secret';

my ($stored) = $stack->psql(
    "SELECT encode(secret, 'hex'), length(secret) FROM webhook_endpoints
      WHERE id = $live_id");
(my $secret_base64 = $live_secret) =~ s/^whsec_//;
is $stored->[1], 91, 'stored secret is sealed: version, nonce, MAC, secret';
unlike pack('H*', $stored->[0]), qr/\Q$secret_base64\E/,
    'stored secret does not contain the secret';

my @list = split /\n/, $stack->admin('webhook', 'list', '--org', $org);
is scalar @list, 3, 'list shows a header and two endpoints';
like $list[1], qr/^$live_id\t$org\tlive\tactive\t0\tevent\.created,agent\.first_event\t/,
    'list shows the live endpoint';
like $list[2], qr/^$test_id\t$org\ttest\tactive\t0\tevent\.created\t/,
    'list shows the test endpoint';
unlike join("\n", @list), qr/whsec_/, 'list shows no secret';


# A live event: event.created and agent.first_event, signed twice.

my $track = track_event($stack, $live_key, agent_id => 'sorter');
is $track->{status}, 201, 'live event accepted';

my @live = $receiver->wait_requests('/live', 2);
is scalar @live, 2, 'live endpoint gets two deliveries';

my %by_type = map { decode_json($_->{body})->{type} => $_ } @live;
my $created = $by_type{'event.created'};
my $first = $by_type{'agent.first_event'};
ok $created && $first, 'one event.created and one agent.first_event';

for my $request (grep { defined } $created, $first) {
    my $type = decode_json($request->{body})->{type};
    my $h = $request->{headers};

    my $t = verify_humanhours($live_secret, $h->{'x-humanhours-signature'},
                              $request->{body}, 300);
    ok defined $t, "$type: X-Humanhours-Signature verifies";
    ok verify_standard($live_secret, $h, $request->{body}),
        "$type: webhook-signature verifies";
    is $h->{'webhook-timestamp'}, $t, "$type: both schemes sign the same time";
    is $h->{'content-type'}, 'application/json', "$type: JSON body";

    my $envelope = decode_json($request->{body});
    is_deeply [sort keys %$envelope], [qw(created_at data id type)],
        "$type: envelope members";
    is $envelope->{id}, $h->{'webhook-id'}, "$type: envelope id is webhook-id";
    like $envelope->{id}, qr/^msg_[0-9a-f]{32}$/, "$type: message id form";
    like $envelope->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
        "$type: created_at in UTC with milliseconds";
}

ok !verify_humanhours($test_secret,
        $created->{headers}{'x-humanhours-signature'}, $created->{body}),
    'another secret does not verify';

like $created->{body}, qr/,"data":\Q$track->{body}\E\}$/,
    'event.created data is the 201 answer, byte for byte';

my $first_data = decode_json($first->{body})->{data};
is $first_data->{agent_id}, 'sorter', 'agent.first_event names the agent';
is_deeply $first_data->{event}, $track->{json},
    'agent.first_event carries the event';


# A test event reaches only the test endpoint; a second event of the same
# agent is no first event.

my $test_track = track_event($stack, $test_key, agent_id => 'sorter');
is $test_track->{status}, 201, 'test event accepted';

my @test = $receiver->wait_requests('/test', 1);
is scalar @test, 1, 'test endpoint gets the test event';
my $test_envelope = decode_json($test[0]{body});
is $test_envelope->{type}, 'event.created', 'test delivery is event.created';
is $test_envelope->{data}{event_id}, $test_track->{json}{event_id},
    'test delivery carries the test event';
ok verify_humanhours($test_secret, $test[0]{headers}{'x-humanhours-signature'},
                     $test[0]{body}),
    'test delivery signed with the test secret';

my $again = track_event($stack, $live_key, agent_id => 'sorter',
                        task_type => 'ticket_routing');
@live = $receiver->wait_requests('/live', 3);
sleep 1;
@live = $receiver->requests('/live');
is scalar @live, 3, 'second event of the agent: one more delivery';
is decode_json($live[2]{body})->{type}, 'event.created',
    'and it is event.created';
is scalar $receiver->requests('/test'), 1,
    'live events do not reach the test endpoint';


# Rotation: for a day both secrets sign.

my ($new_secret, $until) = split /\t/,
    $stack->admin('webhook', 'rotate-secret', $live_id);
chomp $until;
like $new_secret, qr/^whsec_/, 'rotate-secret prints the new secret';
isnt $new_secret, $live_secret, 'the secret changed';
like $until, qr/^\d{4}-\d\d-\d\dT/, 'rotate-secret prints until when';

track_event($stack, $live_key, agent_id => 'sorter');
@live = $receiver->wait_requests('/live', 4);
my $rotated = $live[3];
my $header = $rotated->{headers}{'x-humanhours-signature'};
is scalar(() = $header =~ /v1=/g), 2, 'two v1 signatures after rotation';
ok verify_humanhours($new_secret, $header, $rotated->{body}),
    'new secret verifies';
ok verify_humanhours($live_secret, $header, $rotated->{body}),
    'old secret still verifies';
ok verify_standard($new_secret, $rotated->{headers}, $rotated->{body}),
    'new secret verifies the standard signature';
ok verify_standard($live_secret, $rotated->{headers}, $rotated->{body}),
    'old secret verifies the standard signature';


# The ping, and the deliveries list.

my $ping = $stack->admin_result('webhook', 'test', $live_id);
is $ping->{exit_code}, 0, 'webhook test succeeds';
like $ping->{stdout}, qr/^delivered\t200\t\d+ ms\tmsg_[0-9a-f]{32}$/,
    'webhook test reports status and latency';

my @pings = grep { decode_json($_->{body})->{type} eq 'webhook.ping' }
            $receiver->requests('/live');
is scalar @pings, 1, 'receiver got the ping';
ok verify_humanhours($new_secret, $pings[0]{headers}{'x-humanhours-signature'},
                     $pings[0]{body}),
    'ping is signed';

my @deliveries = split /\n/,
    $stack->admin('webhook', 'deliveries', '--endpoint', $live_id);
like $deliveries[0], qr/^message_id\tendpoint\ttype\tstatus\tattempt\t/,
    'deliveries list has a header';
is scalar @deliveries, 6, 'deliveries lists five deliveries with an attempt';
like $deliveries[1], qr/^msg_\w+\t$live_id\twebhook\.ping\tdelivered\t1\t\S+\t200\t\d+\t-\t-$/,
    'newest is the ping, delivered';
ok !(grep { !/\t(?:delivered|status)\t/ } @deliveries),
    'all deliveries delivered';

my $gone = $stack->admin_result('webhook', 'test', 999);
is $gone->{exit_code}, 1, 'webhook test of an unknown endpoint fails';


# HTTPS: an endpoint behind nginx's TLS, verified against the stack's
# certificate.

my ($tls_org, $tls_key) = pro_org($stack, 'secure');
my ($tls_id, $tls_secret) = add_endpoint($stack, $tls_org,
    "https://127.0.0.1:$tls_port/tls", 'event.created');
my $tls_track = track_event($stack, $tls_key);

my @tls = $receiver->wait_requests('/tls', 1);
is scalar @tls, 1, 'HTTPS endpoint gets the delivery';
ok verify_humanhours($tls_secret, $tls[0]{headers}{'x-humanhours-signature'},
                     $tls[0]{body}),
    'HTTPS delivery verifies';
is decode_json($tls[0]{body})->{data}{event_id}, $tls_track->{json}{event_id},
    'HTTPS delivery carries the event';


# The verification recipe of docs/webhooks.md, in C and with openssl, on a
# real delivery.

my $doc = Humanhours::Stack::_slurp($stack->checkout . '/docs/webhooks.md');
my ($c_recipe) = $doc =~ /^```c\n(.*?)^```$/ms;
my ($sh_recipe) = $doc =~ /^```sh\n(.*?)^```$/ms;
ok $c_recipe, 'docs have the C recipe';
ok $sh_recipe, 'docs have the openssl recipe';

my $recipes = $stack->folder . '/recipes';
mkdir $recipes;
Humanhours::Stack::_write_file($stack, "$recipes/verify.c", $c_recipe);
is system('cc', '-o', "$recipes/verify", "$recipes/verify.c", '-lsodium'), 0,
    'C recipe builds';

my $delivery = $tls[0];
my $signature = $delivery->{headers}{'x-humanhours-signature'};
Humanhours::Stack::_write_file($stack, "$recipes/body.json",
                               $delivery->{body});
Humanhours::Stack::_write_file($stack, "$recipes/tampered.json",
                               $delivery->{body} . ' ');

is system("'$recipes/verify' '$tls_secret' '$signature' < '$recipes/body.json'"),
    0, 'C recipe accepts the delivery';
isnt system("'$recipes/verify' '$tls_secret' '$signature' < '$recipes/tampered.json'"),
    0, 'C recipe rejects another body';
isnt system("'$recipes/verify' '$live_secret' '$signature' < '$recipes/body.json'"),
    0, 'C recipe rejects another secret';

sub run_sh_recipe ($body_file) {
    local $ENV{HEADER} = $signature;
    local $ENV{SECRET} = $tls_secret;

    (my $script = $sh_recipe) =~ s/body\.json/$body_file/g;
    Humanhours::Stack::_write_file($stack, "$recipes/verify.sh", $script);

    my $out = `cd '$recipes' && sh verify.sh 2>&1`;
    chomp $out;
    return $out;
}

is run_sh_recipe('body.json'), 'valid', 'openssl recipe accepts the delivery';
is run_sh_recipe('tampered.json'), 'invalid',
    'openssl recipe rejects another body';


# Removal stops deliveries.

like $stack->admin('webhook', 'remove', $test_id), qr/^$test_id\tremoved/,
    'remove reports the endpoint';
@list = split /\n/, $stack->admin('webhook', 'list', '--org', $org);
is scalar @list, 2, 'removed endpoint no longer listed';

$res = $stack->admin_result('webhook', 'remove', $test_id);
is $res->{exit_code}, 1, 'removing twice fails';

track_event($stack, $test_key);
sleep 1.5;
is scalar $receiver->requests('/test'), 1, 'removed endpoint gets nothing';


# No secret in the logs.

my $writer_log = Humanhours::Stack::_slurp($stack->folder . '/writer.log');
for my $secret ($live_secret, $new_secret, $test_secret, $tls_secret) {
    (my $bare = $secret) =~ s/^whsec_//;
    unlike $writer_log, qr/\Q$bare\E/, 'writer log has no secret';
}
like $writer_log, qr/webhook deliveries on/, 'writer logs that deliveries run';

$stack->check_error_log;
done_testing();
