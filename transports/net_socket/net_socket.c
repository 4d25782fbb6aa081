/* Network transport: a link between ranks on different servers is a FIFO
 * in each end's own memory plus nsocks TCP connections between them. The
 * core touches only the FIFOs, with the same non-blocking calls as icn_sim;
 * one progress thread per process moves committed send slots out to the
 * sockets and incoming messages into free receive slots, for every net link
 * of the process in one poll() loop. So no wait of the core ever blocks on a
 * socket, and a rank's ICN links keep moving while its network is slow.
 *
 * Message i of a link travels on socket i % nsocks as a 48-byte frame
 * header (net_socket.h: magic, type, sequence, length, the call stamp and
 * checksum the core checks) followed by the payload, straight from the
 * sender's slot into the receiver's slot i % nslots. The receiver knows
 * from i which socket brings which message, so several sockets carry one
 * link at once. A frame with a bad magic, type or sequence, or longer than
 * a slot, breaks the link: it is logged, that socket is read no further
 * (never past a slot), and the link reports its peer failed.
 *
 * Setup, in the core's four phases: recv_setup listens on the address the
 * core chose (any port) and publishes address, port and a random nonce;
 * send_connect connects nsocks sockets and writes a hello {magic, version,
 * nonce, index} on each; recv_finish accepts until every index arrived
 * with the right nonce, dropping and logging any other connection (wrong
 * magic, version or nonce, garbage, or no hello within HELLO_WAIT_MS)
 * without failing the link, then closes the listener.
 *
 * Failure: a connection the peer closed or reset marks the link gone
 * (peer_gone), so a rank whose peer died stops waiting within the core's
 * 0.1 s check. set_failed sends a failure notice frame (sender -> receiver
 * on a socket between two messages; receiver -> sender on socket 0, which
 * otherwise carries nothing that way), which the other end reports through
 * peer_failed. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "../transport.h"
#include "net_socket.h"
#include "socket.h" /* src/: socket helpers shared with the bootstrap */
#include "wait.h"   /* src/: ppu_now_ns, ppu_ms_until */

#define HELLO_WAIT_MS 2000 /* a new connection must present its hello within this */
#define MAX_PENDING 32     /* connections recv_finish vets at once */
#define SPIN_ROUNDS 64     /* idle non-blocking rounds before the progress thread sleeps */
#define SLEEP_MS 100       /* its longest sleep; a wake-up (eventfd) cuts it short */
#define LOG_WARN 1
#define LOG_INFO 2
#define LOG_TRACE 3

struct net_meta {
    uint64_t bytes, call[2], sum;
    const char *ref; /* send_ref: the bytes are the caller's, not the slot's */
};

struct net_sock {
    int fd;
    int dead;             /* EOF or error seen: not polled any more */
    uint64_t pos;         /* next message index this socket carries */
    size_t off;           /* send: header + payload bytes written; recv: header bytes read */
    size_t got;           /* recv: payload bytes read */
    struct net_frame fr;  /* the header being written or read */
    struct net_frame ctl; /* a failure notice being written */
    size_t ctl_off;
    int ctl_on;
    struct net_frame in;  /* sender: a frame from the receiver being read */
    size_t in_off;
};

struct net_link {
    int send; /* 1: the sending end */
    int self, peer;
    size_t slot_bytes;
    int nslots, nsocks;
    char *slots;
    struct net_meta *meta;
    _Atomic uint64_t *ready; /* receiver: per slot, index + 1 of the message it holds */
    _Alignas(64) _Atomic uint64_t head; /* sender: messages committed (core) */
    _Alignas(64) _Atomic uint64_t done; /* sender: messages handed to the kernel (thread) */
    _Alignas(64) _Atomic uint64_t tail; /* receiver: messages released (core) */
    _Alignas(64) uint64_t pos;          /* core: next message to commit / to read */
    uint64_t cached_done;               /* core (sender): last done seen */
    _Atomic int gone;          /* a connection was reset, or (sender) closed by the peer */
    _Atomic unsigned eof;      /* receiver: sockets the peer closed, a bit each */
    _Atomic int peer_failed;   /* its failure notice arrived, or its stream broke */
    _Atomic int local_failed;  /* set_failed: a notice to send */
    int notice_queued;         /* thread */
    int registered;            /* known to the progress thread */
    int setup_timeout_ms, close_timeout_ms;
    int lfd;                   /* receiver: listener until recv_finish */
    uint8_t nonce[NET_NONCE_BYTES];
    struct net_sock sock[NET_MAX_SOCKS];
};


/* "3->5": the link's direction, sender first. */
static const char *dir(const struct net_link *l, char *buf, size_t len)
{
    snprintf(buf, len, "%d->%d", l->send ? l->self : l->peer, l->send ? l->peer : l->self);
    return buf;
}

/* ---- the progress thread ---- */

