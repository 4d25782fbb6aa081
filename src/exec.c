/* The executor: runs schedules' steps over the links. Every channel of
 * every task (one task per communicator phase) is interleaved on one
 * thread; a step runs only when its message has arrived and its send slot
 * is free, so no call here blocks, and the loop waits (spin, yield, nap)
 * with a deadline and the abort flags checked. A group's calls on several
 * communicators run in one loop, so none waits on a call not yet made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "comm.h"
#include "util/log.h"
#include "reduce.h"
#include "util/wait.h"
#include "reg.h"
#include "window.h"

struct exec_task {
    struct ppu_comm *comm;
    const struct ppu_coll_args *a; /* the call, for buffers and messages */
    const struct ppu_sched *s;
    size_t esize;
    size_t *idx;     /* next step per channel */
    uint8_t *state;  /* per channel: 0 running, 1 draining, 2 done */
    int left;        /* channels not done */
    uint64_t call[2]; /* the stamp this call's messages carry */
    void *tmp;       /* the schedule's temporary for this run (s->tmp_bytes) */
};

/* Every message carries its call: count, and the collective's sequence
 * number, kind, datatype, op and root. Ranks that called different things
 * are told so by name instead of hanging or mixing data. Sends and
 * receives carry a wildcard sequence: they are not numbered alike on
 * every rank. */
#define CALL_P2P_SEQ 0xffffffffu

static int is_p2p(const struct ppu_coll_args *a)
{
    return a->coll == PPU_COLL_SEND || a->coll == PPU_COLL_RECV;
}

#define STAMP_COUNT_MASK ((1ull << 40) - 1)

void ppu_call_stamp(const struct ppu_comm *comm, const struct ppu_coll_args *a, uint64_t c[2])
{
    int p2p = is_p2p(a);
    uint32_t seq = p2p ? CALL_P2P_SEQ : (uint32_t)comm->coll_seq;
    /* count in the low 40 bits of c[0] (a trillion elements), the root
     * in its top 24 (any rank of a job up to 8 million, -1 for none) */
    uint64_t count = p2p || a->coll == PPU_COLL_ALLTOALLV ? 0 : (uint64_t)a->count;
    c[0] = (count & STAMP_COUNT_MASK) | (uint64_t)((uint32_t)(p2p ? 0 : a->root) & 0xffffffu) << 40;
    c[1] = (uint64_t)seq << 32 | (uint64_t)(p2p ? PPU_COLL_SEND : a->coll) << 24 |
           (uint64_t)(p2p ? 0 : a->datatype) << 16 | (uint64_t)(p2p ? 0 : a->op) << 8;
}

int ppu_call_str(const uint64_t c[2], char *buf, size_t len)
{
    uint32_t seq = (uint32_t)(c[1] >> 32);
    int coll = (int)(c[1] >> 24 & 0xff), dt = (int)(c[1] >> 16 & 0xff), op = (int)(c[1] >> 8 & 0xff);
    int root = (int)(c[0] >> 40);
    root = root >= 0x800000 ? root - 0x1000000 : root; /* 24-bit two's complement */
    if (seq == CALL_P2P_SEQ)
        return snprintf(buf, len, "send/recv");
    int n = snprintf(buf, len, "%s #%u count=%llu %s", ppu_coll_name((enum ppu_coll)coll), seq,
                     (unsigned long long)(c[0] & STAMP_COUNT_MASK),
                     ppu_datatype_name((ppu_datatype_t)dt));
    if (coll == PPU_COLL_ALLREDUCE || coll == PPU_COLL_REDUCE || coll == PPU_COLL_REDUCE_SCATTER)
        n += snprintf(buf + n, len > (size_t)n ? len - (size_t)n : 0, " %s",
                      ppu_redop_name((ppu_redop_t)op));
    if (coll == PPU_COLL_BROADCAST || coll == PPU_COLL_REDUCE)
        n += snprintf(buf + n, len > (size_t)n ? len - (size_t)n : 0, " root=%d", root);
    return n;
}

