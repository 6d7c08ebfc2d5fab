/*
 * Postgres sessions for humanhours-writer and humanhours-admin: connecting
 * with the shared session settings, and running statements with one-line
 * errors.
 */

#include <stdio.h>
#include <string.h>

#include "hhw_pg.h"


static void hhw_pg_notice(void *arg, const PGresult *res);
static void hhw_pg_copy_line(char *dst, size_t size, const char *src);


PGconn *
hhw_pg_connect(const char *conninfo, const char *program, hhw_error_t *err)
{
    PGconn      *conn;
    const char  *keywords[4], *values[4];

    /* Later keywords win, so the caller's string overrides the defaults. */
    keywords[0] = "connect_timeout";
    values[0] = "10";
    keywords[1] = "application_name";
    values[1] = program;
    keywords[2] = "dbname";
    values[2] = conninfo;
    keywords[3] = NULL;
    values[3] = NULL;

    conn = PQconnectdbParams(keywords, values, 1);

    if (conn == NULL) {
        hhw_error_set(err, "Postgres connection failed: out of memory");
        return NULL;
    }

    if (PQstatus(conn) != CONNECTION_OK) {
        hhw_error_set(err, "Postgres connection failed: ");
        hhw_pg_copy_line(err->text + strlen(err->text),
                         sizeof(err->text) - strlen(err->text),
                         PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }

    PQsetNoticeReceiver(conn, hhw_pg_notice, NULL);

    if (hhw_pg_exec(conn, "SET TimeZone TO 'UTC'", err) != 0) {
        PQfinish(conn);
        return NULL;
    }

    return conn;
}


PGresult *
hhw_pg_query(PGconn *conn, const char *sql, int nparams,
    const char *const *params, hhw_error_t *err)
{
    PGresult        *res;
    ExecStatusType   status;

    res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    status = PQresultStatus(res);

    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
        return res;
    }

    hhw_pg_result_error(conn, res, err);
    PQclear(res);

    return NULL;
}


int
hhw_pg_exec(PGconn *conn, const char *sql, hhw_error_t *err)
{
    PGresult        *res;
    ExecStatusType   status;

    res = PQexec(conn, sql);
    status = PQresultStatus(res);

    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
        PQclear(res);
        return 0;
    }

    hhw_pg_result_error(conn, res, err);
    PQclear(res);

    return -1;
}


int
hhw_pg_poll_notifications(PGconn *conn, unsigned *notified, hhw_error_t *err)
{
    PGnotify  *notify;

    *notified = 0;

    if (PQconsumeInput(conn) == 0) {
        hhw_error_set(err, "Postgres connection lost: ");
        hhw_pg_copy_line(err->text + strlen(err->text),
                         sizeof(err->text) - strlen(err->text),
                         PQerrorMessage(conn));
        return -1;
    }

    while ((notify = PQnotifies(conn)) != NULL) {
        (*notified)++;
        PQfreemem(notify);
    }

    return 0;
}


/*
 * Drops NOTICE and lower, which "IF NOT EXISTS" and the like send to every
 * session, and passes warnings to stderr as one line.
 */
static void
hhw_pg_notice(void *arg, const PGresult *res)
{
    char        line[512];
    const char  *severity, *message;

    severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (severity == NULL || message == NULL
        || strcmp(severity, "WARNING") != 0)
    {
        return;
    }

    hhw_pg_copy_line(line, sizeof(line), message);
    hhw_log(HHW_LOG_WARN, "Postgres warning: %s", line);
}


void
hhw_pg_result_error(PGconn *conn, const PGresult *res, hhw_error_t *err)
{
    const char  *state, *message;

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (message == NULL) {
        /* No server error: the connection broke or libpq ran out of memory. */
        message = PQerrorMessage(conn);
    }

    hhw_pg_copy_line(err->text, sizeof(err->text), message);
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s",
             state != NULL ? state : "");
}


/* Copies the first line of src, without its newline. */
static void
hhw_pg_copy_line(char *dst, size_t size, const char *src)
{
    size_t  len;

    len = strcspn(src, "\n");
    if (len >= size) {
        len = size - 1;
    }

    memcpy(dst, src, len);
    dst[len] = '\0';
}
