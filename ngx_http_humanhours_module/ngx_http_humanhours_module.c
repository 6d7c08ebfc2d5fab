/*
 * ngx_http_humanhours_module: directives, configuration and the track
 * handler, which checks the request line and headers and then reads the
 * body. The other steps of a track call live in the files named in
 * ngx_http_humanhours_module.h.
 */

#include "ngx_http_humanhours_module.h"


static ngx_int_t ngx_http_humanhours_track_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_humanhours_is_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_humanhours_idempotency_key(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx);
static void *ngx_http_humanhours_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_humanhours_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_humanhours_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_humanhours_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_humanhours_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_humanhours_key_cache(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_shm_zone_t *ngx_http_humanhours_add_zone(ngx_conf_t *cf,
    ngx_str_t *name, size_t size);
static char *ngx_http_humanhours_track(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_humanhours_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_humanhours_read_endpoint(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_humanhours_init_process(ngx_cycle_t *cycle);
static void ngx_http_humanhours_exit_process(ngx_cycle_t *cycle);


#define NGX_HH_DEFAULT_ZONE_SIZE     (10 * 1024 * 1024)
#define NGX_HH_MAX_CACHE_TTL         300000


static ngx_command_t  ngx_http_humanhours_commands[] = {

    { ngx_string("humanhours_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_humanhours_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("humanhours_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_humanhours_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("humanhours_pepper_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_humanhours_main_conf_t, pepper_file),
      NULL },

    { ngx_string("humanhours_key_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_humanhours_key_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("humanhours_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_humanhours_main_conf_t, thread_pool_name),
      NULL },

    { ngx_string("humanhours_track"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_humanhours_track,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("humanhours_agents"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_humanhours_read_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HH_SCRIPT_AGENTS,
      NULL },

    { ngx_string("humanhours_task_types"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_humanhours_read_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HH_SCRIPT_TASK_TYPES,
      NULL },

    { ngx_string("humanhours_usage"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_humanhours_read_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HH_SCRIPT_USAGE,
      NULL },

    { ngx_string("humanhours_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_humanhours_metrics,
      0,
      0,
      NULL },

    { ngx_string("humanhours_require_https"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_humanhours_loc_conf_t, require_https),
      NULL },

    { ngx_string("humanhours_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_humanhours_loc_conf_t, max_body_size),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_humanhours_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_humanhours_init_filters,      /* postconfiguration */

    ngx_http_humanhours_create_main_conf,  /* create main configuration */
    ngx_http_humanhours_init_main_conf,    /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_humanhours_create_loc_conf,   /* create location configuration */
    ngx_http_humanhours_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_humanhours_module = {
    NGX_MODULE_V1,
    &ngx_http_humanhours_module_ctx,       /* module context */
    ngx_http_humanhours_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_humanhours_init_process,      /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_humanhours_exit_process,      /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_humanhours_track_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_humanhours_ctx_t       *ctx;
    ngx_http_humanhours_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_humanhours_module);

    rc = ngx_http_humanhours_begin(r, NGX_HTTP_POST, &ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_humanhours_is_json(r) != NGX_OK) {
        return ngx_http_humanhours_send_error(r,
                   NGX_HH_ERR_UNSUPPORTED_MEDIA_TYPE,
                   "The request body must be JSON.",
                   "Send \"Content-Type: application/json\".", NULL);
    }

    if (ngx_http_humanhours_idempotency_key(r, ctx) != NGX_OK) {
        ngx_str_t  field = ngx_string("Idempotency-Key");

        return ngx_http_humanhours_send_error(r,
                   NGX_HH_ERR_VALIDATION_ERROR,
                   "The Idempotency-Key header must be 1 to 255 visible "
                   "ASCII characters.", NULL, &field);
    }

    if (r->headers_in.content_length_n > (off_t) hlcf->max_body_size) {
        return ngx_http_humanhours_send_error(r,
                   NGX_HH_ERR_PAYLOAD_TOO_LARGE,
                   "The request body is larger than this server accepts.",
                   NULL, NULL);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r,
                                          ngx_http_humanhours_body_handler);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return ngx_http_humanhours_send_error(r,
                   NGX_HH_ERR_PAYLOAD_TOO_LARGE,
                   "The request body is larger than this server accepts.",
                   NULL, NULL);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * Runs the checks that every API location makes before it reads a body:
 * HTTPS, the method (one of methods), and the form of the Authorization
 * header, then creates the request's context. Returns NGX_DECLINED when
 * the request passed them, or else what sending the error response
 * returned, which may be NGX_OK.
 */

ngx_int_t
ngx_http_humanhours_begin(ngx_http_request_t *r, ngx_uint_t methods,
    ngx_http_humanhours_ctx_t **ctxp)
{
    ngx_table_elt_t                 *h;
    ngx_http_humanhours_err_e        code;
    ngx_http_humanhours_ctx_t       *ctx;
    ngx_http_humanhours_loc_conf_t  *hlcf;

    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_humanhours_module);

#if (NGX_HTTP_SSL)
    if (hlcf->require_https && r->connection->ssl == NULL)
#else
    if (hlcf->require_https)
#endif
    {
        return ngx_http_humanhours_send_error(r, NGX_HH_ERR_HTTPS_REQUIRED,
                   "This API is served over HTTPS only.",
                   "Send the request to the https:// address.", NULL);
    }

    if (!(r->method & methods)) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");

        if (methods == NGX_HTTP_POST) {
            ngx_str_set(&h->value, "POST");

        } else {
            ngx_str_set(&h->value, "GET, HEAD");
        }

        return ngx_http_humanhours_send_error(r,
                   NGX_HH_ERR_METHOD_NOT_ALLOWED,
                   "This method is not allowed here; see the Allow header.",
                   NULL, NULL);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_humanhours_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_humanhours_module);
    *ctxp = ctx;

    if (ngx_http_humanhours_parse_authorization(r, ctx, &code) != NGX_OK) {
        if (code == NGX_HH_ERR_MISSING_AUTHORIZATION) {
            return ngx_http_humanhours_send_error(r, code,
                       "The Authorization header is missing.",
                       "Send \"Authorization: Bearer <API key>\".", NULL);
        }

        return ngx_http_humanhours_send_error(r, code,
                   "The API key is invalid.",
                   "Keys look like hh_live_<8 characters>_<48 characters>.",
                   NULL);
    }

    return NGX_DECLINED;
}


/* Accepts "application/json" with optional parameters, in any case. */

static ngx_int_t
ngx_http_humanhours_is_json(ngx_http_request_t *r)
{
    u_char           *p, *last;
    ngx_table_elt_t  *h;

    static const char  json[] = "application/json";

    h = r->headers_in.content_type;

    if (h == NULL || h->value.len < sizeof(json) - 1) {
        return NGX_DECLINED;
    }

    if (ngx_strncasecmp(h->value.data, (u_char *) json, sizeof(json) - 1)
        != 0)
    {
        return NGX_DECLINED;
    }

    p = h->value.data + sizeof(json) - 1;
    last = h->value.data + h->value.len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p == last || *p == ';') {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * Stores a digest of the Idempotency-Key header in ctx, so that Redis keys
 * have a fixed length whatever the client sent. Returns NGX_DECLINED for
 * a header that is not 1 to 255 visible ASCII characters, or appears twice.
 */

static ngx_int_t
ngx_http_humanhours_idempotency_key(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx)
{
    u_char           *p, digest[16];
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    found = NULL;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("Idempotency-Key") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Idempotency-Key",
                               sizeof("Idempotency-Key") - 1)
               != 0)
        {
            continue;
        }

        if (found != NULL) {
            return NGX_DECLINED;
        }

        found = &h[i];
    }

    if (found == NULL) {
        return NGX_OK;
    }

    if (found->value.len == 0 || found->value.len > 255) {
        return NGX_DECLINED;
    }

    for (p = found->value.data; p < found->value.data + found->value.len; p++)
    {
        if (*p < 0x21 || *p > 0x7e) {
            return NGX_DECLINED;
        }
    }

    crypto_generichash(digest, sizeof(digest), found->value.data,
                       found->value.len, NULL, 0);

    ngx_hex_dump(ctx->idempotency_hash, digest, sizeof(digest));
    ctx->idempotency_hash[32] = '\0';

    return NGX_OK;
}


static void *
ngx_http_humanhours_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_humanhours_main_conf_t  *hmcf;

    hmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_humanhours_main_conf_t));
    if (hmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     hmcf->redis_address = { 0, NULL };
     *     hmcf->pepper_file = { 0, NULL };
     *     hmcf->thread_pool_name = { 0, NULL };
     *     hmcf->cache_zone = NULL;
     */

    hmcf->redis_port = NGX_CONF_UNSET;
    hmcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    hmcf->cache_ttl = NGX_CONF_UNSET_MSEC;
    hmcf->failure_ttl = NGX_CONF_UNSET_MSEC;
    hmcf->verify_rate = NGX_CONF_UNSET_UINT;

    return hmcf;
}


static char *
ngx_http_humanhours_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_humanhours_main_conf_t *hmcf = conf;

    char                          err[256];
    ngx_str_t                     zone = ngx_string("humanhours_keys");
    ngx_http_humanhours_cache_t  *cache;

    if (sodium_init() < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sodium_init() failed");
        return NGX_CONF_ERROR;
    }

    if (hmcf->redis_port == NGX_CONF_UNSET) {
        ngx_str_set(&hmcf->redis_address, "127.0.0.1:6379");
        ngx_str_set(&hmcf->redis_host, "127.0.0.1");
        hmcf->redis_port = 6379;
    }

    ngx_conf_init_msec_value(hmcf->redis_timeout, 1000);
    ngx_conf_init_msec_value(hmcf->cache_ttl, 60000);
    ngx_conf_init_msec_value(hmcf->failure_ttl, 1000);
    ngx_conf_init_uint_value(hmcf->verify_rate, 5);

    if (hmcf->thread_pool_name.data == NULL) {
        ngx_str_set(&hmcf->thread_pool_name, "humanhours");
    }

    hmcf->thread_pool = ngx_thread_pool_add(cf, &hmcf->thread_pool_name);
    if (hmcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    if (hmcf->cache_zone == NULL) {
        hmcf->cache_zone = ngx_http_humanhours_add_zone(cf, &zone,
                                                   NGX_HH_DEFAULT_ZONE_SIZE);
        if (hmcf->cache_zone == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cache = hmcf->cache_zone->data;
    cache->ttl = hmcf->cache_ttl;
    cache->failure_ttl = hmcf->failure_ttl;
    cache->verify_rate = hmcf->verify_rate;

    /*
     * The pepper is read here, in the master process, so that the file
     * can stay readable by root only.
     */

    if (hmcf->pepper_file.data == NULL) {
        if (hmcf->enabled) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"humanhours_track\" needs "
                               "\"humanhours_pepper_file\"");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_conf_full_name(cf->cycle, &hmcf->pepper_file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (hh_pepper_load((char *) hmcf->pepper_file.data, hmcf->pepper,
                       err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "humanhours_pepper_file \"%V\": %s",
                           &hmcf->pepper_file, err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_humanhours_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_humanhours_loc_conf_t  *hlcf;

    hlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_humanhours_loc_conf_t));
    if (hlcf == NULL) {
        return NULL;
    }

    hlcf->require_https = NGX_CONF_UNSET;
    hlcf->max_body_size = NGX_CONF_UNSET_SIZE;

    return hlcf;
}


static char *
ngx_http_humanhours_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_humanhours_loc_conf_t *prev = parent;
    ngx_http_humanhours_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_value(conf->require_https, prev->require_https, 1);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              64 * 1024);

    /*
     * nginx stops reading a body over client_max_body_size, also a chunked
     * one, so an API location lowers it to the module's own limit.
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->api && (clcf->client_max_body_size == 0
                      || clcf->client_max_body_size
                         > (off_t) conf->max_body_size))
    {
        clcf->client_max_body_size = conf->max_body_size;
    }

    return NGX_CONF_OK;
}


/* humanhours_redis 127.0.0.1:6379 | [::1]:6379 | unix:/path/to/socket */

static char *
ngx_http_humanhours_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_humanhours_main_conf_t *hmcf = conf;

    ngx_str_t  *value;
    ngx_url_t   u;

    if (hmcf->redis_port != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid Redis address \"%V\": %s",
                           &value[1], u.err ? u.err : "unknown error");
        return NGX_CONF_ERROR;
    }

    hmcf->redis_address = value[1];

    if (u.family == AF_UNIX) {
        hmcf->redis_host.len = value[1].len - 5;
        hmcf->redis_host.data = ngx_pnalloc(cf->pool, hmcf->redis_host.len + 1);
        if (hmcf->redis_host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(hmcf->redis_host.data, value[1].data + 5,
                    hmcf->redis_host.len + 1);
        hmcf->redis_port = 0;

        return NGX_CONF_OK;
    }

    /*
     * hiredis resolves names with a blocking call, so only a numeric
     * address is accepted here.
     */

    if (u.naddrs == 0 || u.no_port) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "Redis address \"%V\" must be a numeric IP "
                           "address with a port, or unix:/path",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    hmcf->redis_host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (hmcf->redis_host.data == NULL) {
        return NGX_CONF_ERROR;
    }

    hmcf->redis_host.len = ngx_sock_ntop(u.addrs[0].sockaddr,
                                         u.addrs[0].socklen,
                                         hmcf->redis_host.data,
                                         NGX_SOCKADDR_STRLEN, 0);
    hmcf->redis_host.data[hmcf->redis_host.len] = '\0';
    hmcf->redis_port = u.port;

    return NGX_CONF_OK;
}


/*
 * humanhours_key_cache zone=NAME:SIZE [ttl=TIME] [failure_ttl=TIME]
 *                      [verify_rate=N];
 */

static char *
ngx_http_humanhours_key_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_humanhours_main_conf_t *hmcf = conf;

    u_char      *p;
    ssize_t      size;
    ngx_int_t    n;
    ngx_str_t   *value, name, s;
    ngx_msec_t   ttl;
    ngx_uint_t   i;

    if (hmcf->cache_zone != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    size = 0;
    name.len = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;
            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                goto invalid;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                goto invalid;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0
            || ngx_strncmp(value[i].data, "failure_ttl=", 12) == 0)
        {
            s.data = (u_char *) ngx_strchr(value[i].data, '=') + 1;
            s.len = value[i].data + value[i].len - s.data;

            ttl = ngx_parse_time(&s, 0);

            if (ttl == (ngx_msec_t) NGX_ERROR || ttl == 0
                || ttl > NGX_HH_MAX_CACHE_TTL)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" must be between 1ms and 300s",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            if (value[i].data[0] == 't') {
                hmcf->cache_ttl = ttl;

            } else {
                hmcf->failure_ttl = ttl;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "verify_rate=", 12) == 0) {
            n = ngx_atoi(value[i].data + 12, value[i].len - 12);

            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            hmcf->verify_rate = n;
            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have the \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    hmcf->cache_zone = ngx_http_humanhours_add_zone(cf, &name, size);
    if (hmcf->cache_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_shm_zone_t *
ngx_http_humanhours_add_zone(ngx_conf_t *cf, ngx_str_t *name, size_t size)
{
    ngx_shm_zone_t               *shm_zone;
    ngx_http_humanhours_cache_t  *cache;

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_humanhours_cache_t));
    if (cache == NULL) {
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, name, size,
                                     &ngx_http_humanhours_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", name);
        return NULL;
    }

    shm_zone->init = ngx_http_humanhours_cache_init_zone;
    shm_zone->data = cache;

    return shm_zone;
}


static char *
ngx_http_humanhours_track(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_humanhours_loc_conf_t *hlcf = conf;

    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_humanhours_main_conf_t  *hmcf;

    if (hlcf->api) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_humanhours_track_handler;

    hlcf->api = 1;

    hmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_humanhours_module);
    hmcf->enabled = 1;

    return NGX_CONF_OK;
}


/* humanhours_agents, humanhours_task_types, humanhours_usage */

static char *
ngx_http_humanhours_read_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_humanhours_loc_conf_t *hlcf = conf;

    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_humanhours_main_conf_t  *hmcf;

    if (hlcf->api) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_humanhours_read_handler;

    hlcf->api = 1;
    hlcf->read = cmd->offset;

    hmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_humanhours_module);
    hmcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_humanhours_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_humanhours_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_humanhours_init_process(ngx_cycle_t *cycle)
{
    ngx_http_humanhours_script_init();

    return ngx_http_humanhours_redis_init_process(cycle);
}


static void
ngx_http_humanhours_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_humanhours_redis_exit_process(cycle);
}
