/*
 * humanhours-admin: the state that its subcommands share and the helpers
 * that turn every failure into one line on stderr and exit status 1.
 */

#ifndef ADMIN_H
#define ADMIN_H

#include <hiredis.h>
#include <libpq-fe.h>

#include "hhw_conf.h"
#include "hhw_log.h"
#include "hhw_redis.h"


typedef struct {
    hhw_conf_t         conf;
    hhw_redis_addr_t   redis_addr;
    PGconn            *pg;       /* opened on first use */
    redisContext      *redis;    /* opened on first use */
} admin_t;


/* Prints "humanhours-admin: <message>" to stderr and exits with 1. */
void admin_fail(admin_t *admin, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* Prints the usage text to stdout and exits with 0, or to stderr and 1. */
void admin_usage(admin_t *admin, int to_stdout)
    __attribute__((noreturn));

/* Returns the connection, opening it on first use, or fails the command. */
PGconn *admin_pg(admin_t *admin);

redisContext *admin_redis(admin_t *admin);

/* Returns the Redis connection, opening it on first use, or NULL with err. */
redisContext *admin_redis_try(admin_t *admin, hhw_error_t *err);

/*
 * Parses an organisation id or a count given to option: a positive decimal
 * integer of at most 18 digits. Fails the command otherwise.
 */
long long admin_parse_positive(admin_t *admin, const char *text,
    const char *option);

/*
 * Fails the command after getopt_long() returned result '?' (an unknown
 * option) or ':' (a missing value), naming the option at fault. The option
 * strings start with ':' so that the two differ.
 */
void admin_bad_option(admin_t *admin, const char *command, int result,
    char **argv) __attribute__((noreturn));

/* Prints a text value, or "-" for NULL, followed by end. */
void admin_print_field(const PGresult *res, int row, int column,
    const char *end);

void admin_migrate(admin_t *admin, int argc, char **argv);
void admin_org(admin_t *admin, int argc, char **argv);
void admin_key(admin_t *admin, int argc, char **argv);
void admin_events(admin_t *admin, int argc, char **argv);

#endif /* ADMIN_H */
