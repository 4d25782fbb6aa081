/* Symmetric memory (ppu_mem_alloc) and windows (ppu_comm_window_register):
 * memory the ranks of one server map from each other, so a collective on
 * it reads peers' inputs and writes peers' outputs directly, with no FIFO
 * in between (window.h).
 *
 * ppu_mem_alloc backs each allocation with its own owner-only shared
 * memory segment, /ppuccl-<pidns>-<pid>-mem-<random> (the segment naming
 * icn_sim uses, so the segments of a crashed job are swept with its
 * FIFOs); the name stays until ppu_mem_free so that a window registered
 * later can be mapped by the peers. On a PPU this is device memory the
 * chips reach over ICN.
 *
 * Registration is collective: every rank says which segment and offset
 * its buffer is at (one all-gather over the bootstrap), and maps the
 * buffers of the ranks on its server and host. Each rank also owns a
 * small control segment per communicator, mapped by the same peers: the
 * sequence numbers of the window calls it has entered and finished. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "comm.h"
#include "reduce.h"
#include "util/log.h"
#include "util/proc.h"
#include "util/shm.h"
#include "util/wait.h"
#include "window.h"

#define PPU_WINDOW_MAGIC 0x50505557494e4431ull /* "PPUWIND1" */
#define BLOCK_BYTES (32u << 10)                 /* reduced in cache, then written out */

/* ------------------------------------------------------------ allocations */

struct ppu_mem {
    char *base;
    size_t size, map_size;
    char name[64];
    struct ppu_mem *next;
};

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ppu_mem *mems;

static int make_name(char *buf, size_t len, const char *kind)
{
    uint8_t r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -1;
    snprintf(buf, len, "/ppuccl-%lu-%d-%s-%02x%02x%02x%02x%02x%02x%02x%02x", ppu_pid_namespace(),
             (int)getpid(), kind, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    return 0;
}

/* The peer's segment name, mapped read-write; its size in *size. */
static void *segment_map(const char *name, size_t *size)
{
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0)
        return NULL;
    struct stat st;
    void *m = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size > 0)
        m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                 0); /* mapped now, not page by page in the first calls */
    close(fd);
    if (m == MAP_FAILED)
        return NULL;
    *size = (size_t)st.st_size;
    return m;
}

ppu_result_t ppu_mem_alloc(size_t size, void **ptr)
{
    if (!ptr)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_mem_alloc: ptr is NULL");
    *ptr = NULL;
    if (size == 0)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_mem_alloc: size is 0");
    if (size > ((size_t)1 << 44))
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_mem_alloc: size is %zu bytes, more than 16 TiB", size);
    struct ppu_mem *m = calloc(1, sizeof *m);
    if (!m || make_name(m->name, sizeof m->name, "mem") != 0) {
        free(m);
        return ppu_fail(NULL, PPU_SYSTEM_ERROR, "ppu_mem_alloc: out of memory");
    }
    m->size = size;
    m->map_size = ppu_shm_pages(size);
    int err = 0;
    m->base = ppu_shm_create(m->name, m->map_size, &err);
    if (!m->base) {
        free(m);
        return ppu_fail(NULL, PPU_SYSTEM_ERROR,
                        "ppu_mem_alloc: %zu bytes of /dev/shm: %s%s", size, strerror(err),
                        err == ENOSPC ? " (/dev/shm is full or too small: df -h /dev/shm)" : "");
    }
    pthread_mutex_lock(&mem_lock);
    m->next = mems;
    mems = m;
    pthread_mutex_unlock(&mem_lock);
    *ptr = m->base;
    return PPU_SUCCESS;
}

