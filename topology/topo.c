#include "topo.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

void ppu_topo_connect(struct ppu_topo *t, int a, int b, int state)
{
    if (a == b)
        return;
    t->link[a][b] = t->link[b][a] = (unsigned char)state;
    t->gbps[a][b] = t->gbps[b][a] = (float)t->link_gbps;
    t->latency_us[a][b] = t->latency_us[b][a] = (float)t->link_latency_us;
}

static void connect(struct ppu_topo *t, int a, int b) { ppu_topo_connect(t, a, b, PPU_LINK_UP); }

void ppu_topo_init(struct ppu_topo *t, const char *name, int nchips)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->source, sizeof t->source, "preset");
    t->nchips = nchips;
    t->nservers = 1;
    t->ports_per_chip = 7;
    t->link_gbps = 50.0;       /* 700 GB/s over 7 links, 2 directions */
    t->link_latency_us = 1.0;
    memset(t->port, PPU_TOPO_NO_PORT, sizeof t->port);
    for (int i = 0; i < PPU_TOPO_MAX_CHIPS; i++)
        t->numa[i] = -1;
}

/* 8 chips, each with 7 ICN links: a complete graph. */
static void preset_fullmesh8(struct ppu_topo *t)
{
    ppu_topo_init(t, "fullmesh8", 8);
    for (int a = 0; a < 8; a++)
        for (int b = a + 1; b < 8; b++)
            connect(t, a, b);
}

/* 16 chips with 7 links cannot all be one hop apart. Our guess at a
 * server wiring (the real one is not public): a circulant graph where chip
 * i links to i+-1, i+-2, i+-4 and i+8 (mod 16). Degree 7, diameter 2, and
 * every chip's two boards-neighbours are one hop away. */
static void preset_server16(struct ppu_topo *t)
{
    ppu_topo_init(t, "server16", 16);
    static const int offs[] = {1, 2, 4, 8};
    for (int a = 0; a < 16; a++)
        for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++)
            connect(t, a, (a + offs[k]) % 16);
}

/* 8 chips in a single bidirectional ring (a degraded or cheap server). */
static void preset_ring8(struct ppu_topo *t)
{
    ppu_topo_init(t, "ring8", 8);
    t->ports_per_chip = 2;
    for (int a = 0; a < 8; a++)
        connect(t, a, (a + 1) % 8);
}

/* 16 chips as a 4-dimensional hypercube (4 of 7 ports used). */
static void preset_hypercube16(struct ppu_topo *t)
{
    ppu_topo_init(t, "hypercube16", 16);
    t->ports_per_chip = 4;
    for (int a = 0; a < 16; a++)
        for (int d = 0; d < 4; d++)
            connect(t, a, a ^ (1 << d));
}

/* 16 chips whose 7 links each go to one of 7 ICN switch planes: every
 * pair is one hop apart (a full mesh to the planner), and a chip's 7
 * ports carry all of its traffic (the timing model shares them). The
 * real 16-chip server's wiring is not public; this is the switched form. */
static void preset_switch16(struct ppu_topo *t)
{
    ppu_topo_init(t, "switch16", 16);
    t->switch_planes = 7;
    for (int a = 0; a < 16; a++)
        for (int b = a + 1; b < 16; b++)
            connect(t, a, b);
}

ppu_result_t ppu_topo_sim_preset(const char *name, int nranks, struct ppu_topo *topo,
                                 char *err, size_t errlen)
{
    static const struct { const char *name; void (*build)(struct ppu_topo *); } presets[] = {
        {"fullmesh8", preset_fullmesh8},
        {"server16", preset_server16},
        {"ring8", preset_ring8},
        {"hypercube16", preset_hypercube16},
        {"switch16", preset_switch16},
    };
    if (strcmp(name, "auto") == 0)
        name = nranks <= 8 ? "fullmesh8" : "server16";
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name) != 0)
            continue;
        presets[i].build(topo);
        if (nranks > topo->nchips) {
            snprintf(err, errlen,
                     "PPU_SIM_TOPO=%s has %d chips, too few for %d ranks on one server",
                     name, topo->nchips, nranks);
            return PPU_INVALID_ARGUMENT;
        }
        return PPU_SUCCESS;
    }
    snprintf(err, errlen,
             "PPU_SIM_TOPO='%s' is not a preset (fullmesh8, server16, ring8, hypercube16, switch16, auto)",
             name);
    return PPU_INVALID_ARGUMENT;
}

void ppu_topo_restrict(struct ppu_topo *topo, int n)
{
    for (int a = 0; a < topo->nchips; a++)
        for (int b = 0; b < topo->nchips; b++)
            if (a >= n || b >= n)
                topo->link[a][b] = PPU_LINK_NONE;
    topo->nchips = n;
}

