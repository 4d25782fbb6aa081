/* The plan context from a two-level cluster: servers of ranks, and each
 * server's link graph. Rings, trees and server tables, sized at run time;
 * the settings and the cost model. No communicator here: the library, the
 * schedule checker and the timing model all build contexts this way. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/log.h"
#include "util/param.h"
#include "plan_ctx.h"

ppu_result_t ppu_plan_settings_read(struct ppu_plan_settings *set, int rank, char *err,
                                    size_t errlen)
{
    memset(set, 0, sizeof *set);
    if (ppu_param_check(err, errlen) != PPU_SUCCESS) /* ranges below hold */
        return PPU_INVALID_ARGUMENT;
    long long chunk = ppu_param_int(PPU_P_CHUNK_SIZE);
    /* whole pages: mesh slots fit in scratch */
    set->chunk_bytes = (size_t)chunk & ~(size_t)4095;
    set->channel_min_bytes = (size_t)ppu_param_int(PPU_P_CHANNEL_MIN_BYTES);
    set->oneshot_max = (size_t)ppu_param_int(PPU_P_ONESHOT_MAX_BYTES);
    /* Peer-link messages: whole pages, no bigger than a ring chunk, so one
     * always fits the scratch buffer (one-shot reduces a chunk there). */
    long long p2p = ppu_param_int(PPU_P_P2P_CHUNK_SIZE);
    set->peer_slot = (size_t)p2p & ~(size_t)4095;
    if (set->peer_slot > set->chunk_bytes)
        set->peer_slot = set->chunk_bytes;
    long long ll = ppu_param_int(PPU_P_LL_MAX_BYTES);
    set->ll_max = ll > 0 ? ((size_t)ll + 7) & ~(size_t)7 : 0;
    if (set->ll_max > set->peer_slot)
        set->ll_max = set->peer_slot;
    /* The table's ranges (param.c) hold: FIFO slots 2..64 (a ring step
     * needs two; icn_sim's FIFO holds at most 64), channels
     * 0..PPU_MAX_CHANNELS. */
    _Static_assert(PPU_MAX_CHANNELS == 16, "PPU_NCHANNELS's range in param.c");
    set->fifo_slots = (int)ppu_param_int(PPU_P_FIFO_SLOTS);
    set->peer_slots = 4;
    long long nc = ppu_param_int(PPU_P_NCHANNELS);
    set->nchannels = (int)nc;
    return ppu_plan_parse_masks(set, ppu_param_str(PPU_P_ALGO), ppu_param_str(PPU_P_PROTO), rank,
                                err, errlen);
}

void ppu_plan_model_sim(struct ppu_model *m, double over)
{
    /* The links of this build are simulated in host shared memory, so the
     * model describes them as measured on the 2-core test host (see the
     * issue 3 note): one hop ~0.25 us between processes when every rank
     * has a core, ~5 us x oversubscription when ranks take turns on cores;
     * copies ~16 GB/s a rank, shared when oversubscribed; an LL word
     * moves 4 bytes, ~1 GB/s. A link is a copy here, so its bandwidth is
     * the memory's. A hardware transport would give the topology's ICN
     * figures (link_gbps, link_latency_us) instead. */
    if (over < 1)
        over = 1;
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
    m->net_top_us = 0; /* loopback has no fabric */
    m->chip_gbps = 0;
    m->link_is_copy = 1;
}

/* ---- servers ---- */

struct key_rank {
    int key, rank;
};

