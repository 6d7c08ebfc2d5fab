/*
 * Log lines on stderr for humanhours-writer, and the error record that the
 * shared library fills so that its caller decides whether to log or exit.
 */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hh_event.h"
#include "hhw_log.h"


#define HHW_LOG_LINE_MAX  1024


static const char  *hhw_log_program = "humanhours";

static const char  *hhw_log_levels[] = { "error", "warn", "info" };


void
hhw_log_set_program(const char *name)
{
    hhw_log_program = name;
}


void
hhw_log(hhw_log_level_e level, const char *fmt, ...)
{
    int              n, m;
    char             now[HH_TIMESTAMP_LEN + 1];
    char             line[HHW_LOG_LINE_MAX];
    va_list          args;
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    hh_timestamp_format((int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                        now);

    n = snprintf(line, sizeof(line), "%s [%s] %s[%d]: ", now,
                 hhw_log_levels[level], hhw_log_program, (int) getpid());

    va_start(args, fmt);
    m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, args);
    va_end(args);

    /* A message longer than the line is cut, but the newline stays. */
    if (m < 0 || (size_t) m >= sizeof(line) - n - 1) {
        m = sizeof(line) - n - 2;
    }

    n += m;
    line[n++] = '\n';

    if (write(STDERR_FILENO, line, n) == -1) {
        /* Nowhere else to report it. */
    }
}


void
hhw_error_set(hhw_error_t *err, const char *fmt, ...)
{
    va_list  args;

    err->sqlstate[0] = '\0';

    va_start(args, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, args);
    va_end(args);
}


void
hhw_error_prefix(hhw_error_t *err, const char *fmt, ...)
{
    int      n;
    char     cause[sizeof(err->text)];
    va_list  args;

    memcpy(cause, err->text, sizeof(cause));

    va_start(args, fmt);
    n = vsnprintf(err->text, sizeof(err->text), fmt, args);
    va_end(args);

    if (n >= 0 && (size_t) n < sizeof(err->text)) {
        snprintf(err->text + n, sizeof(err->text) - n, ": %s", cause);
    }
}
