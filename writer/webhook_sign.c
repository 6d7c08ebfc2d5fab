/*
 * The body and the signature headers of one webhook attempt.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "webhook_secret.h"
#include "webhook_sign.h"


/* "X-Humanhours-Signature: t=", 20 digits, and ",v1=" with 64 hex digits
 * per secret. */
#define WEBHOOK_HUMANHOURS_HEADER_MAX                                        \
    (64 + WEBHOOK_SIGN_SECRETS_MAX * (4 + 2 * crypto_auth_hmacsha256_BYTES))

/* "webhook-signature: " and "v1," with 44 base64 digits per secret. */
#define WEBHOOK_STANDARD_HEADER_MAX                                          \
    (64 + WEBHOOK_SIGN_SECRETS_MAX * (4 + 48))


static void webhook_hmac(const unsigned char *key, size_t key_len,
    const char *const *parts, const size_t *lens, size_t nparts,
    unsigned char mac[crypto_auth_hmacsha256_BYTES]);
static int webhook_append_header(struct curl_slist **headers,
    const char *line);


void
webhook_envelope(hhw_buf_t *body, const webhook_message_t *message)
{
    hhw_buf_reset(body);

    hhw_buf_append_str(body, "{\"id\":");
    hhw_buf_append_json_string(body, message->id, strlen(message->id));
    hhw_buf_append_str(body, ",\"type\":");
    hhw_buf_append_json_string(body, message->type, strlen(message->type));
    hhw_buf_append_str(body, ",\"created_at\":");
    hhw_buf_append_json_string(body, message->created_at,
                               strlen(message->created_at));
    hhw_buf_append_str(body, ",\"data\":");
    hhw_buf_append_str(body, message->data);
    hhw_buf_append_str(body, "}");
}


int
webhook_sign(struct curl_slist **headers, const char *id, int64_t timestamp,
    const char *body, size_t len, const char *const *secrets,
    size_t nsecrets, hhw_error_t *err)
{
    int            key_len;
    char           time_text[24], line[WEBHOOK_HUMANHOURS_HEADER_MAX];
    char           standard[WEBHOOK_STANDARD_HEADER_MAX];
    char           hex[2 * crypto_auth_hmacsha256_BYTES + 1];
    char           base64[48];
    size_t         i, lens[5], used, standard_used;
    const char    *parts[5];
    unsigned char  mac[crypto_auth_hmacsha256_BYTES];
    unsigned char  key[WEBHOOK_SECRET_KEY_MAX];

    if (nsecrets == 0 || nsecrets > WEBHOOK_SIGN_SECRETS_MAX) {
        hhw_error_set(err, "%zu signing secrets; 1 or %d are expected",
                      nsecrets, WEBHOOK_SIGN_SECRETS_MAX);
        return -1;
    }

    snprintf(time_text, sizeof(time_text), "%" PRId64, timestamp);

    used = (size_t) snprintf(line, sizeof(line),
                             "X-Humanhours-Signature: t=%s", time_text);
    standard_used = (size_t) snprintf(standard, sizeof(standard),
                                      "webhook-signature:");

    for (i = 0; i < nsecrets; i++) {
        parts[0] = time_text;
        parts[1] = ".";
        parts[2] = body;
        lens[0] = strlen(time_text);
        lens[1] = 1;
        lens[2] = len;

        webhook_hmac((const unsigned char *) secrets[i], strlen(secrets[i]),
                     parts, lens, 3, mac);
        sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));

        used += (size_t) snprintf(line + used, sizeof(line) - used, ",v1=%s",
                                  hex);

        key_len = webhook_secret_standard_key(secrets[i], key);
        if (key_len <= 0) {
            hhw_error_set(err, "a signing secret is not \"whsec_\" and "
                          "base64");
            return -1;
        }

        parts[0] = id;
        parts[1] = ".";
        parts[2] = time_text;
        parts[3] = ".";
        parts[4] = body;
        lens[0] = strlen(id);
        lens[1] = 1;
        lens[2] = strlen(time_text);
        lens[3] = 1;
        lens[4] = len;

        webhook_hmac(key, (size_t) key_len, parts, lens, 5, mac);
        sodium_memzero(key, sizeof(key));
        sodium_bin2base64(base64, sizeof(base64), mac, sizeof(mac),
                          sodium_base64_VARIANT_ORIGINAL);

        standard_used += (size_t) snprintf(standard + standard_used,
                                           sizeof(standard) - standard_used,
                                           " v1,%s", base64);
    }

    sodium_memzero(mac, sizeof(mac));

    if (webhook_append_header(headers, line) != 0
        || webhook_append_header(headers, standard) != 0)
    {
        goto nomem;
    }

    snprintf(line, sizeof(line), "webhook-id: %s", id);

    if (webhook_append_header(headers, line) != 0) {
        goto nomem;
    }

    snprintf(line, sizeof(line), "webhook-timestamp: %s", time_text);

    if (webhook_append_header(headers, line) != 0) {
        goto nomem;
    }

    return 0;

nomem:

    hhw_error_set(err, "out of memory adding the signature headers");
    return -1;
}


static void
webhook_hmac(const unsigned char *key, size_t key_len,
    const char *const *parts, const size_t *lens, size_t nparts,
    unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
    size_t                          i;
    crypto_auth_hmacsha256_state    state;

    crypto_auth_hmacsha256_init(&state, key, key_len);

    for (i = 0; i < nparts; i++) {
        crypto_auth_hmacsha256_update(&state,
                                      (const unsigned char *) parts[i],
                                      lens[i]);
    }

    crypto_auth_hmacsha256_final(&state, mac);
    sodium_memzero(&state, sizeof(state));
}


/* curl_slist_append() copies the line and returns NULL when memory ran out. */
static int
webhook_append_header(struct curl_slist **headers, const char *line)
{
    struct curl_slist  *appended;

    appended = curl_slist_append(*headers, line);
    if (appended == NULL) {
        return -1;
    }

    *headers = appended;

    return 0;
}
