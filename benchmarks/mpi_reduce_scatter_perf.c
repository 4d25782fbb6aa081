/*
 * mpi_reduce_scatter_perf — MPI_Reduce_scatter_block, the baseline of
 * ppu_reduce_scatter_perf (same flags and output; main() in
 * mpi_perf_main.c). avg runs MPI_SUM and every rank divides its block.
 *
 *   mpirun -np 2 mpi_reduce_scatter_perf -b 8 -e 64M -f 2
 *
 * In place (nccl semantics), recv == send + rank * count. MPI_IN_PLACE
 * leaves the result at the start of the buffer instead, so it is moved to
 * recv afterwards (timed).
 */
#include <string.h>

#include "mpi_perf_main.h"

static int run(const mpi_perf_call_t *a) {
    size_t bytes = (size_t)a->count * a->type_size;
    char *base = (char *)a->send; /* in place: the shared buffer */
    if (a->recv == base + (size_t)a->rank * bytes) {
        if (MPI_Reduce_scatter_block(MPI_IN_PLACE, base, a->count, a->type, a->op, a->comm) != MPI_SUCCESS)
            return 1;
        if (a->rank) memmove(a->recv, base, bytes);
    } else if (MPI_Reduce_scatter_block(a->send, a->recv, a->count, a->type, a->op, a->comm) != MPI_SUCCESS) {
        return 1;
    }
    mpi_perf_avg(a, a->recv, (size_t)a->count);
    return 0;
}

int main(int argc, char **argv) {
    return mpi_perf_main(argc, argv, &perf_coll_reduce_scatter, run);
}
