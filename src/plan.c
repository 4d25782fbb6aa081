/* The planner: for each call, the algorithm, protocol, chunk size and
 * channel count, from a cost model of the links (alpha per message hop,
 * beta per link, and the rank's own memory traffic), restricted by
 * PPU_ALGO / PPU_PROTO. A pure function of the plan context (plan_ctx.h)
 * and the call: any rank's schedule, with no communicator behind it. The
 * communicator caches plans by (collective, count, datatype, op, root, in
 * place): a repeated call does no planning.
 *
 * Every algorithm is one descriptor below: its name, the collectives it
 * serves, when it applies, its cost and its builder.
 *
 * PPU_ALGO / PPU_PROTO syntax: a list of names applies to every
 * collective ("ring", "ring,tree"); "coll:names;coll:names" sets them per
 * collective ("allreduce:twoshot;alltoall:ring"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "comm.h"
#include "util/log.h"
#include "plan_ctx.h"

static const char *const coll_names[PPU_NUM_COLLS] = {
    "allreduce", "broadcast", "reduce", "allgather", "reduce_scatter",
    "alltoall", "alltoallv", "send", "recv"};

const char *ppu_coll_name(enum ppu_coll c)
{
    return (unsigned)c < PPU_NUM_COLLS ? coll_names[c] : "?";
}

static const char *const proto_names[PPU_NUM_PROTOS] = {"simple", "ll"};

const char *ppu_proto_name(int p)
{
    return p >= 0 && p < PPU_NUM_PROTOS ? proto_names[p] : "?";
}

#define BIT(a) (1u << (a))

static double ceil_div(double a, double b)
{
    double q = a / b;
    return q <= 1 ? 1 : (double)(size_t)(q + 0.999999);
}

/* ---- costs: predicted time (us) for S bytes (the call's whole buffer;
 * all-gather: the gathered one) ---- */

/* bytes per us of the busiest link of a flat algorithm: across servers a
 * network link when that is slower (every flat algorithm crosses servers
 * on some of its links) */
static double flat_link_bw(const struct ppu_plan_ctx *x, int proto)
{
    const struct ppu_model *m = &x->model;
    double bw = m->link_gbps[proto] * 1e3;
    return x->nservers > 1 && m->net_gbps * 1e3 < bw ? m->net_gbps * 1e3 : bw;
}

/* hops x alpha, plus the slowest of the busiest link's bytes, a chip's
 * bytes over its switch ports (chip_gbps; the sum over its links), and the
 * rank's own copies; across servers net_share of the hops at the
 * network's alpha */
static double flat_time_net(const struct ppu_plan_ctx *x, int proto, double hops,
                            double copies, double link, double chip, double net_share)
{
    const struct ppu_model *m = &x->model;
    double alpha = x->nservers > 1 ? net_share * m->net_alpha_us + (1 - net_share) * m->alpha_us
                                   : m->alpha_us;
    double tl = link / flat_link_bw(x, proto), tm = copies / (m->mem_gbps[proto] * 1e3);
    if (m->chip_gbps > 0 && chip / (m->chip_gbps * 1e3) > tl)
        tl = chip / (m->chip_gbps * 1e3);
    return hops * alpha + (tl > tm ? tl : tm);
}

static double flat_time(const struct ppu_plan_ctx *x, int proto, double hops, double copies,
                        double link, double chip)
{
    return flat_time_net(x, proto, hops, copies, link, chip, 1);
}

/* bytes a message of the algorithm carries */
static double msg_bytes(const struct ppu_plan_ctx *x, int proto, int ring)
{
    return (double)(proto == PPU_PROTO_LL ? x->set.ll_max
                    : ring                ? x->set.chunk_bytes
                                          : x->set.peer_slot);
}

static double cost_ring(const struct ppu_plan_ctx *x, const struct ppu_call *c, int proto,
                        double S)
{
    double nd = x->nranks, k = x->nchannels > 0 ? x->nchannels : 1, m = msg_bytes(x, proto, 1);
    switch (c->coll) {
    case PPU_COLL_ALLREDUCE:
        /* 2(n-1) hops, chunks pipelined behind them; a ring crosses each
         * server once, so of its hops only nservers / n are the
         * network's (on 4,096 chips, pricing all of them so made the
         * ring look 1.5x slower than the replay and took hier) */
        return flat_time_net(x, proto, 2 * (nd - 1) + ceil_div(S, nd * k * m) - 1,
                             4 * S * (nd - 1) / nd,
                             2 * S * (nd - 1) / nd / k * (x->nservers > 1 ? x->ring_net_load : 1),
                             2 * S * (nd - 1) / nd, x->nservers / nd);
    case PPU_COLL_ALLGATHER:
    case PPU_COLL_REDUCE_SCATTER:
        return flat_time(x, proto, (nd - 1) + ceil_div(S, nd * k * m) - 1, 2 * S * (nd - 1) / nd,
                         S * (nd - 1) / nd / k, S * (nd - 1) / nd);
    case PPU_COLL_ALLTOALL: /* the block for the rank p on travels p hops */
        return flat_time(x, proto, nd * (nd - 1) / 2 * ceil_div(S, nd * k * m), S * (nd - 1),
                         S * (nd - 1) / 2 / k, S * (nd - 1) / 2);
    default: /* chains */
        return flat_time(x, proto, (nd - 1) + ceil_div(S, k * m) - 1, 2 * S, S / k, S);
    }
}

