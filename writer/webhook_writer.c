/*
 * Webhooks in humanhours-writer. A sender thread with its own Postgres
 * connection claims due deliveries, sends up to HH_WEBHOOK_CONCURRENCY
 * attempts at once through libcurl's multi interface and records each
 * result. It runs apart from the ingest loop, because that loop's blocking
 * Redis reads would stall transfers and skew their timeouts. The writer
 * loop itself only queues the weekly digest.
 */

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webhook_http.h"
#include "webhook_secret.h"
#include "webhook_writer.h"


/* How often an idle sender looks for due deliveries, before time scaling. */
#define WEBHOOK_CLAIM_INTERVAL_MS     250
#define WEBHOOK_CLAIM_INTERVAL_MIN_MS  20

/*
 * A claimed attempt's lease lasts its timeout and this margin for
 * recording the result, before time scaling. Once the lease ends without a
 * result, another writer sends the delivery again.
 */
#define WEBHOOK_LEASE_MARGIN_MS      30000
#define WEBHOOK_LEASE_MARGIN_MIN_MS   1000

#define WEBHOOK_DIGEST_INTERVAL_S       60

#define WEBHOOK_BACKOFF_MIN_MS         100
#define WEBHOOK_BACKOFF_MAX_MS       30000

/* pg_try_advisory_xact_lock() key of the digest check: "hhwd". */
#define WEBHOOK_DIGEST_LOCK     "1751676772"

#define WEBHOOK_ID_MAX                  64


typedef enum {
    WEBHOOK_SLOT_FREE = 0,
    WEBHOOK_SLOT_SENDING,       /* in the multi handle */
    WEBHOOK_SLOT_DONE           /* result known, not yet recorded */
} webhook_slot_state_e;


/* One claimed attempt, from the claim until its result is recorded. */
typedef struct {
    webhook_slot_state_e  state;
    webhook_request_t     request;
    webhook_result_t      result;
    int                   attempt;
    char                  delivery_id[WEBHOOK_ID_MAX];
    char                  message_id[WEBHOOK_ID_MAX];
    char                  type[WEBHOOK_ID_MAX];
    char                  endpoint_id[WEBHOOK_ID_MAX];
    char                  org_id[WEBHOOK_ID_MAX];
} webhook_slot_t;


typedef struct {
    webhook_conf_t   conf;
    int              conf_loaded;
    unsigned char    key[WEBHOOK_SERVER_KEY_LEN];

    /* Copies of the writer's settings, for the sender thread. */
    char            *database;
    char            *sender;

    /* Owned by the sender thread once it runs. */
    PGconn          *pg;
    CURLM           *multi;
    webhook_slot_t  *slots;
    unsigned         busy;          /* slots that are not free */
    long long        claim_interval_ms;
    char             lease[32];     /* interval text */

    pthread_t        thread;
    int              thread_started;
    int              curl_started;
    atomic_int       stop;

    /* The writer loop's. */
    time_t           digest_checked_at;   /* CLOCK_MONOTONIC seconds, or 0 */
} webhook_writer_t;


static webhook_writer_t  webhook_writer;


static int webhook_writer_start_thread(hhw_error_t *err);
static void *webhook_sender_run(void *arg);
static int webhook_sender_connect(hhw_error_t *err);
static void webhook_sender_collect(void);
static int webhook_sender_record(int interrupted, hhw_error_t *err);
static int webhook_sender_finish(webhook_slot_t *slot, int interrupted,
    hhw_error_t *err);
static int webhook_sender_claim(hhw_error_t *err);
static int webhook_sender_start(webhook_slot_t *slot, PGresult *res,
    int row, hhw_error_t *err);
static void webhook_sender_stop(void);
static long long webhook_monotonic_ms(void);


