/*
 * humanhours-admin tasktype: an organisation's overrides of built-in
 * baselines and its custom task types, and the list of both. Each change
 * rewrites hh:org:<id>:tasktypes in Redis right after the Postgres commit,
 * so the edge resolves the next event with it.
 */

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "hhw_pg.h"


/* A display name fits one line of a list. */
#define ADMIN_TASKTYPE_NAME_MAX  200


static void admin_tasktype_override(admin_t *admin, int argc, char **argv);
static void admin_tasktype_unoverride(admin_t *admin, int argc, char **argv);
static void admin_tasktype_create(admin_t *admin, int argc, char **argv);
static void admin_tasktype_archive(admin_t *admin, int argc, char **argv);
static void admin_tasktype_list(admin_t *admin, int argc, char **argv);
static void admin_tasktype_change(admin_t *admin, const char *command,
    int argc, char **argv, const char *sql, const char *action,
    const char *missing);
static void admin_tasktype_check_feature(admin_t *admin, const char *command,
    const char *org, int pro);
static int admin_tasktype_is_builtin(admin_t *admin, const char *command,
    const char *key);
static void admin_tasktype_check_category(admin_t *admin,
    const char *command, const char *category);


static const admin_command_t  admin_tasktype_subcommands[] = {
    { "override", admin_tasktype_override },
    { "unoverride", admin_tasktype_unoverride },
    { "create", admin_tasktype_create },
    { "archive", admin_tasktype_archive },
    { "list", admin_tasktype_list },
    { NULL, NULL }
};


void
admin_tasktype(admin_t *admin, int argc, char **argv)
{
    admin_run_subcommand(admin, "tasktype", admin_tasktype_subcommands,
                         "\"override\", \"unoverride\", \"create\", "
                         "\"archive\" or \"list\"", argc, argv);
}


static void
admin_tasktype_override(admin_t *admin, int argc, char **argv)
{
    PGresult     *res;
    const char   *org, *key, *minutes, *params[3];
    hhw_error_t   err;

    static const char  command[] = "tasktype override";

    org = admin_parse_org_options(admin, command, argc, argv, 2,
                                  "a task type key and the minutes");
    key = argv[optind];
    minutes = argv[optind + 1];

    admin_check_task_type_key(admin, command, key);
    admin_check_decimal(admin, command, "MINUTES", minutes, 1);

    admin_tasktype_check_feature(admin, command, org,
                                 admin_begin_org(admin, command, org));

    if (!admin_tasktype_is_builtin(admin, command, key)) {
        admin_fail(admin, "%s: \"%s\" is not a built-in task type, and only "
                   "built-in baselines can be overridden; define a custom "
                   "task type with tasktype create", command, key);
    }

    params[0] = org;
    params[1] = key;
    params[2] = minutes;

    /*
     * A custom type can hold a built-in key only when a later migration
     * added that key to the catalogue.
     */
    res = hhw_pg_query(admin->pg,
                       "INSERT INTO org_task_types"
                       " (org_id, key, kind, baseline_minutes)"
                       " VALUES ($1::bigint, $2, 'override', $3::numeric)"
                       " ON CONFLICT (org_id, key) DO UPDATE"
                       " SET baseline_minutes = EXCLUDED.baseline_minutes"
                       " WHERE org_task_types.kind = 'override'"
                       " RETURNING key",
                       3, params, &err);
    if (res == NULL) {
        admin_fail(admin, "%s: storing the override failed: %s", command,
                   err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "%s: organisation %s has a custom task type \"%s\" "
                   "that the built-in one of the same key replaces; archive "
                   "it first", command, org, key);
    }

    PQclear(res);

    admin_commit_org(admin, command, org);
}


/* Allowed on every plan, so that an organisation can always undo. */
static void
admin_tasktype_unoverride(admin_t *admin, int argc, char **argv)
{
    admin_tasktype_change(admin, "tasktype unoverride", argc, argv,
                          "DELETE FROM org_task_types"
                          " WHERE org_id = $1::bigint AND key = $2"
                          " AND kind = 'override'"
                          " RETURNING key",
                          "removing the override", "no override of");
}


/*
 * An archived custom type of the same key is restored with the new values,
 * so that a key can be defined again. An active one is left alone.
 */
