/* ppu-topo: show the topology ppuccl would use (or a preset or file): the
 * chip link matrix, the host part from hwloc, and the rings, trees, mesh
 * groups and rails the planner works with. Exit 2 on bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/discover.h"
#include "../src/util/param.h"
#include "topo.h"
#include "topo_host.h"
#include "topo_xml.h"

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--sim PRESET | --topo FILE] [--ranks N] [--servers S] [--down LIST]\n"
            "          [--json] [--dump FILE] | --params\n"
            "  default: what the library discovers (PPU_TOPO_FILE, the probe, PPU_SIM_TOPO)\n"
            "  --sim PRESET   fullmesh8, server16, ring8, hypercube16\n"
            "  --topo FILE    a topology file (topology/TOPOLOGY_FILE.md)\n"
            "  --ranks N      chips per simulated cluster (default: the preset's size)\n"
            "  --servers S    simulated servers (with --sim)\n"
            "  --down LIST    mark links down, e.g. 0-3,2-5\n"
            "  --json         machine-readable output\n"
            "  --dump FILE    also write the topology as XML\n"
            "  --params       every PPU_* parameter as a Markdown table\n", argv0);
    return 2;
}

static int print_params(void)
{
    const struct ppu_param_def *t = ppu_param_table();
    printf("| parameter | default | allowed | meaning |\n|---|---|---|---|\n");
    for (int i = 0; i < PPU_P_COUNT; i++) {
        char allowed[200];
        ppu_param_allowed((enum ppu_param)i, allowed, sizeof allowed);
        printf("| `%s` | `%s` | %s | %s |\n", t[i].name, *t[i].def ? t[i].def : "(unset)",
               allowed, t[i].help);
    }
    return 0;
}

/* Rings of one server, in global chip ids. */
static int server_rings(const struct ppu_topo *t, int s, int rings[][PPU_TOPO_MAX_CHIPS], int *n)
{
    static struct ppu_topo sub;
    int ids[PPU_TOPO_MAX_CHIPS], k = 0;
    for (int c = 0; c < t->nchips; c++)
        if (t->server[c] == s)
            ids[k++] = c;
    ppu_topo_init(&sub, t->name, k);
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
            sub.link[a][b] = t->link[ids[a]][ids[b]];
    int nr = ppu_topo_find_rings(&sub, PPU_TOPO_MAX_RINGS, rings);
    for (int r = 0; r < nr; r++)
        for (int i = 0; i < k; i++)
            rings[r][i] = ids[rings[r][i]];
    *n = k;
    return nr;
}

