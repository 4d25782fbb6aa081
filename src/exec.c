/* The executor: runs a schedule's steps over the channels' links. Channels
 * are interleaved on one thread; a step runs only when its message has
 * arrived and its send slot is free, so no call here blocks, and the loop
 * waits (spin, yield, nap) with a deadline and the abort flag checked. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "comm.h"
#include "log.h"
#include "reduce.h"
#include "wait.h"

struct exec_ctx {
    struct ppu_comm *comm;
    const char *in;
    char *out;
    size_t esize;
    ppu_datatype_t dt;
    ppu_redop_t op;
    int refs_out[PPU_MAX_CHANNELS]; /* a channel sent references: drain at the end */
};

/* PPU_IN_PROGRESS when the step cannot run yet. */
static ppu_result_t run_step(struct exec_ctx *x, struct ppu_channel *ch, const struct ppu_step *st)
{
    uint32_t f = st->flags;
    struct ppu_comm *comm = x->comm;
    size_t nb = st->count * x->esize;
    const char *inp = (f & PPU_STEP_TMP_IN ? (const char *)comm->scratch : x->in) + st->offset * x->esize;
    char *outp = (f & PPU_STEP_TMP_OUT ? (char *)comm->scratch : x->out) + st->offset * x->esize;
    struct ppu_link *rl = st->recv_peer >= 0 ? &comm->mesh_recv[st->recv_peer] : &ch->recv;
    struct ppu_link *sl = st->send_peer >= 0 ? &comm->mesh_send[st->send_peer] : &ch->send;
    struct ppu_msg msg = {NULL, 0};
    void *slot = NULL;

    if (f & PPU_STEP_RECV) {
        ppu_result_t r = rl->ops->recv_peek(rl, &msg);
        if (r != PPU_SUCCESS)
            return r;
        if (msg.bytes != nb)
            return ppu_fail(comm, PPU_REMOTE_ERROR,
                            "rank %d expected a %zu-byte chunk from rank %d but got %zu bytes: "
                            "the ranks called different collectives or counts",
                            comm->rank, nb, rl->params.peer_rank, msg.bytes);
    }
    if (f & PPU_STEP_SEND) {
        ppu_result_t r = sl->ops->send_reserve(sl, &slot);
        if (r != PPU_SUCCESS)
            return r;
    }
    /* References pay a syscall on the reader's side: only for big chunks,
     * and only on ring links, whose drain the executor waits for. */
    int direct_send = (f & PPU_STEP_SEND) && sl->direct && nb >= comm->direct_min &&
                      st->send_peer < 0;
    const void *rdata = msg.ptr;
    char *dst;
    if (direct_send)
        dst = (f & (PPU_STEP_OUTPUT | PPU_STEP_RECV)) ? outp : NULL;
    else
        dst = (f & PPU_STEP_SEND) ? slot : outp;

    if ((f & PPU_STEP_RECV) && !rdata) {
        /* Remote memory: one kernel copy, straight to the output when the
         * message only needs placing there. */
        void *to = (!(f & PPU_STEP_INPUT) && dst == outp) ? outp : comm->scratch;
        PPU_CHECK(rl->ops->recv_read(rl, to, 0, nb));
        rdata = to;
    }
    if (f & PPU_STEP_ACCUM) /* output = output op (message or input) */
        ppu_reduce2(outp, outp, (f & PPU_STEP_RECV) ? rdata : (const void *)inp, st->count, x->dt,
                    x->op);
    else if ((f & PPU_STEP_RECV) && (f & PPU_STEP_INPUT))
        ppu_reduce2(dst, rdata, inp, st->count, x->dt, x->op);
    else if ((f & PPU_STEP_RECV) && dst != rdata)
        memcpy(dst, rdata, nb);
    else if (!(f & PPU_STEP_RECV) && dst && dst != inp)
        memcpy(dst, inp, nb);
    if (f & PPU_STEP_FINISH)
        ppu_reduce_finish(dst, st->count, x->dt, x->op, comm->nranks);
    if ((f & PPU_STEP_OUTPUT) && dst != outp)
        memcpy(outp, dst ? dst : inp, nb);
    if (f & PPU_STEP_SEND) {
        if (direct_send) {
            PPU_CHECK(sl->ops->send_ref(sl, dst ? dst : inp, nb));
            x->refs_out[ch - comm->ch] = 1;
        } else {
            PPU_CHECK(sl->ops->send_commit(sl, nb));
        }
    }
    if (f & PPU_STEP_RECV)
        PPU_CHECK(rl->ops->recv_release(rl));
    return PPU_SUCCESS;
}

