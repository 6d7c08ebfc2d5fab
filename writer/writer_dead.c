/*
 * Dead letters: stream entries that the writer acknowledges without storing
 * an event are kept in the dead_letters table with the reason and the
 * entry's fields, so that an operator can inspect them and add them again.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writer.h"


/*
 * A payload is cut at this many bytes of field values. The module bounds
 * an entry by its request body limit, so only a hand-made entry reaches it.
 */
#define WRITER_DEAD_PAYLOAD_MAX  (1024 * 1024)


static const char  writer_dead_sql[] =
    "INSERT INTO dead_letters (stream_id, event_id, org_id, key_id, error,"
    "                          deliveries, payload, received_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    " ON CONFLICT (stream_id) DO NOTHING";


static int writer_dead_store(writer_t *w, writer_item_t *item,
    hhw_error_t *err);
static int writer_dead_render_payload(const redisReply *fields,
    hhw_buf_t *out);
static void writer_dead_append_string(hhw_buf_t *out, const char *data,
    size_t len);
static void writer_dead_log(const writer_item_t *item);


/*
 * The same dead letter may be inserted twice when an acknowledgement was
 * lost; ON CONFLICT keeps the first.
 */
int
writer_dead_letters_store(writer_t *w, hhw_error_t *err)
{
    size_t           i;
    hhw_error_t      ignored;
    writer_item_t   *item;
    writer_batch_t  *b;

    b = &w->batch;

    if (hhw_pg_exec(w->pg, "BEGIN", err) != 0) {
        return -1;
    }

    for (i = 0; i < b->nitems; i++) {
        item = &b->items[i];

        if (item->action != WRITER_ITEM_DEAD || item->done) {
            continue;
        }

        if (writer_dead_store(w, item, err) != 0) {
            hhw_pg_exec(w->pg, "ROLLBACK", &ignored);
            return -1;
        }
    }

    if (hhw_pg_exec(w->pg, "COMMIT", err) != 0) {
        return -1;
    }

    for (i = 0; i < b->nitems; i++) {
        item = &b->items[i];

        if (item->action != WRITER_ITEM_DEAD || item->done) {
            continue;
        }

        item->done = 1;
        writer_dead_log(item);

        switch (item->dead_reason) {
        case WRITER_DEAD_UNPARSEABLE:
            w->metrics.dead_unparseable++;
            break;
        case WRITER_DEAD_REJECTED:
            w->metrics.dead_rejected++;
            break;
        default:
            w->metrics.dead_deliveries++;
        }
    }

    return 0;
}


static int
writer_dead_store(writer_t *w, writer_item_t *item, hhw_error_t *err)
{
    int                    truncated;
    char                   org[24], key[24], deliveries[16];
    char                   received[HH_TIMESTAMP_LEN + 1];
    char                  *reason;
    PGresult              *res;
    const char            *params[8];
    const writer_entry_t  *entry;

    entry = &item->entry;

    hhw_buf_reset(&w->rows);
    truncated = writer_dead_render_payload(item->fields, &w->rows);

    if (w->rows.failed || item->error == NULL) {
        hhw_error_set(err, "out of memory rendering the dead letter of "
                      "stream entry %s", item->stream_id);
        return -1;
    }

    reason = NULL;

    if (truncated) {
        reason = malloc(strlen(item->error) + 64);
        if (reason == NULL) {
            hhw_error_set(err, "out of memory rendering the dead letter of "
                          "stream entry %s", item->stream_id);
            return -1;
        }

        sprintf(reason, "%s; payload cut at %d bytes", item->error,
                WRITER_DEAD_PAYLOAD_MAX);
    }

    snprintf(org, sizeof(org), "%lld", (long long) entry->org_id);
    snprintf(key, sizeof(key), "%lld", (long long) entry->key_id);
    snprintf(deliveries, sizeof(deliveries), "%u", item->deliveries);

    /* A stream id starts with the Unix milliseconds of the XADD. */
    hh_timestamp_format(strtoll(item->stream_id, NULL, 10), received);

    /* The parser fills the ids only with values that passed its checks. */
    params[0] = item->stream_id;
    params[1] = entry->event.event_id[0] != '\0' ? entry->event.event_id
                                                 : NULL;
    params[2] = entry->org_id > 0 ? org : NULL;
    params[3] = entry->key_id > 0 ? key : NULL;
    params[4] = reason != NULL ? reason : item->error;
    params[5] = deliveries;
    params[6] = w->rows.data;
    params[7] = received;

    res = hhw_pg_query(w->pg, writer_dead_sql, 8, params, err);
    free(reason);

    if (res == NULL) {
        hhw_error_prefix(err, "inserting the dead letter of stream entry %s "
                         "failed", item->stream_id);
        return -1;
    }

    PQclear(res);

    return 0;
}


