/* Every collective x algorithm x protocol against independent references
 * (refval.h): datatypes and ops, counts 0/1/odd/large, in place and not,
 * unaligned buffers, roots other than 0, rank counts 1..16 with primes,
 * on the full mesh (every algorithm applies) and on server16 (where ranks
 * are not all one hop apart and only routed algorithms are chosen). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collcheck.h"
#include "ranks.h"
#include "../src/comm.h"

struct cc {
    int coll;
    int all_types; /* every datatype and op; else float32 sum and int8 max */
    size_t counts[4];
    int ncounts;
    int root;
};

static int coll_rank(ppu_comm_t comm, int r, int n, void *arg)
{
    const struct cc *c = arg;
    /* sendrecv: a ring of sends that only completes as a group, plus self */
    struct cc_case k = {.coll = c->coll, .root = c->root, .p2p = {1, 0}, .np2p = 2};
    size_t bad = 0;
    for (int dt = 0; dt < PPU_NUM_DATATYPES; dt++) {
        if (!c->all_types && dt != PPU_FLOAT32 && dt != PPU_INT8)
            continue;
        for (int op = 0; op < (cc_has_op(c->coll) ? PPU_NUM_REDOPS : 1); op++) {
            ppu_redop_t o = (ppu_redop_t)op;
            if (!c->all_types && cc_has_op(c->coll))
                o = dt == PPU_INT8 ? PPU_MAX : PPU_SUM;
            if (!c->all_types && op > 0)
                break;
            for (int j = 0; j < c->ncounts; j++)
                for (int ip = 0; ip < (cc_has_inplace(c->coll) ? 2 : 1); ip++) {
                    /* large counts: one datatype is enough */
                    if (c->counts[j] > 100000 && dt != PPU_FLOAT32)
                        continue;
                    k.dt = (ppu_datatype_t)dt;
                    k.op = o;
                    k.count = c->counts[j];
                    k.inplace = ip;
                    bad += cc_check(comm, r, n, &k);
                }
        }
    }
    /* the same call again: from the plan cache, same answer */
    k.dt = PPU_FLOAT32;
    k.op = PPU_SUM;
    k.inplace = 0;
    for (int j = 0; j < c->ncounts; j++) {
        k.count = c->counts[j];
        bad += cc_check(comm, r, n, &k);
    }
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
                 cc_name(coll), n, algo, proto, failed);
}

/* Every algorithm and protocol on 8 ranks (the full mesh): all datatypes
 * and ops, then a large count. */
Test(colls, allreduce_algorithms, .timeout = 600 * PPU_TEST_SLOWDOWN)
{
    const char *algos[] = {"ring", "tree", "oneshot", "twoshot"};
    for (int a = 0; a < 4; a++)
        for (int p = 0; p < 2; p++)
            run(CC_AR, 8, algos[a], p ? "ll" : "simple", p == 0, p ? 0 : 300007, -1);
}

/* Reductions bound for a send slot staged through a cached block
 * (exec.c reduce_into_slot), which the ranks on this 2-core host only use
 * at 2 ranks: forced on for 8, for the steps that receive, reduce and
 * send (ring all-reduce and reduce-scatter, the chain's reduce), all
 * datatypes and ops; 50,000 elements take every datatype over several
 * 16 KB blocks a step (1-byte types at 2 ranks), 300,007 float32 more. */
Test(colls, reductions_staged_for_slots, .timeout = 600 * PPU_TEST_SLOWDOWN)
{
    ppu_test_stage_slots = 1;
    run(CC_AR, 8, "ring", "simple", 1, 300007, -1);
    run(CC_AR, 8, "ring", "simple", 1, 50000, -1);
    run(CC_RS, 8, "ring", "simple", 1, 50000, -1);
    run(CC_RD, 8, "", "simple", 1, 50000, 3);
    run(CC_AR, 2, "ring", "simple", 1, 50000, -1);
    run(CC_AR, 2, "ring", "simple", 1, 300007, -1);
    ppu_test_stage_slots = -1;
}

Test(colls, gather_scatter_alltoall_algorithms, .timeout = 600 * PPU_TEST_SLOWDOWN)
{
    const char *algos[] = {"ring", "pairwise"};
    for (int a = 0; a < 2; a++)
        for (int p = 0; p < 2; p++) {
            run(CC_AG, 8, algos[a], p ? "ll" : "simple", p == 0, p ? 0 : 200003, -1);
            run(CC_RS, 8, algos[a], p ? "ll" : "simple", p == 0, p ? 0 : 200003, -1);
            run(CC_A2A, 8, algos[a], p ? "ll" : "simple", 0, p ? 0 : 100003, -1);
        }
}

Test(colls, rooted_and_p2p, .timeout = 600 * PPU_TEST_SLOWDOWN)
{
    for (int p = 0; p < 2; p++) {
        const char *pr = p ? "ll" : "simple";
        run(CC_BC, 8, "", pr, p == 0, p ? 0 : 300007, 5);
        run(CC_RD, 8, "", pr, p == 0, p ? 0 : 300007, 3);
        run(CC_A2AV, 8, "", pr, 0, p ? 0 : 20011, -1);
        run(CC_P2P, 8, "", pr, 0, p ? 0 : 300007, -1);
    }
}

/* Planner's own choices over rank counts 1..16 with primes; 16 ranks are
 * server16, not a full mesh. */
Test(colls, every_collective_many_rank_counts, .timeout = 900 * PPU_TEST_SLOWDOWN)
{
    const int ns[] = {1, 2, 3, 5, 7, 16};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int coll = 0; coll < CC_NCOLL; coll++)
            run(coll, ns[k], "", "", 0, ns[k] >= 16 ? 4099 : 65537, ns[k] - 1);
}

/* On server16 (not a full mesh) the routed forms run when asked for the
 * mesh ones: twoshot and pairwise fall back (logged), results correct;
 * the tree's edges are the topology's links (breadth-first trees). */
Test(colls, non_mesh_fallbacks, .timeout = 600 * PPU_TEST_SLOWDOWN)
{
    run(CC_AR, 16, "twoshot", "", 0, 0, -1);
    run(CC_A2A, 16, "pairwise", "", 0, 0, -1);
    run(CC_AR, 11, "tree", "ll", 0, 0, -1);
    run(CC_AR, 16, "tree", "simple", 1, 70001, -1);
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
