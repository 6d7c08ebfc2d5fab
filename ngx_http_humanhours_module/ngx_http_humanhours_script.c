/*
 * The track script: one EVALSHA per accepted request that checks the key,
 * resolves baseline, hourly rate, currency and prices, and adds the stream
 * entry, atomically. The layout of its keys is in docs/internals.md.
 */

#include "ngx_http_humanhours_module.h"

#include <ngx_sha1.h>

#include "hh_entry.h"


#define NGX_HH_SCRIPT_KEYS   10
#define NGX_HH_SCRIPT_ARGS   12
#define NGX_HH_SCRIPT_ARGC   (3 + NGX_HH_SCRIPT_KEYS + NGX_HH_SCRIPT_ARGS)


static void ngx_http_humanhours_script_reply(ngx_http_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_humanhours_script_send(ngx_http_request_t *r,
    ngx_uint_t eval);
static ngx_int_t ngx_http_humanhours_script_resolved(ngx_http_request_t *r,
    redisReply *reply);
static u_char *ngx_http_humanhours_reply_copy(ngx_http_request_t *r,
    redisReply *reply);
static void ngx_http_humanhours_replay(ngx_http_request_t *r,
    redisReply *fields);


/*
 * KEYS: hh:key:<prefix> hh:org:<org> hh:tasktypes hh:org:<org>:tasktypes
 *       hh:org:<org>:rates hh:prices hh:events hh:idem:<org>:<hash>
 *       hh:rate:<key id>:<second> hh:usage:<org>:<YYYY-MM>
 * ARGV: key id, deadline in Unix ms, task type, agent id, model, request
 *       baseline, event JSON, metadata JSON, audit sample JSON, "1" when
 *       an idempotency key was sent, body hash, "1" for a test key
 *
 * Work whose deadline has passed is refused, because the module has already
 * sent 503 for it. Refusals consume neither the rate limit nor the
 * quota. The idempotency record keeps the stream entry's fields, from
 * which the module renders the original response again.
 */

const char  ngx_http_humanhours_track_script[] =
    "local t = redis.call('TIME')\n"
    "if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "   > tonumber(ARGV[2]) then\n"
    "  return {'err', 'deadline'}\n"
    "end\n"
    "local key = redis.call('HMGET', KEYS[1], 'id', 'revoked')\n"
    "if key[1] ~= ARGV[1] then return {'err', 'invalid_api_key'} end\n"
    "if key[2] == '1' then return {'err', 'key_revoked'} end\n"
    "local org = redis.call('HMGET', KEYS[2], 'plan', 'currency',\n"
    "  'hourly_rate', 'rate_limit', 'monthly_events', 'hard_cap')\n"
    "if not org[1] then return {'err', 'unknown_organisation'} end\n"
    "if ARGV[10] == '1' then\n"
    "  local body = redis.call('HGET', KEYS[8], 'body')\n"
    "  if body then\n"
    "    if body ~= ARGV[11] then\n"
    "      return {'err', 'idempotency_key_reused'}\n"
    "    end\n"
    "    return {'replay', redis.call('HGETALL', KEYS[8])}\n"
    "  end\n"
    "end\n"
    "local baseline, source = ARGV[6], 'request'\n"
    "if baseline == '' then\n"
    "  local own = redis.call('HGET', KEYS[4], ARGV[3])\n"
    "  local builtin = redis.call('HGET', KEYS[3], ARGV[3])\n"
    "  if own and string.sub(own, 1, 9) == 'override:' then\n"
    "    baseline, source = string.sub(own, 10), 'override'\n"
    "  elseif builtin then\n"
    "    baseline, source = builtin, 'builtin'\n"
    "  elseif own and string.sub(own, 1, 7) == 'custom:' then\n"
    "    baseline, source = string.sub(own, 8), 'custom'\n"
    "  else\n"
    "    return {'err', 'unknown_task_type'}\n"
    "  end\n"
    "end\n"
    "local limit = tonumber(org[4])\n"
    "if not limit then\n"
    "  limit = ({free = 10, pro = 200, agency = 500})[org[1]] or 1000\n"
    "end\n"
    "if tonumber(redis.call('GET', KEYS[9]) or '0') >= limit then\n"
    "  return {'err', 'rate_limited'}\n"
    "end\n"
    "local counter = 'events'\n"
    "if ARGV[12] == '1' then counter = 'test_events' end\n"
    "local hard = org[6] == '1' or (org[6] == false and org[1] == 'free')\n"
    "if hard and counter == 'events' then\n"
    "  local quota = tonumber(org[5]) or 500\n"
    "  local used = tonumber(redis.call('HGET', KEYS[10], 'events') or '0')\n"
    "  if used >= quota then return {'err', 'quota_exceeded'} end\n"
    "end\n"
    "local rate = redis.call('HGET', KEYS[5], ARGV[4]) or org[3] or '45'\n"
    "local currency = org[2] or 'EUR'\n"
    "local input, output = '', ''\n"
    "if ARGV[5] ~= '' then\n"
    "  local prices = redis.call('HGET', KEYS[6], ARGV[5])\n"
    "  if prices then\n"
    "    input, output = string.match(prices, '^(%S+) (%S+)$')\n"
    "    if not input then input, output = '', '' end\n"
    "  end\n"
    "end\n"
    "local entry = {'v', '1', 'event', ARGV[7],\n"
    "  'baseline_minutes', baseline, 'baseline_source', source,\n"
    "  'hourly_rate', rate, 'currency', currency,\n"
    "  'input_price', input, 'output_price', output}\n"
    "if ARGV[8] ~= '' then\n"
    "  entry[#entry + 1] = 'metadata'\n"
    "  entry[#entry + 1] = ARGV[8]\n"
    "end\n"
    "if ARGV[9] ~= '' and org[1] ~= 'free' then\n"
    "  entry[#entry + 1] = 'audit_sample'\n"
    "  entry[#entry + 1] = ARGV[9]\n"
    "end\n"
    "local id = redis.call('XADD', KEYS[7], '*', unpack(entry))\n"
    "redis.call('INCR', KEYS[9])\n"
    "redis.call('EXPIRE', KEYS[9], 2)\n"
    "redis.call('HINCRBY', KEYS[10], counter, 1)\n"
    "redis.call('EXPIRE', KEYS[10], 40 * 86400)\n"
    "if ARGV[10] == '1' then\n"
    "  redis.call('HSET', KEYS[8], 'body', ARGV[11], unpack(entry))\n"
    "  redis.call('EXPIRE', KEYS[8], 86400)\n"
    "end\n"
    "return {'ok', baseline, source, rate, currency, input, output,\n"
    "        org[1], id}\n";


/* Indexed by ngx_http_humanhours_script_e; loaded on every connect. */
ngx_http_humanhours_lua_t  ngx_http_humanhours_scripts[] = {
    { ngx_http_humanhours_track_script, "" },
    { ngx_http_humanhours_agents_script, "" },
    { ngx_http_humanhours_task_types_script, "" },
    { ngx_http_humanhours_usage_script, "" }
};


void
ngx_http_humanhours_script_init(void)
{
    u_char                      digest[20];
    ngx_uint_t                  i;
    ngx_sha1_t                  sha1;
    ngx_http_humanhours_lua_t  *lua;

    for (i = 0; i < NGX_HH_SCRIPT_COUNT; i++) {
        lua = &ngx_http_humanhours_scripts[i];

        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, lua->text, ngx_strlen(lua->text));
        ngx_sha1_final(digest, &sha1);

        ngx_hex_dump(lua->sha1, digest, 20);
        lua->sha1[40] = '\0';
    }
}