static int cmp_key_rank(const void *a, const void *b)
{
    const struct key_rank *x = a, *y = b;
    return x->key != y->key ? (x->key < y->key ? -1 : 1) : (x->rank > y->rank) - (x->rank < y->rank);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Servers numbered by their first rank, local index by rank order. O(N
 * log N), no array indexed by the callers' server ids. */
static ppu_result_t number_servers(struct ppu_plan_ctx *x, const int *server_of, int **first_out)
{
    int n = x->nranks;
    struct key_rank *kr = malloc(sizeof *kr * (size_t)n);
    int *first = malloc(sizeof *first * (size_t)n);
    if (!kr || !first) {
        free(kr);
        free(first);
        return PPU_SYSTEM_ERROR;
    }
    for (int r = 0; r < n; r++)
        kr[r] = (struct key_rank){server_of[r], r};
    qsort(kr, (size_t)n, sizeof *kr, cmp_key_rank);
    /* runs of one key are servers; their first ranks, sorted, number them */
    int ns = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || kr[i].key != kr[i - 1].key)
            first[ns++] = kr[i].rank;
    qsort(first, (size_t)ns, sizeof *first, cmp_int);
    /* local index: place in its run; server: its run's first rank's place in first[] */
    for (int i = 0, run = 0, lead = 0; i < n; i++) {
        if (i > 0 && kr[i].key != kr[i - 1].key) {
            run = 0;
            lead = i;
        }
        x->local[kr[i].rank] = run++;
        int *at = bsearch(&kr[lead].rank, first, (size_t)ns, sizeof *first, cmp_int);
        x->server[kr[i].rank] = (int)(at - first);
    }
    free(kr);
    x->nservers = ns;
    *first_out = first;
    return PPU_SUCCESS;
}

/* ---- rings ---- */

/* A path through every chip of t over up links (a server without a ring,
 * such as ring8 cut in two), by depth-first search with a step budget. */
static int path_dfs(const struct ppu_topo *t, int *path, unsigned char *on, int depth, long *budget)
{
    int n = t->nchips;
    if (depth == n)
        return 1;
    if (--*budget < 0)
        return 0;
    for (int v = 0; v < n; v++) {
        if (on[v] || !ppu_topo_up(t, path[depth - 1], v))
            continue;
        on[v] = 1;
        path[depth] = v;
        if (path_dfs(t, path, on, depth + 1, budget))
            return 1;
        on[v] = 0;
    }
    return 0;
}

static int find_path(const struct ppu_topo *t, int *path)
{
    long budget = 2000000;
    for (int start = 0; start < t->nchips && budget > 0; start++) {
        unsigned char on[PPU_TOPO_MAX_CHIPS] = {0};
        path[0] = start;
        on[start] = 1;
        if (path_dfs(t, path, on, 1, &budget))
            return 1;
    }
    return 0;
}

/* One server's rings (or, lacking any, one path, nrings -1), kept for the
 * next server when it shares the topology. */
struct server_rings {
    const struct ppu_topo *topo;
    int nrings;
    int ring[PPU_TOPO_MAX_RINGS][PPU_TOPO_MAX_CHIPS];
};

/* Do a and b have the same chips and links up (so the same rings)? */
static int same_links(const struct ppu_topo *a, const struct ppu_topo *b)
{
    if (a == b)
        return 1;
    if (!a || !b || a->nchips != b->nchips)
        return 0;
    for (int i = 0; i < a->nchips; i++)
        for (int j = 0; j < a->nchips; j++)
            if (ppu_topo_up(a, i, j) != ppu_topo_up(b, i, j))
                return 0;
    return 1;
}

