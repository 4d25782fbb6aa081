/* Collectives from memory registered with the communicator
 * (ppu_comm_register), shared by test_net (TCP links acting as RDMA links
 * do) and net_ib_device (RDMA links): all-reduce out of place (sum), then
 * in place (max), then all-gather, each checked against a formula. The
 * values are small integers, so float sums are exact. */
#ifndef PPU_TEST_REGCHECK_H
#define PPU_TEST_REGCHECK_H

#include <stdint.h>
#include <stdlib.h>

#include "reg.h"
#include "ppuccl.h"

static inline float reg_value(size_t i, int r, int it)
{
    return (float)((i * 7 + (size_t)r * 13 + (size_t)it) % 64);
}

static inline float reg_sum(size_t i, int n, int it)
{
    float s = 0;
    for (int q = 0; q < n; q++)
        s += reg_value(i, q, it);
    return s;
}

/* iters rounds of the three calls on cnt elements a rank, from buffers
 * registered first when reg is set (and deregistered after). *found and
 * *keyed get what the registration cache counted meanwhile (ppu_reg_stats:
 * sends that found registered memory; keys handed to a device). Returns
 * 0, or the first failure: 1 setup, 2 a call failed, 3 all-reduce values,
 * 4 all-gather values, 5 deregistering. */
static inline int reg_collectives(ppu_comm_t comm, int r, int n, size_t cnt, int iters, int reg,
                                  uint64_t *found, uint64_t *keyed)
{
    float *in = calloc(cnt, sizeof *in), *out = calloc((size_t)n * cnt, sizeof *out);
    void *hi = NULL, *ho = NULL;
    int bad = !in || !out;
    if (!bad && reg)
        bad = ppu_comm_register(comm, in, cnt * sizeof *in, &hi) != PPU_SUCCESS ||
              ppu_comm_register(comm, out, (size_t)n * cnt * sizeof *out, &ho) != PPU_SUCCESS;
    uint64_t found0, keyed0;
    ppu_reg_stats(&found0, &keyed0);
    for (int it = 0; it < iters && !bad; it++) {
        for (size_t i = 0; i < cnt; i++)
            in[i] = reg_value(i, r, it);
        /* the sums, then their max in place: every rank holds the same sums */
        for (int k = 0; k < 2 && !bad; k++) {
            if ((k ? ppu_allreduce(out, out, cnt, PPU_FLOAT32, PPU_MAX, comm, NULL)
                   : ppu_allreduce(in, out, cnt, PPU_FLOAT32, PPU_SUM, comm, NULL)) != PPU_SUCCESS)
                bad = 2;
            for (size_t i = 0; i < cnt && !bad; i++)
                bad = out[i] != reg_sum(i, n, it) ? 3 : 0;
        }
        if (!bad && ppu_allgather(in, out, cnt, PPU_FLOAT32, comm, NULL) != PPU_SUCCESS)
            bad = 2;
        for (size_t i = 0; i < (size_t)n * cnt && !bad; i++)
            bad = out[i] != reg_value(i % cnt, (int)(i / cnt), it) ? 4 : 0;
    }
    ppu_reg_stats(found, keyed);
    *found -= found0;
    *keyed -= keyed0;
    if ((hi && ppu_comm_deregister(comm, hi) != PPU_SUCCESS) ||
        (ho && ppu_comm_deregister(comm, ho) != PPU_SUCCESS))
        bad = bad ? bad : 5;
    free(in);
    free(out);
    return bad;
}

#endif
