/* The timing model: a discrete-event replay of the schedules the planner's
 * builders emit for every rank (plan_ctx.h), over a model of the cluster's
 * links. Nothing here is a closed form: a call's time is when the last
 * step of the last rank ends.
 *
 * What is modelled
 * - A step runs as the executor runs it (src/exec.c): its channel's steps
 *   in order, each once its message has arrived and its send link has a
 *   free slot (ring links PPU_FIFO_SLOTS deep, peer links 4); a channel
 *   with `after` waits for that channel to finish.
 * - A message of b bytes on a path of resources (an ICN link; a chip's
 *   switch ports; a NIC, the fabric's uplinks) starts when every resource
 *   on the path is free (first come, first served), holds each for
 *   b / its bandwidth, and arrives alpha later. The link moves it (as a
 *   DMA engine would): the sending channel goes on to its next step once
 *   its own memory traffic is done, and the slots bound what is in flight.
 * - A step's own memory traffic (what it reads and writes locally) takes
 *   bytes / mem_gbps on its chip's memory, shared by the chip's channels.
 * - SIMPLE messages pay simple_us more latency (the flag after the data);
 *   LL messages move ll_eff of the link's bandwidth (flags in the data).
 *
 * Folding: on a cluster of identical servers where the schedules of
 * server k are those of server 0 shifted by k servers (checked on the
 * rings of every rank and the steps of servers 1, S/2 and S-1), only
 * server 0's ranks are replayed; a message to or from another server is
 * the shifted image of one of server 0's, and the per-server resources
 * (NICs, uplinks) are server 0's. Exact when the steps match exactly
 * (fold 1); when counts differ by one element somewhere (blocks that do
 * not divide evenly), fold 2 and the time is server 0's.
 * Otherwise, folding by rails: where turning every server's chips one
 * place round the server (chip j to j+1 mod L) maps the wiring onto itself
 * (a circulant server: server16, fullmesh8), each chip has its own NIC,
 * every chip's ports, host path and memory are alike, the fabric is
 * rail-optimized, and the schedule of chip j is chip 0's with
 * every peer turned j places (checked for every chip of servers 0, 1, S/2
 * and S-1), only chip 0 of every server is replayed: hierarchical and
 * hierarchical-tree schedules, whose trees span servers, not chips. A call
 * that turns out to use a server's share of the top tier (shared by all
 * its chips) is replayed again without it. */
#ifndef PPU_SIM_H
#define PPU_SIM_H

#include <stdio.h>

#include "plan_ctx.h"
#include "topo.h"

enum sim_fabric { SIM_FABRIC_RAIL = 0, SIM_FABRIC_FATTREE };

struct sim_params {
    double icn_gbps, icn_us;   /* per ICN link and direction; <= 0: the topology's */
    double nic_gbps, nic_us;   /* per NIC and direction */
    int nics;                  /* per server; chip j uses NIC j mod nics; 0: one per chip */
    enum sim_fabric fabric;
    double oversub;            /* ratio at the top of the fabric (>= 1) */
    double hop_us;             /* extra latency through the fabric's top tier */
    double host_gbps, host_us; /* chips of one server with no ICN link: staged through host */
    double mem_gbps;           /* a chip's memory, for a step's own reads and writes */
    double ll_eff;             /* LL: the share of link bandwidth that is data */
    double simple_us;          /* SIMPLE: latency added per message */
    int switch_planes;         /* >0: every chip's links go to this many ICN switch planes */
    int fold;                  /* 1: fold symmetric servers when proved; 0: never */
    long long max_steps;       /* replay at most this many steps per call (0: no limit) */
};

void sim_params_default(struct sim_params *p);

struct sim_res;
struct sim_link;

/* How a replay folds (sim_result.fold_by, struct sim.folded). */
enum sim_fold {
    FOLD_NONE = 0,
    FOLD_SERVER, /* server k is server 0 shifted by k servers */
    FOLD_RAIL,   /* chip j of a server is its chip 0 turned j places round it */
};

struct sim {
    const struct ppu_cluster *cl;
    struct ppu_plan_ctx ctx;
    struct sim_params p;
    int n, ns, L; /* ranks, servers, ranks per server (0: uneven) */
    int uniform;  /* every server one wiring, rank = server * L + local */
    int folded;   /* the call being replayed is folded (enum sim_fold) */
    int fold_p;   /* FOLD_SERVER: servers one representative block spans */
    /* resources: per server (0 when folded) */
    int nres;
    struct sim_res *res;
    /* scratch the replay reuses */
    void *priv;
};

/* The cluster cl (kept by pointer), the plan settings set (copied), the
 * model. The planner's own cost model is set from the links' figures
 * (alpha, bandwidths), so --algo auto chooses for this cluster, not for
 * the host it runs on. */
int sim_init(struct sim *S, const struct ppu_cluster *cl, const char *name,
             const struct ppu_plan_settings *set, const struct sim_params *p, char *err,
             size_t errlen);
void sim_free(struct sim *S);

struct sim_result {
    double time_us;
    int fold;             /* 0 every rank replayed, 1 folded exactly, 2 folded, counts +-1 */
    int fold_by;          /* enum sim_fold */
    int fold_servers;     /* FOLD_SERVER: servers one replayed block spans */
    int ranks_replayed;
    long long steps;      /* steps replayed */
    long long steps_job;  /* steps of the whole job (folded: replayed x images) */
    /* physical bounds: the busiest resource's bytes over its bandwidth, and
     * the longest chain of messages x the smallest latency */
    double bound_bw_us, bound_lat_us;
    const char *busiest;  /* kind of the busiest resource */
    int skipped;          /* 1: not replayed (why says why) */
    double wall_s;        /* what building and replaying took here */
    char why[200];
};

/* Replay one call with (algo, proto). stats: when not NULL, every directed
 * link's bytes and messages over the whole job, "src dst bytes messages
 * kind" (PPU_SIM_STATS_FILE's format; kind icn, host or net), sorted by
 * src then dst. Returns 0, or -1 with result->why (the algorithm does not
 * apply, out of memory, a schedule that deadlocks). */
int sim_run(struct sim *S, const struct ppu_call *c, int algo, int proto,
            struct sim_result *result, FILE *stats);

#endif