static ppu_result_t call_mismatch(const struct exec_task *t, int peer, const uint64_t *theirs)
{
    char mine[160], other[160];
    ppu_call_str(t->call, mine, sizeof mine);
    ppu_call_str(theirs, other, sizeof other);
    return ppu_fail(t->comm, PPU_INVALID_USAGE,
                    "mismatched calls: rank %d called %s, rank %d called %s (every rank must make "
                    "the same collective calls in the same order)", peer, other, t->comm->rank,
                    mine);
}

static const char *in_buf(const struct exec_task *t, int c)
{
    const struct ppu_sched_channel *ch = &t->s->ch[c];
    return ch->in_tmp ? t->tmp : ch->in ? ch->in : t->a->sendbuf;
}

static char *out_buf(const struct exec_task *t, int c)
{
    const struct ppu_sched_channel *ch = &t->s->ch[c];
    return ch->out_tmp ? t->tmp : ch->out ? ch->out : t->a->recvbuf;
}

/* A step's links: its channel's ring links, or the peer's on the step's
 * lane (comm->peer_send[lane * nranks + peer]) */
static struct ppu_link *recv_link(struct ppu_comm *comm, int c, const struct ppu_step *st)
{
    return st->recv_peer >= 0
               ? comm->peer_recv[(size_t)ppu_step_lane(st) * comm->nranks + st->recv_peer]
               : &comm->ch[c].recv;
}

static struct ppu_link *send_link(struct ppu_comm *comm, int c, const struct ppu_step *st)
{
    return st->send_peer >= 0
               ? comm->peer_send[(size_t)ppu_step_lane(st) * comm->nranks + st->send_peer]
               : &comm->ch[c].send;
}

/* Does the step send its bytes by reference (send_ref) rather than through
 * a slot? src: where they are (the output, or the input for a step that
 * only forwards it). References pay a syscall on the reader's side: only
 * for big chunks, and only on ring links, whose drain the executor waits
 * for; RDMA links send only from memory the user registered (reg.h). */
static int sends_by_ref(const struct exec_task *t, const struct ppu_step *st,
                        const struct ppu_link *sl, size_t nb, const void *src)
{
    uint32_t f = st->flags;
    return sl && sl->direct && nb >= t->comm->direct_min && st->send_peer < 0 &&
           t->s->proto == PPU_PROTO_SIMPLE &&
           (!(f & (PPU_STEP_RECV | PPU_STEP_ACCUM)) || (f & (PPU_STEP_OUTPUT | PPU_STEP_REF_OUT))) &&
           (sl->direct != PPU_DIRECT_REGISTERED || ppu_reg_covers(sl->params.reg_owner, src, nb));
}

/* dst = a op b where dst is a send slot in memory the next rank reads:
 * reduced a block at a time into a buffer in cache, then copied out.
 * Storing the reduction straight into the slot fetched every line of it
 * first from the core that last read it (2 ranks, 1 MB ring: 33% of the
 * time in the reduction against 18% for two-shot, which reduces into
 * private memory and then copies); the copy's string stores do not.
 * Only where ranks have cores of their own (comm->stage_slots), and for
 * SIMPLE messages: an LL slot is this rank's own staging, which ll_post
 * encodes into the link. */
#define SLOT_BLOCK (16u << 10)
static void reduce_into_slot(const struct exec_task *t, void *dst, const void *a, const void *b,
                             size_t count)
{
    static _Thread_local _Alignas(64) unsigned char tmp[SLOT_BLOCK];
    size_t es = t->esize, per = SLOT_BLOCK / es;
    for (size_t at = 0; at < count; at += per) {
        size_t k = count - at < per ? count - at : per;
        ppu_reduce2(tmp, (const char *)a + at * es, (const char *)b + at * es, k,
                    t->a->datatype, t->a->op);
        memcpy((char *)dst + at * es, tmp, k * es);
    }
}

/* One step, of a kind in sched_ring.c's table (ppu_step_kinds: every
 * combination of flags a builder may emit, asserted when it is added).
 * PPU_IN_PROGRESS when the step cannot run yet. */
