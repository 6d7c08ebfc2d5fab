/*
 * humanhours-admin webhook: adds, lists, removes and tests webhook
 * endpoints, rotates their secrets and lists deliveries with their
 * attempts. Secrets are printed once and stored sealed with the server key.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hh_event.h"
#include "hhw_buf.h"
#include "hhw_pg.h"
#include "webhook_admin.h"
#include "webhook_http.h"
#include "webhook_secret.h"


#define ADMIN_WEBHOOK_TIME   "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"

#define ADMIN_WEBHOOK_TYPES                                                  \
    "event.created, agent.first_event and weekly.digest"

/* How long the previous secret keeps signing after a rotation. */
#define ADMIN_WEBHOOK_ROTATION_OVERLAP  "24 hours"


static void admin_webhook_add(admin_t *admin, int argc, char **argv);
static void admin_webhook_list(admin_t *admin, int argc, char **argv);
static void admin_webhook_remove(admin_t *admin, int argc, char **argv);
static void admin_webhook_test(admin_t *admin, int argc, char **argv);
static void admin_webhook_rotate(admin_t *admin, int argc, char **argv);
static void admin_webhook_deliveries(admin_t *admin, int argc, char **argv);
static void admin_webhook_types(admin_t *admin, const char *text,
    hhw_buf_t *array);
static const char *admin_webhook_id_argument(admin_t *admin,
    const char *command, int argc, char **argv);
static void admin_webhook_load(admin_t *admin, const char *command,
    webhook_conf_t *conf, unsigned char key[WEBHOOK_SERVER_KEY_LEN]);
static void admin_webhook_require_plan(admin_t *admin, const char *command,
    const char *org, const char *plan, const char *pro_features);


static const admin_command_t  admin_webhook_subcommands[] = {
    { "add", admin_webhook_add },
    { "list", admin_webhook_list },
    { "remove", admin_webhook_remove },
    { "test", admin_webhook_test },
    { "rotate-secret", admin_webhook_rotate },
    { "deliveries", admin_webhook_deliveries },
    { NULL, NULL }
};


void
admin_webhook(admin_t *admin, int argc, char **argv)
{
    admin_run_subcommand(admin, "webhook", admin_webhook_subcommands,
                         "\"add\", \"list\", \"remove\", \"test\", "
                         "\"rotate-secret\" or \"deliveries\"", argc, argv);
}


static void
admin_webhook_add(admin_t *admin, int argc, char **argv)
{
    int             c;
    char            secret[WEBHOOK_SECRET_LEN + 1];
    char            sealed[2 + 2 * WEBHOOK_SEALED_LEN + 1];
    PGconn         *pg;
    PGresult       *res;
    hhw_buf_t       types;
    const char     *org, *url, *events, *mode, *params[5];
    hhw_error_t     err;
    unsigned char   key[WEBHOOK_SERVER_KEY_LEN];
    webhook_conf_t  conf;

    static const struct option  options[] = {
        { "org", required_argument, NULL, 'o' },
        { "url", required_argument, NULL, 'u' },
        { "events", required_argument, NULL, 'e' },
        { "test", no_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    org = url = events = NULL;
    mode = "live";

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            org = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'e':
            events = optarg;
            break;
        case 't':
            mode = "test";
            break;
        case 'h':
            admin_usage(admin, 1);
        default:
            admin_bad_option(admin, "webhook add", c, argv);
        }
    }

    if (optind != argc) {
        admin_fail(admin, "webhook add: unexpected argument \"%s\"",
                   argv[optind]);
    }

    if (org == NULL || url == NULL || events == NULL) {
        admin_fail(admin, "webhook add: --org, --url and --events are "
                   "required");
    }

    admin_parse_positive(admin, org, "--org");

    hhw_buf_init(&types);
    admin_webhook_types(admin, events, &types);

    admin_webhook_load(admin, "webhook add", &conf, key);

    if (webhook_url_check(&conf, url, &err) != 0) {
        admin_fail(admin, "webhook add: %s", err.text);
    }

    pg = admin_pg(admin);

    if (hhw_pg_exec(pg, "BEGIN", &err) != 0) {
        admin_fail(admin, "webhook add: BEGIN failed: %s", err.text);
    }

    res = hhw_pg_query(pg,
                       "SELECT o.plan, p.pro_features FROM organisations o"
                       " JOIN plans p ON p.plan = o.plan"
                       " WHERE o.id = $1::bigint FOR SHARE OF o",
                       1, &org, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook add: %s", err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "webhook add: organisation %s not found", org);
    }

    admin_webhook_require_plan(admin, "webhook add", org,
                               PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    PQclear(res);

    webhook_secret_generate(secret);
    webhook_secret_seal(key, secret, sealed);
    sodium_memzero(key, sizeof(key));

    params[0] = org;
    params[1] = url;
    params[2] = types.data;
    params[3] = mode;
    params[4] = sealed;

    res = hhw_pg_query(pg,
                       "INSERT INTO webhook_endpoints"
                       " (org_id, url, event_types, mode, secret)"
                       " VALUES ($1::bigint, $2, $3::text[], $4, $5::bytea)"
                       " RETURNING id",
                       5, params, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook add: inserting the endpoint failed: %s",
                   err.text);
    }

    if (hhw_pg_exec(pg, "COMMIT", &err) != 0) {
        admin_fail(admin, "webhook add: COMMIT failed, so no endpoint was "
                   "added: %s", err.text);
    }

    printf("%s\t%s\n", PQgetvalue(res, 0, 0), secret);
    sodium_memzero(secret, sizeof(secret));
    PQclear(res);
    hhw_buf_free(&types);
    webhook_conf_free(&conf);

    if (fflush(stdout) != 0) {
        admin_fail(admin, "webhook add: the endpoint was added but its "
                   "secret could not be printed; run webhook rotate-secret "
                   "for a new one");
    }
}


