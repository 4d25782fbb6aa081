/*
 * perf_colls — descriptions of the collectives other than all-reduce (see
 * perf_common.h), with nccl-tests' sizes, counts, in-place offsets and bus
 * factors. Expected values are computed from perf_value() of the rank and
 * element that should have produced them, never from another run.
 */
#include "perf_common.h"

/* Data movement reduces nothing, so it can use the widest exact value range
 * (perf_value with nranks 1). The value depends on the rank it comes from and
 * on idx, which also names the destination where there are several, so a
 * block delivered to the wrong place is counted as wrong. */
static int64_t move_value(int t, int rank, size_t idx) { return perf_value(t, -1, rank, 1, idx); }

static double factor_one(int n) { (void)n; return 1.0; }
static double factor_nm1_n(int n) { return (double)(n - 1) / n; }

/* count elements sent and received, in place send == recv. */
static void same_counts(size_t count, int nranks, perf_counts_t *c) {
    (void)nranks;
    c->send = c->recv = c->param = count;
    c->inplace_send_off = c->inplace_recv_off = 0;
}

/* Data movement: element j of rank r's send buffer is move_value(t, r, j).
 * Broadcast: every rank fills (only the root's is read), so in place a
 * non-root rank that is not written keeps its own values and is caught.
 * All-to-all: j = p * per + i is element i of the block for rank p. */
static void move_fill(void *send, const perf_counts_t *c, int t, int op, int root,
                      int rank, int nranks) {
    (void)op; (void)root; (void)nranks;
    for (size_t j = 0; j < c->send; j++) perf_store(send, j, t, move_value(t, rank, j));
}

/* Reductions: element i of rank r is perf_value(t, op, r, n, i). */
static void reduce_fill(void *send, const perf_counts_t *c, int t, int op, int root,
                        int rank, int nranks) {
    (void)root;
    for (size_t i = 0; i < c->send; i++) perf_store(send, i, t, perf_value(t, op, rank, nranks, i));
}

/* ---- broadcast: the root's count elements to every rank ------------------ */
static size_t bc_expected(void *exp, const perf_counts_t *c, int t, int op, int root,
                          int rank, int nranks) {
    (void)op; (void)rank; (void)nranks;
    for (size_t i = 0; i < c->recv; i++) perf_store(exp, i, t, move_value(t, root, i));
    return c->recv;
}
const perf_coll_t perf_coll_broadcast = {
    .name = "broadcast", .uses_root = 1, .counts = same_counts, .bus_factor = factor_one,
    .fill = move_fill, .expected = bc_expected};

/* ---- reduce: count elements from every rank, reduced on the root --------- */
static size_t rd_expected(void *exp, const perf_counts_t *c, int t, int op, int root,
                          int rank, int nranks) {
    if (rank != root) return 0; /* recvbuf is not significant elsewhere */
    for (size_t i = 0; i < c->recv; i++)
        perf_store_result(exp, i, t, op, perf_reduce_value(t, op, nranks, i), nranks);
    return c->recv;
}
const perf_coll_t perf_coll_reduce = {
    .name = "reduce", .uses_op = 1, .uses_root = 1, .counts = same_counts,
    .bus_factor = factor_one, .fill = reduce_fill, .expected = rd_expected};

/* ---- all-gather: count / n from each rank, n blocks on every rank -------- */
static void ag_counts(size_t count, int nranks, perf_counts_t *c) {
    size_t per = count / (size_t)nranks;
    c->send = c->param = per;
    c->recv = per * (size_t)nranks;
    c->inplace_send_off = per; /* send = recv + rank * per */
    c->inplace_recv_off = 0;
}
static size_t ag_expected(void *exp, const perf_counts_t *c, int t, int op, int root,
                          int rank, int nranks) {
    (void)op; (void)root; (void)rank;
    size_t per = c->param;
    for (int r = 0; r < nranks; r++)
        for (size_t i = 0; i < per; i++)
            perf_store(exp, (size_t)r * per + i, t, move_value(t, r, i));
    return c->recv;
}
const perf_coll_t perf_coll_allgather = {
    .name = "allgather", .counts = ag_counts, .bus_factor = factor_nm1_n,
    .fill = move_fill, .expected = ag_expected};

/* ---- reduce-scatter: n blocks of count / n sent, block rank received ----- */
static void rs_counts(size_t count, int nranks, perf_counts_t *c) {
    size_t per = count / (size_t)nranks;
    c->send = per * (size_t)nranks;
    c->recv = c->param = per;
    c->inplace_send_off = 0;
    c->inplace_recv_off = per; /* recv = send + rank * per */
}
static size_t rs_expected(void *exp, const perf_counts_t *c, int t, int op, int root,
                          int rank, int nranks) {
    (void)root;
    size_t base = (size_t)rank * c->recv;
    for (size_t i = 0; i < c->recv; i++)
        perf_store_result(exp, i, t, op, perf_reduce_value(t, op, nranks, base + i), nranks);
    return c->recv;
}
const perf_coll_t perf_coll_reduce_scatter = {
    .name = "reduce_scatter", .uses_op = 1, .counts = rs_counts, .bus_factor = factor_nm1_n,
    .fill = reduce_fill, .expected = rs_expected};

/* ---- all-to-all: block p (count / n elements) of every rank to rank p ---- */
static void a2a_counts(size_t count, int nranks, perf_counts_t *c) {
    size_t per = count / (size_t)nranks;
    c->send = c->recv = per * (size_t)nranks;
    c->param = per;
    c->inplace_send_off = c->inplace_recv_off = 0; /* unused: no in-place */
}
static size_t a2a_expected(void *exp, const perf_counts_t *c, int t, int op, int root,
                           int rank, int nranks) {
    (void)op; (void)root;
    size_t per = c->param;
    /* block q comes from rank q, which sent it as its block rank */
    for (int q = 0; q < nranks; q++)
        for (size_t i = 0; i < per; i++)
            perf_store(exp, (size_t)q * per + i, t, move_value(t, q, (size_t)rank * per + i));
    return c->recv;
}
const perf_coll_t perf_coll_alltoall = {
    .name = "alltoall", .no_inplace = 1, .counts = a2a_counts, .bus_factor = factor_nm1_n,
    .fill = move_fill, .expected = a2a_expected};

/* ---- sendrecv: count elements to rank + 1, from rank - 1 ----------------- */
static size_t sr_expected(void *exp, const perf_counts_t *c, int t, int op, int root,
                          int rank, int nranks) {
    (void)op; (void)root;
    int prev = (rank - 1 + nranks) % nranks;
    for (size_t i = 0; i < c->recv; i++) perf_store(exp, i, t, move_value(t, prev, i));
    return c->recv;
}
const perf_coll_t perf_coll_sendrecv = {
    .name = "sendrecv", .no_inplace = 1, .counts = same_counts, .bus_factor = factor_one,
    .fill = move_fill, .expected = sr_expected};
