/*
 * humanhours-admin key: creates, lists and revokes API keys. Postgres keeps
 * the prefix and the argon2id hash, never the raw key, and the command
 * writes each change to Redis itself, so that the edge applies it even
 * when no writer runs.
 */

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "hh_key.h"
#include "hhw_mirror.h"
#include "hhw_pg.h"


/*
 * A new key's prefix collides with odds of about n / 62^8 for n keys, so a
 * second attempt is already rare. More than a few means something is wrong.
 */
#define ADMIN_KEY_ATTEMPTS  5

#define ADMIN_KEY_TIME      "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"


static void admin_key_create(admin_t *admin, int argc, char **argv);
static int admin_key_insert(admin_t *admin, const char *org, const char *key,
    const unsigned char pepper[HH_PEPPER_LEN]);
static void admin_key_list(admin_t *admin, int argc, char **argv);
static void admin_key_revoke(admin_t *admin, int argc, char **argv);


static const admin_command_t  admin_key_subcommands[] = {
    { "create", admin_key_create },
    { "list", admin_key_list },
    { "revoke", admin_key_revoke },
    { NULL, NULL }
};


void
admin_key(admin_t *admin, int argc, char **argv)
{
    admin_run_subcommand(admin, "key", admin_key_subcommands,
                         "\"create\", \"list\" or \"revoke\"", argc, argv);
}


static void
admin_key_create(admin_t *admin, int argc, char **argv)
{
    int              c, attempt;
    char             key[HH_KEY_LEN + 1], message[256];
    const char      *org;
    hh_key_mode_e    mode;
    unsigned char    pepper[HH_PEPPER_LEN];

    static const struct option  options[] = {
        { "org", required_argument, NULL, 'o' },
        { "test", no_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    org = NULL;
    mode = HH_KEY_LIVE;

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            org = optarg;
            break;
        case 't':
            mode = HH_KEY_TEST;
            break;
        case 'h':
            admin_usage(admin, 1);
        default:
            admin_bad_option(admin, "key create", c, argv);
        }
    }

    if (optind != argc) {
        admin_fail(admin, "key create: unexpected argument \"%s\"",
                   argv[optind]);
    }

    if (org == NULL) {
        admin_fail(admin, "key create: --org is required");
    }

    admin_parse_positive(admin, org, "--org");

    if (sodium_init() < 0) {
        admin_fail(admin, "key create: libsodium failed to initialise");
    }

    if (hh_pepper_load(admin->conf.pepper_file, pepper, message,
                       sizeof(message))
        != 0)
    {
        admin_fail(admin, "key create: %s (HH_PEPPER_FILE)", message);
    }

    /* Both connections first, so that a down server costs no hashing. */
    admin_pg(admin);
    admin_redis(admin);

    for (attempt = 0; attempt < ADMIN_KEY_ATTEMPTS; attempt++) {
        hh_key_generate(mode, key);

        if (admin_key_insert(admin, org, key, pepper) == 0) {
            break;
        }
    }

    sodium_memzero(pepper, sizeof(pepper));

    if (attempt == ADMIN_KEY_ATTEMPTS) {
        admin_fail(admin, "key create: %d new keys in a row had a prefix "
                   "already in use; try again", ADMIN_KEY_ATTEMPTS);
    }

    printf("%s\n", key);
    sodium_memzero(key, sizeof(key));

    if (fflush(stdout) != 0) {
        admin_fail(admin, "key create: the key was created but could not "
                   "be printed; revoke it and create another");
    }
}


/*
 * Stores one generated key and writes it to Redis before COMMIT, so that
 * the key works at the edge as soon as it is printed. Returns 0, or -1 when
 * its prefix is already in use. Any other error fails the command.
 */
static int
admin_key_insert(admin_t *admin, const char *org, const char *key,
    const unsigned char pepper[HH_PEPPER_LEN])
{
    char            hash[HH_KEY_HASH_MAX];
    PGresult       *res;
    const char     *params[4];
    hhw_error_t     err, ignored;
    hh_key_parts_t  parts;

    if (hh_key_parse(key, HH_KEY_LEN, &parts) != 0) {
        admin_fail(admin, "key create: hh_key_generate() made a key that "
                   "hh_key_parse() rejects");
    }

    if (hh_key_hash(key, HH_KEY_LEN, pepper, hash) != 0) {
        admin_fail(admin, "key create: out of memory hashing the key");
    }

    params[0] = org;
    params[1] = parts.prefix;
    params[2] = parts.mode == HH_KEY_TEST ? "test" : "live";
    params[3] = hash;

    if (hhw_pg_exec(admin->pg, "BEGIN", &err) != 0) {
        admin_fail(admin, "key create: BEGIN failed: %s", err.text);
    }

    res = hhw_pg_query(admin->pg,
                       "INSERT INTO api_keys (org_id, prefix, mode, hash)"
                       " VALUES ($1::bigint, $2, $3, $4)"
                       " RETURNING " HHW_MIRROR_KEY_COLUMNS,
                       4, params, &err);

    if (res == NULL) {
        hhw_pg_exec(admin->pg, "ROLLBACK", &ignored);

        if (strcmp(err.sqlstate, "23505") == 0) {
            return -1;
        }

        if (strcmp(err.sqlstate, "23503") == 0) {
            admin_fail(admin, "key create: organisation %s not found", org);
        }

        admin_fail(admin, "key create: inserting the key failed: %s",
                   err.text);
    }

    if (hhw_mirror_key(admin->redis, res, 0, &err) != 0) {
        hhw_pg_exec(admin->pg, "ROLLBACK", &ignored);
        admin_fail(admin, "key create: writing hh:key:%s to Redis failed, so "
                   "no key was created: %s", parts.prefix, err.text);
    }

    PQclear(res);

    if (hhw_pg_exec(admin->pg, "NOTIFY " HHW_PG_SYNC_CHANNEL, &err) != 0
        || hhw_pg_exec(admin->pg, "COMMIT", &err) != 0)
    {
        admin_fail(admin, "key create: COMMIT failed, so no key was "
                   "created: %s", err.text);
    }

    return 0;
}


