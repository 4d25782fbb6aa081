/*
 * mpi_perf_main — shared main() of the mpi_<coll>_perf programs (see
 * mpi_perf_main.h).
 *
 *   mpirun -np 2 mpi_<coll>_perf -b 8 -e 64M -f 2
 */
#define _GNU_SOURCE
#include "mpi_perf_main.h"

#include <stdint.h>
#include <stdio.h>

typedef struct { MPI_Comm comm; int rank, nranks; mpi_perf_fn fn; } mpi_ctx_t;

/* MPI_DATATYPE_NULL for half and bfloat16 when reduced (MPI has neither);
 * moved only, they are 16-bit words. */
static MPI_Datatype mpi_type(int t, int reduces) {
    switch (t) {
    case PPU_INT8: return MPI_INT8_T;
    case PPU_UINT8: return MPI_UINT8_T;
    case PPU_INT32: return MPI_INT32_T;
    case PPU_UINT32: return MPI_UINT32_T;
    case PPU_INT64: return MPI_INT64_T;
    case PPU_UINT64: return MPI_UINT64_T;
    case PPU_FLOAT32: return MPI_FLOAT;
    case PPU_FLOAT64: return MPI_DOUBLE;
    default: return reduces ? MPI_DATATYPE_NULL : MPI_UINT16_T; /* half, bfloat16 */
    }
}

static MPI_Op mpi_op(int op) {
    switch (op) {
    case PPU_PROD: return MPI_PROD;
    case PPU_MAX: return MPI_MAX;
    case PPU_MIN: return MPI_MIN;
    default: return MPI_SUM; /* PPU_SUM, and PPU_AVG (divided afterwards) */
    }
}

/* op is -1 for a collective that reduces nothing. */
static int mpi_supports(void *ctx, int t, int op) {
    (void)ctx;
    return mpi_type(t, op >= 0) != MPI_DATATYPE_NULL;
}

#define DIV_LOOP(T) do { T *p = (T *)buf; for (size_t i = 0; i < n; i++) p[i] = (T)(p[i] / d); } while (0)
/* buf[i] /= nranks in the datatype: integers truncate toward zero. */
static void divide(void *buf, size_t n, int t, int nranks) {
    switch (t) {
    case PPU_INT8: { int d = nranks; DIV_LOOP(int8_t); break; }
    case PPU_UINT8: { unsigned d = (unsigned)nranks; DIV_LOOP(uint8_t); break; }
    case PPU_INT32: { int32_t d = nranks; DIV_LOOP(int32_t); break; }
    case PPU_UINT32: { uint32_t d = (uint32_t)nranks; DIV_LOOP(uint32_t); break; }
    case PPU_INT64: { int64_t d = nranks; DIV_LOOP(int64_t); break; }
    case PPU_UINT64: { uint64_t d = (uint64_t)nranks; DIV_LOOP(uint64_t); break; }
    case PPU_FLOAT32: { float d = (float)nranks; DIV_LOOP(float); break; }
    case PPU_FLOAT64: { double d = (double)nranks; DIV_LOOP(double); break; }
    default: break;
    }
}

void mpi_perf_avg(const mpi_perf_call_t *a, void *buf, size_t n) {
    if (a->redop == PPU_AVG) divide(buf, n, a->dtype, a->nranks);
}

static int mpi_run(void *ctx, const void *send, void *recv, size_t count, int t, int op, int root) {
    mpi_ctx_t *m = ctx;
    if (count > (size_t)0x7fffffff) return 1; /* MPI counts are int */
    mpi_perf_call_t call = {send, recv, (int)count, mpi_type(t, op >= 0), mpi_op(op), t, op,
                            perf_type_size(t), root, m->rank, m->nranks, m->comm};
    return m->fn(&call);
}

static int mpi_barrier(void *ctx) {
    return MPI_Barrier(((mpi_ctx_t *)ctx)->comm) != MPI_SUCCESS;
}

static int mpi_reduce_double(void *ctx, double *v, size_t n, int is_max) {
    if (n > (size_t)0x7fffffff) return 1;
    return MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, is_max ? MPI_MAX : MPI_SUM,
                         ((mpi_ctx_t *)ctx)->comm) != MPI_SUCCESS;
}

int mpi_perf_main(int argc, char **argv, const perf_coll_t *coll, mpi_perf_fn fn) {
    perf_opts_t opts;
    mpi_ctx_t ctx = {MPI_COMM_WORLD, 0, 1, fn};
    int rc;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &ctx.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ctx.nranks);
    rc = perf_parse_args(argc, argv, &opts);
    if (rc == 0 && opts.nprocs) {
        if (ctx.rank == 0)
            fprintf(stderr, "%s: -p is for the ppuccl benchmarks; start MPI ranks with mpirun -np\n", argv[0]);
        rc = 2;
    }
    if (rc) {
        MPI_Finalize();
        return rc == 1 ? 0 : rc; /* 1: -h */
    }
    perf_backend_t be = {"MPI", ctx.rank, ctx.nranks, &ctx, mpi_run, mpi_barrier,
                         mpi_reduce_double, mpi_supports, NULL, NULL, NULL, NULL, NULL, NULL};
    rc = perf_run(&opts, &be, coll);
    MPI_Finalize();
    return rc;
}
