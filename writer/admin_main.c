/*
 * humanhours-admin: the entry point, the usage text, and the helpers that
 * its subcommands share for connections, options and failures.
 */

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "hhw_pg.h"
#include "hhw_redis.h"


/* Connect and I/O timeout for Redis. */
#define ADMIN_REDIS_TIMEOUT_MS  10000


typedef struct {
    const char  *name;
    void       (*run)(admin_t *admin, int argc, char **argv);
} admin_command_t;


static const admin_command_t  admin_commands[] = {
    { "migrate", admin_migrate },
    { "org", admin_org },
    { "key", admin_key },
    { "events", admin_events },
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
"  events list [--org ID] [--limit N]\n"
"      print the newest stored events, newest first, one JSON object a\n"
"      line (default limit: 20)\n"
"\n"
"Lists are tab-separated with a header line; \"-\" stands for no value.\n"
"Times are UTC. Errors are one line on stderr and exit status 1.\n"
"\n"
"environment:\n");

    hhw_conf_print_help(out, 0);

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


void
admin_print_field(const PGresult *res, int row, int column, const char *end)
{
    fputs(PQgetisnull(res, row, column) ? "-" : PQgetvalue(res, row, column),
          stdout);
    fputs(end, stdout);
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
