/*
 * The metrics responder: a minimal HTTP/1.1 server on HH_WRITER_METRICS that
 * serves GET /metrics in Prometheus text format. It runs inside the
 * writer's poll() with non-blocking sockets, so it needs no thread, and
 * each connection is closed after one response.
 *
 * NOTE: a request that arrives while a Postgres statement runs waits for
 * it, at most the statement timeout (a quarter of HH_CLAIM_IDLE_MS).
 */

/* For accept4(). */
#define _GNU_SOURCE

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "writer.h"


/* A client that sends no complete request in this time is disconnected. */
#define WRITER_HTTP_TIMEOUT_MS  5000

#define WRITER_HTTP_BACKLOG     16


static void writer_http_accept(writer_t *w);
static void writer_http_read(writer_t *w, writer_http_conn_t *c);
static void writer_http_respond(writer_t *w, writer_http_conn_t *c);
static void writer_http_reply(writer_http_conn_t *c, const char *status,
    const char *extra_headers, const hhw_buf_t *body, int head);
static void writer_http_write(writer_http_conn_t *c);
static void writer_http_close_conn(writer_http_conn_t *c);


int
writer_http_listen(writer_t *w, hhw_error_t *err)
{
    int                       fd, on, i;
    socklen_t                 len;
    hhw_redis_addr_t          addr;
    struct sockaddr_in        sin;
    struct sockaddr_in6       sin6;
    const struct sockaddr    *sa;

    for (i = 0; i < WRITER_HTTP_CONNS; i++) {
        w->http.conns[i].fd = -1;
        hhw_buf_init(&w->http.conns[i].out);
    }

    if (w->conf.metrics[0] == '\0') {
        return 0;
    }

    /* The Redis address format without its unix: form. */
    if (strncmp(w->conf.metrics, "unix:", 5) == 0
        || hhw_redis_addr_parse(w->conf.metrics, &addr, err) != 0)
    {
        hhw_error_set(err, "HH_WRITER_METRICS \"%s\" is invalid: expected "
                      "IPV4:PORT or [IPV6]:PORT with a numeric address, such "
                      "as 127.0.0.1:9464", w->conf.metrics);
        return -1;
    }

    if (strchr(addr.host, ':') == NULL) {
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t) addr.port);
        inet_pton(AF_INET, addr.host, &sin.sin_addr);
        sa = (const struct sockaddr *) &sin;
        len = sizeof(sin);

    } else {
        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t) addr.port);
        inet_pton(AF_INET6, addr.host, &sin6.sin6_addr);
        sa = (const struct sockaddr *) &sin6;
        len = sizeof(sin6);
    }

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        hhw_error_set(err, "creating the metrics socket failed: %s",
                      strerror(errno));
        return -1;
    }

    on = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0
        || bind(fd, sa, len) != 0
        || listen(fd, WRITER_HTTP_BACKLOG) != 0)
    {
        hhw_error_set(err, "listening for metrics on %s failed: %s",
                      w->conf.metrics, strerror(errno));
        close(fd);
        return -1;
    }

    w->http.listen_fd = fd;

    hhw_log(HHW_LOG_INFO, "serving metrics on http://%s/metrics",
            w->conf.metrics);

    return 0;
}


void
writer_http_close(writer_t *w)
{
    int  i;

    for (i = 0; i < WRITER_HTTP_CONNS; i++) {
        writer_http_close_conn(&w->http.conns[i]);
        hhw_buf_free(&w->http.conns[i].out);
    }

    if (w->http.listen_fd != -1) {
        close(w->http.listen_fd);
        w->http.listen_fd = -1;
    }
}


int
writer_http_poll_fds(writer_t *w, struct pollfd *fds, int *n)
{
    int                  i, open, free_slot;
    int64_t              now;
    writer_http_conn_t  *c;

    if (w->http.listen_fd == -1) {
        return 0;
    }

    now = writer_now_ms();
    open = 0;
    free_slot = 0;

    for (i = 0; i < WRITER_HTTP_CONNS; i++) {
        c = &w->http.conns[i];

        if (c->fd != -1 && now >= c->deadline_ms) {
            writer_http_close_conn(c);
        }

        if (c->fd == -1) {
            free_slot = 1;
            continue;
        }

        fds[*n].fd = c->fd;
        fds[*n].events = c->writing ? POLLOUT : POLLIN;
        fds[*n].revents = 0;
        (*n)++;
        open++;
    }

    /* A full table leaves new clients in the listen queue. */
    if (free_slot) {
        fds[*n].fd = w->http.listen_fd;
        fds[*n].events = POLLIN;
        fds[*n].revents = 0;
        (*n)++;
    }

    return open;
}


