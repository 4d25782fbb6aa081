/* bound_allreduce: what this host's memory allows an all-reduce of N
 * ranks (processes) whose inputs and outputs already sit in shared
 * memory: each rank reduces its 1/N of the elements straight from every
 * input into every output (2 x the bytes of memory traffic per rank, the
 * least an all-reduce can move), with two counters a call to start and
 * finish: the yardstick `-R 2` is measured against. It uses the library's
 * reduction kernel (the fastest this build has) and nothing else of it.
 *
 *   bound_allreduce [-p N] [-b MIN] [-e MAX] [-f F] [-n ITERS] [-w WARMUP]
 *
 * Rows as the perf tools print (size, count, time us, algbw, busbw), float
 * sum, out of place. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/reduce.h"
#include "../tools/tool_util.h"

#define BLOCK 8192 /* floats reduced in cache, then written out */

struct ctl {
    _Alignas(64) _Atomic unsigned long ready;
    _Alignas(64) _Atomic unsigned long done;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long spin_limit; /* spins before yielding: many when every rank has a CPU */

static void wait_all(struct ctl *c, int n, int done, unsigned long seq)
{
    for (int q = 0; q < n; q++) {
        _Atomic unsigned long *w = done ? &c[q].done : &c[q].ready;
        unsigned long spins = 0;
        while (atomic_load_explicit(w, memory_order_acquire) < seq)
            if (++spins > spin_limit)
                sched_yield(); /* more ranks than CPUs: let the peer run */
    }
}

static void one_call(float **in, float **out, struct ctl *c, int n, int me, size_t count,
                     unsigned long seq, float *tmp)
{
    atomic_store_explicit(&c[me].ready, seq, memory_order_release);
    wait_all(c, n, 0, seq);
    size_t lo = count * (size_t)me / (size_t)n, hi = count * (size_t)(me + 1) / (size_t)n;
    for (size_t at = lo; at < hi; at += BLOCK) {
        size_t k = hi - at < BLOCK ? hi - at : BLOCK;
        if (n == 1)
            memcpy(tmp, in[0] + at, k * sizeof *tmp);
        else
            ppu_reduce2(tmp, in[0] + at, in[1] + at, k, PPU_FLOAT32, PPU_SUM);
        for (int q = 2; q < n; q++)
            ppu_reduce2(tmp, tmp, in[q] + at, k, PPU_FLOAT32, PPU_SUM);
        for (int q = 0; q < n; q++)
            memcpy(out[q] + at, tmp, k * sizeof *tmp);
    }
    atomic_store_explicit(&c[me].done, seq, memory_order_release);
    wait_all(c, n, 1, seq);
}

int main(int argc, char **argv)
{
    int n = 2, iters = 20, warm = 5, opt;
    size_t minb = 8, maxb = 64u << 20;
    double f = 2;
    while ((opt = getopt(argc, argv, "p:b:e:f:n:w:h")) != -1) {
        switch (opt) {
        case 'p': n = atoi(optarg); break;
        case 'b': if (ppu_tool_parse_size(optarg, &minb)) return 2; break;
        case 'e': if (ppu_tool_parse_size(optarg, &maxb)) return 2; break;
        case 'f': f = atof(optarg); break;
        case 'n': iters = atoi(optarg); break;
        case 'w': warm = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bound_allreduce [-p N] [-b MIN] [-e MAX] [-f F] [-n ITERS] "
                    "[-w WARMUP]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (n < 1 || n > 64 || iters < 1 || warm < 0 || f <= 1 || minb < 4 || maxb < minb) {
        fprintf(stderr, "bound_allreduce: bad arguments\n");
        return 2;
    }
    spin_limit = n <= sysconf(_SC_NPROCESSORS_ONLN) ? 1ul << 30 : 200;
    size_t maxc = maxb / sizeof(float);
    size_t bytes = sizeof(struct ctl) * 64 + 2 * (size_t)n * (maxc * sizeof(float) + 64);
    char *shm = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double *times = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED || times == MAP_FAILED) {
        perror("bound_allreduce: mmap");
        return 1;
    }
    struct ctl *c = (struct ctl *)shm;
    float *in[64], *out[64];
    char *p = shm + sizeof(struct ctl) * 64;
    for (int q = 0; q < n; q++) {
        in[q] = (float *)p;
        p += maxc * sizeof(float) + 64;
        out[q] = (float *)p;
        p += maxc * sizeof(float) + 64;
    }
    for (int q = 0; q < n; q++)
        for (size_t i = 0; i < maxc; i++)
            in[q][i] = (float)((q + i) % 7);
    printf("# bound_allreduce: %d ranks, inputs and outputs in shared memory, each rank reduces "
           "1/%d straight into every output\n", n, n);
    printf("#%11s  %12s  %10s  %8s  %8s\n", "size", "count", "time(us)", "algbw", "busbw");
    fflush(stdout);
    pid_t pids[64];
    for (int me = 0; me < n; me++) {
        pids[me] = fork();
        if (pids[me] != 0)
            continue;
        float *tmp = malloc(BLOCK * sizeof *tmp);
        unsigned long seq = 0;
        int row = 0;
        for (double s = (double)minb; s <= (double)maxb * 1.000001; s *= f, row++) {
            size_t count = (size_t)s / sizeof(float);
            for (int k = 0; k < warm; k++)
                one_call(in, out, c, n, me, count, ++seq, tmp);
            double t = now_s();
            for (int k = 0; k < iters; k++)
                one_call(in, out, c, n, me, count, ++seq, tmp);
            if (me == 0)
                times[row] = (now_s() - t) / iters;
        }
        free(tmp);
        _exit(0);
    }
    int bad = 0;
    for (int q = 0; q < n; q++) {
        int st;
        waitpid(pids[q], &st, 0);
        bad |= !WIFEXITED(st) || WEXITSTATUS(st);
    }
    int row = 0;
    for (double s = (double)minb; s <= (double)maxb * 1.000001; s *= f, row++) {
        size_t count = (size_t)s / sizeof(float), b = count * sizeof(float);
        double alg = (double)b / times[row] / 1e9;
        printf(" %11zu  %12zu  %10.2f  %8.2f  %8.2f\n", b, count, times[row] * 1e6, alg,
               alg * 2 * (n - 1) / n);
    }
    return bad;
}
