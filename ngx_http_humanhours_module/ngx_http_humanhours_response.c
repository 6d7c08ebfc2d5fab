/*
 * Responses of the API locations: the JSON error shape of the API for every
 * refusal, the 201 with the computed event, and filters that turn the HTML
 * error pages nginx itself sends in those locations into the JSON shape.
 */

#include "ngx_http_humanhours_module.h"


typedef struct {
    ngx_uint_t   status;
    ngx_str_t    code;
} ngx_http_humanhours_error_t;


static ngx_int_t ngx_http_humanhours_send_event(ngx_http_request_t *r,
    ngx_uint_t status);
static ngx_int_t ngx_http_humanhours_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_humanhours_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_http_humanhours_err_e ngx_http_humanhours_status_code(
    ngx_uint_t status, ngx_str_t *name, const char **message);
static ngx_int_t ngx_http_humanhours_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_buf_t *b);
static ngx_int_t ngx_http_humanhours_until_next_month(ngx_http_request_t *r,
    ngx_str_t *value);
static time_t ngx_http_humanhours_days_from_civil(ngx_int_t year,
    ngx_int_t month);


/* Indexed by ngx_http_humanhours_err_e. */
static ngx_http_humanhours_error_t  ngx_http_humanhours_errors[] = {
    { 401, ngx_string("missing_authorization") },
    { 401, ngx_string("invalid_api_key") },
    { 401, ngx_string("key_revoked") },
    { 403, ngx_string("https_required") },
    { 403, ngx_string("feature_locked") },
    { 405, ngx_string("method_not_allowed") },
    { 413, ngx_string("payload_too_large") },
    { 415, ngx_string("unsupported_media_type") },
    { 400, ngx_string("invalid_json") },
    { 422, ngx_string("validation_error") },
    { 422, ngx_string("unknown_task_type") },
    { 422, ngx_string("occurred_at_out_of_range") },
    { 422, ngx_string("idempotency_key_reused") },
    { 429, ngx_string("rate_limited") },
    { 429, ngx_string("quota_exceeded") },
    { 503, ngx_string("unavailable") },
    { 500, ngx_string("internal") }
};


ngx_int_t
ngx_http_humanhours_send_error(ngx_http_request_t *r,
    ngx_http_humanhours_err_e code, const char *message, const char *hint,
    ngx_str_t *field)
{
    size_t                        len;
    u_char                       *p;
    ngx_buf_t                    *b;
    ngx_table_elt_t              *h;
    ngx_http_humanhours_ctx_t    *ctx;
    ngx_http_humanhours_error_t  *err;

    err = &ngx_http_humanhours_errors[code];

    ngx_http_humanhours_stat_rejected(code);

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (ctx != NULL && ctx->parts.prefix[0] != '\0') {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "humanhours: rejected with %V, key prefix %s",
                      &err->code, ctx->parts.prefix);

    } else {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "humanhours: rejected with %V", &err->code);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    len = sizeof("{\"error\":{\"code\":\"\",\"message\":\"\"}}") - 1
          + err->code.len + 6 * ngx_strlen(message);

    if (hint != NULL) {
        len += sizeof(",\"hint\":\"\"") - 1 + 6 * ngx_strlen(hint);
    }

    if (field != NULL) {
        len += sizeof(",\"field\":\"\"") - 1 + 6 * field->len;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(b->last, "{\"error\":{\"code\":\"%V\",\"message\":\"",
                    &err->code);
    p = ngx_http_humanhours_escape_json(p, (u_char *) message,
                                        ngx_strlen(message));
    *p++ = '"';

    if (hint != NULL) {
        p = ngx_cpymem(p, ",\"hint\":\"", sizeof(",\"hint\":\"") - 1);
        p = ngx_http_humanhours_escape_json(p, (u_char *) hint,
                                            ngx_strlen(hint));
        *p++ = '"';
    }

    if (field != NULL) {
        p = ngx_cpymem(p, ",\"field\":\"", sizeof(",\"field\":\"") - 1);
        p = ngx_http_humanhours_escape_json(p, field->data, field->len);
        *p++ = '"';
    }

    *p++ = '}';
    *p++ = '}';
    b->last = p;

    if (err->status == 503 || err->status == 429) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        ngx_str_set(&h->value, "1");

        if (code == NGX_HH_ERR_QUOTA_EXCEEDED) {
            if (ngx_http_humanhours_until_next_month(r, &h->value) != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }
    }

    return ngx_http_humanhours_send_json(r, err->status, b);
}


