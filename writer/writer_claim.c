/*
 * Claiming stream entries that other consumers left pending, so that their
 * events are stored late instead of never. Such a consumer is a writer that
 * crashed, or that was stopped while its batch could not be stored. Also
 * deleting the consumers that writers which exited leave in the group.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer.h"


/* XAUTOCLAIM calls per step, so that a huge backlog cannot stall the loop. */
#define WRITER_CLAIM_CALLS         10

/*
 * A consumer with no pending entries that has not read for this many claim
 * idle times is deleted. Deleting a live but idle writer is harmless, since
 * its next read creates it again.
 */
#define WRITER_CONSUMER_FORGET     10

/*
 * Deletes consumer ARGV[2] of group ARGV[1] only while it has no pending
 * entry, in one atomic step: XGROUP DELCONSUMER drops the pending entries
 * of the consumer it deletes, which would then never be delivered again.
 */
static const char  writer_forget_script[] =
    "if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])\n"
    "   == 0 then\n"
    "  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])\n"
    "end\n"
    "return -1\n";


static int writer_claim_forget(writer_t *w, hhw_error_t *err);


int
writer_claim(writer_t *w, hhw_error_t *err)
{
    int          calls;
    char         count[16], idle[16];
    size_t       claimed, deleted;
    const char  *argv[9];
    redisReply  *reply;

    snprintf(count, sizeof(count), "%u", w->conf.batch_size);
    snprintf(idle, sizeof(idle), "%u", w->conf.claim_idle_ms);
    claimed = 0;
    deleted = 0;

    /*
     * XAUTOCLAIM scans the group's pending entries from the cursor. It
     * returns the next cursor ("0-0" once the scan is complete), the ids it
     * claimed, and since Redis 7.0 the ids of pending entries that were
     * deleted from the stream, which it drops from the group. JUSTID leaves
     * the delivery count alone, and reading the entries again from this
     * consumer's pending entries counts the delivery.
     */
    for (calls = 0; calls < WRITER_CLAIM_CALLS; calls++) {
        argv[0] = "XAUTOCLAIM";
        argv[1] = HHW_REDIS_STREAM;
        argv[2] = HHW_REDIS_GROUP;
        argv[3] = w->conf.consumer;
        argv[4] = idle;
        argv[5] = w->claim_cursor;
        argv[6] = "COUNT";
        argv[7] = count;
        argv[8] = "JUSTID";

        reply = hhw_redis_command(w->redis, 9, argv, NULL, err);
        if (reply == NULL) {
            hhw_error_prefix(err, "XAUTOCLAIM failed");
            return -1;
        }

        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
            || reply->element[0]->type != REDIS_REPLY_STRING
            || reply->element[0]->len >= sizeof(w->claim_cursor)
            || reply->element[1]->type != REDIS_REPLY_ARRAY)
        {
            freeReplyObject(reply);
            hhw_error_set(err, "XAUTOCLAIM returned a reply of an unknown "
                          "shape");
            return -1;
        }

        memcpy(w->claim_cursor, reply->element[0]->str,
               reply->element[0]->len + 1);
        claimed += reply->element[1]->elements;

        if (reply->elements >= 3
            && reply->element[2]->type == REDIS_REPLY_ARRAY)
        {
            deleted += reply->element[2]->elements;
        }

        freeReplyObject(reply);

        if (strcmp(w->claim_cursor, "0-0") == 0) {
            break;
        }
    }

    if (deleted > 0) {
        hhw_log(HHW_LOG_WARN, "dropped %zu pending entries that were deleted "
                "from stream %s before they were acknowledged", deleted,
                HHW_REDIS_STREAM);
    }

    if (claimed > 0) {
        hhw_log(HHW_LOG_INFO, "claimed %zu stream entries pending for over "
                "%u ms; reading the pending entries of consumer %s again",
                claimed, w->conf.claim_idle_ms, w->conf.consumer);
        w->metrics.entries_claimed += claimed;
        strcpy(w->cursor, "0");
    }

    if (strcmp(w->claim_cursor, "0-0") != 0) {
        return 0;
    }

    return writer_claim_forget(w, err);
}


/*
 * Each writer process is a consumer of its own, named after host and pid,
 * so every restart leaves one behind. Once its entries have been claimed,
 * it is deleted here.
 */
static int
writer_claim_forget(writer_t *w, hhw_error_t *err)
{
    size_t             i, j;
    long long          idle, pending, forget_ms;
    const char        *argv[7];
    redisReply        *reply, *result;
    const redisReply  *consumer, *name;

    argv[0] = "XINFO";
    argv[1] = "CONSUMERS";
    argv[2] = HHW_REDIS_STREAM;
    argv[3] = HHW_REDIS_GROUP;

    reply = hhw_redis_command(w->redis, 4, argv, NULL, err);
    if (reply == NULL) {
        hhw_error_prefix(err, "XINFO CONSUMERS failed");
        return -1;
    }

    forget_ms = (long long) w->conf.claim_idle_ms * WRITER_CONSUMER_FORGET;

    for (i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++)
    {
        consumer = reply->element[i];

        if (consumer->type != REDIS_REPLY_ARRAY) {
            continue;
        }

        name = NULL;
        idle = -1;
        pending = -1;

        for (j = 0; j + 1 < consumer->elements; j += 2) {
            if (consumer->element[j]->type != REDIS_REPLY_STRING) {
                continue;
            }

            if (strcmp(consumer->element[j]->str, "name") == 0
                && consumer->element[j + 1]->type == REDIS_REPLY_STRING)
            {
                name = consumer->element[j + 1];

            } else if (strcmp(consumer->element[j]->str, "idle") == 0) {
                idle = consumer->element[j + 1]->integer;

            } else if (strcmp(consumer->element[j]->str, "pending") == 0) {
                pending = consumer->element[j + 1]->integer;
            }
        }

        if (name == NULL || pending != 0 || idle < forget_ms
            || strcmp(name->str, w->conf.consumer) == 0)
        {
            continue;
        }

        argv[0] = "EVAL";
        argv[1] = writer_forget_script;
        argv[2] = "1";
        argv[3] = HHW_REDIS_STREAM;
        argv[4] = HHW_REDIS_GROUP;
        argv[5] = name->str;

        result = hhw_redis_command(w->redis, 6, argv, NULL, err);
        if (result == NULL) {
            freeReplyObject(reply);
            hhw_error_prefix(err, "deleting an idle consumer failed");
            return -1;
        }

        if (result->type == REDIS_REPLY_INTEGER && result->integer == 0) {
            hhw_log(HHW_LOG_INFO, "deleted consumer %s from group %s: idle "
                    "for %lld ms with no pending entries", name->str,
                    HHW_REDIS_GROUP, idle);
            w->metrics.consumers_deleted++;
        }

        freeReplyObject(result);
    }

    freeReplyObject(reply);

    return 0;
}
