/* Per-link counters (PPU_SIM_STATS_FILE) show where the bytes went. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ranks.h"

#define COUNT (1 << 20)

static int one_sum(ppu_comm_t comm, int rank, int n, void *arg)
{
    float *b = calloc(COUNT, sizeof *b);
    ppu_result_t r = ppu_allreduce(b, b, COUNT, PPU_FLOAT32, PPU_SUM, comm, NULL);
    free(b);
    return r != PPU_SUCCESS;
}

/* 8 ranks on the full mesh: the ring all-reduce moves 2(n-1) x count
 * elements in all, several links of each rank carry data (several
 * link-disjoint rings), and no rank sends to itself. */
Test(links, ring_traffic_over_several_links, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    char pat[64];
    snprintf(pat, sizeof pat, "/tmp/ppu_links_%d.%%r", (int)getpid());
    setenv("PPU_SIM_STATS_FILE", pat, 1);
    cr_assert_eq(run_ranks(8, one_sum, NULL, 100), 0);
    unsigned long long total = 0;
    for (int r = 0; r < 8; r++) {
        char path[80];
        snprintf(path, sizeof path, "/tmp/ppu_links_%d.%d", (int)getpid(), r);
        FILE *f = fopen(path, "r");
        cr_assert(f, "no stats file %s", path);
        int src, dst, links = 0;
        unsigned long long bytes, msgs;
        while (fscanf(f, "%d %d %llu %llu %*s", &src, &dst, &bytes, &msgs) == 4) {
            cr_expect_eq(src, r);
            cr_expect(dst != r && dst >= 0 && dst < 8);
            cr_expect(bytes > 0 && msgs > 0);
            total += bytes;
            links++;
        }
        fclose(f);
        unlink(path);
        cr_expect(links >= 2, "rank %d sent on %d link(s); expected several channels", r, links);
    }
    cr_expect_eq(total, 2ull * 7 * COUNT * sizeof(float));
}

static int small_sum(ppu_comm_t comm, int rank, int n, void *arg)
{
    double v[100];
    for (int i = 0; i < 100; i++)
        v[i] = rank;
    if (ppu_allreduce(v, v, 100, PPU_FLOAT64, PPU_SUM, comm, NULL) != PPU_SUCCESS)
        return 1;
    return v[99] != n * (n - 1) / 2.0;
}

/* A small call on a full mesh is one-shot: each rank sends its whole
 * buffer once on its direct link to each peer, and nothing else. */
Test(links, oneshot_uses_every_direct_link_once, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    char pat[64];
    snprintf(pat, sizeof pat, "/tmp/ppu_links1_%d.%%r", (int)getpid());
    setenv("PPU_SIM_STATS_FILE", pat, 1);
    cr_assert_eq(run_ranks(4, small_sum, NULL, 50), 0);
    for (int r = 0; r < 4; r++) {
        char path[80];
        snprintf(path, sizeof path, "/tmp/ppu_links1_%d.%d", (int)getpid(), r);
        FILE *f = fopen(path, "r");
        cr_assert(f, "no stats file %s", path);
        int src, dst, seen[4] = {0}, lines = 0;
        unsigned long long bytes, msgs;
        while (fscanf(f, "%d %d %llu %llu %*s", &src, &dst, &bytes, &msgs) == 4) {
            cr_expect(dst != r && !seen[dst]++);
            cr_expect_eq(bytes, 100 * sizeof(double), "%d->%d carried %llu bytes", src, dst, bytes);
            cr_expect_eq(msgs, 1);
            lines++;
        }
        fclose(f);
        unlink(path);
        cr_expect_eq(lines, 3, "rank %d sent on %d links, expected its 3 direct links", r, lines);
    }
}
