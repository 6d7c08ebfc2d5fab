/*
 * humanhours-admin events: prints the newest stored events, one JSON object
 * a line, as Postgres renders the whole row.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "hhw_pg.h"


#define ADMIN_EVENTS_LIMIT      "20"
#define ADMIN_EVENTS_LIMIT_MAX  10000


static void admin_events_list(admin_t *admin, int argc, char **argv);


static const admin_command_t  admin_events_subcommands[] = {
    { "list", admin_events_list },
    { NULL, NULL }
};


void
admin_events(admin_t *admin, int argc, char **argv)
{
    admin_run_subcommand(admin, "events", admin_events_subcommands,
                         "\"list\"", argc, argv);
}


/*
 * Event ids start with the receipt time and the primary key sorts them
 * bytewise, so ordering by id puts the newest first and uses the index.
 * An event has no secret to hide: it contains the key id, never the key.
 */
static void
admin_events_list(admin_t *admin, int argc, char **argv)
{
    int           c, row;
    PGresult     *res;
    const char   *org, *limit, *params[2];
    hhw_error_t   err;

    static const struct option  options[] = {
        { "org", required_argument, NULL, 'o' },
        { "limit", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    org = NULL;
    limit = ADMIN_EVENTS_LIMIT;

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            org = optarg;
            admin_parse_positive(admin, org, "--org");
            break;
        case 'l':
            limit = optarg;

            if (admin_parse_positive(admin, limit, "--limit")
                > ADMIN_EVENTS_LIMIT_MAX)
            {
                admin_fail(admin, "events list: --limit must be at most %d",
                           ADMIN_EVENTS_LIMIT_MAX);
            }

            break;
        case 'h':
            admin_usage(admin, 1);
        default:
            admin_bad_option(admin, "events list", c, argv);
        }
    }

    if (optind != argc) {
        admin_fail(admin, "events list: unexpected argument \"%s\"",
                   argv[optind]);
    }

    params[0] = limit;
    params[1] = org;

    if (org != NULL) {
        res = hhw_pg_query(admin_pg(admin),
                           "SELECT to_jsonb(e)::text FROM events e"
                           " WHERE e.org_id = $2::bigint"
                           " ORDER BY e.event_id DESC LIMIT $1::integer",
                           2, params, &err);

    } else {
        res = hhw_pg_query(admin_pg(admin),
                           "SELECT to_jsonb(e)::text FROM events e"
                           " ORDER BY e.event_id DESC LIMIT $1::integer",
                           1, params, &err);
    }

    if (res == NULL) {
        admin_fail(admin, "events list: %s", err.text);
    }

    for (row = 0; row < PQntuples(res); row++) {
        printf("%s\n", PQgetvalue(res, row, 0));
    }

    PQclear(res);
}
