/*
 * Parsing one hh:events stream entry (format version 1, written by the
 * nginx module's track script) into an event with its derived values.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hh_json.h"
#include "hh_entry.h"


#define HH_ENTRY_ENTRY_VERSION      "1"

/*
 * The module bounds metadata at 8 levels inside the request body, and the
 * event object is flat. The JSON check here only makes sure that Postgres
 * jsonb accepts what is stored, so its depth bound is generous.
 */
#define HH_ENTRY_JSON_DEPTH         64

/* Integers above 2^53 are not exact in a JSON number that cJSON reads. */
#define HH_ENTRY_MAX_EXACT_INTEGER  9007199254740992.0

/* 2^63, the first value above a Postgres bigint */
#define HH_ENTRY_BIGINT_LIMIT       9223372036854775808.0

#define HH_ENTRY_NUMBER_TEXT_MAX    64


static const char *hh_entry_parse_event(hh_entry_t *entry,
    const char *text, size_t len);
static const char *hh_entry_parse_resolved(hh_entry_t *entry,
    const redisReply *fields);
static const char *hh_entry_raw_json(const redisReply *value,
    hh_str_t *raw);
static const redisReply *hh_entry_field(const redisReply *fields,
    const char *name);
static int hh_entry_text_number(const redisReply *value, double *number);
static int hh_entry_json_id(const cJSON *item, int64_t *id);
static int hh_entry_json_count(const cJSON *item, uint64_t *count,
    int *present);
static int hh_entry_json_string(const cJSON *item, hh_str_t *str);
static int hh_entry_is_one_of(hh_str_t str, const char *const *words);


static const char *const  writer_outcomes[] = {
    "success", "failure", "needs_review", NULL
};

static const char *const  writer_baseline_sources[] = {
    "request", "override", "builtin", "custom", NULL
};


const char *
hh_entry_parse(hh_entry_t *entry, const char *stream_id,
    const redisReply *fields)
{
    const char        *reason;
    const redisReply  *value;

    memset(entry, 0, sizeof(hh_entry_t));
    entry->stream_id = stream_id;

    if (fields->type != REDIS_REPLY_ARRAY || fields->elements % 2 != 0) {
        return "the entry is not a list of field-value pairs";
    }

    value = hh_entry_field(fields, "v");
    if (value == NULL || strcmp(value->str, HH_ENTRY_ENTRY_VERSION) != 0) {
        return "field \"v\" is missing or not format version 1";
    }

    value = hh_entry_field(fields, "event");
    if (value == NULL) {
        return "field \"event\" is missing";
    }

    reason = hh_entry_parse_event(entry, value->str, value->len);
    if (reason != NULL) {
        return reason;
    }

    reason = hh_entry_parse_resolved(entry, fields);
    if (reason != NULL) {
        return reason;
    }

    reason = hh_entry_raw_json(hh_entry_field(fields, "metadata"),
                                   &entry->metadata);
    if (reason != NULL) {
        return "field \"metadata\" is not a JSON object that jsonb accepts";
    }

    reason = hh_entry_raw_json(hh_entry_field(fields,
                                                      "audit_sample"),
                                   &entry->audit_sample);
    if (reason != NULL) {
        return "field \"audit_sample\" is not a JSON object that jsonb "
               "accepts";
    }

    hh_event_compute(&entry->event);

    if (!isfinite(entry->event.hours_saved)
        || !isfinite(entry->event.cost_saved)
        || !isfinite(entry->event.net_saved)
        || (entry->event.cost_source != HH_COST_NONE
            && !isfinite(entry->event.resolved_agent_cost)))
    {
        return "the derived values overflow a double";
    }

    return NULL;
}


void
hh_entry_free(hh_entry_t *entry)
{
    if (entry->json != NULL) {
        cJSON_Delete(entry->json);
        entry->json = NULL;
    }
}


