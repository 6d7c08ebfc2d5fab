/*
 * One event: its identifiers, the arithmetic that turns a baseline and an
 * hourly rate into time and money saved, and its JSON renderings. The module
 * uses it to respond to a track request, the writer to store the same values.
 */

#ifndef HH_EVENT_H
#define HH_EVENT_H

#include <stddef.h>
#include <stdint.h>


#define HH_EVENT_ID_LEN      30    /* "evt_" and a 26-character ULID */
#define HH_FINGERPRINT_LEN   32    /* hex of a 16-byte BLAKE2b digest */
#define HH_TIMESTAMP_LEN     24    /* 2026-05-06T10:42:00.000Z */


typedef enum {
    HH_COST_NONE = 0,
    HH_COST_PROVIDED,
    HH_COST_COMPUTED
} hh_cost_source_e;


/* A string that need not be NUL-terminated; data NULL means absent. */
typedef struct {
    const char  *data;
    size_t       len;
} hh_str_t;


typedef struct {
    char              event_id[HH_EVENT_ID_LEN + 1];
    hh_str_t          agent_id;
    hh_str_t          task_type;
    hh_str_t          outcome;
    hh_str_t          model;

    double            agent_duration_seconds;

    /* the request's agent_cost, when has_agent_cost is set */
    int               has_agent_cost;
    double            agent_cost;

    int               has_tokens;         /* both token counts present */
    uint64_t          tokens_in;
    uint64_t          tokens_out;

    int64_t           occurred_at_ms;     /* Unix time in milliseconds */

    /* resolved by the track script */
    double            baseline_minutes;
    /* request, override, builtin or custom */
    hh_str_t          baseline_source;
    double            hourly_rate;
    hh_str_t          currency;
    int               has_prices;
    double            input_price;        /* per million tokens */
    double            output_price;

    /* filled by hh_event_compute() */
    double            hours_saved;
    double            cost_saved;
    hh_cost_source_e  cost_source;
    double            resolved_agent_cost; /* valid unless HH_COST_NONE */
    double            net_saved;
} hh_event_t;


/* Writes "evt_" and a ULID for the given Unix time in milliseconds. */
void hh_event_id_generate(int64_t now_ms, char out[HH_EVENT_ID_LEN + 1]);

/*
 * Writes the hex fingerprint of agent id, task type, model and key id. Each
 * field is length-prefixed, so no two field lists share a fingerprint.
 */
void hh_fingerprint(hh_str_t agent_id, hh_str_t task_type, hh_str_t model,
    hh_str_t key_id, char out[HH_FINGERPRINT_LEN + 1]);

/* Fills the derived fields from the inputs and the resolved values. */
void hh_event_compute(hh_event_t *ev);

/*
 * Renders the track response (README, "The API") into buf. Returns the
 * length it needs, which may exceed size, as snprintf does; the caller
 * sizes buf with hh_event_response_max(). The text is NUL-terminated when
 * size is above 0. Absent strings and non-finite numbers render as null.
 */
size_t hh_event_render_response(const hh_event_t *ev, char *buf, size_t size);

/* Returns a buffer size that fits the rendered response and its NUL. */
size_t hh_event_response_max(const hh_event_t *ev);

/*
 * Formats Unix milliseconds as UTC "YYYY-MM-DDTHH:MM:SS.mmmZ" and a NUL.
 * Times before year 0000 or after year 9999 are clamped to those years.
 */
void hh_timestamp_format(int64_t ms, char out[HH_TIMESTAMP_LEN + 1]);

/*
 * Parses an RFC 3339 timestamp such as "2026-05-06T10:42:00Z" into Unix
 * milliseconds, truncating below the millisecond. Fractions and a numeric
 * offset are optional, and "t", "z" and a space for "T" are accepted.
 * Returns 0, or -1 when the text is not a valid timestamp.
 */
int hh_timestamp_parse(const char *text, size_t len, int64_t *ms);

#endif /* HH_EVENT_H */
