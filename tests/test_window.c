/* Symmetric memory and windows: ppu_mem_alloc, window registration, and
 * the all-reduce that reads and writes the ranks' windows directly,
 * checked against the independent reference (refval.h) for every type
 * and op, odd counts, in place and at unaligned offsets; and the errors. */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ranks.h"
#include "refval.h"

static const size_t counts[] = {1, 2, 7, 1000, 100003};
#define NCOUNTS (sizeof counts / sizeof counts[0])
#define MAXC 100003

struct win_bufs {
    char *s, *r;
    ppu_window_t ws, wr;
};

static int win_setup(ppu_comm_t comm, struct win_bufs *b, size_t bytes)
{
    if (ppu_mem_alloc(bytes, (void **)&b->s) != PPU_SUCCESS ||
        ppu_mem_alloc(bytes, (void **)&b->r) != PPU_SUCCESS ||
        ppu_comm_window_register(comm, b->s, bytes, &b->ws) != PPU_SUCCESS ||
        ppu_comm_window_register(comm, b->r, bytes, &b->wr) != PPU_SUCCESS) {
        fprintf(stderr, "window setup: %s\n", ppu_get_last_error(comm));
        return -1;
    }
    return 0;
}

static int win_teardown(ppu_comm_t comm, struct win_bufs *b)
{
    int bad = ppu_comm_window_deregister(comm, b->ws) != PPU_SUCCESS ||
              ppu_comm_window_deregister(comm, b->wr) != PPU_SUCCESS;
    bad |= ppu_mem_free(b->s) != PPU_SUCCESS || ppu_mem_free(b->r) != PPU_SUCCESS;
    return bad;
}

/* One all-reduce in the windows at byte offset 1 (unaligned); wrong
 * elements, or -1 on an error. */
static long check_one(ppu_comm_t comm, struct win_bufs *b, int rank, int n, ppu_datatype_t dt,
                      ppu_redop_t op, size_t count, int in_place)
{
    size_t es = ppu_datatype_size(dt);
    char *send = b->s + 1, *recv = in_place ? send : b->r + 1;
    char exp[8];
    ref_fill(send, count, rank, dt, op);
    if (!in_place)
        memset(recv, 0xA5, count * es);
    if (ppu_allreduce(send, recv, count, dt, op, comm, NULL) != PPU_SUCCESS) {
        fprintf(stderr, "rank %d: %s\n", rank, ppu_get_last_error(comm));
        return -1;
    }
    long wrong = 0;
    for (size_t i = 0; i < count; i++) {
        ref_expect(exp, i % REF_PERIOD, n, dt, op);
        if (memcmp(recv + i * es, exp, es) != 0 && wrong++ == 0)
            fprintf(stderr, "rank %d n=%d dt=%d op=%d count=%zu inplace=%d: element %zu wrong\n",
                    rank, n, dt, op, count, in_place, i);
    }
    return wrong;
}

static int every_case(ppu_comm_t comm, int rank, int n, void *arg)
{
    (void)arg;
    struct win_bufs b;
    if (win_setup(comm, &b, MAXC * 8 + 64))
        return 1;
    long bad = 0;
    for (int dt = 0; dt < PPU_NUM_DATATYPES && bad == 0; dt++)
        for (int op = 0; op < PPU_NUM_REDOPS && bad == 0; op++)
            for (size_t k = 0; k < NCOUNTS && bad == 0; k++)
                for (int ip = 0; ip < 2 && bad == 0; ip++)
                    bad = check_one(comm, &b, rank, n, dt, op, counts[k], ip);
    /* a zero count, and buffers outside the windows, still work */
    bad |= ppu_allreduce(b.s, b.r, 0, PPU_FLOAT32, PPU_SUM, comm, NULL) != PPU_SUCCESS;
    float x = (float)rank, y = 0;
    bad |= ppu_allreduce(&x, &y, 1, PPU_FLOAT32, PPU_SUM, comm, NULL) != PPU_SUCCESS ||
           y != (float)(n * (n - 1) / 2);
    bad |= win_teardown(comm, &b);
    /* after deregistering, the same memory goes through the links */
    return bad != 0;
}

Test(window, allreduce_every_type_op_count, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    for (int n = 2; n <= 4; n++)
        cr_expect_eq(run_ranks(n, every_case, NULL, 240), 0, "%d ranks", n);
}

