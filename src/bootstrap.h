/* Rendezvous and out-of-band exchange between the ranks of a communicator.
 * The unique id carries the root's address and a random secret; every
 * connection must present the secret or it is dropped and logged. */
#ifndef PPU_BOOTSTRAP_H
#define PPU_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>
#include "ppuccl.h"
#include "socket.h"

#define PPU_BOOT_SECRET_BYTES 16

struct ppu_id_fields {
    union ppu_sockaddr root;
    uint8_t secret[PPU_BOOT_SECRET_BYTES];
};

struct ppu_bootstrap {
    int rank, nranks;
    int next_fd, prev_fd; /* the ring used for allgather */
    uint64_t *host_hash;  /* per rank: same value = same host */
    uint8_t secret[PPU_BOOT_SECRET_BYTES];
    uint64_t timeout_ns;
};

/* Pack/unpack the public id (versioned, with a magic). */
void ppu_id_pack(const struct ppu_id_fields *f, ppu_unique_id_t *id);
ppu_result_t ppu_id_unpack(const ppu_unique_id_t *id, struct ppu_id_fields *f);

/* Start the root listener thread on root (port 0 = any); fills the id. */
ppu_result_t ppu_bootstrap_root_start(union ppu_sockaddr *root, const uint8_t *secret,
                                      ppu_unique_id_t *id, char *err, size_t errlen);
ppu_result_t ppu_bootstrap_init(const ppu_unique_id_t *id, int rank, int nranks,
                                struct ppu_bootstrap **bs, char *err, size_t errlen);
/* data holds nranks blocks of size bytes; this rank's block is filled in,
 * the others are filled by the call. */
ppu_result_t ppu_bootstrap_allgather(struct ppu_bootstrap *bs, void *data, size_t size);
ppu_result_t ppu_bootstrap_barrier(struct ppu_bootstrap *bs);
void ppu_bootstrap_close(struct ppu_bootstrap *bs);

/* A value that differs between hosts and network namespaces. */
uint64_t ppu_host_hash(void);

#endif
