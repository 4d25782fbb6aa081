/* Ring schedules: reduce-scatter, all-gather, all-reduce (one then the
 * other), all-to-all forwarded hop by hop, and the pipelined chains of
 * broadcast and reduce. Each channel has its own link-disjoint ring and
 * its own share of every block.
 *
 * Ring reduce-scatter/all-gather at ring position p, where blk(d) is the
 * block owned by the rank d places further round the ring:
 *   send blk(-1) (input)
 *   n-2 times: recv blk(-s-2), add input, send it on
 *   recv blk(0), add input, finish, write output  [all-reduce: and send]
 *   all-gather: n-2 times: recv blk(-t-1), write output, send it on
 *               recv blk(1), write output
 * Every block is cut into the same number of chunks so that sender and
 * receiver agree on every message; empty chunks are skipped on both sides. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

void ppu_sched_part(size_t start, size_t len, int n, int b, size_t *ps, size_t *pl)
{
    size_t base = len / (size_t)n, rem = len % (size_t)n, ub = (size_t)b;
    *ps = start + ub * base + (ub < rem ? ub : rem);
    *pl = base + (ub < rem ? 1 : 0);
}

/* The kinds of step there are: every flag combination the executor's
 * run_step implements, which is every one the builders emit (collected
 * from every builder on every shape ppu-sim and the tests run, then
 * named). A step outside this table is a builder's bug: ppu_sched_add
 * asserts it. */
#define R PPU_STEP_RECV
#define I PPU_STEP_INPUT
#define O PPU_STEP_OUTPUT
#define S PPU_STEP_SEND
#define F PPU_STEP_FINISH
static const struct ppu_step_kind kinds[] = {
    {R | O, "receive into the output"},
    {I | O, "copy the input to the output"},
    {R | I | O, "receive, reduce with the input, write the output"},
    {R | S, "forward a message as it came"},
    {I | S, "send the input"},
    {R | I | S, "receive, reduce with the input, send the result on"},
    {R | O | S, "receive into the output and forward it"},
    {I | O | S, "copy the input to the output and send it"},
    {R | I | O | S, "receive, reduce with the input, write the output and send it"},
    {I | O | F, "finish (AVG: divide) the input into the output"},
    {R | I | O | F, "receive, reduce with the input, finish, write the output"},
    {R | I | O | S | F, "receive, reduce, finish, write the output and send it"},
    {R | O | PPU_STEP_ACCUM, "output op= the message"},
    {I | O | PPU_STEP_TMP_IN, "copy scratch to the output"},
    {I | O | F | PPU_STEP_TMP_IN, "finish scratch into the output"},
    {R | O | PPU_STEP_TMP_OUT, "receive into scratch"},
    {I | O | PPU_STEP_TMP_OUT, "copy the input to scratch"},
    {R | O | PPU_STEP_ACCUM | PPU_STEP_TMP_OUT, "scratch op= the message"},
    {I | O | PPU_STEP_ACCUM | PPU_STEP_TMP_OUT, "scratch op= the input"},
    {R | I | O | PPU_STEP_IN_OUT, "receive, reduce with the output, write the output"},
    {I | S | PPU_STEP_IN_OUT, "send from the output"},
    {I | O | PPU_STEP_IN_OUT, "copy within the output"},
    {I | O | F | PPU_STEP_IN_OUT, "finish the output in place"},
    {R | I | S | PPU_STEP_REF_OUT, "receive, reduce with the input, send by reference from "
                                   "the output (scratch until written)"},
};
#undef R
#undef I
#undef O
#undef S
#undef F

const struct ppu_step_kind *ppu_step_kinds(int *n)
{
    *n = (int)(sizeof kinds / sizeof kinds[0]);
    return kinds;
}

const char *ppu_step_kind(uint32_t flags)
{
    flags &= ~(uint32_t)PPU_STEP_LANE1; /* where, not what */
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].flags == flags)
            return kinds[i].what;
    return NULL;
}