/* Rank r's element i of its block for rank q (all-to-all). */
static float a2a(int r, int q, size_t i)
{
    return (float)((r * 131 + q * 17 + (int)(i % 1009)) % 4093);
}

/* Every other collective over windows, float32 (sum for the reductions),
 * at a different offset on every rank, against the reference. */
static int other_colls(ppu_comm_t comm, int rank, int n, void *arg)
{
    (void)arg;
    struct win_bufs b;
    size_t maxc = 20011;
    if (win_setup(comm, &b, (maxc * (size_t)n + 64) * 4 + 64 * 8))
        return 1;
    /* a different offset on each rank: the ranks find each other's buffers */
    float *s = (float *)(void *)(b.s + 4 * (size_t)rank), *r = (float *)(void *)(b.r + 8 * (size_t)rank);
    float exp[1];
    long wrong = 0;
    int err = 0;
    const size_t cs[] = {1, 7, 1000, 20011};
    for (size_t k = 0; k < 4 && !err; k++) {
        size_t c = cs[k];
        int root = n - 1;
        /* reduce to the last rank */
        ref_fill(s, c, rank, PPU_FLOAT32, PPU_SUM);
        memset(r, 0, c * 4);
        err |= ppu_reduce(s, r, c, PPU_FLOAT32, PPU_SUM, root, comm, NULL) != PPU_SUCCESS;
        for (size_t i = 0; !err && rank == root && i < c; i++) {
            ref_expect(exp, i % REF_PERIOD, n, PPU_FLOAT32, PPU_SUM);
            wrong += r[i] != exp[0];
        }
        /* broadcast from the last rank, in place on the root */
        if (rank == root)
            ref_fill(r, c, root, PPU_FLOAT32, PPU_SUM);
        else
            memset(r, 0, c * 4);
        err |= ppu_broadcast(r, r, c, PPU_FLOAT32, root, comm, NULL) != PPU_SUCCESS;
        ref_fill(s, c, root, PPU_FLOAT32, PPU_SUM);
        for (size_t i = 0; !err && i < c; i++)
            wrong += r[i] != s[i];
        /* all-gather, out of place and in place */
        for (int ip = 0; ip < 2 && !err; ip++) {
            float *src = ip ? r + (size_t)rank * c : s;
            memset(r, 0, c * (size_t)n * 4);
            ref_fill(src, c, rank, PPU_FLOAT32, PPU_SUM);
            err |= ppu_allgather(src, r, c, PPU_FLOAT32, comm, NULL) != PPU_SUCCESS;
            for (int q = 0; !err && q < n; q++) {
                ref_fill(s, c, q, PPU_FLOAT32, PPU_SUM); /* s is rewritten next round */
                for (size_t i = 0; i < c; i++)
                    wrong += r[(size_t)q * c + i] != s[i];
            }
        }
        /* reduce-scatter: element j of block q is global element q * c + j */
        ref_fill(s, c * (size_t)n, rank, PPU_FLOAT32, PPU_SUM);
        memset(r, 0, c * 4);
        err |= ppu_reduce_scatter(s, r, c, PPU_FLOAT32, PPU_SUM, comm, NULL) != PPU_SUCCESS;
        for (size_t i = 0; !err && i < c; i++) {
            ref_expect(exp, ((size_t)rank * c + i) % REF_PERIOD, n, PPU_FLOAT32, PPU_SUM);
            wrong += r[i] != exp[0];
        }
        /* all-to-all */
        for (int q = 0; q < n; q++)
            for (size_t i = 0; i < c; i++)
                s[(size_t)q * c + i] = a2a(rank, q, i);
        memset(r, 0, c * (size_t)n * 4);
        err |= ppu_alltoall(s, r, c, PPU_FLOAT32, comm, NULL) != PPU_SUCCESS;
        for (int q = 0; !err && q < n; q++)
            for (size_t i = 0; i < c; i++)
                wrong += r[(size_t)q * c + i] != a2a(q, rank, i);
        if (wrong && !err)
            fprintf(stderr, "rank %d n=%d count=%zu: %ld wrong\n", rank, n, c, wrong);
        if (wrong)
            break;
    }
    if (err)
        fprintf(stderr, "rank %d: %s\n", rank, ppu_get_last_error(comm));
    err |= win_teardown(comm, &b);
    return err || wrong;
}

