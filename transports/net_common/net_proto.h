/* The protocol both network transports speak (net_socket over TCP, net_ib
 * over RDMA), kept here once so that what runs over TCP on any machine is
 * the same code that runs over verbs where a device exists.
 *
 * A link is a FIFO of nslots slots at each end. The core at the sending
 * end fills its slots (or posts references, send_ref) and commits message
 * 0, 1, 2, ...; the transport's progress thread takes message i when the
 * receiver has credit for it and moves header + payload into the
 * receiver's slot i % nslots; the receiver's thread checks the header
 * (net_check_frame: magic, type, sequence, length) and publishes the
 * message; the core reads it and releases it in order.
 *
 * Credits: message i may leave the sender only while i - credit < nslots,
 * where credit is the number of messages the receiver's core has released
 * (so slot i % nslots is free: its last user, i - nslots, was released).
 * The receiver reports its release count back when it has advanced by at
 * least half the window (net_end_credit_due); a sender blocked on credit
 * means the receiver has released a whole window, so the report is always
 * due and the window never deadlocks. A message that arrives without
 * credit breaks the link, as a bad header does.
 *
 * Ordering: messages land in any order (net_socket spreads them over
 * several connections) but the core reads them in order, so each slot
 * carries the index of the message it holds (ready[k] = i + 1).
 *
 * Failure: `gone` (the peer's process or connection went away),
 * `peer_failed` (its failure notice arrived, or it broke the protocol) and
 * `local_failed` (set_failed: a notice for the transport to send). */
#ifndef PPU_NET_PROTO_H
#define PPU_NET_PROTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../transport.h"

#define NET_MAGIC_FRAME 0x504e4631u /* "PNF1": every frame header */

enum net_frame_type {
    NET_FRAME_DATA = 1,   /* a message: the header, then `bytes` bytes */
    NET_FRAME_FAIL = 2,   /* failure notice: the sending end's call failed */
    NET_FRAME_CREDIT = 3, /* receiver -> sender: seq = messages released */
};

/* Header of every frame, in host byte order (the ranks of one job run on
 * one architecture). Data frames go sender -> receiver; credits go
 * receiver -> sender; a failure notice may go either way. */
struct net_frame {
    uint32_t magic;
    uint32_t type;    /* enum net_frame_type */
    uint64_t seq;     /* data: the message's index on the link; credit: release count */
    uint64_t bytes;   /* data: payload bytes, at most slot_bytes */
    uint64_t call[2]; /* the sender's link->call (the core checks it) */
    uint64_t sum;     /* the sender's link->sum (PPU_CHECKSUM), else 0 */
};
_Static_assert(sizeof(struct net_frame) == 48, "frame header is 48 bytes");

/* A frame header, pure so fuzz/fuzz_net_frame.c can run it on any input.
 * Reads at most n bytes and the first 48 only; out (may be NULL) gets those
 * 48 bytes when n >= 48. take_data: this end is the receiver, which takes
 * data frames of message expect_seq with at most slot_bytes of payload,
 * and failure notices; a sender takes failure notices and credits.
 * Returns the frame's type, or 0 with *why set: the frame breaks the link. */
int net_check_frame(const void *bytes, size_t n, int take_data, uint64_t expect_seq,
                    uint64_t slot_bytes, struct net_frame *out, const char **why);

/* Nonces compared in constant time: how much of a guess was right must not
 * show. */

/* An address as connect info carries it: the port in host order, an IPv6
 * scope, the 4 or 16 address bytes (a AF_INET or AF_INET6), and back. */
union ppu_sockaddr;
void net_addr_pack(const union ppu_sockaddr *a, uint16_t *port, uint32_t *scope_id,
                   uint8_t addr[16]);
void net_addr_unpack(int family, uint16_t port, uint32_t scope_id, const uint8_t addr[16],
                     union ppu_sockaddr *a);

struct net_meta {
    uint64_t bytes, call[2], sum;
    const char *ref; /* send_ref: the bytes are the caller's, not the slot's */
};

