#include "topo.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

static void connect(struct ppu_topo *t, int a, int b)
{
    if (a == b)
        return;
    t->link[a][b] = PPU_LINK_UP;
    t->link[b][a] = PPU_LINK_UP;
}

static void init_common(struct ppu_topo *t, const char *name, int nchips)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->nchips = nchips;
    t->ports_per_chip = 7;
    t->link_gbps = 50.0;       /* 700 GB/s over 7 links, 2 directions */
    t->link_latency_us = 1.0;
}

/* 8 chips, each with 7 ICN links: a complete graph. */
static void preset_fullmesh8(struct ppu_topo *t)
{
    init_common(t, "fullmesh8", 8);
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
    init_common(t, "server16", 16);
    static const int offs[] = {1, 2, 4, 8};
    for (int a = 0; a < 16; a++)
        for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++)
            connect(t, a, (a + offs[k]) % 16);
}

/* 8 chips in a single bidirectional ring (a degraded or cheap server). */
static void preset_ring8(struct ppu_topo *t)
{
    init_common(t, "ring8", 8);
    t->ports_per_chip = 2;
    for (int a = 0; a < 8; a++)
        connect(t, a, (a + 1) % 8);
}

/* 16 chips as a 4-dimensional hypercube (4 of 7 ports used). */
static void preset_hypercube16(struct ppu_topo *t)
{
    init_common(t, "hypercube16", 16);
    t->ports_per_chip = 4;
    for (int a = 0; a < 16; a++)
        for (int d = 0; d < 4; d++)
            connect(t, a, a ^ (1 << d));
}

ppu_result_t ppu_topo_sim_preset(const char *name, int nranks, struct ppu_topo *topo,
                                 char *err, size_t errlen)
{
    static const struct { const char *name; void (*build)(struct ppu_topo *); } presets[] = {
        {"fullmesh8", preset_fullmesh8},
        {"server16", preset_server16},
        {"ring8", preset_ring8},
        {"hypercube16", preset_hypercube16},
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
             "PPU_SIM_TOPO='%s' is not a preset (fullmesh8, server16, ring8, hypercube16, auto)",
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

int ppu_topo_diameter(const struct ppu_topo *t)
{
    int n = t->nchips, worst = 0;
    for (int s = 0; s < n; s++) {
        int dist[PPU_TOPO_MAX_CHIPS], queue[PPU_TOPO_MAX_CHIPS], qh = 0, qt = 0;
        for (int i = 0; i < n; i++)
            dist[i] = -1;
        dist[s] = 0;
        queue[qt++] = s;
        while (qh < qt) {
            int u = queue[qh++];
            for (int v = 0; v < n; v++)
                if (dist[v] < 0 && ppu_topo_up(t, u, v)) {
                    dist[v] = dist[u] + 1;
                    queue[qt++] = v;
                }
        }
        for (int i = 0; i < n; i++) {
            if (dist[i] < 0)
                return -1;
            if (dist[i] > worst)
                worst = dist[i];
        }
    }
    return worst;
}

/* Depth-first search for a Hamiltonian cycle over links not yet taken.
 * The budget bounds the search on graphs with no such cycle. */
struct ring_search {
    const struct ppu_topo *t;
    unsigned char used[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS];
    int path[PPU_TOPO_MAX_CHIPS];
    unsigned char on_path[PPU_TOPO_MAX_CHIPS];
    long budget;
    int rot; /* rotates the neighbour order so successive rings differ */
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
    for (int k = 0; k < n; k++) {
        int v = (u + 1 + k + s->rot) % n;
        if (s->on_path[v] || !free_link(s, u, v))
            continue;
        s->path[depth] = v;
        s->on_path[v] = 1;
        if (dfs(s, depth + 1))
            return 1;
        s->on_path[v] = 0;
    }
    return 0;
}

int ppu_topo_find_rings(const struct ppu_topo *t, int max_rings,
                        int rings[][PPU_TOPO_MAX_CHIPS])
{
    int n = t->nchips;
    if (max_rings > PPU_TOPO_MAX_RINGS)
        max_rings = PPU_TOPO_MAX_RINGS;
    if (n <= 1) {
        if (max_rings > 0)
            rings[0][0] = 0;
        return max_rings > 0 ? 1 : 0;
    }
    struct ring_search s;
    memset(&s, 0, sizeof s);
    s.t = t;
    int found = 0;
    /* Greedy: take a cycle, retire its directed links, look again with a
     * different neighbour order. */
    for (int attempt = 0; attempt < 4 * n && found < max_rings; attempt++) {
        memset(s.on_path, 0, sizeof s.on_path);
        s.path[0] = 0;
        s.on_path[0] = 1;
        s.budget = 200000;
        s.rot = attempt;
        if (!dfs(&s, 1))
            continue;
        for (int i = 0; i < n; i++) {
            int a = s.path[i], b = s.path[(i + 1) % n];
            s.used[a][b] = 1;
            rings[found][i] = a;
        }
        found++;
    }
    return found;
}

void ppu_topo_ring_str(const int *ring, int n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i <= n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ">%d" : "%d", ring[i % n]);
}