static struct {
    pthread_mutex_t life; /* start, stop, registration */
    pthread_mutex_t lock; /* links, n, gen, ack, stop */
    pthread_cond_t acked;
    struct net_link **links;
    int n, cap;
    uint64_t gen, ack; /* list version; the version the thread has taken */
    int stop, running;
    pid_t pid;
    pthread_t thread;
    _Atomic int evfd;
    _Atomic int sleeping;     /* the thread may block in poll */
    _Atomic int wake_pending; /* an eventfd write it has not read yet */
} g = {.life = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER,
       .acked = PTHREAD_COND_INITIALIZER, .evfd = -1};

/* Wake the thread when it sleeps (force: always). Callers publish their
 * counter (head, tail) with a sequentially consistent store before this
 * sequentially consistent load, and the thread sets `sleeping` the same
 * way before it reads the counters: so either it sees what the caller
 * just published, or the caller sees it asleep and writes the eventfd. */
static void kick(int force)
{
    if (!force && !atomic_load_explicit(&g.sleeping, memory_order_seq_cst))
        return;
    if (atomic_exchange_explicit(&g.wake_pending, 1, memory_order_acq_rel))
        return;
    uint64_t one = 1;
    int fd = atomic_load_explicit(&g.evfd, memory_order_relaxed);
    if (fd >= 0 && write(fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, so the thread wakes anyway */
    }
}

static void sock_dead(struct net_link *l, int j, int err)
{
    char d[32];
    l->sock[j].dead = 1;
    atomic_store_explicit(&l->gone, 1, memory_order_release);
    ppu_transport_log(LOG_INFO, "net_socket: link %s socket %d: %s", dir(l, d, sizeof d), j,
                      strerror(err));
}

int net_check_frame(const void *bytes, size_t n, int take_data, uint64_t expect_seq,
                    uint64_t slot_bytes, struct net_frame *out, const char **why)
{
    struct net_frame f;
    if (n < sizeof f) {
        *why = "shorter than a frame header";
        return 0;
    }
    memcpy(&f, bytes, sizeof f);
    if (out)
        *out = f;
    if (f.magic != NET_MAGIC_FRAME) {
        *why = "a frame with bad magic arrived (not ppuccl data)";
        return 0;
    }
    if (f.type == NET_FRAME_FAIL)
        return NET_FRAME_FAIL;
    if (!take_data || f.type != NET_FRAME_DATA) {
        *why = "a frame of a type this end does not take arrived";
        return 0;
    }
    if (f.bytes > slot_bytes) {
        *why = "a message claims more bytes than a slot holds";
        return 0;
    }
    if (f.seq != expect_seq) {
        *why = "a message arrived where another was due";
        return 0;
    }
    return NET_FRAME_DATA;
}

/* A frame that is not what the protocol allows (why: net_check_frame's
 * reason): the link is unusable. */
static void bad_frame(struct net_link *l, int j, const struct net_frame *f, uint64_t want,
                      const char *why)
{
    char d[32];
    struct net_sock *s = &l->sock[j];
    s->dead = 1;
    atomic_store_explicit(&l->peer_failed, 1, memory_order_release);
    ppu_transport_log(LOG_WARN, "net_socket: link %s socket %d: %s from rank %d (magic 0x%08x, "
                      "type %u, message %llu of %llu bytes; message %llu due, %zu-byte slots); "
                      "the link is broken", dir(l, d, sizeof d), j, why, l->peer, f->magic,
                      f->type, (unsigned long long)f->seq, (unsigned long long)f->bytes,
                      (unsigned long long)want, l->slot_bytes);
}

static void notice_received(struct net_link *l)
{
    char d[32];
    if (!atomic_exchange_explicit(&l->peer_failed, 1, memory_order_acq_rel))
        ppu_transport_log(LOG_INFO, "net_socket: link %s: rank %d posted a failure notice",
                          dir(l, d, sizeof d), l->peer);
}

static void queue_notice(struct net_link *l, struct net_sock *s)
{
    memset(&s->ctl, 0, sizeof s->ctl);
    s->ctl.magic = NET_MAGIC_FRAME;
    s->ctl.type = NET_FRAME_FAIL;
    s->ctl_off = 0;
    s->ctl_on = 1;
    l->notice_queued = 1;
}

/* 1: the notice is out; 0: not yet; -1: the socket died. */
static int write_notice(struct net_link *l, int j)
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

static void update_done(struct net_link *l)
{
    uint64_t m = l->sock[0].pos;
    for (int j = 1; j < l->nsocks; j++)
        m = l->sock[j].pos < m ? l->sock[j].pos : m;
    atomic_store_explicit(&l->done, m, memory_order_release);
}

/* Sender, socket j: read what the receiver sends back (failure notices,
 * EOF), then write committed messages until the socket is full. */
static int svc_send(struct net_link *l, int j, short rev)
{
    struct net_sock *s = &l->sock[j];
    int moved = 0;
    while ((rev & (POLLIN | POLLERR | POLLHUP)) && !s->dead) {
        ssize_t r = recv(s->fd, (char *)&s->in + s->in_off, sizeof s->in - s->in_off, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        moved = 1;
        if (r <= 0) {
            char d[32];
            if (r < 0) {
                sock_dead(l, j, errno);
                break;
            }
            s->dead = 1;
            atomic_store_explicit(&l->gone, 1, memory_order_release);
            ppu_transport_log(LOG_TRACE, "net_socket: link %s socket %d closed by rank %d",
                              dir(l, d, sizeof d), j, l->peer);
            break;
        }
        s->in_off += (size_t)r;
        if (s->in_off < sizeof s->in)
            continue;
        s->in_off = 0;
        const char *why = NULL;
        if (net_check_frame(&s->in, sizeof s->in, 0, 0, l->slot_bytes, NULL, &why) ==
            NET_FRAME_FAIL)
            notice_received(l);
        else
            bad_frame(l, j, &s->in, 0, why);
    }
    while (!s->dead) {
        if (!s->ctl_on && s->off == 0 && !l->notice_queued &&
            atomic_load_explicit(&l->local_failed, memory_order_acquire))
            queue_notice(l, s);
        if (s->ctl_on) {
            if (write_notice(l, j) <= 0)
                break;
            moved = 1;
            continue;
        }
        uint64_t head = atomic_load_explicit(&l->head, memory_order_acquire);
        if (s->pos >= head)
            break;
        size_t k = (size_t)(s->pos % (uint64_t)l->nslots);
        if (s->off == 0) {
            const struct net_meta *m = &l->meta[k];
            s->fr = (struct net_frame){NET_MAGIC_FRAME, NET_FRAME_DATA, s->pos, m->bytes,
                                       {m->call[0], m->call[1]}, m->sum};
        }
        size_t hb = sizeof s->fr, total = hb + (size_t)s->fr.bytes;
        struct iovec iov[2];
        int n = 0;
        if (s->off < hb)
            iov[n++] = (struct iovec){(char *)&s->fr + s->off, hb - s->off};
        size_t poff = s->off > hb ? s->off - hb : 0;
        if (s->fr.bytes > poff)
            iov[n++] = (struct iovec){(l->meta[k].ref ? (char *)(uintptr_t)l->meta[k].ref
                                                      : l->slots + k * l->slot_bytes) + poff,
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
            update_done(l);
        }
    }
    return moved;
}

/* Receiver, socket j: a failure notice to send back, then frames into
 * free slots. A header is read even when its slot is busy (so notices get
 * through); its payload waits for the slot. */
/* One non-blocking read from socket j: the bytes read (> 0), 0 when none
 * are there yet, -1 when the socket is finished (an error, or the end of
 * the stream; mid_message: inside a payload, which then never completes,
 * so the peer counts as gone). */
static ssize_t sock_read(struct net_link *l, int j, void *buf, size_t len, int mid_message)
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
        if (!mid_message) {
            ppu_transport_log(LOG_TRACE, "net_socket: link %s socket %d closed by rank %d",
                              dir(l, d, sizeof d), j, l->peer);
            return -1;
        }
        atomic_store_explicit(&l->gone, 1, memory_order_release);
        ppu_transport_log(LOG_INFO, "net_socket: link %s socket %d closed by rank %d in the "
                          "middle of message %llu", dir(l, d, sizeof d), j, l->peer,
                          (unsigned long long)s->pos);
        return -1;
    }
}

