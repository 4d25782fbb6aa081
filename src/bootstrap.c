/* Bootstrap: every rank says hello to the root (rank, size, its own listen
 * address). Up to PPU_BOOT_RING_MAX ranks the root answers each with its
 * ring successor's address, each rank connects to the next one, forming
 * the ring used by allgather/barrier, and the table of all ranks'
 * addresses goes round that ring. Past it the root answers rank r with the
 * addresses of ranks r - 1, r - 2, r - 4, ... (ceil(log2 N) entries), the
 * ranks Bruck's allgather sends to, and the table is gathered in
 * ceil(log2 N) rounds of point-to-point messages: the root sends
 * O(N log N) bytes, not N tables, and no step waits on N - 1 others.
 *
 * Wire format (big endian): header {magic, version, type, secret[16], len}
 * followed by len payload bytes. A connection whose header is not ours,
 * whose secret is wrong, or that stalls is closed and logged; the
 * listener keeps serving the real ranks. */
#include "bootstrap.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/param.h"
#include "util/wait.h"

#define BOOT_MAGIC 0x50504231u /* "PPB1" */
#define BOOT_VERSION PPU_BOOT_VERSION
#define ID_MAGIC 0x50504944u /* "PPID" */
#define HELLO_TIMEOUT_NS (2ull * 1000000000ull)
#define MAX_RANKS 65536

enum { MSG_HELLO = 1, MSG_TABLE = 2, MSG_ABORT = 3, MSG_RING = 4, MSG_P2P = 5 };

struct wire_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint8_t secret[PPU_BOOT_SECRET_BYTES];
    uint32_t len;
} __attribute__((packed));

struct wire_addr { /* one rank's entry in the table */
    uint16_t family;
    uint16_t port; /* network order already */
    uint8_t addr[16];
    uint64_t host_hash;
} __attribute__((packed));

struct wire_hello {
    uint32_t rank;
    uint32_t nranks;
    struct wire_addr addr;
} __attribute__((packed));

_Static_assert(sizeof(struct wire_hdr) == PPU_BOOT_HDR_BYTES, "wire_hdr size");
_Static_assert(sizeof(struct wire_addr) == PPU_BOOT_ADDR_BYTES, "wire_addr size");
_Static_assert(sizeof(struct wire_hello) == PPU_BOOT_HELLO_BYTES, "wire_hello size");

/* ---- unique id ---- */

void ppu_id_pack(const struct ppu_id_fields *f, ppu_unique_id_t *id)
{
    memset(id, 0, sizeof *id);
    uint8_t *p = (uint8_t *)id->internal;
    uint32_t magic = htonl(ID_MAGIC);
    uint16_t ver = htons(BOOT_VERSION), fam = htons((uint16_t)f->root.sa.sa_family);
    memcpy(p, &magic, 4);
    memcpy(p + 4, &ver, 2);
    memcpy(p + 6, &fam, 2);
    if (f->root.sa.sa_family == AF_INET) {
        memcpy(p + 8, &f->root.in4.sin_port, 2);
        memcpy(p + 10, &f->root.in4.sin_addr, 4);
    } else {
        memcpy(p + 8, &f->root.in6.sin6_port, 2);
        memcpy(p + 10, &f->root.in6.sin6_addr, 16);
    }
    memcpy(p + 32, f->secret, PPU_BOOT_SECRET_BYTES);
}

ppu_result_t ppu_id_unpack(const ppu_unique_id_t *id, struct ppu_id_fields *f)
{
    const uint8_t *p = (const uint8_t *)id->internal;
    uint32_t magic;
    uint16_t ver, fam;
    memcpy(&magic, p, 4);
    memcpy(&ver, p + 4, 2);
    memcpy(&fam, p + 6, 2);
    if (ntohl(magic) != ID_MAGIC || ntohs(ver) != BOOT_VERSION)
        return PPU_INVALID_ARGUMENT;
    memset(f, 0, sizeof *f);
    fam = ntohs(fam);
    if (fam == AF_INET) {
        f->root.in4.sin_family = AF_INET;
        memcpy(&f->root.in4.sin_port, p + 8, 2);
        memcpy(&f->root.in4.sin_addr, p + 10, 4);
    } else if (fam == AF_INET6) {
        f->root.in6.sin6_family = AF_INET6;
        memcpy(&f->root.in6.sin6_port, p + 8, 2);
        memcpy(&f->root.in6.sin6_addr, p + 10, 16);
    } else {
        return PPU_INVALID_ARGUMENT;
    }
    memcpy(f->secret, p + 32, PPU_BOOT_SECRET_BYTES);
    return PPU_SUCCESS;
}

uint64_t ppu_host_hash(void)
{
    char buf[512] = {0};
    size_t o = 0;
    gethostname(buf, 128);
    o = strlen(buf);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        o += fread(buf + o, 1, 64, f);
        fclose(f);
    }
    ssize_t n = readlink("/proc/self/ns/net", buf + o, sizeof buf - o - 1);
    if (n > 0)
        o += (size_t)n;
    return ppu_hash64(buf, o);
}

/* ---- wire helpers ---- */

static ppu_result_t send_msg(int fd, const uint8_t *secret, int type, const void *payload,
                             uint32_t len, uint64_t deadline)
{
    struct wire_hdr h;
    h.magic = htonl(BOOT_MAGIC);
    h.version = htons(BOOT_VERSION);
    h.type = htons((uint16_t)type);
    memcpy(h.secret, secret, PPU_BOOT_SECRET_BYTES);
    h.len = htonl(len);
    PPU_CHECK(ppu_socket_send(fd, &h, sizeof h, deadline));
    return len ? ppu_socket_send(fd, payload, len, deadline) : PPU_SUCCESS;
}