int
webhook_writer_init(writer_t *w, hhw_error_t *err)
{
    int                webhook_key;
    double             margin_ms;
    webhook_writer_t  *ww;

    ww = &webhook_writer;
    memset(ww, 0, sizeof(webhook_writer_t));
    atomic_init(&ww->stop, 0);

    if (webhook_conf_load(&ww->conf, err) != 0) {
        return -1;
    }

    ww->conf_loaded = 1;

    webhook_key = webhook_server_key_load(&ww->conf, ww->key, err);

    if (webhook_key == -1) {
        return -1;
    }

    if (webhook_key == 1) {
        hhw_log(HHW_LOG_WARN, "webhook deliveries are off: %s; create the "
                "key file and restart the writer to send them", err->text);
        return 0;
    }

    ww->claim_interval_ms = (long long) (WEBHOOK_CLAIM_INTERVAL_MS
                                         * ww->conf.time_scale);
    if (ww->claim_interval_ms < WEBHOOK_CLAIM_INTERVAL_MIN_MS) {
        ww->claim_interval_ms = WEBHOOK_CLAIM_INTERVAL_MIN_MS;
    }

    margin_ms = WEBHOOK_LEASE_MARGIN_MS * ww->conf.time_scale;
    if (margin_ms < WEBHOOK_LEASE_MARGIN_MIN_MS) {
        margin_ms = WEBHOOK_LEASE_MARGIN_MIN_MS;
    }

    snprintf(ww->lease, sizeof(ww->lease), "%.0f milliseconds",
             ww->conf.timeout_ms + margin_ms);

    ww->database = strdup(w->conf.database);
    ww->sender = strdup(w->conf.consumer);
    ww->slots = calloc(ww->conf.concurrency, sizeof(webhook_slot_t));

    if (ww->database == NULL || ww->sender == NULL || ww->slots == NULL) {
        hhw_error_set(err, "out of memory starting the webhook sender");
        return -1;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        hhw_error_set(err, "libcurl failed to initialise");
        return -1;
    }

    ww->curl_started = 1;

    ww->multi = curl_multi_init();
    if (ww->multi == NULL) {
        hhw_error_set(err, "curl_multi_init() failed");
        return -1;
    }

    if (webhook_writer_start_thread(err) != 0) {
        return -1;
    }

    hhw_log(HHW_LOG_INFO, "webhook deliveries on: up to %u attempts in "
            "flight, %u per endpoint, %u ms to connect and %u ms in all",
            ww->conf.concurrency, ww->conf.per_endpoint,
            ww->conf.connect_timeout_ms, ww->conf.timeout_ms);

    return 0;
}


/*
 * The lock lets one writer at a time do the check. The unique row per
 * organisation and week in webhook_queue_digests() is what makes the
 * digest go out once, even after the lock is released.
 */
int
webhook_writer_step(writer_t *w, hhw_error_t *err)
{
    int          queued;
    time_t       now;
    PGresult    *res;
    const char  *params[1];
    hhw_error_t  ignored;

    now = (time_t) (webhook_monotonic_ms() / 1000);

    if (webhook_writer.digest_checked_at != 0
        && now - webhook_writer.digest_checked_at < WEBHOOK_DIGEST_INTERVAL_S)
    {
        return 0;
    }

    if (hhw_pg_exec(w->pg, "BEGIN", err) != 0) {
        return -1;
    }

    params[0] = webhook_writer.conf.now_text;

    res = hhw_pg_query(w->pg,
                       "SELECT CASE WHEN pg_try_advisory_xact_lock("
                       WEBHOOK_DIGEST_LOCK ")"
                       " THEN webhook_queue_digests("
                       "coalesce($1::timestamptz, now())) END",
                       1, params, err);
    if (res == NULL) {
        hhw_pg_exec(w->pg, "ROLLBACK", &ignored);
        hhw_error_prefix(err, "queueing the weekly digest failed");
        return -1;
    }

    queued = PQgetisnull(res, 0, 0) ? -1 : atoi(PQgetvalue(res, 0, 0));
    PQclear(res);

    if (hhw_pg_exec(w->pg, "COMMIT", err) != 0) {
        hhw_error_prefix(err, "queueing the weekly digest failed");
        return -1;
    }

    webhook_writer.digest_checked_at = now;

    if (queued > 0) {
        hhw_log(HHW_LOG_INFO, "queued %d weekly.digest deliveries", queued);
    }

    return 0;
}