ppu_result_t ppu_mem_free(void *ptr)
{
    if (!ptr)
        return PPU_SUCCESS; /* as free(NULL) */
    pthread_mutex_lock(&mem_lock);
    struct ppu_mem **pp = &mems;
    while (*pp && (*pp)->base != ptr)
        pp = &(*pp)->next;
    struct ppu_mem *m = *pp;
    if (m)
        *pp = m->next;
    pthread_mutex_unlock(&mem_lock);
    if (!m)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_mem_free: %p is not memory from ppu_mem_alloc (or was freed "
                        "already)", ptr);
    shm_unlink(m->name);
    munmap(m->base, m->map_size); /* windows over it hold their own mappings at peers */
    free(m);
    return PPU_SUCCESS;
}

/* The allocation holding [p, p + n), copied out; 0 if none. */
static int mem_find(const void *p, size_t n, struct ppu_mem *out)
{
    int found = 0;
    pthread_mutex_lock(&mem_lock);
    for (struct ppu_mem *m = mems; m; m = m->next)
        if ((const char *)p >= m->base && n <= m->size &&
            (size_t)((const char *)p - m->base) <= m->size - n) {
            *out = *m;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&mem_lock);
    return found;
}

/* --------------------------------------------------------------- windows */

/* One rank's control block, in its own segment, read by its peers. */
struct ppu_wctl {
    _Alignas(64) _Atomic uint64_t ready; /* window calls entered: inputs ready */
    /* the call entered: the peers check the call, and find this rank's
     * buffers by window (its registration number) and offset */
    uint64_t count;
    int32_t coll, datatype, op, root;
    int32_t sid, rid;     /* windows of the send and receive buffers, -1 none */
    uint64_t soff, roff;
    _Alignas(64) _Atomic uint64_t done;  /* window calls finished: outputs written */
};

struct ppu_window {
    uint64_t magic;
    struct ppu_comm *comm;
    char *base;
    size_t size;
    char **peer;       /* per rank: its buffer as mapped here, NULL not mapped */
    void **map;        /* per rank: the mapping to undo (NULL: own memory) */
    size_t *map_size;
    int all_mapped;    /* every rank's buffer is mapped here */
    int id;            /* registration number: the same window on every rank */
    struct ppu_window *next;
};

struct reg_msg {
    char mem[64];   /* the buffer's segment, "" when it is not ppu_mem_alloc memory */
    char ctl[96];   /* this rank's control segment */
    uint64_t off, size;
};

static ppu_result_t ctl_setup(struct ppu_comm *comm)
{
    if (comm->wctl)
        return PPU_SUCCESS;
    size_t sz = ppu_shm_pages(sizeof(struct ppu_wctl));
    int err = 0;
    if (make_name(comm->wctl_name, sizeof comm->wctl_name, "wctl") != 0 ||
        !(comm->wctl = ppu_shm_create(comm->wctl_name, sz, &err)))
        return ppu_fail(comm, PPU_SYSTEM_ERROR,
                        "ppu_comm_window_register: rank %d: a %zu-byte control segment in "
                        "/dev/shm: %s", comm->rank, sz, strerror(err));
    comm->wctl_peer = calloc((size_t)comm->nranks, sizeof *comm->wctl_peer);
    if (!comm->wctl_peer)
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "ppu_comm_window_register: out of memory");
    comm->wctl_peer[comm->rank] = comm->wctl;
    comm->win_io = calloc(4 * (size_t)comm->nranks, sizeof *comm->win_io);
    if (!comm->win_io)
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "ppu_comm_window_register: out of memory");
    return PPU_SUCCESS;
}

/* Ranks whose memory this rank maps: its server's, on its host. */
static int maps_peer(const struct ppu_comm *comm, int q)
{
    return comm->cl.server[q] == comm->cl.server[comm->rank] &&
           comm->bs->host_hash[q] == comm->bs->host_hash[comm->rank];
}

static void window_free(struct ppu_window *w)
{
    if (!w)
        return;
    for (int q = 0; w->map && q < w->comm->nranks; q++)
        if (w->map[q])
            munmap(w->map[q], w->map_size[q]);
    free(w->peer);
    free(w->map);
    free(w->map_size);
    w->magic = 0;
    free(w);
}

