/*
 * mpi_allgather_perf — MPI_Allgather, the baseline of ppu_allgather_perf
 * (same flags and output; main() in mpi_perf_main.c).
 *
 *   mpirun -np 2 mpi_allgather_perf -b 8 -e 64M -f 2
 *
 * In place, send == recv + rank * count: where MPI_IN_PLACE expects it.
 */
#include "mpi_perf_main.h"

static int run(const mpi_perf_call_t *a) {
    const char *own = (const char *)a->recv + (size_t)a->rank * (size_t)a->count * a->type_size;
    if (a->send == own)
        return MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, a->recv, a->count, a->type,
                             a->comm) != MPI_SUCCESS;
    return MPI_Allgather(a->send, a->count, a->type, a->recv, a->count, a->type,
                         a->comm) != MPI_SUCCESS;
}

int main(int argc, char **argv) {
    return mpi_perf_main(argc, argv, &perf_coll_allgather, run);
}
