/*
 * ppu_perf_main — shared main() of the ppu_<coll>_perf programs (see
 * ppu_perf_main.h).
 *
 *   ppu_<coll>_perf -p 4 -b 8 -e 64M -f 2     fork 4 local ranks
 *   mpirun -np 4 ppu_<coll>_perf -b 8 -e 64M  one rank per MPI process
 *                                             (ppu_comm_init_env; MPI
 *                                             itself is not used)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ppu_perf_main.h"

#define DEFAULT_GUARD_S 600 /* -p wall-clock guard when -T is not given */

static const char *prog = "ppu_perf";
static const perf_coll_t *g_coll; /* the program's collective */
static const char *g_call;        /* its ppuccl call, for messages */
static ppu_perf_fn g_fn;

static void die(ppu_comm_t comm, int rank, const char *what, ppu_result_t r) {
    const char *msg = ppu_get_last_error(comm);
    char who[32] = "";
    if (rank >= 0) snprintf(who, sizeof who, " rank %d:", rank);
    fprintf(stderr, "%s:%s %s failed: %s%s%s\n", prog, who, what,
            ppu_get_error_string(r), *msg ? ": " : "", msg);
    fflush(stdout);
    fflush(stderr);
    _exit(1);
}

typedef struct { ppu_comm_t comm; int rank, nranks; } ppu_ctx_t;

static double g_init_s; /* how long this rank's communicator init took */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This process's resident memory now, in MB (VmRSS). */
static double rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024;
}

static int be_run(void *ctx, const void *send, void *recv, size_t count, int t, int op, int root) {
    ppu_ctx_t *c = ctx;
    ppu_perf_call_t call = {send, recv, count, (ppu_datatype_t)t, (ppu_redop_t)op, root,
                            c->rank, c->nranks, c->comm};
    ppu_result_t r = g_fn(&call);
    if (r != PPU_SUCCESS) die(c->comm, c->rank, g_call, r);
    return 0;
}

static int be_reduce_double(void *ctx, double *v, size_t n, int is_max) {
    ppu_ctx_t *c = ctx;
    ppu_result_t r = ppu_allreduce(v, v, n, PPU_FLOAT64, is_max ? PPU_MAX : PPU_SUM, c->comm, NULL);
    if (r != PPU_SUCCESS) die(c->comm, c->rank, "ppu_allreduce (driver)", r);
    return 0;
}

static int be_barrier(void *ctx) {
    double x = 0;
    return be_reduce_double(ctx, &x, 1, 0);
}

static int be_reg(void *ctx, void *buf, size_t bytes, void **handle) {
    ppu_ctx_t *c = ctx;
    ppu_result_t r = ppu_comm_register(c->comm, buf, bytes, handle);
    if (r != PPU_SUCCESS) die(c->comm, c->rank, "ppu_comm_register", r);
    return 0;
}

static int be_dereg(void *ctx, void *handle) {
    ppu_ctx_t *c = ctx;
    ppu_result_t r = ppu_comm_deregister(c->comm, handle);
    if (r != PPU_SUCCESS) die(c->comm, c->rank, "ppu_comm_deregister", r);
    return 0;
}

static int be_mem_alloc(void *ctx, size_t bytes, void **p) {
    ppu_result_t r = ppu_mem_alloc(bytes, p);
    if (r != PPU_SUCCESS) die(((ppu_ctx_t *)ctx)->comm, ((ppu_ctx_t *)ctx)->rank, "ppu_mem_alloc", r);
    return 0;
}

static int be_mem_free(void *ctx, void *p) {
    ppu_result_t r = ppu_mem_free(p);
    if (r != PPU_SUCCESS) die(((ppu_ctx_t *)ctx)->comm, ((ppu_ctx_t *)ctx)->rank, "ppu_mem_free", r);
    return 0;
}

static int be_win_reg(void *ctx, void *buf, size_t bytes, void **handle) {
    ppu_ctx_t *c = ctx;
    ppu_result_t r = ppu_comm_window_register(c->comm, buf, bytes, (ppu_window_t *)handle);
    if (r != PPU_SUCCESS) die(c->comm, c->rank, "ppu_comm_window_register", r);
    return 0;
}

static int be_win_dereg(void *ctx, void *handle) {
    ppu_ctx_t *c = ctx;
    ppu_result_t r = ppu_comm_window_deregister(c->comm, handle);
    if (r != PPU_SUCCESS) die(c->comm, c->rank, "ppu_comm_window_deregister", r);
    return 0;
}

