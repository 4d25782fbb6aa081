/* Wire formats of the RDMA network transport (net_ib.c), and its pure
 * checks, which build and are tested on every machine (tests/test_net_ib.c,
 * fuzz/fuzz_net_frame.c) whether or not it has an RDMA device. Every field
 * is in the host's byte order except the immediate data, which verbs
 * carries in network order. */
#ifndef PPU_NET_IB_H
#define PPU_NET_IB_H

#include <stddef.h>
#include <stdint.h>

#include "../net_common/net_proto.h"

#define NET_IB_VERSION 1
#define NET_IB_NONCE_BYTES 16
#define NET_IB_MAGIC_INFO 0x50494931u /* "PII1": connect info, receiver -> sender */
#define NET_IB_MAGIC_REQ 0x50495231u  /* "PIR1": connection request private data */
#define NET_IB_HDR 64                 /* bytes before each slot's payload: the frame header */
#define NET_IB_EXTRA_RECVS 16         /* receives posted beyond the window (credits, notices) */

/* Connect info, in the 128 bytes the core exchanges through the bootstrap:
 * where the receiver listens (rdmacm) and where the sender writes. */
struct net_ib_info {
    uint32_t magic;
    uint16_t version;
    uint16_t family; /* AF_INET or AF_INET6 */
    uint16_t port;   /* host order */
    uint16_t pad;
    uint32_t scope_id;
    uint8_t addr[16];
    uint8_t nonce[NET_IB_NONCE_BYTES]; /* proves a connection request comes from the sender */
    uint64_t slot_bytes;
    uint32_t nslots;
    uint32_t slots_rkey;
    uint64_t slots_addr; /* slot k at slots_addr + k * stride: header, then payload */
    uint64_t stride;
    uint64_t ctl_addr; /* struct net_ib_ctl: where the sender writes a failure notice */
    uint32_t ctl_rkey;
    uint32_t pad2;
};

/* Private data of the sender's connection request (at most 56 bytes on an
 * RC connection): the nonce, and where the receiver writes credits and
 * failure notices back. */
struct net_ib_req {
    uint32_t magic;
    uint16_t version;
    uint16_t pad;
    uint8_t nonce[NET_IB_NONCE_BYTES];
    uint64_t ctl_addr;
    uint32_t ctl_rkey;
    int32_t sender_rank;
};

/* What the other end writes into this end's memory (RDMA write with
 * immediate, so the write also wakes this end's completion queue). */
struct net_ib_ctl {
    _Atomic uint64_t credit; /* sender's: the receiver's release count (the sender
                              * takes it from the immediate; this is for debugging) */
    _Atomic uint64_t failed; /* nonzero: the other end's call failed */
    uint64_t src[16];        /* this end's own outgoing control values (a ring) */
};

_Static_assert(sizeof(struct net_ib_info) <= 128, "connect info must fit PPU_CONNECT_INFO_BYTES");
_Static_assert(sizeof(struct net_ib_req) <= 56, "RC private data holds 56 bytes");
_Static_assert(sizeof(struct net_frame) <= NET_IB_HDR, "the frame header fits a slot's head");

/* Immediate data: the top two bits say what a write carries, the low 30
 * bits of a data write are the low bits of its message index (writes on
 * one queue pair arrive in order, so the receiver knows the rest). */
enum net_ib_imm_kind { NET_IB_IMM_DATA = 0, NET_IB_IMM_CREDIT = 1, NET_IB_IMM_FAIL = 2 };
#define NET_IB_IMM_MASK 0x3fffffffu

static inline uint32_t net_ib_imm(enum net_ib_imm_kind kind, uint64_t seq)
{
    return (uint32_t)kind << 30 | ((uint32_t)seq & NET_IB_IMM_MASK);
}

/* The immediate data of a write that arrived (host order), at an end that
 * expects message expect_seq next (receiver) or takes no data (sender).
 * Returns its kind, or -1 with *why set: the write breaks the link. */
int net_ib_check_imm(uint32_t imm, int take_data, uint64_t expect_seq, const char **why);

/* A connection request's private data (n bytes) against this link's nonce.
 * 0 when it is this link's sender's (out gets it), else -1 with *why. */
int net_ib_check_req(const void *bytes, size_t n, const uint8_t nonce[NET_IB_NONCE_BYTES],
                     struct net_ib_req *out, const char **why);

/* Connect info from the bootstrap: 0 when it is well formed and its shape
 * is this link's, else -1 with *why. */
