/* Network transport over TCP: a link between ranks on different servers is
 * a FIFO in each end's own memory plus nsocks TCP connections between
 * them. The FIFOs, credits, frame checks and ordering are the protocol
 * shared with net_ib (transports/net_common/net_proto.h); this file moves
 * its frames over sockets. One progress thread per process
 * (net_common/net_progress.h) serves every socket of every net link in one
 * poll() loop, so no wait of the core ever blocks on a socket, and a
 * rank's ICN links keep moving while its network is slow.
 *
 * Message i of a link travels on socket i % nsocks as a 48-byte frame
 * header (magic, type, sequence, length, the call stamp and checksum the
 * core checks) followed by the payload, straight from the sender's slot
 * (or the caller's memory, send_ref) into the receiver's slot i % nslots.
 * It leaves only when the receiver has credit for it; the receiver hands
 * credit back as a credit frame on socket 0, the one way nothing else
 * flows. The receiver knows from i which socket brings which message, so
 * several sockets carry one link at once. A frame with a bad magic, type
 * or sequence, longer than a slot, or without credit breaks the link: it
 * is logged, that socket is read no further (never past a slot), and the
 * link reports its peer failed.
 *
 * Setup, in the core's four phases: recv_setup joins the process's one
 * listener on the address the core chose (opened on any port when no link
 * waits on it) and publishes address, port and a random nonce;
 * send_connect connects nsocks sockets and writes a hello {magic, version,
 * nonce, index} on each; recv_finish takes connections until every index
 * arrived with the right nonce, handing those of other links in setup to
 * them and dropping and logging any other connection (wrong magic,
 * version or nonce, garbage, or no hello within PPU_BOOTSTRAP_TIMEOUT_MS) without
 * failing a link. The last link to finish closes the listener.
 *
 * Failure: a connection the peer closed or reset marks the link gone
 * (peer_gone), so a rank whose peer died stops waiting within the core's
 * 0.1 s check. set_failed sends a failure notice frame (sender -> receiver
 * on a socket between two messages; receiver -> sender on socket 0), which
 * the other end reports through peer_failed. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "../transport.h"
#include "net_socket.h"
#include "../net_common/net_progress.h"
#include "util/hash.h"
#include "util/param.h"
#include "util/socket.h" /* socket helpers shared with the bootstrap */
#include "util/wait.h"   /* ppu_now_ns, ppu_ms_until */

#define MAX_PENDING 32     /* connections recv_finish vets at once */
#define LOG_WARN 1
#define LOG_INFO 2
#define LOG_TRACE 3

struct net_sock {
    int fd;
    int dead;             /* EOF or error seen: not polled any more */
    uint64_t pos;         /* next message index this socket carries */
    _Atomic uint64_t out; /* send: pos once that message is out (update_done reads it) */
    size_t off;           /* send: header + payload bytes written; recv: header bytes read */
    size_t got;           /* recv: payload bytes read */
    struct net_frame fr;  /* the header being written or read */
    const char *payload;  /* send: where fr's payload is; recv: its slot */
    struct net_frame ctl; /* a failure notice or credit being written */
    size_t ctl_off;
    int ctl_on;
    struct net_frame in;  /* sender: a frame from the receiver being read */
    size_t in_off;
};

struct net_link {
    struct net_end e;          /* the FIFO and the protocol (net_proto.h); first */
    int nsocks;
    int nthreads;              /* progress threads serving it: thread k has sockets k mod n */
    _Atomic unsigned eof;      /* receiver: sockets the peer closed, a bit each */
    _Atomic int notice_queued; /* a failure notice is on its way */
    int registered;            /* known to the progress threads */
    int setup_timeout_ms, close_timeout_ms;
    struct acceptor *acc;      /* receiver: the listener it waits on until recv_finish */
    unsigned have;             /* receiver in setup: its sockets connected, a bit each */
    uint8_t nonce[NET_NONCE_BYTES];
    struct net_sock sock[NET_MAX_SOCKS];
};

static const char *dir(const struct net_link *l, char *buf, size_t len)
{
    return net_end_dir(&l->e, buf, len);
}

/* ---- the progress thread ---- */

static int sock_round(struct net_progress *g, struct net_end **links, int n, int nap_ms,
                      int wake_fd);
static int sock_help(struct net_progress *g, struct net_end **links, int n);
/* PPU_SOCKET_NTHREADS threads per process; thread k serves sockets
 * j = k mod nthreads of every link, so several carry a link's bytes at once
 * where cores allow. */
static struct net_progress g[NET_MAX_THREADS] = {
    NET_PROGRESS_INIT("ppu-net0", sock_round, sock_help),
    NET_PROGRESS_INIT("ppu-net1", sock_round, sock_help),
    NET_PROGRESS_INIT("ppu-net2", sock_round, sock_help),
    NET_PROGRESS_INIT("ppu-net3", sock_round, sock_help)};
static _Atomic int g_used = 1; /* threads any link of this process has used */
int net_socket_test_registered_only;

static void kick(int force)
{
    int n = atomic_load_explicit(&g_used, memory_order_relaxed);
    for (int k = 0; k < n; k++)
        net_progress_kick(&g[k], force);
}

static void sock_dead(struct net_link *l, int j, int err)
{
    char d[32];
    l->sock[j].dead = 1;
    atomic_store_explicit(&l->e.gone, 1, memory_order_release);
    ppu_transport_log(LOG_INFO, "net_socket: link %s socket %d: %s", dir(l, d, sizeof d), j,
                      strerror(err));
}