ppu_result_t ppu_boot_check_hdr(const void *hdr_bytes, size_t n, const uint8_t *secret, int type,
                                uint32_t max_len, uint32_t *len, const char **why)
{
    struct wire_hdr h;
    if (n < sizeof h) {
        *why = "shorter than a header";
        return PPU_REMOTE_ERROR;
    }
    memcpy(&h, hdr_bytes, sizeof h);
    if (ntohl(h.magic) != BOOT_MAGIC) {
        *why = "bytes are not the ppuccl bootstrap protocol";
        return PPU_REMOTE_ERROR;
    }
    if (!ppu_ct_equal(h.secret, secret, PPU_BOOT_SECRET_BYTES)) {
        *why = "wrong secret";
        return PPU_REMOTE_ERROR;
    }
    *len = ntohl(h.len);
    int t = ntohs(h.type);
    /* A member of this job (it knows the secret) with another ppuccl. The
     * header and an abort (a header, then a NUL-terminated sentence) are
     * the same in every version, so an abort is read whatever its version:
     * that is how the root tells such a rank what it runs. */
    if (ntohs(h.version) != BOOT_VERSION && !(type == MSG_ABORT && t == MSG_ABORT)) {
        *why = "a rank of this job speaks another bootstrap protocol (another ppuccl version)";
        return PPU_INVALID_USAGE;
    }
    if (t != type || *len > max_len) {
        *why = t != type ? "unexpected message type" : "length too large";
        return PPU_REMOTE_ERROR;
    }
    return PPU_SUCCESS;
}

/* Read and check a header. why gets a reason when the bytes are not ours. */
static ppu_result_t recv_hdr(int fd, const uint8_t *secret, int type, uint32_t max_len,
                             uint32_t *len, uint64_t deadline, const char **why)
{
    struct wire_hdr h;
    ppu_result_t r = ppu_socket_recv(fd, &h, sizeof h, deadline);
    if (r != PPU_SUCCESS) {
        *why = r == PPU_TIMEOUT ? "sent no complete header in time" : "closed before a header";
        return r;
    }
    return ppu_boot_check_hdr(&h, sizeof h, secret, type, max_len, len, why);
}

ppu_result_t ppu_boot_check_hello(const void *payload, size_t n, int nranks, uint32_t *rank,
                                  uint32_t *size, const char **why)
{
    struct wire_hello hello;
    if (n != sizeof hello) {
        *why = "hello has the wrong length";
        return PPU_REMOTE_ERROR;
    }
    memcpy(&hello, payload, sizeof hello);
    uint32_t rk = ntohl(hello.rank), nr = ntohl(hello.nranks);
    if (nr == 0 || nr > MAX_RANKS || rk >= nr) {
        *why = "rank or size out of range";
        return PPU_REMOTE_ERROR;
    }
    if (nranks && (int)nr != nranks) {
        *why = "rank count differs from the other ranks'";
        return PPU_REMOTE_ERROR;
    }
    *rank = rk;
    *size = nr;
    return PPU_SUCCESS;
}

static void addr_to_wire(const union ppu_sockaddr *a, uint64_t hash, struct wire_addr *w)
{
    memset(w, 0, sizeof *w);
    w->family = htons((uint16_t)a->sa.sa_family);
    if (a->sa.sa_family == AF_INET) {
        w->port = a->in4.sin_port;
        memcpy(w->addr, &a->in4.sin_addr, 4);
    } else {
        w->port = a->in6.sin6_port;
        memcpy(w->addr, &a->in6.sin6_addr, 16);
    }
    w->host_hash = htobe64(hash);
}

static void addr_from_wire(const struct wire_addr *w, union ppu_sockaddr *a)
{
    memset(a, 0, sizeof *a);
    if (ntohs(w->family) == AF_INET6) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = w->port;
        memcpy(&a->in6.sin6_addr, w->addr, 16);
    } else {
        a->in4.sin_family = AF_INET;
        a->in4.sin_port = w->port;
        memcpy(&a->in4.sin_addr, w->addr, 4);
    }
}

ppu_result_t ppu_boot_addr_from_wire(const void *entry, size_t n, union ppu_sockaddr *addr,
                                     uint64_t *host_hash)
{
    struct wire_addr w;
    if (n < sizeof w)
        return PPU_INVALID_ARGUMENT;
    memcpy(&w, entry, sizeof w);
    addr_from_wire(&w, addr);
    *host_hash = be64toh(w.host_hash);
    return PPU_SUCCESS;
}

static void log_dropped(const char *who, const union ppu_sockaddr *peer, const char *why)
{
    char s[64];
    ppu_socket_str(peer, s, sizeof s);
    PPU_WARN(PPU_SUB_BOOT, "%s dropped a connection from %s: %s", who, s, why);
}

/* ---- root ---- */

/* The entries the root sends rank r of n, into who (when not NULL); their
 * count. Up to PPU_BOOT_RING_MAX ranks: its ring successor. Past it: the
 * ranks r - 1, r - 2, r - 4, ... that Bruck's allgather sends to. */
static int root_entries(int n, int r, int *who)
{
    if (n <= PPU_BOOT_RING_MAX) {
        if (who)
            who[0] = (r + 1) % n;
        return 1;
    }
    int e = 0;
    for (int k = 1; k < n; k <<= 1, e++)
        if (who)
            who[e] = (r - k % n + n) % n;
    return e;
}

/* A connection to the root whose header and hello are still arriving. */
struct root_pending {
    int fd;
    uint64_t since;
    size_t have, need;
    union ppu_sockaddr peer;
    unsigned char buf[PPU_BOOT_HDR_BYTES + PPU_BOOT_HELLO_BYTES];
};

struct root_state {
    int lfd;
    uint8_t secret[PPU_BOOT_SECRET_BYTES];
    uint64_t timeout_ns;
    struct root_pending *pend;
    int np, pcap;
};

#define ROOT_PENDING_MAX 4096 /* the rest wait in the listener's backlog */

static void root_pending_drop(struct root_state *rs, int i, const char *why)
{
    if (why)
        log_dropped("bootstrap root", &rs->pend[i].peer, why);
    close(rs->pend[i].fd);
    rs->pend[i] = rs->pend[--rs->np];
}

/* Bytes for pending connection i. 1: its header is in and failed the
 * check, or header and hello are in (*done set, the pending entry gone,
 * its fd, peer, header and hello handed out); 0 otherwise (it may have
 * been dropped: closed early). */
