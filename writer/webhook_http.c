/*
 * One webhook attempt as a libcurl easy handle: the request, the address
 * check at connect time, the capped read of the response, and the result.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "webhook_address.h"
#include "webhook_http.h"


#define WEBHOOK_USER_AGENT   "humanhours-webhooks/1"

/* The longest URL that an endpoint may have, as the schema allows. */
#define WEBHOOK_URL_MAX      2048


static curl_socket_t webhook_open_socket(void *data, curlsocktype purpose,
    struct curl_sockaddr *address);
static size_t webhook_on_body(char *data, size_t size, size_t n,
    void *userdata);
static size_t webhook_on_header(char *data, size_t size, size_t n,
    void *userdata);
static long webhook_parse_retry_after(const char *value, size_t len);
static void webhook_result_error(webhook_request_t *req, CURLcode code,
    webhook_result_t *result);
static int webhook_add_header(webhook_request_t *req, const char *line);


int
webhook_request_prepare(webhook_request_t *req, const webhook_conf_t *conf,
    const char *url, const webhook_message_t *message,
    const char *const *secrets, size_t nsecrets, int64_t now,
    hhw_error_t *err)
{
    CURL      *easy;
    CURLcode   rc;

    if (req->easy == NULL) {
        req->easy = curl_easy_init();
        if (req->easy == NULL) {
            hhw_error_set(err, "curl_easy_init() failed");
            return -1;
        }

    } else {
        curl_easy_reset(req->easy);
    }

    webhook_request_reset(req);

    req->conf = conf;
    req->rejection[0] = '\0';
    req->response[0] = '\0';
    req->response_read = 0;
    req->response_capped = 0;
    req->retry_after_s = -1;
    req->curl_error[0] = '\0';

    webhook_envelope(&req->body, message);

    if (req->body.failed) {
        hhw_error_set(err, "out of memory writing the body of %s",
                      message->id);
        return -1;
    }

    if (webhook_add_header(req, "Content-Type: application/json") != 0
        || webhook_add_header(req, "User-Agent: " WEBHOOK_USER_AGENT) != 0
        || webhook_add_header(req, "Expect:") != 0
        || webhook_add_header(req, "Accept:") != 0)
    {
        hhw_error_set(err, "out of memory adding headers");
        return -1;
    }

    if (webhook_sign(&req->headers, message->id, now, req->body.data,
                     req->body.len, secrets, nsecrets, err)
        != 0)
    {
        return -1;
    }

    easy = req->easy;

    /*
     * No redirects, no proxy from the environment (the address check would
     * see the proxy's address instead of the endpoint's), no signals (the
     * writer runs this in a thread of its own), and only the schemes that
     * the operator allows.
     */
    rc = curl_easy_setopt(easy, CURLOPT_URL, url);
    rc |= curl_easy_setopt(easy, CURLOPT_POST, 1L);
    rc |= curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body.data);
    rc |= curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                           (curl_off_t) req->body.len);
    rc |= curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers);
    rc |= curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(easy, CURLOPT_PROXY, "");
    rc |= curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR,
                           conf->allow_http ? "http,https" : "https");
    rc |= curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                           (long) conf->connect_timeout_ms);
    rc |= curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) conf->timeout_ms);
    rc |= curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                           webhook_open_socket);
    rc |= curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, req);
    rc |= curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, webhook_on_body);
    rc |= curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
    rc |= curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, webhook_on_header);
    rc |= curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
    rc |= curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->curl_error);
    rc |= curl_easy_setopt(easy, CURLOPT_PRIVATE, req);

    if (conf->ca_file != NULL) {
        rc |= curl_easy_setopt(easy, CURLOPT_CAINFO, conf->ca_file);
    }

    if (rc != CURLE_OK) {
        hhw_error_set(err, "setting the options of a libcurl transfer "
                      "failed; libcurl 7.85 or later is required");
        return -1;
    }

    return 0;
}


