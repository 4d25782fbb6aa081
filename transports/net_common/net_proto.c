/* The network protocol shared by net_socket and net_ib: see net_proto.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net_proto.h"
#include <arpa/inet.h>

#include "util/socket.h" /* union ppu_sockaddr */
#include "util/wait.h"   /* ppu_now_ns */

#define LOG_WARN 1
#define LOG_INFO 2

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
    if (!take_data && f.type == NET_FRAME_CREDIT)
        return NET_FRAME_CREDIT;
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

void net_addr_pack(const union ppu_sockaddr *a, uint16_t *port, uint32_t *scope_id,
                   uint8_t addr[16])
{
    if (a->sa.sa_family == AF_INET) {
        *port = ntohs(a->in4.sin_port);
        *scope_id = 0;
        memcpy(addr, &a->in4.sin_addr, 4);
    } else {
        *port = ntohs(a->in6.sin6_port);
        *scope_id = a->in6.sin6_scope_id;
        memcpy(addr, &a->in6.sin6_addr, 16);
    }
}

void net_addr_unpack(int family, uint16_t port, uint32_t scope_id, const uint8_t addr[16],
                     union ppu_sockaddr *a)
{
    memset(a, 0, sizeof *a);
    if (family == AF_INET) {
        a->in4.sin_family = AF_INET;
        a->in4.sin_port = htons(port);
        memcpy(&a->in4.sin_addr, addr, 4);
    } else {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons(port);
        a->in6.sin6_scope_id = scope_id;
        memcpy(&a->in6.sin6_addr, addr, 16);
    }
}

const char *net_end_dir(const struct net_end *e, char *buf, size_t len)
{
    snprintf(buf, len, "%d->%d", e->send ? e->self : e->peer, e->send ? e->peer : e->self);
    return buf;
}

ppu_result_t net_end_init(struct net_end *e, const char *tname, const struct ppu_link_params *p,
                          int send, size_t hdr, void (*kick)(int))
{
    e->tname = tname;
    e->send = send;
    e->self = p->self_rank;
    e->peer = p->peer_rank;
    e->slot_bytes = p->slot_bytes;
    e->hdr = hdr;
    e->stride = (hdr + p->slot_bytes + 63) & ~(size_t)63;
    e->nslots = p->nslots;
    e->kick = kick;
    atomic_init(&e->head, 0);
    atomic_init(&e->done, 0);
    atomic_init(&e->credit, 0);
    atomic_init(&e->tail, 0);
    atomic_init(&e->gone, 0);
    atomic_init(&e->peer_failed, 0);
    atomic_init(&e->local_failed, 0);
    e->pos = e->cached_done = e->credit_sent = 0;
    /* page-aligned: net_ib registers this memory */
    size_t bytes = ((size_t)p->nslots * e->stride + 4095) & ~(size_t)4095;
    e->slots = aligned_alloc(4096, bytes);
    e->meta = calloc((size_t)p->nslots, sizeof *e->meta);
    e->ready = NULL;
    if (!send) {
        e->ready = malloc((size_t)p->nslots * sizeof *e->ready);
        if (e->ready)
            for (int k = 0; k < p->nslots; k++)
                atomic_init(&e->ready[k], 0);
    }
    if (!e->slots || !e->meta || (!send && !e->ready)) {
        net_end_free(e);
        return PPU_SYSTEM_ERROR;
    }
    return PPU_SUCCESS;
}

void net_end_free(struct net_end *e)
{
    free(e->slots);
    free(e->meta);
    free((void *)e->ready);
    e->slots = NULL;
    e->meta = NULL;
    e->ready = NULL;
}

/* ---- the core's side ---- */

/* A free local slot: fewer than nslots messages not yet out. */
static int has_room(struct net_end *e)
{
    if (e->pos - e->cached_done < (uint64_t)e->nslots)
        return 1;
    e->cached_done = atomic_load_explicit(&e->done, memory_order_acquire);
    return e->pos - e->cached_done < (uint64_t)e->nslots;
}

ppu_result_t net_end_send_reserve(struct ppu_link *link, void **slot)
{
    struct net_end *e = link->priv;
    if (!has_room(e))
        return PPU_IN_PROGRESS;
    *slot = e->slots + (size_t)(e->pos % (uint64_t)e->nslots) * e->stride + e->hdr;
    return PPU_SUCCESS;
}