void
webhook_writer_free(writer_t *w)
{
    unsigned           i;
    webhook_writer_t  *ww;

    ww = &webhook_writer;

    if (ww->thread_started) {
        atomic_store(&ww->stop, 1);
        curl_multi_wakeup(ww->multi);
        pthread_join(ww->thread, NULL);
    }

    if (ww->slots != NULL) {
        for (i = 0; i < ww->conf.concurrency; i++) {
            webhook_request_free(&ww->slots[i].request);
        }
    }

    if (ww->multi != NULL) {
        curl_multi_cleanup(ww->multi);
    }

    if (ww->curl_started) {
        curl_global_cleanup();
    }

    if (ww->pg != NULL) {
        PQfinish(ww->pg);
    }

    if (ww->conf_loaded) {
        webhook_conf_free(&ww->conf);
    }

    free(ww->slots);
    free(ww->database);
    free(ww->sender);
    sodium_memzero(ww->key, sizeof(ww->key));
    memset(ww, 0, sizeof(webhook_writer_t));
}


/*
 * The thread inherits the signal mask, so SIGTERM, SIGINT and SIGHUP are
 * blocked while it is created, and the writer's loop alone handles them.
 */
static int
webhook_writer_start_thread(hhw_error_t *err)
{
    int       rc;
    sigset_t  blocked, saved;

    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGHUP);

    pthread_sigmask(SIG_BLOCK, &blocked, &saved);
    rc = pthread_create(&webhook_writer.thread, NULL, webhook_sender_run,
                        NULL);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);

    if (rc != 0) {
        hhw_error_set(err, "starting the webhook sender thread failed: %s",
                      strerror(rc));
        return -1;
    }

    webhook_writer.thread_started = 1;

    return 0;
}


/*
 * The sender's loop: run the transfers, record the finished ones, claim
 * more while slots are free, then wait for transfer activity or the next
 * claim. A Postgres failure drops the connection, which is retried after a
 * back-off. The transfers in flight go on meanwhile, and their results wait
 * in their slots until they can be recorded.
 */
static void *
webhook_sender_run(void *arg)
{
    int                running;
    unsigned           backoff_ms;
    long long          now, claimed_at, retry_at, wait_ms;
    hhw_error_t        err;
    webhook_writer_t  *ww;

    ww = &webhook_writer;
    backoff_ms = 0;
    claimed_at = 0;
    retry_at = 0;

    while (!atomic_load(&ww->stop)) {
        curl_multi_perform(ww->multi, &running);
        webhook_sender_collect();

        now = webhook_monotonic_ms();

        if (now >= retry_at) {
            if (webhook_sender_connect(&err) != 0
                || webhook_sender_record(0, &err) != 0
                || (ww->busy < ww->conf.concurrency
                    && now - claimed_at >= ww->claim_interval_ms
                    && webhook_sender_claim(&err) != 0))
            {
                backoff_ms = backoff_ms == 0 ? WEBHOOK_BACKOFF_MIN_MS
                             : backoff_ms * 2;
                if (backoff_ms > WEBHOOK_BACKOFF_MAX_MS) {
                    backoff_ms = WEBHOOK_BACKOFF_MAX_MS;
                }

                hhw_log(HHW_LOG_ERROR, "webhook sender: %s; retrying in %u "
                        "ms", err.text, backoff_ms);

                if (ww->pg != NULL) {
                    PQfinish(ww->pg);
                    ww->pg = NULL;
                }

                retry_at = now + backoff_ms;

            } else {
                backoff_ms = 0;

                if (now - claimed_at >= ww->claim_interval_ms) {
                    claimed_at = now;
                }
            }
        }

        /* libcurl returns early when a transfer needs attention. */
        now = webhook_monotonic_ms();

        if (retry_at > now) {
            wait_ms = retry_at - now;

        } else if (ww->busy >= ww->conf.concurrency) {
            wait_ms = ww->claim_interval_ms;

        } else {
            wait_ms = claimed_at + ww->claim_interval_ms - now;
        }

        if (wait_ms > ww->claim_interval_ms) {
            wait_ms = ww->claim_interval_ms;
        }

        if (wait_ms > 0) {
            curl_multi_poll(ww->multi, NULL, 0, (int) wait_ms, NULL);
        }
    }

    webhook_sender_stop();

    return NULL;
}