static ppu_result_t timeout_error(struct ppu_comm *comm, const struct ppu_coll_args *a,
                                  int c, const struct ppu_step *st)
{
    struct ppu_channel *ch = &comm->ch[c];
    char what[160];
    int from = st && st->recv_peer >= 0 ? st->recv_peer : ch->prev;
    int to = st && st->send_peer >= 0 ? st->send_peer : ch->next;
    if (st && (st->flags & PPU_STEP_RECV))
        snprintf(what, sizeof what, "data from rank %d on link %d->%d", from, from, comm->rank);
    else if (st)
        snprintf(what, sizeof what, "a free slot on link %d->%d (rank %d not reading)",
                 comm->rank, to, to);
    else
        snprintf(what, sizeof what, "rank %d to finish reading on link %d->%d", ch->next,
                 comm->rank, ch->next);
    return ppu_fail(comm, PPU_TIMEOUT,
                    "allreduce #%llu (count=%zu %s %s) on rank %d timed out after %llu ms on "
                    "channel %d waiting for %s",
                    (unsigned long long)comm->seq, a->count, ppu_datatype_name(a->datatype),
                    ppu_redop_name(a->op), comm->rank,
                    (unsigned long long)(comm->timeout_ns / 1000000), c, what);
}

static ppu_result_t execute(struct ppu_comm *comm, const struct ppu_sched *s,
                            const struct ppu_coll_args *a)
{
    struct exec_ctx x = {comm, a->sendbuf, a->recvbuf, ppu_datatype_size(a->datatype),
                         a->datatype, a->op, {0}};
    size_t idx[PPU_MAX_CHANNELS] = {0};
    int left = s->nchannels;
    int done[PPU_MAX_CHANNELS] = {0};
    struct ppu_waiter w = {0, comm->spin};
    uint64_t deadline = 0;
    while (left > 0) {
        int progressed = 0;
        for (int c = 0; c < s->nchannels; c++) {
            if (done[c])
                continue;
            const struct ppu_sched_channel *sc = &s->ch[c];
            /* A few steps per visit keeps every channel's links busy. */
            for (int k = 0; k < 4 && idx[c] < sc->nsteps; k++) {
                ppu_result_t r = run_step(&x, &comm->ch[c], &sc->steps[idx[c]]);
                if (r == PPU_IN_PROGRESS)
                    break;
                if (r != PPU_SUCCESS)
                    return r;
                idx[c]++;
                progressed = 1;
            }
            if (idx[c] == sc->nsteps) {
                struct ppu_link *sl = &comm->ch[c].send;
                /* Referenced memory must outlive the receiver's reads. */
                if (!x.refs_out[c] || sl->ops->send_drained(sl) == PPU_SUCCESS) {
                    done[c] = 1;
                    left--;
                    progressed = 1;
                }
            }
        }
        if (progressed) {
            ppu_wait_reset(&w);
            deadline = 0;
            continue;
        }
        if (!ppu_wait_idle(&w))
            continue;
        if (atomic_load_explicit(&comm->aborted, memory_order_relaxed))
            return ppu_fail(comm, PPU_ABORTED, "allreduce #%llu on rank %d: communicator aborted",
                            (unsigned long long)comm->seq, comm->rank);
        uint64_t now = ppu_now_ns();
        if (!deadline)
            deadline = now + comm->timeout_ns;
        if (now > deadline) {
            for (int c = 0; c < s->nchannels; c++)
                if (!done[c])
                    return timeout_error(comm, a, c,
                                         idx[c] < s->ch[c].nsteps ? &s->ch[c].steps[idx[c]] : NULL);
        }
    }
    return PPU_SUCCESS;
}

