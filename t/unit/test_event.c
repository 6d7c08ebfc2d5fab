/*
 * Unit tests for common/hh_event.c: event ids, fingerprints, the arithmetic
 * of an event, the track response and RFC 3339 timestamps.
 */

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "hh_event.h"
#include "hh_json.h"
#include "unit.h"


#define STR(s)    ((hh_str_t) { (s), sizeof(s) - 1 })
#define ABSENT    ((hh_str_t) { NULL, 0 })

#define CROCKFORD  "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


/* The event of the response example: email_classification, 4 s. */
static void
example_event(hh_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));

    memcpy(ev->event_id, "evt_01JEQ5Z8KX3M9T2V7W4YB6R1NC",
           HH_EVENT_ID_LEN + 1);
    ev->agent_id = STR("support-classifier");
    ev->task_type = STR("email_classification");
    ev->outcome = STR("success");
    ev->agent_duration_seconds = 4;
    ev->occurred_at_ms = 1778064120000LL;
    ev->baseline_minutes = 4;
    ev->baseline_source = STR("builtin");
    ev->hourly_rate = 45;
    ev->currency = STR("EUR");
}


static void
test_event_id(void)
{
    int   i, bad;
    char  id[HH_EVENT_ID_LEN + 1], other[HH_EVENT_ID_LEN + 1];

    hh_event_id_generate(1469918176385LL, id);

    UNIT_CHECK(strlen(id) == HH_EVENT_ID_LEN, "event id length %zu",
               strlen(id));
    UNIT_CHECK(strncmp(id, "evt_01ARYZ6S41", 14) == 0,
               "event id time part: %s", id);

    bad = 0;

    for (i = 4; i < HH_EVENT_ID_LEN; i++) {
        bad += strchr(CROCKFORD, id[i]) == NULL;
    }

    UNIT_CHECK(bad == 0, "event id has %d characters outside base32: %s",
               bad, id);

    hh_event_id_generate(1469918176385LL, other);
    UNIT_CHECK(strcmp(id, other) != 0 && strncmp(id, other, 14) == 0,
               "event ids of one millisecond: %s %s", id, other);

    hh_event_id_generate(0, id);
    UNIT_CHECK(strncmp(id, "evt_0000000000", 14) == 0, "time 0: %s", id);

    hh_event_id_generate(-5, id);
    UNIT_CHECK(strncmp(id, "evt_0000000000", 14) == 0, "time -5: %s", id);

    hh_event_id_generate(0xffffffffffffLL, id);
    UNIT_CHECK(strncmp(id, "evt_7ZZZZZZZZZ", 14) == 0, "time 2^48-1: %s",
               id);

    hh_event_id_generate(1778064120000LL, id);
    hh_event_id_generate(1778064120001LL, other);
    UNIT_CHECK(strcmp(id, other) < 0, "event ids out of time order: %s %s",
               id, other);
}


/* The documented layout, built by hand: presence, 8-byte length, bytes. */
static void
fingerprint_by_hand(const hh_str_t *fields, char out[HH_FINGERPRINT_LEN + 1])
{
    int            i, b;
    size_t         len;
    unsigned char  digest[16], buf[1024];

    len = 0;

    for (i = 0; i < 4; i++) {
        buf[len++] = fields[i].data != NULL;

        for (b = 0; b < 8; b++) {
            buf[len++] = (unsigned char) (fields[i].len >> (8 * b));
        }

        if (fields[i].data != NULL) {
            memcpy(buf + len, fields[i].data, fields[i].len);
            len += fields[i].len;
        }
    }

    crypto_generichash(digest, sizeof(digest), buf, len, NULL, 0);
    sodium_bin2hex(out, HH_FINGERPRINT_LEN + 1, digest, sizeof(digest));
}


