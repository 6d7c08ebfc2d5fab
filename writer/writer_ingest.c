/*
 * The ingest loop's step: read a batch of hh:events entries as a member of
 * the consumer group hh-writers, store it, and only then acknowledge and
 * delete the entries, so that a crash loses and duplicates nothing.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer.h"


/* Time for a reply from Redis, on top of a read's BLOCK time. */
#define WRITER_INGEST_REDIS_TIMEOUT_MS  10000


static int writer_ingest_read(writer_t *w, hhw_error_t *err);
static int writer_ingest_read_new(writer_t *w, hhw_error_t *err);
static const redisReply *writer_ingest_entries(const redisReply *reply);
static void writer_ingest_add(writer_t *w, const redisReply *entries,
    int pending_phase);
static int writer_ingest_deliveries(writer_t *w, size_t first,
    hhw_error_t *err);
static int writer_ingest_store(writer_t *w, hhw_error_t *err);
static int writer_ingest_store_range(writer_t *w, writer_item_t **items,
    size_t n, hhw_error_t *err);
static int writer_ingest_keep_views(writer_batch_t *b, PGresult *agents,
    PGresult *days);
static int writer_ingest_is_data_error(const hhw_error_t *err);
static void writer_ingest_dead(writer_item_t *item,
    writer_dead_reason_e reason, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int writer_ingest_ack(writer_t *w, hhw_error_t *err);
static void writer_ingest_finish(writer_t *w);


int
writer_ingest(writer_t *w, hhw_error_t *err)
{
    writer_batch_t  *b;

    b = &w->batch;

    if (b->nitems == 0) {
        if (writer_stop) {
            return 0;
        }

        if (writer_ingest_read(w, err) != 0) {
            return -1;
        }

        if (b->nitems == 0) {
            return 0;
        }
    }

    if (!b->stored) {
        if (writer_ingest_store(w, err) != 0) {
            b->retried = 1;
            return -1;
        }

        b->stored = 1;
    }

    if (writer_ingest_ack(w, err) != 0) {
        b->retried = 1;
        hhw_error_prefix(err, "acknowledging %zu stored stream entries "
                         "failed, so they stay pending and are "
                         "acknowledged at the next attempt", b->nitems);
        return -1;
    }

    writer_ingest_finish(w);

    return 0;
}


void
writer_ingest_abandon(writer_t *w)
{
    size_t           i;
    writer_batch_t  *b;

    b = &w->batch;

    for (i = 0; i < b->nitems; i++) {
        if (b->items[i].parsed) {
            hh_entry_free(&b->items[i].entry);
        }

        free(b->items[i].error);
    }

    for (i = 0; i < b->nreplies; i++) {
        freeReplyObject(b->replies[i]);
    }

    for (i = 0; i < b->nviews; i++) {
        PQclear(b->views[i]);
    }

    memset(b->items, 0, b->nitems * sizeof(writer_item_t));
    b->nitems = 0;
    b->nreplies = 0;
    b->nviews = 0;
    b->stored = 0;
    b->retried = 0;
    b->inserted = 0;
}


/*
 * While this consumer has pending entries, one read returns a batch of
 * them (XREADGROUP ignores BLOCK for those), and their delivery counts are
 * checked. Then new entries are read until the batch is full or
 * HH_BATCH_MS has passed.
 */
static int
writer_ingest_read(writer_t *w, hhw_error_t *err)
{
    char               count[16];
    const char        *argv[9];
    redisReply        *reply;
    writer_batch_t    *b;
    const redisReply  *entries;

    b = &w->batch;
    b->read_at_ms = writer_now_ms();

    if (strcmp(w->cursor, ">") == 0) {
        return writer_ingest_read_new(w, err);
    }

    snprintf(count, sizeof(count), "%u", w->conf.batch_size);

    argv[0] = "XREADGROUP";
    argv[1] = "GROUP";
    argv[2] = HHW_REDIS_GROUP;
    argv[3] = w->conf.consumer;
    argv[4] = "COUNT";
    argv[5] = count;
    argv[6] = "STREAMS";
    argv[7] = HHW_REDIS_STREAM;
    argv[8] = w->cursor;

    reply = writer_redis_command(w, 9, argv, WRITER_INGEST_REDIS_TIMEOUT_MS,
                                 err);
    if (reply == NULL) {
        return -1;
    }

    entries = writer_ingest_entries(reply);
    if (entries == NULL) {
        freeReplyObject(reply);
        hhw_error_set(err, "XREADGROUP returned a reply of an unknown shape");
        return -1;
    }

    if (entries->elements == 0) {
        hhw_log(HHW_LOG_INFO, "consumer %s has no pending entries left to "
                "read; reading new entries", w->conf.consumer);
        strcpy(w->cursor, ">");
        freeReplyObject(reply);
        return 0;
    }

    b->replies[b->nreplies++] = reply;
    writer_ingest_add(w, entries, 1);

    /* The next read of pending entries starts after the last one read. */
    snprintf(w->cursor, sizeof(w->cursor), "%s",
             b->items[b->nitems - 1].stream_id);

    return writer_ingest_deliveries(w, 0, err);
}


/*
 * Each read requests the room left in the batch and blocks for the time
 * left, and returns as soon as any new entry is there. A stop signal ends
 * the filling, and the entries read so far are stored before the writer
 * exits.
 */
static int
writer_ingest_read_new(writer_t *w, hhw_error_t *err)
{
    char               count[24], block[24];
    int64_t            left;
    const char        *argv[11];
    redisReply        *reply;
    writer_batch_t    *b;
    const redisReply  *entries;

    b = &w->batch;

    for ( ;; ) {
        left = b->read_at_ms + w->conf.batch_ms - writer_now_ms();

        if (left < 1) {
            /* BLOCK 0 would wait forever; 1 ms still takes what is there. */
            if (b->nitems > 0) {
                return 0;
            }

            left = 1;
        }

        snprintf(count, sizeof(count), "%zu",
                 w->conf.batch_size - b->nitems);
        snprintf(block, sizeof(block), "%lld", (long long) left);

        argv[0] = "XREADGROUP";
        argv[1] = "GROUP";
        argv[2] = HHW_REDIS_GROUP;
        argv[3] = w->conf.consumer;
        argv[4] = "COUNT";
        argv[5] = count;
        argv[6] = "BLOCK";
        argv[7] = block;
        argv[8] = "STREAMS";
        argv[9] = HHW_REDIS_STREAM;
        argv[10] = ">";

        reply = writer_redis_command(w, 11, argv,
                                     left + WRITER_INGEST_REDIS_TIMEOUT_MS,
                                     err);
        if (reply == NULL) {
            return -1;
        }

        /* BLOCK timed out with no new entry. */
        if (reply->type == REDIS_REPLY_NIL) {
            freeReplyObject(reply);
            return 0;
        }

        entries = writer_ingest_entries(reply);
        if (entries == NULL) {
            freeReplyObject(reply);
            hhw_error_set(err, "XREADGROUP returned a reply of an unknown "
                          "shape");
            return -1;
        }

        if (entries->elements == 0
            || entries->elements > w->conf.batch_size - b->nitems)
        {
            freeReplyObject(reply);

            if (entries->elements == 0) {
                return 0;
            }

            hhw_error_set(err, "XREADGROUP returned more entries than "
                          "COUNT asked for");
            return -1;
        }

        b->replies[b->nreplies++] = reply;
        writer_ingest_add(w, entries, 0);

        if (b->nitems == w->conf.batch_size || writer_stop) {
            return 0;
        }
    }
}


/*
 * Returns the entry list of an XREADGROUP reply for one stream, after
 * checking that every entry is an id and a field list (or nil), or NULL.
 */
static const redisReply *
writer_ingest_entries(const redisReply *reply)
{
    size_t             i;
    const redisReply  *stream, *entries, *entry;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1) {
        return NULL;
    }

    stream = reply->element[0];

    if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2
        || stream->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return NULL;
    }

    entries = stream->element[1];

    for (i = 0; i < entries->elements; i++) {
        entry = entries->element[i];

        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2
            || entry->element[0]->type != REDIS_REPLY_STRING
            || entry->element[0]->len >= WRITER_STREAM_ID_MAX
            || (entry->element[1]->type != REDIS_REPLY_ARRAY
                && entry->element[1]->type != REDIS_REPLY_NIL))
        {
            return NULL;
        }
    }

    return entries;
}


