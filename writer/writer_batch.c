/*
 * Storing one batch of parsed events in Postgres, in one transaction. The
 * rows are copied into a temporary staging table with COPY. Then one
 * statement inserts them into events and updates the agent registry and the
 * daily rollups from the rows it actually inserted, and two queries read
 * what the Redis hashes of the read endpoints need. Without those queries,
 * COPY and the insert took about 14 ms for a batch of 500, against 16 ms
 * for one INSERT reading the batch as JSON with json_to_recordset() and
 * 18 ms with jsonb_to_recordset() (auto/bench-writer on 2 cores, in
 * docs/benchmarks.md).
 */

#include <stdlib.h>
#include <string.h>

#include "writer.h"


/* The events columns that a batch sets, in the order of the COPY rows. */
#define WRITER_BATCH_COLUMNS                                                 \
    "event_id, org_id, key_id, test, agent_id, task_type, outcome, "         \
    "agent_duration_seconds, agent_cost_provided, model, tokens_in, "        \
    "tokens_out, baseline_minutes, baseline_source, hourly_rate, currency, " \
    "input_price, output_price, hours_saved, cost_saved, agent_cost, "       \
    "cost_source, net_saved, fingerprint, metadata, audit_sample, "          \
    "occurred_at, received_at"

#define WRITER_BATCH_TYPES                                                   \
    "event_id text COLLATE \"C\", org_id bigint, key_id bigint, test boolean,"             \
    " agent_id text, task_type text, outcome text,"                          \
    " agent_duration_seconds double precision,"                              \
    " agent_cost_provided double precision, model text,"                     \
    " tokens_in bigint, tokens_out bigint,"                                  \
    " baseline_minutes double precision, baseline_source text,"              \
    " hourly_rate double precision, currency text,"                          \
    " input_price double precision, output_price double precision,"          \
    " hours_saved double precision, cost_saved double precision,"            \
    " agent_cost double precision, cost_source text,"                        \
    " net_saved double precision, fingerprint text,"                         \
    " metadata jsonb, audit_sample jsonb,"                                   \
    " occurred_at timestamptz, received_at timestamptz"

#define WRITER_BATCH_COPY_CHUNK  (1024 * 1024)


/*
 * The staging table lives as long as the session, and ON COMMIT DELETE
 * ROWS empties it at the end of each transaction that used it. Its columns
 * have the types of events, so COPY already rejects a malformed value.
 */
static const char  writer_batch_staging_sql[] =
    "CREATE TEMPORARY TABLE IF NOT EXISTS writer_batch ("
    WRITER_BATCH_TYPES ") ON COMMIT DELETE ROWS";

static const char  writer_batch_copy_sql[] =
    "COPY writer_batch (" WRITER_BATCH_COLUMNS ") FROM STDIN";


/*
 * Event ids already stored are skipped, so a batch stored again after a
 * lost acknowledgement changes nothing. Everything else is computed from
 * the RETURNING rows of the insert. That is one row per agent id and one
 * per fingerprint with first and last receipt time, the daily rollups, and
 * the UTC day each API key was last used. That day only moves forward, so
 * that concurrent writers cannot set it back. Every INSERT ... SELECT is sorted
 * by its conflict key, so that concurrent writers lock shared rows in the
 * same order and do not deadlock. The statement returns the number of
 * events inserted.
 *
 * Webhook deliveries are not queued here: a statement-level trigger on
 * events queues them from the rows that this insert actually inserted, in
 * the same transaction.
 */
