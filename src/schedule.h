/* Schedules are data: an algorithm turns (collective, count, rank, links)
 * into a list of steps per channel; one executor runs any list.
 *
 * Ordering rule every builder keeps: two channels of one schedule never
 * use the same directed link (a peer link is the pair of ranks and a lane,
 * PPU_STEP_LANE1), and on each link the sender's messages come
 * in the order the receiver's steps expect them. */
#ifndef PPU_SCHEDULE_H
#define PPU_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include "ppuccl.h"

enum ppu_step_flags {
    PPU_STEP_RECV = 1 << 0,   /* take a message from the recv link */
    PPU_STEP_INPUT = 1 << 1,  /* combine with (or take) input[in_off] */
    PPU_STEP_OUTPUT = 1 << 2, /* write the result to output[out_off] */
    PPU_STEP_SEND = 1 << 3,   /* send the result on the send link */
    PPU_STEP_FINISH = 1 << 4, /* apply the op's final step (AVG: divide) */
    PPU_STEP_ACCUM = 1 << 5,  /* output = output op (message or input) */
    PPU_STEP_TMP_IN = 1 << 6, /* "input" is the communicator's scratch buffer */
    PPU_STEP_TMP_OUT = 1 << 7, /* "output" is the scratch buffer */
    PPU_STEP_IN_OUT = 1 << 8, /* "input" is the output buffer (at in_off) */
    /* a message sent by reference may be built in output[out_off] (the
     * output is scratch there until a later step writes it) */
    PPU_STEP_REF_OUT = 1 << 9,
    /* its peer links are lane 1's: a pair of ranks has a peer link in each
     * direction on each lane, so steps that would share a directed link
     * (the tree all-reduce's two trees: on 2 ranks 1 -> 0 is tree 0's
     * reduce and tree 1's broadcast; two-shot's two shots) can be on
     * different channels. A lane's links are connected on first use. Not
     * part of a step's kind (ppu_step_kind ignores it). */
    PPU_STEP_LANE1 = 1 << 10,
};

#define PPU_SCHED_LANES 2


/* The flag combinations a step may carry, each with what it does
 * (sched_ring.c's table; ppu_sched_add asserts every step is one). */
struct ppu_step_kind {
    uint32_t flags;
    const char *what;
};
const struct ppu_step_kind *ppu_step_kinds(int *n);
/* What a step of these flags does, or NULL when no step may carry them. */
const char *ppu_step_kind(uint32_t flags);

/* Links: a step sends and receives on its channel's ring links, unless it
 * names a peer (>= 0): then the direct link to or from that rank. */
struct ppu_step {
    uint32_t flags;
    int32_t send_peer;
    int32_t recv_peer;
    size_t in_off;  /* in elements, from the start of the input buffer */
    size_t out_off; /* ... of the output buffer */
    size_t count;   /* elements */
};

static inline int ppu_step_lane(const struct ppu_step *st)
{
    return (st->flags & PPU_STEP_LANE1) ? 1 : 0;
}

struct ppu_sched_channel {
    struct ppu_step *steps;
    size_t nsteps, cap;
    /* p2p schedules: this channel's own buffers (NULL: the call's) */
    const void *in;
    void *out;
    /* channels that must finish first: after .. after + after_n - 1 (after
     * -1: none). p2p ops on one link run one after the other; hier's rail
     * phase waits for the reduce-scatters on every ring of the server. */
    int after, after_n;
    /* 1: this channel's input (output) is the schedule's temporary, which
     * the executor allocates for each run (tmp_bytes) */
    int in_tmp, out_tmp;
};

/* Has channel c of these channel states (2: done) to wait still? */
static inline int ppu_sched_waiting(const struct ppu_sched_channel *c, const uint8_t *state)
{
    for (int i = 0; c->after >= 0 && i < c->after_n; i++)
        if (state[c->after + i] != 2)
            return 1;
    return 0;
}

enum ppu_algo {
    PPU_ALGO_RING = 0,
    PPU_ALGO_TREE,
    PPU_ALGO_ONESHOT,
    PPU_ALGO_TWOSHOT,
    PPU_ALGO_PAIRWISE,
    PPU_ALGO_DIRECT, /* point to point: sends and receives on peer links */
    PPU_ALGO_HIER,   /* across servers: inside each server, then along rails (ring) */
    PPU_ALGO_HIER_TREE, /* the same, with double binary trees along the rails */
    PPU_NUM_ALGOS
};

enum ppu_proto { PPU_PROTO_SIMPLE = 0, PPU_PROTO_LL, PPU_NUM_PROTOS };

