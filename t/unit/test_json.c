/*
 * Unit tests for common/hh_json.c: the JSON gate's syntax checks, its jsonb
 * faults with the member they name, deep nesting and large objects.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hh_json.h"
#include "unit.h"


#define OK          HH_JSON_OK
#define INVALID     HH_JSON_INVALID
#define UNSTORABLE  HH_JSON_UNSTORABLE

#define ANY_OFFSET  ((size_t) -1)
#define DEPTH       16


typedef struct {
    const char        *name;
    const char        *text;
    size_t             len;         /* 0: strlen(text) */
    hh_json_status_e   status;
    const char        *field;       /* NULL: no field */
    size_t             offset;
} json_case_t;


static const json_case_t  json_cases[] = {

    /* well-formed and storable */
    { "empty object", "{}", 0, OK, NULL, 0 },
    { "empty array", "[]", 0, OK, NULL, 0 },
    { "zero", "0", 0, OK, NULL, 0 },
    { "minus zero", "-0", 0, OK, NULL, 0 },
    { "fraction and exponent", "-12.5e+10", 0, OK, NULL, 0 },
    { "upper-case exponent", "1E2", 0, OK, NULL, 0 },
    { "zero exponent", "-0.0e-0", 0, OK, NULL, 0 },
    { "string", "\"x\"", 0, OK, NULL, 0 },
    { "literals", "[true,false,null]", 0, OK, NULL, 0 },
    { "whitespace everywhere",
      " \t\r\n{ \"a\" : [ 1 , 2 , { \"b\" : null } ] } \n", 0, OK, NULL, 0 },
    { "track body",
      "{\"agent_id\":\"support-classifier\",\"task_type\":"
      "\"email_classification\",\"outcome\":\"success\","
      "\"agent_duration_seconds\":4,\"metadata\":{\"ticket\":1234}}", 0, OK,
      NULL, 0 },
    { "same key in two objects", "{\"a\":{\"a\":1},\"b\":{\"a\":2}}", 0, OK,
      NULL, 0 },
    { "same key in array items", "[{\"a\":1},{\"a\":2}]", 0, OK, NULL, 0 },
    { "keys differing by case", "{\"a\":1,\"A\":2}", 0, OK, NULL, 0 },
    { "key a prefix of another", "{\"ab\":1,\"a\":2,\"abc\":3}", 0, OK,
      NULL, 0 },
    { "escaped key unlike others", "{\"\\u0061b\":1,\"a\":2}", 0, OK, NULL,
      0 },
    { "all simple escapes", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 0, OK, NULL,
      0 },
    { "escaped e acute", "\"\\u00e9\\u00E9\"", 0, OK, NULL, 0 },
    { "surrogate pair", "{\"a\":\"\\ud83d\\ude00\"}", 0, OK, NULL, 0 },
    { "2-byte UTF-8", "\"caf\xc3\xa9\"", 0, OK, NULL, 0 },
    { "3-byte UTF-8", "\"\xe2\x82\xac\"", 0, OK, NULL, 0 },
    { "4-byte UTF-8", "\"\xf0\x9f\x98\x80\"", 0, OK, NULL, 0 },
    { "U+0080", "\"\xc2\x80\"", 0, OK, NULL, 0 },
    { "U+D7FF", "\"\xed\x9f\xbf\"", 0, OK, NULL, 0 },
    { "U+E000", "\"\xee\x80\x80\"", 0, OK, NULL, 0 },
    { "U+FFFF", "\"\xef\xbf\xbf\"", 0, OK, NULL, 0 },
    { "U+10000", "\"\xf0\x90\x80\x80\"", 0, OK, NULL, 0 },
    { "U+10FFFF", "\"\xf4\x8f\xbf\xbf\"", 0, OK, NULL, 0 },
    { "DEL in string", "\"\x7f\"", 0, OK, NULL, 0 },
    { "largest integer part", "{\"n\":1e131071}", 0, OK, NULL, 0 },
    { "largest scale", "{\"n\":1e-16383}", 0, OK, NULL, 0 },
    { "scale cut by exponent", "{\"n\":1.5e-16382}", 0, OK, NULL, 0 },
    { "zero with large exponent", "{\"n\":0e1073741822}", 0, OK, NULL, 0 },
    { "zero with scale 16383", "{\"n\":0e-16383}", 0, OK, NULL, 0 },
    { "fraction moved left", "{\"n\":0.001e131074}", 0, OK, NULL, 0 },

    /* not JSON */
    { "empty text", "", 0, INVALID, NULL, 0 },
    { "only whitespace", " \n\t ", 0, INVALID, NULL, 4 },
    { "open object", "{", 0, INVALID, NULL, 1 },
    { "open array", "[1,", 0, INVALID, NULL, 3 },
    { "trailing comma in array", "[1,]", 0, INVALID, NULL, 3 },
    { "trailing comma in object", "{\"a\":1,}", 0, INVALID, NULL, 7 },
    { "leading zero", "01", 0, INVALID, NULL, 0 },
    { "leading zeros in member", "{\"a\":007}", 0, INVALID, NULL, 5 },
    { "plus sign", "+1", 0, INVALID, NULL, 0 },
    { "bare fraction", ".5", 0, INVALID, NULL, 0 },
    { "point without digits", "1.", 0, INVALID, NULL, 0 },
    { "point before exponent", "1.e5", 0, INVALID, NULL, 0 },
    { "exponent without digits", "1e", 0, INVALID, NULL, 0 },
    { "signed empty exponent", "1e+", 0, INVALID, NULL, 0 },
    { "lone minus", "-", 0, INVALID, NULL, 0 },
    { "minus then letter", "-a", 0, INVALID, NULL, 0 },
    { "hex number", "0x10", 0, INVALID, NULL, 1 },
    { "NaN", "NaN", 0, INVALID, NULL, 0 },
    { "Infinity", "Infinity", 0, INVALID, NULL, 0 },
    { "minus Infinity", "-Infinity", 0, INVALID, NULL, 0 },
    { "NaN in member", "{\"a\":NaN}", 0, INVALID, NULL, 5 },
    { "truncated null", "nul", 0, INVALID, NULL, 0 },
    { "upper-case true", "True", 0, INVALID, NULL, 0 },
    { "literal with suffix", "nullx", 0, INVALID, NULL, 4 },
    { "missing comma", "[1 2]", 0, INVALID, NULL, 3 },
    { "missing colon", "{\"a\" 1}", 0, INVALID, NULL, 5 },
    { "number as key", "{1:2}", 0, INVALID, NULL, 1 },
    { "single quotes", "{'a':1}", 0, INVALID, NULL, 1 },
    { "bare key", "{a:1}", 0, INVALID, NULL, 1 },
    { "block comment", "/* c */ {}", 0, INVALID, NULL, 0 },
    { "line comment after", "{} // c", 0, INVALID, NULL, 3 },
    { "comment inside", "{\"a\":1 /* c */}", 0, INVALID, NULL, 7 },
    { "trailing garbage", "{} x", 0, INVALID, NULL, 3 },
    { "two values", "{}{}", 0, INVALID, NULL, 2 },
    { "two numbers", "1 2", 0, INVALID, NULL, 2 },
    { "NUL after value", "{}\0", 3, INVALID, NULL, 2 },
    { "unterminated string", "\"abc", 0, INVALID, NULL, 4 },
    { "unknown escape", "\"\\x\"", 0, INVALID, NULL, 1 },
    { "escape at end", "\"\\", 0, INVALID, NULL, 2 },
    { "short \\u escape", "\"\\u12\"", 0, INVALID, NULL, 1 },
    { "non-hex \\u escape", "\"\\u12G4\"", 0, INVALID, NULL, 1 },
    { "upper-case \\U", "\"\\U0041\"", 0, INVALID, NULL, 1 },
    { "raw control", "\"a\x01\"", 0, INVALID, NULL, 2 },
    { "raw tab", "\"a\tb\"", 0, INVALID, NULL, 2 },
    { "raw newline", "\"a\nb\"", 0, INVALID, NULL, 2 },
    { "raw NUL", "\"a\0b\"", 5, INVALID, NULL, 2 },
    { "mismatched bracket", "{\"a\":1]", 0, INVALID, NULL, 6 },
    { "mismatched brace", "[1}", 0, INVALID, NULL, 2 },
    { "closer first", "]", 0, INVALID, NULL, 0 },
    { "comma first", ",1", 0, INVALID, NULL, 0 },
    { "BOM", "\xef\xbb\xbf{}", 0, INVALID, NULL, 0 },
    { "byte outside string", "[\xc3\xa9]", 0, INVALID, NULL, 1 },

    /* bytes that are not UTF-8 */
    { "overlong NUL", "\"\xc0\x80\"", 0, INVALID, NULL, 1 },
    { "overlong C1", "\"\xc1\xbf\"", 0, INVALID, NULL, 1 },
    { "overlong 3-byte", "\"\xe0\x80\xaf\"", 0, INVALID, NULL, 1 },
    { "overlong 3-byte max", "\"\xe0\x9f\xbf\"", 0, INVALID, NULL, 1 },
    { "overlong 4-byte", "\"\xf0\x8f\xbf\xbf\"", 0, INVALID, NULL, 1 },
    { "UTF-8 high surrogate", "\"\xed\xa0\x80\"", 0, INVALID, NULL, 1 },
    { "UTF-8 low surrogate", "\"\xed\xbf\xbf\"", 0, INVALID, NULL, 1 },
    { "above U+10FFFF", "\"\xf4\x90\x80\x80\"", 0, INVALID, NULL, 1 },
    { "lead byte F5", "\"\xf5\x80\x80\x80\"", 0, INVALID, NULL, 1 },
    { "byte FF", "\"a\xff\"", 0, INVALID, NULL, 2 },
    { "lone continuation", "\"\x80\"", 0, INVALID, NULL, 1 },
    { "truncated 2-byte", "\"\xc3\"", 0, INVALID, NULL, 1 },
    { "truncated 3-byte", "\"\xe2\x82\"", 0, INVALID, NULL, 1 },
    { "truncated 4-byte at end", "\"\xf0\x9f\x98", 0, INVALID, NULL, 1 },
    { "ASCII in a sequence", "\"\xe2\x41\xac\"", 0, INVALID, NULL, 1 },
    { "bad UTF-8 in key", "{\"\xff\":1}", 0, INVALID, NULL, 2 },

    /* JSON that jsonb rejects, with the member at fault */
    { "\\u0000 in member", "{\"a\":\"x\\u0000\"}", 0, UNSTORABLE, "a", 7 },
    { "\\u0000 deep in member", "{\"ok\":1,\"m\":{\"k\":[\"\\u0000\"]}}", 0,
      UNSTORABLE, "m", 19 },
    { "\\u0000 in top-level key", "{\"\\u0000\":1}", 0, UNSTORABLE,
      "\\u0000", 2 },
    { "\\u0000 in nested key", "{\"m\":{\"\\u0000\":1}}", 0, UNSTORABLE,
      "m", 7 },
    { "\\u0000 in top-level array", "[\"\\u0000\"]", 0, UNSTORABLE, NULL,
      2 },
    { "\\u0000 as top-level value", "\"\\u0000\"", 0, UNSTORABLE, NULL, 1 },
    { "lone high surrogate", "{\"a\":\"\\ud800\"}", 0, UNSTORABLE, "a", 6 },
    { "lone low surrogate", "{\"a\":\"\\udc00\"}", 0, UNSTORABLE, "a", 6 },
    { "low before high", "{\"a\":\"\\udc00\\ud800\"}", 0, UNSTORABLE, "a",
      6 },
    { "high then letter", "{\"a\":\"\\ud800x\"}", 0, UNSTORABLE, "a", 6 },
    { "high then ASCII escape", "{\"a\":\"\\ud800\\u0041\"}", 0,
      UNSTORABLE, "a", 6 },
    { "two high surrogates", "{\"a\":\"\\ud800\\udbff\\udc00\"}", 0,
      UNSTORABLE, "a", 6 },
    { "high at string end", "{\"a\":\"x\\uDBFF\"}", 0, UNSTORABLE, "a", 7 },
    { "integer part too long", "{\"n\":1e131072}", 0, UNSTORABLE, "n", 5 },
    { "1e131073", "{\"n\":1e131073}", 0, UNSTORABLE, "n", 5 },
    { "negative too large", "{\"n\":-1e131072}", 0, UNSTORABLE, "n", 5 },
    { "fraction moved too far", "{\"n\":0.001e131075}", 0, UNSTORABLE, "n",
      5 },
    { "10e131071", "{\"n\":10e131071}", 0, UNSTORABLE, "n", 5 },
    { "scale too large", "{\"n\":1e-16384}", 0, UNSTORABLE, "n", 5 },
    { "scale of zero too large", "{\"n\":0e-16384}", 0, UNSTORABLE, "n",
      5 },
    { "scale 16384 with fraction", "{\"n\":1.5e-16383}", 0, UNSTORABLE,
      "n", 5 },
    { "exponent limit", "{\"n\":0e1073741823}", 0, UNSTORABLE, "n", 5 },
    { "huge exponent", "{\"n\":1e99999999999999999999}", 0, UNSTORABLE,
      "n", 5 },
    { "huge negative exponent", "{\"n\":0e-99999999999999999999}", 0,
      UNSTORABLE, "n", 5 },
    { "number in array", "{\"a\":[1,2,1e200000]}", 0, UNSTORABLE, "a", 10 },
    { "duplicate top-level key", "{\"a\":1,\"b\":2,\"a\":3}", 0, UNSTORABLE,
      "a", 13 },
    { "duplicate through escape", "{\"a\":1,\"\\u0061\":2}", 0, UNSTORABLE,
      "\\u0061", 7 },
    { "duplicate escape first", "{\"\\u0061\":1,\"a\":2}", 0, UNSTORABLE,
      "a", 12 },
    { "duplicate with \\/", "{\"a/b\":1,\"a\\/b\":2}", 0, UNSTORABLE,
      "a\\/b", 9 },
    { "duplicate surrogate pair", "{\"\xf0\x9f\x98\x80\":1,"
      "\"\\ud83d\\ude00\":2}", 0, UNSTORABLE, "\\ud83d\\ude00", 10 },
    { "duplicate UTF-8 escape", "{\"\xc3\xa9\":1,\"\\u00e9\":2}", 0,
      UNSTORABLE, "\\u00e9", 8 },
    { "duplicate empty key", "{\"\":1,\"\":2}", 0, UNSTORABLE, "", 6 },
    { "duplicate nested key", "{\"m\":{\"x\":1,\"x\":2}}", 0, UNSTORABLE,
      "m", 12 },
    { "duplicate deep in array", "{\"ok\":true,\"m\":[{\"y\":{\"z\":1,"
      "\"z\":2}}]}", 0, UNSTORABLE, "m", 28 },
    { "duplicate in top-level array", "[{\"a\":1,\"a\":2}]", 0, UNSTORABLE,
      NULL, 8 },
    { "first repeat named", "{\"b\":1,\"a\":1,\"b\":2,\"a\":2}", 0,
      UNSTORABLE, "b", 13 },

    /* a syntax error outranks a jsonb fault found before it */
    { "\\u0000 then garbage", "{\"a\":\"\\u0000\"} x", 0, INVALID, NULL,
      15 },
    { "duplicate then truncated", "{\"a\":1,\"a\":2", 0, INVALID, NULL,
      12 },
    { "surrogate then bad UTF-8", "[\"\\ud800\",\"\xff\"]", 0, INVALID,
      NULL, 11 },
    { "first fault wins", "{\"a\":\"\\u0000\",\"b\":1e-20000}", 0,
      UNSTORABLE, "a", 6 },
};


