/*
 * humanhours-writer: the daemon's entry point. It connects to Postgres and
 * Redis, keeps Redis in sync with Postgres, and runs the ingest loop until
 * SIGTERM or SIGINT, retrying with back-off after each failure.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "writer.h"
#include "webhook_writer.h"


/* A timed sync also repairs Redis after changes that sent no NOTIFY. */
#define WRITER_SYNC_INTERVAL_S    300

/* Interval of the summary line, while anything was stored. */
#define WRITER_REPORT_INTERVAL_MS  60000

/*
 * Connect and I/O timeout for Redis, on top of the BLOCK time of a read,
 * so that a dead Redis is noticed instead of waited on.
 */
#define WRITER_REDIS_TIMEOUT_MS   10000


volatile sig_atomic_t  writer_stop;
volatile sig_atomic_t  writer_reopen_log;

/* The write end of the wake pipe, for the signal handler. */
static int  writer_wake_fd = -1;


static void writer_usage(FILE *out);
static int writer_init(writer_t *w, hhw_error_t *err);
static void writer_free(writer_t *w);
static int writer_signals(writer_t *w, hhw_error_t *err);
static void writer_on_signal(int signo);
static int writer_step(writer_t *w, hhw_error_t *err);
static int writer_connect(writer_t *w, hhw_error_t *err);
static int writer_connect_pg(writer_t *w, hhw_error_t *err);
static int writer_create_group(writer_t *w, hhw_error_t *err);
static void writer_recover(writer_t *w, const hhw_error_t *err);
static void writer_disconnect(writer_t *w);
static void writer_wait(writer_t *w, unsigned ms);
static void writer_report(writer_t *w);


int
main(int argc, char **argv)
{
    writer_t          w;
    unsigned          delay;
    hhw_error_t       err;
    writer_backoff_t  backoff;

    hhw_log_set_program("humanhours-writer");

    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            writer_usage(stdout);
            return 0;
        }

        fprintf(stderr, "humanhours-writer: unknown argument \"%s\"; the "
                "writer takes its settings from the environment, see "
                "--help\n", argv[1]);
        return 1;
    }

    if (writer_init(&w, &err) != 0 || webhook_writer_init(&w, &err) != 0) {
        hhw_log(HHW_LOG_ERROR, "%s; exiting", err.text);
        return 1;
    }

    hhw_log(HHW_LOG_INFO, "started as consumer %s of group %s on stream %s, "
            "in batches of up to %u entries or %u ms; entries idle for %u ms "
            "are claimed, and entries delivered more than %u times go to "
            "dead letters; metrics %s%s", w.conf.consumer, HHW_REDIS_GROUP,
            HHW_REDIS_STREAM, w.conf.batch_size, w.conf.batch_ms,
            w.conf.claim_idle_ms, w.conf.max_deliveries,
            w.conf.metrics[0] != '\0' ? "on " : "off",
            w.conf.metrics);

    writer_backoff_reset(&backoff, w.conf.backoff_max_ms);

    while (!writer_stop) {
        if (writer_step(&w, &err) == 0) {
            writer_backoff_reset(&backoff, w.conf.backoff_max_ms);
            continue;
        }

        w.metrics.failures++;
        delay = writer_backoff_next(&backoff);

        hhw_log(HHW_LOG_ERROR, "%s; retrying in %u ms", err.text, delay);

        writer_recover(&w, &err);
        writer_wait(&w, delay);
    }

    if (w.batch.nitems > 0) {
        hhw_log(HHW_LOG_INFO, "stopped by a signal; the %zu stream entries "
                "in flight were %snot acknowledged and stay pending for "
                "consumer %s until a writer claims them", w.batch.nitems,
                w.batch.stored ? "stored but " : "", w.conf.consumer);

    } else {
        hhw_log(HHW_LOG_INFO, "stopped by a signal with no batch in flight");
    }

    writer_free(&w);

    return 0;
}


static void
writer_usage(FILE *out)
{
    fprintf(out,
        "usage: humanhours-writer\n"
        "\n"
        "Stores the events that the nginx module queues in Redis (stream %s,\n"
        "consumer group %s) in Postgres, with the agent registry and the\n"
        "daily rollups, and copies API keys, organisations, task types,\n"
        "agent rates and model prices from Postgres into Redis.\n"
        "\n"
        "Stream entries that cannot be stored go to the dead_letters table.\n"
        "The first SIGTERM or SIGINT stops reading, finishes the batch in\n"
        "flight, or leaves it pending when it cannot be stored, and exits\n"
        "with 0; a second one ends the process at once. SIGHUP reopens\n"
        "HH_WRITER_LOG.\n"
        "\n"
        "environment:\n", HHW_REDIS_STREAM, HHW_REDIS_GROUP);

    hhw_conf_print_help(out, 1);
    webhook_conf_print_help(out);
}


