/*
 * mpi_sendrecv_perf — MPI_Sendrecv ring shift (count elements to rank + 1,
 * from rank - 1), the baseline of ppu_sendrecv_perf (same flags and output;
 * main() in mpi_perf_main.c). No in-place variant.
 *
 *   mpirun -np 2 mpi_sendrecv_perf -b 8 -e 64M -f 2
 */
#include "mpi_perf_main.h"

static int run(const mpi_perf_call_t *a) {
    int next = (a->rank + 1) % a->nranks, prev = (a->rank - 1 + a->nranks) % a->nranks;
    return MPI_Sendrecv(a->send, a->count, a->type, next, 0, a->recv, a->count, a->type, prev, 0,
                        a->comm, MPI_STATUS_IGNORE) != MPI_SUCCESS;
}

int main(int argc, char **argv) {
    return mpi_perf_main(argc, argv, &perf_coll_sendrecv, run);
}
