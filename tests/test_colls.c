/* Every collective x algorithm x protocol against independent references
 * (refval.h): datatypes and ops, counts 0/1/odd/large, in place and not,
 * unaligned buffers, roots other than 0, rank counts 1..16 with primes,
 * on the full mesh (every algorithm applies) and on server16 (where ranks
 * are not all one hop apart and only routed algorithms are chosen). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranks.h"
#include "refval.h"

enum { AR, BC, RD, AG, RS, A2A, A2AV, P2P, NCOLL };
static const char *names[NCOLL] = {"allreduce", "broadcast", "reduce", "allgather",
                                   "reduce_scatter", "alltoall", "alltoallv", "sendrecv"};

struct cc {
    int coll;
    int all_types; /* every datatype and op; else float32 sum and int8 max */
    size_t counts[4];
    int ncounts;
    int root;
};

/* Value that rank `from` holds for rank `to` at i (all-to-all). */
static double a2a_val(int from, int to, size_t i)
{
    return ref_input(from * 64 + to, i, PPU_INT32, PPU_SUM);
}

static void store_val(void *buf, size_t i, ppu_datatype_t dt, double v)
{
    ref_store(buf, i, dt, v, (uint64_t)(int64_t)v);
}

/* alltoallv: rank r sends (r + 2p) % 4 * unit + p elements to p */
static size_t v_count(int from, int to, size_t unit)
{
    return (size_t)((from + 2 * to) % 4) * unit + (size_t)to;
}

static size_t wrong_bytes(const char *got, const char *want, size_t n, size_t es, const char *what,
                          int rank)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(got + i * es, want + i * es, es)) {
            if (!bad)
                fprintf(stderr, "rank %d %s: first wrong element %zu of %zu\n", rank, what, i, n);
            bad++;
        }
    return bad;
}

