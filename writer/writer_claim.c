/*
 * Claiming stream entries that other consumers left pending, such as a
 * writer that crashed or was restarted under a new consumer name, so that
 * their events are stored late instead of never.
 */

#include <stdio.h>
#include <string.h>

#include "writer.h"


/*
 * Entries idle for longer than this are claimed. A batch takes milliseconds,
 * so a live writer rarely loses an entry it is still storing. If it does,
 * both writers insert the event and ON CONFLICT skips the second insert.
 */
#define WRITER_CLAIM_IDLE_MS  "60000"


int
writer_claim(writer_t *w, hhw_error_t *err)
{
    char         cursor[WRITER_STREAM_ID_MAX], count[16];
    size_t       claimed;
    const char  *argv[10];
    redisReply  *reply;

    snprintf(count, sizeof(count), "%u", w->conf.batch_size);
    strcpy(cursor, "0-0");
    claimed = 0;

    /*
     * XAUTOCLAIM scans the group's pending entries from the cursor and
     * returns the next cursor, "0-0" once the scan is complete. JUSTID
     * leaves the delivery count alone, and the entries are read again from
     * this consumer's pending entries below.
     */
    do {
        argv[0] = "XAUTOCLAIM";
        argv[1] = HHW_REDIS_STREAM;
        argv[2] = HHW_REDIS_GROUP;
        argv[3] = w->conf.consumer;
        argv[4] = WRITER_CLAIM_IDLE_MS;
        argv[5] = cursor;
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
            || reply->element[0]->len >= sizeof(cursor)
            || reply->element[1]->type != REDIS_REPLY_ARRAY)
        {
            freeReplyObject(reply);
            hhw_error_set(err, "XAUTOCLAIM returned a reply of an unknown "
                          "shape");
            return -1;
        }

        memcpy(cursor, reply->element[0]->str, reply->element[0]->len + 1);
        claimed += reply->element[1]->elements;

        freeReplyObject(reply);

    } while (strcmp(cursor, "0-0") != 0 && !writer_stop);

    if (claimed > 0) {
        hhw_log(HHW_LOG_INFO, "claimed %zu stream entries pending for over "
                "%s ms; reading the pending entries of consumer %s again",
                claimed, WRITER_CLAIM_IDLE_MS, w->conf.consumer);
        strcpy(w->cursor, "0");
    }

    return 0;
}
