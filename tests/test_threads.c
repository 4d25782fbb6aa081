/* Ranks as threads of one process (ppu_comm_init_all), and streams. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ppuccl.h"
#ifndef PPU_TEST_SLOWDOWN
#define PPU_TEST_SLOWDOWN 1
#endif

#define NT 4
#define COUNT (300000 + 7)

struct targ {
    ppu_comm_t comm;
    int rank;
    int ok;
};

static void *rank_thread(void *p)
{
    struct targ *a = p;
    float *buf = malloc(COUNT * sizeof *buf);
    for (int i = 0; i < COUNT; i++)
        buf[i] = (float)(a->rank + i % 5);
    a->ok = ppu_allreduce(buf, buf, COUNT, PPU_FLOAT32, PPU_SUM, a->comm, NULL) == PPU_SUCCESS;
    for (int i = 0; i < COUNT && a->ok; i++)
        a->ok = buf[i] == (float)(NT * (NT - 1) / 2 + NT * (i % 5));
    free(buf);
    return NULL;
}

Test(threads, init_all_one_thread_per_rank, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    ppu_comm_t comms[NT];
    cr_assert_eq(ppu_comm_init_all(comms, NT), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    pthread_t th[NT];
    struct targ args[NT];
    for (int r = 0; r < NT; r++) {
        int rk = -1;
        cr_assert_eq(ppu_comm_user_rank(comms[r], &rk), PPU_SUCCESS);
        cr_assert_eq(rk, r);
        args[r] = (struct targ){comms[r], r, 0};
        pthread_create(&th[r], NULL, rank_thread, &args[r]);
    }
    for (int r = 0; r < NT; r++) {
        pthread_join(th[r], NULL);
        cr_expect(args[r].ok, "rank %d wrong", r);
    }
    for (int r = 0; r < NT; r++)
        cr_assert_eq(ppu_comm_destroy(comms[r]), PPU_SUCCESS);
}

/* One thread drives every rank through its own stream: calls return at
 * once, the work runs in order, synchronize waits for it. */
Test(threads, streams_in_order_from_one_thread, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    ppu_comm_t comms[NT];
    ppu_stream_t streams[NT];
    cr_assert_eq(ppu_comm_init_all(comms, NT), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    double *buf[NT];
    for (int r = 0; r < NT; r++) {
        cr_assert_eq(ppu_stream_create(&streams[r]), PPU_SUCCESS);
        buf[r] = malloc(COUNT * sizeof(double));
        for (int i = 0; i < COUNT; i++)
            buf[r][i] = 1.0;
    }
    /* Three in-place sums in a row: 1 -> NT -> NT^2 -> NT^3, only right if
     * each stream ran its calls in order. */
    for (int it = 0; it < 3; it++)
        for (int r = 0; r < NT; r++)
            cr_assert_eq(ppu_allreduce(buf[r], buf[r], COUNT, PPU_FLOAT64, PPU_SUM, comms[r],
                                       streams[r]), PPU_SUCCESS);
    for (int r = 0; r < NT; r++) {
        cr_assert_eq(ppu_stream_synchronize(streams[r]), PPU_SUCCESS);
        cr_assert_eq(ppu_stream_query(streams[r]), PPU_SUCCESS);
    }
    for (int r = 0; r < NT; r++) {
        for (int i = 0; i < COUNT; i++)
            if (buf[r][i] != (double)(NT * NT * NT))
                cr_assert_fail("rank %d element %d = %g", r, i, buf[r][i]);
        free(buf[r]);
        cr_assert_eq(ppu_stream_destroy(streams[r]), PPU_SUCCESS);
        cr_assert_eq(ppu_comm_destroy(comms[r]), PPU_SUCCESS);
    }
}

/* Past 64 ranks (the two-level cluster) a communicator splits too: 80
 * ranks as 5 servers of 16, split by rail (16 communicators of 5 ranks,
 * one a server), by server (5 of 16), and in halves across servers (40 +
 * 40, by descending key); each new communicator's all-reduce checked. */
#define SPLIT_N 80

struct split_arg {
    ppu_comm_t comm;
    int rank, ok;
    char err[256];
};

static void *split_thread(void *p)
{
    struct split_arg *a = p;
    a->ok = 1;
    for (int mode = 0; mode < 3 && a->ok; mode++) {
        int r = a->rank;
        int color = mode == 0 ? r % 16 : mode == 1 ? r / 16 : r / 40;
        int key = mode == 2 ? SPLIT_N - r : r;
        ppu_comm_t sub;
        if (ppu_comm_split(a->comm, color, key, &sub) != PPU_SUCCESS) {
            snprintf(a->err, sizeof a->err, "split %d: %s", mode, ppu_get_last_error(a->comm));
            a->ok = 0;
            break;
        }
        int n = 0, me = -1;
        ppu_comm_count(sub, &n);
        ppu_comm_user_rank(sub, &me);
        int want_n = mode == 0 ? 5 : mode == 1 ? 16 : 40, want_me;
        if (mode == 0)
            want_me = r / 16;
        else if (mode == 1)
            want_me = r % 16;
        else
            want_me = 39 - r % 40;
        double v[3] = {r + 1.0, 2.0 * r, 1.0}, sum[3];
        double want = 0;
        for (int q = 0; q < SPLIT_N; q++) {
            int cq = mode == 0 ? q % 16 : mode == 1 ? q / 16 : q / 40;
            want += cq == color ? q + 1.0 : 0;
        }
        if (n != want_n || me != want_me ||
            ppu_allreduce(v, sum, 3, PPU_FLOAT64, PPU_SUM, sub, NULL) != PPU_SUCCESS ||
            sum[0] != want || sum[2] != (double)want_n) {
            snprintf(a->err, sizeof a->err, "split %d: %d ranks (want %d), rank %d (want %d), "
                     "sum %g (want %g): %s", mode, n, want_n, me, want_me, sum[0], want,
                     ppu_get_last_error(sub));
            a->ok = 0;
        }
        ppu_comm_destroy(sub);
    }
    return NULL;
}

Test(threads, split_past_64_ranks, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_SIM_SERVERS", "5", 1);
    setenv("PPU_SIM_TOPO", "server16", 1);
    ppu_comm_t comms[SPLIT_N];
    cr_assert_eq(ppu_comm_init_all(comms, SPLIT_N), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    pthread_t th[SPLIT_N];
    struct split_arg args[SPLIT_N];
    for (int r = 0; r < SPLIT_N; r++) {
        args[r] = (struct split_arg){comms[r], r, 0, ""};
        pthread_create(&th[r], NULL, split_thread, &args[r]);
    }
    for (int r = 0; r < SPLIT_N; r++) {
        pthread_join(th[r], NULL);
        cr_expect(args[r].ok, "rank %d: %s", r, args[r].err);
    }
    for (int r = 0; r < SPLIT_N; r++)
        cr_assert_eq(ppu_comm_destroy(comms[r]), PPU_SUCCESS);
    unsetenv("PPU_SIM_SERVERS");
    unsetenv("PPU_SIM_TOPO");
}
