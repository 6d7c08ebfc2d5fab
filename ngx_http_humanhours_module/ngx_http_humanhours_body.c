/*
 * The body of a track request: read into one buffer, passed through the
 * JSON gate, checked against the field rules, stripped of unknown fields,
 * and turned into the event that the track script queues.
 */

#include "ngx_http_humanhours_module.h"

#include <math.h>
#include <cJSON.h>

#include "hh_json.h"


#define NGX_HH_MAX_DEPTH          9       /* metadata itself is depth 2 */
#define NGX_HH_MAX_METADATA       8192
#define NGX_HH_MAX_EXCERPT        2000
#define NGX_HH_MAX_TOKENS         9007199254740991.0   /* 2^53 - 1 */

/*
 * Durations, costs and baselines stay below 1e15, as the schema requires of
 * stored amounts, so that no derived value of an accepted event overflows.
 */
#define NGX_HH_MAX_AMOUNT         1e15
#define NGX_HH_PAST_WINDOW_MS     (90LL * 86400 * 1000)
#define NGX_HH_FUTURE_WINDOW_MS   (86400LL * 1000)


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_humanhours_ctx_t   *ctx;
    cJSON                       *root;
    const char                  *message;
    ngx_str_t                    field;
    ngx_http_humanhours_err_e    code;
} ngx_http_humanhours_check_t;


static ngx_int_t ngx_http_humanhours_read_body(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx);
static ngx_int_t ngx_http_humanhours_validate(
    ngx_http_humanhours_check_t *check);
static ngx_int_t ngx_http_humanhours_string(ngx_http_humanhours_check_t *check,
    const char *name, size_t max, ngx_uint_t required, hh_str_t *out);
static ngx_int_t ngx_http_humanhours_number(ngx_http_humanhours_check_t *check,
    const char *name, ngx_uint_t positive, ngx_uint_t *present, double *out);
static ngx_int_t ngx_http_humanhours_tokens(ngx_http_humanhours_check_t *check,
    cJSON *object, const char *name, ngx_uint_t *present, uint64_t *out);
static ngx_int_t ngx_http_humanhours_occurred_at(
    ngx_http_humanhours_check_t *check, int64_t now);
static ngx_int_t ngx_http_humanhours_metadata(
    ngx_http_humanhours_check_t *check);
static ngx_int_t ngx_http_humanhours_audit_sample(
    ngx_http_humanhours_check_t *check);
static ngx_int_t ngx_http_humanhours_event_json(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx);
static ngx_int_t ngx_http_humanhours_fail(ngx_http_humanhours_check_t *check,
    ngx_http_humanhours_err_e code, const char *name, const char *message);
static size_t ngx_http_humanhours_utf8_chars(const char *s, size_t len,
    size_t max, size_t *bytes);
static void ngx_http_humanhours_decode_name(ngx_http_request_t *r,
    ngx_str_t *name);
static void ngx_http_humanhours_body_error(ngx_http_request_t *r,
    ngx_http_humanhours_err_e code, const char *message, const char *hint,
    ngx_str_t *field);
static void ngx_http_humanhours_body_error_checked(ngx_http_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_humanhours_find_member(ngx_str_t *body,
    const char *name, ngx_str_t *value);
static u_char *ngx_http_humanhours_skip_value(u_char *p, u_char *last);
static size_t ngx_http_humanhours_compact(u_char *dst, u_char *src,
    size_t len);


void
ngx_http_humanhours_body_handler(ngx_http_request_t *r)
{
    ngx_http_humanhours_ctx_t       *ctx;
    ngx_http_humanhours_loc_conf_t  *hlcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);
    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_humanhours_module);

    if (r->request_body == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ngx_http_humanhours_read_body(r, ctx) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ctx->body.len > hlcf->max_body_size) {
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_PAYLOAD_TOO_LARGE,
            "The request body is larger than this server accepts.",
            NULL, NULL);
        return;
    }

    ngx_http_humanhours_authenticate(r);
}


/* Copies the body into one buffer, from memory or from its temp file. */

static ngx_int_t
ngx_http_humanhours_read_body(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx)
{
    off_t         len;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    ctx->body.len = len;

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->body.data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "humanhours: reading the request body from "
                          "\"%V\" failed", &b->file->name);
            return NGX_ERROR;
        }

        p += n;
    }

    *p = '\0';

    return NGX_OK;
}