/*
 * Appends the entries to the batch and parses them. An entry that does not
 * parse goes to dead letters on its first delivery: parsing depends on
 * nothing but the entry, so every later attempt would fail the same way.
 */
static void
writer_ingest_add(writer_t *w, const redisReply *entries, int pending_phase)
{
    size_t             i;
    const char        *reason;
    writer_item_t     *item;
    const redisReply  *entry;

    for (i = 0; i < entries->elements; i++) {
        entry = entries->element[i];
        item = &w->batch.items[w->batch.nitems++];

        memset(item, 0, sizeof(writer_item_t));
        item->stream_id = entry->element[0]->str;
        item->deliveries = pending_phase ? 0 : 1;

        /* A pending entry that was deleted from the stream has no fields. */
        if (entry->element[1]->type == REDIS_REPLY_NIL) {
            hhw_log(HHW_LOG_WARN, "stream entry %s was deleted while "
                    "pending; acknowledging it", item->stream_id);
            item->action = WRITER_ITEM_GONE;
            item->done = 1;
            continue;
        }

        item->fields = entry->element[1];

        reason = hh_entry_parse(&item->entry, item->stream_id, item->fields);
        item->parsed = 1;

        if (reason != NULL) {
            writer_ingest_dead(item, WRITER_DEAD_UNPARSEABLE, NULL,
                               "the entry does not parse: %s", reason);
            continue;
        }

        item->action = WRITER_ITEM_STORE;
    }
}


