/*
 * The track script: one EVALSHA per accepted request that checks the key,
 * resolves baseline, hourly rate, currency and prices, and adds the stream
 * entry, atomically. The layout of its keys is in docs/internals.md.
 */

#include "ngx_http_humanhours_module.h"

#include <ngx_sha1.h>


#define NGX_HH_SCRIPT_KEYS   7
#define NGX_HH_SCRIPT_ARGS   9
#define NGX_HH_SCRIPT_ARGC   (3 + NGX_HH_SCRIPT_KEYS + NGX_HH_SCRIPT_ARGS)


static void ngx_http_humanhours_script_reply(ngx_http_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_humanhours_script_send(ngx_http_request_t *r,
    ngx_uint_t eval);
static ngx_int_t ngx_http_humanhours_script_resolved(ngx_http_request_t *r,
    redisReply *reply);
static u_char *ngx_http_humanhours_reply_copy(ngx_http_request_t *r,
    redisReply *reply);


/*
 * KEYS: hh:key:<prefix> hh:org:<org> hh:tasktypes hh:org:<org>:tasktypes
 *       hh:org:<org>:rates hh:prices hh:events
 * ARGV: key id, deadline in Unix ms, task type, agent id, model, request
 *       baseline, event JSON, metadata JSON, audit sample JSON
 *
 * Work whose deadline has passed is refused, because the module has already
 * answered 503 for it.
 */

const char  ngx_http_humanhours_script[] =
    "local t = redis.call('TIME')\n"
    "if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "   > tonumber(ARGV[2]) then\n"
    "  return {'err', 'deadline'}\n"
    "end\n"
    "local key = redis.call('HMGET', KEYS[1], 'id', 'revoked')\n"
    "if key[1] ~= ARGV[1] then return {'err', 'invalid_api_key'} end\n"
    "if key[2] == '1' then return {'err', 'key_revoked'} end\n"
    "local org = redis.call('HMGET', KEYS[2], 'plan', 'currency',\n"
    "                       'hourly_rate')\n"
    "if not org[1] then return {'err', 'unknown_organisation'} end\n"
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
    "return {'ok', baseline, source, rate, currency, input, output,\n"
    "        org[1], id}\n";


u_char  ngx_http_humanhours_script_sha1[41];


void
ngx_http_humanhours_script_init(void)
{
    u_char     digest[20];
    ngx_sha1_t  sha1;

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, ngx_http_humanhours_script,
                    sizeof(ngx_http_humanhours_script) - 1);
    ngx_sha1_final(digest, &sha1);

    ngx_hex_dump(ngx_http_humanhours_script_sha1, digest, 20);
    ngx_http_humanhours_script_sha1[40] = '\0';
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
    ngx_uint_t                        i;
    ngx_time_t                       *tp;
    ngx_http_humanhours_ctx_t        *ctx;
    ngx_http_humanhours_main_conf_t  *hmcf;

    u_char       keys[NGX_HH_SCRIPT_KEYS][64];
    u_char       deadline[NGX_INT64_LEN + 1];
    const char  *argv[NGX_HH_SCRIPT_ARGC];
    size_t       argvlen[NGX_HH_SCRIPT_ARGC];

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);
    hmcf = ngx_http_get_module_main_conf(r, ngx_http_humanhours_module);

    tp = ngx_timeofday();

    /*
     * Redis gets a quarter of the timeout less than the module waits, so
     * that work Redis accepts is answered before the module gives up on it.
     */

    ngx_sprintf(deadline, "%L%Z", (int64_t) tp->sec * 1000 + tp->msec
                                  + hmcf->redis_timeout * 3 / 4);

    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? ngx_http_humanhours_script
                   : (char *) ngx_http_humanhours_script_sha1;
    argv[2] = "7";

    p = ngx_sprintf(keys[0], "hh:key:%*s", (size_t) HH_KEY_PREFIX_LEN,
                    ctx->parts.prefix);
    argvlen[3] = p - keys[0];
    p = ngx_sprintf(keys[1], "hh:org:%L", ctx->org_id);
    argvlen[4] = p - keys[1];
    p = ngx_sprintf(keys[2], "hh:tasktypes");
    argvlen[5] = p - keys[2];
    p = ngx_sprintf(keys[3], "hh:org:%L:tasktypes", ctx->org_id);
    argvlen[6] = p - keys[3];
    p = ngx_sprintf(keys[4], "hh:org:%L:rates", ctx->org_id);
    argvlen[7] = p - keys[4];
    p = ngx_sprintf(keys[5], "hh:prices");
    argvlen[8] = p - keys[5];
    p = ngx_sprintf(keys[6], "hh:events");
    argvlen[9] = p - keys[6];

    for (i = 0; i < NGX_HH_SCRIPT_KEYS; i++) {
        argv[3 + i] = (char *) keys[i];
    }

    argv[10] = (char *) ctx->key_id_text;
    argv[11] = (char *) deadline;
    argv[12] = ctx->event.task_type.data;
    argv[13] = ctx->event.agent_id.data;
    argv[14] = ctx->event.model.data ? ctx->event.model.data : "";
    argv[15] = ctx->baseline.len ? (char *) ctx->baseline.data : "";
    argv[16] = (char *) ctx->event_json.data;
    argv[17] = ctx->metadata.len ? (char *) ctx->metadata.data : "";
    argv[18] = ctx->audit_sample.len ? (char *) ctx->audit_sample.data : "";

    argvlen[0] = ngx_strlen(argv[0]);
    argvlen[1] = ngx_strlen(argv[1]);
    argvlen[2] = 1;
    argvlen[10] = ngx_strlen(ctx->key_id_text);
    argvlen[11] = ngx_strlen(deadline);
    argvlen[12] = ctx->event.task_type.len;
    argvlen[13] = ctx->event.agent_id.len;
    argvlen[14] = ctx->event.model.len;
    argvlen[15] = ctx->baseline.len;
    argvlen[16] = ctx->event_json.len;
    argvlen[17] = ctx->metadata.len;
    argvlen[18] = ctx->audit_sample.len;

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
