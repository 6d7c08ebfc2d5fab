/*
 * Log lines on stderr for humanhours-writer, and the error record that the
 * shared library fills so that its caller decides whether to log or exit.
 */

#ifndef HHW_LOG_H
#define HHW_LOG_H

#include <stddef.h>


typedef enum {
    HHW_LOG_ERROR = 0,
    HHW_LOG_WARN,
    HHW_LOG_INFO
} hhw_log_level_e;


/* What failed, in one line, and the SQLSTATE if a Postgres statement did. */
typedef struct {
    char  sqlstate[6];
    char  text[512];
} hhw_error_t;


/*
 * Writes "<UTC time> [<level>] <program>[<pid>]: <message>" and a newline to
 * stderr with one write, so that lines of concurrent writers do not mix.
 */
void hhw_log(hhw_log_level_e level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sets the program name in log lines, which is "humanhours" by default. */
void hhw_log_set_program(const char *name);

/* Formats the message into err and clears its SQLSTATE. */
void hhw_error_set(hhw_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Puts the formatted context and ": " before the message in err, keeping
 * its SQLSTATE, as in "syncing Redis failed: <message>".
 */
void hhw_error_prefix(hhw_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* HHW_LOG_H */
