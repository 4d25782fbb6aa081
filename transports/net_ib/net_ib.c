/* Network transport over RDMA (libibverbs + librdmacm): the protocol of
 * transports/net_common/net_proto.h, the same as net_socket's, with RDMA
 * writes in place of TCP frames.
 *
 * Each link is one RC queue pair. Both ends register their FIFO (slots of
 * NET_IB_HDR + slot_bytes) and a small control block (struct net_ib_ctl).
 * The sender's progress thread writes message i, frame header and payload
 * in one RDMA write with immediate, from its slot i % nslots into the
 * receiver's slot i % nslots; it does so only with credit, so the slot is
 * free. The immediate wakes the receiver's completion queue; its thread
 * checks the immediate, the write's length and the header exactly as
 * net_socket checks a frame (net_check_frame, net_end_slot_for) and
 * publishes the message. Credits and failure notices go back as 8-byte
 * writes with immediate into the other end's control block; a credit's
 * count is read from the immediate (low 30 bits, against the last one),
 * never from memory a later write may be changing. Writes on one queue pair
 * arrive in order, so the receiver knows each message's full index from
 * the low bits.
 *
 * Setup, in the core's four phases: recv_setup binds an rdmacm listener to
 * the address of the RDMA device (PPU_IB_HCA's, else the core's choice),
 * registers its memory and publishes address, port, nonce and its memory
 * keys; send_connect resolves the route, creates the queue pair and asks
 * to connect with {nonce, its control block} as private data; recv_finish
 * accepts the request that carries the nonce and rejects (and logs) any
 * other; send_finish waits until the connection is established.
 *
 * Failure: a completion with an error status, or a disconnect event, marks
 * the link gone with a message naming the device, the peer and the status,
 * and disconnects so the peer learns it at once. What arrived before a
 * disconnect is still taken from the completion queue first. A rank that
 * closes after its call failed waits (up to NOTICE_MS) for its failure
 * notice's write to complete before it destroys the queue pair.
 *
 * Messages from memory the user registered with the communicator
 * (ppu_comm_register) are written straight from it: the write gathers the
 * header from the slot and the payload from the user's memory, whose
 * registration with this device the registration cache (reg.h) makes
 * on first use. Anything else goes through the registered FIFO, one copy
 * at the sender. The receiver always takes messages in its slots.
 *
 * Built only where the rdma-core headers are (PPU_HAVE_IBVERBS); elsewhere
 * PPU_NET=ib fails with that reason. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include "net_ib.h"
#include "util/hash.h"

int net_ib_check_imm(uint32_t imm, int take_data, uint64_t expect_seq, const char **why)
{
    uint32_t kind = imm >> 30;
    if (kind == NET_IB_IMM_FAIL)
        return NET_IB_IMM_FAIL;
    if (kind == NET_IB_IMM_CREDIT && !take_data)
        return NET_IB_IMM_CREDIT;
    if (kind != NET_IB_IMM_DATA || !take_data) {
        *why = "a write of a kind this end does not take arrived";
        return -1;
    }
    if ((imm & NET_IB_IMM_MASK) != ((uint32_t)expect_seq & NET_IB_IMM_MASK)) {
        *why = "a message arrived where another was due";
        return -1;
    }
    return NET_IB_IMM_DATA;
}

enum net_ib_cm_act net_ib_cm_step(struct net_ib_cm *c, enum net_ib_cm_ev ev)
{
    if (c->failed)
        return NET_IB_ACT_NONE;
    switch (ev) {
    case NET_IB_EV_CONNECT_REQUEST:
        if (c->active || c->accepting || c->up)
            return NET_IB_ACT_REJECT;
        c->accepting = 1;
        return NET_IB_ACT_ACCEPT;
    case NET_IB_EV_CONNECT_RESPONSE:
    case NET_IB_EV_ESTABLISHED:
        if (!c->active || c->up)
            return NET_IB_ACT_NONE; /* passive: it was up at accept */
        c->up = 1;
        return NET_IB_ACT_UP;
    case NET_IB_EV_REJECTED:
    case NET_IB_EV_UNREACHABLE:
    case NET_IB_EV_CONNECT_ERROR:
    case NET_IB_EV_DISCONNECTED:
        c->failed = 1;
        return NET_IB_ACT_FAIL;
    case NET_IB_EV_DEVICE_REMOVAL:
        c->failed = 1;
        return NET_IB_ACT_RELEASE;
    default:
        return NET_IB_ACT_NONE;
    }
}

enum net_ib_cm_act net_ib_cm_accepted(struct net_ib_cm *c, int ok)
{
    c->accepting = 0;
    if (ok < 0)
        return NET_IB_ACT_NONE;
    if (!ok) {
        c->failed = 1;
        return NET_IB_ACT_FAIL;
    }
    c->up = 1; /* RTS and receives posted: no need to wait for ESTABLISHED */
    return NET_IB_ACT_UP;
}

int net_ib_cm_may_send(const struct net_ib_cm *c)
{
    return c->active || !c->iwarp || c->heard;
}

void net_ib_cm_heard(struct net_ib_cm *c)
{
    __atomic_store_n(&c->heard, 1, __ATOMIC_RELEASE); /* close reads it on another thread */
}

/* Why an iWARP driver other than erdma is refused (see net_ib.h). */
static const char *iwarp_refusal(const char *driver)
{
    static const struct {
        const char *driver, *why;
    } known[] = {
        {"iw_cxgb4", "Chelsio adapters write with immediate only where their firmware offers "
                     "it, which the kernel does not report, so it cannot be probed"},
        {"siw", "soft-iWARP has no RDMA write with immediate"},
        {"irdma", "Intel's adapters take no immediate data in iWARP mode (RoCEv2 mode does)"},
        {"i40iw", "Intel's X722 takes no immediate data over iWARP"},
        {"qedr", "qedr refuses immediate data in iWARP mode (RoCE mode takes it)"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(driver, known[i].driver))
            return known[i].why;
    return "iWARP (RFC 5040) has no RDMA write with immediate, and this provider is not one "
           "known to add it (erdma)";
}

int net_ib_dev_eligible(const struct net_ib_probe *p, struct net_ib_traits *t, char *why,
                        size_t len)
{
    memset(t, 0, sizeof *t);
    const char *drv = p->driver ? p->driver : "";
    if (p->transport == NET_IB_TR_IB) {
        snprintf(t->kind, sizeof t->kind, "%s", p->link_layer_ib ? "InfiniBand" : "RoCE");
        return 1;
    }
    if (p->transport != NET_IB_TR_IWARP) {
        snprintf(why, len, "device %s (driver %s): neither InfiniBand, RoCE nor iWARP", p->name,
                 *drv ? drv : "unknown");
        return 0;
    }
    /* the driver when sysfs names it; the name only where it does not (a
     * device can be renamed, its driver cannot) */
    int erdma = *drv ? !strcmp(drv, "erdma") : !strncmp(p->name, "erdma", 5);
    if (!erdma) {
        snprintf(why, len, "iWARP device %s (driver %s) not used: %s", p->name,
                 *drv ? drv : "unknown", iwarp_refusal(drv));
        return 0;
    }
    t->iwarp = 1;
    t->ipv4_only = 1;
    snprintf(t->kind, sizeof t->kind, "iWARP (erdma)");
    return 1;
}

int net_ib_pdata_fits(int iwarp, int accept, size_t n, char *why, size_t len)
{
    size_t max = iwarp ? NET_IB_PDATA_IWARP
                       : accept ? NET_IB_PDATA_IB_ACCEPT : NET_IB_PDATA_IB_CONNECT;
    if (n <= max)
        return 1;
    snprintf(why, len, "%zu bytes of private data in a connection %s, where %s carries %zu at "
             "most", n, accept ? "accept" : "request",
             iwarp ? "iWARP (MPA, as this transport counts it)" : "InfiniBand or RoCE", max);
    return 0;
}

int net_ib_poll_set(const int *chan_fds, int n, int cm_fd, int wake_fd, int *out)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        int j = k; /* devices are few: look back over those taken */
        while (j > 0 && out[j - 1] != chan_fds[i])
            j--;
        if (j == 0)
            out[k++] = chan_fds[i];
    }
    if (cm_fd >= 0)
        out[k++] = cm_fd;
    out[k++] = wake_fd;
    return k;
}

int net_ib_sq_post(struct net_ib_sq *q, int must)
{
    if (q->posted - q->done >= q->depth)
        return -1;
    int sig = must || q->posted + 1 - q->last_signaled >= q->every;
    q->posted++;
    if (sig)
        q->last_signaled = q->posted;
    return sig;
}

void net_ib_sq_done(struct net_ib_sq *q, uint64_t seq)
{
    if (seq + 1 > q->done)
        q->done = seq + 1;
}

int net_ib_async_ends(enum net_ib_async ev, unsigned ev_port, unsigned link_port,
                      int links_object)
{
    switch (ev) {
    case NET_IB_ASYNC_DEVICE_FATAL: return 1;
    case NET_IB_ASYNC_PORT_DOWN: return ev_port == link_port;
    case NET_IB_ASYNC_QP_ERROR:
    case NET_IB_ASYNC_CQ_ERROR: return links_object;
    default: return 0;
    }
}

/* An address links can use: not loopback, not IPv6 link-local. */
static int ib_addr_usable(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) != 127;
    if (a->ss_family != AF_INET6)
        return 0;
    const struct in6_addr *x = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return !IN6_IS_ADDR_LINKLOCAL(x) && !IN6_IS_ADDR_LOOPBACK(x) && !IN6_IS_ADDR_UNSPECIFIED(x);
}

static int same_host_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (!b || a->ss_family != b->sa_family)
        return 0;
    if (b->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return b->sa_family == AF_INET6 &&
           !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

int net_ib_loopback_refused(int iwarp, const struct sockaddr *peer,
                            const struct net_ib_ifaddr *local, int nlocal, int peer_rank,
                            const char *dev, char *why, size_t len)
{
    if (!iwarp || !peer)
        return 0;
    int i = 0;
    while (i < nlocal && !same_host_addr(&local[i].addr, peer))
        i++;
    if (i == nlocal)
        return 0;
    snprintf(why, len, "rank %d listens on %s's address, on this host, and iWARP (device %s) "
             "cannot connect a host to itself: put the two ranks on different hosts, or set "
             "PPU_NET=socket", peer_rank, local[i].ifname, dev);
    return 1;
}

static int dev_has_if(const struct net_ib_devview *d, const char *ifname)
{
    for (int k = 0; k < d->nifs; k++)
        if (!strcmp(d->ifs[k], ifname))
            return 1;
    return 0;
}

/* "name: if1 if2, name2: -" for a sentence. */
static void list_devs(const struct net_ib_devview *devs, int ndev, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndev && at < len; i++) {
        at += (size_t)snprintf(buf + at, len - at, "%s%s%s:", i ? ", " : "", devs[i].name,
                               devs[i].refused[0] ? " (not used)"
                               : devs[i].active   ? ""
                                                  : " (no active port)");
        for (int k = 0; k < devs[i].nifs && at < len; k++)
            at += (size_t)snprintf(buf + at, len - at, " %s", devs[i].ifs[k]);
        if (!devs[i].nifs && at < len)
            at += (size_t)snprintf(buf + at, len - at, " no interface");
    }
}