/*
 * Looks up the delivery counts of the pending entries read from index
 * first on, with XPENDING over their id range, and sends every entry
 * delivered more than HH_MAX_DELIVERIES times to dead letters. Rereading a
 * pending entry counts as a delivery, so a count grows when a writer
 * crashes or restarts with the entry pending, and an entry that crashes
 * every writer that reads it ends here. Failures of Postgres do not count,
 * since the batch in flight is retried from memory.
 */
static int
writer_ingest_deliveries(writer_t *w, size_t first, hhw_error_t *err)
{
    char               count[16];
    size_t             i, j;
    const char        *argv[7];
    redisReply        *reply;
    writer_item_t     *item;
    writer_batch_t    *b;
    const redisReply  *p;

    b = &w->batch;

    snprintf(count, sizeof(count), "%zu", b->nitems - first);

    argv[0] = "XPENDING";
    argv[1] = HHW_REDIS_STREAM;
    argv[2] = HHW_REDIS_GROUP;
    argv[3] = b->items[first].stream_id;
    argv[4] = b->items[b->nitems - 1].stream_id;
    argv[5] = count;
    argv[6] = w->conf.consumer;

    reply = writer_redis_command(w, 7, argv, WRITER_INGEST_REDIS_TIMEOUT_MS,
                                 err);
    if (reply == NULL) {
        hhw_error_prefix(err, "XPENDING failed");
        return -1;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(reply);
        hhw_error_set(err, "XPENDING returned a reply of an unknown shape");
        return -1;
    }

    /* Both lists are in stream id order. */
    j = 0;

    for (i = first; i < b->nitems; i++) {
        item = &b->items[i];

        for ( /* void */ ; j < reply->elements; j++) {
            p = reply->element[j];

            if (p->type == REDIS_REPLY_ARRAY && p->elements == 4
                && p->element[0]->type == REDIS_REPLY_STRING
                && p->element[3]->type == REDIS_REPLY_INTEGER
                && strcmp(p->element[0]->str, item->stream_id) == 0)
            {
                item->deliveries = (unsigned) p->element[3]->integer;
                j++;
                break;
            }
        }

        if (item->deliveries > w->conf.max_deliveries
            && item->action == WRITER_ITEM_STORE)
        {
            writer_ingest_dead(item, WRITER_DEAD_DELIVERIES, NULL,
                               "delivered %u times without being stored, "
                               "more than HH_MAX_DELIVERIES (%u)",
                               item->deliveries, w->conf.max_deliveries);
        }
    }

    freeReplyObject(reply);

    return 0;
}


