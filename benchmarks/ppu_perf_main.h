/*
 * ppu_perf_main — the main() of every ppu_<coll>_perf program: flags, the -p
 * fork launcher (or ppu_comm_init_env under mpirun), the perf_common backend
 * over ppuccl. A program supplies its collective's description and a function
 * that makes the ppuccl call(s) once.
 */
#ifndef PPU_PERF_MAIN_H
#define PPU_PERF_MAIN_H

#include <stddef.h>

#include "perf_common.h"
#include "ppuccl.h"

/* One call of the collective, as the driver asks for it (see
 * perf_backend_t.run): op is -1 and root is ignored where unused. */
typedef struct ppu_perf_call {
    const void *send;
    void *recv;
    size_t count;
    ppu_datatype_t dtype;
    ppu_redop_t op;
    int root;
    int rank, nranks;
    ppu_comm_t comm;
} ppu_perf_call_t;

/* Runs the collective once on the caller's thread (NULL stream). */
typedef ppu_result_t (*ppu_perf_fn)(const ppu_perf_call_t *call);

/* Parses the flags and runs the sweep for coll on every rank; call names the
 * ppuccl function(s) for error messages. A failing call ends the rank with
 * ppu_get_last_error(). Returns main()'s exit code. */
int ppu_perf_main(int argc, char **argv, const perf_coll_t *coll, const char *call,
                  ppu_perf_fn fn);

#endif /* PPU_PERF_MAIN_H */