void
ngx_http_humanhours_process_body(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    hh_json_result_t              gate;
    ngx_http_humanhours_ctx_t    *ctx;
    ngx_http_humanhours_check_t   check;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    hh_json_check((char *) ctx->body.data, ctx->body.len, NGX_HH_MAX_DEPTH,
                  &gate);

    if (gate.status == HH_JSON_INVALID) {
        ngx_http_humanhours_body_error(r, NGX_HH_ERR_INVALID_JSON,
            "The request body is not valid JSON.", gate.reason, NULL);
        return;
    }

    ngx_memzero(&check, sizeof(ngx_http_humanhours_check_t));
    check.request = r;
    check.ctx = ctx;

    if (gate.status == HH_JSON_UNSTORABLE) {
        check.field.data = (u_char *) gate.field.data;
        check.field.len = gate.field.len;

        if (gate.field.data != NULL) {
            ngx_http_humanhours_decode_name(r, &check.field);
        }

        ngx_http_humanhours_body_error(r, NGX_HH_ERR_VALIDATION_ERROR,
            "The request body contains a value that cannot be stored.",
            gate.reason, gate.field.data ? &check.field : NULL);
        return;
    }

    check.root = cJSON_ParseWithLength((char *) ctx->body.data,
                                       ctx->body.len);
    if (check.root == NULL) {
        ngx_http_humanhours_body_error(r, NGX_HH_ERR_INVALID_JSON,
            "The request body is not valid JSON.", NULL, NULL);
        return;
    }

    rc = ngx_http_humanhours_validate(&check);

    cJSON_Delete(check.root);

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_humanhours_body_error(r, check.code, check.message,
            NULL, check.field.len ? &check.field : NULL);
        return;
    }

    ngx_http_humanhours_queue_event(r);
}


/*
 * Returns NGX_OK with the event filled in, NGX_DECLINED with the error in
 * check, or NGX_ERROR when memory ran out.
 */

