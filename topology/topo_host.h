/* The host side, from hwloc: packages, NUMA nodes, cores, PCI devices and
 * network devices (Ethernet and RDMA) with their NUMA locality. */
#ifndef PPU_TOPO_HOST_H
#define PPU_TOPO_HOST_H

#include <stddef.h>
#include "ppuccl.h"

#define PPU_HOST_MAX_NETS 32

struct ppu_host_net {
    char name[32];
    char pci[20]; /* "" when not on PCI (virtual) */
    int numa;     /* -1 unknown */
    int rdma;     /* OpenFabrics (verbs) device */
};

struct ppu_host {
    int npackages, nnuma, ncores, npus, npci;
    int nnets;
    struct ppu_host_net net[PPU_HOST_MAX_NETS];
};

ppu_result_t ppu_host_discover(struct ppu_host *h, char *err, size_t errlen);
/* Bind the calling thread to the CPUs of NUMA node numa; describes the
 * CPU set in cpus. */
ppu_result_t ppu_host_bind_numa(int numa, char *cpus, size_t len);

#endif
