/*
 * Webhook settings of humanhours-writer and humanhours-admin: one table of
 * environment variables and their defaults, read once at start.
 */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hh_event.h"
#include "webhook_conf.h"


#ifndef HH_DEFAULT_RUN_DIR
#error "HH_DEFAULT_RUN_DIR must be defined by the Makefile"
#endif

#define WEBHOOK_CONF_TEXT  ((size_t) -1)    /* no number field */


typedef struct {
    const char  *name;
    const char  *default_value;     /* NULL: unset */
    const char  *help;
    size_t       text_offset;       /* of the char * in webhook_conf_t */
    size_t       number_offset;     /* of the unsigned, or WEBHOOK_CONF_TEXT */
    unsigned     min;
    unsigned     max;
} webhook_conf_var_t;


static const webhook_conf_var_t  webhook_conf_vars[] = {

    { "HH_WEBHOOK_KEY_FILE", HH_DEFAULT_RUN_DIR "/webhook-key",
      "file of 32 or more secret bytes that encrypt the webhook secrets",
      offsetof(webhook_conf_t, key_file), WEBHOOK_CONF_TEXT, 0, 0 },

    { "HH_WEBHOOK_KEY", NULL,
      "the same secret bytes as text, used instead of HH_WEBHOOK_KEY_FILE",
      offsetof(webhook_conf_t, key_text), WEBHOOK_CONF_TEXT, 0, 0 },

    { "HH_WEBHOOK_ALLOW", "",
      "addresses or CIDR networks that deliveries may connect to\n"
      "although they are loopback, private or reserved, such as\n"
      "127.0.0.1,::1 (local setups only)",
      offsetof(webhook_conf_t, allow_text), WEBHOOK_CONF_TEXT, 0, 0 },

    { "HH_WEBHOOK_ALLOW_HTTP", "0",
      "1 allows endpoint URLs with plain http:// (local setups only)",
      offsetof(webhook_conf_t, allow_http_text),
      offsetof(webhook_conf_t, allow_http), 0, 1 },

    { "HH_WEBHOOK_CA_FILE", NULL,
      "PEM file of the CA certificates that endpoints are verified\n"
      "against; unset uses the system's",
      offsetof(webhook_conf_t, ca_file), WEBHOOK_CONF_TEXT, 0, 0 },

    { "HH_WEBHOOK_CONNECT_TIMEOUT_MS", "5000",
      "milliseconds that one attempt may take to connect",
      offsetof(webhook_conf_t, connect_timeout_text),
      offsetof(webhook_conf_t, connect_timeout_ms), 1, 600000 },

    { "HH_WEBHOOK_TIMEOUT_MS", "10000",
      "milliseconds that one attempt may take in all",
      offsetof(webhook_conf_t, timeout_text),
      offsetof(webhook_conf_t, timeout_ms), 1, 600000 },

    { "HH_WEBHOOK_CONCURRENCY", "32",
      "attempts that one writer keeps in flight at most",
      offsetof(webhook_conf_t, concurrency_text),
      offsetof(webhook_conf_t, concurrency), 1, 1000 },

    { "HH_WEBHOOK_PER_ENDPOINT", "4",
      "attempts in flight to one endpoint at most, over all writers",
      offsetof(webhook_conf_t, per_endpoint_text),
      offsetof(webhook_conf_t, per_endpoint), 1, 1000 },

    { "HH_WEBHOOK_TIME_SCALE", "1",
      "for tests: factor above 0 and at most 1 for the retry delays",
      offsetof(webhook_conf_t, time_scale_text), WEBHOOK_CONF_TEXT, 0, 0 },

    { "HH_WEBHOOK_NOW", NULL,
      "for tests: the RFC 3339 time at which the writer checks whether\n"
      "the weekly digest is due",
      offsetof(webhook_conf_t, now_text), WEBHOOK_CONF_TEXT, 0, 0 },
};

#define WEBHOOK_CONF_NVARS                                                   \
    (sizeof(webhook_conf_vars) / sizeof(webhook_conf_vars[0]))


/* Seconds between attempt n and attempt n + 1, for n from 1. */
static const unsigned  webhook_retry_delays_s[WEBHOOK_ATTEMPTS - 1] = {
    30, 120, 600, 3600
};


static int webhook_conf_parse_number(const char *text, unsigned min,
    unsigned max, unsigned *number);


