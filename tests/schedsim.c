/* The schedule simulator (schedsim.h). Links are FIFOs of message copies,
 * found through one hash table keyed by (sender, receiver, ring or peer).
 * A channel that cannot run its next step waits on the link it needs and
 * is woken when that link changes, so a run costs the steps it runs, not
 * sweeps over every rank. Whether the schedules finish does not depend on
 * the order channels run in: a step that can run stays runnable until its
 * own channel runs it, since each link has at most one sending and one
 * receiving channel at a time (checked before the run). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedsim.h"

struct msg {
    uint64_t *data;
    size_t count, cap; /* elements in it, room in data (kept for reuse) */
    int ch;            /* the sender's channel and step, for errors */
    size_t step;
};

struct link {
    uint64_t key;
    int src, dst, ring; /* ring c, or -1: the direct peer link */
    int slots;          /* FIFO depth */
    struct msg *q;      /* a ring buffer of cap entries: n messages from head */
    int head, n, cap;
    int send_ch, recv_ch;     /* the latest, in `after` order, of src's (dst's) channels on it */
    int wait_data, wait_slot; /* channels blocked on it: lists through chan.next, -1 ends */
};

struct chan {
    int rank, c;
    size_t idx; /* next step */
    int done, queued, waiting;
    int ring_sent; /* ran a step that sent on its ring (ring_drain) */
    int next;      /* the next channel on the wait list it is on */
    int rl, sl;    /* the links its last steps received and sent on, -1 */
};

struct rank {
    const struct ppu_sched *s;
    uint64_t *tmp, *scratch;
    size_t tmp_n, scratch_used; /* elements: the temporary, the scratch its steps use */
    int base;                   /* its channels in sim.ch */
};

struct sim {
    const struct schedsim_cfg *cfg;
    uint64_t *const *in, *const *out;
    const size_t *in_n, *out_n;
    int *pos; /* pos[c * nranks + r]: r's place on ring c */
    struct rank *rk;
    struct chan *ch; /* every rank's channels */
    int nch, ndone;
    int *ready, rhead, rn; /* channels to visit, each queued once at most */
    struct link *links;
    int nlinks, links_cap;
    uint32_t *table; /* link index + 1 (0: empty), linear probing */
    size_t table_cap;
    char *err;
    size_t errlen;
};

enum { RAN = 0, BLOCKED = 1, FAILED = -1 };

static int fail(struct sim *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The first problem goes in err; returns FAILED. */
static int fail(struct sim *m, const char *fmt, ...)
{
    if (m->err && m->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->err, m->errlen, fmt, ap);
        va_end(ap);
    }
    return FAILED;
}

static const char *link_str(const struct link *l, char *buf, size_t len)
{
    if (l->ring >= 0)
        snprintf(buf, len, "ring %d link %d->%d", l->ring, l->src, l->dst);
    else if (l->ring < -1)
        snprintf(buf, len, "lane %d peer link %d->%d", -1 - l->ring, l->src, l->dst);
    else
        snprintf(buf, len, "peer link %d->%d", l->src, l->dst);
    return buf;
}

/* rings[c * nranks + i], and r's place on ring c (pos). */
static int *pos_at(const struct sim *m, int c, int r)
{
    return &m->pos[(size_t)c * (size_t)m->cfg->nranks + (size_t)r];
}

static int ring_at(const struct sim *m, int c, int i)
{
    return m->cfg->rings[(size_t)c * (size_t)m->cfg->nranks + (size_t)i];
}

/* --- links -------------------------------------------------------------- */

