/*
 * The writer's metrics: counters kept by the loop, gauges read from Redis
 * once a second, and their rendering in Prometheus text format (version
 * 0.0.4) for the responder in writer_http.c.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "writer.h"


#define WRITER_METRICS_REFRESH_MS  1000


static const unsigned  writer_size_bounds[WRITER_NSIZE_BUCKETS] =
    WRITER_SIZE_BUCKETS;

static const double  writer_time_bounds[WRITER_NTIME_BUCKETS] =
    WRITER_TIME_BUCKETS;


static void writer_metrics_counter(hhw_buf_t *out, const char *name,
    const char *help, uint64_t value);
static void writer_metrics_gauge(hhw_buf_t *out, const char *name,
    const char *help, double value);
static void writer_metrics_label(hhw_buf_t *out, const char *value);
static long long writer_metrics_group_field(const redisReply *groups,
    const char *field, long long missing);


void
writer_metrics_batch(writer_metrics_t *m, size_t size, double seconds)
{
    size_t  i;

    m->batches++;
    m->size_sum += size;
    m->time_sum += seconds;

    if (seconds > m->time_max) {
        m->time_max = seconds;
    }

    for (i = 0; i < WRITER_NSIZE_BUCKETS; i++) {
        if (size <= writer_size_bounds[i]) {
            m->size_buckets[i]++;
        }
    }

    for (i = 0; i < WRITER_NTIME_BUCKETS; i++) {
        if (seconds <= writer_time_bounds[i]) {
            m->time_buckets[i]++;
        }
    }
}


/*
 * XLEN, XINFO GROUPS and the first entry's id in one round trip. Every
 * stored entry is deleted, so the stream contains only entries that are
 * pending or not yet delivered. Redis 7.0 reports the group's lag as nil when it cannot
 * compute it, and then the lag is estimated as length minus pending.
 */
int
writer_metrics_refresh(writer_t *w, hhw_error_t *err)
{
    int                i, rc;
    int64_t            now;
    long long          first_ms;
    redisReply        *replies[3];
    struct timespec    ts;
    writer_metrics_t  *m;

    now = writer_now_ms();
    m = &w->metrics;

    if (m->stats_at_ms != 0 && now - m->stats_at_ms < WRITER_METRICS_REFRESH_MS)
    {
        return 0;
    }

    if (redisAppendCommand(w->redis, "XLEN %s", HHW_REDIS_STREAM) != REDIS_OK
        || redisAppendCommand(w->redis, "XINFO GROUPS %s", HHW_REDIS_STREAM)
           != REDIS_OK
        || redisAppendCommand(w->redis, "XRANGE %s - + COUNT 1",
                              HHW_REDIS_STREAM)
           != REDIS_OK)
    {
        hhw_error_set(err, "out of memory queueing the stream statistics");
        return -1;
    }

    rc = 0;

    /* all three are freed below, also those never read after a failure */
    for (i = 0; i < 3; i++) {
        replies[i] = NULL;
    }

    for (i = 0; i < 3; i++) {
        if (redisGetReply(w->redis, (void **) &replies[i]) != REDIS_OK) {
            hhw_error_set(err, "reading the stream statistics failed: %s",
                          w->redis->errstr);
            rc = -1;
            break;
        }
    }

    if (rc == 0
        && (replies[0]->type != REDIS_REPLY_INTEGER
            || replies[1]->type != REDIS_REPLY_ARRAY
            || replies[2]->type != REDIS_REPLY_ARRAY))
    {
        hhw_error_set(err, "XLEN, XINFO GROUPS or XRANGE on %s returned a "
                      "reply of an unknown shape", HHW_REDIS_STREAM);
        rc = -1;
    }

    if (rc == 0) {
        m->stream_length = replies[0]->integer;
        m->group_pending = writer_metrics_group_field(replies[1], "pending",
                                                      0);
        m->group_lag = writer_metrics_group_field(replies[1], "lag", -1);

        if (m->group_lag < 0) {
            m->group_lag = m->stream_length - m->group_pending;
        }

        /* The id of the oldest entry starts with its Unix milliseconds. */
        m->oldest_age_s = 0;

        if (replies[2]->elements == 1
            && replies[2]->element[0]->type == REDIS_REPLY_ARRAY
            && replies[2]->element[0]->elements == 2
            && replies[2]->element[0]->element[0]->type == REDIS_REPLY_STRING)
        {
            first_ms = strtoll(replies[2]->element[0]->element[0]->str, NULL,
                               10);
            clock_gettime(CLOCK_REALTIME, &ts);

            m->oldest_age_s = ((double) ts.tv_sec * 1000
                               + ts.tv_nsec / 1000000 - first_ms) / 1000;

            if (m->oldest_age_s < 0) {
                m->oldest_age_s = 0;
            }
        }

        m->stats_at_ms = now;
    }

    for (i = 0; i < 3; i++) {
        if (replies[i] != NULL) {
            freeReplyObject(replies[i]);
        }
    }

    return rc;
}


