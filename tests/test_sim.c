/* The timing model (sim/): its bytes against real runs, link by link, and
 * its times against closed forms on uniform links and physical bounds. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan_ctx.h"
#include "ranks.h"
#include "sim.h"
#include "topo.h"

/* ---- bytes: the model's --stats against PPU_SIM_STATS_FILE ---- */

struct one_call {
    enum ppu_coll coll;
    size_t count; /* per the API */
};

static int run_one(ppu_comm_t comm, int rank, int n, void *arg)
{
    const struct one_call *c = arg;
    size_t in = c->count, out = c->count;
    if (c->coll == PPU_COLL_ALLTOALL)
        in = out = c->count * (size_t)n;
    float *a = calloc(in ? in : 1, sizeof *a), *b = calloc(out ? out : 1, sizeof *b);
    for (size_t i = 0; i < in; i++)
        a[i] = (float)(rank + (int)(i % 7));
    ppu_result_t r = c->coll == PPU_COLL_ALLTOALL
                         ? ppu_alltoall(a, b, c->count, PPU_FLOAT32, comm, NULL)
                         : ppu_allreduce(a, b, c->count, PPU_FLOAT32, PPU_SUM, comm, NULL);
    free(a);
    free(b);
    return r != PPU_SUCCESS;
}

struct row {
    int src, dst;
    unsigned long long bytes, msgs;
    char kind[8];
};

static int cmp_row(const void *x, const void *y)
{
    const struct row *a = x, *b = y;
    return a->src != b->src ? (a->src > b->src) - (a->src < b->src)
                            : (a->dst > b->dst) - (a->dst < b->dst);
}

static int read_rows(FILE *f, struct row *rows, int max)
{
    int n = 0;
    while (n < max && fscanf(f, "%d %d %llu %llu %7s", &rows[n].src, &rows[n].dst, &rows[n].bytes,
                             &rows[n].msgs, rows[n].kind) == 5)
        n++;
    return n;
}

#define MAX_ROWS 4096

/* Run the call on nranks real ranks (preset wiring, nservers simulated
 * servers, PPU_ALGO=algo, PPU_PROTO=simple), and replay it in the model;
 * the per-link lines must be the same. */
static void stats_match(const char *preset, int nservers, int nranks, const char *algo_env,
                        int algo, struct one_call call)
{
    char pat[96], sv[16];
    snprintf(pat, sizeof pat, "/tmp/ppu_simstats_%d.%%r", (int)getpid());
    snprintf(sv, sizeof sv, "%d", nservers);
    setenv("PPU_SIM_STATS_FILE", pat, 1);
    setenv("PPU_SIM_TOPO", preset, 1);
    setenv("PPU_SIM_SERVERS", sv, 1);
    setenv("PPU_ALGO", algo_env, 1);
    setenv("PPU_PROTO", "simple", 1);
    cr_assert_eq(run_ranks(nranks, run_one, &call, 200), 0, "the real run failed");
    unsetenv("PPU_SIM_STATS_FILE");

    static struct row real[MAX_ROWS], model[MAX_ROWS];
    int nreal = 0;
    for (int r = 0; r < nranks; r++) {
        char path[128];
        snprintf(path, sizeof path, "/tmp/ppu_simstats_%d.%d", (int)getpid(), r);
        FILE *f = fopen(path, "r");
        cr_assert(f, "no stats file %s", path);
        nreal += read_rows(f, real + nreal, MAX_ROWS - nreal);
        fclose(f);
        unlink(path);
    }
    qsort(real, (size_t)nreal, sizeof *real, cmp_row);

    char err[512];
    struct ppu_cluster cl;
    cr_assert_eq(ppu_cluster_sim(&cl, preset, nservers, nranks / nservers, err, sizeof err),
                 PPU_SUCCESS, "%s", err);
    struct ppu_plan_settings set;
    cr_assert_eq(ppu_plan_settings_read(&set, 1, err, sizeof err), PPU_SUCCESS, "%s", err);
    struct sim_params p;
    sim_params_default(&p);
    struct sim S;
    cr_assert_eq(sim_init(&S, &cl, cl.name, &set, &p, err, sizeof err), 0, "%s", err);
    FILE *f = tmpfile();
    struct ppu_call c = {call.coll, call.count, PPU_FLOAT32, PPU_SUM, 0, 0, NULL};
    struct sim_result res;
    cr_assert_eq(sim_run(&S, &c, algo, PPU_PROTO_SIMPLE, &res, f), 0, "%s", res.why);
    rewind(f);
    int nmodel = read_rows(f, model, MAX_ROWS);
    fclose(f);
    cr_expect_eq(nmodel, nreal, "the model has %d link lines, the real run %d", nmodel, nreal);
    unsigned long long total = 0;
    for (int i = 0; i < nreal && i < nmodel; i++) {
        cr_expect(real[i].src == model[i].src && real[i].dst == model[i].dst &&
                      real[i].bytes == model[i].bytes && real[i].msgs == model[i].msgs &&
                      !strcmp(real[i].kind, model[i].kind),
                  "line %d: real %d->%d %llu B %llu msgs %s, model %d->%d %llu B %llu msgs %s", i,
                  real[i].src, real[i].dst, real[i].bytes, real[i].msgs, real[i].kind,
                  model[i].src, model[i].dst, model[i].bytes, model[i].msgs, model[i].kind);
        total += real[i].bytes;
    }
    cr_expect(total > 0, "no bytes moved");
    sim_free(&S);
    ppu_cluster_free(&cl);
    unsetenv("PPU_SIM_SERVERS");
    unsetenv("PPU_SIM_TOPO");
    unsetenv("PPU_ALGO");
    unsetenv("PPU_PROTO");
}

