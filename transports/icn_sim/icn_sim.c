/* Simulated ICN link: one directed link = one shared-memory FIFO owned by
 * the receiver. Slots hold either the bytes themselves or, on direct links,
 * a reference (address, length) into the sender's memory that the receiver
 * reads with one kernel copy (process_vm_readv), or with no copy at all
 * when both ends are threads of one process.
 *
 * Two protocols share the FIFO's positions. Simple: the bytes (or the
 * reference) go in the slot, then the head counter is published. Low
 * latency (LL), for small messages: every 8-byte word carries 4 bytes of
 * data and a 4-byte flag (the message's position + 1), written in one
 * store, in a separate LL area of the slot; the receiver polls the flags,
 * so there is no head update to order after the data. The first word
 * holds the length. Credits (the tail) work the same for both. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../transport.h"
#include "util/proc.h"

#define ICN_MAGIC 0x50505549434e3031ull /* "PPUICN01" */
#define ICN_MAX_SLOTS 64
#define ICN_PROBE 0x5a5aa5a5c3c33c3cull

struct icn_desc {
    uint64_t bytes;
    uint64_t addr; /* nonzero: a reference into the sender's memory */
    uint64_t call[2]; /* the call that sent it (the core checks it) */
    uint64_t sum;     /* checksum of the bytes, or 0 (the core checks it) */
};

struct icn_hdr {
    uint64_t magic;
    uint32_t nslots;
    uint32_t pad;
    uint64_t slot_bytes;
    uint64_t ll_bytes;    /* largest LL message; its area follows the slots */
    int32_t sender_pid;
    int32_t receiver_pid;
    uint64_t probe_addr;  /* sender's address of a word holding ICN_PROBE */
    _Atomic int32_t direct; /* receiver's verdict: can it read sender memory */
    _Atomic int32_t failed[2]; /* [0] sender, [1] receiver: its call failed */
    _Alignas(64) _Atomic uint64_t head; /* messages posted (sender) */
    _Alignas(64) _Atomic uint64_t tail; /* messages released (receiver) */
    _Alignas(64) struct icn_desc desc[ICN_MAX_SLOTS];
};

/* Words of one LL slot: the length word, the stamp (call[0], call[1] and
 * sum, 4 bytes a word: 6 words), then 4 data bytes a word. */
#define LL_STAMP 3
#define LL_HDR (1 + 2 * LL_STAMP)

struct icn_info { /* connect info, receiver -> sender */
    char name[64];
    uint64_t size;
};

struct icn_link {
    struct icn_hdr *hdr;
    char *slots;
    size_t map_size;
    char name[64];
    int owner;            /* receiver side created the segment */
    uint64_t cached_head; /* receiver: last head seen */
    uint64_t cached_tail; /* sender: last tail seen */
    uint64_t pos;         /* sender: next to post; receiver: next to read */
    pid_t peer_pid;
    uint64_t probe;       /* sender: the word the receiver probes */
    _Atomic uint64_t *ll; /* LL area: nslots x ll_words words */
    size_t ll_words;
    char *ll_buf;         /* receiver: the LL message being read, decoded */
    int ll_ready;         /* receiver: ll_buf holds the message at pos */
    uint64_t ll_stamp[LL_STAMP]; /* receiver: call[0], call[1], sum */
};

static size_t hdr_bytes(void) { return (sizeof(struct icn_hdr) + 4095) & ~(size_t)4095; }

static size_t ll_words(size_t ll_bytes)
{
    return ll_bytes ? LL_HDR + (ll_bytes + 3) / 4 : 0;
}

static void set_layout(struct icn_link *l, void *m, const struct ppu_link_params *p)
{
    l->hdr = m;
    l->slots = (char *)m + hdr_bytes();
    l->ll_words = ll_words(p->ll_bytes);
    l->ll = (_Atomic uint64_t *)(void *)(l->slots + (size_t)p->nslots * p->slot_bytes);
}


/* Mappings in this process, shared by the links that use them. A sender
 * in the owner's process (ranks as threads) takes a reference to the
 * owner's mapping instead of mapping the segment again: one address per
 * byte keeps the FIFO's atomics visible to ThreadSanitizer, and the count
 * keeps the mapping alive until the last link closes, whichever rank
 * destroys its communicator first. */
