/* Owner-only POSIX shared-memory segments made whole at once (shm.c): the
 * status board's records, symmetric memory and its control blocks. */
#ifndef PPU_SHM_H
#define PPU_SHM_H

#include <stddef.h>

/* bytes rounded up to whole pages (as segments are sized and mapped) */
static inline size_t ppu_shm_pages(size_t bytes)
{
    return (bytes + 4095) & ~(size_t)4095;
}

/* A new segment name of size bytes (O_EXCL, mode 0600), every page
 * allocated now so that a full /dev/shm is this error and not a SIGBUS
 * later, mapped read-write. NULL with *err an errno (the name is removed
 * again) on failure. */
void *ppu_shm_create(const char *name, size_t size, int *err);

#endif