void
webhook_request_result(webhook_request_t *req, CURLcode code,
    webhook_result_t *result)
{
    long        status;
    size_t      i;
    curl_off_t  total_us;

    status = 0;
    total_us = 0;

    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &total_us);

    result->http_status = status;
    result->latency_ms = (long) (total_us / 1000);
    result->retry_after_s = -1;
    result->error[0] = '\0';

    /* Kept as printable ASCII, so that the text is safe in a list. */
    for (i = 0; req->response[i] != '\0'; i++) {
        result->response[i] = (req->response[i] >= 0x20
                               && req->response[i] < 0x7f)
                              ? req->response[i] : '.';
    }

    result->response[i] = '\0';

    /* A body over the cap ends the read, which is no failure in itself. */
    if (code == CURLE_WRITE_ERROR && req->response_capped) {
        code = CURLE_OK;
    }

    if (code != CURLE_OK) {
        result->outcome = WEBHOOK_FAILED;
        webhook_result_error(req, code, result);
        return;
    }

    if (status >= 200 && status <= 299) {
        result->outcome = WEBHOOK_DELIVERED;
        return;
    }

    if (status == 410) {
        result->outcome = WEBHOOK_GONE;
        snprintf(result->error, sizeof(result->error),
                 "HTTP 410 Gone: the endpoint is disabled");
        return;
    }

    result->outcome = WEBHOOK_FAILED;

    if (status >= 300 && status <= 399) {
        snprintf(result->error, sizeof(result->error),
                 "HTTP %ld: redirects are not followed", status);
        return;
    }

    snprintf(result->error, sizeof(result->error), "HTTP %ld", status);

    if (status == 429 || status == 503) {
        result->retry_after_s = req->retry_after_s;
    }
}


void
webhook_request_reset(webhook_request_t *req)
{
    curl_slist_free_all(req->headers);
    req->headers = NULL;
    hhw_buf_reset(&req->body);
}


void
webhook_request_free(webhook_request_t *req)
{
    webhook_request_reset(req);
    hhw_buf_free(&req->body);

    if (req->easy != NULL) {
        curl_easy_cleanup(req->easy);
        req->easy = NULL;
    }
}


int
webhook_url_check(const webhook_conf_t *conf, const char *url,
    hhw_error_t *err)
{
    int                   rc;
    char                 *scheme, *host, *user, *password, *literal;
    CURLU                *parsed;
    size_t                i, len;
    const char           *rejection;
    struct sockaddr_in    sin;
    struct sockaddr_in6   sin6;

    len = strlen(url);

    if (len > WEBHOOK_URL_MAX) {
        hhw_error_set(err, "the URL is longer than %d characters",
                      WEBHOOK_URL_MAX);
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (isspace((unsigned char) url[i]) || iscntrl((unsigned char) url[i])
            || (unsigned char) url[i] >= 0x80)
        {
            hhw_error_set(err, "the URL contains a space, a control "
                          "character or a non-ASCII byte; percent-encode "
                          "them");
            return -1;
        }
    }

    parsed = curl_url();
    if (parsed == NULL) {
        hhw_error_set(err, "out of memory parsing the URL");
        return -1;
    }

    scheme = host = user = password = NULL;
    rc = -1;

    if (curl_url_set(parsed, CURLUPART_URL, url, 0) != CURLUE_OK
        || curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || curl_url_get(parsed, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    {
        hhw_error_set(err, "\"%s\" is not an absolute URL with a host", url);
        goto done;
    }

    if (strncasecmp(url, "https://", 8) != 0
        && !(conf->allow_http && strncasecmp(url, "http://", 7) == 0))
    {
        hhw_error_set(err, "the URL must start with https://%s",
                      conf->allow_http ? " or http://"
                      : " (HH_WEBHOOK_ALLOW_HTTP=1 allows http:// for local "
                        "setups)");
        goto done;
    }

    if (curl_url_get(parsed, CURLUPART_USER, &user, 0) == CURLUE_OK
        || curl_url_get(parsed, CURLUPART_PASSWORD, &password, 0)
           == CURLUE_OK)
    {
        hhw_error_set(err, "the URL must not contain a user name or a "
                      "password");
        goto done;
    }

    /* An IPv6 literal comes back in brackets. */
    literal = host;
    len = strlen(host);

    if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
        literal = host + 1;
        host[len - 1] = '\0';
    }

    rejection = NULL;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));

    if (inet_pton(AF_INET, literal, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        rejection = webhook_address_check((struct sockaddr *) &sin,
                                          sizeof(sin), &conf->allow);

    } else if (inet_pton(AF_INET6, literal, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        rejection = webhook_address_check((struct sockaddr *) &sin6,
                                          sizeof(sin6), &conf->allow);
    }

    if (rejection != NULL) {
        hhw_error_set(err, "the URL's host %s is %s, which deliveries may "
                      "not connect to unless HH_WEBHOOK_ALLOW lists it",
                      literal, rejection);
        goto done;
    }

    rc = 0;

done:

    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(parsed);

    return rc;
}


/*
 * libcurl calls this for every connection it opens, with the address it is
 * about to connect to, after name resolution. Checking here rather than
 * the URL's host name is what stops DNS rebinding: the address checked is
 * the address connected to.
 */
static curl_socket_t
webhook_open_socket(void *data, curlsocktype purpose,
    struct curl_sockaddr *address)
{
    char                text[WEBHOOK_ADDRESS_TEXT_MAX];
    const char         *rejection;
    webhook_request_t  *req;

    req = data;

    rejection = webhook_address_check(&address->addr, address->addrlen,
                                      &req->conf->allow);

    if (rejection != NULL) {
        webhook_address_format(&address->addr, address->addrlen, text);
        snprintf(req->rejection, sizeof(req->rejection),
                 "rejected the connection to %s, which is %s; "
                 "HH_WEBHOOK_ALLOW can allow it", text, rejection);
        return CURL_SOCKET_BAD;
    }

    return socket(address->family, address->socktype | SOCK_CLOEXEC,
                  address->protocol);
}


/* Keeps the start of the body and stops reading past the cap. */
static size_t
webhook_on_body(char *data, size_t size, size_t n, void *userdata)
{
    size_t              len, kept, room;
    webhook_request_t  *req;

    req = userdata;
    len = size * n;

    kept = strlen(req->response);
    room = WEBHOOK_RESPONSE_KEPT_MAX - kept;

    if (room > 0) {
        memcpy(req->response + kept, data, len < room ? len : room);
        req->response[kept + (len < room ? len : room)] = '\0';
    }

    req->response_read += len;

    if (req->response_read > WEBHOOK_RESPONSE_READ_MAX) {
        req->response_capped = 1;
        return 0;
    }

    return len;
}


static size_t
webhook_on_header(char *data, size_t size, size_t n, void *userdata)
{
    size_t              len;
    webhook_request_t  *req;

    req = userdata;
    len = size * n;

    /* Each response starts afresh, such as a final one after a 1xx. */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        req->retry_after_s = -1;

    } else if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        req->retry_after_s = webhook_parse_retry_after(data + 12, len - 12);
    }

    return len;
}


