/*
 * humanhours-admin migrate: applies the NNN_*.sql files of the schema
 * folder that the schema_migrations ledger does not list yet, in order,
 * each in its own transaction, under an advisory lock so that two runs
 * never apply the same file twice.
 */

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "hhw_buf.h"
#include "hhw_pg.h"


/* An arbitrary advisory lock id that only migrate takes. */
#define ADMIN_MIGRATE_LOCK_ID  "4848010001"

/* Versions are three digits. */
#define ADMIN_MIGRATE_VERSIONS  1000


static const char  admin_migrate_ledger_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "  version     integer PRIMARY KEY,"
    "  name        text NOT NULL,"
    "  applied_at  timestamptz NOT NULL DEFAULT now()"
    ")";


static size_t admin_migrate_list(admin_t *admin, char ***names);
static int admin_migrate_is_name(const char *name);
static int admin_migrate_compare(const void *a, const void *b);
static void admin_migrate_applied(admin_t *admin,
    unsigned char applied[ADMIN_MIGRATE_VERSIONS]);
static void admin_migrate_apply(admin_t *admin, const char *name);
static void admin_migrate_read(admin_t *admin, const char *name,
    hhw_buf_t *sql);
static unsigned long admin_migrate_line(const char *sql,
    unsigned long position);


void
admin_migrate(admin_t *admin, int argc, char **argv)
{
    int            c;
    char         **names;
    size_t         i, n;
    PGconn        *pg;
    PGresult      *res;
    const char    *params[1];
    hhw_error_t    err;
    unsigned char  applied[ADMIN_MIGRATE_VERSIONS];

    static const struct option  options[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (c == 'h') {
            admin_usage(admin, 1);
        }

        admin_bad_option(admin, "migrate", c, argv);
    }

    if (optind != argc) {
        admin_fail(admin, "migrate: unexpected argument \"%s\"", argv[optind]);
    }

    n = admin_migrate_list(admin, &names);

    pg = admin_pg(admin);
    params[0] = ADMIN_MIGRATE_LOCK_ID;

    /* Waits while another migrate holds the lock. */
    res = hhw_pg_query(pg, "SELECT pg_advisory_lock($1::bigint)", 1, params,
                       &err);
    if (res == NULL) {
        admin_fail(admin, "taking the migration lock failed: %s", err.text);
    }

    PQclear(res);

    if (hhw_pg_exec(pg, admin_migrate_ledger_sql, &err) != 0) {
        admin_fail(admin, "creating table schema_migrations failed: %s",
                   err.text);
    }

    admin_migrate_applied(admin, applied);

    for (i = 0; i < n; i++) {
        if (!applied[atoi(names[i])]) {
            admin_migrate_apply(admin, names[i]);
            printf("%s\n", names[i]);
        }

        free(names[i]);
    }

    free(names);

    res = hhw_pg_query(pg, "SELECT pg_advisory_unlock($1::bigint)", 1,
                       params, &err);
    if (res == NULL) {
        admin_fail(admin, "releasing the migration lock failed: %s",
                   err.text);
    }

    PQclear(res);
}


/* Returns the migration file names of the schema folder, sorted. */
static size_t
admin_migrate_list(admin_t *admin, char ***names)
{
    DIR            *dir;
    char          **list, **grown;
    size_t          n, size, i;
    struct dirent  *entry;

    dir = opendir(admin->conf.schema_dir);
    if (dir == NULL) {
        admin_fail(admin, "cannot open the schema folder \"%s\" "
                   "(HH_SCHEMA_DIR): %s", admin->conf.schema_dir,
                   strerror(errno));
    }

    list = NULL;
    n = 0;
    size = 0;

    while ((entry = readdir(dir)) != NULL) {
        if (!admin_migrate_is_name(entry->d_name)) {
            continue;
        }

        if (n == size) {
            size = size ? 2 * size : 16;
            grown = realloc(list, size * sizeof(char *));
            if (grown == NULL) {
                admin_fail(admin, "out of memory listing migrations");
            }

            list = grown;
        }

        list[n] = strdup(entry->d_name);
        if (list[n] == NULL) {
            admin_fail(admin, "out of memory listing migrations");
        }

        n++;
    }

    closedir(dir);

    if (n == 0) {
        admin_fail(admin, "no NNN_*.sql migrations in \"%s\" (HH_SCHEMA_DIR)",
                   admin->conf.schema_dir);
    }

    qsort(list, n, sizeof(char *), admin_migrate_compare);

    for (i = 1; i < n; i++) {
        if (memcmp(list[i - 1], list[i], 3) == 0) {
            admin_fail(admin, "migrations %s and %s have the same version",
                       list[i - 1], list[i]);
        }
    }

    *names = list;

    return n;
}