ppu_result_t ppu_sched_add(struct ppu_sched_channel *c, uint32_t flags, int send_peer,
                           int recv_peer, size_t in_off, size_t out_off, size_t count)
{
    assert(ppu_step_kind(flags) && "a builder made a step of a kind run_step does not know");
    assert((send_peer < 0 || (flags & PPU_STEP_SEND)) && (recv_peer < 0 || (flags & PPU_STEP_RECV)));
    if (count == 0)
        return PPU_SUCCESS;
    if (c->nsteps == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        struct ppu_step *st = realloc(c->steps, cap * sizeof *st);
        if (!st)
            return PPU_SYSTEM_ERROR;
        c->steps = st;
        c->cap = cap;
    }
    c->steps[c->nsteps++] =
        (struct ppu_step){flags, (int32_t)send_peer, (int32_t)recv_peer, in_off, out_off, count};
    return PPU_SUCCESS;
}

void ppu_sched_free(struct ppu_sched *s)
{
    for (int c = 0; s->ch && c < s->nchannels; c++)
        free(s->ch[c].steps);
    free(s->ch);
    s->ch = NULL;
    s->nchannels = 0;
}

ppu_result_t ppu_sched_init(struct ppu_sched *s, int nch, int algo)
{
    memset(s, 0, sizeof *s);
    s->ch = calloc((size_t)(nch > 0 ? nch : 1), sizeof *s->ch);
    if (!s->ch)
        return PPU_SYSTEM_ERROR;
    for (int c = 0; c < nch; c++) {
        s->ch[c].after = -1;
        s->ch[c].after_n = 1;
    }
    s->nchannels = nch;
    s->algo = algo;
    return PPU_SUCCESS;
}

size_t ppu_sched_nsteps(const struct ppu_sched *s)
{
    size_t n = 0;
    for (int c = 0; c < s->nchannels; c++)
        n += s->ch[c].nsteps;
    return n;
}

/* Where each member's block of one ring channel lives, by ring position:
 * arrays for the hierarchical sub-rings; on a flat ring the blocks follow
 * from the rank, so a build allocates nothing per rank and, with a sparse
 * all-reduce (fewer elements than ranks), visits only the blocks that
 * hold something: O(its steps), not O(ranks). */
enum blk_kind {
    BLK_ARRAYS,
    /* all-reduce: [cs, cs + cl) split evenly over the ranks, rank q's
     * block from floor(q cl / n): the longer blocks (and, with fewer
     * elements than ranks, the blocks that hold one) spread evenly round
     * the ranks, not heaped on the first ones, so every server's ranks
     * hold alike wherever the count allows, and ppu-sim can fold a sparse
     * ring by servers */
    BLK_SPLIT,
    BLK_RANK_IN,  /* reduce-scatter: the input's block of rank q */
    BLK_RANK_OUT, /* all-gather: the output's block of rank q */
};

struct ring_blocks {
    enum blk_kind kind;
    size_t *in, *out, *len; /* BLK_ARRAYS */
    const int *ring;        /* the others: the rank at each position */
    size_t cs, cl, count, base, rem;
    int n; /* BLK_SPLIT: the ranks */
    /* BLK_SPLIT with base 0: the positions whose block is not empty, in
     * increasing order (nnz of them), or NULL: test every position */
    int *nz, nnz;
};

/* BLK_SPLIT: where rank q's block starts, from cs: floor(q cl / n), in
 * parts that cannot overflow (q base + floor(q rem / n)) */
static size_t split_at(const struct ring_blocks *b, size_t q)
{
    return q * b->base + q * b->rem / (size_t)b->n;
}

static size_t blk_len(const struct ring_blocks *b, int i)
{
    switch (b->kind) {
    case BLK_ARRAYS:
        return b->len[i];
    case BLK_SPLIT:
        return split_at(b, (size_t)b->ring[i] + 1) - split_at(b, (size_t)b->ring[i]);
    default:
        return b->cl;
    }
}

static size_t blk_in(const struct ring_blocks *b, int i)
{
    size_t q;
    switch (b->kind) {
    case BLK_ARRAYS:
        return b->in[i];
    case BLK_SPLIT:
        q = (size_t)b->ring[i];
        return b->cs + split_at(b, q);
    case BLK_RANK_IN:
        return (size_t)b->ring[i] * b->count + b->cs;
    default:
        return b->cs;
    }
}

