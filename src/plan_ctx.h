/* The plan context: everything a schedule depends on, and nothing else.
 *
 * Planning is a pure function: plan(ctx, call, rank) -> schedule, for any
 * rank of the job, with no communicator, link or process behind it. The
 * communicator builds one context at init and every rank's is the same
 * (ranks compare a hash of it through the bootstrap, plan_agree.c); the
 * timing model and the schedule checker build contexts of their own, of
 * any size, and get the very schedules the executor would run.
 *
 * The context is in two levels, as a cluster is: per rank its server (no
 * N x N array anywhere), per server the dense link graph of its chips
 * (struct ppu_topo, up to 64 chips). Rings, trees and server tables are
 * sized at run time. */
#ifndef PPU_PLAN_CTX_H
#define PPU_PLAN_CTX_H

#include <stddef.h>

#include "../topology/topo.h"
#include "ppuccl.h"
#include "schedule.h"

#define PPU_MAX_CHANNELS 16

enum ppu_coll {
    PPU_COLL_ALLREDUCE = 0,
    PPU_COLL_BROADCAST,
    PPU_COLL_REDUCE,
    PPU_COLL_ALLGATHER,
    PPU_COLL_REDUCE_SCATTER,
    PPU_COLL_ALLTOALL,
    PPU_COLL_ALLTOALLV,
    PPU_COLL_SEND,
    PPU_COLL_RECV,
    PPU_NUM_COLLS
};

/* The planner's cost model: alpha per message hop, and the slower of two
 * bandwidths: bytes on the busiest link over the link's, and the bytes a
 * rank copies or reduces over its memory's (per enum ppu_proto). */
struct ppu_model {
    double alpha_us;
    double link_gbps[PPU_NUM_PROTOS];
    double mem_gbps[PPU_NUM_PROTOS];
    double net_alpha_us; /* a message between servers */
    double net_gbps;     /* one rank's network link */
    /* more for a message that crosses the fabric's top tier: between
     * servers on different rails of a rail-optimized fabric (a flat
     * algorithm's hops mostly are; a rail's never are) */
    double net_top_us;
    /* what one chip sends at once over all its ICN links (GB/s), where
     * they are ports onto switch planes that any message may use, so a
     * message gets link_gbps (all of them) but a chip's messages share
     * them; 0: links of their own */
    double chip_gbps;
    /* 1: a link's transfer is the rank's own copy (shared memory on this
     * host), so link time and memory time are one; 0: links move data
     * while the memory does other work */
    int link_is_copy;
};

/* Every setting that changes a plan, as the planner uses it. */
struct ppu_plan_settings {
    size_t chunk_bytes;       /* PPU_CHUNK_SIZE: ring message (one FIFO slot), whole pages */
    size_t peer_slot;         /* PPU_P2P_CHUNK_SIZE: peer-link message, <= chunk_bytes */
    size_t ll_max;            /* PPU_LL_MAX_BYTES: largest low-latency message, <= peer_slot */
    size_t oneshot_max;       /* PPU_ONESHOT_MAX_BYTES */
    size_t channel_min_bytes; /* PPU_CHANNEL_MIN_BYTES */
    int fifo_slots;           /* PPU_FIFO_SLOTS: slots of a ring link */
    int peer_slots;           /* slots of a peer link */
    int nchannels;            /* PPU_NCHANNELS: 0 picks */
    /* PPU_ALGO / PPU_PROTO: per collective, a bit mask of the algorithms
     * and protocols allowed (0: all) */
    unsigned algo_mask[PPU_NUM_COLLS], proto_mask[PPU_NUM_COLLS];
};

struct ppu_plan_ctx {
    int nranks;
    struct ppu_plan_settings set;
    struct ppu_model model;
    /* channels: link-disjoint rings where the topology has them, each a
     * list of ranks (rings[c * nranks + i]: position i of ring c) */
    int nchannels, nrings_found;
    int *rings;
    /* across servers: the most channels' rings that leave a server from one
     * rank, or enter one at one rank (its network link carries them all) */
    int ring_net_load;
    int *ring_pos; /* ring_pos[c * nranks + r]: r's position on ring c */
    /* every rank one ICN hop from every other (one server, a full mesh) */
    int mesh;
    /* the tree all-reduce's two trees: tree_parent[t * nranks + r] is r's
     * parent in tree t, -1 at a root */
    int *tree_parent;
    /* and r's children in tree t, in rank order:
     * tree_kids[tree_kid_at[t * (n + 1) + r] .. tree_kid_at[t * (n + 1) + r + 1]) */
    int *tree_kid_at, *tree_kids;
    int tree_fanout; /* most children of a rank */
    /* the slowest path from a root to a leaf, by the model's hop latency:
     * its latency (us) and its edges between servers and inside one */
    double tree_path_us;
    int tree_path_net, tree_path_icn;
    /* most children of a rank over the network, and inside its server */
    int tree_net_fanout, tree_icn_fanout;
    /* servers: server[r] in 0..nservers-1, numbered in the order of their
     * first rank; local[r]: r's index among its server's ranks (rank
     * order). Hierarchical algorithms need servers of equal size (hier_ok). */
    int nservers, per_server, hier_ok;
    int *server, *local;
    /* with hier_ok: srv[s * per_server + j] is the rank with local index j
     * on server s (NULL otherwise) */
    int *srv;
    /* with hier_ok: the rings inside a server that hierarchical all-reduce
     * runs its phases on, hier_rings[c * per_server + i] the local index
     * at position i of ring c: the channels' rings restricted to a
     * server, kept where every server reads the same one and no two share
     * a directed link (at least one: local index order if none is) */
    int hier_nrings;
    int *hier_rings;
};