static double cost_tree(const struct ppu_plan_ctx *x, const struct ppu_call *c, int proto,
                        double S)
{
    /* Each tree's reduce and broadcast are channels of their own (tree t
     * on lane t), so chunks stream up and down behind each other: one
     * chunk's trip up the slowest path from the root and back, then the
     * busiest link's bytes (a rank with f children takes in and sends out
     * f half-buffers per tree), or the rank's copies if slower. The path's
     * hops inside a server cost the ICN's alpha, not the network's; a
     * hop's chunk time counts a rank's network children (and on switch
     * planes its ICN children) sharing its port. */
    (void)c;
    const struct ppu_model *m = &x->model;
    double f = x->tree_fanout > 2 ? x->tree_fanout : 2, msg = msg_bytes(x, proto, 0);
    double half = S / 2, chunk = half < msg ? half : msg;
    double icn_bw = m->link_gbps[proto] * 1e3, net_bw = flat_link_bw(x, proto);
    double fn = x->tree_net_fanout > 1 ? x->tree_net_fanout : 1;
    double fi = m->chip_gbps > 0 && x->tree_icn_fanout > 1 ? x->tree_icn_fanout : 1;
    double hop = x->tree_path_icn * fi / icn_bw + x->tree_path_net * fn / net_bw;
    /* one message: tree 0 carries it all (ppu_sched_tree_allreduce) */
    double round = x->tree_path_us + (S <= msg ? 2 : 1) * chunk * hop;
    /* a rank's network link takes its network children's chunks going up
     * and its parent's coming down: (fn + 1) halves */
    double link = x->nservers > 1 && fn > 1 ? S * (fn + 1) / 2 : S;
    return 2 * round + flat_time(x, proto, 0, 2 * S * f, link, S * f / 2 + S / 2);
}

static double cost_oneshot(const struct ppu_plan_ctx *x, const struct ppu_call *c, int proto,
                           double S)
{
    (void)c; /* 1 hop; every rank reduces n inputs */
    return flat_time(x, proto, ceil_div(S, msg_bytes(x, proto, 0)), (2.0 * x->nranks - 1) * S, S,
                     S * (x->nranks - 1));
}

static double cost_twoshot(const struct ppu_plan_ctx *x, const struct ppu_call *c, int proto,
                           double S)
{
    (void)c; /* 2 hops a chunk round; all links at once */
    double nd = x->nranks, copies = 4 * S * (nd - 1) / nd;
    double chunks = ceil_div(S, nd * msg_bytes(x, proto, 0));
    /* split (twoshot_split, where links are not copies): a chunk's first
     * shot follows the chunk before's second, one hop a chunk */
    double hops = x->model.link_is_copy ? 2 * chunks : chunks + 1;
    return flat_time(x, proto, hops, copies, 2 * S / nd, 2 * S * (nd - 1) / nd);
}

static double cost_pairwise(const struct ppu_plan_ctx *x, const struct ppu_call *c, int proto,
                            double S)
{
    (void)c; /* every block straight to its rank: all links at once */
    double nd = x->nranks;
    return flat_time(x, proto, ceil_div(S, nd * msg_bytes(x, proto, 0)), 2 * S * (nd - 1) / nd,
                     S / nd, S * (nd - 1) / nd);
}

/* levels below the top of a heap of n nodes with the given fanout */
static double heap_depth(double n, int fanout)
{
    if (fanout <= 1)
        return n - 1;
    double depth = 0, width = 1, held = 1;
    while (held < n) {
        width *= fanout;
        held += width;
        depth++;
    }
    return depth;
}

/* Broadcast on the root's rail (a heap of the fanout over the servers),
 * then a chain inside each server, a chunk at a time: the tree's depth and
 * the chain's length in hops, each chunk sent fanout times by a rail rank. */
static double cost_hier_broadcast(const struct ppu_plan_ctx *x, double S, int fanout)
{
    const struct ppu_model *m = &x->model;
    double L = x->per_server, ns = x->nservers, cp = (double)x->set.peer_slot;
    double f = fanout < 1 ? 1 : fanout, chunks = ceil_div(S, cp);
    double inter = (heap_depth(ns, fanout) + f * chunks - 1) * m->net_alpha_us +
                   S * f / (m->net_gbps * 1e3);
    double intra = (L - 1) * m->alpha_us + 2 * S / (m->mem_gbps[PPU_PROTO_SIMPLE] * 1e3);
    return inter + intra;
}

/* The all-reduce's phases inside a server: a reduce-scatter and an
 * all-gather on each of the server's rings (hier_rings, a piece of every
 * part each), over peer links a chunk at a time. Each
 * phase makes L-1 hops a chunk, and a chunk starts only once the one
 * before has gone round (sim/README.md, finding 1), so the link time is
 * hops x (alpha + chunk / link), or the memory's copies if slower. Before
 * this the link time was left out: on 16,384 chips the planner priced a
 * 2 GB hier all-reduce at about a tenth of what the replay gives (the
 * busiest ICN link carries 2 S (L-1)/L, `ppu-sim --stats`). */
