/*
 * API key authentication: the Authorization header, the shared cache, and
 * on a miss the key record from Redis and an argon2id verification in the
 * thread pool, so the event loop never runs argon2id.
 */

#include "ngx_http_humanhours_module.h"


typedef struct {
    u_char                 key[HH_KEY_LEN];
    char                   hash[HH_KEY_HASH_MAX];
    const u_char          *pepper;
    ngx_int_t              matched;
} ngx_http_humanhours_verify_t;


static void ngx_http_humanhours_key_record(ngx_http_request_t *r,
    redisReply *reply);
static void ngx_http_humanhours_verify_thread(void *data, ngx_log_t *log);
static void ngx_http_humanhours_verify_done(ngx_event_t *ev);
static void ngx_http_humanhours_reject_key(ngx_http_request_t *r,
    ngx_http_humanhours_err_e code);
static void ngx_http_humanhours_wait_done(ngx_event_t *ev);
static void ngx_http_humanhours_wait_cleanup(void *data);
static void ngx_http_humanhours_watchdog(ngx_event_t *ev);


/* how often a request polls the cache while another verifies its key */
#define NGX_HH_WAIT_INTERVAL       5

#define NGX_HH_WATCHDOG_INTERVAL   1000


ngx_int_t
ngx_http_humanhours_parse_authorization(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx, ngx_http_humanhours_err_e *code)
{
    u_char           *p, *last;
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len == 0) {
        *code = NGX_HH_ERR_MISSING_AUTHORIZATION;
        return NGX_DECLINED;
    }

    *code = NGX_HH_ERR_INVALID_API_KEY;

    p = h->value.data;
    last = p + h->value.len;

    /* nginx strips trailing spaces from a header value, but not tabs */
    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    /* auth schemes are case-insensitive (RFC 9110, section 11.1) */

    if (last - p < 7 || ngx_strncasecmp(p, (u_char *) "Bearer ", 7) != 0) {
        return NGX_DECLINED;
    }

    for (p += 7; p < last && *p == ' '; p++) { /* void */ }

    if (hh_key_parse((char *) p, last - p, &ctx->parts) != 0) {
        ctx->parts.prefix[0] = '\0';
        return NGX_DECLINED;
    }

    ctx->key.data = p;
    ctx->key.len = last - p;

    return NGX_OK;
}


void
ngx_http_humanhours_authenticate(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_cleanup_t         *cln;
    ngx_http_humanhours_ctx_t  *ctx;

    u_char       name[sizeof("hh:key:") - 1 + HH_KEY_PREFIX_LEN];
    const char  *argv[2];
    size_t       argvlen[2];

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    ngx_http_humanhours_digest(r, ctx);

    rc = ngx_http_humanhours_cache_lookup(r, ctx);

    switch (rc) {

    case NGX_OK:
        ngx_http_humanhours_stat_add(NGX_HH_STAT_CACHE_HITS, 1);

        if (ctx->revoked) {
            ngx_http_humanhours_reject_key(r, NGX_HH_ERR_KEY_REVOKED);
            return;
        }

        ngx_http_humanhours_authenticated(r);
        return;

    case NGX_ABORT:
        /* this wrong key failed verification a moment ago */
        ngx_http_humanhours_stat_add(NGX_HH_STAT_CACHE_HITS, 1);
        ngx_http_humanhours_reject_key(r, NGX_HH_ERR_INVALID_API_KEY);
        return;

    case NGX_BUSY:
        /*
         * The secret is unknown, so it may be right: a 429 lets a real
         * client retry, where a 401 would lock it out during a flood.
         */
        ngx_http_humanhours_stat_add(NGX_HH_STAT_THROTTLED, 1);
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_RATE_LIMITED,
            "Too many attempts with unknown secrets for this key prefix.",
            "Retry after the time in Retry-After.", NULL);
        return;

    case NGX_AGAIN:
        if (ctx->wait.handler == NULL) {
            cln = ngx_http_cleanup_add(r, 0);
            if (cln == NULL) {
                ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }

            cln->handler = ngx_http_humanhours_wait_cleanup;
            cln->data = ctx;

            ctx->wait.handler = ngx_http_humanhours_wait_done;
            ctx->wait.data = r;
            ctx->wait.log = r->connection->log;
        }

        ngx_add_timer(&ctx->wait, NGX_HH_WAIT_INTERVAL);
        return;
    }

    ngx_http_humanhours_stat_add(NGX_HH_STAT_CACHE_MISSES, 1);

    ngx_memcpy(name, "hh:key:", sizeof("hh:key:") - 1);
    ngx_memcpy(name + sizeof("hh:key:") - 1, ctx->parts.prefix,
               HH_KEY_PREFIX_LEN);

    argv[0] = "HGETALL";
    argvlen[0] = sizeof("HGETALL") - 1;
    argv[1] = (char *) name;
    argvlen[1] = sizeof(name);

    if (ngx_http_humanhours_redis_command(r, ngx_http_humanhours_key_record,
                                          2, argv, argvlen)
        != NGX_OK)
    {
        ngx_http_humanhours_cache_abandon(r, ctx);
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
            "The key store is unavailable; the event was not recorded.",
            "Retry with the same Idempotency-Key.", NULL);
    }
}