int net_ib_choose(const struct net_ib_devview *devs, int ndev, const struct net_ib_ifaddr *addrs,
                  int naddr, const char *hca, const struct sockaddr *chosen, int *dev, int *addr,
                  char *why, size_t len)
{
    char all[256];
    list_devs(devs, ndev, all, sizeof all);
    if (hca && *hca) {
        int d = 0;
        while (d < ndev && strcmp(devs[d].name, hca) != 0)
            d++;
        if (d == ndev || devs[d].refused[0] || !devs[d].active) {
            snprintf(why, len, "PPU_IB_HCA=%s: %s (devices: %s)", hca,
                     d == ndev            ? "no such RDMA device"
                     : devs[d].refused[0] ? devs[d].refused
                                          : "no active port",
                     ndev ? all : "none");
            return 0;
        }
        int best = -1;
        for (int i = 0; i < naddr; i++)
            if (dev_has_if(&devs[d], addrs[i].ifname) && ib_addr_usable(&addrs[i].addr) &&
                (!devs[d].ipv4_only || addrs[i].addr.ss_family == AF_INET) &&
                (best < 0 || (chosen && addrs[i].addr.ss_family == chosen->sa_family &&
                              addrs[best].addr.ss_family != chosen->sa_family)))
                best = i;
        if (best < 0) {
            snprintf(why, len, "PPU_IB_HCA=%s: its interfaces have no %saddress that is neither "
                     "loopback nor IPv6 link-local (%s)", hca,
                     devs[d].ipv4_only ? "IPv4 " : "", all);
            return 0;
        }
        *dev = d;
        *addr = best;
        return 1;
    }
    int at = 0;
    while (at < naddr && !same_host_addr(&addrs[at].addr, chosen))
        at++;
    if (at == naddr || !ib_addr_usable(&addrs[at].addr)) {
        snprintf(why, len, "the address links listen on is %s; set PPU_IB_HCA to an RDMA "
                 "device (%s)", at == naddr ? "on no interface" : "loopback or link-local",
                 ndev ? all : "none");
        return 0;
    }
    for (int d = 0; d < ndev; d++)
        if (!devs[d].refused[0] && devs[d].active && dev_has_if(&devs[d], addrs[at].ifname)) {
            if (devs[d].ipv4_only && addrs[at].addr.ss_family != AF_INET) {
                snprintf(why, len, "the address links listen on (interface %s) is IPv6, and "
                         "device %s connects over IPv4 only: give PPU_SOCKET_IFNAME an IPv4 "
                         "address", addrs[at].ifname, devs[d].name);
                return 0;
            }
            *dev = d;
            *addr = at;
            return 1;
        }
    snprintf(why, len, "the address links listen on (interface %s, PPU_SOCKET_IFNAME's choice) "
             "has no RDMA device with an active port; set PPU_IB_HCA, or PPU_SOCKET_IFNAME to "
             "an RDMA device's interface (%s)", addrs[at].ifname, ndev ? all : "none");
    return 0;
}

void net_ib_reg_failed(int err, size_t bytes, size_t locked_now, unsigned long long lim,
                       int privileged, char *buf, size_t len)
{
    int memlock = (err == ENOMEM || err == EPERM || err == EAGAIN) && !privileged &&
                  lim != (unsigned long long)RLIM_INFINITY;
    if (memlock)
        snprintf(buf, len, "registering %zu bytes of memory with the RDMA device failed (%s): "
                 "this process would lock %zu bytes and its RLIMIT_MEMLOCK is %llu bytes; raise "
                 "it (ulimit -l unlimited, or memlock in /etc/security/limits.conf or the "
                 "container's --ulimit memlock=-1) or grant CAP_IPC_LOCK",
                 bytes, strerror(err), locked_now + bytes, lim);
    else
        snprintf(buf, len, "registering %zu bytes of memory with the RDMA device failed (%s)",
                 bytes, strerror(err));
}

int net_ib_check_req(const void *bytes, size_t n, const uint8_t nonce[NET_IB_NONCE_BYTES],
                     struct net_ib_req *out, const char **why)
{
    struct net_ib_req q;
    if (!bytes || n < sizeof q) {
        *why = "no ppuccl request (private data too short)";
        return -1;
    }
    memcpy(&q, bytes, sizeof q);
    if (q.magic != NET_IB_MAGIC_REQ)
        *why = "not a ppuccl connection";
    else if (q.version != NET_IB_VERSION)
        *why = "protocol version not this build's";
    else if (!ppu_ct_equal(q.nonce, nonce, NET_IB_NONCE_BYTES))
        *why = "wrong nonce (not this link's sender)";
    else if (q.ctl_addr == 0)
        *why = "no control block";
    else {
        if (out)
            *out = q;
        return 0;
    }
    return -1;
}

int net_ib_check_info(const void *bytes, size_t n, uint64_t slot_bytes, uint32_t nslots,
                      struct net_ib_info *out, const char **why)
{
    struct net_ib_info f;
    if (n < sizeof f) {
        *why = "connect info too short";
        return -1;
    }
    memcpy(&f, bytes, sizeof f);
    if (f.magic != NET_IB_MAGIC_INFO || f.version != NET_IB_VERSION)
        *why = "no valid net_ib connect info (the receiver uses another transport or version)";
    else if (f.family != AF_INET && f.family != AF_INET6)
        *why = "connect info names no address family";
    else if (f.slot_bytes != slot_bytes || f.nslots != nslots)
        *why = "the receiver's slots are not this link's: set PPU_CHUNK_SIZE, PPU_P2P_CHUNK_SIZE "
               "and PPU_FIFO_SLOTS the same on every rank";
    else if (f.stride < NET_IB_HDR + slot_bytes || f.slots_addr == 0 || f.ctl_addr == 0)
        *why = "connect info names no memory to write";
    else {
        if (out)
            *out = f;
        return 0;
    }
    return -1;
}

#ifndef PPU_HAVE_IBVERBS

int net_ib_forked(char *what, size_t len)
{
    (void)what;
    (void)len;
    return 0; /* no devices to inherit */
}

int ppu_net_ib_usable(const char *hca, char *what, size_t len)
{
    (void)hca;
    snprintf(what, len, "this build of ppuccl has no RDMA transport (the libibverbs and "
             "librdmacm headers were missing when it was built)");
    return 0;
}

static ppu_result_t ib_none(struct ppu_link *link, void *info)
{
    (void)link;
    (void)info;
    ppu_transport_log(1, "net_ib: this build has no RDMA transport");
    return PPU_INVALID_USAGE;
}

const struct ppu_transport_ops ppu_net_ib_ops = {.name = "net_ib", .recv_setup = ib_none};

#else /* PPU_HAVE_IBVERBS */

#include <ifaddrs.h>
#include <poll.h>
#include <pthread.h>
#include <sys/random.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "../net_common/net_progress.h"
#include "util/socket.h" /* union ppu_sockaddr, ppu_socket_str */
#include "util/wait.h"   /* ppu_now_ns, ppu_ms_until */

#define LOG_WARN 1
#define LOG_INFO 2
#define LOG_TRACE 3
#define RESOLVE_MS 5000
#define WR_DATA 0x1ull /* wr_id: a data write (send queue sequence << 2 | 1) */
#define WR_CTL 0x2ull  /* a control write (sequence << 2 | 2); a receive is 0 */
#define CTL_SLOTS 16
#define NOTICE_MS 1000 /* how long close waits for a failure notice's completion */

/* A connection manager event, copied for the link it belongs to (the
 * process reads one channel for every link: see the hub below). */
struct ib_cm_ev {
    struct ib_cm_ev *next;
    enum rdma_cm_event_type event;
    int status;
    struct rdma_cm_id *id; /* a connection request's new id, the link's to accept or reject */
    uint8_t len;
    uint8_t data[64]; /* a connection request's private data (its first 64 bytes) */
};

struct ib_link {
    struct net_end e; /* the FIFO and the protocol (net_proto.h); first */
    struct rdma_cm_id *listen, *id; /* their context: this link */
    struct net_ib_cm cm; /* connection setup's state (net_ib_cm_step) */
    struct ib_cm_ev *evq, **evq_tail; /* its events not yet taken (hub.lock) */
    _Atomic int nev;                  /* how many */
    struct ib_link *hub_next;         /* hub.links */
    struct ib_dev *dev;            /* NULL once released (link_release) */
    pthread_mutex_t dev_lock;      /* dev, against send_ref */
    struct ibv_cq *cq; /* reports on dev->cc */
    struct ibv_mr *slots_mr, *ctl_mr;
    struct net_ib_ctl *ctl;
    uint32_t *ref_lkey; /* sender: per slot, the lkey of its message's payload (send_ref) */
    uint8_t nonce[NET_IB_NONCE_BYTES];
    uint64_t r_slots, r_stride, r_ctl; /* the other end's memory */
    uint32_t r_slots_rkey, r_ctl_rkey;
    uint64_t posted;      /* sender: data writes posted */
    uint64_t recv_next;   /* receiver: the next message index due */
    uint64_t credit_seen; /* sender: last credit value taken */
    struct net_ib_sq sq;  /* the send queue, counted (net_ib_sq_post) */
    uint64_t *sq_data;    /* per sequence % depth: data writes posted up to it */
    uint64_t ctl_seq[CTL_SLOTS]; /* per ctl->src slot: its last write's sequence + 1 */
    uint32_t max_inline;  /* the queue pair's max_inline_data */
    unsigned ctl_next;    /* next ctl->src slot */
    uint64_t notice_seq;  /* the failure notice's sequence + 1 (0: none posted) */
    _Atomic int notice_sent, notice_done; /* posted; its write completed */
    _Atomic int registered; /* up: cm.up; set before net_progress_add (hub_hand kicks) */
    int setup_timeout_ms, close_timeout_ms;
    int ack_timeout; /* PPU_IB_TIMEOUT, -1: librdmacm's */
    char devname[64];
};

/* ---- devices: one protection domain per device context, shared ---- */

struct ib_dev {
    struct ibv_context *ctx;
    struct ibv_pd *pd;
    struct ibv_comp_channel *cc; /* every completion queue of the device's links reports here */
    int refs;
    struct ib_dev *next;
};

static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ib_dev *devs;

/* PPU_IB_TC: the traffic class (RoCE: DSCP and ECN bits) of a link's
 * packets, set on its cm id before the route is resolved; -1 leaves the
 * device's default. */
static int set_tos(struct ib_link *l, struct rdma_cm_id *id, int tc)
{
    if (tc < 0)
        return 0;
    uint8_t tos = (uint8_t)tc;
    if (rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_TOS, &tos, sizeof tos) == 0)
        return 0;
    ppu_transport_log(LOG_WARN, "net_ib: link %d->%d: PPU_IB_TC=%d: rdma_set_option: %s",
                      l->e.self, l->e.peer, tc, strerror(errno));
    return -1;
}