static const char  writer_batch_insert_sql[] =
    "WITH inserted AS ("
    "  INSERT INTO events (" WRITER_BATCH_COLUMNS ")"
    "  SELECT " WRITER_BATCH_COLUMNS " FROM writer_batch"
    "  ORDER BY event_id"
    "  ON CONFLICT (event_id) DO NOTHING"
    "  RETURNING org_id, key_id, test, agent_id, task_type, model,"
    "            fingerprint, currency, hours_saved, cost_saved, agent_cost,"
    "            net_saved, occurred_at, received_at"
    "), agent_rows AS ("
    "  INSERT INTO agents AS a"
    "    (org_id, agent_id, first_seen, last_seen, events)"
    "  SELECT org_id, agent_id, min(received_at), max(received_at), count(*)"
    "  FROM inserted GROUP BY org_id, agent_id ORDER BY org_id, agent_id"
    "  ON CONFLICT (org_id, agent_id) DO UPDATE SET"
    "    first_seen = least(a.first_seen, excluded.first_seen),"
    "    last_seen = greatest(a.last_seen, excluded.last_seen),"
    "    events = a.events + excluded.events"
    "), automation_rows AS ("
    "  INSERT INTO automations AS m"
    "    (org_id, fingerprint, agent_id, task_type, model, key_id,"
    "     first_seen, last_seen, events)"
    "  SELECT org_id, fingerprint, min(agent_id), min(task_type), min(model),"
    "         min(key_id), min(received_at), max(received_at), count(*)"
    "  FROM inserted GROUP BY org_id, fingerprint"
    "  ORDER BY org_id, fingerprint"
    "  ON CONFLICT (org_id, fingerprint) DO UPDATE SET"
    "    first_seen = least(m.first_seen, excluded.first_seen),"
    "    last_seen = greatest(m.last_seen, excluded.last_seen),"
    "    events = m.events + excluded.events"
    "), rollup_rows AS ("
    "  INSERT INTO daily_rollups AS r"
    "    (org_id, day, agent_id, task_type, test, currency, events,"
    "     hours_saved, cost_saved, agent_cost, net_saved)"
    "  SELECT org_id, (occurred_at AT TIME ZONE 'UTC')::date, agent_id,"
    "         task_type, test, currency, count(*), sum(hours_saved),"
    "         sum(cost_saved), coalesce(sum(agent_cost), 0), sum(net_saved)"
    "  FROM inserted GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6"
    "  ON CONFLICT (org_id, day, agent_id, task_type, test, currency)"
    "  DO UPDATE SET"
    "    events = r.events + excluded.events,"
    "    hours_saved = r.hours_saved + excluded.hours_saved,"
    "    cost_saved = r.cost_saved + excluded.cost_saved,"
    "    agent_cost = r.agent_cost + excluded.agent_cost,"
    "    net_saved = r.net_saved + excluded.net_saved"
    "), used AS ("
    "  UPDATE api_keys k SET last_used_on = u.day"
    "  FROM (SELECT key_id,"
    "               max(received_at AT TIME ZONE 'UTC')::date AS day"
    "        FROM inserted GROUP BY key_id) u"
    "  WHERE k.id = u.key_id"
    "    AND (k.last_used_on IS NULL OR k.last_used_on < u.day)"
    ") "
    "SELECT count(*) FROM inserted";


/*
 * What the read endpoints need of the batch's organisations, for
 * writer_views_queue(), read in the same transaction after the insert and
 * so including it. The rows of events stored before are read again, which
 * changes nothing, because Redis keeps the earliest time and the largest
 * count. Test-key events are left out, as the read endpoints count live
 * events only.
 *
 * First: the time each live agent id's first event was stored.
 */
static const char  writer_batch_agents_sql[] =
    "SELECT b.org_id, b.agent_id,"
    "       to_char(min(e.stored_at) AT TIME ZONE 'UTC',"
    "               'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    " FROM writer_batch b JOIN events e USING (event_id)"
    " WHERE NOT b.test"
    " GROUP BY b.org_id, b.agent_id ORDER BY b.org_id";

/*
 * Second: the live rollups of each organisation, day and agent id that the
 * batch touched, summed over currencies. Only the 30 days that the read
 * endpoints show and a margin are read; expire is the end of the 32nd day.
 */
static const char  writer_batch_days_sql[] =
    "SELECT r.org_id, to_char(r.day, 'YYYY-MM-DD'),"
    "       extract(epoch FROM r.day + 32)::bigint, r.agent_id,"
    "       sum(r.events) || ' ' || sum(r.hours_saved) || ' '"
    "       || sum(r.cost_saved)"
    " FROM daily_rollups r"
    " JOIN (SELECT DISTINCT org_id, (occurred_at AT TIME ZONE 'UTC')::date"
    "              AS day, agent_id"
    "       FROM writer_batch WHERE NOT test) b"
    "   USING (org_id, day, agent_id)"
    " WHERE NOT r.test AND r.day >= (now() AT TIME ZONE 'UTC')::date - 31"
    " GROUP BY r.org_id, r.day, r.agent_id ORDER BY r.org_id, r.day";


static int writer_batch_copy(PGconn *pg, const hhw_buf_t *rows,
    hhw_error_t *err);
static void writer_batch_render(writer_item_t **items, size_t n,
    hhw_buf_t *rows);
static void writer_batch_render_row(const writer_entry_t *entry,
    hhw_buf_t *rows);
static void writer_batch_text(hhw_buf_t *rows, const char *data,
    size_t len);