static void
admin_webhook_list(admin_t *admin, int argc, char **argv)
{
    int           nparams;
    PGresult     *res;
    const char   *org, *sql;
    hhw_error_t   err;

    org = admin_parse_list_options(admin, "webhook list", argc, argv);

    sql = "SELECT id, org_id, mode, status, failures,"
          " array_to_string(event_types, ','), url,"
          " to_char(created_at, " ADMIN_WEBHOOK_TIME "),"
          " CASE WHEN previous_secret_until > now()"
          "      THEN to_char(previous_secret_until, " ADMIN_WEBHOOK_TIME ")"
          " END,"
          " disabled_reason"
          " FROM webhook_endpoints"
          " WHERE removed_at IS NULL"
          "   AND ($1::bigint IS NULL OR org_id = $1::bigint)"
          " ORDER BY id";
    nparams = 1;

    res = hhw_pg_query(admin_pg(admin), sql, nparams, &org, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook list: %s", err.text);
    }

    printf("id\torg\tmode\tstatus\tfailures\tevents\turl\tcreated_at"
           "\told_secret_until\tdisabled_reason\n");

    admin_print_rows(res, 10);

    PQclear(res);
}


static void
admin_webhook_remove(admin_t *admin, int argc, char **argv)
{
    PGconn       *pg;
    PGresult     *res;
    const char   *id;
    hhw_error_t   err;

    id = admin_webhook_id_argument(admin, "webhook remove", argc, argv);
    pg = admin_pg(admin);

    if (hhw_pg_exec(pg, "BEGIN", &err) != 0) {
        admin_fail(admin, "webhook remove: BEGIN failed: %s", err.text);
    }

    res = hhw_pg_query(pg,
                       "UPDATE webhook_endpoints SET removed_at = now()"
                       " WHERE id = $1::bigint AND removed_at IS NULL"
                       " RETURNING to_char(removed_at, "
                       ADMIN_WEBHOOK_TIME ")",
                       1, &id, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook remove: %s", err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "webhook remove: no endpoint %s, or it is already "
                   "removed", id);
    }

    PQclear(res);

    res = hhw_pg_query(pg,
                       "UPDATE webhook_deliveries"
                       " SET status = 'cancelled', next_attempt_at = NULL,"
                       "     leased_until = NULL, finished_at = now(),"
                       "     last_error ="
                       "       'cancelled: the endpoint was removed'"
                       " WHERE endpoint_id = $1::bigint AND status = 'pending'"
                       " RETURNING id",
                       1, &id, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook remove: %s", err.text);
    }

    if (hhw_pg_exec(pg, "COMMIT", &err) != 0) {
        admin_fail(admin, "webhook remove: COMMIT failed, so the endpoint "
                   "was not removed: %s", err.text);
    }

    printf("%s\tremoved, %d pending deliveries cancelled\n", id,
           PQntuples(res));
    PQclear(res);
}


/*
 * Sends one webhook.ping from this process with the writer's settings and
 * records it as a delivery with one attempt, which changes no endpoint
 * state. Exits with 1 when it was not delivered.
 */
