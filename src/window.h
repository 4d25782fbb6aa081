/* Symmetric memory and windows (window.c): ppu_mem_alloc'd buffers that
 * the ranks of a server map from each other, and the all-reduce that
 * reads every rank's input and writes every rank's output directly. */
#ifndef PPU_WINDOW_H
#define PPU_WINDOW_H

#include "ppuccl.h"

struct ppu_comm;
struct ppu_coll_args;

/* Largest communicator the window path serves (a server's chips). */
#define PPU_WIN_MAX_LOCAL 64

/* The collective a (all-reduce, reduce, broadcast, all-gather,
 * reduce-scatter, all-to-all) over windows: when every buffer this rank
 * uses lies in a window all of whose ranks' buffers it maps, run it here,
 * reading and writing the ranks' windows directly, and return 1 with its
 * result in *res; else 0. Every rank must then do the same (the ranks
 * check the call; buffers may sit at any offsets in any windows). */
int ppu_window_run(struct ppu_comm *comm, const struct ppu_coll_args *a, ppu_result_t *res);
/* At destroy: every window of comm and its control segment. */
void ppu_window_close_all(struct ppu_comm *comm);

#endif