Test(sim_bytes, twoshot_fullmesh8_64MB, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    stats_match("fullmesh8", 1, 8, "allreduce:twoshot", PPU_ALGO_TWOSHOT,
                (struct one_call){PPU_COLL_ALLREDUCE, (64u << 20) / sizeof(float)});
}

Test(sim_bytes, ring_server16_16_ranks, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    stats_match("server16", 1, 16, "allreduce:ring", PPU_ALGO_RING,
                (struct one_call){PPU_COLL_ALLREDUCE, 1000003});
}

Test(sim_bytes, hier_2_servers_of_4_over_tcp, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    stats_match("fullmesh8", 2, 8, "allreduce:hier", PPU_ALGO_HIER,
                (struct one_call){PPU_COLL_ALLREDUCE, 1 << 20});
}

Test(sim_bytes, alltoall_8_ranks, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    stats_match("fullmesh8", 1, 8, "alltoall:pairwise", PPU_ALGO_PAIRWISE,
                (struct one_call){PPU_COLL_ALLTOALL, 100003});
}

/* ---- times against closed forms on uniform links ---- */

struct model_run {
    struct ppu_cluster cl;
    struct sim S;
};

/* PPU_FIFO_SLOTS for the next model_open (0: the default) */
static int g_fifo_slots;

/* Uniform links of g GB/s and a us latency (ICN and NIC alike), memory
 * and protocol costs taken out, so only the links count. chunk: bytes a
 * message (0: the default). */
static void model_open(struct model_run *m, const char *preset, int nservers, int per,
                       int channels, size_t chunk, double g, double a)
{
    char err[512];
    cr_assert_eq(ppu_cluster_sim(&m->cl, preset, nservers, per, err, sizeof err), PPU_SUCCESS,
                 "%s", err);
    struct ppu_plan_settings set;
    cr_assert_eq(ppu_plan_settings_read(&set, 1, err, sizeof err), PPU_SUCCESS, "%s", err);
    set.nchannels = channels;
    if (chunk) {
        set.chunk_bytes = set.peer_slot = chunk;
    }
    if (g_fifo_slots)
        set.fifo_slots = g_fifo_slots;
    struct sim_params p;
    sim_params_default(&p);
    p.icn_gbps = p.nic_gbps = g;
    p.icn_us = p.nic_us = a;
    p.hop_us = 0;
    p.mem_gbps = 1e9;
    p.simple_us = 0;
    cr_assert_eq(sim_init(&m->S, &m->cl, m->cl.name, &set, &p, err, sizeof err), 0, "%s", err);
}

