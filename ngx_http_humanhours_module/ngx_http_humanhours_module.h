/*
 * Types shared by the files of ngx_http_humanhours_module: configuration,
 * the per-request context of a track call, the shared key cache and the
 * Redis connection of each worker.
 */

#ifndef _NGX_HTTP_HUMANHOURS_MODULE_H_INCLUDED_
#define _NGX_HTTP_HUMANHOURS_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "hh_key.h"
#include "hh_event.h"


/* Error codes of the API, in the order of the metrics' label values. */
typedef enum {
    NGX_HH_ERR_MISSING_AUTHORIZATION = 0,
    NGX_HH_ERR_INVALID_API_KEY,
    NGX_HH_ERR_KEY_REVOKED,
    NGX_HH_ERR_HTTPS_REQUIRED,
    NGX_HH_ERR_FEATURE_LOCKED,
    NGX_HH_ERR_METHOD_NOT_ALLOWED,
    NGX_HH_ERR_PAYLOAD_TOO_LARGE,
    NGX_HH_ERR_UNSUPPORTED_MEDIA_TYPE,
    NGX_HH_ERR_INVALID_JSON,
    NGX_HH_ERR_VALIDATION_ERROR,
    NGX_HH_ERR_UNKNOWN_TASK_TYPE,
    NGX_HH_ERR_OCCURRED_AT_OUT_OF_RANGE,
    NGX_HH_ERR_IDEMPOTENCY_KEY_REUSED,
    NGX_HH_ERR_RATE_LIMITED,
    NGX_HH_ERR_QUOTA_EXCEEDED,
    NGX_HH_ERR_UNAVAILABLE,
    NGX_HH_ERR_INTERNAL,
    NGX_HH_ERR_COUNT
} ngx_http_humanhours_err_e;


/* Counters in shared memory, added to by every worker. */
typedef enum {
    NGX_HH_STAT_ACCEPTED = 0,
    NGX_HH_STAT_REPLAYED,
    NGX_HH_STAT_CACHE_HITS,
    NGX_HH_STAT_CACHE_MISSES,
    NGX_HH_STAT_VERIFICATIONS,
    NGX_HH_STAT_VERIFICATION_FAILURES,
    NGX_HH_STAT_THROTTLED,
    NGX_HH_STAT_CACHE_EVICTIONS,
    NGX_HH_STAT_REDIS_ERRORS,
    NGX_HH_STAT_REDIS_REPLIES,
    NGX_HH_STAT_REDIS_LATENCY_MS,
    NGX_HH_STAT_COUNT
} ngx_http_humanhours_stat_e;


typedef struct {
    ngx_rbtree_t                     rbtree;
    ngx_rbtree_node_t                sentinel;
    ngx_queue_t                      lru;
    u_char                           digest_key[32];
    ngx_atomic_t                     stats[NGX_HH_STAT_COUNT];
    ngx_atomic_t                     rejected[NGX_HH_ERR_COUNT];
} ngx_http_humanhours_shctx_t;


typedef struct {
    ngx_http_humanhours_shctx_t     *sh;
    ngx_slab_pool_t                 *shpool;
    ngx_msec_t                       ttl;
    ngx_msec_t                       failure_ttl;
    ngx_uint_t                       verify_rate;
} ngx_http_humanhours_cache_t;


typedef struct {
    ngx_str_t                        redis_address;
    ngx_str_t                        redis_host;     /* NUL-terminated */
    ngx_int_t                        redis_port;     /* 0 for a Unix socket */
    ngx_msec_t                       redis_timeout;

    ngx_str_t                        pepper_file;
    u_char                           pepper[HH_PEPPER_LEN];

    ngx_shm_zone_t                  *cache_zone;
    ngx_msec_t                       cache_ttl;
    ngx_msec_t                       failure_ttl;
    ngx_uint_t                       verify_rate;

    ngx_str_t                        thread_pool_name;
    ngx_thread_pool_t               *thread_pool;

    ngx_uint_t                       enabled;     /* humanhours_track used */
} ngx_http_humanhours_main_conf_t;


typedef struct {
    ngx_flag_t                       require_https;
    size_t                           max_body_size;
    ngx_uint_t                       api;         /* an API location */
    ngx_uint_t                       read;        /* NGX_HH_SCRIPT_* or 0 */
} ngx_http_humanhours_loc_conf_t;


typedef struct ngx_http_humanhours_op_s  ngx_http_humanhours_op_t;

typedef void (*ngx_http_humanhours_reply_pt)(ngx_http_request_t *r,
    redisReply *reply);


/*
 * A Redis command in flight. It lives outside the request's pool, because
 * the reply may arrive after the request went away: the request's cleanup
 * then clears "request", and the reply only frees the record.
 */
struct ngx_http_humanhours_op_s {
    ngx_http_request_t              *request;
    ngx_http_humanhours_reply_pt     handler;
    ngx_msec_t                       sent;
};