static double hier_inside(const struct ppu_plan_ctx *x, double S)
{
    /* all-reduce runs a slice on each of the server's rings (hier_rings) */
    const struct ppu_model *m = &x->model;
    double K = x->hier_nrings > 0 ? x->hier_nrings : 1;
    double L = x->per_server, cp = (double)x->set.peer_slot, blk = S / K / L;
    double chunk = blk < cp ? blk : cp, hops = 2 * (L - 1) * ceil_div(blk, cp);
    double bw = m->link_gbps[PPU_PROTO_SIMPLE] * 1e3, hop = m->alpha_us + chunk / bw;
    double link = hops * hop, skew = ppu_plan_ring_skew(&x->set);
    if (blk > cp && skew > 1) {
        /* chunks skewed (finding 1): the link's bytes and a chunk's round
         * to fill the pipe, unless the round trips still dominate */
        double busy = hops * chunk / bw + 2 * (L - 1) * hop, rounds = link / skew;
        link = busy > rounds ? busy : rounds;
    }
    double mem = 2 * (L - 1) * m->alpha_us +
                 4 * S * (L - 1) / L / (m->mem_gbps[PPU_PROTO_SIMPLE] * 1e3);
    return link > mem ? link : mem;
}

static double cost_hier(const struct ppu_plan_ctx *x, const struct ppu_call *c, int proto,
                        double S)
{
    (void)proto;
    const struct ppu_model *m = &x->model;
    double L = x->per_server, ns = x->nservers, cp = (double)x->set.peer_slot;
    double net_bw = m->net_gbps * 1e3, mem_bw = m->mem_gbps[PPU_PROTO_SIMPLE] * 1e3;
    if (c->coll == PPU_COLL_ALLTOALL) {
        /* pairwise inside (ns blocks to each mate), then pairwise along
         * the rail (L blocks to each rail peer); S is one rank's buffer */
        double blk = S / x->nranks;
        double intra = (L - 1) * ns * ceil_div(blk, cp) * m->alpha_us +
                       2 * S * (L - 1) / L / mem_bw;
        double inter = (ns - 1) * L * ceil_div(blk, cp) * m->net_alpha_us / (ns > 1 ? ns - 1 : 1) +
                       S * (ns - 1) / ns / net_bw;
        return intra + inter;
    }
    if (c->coll == PPU_COLL_BROADCAST) /* a chain along the root's rail, chains inside */
        return cost_hier_broadcast(x, S, 1);
    if (c->coll != PPU_COLL_ALLREDUCE) { /* a ring per server inside, and a rail ring of blocks */
        double b = S / x->nranks;
        double inter = ((ns - 1) + ceil_div(b, cp) - 1) * m->net_alpha_us + b * (ns - 1) / net_bw;
        double intra = ns * ((L - 1) + ceil_div(b, cp) - 1) * m->alpha_us +
                       2 * S * (L - 1) / L / mem_bw;
        return inter + intra;
    }
    /* ICN reduce-scatter and all-gather around a ring all-reduce of each
     * rank's shard sh along its rail (2(ns-1) hops, then pipelined) */
    double sh = S / L, blk = sh / ns, chunk = blk < cp ? blk : cp;
    double steps = 2 * (ns - 1) * ceil_div(blk, cp);
    double bw = 2 * sh * (ns - 1) / ns / net_bw, rounds = steps * (m->net_alpha_us + chunk / net_bw);
    return hier_inside(x, S) + (rounds > bw ? rounds : bw);
}

static double cost_hier_tree(const struct ppu_plan_ctx *x, const struct ppu_call *c, int proto,
                             double S)
{
    /* the same around two trees of depth D along the rail, each with half
     * the shard, streaming as the flat tree's (cost_tree): one chunk's
     * trip up and down, then the network link's bytes. A rank is inside
     * one tree (two children) and a leaf of the other, so its link takes
     * in and sends out 2 sh (the ring's 2 sh (ns - 1) / ns). */
    (void)proto;
    if (c->coll == PPU_COLL_BROADCAST) /* a binary tree along the root's rail */
        return cost_hier_broadcast(x, S, 2);
    const struct ppu_model *m = &x->model;
    double L = x->per_server, ns = x->nservers, sh = S / L, cp = (double)x->set.peer_slot;
    double intra = hier_inside(x, S);
    double depth = 0;
    for (double w = 1; w < ns + 1; w *= 2)
        depth++; /* levels of a heap of ns: ceil(log2(ns + 1)) */
    double net_bw = m->net_gbps * 1e3, chunk = sh / 2 < cp ? sh / 2 : cp;
    if (sh <= cp) /* one message: tree 0 carries it (ppu_sched_tree_channels) */
        return intra + 2 * (depth - 1) * (m->net_alpha_us + sh / net_bw);
    return intra + 2 * (depth - 1) * (m->net_alpha_us + chunk / net_bw) + 2 * sh / net_bw;
}

static double cost_none(const struct ppu_plan_ctx *x, const struct ppu_call *c, int proto,
                        double S)
{
    (void)x, (void)c, (void)proto, (void)S;
    return 0;
}

/* ---- when an algorithm applies ---- */

static int applies_always(const struct ppu_plan_ctx *x, const struct ppu_call *c)
{
    (void)x, (void)c;
    return 1;
}

/* The ring all-to-all passes each block on hop by hop: a rank lists
 * n(n-1)/2 steps a chunk, and every link carries S(n-1)/2 bytes. Past 512
 * ranks (130,816 steps, 5 MB of schedule a rank) it is no candidate and
 * PPU_ALGO cannot force it: at 16,384 ranks a rank's schedule would hold
 * 134 million steps, gigabytes, for an algorithm the planner never takes
 * there (pairwise and hierarchical move each block once). */
#define RING_ALLTOALL_MAX_RANKS 512

static int applies_ring(const struct ppu_plan_ctx *x, const struct ppu_call *c)
{
    return c->coll != PPU_COLL_ALLTOALL || x->nranks <= RING_ALLTOALL_MAX_RANKS;
}

