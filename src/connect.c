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
    struct ppu_topo *t = &comm->topo;
    if (comm->parent_topo) {
        /* split: the parent's chips that this communicator's ranks hold */
        ppu_topo_select(t, comm->parent_topo, comm->parent_chips, comm->nranks);
    } else {
        ppu_result_t r = ppu_discover_topology(comm->nranks, t, err, sizeof err);
        if (r != PPU_SUCCESS)
            return ppu_fail(comm, r, "%s", err);
        if (t->nchips < comm->nranks)
            return ppu_fail(comm, PPU_INVALID_USAGE,
                            "topology %s (%s) has %d chips, fewer than the %d ranks", t->name,
                            t->source, t->nchips, comm->nranks);
        ppu_topo_restrict(t, comm->nranks);
    }
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
        memcpy(comm->rings[c], ch->ring, sizeof comm->rings[c]);
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

/* Connect a set of links in the transport's phases. Every rank publishes
 * connect info for nkeys receive links (recv[k], NULL where it has none);
 * each send link names the peer and the key of the receive link it feeds. */
struct send_spec {
    struct ppu_link *link;
    int peer, key;
};

static ppu_result_t connect_set(struct ppu_comm *comm, int nkeys, struct ppu_link **recv,
                                const struct send_spec *send, int nsend)
{
    size_t isz = PPU_CONNECT_INFO_BYTES, row = (size_t)nkeys * isz;
    char *info = calloc((size_t)comm->nranks, row);
    if (!info)
        return PPU_SYSTEM_ERROR;
    ppu_result_t r = PPU_SUCCESS;
    for (int k = 0; k < nkeys; k++) {
        if (!recv[k])
            continue;
        r = recv[k]->ops->recv_setup(recv[k], info + (size_t)comm->rank * row + (size_t)k * isz);
        if (r != PPU_SUCCESS) {
            recv[k]->ops = NULL;
            ppu_fail(comm, r, "rank %d could not create the shared-memory FIFO for link %d->%d "
                     "(PPU_FIFO_SLOTS and PPU_CHUNK_SIZE, /dev/shm space)", comm->rank,
                     recv[k]->params.peer_rank, comm->rank);
            goto out;
        }
    }
    PPU_CHECK_GOTO(ppu_bootstrap_allgather(comm->bs, info, row), r, out);
    for (int i = 0; i < nsend; i++) {
        struct ppu_link *l = send[i].link;
        r = l->ops->send_connect(l, info + (size_t)send[i].peer * row + (size_t)send[i].key * isz);
        if (r != PPU_SUCCESS) {
            l->ops = NULL;
            ppu_fail(comm, r, "rank %d could not attach to the FIFO of link %d->%d", comm->rank,
                     comm->rank, send[i].peer);
            goto out;
        }
    }
    PPU_CHECK_GOTO(ppu_bootstrap_barrier(comm->bs), r, out);
    for (int k = 0; k < nkeys; k++)
        if (recv[k])
            PPU_CHECK_GOTO(recv[k]->ops->recv_finish(recv[k]), r, out);
    PPU_CHECK_GOTO(ppu_bootstrap_barrier(comm->bs), r, out);
    for (int i = 0; i < nsend; i++)
        PPU_CHECK_GOTO(send[i].link->ops->send_finish(send[i].link), r, out);
out:
    free(info);
    return r;
}

static void link_init(struct ppu_link *l, const struct ppu_link_params *p, int peer)
{
    l->ops = &ppu_icn_sim_ops;
    l->params = *p;
    l->params.peer_rank = peer;
}

/* Links to every peer: the mesh algorithms', all-to-all's and send/recv's.
 * Where the topology has an ICN link between the two chips the link is
 * that; otherwise it stands for a path staged through host memory (what a
 * PPU without a direct link would use) and only point-to-point calls and
 * alltoallv, which have no routed form, use it; the stats file says so. */