/* A frame that is not what the protocol allows: socket j is read no
 * further and the link fails. */
static void bad_frame(struct net_link *l, int j, const struct net_frame *f, uint64_t want,
                      const char *why)
{
    char what[32];
    snprintf(what, sizeof what, "socket %d", j);
    l->sock[j].dead = 1;
    net_end_broken(&l->e, what, f, want, why);
}

static void queue_ctl(struct net_sock *s, uint32_t type, uint64_t seq)
{
    memset(&s->ctl, 0, sizeof s->ctl);
    s->ctl.magic = NET_MAGIC_FRAME;
    s->ctl.type = type;
    s->ctl.seq = seq;
    s->ctl_off = 0;
    s->ctl_on = 1;
}

/* 1: the control frame is out; 0: not yet; -1: the socket died. */
static int write_ctl(struct net_link *l, int j)
{
    struct net_sock *s = &l->sock[j];
    while (s->ctl_off < sizeof s->ctl) {
        ssize_t w = send(s->fd, (char *)&s->ctl + s->ctl_off, sizeof s->ctl - s->ctl_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w < 0) {
            sock_dead(l, j, errno);
            return -1;
        }
        s->ctl_off += (size_t)w;
    }
    s->ctl_on = 0;
    return 1;
}

static int notice_wanted(struct net_link *l)
{
    return !atomic_load_explicit(&l->notice_queued, memory_order_acquire) &&
           atomic_load_explicit(&l->e.local_failed, memory_order_acquire);
}

static void update_done(struct net_link *l)
{
    uint64_t m = UINT64_MAX;
    for (int j = 0; j < l->nsocks; j++) {
        uint64_t o = atomic_load_explicit(&l->sock[j].out, memory_order_acquire);
        m = o < m ? o : m;
    }
    net_end_sent(&l->e, m);
}

/* One non-blocking read from socket j: the bytes read (> 0), 0 when none
 * are there yet, -1 when the socket is finished (an error, or the end of
 * the stream). gone_at_eof: the end of the stream means the peer is gone
 * (a sender's socket; a receiver's inside a payload, which then never
 * completes); else only that this socket brings nothing more. */
static ssize_t sock_read(struct net_link *l, int j, void *buf, size_t len, int gone_at_eof)
{
    struct net_sock *s = &l->sock[j];
    char d[32];
    for (;;) {
        ssize_t r = recv(s->fd, buf, len, MSG_DONTWAIT);
        if (r > 0)
            return r;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r < 0) {
            sock_dead(l, j, errno);
            return -1;
        }
        s->dead = 1;
        atomic_fetch_or_explicit(&l->eof, 1u << j, memory_order_acq_rel);
        if (gone_at_eof)
            atomic_store_explicit(&l->e.gone, 1, memory_order_release);
        if (gone_at_eof && !l->e.send)
            ppu_transport_log(LOG_INFO, "net_socket: link %s socket %d closed by rank %d in the "
                              "middle of message %llu", dir(l, d, sizeof d), j, l->e.peer,
                              (unsigned long long)s->pos);
        else
            ppu_transport_log(LOG_TRACE, "net_socket: link %s socket %d closed by rank %d",
                              dir(l, d, sizeof d), j, l->e.peer);
        return -1;
    }
}

/* Sender, socket j: read what the receiver sends back (credits, failure
 * notices, EOF), then write messages the receiver has credit for until the
 * socket is full. */
static int svc_send(struct net_link *l, int j, short rev)
{
    struct net_sock *s = &l->sock[j];
    int moved = 0;
    while ((rev & (POLLIN | POLLERR | POLLHUP)) && !s->dead) {
        ssize_t r = sock_read(l, j, (char *)&s->in + s->in_off, sizeof s->in - s->in_off, 1);
        if (r == 0)
            break;
        moved = 1;
        if (r < 0)
            break;
        s->in_off += (size_t)r;
        if (s->in_off < sizeof s->in)
            continue;
        s->in_off = 0;
        const char *why = NULL;
        int t = net_check_frame(&s->in, sizeof s->in, 0, 0, l->e.slot_bytes, NULL, &why);
        if (t == NET_FRAME_FAIL) {
            net_end_notice(&l->e);
        } else if (t == NET_FRAME_CREDIT) {
            if (!net_end_credit_in(&l->e, s->in.seq, &why)) {
                bad_frame(l, j, &s->in, atomic_load(&l->e.credit), why);
                break;
            }
            /* messages on the link's other sockets may go now: a thread
             * napping on a poll set from before (this may be a core's
             * help) must look again */
            l->e.kick(0);
        } else {
            bad_frame(l, j, &s->in, 0, why);
            break;
        }
    }
    while (!s->dead) {
        if (!s->ctl_on && s->off == 0 && notice_wanted(l) &&
            !atomic_exchange_explicit(&l->notice_queued, 1, memory_order_acq_rel))
            queue_ctl(s, NET_FRAME_FAIL, 0);
        if (s->ctl_on) {
            if (write_ctl(l, j) <= 0)
                break;
            moved = 1;
            continue;
        }
        if (s->off == 0) {
            const void *payload;
            if (!net_end_next(&l->e, s->pos, &s->fr, &payload))
                break; /* not committed yet, or no credit */
            s->payload = payload;
        }
        size_t hb = sizeof s->fr, total = hb + (size_t)s->fr.bytes;
        struct iovec iov[2];
        int n = 0;
        if (s->off < hb)
            iov[n++] = (struct iovec){(char *)&s->fr + s->off, hb - s->off};
        size_t poff = s->off > hb ? s->off - hb : 0;
        if (s->fr.bytes > poff)
            iov[n++] = (struct iovec){(char *)(uintptr_t)s->payload + poff,
                                      (size_t)s->fr.bytes - poff};
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w < 0) {
            sock_dead(l, j, errno);
            moved = 1;
            break;
        }
        moved = 1;
        s->off += (size_t)w;
        if (s->off == total) {
            s->off = 0;
            s->pos += (uint64_t)l->nsocks;
            atomic_store_explicit(&s->out, s->pos, memory_order_release);
            update_done(l);
        }
    }
    return moved;
}