static void model_close(struct model_run *m)
{
    sim_free(&m->S);
    ppu_cluster_free(&m->cl);
}

static struct sim_result model_time(struct model_run *m, enum ppu_coll coll, size_t count, int algo)
{
    struct ppu_call c = {coll, count, PPU_FLOAT32, PPU_SUM, 0, 0, NULL};
    struct sim_result r;
    cr_assert_eq(sim_run(&m->S, &c, algo, PPU_PROTO_SIMPLE, &r, NULL), 0, "%s", r.why);
    cr_expect(!r.skipped, "%s", r.why);
    /* never faster than the links allow */
    cr_expect(r.time_us >= r.bound_bw_us * (1 - 1e-9) && r.time_us >= r.bound_lat_us * (1 - 1e-9),
              "%s: %.3f us is below a physical bound (busiest %s %.3f us, latency %.3f us)",
              ppu_algo_name(algo), r.time_us, r.busiest, r.bound_bw_us, r.bound_lat_us);
    return r;
}

static void expect_close(double got, double want, double tol, const char *what)
{
    cr_expect(fabs(got - want) <= tol * want, "%s: model %.3f us, closed form %.3f us (%.2f%%)",
              what, got, want, 100 * (got - want) / want);
}

#define G 50.0 /* GB/s */
#define A 2.0  /* us */
#define BW (G * 1e3) /* bytes per us */

/* One channel, one message a block: 2(N-1)(alpha + S/(N beta)). */
Test(sim_time, ring_allreduce_closed_form)
{
    struct model_run m;
    int n = 8;
    size_t S = 64u << 20;
    model_open(&m, "fullmesh8", 1, n, 1, S, G, A);
    struct sim_result r = model_time(&m, PPU_COLL_ALLREDUCE, S / 4, PPU_ALGO_RING);
    expect_close(r.time_us, 2.0 * (n - 1) * (A + (double)S / n / BW), 0.01, "ring all-reduce");
    model_close(&m);
    /* with 256 KB messages and one chunk in flight (PPU_FIFO_SLOTS=2):
     * each message waits for its block's previous hop, so the chunks of a
     * block go round one after another (sim/README.md, finding 1) */
    g_fifo_slots = 2;
    model_open(&m, "fullmesh8", 1, n, 1, 256 << 10, G, A);
    g_fifo_slots = 0;
    r = model_time(&m, PPU_COLL_ALLREDUCE, S / 4, PPU_ALGO_RING);
    double chunks = (double)S / n / (256 << 10);
    double serial = chunks * 2.0 * (n - 1) * (A + (256 << 10) / BW);
    expect_close(r.time_us, serial, 0.01, "ring all-reduce, chunked, one chunk in flight");
    model_close(&m);
    /* two chunks in flight (the default): the link, not the round trip,
     * sets the pace; 2,563 us against 3,245 one at a time, and the link
     * bound 2,349 (model_time checks the bound) */
    model_open(&m, "fullmesh8", 1, n, 1, 256 << 10, G, A);
    r = model_time(&m, PPU_COLL_ALLREDUCE, S / 4, PPU_ALGO_RING);
    cr_expect(r.time_us < 0.85 * serial, "ring all-reduce, two chunks in flight: %.3f us, one "
              "at a time %.3f us", r.time_us, serial);
    model_close(&m);
}

