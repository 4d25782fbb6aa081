/*
 * mpi_allreduce_perf — MPI_Allreduce through the shared perf_common driver,
 * the baseline that ppu_allreduce_perf is compared against
 * (scripts/compare_mpi.sh). Same flags and output as ppu_allreduce_perf.
 *
 *   mpirun -np 2 mpi_allreduce_perf -b 8 -e 64M -f 2
 *
 * half and bfloat16 are not MPI datatypes: -d half / -d bfloat16 exit with
 * code 2, -d all skips them.
 */
#define _GNU_SOURCE
#include <mpi.h>
#include <stdio.h>

#include "perf_common.h"

typedef struct { MPI_Comm comm; int nranks; } mpi_ctx_t;

static MPI_Datatype mpi_type(int t) {
    switch (t) {
    case PPU_INT8: return MPI_INT8_T;
    case PPU_UINT8: return MPI_UINT8_T;
    case PPU_INT32: return MPI_INT32_T;
    case PPU_UINT32: return MPI_UINT32_T;
    case PPU_INT64: return MPI_INT64_T;
    case PPU_UINT64: return MPI_UINT64_T;
    case PPU_FLOAT32: return MPI_FLOAT;
    case PPU_FLOAT64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL; /* half, bfloat16 */
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

static int mpi_supports(void *ctx, int t, int op) {
    (void)ctx; (void)op;
    return mpi_type(t) != MPI_DATATYPE_NULL;
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

static int mpi_run(void *ctx, const void *send, void *recv, size_t count, int t, int op, int root) {
    mpi_ctx_t *m = ctx;
    (void)root;
    if (count > (size_t)0x7fffffff) return 1; /* MPI counts are int */
    const void *s = send == recv ? MPI_IN_PLACE : send;
    if (MPI_Allreduce(s, recv, (int)count, mpi_type(t), mpi_op(op), m->comm) != MPI_SUCCESS) return 1;
    /* MPI has no average: PPU_AVG runs MPI_SUM and divides here; the division
     * is part of the timed call, as it is inside ppu_allreduce. */
    if (op == PPU_AVG) divide(recv, count, t, m->nranks);
    return 0;
}

static int mpi_barrier(void *ctx) {
    return MPI_Barrier(((mpi_ctx_t *)ctx)->comm) != MPI_SUCCESS;
}

static int mpi_reduce_double(void *ctx, double *v, size_t n, int is_max) {
    if (n > (size_t)0x7fffffff) return 1;
    return MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, is_max ? MPI_MAX : MPI_SUM,
                         ((mpi_ctx_t *)ctx)->comm) != MPI_SUCCESS;
}

int main(int argc, char **argv) {
    perf_opts_t opts;
    mpi_ctx_t ctx = {MPI_COMM_WORLD, 1};
    int rank = 0, rc;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ctx.nranks);
    rc = perf_parse_args(argc, argv, &opts);
    if (rc == 0 && opts.nprocs) {
        if (rank == 0)
            fprintf(stderr, "%s: -p is for the ppuccl benchmarks; start MPI ranks with mpirun -np\n", argv[0]);
        rc = 2;
    }
    if (rc) {
        MPI_Finalize();
        return rc == 1 ? 0 : rc; /* 1: -h */
    }
    perf_backend_t be = {"MPI", rank, ctx.nranks, &ctx, mpi_run, mpi_barrier,
                         mpi_reduce_double, mpi_supports};
    rc = perf_run(&opts, &be, &perf_coll_allreduce);
    MPI_Finalize();
    return rc;
}
