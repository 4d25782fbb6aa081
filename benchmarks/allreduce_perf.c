/*
 * ppu_allreduce_perf — ppu_allreduce through the shared perf_common driver
 * (nccl-tests flags and output; main() in ppu_perf_main.c).
 *
 *   ppu_allreduce_perf -p 4 -b 8 -e 64M -f 2     fork 4 local ranks
 *   mpirun -np 4 ppu_allreduce_perf -b 8 -e 64M  one rank per MPI process
 *                                                (ppu_comm_init_env; MPI
 *                                                itself is not used)
 */
#include "ppu_perf_main.h"

static ppu_result_t run(const ppu_perf_call_t *a) {
    return ppu_allreduce(a->send, a->recv, a->count, a->dtype, a->op, a->comm, NULL);
}

int main(int argc, char **argv) {
    return ppu_perf_main(argc, argv, &perf_coll_allreduce, "ppu_allreduce", run);
}