int net_ib_check_info(const void *bytes, size_t n, uint64_t slot_bytes, uint32_t nslots,
                      struct net_ib_info *out, const char **why);

/* Connection management as a state machine: events in, actions out (pure,
 * so the order that brings a link up is a tested fact, not a device's).
 * librdmacm sends the active side's RTU only when that side's application
 * reads CONNECT_RESPONSE, and the active side reads its events only after
 * the core's next message from the passive side: so the passive side must
 * not wait for ESTABLISHED. It counts the link up once rdma_accept
 * succeeded (its queue pair is in RTS, receives posted); an ESTABLISHED
 * that comes later is ignored. The active side is up at CONNECT_RESPONSE
 * or ESTABLISHED. Rejected, unreachable or failed connections end the link
 * with the peer named, during setup and after it; a device removal ends it
 * and releases what it holds of the device. */
enum net_ib_cm_ev {
    NET_IB_EV_CONNECT_REQUEST,
    NET_IB_EV_CONNECT_RESPONSE,
    NET_IB_EV_ESTABLISHED,
    NET_IB_EV_REJECTED,
    NET_IB_EV_UNREACHABLE,
    NET_IB_EV_CONNECT_ERROR,
    NET_IB_EV_DISCONNECTED,
    NET_IB_EV_DEVICE_REMOVAL,
    NET_IB_EV_OTHER,
};
enum net_ib_cm_act {
    NET_IB_ACT_NONE,   /* nothing to do; keep reading */
    NET_IB_ACT_ACCEPT, /* check the request, make the queue pair, rdma_accept; report
                        * the outcome with net_ib_cm_accepted */
    NET_IB_ACT_REJECT, /* a request the link does not take (it has its sender) */
    NET_IB_ACT_UP,     /* the link is up */
    NET_IB_ACT_FAIL,   /* the link ends: name the peer and the event */
    NET_IB_ACT_RELEASE, /* the device is being removed: the link ends, and releases its
                         * queue pair, memory, protection domain and cm id now (not at
                         * close), or the kernel cannot remove the device */
};
struct net_ib_cm {
    int active; /* this end called rdma_connect */
    int accepting, up, failed;
    int iwarp; /* the device connects over iWARP (its transport type, probed) */
    int heard; /* a write from the other end has arrived (net_ib_cm_heard) */
};
enum net_ib_cm_act net_ib_cm_step(struct net_ib_cm *c, enum net_ib_cm_ev ev);
/* iWARP: "the active side of the connection [must] send the first
 * message" (rdma_connect(3), IWARP SPECIFIC; MPA without the RFC 6581
 * ready-to-receive exchange, which erdma's own MPA revision lacks). The
 * sender is the active side and writes first anyway, but the receiver's
 * failure notice could go before the sender's first message: on iWARP the
 * passive side posts nothing until a write from the active side arrived.
 * 1 when this end may post to its send queue. Credits need no gate: one is
 * due only for a message that arrived. */
int net_ib_cm_may_send(const struct net_ib_cm *c);
/* A write from the other end arrived (a receive completed). */
void net_ib_cm_heard(struct net_ib_cm *c);
/* The passive side's answer to NET_IB_ACT_ACCEPT: 1 accepted, 0 could not
 * accept (the link fails), -1 the request was not this link's sender's
 * (rejected; the link waits on). */
enum net_ib_cm_act net_ib_cm_accepted(struct net_ib_cm *c, int ok);

/* The byte_len a data write's completion reports against the length its
 * header says (header included): some providers report 0 for an RDMA
 * write with immediate (it consumed no receive buffer), so 0 is accepted
 * as well as the exact length; anything else breaks the link. */
static inline int net_ib_write_len_ok(uint32_t byte_len, uint64_t expected)
{
    return byte_len == 0 || byte_len == expected;
}

/* The progress thread's poll set when it naps: every link's completion
 * queue reports on its device's one completion channel, and the device's
 * asynchronous events on its async fd (chan_fds: the descriptors of each
 * link's device, as many a link as the caller lists), so the set is each
 * distinct descriptor once, in the order first seen, then the process's one connection manager channel (cm_fd,
 * left out when negative), then the wake-up descriptor, last. However many
 * links there are, every one of them is covered and the nap is not cut
 * short. out holds n + 2 at least; returns how many it holds. */
int net_ib_poll_set(const int *chan_fds, int n, int cm_fd, int wake_fd, int *out);

