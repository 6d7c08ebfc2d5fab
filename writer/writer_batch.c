/*
 * Storing one batch of parsed events in Postgres: the batch is rendered as
 * one JSON array and inserted by one statement in one transaction.
 */

#include <stdlib.h>

#include "writer.h"


/* The events columns that a batch sets, in the order of the row type. */
#define WRITER_BATCH_COLUMNS                                                 \
    "event_id, org_id, key_id, test, agent_id, task_type, outcome, "         \
    "agent_duration_seconds, agent_cost_provided, model, tokens_in, "        \
    "tokens_out, baseline_minutes, baseline_source, hourly_rate, currency, " \
    "input_price, output_price, hours_saved, cost_saved, agent_cost, "       \
    "cost_source, net_saved, fingerprint, metadata, audit_sample, "          \
    "occurred_at, received_at"

/*
 * $1 is the batch as a JSON array of objects whose members are named after
 * the columns, and an absent member is NULL. Event ids already stored are
 * skipped, so a batch stored again after a lost acknowledgement changes
 * nothing. The same statement records the UTC day each API key was last
 * used. It only moves the day forward, so concurrent writers cannot set it
 * back. It returns the number of events inserted.
 */
static const char  writer_batch_sql[] =
    "WITH batch AS ("
    "  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x("
    "    event_id text, org_id bigint, key_id bigint, test boolean,"
    "    agent_id text, task_type text, outcome text,"
    "    agent_duration_seconds double precision,"
    "    agent_cost_provided double precision, model text,"
    "    tokens_in bigint, tokens_out bigint,"
    "    baseline_minutes double precision, baseline_source text,"
    "    hourly_rate double precision, currency text,"
    "    input_price double precision, output_price double precision,"
    "    hours_saved double precision, cost_saved double precision,"
    "    agent_cost double precision, cost_source text,"
    "    net_saved double precision, fingerprint text,"
    "    metadata jsonb, audit_sample jsonb,"
    "    occurred_at timestamptz, received_at timestamptz)"
    "), inserted AS ("
    "  INSERT INTO events (" WRITER_BATCH_COLUMNS ")"
    "  SELECT " WRITER_BATCH_COLUMNS " FROM batch"
    "  ON CONFLICT (event_id) DO NOTHING"
    "  RETURNING key_id, received_at"
    "), used AS ("
    "  UPDATE api_keys k SET last_used_on = u.day"
    "  FROM (SELECT key_id,"
    "               max(received_at AT TIME ZONE 'UTC')::date AS day"
    "        FROM inserted GROUP BY key_id) u"
    "  WHERE k.id = u.key_id"
    "    AND (k.last_used_on IS NULL OR k.last_used_on < u.day)"
    ") "
    "SELECT count(*) FROM inserted";


static void writer_batch_render(writer_entry_t *entries, size_t n,
    hhw_buf_t *rows);
static void writer_batch_render_row(const writer_entry_t *entry,
    hhw_buf_t *rows);
static void writer_batch_member(hhw_buf_t *rows, const char *name);


int
writer_batch_store(PGconn *pg, writer_entry_t *entries, size_t n,
    hhw_buf_t *rows, size_t *stored, hhw_error_t *err)
{
    PGresult     *res;
    const char   *params[1];
    hhw_error_t   ignored;

    writer_batch_render(entries, n, rows);

    if (rows->failed) {
        hhw_error_set(err, "out of memory rendering a batch of %zu events",
                      n);
        return -1;
    }

    if (hhw_pg_exec(pg, "BEGIN", err) != 0) {
        return -1;
    }

    params[0] = rows->data;

    res = hhw_pg_query(pg, writer_batch_sql, 1, params, err);
    if (res == NULL) {
        hhw_pg_exec(pg, "ROLLBACK", &ignored);
        return -1;
    }

    *stored = (size_t) strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);

    return hhw_pg_exec(pg, "COMMIT", err);
}


static void
writer_batch_render(writer_entry_t *entries, size_t n, hhw_buf_t *rows)
{
    size_t  i;

    hhw_buf_reset(rows);
    hhw_buf_append(rows, "[", 1);

    for (i = 0; i < n; i++) {
        if (i > 0) {
            hhw_buf_append(rows, ",", 1);
        }

        writer_batch_render_row(&entries[i], rows);
    }

    hhw_buf_append(rows, "]", 1);
}