struct icn_map {
    char name[64]; /* cleared once the name is unlinked */
    void *addr;
    size_t size;
    int refs;
};
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct icn_map *maps; /* grows: ranks as threads of one process hold many */
static size_t nmaps;

static int map_add(const char *name, void *addr, size_t size)
{
    int ok = 0;
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0;; i++) {
        if (i == nmaps) {
            size_t n = nmaps ? 2 * nmaps : 256;
            struct icn_map *g = realloc(maps, n * sizeof *g);
            if (!g)
                break;
            memset(g + nmaps, 0, (n - nmaps) * sizeof *g);
            maps = g;
            nmaps = n;
        }
        if (!maps[i].addr) {
            snprintf(maps[i].name, sizeof maps[i].name, "%s", name);
            maps[i].addr = addr;
            maps[i].size = size;
            maps[i].refs = 1;
            ok = 1;
            break;
        }
    }
    pthread_mutex_unlock(&maps_lock);
    return ok;
}

/* A new reference to the named mapping, or NULL when this process has none. */
static void *map_get(const char *name, size_t size)
{
    void *addr = NULL;
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0; i < nmaps && !addr; i++)
        if (maps[i].addr && maps[i].name[0] && !strcmp(maps[i].name, name) && maps[i].size == size) {
            maps[i].refs++;
            addr = maps[i].addr;
        }
    pthread_mutex_unlock(&maps_lock);
    return addr;
}

static void map_forget_name(void *addr)
{
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0; i < nmaps; i++)
        if (maps[i].addr == addr)
            maps[i].name[0] = '\0';
    pthread_mutex_unlock(&maps_lock);
}

/* Drop a reference; the last one unmaps. */
static void map_put(void *addr, size_t size)
{
    int unmap = 1;
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0; i < nmaps; i++)
        if (maps[i].addr == addr) {
            unmap = --maps[i].refs == 0;
            if (unmap)
                maps[i].addr = NULL;
            break;
        }
    pthread_mutex_unlock(&maps_lock);
    if (unmap)
        munmap(addr, size);
}


/* Segments of a crashed job: a name is unlinked as soon as both ends
 * attached, so one still in /dev/shm belongs to a process that died while
 * connecting, or is connecting now. One is removed (once a process, before
 * this process makes its own) only when its death is proven: the same
 * owner, the same PID namespace (a /dev/shm shared between containers
 * holds segments whose pids mean nothing here), and no process of that
 * pid. Names without a namespace (older builds) are left alone. */
static unsigned long my_pidns; /* read once, with the sweep (stale_once) */

static void remove_stale_segments(void)
{
    unsigned long ns = my_pidns = ppu_pid_namespace();
    DIR *d = ns ? opendir("/dev/shm") : NULL;
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid;
        unsigned long their_ns;
        char rest[64];
        if (sscanf(e->d_name, "ppuccl-%lu-%d-%63s", &their_ns, &pid, rest) != 3 || pid <= 0 ||
            their_ns != ns)
            continue;
        char path[300];
        struct stat st;
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        if (stat(path, &st) != 0 || st.st_uid != geteuid())
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue; /* its creator still runs */
        char name[300];
        snprintf(name, sizeof name, "/%s", e->d_name);
        shm_unlink(name);
    }
    closedir(d);
}

static pthread_once_t stale_once = PTHREAD_ONCE_INIT;