/* The double binary tree on 2 ranks: each is the root of one tree and a
 * leaf of the other. Each tree's reduce and broadcast are channels of
 * their own, tree t on lane t (sim/README.md, finding 2), so the link
 * 1 -> 0 carries tree 0's reduce (lane 0) and tree 1's broadcast (lane 1)
 * back to back and nothing waits for a chunk's round trip: C chunks of c
 * bytes a tree take the link's 2 C c / beta and the last one's hop,
 * 2 C w + A (w = c / beta). Before the lanes, with both trees' reduce and
 * broadcast in one channel, it was C (2A + 4w) + A: 801 us here against
 * 337. */
Test(sim_time, tree_closed_form)
{
    struct model_run m;
    size_t c = 256 << 10, S = 16u << 20; /* 32 chunks a tree */
    model_open(&m, "fullmesh8", 1, 2, 0, c, G, A);
    struct sim_result r = model_time(&m, PPU_COLL_ALLREDUCE, S / 4, PPU_ALGO_TREE);
    double w = (double)c / BW, C = (double)S / 2 / (double)c;
    expect_close(r.time_us, 2 * C * w + A, 0.01, "tree all-reduce, 2 ranks");
    /* A call of one message goes on tree 0 alone: up and down,
     * 2 (A + c / beta), not the two trees' 3 A + 4 (c / 2) / beta. */
    r = model_time(&m, PPU_COLL_ALLREDUCE, c / 4, PPU_ALGO_TREE);
    expect_close(r.time_us, 2 * (A + w), 0.01, "tree all-reduce of one message, 2 ranks");
    model_close(&m);
}

/* Two-shot on a full mesh: every rank sends a 1/N share to each peer at
 * once, reduces, and sends the result to each peer: two hops of S/N on
 * every link at once, 2(alpha + S/(N beta)) in one message a share. In
 * C = S/(N c) messages of c bytes: a rank takes the results on a channel
 * of its own (lane 1), so chunk j+1's first shot goes out as soon as
 * chunk j's second has, and each link carries a chunk's two messages back
 * to back: C (alpha + 2 c/beta) + alpha, the last result's hop. (With the
 * results taken in the one channel the chunks went one after another,
 * 2 C (alpha + c/beta): 2,366 us here against 1,856.) */
Test(sim_time, twoshot_closed_form)
{
    struct model_run m;
    int n = 8;
    size_t S = 256u << 20;
    model_open(&m, "fullmesh8", 1, n, 0, S / n, G, A);
    struct sim_result r = model_time(&m, PPU_COLL_ALLREDUCE, S / 4, PPU_ALGO_TWOSHOT);
    expect_close(r.time_us, 2.0 * (A + (double)S / n / BW), 0.01, "two-shot");
    model_close(&m);
    model_open(&m, "fullmesh8", 1, n, 0, 0, G, A);
    double c = (double)m.S.ctx.set.peer_slot;
    r = model_time(&m, PPU_COLL_ALLREDUCE, S / 4, PPU_ALGO_TWOSHOT);
    expect_close(r.time_us, ((double)S / n / c) * (A + 2 * c / BW) + A, 0.01, "two-shot, chunked");
    model_close(&m);
}

/* Hierarchical: a ring reduce-scatter inside each server (L-1 hops of
 * S/L), a ring all-reduce of the S/L shard along the rail (2(ns-1) hops
 * of S/(L ns)), a ring all-gather inside (L-1 hops of S/L); one message a
 * block. */
Test(sim_time, hier_closed_form)
{
    struct model_run m;
    int ns = 4, L = 4;
    size_t S = 64u << 20;
    model_open(&m, "fullmesh8", ns, L, 0, S, G, A);
    struct sim_result r = model_time(&m, PPU_COLL_ALLREDUCE, S / 4, PPU_ALGO_HIER);
    /* inside, K link-disjoint rings side by side, a piece of every part
     * each (a 4-chip full mesh holds 2: its 12 directed links do not
     * split into 3 rings) */
    int K = m.S.ctx.hier_nrings;
    cr_assert_eq(K, 2, "rings inside a server of fullmesh8 x 4: %d", K);
    double want = 2.0 * (L - 1) * (A + (double)S / L / K / BW) +
                  2.0 * (ns - 1) * (A + (double)S / L / ns / BW);
    expect_close(r.time_us, want, 0.01, "hierarchical all-reduce");
    cr_expect_eq(r.fold, 1, "4 identical servers fold");
    model_close(&m);
}

