/*
 * mpi_alltoall_perf — MPI_Alltoall, the baseline of ppu_alltoall_perf (same
 * flags and output; main() in mpi_perf_main.c). No in-place variant.
 *
 *   mpirun -np 2 mpi_alltoall_perf -b 8 -e 64M -f 2
 */
#include "mpi_perf_main.h"

static int run(const mpi_perf_call_t *a) {
    return MPI_Alltoall(a->send, a->count, a->type, a->recv, a->count, a->type,
                        a->comm) != MPI_SUCCESS;
}

int main(int argc, char **argv) {
    return mpi_perf_main(argc, argv, &perf_coll_alltoall, run);
}