static ppu_result_t run_step(struct exec_task *t, int c, const struct ppu_step *st, int *refs)
{
    uint32_t f = st->flags;
    struct ppu_comm *comm = t->comm;
    size_t es = t->esize, nb = st->count * es;
    const char *inp = (f & PPU_STEP_TMP_IN ? (const char *)comm->scratch
                       : f & PPU_STEP_IN_OUT ? out_buf(t, c) : in_buf(t, c)) + st->in_off * es;
    char *outp = (f & PPU_STEP_TMP_OUT ? (char *)comm->scratch : out_buf(t, c)) + st->out_off * es;
    struct ppu_link *rl = (f & PPU_STEP_RECV) ? recv_link(comm, c, st) : NULL;
    struct ppu_link *sl = (f & PPU_STEP_SEND) ? send_link(comm, c, st) : NULL;
    struct ppu_msg msg = {NULL, 0, {0, 0}, 0};
    void *slot = NULL;

    /* Faults (PPU_SIM_FAULT) and checksums (PPU_CHECKSUM) live in the
     * links' hooked ops (hook.c), not here. */
    if (rl) {
        ppu_result_t r = rl->ops->recv_peek(rl, &msg);
        if (r != PPU_SUCCESS)
            return r;
        if (t->comm->check_calls && (msg.call[0] != t->call[0] || msg.call[1] != t->call[1]))
            return call_mismatch(t, rl->params.peer_rank, msg.call);
        if (msg.bytes != nb)
            return ppu_fail(comm, PPU_REMOTE_ERROR,
                            "%s #%llu: rank %d expected a %zu-byte message from rank %d but got "
                            "%zu bytes: the ranks called different collectives or counts",
                            ppu_coll_name(t->a->coll), (unsigned long long)comm->seq, comm->rank,
                            nb, rl->params.peer_rank, msg.bytes);
    }
    if (sl) {
        ppu_result_t r = sl->ops->send_reserve(sl, &slot);
        if (r != PPU_SUCCESS)
            return r;
    }
    const void *rdata = msg.ptr;
    char *dst = (f & (PPU_STEP_OUTPUT | PPU_STEP_RECV | PPU_STEP_ACCUM | PPU_STEP_REF_OUT)) ? outp
                                                                                         : NULL;
    int direct_send = sends_by_ref(t, st, sl, nb, dst ? dst : inp);
    if (!direct_send)
        dst = sl ? slot : outp;

    if (rl && !rdata) {
        /* Remote memory: one kernel copy, straight to the output when the
         * message only needs placing there. */
        void *to = (!(f & (PPU_STEP_INPUT | PPU_STEP_ACCUM)) && dst == outp) ? outp : comm->scratch;
        PPU_CHECK(rl->ops->recv_read(rl, to, 0, nb));
        rdata = to;
    }
    if (f & PPU_STEP_ACCUM) { /* output = output op (message or input) */
        ppu_reduce2(outp, outp, rl ? rdata : (const void *)inp, st->count, t->a->datatype,
                    t->a->op);
        if (dst != outp && dst)
            memcpy(dst, outp, nb);
    } else if (rl && (f & PPU_STEP_INPUT)) {
        if (sl && dst == slot && comm->stage_slots && t->s->proto == PPU_PROTO_SIMPLE)
            reduce_into_slot(t, dst, rdata, inp, st->count);
        else
            ppu_reduce2(dst, rdata, inp, st->count, t->a->datatype, t->a->op);
    } else if (rl && dst != rdata) {
        memcpy(dst, rdata, nb);
    } else if (!rl && dst && dst != inp) {
        memcpy(dst, inp, nb);
    }
    if (f & PPU_STEP_FINISH)
        ppu_reduce_finish(dst, st->count, t->a->datatype, t->a->op, comm->nranks);
    if ((f & PPU_STEP_OUTPUT) && dst != outp)
        memcpy(outp, dst ? dst : inp, nb);
    if (sl) {
        if (direct_send) {
            PPU_CHECK(sl->ops->send_ref(sl, dst ? dst : inp, nb));
            *refs = 1;
        } else {
            PPU_CHECK(sl->ops->send_commit(sl, nb));
        }
    }
    if (rl)
        PPU_CHECK(rl->ops->recv_release(rl));
    return PPU_SUCCESS;
}