static int applies_tree(const struct ppu_plan_ctx *x, const struct ppu_call *c)
{
    (void)c; /* its trees' edges are links on any topology */
    return x->nranks > 1;
}

static int applies_mesh(const struct ppu_plan_ctx *x, const struct ppu_call *c)
{
    (void)c; /* direct links to all */
    return x->mesh;
}

/* Across servers, flat pairwise all-to-all holds a network link to every
 * rank of every other server: only for a few servers, or where the
 * servers are uneven and the hierarchical form does not apply. */
#define PAIRWISE_MAX_SERVERS 4

static int applies_pairwise(const struct ppu_plan_ctx *x, const struct ppu_call *c)
{
    /* alltoallv has no ring form: its non-adjacent pairs are staged;
     * across servers an all-to-all's ring would carry blocks over the
     * network again and again, pairwise once each */
    return x->mesh || c->coll == PPU_COLL_ALLTOALLV ||
           (c->coll == PPU_COLL_ALLTOALL && x->nservers > 1 &&
            (x->nservers <= PAIRWISE_MAX_SERVERS || !x->hier_ok));
}

static int applies_hier(const struct ppu_plan_ctx *x, const struct ppu_call *c)
{
    (void)c; /* servers of equal size, more than one */
    return x->hier_ok;
}

/* ---- builders ---- */

/* A rank's place among the servers: srv[k * L + j] is the rank with local
 * index j on server k (the context's table); this rank's server mates and
 * rail are a row and a column of it. O(servers), no scan over the ranks. */
struct servers_view {
    const int *srv, *local;
    int *rail;
};

static ppu_result_t servers_view(const struct ppu_plan_ctx *x, int rank, struct servers_view *v)
{
    int L = x->per_server, ns = x->nservers;
    v->srv = x->srv;
    v->rail = malloc(sizeof *v->rail * (size_t)ns);
    if (!v->rail || !x->srv) {
        free(v->rail);
        return PPU_SYSTEM_ERROR;
    }
    for (int k = 0; k < ns; k++)
        v->rail[k] = x->srv[(size_t)k * L + x->local[rank]];
    v->local = x->srv + (size_t)x->server[rank] * L;
    return PPU_SUCCESS;
}

typedef ppu_result_t (*build_fn)(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                                 const struct ppu_sched_ctx *sx, struct ppu_sched *s);

static ppu_result_t build_ring(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                               const struct ppu_sched_ctx *sx, struct ppu_sched *s)
{
    (void)x;
    switch (c->coll) {
    case PPU_COLL_ALLREDUCE: return ppu_sched_ring_allreduce(s, sx, c->count, c->op);
    case PPU_COLL_BROADCAST: return ppu_sched_chain_broadcast(s, sx, c->count, c->root, c->inplace);
    case PPU_COLL_REDUCE: return ppu_sched_chain_reduce(s, sx, c->count, c->op, c->root);
    case PPU_COLL_ALLGATHER: return ppu_sched_ring_allgather(s, sx, c->count);
    case PPU_COLL_REDUCE_SCATTER: return ppu_sched_ring_reduce_scatter(s, sx, c->count, c->op);
    case PPU_COLL_ALLTOALL: return ppu_sched_ring_alltoall(s, sx, c->count);
    default: return PPU_INVALID_USAGE;
    }
}

static ppu_result_t build_tree(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                               const struct ppu_sched_ctx *sx, struct ppu_sched *s)
{
    int n = x->nranks, r = sx->rank, up[2], nkids[2];
    const int *kids[2];
    for (int t = 0; t < 2; t++) {
        const int *at = x->tree_kid_at + (size_t)t * (n + 1);
        up[t] = x->tree_parent[(size_t)t * n + r];
        kids[t] = x->tree_kids + at[r];
        nkids[t] = at[r + 1] - at[r];
    }
    return ppu_sched_tree_allreduce(s, sx, c->count, c->op, up, kids, nkids);
}

static ppu_result_t build_oneshot(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                                  const struct ppu_sched_ctx *sx, struct ppu_sched *s)
{
    (void)x;
    return ppu_sched_oneshot_allreduce(s, sx, c->count, c->op);
}

static ppu_result_t build_twoshot(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                                  const struct ppu_sched_ctx *sx, struct ppu_sched *s)
{
    (void)x;
    return ppu_sched_twoshot_allreduce(s, sx, c->count, c->op);
}

static ppu_result_t build_pairwise(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                                   const struct ppu_sched_ctx *sx, struct ppu_sched *s)
{
    size_t n = (size_t)x->nranks;
    switch (c->coll) {
    case PPU_COLL_ALLGATHER: return ppu_sched_direct_allgather(s, sx, c->count);
    case PPU_COLL_REDUCE_SCATTER: return ppu_sched_direct_reduce_scatter(s, sx, c->count, c->op);
    case PPU_COLL_ALLTOALL:
        return ppu_sched_pairwise_alltoall(s, sx, c->count, NULL, NULL, NULL, NULL);
    case PPU_COLL_ALLTOALLV:
        return ppu_sched_pairwise_alltoall(s, sx, 0, c->v, c->v + n, c->v + 2 * n, c->v + 3 * n);
    default: return PPU_INVALID_USAGE;
    }
}

