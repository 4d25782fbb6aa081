/* From the bootstrap to working links: pick the server topology, search it
 * for link-disjoint rings, give each channel a ring, and connect one send
 * and one receive link per channel through the transport. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "../topology/topo_host.h"
#include "../topology/topo_xml.h"
#include "check.h"
#include "comm.h"
#include "discover.h"
#include "log.h"
#include "param.h"

static void bind_near_chip(struct ppu_comm *comm)
{
    if (ppu_param_int(PPU_P_CPU_AFFINITY) == 0)
        return;
    struct ppu_host host;
    char err[128], cpus[128];
    if (ppu_host_discover(&host, err, sizeof err) != PPU_SUCCESS)
        return;
    if (!strcmp(comm->topo.source, "preset"))
        ppu_discover_assign_numa(&comm->topo, host.nnuma);
    int numa = comm->topo.numa[comm->rank];
    if (numa < 0)
        return;
    if (ppu_host_bind_numa(numa, cpus, sizeof cpus) == PPU_SUCCESS)
        PPU_INFO(PPU_SUB_TOPO, "rank %d bound to NUMA node %d (CPUs %s), near its chip", comm->rank,
                 numa, cpus);
    else
        PPU_INFO(PPU_SUB_TOPO, "rank %d: could not bind to NUMA node %d", comm->rank, numa);
}

static ppu_result_t pick_topology(struct ppu_comm *comm)
{
    for (int i = 0; i < comm->nranks; i++)
        if (comm->bs->host_hash[i] != comm->bs->host_hash[comm->rank])
            return ppu_fail(comm, PPU_INVALID_USAGE,
                            "rank %d is on another host than rank %d; this build of ppuccl links "
                            "ranks on one host only (simulated ICN)", i, comm->rank);
    char err[512];
    ppu_result_t r = ppu_discover_topology(comm->nranks, &comm->topo, err, sizeof err);
    if (r != PPU_SUCCESS)
        return ppu_fail(comm, r, "%s", err);
    struct ppu_topo *t = &comm->topo;
    if (t->nchips < comm->nranks)
        return ppu_fail(comm, PPU_INVALID_USAGE, "topology %s (%s) has %d chips, fewer than the %d ranks",
                        t->name, t->source, t->nchips, comm->nranks);
    ppu_topo_restrict(t, comm->nranks);
    for (int i = 1; i < comm->nranks; i++)
        if (t->server[i] != t->server[0])
            return ppu_fail(comm, PPU_INVALID_USAGE,
                            "topology %s puts ranks on %d servers; links between servers need a "
                            "network transport, which this build does not have yet", t->name,
                            t->nservers);
    if (comm->rank == 0 && *ppu_param_str(PPU_P_TOPO_DUMP_FILE)) {
        if (ppu_topo_save_xml(t, ppu_param_str(PPU_P_TOPO_DUMP_FILE), err, sizeof err) != PPU_SUCCESS)
            PPU_WARN(PPU_SUB_TOPO, "PPU_TOPO_DUMP_FILE: %s", err);
    }
    char who[256];
    ppu_topo_unreachable(t, who, sizeof who);
    if (who[0])
        return ppu_fail(comm, PPU_INVALID_USAGE,
                        "topology %s: chips %s cannot reach chip 0 over links that are up, so no "
                        "ring joins all %d ranks", t->name, who, comm->nranks);
    bind_near_chip(comm);
    return PPU_SUCCESS;
}

static ppu_result_t pick_rings(struct ppu_comm *comm)
{
    int rings[PPU_TOPO_MAX_RINGS][PPU_TOPO_MAX_CHIPS];
    int nrings = ppu_topo_find_rings(&comm->topo, PPU_TOPO_MAX_RINGS, rings);
    if (nrings == 0)
        return ppu_fail(comm, PPU_INVALID_USAGE,
                        "topology %s holds no ring through all %d chips", comm->topo.name,
                        comm->nranks);
    long long want = ppu_param_int(PPU_P_NCHANNELS);
    int n = want > 0 ? (int)want : (nrings < 4 ? nrings : 4);
    if (n > PPU_MAX_CHANNELS)
        n = PPU_MAX_CHANNELS;
    comm->nchannels = n;
    for (int c = 0; c < n; c++) {
        struct ppu_channel *ch = &comm->ch[c];
        memcpy(ch->ring, rings[c % nrings], sizeof ch->ring);
        for (int i = 0; i < comm->nranks; i++)
            if (ch->ring[i] == comm->rank)
                ch->pos = i;
        ch->next = ch->ring[(ch->pos + 1) % comm->nranks];
        ch->prev = ch->ring[(ch->pos + comm->nranks - 1) % comm->nranks];
        if (comm->rank == 0) {
            char s[256];
            ppu_topo_ring_str(ch->ring, comm->nranks, s, sizeof s);
            PPU_INFO(PPU_SUB_INIT, "channel %d ring %s%s", c, s,
                     c >= nrings ? " (shares links with an earlier channel)" : "");
        }
    }
    PPU_INFO(PPU_SUB_INIT, "topology %s (from %s), %d ranks, %d link-disjoint ring(s) found, "
             "%d channel(s), chunk %zu B", comm->topo.name, comm->topo.source, comm->nranks, nrings,
             n, comm->chunk_bytes);
    return PPU_SUCCESS;
}

ppu_result_t ppu_comm_connect(struct ppu_comm *comm)
{
    PPU_CHECK(pick_topology(comm));
    PPU_CHECK(pick_rings(comm));
    int n = comm->nranks, nc = comm->nchannels;
    if (n == 1)
        return PPU_SUCCESS;
    /* Between threads of one process, messages always go by reference (no
     * copy). Across processes single copy is opt-in: on this 2-core host the
     * FIFO, whose slots stay in cache, measured faster (5-6 vs 4-4.6 GB/s
     * busbw, 2 ranks, 256 KB-64 MB). */
    int allow_cma = ppu_param_int(PPU_P_CMA) != 0;
    /* Let peers of the same user read our memory where Yama restricts it. */
    if (allow_cma)
        prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    size_t isz = PPU_CONNECT_INFO_BYTES;
    char *info = calloc((size_t)n * (size_t)nc, isz);
    if (!info)
        return PPU_SYSTEM_ERROR;
    ppu_result_t r = PPU_SUCCESS;
    for (int c = 0; c < nc; c++) {
        struct ppu_channel *ch = &comm->ch[c];
        struct ppu_link_params p = {comm->rank, 0, c, comm->chunk_bytes,
                                    (int)ppu_param_int(PPU_P_FIFO_SLOTS), 1, allow_cma};
        ch->recv.ops = ch->send.ops = &ppu_icn_sim_ops;
        ch->recv.params = p;
        ch->recv.params.peer_rank = ch->prev;
        ch->send.params = p;
        ch->send.params.peer_rank = ch->next;
        r = ch->recv.ops->recv_setup(&ch->recv, info + ((size_t)comm->rank * nc + c) * isz);
        if (r != PPU_SUCCESS) {
            ch->recv.ops = ch->send.ops = NULL;
            ppu_fail(comm, r, "rank %d could not create the shared-memory FIFO for link %d->%d "
                     "(PPU_FIFO_SLOTS and PPU_CHUNK_SIZE, /dev/shm space)", comm->rank, ch->prev,
                     comm->rank);
            goto out;
        }
    }
    PPU_CHECK_GOTO(ppu_bootstrap_allgather(comm->bs, info, (size_t)nc * isz), r, out);
    for (int c = 0; c < nc; c++) {
        struct ppu_channel *ch = &comm->ch[c];
        r = ch->send.ops->send_connect(&ch->send, info + ((size_t)ch->next * nc + c) * isz);
        if (r != PPU_SUCCESS) {
            ch->send.ops = NULL;
            ppu_fail(comm, r, "rank %d could not attach to the FIFO of link %d->%d", comm->rank,
                     comm->rank, ch->next);
            goto out;
        }
    }
    PPU_CHECK_GOTO(ppu_bootstrap_barrier(comm->bs), r, out);
    for (int c = 0; c < nc; c++)
        PPU_CHECK_GOTO(comm->ch[c].recv.ops->recv_finish(&comm->ch[c].recv), r, out);
    PPU_CHECK_GOTO(ppu_bootstrap_barrier(comm->bs), r, out);
    for (int c = 0; c < nc; c++)
        PPU_CHECK_GOTO(comm->ch[c].send.ops->send_finish(&comm->ch[c].send), r, out);
    PPU_INFO(PPU_SUB_INIT, "rank %d: %d channel(s) over icn_sim, %s", comm->rank, nc,
             !comm->ch[0].send.direct ? "copies through the FIFO"
             : comm->ch[0].recv.params.allow_cma ? "single-copy (process_vm_readv) for large chunks"
                                                 : "references between threads (no copy)");