/* Receiver, socket 0 only: a failure notice or a credit to send back. */
static int recv_ctl(struct net_link *l)
{
    struct net_sock *s = &l->sock[0];
    uint64_t seq;
    if (s->dead)
        return 0;
    if (!s->ctl_on) {
        if (notice_wanted(l) &&
            !atomic_exchange_explicit(&l->notice_queued, 1, memory_order_acq_rel)) {
            queue_ctl(s, NET_FRAME_FAIL, 0);
        } else if (net_end_credit_due(&l->e, &seq)) {
            queue_ctl(s, NET_FRAME_CREDIT, seq);
            net_end_credit_sent(&l->e, seq);
        } else {
            return 0;
        }
    }
    return write_ctl(l, 0) != 0;
}

/* Receiver, socket j: frames into their slots. Credits mean a message's
 * slot is free when its header arrives; one that is not broke the
 * protocol. */
static int svc_recv(struct net_link *l, int j, short rev)
{
    struct net_sock *s = &l->sock[j];
    int moved = 0;
    if (j == 0)
        moved |= recv_ctl(l);
    if (!(rev & (POLLIN | POLLERR | POLLHUP)))
        return moved;
    while (!s->dead) {
        if (s->off < sizeof s->fr) {
            ssize_t r = sock_read(l, j, (char *)&s->fr + s->off, sizeof s->fr - s->off, 0);
            moved |= r != 0; /* bytes, or the socket finished */
            if (r <= 0)
                break;
            s->off += (size_t)r;
            if (s->off < sizeof s->fr)
                continue;
            const char *why = NULL;
            int t = net_check_frame(&s->fr, sizeof s->fr, 1, s->pos, l->e.slot_bytes, NULL, &why);
            if (t == NET_FRAME_FAIL) {
                net_end_notice(&l->e);
                s->off = 0;
                continue;
            }
            char *slot = t == NET_FRAME_DATA ? net_end_slot_for(&l->e, &s->fr, &why) : NULL;
            if (!slot) {
                bad_frame(l, j, &s->fr, s->pos, why);
                break;
            }
            s->payload = slot;
            s->got = 0;
        }
        if (s->got < s->fr.bytes) {
            ssize_t r = sock_read(l, j, (char *)(uintptr_t)s->payload + s->got,
                                  (size_t)s->fr.bytes - s->got, 1);
            moved |= r != 0; /* bytes, or the socket finished */
            if (r <= 0)
                break;
            s->got += (size_t)r;
            if (s->got < s->fr.bytes)
                continue;
        }
        net_end_landed(&l->e, &s->fr);
        s->pos += (uint64_t)l->nsocks;
        s->off = 0;
        s->got = 0;
        moved = 1;
    }
    if (j == 0)
        moved |= recv_ctl(l);
    return moved;
}

/* What socket j of l waits for; 0 still reports errors. */
static short sock_events(struct net_link *l, int j)
{
    struct net_sock *s = &l->sock[j];
    uint64_t seq;
    short ev = POLLIN;
    if (l->e.send) {
        if (s->ctl_on || (notice_wanted(l) && s->off == 0) ||
            (s->pos < atomic_load_explicit(&l->e.head, memory_order_seq_cst) &&
             s->pos - atomic_load_explicit(&l->e.credit, memory_order_acquire) <
                 (uint64_t)l->e.nslots))
            ev |= POLLOUT;
    } else if (j == 0 && (s->ctl_on || notice_wanted(l) || net_end_credit_due(&l->e, &seq))) {
        ev |= POLLOUT;
    }
    return ev;
}

struct who {
    struct net_link *l;
    int j;
};

/* Serve the ready ones among n polled sockets (pg->serve held). */
static int serve_ready(const struct pollfd *pf, const struct who *who, nfds_t n)
{
    int moved = 0;
    for (nfds_t i = 0; i < n; i++)
        if (pf[i].revents)
            moved |= who[i].l->e.send ? svc_send(who[i].l, who[i].j, pf[i].revents)
                                      : svc_recv(who[i].l, who[i].j, pf[i].revents);
    return moved;
}

/* The sockets thread k serves, as poll() entries in *scratch (grown as
 * needed, with room for one more entry after them): their count, or -1
 * when memory runs out. */
static long collect(int k, struct net_end **links, int nl, void **scratch, size_t *have,
                    struct pollfd **pf, struct who **who)
{
    size_t need = 1;
    for (int i = 0; i < nl; i++)
        need += (size_t)((struct net_link *)links[i])->nsocks;
    size_t bytes = need * (sizeof(struct pollfd) + sizeof(struct who));
    if (bytes > *have) {
        void *m = realloc(*scratch, bytes);
        if (!m)
            return -1;
        *scratch = m;
        *have = bytes;
    }
    *pf = *scratch;
    *who = (struct who *)(void *)(*pf + need);
    long n = 0;
    for (int i = 0; i < nl; i++) {
        struct net_link *l = (struct net_link *)links[i];
        for (int j = k; j < l->nsocks; j += l->nthreads) {
            if (l->sock[j].dead)
                continue;
            (*pf)[n] = (struct pollfd){l->sock[j].fd, sock_events(l, j), 0};
            (*who)[n++] = (struct who){l, j};
        }
    }
    return n;
}