static ppu_result_t rings_of(struct server_rings *sr, const struct ppu_topo *t, int size,
                             const char *topo_name, int server, int nranks, char *err,
                             size_t errlen)
{
    /* the ring search is the costly part of init: servers wired alike
     * (every server of a preset) reuse the last one's rings */
    if (same_links(sr->topo, t) && t->nchips == size)
        return PPU_SUCCESS;
    if (t->nchips != size) {
        snprintf(err, errlen, "topology %s: server %d has %d rank(s) but its link graph %d chip(s)",
                 topo_name, server, size, t->nchips);
        return PPU_INVALID_USAGE;
    }
    sr->topo = t;
    sr->nrings = ppu_topo_find_rings(t, PPU_TOPO_MAX_RINGS, sr->ring);
    if (sr->nrings == 0) {
        if (!find_path(t, sr->ring[0])) {
            sr->topo = NULL;
            snprintf(err, errlen, "topology %s: the %d chip(s) of server %d hold no path through "
                     "all of them over links that are up, so no ring joins all %d ranks",
                     topo_name, size, server, nranks);
            return PPU_INVALID_USAGE;
        }
        sr->nrings = -1; /* a path: one ring, entered at its start */
    }
    return PPU_SUCCESS;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t edge(int a, int b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

/* Rings through ranks on several servers: each server's own link-disjoint
 * rings, opened into paths and joined server after server by network
 * links. Ring k enters each server at its local chip k (mod its size), so
 * the rings' network links start and end at different chips; then each
 * ring's reverse where its directed links are all still free (a ring
 * never uses both directions of a link, so one ring's reverse always
 * is). With one server: its rings as they are. Every rank computes the
 * same rings, each starting at rank 0; rings[k * n + i]. */
static ppu_result_t find_rings(struct ppu_plan_ctx *x, const int *first,
                               const struct ppu_topo *const *stopo, const char *topo_name,
                               int *rings, int *count, char *err, size_t errlen)
{
    int n = x->nranks, ns = x->nservers, nr = PPU_TOPO_MAX_RINGS, found = 0;
    struct server_rings *sr = calloc(1, sizeof *sr);
    int *members = malloc(sizeof *members * (size_t)n), *size = calloc((size_t)ns, sizeof *size);
    uint64_t *used = NULL;
    ppu_result_t r = PPU_SYSTEM_ERROR;
    if (!sr || !members || !size)
        goto out;
    for (int q = 0; q < n; q++)
        size[x->server[q]]++;
    if (ns == 1) {
        r = rings_of(sr, stopo[0], n, topo_name, 0, n, err, errlen);
        if (r != PPU_SUCCESS)
            goto out;
        if (sr->nrings < 0) { /* a path is no ring on one server */
            snprintf(err, errlen, "topology %s holds no ring through all %d chips", topo_name, n);
            r = PPU_INVALID_USAGE;
            goto out;
        }
        for (int k = 0; k < sr->nrings; k++)
            for (int i = 0; i < n; i++)
                rings[k * n + i] = sr->ring[k][i];
        *count = sr->nrings;
        r = PPU_SUCCESS;
        goto out;
    }
    for (int s = 0; s < ns; s++) {
        r = rings_of(sr, stopo[s], size[s], topo_name, s, n, err, errlen);
        if (r != PPU_SUCCESS)
            goto out;
        int k = sr->nrings < 0 ? 1 : sr->nrings;
        nr = k < nr ? k : nr;
    }
    /* server by server, in the order of their first ranks */
    int o = 0;
    for (int s = 0; s < ns; s++) {
        int m = 0;
        for (int q = first[s]; q < n && m < size[s]; q++)
            if (x->server[q] == s)
                members[m++] = q;
        r = rings_of(sr, stopo[s], m, topo_name, s, n, err, errlen);
        if (r != PPU_SUCCESS)
            goto out;
        for (int k = 0; k < nr; k++) {
            const int *c = sr->nrings < 0 ? sr->ring[0] : sr->ring[k];
            int j = 0;
            if (sr->nrings > 0)
                while (c[j] != k % m)
                    j++;
            for (int i = 0; i < m; i++)
                rings[k * n + o + i] = members[c[(j + i) % m]];
        }
        o += m;
    }
    found = nr;
    /* the reverses whose directed links no ring uses yet */
    used = malloc(sizeof *used * (size_t)n * PPU_TOPO_MAX_RINGS);
    r = PPU_SYSTEM_ERROR;
    if (!used)
        goto out;
    size_t nused = 0;
    for (int k = 0; k < found; k++)
        for (int i = 0; i < n; i++)
            used[nused++] = edge(rings[k * n + i], rings[k * n + (i + 1) % n]);
    qsort(used, nused, sizeof *used, cmp_u64);
    for (int k = 0, fwd = found; k < fwd && found < PPU_TOPO_MAX_RINGS && n > 2; k++) {
        int ok = 1;
        for (int i = 0; i < n && ok; i++) {
            uint64_t e = edge(rings[k * n + (i + 1) % n], rings[k * n + i]);
            ok = !bsearch(&e, used, nused, sizeof e, cmp_u64);
        }
        if (!ok)
            continue;
        for (int i = 0; i < n; i++) {
            rings[found * n + i] = rings[k * n + (n - i) % n];
            used[nused++] = edge(rings[k * n + (i + 1) % n], rings[k * n + i]);
        }
        qsort(used, nused, sizeof *used, cmp_u64);
        found++;
    }
    for (int k = 0; k < found; k++) { /* start each at rank 0, as single-server rings do */
        int *ring = rings + (size_t)k * n, z = 0;
        while (ring[z] != 0)
            z++;
        for (int i = 0; i < n; i++)
            members[i] = ring[(z + i) % n];
        memcpy(ring, members, sizeof *ring * (size_t)n);
    }
    *count = found;
    r = PPU_SUCCESS;
out:
    free(sr);
    free(members);
    free(size);
    free(used);
    return r;
}

/* ---- rings inside servers, for hierarchical all-reduce ---- */

/* Does turning every chip one place (j -> j + 1 mod L) map every
 * server's links onto themselves? */
static int servers_circulant(const struct ppu_topo *const *stopo, int ns, int L)
{
    for (int sv = 0; sv < ns; sv++) {
        const struct ppu_topo *t = stopo[sv];
        if (sv > 0 && t == stopo[sv - 1])
            continue;
        if (t->nchips != L)
            return 0;
        for (int a = 0; a < L; a++)
            for (int b = 0; b < L; b++)
                if (a != b && ppu_topo_up(t, a, b) != ppu_topo_up(t, (a + 1) % L, (b + 1) % L))
                    return 0;
    }
    return 1;
}

static int gcd(int a, int b)
{
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The rings inside a server. On a circulant server (server16, switch16, a
 * full mesh), the strides that are links and reach every chip (j -> j + d
 * with d prime to L: 1 and L - 1 on server16): a turn of the server maps
 * each onto itself, so every chip does the same work at the same moment,
 * and ppu-sim can replay one chip a server for all (folding by rails).
 * One ring on a switched server. Otherwise each channel's ring: it passes through a server's ranks in
 * one run (two at server 0, split where the ring starts at rank 0); read
 * in ring order and started at local index 0, that run is one of the
 * server's own rings. A ring is kept when every server reads the same one
 * (one table serves them all) and it shares no directed link with a ring
 * kept before (their phases run side by side on peer links). */
static ppu_result_t pick_hier_rings(struct ppu_plan_ctx *x, const struct ppu_topo *const *stopo)
{
    int n = x->nranks, L = x->per_server, ns = x->nservers;
    int K = x->nchannels < x->nrings_found ? x->nchannels : x->nrings_found;
    if (K < 1)
        K = 1;
    x->hier_rings = malloc(sizeof *x->hier_rings * (size_t)K * L);
    int *seq = malloc(sizeof *seq * (size_t)n), *cnt = malloc(sizeof *cnt * (size_t)ns);
    unsigned char *used = calloc((size_t)L * L, 1);
    ppu_result_t r = PPU_SYSTEM_ERROR;
    if (!x->hier_rings || !seq || !cnt || !used)
        goto out;
    x->hier_nrings = 0;
    /* a switched server (switch planes) gives every message the chip's
     * ports whatever its peer: one ring has them all */
    if (stopo[0]->switch_planes > 0)
        K = 1;
    if (L > 2 && servers_circulant(stopo, ns, L)) {
        /* strides 1, L - 1, 2, L - 2, ...: each a ring when prime to L */
        for (int k = 2; k < 2 * L && x->hier_nrings < K; k++) {
            int d = k % 2 ? L - k / 2 : k / 2;
            if (used[d] || gcd(d, L) != 1 || !ppu_topo_up(stopo[0], 0, d))
                continue;
            used[d] = 1; /* the link 0 -> d: each stride once */
            int *mine = x->hier_rings + (size_t)x->hier_nrings++ * L;
            for (int i = 0; i < L; i++)
                mine[i] = (int)((long)i * d % L);
        }
        r = PPU_SUCCESS;
        if (x->hier_nrings > 0)
            goto out;
        memset(used, 0, (size_t)L * L);
    }
    for (int c = 0; c < K; c++) {
        memset(cnt, 0, sizeof *cnt * (size_t)ns);
        const int *ring = x->rings + (size_t)c * n;
        for (int i = 0; i < n; i++) {
            int q = ring[i], sv = x->server[q];
            seq[(size_t)sv * L + cnt[sv]++] = x->local[q];
        }
        int *mine = x->hier_rings + (size_t)x->hier_nrings * L, ok = 1;
        for (int sv = 0; sv < ns && ok; sv++) {
            const int *run = seq + (size_t)sv * L;
            int z = 0;
            while (run[z] != 0)
                z++;
            for (int i = 0; i < L && ok; i++) {
                if (sv == 0)
                    mine[i] = run[(z + i) % L];
                else
                    ok = mine[i] == run[(z + i) % L];
            }
        }
        for (int i = 0; i < L && ok; i++)
            ok = !used[(size_t)mine[i] * L + mine[(i + 1) % L]];
        if (!ok)
            continue;
        for (int i = 0; i < L; i++)
            used[(size_t)mine[i] * L + mine[(i + 1) % L]] = 1;
        x->hier_nrings++;
    }
    if (x->hier_nrings == 0) { /* local index order, as before rings were read */
        for (int i = 0; i < L; i++)
            x->hier_rings[i] = i;
        x->hier_nrings = 1;
    }
    r = PPU_SUCCESS;
out:
    free(seq);
    free(cnt);
    free(used);
    return r;
}

/* ---- trees ---- */

/* The tree all-reduce's two trees when ranks span servers: in each server
 * a breadth-first tree over its links from a head rank, and the heads
 * joined by a binary tree over the servers (network links). Tree 0 is
 * rooted at rank 0 and takes each other server's first rank as its head;
 * tree 1 is rooted at the last rank, takes last ranks, and visits the
 * servers in reverse, so the two trees use different network links. */
static ppu_result_t server_trees(struct ppu_plan_ctx *x, const int *first,
                                 const struct ppu_topo *const *stopo)
{
    int n = x->nranks, ns = x->nservers;
    int *order = malloc(sizeof *order * (size_t)ns), *head = malloc(sizeof *head * (size_t)ns);
    int *last = malloc(sizeof *last * (size_t)ns), *members = malloc(sizeof *members * (size_t)n);
    int *start = calloc((size_t)ns + 1, sizeof *start);
    if (!order || !head || !last || !members || !start) {
        free(order), free(head), free(last), free(members), free(start);
        return PPU_SYSTEM_ERROR;
    }
    /* members of server s at members[start[s] .. start[s + 1]), rank order */
    for (int q = 0; q < n; q++)
        start[x->server[q] + 1]++;
    for (int s = 0; s < ns; s++)
        start[s + 1] += start[s];
    for (int q = 0; q < n; q++)
        members[start[x->server[q]] + x->local[q]] = q;
    for (int s = 0; s < ns; s++)
        last[s] = members[start[s + 1] - 1];
    for (int t = 0; t < 2; t++) {
        int *parent = x->tree_parent + (size_t)t * n;
        int root = t == 0 ? 0 : n - 1, rs = x->server[root], no = 0;
        for (int i = 0; i < n; i++)
            parent[i] = -1;
        order[no++] = rs;
        for (int k = 0; k < ns; k++) {
            int s = t == 0 ? k : ns - 1 - k;
            if (s != rs)
                order[no++] = s;
        }
        for (int i = 0; i < no; i++) {
            int s = order[i], bfs[PPU_TOPO_MAX_CHIPS];
            head[i] = i == 0 ? root : t == 0 ? first[s] : last[s];
            ppu_topo_bfs_tree(stopo[s], x->local[head[i]], bfs);
            for (int k = 0; k < start[s + 1] - start[s]; k++) {
                int q = members[start[s] + k];
                if (q != head[i])
                    parent[q] = bfs[k] >= 0 ? members[start[s] + bfs[k]] : -1;
            }
            if (i > 0)
                parent[head[i]] = head[(i - 1) / 2];
        }
    }
    free(order), free(head), free(last), free(members), free(start);
    return PPU_SUCCESS;
}

static ppu_result_t pick_trees(struct ppu_plan_ctx *x, const int *first,
                               const struct ppu_topo *const *stopo)
{
    int n = x->nranks;
    int *p0 = x->tree_parent, *p1 = x->tree_parent + n;
    if (x->mesh) {
        ppu_sched_double_binary_tree(n, x->tree_parent);
    } else if (x->nservers > 1) {
        PPU_CHECK(server_trees(x, first, stopo));
    } else {
        ppu_topo_bfs_tree(stopo[0], 0, p0);
        ppu_topo_bfs_tree(stopo[0], n - 1, p1);
    }
    /* children lists, so a builder needs no scan over the ranks */
    x->tree_kid_at = calloc(2 * ((size_t)n + 1), sizeof *x->tree_kid_at);
    x->tree_kids = malloc(sizeof *x->tree_kids * 2 * (size_t)n);
    if (!x->tree_kid_at || !x->tree_kids)
        return PPU_SYSTEM_ERROR;
    for (int t = 0, o = 0; t < 2; t++) {
        const int *parent = x->tree_parent + (size_t)t * n;
        int *at = x->tree_kid_at + (size_t)t * (n + 1);
        for (int q = 0; q < n; q++)
            if (parent[q] >= 0)
                at[parent[q] + 1]++;
        at[0] = o;
        for (int q = 0; q < n; q++)
            at[q + 1] += at[q];
        int *fill = malloc(sizeof *fill * (size_t)n);
        if (!fill)
            return PPU_SYSTEM_ERROR;
        memcpy(fill, at, sizeof *fill * (size_t)n);
        for (int q = 0; q < n; q++) /* rank order within each list */
            if (parent[q] >= 0)
                x->tree_kids[fill[parent[q]]++] = q;
        free(fill);
        o = at[n];
    }
    /* the slowest root-to-leaf path (tree_path_*); fanouts: most children */
    int *kids = calloc((size_t)n, sizeof *kids);
    if (!kids)
        return PPU_SYSTEM_ERROR;
    x->tree_fanout = 0;
    x->tree_path_us = 0;
    x->tree_path_net = x->tree_path_icn = 0;
    x->tree_net_fanout = x->tree_icn_fanout = 0;
    int *net_kids = calloc((size_t)n, sizeof *net_kids);
    if (!net_kids) {
        free(kids);
        return PPU_SYSTEM_ERROR;
    }
    const struct ppu_model *m = &x->model;
    for (int t = 0; t < 2; t++) {
        const int *parent = x->tree_parent + (size_t)t * n;
        memset(kids, 0, sizeof *kids * (size_t)n);
        memset(net_kids, 0, sizeof *net_kids * (size_t)n);
        for (int q = 0; q < n; q++) {
            int d = 0, dn = 0;
            double us = 0;
            for (int c = q; parent[c] >= 0 && d <= n; c = parent[c]) {
                int p = parent[c];
                d++;
                if (x->server[p] != x->server[c]) { /* the top tier only between rails */
                    dn++;
                    us += m->net_alpha_us + (x->local[p] != x->local[c] ? m->net_top_us : 0);
                } else {
                    us += m->alpha_us;
                }
            }
            if (us > x->tree_path_us) {
                x->tree_path_us = us;
                x->tree_path_net = dn;
                x->tree_path_icn = d - dn;
            }
            int p = parent[q];
            if (p < 0)
                continue;
            if (++kids[p] > x->tree_fanout)
                x->tree_fanout = kids[p];
            int across = x->server[p] != x->server[q];
            net_kids[p] += across;
            if (across && net_kids[p] > x->tree_net_fanout)
                x->tree_net_fanout = net_kids[p];
            if (kids[p] - net_kids[p] > x->tree_icn_fanout)
                x->tree_icn_fanout = kids[p] - net_kids[p];
        }
    }
    free(kids);
    free(net_kids);
    return PPU_SUCCESS;
}

/* ---- the context ---- */

void ppu_plan_ctx_free(struct ppu_plan_ctx *x)
{
    free(x->rings);
    free(x->ring_pos);
    free(x->tree_parent);
    free(x->tree_kid_at);
    free(x->tree_kids);
    free(x->srv);
    free(x->hier_rings);
    free(x->server);
    free(x->local);
    memset(x, 0, sizeof *x);
}

ppu_result_t ppu_plan_ctx_init(struct ppu_plan_ctx *x, int n, const int *server_of,
                               const struct ppu_topo *const *stopo, const char *topo_name,
                               const struct ppu_plan_settings *set, const struct ppu_model *model,
                               char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    snprintf(err, errlen, "out of memory building the plan context for %d ranks", n);
    if (n < 1)
        return PPU_INVALID_ARGUMENT;
    x->nranks = n;
    x->set = *set;
    x->model = *model;
    x->server = malloc(sizeof *x->server * (size_t)n);
    x->local = malloc(sizeof *x->local * (size_t)n);
    x->tree_parent = malloc(sizeof *x->tree_parent * 2 * (size_t)n);
    int *rings = malloc(sizeof *rings * (size_t)n * PPU_TOPO_MAX_RINGS), *first = NULL;
    ppu_result_t r = PPU_SYSTEM_ERROR;
    if (!x->server || !x->local || !x->tree_parent || !rings ||
        number_servers(x, server_of, &first) != PPU_SUCCESS)
        goto fail;
    int ns = x->nservers, *size = calloc((size_t)ns, sizeof *size);
    if (!size)
        goto fail;
    for (int q = 0; q < n; q++)
        size[x->server[q]]++;
    x->per_server = size[0];
    /* one rank a server: hier would be a plain ring on staged peer links */
    x->hier_ok = ns > 1 && size[0] > 1;
    for (int s = 0; s < ns; s++)
        x->hier_ok &= size[s] == size[0];
    free(size);
    if (x->hier_ok) {
        x->srv = malloc(sizeof *x->srv * (size_t)n);
        if (!x->srv)
            goto fail;
        for (int q = 0; q < n; q++)
            x->srv[(size_t)x->server[q] * x->per_server + x->local[q]] = q;
    }
    int group[PPU_TOPO_MAX_CHIPS];
    x->mesh = ns == 1 && n >= 2 && stopo[0]->nchips == n &&
              ppu_topo_mesh_groups(stopo[0], group) == 1;
    int nrings = 0;
    r = find_rings(x, first, stopo, topo_name, rings, &nrings, err, errlen);
    if (r != PPU_SUCCESS)
        goto fail;
    x->nrings_found = nrings;
    int want = set->nchannels > 0 ? set->nchannels : (nrings < 4 ? nrings : 4);
    x->nchannels = want > PPU_MAX_CHANNELS ? PPU_MAX_CHANNELS : want;
    x->rings = malloc(sizeof *x->rings * (size_t)n * (size_t)x->nchannels);
    x->ring_pos = malloc(sizeof *x->ring_pos * (size_t)n * (size_t)x->nchannels);
    r = PPU_SYSTEM_ERROR;
    if (!x->rings || !x->ring_pos)
        goto fail;
    /* channels beyond the rings found share them */
    for (int c = 0; c < x->nchannels; c++) {
        memcpy(x->rings + (size_t)c * n, rings + (size_t)(c % nrings) * n, sizeof *rings * (size_t)n);
        for (int i = 0; i < n; i++)
            x->ring_pos[(size_t)c * n + x->rings[(size_t)c * n + i]] = i;
    }
    x->ring_net_load = 1;
    if (ns > 1) {
        /* a ring and its reverse may leave a server at the same rank */
        int *cnt = calloc(2 * (size_t)n, sizeof *cnt);
        r = PPU_SYSTEM_ERROR;
        if (!cnt)
            goto fail;
        for (int c = 0; c < x->nchannels; c++)
            for (int i = 0; i < n; i++) {
                int a = x->rings[(size_t)c * n + i], b = x->rings[(size_t)c * n + (i + 1) % n];
                if (x->server[a] != x->server[b]) {
                    cnt[2 * a]++;
                    cnt[2 * b + 1]++;
                }
            }
        for (int i = 0; i < 2 * n; i++)
            x->ring_net_load = cnt[i] > x->ring_net_load ? cnt[i] : x->ring_net_load;
        free(cnt);
    }
    if (pick_trees(x, first, stopo) != PPU_SUCCESS)
        goto fail;
    if (x->hier_ok && pick_hier_rings(x, stopo) != PPU_SUCCESS)
        goto fail;
    free(rings);
    free(first);
    return PPU_SUCCESS;
fail:
    free(rings);
    free(first);
    ppu_plan_ctx_free(x);
    return r;
}
