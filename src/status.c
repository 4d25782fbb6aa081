/* The status board (status.h): each rank's record in its own owner-only
 * file /dev/shm/ppuccl-<pidns>-<pid>-st-<comm id>-<rank> (the segment
 * naming icn_sim uses, so a crashed job's files go with its stale
 * segments), written by the rank under a sequence lock, read by anyone of
 * the same user. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "status.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/param.h"
#include "util/proc.h"
#include "util/shm.h"


/* ------------------------------------------------------------ the writer */

static void begin_write(struct ppu_status_rec *r)
{
    uint64_t g = atomic_load_explicit(&r->gen, memory_order_relaxed);
    atomic_store_explicit(&r->gen, g + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void end_write(struct ppu_status_rec *r)
{
    uint64_t g = atomic_load_explicit(&r->gen, memory_order_relaxed);
    atomic_store_explicit(&r->gen, g + 1, memory_order_release);
}

void ppu_status_open(struct ppu_comm *comm)
{
    comm->status = NULL;
    if (!ppu_param_int(PPU_P_STATUS))
        return;
    uint8_t key[PPU_BOOT_SECRET_BYTES + 8];
    memcpy(key, comm->bs->secret, PPU_BOOT_SECRET_BYTES);
    memcpy(key + PPU_BOOT_SECRET_BYTES, "ppustat", 8); /* not the secret itself */
    uint64_t id = ppu_hash64(key, sizeof key);
    snprintf(comm->status_name, sizeof comm->status_name, "/ppuccl-%lu-%d-st-%016llx-%d",
             ppu_pid_namespace(), (int)getpid(), (unsigned long long)id, comm->rank);
    int err = 0;
    void *m = ppu_shm_create(comm->status_name, ppu_shm_pages(sizeof(struct ppu_status_rec)), &err);
    if (!m) {
        PPU_INFO(PPU_SUB_INIT, "rank %d: no status board (%s: %s); ppu-diag status will not "
                 "see it", comm->rank, comm->status_name, strerror(err));
        comm->status_name[0] = '\0';
        return;
    }
    struct ppu_status_rec *r = m;
    r->layout = PPU_STATUS_LAYOUT;
    r->size = sizeof *r;
    r->comm_id = id;
    r->rank = comm->rank;
    r->nranks = comm->nranks;
    r->pid = (int32_t)getpid();
    r->server = comm->cl.server ? comm->cl.server[comm->rank] : 0;
    ppu_get_version(&r->lib_version);
    gethostname(r->host, sizeof r->host - 1);
    r->wait_peer = -1;
    r->last_result = PPU_SUCCESS;
    atomic_thread_fence(memory_order_release);
    r->magic = PPU_STATUS_MAGIC; /* a reader takes it from here */
    comm->status = r;
}

void ppu_status_close(struct ppu_comm *comm)
{
    if (!comm->status)
        return;
    shm_unlink(comm->status_name);
    munmap(comm->status, ppu_shm_pages(sizeof(struct ppu_status_rec)));
    comm->status = NULL;
}

void ppu_status_call_begin(struct ppu_comm *comm, const struct ppu_coll_args *a,
                           const struct ppu_sched *s)
{
    struct ppu_status_rec *r = comm->status;
    if (!r)
        return;
    begin_write(r);
    r->state = PPU_ST_IN_CALL;
    r->coll = (int32_t)a->coll;
    r->datatype = (int32_t)a->datatype;
    r->op = (int32_t)a->op;
    r->algo = s->algo;
    r->proto = (int32_t)s->proto;
    r->count = a->count;
    r->coll_seq = comm->coll_seq;
    r->call_since_ns = 0; /* set by the first wait: a fast call never reads the clock */
    r->wait_kind = PPU_WAIT_NONE;
    r->wait_peer = -1;
    end_write(r);
}

void ppu_status_call_end(struct ppu_comm *comm, int result)
{
    struct ppu_status_rec *r = comm->status;
    if (!r)
        return;
    begin_write(r);
    r->state = result == PPU_SUCCESS ? PPU_ST_IDLE : PPU_ST_FAILED;
    r->calls_done++;
    r->wait_kind = PPU_WAIT_NONE;
    r->wait_peer = -1;
    r->last_result = result;
    if (result != PPU_SUCCESS) {
        pthread_mutex_lock(&comm->err_lock);
        snprintf(r->last_error, sizeof r->last_error, "%.199s", comm->last_error);
        pthread_mutex_unlock(&comm->err_lock);
    }
    end_write(r);
}

void ppu_status_waiting(struct ppu_comm *comm, int kind, int peer, int channel,
                        uint64_t since_ns, uint64_t now_ns)
{
    struct ppu_status_rec *r = comm->status;
    if (!r)
        return;
    if (r->wait_kind != kind || r->wait_peer != peer || r->wait_channel != channel ||
        !r->call_since_ns) {
        begin_write(r);
        if (!r->call_since_ns)
            r->call_since_ns = since_ns;
        r->wait_kind = kind;
        r->wait_peer = peer;
        r->wait_channel = channel;
        r->wait_since_ns = since_ns;
        end_write(r);
    }
    atomic_store_explicit(&r->heartbeat_ns, now_ns, memory_order_relaxed);
}

/* ------------------------------------------------------------ the reader */

/* A consistent copy of the record at m, or -1 (torn after many tries, or
 * not a record of this layout). */
static int read_rec(const struct ppu_status_rec *m, struct ppu_status_rec *out)
{
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t g1 = atomic_load_explicit(&((struct ppu_status_rec *)m)->gen, memory_order_acquire);
        if (g1 & 1) {
            sched_yield();
            continue;
        }
        memcpy(out, (const void *)m, sizeof *out);
        atomic_thread_fence(memory_order_acquire);
        uint64_t g2 = atomic_load_explicit(&((struct ppu_status_rec *)m)->gen, memory_order_relaxed);
        if (g1 != g2)
            continue;
        /* nothing in it is trusted: another process of this user wrote it */
        out->host[sizeof out->host - 1] = '\0';
        out->last_error[sizeof out->last_error - 1] = '\0';
        if (out->magic != PPU_STATUS_MAGIC || out->layout != PPU_STATUS_LAYOUT ||
            out->size != sizeof *out || out->nranks < 1 || out->nranks > PPU_MAX_RANKS ||
            out->rank < 0 || out->rank >= out->nranks || out->state < 0 ||
            out->state >= PPU_ST_NSTATES || out->wait_kind < 0 || out->wait_kind >= PPU_WAIT_NKINDS ||
            out->wait_peer < -1 || out->wait_peer >= out->nranks)
            return -1;
        return 0;
    }
    return -1;
}

struct mapped {
    const struct ppu_status_rec *m;
    char file[128];
    unsigned long ns;
};

static char proc_state(int pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold anything but not after ')' */
    return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

int ppu_status_scan(uint64_t comm_id, int interval_ms, struct ppu_status_view **out)
{
    *out = NULL;
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    unsigned long my_ns = ppu_pid_namespace();
    struct mapped *maps = NULL;
    int nm = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long ns;
        int pid, rank, n = 0;
        unsigned long long id;
        if (sscanf(e->d_name, "ppuccl-%lu-%d-st-%16llx-%d%n", &ns, &pid, &id, &rank, &n) != 4 ||
            e->d_name[n] || (comm_id && id != comm_id))
            continue;
        char path[300];
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0)
            continue;
        size_t sz = ppu_shm_pages(sizeof(struct ppu_status_rec));
        void *m = MAP_FAILED;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
            (size_t)st.st_size == sz)
            m = mmap(NULL, sz, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
            continue;
        if (nm == cap) {
            int nc = cap ? 2 * cap : 64;
            struct mapped *g = realloc(maps, sizeof *g * (size_t)nc);
            if (!g) {
                munmap(m, sz);
                break;
            }
            maps = g;
            cap = nc;
        }
        maps[nm].m = m;
        maps[nm].ns = ns;
        snprintf(maps[nm].file, sizeof maps[nm].file, "%.127s", e->d_name);
        nm++;
    }
    closedir(d);
    struct ppu_status_view *v = calloc((size_t)nm + 1, sizeof *v);
    uint64_t *hb = calloc((size_t)nm + 1, 2 * sizeof *hb);
    int nv = 0;
    for (int i = 0; v && hb && i < nm; i++) {
        if (read_rec(maps[i].m, &v[i].rec) != 0) {
            v[i].rec.magic = 0;
            continue;
        }
        hb[2 * i] = v[i].rec.heartbeat_ns;
        hb[2 * i + 1] = v[i].rec.steps;
    }
    if (v && hb && interval_ms > 0 && nm > 0) {
        struct timespec ts = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; v && hb && i < nm; i++) {
        struct ppu_status_rec again;
        if (v[i].rec.magic != PPU_STATUS_MAGIC || read_rec(maps[i].m, &again) != 0)
            continue;
        struct ppu_status_view *w = &v[nv++];
        int moved = interval_ms <= 0 || again.heartbeat_ns != hb[2 * i] ||
                    again.steps != hb[2 * i + 1] ||
                    again.calls_done != v[i].rec.calls_done ||
                    again.coll_seq != v[i].rec.coll_seq;
        w->rec = again;
        w->moved = moved;
        snprintf(w->file, sizeof w->file, "%s", maps[i].file);
        if (maps[i].ns == my_ns && my_ns) {
            w->alive = kill(again.pid, 0) == 0 || errno == EPERM;
            w->proc_state = w->alive ? proc_state(again.pid) : 'X';
            if (w->proc_state == 'Z' || w->proc_state == 'X')
                w->alive = 0; /* a zombie runs nothing either */
        } else {
            w->alive = 1; /* another PID namespace: its pid means nothing here */
            w->proc_state = '?';
        }
    }
    for (int i = 0; i < nm; i++)
        munmap((void *)maps[i].m, ppu_shm_pages(sizeof(struct ppu_status_rec)));
    free(maps);
    free(hb);
    if (!v)
        return 0;
    *out = v;
    return nv;
}