Test(window, other_collectives, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    for (int n = 2; n <= 4; n++)
        cr_expect_eq(run_ranks(n, other_colls, NULL, 240), 0, "%d ranks", n);
}

/* Ranks that call with different counts over windows get an error naming
 * the other rank, never wrong data or a hang. */
static int counts_differ(ppu_comm_t comm, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    struct win_bufs b;
    if (win_setup(comm, &b, 4096))
        return 1;
    ppu_result_t r = ppu_allreduce(b.s, b.r, 16 + (size_t)rank, PPU_FLOAT32, PPU_SUM, comm, NULL);
    int ok = r == PPU_INVALID_USAGE && strstr(ppu_get_last_error(comm), "called allreduce with");
    if (!ok)
        fprintf(stderr, "rank %d: %d '%s'\n", rank, r, ppu_get_last_error(comm));
    win_teardown(comm, &b);
    return !ok;
}

Test(window, different_counts_are_an_error, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    cr_expect_eq(run_ranks(2, counts_differ, NULL, 30), 0);
}

/* A rank that exits instead of calling: the other's window all-reduce
 * ends with PPU_REMOTE_ERROR naming it, long before PPU_TIMEOUT_MS (60 s
 * here), though it looks for gone peers only after 0.1 s of waiting. */
static int peer_exits(ppu_comm_t comm, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    struct win_bufs b;
    if (win_setup(comm, &b, 4096))
        return 1;
    if (rank == 1)
        _exit(0); /* gone, without a word */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ppu_result_t r = ppu_allreduce(b.s, b.r, 16, PPU_FLOAT32, PPU_SUM, comm, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int ok = r == PPU_REMOTE_ERROR && strstr(ppu_get_last_error(comm), "rank 1 has exited") &&
             s < 30;
    if (!ok)
        fprintf(stderr, "rank %d: %d after %.1f s '%s'\n", rank, r, s, ppu_get_last_error(comm));
    _exit(!ok); /* the communicator is broken; destroying it is not the point */
}

Test(window, peer_that_exits_is_named, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_TIMEOUT_MS", "60000", 1);
    cr_expect_eq(run_ranks(2, peer_exits, NULL, 90), 0);
    unsetenv("PPU_TIMEOUT_MS");
}

/* A buffer that is not from ppu_mem_alloc: every rank fails to register,
 * naming the rank. */
static int not_symmetric(ppu_comm_t comm, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    char *p = NULL;
    static char heap[4096];
    if (rank == 1)
        p = heap;
    else if (ppu_mem_alloc(4096, (void **)&p) != PPU_SUCCESS)
        return 1;
    ppu_window_t w = NULL;
    ppu_result_t r = ppu_comm_window_register(comm, p, 4096, &w);
    int ok = r == PPU_INVALID_ARGUMENT && w == NULL &&
             strstr(ppu_get_last_error(comm), "rank 1 passed a buffer that is not");
    if (!ok)
        fprintf(stderr, "rank %d: %d '%s'\n", rank, r, ppu_get_last_error(comm));
    if (rank != 1)
        ppu_mem_free(p);
    /* the communicator still works */
    float x = 1, y = 0;
    ok &= ppu_allreduce(&x, &y, 1, PPU_FLOAT32, PPU_SUM, comm, NULL) == PPU_SUCCESS && y == 2;
    return !ok;
}

Test(window, register_needs_symmetric_memory, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    cr_expect_eq(run_ranks(2, not_symmetric, NULL, 30), 0);
}

Test(window, mem_alloc_bad_arguments)
{
    void *p = (void *)1;
    cr_expect_eq(ppu_mem_alloc(0, &p), PPU_INVALID_ARGUMENT);
    cr_expect_null(p);
    cr_expect_eq(ppu_mem_alloc(16, NULL), PPU_INVALID_ARGUMENT);
    int local;
    cr_expect_eq(ppu_mem_free(&local), PPU_INVALID_ARGUMENT);
    cr_expect(strstr(ppu_get_last_error(NULL), "not memory from ppu_mem_alloc"));
    cr_expect_eq(ppu_mem_free(NULL), PPU_SUCCESS);
    cr_assert_eq(ppu_mem_alloc(100, &p), PPU_SUCCESS);
    memset(p, 7, 100);
    cr_expect_eq(ppu_mem_free(p), PPU_SUCCESS);
    cr_expect_eq(ppu_mem_free(p), PPU_INVALID_ARGUMENT, "a second free is an error");
}