static size_t blk_out(const struct ring_blocks *b, int i)
{
    switch (b->kind) {
    case BLK_ARRAYS:
        return b->out[i];
    case BLK_SPLIT:
        return blk_in(b, i);
    case BLK_RANK_IN:
        return b->cs;
    default:
        return (size_t)b->ring[i] * b->count + b->cs;
    }
}

static int blocks_alloc(struct ring_blocks *b, int n)
{
    memset(b, 0, sizeof *b);
    b->kind = BLK_ARRAYS;
    b->in = calloc(3 * (size_t)n, sizeof *b->in);
    b->out = b->in ? b->in + n : NULL;
    b->len = b->in ? b->in + 2 * (size_t)n : NULL;
    return b->in != NULL;
}

static void blocks_free(struct ring_blocks *b)
{
    free(b->in);
    b->in = b->out = b->len = NULL;
}

enum ring_mode { RING_RS, RING_AG, RING_AR };

#define ADD(...)                                                  \
    do {                                                          \
        if (ppu_sched_add(__VA_ARGS__) != PPU_SUCCESS)            \
            return PPU_SYSTEM_ERROR;                              \
    } while (0)

/* The positions d0, d0 - 1, ... (k of them, round the ring of n) whose
 * block holds more than lo elements, in that order: walk_next gives the
 * next, or -1. With the sparse list only its members are looked at. */
struct ring_walk {
    const struct ring_blocks *b;
    int n, d0, k, d, left;
    size_t lo;
};

static struct ring_walk walk_from(const struct ring_blocks *b, int n, int d0, int k, size_t lo)
{
    struct ring_walk w = {b, n, d0, k, d0, k, lo};
    if (b->nz) { /* start at the last member at or below d0, going down */
        int hi = b->nnz;
        for (int l = 0; l < hi;) {
            int mid = (l + hi) / 2;
            if (b->nz[mid] <= d0)
                l = mid + 1;
            else
                hi = mid;
        }
        w.d = hi ? hi - 1 : b->nnz - 1; /* an index into nz */
        w.left = b->nnz;
    }
    return w;
}

static int walk_next(struct ring_walk *w)
{
    const struct ring_blocks *b = w->b;
    while (w->left > 0) {
        w->left--;
        int d;
        if (b->nz) {
            d = b->nz[w->d];
            w->d = w->d ? w->d - 1 : b->nnz - 1;
            if ((w->d0 - d + w->n) % w->n >= w->k)
                break; /* past the k positions */
        } else {
            d = w->d;
            w->d = d ? d - 1 : w->n - 1;
        }
        if (w->lo < blk_len(b, d))
            return d;
    }
    w->left = 0;
    return -1;
}

/* Step t of chunk `it` of a ring channel (0 .. 2n-2: the reduce-scatter's
 * hops 0 .. n-1, the all-gather's n-1 .. 2n-2; a reduce-scatter stops at
 * n-1, an all-gather starts there), n > 1. The one place a ring step is
 * made: ring_channel lists them chunk after chunk or skewed. A block with
 * nothing at this chunk adds no step. */
static ppu_result_t ring_step(struct ppu_sched_channel *ch, enum ring_mode mode, int n, int p,
                              const struct ring_blocks *b, size_t chunk, uint32_t fin, size_t it,
                              int t)
{
    const uint32_t R = PPU_STEP_RECV, I = PPU_STEP_INPUT, O = PPU_STEP_OUTPUT, S = PPU_STEP_SEND;
    size_t lo = it * chunk;
    int back = ((p - 2) % n + n) % n, q;
#define BLK(d) (((p + (d)) % n + n) % n)
#define CNT(q) (lo < blk_len(b, q) ? (blk_len(b, q) - lo < chunk ? blk_len(b, q) - lo : chunk) : 0)
    if (t == n - 1 && mode == RING_AG) {
        q = BLK(0);
        ADD(ch, I | O | S, -1, -1, blk_in(b, q) + lo, blk_out(b, q) + lo, CNT(q));
    } else if (t == 0) {
        q = BLK(-1);
        ADD(ch, I | S, -1, -1, blk_in(b, q) + lo, 0, CNT(q));
    } else if (t < n - 1) {
        uint32_t ro = mode == RING_AR ? PPU_STEP_REF_OUT : 0;
        q = ((back - (t - 1)) % n + n) % n;
        ADD(ch, R | I | S | ro, -1, -1, blk_in(b, q) + lo, ro ? blk_out(b, q) + lo : 0, CNT(q));
    } else if (t == n - 1) {
        q = BLK(0);
        ADD(ch, R | I | O | fin | (mode == RING_AR ? S : 0), -1, -1, blk_in(b, q) + lo,
            blk_out(b, q) + lo, CNT(q));
    } else if (t < 2 * n - 2) {
        q = ((back + 1 - (t - n)) % n + n) % n;
        ADD(ch, R | O | S, -1, -1, 0, blk_out(b, q) + lo, CNT(q));
    } else {
        q = BLK(1);
        ADD(ch, R | O, -1, -1, 0, blk_out(b, q) + lo, CNT(q));
    }
#undef BLK
#undef CNT
    return PPU_SUCCESS;
}