static void
run_case(const json_case_t *c)
{
    size_t            len;
    hh_json_result_t  r;

    len = c->len ? c->len : strlen(c->text);

    hh_json_check(c->text, len, DEPTH, &r);

    UNIT_CHECK(r.status == c->status, "%s: status %d (%s at %zu), "
               "expected %d", c->name, (int) r.status,
               r.reason ? r.reason : "no reason", r.offset, (int) c->status);

    if (r.status != c->status) {
        return;
    }

    UNIT_CHECK((r.status == OK) == (r.reason == NULL),
               "%s: reason \"%s\"", c->name, r.reason ? r.reason : "(null)");

    if (c->field == NULL) {
        UNIT_CHECK(r.field.data == NULL, "%s: field \"%.*s\", expected none",
                   c->name, (int) r.field.len, r.field.data);

    } else {
        UNIT_CHECK(r.field.data != NULL && r.field.len == strlen(c->field)
                   && memcmp(r.field.data, c->field, r.field.len) == 0,
                   "%s: field \"%.*s\", expected \"%s\"", c->name,
                   (int) r.field.len, r.field.data ? r.field.data : "",
                   c->field);
    }

    if (c->status != OK && c->offset != ANY_OFFSET) {
        UNIT_CHECK(r.offset == c->offset, "%s: offset %zu, expected %zu",
                   c->name, r.offset, c->offset);
    }
}