static size_t hash_at(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static int table_grow(struct sim *m)
{
    size_t cap = m->table_cap ? 2 * m->table_cap : 1024;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (int i = 0; i < m->nlinks; i++) {
        size_t h = hash_at(m->links[i].key, cap);
        while (t[h])
            h = (h + 1) & (cap - 1);
        t[h] = (uint32_t)i + 1;
    }
    free(m->table);
    m->table = t;
    m->table_cap = cap;
    return 0;
}

/* The link src->dst (ring c, or -1 - lane: peer), made on first use; NULL: out of
 * memory. Making one may move the others: the check before the run makes
 * every link, so during the run pointers stay put. */
static struct link *link_get(struct sim *m, int src, int dst, int ring)
{
    uint64_t key = (uint64_t)src << 40 | (uint64_t)dst << 16 | (uint64_t)(ring + PPU_SCHED_LANES);
    size_t h = 0;
    if (m->table_cap)
        for (h = hash_at(key, m->table_cap); m->table[h]; h = (h + 1) & (m->table_cap - 1))
            if (m->links[m->table[h] - 1].key == key)
                return &m->links[m->table[h] - 1];
    if ((size_t)m->nlinks * 2 + 2 > m->table_cap) {
        if (table_grow(m))
            return NULL;
        for (h = hash_at(key, m->table_cap); m->table[h]; h = (h + 1) & (m->table_cap - 1))
            ;
    }
    if (m->nlinks == m->links_cap) {
        int cap = m->links_cap ? 2 * m->links_cap : 256;
        struct link *l = realloc(m->links, (size_t)cap * sizeof *l);
        if (!l)
            return NULL;
        m->links = l;
        m->links_cap = cap;
    }
    struct link *l = &m->links[m->nlinks];
    *l = (struct link){.key = key, .src = src, .dst = dst, .ring = ring,
                       .slots = ring >= 0 ? m->cfg->ring_slots : m->cfg->peer_slots,
                       .send_ch = -1, .recv_ch = -1, .wait_data = -1, .wait_slot = -1};
    m->table[h] = (uint32_t)++m->nlinks;
    return l;
}

/* The entry the next message on l goes in (l->n < l->slots), with room for
 * count elements; NULL: out of memory. Entries and their data are reused. */
static struct msg *link_reserve(struct link *l, size_t count)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 1;
        cap = cap < l->slots ? cap : l->slots;
        struct msg *q = calloc((size_t)cap, sizeof *q);
        if (!q)
            return NULL;
        for (int i = 0; i < l->cap; i++) /* oldest first */
            q[i] = l->q[(l->head + i) % l->cap];
        free(l->q);
        l->q = q;
        l->cap = cap;
        l->head = 0;
    }
    struct msg *e = &l->q[(l->head + l->n) % l->cap];
    if (e->cap < count) {
        uint64_t *d = realloc(e->data, count * sizeof *d);
        if (!d)
            return NULL;
        e->data = d;
        e->cap = count;
    }
    return e;
}

/* --- waiting ------------------------------------------------------------ */

static void push_ready(struct sim *m, int id)
{
    struct chan *k = &m->ch[id];
    if (k->queued || k->done)
        return;
    k->queued = 1;
    m->ready[(m->rhead + m->rn++) % m->nch] = id;
}

static void wait_on(struct sim *m, int *list, struct chan *k)
{
    if (k->waiting) /* already on a list, which wakes it */
        return;
    k->waiting = 1;
    k->next = *list;
    *list = (int)(k - m->ch);
}

static void wake(struct sim *m, int *list)
{
    while (*list >= 0) {
        struct chan *k = &m->ch[*list];
        *list = k->next;
        k->waiting = 0;
        push_ready(m, (int)(k - m->ch));
    }
}

/* --- what a step uses --------------------------------------------------- */

/* The rank a step of rank r's channel c sends to (receives from): peer,
 * or the next (previous) rank on ring c when peer < 0. FAILED if none. */
static int step_peer(struct sim *m, int r, int c, size_t i, int peer, int send)
{
    const struct schedsim_cfg *g = m->cfg;
    const char *what = send ? "send" : "receive";
    if (peer >= 0) {
        if (peer >= g->nranks)
            return fail(m, "rank %d channel %d step %zu: %s peer %d is out of range (%d ranks)", r,
                        c, i, what, peer, g->nranks);
        if (peer == r)
            return fail(m, "rank %d channel %d step %zu: %s peer %d is the rank itself", r, c, i,
                        what, peer);
        return peer;
    }
    if (c >= g->nrings)
        return fail(m, "rank %d channel %d step %zu: a ring %s on channel %d, but there are only "
                    "%d rings", r, c, i, what, c, g->nrings);
    int n = g->nranks, p = *pos_at(m, c, r);
    int q = ring_at(m, c, send ? (p + 1) % n : (p + n - 1) % n);
    if (q == r)
        return fail(m, "rank %d channel %d step %zu: a ring %s to itself (ring %d of one rank)", r,
                    c, i, what, c);
    return q;
}

