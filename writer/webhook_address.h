/*
 * The address check that keeps webhook deliveries away from the operator's
 * own network: loopback, private, link-local, multicast, reserved and cloud
 * metadata addresses are rejected unless the operator's allow-list names
 * them. It runs on each address that a delivery is about to connect to.
 */

#ifndef WEBHOOK_ADDRESS_H
#define WEBHOOK_ADDRESS_H

#include <stddef.h>
#include <sys/socket.h>

#include "hhw_log.h"


#define WEBHOOK_ALLOW_MAX    32

/* An IPv6 address as text, with room for an IPv4 tail and a NUL. */
#define WEBHOOK_ADDRESS_TEXT_MAX  64


/* One allow-list entry: an address and the number of leading bits matched. */
typedef struct {
    int            family;           /* AF_INET or AF_INET6 */
    unsigned char  bytes[16];
    unsigned       prefix_bits;
} webhook_network_t;


typedef struct {
    webhook_network_t  networks[WEBHOOK_ALLOW_MAX];
    size_t             n;
} webhook_allow_t;


/*
 * Parses an allow-list: addresses or CIDR networks, IPv4 or IPv6,
 * separated by commas or spaces, as in "127.0.0.1, ::1, 10.1.0.0/16".
 * Returns 0, or -1 with err naming the entry at fault.
 */
int webhook_allow_parse(const char *text, webhook_allow_t *allow,
    hhw_error_t *err);

/*
 * Checks an address that a delivery is about to connect to. Returns NULL
 * when the connection may go ahead, or else what kind of address it is, as
 * static text such as "a loopback address". An IPv4 address inside an IPv6
 * one (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is checked as
 * IPv4. An address on the allow-list is always accepted, and an address
 * of another family than IPv4 and IPv6 never.
 */
const char *webhook_address_check(const struct sockaddr *addr,
    socklen_t len, const webhook_allow_t *allow);

/* Writes the address without its port as text, or "?" when unknown. */
void webhook_address_format(const struct sockaddr *addr, socklen_t len,
    char out[WEBHOOK_ADDRESS_TEXT_MAX]);

#endif /* WEBHOOK_ADDRESS_H */