/* What channel c of t waits for (enum ppu_status_wait) and on whom. */
static int waiting_on(const struct exec_task *t, int c, int *peer)
{
    const struct ppu_comm *comm = t->comm;
    const struct ppu_sched_channel *sc = &t->s->ch[c];
    const struct ppu_step *st = t->idx[c] < sc->nsteps ? &sc->steps[t->idx[c]] : NULL;
    if (st && (st->flags & PPU_STEP_RECV)) {
        *peer = st->recv_peer >= 0 ? st->recv_peer : comm->ch[c].prev;
        return PPU_WAIT_DATA;
    }
    if (st) {
        *peer = st->send_peer >= 0 ? st->send_peer : comm->ch[c].next;
        return PPU_WAIT_SLOT;
    }
    *peer = c < comm->nchannels ? comm->ch[c].next : -1;
    return PPU_WAIT_DRAIN;
}

/* The first channel of t not done, or -1. */
static int first_busy(const struct exec_task *t)
{
    for (int c = 0; c < t->s->nchannels; c++)
        if (t->state[c] != 2)
            return c;
    return -1;
}

/* At a timeout every rank logs what the status board shows of the
 * communicator on this host: the same picture on every rank of it. */
__attribute__((cold, noinline)) static void log_picture(const struct ppu_comm *comm)
{
    if (!comm->status || !ppu_log_on(PPU_LOG_WARN, PPU_SUB_COLL))
        return;
    struct ppu_status_view *v = NULL;
    int n = ppu_status_scan(comm->status->comm_id, 0, &v);
    size_t len = 256 + (size_t)n * 640;
    char *buf = n > 0 ? malloc(len) : NULL;
    if (buf) {
        ppu_status_explain(v, n, ppu_now_ns(), buf, len);
        PPU_WARN(PPU_SUB_COLL, "rank %d timed out; the ranks of its communicator on this host "
                 "(ppu-diag status):\n%s", comm->rank, buf);
    }
    free(buf);
    free(v);
}

__attribute__((cold, noinline)) static ppu_result_t timeout_error(const struct exec_task *t, int c)
{
    struct ppu_comm *comm = t->comm;
    char what[200];
    int peer;
    int kind = waiting_on(t, c, &peer);
    if (kind == PPU_WAIT_DATA)
        snprintf(what, sizeof what, "data from rank %d on link %d->%d", peer, peer, comm->rank);
    else if (kind == PPU_WAIT_SLOT)
        snprintf(what, sizeof what, "a free slot on link %d->%d (rank %d not reading)",
                 comm->rank, peer, peer);
    else
        snprintf(what, sizeof what, "rank %d to finish reading on link %d->%d", peer,
                 comm->rank, peer);
    log_picture(comm);
    const struct ppu_coll_args *a = t->a;
    return ppu_fail(comm, PPU_TIMEOUT,
                    "%s #%llu (count=%zu %s %s) on rank %d timed out after %llu ms on "
                    "channel %d (%s) waiting for %s", ppu_coll_name(a->coll),
                    (unsigned long long)comm->seq, a->count, ppu_datatype_name(a->datatype),
                    ppu_redop_name(a->op), comm->rank,
                    (unsigned long long)(comm->timeout_ns / 1000000), c,
                    ppu_algo_name(t->s->algo), what);
}

/* A rank whose process exited ends the waits on it within a fraction of a
 * second, with its name, not at the timeout. Only the ranks this task is
 * blocked on count: a rank that finished its part may leave while its last
 * messages are still being read. A peer found gone is looked at once more
 * (its writes all happened before it exited) before the wait fails. */
static int blocked_on_gone(struct exec_task *t, int c, int *peer, const char **why)
{
    struct ppu_comm *comm = t->comm;
    const struct ppu_sched_channel *sc = &t->s->ch[c];
    if (t->state[c] == 2 || ppu_sched_waiting(sc, t->state))
        return 0;
    const struct ppu_step *st = t->idx[c] < sc->nsteps ? &sc->steps[t->idx[c]] : NULL;
    struct ppu_link *l;
    if (st && (st->flags & PPU_STEP_RECV))
        l = recv_link(comm, c, st);
    else if (st && (st->flags & PPU_STEP_SEND))
        l = send_link(comm, c, st);
    else if (!st && c < comm->nchannels)
        l = &comm->ch[c].send; /* draining: the next rank still reads */
    else
        return 0;
    if (!l->ops)
        return 0;
    int failed = l->ops->peer_failed && l->ops->peer_failed(l);
    if (!failed && !(l->ops->peer_gone && l->ops->peer_gone(l)))
        return 0;
    *peer = l->params.peer_rank;
    *why = failed ? "has failed this call (see its error)" : "has exited (process gone)";
    if (st && (st->flags & PPU_STEP_RECV)) {
        struct ppu_msg m;
        return l->ops->recv_peek(l, &m) == PPU_IN_PROGRESS;
    }
    void *slot;
    return st ? l->ops->send_reserve(l, &slot) == PPU_IN_PROGRESS
              : l->ops->send_drained(l) == PPU_IN_PROGRESS;
}

