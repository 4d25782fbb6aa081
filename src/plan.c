/* The planner: for each call, the algorithm, protocol, chunk size and
 * channel count, from a cost model of the links (alpha per message hop,
 * beta per link, and the rank's own memory traffic), restricted by
 * PPU_ALGO / PPU_PROTO. Plans are cached per communicator by (collective,
 * count, datatype, op, root, in place): a repeated call does no planning.
 *
 * PPU_ALGO / PPU_PROTO syntax: a list of names applies to every
 * collective ("ring", "ring,tree"); "coll:names;coll:names" sets them per
 * collective ("allreduce:twoshot;alltoall:ring"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "comm.h"
#include "log.h"
#include "param.h"

static const char *const coll_names[PPU_NUM_COLLS] = {
    "allreduce", "broadcast", "reduce", "allgather", "reduce_scatter",
    "alltoall", "alltoallv", "send", "recv"};

const char *ppu_coll_name(enum ppu_coll c)
{
    return (unsigned)c < PPU_NUM_COLLS ? coll_names[c] : "?";
}

#define BIT(a) (1u << (a))
/* What each collective has: the algorithms a user may name for it. */
static const unsigned coll_algos[PPU_NUM_COLLS] = {
    [PPU_COLL_ALLREDUCE] = BIT(PPU_ALGO_RING) | BIT(PPU_ALGO_TREE) | BIT(PPU_ALGO_ONESHOT) |
                           BIT(PPU_ALGO_TWOSHOT) | BIT(PPU_ALGO_HIER) | BIT(PPU_ALGO_HIER_TREE),
    [PPU_COLL_BROADCAST] = BIT(PPU_ALGO_RING),
    [PPU_COLL_REDUCE] = BIT(PPU_ALGO_RING),
    [PPU_COLL_ALLGATHER] = BIT(PPU_ALGO_RING) | BIT(PPU_ALGO_PAIRWISE) | BIT(PPU_ALGO_HIER),
    [PPU_COLL_REDUCE_SCATTER] = BIT(PPU_ALGO_RING) | BIT(PPU_ALGO_PAIRWISE) | BIT(PPU_ALGO_HIER),
    [PPU_COLL_ALLTOALL] = BIT(PPU_ALGO_RING) | BIT(PPU_ALGO_PAIRWISE),
    [PPU_COLL_ALLTOALLV] = BIT(PPU_ALGO_PAIRWISE),
    [PPU_COLL_SEND] = BIT(PPU_ALGO_DIRECT),
    [PPU_COLL_RECV] = BIT(PPU_ALGO_DIRECT),
};

static int lookup(const char *name, size_t len, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && !strncmp(names[i], name, len))
            return i;
    return -1;
}

/* Parse one PPU_ALGO / PPU_PROTO value into per-collective masks. */
static ppu_result_t parse_masks(struct ppu_comm *comm, const char *var, const char *val,
                                const char *const *names, int nnames, unsigned *mask)
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
            if (coll < 0)
                return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                                "%s=%s: '%.*s' is not a collective (allreduce, broadcast, reduce, "
                                "allgather, reduce_scatter, alltoall, alltoallv, send, recv)",
                                var, val, (int)(colon - p), p);
            list = colon + 1;
            llen = len - (size_t)(colon - p) - 1;
        }
        unsigned m = 0;
        while (llen > 0) {
            const char *comma = memchr(list, ',', llen);
            size_t n = comma ? (size_t)(comma - list) : llen;
            int a = lookup(list, n, names, nnames);
            if (a < 0)
                return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s=%s: '%.*s' is not one of its names",
                                var, val, (int)n, list);
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

ppu_result_t ppu_plan_init(struct ppu_comm *comm)
{
    return ppu_plan_parse(comm, ppu_param_str(PPU_P_ALGO), ppu_param_str(PPU_P_PROTO));
}

