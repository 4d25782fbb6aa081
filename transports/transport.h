/* The contract every transport fills: one ops table, designated
 * initializers; src/connect.c picks one per link (icn_sim inside a server,
 * net_socket or net_ib between servers).
 *
 * Connection setup runs in phases driven by the core; between phases the
 * core exchanges connect info and barriers through the bootstrap:
 *   recv_setup   (receiver) creates the link's buffer, writes connect info
 *   send_connect (sender)   attaches using the receiver's info
 *   recv_finish  (receiver) after every sender attached: unlink names, probe
 *   send_finish  (sender)   after every receiver finished
 *
 * Data path: no call blocks. PPU_IN_PROGRESS means "not yet, poll again".
 * A transport never includes core headers (struct ppu_comm and the like),
 * only src/util/ (logging, waiting, sockets, parameters, hashing) and this
 * file, which also declares what the core offers transports (the
 * registration cache, logging). ctest layers checks it. */
#ifndef PPU_TRANSPORT_H
#define PPU_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "ppuccl.h"

#define PPU_CONNECT_INFO_BYTES 128

struct ppu_link_params {
    int self_rank, peer_rank, channel;
    size_t slot_bytes;    /* largest message */
    int nslots;           /* messages in flight */
    int allow_direct;     /* may messages refer to the sender's memory? */
    int allow_cma;        /* ...also across processes (one kernel copy)? */
    const void *reg_owner; /* whose registered memory (net_reg.h) the link may send from */
    size_t ll_bytes;      /* largest low-latency message; 0: none */
    /* Network transports only (zero elsewhere). */
    int nsocks;           /* connections per link (PPU_SOCKET_NSOCKS) */
    int nthreads;         /* TCP progress threads per process (PPU_SOCKET_NTHREADS) */
    char ib_hca[32];      /* RDMA device to use (PPU_IB_HCA), or "" for the address's */
    int ib_tc;            /* traffic class (PPU_IB_TC), -1: the device's */
    int ib_timeout;       /* local ACK timeout exponent (PPU_IB_TIMEOUT), -1: the path's */
    int ib_retry;         /* transport retries (PPU_IB_RETRY_CNT) */
    int setup_timeout_ms; /* connection setup deadline (PPU_BOOTSTRAP_TIMEOUT_MS) */
    int close_timeout_ms; /* longest wait at close for sent messages to leave (PPU_TIMEOUT_MS) */
    struct sockaddr_storage listen_addr; /* receiver: where to listen (port ignored) */
};

/* What a receiver finds at the head of its FIFO. */
struct ppu_msg {
    const void *ptr; /* readable here, or NULL when remote */
    size_t bytes;
    uint64_t call[2]; /* the sender's link->call when it sent this message */
    uint64_t sum;     /* the sender's link->sum (PPU_CHECKSUM), else 0 */
};

struct ppu_transport_ops;

enum {
    PPU_DIRECT_NONE = 0,       /* every message is copied into a slot */
    PPU_DIRECT_ANY = 1,        /* send_ref from any memory */
    PPU_DIRECT_REGISTERED = 2, /* send_ref only from memory registered with the
                                * link's params.reg_owner (ppu_reg_covers) */
};

struct ppu_link {
    const struct ppu_transport_ops *ops;
    struct ppu_link_params params;
    int direct;        /* messages may be references (send_ref): PPU_DIRECT_* */
    int ll;            /* sender: commit small messages in the low-latency format */
    uint64_t call[2];  /* sender: stamped on every message (which call sent it) */
    uint64_t sum;      /* sender: stamped on the next message (its checksum, or 0) */
    uint64_t bytes;    /* sent on this link, for PPU_SIM_STATS_FILE */
    uint64_t msgs;
    void *priv;
    /* The core's hooks (src/hook.c: faults, checksums) keep their state
     * here; a transport never touches it. */
    struct {
        void *ctx;
        void *slot;          /* the slot send_reserve gave */
        const void *checked; /* the message whose sum was checked */
        uint64_t sum;        /* the peeked message's sum and size */
        size_t bytes;
        double gbps;         /* sender: paced to this (GB/s); 0 not paced, <0 not known yet */
        uint64_t paced_until; /* sender: when the link is free again (ppu_now_ns) */
    } hook;
};