static int
webhook_sender_connect(hhw_error_t *err)
{
    if (webhook_writer.pg != NULL) {
        return 0;
    }

    webhook_writer.pg = hhw_pg_connect(webhook_writer.database,
                                       "humanhours-writer webhooks", err);
    if (webhook_writer.pg == NULL) {
        return -1;
    }

    hhw_log(HHW_LOG_INFO, "webhook sender connected to Postgres");

    return 0;
}


/* Moves the transfers that libcurl finished to the done state. */
static void
webhook_sender_collect(void)
{
    int              left;
    char            *private;
    CURLMsg         *msg;
    webhook_slot_t  *slot;

    while ((msg = curl_multi_info_read(webhook_writer.multi, &left))
           != NULL)
    {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        private = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &private);
        slot = (webhook_slot_t *) (void *) private;

        webhook_request_result(&slot->request, msg->data.result,
                               &slot->result);
        slot->state = WEBHOOK_SLOT_DONE;

        curl_multi_remove_handle(webhook_writer.multi, msg->easy_handle);
    }
}


/*
 * Records every done slot and frees it. With interrupted set, slots still
 * sending are stopped and recorded as interrupted too. Returns 0, or -1
 * with err after a Postgres failure, leaving the unrecorded slots as they
 * are.
 */
static int
webhook_sender_record(int interrupted, hhw_error_t *err)
{
    int              stopped;
    unsigned         i;
    webhook_slot_t  *slot;

    for (i = 0; i < webhook_writer.conf.concurrency; i++) {
        slot = &webhook_writer.slots[i];
        stopped = 0;

        if (slot->state == WEBHOOK_SLOT_SENDING) {
            if (!interrupted) {
                continue;
            }

            curl_multi_remove_handle(webhook_writer.multi,
                                     slot->request.easy);
            slot->state = WEBHOOK_SLOT_DONE;
            stopped = 1;

        } else if (slot->state != WEBHOOK_SLOT_DONE) {
            continue;
        }

        if (webhook_sender_finish(slot, stopped, err) != 0) {
            return -1;
        }

        webhook_request_reset(&slot->request);
        slot->state = WEBHOOK_SLOT_FREE;
        webhook_writer.busy--;
    }

    return 0;
}


/*
 * Records one attempt with webhook_finish() and logs what it leads to. A
 * failure with attempts left is retried after the schedule's delay, or
 * after Retry-After when a 429 or 503 requests longer, up to the
 * schedule's longest delay.
 */