ppu_result_t ppu_comm_window_register(ppu_comm_t comm, void *buf, size_t size, ppu_window_t *win)
{
    if (!ppu_comm_is_live(comm))
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_window_register: comm is not a live communicator");
    if (!win)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_comm_window_register: win is NULL");
    *win = NULL;
    if (!buf || size == 0)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_comm_window_register: %s",
                        !buf ? "buf is NULL" : "size is 0");
    struct ppu_mem m;
    int mine = mem_find(buf, size, &m);
    struct reg_msg *all = calloc((size_t)comm->nranks, sizeof *all);
    struct ppu_window *w = calloc(1, sizeof *w);
    if (!all || !w) {
        free(all);
        free(w);
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "ppu_comm_window_register: out of memory");
    }
    pthread_mutex_lock(&comm->exec_lock); /* the bootstrap: no collective meanwhile */
    ppu_result_t r = ctl_setup(comm);
    struct reg_msg *me = &all[comm->rank];
    if (mine) {
        snprintf(me->mem, sizeof me->mem, "%s", m.name);
        me->off = (uint64_t)((char *)buf - m.base);
        me->size = size;
    }
    if (r == PPU_SUCCESS)
        snprintf(me->ctl, sizeof me->ctl, "%s", comm->wctl_name);
    /* everyone's answer, even after a failure here: the others wait for it */
    ppu_result_t rg = ppu_bootstrap_allgather(comm->bs, all, sizeof *all);
    if (r == PPU_SUCCESS && rg != PPU_SUCCESS)
        r = ppu_fail(comm, rg, "ppu_comm_window_register: rank %d: the exchange with the other "
                     "ranks failed", comm->rank);
    int bad = -1;
    for (int q = 0; r == PPU_SUCCESS && q < comm->nranks && bad < 0; q++)
        if (!all[q].mem[0] || !all[q].ctl[0] || all[q].size != size)
            bad = q;
    if (bad >= 0)
        r = ppu_fail(comm, PPU_INVALID_ARGUMENT,
                     "ppu_comm_window_register: rank %d %s; every rank must register a "
                     "buffer of the same size from ppu_mem_alloc", bad,
                     !all[bad].ctl[0]   ? "could not make its control segment"
                     : !all[bad].mem[0] ? "passed a buffer that is not (all) memory from "
                                          "ppu_mem_alloc"
                                        : "passed another size");
    w->magic = PPU_WINDOW_MAGIC;
    w->comm = comm;
    w->base = buf;
    w->size = size;
    w->peer = calloc((size_t)comm->nranks, sizeof *w->peer);
    w->map = calloc((size_t)comm->nranks, sizeof *w->map);
    w->map_size = calloc((size_t)comm->nranks, sizeof *w->map_size);
    if (r == PPU_SUCCESS && (!w->peer || !w->map || !w->map_size))
        r = ppu_fail(comm, PPU_SYSTEM_ERROR, "ppu_comm_window_register: out of memory");
    int mapped = 0;
    for (int q = 0; r == PPU_SUCCESS && q < comm->nranks; q++) {
        if (q == comm->rank) {
            w->peer[q] = buf;
            mapped++;
            continue;
        }
        if (!maps_peer(comm, q))
            continue;
        size_t msz = 0;
        void *pm = segment_map(all[q].mem, &msz);
        if (!pm || all[q].off > msz || size > msz - all[q].off) {
            if (pm)
                munmap(pm, msz);
            r = ppu_fail(comm, PPU_SYSTEM_ERROR, "ppu_comm_window_register: rank %d could not "
                         "map rank %d's buffer (%s): %s", comm->rank, q, all[q].mem,
                         pm ? "it is smaller than the window" : strerror(errno));
            break;
        }
        w->map[q] = pm;
        w->map_size[q] = msz;
        w->peer[q] = (char *)pm + all[q].off;
        if (!comm->wctl_peer[q]) {
            size_t csz = 0;
            void *cm = segment_map(all[q].ctl, &csz);
            if (!cm || csz < sizeof(struct ppu_wctl)) {
                r = ppu_fail(comm, PPU_SYSTEM_ERROR, "ppu_comm_window_register: rank %d could "
                             "not map rank %d's control segment: %s", comm->rank, q,
                             strerror(errno));
                break;
            }
            comm->wctl_peer[q] = cm;
        }
        mapped++;
    }
    w->all_mapped = mapped == comm->nranks;
    w->id = comm->win_ids++;
    if (r == PPU_SUCCESS) {
        w->next = comm->windows;
        comm->windows = w;
        *win = w;
        PPU_INFO(PPU_SUB_SHM, "rank %d: window %p + %zu registered; %d of %d ranks' buffers "
                 "mapped%s", comm->rank, buf, size, mapped, comm->nranks,
                 w->all_mapped ? " (all-reduce reads and writes them directly)" : "");
    } else {
        window_free(w);
    }
    pthread_mutex_unlock(&comm->exec_lock);
    free(all);
    return r;
}

