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


/*
 * A key record is replaced by a script, because a sync that read Postgres
 * just before a revocation must not write revoked=0 over the revoked=1
 * that the admin command has since set. Revocation is final, so a record
 * of the same key id that says revoked stays revoked.
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