/*
 * Stores the events of the batch, then its dead letters. Items done in an
 * earlier attempt of the same batch are skipped.
 */
static int
writer_ingest_store(writer_t *w, hhw_error_t *err)
{
    size_t           i, n, dead;
    writer_batch_t  *b;

    b = &w->batch;
    n = 0;

    for (i = 0; i < b->nitems; i++) {
        if (b->items[i].action == WRITER_ITEM_STORE && !b->items[i].done) {
            b->store[n++] = &b->items[i];
        }
    }

    if (n > 0 && writer_ingest_store_range(w, b->store, n, err) != 0) {
        hhw_error_prefix(err, "storing stream entries %s to %s failed",
                         b->items[0].stream_id,
                         b->items[b->nitems - 1].stream_id);
        return -1;
    }

    dead = 0;

    for (i = 0; i < b->nitems; i++) {
        if (b->items[i].action == WRITER_ITEM_DEAD && !b->items[i].done) {
            dead++;
        }
    }

    if (dead > 0 && writer_dead_letters_store(w, err) != 0) {
        hhw_error_prefix(err, "storing %zu dead letters failed", dead);
        return -1;
    }

    return 0;
}


/*
 * Stores items in one transaction. When Postgres rejects them for their
 * data, each half is stored on its own, down to single entries, so that
 * only the entries at fault go to dead letters and the rest is written.
 * Returns -1 with err only for failures that a retry may cure.
 */
static int
writer_ingest_store_range(writer_t *w, writer_item_t **items, size_t n,
    hhw_error_t *err)
{
    size_t          i, half, inserted;
    PGresult       *agents, *days;
    writer_item_t  *item;

    if (writer_batch_store(w->pg, items, n, &w->rows, &inserted, &agents,
                           &days, err)
        == 0)
    {
        for (i = 0; i < n; i++) {
            items[i]->done = 1;
        }

        w->batch.inserted += inserted;

        if (writer_ingest_keep_views(&w->batch, agents, days) != 0) {
            hhw_error_set(err, "out of memory keeping the results of a "
                          "batch");
            return -1;
        }

        return 0;
    }

    if (!writer_ingest_is_data_error(err)) {
        return -1;
    }

    if (n == 1) {
        item = items[0];

        writer_ingest_dead(item, WRITER_DEAD_REJECTED, err->sqlstate,
                           "Postgres rejected the event: %s (SQLSTATE %s)",
                           err->text, err->sqlstate);
        return 0;
    }

    /* The message can quote a value of the entries, so it is not logged. */
    hhw_log(HHW_LOG_WARN, "Postgres rejected the %zu stream entries %s to %s "
            "with SQLSTATE %s; storing each half on its own to find the "
            "entries at fault", n, items[0]->stream_id,
            items[n - 1]->stream_id, err->sqlstate);

    half = n / 2;

    if (writer_ingest_store_range(w, items, half, err) != 0) {
        return -1;
    }

    return writer_ingest_store_range(w, items + half, n - half, err);
}


/*
 * Keeps the results for the acknowledgement, or frees them and returns -1
 * when memory ran out. The batch is committed then, so a retry stores
 * nothing new and writes the Redis hashes from its own results.
 */
static int
writer_ingest_keep_views(writer_batch_t *b, PGresult *agents, PGresult *days)
{
    size_t      size;
    PGresult  **views;

    if (b->nviews + 2 > b->views_size) {
        size = b->views_size ? 2 * b->views_size : 8;
        views = realloc(b->views, size * sizeof(PGresult *));

        if (views == NULL) {
            PQclear(agents);
            PQclear(days);
            return -1;
        }

        b->views = views;
        b->views_size = size;
    }

    b->views[b->nviews++] = agents;
    b->views[b->nviews++] = days;

    return 0;
}


/*
 * SQLSTATE classes 22 (data exception), 23 (integrity constraint violation)
 * and 54 (program limit exceeded, such as an index row over the size
 * limit) come from the rows, so retrying the same rows fails again.
 */