static ppu_result_t connect_peers(struct ppu_comm *comm, int allow_cma)
{
    int group[PPU_TOPO_MAX_CHIPS], n = comm->nranks;
    comm->mesh = n >= 2 && ppu_topo_mesh_groups(&comm->topo, group) == 1;
    if (comm->mesh) {
        int parent[2][64];
        ppu_sched_double_binary_tree(n, parent);
        memcpy(comm->tree_parent, parent, sizeof parent);
        comm->tree_depth = 0; /* floor(log2 n): edges from a heap's root to its deepest leaf */
        while ((2 << comm->tree_depth) <= n)
            comm->tree_depth++;
    } else {
        int d0 = ppu_topo_bfs_tree(&comm->topo, 0, comm->tree_parent[0]);
        int d1 = ppu_topo_bfs_tree(&comm->topo, n - 1, comm->tree_parent[1]);
        comm->tree_depth = d0 > d1 ? d0 : d1;
    }
    comm->tree_fanout = 0;
    for (int t = 0; t < 2; t++)
        for (int q = 0; q < n; q++) {
            int kids = 0;
            for (int c = 0; c < n; c++)
                kids += comm->tree_parent[t][c] == q;
            comm->tree_fanout = kids > comm->tree_fanout ? kids : comm->tree_fanout;
        }
    struct ppu_link_params p = {comm->rank, 0, -1, comm->peer_slot, 4, 1, allow_cma, comm->ll_max};
    struct ppu_link *recv[PPU_TOPO_MAX_CHIPS] = {0};
    struct send_spec send[PPU_TOPO_MAX_CHIPS];
    int ns = 0;
    for (int peer = 0; peer < n; peer++) {
        if (peer == comm->rank)
            continue;
        comm->peer_icn[peer] = ppu_topo_up(&comm->topo, comm->rank, peer);
        link_init(&comm->peer_recv[peer], &p, peer);
        recv[peer] = &comm->peer_recv[peer];
        link_init(&comm->peer_send[peer], &p, peer);
        send[ns++] = (struct send_spec){&comm->peer_send[peer], peer, comm->rank};
    }
    return connect_set(comm, n, recv, send, ns);
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
    struct ppu_link_params p = {comm->rank, 0, 0, comm->chunk_bytes,
                                (int)ppu_param_int(PPU_P_FIFO_SLOTS), 1, allow_cma, comm->ll_max};
    struct ppu_link *recv[PPU_MAX_CHANNELS];
    struct send_spec send[PPU_MAX_CHANNELS];
    for (int c = 0; c < nc; c++) {
        struct ppu_channel *ch = &comm->ch[c];
        p.channel = c;
        link_init(&ch->recv, &p, ch->prev);
        link_init(&ch->send, &p, ch->next);
        recv[c] = &ch->recv;
        send[c] = (struct send_spec){&ch->send, ch->next, c};
    }
    PPU_CHECK(connect_set(comm, nc, recv, send, nc));
    PPU_CHECK(connect_peers(comm, allow_cma));
    PPU_INFO(PPU_SUB_INIT, "rank %d: %d channel(s) + links to every peer (%s) over icn_sim, %s",
             comm->rank, nc, comm->mesh ? "all one ICN hop away" : "some staged through host memory",
             !comm->ch[0].send.direct ? "copies through the FIFO"
             : comm->ch[0].recv.params.allow_cma ? "single-copy (process_vm_readv) for large chunks"
                                                 : "references between threads (no copy)");
    return PPU_SUCCESS;
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
        if (comm->peer_send[dst].ops) {
            bytes += comm->peer_send[dst].bytes;
            msgs += comm->peer_send[dst].msgs;
            used = 1;
        }
        /* the links it sent on; "host": no ICN link, staged through host memory */
        if (used && msgs > 0)
            fprintf(f, "%d %d %llu %llu %s\n", comm->rank, dst, (unsigned long long)bytes,
                    (unsigned long long)msgs, comm->peer_icn[dst] ? "icn" : "host");
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
    for (int peer = 0; peer < comm->nranks; peer++) {
        struct ppu_link *l[2] = {&comm->peer_send[peer], &comm->peer_recv[peer]};
        for (int k = 0; k < 2; k++)
            if (l[k]->ops) {
                l[k]->ops->close(l[k]);
                l[k]->ops = NULL;
            }
    }
    comm->mesh = 0;
}