static void
test_fingerprint(void)
{
    char      a[HH_FINGERPRINT_LEN + 1], b[HH_FINGERPRINT_LEN + 1];
    char      expected[HH_FINGERPRINT_LEN + 1];
    hh_str_t  fields[4];

    fields[0] = STR("support-classifier");
    fields[1] = STR("email_classification");
    fields[2] = STR("anthropic/claude-opus-4.8");
    fields[3] = STR("key_42");

    hh_fingerprint(fields[0], fields[1], fields[2], fields[3], a);
    fingerprint_by_hand(fields, expected);

    UNIT_CHECK_STR(a, expected, "fingerprint layout");
    UNIT_CHECK(strlen(a) == HH_FINGERPRINT_LEN
               && strspn(a, "0123456789abcdef") == HH_FINGERPRINT_LEN,
               "fingerprint is not 32 lower-case hex digits: %s", a);

    hh_fingerprint(fields[0], fields[1], fields[2], fields[3], b);
    UNIT_CHECK_STR(b, a, "fingerprint repeatable");

    hh_fingerprint(STR("ab"), STR("c"), ABSENT, STR("k"), a);
    hh_fingerprint(STR("a"), STR("bc"), ABSENT, STR("k"), b);
    UNIT_CHECK(strcmp(a, b) != 0, "fingerprint: field boundary ignored");

    hh_fingerprint(STR("a"), STR("t"), ABSENT, STR("k"), a);
    hh_fingerprint(STR("a"), STR("t"), STR(""), STR("k"), b);
    UNIT_CHECK(strcmp(a, b) != 0, "fingerprint: absent model equals \"\"");

    fields[2] = ABSENT;
    fields[0] = STR("a");
    fields[1] = STR("t");
    fields[3] = STR("k");
    fingerprint_by_hand(fields, expected);
    UNIT_CHECK_STR(a, expected, "fingerprint layout, absent model");

    hh_fingerprint(STR("a"), STR("t"), ABSENT, STR("k2"), b);
    UNIT_CHECK(strcmp(a, b) != 0, "fingerprint: key id ignored");
}


typedef struct {
    const char        *name;
    double             baseline_minutes;
    double             duration;
    double             hourly_rate;
    int                has_agent_cost;
    double             agent_cost;
    int                has_tokens;
    uint64_t           tokens_in;
    uint64_t           tokens_out;
    int                has_prices;
    double             input_price;
    double             output_price;

    double             hours_saved;
    double             cost_saved;
    hh_cost_source_e   cost_source;
    double             resolved_agent_cost;
    double             net_saved;
} compute_case_t;


static const compute_case_t  compute_cases[] = {
    { "API example", 4, 4, 45, 0, 0, 0, 0, 0, 0, 0, 0,
      (4 - 4.0 / 60) / 60, (4 - 4.0 / 60) / 60 * 45, HH_COST_NONE, 0,
      (4 - 4.0 / 60) / 60 * 45 },
    { "no duration", 30, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0,
      0.5, 30, HH_COST_NONE, 0, 30 },
    { "slower than a person", 1, 120, 45, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, HH_COST_NONE, 0, 0 },
    { "exactly the baseline", 2, 120, 45, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, HH_COST_NONE, 0, 0 },
    { "provided cost", 60, 0, 50, 1, 1.25, 0, 0, 0, 0, 0, 0,
      1, 50, HH_COST_PROVIDED, 1.25, 48.75 },
    { "provided wins over prices", 60, 0, 50, 1, 0, 1, 1000000, 1000000, 1,
      3, 15, 1, 50, HH_COST_PROVIDED, 0, 50 },
    { "computed cost", 60, 0, 50, 0, 0, 1, 2000000, 500000, 1, 3, 15,
      1, 50, HH_COST_COMPUTED, 13.5, 36.5 },
    { "tokens without prices", 60, 0, 50, 0, 0, 1, 2000000, 500000, 0, 3,
      15, 1, 50, HH_COST_NONE, 0, 50 },
    { "prices without tokens", 60, 0, 50, 0, 0, 0, 2000000, 500000, 1, 3,
      15, 1, 50, HH_COST_NONE, 0, 50 },
    { "cost above savings", 6, 0, 10, 1, 5, 0, 0, 0, 0, 0, 0,
      0.1, 1, HH_COST_PROVIDED, 5, -4 },
};


static int
close_to(double got, double expected)
{
    return fabs(got - expected) <= 1e-12 * (fabs(expected) + 1);
}