/* PPU_IB_TIMEOUT: the queue pair's local ACK timeout, 4.096 us x 2^t
 * (librdmacm sets it from the path otherwise); a failure is logged only:
 * older librdmacm lacks the option. */
static void set_ack_timeout(struct ib_link *l, struct rdma_cm_id *id)
{
    if (l->ack_timeout < 0)
        return;
    uint8_t t = (uint8_t)l->ack_timeout;
    if (rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &t, sizeof t) != 0)
        ppu_transport_log(LOG_INFO, "net_ib: link %d->%d: PPU_IB_TIMEOUT=%d not applied: %s",
                          l->e.self, l->e.peer, l->ack_timeout, strerror(errno));
}

static struct ib_dev *dev_get(struct ibv_context *ctx)
{
    pthread_mutex_lock(&dev_lock);
    struct ib_dev *d = devs;
    while (d && d->ctx != ctx)
        d = d->next;
    if (!d && (d = calloc(1, sizeof *d)) != NULL) {
        d->ctx = ctx;
        d->pd = ibv_alloc_pd(ctx);
        d->cc = d->pd ? ibv_create_comp_channel(ctx) : NULL;
        if (!d->cc) {
            if (d->pd)
                ibv_dealloc_pd(d->pd);
            free(d);
            d = NULL;
        } else {
            fcntl(d->cc->fd, F_SETFL, fcntl(d->cc->fd, F_GETFL) | O_NONBLOCK);
            fcntl(ctx->async_fd, F_SETFL, fcntl(ctx->async_fd, F_GETFL) | O_NONBLOCK);
            d->next = devs;
            devs = d;
        }
    }
    if (d)
        d->refs++;
    pthread_mutex_unlock(&dev_lock);
    return d;
}

static void dev_put(struct ib_dev *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&dev_lock);
    if (--d->refs == 0) {
        struct ib_dev **pp = &devs;
        while (*pp != d)
            pp = &(*pp)->next;
        *pp = d->next;
        ppu_reg_drop_domain(d->pd); /* user memory registered in it */
        ibv_dealloc_pd(d->pd);
        ibv_destroy_comp_channel(d->cc); /* its queues are gone: their events were acked */
        free(d);
    }
    pthread_mutex_unlock(&dev_lock);
}

/* Fork: before kernel 5.12 (RHEL 8's 4.18), registered memory breaks in a
 * parent that forks unless ibv_fork_init ran before the first
 * registration; newer kernels need nothing (rdma-core then does nothing).
 * A forked child inherits the parent's device state, which it cannot use:
 * RDMA there is refused with the reason, so the child takes TCP (or fails
 * naming it under PPU_NET=ib). */
static pid_t ib_pid;       /* the process that first looked at the devices */
static int ib_fork_result; /* ibv_fork_init's, for the log */
static pthread_once_t ib_fork_once = PTHREAD_ONCE_INIT;

static void ib_fork_setup(void)
{
    ib_pid = getpid();
    ib_fork_result = ibv_fork_init();
    if (ib_fork_result != 0)
        ppu_transport_log(LOG_WARN, "net_ib: ibv_fork_init failed (%s): a process that forks "
                          "after registering memory may corrupt it on kernels before 5.12",
                          strerror(ib_fork_result > 0 ? ib_fork_result : errno));
}

int net_ib_forked(char *what, size_t len)
{
    pthread_once(&ib_fork_once, ib_fork_setup);
    if (ib_pid == getpid())
        return 0;
    snprintf(what, len, "this process (pid %d) was forked from pid %d after ppuccl had opened "
             "its RDMA devices, and the devices' state does not survive a fork: create the "
             "communicators in the child before RDMA is used in the parent, or set "
             "PPU_NET=socket", (int)getpid(), (int)ib_pid);
    return 1;
}

/* The interfaces of device name's port (its GID table's: RoCE, with the
 * VLANs, bonds and veths on it) and of the device (device/net: IPoIB),
 * added to v once each. */
static void add_if(struct net_ib_devview *v, const char *ifname)
{
    if (!*ifname || strlen(ifname) >= sizeof v->ifs[0] || v->nifs == NET_IB_MAX_IFS ||
        dev_has_if(v, ifname))
        return;
    snprintf(v->ifs[v->nifs++], sizeof v->ifs[0], "%s", ifname);
}

static void gid_ifs(struct net_ib_devview *v, unsigned port, int gids)
{
    char path[320], name[64];
    for (int k = 0; k < gids; k++) {
        snprintf(path, sizeof path, "/sys/class/infiniband/%s/ports/%u/gid_attrs/ndevs/%d",
                 v->name, port, k);
        FILE *f = fopen(path, "r");
        if (!f) /* no such entry: the table is no longer than this */
            break;
        if (fgets(name, sizeof name, f)) { /* an unused entry reads EINVAL */
            name[strcspn(name, "\n")] = '\0';
            add_if(v, name);
        }
        fclose(f);
    }
}

static void net_ifs(struct net_ib_devview *v)
{
    char path[256];
    snprintf(path, sizeof path, "/sys/class/infiniband/%s/device/net", v->name);
    DIR *dir = opendir(path);
    struct dirent *de;
    while (dir && (de = readdir(dir)) != NULL)
        if (de->d_name[0] != '.')
            add_if(v, de->d_name);
    if (dir)
        closedir(dir);
}

/* This host's IPv4 and IPv6 interface addresses: 0, or -1 (errno set).
 * The caller frees *addrs. */
static int local_addrs(struct net_ib_ifaddr **addrs, int *naddr)
{
    struct ifaddrs *ifs = NULL;
    *addrs = NULL;
    *naddr = 0;
    if (getifaddrs(&ifs) != 0)
        return -1;
    int m = 0;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        m++;
    *addrs = calloc((size_t)m + 1, sizeof **addrs);
    for (struct ifaddrs *i = ifs; i && *addrs; i = i->ifa_next) {
        if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET &&
                             i->ifa_addr->sa_family != AF_INET6))
            continue;
        struct net_ib_ifaddr *a = &(*addrs)[(*naddr)++];
        snprintf(a->ifname, sizeof a->ifname, "%s", i->ifa_name);
        memcpy(&a->addr, i->ifa_addr, i->ifa_addr->sa_family == AF_INET
                                          ? sizeof(struct sockaddr_in)
                                          : sizeof(struct sockaddr_in6));
    }
    freeifaddrs(ifs);
    if (!*addrs)
        errno = ENOMEM;
    return *addrs ? 0 : -1;
}

/* The kernel driver of device name (the link /sys/class/infiniband/<name>/
 * device/driver points to), in buf; "" where sysfs does not say (a
 * software device has no device/driver). */
static const char *dev_driver(const char *name, char *buf, size_t len)
{
    char path[256], target[256];
    snprintf(path, sizeof path, "/sys/class/infiniband/%s/device/driver", name);
    ssize_t n = readlink(path, target, sizeof target - 1);
    buf[0] = '\0';
    if (n > 0) {
        target[n] = '\0';
        const char *base = strrchr(target, '/');
        base = base ? base + 1 : target;
        size_t k = strlen(base) < len ? strlen(base) : len - 1; /* driver names are short */
        memcpy(buf, base, k);
        buf[k] = '\0';
    }
    return buf;
}

/* The host's RDMA devices and interface addresses, for net_ib_choose;
 * 0, or -1 with the reason in what. The caller frees both lists. */
static int host_view(struct net_ib_devview **views, int *ndev, struct net_ib_ifaddr **addrs,
                     int *naddr, char *what, size_t len)
{
    int n = 0;
    *views = NULL;
    *addrs = NULL;
    *ndev = *naddr = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    if (!list || n == 0) {
        snprintf(what, len, "no RDMA device");
        if (list)
            ibv_free_device_list(list);
        return -1;
    }
    *views = calloc((size_t)n, sizeof **views);
    for (int i = 0; i < n && *views; i++) {
        struct net_ib_devview *v = &(*views)[(*ndev)++];
        snprintf(v->name, sizeof v->name, "%s", ibv_get_device_name(list[i]));
        struct ibv_context *ctx = ibv_open_device(list[i]);
        struct ibv_device_attr da;
        int ll_ib = 0;
        if (ctx && ibv_query_device(ctx, &da) == 0)
            for (uint8_t port = 1; port <= da.phys_port_cnt; port++) {
                struct ibv_port_attr pa;
                if (ibv_query_port(ctx, port, &pa) != 0)
                    continue;
                if (pa.state == IBV_PORT_ACTIVE && !v->active)
                    ll_ib = pa.link_layer == IBV_LINK_LAYER_INFINIBAND;
                v->active |= pa.state == IBV_PORT_ACTIVE;
                gid_ifs(v, port, pa.gid_tbl_len);
            }
        if (ctx)
            ibv_close_device(ctx);
        net_ifs(v);
        /* what the device is, probed: its transport, driver and port */
        char drv[64];
        struct net_ib_traits t;
        struct net_ib_probe pr = {v->name, dev_driver(v->name, drv, sizeof drv),
                                  list[i]->transport_type == IBV_TRANSPORT_IB      ? NET_IB_TR_IB
                                  : list[i]->transport_type == IBV_TRANSPORT_IWARP ? NET_IB_TR_IWARP
                                                                                   : NET_IB_TR_OTHER,
                                  v->active, ll_ib};
        if (net_ib_dev_eligible(&pr, &t, v->refused, sizeof v->refused)) {
            v->iwarp = t.iwarp;
            v->ipv4_only = t.ipv4_only;
            ppu_transport_log(LOG_TRACE, "net_ib: device %s: %s%s", v->name, t.kind,
                              v->active ? "" : ", no active port");
        } else {
            if (!v->refused[0])
                snprintf(v->refused, sizeof v->refused, "not usable");
            ppu_transport_log(LOG_INFO, "net_ib: %s", v->refused);
        }
    }
    ibv_free_device_list(list);
    if (!*views || local_addrs(addrs, naddr) != 0) {
        snprintf(what, len, "cannot list the RDMA devices' addresses: %s", strerror(errno));
        free(*views);
        *views = NULL;
        return -1;
    }
    return 0;
}

/* The device and address links use (net_ib_choose on this host): 1 with
 * the address (port 0) in *out and the device named in what, or 0 with
 * the reason in what. The last answer is kept: links ask again and again,
 * and reading every GID table each time would slow setup down. A "no" is
 * kept for a second only: a port that comes up later (a link trained
 * after the job started) is found by the links set up after it. */
