/*
 * One event: its ULID event id and fingerprint, the arithmetic of time and
 * money saved, the track response, and RFC 3339 timestamps.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "hh_event.h"
#include "hh_json.h"


#define HH_FINGERPRINT_BYTES  16

/*
 * Longest "%.3f" or "%.2f" output of a finite double: a sign, the 309
 * digits of DBL_MAX, a point and 3 decimals make 314 characters.
 */
#define HH_FIXED_NUMBER_MAX   320

/* Longest "%.17g" output: a sign, 17 digits, a point and "e-308". */
#define HH_SHORT_NUMBER_MAX   32

/*
 * Below this magnitude an integral baseline is printed with "%.1f" and
 * converts to int64_t exactly; above it the shortest form is shorter.
 */
#define HH_INTEGRAL_MAX       1e15

#define HH_MS_PER_DAY         86400000LL

/* Days from 0000-01-01 to 1970-01-01 in the proleptic Gregorian calendar. */
#define HH_DAYS_TO_EPOCH      719528LL

/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
#define HH_TIMESTAMP_MIN_MS   (-HH_DAYS_TO_EPOCH * HH_MS_PER_DAY)
#define HH_TIMESTAMP_MAX_MS   253402300799999LL


/* Output that counts every byte but stores only what fits, as snprintf. */
typedef struct {
    char    *buf;
    size_t   size;
    size_t   len;
} hh_out_t;


static void hh_base32_encode_40(const unsigned char in[5], char out[8]);
static void hh_fingerprint_field(crypto_generichash_state *state,
    hh_str_t field);
static void hh_out_bytes(hh_out_t *out, const char *data, size_t len);
static void hh_out_literal(hh_out_t *out, const char *text);
static void hh_out_string(hh_out_t *out, hh_str_t str);
static void hh_out_escape_byte(hh_out_t *out, unsigned char c);
static void hh_out_number(hh_out_t *out, const char *text);
static void hh_format_fixed(char *buf, size_t size, double value,
    int decimals);
static void hh_format_shortest(char *buf, size_t size, double value);
static void hh_format_baseline(char *buf, size_t size, double value);
static void hh_strip_negative_zero(char *buf);
static const char *hh_cost_source_name(hh_cost_source_e source);
static int hh_is_leap_year(int64_t year);
static int hh_days_in_month(int64_t year, int month);
static int64_t hh_days_from_civil(int64_t year, int month, int day);
static int64_t hh_days_before_year(int64_t year);
static int hh_parse_digits(const char *p, size_t n, int *value);
static void hh_put_digits(char *out, int64_t value, int n);


/* Crockford's base32 alphabet, as ULID uses it: no I, L, O or U. */
static const char  hh_crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Days before the first of each month in a common year. */
static const int  hh_days_before_month[12] = {
    0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334
};


/*
 * The ULID is 48 bits of milliseconds in 10 characters, most significant
 * first, then 80 random bits in 16 characters. Times outside 0 to 2^48 - 1
 * (year 10889) are cut to 48 bits, which only matters for clocks far off.
 */
void
hh_event_id_generate(int64_t now_ms, char out[HH_EVENT_ID_LEN + 1])
{
    int            i;
    uint64_t       t;
    unsigned char  random_bits[10];

    t = now_ms < 0 ? 0 : (uint64_t) now_ms & 0xffffffffffffULL;

    memcpy(out, "evt_", 4);

    for (i = 13; i >= 4; i--) {
        out[i] = hh_crockford[t & 31];
        t >>= 5;
    }

    randombytes_buf(random_bits, sizeof(random_bits));
    hh_base32_encode_40(random_bits, out + 14);
    hh_base32_encode_40(random_bits + 5, out + 22);

    out[HH_EVENT_ID_LEN] = '\0';
}


void
hh_fingerprint(hh_str_t agent_id, hh_str_t task_type, hh_str_t model,
    hh_str_t key_id, char out[HH_FINGERPRINT_LEN + 1])
{
    unsigned char             digest[HH_FINGERPRINT_BYTES];
    crypto_generichash_state  state;

    crypto_generichash_init(&state, NULL, 0, sizeof(digest));

    hh_fingerprint_field(&state, agent_id);
    hh_fingerprint_field(&state, task_type);
    hh_fingerprint_field(&state, model);
    hh_fingerprint_field(&state, key_id);

    crypto_generichash_final(&state, digest, sizeof(digest));

    sodium_bin2hex(out, HH_FINGERPRINT_LEN + 1, digest, sizeof(digest));
}