static void
test_compute(void)
{
    size_t                 i;
    hh_event_t             ev;
    const compute_case_t  *c;

    for (i = 0; i < sizeof(compute_cases) / sizeof(compute_cases[0]); i++) {
        c = &compute_cases[i];

        memset(&ev, 0, sizeof(ev));
        ev.baseline_minutes = c->baseline_minutes;
        ev.agent_duration_seconds = c->duration;
        ev.hourly_rate = c->hourly_rate;
        ev.has_agent_cost = c->has_agent_cost;
        ev.agent_cost = c->agent_cost;
        ev.has_tokens = c->has_tokens;
        ev.tokens_in = c->tokens_in;
        ev.tokens_out = c->tokens_out;
        ev.has_prices = c->has_prices;
        ev.input_price = c->input_price;
        ev.output_price = c->output_price;

        hh_event_compute(&ev);

        UNIT_CHECK(close_to(ev.hours_saved, c->hours_saved),
                   "compute %s: hours_saved %.17g, expected %.17g", c->name,
                   ev.hours_saved, c->hours_saved);
        UNIT_CHECK(close_to(ev.cost_saved, c->cost_saved),
                   "compute %s: cost_saved %.17g, expected %.17g", c->name,
                   ev.cost_saved, c->cost_saved);
        UNIT_CHECK(ev.cost_source == c->cost_source,
                   "compute %s: cost source %d, expected %d", c->name,
                   (int) ev.cost_source, (int) c->cost_source);
        UNIT_CHECK(close_to(ev.resolved_agent_cost, c->resolved_agent_cost),
                   "compute %s: agent cost %.17g, expected %.17g", c->name,
                   ev.resolved_agent_cost, c->resolved_agent_cost);
        UNIT_CHECK(close_to(ev.net_saved, c->net_saved),
                   "compute %s: net_saved %.17g, expected %.17g", c->name,
                   ev.net_saved, c->net_saved);
    }
}


static void
test_render_example(void)
{
    char        buf[2048];
    size_t      len;
    hh_event_t  ev;

    static const char  expected[] =
        "{\"event_id\":\"evt_01JEQ5Z8KX3M9T2V7W4YB6R1NC\","
        "\"agent_id\":\"support-classifier\","
        "\"task_type\":\"email_classification\","
        "\"outcome\":\"success\","
        "\"resolved_baseline_minutes\":4.0,"
        "\"resolved_baseline_source\":\"builtin\","
        "\"resolved_hourly_rate\":45,"
        "\"currency\":\"EUR\","
        "\"agent_duration_seconds\":4,"
        "\"hours_saved\":0.066,"
        "\"cost_saved\":2.95,"
        "\"agent_cost\":null,"
        "\"resolved_cost_source\":\"none\","
        "\"net_saved\":2.95,"
        "\"occurred_at\":\"2026-05-06T10:42:00.000Z\"}";

    example_event(&ev);
    hh_event_compute(&ev);

    len = hh_event_render_response(&ev, buf, sizeof(buf));

    UNIT_CHECK_STR(buf, expected, "render API example");
    UNIT_CHECK(len == strlen(expected), "render length %zu, expected %zu",
               len, strlen(expected));
    UNIT_CHECK(hh_event_response_max(&ev) > len,
               "response max %zu not above length %zu",
               hh_event_response_max(&ev), len);
}


/* Renders ev and returns the value of member key, as text. */
static const char *
rendered_value(const hh_event_t *ev, const char *key)
{
    char         pattern[64], *p;
    size_t       n;
    static char  buf[4096], value[512];

    hh_event_render_response(ev, buf, sizeof(buf));

    snprintf(pattern, sizeof(pattern), "\"%s\":", key);

    p = strstr(buf, pattern);
    if (p == NULL) {
        return "(missing)";
    }

    p += strlen(pattern);
    n = strcspn(p, ",}");

    if (n >= sizeof(value)) {
        n = sizeof(value) - 1;
    }

    memcpy(value, p, n);
    value[n] = '\0';

    return value;
}


typedef struct {
    const char  *name;
    const char  *key;
    int          field;     /* which input the value goes to */
    double       value;
    const char  *expected;
} number_case_t;


enum {
    SET_BASELINE = 0,
    SET_RATE,
    SET_DURATION,
    SET_AGENT_COST,
    SET_NET_FROM_COST
};