/* A core's round (net_progress_help; pg->serve held): poll thread k's
 * sockets without waiting and serve the ready ones. */
static int sock_help(struct net_progress *pg, struct net_end **links, int nl)
{
    struct pollfd *pf;
    struct who *who;
    long n = collect((int)(pg - g), links, nl, &pg->help_scratch, &pg->help_scratch_bytes, &pf,
                     &who);
    return n > 0 && poll(pf, (nfds_t)n, 0) > 0 ? serve_ready(pf, who, (nfds_t)n) : 0;
}

/* One poll() over every socket of every link, then service what is ready.
 * The sockets' state is read and changed under pg->serve, which a core
 * thread may hold instead (sock_help); the poll itself runs without it, so
 * a core can serve while this thread naps, and what the poll reported may
 * be out of date by the time it is served (the calls do not block). */
static int sock_round(struct net_progress *pg, struct net_end **links, int nl, int nap_ms,
                      int wake_fd)
{
    struct pollfd *pf;
    struct who *who;
    pthread_mutex_lock(&pg->serve);
    long n = collect((int)(pg - g), links, nl, &pg->scratch, &pg->scratch_bytes, &pf, &who);
    pthread_mutex_unlock(&pg->serve);
    if (n < 0) { /* a core's help says nothing: it runs every idle round */
        ppu_transport_log(LOG_WARN, "net_socket: progress thread out of memory");
        usleep(10000);
        return 0;
    }
    pf[n] = (struct pollfd){wake_fd, POLLIN, 0};
    int r = poll(pf, (nfds_t)n + 1, nap_ms);
    int moved = 0;
    if (r > 0) {
        if (pf[n].revents & POLLIN) {
            net_progress_woken(pg, wake_fd);
            moved = 1;
        }
        pthread_mutex_lock(&pg->serve);
        moved |= serve_ready(pf, who, (nfds_t)n);
        pthread_mutex_unlock(&pg->serve);
    }
    return moved;
}

/* PPU_SOCKET_INLINE=1: the executor's thread moves bytes while it waits
 * (read once, when the first link registers). */
static _Atomic int g_inline = -1;

static int net_help(void)
{
    if (atomic_load_explicit(&g_inline, memory_order_relaxed) != 1)
        return 0;
    int moved = 0, n = atomic_load_explicit(&g_used, memory_order_relaxed);
    for (int k = 0; k < n; k++)
        moved |= net_progress_help(&g[k]);
    return moved;
}

static ppu_result_t register_link(struct net_link *l)
{
    if (atomic_load(&g_inline) < 0)
        atomic_store(&g_inline, (int)ppu_param_int(PPU_P_SOCKET_INLINE));
    ppu_result_t r = PPU_SUCCESS;
    int used = atomic_load(&g_used);
    while (used < l->nthreads && !atomic_compare_exchange_weak(&g_used, &used, l->nthreads))
        ;
    for (int k = 0; k < l->nthreads && r == PPU_SUCCESS; k++) {
        r = net_progress_add(&g[k], &l->e);
        l->registered = r == PPU_SUCCESS ? k + 1 : k;
    }
    return r;
}

static void unregister_link(struct net_link *l)
{
    for (int k = 0; k < l->registered; k++)
        net_progress_remove(&g[k], &l->e);
    l->registered = 0;
}

struct acceptor;
static void acc_leave(struct net_link *l);
static pthread_mutex_t acc_mu;

/* ---- setup ---- */

static void link_free(struct net_link *l)
{
    if (!l)
        return;
    for (int j = 0; j < NET_MAX_SOCKS; j++)
        if (l->sock[j].fd >= 0)
            close(l->sock[j].fd);
    if (l->acc) { /* a receiver that never finished its setup */
        pthread_mutex_lock(&acc_mu);
        acc_leave(l);
        pthread_mutex_unlock(&acc_mu);
    }
    net_end_free(&l->e);
    free(l);
}

static struct net_link *link_alloc(const struct ppu_link_params *p, int send, int nsocks)
{
    size_t sz = (sizeof(struct net_link) + 63) & ~(size_t)63;
    struct net_link *l = aligned_alloc(64, sz);
    if (!l)
        return NULL;
    memset(l, 0, sz);
    for (int j = 0; j < NET_MAX_SOCKS; j++) {
        l->sock[j].fd = -1;
        l->sock[j].pos = (uint64_t)j;
        atomic_init(&l->sock[j].out, (uint64_t)j);
    }
    l->nsocks = nsocks;
    l->nthreads = p->nthreads < 1 ? 1 : p->nthreads > NET_MAX_THREADS ? NET_MAX_THREADS : p->nthreads;
    if (l->nthreads > nsocks)
        l->nthreads = nsocks;
    atomic_init(&l->notice_queued, 0);
    l->setup_timeout_ms = p->setup_timeout_ms > 0 ? p->setup_timeout_ms : 60000;
    l->close_timeout_ms = p->close_timeout_ms > 0 ? p->close_timeout_ms : 60000;
    atomic_init(&l->eof, 0);
    if (net_end_init(&l->e, "net_socket", p, send, 0, kick) != PPU_SUCCESS) {
        free(l);
        return NULL;
    }
    return l;
}

