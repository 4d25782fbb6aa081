/* All-reduce correctness over forked ranks: every datatype x op, counts
 * {0, 1, 7, 1023, 1M+3}, in place and out of place, unaligned buffers,
 * 1/2/3/8/16 ranks, against the independent reference in refval.h. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranks.h"
#include "refval.h"

/* Under sanitizers (PPU_TEST_SLOWDOWN > 1, 3-5x slower) the largest count
 * is 196611 instead of 1M+3: still several chunks on every channel, an odd
 * tail and the same code paths, at a fifth of the volume. */
#if PPU_TEST_SLOWDOWN > 1
static const size_t counts[] = {0, 1, 7, 1023, 3 * 65536 + 3};
#else
static const size_t counts[] = {0, 1, 7, 1023, 1048576 + 3};
#endif
#define NCOUNTS (sizeof counts / sizeof counts[0])

struct ar_case {
    size_t max_count; /* skip counts above this (keeps 16 ranks in budget) */
    int dtype;        /* -1: all */
};

/* Returns the number of wrong elements. */
static size_t check_one(ppu_comm_t comm, int rank, int n, ppu_datatype_t dt, ppu_redop_t op,
                        size_t count, int in_place, int *err)
{
    size_t es = ppu_datatype_size(dt);
    /* +1 byte: send/recv buffers deliberately not aligned to the type */
    char *sraw = malloc(count * es + 2), *rraw = malloc(count * es + 2);
    char *exp = malloc(REF_PERIOD * es);
    char *send = sraw + 1, *recv = in_place ? send : rraw + 1;
    ref_fill(send, count, rank, dt, op);
    if (!in_place)
        memset(recv, 0xA5, count * es);
    for (size_t i = 0; i < REF_PERIOD; i++)
        ref_expect(exp + i * es, i, n, dt, op);
    ppu_result_t r = ppu_allreduce(count ? send : NULL, count ? recv : NULL, count, dt, op, comm,
                                   NULL);
    size_t wrong = 0;
    if (r != PPU_SUCCESS) {
        fprintf(stderr, "rank %d: allreduce %s %s count=%zu: %s\n", rank, "dt", "op", count,
                ppu_get_last_error(comm));
        *err = 1;
    } else {
        for (size_t i = 0; i < count; i++)
            if (memcmp(recv + i * es, exp + (i % REF_PERIOD) * es, es) != 0) {
                if (wrong == 0)
                    fprintf(stderr, "rank %d n=%d dt=%d op=%d count=%zu inplace=%d: first wrong "
                            "element %zu\n", rank, n, dt, op, count, in_place, i);
                wrong++;
            }
    }
    free(sraw);
    free(rraw);
    free(exp);
    return wrong;
}

static int rank_all_combos(ppu_comm_t comm, int rank, int n, void *arg)
{
    const struct ar_case *c = arg;
    size_t wrong = 0;
    int err = 0;
    for (int dt = 0; dt < PPU_NUM_DATATYPES; dt++) {
        if (c->dtype >= 0 && dt != c->dtype)
            continue;
        for (int op = 0; op < PPU_NUM_REDOPS; op++)
            for (size_t k = 0; k < NCOUNTS; k++) {
                if (counts[k] > c->max_count)
                    continue;
                for (int ip = 0; ip < 2 && !err; ip++)
                    wrong += check_one(comm, rank, n, dt, op, counts[k], ip, &err);
            }
    }
    return wrong || err;
}

static void run_case(int nranks, size_t max_count, int dtype)
{
    struct ar_case c = {max_count, dtype};
    int failed = run_ranks(nranks, rank_all_combos, &c, 240);
    cr_assert_eq(failed, 0, "%d of %d ranks saw wrong results or errors", failed, nranks);
}

ParameterizedTestParameters(allreduce, every_type_op_count_1_2_3)
{
    static int ranks[] = {1, 2, 3};
    return cr_make_param_array(int, ranks, 3);
}
ParameterizedTest(int *n, allreduce, every_type_op_count_1_2_3, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    run_case(*n, SIZE_MAX, -1);
}

/* 8 and 16 ranks on 2 cores: one datatype per test so each stays short and
 * the suite runs them in parallel. */
ParameterizedTestParameters(allreduce, every_op_count_8)
{
    static int types[PPU_NUM_DATATYPES] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    return cr_make_param_array(int, types, PPU_NUM_DATATYPES);
}
ParameterizedTest(int *dt, allreduce, every_op_count_8, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    run_case(8, SIZE_MAX, *dt);
}

ParameterizedTestParameters(allreduce, every_op_count_16)
{
    static int types[PPU_NUM_DATATYPES] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    return cr_make_param_array(int, types, PPU_NUM_DATATYPES);
}
ParameterizedTest(int *dt, allreduce, every_op_count_16, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    run_case(16, SIZE_MAX, *dt);
}

/* The single-copy path (process_vm_readv), off by default: every datatype
 * and op with references for every chunk of 4 KiB and more. */
ParameterizedTestParameters(allreduce, every_type_op_count_cma)
{
    static int ranks[] = {2, 3};
    return cr_make_param_array(int, ranks, 2);
}
ParameterizedTest(int *n, allreduce, every_type_op_count_cma, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_CMA", "1", 1);
    setenv("PPU_CMA_MIN_BYTES", "4096", 1);
    setenv("PPU_CHUNK_SIZE", "65536", 1);
    run_case(*n, SIZE_MAX, -1);
}

/* Small calls on a full mesh take one-shot by default; the ring must stay
 * correct for them too (PPU_ALGO=ring), and forced one-shot must accept
 * what fits a slot and fall back to the ring for the rest. */
ParameterizedTestParameters(allreduce, small_counts_forced_algo)
{
    static int cases[] = {2, 3, 8, -2, -3, -8}; /* > 0: ring, < 0: oneshot */
    return cr_make_param_array(int, cases, 6);
}
ParameterizedTest(int *c, allreduce, small_counts_forced_algo, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_ALGO", *c > 0 ? "ring" : "oneshot", 1);
    run_case(*c > 0 ? *c : -*c, *c > 0 ? 1023 : SIZE_MAX, -1);
}
