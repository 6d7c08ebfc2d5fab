/*
 * Configuration of humanhours-writer and humanhours-admin: one table of
 * environment variables and their defaults, read once at start.
 */

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hhw_buf.h"
#include "hhw_conf.h"


#ifndef HH_DEFAULT_RUN_DIR
#error "HH_DEFAULT_RUN_DIR must be defined by the Makefile"
#endif

#ifndef HH_SCHEMA_DIR_DEFAULT
#error "HH_SCHEMA_DIR_DEFAULT must be defined by writer/build.mk"
#endif

#define HHW_CONF_TEXT  ((size_t) -1)    /* no number field */


/*
 * A default may name a variable above it as ${NAME}, or the pseudo
 * variables ${hostname} and ${pid}.
 */
typedef struct {
    const char  *name;
    const char  *default_value;
    const char  *help;
    int          writer_only;
    size_t       text_offset;     /* of the char * in hhw_conf_t */
    size_t       number_offset;   /* of the unsigned, or HHW_CONF_TEXT */
    unsigned     min;
    unsigned     max;
} hhw_conf_var_t;


static const hhw_conf_var_t  hhw_conf_vars[] = {

    { "HH_PG_PORT", "54320",
      "Postgres port used by the default HH_DATABASE", 0,
      offsetof(hhw_conf_t, pg_port), HHW_CONF_TEXT, 1, 65535 },

    { "HH_DATABASE",
      "host=127.0.0.1 port=${HH_PG_PORT} dbname=humanhours user=humanhours",
      "libpq connection string", 0,
      offsetof(hhw_conf_t, database), HHW_CONF_TEXT, 0, 0 },

    { "HH_REDIS_PORT", "63790",
      "Redis port used by the default HH_REDIS", 0,
      offsetof(hhw_conf_t, redis_port), HHW_CONF_TEXT, 1, 65535 },

    { "HH_REDIS", "127.0.0.1:${HH_REDIS_PORT}",
      "Redis address: IPV4:PORT, [IPV6]:PORT or unix:/PATH", 0,
      offsetof(hhw_conf_t, redis), HHW_CONF_TEXT, 0, 0 },

    { "HH_PEPPER_FILE", HH_DEFAULT_RUN_DIR "/pepper",
      "file of 32 or more secret bytes that keys the API key hashes", 0,
      offsetof(hhw_conf_t, pepper_file), HHW_CONF_TEXT, 0, 0 },

    { "HH_SCHEMA_DIR", HH_SCHEMA_DIR_DEFAULT,
      "folder of the NNN_*.sql migrations", 0,
      offsetof(hhw_conf_t, schema_dir), HHW_CONF_TEXT, 0, 0 },

    { "HH_CONSUMER", "${hostname}-${pid}",
      "this writer's name in the consumer group hh-writers", 1,
      offsetof(hhw_conf_t, consumer), HHW_CONF_TEXT, 0, 0 },

    { "HH_BATCH_SIZE", "500",
      "maximum number of stream entries stored in one transaction", 1,
      offsetof(hhw_conf_t, batch_size_text),
      offsetof(hhw_conf_t, batch_size), 1, 10000 },

    { "HH_BATCH_MS", "200",
      "milliseconds that a batch waits to fill before it is stored", 1,
      offsetof(hhw_conf_t, batch_ms_text),
      offsetof(hhw_conf_t, batch_ms), 1, 60000 },

    { "HH_CLAIM_IDLE_MS", "60000",
      "milliseconds after which entries pending at another consumer are "
      "claimed; keep it above the slowest batch", 1,
      offsetof(hhw_conf_t, claim_idle_ms_text),
      offsetof(hhw_conf_t, claim_idle_ms), 1000, 86400000 },

    { "HH_MAX_DELIVERIES", "10",
      "a stream entry delivered more than this many times goes to dead "
      "letters", 1,
      offsetof(hhw_conf_t, max_deliveries_text),
      offsetof(hhw_conf_t, max_deliveries), 1, 1000 },

    { "HH_BACKOFF_MAX_MS", "30000",
      "maximum milliseconds between retries while Postgres or Redis fails", 1,
      offsetof(hhw_conf_t, backoff_max_ms_text),
      offsetof(hhw_conf_t, backoff_max_ms), 100, 3600000 },

    { "HH_WRITER_METRICS", "",
      "IPV4:PORT or [IPV6]:PORT that serves Prometheus metrics at /metrics, "
      "best on a loopback address; empty means no metrics", 1,
      offsetof(hhw_conf_t, metrics), HHW_CONF_TEXT, 0, 0 },

    { "HH_WRITER_LOG", "",
      "file that the log is appended to, reopened on SIGHUP; empty means "
      "stderr", 1,
      offsetof(hhw_conf_t, log_file), HHW_CONF_TEXT, 0, 0 },
};

#define HHW_CONF_NVARS  (sizeof(hhw_conf_vars) / sizeof(hhw_conf_vars[0]))


static char *hhw_conf_expand(const hhw_conf_t *conf, const char *text,
    hhw_error_t *err);
static const char *hhw_conf_lookup(const hhw_conf_t *conf, const char *name,
    size_t len, char *scratch, size_t size);
