/*
 * perf_common — an nccl-tests style benchmark driver shared by the ppuccl
 * benchmarks and their MPI counterparts.
 *
 * It depends on neither MPI nor libppuccl: ppuccl.h is included only for the
 * datatype and reduction-op enums. A program fills a perf_backend_t with its
 * communication primitives, describes the collective with a perf_coll_t and
 * calls perf_parse_args() then perf_run().
 */
#ifndef PPU_PERF_COMMON_H
#define PPU_PERF_COMMON_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#include "ppuccl.h"

/* Value of -d all / -o all. */
#define PERF_ALL (-1)

typedef struct perf_opts {
    size_t min_bytes;  /* -b, default 8 */
    size_t max_bytes;  /* -e, default 64M */
    double factor;     /* -f, default 2 (used when step == 0) */
    size_t step;       /* -i, additive step in bytes, 0 = use factor */
    int iters;         /* -n, default 20 */
    int warmup;        /* -w, default 5 */
    int check;         /* -c, default 1 */
    int dtype;         /* -d, ppu_datatype_t or PERF_ALL, default float */
    int op;            /* -o, ppu_redop_t or PERF_ALL, default sum */
    int root;          /* -r, default 0 */
    int blocking;      /* -z, accepted and ignored */
    int timeout_s;     /* -T, 0 = none */
    int nprocs;        /* -p, local ranks to fork (ppuccl program only), 0 = none */
    int reg;           /* -R: 1 register the buffers (backend->reg); 2 allocate them as
                        * symmetric memory and register them as windows (backend->mem_alloc,
                        * win_reg); default 0 */
    const char *json;  /* -J FILE: rank 0 writes every row and the parameters as JSON */
} perf_opts_t;

/* Communication primitives, filled in by the program. Every function returns
 * 0 on success and non-zero on failure. */
typedef struct perf_backend {
    const char *name; /* "ppuccl", "MPI": first word of the header */
    int rank, nranks;
    void *ctx;        /* passed back to every function */
    /* Runs the collective once. In place, send and recv point into one buffer
     * (perf_counts_t's in-place offsets). count is the collective's parameter
     * count (perf_counts_t.param). root and op are ignored by collectives
     * that do not use them (op is -1 there). */
    int (*run)(void *ctx, const void *send, void *recv, size_t count,
               int dtype, int op, int root);
    int (*barrier)(void *ctx);
    /* In-place allreduce of n doubles over all ranks: max if is_max, else sum. */
    int (*reduce_double)(void *ctx, double *v, size_t n, int is_max);
    /* Optional (NULL = everything supported). Returns non-zero when the
     * backend can run this datatype / op. */
    int (*supports)(void *ctx, int dtype, int op);
    /* Optional (NULL: -R 1 is refused): registers a buffer for the whole
     * run (ppuccl: ppu_comm_register), deregistered before it is freed. */
    int (*reg)(void *ctx, void *buf, size_t bytes, void **handle);
    int (*dereg)(void *ctx, void *handle);
    /* Optional (NULL: -R 2 is refused): symmetric memory (ppu_mem_alloc)
     * and its registration as a window (collective) for the whole run. */
    int (*mem_alloc)(void *ctx, size_t bytes, void **p);
    int (*mem_free)(void *ctx, void *p);
    int (*win_reg)(void *ctx, void *buf, size_t bytes, void **handle);
    int (*win_dereg)(void *ctx, void *handle);
} perf_backend_t;

/* Element counts for one row, derived from count = bytes / type size. The
 * size column is max(send, recv) bytes, the count column param, and algbw
 * uses max(send, recv) bytes (as nccl-tests). */
typedef struct perf_counts {
    size_t send;         /* elements in each rank's send buffer */
    size_t recv;         /* elements in each rank's receive buffer */
    size_t param;        /* count argument given to backend->run */
    /* In place, send and recv share one buffer of max(send, recv) elements:
     * send = buf + rank * inplace_send_off, recv = buf + rank *
     * inplace_recv_off (nccl-tests' sendInplaceOffset / recvInplaceOffset).
     * Both 0: send == recv. */
    size_t inplace_send_off;
    size_t inplace_recv_off;
    /* Set by the driver for the expected() call: the elements this rank
     * checks, [check_lo, check_hi) (all of them unless split_check). */
    size_t check_lo, check_hi;
} perf_counts_t;