ppu_result_t ppu_comm_window_deregister(ppu_comm_t comm, ppu_window_t win)
{
    if (!ppu_comm_is_live(comm))
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_window_deregister: comm is not a live communicator");
    pthread_mutex_lock(&comm->exec_lock);
    struct ppu_window **pp = &comm->windows;
    while (*pp && *pp != win)
        pp = &(*pp)->next;
    if (!win || !*pp || win->magic != PPU_WINDOW_MAGIC) {
        pthread_mutex_unlock(&comm->exec_lock);
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_comm_window_deregister: win is not a "
                        "window registered with this communicator (or was deregistered)");
    }
    *pp = win->next;
    pthread_mutex_unlock(&comm->exec_lock);
    window_free(win);
    return PPU_SUCCESS;
}

void ppu_window_close_all(struct ppu_comm *comm)
{
    while (comm->windows) {
        struct ppu_window *w = comm->windows;
        comm->windows = w->next;
        window_free(w);
    }
    size_t sz = ppu_shm_pages(sizeof(struct ppu_wctl));
    for (int q = 0; comm->wctl_peer && q < comm->nranks; q++)
        if (comm->wctl_peer[q] && q != comm->rank)
            munmap(comm->wctl_peer[q], sz);
    free(comm->wctl_peer);
    comm->wctl_peer = NULL;
    free(comm->win_io);
    comm->win_io = NULL;
    if (comm->wctl) {
        shm_unlink(comm->wctl_name);
        munmap(comm->wctl, sz);
        comm->wctl = NULL;
    }
}

/* ------------------------------------------------------- the collective */

/* The window holding [p, p + n) with every rank's buffer mapped, or NULL. */
static struct ppu_window *window_of(struct ppu_comm *comm, const void *p, size_t n)
{
    for (struct ppu_window *w = comm->windows; w; w = w->next)
        if (w->all_mapped && (const char *)p >= w->base && n <= w->size &&
            (size_t)((const char *)p - w->base) <= w->size - n)
            return w;
    return NULL;
}

static struct ppu_window *window_by_id(struct ppu_comm *comm, int id)
{
    for (struct ppu_window *w = comm->windows; w; w = w->next)
        if (w->id == id)
            return w;
    return NULL;
}