static void print_text(const struct ppu_topo *t, const struct ppu_host *h)
{
    int n = t->nchips, hops[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS], next[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS];
    ppu_topo_hops(t, hops, next);
    int nup = 0, ndown = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            nup += t->link[a][b] == PPU_LINK_UP;
            ndown += t->link[a][b] == PPU_LINK_DOWN;
        }
    printf("# topology %s (from %s): %d chips on %d server(s), %d ICN links up, %d down, "
           "diameter %d\n", t->name, t->source, n, t->nservers, nup, ndown, ppu_topo_diameter(t));
    printf("# legend: X self, ICN one hop, ICNk k hops, DOWN link down (and no other path: -),\n"
           "#         NET other server (network), - no path\n");
    printf("%6s", "");
    for (int b = 0; b < n; b++)
        printf(" %5s%-2d", "PPU", b);
    printf("  NUMA\n");
    for (int a = 0; a < n; a++) {
        printf("PPU%-3d", a);
        for (int b = 0; b < n; b++) {
            char cell[16];
            if (a == b) snprintf(cell, sizeof cell, "X");
            else if (t->server[a] != t->server[b]) snprintf(cell, sizeof cell, "NET");
            else if (t->link[a][b] == PPU_LINK_DOWN) snprintf(cell, sizeof cell, "DOWN");
            else if (hops[a][b] < 0) snprintf(cell, sizeof cell, "-");
            else if (hops[a][b] == 1) snprintf(cell, sizeof cell, "ICN");
            else snprintf(cell, sizeof cell, "ICN%d", hops[a][b]);
            printf(" %7s", cell);
        }
        printf("  %4d\n", t->numa[a]);
    }
    printf("\n# host: %d package(s), %d NUMA node(s), %d core(s), %d PU(s), %d PCI device(s)\n",
           h->npackages, h->nnuma, h->ncores, h->npus, h->npci);
    for (int i = 0; i < h->nnets; i++)
        printf("#   NIC %-10s %-8s NUMA %2d  PCI %s\n", h->net[i].name,
               h->net[i].rdma ? "RDMA" : "Ethernet", h->net[i].numa,
               h->net[i].pci[0] ? h->net[i].pci : "(virtual)");
    if (h->nnets == 0)
        printf("#   no network devices\n");
    int rail[PPU_TOPO_MAX_CHIPS];
    ppu_topo_rails(t, rail);
    if (t->nnics) {
        printf("# topology NICs and rails:\n");
        for (int c = 0; c < n; c++)
            if (rail[c] >= 0)
                printf("#   PPU%d (server %d) -> %s\n", c, t->server[c], t->nic[rail[c]].name);
    }
    for (int s = 0; s < t->nservers; s++) {
        int first = 0;
        while (first < t->nchips && t->server[first] != s)
            first++;
        if (first == t->nchips) { /* a topology file may list a server without chips */
            printf("\n# server %d: no chips\n", s);
            continue;
        }
        int rings[PPU_TOPO_MAX_RINGS][PPU_TOPO_MAX_CHIPS], k;
        int nr = server_rings(t, s, rings, &k);
        printf("\n# server %d: %d link-disjoint directed ring(s)%s\n", s, nr,
               nr ? "" : " -- none: chips are disconnected or a link is missing");
        for (int r = 0; r < nr; r++) {
            char buf[512];
            ppu_topo_ring_str(rings[r], k, buf, sizeof buf);
            printf("#   ring %d: %s\n", r, buf);
        }
        int parent[PPU_TOPO_MAX_CHIPS];
        int depth = ppu_topo_bfs_tree(t, first, parent);
        printf("#   tree from PPU%d (depth %d):", first, depth);
        for (int c = 0; c < n; c++)
            if (parent[c] >= 0)
                printf(" %d<-%d", c, parent[c]);
        printf("\n");
    }
    int group[PPU_TOPO_MAX_CHIPS], ng = ppu_topo_mesh_groups(t, group);
    printf("# mesh groups (every pair one hop apart; one-shot/two-shot run inside one):\n");
    for (int g = 0; g < ng; g++) {
        printf("#   group %d:", g);
        for (int c = 0; c < n; c++)
            if (group[c] == g)
                printf(" %d", c);
        printf("\n");
    }
    char who[256];
    ppu_topo_unreachable(t, who, sizeof who);
    if (who[0])
        printf("# WARNING: chips %s cannot reach their server's first chip over up links\n", who);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static void print_json(const struct ppu_topo *t, const struct ppu_host *h)
{
    printf("{\"name\":");
    json_str(t->name);
    printf(",\"source\":");
    json_str(t->source);
    printf(",\"servers\":%d,\"diameter\":%d,\"chips\":[", t->nservers, ppu_topo_diameter(t));
    for (int c = 0; c < t->nchips; c++) {
        printf("%s{\"id\":%d,\"server\":%d,\"numa\":%d,\"pci\":", c ? "," : "", c, t->server[c], t->numa[c]);
        json_str(t->pci[c]);
        printf("}");
    }
    printf("],\"links\":[");
    int first = 1;
    for (int a = 0; a < t->nchips; a++)
        for (int b = a + 1; b < t->nchips; b++) {
            if (t->link[a][b] == PPU_LINK_NONE)
                continue;
            printf("%s{\"a\":%d,\"b\":%d,\"state\":\"%s\",\"gbps\":%g,\"latency_us\":%g}",
                   first ? "" : ",", a, b, t->link[a][b] == PPU_LINK_UP ? "up" : "down",
                   t->gbps[a][b], t->latency_us[a][b]);
            first = 0;
        }
    printf("],\"rings\":[");
    first = 1;
    for (int s = 0; s < t->nservers; s++) {
        int rings[PPU_TOPO_MAX_RINGS][PPU_TOPO_MAX_CHIPS], k;
        int nr = server_rings(t, s, rings, &k);
        for (int r = 0; r < nr; r++) {
            printf("%s[", first ? "" : ",");
            for (int i = 0; i < k; i++)
                printf("%s%d", i ? "," : "", rings[r][i]);
            printf("]");
            first = 0;
        }
    }
    printf("],\"host\":{\"packages\":%d,\"numa_nodes\":%d,\"cores\":%d,\"nics\":[", h->npackages,
           h->nnuma, h->ncores);
    for (int i = 0; i < h->nnets; i++) {
        printf("%s{\"name\":", i ? "," : "");
        json_str(h->net[i].name);
        printf(",\"rdma\":%s,\"numa\":%d}", h->net[i].rdma ? "true" : "false", h->net[i].numa);
    }
    printf("]}}\n");
}