static const number_case_t  number_cases[] = {
    { "whole baseline", "resolved_baseline_minutes", SET_BASELINE, 30,
      "30.0" },
    { "fractional baseline", "resolved_baseline_minutes", SET_BASELINE, 2.5,
      "2.5" },
    { "baseline 0.1", "resolved_baseline_minutes", SET_BASELINE, 0.1,
      "0.1" },
    { "large whole baseline", "resolved_baseline_minutes", SET_BASELINE,
      1e20, "1e+20" },
    { "whole rate", "resolved_hourly_rate", SET_RATE, 45, "45" },
    { "decimal rate", "resolved_hourly_rate", SET_RATE, 45.5, "45.5" },
    { "rate 0.1", "resolved_hourly_rate", SET_RATE, 0.1, "0.1" },
    { "rate needing 17 digits", "resolved_hourly_rate", SET_RATE,
      0.30000000000000004, "0.30000000000000004" },
    { "duration a third", "agent_duration_seconds", SET_DURATION, 1.0 / 3,
      "0.33333333333333331" },
    { "duration zero", "agent_duration_seconds", SET_DURATION, 0, "0" },
    { "duration minus zero", "agent_duration_seconds", SET_DURATION, -0.0,
      "0" },
    { "duration 1.5", "agent_duration_seconds", SET_DURATION, 1.5, "1.5" },
    { "agent cost tie rounds up", "agent_cost", SET_AGENT_COST, 0.125,
      "0.13" },
    { "agent cost tie below", "agent_cost", SET_AGENT_COST, 2.675, "2.67" },
    { "agent cost 2 decimals", "agent_cost", SET_AGENT_COST, 3, "3.00" },
    { "net rounds to minus zero", "net_saved", SET_NET_FROM_COST, 0.001,
      "0.00" },
    { "net negative", "net_saved", SET_NET_FROM_COST, 1.5, "-1.50" },
};


static void
test_render_numbers(void)
{
    size_t                i;
    hh_event_t            ev;
    const number_case_t  *c;

    for (i = 0; i < sizeof(number_cases) / sizeof(number_cases[0]); i++) {
        c = &number_cases[i];

        example_event(&ev);

        switch (c->field) {
        case SET_BASELINE:
            ev.baseline_minutes = c->value;
            break;
        case SET_RATE:
            ev.hourly_rate = c->value;
            break;
        case SET_DURATION:
            ev.agent_duration_seconds = c->value;
            break;
        case SET_AGENT_COST:
            ev.has_agent_cost = 1;
            ev.agent_cost = c->value;
            break;
        default:
            /* No time saved, so net_saved is minus the agent cost. */
            ev.baseline_minutes = 0;
            ev.has_agent_cost = 1;
            ev.agent_cost = c->value;
            break;
        }

        hh_event_compute(&ev);

        UNIT_CHECK_STR(rendered_value(&ev, c->key), c->expected, c->name);
    }

    example_event(&ev);
    ev.baseline_minutes = 0;
    hh_event_compute(&ev);

    UNIT_CHECK_STR(rendered_value(&ev, "hours_saved"), "0.000",
                   "no time saved, hours");
    UNIT_CHECK_STR(rendered_value(&ev, "cost_saved"), "0.00",
                   "no time saved, cost");

    example_event(&ev);
    ev.has_tokens = 1;
    ev.tokens_in = 1000;
    ev.tokens_out = 200;
    ev.has_prices = 1;
    ev.input_price = 3;
    ev.output_price = 15;
    hh_event_compute(&ev);

    UNIT_CHECK_STR(rendered_value(&ev, "agent_cost"), "0.01",
                   "computed agent cost");
    UNIT_CHECK_STR(rendered_value(&ev, "resolved_cost_source"),
                   "\"computed\"", "computed cost source");
    UNIT_CHECK_STR(rendered_value(&ev, "net_saved"), "2.94",
                   "net after computed cost");

    example_event(&ev);
    ev.hourly_rate = NAN;
    hh_event_compute(&ev);

    UNIT_CHECK_STR(rendered_value(&ev, "resolved_hourly_rate"), "null",
                   "NaN rate");
    UNIT_CHECK_STR(rendered_value(&ev, "cost_saved"), "null",
                   "NaN cost saved");
}