/*
 * Parses a Retry-After value: delay seconds or an HTTP date. Returns the
 * seconds to wait from now, or -1 when the value is not valid.
 */
static long
webhook_parse_retry_after(const char *value, size_t len)
{
    char           text[128];
    char          *end;
    time_t         when, now;
    unsigned long  seconds;

    while (len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }

    while (len > 0 && isspace((unsigned char) value[len - 1])) {
        len--;
    }

    if (len == 0 || len >= sizeof(text)) {
        return -1;
    }

    memcpy(text, value, len);
    text[len] = '\0';

    if (isdigit((unsigned char) text[0])) {
        errno = 0;
        seconds = strtoul(text, &end, 10);

        if (errno != 0 || *end != '\0' || seconds > 86400L * 365) {
            return -1;
        }

        return (long) seconds;
    }

    when = curl_getdate(text, NULL);
    if (when == -1) {
        return -1;
    }

    now = time(NULL);

    return when > now ? (long) (when - now) : 0;
}


static void
webhook_result_error(webhook_request_t *req, CURLcode code,
    webhook_result_t *result)
{
    const char  *detail;

    detail = req->curl_error[0] != '\0' ? req->curl_error
                                        : curl_easy_strerror(code);

    if (code == CURLE_COULDNT_CONNECT && req->rejection[0] != '\0') {
        snprintf(result->error, sizeof(result->error), "%s", req->rejection);

    } else if (code == CURLE_UNSUPPORTED_PROTOCOL) {
        snprintf(result->error, sizeof(result->error),
                 "the URL's scheme is not allowed: deliveries use https://, "
                 "and http:// only with HH_WEBHOOK_ALLOW_HTTP=1");

    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        snprintf(result->error, sizeof(result->error), "timed out: %.200s",
                 detail);

    } else {
        snprintf(result->error, sizeof(result->error), "%s", detail);
    }
}


static int
webhook_add_header(webhook_request_t *req, const char *line)
{
    struct curl_slist  *appended;

    appended = curl_slist_append(req->headers, line);
    if (appended == NULL) {
        return -1;
    }

    req->headers = appended;

    return 0;
}