static int
webhook_sender_finish(webhook_slot_t *slot, int interrupted,
    hhw_error_t *err)
{
    char               status[24], latency[24], attempt[24], retry_in[48];
    PGresult          *res;
    long long          delay_ms, max_delay_ms;
    const char        *outcome, *params[8], *endpoint_status;
    webhook_result_t  *result;

    result = &slot->result;

    if (interrupted) {
        result->outcome = WEBHOOK_FAILED;
        result->http_status = 0;
        result->latency_ms = -1;
        result->retry_after_s = -1;
        result->response[0] = '\0';
        snprintf(result->error, sizeof(result->error),
                 "interrupted: the writer stopped during the attempt");
    }

    delay_ms = 0;

    switch (result->outcome) {

    case WEBHOOK_DELIVERED:
        outcome = "delivered";
        break;

    case WEBHOOK_GONE:
        outcome = "gone";
        break;

    default:
        if (slot->attempt >= WEBHOOK_ATTEMPTS) {
            outcome = "failed";
            break;
        }

        outcome = "retry";

        if (!interrupted) {
            delay_ms = webhook_conf_retry_delay_ms(&webhook_writer.conf,
                                                   slot->attempt);
        }

        max_delay_ms = webhook_conf_retry_delay_ms(&webhook_writer.conf,
                                                   WEBHOOK_ATTEMPTS - 1);

        if (result->retry_after_s >= 0
            && result->retry_after_s * 1000LL > delay_ms)
        {
            delay_ms = result->retry_after_s * 1000LL < max_delay_ms
                       ? result->retry_after_s * 1000LL : max_delay_ms;
        }
    }

    snprintf(attempt, sizeof(attempt), "%d", slot->attempt);
    snprintf(status, sizeof(status), "%ld", result->http_status);
    snprintf(latency, sizeof(latency), "%ld", result->latency_ms);
    snprintf(retry_in, sizeof(retry_in), "%lld milliseconds", delay_ms);

    params[0] = slot->delivery_id;
    params[1] = attempt;
    params[2] = result->http_status > 0 ? status : NULL;
    params[3] = result->latency_ms >= 0 ? latency : NULL;
    params[4] = result->error[0] != '\0' ? result->error : NULL;
    params[5] = result->response[0] != '\0' ? result->response : NULL;
    params[6] = outcome;
    params[7] = retry_in;

    res = hhw_pg_query(webhook_writer.pg,
                       "SELECT webhook_finish($1::bigint, $2::integer,"
                       " $3::integer, $4::integer, $5, $6, $7,"
                       " $8::interval)",
                       8, params, err);
    if (res == NULL) {
        hhw_error_prefix(err, "recording attempt %d of delivery %s failed",
                         slot->attempt, slot->message_id);
        return -1;
    }

    endpoint_status = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);

    if (result->outcome == WEBHOOK_DELIVERED) {
        if (slot->attempt > 1) {
            hhw_log(HHW_LOG_INFO, "delivery %s (%s) to endpoint %s of "
                    "organisation %s succeeded at attempt %d",
                    slot->message_id, slot->type, slot->endpoint_id,
                    slot->org_id, slot->attempt);
        }

    } else if (strcmp(outcome, "retry") == 0) {
        hhw_log(HHW_LOG_WARN, "delivery %s (%s) to endpoint %s of "
                "organisation %s failed at attempt %d of %d: %s; retrying in "
                "%lld ms", slot->message_id, slot->type, slot->endpoint_id,
                slot->org_id, slot->attempt, WEBHOOK_ATTEMPTS, result->error,
                delay_ms);

    } else {
        hhw_log(HHW_LOG_WARN, "delivery %s (%s) to endpoint %s of "
                "organisation %s failed at attempt %d of %d: %s; no attempt "
                "follows, and the endpoint is %s", slot->message_id,
                slot->type, slot->endpoint_id, slot->org_id, slot->attempt,
                WEBHOOK_ATTEMPTS, result->error,
                endpoint_status[0] != '\0' ? endpoint_status : "unchanged");
    }

    PQclear(res);

    return 0;
}


/* Claims as many due deliveries as there are free slots and starts them. */
static int
webhook_sender_claim(hhw_error_t *err)
{
    int                row, n;
    char               count[24], attempts[24], per_endpoint[24];
    unsigned           i;
    PGresult          *res;
    const char        *params[5];
    webhook_writer_t  *ww;

    ww = &webhook_writer;

    snprintf(count, sizeof(count), "%u", ww->conf.concurrency - ww->busy);
    snprintf(attempts, sizeof(attempts), "%d", WEBHOOK_ATTEMPTS);
    snprintf(per_endpoint, sizeof(per_endpoint), "%u", ww->conf.per_endpoint);

    params[0] = ww->sender;
    params[1] = count;
    params[2] = attempts;
    params[3] = per_endpoint;
    params[4] = ww->lease;

    res = hhw_pg_query(ww->pg,
                       "SELECT delivery_id, attempt, message_id, type,"
                       " created_at, data, endpoint_id, org_id, url,"
                       " encode(secret, 'hex'), encode(previous_secret, 'hex')"
                       " FROM webhook_claim($1, $2::integer, $3::integer,"
                       " $4::integer, $5::interval)",
                       5, params, err);
    if (res == NULL) {
        hhw_error_prefix(err, "claiming due deliveries failed");
        return -1;
    }

    n = PQntuples(res);
    i = 0;

    for (row = 0; row < n; row++) {
        while (i < ww->conf.concurrency
               && ww->slots[i].state != WEBHOOK_SLOT_FREE)
        {
            i++;
        }

        /* The claim asked for no more rows than there are free slots. */
        if (i == ww->conf.concurrency) {
            break;
        }

        ww->busy++;

        if (webhook_sender_start(&ww->slots[i], res, row, err) != 0) {
            /* Recorded as a failed attempt, so that it is retried. */
            snprintf(ww->slots[i].result.error,
                     sizeof(ww->slots[i].result.error), "not sent: %.200s",
                     err->text);
            hhw_log(HHW_LOG_ERROR, "delivery %s to endpoint %s was not "
                    "sent: %s", ww->slots[i].message_id,
                    ww->slots[i].endpoint_id, err->text);
        }
    }

    PQclear(res);

    return 0;
}