/* Hierarchical all-reduce on the server's rings (plan_ctx.h hier_rings). */
static ppu_result_t hier_allreduce(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                                   const struct ppu_sched_ctx *sx, struct ppu_sched *s,
                                   const struct servers_view *v, int tree)
{
    return ppu_sched_hier_allreduce(s, sx, c->count, c->op, v->local, x->per_server,
                                    x->hier_rings, x->hier_nrings, v->rail, x->nservers, tree);
}

static ppu_result_t build_hier(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                               const struct ppu_sched_ctx *sx, struct ppu_sched *s)
{
    struct servers_view v;
    PPU_CHECK(servers_view(x, sx->rank, &v));
    int L = x->per_server, ns = x->nservers;
    ppu_result_t r = PPU_INVALID_USAGE;
    if (c->coll == PPU_COLL_ALLREDUCE) {
        r = hier_allreduce(x, c, sx, s, &v, 0);
    } else if (c->coll == PPU_COLL_ALLGATHER) {
        r = ppu_sched_hier_allgather(s, sx, c->count, v.local, L, v.rail, ns, v.srv);
    } else if (c->coll == PPU_COLL_ALLTOALL) {
        r = ppu_sched_hier_alltoall(s, sx, c->count, v.local, L, v.rail, ns, v.srv);
        if (r == PPU_SUCCESS)
            s->tmp_bytes = 3 * (size_t)x->nranks * c->count * ppu_datatype_size(c->datatype);
    } else if (c->coll == PPU_COLL_BROADCAST) {
        r = ppu_sched_hier_broadcast(s, sx, c->count, c->root, c->inplace, v.srv, L, ns,
                                     x->server, x->local, 1);
    } else if (c->coll == PPU_COLL_REDUCE_SCATTER) {
        /* with its temporary of nservers blocks a run */
        r = ppu_sched_hier_reduce_scatter(s, sx, c->count, c->op, v.local, L, v.rail, ns, v.srv);
        if (r == PPU_SUCCESS)
            s->tmp_bytes = (size_t)ns * c->count * ppu_datatype_size(c->datatype);
    }
    free(v.rail);
    return r;
}

static ppu_result_t build_hier_tree(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                                    const struct ppu_sched_ctx *sx, struct ppu_sched *s)
{
    if (c->coll == PPU_COLL_BROADCAST)
        return ppu_sched_hier_broadcast(s, sx, c->count, c->root, c->inplace, x->srv,
                                        x->per_server, x->nservers, x->server, x->local, 2);
    struct servers_view v;
    PPU_CHECK(servers_view(x, sx->rank, &v));
    ppu_result_t r = hier_allreduce(x, c, sx, s, &v, 1);
    free(v.rail);
    return r;
}

static ppu_result_t build_direct(const struct ppu_plan_ctx *x, const struct ppu_call *c,
                                 const struct ppu_sched_ctx *sx, struct ppu_sched *s)
{
    (void)x, (void)c, (void)sx, (void)s;
    return PPU_INVALID_USAGE; /* sends and receives are planned as a group (ppu_plan_p2p) */
}

/* ---- the algorithms ---- */

struct algo_desc {
    const char *name;
    unsigned colls; /* BIT(enum ppu_coll) of the collectives it serves */
    int ring_links; /* 1: messages on the channels' rings (chunk_bytes, PPU_CHANNEL_MIN_BYTES) */
    int (*applies)(const struct ppu_plan_ctx *x, const struct ppu_call *c);
    double (*cost)(const struct ppu_plan_ctx *x, const struct ppu_call *c, int proto, double S);
    build_fn build;
};

static const struct algo_desc algos[PPU_NUM_ALGOS] = {
    [PPU_ALGO_RING] = {.name = "ring",
                       .colls = BIT(PPU_COLL_ALLREDUCE) | BIT(PPU_COLL_BROADCAST) |
                                BIT(PPU_COLL_REDUCE) | BIT(PPU_COLL_ALLGATHER) |
                                BIT(PPU_COLL_REDUCE_SCATTER) | BIT(PPU_COLL_ALLTOALL),
                       .ring_links = 1, .applies = applies_ring, .cost = cost_ring,
                       .build = build_ring},
    [PPU_ALGO_TREE] = {.name = "tree", .colls = BIT(PPU_COLL_ALLREDUCE),
                       .applies = applies_tree, .cost = cost_tree, .build = build_tree},
    [PPU_ALGO_ONESHOT] = {.name = "oneshot", .colls = BIT(PPU_COLL_ALLREDUCE),
                          .applies = applies_mesh, .cost = cost_oneshot, .build = build_oneshot},
    [PPU_ALGO_TWOSHOT] = {.name = "twoshot", .colls = BIT(PPU_COLL_ALLREDUCE),
                          .applies = applies_mesh, .cost = cost_twoshot, .build = build_twoshot},
    [PPU_ALGO_PAIRWISE] = {.name = "pairwise",
                           .colls = BIT(PPU_COLL_ALLGATHER) | BIT(PPU_COLL_REDUCE_SCATTER) |
                                    BIT(PPU_COLL_ALLTOALL) | BIT(PPU_COLL_ALLTOALLV),
                           .applies = applies_pairwise, .cost = cost_pairwise,
                           .build = build_pairwise},
    [PPU_ALGO_DIRECT] = {.name = "direct", .colls = BIT(PPU_COLL_SEND) | BIT(PPU_COLL_RECV),
                         .applies = applies_always, .cost = cost_none, .build = build_direct},
    [PPU_ALGO_HIER] = {.name = "hier",
                       .colls = BIT(PPU_COLL_ALLREDUCE) | BIT(PPU_COLL_ALLGATHER) |
                                BIT(PPU_COLL_REDUCE_SCATTER) | BIT(PPU_COLL_ALLTOALL) |
                                BIT(PPU_COLL_BROADCAST),
                       .applies = applies_hier, .cost = cost_hier, .build = build_hier},
    [PPU_ALGO_HIER_TREE] = {.name = "hiertree",
                            .colls = BIT(PPU_COLL_ALLREDUCE) | BIT(PPU_COLL_BROADCAST),
                            .applies = applies_hier, .cost = cost_hier_tree,
                            .build = build_hier_tree},
};

