/* The reduction kernels against memcpy on this host, per instruction set
 * (ppu_reduce2 with PPU_SIMD's choices), type and size:
 *
 *   build/bin/reduce_kernels [bytes ...]      (default 32K 1M 64M)
 *
 * dst = a + b over operands of the given size; GB/s counts the bytes the
 * kernel moves (read a and b, write dst: 3 x size) and memcpy's (2 x size),
 * so the ratio says how close a reduction runs to a plain copy's memory
 * speed. Median of repeats, each long enough to time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reduce.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

#define REPEATS 7

/* seconds per call of f, the median of REPEATS timings of enough calls */
static double timed(void (*f)(void *), void *arg, size_t bytes)
{
    int calls = (int)(((size_t)256 << 20) / (bytes ? bytes : 1));
    calls = calls < 1 ? 1 : calls > 100000 ? 100000 : calls;
    double t[REPEATS];
    f(arg);
    for (int r = 0; r < REPEATS; r++) {
        double t0 = now();
        for (int i = 0; i < calls; i++)
            f(arg);
        t[r] = (now() - t0) / calls;
    }
    qsort(t, REPEATS, sizeof *t, cmp);
    return t[REPEATS / 2];
}

struct job {
    void *d, *a, *b;
    size_t bytes, count;
    ppu_datatype_t dt;
};

static void run_reduce(void *p)
{
    struct job *j = p;
    ppu_reduce2(j->d, j->a, j->b, j->count, j->dt, PPU_SUM);
}

static void run_memcpy(void *p)
{
    struct job *j = p;
    memcpy(j->d, j->a, j->bytes);
}

static size_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'K': case 'k': v *= 1 << 10; break;
    case 'M': case 'm': v *= 1 << 20; break;
    case 'G': case 'g': v *= 1 << 30; break;
    default: break;
    }
    return v > 0 ? (size_t)v : 0;
}

int main(int argc, char **argv)
{
    static const char *const isas[] = {"generic", "avx2", "avx512"};
    static const struct {
        const char *name;
        ppu_datatype_t dt;
        size_t size;
    } types[] = {{"float32", PPU_FLOAT32, 4}, {"float16", PPU_FLOAT16, 2},
                 {"bfloat16", PPU_BFLOAT16, 2}, {"float64", PPU_FLOAT64, 8},
                 {"int32", PPU_INT32, 4}};
    const char *def[] = {"32K", "1M", "64M"};
    int nsz = argc > 1 ? argc - 1 : 3;
    printf("# reduce_kernels: dst = a + b, GB/s of bytes moved (kernel 3 x size, memcpy 2 x "
           "size), median of %d\n", REPEATS);
    printf("%10s %-9s %8s %9s %9s %9s\n", "bytes", "type", "isa", "GB/s", "memcpy", "ratio");
    for (int k = 0; k < nsz; k++) {
        size_t bytes = parse_size(argc > 1 ? argv[k + 1] : def[k]);
        if (!bytes) {
            fprintf(stderr, "reduce_kernels: size '%s' is not a positive byte count\n",
                    argv[k + 1]);
            return 2;
        }
        struct job j = {malloc(bytes), malloc(bytes), malloc(bytes), bytes, 0, PPU_FLOAT32};
        if (!j.d || !j.a || !j.b) {
            fprintf(stderr, "reduce_kernels: out of memory for %zu bytes\n", bytes);
            return 2;
        }
        memset(j.a, 0x3c, bytes); /* 1.0-ish in every type: no NaN, no denormal */
        memset(j.b, 0x3b, bytes);
        memset(j.d, 0, bytes);
        double mc = 2.0 * (double)bytes / timed(run_memcpy, &j, bytes) / 1e9;
        for (size_t t = 0; t < sizeof types / sizeof *types; t++)
            for (int i = 0; i < 3; i++) {
                if (ppu_reduce_isa_set(isas[i]) != 0)
                    continue;
                j.dt = types[t].dt;
                j.count = bytes / types[t].size;
                double g = 3.0 * (double)bytes / timed(run_reduce, &j, bytes) / 1e9;
                printf("%10zu %-9s %8s %9.2f %9.2f %9.2f\n", bytes, types[t].name, isas[i], g,
                       mc, g / mc);
            }
        free(j.d);
        free(j.a);
        free(j.b);
    }
    return 0;
}