void ppu_topo_select(struct ppu_topo *dst, const struct ppu_topo *src, const int *chips, int n)
{
    *dst = *src;
    for (int a = 0; a < PPU_TOPO_MAX_CHIPS; a++)
        for (int b = 0; b < PPU_TOPO_MAX_CHIPS; b++)
            dst->link[a][b] = PPU_LINK_NONE;
    for (int a = 0; a < n; a++) {
        int ca = chips[a];
        for (int b = 0; b < n; b++) {
            int cb = chips[b];
            dst->link[a][b] = src->link[ca][cb];
            dst->gbps[a][b] = src->gbps[ca][cb];
            dst->latency_us[a][b] = src->latency_us[ca][cb];
            dst->port[a][b] = src->port[ca][cb];
        }
        dst->server[a] = src->server[ca];
        dst->numa[a] = src->numa[ca];
        memcpy(dst->pci[a], src->pci[ca], sizeof dst->pci[a]);
        memcpy(dst->host[a], src->host[ca], sizeof dst->host[a]);
    }
    for (int i = 0; i < dst->nnics; i++) { /* rails follow their chip */
        int c = dst->nic[i].chip;
        dst->nic[i].chip = -1;
        for (int a = 0; a < n; a++)
            if (chips[a] == c)
                dst->nic[i].chip = a;
    }
    dst->nchips = n;
}

/* Breadth-first search over up links from root: dist[c] hops (-1 not
 * reached), parent[c] on a shortest path (-1 for root and unreached),
 * first[c] the first hop from root towards c (-1 likewise). Returns the
 * largest distance reached. */
static int bfs(const struct ppu_topo *t, int root, int *dist, int *parent, int *first)
{
    int n = t->nchips, queue[PPU_TOPO_MAX_CHIPS], qh = 0, qt = 0, worst = 0;
    for (int i = 0; i < n; i++)
        dist[i] = parent[i] = first[i] = -1;
    dist[root] = 0;
    queue[qt++] = root;
    while (qh < qt) {
        int u = queue[qh++];
        for (int v = 0; v < n; v++)
            if (dist[v] < 0 && ppu_topo_up(t, u, v)) {
                dist[v] = dist[u] + 1;
                parent[v] = u;
                first[v] = u == root ? v : first[u];
                if (dist[v] > worst)
                    worst = dist[v];
                queue[qt++] = v;
            }
    }
    return worst;
}