void
writer_metrics_render(writer_t *w, hhw_buf_t *out)
{
    size_t             i;
    writer_metrics_t  *m;

    m = &w->metrics;

    hhw_buf_printf(out, "# HELP hh_writer_info The writer's consumer name "
                   "in the group.\n# TYPE hh_writer_info gauge\n"
                   "hh_writer_info{consumer=\"");
    writer_metrics_label(out, w->conf.consumer);
    hhw_buf_append_str(out, "\",group=\"" HHW_REDIS_GROUP "\",stream=\""
                       HHW_REDIS_STREAM "\"} 1\n");

    writer_metrics_counter(out, "hh_writer_events_inserted_total",
                           "Events inserted into Postgres.",
                           m->events_inserted);
    writer_metrics_counter(out, "hh_writer_events_duplicate_total",
                           "Stream entries whose event was already stored.",
                           m->events_duplicate);
    writer_metrics_counter(out, "hh_writer_entries_acknowledged_total",
                           "Stream entries acknowledged and deleted.",
                           m->entries_acknowledged);
    writer_metrics_counter(out, "hh_writer_entries_claimed_total",
                           "Stream entries claimed from idle consumers.",
                           m->entries_claimed);
    writer_metrics_counter(out, "hh_writer_consumers_deleted_total",
                           "Idle consumers without pending entries deleted "
                           "from the group.", m->consumers_deleted);

    hhw_buf_printf(out, "# HELP hh_writer_dead_letters_total Stream entries "
                   "moved to dead letters, by reason.\n"
                   "# TYPE hh_writer_dead_letters_total counter\n"
                   "hh_writer_dead_letters_total{reason=\"unparseable\"} "
                   "%llu\n"
                   "hh_writer_dead_letters_total{reason=\"rejected\"} %llu\n"
                   "hh_writer_dead_letters_total{reason=\"deliveries\"} "
                   "%llu\n",
                   (unsigned long long) m->dead_unparseable,
                   (unsigned long long) m->dead_rejected,
                   (unsigned long long) m->dead_deliveries);

    hhw_buf_printf(out, "# HELP hh_writer_sync_runs_total Syncs of Redis "
                   "from Postgres, by result.\n"
                   "# TYPE hh_writer_sync_runs_total counter\n"
                   "hh_writer_sync_runs_total{result=\"ok\"} %llu\n"
                   "hh_writer_sync_runs_total{result=\"failed\"} %llu\n",
                   (unsigned long long) m->sync_ok,
                   (unsigned long long) m->sync_failed);

    writer_metrics_counter(out, "hh_writer_failures_total",
                           "Failed steps of the loop, each followed by a "
                           "retry after back-off.", m->failures);

    hhw_buf_printf(out, "# HELP hh_writer_batch_size Stream entries per "
                   "stored batch.\n# TYPE hh_writer_batch_size histogram\n");

    for (i = 0; i < WRITER_NSIZE_BUCKETS; i++) {
        hhw_buf_printf(out, "hh_writer_batch_size_bucket{le=\"%u\"} %llu\n",
                       writer_size_bounds[i],
                       (unsigned long long) m->size_buckets[i]);
    }

    hhw_buf_printf(out, "hh_writer_batch_size_bucket{le=\"+Inf\"} %llu\n"
                   "hh_writer_batch_size_sum %llu\n"
                   "hh_writer_batch_size_count %llu\n",
                   (unsigned long long) m->batches,
                   (unsigned long long) m->size_sum,
                   (unsigned long long) m->batches);

    hhw_buf_printf(out, "# HELP hh_writer_batch_seconds Time from reading a "
                   "batch to acknowledging it.\n"
                   "# TYPE hh_writer_batch_seconds histogram\n");

    for (i = 0; i < WRITER_NTIME_BUCKETS; i++) {
        hhw_buf_printf(out, "hh_writer_batch_seconds_bucket{le=\"%g\"} "
                       "%llu\n", writer_time_bounds[i],
                       (unsigned long long) m->time_buckets[i]);
    }

    hhw_buf_printf(out, "hh_writer_batch_seconds_bucket{le=\"+Inf\"} %llu\n"
                   "hh_writer_batch_seconds_sum %.6f\n"
                   "hh_writer_batch_seconds_count %llu\n",
                   (unsigned long long) m->batches, m->time_sum,
                   (unsigned long long) m->batches);

    writer_metrics_gauge(out, "hh_writer_batch_seconds_max",
                         "The slowest batch since the writer started.",
                         m->time_max);

    writer_metrics_gauge(out, "hh_writer_stream_length",
                         "Entries in the stream: pending or not yet "
                         "delivered.", (double) m->stream_length);
    writer_metrics_gauge(out, "hh_writer_pending_entries",
                         "Entries delivered to the group and not yet "
                         "acknowledged, at any consumer.",
                         (double) m->group_pending);
    writer_metrics_gauge(out, "hh_writer_consumer_lag_entries",
                         "Entries not yet delivered to the group.",
                         (double) m->group_lag);
    writer_metrics_gauge(out, "hh_writer_oldest_entry_age_seconds",
                         "Age of the oldest entry in the stream, 0 when "
                         "empty.", m->oldest_age_s);
    writer_metrics_gauge(out, "hh_writer_stream_stats_age_seconds",
                         "Seconds since the stream gauges were read from "
                         "Redis.",
                         m->stats_at_ms == 0
                         ? -1
                         : (double) (writer_now_ms() - m->stats_at_ms)
                           / 1000);

    writer_metrics_gauge(out, "hh_writer_batch_in_flight_entries",
                         "Entries of the batch in flight, kept across "
                         "retries.", (double) w->batch.nitems);
    writer_metrics_gauge(out, "hh_writer_postgres_connected",
                         "1 while the Postgres connection is open.",
                         w->pg != NULL);
    writer_metrics_gauge(out, "hh_writer_redis_connected",
                         "1 while the Redis connection is open.",
                         w->redis != NULL);
}


