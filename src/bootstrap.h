/* Rendezvous and out-of-band exchange between the ranks of a communicator.
 * The unique id carries the root's address and a random secret; every
 * connection must present the secret or it is dropped and logged. */
#ifndef PPU_BOOTSTRAP_H
#define PPU_BOOTSTRAP_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include "ppuccl.h"
#include "util/socket.h"

#define PPU_BOOT_SECRET_BYTES 16

struct ppu_id_fields {
    union ppu_sockaddr root;
    uint8_t secret[PPU_BOOT_SECRET_BYTES];
};

struct ppu_boot_mail;

struct ppu_bootstrap {
    int rank, nranks;
    int next_fd, prev_fd; /* the ring used for allgather */
    uint64_t *host_hash;  /* per rank: same value = same host */
    uint8_t secret[PPU_BOOT_SECRET_BYTES];
    uint64_t timeout_ns;
    /* Point-to-point messages (links connected on first use): every
     * rank's listener address, this rank's listener, and what arrived
     * before it was asked for. */
    union ppu_sockaddr *addr;
    int lfd;
    struct ppu_boot_mail *mail;
    uint32_t ag_seq; /* allgathers run: each one's messages carry its number */
    struct ppu_boot_pending **pend; /* connections whose message is still arriving */
    int npend;
};

/* Up to this many ranks the allgather goes round the ring (N - 1 steps);
 * past it, the address table at init and every allgather after it go in
 * ceil(log2 N) rounds of point-to-point messages (Bruck's algorithm), and
 * no ring is formed. */
#define PPU_BOOT_RING_MAX 64

/* The wire protocol's version. 2: the root sends each rank its successor,
 * the table goes round the ring; 3: past 64 ranks later allgathers go
 * point to point (Bruck); 4: past 64 ranks the table too, from the root's
 * log2 N entries. */
#define PPU_BOOT_VERSION 4

/* Pack/unpack the public id (versioned, with a magic). */
void ppu_id_pack(const struct ppu_id_fields *f, ppu_unique_id_t *id);
ppu_result_t ppu_id_unpack(const ppu_unique_id_t *id, struct ppu_id_fields *f);

/* Wire sizes (bootstrap.c): a message header, one rank's entry of the
 * address table, a hello (rank, size, address entry). */
#define PPU_BOOT_HDR_BYTES 28
#define PPU_BOOT_ADDR_BYTES 28
#define PPU_BOOT_HELLO_BYTES 36

/* Check the n bytes of a received message header: magic, version, secret,
 * type and a payload length of at most max_len (into *len). A header with
 * the right secret and another protocol version is PPU_INVALID_USAGE (a
 * rank of this job with another ppuccl; an abort is accepted from any
 * version); anything else is PPU_REMOTE_ERROR. *why says what was wrong. Reads nothing but the
 * bytes given; the pure part of receiving a header. */
ppu_result_t ppu_boot_check_hdr(const void *hdr_bytes, size_t n, const uint8_t *secret, int type,
                                uint32_t max_len, uint32_t *len, const char **why);
/* Check a hello payload (n bytes) as the root does: rank < size <= 65536,
 * and size equal to nranks unless nranks is 0 (the first hello). */
ppu_result_t ppu_boot_check_hello(const void *payload, size_t n, int nranks, uint32_t *rank,
                                  uint32_t *size, const char **why);
/* Decode one address-table entry (n bytes; PPU_BOOT_ADDR_BYTES used). */
ppu_result_t ppu_boot_addr_from_wire(const void *entry, size_t n, union ppu_sockaddr *addr,
                                     uint64_t *host_hash);

/* Start the root listener thread on root (port 0 = any); fills the id. */
ppu_result_t ppu_bootstrap_root_start(union ppu_sockaddr *root, const uint8_t *secret,
                                      ppu_unique_id_t *id, char *err, size_t errlen);
ppu_result_t ppu_bootstrap_init(const ppu_unique_id_t *id, int rank, int nranks,
                                struct ppu_bootstrap **bs, char *err, size_t errlen);
/* data holds nranks blocks of size bytes; this rank's block is filled in,
 * the others are filled by the call. */
ppu_result_t ppu_bootstrap_allgather(struct ppu_bootstrap *bs, void *data, size_t size);
ppu_result_t ppu_bootstrap_barrier(struct ppu_bootstrap *bs);
/* One message of at most PPU_BOOT_P2P_MAX bytes to rank peer, under tag:
 * a connection to its listener that carries it and closes. */
#define PPU_BOOT_P2P_MAX 4096
ppu_result_t ppu_bootstrap_send(struct ppu_bootstrap *bs, int peer, uint32_t tag, const void *data,
                                size_t len);
/* The same, trying until deadline instead of the bootstrap timeout (a
 * best-effort notice to a peer that may have exited). */
ppu_result_t ppu_bootstrap_send_until(struct ppu_bootstrap *bs, int peer, uint32_t tag,
                                      const void *data, size_t len, uint64_t deadline);
/* The message from rank peer under tag, of exactly len bytes; messages
 * for other (peer, tag) that arrive meanwhile are kept for later calls.
 * Waits until deadline (PPU_TIMEOUT) or until *abort is set (PPU_REMOTE_ERROR
 * is not used: the caller says why it stopped). */
ppu_result_t ppu_bootstrap_recv(struct ppu_bootstrap *bs, int peer, uint32_t tag, void *data,
                                size_t len, uint64_t deadline, const atomic_int *abort);
/* Has rank peer's process gone? Its bootstrap listener refuses
 * connections once it has (one try, at most 0.2 s). For ranks this one
 * holds no link to. */
#define PPU_BOOT_TAG_PROBE 0xffffffffu
int ppu_bootstrap_peer_gone(struct ppu_bootstrap *bs, int peer);
void ppu_bootstrap_close(struct ppu_bootstrap *bs);

/* A value that differs between hosts and network namespaces. */
uint64_t ppu_host_hash(void);

#endif