static void
admin_tasktype_create(admin_t *admin, int argc, char **argv)
{
    int           c;
    PGresult     *res;
    const char   *org, *key, *name, *category, *minutes, *params[5];
    hhw_error_t   err;

    static const char  command[] = "tasktype create";

    static const struct option  options[] = {
        { "org", required_argument, NULL, 'o' },
        { "name", required_argument, NULL, 'n' },
        { "category", required_argument, NULL, 'c' },
        { "minutes", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    org = NULL;
    name = NULL;
    category = NULL;
    minutes = NULL;

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            org = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'c':
            category = optarg;
            break;
        case 'm':
            minutes = optarg;
            break;
        case 'h':
            admin_usage(admin, 1);
        default:
            admin_bad_option(admin, command, c, argv);
        }
    }

    if (argc - optind != 1) {
        admin_fail(admin, "%s: expected one task type key", command);
    }

    key = argv[optind];

    if (org == NULL || name == NULL || category == NULL || minutes == NULL) {
        admin_fail(admin, "%s: --org, --name, --category and --minutes are "
                   "required", command);
    }

    admin_parse_positive(admin, org, "--org");
    admin_check_task_type_key(admin, command, key);
    admin_check_text(admin, command, "--name", name, ADMIN_TASKTYPE_NAME_MAX);
    admin_tasktype_check_category(admin, command, category);
    admin_check_decimal(admin, command, "--minutes", minutes, 1);

    admin_tasktype_check_feature(admin, command, org,
                                 admin_begin_org(admin, command, org));

    if (admin_tasktype_is_builtin(admin, command, key)) {
        admin_fail(admin, "%s: \"%s\" is a built-in task type; change its "
                   "baseline with tasktype override instead", command, key);
    }

    params[0] = org;
    params[1] = key;
    params[2] = name;
    params[3] = category;
    params[4] = minutes;

    res = hhw_pg_query(admin->pg,
                       "INSERT INTO org_task_types (org_id, key, kind,"
                       " display_name, category, baseline_minutes)"
                       " VALUES ($1::bigint, $2, 'custom', $3, $4,"
                       " $5::numeric)"
                       " ON CONFLICT (org_id, key) DO UPDATE"
                       " SET display_name = EXCLUDED.display_name,"
                       " category = EXCLUDED.category,"
                       " baseline_minutes = EXCLUDED.baseline_minutes,"
                       " archived_at = NULL"
                       " WHERE org_task_types.kind = 'custom'"
                       " AND org_task_types.archived_at IS NOT NULL"
                       " RETURNING key",
                       5, params, &err);
    if (res == NULL) {
        admin_fail(admin, "%s: storing the task type failed: %s", command,
                   err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "%s: organisation %s already has a custom task "
                   "type \"%s\"; archive it first to define it again",
                   command, org, key);
    }

    PQclear(res);

    admin_commit_org(admin, command, org);
}


/* Allowed on every plan; events already stored keep the task type. */
static void
admin_tasktype_archive(admin_t *admin, int argc, char **argv)
{
    admin_tasktype_change(admin, "tasktype archive", argc, argv,
                          "UPDATE org_task_types SET archived_at = now()"
                          " WHERE org_id = $1::bigint AND key = $2"
                          " AND kind = 'custom' AND archived_at IS NULL"
                          " RETURNING key",
                          "archiving the task type",
                          "no active custom task type");
}


/*
 * With --org, each built-in task type appears once with the baseline that
 * the organisation gets, followed by its custom types. Overrides and custom
 * types stored for a plan without them are shown as the edge treats them:
 * the built-in baseline, and custom types as inactive.
 */