/* The link a step sends on (send) or receives from; NULL after an error. */
static struct link *step_link(struct sim *m, int r, int c, size_t i, const struct ppu_step *st,
                              int send)
{
    int peer = send ? st->send_peer : st->recv_peer;
    int q = step_peer(m, r, c, i, peer, send);
    if (q < 0)
        return NULL;
    int ring = peer >= 0 ? -1 - ppu_step_lane(st) : c;
    struct link *l = send ? link_get(m, r, q, ring) : link_get(m, q, r, ring);
    if (!l)
        fail(m, "schedsim: out of memory");
    return l;
}

/* step_link through the channel's last links: ring steps always use the
 * same, peer steps often. */
static struct link *chan_link(struct sim *m, struct chan *k, const struct ppu_step *st, int send)
{
    int peer = send ? st->send_peer : st->recv_peer, *last = send ? &k->sl : &k->rl;
    if (*last >= 0) {
        struct link *l = &m->links[*last];
        if (peer < 0 ? l->ring >= 0
                     : l->ring == -1 - ppu_step_lane(st) && (send ? l->dst : l->src) == peer)
            return l;
    }
    struct link *l = step_link(m, k->rank, k->c, k->idx, st, send);
    if (l)
        *last = (int)(l - m->links);
    return l;
}

struct buf {
    uint64_t *p;
    size_t n; /* elements */
    const char *name;
};

/* The buffers run_step calls "output" and "input" for a step with flags f
 * of rank r's channel ch. */
static struct buf buf_out(const struct sim *m, int r, const struct ppu_sched_channel *ch,
                          uint32_t f)
{
    const struct rank *k = &m->rk[r];
    if (f & PPU_STEP_TMP_OUT)
        return (struct buf){k->scratch, m->cfg->scratch_elems, "scratch"};
    if (ch->out_tmp)
        return (struct buf){k->tmp, k->tmp_n, "temporary"};
    return (struct buf){m->out[r], m->out_n[r], "output"};
}

static struct buf buf_in(const struct sim *m, int r, const struct ppu_sched_channel *ch,
                         uint32_t f)
{
    const struct rank *k = &m->rk[r];
    if (f & PPU_STEP_TMP_IN)
        return (struct buf){k->scratch, m->cfg->scratch_elems, "scratch"};
    if (f & PPU_STEP_IN_OUT)
        return buf_out(m, r, ch, 0);
    if (ch->in_tmp)
        return (struct buf){k->tmp, k->tmp_n, "temporary"};
    return (struct buf){m->in[r], m->in_n[r], "input"};
}

/* What run_step touches (over links that copy): the input unless the
 * message takes its place; the output when the result lands there. */
static int reads_input(uint32_t f)
{
    return !(f & PPU_STEP_RECV) || ((f & PPU_STEP_INPUT) && !(f & PPU_STEP_ACCUM));
}

static int uses_output(uint32_t f)
{
    return (f & (PPU_STEP_ACCUM | PPU_STEP_OUTPUT)) || !(f & PPU_STEP_SEND);
}

/* --- the check before the run ------------------------------------------- */

/* Does channel a of s run after channel b (b reached from a through
 * `after`s)? depth bounds the walk (check_rank refuses loops to self
 * only). */
static int runs_after_depth(const struct ppu_sched *s, int a, int b, int depth)
{
    const struct ppu_sched_channel *ch = &s->ch[a];
    for (int i = 0; ch->after >= 0 && i < ch->after_n && depth > 0; i++)
        if (ch->after + i == b || runs_after_depth(s, ch->after + i, b, depth - 1))
            return 1;
    return 0;
}

static int runs_after(const struct ppu_sched *s, int a, int b)
{
    return runs_after_depth(s, a, b, s->nchannels);
}

