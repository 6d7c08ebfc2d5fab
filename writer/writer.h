/*
 * humanhours-writer: the state of one writer process and the work that
 * shares it (sync, claiming idle entries, ingest), split over the
 * writer_*.c files.
 */

#ifndef WRITER_H
#define WRITER_H

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
#define WRITER_STREAM_ID_MAX  48


typedef hh_entry_t  writer_entry_t;


typedef struct {
    unsigned  delay_ms;            /* the next delay before jitter */
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
    time_t             claimed_at; /* CLOCK_MONOTONIC seconds, or 0 */

    writer_entry_t    *entries;    /* conf.batch_size of them */
    unsigned char     *committed;  /* per entry: stored, so to acknowledge */
    const char       **ack_argv;   /* conf.batch_size + 3 of them */
    hhw_buf_t          rows;       /* the batch as JSON, reused */
} writer_t;


/* Set by SIGTERM and SIGINT, which stop the loop after the batch in flight. */
extern volatile sig_atomic_t  writer_stop;


/* Copies Postgres's keys, organisations, task types and prices to Redis. */
int writer_sync(writer_t *w, hhw_error_t *err);

/*
 * Moves the entries that any consumer, this one included, has left pending
 * for a minute to this consumer, and if there were any, makes the next
 * read start with this consumer's pending entries. Returns 0, or -1 with
 * err.
 */
int writer_claim(writer_t *w, hhw_error_t *err);

/*
 * Reads one batch from the consumer group, stores it in one transaction,
 * then acknowledges and deletes the stored entries. Returns 0, or -1 with
 * err after a Postgres or Redis failure, in which case nothing of the
 * batch was acknowledged.
 */
int writer_ingest(writer_t *w, hhw_error_t *err);


/*
 * Inserts the entries into events with one statement in one transaction,
 * skipping event ids already stored, and sets *stored to the rows actually
 * inserted. Returns 0 after COMMIT, or -1 with err after ROLLBACK.
 */
int writer_batch_store(PGconn *pg, writer_entry_t *entries, size_t n,
    hhw_buf_t *rows, size_t *stored, hhw_error_t *err);

void writer_backoff_reset(writer_backoff_t *backoff);

/* Returns the next delay in milliseconds and doubles the one after. */
unsigned writer_backoff_next(writer_backoff_t *backoff);

#endif /* WRITER_H */