int
webhook_conf_load(webhook_conf_t *conf, hhw_error_t *err)
{
    char                      *value, *end;
    size_t                     i;
    int64_t                    now_ms;
    unsigned                   number;
    const char                *env;
    const webhook_conf_var_t  *var;

    memset(conf, 0, sizeof(webhook_conf_t));

    for (i = 0; i < WEBHOOK_CONF_NVARS; i++) {
        var = &webhook_conf_vars[i];
        env = getenv(var->name);

        if (env != NULL && env[0] != '\0') {
            value = strdup(env);

        } else if (var->default_value != NULL) {
            value = strdup(var->default_value);

            if (var->text_offset == offsetof(webhook_conf_t, key_file)) {
                conf->key_file_is_default = 1;
            }

        } else {
            continue;
        }

        if (value == NULL) {
            hhw_error_set(err, "out of memory reading %s", var->name);
            goto failed;
        }

        *(char **) ((char *) conf + var->text_offset) = value;

        if (var->number_offset == WEBHOOK_CONF_TEXT) {
            continue;
        }

        if (webhook_conf_parse_number(value, var->min, var->max, &number)
            != 0)
        {
            hhw_error_set(err, "%s must be an integer from %u to %u, not "
                          "\"%s\"", var->name, var->min, var->max, value);
            goto failed;
        }

        if (var->number_offset == offsetof(webhook_conf_t, allow_http)) {
            conf->allow_http = (int) number;

        } else {
            *(unsigned *) ((char *) conf + var->number_offset) = number;
        }
    }

    errno = 0;
    conf->time_scale = strtod(conf->time_scale_text, &end);

    if (errno != 0 || *end != '\0' || end == conf->time_scale_text
        || !(conf->time_scale > 0 && conf->time_scale <= 1))
    {
        hhw_error_set(err, "HH_WEBHOOK_TIME_SCALE must be a number above 0 "
                      "and at most 1, not \"%s\"", conf->time_scale_text);
        goto failed;
    }

    if (conf->now_text != NULL
        && hh_timestamp_parse(conf->now_text, strlen(conf->now_text),
                              &now_ms)
           != 0)
    {
        hhw_error_set(err, "HH_WEBHOOK_NOW must be an RFC 3339 time such "
                      "as 2026-05-04T09:00:00Z, not \"%s\"", conf->now_text);
        goto failed;
    }

    if (webhook_allow_parse(conf->allow_text, &conf->allow, err) != 0) {
        goto failed;
    }

    return 0;

failed:

    webhook_conf_free(conf);
    return -1;
}


void
webhook_conf_free(webhook_conf_t *conf)
{
    size_t  i;

    for (i = 0; i < WEBHOOK_CONF_NVARS; i++) {
        free(*(char **) ((char *) conf + webhook_conf_vars[i].text_offset));
    }

    memset(conf, 0, sizeof(webhook_conf_t));
}


void
webhook_conf_print_help(FILE *out)
{
    size_t                     i, len;
    const char                *p;
    const webhook_conf_var_t  *var;

    fprintf(out, "\nwebhook settings:\n");

    for (i = 0; i < WEBHOOK_CONF_NVARS; i++) {
        var = &webhook_conf_vars[i];

        fprintf(out, "  %s\n", var->name);

        /* The help text's lines are split with "\n" and indented here. */
        for (p = var->help; ; p += len + 1) {
            len = strcspn(p, "\n");
            fprintf(out, "      %.*s\n", (int) len, p);

            if (p[len] == '\0') {
                break;
            }
        }

        fprintf(out, "      (default: %s)\n",
                var->default_value == NULL ? "unset"
                : var->default_value[0] == '\0' ? "empty"
                : var->default_value);
    }
}


long long
webhook_conf_retry_delay_ms(const webhook_conf_t *conf, int attempt)
{
    if (attempt < 1 || attempt >= WEBHOOK_ATTEMPTS) {
        return 0;
    }

    return llround(webhook_retry_delays_s[attempt - 1] * 1000.0
                   * conf->time_scale);
}


static int
webhook_conf_parse_number(const char *text, unsigned min, unsigned max,
    unsigned *number)
{
    char           *end;
    unsigned long   n;

    if (!isdigit((unsigned char) text[0])) {
        return -1;
    }

    errno = 0;
    n = strtoul(text, &end, 10);

    if (errno != 0 || *end != '\0' || n < min || n > max) {
        return -1;
    }

    *number = (unsigned) n;

    return 0;
}
