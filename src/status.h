/* The status board: what each rank is doing, readable from outside the
 * job without disturbing it (status.c).
 *
 * Every rank of a communicator keeps one small record in its own file in
 * /dev/shm, owner-only: the call it is in (collective, sequence number,
 * count, type, algorithm), since when, and which peer and link it waits
 * on, with a heartbeat its executor bumps while it waits. The rank only
 * writes (a sequence lock: no lock or wait the data path shares with a
 * reader); `ppu-diag status` and a rank whose call timed out read every
 * record on the host and say which ranks hold the others up. Nothing is
 * ever read from a client, so no client can crash a rank. */
#ifndef PPU_STATUS_H
#define PPU_STATUS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct ppu_comm;
struct ppu_coll_args;
struct ppu_sched;

#define PPU_STATUS_MAGIC 0x3154415453555050ull /* "PPUSTAT1" */
#define PPU_STATUS_LAYOUT 1

enum ppu_status_state { PPU_ST_IDLE = 0, PPU_ST_IN_CALL, PPU_ST_FAILED, PPU_ST_NSTATES };
/* what a rank in a call waits for */
enum ppu_status_wait {
    PPU_WAIT_NONE = 0,
    PPU_WAIT_DATA,  /* data from the peer (link peer->rank) */
    PPU_WAIT_SLOT,  /* a free slot on link rank->peer (the peer is not reading) */
    PPU_WAIT_DRAIN, /* the peer to finish reading this rank's memory */
    PPU_WAIT_NKINDS
};

struct ppu_status_rec {
    uint64_t magic;
    uint32_t layout, size; /* PPU_STATUS_LAYOUT, sizeof the record */
    _Atomic uint64_t gen;  /* odd while the rank writes */
    uint64_t comm_id;      /* the same on every rank of the communicator */
    int32_t rank, nranks, pid, server;
    int32_t lib_version;
    char host[64];
    /* the call */
    int32_t state;             /* enum ppu_status_state */
    int32_t coll, datatype, op, algo, proto;
    uint64_t count;
    uint64_t coll_seq;         /* collectives issued: the same on every rank */
    uint64_t calls_done;
    uint64_t call_since_ns;    /* CLOCK_MONOTONIC; 0 until the call first waited */
    /* the wait (while the call waits) */
    int32_t wait_kind, wait_peer, wait_channel, pad;
    uint64_t wait_since_ns;
    _Atomic uint64_t heartbeat_ns; /* bumped while it waits */
    _Atomic uint64_t steps;        /* progress rounds: moves while it works */
    int32_t last_result;
    char last_error[200];
};

/* Writer side (the rank). Open after init (best effort: no board is only
 * logged), close at destroy; the others are a few stores each. */
void ppu_status_open(struct ppu_comm *comm);
void ppu_status_close(struct ppu_comm *comm);
void ppu_status_call_begin(struct ppu_comm *comm, const struct ppu_coll_args *a,
                           const struct ppu_sched *s);
void ppu_status_call_end(struct ppu_comm *comm, int result);
void ppu_status_waiting(struct ppu_comm *comm, int kind, int peer, int channel,
                        uint64_t since_ns, uint64_t now_ns);
static inline void ppu_status_progress(struct ppu_status_rec *r)
{
    if (r)
        atomic_store_explicit(&r->steps, atomic_load_explicit(&r->steps, memory_order_relaxed) + 1,
                              memory_order_relaxed);
}

/* Reader side. One record as read, checked, with what the reader found
 * about its process. */
struct ppu_status_view {
    struct ppu_status_rec rec;
    char file[128];
    int alive;      /* its process exists */
    char proc_state; /* /proc/PID/stat's state ('T' stopped), '?' unknown */
    int moved;      /* heartbeat or steps changed between two reads */
};

/* Every readable record of this user on this host (and of comm_id only,
 * unless it is 0), read twice interval_ms apart; with interval_ms 0 once,
 * and every rank counts as answering (a rank that timed out: its peers
 * are in their own timeouts, not heartbeating). *out is malloc'd. Bad
 * files (another owner, wrong size or magic, torn) are skipped. */
int ppu_status_scan(uint64_t comm_id, int interval_ms, struct ppu_status_view **out);

/* Who holds the ranks of one communicator up, as lines of text: the ranks
 * that are dead, stopped, not answering or behind, with the ranks that
 * wait on them, then one line a rank. v: its ranks' records (any order;
 * ranks not on this host are missing). Returns the number of ranks named
 * as holding others up. */
int ppu_status_explain(struct ppu_status_view *v, int n, uint64_t now_ns, char *buf, size_t len);

/* One rank's line (no newline): its state, call, for how long, its wait. */
void ppu_status_line(const struct ppu_status_view *v, uint64_t now_ns, char *buf, size_t len);
/* Why rank v is holding others up, or NULL when it is not stuck itself
 * (it is working or waiting with a live heartbeat). */
const char *ppu_status_stuck(const struct ppu_status_view *v, uint64_t max_coll_seq);

#endif
