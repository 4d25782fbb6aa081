/* The transports the library has, in the order the core prefers them: the
 * one thing that names them all. The core picks from this list (links
 * inside a server: the first that reaches a server; between servers:
 * PPU_NET's, or the first every rank can use) and learns from each entry
 * how to describe its links; it includes no transport's own header. */
#include <stdio.h>
#include <string.h>

#include "net_ib/net_ib.h"
#include "transport.h"
#include "util/param.h"

static int always(char *what, size_t len)
{
    snprintf(what, len, "always available");
    return 1;
}

static int ib_usable(char *what, size_t len)
{
    return ppu_net_ib_usable(ppu_param_str(PPU_P_IB_HCA), what, len);
}

static void icn_describe(const struct ppu_link_params *p, const char *addr, char *buf, size_t len)
{
    snprintf(buf, len, "icn_sim (%s)",
             p->allow_cma ? "single-copy (process_vm_readv) for large chunks between processes"
                          : "references between threads, copies through the FIFO between "
                            "processes");
}

static void socket_describe(const struct ppu_link_params *p, const char *addr, char *buf,
                            size_t len)
{
    snprintf(buf, len, "net_socket (TCP from %s, %d connection(s) per link, %d progress "
             "thread(s) per process)", addr, p->nsocks, p->nthreads);
}

static void ib_describe(const struct ppu_link_params *p, const char *addr, char *buf, size_t len)
{
    snprintf(buf, len, "net_ib (RDMA from %s%s%s, one queue pair per link, one progress thread "
             "per process)", addr, *p->ib_hca ? ", device " : "", p->ib_hca);
}

static const struct ppu_transport registry[] = {
    {"icn_sim", &ppu_icn_sim_ops, PPU_REACH_SERVER, always, icn_describe},
    /* between servers: RDMA where every rank has a device, else TCP */
    {"ib", &ppu_net_ib_ops, PPU_REACH_NET, ib_usable, ib_describe},
    {"socket", &ppu_net_socket_ops, PPU_REACH_NET, always, socket_describe},
};

const struct ppu_transport *ppu_transport_at(int i)
{
    return i >= 0 && i < (int)(sizeof registry / sizeof registry[0]) ? &registry[i] : NULL;
}

const struct ppu_transport *ppu_transport_named(const char *name, int reach)
{
    for (int i = 0; ppu_transport_at(i); i++)
        if ((registry[i].reach & reach) && (!name || !strcmp(registry[i].name, name)))
            return &registry[i];
    return NULL;
}

const struct ppu_transport *ppu_transport_of(const struct ppu_transport_ops *ops)
{
    for (int i = 0; ppu_transport_at(i); i++)
        if (registry[i].ops == ops)
            return &registry[i];
    return NULL;
}