static int svc_recv(struct net_link *l, int j, short rev)
{
    struct net_sock *s = &l->sock[j];
    int moved = 0;
    if (j == 0 && !l->notice_queued && atomic_load_explicit(&l->local_failed, memory_order_acquire))
        queue_notice(l, s);
    if (s->ctl_on && !s->dead && write_notice(l, j) != 0)
        moved = 1;
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
            int t = net_check_frame(&s->fr, sizeof s->fr, 1, s->pos, l->slot_bytes, NULL, &why);
            if (t == NET_FRAME_FAIL) {
                notice_received(l);
                s->off = 0;
                continue;
            }
            if (t != NET_FRAME_DATA) {
                bad_frame(l, j, &s->fr, s->pos, why);
                break;
            }
            s->got = 0;
        }
        uint64_t tail = atomic_load_explicit(&l->tail, memory_order_acquire);
        if (s->pos - tail >= (uint64_t)l->nslots)
            break; /* its slot is still in use */
        size_t k = (size_t)(s->pos % (uint64_t)l->nslots);
        if (s->got < s->fr.bytes) {
            ssize_t r = sock_read(l, j, l->slots + k * l->slot_bytes + s->got,
                                  (size_t)s->fr.bytes - s->got, 1);
            moved |= r != 0; /* bytes, or the socket finished */
            if (r <= 0)
                break;
            s->got += (size_t)r;
            if (s->got < s->fr.bytes)
                continue;
        }
        l->meta[k] = (struct net_meta){s->fr.bytes, {s->fr.call[0], s->fr.call[1]}, s->fr.sum, NULL};
        atomic_store_explicit(&l->ready[k], s->pos + 1, memory_order_release);
        s->pos += (uint64_t)l->nsocks;
        s->off = 0;
        s->got = 0;
        moved = 1;
    }
    return moved;
}

