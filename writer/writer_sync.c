/*
 * The sync: copies what the edge reads (API keys, organisations, task types
 * and overrides, agent rates, model prices) from one Postgres snapshot into
 * Redis, replacing each hash atomically. Records that the admin command has
 * meanwhile written from a newer revision are left alone (hhw_mirror.c).
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
    WRITER_SYNC_PRICE_BOOK,
    WRITER_SYNC_TASK_TYPE_META,
    WRITER_SYNC_CUSTOM_META,
    WRITER_SYNC_NQUERIES
};


/*
 * Numbers are cast to text by Postgres, so Redis stores them exactly as
 * Postgres prints them. The per-organisation queries are ordered by
 * organisation id, as the organisations are. The queries are those of
 * hhw_mirror.h, which the admin command runs for one organisation.
 */
static const char *const  writer_sync_queries[WRITER_SYNC_NQUERIES] = {

    "SELECT " HHW_MIRROR_KEY_COLUMNS " FROM api_keys ORDER BY id",

    "SELECT " HHW_MIRROR_ORG_COLUMNS " FROM org_settings ORDER BY id",

    HHW_MIRROR_TASK_TYPES_SELECT,

    HHW_MIRROR_ORG_TASK_TYPES_SELECT " ORDER BY t.org_id",

    HHW_MIRROR_RATES_SELECT " ORDER BY org_id",

    HHW_MIRROR_PRICES_SELECT,

    HHW_MIRROR_PRICE_BOOK_SELECT,

    /* category and display name, for the edge's task types endpoint */
    "SELECT key, category || E'\\t' || display_name FROM task_types",

    "SELECT org_id, key, category || E'\\t' || display_name"
    " FROM org_task_types WHERE kind = 'custom' ORDER BY org_id",
};


static int writer_sync_redis(redisContext *ctx, PGresult **res,
    hhw_error_t *err);
static void writer_sync_org_rows(const PGresult *rows, long long org,
    int *first, int *last);
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

    if (PQntuples(res[WRITER_SYNC_PRICE_BOOK]) != 1) {
        hhw_error_set(err, "price_book has %d rows instead of 1",
                      PQntuples(res[WRITER_SYNC_PRICE_BOOK]));
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
    int         row, replies, task_types_first, task_types_last;
    int         rates_first, rates_last, meta_first, meta_last;
    char        meta_key[64];
    unsigned    pending;
    PGresult   *keys, *orgs, *task_types;
    long long   org;

    keys = res[WRITER_SYNC_KEYS];
    orgs = res[WRITER_SYNC_ORGS];
    task_types = res[WRITER_SYNC_TASK_TYPES];
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

    task_types_last = 0;
    rates_last = 0;
    meta_last = 0;

    for (row = 0; row < PQntuples(orgs); row++) {
        org = strtoll(PQgetvalue(orgs, row, 0), NULL, 10);

        task_types_first = task_types_last;
        writer_sync_org_rows(res[WRITER_SYNC_ORG_TASK_TYPES], org,
                             &task_types_first, &task_types_last);

        rates_first = rates_last;
        writer_sync_org_rows(res[WRITER_SYNC_RATES], org, &rates_first,
                             &rates_last);

        replies = hhw_mirror_queue_org(ctx, orgs, row,
                                       res[WRITER_SYNC_ORG_TASK_TYPES],
                                       task_types_first, task_types_last,
                                       res[WRITER_SYNC_RATES], rates_first,
                                       rates_last);
        if (replies < 0) {
            goto nomem;
        }

        pending += replies;

        meta_first = meta_last;
        writer_sync_org_rows(res[WRITER_SYNC_CUSTOM_META], org, &meta_first,
                             &meta_last);

        snprintf(meta_key, sizeof(meta_key), "hh:org:%lld:tasktypes:meta",
                 org);

        replies = hhw_mirror_queue_pairs(ctx, meta_key,
                                         res[WRITER_SYNC_CUSTOM_META],
                                         meta_first, meta_last, 1);
        if (replies < 0) {
            goto nomem;
        }

        pending += replies;

        if (writer_sync_flush(ctx, &pending, WRITER_SYNC_PIPELINE, err) != 0)
        {
            return -1;
        }
    }

    replies = hhw_mirror_queue_pairs(ctx, "hh:tasktypes", task_types, 0,
                                     PQntuples(task_types), 0);
    if (replies < 0) {
        goto nomem;
    }

    pending += replies;

    replies = hhw_mirror_queue_pairs(ctx, "hh:tasktypes:meta",
                                     res[WRITER_SYNC_TASK_TYPE_META], 0,
                                     PQntuples(res[WRITER_SYNC_TASK_TYPE_META]),
                                     0);
    if (replies < 0) {
        goto nomem;
    }

    pending += replies;

    replies = hhw_mirror_queue_prices(ctx,
                  PQgetvalue(res[WRITER_SYNC_PRICE_BOOK], 0, 0),
                  res[WRITER_SYNC_PRICES]);
    if (replies < 0) {
        goto nomem;
    }

    pending += replies;

    return writer_sync_flush(ctx, &pending, 0, err);

nomem:

    hhw_error_set(err, "out of memory queueing Redis commands");
    return -1;
}


/*
 * Finds the rows of organisation org in rows, which are ordered by their
 * first column, the organisation id, as the organisations are. The search
 * starts at *first; on return the organisation's rows are *first to
 * *last - 1, none when both are equal.
 */
static void
writer_sync_org_rows(const PGresult *rows, long long org, int *first,
    int *last)
{
    int  n;

    n = PQntuples(rows);

    while (*first < n && strtoll(PQgetvalue(rows, *first, 0), NULL, 10) < org)
    {
        (*first)++;
    }

    *last = *first;

    while (*last < n && strtoll(PQgetvalue(rows, *last, 0), NULL, 10) == org)
    {
        (*last)++;
    }
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