static void
test_table(void)
{
    size_t  i;

    for (i = 0; i < sizeof(json_cases) / sizeof(json_cases[0]); i++) {
        run_case(&json_cases[i]);
    }
}


static void
check_text(const char *name, const char *text, size_t len, unsigned depth,
    hh_json_status_e status, const char *reason, size_t offset)
{
    hh_json_result_t  r;

    hh_json_check(text, len, depth, &r);

    UNIT_CHECK(r.status == status
               && (reason == NULL
                   || (r.reason != NULL && strcmp(r.reason, reason) == 0))
               && (offset == ANY_OFFSET || r.offset == offset),
               "%s: status %d, reason \"%s\", offset %zu", name,
               (int) r.status, r.reason ? r.reason : "(null)", r.offset);
}


static void
test_depth(void)
{
    char    *text;
    size_t   i, n;

    check_text("depth 3 at max 3", "[[[]]]", 6, 3, OK, NULL, 0);
    check_text("depth 3 at max 2", "[[[]]]", 6, 2, UNSTORABLE,
               "nesting too deep", 2);
    check_text("scalar inside max depth", "[1]", 3, 1, OK, NULL, 0);
    check_text("object at max 0", "{}", 2, 0, UNSTORABLE, "nesting too deep",
               0);
    check_text("scalar at max 0", "\"a\"", 3, 0, OK, NULL, 0);
    check_text("deep member", "{\"a\":1,\"m\":[[{\"x\":[1]}]]}", 25, 4,
               UNSTORABLE, "nesting too deep", 18);
    check_text("deep member named", "{\"a\":1,\"m\":[[{\"x\":[1]}]]}", 25, 5,
               OK, NULL, 0);

    n = 10000;
    text = malloc(2 * n);

    memset(text, '[', n);
    check_text("10000 open brackets", text, n, 64, UNSTORABLE,
               "nesting too deep", 64);

    memset(text + n, ']', n);
    check_text("10000 nested arrays", text, 2 * n, 64, UNSTORABLE,
               "nesting too deep", 64);
    check_text("10000 nested, max above the limit", text, 2 * n, 100000,
               UNSTORABLE, "nesting too deep", HH_JSON_DEPTH_MAX);

    n = HH_JSON_DEPTH_MAX;
    memset(text, '[', n);
    memset(text + n, ']', n);
    check_text("nesting at the limit", text, 2 * n, HH_JSON_DEPTH_MAX, OK,
               NULL, 0);

    for (i = 0; i < 10000; i++) {
        text[i] = (i % 2) ? '[' : '{';
    }

    check_text("10000 mixed open brackets", text, 10000, 100, INVALID,
               NULL, 1);

    for (i = 0; i < 5000; i++) {
        memcpy(text + i * 2, "[{", 2);
    }

    check_text("bare key-less objects", text, 10000, 100000, INVALID,
               "expected a string as object key", 2);

    free(text);
}


