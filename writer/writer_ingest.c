/*
 * The ingest loop's step: read a batch of hh:events entries as a member of
 * the consumer group hh-writers, store it, and only then acknowledge and
 * delete the entries, so that a crash loses and duplicates nothing.
 */

#include <stdio.h>
#include <string.h>

#include "writer.h"


static const redisReply *writer_ingest_entries(const redisReply *reply);
static int writer_ingest_store(writer_t *w, size_t n, size_t *stored,
    hhw_error_t *err);
static int writer_ingest_is_data_error(const hhw_error_t *err);
static int writer_ingest_ack(writer_t *w, size_t nids, hhw_error_t *err);


int
writer_ingest(writer_t *w, hhw_error_t *err)
{
    int                pending_phase;
    char               count[16], block[16];
    size_t             i, nparsed, nids, ndeleted, stored;
    const char        *argv[11], *id, *reason;
    redisReply        *reply;
    const redisReply  *entries, *entry;

    snprintf(count, sizeof(count), "%u", w->conf.batch_size);
    snprintf(block, sizeof(block), "%u", w->conf.batch_ms);

    /* XREADGROUP ignores BLOCK when it reads pending entries by id. */
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
    argv[10] = w->cursor;

    reply = hhw_redis_command(w->redis, 11, argv, NULL, err);
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
        hhw_error_set(err, "XREADGROUP returned a reply of an unknown shape");
        return -1;
    }

    pending_phase = strcmp(w->cursor, ">") != 0;

    if (pending_phase && entries->elements == 0) {
        hhw_log(HHW_LOG_INFO, "consumer %s has no pending entries left to "
                "read; reading new entries", w->conf.consumer);
        strcpy(w->cursor, ">");
        freeReplyObject(reply);
        return 0;
    }

    nparsed = 0;
    nids = 0;
    ndeleted = 0;

    for (i = 0; i < entries->elements; i++) {
        entry = entries->element[i];
        id = entry->element[0]->str;

        if (pending_phase) {
            snprintf(w->cursor, sizeof(w->cursor), "%s", id);
        }

        /* A pending entry that was deleted from the stream has no fields. */
        if (entry->element[1]->type == REDIS_REPLY_NIL) {
            hhw_log(HHW_LOG_WARN, "stream entry %s was deleted while "
                    "pending; acknowledging it", id);
            w->ack_argv[3 + nids++] = id;
            ndeleted++;
            continue;
        }

        w->committed[nparsed] = 0;
        reason = hh_entry_parse(&w->entries[nparsed], id, entry->element[1]);

        if (reason != NULL) {
            /*
             * TODO: move such entries to dead letters. Until then they stay
             * pending and are logged again whenever this consumer rereads
             * its pending entries, after a restart or a failure.
             */
            hhw_log(HHW_LOG_WARN, "stream entry %s not stored: %s; it stays "
                    "pending", id, reason);
            hh_entry_free(&w->entries[nparsed]);
            continue;
        }

        nparsed++;
    }

    stored = 0;

    if (nparsed > 0 && writer_ingest_store(w, nparsed, &stored, err) != 0) {
        goto failed;
    }

    for (i = 0; i < nparsed; i++) {
        if (w->committed[i]) {
            w->ack_argv[3 + nids++] = w->entries[i].stream_id;
        }
    }

    if (nids > 0 && writer_ingest_ack(w, nids, err) != 0) {
        hhw_error_prefix(err, "acknowledging %zu stream entries failed, so "
                         "they stay pending and are read again", nids);
        goto failed;
    }

    if (nids > ndeleted) {
        hhw_log(HHW_LOG_INFO, "stream entries %s to %s: %zu events inserted, "
                "%zu stored before", w->entries[0].stream_id,
                w->entries[nparsed - 1].stream_id, stored,
                nids - ndeleted - stored);
    }

    for (i = 0; i < nparsed; i++) {
        hh_entry_free(&w->entries[i]);
    }

    freeReplyObject(reply);

    return 0;

failed:

    for (i = 0; i < nparsed; i++) {
        hh_entry_free(&w->entries[i]);
    }

    freeReplyObject(reply);

    return -1;
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
 * Stores the parsed entries and marks each one committed. When Postgres
 * rejects the batch for its data, such as a key id that api_keys does not
 * have, each entry is stored on its own, so that only the entries at fault
 * stay pending and the others are stored. Returns -1 with err only for
 * failures that a retry may cure.
 */
static int
writer_ingest_store(writer_t *w, size_t n, size_t *stored, hhw_error_t *err)
{
    size_t  i, inserted;

    if (writer_batch_store(w->pg, w->entries, n, &w->rows, stored, err)
        == 0)
    {
        for (i = 0; i < n; i++) {
            w->committed[i] = 1;
        }

        return 0;
    }

    if (!writer_ingest_is_data_error(err)) {
        hhw_error_prefix(err, "storing stream entries %s to %s failed",
                         w->entries[0].stream_id, w->entries[n - 1].stream_id);
        return -1;
    }

    if (n > 1) {
        hhw_log(HHW_LOG_WARN, "Postgres rejected stream entries %s to %s: "
                "%s; storing them one at a time", w->entries[0].stream_id,
                w->entries[n - 1].stream_id, err->text);
    }

    for (i = 0; i < n; i++) {
        if (writer_batch_store(w->pg, &w->entries[i], 1, &w->rows, &inserted,
                               err)
            == 0)
        {
            w->committed[i] = 1;
            *stored += inserted;
            continue;
        }

        if (!writer_ingest_is_data_error(err)) {
            hhw_error_prefix(err, "storing stream entry %s failed",
                             w->entries[i].stream_id);
            return -1;
        }

        /* It stays pending, as an entry that does not parse does. */
        hhw_log(HHW_LOG_WARN, "stream entry %s not stored: Postgres rejected "
                "it: %s; it stays pending", w->entries[i].stream_id,
                err->text);
    }

    return 0;
}


/*
 * SQLSTATE classes 22 (data exception) and 23 (integrity constraint
 * violation) come from the rows, so retrying the same rows fails again.
 */
static int
writer_ingest_is_data_error(const hhw_error_t *err)
{
    return strncmp(err->sqlstate, "22", 2) == 0
           || strncmp(err->sqlstate, "23", 2) == 0;
}


/*
 * Acknowledges and deletes the entries whose ids are in ack_argv from
 * index 3 on, with XACK and XDEL in one round trip. The stream is never
 * trimmed otherwise, so a stored entry that is not deleted stays in memory.
 */
static int
writer_ingest_ack(writer_t *w, size_t nids, hhw_error_t *err)
{
    const char  **argv;

    argv = w->ack_argv;

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

    if (hhw_redis_read_replies(w->redis, 2, err) != 0) {
        return -1;
    }

    return 0;

nomem:

    hhw_error_set(err, "out of memory queueing XACK and XDEL");
    return -1;
}
