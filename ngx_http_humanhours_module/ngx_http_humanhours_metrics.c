/*
 * Counters shared by all workers, and the metrics location that serves them
 * in Prometheus text format.
 */

#include "ngx_http_humanhours_module.h"


static ngx_http_humanhours_shctx_t *ngx_http_humanhours_metrics_shctx(void);


static ngx_str_t  ngx_http_humanhours_stat_names[] = {
    ngx_string("humanhours_events_accepted_total"),
    ngx_string("humanhours_events_replayed_total"),
    ngx_string("humanhours_key_cache_hits_total"),
    ngx_string("humanhours_key_cache_misses_total"),
    ngx_string("humanhours_argon2id_verifications_total"),
    ngx_string("humanhours_argon2id_failures_total"),
    ngx_string("humanhours_key_throttled_total"),
    ngx_string("humanhours_key_cache_evictions_total"),
    ngx_string("humanhours_redis_errors_total"),
    ngx_string("humanhours_redis_replies_total"),
    ngx_string("humanhours_redis_latency_milliseconds_total")
};


static ngx_str_t  ngx_http_humanhours_codes[] = {
    ngx_string("missing_authorization"),
    ngx_string("invalid_api_key"),
    ngx_string("key_revoked"),
    ngx_string("https_required"),
    ngx_string("feature_locked"),
    ngx_string("method_not_allowed"),
    ngx_string("payload_too_large"),
    ngx_string("unsupported_media_type"),
    ngx_string("invalid_json"),
    ngx_string("validation_error"),
    ngx_string("unknown_task_type"),
    ngx_string("occurred_at_out_of_range"),
    ngx_string("idempotency_key_reused"),
    ngx_string("rate_limited"),
    ngx_string("quota_exceeded"),
    ngx_string("unavailable"),
    ngx_string("internal")
};


void
ngx_http_humanhours_stat_add(ngx_http_humanhours_stat_e stat,
    ngx_atomic_int_t value)
{
    ngx_http_humanhours_shctx_t  *sh;

    sh = ngx_http_humanhours_metrics_shctx();

    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->stats[stat], value);
    }
}


void
ngx_http_humanhours_stat_rejected(ngx_http_humanhours_err_e code)
{
    ngx_http_humanhours_shctx_t  *sh;

    sh = ngx_http_humanhours_metrics_shctx();

    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->rejected[code], 1);
    }
}


ngx_int_t
ngx_http_humanhours_metrics_handler(ngx_http_request_t *r)
{
    size_t                        len;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_uint_t                    i;
    ngx_chain_t                   out;
    ngx_http_humanhours_shctx_t  *sh;

    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    sh = ngx_http_humanhours_metrics_shctx();
    if (sh == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    len = 0;

    for (i = 0; i < NGX_HH_STAT_COUNT; i++) {
        len += 2 * ngx_http_humanhours_stat_names[i].len
               + sizeof("# TYPE  counter\n") + NGX_ATOMIC_T_LEN + 2;
    }

    len += sizeof("# TYPE humanhours_requests_rejected_total counter\n");

    for (i = 0; i < NGX_HH_ERR_COUNT; i++) {
        len += sizeof("humanhours_requests_rejected_total{code=\"\"} \n")
               + ngx_http_humanhours_codes[i].len + NGX_ATOMIC_T_LEN;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < NGX_HH_STAT_COUNT; i++) {
        b->last = ngx_sprintf(b->last, "# TYPE %V counter\n%V %uA\n",
                              &ngx_http_humanhours_stat_names[i],
                              &ngx_http_humanhours_stat_names[i],
                              sh->stats[i]);
    }

    b->last = ngx_sprintf(b->last,
                  "# TYPE humanhours_requests_rejected_total counter\n");

    for (i = 0; i < NGX_HH_ERR_COUNT; i++) {
        b->last = ngx_sprintf(b->last,
                      "humanhours_requests_rejected_total{code=\"%V\"} %uA\n",
                      &ngx_http_humanhours_codes[i], sh->rejected[i]);
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_http_humanhours_shctx_t *
ngx_http_humanhours_metrics_shctx(void)
{
    ngx_http_humanhours_cache_t      *cache;
    ngx_http_humanhours_main_conf_t  *hmcf;

    if (ngx_cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NULL;
    }

    hmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_humanhours_module);

    if (hmcf == NULL || hmcf->cache_zone == NULL) {
        return NULL;
    }

    cache = hmcf->cache_zone->data;

    return cache->sh;
}
