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

ppu_result_t ppu_cluster_select(struct ppu_cluster *dst, const struct ppu_cluster *src,
                                const int *members, int n)
{
    int *map = malloc(sizeof *map * (size_t)src->nservers); /* src server -> dst, or -1 */
    int *off = calloc((size_t)n + 2, sizeof *off);          /* per dst server: where its list starts */
    int *list = malloc(sizeof *list * (size_t)n);            /* its members' src chips, server by server */
    int *src_of = malloc(sizeof *src_of * (size_t)n);        /* per dst server: its src server */
    int *graph = malloc(sizeof *graph * (size_t)n);          /* per dst server: its graph's index */
    int *head = malloc(sizeof *head * (size_t)n);            /* per graph: a dst server that has it */
    ppu_result_t r = PPU_SYSTEM_ERROR;
    int ns = 0, ng = 0;
    memset(dst, 0, sizeof *dst);
    if (!map || !off || !list || !src_of || !graph || !head)
        goto out;
    for (int s = 0; s < src->nservers; s++)
        map[s] = -1;
    for (int j = 0; j < n; j++) { /* servers in the order of their first member */
        int s = src->server[members[j]];
        if (map[s] < 0)
            src_of[ns] = s, map[s] = ns++;
        off[map[s] + 2]++;
    }
    for (int k = 0; k < ns; k++) /* off[k + 1]: where server k's next member goes */
        off[k + 2] += off[k + 1];
    /* Each server's graph: its members' chips of the parent's graph,
     * renumbered. Servers whose members hold the same chips of the same
     * parent graph share one (a graph is 50 KB; a rail of 1,024 servers
     * is 1,024 one-chip servers alike). */
    int *at = off + 1;
    for (int j = 0; j < n; j++)
        list[at[map[src->server[members[j]]]]++] = src->local[members[j]];
    for (int k = 0; k < ns; k++) { /* server k's list is [off[k], off[k + 1]) again */
        int m = off[k + 1] - off[k], g = 0;
        const struct ppu_topo *pt = src->stopo[src_of[k]];
        for (; g < ng; g++) {
            int h = head[g];
            if (off[h + 1] - off[h] == m && src->stopo[src_of[h]] == pt &&
                !memcmp(&list[off[h]], &list[off[k]], sizeof *list * (size_t)m))
                break;
        }
        if (g == ng)
            head[ng++] = k;
        graph[k] = g;
    }
    if (cluster_alloc(dst, n, ns, ng) != PPU_SUCCESS)
        goto out;
    snprintf(dst->name, sizeof dst->name, "%s", src->name);
    snprintf(dst->source, sizeof dst->source, "split");
    for (int g = 0; g < ng; g++) {
        int h = head[g];
        ppu_topo_select(&dst->own[g], src->stopo[src_of[h]], &list[off[h]], off[h + 1] - off[h]);
    }
    for (int k = 0; k < ns; k++)
        dst->stopo[k] = &dst->own[graph[k]];
    for (int k = 0; k < ns; k++) /* reused: the next local index on each server */
        off[k] = 0;
    for (int j = 0; j < n; j++) {
        int k = map[src->server[members[j]]];
        dst->server[j] = k;
        dst->local[j] = off[k]++;
    }
    r = PPU_SUCCESS;
out:
    free(map);
    free(off);
    free(list);
    free(src_of);
    free(graph);
    free(head);
    return r;
}