/* ring_step's step t of chunk `it` into ch, or out of memory */
#define STEP(it, t)                                                                \
    do {                                                                           \
        if (ring_step(ch, mode, n, p, b, chunk, fin, (it), (t)) != PPU_SUCCESS)    \
            return PPU_SYSTEM_ERROR;                                               \
    } while (0)

static ppu_result_t ring_channel(struct ppu_sched_channel *ch, enum ring_mode mode, int n, int p,
                                 const struct ring_blocks *b, size_t chunk, uint32_t fin, int W)
{
    size_t biggest = 0;
    if (b->kind == BLK_ARRAYS) {
        for (int i = 0; i < n; i++)
            biggest = b->len[i] > biggest ? b->len[i] : biggest;
    } else {
        biggest = b->kind == BLK_SPLIT ? b->base + (b->rem ? 1 : 0) : b->cl;
    }
    size_t iters = (biggest + chunk - 1) / chunk;
    if (W > 1 && iters > 1 && n > 1) {
        /* Chunks skewed (sim/README.md, finding 1): step t of chunk j at
         * j * G + t, older chunks first on a tie, so W chunks are under
         * way at once instead of one going round before the next starts.
         * A message leaves its sender at its key and is taken at key + 1
         * by the next rank, so every link keeps its order. */
        int t0 = mode == RING_AG ? n - 1 : 0, t1 = mode == RING_RS ? n - 1 : 2 * n - 2;
        long T = t1 - t0 + 1, G = (T + W - 1) / W;
        long last = (long)(iters - 1) * G + T - 1;
        for (long d = 0; d <= last; d++) {
            long jlo = d - (T - 1) <= 0 ? 0 : (d - (T - 1) + G - 1) / G, jhi = d / G;
            if (jhi > (long)iters - 1)
                jhi = (long)iters - 1;
            for (long j = jlo; j <= jhi; j++)
                STEP((size_t)j, (int)(t0 + d - j * G));
        }
        return PPU_SUCCESS;
    }
    for (size_t it = 0; it < iters; it++) {
        size_t lo = it * chunk;
        if (n == 1) { /* no hops: the block itself */
            size_t len = blk_len(b, 0);
            if (lo < len)
                ADD(ch, PPU_STEP_INPUT | PPU_STEP_OUTPUT | (mode == RING_AG ? 0 : fin), -1, -1,
                    blk_in(b, 0) + lo, blk_out(b, 0) + lo, len - lo < chunk ? len - lo : chunk);
            continue;
        }
        /* the chunk's steps in order; the walks visit positions p - 2,
         * p - 3, ... round the ring but only blocks with something left at
         * this chunk (the others add no step), so a sparse all-reduce
         * costs O(its steps) */
        int back = ((p - 2) % n + n) % n, q;
        if (mode != RING_AG) {
            STEP(it, 0);
            for (struct ring_walk w = walk_from(b, n, back, n - 2, lo); (q = walk_next(&w)) >= 0;)
                STEP(it, 1 + (back - q + n) % n);
        }
        STEP(it, n - 1);
        if (mode != RING_RS) {
            for (struct ring_walk w = walk_from(b, n, (back + 1) % n, n - 2, lo);
                 (q = walk_next(&w)) >= 0;)
                STEP(it, n + (back + 1 - q + n) % n);
            STEP(it, 2 * n - 2);
        }
    }
    return PPU_SUCCESS;
}
#undef STEP