static ppu_result_t net_send_connect(struct ppu_link *link, const void *info_in)
{
    const struct ppu_link_params *p = &link->params;
    struct net_info info;
    memcpy(&info, info_in, sizeof info);
    if (info.magic != NET_MAGIC_INFO || info.version != NET_VERSION || info.nsocks < 1 ||
        info.nsocks > NET_MAX_SOCKS || (info.family != AF_INET && info.family != AF_INET6)) {
        ppu_transport_log(LOG_WARN, "net_socket: rank %d got no valid connect info for link "
                          "%d->%d", p->self_rank, p->self_rank, p->peer_rank);
        return PPU_INTERNAL_ERROR;
    }
    if (info.slot_bytes != p->slot_bytes || info.nslots != (uint32_t)p->nslots) {
        ppu_transport_log(LOG_WARN, "net_socket: link %d->%d: rank %d uses %llu-byte slots x %u, "
                          "rank %d %zu x %d: set PPU_CHUNK_SIZE, PPU_P2P_CHUNK_SIZE and "
                          "PPU_FIFO_SLOTS the same on every rank", p->self_rank, p->peer_rank,
                          p->peer_rank, (unsigned long long)info.slot_bytes, info.nslots,
                          p->self_rank, p->slot_bytes, p->nslots);
        return PPU_INVALID_USAGE;
    }
    union ppu_sockaddr a;
    net_addr_unpack(info.family, info.port, info.scope_id, info.addr, &a);
    struct net_link *l = link_alloc(p, 1, info.nsocks);
    if (!l)
        return PPU_SYSTEM_ERROR;
    uint64_t deadline = ppu_now_ns() + (uint64_t)l->setup_timeout_ms * 1000000ull;
    for (int j = 0; j < l->nsocks; j++) {
        struct net_hello h;
        memset(&h, 0, sizeof h);
        h.magic = NET_MAGIC_HELLO;
        h.version = NET_VERSION;
        h.index = (uint16_t)j;
        h.nsocks = (uint16_t)l->nsocks;
        h.nslots = (uint32_t)l->e.nslots;
        memcpy(h.nonce, info.nonce, sizeof h.nonce);
        h.slot_bytes = l->e.slot_bytes;
        h.sender_rank = l->e.self;
        h.receiver_rank = l->e.peer;
        ppu_result_t r = ppu_socket_connect(&a, deadline, &l->sock[j].fd);
        if (r == PPU_SUCCESS)
            r = ppu_socket_send(l->sock[j].fd, &h, sizeof h, deadline);
        if (r != PPU_SUCCESS) {
            char ab[INET6_ADDRSTRLEN] = "?";
            inet_ntop(info.family, info.addr, ab, sizeof ab);
            ppu_transport_log(LOG_WARN, "net_socket: link %d->%d: cannot connect to %s port %u "
                              "(socket %d of %d): %s", l->e.self, l->e.peer, ab, info.port, j,
                              l->nsocks, r == PPU_TIMEOUT ? "timed out" : strerror(errno));
            link_free(l);
            return r == PPU_TIMEOUT ? PPU_TIMEOUT : PPU_SYSTEM_ERROR;
        }
    }
    link->priv = l;
    /* messages may be references: the progress thread writes the caller's
     * bytes to the socket without a staging copy (send_ref) */
    link->direct = net_socket_test_registered_only ? PPU_DIRECT_REGISTERED : PPU_DIRECT_ANY;
    return PPU_SUCCESS;
}

int net_check_hello(const void *bytes, size_t n, const uint8_t nonce[NET_NONCE_BYTES], int nsocks,
                    uint64_t slot_bytes, uint32_t nslots, unsigned have, struct net_hello *out,
                    const char **why)
{
    struct net_hello h;
    if (n < sizeof h) {
        *why = "shorter than a hello";
        return -1;
    }
    memcpy(&h, bytes, sizeof h);
    if (out)
        *out = h;
    if (h.magic != NET_MAGIC_HELLO)
        *why = "not a ppuccl connection";
    else if (h.version != NET_VERSION)
        *why = "protocol version not this build's";
    else if (!ppu_ct_equal(h.nonce, nonce, NET_NONCE_BYTES))
        *why = "wrong nonce (not this link's sender)";
    else if (nsocks < 1 || nsocks > NET_MAX_SOCKS || h.index >= nsocks || (have >> h.index & 1u))
        *why = "socket index out of range or already connected";
    else if (h.nsocks != nsocks || h.slot_bytes != slot_bytes || h.nslots != nslots)
        *why = "its link shape is not this one's";
    else
        return h.index;
    return -1;
}

/* Which socket of l a complete hello opens, or -1 with why set. */
static int vet_hello(const struct net_link *l, const struct net_hello *h, unsigned have,
                     char *why, size_t wlen)
{
    const char *reason = NULL;
    int idx = net_check_hello(h, sizeof *h, l->nonce, l->nsocks, l->e.slot_bytes,
                              (uint32_t)l->e.nslots, have, NULL, &reason);
    if (idx < 0)
        snprintf(why, wlen, "%s (first word 0x%08x, version %u, socket %u of %u, %llu-byte "
                 "slots x %u)", reason, h->magic, h->version, h->index, h->nsocks,
                 (unsigned long long)h->slot_bytes, h->nslots);
    return idx;
}