static void
admin_webhook_test(admin_t *admin, int argc, char **argv)
{
    int                 nsecrets;
    char                message_id[40], created_at[HH_TIMESTAMP_LEN + 1];
    char                data[64], status[24], latency[24];
    char                current[WEBHOOK_SECRET_LEN + 1];
    char                previous[WEBHOOK_SECRET_LEN + 1];
    PGconn             *pg;
    PGresult           *res;
    CURLcode            code;
    const char         *id, *secrets[WEBHOOK_SIGN_SECRETS_MAX], *params[10];
    hhw_error_t         err;
    unsigned char       key[WEBHOOK_SERVER_KEY_LEN], random[16];
    webhook_conf_t      conf;
    struct timespec     ts;
    webhook_result_t    result;
    webhook_message_t   message;
    webhook_request_t   req;

    id = admin_webhook_id_argument(admin, "webhook test", argc, argv);
    admin_webhook_load(admin, "webhook test", &conf, key);
    pg = admin_pg(admin);

    res = hhw_pg_query(pg,
                       "SELECT w.url, encode(w.secret, 'hex'),"
                       " CASE WHEN w.previous_secret_until > now()"
                       "      THEN encode(w.previous_secret, 'hex') END,"
                       " w.org_id, o.plan, p.pro_features"
                       " FROM webhook_endpoints w"
                       " JOIN organisations o ON o.id = w.org_id"
                       " JOIN plans p ON p.plan = o.plan"
                       " WHERE w.id = $1::bigint AND w.removed_at IS NULL",
                       1, &id, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook test: %s", err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "webhook test: no endpoint %s", id);
    }

    admin_webhook_require_plan(admin, "webhook test", PQgetvalue(res, 0, 3),
                               PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5));

    if (webhook_secret_open(key, PQgetvalue(res, 0, 1), current, &err) != 0
        || (!PQgetisnull(res, 0, 2)
            && webhook_secret_open(key, PQgetvalue(res, 0, 2), previous,
                                   &err) != 0))
    {
        admin_fail(admin, "webhook test: %s", err.text);
    }

    sodium_memzero(key, sizeof(key));

    secrets[0] = current;
    nsecrets = 1;

    if (!PQgetisnull(res, 0, 2)) {
        secrets[nsecrets++] = previous;
    }

    randombytes_buf(random, sizeof(random));
    memcpy(message_id, "msg_", 4);
    sodium_bin2hex(message_id + 4, sizeof(message_id) - 4, random,
                   sizeof(random));

    clock_gettime(CLOCK_REALTIME, &ts);
    hh_timestamp_format((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                        created_at);
    snprintf(data, sizeof(data), "{\"endpoint_id\":%s}", id);

    message.id = message_id;
    message.type = "webhook.ping";
    message.created_at = created_at;
    message.data = data;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        admin_fail(admin, "webhook test: libcurl failed to initialise");
    }

    memset(&req, 0, sizeof(req));
    hhw_buf_init(&req.body);

    if (webhook_request_prepare(&req, &conf, PQgetvalue(res, 0, 0), &message,
                                secrets, (size_t) nsecrets,
                                (int64_t) ts.tv_sec, &err)
        != 0)
    {
        admin_fail(admin, "webhook test: %s", err.text);
    }

    sodium_memzero(current, sizeof(current));
    sodium_memzero(previous, sizeof(previous));
    PQclear(res);

    code = curl_easy_perform(req.easy);
    webhook_request_result(&req, code, &result);
    webhook_request_free(&req);
    curl_global_cleanup();

    snprintf(status, sizeof(status), "%ld", result.http_status);
    snprintf(latency, sizeof(latency), "%ld", result.latency_ms);

    params[0] = message_id;
    params[1] = id;
    params[2] = data;
    params[3] = created_at;
    params[4] = result.outcome == WEBHOOK_DELIVERED ? "delivered" : "failed";
    params[5] = result.http_status > 0 ? status : NULL;
    params[6] = result.error[0] != '\0' ? result.error : NULL;
    params[7] = latency;
    params[8] = result.response[0] != '\0' ? result.response : NULL;

    res = hhw_pg_query(pg,
                       "WITH delivery AS ("
                       "  INSERT INTO webhook_deliveries (message_id,"
                       "   endpoint_id, type, data, created_at, status,"
                       "   attempts, next_attempt_at, last_status,"
                       "   last_error, finished_at)"
                       "  VALUES ($1, $2::bigint, 'webhook.ping', $3,"
                       "   $4::timestamptz, $5, 1, NULL, $6::integer, $7,"
                       "   now())"
                       "  RETURNING id)"
                       " INSERT INTO webhook_attempts (delivery_id, attempt,"
                       "  sender, started_at, finished_at, http_status,"
                       "  latency_ms, error, response)"
                       " SELECT id, 1, 'humanhours-admin', $4::timestamptz,"
                       "  now(), $6::integer, $8::integer, $7, $9"
                       " FROM delivery",
                       9, params, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook test: the ping was sent (%s) but "
                   "recording it failed: %s", params[4], err.text);
    }

    PQclear(res);
    webhook_conf_free(&conf);

    printf("%s\t%s\t%s ms\t%s\n", params[4],
           result.http_status > 0 ? status : "-", latency, message_id);

    if (result.outcome != WEBHOOK_DELIVERED) {
        admin_fail(admin, "webhook test: endpoint %s did not accept the "
                   "ping: %s", id, result.error);
    }
}


