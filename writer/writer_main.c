/*
 * humanhours-writer: the daemon's entry point. It connects to Postgres and
 * Redis, keeps Redis in sync with Postgres, and runs the ingest loop until
 * SIGTERM or SIGINT, retrying with back-off after each failure.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "writer.h"


/* A timed sync also repairs Redis after changes that sent no NOTIFY. */
#define WRITER_SYNC_INTERVAL_S   300

#define WRITER_CLAIM_INTERVAL_S  60

/*
 * Connect and I/O timeout for Redis, on top of the BLOCK time of a read,
 * so that a dead Redis is noticed instead of waited on.
 */
#define WRITER_REDIS_TIMEOUT_MS   10000


volatile sig_atomic_t  writer_stop;


static void writer_usage(FILE *out);
static int writer_init(writer_t *w, hhw_error_t *err);
static void writer_free(writer_t *w);
static int writer_signals(hhw_error_t *err);
static void writer_on_signal(int signo);
static int writer_step(writer_t *w, hhw_error_t *err);
static int writer_connect(writer_t *w, hhw_error_t *err);
static int writer_create_group(writer_t *w, hhw_error_t *err);
static void writer_recover(writer_t *w);
static void writer_disconnect(writer_t *w);
static void writer_sleep(unsigned ms);
static time_t writer_monotonic_now(void);


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

    if (writer_init(&w, &err) != 0 || writer_signals(&err) != 0) {
        hhw_log(HHW_LOG_ERROR, "%s; exiting", err.text);
        return 1;
    }

    hhw_log(HHW_LOG_INFO, "started as consumer %s of group %s on stream %s, "
            "in batches of up to %u entries or %u ms", w.conf.consumer,
            HHW_REDIS_GROUP, HHW_REDIS_STREAM, w.conf.batch_size,
            w.conf.batch_ms);

    writer_backoff_reset(&backoff);

    while (!writer_stop) {
        if (writer_step(&w, &err) == 0) {
            writer_backoff_reset(&backoff);
            continue;
        }

        delay = writer_backoff_next(&backoff);

        hhw_log(HHW_LOG_ERROR, "%s; retrying in %u ms", err.text, delay);

        writer_recover(&w);
        writer_sleep(delay);
    }

    hhw_log(HHW_LOG_INFO, "stopped by a signal with no batch in flight");

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
        "consumer group %s) in Postgres, and copies API keys,\n"
        "organisations, task types, agent rates and model prices from\n"
        "Postgres into Redis. Runs until SIGTERM or SIGINT.\n"
        "\n"
        "environment:\n", HHW_REDIS_STREAM, HHW_REDIS_GROUP);

    hhw_conf_print_help(out, 1);
}


static int
writer_init(writer_t *w, hhw_error_t *err)
{
    memset(w, 0, sizeof(writer_t));
    hhw_buf_init(&w->rows);
    strcpy(w->cursor, "0");

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

    w->entries = calloc(w->conf.batch_size, sizeof(writer_entry_t));
    w->committed = calloc(w->conf.batch_size, 1);
    w->ack_argv = calloc(w->conf.batch_size + 3, sizeof(char *));

    if (w->entries == NULL || w->committed == NULL || w->ack_argv == NULL) {
        hhw_error_set(err, "out of memory allocating a batch of %u entries",
                      w->conf.batch_size);
        return -1;
    }

    return 0;
}


static void
writer_free(writer_t *w)
{
    writer_disconnect(w);

    free(w->entries);
    free(w->committed);
    free(w->ack_argv);
    hhw_buf_free(&w->rows);
    hhw_conf_free(&w->conf);
}


/*
 * Without SA_RESTART a signal cuts the back-off sleep short. A blocking
 * Redis read still runs to the end of its BLOCK time, because hiredis
 * retries a read that a signal interrupted.
 */
static int
writer_signals(hhw_error_t *err)
{
    struct sigaction  sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = writer_on_signal;

    if (sigaction(SIGTERM, &sa, NULL) != 0
        || sigaction(SIGINT, &sa, NULL) != 0)
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


static void
writer_on_signal(int signo)
{
    writer_stop = 1;
}


/*
 * Connects if needed, syncs and claims idle entries if due, then ingests one
 * batch.
 */
static int
writer_step(writer_t *w, hhw_error_t *err)
{
    time_t    now;
    unsigned  notified;

    if (writer_connect(w, err) != 0) {
        return -1;
    }

    now = writer_monotonic_now();

    if (w->sync_needed || now - w->synced_at >= WRITER_SYNC_INTERVAL_S) {
        if (writer_sync(w, err) != 0) {
            hhw_error_prefix(err, "syncing Redis from Postgres failed");
            return -1;
        }

        w->sync_needed = 0;
        w->synced_at = now;
    }

    if (w->claimed_at == 0 || now - w->claimed_at >= WRITER_CLAIM_INTERVAL_S) {
        if (writer_claim(w, err) != 0) {
            return -1;
        }

        w->claimed_at = now;
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

    return 0;
}


/*
 * Opens whichever connection is closed. Each new connection calls for a
 * sync, since notifications or Redis data may have been lost meanwhile, and
 * a new Redis connection restarts with this consumer's pending entries.
 */
static int
writer_connect(writer_t *w, hhw_error_t *err)
{
    if (w->pg == NULL) {
        w->pg = hhw_pg_connect(w->conf.database, "humanhours-writer", err);
        if (w->pg == NULL) {
            return -1;
        }

        if (hhw_pg_exec(w->pg, "LISTEN " HHW_PG_SYNC_CHANNEL, err) != 0) {
            hhw_error_prefix(err, "LISTEN %s failed", HHW_PG_SYNC_CHANNEL);
            return -1;
        }

        w->sync_needed = 1;

        hhw_log(HHW_LOG_INFO, "connected to Postgres, listening on channel "
                "%s", HHW_PG_SYNC_CHANNEL);
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
 * next step. A failure that left both connections usable, such as a
 * statement that Postgres rejected or an error reply from Redis, closes both
 * anyway, so that the retry starts from scratch. The batch that failed is
 * still pending, so reading restarts with this consumer's pending entries.
 */
static void
writer_recover(writer_t *w)
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

    if (!broken) {
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


static void
writer_sleep(unsigned ms)
{
    struct timespec  ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long) (ms % 1000) * 1000000;

    /* A signal ends the sleep early, and the loop then checks writer_stop. */
    nanosleep(&ts, NULL);
}


static time_t
writer_monotonic_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec;
}