static int
writer_init(writer_t *w, hhw_error_t *err)
{
    size_t           n;
    writer_batch_t  *b;

    memset(w, 0, sizeof(writer_t));
    hhw_buf_init(&w->rows);
    strcpy(w->cursor, "0");
    strcpy(w->claim_cursor, "0-0");
    w->http.listen_fd = -1;
    w->wake_pipe[0] = -1;
    w->wake_pipe[1] = -1;

    if (hhw_conf_load(&w->conf, 1, err) != 0) {
        return -1;
    }

    if (hhw_redis_addr_parse(w->conf.redis, &w->redis_addr, err) != 0) {
        return -1;
    }

    /* libsodium supplies the back-off jitter. */
    if (sodium_init() < 0) {
        hhw_error_set(err, "libsodium failed to initialise");
        return -1;
    }

    n = w->conf.batch_size;
    b = &w->batch;

    b->replies = calloc(n, sizeof(redisReply *));
    b->items = calloc(n, sizeof(writer_item_t));
    b->store = calloc(n, sizeof(writer_item_t *));
    b->ack_argv = calloc(n + 3, sizeof(char *));

    if (b->replies == NULL || b->items == NULL || b->store == NULL
        || b->ack_argv == NULL)
    {
        hhw_error_set(err, "out of memory allocating a batch of %u entries",
                      w->conf.batch_size);
        return -1;
    }

    if (writer_log_open(&w->conf, err) != 0) {
        return -1;
    }

    if (writer_signals(w, err) != 0) {
        return -1;
    }

    return writer_http_listen(w, err);
}


static void
writer_free(writer_t *w)
{
    webhook_writer_free(w);
    writer_ingest_abandon(w);
    writer_disconnect(w);
    writer_http_close(w);

    free(w->batch.replies);
    free(w->batch.items);
    free(w->batch.store);
    free(w->batch.ack_argv);
    free(w->batch.views);
    hhw_buf_free(&w->rows);
    hhw_conf_free(&w->conf);
}


/*
 * The handlers only set flags and write a byte to the wake pipe, which
 * ends any poll() of the loop, so that a signal is noticed at once also
 * when it arrives just before poll() starts. Without SA_RESTART a signal
 * also interrupts a blocking Postgres or Redis call, which libpq and
 * hiredis then resume.
 */
static int
writer_signals(writer_t *w, hhw_error_t *err)
{
    int               i, flags;
    struct sigaction  sa;

    if (pipe(w->wake_pipe) != 0) {
        hhw_error_set(err, "creating the wake pipe failed: %s",
                      strerror(errno));
        return -1;
    }

    for (i = 0; i < 2; i++) {
        flags = fcntl(w->wake_pipe[i], F_GETFL);

        if (flags == -1
            || fcntl(w->wake_pipe[i], F_SETFL, flags | O_NONBLOCK) == -1
            || fcntl(w->wake_pipe[i], F_SETFD, FD_CLOEXEC) == -1)
        {
            hhw_error_set(err, "setting up the wake pipe failed: %s",
                          strerror(errno));
            return -1;
        }
    }

    writer_wake_fd = w->wake_pipe[1];

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = writer_on_signal;

    if (sigaction(SIGTERM, &sa, NULL) != 0
        || sigaction(SIGINT, &sa, NULL) != 0
        || sigaction(SIGHUP, &sa, NULL) != 0)
    {
        hhw_error_set(err, "installing signal handlers failed: %s",
                      strerror(errno));
        return -1;
    }

    /* A write to a closed Redis socket then fails with EPIPE instead. */
    sa.sa_handler = SIG_IGN;

    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        hhw_error_set(err, "ignoring SIGPIPE failed: %s", strerror(errno));
        return -1;
    }

    return 0;
}


/*
 * A second SIGTERM or SIGINT restores the default action and raises the
 * signal again, which ends the process as soon as the handler returns: the
 * batch in flight stays pending, as after a crash.
 */
static void
writer_on_signal(int signo)
{
    int  saved_errno;

    saved_errno = errno;

    if (signo == SIGHUP) {
        writer_reopen_log = 1;

    } else if (writer_stop) {
        signal(signo, SIG_DFL);
        raise(signo);

    } else {
        writer_stop = 1;
    }

    if (writer_wake_fd != -1 && write(writer_wake_fd, "", 1) == -1) {
        /* The pipe is full, so a wake-up is pending anyway. */
    }

    errno = saved_errno;
}


