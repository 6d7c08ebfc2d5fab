/*
 * The read endpoints: the organisation's agents, its task types and its
 * usage this month. Each response is built by one script in Redis from the
 * state that the writer and the track script keep there, so a read costs
 * one Redis round trip and never touches Postgres.
 */

#include "ngx_http_humanhours_module.h"


#define NGX_HH_AGENT_DAYS        30
#define NGX_HH_DEFAULT_LIMIT     50
#define NGX_HH_MAX_LIMIT         500
#define NGX_HH_MAX_CURSOR        512


static ngx_int_t ngx_http_humanhours_read_send(ngx_http_request_t *r,
    ngx_uint_t eval);
static void ngx_http_humanhours_read_reply(ngx_http_request_t *r,
    redisReply *reply);
static ngx_int_t ngx_http_humanhours_read_args(ngx_http_request_t *r,
    ngx_str_t *limit, ngx_str_t *cursor, ngx_str_t *category);


/*
 * Every read script starts with the key check of the track script, so a
 * revoked key is refused on the next read even while it is cached.
 * KEYS[1] is hh:key:<prefix> and ARGV[1] the key id.
 */
#define NGX_HH_READ_KEY_CHECK                                                 \
    "local key = redis.call('HMGET', KEYS[1], 'id', 'revoked')\n"            \
    "if key[1] ~= ARGV[1] then return {'err', 'invalid_api_key'} end\n"      \
    "if key[2] == '1' then return {'err', 'key_revoked'} end\n"


/*
 * KEYS: hh:key:<prefix> hh:org:<org> hh:org:<org>:agents and the day hashes
 *       hh:org:<org>:day:<YYYY-MM-DD> of the last 30 days, today first
 * ARGV: key id, limit, cursor ("" for the first page)
 *
 * Agents are sorted by hours saved over the 30 days, then by agent id. An
 * agent whose events are all older is listed with zeros. Sums are printed
 * with string.format, because cjson.encode keeps only 14 digits. The cursor
 * is the hex of the last agent id of the previous page with its hours.
 */

