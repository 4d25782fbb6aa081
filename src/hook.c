/* Hooks around a transport: fault injection (PPU_SIM_FAULT: links down,
 * delayed, slow or corrupting), links paced to the topology
 * (PPU_SIM_LINK_CAP) and end-to-end checksums (PPU_CHECKSUM), as a
 * copy of the transport's ops table with the data calls wrapped, the way
 * libfabric's hook providers wrap a provider. A communicator with neither
 * uses the transport's table itself and pays nothing; the executor's step
 * knows of neither.
 *
 * The wrapped calls find the communicator and the transport's own calls
 * through link->hook.ctx (a struct ppu_hook of the communicator's); what
 * else passes through (setup, release, liveness, failure notices, close)
 * is the transport's own entry, copied. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "comm.h"
#include "fault.h"
#include "reduce.h"

/* "allreduce #3 (count=1000 float32)": the call the communicator runs */
static const char *call_now(const struct ppu_comm *comm, char *buf, size_t len)
{
    const struct ppu_coll_args *a = comm->cur_call;
    if (!a)
        snprintf(buf, len, "call #%llu", (unsigned long long)comm->coll_seq);
    else
        snprintf(buf, len, "%s #%llu (count=%zu %s)", ppu_coll_name(a->coll),
                 (unsigned long long)comm->coll_seq, a->count, ppu_datatype_name(a->datatype));
    return buf;
}

static ppu_result_t link_is_down(struct ppu_link *l, int from, int to)
{
    struct ppu_hook *h = l->hook.ctx;
    struct ppu_comm *comm = h->comm;
    if (!comm->nfaults || !ppu_fault_link_down(comm, from, to))
        return PPU_SUCCESS;
    char what[160];
    return ppu_fail(comm, PPU_REMOTE_ERROR, "%s on rank %d: link %d->%d is down (PPU_SIM_FAULT)",
                    call_now(comm, what, sizeof what), comm->rank, from, to);
}

/* PPU_SIM_FAULT corrupt: the message as a faulty link would deliver it,
 * one bit flipped, in a private copy (the sender's memory stays intact). */
static ppu_result_t corrupt_copy(struct ppu_comm *comm, const void **data, size_t nb)
{
    if (comm->fault_buf_bytes < nb) {
        void *b = realloc(comm->fault_buf, nb);
        if (!b)
            return ppu_fail(comm, PPU_SYSTEM_ERROR, "PPU_SIM_FAULT: out of memory");
        comm->fault_buf = b;
        comm->fault_buf_bytes = nb;
    }
    memcpy(comm->fault_buf, *data, nb);
    ((unsigned char *)comm->fault_buf)[nb / 2] ^= 0x10;
    *data = comm->fault_buf;
    return PPU_SUCCESS;
}

static int corrupts(const struct ppu_link *l, size_t nb)
{
    const struct ppu_comm *comm = ((const struct ppu_hook *)l->hook.ctx)->comm;
    return nb && comm->nfaults && ppu_fault_link_corrupt(comm, l->params.peer_rank, comm->rank);
}

/* PPU_CHECKSUM: bytes that differ from what the sender summed are an
 * error naming the link, never data. */
static ppu_result_t check_sum(struct ppu_link *l, uint64_t sent, const void *data, size_t nb)
{
    struct ppu_comm *comm = ((struct ppu_hook *)l->hook.ctx)->comm;
    int from = l->params.peer_rank;
    char what[160];
    if (sent == 0)
        return ppu_fail(comm, PPU_INVALID_USAGE,
                        "%s on rank %d: rank %d sent a message without a checksum: set "
                        "PPU_CHECKSUM the same on every rank", call_now(comm, what, sizeof what),
                        comm->rank, from);
    uint64_t got = ppu_checksum(data, nb);
    if (got == sent)
        return PPU_SUCCESS;
    return ppu_fail(comm, PPU_REMOTE_ERROR,
                    "%s on rank %d: checksum mismatch on link %d->%d: a %zu-byte message "
                    "arrived corrupted (sent %016llx, received %016llx); its data was not used",
                    call_now(comm, what, sizeof what), comm->rank, from, comm->rank, nb,
                    (unsigned long long)sent, (unsigned long long)got);
}

static ppu_result_t hook_recv_peek(struct ppu_link *l, struct ppu_msg *msg)
{
    struct ppu_hook *h = l->hook.ctx;
    PPU_CHECK(link_is_down(l, l->params.peer_rank, h->comm->rank));
    ppu_result_t r = h->inner->recv_peek(l, msg);
    if (r != PPU_SUCCESS)
        return r;
    l->hook.sum = msg->sum;
    l->hook.bytes = msg->bytes;
    if (!msg->ptr) /* remote memory: checked once read (hook_recv_read) */
        return PPU_SUCCESS;
    if (corrupts(l, msg->bytes))
        PPU_CHECK(corrupt_copy(h->comm, &msg->ptr, msg->bytes));
    if (h->comm->checksum && l->hook.checked != msg->ptr) {
        PPU_CHECK(check_sum(l, msg->sum, msg->ptr, msg->bytes));
        l->hook.checked = msg->ptr; /* a peek again before release costs nothing */
    }
    return PPU_SUCCESS;
}