void
hh_event_compute(hh_event_t *ev)
{
    double  minutes;

    minutes = ev->baseline_minutes - ev->agent_duration_seconds / 60;

    /* The negated test also turns a NaN into 0. */
    if (!(minutes > 0)) {
        minutes = 0;
    }

    ev->hours_saved = minutes / 60;
    ev->cost_saved = ev->hours_saved * ev->hourly_rate;

    if (ev->has_agent_cost) {
        ev->cost_source = HH_COST_PROVIDED;
        ev->resolved_agent_cost = ev->agent_cost;

    } else if (ev->has_tokens && ev->has_prices) {
        ev->cost_source = HH_COST_COMPUTED;
        ev->resolved_agent_cost =
            (double) ev->tokens_in * ev->input_price / 1e6
            + (double) ev->tokens_out * ev->output_price / 1e6;

    } else {
        ev->cost_source = HH_COST_NONE;
        ev->resolved_agent_cost = 0;
    }

    ev->net_saved = ev->cost_saved - ev->resolved_agent_cost;
}


/*
 * Absent strings and numbers that are not finite are rendered as null,
 * because JSON has no other spelling for them.
 */
size_t
hh_event_render_response(const hh_event_t *ev, char *buf, size_t size)
{
    char      number[HH_FIXED_NUMBER_MAX];
    hh_out_t  out;
    hh_str_t  str;

    out.buf = buf;
    out.size = size;
    out.len = 0;

    hh_out_literal(&out, "{\"event_id\":");
    str.data = ev->event_id;
    str.len = strnlen(ev->event_id, HH_EVENT_ID_LEN);
    hh_out_string(&out, str);

    hh_out_literal(&out, ",\"agent_id\":");
    hh_out_string(&out, ev->agent_id);
    hh_out_literal(&out, ",\"task_type\":");
    hh_out_string(&out, ev->task_type);
    hh_out_literal(&out, ",\"outcome\":");
    hh_out_string(&out, ev->outcome);

    hh_out_literal(&out, ",\"resolved_baseline_minutes\":");
    hh_format_baseline(number, sizeof(number), ev->baseline_minutes);
    hh_out_number(&out, number);
    hh_out_literal(&out, ",\"resolved_baseline_source\":");
    hh_out_string(&out, ev->baseline_source);

    hh_out_literal(&out, ",\"resolved_hourly_rate\":");
    hh_format_shortest(number, sizeof(number), ev->hourly_rate);
    hh_out_number(&out, number);
    hh_out_literal(&out, ",\"currency\":");
    hh_out_string(&out, ev->currency);

    hh_out_literal(&out, ",\"agent_duration_seconds\":");
    hh_format_shortest(number, sizeof(number), ev->agent_duration_seconds);
    hh_out_number(&out, number);

    hh_out_literal(&out, ",\"hours_saved\":");
    hh_format_fixed(number, sizeof(number), ev->hours_saved, 3);
    hh_out_number(&out, number);
    hh_out_literal(&out, ",\"cost_saved\":");
    hh_format_fixed(number, sizeof(number), ev->cost_saved, 2);
    hh_out_number(&out, number);

    hh_out_literal(&out, ",\"agent_cost\":");

    if (ev->cost_source == HH_COST_NONE) {
        hh_out_literal(&out, "null");

    } else {
        hh_format_fixed(number, sizeof(number), ev->resolved_agent_cost, 2);
        hh_out_number(&out, number);
    }

    hh_out_literal(&out, ",\"resolved_cost_source\":\"");
    hh_out_literal(&out, hh_cost_source_name(ev->cost_source));
    hh_out_literal(&out, "\",\"net_saved\":");
    hh_format_fixed(number, sizeof(number), ev->net_saved, 2);
    hh_out_number(&out, number);

    hh_out_literal(&out, ",\"occurred_at\":\"");
    hh_timestamp_format(ev->occurred_at_ms, number);
    hh_out_literal(&out, number);
    hh_out_literal(&out, "\"}");

    if (size > 0) {
        buf[out.len < size ? out.len : size - 1] = '\0';
    }

    return out.len;
}