ppu_result_t ppu_plan_parse(struct ppu_comm *comm, const char *algo, const char *proto)
{
    const char *an[PPU_NUM_ALGOS], *pn[PPU_NUM_PROTOS];
    for (int i = 0; i < PPU_NUM_ALGOS; i++)
        an[i] = ppu_algo_name(i);
    for (int i = 0; i < PPU_NUM_PROTOS; i++)
        pn[i] = ppu_proto_name(i);
    PPU_CHECK(parse_masks(comm, "PPU_ALGO", algo, an, PPU_NUM_ALGOS, comm->algo_mask));
    PPU_CHECK(parse_masks(comm, "PPU_PROTO", proto, pn, PPU_NUM_PROTOS, comm->proto_mask));
    /* A name that names no algorithm of a collective it was given for is
     * an error when the collective was named, a logged fallback otherwise. */
    for (int c = 0; c < PPU_NUM_COLLS; c++) {
        unsigned m = comm->algo_mask[c];
        if (!m || (m & coll_algos[c]))
            continue;
        if (strchr(algo, ':') && strstr(algo, coll_names[c]))
            return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                            "PPU_ALGO=%s: no algorithm named for %s applies to it", algo,
                            coll_names[c]);
        if (comm->rank == 0)
            PPU_INFO(PPU_SUB_COLL, "PPU_ALGO=%s names no algorithm of %s; it chooses freely",
                     algo, coll_names[c]);
        comm->algo_mask[c] = 0;
    }
    return PPU_SUCCESS;
}

void ppu_plan_model(struct ppu_comm *comm, int local_ranks, int cores)
{
    /* The links of this build are simulated in host shared memory, so the
     * model describes them as measured on the 2-core test host (see the
     * issue 3 note): one hop ~0.25 us between processes when every rank
     * has a core, ~5 us x oversubscription when ranks take turns on cores;
     * copies ~16 GB/s a rank, shared when oversubscribed; an LL word
     * moves 4 bytes, ~1 GB/s. A link is a copy here, so its bandwidth is
     * the memory's. A hardware transport would give the topology's ICN
     * figures (link_gbps, link_latency_us) instead. */
    double over = cores > 0 && local_ranks > cores ? (double)local_ranks / cores : 1.0;
    struct ppu_model *m = &comm->model;
    m->alpha_us = over > 1 ? 5.0 * over : 0.25;
    m->mem_gbps[PPU_PROTO_SIMPLE] = 16.0 / over;
    m->mem_gbps[PPU_PROTO_LL] = 1.0 / over;
    for (int p = 0; p < PPU_NUM_PROTOS; p++)
        m->link_gbps[p] = m->mem_gbps[p];
    /* Between (simulated) servers the socket transport: a message costs a
     * system call or two on each side and a wake-up of the progress thread
     * (~30 us measured on loopback), and a TCP stream moves ~1.5 GB/s on
     * this host, less when ranks share cores. */
    m->net_alpha_us = 30.0 * over;
    m->net_gbps = 1.5 / over;
}

void ppu_plan_servers(struct ppu_comm *comm)
{
    const struct ppu_topo *t = &comm->topo;
    int n = comm->nranks, me = comm->rank, sv = t->server[me];
    int count[PPU_TOPO_MAX_CHIPS] = {0}, ids[PPU_TOPO_MAX_CHIPS], nids = 0;
    for (int r = 0; r < n; r++) {
        int k = 0;
        while (k < nids && ids[k] != t->server[r])
            k++;
        if (k == nids)
            ids[nids++] = t->server[r];
        count[k]++;
    }
    comm->nservers = nids;
    comm->per_server = count[0];
    /* one rank a server: hier would be a plain ring on staged peer links */
    comm->hier_ok = nids > 1 && count[0] > 1;
    for (int k = 0; k < nids; k++)
        comm->hier_ok &= count[k] == count[0];
    if (!comm->hier_ok)
        return;
    int mine = 0, j = 0;
    for (int r = 0; r < n; r++)
        if (t->server[r] == sv) {
            if (r == me)
                j = mine;
            comm->local[mine++] = r;
        }
    /* rail j: the j-th rank (in rank order) of every server, servers in
     * the order they first appear */
    for (int k = 0; k < nids; k++) {
        int seen = 0;
        for (int r = 0; r < n; r++)
            if (t->server[r] == ids[k] && seen++ == j)
                comm->rail[k] = r;
    }
}