/* Folding changes nothing but the work: the same time as every rank. */
Test(sim_time, fold_is_exact)
{
    char err[512];
    struct ppu_cluster cl;
    cr_assert_eq(ppu_cluster_sim(&cl, "server16", 8, 16, err, sizeof err), PPU_SUCCESS);
    struct ppu_plan_settings set;
    cr_assert_eq(ppu_plan_settings_read(&set, 1, err, sizeof err), PPU_SUCCESS);
    struct sim_params p;
    sim_params_default(&p);
    const int algos[] = {PPU_ALGO_RING, PPU_ALGO_HIER};
    const enum ppu_coll colls[] = {PPU_COLL_ALLREDUCE, PPU_COLL_ALLGATHER, PPU_COLL_ALLTOALL};
    for (size_t a = 0; a < 2; a++)
        for (size_t k = 0; k < 3; k++) {
            double t[2];
            int folded = 0;
            for (int fold = 0; fold < 2; fold++) {
                p.fold = fold;
                struct sim S;
                cr_assert_eq(sim_init(&S, &cl, cl.name, &set, &p, err, sizeof err), 0, "%s", err);
                struct ppu_call c = {colls[k], 1 << 16, PPU_FLOAT32, PPU_SUM, 0, 0, NULL};
                struct sim_result r;
                cr_assert_eq(sim_run(&S, &c, algos[a], PPU_PROTO_SIMPLE, &r, NULL), 0, "%s",
                             r.why);
                t[fold] = r.time_us;
                if (fold)
                    folded = r.fold;
                sim_free(&S);
            }
            cr_expect_eq(folded, 1, "%s %s should fold", ppu_algo_name(algos[a]),
                         ppu_coll_name(colls[k]));
            cr_expect(fabs(t[0] - t[1]) <= 1e-9 * t[0], "%s %s: %.6f us folded, %.6f us not",
                      ppu_algo_name(algos[a]), ppu_coll_name(colls[k]), t[1], t[0]);
        }
    ppu_cluster_free(&cl);
}

/* One all-reduce replayed unfolded (0) and folded (1): times, per-link
 * bytes (--stats text, to free) and the folded replay's result. */
struct fold_pair {
    double t[2];
    char *text[2];
    struct sim_result folded;
};

static void replay_both(const struct ppu_cluster *cl, const struct ppu_plan_settings *set,
                        struct sim_params p, int algo, size_t count, struct fold_pair *o)
{
    char err[512];
    for (int fold = 0; fold < 2; fold++) {
        p.fold = fold;
        struct sim S;
        cr_assert_eq(sim_init(&S, cl, cl->name, set, &p, err, sizeof err), 0, "%s", err);
        struct ppu_call c = {PPU_COLL_ALLREDUCE, count, PPU_FLOAT32, PPU_SUM, 0, 0, NULL};
        struct sim_result r;
        size_t len;
        FILE *f = open_memstream(&o->text[fold], &len);
        cr_assert(f);
        cr_assert_eq(sim_run(&S, &c, algo, PPU_PROTO_SIMPLE, &r, f), 0, "%s", r.why);
        fclose(f);
        o->t[fold] = r.time_us;
        if (fold)
            o->folded = r;
        sim_free(&S);
    }
}

/* A ring all-reduce of fewer elements than ranks: the blocks that hold an
 * element repeat every n / count ranks (src/sched_ring.c spreads them), so
 * the replay folds by blocks of that many servers, and the time and every
 * link's bytes are those of replaying every rank. 32 servers of 16, one
 * channel: 2 and 8 elements repeat every 16 and 4 servers, 32 every
 * server, 37 over no block of servers short of all 32. */