/* What socket j of l waits for; 0 still reports errors. */
static short sock_events(struct net_link *l, int j)
{
    struct net_sock *s = &l->sock[j];
    int notice = !l->notice_queued && (l->send || j == 0) &&
                 atomic_load_explicit(&l->local_failed, memory_order_acquire);
    short ev = 0;
    if (l->send) {
        ev = POLLIN;
        if (s->ctl_on || (notice && s->off == 0) ||
            s->pos < atomic_load_explicit(&l->head, memory_order_seq_cst))
            ev |= POLLOUT;
    } else {
        if (s->off < sizeof s->fr ||
            s->pos - atomic_load_explicit(&l->tail, memory_order_seq_cst) < (uint64_t)l->nslots)
            ev = POLLIN;
        if (s->ctl_on || notice)
            ev |= POLLOUT;
    }
    return ev;
}

struct who {
    struct net_link *l;
    int j;
};

static void *progress_main(void *arg)
{
    (void)arg;
    struct net_link **ls = NULL;
    int nl = 0, lcap = 0;
    struct pollfd *pf = NULL;
    struct who *who = NULL;
    size_t pcap = 0;
    uint64_t seen = ~0ull;
    int idle = 0;
    for (;;) {
        pthread_mutex_lock(&g.lock);
        int stop = g.stop;
        if (!stop && g.gen != seen) {
            if (g.n > lcap) {
                struct net_link **nls = realloc(ls, (size_t)g.n * sizeof *nls);
                if (!nls) {
                    pthread_mutex_unlock(&g.lock);
                    ppu_transport_log(LOG_WARN, "net_socket: progress thread out of memory");
                    usleep(10000);
                    continue;
                }
                ls = nls;
                lcap = g.n;
            }
            if (g.n)
                memcpy(ls, g.links, (size_t)g.n * sizeof *ls);
            nl = g.n;
            seen = g.gen;
            g.ack = seen;
            pthread_cond_broadcast(&g.acked);
        }
        pthread_mutex_unlock(&g.lock);
        if (stop)
            break;
        size_t need = 1;
        for (int i = 0; i < nl; i++)
            need += (size_t)ls[i]->nsocks;
        if (need > pcap) {
            struct pollfd *npf = realloc(pf, need * sizeof *npf);
            struct who *nwho = npf ? realloc(who, need * sizeof *nwho) : NULL;
            if (npf)
                pf = npf;
            if (nwho)
                who = nwho;
            if (!npf || !nwho) {
                ppu_transport_log(LOG_WARN, "net_socket: progress thread out of memory");
                usleep(10000);
                continue;
            }
            pcap = need;
        }
        int nap = idle >= SPIN_ROUNDS;
        if (nap) /* then read the counters (sock_events): see kick() */
            atomic_store_explicit(&g.sleeping, 1, memory_order_seq_cst);
        nfds_t n = 0;
        for (int i = 0; i < nl; i++)
            for (int j = 0; j < ls[i]->nsocks; j++) {
                if (ls[i]->sock[j].dead)
                    continue;
                pf[n] = (struct pollfd){ls[i]->sock[j].fd, sock_events(ls[i], j), 0};
                who[n++] = (struct who){ls[i], j};
            }
        pf[n] = (struct pollfd){atomic_load_explicit(&g.evfd, memory_order_relaxed), POLLIN, 0};
        int r = poll(pf, n + 1, nap ? SLEEP_MS : 0);
        if (nap)
            atomic_store_explicit(&g.sleeping, 0, memory_order_relaxed);
        int moved = 0;
        if (r > 0) {
            if (pf[n].revents & POLLIN) {
                uint64_t v;
                if (read(pf[n].fd, &v, sizeof v) < 0) {
                    /* EAGAIN: another round will see it */
                }
                atomic_store_explicit(&g.wake_pending, 0, memory_order_seq_cst);
                moved = 1;
            }
            for (nfds_t i = 0; i < n; i++)
                if (pf[i].revents)
                    moved |= who[i].l->send ? svc_send(who[i].l, who[i].j, pf[i].revents)
                                            : svc_recv(who[i].l, who[i].j, pf[i].revents);
        }
        if (moved) {
            idle = 0;
        } else if (++idle < SPIN_ROUNDS) {
            sched_yield();
        }
    }
    free(ls);
    free(pf);
    free(who);
    return NULL;
}

