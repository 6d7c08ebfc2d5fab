/*
 * The body and the signature headers of one webhook attempt: the JSON
 * envelope, X-Humanhours-Signature, and the Standard Webhooks headers
 * webhook-id, webhook-timestamp and webhook-signature, all over the exact
 * bytes sent.
 */

#ifndef WEBHOOK_SIGN_H
#define WEBHOOK_SIGN_H

#include <stdint.h>
#include <curl/curl.h>

#include "hhw_buf.h"
#include "hhw_log.h"


/* Signing secrets at once: the current one and, after a rotation, the old. */
#define WEBHOOK_SIGN_SECRETS_MAX  2


/* One message, as the outbox stores it. */
typedef struct {
    const char  *id;            /* msg_..., also the webhook-id */
    const char  *type;          /* event.created and the others */
    const char  *created_at;    /* UTC with milliseconds */
    const char  *data;          /* JSON text, copied as it is */
} webhook_message_t;


/* Writes the envelope {"id","type","created_at","data"} into body. */
void webhook_envelope(hhw_buf_t *body, const webhook_message_t *message);

/*
 * Appends the signature headers for a body sent at Unix time timestamp to
 * headers:
 *
 *   X-Humanhours-Signature: t=<timestamp>,v1=<hex>[,v1=<hex>]
 *       HMAC-SHA256 of "<timestamp>.<body>", keyed with the whole secret
 *       text "whsec_...";
 *   webhook-id, webhook-timestamp, webhook-signature: v1,<base64>[ v1,...]
 *       HMAC-SHA256 of "<id>.<timestamp>.<body>", keyed with the bytes that
 *       the base64 after "whsec_" decodes to.
 *
 * One signature per secret, in the order given. Returns 0, or -1 with err
 * when a secret is malformed or memory runs out.
 */
int webhook_sign(struct curl_slist **headers, const char *id,
    int64_t timestamp, const char *body, size_t len,
    const char *const *secrets, size_t nsecrets, hhw_error_t *err);

#endif /* WEBHOOK_SIGN_H */