/* One end of a link: the first member of each transport's link struct. */
struct net_end {
    const char *tname; /* "net_socket", "net_ib": for the log */
    int send;          /* 1: the sending end */
    int self, peer;
    size_t slot_bytes;
    size_t stride;     /* bytes from one slot to the next (>= slot_bytes) */
    size_t hdr;        /* bytes before each slot's payload (net_ib keeps the header there) */
    int nslots;
    char *slots;       /* nslots * stride bytes */
    struct net_meta *meta;
    _Atomic uint64_t *ready; /* receiver: per slot, index + 1 of the message it holds */
    void (*kick)(int force); /* wake the transport's progress thread */
    _Alignas(64) _Atomic uint64_t head;   /* sender: messages committed (core) */
    _Alignas(64) _Atomic uint64_t done;   /* sender: messages whose bytes have left (thread) */
    _Alignas(64) _Atomic uint64_t credit; /* sender: releases the receiver reported (thread) */
    _Alignas(64) _Atomic uint64_t tail;   /* receiver: messages released (core) */
    _Alignas(64) uint64_t pos;            /* core: next message to commit / to read */
    uint64_t cached_done;                 /* core (sender): last done seen */
    uint64_t credit_sent;                 /* thread (receiver): last release count reported */
    _Atomic int gone;         /* the peer's process or connection went away */
    _Atomic int peer_failed;  /* its failure notice arrived, or it broke the protocol */
    _Atomic int local_failed; /* set_failed: a notice to send */
};

/* Set up e's FIFO (slots of slot_bytes, each hdr bytes into a stride);
 * PPU_SYSTEM_ERROR when memory runs out. net_end_free releases it. */
ppu_result_t net_end_init(struct net_end *e, const char *tname, const struct ppu_link_params *p,
                          int send, size_t hdr, void (*kick)(int));
void net_end_free(struct net_end *e);
/* "3->5": the link's direction, sender first. */
const char *net_end_dir(const struct net_end *e, char *buf, size_t len);

/* ---- the core's side (the ops tables call these with link->priv) ---- */
ppu_result_t net_end_send_reserve(struct ppu_link *link, void **slot);
ppu_result_t net_end_send_commit(struct ppu_link *link, size_t bytes);
ppu_result_t net_end_send_ref(struct ppu_link *link, const void *src, size_t bytes);
ppu_result_t net_end_send_drained(struct ppu_link *link);
ppu_result_t net_end_recv_peek(struct ppu_link *link, struct ppu_msg *msg);
ppu_result_t net_end_recv_read(struct ppu_link *link, void *dst, size_t offset, size_t bytes);
ppu_result_t net_end_recv_release(struct ppu_link *link);
void net_end_set_failed(struct ppu_link *link);
int net_end_peer_failed(struct ppu_link *link);
/* Close, sending end: wait (up to timeout_ms) until every committed
 * message has left, unless the link failed first. */
void net_end_drain(struct net_end *e, int timeout_ms);

/* ---- the progress thread's side ---- */

/* Sender: may message seq leave now (committed, and the receiver has
 * credit for it)? If so fills its frame header and where its payload is. */
int net_end_next(struct net_end *e, uint64_t seq, struct net_frame *fr, const void **payload);
/* Sender: every message below n has left (its slot or reference is free).
 * Safe from several threads: the count only grows. */
void net_end_sent(struct net_end *e, uint64_t n);
/* Sender: a credit frame reported seq releases. 0: it is not a credit the
 * receiver can give (backwards, or beyond what was sent), which breaks the
 * link (*why set). */
int net_end_credit_in(struct net_end *e, uint64_t seq, const char **why);
/* Receiver: a data header for message expect_seq arrived (fr checked by
 * net_check_frame). Returns its slot, or NULL (*why set) when it came
 * without credit. */
char *net_end_slot_for(struct net_end *e, const struct net_frame *fr, const char **why);
/* Receiver: message fr->seq is all in its slot: publish it to the core. */
void net_end_landed(struct net_end *e, const struct net_frame *fr);
/* Receiver: a release count to report (returns 1 and sets *seq), or 0. */
int net_end_credit_due(struct net_end *e, uint64_t *seq);
void net_end_credit_sent(struct net_end *e, uint64_t seq);
/* The peer broke the protocol (why): logged, and the link fails. */
void net_end_broken(struct net_end *e, const char *what, const struct net_frame *f, uint64_t want,
                    const char *why);
/* The peer's failure notice arrived. */
void net_end_notice(struct net_end *e);

#endif