/* Writes the seconds until the first of next month, 00:00 UTC. */

static ngx_int_t
ngx_http_humanhours_until_next_month(ngx_http_request_t *r, ngx_str_t *value)
{
    time_t    now, next;
    ngx_tm_t  tm;

    now = ngx_time();
    ngx_gmtime(now, &tm);

    /* ngx_gmtime() counts months from 1 and years in full */
    tm.ngx_tm_mon++;

    if (tm.ngx_tm_mon > 12) {
        tm.ngx_tm_mon = 1;
        tm.ngx_tm_year++;
    }

    next = ngx_http_humanhours_days_from_civil(tm.ngx_tm_year, tm.ngx_tm_mon)
           * 86400;

    value->data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    value->len = ngx_sprintf(value->data, "%T", next - now) - value->data;

    return NGX_OK;
}


/* Days from 1970-01-01 to the first of a month (Howard Hinnant's method). */

static time_t
ngx_http_humanhours_days_from_civil(ngx_int_t year, ngx_int_t month)
{
    ngx_int_t  era, yoe, doy, doe;

    year -= (month <= 2);
    era = (year >= 0 ? year : year - 399) / 400;
    yoe = year - era * 400;
    doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


void
ngx_http_humanhours_finalize_error(ngx_http_request_t *r,
    ngx_http_humanhours_err_e code, const char *message, const char *hint,
    ngx_str_t *field)
{
    ngx_http_finalize_request(r,
        ngx_http_humanhours_send_error(r, code, message, hint, field));
}


void
ngx_http_humanhours_finalize_event(ngx_http_request_t *r)
{
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    hh_event_compute(&ctx->event);

    ngx_http_humanhours_stat_add(NGX_HH_STAT_ACCEPTED, 1);

    ngx_http_finalize_request(r,
        ngx_http_humanhours_send_event(r, NGX_HTTP_CREATED));
}


/* Sends the stored event again; its derived values are already computed. */

void
ngx_http_humanhours_finalize_replay(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Idempotent-Replayed");
    ngx_str_set(&h->value, "true");

    ngx_http_humanhours_stat_add(NGX_HH_STAT_REPLAYED, 1);

    ngx_http_finalize_request(r,
        ngx_http_humanhours_send_event(r, NGX_HTTP_OK));
}


static ngx_int_t
ngx_http_humanhours_send_event(ngx_http_request_t *r, ngx_uint_t status)
{
    size_t                      size, len;
    ngx_buf_t                  *b;
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    size = hh_event_response_max(&ctx->event);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = hh_event_render_response(&ctx->event, (char *) b->pos, size);

    if (len >= size) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "humanhours: response of event %s does not fit "
                      "in %uz bytes", ctx->event.event_id, size);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = b->pos + len;

    return ngx_http_humanhours_send_json(r, status, b);
}


static ngx_int_t
ngx_http_humanhours_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b)
{
    ngx_int_t         rc;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    /* API responses describe one moment and one key, so none is cached */

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * Escapes text for a JSON string; p needs room for 6 bytes per byte of src.
 * UTF-8 sequences pass unchanged.
 */

u_char *
ngx_http_humanhours_escape_json(u_char *p, u_char *src, size_t len)
{
    u_char  c;

    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        c = *src++;

        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = c;

        } else if (c < 0x20 || c == 0x7f) {
            *p++ = '\\';
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];

        } else {
            *p++ = c;
        }
    }

    return p;
}


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_humanhours_init_filters(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_humanhours_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_humanhours_body_filter;

    return NGX_OK;
}


/*
 * nginx sends an HTML page for some errors itself: a body over
 * client_max_body_size, a broken chunked body, a timeout, an access rule.
 * In an API location the page is replaced by the JSON error shape; what
 * the module sends is JSON already and passes unchanged.
 */