struct ppu_sched {
    int nchannels;
    struct ppu_sched_channel *ch; /* nchannels of them */
    int algo;  /* enum ppu_algo */
    int proto; /* enum ppu_proto */
    size_t esize; /* bytes per element the offsets count */
    size_t tmp_bytes; /* a temporary each run needs (allocated per run, so a
                       * cached plan holds no memory), or 0 */
};

/* What a builder needs to know about the communicator. */
struct ppu_sched_ctx {
    int rank, nranks;
    int nrings;
    const int *rings;       /* rings[c * nranks + i]: rank at position i of ring c */
    size_t chunk;           /* elements per message */
    /* ring_pos[c * nranks + r]: r's position on ring c, or NULL (then
     * found by a search; with it a flat ring's build costs O(its steps)) */
    const int *ring_pos;
    /* ring forms on the channels' rings: chunks in flight at once (0 or 1:
     * each chunk goes round before the next; W: step t of chunk j is
     * listed at j x ceil(T / W) + t, T the steps of a chunk, older chunks
     * first, which keeps each link's messages in step with their
     * receiver). A link then needs W + 1 slots. */
    int skew;
    /* two-shot takes the results on a channel of its own (lane 1), so a
     * chunk's first shot goes out while the chunk before's results come
     * in: where links move data while the rank computes (hardware links;
     * ppu-sim). Where a link is the rank's own copy (this host's shared
     * memory) there is nothing to overlap, and 8 ranks on 2 cores ran
     * 4 MB 20-30% slower with the second channel. */
    int twoshot_split;
};

/* Collective builders. Counts follow the public API's meaning. */
ppu_result_t ppu_sched_ring_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, ppu_redop_t op);
ppu_result_t ppu_sched_ring_reduce_scatter(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                           size_t recvcount, ppu_redop_t op);
ppu_result_t ppu_sched_ring_allgather(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t sendcount);
ppu_result_t ppu_sched_ring_alltoall(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                     size_t count);
ppu_result_t ppu_sched_chain_broadcast(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                       size_t count, int root, int inplace);
ppu_result_t ppu_sched_chain_reduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                    size_t count, ppu_redop_t op, int root);

/* Mesh builders: one channel over direct links to every peer. */
ppu_result_t ppu_sched_oneshot_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                         size_t count, ppu_redop_t op);
ppu_result_t ppu_sched_twoshot_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                         size_t count, ppu_redop_t op);
ppu_result_t ppu_sched_direct_reduce_scatter(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                             size_t recvcount, ppu_redop_t op);
ppu_result_t ppu_sched_direct_allgather(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                        size_t sendcount);
/* counts/displs NULL: every block has count elements at p * count. */
ppu_result_t ppu_sched_pairwise_alltoall(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                         size_t count, const size_t *scounts,
                                         const size_t *sdispls, const size_t *rcounts,
                                         const size_t *rdispls);
/* Two trees, each carrying half the buffer: reduce up, broadcast down.
 * up[t]: this rank's parent in tree t (-1 at the root and for ranks not in
 * it), kids[t][0..nkids[t]): its children, in rank order. Four channels:
 * tree t's reduce (2t) and broadcast (2t + 1), on lane t; the root sends
 * the result down from its reduce channel. A call of one message goes on
 * tree 0 alone. */
ppu_result_t ppu_sched_tree_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, ppu_redop_t op, const int up[2],
                                      const int *const kids[2], const int nkids[2]);
/* The tree all-reduce's channels for one rank into ch[0..3] (the layout
 * above): elements [base, base + count), half on each tree (up, kids,
 * nkids as above). in_out: the input is the output buffer. O(steps): no
 * scan over the ranks. */
ppu_result_t ppu_sched_tree_channels(struct ppu_sched_channel ch[4], const int up[2],
                                     const int *const kids[2], const int nkids[2], size_t base,
                                     size_t count, size_t chunk, ppu_redop_t op, int in_out);
/* Heap-shaped binary trees over rank order and its reverse: a rank inside
 * one tree is (nearly always) a leaf of the other. parent: 2 x n. */
void ppu_sched_double_binary_tree(int n, int *parent);