const char *ppu_algo_name(int a)
{
    return a >= 0 && a < PPU_NUM_ALGOS ? algos[a].name : "?";
}

/* ---- PPU_ALGO / PPU_PROTO ---- */

static int lookup(const char *name, size_t len, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && !strncmp(names[i], name, len))
            return i;
    return -1;
}

/* Parse one PPU_ALGO / PPU_PROTO value into per-collective masks. */
static ppu_result_t parse_masks(const char *var, const char *val, const char *const *names,
                                int nnames, unsigned *mask, char *err, size_t errlen)
{
    for (int c = 0; c < PPU_NUM_COLLS; c++)
        mask[c] = 0;
    const char *p = val;
    while (*p) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        int coll = -1;
        const char *list = p;
        size_t llen = len;
        if (colon) {
            coll = lookup(p, (size_t)(colon - p), coll_names, PPU_NUM_COLLS);
            if (coll < 0) {
                snprintf(err, errlen, "%s=%s: '%.*s' is not a collective (allreduce, broadcast, "
                         "reduce, allgather, reduce_scatter, alltoall, alltoallv, send, recv)",
                         var, val, (int)(colon - p), p);
                return PPU_INVALID_ARGUMENT;
            }
            list = colon + 1;
            llen = len - (size_t)(colon - p) - 1;
        }
        unsigned m = 0;
        while (llen > 0) {
            const char *comma = memchr(list, ',', llen);
            size_t n = comma ? (size_t)(comma - list) : llen;
            int a = lookup(list, n, names, nnames);
            if (a < 0) {
                snprintf(err, errlen, "%s=%s: '%.*s' is not one of its names", var, val, (int)n,
                         list);
                return PPU_INVALID_ARGUMENT;
            }
            m |= BIT(a);
            list += n + (comma ? 1 : 0);
            llen -= n + (comma ? 1 : 0);
        }
        for (int c = 0; c < PPU_NUM_COLLS; c++)
            if (coll < 0 || c == coll)
                mask[c] = m;
        p += len + (end ? 1 : 0);
    }
    return PPU_SUCCESS;
}

ppu_result_t ppu_plan_parse_masks(struct ppu_plan_settings *set, const char *algo,
                                  const char *proto, int rank, char *err, size_t errlen)
{
    const char *an[PPU_NUM_ALGOS], *pn[PPU_NUM_PROTOS];
    for (int i = 0; i < PPU_NUM_ALGOS; i++)
        an[i] = algos[i].name;
    for (int i = 0; i < PPU_NUM_PROTOS; i++)
        pn[i] = proto_names[i];
    ppu_result_t r = parse_masks("PPU_ALGO", algo, an, PPU_NUM_ALGOS, set->algo_mask, err, errlen);
    if (r == PPU_SUCCESS)
        r = parse_masks("PPU_PROTO", proto, pn, PPU_NUM_PROTOS, set->proto_mask, err, errlen);
    if (r != PPU_SUCCESS)
        return r;
    /* A name that names no algorithm of a collective it was given for is
     * an error when the collective was named, a logged fallback otherwise. */
    for (int c = 0; c < PPU_NUM_COLLS; c++) {
        unsigned m = set->algo_mask[c], serves = 0;
        for (int a = 0; a < PPU_NUM_ALGOS; a++)
            serves |= algos[a].colls & BIT(c) ? BIT(a) : 0;
        if (!m || (m & serves))
            continue;
        if (strchr(algo, ':') && strstr(algo, coll_names[c])) {
            snprintf(err, errlen, "PPU_ALGO=%s: no algorithm named for %s applies to it", algo,
                     coll_names[c]);
            return PPU_INVALID_ARGUMENT;
        }
        if (rank == 0)
            PPU_INFO(PPU_SUB_COLL, "PPU_ALGO=%s names no algorithm of %s; it chooses freely",
                     algo, coll_names[c]);
        set->algo_mask[c] = 0;
    }
    return PPU_SUCCESS;
}

/* ---- choosing and building ---- */

int ppu_plan_applies(const struct ppu_plan_ctx *x, const struct ppu_call *c, int algo)
{
    return algo >= 0 && algo < PPU_NUM_ALGOS && (algos[algo].colls & BIT(c->coll)) &&
           algos[algo].applies(x, c);
}

size_t ppu_plan_call_bytes(const struct ppu_plan_ctx *x, const struct ppu_call *c)
{
    size_t b = c->count * ppu_datatype_size(c->datatype);
    if (c->coll == PPU_COLL_ALLGATHER || c->coll == PPU_COLL_REDUCE_SCATTER ||
        c->coll == PPU_COLL_ALLTOALL)
        b *= (size_t)x->nranks;
    return b;
}

