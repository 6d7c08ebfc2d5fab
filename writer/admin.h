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


typedef struct {
    const char  *name;
    void       (*run)(admin_t *admin, int argc, char **argv);
} admin_command_t;


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

/*
 * Parses a count given to option: a decimal integer from min to INT_MAX,
 * the bound of the Postgres integer columns. Fails the command otherwise.
 */
long admin_parse_count(admin_t *admin, const char *command,
    const char *option, const char *text, long min);

/*
 * Returns 1 when the len bytes at text are a plain decimal such as 45 or
 * 62.50, from 0 (above 0 when positive is set) and below 1e15, the bound
 * of the schema's domains, which Postgres stores as written. Else 0.
 */
int admin_is_decimal(const char *text, size_t len, int positive);

/*
 * Returns NULL when the len bytes at text are valid UTF-8 of 1 to
 * max_chars characters with no control characters, which would break the
 * tab-separated lists, or else what is wrong, as static text.
 */
const char *admin_text_problem(const char *text, size_t len,
    size_t max_chars);

/*
 * Checks an amount or a number of minutes given as what: a plain decimal
 * such as 45 or 62.50, from 0 (above 0 when positive is set) and below
 * 1e15, the bound of the schema's domains. Postgres stores it as written.
 * Fails the command otherwise.
 */
void admin_check_decimal(admin_t *admin, const char *command,
    const char *what, const char *text, int positive);

/* Checks a text argument given as what with admin_text_problem(). */
void admin_check_text(admin_t *admin, const char *command, const char *what,
    const char *text, size_t max_chars);

/* Checks a task type key: lowercase snake_case of 1 to 64 characters. */
void admin_check_task_type_key(admin_t *admin, const char *command,
    const char *key);

/*
 * Runs BEGIN and adds 1 to the organisation's revision, which also locks
 * its row until COMMIT, so that changes to one organisation are made one
 * after the other. Connects to Redis first, so that a server that is down
 * fails the command before it changes anything. Returns 1 when the
 * organisation's plan includes the Pro features, 0 when not. Fails the
 * command when the organisation does not exist. admin_fail() closes the
 * connection, which rolls back an open transaction.
 */
int admin_begin_org(admin_t *admin, const char *command, const char *org);

/*
 * Reads the organisation's Redis records in the open transaction, runs
 * NOTIFY on the sync channel and COMMIT, then writes the records to Redis,
 * or fails the command saying what was and was not changed.
 */
void admin_commit_org(admin_t *admin, const char *command, const char *org);

/* Runs NOTIFY on the sync channel and COMMIT, or fails the command. */
void admin_commit(admin_t *admin, const char *command);

/* Prints a text value, or "-" for NULL, followed by end. */
void admin_print_field(const PGresult *res, int row, int column,
    const char *end);

/*
 * Prints columns 0 to columns - 1 of every row of res, separated by tabs,
 * one row a line. Prints nothing when res is NULL.
 */
void admin_print_rows(const PGresult *res, int columns);

/*
 * Runs the entry of subcommands, a table that ends with a NULL name, whose
 * name is argv[1], passing argv + 1. Prints the usage for --help, and
 * otherwise fails the command with expected, the list of subcommand names.
 */
void admin_run_subcommand(admin_t *admin, const char *command,
    const admin_command_t *subcommands, const char *expected, int argc,
    char **argv);

/*
 * Parses the options of a subcommand that requires --org and takes nargs
 * positional arguments, which then start at argv[optind]. Fails the command
 * with expected, the description of those arguments, when their number
 * differs. Returns the organisation id.
 */
const char *admin_parse_org_options(admin_t *admin, const char *command,
    int argc, char **argv, int nargs, const char *expected);

/*
 * Parses the options of a list subcommand: an optional --org and no
 * positional arguments. Returns the organisation id, or NULL for all.
 */
const char *admin_parse_list_options(admin_t *admin, const char *command,
    int argc, char **argv);

void admin_migrate(admin_t *admin, int argc, char **argv);
void admin_org(admin_t *admin, int argc, char **argv);
void admin_key(admin_t *admin, int argc, char **argv);
void admin_events(admin_t *admin, int argc, char **argv);
void admin_tasktype(admin_t *admin, int argc, char **argv);
void admin_rate(admin_t *admin, int argc, char **argv);
void admin_prices(admin_t *admin, int argc, char **argv);

#endif /* ADMIN_H */
