/*
 * mpi_perf_main — the main() of every mpi_<coll>_perf program, the MPI
 * baselines of the ppu_<coll>_perf programs (scripts/compare_mpi.sh): same
 * flags and output. A program supplies its collective's description and a
 * function that makes the MPI call(s) once.
 */
#ifndef PPU_MPI_PERF_MAIN_H
#define PPU_MPI_PERF_MAIN_H

#include <mpi.h>
#include <stddef.h>

#include "perf_common.h"

/* One call of the collective, as the driver asks for it (see
 * perf_backend_t.run), with the MPI arguments worked out. */
typedef struct mpi_perf_call {
    const void *send;
    void *recv;
    int count;          /* the collective's count (checked to fit an int) */
    MPI_Datatype type;  /* half / bfloat16 travel as MPI_UINT16_T where nothing is reduced */
    MPI_Op op;          /* MPI_SUM for PPU_AVG: finish with mpi_perf_avg() */
    int dtype, redop;   /* the ppuccl enums; redop is -1 where nothing is reduced */
    size_t type_size;   /* bytes per element */
    int root, rank, nranks;
    MPI_Comm comm;
} mpi_perf_call_t;

/* Runs the collective once; returns 0 on success. */
typedef int (*mpi_perf_fn)(const mpi_perf_call_t *call);

/* MPI has no average: for PPU_AVG, divides n elements of buf by nranks in the
 * datatype (integers truncate toward zero), as ppuccl does inside the call;
 * nothing for the other ops. Call it inside the run function, so that it is
 * timed. */
void mpi_perf_avg(const mpi_perf_call_t *call, void *buf, size_t n);

/* MPI_Init, flags, the sweep for coll, MPI_Finalize. half and bfloat16 are
 * not MPI datatypes: where coll reduces, -d half / -d bfloat16 exit with code
 * 2 and -d all skips them. Returns main()'s exit code. */
int mpi_perf_main(int argc, char **argv, const perf_coll_t *coll, mpi_perf_fn fn);

#endif /* PPU_MPI_PERF_MAIN_H */