void ppu_plan_choose(const struct ppu_plan_ctx *x, const struct ppu_call *c, int *algo,
                     int *proto, char *why, size_t wlen)
{
    double S = (double)ppu_plan_call_bytes(x, c), best = -1;
    unsigned am = x->set.algo_mask[c->coll], pm = x->set.proto_mask[c->coll];
    size_t per_msg = x->nranks > 1 ? (size_t)S / (size_t)x->nranks : 0;
    *algo = PPU_ALGO_RING;
    *proto = PPU_PROTO_SIMPLE;
    size_t o = 0;
    why[0] = '\0';
    for (int al = 0; al < PPU_NUM_ALGOS; al++) {
        if ((am && !(am & BIT(al))) || !ppu_plan_applies(x, c, al))
            continue;
        /* one-shot's n-fold reduce: only up to PPU_ONESHOT_MAX_BYTES,
         * unless PPU_ALGO names it */
        if (al == PPU_ALGO_ONESHOT && !am && S > (double)x->set.oneshot_max)
            continue;
        /* Two ranks one hop apart: the ring is two-shot's exchange (each
         * rank reduces half and sends it back) over ring FIFOs, and the
         * model prices them within 1% of each other, but on the test host
         * (PPU_ALGO forced, 2026-12-06) two-shot ran 1.3-1.9x faster at
         * every size from 32 KB to 128 MB and one-shot or two-shot beat
         * the ring from 1 KB to 32 KB. So the ring is no candidate there
         * unless PPU_ALGO names it. */
        if (al == PPU_ALGO_RING && !am && c->coll == PPU_COLL_ALLREDUCE && x->nranks == 2 &&
            ppu_plan_applies(x, c, PPU_ALGO_TWOSHOT))
            continue;
        for (int pr = 0; pr < PPU_NUM_PROTOS; pr++) {
            if (pm && !(pm & BIT(pr)))
                continue;
            /* LL: messages that fit one low-latency slot. Not alltoallv:
             * its sizes differ by rank, and every rank must cut messages
             * the same way */
            if (pr == PPU_PROTO_LL && (per_msg > x->set.ll_max || !x->set.ll_max ||
                                       c->coll == PPU_COLL_ALLTOALLV))
                continue;
            double t = algos[al].cost(x, c, pr, S);
            if (t < 0)
                continue;
            if (o < wlen)
                o += (size_t)snprintf(why + o, wlen - o, "%s%s/%s %.1fus", o ? ", " : "",
                                      algos[al].name, proto_names[pr], t);
            if (best < 0 || t < best) {
                best = t;
                *algo = al;
                *proto = pr;
            }
        }
    }
    if (best < 0) {
        /* what was asked for does not apply: say so, use what does */
        snprintf(why, wlen, "PPU_ALGO/PPU_PROTO allow nothing that applies to %s here "
                 "(%s); falling back to the default", ppu_coll_name(c->coll),
                 x->mesh ? "mesh" : "ranks are not all one hop apart");
        PPU_INFO(PPU_SUB_COLL, "%s", why);
        *algo = c->coll == PPU_COLL_ALLTOALLV ? PPU_ALGO_PAIRWISE : PPU_ALGO_RING;
        *proto = PPU_PROTO_SIMPLE;
    }
}

ppu_result_t ppu_plan_build(const struct ppu_plan_ctx *x, const struct ppu_call *c, int rank,
                            int algo, int proto, struct ppu_sched *s)
{
    if (rank < 0 || rank >= x->nranks || !ppu_plan_applies(x, c, algo) || proto < 0 ||
        proto >= PPU_NUM_PROTOS)
        return PPU_INVALID_USAGE;
    size_t es = ppu_datatype_size(c->datatype);
    struct ppu_sched_ctx sx = {rank, x->nranks, x->nchannels, x->rings, 0, x->ring_pos,
                               ppu_plan_ring_skew(&x->set), !x->model.link_is_copy};
    const struct algo_desc *d = &algos[algo];
    size_t msg = d->ring_links ? x->set.chunk_bytes : x->set.peer_slot;
    if (proto == PPU_PROTO_LL && x->set.ll_max < msg)
        msg = x->set.ll_max;
    sx.chunk = msg / es ? msg / es : 1;
    /* Small calls on fewer rings: a channel costs its hops whatever its
     * size, so each must carry at least PPU_CHANNEL_MIN_BYTES. */
    if (d->ring_links) {
        size_t per = x->set.channel_min_bytes ? x->set.channel_min_bytes : 1;
        size_t want = (ppu_plan_call_bytes(x, c) + per - 1) / per;
        if (want < (size_t)sx.nrings)
            sx.nrings = want ? (int)want : 1;
    }
    PPU_CHECK(d->build(x, c, &sx, s));
    s->algo = algo;
    s->proto = proto;
    s->esize = es;
    return PPU_SUCCESS;
}

void ppu_plan_free(struct ppu_comm *comm)
{
    for (int i = 0; i < PPU_PLAN_CACHE; i++)
        if (comm->plans[i].valid) {
            ppu_sched_free(&comm->plans[i].sched);
            comm->plans[i].valid = 0;
        }
}