static int ib_where(const char *hca, const struct sockaddr *chosen, union ppu_sockaddr *out,
                    int *iwarp, char *what, size_t len)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static struct {
        int valid, ok, iwarp;
        uint64_t when_ns; /* of the answer */
        char hca[64];
        struct sockaddr_storage chosen;
        union ppu_sockaddr at;
        char what[400];
    } last;
    struct sockaddr_storage c;
    memset(&c, 0, sizeof c);
    if (chosen)
        memcpy(&c, chosen, chosen->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : sizeof(struct sockaddr_in));
    ((struct sockaddr_in *)&c)->sin_port = 0; /* the same place in both families */
    hca = hca ? hca : "";
    uint64_t now = ppu_now_ns();
    pthread_mutex_lock(&lock);
    int stale = last.valid && !last.ok && now - last.when_ns > 1000000000ull;
    if (!last.valid || stale || strcmp(last.hca, hca) != 0 ||
        memcmp(&last.chosen, &c, sizeof c) != 0) {
        struct net_ib_devview *views;
        struct net_ib_ifaddr *addrs;
        int ndev, naddr, d, a;
        memset(&last, 0, sizeof last);
        last.ok = host_view(&views, &ndev, &addrs, &naddr, last.what, sizeof last.what) == 0 &&
                  net_ib_choose(views, ndev, addrs, naddr, hca, chosen ? (struct sockaddr *)&c
                                                                      : NULL,
                                &d, &a, last.what, sizeof last.what);
        if (last.ok) {
            char ab[INET6_ADDRSTRLEN] = "?";
            memcpy(&last.at, &addrs[a].addr, sizeof last.at);
            last.at.in4.sin_port = 0; /* sin6_port too */
            inet_ntop(last.at.sa.sa_family, last.at.sa.sa_family == AF_INET6
                                                ? (void *)&last.at.in6.sin6_addr
                                                : (void *)&last.at.in4.sin_addr, ab, sizeof ab);
            snprintf(last.what, sizeof last.what, "%s, address %s on %s", views[d].name, ab,
                     addrs[a].ifname);
            last.iwarp = views[d].iwarp;
        }
        free(views);
        free(addrs);
        snprintf(last.hca, sizeof last.hca, "%s", hca);
        last.chosen = c;
        last.when_ns = now;
        last.valid = 1;
    }
    int ok = last.ok;
    if (ok)
        *out = last.at;
    if (ok && iwarp)
        *iwarp = last.iwarp;
    snprintf(what, len, "%s", last.what);
    pthread_mutex_unlock(&lock);
    return ok;
}

int ppu_net_ib_usable(const char *hca, char *what, size_t len)
{
    union ppu_sockaddr chosen, at;
    char err[160];
    int n = 0;
    if (net_ib_forked(what, len))
        return 0;
    errno = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    if (list)
        ibv_free_device_list(list);
    if (n == 0) { /* said before the parameters are read: a host without RDMA is common */
        snprintf(what, len, "no RDMA device (ibv_get_device_list found none%s%s)",
                 errno ? ": " : "", errno ? strerror(errno) : "");
        return 0;
    }
    int picked = ppu_socket_pick_addr(&chosen, err, sizeof err) == PPU_SUCCESS;
    if (!picked && (!hca || !*hca)) {
        snprintf(what, len, "no address for network links: %s", err);
        return 0;
    }
    return ib_where(hca, picked ? &chosen.sa : NULL, &at, NULL, what, len);
}

/* ---- the progress thread ---- */

static int ib_round(struct net_progress *g, struct net_end **links, int n, int nap_ms,
                    int wake_fd);
/* Why this thread's last send_connect refused its link (why_failed says it). */
static __thread char ib_refusal[320];
static void link_release(struct ib_link *l);
static struct net_progress g = NET_PROGRESS_INIT("ppu-ib", ib_round, NULL);

static void kick(int force)
{
    net_progress_kick(&g, force);
}

static const char *dir(const struct ib_link *l, char *buf, size_t len)
{
    return net_end_dir(&l->e, buf, len);
}

/* ---- connection manager events: one channel per process ----
 * Every link's cm ids are on one event channel, whose descriptor is one
 * entry of the progress thread's poll set however many links there are.
 * Whoever reads it (a setup waiting for its link's event, or the progress
 * thread) hands each event to the link that is its id's context, as a
 * copy, and acks it at once; a link takes its own events from its queue.
 * An event for a link that has left (or never was) is dropped, a
 * connection request rejected. One setup at a time polls the channel; the
 * others wait on the condition for what it hands them. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* an event was handed out, or the reader stopped */
    struct rdma_event_channel *ec;
    struct ib_link *links; /* the events' owners */
    int refs;              /* links joined and not yet gone */
    int reading;           /* a setup polls ec */
} hub = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0};

/* Done with ev: a connection request in it that nobody took is rejected. */
static void ev_free(struct ib_cm_ev *ev)
{
    if (ev->id) {
        rdma_reject(ev->id, NULL, 0);
        rdma_destroy_id(ev->id);
    }
    free(ev);
}

static int hub_join(struct ib_link *l)
{
    pthread_mutex_lock(&hub.lock);
    if (!hub.ec && (hub.ec = rdma_create_event_channel()) != NULL)
        fcntl(hub.ec->fd, F_SETFL, fcntl(hub.ec->fd, F_GETFL) | O_NONBLOCK);
    int ok = hub.ec != NULL;
    if (ok) {
        l->evq_tail = &l->evq;
        l->hub_next = hub.links;
        hub.links = l;
        hub.refs++;
    }
    pthread_mutex_unlock(&hub.lock);
    return ok ? 0 : -1;
}

/* No more events for l; the requests it had not taken are rejected. */
static void hub_leave(struct ib_link *l)
{
    pthread_mutex_lock(&hub.lock);
    struct ib_link **pp = &hub.links;
    while (*pp && *pp != l)
        pp = &(*pp)->hub_next;
    if (*pp)
        *pp = l->hub_next;
    struct ib_cm_ev *q = l->evq;
    l->evq = NULL;
    l->evq_tail = &l->evq;
    atomic_store_explicit(&l->nev, 0, memory_order_relaxed);
    pthread_mutex_unlock(&hub.lock);
    while (q) {
        struct ib_cm_ev *next = q->next;
        ev_free(q);
        q = next;
    }
}

/* After l's ids are destroyed: the last link closes the channel. */
static void hub_put(void)
{
    pthread_mutex_lock(&hub.lock);
    if (--hub.refs == 0 && !hub.reading) {
        rdma_destroy_event_channel(hub.ec);
        hub.ec = NULL;
    }
    pthread_mutex_unlock(&hub.lock);
}

static void hub_hand(struct rdma_cm_event *ev)
{
    struct ib_cm_ev *c = calloc(1, sizeof *c);
    struct rdma_cm_id *id = ev->event == RDMA_CM_EVENT_CONNECT_REQUEST ? ev->listen_id : ev->id;
    struct ib_link *owner = id ? id->context : NULL;
    struct rdma_cm_id *stranger = NULL;
    if (c) {
        c->event = ev->event;
        c->status = ev->status;
        if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
            c->id = ev->id;
            size_t n = ev->param.conn.private_data ? ev->param.conn.private_data_len : 0;
            c->len = (uint8_t)(n < sizeof c->data ? n : sizeof c->data);
            memcpy(c->data, ev->param.conn.private_data, c->len);
        }
    }
    pthread_mutex_lock(&hub.lock);
    struct ib_link *l = hub.links;
    while (l && l != owner)
        l = l->hub_next;
    if (l && c) {
        *l->evq_tail = c;
        l->evq_tail = &c->next;
        atomic_fetch_add_explicit(&l->nev, 1, memory_order_release);
        if (l->registered)
            kick(1);
        c = NULL;
    } else if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
        stranger = ev->id;
    }
    pthread_cond_broadcast(&hub.cond);
    pthread_mutex_unlock(&hub.lock);
    free(c);
    rdma_ack_cm_event(ev);
    if (stranger) {
        rdma_reject(stranger, NULL, 0);
        rdma_destroy_id(stranger);
    }
}

/* Hand out whatever the channel holds now (it does not block). */
static int hub_drain(void)
{
    struct rdma_cm_event *ev;
    int n = 0;
    while (rdma_get_cm_event(hub.ec, &ev) == 0) {
        hub_hand(ev);
        n++;
    }
    return n;
}

/* The progress thread saw the CM channel readable: it drains it as the
 * reader, unless a setup thread is the reader now (two readers would take
 * each other's events: the setup's poll would then sleep on a drained
 * channel while its event sat in its queue, and events of one id could
 * be queued out of order). Setups waiting meanwhile are woken by
 * hub_hand's broadcast. */
static void hub_read_as_progress(void)
{
    pthread_mutex_lock(&hub.lock);
    int mine = !hub.reading && hub.ec;
    hub.reading |= mine;
    pthread_mutex_unlock(&hub.lock);
    if (!mine)
        return;
    hub_drain();
    pthread_mutex_lock(&hub.lock);
    hub.reading = 0;
    if (hub.refs == 0 && hub.ec) { /* the last link left while this read */
        rdma_destroy_event_channel(hub.ec);
        hub.ec = NULL;
    }
    pthread_cond_broadcast(&hub.cond);
    pthread_mutex_unlock(&hub.lock);
}

