/*
 * humanhours-admin rate: the hourly rates of single agent ids, which win
 * over their organisation's hourly rate. Each change rewrites
 * hh:org:<id>:rates in Redis right after the Postgres commit, so the edge
 * prices the next event with it.
 */

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "hhw_pg.h"


/* The bound that the edge applies to agent_id. */
#define ADMIN_RATE_AGENT_ID_MAX  128


static void admin_rate_set(admin_t *admin, int argc, char **argv);
static void admin_rate_unset(admin_t *admin, int argc, char **argv);
static void admin_rate_list(admin_t *admin, int argc, char **argv);


static const admin_command_t  admin_rate_subcommands[] = {
    { "set", admin_rate_set },
    { "unset", admin_rate_unset },
    { "list", admin_rate_list },
    { NULL, NULL }
};


void
admin_rate(admin_t *admin, int argc, char **argv)
{
    admin_run_subcommand(admin, "rate", admin_rate_subcommands,
                         "\"set\", \"unset\" or \"list\"", argc, argv);
}


static void
admin_rate_set(admin_t *admin, int argc, char **argv)
{
    PGresult     *res;
    const char   *org, *agent, *rate, *params[3];
    hhw_error_t   err;

    static const char  command[] = "rate set";

    org = admin_parse_org_options(admin, command, argc, argv, 2,
                                  "an agent id and an hourly rate");
    agent = argv[optind];
    rate = argv[optind + 1];

    admin_check_text(admin, command, "AGENT_ID", agent,
                     ADMIN_RATE_AGENT_ID_MAX);
    admin_check_decimal(admin, command, "RATE", rate, 0);

    admin_begin_org(admin, command, org);

    params[0] = org;
    params[1] = agent;
    params[2] = rate;

    res = hhw_pg_query(admin->pg,
                       "INSERT INTO agent_rates (org_id, agent_id,"
                       " hourly_rate)"
                       " VALUES ($1::bigint, $2, $3::numeric)"
                       " ON CONFLICT (org_id, agent_id) DO UPDATE"
                       " SET hourly_rate = EXCLUDED.hourly_rate",
                       3, params, &err);
    if (res == NULL) {
        admin_fail(admin, "%s: storing the rate failed: %s", command,
                   err.text);
    }

    PQclear(res);

    admin_commit_org(admin, command, org);
}


static void
admin_rate_unset(admin_t *admin, int argc, char **argv)
{
    PGresult     *res;
    const char   *org, *agent, *params[2];
    hhw_error_t   err;

    static const char  command[] = "rate unset";

    org = admin_parse_org_options(admin, command, argc, argv, 1,
                                  "one agent id");
    agent = argv[optind];

    admin_check_text(admin, command, "AGENT_ID", agent,
                     ADMIN_RATE_AGENT_ID_MAX);

    admin_begin_org(admin, command, org);

    params[0] = org;
    params[1] = agent;

    res = hhw_pg_query(admin->pg,
                       "DELETE FROM agent_rates"
                       " WHERE org_id = $1::bigint AND agent_id = $2"
                       " RETURNING agent_id",
                       2, params, &err);
    if (res == NULL) {
        admin_fail(admin, "%s: removing the rate failed: %s", command,
                   err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "%s: organisation %s has no rate for agent id "
                   "\"%s\"", command, org, agent);
    }

    PQclear(res);

    admin_commit_org(admin, command, org);
}


static void
admin_rate_list(admin_t *admin, int argc, char **argv)
{
    int           row;
    PGresult     *res;
    const char   *org;
    hhw_error_t   err;

    static const char  command[] = "rate list";

    org = admin_parse_org_options(admin, command, argc, argv, 0,
                                  "no argument besides --org");

    res = hhw_pg_query(admin_pg(admin),
                       "SELECT o.id, r.agent_id, r.hourly_rate"
                       " FROM organisations o"
                       " LEFT JOIN agent_rates r ON r.org_id = o.id"
                       " WHERE o.id = $1::bigint"
                       " ORDER BY r.agent_id",
                       1, &org, &err);
    if (res == NULL) {
        admin_fail(admin, "%s: %s", command, err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "%s: organisation %s not found", command, org);
    }

    printf("agent_id\thourly_rate\n");

    for (row = 0; row < PQntuples(res); row++) {
        if (PQgetisnull(res, row, 1)) {
            continue;
        }

        admin_print_field(res, row, 1, "\t");
        admin_print_field(res, row, 2, "\n");
    }

    PQclear(res);
}
