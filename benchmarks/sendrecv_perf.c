/*
 * ppu_sendrecv_perf — a ring shift with ppu_send and ppu_recv in one group:
 * every rank sends count elements to rank + 1 and receives as many from
 * rank - 1 (shared perf_common driver, nccl-tests flags and output; main()
 * in ppu_perf_main.c). There is no in-place variant.
 *
 *   ppu_sendrecv_perf -p 4 -b 8 -e 64M -f 2
 */
#include "ppu_perf_main.h"

static ppu_result_t run(const ppu_perf_call_t *a) {
    int next = (a->rank + 1) % a->nranks, prev = (a->rank - 1 + a->nranks) % a->nranks;
    ppu_result_t r = ppu_group_start();
    if (r != PPU_SUCCESS) return r;
    ppu_result_t rs = ppu_send(a->send, a->count, a->dtype, next, a->comm, NULL);
    ppu_result_t rr = ppu_recv(a->recv, a->count, a->dtype, prev, a->comm, NULL);
    r = ppu_group_end(); /* always: keeps the group nesting balanced */
    return rs != PPU_SUCCESS ? rs : rr != PPU_SUCCESS ? rr : r;
}

int main(int argc, char **argv) {
    return ppu_perf_main(argc, argv, &perf_coll_sendrecv, "ppu_send/ppu_recv group", run);
}
