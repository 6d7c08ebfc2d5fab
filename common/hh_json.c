/*
 * The JSON gate: one pass over a request body that checks RFC 8259 syntax
 * and UTF-8, and finds what Postgres jsonb would reject, without recursion.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hh_json.h"


/* Key records kept in the parser itself. More keys move to the heap. */
#define HH_JSON_INLINE_KEYS      32

/*
 * The limits of Postgres numeric, which jsonb uses for numbers, as
 * PostgreSQL 15 applies them to jsonb input: "1e131071" and "0e1073741822"
 * are stored, "1e131072", "1e-16384" and "0e1073741823" are rejected.
 */
#define HH_NUMERIC_INT_DIGITS    131072
#define HH_NUMERIC_SCALE_MAX     16383
#define HH_NUMERIC_EXPONENT_MAX  1073741822


typedef enum {
    HH_JSON_EXPECT_VALUE = 0,
    HH_JSON_EXPECT_ARRAY_FIRST,     /* after "[": a value or "]" */
    HH_JSON_EXPECT_OBJECT_FIRST,    /* after "{": a key or "}" */
    HH_JSON_EXPECT_KEY,             /* after "," in an object */
    HH_JSON_EXPECT_COLON,
    HH_JSON_EXPECT_NEXT             /* after a value: ",", a closer or end */
} hh_json_expect_e;


/*
 * One object key as written in the text, quotes excluded. A record whose
 * data is NULL marks where an enclosing object's keys end; its len then is
 * the index of that object's first key record.
 */
typedef struct {
    const unsigned char  *data;
    size_t                len;
    int                   escaped;
} hh_json_key_t;


/* The first jsonb fault found in one string, if any. */
typedef struct {
    const char           *reason;
    const unsigned char  *at;
} hh_json_fault_t;


/* Decodes a key with escapes into UTF-8 bytes, one byte per call. */
typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    unsigned              n;
    unsigned              i;
    unsigned char         buf[4];
} hh_json_key_reader_t;


typedef struct {
    const unsigned char  *start;
    const unsigned char  *end;
    hh_json_result_t     *result;

    unsigned              depth;
    unsigned              max_depth;

    /* bit d - 1 set when the container at depth d is an object */
    uint64_t              objects[HH_JSON_DEPTH_MAX / 64];

    /* the current top-level member name, data NULL when there is none */
    hh_str_t              member;

    /* cleared at the first fault, because only syntax matters after it */
    int                   checking;

    hh_json_key_t        *keys;
    size_t                nkeys;
    size_t                nalloc;
    size_t                object_start;
    hh_json_key_t         inline_keys[HH_JSON_INLINE_KEYS];
} hh_json_parser_t;


static void hh_json_run(hh_json_parser_t *ps);
static const unsigned char *hh_json_value(hh_json_parser_t *ps,
    const unsigned char *p, hh_json_expect_e *expect);
static const unsigned char *hh_json_open(hh_json_parser_t *ps,
    const unsigned char *p, hh_json_expect_e *expect);
static const unsigned char *hh_json_next(hh_json_parser_t *ps,
    const unsigned char *p, hh_json_expect_e *expect);
static const unsigned char *hh_json_close(hh_json_parser_t *ps,
    const unsigned char *p, hh_json_expect_e *expect);
static const unsigned char *hh_json_key(hh_json_parser_t *ps,
    const unsigned char *p, hh_json_expect_e *expect);
static const unsigned char *hh_json_string(hh_json_parser_t *ps,
    const unsigned char *p, hh_json_fault_t *fault, int *escaped);
static const unsigned char *hh_json_escape(hh_json_parser_t *ps,
    const unsigned char *p, hh_json_fault_t *fault);
static const unsigned char *hh_json_number(hh_json_parser_t *ps,
    const unsigned char *p);
static const unsigned char *hh_json_digits(const unsigned char *p,
    const unsigned char *end, size_t *count, size_t *first_nonzero);