static int hhw_conf_parse_number(const hhw_conf_var_t *var, const char *text,
    unsigned *number);


int
hhw_conf_load(hhw_conf_t *conf, int writer, hhw_error_t *err)
{
    char                  *value;
    size_t                 i;
    const char            *env;
    const hhw_conf_var_t  *var;

    memset(conf, 0, sizeof(hhw_conf_t));

    for (i = 0; i < HHW_CONF_NVARS; i++) {
        var = &hhw_conf_vars[i];

        if (var->writer_only && !writer) {
            continue;
        }

        env = getenv(var->name);

        if (env != NULL && env[0] != '\0') {
            value = strdup(env);
            if (value == NULL) {
                hhw_error_set(err, "out of memory reading %s", var->name);
            }

        } else {
            value = hhw_conf_expand(conf, var->default_value, err);
        }

        if (value == NULL) {
            hhw_conf_free(conf);
            return -1;
        }

        *(char **) ((char *) conf + var->text_offset) = value;

        if (var->max == 0) {
            continue;
        }

        if (hhw_conf_parse_number(var, value, NULL) != 0) {
            hhw_error_set(err, "%s must be an integer from %u to %u, "
                          "not \"%s\"", var->name, var->min, var->max, value);
            hhw_conf_free(conf);
            return -1;
        }

        if (var->number_offset != HHW_CONF_TEXT) {
            hhw_conf_parse_number(var, value,
                (unsigned *) ((char *) conf + var->number_offset));
        }
    }

    return 0;
}


void
hhw_conf_free(hhw_conf_t *conf)
{
    size_t  i;

    for (i = 0; i < HHW_CONF_NVARS; i++) {
        free(*(char **) ((char *) conf + hhw_conf_vars[i].text_offset));
    }

    memset(conf, 0, sizeof(hhw_conf_t));
}


void
hhw_conf_print_help(FILE *out, int writer)
{
    int                    width;
    size_t                 i;
    const hhw_conf_var_t  *var;

    /* The names line up in a column of at least 15 characters. */
    width = 15;

    for (i = 0; i < HHW_CONF_NVARS; i++) {
        var = &hhw_conf_vars[i];

        if ((!var->writer_only || writer)
            && (int) strlen(var->name) + 1 > width)
        {
            width = (int) strlen(var->name) + 1;
        }
    }

    for (i = 0; i < HHW_CONF_NVARS; i++) {
        var = &hhw_conf_vars[i];

        if (var->writer_only && !writer) {
            continue;
        }

        fprintf(out, "  %-*s %s\n  %-*s (default: %s)\n", width, var->name,
                var->help, width, "",
                var->default_value[0] != '\0' ? var->default_value
                                               : "empty");
    }
}


/* Returns a copy of text with each ${NAME} replaced, or NULL with err. */
static char *
hhw_conf_expand(const hhw_conf_t *conf, const char *text, hhw_error_t *err)
{
    char         scratch[256];
    size_t       len;
    hhw_buf_t    buf;
    const char  *p, *end, *value;

    hhw_buf_init(&buf);
    hhw_buf_append(&buf, "", 0);

    for (p = text; *p != '\0'; p = end + 1) {
        if (p[0] != '$' || p[1] != '{') {
            end = p;
            hhw_buf_append(&buf, p, 1);
            continue;
        }

        end = strchr(p, '}');
        len = end - (p + 2);

        value = hhw_conf_lookup(conf, p + 2, len, scratch, sizeof(scratch));
        hhw_buf_append_str(&buf, value);
    }

    if (buf.failed) {
        hhw_buf_free(&buf);
        hhw_error_set(err, "out of memory expanding a default");
        return NULL;
    }

    return buf.data;
}


/* The defaults in the table are fixed text, so every name in them exists. */
static const char *
hhw_conf_lookup(const hhw_conf_t *conf, const char *name, size_t len,
    char *scratch, size_t size)
{
    size_t       i;
    const char  *value;

    if (len == 8 && memcmp(name, "hostname", 8) == 0) {
        if (gethostname(scratch, size) != 0) {
            snprintf(scratch, size, "localhost");
        }

        scratch[size - 1] = '\0';
        return scratch;
    }

    if (len == 3 && memcmp(name, "pid", 3) == 0) {
        snprintf(scratch, size, "%d", (int) getpid());
        return scratch;
    }

    for (i = 0; i < HHW_CONF_NVARS; i++) {
        if (strlen(hhw_conf_vars[i].name) == len
            && memcmp(hhw_conf_vars[i].name, name, len) == 0)
        {
            value = *(char **) ((char *) conf + hhw_conf_vars[i].text_offset);
            return value != NULL ? value : "";
        }
    }

    return "";
}


static int
hhw_conf_parse_number(const hhw_conf_var_t *var, const char *text,
    unsigned *number)
{
    char           *end;
    unsigned long   n;

    if (!isdigit((unsigned char) text[0])) {
        return -1;
    }

    errno = 0;
    n = strtoul(text, &end, 10);

    if (errno != 0 || *end != '\0' || n < var->min || n > var->max) {
        return -1;
    }

    if (number != NULL) {
        *number = (unsigned) n;
    }

    return 0;
}