/*
 * Returns a buffer size that always fits the response and its NUL. Escaping
 * turns one byte into at most 6, as "\u001f" or as "\ufffd" for a byte that
 * is not UTF-8. The constant covers the member names, punctuation, event id,
 * cost source, timestamp and the short numbers.
 */
size_t
hh_event_response_max(const hh_event_t *ev)
{
    size_t  strings;

    strings = ev->agent_id.len + ev->task_type.len + ev->outcome.len
              + ev->baseline_source.len + ev->currency.len;

    return 1024 + 4 * HH_FIXED_NUMBER_MAX + 6 * strings;
}


void
hh_timestamp_format(int64_t ms, char out[HH_TIMESTAMP_LEN + 1])
{
    int      month, day;
    int64_t  shifted, days, rest, year, day_of_year, leap;

    /* Four-digit years only: the format has no room for others. */
    if (ms < HH_TIMESTAMP_MIN_MS) {
        ms = HH_TIMESTAMP_MIN_MS;

    } else if (ms > HH_TIMESTAMP_MAX_MS) {
        ms = HH_TIMESTAMP_MAX_MS;
    }

    /* Counting from 0000-01-01 keeps every division on non-negatives. */
    shifted = ms - HH_TIMESTAMP_MIN_MS;
    days = shifted / HH_MS_PER_DAY;
    rest = shifted % HH_MS_PER_DAY;

    /* 146097 days make 400 years, so the estimate is off by one at most. */
    year = days * 400 / 146097;

    if (hh_days_before_year(year) > days) {
        year--;

    } else if (hh_days_before_year(year + 1) <= days) {
        year++;
    }

    day_of_year = days - hh_days_before_year(year);
    leap = hh_is_leap_year(year);

    for (month = 12; month > 1; month--) {
        if (day_of_year >= hh_days_before_month[month - 1]
                           + (month > 2 ? leap : 0))
        {
            break;
        }
    }

    day = (int) (day_of_year - hh_days_before_month[month - 1]
                 - (month > 2 ? leap : 0)) + 1;

    memcpy(out, "0000-00-00T00:00:00.000Z", HH_TIMESTAMP_LEN + 1);

    hh_put_digits(out, year, 4);
    hh_put_digits(out + 5, month, 2);
    hh_put_digits(out + 8, day, 2);
    hh_put_digits(out + 11, rest / 3600000, 2);
    hh_put_digits(out + 14, rest / 60000 % 60, 2);
    hh_put_digits(out + 17, rest / 1000 % 60, 2);
    hh_put_digits(out + 20, rest % 1000, 3);
}


/*
 * The accepted grammar is RFC 3339's date-time: YYYY-MM-DD, "T", "t" or a
 * space, hh:mm:ss, an optional fraction of one or more digits, then "Z",
 * "z" or +hh:mm / -hh:mm. A leap second (:60) is rejected.
 */
int
hh_timestamp_parse(const char *text, size_t len, int64_t *ms)
{
    int          year, month, day, hour, minute, second, millis;
    int          offset_hour, offset_minute, sign, digits;
    size_t       i;
    int64_t      days, total;
    const char  *p;

    if (text == NULL || len < 20) {
        return -1;
    }

    p = text;

    if (hh_parse_digits(p, 4, &year) != 0 || p[4] != '-'
        || hh_parse_digits(p + 5, 2, &month) != 0 || p[7] != '-'
        || hh_parse_digits(p + 8, 2, &day) != 0
        || (p[10] != 'T' && p[10] != 't' && p[10] != ' ')
        || hh_parse_digits(p + 11, 2, &hour) != 0 || p[13] != ':'
        || hh_parse_digits(p + 14, 2, &minute) != 0 || p[16] != ':'
        || hh_parse_digits(p + 17, 2, &second) != 0)
    {
        return -1;
    }

    if (month < 1 || month > 12 || day < 1
        || day > hh_days_in_month(year, month)
        || hour > 23 || minute > 59 || second > 59)
    {
        return -1;
    }

    i = 19;
    millis = 0;

    if (text[i] == '.') {
        i++;

        for (digits = 0; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
            if (digits < 3) {
                millis = millis * 10 + (text[i] - '0');
            }

            digits++;
        }

        if (digits == 0) {
            return -1;
        }

        for ( /* void */ ; digits < 3; digits++) {
            millis *= 10;
        }
    }

    if (i < len && (text[i] == 'Z' || text[i] == 'z')) {
        sign = 0;
        offset_hour = 0;
        offset_minute = 0;
        i++;

    } else if (i < len && (text[i] == '+' || text[i] == '-')) {
        sign = text[i] == '-' ? -1 : 1;

        if (len - i < 6
            || hh_parse_digits(text + i + 1, 2, &offset_hour) != 0
            || text[i + 3] != ':'
            || hh_parse_digits(text + i + 4, 2, &offset_minute) != 0
            || offset_hour > 23 || offset_minute > 59)
        {
            return -1;
        }

        i += 6;

    } else {
        return -1;
    }

    if (i != len) {
        return -1;
    }

    days = hh_days_from_civil(year, month, day);
    total = ((days * 24 + hour) * 60 + minute) * 60 + second;

    /* Local time minus the offset is UTC: 10:00+02:00 is 08:00Z. */
    total -= (int64_t) sign * (offset_hour * 60 + offset_minute) * 60;

    *ms = total * 1000 + millis;

    return 0;
}


