/*
 * humanhours-admin org: creates, changes and lists organisations. Each
 * change is written to Redis before the command returns (a new
 * organisation before COMMIT, a change right after it), so the edge applies
 * it at once, with or without a writer running.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "hhw_mirror.h"
#include "hhw_pg.h"


static void admin_org_create(admin_t *admin, int argc, char **argv);
static void admin_org_set(admin_t *admin, int argc, char **argv);
static void admin_org_list(admin_t *admin, int argc, char **argv);
static void admin_org_check_name(admin_t *admin, const char *name);
static void admin_org_check_plan(admin_t *admin, const char *command,
    const char *plan);
static void admin_org_check_currency(admin_t *admin, const char *command,
    const char *currency);
static void admin_org_assign(char *sql, size_t size, const char *format,
    int param);
static void admin_org_print_settings(admin_t *admin, const char *org);


static const admin_command_t  admin_org_subcommands[] = {
    { "create", admin_org_create },
    { "set", admin_org_set },
    { "list", admin_org_list },
    { NULL, NULL }
};


void
admin_org(admin_t *admin, int argc, char **argv)
{
    admin_run_subcommand(admin, "org", admin_org_subcommands,
                         "\"create\", \"set\" or \"list\"", argc, argv);
}


static void
admin_org_create(admin_t *admin, int argc, char **argv)
{
    int               c, n;
    char              sql[256], values[64];
    PGconn           *pg;
    PGresult         *res;
    const char       *name, *plan, *currency, *rate, *params[4];
    hhw_error_t       err, ignored;
    hhw_mirror_org_t  rows;

    static const struct option  options[] = {
        { "name", required_argument, NULL, 'n' },
        { "plan", required_argument, NULL, 'p' },
        { "currency", required_argument, NULL, 'c' },
        { "hourly-rate", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    name = NULL;
    plan = NULL;
    currency = NULL;
    rate = NULL;

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'p':
            plan = optarg;
            break;
        case 'c':
            currency = optarg;
            break;
        case 'r':
            rate = optarg;
            break;
        case 'h':
            admin_usage(admin, 1);
        default:
            admin_bad_option(admin, "org create", c, argv);
        }
    }

    if (optind != argc) {
        admin_fail(admin, "org create: unexpected argument \"%s\"",
                   argv[optind]);
    }

    if (name == NULL) {
        admin_fail(admin, "org create: --name is required");
    }

    admin_org_check_name(admin, name);

    if (plan != NULL) {
        admin_org_check_plan(admin, "org create", plan);
    }

    if (currency != NULL) {
        admin_org_check_currency(admin, "org create", currency);
    }

    if (rate != NULL) {
        admin_check_decimal(admin, "org create", "--hourly-rate", rate, 0);
    }

    /* Options left out are left to the column defaults. */
    params[0] = name;
    n = 1;
    strcpy(sql, "INSERT INTO organisations (name");
    strcpy(values, "$1");

    if (plan != NULL) {
        params[n++] = plan;
        strcat(sql, ", plan");
        snprintf(values + strlen(values), sizeof(values) - strlen(values),
                 ", $%d", n);
    }

    if (currency != NULL) {
        params[n++] = currency;
        strcat(sql, ", currency");
        snprintf(values + strlen(values), sizeof(values) - strlen(values),
                 ", $%d", n);
    }

    if (rate != NULL) {
        params[n++] = rate;
        strcat(sql, ", hourly_rate");
        snprintf(values + strlen(values), sizeof(values) - strlen(values),
                 ", $%d::numeric", n);
    }

    snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
             ") VALUES (%s) RETURNING id", values);

    /* Both connections first, so that a down server changes nothing. */
    pg = admin_pg(admin);
    admin_redis(admin);

    if (hhw_pg_exec(pg, "BEGIN", &err) != 0) {
        admin_fail(admin, "org create: BEGIN failed: %s", err.text);
    }

    res = hhw_pg_query(pg, sql, n, params, &err);
    if (res == NULL) {
        admin_fail(admin, "org create: inserting the organisation failed: "
                   "%s", err.text);
    }

    /*
     * No sync can read the new row before COMMIT, so Redis can be written
     * first, and a failure leaves nothing behind.
     */
    if (hhw_mirror_org_read(pg, PQgetvalue(res, 0, 0), &rows, &err) != 0
        || hhw_mirror_org_write(admin->redis, &rows, &err) != 0)
    {
        hhw_pg_exec(pg, "ROLLBACK", &ignored);
        admin_fail(admin, "org create: writing hh:org:%s to Redis failed, so "
                   "the organisation was not created: %s",
                   PQgetvalue(res, 0, 0), err.text);
    }

    hhw_mirror_org_free(&rows);

    if (hhw_pg_exec(pg, "NOTIFY " HHW_PG_SYNC_CHANNEL, &err) != 0
        || hhw_pg_exec(pg, "COMMIT", &err) != 0)
    {
        admin_fail(admin, "org create: COMMIT failed, so the organisation "
                   "was not created: %s", err.text);
    }

    printf("%s\n", PQgetvalue(res, 0, 0));

    PQclear(res);
}


