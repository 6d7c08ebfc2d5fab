/*
 * Redis connections for humanhours-writer and humanhours-admin: the address
 * format, connecting, and commands whose failures become one-line errors.
 */

#ifndef HHW_REDIS_H
#define HHW_REDIS_H

#include <stddef.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <hiredis.h>

#include "hhw_log.h"


#define HHW_REDIS_STREAM  "hh:events"
#define HHW_REDIS_GROUP   "hh-writers"


/* A numeric TCP address, or a Unix socket path when host is empty. */
typedef struct {
    char  host[INET6_ADDRSTRLEN];
    char  path[sizeof(((struct sockaddr_un *) 0)->sun_path)];
    int   port;
} hhw_redis_addr_t;


/*
 * Parses "IPV4:PORT", "[IPV6]:PORT" or "unix:/PATH". Host names are
 * rejected because hiredis resolves them with a blocking call. Returns 0,
 * or -1 with err.
 */
int hhw_redis_addr_parse(const char *text, hhw_redis_addr_t *addr,
    hhw_error_t *err);

/*
 * Connects with timeout_ms bounding the connect and every later read and
 * write. Returns the context, or NULL with err.
 */
redisContext *hhw_redis_connect(const hhw_redis_addr_t *addr,
    unsigned timeout_ms, hhw_error_t *err);

/*
 * Sends one command and returns its reply, or NULL with err when the
 * connection failed or Redis replied with an error. The caller frees the
 * reply with freeReplyObject().
 */
redisReply *hhw_redis_command(redisContext *ctx, int argc, const char **argv,
    const size_t *lens, hhw_error_t *err);

/*
 * Queues MULTI, DEL key, HSET key with npairs field-value pairs (none
 * leaves the hash deleted) and EXEC, so that readers see the old hash or
 * the new one, never a mix. items contains field, value, field, value...
 * Returns how many replies to read with hhw_redis_read_replies(), or -1
 * when memory ran out, after which the caller closes the connection
 * because part of the commands may be queued.
 */
int hhw_redis_queue_replace_hash(redisContext *ctx, const char *key,
    size_t npairs, const char **items, const size_t *lens);

/*
 * Reads count queued replies. Returns 0 when none was an error, or -1 with
 * err naming the first one.
 */
int hhw_redis_read_replies(redisContext *ctx, unsigned count,
    hhw_error_t *err);

#endif /* HHW_REDIS_H */