static void peer_str(const struct sockaddr_storage *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (a->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, host, sizeof host);
        port = ntohs(((const struct sockaddr_in *)a)->sin_port);
    } else if (a->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, host, sizeof host);
        port = ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    }
    snprintf(buf, len, "%s:%u", host, port);
}

/* ---- one listener a process ----
 * Every receiving end of this process that is being set up shares one TCP
 * listener per address: a per-link listener would hold a port per link in
 * setup, and a rank of a large all-to-all sets up a link from every rail
 * peer at once (1,024 ranks on one host: 64,000 ports, more than a host
 * has). A sender's hello carries its link's nonce, which says which link
 * a connection opens. The listener lives while some link waits on it.
 * Whichever thread waits in recv_finish polls it (under acc_mu) and hands
 * every vetted connection to the link it belongs to, its own or another
 * thread's; a connection that opens no waiting link is dropped and logged,
 * and never fails a link. */
/* Connections vetted at once. A half-open connection holds no link up
 * (links complete on their own sockets), so it may take as long as a
 * link's setup to present its hello: a loaded host can delay a sender's
 * first bytes by seconds (1,024 ranks on 2 cores did, by over 2 s). Past
 * this many the oldest is dropped for the newest, so idle strangers
 * cannot shut the listener. */
#define ACC_MAX_PENDING 1024
#define ACC_POLL_MS 10       /* longest a waiter holds acc_mu in poll() */

struct pending {
    int fd;
    uint64_t deadline;
    size_t got;
    struct net_hello h;
    char from[INET6_ADDRSTRLEN + 8];
};

struct acceptor {
    union ppu_sockaddr addr; /* bound, port included */
    int lfd;
    struct net_link **wait;  /* the links in setup that take connections here */
    int nwait, wcap;
    struct pending *pend;
    int np, pcap;
    struct pollfd *pf; /* np + 1 of them, for poll() */
    int pfcap;
    int hello_ms;      /* how long a connection may take to present its hello */
    struct acceptor *next;
};

static pthread_mutex_t acc_mu = PTHREAD_MUTEX_INITIALIZER;
static struct acceptor *acc_list;
static pid_t acc_pid;

static int same_ip(const union ppu_sockaddr *a, const union ppu_sockaddr *b)
{
    if (a->sa.sa_family != b->sa.sa_family)
        return 0;
    if (a->sa.sa_family == AF_INET)
        return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
    return !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof a->in6.sin6_addr) &&
           a->in6.sin6_scope_id == b->in6.sin6_scope_id;
}

/* A forked child inherits its parent's listeners: it closes its copies of
 * their descriptors and starts with none (the parent's links are not its
 * own; the structures are left as they are, never touched again). */
static void acc_fork_check(void)
{
    pid_t me = getpid();
    if (acc_pid == me)
        return;
    for (struct acceptor *A = acc_list; A; A = A->next) {
        close(A->lfd);
        for (int i = 0; i < A->np; i++)
            close(A->pend[i].fd);
    }
    acc_list = NULL;
    acc_pid = me;
}

/* The listener on a's address (any port), opened if none is; acc_mu held. */
static struct acceptor *acc_get(const union ppu_sockaddr *a)
{
    for (struct acceptor *A = acc_list; A; A = A->next)
        if (same_ip(&A->addr, a))
            return A;
    struct acceptor *A = calloc(1, sizeof *A);
    if (!A)
        return NULL;
    A->addr = *a;
    if (A->addr.sa.sa_family == AF_INET)
        A->addr.in4.sin_port = 0;
    else
        A->addr.in6.sin6_port = 0;
    /* non-blocking: waiters poll it with the connections they vet */
    if (ppu_socket_listen(&A->addr, &A->lfd) != PPU_SUCCESS) {
        free(A);
        return NULL;
    }
    if (fcntl(A->lfd, F_SETFL, fcntl(A->lfd, F_GETFL) | O_NONBLOCK) != 0) {
        close(A->lfd);
        free(A);
        return NULL;
    }
    A->next = acc_list;
    acc_list = A;
    return A;
}

static int acc_join(struct acceptor *A, struct net_link *l)
{
    if (A->nwait == A->wcap) {
        int cap = A->wcap ? 2 * A->wcap : 16;
        struct net_link **w = realloc(A->wait, sizeof *w * (size_t)cap);
        if (!w)
            return -1;
        A->wait = w;
        A->wcap = cap;
    }
    A->wait[A->nwait++] = l;
    l->acc = A;
    if (l->setup_timeout_ms > A->hello_ms)
        A->hello_ms = l->setup_timeout_ms;
    return 0;
}

/* l takes no more connections; the last link to leave closes the
 * listener and drops what is still half-open. acc_mu held. */
static void acc_leave(struct net_link *l)
{
    struct acceptor *A = l->acc, **at = &acc_list;
    l->acc = NULL;
    while (*at && *at != A)
        at = &(*at)->next;
    if (!*at) /* a listener of the parent process (see acc_fork_check) */
        return;
    for (int i = 0; i < A->nwait; i++)
        if (A->wait[i] == l) {
            A->wait[i] = A->wait[--A->nwait];
            break;
        }
    if (A->nwait > 0)
        return;
    char d[32];
    dir(l, d, sizeof d);
    for (int i = 0; i < A->np; i++) {
        ppu_transport_log(LOG_WARN, "net_socket: link %s: dropped a connection from %s: no "
                          "complete hello (%zu of %zu bytes) when the links waiting were "
                          "complete", d, A->pend[i].from, A->pend[i].got, sizeof A->pend[i].h);
        close(A->pend[i].fd);
    }
    close(A->lfd);
    *at = A->next;
    free(A->pend);
    free(A->pf);
    free(A->wait);
    free(A);
}

