/*
 * One webhook attempt as a libcurl easy handle: the request with its
 * timeouts, the address check at connect time, the capped read of the
 * response, and what the attempt came to. The writer runs many through a
 * multi handle, the admin command one with curl_easy_perform().
 */

#ifndef WEBHOOK_HTTP_H
#define WEBHOOK_HTTP_H

#include <curl/curl.h>

#include "hhw_buf.h"
#include "hhw_log.h"
#include "webhook_conf.h"
#include "webhook_sign.h"


/* Response body bytes read; a longer body ends the transfer there. */
#define WEBHOOK_RESPONSE_READ_MAX  4096

/* Response body bytes kept with the attempt. */
#define WEBHOOK_RESPONSE_KEPT_MAX  256

#define WEBHOOK_ERROR_MAX          256


typedef enum {
    WEBHOOK_DELIVERED = 0,      /* a 2xx */
    WEBHOOK_FAILED,             /* anything else but 410 */
    WEBHOOK_GONE                /* 410 Gone */
} webhook_outcome_e;


typedef struct {
    webhook_outcome_e  outcome;
    long               http_status;     /* 0 when no response arrived */
    long               latency_ms;
    long               retry_after_s;   /* of a 429 or 503, or -1 */
    char               error[WEBHOOK_ERROR_MAX];   /* "" when delivered */
    char               response[WEBHOOK_RESPONSE_KEPT_MAX + 1];
} webhook_result_t;


typedef struct {
    const webhook_conf_t  *conf;
    CURL                  *easy;
    struct curl_slist     *headers;
    hhw_buf_t              body;

    /* Filled by the callbacks while the transfer runs. */
    char                   rejection[WEBHOOK_ERROR_MAX];
    char                   response[WEBHOOK_RESPONSE_KEPT_MAX + 1];
    size_t                 response_read;
    int                    response_capped;
    long                   retry_after_s;
    char                   curl_error[CURL_ERROR_SIZE];
} webhook_request_t;


/*
 * Prepares req to send one attempt of message to url, signed with the
 * secrets at Unix time now. The easy handle is created on first use and
 * reused afterwards. Returns 0, or -1 with err.
 */
int webhook_request_prepare(webhook_request_t *req,
    const webhook_conf_t *conf, const char *url,
    const webhook_message_t *message, const char *const *secrets,
    size_t nsecrets, int64_t now, hhw_error_t *err);

/* Turns the transfer's end, with curl's code, into a result. */
void webhook_request_result(webhook_request_t *req, CURLcode code,
    webhook_result_t *result);

/* Frees the headers and the body; keeps the easy handle for reuse. */
void webhook_request_reset(webhook_request_t *req);

void webhook_request_free(webhook_request_t *req);

/*
 * Checks an endpoint URL before it is stored: https://, or http:// when
 * HH_WEBHOOK_ALLOW_HTTP is 1, a host, and no user name or password. A host
 * that is an IP address literal gets the connect-time address check too,
 * so that an obvious mistake fails at once. Returns 0, or -1 with err.
 */
int webhook_url_check(const webhook_conf_t *conf, const char *url,
    hhw_error_t *err);

#endif /* WEBHOOK_HTTP_H */
