/*
 * The JSON gate: a strict RFC 8259 check of a request body that also rejects
 * what Postgres jsonb would reject, naming the top-level member at fault.
 * cJSON parses the body only after the gate passed it.
 */

#ifndef HH_JSON_H
#define HH_JSON_H

#include <stddef.h>

#include "hh_event.h"


/*
 * The deepest nesting the gate can follow. A max_depth above it counts as
 * this value, and each level costs one bit of stack.
 */
#define HH_JSON_DEPTH_MAX  4096


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
 *
 * The first fault found is reported, but a syntax error anywhere outranks
 * it. Nesting too deep ends the check at once, so text that is also
 * malformed further on is reported UNSTORABLE. field is the name of the
 * top-level member that contains the fault, or the repeated top-level key
 * itself, as written in text with escapes left undecoded. Objects with more
 * than 32 keys use malloc() for the duplicate check.
 */
void hh_json_check(const char *text, size_t len, unsigned max_depth,
    hh_json_result_t *result);

/*
 * Returns the length (1 to 4) of the well-formed UTF-8 character at the
 * start of the len bytes at p, or 0 when they do not start with one.
 * Overlong forms, UTF-16 surrogates, code points above U+10FFFF and
 * truncated sequences all return 0.
 */
size_t hh_utf8_char_len(const unsigned char *p, size_t len);

#endif /* HH_JSON_H */