static void
test_big_numbers(void)
{
    char    *text;
    size_t   n;

    text = malloc(200000);

    memcpy(text, "{\"n\":", 5);
    memset(text + 5, '7', 400);
    memcpy(text + 405, "}", 1);
    check_text("400-digit number", text, 406, DEPTH, OK, NULL, 0);

    memset(text + 5, '9', 131072);
    memcpy(text + 5 + 131072, "}", 1);
    check_text("131072 integer digits", text, 131078, DEPTH, OK, NULL, 0);

    memset(text + 5, '9', 131073);
    memcpy(text + 5 + 131073, "}", 1);
    check_text("131073 integer digits", text, 131079, DEPTH, UNSTORABLE,
               "number out of range for numeric", 5);

    memcpy(text + 5, "0.", 2);
    memset(text + 7, '0', 16383);
    memcpy(text + 7 + 16383, "}", 1);
    check_text("16383 fraction digits", text, 7 + 16384, DEPTH, OK, NULL,
               0);

    n = 7 + 16384;
    memset(text + 7, '0', 16384);
    memcpy(text + n, "}", 1);
    check_text("16384 zero fraction digits", text, n + 1, DEPTH, UNSTORABLE,
               "number out of range for numeric", 5);

    free(text);
}


/*
 * Comparing each of 100000 keys with every other one takes 5 billion
 * comparisons. Sorting them takes about 1.7 million.
 */
