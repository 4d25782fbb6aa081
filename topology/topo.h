/* The link graph of the chips on one server, and searches over it.
 * Depends on util (logging) only. */
#ifndef PPU_TOPO_H
#define PPU_TOPO_H

#include <stddef.h>
#include "ppuccl.h"

#define PPU_TOPO_MAX_CHIPS 64
#define PPU_TOPO_MAX_RINGS 16
#define PPU_TOPO_MAX_NICS 64
#define PPU_TOPO_NO_PORT 255

enum ppu_link_state { PPU_LINK_NONE = 0, PPU_LINK_UP = 1, PPU_LINK_DOWN = 2 };

/* A network interface (RDMA or Ethernet) of a server. */
struct ppu_topo_nic {
    char name[32];   /* e.g. mlx5_0, eth0 */
    char pci[20];    /* PCI bus id, "" if unknown */
    int server;      /* server index */
    int chip;        /* chip it serves as a rail (global chip id), -1 none */
    int numa;        /* NUMA node, -1 unknown */
    double gbps;     /* GB/s, 0 unknown */
    int rdma;        /* 1: RDMA capable */
};

/* The PPU side of a cluster: chips (global ids 0..nchips-1), grouped into
 * servers, and the ICN links between them. Links are full duplex: a link
 * a-b is stored in both link[a][b] and link[b][a]. */
struct ppu_topo {
    char name[32];
    char source[16];       /* "preset", "file", "probe" */
    int nchips;
    int nservers;
    int ports_per_chip;
    int switch_planes;     /* >0: each chip's ports go to this many ICN switch
                            * planes (every pair one hop, ports shared) */
    double link_gbps;      /* default bandwidth of one link, one direction (GB/s) */
    double link_latency_us;
    unsigned char link[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS]; /* ppu_link_state */
    float gbps[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS];         /* per link, one direction */
    float latency_us[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS];
    unsigned char port[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS]; /* port on a of link a-b */
    int server[PPU_TOPO_MAX_CHIPS];   /* server index of each chip */
    int numa[PPU_TOPO_MAX_CHIPS];     /* NUMA node of each chip, -1 unknown */
    char pci[PPU_TOPO_MAX_CHIPS][20]; /* PCI bus id of each chip, "" unknown */
    char host[PPU_TOPO_MAX_CHIPS][32]; /* server host name per chip, "" unknown */
    int nnics;
    struct ppu_topo_nic nic[PPU_TOPO_MAX_NICS];
};

/* Clear topo and set defaults for nchips chips on one server. */
void ppu_topo_init(struct ppu_topo *t, const char *name, int nchips);
/* Add (or re-state) the full-duplex link a-b with the topology's default
 * bandwidth and latency. */
void ppu_topo_connect(struct ppu_topo *t, int a, int b, int state);

/* A preset by name (fullmesh8, server16, ring8, hypercube16, switch16, or "auto",
 * which picks the smallest that holds nranks). err gets a sentence on
 * failure. */
ppu_result_t ppu_topo_sim_preset(const char *name, int nranks, struct ppu_topo *topo,
                                 char *err, size_t errlen);

/* Restrict topo to its first n chips (a communicator of n ranks uses chips
 * 0..n-1 of the server). */
void ppu_topo_restrict(struct ppu_topo *topo, int n);

/* dst = the chips[0..n) of src, renumbered 0..n-1 (a split communicator's
 * view of its parent's topology). */
void ppu_topo_select(struct ppu_topo *dst, const struct ppu_topo *src, const int *chips, int n);

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

/* Mark links down from a list like "0-3,2-5" (PPU_SIM_LINKS_DOWN). A pair
 * that is not a link of t is an error naming it. */
ppu_result_t ppu_topo_set_down(struct ppu_topo *t, const char *list, char *err, size_t errlen);

/* The simulated cluster: nservers copies of preset, each restricted to
 * per_server chips; chips of server s get ids s*per_server.. . */
ppu_result_t ppu_topo_sim_build(const char *preset, int nservers, int per_server,
                                struct ppu_topo *t, char *err, size_t errlen);

/* Hops over up links between every pair (0 on the diagonal, -1 no path)
 * and the first hop of a shortest path (-1 none). */
void ppu_topo_hops(const struct ppu_topo *t, int hops[][PPU_TOPO_MAX_CHIPS],
                   int next[][PPU_TOPO_MAX_CHIPS]);

/* A breadth-first spanning tree over up links of root's server: parent[c]
 * (-1 for the root and for chips not reached). Returns its depth. */
int ppu_topo_bfs_tree(const struct ppu_topo *t, int root, int *parent);

/* Partition each server's chips into groups in which every pair has a
 * direct up link (greedy, largest first). group[c] is c's group id;
 * returns the group count. One-shot/two-shot run inside a group. */
int ppu_topo_mesh_groups(const struct ppu_topo *t, int *group);

/* rail[c]: the NIC index that chip c uses between servers (its own NIC if
 * one names it, else the NIC of the same local index on its server), -1
 * when the server has no NIC. */
void ppu_topo_rails(const struct ppu_topo *t, int *rail);

/* Chips that cannot reach chip 0 of their server, as "3,5" (empty: none). */
void ppu_topo_unreachable(const struct ppu_topo *t, char *buf, size_t len);

/* The hardware probe (layout in topo_probe.c). No chips found is a success
 * with t->nchips == 0. */
ppu_result_t ppu_topo_probe(const char *root, struct ppu_topo *t, char *err, size_t errlen);

/* A cluster in two levels, with no N x N array: which server each rank is
 * on, and each server's link graph over its ranks (chip i of server s's
 * graph is its i-th rank in rank order). Servers may share one graph (a
 * simulated cluster of one preset). Servers are numbered in the order of
 * their first rank. */
struct ppu_cluster {
    char name[32], source[16];
    int nranks, nservers;
    int *server;                   /* per rank */
    int *local;                    /* per rank: its index among its server's ranks */
    const struct ppu_topo **stopo; /* per server */
    struct ppu_topo *own;          /* the graphs this cluster allocated */
};

/* The cluster of the first n chips of a dense topology (one rank a chip). */
ppu_result_t ppu_cluster_from_topo(struct ppu_cluster *cl, const struct ppu_topo *t, int n);
/* nservers servers of per_server ranks each, every one wired as preset
 * (restricted to per_server chips); server s holds ranks s*per_server.. */
ppu_result_t ppu_cluster_sim(struct ppu_cluster *cl, const char *preset, int nservers,
                             int per_server, char *err, size_t errlen);
/* dst = the ranks members[0..n) of src, in that order (a split
 * communicator's cluster): their servers, renumbered in the order of
 * their first member, each with the graph of its members' chips. */
ppu_result_t ppu_cluster_select(struct ppu_cluster *dst, const struct ppu_cluster *src,
                                const int *members, int n);
void ppu_cluster_free(struct ppu_cluster *cl);
/* Are ranks a and b on one server with an ICN link up between them? */
int ppu_cluster_icn_up(const struct ppu_cluster *cl, int a, int b);

/* One-line description of a ring ("0>1>2>0") into buf. */
void ppu_topo_ring_str(const int *ring, int n, char *buf, size_t len);

#endif