/* Hierarchical all-reduce over servers of equal size: reduce-scatter
 * inside each server, all-reduce of each rank's shard across servers
 * along its rail (the ranks with the same local index, one per server:
 * rail_me[k] is this rank's on server k), then all-gather inside each
 * server. local[j]: the rank of local index j on this server, which owns
 * part j of the buffer (the same part on every server). Inside, nrings
 * rings side by side (rings[c * nlocal + i]: the local index at position
 * i of ring c; no two may share a directed link), ring c reducing and
 * gathering piece c of every part: its reduce-scatter is channel c, its
 * all-gather channel nrings + R + c, on peer links. The rail phase
 * (channels nrings .. nrings + R - 1) waits for every reduce-scatter, and
 * the all-gathers for all of it. tree: the rail phase on a double binary
 * tree over the rail (PPU_ALGO_HIER_TREE: fewer hops with many servers;
 * R = 4, the tree all-reduce's channels) instead of a ring (R = 1). */
ppu_result_t ppu_sched_hier_allreduce(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, ppu_redop_t op, const int *local, int nlocal,
                                      const int *rings, int nrings, const int *rail_me,
                                      int nservers, int tree);

/* Hierarchical all-gather over servers of equal size: each rank's block to
 * its rail over the network (a ring over the rail), then inside each
 * server, for every server k, the blocks of k's ranks (a ring over the
 * server's ranks, run on the output). Each block crosses the network once
 * per other server; the flat ring carries most blocks over every server
 * boundary (2 x 4: 1.75 crossings a block against 1). srv[k * nlocal + j]:
 * the rank with local index j on server k (servers in rail_me's order). */
ppu_result_t ppu_sched_hier_allgather(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, const int *local, int nlocal,
                                      const int *rail_me, int nservers, const int *srv);

/* Hierarchical reduce-scatter, the all-gather's mirror: inside each
 * server, for every server k, a reduce-scatter of the blocks of k's ranks
 * (member j keeps the server's partial sum for k's rank j in a temporary
 * of nservers * count elements, at k * count), then a reduce-scatter of
 * those partials along the rail into the output. Channel 0 writes and
 * channel 1 reads the temporary (out_tmp, in_tmp); the caller sets
 * s->tmp_bytes, which needs the element size. */
ppu_result_t ppu_sched_hier_reduce_scatter(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                           size_t count, ppu_redop_t op, const int *local,
                                           int nlocal, const int *rail_me, int nservers,
                                           const int *srv);

/* Hierarchical all-to-all over servers of equal size L: inside each
 * server, each rank packs for every mate the blocks that mate's rail
 * receives from it and sends them as one stream, and unpacks what its
 * mates send into the blocks its server sends to the ranks of its rail
 * (channel 0 writes the temporary); then, along the rail over the
 * network, it sends each server's L blocks to that server's rank of the
 * rail (channel 1 reads the temporary), as one stream where the sending
 * server's ranks are numbered in a run. Every block crosses the network
 * once, a rank holds links to its L - 1 mates and its nservers - 1 rail
 * peers, not to every rank, and it sends L + nservers - 2 streams, not
 * about nranks messages. The caller sets s->tmp_bytes (3 x nranks x count
 * elements). */
ppu_result_t ppu_sched_hier_alltoall(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                     size_t count, const int *local, int nlocal,
                                     const int *rail_me, int nservers, const int *srv);

/* Hierarchical broadcast over servers of equal size L: between servers on
 * the root's rail, a heap-shaped tree of the given fanout over the servers
 * counted from the root's (1: a pipelined chain; 2: a binary tree, log2
 * depth); inside each server a chain from the rail's rank over its mates
 * in local order. srv[k * L + j]: the rank with local index j on server k;
 * server[r], local[r]: rank r's server and local index. One channel on
 * peer links, each chunk forwarded as it arrives. */
ppu_result_t ppu_sched_hier_broadcast(struct ppu_sched *s, const struct ppu_sched_ctx *x,
                                      size_t count, int root, int inplace, const int *srv, int L,
                                      int ns, const int *server, const int *local, int fanout);

/* Steps helpers for builders. */
ppu_result_t ppu_sched_add(struct ppu_sched_channel *c, uint32_t flags, int send_peer,
                           int recv_peer, size_t in_off, size_t out_off, size_t count);
/* Split len into n nearly equal parts: part b is [*start, *start + *plen). */
void ppu_sched_part(size_t start, size_t len, int n, int b, size_t *pstart, size_t *plen);
/* Start s with nch empty channels (s is overwritten). */
ppu_result_t ppu_sched_init(struct ppu_sched *s, int nch, int algo);
void ppu_sched_free(struct ppu_sched *s);
/* Steps of all channels, for logs and tests. */
size_t ppu_sched_nsteps(const struct ppu_sched *s);

const char *ppu_algo_name(int algo);
const char *ppu_proto_name(int proto);

#endif
