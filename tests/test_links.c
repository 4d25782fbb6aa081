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

/* bytes[src][dst] from the stats files of n ranks (pattern's %d = rank) */
static void read_stats(const char *prefix, int n, unsigned long long bytes[16][16])
{
    memset(bytes, 0, sizeof(unsigned long long) * 16 * 16);
    for (int r = 0; r < n; r++) {
        char path[96];
        snprintf(path, sizeof path, "%s.%d", prefix, r);
        FILE *f = fopen(path, "r");
        cr_assert(f, "no stats file %s", path);
        int src, dst;
        unsigned long long b, msgs;
        while (fscanf(f, "%d %d %llu %llu %*s", &src, &dst, &b, &msgs) == 4)
            if (src >= 0 && src < 16 && dst >= 0 && dst < 16)
                bytes[src][dst] += b;
        fclose(f);
        unlink(path);
    }
}

static int big_sum(ppu_comm_t comm, int rank, int n, void *arg)
{
    size_t count = (size_t)(long)arg;
    float *b = malloc(count * sizeof *b);
    for (size_t i = 0; i < count; i++)
        b[i] = 1;
    ppu_result_t r = ppu_allreduce(b, b, count, PPU_FLOAT32, PPU_SUM, comm, NULL);
    int bad = r != PPU_SUCCESS || b[0] != n || b[count - 1] != n;
    free(b);
    return bad;
}

static void stats_env(char *prefix, size_t len, const char *tag)
{
    snprintf(prefix, len, "/tmp/ppu_%s_%d", tag, (int)getpid());
    char pat[128];
    snprintf(pat, sizeof pat, "%s.%%r", prefix);
    setenv("PPU_SIM_STATS_FILE", pat, 1);
}

/* Two-shot on 8 ranks: every rank sends on all 7 of its links, and the
 * busiest link carries at most 10% more than the least busy. */
Test(links, twoshot_uses_all_seven_links_evenly, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    char prefix[96];
    stats_env(prefix, sizeof prefix, "twoshot");
    setenv("PPU_ALGO", "allreduce:twoshot", 1);
    cr_assert_eq(run_ranks(8, big_sum, (void *)(long)(1 << 20), 100), 0);
    unsigned long long b[16][16], lo = ~0ull, hi = 0;
    read_stats(prefix, 8, b);
    for (int s = 0; s < 8; s++)
        for (int d = 0; d < 8; d++) {
            if (s == d)
                continue;
            cr_expect(b[s][d] > 0, "link %d->%d carried nothing", s, d);
            lo = b[s][d] < lo ? b[s][d] : lo;
            hi = b[s][d] > hi ? b[s][d] : hi;
        }
    cr_expect(hi <= lo + lo / 10, "per-link bytes from %llu to %llu: more than 10%% apart", lo, hi);
    /* 2 x count/8 elements each way per link */
    cr_expect_eq(hi, 2ull * (1 << 20) / 8 * sizeof(float));
}

/* One ring: each rank sends to one peer only, and those edges form a
 * single cycle through all 8 ranks. */
Test(links, single_ring_uses_only_ring_edges, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    char prefix[96];
    stats_env(prefix, sizeof prefix, "ring1");
    setenv("PPU_ALGO", "ring", 1);
    setenv("PPU_NCHANNELS", "1", 1);
    cr_assert_eq(run_ranks(8, big_sum, (void *)(long)(1 << 20), 100), 0);
    unsigned long long b[16][16];
    read_stats(prefix, 8, b);
    int next[8];
    for (int s = 0; s < 8; s++) {
        int used = 0;
        next[s] = -1;
        for (int d = 0; d < 8; d++)
            if (b[s][d]) {
                used++;
                next[s] = d;
            }
        cr_expect_eq(used, 1, "rank %d sent on %d links", s, used);
    }
    int at = 0, steps = 0;
    do {
        at = next[at];
        steps++;
    } while (at > 0 && steps < 9);
    cr_expect(at == 0 && steps == 8, "the edges used are not one ring through all 8 ranks");
}

static int a2a(ppu_comm_t comm, int rank, int n, void *arg)
{
    size_t count = (size_t)(long)arg;
    int32_t *s = malloc(count * (size_t)n * 4), *d = malloc(count * (size_t)n * 4);
    for (size_t i = 0; i < count * (size_t)n; i++)
        s[i] = rank * 1000000 + (int32_t)i;
    int bad = ppu_alltoall(s, d, count, PPU_INT32, comm, NULL) != PPU_SUCCESS;
    for (int p = 0; p < n && !bad; p++)
        bad = d[(size_t)p * count] != p * 1000000 + (int32_t)((size_t)rank * count);
    free(s);
    free(d);
    return bad;
}

/* All-to-all on the full mesh: each link carries exactly the block for
 * its receiver, count/8 of a rank's buffer. */
Test(links, alltoall_one_block_per_link, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    char prefix[96];
    stats_env(prefix, sizeof prefix, "a2a");
    enum { COUNT_PER_PEER = 65537 };
    cr_assert_eq(run_ranks(8, a2a, (void *)(long)COUNT_PER_PEER, 100), 0);
    unsigned long long b[16][16];
    read_stats(prefix, 8, b);
    for (int s = 0; s < 8; s++)
        for (int d = 0; d < 8; d++)
            if (s != d)
                cr_expect_eq(b[s][d], COUNT_PER_PEER * 4ull, "link %d->%d carried %llu bytes", s,
                             d, b[s][d]);
}