/* Which waiting link a complete hello opens, and which of its sockets
 * (-1 with why set when none). */
static struct net_link *acc_match(struct acceptor *A, const struct net_hello *h, int *idx,
                                  char *why, size_t wlen)
{
    for (int i = 0; i < A->nwait; i++) {
        struct net_link *l = A->wait[i];
        if (h->magic != NET_MAGIC_HELLO || h->version != NET_VERSION ||
            !ppu_ct_equal(h->nonce, l->nonce, NET_NONCE_BYTES))
            continue;
        *idx = vet_hello(l, h, l->have, why, wlen);
        return *idx >= 0 ? l : NULL;
    }
    /* nobody's nonce: say what is wrong with it against the first link */
    if (A->nwait > 0)
        vet_hello(A->wait[0], h, A->wait[0]->have, why, wlen);
    else
        snprintf(why, wlen, "no link waits for it");
    return NULL;
}

/* One round of the listener: accept, read hellos, hand each vetted
 * connection to its link; waits at most until wake (and ACC_POLL_MS).
 * acc_mu held. */
static void acc_round(struct acceptor *A, uint64_t wake)
{
    uint64_t now = ppu_now_ns(), most = now + ACC_POLL_MS * 1000000ull;
    wake = wake < most ? wake : most;
    if (A->pfcap < A->np + 1) {
        struct pollfd *grown = realloc(A->pf, sizeof *grown * (size_t)(A->np + 1));
        if (!grown)
            return;
        A->pf = grown;
        A->pfcap = A->np + 1;
    }
    struct pollfd *pf = A->pf;
    int npoll = A->np;
    for (int i = 0; i < npoll; i++) {
        pf[i] = (struct pollfd){A->pend[i].fd, POLLIN, 0};
        wake = A->pend[i].deadline < wake ? A->pend[i].deadline : wake;
    }
    int li = npoll;
    pf[li] = (struct pollfd){A->lfd, POLLIN, 0};
    int pr = poll(pf, (nfds_t)npoll + 1, ppu_ms_until(wake));
    if (pr < 0)
        return;
    now = ppu_now_ns();
    /* backwards: a dropped entry takes the last one's place */
    for (int i = A->np - 1; i >= 0; i--) {
        struct pending *c = &A->pend[i];
        char why[200] = "";
        if (i < npoll && pr > 0 && pf[i].revents) {
            ssize_t got = recv(c->fd, (char *)&c->h + c->got, sizeof c->h - c->got, MSG_DONTWAIT);
            if (got == 0) {
                snprintf(why, sizeof why, "closed after %zu of %zu hello bytes", c->got,
                         sizeof c->h);
            } else if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                snprintf(why, sizeof why, "%s", strerror(errno));
            } else if (got > 0) {
                c->got += (size_t)got;
                if (c->got == sizeof c->h) {
                    int idx = -1;
                    struct net_link *l = acc_match(A, &c->h, &idx, why, sizeof why);
                    if (l) {
                        int one = 1;
                        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                        l->sock[idx].fd = c->fd;
                        l->have |= 1u << idx;
                        *c = A->pend[--A->np];
                        continue;
                    }
                }
            }
        }
        if (!why[0] && now >= c->deadline)
            snprintf(why, sizeof why, "no hello within %d ms (%zu of %zu bytes)", A->hello_ms,
                     c->got, sizeof c->h);
        if (why[0]) {
            char la[64];
            ppu_socket_str(&A->addr, la, sizeof la);
            ppu_transport_log(LOG_WARN, "net_socket: the listener on %s dropped a connection "
                              "from %s: %s", la, c->from, why);
            close(c->fd);
            *c = A->pend[--A->np];
        }
    }
    if (pr > 0 && (pf[li].revents & POLLIN)) {
        for (;;) {
            if (A->np == ACC_MAX_PENDING) { /* the oldest makes room */
                int old = 0;
                for (int i = 1; i < A->np; i++)
                    old = A->pend[i].deadline < A->pend[old].deadline ? i : old;
                ppu_transport_log(LOG_WARN, "net_socket: the listener dropped a connection from "
                                  "%s: %d connections without a hello, it the oldest",
                                  A->pend[old].from, ACC_MAX_PENDING);
                close(A->pend[old].fd);
                A->pend[old] = A->pend[--A->np];
            }
            if (A->np == A->pcap) {
                int cap = A->pcap ? 2 * A->pcap : 32;
                struct pending *p = realloc(A->pend, sizeof *p * (size_t)cap);
                if (!p)
                    break;
                A->pend = p;
                A->pcap = cap;
            }
            struct sockaddr_storage sa;
            socklen_t sl = sizeof sa;
            int fd = accept4(A->lfd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                break;
            struct pending *c = &A->pend[A->np++];
            memset(c, 0, sizeof *c);
            c->fd = fd;
            c->deadline = now + (uint64_t)A->hello_ms * 1000000ull;
            peer_str(&sa, c->from, sizeof c->from);
        }
    }
}