/* Runs the benchmark on an initialised communicator, then frees it. */
static int run_rank(const perf_opts_t *opts, ppu_comm_t comm) {
    ppu_ctx_t ctx = {comm, -1, 0};
    ppu_result_t r;
    if ((r = ppu_comm_user_rank(comm, &ctx.rank)) != PPU_SUCCESS) die(comm, -1, "ppu_comm_user_rank", r);
    if ((r = ppu_comm_count(comm, &ctx.nranks)) != PPU_SUCCESS) die(comm, ctx.rank, "ppu_comm_count", r);
    perf_backend_t be = {"ppuccl", ctx.rank, ctx.nranks, &ctx, be_run, be_barrier,
                         be_reduce_double, NULL, be_reg, be_dereg, be_mem_alloc, be_mem_free,
                         be_win_reg, be_win_dereg};
    /* init time and memory, slowest and largest rank (for scale runs) */
    double v[4] = {g_init_s, rss_mb(), g_init_s, rss_mb()};
    be_reduce_double(&ctx, v, 2, 1);
    be_reduce_double(&ctx, v + 2, 2, 0);
    if (ctx.rank == 0)
        printf("# ppu_comm_init: %d ranks, %.3f s slowest, %.3f s mean; RSS after init %.1f MB "
               "largest, %.1f MB mean\n", ctx.nranks, v[0], v[2] / ctx.nranks, v[1],
               v[3] / ctx.nranks);
    int rc = perf_run(opts, &be, g_coll);
    if ((r = ppu_comm_destroy(comm)) != PPU_SUCCESS) die(NULL, ctx.rank, "ppu_comm_destroy", r);
    return rc;
}

/* Rank 0 creates the unique id (its bootstrap root thread lives there) and
 * writes it to every other rank's pipe; the parent forks before any thread
 * exists, which keeps fork() safe under sanitizers too. */
static void get_id(int rank, int n, int (*pipes)[2], ppu_unique_id_t *id) {
    if (rank == 0) {
        ppu_result_t r = ppu_get_unique_id(id);
        if (r != PPU_SUCCESS) die(NULL, 0, "ppu_get_unique_id", r);
        for (int k = 1; k < n; k++)
            if (write(pipes[k][1], id, sizeof *id) != (ssize_t)sizeof *id) die(NULL, 0, "write id", PPU_SYSTEM_ERROR);
    } else if (read(pipes[rank][0], id, sizeof *id) != (ssize_t)sizeof *id) {
        fprintf(stderr, "%s: rank %d got no unique id from rank 0\n", prog, rank);
        _exit(1);
    }
}

struct local_job {
    const perf_opts_t *opts;
    int n;
    int (*pipes)[2];
};

/* One forked rank: its id from rank 0, a communicator, the benchmark. */
static int local_rank(int i, void *arg) {
    const struct local_job *job = arg;
    ppu_comm_t comm;
    ppu_unique_id_t id;
    ppu_result_t r;
    get_id(i, job->n, job->pipes, &id);
    double t0 = now_s();
    if ((r = ppu_comm_init_rank(&comm, job->n, id, i)) != PPU_SUCCESS)
        die(NULL, i, "ppu_comm_init_rank", r);
    g_init_s = now_s() - t0;
    return run_rank(job->opts, comm);
}

/* -p N: fork N ranks that rendezvous on a unique id made by rank 0. */
static int run_local(const perf_opts_t *opts) {
    int n = opts->nprocs;
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    int (*pipes)[2] = calloc((size_t)n, sizeof *pipes);
    if (!pids || !pipes) { perror(prog); return 1; }
    for (int i = 0; i < n; i++)
        if (pipe(pipes[i]) != 0) { perror(prog); return 1; }
    struct local_job job = {opts, n, pipes};
    int rc = perf_fork_ranks(prog, pids, n, local_rank, &job);
    for (int i = 0; i < n; i++) {
        close(pipes[i][0]);
        close(pipes[i][1]);
    }
    free(pipes);
    double guard = opts->timeout_s > 0 ? opts->timeout_s + 2.0 : DEFAULT_GUARD_S;
    int wrc = perf_wait_ranks(prog, pids, n, guard, NULL);
    if (rc == 0) rc = wrc;
    free(pids);
    return rc;
}

int ppu_perf_main(int argc, char **argv, const perf_coll_t *coll, const char *call,
                  ppu_perf_fn fn) {
    perf_opts_t opts;
    if (argc > 0) prog = argv[0];
    g_coll = coll;
    g_call = call;
    g_fn = fn;
    int rc = perf_parse_args(argc, argv, &opts);
    if (rc) return rc == 1 ? 0 : rc; /* 1: -h */
    if (opts.nprocs) return run_local(&opts);
    ppu_comm_t comm;
    double t0 = now_s();
    ppu_result_t r = ppu_comm_init_env(&comm);
    if (r != PPU_SUCCESS) die(NULL, -1, "ppu_comm_init_env", r);
    g_init_s = now_s() - t0;
    return run_rank(&opts, comm);
}
