#include "topo_host.h"

#include <hwloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int numa_of(hwloc_topology_t topo, hwloc_obj_t obj)
{
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(topo, obj);
    if (!anc || !anc->nodeset || hwloc_bitmap_iszero(anc->nodeset))
        return -1;
    /* a device under the whole machine is local to every node: unknown */
    if (hwloc_bitmap_weight(anc->nodeset) != 1)
        return -1;
    return hwloc_bitmap_first(anc->nodeset);
}

static void pci_of(hwloc_obj_t obj, char *buf, size_t len)
{
    buf[0] = '\0';
    for (hwloc_obj_t p = obj->parent; p; p = p->parent)
        if (p->type == HWLOC_OBJ_PCI_DEVICE) {
            snprintf(buf, len, "%04x:%02x:%02x.%x", p->attr->pcidev.domain, p->attr->pcidev.bus,
                     p->attr->pcidev.dev, p->attr->pcidev.func);
            return;
        }
}

static ppu_result_t load(hwloc_topology_t *topo, char *err, size_t errlen)
{
    if (hwloc_topology_init(topo) != 0) {
        snprintf(err, errlen, "hwloc_topology_init failed");
        return PPU_SYSTEM_ERROR;
    }
    hwloc_topology_set_io_types_filter(*topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    /* The libpciaccess-based "pci" component leaks at process exit (seen
     * under LeakSanitizer); hwloc's Linux backend reads the same PCI and
     * network-device locality from sysfs without it. */
    hwloc_topology_set_components(*topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "pci");
    if (hwloc_topology_load(*topo) != 0) {
        hwloc_topology_destroy(*topo);
        snprintf(err, errlen, "hwloc_topology_load failed");
        return PPU_SYSTEM_ERROR;
    }
    return PPU_SUCCESS;
}

/* The host does not change while we run: load hwloc once per process.
 * Loading it from several threads at once also races inside libudev
 * (ThreadSanitizer, ranks as threads), and binding uses the one topology
 * under a lock. */
static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static hwloc_topology_t host_topo;
static struct ppu_host host_info;
static ppu_result_t host_result;
static char host_err[128];

static void discover_once(void)
{
    struct ppu_host *h = &host_info;
    host_result = load(&host_topo, host_err, sizeof host_err);
    if (host_result != PPU_SUCCESS)
        return;
    hwloc_topology_t topo = host_topo;
    h->npackages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    h->nnuma = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    h->ncores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    h->npus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    h->npci = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PCI_DEVICE);
    for (hwloc_obj_t o = hwloc_get_next_osdev(topo, NULL); o && h->nnets < PPU_HOST_MAX_NETS;
         o = hwloc_get_next_osdev(topo, o)) {
        hwloc_obj_osdev_type_t t = o->attr->osdev.type;
        if (t != HWLOC_OBJ_OSDEV_NETWORK && t != HWLOC_OBJ_OSDEV_OPENFABRICS)
            continue;
        struct ppu_host_net *n = &h->net[h->nnets++];
        snprintf(n->name, sizeof n->name, "%s", o->name ? o->name : "?");
        n->rdma = t == HWLOC_OBJ_OSDEV_OPENFABRICS;
        n->numa = numa_of(topo, o);
        pci_of(o, n->pci, sizeof n->pci);
    }
}

ppu_result_t ppu_host_discover(struct ppu_host *h, char *err, size_t errlen)
{
    pthread_once(&host_once, discover_once);
    if (host_result != PPU_SUCCESS) {
        snprintf(err, errlen, "%s", host_err);
        return host_result;
    }
    *h = host_info;
    return PPU_SUCCESS;
}

ppu_result_t ppu_host_bind_numa(int numa, char *cpus, size_t len)
{
    pthread_once(&host_once, discover_once);
    if (host_result != PPU_SUCCESS)
        return host_result;
    pthread_mutex_lock(&host_lock);
    hwloc_obj_t node = hwloc_get_numanode_obj_by_os_index(host_topo, (unsigned)numa);
    int rc = -1;
    if (node && node->cpuset && !hwloc_bitmap_iszero(node->cpuset)) {
        rc = hwloc_set_cpubind(host_topo, node->cpuset, HWLOC_CPUBIND_THREAD);
        hwloc_bitmap_list_snprintf(cpus, len, node->cpuset);
    }
    pthread_mutex_unlock(&host_lock);
    return !node ? PPU_INVALID_ARGUMENT : rc == 0 ? PPU_SUCCESS : PPU_SYSTEM_ERROR;
}
