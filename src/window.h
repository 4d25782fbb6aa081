/* Symmetric memory and windows (window.c): ppu_mem_alloc'd buffers that
 * the ranks of a server map from each other, and the all-reduce that
 * reads every rank's input and writes every rank's output directly. */
#ifndef PPU_WINDOW_H
#define PPU_WINDOW_H

#include "ppuccl.h"

struct ppu_comm;
struct ppu_coll_args;

/* The all-reduce a over windows: when its send and receive buffers lie in
 * windows every rank's buffer of which this rank maps, run it here and
 * return 1 with its result in *res (every rank must then do the same:
 * same offsets, count, type and op, which the ranks check); else 0. */
int ppu_window_allreduce(struct ppu_comm *comm, const struct ppu_coll_args *a, ppu_result_t *res);
/* At destroy: every window of comm and its control segment. */
void ppu_window_close_all(struct ppu_comm *comm);

#endif
