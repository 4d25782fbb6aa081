/* Which topology a communicator runs on: a file, the hardware probe, or a
 * simulation preset, behind one call. */
#ifndef PPU_DISCOVER_H
#define PPU_DISCOVER_H

#include <stddef.h>
#include "../topology/topo.h"

/* PPU_SIM_SERVERS, checked against nranks: equal servers. */
ppu_result_t ppu_discover_sim_servers(int nranks, int *servers, char *err, size_t errlen);

/* PPU_TOPO_FILE if set; else the hardware probe (PPU_SYSFS_ROOT) if it
 * finds chips; else the preset PPU_SIM_TOPO over PPU_SIM_SERVERS servers
 * with PPU_SIM_LINKS_DOWN applied. nranks sizes the simulated cluster. */
ppu_result_t ppu_discover_topology(int nranks, struct ppu_topo *t, char *err, size_t errlen);

/* Give simulated chips NUMA nodes of this host, spread evenly. */
void ppu_discover_assign_numa(struct ppu_topo *t, int host_numa_nodes);

#endif