typedef struct {
    hh_key_parts_t                   parts;
    ngx_str_t                        key;           /* points into headers */
    u_char                           digest[32];

    int64_t                          key_id;
    int64_t                          org_id;
    unsigned                         test:1;
    unsigned                         revoked:1;
    unsigned                         evaluated:1;  /* sent EVAL, not EVALSHA */
    unsigned                         json_error:1; /* replaces nginx's page */
    unsigned                         has_tokens_in:1;
    unsigned                         verified:1;   /* argon2id ran for it */
    unsigned                         has_tokens_out:1;

    ngx_str_t                        body;
    hh_event_t                       event;
    ngx_str_t                        event_json;
    ngx_str_t                        metadata;      /* compact JSON or empty */
    ngx_str_t                        audit_sample;  /* compact JSON or empty */
    ngx_str_t                        baseline;      /* request's, as text */

    u_char                           key_id_text[NGX_INT64_LEN];
    u_char                           org_id_text[NGX_INT64_LEN];
    u_char                           received_at[HH_TIMESTAMP_LEN + 1];
    char                             fingerprint[HH_FINGERPRINT_LEN + 1];
    u_char                           idempotency_hash[33]; /* hex, or "" */

    /* NUL-terminated copies of the script's reply */
    u_char                          *resolved_source;
    u_char                          *resolved_currency;

    ngx_buf_t                       *error_page;    /* JSON in place */

    /* a body error held back while the key is checked once more */
    ngx_http_humanhours_err_e        error_code;
    const char                      *error_message;
    const char                      *error_hint;
    ngx_str_t                        error_field;

    ngx_http_humanhours_op_t        *op;
    ngx_event_t                      deadline;
    ngx_event_t                      wait;          /* for a shared check */
    ngx_event_t                      watchdog;      /* while in the pool */
    ngx_http_cleanup_t              *cleanup;
} ngx_http_humanhours_ctx_t;


extern ngx_module_t  ngx_http_humanhours_module;


/* ngx_http_humanhours_module.c */
ngx_int_t ngx_http_humanhours_begin(ngx_http_request_t *r, ngx_uint_t methods,
    ngx_http_humanhours_ctx_t **ctxp);


/* ngx_http_humanhours_response.c */
void ngx_http_humanhours_finalize_error(ngx_http_request_t *r,
    ngx_http_humanhours_err_e code, const char *message, const char *hint,
    ngx_str_t *field);
ngx_int_t ngx_http_humanhours_send_error(ngx_http_request_t *r,
    ngx_http_humanhours_err_e code, const char *message, const char *hint,
    ngx_str_t *field);
void ngx_http_humanhours_finalize_event(ngx_http_request_t *r);
void ngx_http_humanhours_finalize_replay(ngx_http_request_t *r);
u_char *ngx_http_humanhours_escape_json(u_char *p, u_char *src, size_t len);
ngx_int_t ngx_http_humanhours_init_filters(ngx_conf_t *cf);

/* ngx_http_humanhours_auth.c */
void ngx_http_humanhours_authenticate(ngx_http_request_t *r);
void ngx_http_humanhours_authenticated(ngx_http_request_t *r);
ngx_int_t ngx_http_humanhours_parse_authorization(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx, ngx_http_humanhours_err_e *code);

/* ngx_http_humanhours_cache.c */
ngx_int_t ngx_http_humanhours_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
ngx_int_t ngx_http_humanhours_cache_lookup(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx);
void ngx_http_humanhours_cache_store(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx);
void ngx_http_humanhours_cache_note_failure(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx);
void ngx_http_humanhours_cache_abandon(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx);
void ngx_http_humanhours_digest(ngx_http_request_t *r,
    ngx_http_humanhours_ctx_t *ctx);

/* ngx_http_humanhours_body.c */
void ngx_http_humanhours_body_handler(ngx_http_request_t *r);
void ngx_http_humanhours_process_body(ngx_http_request_t *r);

/* ngx_http_humanhours_redis.c */
ngx_int_t ngx_http_humanhours_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_humanhours_redis_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_humanhours_redis_command(ngx_http_request_t *r,
    ngx_http_humanhours_reply_pt handler, int argc, const char **argv,
    const size_t *argvlen);

/* ngx_http_humanhours_script.c */
typedef enum {
    NGX_HH_SCRIPT_TRACK = 0,
    NGX_HH_SCRIPT_AGENTS,
    NGX_HH_SCRIPT_TASK_TYPES,
    NGX_HH_SCRIPT_USAGE,
    NGX_HH_SCRIPT_COUNT
} ngx_http_humanhours_script_e;

typedef struct {
    const char                      *text;
    u_char                           sha1[41];
} ngx_http_humanhours_lua_t;

extern ngx_http_humanhours_lua_t  ngx_http_humanhours_scripts[];
extern const char  ngx_http_humanhours_track_script[];
void ngx_http_humanhours_script_init(void);
void ngx_http_humanhours_queue_event(ngx_http_request_t *r);

/* ngx_http_humanhours_read.c */
extern const char  ngx_http_humanhours_agents_script[];
extern const char  ngx_http_humanhours_task_types_script[];
extern const char  ngx_http_humanhours_usage_script[];
ngx_int_t ngx_http_humanhours_read_handler(ngx_http_request_t *r);
void ngx_http_humanhours_read(ngx_http_request_t *r);

/* ngx_http_humanhours_metrics.c */
void ngx_http_humanhours_stat_add(ngx_http_humanhours_stat_e stat,
    ngx_atomic_int_t value);
void ngx_http_humanhours_stat_rejected(ngx_http_humanhours_err_e code);
ngx_int_t ngx_http_humanhours_metrics_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_HUMANHOURS_MODULE_H_INCLUDED_ */