/* One call of one collective; returns wrong elements, or 1 on error. */
static size_t one(ppu_comm_t comm, int r, int n, const struct cc *c, ppu_datatype_t dt,
                  ppu_redop_t op, size_t count, int inplace)
{
    size_t es = ppu_datatype_size(dt), nb = count * es, N = (size_t)n;
    size_t sbytes = nb, rbytes = nb;
    if (c->coll == AG)
        rbytes = nb * N;
    if (c->coll == RS || c->coll == A2A)
        sbytes = nb * N;
    if (c->coll == A2A)
        rbytes = nb * N;
    size_t vs[64], vsd[64], vr[64], vrd[64];
    if (c->coll == A2AV) {
        sbytes = rbytes = 0;
        for (int p = 0; p < n; p++) {
            vs[p] = v_count(r, p, count);
            vsd[p] = sbytes / es + 3; /* gaps between blocks */
            sbytes += (vs[p] + 3) * es;
            vr[p] = v_count(p, r, count);
            vrd[p] = rbytes / es + 1;
            rbytes += (vr[p] + 1) * es;
        }
        sbytes += 3 * es;
        rbytes += es;
    }
    /* +1: buffers deliberately not aligned to the type */
    char *sraw = malloc(sbytes + rbytes + 2), *rraw = malloc(rbytes + 2),
         *want = malloc(rbytes + 1);
    char *send = sraw + 1, *recv = rraw + 1;
    memset(recv, 0xA5, rbytes);
    size_t check = rbytes / es, bad = 0;
    ppu_result_t res = PPU_SUCCESS;
    char what[128];
    snprintf(what, sizeof what, "%s n=%d dt=%d op=%d count=%zu inplace=%d root=%d",
             names[c->coll], n, dt, op, count, inplace, c->root);
    switch (c->coll) {
    case AR:
        ref_fill(send, count, r, dt, op);
        if (inplace)
            recv = send;
        for (size_t i = 0; i < count; i++)
            ref_expect(want + i * es, i % REF_PERIOD, n, dt, op);
        res = ppu_allreduce(send, recv, count, dt, op, comm, NULL);
        break;
    case BC:
        if (r == c->root)
            ref_fill(send, count, r, dt, PPU_SUM);
        if (inplace && r == c->root)
            memcpy(recv, send, nb);
        ref_fill(want, count, c->root, dt, PPU_SUM);
        res = ppu_broadcast(inplace ? recv : send, recv, count, dt, c->root, comm, NULL);
        break;
    case RD:
        ref_fill(send, count, r, dt, op);
        if (inplace)
            recv = send;
        for (size_t i = 0; i < count; i++)
            ref_expect(want + i * es, i % REF_PERIOD, n, dt, op);
        res = ppu_reduce(send, recv, count, dt, op, c->root, comm, NULL);
        if (r != c->root)
            check = 0;
        break;
    case AG:
        for (int q = 0; q < n; q++)
            ref_fill(want + (size_t)q * nb, count, q, dt, PPU_SUM);
        ref_fill(send, count, r, dt, PPU_SUM);
        if (inplace) {
            memcpy(recv + (size_t)r * nb, send, nb);
            send = recv + (size_t)r * nb;
        }
        res = ppu_allgather(send, recv, count, dt, comm, NULL);
        break;
    case RS:
        ref_fill(send, count * N, r, dt, op);
        for (size_t i = 0; i < count; i++)
            ref_expect(want + i * es, ((size_t)r * count + i) % REF_PERIOD, n, dt, op);
        if (inplace)
            recv = send + (size_t)r * nb;
        res = ppu_reduce_scatter(send, recv, count, dt, op, comm, NULL);
        check = count;
        break;
    case A2A:
        for (int p = 0; p < n; p++)
            for (size_t i = 0; i < count; i++) {
                store_val(send, (size_t)p * count + i, dt, a2a_val(r, p, i));
                store_val(want, (size_t)p * count + i, dt, a2a_val(p, r, i));
            }
        res = ppu_alltoall(send, recv, count, dt, comm, NULL);
        break;
    case A2AV:
        memcpy(want, recv, rbytes); /* gaps stay untouched */
        for (int p = 0; p < n; p++) {
            for (size_t i = 0; i < vs[p]; i++)
                store_val(send, vsd[p] + i, dt, a2a_val(r, p, i));
            for (size_t i = 0; i < vr[p]; i++)
                store_val(want, vrd[p] + i, dt, a2a_val(p, r, i));
        }
        res = ppu_alltoallv(send, vs, vsd, recv, vr, vrd, dt, comm, NULL);
        break;
    case P2P: {
        /* a ring of sends that only completes as a group, plus self */
        int to = (r + 1) % n, from = (r + n - 1) % n;
        for (size_t i = 0; i < count; i++) {
            store_val(send, i, dt, a2a_val(r, to, i));
            store_val(want, i, dt, a2a_val(from, r, i));
        }
        char *self_in = malloc(nb + 1), *self_out = malloc(nb + 1);
        memset(self_in, 7, nb + 1);
        ppu_group_start();
        if (n > 1) {
            res = ppu_send(send, count, dt, to, comm, NULL);
            if (res == PPU_SUCCESS)
                res = ppu_recv(recv, count, dt, from, comm, NULL);
        }
        if (res == PPU_SUCCESS)
            res = ppu_send(self_in, count, dt, r, comm, NULL);
        if (res == PPU_SUCCESS)
            res = ppu_recv(self_out, count, dt, r, comm, NULL);
        ppu_result_t e = ppu_group_end();
        res = res != PPU_SUCCESS ? res : e;
        if (res == PPU_SUCCESS && memcmp(self_in, self_out, nb))
            bad++;
        free(self_in);
        free(self_out);
        check = n > 1 ? count : 0;
        break;
    }
    }
    if (res != PPU_SUCCESS) {
        fprintf(stderr, "rank %d %s: %s\n", r, what, ppu_get_last_error(comm));
        bad = 1;
    } else {
        bad += wrong_bytes(recv, want, check, es, what, r);
    }
    free(sraw);
    free(rraw);
    free(want);
    return bad;
}

static int has_op(int coll)
{
    return coll == AR || coll == RD || coll == RS;
}

