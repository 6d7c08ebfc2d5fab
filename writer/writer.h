/*
 * humanhours-writer: the state of one writer process and the work that
 * shares it (sync, claiming idle entries, ingest, dead letters, metrics),
 * split over the writer_*.c files.
 */

#ifndef WRITER_H
#define WRITER_H

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "hh_entry.h"
#include "hh_event.h"
#include "hhw_buf.h"
#include "hhw_conf.h"
#include "hhw_log.h"
#include "hhw_pg.h"
#include "hhw_redis.h"


/* A stream id is two 64-bit decimal numbers and a dash. */
#define WRITER_STREAM_ID_MAX      48

/* Upper bounds of the batch size histogram, before the +Inf bucket. */
#define WRITER_SIZE_BUCKETS       { 1, 10, 50, 100, 250, 500, 1000, 2500, \
                                    5000, 10000 }
#define WRITER_NSIZE_BUCKETS      10

/* Upper bounds of the batch duration histogram, in seconds. */
#define WRITER_TIME_BUCKETS       { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, \
                                    0.5, 1, 2.5, 5, 10, 30 }
#define WRITER_NTIME_BUCKETS      12

/* Simultaneous connections to the metrics responder. */
#define WRITER_HTTP_CONNS         8
#define WRITER_HTTP_REQUEST_MAX   2048


typedef hh_entry_t  writer_entry_t;


/* What happens to one stream entry of the batch in flight. */
typedef enum {
    WRITER_ITEM_STORE = 0,     /* insert its event */
    WRITER_ITEM_DEAD,          /* insert a dead letter */
    WRITER_ITEM_GONE           /* deleted from the stream: acknowledge only */
} writer_item_action_e;


/* Why an item goes to dead letters, for the metrics. */
typedef enum {
    WRITER_DEAD_UNPARSEABLE = 0,   /* hh_entry_parse() rejected it */
    WRITER_DEAD_REJECTED,          /* Postgres rejected it on its own */
    WRITER_DEAD_DELIVERIES         /* delivered over HH_MAX_DELIVERIES */
} writer_dead_reason_e;


/* One stream entry of the batch in flight. */
typedef struct {
    const char            *stream_id;   /* points into a held reply */
    const redisReply      *fields;      /* NULL when action is GONE */
    writer_entry_t         entry;       /* parsed when action is STORE */
    int                    parsed;      /* entry needs hh_entry_free() */
    unsigned               deliveries;  /* 1 for an entry read as new */
    writer_item_action_e   action;
    int                    done;        /* committed in Postgres */

    /* when action is DEAD */
    writer_dead_reason_e   dead_reason;
    char                   sqlstate[6]; /* of a rejection, for the log */
    char                  *error;       /* stored reason, malloc()ed */
} writer_item_t;


/*
 * The batch in flight. It is kept across failures, so that a batch whose
 * store or acknowledgement failed is retried from memory, without reading
 * the entries again, which would count another delivery of each.
 */
typedef struct {
    redisReply       **replies;     /* XREADGROUP replies the items use */
    size_t             nreplies;
    writer_item_t     *items;       /* conf.batch_size of them */
    size_t             nitems;
    writer_item_t    **store;       /* scratch list of items to insert */
    const char       **ack_argv;    /* conf.batch_size + 3 of them */

    /*
     * Results of writer_batch_store() for the Redis hashes of the read
     * endpoints, written with the acknowledgement: pairs of agents and
     * days results, one pair per committed transaction.
     */
    PGresult         **views;
    size_t             nviews;
    size_t             views_size;
    int                stored;      /* every item is done: acknowledge */
    int                retried;     /* a store or acknowledgement failed */
    int64_t            read_at_ms;  /* CLOCK_MONOTONIC, when read */
    size_t             inserted;    /* events inserted by this batch */
} writer_batch_t;


/* Counters and gauges served on the metrics port. */
typedef struct {
    uint64_t   events_inserted;
    uint64_t   events_duplicate;
    uint64_t   entries_acknowledged;
    uint64_t   entries_claimed;
    uint64_t   dead_unparseable;
    uint64_t   dead_rejected;
    uint64_t   dead_deliveries;
    uint64_t   sync_ok;
    uint64_t   sync_failed;
    uint64_t   failures;
    uint64_t   consumers_deleted;

    uint64_t   size_buckets[WRITER_NSIZE_BUCKETS];
    uint64_t   batches;
    uint64_t   size_sum;
    uint64_t   time_buckets[WRITER_NTIME_BUCKETS];
    double     time_sum;
    double     time_max;

    /* read from Redis once a second, and stats_at_ms is 0 before that */
    int64_t    stats_at_ms;
    long long  stream_length;
    long long  group_pending;
    long long  group_lag;
    double     oldest_age_s;
} writer_metrics_t;


typedef struct {
    int        fd;
    int        writing;
    int64_t    deadline_ms;
    size_t     in_len;
    size_t     out_pos;
    hhw_buf_t  out;
    char       in[WRITER_HTTP_REQUEST_MAX];
} writer_http_conn_t;


typedef struct {
    int                  listen_fd;   /* -1 without HH_WRITER_METRICS */
    writer_http_conn_t   conns[WRITER_HTTP_CONNS];
} writer_http_t;


typedef struct {
    unsigned  delay_ms;            /* the next delay before jitter */
    unsigned  max_ms;
} writer_backoff_t;