static ngx_int_t
ngx_http_humanhours_header_filter(ngx_http_request_t *r)
{
    size_t                           len;
    ngx_str_t                        name;
    ngx_buf_t                       *b;
    const char                      *message;
    ngx_http_humanhours_err_e        code;
    ngx_http_humanhours_ctx_t       *ctx;
    ngx_http_humanhours_loc_conf_t  *hlcf;

    static ngx_str_t  json = ngx_string("application/json");

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_humanhours_module);

    if (!hlcf->api || r != r->main || r->headers_out.status < 400
        || (r->headers_out.content_type.len >= json.len
            && ngx_strncmp(r->headers_out.content_type.data, json.data,
                           json.len) == 0))
    {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_humanhours_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_humanhours_module);
    }

    code = ngx_http_humanhours_status_code(r->headers_out.status, &name,
                                           &message);

    if (code != NGX_HH_ERR_COUNT) {
        name = ngx_http_humanhours_errors[code].code;
        ngx_http_humanhours_stat_rejected(code);
    }

    len = sizeof("{\"error\":{\"code\":\"\",\"message\":\"\"}}") - 1
          + name.len + ngx_strlen(message);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last,
                          "{\"error\":{\"code\":\"%V\",\"message\":\"%s\"}}",
                          &name, message);
    b->last_buf = 1;
    b->last_in_chain = 1;

    ctx->json_error = 1;
    ctx->error_page = b;

    r->headers_out.content_length_n = b->last - b->pos;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_humanhours_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                  *b;
    ngx_chain_t                 out, *cl;
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (ctx == NULL || !ctx->json_error) {
        return ngx_http_next_body_filter(r, in);
    }

    /* the HTML page is dropped, and the JSON error is sent once */

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    b = ctx->error_page;

    if (b == NULL) {
        return NGX_OK;
    }

    ctx->error_page = NULL;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


/*
 * Returns the API error code for a status that nginx set by itself,
 * or NGX_HH_ERR_COUNT with a code of its own in name for statuses that the
 * API has no code for. The messages contain no quote or backslash.
 */

static ngx_http_humanhours_err_e
ngx_http_humanhours_status_code(ngx_uint_t status, ngx_str_t *name,
    const char **message)
{
    switch (status) {

    case NGX_HTTP_NOT_ALLOWED:
        *message = "This method is not allowed here.";
        return NGX_HH_ERR_METHOD_NOT_ALLOWED;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        *message = "The request body is larger than this server accepts.";
        return NGX_HH_ERR_PAYLOAD_TOO_LARGE;

    case NGX_HTTP_UNSUPPORTED_MEDIA_TYPE:
        *message = "The request body must be JSON.";
        return NGX_HH_ERR_UNSUPPORTED_MEDIA_TYPE;

    case 429:
        *message = "Too many requests; retry later.";
        return NGX_HH_ERR_RATE_LIMITED;

    case NGX_HTTP_BAD_GATEWAY:
    case NGX_HTTP_SERVICE_UNAVAILABLE:
    case NGX_HTTP_GATEWAY_TIME_OUT:
        *message = "The service is unavailable; retry later.";
        return NGX_HH_ERR_UNAVAILABLE;

    case NGX_HTTP_BAD_REQUEST:
        ngx_str_set(name, "bad_request");
        *message = "The HTTP request is malformed, for example its chunked "
                   "body encoding.";
        break;

    case NGX_HTTP_FORBIDDEN:
        ngx_str_set(name, "forbidden");
        *message = "Access to this address is denied.";
        break;

    case NGX_HTTP_NOT_FOUND:
        ngx_str_set(name, "not_found");
        *message = "Nothing is served at this address.";
        break;

    case NGX_HTTP_REQUEST_TIME_OUT:
        ngx_str_set(name, "request_timeout");
        *message = "The request was not received in time.";
        break;

    case NGX_HTTP_LENGTH_REQUIRED:
        ngx_str_set(name, "length_required");
        *message = "The request needs a Content-Length or a chunked body.";
        break;

    case NGX_HTTP_REQUEST_URI_TOO_LARGE:
        ngx_str_set(name, "uri_too_long");
        *message = "The request URI is too long.";
        break;

    case NGX_HTTP_REQUEST_HEADER_TOO_LARGE:
        ngx_str_set(name, "headers_too_large");
        *message = "The request headers are too large.";
        break;

    default:
        if (status >= 500) {
            *message = "The server failed to process the request.";
            return NGX_HH_ERR_INTERNAL;
        }

        ngx_str_set(name, "bad_request");
        *message = "The request cannot be served.";
        break;
    }

    return NGX_HH_ERR_COUNT;
}