static int ring_pos(const int *ring, int n, int rank)
{
    for (int i = 0; i < n; i++)
        if (ring[i] == rank)
            return i;
    return 0;
}

/* rank's position on the context's ring c */
static int ctx_pos(const struct ppu_sched_ctx *x, int c, int rank)
{
    if (x->ring_pos)
        return x->ring_pos[(size_t)c * x->nranks + rank];
    return ring_pos(x->rings + (size_t)c * x->nranks, x->nranks, rank);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Channels used for count elements: at least one element each. */
static int channels_for(const struct ppu_sched_ctx *x, size_t count)
{
    int nch = x->nrings;
    if (count < (size_t)nch)
        nch = count ? (int)count : 1;
    return nch;
}

static ppu_result_t ring_build(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                               enum ring_mode mode, size_t count, ppu_redop_t op)
{
    int n = x->nranks, nch = channels_for(x, count);
    if (ppu_sched_init(s, nch, PPU_ALGO_RING) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    uint32_t fin = op == PPU_AVG ? PPU_STEP_FINISH : 0;
    for (int c = 0; c < nch; c++) {
        struct ring_blocks b;
        memset(&b, 0, sizeof b);
        b.ring = x->rings + (size_t)c * n;
        b.count = count;
        ppu_sched_part(0, count, nch, c, &b.cs, &b.cl);
        if (mode == RING_AR) { /* count is the whole buffer */
            b.kind = BLK_SPLIT;
            b.n = n;
            b.base = b.cl / (size_t)n;
            b.rem = b.cl % (size_t)n;
            /* few elements on many ranks: list the ranks that hold one */
            if (b.base == 0 && x->ring_pos && b.rem * 8 < (size_t)n) {
                b.nnz = (int)b.rem;
                b.nz = malloc(sizeof *b.nz * (b.rem ? b.rem : 1));
                if (!b.nz) {
                    ppu_sched_free(s);
                    return PPU_SYSTEM_ERROR;
                }
                /* element e is rank ceil((e + 1) n / rem) - 1's */
                for (int e = 0; e < b.nnz; e++)
                    b.nz[e] = ctx_pos(x, c, (int)((((size_t)e + 1) * (size_t)n + b.rem - 1) /
                                                      b.rem - 1));
                qsort(b.nz, (size_t)b.nnz, sizeof *b.nz, cmp_int);
            }
        } else {
            b.kind = mode == RING_RS ? BLK_RANK_IN : BLK_RANK_OUT;
        }
        ppu_result_t r =
            ring_channel(&s->ch[c], mode, n, ctx_pos(x, c, x->rank), &b, x->chunk, fin, x->skew);
        free(b.nz);
        if (r != PPU_SUCCESS) {
            ppu_sched_free(s);
            return r;
        }
    }
    return PPU_SUCCESS;
}

ppu_result_t ppu_sched_ring_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, ppu_redop_t op)
{
    return ring_build(s, x, RING_AR, count, op);
}

/* Give a ring channel built for a sub-ring its direct peer links: every
 * send to the next member, every receive from the previous one; with
 * in_out, its input is the call's output buffer. */
static void on_peer_links(struct ppu_sched_channel *ch, const int *ring, int n, int p, int in_out)
{
    int next = ring[(p + 1) % n], prev = ring[(p + n - 1) % n];
    for (size_t i = 0; i < ch->nsteps; i++) {
        struct ppu_step *st = &ch->steps[i];
        if (st->flags & PPU_STEP_SEND)
            st->send_peer = next;
        if (st->flags & PPU_STEP_RECV)
            st->recv_peer = prev;
        st->flags &= ~(uint32_t)PPU_STEP_REF_OUT; /* peer links copy */
        if (in_out && (st->flags & PPU_STEP_INPUT))
            st->flags |= PPU_STEP_IN_OUT;
    }
}

ppu_result_t ppu_sched_hier_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, ppu_redop_t op, const int *local, int nlocal,
                                      const int *rings, int nrings, const int *rail_me,
                                      int nservers, int tree)
{
    /* channels: 0..K-1 the reduce-scatters, K..K+R-1 the rail (a ring,
     * or the trees' four), K+R..2K+R-1 the all-gathers */
    int K = nrings, rail = K, R = tree ? 4 : 1;
    if (ppu_sched_init(s, 2 * K + R, tree ? PPU_ALGO_HIER_TREE : PPU_ALGO_HIER) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    uint32_t fin = op == PPU_AVG ? PPU_STEP_FINISH : 0;
    struct ring_blocks b, rb;
    memset(&b, 0, sizeof b);
    memset(&rb, 0, sizeof rb);
    int *pos = NULL, *parent = NULL, *ring = malloc(sizeof *ring * (size_t)nlocal);
    ppu_result_t r = PPU_SYSTEM_ERROR;
    if (!ring || !blocks_alloc(&b, nlocal) || !blocks_alloc(&rb, nservers))
        goto out;
    /* the member of local index j owns part j (its rail's shard) */
    int lme = ring_pos(local, nlocal, x->rank), rp = ring_pos(rail_me, nservers, x->rank);
    size_t shard, shard_len;
    ppu_sched_part(0, count, nlocal, lme, &shard, &shard_len);
    r = PPU_SUCCESS;
    for (int c = 0; c < K && r == PPU_SUCCESS; c++) {
        /* ring c reduces and gathers piece c of every part */
        const int *li = rings + (size_t)c * nlocal;
        int me = 0;
        for (int p = 0; p < nlocal; p++) {
            size_t ps, pl;
            ppu_sched_part(0, count, nlocal, li[p], &ps, &pl);
            ppu_sched_part(ps, pl, K, c, &b.in[p], &b.len[p]);
            b.out[p] = b.in[p];
            ring[p] = local[li[p]];
            if (li[p] == lme)
                me = p;
        }
        /* 1: reduce-scatter inside the server */
        r = ring_channel(&s->ch[c], RING_RS, nlocal, me, &b, x->chunk, 0, x->skew);
        on_peer_links(&s->ch[c], ring, nlocal, me, 0);
        /* 3: all-gather inside the server, from the output */
        if (r == PPU_SUCCESS)
            r = ring_channel(&s->ch[rail + R + c], RING_AG, nlocal, me, &b, x->chunk, 0, x->skew);
        on_peer_links(&s->ch[rail + R + c], ring, nlocal, me, 1);
        s->ch[rail + R + c].after = rail;
        s->ch[rail + R + c].after_n = R;
    }
    /* 2: all-reduce of this rank's shard along its rail, in the output,
     * once every ring has reduced its piece of it */
    for (int q = 0; q < R; q++) {
        s->ch[rail + q].after = 0;
        s->ch[rail + q].after_n = K;
    }
    if (r == PPU_SUCCESS && tree) {
        /* the rail's two trees, over servers: this rank's parent and
         * children, found in O(servers) */
        pos = malloc(sizeof *pos * 2 * (size_t)nservers);
        parent = malloc(sizeof *parent * 2 * (size_t)nservers);
        if (!pos || !parent)
            r = PPU_SYSTEM_ERROR;
        if (r == PPU_SUCCESS) {
            ppu_sched_double_binary_tree(nservers, pos);
            int up[2], nkids[2] = {0, 0};
            const int *kids[2] = {parent, parent + nservers};
            for (int t = 0; t < 2; t++) {
                int u = pos[t * nservers + rp];
                up[t] = u >= 0 ? rail_me[u] : -1;
                for (int k = 0; k < nservers; k++)
                    if (pos[t * nservers + k] == rp)
                        parent[t * nservers + nkids[t]++] = rail_me[k];
            }
            r = ppu_sched_tree_channels(&s->ch[rail], up, kids, nkids, shard, shard_len,
                                        x->chunk, op, 1);
        }
    } else if (r == PPU_SUCCESS) {
        for (int k = 0; k < nservers; k++) {
            ppu_sched_part(shard, shard_len, nservers, k, &rb.in[k], &rb.len[k]);
            rb.out[k] = rb.in[k];
        }
        r = ring_channel(&s->ch[rail], RING_AR, nservers, rp, &rb, x->chunk, fin, x->skew);
        on_peer_links(&s->ch[rail], rail_me, nservers, rp, 1);
    }
out:
    blocks_free(&b);
    blocks_free(&rb);
    free(pos);
    free(parent);
    free(ring);
    if (r != PPU_SUCCESS)
        ppu_sched_free(s);
    return r;
}

ppu_result_t ppu_sched_hier_allgather(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, const int *local, int nlocal,
                                      const int *rail_me, int nservers, const int *srv)
{
    if (ppu_sched_init(s, 2, PPU_ALGO_HIER) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    struct ring_blocks b;
    if (!blocks_alloc(&b, nservers > nlocal ? nservers : nlocal)) {
        ppu_sched_free(s);
        return PPU_SYSTEM_ERROR;
    }
    int me = ring_pos(local, nlocal, x->rank), rp = ring_pos(rail_me, nservers, x->rank);
    /* 1: this rank's block to its rail (one rank a server) over the network */
    for (int k = 0; k < nservers; k++) {
        b.in[k] = 0;
        b.out[k] = (size_t)rail_me[k] * count;
        b.len[k] = count;
    }
    ppu_result_t r = ring_channel(&s->ch[0], RING_AG, nservers, rp, &b, x->chunk, 0, 1);
    on_peer_links(&s->ch[0], rail_me, nservers, rp, 0);
    /* 2: inside the server, for each server k, the blocks of k's ranks:
     * member j holds the block of k's rank j since phase 1 */
    for (int k = 0; k < nservers && r == PPU_SUCCESS; k++) {
        for (int j = 0; j < nlocal; j++) {
            b.in[j] = b.out[j] = (size_t)srv[(size_t)k * nlocal + j] * count;
            b.len[j] = count;
        }
        r = ring_channel(&s->ch[1], RING_AG, nlocal, me, &b, x->chunk, 0, 1);
    }
    on_peer_links(&s->ch[1], local, nlocal, me, 1);
    s->ch[1].after = 0;
    blocks_free(&b);
    if (r != PPU_SUCCESS)
        ppu_sched_free(s);
    return r;
}

ppu_result_t ppu_sched_hier_reduce_scatter(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                           size_t count, ppu_redop_t op, const int *local,
                                           int nlocal, const int *rail_me, int nservers,
                                           const int *srv)
{
    if (ppu_sched_init(s, 2, PPU_ALGO_HIER) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    struct ring_blocks b;
    if (!blocks_alloc(&b, nservers > nlocal ? nservers : nlocal)) {
        ppu_sched_free(s);
        return PPU_SYSTEM_ERROR;
    }
    int me = ring_pos(local, nlocal, x->rank), rp = ring_pos(rail_me, nservers, x->rank);
    ppu_result_t r = PPU_SUCCESS;
    /* 1: inside the server, per server k: member j sums the server's blocks
     * for k's rank j into the temporary at k * count */
    for (int k = 0; k < nservers && r == PPU_SUCCESS; k++) {
        for (int j = 0; j < nlocal; j++) {
            b.in[j] = (size_t)srv[(size_t)k * nlocal + j] * count;
            b.out[j] = (size_t)k * count;
            b.len[j] = count;
        }
        r = ring_channel(&s->ch[0], RING_RS, nlocal, me, &b, x->chunk, 0, 1);
    }
    on_peer_links(&s->ch[0], local, nlocal, me, 0);
    /* 2: the partials along the rail, over the network, into the output */
    for (int k = 0; k < nservers; k++) {
        b.in[k] = (size_t)k * count;
        b.out[k] = 0;
        b.len[k] = count;
    }
    if (r == PPU_SUCCESS)
        r = ring_channel(&s->ch[1], RING_RS, nservers, rp, &b, x->chunk,
                         op == PPU_AVG ? PPU_STEP_FINISH : 0, 1);
    on_peer_links(&s->ch[1], rail_me, nservers, rp, 0);
    s->ch[1].after = 0;
    s->ch[0].out_tmp = 1;
    s->ch[1].in_tmp = 1;
    blocks_free(&b);
    if (r != PPU_SUCCESS)
        ppu_sched_free(s);
    return r;
}

ppu_result_t ppu_sched_ring_reduce_scatter(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                           size_t recvcount, ppu_redop_t op)
{
    return ring_build(s, x, RING_RS, recvcount, op);
}

ppu_result_t ppu_sched_ring_allgather(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t sendcount)
{
    return ring_build(s, x, RING_AG, sendcount, PPU_SUM);
}

static ppu_result_t alltoall_channel(struct ppu_sched_channel *ch, const struct ppu_sched_ctx *x,
                                     const int *ring, size_t count, size_t cs, size_t cl)
{
    int n = x->nranks, p = ring_pos(ring, n, x->rank), r = x->rank;
    const uint32_t R = PPU_STEP_RECV, I = PPU_STEP_INPUT, O = PPU_STEP_OUTPUT, S = PPU_STEP_SEND;
    for (size_t lo = 0; lo < cl; lo += x->chunk) {
        size_t cnt = cl - lo < x->chunk ? cl - lo : x->chunk, at = cs + lo;
        ADD(ch, I | O, -1, -1, (size_t)r * count + at, (size_t)r * count + at, cnt);
        /* Phase k: every rank's block for the rank k places on travels k
         * hops; the ranks between pass it along untouched. */
        for (int k = 1; k < n; k++) {
            int to = ring[(p + k) % n], from = ring[(p - k + n) % n];
            ADD(ch, I | S, -1, -1, (size_t)to * count + at, 0, cnt);
            for (int h = 1; h < k; h++)
                ADD(ch, R | S, -1, -1, 0, 0, cnt);
            ADD(ch, R | O, -1, -1, 0, (size_t)from * count + at, cnt);
        }
    }
    return PPU_SUCCESS;
}

ppu_result_t ppu_sched_ring_alltoall(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                     size_t count)
{
    int nch = channels_for(x, count);
    if (ppu_sched_init(s, nch, PPU_ALGO_RING) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    for (int c = 0; c < nch; c++) {
        size_t cs, cl;
        ppu_sched_part(0, count, nch, c, &cs, &cl);
        if (alltoall_channel(&s->ch[c], x, x->rings + (size_t)c * x->nranks, count, cs, cl) !=
            PPU_SUCCESS) {
            ppu_sched_free(s);
            return PPU_SYSTEM_ERROR;
        }
    }
    return PPU_SUCCESS;
}

/* Chains: the ring cut open at the root. Broadcast flows from the root to
 * the rank before it; reduce flows from the rank after the root to it. */
static ppu_result_t chain_build(struct ppu_sched *s, const struct ppu_sched_ctx *x, size_t count,
                                int root, int reduce, uint32_t fin, int inplace)
{
    int n = x->nranks, nch = channels_for(x, count);
    if (ppu_sched_init(s, nch, PPU_ALGO_RING) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    const uint32_t R = PPU_STEP_RECV, I = PPU_STEP_INPUT, O = PPU_STEP_OUTPUT, S = PPU_STEP_SEND;
    for (int c = 0; c < nch; c++) {
        const int *ring = x->rings + (size_t)c * n;
        int p = ring_pos(ring, n, x->rank), rp = ring_pos(ring, n, root);
        /* d: this rank's place in the chain, 0 first, n-1 last */
        int d = reduce ? ((p - rp - 1) % n + n) % n : ((p - rp) % n + n) % n;
        uint32_t f;
        if (n == 1)
            f = reduce ? I | O | fin : (inplace ? 0 : I | O);
        else if (reduce)
            f = d == 0 ? I | S : d == n - 1 ? R | I | O | fin : R | I | S;
        else
            f = d == 0 ? I | S | (inplace ? 0 : O) : d == n - 1 ? R | O : R | O | S;
        size_t cs, cl;
        ppu_sched_part(0, count, nch, c, &cs, &cl);
        for (size_t lo = 0; f && lo < cl; lo += x->chunk) {
            size_t cnt = cl - lo < x->chunk ? cl - lo : x->chunk;
            if (ppu_sched_add(&s->ch[c], f, -1, -1, cs + lo, cs + lo, cnt) != PPU_SUCCESS) {
                ppu_sched_free(s);
                return PPU_SYSTEM_ERROR;
            }
        }
    }
    return PPU_SUCCESS;
}

ppu_result_t ppu_sched_chain_broadcast(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                       size_t count, int root, int inplace)
{
    return chain_build(s, x, count, root, 0, 0, inplace);
}

ppu_result_t ppu_sched_chain_reduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                    size_t count, ppu_redop_t op, int root)
{
    return chain_build(s, x, count, root, 1, op == PPU_AVG ? PPU_STEP_FINISH : 0, 0);
}
