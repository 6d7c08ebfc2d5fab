/*
 * humanhours-admin org: creates and lists organisations. A new organisation
 * is written to Redis inside the Postgres transaction, so the edge finds it
 * as soon as the command prints its id, with or without a writer running.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "hhw_mirror.h"
#include "hhw_pg.h"


/* The schema's bound for amounts, which keeps them far below DBL_MAX. */
#define ADMIN_ORG_RATE_MAX  1e15


static void admin_org_create(admin_t *admin, int argc, char **argv);
static void admin_org_list(admin_t *admin, int argc, char **argv);
static void admin_org_check_name(admin_t *admin, const char *name);
static void admin_org_check_rate(admin_t *admin, const char *rate);


void
admin_org(admin_t *admin, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "create") == 0) {
        admin_org_create(admin, argc - 1, argv + 1);

    } else if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        admin_org_list(admin, argc - 1, argv + 1);

    } else if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
        admin_usage(admin, 1);

    } else {
        admin_fail(admin, "org: expected \"create\" or \"list\"; run "
                   "humanhours-admin --help for the options");
    }
}


static void
admin_org_create(admin_t *admin, int argc, char **argv)
{
    int           c, n;
    char          sql[256], values[64];
    PGconn       *pg;
    PGresult     *res;
    const char   *name, *plan, *currency, *rate, *params[4];
    hhw_error_t   err, ignored;

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

    if (plan != NULL && strcmp(plan, "free") != 0 && strcmp(plan, "pro") != 0
        && strcmp(plan, "agency") != 0 && strcmp(plan, "enterprise") != 0)
    {
        admin_fail(admin, "org create: --plan must be free, pro, agency or "
                   "enterprise, not \"%s\"", plan);
    }

    if (currency != NULL
        && (strlen(currency) != 3
            || strspn(currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3))
    {
        admin_fail(admin, "org create: --currency must be a three-letter "
                   "code in capitals such as EUR, not \"%s\"", currency);
    }

    if (rate != NULL) {
        admin_org_check_rate(admin, rate);
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
             ") VALUES (%s) RETURNING " HHW_MIRROR_ORG_COLUMNS, values);

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

    if (hhw_mirror_org(admin->redis, res, 0, &err) != 0) {
        hhw_pg_exec(pg, "ROLLBACK", &ignored);
        admin_fail(admin, "org create: writing hh:org:%s to Redis failed, so "
                   "the organisation was not created: %s",
                   PQgetvalue(res, 0, 0), err.text);
    }

    if (hhw_pg_exec(pg, "NOTIFY " HHW_PG_SYNC_CHANNEL, &err) != 0
        || hhw_pg_exec(pg, "COMMIT", &err) != 0)
    {
        admin_fail(admin, "org create: COMMIT failed, so the organisation "
                   "was not created: %s", err.text);
    }

    printf("%s\n", PQgetvalue(res, 0, 0));

    PQclear(res);
}


static void
admin_org_list(admin_t *admin, int argc, char **argv)
{
    int           row;
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

    for (row = 0; row < PQntuples(res); row++) {
        admin_print_field(res, row, 0, "\t");
        admin_print_field(res, row, 1, "\t");
        admin_print_field(res, row, 2, "\t");
        admin_print_field(res, row, 3, "\t");
        admin_print_field(res, row, 4, "\n");
    }

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


/* A plain decimal such as 45 or 62.50, which Postgres stores as given. */
static void
admin_org_check_rate(admin_t *admin, const char *rate)
{
    int          valid;
    size_t       whole, fraction;
    const char  *end;

    whole = strspn(rate, "0123456789");
    end = rate + whole;
    fraction = 1;

    if (*end == '.') {
        fraction = strspn(end + 1, "0123456789");
        end += 1 + fraction;
    }

    valid = whole > 0 && fraction > 0 && *end == '\0'
            && strtod(rate, NULL) < ADMIN_ORG_RATE_MAX;

    if (!valid) {
        admin_fail(admin, "org create: --hourly-rate must be a decimal "
                   "number from 0 and below 1e15 such as 45 or 62.50, not "
                   "\"%s\"", rate);
    }
}
