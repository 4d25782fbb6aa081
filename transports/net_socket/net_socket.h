/* Wire formats of the TCP network transport (net_socket.c). Every field is
 * in the host's byte order: the ranks of one job run on one architecture.
 * Tests include this header to speak to a listener directly. */
#ifndef PPU_NET_SOCKET_H
#define PPU_NET_SOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "../net_common/net_proto.h" /* frames, net_check_frame */

#define NET_VERSION 2 /* 2: explicit credits (net_proto.h) */
#define NET_MAX_SOCKS 8
#define NET_MAX_THREADS 4 /* progress threads per process (PPU_SOCKET_NTHREADS) */
#define NET_NONCE_BYTES 16
#define NET_MAGIC_INFO 0x504e4931u  /* "PNI1": connect info, receiver -> sender */
#define NET_MAGIC_HELLO 0x504e4831u /* "PNH1": first bytes on every connection */
/* For tests only: nonzero makes new sending ends report
 * PPU_DIRECT_REGISTERED, as net_ib's do, so that the executor's choice to
 * send from registered memory only is tested where no RDMA device is.
 * Sends from memory work either way; this changes nothing else. */
extern int net_socket_test_registered_only;

/* Connect info, in the 128 bytes the core exchanges through the bootstrap. */
struct net_info {
    uint32_t magic;
    uint16_t version;
    uint16_t family; /* AF_INET or AF_INET6 */
    uint16_t port;   /* host order */
    uint16_t nsocks; /* connections the receiver expects */
    uint32_t scope_id;
    uint8_t addr[16];
    uint8_t nonce[NET_NONCE_BYTES]; /* proves a connection comes from this link's sender */
    uint64_t slot_bytes;
    uint32_t nslots;
    uint32_t pad;
};

/* What a sender writes first on each of its connections. */
struct net_hello {
    uint32_t magic;
    uint16_t version;
    uint16_t index;  /* which of the link's sockets: it carries messages i, i + nsocks, ... */
    uint16_t nsocks;
    uint16_t pad;
    uint32_t nslots;
    uint8_t nonce[NET_NONCE_BYTES];
    uint64_t slot_bytes;
    int32_t sender_rank;
    int32_t receiver_rank;
};

_Static_assert(sizeof(struct net_info) <= 128, "connect info must fit PPU_CONNECT_INFO_BYTES");
_Static_assert(sizeof(struct net_hello) == 48, "hello is 48 bytes");

/* A connection's hello, on a listener whose link has nsocks sockets (those
 * connected already a bit each in have), nslots slots of slot_bytes and
 * nonce. Returns the socket index the hello opens (< nsocks, not in have),
 * or -1 with *why set to a fixed reason. Pure, so fuzz/fuzz_net_frame.c can
 * run it on any input (net_check_frame, in net_proto.h, checks the frames
 * after it): reads at most n bytes and the first 48 only; out (may be NULL)
 * gets those 48 bytes when n >= 48. */
int net_check_hello(const void *bytes, size_t n, const uint8_t nonce[NET_NONCE_BYTES], int nsocks,
                    uint64_t slot_bytes, uint32_t nslots, unsigned have, struct net_hello *out,
                    const char **why);

#endif