static void
admin_tasktype_list(admin_t *admin, int argc, char **argv)
{
    int           c;
    PGresult     *res;
    const char   *org, *category, *params[2];
    hhw_error_t   err;

    static const char  command[] = "tasktype list";

    static const struct option  options[] = {
        { "org", required_argument, NULL, 'o' },
        { "category", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    org = NULL;
    category = NULL;

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            org = optarg;
            admin_parse_positive(admin, org, "--org");
            break;
        case 'c':
            category = optarg;
            admin_tasktype_check_category(admin, command, category);
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

    params[0] = category;
    params[1] = org;

    if (org == NULL) {
        res = hhw_pg_query(admin_pg(admin),
                           "SELECT key, category, display_name,"
                           " baseline_minutes, 'builtin', 'active'"
                           " FROM task_types"
                           " WHERE $1::text IS NULL OR category = $1"
                           " ORDER BY category, key",
                           1, params, &err);

    } else {
        res = hhw_pg_query(admin_pg(admin),
            "WITH s AS (SELECT pro_features FROM org_settings"
            "           WHERE id = $2::bigint),"
            " own AS (SELECT t.* FROM org_task_types t"
            "         WHERE t.org_id = $2::bigint)"
            " SELECT b.key, b.category, b.display_name,"
            "  coalesce(o.baseline_minutes, b.baseline_minutes),"
            "  CASE WHEN o.key IS NULL THEN 'builtin' ELSE 'override' END,"
            "  'active', 0"
            " FROM task_types b"
            " LEFT JOIN own o ON o.key = b.key AND o.kind = 'override'"
            "  AND (SELECT pro_features FROM s)"
            " WHERE EXISTS (SELECT 1 FROM s)"
            "  AND ($1::text IS NULL OR b.category = $1)"
            " UNION ALL"
            " SELECT c.key, c.category, c.display_name, c.baseline_minutes,"
            "  'custom',"
            "  CASE WHEN c.archived_at IS NOT NULL THEN 'archived'"
            "   WHEN (SELECT pro_features FROM s) THEN 'active'"
            "   ELSE 'inactive' END, 1"
            " FROM own c"
            " WHERE c.kind = 'custom'"
            "  AND ($1::text IS NULL OR c.category = $1)"
            " ORDER BY 7, 2, 1",
            2, params, &err);
    }

    if (res == NULL) {
        admin_fail(admin, "%s: %s", command, err.text);
    }

    if (org != NULL && PQntuples(res) == 0) {
        PQclear(res);
        res = hhw_pg_query(admin->pg,
                           "SELECT 1 FROM organisations"
                           " WHERE id = $1::bigint",
                           1, &org, &err);

        if (res == NULL || PQntuples(res) == 0) {
            admin_fail(admin, "%s: organisation %s not found", command, org);
        }

        PQclear(res);
        res = NULL;
    }

    printf("key\tcategory\tname\tbaseline_minutes\tsource\tstate\n");

    admin_print_rows(res, 6);

    PQclear(res);
}


/*
 * Runs sql, which changes one task type of the organisation on every plan
 * and returns a row when it found one, for a subcommand that takes --org
 * and a key. The error texts name the action and what was missing.
 */
static void
admin_tasktype_change(admin_t *admin, const char *command, int argc,
    char **argv, const char *sql, const char *action, const char *missing)
{
    PGresult     *res;
    const char   *org, *key, *params[2];
    hhw_error_t   err;

    org = admin_parse_org_options(admin, command, argc, argv, 1,
                                  "one task type key");
    key = argv[optind];

    admin_check_task_type_key(admin, command, key);

    admin_begin_org(admin, command, org);

    params[0] = org;
    params[1] = key;

    res = hhw_pg_query(admin->pg, sql, 2, params, &err);
    if (res == NULL) {
        admin_fail(admin, "%s: %s failed: %s", command, action, err.text);
    }

    if (PQntuples(res) == 0) {
        admin_fail(admin, "%s: organisation %s has %s \"%s\"", command, org,
                   missing, key);
    }

    PQclear(res);

    admin_commit_org(admin, command, org);
}


/* The error text starts with the API's error code for the same refusal. */
static void
admin_tasktype_check_feature(admin_t *admin, const char *command,
    const char *org, int pro)
{
    if (!pro) {
        admin_fail(admin, "%s: feature_locked: the plan of organisation %s "
                   "does not include task-type overrides or custom task "
                   "types; move it to pro or higher with humanhours-admin "
                   "org set %s --plan pro", command, org, org);
    }
}


static int
admin_tasktype_is_builtin(admin_t *admin, const char *command,
    const char *key)
{
    int           found;
    PGresult     *res;
    hhw_error_t   err;

    res = hhw_pg_query(admin->pg, "SELECT 1 FROM task_types WHERE key = $1",
                       1, &key, &err);
    if (res == NULL) {
        admin_fail(admin, "%s: reading the built-in task types failed: %s",
                   command, err.text);
    }

    found = PQntuples(res) > 0;
    PQclear(res);

    return found;
}


static void
admin_tasktype_check_category(admin_t *admin, const char *command,
    const char *category)
{
    size_t  i;

    static const char *const  categories[] = {
        "support", "ops", "sales", "legal", "content", "research", "data",
        "dev"
    };

    for (i = 0; i < sizeof(categories) / sizeof(categories[0]); i++) {
        if (strcmp(category, categories[i]) == 0) {
            return;
        }
    }

    admin_fail(admin, "%s: --category must be support, ops, sales, legal, "
               "content, research, data or dev, not \"%s\"", command,
               category);
}