static ppu_result_t icn_recv_setup(struct ppu_link *link, void *info_out)
{
    const struct ppu_link_params *p = &link->params;
    pthread_once(&stale_once, remove_stale_segments);
    if (p->nslots < 1 || p->nslots > ICN_MAX_SLOTS)
        return PPU_INVALID_ARGUMENT;
    struct icn_link *l = calloc(1, sizeof *l);
    if (!l)
        return PPU_SYSTEM_ERROR;
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        goto err_free;
    snprintf(l->name, sizeof l->name, "/ppuccl-%lu-%d-%02x%02x%02x%02x%02x%02x%02x%02x",
             my_pidns, (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    if (p->ll_bytes > 0xffffffffu || p->slot_bytes % 8)
        goto err_free;
    l->map_size = hdr_bytes() + (size_t)p->nslots * (p->slot_bytes + 8 * ll_words(p->ll_bytes));
    if (p->ll_bytes && !(l->ll_buf = malloc(p->ll_bytes)))
        goto err_free;
    int fd = shm_open(l->name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0)
        goto err_free;
    /* Reserve the pages now: on a small or full /dev/shm (Docker's default
     * is 64 MiB) this fails here, with a message, instead of a SIGBUS when
     * a slot is first touched mid-call. */
    int fa = posix_fallocate(fd, 0, (off_t)l->map_size);
    if (fa != 0) {
        struct statvfs vs;
        unsigned long long avail =
            statvfs("/dev/shm", &vs) == 0 ? (unsigned long long)vs.f_bavail * vs.f_frsize : 0;
        ppu_transport_log(1, "icn_sim: link %d->%d needs %zu bytes of shared memory in /dev/shm "
                          "and could not have them (%s; %llu bytes free there): make /dev/shm "
                          "larger (docker --shm-size) or lower PPU_FIFO_SLOTS / PPU_CHUNK_SIZE",
                          p->peer_rank, p->self_rank, l->map_size, strerror(fa), avail);
        goto err_unlink;
    }
    void *m = mmap(NULL, l->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        goto err_unlink;
    close(fd);
    set_layout(l, m, p);
    l->owner = 1;
    l->hdr->nslots = (uint32_t)p->nslots;
    l->hdr->slot_bytes = p->slot_bytes;
    l->hdr->ll_bytes = p->ll_bytes;
    l->hdr->receiver_pid = (int32_t)getpid();
    l->hdr->magic = ICN_MAGIC;
    link->priv = l;
    struct icn_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.name, sizeof info.name, "%s", l->name);
    info.size = l->map_size;
    memcpy(info_out, &info, sizeof info);
    if (!map_add(l->name, m, l->map_size)) {
        munmap(m, l->map_size);
        shm_unlink(l->name);
        free(l->ll_buf);
        free(l);
        return PPU_SYSTEM_ERROR;
    }
    return PPU_SUCCESS;
err_unlink:
    close(fd);
    shm_unlink(l->name);
err_free:
    free(l->ll_buf);
    free(l);
    return PPU_SYSTEM_ERROR;
}

static ppu_result_t icn_send_connect(struct ppu_link *link, const void *info_in)
{
    struct icn_info info;
    memcpy(&info, info_in, sizeof info);
    info.name[sizeof info.name - 1] = '\0';
    struct icn_link *l = calloc(1, sizeof *l);
    if (!l)
        return PPU_SYSTEM_ERROR;
    void *m = map_get(info.name, info.size);
    if (!m) {
        int fd = shm_open(info.name, O_RDWR, 0600);
        if (fd < 0)
            goto err_free;
        struct stat st;
        if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != info.size) {
            close(fd);
            goto err_free;
        }
        m = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
            goto err_free;
        if (!map_add("", m, info.size)) {
            munmap(m, info.size);
            goto err_free;
        }
    }
    set_layout(l, m, &link->params);
    l->map_size = info.size;
    if (l->hdr->magic != ICN_MAGIC || l->hdr->slot_bytes != link->params.slot_bytes ||
        l->hdr->nslots != (uint32_t)link->params.nslots ||
        l->hdr->ll_bytes != link->params.ll_bytes) {
        map_put(m, info.size);
        free(l);
        return PPU_INTERNAL_ERROR;
    }
    l->probe = ICN_PROBE;
    l->hdr->sender_pid = (int32_t)getpid();
    l->hdr->probe_addr = (uint64_t)(uintptr_t)&l->probe;
    link->priv = l;
    return PPU_SUCCESS;
err_free:
    free(l);
    return PPU_SYSTEM_ERROR;
}

/* Every sender has attached: the name is no longer needed. Decide whether
 * this receiver can read the sender's memory. */
static ppu_result_t icn_recv_finish(struct ppu_link *link)
{
    struct icn_link *l = link->priv;
    shm_unlink(l->name);
    map_forget_name(l->hdr);
    l->name[0] = '\0';
    l->peer_pid = l->hdr->sender_pid;
    int direct = 0;
    if (link->params.allow_direct) {
        if (l->peer_pid == getpid()) {
            direct = 1;
        } else if (link->params.allow_cma) {
            uint64_t word = 0;
            struct iovec local = {&word, sizeof word};
            struct iovec remote = {(void *)(uintptr_t)l->hdr->probe_addr, sizeof word};
            direct = process_vm_readv(l->peer_pid, &local, 1, &remote, 1, 0) ==
                         (ssize_t)sizeof word && word == ICN_PROBE;
        }
    }
    atomic_store_explicit(&l->hdr->direct, direct, memory_order_release);
    return PPU_SUCCESS;
}

static ppu_result_t icn_send_finish(struct ppu_link *link)
{
    struct icn_link *l = link->priv;
    link->direct = atomic_load_explicit(&l->hdr->direct, memory_order_acquire);
    return PPU_SUCCESS;
}

static int icn_has_credit(struct icn_link *l)
{
    uint64_t n = l->hdr->nslots;
    if (l->pos - l->cached_tail < n)
        return 1;
    l->cached_tail = atomic_load_explicit(&l->hdr->tail, memory_order_acquire);
    return l->pos - l->cached_tail < n;
}

static ppu_result_t icn_send_reserve(struct ppu_link *link, void **slot)
{
    struct icn_link *l = link->priv;
    if (!icn_has_credit(l))
        return PPU_IN_PROGRESS;
    *slot = l->slots + (l->pos % l->hdr->nslots) * l->hdr->slot_bytes;
    return PPU_SUCCESS;
}

static void icn_post(struct ppu_link *link, struct icn_link *l, size_t bytes, uint64_t addr)
{
    struct icn_desc *d = &l->hdr->desc[l->pos % l->hdr->nslots];
    d->bytes = bytes;
    d->addr = addr;
    d->call[0] = link->call[0];
    d->call[1] = link->call[1];
    d->sum = link->sum;
    l->pos++;
    atomic_store_explicit(&l->hdr->head, l->pos, memory_order_release);
    link->bytes += bytes;
    link->msgs++;
}

static _Atomic uint64_t *ll_slot(const struct icn_link *l, uint64_t pos)
{
    return l->ll + (pos % l->hdr->nslots) * l->ll_words;
}

/* LL: the slot's bytes, 4 a word, each word stamped with the flag. */
static void ll_post(struct ppu_link *link, struct icn_link *l, size_t bytes)
{
    const char *src = l->slots + (l->pos % l->hdr->nslots) * l->hdr->slot_bytes;
    _Atomic uint64_t *w = ll_slot(l, l->pos);
    uint64_t flag = (uint64_t)(uint32_t)(l->pos + 1) << 32;
    const uint64_t stamp[LL_STAMP] = {link->call[0], link->call[1], link->sum};
    for (int k = 0; k < 2 * LL_STAMP; k++)
        atomic_store_explicit(&w[1 + k], flag | (uint32_t)(stamp[k / 2] >> (32 * (k % 2))),
                              memory_order_relaxed);
    size_t i = 0;
    for (; i + 4 <= bytes; i += 4) {
        uint32_t v;
        memcpy(&v, src + i, 4);
        atomic_store_explicit(&w[LL_HDR + i / 4], flag | v, memory_order_relaxed);
    }
    if (i < bytes) {
        uint32_t v = 0;
        memcpy(&v, src + i, bytes - i);
        atomic_store_explicit(&w[LL_HDR + i / 4], flag | v, memory_order_relaxed);
    }
    atomic_store_explicit(&w[0], flag | bytes, memory_order_relaxed);
    l->pos++;
    link->bytes += bytes;
    link->msgs++;
}

static ppu_result_t icn_send_commit(struct ppu_link *link, size_t bytes)
{
    struct icn_link *l = link->priv;
    if (link->ll && bytes <= l->hdr->ll_bytes)
        ll_post(link, l, bytes);
    else
        icn_post(link, l, bytes, 0);
    return PPU_SUCCESS;
}

/* The LL message at pos, decoded into ll_buf once every word carries its
 * flag: PPU_SUCCESS, PPU_IN_PROGRESS (not all there yet), or
 * PPU_INTERNAL_ERROR when pos holds no LL message. */
static ppu_result_t ll_peek(struct icn_link *l, struct ppu_msg *msg)
{
    if (!l->ll_words)
        return PPU_INTERNAL_ERROR;
    _Atomic uint64_t *w = ll_slot(l, l->pos);
    uint32_t flag = (uint32_t)(l->pos + 1);
    uint64_t w0 = atomic_load_explicit(&w[0], memory_order_acquire);
    if ((uint32_t)(w0 >> 32) != flag)
        return PPU_INTERNAL_ERROR;
    size_t bytes = (uint32_t)w0;
    if (!l->ll_ready) {
        for (int k = 0; k < 2 * LL_STAMP; k++) {
            uint64_t v = atomic_load_explicit(&w[1 + k], memory_order_acquire);
            if ((uint32_t)(v >> 32) != flag)
                return PPU_IN_PROGRESS;
            if (k % 2 == 0)
                l->ll_stamp[k / 2] = (uint32_t)v;
            else
                l->ll_stamp[k / 2] |= (uint64_t)(uint32_t)v << 32;
        }
        for (size_t i = 0; i < bytes; i += 4) {
            uint64_t v = atomic_load_explicit(&w[LL_HDR + i / 4], memory_order_acquire);
            if ((uint32_t)(v >> 32) != flag)
                return PPU_IN_PROGRESS;
            uint32_t d = (uint32_t)v;
            memcpy(l->ll_buf + i, &d, bytes - i < 4 ? bytes - i : 4);
        }
        l->ll_ready = 1;
    }
    msg->call[0] = l->ll_stamp[0];
    msg->call[1] = l->ll_stamp[1];
    msg->sum = l->ll_stamp[2];
    msg->ptr = l->ll_buf;
    msg->bytes = bytes;
    return PPU_SUCCESS;
}

static ppu_result_t icn_send_ref(struct ppu_link *link, const void *src, size_t bytes)
{
    struct icn_link *l = link->priv;
    if (!link->direct)
        return PPU_INTERNAL_ERROR;
    if (!icn_has_credit(l))
        return PPU_IN_PROGRESS;
    icn_post(link, l, bytes, (uint64_t)(uintptr_t)src);
    return PPU_SUCCESS;
}

static ppu_result_t icn_send_drained(struct ppu_link *link)
{
    struct icn_link *l = link->priv;
    if (l->cached_tail == l->pos)
        return PPU_SUCCESS;
    l->cached_tail = atomic_load_explicit(&l->hdr->tail, memory_order_acquire);
    return l->cached_tail == l->pos ? PPU_SUCCESS : PPU_IN_PROGRESS;
}

static ppu_result_t icn_recv_peek(struct ppu_link *link, struct ppu_msg *msg)
{
    struct icn_link *l = link->priv;
    ppu_result_t r = ll_peek(l, msg);
    if (r != PPU_INTERNAL_ERROR)
        return r;
    /* Not (yet) an LL message. The head moves only for simple messages; a
     * head past pos makes everything written before it visible, an LL
     * message at pos included, so look again before taking it as simple. */
    if (l->pos >= l->cached_head) {
        l->cached_head = atomic_load_explicit(&l->hdr->head, memory_order_acquire);
        if (l->pos >= l->cached_head)
            return PPU_IN_PROGRESS;
        r = ll_peek(l, msg);
        if (r != PPU_INTERNAL_ERROR)
            return r;
    }
    const struct icn_desc *d = &l->hdr->desc[l->pos % l->hdr->nslots];
    msg->bytes = d->bytes;
    msg->call[0] = d->call[0];
    msg->call[1] = d->call[1];
    msg->sum = d->sum;
    if (d->addr == 0)
        msg->ptr = l->slots + (l->pos % l->hdr->nslots) * l->hdr->slot_bytes;
    else if (l->peer_pid == getpid())
        msg->ptr = (const void *)(uintptr_t)d->addr;
    else
        msg->ptr = NULL;
    return PPU_SUCCESS;
}

static ppu_result_t icn_recv_read(struct ppu_link *link, void *dst, size_t offset, size_t bytes)
{
    struct icn_link *l = link->priv;
    const struct icn_desc *d = &l->hdr->desc[l->pos % l->hdr->nslots];
    if (offset + bytes > d->bytes)
        return PPU_INTERNAL_ERROR;
    if (d->addr == 0) {
        memcpy(dst, l->slots + (l->pos % l->hdr->nslots) * l->hdr->slot_bytes + offset, bytes);
        return PPU_SUCCESS;
    }
    if (l->peer_pid == getpid()) {
        memcpy(dst, (const char *)(uintptr_t)d->addr + offset, bytes);
        return PPU_SUCCESS;
    }
    size_t done = 0;
    while (done < bytes) {
        struct iovec local = {(char *)dst + done, bytes - done};
        struct iovec remote = {(char *)(uintptr_t)d->addr + offset + done, bytes - done};
        ssize_t n = process_vm_readv(l->peer_pid, &local, 1, &remote, 1, 0);
        if (n <= 0)
            return n < 0 && errno == ESRCH ? PPU_REMOTE_ERROR : PPU_SYSTEM_ERROR;
        done += (size_t)n;
    }
    return PPU_SUCCESS;
}

static ppu_result_t icn_recv_release(struct ppu_link *link)
{
    struct icn_link *l = link->priv;
    l->ll_ready = 0;
    l->pos++;
    atomic_store_explicit(&l->hdr->tail, l->pos, memory_order_release);
    return PPU_SUCCESS;
}

/* A process that exited, or one that is a zombie nobody has reaped yet. */
static int icn_peer_gone(struct ppu_link *link)
{
    struct icn_link *l = link->priv;
    if (!l || !l->hdr)
        return 0;
    pid_t pid = l->owner ? l->hdr->sender_pid : l->hdr->receiver_pid;
    if (pid <= 0 || pid == getpid())
        return 0;
    if (kill(pid, 0) != 0)
        return errno == ESRCH;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return rp && (rp[2] == 'Z' || rp[2] == 'X');
}

/* The ends of a link share its header: each may post a failure notice. */
static void icn_set_failed(struct ppu_link *link)
{
    struct icn_link *l = link->priv;
    if (l && l->hdr)
        atomic_store_explicit(&l->hdr->failed[l->owner], 1, memory_order_release);
}

static int icn_peer_failed(struct ppu_link *link)
{
    struct icn_link *l = link->priv;
    return l && l->hdr && atomic_load_explicit(&l->hdr->failed[!l->owner], memory_order_acquire);
}

static void icn_close(struct ppu_link *link)
{
    struct icn_link *l = link->priv;
    if (!l)
        return;
    if (l->name[0])
        shm_unlink(l->name);
    if (l->hdr)
        map_put(l->hdr, l->map_size);
    free(l->ll_buf);
    free(l);
    link->priv = NULL;
}

static const char *icn_why_failed(const struct ppu_link *link, int phase, ppu_result_t r,
                                  char *buf, size_t len)
{
    const struct ppu_link_params *p = &link->params;
    if (phase == 1)
        snprintf(buf, len, "its FIFO needs %zu bytes of /dev/shm (%d slots of %zu: "
                 "PPU_FIFO_SLOTS, PPU_CHUNK_SIZE); the log says more",
                 (size_t)p->nslots * p->slot_bytes, p->nslots, p->slot_bytes);
    else if (phase == 2)
        snprintf(buf, len, "%s", r == PPU_INTERNAL_ERROR ? "its FIFO's shape differs from this "
                                                           "rank's" : "its FIFO is gone");
    else
        snprintf(buf, len, "see the log");
    return buf;
}

const struct ppu_transport_ops ppu_icn_sim_ops = {
    .name = "icn_sim",
    .why_failed = icn_why_failed,
    .recv_setup = icn_recv_setup,
    .send_connect = icn_send_connect,
    .recv_finish = icn_recv_finish,
    .send_finish = icn_send_finish,
    .send_reserve = icn_send_reserve,
    .send_commit = icn_send_commit,
    .send_ref = icn_send_ref,
    .send_drained = icn_send_drained,
    .recv_peek = icn_recv_peek,
    .recv_read = icn_recv_read,
    .recv_release = icn_recv_release,
    .peer_gone = icn_peer_gone,
    .set_failed = icn_set_failed,
    .peer_failed = icn_peer_failed,
    .close = icn_close,
};
