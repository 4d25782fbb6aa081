/* A schedule simulator for tests: every rank's schedule of one collective
 * call run together in one process, over modelled links, with no
 * transport. It says whether the schedules fit: every message the size its
 * receiver expects, no deadlock, no offset out of a buffer, no message
 * left unread, no two unordered channels on one link.
 *
 * Steps do what run_step in src/exec.c does over links that copy (no
 * message sent by reference), on uint64_t elements with wrapping addition
 * as the op (PPU_STEP_FINISH is ignored). A link is a directed FIFO of
 * message copies, (sender, receiver, ring c) or (sender, receiver, peer),
 * with a bounded number of messages in flight; a step runs only when its
 * message is there and its send link has a free slot, and its message
 * leaves the link when it runs.
 *
 *     struct schedsim_cfg cfg = {.nranks = n, .nrings = 1, .rings = ring,
 *                                .ring_slots = 2, .peer_slots = 4,
 *                                .scratch_elems = 512};
 *     char err[512];
 *     if (schedsim_run(&cfg, scheds, in, in_n, out, out_n, err, sizeof err))
 *         printf("%s\n", err);
 *
 * Every schedule must be built with an 8-byte datatype (s->esize 8):
 * offsets and counts are in uint64_t elements. Schedules of sends and
 * receives (channels with their own buffers, ch->in / ch->out) are not
 * simulated. */
#ifndef PPU_TEST_SCHEDSIM_H
#define PPU_TEST_SCHEDSIM_H

#include <stddef.h>
#include <stdint.h>

#include "../src/schedule.h" /* struct ppu_sched, struct ppu_step, PPU_STEP_* flags */

struct schedsim_cfg {
    int nranks;
    /* Schedule channel c < nrings sends and receives on ring c when a
     * step's peer is -1 (any negative peer). */
    int nrings;
    /* nrings x nranks ints: rings[c * nranks + i] is the rank at position
     * i of ring c (each ring holds every rank once). A ring step sends to
     * the next rank on ring c, receives from the previous one. */
    const int *rings;
    int ring_slots; /* FIFO depth (messages in flight) of a ring link, >= 1 */
    int peer_slots; /* ... of a direct peer link (a step names a peer >= 0) */
    /* The communicator's scratch buffer (PPU_STEP_TMP_IN / TMP_OUT), in
     * elements. Each rank gets its own. */
    size_t scratch_elems;
    /* 1: a channel that sent on its ring is done only once the next rank
     * has read all of it, as the executor waits when it sent by reference
     * (task_progress: state 1, send_drained). Stricter (a chain of `after`
     * channels waits longer); 0 (the default): done at its last step. */
    int ring_drain;
};

/* Run the schedules of all ranks (sched[r] is rank r's) together. in[r]
 * and out[r] are rank r's input and output buffers, of in_elems[r] and
 * out_elems[r] elements (a buffer may be NULL when it has 0 elements).
 * in[r] may alias out[r] (in-place calls): the simulator reads and writes
 * the caller's arrays directly, in the executor's order. Each schedule's
 * temporary (s->tmp_bytes / 8 elements, for channels with in_tmp /
 * out_tmp) and the scratch buffer are allocated per rank, filled with
 * SCHEDSIM_POISON, and freed before the return.
 *
 * Returns 0 when every rank finished every channel and every message was
 * read; otherwise nonzero with one sentence in err (when errlen > 0)
 * naming the first problem found: a step's peer out of range or the rank
 * itself, a ring step on a channel >= nrings, an offset and count past the
 * end of a buffer (checked for every step before any runs), two channels
 * of a rank on one link with neither after the other, a message whose
 * count differs from the receiver's, a deadlock (a few blocked ranks with
 * what each waits on), messages left unread on a link. */
int schedsim_run(const struct schedsim_cfg *cfg, const struct ppu_sched *const *sched,
                 uint64_t *const *in, const size_t *in_elems, uint64_t *const *out,
                 const size_t *out_elems, char *err, size_t errlen);

/* What unwritten scratch and temporaries hold. */
#define SCHEDSIM_POISON 0x5eedf00ddeadbeefull

#endif