static ppu_result_t register_link(struct net_link *l)
{
    ppu_result_t r = PPU_SUCCESS;
    pthread_mutex_lock(&g.life);
    if (g.running && g.pid != getpid()) {
        /* a forked child: the parent's thread is not here */
        g.running = 0;
        g.n = 0;
        int fd = atomic_exchange(&g.evfd, -1);
        if (fd >= 0)
            close(fd);
    }
    if (!g.running) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) {
            r = PPU_SYSTEM_ERROR;
        } else {
            atomic_store(&g.evfd, fd);
            atomic_store(&g.sleeping, 0);
            atomic_store(&g.wake_pending, 0);
            pthread_mutex_lock(&g.lock);
            g.stop = 0;
            g.gen = g.ack = 0;
            pthread_mutex_unlock(&g.lock);
            /* signals go to the application's threads, not this one */
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            int e = pthread_create(&g.thread, NULL, progress_main, NULL);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            if (e != 0) {
                atomic_store(&g.evfd, -1);
                close(fd);
                r = PPU_SYSTEM_ERROR;
            } else {
                pthread_setname_np(g.thread, "ppu-net");
                g.running = 1;
                g.pid = getpid();
            }
        }
    }
    if (r == PPU_SUCCESS) {
        pthread_mutex_lock(&g.lock);
        if (g.n == g.cap) {
            int cap = g.cap ? 2 * g.cap : 64;
            struct net_link **nl = realloc(g.links, (size_t)cap * sizeof *nl);
            if (nl) {
                g.links = nl;
                g.cap = cap;
            }
        }
        if (g.n < g.cap) {
            g.links[g.n++] = l;
            g.gen++;
            l->registered = 1;
        } else {
            r = PPU_SYSTEM_ERROR;
        }
        pthread_mutex_unlock(&g.lock);
    }
    pthread_mutex_unlock(&g.life);
    if (r == PPU_SUCCESS)
        kick(1);
    return r;
}

/* After this the thread no longer touches l; the last link stops it. */
static void unregister_link(struct net_link *l)
{
    pthread_mutex_lock(&g.life);
    pthread_mutex_lock(&g.lock);
    for (int i = 0; i < g.n; i++)
        if (g.links[i] == l) {
            g.links[i] = g.links[--g.n];
            break;
        }
    uint64_t mine = ++g.gen;
    int last = g.n == 0;
    if (last)
        g.stop = 1;
    pthread_mutex_unlock(&g.lock);
    kick(1);
    if (last) {
        pthread_join(g.thread, NULL);
        int fd = atomic_exchange(&g.evfd, -1);
        close(fd);
        g.running = 0;
    } else {
        pthread_mutex_lock(&g.lock);
        while (g.ack < mine)
            pthread_cond_wait(&g.acked, &g.lock);
        pthread_mutex_unlock(&g.lock);
    }
    l->registered = 0;
    pthread_mutex_unlock(&g.life);
}

/* ---- setup ---- */

static void link_free(struct net_link *l)
{
    if (!l)
        return;
    for (int j = 0; j < NET_MAX_SOCKS; j++)
        if (l->sock[j].fd >= 0)
            close(l->sock[j].fd);
    if (l->lfd >= 0)
        close(l->lfd);
    free(l->slots);
    free(l->meta);
    free((void *)l->ready);
    free(l);
}