/*
 * Renders the field-value pairs as a JSON object of strings, and returns 1
 * when the values were cut at WRITER_DEAD_PAYLOAD_MAX bytes. A field that
 * repeats appears twice, as it does in the entry.
 */
static int
writer_dead_render_payload(const redisReply *fields, hhw_buf_t *out)
{
    size_t             i, budget, len;
    int                truncated;
    const redisReply  *field, *value;

    budget = WRITER_DEAD_PAYLOAD_MAX;
    truncated = 0;

    hhw_buf_append(out, "{", 1);

    for (i = 0; i + 1 < fields->elements; i += 2) {
        field = fields->element[i];
        value = fields->element[i + 1];

        if (i > 0) {
            hhw_buf_append(out, ",", 1);
        }

        if (field->type == REDIS_REPLY_STRING) {
            writer_dead_append_string(out, field->str, field->len);

        } else {
            hhw_buf_append_str(out, "\"\"");
        }

        hhw_buf_append(out, ":", 1);

        if (value->type != REDIS_REPLY_STRING) {
            hhw_buf_append_str(out, "null");
            continue;
        }

        len = value->len;

        if (len > budget) {
            len = budget;
            truncated = 1;
        }

        budget -= len;
        writer_dead_append_string(out, value->str, len);
    }

    hhw_buf_append(out, "}", 1);

    return truncated;
}


/*
 * Appends a quoted JSON string that Postgres text accepts whatever the
 * input: a byte that does not start or continue a valid UTF-8 sequence
 * becomes U+FFFD, and control characters, NUL included, are escaped.
 */
static void
writer_dead_append_string(hhw_buf_t *out, const char *data, size_t len)
{
    char                  escape[8];
    size_t                i, n, k;
    uint32_t              cp;
    const unsigned char  *p;

    p = (const unsigned char *) data;

    hhw_buf_append(out, "\"", 1);

    for (i = 0; i < len; i += n) {
        n = 1;

        if (p[i] < 0x80) {
            if (p[i] == '"' || p[i] == '\\') {
                hhw_buf_append(out, "\\", 1);
                hhw_buf_append(out, (const char *) &p[i], 1);

            } else if (p[i] < 0x20) {
                snprintf(escape, sizeof(escape), "\\u%04x", p[i]);
                hhw_buf_append(out, escape, 6);

            } else {
                hhw_buf_append(out, (const char *) &p[i], 1);
            }

            continue;
        }

        /* The length of the sequence and the smallest code point for it. */
        if (p[i] >= 0xc2 && p[i] <= 0xdf) {
            n = 2;
            cp = p[i] & 0x1f;

        } else if (p[i] >= 0xe0 && p[i] <= 0xef) {
            n = 3;
            cp = p[i] & 0x0f;

        } else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
            n = 4;
            cp = p[i] & 0x07;

        } else {
            hhw_buf_append_str(out, "\xef\xbf\xbd");
            n = 1;
            continue;
        }

        for (k = 1; k < n; k++) {
            if (i + k >= len || (p[i + k] & 0xc0) != 0x80) {
                break;
            }

            cp = (cp << 6) | (p[i + k] & 0x3f);
        }

        /* Truncated, overlong, surrogate or above U+10FFFF. */
        if (k < n
            || (n == 3 && cp < 0x800)
            || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
            || (cp >= 0xd800 && cp <= 0xdfff))
        {
            hhw_buf_append_str(out, "\xef\xbf\xbd");
            n = 1;
            continue;
        }

        hhw_buf_append(out, (const char *) &p[i], n);
    }

    hhw_buf_append(out, "\"", 1);
}


/*
 * Logs the ids of the entry and why it was not stored. A rejection is
 * logged by SQLSTATE alone, because Postgres's message can quote a value of
 * the entry; the whole message is in the dead letter.
 */
static void
writer_dead_log(const writer_item_t *item)
{
    char                   org[24], key[24], why[96];
    const char            *reason;
    const writer_entry_t  *entry;

    entry = &item->entry;

    snprintf(org, sizeof(org), "%lld", (long long) entry->org_id);
    snprintf(key, sizeof(key), "%lld", (long long) entry->key_id);

    if (item->dead_reason == WRITER_DEAD_REJECTED) {
        snprintf(why, sizeof(why), "Postgres rejected it with SQLSTATE %s",
                 item->sqlstate);
        reason = why;

    } else {
        reason = item->error;
    }

    hhw_log(HHW_LOG_WARN, "stream entry %s (organisation %s, key %s) moved "
            "to dead letters after %u deliveries: %s", item->stream_id,
            entry->org_id > 0 ? org : "unknown",
            entry->key_id > 0 ? key : "unknown", item->deliveries, reason);
}