int ppu_topo_diameter(const struct ppu_topo *t)
{
    int worst = 0, dist[PPU_TOPO_MAX_CHIPS], parent[PPU_TOPO_MAX_CHIPS], first[PPU_TOPO_MAX_CHIPS];
    for (int s = 0; s < t->nchips; s++) {
        int d = bfs(t, s, dist, parent, first);
        for (int i = 0; i < t->nchips; i++)
            if (dist[i] < 0)
                return -1;
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* Depth-first search for a Hamiltonian cycle over links not yet taken.
 * A step budget bounds the work on graphs with no such cycle; the search
 * depends on nothing but the graph and a fixed seed, so every rank finds
 * the same rings. */
struct ring_search {
    const struct ppu_topo *t;
    unsigned char used[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS];
    int path[PPU_TOPO_MAX_CHIPS];
    unsigned char on_path[PPU_TOPO_MAX_CHIPS];
    int order[PPU_TOPO_MAX_CHIPS]; /* neighbour order of this attempt */
    /* each chip's neighbours over links that are up, in this attempt's
     * order: the search walks them, not every chip */
    unsigned char nbr[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS];
    unsigned char deg[PPU_TOPO_MAX_CHIPS];
    long budget;
};

static int free_link(const struct ring_search *s, int a, int b)
{
    return ppu_topo_up(s->t, a, b) && !s->used[a][b];
}

static int dfs(struct ring_search *s, int depth)
{
    int n = s->t->nchips, u = s->path[depth - 1];
    if (--s->budget < 0)
        return 0;
    if (depth == n)
        return free_link(s, u, s->path[0]);
    for (int k = 0; k < s->deg[u]; k++) {
        int v = s->nbr[u][k];
        if (s->on_path[v] || s->used[u][v])
            continue;
        s->path[depth] = v;
        s->on_path[v] = 1;
        if (dfs(s, depth + 1))
            return 1;
        s->on_path[v] = 0;
    }
    return 0;
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* One greedy attempt: take rings (and, if pair_reverse, each ring's reverse
 * when its links are free) until none is left. Returns the count. */
static int greedy_rings(struct ring_search *s, uint64_t *rng, int max_rings, long *total,
                        int pair_reverse, int rings[][PPU_TOPO_MAX_CHIPS])
{
    int n = s->t->nchips, found = 0;
    memset(s->used, 0, sizeof s->used);
    while (found < max_rings && *total > 0) {
        for (int k = 0; k < n; k++)
            s->order[k] = k + 1;
        for (int k = n - 1; k > 0; k--) { /* random neighbour order */
            int j = (int)(xorshift(rng) % (uint64_t)(k + 1));
            int tmp = s->order[k];
            s->order[k] = s->order[j];
            s->order[j] = tmp;
        }
        for (int u = 0; u < n; u++) {
            s->deg[u] = 0;
            for (int k = 0; k < n; k++) {
                int v = (u + s->order[k]) % n;
                if (v != u && ppu_topo_up(s->t, u, v))
                    s->nbr[u][s->deg[u]++] = (unsigned char)v;
            }
        }
        memset(s->on_path, 0, sizeof s->on_path);
        s->path[0] = 0;
        s->on_path[0] = 1;
        s->budget = 20000 < *total ? 20000 : *total;
        long before = s->budget;
        int ok = dfs(s, 1);
        *total -= before - (s->budget > 0 ? s->budget : 0);
        if (!ok)
            break;
        int rev_free = pair_reverse;
        for (int i = 0; i < n; i++) {
            int a = s->path[i], b = s->path[(i + 1) % n];
            s->used[a][b] = 1;
            rings[found][i] = a;
        }
        found++;
        for (int i = 0; i < n && rev_free; i++)
            rev_free = free_link(s, s->path[(i + 1) % n], s->path[i]);
        if (rev_free && found < max_rings) {
            for (int i = 0; i < n; i++) {
                int a = s->path[(n - i) % n], b = s->path[(n - i - 1 + n) % n];
                s->used[a][b] = 1;
                rings[found][i] = a;
            }
            found++;
        }
    }
    return found;
}

int ppu_topo_find_rings(const struct ppu_topo *t, int max_rings,
                        int rings[][PPU_TOPO_MAX_CHIPS])
{
    int n = t->nchips;
    if (max_rings > PPU_TOPO_MAX_RINGS)
        max_rings = PPU_TOPO_MAX_RINGS;
    if (n <= 1) { /* no chip (an empty server): no ring */
        if (n == 1 && max_rings > 0)
            rings[0][0] = 0;
        return n == 1 && max_rings > 0 ? 1 : 0;
    }
    /* No chip can be in more rings than it has outgoing links. */
    int bound = max_rings;
    for (int a = 0; a < n; a++) {
        int deg = 0;
        for (int b = 0; b < n; b++)
            deg += ppu_topo_up(t, a, b);
        if (deg < bound)
            bound = deg;
    }
    /* on the heap, not in thread-local storage: in a shared library every
     * access to a _Thread_local object is a __tls_get_addr call, and the
     * search makes millions (it was half of a 1,024-thread init) */
    struct ring_search *s = calloc(1, sizeof *s);
    int(*trial)[PPU_TOPO_MAX_CHIPS] = malloc(sizeof *trial * PPU_TOPO_MAX_RINGS);
    if (!s || !trial) {
        free(s);
        free(trial);
        return 0;
    }
    s->t = t;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    long total = 3000000; /* DFS steps over all attempts: a few ms */
    int best = 0;
    for (int attempt = 0; attempt < 400 && total > 0 && best < bound; attempt++) {
        /* Pairing each ring with its reverse balances both directions of a
         * link; unpaired attempts can pack more rings (7 on a full mesh
         * of 8 needs them). */
        int got = greedy_rings(s, &rng, max_rings, &total, attempt % 2 == 0, trial);
        if (got > best) {
            best = got;
            memcpy(rings, trial, sizeof trial[0] * (size_t)got);
        }
        if (attempt == 0 && got == 0)
            break; /* no ring at all: do not spend the budget proving it */
    }
    free(s);
    free(trial);
    return best;
}

void ppu_topo_ring_str(const int *ring, int n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; n > 0 && i <= n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ">%d" : "%d", ring[i % n]);
}

ppu_result_t ppu_topo_set_down(struct ppu_topo *t, const char *list, char *err, size_t errlen)
{
    const char *p = list;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10);
        if (end == p || *end != '-')
            goto bad;
        p = end + 1;
        long b = strtol(p, &end, 10);
        if (end == p || (*end && *end != ','))
            goto bad;
        p = *end ? end + 1 : end;
        if (a < 0 || b < 0 || a >= t->nchips || b >= t->nchips || t->link[a][b] == PPU_LINK_NONE) {
            snprintf(err, errlen, "PPU_SIM_LINKS_DOWN: %ld-%ld is not a link of topology %s", a, b,
                     t->name);
            return PPU_INVALID_ARGUMENT;
        }
        t->link[a][b] = t->link[b][a] = PPU_LINK_DOWN;
    }
    return PPU_SUCCESS;
bad:
    snprintf(err, errlen, "PPU_SIM_LINKS_DOWN='%s' is not a list like 0-3,2-5", list);
    return PPU_INVALID_ARGUMENT;
}