const char  ngx_http_humanhours_agents_script[] =
    NGX_HH_READ_KEY_CHECK
    "local currency = redis.call('HGET', KEYS[2], 'currency') or 'EUR'\n"
    "local first = redis.call('HGETALL', KEYS[3])\n"
    "local agents, list = {}, {}\n"
    "for i = 1, #first, 2 do\n"
    "  local a = {id = first[i], first = first[i + 1], events = 0,\n"
    "             hours = 0, money = 0}\n"
    "  agents[first[i]] = a\n"
    "  list[#list + 1] = a\n"
    "end\n"
    "for k = 4, #KEYS do\n"
    "  local day = redis.call('HGETALL', KEYS[k])\n"
    "  for i = 1, #day, 2 do\n"
    "    local a = agents[day[i]]\n"
    "    if a then\n"
    "      local e, h, m = string.match(day[i + 1], '^(%S+) (%S+) (%S+)$')\n"
    "      a.events = a.events + tonumber(e)\n"
    "      a.hours = a.hours + tonumber(h)\n"
    "      a.money = a.money + tonumber(m)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "table.sort(list, function(x, y)\n"
    "  if x.hours ~= y.hours then return x.hours > y.hours end\n"
    "  return x.id < y.id\n"
    "end)\n"
    "local limit = tonumber(ARGV[2])\n"
    "local start = 1\n"
    "if ARGV[3] ~= '' then\n"
    "  local text = string.gsub(ARGV[3], '..', function(h)\n"
    "    return string.char(tonumber(h, 16)) end)\n"
    "  local hours, id = string.match(text, '^(%S+) (.*)$')\n"
    "  hours = tonumber(hours)\n"
    "  if not hours then return {'err', 'cursor'} end\n"
    "  start = #list + 1\n"
    "  for i, a in ipairs(list) do\n"
    "    if a.hours < hours or (a.hours == hours and a.id > id) then\n"
    "      start = i\n"
    "      break\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local items = {}\n"
    "local last = math.min(#list, start + limit - 1)\n"
    "for i = start, last do\n"
    "  local a = list[i]\n"
    "  items[#items + 1] = '{\"agent_id\":' .. cjson.encode(a.id)\n"
    "    .. ',\"first_seen\":' .. cjson.encode(a.first)\n"
    "    .. ',\"events\":' .. string.format('%d', a.events)\n"
    "    .. ',\"hours_saved\":' .. string.format('%.3f', a.hours)\n"
    "    .. ',\"money_saved\":' .. string.format('%.2f', a.money) .. '}'\n"
    "end\n"
    "local cursor = 'null'\n"
    "if last < #list then\n"
    "  local text = string.format('%.17g', list[last].hours) .. ' '\n"
    "               .. list[last].id\n"
    "  cursor = '\"' .. string.gsub(text, '.', function(c)\n"
    "    return string.format('%02x', string.byte(c)) end) .. '\"'\n"
    "end\n"
    "return {'ok', '{\"agents\":[' .. table.concat(items, ',')\n"
    "  .. '],\"currency\":' .. cjson.encode(currency)\n"
    "  .. ',\"days\":30,\"next_cursor\":' .. cursor .. '}'}\n";


/*
 * KEYS: hh:key:<prefix> hh:tasktypes hh:tasktypes:meta hh:org:<org>:tasktypes
 *       hh:org:<org>:tasktypes:meta
 * ARGV: key id, category or ""
 *
 * The meta hashes map a task type key to "<category>\t<display name>".
 */

const char  ngx_http_humanhours_task_types_script[] =
    NGX_HH_READ_KEY_CHECK
    "local builtin = redis.call('HGETALL', KEYS[2])\n"
    "local own = {}\n"
    "local pairs_ = redis.call('HGETALL', KEYS[4])\n"
    "for i = 1, #pairs_, 2 do own[pairs_[i]] = pairs_[i + 1] end\n"
    "local list = {}\n"
    "local function meta(hash, key)\n"
    "  local m = redis.call('HGET', hash, key) or ''\n"
    "  local category, name = string.match(m, '^([^\\t]*)\\t(.*)$')\n"
    "  return category or '', name or key\n"
    "end\n"
    "for i = 1, #builtin, 2 do\n"
    "  local key, minutes = builtin[i], builtin[i + 1]\n"
    "  local category, name = meta(KEYS[3], key)\n"
    "  local t = {key = key, name = name, category = category,\n"
    "             baseline_minutes = tonumber(minutes), kind = 'builtin'}\n"
    "  local o = own[key]\n"
    "  if o and string.sub(o, 1, 9) == 'override:' then\n"
    "    t.kind = 'override'\n"
    "    t.original_baseline_minutes = tonumber(minutes)\n"
    "    t.baseline_minutes = tonumber(string.sub(o, 10))\n"
    "  end\n"
    "  list[#list + 1] = t\n"
    "end\n"
    "for key, o in pairs(own) do\n"
    "  if string.sub(o, 1, 7) == 'custom:'\n"
    "     and redis.call('HEXISTS', KEYS[2], key) == 0 then\n"
    "    local category, name = meta(KEYS[5], key)\n"
    "    list[#list + 1] = {key = key, name = name, category = category,\n"
    "      baseline_minutes = tonumber(string.sub(o, 8)), kind = 'custom'}\n"
    "  end\n"
    "end\n"
    "table.sort(list, function(x, y)\n"
    "  if x.category ~= y.category then return x.category < y.category end\n"
    "  return x.key < y.key\n"
    "end)\n"
    "local items = {}\n"
    "for _, t in ipairs(list) do\n"
    "  if ARGV[2] == '' or t.category == ARGV[2] then\n"
    "    items[#items + 1] = cjson.encode(t)\n"
    "  end\n"
    "end\n"
    "return {'ok', '{\"task_types\":[' .. table.concat(items, ',') .. ']}'}\n";


/*
 * KEYS: hh:key:<prefix> hh:org:<org> hh:usage:<org>:<YYYY-MM>
 * ARGV: key id, the month as YYYY-MM
 *
 * The defaults are the plan defaults of the track script.
 */

const char  ngx_http_humanhours_usage_script[] =
    NGX_HH_READ_KEY_CHECK
    "local org = redis.call('HMGET', KEYS[2], 'plan', 'currency',\n"
    "  'rate_limit', 'monthly_events', 'hard_cap')\n"
    "if not org[1] then return {'err', 'unknown_organisation'} end\n"
    "local usage = redis.call('HMGET', KEYS[3], 'events', 'test_events')\n"
    "local limit = tonumber(org[3]) or\n"
    "  ({free = 10, pro = 200, agency = 500})[org[1]] or 1000\n"
    "local included = tonumber(org[4]) or\n"
    "  ({free = 500, pro = 10000, agency = 25000})[org[1]]\n"
    "local hard = org[5] == '1' or (org[5] == false and org[1] == 'free')\n"
    "local u = {plan = org[1], currency = org[2] or 'EUR',\n"
    "  period = ARGV[2], events_this_month = tonumber(usage[1] or '0'),\n"
    "  test_events_this_month = tonumber(usage[2] or '0'),\n"
    "  rate_limit_per_second = limit, overage_allowed = not hard}\n"
    "local text = cjson.encode(u)\n"
    "if included then\n"
    "  text = string.sub(text, 1, -2) .. ',\"events_included\":'\n"
    "         .. string.format('%d', included) .. '}'\n"
    "else\n"
    "  text = string.sub(text, 1, -2) .. ',\"events_included\":null}'\n"
    "end\n"
    "return {'ok', text}\n";


ngx_int_t
ngx_http_humanhours_read_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_http_humanhours_ctx_t  *ctx;

    rc = ngx_http_humanhours_begin(r, NGX_HTTP_GET|NGX_HTTP_HEAD, &ctx);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* the response may come later, from Redis or the thread pool */
    r->main->count++;

    ngx_http_humanhours_authenticate(r);

    return NGX_DONE;
}


