/*
 * ppu_reduce_perf — ppu_reduce through the shared perf_common driver
 * (nccl-tests flags and output; main() in ppu_perf_main.c). -r picks the
 * root; only the root's result is checked.
 *
 *   ppu_reduce_perf -p 4 -b 8 -e 64M -f 2 -o all
 */
#include "ppu_perf_main.h"

static ppu_result_t run(const ppu_perf_call_t *a) {
    return ppu_reduce(a->send, a->recv, a->count, a->dtype, a->op, a->root, a->comm, NULL);
}

int main(int argc, char **argv) {
    return ppu_perf_main(argc, argv, &perf_coll_reduce, "ppu_reduce", run);
}
