/*
 * The address check that keeps webhook deliveries away from the operator's
 * own network, and the operator's allow-list of exceptions.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook_address.h"


/* A rejected IPv4 network and what kind of address it contains. */
typedef struct {
    uint32_t     network;
    unsigned     prefix_bits;
    const char  *kind;
} webhook_ipv4_range_t;


typedef struct {
    unsigned char  bytes[16];
    unsigned       prefix_bits;
    const char    *kind;
} webhook_ipv6_range_t;


/*
 * The special-purpose ranges of the IANA IPv4 registry that no public
 * endpoint uses, and the cloud metadata services, which come first so that
 * the message names them. 169.254.169.254 (AWS, GCP, Azure, OpenStack) is
 * link-local too, 100.100.100.200 (Alibaba) is in the shared range and
 * 192.0.0.192 (Oracle) in 192.0.0.0/24; 168.63.129.16 (Azure) is a public
 * address.
 */
static const webhook_ipv4_range_t  webhook_ipv4_rejected[] = {
    { 0xa9fea9fe, 32, "a cloud metadata address" },   /* 169.254.169.254 */
    { 0x646464c8, 32, "a cloud metadata address" },   /* 100.100.100.200 */
    { 0xc00000c0, 32, "a cloud metadata address" },   /* 192.0.0.192 */
    { 0xa83f8110, 32, "a cloud metadata address" },   /* 168.63.129.16 */
    { 0x00000000,  8, "an unspecified address" },     /* 0.0.0.0/8 */
    { 0x0a000000,  8, "a private address" },          /* 10.0.0.0/8 */
    { 0x64400000, 10, "a private address" },          /* 100.64.0.0/10 */
    { 0x7f000000,  8, "a loopback address" },         /* 127.0.0.0/8 */
    { 0xa9fe0000, 16, "a link-local address" },       /* 169.254.0.0/16 */
    { 0xac100000, 12, "a private address" },          /* 172.16.0.0/12 */
    { 0xc0000000, 24, "a reserved address" },         /* 192.0.0.0/24 */
    { 0xc0000200, 24, "a reserved address" },         /* 192.0.2.0/24 */
    { 0xc0586300, 24, "a reserved address" },         /* 192.88.99.0/24 */
    { 0xc0a80000, 16, "a private address" },          /* 192.168.0.0/16 */
    { 0xc6120000, 15, "a reserved address" },         /* 198.18.0.0/15 */
    { 0xc6336400, 24, "a reserved address" },         /* 198.51.100.0/24 */
    { 0xcb007100, 24, "a reserved address" },         /* 203.0.113.0/24 */
    { 0xe0000000,  4, "a multicast address" },        /* 224.0.0.0/4 */
    { 0xf0000000,  4, "a reserved address" },  /* 240.0.0.0/4, broadcast */
};


/*
 * The IPv6 ranges rejected as a whole. The ranges that embed an IPv4
 * address are handled in webhook_ipv6_embedded_ipv4() instead.
 */
