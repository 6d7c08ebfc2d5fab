/*
 * The JSON gate: a strict RFC 8259 check of a request body that also rejects
 * what Postgres jsonb would reject, naming the top-level member at fault.
 * cJSON parses the body only after the gate passed it.
 */

#ifndef HH_JSON_H
#define HH_JSON_H

#include <stddef.h>

#include "hh_event.h"


typedef enum {
    HH_JSON_OK = 0,
    HH_JSON_INVALID,        /* not a JSON text: 400 invalid_json */
    HH_JSON_UNSTORABLE      /* JSON that jsonb rejects or too deep: 422 */
} hh_json_status_e;


typedef struct {
    hh_json_status_e  status;
    const char       *reason;   /* static text for the error message */
    hh_str_t          field;    /* top-level member at fault, or absent */
    size_t            offset;   /* byte offset of the error in the text */
} hh_json_result_t;


/*
 * Checks text of len bytes. INVALID covers bad syntax, bytes that are not
 * UTF-8, trailing garbage, NaN and Infinity. UNSTORABLE covers \u0000,
 * unpaired surrogate escapes, numbers outside Postgres numeric, duplicate
 * keys in one object, and nesting deeper than max_depth (the top-level value
 * is depth 1). Runs in one pass with no recursion, so any input size and
 * depth is safe.
 */
void hh_json_check(const char *text, size_t len, unsigned max_depth,
    hh_json_result_t *result);

#endif /* HH_JSON_H */