void
writer_http_serve(writer_t *w, struct pollfd *fds, int first, int n)
{
    int                  i, j;
    writer_http_conn_t  *c;

    for (i = first; i < first + n; i++) {
        if (fds[i].revents == 0) {
            continue;
        }

        if (fds[i].fd == w->http.listen_fd) {
            writer_http_accept(w);
            continue;
        }

        for (j = 0; j < WRITER_HTTP_CONNS; j++) {
            c = &w->http.conns[j];

            if (c->fd != fds[i].fd) {
                continue;
            }

            if (c->writing) {
                writer_http_write(c);

            } else {
                writer_http_read(w, c);
            }

            break;
        }
    }
}


static void
writer_http_accept(writer_t *w)
{
    int                  i, fd;
    writer_http_conn_t  *c;

    for (i = 0; i < WRITER_HTTP_CONNS; i++) {
        c = &w->http.conns[i];

        if (c->fd != -1) {
            continue;
        }

        fd = accept4(w->http.listen_fd, NULL, NULL,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            /* EAGAIN: no client waits. Other errors: the client left. */
            return;
        }

        c->fd = fd;
        c->writing = 0;
        c->in_len = 0;
        c->out_pos = 0;
        c->deadline_ms = writer_now_ms() + WRITER_HTTP_TIMEOUT_MS;
        hhw_buf_reset(&c->out);
    }
}


static void
writer_http_read(writer_t *w, writer_http_conn_t *c)
{
    ssize_t  n;

    for ( ;; ) {
        n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            writer_http_close_conn(c);
            return;
        }

        if (n < 0) {
            return;
        }

        c->in_len += n;
        c->in[c->in_len] = '\0';

        if (strstr(c->in, "\r\n\r\n") != NULL
            || strstr(c->in, "\n\n") != NULL)
        {
            writer_http_respond(w, c);
            return;
        }

        if (c->in_len == sizeof(c->in) - 1) {
            writer_http_reply(c, "431 Request Header Fields Too Large", "",
                              NULL, 0);
            return;
        }
    }
}


/* Only the request line matters: GET or HEAD of /metrics. */
static void
writer_http_respond(writer_t *w, writer_http_conn_t *c)
{
    int         head;
    size_t      path_len;
    hhw_buf_t   body;
    const char  *path;

    head = strncmp(c->in, "HEAD ", 5) == 0;

    if (!head && strncmp(c->in, "GET ", 4) != 0) {
        writer_http_reply(c, "405 Method Not Allowed",
                          "Allow: GET, HEAD\r\n", NULL, 0);
        return;
    }

    path = c->in + (head ? 5 : 4);
    path_len = strcspn(path, " ?\r\n");

    if (path_len != 8 || memcmp(path, "/metrics", 8) != 0) {
        writer_http_reply(c, "404 Not Found", "", NULL, 0);
        return;
    }

    hhw_buf_init(&body);
    writer_metrics_render(w, &body);

    if (body.failed) {
        hhw_buf_free(&body);
        writer_http_reply(c, "500 Internal Server Error", "", NULL, 0);
        return;
    }

    writer_http_reply(c, "200 OK", "", &body, head);
    hhw_buf_free(&body);
}


static void
writer_http_reply(writer_http_conn_t *c, const char *status,
    const char *extra_headers, const hhw_buf_t *body, int head)
{
    hhw_buf_reset(&c->out);

    hhw_buf_printf(&c->out, "HTTP/1.1 %s\r\n"
                   "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                   "Content-Length: %zu\r\n"
                   "%s"
                   "Connection: close\r\n\r\n",
                   status, body != NULL ? body->len : 0, extra_headers);

    if (body != NULL && !head) {
        hhw_buf_append(&c->out, body->data, body->len);
    }

    if (c->out.failed) {
        writer_http_close_conn(c);
        return;
    }

    c->writing = 1;
    c->out_pos = 0;

    writer_http_write(c);
}


static void
writer_http_write(writer_http_conn_t *c)
{
    ssize_t  n;

    while (c->out_pos < c->out.len) {
        n = send(c->fd, c->out.data + c->out_pos, c->out.len - c->out_pos,
                 MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }

        if (n <= 0) {
            break;
        }

        c->out_pos += n;
    }

    writer_http_close_conn(c);
}


static void
writer_http_close_conn(writer_http_conn_t *c)
{
    if (c->fd != -1) {
        close(c->fd);
        c->fd = -1;
    }

    c->writing = 0;
    c->in_len = 0;
    c->out_pos = 0;
}