static void
admin_webhook_rotate(admin_t *admin, int argc, char **argv)
{
    char            secret[WEBHOOK_SECRET_LEN + 1];
    char            sealed[2 + 2 * WEBHOOK_SEALED_LEN + 1];
    PGconn         *pg;
    PGresult       *res;
    const char     *id, *params[2];
    hhw_error_t     err;
    unsigned char   key[WEBHOOK_SERVER_KEY_LEN];
    webhook_conf_t  conf;

    id = admin_webhook_id_argument(admin, "webhook rotate-secret", argc, argv);
    admin_webhook_load(admin, "webhook rotate-secret", &conf, key);
    pg = admin_pg(admin);

    if (hhw_pg_exec(pg, "BEGIN", &err) != 0) {
        admin_fail(admin, "webhook rotate-secret: BEGIN failed: %s",
                   err.text);
    }

    res = hhw_pg_query(pg,
                       "SELECT w.org_id, o.plan, p.pro_features"
                       " FROM webhook_endpoints w"
                       " JOIN organisations o ON o.id = w.org_id"
                       " JOIN plans p ON p.plan = o.plan"
                       " WHERE w.id = $1::bigint AND w.removed_at IS NULL"
                       " FOR UPDATE OF w",
                       1, &id, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook rotate-secret: %s", err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "webhook rotate-secret: no endpoint %s", id);
    }

    admin_webhook_require_plan(admin, "webhook rotate-secret",
                               PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                               PQgetvalue(res, 0, 2));
    PQclear(res);

    webhook_secret_generate(secret);
    webhook_secret_seal(key, secret, sealed);
    sodium_memzero(key, sizeof(key));

    params[0] = id;
    params[1] = sealed;

    res = hhw_pg_query(pg,
                       "UPDATE webhook_endpoints"
                       " SET previous_secret = secret,"
                       "     previous_secret_until = now() + interval '"
                       ADMIN_WEBHOOK_ROTATION_OVERLAP "',"
                       "     secret = $2::bytea"
                       " WHERE id = $1::bigint"
                       " RETURNING to_char(previous_secret_until, "
                       ADMIN_WEBHOOK_TIME ")",
                       2, params, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook rotate-secret: %s", err.text);
    }

    if (hhw_pg_exec(pg, "COMMIT", &err) != 0) {
        admin_fail(admin, "webhook rotate-secret: COMMIT failed, so the "
                   "secret is unchanged: %s", err.text);
    }

    printf("%s\t%s\n", secret, PQgetvalue(res, 0, 0));
    sodium_memzero(secret, sizeof(secret));
    PQclear(res);
    webhook_conf_free(&conf);

    if (fflush(stdout) != 0) {
        admin_fail(admin, "webhook rotate-secret: the secret was changed "
                   "but could not be printed; rotate it again");
    }
}