void
ngx_http_humanhours_queue_event(ngx_http_request_t *r)
{
    if (ngx_http_humanhours_script_send(r, 0) != NGX_OK) {
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
            "The event queue is unavailable; the event was not recorded.",
            "Retry with the same Idempotency-Key.", NULL);
    }
}


static ngx_int_t
ngx_http_humanhours_script_send(ngx_http_request_t *r, ngx_uint_t eval)
{
    u_char                           *p;
    int64_t                           now;
    ngx_tm_t                          tm;
    ngx_uint_t                        i, n;
    ngx_time_t                       *tp;
    ngx_http_humanhours_ctx_t        *ctx;
    ngx_http_humanhours_main_conf_t  *hmcf;

    u_char       keys[NGX_HH_SCRIPT_KEYS][64];
    u_char       deadline[NGX_INT64_LEN + 1];
    u_char       body_hash[32], body_hex[65];
    const char  *argv[NGX_HH_SCRIPT_ARGC];
    size_t       argvlen[NGX_HH_SCRIPT_ARGC];

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);
    hmcf = ngx_http_get_module_main_conf(r, ngx_http_humanhours_module);

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    ngx_gmtime(tp->sec, &tm);

    /*
     * Redis gets a quarter of the timeout less than the module waits, so
     * that work Redis accepts gets its 201 before the module gives up on it.
     */

    ngx_sprintf(deadline, "%L%Z", now + hmcf->redis_timeout * 3 / 4);

    /* the body's digest matters only to a request with an idempotency key */

    body_hex[0] = '\0';

    if (ctx->idempotency_hash[0]) {
        crypto_generichash(body_hash, sizeof(body_hash), ctx->body.data,
                           ctx->body.len, NULL, 0);
        ngx_hex_dump(body_hex, body_hash, sizeof(body_hash));
        body_hex[64] = '\0';
    }

    n = 0;
    p = ngx_sprintf(keys[n++], "hh:key:%*s%Z", (size_t) HH_KEY_PREFIX_LEN,
                    ctx->parts.prefix);
    ngx_sprintf(keys[n++], "hh:org:%L%Z", ctx->org_id);
    ngx_sprintf(keys[n++], "hh:tasktypes%Z");
    ngx_sprintf(keys[n++], "hh:org:%L:tasktypes%Z", ctx->org_id);
    ngx_sprintf(keys[n++], "hh:org:%L:rates%Z", ctx->org_id);
    ngx_sprintf(keys[n++], "hh:prices%Z");
    ngx_sprintf(keys[n++], "hh:events%Z");
    ngx_sprintf(keys[n++], "hh:idem:%L:%s%Z", ctx->org_id,
                ctx->idempotency_hash[0] ? (char *) ctx->idempotency_hash
                                         : "none");
    ngx_sprintf(keys[n++], "hh:rate:%L:%T%Z", ctx->key_id, tp->sec);
    ngx_sprintf(keys[n++], "hh:usage:%L:%4d-%02d%Z", ctx->org_id,
                tm.ngx_tm_year, tm.ngx_tm_mon);

    (void) p;

    n = 0;
    argv[n++] = eval ? "EVAL" : "EVALSHA";
    argv[n++] = eval ? ngx_http_humanhours_track_script
                     : (char *) ngx_http_humanhours_scripts[0].sha1;
    argv[n++] = "10";

    for (i = 0; i < NGX_HH_SCRIPT_KEYS; i++) {
        argv[n++] = (char *) keys[i];
    }

    argv[n++] = (char *) ctx->key_id_text;
    argv[n++] = (char *) deadline;
    argv[n++] = ctx->event.task_type.data;
    argv[n++] = ctx->event.agent_id.data;
    argv[n++] = ctx->event.model.data ? ctx->event.model.data : "";
    argv[n++] = ctx->baseline.len ? (char *) ctx->baseline.data : "";
    argv[n++] = (char *) ctx->event_json.data;
    argv[n++] = ctx->metadata.len ? (char *) ctx->metadata.data : "";
    argv[n++] = ctx->audit_sample.len ? (char *) ctx->audit_sample.data : "";
    argv[n++] = ctx->idempotency_hash[0] ? "1" : "0";
    argv[n++] = (char *) body_hex;
    argv[n++] = ctx->test ? "1" : "0";

    /* every argument is a NUL-terminated text */

    for (i = 0; i < n; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    return ngx_http_humanhours_redis_command(r,
                                    ngx_http_humanhours_script_reply,
                                    NGX_HH_SCRIPT_ARGC, argv, argvlen);
}