typedef struct {
    hhw_conf_t         conf;
    hhw_redis_addr_t   redis_addr;
    redisContext      *redis;
    PGconn            *pg;

    /*
     * The id after which XREADGROUP reads: while this consumer's own
     * pending entries remain it starts at "0" and follows the last id
     * read, and then it is ">" for new entries.
     */
    char               cursor[WRITER_STREAM_ID_MAX];

    int                sync_needed;
    time_t             synced_at;  /* CLOCK_MONOTONIC seconds */

    int64_t            claimed_at_ms;  /* CLOCK_MONOTONIC, or 0 */
    char               claim_cursor[WRITER_STREAM_ID_MAX];

    writer_batch_t     batch;
    hhw_buf_t          rows;       /* COPY text or dead letter, reused */

    writer_metrics_t   metrics;
    writer_metrics_t   reported;     /* metrics at the last summary line */
    int64_t            reported_at_ms;
    writer_http_t      http;

    int                wake_pipe[2];   /* written by signal handlers */
} writer_t;


/* Set by the first SIGTERM or SIGINT. A second one ends the process. */
extern volatile sig_atomic_t  writer_stop;

/* Set by SIGHUP: the log file is to be reopened. */
extern volatile sig_atomic_t  writer_reopen_log;


/* Copies Postgres's keys, organisations, task types and prices to Redis. */
int writer_sync(writer_t *w, hhw_error_t *err);

/*
 * Moves the entries that any consumer, this one included, has left pending
 * for HH_CLAIM_IDLE_MS to this consumer, and if there were any, makes the
 * next read start with this consumer's pending entries. Also deletes
 * consumers that have nothing pending and have been idle for long. Returns
 * 0, or -1 with err.
 */
int writer_claim(writer_t *w, hhw_error_t *err);

/*
 * Reads one batch from the consumer group unless one is in flight, stores
 * it in Postgres, then acknowledges and deletes its entries. Returns 0, or
 * -1 with err after a Postgres or Redis failure, in which case the batch
 * stays in flight for the next call and nothing that was not committed has
 * been acknowledged.
 */
int writer_ingest(writer_t *w, hhw_error_t *err);

/* Frees the batch in flight without acknowledging it. */
void writer_ingest_abandon(writer_t *w);

/*
 * Inserts the events of the items, and for the rows actually inserted the
 * agent registry and the daily rollups, in one transaction, skipping event
 * ids already stored. Sets *inserted to the rows inserted, and *agents and
 * *days to what writer_views_queue() copies to Redis, which the caller
 * frees. Returns 0 after COMMIT, or -1 with err after ROLLBACK or a lost
 * connection.
 */
int writer_batch_store(PGconn *pg, writer_item_t **items, size_t n,
    hhw_buf_t *rows, size_t *inserted, PGresult **agents, PGresult **days,
    hhw_error_t *err);

/*
 * Creates the session's staging table for writer_batch_store(). The writer
 * calls it once per Postgres connection. Returns 0, or -1 with err.
 */
int writer_batch_prepare(PGconn *pg, hhw_error_t *err);

/*
 * Inserts a dead letter for each item whose action is DEAD and that is not
 * done, in one transaction, and marks them done. An entry already in dead
 * letters is skipped. Returns 0, or -1 with err.
 */
int writer_dead_letters_store(writer_t *w, hhw_error_t *err);

/*
 * Queues on ctx the updates of hh:org:<org>:agents and
 * hh:org:<org>:day:<date> from the results of writer_batch_store(), and
 * returns the number of replies to read, or -1 when memory ran out.
 */
int writer_views_queue(redisContext *ctx, PGresult *const *views,
    size_t nviews);

void writer_backoff_reset(writer_backoff_t *backoff, unsigned max_ms);

/* Returns the next delay in milliseconds and doubles the one after. */
unsigned writer_backoff_next(writer_backoff_t *backoff);

/*
 * Waits up to timeout_ms for fd (none when -1) to become readable, serving
 * metrics requests and reopening the log meanwhile. Returns 1 when fd is
 * readable, and 0 after the timeout or when a signal arrived.
 */
int writer_poll(writer_t *w, int fd, int timeout_ms);

/*
 * Sends a command and waits for its reply through writer_poll(), so that
 * metrics are served during a blocking XREADGROUP. A reply that takes
 * longer than timeout_ms closes the connection. Returns the reply, or
 * NULL with err.
 */
redisReply *writer_redis_command(writer_t *w, int argc, const char **argv,
    unsigned timeout_ms, hhw_error_t *err);

/* Returns CLOCK_MONOTONIC in milliseconds. */
int64_t writer_now_ms(void);

/* Opens HH_WRITER_LOG onto stderr, when set. Returns 0, or -1 with err. */
int writer_log_open(const hhw_conf_t *conf, hhw_error_t *err);

/*
 * Starts listening on HH_WRITER_METRICS, when set. Returns 0, or -1 with
 * err.
 */
int writer_http_listen(writer_t *w, hhw_error_t *err);

void writer_http_close(writer_t *w);

/*
 * Adds the responder's descriptors to fds from index *n on (at most
 * WRITER_HTTP_CONNS + 1), after closing connections that timed out.
 * Returns the number of open connections.
 */
int writer_http_poll_fds(writer_t *w, struct pollfd *fds, int *n);

/*
 * Accepts connections, reads requests and sends responses on the
 * descriptors that poll() found ready in fds[first] to fds[first + n - 1].
 */
void writer_http_serve(writer_t *w, struct pollfd *fds, int first, int n);

/* Renders the metrics in Prometheus text format into out. */
void writer_metrics_render(writer_t *w, hhw_buf_t *out);

/* Adds one stored batch to the metrics. */
void writer_metrics_batch(writer_metrics_t *m, size_t size, double seconds);

/*
 * Reads stream length, pending count, lag and the oldest entry's age from
 * Redis when the last read is a second old or older. Returns 0, or -1 with
 * err.
 */
int writer_metrics_refresh(writer_t *w, hhw_error_t *err);

#endif /* WRITER_H */