/* A cluster too large for one matrix: the servers, ranks a server and
 * rails, then one server's matrix and rings (every server is alike). */
static int print_cluster(const char *sim, int servers, int per, int json)
{
    struct ppu_cluster cl;
    char err[512];
    struct ppu_topo one;
    if (per == 0) { /* the preset's own size */
        if (ppu_topo_sim_preset(sim, 1, &one, err, sizeof err) != PPU_SUCCESS) {
            fprintf(stderr, "ppu-topo: %s\n", err);
            return 2;
        }
        per = one.nchips;
    }
    if (ppu_cluster_sim(&cl, sim, servers, per, err, sizeof err) != PPU_SUCCESS) {
        fprintf(stderr, "ppu-topo: %s\n", err);
        return 2;
    }
    if (json) {
        printf("{\"cluster\":\"%s\",\"source\":\"%s\",\"ranks\":%d,\"servers\":%d,"
               "\"ranks_per_server\":%d,\"rails\":%d,\"nics\":0}\n", cl.name, cl.source,
               cl.nranks, cl.nservers, per, per);
    } else {
        printf("cluster %s (%s): %d ranks, %d servers x %d chips, no N x N matrix\n", cl.name,
               cl.source, cl.nranks, cl.nservers, per);
        printf("rails: %d (chip j of every server is on rail j: %d ranks a rail); NICs: none "
               "simulated (links between servers are TCP)\n", per, cl.nservers);
        printf("every server is wired as below (global rank = server x %d + chip):\n\n", per);
        struct ppu_host host;
        if (ppu_host_discover(&host, err, sizeof err) != PPU_SUCCESS)
            memset(&host, 0, sizeof host);
        one = *cl.stopo[0];
        print_text(&one, &host);
    }
    ppu_cluster_free(&cl);
    return 0;
}

int main(int argc, char **argv)
{
    const char *sim = NULL, *file = NULL, *dump = NULL, *down = NULL;
    int ranks = 0, servers = 1, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--params")) return print_params();
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--sim") && v) { sim = v; i++; }
        else if (!strcmp(a, "--topo") && v) { file = v; i++; }
        else if (!strcmp(a, "--dump") && v) { dump = v; i++; }
        else if (!strcmp(a, "--down") && v) { down = v; i++; }
        else if (!strcmp(a, "--ranks") && v) { ranks = atoi(v); i++; }
        else if (!strcmp(a, "--servers") && v) { servers = atoi(v); i++; }
        else return usage(argv[0]);
    }
    static struct ppu_topo t;
    char err[512];
    ppu_result_t r;
    int per_sim = sim && ranks > 0 ? ranks / (servers > 0 ? servers : 1) : 0;
    if (sim && !per_sim && ppu_topo_sim_preset(sim, 1, &t, err, sizeof err) == PPU_SUCCESS)
        per_sim = t.nchips;
    if (sim && (long)servers * per_sim > PPU_TOPO_MAX_CHIPS)
        return print_cluster(sim, servers, per_sim, json);
    if (file) {
        r = ppu_topo_load_xml(file, &t, err, sizeof err);
    } else if (sim) {
        int per = ranks > 0 ? ranks / (servers > 0 ? servers : 1) : 0;
        if (per == 0) { /* the preset's own size */
            r = ppu_topo_sim_preset(sim, 1, &t, err, sizeof err);
            per = t.nchips;
        }
        r = ppu_topo_sim_build(sim, servers, per, &t, err, sizeof err);
    } else {
        r = ppu_discover_topology(ranks > 0 ? ranks : 8, &t, err, sizeof err);
    }
    if (r == PPU_SUCCESS && down)
        r = ppu_topo_set_down(&t, down, err, sizeof err);
    if (r != PPU_SUCCESS) {
        fprintf(stderr, "ppu-topo: %s\n", err);
        return 2;
    }
    struct ppu_host host;
    if (ppu_host_discover(&host, err, sizeof err) != PPU_SUCCESS)
        memset(&host, 0, sizeof host);
    if (!strcmp(t.source, "preset"))
        ppu_discover_assign_numa(&t, host.nnuma);
    if (json)
        print_json(&t, &host);
    else
        print_text(&t, &host);
    if (dump && ppu_topo_save_xml(&t, dump, err, sizeof err) != PPU_SUCCESS) {
        fprintf(stderr, "ppu-topo: %s\n", err);
        return 2;
    }
    return 0;
}