static const char *name_or(const char *s, char *buf, size_t len, int v)
{
    if (s && strcmp(s, "?") && strcmp(s, "unknown"))
        return s;
    snprintf(buf, len, "#%d", v);
    return buf;
}

void ppu_status_line(const struct ppu_status_view *v, uint64_t now_ns, char *buf, size_t len)
{
    const struct ppu_status_rec *r = &v->rec;
    int o = snprintf(buf, len, "rank %d (pid %d%s%s): ", r->rank, r->pid, r->host[0] ? ", " : "",
                     r->host);
    if (o < 0 || (size_t)o >= len)
        return;
    char a[16], b[16], c[16];
    if (r->state == PPU_ST_IDLE) {
        snprintf(buf + o, len - (size_t)o, "not in a call (%llu collective(s) issued, %llu "
                 "call(s) done)", (unsigned long long)r->coll_seq,
                 (unsigned long long)r->calls_done);
        return;
    }
    const char *coll = r->coll >= 0 && r->coll < PPU_NUM_COLLS ? ppu_coll_name(r->coll) : NULL;
    const char *dt = ppu_datatype_name((ppu_datatype_t)r->datatype);
    const char *al = ppu_algo_name(r->algo);
    o += snprintf(buf + o, len - (size_t)o, "%s %s #%llu (count=%llu %s, %s)",
                  r->state == PPU_ST_FAILED ? "failed in" : "in",
                  name_or(coll, a, sizeof a, r->coll), (unsigned long long)r->coll_seq,
                  (unsigned long long)r->count, name_or(dt, b, sizeof b, r->datatype),
                  name_or(al, c, sizeof c, r->algo));
    if ((size_t)o >= len)
        return;
    if (r->state == PPU_ST_FAILED) {
        snprintf(buf + o, len - (size_t)o, ": %s", r->last_error);
        return;
    }
    if (r->call_since_ns && now_ns > r->call_since_ns)
        o += snprintf(buf + o, len - (size_t)o, " for %.1f s",
                      (double)(now_ns - r->call_since_ns) / 1e9);
    if ((size_t)o >= len || r->wait_kind == PPU_WAIT_NONE)
        return;
    double w = now_ns > r->wait_since_ns ? (double)(now_ns - r->wait_since_ns) / 1e9 : 0;
    int p = r->wait_peer;
    if (r->wait_kind == PPU_WAIT_DATA)
        snprintf(buf + o, len - (size_t)o, ", waiting %.1f s for data from rank %d on link %d->%d",
                 w, p, p, r->rank);
    else if (r->wait_kind == PPU_WAIT_SLOT)
        snprintf(buf + o, len - (size_t)o, ", waiting %.1f s for a free slot on link %d->%d "
                 "(rank %d not reading)", w, r->rank, p, p);
    else
        snprintf(buf + o, len - (size_t)o, ", waiting %.1f s for rank %d to finish reading on "
                 "link %d->%d", w, p, r->rank, p);
}