/* l's oldest event, or NULL. */
static struct ib_cm_ev *hub_take(struct ib_link *l)
{
    if (!atomic_load_explicit(&l->nev, memory_order_acquire))
        return NULL;
    pthread_mutex_lock(&hub.lock);
    struct ib_cm_ev *c = l->evq;
    if (c) {
        l->evq = c->next;
        if (!l->evq)
            l->evq_tail = &l->evq;
        atomic_fetch_sub_explicit(&l->nev, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&hub.lock);
    return c;
}

/* The link cannot carry on: say why once, and disconnect, so that the peer
 * learns it now rather than when this end closes. */
static void link_gone(struct ib_link *l, const char *what)
{
    char d[32];
    if (atomic_exchange_explicit(&l->e.gone, 1, memory_order_acq_rel))
        return;
    ppu_transport_log(LOG_INFO, "net_ib: link %s (device %s, rank %d): %s", dir(l, d, sizeof d),
                      l->devname, l->e.peer, what);
    if (l->id && l->cm.up)
        rdma_disconnect(l->id);
}

static int post_recv(struct ib_link *l)
{
    struct ibv_recv_wr wr, *bad;
    memset(&wr, 0, sizeof wr);
    return ibv_post_recv(l->id->qp, &wr, &bad);
}

/* An 8-byte write with immediate into the other end's control block. */
static int post_ctl(struct ib_link *l, enum net_ib_imm_kind kind, uint64_t value)
{
    /* inline: the value is copied as it is posted; else its source slot
     * must stay until the write completed, so it is signaled */
    if (!net_ib_cm_may_send(&l->cm)) /* iWARP: nothing before the active side's first write */
        return 0;
    int inl = net_ib_ctl_inline(l->max_inline);
    unsigned k = l->ctl_next % CTL_SLOTS;
    if (!inl && l->ctl_seq[k] > l->sq.done)
        return 0;
    int sig = net_ib_sq_post(&l->sq, !inl || kind == NET_IB_IMM_FAIL);
    if (sig < 0)
        return 0;
    uint64_t seq = l->sq.posted - 1;
    l->sq_data[seq % l->sq.depth] = l->posted;
    l->ctl_seq[k] = seq + 1;
    l->ctl_next++;
    if (kind == NET_IB_IMM_FAIL)
        l->notice_seq = seq + 1;
    l->ctl->src[k] = value;
    struct ibv_sge sge = {(uintptr_t)&l->ctl->src[k], 8, l->ctl_mr->lkey};
    struct ibv_send_wr wr, *bad;
    memset(&wr, 0, sizeof wr);
    wr.wr_id = seq << 2 | WR_CTL;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
    wr.send_flags = (sig ? IBV_SEND_SIGNALED : 0) | (inl ? IBV_SEND_INLINE : 0);
    wr.imm_data = htonl(net_ib_imm(kind, value));
    wr.wr.rdma.remote_addr = l->r_ctl + (kind == NET_IB_IMM_CREDIT
                                             ? offsetof(struct net_ib_ctl, credit)
                                             : offsetof(struct net_ib_ctl, failed));
    wr.wr.rdma.rkey = l->r_ctl_rkey;
    int e = ibv_post_send(l->id->qp, &wr, &bad);
    if (e) {
        char m[96];
        snprintf(m, sizeof m, "posting a control write failed: %s", strerror(e));
        link_gone(l, m);
        return 0;
    }
    return 1;
}

/* Sender: post every message the receiver has credit for. */
static int post_data(struct ib_link *l)
{
    int moved = 0;
    struct net_frame fr;
    const void *payload;
    while (net_end_next(&l->e, l->posted, &fr, &payload)) {
        /* the last of the batch is signaled, so the sender hears that all
         * left (drain, slot reuse) */
        struct net_frame more;
        const void *more_at;
        int sig = net_ib_sq_post(&l->sq, !net_end_next(&l->e, l->posted + 1, &more, &more_at));
        if (sig < 0)
            break; /* full: a signaled write in it will free it */
        uint64_t seq = l->sq.posted - 1;
        l->sq_data[seq % l->sq.depth] = l->posted + 1;
        size_t k = (size_t)(l->posted % (uint64_t)l->e.nslots);
        char *base = l->e.slots + k * l->e.stride;
        memcpy(base, &fr, sizeof fr);
        /* the payload is in the slot, after the header; or the caller's
         * registered memory (send_ref): gather the two */
        int ref = payload != base + NET_IB_HDR && fr.bytes;
        struct ibv_sge sge[2] = {
            {(uintptr_t)base, (uint32_t)(NET_IB_HDR + (ref ? 0 : fr.bytes)), l->slots_mr->lkey},
            {(uintptr_t)payload, (uint32_t)fr.bytes, ref ? l->ref_lkey[k] : 0}};
        struct ibv_send_wr wr, *bad;
        memset(&wr, 0, sizeof wr);
        wr.wr_id = seq << 2 | WR_DATA;
        wr.sg_list = sge;
        wr.num_sge = ref ? 2 : 1;
        wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
        wr.send_flags = sig ? IBV_SEND_SIGNALED : 0;
        wr.imm_data = htonl(net_ib_imm(NET_IB_IMM_DATA, l->posted));
        wr.wr.rdma.remote_addr = l->r_slots + k * l->r_stride;
        wr.wr.rdma.rkey = l->r_slots_rkey;
        int e = ibv_post_send(l->id->qp, &wr, &bad);
        if (e) {
            char m[96];
            snprintf(m, sizeof m, "posting message %llu failed: %s",
                     (unsigned long long)l->posted, strerror(e));
            link_gone(l, m);
            return 1;
        }
        l->posted++;
        moved = 1;
    }
    return moved;
}

/* Receiver: message recv_next has arrived (its write of len bytes
 * completed). */
static void take_data(struct ib_link *l, uint32_t len)
{
    struct net_frame fr;
    const char *why = NULL;
    size_t k = (size_t)(l->recv_next % (uint64_t)l->e.nslots);
    const char *base = l->e.slots + k * l->e.stride;
    int t = net_check_frame(base, sizeof fr, 1, l->recv_next, l->e.slot_bytes, &fr, &why);
    if (t == NET_FRAME_DATA && !net_ib_write_len_ok(len, NET_IB_HDR + fr.bytes))
        t = 0, why = "a write's length is not its header's";
    if (t != NET_FRAME_DATA || !net_end_slot_for(&l->e, &fr, &why)) {
        net_end_broken(&l->e, "queue pair", &fr, l->recv_next,
                       why ? why : "a data write carried another frame");
        return;
    }
    net_end_landed(&l->e, &fr);
    l->recv_next++;
}

static int poll_cq(struct ib_link *l)
{
    struct ibv_wc wc[16];
    int moved = 0, n = 0;
    while (l->cq && (n = ibv_poll_cq(l->cq, 16, wc)) > 0) { /* none once released */
        moved = 1;
        for (int i = 0; i < n; i++) {
            struct ibv_wc *w = &wc[i];
            if (w->status != IBV_WC_SUCCESS) {
                char m[160];
                snprintf(m, sizeof m, "completion error %s (status %d, vendor error 0x%x) on a "
                         "%s", ibv_wc_status_str(w->status), (int)w->status, w->vendor_err,
                         (w->wr_id & WR_DATA)  ? "data write"
                         : (w->wr_id & WR_CTL) ? "control write"
                                               : "receive");
                link_gone(l, m);
                continue;
            }
            if (w->wr_id & (WR_DATA | WR_CTL)) {
                /* a signaled write: it and every request before it are done */
                uint64_t seq = w->wr_id >> 2;
                net_ib_sq_done(&l->sq, seq);
                if (l->e.send)
                    net_end_sent(&l->e, l->sq_data[seq % l->sq.depth]);
                if (l->notice_seq && l->sq.done >= l->notice_seq)
                    atomic_store_explicit(&l->notice_done, 1, memory_order_release);
                continue;
            }
            if (!l->cm.heard)
                net_ib_cm_heard(&l->cm);
            const char *why = NULL;
            uint32_t imm = ntohl(w->imm_data);
            int kind = (w->wc_flags & IBV_WC_WITH_IMM)
                           ? net_ib_check_imm(imm, !l->e.send, l->recv_next, &why)
                           : -1;
            if (kind == NET_IB_IMM_DATA) {
                take_data(l, w->byte_len);
            } else if (kind == NET_IB_IMM_CREDIT) {
                /* the count from the immediate's low bits (it grows by less
                 * than 2^30 a report), not from the control block, which a
                 * later write may be changing under this read */
                uint64_t c = l->credit_seen +
                             ((imm - (uint32_t)l->credit_seen) & NET_IB_IMM_MASK);
                if (c > l->credit_seen && !net_end_credit_in(&l->e, c, &why)) {
                    struct net_frame f = {NET_MAGIC_FRAME, NET_FRAME_CREDIT, c, 0, {0, 0}, 0};
                    net_end_broken(&l->e, "queue pair", &f, l->credit_seen, why);
                }
                l->credit_seen = c > l->credit_seen ? c : l->credit_seen;
            } else if (kind == NET_IB_IMM_FAIL) {
                net_end_notice(&l->e);
            } else {
                struct net_frame f = {imm, 0, l->recv_next, w->byte_len, {0, 0}, 0};
                net_end_broken(&l->e, "queue pair", &f, l->recv_next,
                               why ? why : "a write without immediate data arrived");
            }
            if (post_recv(l) != 0)
                link_gone(l, "cannot post a receive");
        }
    }
    if (n < 0)
        link_gone(l, "polling the completion queue failed");
    return moved;
}

static enum net_ib_cm_ev cm_ev(enum rdma_cm_event_type t)
{
    switch (t) {
    case RDMA_CM_EVENT_CONNECT_REQUEST: return NET_IB_EV_CONNECT_REQUEST;
    case RDMA_CM_EVENT_CONNECT_RESPONSE: return NET_IB_EV_CONNECT_RESPONSE;
    case RDMA_CM_EVENT_ESTABLISHED: return NET_IB_EV_ESTABLISHED;
    case RDMA_CM_EVENT_REJECTED: return NET_IB_EV_REJECTED;
    case RDMA_CM_EVENT_UNREACHABLE: return NET_IB_EV_UNREACHABLE;
    case RDMA_CM_EVENT_CONNECT_ERROR: return NET_IB_EV_CONNECT_ERROR;
    case RDMA_CM_EVENT_DISCONNECTED:
    case RDMA_CM_EVENT_TIMEWAIT_EXIT: return NET_IB_EV_DISCONNECTED;
    case RDMA_CM_EVENT_DEVICE_REMOVAL: return NET_IB_EV_DEVICE_REMOVAL;
    default: return NET_IB_EV_OTHER;
    }
}

/* Disconnects and other events after setup. */
static void cm_events(struct ib_link *l)
{
    struct ib_cm_ev *ev;
    while ((ev = hub_take(l)) != NULL) {
        enum rdma_cm_event_type t = ev->event;
        ev_free(ev); /* a request: nobody asks after setup */
        struct net_ib_cm after = l->cm; /* set up: only an ending can change it */
        enum net_ib_cm_act act = t == RDMA_CM_EVENT_CONNECT_REQUEST
                                     ? NET_IB_ACT_NONE : net_ib_cm_step(&after, cm_ev(t));
        if (act == NET_IB_ACT_FAIL || act == NET_IB_ACT_RELEASE) {
            /* what the peer wrote before it left is in the completion
             * queue, ahead of any flush: take it first */
            poll_cq(l);
            char m[96];
            snprintf(m, sizeof m, "connection ended (%s)", rdma_event_str(t));
            link_gone(l, m);
        }
        if (act == NET_IB_ACT_RELEASE) { /* the kernel waits for these to go */
            link_release(l);
            ppu_transport_log(LOG_WARN, "net_ib: device %s is being removed: link %d->%d "
                              "released it", l->devname, l->e.send ? l->e.self : l->e.peer,
                              l->e.send ? l->e.peer : l->e.self);
        }
    }
}

static int serve(struct ib_link *l)
{
    int moved = poll_cq(l); /* also when gone: messages that arrived still count */
    /* events first, also when gone: a removed device is usually seen as
     * flushed completions or a fatal async event before the CM's
     * DEVICE_REMOVAL, which must still release the link's resources */
    if (atomic_load_explicit(&l->nev, memory_order_acquire))
        cm_events(l);
    if (atomic_load_explicit(&l->e.gone, memory_order_acquire))
        return 0;
    if (!atomic_load_explicit(&l->notice_sent, memory_order_relaxed) &&
        atomic_load_explicit(&l->e.local_failed, memory_order_acquire) &&
        post_ctl(l, NET_IB_IMM_FAIL, 1)) {
        atomic_store_explicit(&l->notice_sent, 1, memory_order_release);
        moved = 1;
    }
    uint64_t seq;
    /* after this end's call failed, its data means nothing: only the notice goes */
    if (l->e.send && !atomic_load_explicit(&l->e.local_failed, memory_order_acquire))
        moved |= post_data(l);
    else if (net_end_credit_due(&l->e, &seq) && post_ctl(l, NET_IB_IMM_CREDIT, seq)) {
        net_end_credit_sent(&l->e, seq);
        moved = 1;
    }
    return moved;
}

static enum net_ib_async async_kind(enum ibv_event_type t)
{
    switch (t) {
    case IBV_EVENT_DEVICE_FATAL: return NET_IB_ASYNC_DEVICE_FATAL;
    case IBV_EVENT_PORT_ERR: return NET_IB_ASYNC_PORT_DOWN;
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR: return NET_IB_ASYNC_QP_ERROR;
    case IBV_EVENT_CQ_ERR: return NET_IB_ASYNC_CQ_ERROR;
    default: return NET_IB_ASYNC_OTHER;
    }
}

/* The device's asynchronous events (its async fd is non-blocking): each
 * ends the links it concerns (net_ib_async_ends), naming device and port. */
static void async_events(struct ib_dev *d, struct net_end **links, int n)
{
    struct ibv_async_event ae;
    while (ibv_get_async_event(d->ctx, &ae) == 0) {
        enum net_ib_async k = async_kind(ae.event_type);
        unsigned port = k == NET_IB_ASYNC_PORT_DOWN ? (unsigned)ae.element.port_num : 0;
        for (int i = 0; i < n; i++) {
            struct ib_link *l = (struct ib_link *)links[i];
            if (l->dev != d || !l->id)
                continue;
            int mine = (k == NET_IB_ASYNC_QP_ERROR && ae.element.qp == l->id->qp) ||
                       (k == NET_IB_ASYNC_CQ_ERROR && ae.element.cq == l->cq);
            if (net_ib_async_ends(k, port, l->id->port_num, mine)) {
                char m[128];
                snprintf(m, sizeof m, "device %s port %u: %s", l->devname,
                         port ? port : l->id->port_num, ibv_event_type_str(ae.event_type));
                link_gone(l, m);
            }
        }
        ibv_ack_async_event(&ae);
    }
}

static int ib_round(struct net_progress *pg, struct net_end **links, int n, int nap_ms,
                    int wake_fd)
{
    int moved = 0;
    for (int i = 0; i < n; i++)
        moved |= serve((struct ib_link *)links[i]);
    if (moved || nap_ms <= 0)
        return moved;
    /* Nap: arm every completion queue, look once more (a completion
     * before the arming raises no event), then sleep on the channels. */
    for (int i = 0; i < n; i++)
        if (((struct ib_link *)links[i])->cq)
            ibv_req_notify_cq(((struct ib_link *)links[i])->cq, 0);
    for (int i = 0; i < n; i++)
        moved |= serve((struct ib_link *)links[i]);
    if (moved)
        return moved;
    /* the devices' completion channels, the connection manager's, the
     * wake-up (net_ib_poll_set): a handful of descriptors for any number
     * of links */
    size_t need = (size_t)(2 * n + 2) * (2 * sizeof(int) + sizeof(struct pollfd));
    if (pg->scratch_bytes < need) {
        void *m = realloc(pg->scratch, need);
        if (!m) {
            struct pollfd w = {wake_fd, POLLIN, 0};
            if (poll(&w, 1, 1) > 0)
                net_progress_woken(pg, wake_fd);
            return 1;
        }
        pg->scratch = m;
        pg->scratch_bytes = need;
    }
    int *chan = pg->scratch, *set = chan + 2 * n + 2;
    struct pollfd *pf = (struct pollfd *)(set + 2 * n + 2);
    for (int i = 0; i < n; i++) {
        struct ib_dev *d = ((struct ib_link *)links[i])->dev; /* NULL: released */
        chan[2 * i] = d ? d->cc->fd : -1; /* poll passes over -1 */
        chan[2 * i + 1] = d ? d->ctx->async_fd : -1;
    }
    int np = net_ib_poll_set(chan, 2 * n, hub.ec->fd, wake_fd, set);
    for (int k = 0; k < np; k++)
        pf[k] = (struct pollfd){set[k], POLLIN, 0};
    if (poll(pf, (nfds_t)np, nap_ms) > 0) {
        if (pf[np - 1].revents & POLLIN)
            net_progress_woken(pg, wake_fd);
        if (pf[np - 2].revents & POLLIN)
            hub_read_as_progress();
        for (int k = 0; k < np - 2; k++) {
            if (!(pf[k].revents & POLLIN))
                continue;
            int i = 0; /* the device of this descriptor: a link on it */
            while (chan[i] != pf[k].fd)
                i++;
            struct ib_dev *d = ((struct ib_link *)links[i / 2])->dev;
            struct ibv_cq *cq;
            void *cctx;
            if (i % 2)
                async_events(d, links, n);
            else
                while (ibv_get_cq_event(d->cc, &cq, &cctx) == 0) /* served next round */
                    ibv_ack_cq_events(cq, 1);
        }
        moved = 1;
    }
    return moved;
}

/* ---- setup ---- */

/* What l holds of its device, in the order the device needs it gone: the
 * queue pair, completion queue and memory, the protection domain (with
 * the last link on the device), then the cm ids, after which rdmacm can
 * close the device. At close, or at once when the device is removed. */
static void link_release(struct ib_link *l)
{
    if (l->id) {
        if (l->cm.up)
            rdma_disconnect(l->id);
        if (l->id->qp)
            rdma_destroy_qp(l->id);
    }
    if (l->cq)
        ibv_destroy_cq(l->cq);
    if (l->slots_mr)
        ibv_dereg_mr(l->slots_mr);
    if (l->ctl_mr)
        ibv_dereg_mr(l->ctl_mr);
    pthread_mutex_lock(&l->dev_lock); /* send_ref may be registering in its domain */
    dev_put(l->dev); /* the protection domain, once nothing in it is left */
    l->dev = NULL;
    pthread_mutex_unlock(&l->dev_lock);
    if (l->id)
        rdma_destroy_id(l->id);
    if (l->listen)
        rdma_destroy_id(l->listen);
    l->id = l->listen = NULL;
    l->cq = NULL;
    l->slots_mr = l->ctl_mr = NULL;
}

static void link_free(struct ib_link *l)
{
    if (!l)
        return;
    if (l->evq_tail)
        hub_leave(l); /* no more events handed to l */
    link_release(l);
    pthread_mutex_destroy(&l->dev_lock);
    if (l->evq_tail)
        hub_put();
    free(l->ctl);
    free(l->ref_lkey);
    free(l->sq_data);
    net_end_free(&l->e);
    free(l);
}

static struct ib_link *link_alloc(const struct ppu_link_params *p, int send)
{
    size_t sz = (sizeof(struct ib_link) + 63) & ~(size_t)63;
    struct ib_link *l = aligned_alloc(64, sz);
    if (!l)
        return NULL;
    memset(l, 0, sz);
    l->setup_timeout_ms = p->setup_timeout_ms > 0 ? p->setup_timeout_ms : 60000;
    l->ack_timeout = p->ib_timeout;
    l->close_timeout_ms = p->close_timeout_ms > 0 ? p->close_timeout_ms : 60000;
    snprintf(l->devname, sizeof l->devname, "?");
    pthread_mutex_init(&l->dev_lock, NULL);
    l->ctl = aligned_alloc(64, (sizeof *l->ctl + 63) & ~(size_t)63);
    if (!l->ctl || net_end_init(&l->e, "net_ib", p, send, NET_IB_HDR, kick) != PPU_SUCCESS) {
        free(l->ctl);
        free(l);
        return NULL;
    }
    memset(l->ctl, 0, sizeof *l->ctl);
    if (hub_join(l) != 0) {
        link_free(l);
        return NULL;
    }
    return l;
}

/* Bytes this process has pinned (VmPin: what RLIMIT_MEMLOCK counts for
 * registered memory); 0 when the kernel does not say. */
static size_t pinned_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmPin: %llu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return (size_t)kb * 1024;
}

