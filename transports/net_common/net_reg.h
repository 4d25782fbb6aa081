/* The registration cache: memory the user registered with a communicator
 * (ppu_comm_register), and its registrations with the network devices
 * that send from it (net_ib), made on first use and kept until the user
 * deregisters it.
 *
 * A region is [addr, addr + bytes), which the user promises stays mapped
 * until ppu_comm_deregister (or until the communicator is destroyed). A
 * transport that wants to send a range from the caller's memory asks for
 * the registration of that range in its domain (net_ib: the device's
 * protection domain): the first ask registers the whole region there
 * (ops->reg), later asks from any link of the communicator reuse it, and
 * removing the region, or the domain going away (net_reg_drop_domain),
 * deregisters it (ops->dereg).
 *
 * Only memory the user registered is ever registered. A cache that
 * registered any buffer it was handed, keyed by address, would go stale
 * when the buffer is freed and other memory mapped at the same address:
 * it would send the old, pinned pages. Nothing here can see an unmap, so
 * the user's promise is what keeps every registration true.
 *
 * Thread-safe: one lock, never held while a device registers memory; a
 * region is looked up once per large message. A region is used only by its
 * owner's collectives, which run one at a time (the communicator's
 * exec_lock), and ppu_comm_deregister takes that lock too: so a region is
 * never removed while a registration of it is being made or used, and
 * registering it outside the lock is safe. */
#ifndef PPU_NET_REG_H
#define PPU_NET_REG_H

#include <stddef.h>
#include <stdint.h>

#include "ppuccl.h"

#define NET_REG_DOMAINS 4 /* devices one region is registered with, at most */

struct net_reg_ops {
    const char *name; /* for the log: "net_ib" */
    /* Register [addr, addr + bytes) in dom; NULL with errno set on failure. */
    void *(*reg)(void *dom, void *addr, size_t bytes);
    void (*dereg)(void *handle);
    /* The key a send names the registration by (net_ib: the MR's lkey). */
    uint64_t (*key)(void *handle);
};

/* A region of owner's (a communicator). PPU_SYSTEM_ERROR when memory runs
 * out. *region is the handle to remove it with. */
ppu_result_t net_reg_add(const void *owner, const void *addr, size_t bytes, void **region);
/* Removes one of owner's regions and deregisters it everywhere; 0, or -1
 * when region is not a region of owner's. */
int net_reg_remove(const void *owner, void *region);
/* Removes every region of owner's (the communicator is being destroyed). */
void net_reg_remove_owner(const void *owner);
/* Does one of owner's regions hold all of [p, p + n)? Costs one atomic
 * load while no region exists. */
int net_reg_covers(const void *owner, const void *p, size_t n);
/* The key (ops->key) of the registration in dom of the region of owner's
 * that holds [p, p + n), made now if it is the first ask: 1 and *key set,
 * or 0 when no region holds the range, registering failed (logged once per
 * region and domain, and not tried again), or the region is registered
 * with NET_REG_DOMAINS other domains already (logged once). */
int net_reg_get(const void *owner, const void *p, size_t n, void *dom,
                const struct net_reg_ops *ops, uint64_t *key);
/* dom is going away: deregister every region's registration in it. */
void net_reg_drop_domain(void *dom);
/* Regions that exist now; asks (net_reg_covers, net_reg_get) that found
 * their range in a region; net_reg_get calls that returned a key. For
 * tests: a send from registered memory did take the registered path. */
int net_reg_count(void);
void net_reg_stats(uint64_t *found, uint64_t *keyed);

#endif