int
writer_batch_prepare(PGconn *pg, hhw_error_t *err)
{
    return hhw_pg_exec(pg, writer_batch_staging_sql, err);
}


int
writer_batch_store(PGconn *pg, writer_item_t **items, size_t n,
    hhw_buf_t *rows, size_t *inserted, PGresult **agents, PGresult **days,
    hhw_error_t *err)
{
    PGresult     *res;
    hhw_error_t   ignored;

    *agents = NULL;
    *days = NULL;

    writer_batch_render(items, n, rows);

    if (rows->failed) {
        hhw_error_set(err, "out of memory rendering a batch of %zu events",
                      n);
        return -1;
    }

    if (hhw_pg_exec(pg, "BEGIN", err) != 0) {
        return -1;
    }

    res = NULL;

    if (writer_batch_copy(pg, rows, err) == 0) {
        res = hhw_pg_query(pg, writer_batch_insert_sql, 0, NULL, err);
    }

    if (res == NULL) {
        hhw_pg_exec(pg, "ROLLBACK", &ignored);
        return -1;
    }

    *inserted = (size_t) strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);

    *agents = hhw_pg_query(pg, writer_batch_agents_sql, 0, NULL, err);

    if (*agents != NULL) {
        *days = hhw_pg_query(pg, writer_batch_days_sql, 0, NULL, err);
    }

    if (*days == NULL) {
        hhw_pg_exec(pg, "ROLLBACK", &ignored);
        goto failed;
    }

    if (hhw_pg_exec(pg, "COMMIT", err) != 0) {
        goto failed;
    }

    return 0;

failed:

    PQclear(*agents);
    PQclear(*days);
    *agents = NULL;
    *days = NULL;

    return -1;
}


/* Sends the rendered rows through COPY ... FROM STDIN. */
static int
writer_batch_copy(PGconn *pg, const hhw_buf_t *rows, hhw_error_t *err)
{
    int        rc;
    size_t     sent, chunk;
    PGresult  *res;

    res = PQexec(pg, writer_batch_copy_sql);

    if (PQresultStatus(res) != PGRES_COPY_IN) {
        hhw_pg_result_error(pg, res, err);
        PQclear(res);
        return -1;
    }

    PQclear(res);

    /* PQputCopyData() takes an int length, so big batches go in chunks. */
    for (sent = 0; sent < rows->len; sent += chunk) {
        chunk = rows->len - sent;

        if (chunk > WRITER_BATCH_COPY_CHUNK) {
            chunk = WRITER_BATCH_COPY_CHUNK;
        }

        if (PQputCopyData(pg, rows->data + sent, (int) chunk) != 1) {
            hhw_pg_result_error(pg, NULL, err);
            return -1;
        }
    }

    if (PQputCopyEnd(pg, NULL) != 1) {
        hhw_pg_result_error(pg, NULL, err);
        return -1;
    }

    /* COPY has one result, and NULL follows it. */
    res = PQgetResult(pg);
    rc = 0;

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        hhw_pg_result_error(pg, res, err);
        rc = -1;
    }

    PQclear(res);

    while ((res = PQgetResult(pg)) != NULL) {
        PQclear(res);
    }

    return rc;
}


static void
writer_batch_render(writer_item_t **items, size_t n, hhw_buf_t *rows)
{
    size_t  i;

    hhw_buf_reset(rows);

    for (i = 0; i < n; i++) {
        writer_batch_render_row(&items[i]->entry, rows);
    }
}


/*
 * One row of COPY's text format: tab-separated columns in the order of
 * WRITER_BATCH_COLUMNS, \N for NULL, and a newline. Doubles have 17
 * significant digits, so that Postgres reads back the same double.
 * Metadata and the audit sample are copied as the module wrote them,
 * because a round trip through cJSON would round their numbers.
 */