static int has_inplace(int coll)
{
    return coll != A2A && coll != A2AV && coll != P2P;
}

static int coll_rank(ppu_comm_t comm, int r, int n, void *arg)
{
    const struct cc *c = arg;
    size_t bad = 0;
    for (int dt = 0; dt < PPU_NUM_DATATYPES; dt++) {
        if (!c->all_types && dt != PPU_FLOAT32 && dt != PPU_INT8)
            continue;
        for (int op = 0; op < (has_op(c->coll) ? PPU_NUM_REDOPS : 1); op++) {
            ppu_redop_t o = (ppu_redop_t)op;
            if (!c->all_types && has_op(c->coll))
                o = dt == PPU_INT8 ? PPU_MAX : PPU_SUM;
            if (!c->all_types && op > 0)
                break;
            for (int k = 0; k < c->ncounts; k++)
                for (int ip = 0; ip < (has_inplace(c->coll) ? 2 : 1); ip++) {
                    /* large counts: one datatype is enough */
                    if (c->counts[k] > 100000 && dt != PPU_FLOAT32)
                        continue;
                    bad += one(comm, r, n, c, (ppu_datatype_t)dt, o, c->counts[k], ip);
                }
        }
    }
    /* the same call again: from the plan cache, same answer */
    for (int k = 0; k < c->ncounts; k++)
        bad += one(comm, r, n, c, PPU_FLOAT32, PPU_SUM, c->counts[k], 0);
    return bad != 0;
}

static void run(int coll, int n, const char *algo, const char *proto, int all_types,
                size_t big, int root)
{
    setenv("PPU_ALGO", algo, 1);
    setenv("PPU_PROTO", proto, 1);
    setenv("PPU_TIMEOUT_MS", "30000", 1); /* a hang fails fast, with its message */
    struct cc c = {coll, all_types, {0, 1, 1023, big}, big ? 4 : 3, root};
    int failed = run_ranks(n, coll_rank, &c, 240);
    cr_expect_eq(failed, 0, "%s on %d ranks, PPU_ALGO=%s PPU_PROTO=%s: %d rank(s) failed",
                 names[coll], n, algo, proto, failed);
}

/* Every algorithm and protocol on 8 ranks (the full mesh): all datatypes
 * and ops, then a large count. */
Test(colls, allreduce_algorithms, .timeout = 600 * PPU_TEST_SLOWDOWN)
{
    const char *algos[] = {"ring", "tree", "oneshot", "twoshot"};
    for (int a = 0; a < 4; a++)
        for (int p = 0; p < 2; p++)
            run(AR, 8, algos[a], p ? "ll" : "simple", p == 0, p ? 0 : 300007, -1);
}

Test(colls, gather_scatter_alltoall_algorithms, .timeout = 600 * PPU_TEST_SLOWDOWN)
{
    const char *algos[] = {"ring", "pairwise"};
    for (int a = 0; a < 2; a++)
        for (int p = 0; p < 2; p++) {
            run(AG, 8, algos[a], p ? "ll" : "simple", p == 0, p ? 0 : 200003, -1);
            run(RS, 8, algos[a], p ? "ll" : "simple", p == 0, p ? 0 : 200003, -1);
            run(A2A, 8, algos[a], p ? "ll" : "simple", 0, p ? 0 : 100003, -1);
        }
}

Test(colls, rooted_and_p2p, .timeout = 600 * PPU_TEST_SLOWDOWN)
{
    for (int p = 0; p < 2; p++) {
        const char *pr = p ? "ll" : "simple";
        run(BC, 8, "", pr, p == 0, p ? 0 : 300007, 5);
        run(RD, 8, "", pr, p == 0, p ? 0 : 300007, 3);
        run(A2AV, 8, "", pr, 0, p ? 0 : 20011, -1);
        run(P2P, 8, "", pr, 0, p ? 0 : 300007, -1);
    }
}

/* Planner's own choices over rank counts 1..16 with primes; 16 ranks are
 * server16, not a full mesh. */