/* srv[k][j]: the rank with local index j (rank order) on server k (servers
 * in the order they first appear, as rail[]). */
static void server_table(const struct ppu_comm *comm, int srv[][64])
{
    const struct ppu_topo *t = &comm->topo;
    int ids[PPU_TOPO_MAX_CHIPS], nids = 0, seen[PPU_TOPO_MAX_CHIPS] = {0};
    for (int r = 0; r < comm->nranks; r++) {
        int k = 0;
        while (k < nids && ids[k] != t->server[r])
            k++;
        if (k == nids)
            ids[nids++] = t->server[r];
        if (k < 64 && seen[k] < 64)
            srv[k][seen[k]++] = r;
    }
}

void ppu_plan_free(struct ppu_comm *comm)
{
    for (int i = 0; i < PPU_PLAN_CACHE; i++)
        if (comm->plans[i].valid) {
            ppu_sched_free(&comm->plans[i].sched);
            comm->plans[i].valid = 0;
        }
}

static double ceil_div(double a, double b)
{
    double q = a / b;
    return q <= 1 ? 1 : (double)(size_t)(q + 0.999999);
}

/* Predicted time (us) of an algorithm for S bytes on n ranks: hops x
 * alpha, plus the slower of the busiest link's bytes and the rank's own
 * copies. S is the call's whole buffer (all-gather: the gathered one). */
static double cost(const struct ppu_comm *comm, enum ppu_coll coll, int algo, int proto,
                   double S, int n)
{
    const struct ppu_model *m = &comm->model;
    double nd = n, k = comm->nchannels > 0 ? comm->nchannels : 1;
    double c = (double)(proto == PPU_PROTO_LL ? comm->ll_max
                        : algo == PPU_ALGO_RING ? comm->chunk_bytes : comm->peer_slot);
    double hops, copies, link;
    switch (coll) {
    case PPU_COLL_ALLREDUCE:
        switch (algo) {
        case PPU_ALGO_RING: /* 2(n-1) hops, chunks pipelined behind them */
            hops = 2 * (nd - 1) + ceil_div(S, nd * k * c) - 1;
            copies = 4 * S * (nd - 1) / nd;
            link = 2 * S * (nd - 1) / nd / k;
            break;
        case PPU_ALGO_TWOSHOT: /* 2 hops a chunk round; all links at once */
            hops = 2 * ceil_div(S, nd * c);
            copies = 4 * S * (nd - 1) / nd;
            link = 2 * S / nd;
            break;
        case PPU_ALGO_ONESHOT: /* 1 hop; every rank reduces n inputs */
            hops = ceil_div(S, c);
            copies = (2 * nd - 1) * S;
            link = S;
            break;
        default: /* tree: up and down, a chunk at a time; a rank with f
                  * children takes in and sends out f half-buffers per tree */
            hops = 2 * comm->tree_depth * ceil_div(S / 2, c);
            copies = 2 * S * (comm->tree_fanout > 2 ? comm->tree_fanout : 2);
            link = S;
            break;
        }
        break;
    case PPU_COLL_ALLGATHER:
    case PPU_COLL_REDUCE_SCATTER:
        if (algo == PPU_ALGO_HIER) { /* a ring per server inside, and a rail ring of blocks */
            double L = comm->per_server, ns = comm->nservers, b = S / nd;
            double cp = (double)comm->peer_slot;
            double inter = ((ns - 1) + ceil_div(b, cp) - 1) * m->net_alpha_us +
                           b * (ns - 1) / (m->net_gbps * 1e3);
            double intra = ns * ((L - 1) + ceil_div(b, cp) - 1) * m->alpha_us +
                           2 * S * (L - 1) / L / (m->mem_gbps[0] * 1e3);
            return inter + intra;
        }
        hops = algo == PPU_ALGO_RING ? (nd - 1) + ceil_div(S, nd * k * c) - 1 : ceil_div(S, nd * c);
        copies = 2 * S * (nd - 1) / nd;
        link = algo == PPU_ALGO_RING ? S * (nd - 1) / nd / k : S / nd;
        break;
    case PPU_COLL_ALLTOALL:
        if (algo == PPU_ALGO_RING) { /* the block for the rank p on travels p hops */
            hops = nd * (nd - 1) / 2 * ceil_div(S, nd * k * c);
            copies = S * (nd - 1);
            link = S * (nd - 1) / 2 / k;
        } else {
            hops = ceil_div(S, nd * c);
            copies = 2 * S * (nd - 1) / nd;
            link = S / nd;
        }
        break;
    default: /* chains */
        hops = (nd - 1) + ceil_div(S, k * c) - 1;
        copies = 2 * S;
        link = S / k;
        break;
    }
    double bw_link = m->link_gbps[proto] * 1e3, bw_mem = m->mem_gbps[proto] * 1e3; /* B/us */
    double alpha = m->alpha_us;
    if (comm->nservers > 1) {
        /* across servers: the busiest link is a network link (every flat
         * algorithm crosses servers on some of its links) */
        bw_link = m->net_gbps * 1e3 < bw_link ? m->net_gbps * 1e3 : bw_link;
        alpha = m->net_alpha_us;
    }
    if (algo == PPU_ALGO_HIER || algo == PPU_ALGO_HIER_TREE) {
        /* ICN reduce-scatter and all-gather around an all-reduce of each
         * rank's shard sh along its rail: a ring (2(ns-1) hops, then
         * pipelined), or two trees of depth D, each with half the shard
         * up and down a chunk at a time (the flat tree's model) */
        double L = comm->per_server, ns = comm->nservers, sh = S / L;
        double cp = (double)comm->peer_slot, net_bw = m->net_gbps * 1e3;
        double intra = 2 * (L - 1) * m->alpha_us + 4 * S * (L - 1) / L / (m->mem_gbps[0] * 1e3);
        double inter;
        if (algo == PPU_ALGO_HIER) {
            inter = (2 * (ns - 1) + ceil_div(sh, ns * cp) - 1) * m->net_alpha_us +
                    2 * sh * (ns - 1) / ns / net_bw;
        } else {
            double depth = 0;
            for (double w = 1; w < ns + 1; w *= 2)
                depth++; /* levels of a heap of ns: ceil(log2(ns + 1)) */
            inter = 2 * (depth - 1) * ceil_div(sh / 2, cp) * m->net_alpha_us + sh / net_bw;
        }
        return intra + inter;
    }
    double tl = link / bw_link, tm = copies / bw_mem;
    return hops * alpha + (tl > tm ? tl : tm);
}