/* The "event" field: the request's values as the module accepted them. */
static const char *
hh_entry_parse_event(hh_entry_t *entry, const char *text, size_t len)
{
    cJSON             *json, *item;
    size_t             i;
    hh_str_t           str;
    hh_event_t        *ev;
    hh_json_result_t   check;

    ev = &entry->event;

    /* What passes the gate also passes Postgres's JSON input. */
    hh_json_check(text, len, HH_ENTRY_JSON_DEPTH, &check);
    if (check.status != HH_JSON_OK) {
        return "field \"event\" is not JSON that jsonb accepts";
    }

    json = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return "field \"event\" is not a JSON object";
    }

    entry->json = json;

    item = cJSON_GetObjectItemCaseSensitive(json, "event_id");
    if (hh_entry_json_string(item, &str) != 0
        || str.len != HH_EVENT_ID_LEN
        || memcmp(str.data, "evt_", 4) != 0)
    {
        return "event_id is not \"evt_\" and 26 characters";
    }

    for (i = 4; i < str.len; i++) {
        if (!((str.data[i] >= '0' && str.data[i] <= '9')
              || (str.data[i] >= 'A' && str.data[i] <= 'Z')))
        {
            return "event_id is not \"evt_\" and 26 characters";
        }
    }

    memcpy(ev->event_id, str.data, str.len);
    ev->event_id[str.len] = '\0';

    item = cJSON_GetObjectItemCaseSensitive(json, "org_id");
    if (hh_entry_json_id(item, &entry->org_id) != 0) {
        return "org_id is not a positive integer";
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "key_id");
    if (hh_entry_json_id(item, &entry->key_id) != 0) {
        return "key_id is not a positive integer";
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "test");
    if (!cJSON_IsBool(item)) {
        return "test is not a boolean";
    }

    entry->test = cJSON_IsTrue(item);

    item = cJSON_GetObjectItemCaseSensitive(json, "agent_id");
    if (hh_entry_json_string(item, &ev->agent_id) != 0
        || ev->agent_id.len == 0)
    {
        return "agent_id is not a non-empty string";
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "task_type");
    if (hh_entry_json_string(item, &ev->task_type) != 0
        || ev->task_type.len == 0)
    {
        return "task_type is not a non-empty string";
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "outcome");
    if (hh_entry_json_string(item, &ev->outcome) != 0
        || !hh_entry_is_one_of(ev->outcome, writer_outcomes))
    {
        return "outcome is not success, failure or needs_review";
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "agent_duration_seconds");
    if (item != NULL && !cJSON_IsNull(item)) {
        if (!cJSON_IsNumber(item) || !(item->valuedouble >= 0)
            || !isfinite(item->valuedouble))
        {
            return "agent_duration_seconds is not a finite number >= 0";
        }

        ev->agent_duration_seconds = item->valuedouble;
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "agent_cost");
    if (item != NULL && !cJSON_IsNull(item)) {
        if (!cJSON_IsNumber(item) || !(item->valuedouble >= 0)
            || !isfinite(item->valuedouble))
        {
            return "agent_cost is not null or a finite number >= 0";
        }

        ev->has_agent_cost = 1;
        ev->agent_cost = item->valuedouble;
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "model");
    if (item != NULL && !cJSON_IsNull(item)
        && hh_entry_json_string(item, &ev->model) != 0)
    {
        return "model is not null or a string";
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "tokens_in");
    if (hh_entry_json_count(item, &ev->tokens_in, &entry->has_tokens_in)
        != 0)
    {
        return "tokens_in is not null or an integer >= 0";
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "tokens_out");
    if (hh_entry_json_count(item, &ev->tokens_out,
                                &entry->has_tokens_out)
        != 0)
    {
        return "tokens_out is not null or an integer >= 0";
    }

    ev->has_tokens = entry->has_tokens_in && entry->has_tokens_out;

    item = cJSON_GetObjectItemCaseSensitive(json, "occurred_at");
    if (hh_entry_json_string(item, &str) != 0
        || hh_timestamp_parse(str.data, str.len, &ev->occurred_at_ms) != 0)
    {
        return "occurred_at is not an RFC 3339 timestamp";
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "received_at");
    if (hh_entry_json_string(item, &str) != 0
        || hh_timestamp_parse(str.data, str.len, &entry->received_at_ms) != 0)
    {
        return "received_at is not an RFC 3339 timestamp";
    }

    item = cJSON_GetObjectItemCaseSensitive(json, "fingerprint");
    if (hh_entry_json_string(item, &entry->fingerprint) != 0
        || entry->fingerprint.len != HH_FINGERPRINT_LEN
        || strspn(entry->fingerprint.data, "0123456789abcdef")
           != HH_FINGERPRINT_LEN)
    {
        return "fingerprint is not 32 lowercase hex digits";
    }

    return NULL;
}