Test(colls, every_collective_many_rank_counts, .timeout = 900 * PPU_TEST_SLOWDOWN)
{
    const int ns[] = {1, 2, 3, 5, 7, 16};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int coll = 0; coll < NCOLL; coll++)
            run(coll, ns[k], "", "", 0, ns[k] >= 16 ? 4099 : 65537, ns[k] - 1);
}

/* On server16 (not a full mesh) the routed forms run when asked for the
 * mesh ones: twoshot and pairwise fall back (logged), results correct;
 * the tree's edges are the topology's links (breadth-first trees). */
Test(colls, non_mesh_fallbacks, .timeout = 600 * PPU_TEST_SLOWDOWN)
{
    run(AR, 16, "twoshot", "", 0, 0, -1);
    run(A2A, 16, "pairwise", "", 0, 0, -1);
    run(AR, 11, "tree", "ll", 0, 0, -1);
    run(AR, 16, "tree", "simple", 1, 70001, -1);
}

/* Split 8 ranks: odd ranks in reverse order (key), even ranks by rank,
 * rank 6 in none. Each new communicator reduces over its own ranks. */
static int split_rank(ppu_comm_t comm, int r, int n, void *arg)
{
    (void)arg;
    ppu_comm_t sub = NULL;
    int color = r == 6 ? PPU_SPLIT_NOCOLOR : r % 2;
    if (ppu_comm_split(comm, color, r % 2 ? -r : r, &sub) != PPU_SUCCESS) {
        fprintf(stderr, "rank %d split: %s\n", r, ppu_get_last_error(comm));
        return 1;
    }
    /* the parent still works */
    int32_t w = 1;
    int pbad = ppu_allreduce(&w, &w, 1, PPU_INT32, PPU_SUM, comm, NULL) != PPU_SUCCESS || w != 8;
    if (r == 6)
        return sub != NULL || pbad;
    int sr = -1, sn = 0, bad = 0;
    ppu_comm_user_rank(sub, &sr);
    ppu_comm_count(sub, &sn);
    int want_n = r % 2 ? 4 : 3, want_r = r % 2 ? (7 - r) / 2 : r / 2;
    bad |= sn != want_n || sr != want_r;
    int32_t v[3] = {r, 1, r * r};
    bad |= ppu_allreduce(v, v, 3, PPU_INT32, PPU_SUM, sub, NULL) != PPU_SUCCESS;
    int32_t s1 = r % 2 ? 1 + 3 + 5 + 7 : 0 + 2 + 4, s2 = r % 2 ? 1 + 9 + 25 + 49 : 0 + 4 + 16;
    bad |= v[0] != s1 || v[1] != want_n || v[2] != s2;
    /* a second split, of the child */
    bad |= pbad;
    ppu_comm_t half = NULL;
    bad |= ppu_comm_split(sub, sr % 2, 0, &half) != PPU_SUCCESS || !half;
    if (half) {
        bad |= ppu_barrier(half, NULL) != PPU_SUCCESS;
        ppu_comm_destroy(half);
    }
    if (bad)
        fprintf(stderr, "rank %d: sub rank %d of %d, sums %d %d %d: %s\n", r, sr, sn, v[0], v[1],
                v[2], ppu_get_last_error(sub));
    ppu_comm_destroy(sub);
    return bad;
}

Test(colls, comm_split, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_TIMEOUT_MS", "30000", 1);
    cr_expect_eq(run_ranks(8, split_rank, NULL, 100), 0);
}

/* One thread drives four communicators: the all-reduces only complete
 * when issued together, as a group; so do sends and receives between
 * them, on a stream too. Unbalanced group calls are refused. */
