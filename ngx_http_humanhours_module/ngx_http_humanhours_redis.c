/*
 * The Redis client of each worker: one persistent hiredis async connection
 * bound to nginx's event loop and reconnected by a timer after a failure.
 * Every command has a deadline, so a slow or absent Redis turns into a 503
 * instead of a hanging request.
 */

#include "ngx_http_humanhours_module.h"


#define NGX_HH_RECONNECT_MIN   100
#define NGX_HH_RECONNECT_MAX   2000


static void ngx_http_humanhours_redis_connect(ngx_cycle_t *cycle);
static void ngx_http_humanhours_redis_reconnect(ngx_event_t *ev);
static void ngx_http_humanhours_redis_schedule(ngx_log_t *log);
static void ngx_http_humanhours_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_humanhours_redis_disconnected(
    const redisAsyncContext *ac, int status);
static void ngx_http_humanhours_redis_script_loaded(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_humanhours_redis_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_humanhours_redis_deadline(ngx_event_t *ev);
static void ngx_http_humanhours_redis_cleanup_request(void *data);
static void ngx_http_humanhours_redis_read(ngx_event_t *ev);
static void ngx_http_humanhours_redis_write(ngx_event_t *ev);
static void ngx_http_humanhours_redis_add_read(void *privdata);
static void ngx_http_humanhours_redis_del_read(void *privdata);
static void ngx_http_humanhours_redis_add_write(void *privdata);
static void ngx_http_humanhours_redis_del_write(void *privdata);
static void ngx_http_humanhours_redis_cleanup(void *privdata);


/* one connection per worker process */
static redisAsyncContext  *ngx_http_humanhours_redis_ctx;
static ngx_uint_t          ngx_http_humanhours_redis_ready;
static ngx_uint_t          ngx_http_humanhours_redis_loaded;
static ngx_uint_t          ngx_http_humanhours_redis_exiting;
static ngx_msec_t          ngx_http_humanhours_redis_backoff;
static ngx_event_t         ngx_http_humanhours_redis_timer;
static ngx_cycle_t        *ngx_http_humanhours_redis_cycle;


ngx_int_t
ngx_http_humanhours_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_humanhours_main_conf_t  *hmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;
    }

    hmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_humanhours_module);
    if (hmcf == NULL || !hmcf->enabled) {
        return NGX_OK;
    }

    ngx_http_humanhours_redis_cycle = cycle;
    ngx_http_humanhours_redis_backoff = NGX_HH_RECONNECT_MIN;

    ngx_http_humanhours_redis_timer.handler =
                                        ngx_http_humanhours_redis_reconnect;
    ngx_http_humanhours_redis_timer.log = cycle->log;
    ngx_http_humanhours_redis_timer.data = cycle;
    ngx_http_humanhours_redis_timer.cancelable = 1;

    ngx_http_humanhours_redis_connect(cycle);

    return NGX_OK;
}


void
ngx_http_humanhours_redis_exit_process(ngx_cycle_t *cycle)
{
    redisAsyncContext  *ac;

    ngx_http_humanhours_redis_exiting = 1;

    if (ngx_http_humanhours_redis_timer.timer_set) {
        ngx_del_timer(&ngx_http_humanhours_redis_timer);
    }

    ac = ngx_http_humanhours_redis_ctx;

    if (ac != NULL) {
        ngx_http_humanhours_redis_ctx = NULL;
        redisAsyncFree(ac);
    }
}


/*
 * Sends one command. Returns NGX_OK when the command was queued. Then the
 * handler runs once, with a NULL reply if Redis failed, unless the deadline
 * sent the response first, the client left or the worker exits. Returns
 * NGX_DECLINED when there is no connection to Redis.
 */