/*
 * One row: doubles with 17 significant digits so that Postgres reads back
 * the same double, and metadata and the audit sample copied as the module
 * wrote them, because a round trip through cJSON would round their numbers.
 */
static void
writer_batch_render_row(const writer_entry_t *entry, hhw_buf_t *rows)
{
    char               time[HH_TIMESTAMP_LEN + 1];
    const char        *cost_source;
    const hh_event_t  *ev;

    ev = &entry->event;

    hhw_buf_append_str(rows, "{\"event_id\":");
    hhw_buf_append_json_string(rows, ev->event_id, HH_EVENT_ID_LEN);

    hhw_buf_printf(rows, ",\"org_id\":%lld,\"key_id\":%lld,\"test\":%s",
                   (long long) entry->org_id, (long long) entry->key_id,
                   entry->test ? "true" : "false");

    writer_batch_member(rows, "agent_id");
    hhw_buf_append_json_string(rows, ev->agent_id.data, ev->agent_id.len);
    writer_batch_member(rows, "task_type");
    hhw_buf_append_json_string(rows, ev->task_type.data, ev->task_type.len);
    writer_batch_member(rows, "outcome");
    hhw_buf_append_json_string(rows, ev->outcome.data, ev->outcome.len);

    writer_batch_member(rows, "agent_duration_seconds");
    hhw_buf_append_double(rows, ev->agent_duration_seconds);

    if (ev->has_agent_cost) {
        writer_batch_member(rows, "agent_cost_provided");
        hhw_buf_append_double(rows, ev->agent_cost);
    }

    if (ev->model.data != NULL) {
        writer_batch_member(rows, "model");
        hhw_buf_append_json_string(rows, ev->model.data, ev->model.len);
    }

    if (entry->has_tokens_in) {
        hhw_buf_printf(rows, ",\"tokens_in\":%llu",
                       (unsigned long long) ev->tokens_in);
    }

    if (entry->has_tokens_out) {
        hhw_buf_printf(rows, ",\"tokens_out\":%llu",
                       (unsigned long long) ev->tokens_out);
    }

    writer_batch_member(rows, "baseline_minutes");
    hhw_buf_append_double(rows, ev->baseline_minutes);
    writer_batch_member(rows, "baseline_source");
    hhw_buf_append_json_string(rows, ev->baseline_source.data,
                               ev->baseline_source.len);
    writer_batch_member(rows, "hourly_rate");
    hhw_buf_append_double(rows, ev->hourly_rate);
    writer_batch_member(rows, "currency");
    hhw_buf_append_json_string(rows, ev->currency.data, ev->currency.len);

    if (ev->has_prices) {
        writer_batch_member(rows, "input_price");
        hhw_buf_append_double(rows, ev->input_price);
        writer_batch_member(rows, "output_price");
        hhw_buf_append_double(rows, ev->output_price);
    }

    writer_batch_member(rows, "hours_saved");
    hhw_buf_append_double(rows, ev->hours_saved);
    writer_batch_member(rows, "cost_saved");
    hhw_buf_append_double(rows, ev->cost_saved);

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
        writer_batch_member(rows, "agent_cost");
        hhw_buf_append_double(rows, ev->resolved_agent_cost);
    }

    hhw_buf_printf(rows, ",\"cost_source\":\"%s\"", cost_source);

    writer_batch_member(rows, "net_saved");
    hhw_buf_append_double(rows, ev->net_saved);
    writer_batch_member(rows, "fingerprint");
    hhw_buf_append_json_string(rows, entry->fingerprint.data,
                               entry->fingerprint.len);

    if (entry->metadata.data != NULL) {
        writer_batch_member(rows, "metadata");
        hhw_buf_append(rows, entry->metadata.data, entry->metadata.len);
    }

    if (entry->audit_sample.data != NULL) {
        writer_batch_member(rows, "audit_sample");
        hhw_buf_append(rows, entry->audit_sample.data,
                       entry->audit_sample.len);
    }

    hh_timestamp_format(ev->occurred_at_ms, time);
    hhw_buf_printf(rows, ",\"occurred_at\":\"%s\"", time);

    hh_timestamp_format(entry->received_at_ms, time);
    hhw_buf_printf(rows, ",\"received_at\":\"%s\"}", time);
}


/* Appends the comma and the quoted name that start a member. */
static void
writer_batch_member(hhw_buf_t *rows, const char *name)
{
    hhw_buf_printf(rows, ",\"%s\":", name);
}
