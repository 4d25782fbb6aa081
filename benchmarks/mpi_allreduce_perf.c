/*
 * mpi_allreduce_perf — MPI_Allreduce through the shared perf_common driver,
 * the baseline that ppu_allreduce_perf is compared against
 * (scripts/compare_mpi.sh). Same flags and output as ppu_allreduce_perf;
 * main() in mpi_perf_main.c.
 *
 *   mpirun -np 2 mpi_allreduce_perf -b 8 -e 64M -f 2
 *
 * half and bfloat16 are not MPI datatypes: -d half / -d bfloat16 exit with
 * code 2, -d all skips them.
 */
#include "mpi_perf_main.h"

static int run(const mpi_perf_call_t *a) {
    const void *s = a->send == a->recv ? MPI_IN_PLACE : a->send;
    if (MPI_Allreduce(s, a->recv, a->count, a->type, a->op, a->comm) != MPI_SUCCESS) return 1;
    mpi_perf_avg(a, a->recv, (size_t)a->count);
    return 0;
}

int main(int argc, char **argv) {
    return mpi_perf_main(argc, argv, &perf_coll_allreduce, run);
}
