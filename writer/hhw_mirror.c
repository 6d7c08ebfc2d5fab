/*
 * The Redis records that the edge reads, written from Postgres rows. The
 * admin command writes the records of the rows it changes, and the writer's
 * sync writes every record.
 *
 * A sync reads one snapshot and writes it a moment later, so it can write
 * an older state over a change that the admin command has just written.
 * Key records guard against that with the key script below; organisation
 * records and the price book carry a revision, and Redis keeps the newest.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hhw_mirror.h"
#include "hhw_pg.h"
#include "hhw_redis.h"


#define HHW_MIRROR_KEY_MAX    64

/* Field-value arguments that the replace script passes to one HSET. */
#define HHW_MIRROR_HSET_ARGS  "1000"


/* A growing argument list for one Redis command. */
typedef struct {
    const char  **argv;
    size_t       *lens;
    size_t        n;
    size_t        size;
    int           failed;
} hhw_mirror_args_t;


/*
 * A key record is replaced by a script, because a sync that read Postgres
 * just before a revocation must not write revoked=0 over the revoked=1
 * that the admin command has since set. Revocation is final, so a record
 * of the same key id that is marked revoked stays revoked.
 */
static const char  hhw_mirror_key_script[] =
    "local was = redis.call('HMGET', KEYS[1], 'id', 'revoked')\n"
    "local revoked = ARGV[5]\n"
    "if was[1] == ARGV[1] and was[2] == '1' then revoked = '1' end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], 'id', ARGV[1], 'org', ARGV[2],\n"
    "           'mode', ARGV[3], 'hash', ARGV[4], 'revoked', revoked)\n"
    "return 1\n";


int
hhw_mirror_queue_key(redisContext *ctx, const PGresult *res, int row)
{
    int          i;
    char         key[HHW_MIRROR_KEY_MAX];
    size_t       lens[9];
    const char  *argv[9];

    snprintf(key, sizeof(key), "hh:key:%s", PQgetvalue(res, row, 2));

    argv[0] = "EVAL";
    argv[1] = hhw_mirror_key_script;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = PQgetvalue(res, row, 0);
    argv[5] = PQgetvalue(res, row, 1);
    argv[6] = PQgetvalue(res, row, 3);
    argv[7] = PQgetvalue(res, row, 4);
    argv[8] = PQgetvalue(res, row, 5)[0] == 't' ? "1" : "0";

    for (i = 0; i < 9; i++) {
        lens[i] = strlen(argv[i]);
    }

    if (redisAppendCommandArgv(ctx, 9, argv, lens) != REDIS_OK) {
        return -1;
    }

    return 1;
}


/*
 * KEYS: the revision key, then the hashes to replace
 * ARGV: the revision, then for each hash the number of pairs and its
 *       field-value pairs
 *
 * Replaces every hash, or none when the revision key contains a newer
 * revision. HSET takes the pairs in slices, because unpack() fails on some
 * thousand values at once.
 *
 * NOTE: a Postgres restored to an older revision needs hh:org:*:revision
 * and hh:prices:revision deleted from Redis, or the sync skips those records.
 */
static const char  hhw_mirror_replace_script[] =
    "local stored = tonumber(redis.call('GET', KEYS[1]))\n"
    "if stored and stored > tonumber(ARGV[1]) then return 0 end\n"
    "local i = 2\n"
    "for k = 2, #KEYS do\n"
    "  local last = i + 2 * tonumber(ARGV[i])\n"
    "  i = i + 1\n"
    "  redis.call('DEL', KEYS[k])\n"
    "  while i <= last do\n"
    "    local stop = math.min(i + " HHW_MIRROR_HSET_ARGS " - 1, last)\n"
    "    redis.call('HSET', KEYS[k], unpack(ARGV, i, stop))\n"
    "    i = stop + 1\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "return 1\n";


static void hhw_mirror_arg(hhw_mirror_args_t *args, const char *data,
    size_t len);
static void hhw_mirror_arg_rows(hhw_mirror_args_t *args, char *count,
    const PGresult *res, int first, int last, int field_column);
static int hhw_mirror_append(redisContext *ctx, hhw_mirror_args_t *args);


/*
 * Every organisation gets rate_limit and hard_cap, so the track script never
 * falls back to its own copy of the plan defaults. monthly_events is left
 * out only for a plan without a monthly number, which is never a hard cap.
 */