/*
 * Changes the given settings only. "default" stores NULL, which the
 * org_settings view replaces with the plan's default. All of the
 * organisation's Redis records are written again, task types included,
 * because a plan change can turn overrides and custom task types on or off.
 */
static void
admin_org_set(admin_t *admin, int argc, char **argv)
{
    int           c, n;
    char          sql[512];
    PGresult     *res;
    const char   *org, *plan, *currency, *rate, *limit, *monthly, *params[6];
    hhw_error_t   err;

    static const struct option  options[] = {
        { "plan", required_argument, NULL, 'p' },
        { "currency", required_argument, NULL, 'c' },
        { "hourly-rate", required_argument, NULL, 'r' },
        { "rate-limit", required_argument, NULL, 'l' },
        { "monthly-events", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    plan = NULL;
    currency = NULL;
    rate = NULL;
    limit = NULL;
    monthly = NULL;

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'p':
            plan = optarg;
            admin_org_check_plan(admin, "org set", plan);
            break;
        case 'c':
            currency = optarg;
            admin_org_check_currency(admin, "org set", currency);
            break;
        case 'r':
            rate = optarg;
            admin_check_decimal(admin, "org set", "--hourly-rate", rate, 0);
            break;
        case 'l':
            limit = optarg;

            if (strcmp(limit, "default") != 0) {
                admin_parse_count(admin, "org set", "--rate-limit", limit, 1);
            }

            break;
        case 'm':
            monthly = optarg;

            if (strcmp(monthly, "default") != 0) {
                admin_parse_count(admin, "org set", "--monthly-events",
                                  monthly, 0);
            }

            break;
        case 'h':
            admin_usage(admin, 1);
        default:
            admin_bad_option(admin, "org set", c, argv);
        }
    }

    if (argc - optind != 1) {
        admin_fail(admin, "org set: expected one organisation id, then the "
                   "settings to change");
    }

    org = argv[optind];
    admin_parse_positive(admin, org, "organisation id");

    if (plan == NULL && currency == NULL && rate == NULL && limit == NULL
        && monthly == NULL)
    {
        admin_fail(admin, "org set: nothing to change; give at least one of "
                   "--plan, --currency, --hourly-rate, --rate-limit and "
                   "--monthly-events");
    }

    /* Only the settings given are assigned. */
    params[0] = org;
    n = 1;
    strcpy(sql, "UPDATE organisations SET");

    if (plan != NULL) {
        params[n++] = plan;
        admin_org_assign(sql, sizeof(sql), "plan = $%d", n);
    }

    if (currency != NULL) {
        params[n++] = currency;
        admin_org_assign(sql, sizeof(sql), "currency = $%d", n);
    }

    if (rate != NULL) {
        params[n++] = rate;
        admin_org_assign(sql, sizeof(sql), "hourly_rate = $%d::numeric", n);
    }

    if (limit != NULL) {
        params[n++] = strcmp(limit, "default") == 0 ? NULL : limit;
        admin_org_assign(sql, sizeof(sql), "rate_limit = $%d::integer", n);
    }

    if (monthly != NULL) {
        params[n++] = strcmp(monthly, "default") == 0 ? NULL : monthly;
        admin_org_assign(sql, sizeof(sql), "monthly_events = $%d::integer",
                         n);
    }

    strcat(sql, " WHERE id = $1::bigint");

    admin_begin_org(admin, "org set", org);

    res = hhw_pg_query(admin->pg, sql, n, params, &err);
    if (res == NULL) {
        admin_fail(admin, "org set: updating organisation %s failed: %s",
                   org, err.text);
    }

    PQclear(res);

    admin_commit_org(admin, "org set", org);

    admin_org_print_settings(admin, org);
}