static const webhook_ipv6_range_t  webhook_ipv6_rejected[] = {
    /* fd00:ec2::254, the AWS metadata service over IPv6 */
    { { 0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54 },
      128, "a cloud metadata address" },
    /* :: and ::1 */
    { { 0 }, 128, "an unspecified address" },
    { { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
      128, "a loopback address" },
    /* 100::/64, 64:ff9b:1::/48 and 2001:db8::/32 */
    { { 0x01, 0x00 }, 64, "a reserved address" },
    { { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48, "a private address" },
    { { 0x20, 0x01, 0x0d, 0xb8 }, 32, "a reserved address" },
    /* fc00::/7, fe80::/10, fec0::/10 and ff00::/8 */
    { { 0xfc }, 7, "a private address" },
    { { 0xfe, 0x80 }, 10, "a link-local address" },
    { { 0xfe, 0xc0 }, 10, "a private address" },
    { { 0xff }, 8, "a multicast address" },
};


static int webhook_allow_parse_entry(const char *entry,
    webhook_network_t *network);
static int webhook_prefix_match(const unsigned char *a,
    const unsigned char *b, unsigned bits);
static int webhook_ipv6_embedded_ipv4(const unsigned char bytes[16],
    unsigned char ipv4[4]);
static const char *webhook_ipv4_check(const unsigned char bytes[4]);
static int webhook_allowed(int family, const unsigned char *bytes,
    const webhook_allow_t *allow);


int
webhook_allow_parse(const char *text, webhook_allow_t *allow,
    hhw_error_t *err)
{
    char         entry[WEBHOOK_ADDRESS_TEXT_MAX + 8];
    size_t       len;
    const char  *p;

    allow->n = 0;

    for (p = text; *p != '\0'; p += len) {
        p += strspn(p, ", \t");
        len = strcspn(p, ", \t");

        if (len == 0) {
            break;
        }

        if (len >= sizeof(entry)) {
            hhw_error_set(err, "HH_WEBHOOK_ALLOW: \"%.*s\" is not an IP "
                          "address or a CIDR network", (int) len, p);
            return -1;
        }

        if (allow->n == WEBHOOK_ALLOW_MAX) {
            hhw_error_set(err, "HH_WEBHOOK_ALLOW has more than %d entries",
                          WEBHOOK_ALLOW_MAX);
            return -1;
        }

        memcpy(entry, p, len);
        entry[len] = '\0';

        if (webhook_allow_parse_entry(entry, &allow->networks[allow->n])
            != 0)
        {
            hhw_error_set(err, "HH_WEBHOOK_ALLOW: \"%s\" is not an IP "
                          "address or a CIDR network such as 127.0.0.1 or "
                          "fd00::/8", entry);
            return -1;
        }

        allow->n++;
    }

    return 0;
}


const char *
webhook_address_check(const struct sockaddr *addr, socklen_t len,
    const webhook_allow_t *allow)
{
    size_t                      i;
    unsigned char               ipv4[4];
    const unsigned char        *bytes;
    const struct sockaddr_in   *sin;
    const struct sockaddr_in6  *sin6;

    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        sin = (const struct sockaddr_in *) addr;
        memcpy(ipv4, &sin->sin_addr, 4);

        if (webhook_allowed(AF_INET, ipv4, allow)) {
            return NULL;
        }

        return webhook_ipv4_check(ipv4);
    }

    if (addr->sa_family != AF_INET6 || len < sizeof(struct sockaddr_in6)) {
        return "an address of another family than IPv4 and IPv6";
    }

    sin6 = (const struct sockaddr_in6 *) addr;
    bytes = sin6->sin6_addr.s6_addr;

    if (webhook_ipv6_embedded_ipv4(bytes, ipv4)) {
        if (webhook_allowed(AF_INET, ipv4, allow)
            || webhook_allowed(AF_INET6, bytes, allow))
        {
            return NULL;
        }

        return webhook_ipv4_check(ipv4);
    }

    if (webhook_allowed(AF_INET6, bytes, allow)) {
        return NULL;
    }

    for (i = 0; i < sizeof(webhook_ipv6_rejected)
                    / sizeof(webhook_ipv6_rejected[0]); i++)
    {
        if (webhook_prefix_match(bytes, webhook_ipv6_rejected[i].bytes,
                                 webhook_ipv6_rejected[i].prefix_bits))
        {
            return webhook_ipv6_rejected[i].kind;
        }
    }

    return NULL;
}


void
webhook_address_format(const struct sockaddr *addr, socklen_t len,
    char out[WEBHOOK_ADDRESS_TEXT_MAX])
{
    const void  *bytes;

    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        bytes = &((const struct sockaddr_in *) addr)->sin_addr;

    } else if (addr->sa_family == AF_INET6
               && len >= sizeof(struct sockaddr_in6))
    {
        bytes = &((const struct sockaddr_in6 *) addr)->sin6_addr;

    } else {
        bytes = NULL;
    }

    if (bytes == NULL
        || inet_ntop(addr->sa_family, bytes, out, WEBHOOK_ADDRESS_TEXT_MAX)
           == NULL)
    {
        strcpy(out, "?");
    }
}