static void
writer_batch_render_row(const writer_entry_t *entry, hhw_buf_t *rows)
{
    char               time[HH_TIMESTAMP_LEN + 1];
    const char        *cost_source;
    const hh_event_t  *ev;

    ev = &entry->event;

    writer_batch_text(rows, ev->event_id, HH_EVENT_ID_LEN);
    hhw_buf_printf(rows, "\t%lld\t%lld\t%s\t", (long long) entry->org_id,
                   (long long) entry->key_id, entry->test ? "t" : "f");

    writer_batch_text(rows, ev->agent_id.data, ev->agent_id.len);
    hhw_buf_append(rows, "\t", 1);
    writer_batch_text(rows, ev->task_type.data, ev->task_type.len);
    hhw_buf_append(rows, "\t", 1);
    writer_batch_text(rows, ev->outcome.data, ev->outcome.len);
    hhw_buf_append(rows, "\t", 1);

    hhw_buf_append_double(rows, ev->agent_duration_seconds);
    hhw_buf_append(rows, "\t", 1);

    if (ev->has_agent_cost) {
        hhw_buf_append_double(rows, ev->agent_cost);

    } else {
        hhw_buf_append(rows, "\\N", 2);
    }

    hhw_buf_append(rows, "\t", 1);

    if (ev->model.data != NULL) {
        writer_batch_text(rows, ev->model.data, ev->model.len);

    } else {
        hhw_buf_append(rows, "\\N", 2);
    }

    if (entry->has_tokens_in) {
        hhw_buf_printf(rows, "\t%llu", (unsigned long long) ev->tokens_in);

    } else {
        hhw_buf_append(rows, "\t\\N", 3);
    }

    if (entry->has_tokens_out) {
        hhw_buf_printf(rows, "\t%llu\t", (unsigned long long) ev->tokens_out);

    } else {
        hhw_buf_append(rows, "\t\\N\t", 4);
    }

    hhw_buf_append_double(rows, ev->baseline_minutes);
    hhw_buf_append(rows, "\t", 1);
    writer_batch_text(rows, ev->baseline_source.data,
                      ev->baseline_source.len);
    hhw_buf_append(rows, "\t", 1);
    hhw_buf_append_double(rows, ev->hourly_rate);
    hhw_buf_append(rows, "\t", 1);
    writer_batch_text(rows, ev->currency.data, ev->currency.len);
    hhw_buf_append(rows, "\t", 1);

    if (ev->has_prices) {
        hhw_buf_append_double(rows, ev->input_price);
        hhw_buf_append(rows, "\t", 1);
        hhw_buf_append_double(rows, ev->output_price);

    } else {
        hhw_buf_append(rows, "\\N\t\\N", 5);
    }

    hhw_buf_append(rows, "\t", 1);
    hhw_buf_append_double(rows, ev->hours_saved);
    hhw_buf_append(rows, "\t", 1);
    hhw_buf_append_double(rows, ev->cost_saved);
    hhw_buf_append(rows, "\t", 1);

    switch (ev->cost_source) {
    case HH_COST_PROVIDED:
        cost_source = "provided";
        break;
    case HH_COST_COMPUTED:
        cost_source = "computed";
        break;
    default:
        cost_source = "none";
    }

    if (ev->cost_source != HH_COST_NONE) {
        hhw_buf_append_double(rows, ev->resolved_agent_cost);

    } else {
        hhw_buf_append(rows, "\\N", 2);
    }

    hhw_buf_printf(rows, "\t%s\t", cost_source);
    hhw_buf_append_double(rows, ev->net_saved);
    hhw_buf_append(rows, "\t", 1);
    writer_batch_text(rows, entry->fingerprint.data, entry->fingerprint.len);
    hhw_buf_append(rows, "\t", 1);

    if (entry->metadata.data != NULL) {
        writer_batch_text(rows, entry->metadata.data, entry->metadata.len);

    } else {
        hhw_buf_append(rows, "\\N", 2);
    }

    hhw_buf_append(rows, "\t", 1);

    if (entry->audit_sample.data != NULL) {
        writer_batch_text(rows, entry->audit_sample.data,
                          entry->audit_sample.len);

    } else {
        hhw_buf_append(rows, "\\N", 2);
    }

    hh_timestamp_format(ev->occurred_at_ms, time);
    hhw_buf_printf(rows, "\t%s", time);

    hh_timestamp_format(entry->received_at_ms, time);
    hhw_buf_printf(rows, "\t%s\n", time);
}


/*
 * Appends a text column. COPY reads a backslash as the start of an escape
 * and a tab, newline or carriage return as the end of a column or row, so
 * those four are escaped.
 */
static void
writer_batch_text(hhw_buf_t *rows, const char *data, size_t len)
{
    size_t       i, start;
    const char  *escape;

    start = 0;

    for (i = 0; i < len; i++) {
        switch (data[i]) {
        case '\\':
            escape = "\\\\";
            break;
        case '\t':
            escape = "\\t";
            break;
        case '\n':
            escape = "\\n";
            break;
        case '\r':
            escape = "\\r";
            break;
        default:
            continue;
        }

        hhw_buf_append(rows, data + start, i - start);
        hhw_buf_append(rows, escape, 2);
        start = i + 1;
    }

    hhw_buf_append(rows, data + start, len - start);
}