/*
 * Appends one assignment to the SET list of an UPDATE in sql. The format
 * takes the parameter number. $1 is the organisation id, so the first
 * assignment is the one of $2 and needs no comma before it.
 */
static void
admin_org_assign(char *sql, size_t size, const char *format, int param)
{
    size_t  len;

    len = strlen(sql);

    snprintf(sql + len, size - len, param > 2 ? ", " : " ");
    len = strlen(sql);

    snprintf(sql + len, size - len, format, param);
}


/* Prints the settings in force, as the edge applies them. */
static void
admin_org_print_settings(admin_t *admin, const char *org)
{
    PGresult     *res;
    hhw_error_t   err;

    res = hhw_pg_query(admin->pg,
                       "SELECT id, plan, currency, hourly_rate, rate_limit,"
                       " monthly_events, CASE WHEN hard_cap THEN 'yes'"
                       " ELSE 'no' END"
                       " FROM org_settings WHERE id = $1::bigint",
                       1, &org, &err);
    if (res == NULL || PQntuples(res) != 1) {
        admin_fail(admin, "org set: organisation %s was changed, but "
                   "reading its settings back failed: %s", org,
                   res == NULL ? err.text : "no row");
    }

    printf("id\tplan\tcurrency\thourly_rate\trate_limit\tmonthly_events"
           "\thard_cap\n");

    admin_print_rows(res, 7);

    PQclear(res);
}


static void
admin_org_list(admin_t *admin, int argc, char **argv)
{
    PGresult     *res;
    hhw_error_t   err;

    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0) {
            admin_usage(admin, 1);
        }

        admin_fail(admin, "org list: unexpected argument \"%s\"", argv[1]);
    }

    res = hhw_pg_query(admin_pg(admin),
                       "SELECT id, name, plan, currency, hourly_rate"
                       " FROM organisations ORDER BY id",
                       0, NULL, &err);
    if (res == NULL) {
        admin_fail(admin, "org list: %s", err.text);
    }

    printf("id\tname\tplan\tcurrency\thourly_rate\n");

    admin_print_rows(res, 5);

    PQclear(res);
}


/* Control characters would break the tab-separated lists. */
static void
admin_org_check_name(admin_t *admin, const char *name)
{
    const unsigned char  *p;

    if (name[0] == '\0') {
        admin_fail(admin, "org create: --name must not be empty");
    }

    for (p = (const unsigned char *) name; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            admin_fail(admin, "org create: --name must not contain tabs, "
                       "line breaks or other control characters");
        }
    }
}


static void
admin_org_check_plan(admin_t *admin, const char *command, const char *plan)
{
    if (strcmp(plan, "free") != 0 && strcmp(plan, "pro") != 0
        && strcmp(plan, "agency") != 0 && strcmp(plan, "enterprise") != 0)
    {
        admin_fail(admin, "%s: --plan must be free, pro, agency or "
                   "enterprise, not \"%s\"", command, plan);
    }
}


static void
admin_org_check_currency(admin_t *admin, const char *command,
    const char *currency)
{
    if (strlen(currency) != 3
        || strspn(currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
    {
        admin_fail(admin, "%s: --currency must be a three-letter code in "
                   "capitals such as EUR, not \"%s\"", command, currency);
    }
}
