/*
 * Configuration of humanhours-writer and humanhours-admin: one table of
 * environment variables and their defaults, read once at start.
 */

#ifndef HHW_CONF_H
#define HHW_CONF_H

#include <stdio.h>

#include "hhw_log.h"


typedef struct {
    char      *pg_port;
    char      *database;        /* libpq connection string */
    char      *redis_port;
    char      *redis;           /* HOST:PORT or unix:/path */
    char      *pepper_file;
    char      *schema_dir;

    /* humanhours-writer only, and NULL or 0 in humanhours-admin */
    char      *consumer;        /* name in the consumer group */
    char      *batch_size_text;
    char      *batch_ms_text;
    char      *claim_idle_ms_text;
    char      *max_deliveries_text;
    char      *backoff_max_ms_text;
    char      *metrics;         /* IPV4:PORT or [IPV6]:PORT, or empty */
    char      *log_file;        /* empty for stderr */
    unsigned   batch_size;      /* stream entries per batch */
    unsigned   batch_ms;        /* maximum wait for a batch to fill */
    unsigned   claim_idle_ms;   /* idle time after which entries are claimed */
    unsigned   max_deliveries;  /* deliveries before dead letters */
    unsigned   backoff_max_ms;  /* cap of the retry delay */
} hhw_conf_t;


/*
 * Fills conf from the environment. An unset or empty variable takes its
 * default. The writer-only variables are read when writer is set. Returns
 * 0, or -1 with err naming the variable and the accepted values.
 */
int hhw_conf_load(hhw_conf_t *conf, int writer, hhw_error_t *err);

void hhw_conf_free(hhw_conf_t *conf);

/* Prints one line per variable with what it sets and its default. */
void hhw_conf_print_help(FILE *out, int writer);

#endif /* HHW_CONF_H */
