/* Schedules over direct peer links: one-shot and two-shot all-reduce,
 * direct reduce-scatter and all-gather, pairwise all-to-all(v), and the
 * double binary tree. Each is one channel whose steps go round the peers
 * in an order every rank shares, so a directed link's messages reach the
 * receiver in the order its steps expect them. Sends of a chunk to every
 * peer come before the receives of that chunk: all links carry data at
 * once and nobody waits to send. */
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

#define ADD(...)                                                  \
    do {                                                          \
        if (ppu_sched_add(__VA_ARGS__) != PPU_SUCCESS)            \
            goto oom;                                             \
    } while (0)

static const uint32_t R = PPU_STEP_RECV, I = PPU_STEP_INPUT, O = PPU_STEP_OUTPUT,
                      S = PPU_STEP_SEND, A = PPU_STEP_ACCUM, IO = PPU_STEP_IN_OUT,
                      F = PPU_STEP_FINISH;

static struct ppu_sched_channel *one_channel(struct ppu_sched *s, int algo)
{
    return ppu_sched_init(s, 1, algo) == PPU_SUCCESS ? &s->ch[0] : NULL;
}

/* The rank with local index j on server k: srv[k * L + j]. */
#define SRV_AT(srv, L, k, j) (srv)[(size_t)(k) * (size_t)(L) + (size_t)(j)]

static size_t clip(size_t len, size_t lo, size_t chunk)
{
    return lo < len ? (len - lo < chunk ? len - lo : chunk) : 0;
}

ppu_result_t ppu_sched_oneshot_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                         size_t count, ppu_redop_t op)
{
    struct ppu_sched_channel *ch = one_channel(s, PPU_ALGO_ONESHOT);
    if (!ch)
        return PPU_SYSTEM_ERROR;
    int n = x->nranks, r = x->rank;
    for (size_t lo = 0; lo < count; lo += x->chunk) {
        size_t cnt = clip(count, lo, x->chunk);
        for (int k = 1; k < n; k++)
            ADD(ch, I | S, (r + k) % n, -1, lo, 0, cnt);
        /* Everyone's chunk reduced in rank order into scratch: every rank
         * computes bitwise the same result. */
        for (int q = 0; q < n; q++)
            ADD(ch, (q == r ? I : R) | (q ? A : 0) | O | PPU_STEP_TMP_OUT, -1, q == r ? -1 : q, lo,
                0, cnt);
        ADD(ch, I | PPU_STEP_TMP_IN | O | (op == PPU_AVG ? F : 0), -1, -1, 0, lo, cnt);
    }
    return PPU_SUCCESS;
oom:
    ppu_sched_free(s);
    return PPU_SYSTEM_ERROR;
}

/* Reduce-scatter straight to each block's owner over its own link. bs/bl:
 * block q at input offset bs[q]; out_own: where this rank's block goes. */
static ppu_result_t direct_rs_chunk(struct ppu_sched_channel *ch, int n, int r, const size_t *bs,
                                    const size_t *bl, size_t out_own, size_t lo, size_t chunk,
                                    uint32_t fin)
{
    for (int k = 1; k < n; k++) {
        int p = (r + k) % n;
        ADD(ch, I | S, p, -1, bs[p] + lo, 0, clip(bl[p], lo, chunk));
    }
    /* The first message is reduced with the input straight into the
     * output (one pass: read two, write one) rather than after a copy of
     * the input there; later ones accumulate into the output. */
    size_t cnt = clip(bl[r], lo, chunk);
    if (n == 1)
        ADD(ch, I | O, -1, -1, bs[r] + lo, out_own + lo, cnt);
    for (int k = 1; k < n; k++)
        ADD(ch, k == 1 ? R | I | O : R | A | O, -1, (r - k + n) % n, k == 1 ? bs[r] + lo : 0,
            out_own + lo, cnt);
    if (fin)
        ADD(ch, I | IO | O | fin, -1, -1, out_own + lo, out_own + lo, cnt);
    return PPU_SUCCESS;
oom:
    return PPU_SYSTEM_ERROR;
}

