/*
 * Webhook settings of humanhours-writer and humanhours-admin: one table of
 * environment variables and their defaults, read once at start.
 */

#ifndef WEBHOOK_CONF_H
#define WEBHOOK_CONF_H

#include <stdio.h>

#include "hhw_log.h"
#include "webhook_address.h"


/* Attempts per delivery: at once, then after 30 s, 2 min, 10 min and 1 h. */
#define WEBHOOK_ATTEMPTS  5


typedef struct {
    char             *key_file;
    char             *key_text;           /* HH_WEBHOOK_KEY, or NULL */
    char             *allow_text;
    char             *allow_http_text;
    char             *ca_file;            /* NULL: the system's CA store */
    char             *connect_timeout_text;
    char             *timeout_text;
    char             *concurrency_text;
    char             *per_endpoint_text;
    char             *time_scale_text;
    char             *now_text;           /* HH_WEBHOOK_NOW, or NULL */

    int               key_file_is_default;
    int               allow_http;
    unsigned          connect_timeout_ms;
    unsigned          timeout_ms;
    unsigned          concurrency;        /* attempts in flight per writer */
    unsigned          per_endpoint;       /* attempts in flight per endpoint */
    double            time_scale;
    webhook_allow_t   allow;
} webhook_conf_t;


/*
 * Fills conf from the environment; an unset or empty variable takes its
 * default. Returns 0, or -1 with err naming the variable and the accepted
 * values.
 */
int webhook_conf_load(webhook_conf_t *conf, hhw_error_t *err);

void webhook_conf_free(webhook_conf_t *conf);

/* Prints one line per variable with what it sets and its default. */
void webhook_conf_print_help(FILE *out);

/*
 * Returns the delay in milliseconds before attempt number attempt + 1,
 * scaled by HH_WEBHOOK_TIME_SCALE, for attempt 1 to WEBHOOK_ATTEMPTS - 1.
 */
long long webhook_conf_retry_delay_ms(const webhook_conf_t *conf,
    int attempt);

#endif /* WEBHOOK_CONF_H */