static void
ngx_http_humanhours_script_reply(ngx_http_request_t *r, redisReply *reply)
{
    redisReply                 *status, *code;
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (reply == NULL) {
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
            "The event queue is unavailable; the event was not recorded.",
            "Retry with the same Idempotency-Key.", NULL);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        if (ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0 && !ctx->evaluated) {
            /* someone flushed the script cache: send the script itself */
            ctx->evaluated = 1;

            if (ngx_http_humanhours_script_send(r, 1) == NGX_OK) {
                return;
            }
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "humanhours: track script failed for key id %L: %s",
                      ctx->key_id, reply->str);

        ngx_http_humanhours_stat_add(NGX_HH_STAT_REDIS_ERRORS, 1);
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
            "The event queue could not store the event; it was not "
            "recorded.", "Retry with the same Idempotency-Key.", NULL);
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING
        && ngx_strcmp(reply->element[0]->str, "replay") == 0)
    {
        ngx_http_humanhours_replay(r, reply->element[1]);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "humanhours: unexpected reply from the track script");
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    status = reply->element[0];
    code = reply->element[1];

    if (ngx_strcmp(status->str, "ok") == 0) {

        if (ngx_http_humanhours_script_resolved(r, reply) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_humanhours_finalize_event(r);
        return;
    }

    if (ngx_strcmp(code->str, "key_revoked") == 0) {
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_KEY_REVOKED,
            "The API key was revoked.",
            "Create a new key and replace the revoked one.", NULL);
        return;
    }

    if (ngx_strcmp(code->str, "invalid_api_key") == 0) {
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_INVALID_API_KEY,
            "The API key is invalid.", NULL, NULL);
        return;
    }

    if (ngx_strcmp(code->str, "unknown_task_type") == 0) {
        ngx_str_t  field = ngx_string("task_type");

        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNKNOWN_TASK_TYPE,
            "The task type is neither built in nor defined by the "
            "organisation.", "Send human_baseline_minutes, or use a "
            "built-in task type.", &field);
        return;
    }

    if (ngx_strcmp(code->str, "idempotency_key_reused") == 0) {
        ngx_str_t  field = ngx_string("Idempotency-Key");

        ngx_http_humanhours_finalize_error(r,
            NGX_HH_ERR_IDEMPOTENCY_KEY_REUSED,
            "This Idempotency-Key was used with a different body in the "
            "last 24 hours.", "Use a new key for a new event.", &field);
        return;
    }

    if (ngx_strcmp(code->str, "rate_limited") == 0) {
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_RATE_LIMITED,
            "This API key sent more events per second than its plan "
            "allows.", "Retry after the time in Retry-After.", NULL);
        return;
    }

    if (ngx_strcmp(code->str, "quota_exceeded") == 0) {
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_QUOTA_EXCEEDED,
            "The organisation used all events of its plan this month.",
            "Upgrade the plan, or retry after the time in Retry-After.",
            NULL);
        return;
    }

    if (ngx_strcmp(code->str, "unknown_organisation") == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "humanhours: organisation %L of key id %L is missing "
                      "in Redis, is the writer running?",
                      ctx->org_id, ctx->key_id);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "humanhours: Redis refused the event of key id %L: "
                      "%s, answering 503", ctx->key_id, code->str);
    }

    ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
        "The event queue is unavailable; the event was not recorded.",
        "Retry with the same Idempotency-Key.", NULL);
}


