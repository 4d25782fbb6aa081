/*
 * mpi_reduce_perf — MPI_Reduce, the baseline of ppu_reduce_perf (same flags
 * and output; main() in mpi_perf_main.c). avg runs MPI_SUM and the root
 * divides.
 *
 *   mpirun -np 2 mpi_reduce_perf -b 8 -e 64M -f 2 -o all
 */
#include "mpi_perf_main.h"

static int run(const mpi_perf_call_t *a) {
    int root = a->rank == a->root;
    /* in place (send == recv) is MPI_IN_PLACE on the root only */
    const void *s = root && a->send == a->recv ? MPI_IN_PLACE : a->send;
    if (MPI_Reduce(s, a->recv, a->count, a->type, a->op, a->root, a->comm) != MPI_SUCCESS) return 1;
    if (root) mpi_perf_avg(a, a->recv, (size_t)a->count);
    return 0;
}

int main(int argc, char **argv) {
    return mpi_perf_main(argc, argv, &perf_coll_reduce, run);
}