ngx_int_t
ngx_http_humanhours_redis_command(ngx_http_request_t *r,
    ngx_http_humanhours_reply_pt handler, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_http_cleanup_t               *cln;
    ngx_http_humanhours_op_t         *op;
    ngx_http_humanhours_ctx_t        *ctx;
    ngx_http_humanhours_main_conf_t  *hmcf;

    hmcf = ngx_http_get_module_main_conf(r, ngx_http_humanhours_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (ngx_http_humanhours_redis_ctx == NULL
        || !ngx_http_humanhours_redis_ready)
    {
        ngx_http_humanhours_stat_add(NGX_HH_STAT_REDIS_ERRORS, 1);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "humanhours: no connection to Redis at \"%V\", "
                      "answering 503", &hmcf->redis_address);
        return NGX_DECLINED;
    }

    if (ctx->cleanup == NULL) {
        cln = ngx_http_cleanup_add(r, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_humanhours_redis_cleanup_request;
        cln->data = r;
        ctx->cleanup = cln;
    }

    op = ngx_alloc(sizeof(ngx_http_humanhours_op_t), r->connection->log);
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->request = r;
    op->handler = handler;
    op->sent = ngx_current_msec;

    if (redisAsyncCommandArgv(ngx_http_humanhours_redis_ctx,
                              ngx_http_humanhours_redis_reply, op,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(op);
        ngx_http_humanhours_stat_add(NGX_HH_STAT_REDIS_ERRORS, 1);
        return NGX_DECLINED;
    }

    ctx->op = op;

    ctx->deadline.handler = ngx_http_humanhours_redis_deadline;
    ctx->deadline.data = r;
    ctx->deadline.log = r->connection->log;

    ngx_add_timer(&ctx->deadline, hmcf->redis_timeout);

    return NGX_OK;
}


static void
ngx_http_humanhours_redis_connect(ngx_cycle_t *cycle)
{
    ngx_connection_t                 *c;
    redisAsyncContext                *ac;
    ngx_http_humanhours_main_conf_t  *hmcf;

    hmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_humanhours_module);

    if (hmcf->redis_port == 0) {
        ac = redisAsyncConnectUnix((char *) hmcf->redis_host.data);

    } else {
        ac = redisAsyncConnect((char *) hmcf->redis_host.data,
                               (int) hmcf->redis_port);
    }

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "humanhours: connecting to Redis at \"%V\" failed: %s, "
                      "retrying in %M ms", &hmcf->redis_address,
                      ac ? ac->errstr : "out of memory",
                      ngx_http_humanhours_redis_backoff);

        if (ac != NULL) {
            redisAsyncFree(ac);
        }

        ngx_http_humanhours_redis_schedule(cycle->log);
        return;
    }

    c = ngx_get_connection(ac->c.fd, cycle->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_humanhours_redis_schedule(cycle->log);
        return;
    }

    c->data = ac;
    c->read->handler = ngx_http_humanhours_redis_read;
    c->write->handler = ngx_http_humanhours_redis_write;
    c->read->log = cycle->log;
    c->write->log = cycle->log;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_humanhours_redis_add_read;
    ac->ev.delRead = ngx_http_humanhours_redis_del_read;
    ac->ev.addWrite = ngx_http_humanhours_redis_add_write;
    ac->ev.delWrite = ngx_http_humanhours_redis_del_write;
    ac->ev.cleanup = ngx_http_humanhours_redis_cleanup;

    ngx_http_humanhours_redis_ctx = ac;
    ngx_http_humanhours_redis_ready = 0;

    /* setting the connect callback registers for the first write event */

    redisAsyncSetConnectCallback(ac, ngx_http_humanhours_redis_connected);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_humanhours_redis_disconnected);
}


static void
ngx_http_humanhours_redis_reconnect(ngx_event_t *ev)
{
    if (ngx_http_humanhours_redis_exiting || ngx_exiting || ngx_terminate) {
        return;
    }

    ngx_http_humanhours_redis_connect(ev->data);
}


static void
ngx_http_humanhours_redis_schedule(ngx_log_t *log)
{
    ngx_http_humanhours_redis_ctx = NULL;
    ngx_http_humanhours_redis_ready = 0;

    if (ngx_http_humanhours_redis_exiting
        || ngx_http_humanhours_redis_timer.timer_set)
    {
        return;
    }

    ngx_add_timer(&ngx_http_humanhours_redis_timer,
                  ngx_http_humanhours_redis_backoff);

    ngx_http_humanhours_redis_backoff *= 2;

    if (ngx_http_humanhours_redis_backoff > NGX_HH_RECONNECT_MAX) {
        ngx_http_humanhours_redis_backoff = NGX_HH_RECONNECT_MAX;
    }
}


static void
ngx_http_humanhours_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_uint_t   i;
    ngx_log_t   *log;
    const char  *argv[3];
    size_t       argvlen[3];

    log = ngx_http_humanhours_redis_cycle->log;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after this callback */
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "humanhours: connecting to Redis failed: %s, "
                      "retrying in %M ms", ac->errstr,
                      ngx_http_humanhours_redis_backoff);
        ngx_http_humanhours_redis_schedule(log);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, log, 0, "humanhours: connected to Redis");

    ngx_http_humanhours_redis_backoff = NGX_HH_RECONNECT_MIN;

    /* the scripts are loaded before any request can use the connection */

    ngx_http_humanhours_redis_loaded = 0;

    for (i = 0; i < NGX_HH_SCRIPT_COUNT; i++) {
        argv[0] = "SCRIPT";
        argvlen[0] = sizeof("SCRIPT") - 1;
        argv[1] = "LOAD";
        argvlen[1] = sizeof("LOAD") - 1;
        argv[2] = ngx_http_humanhours_scripts[i].text;
        argvlen[2] = ngx_strlen(argv[2]);

        (void) redisAsyncCommandArgv((redisAsyncContext *) ac,
                                     ngx_http_humanhours_redis_script_loaded,
                                     &ngx_http_humanhours_scripts[i],
                                     3, argv, argvlen);
    }
}