/* A queue pair's send queue, counted. Not every work request is signaled
 * (a completion each costs the device and the progress thread), but one
 * at least every `every` posts (every <= depth), and any the caller must
 * hear of (the last of a batch, so the sender learns its messages left; a
 * failure notice; a write whose source memory must stay), so the count of
 * finished requests keeps moving and the queue never fills with requests
 * nobody will hear of. A signaled request's completion finishes every
 * request before it as well (one queue pair completes in order). */
struct net_ib_sq {
    uint64_t posted;        /* requests posted; the next one's sequence */
    uint64_t done;          /* requests known finished */
    uint64_t last_signaled; /* posted, as it was after the last signaled one */
    uint32_t depth;         /* the queue's size (max_send_wr) */
    uint32_t every;
};
/* Before posting: -1 the queue is full (post after a completion), 1 post
 * it signaled, 0 unsignaled. Otherwise it counts as posted, with sequence
 * posted - 1. */
int net_ib_sq_post(struct net_ib_sq *q, int must);
/* The completion of the signaled request of sequence seq. */
void net_ib_sq_done(struct net_ib_sq *q, uint64_t seq);

/* An 8-byte control write goes inline (copied at post time: no source
 * memory to keep, no completion needed to reuse it) where the queue pair
 * takes that much inline data. */
static inline int net_ib_ctl_inline(uint32_t max_inline_data)
{
    return max_inline_data >= 8;
}

/* Close, after this end's call failed: 1 while close should wait before
 * destroying the queue pair, which would flush a failure notice not yet
 * delivered (the peer would then read "gone" instead of "failed"): until
 * the notice's write completed, the link went, or bound_ms passed. */
/* ---- devices: which ones links may use, from probed facts ----
 * A device is used when it has RDMA write with immediate, which every
 * message and control write of this transport is (the receiver is woken
 * by the immediate). InfiniBand and RoCE devices (transport type IB) have
 * it. iWARP's RDMAP (RFC 5040) has no immediate data, and verbs reports no
 * capability bit for it, so an iWARP device is used only where its
 * provider is known to implement it: Alibaba Cloud's elastic RDMA (erdma:
 * its provider posts IBV_WR_RDMA_WRITE_WITH_IMM). The provider is the
 * kernel driver sysfs names (/sys/class/infiniband/<dev>/device/driver),
 * or, where sysfs does not say, the device name's "erdma" prefix. Other
 * iWARP drivers are refused, each with its reason: iw_cxgb4 writes with
 * immediate only where the adapter's firmware offers it (T6), which the
 * kernel keeps to itself, so it cannot be probed and is refused; siw,
 * irdma/i40iw in iWARP mode and qedr in iWARP mode take no immediate data.
 * erdma connects and listens over IPv4 only (its connection manager
 * refuses other families), so an erdma device takes only IPv4 addresses. */
enum net_ib_transport { NET_IB_TR_IB, NET_IB_TR_IWARP, NET_IB_TR_OTHER };
struct net_ib_probe {
    const char *name;   /* ibv_get_device_name */
    const char *driver; /* the kernel driver's name; "" when sysfs does not say */
    int transport;      /* enum net_ib_transport, from the device's transport type */
    int active;         /* a port is active (ibv_query_port) */
    int link_layer_ib;  /* that port's link layer is InfiniBand (else Ethernet) */
};
struct net_ib_traits {
    int iwarp;     /* connects over iWARP: the net_ib_cm_may_send, private data and loopback rules */
    int ipv4_only; /* listens and connects over IPv4 only */
    char kind[32]; /* "InfiniBand", "RoCE", "iWARP (erdma)": for the log */
};
/* 1 with *t filled: links may use the device (given an active port, which
 * net_ib_choose asks for); 0 with the reason in why. */
int net_ib_dev_eligible(const struct net_ib_probe *p, struct net_ib_traits *t, char *why,
                        size_t len);

/* Private data a connection request (accept 0) or accept (accept 1) may
 * carry: 56 and 196 bytes over InfiniBand and RoCE (rdma_connect(3),
 * rdma_accept(3): RDMA_PS_TCP); over iWARP MPA's request and reply frames
 * carry it, at most 256 bytes (RDMA_MAX_PRIVATE_DATA, which erdma's and
 * siw's connection managers check), less what a provider keeps of them for
 * its own negotiation (siw: MPA v2's IRD/ORD and more); 128 leaves room
 * for that. 1 when n bytes fit, else 0 with the reason in why. */
#define NET_IB_PDATA_IB_CONNECT 56
#define NET_IB_PDATA_IB_ACCEPT 196
#define NET_IB_PDATA_IWARP 128
int net_ib_pdata_fits(int iwarp, int accept, size_t n, char *why, size_t len);
_Static_assert(sizeof(struct net_ib_req) <= NET_IB_PDATA_IWARP, "MPA private data holds it");