static int
writer_ingest_is_data_error(const hhw_error_t *err)
{
    return strncmp(err->sqlstate, "22", 2) == 0
           || strncmp(err->sqlstate, "23", 2) == 0
           || strncmp(err->sqlstate, "54", 2) == 0;
}


static void
writer_ingest_dead(writer_item_t *item, writer_dead_reason_e reason,
    const char *sqlstate, const char *fmt, ...)
{
    int      n;
    va_list  args;

    item->action = WRITER_ITEM_DEAD;
    item->dead_reason = reason;
    snprintf(item->sqlstate, sizeof(item->sqlstate), "%s",
             sqlstate != NULL ? sqlstate : "");

    free(item->error);

    va_start(args, fmt);
    n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);

    item->error = malloc(n + 1);

    if (item->error != NULL) {
        va_start(args, fmt);
        vsnprintf(item->error, n + 1, fmt, args);
        va_end(args);
    }
}


/*
 * Updates the Redis hashes of the read endpoints, then acknowledges and
 * deletes the entries of the batch with XACK and XDEL, in one round trip.
 * The stream is never trimmed otherwise, so a stored entry that is not
 * deleted stays in memory. A failure leaves it all to be sent again, which
 * the hash updates allow.
 */
static int
writer_ingest_ack(writer_t *w, hhw_error_t *err)
{
    int               views;
    size_t            i, nids;
    const char      **argv;
    writer_batch_t   *b;

    b = &w->batch;
    argv = b->ack_argv;
    nids = 0;

    for (i = 0; i < b->nitems; i++) {
        if (b->items[i].done) {
            argv[3 + nids++] = b->items[i].stream_id;
        }
    }

    if (nids == 0) {
        return 0;
    }

    views = writer_views_queue(w->redis, b->views, b->nviews);
    if (views < 0) {
        goto nomem;
    }

    argv[0] = "XACK";
    argv[1] = HHW_REDIS_STREAM;
    argv[2] = HHW_REDIS_GROUP;

    if (redisAppendCommandArgv(w->redis, 3 + nids, argv, NULL) != REDIS_OK) {
        goto nomem;
    }

    /* hiredis copied the command, so the head is reused for XDEL. */
    argv[1] = "XDEL";
    argv[2] = HHW_REDIS_STREAM;

    if (redisAppendCommandArgv(w->redis, 2 + nids, argv + 1, NULL)
        != REDIS_OK)
    {
        goto nomem;
    }

    if (hhw_redis_read_replies(w->redis, views + 2, err) != 0) {
        return -1;
    }

    w->metrics.entries_acknowledged += nids;

    return 0;

nomem:

    /* Part of the commands may be queued, so the connection is closed. */
    redisFree(w->redis);
    w->redis = NULL;

    hhw_error_set(err, "out of memory queueing XACK and XDEL");
    return -1;
}


/* Counts the acknowledged batch and frees it. */
static void
writer_ingest_finish(writer_t *w)
{
    size_t           i, stored;
    double           seconds;
    int64_t          slow_ms;
    writer_batch_t  *b;

    b = &w->batch;
    stored = 0;

    for (i = 0; i < b->nitems; i++) {
        if (b->items[i].action == WRITER_ITEM_STORE) {
            stored++;
        }
    }

    w->metrics.events_inserted += b->inserted;
    w->metrics.events_duplicate += stored - b->inserted;

    seconds = (double) (writer_now_ms() - b->read_at_ms) / 1000;
    writer_metrics_batch(&w->metrics, b->nitems, seconds);

    /*
     * Past half the idle time, other writers come close to claiming. A
     * batch retried after a failure is slow for another reason.
     */
    slow_ms = w->conf.claim_idle_ms / 2;

    if (seconds * 1000 > slow_ms && !b->retried) {
        hhw_log(HHW_LOG_WARN, "the batch of stream entries %s to %s took "
                "%.1f s, over half of HH_CLAIM_IDLE_MS (%u ms), after which "
                "other writers claim its entries; raise HH_CLAIM_IDLE_MS if "
                "this repeats", b->items[0].stream_id,
                b->items[b->nitems - 1].stream_id, seconds,
                w->conf.claim_idle_ms);
    }

    writer_ingest_abandon(w);
}
