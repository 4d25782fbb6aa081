/* ppu-topo: print a simulated server's link graph and the rings the
 * library would use for a given rank count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "param.h"
#include "topo.h"

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--sim PRESET] [--ranks N] | --params\n"
                    "  PRESET: fullmesh8 (default), server16, ring8, hypercube16\n"
                    "  N: ranks on the server (default: every chip)\n"
                    "  --params: print every PPU_* parameter as a Markdown table\n", argv0);
    return 2;
}

/* Hops between every pair over up links (0 on the diagonal, -1 none). */
static void hops(const struct ppu_topo *t, int d[][PPU_TOPO_MAX_CHIPS])
{
    int n = t->nchips;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            d[a][b] = a == b ? 0 : ppu_topo_up(t, a, b) ? 1 : -1;
    for (int k = 0; k < n; k++)
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++)
                if (d[a][k] >= 0 && d[k][b] >= 0 && (d[a][b] < 0 || d[a][k] + d[k][b] < d[a][b]))
                    d[a][b] = d[a][k] + d[k][b];
}

static int print_params(void)
{
    const struct ppu_param_def *t = ppu_param_table();
    printf("| parameter | default | meaning |\n|---|---|---|\n");
    for (int i = 0; i < PPU_P_COUNT; i++)
        printf("| `%s` | `%s` | %s |\n", t[i].name, *t[i].def ? t[i].def : "(unset)", t[i].help);
    return 0;
}

int main(int argc, char **argv)
{
    const char *preset = "fullmesh8";
    int ranks = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sim") && i + 1 < argc)
            preset = argv[++i];
        else if (!strcmp(argv[i], "--params"))
            return print_params();
        else if (!strcmp(argv[i], "--ranks") && i + 1 < argc)
            ranks = atoi(argv[++i]);
        else
            return usage(argv[0]);
    }
    struct ppu_topo t;
    char err[256];
    if (ppu_topo_sim_preset(preset, ranks > 0 ? ranks : 1, &t, err, sizeof err) != PPU_SUCCESS) {
        fprintf(stderr, "ppu-topo: %s\n", err);
        return 2;
    }
    if (ranks > 0)
        ppu_topo_restrict(&t, ranks);
    int n = t.nchips, d[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS];
    hops(&t, d);
    printf("# topology %s: %d chips, %d ICN ports each, %.0f GB/s per link direction, "
           "diameter %d\n", t.name, n, t.ports_per_chip, t.link_gbps, ppu_topo_diameter(&t));
    printf("# legend: X self, ICN one hop, ICN2 two hops (ICNk: k hops), - no path, DOWN link down\n");
    printf("%6s", "");
    for (int b = 0; b < n; b++)
        printf(" %5s%-2d", "PPU", b);
    printf("\n");
    for (int a = 0; a < n; a++) {
        printf("PPU%-3d", a);
        for (int b = 0; b < n; b++) {
            char cell[16];
            if (a == b)
                snprintf(cell, sizeof cell, "X");
            else if (t.link[a][b] == PPU_LINK_DOWN)
                snprintf(cell, sizeof cell, "DOWN");
            else if (d[a][b] < 0)
                snprintf(cell, sizeof cell, "-");
            else if (d[a][b] == 1)
                snprintf(cell, sizeof cell, "ICN");
            else
                snprintf(cell, sizeof cell, "ICN%d", d[a][b]);
            printf(" %7s", cell);
        }
        printf("\n");
    }
    int rings[PPU_TOPO_MAX_RINGS][PPU_TOPO_MAX_CHIPS];
    int nr = ppu_topo_find_rings(&t, PPU_TOPO_MAX_RINGS, rings);
    printf("# %d link-disjoint directed ring(s):\n", nr);
    for (int k = 0; k < nr; k++) {
        char s[256];
        ppu_topo_ring_str(rings[k], n, s, sizeof s);
        printf("#   ring %d: %s\n", k, s);
    }
    return nr > 0 ? 0 : 1;
}