static struct net_link *link_alloc(const struct ppu_link_params *p, int send, int nsocks)
{
    size_t sz = (sizeof(struct net_link) + 63) & ~(size_t)63;
    struct net_link *l = aligned_alloc(64, sz);
    if (!l)
        return NULL;
    memset(l, 0, sz);
    l->lfd = -1;
    for (int j = 0; j < NET_MAX_SOCKS; j++) {
        l->sock[j].fd = -1;
        l->sock[j].pos = (uint64_t)j;
    }
    l->send = send;
    l->self = p->self_rank;
    l->peer = p->peer_rank;
    l->slot_bytes = p->slot_bytes;
    l->nslots = p->nslots;
    l->nsocks = nsocks;
    l->setup_timeout_ms = p->setup_timeout_ms > 0 ? p->setup_timeout_ms : 60000;
    l->close_timeout_ms = p->close_timeout_ms > 0 ? p->close_timeout_ms : 60000;
    atomic_init(&l->head, 0);
    atomic_init(&l->done, 0);
    atomic_init(&l->tail, 0);
    atomic_init(&l->gone, 0);
    atomic_init(&l->eof, 0);
    atomic_init(&l->peer_failed, 0);
    atomic_init(&l->local_failed, 0);
    size_t bytes = ((size_t)p->nslots * p->slot_bytes + 63) & ~(size_t)63;
    l->slots = aligned_alloc(64, bytes);
    l->meta = calloc((size_t)p->nslots, sizeof *l->meta);
    if (!send) {
        l->ready = malloc((size_t)p->nslots * sizeof *l->ready);
        if (l->ready)
            for (int k = 0; k < p->nslots; k++)
                atomic_init(&l->ready[k], 0);
    }
    if (!l->slots || !l->meta || (!send && !l->ready)) {
        link_free(l);
        return NULL;
    }
    return l;
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
    if (getrandom(l->nonce, sizeof l->nonce, 0) != (ssize_t)sizeof l->nonce)
        goto fail;
    union ppu_sockaddr a;
    memset(&a, 0, sizeof a);
    memcpy(&a, &p->listen_addr,
           fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    if (fam == AF_INET)
        a.in4.sin_port = 0;
    else
        a.in6.sin6_port = 0;
    /* non-blocking: recv_finish polls it with the connections it vets */
    if (ppu_socket_listen(&a, &l->lfd) != PPU_SUCCESS ||
        fcntl(l->lfd, F_SETFL, fcntl(l->lfd, F_GETFL) | O_NONBLOCK) != 0) {
        char ab[64];
        ppu_socket_str(&a, ab, sizeof ab);
        ppu_transport_log(LOG_WARN, "net_socket: rank %d cannot listen on %s for link %d->%d: %s",
                          l->self, ab, l->peer, l->self, strerror(errno));
        goto fail;
    }
    struct net_info info;
    memset(&info, 0, sizeof info);
    info.magic = NET_MAGIC_INFO;
    info.version = NET_VERSION;
    info.family = (uint16_t)fam;
    info.nsocks = (uint16_t)l->nsocks;
    if (fam == AF_INET) {
        info.port = ntohs(a.in4.sin_port);
        memcpy(info.addr, &a.in4.sin_addr, 4);
    } else {
        info.port = ntohs(a.in6.sin6_port);
        info.scope_id = a.in6.sin6_scope_id;
        memcpy(info.addr, &a.in6.sin6_addr, 16);
    }
    memcpy(info.nonce, l->nonce, sizeof info.nonce);
    info.slot_bytes = p->slot_bytes;
    info.nslots = (uint32_t)p->nslots;
    memset(info_out, 0, PPU_CONNECT_INFO_BYTES);
    memcpy(info_out, &info, sizeof info);
    link->priv = l;
    link->direct = 0;
    return PPU_SUCCESS;
fail:
    link_free(l);
    return PPU_SYSTEM_ERROR;
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
    memset(&a, 0, sizeof a);
    if (info.family == AF_INET) {
        a.in4.sin_family = AF_INET;
        a.in4.sin_port = htons(info.port);
        memcpy(&a.in4.sin_addr, info.addr, 4);
    } else {
        a.in6.sin6_family = AF_INET6;
        a.in6.sin6_port = htons(info.port);
        a.in6.sin6_scope_id = info.scope_id;
        memcpy(&a.in6.sin6_addr, info.addr, 16);
    }
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
        h.nslots = (uint32_t)l->nslots;
        memcpy(h.nonce, info.nonce, sizeof h.nonce);
        h.slot_bytes = l->slot_bytes;
        h.sender_rank = l->self;
        h.receiver_rank = l->peer;
        ppu_result_t r = ppu_socket_connect(&a, deadline, &l->sock[j].fd);
        if (r == PPU_SUCCESS)
            r = ppu_socket_send(l->sock[j].fd, &h, sizeof h, deadline);
        if (r != PPU_SUCCESS) {
            char ab[INET6_ADDRSTRLEN] = "?";
            inet_ntop(info.family, info.addr, ab, sizeof ab);
            ppu_transport_log(LOG_WARN, "net_socket: link %d->%d: cannot connect to %s port %u "
                              "(socket %d of %d): %s", l->self, l->peer, ab, info.port, j,
                              l->nsocks, r == PPU_TIMEOUT ? "timed out" : strerror(errno));
            link_free(l);
            return r == PPU_TIMEOUT ? PPU_TIMEOUT : PPU_SYSTEM_ERROR;
        }
    }
    link->priv = l;
    /* messages may be references: the progress thread writes the caller's
     * bytes to the socket without a staging copy (send_ref) */
    link->direct = 1;
    return PPU_SUCCESS;
}

struct pending {
    int fd;
    uint64_t deadline;
    size_t got;
    struct net_hello h;
    char from[INET6_ADDRSTRLEN + 8];
};