static int hh_json_numeric_fits(size_t int_digits, int int_nonzero,
    size_t frac_digits, size_t frac_first_nonzero, int64_t exponent);
static const unsigned char *hh_json_literal(hh_json_parser_t *ps,
    const unsigned char *p);
static const unsigned char *hh_json_skip_space(const unsigned char *p,
    const unsigned char *end);
static int hh_json_hex4(const unsigned char *p, unsigned *value);
static int hh_json_in_object(const hh_json_parser_t *ps);
static const unsigned char *hh_json_invalid(hh_json_parser_t *ps,
    const unsigned char *at, const char *reason);
static void hh_json_fault(hh_json_parser_t *ps, const unsigned char *at,
    const char *reason, hh_str_t field);
static int hh_json_keys_push(hh_json_parser_t *ps,
    const unsigned char *data, size_t len, int escaped);
static void hh_json_object_open(hh_json_parser_t *ps);
static void hh_json_object_close(hh_json_parser_t *ps);
static const hh_json_key_t *hh_json_find_duplicate(hh_json_key_t *keys,
    size_t n);
static int hh_json_key_order(const void *one, const void *two);
static int hh_json_key_compare(const hh_json_key_t *a,
    const hh_json_key_t *b);
static int hh_json_key_byte(hh_json_key_reader_t *reader);
static unsigned hh_utf8_encode(unsigned cp, unsigned char buf[4]);


void
hh_json_check(const char *text, size_t len, unsigned max_depth,
    hh_json_result_t *result)
{
    hh_json_parser_t  ps;

    result->status = HH_JSON_OK;
    result->reason = NULL;
    result->field.data = NULL;
    result->field.len = 0;
    result->offset = 0;

    memset(&ps, 0, sizeof(ps));

    ps.start = (const unsigned char *) text;
    ps.end = ps.start + len;
    ps.result = result;
    ps.max_depth = max_depth < HH_JSON_DEPTH_MAX ? max_depth
                                                 : HH_JSON_DEPTH_MAX;
    ps.checking = 1;
    ps.keys = ps.inline_keys;
    ps.nalloc = HH_JSON_INLINE_KEYS;

    hh_json_run(&ps);

    if (ps.keys != ps.inline_keys) {
        free(ps.keys);
    }
}


size_t
hh_utf8_char_len(const unsigned char *p, size_t len)
{
    size_t         n, i;
    unsigned char  c, low, high;

    if (len == 0) {
        return 0;
    }

    c = p[0];

    if (c < 0x80) {
        return 1;
    }

    /* The ranges of the second byte exclude overlong forms, surrogates
     * (U+D800 to U+DFFF) and code points above U+10FFFF. */

    low = 0x80;
    high = 0xbf;

    if (c < 0xc2) {
        return 0;

    } else if (c < 0xe0) {
        n = 2;

    } else if (c < 0xf0) {
        n = 3;
        low = (c == 0xe0) ? 0xa0 : 0x80;
        high = (c == 0xed) ? 0x9f : 0xbf;

    } else if (c < 0xf5) {
        n = 4;
        low = (c == 0xf0) ? 0x90 : 0x80;
        high = (c == 0xf4) ? 0x8f : 0xbf;

    } else {
        return 0;
    }

    if (len < n || p[1] < low || p[1] > high) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    return n;
}


/*
 * The state machine: expect is the token class allowed next, and the bit
 * stack in ps->objects replaces the call stack of a recursive parser.
 */