/* Is channel a of rank rk waiting for one of its `after` channels? */
static int after_pending(const struct sim *m, const struct rank *rk, int a)
{
    const struct ppu_sched_channel *sc = &rk->s->ch[a];
    for (int i = 0; sc->after >= 0 && i < sc->after_n; i++)
        if (!m->ch[rk->base + sc->after + i].done)
            return sc->after + i;
    return -1;
}

/* Channel c uses a link whose latest user so far is *user: fine when the
 * two run one after the other; *user becomes the later. 0, or -1 if not. */
static int link_user(const struct ppu_sched *s, int *user, int c)
{
    if (*user < 0 || runs_after(s, c, *user))
        *user = c;
    else if (*user != c && !runs_after(s, *user, c))
        return -1;
    return 0;
}

static int check_buf(struct sim *m, int r, int c, size_t i, struct buf b, size_t off,
                     size_t count, const char *verb)
{
    if (off <= b.n && count <= b.n - off)
        return 0;
    return fail(m, "rank %d channel %d step %zu %s %zu elements at %zu of its %s, which has %zu",
                r, c, i, verb, count, off, b.name, b.n);
}

static int check_step(struct sim *m, int r, int c, size_t i)
{
    struct rank *k = &m->rk[r];
    const struct ppu_sched_channel *ch = &k->s->ch[c];
    const struct ppu_step *st = &ch->steps[i];
    uint32_t f = st->flags;
    char name[64];
    for (int send = 0; send < 2; send++) {
        if (!(f & (send ? PPU_STEP_SEND : PPU_STEP_RECV)))
            continue;
        struct link *l = step_link(m, r, c, i, st, send);
        if (!l)
            return FAILED;
        if (l->slots < 1)
            return fail(m, "schedsim: %s_slots is %d: a link needs a slot at least",
                        l->ring >= 0 ? "ring" : "peer", l->slots);
        int *user = send ? &l->send_ch : &l->recv_ch;
        int before = *user;
        if (link_user(k->s, user, c))
            return fail(m, "rank %d: channels %d and %d both %s on %s and neither runs after the "
                        "other: their messages would interleave in any order", r, before, c,
                        send ? "send" : "receive", link_str(l, name, sizeof name));
    }
    if (reads_input(f)) {
        if (check_buf(m, r, c, i, buf_in(m, r, ch, f), st->in_off, st->count, "reads"))
            return FAILED;
        if ((f & PPU_STEP_TMP_IN) && st->in_off + st->count > k->scratch_used)
            k->scratch_used = st->in_off + st->count;
    }
    if (uses_output(f)) {
        if (check_buf(m, r, c, i, buf_out(m, r, ch, f), st->out_off, st->count, "writes"))
            return FAILED;
        if ((f & PPU_STEP_TMP_OUT) && st->out_off + st->count > k->scratch_used)
            k->scratch_used = st->out_off + st->count;
    }
    return 0;
}

static int check_rank(struct sim *m, int r)
{
    const struct ppu_sched *s = m->rk[r].s;
    for (int c = 0; c < s->nchannels; c++) {
        const struct ppu_sched_channel *ch = &s->ch[c];
        if (ch->in || ch->out)
            return fail(m, "rank %d channel %d has buffers of its own (a send/receive schedule): "
                        "not simulated", r, c);
        int n_after = ch->after >= 0 ? ch->after_n : 0;
        if (ch->after < -1 || (ch->after >= 0 && ch->after_n < 1) ||
            ch->after + n_after > s->nchannels || (c >= ch->after && c < ch->after + n_after))
            return fail(m, "rank %d channel %d runs after channels %d..%d, which are not others "
                        "of its %d channels", r, c, ch->after, ch->after + n_after - 1,
                        s->nchannels);
    }
    for (int c = 0; c < s->nchannels; c++)
        for (size_t i = 0; i < s->ch[c].nsteps; i++)
            if (check_step(m, r, c, i))
                return FAILED;
    return 0;
}

