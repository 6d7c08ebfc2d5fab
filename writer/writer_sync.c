/*
 * The sync: copies what the edge reads (API keys, organisations, task types
 * and overrides, agent rates, model prices) from one Postgres snapshot into
 * Redis, replacing each hash atomically.
 */

#include <stdio.h>
#include <stdlib.h>

#include "hhw_mirror.h"
#include "writer.h"


/* Replies read back at a time while commands are pipelined. */
#define WRITER_SYNC_PIPELINE  1024


enum {
    WRITER_SYNC_KEYS = 0,
    WRITER_SYNC_ORGS,
    WRITER_SYNC_TASK_TYPES,
    WRITER_SYNC_ORG_TASK_TYPES,
    WRITER_SYNC_RATES,
    WRITER_SYNC_PRICES,
    WRITER_SYNC_NQUERIES
};


/*
 * Numbers are cast to text by Postgres, so Redis stores them exactly as
 * Postgres prints them. The per-organisation queries are ordered by
 * organisation id, as the organisations are.
 */
static const char *const  writer_sync_queries[WRITER_SYNC_NQUERIES] = {

    "SELECT " HHW_MIRROR_KEY_COLUMNS " FROM api_keys ORDER BY id",

    "SELECT " HHW_MIRROR_ORG_COLUMNS " FROM organisations ORDER BY id",

    "SELECT key, baseline_minutes::text FROM task_types",

    "SELECT org_id, key, kind || ':' || baseline_minutes"
    " FROM org_task_types WHERE archived_at IS NULL ORDER BY org_id",

    "SELECT org_id, agent_id, hourly_rate::text FROM agent_rates"
    " ORDER BY org_id",

    "SELECT model, input_per_million || ' ' || output_per_million"
    " FROM model_prices",
};


static int writer_sync_redis(redisContext *ctx, PGresult **res,
    hhw_error_t *err);
static int writer_sync_queue_org_maps(redisContext *ctx, const PGresult *orgs,
    const PGresult *rows, const char *suffix, unsigned *pending,
    hhw_error_t *err);
static int writer_sync_queue_pairs(redisContext *ctx, const char *key,
    const PGresult *res, int first, int last, int field_column,
    unsigned *pending, hhw_error_t *err);
static int writer_sync_flush(redisContext *ctx, unsigned *pending,
    unsigned limit, hhw_error_t *err);


int
writer_sync(writer_t *w, hhw_error_t *err)
{
    int           i, rc;
    PGresult     *res[WRITER_SYNC_NQUERIES];
    hhw_error_t   ignored;

    for (i = 0; i < WRITER_SYNC_NQUERIES; i++) {
        res[i] = NULL;
    }

    rc = -1;

    if (hhw_pg_exec(w->pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                    err)
        != 0)
    {
        return -1;
    }

    for (i = 0; i < WRITER_SYNC_NQUERIES; i++) {
        res[i] = hhw_pg_query(w->pg, writer_sync_queries[i], 0, NULL, err);

        if (res[i] == NULL) {
            hhw_pg_exec(w->pg, "ROLLBACK", &ignored);
            goto done;
        }
    }

    if (hhw_pg_exec(w->pg, "COMMIT", err) != 0) {
        goto done;
    }

    if (writer_sync_redis(w->redis, res, err) != 0) {
        goto done;
    }

    hhw_log(HHW_LOG_INFO, "synced Redis from Postgres: %d API keys, "
            "%d organisations, %d built-in task types, %d organisation task "
            "types, %d agent rates, %d model prices",
            PQntuples(res[WRITER_SYNC_KEYS]),
            PQntuples(res[WRITER_SYNC_ORGS]),
            PQntuples(res[WRITER_SYNC_TASK_TYPES]),
            PQntuples(res[WRITER_SYNC_ORG_TASK_TYPES]),
            PQntuples(res[WRITER_SYNC_RATES]),
            PQntuples(res[WRITER_SYNC_PRICES]));

    rc = 0;

done:

    for (i = 0; i < WRITER_SYNC_NQUERIES; i++) {
        PQclear(res[i]);
    }

    return rc;
}


/*
 * NOTE: a key or organisation row deleted from Postgres by hand keeps its
 * Redis hash, because the sync only writes hashes. The admin command never
 * deletes them: revoke a key instead.
 */