/*
 * Connects if needed, syncs, claims idle entries and refreshes the stream
 * gauges if due, then ingests one batch.
 */
static int
writer_step(writer_t *w, hhw_error_t *err)
{
    time_t    now;
    int64_t   now_ms, claim_interval_ms;
    unsigned  notified;

    if (writer_connect(w, err) != 0) {
        return -1;
    }

    now_ms = writer_now_ms();
    now = (time_t) (now_ms / 1000);

    if (w->sync_needed || now - w->synced_at >= WRITER_SYNC_INTERVAL_S) {
        if (writer_sync(w, err) != 0) {
            w->metrics.sync_failed++;
            hhw_error_prefix(err, "syncing Redis from Postgres failed");
            return -1;
        }

        w->metrics.sync_ok++;
        w->sync_needed = 0;
        w->synced_at = now;
    }

    /*
     * Half the idle time between claims: an entry left by a dead writer
     * waits at most one and a half idle times. An unfinished scan goes on
     * at the next step.
     */
    claim_interval_ms = w->conf.claim_idle_ms / 2;

    if (w->claimed_at_ms == 0
        || now_ms - w->claimed_at_ms >= claim_interval_ms
        || strcmp(w->claim_cursor, "0-0") != 0)
    {
        if (writer_claim(w, err) != 0) {
            return -1;
        }

        w->claimed_at_ms = now_ms;
    }

    if (writer_metrics_refresh(w, err) != 0) {
        return -1;
    }

    if (writer_ingest(w, err) != 0) {
        return -1;
    }

    if (hhw_pg_poll_notifications(w->pg, &notified, err) != 0) {
        return -1;
    }

    if (notified > 0) {
        hhw_log(HHW_LOG_INFO, "sync requested on channel %s; syncing Redis",
                HHW_PG_SYNC_CHANNEL);
        w->sync_needed = 1;
    }

    if (webhook_writer_step(w, err) != 0) {
        return -1;
    }

    writer_report(w);

    /* Metrics requests that arrived during the batch. */
    writer_poll(w, -1, 0);

    return 0;
}


/*
 * Opens whichever connection is closed, Postgres first: while Postgres is
 * down nothing is read from the stream. Each new connection calls for a
 * sync, since notifications or Redis data may have been lost meanwhile, and
 * a new Redis connection restarts with this consumer's pending entries.
 */
static int
writer_connect(writer_t *w, hhw_error_t *err)
{
    if (w->pg == NULL && writer_connect_pg(w, err) != 0) {
        return -1;
    }

    if (w->redis == NULL) {
        w->redis = hhw_redis_connect(&w->redis_addr,
                                     w->conf.batch_ms
                                     + WRITER_REDIS_TIMEOUT_MS,
                                     err);
        if (w->redis == NULL) {
            return -1;
        }

        if (writer_create_group(w, err) != 0) {
            return -1;
        }

        strcpy(w->cursor, "0");
        w->sync_needed = 1;

        hhw_log(HHW_LOG_INFO, "connected to Redis at %s; reading the "
                "pending entries of consumer %s first", w->conf.redis,
                w->conf.consumer);
    }

    return 0;
}


/*
 * Besides LISTEN and the staging table, the session gets a statement
 * timeout of a quarter of the claim idle time, so that one statement of a
 * batch never runs long enough for another writer to claim its entries.
 * Such a claim would only cost work, since the second insert of an event
 * inserts nothing.
 */
static int
writer_connect_pg(writer_t *w, hhw_error_t *err)
{
    char  sql[64];

    w->pg = hhw_pg_connect(w->conf.database, "humanhours-writer", err);
    if (w->pg == NULL) {
        return -1;
    }

    snprintf(sql, sizeof(sql), "SET statement_timeout = %u",
             w->conf.claim_idle_ms / 4);

    if (hhw_pg_exec(w->pg, sql, err) != 0) {
        hhw_error_prefix(err, "setting the statement timeout failed");
        return -1;
    }

    if (writer_batch_prepare(w->pg, err) != 0) {
        hhw_error_prefix(err, "creating the staging table failed");
        return -1;
    }

    if (hhw_pg_exec(w->pg, "LISTEN " HHW_PG_SYNC_CHANNEL, err) != 0) {
        hhw_error_prefix(err, "LISTEN %s failed", HHW_PG_SYNC_CHANNEL);
        return -1;
    }

    w->sync_needed = 1;

    hhw_log(HHW_LOG_INFO, "connected to Postgres, listening on channel %s",
            HHW_PG_SYNC_CHANNEL);

    return 0;
}


