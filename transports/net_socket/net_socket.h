/* Wire formats of the TCP network transport (net_socket.c). Every field is
 * in the host's byte order: the ranks of one job run on one architecture.
 * Tests include this header to speak to a listener directly. */
#ifndef PPU_NET_SOCKET_H
#define PPU_NET_SOCKET_H

#include <stddef.h>
#include <stdint.h>

#define NET_VERSION 1
#define NET_MAX_SOCKS 8
#define NET_NONCE_BYTES 16
#define NET_MAGIC_INFO 0x504e4931u  /* "PNI1": connect info, receiver -> sender */
#define NET_MAGIC_HELLO 0x504e4831u /* "PNH1": first bytes on every connection */
#define NET_MAGIC_FRAME 0x504e4631u /* "PNF1": every frame after the hello */

enum net_frame_type {
    NET_FRAME_DATA = 1, /* a message: the header, then `bytes` bytes */
    NET_FRAME_FAIL = 2, /* failure notice: the sending end's call failed */
};

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

/* Header of every frame. Data frames go sender -> receiver; a failure
 * notice may go either way (receiver -> sender on socket 0). */
struct net_frame {
    uint32_t magic;
    uint32_t type;    /* enum net_frame_type */
    uint64_t seq;     /* data: the message's index on the link */
    uint64_t bytes;   /* data: payload bytes that follow, at most slot_bytes */
    uint64_t call[2]; /* the sender's link->call (the core checks it) */
    uint64_t sum;     /* the sender's link->sum (PPU_CHECKSUM), else 0 */
};

_Static_assert(sizeof(struct net_info) <= 128, "connect info must fit PPU_CONNECT_INFO_BYTES");
_Static_assert(sizeof(struct net_hello) == 48, "hello is 48 bytes");
_Static_assert(sizeof(struct net_frame) == 48, "frame header is 48 bytes");

/* The checks of the bytes a peer sends, pure so fuzz/fuzz_net_frame.c can
 * run them on any input. Both read at most n bytes and the first 48 only;
 * out (may be NULL) gets those 48 bytes as a struct when n >= 48. A refusal
 * sets *why to a fixed reason. */

/* A connection's hello, on a listener whose link has nsocks sockets (those
 * connected already a bit each in have), nslots slots of slot_bytes and
 * nonce. Returns the socket index the hello opens (< nsocks, not in have),
 * or -1. */
int net_check_hello(const void *bytes, size_t n, const uint8_t nonce[NET_NONCE_BYTES], int nsocks,
                    uint64_t slot_bytes, uint32_t nslots, unsigned have, struct net_hello *out,
                    const char **why);

/* A frame header. take_data: this end is the receiver, which takes data
 * frames of message expect_seq with at most slot_bytes of payload; a
 * sender takes failure notices only. Returns NET_FRAME_DATA, NET_FRAME_FAIL,
 * or 0: the frame breaks the link. */
int net_check_frame(const void *bytes, size_t n, int take_data, uint64_t expect_seq,
                    uint64_t slot_bytes, struct net_frame *out, const char **why);

#endif