static int check_cfg(struct sim *m, const struct ppu_sched *const *sched)
{
    const struct schedsim_cfg *g = m->cfg;
    int n = g->nranks;
    if (n < 1 || n > 1 << 23 || g->nrings < 0 || g->nrings > 0xfffe ||
        (g->nrings && !g->rings) || !sched || !m->in || !m->out || !m->in_n || !m->out_n)
        return fail(m, "schedsim: bad arguments (%d ranks, %d rings)", n, g->nrings);
    for (size_t i = 0; i < (size_t)g->nrings * (size_t)n; i++)
        m->pos[i] = -1;
    for (int c = 0; c < g->nrings; c++)
        for (int i = 0; i < n; i++) {
            int q = ring_at(m, c, i);
            if (q < 0 || q >= n)
                return fail(m, "ring %d: position %d holds rank %d, out of range", c, i, q);
            if (*pos_at(m, c, q) >= 0)
                return fail(m, "ring %d holds rank %d twice", c, q);
            *pos_at(m, c, q) = i;
        }
    for (int r = 0; r < n; r++) {
        const struct ppu_sched *s = sched[r];
        if (!s || s->nchannels < 0 || (s->nchannels && !s->ch))
            return fail(m, "rank %d has no schedule", r);
        if (s->esize != sizeof(uint64_t))
            return fail(m, "rank %d: the schedule counts %zu-byte elements; the simulator runs "
                        "8-byte ones", r, s->esize);
        m->rk[r].s = s;
        m->rk[r].tmp_n = s->tmp_bytes / sizeof(uint64_t);
        m->rk[r].base = m->nch;
        m->nch += s->nchannels;
    }
    return 0;
}

/* --- the run ------------------------------------------------------------ */

static void copy(uint64_t *d, const uint64_t *a, size_t n)
{
    if (n)
        memmove(d, a, n * sizeof *d);
}

static void add(uint64_t *d, const uint64_t *a, const uint64_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) /* as ppu_reduce2: forward, element by element */
        d[i] = a[i] + b[i];
}

static uint64_t *at(uint64_t *p, size_t off)
{
    return p ? p + off : NULL;
}

/* run_step of src/exec.c over links that copy: RAN, BLOCKED (k now waits
 * on the link), FAILED. */
static int run_step(struct sim *m, struct chan *k, const struct ppu_step *st)
{
    int r = k->rank, c = k->c;
    const struct ppu_sched_channel *ch = &m->rk[r].s->ch[c];
    uint32_t f = st->flags;
    size_t n = st->count;
    uint64_t *inp = at(buf_in(m, r, ch, f).p, st->in_off);
    uint64_t *outp = at(buf_out(m, r, ch, f).p, st->out_off);
    struct link *rl = (f & PPU_STEP_RECV) ? chan_link(m, k, st, 0) : NULL;
    struct link *sl = (f & PPU_STEP_SEND) ? chan_link(m, k, st, 1) : NULL;
    struct msg *msg = NULL, *slot = NULL;
    char name[64];

    if (((f & PPU_STEP_RECV) && !rl) || ((f & PPU_STEP_SEND) && !sl))
        return FAILED;
    if (rl) {
        if (rl->n == 0) {
            wait_on(m, &rl->wait_data, k);
            return BLOCKED;
        }
        msg = &rl->q[rl->head];
        if (msg->count != n)
            return fail(m, "rank %d channel %d step %zu expects a message of %zu elements on %s, "
                        "but rank %d sent %zu (its channel %d step %zu)", r, c, k->idx, n,
                        link_str(rl, name, sizeof name), rl->src, msg->count, msg->ch, msg->step);
    }
    if (sl) {
        if (sl->n == sl->slots) {
            wait_on(m, &sl->wait_slot, k);
            return BLOCKED;
        }
        if (!(slot = link_reserve(sl, n)))
            return fail(m, "schedsim: out of memory");
    }
    /* The result goes to the send slot, else to the output. */
    uint64_t *dst = slot ? slot->data : outp;
    const uint64_t *rdata = msg ? msg->data : NULL;
    if (f & PPU_STEP_ACCUM) {
        add(outp, outp, rl ? rdata : inp, n);
        if (dst != outp)
            copy(dst, outp, n);
    } else if (rl && (f & PPU_STEP_INPUT)) {
        add(dst, rdata, inp, n);
    } else if (rl) {
        copy(dst, rdata, n);
    } else if (dst != inp) {
        copy(dst, inp, n);
    }
    if ((f & PPU_STEP_OUTPUT) && dst != outp)
        copy(outp, dst, n);
    if (sl) {
        slot->count = n;
        slot->ch = c;
        slot->step = k->idx;
        sl->n++;
        k->ring_sent |= sl->ring >= 0;
        wake(m, &sl->wait_data);
    }
    if (rl) {
        rl->head = (rl->head + 1) % rl->cap;
        rl->n--;
        wake(m, &rl->wait_slot);
    }
    return RAN;
}