static int root_pending_read(struct root_state *rs, int i, int *fd, union ppu_sockaddr *peer,
                             struct wire_hdr *hdr, struct wire_hello *hello, ppu_result_t *verdict,
                             const char **why)
{
    struct root_pending *p = &rs->pend[i];
    ssize_t k = read(p->fd, p->buf + p->have, p->need - p->have);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (k <= 0) {
        root_pending_drop(rs, i, p->have < sizeof *hdr ? "closed before a header"
                                                       : "truncated hello");
        return 0;
    }
    p->have += (size_t)k;
    if (p->have < p->need)
        return 0;
    memcpy(hdr, p->buf, sizeof *hdr);
    *verdict = PPU_SUCCESS;
    if (p->need == sizeof *hdr) { /* the header: believed once checked whole */
        uint32_t len = 0;
        *verdict = ppu_boot_check_hdr(hdr, sizeof *hdr, rs->secret, MSG_HELLO, sizeof *hello,
                                      &len, why);
        if (*verdict == PPU_SUCCESS && len != sizeof *hello) {
            *why = "hello has the wrong length";
            *verdict = PPU_REMOTE_ERROR;
        }
        if (*verdict == PPU_SUCCESS) {
            p->need += sizeof *hello;
            return 0;
        }
    } else {
        memcpy(hello, p->buf + sizeof *hdr, sizeof *hello);
    }
    *fd = p->fd;
    *peer = p->peer;
    rs->pend[i] = rs->pend[--rs->np];
    return 1;
}

/* The next connection whose header and hello have come, or whose header
 * failed its check: read side by side from every connection, each until
 * the bootstrap deadline, so that a rank descheduled between its connect
 * and its hello (seconds, under a sanitizer on a loaded host) neither
 * holds the others up nor is dropped. PPU_TIMEOUT at deadline. */
static ppu_result_t root_next(struct root_state *rs, uint64_t deadline, int *fd,
                              union ppu_sockaddr *peer, struct wire_hdr *hdr,
                              struct wire_hello *hello, ppu_result_t *verdict, const char **why)
{
    for (;;) {
        uint64_t now = ppu_now_ns();
        for (int i = rs->np - 1; i >= 0; i--)
            if (now - rs->pend[i].since > rs->timeout_ns)
                root_pending_drop(rs, i, "sent no complete hello before the bootstrap deadline");
        if (now >= deadline)
            return PPU_TIMEOUT;
        struct pollfd *pf = malloc(sizeof *pf * ((size_t)rs->np + 1));
        if (!pf)
            return PPU_SYSTEM_ERROR;
        int n = 0, listen_too = rs->np < ROOT_PENDING_MAX;
        for (int i = 0; i < rs->np; i++)
            pf[n++] = (struct pollfd){.fd = rs->pend[i].fd, .events = POLLIN};
        if (listen_too)
            pf[n++] = (struct pollfd){.fd = rs->lfd, .events = POLLIN};
        uint64_t wake = deadline, cap = now + 1000000000ull; /* drop stale ones each second */
        int got = poll(pf, (nfds_t)n, ppu_ms_until(wake < cap ? wake : cap));
        int np = rs->np;
        if (got > 0) {
            /* backwards: a finished or dropped entry takes the last one's place */
            for (int i = np - 1; i >= 0; i--)
                if (pf[i].revents &&
                    root_pending_read(rs, i, fd, peer, hdr, hello, verdict, why)) {
                    free(pf);
                    return PPU_SUCCESS;
                }
            if (listen_too && (pf[n - 1].revents & POLLIN)) {
                union ppu_sockaddr a;
                socklen_t sl = sizeof a;
                int c = accept4(rs->lfd, &a.sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c >= 0) {
                    if (rs->np == rs->pcap) {
                        int cap2 = rs->pcap ? 2 * rs->pcap : 64;
                        struct root_pending *g = realloc(rs->pend, sizeof *g * (size_t)cap2);
                        if (!g) {
                            close(c);
                            free(pf);
                            continue;
                        }
                        rs->pend = g;
                        rs->pcap = cap2;
                    }
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    rs->pend[rs->np] = (struct root_pending){c, ppu_now_ns(), 0, sizeof *hdr, a, {0}};
                    rs->np++;
                    if (root_pending_read(rs, rs->np - 1, fd, peer, hdr, hello, verdict, why)) {
                        free(pf); /* often all there already */
                        return PPU_SUCCESS;
                    }
                }
            }
        }
        free(pf);
    }
}

/* Ends the init of every connected rank with msg. */
static void root_abort_with(struct root_state *rs, int *fds, int nranks, const char *msg)
{
    PPU_WARN(PPU_SUB_BOOT, "%s", msg);
    uint64_t dl = ppu_now_ns() + HELLO_TIMEOUT_NS;
    for (int i = 0; i < nranks; i++)
        if (fds[i] >= 0)
            send_msg(fds[i], rs->secret, MSG_ABORT, msg, (uint32_t)strlen(msg) + 1, dl);
}

static void root_abort(struct root_state *rs, int *fds, struct wire_addr *table, int nranks)
{
    char msg[1024];
    int o = snprintf(msg, sizeof msg, "bootstrap root timed out waiting for rank(s)");
    int missing = 0;
    for (int i = 0; i < nranks && o < (int)sizeof msg - 16; i++)
        if (fds[i] < 0) {
            o += snprintf(msg + o, sizeof msg - (size_t)o, "%s %d", missing ? "," : "", i);
            missing++;
        }
    snprintf(msg + o, sizeof msg - (size_t)o, " of %d to connect", nranks);
    root_abort_with(rs, fds, nranks, msg);
    (void)table;
}