static void
admin_webhook_deliveries(admin_t *admin, int argc, char **argv)
{
    int           c;
    PGresult     *res;
    const char   *params[3];
    hhw_error_t   err;

    static const struct option  options[] = {
        { "endpoint", required_argument, NULL, 'e' },
        { "org", required_argument, NULL, 'o' },
        { "limit", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    params[0] = NULL;
    params[1] = NULL;
    params[2] = "20";

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'e':
            params[0] = optarg;
            admin_parse_positive(admin, optarg, "--endpoint");
            break;
        case 'o':
            params[1] = optarg;
            admin_parse_positive(admin, optarg, "--org");
            break;
        case 'l':
            params[2] = optarg;
            admin_parse_positive(admin, optarg, "--limit");
            break;
        case 'h':
            admin_usage(admin, 1);
        default:
            admin_bad_option(admin, "webhook deliveries", c, argv);
        }
    }

    if (optind != argc) {
        admin_fail(admin, "webhook deliveries: unexpected argument \"%s\"",
                   argv[optind]);
    }

    res = hhw_pg_query(admin_pg(admin),
                       "SELECT d.message_id, d.endpoint_id, d.type, d.status,"
                       " a.attempt,"
                       " to_char(a.started_at, " ADMIN_WEBHOOK_TIME "),"
                       " a.http_status, a.latency_ms, a.error,"
                       " to_char(d.next_attempt_at, " ADMIN_WEBHOOK_TIME ")"
                       " FROM (SELECT d.* FROM webhook_deliveries d"
                       "       JOIN webhook_endpoints w"
                       "         ON w.id = d.endpoint_id"
                       "       WHERE ($1::bigint IS NULL"
                       "              OR d.endpoint_id = $1::bigint)"
                       "         AND ($2::bigint IS NULL"
                       "              OR w.org_id = $2::bigint)"
                       "       ORDER BY d.id DESC LIMIT $3::bigint) d"
                       " LEFT JOIN webhook_attempts a ON a.delivery_id = d.id"
                       " ORDER BY d.id DESC, a.attempt",
                       3, params, &err);
    if (res == NULL) {
        admin_fail(admin, "webhook deliveries: %s", err.text);
    }

    printf("message_id\tendpoint\ttype\tstatus\tattempt\tstarted_at"
           "\thttp_status\tlatency_ms\terror\tnext_attempt_at\n");

    admin_print_rows(res, 10);

    PQclear(res);
}


/*
 * Checks a comma-separated list of event types and writes it as a Postgres
 * array literal, each type once.
 */
static void
admin_webhook_types(admin_t *admin, const char *text, hhw_buf_t *array)
{
    size_t       i, len;
    const char  *p;
    int          seen[3];

    static const char  *known[3] = {
        "event.created", "agent.first_event", "weekly.digest"
    };

    memset(seen, 0, sizeof(seen));
    hhw_buf_append_str(array, "{");

    for (p = text; *p != '\0'; p += len) {
        p += strspn(p, ", ");
        len = strcspn(p, ", ");

        if (len == 0) {
            break;
        }

        for (i = 0; i < 3; i++) {
            if (strlen(known[i]) == len && memcmp(known[i], p, len) == 0) {
                break;
            }
        }

        if (i == 3) {
            admin_fail(admin, "webhook add: unknown event type \"%.*s\"; "
                       "the types are " ADMIN_WEBHOOK_TYPES, (int) len, p);
        }

        if (!seen[i]) {
            hhw_buf_printf(array, "%s%s", array->len > 1 ? "," : "",
                           known[i]);
            seen[i] = 1;
        }
    }

    hhw_buf_append_str(array, "}");

    if (array->failed) {
        admin_fail(admin, "webhook add: out of memory");
    }

    if (array->len == 2) {
        admin_fail(admin, "webhook add: --events names no event type; the "
                   "types are " ADMIN_WEBHOOK_TYPES);
    }
}


static const char *
admin_webhook_id_argument(admin_t *admin, const char *command, int argc,
    char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        admin_usage(admin, 1);
    }

    if (argc != 2) {
        admin_fail(admin, "%s: expected one endpoint id", command);
    }

    admin_parse_positive(admin, argv[1], "the endpoint id");

    return argv[1];
}


/* Reads the webhook settings and the server key, or fails the command. */
static void
admin_webhook_load(admin_t *admin, const char *command, webhook_conf_t *conf,
    unsigned char key[WEBHOOK_SERVER_KEY_LEN])
{
    hhw_error_t  err;

    if (sodium_init() < 0) {
        admin_fail(admin, "%s: libsodium failed to initialise", command);
    }

    if (webhook_conf_load(conf, &err) != 0) {
        admin_fail(admin, "%s: %s", command, err.text);
    }

    switch (webhook_server_key_load(conf, key, &err)) {

    case 0:
        return;

    case 1:
        admin_fail(admin, "%s: %s; create it once with head -c 48 "
                   "/dev/urandom and give the same file to every writer",
                   command, err.text);

    default:
        admin_fail(admin, "%s: %s", command, err.text);
    }
}


static void
admin_webhook_require_plan(admin_t *admin, const char *command,
    const char *org, const char *plan, const char *pro_features)
{
    if (strcmp(pro_features, "t") != 0) {
        admin_fail(admin, "%s: feature_locked: organisation %s is on the %s "
                   "plan, and webhooks need pro or higher", command, org,
                   plan);
    }
}