static ppu_result_t peers_alive(struct exec_task *t)
{
    struct ppu_comm *comm = t->comm;
    for (int c = 0; c < t->s->nchannels; c++) {
        int p = -1;
        const char *why = "";
        if (!blocked_on_gone(t, c, &p, &why))
            continue;
        /* the first to die may be further away: name every rank gone */
        char gone[256];
        size_t o = 0;
        for (int q = 0; q < comm->nranks && o < sizeof gone - 16; q++) {
            struct ppu_link *l = comm->peer_recv[q];
            int dead = l && l->ops && l->ops->peer_gone ? l->ops->peer_gone(l)
                                                        : ppu_bootstrap_peer_gone(comm->bs, q);
            if (q != comm->rank && dead)
                o += (size_t)snprintf(gone + o, sizeof gone - o, "%s%d", o ? ", " : "", q);
        }
        return ppu_fail(comm, PPU_REMOTE_ERROR,
                        "%s #%llu (count=%zu %s) on rank %d: rank %d %s while this rank waited "
                        "on link %d-%d; the call cannot complete (ranks gone: %s)",
                        ppu_coll_name(t->a->coll), (unsigned long long)comm->seq, t->a->count,
                        ppu_datatype_name(t->a->datatype), comm->rank, p, why, comm->rank, p,
                        o ? gone : "none");
    }
    return PPU_SUCCESS;
}

/* Progress one task: a few steps per channel per visit keeps every
 * channel's links busy. Returns PPU_SUCCESS with *progressed set. */
static ppu_result_t task_progress(struct exec_task *t, int *progressed)
{
    const struct ppu_sched *s = t->s;
    for (int c = 0; c < s->nchannels; c++) {
        if (t->state[c] == 2)
            continue;
        const struct ppu_sched_channel *sc = &s->ch[c];
        if (ppu_sched_waiting(sc, t->state))
            continue;
        int refs = t->state[c] == 1;
        for (int k = 0; k < 4 && t->idx[c] < sc->nsteps; k++) {
            ppu_result_t r = run_step(t, c, &sc->steps[t->idx[c]], &refs);
            if (r == PPU_IN_PROGRESS)
                break;
            if (r != PPU_SUCCESS)
                return r;
            t->idx[c]++;
            *progressed = 1;
        }
        if (refs)
            t->state[c] = 1;
        if (t->idx[c] == sc->nsteps) {
            struct ppu_link *sl = &t->comm->ch[c].send;
            /* Referenced memory must outlive the receiver's reads. */
            if (t->state[c] == 0 || sl->ops->send_drained(sl) == PPU_SUCCESS) {
                t->state[c] = 2;
                t->left--;
                *progressed = 1;
            }
        }
    }
    return PPU_SUCCESS;
}

/* What the comm's send links put on the messages of this task. */
static void set_links(struct ppu_comm *comm, const struct exec_task *t)
{
    int ll = t->s->proto == PPU_PROTO_LL;
    for (int i = 0; i < comm->nlinks; i++) {
        struct ppu_link *l = comm->links[i].link;
        if (!comm->links[i].send)
            continue;
        l->ll = ll;
        l->call[0] = t->call[0];
        l->call[1] = t->call[1];
    }
}

