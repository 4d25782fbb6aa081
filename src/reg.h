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
 * removing the region, or the domain going away (ppu_reg_drop_domain),
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
#ifndef PPU_REG_H
#define PPU_REG_H

#include <stddef.h>
#include <stdint.h>

#include "ppuccl.h"
#include "../transports/transport.h" /* ppu_reg_ops, ppu_reg_get: what transports use */

/* A region of owner's (a communicator). PPU_SYSTEM_ERROR when memory runs
 * out. *region is the handle to remove it with. */
ppu_result_t ppu_reg_add(const void *owner, const void *addr, size_t bytes, void **region);
/* Removes one of owner's regions and deregisters it everywhere; 0, or -1
 * when region is not a region of owner's. */
int ppu_reg_remove(const void *owner, void *region);
/* Removes every region of owner's (the communicator is being destroyed). */
void ppu_reg_remove_owner(const void *owner);
/* Does one of owner's regions hold all of [p, p + n)? Costs one atomic
 * load while no region exists. */
int ppu_reg_covers(const void *owner, const void *p, size_t n);
/* Regions that exist now; asks (ppu_reg_covers, ppu_reg_get) that found
 * their range in a region; ppu_reg_get calls that returned a key. For
 * tests: a send from registered memory did take the registered path. */
int ppu_reg_count(void);
void ppu_reg_stats(uint64_t *found, uint64_t *keyed);

#endif
