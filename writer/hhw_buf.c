/*
 * A growable text buffer, with the JSON string escaping and number printing
 * that the writer's batch rows and the admin command need.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hhw_buf.h"


#define HHW_BUF_MIN_SIZE  256


static int hhw_buf_reserve(hhw_buf_t *buf, size_t extra);


void
hhw_buf_init(hhw_buf_t *buf)
{
    buf->data = NULL;
    buf->len = 0;
    buf->size = 0;
    buf->failed = 0;
}


void
hhw_buf_reset(hhw_buf_t *buf)
{
    buf->len = 0;
    buf->failed = 0;

    if (buf->data != NULL) {
        buf->data[0] = '\0';
    }
}


void
hhw_buf_free(hhw_buf_t *buf)
{
    free(buf->data);
    hhw_buf_init(buf);
}


void
hhw_buf_append(hhw_buf_t *buf, const char *data, size_t len)
{
    if (hhw_buf_reserve(buf, len) != 0) {
        return;
    }

    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}


void
hhw_buf_append_str(hhw_buf_t *buf, const char *str)
{
    hhw_buf_append(buf, str, strlen(str));
}


void
hhw_buf_printf(hhw_buf_t *buf, const char *fmt, ...)
{
    int      n;
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);

    if (n < 0) {
        buf->failed = 1;
        return;
    }

    if (hhw_buf_reserve(buf, n) != 0) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(buf->data + buf->len, buf->size - buf->len, fmt, args);
    va_end(args);

    buf->len += n;
}


void
hhw_buf_append_json_string(hhw_buf_t *buf, const char *data, size_t len)
{
    char            escape[8];
    size_t          i, start;
    unsigned char   c;

    hhw_buf_append(buf, "\"", 1);

    start = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) data[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        hhw_buf_append(buf, data + start, i - start);
        start = i + 1;

        switch (c) {
        case '"':
            hhw_buf_append(buf, "\\\"", 2);
            break;
        case '\\':
            hhw_buf_append(buf, "\\\\", 2);
            break;
        case '\n':
            hhw_buf_append(buf, "\\n", 2);
            break;
        case '\r':
            hhw_buf_append(buf, "\\r", 2);
            break;
        case '\t':
            hhw_buf_append(buf, "\\t", 2);
            break;
        default:
            snprintf(escape, sizeof(escape), "\\u%04x", c);
            hhw_buf_append(buf, escape, 6);
        }
    }

    hhw_buf_append(buf, data + start, len - start);
    hhw_buf_append(buf, "\"", 1);
}


void
hhw_buf_append_double(hhw_buf_t *buf, double value)
{
    hhw_buf_printf(buf, "%.17g", value);
}


/* Makes room for extra bytes and a NUL, or returns -1 and sets failed. */
static int
hhw_buf_reserve(hhw_buf_t *buf, size_t extra)
{
    char    *data;
    size_t   size;

    if (buf->failed) {
        return -1;
    }

    if (buf->len + extra + 1 <= buf->size) {
        return 0;
    }

    size = buf->size ? buf->size : HHW_BUF_MIN_SIZE;

    while (size < buf->len + extra + 1) {
        size *= 2;
    }

    data = realloc(buf->data, size);
    if (data == NULL) {
        buf->failed = 1;
        return -1;
    }

    buf->data = data;
    buf->size = size;

    return 0;
}