static void *root_main(void *arg)
{
    struct root_state *rs = arg;
    int nranks = 0, have = 0, nmismatch = 0;
    char mismatch[300] = "";
    int *fds = NULL;
    struct wire_addr *table = NULL;
    uint64_t deadline = UINT64_MAX; /* starts at the first hello */
    for (;;) {
        int fd = -1;
        union ppu_sockaddr peer;
        const char *why = "";
        struct wire_hello hello;
        struct wire_hdr hdr_copy;
        ppu_result_t r = PPU_SUCCESS;
        ppu_result_t got = root_next(rs, deadline, &fd, &peer, &hdr_copy, &hello, &r, &why);
        if (got == PPU_TIMEOUT) {
            root_abort(rs, fds, table, nranks);
            break;
        }
        if (got != PPU_SUCCESS)
            continue;
        uint32_t rk = 0, nr = 0;
        if (r == PPU_SUCCESS)
            r = ppu_boot_check_hello(&hello, sizeof hello, nranks, &rk, &nr, &why);
        if (r == PPU_SUCCESS) {
            if (!nranks) {
                nranks = (int)nr;
                fds = malloc(sizeof *fds * (size_t)nranks);
                table = calloc((size_t)nranks, sizeof *table);
                for (int i = 0; i < nranks; i++)
                    fds[i] = -1;
                deadline = ppu_now_ns() + rs->timeout_ns;
            }
            if (fds[rk] >= 0) {
                why = "a second hello for the same rank";
                r = PPU_REMOTE_ERROR;
            } else {
                fds[rk] = fd;
                table[rk] = hello.addr;
                have++;
            }
        }
        if (r == PPU_INVALID_USAGE && !mismatch[0]) /* a job member with another ppuccl */
            snprintf(mismatch, sizeof mismatch,
                     "a rank connected with bootstrap protocol %u, but the root (rank 0) runs "
                     "ppuccl %s, protocol %d: every rank must load the same ppuccl",
                     (unsigned)ntohs(hdr_copy.version),
                     PPU_VERSION_STRING, BOOT_VERSION);
        if (r == PPU_INVALID_USAGE) {
            send_msg(fd, rs->secret, MSG_ABORT, mismatch, (uint32_t)strlen(mismatch) + 1,
                     ppu_now_ns() + HELLO_TIMEOUT_NS);
            nmismatch++;
        }
        if (r != PPU_SUCCESS) {
            log_dropped("bootstrap root", &peer, why);
            close(fd);
        }
        /* every rank came, some with another ppuccl: that ends them all
         * (before any good rank came, nranks is unknown: wait on) */
        if (mismatch[0] && nranks && have + nmismatch >= nranks) {
            root_abort_with(rs, fds, nranks, mismatch);
            break;
        }
        if (r != PPU_SUCCESS)
            continue;
        if (have == nranks) {
            /* each rank gets the entries it needs to gather the rest
             * (root_entries), not the table */
            uint64_t dl = ppu_now_ns() + rs->timeout_ns;
            int ne = root_entries(nranks, 0, NULL);
            struct wire_addr *part = malloc(sizeof *part * (size_t)ne);
            int *who = malloc(sizeof *who * (size_t)ne);
            for (int i = 0; part && who && i < nranks; i++) {
                root_entries(nranks, i, who);
                for (int e = 0; e < ne; e++)
                    part[e] = table[who[e]];
                send_msg(fds[i], rs->secret, MSG_TABLE, part, (uint32_t)(sizeof *part * (size_t)ne),
                         dl);
            }
            if (!part || !who)
                root_abort_with(rs, fds, nranks, "bootstrap root: out of memory");
            free(part);
            free(who);
            PPU_INFO(PPU_SUB_BOOT, "bootstrap root: all %d ranks connected", nranks);
            break;
        }
    }
    for (int i = 0; fds && i < nranks; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    while (rs->np > 0)
        root_pending_drop(rs, rs->np - 1, NULL);
    free(rs->pend);
    free(fds);
    free(table);
    close(rs->lfd);
    free(rs);
    return NULL;
}

ppu_result_t ppu_bootstrap_root_start(union ppu_sockaddr *root, const uint8_t *secret,
                                      ppu_unique_id_t *id, char *err, size_t errlen)
{
    /* The root holds a connection to every rank until all have said hello:
     * thousands of descriptors. Take the hard limit (many systems set the
     * soft one to 1,024). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            PPU_INFO(PPU_SUB_BOOT, "bootstrap root: open files limit raised from %llu to %llu",
                     (unsigned long long)was, (unsigned long long)rl.rlim_max);
    }
    struct root_state *rs = calloc(1, sizeof *rs);
    if (!rs)
        return PPU_SYSTEM_ERROR;
    char s[64];
    ppu_socket_str(root, s, sizeof s);
    if (ppu_socket_listen(root, &rs->lfd) != PPU_SUCCESS) {
        snprintf(err, errlen, "bootstrap root cannot listen on %s: %s", s, strerror(errno));
        free(rs);
        return PPU_SYSTEM_ERROR;
    }
    memcpy(rs->secret, secret, PPU_BOOT_SECRET_BYTES);
    rs->timeout_ns = (uint64_t)ppu_param_int(PPU_P_BOOTSTRAP_TIMEOUT_MS) * 1000000ull;
    struct ppu_id_fields f;
    f.root = *root;
    memcpy(f.secret, secret, PPU_BOOT_SECRET_BYTES);
    pthread_t t;
    if (pthread_create(&t, NULL, root_main, rs) != 0) {
        close(rs->lfd);
        free(rs);
        snprintf(err, errlen, "cannot start the bootstrap root thread");
        return PPU_SYSTEM_ERROR;
    }
    pthread_detach(t);
    ppu_id_pack(&f, id);
    ppu_socket_str(root, s, sizeof s);
    PPU_INFO(PPU_SUB_BOOT, "bootstrap root listening on %s", s);
    return PPU_SUCCESS;
}

/* ---- ranks ---- */

static ppu_result_t allgather_bruck(struct ppu_bootstrap *bs, void *data, size_t size,
                                    uint32_t seq, uint64_t deadline);

/* Accept from the ring predecessor, dropping anything else. */
static ppu_result_t accept_prev(struct ppu_bootstrap *bs, int lfd, uint64_t deadline)
{
    for (;;) {
        int fd;
        union ppu_sockaddr peer;
        PPU_CHECK(ppu_socket_accept(lfd, deadline, &fd, &peer));
        uint64_t hdl = ppu_now_ns() + HELLO_TIMEOUT_NS;
        if (hdl > deadline)
            hdl = deadline;
        uint32_t len, rk = 0;
        const char *why = "";
        ppu_result_t r = recv_hdr(fd, bs->secret, MSG_RING, 4, &len, hdl, &why);
        if (r == PPU_SUCCESS && (len != 4 || ppu_socket_recv(fd, &rk, 4, hdl) != PPU_SUCCESS)) {
            why = "truncated ring hello";
            r = PPU_REMOTE_ERROR;
        }
        int prev = (bs->rank + bs->nranks - 1) % bs->nranks;
        if (r == PPU_SUCCESS && (int)ntohl(rk) != prev) {
            why = "ring hello from an unexpected rank";
            r = PPU_REMOTE_ERROR;
        }
        if (r == PPU_SUCCESS) {
            bs->prev_fd = fd;
            return PPU_SUCCESS;
        }
        log_dropped("bootstrap listener", &peer, why);
        close(fd);
    }
}

ppu_result_t ppu_bootstrap_init(const ppu_unique_id_t *id, int rank, int nranks,
                                struct ppu_bootstrap **bs_out, char *err, size_t errlen)
{
    struct ppu_id_fields f;
    if (ppu_id_unpack(id, &f) != PPU_SUCCESS) {
        snprintf(err, errlen, "the unique id is not valid (not made by ppu_get_unique_id "
                              "of this version)");
        return PPU_INVALID_ARGUMENT;
    }
    ppu_result_t res;
    struct ppu_bootstrap *bs = calloc(1, sizeof *bs);
    if (!bs)
        return PPU_SYSTEM_ERROR;
    bs->rank = rank;
    bs->nranks = nranks;
    bs->next_fd = bs->prev_fd = bs->lfd = -1;
    memcpy(bs->secret, f.secret, sizeof bs->secret);
    bs->timeout_ns = (uint64_t)ppu_param_int(PPU_P_BOOTSTRAP_TIMEOUT_MS) * 1000000ull;
    bs->host_hash = calloc((size_t)nranks, sizeof *bs->host_hash);
    bs->addr = calloc((size_t)nranks, sizeof *bs->addr);
    struct wire_addr *table = calloc((size_t)nranks, sizeof *table);
    int lfd = -1, rfd = -1;
    char root_s[64];
    ppu_socket_str(&f.root, root_s, sizeof root_s);
    uint64_t deadline = ppu_now_ns() + bs->timeout_ns;
    if (!bs->host_hash || !bs->addr || !table) {
        res = PPU_SYSTEM_ERROR;
        goto err_free;
    }

    /* Our own listener, on the root's interface when the root is local. */
    union ppu_sockaddr me;
    if (ppu_socket_is_loopback(&f.root)) {
        me = f.root;
    } else {
        PPU_CHECK_GOTO(ppu_socket_pick_addr(&me, err, errlen), res, err_free);
        if (me.sa.sa_family != f.root.sa.sa_family)
            me = f.root; /* same family as the root, bound below to any port */
    }
    if (me.sa.sa_family == AF_INET)
        me.in4.sin_port = 0;
    else
        me.in6.sin6_port = 0;
    res = ppu_socket_listen(&me, &lfd);
    if (res != PPU_SUCCESS) {
        snprintf(err, errlen, "rank %d cannot listen for its ring peer: %s", rank, strerror(errno));
        goto err_free;
    }

    res = ppu_socket_connect(&f.root, deadline, &rfd);
    if (res != PPU_SUCCESS) {
        snprintf(err, errlen, "rank %d could not reach the bootstrap root at %s within %llu ms",
                 rank, root_s, (unsigned long long)(bs->timeout_ns / 1000000));
        goto err_close;
    }
    struct wire_hello hello = {htonl((uint32_t)rank), htonl((uint32_t)nranks), {0}};
    bs->host_hash[rank] = ppu_host_hash();
    addr_to_wire(&me, bs->host_hash[rank], &hello.addr);
    PPU_CHECK_GOTO(send_msg(rfd, bs->secret, MSG_HELLO, &hello, sizeof hello, deadline), res,
                   err_close);
    uint32_t len;
    const char *why = "";
    /* The root answers once every rank said hello, or with an abort. */
    struct wire_hdr peek;
    res = ppu_socket_recv(rfd, &peek, sizeof peek, deadline + HELLO_TIMEOUT_NS);
    /* Either reply is checked whole (magic, version, secret, length)
     * before it is believed: a forged abort must not end the init. */
    int ne = root_entries(nranks, rank, NULL), *who = NULL;
    size_t table_bytes = sizeof *table * (size_t)ne; /* root_entries' */
    int is_abort = res == PPU_SUCCESS && ntohs(peek.type) == MSG_ABORT;
    if (res == PPU_SUCCESS &&
        ppu_boot_check_hdr(&peek, sizeof peek, bs->secret, is_abort ? MSG_ABORT : MSG_TABLE,
                           is_abort ? 4095 : (uint32_t)table_bytes, &len, &why) != PPU_SUCCESS)
        res = PPU_REMOTE_ERROR;
    if (res == PPU_SUCCESS && is_abort) {
        char msg[4096] = "";
        uint64_t mdl = ppu_now_ns() + HELLO_TIMEOUT_NS; /* it comes at our own deadline */
        if (ppu_socket_recv(rfd, msg, len, mdl) == PPU_SUCCESS)
            msg[len ? len - 1 : 0] = '\0';
        int other = ntohs(peek.version) != BOOT_VERSION || strstr(msg, "bootstrap protocol");
        if (other)
            snprintf(err, errlen, "rank %d runs ppuccl %s (bootstrap protocol %d): %s (root %s)",
                     rank, PPU_VERSION_STRING, BOOT_VERSION, msg, root_s);
        else
            snprintf(err, errlen, "rank %d: %s (root %s)", rank, msg, root_s);
        res = other ? PPU_INVALID_USAGE : PPU_TIMEOUT;
        goto err_close;
    }
    if (res == PPU_SUCCESS) {
        if (len != table_bytes) {
            why = "the root sent a malformed table";
            res = PPU_REMOTE_ERROR;
        } else {
            struct wire_addr *part = malloc(table_bytes);
            who = malloc(sizeof *who * (size_t)ne);
            res = part && who ? ppu_socket_recv(rfd, part, len, deadline) : PPU_SYSTEM_ERROR;
            if (res == PPU_SUCCESS) {
                root_entries(nranks, rank, who);
                for (int e = 0; e < ne; e++)
                    table[who[e]] = part[e];
            }
            free(part);
            free(who);
        }
    }
    if (res != PPU_SUCCESS) {
        snprintf(err, errlen, "rank %d: no rank table from the bootstrap root %s (%s)", rank,
                 root_s, res == PPU_TIMEOUT ? "timed out" : *why ? why : "connection lost");
        goto err_close;
    }
    close(rfd);
    rfd = -1;
    addr_to_wire(&me, bs->host_hash[rank], &table[rank]);

    if (nranks > PPU_BOOT_RING_MAX) {
        /* Bruck's rounds over point-to-point messages, to the ranks whose
         * entries the root sent; the listener serves them from here on */
        for (int k = 1; k < nranks; k <<= 1) {
            int to = (rank - k % nranks + nranks) % nranks;
            addr_from_wire(&table[to], &bs->addr[to]);
        }
        bs->lfd = lfd;
        lfd = -1;
        res = allgather_bruck(bs, table, sizeof *table, bs->ag_seq++,
                              ppu_now_ns() + bs->timeout_ns);
        if (res != PPU_SUCCESS) {
            snprintf(err, errlen, "rank %d: the ranks' address table was not gathered: %s", rank,
                     ppu_get_error_string(res));
            goto err_close;
        }
    } else if (nranks > 1) {
        int next = (rank + 1) % nranks;
        union ppu_sockaddr na;
        addr_from_wire(&table[next], &na);
        res = ppu_socket_connect(&na, deadline, &bs->next_fd);
        uint32_t rk = htonl((uint32_t)rank);
        if (res == PPU_SUCCESS)
            res = send_msg(bs->next_fd, bs->secret, MSG_RING, &rk, 4, deadline);
        if (res == PPU_SUCCESS)
            res = accept_prev(bs, lfd, deadline);
        if (res != PPU_SUCCESS) {
            snprintf(err, errlen, "rank %d could not join the bootstrap ring (next rank %d, "
                     "previous rank %d): %s", rank, next, (rank + nranks - 1) % nranks,
                     ppu_get_error_string(res));
            goto err_close;
        }
        /* every rank's entry, round the ring */
        res = ppu_bootstrap_allgather(bs, table, sizeof *table);
        if (res != PPU_SUCCESS) {
            snprintf(err, errlen, "rank %d: the ranks' address table did not go round the "
                     "bootstrap ring: %s", rank, ppu_get_error_string(res));
            goto err_close;
        }
    }
    for (int i = 0; i < nranks; i++) {
        bs->host_hash[i] = be64toh(table[i].host_hash);
        addr_from_wire(&table[i], &bs->addr[i]);
    }
    if (lfd >= 0)
        bs->lfd = lfd; /* kept for point-to-point messages */
    free(table);
    *bs_out = bs;
    return PPU_SUCCESS;

err_close:
    if (rfd >= 0)
        close(rfd);
    if (lfd >= 0)
        close(lfd);
err_free:
    free(table);
    ppu_bootstrap_close(bs);
    return res;
}

/* Tags of the allgather's messages: high bit set (links use small ones),
 * then the allgather's number, its round and the chunk of the round. */
#define AG_CHUNKS_MAX 4096
static uint32_t ag_tag(uint32_t seq, int round, size_t chunk)
{
    return 0x80000000u | (seq & 0x3fffu) << 17 | (uint32_t)round << 12 | (uint32_t)chunk;
}

/* Bruck: after round k (k = 1, 2, 4, ...) this rank holds the entries of
 * ranks r .. r + 2k - 1; it sends the first min(k, n - k) of them to rank
 * r - k and receives as many from rank r + k. In rotated order in tmp,
 * then put in place. */
static ppu_result_t allgather_bruck(struct ppu_bootstrap *bs, void *data, size_t size,
                                    uint32_t seq, uint64_t deadline)
{
    int n = bs->nranks, r = bs->rank;
    char *tmp = malloc((size_t)n * size);
    if (!tmp)
        return PPU_SYSTEM_ERROR;
    memcpy(tmp, (char *)data + (size_t)r * size, size);
    ppu_result_t res = PPU_SUCCESS;
    int round = 0;
    for (int k = 1; k < n && res == PPU_SUCCESS; k <<= 1, round++) {
        size_t bytes = (size_t)(k < n - k ? k : n - k) * size;
        int to = (r - k + n) % n, from = (r + k) % n;
        for (size_t off = 0, c = 0; off < bytes && res == PPU_SUCCESS; off += PPU_BOOT_P2P_MAX, c++) {
            size_t len = bytes - off < PPU_BOOT_P2P_MAX ? bytes - off : PPU_BOOT_P2P_MAX;
            res = ppu_bootstrap_send_until(bs, to, ag_tag(seq, round, c), tmp + off, len, deadline);
        }
        for (size_t off = 0, c = 0; off < bytes && res == PPU_SUCCESS; off += PPU_BOOT_P2P_MAX, c++) {
            size_t len = bytes - off < PPU_BOOT_P2P_MAX ? bytes - off : PPU_BOOT_P2P_MAX;
            res = ppu_bootstrap_recv(bs, from, ag_tag(seq, round, c), tmp + (size_t)k * size + off,
                                     len, deadline, NULL);
        }
    }
    for (int i = 0; res == PPU_SUCCESS && i < n; i++)
        memcpy((char *)data + (size_t)((r + i) % n) * size, tmp + (size_t)i * size, size);
    free(tmp);
    return res;
}

ppu_result_t ppu_bootstrap_allgather(struct ppu_bootstrap *bs, void *data, size_t size)
{
    int n = bs->nranks, r = bs->rank;
    uint64_t deadline = ppu_now_ns() + bs->timeout_ns;
    uint32_t seq = bs->ag_seq++;
    /* point to point once the addresses are known (bs->lfd is kept then),
     * for rounds that fit the tags' chunk count */
    if (n > PPU_BOOT_RING_MAX && bs->lfd >= 0 &&
        (size_t)(n / 2 + 1) * size <= (size_t)AG_CHUNKS_MAX * PPU_BOOT_P2P_MAX)
        return allgather_bruck(bs, data, size, seq, deadline);
    for (int s = 0; s < n - 1; s++) {
        int sb = (r - s + n) % n, rb = (r - s - 1 + n) % n;
        PPU_CHECK(ppu_socket_sendrecv(bs->next_fd, (char *)data + (size_t)sb * size, size,
                                      bs->prev_fd, (char *)data + (size_t)rb * size, size,
                                      deadline));
    }
    return PPU_SUCCESS;
}

ppu_result_t ppu_bootstrap_barrier(struct ppu_bootstrap *bs)
{
    uint8_t *tmp = calloc((size_t)bs->nranks, 1);
    if (!tmp)
        return PPU_SYSTEM_ERROR;
    ppu_result_t r = ppu_bootstrap_allgather(bs, tmp, 1);
    free(tmp);
    return r;
}

/* ---- point-to-point ---- */

struct wire_p2p {
    uint32_t from;
    uint32_t tag;
} __attribute__((packed));

/* A message that arrived before it was asked for. */
struct ppu_boot_mail {
    struct ppu_boot_mail *next;
    int from;
    uint32_t tag;
    size_t len;
    unsigned char data[];
};

ppu_result_t ppu_bootstrap_send(struct ppu_bootstrap *bs, int peer, uint32_t tag, const void *data,
                                size_t len)
{
    return ppu_bootstrap_send_until(bs, peer, tag, data, len, ppu_now_ns() + bs->timeout_ns);
}

ppu_result_t ppu_bootstrap_send_until(struct ppu_bootstrap *bs, int peer, uint32_t tag,
                                      const void *data, size_t len, uint64_t deadline)
{
    if (peer < 0 || peer >= bs->nranks || len > PPU_BOOT_P2P_MAX)
        return PPU_INVALID_ARGUMENT;
    unsigned char buf[sizeof(struct wire_p2p) + PPU_BOOT_P2P_MAX];
    struct wire_p2p h = {htonl((uint32_t)bs->rank), htonl(tag)};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, data, len);
    /* header and payload in one write, so a peer that accepts the
     * connection finds the whole message there */
    unsigned char msg[sizeof(struct wire_hdr) + sizeof buf];
    struct wire_hdr wh;
    wh.magic = htonl(BOOT_MAGIC);
    wh.version = htons(BOOT_VERSION);
    wh.type = htons(MSG_P2P);
    memcpy(wh.secret, bs->secret, PPU_BOOT_SECRET_BYTES);
    wh.len = htonl((uint32_t)(sizeof h + len));
    memcpy(msg, &wh, sizeof wh);
    memcpy(msg + sizeof wh, buf, sizeof h + len);
    size_t total = sizeof wh + sizeof h + len;
    /* A connection the peer dropped (it found it idle when hundreds of
     * ranks share the cores) is tried again until the deadline. */
    ppu_result_t r;
    do {
        int fd;
        /* every rank listens from its init to its destroy: refused is gone */
        r = ppu_socket_connect_listening(&bs->addr[peer], deadline, &fd);
        if (r != PPU_SUCCESS)
            return r;
        r = ppu_socket_send(fd, msg, total, deadline);
        close(fd);
    } while (r != PPU_SUCCESS && r != PPU_TIMEOUT && ppu_now_ns() < deadline);
    return r;
}

/* Take the message (peer, tag) out of the mailbox, if it is there. */
static int mail_take(struct ppu_bootstrap *bs, int peer, uint32_t tag, void *data, size_t len,
                     ppu_result_t *r)
{
    for (struct ppu_boot_mail **m = &bs->mail; *m; m = &(*m)->next) {
        struct ppu_boot_mail *x = *m;
        if (x->from != peer || x->tag != tag)
            continue;
        *r = x->len == len ? PPU_SUCCESS : PPU_REMOTE_ERROR;
        if (x->len == len)
            memcpy(data, x->data, len);
        *m = x->next;
        free(x);
        return 1;
    }
    return 0;
}

/* Connections accepted whose message has not all arrived: read as bytes
 * come, side by side, so that a sender that connected and was then
 * descheduled for seconds (thousands of ranks on a few cores) loses no
 * message, and a client that sends nothing holds up no other. Each may
 * take until the bootstrap's deadline. */
#define PENDING_MAX 64
#define PENDING_BYTES (sizeof(struct wire_hdr) + sizeof(struct wire_p2p) + PPU_BOOT_P2P_MAX)

struct ppu_boot_pending {
    int fd;
    uint64_t since;
    size_t have, need; /* need: the header's bytes until it is checked, then the message's */
    union ppu_sockaddr peer;
    unsigned char buf[PENDING_BYTES];
};

static void pending_drop(struct ppu_bootstrap *bs, int i, const char *why)
{
    struct ppu_boot_pending *p = bs->pend[i];
    if (why) {
        log_dropped("bootstrap listener", &p->peer, why);
    } else {
        /* The whole message is read: close with a reset, so that neither
         * end keeps the connection in TIME_WAIT. A connection a message
         * leaves TIME_WAIT on the sender's port for a minute otherwise,
         * and thousands of ranks exchanging messages at init had the
         * host's ephemeral ports in TIME_WAIT by the tens of thousands. */
        struct linger lg = {1, 0};
        setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(p->fd);
    free(p);
    bs->pend[i] = bs->pend[--bs->npend];
}

/* p holds a whole message: file it. */
static void pending_file(struct ppu_bootstrap *bs, int i)
{
    struct ppu_boot_pending *p = bs->pend[i];
    struct wire_p2p h;
    size_t len = p->have - sizeof(struct wire_hdr);
    memcpy(&h, p->buf + sizeof(struct wire_hdr), sizeof h);
    if (ntohl(h.from) >= (uint32_t)bs->nranks) {
        pending_drop(bs, i, "message from a rank out of range");
        return;
    }
    uint32_t tag = ntohl(h.tag);
    struct ppu_boot_mail *m = tag == PPU_BOOT_TAG_PROBE ? NULL : malloc(sizeof *m + len - sizeof h);
    if (m) {
        m->from = (int)ntohl(h.from);
        m->tag = tag;
        m->len = len - sizeof h;
        memcpy(m->data, p->buf + sizeof(struct wire_hdr) + sizeof h, m->len);
        m->next = bs->mail;
        bs->mail = m;
    }
    /* a probe (ppu_bootstrap_peer_gone's look) is only taken */
    pending_drop(bs, i, m || tag == PPU_BOOT_TAG_PROBE ? NULL : "out of memory");
}

/* Bytes for p: 1 when it advanced or was dropped, 0 when none were there. */
static int pending_read(struct ppu_bootstrap *bs, int i)
{
    struct ppu_boot_pending *p = bs->pend[i];
    ssize_t k = read(p->fd, p->buf + p->have, p->need - p->have);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (k <= 0) {
        pending_drop(bs, i, p->have < sizeof(struct wire_hdr) ? "closed before a header"
                                                              : "truncated message");
        return 1;
    }
    p->have += (size_t)k;
    if (p->have == sizeof(struct wire_hdr) && p->need == sizeof(struct wire_hdr)) {
        uint32_t len = 0;
        const char *why = "";
        if (ppu_boot_check_hdr(p->buf, sizeof(struct wire_hdr), bs->secret, MSG_P2P,
                               sizeof(struct wire_p2p) + PPU_BOOT_P2P_MAX, &len, &why) !=
            PPU_SUCCESS) {
            pending_drop(bs, i, why);
            return 1;
        }
        if (len < sizeof(struct wire_p2p)) {
            pending_drop(bs, i, "message shorter than its header");
            return 1;
        }
        p->need = sizeof(struct wire_hdr) + len;
    }
    if (p->have == p->need && p->need > sizeof(struct wire_hdr))
        pending_file(bs, i);
    return 1;
}

/* Accept connections and read what they bring until until, or until a
 * message is filed. */
static void mail_accept(struct ppu_bootstrap *bs, uint64_t until)
{
    if (!bs->pend && !(bs->pend = calloc(PENDING_MAX, sizeof *bs->pend)))
        return;
    struct pollfd fds[PENDING_MAX + 1];
    for (;;) {
        uint64_t now = ppu_now_ns();
        for (int i = bs->npend - 1; i >= 0; i--)
            if (now - bs->pend[i]->since > bs->timeout_ns)
                pending_drop(bs, i, "sent no whole message before the bootstrap deadline");
        int n = 0;
        fds[n++] = (struct pollfd){.fd = bs->lfd, .events = POLLIN};
        for (int i = 0; i < bs->npend; i++)
            fds[n++] = (struct pollfd){.fd = bs->pend[i]->fd, .events = POLLIN};
        int ms = ppu_ms_until(until);
        if (poll(fds, (nfds_t)n, ms) <= 0)
            return; /* until passed (or a signal: the caller looks again) */
        struct ppu_boot_mail *before = bs->mail;
        /* the pending ones first: their indices move as they finish */
        for (int i = n - 1; i >= 1; i--)
            if (fds[i].revents)
                pending_read(bs, i - 1);
        if (fds[0].revents & POLLIN) {
            union ppu_sockaddr peer;
            socklen_t sl = sizeof peer;
            int fd = accept4(bs->lfd, &peer.sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                if (bs->npend == PENDING_MAX)
                    pending_drop(bs, 0, "too many connections sending at once (the oldest "
                                        "is dropped)");
                struct ppu_boot_pending *p = malloc(sizeof *p);
                if (!p) {
                    close(fd);
                } else {
                    *p = (struct ppu_boot_pending){fd, now, 0, sizeof(struct wire_hdr), peer, {0}};
                    bs->pend[bs->npend++] = p;
                    pending_read(bs, bs->npend - 1); /* often all there already */
                }
            }
        }
        if (bs->mail != before)
            return;
    }
}

int ppu_bootstrap_peer_gone(struct ppu_bootstrap *bs, int peer)
{
    if (peer < 0 || peer >= bs->nranks || peer == bs->rank)
        return 0;
    const union ppu_sockaddr *a = &bs->addr[peer];
    int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return 0;
    socklen_t len = a->sa.sa_family == AF_INET6 ? sizeof a->in6 : sizeof a->in4;
    int rc = connect(fd, &a->sa, len), gone = 0;
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        if (poll(&pfd, 1, 200) == 1) {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            gone = soerr == ECONNREFUSED;
            rc = soerr ? -1 : 0;
        }
    } else if (rc != 0) {
        gone = errno == ECONNREFUSED;
    }
    if (rc == 0) { /* alive: say it was only a look, so its listener drops it quietly */
        struct wire_p2p h = {htonl((uint32_t)bs->rank), htonl(PPU_BOOT_TAG_PROBE)};
        send_msg(fd, bs->secret, MSG_P2P, &h, sizeof h, ppu_now_ns() + 100000000ull);
    }
    close(fd);
    return gone;
}

ppu_result_t ppu_bootstrap_recv(struct ppu_bootstrap *bs, int peer, uint32_t tag, void *data,
                                size_t len, uint64_t deadline, const atomic_int *abort)
{
    for (;;) {
        ppu_result_t r;
        if (mail_take(bs, peer, tag, data, len, &r))
            return r;
        uint64_t now = ppu_now_ns();
        if (now >= deadline)
            return PPU_TIMEOUT;
        if (abort && atomic_load(abort))
            return PPU_REMOTE_ERROR;
        /* look at the abort flag every 20 ms; without one, sleep until a
         * message or the deadline: thousands of ranks waking every 20 ms
         * on a few cores are all the cores do (4,096 threads: 200,000
         * wake-ups a second, and the init's allgather starved) */
        uint64_t until = abort ? now + 20000000ull : deadline;
        mail_accept(bs, until < deadline ? until : deadline);
    }
}

void ppu_bootstrap_close(struct ppu_bootstrap *bs)
{
    if (!bs)
        return;
    if (bs->next_fd >= 0)
        close(bs->next_fd);
    if (bs->prev_fd >= 0)
        close(bs->prev_fd);
    if (bs->lfd >= 0)
        close(bs->lfd);
    while (bs->mail) {
        struct ppu_boot_mail *m = bs->mail;
        bs->mail = m->next;
        free(m);
    }
    while (bs->npend > 0)
        pending_drop(bs, bs->npend - 1, NULL);
    free(bs->pend);
    free(bs->addr);
    free(bs->host_hash);
    free(bs);
}