/* Wait until every peer's word (ready or done) reaches seq. */
static ppu_result_t wait_all(struct ppu_comm *comm, int done, uint64_t seq, const char *what)
{
    struct ppu_waiter w = comm->wait;
    uint64_t deadline = 0;
    for (int q = 0; q < comm->nranks; q++) {
        struct ppu_wctl *c = comm->wctl_peer[q];
        _Atomic uint64_t *word = done ? &c->done : &c->ready;
        unsigned rounds = 0;
        while (atomic_load_explicit(word, memory_order_acquire) < seq) {
            ppu_wait_idle(&w);
            if ((++rounds & 255) != 0)
                continue;
            uint64_t now = ppu_now_ns();
            if (!deadline)
                deadline = now + comm->timeout_ns;
            if (atomic_load_explicit(&comm->aborted, memory_order_relaxed))
                return ppu_fail(comm, PPU_ABORTED, "%s on rank %d: communicator aborted", what,
                                comm->rank);
            /* Is the peer gone? A look is a TCP connection to its
             * bootstrap listener: only once this wait has lasted 0.1 s (the
             * deadline was set at its start), then at most every 0.1 s.
             * Looking every 256 polls took a few ms now and then from 2
             * ranks' 256 KB calls (4.6 us, 10-35 us in 4 runs of 10). A
             * peer that wrote the word and then exited is not lost: look
             * at the word once more after finding it gone. */
            if (now + comm->timeout_ns - deadline >= PPU_ALIVE_CHECK_NS &&
                ppu_alive_check_due(comm, now) && ppu_bootstrap_peer_gone(comm->bs, q) &&
                atomic_load_explicit(word, memory_order_acquire) < seq)
                return ppu_fail(comm, PPU_REMOTE_ERROR, "%s on rank %d: rank %d has exited "
                                "(process gone)", what, comm->rank, q);
            if (now > deadline)
                return ppu_fail(comm, PPU_TIMEOUT, "%s on rank %d timed out after %llu ms "
                                "waiting for rank %d to %s (does every rank pass buffers in "
                                "registered windows?)", what, comm->rank,
                                (unsigned long long)(comm->timeout_ns / 1000000), q,
                                done ? "finish" : "enter the call");
        }
    }
    return PPU_SUCCESS;
}

/* The bytes of a's send and receive buffers on rank (0: not used). */
static void buf_bytes(const struct ppu_comm *comm, const struct ppu_coll_args *a, int rank,
                      size_t *sb, size_t *rb)
{
    size_t b = a->count * ppu_datatype_size(a->datatype), n = (size_t)comm->nranks;
    int root = a->root == rank;
    switch (a->coll) {
    case PPU_COLL_ALLREDUCE: *sb = b; *rb = b; break;
    case PPU_COLL_REDUCE: *sb = b; *rb = root ? b : 0; break;
    case PPU_COLL_BROADCAST: *sb = root ? b : 0; *rb = b; break;
    case PPU_COLL_ALLGATHER: *sb = b; *rb = b * n; break;
    case PPU_COLL_REDUCE_SCATTER: *sb = b * n; *rb = b; break;
    case PPU_COLL_ALLTOALL: *sb = b * n; *rb = b * n; break;
    default: *sb = *rb = 0; break;
    }
}

/* Below this many bytes a rank sends, an all-to-all goes over the links
 * even in windows: the window path's two waits on every rank cost more
 * than it saves by copying each byte once instead of twice (4 ranks on
 * the 2-core test host, us a call, links / windows: 16 KB 10-11 / 16.5-17,
 * 64 KB 15.3 / 17.7-17.8, 128 KB 19.8-22.9 / 18.8-19.5, 1 MB 111-113 /
 * 66-68). Every rank decides alike: the count is the same on all. */
#define WIN_ALLTOALL_MIN_BYTES ((size_t)128 << 10)

/* Does this rank take the window path for a? Only when every buffer it
 * uses lies in a window all of whose ranks it maps (every rank must pass
 * window buffers, or none). In-place all-to-all is not done here: a rank
 * would overwrite blocks its peers still read; nor small ones (above). */
static int applies(struct ppu_comm *comm, const struct ppu_coll_args *a, struct ppu_window **ws,
                   struct ppu_window **wr)
{
    size_t sb, rb;
    buf_bytes(comm, a, comm->rank, &sb, &rb);
    if (!sb && !rb)
        return 0;
    if (a->coll == PPU_COLL_ALLTOALL && (a->sendbuf == a->recvbuf || sb < WIN_ALLTOALL_MIN_BYTES))
        return 0;
    *ws = sb ? window_of(comm, a->sendbuf, sb) : NULL;
    *wr = rb ? window_of(comm, a->recvbuf, rb) : NULL;
    return (!sb || *ws) && (!rb || *wr);
}