/* The protection domain of ctx, and this end's memory registered in it. */
static int link_memory(struct ib_link *l, struct ibv_context *ctx)
{
    snprintf(l->devname, sizeof l->devname, "%s", ibv_get_device_name(ctx->device));
    /* iWARP's connection rules (net_ib_cm_may_send, private data) */
    l->cm.iwarp = ctx->device->transport_type == IBV_TRANSPORT_IWARP;
    l->dev = dev_get(ctx);
    if (!l->dev)
        return -1;
    int acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
    /* the peer writes only into a receiver's slots, and into control blocks */
    l->slots_mr = ibv_reg_mr(l->dev->pd, l->e.slots, (size_t)l->e.nslots * l->e.stride,
                             l->e.send ? IBV_ACCESS_LOCAL_WRITE : acc);
    l->ctl_mr = ibv_reg_mr(l->dev->pd, l->ctl, sizeof *l->ctl, acc);
    if (l->slots_mr && l->ctl_mr)
        return 0;
    int err = errno;
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    getrlimit(RLIMIT_MEMLOCK, &rl);
    char why[400];
    net_ib_reg_failed(err, (size_t)l->e.nslots * l->e.stride + sizeof *l->ctl, pinned_bytes(),
                      (unsigned long long)rl.rlim_cur, geteuid() == 0, why, sizeof why);
    ppu_transport_log(1, "net_ib: %s", why);
    return -1;
}

/* Completion queue and queue pair on id, receives posted. */
static int link_qp(struct ib_link *l, struct rdma_cm_id *id)
{
    int depth = l->e.nslots + NET_IB_EXTRA_RECVS + CTL_SLOTS;
    /* what the device can take: say which limit a setting passes, rather
     * than a bare EINVAL from the create calls */
    struct ibv_device_attr da;
    struct ibv_port_attr pa;
    int queried = ibv_query_device(id->verbs, &da) == 0;
    if ((!queried || da.max_sge < 2) && l->ref_lkey) { /* no gathers: copy every message */
        free(l->ref_lkey);
        l->ref_lkey = NULL;
    }
    if (queried && (depth > da.max_qp_wr || 2 * depth > da.max_cqe)) {
        ppu_transport_log(LOG_WARN, "net_ib: device %s takes %d work requests a queue pair and "
                          "%d completions a queue; PPU_FIFO_SLOTS=%d needs %d and %d: lower it",
                          l->devname, da.max_qp_wr, da.max_cqe, l->e.nslots, depth, 2 * depth);
        errno = EINVAL;
        return -1;
    }
    if (ibv_query_port(id->verbs, id->port_num, &pa) == 0 && pa.max_msg_sz &&
        NET_IB_HDR + l->e.slot_bytes > pa.max_msg_sz) {
        ppu_transport_log(LOG_WARN, "net_ib: device %s port %u sends at most %u bytes a message; "
                          "%zu-byte slots need %zu: lower PPU_CHUNK_SIZE", l->devname,
                          id->port_num, pa.max_msg_sz, l->e.slot_bytes,
                          (size_t)NET_IB_HDR + l->e.slot_bytes);
        errno = EINVAL;
        return -1;
    }
    l->cq = ibv_create_cq(id->verbs, 2 * depth, l, l->dev->cc, 0);
    if (!l->cq)
        return -1;
    struct ibv_qp_init_attr qa;
    memset(&qa, 0, sizeof qa);
    qa.send_cq = l->cq;
    qa.recv_cq = l->cq;
    qa.qp_type = IBV_QPT_RC;
    qa.cap.max_send_wr = (uint32_t)depth;
    qa.cap.max_recv_wr = (uint32_t)(l->e.nslots + NET_IB_EXTRA_RECVS);
    qa.cap.max_send_sge = l->ref_lkey ? 2 : 1;
    qa.cap.max_recv_sge = 1;
    qa.cap.max_inline_data = 8; /* control writes (net_ib_ctl_inline) */
    l->sq_data = calloc((size_t)depth, sizeof *l->sq_data);
    if (!l->sq_data)
        return -1;
    if (rdma_create_qp(id, l->dev->pd, &qa) != 0) {
        qa.cap.max_inline_data = 0; /* a device without inline data */
        if (rdma_create_qp(id, l->dev->pd, &qa) != 0)
            return -1;
    }
    l->max_inline = qa.cap.max_inline_data; /* what the device granted */
    l->sq = (struct net_ib_sq){.depth = qa.cap.max_send_wr < (uint32_t)depth
                                            ? qa.cap.max_send_wr : (uint32_t)depth};
    l->sq.every = l->sq.depth / 2 ? l->sq.depth / 2 : 1;
    l->id = id;
    for (int i = 0; i < l->e.nslots + NET_IB_EXTRA_RECVS; i++)
        if (post_recv(l) != 0)
            return -1;
    return 0;
}