void
ngx_http_humanhours_read(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_humanhours_read_send(r, 0);

    if (rc == NGX_DONE) {
        /* the response to a bad query argument was sent already */
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
            "The data store is unavailable.", "Retry in a moment.", NULL);
    }
}


static ngx_int_t
ngx_http_humanhours_read_send(ngx_http_request_t *r, ngx_uint_t eval)
{
    ngx_tm_t                         tm;
    ngx_str_t                        limit, cursor, category;
    ngx_uint_t                       i, n, nkeys, days;
    ngx_int_t                        rc;
    ngx_http_humanhours_ctx_t       *ctx;
    ngx_http_humanhours_lua_t       *lua;
    ngx_http_humanhours_loc_conf_t  *hlcf;

    u_char       keys[3 + NGX_HH_AGENT_DAYS][64];
    u_char       month[sizeof("YYYY-MM")];
    u_char       numkeys[NGX_INT_T_LEN + 1];
    const char  *argv[3 + 3 + NGX_HH_AGENT_DAYS + 3];
    size_t       argvlen[3 + 3 + NGX_HH_AGENT_DAYS + 3];

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);
    hlcf = ngx_http_get_module_loc_conf(r, ngx_http_humanhours_module);

    lua = &ngx_http_humanhours_scripts[hlcf->read];
    nkeys = 0;
    n = 3;

    ngx_sprintf(ctx->key_id_text, "%L%Z", ctx->key_id);
    ngx_sprintf(keys[nkeys++], "hh:key:%*s%Z", (size_t) HH_KEY_PREFIX_LEN,
                ctx->parts.prefix);

    switch (hlcf->read) {

    case NGX_HH_SCRIPT_AGENTS:
        rc = ngx_http_humanhours_read_args(r, &limit, &cursor, &category);
        if (rc != NGX_OK) {
            return rc;
        }

        ngx_sprintf(keys[nkeys++], "hh:org:%L%Z", ctx->org_id);
        ngx_sprintf(keys[nkeys++], "hh:org:%L:agents%Z", ctx->org_id);

        for (days = 0; days < NGX_HH_AGENT_DAYS; days++) {
            ngx_gmtime(ngx_time() - (time_t) days * 86400, &tm);
            ngx_sprintf(keys[nkeys++], "hh:org:%L:day:%4d-%02d-%02d%Z",
                        ctx->org_id, tm.ngx_tm_year, tm.ngx_tm_mon,
                        tm.ngx_tm_mday);
        }

        for (i = 0; i < nkeys; i++) {
            argv[n++] = (char *) keys[i];
        }

        argv[n++] = (char *) ctx->key_id_text;
        argv[n++] = (char *) limit.data;
        argv[n++] = (char *) cursor.data;
        break;

    case NGX_HH_SCRIPT_TASK_TYPES:
        rc = ngx_http_humanhours_read_args(r, &limit, &cursor, &category);
        if (rc != NGX_OK) {
            return rc;
        }

        ngx_sprintf(keys[nkeys++], "hh:tasktypes%Z");
        ngx_sprintf(keys[nkeys++], "hh:tasktypes:meta%Z");
        ngx_sprintf(keys[nkeys++], "hh:org:%L:tasktypes%Z", ctx->org_id);
        ngx_sprintf(keys[nkeys++], "hh:org:%L:tasktypes:meta%Z",
                    ctx->org_id);

        for (i = 0; i < nkeys; i++) {
            argv[n++] = (char *) keys[i];
        }

        argv[n++] = (char *) ctx->key_id_text;
        argv[n++] = (char *) category.data;
        break;

    default: /* NGX_HH_SCRIPT_USAGE */
        ngx_gmtime(ngx_time(), &tm);

        ngx_sprintf(keys[nkeys++], "hh:org:%L%Z", ctx->org_id);
        ngx_sprintf(keys[nkeys++], "hh:usage:%L:%4d-%02d%Z", ctx->org_id,
                    tm.ngx_tm_year, tm.ngx_tm_mon);
        ngx_sprintf(month, "%4d-%02d%Z", tm.ngx_tm_year, tm.ngx_tm_mon);

        for (i = 0; i < nkeys; i++) {
            argv[n++] = (char *) keys[i];
        }

        argv[n++] = (char *) ctx->key_id_text;
        argv[n++] = (char *) month;
        break;
    }

    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? lua->text : (char *) lua->sha1;

    ngx_sprintf(numkeys, "%ui%Z", nkeys);
    argv[2] = (char *) numkeys;

    for (i = 0; i < n; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    return ngx_http_humanhours_redis_command(r,
                                             ngx_http_humanhours_read_reply,
                                             n, argv, argvlen);
}


