/* Schedules are data: an algorithm turns (collective, count, rank, ring)
 * into a list of steps per channel; one executor runs any list. */
#ifndef PPU_SCHEDULE_H
#define PPU_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include "ppuccl.h"

enum ppu_step_flags {
    PPU_STEP_RECV = 1 << 0,   /* take a message from the channel's recv link */
    PPU_STEP_INPUT = 1 << 1,  /* combine with (or take) input[offset] */
    PPU_STEP_OUTPUT = 1 << 2, /* write the result to output[offset] */
    PPU_STEP_SEND = 1 << 3,   /* send the result on the channel's send link */
    PPU_STEP_FINISH = 1 << 4, /* apply the op's final step (AVG: divide) */
    PPU_STEP_ACCUM = 1 << 5,  /* output = output op (message or input) */
    PPU_STEP_TMP_IN = 1 << 6, /* "input" is the communicator's scratch buffer */
    PPU_STEP_TMP_OUT = 1 << 7, /* "output" is the scratch buffer */
};

/* Links: a step sends and receives on its channel's ring links, unless it
 * names a peer (>= 0): then the direct mesh link to or from that rank. */
struct ppu_step {
    uint32_t flags;
    int16_t send_peer;
    int16_t recv_peer;
    size_t offset; /* in elements, from the start of the buffers */
    size_t count;  /* elements */
};

struct ppu_sched_channel {
    struct ppu_step *steps;
    size_t nsteps;
};

struct ppu_sched {
    int nchannels;
    struct ppu_sched_channel ch[16];
    /* the key it was built for */
    size_t count;
    ppu_datatype_t datatype;
    ppu_redop_t op;
    int algo; /* enum ppu_algo */
};

enum ppu_algo { PPU_ALGO_RING = 0, PPU_ALGO_ONESHOT = 1 };

/* Ring all-reduce (reduce-scatter then all-gather), pipelined in chunks of
 * at most chunk_elems, the buffer split evenly over nchannels rings.
 * ring_pos is this rank's position in each channel's ring. */
ppu_result_t ppu_sched_ring_allreduce(struct ppu_sched *s, size_t count, int nranks,
                                      const int *ring_pos, int nchannels,
                                      size_t chunk_elems, ppu_redop_t op);
/* One-shot all-reduce over direct links to every peer: send the whole
 * input to each, then reduce everyone's data in rank order (so every rank
 * gets bitwise the same result) into scratch, then copy it out. */
ppu_result_t ppu_sched_oneshot_allreduce(struct ppu_sched *s, size_t count, int nranks, int rank,
                                         ppu_redop_t op);
void ppu_sched_free(struct ppu_sched *s);

#endif
