/*
 * humanhours-admin: the entry point, the usage text, and the helpers that
 * its subcommands share for connections, options and failures.
 */

#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "hh_json.h"
#include "hhw_mirror.h"
#include "hhw_pg.h"
#include "hhw_redis.h"
#include "webhook_admin.h"


/* Connect and I/O timeout for Redis. */
#define ADMIN_REDIS_TIMEOUT_MS  10000

#define ADMIN_TASK_TYPE_KEY_MAX  64


static const admin_command_t  admin_commands[] = {
    { "migrate", admin_migrate },
    { "org", admin_org },
    { "key", admin_key },
    { "events", admin_events },
    { "tasktype", admin_tasktype },
    { "rate", admin_rate },
    { "prices", admin_prices },
    { "webhook", admin_webhook },
    { NULL, NULL }
};


static void admin_close(admin_t *admin);


int
main(int argc, char **argv)
{
    admin_t                 admin;
    hhw_error_t             err;
    const admin_command_t  *cmd;

    memset(&admin, 0, sizeof(admin_t));
    hhw_log_set_program("humanhours-admin");

    if (argc < 2) {
        admin_usage(&admin, 0);
    }

    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "help") == 0)
    {
        admin_usage(&admin, 1);
    }

    for (cmd = admin_commands; cmd->name != NULL; cmd++) {
        if (strcmp(argv[1], cmd->name) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        admin_fail(&admin, "unknown command \"%s\"; run humanhours-admin "
                   "--help for the list", argv[1]);
    }

    /* A bad setting fails every command before it changes anything. */
    if (hhw_conf_load(&admin.conf, 0, &err) != 0) {
        admin_fail(&admin, "%s", err.text);
    }

    if (hhw_redis_addr_parse(admin.conf.redis, &admin.redis_addr, &err)
        != 0)
    {
        admin_fail(&admin, "HH_REDIS: %s", err.text);
    }

    cmd->run(&admin, argc - 1, argv + 1);

    admin_close(&admin);

    return 0;
}