Test(colls, group_over_several_comms, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    enum { NC = 4, CNT = 100003 };
    setenv("PPU_TIMEOUT_MS", "30000", 1);
    ppu_comm_t comms[NC];
    cr_assert_eq(ppu_comm_init_all(comms, NC), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    float *b[NC], *in[NC];
    for (int r = 0; r < NC; r++) {
        b[r] = malloc(CNT * sizeof(float));
        in[r] = malloc(CNT * sizeof(float));
        for (int i = 0; i < CNT; i++)
            b[r][i] = (float)(r + 1), in[r][i] = (float)(r * 10 + i % 5);
    }
    cr_assert_eq(ppu_group_start(), PPU_SUCCESS);
    for (int r = 0; r < NC; r++)
        cr_assert_eq(ppu_allreduce(b[r], b[r], CNT, PPU_FLOAT32, PPU_SUM, comms[r], NULL),
                     PPU_SUCCESS);
    cr_assert_eq(ppu_group_end(), PPU_SUCCESS, "%s", ppu_get_last_error(comms[0]));
    for (int r = 0; r < NC; r++)
        cr_expect(b[r][0] == 10 && b[r][CNT - 1] == 10, "rank %d got %g", r, b[r][0]);
    ppu_stream_t s;
    cr_assert_eq(ppu_stream_create(&s), PPU_SUCCESS);
    ppu_group_start();
    for (int r = 0; r < NC; r++) {
        ppu_send(in[r], CNT, PPU_FLOAT32, (r + 1) % NC, comms[r], s);
        ppu_recv(b[r], CNT, PPU_FLOAT32, (r + NC - 1) % NC, comms[r], s);
    }
    cr_assert_eq(ppu_group_end(), PPU_SUCCESS);
    cr_assert_eq(ppu_stream_synchronize(s), PPU_SUCCESS, "%s", ppu_get_last_error(comms[0]));
    for (int r = 0; r < NC; r++) {
        int from = (r + NC - 1) % NC;
        cr_expect(b[r][0] == from * 10 && b[r][CNT - 1] == from * 10 + (CNT - 1) % 5,
                  "rank %d got %g", r, b[r][0]);
    }
    /* a group on two streams, and an unbalanced group_end */
    ppu_stream_t s2;
    ppu_stream_create(&s2);
    ppu_group_start();
    cr_expect_eq(ppu_allreduce(b[0], b[0], 1, PPU_FLOAT32, PPU_SUM, comms[0], s), PPU_SUCCESS);
    cr_expect_eq(ppu_allreduce(b[1], b[1], 1, PPU_FLOAT32, PPU_SUM, comms[1], s2),
                 PPU_INVALID_USAGE);
    cr_expect(strstr(ppu_get_last_error(comms[1]), "same stream"));
    cr_expect_eq(ppu_group_end(), PPU_SUCCESS); /* issues the first: it cannot complete alone */
    cr_expect_eq(ppu_group_end(), PPU_INVALID_USAGE);
    cr_expect(strstr(ppu_get_last_error(NULL), "no group is open"));
    /* comm 0's lone all-reduce waits for its peers: abort ends it */
    for (int r = 0; r < NC; r++)
        ppu_comm_abort(comms[r]);
    ppu_stream_synchronize(s);
    ppu_stream_destroy(s);
    ppu_stream_destroy(s2);
    for (int r = 0; r < NC; r++) {
        free(b[r]);
        free(in[r]);
    }
}

static void init_refused(const char *algo, const char *want)
{
    setenv("PPU_ALGO", algo, 1);
    ppu_unique_id_t id;
    cr_assert_eq(ppu_get_unique_id(&id), PPU_SUCCESS);
    ppu_comm_t c = NULL;
    cr_expect_eq(ppu_comm_init_rank(&c, 1, id, 0), PPU_INVALID_ARGUMENT);
    cr_expect(strstr(ppu_get_last_error(NULL), want), "got '%s'", ppu_get_last_error(NULL));
}

/* PPU_ALGO is never silently ignored (each Test is its own process, so
 * each reads the environment afresh). */
Test(colls, unknown_algorithm_refused) { init_refused("ring,bogus", "'bogus' is not one"); }
Test(colls, algorithm_foreign_to_collective_refused)
{
    init_refused("allreduce:twoshot;broadcast:tree", "no algorithm named for broadcast");
}