static void
hh_json_run(hh_json_parser_t *ps)
{
    hh_json_expect_e      expect;
    const unsigned char  *p;

    expect = HH_JSON_EXPECT_VALUE;
    p = ps->start;

    while (p != NULL) {
        p = hh_json_skip_space(p, ps->end);

        if (p == ps->end) {
            if (expect == HH_JSON_EXPECT_VALUE && ps->depth == 0) {
                hh_json_invalid(ps, p, "empty text");

            } else if (expect != HH_JSON_EXPECT_NEXT || ps->depth > 0) {
                hh_json_invalid(ps, p, "unexpected end of text");
            }

            return;
        }

        switch (expect) {

        case HH_JSON_EXPECT_VALUE:
            p = hh_json_value(ps, p, &expect);
            break;

        case HH_JSON_EXPECT_ARRAY_FIRST:
            p = (*p == ']') ? hh_json_close(ps, p, &expect)
                            : hh_json_value(ps, p, &expect);
            break;

        case HH_JSON_EXPECT_OBJECT_FIRST:
            p = (*p == '}') ? hh_json_close(ps, p, &expect)
                            : hh_json_key(ps, p, &expect);
            break;

        case HH_JSON_EXPECT_KEY:
            p = hh_json_key(ps, p, &expect);
            break;

        case HH_JSON_EXPECT_COLON:
            if (*p != ':') {
                p = hh_json_invalid(ps, p, "expected ':' after object key");
                break;
            }

            expect = HH_JSON_EXPECT_VALUE;
            p++;
            break;

        case HH_JSON_EXPECT_NEXT:
            p = hh_json_next(ps, p, &expect);
            break;
        }
    }
}


static const unsigned char *
hh_json_value(hh_json_parser_t *ps, const unsigned char *p,
    hh_json_expect_e *expect)
{
    int              escaped;
    hh_json_fault_t  fault;

    if (*p == '{' || *p == '[') {
        return hh_json_open(ps, p, expect);
    }

    *expect = HH_JSON_EXPECT_NEXT;

    if (*p == '"') {
        fault.reason = NULL;

        p = hh_json_string(ps, p, &fault, &escaped);

        if (p != NULL && fault.reason != NULL) {
            hh_json_fault(ps, fault.at, fault.reason, ps->member);
        }

        return p;
    }

    if (*p == '-' || (*p >= '0' && *p <= '9')) {
        return hh_json_number(ps, p);
    }

    if (*p == 't' || *p == 'f' || *p == 'n') {
        return hh_json_literal(ps, p);
    }

    return hh_json_invalid(ps, p, "unexpected character");
}


/*
 * Nesting is checked here, before anything inside the container is read, so
 * no depth of brackets costs more than max_depth bits. The scan stops at
 * this fault because the bit stack cannot follow the text any deeper.
 */
static const unsigned char *
hh_json_open(hh_json_parser_t *ps, const unsigned char *p,
    hh_json_expect_e *expect)
{
    unsigned  bit;
    uint64_t  mask;

    if (ps->depth >= ps->max_depth) {
        hh_json_fault(ps, p, "nesting too deep", ps->member);
        return NULL;
    }

    bit = ps->depth;
    mask = (uint64_t) 1 << (bit % 64);
    ps->depth++;

    if (*p == '{') {
        ps->objects[bit / 64] |= mask;
        hh_json_object_open(ps);
        *expect = HH_JSON_EXPECT_OBJECT_FIRST;

    } else {
        ps->objects[bit / 64] &= ~mask;
        *expect = HH_JSON_EXPECT_ARRAY_FIRST;
    }

    return p + 1;
}


static const unsigned char *
hh_json_next(hh_json_parser_t *ps, const unsigned char *p,
    hh_json_expect_e *expect)
{
    int  in_object;

    if (ps->depth == 0) {
        return hh_json_invalid(ps, p, "text after the top-level value");
    }

    in_object = hh_json_in_object(ps);

    if (*p == ',') {
        *expect = in_object ? HH_JSON_EXPECT_KEY : HH_JSON_EXPECT_VALUE;
        return p + 1;
    }

    if (*p == (in_object ? '}' : ']')) {
        return hh_json_close(ps, p, expect);
    }

    return hh_json_invalid(ps, p, in_object ? "expected ',' or '}'"
                                            : "expected ',' or ']'");
}


static const unsigned char *
hh_json_close(hh_json_parser_t *ps, const unsigned char *p,
    hh_json_expect_e *expect)
{
    if (hh_json_in_object(ps)) {
        hh_json_object_close(ps);
    }

    ps->depth--;
    *expect = HH_JSON_EXPECT_NEXT;

    return p + 1;
}