static void
admin_key_list(admin_t *admin, int argc, char **argv)
{
    int           nparams;
    PGresult     *res;
    const char   *org, *sql;
    hhw_error_t   err;

    org = admin_parse_list_options(admin, "key list", argc, argv);

    if (org != NULL) {
        sql = "SELECT prefix, mode, org_id,"
              " to_char(created_at, " ADMIN_KEY_TIME "), last_used_on,"
              " to_char(revoked_at, " ADMIN_KEY_TIME ")"
              " FROM api_keys WHERE org_id = $1::bigint ORDER BY id";
        nparams = 1;

    } else {
        sql = "SELECT prefix, mode, org_id,"
              " to_char(created_at, " ADMIN_KEY_TIME "), last_used_on,"
              " to_char(revoked_at, " ADMIN_KEY_TIME ")"
              " FROM api_keys ORDER BY id";
        nparams = 0;
    }

    res = hhw_pg_query(admin_pg(admin), sql, nparams, &org, &err);
    if (res == NULL) {
        admin_fail(admin, "key list: %s", err.text);
    }

    printf("prefix\tmode\torg\tcreated_at\tlast_used_on\trevoked_at\n");

    admin_print_rows(res, 6);

    PQclear(res);
}


/*
 * Revocation is committed in Postgres first, the record of truth, and then
 * written to Redis. Revoking again keeps the first revocation time and
 * writes Redis again, which repairs a Redis write that failed before.
 */
static void
admin_key_revoke(admin_t *admin, int argc, char **argv)
{
    PGconn       *pg;
    PGresult     *res;
    const char   *prefix;
    hhw_error_t   err, ignored;

    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        admin_usage(admin, 1);
    }

    if (argc != 2) {
        admin_fail(admin, "key revoke: expected one key prefix");
    }

    prefix = argv[1];

    if (strlen(prefix) != HH_KEY_PREFIX_LEN
        || strspn(prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "abcdefghijklmnopqrstuvwxyz0123456789")
           != HH_KEY_PREFIX_LEN)
    {
        admin_fail(admin, "key revoke: \"%s\" is not a key prefix, which is "
                   "8 letters and digits", prefix);
    }

    pg = admin_pg(admin);

    if (hhw_pg_exec(pg, "BEGIN", &err) != 0) {
        admin_fail(admin, "key revoke: BEGIN failed: %s", err.text);
    }

    res = hhw_pg_query(pg,
                       "UPDATE api_keys"
                       " SET revoked_at = coalesce(revoked_at, now())"
                       " WHERE prefix = $1"
                       " RETURNING " HHW_MIRROR_KEY_COLUMNS ","
                       " to_char(revoked_at, " ADMIN_KEY_TIME ")",
                       1, &prefix, &err);
    if (res == NULL) {
        admin_fail(admin, "key revoke: %s", err.text);
    }

    if (PQntuples(res) == 0) {
        hhw_pg_exec(pg, "ROLLBACK", &ignored);
        admin_fail(admin, "key revoke: no API key with prefix %s", prefix);
    }

    if (hhw_pg_exec(pg, "NOTIFY " HHW_PG_SYNC_CHANNEL, &err) != 0
        || hhw_pg_exec(pg, "COMMIT", &err) != 0)
    {
        admin_fail(admin, "key revoke: COMMIT failed, so the key was not "
                   "revoked: %s", err.text);
    }

    if (admin_redis_try(admin, &err) == NULL
        || hhw_mirror_key(admin->redis, res, 0, &err) != 0)
    {
        admin_fail(admin, "key revoke: key %s is revoked in Postgres, but "
                   "writing hh:key:%s to Redis failed, so the edge accepts "
                   "it until a writer syncs or this command succeeds: %s",
                   prefix, prefix, err.text);
    }

    printf("%s\t%s\n", prefix, PQgetvalue(res, 0, 6));

    PQclear(res);
}