static void
test_many_keys(void)
{
    int                i, n;
    char              *text, *p;
    double             seconds;
    clock_t            start;
    hh_json_result_t   r;

    n = 100000;
    text = malloc((size_t) n * 24 + 64);

    p = text;
    *p++ = '{';

    for (i = 0; i < n; i++) {
        p += sprintf(p, "%s\"key%d\":%d", i ? "," : "", (i * 7919) % n, i);
    }

    memcpy(p, "}", 2);

    start = clock();
    hh_json_check(text, (size_t) (p + 1 - text), DEPTH, &r);
    seconds = (double) (clock() - start) / CLOCKS_PER_SEC;

    UNIT_CHECK(r.status == OK, "100000 distinct keys: %s",
               r.reason ? r.reason : "");
    UNIT_CHECK(seconds < 5, "100000 distinct keys took %.2f s", seconds);

    p += sprintf(p, ",\"key%d\":0}", 99999);

    hh_json_check(text, (size_t) (p - text), DEPTH, &r);

    UNIT_CHECK(r.status == UNSTORABLE && r.field.len == 8
               && memcmp(r.field.data, "key99999", 8) == 0
               && r.offset == (size_t) (strrchr(text, ',') + 1 - text),
               "100000 keys and a repeat: status %d, field \"%.*s\"",
               (int) r.status, (int) r.field.len,
               r.field.data ? r.field.data : "");

    free(text);
}