void
admin_usage(admin_t *admin, int to_stdout)
{
    FILE  *out;

    out = to_stdout ? stdout : stderr;

    fprintf(out,
"usage: humanhours-admin COMMAND [OPTIONS]\n"
"\n"
"  migrate\n"
"      apply the schema migrations that are not applied yet, in order;\n"
"      prints the file name of each one applied\n"
"  org create --name NAME [--plan free|pro|agency|enterprise]\n"
"             [--currency CODE] [--hourly-rate RATE]\n"
"      create an organisation (defaults: free, EUR, 45 per hour);\n"
"      prints its id\n"
"  org set ID [--plan free|pro|agency|enterprise] [--currency CODE]\n"
"             [--hourly-rate RATE] [--rate-limit N|default]\n"
"             [--monthly-events N|default]\n"
"      change an organisation's settings: --rate-limit is events a second\n"
"      per API key, --monthly-events events a month (UTC), and \"default\"\n"
"      returns either to the plan's default; prints the settings in force\n"
"      with the plan's defaults applied. Plan defaults: free 10/s and a\n"
"      hard cap of 500 events a month; pro 200/s and 10000 included;\n"
"      agency 500/s and 25000 included; enterprise 1000/s, no monthly\n"
"      number. Only free refuses events past its monthly number.\n"
"  org list\n"
"      print id, name, plan, currency and hourly rate of each organisation\n"
"  key create --org ID [--test]\n"
"      create a live API key, or a test key with --test; prints the raw\n"
"      key, which is shown this once only\n"
"  key list [--org ID]\n"
"      print prefix, mode, organisation, creation time, day of last use\n"
"      and revocation time of each API key\n"
"  key revoke PREFIX\n"
"      revoke an API key at once; prints its prefix and revocation time\n"
"  tasktype override --org ID KEY MINUTES\n"
"      replace the baseline of the built-in task type KEY for one\n"
"      organisation with MINUTES (pro and higher)\n"
"  tasktype unoverride --org ID KEY\n"
"      return the organisation to the built-in baseline of KEY\n"
"  tasktype create --org ID KEY --name NAME\n"
"                  --category support|ops|sales|legal|content|research|\n"
"                             data|dev --minutes MINUTES\n"
"      define a custom task type with its baseline in minutes (pro and\n"
"      higher); KEY is lowercase snake_case, at most 64 characters, and\n"
"      not a built-in key. Creating an archived key again restores it\n"
"      with the new values.\n"
"  tasktype archive --org ID KEY\n"
"      archive a custom task type: the edge answers 422 unknown_task_type\n"
"      for it from then on, and stored events keep it\n"
"  tasktype list [--org ID] [--category CATEGORY]\n"
"      print key, category, name, baseline minutes, source (builtin,\n"
"      override or custom) and state (active, archived, or inactive when\n"
"      the plan lacks custom task types) of the built-in task types, and\n"
"      with --org the baselines that organisation gets and its custom\n"
"      types\n"
"  rate set --org ID AGENT_ID RATE\n"
"      set the hourly rate of one agent id, in the organisation's\n"
"      currency; it wins over the organisation's hourly rate\n"
"  rate unset --org ID AGENT_ID\n"
"      return the agent id to the organisation's hourly rate\n"
"  rate list --org ID\n"
"      print agent id and hourly rate of each agent with a rate of its own\n"
"  prices load FILE\n"
"      replace the model price book with a CSV file whose header is\n"
"      model,input_per_million,output_per_million (prices per million\n"
"      tokens, in the currency of the organisation that uses them), all\n"
"      rows or none; prints the number of models loaded. Each bad row is\n"
"      reported with its line number.\n"
"  prices list\n"
"      print model and input and output price per million tokens\n"
"  events list [--org ID] [--limit N]\n"
"      print the newest stored events, newest first, one JSON object a\n"
"      line (default limit: 20)\n"
"  webhook add --org ID --url URL --events TYPES [--test]\n"
"      register an endpoint for TYPES, a comma-separated list of\n"
"      event.created, agent.first_event and weekly.digest; --test gives it\n"
"      the events of test keys instead of live ones (pro and higher);\n"
"      prints the endpoint id and its secret, tab-separated; the secret\n"
"      is shown this once only\n"
"  webhook list [--org ID]\n"
"      print id, organisation, mode, status, failed deliveries in a row,\n"
"      event types, URL and creation time of each endpoint\n"
"  webhook remove ID\n"
"      stop deliveries to an endpoint and cancel its pending ones\n"
"  webhook test ID\n"
"      send a signed webhook.ping now and print the result; exit status\n"
"      1 when the endpoint did not respond with a 2xx\n"
"  webhook rotate-secret ID\n"
"      give an endpoint a new secret and print it once with the time\n"
"      until which the old secret also signs (24 hours)\n"
"  webhook deliveries [--endpoint ID] [--org ID] [--limit N]\n"
"      print the newest deliveries, one line per attempt with its start,\n"
"      HTTP status, latency and error (default limit: 20 deliveries)\n"
"\n"
"Rates and minutes are decimals such as 45 or 62.50, below 1e15.\n"
"Every change reaches Postgres and the edge's Redis records before the\n"
"command returns, and notifies the writers on the humanhours_sync\n"
"channel.\n"
"Lists are tab-separated with a header line; \"-\" stands for no value.\n"
"Times are UTC. Errors are one line on stderr (one line per bad row for\n"
"prices load) and exit status 1.\n"
"\n"
"environment:\n");

    hhw_conf_print_help(out, 0);
    webhook_conf_print_help(out);

    admin_close(admin);
    exit(to_stdout ? 0 : 1);
}


void
admin_fail(admin_t *admin, const char *fmt, ...)
{
    va_list  args;

    fflush(stdout);

    fputs("humanhours-admin: ", stderr);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);

    admin_close(admin);
    exit(1);
}


PGconn *
admin_pg(admin_t *admin)
{
    hhw_error_t  err;

    if (admin->pg == NULL) {
        admin->pg = hhw_pg_connect(admin->conf.database, "humanhours-admin",
                                   &err);
        if (admin->pg == NULL) {
            admin_fail(admin, "%s", err.text);
        }
    }

    return admin->pg;
}


redisContext *
admin_redis(admin_t *admin)
{
    hhw_error_t  err;

    if (admin_redis_try(admin, &err) == NULL) {
        admin_fail(admin, "%s", err.text);
    }

    return admin->redis;
}


redisContext *
admin_redis_try(admin_t *admin, hhw_error_t *err)
{
    if (admin->redis == NULL) {
        admin->redis = hhw_redis_connect(&admin->redis_addr,
                                         ADMIN_REDIS_TIMEOUT_MS, err);
    }

    return admin->redis;
}


long long
admin_parse_positive(admin_t *admin, const char *text, const char *option)
{
    size_t  len;

    len = strspn(text, "0123456789");

    if (len == 0 || len > 18 || text[len] != '\0' || text[0] == '0') {
        admin_fail(admin, "%s must be a positive integer, not \"%s\"",
                   option, text);
    }

    return strtoll(text, NULL, 10);
}