/* Parses "ADDRESS" or "ADDRESS/BITS". Returns 0, or -1 when invalid. */
static int
webhook_allow_parse_entry(const char *entry, webhook_network_t *network)
{
    char            address[WEBHOOK_ADDRESS_TEXT_MAX + 8];
    char           *slash, *end;
    unsigned        max_bits;
    unsigned long   bits;

    memset(network, 0, sizeof(webhook_network_t));
    snprintf(address, sizeof(address), "%s", entry);

    slash = strchr(address, '/');
    if (slash != NULL) {
        *slash = '\0';
    }

    if (inet_pton(AF_INET, address, network->bytes) == 1) {
        network->family = AF_INET;
        max_bits = 32;

    } else if (inet_pton(AF_INET6, address, network->bytes) == 1) {
        network->family = AF_INET6;
        max_bits = 128;

    } else {
        return -1;
    }

    network->prefix_bits = max_bits;

    if (slash == NULL) {
        return 0;
    }

    if (!isdigit((unsigned char) slash[1])) {
        return -1;
    }

    bits = strtoul(slash + 1, &end, 10);

    if (*end != '\0' || bits > max_bits) {
        return -1;
    }

    network->prefix_bits = (unsigned) bits;

    return 0;
}


static int
webhook_prefix_match(const unsigned char *a, const unsigned char *b,
    unsigned bits)
{
    unsigned char  mask;

    if (memcmp(a, b, bits / 8) != 0) {
        return 0;
    }

    if (bits % 8 == 0) {
        return 1;
    }

    mask = (unsigned char) (0xff << (8 - bits % 8));

    return (a[bits / 8] & mask) == (b[bits / 8] & mask);
}


/*
 * Finds an IPv4 address that the IPv6 address stands for, so that its
 * IPv4 check applies: IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96
 * (deprecated, but still routed by some stacks), NAT64 64:ff9b::/96, 6to4
 * 2002::/16 and Teredo 2001::/32, whose client address is stored inverted.
 * Returns 1 and fills ipv4, or 0. :: and ::1 are left to the IPv6 table.
 */
static int
webhook_ipv6_embedded_ipv4(const unsigned char bytes[16],
    unsigned char ipv4[4])
{
    int                         i;
    static const unsigned char  zeros[12] = { 0 };
    static const unsigned char  mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
                                               0, 0, 0xff, 0xff };
    static const unsigned char  nat64[12] = { 0x00, 0x64, 0xff, 0x9b,
                                              0, 0, 0, 0, 0, 0, 0, 0 };

    if (memcmp(bytes, mapped, 12) == 0 || memcmp(bytes, nat64, 12) == 0) {
        memcpy(ipv4, bytes + 12, 4);
        return 1;
    }

    if (memcmp(bytes, zeros, 12) == 0) {
        if (bytes[12] == 0 && bytes[13] == 0 && bytes[14] == 0
            && bytes[15] <= 1)
        {
            return 0;
        }

        memcpy(ipv4, bytes + 12, 4);
        return 1;
    }

    if (bytes[0] == 0x20 && bytes[1] == 0x02) {
        memcpy(ipv4, bytes + 2, 4);
        return 1;
    }

    if (bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0
        && bytes[3] == 0)
    {
        for (i = 0; i < 4; i++) {
            ipv4[i] = (unsigned char) ~bytes[12 + i];
        }

        return 1;
    }

    return 0;
}


static const char *
webhook_ipv4_check(const unsigned char bytes[4])
{
    size_t    i;
    uint32_t  address, mask;

    address = (uint32_t) bytes[0] << 24 | (uint32_t) bytes[1] << 16
              | (uint32_t) bytes[2] << 8 | bytes[3];

    for (i = 0; i < sizeof(webhook_ipv4_rejected)
                    / sizeof(webhook_ipv4_rejected[0]); i++)
    {
        mask = 0xffffffffu << (32 - webhook_ipv4_rejected[i].prefix_bits);

        if ((address & mask) == webhook_ipv4_rejected[i].network) {
            return webhook_ipv4_rejected[i].kind;
        }
    }

    return NULL;
}


static int
webhook_allowed(int family, const unsigned char *bytes,
    const webhook_allow_t *allow)
{
    size_t                    i;
    const webhook_network_t  *network;

    for (i = 0; i < allow->n; i++) {
        network = &allow->networks[i];

        if (network->family == family
            && webhook_prefix_match(bytes, network->bytes,
                                    network->prefix_bits))
        {
            return 1;
        }
    }

    return 0;
}