/* The next connection manager event, within deadline: 0, or -1 (timed
 * out, or the channel failed). */
static int next_event(struct ib_link *l, uint64_t deadline, struct ib_cm_ev **ev)
{
    for (;;) {
        if ((*ev = hub_take(l)) != NULL)
            return 0;
        int left = ppu_ms_until(deadline);
        if (left <= 0)
            return -1;
        pthread_mutex_lock(&hub.lock);
        if (atomic_load_explicit(&l->nev, memory_order_relaxed)) {
            pthread_mutex_unlock(&hub.lock);
            continue;
        }
        if (!hub.reading) { /* read the channel for every link */
            hub.reading = 1;
            pthread_mutex_unlock(&hub.lock);
            struct pollfd pf = {hub.ec->fd, POLLIN, 0};
            poll(&pf, 1, left < 100 ? left : 100);
            hub_drain();
            pthread_mutex_lock(&hub.lock);
            hub.reading = 0;
            pthread_cond_broadcast(&hub.cond);
        } else { /* another setup reads it: wait for what it hands out */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&hub.cond, &hub.lock, &ts);
        }
        pthread_mutex_unlock(&hub.lock);
    }
}

/* Wait for one event of type want on id; anything else is a failure. */
static ppu_result_t expect_event(struct ib_link *l, enum rdma_cm_event_type want,
                                 uint64_t deadline, const char *step)
{
    struct ib_cm_ev *ev;
    char d[32];
    if (next_event(l, deadline, &ev) != 0) {
        ppu_transport_log(LOG_WARN, "net_ib: link %s: %s: no answer within %d ms",
                          dir(l, d, sizeof d), step, l->setup_timeout_ms);
        return PPU_TIMEOUT;
    }
    enum rdma_cm_event_type t = ev->event;
    int status = ev->status;
    ev_free(ev); /* a request to a sender: nobody should ask */
    if (t == want)
        return PPU_SUCCESS;
    ppu_transport_log(LOG_WARN, "net_ib: link %s (device %s, rank %d): %s: got %s (status %d)",
                      dir(l, d, sizeof d), l->devname, l->e.peer, step, rdma_event_str(t), status);
    return PPU_SYSTEM_ERROR;
}

/* This rank's address (net_ib_choose): where its links listen and where
 * its connections come from, on the device PPU_IB_HCA names or the one
 * that has the address TCP takes. */
static int link_addr(struct ib_link *l, const struct ppu_link_params *p, union ppu_sockaddr *a,
                     int *iwarp)
{
    char what[400], d[32];
    if (ib_where(p->ib_hca, (const struct sockaddr *)&p->listen_addr, a, iwarp, what,
                 sizeof what))
        return 0;
    ppu_transport_log(LOG_WARN, "net_ib: link %s: no address on an RDMA device: %s",
                      dir(l, d, sizeof d), what);
    return -1;
}

static ppu_result_t net_ib_recv_setup(struct ppu_link *link, void *info_out)
{
    const struct ppu_link_params *p = &link->params;
    struct ib_link *l = link_alloc(p, 0);
    char ab[64] = "?";
    if (!l)
        return PPU_SYSTEM_ERROR;
    union ppu_sockaddr a;
    if (link_addr(l, p, &a, NULL) != 0)
        goto fail;
    int fam = a.sa.sa_family;
    struct net_ib_info info;
    memset(&info, 0, sizeof info);
    net_addr_pack(&a, &info.port, &info.scope_id, info.addr);
    net_addr_unpack(fam, 0, info.scope_id, info.addr, &a); /* any port */
    ppu_socket_str(&a, ab, sizeof ab);
    if (getrandom(l->nonce, sizeof l->nonce, 0) != (ssize_t)sizeof l->nonce ||
        rdma_create_id(hub.ec, &l->listen, l, RDMA_PS_TCP) != 0)
        goto fail;
    int bound = rdma_bind_addr(l->listen, &a.sa) == 0;
    if (bound && set_tos(l, l->listen, p->ib_tc) != 0)
        goto fail;
    if (!bound || !l->listen->verbs) {
        ppu_transport_log(LOG_WARN, "net_ib: rank %d cannot listen for RDMA connections on %s: "
                          "%s (set PPU_IB_HCA to an RDMA device, or PPU_SOCKET_IFNAME to its "
                          "interface)", p->self_rank, ab,
                          bound ? "no RDMA device has this address" : strerror(errno));
        goto fail;
    }
    if (link_memory(l, l->listen->verbs) != 0 || rdma_listen(l->listen, 16) != 0) {
        ppu_transport_log(LOG_WARN, "net_ib: rank %d: device %s: cannot register %zu bytes or "
                          "listen: %s", p->self_rank, l->devname,
                          (size_t)p->nslots * l->e.stride, strerror(errno));
        goto fail;
    }
    info.magic = NET_IB_MAGIC_INFO;
    info.version = NET_IB_VERSION;
    info.family = (uint16_t)fam;
    info.port = ntohs(rdma_get_src_port(l->listen));
    memcpy(info.nonce, l->nonce, sizeof info.nonce);
    info.slot_bytes = p->slot_bytes;
    info.nslots = (uint32_t)p->nslots;
    info.slots_addr = (uintptr_t)l->e.slots;
    info.slots_rkey = l->slots_mr->rkey;
    info.stride = l->e.stride;
    info.ctl_addr = (uintptr_t)l->ctl;
    info.ctl_rkey = l->ctl_mr->rkey;
    memset(info_out, 0, PPU_CONNECT_INFO_BYTES);
    memcpy(info_out, &info, sizeof info);
    ppu_transport_log(LOG_TRACE, "net_ib: link %d->%d listens on %s port %u (device %s)",
                      p->peer_rank, p->self_rank, ab, info.port, l->devname);
    link->priv = l;
    link->direct = 0;
    return PPU_SUCCESS;
fail:
    link_free(l);
    return PPU_SYSTEM_ERROR;
}

static ppu_result_t net_ib_send_connect(struct ppu_link *link, const void *info_in)
{
    const struct ppu_link_params *p = &link->params;
    struct net_ib_info info;
    const char *why = NULL;
    ib_refusal[0] = '\0';
    if (net_ib_check_info(info_in, PPU_CONNECT_INFO_BYTES, p->slot_bytes, (uint32_t)p->nslots,
                          &info, &why) != 0) {
        ppu_transport_log(LOG_WARN, "net_ib: link %d->%d: %s", p->self_rank, p->peer_rank, why);
        return PPU_INVALID_USAGE;
    }
    struct ib_link *l = link_alloc(p, 1);
    if (!l)
        return PPU_SYSTEM_ERROR;
    if (p->allow_direct) /* without it every message is copied into a slot */
        l->ref_lkey = calloc((size_t)l->e.nslots, sizeof *l->ref_lkey);
    l->r_slots = info.slots_addr;
    l->r_slots_rkey = info.slots_rkey;
    l->r_stride = info.stride;
    l->r_ctl = info.ctl_addr;
    l->r_ctl_rkey = info.ctl_rkey;
    union ppu_sockaddr a, src;
    int iwarp = 0;
    if (link_addr(l, p, &src, &iwarp) != 0) {
        link_free(l);
        return PPU_SYSTEM_ERROR;
    }
    net_addr_unpack(info.family, info.port, info.scope_id, info.addr, &a);
    char ab[INET6_ADDRSTRLEN] = "?";
    inet_ntop(info.family, info.addr, ab, sizeof ab);
    /* iWARP cannot reach this host's own addresses: say so now, rather
     * than after a connection attempt that cannot work */
    struct net_ib_ifaddr *mine = NULL;
    int nmine = 0;
    char where[96];
    ib_where(p->ib_hca, (const struct sockaddr *)&p->listen_addr, &src, NULL, where,
             sizeof where);
    where[strcspn(where, ",")] = '\0'; /* the device's name */
    if (iwarp && local_addrs(&mine, &nmine) == 0 &&
        net_ib_loopback_refused(iwarp, &a.sa, mine, nmine, p->peer_rank, where, ib_refusal,
                                sizeof ib_refusal)) {
        ppu_transport_log(LOG_WARN, "net_ib: link %d->%d: %s", l->e.self, l->e.peer, ib_refusal);
        free(mine);
        link_free(l);
        return PPU_INVALID_USAGE;
    }
    free(mine);
    uint64_t deadline = ppu_now_ns() + (uint64_t)l->setup_timeout_ms * 1000000ull;
    struct rdma_cm_id *id = NULL;
    ppu_result_t r = PPU_SYSTEM_ERROR;
    if (rdma_create_id(hub.ec, &id, l, RDMA_PS_TCP) != 0)
        goto fail;
    l->id = id; /* freed with the link from here on */
    /* from this rank's RDMA address: PPU_IB_HCA's device, not the route's choice */
    if (rdma_resolve_addr(id, &src.sa, &a.sa, RESOLVE_MS) != 0 ||
        (r = expect_event(l, RDMA_CM_EVENT_ADDR_RESOLVED, deadline, "resolving the address")) !=
            PPU_SUCCESS || set_tos(l, id, link->params.ib_tc) != 0 ||
        rdma_resolve_route(id, RESOLVE_MS) != 0 ||
        (r = expect_event(l, RDMA_CM_EVENT_ROUTE_RESOLVED, deadline, "resolving the route")) !=
            PPU_SUCCESS) {
        ppu_transport_log(LOG_WARN, "net_ib: link %d->%d: no RDMA route to %s port %u",
                          l->e.self, l->e.peer, ab, info.port);
        r = r == PPU_SUCCESS ? PPU_SYSTEM_ERROR : r;
        goto fail;
    }
    l->id = NULL;
    if (link_memory(l, id->verbs) != 0 || link_qp(l, id) != 0) {
        l->id = id;
        ppu_transport_log(LOG_WARN, "net_ib: link %d->%d: device %s: cannot set up the queue "
                          "pair or register memory: %s", l->e.self, l->e.peer, l->devname,
                          strerror(errno));
        r = PPU_SYSTEM_ERROR;
        goto fail;
    }
    struct net_ib_req q;
    memset(&q, 0, sizeof q);
    q.magic = NET_IB_MAGIC_REQ;
    q.version = NET_IB_VERSION;
    memcpy(q.nonce, info.nonce, sizeof q.nonce);
    q.ctl_addr = (uintptr_t)l->ctl;
    q.ctl_rkey = l->ctl_mr->rkey;
    q.sender_rank = l->e.self;
    char pwhy[160];
    if (!net_ib_pdata_fits(l->cm.iwarp, 0, sizeof q, pwhy, sizeof pwhy)) {
        ppu_transport_log(LOG_WARN, "net_ib: link %d->%d: device %s: %s", l->e.self, l->e.peer,
                          l->devname, pwhy);
        r = PPU_INTERNAL_ERROR;
        goto fail;
    }
    struct rdma_conn_param cp;
    memset(&cp, 0, sizeof cp);
    cp.private_data = &q;
    cp.private_data_len = sizeof q;
    cp.retry_count = (uint8_t)link->params.ib_retry; /* PPU_IB_RETRY_CNT; no RDMA reads */
    cp.rnr_retry_count = 7; /* 7: retry for ever while the peer has no receive posted */
    set_ack_timeout(l, id);
    if (rdma_connect(id, &cp) != 0) {
        ppu_transport_log(LOG_WARN, "net_ib: link %d->%d: device %s: connecting to %s port %u "
                          "failed: %s", l->e.self, l->e.peer, l->devname, ab, info.port,
                          strerror(errno));
        goto fail;
    }
    link->priv = l;
    link->direct = l->ref_lkey ? PPU_DIRECT_REGISTERED : PPU_DIRECT_NONE;
    return PPU_SUCCESS;
fail:
    link_free(l);
    return r;
}