ppu_result_t ppu_plan_get(struct ppu_comm *comm, const struct ppu_coll_args *a,
                          struct ppu_sched *owned, const struct ppu_sched **out)
{
    int inplace = a->sendbuf == a->recvbuf;
    int cached = a->coll != PPU_COLL_ALLTOALLV;
    comm->plan_clock++;
    struct ppu_plan *slot = NULL;
    if (cached) {
        for (int i = 0; i < PPU_PLAN_CACHE; i++) {
            struct ppu_plan *p = &comm->plans[i];
            if (p->valid && p->coll == a->coll && p->count == a->count &&
                p->datatype == a->datatype && p->op == a->op && p->root == a->root &&
                p->inplace == inplace) {
                p->used = comm->plan_clock;
                *out = &p->sched;
                return PPU_SUCCESS;
            }
            /* the slot to fill on a miss: a free one, else the least recently used */
            if (!slot || (slot->valid && (!p->valid || p->used < slot->used)))
                slot = p;
        }
    }
    struct ppu_call call = {a->coll, a->count, a->datatype, a->op, a->root, inplace, a->v};
    int algo, proto;
    char why[400];
    ppu_plan_choose(&comm->plan, &call, &algo, &proto, why, sizeof why);
    struct ppu_sched *s = owned;
    if (cached) {
        if (slot->valid)
            ppu_sched_free(&slot->sched);
        slot->valid = 0;
        s = &slot->sched;
    }
    ppu_result_t r = ppu_plan_build(&comm->plan, &call, comm->rank, algo, proto, s);
    if (r != PPU_SUCCESS)
        return ppu_fail(comm, r, "rank %d: cannot build the %s schedule for %s", comm->rank,
                        ppu_algo_name(algo), ppu_coll_name(a->coll));
    PPU_INFO(PPU_SUB_COLL, "%s count=%zu %s %s root=%d: %s/%s, %d channel(s), %zu steps "
             "(model: %s)", ppu_coll_name(a->coll), a->count, ppu_datatype_name(a->datatype),
             ppu_redop_name(a->op), a->root, ppu_algo_name(algo), ppu_proto_name(proto),
             s->nchannels, ppu_sched_nsteps(s), why);
    if (cached) {
        slot->valid = 1;
        slot->coll = a->coll;
        slot->count = a->count;
        slot->datatype = a->datatype;
        slot->op = a->op;
        slot->root = a->root;
        slot->inplace = inplace;
        slot->used = comm->plan_clock;
    }
    *out = s;
    return PPU_SUCCESS;
}

/* Sends and receives of one group on one communicator: a channel per op;
 * ops on the same link (same peer, same direction) run one after the
 * other, in the order they were issued; a send to self is paired with
 * the receive from self of the same turn. Steps count bytes. */
ppu_result_t ppu_plan_p2p(struct ppu_comm *comm, struct ppu_coll_args *const *ops, int n,
                          struct ppu_sched *s)
{
    PPU_CHECK(ppu_sched_init(s, n, PPU_ALGO_DIRECT));
    s->esize = 1;
    s->proto = PPU_PROTO_SIMPLE;
    size_t chunk = comm->plan.set.peer_slot;
    int nself_s = 0, nself_r = 0;
    for (int i = 0; i < n; i++) {
        const struct ppu_coll_args *a = ops[i];
        struct ppu_sched_channel *ch = &s->ch[i];
        size_t nb = a->count * ppu_datatype_size(a->datatype);
        int peer = a->root, send = a->coll == PPU_COLL_SEND;
        if (peer == comm->rank) {
            if (send)
                nself_s++;
            else
                nself_r++;
            continue;
        }
        /* after the group's last earlier op on the same link */
        for (int j = i - 1; j >= 0 && ch->after < 0; j--)
            if (ops[j]->root == peer && ops[j]->coll == a->coll)
                ch->after = j;
        if (send)
            ch->in = a->sendbuf;
        else
            ch->out = a->recvbuf;
        for (size_t lo = 0; lo < nb; lo += chunk) {
            size_t c = nb - lo < chunk ? nb - lo : chunk;
            ppu_result_t r = send ? ppu_sched_add(ch, PPU_STEP_INPUT | PPU_STEP_SEND, peer, -1, lo, 0, c)
                                  : ppu_sched_add(ch, PPU_STEP_RECV | PPU_STEP_OUTPUT, -1, peer, 0, lo, c);
            if (r != PPU_SUCCESS) {
                ppu_sched_free(s);
                return ppu_fail(comm, r, "rank %d: out of memory planning sends", comm->rank);
            }
        }
    }
    if (nself_s != nself_r) {
        ppu_sched_free(s);
        return ppu_fail(comm, PPU_INVALID_USAGE,
                        "rank %d: %d send(s) to itself but %d receive(s) from itself in one group",
                        comm->rank, nself_s, nself_r);
    }
    /* self: the k-th send meets the k-th receive */
    for (int i = 0, j = 0; i < n; i++) {
        if (ops[i]->root != comm->rank || ops[i]->coll != PPU_COLL_SEND)
            continue;
        while (ops[j]->root != comm->rank || ops[j]->coll != PPU_COLL_RECV)
            j++;
        size_t nb = ops[i]->count * ppu_datatype_size(ops[i]->datatype);
        size_t nr = ops[j]->count * ppu_datatype_size(ops[j]->datatype);
        if (nb != nr) {
            ppu_sched_free(s);
            return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                            "rank %d sends %zu bytes to itself but receives %zu", comm->rank, nb, nr);
        }
        s->ch[i].in = ops[i]->sendbuf;
        s->ch[i].out = ops[j]->recvbuf;
        if (ppu_sched_add(&s->ch[i], PPU_STEP_INPUT | PPU_STEP_OUTPUT, -1, -1, 0, 0, nb) != PPU_SUCCESS) {
            ppu_sched_free(s);
            return PPU_SYSTEM_ERROR;
        }
        j++;
    }
    return PPU_SUCCESS;
}
