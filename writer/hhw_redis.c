/*
 * Redis connections for humanhours-writer and humanhours-admin: the address
 * format, connecting, and commands whose failures become one-line errors.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hhw_redis.h"


static int hhw_redis_parse_port(const char *text, int *port);
static int hhw_redis_reply_error(redisContext *ctx, redisReply *reply,
    hhw_error_t *err);


int
hhw_redis_addr_parse(const char *text, hhw_redis_addr_t *addr,
    hhw_error_t *err)
{
    size_t          len;
    const char     *host, *colon;
    unsigned char   binary[sizeof(struct in6_addr)];

    memset(addr, 0, sizeof(hhw_redis_addr_t));

    if (strncmp(text, "unix:", 5) == 0) {
        len = strlen(text + 5);

        if (len == 0 || len >= sizeof(addr->path)) {
            hhw_error_set(err, "Redis address \"%s\": the socket path must "
                          "have 1 to %zu bytes", text,
                          sizeof(addr->path) - 1);
            return -1;
        }

        memcpy(addr->path, text + 5, len + 1);
        return 0;
    }

    colon = strrchr(text, ':');
    host = text;

    if (colon == NULL || hhw_redis_parse_port(colon + 1, &addr->port) != 0) {
        goto invalid;
    }

    len = colon - text;

    if (text[0] == '[') {
        if (len < 3 || text[len - 1] != ']') {
            goto invalid;
        }

        host = text + 1;
        len -= 2;
    }

    if (len >= sizeof(addr->host)) {
        goto invalid;
    }

    memcpy(addr->host, host, len);
    addr->host[len] = '\0';

    if (inet_pton(host == text ? AF_INET : AF_INET6, addr->host, binary)
        != 1)
    {
        goto invalid;
    }

    return 0;

invalid:

    hhw_error_set(err, "invalid Redis address \"%s\": expected IPV4:PORT, "
                  "[IPV6]:PORT or unix:/PATH with a numeric address", text);
    return -1;
}


redisContext *
hhw_redis_connect(const hhw_redis_addr_t *addr, unsigned timeout_ms,
    hhw_error_t *err)
{
    redisContext    *ctx;
    struct timeval   tv;

    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;

    if (addr->host[0] != '\0') {
        ctx = redisConnectWithTimeout(addr->host, addr->port, tv);

    } else {
        ctx = redisConnectUnixWithTimeout(addr->path, tv);
    }

    if (ctx == NULL) {
        hhw_error_set(err, "Redis connection failed: out of memory");
        return NULL;
    }

    if (ctx->err == 0 && redisSetTimeout(ctx, tv) != REDIS_OK) {
        hhw_error_set(err, "setting the Redis timeout failed: %s",
                      strerror(errno));
        redisFree(ctx);
        return NULL;
    }

    if (ctx->err != 0) {
        if (addr->host[0] != '\0') {
            hhw_error_set(err, "Redis connection to %s port %d failed: %s",
                          addr->host, addr->port, ctx->errstr);

        } else {
            hhw_error_set(err, "Redis connection to %s failed: %s",
                          addr->path, ctx->errstr);
        }

        redisFree(ctx);
        return NULL;
    }

    return ctx;
}


redisReply *
hhw_redis_command(redisContext *ctx, int argc, const char **argv,
    const size_t *lens, hhw_error_t *err)
{
    redisReply  *reply;

    reply = redisCommandArgv(ctx, argc, argv, lens);

    if (hhw_redis_reply_error(ctx, reply, err) != 0) {
        if (reply != NULL) {
            freeReplyObject(reply);
        }

        return NULL;
    }

    return reply;
}


int
hhw_redis_queue_replace_hash(redisContext *ctx, const char *key,
    size_t npairs, const char **items, const size_t *lens)
{
    int           rc, queued;
    size_t        i, argc, *arglens;
    const char  **argv, *del[2];

    if (redisAppendCommand(ctx, "MULTI") != REDIS_OK) {
        return -1;
    }

    del[0] = "DEL";
    del[1] = key;

    if (redisAppendCommandArgv(ctx, 2, del, NULL) != REDIS_OK) {
        return -1;
    }

    queued = 2;

    if (npairs > 0) {
        argc = 2 + 2 * npairs;
        argv = malloc(argc * sizeof(char *));
        arglens = malloc(argc * sizeof(size_t));

        if (argv == NULL || arglens == NULL) {
            free(argv);
            free(arglens);
            return -1;
        }

        argv[0] = "HSET";
        arglens[0] = 4;
        argv[1] = key;
        arglens[1] = strlen(key);

        for (i = 0; i < 2 * npairs; i++) {
            argv[2 + i] = items[i];
            arglens[2 + i] = lens[i];
        }

        rc = redisAppendCommandArgv(ctx, argc, argv, arglens);

        free(argv);
        free(arglens);

        if (rc != REDIS_OK) {
            return -1;
        }

        queued++;
    }

    if (redisAppendCommand(ctx, "EXEC") != REDIS_OK) {
        return -1;
    }

    return queued + 1;
}


int
hhw_redis_read_replies(redisContext *ctx, unsigned count, hhw_error_t *err)
{
    int          failed;
    size_t       i;
    unsigned     n;
    redisReply  *reply;

    failed = 0;

    /* Replies after an error are read too, to keep the pipeline in step. */
    for (n = 0; n < count; n++) {
        reply = NULL;

        if (redisGetReply(ctx, (void **) &reply) != REDIS_OK) {
            hhw_redis_reply_error(ctx, NULL, err);
            return -1;
        }

        if (!failed && hhw_redis_reply_error(ctx, reply, err) != 0) {
            failed = 1;
        }

        /* EXEC returns the replies of the queued commands. */
        if (!failed && reply->type == REDIS_REPLY_ARRAY) {
            for (i = 0; i < reply->elements; i++) {
                if (hhw_redis_reply_error(ctx, reply->element[i], err) != 0) {
                    failed = 1;
                    break;
                }
            }
        }

        freeReplyObject(reply);
    }

    return failed ? -1 : 0;
}


static int
hhw_redis_parse_port(const char *text, int *port)
{
    char  *end;
    long   n;

    if (text[0] < '0' || text[0] > '9') {
        return -1;
    }

    errno = 0;
    n = strtol(text, &end, 10);

    if (errno != 0 || *end != '\0' || n < 1 || n > 65535) {
        return -1;
    }

    *port = (int) n;

    return 0;
}


/* Returns 0 for a usable reply, or -1 with err for a failure or an error. */
static int
hhw_redis_reply_error(redisContext *ctx, redisReply *reply, hhw_error_t *err)
{
    if (reply == NULL) {
        hhw_error_set(err, "Redis request failed: %s",
                      ctx->err ? ctx->errstr : "out of memory");
        return -1;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        hhw_error_set(err, "Redis replied with an error: %.*s",
                      (int) reply->len, reply->str);
        return -1;
    }

    return 0;
}