static ppu_result_t net_recv_setup(struct ppu_link *link, void *info_out)
{
    const struct ppu_link_params *p = &link->params;
    int fam = p->listen_addr.ss_family;
    if (p->nslots < 1 || p->slot_bytes == 0 || p->nsocks < 1 || p->nsocks > NET_MAX_SOCKS ||
        (fam != AF_INET && fam != AF_INET6))
        return PPU_INVALID_ARGUMENT;
    struct net_link *l = link_alloc(p, 0, p->nsocks);
    if (!l)
        return PPU_SYSTEM_ERROR;
    if (getrandom(l->nonce, sizeof l->nonce, 0) != (ssize_t)sizeof l->nonce) {
        link_free(l);
        return PPU_SYSTEM_ERROR;
    }
    union ppu_sockaddr a;
    memset(&a, 0, sizeof a);
    memcpy(&a, &p->listen_addr,
           fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    pthread_mutex_lock(&acc_mu);
    acc_fork_check();
    struct acceptor *A = acc_get(&a);
    if (A && acc_join(A, l) == 0)
        a = A->addr;
    else
        A = NULL;
    int err = errno;
    pthread_mutex_unlock(&acc_mu);
    if (!A) {
        char ab[64];
        ppu_socket_str(&a, ab, sizeof ab);
        ppu_transport_log(LOG_WARN, "net_socket: rank %d cannot listen on %s for link %d->%d: %s",
                          l->e.self, ab, l->e.peer, l->e.self, strerror(err));
        link_free(l);
        return PPU_SYSTEM_ERROR;
    }
    struct net_info info;
    memset(&info, 0, sizeof info);
    info.magic = NET_MAGIC_INFO;
    info.version = NET_VERSION;
    info.family = (uint16_t)fam;
    info.nsocks = (uint16_t)l->nsocks;
    net_addr_pack(&a, &info.port, &info.scope_id, info.addr);
    memcpy(info.nonce, l->nonce, sizeof info.nonce);
    info.slot_bytes = p->slot_bytes;
    info.nslots = (uint32_t)p->nslots;
    memset(info_out, 0, PPU_CONNECT_INFO_BYTES);
    memcpy(info_out, &info, sizeof info);
    link->priv = l;
    link->direct = 0;
    return PPU_SUCCESS;
}

static ppu_result_t net_recv_finish(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    uint64_t deadline = ppu_now_ns() + (uint64_t)l->setup_timeout_ms * 1000000ull;
    unsigned want = (1u << l->nsocks) - 1;
    ppu_result_t r = PPU_SUCCESS;
    pthread_mutex_lock(&acc_mu);
    while (l->acc && l->have != want) {
        if (ppu_now_ns() >= deadline) {
            char d[32];
            ppu_transport_log(LOG_WARN, "net_socket: link %s: %d of %d connections from rank %d "
                              "arrived within PPU_BOOTSTRAP_TIMEOUT_MS (%d ms)",
                              dir(l, d, sizeof d), __builtin_popcount(l->have), l->nsocks,
                              l->e.peer, l->setup_timeout_ms);
            r = PPU_TIMEOUT;
            break;
        }
        acc_round(l->acc, deadline);
        if (l->have != want) { /* let the other waiters of this process look */
            pthread_mutex_unlock(&acc_mu);
            sched_yield();
            pthread_mutex_lock(&acc_mu);
        }
    }
    if (!l->acc && r == PPU_SUCCESS && l->have != want)
        r = PPU_INTERNAL_ERROR; /* a forked child finishing its parent's link */
    if (l->acc)
        acc_leave(l);
    pthread_mutex_unlock(&acc_mu);
    if (r == PPU_SUCCESS)
        r = register_link(l);
    return r;
}

static ppu_result_t net_send_finish(struct ppu_link *link)
{
    return register_link(link->priv);
}

/* A connection reset; a sender's connection closed by the receiver; or the
 * socket that brings the receiver's next message closed (everything sent
 * on it before was read first, so that message will not come). */
static int net_peer_gone(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    if (!l)
        return 0;
    if (atomic_load_explicit(&l->e.gone, memory_order_acquire))
        return 1;
    if (l->e.send)
        return 0;
    unsigned eof = atomic_load_explicit(&l->eof, memory_order_acquire);
    return (int)(eof >> (l->e.pos % (uint64_t)l->nsocks) & 1u);
}

static void net_close(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    if (!l)
        return;
    /* committed messages still in the FIFO must reach the kernel before
     * the sockets close (then TCP delivers them) */
    if (l->registered && l->e.send)
        net_end_drain(&l->e, l->close_timeout_ms);
    if (l->registered)
        unregister_link(l);
    link_free(l);
    link->priv = NULL;
}

static const char *sock_why_failed(const struct ppu_link *link, int phase, ppu_result_t r,
                                   char *buf, size_t len)
{
    snprintf(buf, len, "%s", phase == 1 ? "a TCP listener on PPU_SOCKET_IFNAME's address; the "
                                          "log says more" : "see the log");
    return buf;
}

const struct ppu_transport_ops ppu_net_socket_ops = {
    .name = "net_socket",
    .why_failed = sock_why_failed,
    .recv_setup = net_recv_setup,
    .send_connect = net_send_connect,
    .recv_finish = net_recv_finish,
    .send_finish = net_send_finish,
    .send_reserve = net_end_send_reserve,
    .send_commit = net_end_send_commit,
    .send_ref = net_end_send_ref,
    .send_drained = net_end_send_drained,
    .recv_peek = net_end_recv_peek,
    .recv_read = net_end_recv_read,
    .recv_release = net_end_recv_release,
    .help = net_help,
    .peer_gone = net_peer_gone,
    .set_failed = net_end_set_failed,
    .peer_failed = net_end_peer_failed,
    .close = net_close,
};