/* Run every task to the end, interleaved. */
static ppu_result_t execute(struct exec_task *tasks, int ntasks)
{
    int left = 0;
    for (int i = 0; i < ntasks; i++) {
        set_links(tasks[i].comm, &tasks[i]);
        left += tasks[i].left > 0;
    }
    struct ppu_waiter w = tasks[0].comm->wait;
    uint64_t deadline = 0;
    int (*help)(void) = NULL;
    uint64_t idle = 0; /* rounds since a step of this call last ran */
    uint64_t idle_since = 0; /* when the rounds without a step began (about) */
    for (int i = 0; i < ntasks && !help; i++)
        if (tasks[i].comm->net && tasks[i].comm->plan.nservers > 1)
            help = tasks[i].comm->net->ops->help; /* the transport decides if it helps */
    while (left > 0) {
        int progressed = 0;
        for (int i = 0; i < ntasks; i++) {
            struct exec_task *t = &tasks[i];
            if (t->left == 0)
                continue;
            PPU_CHECK(task_progress(t, &progressed));
            if (t->left == 0)
                left--;
        }
        if (progressed) {
            ppu_wait_reset(&w);
            deadline = 0;
            idle = 0;
            idle_since = 0;
            for (int i = 0; i < ntasks; i++)
                ppu_status_progress(tasks[i].comm->status);
            continue;
        }
        /* No step could run: move network bytes from here rather than idle
         * (and rather than wait for the progress thread to be woken). Bytes
         * moved that way may be anyone's (help serves every link of the
         * process): they skip the back-off, but only a step of this call
         * counts as its progress, so the deadline, the abort flag and the
         * peers are still checked every 256 rounds. */
        if (help && help())
            ppu_wait_reset(&w);
        else
            ppu_wait_idle(&w);
        if ((++idle & 255) != 0)
            continue;
        uint64_t now = ppu_now_ns();
        if (!idle_since)
            idle_since = now;
        for (int i = 0; i < ntasks; i++) {
            struct exec_task *t = &tasks[i];
            if (t->left == 0)
                continue;
            int busy = first_busy(t), peer = -1;
            if (busy >= 0 && t->comm->status) {
                int kind = waiting_on(t, busy, &peer);
                ppu_status_waiting(t->comm, kind, peer, busy, idle_since, now);
            }
            if (atomic_load_explicit(&t->comm->aborted, memory_order_relaxed))
                return ppu_fail(t->comm, PPU_ABORTED, "%s #%llu on rank %d: communicator aborted",
                                ppu_coll_name(t->a->coll), (unsigned long long)t->comm->seq,
                                t->comm->rank);
            if (ppu_alive_check_due(t->comm, now))
                PPU_CHECK(peers_alive(t));
            if (deadline && now > deadline)
                for (int c = 0; c < t->s->nchannels; c++)
                    if (t->state[c] != 2)
                        return timeout_error(t, c);
        }
        if (!deadline)
            deadline = now + tasks[0].comm->timeout_ns;
    }
    return PPU_SUCCESS;
}

/* One communicator's share of a run: its calls, in order; consecutive
 * sends and receives become one phase (a single p2p schedule). */
struct comm_run {
    struct ppu_comm *comm;
    struct ppu_coll_args **ops;
    int nops, next;   /* ops, and the first not yet started */
    struct ppu_sched owned;
    int owns;
    struct exec_task task;
    /* progress of schedules with few channels: no allocation per call */
    size_t idx_small[PPU_MAX_CHANNELS + 1];
    uint8_t state_small[PPU_MAX_CHANNELS + 1];
};

static void task_clear(struct comm_run *cr)
{
    if (cr->task.idx != cr->idx_small)
        free(cr->task.idx);
    if (cr->task.state != cr->state_small)
        free(cr->task.state);
    cr->task.idx = NULL;
    cr->task.state = NULL;
    free(cr->task.tmp);
    cr->task.tmp = NULL;
    if (cr->owns)
        ppu_sched_free(&cr->owned);
    cr->owns = 0;
}