static void
hh_base32_encode_40(const unsigned char in[5], char out[8])
{
    int       i;
    uint64_t  bits;

    bits = 0;

    for (i = 0; i < 5; i++) {
        bits = bits << 8 | in[i];
    }

    for (i = 7; i >= 0; i--) {
        out[i] = hh_crockford[bits & 31];
        bits >>= 5;
    }
}


/*
 * Hashes a presence byte, the length as 8 bytes little-endian, then the
 * bytes. So no field can run into the next, and absent differs from "".
 */
static void
hh_fingerprint_field(crypto_generichash_state *state, hh_str_t field)
{
    int            i;
    size_t         len;
    unsigned char  header[9];

    len = field.data != NULL ? field.len : 0;

    header[0] = field.data != NULL;

    for (i = 0; i < 8; i++) {
        header[1 + i] = (unsigned char) ((uint64_t) len >> (8 * i));
    }

    crypto_generichash_update(state, header, sizeof(header));

    if (len > 0) {
        crypto_generichash_update(state, (const unsigned char *) field.data,
                                  len);
    }
}


static void
hh_out_bytes(hh_out_t *out, const char *data, size_t len)
{
    size_t  room;

    room = out->size > out->len ? out->size - out->len : 0;

    if (room > 0) {
        memcpy(out->buf + out->len, data, len < room ? len : room);
    }

    out->len += len;
}


static void
hh_out_literal(hh_out_t *out, const char *text)
{
    hh_out_bytes(out, text, strlen(text));
}


/*
 * Writes a JSON string. Quote, backslash and control characters are
 * escaped, well-formed UTF-8 is copied, and a byte that is not UTF-8
 * becomes U+FFFD so that the output is always valid JSON.
 */
static void
hh_out_string(hh_out_t *out, hh_str_t str)
{
    size_t                i, run, n;
    const unsigned char  *p;

    if (str.data == NULL) {
        hh_out_literal(out, "null");
        return;
    }

    p = (const unsigned char *) str.data;

    hh_out_literal(out, "\"");

    for (i = 0, run = 0; i < str.len; i += n) {
        n = hh_utf8_char_len(p + i, str.len - i);

        if (n > 1 || (n == 1 && p[i] >= 0x20 && p[i] != '"'
                      && p[i] != '\\'))
        {
            continue;
        }

        hh_out_bytes(out, str.data + run, i - run);
        hh_out_escape_byte(out, p[i]);

        n = 1;
        run = i + 1;
    }

    hh_out_bytes(out, str.data + run, str.len - run);
    hh_out_literal(out, "\"");
}


/* Bytes of 0x80 and above reach here only when they are not UTF-8. */
static void
hh_out_escape_byte(hh_out_t *out, unsigned char c)
{
    char  escape[8];

    if (c == '"') {
        hh_out_literal(out, "\\\"");

    } else if (c == '\\') {
        hh_out_literal(out, "\\\\");

    } else if (c < 0x20) {
        snprintf(escape, sizeof(escape), "\\u%04x", c);
        hh_out_literal(out, escape);

    } else {
        hh_out_literal(out, "\\ufffd");
    }
}