/* Hand message pos to the progress thread: bytes from the slot, or from ref. */
static void post(struct ppu_link *link, struct net_end *e, size_t bytes, const void *ref)
{
    struct net_meta *m = &e->meta[e->pos % (uint64_t)e->nslots];
    *m = (struct net_meta){bytes, {link->call[0], link->call[1]}, link->sum, ref};
    e->pos++;
    atomic_store_explicit(&e->head, e->pos, memory_order_seq_cst);
    e->kick(0);
    link->bytes += bytes;
    link->msgs++;
}

/* link->ll is ignored: every message goes as it is (simple protocol). */
ppu_result_t net_end_send_commit(struct ppu_link *link, size_t bytes)
{
    struct net_end *e = link->priv;
    if (bytes > e->slot_bytes)
        return PPU_INTERNAL_ERROR;
    post(link, e, bytes, NULL);
    return PPU_SUCCESS;
}

/* The caller's bytes go out as they are; they must stay unchanged until
 * send_drained reports every message out. */
ppu_result_t net_end_send_ref(struct ppu_link *link, const void *src, size_t bytes)
{
    struct net_end *e = link->priv;
    if (bytes > e->slot_bytes)
        return PPU_INTERNAL_ERROR;
    if (!has_room(e))
        return PPU_IN_PROGRESS;
    post(link, e, bytes, src);
    return PPU_SUCCESS;
}

ppu_result_t net_end_send_drained(struct ppu_link *link)
{
    struct net_end *e = link->priv;
    e->cached_done = atomic_load_explicit(&e->done, memory_order_acquire);
    return e->cached_done == e->pos ? PPU_SUCCESS : PPU_IN_PROGRESS;
}

ppu_result_t net_end_recv_peek(struct ppu_link *link, struct ppu_msg *msg)
{
    struct net_end *e = link->priv;
    size_t k = (size_t)(e->pos % (uint64_t)e->nslots);
    if (atomic_load_explicit(&e->ready[k], memory_order_acquire) != e->pos + 1)
        return PPU_IN_PROGRESS;
    const struct net_meta *m = &e->meta[k];
    msg->ptr = e->slots + k * e->stride + e->hdr;
    msg->bytes = (size_t)m->bytes;
    msg->call[0] = m->call[0];
    msg->call[1] = m->call[1];
    msg->sum = m->sum;
    return PPU_SUCCESS;
}

ppu_result_t net_end_recv_read(struct ppu_link *link, void *dst, size_t offset, size_t bytes)
{
    struct net_end *e = link->priv;
    size_t k = (size_t)(e->pos % (uint64_t)e->nslots);
    if (atomic_load_explicit(&e->ready[k], memory_order_acquire) != e->pos + 1 ||
        offset + bytes > e->meta[k].bytes)
        return PPU_INTERNAL_ERROR;
    memcpy(dst, e->slots + k * e->stride + e->hdr + offset, bytes);
    return PPU_SUCCESS;
}

ppu_result_t net_end_recv_release(struct ppu_link *link)
{
    struct net_end *e = link->priv;
    e->pos++;
    atomic_store_explicit(&e->tail, e->pos, memory_order_seq_cst);
    e->kick(0);
    return PPU_SUCCESS;
}

void net_end_set_failed(struct ppu_link *link)
{
    struct net_end *e = link->priv;
    if (!e)
        return;
    atomic_store_explicit(&e->local_failed, 1, memory_order_release);
    e->kick(1);
}

int net_end_peer_failed(struct ppu_link *link)
{
    struct net_end *e = link->priv;
    return e && atomic_load_explicit(&e->peer_failed, memory_order_acquire);
}