static const unsigned char *
hh_json_key(hh_json_parser_t *ps, const unsigned char *p,
    hh_json_expect_e *expect)
{
    int                   escaped;
    hh_str_t              name;
    hh_json_fault_t       fault;
    const unsigned char  *end;

    if (*p != '"') {
        return hh_json_invalid(ps, p, "expected a string as object key");
    }

    fault.reason = NULL;
    escaped = 0;

    end = hh_json_string(ps, p, &fault, &escaped);
    if (end == NULL) {
        return NULL;
    }

    name.data = (const char *) p + 1;
    name.len = (size_t) (end - p) - 2;

    if (ps->depth == 1) {
        ps->member = name;
    }

    if (fault.reason != NULL) {
        hh_json_fault(ps, fault.at, fault.reason, ps->member);
    }

    if (ps->checking) {
        (void) hh_json_keys_push(ps, p + 1, name.len, escaped);
    }

    *expect = HH_JSON_EXPECT_COLON;

    return end;
}


/*
 * Scans a string from its opening quote and returns the position after the
 * closing one. A syntax error ends the scan, but a jsonb fault only goes to
 * fault.
 */
static const unsigned char *
hh_json_string(hh_json_parser_t *ps, const unsigned char *p,
    hh_json_fault_t *fault, int *escaped)
{
    size_t               n;
    unsigned char        c;
    const unsigned char  *end;

    end = ps->end;
    *escaped = 0;
    p++;

    for ( ;; ) {
        if (p == end) {
            return hh_json_invalid(ps, p, "unterminated string");
        }

        c = *p;

        if (c == '"') {
            return p + 1;
        }

        if (c == '\\') {
            *escaped = 1;

            p = hh_json_escape(ps, p, fault);
            if (p == NULL) {
                return NULL;
            }

            continue;
        }

        if (c < 0x20) {
            return hh_json_invalid(ps, p, "control character in string");
        }

        if (c < 0x80) {
            p++;
            continue;
        }

        n = hh_utf8_char_len(p, (size_t) (end - p));
        if (n == 0) {
            return hh_json_invalid(ps, p, "invalid UTF-8");
        }

        p += n;
    }
}


/*
 * Checks one escape at p, the backslash, and returns the position after it.
 * jsonb rejects \u0000 and any surrogate escape that is not a high one
 * directly followed by a low one.
 */
static const unsigned char *
hh_json_escape(hh_json_parser_t *ps, const unsigned char *p,
    hh_json_fault_t *fault)
{
    size_t       left;
    unsigned     cp, low;
    const char  *reason;

    left = (size_t) (ps->end - p);

    if (left < 2) {
        return hh_json_invalid(ps, ps->end, "unterminated string");
    }

    if (strchr("\"\\/bfnrt", p[1]) != NULL && p[1] != '\0') {
        return p + 2;
    }

    if (p[1] != 'u') {
        return hh_json_invalid(ps, p, "invalid escape sequence");
    }

    if (left < 6 || hh_json_hex4(p + 2, &cp) != 0) {
        return hh_json_invalid(ps, p, "invalid \\u escape");
    }

    reason = NULL;

    if (cp == 0) {
        reason = "\\u0000 is not allowed";

    } else if (cp >= 0xd800 && cp <= 0xdbff) {
        if (left >= 12 && p[6] == '\\' && p[7] == 'u'
            && hh_json_hex4(p + 8, &low) == 0
            && low >= 0xdc00 && low <= 0xdfff)
        {
            return p + 12;
        }

        reason = "unpaired surrogate escape";

    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        reason = "unpaired surrogate escape";
    }

    if (reason != NULL && fault->reason == NULL) {
        fault->reason = reason;
        fault->at = p;
    }

    return p + 6;
}


/*
 * Scans a number by RFC 8259's grammar: an optional minus, 0 or digits
 * without a leading zero, an optional fraction, an optional exponent.
 */