static ngx_int_t
ngx_http_humanhours_validate(ngx_http_humanhours_check_t *check)
{
    ngx_int_t                   rc;
    ngx_uint_t                  present, in, out;
    ngx_time_t                 *tp;
    hh_event_t                 *ev;
    int64_t                     now;
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = check->ctx;
    ev = &ctx->event;

    if (!cJSON_IsObject(check->root)) {
        check->code = NGX_HH_ERR_VALIDATION_ERROR;
        check->message = "The request body must be a JSON object.";
        return NGX_DECLINED;
    }

    if (ngx_http_humanhours_string(check, "agent_id", 128, 1, &ev->agent_id)
        != NGX_OK
        || ngx_http_humanhours_string(check, "task_type", 64, 1,
                                      &ev->task_type)
           != NGX_OK
        || ngx_http_humanhours_string(check, "outcome", 16, 1, &ev->outcome)
           != NGX_OK
        || ngx_http_humanhours_string(check, "model", 128, 0, &ev->model)
           != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (ev->task_type.data[0] < 'a' || ev->task_type.data[0] > 'z') {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   "task_type", "task_type must be lowercase snake_case.");
    }

    for (in = 0; in < ev->task_type.len; in++) {
        u_char c = ev->task_type.data[in];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return ngx_http_humanhours_fail(check,
                       NGX_HH_ERR_VALIDATION_ERROR, "task_type",
                       "task_type must be lowercase snake_case.");
        }
    }

    if (!(ngx_strcmp(ev->outcome.data, "success") == 0
          || ngx_strcmp(ev->outcome.data, "failure") == 0
          || ngx_strcmp(ev->outcome.data, "needs_review") == 0))
    {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   "outcome",
                   "outcome must be success, failure or needs_review.");
    }

    if (ngx_http_humanhours_number(check, "agent_duration_seconds", 0,
                                   &present, &ev->agent_duration_seconds)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_humanhours_number(check, "agent_cost", 0, &present,
                                   &ev->agent_cost)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ev->has_agent_cost = present;

    if (ngx_http_humanhours_number(check, "human_baseline_minutes", 1,
                                   &present, &ev->baseline_minutes)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (present) {
        ctx->baseline.data = ngx_pnalloc(check->request->pool, 32);
        if (ctx->baseline.data == NULL) {
            return NGX_ERROR;
        }

        ctx->baseline.len = snprintf((char *) ctx->baseline.data, 32,
                                     "%.17g", ev->baseline_minutes);
    }

    if (ngx_http_humanhours_tokens(check, check->root, "tokens_in", &in,
                                   &ev->tokens_in)
        != NGX_OK
        || ngx_http_humanhours_tokens(check, check->root, "tokens_out", &out,
                                      &ev->tokens_out)
           != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ctx->has_tokens_in = in;
    ctx->has_tokens_out = out;
    ev->has_tokens = (in && out);

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    hh_timestamp_format(now, (char *) ctx->received_at);

    if (ngx_http_humanhours_occurred_at(check, now) != NGX_OK) {
        return NGX_DECLINED;
    }

    rc = ngx_http_humanhours_metadata(check);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_humanhours_audit_sample(check);
    if (rc != NGX_OK) {
        return rc;
    }

    hh_event_id_generate(now, ev->event_id);

    return ngx_http_humanhours_event_json(check->request, ctx);
}


/* A string member of at most max characters; copied into the pool. */

static ngx_int_t
ngx_http_humanhours_string(ngx_http_humanhours_check_t *check,
    const char *name, size_t max, ngx_uint_t required, hh_str_t *out)
{
    size_t   len, chars;
    u_char  *copy;
    cJSON   *item;

    item = cJSON_GetObjectItemCaseSensitive(check->root, name);

    if (item == NULL || cJSON_IsNull(item)) {
        if (required) {
            return ngx_http_humanhours_fail(check,
                       NGX_HH_ERR_VALIDATION_ERROR, name,
                       "A required field is missing.");
        }

        out->data = NULL;
        out->len = 0;
        return NGX_OK;
    }

    if (!cJSON_IsString(item)) {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   name, "This field must be a string.");
    }

    /* cJSON stops at a NUL, but the gate has already refused \u0000 */
    len = ngx_strlen(item->valuestring);
    chars = ngx_http_humanhours_utf8_chars(item->valuestring, len, max + 1,
                                           NULL);

    if (chars == 0 || chars > max) {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   name, "This field is empty or too long.");
    }

    copy = ngx_pnalloc(check->request->pool, len + 1);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(copy, item->valuestring, len + 1);

    out->data = (char *) copy;
    out->len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_humanhours_number(ngx_http_humanhours_check_t *check,
    const char *name, ngx_uint_t positive, ngx_uint_t *present, double *out)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(check->root, name);

    *present = 0;
    *out = 0;

    if (item == NULL || cJSON_IsNull(item)) {
        return NGX_OK;
    }

    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)
        || item->valuedouble < 0
        || item->valuedouble >= NGX_HH_MAX_AMOUNT
        || (positive && item->valuedouble == 0))
    {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   name, positive ? "This field must be a number above 0 "
                                    "and below 1e15."
                                  : "This field must be a number of 0 "
                                    "or more and below 1e15.");
    }

    *present = 1;
    *out = item->valuedouble;

    return NGX_OK;
}


static ngx_int_t
ngx_http_humanhours_tokens(ngx_http_humanhours_check_t *check,
    cJSON *object, const char *name, ngx_uint_t *present, uint64_t *out)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(object, name);

    *present = 0;
    *out = 0;

    if (item == NULL || cJSON_IsNull(item)) {
        return NGX_OK;
    }

    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)
        || item->valuedouble < 0
        || item->valuedouble > NGX_HH_MAX_TOKENS
        || floor(item->valuedouble) != item->valuedouble)
    {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   object == check->root ? name : "audit_sample",
                   "Token counts must be non-negative integers.");
    }

    *present = 1;
    *out = (uint64_t) item->valuedouble;

    return NGX_OK;
}


