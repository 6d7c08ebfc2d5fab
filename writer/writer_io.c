/*
 * Waiting that keeps the metrics responder and the signals served: one
 * poll() over the wake pipe of the signal handlers, the metrics sockets
 * and, during a read from the stream, the Redis socket. Also the log file
 * that SIGHUP reopens.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "writer.h"


/* Poll timeout while metrics connections are open, to expire them. */
#define WRITER_POLL_HTTP_MS  1000


static void writer_log_reopen(const hhw_conf_t *conf);


int
writer_poll(writer_t *w, int fd, int timeout_ms)
{
    int            n, rc, fd_index, http_first;
    char           drain[64];
    struct pollfd  fds[2 + 1 + WRITER_HTTP_CONNS];

    n = 0;

    fds[n].fd = w->wake_pipe[0];
    fds[n].events = POLLIN;
    n++;

    fd_index = -1;

    if (fd >= 0) {
        fd_index = n;
        fds[n].fd = fd;
        fds[n].events = POLLIN;
        n++;
    }

    http_first = n;

    if (writer_http_poll_fds(w, fds, &n) > 0
        && (timeout_ms < 0 || timeout_ms > WRITER_POLL_HTTP_MS))
    {
        timeout_ms = WRITER_POLL_HTTP_MS;
    }

    /* EINTR means a signal, whose flags are checked below and by callers. */
    rc = poll(fds, n, timeout_ms);

    if (rc > 0 && (fds[0].revents & POLLIN)) {
        while (read(w->wake_pipe[0], drain, sizeof(drain)) > 0) {
            /* empty the pipe */
        }
    }

    if (writer_reopen_log) {
        writer_reopen_log = 0;
        writer_log_reopen(&w->conf);
    }

    if (rc > 0) {
        writer_http_serve(w, fds, http_first, n - http_first);
    }

    return rc > 0 && fd_index >= 0
           && (fds[fd_index].revents & (POLLIN | POLLHUP | POLLERR));
}


redisReply *
writer_redis_command(writer_t *w, int argc, const char **argv,
    unsigned timeout_ms, hhw_error_t *err)
{
    int            done;
    void          *reply;
    int64_t        deadline, left;
    redisReply    *r;
    redisContext  *ctx;

    ctx = w->redis;

    if (redisAppendCommandArgv(ctx, argc, argv, NULL) != REDIS_OK) {
        hhw_error_set(err, "out of memory queueing %s", argv[0]);
        return NULL;
    }

    /* The command is small, so the blocking socket takes it at once. */
    do {
        if (redisBufferWrite(ctx, &done) != REDIS_OK) {
            hhw_error_set(err, "Redis request failed: %s", ctx->errstr);
            return NULL;
        }

    } while (!done);

    deadline = writer_now_ms() + timeout_ms;

    for ( ;; ) {
        reply = NULL;

        if (redisGetReplyFromReader(ctx, &reply) != REDIS_OK) {
            hhw_error_set(err, "Redis request failed: %s", ctx->errstr);
            return NULL;
        }

        if (reply != NULL) {
            break;
        }

        left = deadline - writer_now_ms();

        if (left <= 0) {
            hhw_error_set(err, "Redis did not reply to %s within %u ms; "
                          "closing the connection", argv[0], timeout_ms);
            redisFree(w->redis);
            w->redis = NULL;
            return NULL;
        }

        /* A readable socket does not block the read that follows. */
        if (writer_poll(w, ctx->fd, (int) left) == 1
            && redisBufferRead(ctx) != REDIS_OK)
        {
            hhw_error_set(err, "Redis request failed: %s", ctx->errstr);
            return NULL;
        }
    }

    r = reply;

    if (r->type == REDIS_REPLY_ERROR) {
        hhw_error_set(err, "Redis replied to %s with an error: %.*s",
                      argv[0], (int) r->len, r->str);
        freeReplyObject(r);
        return NULL;
    }

    return r;
}


int64_t
writer_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int
writer_log_open(const hhw_conf_t *conf, hhw_error_t *err)
{
    int  fd;

    if (conf->log_file[0] == '\0') {
        return 0;
    }

    fd = open(conf->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
              0640);

    if (fd == -1) {
        hhw_error_set(err, "opening HH_WRITER_LOG \"%s\" failed: %s",
                      conf->log_file, strerror(errno));
        return -1;
    }

    if (dup2(fd, STDERR_FILENO) == -1) {
        hhw_error_set(err, "redirecting stderr to \"%s\" failed: %s",
                      conf->log_file, strerror(errno));
        close(fd);
        return -1;
    }

    close(fd);

    return 0;
}


/*
 * After a rotation the old file was renamed, so the new one is created.
 * When that fails the log stays on the old file, which is better than none.
 */
static void
writer_log_reopen(const hhw_conf_t *conf)
{
    hhw_error_t  err;

    if (conf->log_file[0] == '\0') {
        hhw_log(HHW_LOG_INFO, "SIGHUP received; logging to stderr, so there "
                "is no log file to reopen");
        return;
    }

    if (writer_log_open(conf, &err) != 0) {
        hhw_log(HHW_LOG_ERROR, "%s; logging to the old file", err.text);
        return;
    }

    hhw_log(HHW_LOG_INFO, "reopened the log file %s on SIGHUP",
            conf->log_file);
}
