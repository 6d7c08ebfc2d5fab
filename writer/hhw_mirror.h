/*
 * The Redis records that the edge reads, written from Postgres rows: API
 * keys, organisation settings, organisation task types, agent rates, the
 * built-in task types and model prices. The admin command writes the
 * records of the rows it changes, and the writer's sync writes every record.
 */

#ifndef HHW_MIRROR_H
#define HHW_MIRROR_H

#include <libpq-fe.h>
#include <hiredis.h>

#include "hhw_log.h"


/* The api_keys columns, in this order, that the key functions read. */
#define HHW_MIRROR_KEY_COLUMNS                                               \
    "id, org_id, prefix, mode, hash, revoked_at IS NOT NULL"

/*
 * The org_settings columns, in this order, that the org functions read.
 * org_settings (schema/004_plan_limits.sql) applies the plan's defaults.
 */
#define HHW_MIRROR_ORG_COLUMNS                                               \
    "id, plan, currency, hourly_rate, rate_limit, monthly_events, hard_cap," \
    " revision"

/* Rows of (built-in task type key, baseline minutes) for hh:tasktypes. */
#define HHW_MIRROR_TASK_TYPES_SELECT                                         \
    "SELECT key, baseline_minutes::text FROM task_types"

/*
 * Rows of (organisation id, task type key, "override:<minutes>" or
 * "custom:<minutes>") for hh:org:<id>:tasktypes. Archived custom types are
 * left out, and so are all the rows of an organisation whose plan does not
 * include overrides and custom types, which keeps them for a later upgrade.
 */
#define HHW_MIRROR_ORG_TASK_TYPES_SELECT                                     \
    "SELECT t.org_id, t.key, t.kind || ':' || t.baseline_minutes"            \
    " FROM org_task_types t JOIN org_settings s ON s.id = t.org_id"          \
    " WHERE t.archived_at IS NULL AND s.pro_features"

/* Rows of (organisation id, agent id, hourly rate) for hh:org:<id>:rates. */
#define HHW_MIRROR_RATES_SELECT                                              \
    "SELECT org_id, agent_id, hourly_rate::text FROM agent_rates"

/* Rows of (model, "<input> <output>") for hh:prices, per million tokens. */
#define HHW_MIRROR_PRICES_SELECT                                             \
    "SELECT model, input_per_million || ' ' || output_per_million"           \
    " FROM model_prices"

#define HHW_MIRROR_PRICE_BOOK_SELECT  "SELECT revision FROM price_book"


/* One organisation's rows, read by hhw_mirror_org_read(). */
typedef struct {
    PGresult  *settings;     /* HHW_MIRROR_ORG_COLUMNS, one row */
    PGresult  *task_types;   /* HHW_MIRROR_ORG_TASK_TYPES_SELECT */
    PGresult  *rates;        /* HHW_MIRROR_RATES_SELECT */
} hhw_mirror_org_t;

/* The price book's rows, read by hhw_mirror_prices_read(). */
typedef struct {
    PGresult  *revision;     /* HHW_MIRROR_PRICE_BOOK_SELECT */
    PGresult  *prices;       /* HHW_MIRROR_PRICES_SELECT */
} hhw_mirror_prices_t;


/*
 * Queues the replacement of hh:key:<prefix> (fields id, org, mode, hash and
 * revoked "0" or "1") from row of a result with HHW_MIRROR_KEY_COLUMNS.
 * Returns the replies to read with hhw_redis_read_replies(), or -1 when
 * memory ran out, after which the caller closes the connection.
 */
int hhw_mirror_queue_key(redisContext *ctx, const PGresult *res, int row);

/*
 * Queues the replacement of one organisation's records in one step:
 * hh:org:<id> (fields plan, currency, hourly_rate, rate_limit, hard_cap "1"
 * or "0", and monthly_events unless the plan has no monthly number) from
 * row of settings, a result with HHW_MIRROR_ORG_COLUMNS, and
 * hh:org:<id>:tasktypes and hh:org:<id>:rates from the given row ranges
 * (first to last - 1) of results with the organisation id, field and value
 * columns. Redis skips the replacement when hh:org:<id>:revision is newer
 * than the row's revision. Returns as hhw_mirror_queue_key() does.
 */
int hhw_mirror_queue_org(redisContext *ctx, const PGresult *settings,
    int row, const PGresult *task_types, int task_types_first,
    int task_types_last, const PGresult *rates, int rates_first,
    int rates_last);

/*
 * Queues the replacement of hh:prices with all rows of a result with
 * HHW_MIRROR_PRICES_SELECT, which Redis skips when hh:prices:revision is
 * newer than revision. Returns as hhw_mirror_queue_key() does.
 */
int hhw_mirror_queue_prices(redisContext *ctx, const char *revision,
    const PGresult *prices);

/*
 * Queues the replacement of the hash key with rows first to last - 1 of
 * res, taking each field from field_column and its value from the column
 * after it, with no revision check. No rows leaves the hash deleted.
 * Returns as hhw_mirror_queue_key() does.
 */
int hhw_mirror_queue_pairs(redisContext *ctx, const char *key,
    const PGresult *res, int first, int last, int field_column);

/* Writes one key record and waits for Redis. Returns 0, or -1 with err. */
int hhw_mirror_key(redisContext *ctx, const PGresult *res, int row,
    hhw_error_t *err);

/*
 * Reads the records of organisation org, a decimal id, through pg. Run it
 * in the transaction that changed them and before COMMIT, so that the rows
 * and their revision are what that transaction committed. Returns 0, or -1
 * with err, also when the organisation does not exist.
 */
int hhw_mirror_org_read(PGconn *pg, const char *org, hhw_mirror_org_t *rows,
    hhw_error_t *err);

/* Writes what hhw_mirror_org_read() read and waits for Redis. */
int hhw_mirror_org_write(redisContext *ctx, const hhw_mirror_org_t *rows,
    hhw_error_t *err);

void hhw_mirror_org_free(hhw_mirror_org_t *rows);

/* Reads the price book and its revision through pg, as org_read does. */
int hhw_mirror_prices_read(PGconn *pg, hhw_mirror_prices_t *rows,
    hhw_error_t *err);

/* Writes what hhw_mirror_prices_read() read and waits for Redis. */
int hhw_mirror_prices_write(redisContext *ctx,
    const hhw_mirror_prices_t *rows, hhw_error_t *err);

void hhw_mirror_prices_free(hhw_mirror_prices_t *rows);

#endif /* HHW_MIRROR_H */