Test(sim_time, sparse_ring_folds_by_servers)
{
    char err[512];
    struct ppu_cluster cl;
    cr_assert_eq(ppu_cluster_sim(&cl, "server16", 32, 16, err, sizeof err), PPU_SUCCESS);
    struct ppu_plan_settings set;
    cr_assert_eq(ppu_plan_settings_read(&set, 1, err, sizeof err), PPU_SUCCESS);
    set.nchannels = 1;
    struct sim_params p;
    sim_params_default(&p);
    const struct {
        size_t count;
        int servers; /* the block the fold replays */
    } cases[] = {{2, 16}, {8, 4}, {32, 1}, {37, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct fold_pair o;
        replay_both(&cl, &set, p, PPU_ALGO_RING, cases[k].count, &o);
        double *t = o.t;
        char **text = o.text;
        int by = o.folded.fold_by, P = o.folded.fold_servers;
        if (cases[k].servers) {
            cr_expect_eq(by, FOLD_SERVER, "%zu elements: folded by servers", cases[k].count);
            cr_expect_eq(P, cases[k].servers, "%zu elements: folded by %d server(s), not %d",
                         cases[k].count, P, cases[k].servers);
        } else {
            cr_expect_eq(by, FOLD_NONE, "%zu elements repeat over no block of servers",
                         cases[k].count);
        }
        cr_expect(fabs(t[0] - t[1]) <= 1e-9 * t[0], "%zu elements: %.6f us folded, %.6f us not",
                  cases[k].count, t[1], t[0]);
        cr_expect_str_eq(text[1], text[0], "%zu elements: other bytes on the links folded",
                         cases[k].count);
        free(text[0]);
        free(text[1]);
    }
    ppu_cluster_free(&cl);
}

/* Folding by rails (chip j of every server is chip 0 turned j places round
 * its circulant server) changes nothing but the work either: the same
 * time and the same bytes on every link as replaying every rank. */
Test(sim_time, rail_fold_is_exact)
{
    char err[512];
    struct ppu_plan_settings set;
    cr_assert_eq(ppu_plan_settings_read(&set, 1, err, sizeof err), PPU_SUCCESS);
    /* ICN links of their own, and chips whose ports share switch planes */
    const struct {
        const char *wiring;
        int servers;
    } clusters[] = {{"server16", 8}, {"switch16", 4}};
    for (size_t w = 0; w < 2; w++) {
        struct ppu_cluster cl;
        cr_assert_eq(ppu_cluster_sim(&cl, clusters[w].wiring, clusters[w].servers, 16, err,
                                     sizeof err),
                     PPU_SUCCESS);
        struct sim_params p;
        sim_params_default(&p);
        p.switch_planes = cl.stopo[0]->switch_planes;
        const struct {
            int algo;
            size_t count;
            int by; /* the fold expected */
        } cases[] = {
            {PPU_ALGO_HIER_TREE, 1 << 16, FOLD_RAIL},
            {PPU_ALGO_HIER_TREE, 1008, FOLD_RAIL},
            {PPU_ALGO_HIER_TREE, 1000, FOLD_RAIL}, /* parts of 62 and 63: fold 2, not exact */
            {PPU_ALGO_HIER_TREE, 3 << 20, FOLD_RAIL},
            /* 3 elements a chip, fewer than servers: no server fold */
            {PPU_ALGO_HIER, 48, FOLD_RAIL},
            {PPU_ALGO_TREE, 1 << 16, FOLD_NONE},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            struct fold_pair o;
            replay_both(&cl, &set, p, cases[i].algo, cases[i].count, &o);
            double *t = o.t;
            char **text = o.text;
            int by = o.folded.fold_by, kind = o.folded.fold;
            const char *what = ppu_algo_name(cases[i].algo);
            if (cases[i].count % 16) { /* said to be approximate, and close */
                cr_expect_eq(kind, 2, "%s %zu: uneven parts must read fold 2", what,
                             cases[i].count);
                cr_expect(fabs(t[0] - t[1]) <= 0.01 * t[0], "%s %zu: %.6f us folded, %.6f us not",
                          what, cases[i].count, t[1], t[0]);
                free(text[0]);
                free(text[1]);
                continue;
            }
            cr_expect_eq(by, cases[i].by, "%s %s %zu: folded by %d, not %d", clusters[w].wiring,
                         what, cases[i].count, by, cases[i].by);
            cr_expect(fabs(t[0] - t[1]) <= 1e-9 * t[0], "%s %s %zu: %.6f us folded, %.6f us not",
                      clusters[w].wiring, what, cases[i].count, t[1], t[0]);
            cr_expect_str_eq(text[1], text[0], "%s %s %zu: per-link bytes differ when folded",
                             clusters[w].wiring, what, cases[i].count);
            free(text[0]);
            free(text[1]);
        }
        ppu_cluster_free(&cl);
    }
}

/* Chips whose ports differ (a port's speed comes from one of its chip's
 * links: here links one place apart are twice as fast, so chip 0's port
 * and chip 5's are not alike) must not fold by rails: the folded replay
 * would push every chip's traffic through chip 0's port. */
Test(sim_time, rail_fold_needs_alike_chips)
{
    char err[512];
    struct ppu_cluster cl;
    cr_assert_eq(ppu_cluster_sim(&cl, "server16", 4, 16, err, sizeof err), PPU_SUCCESS);
    struct ppu_topo *t = cl.own; /* every server's wiring */
    cr_assert(t && cl.stopo[0] == t);
    for (int a = 0; a < 16; a++) {
        t->gbps[a][(a + 1) % 16] = 2 * t->link_gbps;
        t->gbps[(a + 1) % 16][a] = 2 * t->link_gbps;
    }
    struct ppu_plan_settings set;
    cr_assert_eq(ppu_plan_settings_read(&set, 1, err, sizeof err), PPU_SUCCESS);
    struct sim_params p;
    sim_params_default(&p);
    p.switch_planes = 2;
    double tm[2];
    int by = -1;
    for (int fold = 0; fold < 2; fold++) {
        p.fold = fold;
        struct sim S;
        cr_assert_eq(sim_init(&S, &cl, cl.name, &set, &p, err, sizeof err), 0, "%s", err);
        struct ppu_call c = {PPU_COLL_ALLREDUCE, 3 << 20, PPU_FLOAT32, PPU_SUM, 0, 0, NULL};
        struct sim_result r;
        cr_assert_eq(sim_run(&S, &c, PPU_ALGO_HIER_TREE, PPU_PROTO_SIMPLE, &r, NULL), 0, "%s",
                     r.why);
        tm[fold] = r.time_us;
        if (fold)
            by = r.fold_by;
        sim_free(&S);
    }
    cr_expect_neq(by, FOLD_RAIL, "chips with unlike ports folded by rails");
    cr_expect(fabs(tm[0] - tm[1]) <= 1e-9 * tm[0], "%.6f us folded, %.6f us not", tm[1], tm[0]);
    ppu_cluster_free(&cl);
}

/* More bandwidth never makes a call slower, and the model's times sit on
 * or above both physical bounds for every algorithm (model_time). */
Test(sim_time, monotone_in_bandwidth)
{
    const int algos[] = {PPU_ALGO_RING, PPU_ALGO_TREE, PPU_ALGO_ONESHOT, PPU_ALGO_TWOSHOT};
    for (size_t a = 0; a < 4; a++) {
        double prev = INFINITY;
        for (double g = 10; g <= 160; g *= 2) {
            struct model_run m;
            model_open(&m, "fullmesh8", 1, 8, 0, 0, g, A);
            struct sim_result r = model_time(&m, PPU_COLL_ALLREDUCE, 1 << 20, algos[a]);
            cr_expect(r.time_us <= prev * (1 + 1e-9), "%s: %.2f us at %g GB/s, %.2f before",
                      ppu_algo_name(algos[a]), r.time_us, g, prev);
            prev = r.time_us;
            model_close(&m);
        }
    }
}