/* The ring link a channel sends on (ring_drain). */
static struct link *ring_send_link(struct sim *m, const struct chan *k)
{
    int p = *pos_at(m, k->c, k->rank);
    return link_get(m, k->rank, ring_at(m, k->c, (p + 1) % m->cfg->nranks), k->c);
}

/* Run a channel's steps until one cannot run; done when all have (and,
 * with ring_drain, its ring messages have all been read). */
static int visit(struct sim *m, struct chan *k)
{
    struct rank *rk = &m->rk[k->rank];
    const struct ppu_sched_channel *sc = &rk->s->ch[k->c];
    if (k->done || after_pending(m, rk, k->c) >= 0)
        return 0; /* woken when its `after` channels finish */
    while (k->idx < sc->nsteps) {
        int r = run_step(m, k, &sc->steps[k->idx]);
        if (r != RAN)
            return r == BLOCKED ? 0 : FAILED;
        k->idx++;
    }
    if (m->cfg->ring_drain && k->ring_sent) {
        struct link *l = ring_send_link(m, k);
        if (l->n) {
            wait_on(m, &l->wait_slot, k);
            return 0;
        }
    }
    k->done = 1;
    m->ndone++;
    for (int c = 0; c < rk->s->nchannels; c++)
        if (rk->s->ch[c].after >= 0 && k->c >= rk->s->ch[c].after &&
            k->c < rk->s->ch[c].after + rk->s->ch[c].after_n)
            push_ready(m, rk->base + c);
    return 0;
}

/* What an unfinished channel waits on, into buf; 1 if on a link. */
static int waits_on(struct sim *m, const struct chan *k, char *buf, size_t len)
{
    const struct rank *rk = &m->rk[k->rank];
    const struct ppu_sched_channel *sc = &rk->s->ch[k->c];
    char name[64];
    int pending = after_pending(m, rk, k->c);
    if (pending >= 0) {
        snprintf(buf, len, "rank %d channel %d waits for its channel %d to finish", k->rank, k->c,
                 pending);
        return 0;
    }
    if (k->idx == sc->nsteps) {
        struct link *l = ring_send_link(m, k);
        snprintf(buf, len, "rank %d channel %d (all steps run) waits for rank %d to read %d "
                 "message(s) on %s", k->rank, k->c, l->dst, l->n, link_str(l, name, sizeof name));
        return 1;
    }
    const struct ppu_step *st = &sc->steps[k->idx];
    struct link *rl = (st->flags & PPU_STEP_RECV) ? step_link(m, k->rank, k->c, k->idx, st, 0)
                                                  : NULL;
    if (rl && rl->n == 0) {
        snprintf(buf, len, "rank %d channel %d step %zu waits for data on %s", k->rank, k->c,
                 k->idx, link_str(rl, name, sizeof name));
    } else if (!(st->flags & PPU_STEP_SEND)) { /* not reached */
        snprintf(buf, len, "rank %d channel %d step %zu could run (a simulator bug)", k->rank,
                 k->c, k->idx);
    } else {
        struct link *sl = step_link(m, k->rank, k->c, k->idx, st, 1);
        snprintf(buf, len, "rank %d channel %d step %zu waits for a free slot on %s (%d "
                 "message(s) unread)", k->rank, k->c, k->idx, link_str(sl, name, sizeof name),
                 sl->n);
    }
    return 1;
}