/* Can algo run this call on this communicator? */
static int applies(const struct ppu_comm *comm, const struct ppu_coll_args *a, int algo)
{
    if (!(coll_algos[a->coll] & BIT(algo)))
        return 0;
    switch (algo) {
    case PPU_ALGO_RING:
        return 1;
    case PPU_ALGO_TREE: /* its trees' edges are links on any topology */
        return comm->nranks > 1;
    case PPU_ALGO_ONESHOT: /* direct links to all */
    case PPU_ALGO_TWOSHOT:
        return comm->mesh;
    case PPU_ALGO_PAIRWISE:
        /* alltoallv has no ring form: its non-adjacent pairs are staged;
         * across servers an all-to-all's ring would carry blocks over the
         * network again and again, pairwise once each */
        return comm->mesh || a->coll == PPU_COLL_ALLTOALLV ||
               (a->coll == PPU_COLL_ALLTOALL && comm->nservers > 1);
    case PPU_ALGO_HIER: /* servers of equal size, more than one */
    case PPU_ALGO_HIER_TREE:
        return comm->hier_ok;
    default:
        return 0;
    }
}

static size_t call_bytes(const struct ppu_comm *comm, const struct ppu_coll_args *a)
{
    size_t b = a->count * ppu_datatype_size(a->datatype);
    if (a->coll == PPU_COLL_ALLGATHER || a->coll == PPU_COLL_REDUCE_SCATTER ||
        a->coll == PPU_COLL_ALLTOALL)
        b *= (size_t)comm->nranks;
    return b;
}