/*
 * Parses ?limit=N&cursor=HEX&category=NAME into NUL-terminated strings.
 * For a bad value it sends a 422 itself and returns NGX_DONE.
 */

static ngx_int_t
ngx_http_humanhours_read_args(ngx_http_request_t *r, ngx_str_t *limit,
    ngx_str_t *cursor, ngx_str_t *category)
{
    u_char     *p;
    ngx_int_t   n;
    ngx_str_t   value, field;

    static u_char  empty[] = "";

    limit->data = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
    if (limit->data == NULL) {
        return NGX_ERROR;
    }

    n = NGX_HH_DEFAULT_LIMIT;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &value) == NGX_OK) {
        n = ngx_atoi(value.data, value.len);

        if (n < 1 || n > NGX_HH_MAX_LIMIT) {
            ngx_str_set(&field, "limit");
            ngx_http_humanhours_finalize_error(r,
                NGX_HH_ERR_VALIDATION_ERROR,
                "limit must be a whole number from 1 to 500.", NULL,
                &field);
            return NGX_DONE;
        }
    }

    limit->len = ngx_sprintf(limit->data, "%i%Z", n) - limit->data - 1;

    cursor->data = empty;
    cursor->len = 0;

    if (ngx_http_arg(r, (u_char *) "cursor", 6, &value) == NGX_OK) {

        for (p = value.data; p < value.data + value.len; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
                break;
            }
        }

        if (value.len == 0 || value.len % 2 || value.len > NGX_HH_MAX_CURSOR
            || p != value.data + value.len)
        {
            ngx_str_set(&field, "cursor");
            ngx_http_humanhours_finalize_error(r,
                NGX_HH_ERR_VALIDATION_ERROR,
                "cursor must be the next_cursor of a previous page.", NULL,
                &field);
            return NGX_DONE;
        }

        cursor->data = ngx_pnalloc(r->pool, value.len + 1);
        if (cursor->data == NULL) {
            return NGX_ERROR;
        }

        *ngx_cpymem(cursor->data, value.data, value.len) = '\0';
        cursor->len = value.len;
    }

    category->data = empty;
    category->len = 0;

    if (ngx_http_arg(r, (u_char *) "category", 8, &value) == NGX_OK) {

        for (p = value.data; p < value.data + value.len; p++) {
            if (*p < 'a' || *p > 'z') {
                break;
            }
        }

        if (value.len == 0 || value.len > 32 || p != value.data + value.len) {
            ngx_str_set(&field, "category");
            ngx_http_humanhours_finalize_error(r,
                NGX_HH_ERR_VALIDATION_ERROR,
                "category must be one of support, ops, sales, legal, "
                "content, research, data, dev.", NULL, &field);
            return NGX_DONE;
        }

        category->data = ngx_pnalloc(r->pool, value.len + 1);
        if (category->data == NULL) {
            return NGX_ERROR;
        }

        *ngx_cpymem(category->data, value.data, value.len) = '\0';
        category->len = value.len;
    }

    return NGX_OK;
}