/* Name a few blocked channels, those waiting on links first. */
static int deadlock(struct sim *m)
{
    char msg[1024], what[200];
    int o = snprintf(msg, sizeof msg, "deadlock: no step can run, %d of %d channels unfinished",
                     m->nch - m->ndone, m->nch);
    int shown = 0, blocked = m->nch - m->ndone;
    for (int pass = 1; pass >= 0 && shown < 4; pass--)
        for (int id = 0; id < m->nch && shown < 4; id++) {
            if (m->ch[id].done || waits_on(m, &m->ch[id], what, sizeof what) != pass)
                continue;
            if (o < (int)sizeof msg)
                o += snprintf(msg + o, sizeof msg - (size_t)o, "%s %s", shown ? ";" : ":", what);
            shown++;
        }
    if (blocked > shown && o < (int)sizeof msg)
        snprintf(msg + o, sizeof msg - (size_t)o, " (and %d more)", blocked - shown);
    return fail(m, "%s", msg);
}

static int leftovers(struct sim *m)
{
    char name[64];
    for (int i = 0; i < m->nlinks; i++) {
        const struct link *l = &m->links[i];
        if (l->n == 0)
            continue;
        const struct msg *e = &l->q[l->head];
        return fail(m, "rank %d never read %d message(s) on %s (the first: %zu elements from its "
                    "channel %d step %zu)", l->dst, l->n, link_str(l, name, sizeof name),
                    e->count, e->ch, e->step);
    }
    return 0;
}

static uint64_t *poisoned(size_t n)
{
    uint64_t *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; p && i < n; i++)
        p[i] = SCHEDSIM_POISON;
    return p;
}

static int run(struct sim *m, const struct ppu_sched *const *sched)
{
    const struct schedsim_cfg *g = m->cfg;
    if (check_cfg(m, sched))
        return FAILED;
    for (int r = 0; r < g->nranks; r++)
        if (check_rank(m, r))
            return FAILED;
    m->ch = calloc((size_t)m->nch + 1, sizeof *m->ch);
    m->ready = calloc((size_t)m->nch + 1, sizeof *m->ready);
    if (!m->ch || !m->ready)
        return fail(m, "schedsim: out of memory");
    for (int r = 0; r < g->nranks; r++) {
        struct rank *k = &m->rk[r];
        if ((k->tmp_n && !(k->tmp = poisoned(k->tmp_n))) ||
            (k->scratch_used && !(k->scratch = poisoned(k->scratch_used))))
            return fail(m, "schedsim: out of memory");
        for (int c = 0; c < k->s->nchannels; c++)
            m->ch[k->base + c] = (struct chan){.rank = r, .c = c, .next = -1, .rl = -1, .sl = -1};
    }
    for (int id = 0; id < m->nch; id++)
        push_ready(m, id);
    while (m->rn) {
        int id = m->ready[m->rhead];
        m->rhead = (m->rhead + 1) % m->nch;
        m->rn--;
        m->ch[id].queued = 0;
        if (visit(m, &m->ch[id]))
            return FAILED;
    }
    return m->ndone < m->nch ? deadlock(m) : leftovers(m);
}

int schedsim_run(const struct schedsim_cfg *cfg, const struct ppu_sched *const *sched,
                 uint64_t *const *in, const size_t *in_elems, uint64_t *const *out,
                 const size_t *out_elems, char *err, size_t errlen)
{
    struct sim m = {.cfg = cfg, .in = in, .out = out, .in_n = in_elems, .out_n = out_elems,
                    .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    int n = cfg && cfg->nranks > 0 ? cfg->nranks : 0;
    int nr = cfg && cfg->nrings > 0 ? cfg->nrings : 0;
    m.rk = calloc((size_t)n + 1, sizeof *m.rk);
    m.pos = calloc((size_t)nr * (size_t)n + 1, sizeof *m.pos);
    int r = !cfg ? fail(&m, "schedsim: no configuration")
            : m.rk && m.pos ? run(&m, sched) : fail(&m, "schedsim: out of memory");
    for (int i = 0; i < m.nlinks; i++) {
        for (int j = 0; j < m.links[i].cap; j++)
            free(m.links[i].q[j].data);
        free(m.links[i].q);
    }
    for (int i = 0; m.rk && i < n; i++) {
        free(m.rk[i].tmp);
        free(m.rk[i].scratch);
    }
    free(m.links);
    free(m.table);
    free(m.ch);
    free(m.ready);
    free(m.rk);
    free(m.pos);
    return r ? 1 : 0;
}
