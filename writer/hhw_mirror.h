/*
 * The Redis records that the edge reads for one API key and one
 * organisation, written from Postgres rows. The admin command writes them
 * for the rows it changes, and the writer's sync for every row.
 */

#ifndef HHW_MIRROR_H
#define HHW_MIRROR_H

#include <libpq-fe.h>
#include <hiredis.h>

#include "hhw_log.h"


/* The api_keys columns, in this order, that the key functions read. */
#define HHW_MIRROR_KEY_COLUMNS                                               \
    "id, org_id, prefix, mode, hash, revoked_at IS NOT NULL"

/* The organisations columns, in this order, that the org functions read. */
#define HHW_MIRROR_ORG_COLUMNS                                               \
    "id, plan, currency, hourly_rate, rate_limit, monthly_events"


/*
 * Queues the replacement of hh:key:<prefix> (fields id, org, mode, hash and
 * revoked "0" or "1") from row of a result with HHW_MIRROR_KEY_COLUMNS.
 * Returns the replies to read with hhw_redis_read_replies(), or -1 when
 * memory ran out, after which the caller closes the connection.
 */
int hhw_mirror_queue_key(redisContext *ctx, const PGresult *res, int row);

/*
 * Queues the replacement of hh:org:<id> (fields plan, currency, hourly_rate,
 * and rate_limit and monthly_events unless NULL, which leaves the track
 * script to apply the plan's default) from row of a result with
 * HHW_MIRROR_ORG_COLUMNS. Returns as hhw_mirror_queue_key() does.
 */
int hhw_mirror_queue_org(redisContext *ctx, const PGresult *res, int row);

/* Writes one key record and waits for Redis. Returns 0, or -1 with err. */
int hhw_mirror_key(redisContext *ctx, const PGresult *res, int row,
    hhw_error_t *err);

/* Writes one organisation record and waits for Redis. */
int hhw_mirror_org(redisContext *ctx, const PGresult *res, int row,
    hhw_error_t *err);

#endif /* HHW_MIRROR_H */
