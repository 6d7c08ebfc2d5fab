/*
 * The Redis hashes behind the edge's read endpoints, which the writer
 * updates from each stored batch: hh:org:<org>:agents (live agent id to the
 * time its first event was stored) and hh:org:<org>:day:<YYYY-MM-DD> (live
 * agent id to "<events> <hours saved> <cost saved>" of that UTC day).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer.h"


/* Keys are "hh:org:", a bigint, ":day:" and a date. */
#define WRITER_VIEWS_KEY_MAX  64


/*
 * Postgres sends absolute values, so an update may be written twice, or
 * after a newer one from another writer. The scripts keep the earliest
 * time and the largest event count, which makes both harmless: times
 * in one format compare as text, and a day's counts only grow.
 */
static const char  writer_views_agents_script[] =
    "for i = 1, #ARGV, 2 do\n"
    "  local old = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  if not old or ARGV[i + 1] < old then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* ARGV[1] is the Unix time at which the day's hash expires. */
static const char  writer_views_day_script[] =
    "for i = 2, #ARGV, 2 do\n"
    "  local old = redis.call('HGET', KEYS[1], ARGV[i])\n"
    "  local had = tonumber(string.match(old or '', '^%d+') or '-1')\n"
    "  local has = tonumber(string.match(ARGV[i + 1], '^%d+'))\n"
    "  if had <= has then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "  end\n"
    "end\n"
    "redis.call('EXPIREAT', KEYS[1], ARGV[1])\n"
    "return 1\n";


static int writer_views_queue_result(redisContext *ctx, const PGresult *res,
    int days);
static int writer_views_queue_key(redisContext *ctx, const PGresult *res,
    int first, int last, int days);


int
writer_views_queue(redisContext *ctx, PGresult *const *views, size_t nviews)
{
    int     n, replies;
    size_t  i;

    replies = 0;

    /* Agents and days results alternate. */
    for (i = 0; i < nviews; i++) {
        n = writer_views_queue_result(ctx, views[i], i % 2);
        if (n < 0) {
            return -1;
        }

        replies += n;
    }

    return replies;
}


/*
 * Queues one script call per key. The rows are ordered by organisation,
 * and days rows also by day, so the rows of one key are adjacent.
 */
static int
writer_views_queue_result(redisContext *ctx, const PGresult *res, int days)
{
    int  row, first, nrows, replies;

    nrows = PQntuples(res);
    replies = 0;

    for (first = 0; first < nrows; first = row) {
        for (row = first + 1; row < nrows; row++) {
            if (strcmp(PQgetvalue(res, row, 0), PQgetvalue(res, first, 0))
                != 0
                || (days
                    && strcmp(PQgetvalue(res, row, 1),
                              PQgetvalue(res, first, 1))
                       != 0))
            {
                break;
            }
        }

        if (writer_views_queue_key(ctx, res, first, row, days) != 0) {
            return -1;
        }

        replies++;
    }

    return replies;
}


/*
 * Agents rows are org_id, agent_id and the time. Days rows are org_id,
 * date, expiry, agent_id and the value.
 */
static int
writer_views_queue_key(redisContext *ctx, const PGresult *res, int first,
    int last, int days)
{
    int           rc, row, value_column, field_column;
    char          key[WRITER_VIEWS_KEY_MAX];
    size_t        argc, *lens;
    const char  **argv;

    if (days) {
        snprintf(key, sizeof(key), "hh:org:%s:day:%s",
                 PQgetvalue(res, first, 0), PQgetvalue(res, first, 1));
        field_column = 3;
        value_column = 4;

    } else {
        snprintf(key, sizeof(key), "hh:org:%s:agents",
                 PQgetvalue(res, first, 0));
        field_column = 1;
        value_column = 2;
    }

    argc = 4 + (days ? 1 : 0) + 2 * (size_t) (last - first);
    argv = malloc(argc * sizeof(char *));
    lens = malloc(argc * sizeof(size_t));

    if (argv == NULL || lens == NULL) {
        free(argv);
        free(lens);
        return -1;
    }

    argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = days ? writer_views_day_script
                        : writer_views_agents_script;
    argv[argc++] = "1";
    argv[argc++] = key;

    if (days) {
        argv[argc++] = PQgetvalue(res, first, 2);
    }

    for (row = first; row < last; row++) {
        argv[argc++] = PQgetvalue(res, row, field_column);
        argv[argc++] = PQgetvalue(res, row, value_column);
    }

    for (row = 0; (size_t) row < argc; row++) {
        lens[row] = strlen(argv[row]);
    }

    rc = redisAppendCommandArgv(ctx, (int) argc, argv, lens);

    free(argv);
    free(lens);

    return rc == REDIS_OK ? 0 : -1;
}