out:
    free(info);
    return r;
}

static void write_stats(struct ppu_comm *comm)
{
    const char *pat = ppu_param_str(PPU_P_SIM_STATS_FILE);
    if (!*pat)
        return;
    char path[512];
    size_t o = 0;
    for (const char *p = pat; *p && o < sizeof path - 16; p++) {
        if (p[0] == '%' && p[1] == 'r') {
            o += (size_t)snprintf(path + o, sizeof path - o, "%d", comm->rank);
            p++;
        } else {
            path[o++] = *p;
        }
    }
    path[o] = '\0';
    FILE *f = fopen(path, "a");
    if (!f) {
        PPU_WARN(PPU_SUB_INIT, "cannot write PPU_SIM_STATS_FILE %s", path);
        return;
    }
    /* One line per destination: channels that share a link add up. */
    for (int dst = 0; dst < comm->nranks; dst++) {
        uint64_t bytes = 0, msgs = 0;
        int used = 0;
        for (int c = 0; c < comm->nchannels; c++)
            if (comm->ch[c].send.ops && comm->ch[c].next == dst) {
                bytes += comm->ch[c].send.bytes;
                msgs += comm->ch[c].send.msgs;
                used = 1;
            }
        if (used)
            fprintf(f, "%d %d %llu %llu\n", comm->rank, dst, (unsigned long long)bytes,
                    (unsigned long long)msgs);
    }
    fclose(f);
}

void ppu_comm_disconnect(struct ppu_comm *comm)
{
    write_stats(comm);
    for (int c = 0; c < comm->nchannels; c++) {
        struct ppu_channel *ch = &comm->ch[c];
        if (ch->send.ops)
            ch->send.ops->close(&ch->send);
        if (ch->recv.ops)
            ch->recv.ops->close(&ch->recv);
        ch->send.ops = ch->recv.ops = NULL;
    }
}