typedef struct {
    const char  *name;
    const char  *agent_id;
    const char  *expected;
} escape_case_t;


static const escape_case_t  escape_cases[] = {
    { "plain", "bot", "\"bot\"" },
    { "quote", "a\"b", "\"a\\\"b\"" },
    { "backslash", "a\\b", "\"a\\\\b\"" },
    { "newline", "a\nb", "\"a\\u000ab\"" },
    { "control 0x01", "a\x01" "b", "\"a\\u0001b\"" },
    { "control 0x1f", "\x1f", "\"\\u001f\"" },
    { "DEL passes", "a\x7f", "\"a\x7f\"" },
    { "slash passes", "a/b", "\"a/b\"" },
    { "2-byte UTF-8", "caf\xc3\xa9", "\"caf\xc3\xa9\"" },
    { "4-byte UTF-8", "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"" },
    { "stray byte", "a\xff" "b", "\"a\\ufffdb\"" },
    { "truncated sequence", "a\xe2\x82", "\"a\\ufffd\\ufffd\"" },
    { "encoded surrogate", "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },
};


static void
test_render_escapes(void)
{
    char          buf[4096], expected[256];
    size_t        i;
    hh_event_t    ev;
    hh_str_t      agent;

    for (i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]); i++) {
        example_event(&ev);
        agent.data = escape_cases[i].agent_id;
        agent.len = strlen(escape_cases[i].agent_id);
        ev.agent_id = agent;
        hh_event_compute(&ev);

        hh_event_render_response(&ev, buf, sizeof(buf));
        snprintf(expected, sizeof(expected), "\"agent_id\":%s,",
                 escape_cases[i].expected);

        UNIT_CHECK(strstr(buf, expected) != NULL, "escape %s: %s",
                   escape_cases[i].name, buf);
    }

    example_event(&ev);
    ev.agent_id = STR("a\0b");
    hh_event_compute(&ev);
    hh_event_render_response(&ev, buf, sizeof(buf));

    UNIT_CHECK(strstr(buf, "\"agent_id\":\"a\\u0000b\",") != NULL,
               "escape NUL byte: %s", buf);

    example_event(&ev);
    ev.currency = ABSENT;
    hh_event_compute(&ev);
    hh_event_render_response(&ev, buf, sizeof(buf));

    UNIT_CHECK(strstr(buf, "\"currency\":null,") != NULL,
               "absent currency: %s", buf);
}


/* Worst cases for the bound: every byte escaped, the widest numbers. */
static void
test_render_bounds(void)
{
    char                   *buf, small[40], control[300], stray[300];
    size_t                  len, max, full;
    hh_event_t              ev;
    hh_json_result_t        result;

    memset(control, 0x01, sizeof(control));
    memset(stray, 0xff, sizeof(stray));

    example_event(&ev);
    ev.agent_id = (hh_str_t) { control, sizeof(control) };
    ev.task_type = (hh_str_t) { stray, sizeof(stray) };
    ev.outcome = (hh_str_t) { control, sizeof(control) };
    ev.baseline_source = (hh_str_t) { stray, sizeof(stray) };
    ev.currency = (hh_str_t) { control, sizeof(control) };
    ev.baseline_minutes = -DBL_MAX;
    ev.hourly_rate = -DBL_MIN;
    ev.agent_duration_seconds = -1.2345678901234567e-300;
    ev.has_agent_cost = 1;
    ev.agent_cost = -DBL_MAX;
    hh_event_compute(&ev);
    ev.hours_saved = -DBL_MAX;
    ev.cost_saved = -DBL_MAX;
    ev.net_saved = -DBL_MAX;
    ev.occurred_at_ms = INT64_MIN;

    max = hh_event_response_max(&ev);
    buf = malloc(max);

    len = hh_event_render_response(&ev, buf, max);
    UNIT_CHECK(len < max, "worst case: length %zu, max %zu", len, max);

    hh_json_check(buf, len, 4, &result);
    UNIT_CHECK(result.status == HH_JSON_OK,
               "worst case is not valid JSON: %s at %zu", result.reason,
               result.offset);

    full = len;
    len = hh_event_render_response(&ev, small, sizeof(small));
    UNIT_CHECK(len == full && strlen(small) == sizeof(small) - 1
               && memcmp(small, buf, sizeof(small) - 1) == 0,
               "truncated render: length %zu, text %s", len, small);

    UNIT_CHECK(hh_event_render_response(&ev, NULL, 0) == full,
               "render into no buffer");

    free(buf);
}