static void *ib_reg(void *pd, void *addr, size_t bytes)
{
    /* the source of RDMA writes only: local read, which every region has */
    return ibv_reg_mr(pd, addr, bytes, 0);
}

static void ib_dereg(void *mr)
{
    ibv_dereg_mr(mr);
}

static uint64_t ib_key(void *mr)
{
    return ((struct ibv_mr *)mr)->lkey;
}

static const struct ppu_reg_ops ib_reg_ops = {"net_ib", ib_reg, ib_dereg, ib_key};

/* The core sends from src only when it lies in registered memory
 * (PPU_DIRECT_REGISTERED). Should registering it with this device fail,
 * the bytes are copied into the message's slot instead. */
static ppu_result_t net_ib_send_ref(struct ppu_link *link, const void *src, size_t bytes)
{
    struct ib_link *l = link->priv;
    void *slot;
    if (bytes > l->e.slot_bytes)
        return PPU_INTERNAL_ERROR;
    /* slot k is free (its last message has left) before its key changes */
    ppu_result_t r = net_end_send_reserve(link, &slot);
    if (r != PPU_SUCCESS)
        return r;
    uint64_t key;
    pthread_mutex_lock(&l->dev_lock); /* the device may be going (link_release) */
    int keyed = l->ref_lkey && l->dev &&
                ppu_reg_get(link->params.reg_owner, src, bytes, l->dev->pd, &ib_reg_ops, &key);
    pthread_mutex_unlock(&l->dev_lock);
    if (!keyed) {
        memcpy(slot, src, bytes);
        return net_end_send_commit(link, bytes);
    }
    l->ref_lkey[l->e.pos % (uint64_t)l->e.nslots] = (uint32_t)key;
    return net_end_send_ref(link, src, bytes);
}

static ppu_result_t net_ib_recv_finish(struct ppu_link *link)
{
    struct ib_link *l = link->priv;
    uint64_t deadline = ppu_now_ns() + (uint64_t)l->setup_timeout_ms * 1000000ull;
    char d[32];
    dir(l, d, sizeof d);
    /* Up once rdma_accept succeeded: the sender's RTU comes only when its
     * application reads CONNECT_RESPONSE, which it does after the core's
     * next message from this side (net_ib_cm_step says why). */
    l->cm.active = 0;
    while (!l->cm.up) {
        struct ib_cm_ev *ev;
        if (next_event(l, deadline, &ev) != 0) {
            ppu_transport_log(LOG_WARN, "net_ib: link %s: rank %d did not connect within "
                              "PPU_BOOTSTRAP_TIMEOUT_MS (%d ms)", d, l->e.peer,
                              l->setup_timeout_ms);
            return PPU_TIMEOUT;
        }
        enum rdma_cm_event_type t = ev->event;
        enum net_ib_cm_act act = net_ib_cm_step(&l->cm, cm_ev(t));
        if (act == NET_IB_ACT_REJECT) {
            ppu_transport_log(LOG_WARN, "net_ib: link %s: rejected a connection request: the "
                              "link has its sender already", d);
            ev_free(ev);
            continue;
        }
        if (act == NET_IB_ACT_ACCEPT) {
            struct net_ib_req q;
            const char *why = NULL;
            struct rdma_cm_id *cid = ev->id;
            if (net_ib_check_req(ev->data, ev->len, l->nonce, &q, &why) != 0) {
                ppu_transport_log(LOG_WARN, "net_ib: link %s: rejected a connection request: %s",
                                  d, why);
                net_ib_cm_accepted(&l->cm, -1);
                ev_free(ev);
                continue;
            }
            l->r_ctl = q.ctl_addr;
            l->r_ctl_rkey = q.ctl_rkey;
            struct rdma_conn_param cp;
            memset(&cp, 0, sizeof cp);
            cp.rnr_retry_count = 7;
            cp.retry_count = (uint8_t)link->params.ib_retry;
            set_ack_timeout(l, cid);
            if (link_qp(l, cid) != 0 || rdma_accept(cid, &cp) != 0) {
                ppu_transport_log(LOG_WARN, "net_ib: link %s (device %s): cannot accept rank "
                                  "%d: %s", d, l->devname, l->e.peer, strerror(errno));
                net_ib_cm_accepted(&l->cm, 0);
                rdma_reject(cid, NULL, 0); /* the sender hears now, not at its timeout */
                free(ev);
                if (l->id != cid)
                    rdma_destroy_id(cid);
                return PPU_SYSTEM_ERROR;
            }
            net_ib_cm_accepted(&l->cm, 1);
            free(ev);
        } else if (act != NET_IB_ACT_FAIL && act != NET_IB_ACT_RELEASE) {
            ev_free(ev); /* nothing this setup waits for */
        } else {
            int status = ev->status;
            free(ev);
            ppu_transport_log(LOG_WARN, "net_ib: link %s (device %s, rank %d): connection "
                              "failed: %s (status %d)", d, l->devname, l->e.peer,
                              rdma_event_str(t), status);
            return PPU_SYSTEM_ERROR;
        }
    }
    rdma_destroy_id(l->listen); /* no more requests are taken */
    l->listen = NULL;
    l->registered = 1; /* an event handed out from now on kicks the progress thread */
    ppu_result_t r = net_progress_add(&g, &l->e);
    l->registered = r == PPU_SUCCESS;
    return r;
}

static ppu_result_t net_ib_send_finish(struct ppu_link *link)
{
    struct ib_link *l = link->priv;
    uint64_t deadline = ppu_now_ns() + (uint64_t)l->setup_timeout_ms * 1000000ull;
    /* librdmacm turns CONNECT_RESPONSE into ESTABLISHED (sending the RTU)
     * as this reads it; either is the link up (net_ib_cm_step) */
    l->cm.active = 1;
    char d[32];
    dir(l, d, sizeof d);
    while (!l->cm.up) {
        struct ib_cm_ev *ev;
        if (next_event(l, deadline, &ev) != 0) {
            ppu_transport_log(LOG_WARN, "net_ib: link %s: connecting: no answer from rank %d "
                              "within %d ms", d, l->e.peer, l->setup_timeout_ms);
            return PPU_TIMEOUT;
        }
        enum rdma_cm_event_type t = ev->event;
        int status = ev->status;
        ev_free(ev);
        enum net_ib_cm_act act = net_ib_cm_step(&l->cm, cm_ev(t));
        if (act == NET_IB_ACT_FAIL || act == NET_IB_ACT_RELEASE) {
            ppu_transport_log(LOG_WARN, "net_ib: link %s (device %s, rank %d): connecting: %s "
                              "(status %d)", d, l->devname, l->e.peer, rdma_event_str(t), status);
            return PPU_SYSTEM_ERROR;
        }
    }
    l->registered = 1; /* an event handed out from now on kicks the progress thread */
    ppu_result_t r = net_progress_add(&g, &l->e);
    l->registered = r == PPU_SUCCESS;
    return r;
}

static int net_ib_peer_gone(struct ppu_link *link)
{
    struct ib_link *l = link->priv;
    return l && atomic_load_explicit(&l->e.gone, memory_order_acquire);
}

static void net_ib_close(struct ppu_link *link)
{
    struct ib_link *l = link->priv;
    if (!l)
        return;
    if (l->registered && l->e.send)
        net_end_drain(&l->e, l->close_timeout_ms);
    /* a failure notice still to go: wait (bounded) until its write
     * completed, not only until it was posted: destroying the queue pair
     * flushes it, and the peer would read "gone" and not "failed" */
    uint64_t t0 = ppu_now_ns();
    struct net_ib_cm cm = l->cm; /* a notice iWARP does not let this end post: no wait */
    while (l->registered &&
           (cm.heard = __atomic_load_n(&l->cm.heard, __ATOMIC_ACQUIRE), 1) &&
           net_ib_close_waits(atomic_load_explicit(&l->e.local_failed, memory_order_acquire),
                              atomic_load_explicit(&l->notice_done, memory_order_acquire) ||
                                  !net_ib_cm_may_send(&cm),
                              atomic_load_explicit(&l->e.gone, memory_order_acquire),
                              (int)((ppu_now_ns() - t0) / 1000000ull), NOTICE_MS)) {
        kick(1);
        usleep(1000);
    }
    if (l->registered)
        net_progress_remove(&g, &l->e);
    link_free(l);
    link->priv = NULL;
}

static const char *ib_why_failed(const struct ppu_link *link, int phase, ppu_result_t r,
                                 char *buf, size_t len)
{
    if (phase == 2 && r == PPU_INVALID_USAGE && ib_refusal[0])
        snprintf(buf, len, "%s", ib_refusal);
    else
        snprintf(buf, len, "%s", phase == 1 ? "an RDMA listener (PPU_IB_HCA); the log says more"
                                            : "see the log");
    return buf;
}

const struct ppu_transport_ops ppu_net_ib_ops = {
    .name = "net_ib",
    .why_failed = ib_why_failed,
    .recv_setup = net_ib_recv_setup,
    .send_connect = net_ib_send_connect,
    .recv_finish = net_ib_recv_finish,
    .send_finish = net_ib_send_finish,
    .send_reserve = net_end_send_reserve,
    .send_commit = net_end_send_commit,
    .send_ref = net_ib_send_ref,
    .send_drained = net_end_send_drained,
    .recv_peek = net_end_recv_peek,
    .recv_read = net_end_recv_read,
    .recv_release = net_end_recv_release,
    .peer_gone = net_ib_peer_gone,
    .set_failed = net_end_set_failed,
    .peer_failed = net_end_peer_failed,
    .close = net_ib_close,
};

#endif /* PPU_HAVE_IBVERBS */