/* Three digits, "_", a name and ".sql". */
static int
admin_migrate_is_name(const char *name)
{
    size_t  len;

    len = strlen(name);

    return len > 8 && strspn(name, "0123456789") == 3 && name[3] == '_'
           && strcmp(name + len - 4, ".sql") == 0;
}


static int
admin_migrate_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


static void
admin_migrate_applied(admin_t *admin,
    unsigned char applied[ADMIN_MIGRATE_VERSIONS])
{
    int           row, version;
    PGresult     *res;
    hhw_error_t   err;

    memset(applied, 0, ADMIN_MIGRATE_VERSIONS);

    res = hhw_pg_query(admin->pg, "SELECT version FROM schema_migrations", 0,
                       NULL, &err);
    if (res == NULL) {
        admin_fail(admin, "reading schema_migrations failed: %s", err.text);
    }

    for (row = 0; row < PQntuples(res); row++) {
        version = atoi(PQgetvalue(res, row, 0));

        if (version >= 0 && version < ADMIN_MIGRATE_VERSIONS) {
            applied[version] = 1;
        }
    }

    PQclear(res);
}


/*
 * Runs one file and records it in the ledger in one transaction, so that a
 * failing file leaves nothing behind. The file therefore must not contain
 * BEGIN, COMMIT or ROLLBACK.
 */
static void
admin_migrate_apply(admin_t *admin, const char *name)
{
    char           version[4];
    PGresult      *res;
    hhw_buf_t      sql;
    const char    *message, *position, *params[2];
    hhw_error_t    err;

    hhw_buf_init(&sql);
    admin_migrate_read(admin, name, &sql);

    if (hhw_pg_exec(admin->pg, "BEGIN", &err) != 0) {
        admin_fail(admin, "%s: BEGIN failed: %s", name, err.text);
    }

    res = PQexec(admin->pg, sql.data);

    if (PQresultStatus(res) != PGRES_COMMAND_OK
        && PQresultStatus(res) != PGRES_TUPLES_OK
        && PQresultStatus(res) != PGRES_EMPTY_QUERY)
    {
        message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        position = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);

        if (message == NULL) {
            message = PQerrorMessage(admin->pg);
        }

        if (position != NULL) {
            admin_fail(admin, "%s failed at line %lu, so nothing of it was "
                       "applied: %s", name,
                       admin_migrate_line(sql.data, strtoul(position, NULL,
                                                            10)),
                       message);
        }

        admin_fail(admin, "%s failed, so nothing of it was applied: %s",
                   name, message);
    }

    PQclear(res);
    hhw_buf_free(&sql);

    memcpy(version, name, 3);
    version[3] = '\0';
    params[0] = version;
    params[1] = name;

    res = hhw_pg_query(admin->pg, "INSERT INTO schema_migrations "
                       "(version, name) VALUES ($1::integer, $2)", 2, params,
                       &err);
    if (res == NULL) {
        admin_fail(admin, "%s: recording it in schema_migrations failed: %s",
                   name, err.text);
    }

    PQclear(res);

    if (hhw_pg_exec(admin->pg, "COMMIT", &err) != 0) {
        admin_fail(admin, "%s: COMMIT failed: %s", name, err.text);
    }
}


static void
admin_migrate_read(admin_t *admin, const char *name, hhw_buf_t *sql)
{
    FILE    *file;
    char     path[4096], chunk[8192];
    size_t   n;

    if ((size_t) snprintf(path, sizeof(path), "%s/%s",
                          admin->conf.schema_dir, name)
        >= sizeof(path))
    {
        admin_fail(admin, "the path of %s is too long", name);
    }

    file = fopen(path, "r");
    if (file == NULL) {
        admin_fail(admin, "cannot open %s: %s", path, strerror(errno));
    }

    while ((n = fread(chunk, 1, sizeof(chunk), file)) > 0) {
        hhw_buf_append(sql, chunk, n);
    }

    if (ferror(file)) {
        admin_fail(admin, "cannot read %s", path);
    }

    fclose(file);

    hhw_buf_append(sql, "", 0);

    if (sql->failed) {
        admin_fail(admin, "out of memory reading %s", path);
    }
}


/* Postgres counts the position in UTF-8 characters, from 1. */
static unsigned long
admin_migrate_line(const char *sql, unsigned long position)
{
    unsigned long  line, chars;

    line = 1;
    chars = 0;

    for ( /* void */ ; *sql != '\0'; sql++) {
        if (((unsigned char) *sql & 0xC0) == 0x80) {
            continue;
        }

        if (++chars >= position) {
            break;
        }

        if (*sql == '\n') {
            line++;
        }
    }

    return line;
}
