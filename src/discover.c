#include "discover.h"

#include <stdio.h>

#include "../topology/topo_xml.h"
#include "check.h"
#include "util/log.h"
#include "util/param.h"

ppu_result_t ppu_discover_sim_servers(int nranks, int *servers, char *err, size_t errlen)
{
    long long s = ppu_param_int(PPU_P_SIM_SERVERS);
    if (s < 1 || s > nranks || nranks % s != 0) {
        snprintf(err, errlen, "PPU_SIM_SERVERS=%lld must divide the %d ranks into equal servers",
                 s, nranks);
        return PPU_INVALID_ARGUMENT;
    }
    *servers = (int)s;
    return PPU_SUCCESS;
}

ppu_result_t ppu_discover_topology(int nranks, struct ppu_topo *t, char *err, size_t errlen)
{
    const char *file = ppu_param_str(PPU_P_TOPO_FILE);
    if (*file)
        return ppu_topo_load_xml(file, t, err, errlen);
    ppu_result_t r = ppu_topo_probe(ppu_param_str(PPU_P_SYSFS_ROOT), t, err, errlen);
    if (r != PPU_SUCCESS || t->nchips > 0)
        return r;
    int servers;
    PPU_CHECK(ppu_discover_sim_servers(nranks, &servers, err, errlen));
    r = ppu_topo_sim_build(ppu_param_str(PPU_P_SIM_TOPO), servers, nranks / servers, t, err,
                           errlen);
    if (r == PPU_SUCCESS)
        r = ppu_topo_set_down(t, ppu_param_str(PPU_P_SIM_LINKS_DOWN), err, errlen);
    return r;
}

void ppu_discover_assign_numa(struct ppu_topo *t, int host_numa_nodes)
{
    if (host_numa_nodes < 1)
        return;
    int per = t->nservers > 0 ? t->nchips / t->nservers : t->nchips;
    for (int c = 0; c < t->nchips; c++)
        if (t->numa[c] < 0)
            t->numa[c] = per > 0 ? (c % per) * host_numa_nodes / per : 0;
}