static ppu_result_t hook_recv_read(struct ppu_link *l, void *dst, size_t off, size_t bytes)
{
    struct ppu_hook *h = l->hook.ctx;
    PPU_CHECK(h->inner->recv_read(l, dst, off, bytes));
    if (off != 0 || bytes != l->hook.bytes)
        return PPU_SUCCESS; /* a part: the executor reads whole messages */
    if (corrupts(l, bytes))
        ((unsigned char *)dst)[bytes / 2] ^= 0x10;
    if (h->comm->checksum)
        PPU_CHECK(check_sum(l, l->hook.sum, dst, bytes));
    return PPU_SUCCESS;
}

static ppu_result_t hook_recv_release(struct ppu_link *l)
{
    l->hook.checked = NULL;
    return ((struct ppu_hook *)l->hook.ctx)->inner->recv_release(l);
}

static ppu_result_t hook_send_reserve(struct ppu_link *l, void **slot)
{
    struct ppu_hook *h = l->hook.ctx;
    PPU_CHECK(link_is_down(l, h->comm->rank, l->params.peer_rank));
    ppu_result_t r = h->inner->send_reserve(l, slot);
    if (r == PPU_SUCCESS)
        l->hook.slot = *slot;
    return r;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

/* The bandwidth the link to peer is paced to (GB/s), 0 for none: a
 * PPU_SIM_FAULT gbps limit, else with PPU_SIM_LINK_CAP the topology's
 * figure for the ICN link (links between servers and staged ones are
 * not capped by it). */
static double pace_gbps(const struct ppu_comm *comm, int peer)
{
    double g = comm->nfaults ? ppu_fault_gbps(comm, comm->rank, peer) : 0;
    if (g > 0 || !comm->link_cap || !ppu_cluster_icn_up(&comm->cl, comm->rank, peer))
        return g;
    const struct ppu_topo *t = comm->cl.stopo[comm->cl.server[comm->rank]];
    double top = t->gbps[comm->cl.local[comm->rank]][comm->cl.local[peer]];
    return top > 0 ? top : t->link_gbps;
}

/* A link of G GB/s is busy nb / G ns with each message: a message waits
 * until the link is free of the ones before it, so a run of them moves at
 * G at most. Waits under PACE_SLACK_NS are not slept (a sleep costs more
 * than that here) but owed: the next message waits for them. */
#define PACE_SLACK_NS 200000
static void pace(struct ppu_comm *comm, struct ppu_link *l, size_t nb)
{
    if (l->hook.gbps < 0)
        l->hook.gbps = pace_gbps(comm, l->params.peer_rank);
    if (l->hook.gbps == 0)
        return;
    uint64_t now = ppu_now_ns();
    uint64_t start = l->hook.paced_until > now ? l->hook.paced_until : now;
    if (start > now + PACE_SLACK_NS) {
        sleep_ns(start - now);
        start = ppu_now_ns();
    }
    l->hook.paced_until = start + (uint64_t)((double)nb / l->hook.gbps);
}

/* What every message sent costs under the hooks: the link's delay and
 * pace and the sum the receiver checks. */
static void before_send(struct ppu_link *l, const void *bytes_at, size_t nb)
{
    struct ppu_comm *comm = ((struct ppu_hook *)l->hook.ctx)->comm;
    if (comm->nfaults) {
        uint64_t d = ppu_fault_delay_us(comm, comm->rank, l->params.peer_rank);
        if (d)
            sleep_ns(d * 1000);
    }
    pace(comm, l, nb);
    if (comm->checksum)
        l->sum = ppu_checksum(bytes_at, nb);
}

static ppu_result_t hook_send_commit(struct ppu_link *l, size_t bytes)
{
    before_send(l, l->hook.slot, bytes);
    return ((struct ppu_hook *)l->hook.ctx)->inner->send_commit(l, bytes);
}

static ppu_result_t hook_send_ref(struct ppu_link *l, const void *src, size_t bytes)
{
    before_send(l, src, bytes);
    return ((struct ppu_hook *)l->hook.ctx)->inner->send_ref(l, src, bytes);
}

/* The communicator's hook over inner, made on first use; NULL when it
 * has as many as PPU_MAX_HOOKS already (it uses at most two transports). */
static struct ppu_hook *hook_for(struct ppu_comm *comm, const struct ppu_transport_ops *inner)
{
    for (int i = 0; i < PPU_MAX_HOOKS; i++) {
        struct ppu_hook *h = &comm->hooks[i];
        if (h->inner == inner)
            return h;
        if (h->inner)
            continue;
        h->inner = inner;
        h->comm = comm;
        h->ops = *inner; /* what is not wrapped passes through */
        h->ops.recv_peek = hook_recv_peek;
        h->ops.recv_read = hook_recv_read;
        h->ops.recv_release = hook_recv_release;
        h->ops.send_reserve = hook_send_reserve;
        h->ops.send_commit = hook_send_commit;
        if (inner->send_ref)
            h->ops.send_ref = hook_send_ref;
        return h;
    }
    return NULL;
}

void ppu_hook_link(struct ppu_comm *comm, struct ppu_link *l,
                   const struct ppu_transport_ops *inner)
{
    memset(&l->hook, 0, sizeof l->hook);
    int hooked = comm->nfaults || comm->checksum || comm->link_cap;
    struct ppu_hook *h = hooked ? hook_for(comm, inner) : NULL;
    l->ops = h ? &h->ops : inner;
    l->hook.ctx = h;
    l->hook.gbps = -1; /* found on the first send */
}