static int
writer_sync_redis(redisContext *ctx, PGresult **res, hhw_error_t *err)
{
    int        row, replies;
    unsigned   pending;
    PGresult  *keys, *orgs;

    keys = res[WRITER_SYNC_KEYS];
    orgs = res[WRITER_SYNC_ORGS];
    pending = 0;

    for (row = 0; row < PQntuples(keys); row++) {
        replies = hhw_mirror_queue_key(ctx, keys, row);
        if (replies < 0) {
            goto nomem;
        }

        pending += replies;

        if (writer_sync_flush(ctx, &pending, WRITER_SYNC_PIPELINE, err) != 0)
        {
            return -1;
        }
    }

    for (row = 0; row < PQntuples(orgs); row++) {
        replies = hhw_mirror_queue_org(ctx, orgs, row);
        if (replies < 0) {
            goto nomem;
        }

        pending += replies;

        if (writer_sync_flush(ctx, &pending, WRITER_SYNC_PIPELINE, err) != 0)
        {
            return -1;
        }
    }

    if (writer_sync_queue_pairs(ctx, "hh:tasktypes",
                                res[WRITER_SYNC_TASK_TYPES], 0,
                                PQntuples(res[WRITER_SYNC_TASK_TYPES]), 0,
                                &pending, err)
        != 0)
    {
        return -1;
    }

    if (writer_sync_queue_org_maps(ctx, orgs, res[WRITER_SYNC_ORG_TASK_TYPES],
                                   "tasktypes", &pending, err)
        != 0)
    {
        return -1;
    }

    if (writer_sync_queue_org_maps(ctx, orgs, res[WRITER_SYNC_RATES], "rates",
                                   &pending, err)
        != 0)
    {
        return -1;
    }

    if (writer_sync_queue_pairs(ctx, "hh:prices", res[WRITER_SYNC_PRICES], 0,
                                PQntuples(res[WRITER_SYNC_PRICES]), 0,
                                &pending, err)
        != 0)
    {
        return -1;
    }

    return writer_sync_flush(ctx, &pending, 0, err);

nomem:

    hhw_error_set(err, "out of memory queueing Redis commands");
    return -1;
}


/*
 * Replaces hh:org:<id>:<suffix> for every organisation, from rows whose
 * first column is the organisation id and whose other two are the field and
 * its value. An organisation with no rows gets its hash deleted, so an
 * archived override or a removed rate disappears from Redis too.
 */
static int
writer_sync_queue_org_maps(redisContext *ctx, const PGresult *orgs,
    const PGresult *rows, const char *suffix, unsigned *pending,
    hhw_error_t *err)
{
    int         org, first, last, nrows;
    char        key[64];
    long long   id;

    nrows = PQntuples(rows);
    last = 0;

    for (org = 0; org < PQntuples(orgs); org++) {
        id = strtoll(PQgetvalue(orgs, org, 0), NULL, 10);

        /* Both results are ordered by organisation id. */
        while (last < nrows && strtoll(PQgetvalue(rows, last, 0), NULL, 10)
                               < id)
        {
            last++;
        }

        first = last;

        while (last < nrows && strtoll(PQgetvalue(rows, last, 0), NULL, 10)
                               == id)
        {
            last++;
        }

        snprintf(key, sizeof(key), "hh:org:%lld:%s", id, suffix);

        if (writer_sync_queue_pairs(ctx, key, rows, first, last, 1, pending,
                                    err)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


/*
 * Queues the replacement of one hash with rows first to last - 1, taking
 * each field from field_column and its value from the column after it.
 */
static int
writer_sync_queue_pairs(redisContext *ctx, const char *key,
    const PGresult *res, int first, int last, int field_column,
    unsigned *pending, hhw_error_t *err)
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
        hhw_error_set(err, "out of memory queueing Redis commands");
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

    if (replies < 0) {
        hhw_error_set(err, "out of memory queueing Redis commands");
        return -1;
    }

    *pending += replies;

    return writer_sync_flush(ctx, pending, WRITER_SYNC_PIPELINE, err);
}


/* Reads the pending replies once there are more than limit of them. */
static int
writer_sync_flush(redisContext *ctx, unsigned *pending, unsigned limit,
    hhw_error_t *err)
{
    unsigned  count;

    if (*pending <= limit) {
        return 0;
    }

    count = *pending;
    *pending = 0;

    return hhw_redis_read_replies(ctx, count, err);
}