static ngx_int_t
ngx_http_humanhours_occurred_at(ngx_http_humanhours_check_t *check,
    int64_t now)
{
    cJSON       *item;
    int64_t      ms;
    hh_event_t  *ev;

    ev = &check->ctx->event;
    ev->occurred_at_ms = now;

    item = cJSON_GetObjectItemCaseSensitive(check->root, "occurred_at");

    if (item == NULL || cJSON_IsNull(item)) {
        return NGX_OK;
    }

    if (!cJSON_IsString(item)
        || hh_timestamp_parse(item->valuestring,
                              ngx_strlen(item->valuestring), &ms)
           != 0)
    {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   "occurred_at",
                   "occurred_at must be an RFC 3339 timestamp.");
    }

    if (ms < now - NGX_HH_PAST_WINDOW_MS || ms > now + NGX_HH_FUTURE_WINDOW_MS)
    {
        return ngx_http_humanhours_fail(check,
                   NGX_HH_ERR_OCCURRED_AT_OUT_OF_RANGE, "occurred_at",
                   "occurred_at must be within the last 90 days and "
                   "the next 24 hours.");
    }

    ev->occurred_at_ms = ms;

    return NGX_OK;
}


/*
 * metadata is kept as the client wrote it, only without white space, since
 * a round trip through cJSON's doubles would change large numbers.
 */

static ngx_int_t
ngx_http_humanhours_metadata(ngx_http_humanhours_check_t *check)
{
    cJSON                      *item;
    ngx_str_t                   raw;
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = check->ctx;

    item = cJSON_GetObjectItemCaseSensitive(check->root, "metadata");

    if (item == NULL || cJSON_IsNull(item)) {
        return NGX_OK;
    }

    if (!cJSON_IsObject(item)) {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   "metadata", "metadata must be a JSON object.");
    }

    if (ngx_http_humanhours_find_member(&ctx->body, "metadata", &raw)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, check->request->connection->log, 0,
                      "humanhours: metadata parsed but not found in the "
                      "body, key prefix %s", ctx->parts.prefix);
        return NGX_ERROR;
    }

    ctx->metadata.data = ngx_pnalloc(check->request->pool, raw.len + 1);
    if (ctx->metadata.data == NULL) {
        return NGX_ERROR;
    }

    ctx->metadata.len = ngx_http_humanhours_compact(ctx->metadata.data,
                                                    raw.data, raw.len);
    ctx->metadata.data[ctx->metadata.len] = '\0';

    if (ctx->metadata.len > NGX_HH_MAX_METADATA) {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   "metadata", "metadata must be at most 8 KiB compacted.");
    }

    return NGX_OK;
}


/*
 * The audit sample keeps only its known fields, with the excerpts cut to
 * 2000 characters. Whether the plan keeps it is decided in Redis.
 */

static ngx_int_t
ngx_http_humanhours_audit_sample(ngx_http_humanhours_check_t *check)
{
    u_char                     *p;
    size_t                      len, bytes;
    cJSON                      *item, *field;
    uint64_t                    tokens[2];
    ngx_uint_t                  i, present[2];
    ngx_http_humanhours_ctx_t  *ctx;

    static const char  *strings[] = {
        "input_excerpt", "output_excerpt", "model"
    };
    static const char  *counts[] = { "tokens_in", "tokens_out" };

    ctx = check->ctx;

    item = cJSON_GetObjectItemCaseSensitive(check->root, "audit_sample");

    if (item == NULL || cJSON_IsNull(item)) {
        return NGX_OK;
    }

    if (!cJSON_IsObject(item)) {
        return ngx_http_humanhours_fail(check, NGX_HH_ERR_VALIDATION_ERROR,
                   "audit_sample", "audit_sample must be a JSON object.");
    }

    len = sizeof("{}") - 1 + 2 * (sizeof(",\"tokens_out\":") + NGX_INT64_LEN);

    for (i = 0; i < 3; i++) {
        field = cJSON_GetObjectItemCaseSensitive(item, strings[i]);

        if (field == NULL || cJSON_IsNull(field)) {
            continue;
        }

        if (!cJSON_IsString(field)) {
            return ngx_http_humanhours_fail(check,
                       NGX_HH_ERR_VALIDATION_ERROR, "audit_sample",
                       "Excerpts and model in audit_sample must be "
                       "strings.");
        }

        len += sizeof(",\"output_excerpt\":\"\"")
               + 6 * ngx_strlen(field->valuestring);
    }

    for (i = 0; i < 2; i++) {
        if (ngx_http_humanhours_tokens(check, item, counts[i], &present[i],
                                       &tokens[i])
            != NGX_OK)
        {
            return NGX_DECLINED;
        }
    }

    p = ngx_pnalloc(check->request->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->audit_sample.data = p;
    *p++ = '{';

    for (i = 0; i < 3; i++) {
        field = cJSON_GetObjectItemCaseSensitive(item, strings[i]);

        if (field == NULL || cJSON_IsNull(field)) {
            continue;
        }

        bytes = ngx_strlen(field->valuestring);

        if (i < 2) {
            /* cut after 2000 characters, never inside a UTF-8 sequence */
            (void) ngx_http_humanhours_utf8_chars(field->valuestring, bytes,
                                                  NGX_HH_MAX_EXCERPT, &bytes);
        }

        if (p - ctx->audit_sample.data > 1) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "\"%s\":\"", strings[i]);
        p = ngx_http_humanhours_escape_json(p, (u_char *) field->valuestring,
                                            bytes);
        *p++ = '"';
    }

    for (i = 0; i < 2; i++) {
        if (!present[i]) {
            continue;
        }

        if (p - ctx->audit_sample.data > 1) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "\"%s\":%uL", counts[i], tokens[i]);
    }

    *p++ = '}';
    *p = '\0';
    ctx->audit_sample.len = p - ctx->audit_sample.data;

    return NGX_OK;
}