/* Creates the stream and the consumer group unless they exist. */
static int
writer_create_group(writer_t *w, hhw_error_t *err)
{
    const char  *argv[6];
    redisReply  *reply;

    argv[0] = "XGROUP";
    argv[1] = "CREATE";
    argv[2] = HHW_REDIS_STREAM;
    argv[3] = HHW_REDIS_GROUP;
    argv[4] = "0";
    argv[5] = "MKSTREAM";

    reply = redisCommandArgv(w->redis, 6, argv, NULL);

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "BUSYGROUP", 9) == 0)
    {
        freeReplyObject(reply);
        return 0;
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        hhw_error_set(err, "XGROUP CREATE %s %s failed: %s",
                      HHW_REDIS_STREAM, HHW_REDIS_GROUP,
                      reply != NULL ? reply->str : w->redis->errstr);

        if (reply != NULL) {
            freeReplyObject(reply);
        }

        return -1;
    }

    freeReplyObject(reply);

    hhw_log(HHW_LOG_INFO, "created consumer group %s on stream %s",
            HHW_REDIS_GROUP, HHW_REDIS_STREAM);

    return 0;
}


/*
 * Prepares the retry after a failure. A connection that broke, or a
 * Postgres session left inside a transaction, is closed and reopened by the
 * next step. An error that Postgres reported on a usable session, such as a
 * deadlock or a missing privilege, keeps both connections. Any other
 * failure that left both usable, such as an error reply from Redis, closes
 * both, so that the retry starts from scratch and creates the consumer
 * group again if it was deleted. The batch in flight is kept and retried
 * from memory; later reads restart with this consumer's pending entries.
 */
static void
writer_recover(writer_t *w, const hhw_error_t *err)
{
    int  broken;

    /* A connection that failed to open is already closed. */
    broken = w->pg == NULL || w->redis == NULL;

    if (w->pg != NULL
        && (PQstatus(w->pg) != CONNECTION_OK
            || PQtransactionStatus(w->pg) != PQTRANS_IDLE))
    {
        PQfinish(w->pg);
        w->pg = NULL;
        broken = 1;
    }

    if (w->redis != NULL && w->redis->err != 0) {
        redisFree(w->redis);
        w->redis = NULL;
        broken = 1;
    }

    if (!broken && err->sqlstate[0] == '\0') {
        writer_disconnect(w);
    }

    strcpy(w->cursor, "0");
}


static void
writer_disconnect(writer_t *w)
{
    if (w->pg != NULL) {
        PQfinish(w->pg);
        w->pg = NULL;
    }

    if (w->redis != NULL) {
        redisFree(w->redis);
        w->redis = NULL;
    }
}


/* Waits ms milliseconds, serving metrics, or less when a stop signal came. */
static void
writer_wait(writer_t *w, unsigned ms)
{
    int64_t  deadline, left;

    deadline = writer_now_ms() + ms;

    while (!writer_stop) {
        left = deadline - writer_now_ms();
        if (left <= 0) {
            break;
        }

        writer_poll(w, -1, (int) left);
    }
}


/*
 * Logs one line a minute while events arrive, instead of one per batch,
 * which at full load would be dozens a second.
 */
static void
writer_report(writer_t *w)
{
    int64_t            now;
    uint64_t           dead;
    writer_metrics_t  *m, *r;

    now = writer_now_ms();

    if (w->reported_at_ms == 0) {
        w->reported_at_ms = now;
        return;
    }

    if (now - w->reported_at_ms < WRITER_REPORT_INTERVAL_MS) {
        return;
    }

    m = &w->metrics;
    r = &w->reported;

    if (m->entries_acknowledged != r->entries_acknowledged) {
        dead = m->dead_unparseable + m->dead_rejected + m->dead_deliveries
               - r->dead_unparseable - r->dead_rejected - r->dead_deliveries;

        hhw_log(HHW_LOG_INFO, "in the last %lld s: %llu events inserted, "
                "%llu stored before, %llu dead letters, in %llu batches; "
                "stream length %lld, pending %lld",
                (long long) (now - w->reported_at_ms) / 1000,
                (unsigned long long) (m->events_inserted - r->events_inserted),
                (unsigned long long) (m->events_duplicate
                                      - r->events_duplicate),
                (unsigned long long) dead,
                (unsigned long long) (m->batches - r->batches),
                m->stream_length, m->group_pending);
    }

    *r = *m;
    w->reported_at_ms = now;
}