void
admin_bad_option(admin_t *admin, const char *command, int result,
    char **argv)
{
    if (result == ':') {
        admin_fail(admin, "%s: option %s needs a value", command,
                   argv[optind - 1]);
    }

    admin_fail(admin, "%s: unknown option \"%s\"; run humanhours-admin "
               "--help for the options", command, argv[optind - 1]);
}


long
admin_parse_count(admin_t *admin, const char *command, const char *option,
    const char *text, long min)
{
    char  *end;
    long   n;

    n = -1;

    if (text[0] >= '0' && text[0] <= '9' && strlen(text) <= 10) {
        n = strtol(text, &end, 10);

        if (*end != '\0') {
            n = -1;
        }
    }

    if (n < min || n > INT_MAX) {
        admin_fail(admin, "%s: %s must be an integer from %ld to %d, not "
                   "\"%s\"", command, option, min, INT_MAX, text);
    }

    return n;
}


/*
 * A value is below 1e15 exactly when it has at most 15 digits before the
 * point once leading zeros are dropped, so no conversion to double is
 * needed.
 */
int
admin_is_decimal(const char *text, size_t len, int positive)
{
    int     nonzero;
    size_t  i, whole, significant, fraction;

    whole = 0;
    significant = 0;
    fraction = 0;
    nonzero = 0;

    for (i = 0; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
        whole++;

        if (text[i] != '0' || significant > 0) {
            significant++;
        }

        nonzero |= text[i] != '0';
    }

    if (i < len && text[i] == '.') {
        for (i++; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
            fraction++;
            nonzero |= text[i] != '0';
        }

        if (fraction == 0) {
            return 0;
        }
    }

    return whole > 0 && i == len && significant <= 15
           && (!positive || nonzero);
}


const char *
admin_text_problem(const char *text, size_t len, size_t max_chars)
{
    size_t                n, chars;
    const unsigned char  *p;

    p = (const unsigned char *) text;
    chars = 0;

    if (len == 0) {
        return "must not be empty";
    }

    while (len > 0) {
        n = hh_utf8_char_len(p, len);

        if (n == 0) {
            return "is not valid UTF-8";
        }

        if (*p < 0x20 || *p == 0x7f) {
            return "must not contain tabs, line breaks or other control "
                   "characters";
        }

        p += n;
        len -= n;
        chars++;
    }

    if (chars > max_chars) {
        return "is too long";
    }

    return NULL;
}


void
admin_check_decimal(admin_t *admin, const char *command, const char *what,
    const char *text, int positive)
{
    if (!admin_is_decimal(text, strlen(text), positive)) {
        admin_fail(admin, "%s: %s must be a decimal number %s and below "
                   "1e15 such as 45 or 62.50, not \"%s\"", command, what,
                   positive ? "above 0" : "from 0", text);
    }
}


void
admin_check_text(admin_t *admin, const char *command, const char *what,
    const char *text, size_t max_chars)
{
    const char  *problem;

    problem = admin_text_problem(text, strlen(text), max_chars);

    if (problem != NULL) {
        admin_fail(admin, "%s: %s %s (at most %zu characters, no control "
                   "characters)", command, what, problem, max_chars);
    }
}


void
admin_check_task_type_key(admin_t *admin, const char *command,
    const char *key)
{
    int          valid;
    size_t       len;
    const char  *p;

    len = strlen(key);

    /* The edge also requires a letter first, which the schema does not. */
    valid = len > 0 && len <= ADMIN_TASK_TYPE_KEY_MAX
            && key[0] >= 'a' && key[0] <= 'z'
            && key[len - 1] != '_' && strstr(key, "__") == NULL;

    for (p = key; valid && *p != '\0'; p++) {
        valid = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
                || *p == '_';
    }

    if (!valid) {
        admin_fail(admin, "%s: \"%s\" is not a task type key, which is "
                   "lowercase snake_case (a letter a-z first, then letters, "
                   "digits and single underscores between them) of at most "
                   "%d characters",
                   command, key, ADMIN_TASK_TYPE_KEY_MAX);
    }
}


int
admin_begin_org(admin_t *admin, const char *command, const char *org)
{
    int           pro;
    PGconn       *pg;
    PGresult     *res;
    hhw_error_t   err;

    pg = admin_pg(admin);
    admin_redis(admin);

    if (hhw_pg_exec(pg, "BEGIN", &err) != 0) {
        admin_fail(admin, "%s: BEGIN failed: %s", command, err.text);
    }

    res = hhw_pg_query(pg,
                       "UPDATE organisations o SET revision = o.revision + 1"
                       " FROM plans p"
                       " WHERE o.id = $1::bigint AND p.plan = o.plan"
                       " RETURNING p.pro_features",
                       1, &org, &err);
    if (res == NULL) {
        admin_fail(admin, "%s: locking organisation %s failed: %s", command,
                   org, err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "%s: organisation %s not found", command, org);
    }

    pro = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);

    return pro;
}