/* Constant-time: how much of a guessed nonce was right must not show. */
static int nonce_equal(const uint8_t *a, const uint8_t *b)
{
    uint8_t d = 0;
    for (int i = 0; i < NET_NONCE_BYTES; i++)
        d |= a[i] ^ b[i];
    return d == 0;
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
    else if (!nonce_equal(h.nonce, nonce))
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
    int idx = net_check_hello(h, sizeof *h, l->nonce, l->nsocks, l->slot_bytes,
                              (uint32_t)l->nslots, have, NULL, &reason);
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

static ppu_result_t net_recv_finish(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    uint64_t deadline = ppu_now_ns() + (uint64_t)l->setup_timeout_ms * 1000000ull;
    struct pending pend[MAX_PENDING];
    int np = 0;
    unsigned have = 0, want = (1u << l->nsocks) - 1;
    ppu_result_t r = PPU_SUCCESS;
    char d[32];
    dir(l, d, sizeof d);
    while (have != want) {
        uint64_t now = ppu_now_ns();
        if (now >= deadline) {
            ppu_transport_log(LOG_WARN, "net_socket: link %s: %d of %d connections from rank %d "
                              "arrived within PPU_BOOTSTRAP_TIMEOUT_MS (%d ms)", d,
                              __builtin_popcount(have), l->nsocks, l->peer, l->setup_timeout_ms);
            r = PPU_TIMEOUT;
            break;
        }
        struct pollfd pf[MAX_PENDING + 1];
        uint64_t wake = deadline;
        for (int i = 0; i < np; i++) {
            pf[i] = (struct pollfd){pend[i].fd, POLLIN, 0};
            wake = pend[i].deadline < wake ? pend[i].deadline : wake;
        }
        int li = np < MAX_PENDING ? np : -1;
        if (li >= 0)
            pf[li] = (struct pollfd){l->lfd, POLLIN, 0};
        int pr = poll(pf, (nfds_t)(li >= 0 ? np + 1 : np), ppu_ms_until(wake));
        if (pr < 0 && errno != EINTR) {
            r = PPU_SYSTEM_ERROR;
            break;
        }
        now = ppu_now_ns();
        /* backwards: a dropped entry takes the last one's place, already seen */
        for (int i = np - 1; i >= 0; i--) {
            struct pending *c = &pend[i];
            char why[160] = "";
            if (pr > 0 && pf[i].revents) {
                ssize_t got = recv(c->fd, (char *)&c->h + c->got, sizeof c->h - c->got, MSG_DONTWAIT);
                if (got == 0) {
                    snprintf(why, sizeof why, "closed after %zu of %zu hello bytes", c->got,
                             sizeof c->h);
                } else if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    snprintf(why, sizeof why, "%s", strerror(errno));
                } else if (got > 0) {
                    c->got += (size_t)got;
                    if (c->got == sizeof c->h) {
                        int idx = vet_hello(l, &c->h, have, why, sizeof why);
                        if (idx >= 0) {
                            int one = 1;
                            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                            l->sock[idx].fd = c->fd;
                            have |= 1u << idx;
                            pend[i] = pend[--np];
                            continue;
                        }
                    }
                }
            }
            if (!why[0] && now >= c->deadline)
                snprintf(why, sizeof why, "no hello within %d ms (%zu of %zu bytes)",
                         HELLO_WAIT_MS, c->got, sizeof c->h);
            if (why[0]) {
                ppu_transport_log(LOG_WARN, "net_socket: link %s: dropped a connection from %s: "
                                  "%s", d, c->from, why);
                close(c->fd);
                pend[i] = pend[--np];
            }
        }
        if (li >= 0 && pr > 0 && (pf[li].revents & POLLIN)) {
            while (np < MAX_PENDING) {
                struct sockaddr_storage sa;
                socklen_t sl = sizeof sa;
                int fd = accept4(l->lfd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0)
                    break;
                struct pending *c = &pend[np++];
                memset(c, 0, sizeof *c);
                c->fd = fd;
                c->deadline = now + HELLO_WAIT_MS * 1000000ull;
                if (c->deadline > deadline)
                    c->deadline = deadline;
                peer_str(&sa, c->from, sizeof c->from);
            }
        }
    }
    for (int i = 0; i < np; i++) {
        ppu_transport_log(LOG_WARN, "net_socket: link %s: dropped a connection from %s: no "
                          "complete hello (%zu of %zu bytes) when the link was complete", d,
                          pend[i].from, pend[i].got, sizeof pend[i].h);
        close(pend[i].fd);
    }
    close(l->lfd);
    l->lfd = -1;
    if (r == PPU_SUCCESS)
        r = register_link(l);
    return r;
}

static ppu_result_t net_send_finish(struct ppu_link *link)
{
    return register_link(link->priv);
}

/* ---- data path (the core's thread) ---- */

/* A free slot: fewer than nslots messages not yet written out. */
static int has_credit(struct net_link *l)
{
    if (l->pos - l->cached_done < (uint64_t)l->nslots)
        return 1;
    l->cached_done = atomic_load_explicit(&l->done, memory_order_acquire);
    return l->pos - l->cached_done < (uint64_t)l->nslots;
}

static ppu_result_t net_send_reserve(struct ppu_link *link, void **slot)
{
    struct net_link *l = link->priv;
    if (!has_credit(l))
        return PPU_IN_PROGRESS;
    *slot = l->slots + (size_t)(l->pos % (uint64_t)l->nslots) * l->slot_bytes;
    return PPU_SUCCESS;
}

/* Hand message pos to the progress thread: bytes from the slot, or from
 * ref. */
static void post(struct ppu_link *link, struct net_link *l, size_t bytes, const void *ref)
{
    struct net_meta *m = &l->meta[l->pos % (uint64_t)l->nslots];
    *m = (struct net_meta){bytes, {link->call[0], link->call[1]}, link->sum, ref};
    l->pos++;
    atomic_store_explicit(&l->head, l->pos, memory_order_seq_cst);
    kick(0);
    link->bytes += bytes;
    link->msgs++;
}

