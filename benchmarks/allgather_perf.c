/*
 * ppu_allgather_perf — ppu_allgather through the shared perf_common driver
 * (nccl-tests flags and output; main() in ppu_perf_main.c). The size column
 * is the gathered bytes; each rank sends size / nranks.
 *
 *   ppu_allgather_perf -p 4 -b 8 -e 64M -f 2
 */
#include "ppu_perf_main.h"

static ppu_result_t run(const ppu_perf_call_t *a) {
    return ppu_allgather(a->send, a->recv, a->count, a->dtype, a->comm, NULL);
}

int main(int argc, char **argv) {
    return ppu_perf_main(argc, argv, &perf_coll_allgather, "ppu_allgather", run);
}