int
hhw_mirror_queue_org(redisContext *ctx, const PGresult *settings, int row,
    const PGresult *task_types, int task_types_first, int task_types_last,
    const PGresult *rates, int rates_first, int rates_last)
{
    int                 i, n;
    char                keys[4][HHW_MIRROR_KEY_MAX], counts[3][24];
    const char         *org, *value;
    hhw_mirror_args_t   args;

    static const char *const  fields[] = {
        NULL, "plan", "currency", "hourly_rate", "rate_limit",
        "monthly_events", "hard_cap"
    };

    org = PQgetvalue(settings, row, 0);

    snprintf(keys[0], sizeof(keys[0]), "hh:org:%s:revision", org);
    snprintf(keys[1], sizeof(keys[1]), "hh:org:%s", org);
    snprintf(keys[2], sizeof(keys[2]), "hh:org:%s:tasktypes", org);
    snprintf(keys[3], sizeof(keys[3]), "hh:org:%s:rates", org);

    memset(&args, 0, sizeof(hhw_mirror_args_t));

    hhw_mirror_arg(&args, "EVAL", 4);
    hhw_mirror_arg(&args, hhw_mirror_replace_script,
                   sizeof(hhw_mirror_replace_script) - 1);
    hhw_mirror_arg(&args, "4", 1);

    for (i = 0; i < 4; i++) {
        hhw_mirror_arg(&args, keys[i], strlen(keys[i]));
    }

    hhw_mirror_arg(&args, PQgetvalue(settings, row, 7),
                   PQgetlength(settings, row, 7));

    /* The settings: one field for each column but the id and revision. */
    n = 0;

    for (i = 1; i <= 6; i++) {
        n += !PQgetisnull(settings, row, i);
    }

    snprintf(counts[0], sizeof(counts[0]), "%d", n);
    hhw_mirror_arg(&args, counts[0], strlen(counts[0]));

    for (i = 1; i <= 6; i++) {
        if (PQgetisnull(settings, row, i)) {
            continue;
        }

        value = PQgetvalue(settings, row, i);

        if (i == 6) {
            value = value[0] == 't' ? "1" : "0";
        }

        hhw_mirror_arg(&args, fields[i], strlen(fields[i]));
        hhw_mirror_arg(&args, value, strlen(value));
    }

    hhw_mirror_arg_rows(&args, counts[1], task_types, task_types_first,
                        task_types_last, 1);
    hhw_mirror_arg_rows(&args, counts[2], rates, rates_first, rates_last, 1);

    return hhw_mirror_append(ctx, &args);
}


int
hhw_mirror_queue_prices(redisContext *ctx, const char *revision,
    const PGresult *prices)
{
    char                count[24];
    hhw_mirror_args_t   args;

    memset(&args, 0, sizeof(hhw_mirror_args_t));

    hhw_mirror_arg(&args, "EVAL", 4);
    hhw_mirror_arg(&args, hhw_mirror_replace_script,
                   sizeof(hhw_mirror_replace_script) - 1);
    hhw_mirror_arg(&args, "2", 1);
    hhw_mirror_arg(&args, "hh:prices:revision",
                   sizeof("hh:prices:revision") - 1);
    hhw_mirror_arg(&args, "hh:prices", sizeof("hh:prices") - 1);
    hhw_mirror_arg(&args, revision, strlen(revision));
    hhw_mirror_arg_rows(&args, count, prices, 0, PQntuples(prices), 0);

    return hhw_mirror_append(ctx, &args);
}


int
hhw_mirror_queue_pairs(redisContext *ctx, const char *key,
    const PGresult *res, int first, int last, int field_column)
{
    int           row, replies;
    size_t        n, *lens;
    const char  **items;

    n = 2 * (size_t) (last - first);
    items = malloc((n ? n : 1) * sizeof(char *));
    lens = malloc((n ? n : 1) * sizeof(size_t));

    if (items == NULL || lens == NULL) {
        free(items);
        free(lens);
        return -1;
    }

    n = 0;

    for (row = first; row < last; row++) {
        items[n] = PQgetvalue(res, row, field_column);
        lens[n++] = PQgetlength(res, row, field_column);
        items[n] = PQgetvalue(res, row, field_column + 1);
        lens[n++] = PQgetlength(res, row, field_column + 1);
    }

    replies = hhw_redis_queue_replace_hash(ctx, key, n / 2, items, lens);

    free(items);
    free(lens);

    return replies;
}


int
hhw_mirror_key(redisContext *ctx, const PGresult *res, int row,
    hhw_error_t *err)
{
    int  replies;

    replies = hhw_mirror_queue_key(ctx, res, row);
    if (replies < 0) {
        hhw_error_set(err, "out of memory queueing a Redis command");
        return -1;
    }

    return hhw_redis_read_replies(ctx, replies, err);
}


int
hhw_mirror_org_read(PGconn *pg, const char *org, hhw_mirror_org_t *rows,
    hhw_error_t *err)
{
    memset(rows, 0, sizeof(hhw_mirror_org_t));

    rows->settings = hhw_pg_query(pg, "SELECT " HHW_MIRROR_ORG_COLUMNS
                                  " FROM org_settings WHERE id = $1::bigint",
                                  1, &org, err);
    if (rows->settings == NULL) {
        goto failed;
    }

    if (PQntuples(rows->settings) != 1) {
        hhw_error_set(err, "organisation %s not found", org);
        goto failed;
    }

    rows->task_types = hhw_pg_query(pg, HHW_MIRROR_ORG_TASK_TYPES_SELECT
                                    " AND t.org_id = $1::bigint",
                                    1, &org, err);
    if (rows->task_types == NULL) {
        goto failed;
    }

    rows->rates = hhw_pg_query(pg, HHW_MIRROR_RATES_SELECT
                               " WHERE org_id = $1::bigint",
                               1, &org, err);
    if (rows->rates == NULL) {
        goto failed;
    }

    return 0;

failed:

    hhw_mirror_org_free(rows);
    return -1;
}