static void
writer_metrics_counter(hhw_buf_t *out, const char *name, const char *help,
    uint64_t value)
{
    hhw_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name,
                   help, name, name, (unsigned long long) value);
}


static void
writer_metrics_gauge(hhw_buf_t *out, const char *name, const char *help,
    double value)
{
    hhw_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name,
                   help, name, name, value);
}


/* A label value escapes backslash, double quote and newline. */
static void
writer_metrics_label(hhw_buf_t *out, const char *value)
{
    const char  *p;

    for (p = value; *p != '\0'; p++) {
        switch (*p) {
        case '\\':
            hhw_buf_append(out, "\\\\", 2);
            break;
        case '"':
            hhw_buf_append(out, "\\\"", 2);
            break;
        case '\n':
            hhw_buf_append(out, "\\n", 2);
            break;
        default:
            hhw_buf_append(out, p, 1);
        }
    }
}


/*
 * Returns an integer field of the hh-writers entry of an XINFO GROUPS
 * reply, which lists each group as field-value pairs, or missing.
 */
static long long
writer_metrics_group_field(const redisReply *groups, const char *field,
    long long missing)
{
    size_t             i, j;
    const redisReply  *group, *name, *value;

    for (i = 0; i < groups->elements; i++) {
        group = groups->element[i];

        if (group->type != REDIS_REPLY_ARRAY) {
            continue;
        }

        name = NULL;
        value = NULL;

        for (j = 0; j + 1 < group->elements; j += 2) {
            if (group->element[j]->type != REDIS_REPLY_STRING) {
                continue;
            }

            if (strcmp(group->element[j]->str, "name") == 0) {
                name = group->element[j + 1];

            } else if (strcmp(group->element[j]->str, field) == 0) {
                value = group->element[j + 1];
            }
        }

        if (name != NULL && name->type == REDIS_REPLY_STRING
            && strcmp(name->str, HHW_REDIS_GROUP) == 0)
        {
            return value != NULL && value->type == REDIS_REPLY_INTEGER
                   ? value->integer : missing;
        }
    }

    return missing;
}