static const unsigned char *
hh_json_number(hh_json_parser_t *ps, const unsigned char *p)
{
    int                   negative;
    size_t                int_digits, int_first, frac_digits, frac_first;
    int64_t               exponent;
    const unsigned char  *start, *end, *q;

    start = p;
    end = ps->end;

    if (*p == '-') {
        p++;
    }

    q = hh_json_digits(p, end, &int_digits, &int_first);

    if (int_digits == 0) {
        return hh_json_invalid(ps, start, "invalid number");
    }

    if (*p == '0' && int_digits > 1) {
        return hh_json_invalid(ps, start, "leading zero in number");
    }

    p = q;
    frac_digits = 0;
    frac_first = 0;

    if (p < end && *p == '.') {
        p = hh_json_digits(p + 1, end, &frac_digits, &frac_first);

        if (frac_digits == 0) {
            return hh_json_invalid(ps, start, "invalid number");
        }
    }

    exponent = 0;

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        negative = 0;

        if (p < end && (*p == '+' || *p == '-')) {
            negative = (*p == '-');
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return hh_json_invalid(ps, start, "invalid number");
        }

        /* Past the limit the value only has to stay above it. */
        for ( /* void */ ; p < end && *p >= '0' && *p <= '9'; p++) {
            if (exponent <= HH_NUMERIC_EXPONENT_MAX) {
                exponent = exponent * 10 + (*p - '0');
            }
        }

        if (negative) {
            exponent = -exponent;
        }
    }

    if (ps->checking
        && !hh_json_numeric_fits(int_digits, int_first != 0, frac_digits,
                                 frac_first, exponent))
    {
        hh_json_fault(ps, start, "number out of range for numeric",
                      ps->member);
    }

    return p;
}


/*
 * Counts the digits at p. first_nonzero is the 1-based position of the
 * first digit other than 0, or 0 when there is none.
 */
static const unsigned char *
hh_json_digits(const unsigned char *p, const unsigned char *end,
    size_t *count, size_t *first_nonzero)
{
    *count = 0;
    *first_nonzero = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        (*count)++;

        if (*p != '0' && *first_nonzero == 0) {
            *first_nonzero = *count;
        }

        p++;
    }

    return p;
}


/*
 * Postgres numeric keeps at most 131072 digits before the decimal point,
 * counted from the first digit other than 0, and at most 16383 after it,
 * counted as written less the exponent, trailing zeros included.
 */
static int
hh_json_numeric_fits(size_t int_digits, int int_nonzero, size_t frac_digits,
    size_t frac_first_nonzero, int64_t exponent)
{
    int64_t  scale, before_point;

    if (exponent > HH_NUMERIC_EXPONENT_MAX
        || exponent < -HH_NUMERIC_EXPONENT_MAX)
    {
        return 0;
    }

    /* Larger digit counts fail below with any exponent, and could overflow. */
    if (int_digits > 2 * (size_t) HH_NUMERIC_EXPONENT_MAX
        || frac_digits > 2 * (size_t) HH_NUMERIC_EXPONENT_MAX)
    {
        return 0;
    }

    scale = (int64_t) frac_digits - exponent;

    if (scale > HH_NUMERIC_SCALE_MAX) {
        return 0;
    }

    if (int_nonzero) {
        before_point = (int64_t) int_digits + exponent;

    } else if (frac_first_nonzero != 0) {
        before_point = exponent - (int64_t) frac_first_nonzero + 1;

    } else {
        before_point = 0;
    }

    return before_point <= HH_NUMERIC_INT_DIGITS;
}


static const unsigned char *
hh_json_literal(hh_json_parser_t *ps, const unsigned char *p)
{
    size_t       n;
    const char  *word;

    word = (*p == 't') ? "true" : (*p == 'f') ? "false" : "null";
    n = strlen(word);

    if ((size_t) (ps->end - p) < n || memcmp(p, word, n) != 0) {
        return hh_json_invalid(ps, p, "invalid literal");
    }

    return p + n;
}