/* One call as the planner sees it (no buffers). */
struct ppu_call {
    enum ppu_coll coll;
    size_t count;
    ppu_datatype_t datatype;
    ppu_redop_t op;
    int root;
    int inplace;
    const size_t *v; /* alltoallv: sendcounts, sdispls, recvcounts, rdispls (4 x nranks) */
};

/* Read the plan-changing parameters (PPU_CHUNK_SIZE and the rest) into
 * set, with the rounding the links need. A malformed PPU_ALGO / PPU_PROTO
 * is PPU_INVALID_ARGUMENT with a sentence in err; rank 0 logs fallbacks. */
/* Chunks of a ring channel in flight at once: 2 (chunk j + 1 starts round
 * the ring while chunk j is under way) when a ring link holds 3 messages
 * or more, else 1. A link a skewed ring runs on needs this + 1 slots:
 * connect.c's budget never gives it fewer. */
static inline int ppu_plan_ring_skew(const struct ppu_plan_settings *set)
{
    return set->fifo_slots >= 3 ? 2 : 1;
}

ppu_result_t ppu_plan_settings_read(struct ppu_plan_settings *set, int rank, char *err,
                                    size_t errlen);
/* The PPU_ALGO / PPU_PROTO parsing of ppu_plan_settings_read, for values
 * given here (tests, tools). */
ppu_result_t ppu_plan_parse_masks(struct ppu_plan_settings *set, const char *algo,
                                  const char *proto, int rank, char *err, size_t errlen);
/* The cost model for links simulated in host memory, given the most
 * ranks any host of the job runs per core (1: a core each). */
void ppu_plan_model_sim(struct ppu_model *m, double oversubscription);

/* Build ctx for nranks ranks: server_of[r] names r's server (any ints;
 * ranks with equal values share one), server_topo[s] the link graph of
 * server s's ranks in rank order (chip i = its i-th rank), servers
 * numbered in the order of their first rank; servers may share one
 * topology pointer. Rings, trees and server tables come from these;
 * settings and model are copied. A topology that holds no ring or path is
 * PPU_INVALID_USAGE with a sentence in err. */
ppu_result_t ppu_plan_ctx_init(struct ppu_plan_ctx *x, int nranks, const int *server_of,
                               const struct ppu_topo *const *server_topo, const char *topo_name,
                               const struct ppu_plan_settings *set, const struct ppu_model *model,
                               char *err, size_t errlen);
void ppu_plan_ctx_free(struct ppu_plan_ctx *x);

/* The algorithm and protocol the planner chooses for a call (the model's
 * figures for each candidate in why). */
void ppu_plan_choose(const struct ppu_plan_ctx *x, const struct ppu_call *c, int *algo,
                     int *proto, char *why, size_t wlen);
/* Rank's schedule for a call with the given algorithm and protocol. An
 * algorithm that does not apply is PPU_INVALID_USAGE. */
/* The fewest slots a peer link inside a host may have: 2, or one more
 * than the skew where hierarchical all-reduce (which runs skewed rings on
 * peer links) applies. */
static inline int ppu_plan_peer_slots_min(const struct ppu_plan_ctx *x)
{
    int skew = ppu_plan_ring_skew(&x->set);
    return x->hier_ok && skew + 1 > 2 ? skew + 1 : 2;
}

ppu_result_t ppu_plan_build(const struct ppu_plan_ctx *x, const struct ppu_call *c, int rank,
                            int algo, int proto, struct ppu_sched *s);
/* Does algo serve this call on this context (PPU_ALGO aside)? */
int ppu_plan_applies(const struct ppu_plan_ctx *x, const struct ppu_call *c, int algo);
/* Bytes of the call's whole buffer (all-gather: the gathered one). */
size_t ppu_plan_call_bytes(const struct ppu_plan_ctx *x, const struct ppu_call *c);

const char *ppu_coll_name(enum ppu_coll c);

#endif