static void choose(struct ppu_comm *comm, const struct ppu_coll_args *a, int *algo, int *proto,
                   char *why, size_t wlen)
{
    double S = (double)call_bytes(comm, a), best = -1;
    unsigned am = comm->algo_mask[a->coll], pm = comm->proto_mask[a->coll];
    size_t per_msg = comm->nranks > 1 ? (size_t)S / (size_t)comm->nranks : 0;
    int n = comm->nranks;
    *algo = PPU_ALGO_RING;
    *proto = PPU_PROTO_SIMPLE;
    size_t o = 0;
    why[0] = '\0';
    for (int al = 0; al < PPU_NUM_ALGOS; al++) {
        if (am && !(am & BIT(al)))
            continue;
        if (!applies(comm, a, al))
            continue;
        /* one-shot's n-fold reduce: only up to PPU_ONESHOT_MAX_BYTES,
         * unless PPU_ALGO names it */
        if (al == PPU_ALGO_ONESHOT && !am && S > (double)comm->oneshot_max)
            continue;
        for (int pr = 0; pr < PPU_NUM_PROTOS; pr++) {
            if (pm && !(pm & BIT(pr)))
                continue;
            /* LL: messages that fit one low-latency slot. Not alltoallv:
             * its sizes differ by rank, and every rank must cut messages
             * the same way */
            if (pr == PPU_PROTO_LL && (per_msg > comm->ll_max || !comm->ll_max ||
                                       a->coll == PPU_COLL_ALLTOALLV))
                continue;
            double t = cost(comm, a->coll, al, pr, S, n);
            if (t < 0)
                continue;
            if (o < wlen)
                o += (size_t)snprintf(why + o, wlen - o, "%s%s/%s %.1fus", o ? ", " : "",
                                      ppu_algo_name(al), ppu_proto_name(pr), t);
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
                 "(%s); falling back to the default", ppu_coll_name(a->coll),
                 comm->mesh ? "mesh" : "ranks are not all one hop apart");
        PPU_INFO(PPU_SUB_COLL, "%s", why);
        *algo = a->coll == PPU_COLL_ALLTOALLV ? PPU_ALGO_PAIRWISE : PPU_ALGO_RING;
        *proto = PPU_PROTO_SIMPLE;
    }
}

/* The hierarchical all-gather or reduce-scatter (the latter with its
 * temporary of nservers blocks a run). */
static ppu_result_t hier_blocks(const struct ppu_comm *comm, const struct ppu_coll_args *a,
                                const struct ppu_sched_ctx *x, struct ppu_sched *s)
{
    int(*srv)[64] = malloc(sizeof(int[64][64]));
    if (!srv)
        return PPU_SYSTEM_ERROR;
    server_table(comm, srv);
    ppu_result_t r;
    if (a->coll == PPU_COLL_ALLGATHER) {
        r = ppu_sched_hier_allgather(s, x, a->count, comm->local, comm->per_server, comm->rail,
                                     comm->nservers, (const int(*)[64])srv);
    } else {
        r = ppu_sched_hier_reduce_scatter(s, x, a->count, a->op, comm->local, comm->per_server,
                                          comm->rail, comm->nservers, (const int(*)[64])srv);
        if (r == PPU_SUCCESS)
            s->tmp_bytes = (size_t)comm->nservers * a->count * ppu_datatype_size(a->datatype);
    }
    free(srv);
    return r;
}