/* Plan this communicator's next phase into its task. */
static ppu_result_t next_phase(struct comm_run *cr)
{
    task_clear(cr);
    struct ppu_comm *comm = cr->comm;
    struct ppu_coll_args *a = cr->ops[cr->next];
    const struct ppu_sched *s;
    comm->seq++;
    if (!is_p2p(a)) {
        comm->coll_seq++;
        if (comm->nfaults)
            ppu_fault_at_call(comm);
    }
    if (is_p2p(a)) {
        int k = cr->next;
        while (k < cr->nops && is_p2p(cr->ops[k]))
            k++;
        PPU_CHECK(ppu_plan_p2p(comm, cr->ops + cr->next, k - cr->next, &cr->owned));
        cr->owns = 1;
        s = &cr->owned;
        cr->next = k;
    } else {
        ppu_result_t r = ppu_plan_get(comm, a, &cr->owned, &s);
        if (r != PPU_SUCCESS)
            return r;
        cr->owns = s == &cr->owned;
        cr->next++;
    }
    struct exec_task *t = &cr->task;
    if (comm->check_calls)
        ppu_call_stamp(comm, a, t->call);
    else
        t->call[0] = t->call[1] = 0;
    t->comm = comm;
    t->a = a;
    t->s = s;
    comm->cur_call = a;
    t->esize = s->esize;
    t->left = s->nchannels;
    if (s->nchannels <= PPU_MAX_CHANNELS) {
        t->idx = memset(cr->idx_small, 0, sizeof cr->idx_small);
        t->state = memset(cr->state_small, 0, sizeof cr->state_small);
    } else {
        t->idx = calloc((size_t)s->nchannels + 1, sizeof *t->idx);
        t->state = calloc((size_t)s->nchannels + 1, 1);
    }
    ppu_status_call_begin(comm, a, s);
    t->tmp = s->tmp_bytes ? malloc(s->tmp_bytes) : NULL;
    if (!t->idx || !t->state || (s->tmp_bytes && !t->tmp))
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory", comm->rank);
    /* An empty channel is done from the start, unless it runs after
     * another: then it is done when that one is (task_progress), so that a
     * channel after it cannot start early and take messages meant for the
     * channel before (hier: a rank whose shard is empty has nothing on its
     * rail, but its all-gather must still wait for its reduce-scatter). */
    for (int c = 0; c < s->nchannels; c++)
        if (s->ch[c].nsteps == 0 && s->ch[c].after < 0) {
            t->state[c] = 2;
            t->left--;
        }
    return PPU_SUCCESS;
}

/* Links this phase uses for the first time: connected now, with every
 * communicator of the group's phase at once (one thread may drive several
 * ranks). */
static ppu_result_t connect_links(struct exec_task *tasks, int nt)
{
    enum { FEW = 8 };
    struct ppu_comm *c_few[FEW] = {0};
    const struct ppu_sched *s_few[FEW] = {0};
    const struct ppu_coll_args *a_few[FEW] = {0};
    int few = nt <= FEW;
    struct ppu_comm **cv = few ? c_few : malloc(sizeof *cv * (size_t)nt);
    const struct ppu_sched **sv = few ? s_few : malloc(sizeof *sv * (size_t)nt);
    const struct ppu_coll_args **av = few ? a_few : malloc(sizeof *av * (size_t)nt);
    ppu_result_t r;
    if (!cv || !sv || !av) {
        r = ppu_fail(tasks[0].comm, PPU_SYSTEM_ERROR, "out of memory running a group");
    } else {
        for (int i = 0; i < nt; i++) {
            cv[i] = tasks[i].comm;
            sv[i] = tasks[i].s;
            av[i] = tasks[i].a;
        }
        r = ppu_links_ensure(cv, sv, av, nt);
    }
    if (!few) {
        free(cv);
        free(sv);
        free(av);
    }
    return r;
}

static int cmp_comm(const void *x, const void *y)
{
    const struct comm_run *a = x, *b = y;
    return a->comm < b->comm ? -1 : a->comm > b->comm;
}

static ppu_result_t usable(struct ppu_comm *comm)
{
    if (atomic_load(&comm->aborted))
        return ppu_fail(comm, PPU_ABORTED, "rank %d: the communicator was aborted", comm->rank);
    if (atomic_load(&comm->broken))
        return ppu_fail(comm, PPU_INVALID_USAGE,
                        "rank %d: the communicator's links are in an unknown state after an "
                        "earlier collective failed; destroy it and create a new one", comm->rank);
    return PPU_SUCCESS;
}

