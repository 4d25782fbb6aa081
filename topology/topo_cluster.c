/* The two-level cluster (topo.h): per rank its server, per server a dense
 * link graph. What lets a communicator of 16,384 ranks hold O(N) topology
 * instead of an N x N matrix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topo.h"

void ppu_cluster_free(struct ppu_cluster *cl)
{
    free(cl->server);
    free(cl->local);
    free(cl->stopo);
    free(cl->own);
    memset(cl, 0, sizeof *cl);
}

static ppu_result_t cluster_alloc(struct ppu_cluster *cl, int n, int nservers, int nown)
{
    memset(cl, 0, sizeof *cl);
    cl->nranks = n;
    cl->nservers = nservers;
    cl->server = malloc(sizeof *cl->server * (size_t)n);
    cl->local = malloc(sizeof *cl->local * (size_t)n);
    cl->stopo = calloc((size_t)nservers, sizeof *cl->stopo);
    cl->own = calloc((size_t)nown, sizeof *cl->own);
    if (!cl->server || !cl->local || !cl->stopo || !cl->own) {
        ppu_cluster_free(cl);
        return PPU_SYSTEM_ERROR;
    }
    return PPU_SUCCESS;
}

ppu_result_t ppu_cluster_from_topo(struct ppu_cluster *cl, const struct ppu_topo *t, int n)
{
    /* servers in the order of their first rank; at most n of them */
    int ids[PPU_TOPO_MAX_CHIPS], ns = 0;
    for (int r = 0; r < n; r++) {
        int s = 0;
        while (s < ns && ids[s] != t->server[r])
            s++;
        if (s == ns)
            ids[ns++] = t->server[r];
    }
    if (cluster_alloc(cl, n, ns, ns) != PPU_SUCCESS)
        return PPU_SYSTEM_ERROR;
    snprintf(cl->name, sizeof cl->name, "%s", t->name);
    snprintf(cl->source, sizeof cl->source, "%s", t->source);
    for (int s = 0; s < ns; s++) {
        int members[PPU_TOPO_MAX_CHIPS], m = 0;
        for (int r = 0; r < n; r++)
            if (t->server[r] == ids[s]) {
                cl->server[r] = s;
                cl->local[r] = m;
                members[m++] = r;
            }
        ppu_topo_select(&cl->own[s], t, members, m);
        cl->stopo[s] = &cl->own[s];
    }
    return PPU_SUCCESS;
}

ppu_result_t ppu_cluster_sim(struct ppu_cluster *cl, const char *preset, int nservers,
                             int per_server, char *err, size_t errlen)
{
    struct ppu_topo one;
    ppu_result_t r = ppu_topo_sim_preset(preset, per_server, &one, err, errlen);
    if (r != PPU_SUCCESS)
        return r;
    ppu_topo_restrict(&one, per_server);
    int n = nservers * per_server;
    if (cluster_alloc(cl, n, nservers, 1) != PPU_SUCCESS) {
        snprintf(err, errlen, "out of memory for a cluster of %d ranks", n);
        return PPU_SYSTEM_ERROR;
    }
    cl->own[0] = one;
    snprintf(cl->name, sizeof cl->name, "%dx%.20s", nservers, one.name);
    snprintf(cl->source, sizeof cl->source, "preset");
    for (int s = 0; s < nservers; s++)
        cl->stopo[s] = &cl->own[0];
    for (int q = 0; q < n; q++) {
        cl->server[q] = q / per_server;
        cl->local[q] = q % per_server;
    }
    return PPU_SUCCESS;
}

int ppu_cluster_icn_up(const struct ppu_cluster *cl, int a, int b)
{
    return cl->server[a] == cl->server[b] &&
           ppu_topo_up(cl->stopo[cl->server[a]], cl->local[a], cl->local[b]);
}