static size_t max_of(const size_t *v, int n)
{
    size_t m = 0;
    for (int i = 0; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

/* With x->twoshot_split two channels: the first sends shot 1, reduces
 * this rank's block and sends it as shot 2 (on lane 1: shot 1 and shot 2
 * between two ranks would share a directed link); the second takes the
 * other ranks' shot 2. So a chunk's shot 1 goes out while the chunk
 * before's results come in, instead of after them (sim/README.md,
 * finding 1). Without, all in one channel. */
ppu_result_t ppu_sched_twoshot_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                         size_t count, ppu_redop_t op)
{
    int split = x->twoshot_split != 0;
    if (ppu_sched_init(s, 1 + split, PPU_ALGO_TWOSHOT) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    struct ppu_sched_channel *ch = &s->ch[0], *in = &s->ch[split];
    int n = x->nranks, r = x->rank;
    size_t *bs = malloc(2 * sizeof *bs * (size_t)n), *bl = bs ? bs + n : NULL;
    if (!bs)
        goto oom;
    for (int q = 0; q < n; q++)
        ppu_sched_part(0, count, n, q, &bs[q], &bl[q]);
    uint32_t fin = op == PPU_AVG ? F : 0;
    size_t big = max_of(bl, n);
    for (size_t lo = 0; lo < big; lo += x->chunk) {
        /* shot 1: block p to its owner p; this rank reduces block r */
        if (direct_rs_chunk(ch, n, r, bs, bl, bs[r], lo, x->chunk, fin) != PPU_SUCCESS)
            goto oom;
        /* shot 2: the reduced block r to everyone, theirs from them */
        uint32_t L1 = split ? PPU_STEP_LANE1 : 0;
        for (int k = 1; k < n; k++)
            ADD(ch, I | IO | S | L1, (r + k) % n, -1, bs[r] + lo, 0, clip(bl[r], lo, x->chunk));
        for (int k = 1; k < n; k++) {
            int p = (r - k + n) % n;
            ADD(in, R | O | L1, -1, p, 0, bs[p] + lo, clip(bl[p], lo, x->chunk));
        }
    }
    free(bs);
    return PPU_SUCCESS;
oom:
    free(bs);
    ppu_sched_free(s);
    return PPU_SYSTEM_ERROR;
}

ppu_result_t ppu_sched_direct_reduce_scatter(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                             size_t recvcount, ppu_redop_t op)
{
    struct ppu_sched_channel *ch = one_channel(s, PPU_ALGO_PAIRWISE);
    if (!ch)
        return PPU_SYSTEM_ERROR;
    int n = x->nranks;
    size_t *bs = malloc(2 * sizeof *bs * (size_t)n), *bl = bs ? bs + n : NULL;
    if (!bs) {
        ppu_sched_free(s);
        return PPU_SYSTEM_ERROR;
    }
    for (int q = 0; q < n; q++) {
        bs[q] = (size_t)q * recvcount;
        bl[q] = recvcount;
    }
    for (size_t lo = 0; lo < recvcount; lo += x->chunk)
        if (direct_rs_chunk(ch, n, x->rank, bs, bl, 0, lo, x->chunk,
                            op == PPU_AVG ? F : 0) != PPU_SUCCESS) {
            free(bs);
            ppu_sched_free(s);
            return PPU_SYSTEM_ERROR;
        }
    free(bs);
    return PPU_SUCCESS;
}

ppu_result_t ppu_sched_direct_allgather(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                        size_t sendcount)
{
    struct ppu_sched_channel *ch = one_channel(s, PPU_ALGO_PAIRWISE);
    if (!ch)
        return PPU_SYSTEM_ERROR;
    int n = x->nranks, r = x->rank;
    for (size_t lo = 0; lo < sendcount; lo += x->chunk) {
        size_t cnt = clip(sendcount, lo, x->chunk);
        for (int k = 1; k < n; k++)
            ADD(ch, I | S, (r + k) % n, -1, lo, 0, cnt);
        ADD(ch, I | O, -1, -1, lo, (size_t)r * sendcount + lo, cnt);
        for (int k = 1; k < n; k++) {
            int p = (r - k + n) % n;
            ADD(ch, R | O, -1, p, 0, (size_t)p * sendcount + lo, cnt);
        }
    }
    return PPU_SUCCESS;
oom:
    ppu_sched_free(s);
    return PPU_SYSTEM_ERROR;
}

ppu_result_t ppu_sched_pairwise_alltoall(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                         size_t count, const size_t *scounts,
                                         const size_t *sdispls, const size_t *rcounts,
                                         const size_t *rdispls)
{
    struct ppu_sched_channel *ch = one_channel(s, PPU_ALGO_PAIRWISE);
    if (!ch)
        return PPU_SYSTEM_ERROR;
    int n = x->nranks, r = x->rank;
    size_t *sc = malloc(4 * sizeof *sc * (size_t)n);
    if (!sc)
        goto oom;
    size_t *sd = sc + n, *rc = sc + 2 * (size_t)n, *rd = sc + 3 * (size_t)n;
    for (int q = 0; q < n; q++) {
        sc[q] = scounts ? scounts[q] : count;
        sd[q] = sdispls ? sdispls[q] : (size_t)q * count;
        rc[q] = rcounts ? rcounts[q] : count;
        rd[q] = rdispls ? rdispls[q] : (size_t)q * count;
    }
    size_t big = max_of(sc, n), bigr = max_of(rc, n);
    big = bigr > big ? bigr : big;
    for (size_t lo = 0; lo < big; lo += x->chunk) {
        size_t own = clip(sc[r], lo, x->chunk);
        /* the rank's own block: in place only if it already sits there */
        if (rc[r] == sc[r])
            ADD(ch, I | O, -1, -1, sd[r] + lo, rd[r] + lo, own);
        /* step k pairs every rank with the ranks k before and after it,
         * so every link carries one block per chunk round */
        for (int k = 1; k < n; k++) {
            int p = (r + k) % n;
            ADD(ch, I | S, p, -1, sd[p] + lo, 0, clip(sc[p], lo, x->chunk));
        }
        for (int k = 1; k < n; k++) {
            int p = (r - k + n) % n;
            ADD(ch, R | O, -1, p, 0, rd[p] + lo, clip(rc[p], lo, x->chunk));
        }
    }
    free(sc);
    return PPU_SUCCESS;
oom:
    free(sc);
    ppu_sched_free(s);
    return PPU_SYSTEM_ERROR;
}

void ppu_sched_double_binary_tree(int n, int *parent)
{
    for (int r = 0; r < n; r++) {
        parent[r] = r == 0 ? -1 : (r - 1) / 2;
        int i = n - 1 - r; /* r's place in the reversed order */
        parent[n + r] = i == 0 ? -1 : n - 1 - (i - 1) / 2;
    }
}

/* Tree t's reduce into rc and broadcast into bc, elements [at0, at0 +
 * len) a chunk at a time. Each channel uses its own directed links (up:
 * kid -> rank -> parent; down: parent -> rank -> kid), so a chunk goes up
 * while the one before comes down, and the next chunk's reduce does not
 * wait for this one's round trip (sim/README.md, finding 2). A rank's
 * broadcast of chunk j overwrites what its reduce wrote there only after
 * the root has taken every rank's contribution to chunk j. */
static ppu_result_t tree_channels(struct ppu_sched_channel *rc, struct ppu_sched_channel *bc,
                                  int up, const int *kids, int nkids, size_t at0, size_t len,
                                  size_t chunk, uint32_t fin, uint32_t io, uint32_t lane)
{
    for (size_t lo = 0; lo < len; lo += chunk) {
        size_t cnt = clip(len, lo, chunk), at = at0 + lo;
        if (nkids == 0) {
            if (up >= 0)
                ADD(rc, I | io | S | lane, up, -1, at, 0, cnt);
            else
                ADD(rc, I | io | O | fin | lane, -1, -1, at, at, cnt);
        } else {
            ADD(rc, R | I | io | O | lane, -1, kids[0], at, at, cnt);
            for (int k = 1; k < nkids; k++)
                ADD(rc, R | A | O | lane, -1, kids[k], 0, at, cnt);
            if (up >= 0)
                ADD(rc, I | IO | S | lane, up, -1, at, 0, cnt);
            else if (fin)
                ADD(rc, I | IO | O | fin | lane, -1, -1, at, at, cnt);
        }
        /* down: the root from its reduce channel, the others as the
         * parent's message comes */
        struct ppu_sched_channel *d = up >= 0 ? bc : rc;
        if (up >= 0)
            ADD(bc, R | O | lane, -1, up, 0, at, cnt);
        for (int k = 0; k < nkids; k++)
            ADD(d, I | IO | S | lane, kids[k], -1, at, 0, cnt);
    }
    return PPU_SUCCESS;
oom:
    return PPU_SYSTEM_ERROR;
}

ppu_result_t ppu_sched_tree_channels(struct ppu_sched_channel ch[4], const int up[2],
                                     const int *const kids[2], const int nkids[2], size_t base,
                                     size_t count, size_t chunk, ppu_redop_t op, int in_out)
{
    size_t hs[2], hl[2];
    for (int t = 0; t < 2; t++)
        ppu_sched_part(base, count, 2, t, &hs[t], &hl[t]);
    /* One message in all: tree 0 carries it alone. Halves on both trees
     * bought no bandwidth and, when both trees shared a channel, took hops
     * of both (ppu-sim, 8 ring8 servers, 128 B-32 KB: the flat tree 54 ->
     * 40 us, hiertree's rails 64 -> 52). */
    if (count <= chunk)
        hs[0] = base, hl[0] = count, hl[1] = 0;
    uint32_t fin = op == PPU_AVG ? F : 0, io = in_out ? IO : 0;
    for (int t = 0; t < 2; t++) {
        if (tree_channels(&ch[2 * t], &ch[2 * t + 1], up[t], kids[t], nkids[t], hs[t], hl[t],
                          chunk, fin, io, t ? PPU_STEP_LANE1 : 0) != PPU_SUCCESS)
            return PPU_SYSTEM_ERROR;
    }
    return PPU_SUCCESS;
}

ppu_result_t ppu_sched_tree_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, ppu_redop_t op, const int up[2],
                                      const int *const kids[2], const int nkids[2])
{
    if (ppu_sched_init(s, 4, PPU_ALGO_TREE) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    if (ppu_sched_tree_channels(s->ch, up, kids, nkids, 0, count, x->chunk, op, 0) !=
        PPU_SUCCESS) {
        ppu_sched_free(s);
        return PPU_SYSTEM_ERROR;
    }
    return PPU_SUCCESS;
}

/* Rank q's slot in the server table: srv[k * L + j] is the rank with
 * local index j on server k. */
#define SRV(k, j) srv[(size_t)(k) * (size_t)L + (size_t)(j)]

/* Are server k's ranks numbered in a run (local index j is rank
 * srv[k * L] + j)? */
static int rank_run(const int *srv, int L, int k)
{
    for (int j = 1; j < L; j++)
        if (SRV(k, j) != SRV(k, 0) + j)
            return 0;
    return 1;
}

ppu_result_t ppu_sched_hier_alltoall(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                     size_t count, const int *local, int L, const int *rail_me,
                                     int ns, const int *srv)
{
    if (ppu_sched_init(s, 2, PPU_ALGO_HIER) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    int jm = 0, sm = 0;
    while (jm < L && local[jm] != x->rank)
        jm++;
    while (sm < ns && rail_me[sm] != x->rank)
        sm++;
    struct ppu_sched_channel *a = &s->ch[0], *b = &s->ch[1];
    /* 1: inside the server, over the links to its mates. The temporary
     * has three parts of nranks blocks: Q, at (t * L + j) * count, the
     * block from local rank j to the rank of server t on this rank's rail
     * (what phase 2 sends); P, this rank's blocks packed for each mate i
     * (the ns blocks for rail i side by side); R, the packs received from
     * each mate. One stream of messages a mate instead of ns (1,024 ranks
     * as 64 x 16: 15 streams a rank instead of 960 messages), for two
     * local copies a block. */
    size_t N = (size_t)ns * L, P = N * count, Rr = 2 * N * count, pack = (size_t)ns * count;
    for (int t = 0; t < ns; t++)
        for (size_t lo = 0; lo < count; lo += x->chunk)
            ADD(a, I | O, -1, -1, (size_t)SRV(t, jm) * count + lo,
                ((size_t)t * L + jm) * count + lo, clip(count, lo, x->chunk));
    for (int k = 1; k < L; k++) {
        int i = (jm + k) % L;
        for (int t = 0; t < ns; t++)
            ADD(a, I | O, -1, -1, (size_t)SRV(t, i) * count, P + ((size_t)i * ns + t) * count,
                count);
    }
    for (int k = 1; k < L; k++) {
        int kp = (jm + k) % L, kq = (jm - k + L) % L;
        /* one message out, one in: every link of the round moves */
        for (size_t lo = 0; lo < pack; lo += x->chunk) {
            size_t cnt = clip(pack, lo, x->chunk);
            ADD(a, I | IO | S, local[kp], -1, P + (size_t)kp * pack + lo, 0, cnt);
            ADD(a, R | O, -1, local[kq], 0, Rr + (size_t)kq * pack + lo, cnt);
        }
        for (int t = 0; t < ns; t++)
            ADD(a, I | IO | O, -1, -1, Rr + (size_t)kq * pack + (size_t)t * count,
                ((size_t)t * L + kq) * count, count);
    }
    a->out_tmp = 1;
    /* 2: along the rail, over the network: to the rank of server t the L
     * blocks its rank receives from this server, each block crossing the
     * network once. */
    for (int j = 0; j < L; j++)
        for (size_t lo = 0; lo < count; lo += x->chunk)
            ADD(b, I | O, -1, -1, ((size_t)sm * L + j) * count + lo,
                (size_t)SRV(sm, j) * count + lo, clip(count, lo, x->chunk));
    /* The L blocks for server t lie side by side in the temporary; they
     * land side by side in the receiver's output when the sending
     * server's ranks are numbered in a run (the usual layout): then they
     * travel as one stream of messages, not L (1,024 ranks as 64 x 16:
     * 63 messages a rank instead of 1,008). Both ends judge by the
     * sending server, so they cut the messages alike. */
    int run_me = rank_run(srv, L, sm);
    for (int d = 1; d < ns; d++) {
        int t = (sm + d) % ns, u = (sm - d + ns) % ns, run_u = rank_run(srv, L, u);
        size_t slen = run_me ? (size_t)L * count : count, rlen = run_u ? (size_t)L * count : count;
        int sn = run_me ? 1 : L, rn = run_u ? 1 : L;
        size_t sc = (slen + x->chunk - 1) / x->chunk, rc = (rlen + x->chunk - 1) / x->chunk;
        for (int j = 0; j < (sn > rn ? sn : rn); j++)
            for (size_t c = 0; c < (sc > rc ? sc : rc); c++) {
                size_t lo = c * x->chunk;
                if (j < sn && c < sc)
                    ADD(b, I | S, rail_me[t], -1, ((size_t)t * L + j) * count + lo, 0,
                        clip(slen, lo, x->chunk));
                if (j < rn && c < rc)
                    ADD(b, R | O, -1, rail_me[u], 0, (size_t)SRV(u, j) * count + lo,
                        clip(rlen, lo, x->chunk));
            }
    }
    b->in_tmp = 1;
    b->after = 0;
    return PPU_SUCCESS;
oom:
    ppu_sched_free(s);
    return PPU_SYSTEM_ERROR;
}
#undef SRV

/* Hierarchical broadcast over servers of equal size L. The root's rail
 * (the ranks with its local index, one a server) carries the buffer
 * between servers, on a heap-shaped tree of the given fanout over the
 * servers taken from the root's (fanout 1: a chain); inside each server
 * the rail's rank starts a chain over its mates in local order. Every
 * rank takes each chunk from its one parent and forwards it at once, so
 * the chunks flow in a pipeline: hops (servers' tree depth + L - 1)
 * instead of the flat chain's N - 1. */
ppu_result_t ppu_sched_hier_broadcast(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, int root, int inplace, const int *srv, int L,
                                      int ns, const int *server, const int *local, int fanout)
{
    struct ppu_sched_channel *ch =
        one_channel(s, fanout > 1 ? PPU_ALGO_HIER_TREE : PPU_ALGO_HIER);
    if (!ch)
        return PPU_SYSTEM_ERROR;
    int me = x->rank, k = server[me], j = local[me];
    int sr = server[root], jr = local[root];
    int q = (k - sr + ns) % ns, d = (j - jr + L) % L; /* place among servers; in the chain */
    int parent = -1, dest[8], nd = 0;
    if (d > 0) {
        parent = SRV_AT(srv, L, k, (j - 1 + L) % L);
    } else {
        if (q > 0)
            parent = SRV_AT(srv, L, ((q - 1) / fanout + sr) % ns, jr);
        /* the rail first: its hops are the long ones */
        for (int c = 1; c <= fanout; c++) {
            long kid = (long)q * fanout + c;
            if (kid < ns)
                dest[nd++] = SRV_AT(srv, L, (int)((kid + sr) % ns), jr);
        }
    }
    if (d < L - 1)
        dest[nd++] = SRV_AT(srv, L, k, (j + 1) % L);
    for (size_t lo = 0; lo < count; lo += x->chunk) {
        size_t cnt = clip(count, lo, x->chunk);
        if (parent < 0) { /* the root */
            if (!inplace)
                ADD(ch, I | O | (nd ? S : 0), nd ? dest[0] : -1, -1, lo, lo, cnt);
            for (int i = inplace ? 0 : 1; i < nd; i++)
                ADD(ch, I | S, dest[i], -1, lo, 0, cnt);
        } else {
            ADD(ch, R | O | (nd ? S : 0), nd ? dest[0] : -1, parent, 0, lo, cnt);
            for (int i = 1; i < nd; i++)
                ADD(ch, I | IO | S, dest[i], -1, lo, 0, cnt);
        }
    }
    return PPU_SUCCESS;
oom:
    ppu_sched_free(s);
    return PPU_SYSTEM_ERROR;
}