typedef struct {
    const char  *name;
    int64_t      ms;
    const char  *text;
} format_case_t;


static const format_case_t  format_cases[] = {
    { "epoch", 0, "1970-01-01T00:00:00.000Z" },
    { "API example", 1778064120000LL, "2026-05-06T10:42:00.000Z" },
    { "before epoch", -1, "1969-12-31T23:59:59.999Z" },
    { "leap day 2024", 1709251199999LL, "2024-02-29T23:59:59.999Z" },
    { "leap day 2000", 951825600000LL, "2000-02-29T12:00:00.000Z" },
    { "1900 not leap", -2203891200000LL, "1900-03-01T00:00:00.000Z" },
    { "year 1", -62135596800000LL, "0001-01-01T00:00:00.000Z" },
    { "year 0", -62167219200000LL, "0000-01-01T00:00:00.000Z" },
    { "last millisecond", 253402300799999LL, "9999-12-31T23:59:59.999Z" },
    { "clamped low", INT64_MIN, "0000-01-01T00:00:00.000Z" },
    { "clamped high", INT64_MAX, "9999-12-31T23:59:59.999Z" },
};


static void
test_timestamp_format(void)
{
    char    out[HH_TIMESTAMP_LEN + 1];
    size_t  i;

    for (i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
        hh_timestamp_format(format_cases[i].ms, out);
        UNIT_CHECK_STR(out, format_cases[i].text, format_cases[i].name);
    }
}


typedef struct {
    const char  *text;
    int          rc;
    int64_t      ms;
} parse_case_t;


static const parse_case_t  parse_cases[] = {
    { "2026-05-06T10:42:00Z", 0, 1778064120000LL },
    { "2026-05-06t10:42:00z", 0, 1778064120000LL },
    { "2026-05-06 10:42:00Z", 0, 1778064120000LL },
    { "2026-05-06T10:42:00.000Z", 0, 1778064120000LL },
    { "2026-05-06T10:42:00.5Z", 0, 1778064120500LL },
    { "2026-05-06T10:42:00.12Z", 0, 1778064120120LL },
    { "2026-05-06T10:42:00.123456789Z", 0, 1778064120123LL },
    { "2026-05-06T10:42:00.9999999999999999999999Z", 0, 1778064120999LL },
    { "2026-05-06T12:42:00+02:00", 0, 1778064120000LL },
    { "2026-05-06T05:12:00-05:30", 0, 1778064120000LL },
    { "2026-05-06T10:42:00+00:00", 0, 1778064120000LL },
    { "2026-05-06T10:42:00-00:00", 0, 1778064120000LL },
    { "2026-05-07T10:41:00+23:59", 0, 1778064120000LL },
    { "1970-01-01T00:00:00Z", 0, 0 },
    { "1969-12-31T23:59:59.999Z", 0, -1 },
    { "2024-02-29T23:59:59.999Z", 0, 1709251199999LL },
    { "2000-02-29T12:00:00Z", 0, 951825600000LL },
    { "0000-01-01T00:00:00Z", 0, -62167219200000LL },
    { "9999-12-31T23:59:59.999Z", 0, 253402300799999LL },
    { "2023-02-29T00:00:00Z", -1, 0 },
    { "1900-02-29T00:00:00Z", -1, 0 },
    { "2026-04-31T00:00:00Z", -1, 0 },
    { "2026-13-01T00:00:00Z", -1, 0 },
    { "2026-00-01T00:00:00Z", -1, 0 },
    { "2026-01-00T00:00:00Z", -1, 0 },
    { "2026-01-32T00:00:00Z", -1, 0 },
    { "2026-05-06T24:00:00Z", -1, 0 },
    { "2026-05-06T10:60:00Z", -1, 0 },
    { "2026-05-06T10:42:60Z", -1, 0 },
    { "2026-05-06T10:42:00", -1, 0 },
    { "2026-05-06T10:42Z", -1, 0 },
    { "2026-05-06", -1, 0 },
    { "2026-05-06T10:42:00.Z", -1, 0 },
    { "2026-05-06T10:42:00,5Z", -1, 0 },
    { "2026-05-06T10:42:00+2:00", -1, 0 },
    { "2026-05-06T10:42:00+0200", -1, 0 },
    { "2026-05-06T10:42:00+24:00", -1, 0 },
    { "2026-05-06T10:42:00+02:60", -1, 0 },
    { "2026-05-06T10:42:00+02:00x", -1, 0 },
    { "2026-05-06T10:42:00ZZ", -1, 0 },
    { "2026-05-06T10:42:00Z ", -1, 0 },
    { " 2026-05-06T10:42:00Z", -1, 0 },
    { "2026-05-06X10:42:00Z", -1, 0 },
    { "2026/05/06T10:42:00Z", -1, 0 },
    { "26-05-06T10:42:00Z", -1, 0 },
    { "12026-05-06T10:42:00Z", -1, 0 },
    { "2026-5-6T10:42:00Z", -1, 0 },
    { "2026-05-06T1:42:00Z", -1, 0 },
    { "+2026-05-06T10:42:00Z", -1, 0 },
    { "2026-05-06T10:42:00UTC", -1, 0 },
    { "", -1, 0 },
};