/*
 * Objects with more keys than the parser keeps inline, nested inside one
 * another, so that the key records move to the heap mid-object.
 */
static void
test_nested_key_records(void)
{
    int     i;
    char    text[4096], *p;

    p = text;
    p += sprintf(p, "{\"m\":{");

    for (i = 0; i < 40; i++) {
        p += sprintf(p, "\"o%d\":1,", i);
    }

    p += sprintf(p, "\"inner\":{");

    for (i = 0; i < 40; i++) {
        p += sprintf(p, "%s\"o%d\":2", i ? "," : "", i);
    }

    p += sprintf(p, "},\"o40\":3}");

    strcpy(p, "}");
    check_text("nested objects with 40 keys each", text, strlen(text),
               DEPTH, OK, NULL, 0);

    strcpy(p, ",\"z\":1,\"m\":2}");
    check_text("top-level repeat after nested keys", text, strlen(text),
               DEPTH, UNSTORABLE, "duplicate object key", ANY_OFFSET);

    p -= strlen("},\"o40\":3}");
    strcpy(p, "},\"o39\":3}}");
    check_text("repeat in outer object after inner", text, strlen(text),
               DEPTH, UNSTORABLE, "duplicate object key", ANY_OFFSET);
}


typedef struct {
    const char  *name;
    const char  *bytes;
    size_t       len;
    size_t       expected;
} utf8_case_t;


static const utf8_case_t  utf8_cases[] = {
    { "ASCII", "a", 1, 1 },
    { "NUL byte", "\0", 1, 1 },
    { "no bytes", "", 0, 0 },
    { "U+00E9", "\xc3\xa9", 2, 2 },
    { "U+20AC", "\xe2\x82\xac", 3, 3 },
    { "U+1F600", "\xf0\x9f\x98\x80", 4, 4 },
    { "U+10FFFF", "\xf4\x8f\xbf\xbf", 4, 4 },
    { "overlong 2-byte", "\xc1\x81", 2, 0 },
    { "overlong 3-byte", "\xe0\x81\x81", 3, 0 },
    { "overlong 4-byte", "\xf0\x80\x81\x81", 4, 0 },
    { "surrogate D800", "\xed\xa0\x80", 3, 0 },
    { "U+110000", "\xf4\x90\x80\x80", 4, 0 },
    { "truncated by len", "\xe2\x82\xac", 2, 0 },
    { "bad third byte", "\xe2\x82\x41", 3, 0 },
    { "bad fourth byte", "\xf0\x9f\x98\xc0", 4, 0 },
    { "continuation first", "\xbf", 1, 0 },
    { "byte FE", "\xfe", 1, 0 },
};


static void
test_utf8_char_len(void)
{
    size_t  i, n;

    for (i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
        n = hh_utf8_char_len((const unsigned char *) utf8_cases[i].bytes,
                             utf8_cases[i].len);

        UNIT_CHECK(n == utf8_cases[i].expected, "utf8 %s: %zu, expected %zu",
                   utf8_cases[i].name, n, utf8_cases[i].expected);
    }
}


int
main(void)
{
    test_table();
    test_depth();
    test_big_numbers();
    test_many_keys();
    test_nested_key_records();
    test_utf8_char_len();

    return UNIT_REPORT();
}
