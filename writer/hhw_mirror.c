/*
 * The Redis records that the edge reads for one API key and one
 * organisation, written from Postgres rows. The admin command writes them
 * for the rows it changes, and the writer's sync for every row.
 */

#include <stdio.h>
#include <string.h>

#include "hhw_mirror.h"
#include "hhw_redis.h"


#define HHW_MIRROR_KEY_MAX  64


int
hhw_mirror_queue_key(redisContext *ctx, const PGresult *res, int row)
{
    int          i, revoked;
    char         key[HHW_MIRROR_KEY_MAX];
    size_t       lens[10];
    const char  *items[10];

    snprintf(key, sizeof(key), "hh:key:%s", PQgetvalue(res, row, 2));

    revoked = PQgetvalue(res, row, 5)[0] == 't';

    items[0] = "id";
    items[1] = PQgetvalue(res, row, 0);
    items[2] = "org";
    items[3] = PQgetvalue(res, row, 1);
    items[4] = "mode";
    items[5] = PQgetvalue(res, row, 3);
    items[6] = "hash";
    items[7] = PQgetvalue(res, row, 4);
    items[8] = "revoked";
    items[9] = revoked ? "1" : "0";

    for (i = 0; i < 10; i++) {
        lens[i] = strlen(items[i]);
    }

    return hhw_redis_queue_replace_hash(ctx, key, 5, items, lens);
}


int
hhw_mirror_queue_org(redisContext *ctx, const PGresult *res, int row)
{
    int          i, n;
    char         key[HHW_MIRROR_KEY_MAX];
    size_t       lens[10];
    const char  *items[10];

    snprintf(key, sizeof(key), "hh:org:%s", PQgetvalue(res, row, 0));

    items[0] = "plan";
    items[1] = PQgetvalue(res, row, 1);
    items[2] = "currency";
    items[3] = PQgetvalue(res, row, 2);
    items[4] = "hourly_rate";
    items[5] = PQgetvalue(res, row, 3);
    n = 6;

    if (!PQgetisnull(res, row, 4)) {
        items[n++] = "rate_limit";
        items[n++] = PQgetvalue(res, row, 4);
    }

    if (!PQgetisnull(res, row, 5)) {
        items[n++] = "monthly_events";
        items[n++] = PQgetvalue(res, row, 5);
    }

    for (i = 0; i < n; i++) {
        lens[i] = strlen(items[i]);
    }

    return hhw_redis_queue_replace_hash(ctx, key, n / 2, items, lens);
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
hhw_mirror_org(redisContext *ctx, const PGresult *res, int row,
    hhw_error_t *err)
{
    int  replies;

    replies = hhw_mirror_queue_org(ctx, res, row);
    if (replies < 0) {
        hhw_error_set(err, "out of memory queueing a Redis command");
        return -1;
    }

    return hhw_redis_read_replies(ctx, replies, err);
}
