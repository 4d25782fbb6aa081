/*
 * mpi_broadcast_perf — MPI_Bcast, the baseline of ppu_broadcast_perf (same
 * flags and output; main() in mpi_perf_main.c).
 *
 *   mpirun -np 2 mpi_broadcast_perf -b 8 -e 64M -f 2 -r 1
 *
 * MPI_Bcast has one buffer: out of place, the root first copies its send
 * buffer into its receive buffer (timed, as ppu_broadcast's copy is).
 */
#include <string.h>

#include "mpi_perf_main.h"

static int run(const mpi_perf_call_t *a) {
    if (a->rank == a->root && a->send != a->recv)
        memcpy(a->recv, a->send, (size_t)a->count * a->type_size);
    return MPI_Bcast(a->recv, a->count, a->type, a->root, a->comm) != MPI_SUCCESS;
}

int main(int argc, char **argv) {
    return mpi_perf_main(argc, argv, &perf_coll_broadcast, run);
}