ppu_result_t ppu_topo_sim_build(const char *preset, int nservers, int per_server,
                                struct ppu_topo *t, char *err, size_t errlen)
{
    if (nservers < 1 || per_server < 1 || nservers * per_server > PPU_TOPO_MAX_CHIPS) {
        snprintf(err, errlen, "%d simulated server(s) of %d chip(s) exceed %d chips", nservers,
                 per_server, PPU_TOPO_MAX_CHIPS);
        return PPU_INVALID_ARGUMENT;
    }
    struct ppu_topo one;
    ppu_result_t r = ppu_topo_sim_preset(preset, per_server, &one, err, errlen);
    if (r != PPU_SUCCESS)
        return r;
    ppu_topo_restrict(&one, per_server);
    *t = one;
    t->nchips = nservers * per_server;
    t->nservers = nservers;
    for (int s = 0; s < nservers; s++)
        for (int a = 0; a < per_server; a++) {
            int ga = s * per_server + a;
            t->server[ga] = s;
            for (int b = 0; b < per_server; b++) {
                int gb = s * per_server + b;
                t->link[ga][gb] = one.link[a][b];
                t->gbps[ga][gb] = one.gbps[a][b];
                t->latency_us[ga][gb] = one.latency_us[a][b];
                t->port[ga][gb] = one.port[a][b];
            }
        }
    if (nservers > 1)
        snprintf(t->name, sizeof t->name, "%dx%.20s", nservers, one.name);
    return PPU_SUCCESS;
}

void ppu_topo_hops(const struct ppu_topo *t, int hops[][PPU_TOPO_MAX_CHIPS],
                   int next[][PPU_TOPO_MAX_CHIPS])
{
    int parent[PPU_TOPO_MAX_CHIPS];
    for (int s = 0; s < t->nchips; s++)
        bfs(t, s, hops[s], parent, next[s]);
}

int ppu_topo_bfs_tree(const struct ppu_topo *t, int root, int *parent)
{
    int dist[PPU_TOPO_MAX_CHIPS], first[PPU_TOPO_MAX_CHIPS];
    return bfs(t, root, dist, parent, first);
}

int ppu_topo_mesh_groups(const struct ppu_topo *t, int *group)
{
    int n = t->nchips, ngroups = 0;
    for (int i = 0; i < n; i++)
        group[i] = -1;
    for (int seed = 0; seed < n; seed++) {
        if (group[seed] >= 0)
            continue;
        int members[PPU_TOPO_MAX_CHIPS], m = 0;
        members[m++] = seed;
        group[seed] = ngroups;
        for (int c = seed + 1; c < n; c++) {
            if (group[c] >= 0 || t->server[c] != t->server[seed])
                continue;
            int all = 1;
            for (int k = 0; k < m && all; k++)
                all = ppu_topo_up(t, c, members[k]);
            if (all) {
                members[m++] = c;
                group[c] = ngroups;
            }
        }
        ngroups++;
    }
    return ngroups;
}

void ppu_topo_rails(const struct ppu_topo *t, int *rail)
{
    for (int c = 0; c < t->nchips; c++) {
        rail[c] = -1;
        int local = 0;
        for (int k = 0; k < c; k++)
            local += t->server[k] == t->server[c];
        int nth = 0;
        for (int i = 0; i < t->nnics; i++) {
            const struct ppu_topo_nic *nic = &t->nic[i];
            if (nic->chip == c) {
                rail[c] = i;
                break;
            }
            if (nic->server == t->server[c] && nic->chip < 0 && nth++ == local && rail[c] < 0)
                rail[c] = i;
        }
    }
}

void ppu_topo_unreachable(const struct ppu_topo *t, char *buf, size_t len)
{
    int dist[PPU_TOPO_MAX_CHIPS], parent[PPU_TOPO_MAX_CHIPS], first[PPU_TOPO_MAX_CHIPS];
    size_t o = 0;
    buf[0] = '\0';
    /* A search from each server's first chip, redone only when the server
     * changes (a topology file may interleave servers' chips). */
    for (int c = 0, root = -1; c < t->nchips; c++) {
        int head = 0;
        while (t->server[head] != t->server[c])
            head++;
        if (head != root) {
            bfs(t, head, dist, parent, first);
            root = head;
        }
        if (dist[c] < 0 && o + 8 < len)
            o += (size_t)snprintf(buf + o, len - o, "%s%d", o ? "," : "", c);
    }
}