static void
ngx_http_humanhours_redis_script_loaded(redisAsyncContext *ac, void *data,
    void *privdata)
{
    redisReply                 *reply = data;
    ngx_http_humanhours_lua_t  *lua = privdata;

    ngx_log_t  *log;

    log = ngx_http_humanhours_redis_cycle->log;

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_STRING
        || ngx_strcmp(reply->str, lua->sha1) != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "humanhours: loading a script into Redis failed: %s",
                      reply->type == REDIS_REPLY_ERROR
                      ? reply->str : "unexpected reply");
        return;
    }

    if (++ngx_http_humanhours_redis_loaded == NGX_HH_SCRIPT_COUNT) {
        ngx_http_humanhours_redis_ready = 1;
    }
}


static void
ngx_http_humanhours_redis_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_log_t  *log;

    if (ngx_http_humanhours_redis_exiting) {
        return;
    }

    log = ngx_http_humanhours_redis_cycle->log;

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "humanhours: lost the connection to Redis: %s, "
                  "reconnecting in %M ms",
                  ac->errstr[0] ? ac->errstr : "closed by the server",
                  ngx_http_humanhours_redis_backoff);

    ngx_http_humanhours_redis_schedule(log);
}


static void
ngx_http_humanhours_redis_reply(redisAsyncContext *ac, void *data,
    void *privdata)
{
    redisReply                 *reply = data;
    ngx_http_humanhours_op_t   *op = privdata;

    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_http_humanhours_ctx_t     *ctx;
    ngx_http_humanhours_reply_pt   handler;

    r = op->request;
    handler = op->handler;

    ngx_http_humanhours_stat_add(NGX_HH_STAT_REDIS_REPLIES, 1);
    ngx_http_humanhours_stat_add(NGX_HH_STAT_REDIS_LATENCY_MS,
                                 ngx_current_msec - op->sent);

    ngx_free(op);

    if (r == NULL || ngx_http_humanhours_redis_exiting) {
        /* the response was sent, or the client left, while Redis worked */
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);
    ctx->op = NULL;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    if (reply == NULL) {
        ngx_http_humanhours_stat_add(NGX_HH_STAT_REDIS_ERRORS, 1);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "humanhours: the connection to Redis failed before "
                      "the reply, answering 503");
    }

    c = r->connection;

    handler(r, reply);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_humanhours_redis_deadline(ngx_event_t *ev)
{
    ngx_connection_t                 *c;
    ngx_http_request_t               *r;
    ngx_http_humanhours_ctx_t        *ctx;
    ngx_http_humanhours_main_conf_t  *hmcf;

    r = ev->data;
    c = r->connection;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);
    hmcf = ngx_http_get_module_main_conf(r, ngx_http_humanhours_module);

    if (ctx->op != NULL) {
        ctx->op->request = NULL;
        ctx->op = NULL;
    }

    ngx_http_humanhours_stat_add(NGX_HH_STAT_REDIS_ERRORS, 1);

    ngx_log_error(NGX_LOG_ERR, c->log, 0,
                  "humanhours: Redis did not answer within %M ms, key "
                  "prefix %s, answering 503", hmcf->redis_timeout,
                  ctx->parts.prefix);

    ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
        "The event queue did not confirm the event in time; it was not "
        "recorded.", "Retry with the same Idempotency-Key.", NULL);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_humanhours_redis_cleanup_request(void *data)
{
    ngx_http_request_t  *r = data;

    ngx_http_humanhours_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (ctx->op != NULL) {
        ctx->op->request = NULL;
        ctx->op = NULL;
    }

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }
}


static void
ngx_http_humanhours_redis_read(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_humanhours_redis_write(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleWrite(c->data);
}


/*
 * hiredis reads at most 16 KiB per call and expects to be called again
 * while data is pending, so the socket is registered level-triggered,
 * unlike nginx's own edge-triggered connections.
 */

static void
ngx_http_humanhours_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->read->active) {
        (void) ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_humanhours_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_humanhours_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->write->active) {
        (void) ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_humanhours_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


/* hiredis closes the socket itself, so nginx only frees the connection */

static void
ngx_http_humanhours_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_humanhours_redis_del_read(c);
    ngx_http_humanhours_redis_del_write(c);

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}