static ppu_result_t build(struct ppu_comm *comm, const struct ppu_coll_args *a, int algo,
                          int proto, struct ppu_sched *s)
{
    size_t es = ppu_datatype_size(a->datatype);
    struct ppu_sched_ctx x = {comm->rank, comm->nranks, comm->nchannels,
                              (const int(*)[64])comm->rings, 0};
    int peer = algo != PPU_ALGO_RING;
    size_t msg = peer ? comm->peer_slot : comm->chunk_bytes;
    if (proto == PPU_PROTO_LL && comm->ll_max < msg)
        msg = comm->ll_max;
    x.chunk = msg / es ? msg / es : 1;
    /* Small calls on fewer rings: a channel costs its hops whatever its
     * size, so each must carry at least PPU_CHANNEL_MIN_BYTES. */
    if (!peer) {
        size_t per = comm->channel_min_bytes ? comm->channel_min_bytes : 1;
        size_t want = (call_bytes(comm, a) + per - 1) / per;
        if (want < (size_t)x.nrings)
            x.nrings = want ? (int)want : 1;
    }
    int inplace = a->sendbuf == a->recvbuf;
    ppu_result_t r = PPU_INTERNAL_ERROR;
    switch (a->coll) {
    case PPU_COLL_ALLREDUCE:
        switch (algo) {
        case PPU_ALGO_ONESHOT: r = ppu_sched_oneshot_allreduce(s, &x, a->count, a->op); break;
        case PPU_ALGO_TWOSHOT: r = ppu_sched_twoshot_allreduce(s, &x, a->count, a->op); break;
        case PPU_ALGO_TREE:
            r = ppu_sched_tree_allreduce(s, &x, a->count, a->op,
                                         (const int(*)[64])comm->tree_parent);
            break;
        case PPU_ALGO_HIER:
        case PPU_ALGO_HIER_TREE:
            r = ppu_sched_hier_allreduce(s, &x, a->count, a->op, comm->local, comm->per_server,
                                         comm->rail, comm->nservers, algo == PPU_ALGO_HIER_TREE);
            break;
        default: r = ppu_sched_ring_allreduce(s, &x, a->count, a->op); break;
        }
        break;
    case PPU_COLL_BROADCAST:
        r = ppu_sched_chain_broadcast(s, &x, a->count, a->root, inplace);
        break;
    case PPU_COLL_REDUCE:
        r = ppu_sched_chain_reduce(s, &x, a->count, a->op, a->root);
        break;
    case PPU_COLL_ALLGATHER:
        r = algo == PPU_ALGO_HIER ? hier_blocks(comm, a, &x, s)
            : peer                ? ppu_sched_direct_allgather(s, &x, a->count)
                                  : ppu_sched_ring_allgather(s, &x, a->count);
        break;
    case PPU_COLL_REDUCE_SCATTER:
        r = algo == PPU_ALGO_HIER ? hier_blocks(comm, a, &x, s)
            : peer                ? ppu_sched_direct_reduce_scatter(s, &x, a->count, a->op)
                                  : ppu_sched_ring_reduce_scatter(s, &x, a->count, a->op);
        break;
    case PPU_COLL_ALLTOALL:
        r = peer ? ppu_sched_pairwise_alltoall(s, &x, a->count, NULL, NULL, NULL, NULL)
                 : ppu_sched_ring_alltoall(s, &x, a->count);
        break;
    case PPU_COLL_ALLTOALLV: {
        size_t n = (size_t)comm->nranks;
        r = ppu_sched_pairwise_alltoall(s, &x, 0, a->v, a->v + n, a->v + 2 * n, a->v + 3 * n);
        break;
    }
    default:
        break;
    }
    if (r != PPU_SUCCESS)
        return ppu_fail(comm, r, "rank %d: cannot build the %s schedule for %s", comm->rank,
                        ppu_algo_name(algo), ppu_coll_name(a->coll));
    s->algo = algo;
    s->proto = proto;
    s->esize = es;
    return PPU_SUCCESS;
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
    int algo, proto;
    char why[400];
    choose(comm, a, &algo, &proto, why, sizeof why);
    struct ppu_sched *s = owned;
    if (cached) {
        if (slot->valid)
            ppu_sched_free(&slot->sched);
        slot->valid = 0;
        s = &slot->sched;
    }
    PPU_CHECK(build(comm, a, algo, proto, s));
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
    int last_send[PPU_TOPO_MAX_CHIPS], last_recv[PPU_TOPO_MAX_CHIPS];
    for (int p = 0; p < comm->nranks; p++)
        last_send[p] = last_recv[p] = -1;
    size_t chunk = comm->peer_slot;
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
        int *last = send ? last_send : last_recv;
        ch->after = last[peer];
        last[peer] = i;
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