static const unsigned char *
hh_json_skip_space(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


/* Parses the 4 hex digits at p, which the caller has checked are there. */
static int
hh_json_hex4(const unsigned char *p, unsigned *value)
{
    int            i;
    unsigned char  c;

    *value = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            *value = *value << 4 | (unsigned) (c - '0');

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            *value = *value << 4 | (unsigned) ((c | 0x20) - 'a' + 10);

        } else {
            return -1;
        }
    }

    return 0;
}


static int
hh_json_in_object(const hh_json_parser_t *ps)
{
    unsigned  bit;

    bit = ps->depth - 1;

    return (ps->objects[bit / 64] >> (bit % 64)) & 1;
}


/* Records a syntax error, which outranks any fault found before it. */
static const unsigned char *
hh_json_invalid(hh_json_parser_t *ps, const unsigned char *at,
    const char *reason)
{
    ps->result->status = HH_JSON_INVALID;
    ps->result->reason = reason;
    ps->result->field.data = NULL;
    ps->result->field.len = 0;
    ps->result->offset = (size_t) (at - ps->start);

    return NULL;
}


/*
 * Records the first jsonb fault and stops the key bookkeeping. The scan goes
 * on, so that a later syntax error still makes the text INVALID.
 */
static void
hh_json_fault(hh_json_parser_t *ps, const unsigned char *at,
    const char *reason, hh_str_t field)
{
    if (!ps->checking) {
        return;
    }

    ps->checking = 0;

    ps->result->status = HH_JSON_UNSTORABLE;
    ps->result->reason = reason;
    ps->result->field = field;
    ps->result->offset = (size_t) (at - ps->start);
}


static int
hh_json_keys_push(hh_json_parser_t *ps, const unsigned char *data,
    size_t len, int escaped)
{
    size_t          nalloc;
    hh_json_key_t  *keys;

    if (ps->nkeys == ps->nalloc) {
        nalloc = ps->nalloc * 2;

        if (nalloc > SIZE_MAX / sizeof(hh_json_key_t)) {
            keys = NULL;

        } else if (ps->keys == ps->inline_keys) {
            keys = malloc(nalloc * sizeof(hh_json_key_t));

            if (keys != NULL) {
                memcpy(keys, ps->inline_keys, sizeof(ps->inline_keys));
            }

        } else {
            keys = realloc(ps->keys, nalloc * sizeof(hh_json_key_t));
        }

        /*
         * NOTE: a memory shortage here reaches the client as a 422, although
         * the server is at fault.
         */
        if (keys == NULL) {
            hh_json_fault(ps, data, "out of memory checking object keys",
                          ps->member);
            return -1;
        }

        ps->keys = keys;
        ps->nalloc = nalloc;
    }

    ps->keys[ps->nkeys].data = data;
    ps->keys[ps->nkeys].len = len;
    ps->keys[ps->nkeys].escaped = escaped;
    ps->nkeys++;

    return 0;
}


/* Pushes a marker that saves where the enclosing object's keys start. */
static void
hh_json_object_open(hh_json_parser_t *ps)
{
    if (!ps->checking) {
        return;
    }

    if (hh_json_keys_push(ps, NULL, ps->object_start, 0) != 0) {
        return;
    }

    ps->object_start = ps->nkeys;
}


/*
 * Sorting the object's keys puts equal keys side by side: O(n log n) for
 * any set of keys. A duplicate of a top-level key names that key itself.
 */
static void
hh_json_object_close(hh_json_parser_t *ps)
{
    hh_str_t              field;
    const hh_json_key_t  *dup;

    if (!ps->checking) {
        return;
    }

    dup = hh_json_find_duplicate(ps->keys + ps->object_start,
                                 ps->nkeys - ps->object_start);

    if (dup != NULL) {
        field = ps->member;

        if (ps->depth == 1) {
            field.data = (const char *) dup->data;
            field.len = dup->len;
        }

        hh_json_fault(ps, dup->data - 1, "duplicate object key", field);
        return;
    }

    ps->nkeys = ps->object_start - 1;
    ps->object_start = ps->keys[ps->nkeys].len;
}


