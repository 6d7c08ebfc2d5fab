/*
 * One hh:events stream entry (format version 1, written by the nginx
 * module's track script), parsed into an event with its derived values.
 * The writer stores entries; the module renders a replayed response from
 * the copy kept with an idempotency key.
 */

#ifndef HH_ENTRY_H
#define HH_ENTRY_H

#include <stdint.h>
#include <cJSON.h>
#include <hiredis/hiredis.h>

#include "hh_event.h"


/* One stream entry of a batch, parsed. */
typedef struct {
    const char   *stream_id;       /* points into the XREADGROUP reply */
    hh_event_t    event;           /* its strings point into json or reply */
    cJSON        *json;            /* the parsed "event" field */

    int64_t       org_id;
    int64_t       key_id;
    int           test;
    int           has_tokens_in;
    int           has_tokens_out;
    int64_t       received_at_ms;
    hh_str_t      fingerprint;

    /* raw JSON text from the reply, stored as it is, or data NULL */
    hh_str_t      metadata;
    hh_str_t      audit_sample;

} hh_entry_t;


/*
 * Parses one entry's field-value array into entry. Returns NULL, or a
 * static reason that names the field at fault but none of its content.
 * Strings in entry point into fields and into entry->json, so both must
 * outlive it; hh_entry_free() releases entry->json.
 */
const char *hh_entry_parse(hh_entry_t *entry, const char *stream_id,
    const redisReply *fields);

void hh_entry_free(hh_entry_t *entry);

#endif /* HH_ENTRY_H */