/* The reduction over in[0..nin) of elems elements, a block at a time in
 * cache, written to each of out[0..nout): every block is read whole before
 * any output is written, so outputs may be inputs (in place). */
static void reduce_to(struct ppu_comm *comm, const struct ppu_coll_args *a, char **in, int nin,
                      char **out, int nout, size_t elems)
{
    size_t es = ppu_datatype_size(a->datatype);
    size_t blk = comm->plan.set.chunk_bytes < BLOCK_BYTES ? comm->plan.set.chunk_bytes
                                                          : BLOCK_BYTES;
    size_t per = blk / es ? blk / es : 1;
    /* one output that is none of the inputs: reduce straight into it */
    int direct = nout == 1;
    for (int q = 0; q < nin; q++)
        direct &= out[0] != in[q];
    if (direct && nin >= 2) {
        ppu_reduce2(out[0], in[0], in[1], elems, a->datatype, a->op);
        for (int q = 2; q < nin; q++)
            ppu_reduce2(out[0], out[0], in[q], elems, a->datatype, a->op);
        ppu_reduce_finish(out[0], elems, a->datatype, a->op, comm->nranks);
        return;
    }
    char *tmp = comm->scratch;
    for (size_t at = 0; at < elems; at += per) {
        size_t k = elems - at < per ? elems - at : per, off = at * es;
        if (nin == 1)
            memcpy(tmp, in[0] + off, k * es);
        else
            ppu_reduce2(tmp, in[0] + off, in[1] + off, k, a->datatype, a->op);
        for (int q = 2; q < nin; q++)
            ppu_reduce2(tmp, tmp, in[q] + off, k, a->datatype, a->op);
        ppu_reduce_finish(tmp, k, a->datatype, a->op, comm->nranks);
        for (int q = 0; q < nout; q++)
            memcpy(out[q] + off, tmp, k * es);
    }
}

/* This rank's part of a, every rank's buffers mapped: sbuf[q], rbuf[q]. */
static void run_part(struct ppu_comm *comm, const struct ppu_coll_args *a, char **sbuf,
                     char **rbuf)
{
    int n = comm->nranks, me = comm->rank;
    size_t es = ppu_datatype_size(a->datatype), c = a->count, bytes = c * es;
    size_t lo = c * (size_t)me / (size_t)n, hi = c * (size_t)(me + 1) / (size_t)n;
    char **ins = comm->win_io, **outs = comm->win_io + n;
    switch (a->coll) {
    case PPU_COLL_ALLREDUCE: /* my share, from every input into every output */
    case PPU_COLL_REDUCE:
        for (int q = 0; q < n; q++) {
            ins[q] = sbuf[q] + lo * es;
            outs[q] = rbuf[a->coll == PPU_COLL_REDUCE ? a->root : q] + lo * es;
        }
        reduce_to(comm, a, ins, n, outs, a->coll == PPU_COLL_REDUCE ? 1 : n, hi - lo);
        break;
    case PPU_COLL_REDUCE_SCATTER: /* my block, from every input into my output */
        for (int q = 0; q < n; q++)
            ins[q] = sbuf[q] + (size_t)me * bytes;
        reduce_to(comm, a, ins, n, &rbuf[me], 1, c);
        break;
    case PPU_COLL_BROADCAST: /* the root's input, into my output */
        if (rbuf[me] != sbuf[a->root])
            memcpy(rbuf[me], sbuf[a->root], bytes);
        break;
    case PPU_COLL_ALLGATHER: /* my input, into every output */
        for (int q = 0; q < n; q++)
            if (rbuf[q] + (size_t)me * bytes != sbuf[me])
                memcpy(rbuf[q] + (size_t)me * bytes, sbuf[me], bytes);
        break;
    case PPU_COLL_ALLTOALL: /* block me of every input, into my output */
        for (int q = 0; q < n; q++)
            memcpy(rbuf[me] + (size_t)q * bytes, sbuf[q] + (size_t)me * bytes, bytes);
        break;
    default:
        break;
    }
}