/* Copies the values the script resolved into the event. */

static ngx_int_t
ngx_http_humanhours_script_resolved(ngx_http_request_t *r, redisReply *reply)
{
    ngx_uint_t                  i;
    hh_event_t                 *ev;
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);
    ev = &ctx->event;

    if (reply->elements != 9) {
        return NGX_ERROR;
    }

    for (i = 1; i < 9; i++) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) {
            return NGX_ERROR;
        }
    }

    ev->baseline_minutes = strtod(reply->element[1]->str, NULL);

    ev->baseline_source.data =
                 (char *) ngx_http_humanhours_reply_copy(r, reply->element[2]);
    ev->baseline_source.len = reply->element[2]->len;

    ev->hourly_rate = strtod(reply->element[3]->str, NULL);

    ev->currency.data =
                 (char *) ngx_http_humanhours_reply_copy(r, reply->element[4]);
    ev->currency.len = reply->element[4]->len;

    if (ev->baseline_source.data == NULL || ev->currency.data == NULL) {
        return NGX_ERROR;
    }

    if (reply->element[5]->len && reply->element[6]->len) {
        ev->has_prices = 1;
        ev->input_price = strtod(reply->element[5]->str, NULL);
        ev->output_price = strtod(reply->element[6]->str, NULL);
    }

    return NGX_OK;
}


static u_char *
ngx_http_humanhours_reply_copy(ngx_http_request_t *r, redisReply *reply)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, reply->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, reply->str, reply->len + 1);

    return p;
}


/*
 * Sends the event stored under its idempotency key again, for a retry. The
 * response is rendered from the same values by the same code as the first
 * time, so its bytes are the same.
 */

static void
ngx_http_humanhours_replay(ngx_http_request_t *r, redisReply *fields)
{
    const char                 *reason;
    hh_entry_t                  entry;
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    reason = hh_entry_parse(&entry, NULL, fields);

    if (reason != NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "humanhours: the idempotency record of key id %L "
                      "cannot be read: %s", ctx->key_id, reason);
        hh_entry_free(&entry);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->event = entry.event;

    ngx_http_humanhours_finalize_replay(r);

    hh_entry_free(&entry);
}