/* Writes the "event" field of the stream entry (docs/internals.md). */

static ngx_int_t
ngx_http_humanhours_event_json(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx)
{
    u_char      *p;
    size_t       len;
    hh_str_t     key_id;
    hh_event_t  *ev;
    char         occurred_at[HH_TIMESTAMP_LEN + 1];

    ev = &ctx->event;

    ngx_sprintf(ctx->key_id_text, "%L%Z", ctx->key_id);
    ngx_sprintf(ctx->org_id_text, "%L%Z", ctx->org_id);

    key_id.data = (char *) ctx->key_id_text;
    key_id.len = ngx_strlen(ctx->key_id_text);

    hh_fingerprint(ev->agent_id, ev->task_type, ev->model, key_id,
                   ctx->fingerprint);

    hh_timestamp_format(ev->occurred_at_ms, occurred_at);

    len = 512 + 6 * (ev->agent_id.len + ev->task_type.len + ev->model.len);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->event_json.data = p;

    p = ngx_sprintf(p, "{\"event_id\":\"%s\",\"org_id\":%L,\"key_id\":%L,"
                    "\"test\":%s,\"agent_id\":\"",
                    ev->event_id, ctx->org_id, ctx->key_id,
                    ctx->test ? "true" : "false");
    p = ngx_http_humanhours_escape_json(p, (u_char *) ev->agent_id.data,
                                        ev->agent_id.len);
    p = ngx_cpymem(p, "\",\"task_type\":\"", sizeof("\",\"task_type\":\"") - 1);
    p = ngx_http_humanhours_escape_json(p, (u_char *) ev->task_type.data,
                                        ev->task_type.len);
    p = ngx_sprintf(p, "\",\"outcome\":\"%s\",\"agent_duration_seconds\":",
                    ev->outcome.data);
    p += snprintf((char *) p, 32, "%.17g", ev->agent_duration_seconds);

    p = ngx_cpymem(p, ",\"agent_cost\":", sizeof(",\"agent_cost\":") - 1);

    if (ev->has_agent_cost) {
        p += snprintf((char *) p, 32, "%.17g", ev->agent_cost);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_cpymem(p, ",\"model\":", sizeof(",\"model\":") - 1);

    if (ev->model.data) {
        *p++ = '"';
        p = ngx_http_humanhours_escape_json(p, (u_char *) ev->model.data,
                                            ev->model.len);
        *p++ = '"';

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    if (ctx->has_tokens_in) {
        p = ngx_sprintf(p, ",\"tokens_in\":%uL", ev->tokens_in);

    } else {
        p = ngx_cpymem(p, ",\"tokens_in\":null",
                       sizeof(",\"tokens_in\":null") - 1);
    }

    if (ctx->has_tokens_out) {
        p = ngx_sprintf(p, ",\"tokens_out\":%uL", ev->tokens_out);

    } else {
        p = ngx_cpymem(p, ",\"tokens_out\":null",
                       sizeof(",\"tokens_out\":null") - 1);
    }

    p = ngx_sprintf(p, ",\"occurred_at\":\"%s\",\"received_at\":\"%s\","
                    "\"fingerprint\":\"%s\"}",
                    occurred_at, ctx->received_at, ctx->fingerprint);
    *p = '\0';

    ctx->event_json.len = p - ctx->event_json.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_humanhours_fail(ngx_http_humanhours_check_t *check,
    ngx_http_humanhours_err_e code, const char *name, const char *message)
{
    check->code = code;
    check->message = message;
    check->field.data = (u_char *) name;
    check->field.len = ngx_strlen(name);

    return NGX_DECLINED;
}


/*
 * Refuses a body, unless the key was revoked after the cache verified it:
 * the key is checked before the body, so a revoked key gets key_revoked
 * whatever its body. A key verified by this request read its record
 * moments ago. A cached one is looked up once more, which costs a Redis
 * round trip on this error path only.
 */

static void
ngx_http_humanhours_body_error(ngx_http_request_t *r,
    ngx_http_humanhours_err_e code, const char *message, const char *hint,
    ngx_str_t *field)
{
    ngx_http_humanhours_ctx_t  *ctx;

    u_char       name[sizeof("hh:key:") - 1 + HH_KEY_PREFIX_LEN];
    const char  *argv[3];
    size_t       argvlen[3];

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (ctx->verified) {
        ngx_http_humanhours_finalize_error(r, code, message, hint, field);
        return;
    }

    ctx->error_code = code;
    ctx->error_message = message;
    ctx->error_hint = hint;

    if (field != NULL) {
        ctx->error_field = *field;
    }

    ngx_memcpy(name, "hh:key:", sizeof("hh:key:") - 1);
    ngx_memcpy(name + sizeof("hh:key:") - 1, ctx->parts.prefix,
               HH_KEY_PREFIX_LEN);

    argv[0] = "HGET";
    argvlen[0] = sizeof("HGET") - 1;
    argv[1] = (char *) name;
    argvlen[1] = sizeof(name);
    argv[2] = "revoked";
    argvlen[2] = sizeof("revoked") - 1;

    if (ngx_http_humanhours_redis_command(r,
                                    ngx_http_humanhours_body_error_checked,
                                    3, argv, argvlen)
        != NGX_OK)
    {
        /* without Redis the body error is the best response there is */
        ngx_http_humanhours_finalize_error(r, code, message, hint, field);
    }
}


static void
ngx_http_humanhours_body_error_checked(ngx_http_request_t *r,
    redisReply *reply)
{
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (reply != NULL && reply->type == REDIS_REPLY_STRING
        && reply->len == 1 && reply->str[0] == '1')
    {
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_KEY_REVOKED,
            "The API key was revoked.",
            "Create a new key and replace the revoked one.", NULL);
        return;
    }

    ngx_http_humanhours_finalize_error(r, ctx->error_code,
        ctx->error_message, ctx->error_hint,
        ctx->error_field.len ? &ctx->error_field : NULL);
}


/*
 * Decodes the escapes of a member name as written in the body, so that the
 * error names "agent_id" for "agent\u005fid". A name that does not decode
 * to clean text, such as one with \u0000, is left as written.
 */

static void
ngx_http_humanhours_decode_name(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char  *quoted, *p;
    size_t   len;
    cJSON   *decoded;

    if (ngx_strlchr(name->data, name->data + name->len, '\\') == NULL
        || ngx_strlcasestrn(name->data, name->data + name->len,
                            (u_char *) "\\u0000", 6 - 1)
           != NULL)
    {
        /* cJSON would cut the name at an escaped NUL */
        return;
    }

    quoted = ngx_pnalloc(r->pool, name->len + 2);
    if (quoted == NULL) {
        return;
    }

    p = quoted;
    *p++ = '"';
    p = ngx_cpymem(p, name->data, name->len);
    *p++ = '"';

    decoded = cJSON_ParseWithLength((char *) quoted, p - quoted);

    if (decoded != NULL && cJSON_IsString(decoded)) {
        len = ngx_strlen(decoded->valuestring);

        if (len > 0) {
            ngx_memcpy(quoted, decoded->valuestring, len);
            name->data = quoted;
            name->len = len;
        }
    }

    cJSON_Delete(decoded);
}


/*
 * Counts the characters of valid UTF-8 text, stopping after max of them;
 * bytes, when given, receives the length of those first max characters.
 */

static size_t
ngx_http_humanhours_utf8_chars(const char *s, size_t len, size_t max,
    size_t *bytes)
{
    size_t  i, chars;

    chars = 0;

    for (i = 0; i < len; i++) {
        if (((u_char) s[i] & 0xc0) == 0x80) {
            continue;
        }

        if (chars == max) {
            break;
        }

        chars++;
    }

    if (bytes) {
        *bytes = i;
    }

    return chars;
}


/*
 * Finds the raw value of a top-level member in a body that the gate
 * accepted as an object. Member names with escapes are compared decoded
 * only in the simple case of escaped ASCII, which is all a name we look
 * for can contain.
 */

static ngx_int_t
ngx_http_humanhours_find_member(ngx_str_t *body, const char *name,
    ngx_str_t *value)
{
    u_char     *p, *last, *start, *q, c;
    size_t      n;
    ngx_int_t   match;

    p = body->data;
    last = p + body->len;

    while (p < last && *p != '{') {
        p++;
    }

    p++;

    while (p < last) {

        while (p < last && *p != '"' && *p != '}') {
            p++;
        }

        if (p >= last || *p == '}') {
            return NGX_DECLINED;
        }

        /* the member name */

        p++;
        n = 0;
        match = 1;

        while (p < last && *p != '"') {
            c = *p++;

            if (c == '\\') {
                c = *p++;

                if (c == 'u') {
                    c = (u_char) ngx_hextoi(p, 4);
                    p += 4;

                } else if (c == 'n' || c == 't' || c == 'r' || c == 'b'
                           || c == 'f')
                {
                    c = 0;
                }
            }

            if (name[n] == '\0' || name[n] != (char) c) {
                match = 0;

            } else {
                n++;
            }
        }

        if (name[n] != '\0') {
            match = 0;
        }

        for (p++; p < last && *p != ':'; p++) { /* void */ }

        for (p++; p < last && (*p == ' ' || *p == '\t' || *p == '\r'
                               || *p == '\n'); p++)
        {
            /* void */
        }

        start = p;
        q = ngx_http_humanhours_skip_value(p, last);

        if (match) {
            value->data = start;
            value->len = q - start;
            return NGX_OK;
        }

        p = q;

        while (p < last && *p != ',' && *p != '}') {
            p++;
        }

        if (p >= last || *p == '}') {
            return NGX_DECLINED;
        }

        p++;
    }

    return NGX_DECLINED;
}


/* Returns the end of the JSON value at p, which the gate accepted. */

static u_char *
ngx_http_humanhours_skip_value(u_char *p, u_char *last)
{
    ngx_uint_t  depth, in_string;

    depth = 0;
    in_string = 0;

    for ( /* void */ ; p < last; p++) {

        if (in_string) {
            if (*p == '\\') {
                p++;

            } else if (*p == '"') {
                in_string = 0;

                if (depth == 0) {
                    return p + 1;
                }
            }

            continue;
        }

        switch (*p) {

        case '"':
            in_string = 1;
            break;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (depth == 0) {
                return p;
            }

            if (--depth == 0) {
                return p + 1;
            }

            break;

        case ',':
            if (depth == 0) {
                return p;
            }

            break;

        case ' ':
        case '\t':
        case '\r':
        case '\n':
            if (depth == 0) {
                return p;
            }

            break;
        }
    }

    return p;
}


/* Copies JSON text without the white space outside strings. */

static size_t
ngx_http_humanhours_compact(u_char *dst, u_char *src, size_t len)
{
    u_char      *d, *last;
    ngx_uint_t   in_string;

    d = dst;
    last = src + len;
    in_string = 0;

    for ( /* void */ ; src < last; src++) {

        if (in_string) {
            *d++ = *src;

            if (*src == '\\') {
                *d++ = *++src;

            } else if (*src == '"') {
                in_string = 0;
            }

            continue;
        }

        if (*src == ' ' || *src == '\t' || *src == '\r' || *src == '\n') {
            continue;
        }

        if (*src == '"') {
            in_string = 1;
        }

        *d++ = *src;
    }

    return d - dst;
}