void net_end_drain(struct net_end *e, int timeout_ms)
{
    uint64_t deadline = ppu_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (atomic_load_explicit(&e->done, memory_order_acquire) < e->pos &&
           !atomic_load_explicit(&e->gone, memory_order_acquire) &&
           !atomic_load_explicit(&e->peer_failed, memory_order_acquire) &&
           !atomic_load_explicit(&e->local_failed, memory_order_acquire)) {
        if (ppu_now_ns() > deadline) {
            char d[32];
            ppu_transport_log(LOG_WARN, "%s: closing link %s with %llu message(s) rank %d did "
                              "not take in %d ms", e->tname, net_end_dir(e, d, sizeof d),
                              (unsigned long long)(e->pos - atomic_load(&e->done)), e->peer,
                              timeout_ms);
            break;
        }
        e->kick(0);
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}

/* ---- the progress thread's side ---- */

int net_end_next(struct net_end *e, uint64_t seq, struct net_frame *fr, const void **payload)
{
    if (seq >= atomic_load_explicit(&e->head, memory_order_acquire) ||
        seq - atomic_load_explicit(&e->credit, memory_order_acquire) >= (uint64_t)e->nslots)
        return 0;
    size_t k = (size_t)(seq % (uint64_t)e->nslots);
    const struct net_meta *m = &e->meta[k];
    *fr = (struct net_frame){NET_MAGIC_FRAME, NET_FRAME_DATA, seq, m->bytes,
                             {m->call[0], m->call[1]}, m->sum};
    *payload = m->ref ? (const void *)m->ref : (const void *)(e->slots + k * e->stride + e->hdr);
    return 1;
}

void net_end_sent(struct net_end *e, uint64_t n)
{
    /* several threads may report; the count only grows */
    uint64_t cur = atomic_load_explicit(&e->done, memory_order_relaxed);
    while (cur < n && !atomic_compare_exchange_weak_explicit(&e->done, &cur, n,
                                                             memory_order_release,
                                                             memory_order_relaxed))
        ;
}

int net_end_credit_in(struct net_end *e, uint64_t seq, const char **why)
{
    uint64_t have = atomic_load_explicit(&e->credit, memory_order_relaxed);
    if (seq < have) {
        *why = "a credit went backwards";
        return 0;
    }
    if (seq > atomic_load_explicit(&e->head, memory_order_acquire)) {
        *why = "a credit for messages never sent arrived";
        return 0;
    }
    atomic_store_explicit(&e->credit, seq, memory_order_release);
    return 1;
}

char *net_end_slot_for(struct net_end *e, const struct net_frame *fr, const char **why)
{
    if (fr->seq - atomic_load_explicit(&e->tail, memory_order_acquire) >= (uint64_t)e->nslots) {
        *why = "a message arrived without credit (its slot is still in use)";
        return NULL;
    }
    return e->slots + (size_t)(fr->seq % (uint64_t)e->nslots) * e->stride + e->hdr;
}

void net_end_landed(struct net_end *e, const struct net_frame *fr)
{
    size_t k = (size_t)(fr->seq % (uint64_t)e->nslots);
    e->meta[k] = (struct net_meta){fr->bytes, {fr->call[0], fr->call[1]}, fr->sum, NULL};
    atomic_store_explicit(&e->ready[k], fr->seq + 1, memory_order_release);
}

int net_end_credit_due(struct net_end *e, uint64_t *seq)
{
    uint64_t tail = atomic_load_explicit(&e->tail, memory_order_seq_cst);
    uint64_t half = e->nslots > 1 ? (uint64_t)e->nslots / 2 : 1;
    if (tail - e->credit_sent < half)
        return 0;
    *seq = tail;
    return 1;
}

void net_end_credit_sent(struct net_end *e, uint64_t seq)
{
    e->credit_sent = seq;
}

void net_end_broken(struct net_end *e, const char *what, const struct net_frame *f, uint64_t want,
                    const char *why)
{
    char d[32];
    if (atomic_exchange_explicit(&e->peer_failed, 1, memory_order_acq_rel))
        return; /* said already (or the peer's notice came first) */
    ppu_transport_log(LOG_WARN, "%s: link %s %s: %s from rank %d (magic 0x%08x, type %u, "
                      "message %llu of %llu bytes; message %llu due, %zu-byte slots); the link "
                      "is broken", e->tname, net_end_dir(e, d, sizeof d), what, why, e->peer,
                      f->magic, f->type, (unsigned long long)f->seq, (unsigned long long)f->bytes,
                      (unsigned long long)want, e->slot_bytes);
}

void net_end_notice(struct net_end *e)
{
    char d[32];
    if (!atomic_exchange_explicit(&e->peer_failed, 1, memory_order_acq_rel))
        ppu_transport_log(LOG_INFO, "%s: link %s: rank %d posted a failure notice", e->tname,
                          net_end_dir(e, d, sizeof d), e->peer);
}
