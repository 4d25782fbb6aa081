/* ppu_init_threads: N ranks as threads of one process (ppu_comm_init_all),
 * as N/16 simulated servers of 16 chips unless PPU_SIM_SERVERS says
 * otherwise; how long init takes, and optionally one checked all-reduce on
 * every rank at once.
 *
 *   ppu_init_threads 1024          init only
 *   ppu_init_threads 1024 1048576  then a 1 MB float all-reduce per rank
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ppuccl.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = atof(line + 6);
    if (f)
        fclose(f);
    return kb / 1024;
}

struct rank_arg {
    ppu_comm_t comm;
    int rank, n;
    size_t count;
    long wrong;
    ppu_result_t r;
};

/* rank r's element i is r + i % 7: the sum is n(n-1)/2 + n (i % 7), exact in float */
static void *rank_main(void *p)
{
    struct rank_arg *a = p;
    float *v = malloc(sizeof *v * a->count);
    if (!v) {
        a->r = PPU_SYSTEM_ERROR;
        return NULL;
    }
    for (size_t i = 0; i < a->count; i++)
        v[i] = (float)(a->rank + (int)(i % 7));
    a->r = ppu_allreduce(v, v, a->count, PPU_FLOAT32, PPU_SUM, a->comm, NULL);
    double base = (double)a->n * (a->n - 1) / 2;
    for (size_t i = 0; a->r == PPU_SUCCESS && i < a->count; i++)
        a->wrong += v[i] != (float)(base + (double)a->n * (double)(i % 7));
    free(v);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || atoi(argv[1]) < 1) {
        fprintf(stderr, "usage: %s NRANKS [BYTES]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]);
    size_t bytes = argc > 2 ? strtoull(argv[2], NULL, 0) : 0;
    char servers[16];
    snprintf(servers, sizeof servers, "%d", n >= 16 ? n / 16 : 1);
    setenv("PPU_SIM_SERVERS", servers, 0);
    setenv("PPU_SIM_TOPO", "server16", 0);
    ppu_comm_t *comms = calloc((size_t)n, sizeof *comms);
    struct rank_arg *args = calloc((size_t)n, sizeof *args);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    if (!comms || !args || !th)
        return 1;
    double t0 = now_s();
    ppu_result_t r = ppu_comm_init_all(comms, n);
    double t_init = now_s() - t0;
    if (r != PPU_SUCCESS) {
        fprintf(stderr, "ppu_comm_init_all(%d): %s: %s\n", n, ppu_get_error_string(r),
                ppu_get_last_error(NULL));
        return 1;
    }
    printf("ppu_comm_init_all: %d ranks as threads (%s servers), %.3f s, RSS %.0f MB\n", n,
           getenv("PPU_SIM_SERVERS"), t_init, rss_mb());
    int rc = 0;
    if (bytes) {
        t0 = now_s();
        for (int i = 0; i < n; i++) {
            args[i] = (struct rank_arg){comms[i], i, n, bytes / sizeof(float), 0, PPU_SUCCESS};
            pthread_create(&th[i], NULL, rank_main, &args[i]);
        }
        long wrong = 0;
        int failed = 0;
        for (int i = 0; i < n; i++) {
            pthread_join(th[i], NULL);
            wrong += args[i].wrong;
            failed += args[i].r != PPU_SUCCESS;
        }
        printf("allreduce %zu B on every rank at once: %.3f s (first call, links connected), "
               "%d rank(s) failed, %ld wrong element(s), RSS %.0f MB\n", bytes, now_s() - t0,
               failed, wrong, rss_mb());
        rc = failed || wrong;
        if (failed)
            for (int i = 0; i < n; i++)
                if (args[i].r != PPU_SUCCESS) {
                    fprintf(stderr, "rank %d: %s\n", i, ppu_get_last_error(comms[i]));
                    break;
                }
    }
    t0 = now_s();
    for (int i = 0; i < n; i++)
        ppu_comm_destroy(comms[i]);
    printf("destroy: %.3f s\n", now_s() - t0);
    free(comms);
    free(args);
    free(th);
    return rc;
}