static ppu_result_t get_plan(struct ppu_comm *comm, const struct ppu_coll_args *a,
                             const struct ppu_sched **out)
{
    struct ppu_sched *p = &comm->plan;
    if (comm->plan_valid && p->count == a->count && p->datatype == a->datatype && p->op == a->op) {
        *out = p;
        return PPU_SUCCESS;
    }
    if (comm->plan_valid)
        ppu_sched_free(p);
    comm->plan_valid = 0;
    int pos[PPU_MAX_CHANNELS];
    for (int c = 0; c < comm->nchannels; c++)
        pos[c] = comm->ch[c].pos;
    size_t es = ppu_datatype_size(a->datatype), chunk = comm->chunk_bytes / es;
    /* One-shot: every rank one hop from every other, and small enough for
     * one slot; it needs 1 step where a ring needs 2(n-1). */
    int oneshot = comm->mesh && a->count * es <= comm->oneshot_max;
    if (comm->algo_forced == PPU_ALGO_RING)
        oneshot = 0;
    else if (comm->algo_forced == PPU_ALGO_ONESHOT)
        oneshot = comm->mesh && a->count * es <= comm->mesh_slot;
    if (oneshot) {
        PPU_CHECK(ppu_sched_oneshot_allreduce(p, a->count, comm->nranks, comm->rank, a->op));
        goto done;
    }
    if (comm->algo_forced == PPU_ALGO_ONESHOT)
        PPU_INFO(PPU_SUB_COLL, "PPU_ALGO=oneshot does not apply to allreduce count=%zu %s here "
                 "(%s); using ring", a->count, ppu_datatype_name(a->datatype),
                 comm->mesh ? "larger than PPU_ONESHOT_MAX_BYTES" : "ranks are not all one hop apart");
    /* Small buffers on fewer channels: a channel costs 2(n-1) handoffs
     * whatever its size, so each must carry at least PPU_CHANNEL_MIN_BYTES. */
    size_t per = comm->channel_min_bytes ? comm->channel_min_bytes : 1;
    size_t want = (a->count * es + per - 1) / per;
    int nch = want < (size_t)comm->nchannels ? (int)(want ? want : 1) : comm->nchannels;
    PPU_CHECK(ppu_sched_ring_allreduce(p, a->count, comm->nranks, pos, nch, chunk ? chunk : 1,
                                       a->op));
done:
    PPU_INFO(PPU_SUB_COLL, "allreduce count=%zu %s %s: %s, %d channel(s)", a->count,
             ppu_datatype_name(a->datatype), ppu_redop_name(a->op),
             p->algo == PPU_ALGO_ONESHOT ? "oneshot" : "ring", p->nchannels);
    p->count = a->count;
    p->datatype = a->datatype;
    p->op = a->op;
    comm->plan_valid = 1;
    *out = p;
    return PPU_SUCCESS;
}

ppu_result_t ppu_coll_run(struct ppu_coll_args *a)
{
    struct ppu_comm *comm = a->comm;
    ppu_log_set_rank(comm->rank);
    pthread_mutex_lock(&comm->exec_lock);
    ppu_result_t r;
    comm->seq++;
    if (atomic_load(&comm->aborted)) {
        r = ppu_fail(comm, PPU_ABORTED, "rank %d: the communicator was aborted", comm->rank);
        goto out;
    }
    if (atomic_load(&comm->broken)) {
        r = ppu_fail(comm, PPU_INVALID_USAGE,
                     "rank %d: the communicator's links are in an unknown state after an "
                     "earlier collective failed; destroy it and create a new one", comm->rank);
        goto out;
    }
    const struct ppu_sched *plan;
    r = get_plan(comm, a, &plan);
    if (r == PPU_SUCCESS)
        r = execute(comm, plan, a);
    if (r != PPU_SUCCESS)
        atomic_store(&comm->broken, 1);
out:
    pthread_mutex_unlock(&comm->exec_lock);
    return r;
}