/* An empty number text stands for a value that is not finite. */
static void
hh_out_number(hh_out_t *out, const char *text)
{
    hh_out_literal(out, text[0] != '\0' ? text : "null");
}


/*
 * Rounds half away from zero (3.125 to 3.13), where printf alone would
 * round the binary value half to even. A product that lands exactly on a
 * half may have been rounded there: fma() gives its exact error, so 2.675,
 * whose binary value is below 2.675, still rounds down. Values too large
 * for the scaled product to hold a fraction are printed as they are.
 *
 * NOTE: snprintf() and strtod() follow LC_NUMERIC. The output is JSON only
 * while it is "C", which is the case unless the process calls setlocale().
 */
static void
hh_format_fixed(char *buf, size_t size, double value, int decimals)
{
    double  scale, scaled, error, rounded;

    if (!isfinite(value)) {
        buf[0] = '\0';
        return;
    }

    scale = (decimals == 3) ? 1000.0 : 100.0;
    scaled = value * scale;

    if (fabs(scaled) < 4503599627370496.0) {     /* 2^52 */
        rounded = round(scaled);

        if (fabs(scaled - trunc(scaled)) == 0.5) {
            error = fma(value, scale, -scaled);

            if ((error < 0 && scaled > 0) || (error > 0 && scaled < 0)) {
                rounded = trunc(scaled);
            }
        }

        value = rounded / scale;
    }

    snprintf(buf, size, "%.*f", decimals, value);
    hh_strip_negative_zero(buf);
}


/* Writes the shorter of "%.15g" and "%.17g" that reads back as value. */
static void
hh_format_shortest(char *buf, size_t size, double value)
{
    if (!isfinite(value)) {
        buf[0] = '\0';
        return;
    }

    snprintf(buf, size, "%.15g", value);

    if (strtod(buf, NULL) != value) {
        snprintf(buf, size, "%.17g", value);
    }

    hh_strip_negative_zero(buf);
}


/* Whole minutes keep a ".0" so that a baseline always reads as minutes. */
static void
hh_format_baseline(char *buf, size_t size, double value)
{
    if (isfinite(value) && value > -HH_INTEGRAL_MAX
        && value < HH_INTEGRAL_MAX && value == (double) (int64_t) value)
    {
        snprintf(buf, size, "%.1f", value);
        hh_strip_negative_zero(buf);
        return;
    }

    hh_format_shortest(buf, size, value);
}


/* Turns "-0", "-0.0" or a negative value rounded to "-0.00" into zero. */
static void
hh_strip_negative_zero(char *buf)
{
    if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1)) {
        memmove(buf, buf + 1, strlen(buf));
    }
}


static const char *
hh_cost_source_name(hh_cost_source_e source)
{
    switch (source) {

    case HH_COST_PROVIDED:
        return "provided";

    case HH_COST_COMPUTED:
        return "computed";

    default:
        return "none";
    }
}


static int
hh_is_leap_year(int64_t year)
{
    return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}


static int
hh_days_in_month(int64_t year, int month)
{
    static const int  days[12] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    return days[month - 1] + (month == 2 && hh_is_leap_year(year));
}


/* Returns days since 1970-01-01 for a date with a year from 0 to 9999. */
static int64_t
hh_days_from_civil(int64_t year, int month, int day)
{
    int64_t  days;

    days = hh_days_before_year(year) + hh_days_before_month[month - 1]
           + (month > 2 && hh_is_leap_year(year)) + day - 1;

    return days - HH_DAYS_TO_EPOCH;
}


/*
 * Returns days from 0000-01-01 to the first day of year, for year >= 0.
 * Year 0 is a leap year, so the years before year contain ceil(year / 4)
 * leap years, less the century years, plus every fourth century year.
 */
static int64_t
hh_days_before_year(int64_t year)
{
    return year * 365 + (year + 3) / 4 - (year + 99) / 100
           + (year + 399) / 400;
}


/* Parses exactly n ASCII digits. */
static int
hh_parse_digits(const char *p, size_t n, int *value)
{
    size_t  i;

    *value = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        *value = *value * 10 + (p[i] - '0');
    }

    return 0;
}


/* Writes the n lowest decimal digits of a non-negative value, zero-padded. */
static void
hh_put_digits(char *out, int64_t value, int n)
{
    while (n-- > 0) {
        out[n] = (char) ('0' + value % 10);
        value /= 10;
    }
}
