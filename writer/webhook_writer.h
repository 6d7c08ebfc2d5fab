/*
 * Webhooks in humanhours-writer: a sender thread that claims due
 * deliveries, sends them through libcurl's multi interface and records
 * every attempt, and the weekly digest check of the writer's loop. The
 * settings' help text is webhook_conf_print_help().
 */

#ifndef WEBHOOK_WRITER_H
#define WEBHOOK_WRITER_H

#include "hhw_log.h"
#include "webhook_conf.h"
#include "writer.h"


/*
 * Reads the webhook settings and the server key and starts the sender
 * thread, with its own Postgres connection. Without a key file at the
 * default path, deliveries stay off (with a warning) and digests are still
 * queued. The thread blocks SIGTERM, SIGINT and SIGHUP, so that they
 * reach the writer's loop. Returns 0, or -1 with err.
 */
int webhook_writer_init(writer_t *w, hhw_error_t *err);

/*
 * The writer loop's share of the webhook work: queues the weekly digest
 * through w->pg when it is due, checking once a minute. Returns 0, or -1
 * with err after a Postgres failure.
 */
int webhook_writer_step(writer_t *w, hhw_error_t *err);

/*
 * Stops the sender thread. Attempts still in flight are recorded as
 * interrupted and become due again at once, so a receiver may get them
 * twice, with the same webhook-id.
 */
void webhook_writer_free(writer_t *w);

#endif /* WEBHOOK_WRITER_H */