/* Describes one collective; one small file per collective fills it. */
typedef struct perf_coll {
    const char *name;  /* "allreduce": used in the header */
    int uses_op;       /* 0: redop column prints "none", op loop skipped */
    int uses_root;     /* 0: root column prints -1 */
    int no_inplace;    /* 1: no in-place variant, its columns print N/A */
    void (*counts)(size_t count, int nranks, perf_counts_t *c);
    /* Bus bandwidth = algbw * bus_factor(nranks). */
    double (*bus_factor)(int nranks);
    /* Fills this rank's send buffer (c->send elements). */
    void (*fill)(void *send, const perf_counts_t *c, int dtype, int op,
                 int root, int rank, int nranks);
    /* Writes the expected receive buffer (c->recv elements) and returns how
     * many leading elements to compare (0: nothing to check on this rank). */
    size_t (*expected)(void *exp, const perf_counts_t *c, int dtype, int op,
                       int root, int rank, int nranks);
    /* 1: every rank's result is the same and costs O(nranks) an element to
     * compute (all-reduce): with many ranks each checks its 1/n of the
     * elements (expected() fills only [check_lo, check_hi)), and the ranks
     * compare a hash of their whole result, so the check costs O(count) a
     * rank instead of O(count x nranks). */
    int split_check;
} perf_coll_t;

/* Parses nccl-tests flags. Returns 0 on success, 1 after -h (help printed),
 * 2 on an unknown flag or a bad value (message printed on stderr). */
int perf_parse_args(int argc, char **argv, perf_opts_t *opts);
/* Runs the sweep; only rank 0 prints. Returns 0 when everything ran and
 * validated, 1 on wrong values or a backend failure, 2 when the requested
 * datatype / op is not supported by the backend. */
int perf_run(const perf_opts_t *opts, const perf_backend_t *be,
             const perf_coll_t *coll);

/* ---- helpers for collective descriptions ------------------------------- */
size_t perf_type_size(int dtype);
const char *perf_type_name(int dtype);
const char *perf_op_name(int op);
/* Deterministic test value of element idx on rank: a small integer chosen so
 * that reducing it over nranks with op is exact in dtype in any order. */
int64_t perf_value(int dtype, int op, int rank, int nranks, size_t idx);
/* Exact reduction of perf_value(dtype, op, r, nranks, idx) over all ranks. */
int64_t perf_reduce_value(int dtype, int op, int nranks, size_t idx);
/* Stores the integer v as element idx of buf in dtype. */
void perf_store(void *buf, size_t idx, int dtype, int64_t v);
/* Stores the result of op for the exact reduction acc: AVG divides by
 * nranks (integers truncate, floats round in the type), others store acc. */
void perf_store_result(void *buf, size_t idx, int dtype, int op, int64_t acc,
                       int nranks);
/* Number of elements of a that differ from b (floats compared by value). */
size_t perf_count_wrong(const void *a, const void *b, size_t n, int dtype);
/* A 64-bit hash of bytes (the split check's comparison of results). */
uint64_t perf_hash(const void *buf, size_t bytes);
/* Local float <-> half / bfloat16 conversions, round to nearest even. */
uint16_t perf_float_to_half(float f);
float perf_half_to_float(uint16_t h);
uint16_t perf_float_to_bf16(float f);
float perf_bf16_to_float(uint16_t b);

/* The collective descriptions, each shared by ppu_<coll>_perf and
 * mpi_<coll>_perf: all-reduce in perf_common.c, the others in perf_colls.c.
 * Sizes, counts and bus factors follow nccl-tests. */
extern const perf_coll_t perf_coll_allreduce;      /* bus 2(n-1)/n */
extern const perf_coll_t perf_coll_broadcast;      /* root's count elements to all; bus 1 */
extern const perf_coll_t perf_coll_reduce;         /* to root only; bus 1 */
/* size = the gathered bytes, count = size / type / nranks per rank; bus (n-1)/n */
extern const perf_coll_t perf_coll_allgather;
/* size = the bytes sent per rank, count = size / type / nranks received; bus (n-1)/n */
extern const perf_coll_t perf_coll_reduce_scatter;
/* size = the bytes sent (and received) per rank, count per peer = size / type /
 * nranks; no in-place; bus (n-1)/n */
extern const perf_coll_t perf_coll_alltoall;
/* count elements to rank + 1, from rank - 1 (mod nranks); no in-place; bus 1 */
extern const perf_coll_t perf_coll_sendrecv;

/* -p N launchers: wait for the n forked ranks in pids[] (entries <= 0
 * are ignored). The first rank to fail is reported and the others get 10
 * more seconds; past guard_s wall-clock seconds, or once *stop (a signal
 * number set by the caller's handler; may be NULL) is nonzero, every rank
 * still running is killed. Returns 0, or the first failure's exit code
 * (1 for a signal or a kill, 128 + signal for *stop). */
int perf_wait_ranks(const char *prog, pid_t *pids, int n, double guard_s,
                    volatile sig_atomic_t *stop);
void perf_kill_ranks(const pid_t *pids, int n, int sig);
/* -p N launchers: fork n ranks; rank i runs rank_main(i, arg) and _exits
 * with its result (skipping atexit handlers inherited from the parent).
 * Returns 0, or 1 when a fork failed: the ranks already started are then
 * killed, and pids[] (zeroed by the caller) stays valid for
 * perf_wait_ranks. */
int perf_fork_ranks(const char *prog, pid_t *pids, int n, int (*rank_main)(int rank, void *arg),
                    void *arg);

#endif /* PPU_PERF_COMMON_H */