int ppu_window_run(struct ppu_comm *comm, const struct ppu_coll_args *a, ppu_result_t *res)
{
    struct ppu_window *ws = NULL, *wr = NULL;
    if (!comm->windows || comm->nranks > PPU_WIN_MAX_LOCAL || !applies(comm, a, &ws, &wr))
        return 0;
    int n = comm->nranks, me = comm->rank;
    uint64_t seq = ++comm->win_seq;
    comm->coll_seq++;
    char what[128];
    snprintf(what, sizeof what, "%s #%llu (count=%zu %s, window)", ppu_coll_name(a->coll),
             (unsigned long long)comm->coll_seq, a->count, ppu_datatype_name(a->datatype));
    struct ppu_wctl *c = comm->wctl;
    c->coll = a->coll;
    c->count = a->count;
    c->datatype = a->datatype;
    c->op = a->coll == PPU_COLL_ALLGATHER || a->coll == PPU_COLL_ALLTOALL ||
            a->coll == PPU_COLL_BROADCAST ? 0 : a->op;
    c->root = a->coll == PPU_COLL_BROADCAST || a->coll == PPU_COLL_REDUCE ? a->root : -1;
    c->sid = ws ? ws->id : -1;
    c->rid = wr ? wr->id : -1;
    c->soff = ws ? (uint64_t)((const char *)a->sendbuf - ws->base) : 0;
    c->roff = wr ? (uint64_t)((char *)a->recvbuf - wr->base) : 0;
    atomic_store_explicit(&c->ready, seq, memory_order_release);
    ppu_result_t r = wait_all(comm, 0, seq, what);
    char **sbuf = comm->win_io + 2 * n, **rbuf = comm->win_io + 3 * n;
    for (int q = 0; r == PPU_SUCCESS && q < n; q++) {
        const struct ppu_wctl *p = comm->wctl_peer[q];
        if (p->coll != c->coll || p->count != c->count || p->datatype != c->datatype ||
            p->op != c->op || p->root != c->root) {
            r = ppu_fail(comm, PPU_INVALID_USAGE,
                         "%s on rank %d: rank %d called %s with count %llu, type %d, op %d, "
                         "root %d over windows", what, me, q,
                         p->coll >= 0 && p->coll < PPU_NUM_COLLS ? ppu_coll_name(p->coll) : "?",
                         (unsigned long long)p->count, p->datatype, p->op, p->root);
            break;
        }
        /* rank q's buffers as this rank maps them */
        struct ppu_window *qs = p->sid >= 0 ? window_by_id(comm, p->sid) : NULL;
        struct ppu_window *qr = p->rid >= 0 ? window_by_id(comm, p->rid) : NULL;
        size_t sb, rb;
        buf_bytes(comm, a, q, &sb, &rb);
        if ((sb && (!qs || p->soff > qs->size || sb > qs->size - p->soff)) ||
            (rb && (!qr || p->roff > qr->size || rb > qr->size - p->roff))) {
            r = ppu_fail(comm, PPU_INVALID_USAGE, "%s on rank %d: rank %d's buffers are not "
                         "in windows this rank knows (windows registered in another order?)",
                         what, me, q);
            break;
        }
        sbuf[q] = qs ? qs->peer[q] + p->soff : NULL;
        rbuf[q] = qr ? qr->peer[q] + p->roff : NULL;
    }
    if (r == PPU_SUCCESS) {
        run_part(comm, a, sbuf, rbuf);
        atomic_store_explicit(&c->done, seq, memory_order_release);
        r = wait_all(comm, 1, seq, what);
    }
    if (r != PPU_SUCCESS)
        ppu_comm_mark_failed(comm);
    *res = r;
    return 1;
}