/*
 * Redis is written after COMMIT, so that it never contains a change that
 * Postgres lost. A sync that read Postgres before the COMMIT cannot undo
 * the write, because its revision is older.
 */
void
admin_commit_org(admin_t *admin, const char *command, const char *org)
{
    hhw_error_t       err;
    hhw_mirror_org_t  rows;

    if (hhw_mirror_org_read(admin->pg, org, &rows, &err) != 0) {
        admin_fail(admin, "%s: reading organisation %s back failed, so "
                   "nothing was changed: %s", command, org, err.text);
    }

    admin_commit(admin, command);

    if (hhw_mirror_org_write(admin_redis(admin), &rows, &err) != 0) {
        hhw_mirror_org_free(&rows);
        admin_fail(admin, "%s: the change is stored, but writing "
                   "organisation %s to Redis failed, so the edge applies it "
                   "only after a writer syncs: %s", command, org, err.text);
    }

    hhw_mirror_org_free(&rows);
}


void
admin_commit(admin_t *admin, const char *command)
{
    hhw_error_t  err;

    if (hhw_pg_exec(admin->pg, "NOTIFY " HHW_PG_SYNC_CHANNEL, &err) != 0
        || hhw_pg_exec(admin->pg, "COMMIT", &err) != 0)
    {
        admin_fail(admin, "%s: COMMIT failed, so the change was rolled back "
                   "unless the connection broke during COMMIT: %s",
                   command, err.text);
    }
}


void
admin_print_field(const PGresult *res, int row, int column, const char *end)
{
    fputs(PQgetisnull(res, row, column) ? "-" : PQgetvalue(res, row, column),
          stdout);
    fputs(end, stdout);
}


void
admin_print_rows(const PGresult *res, int columns)
{
    int  row, column;

    for (row = 0; res != NULL && row < PQntuples(res); row++) {
        for (column = 0; column < columns; column++) {
            admin_print_field(res, row, column,
                              column == columns - 1 ? "\n" : "\t");
        }
    }
}


void
admin_run_subcommand(admin_t *admin, const char *command,
    const admin_command_t *subcommands, const char *expected, int argc,
    char **argv)
{
    const admin_command_t  *sub;

    if (argc >= 2) {
        for (sub = subcommands; sub->name != NULL; sub++) {
            if (strcmp(argv[1], sub->name) == 0) {
                sub->run(admin, argc - 1, argv + 1);
                return;
            }
        }

        if (strcmp(argv[1], "--help") == 0) {
            admin_usage(admin, 1);
        }
    }

    admin_fail(admin, "%s: expected %s; run humanhours-admin --help for the "
               "options", command, expected);
}


const char *
admin_parse_org_options(admin_t *admin, const char *command, int argc,
    char **argv, int nargs, const char *expected)
{
    int          c;
    const char  *org;

    static const struct option  options[] = {
        { "org", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    org = NULL;

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            org = optarg;
            break;
        case 'h':
            admin_usage(admin, 1);
        default:
            admin_bad_option(admin, command, c, argv);
        }
    }

    if (argc - optind != nargs) {
        admin_fail(admin, "%s: expected %s; run humanhours-admin --help for "
                   "the options", command, expected);
    }

    if (org == NULL) {
        admin_fail(admin, "%s: --org is required", command);
    }

    admin_parse_positive(admin, org, "--org");

    return org;
}


const char *
admin_parse_list_options(admin_t *admin, const char *command, int argc,
    char **argv)
{
    int          c;
    const char  *org;

    static const struct option  options[] = {
        { "org", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    org = NULL;

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            org = optarg;
            admin_parse_positive(admin, org, "--org");
            break;
        case 'h':
            admin_usage(admin, 1);
        default:
            admin_bad_option(admin, command, c, argv);
        }
    }

    if (optind != argc) {
        admin_fail(admin, "%s: unexpected argument \"%s\"", command,
                   argv[optind]);
    }

    return org;
}


static void
admin_close(admin_t *admin)
{
    if (admin->pg != NULL) {
        PQfinish(admin->pg);
        admin->pg = NULL;
    }

    if (admin->redis != NULL) {
        redisFree(admin->redis);
        admin->redis = NULL;
    }

    hhw_conf_free(&admin->conf);
}
