/*
 * A growable text buffer, with the JSON string escaping and number printing
 * that the writer's batch rows and the admin command need.
 */

#ifndef HHW_BUF_H
#define HHW_BUF_H

#include <stddef.h>


/*
 * data is always NUL-terminated once anything was appended. An allocation
 * failure sets failed and turns later appends into no-ops, so that a caller
 * checks once, after the last append.
 */
typedef struct {
    char    *data;
    size_t   len;
    size_t   size;
    int      failed;
} hhw_buf_t;


void hhw_buf_init(hhw_buf_t *buf);

/* Empties the buffer but keeps its memory for the next use. */
void hhw_buf_reset(hhw_buf_t *buf);

void hhw_buf_free(hhw_buf_t *buf);

void hhw_buf_append(hhw_buf_t *buf, const char *data, size_t len);

void hhw_buf_append_str(hhw_buf_t *buf, const char *str);

void hhw_buf_printf(hhw_buf_t *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Appends data as a quoted JSON string. Quotes, backslashes and control
 * characters are escaped and other bytes copied, so the caller passes valid
 * UTF-8.
 */
void hhw_buf_append_json_string(hhw_buf_t *buf, const char *data, size_t len);

/*
 * Appends a finite double with 17 significant digits, enough to read back
 * the same double. The caller rejects NaN and infinities first, because
 * JSON has no text for them.
 */
void hhw_buf_append_double(hhw_buf_t *buf, double value);

#endif /* HHW_BUF_H */