struct ppu_transport_ops {
    const char *name;
    /* Connection phases (see above). */
    ppu_result_t (*recv_setup)(struct ppu_link *link, void *info /* PPU_CONNECT_INFO_BYTES */);
    ppu_result_t (*send_connect)(struct ppu_link *link, const void *info);
    ppu_result_t (*recv_finish)(struct ppu_link *link);
    ppu_result_t (*send_finish)(struct ppu_link *link);
    /* Sender: a slot of at least params.slot_bytes to fill, then commit. */
    ppu_result_t (*send_reserve)(struct ppu_link *link, void **slot);
    ppu_result_t (*send_commit)(struct ppu_link *link, size_t bytes);
    /* Sender, direct links only: post a reference to bytes at src. src must
     * stay unchanged until send_drained reports the receiver consumed it. */
    ppu_result_t (*send_ref)(struct ppu_link *link, const void *src, size_t bytes);
    /* PPU_SUCCESS once the receiver released every message sent so far. */
    ppu_result_t (*send_drained)(struct ppu_link *link);
    /* Receiver: look at the oldest message; copy it out (needed when
     * msg->ptr is NULL); release it so the sender may reuse the slot. */
    ppu_result_t (*recv_peek)(struct ppu_link *link, struct ppu_msg *msg);
    ppu_result_t (*recv_read)(struct ppu_link *link, void *dst, size_t offset, size_t bytes);
    ppu_result_t (*recv_release)(struct ppu_link *link);
    /* Nonzero when the process at the other end has exited (a dead peer
     * ends waits at once instead of at the timeout). */
    int (*peer_gone)(struct ppu_link *link);
    /* Failure notice: a rank whose call failed marks its links so that a
     * peer blocked on it ends its wait at once (peer_failed nonzero)
     * instead of at the timeout. Either may be NULL. */
    void (*set_failed)(struct ppu_link *link);
    int (*peer_failed)(struct ppu_link *link);
    void (*close)(struct ppu_link *link);
    /* Optional: move what is ready on every link of this transport in the
     * process, from the calling (core) thread, without blocking; nonzero
     * when anything moved. The executor calls it instead of idling. */
    int (*help)(void);
    /* Optional: what a failed phase (1: recv_setup, 2: send_connect, ...)
     * most likely lacked, for the core's error sentence. */
    const char *(*why_failed)(const struct ppu_link *link, int phase, ppu_result_t r, char *buf,
                              size_t len);
};

/* ---- the registry (registry.c) ----
 * Every transport, in the order the core prefers them. */
enum { PPU_REACH_SERVER = 1, PPU_REACH_NET = 2 };
struct ppu_transport {
    const char *name; /* as PPU_NET spells it ("ib", "socket"); "icn_sim" */
    const struct ppu_transport_ops *ops;
    int reach; /* PPU_REACH_*: links inside a server, or between servers */
    /* 1 when this process can use it (what: the device it would use), or 0
     * and why not */
    int (*usable)(char *what, size_t len);
    /* A rank's links of this transport in one line, for the log (addr:
     * where network links listen) */
    void (*describe)(const struct ppu_link_params *p, const char *addr, char *buf, size_t len);
};
const struct ppu_transport *ppu_transport_at(int i); /* NULL past the last */
/* The first transport of reach named name (any name when NULL), or NULL. */
const struct ppu_transport *ppu_transport_named(const char *name, int reach);
const struct ppu_transport *ppu_transport_of(const struct ppu_transport_ops *ops);

extern const struct ppu_transport_ops ppu_icn_sim_ops;
/* Links between servers: TCP sockets driven by a progress thread. */
extern const struct ppu_transport_ops ppu_net_socket_ops;
/* Links between servers over RDMA (PPU_NET=ib; only where built with
 * rdma-core, see net_ib/net_ib.h for ppu_net_ib_usable). */
extern const struct ppu_transport_ops ppu_net_ib_ops;

/* ---- the registration cache (src/reg.h), as transports use it ----
 * Memory the user registered with a communicator (ppu_comm_register) is
 * registered with a transport's device on first use and kept until the
 * user deregisters it; a link sends from it by the key its registration
 * has. The core owns the cache; a transport only asks. */
#define PPU_REG_DOMAINS 4 /* devices one region is registered with, at most */

struct ppu_reg_ops {
    const char *name; /* for the log: "net_ib" */
    /* Register [addr, addr + bytes) in dom; NULL with errno set on failure. */
    void *(*reg)(void *dom, void *addr, size_t bytes);
    void (*dereg)(void *handle);
    /* The key a send names the registration by (net_ib: the MR's lkey). */
    uint64_t (*key)(void *handle);
};

/* The key (ops->key) of the registration in dom of the region of owner's
 * that holds [p, p + n), made now if it is the first ask: 1 and *key set,
 * or 0 when no region holds the range, registering failed (logged once per
 * region and domain, and not tried again), or the region is registered
 * with PPU_REG_DOMAINS other domains already (logged once). */
int ppu_reg_get(const void *owner, const void *p, size_t n, void *dom,
                const struct ppu_reg_ops *ops, uint64_t *key);
/* dom is going away: deregister every region's registration in it. */
void ppu_reg_drop_domain(void *dom);

/* Logging for transports, provided by the core (subsystem NET): level 1
 * warns, 2 informs, 3 traces (as PPU_DEBUG). */
void ppu_transport_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));


#endif
