/* ppu-diag's checks (diag.c) and health query (diag_status.c). */
#ifndef PPU_DIAG_H
#define PPU_DIAG_H

#include <stddef.h>
#include "ppuccl.h"

enum { DIAG_TOPO = 1, DIAG_ICN = 2, DIAG_NET = 4, DIAG_COLL = 8 };
enum { DIAG_EXIT_HEALTHY = 0, DIAG_EXIT_FINDINGS = 1, DIAG_EXIT_CANNOT = 2 };
#define DIAG_MAX_PASSES 16

struct diag_opts {
    int nprocs;              /* -p: local ranks to fork, 0: one rank a process */
    const char *expect_file; /* --expect */
    const char *expect_sim;  /* --expect-sim */
    double threshold;        /* flag below threshold x the median of links like it */
    size_t bytes;            /* one link measurement */
    int passes;              /* measurements of each link before comparing */
    int checks;              /* DIAG_* */
    const char *json, *png;
    int guard_s;
};

/* One rank's part of the checks on an initialised communicator, which it
 * destroys. Every rank returns the same verdict (DIAG_EXIT_*). */
int diag_rank(const struct diag_opts *o, ppu_comm_t comm);
/* The exit code and message for a communicator that could not start. */
int diag_init_failed(ppu_result_t r);
/* `ppu-diag status ...` (argv[0] is "status"). */
int diag_status_main(int argc, char **argv);

#endif