/* The values that the track script resolved, as Redis fields of the entry. */
static const char *
hh_entry_parse_resolved(hh_entry_t *entry, const redisReply *fields)
{
    int                has_input, has_output;
    hh_event_t        *ev;
    const redisReply  *value;

    ev = &entry->event;

    value = hh_entry_field(fields, "baseline_minutes");
    if (hh_entry_text_number(value, &ev->baseline_minutes) != 0
        || !(ev->baseline_minutes > 0))
    {
        return "field \"baseline_minutes\" is not a number > 0";
    }

    value = hh_entry_field(fields, "baseline_source");
    if (value != NULL) {
        ev->baseline_source.data = value->str;
        ev->baseline_source.len = value->len;
    }

    if (value == NULL
        || !hh_entry_is_one_of(ev->baseline_source,
                                   writer_baseline_sources))
    {
        return "field \"baseline_source\" is not request, override, builtin "
               "or custom";
    }

    value = hh_entry_field(fields, "hourly_rate");
    if (hh_entry_text_number(value, &ev->hourly_rate) != 0
        || !(ev->hourly_rate >= 0))
    {
        return "field \"hourly_rate\" is not a number >= 0";
    }

    value = hh_entry_field(fields, "currency");
    if (value == NULL || value->len != 3
        || strspn(value->str, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
    {
        return "field \"currency\" is not three capital letters";
    }

    ev->currency.data = value->str;
    ev->currency.len = value->len;

    /* Both prices or neither: empty or absent means the model has none. */
    value = hh_entry_field(fields, "input_price");
    has_input = value != NULL && value->len > 0;

    if (has_input && (hh_entry_text_number(value, &ev->input_price) != 0
                      || !(ev->input_price >= 0)))
    {
        return "field \"input_price\" is not empty or a number >= 0";
    }

    value = hh_entry_field(fields, "output_price");
    has_output = value != NULL && value->len > 0;

    if (has_output
        && (hh_entry_text_number(value, &ev->output_price) != 0
            || !(ev->output_price >= 0)))
    {
        return "field \"output_price\" is not empty or a number >= 0";
    }

    if (has_input != has_output) {
        return "only one of the fields \"input_price\" and \"output_price\" "
               "is set";
    }

    ev->has_prices = has_input;

    return NULL;
}


/* An optional field holding a compact JSON object. */
static const char *
hh_entry_raw_json(const redisReply *value, hh_str_t *raw)
{
    hh_json_result_t  check;

    if (value == NULL) {
        return NULL;
    }

    hh_json_check(value->str, value->len, HH_ENTRY_JSON_DEPTH, &check);

    if (check.status != HH_JSON_OK || value->len == 0
        || value->str[0] != '{')
    {
        return "invalid";
    }

    raw->data = value->str;
    raw->len = value->len;

    return NULL;
}


/* Returns the value of the named field, if it is a string. */
static const redisReply *
hh_entry_field(const redisReply *fields, const char *name)
{
    size_t             i, len;
    const redisReply  *field, *value;

    len = strlen(name);

    for (i = 0; i + 1 < fields->elements; i += 2) {
        field = fields->element[i];
        value = fields->element[i + 1];

        if (field->type == REDIS_REPLY_STRING && field->len == len
            && memcmp(field->str, name, len) == 0)
        {
            return value->type == REDIS_REPLY_STRING ? value : NULL;
        }
    }

    return NULL;
}


/*
 * Reads a finite decimal number as Postgres prints numeric values: digits,
 * a point, a sign and an exponent, nothing that strtod alone would also
 * take, such as "inf", "nan", hexadecimal or leading blanks.
 */
static int
hh_entry_text_number(const redisReply *value, double *number)
{
    char  *end, text[HH_ENTRY_NUMBER_TEXT_MAX];

    if (value == NULL || value->len == 0 || value->len >= sizeof(text)
        || strspn(value->str, "0123456789.+-eE") != value->len)
    {
        return -1;
    }

    memcpy(text, value->str, value->len);
    text[value->len] = '\0';

    *number = strtod(text, &end);

    if (end != text + value->len || !isfinite(*number)) {
        return -1;
    }

    return 0;
}


/* An organisation or key id: a positive integer, as a number or as text. */
static int
hh_entry_json_id(const cJSON *item, int64_t *id)
{
    char       *end;
    long long   n;

    if (cJSON_IsNumber(item)) {
        if (!(item->valuedouble >= 1)
            || item->valuedouble > HH_ENTRY_MAX_EXACT_INTEGER
            || item->valuedouble != floor(item->valuedouble))
        {
            return -1;
        }

        *id = (int64_t) item->valuedouble;
        return 0;
    }

    if (!cJSON_IsString(item) || item->valuestring[0] < '1'
        || item->valuestring[0] > '9'
        || strlen(item->valuestring) > 18)
    {
        return -1;
    }

    n = strtoll(item->valuestring, &end, 10);
    if (*end != '\0') {
        return -1;
    }

    *id = n;

    return 0;
}


/*
 * A token count: absent, null, or a non-negative integer that fits bigint.
 * NOTE: a count above 2^53 reaches the writer rounded to a double, so the
 * stored count and computed cost may differ from the module's in the 16th
 * digit.
 */
static int
hh_entry_json_count(const cJSON *item, uint64_t *count, int *present)
{
    *present = 0;

    if (item == NULL || cJSON_IsNull(item)) {
        return 0;
    }

    if (!cJSON_IsNumber(item) || !(item->valuedouble >= 0)
        || item->valuedouble >= HH_ENTRY_BIGINT_LIMIT
        || item->valuedouble != floor(item->valuedouble))
    {
        return -1;
    }

    *count = (uint64_t) item->valuedouble;
    *present = 1;

    return 0;
}


/* The gate rejected \u0000, so strlen() gives the whole string. */
static int
hh_entry_json_string(const cJSON *item, hh_str_t *str)
{
    if (!cJSON_IsString(item)) {
        return -1;
    }

    str->data = item->valuestring;
    str->len = strlen(item->valuestring);

    return 0;
}


static int
hh_entry_is_one_of(hh_str_t str, const char *const *words)
{
    for ( /* void */ ; *words != NULL; words++) {
        if (strlen(*words) == str.len
            && memcmp(*words, str.data, str.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}