static void
ngx_http_humanhours_key_record(ngx_http_request_t *r, redisReply *reply)
{
    size_t                            i;
    ngx_int_t                         n;
    redisReply                       *name, *value;
    ngx_thread_task_t                *task;
    ngx_http_humanhours_ctx_t        *ctx;
    ngx_http_humanhours_verify_t     *verify;
    ngx_http_humanhours_main_conf_t  *hmcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);
    hmcf = ngx_http_get_module_main_conf(r, ngx_http_humanhours_module);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_humanhours_cache_abandon(r, ctx);
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
            "The key store is unavailable; the event was not recorded.",
            "Retry with the same Idempotency-Key.", NULL);
        return;
    }

    task = ngx_thread_task_alloc(r->pool,
                                 sizeof(ngx_http_humanhours_verify_t));
    if (task == NULL) {
        ngx_http_humanhours_cache_abandon(r, ctx);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    verify = task->ctx;
    ctx->key_id = -1;
    ctx->org_id = -1;
    n = -1;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        name = reply->element[i];
        value = reply->element[i + 1];

        if (name->type != REDIS_REPLY_STRING
            || value->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        if (ngx_strcmp(name->str, "id") == 0) {
            ctx->key_id = ngx_atoi((u_char *) value->str, value->len);

        } else if (ngx_strcmp(name->str, "org") == 0) {
            ctx->org_id = ngx_atoi((u_char *) value->str, value->len);

        } else if (ngx_strcmp(name->str, "mode") == 0) {
            n = (ngx_strcmp(value->str, "test") == 0) ? HH_KEY_TEST
                                                       : HH_KEY_LIVE;

        } else if (ngx_strcmp(name->str, "revoked") == 0) {
            ctx->revoked = (value->str[0] == '1');

        } else if (ngx_strcmp(name->str, "hash") == 0
                   && value->len < HH_KEY_HASH_MAX)
        {
            ngx_memcpy(verify->hash, value->str, value->len + 1);
        }
    }

    if (ctx->key_id < 0 || ctx->org_id < 0 || verify->hash[0] == '\0'
        || n != (ngx_int_t) ctx->parts.mode)
    {
        /* no argon2id ran, so there is nothing to remember */
        ngx_http_humanhours_cache_abandon(r, ctx);
        ngx_http_humanhours_reject_key(r, NGX_HH_ERR_INVALID_API_KEY);
        return;
    }

    ctx->test = (n == HH_KEY_TEST);

    ngx_memcpy(verify->key, ctx->key.data, HH_KEY_LEN);
    verify->pepper = hmcf->pepper;

    task->handler = ngx_http_humanhours_verify_thread;
    task->event.data = r;
    task->event.handler = ngx_http_humanhours_verify_done;

    if (ngx_thread_task_post(hmcf->thread_pool, task) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "humanhours: thread pool \"%V\" is full, key prefix %s "
                      "not verified, answering 503",
                      &hmcf->thread_pool_name, ctx->parts.prefix);
        ngx_http_humanhours_cache_abandon(r, ctx);
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
            "The server is busy verifying keys; the event was not recorded.",
            "Retry with the same Idempotency-Key.", NULL);
        return;
    }

    /* the request must outlive the task, which writes into its pool */

    r->main->blocked++;
    r->aio = 1;

    /*
     * A worker that shuts down gracefully exits once no timer is left,
     * and a waiting task has no timer of its own. The watchdog keeps the
     * worker, and so the open request, until the task is done.
     */

    ctx->watchdog.handler = ngx_http_humanhours_watchdog;
    ctx->watchdog.data = r;
    ctx->watchdog.log = r->connection->log;

    ngx_add_timer(&ctx->watchdog, NGX_HH_WATCHDOG_INTERVAL);
}


