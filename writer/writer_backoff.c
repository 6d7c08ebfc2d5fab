/*
 * Delays between retries after a Postgres or Redis failure: exponential,
 * capped, and jittered so that writers that failed together do not retry
 * together.
 */

#include <sodium.h>

#include "writer.h"


#define WRITER_BACKOFF_MIN_MS  100


/* max_ms is HH_BACKOFF_MAX_MS, which is at least WRITER_BACKOFF_MIN_MS. */
void
writer_backoff_reset(writer_backoff_t *backoff, unsigned max_ms)
{
    backoff->delay_ms = WRITER_BACKOFF_MIN_MS;
    backoff->max_ms = max_ms;
}


unsigned
writer_backoff_next(writer_backoff_t *backoff)
{
    unsigned  delay;

    delay = backoff->delay_ms;

    backoff->delay_ms *= 2;
    if (backoff->delay_ms > backoff->max_ms) {
        backoff->delay_ms = backoff->max_ms;
    }

    /* A uniform pick from the upper half of the delay. */
    return delay / 2 + randombytes_uniform(delay / 2 + 1);
}