int
hhw_mirror_org_write(redisContext *ctx, const hhw_mirror_org_t *rows,
    hhw_error_t *err)
{
    int  replies;

    replies = hhw_mirror_queue_org(ctx, rows->settings, 0,
                                   rows->task_types, 0,
                                   PQntuples(rows->task_types),
                                   rows->rates, 0, PQntuples(rows->rates));
    if (replies < 0) {
        hhw_error_set(err, "out of memory queueing a Redis command");
        return -1;
    }

    return hhw_redis_read_replies(ctx, replies, err);
}


void
hhw_mirror_org_free(hhw_mirror_org_t *rows)
{
    PQclear(rows->settings);
    PQclear(rows->task_types);
    PQclear(rows->rates);
    memset(rows, 0, sizeof(hhw_mirror_org_t));
}


int
hhw_mirror_prices_read(PGconn *pg, hhw_mirror_prices_t *rows,
    hhw_error_t *err)
{
    memset(rows, 0, sizeof(hhw_mirror_prices_t));

    rows->revision = hhw_pg_query(pg, HHW_MIRROR_PRICE_BOOK_SELECT, 0, NULL,
                                  err);
    if (rows->revision == NULL) {
        goto failed;
    }

    if (PQntuples(rows->revision) != 1) {
        hhw_error_set(err, "price_book has %d rows instead of 1",
                      PQntuples(rows->revision));
        goto failed;
    }

    rows->prices = hhw_pg_query(pg, HHW_MIRROR_PRICES_SELECT, 0, NULL, err);
    if (rows->prices == NULL) {
        goto failed;
    }

    return 0;

failed:

    hhw_mirror_prices_free(rows);
    return -1;
}


int
hhw_mirror_prices_write(redisContext *ctx, const hhw_mirror_prices_t *rows,
    hhw_error_t *err)
{
    int  replies;

    replies = hhw_mirror_queue_prices(ctx, PQgetvalue(rows->revision, 0, 0),
                                      rows->prices);
    if (replies < 0) {
        hhw_error_set(err, "out of memory queueing a Redis command");
        return -1;
    }

    return hhw_redis_read_replies(ctx, replies, err);
}


void
hhw_mirror_prices_free(hhw_mirror_prices_t *rows)
{
    PQclear(rows->revision);
    PQclear(rows->prices);
    memset(rows, 0, sizeof(hhw_mirror_prices_t));
}


/* Adds one argument. A failed allocation is reported by the append. */
static void
hhw_mirror_arg(hhw_mirror_args_t *args, const char *data, size_t len)
{
    size_t        size;
    size_t       *lens;
    const char  **argv;

    if (args->failed) {
        return;
    }

    if (args->n == args->size) {
        size = args->size ? 2 * args->size : 64;

        argv = realloc(args->argv, size * sizeof(char *));
        if (argv != NULL) {
            args->argv = argv;
        }

        lens = realloc(args->lens, size * sizeof(size_t));
        if (lens != NULL) {
            args->lens = lens;
        }

        if (argv == NULL || lens == NULL) {
            args->failed = 1;
            return;
        }

        args->size = size;
    }

    args->argv[args->n] = data;
    args->lens[args->n++] = len;
}


/*
 * Adds the number of rows first to last - 1, written into count, then each
 * row's field from field_column and value from the column after it.
 */
static void
hhw_mirror_arg_rows(hhw_mirror_args_t *args, char *count,
    const PGresult *res, int first, int last, int field_column)
{
    int  row;

    snprintf(count, 24, "%d", last - first);
    hhw_mirror_arg(args, count, strlen(count));

    for (row = first; row < last; row++) {
        hhw_mirror_arg(args, PQgetvalue(res, row, field_column),
                       PQgetlength(res, row, field_column));
        hhw_mirror_arg(args, PQgetvalue(res, row, field_column + 1),
                       PQgetlength(res, row, field_column + 1));
    }
}


/* Queues the command and frees the list. Returns 1 reply to read, or -1. */
static int
hhw_mirror_append(redisContext *ctx, hhw_mirror_args_t *args)
{
    int  rc;

    rc = -1;

    if (!args->failed
        && redisAppendCommandArgv(ctx, (int) args->n, args->argv, args->lens)
           == REDIS_OK)
    {
        rc = 1;
    }

    free(args->argv);
    free(args->lens);

    return rc;
}