/* iWARP cannot connect a host to itself: the connection is a TCP
 * connection, which to an address of this host runs over the loopback
 * interface, where no RDMA device is. A link whose receiver listens on an
 * address of this host (peer, against this host's local addresses) is
 * refused before any connection is tried: 1 with the sentence in why
 * (naming peer_rank and device), else 0. InfiniBand and RoCE devices loop
 * back in the adapter and are never refused. */
struct net_ib_ifaddr;
int net_ib_loopback_refused(int iwarp, const struct sockaddr *peer,
                            const struct net_ib_ifaddr *local, int nlocal, int peer_rank,
                            const char *dev, char *why, size_t len);

static inline int net_ib_close_waits(int failed, int notice_done, int gone, int waited_ms,
                                     int bound_ms)
{
    return failed && !notice_done && !gone && waited_ms < bound_ms;
}

/* An asynchronous event of a device (ibv_get_async_event), and whether it
 * ends a link on that device: a fatal device error ends every one, a port
 * that went down those on the port (ev_port, the link's link_port), a
 * queue pair or completion queue error the link it is of (links_object);
 * anything else (a port coming up, a GID change) none. */
enum net_ib_async {
    NET_IB_ASYNC_DEVICE_FATAL,
    NET_IB_ASYNC_PORT_DOWN,
    NET_IB_ASYNC_QP_ERROR,
    NET_IB_ASYNC_CQ_ERROR,
    NET_IB_ASYNC_OTHER,
};
int net_ib_async_ends(enum net_ib_async ev, unsigned ev_port, unsigned link_port,
                      int links_object);

/* The sentence for a memory registration that failed with err (errno) when
 * registering bytes more, with locked_now bytes already registered by this
 * process and the RLIMIT_MEMLOCK soft limit lim (RLIM_INFINITY: none): it
 * names the limit, `ulimit -l` and CAP_IPC_LOCK when the limit is the
 * likely cause, instead of a bare "Cannot allocate memory". */
void net_ib_reg_failed(int err, size_t bytes, size_t locked_now, unsigned long long lim,
                       int privileged, char *buf, size_t len);

/* Which RDMA device and which of its addresses links use, from what the
 * host has (pure: tested on any machine). A device's network interfaces
 * are those its GID table names (RoCE, including VLANs, bonds and the veth
 * of a software device) and those sysfs lists under device/net (IPoIB).
 * Loopback and IPv6 link-local addresses are never taken. A device that
 * net_ib_dev_eligible refused (refused set) is never chosen, and naming it
 * in PPU_IB_HCA fails with its reason; an IPv4-only device (erdma) takes
 * only IPv4 addresses.
 *   hca set (PPU_IB_HCA): that device, which needs an active port, and an
 *   address of its interfaces, of the family of chosen when it has one;
 *   hca empty: chosen (the address PPU_SOCKET_IFNAME picks, as for TCP;
 *   its port is ignored), which must be on an interface of a device with
 *   an active port: a rank whose address has no RDMA device is not
 *   RDMA-capable, so the job takes TCP rather than failing at setup.
 * 1 with *dev and *addr (indices) set, or 0 with the reason in why. The
 * address is where the receiver listens and the sender's source. */
#define NET_IB_MAX_IFS 16
struct net_ib_devview {
    char name[64];
    int active; /* a port is active */
    int nifs;
    char ifs[NET_IB_MAX_IFS][16];
    int iwarp, ipv4_only; /* net_ib_traits: iWARP; only its IPv4 addresses are taken */
    char refused[200]; /* not empty: links never use it, and why (net_ib_dev_eligible) */
};
struct net_ib_ifaddr {
    char ifname[16];
    struct sockaddr_storage addr;
};
int net_ib_choose(const struct net_ib_devview *devs, int ndev, const struct net_ib_ifaddr *addrs,
                  int naddr, const char *hca, const struct sockaddr *chosen, int *dev, int *addr,
                  char *why, size_t len);

/* Is an RDMA device usable here (one with an active port)? 1 with the
 * device named in what, or 0 with the reason in what. */
int ppu_net_ib_usable(const char *hca, char *what, size_t len);

/* 1 (with the reason in what) when this process was forked from one that
 * had opened the RDMA devices: their state does not survive a fork. The
 * first call, in any process, also runs ibv_fork_init. */
int net_ib_forked(char *what, size_t len);

#endif