static void
ngx_http_humanhours_read_reply(ngx_http_request_t *r, redisReply *reply)
{
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_chain_t                 out;
    ngx_table_elt_t            *h;
    ngx_http_humanhours_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_humanhours_module);

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0 && !ctx->evaluated)
    {
        ctx->evaluated = 1;

        if (ngx_http_humanhours_read_send(r, 1) == NGX_OK) {
            return;
        }
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING
        || ngx_strcmp(reply->element[0]->str, "ok") != 0)
    {
        if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
            && reply->elements == 2
            && reply->element[1]->type == REDIS_REPLY_STRING
            && ngx_strcmp(reply->element[1]->str, "key_revoked") == 0)
        {
            ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_KEY_REVOKED,
                "The API key was revoked.",
                "Create a new key and replace the revoked one.", NULL);
            return;
        }

        if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
            && reply->elements == 2
            && reply->element[1]->type == REDIS_REPLY_STRING
            && ngx_strcmp(reply->element[1]->str, "invalid_api_key") == 0)
        {
            ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_INVALID_API_KEY,
                "The API key is invalid.", NULL, NULL);
            return;
        }

        if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
            && reply->elements == 2
            && reply->element[1]->type == REDIS_REPLY_STRING
            && ngx_strcmp(reply->element[1]->str, "cursor") == 0)
        {
            ngx_str_t  field = ngx_string("cursor");

            ngx_http_humanhours_finalize_error(r,
                NGX_HH_ERR_VALIDATION_ERROR,
                "cursor must be the next_cursor of a previous page.", NULL,
                &field);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "humanhours: read of organisation %L failed: %s",
                      ctx->org_id, reply && reply->type == REDIS_REPLY_ERROR
                                   ? reply->str : "no usable reply");

        ngx_http_humanhours_finalize_error(r, NGX_HH_ERR_UNAVAILABLE,
            "The data store is unavailable.", "Retry in a moment.", NULL);
        return;
    }

    b = ngx_create_temp_buf(r->pool, reply->element[1]->len);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    b->last = ngx_cpymem(b->last, reply->element[1]->str,
                         reply->element[1]->len);
    b->last_buf = 1;
    b->last_in_chain = 1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    out.buf = b;
    out.next = NULL;

    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));
}
