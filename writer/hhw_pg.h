/*
 * Postgres sessions for humanhours-writer and humanhours-admin: connecting
 * with the shared session settings, and running statements with one-line
 * errors.
 */

#ifndef HHW_PG_H
#define HHW_PG_H

#include <libpq-fe.h>

#include "hhw_log.h"


/* The channel on which the admin command requests a Redis sync. */
#define HHW_PG_SYNC_CHANNEL  "humanhours_sync"


/*
 * Connects with the libpq connection string and sets the session time zone
 * to UTC. The string may override the defaults that this function sets: a
 * 10-second connect timeout and application_name set to program. Returns
 * the connection, or NULL with err.
 */
PGconn *hhw_pg_connect(const char *conninfo, const char *program,
    hhw_error_t *err);

/*
 * Runs one parameterised statement with text parameters (a NULL parameter
 * is SQL NULL). Returns the result when the statement succeeded, and NULL
 * with err (the primary message and SQLSTATE, never the detail, which can
 * contain row values) when it failed. The caller frees the result.
 */
PGresult *hhw_pg_query(PGconn *conn, const char *sql, int nparams,
    const char *const *params, hhw_error_t *err);

/*
 * Fills err from a failed result as hhw_pg_query() does, for statements
 * that the caller runs itself, such as COPY.
 */
void hhw_pg_result_error(PGconn *conn, const PGresult *res,
    hhw_error_t *err);

/*
 * Runs SQL text with no parameters, which may contain several statements,
 * such as BEGIN, COMMIT or a migration file. Returns 0, or -1 with err.
 */
int hhw_pg_exec(PGconn *conn, const char *sql, hhw_error_t *err);

/*
 * Reads what the server sent without waiting and counts the notifications
 * received since the last call into *notified. Returns 0, or -1 with err
 * when the connection is lost.
 */
int hhw_pg_poll_notifications(PGconn *conn, unsigned *notified,
    hhw_error_t *err);

#endif /* HHW_PG_H */