/* One collective over registered windows: run directly (window.c). */
static int run_window(struct ppu_coll_args *a, ppu_result_t *r)
{
    struct ppu_comm *comm = a->comm;
    ppu_log_set_rank(comm->rank);
    pthread_mutex_lock(&comm->exec_lock);
    *r = usable(comm);
    int done = *r != PPU_SUCCESS || ppu_window_run(comm, a, r);
    pthread_mutex_unlock(&comm->exec_lock);
    return done;
}

ppu_result_t ppu_coll_run_group(struct ppu_coll_args *args, int n)
{
    if (n <= 0)
        return PPU_SUCCESS;
    ppu_result_t wr;
    if (n == 1 && args[0].comm->windows && args[0].coll != PPU_COLL_ALLTOALLV &&
        args[0].coll != PPU_COLL_SEND && args[0].coll != PPU_COLL_RECV && run_window(&args[0], &wr))
        return wr;
    /* one call (the common case): everything on the stack */
    struct comm_run run1;
    struct ppu_coll_args *op1;
    struct exec_task task1;
    int heap = n > 1;
    struct comm_run *runs = heap ? calloc((size_t)n, sizeof *runs) : memset(&run1, 0, sizeof run1);
    struct ppu_coll_args **ops = heap ? calloc((size_t)n, sizeof *ops) : &op1;
    struct exec_task *tasks = heap ? calloc((size_t)n, sizeof *tasks) : &task1;
    if (!runs || !ops || !tasks) {
        if (heap) {
            free(runs);
            free(ops);
            free(tasks);
        }
        return ppu_fail(args[0].comm, PPU_SYSTEM_ERROR, "out of memory running a group");
    }
    /* Bucket the calls by communicator, keeping their order. */
    int nruns = 0;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < nruns && runs[j].comm != args[i].comm)
            j++;
        if (j == nruns)
            runs[nruns++].comm = args[i].comm;
        runs[j].nops++;
    }
    qsort(runs, (size_t)nruns, sizeof *runs, cmp_comm); /* lock order */
    int at = 0;
    for (int j = 0; j < nruns; j++) {
        runs[j].ops = ops + at;
        for (int i = 0; i < n; i++)
            if (args[i].comm == runs[j].comm)
                ops[at++] = &args[i];
    }
    for (int j = 0; j < nruns; j++) {
        ppu_log_set_rank(runs[j].comm->rank);
        pthread_mutex_lock(&runs[j].comm->exec_lock);
    }
    ppu_result_t r = PPU_SUCCESS;
    for (int j = 0; j < nruns && r == PPU_SUCCESS; j++)
        r = usable(runs[j].comm);
    /* Phase k of every communicator runs together. Every rank of a
     * communicator has its calls in the same order, so phase k only ever
     * waits on phase k of the same communicator elsewhere. */
    while (r == PPU_SUCCESS) {
        int nt = 0;
        for (int j = 0; j < nruns && r == PPU_SUCCESS; j++) {
            if (runs[j].next == runs[j].nops)
                continue;
            r = next_phase(&runs[j]);
            if (r == PPU_SUCCESS)
                tasks[nt++] = runs[j].task;
        }
        if (r != PPU_SUCCESS || nt == 0)
            break;
        r = connect_links(tasks, nt);
        if (r != PPU_SUCCESS)
            break;
        r = execute(tasks, nt);
    }
    for (int j = 0; j < nruns; j++) {
        ppu_status_call_end(runs[j].comm, r);
        if (r != PPU_SUCCESS)
            ppu_comm_mark_failed(runs[j].comm);
        task_clear(&runs[j]);
        pthread_mutex_unlock(&runs[j].comm->exec_lock);
    }
    if (heap) {
        free(runs);
        free(ops);
        free(tasks);
    }
    return r;
}

void ppu_comm_mark_failed(struct ppu_comm *comm)
{
    atomic_store(&comm->broken, 1);
    for (int i = 0; i < comm->nlinks; i++) {
        struct ppu_link *l = comm->links[i].link;
        if (l->ops && l->ops->set_failed)
            l->ops->set_failed(l);
    }
}

ppu_result_t ppu_coll_run(struct ppu_coll_args *a)
{
    return ppu_coll_run_group(a, 1);
}