/*
 * Returns the earliest key in the text that repeats one before it, or NULL.
 * Equal keys sort by position, so the second of each run is the repeat.
 */
static const hh_json_key_t *
hh_json_find_duplicate(hh_json_key_t *keys, size_t n)
{
    size_t                i;
    const hh_json_key_t  *dup;

    if (n < 2) {
        return NULL;
    }

    qsort(keys, n, sizeof(hh_json_key_t), hh_json_key_order);

    dup = NULL;

    for (i = 1; i < n; i++) {
        if (hh_json_key_compare(&keys[i - 1], &keys[i]) == 0
            && (dup == NULL || keys[i].data < dup->data))
        {
            dup = &keys[i];
        }
    }

    return dup;
}


static int
hh_json_key_order(const void *one, const void *two)
{
    int                   rc;
    const hh_json_key_t  *a, *b;

    a = one;
    b = two;

    rc = hh_json_key_compare(a, b);
    if (rc != 0) {
        return rc;
    }

    return (a->data > b->data) - (a->data < b->data);
}


/* Compares the decoded text of two keys, so "a" equals "\u0061". */
static int
hh_json_key_compare(const hh_json_key_t *a, const hh_json_key_t *b)
{
    int                   ca, cb, rc;
    size_t                n;
    hh_json_key_reader_t  ra, rb;

    if (!a->escaped && !b->escaped) {
        n = a->len < b->len ? a->len : b->len;

        rc = memcmp(a->data, b->data, n);
        if (rc != 0) {
            return rc;
        }

        return (a->len > b->len) - (a->len < b->len);
    }

    memset(&ra, 0, sizeof(ra));
    ra.p = a->data;
    ra.end = a->data + a->len;

    memset(&rb, 0, sizeof(rb));
    rb.p = b->data;
    rb.end = b->data + b->len;

    do {
        ca = hh_json_key_byte(&ra);
        cb = hh_json_key_byte(&rb);
    } while (ca == cb && ca != -1);

    return (ca > cb) - (ca < cb);
}


/*
 * Returns the next byte of the key's UTF-8 text, or -1 at its end. Only
 * keys whose escapes passed hh_json_escape() are recorded, so every escape
 * here is well-formed and every high surrogate has its low one.
 */
static int
hh_json_key_byte(hh_json_key_reader_t *reader)
{
    unsigned              cp, low;
    const unsigned char  *p;

    if (reader->i < reader->n) {
        return reader->buf[reader->i++];
    }

    p = reader->p;

    if (p == reader->end) {
        return -1;
    }

    if (*p != '\\') {
        reader->p++;
        return *p;
    }

    if (p[1] != 'u') {
        reader->p += 2;

        switch (p[1]) {
        case 'b':
            return '\b';
        case 'f':
            return '\f';
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        default:
            return p[1];
        }
    }

    (void) hh_json_hex4(p + 2, &cp);
    reader->p += 6;

    if (cp >= 0xd800 && cp <= 0xdbff) {
        (void) hh_json_hex4(p + 8, &low);
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        reader->p += 6;
    }

    reader->n = hh_utf8_encode(cp, reader->buf);
    reader->i = 1;

    return reader->buf[0];
}


static unsigned
hh_utf8_encode(unsigned cp, unsigned char buf[4])
{
    if (cp < 0x80) {
        buf[0] = (unsigned char) cp;
        return 1;
    }

    if (cp < 0x800) {
        buf[0] = (unsigned char) (0xc0 | cp >> 6);
        buf[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        buf[0] = (unsigned char) (0xe0 | cp >> 12);
        buf[1] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
        buf[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }

    buf[0] = (unsigned char) (0xf0 | cp >> 18);
    buf[1] = (unsigned char) (0x80 | (cp >> 12 & 0x3f));
    buf[2] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
    buf[3] = (unsigned char) (0x80 | (cp & 0x3f));
    return 4;
}
