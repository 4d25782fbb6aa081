/* The link graph of the chips on one server, and searches over it.
 * Depends on util (logging) only. */
#ifndef PPU_TOPO_H
#define PPU_TOPO_H

#include <stddef.h>
#include "ppuccl.h"

#define PPU_TOPO_MAX_CHIPS 64
#define PPU_TOPO_MAX_RINGS 16

enum ppu_link_state { PPU_LINK_NONE = 0, PPU_LINK_UP = 1, PPU_LINK_DOWN = 2 };

struct ppu_topo {
    char name[32];
    int nchips;
    int ports_per_chip;
    double link_gbps;      /* bandwidth of one link, one direction (GB/s) */
    double link_latency_us;
    unsigned char link[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS]; /* ppu_link_state */
};

/* A preset by name (fullmesh8, server16, ring8, hypercube16, or "auto",
 * which picks the smallest that holds nranks). err gets a sentence on
 * failure. */
ppu_result_t ppu_topo_sim_preset(const char *name, int nranks, struct ppu_topo *topo,
                                 char *err, size_t errlen);

/* Restrict topo to its first n chips (a communicator of n ranks uses chips
 * 0..n-1 of the server). */
void ppu_topo_restrict(struct ppu_topo *topo, int n);

static inline int ppu_topo_up(const struct ppu_topo *t, int a, int b)
{
    return t->link[a][b] == PPU_LINK_UP;
}

/* Up to max_rings directed Hamiltonian cycles over the chips whose directed
 * links are pairwise disjoint. rings[k][i] is the i-th chip of ring k,
 * starting at chip 0. Returns the count found (0 when the graph holds no
 * ring; n == 1 yields one trivial ring). */
int ppu_topo_find_rings(const struct ppu_topo *t, int max_rings,
                        int rings[][PPU_TOPO_MAX_CHIPS]);

/* Largest shortest-path distance in hops over up links; -1 if disconnected. */
int ppu_topo_diameter(const struct ppu_topo *t);

/* One-line description of a ring ("0>1>2>0") into buf. */
void ppu_topo_ring_str(const int *ring, int n, char *buf, size_t len);

#endif