static void
ngx_http_humanhours_verify_thread(void *data, ngx_log_t *log)
{
    ngx_http_humanhours_verify_t  *verify = data;

    verify->matched = (hh_key_verify(verify->hash, (char *) verify->key,
                                     HH_KEY_LEN, verify->pepper) == 0);

    sodium_memzero(verify->key, HH_KEY_LEN);
}


static void
ngx_http_humanhours_verify_done(ngx_event_t *ev)
{
    ngx_connection_t              *c;
    ngx_thread_task_t             *task;
    ngx_http_request_t            *r;
    ngx_http_humanhours_ctx_t     *ctx;
    ngx_http_humanhours_verify_t  *verify;

    r = ev->data;
    c = r->connection;
    task = (ngx_thread_task_t *) ((u_char *) ev
                                  - offsetof(ngx_thread_task_t, event));
    verify = task->ctx;

    r->main->blocked--;
    r->aio = 0;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (ctx->watchdog.timer_set) {
        ngx_del_timer(&ctx->watchdog);
    }

    ngx_http_humanhours_stat_add(NGX_HH_STAT_VERIFICATIONS, 1);

    if (!verify->matched) {
        ngx_http_humanhours_stat_add(NGX_HH_STAT_VERIFICATION_FAILURES, 1);
        ngx_http_humanhours_cache_note_failure(r, ctx);
        ngx_http_humanhours_reject_key(r, NGX_HH_ERR_INVALID_API_KEY);

    } else {
        ctx->verified = 1;
        ngx_http_humanhours_cache_store(r, ctx);

        if (ctx->revoked) {
            ngx_http_humanhours_reject_key(r, NGX_HH_ERR_KEY_REVOKED);

        } else {
            ngx_http_humanhours_authenticated(r);
        }
    }

    ngx_http_run_posted_requests(c);
}


/* Goes on with the request that the key was checked for. */

void
ngx_http_humanhours_authenticated(ngx_http_request_t *r)
{
    ngx_http_humanhours_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_humanhours_module);

    if (hlcf->read) {
        ngx_http_humanhours_read(r);
        return;
    }

    ngx_http_humanhours_process_body(r);
}


/* Looks into the cache again once the other verification may be done. */

static void
ngx_http_humanhours_wait_done(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    ngx_http_humanhours_authenticate(r);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_humanhours_watchdog(ngx_event_t *ev)
{
    ngx_http_request_t  *r = ev->data;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "humanhours: an argon2id verification has waited for the "
                  "thread pool for over %d ms", NGX_HH_WATCHDOG_INTERVAL);

    ngx_add_timer(ev, NGX_HH_WATCHDOG_INTERVAL);
}


static void
ngx_http_humanhours_wait_cleanup(void *data)
{
    ngx_http_humanhours_ctx_t  *ctx = data;

    if (ctx->wait.timer_set) {
        ngx_del_timer(&ctx->wait);
    }
}


static void
ngx_http_humanhours_reject_key(ngx_http_request_t *r,
    ngx_http_humanhours_err_e code)
{
    if (code == NGX_HH_ERR_KEY_REVOKED) {
        ngx_http_humanhours_finalize_error(r, code,
            "The API key was revoked.",
            "Create a new key and replace the revoked one.", NULL);
        return;
    }

    ngx_http_humanhours_finalize_error(r, code,
        "The API key is invalid.",
        "Check the key; a lost key cannot be shown again, "
        "so create a new one.", NULL);
}
