/* Ranks as threads of one process (ppu_comm_init_all), and streams. */
#include <criterion/criterion.h>
#include <pthread.h>
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