static void
test_timestamp_parse(void)
{
    int      rc;
    size_t   i;
    int64_t  ms;

    for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        ms = 12345;
        rc = hh_timestamp_parse(parse_cases[i].text,
                                strlen(parse_cases[i].text), &ms);

        UNIT_CHECK(rc == parse_cases[i].rc, "parse \"%s\": rc %d",
                   parse_cases[i].text, rc);

        if (rc == 0 && parse_cases[i].rc == 0) {
            UNIT_CHECK(ms == parse_cases[i].ms,
                       "parse \"%s\": %lld, expected %lld",
                       parse_cases[i].text, (long long) ms,
                       (long long) parse_cases[i].ms);
        }
    }

    /* The length bounds the text: a valid prefix alone is not enough. */
    UNIT_CHECK(hh_timestamp_parse("2026-05-06T10:42:00Z", 19, &ms) == -1,
               "parse: text cut before the zone");
    UNIT_CHECK(hh_timestamp_parse(NULL, 0, &ms) == -1, "parse NULL");
}


/*
 * Walks every day from 0000-01-01 to 9999-12-31 with a naive calendar and
 * checks that formatting and parsing agree with it on each day.
 */
static void
test_timestamp_every_day(void)
{
    int      year, month, day, mdays, leap, errors;
    char     expected[64], out[HH_TIMESTAMP_LEN + 1];
    int64_t  ms, parsed;

    static const int  month_days[12] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    errors = 0;
    ms = -62167219200000LL;

    for (year = 0; year <= 9999; year++) {
        leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);

        for (month = 1; month <= 12; month++) {
            mdays = month_days[month - 1] + (month == 2 && leap);

            for (day = 1; day <= mdays; day++) {
                snprintf(expected, sizeof(expected),
                         "%04d-%02d-%02dT23:59:59.999Z", year, month, day);

                hh_timestamp_format(ms + 86399999, out);

                if (strcmp(out, expected) != 0
                    || hh_timestamp_parse(expected, 24, &parsed) != 0
                    || parsed != ms + 86399999)
                {
                    if (errors++ < 5) {
                        fprintf(stderr, "day %s: formatted %s\n", expected,
                                out);
                    }
                }

                ms += 86400000;
            }
        }
    }

    UNIT_CHECK(errors == 0, "every day: %d days disagree", errors);
    UNIT_CHECK(ms == 253402300800000LL, "every day: walk ended at %lld",
               (long long) ms);
}


int
main(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init() failed\n");
        return 2;
    }

    test_event_id();
    test_fingerprint();
    test_compute();
    test_render_example();
    test_render_numbers();
    test_render_escapes();
    test_render_bounds();
    test_timestamp_format();
    test_timestamp_parse();
    test_timestamp_every_day();

    return UNIT_REPORT();
}