/* link->ll is ignored: every message goes as it is (simple protocol). */
static ppu_result_t net_send_commit(struct ppu_link *link, size_t bytes)
{
    struct net_link *l = link->priv;
    if (bytes > l->slot_bytes)
        return PPU_INTERNAL_ERROR;
    post(link, l, bytes, NULL);
    return PPU_SUCCESS;
}

/* The caller's bytes go out as they are; they must stay unchanged until
 * send_drained reports every message written to the socket. */
static ppu_result_t net_send_ref(struct ppu_link *link, const void *src, size_t bytes)
{
    struct net_link *l = link->priv;
    if (!has_credit(l))
        return PPU_IN_PROGRESS;
    post(link, l, bytes, src);
    return PPU_SUCCESS;
}

static ppu_result_t net_send_drained(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    l->cached_done = atomic_load_explicit(&l->done, memory_order_acquire);
    return l->cached_done == l->pos ? PPU_SUCCESS : PPU_IN_PROGRESS;
}

static ppu_result_t net_recv_peek(struct ppu_link *link, struct ppu_msg *msg)
{
    struct net_link *l = link->priv;
    size_t k = (size_t)(l->pos % (uint64_t)l->nslots);
    if (atomic_load_explicit(&l->ready[k], memory_order_acquire) != l->pos + 1)
        return PPU_IN_PROGRESS;
    const struct net_meta *m = &l->meta[k];
    msg->ptr = l->slots + k * l->slot_bytes;
    msg->bytes = (size_t)m->bytes;
    msg->call[0] = m->call[0];
    msg->call[1] = m->call[1];
    msg->sum = m->sum;
    return PPU_SUCCESS;
}

static ppu_result_t net_recv_read(struct ppu_link *link, void *dst, size_t offset, size_t bytes)
{
    struct net_link *l = link->priv;
    size_t k = (size_t)(l->pos % (uint64_t)l->nslots);
    if (atomic_load_explicit(&l->ready[k], memory_order_acquire) != l->pos + 1 ||
        offset + bytes > l->meta[k].bytes)
        return PPU_INTERNAL_ERROR;
    memcpy(dst, l->slots + k * l->slot_bytes + offset, bytes);
    return PPU_SUCCESS;
}

static ppu_result_t net_recv_release(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    l->pos++;
    atomic_store_explicit(&l->tail, l->pos, memory_order_seq_cst);
    kick(0);
    return PPU_SUCCESS;
}

/* A connection reset; a sender's connection closed by the receiver; or the
 * socket that brings the receiver's next message closed (everything sent
 * on it before was read first, so that message will not come). */
static int net_peer_gone(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    if (!l)
        return 0;
    if (atomic_load_explicit(&l->gone, memory_order_acquire))
        return 1;
    if (l->send)
        return 0;
    unsigned eof = atomic_load_explicit(&l->eof, memory_order_acquire);
    return (int)(eof >> (l->pos % (uint64_t)l->nsocks) & 1u);
}

static void net_set_failed(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    if (!l)
        return;
    atomic_store_explicit(&l->local_failed, 1, memory_order_release);
    if (l->registered)
        kick(1);
}

static int net_peer_failed(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    return l && atomic_load_explicit(&l->peer_failed, memory_order_acquire);
}

static void net_close(struct ppu_link *link)
{
    struct net_link *l = link->priv;
    if (!l)
        return;
    if (l->registered && l->send) {
        /* committed messages still in the FIFO must reach the kernel
         * before the sockets close (then TCP delivers them) */
        uint64_t deadline = ppu_now_ns() + (uint64_t)l->close_timeout_ms * 1000000ull;
        while (atomic_load_explicit(&l->done, memory_order_acquire) < l->pos &&
               !atomic_load_explicit(&l->gone, memory_order_acquire) &&
               !atomic_load_explicit(&l->peer_failed, memory_order_acquire) &&
               !atomic_load_explicit(&l->local_failed, memory_order_acquire)) {
            if (ppu_now_ns() > deadline) {
                char d[32];
                ppu_transport_log(LOG_WARN, "net_socket: closing link %s with %llu message(s) "
                                  "rank %d did not take in %d ms", dir(l, d, sizeof d),
                                  (unsigned long long)(l->pos - atomic_load(&l->done)), l->peer,
                                  l->close_timeout_ms);
                break;
            }
            kick(0);
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
    if (l->registered)
        unregister_link(l);
    link_free(l);
    link->priv = NULL;
}

const struct ppu_transport_ops ppu_net_socket_ops = {
    .name = "net_socket",
    .recv_setup = net_recv_setup,
    .send_connect = net_send_connect,
    .recv_finish = net_recv_finish,
    .send_finish = net_send_finish,
    .send_reserve = net_send_reserve,
    .send_commit = net_send_commit,
    .send_ref = net_send_ref,
    .send_drained = net_send_drained,
    .recv_peek = net_recv_peek,
    .recv_read = net_recv_read,
    .recv_release = net_recv_release,
    .peer_gone = net_peer_gone,
    .set_failed = net_set_failed,
    .peer_failed = net_peer_failed,
    .close = net_close,
};