/*
 * Fills a free slot from one claimed row and adds its transfer to the multi
 * handle. Returns 0, or -1 with err and the slot done with a failed result.
 */
static int
webhook_sender_start(webhook_slot_t *slot, PGresult *res, int row,
    hhw_error_t *err)
{
    size_t             nsecrets;
    CURLMcode          mc;
    const char        *secrets[WEBHOOK_SIGN_SECRETS_MAX];
    webhook_message_t  message;
    char               current[WEBHOOK_SECRET_LEN + 1];
    char               previous[WEBHOOK_SECRET_LEN + 1];

    snprintf(slot->delivery_id, sizeof(slot->delivery_id), "%s",
             PQgetvalue(res, row, 0));
    slot->attempt = atoi(PQgetvalue(res, row, 1));
    snprintf(slot->message_id, sizeof(slot->message_id), "%s",
             PQgetvalue(res, row, 2));
    snprintf(slot->type, sizeof(slot->type), "%s", PQgetvalue(res, row, 3));
    snprintf(slot->endpoint_id, sizeof(slot->endpoint_id), "%s",
             PQgetvalue(res, row, 6));
    snprintf(slot->org_id, sizeof(slot->org_id), "%s",
             PQgetvalue(res, row, 7));

    memset(&slot->result, 0, sizeof(webhook_result_t));
    slot->result.outcome = WEBHOOK_FAILED;
    slot->result.latency_ms = -1;
    slot->result.retry_after_s = -1;
    slot->state = WEBHOOK_SLOT_DONE;

    message.id = slot->message_id;
    message.type = slot->type;
    message.created_at = PQgetvalue(res, row, 4);
    message.data = PQgetvalue(res, row, 5);

    if (webhook_secret_open(webhook_writer.key, PQgetvalue(res, row, 9),
                            current, err)
        != 0)
    {
        return -1;
    }

    secrets[0] = current;
    nsecrets = 1;

    if (!PQgetisnull(res, row, 10)) {
        if (webhook_secret_open(webhook_writer.key, PQgetvalue(res, row, 10),
                                previous, err)
            != 0)
        {
            sodium_memzero(current, sizeof(current));
            return -1;
        }

        secrets[nsecrets++] = previous;
    }

    if (webhook_request_prepare(&slot->request, &webhook_writer.conf,
                                PQgetvalue(res, row, 8), &message, secrets,
                                nsecrets, (int64_t) time(NULL), err)
        != 0)
    {
        sodium_memzero(current, sizeof(current));
        sodium_memzero(previous, sizeof(previous));
        return -1;
    }

    sodium_memzero(current, sizeof(current));
    sodium_memzero(previous, sizeof(previous));

    curl_easy_setopt(slot->request.easy, CURLOPT_PRIVATE, (char *) slot);

    mc = curl_multi_add_handle(webhook_writer.multi, slot->request.easy);
    if (mc != CURLM_OK) {
        hhw_error_set(err, "curl_multi_add_handle() failed: %s",
                      curl_multi_strerror(mc));
        return -1;
    }

    slot->state = WEBHOOK_SLOT_SENDING;

    return 0;
}


/*
 * At shutdown: attempts in flight are stopped and recorded as interrupted,
 * so that they are due again at once instead of when their lease ends.
 */
static void
webhook_sender_stop(void)
{
    hhw_error_t  err;

    if (webhook_writer.busy == 0) {
        return;
    }

    curl_multi_perform(webhook_writer.multi, &(int) { 0 });
    webhook_sender_collect();

    if (webhook_sender_connect(&err) != 0
        || webhook_sender_record(1, &err) != 0)
    {
        hhw_log(HHW_LOG_WARN, "webhook sender: %s; the deliveries in flight "
                "are sent again when their lease ends", err.text);
        return;
    }

    hhw_log(HHW_LOG_INFO, "webhook sender stopped; the deliveries that were "
            "in flight are due again");
}


static long long
webhook_monotonic_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