const char *ppu_status_stuck(const struct ppu_status_view *v, uint64_t max_coll_seq)
{
    const struct ppu_status_rec *r = &v->rec;
    if (r->state == PPU_ST_FAILED)
        return "its call failed";
    if (!v->alive)
        return "dead: its process is gone";
    if (v->proc_state == 'T' || v->proc_state == 't')
        return "stopped (SIGSTOP or a debugger): it runs nothing";
    if (r->state == PPU_ST_IN_CALL && !v->moved)
        return "not answering: no heartbeat or progress while in a call";
    if (r->state == PPU_ST_IDLE && r->coll_seq < max_coll_seq)
        return "behind: not in a call, at an earlier collective than the others";
    return NULL;
}

static int cmp_rank(const void *x, const void *y)
{
    const struct ppu_status_view *a = x, *b = y;
    return a->rec.rank - b->rec.rank;
}

int ppu_status_explain(struct ppu_status_view *v, int n, uint64_t now_ns, char *buf, size_t len)
{
    if (n <= 0 || !len) {
        if (len)
            buf[0] = '\0';
        return 0;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_rank);
    int nr = v[0].rec.nranks;
    /* by rank; a rank seen twice (a stale file of a reused id) keeps the first */
    struct ppu_status_view **at = calloc((size_t)nr, sizeof *at);
    int *direct = calloc((size_t)nr, sizeof *direct), *all = calloc((size_t)nr, sizeof *all);
    size_t o = 0;
    int named = 0;
    if (!at || !direct || !all) {
        snprintf(buf, len, "out of memory\n");
        goto out;
    }
    uint64_t maxseq = 0;
    for (int i = 0; i < n; i++) {
        if (v[i].rec.nranks != nr || at[v[i].rec.rank])
            continue;
        at[v[i].rec.rank] = &v[i];
        if (v[i].rec.coll_seq > maxseq)
            maxseq = v[i].rec.coll_seq;
    }
    /* follow each waiting rank's chain of waits to its end: the rank
     * that is not itself waiting (or a rank seen twice: a cycle) */
    for (int r = 0; r < nr; r++) {
        if (!at[r] || at[r]->rec.state != PPU_ST_IN_CALL || at[r]->rec.wait_peer < 0)
            continue;
        int p = at[r]->rec.wait_peer, hops = 0;
        direct[p] += p != r;
        while (hops++ < nr && at[p] && at[p]->rec.state == PPU_ST_IN_CALL &&
               at[p]->rec.wait_peer >= 0 && !ppu_status_stuck(at[p], maxseq))
            p = at[p]->rec.wait_peer;
        if (p != r)
            all[p]++;
    }
    int here = 0;
    for (int r = 0; r < nr; r++)
        here += at[r] != NULL;
    o += (size_t)snprintf(buf + o, len - o, "communicator %016llx: %d rank(s), %d with a record "
                          "on this host, collectives issued up to #%llu\n",
                          (unsigned long long)v[0].rec.comm_id, nr, here,
                          (unsigned long long)maxseq);
    char line[512];
    /* first the ranks holding others up: stuck themselves (dead, stopped,
     * failed, silent in a call), or behind with others waiting on them,
     * or waited on with no record here */
    for (int r = 0; r < nr && o < len; r++) {
        const char *why = at[r] ? ppu_status_stuck(at[r], maxseq) : NULL;
        if (!at[r] && direct[r])
            why = "no record on this host (it runs elsewhere, has not started, or has no "
                  "status board)";
        /* a rank stuck in a call holds others up even before they wait on
         * it; an idle or failed one only when others wait on it */
        if (!why || (at[r] && at[r]->rec.state != PPU_ST_IN_CALL && !direct[r] && !all[r]))
            continue;
        if (!named++)
            o += (size_t)snprintf(buf + o, len - o, "holding the others up:\n");
        if (at[r])
            ppu_status_line(at[r], now_ns, line, sizeof line);
        else
            snprintf(line, sizeof line, "rank %d", r);
        if (o < len)
            o += (size_t)snprintf(buf + o, len - o, "  %s\n    %s; %d rank(s) wait on it "
                                  "directly, %d in all\n", line, why, direct[r],
                                  all[r] > direct[r] ? all[r] : direct[r]);
    }
    if (!named && o < len)
        o += (size_t)snprintf(buf + o, len - o, "no rank is holding the others up\n");
    if (o < len)
        o += (size_t)snprintf(buf + o, len - o, "ranks:\n");
    for (int r = 0; r < nr && o < len; r++) {
        if (!at[r])
            continue;
        ppu_status_line(at[r], now_ns, line, sizeof line);
        o += (size_t)snprintf(buf + o, len - o, "  %s%s\n", line,
                              at[r]->rec.state == PPU_ST_IN_CALL && !at[r]->moved
                                  ? " [no heartbeat]" : "");
    }
out:
    free(at);
    free(direct);
    free(all);
    return named;
}
