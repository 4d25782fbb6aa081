/* The schedule checker: for every collective and every algorithm that
 * applies, every rank's schedule from the pure planner (ppu_plan_build on
 * one plan context, as each rank would build it), run together by the
 * simulator (schedsim.h) with no transport. It checks that sends and
 * receives match on every directed link (count, size, order; no deadlock
 * with the real slot counts), and follows every output element back to its
 * contributions: inputs are 64-bit hashes of (rank, index) and the op is
 * wrapping addition, so a reduction that misses a rank or counts one
 * twice, or a block put in the wrong place, changes the result.
 *
 * Shapes: 1 to 1,024 ranks, 1 to 64 servers, uneven and interleaved
 * servers, links down. Nothing here runs a communicator: the 1,024-rank
 * shapes take a second or two. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_ctx.h"
#include "schedsim.h"

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Rank r's input element i (for all-to-all, i covers every block). */
static uint64_t val(int r, size_t i)
{
    return mix((uint64_t)(uint32_t)r << 40 ^ (uint64_t)i ^ 0x243f6a8885a308d3ull);
}

struct shape {
    const char *name;
    int nservers;
    const int *sizes; /* ranks per server (NULL: n / nservers each) */
    int n;
    const char *preset, *down; /* each server's wiring, links down on it */
    int interleave;            /* server of rank r: r % nservers (else blocks) */
};

static const int sizes_17[] = {16, 1};
static const int sizes_uneven[] = {8, 4, 3};

static const struct shape shapes[] = {
    {"1", 1, NULL, 1, "fullmesh8", "", 0},
    {"2", 1, NULL, 2, "fullmesh8", "", 0},
    {"3", 1, NULL, 3, "fullmesh8", "", 0},
    {"7 down 0-3,2-5", 1, NULL, 7, "fullmesh8", "0-3,2-5", 0},
    {"8 fullmesh", 1, NULL, 8, "fullmesh8", "", 0},
    {"8 ring8", 1, NULL, 8, "ring8", "", 0},
    {"8 = 2x4", 2, NULL, 8, "fullmesh8", "", 0},
    {"8 = 4x2 interleaved", 4, NULL, 8, "fullmesh8", "", 1},
    {"16 server16", 1, NULL, 16, "server16", "", 0},
    {"16 hypercube down 0-1", 1, NULL, 16, "hypercube16", "0-1", 0},
    {"16 = 2x8", 2, NULL, 16, "fullmesh8", "", 0},
    {"16 = 16x1", 16, NULL, 16, "fullmesh8", "", 0},
    {"17 = 16+1", 2, sizes_17, 17, "server16", "", 0},
    {"15 = 8+4+3", 3, sizes_uneven, 15, "fullmesh8", "", 0},
    {"64 = 4x16 down 0-1", 4, NULL, 64, "server16", "0-1", 0},
    {"64 = 8x8 interleaved", 8, NULL, 64, "fullmesh8", "", 1},
    {"64 = 64x1", 64, NULL, 64, "fullmesh8", "", 0},
    {"256 = 16x16", 16, NULL, 256, "server16", "", 0},
    {"256 = 32x8", 32, NULL, 256, "fullmesh8", "", 0},
    {"1024 = 64x16", 64, NULL, 1024, "server16", "", 0},
};

/* FIFO depth of ring and peer links: the defaults, or the least the
 * /dev/shm budget gives a link (connect.c shm_budget; peer 0: that floor
 * for the shape); and the plan's PPU_FIFO_SLOTS, which sets how many
 * chunks a ring keeps in flight */
static int g_ring_slots = 8, g_peer_slots = 4, g_plan_slots = 8;

struct world {
    struct ppu_plan_ctx x;
    struct ppu_topo *topo; /* one per server */
};

static void make_world(const struct shape *sh, struct world *w)
{
    int n = sh->n, ns = sh->nservers;
    int *server_of = malloc(sizeof(int) * (size_t)n);
    const struct ppu_topo **stopo = malloc(sizeof *stopo * (size_t)ns);
    w->topo = calloc((size_t)ns, sizeof *w->topo);
    cr_assert(server_of && stopo && w->topo);
    for (int s = 0, r = 0; s < ns; s++) {
        int size = sh->sizes ? sh->sizes[s] : n / ns;
        char err[256];
        cr_assert_eq(ppu_topo_sim_preset(sh->preset, size, &w->topo[s], err, sizeof err),
                     PPU_SUCCESS, "%s: %s", sh->name, err);
        ppu_topo_restrict(&w->topo[s], size);
        if (*sh->down)
            cr_assert_eq(ppu_topo_set_down(&w->topo[s], sh->down, err, sizeof err), PPU_SUCCESS,
                         "%s: %s", sh->name, err);
        stopo[s] = &w->topo[s];
        for (int i = 0; i < size && !sh->interleave; i++)
            server_of[r++] = 100 + 7 * s; /* any ids name servers */
    }
    for (int r = 0; r < n && sh->interleave; r++)
        server_of[r] = r % ns;
    struct ppu_plan_settings set;
    memset(&set, 0, sizeof set);
    set.chunk_bytes = 4096; /* 512 elements: several chunks a block on small shapes */
    set.peer_slot = 4096;
    set.ll_max = 1024;
    set.oneshot_max = 1 << 20;
    set.channel_min_bytes = 0;
    set.fifo_slots = g_plan_slots;
    set.peer_slots = 4;
    struct ppu_model m;
    ppu_plan_model_sim(&m, 1);
    char err[512];
    cr_assert_eq(ppu_plan_ctx_init(&w->x, n, server_of, stopo, sh->preset, &set, &m, err,
                                   sizeof err),
                 PPU_SUCCESS, "%s: %s", sh->name, err);
    free(server_of);
    free(stopo);
}

/* Rings never use an ICN link that is down (a link between servers is
 * the network's). */
static void check_rings(const struct shape *sh, const struct world *w)
{
    const struct ppu_plan_ctx *x = &w->x;
    int n = x->nranks;
    for (int c = 0; c < x->nchannels && n > 1; c++)
        for (int i = 0; i < n; i++) {
            int a = x->rings[c * n + i], b = x->rings[c * n + (i + 1) % n];
            if (x->server[a] != x->server[b])
                continue;
            const struct ppu_topo *t = &w->topo[x->server[a]];
            cr_expect(ppu_topo_up(t, x->local[a], x->local[b]),
                      "%s: ring %d uses link %d->%d, which is not up", sh->name, c, a, b);
        }
}

enum { IN_PLACE = 1 };

struct tally {
    int cases;
    long long steps;
};

/* Build every rank's schedule for one call and algorithm, run them, check
 * the outputs against the reference. */
static void run_case(const struct shape *sh, const struct world *w, enum ppu_coll coll,
                     size_t count, int root, int algo, int proto, int inplace, struct tally *tl)
{
    const struct ppu_plan_ctx *x = &w->x;
    int n = x->nranks;
    struct ppu_sched *s = calloc((size_t)n, sizeof *s);
    const struct ppu_sched **sp = calloc((size_t)n, sizeof *sp);
    uint64_t **in = calloc((size_t)n, sizeof *in), **out = calloc((size_t)n, sizeof *out);
    size_t *in_n = calloc((size_t)n, sizeof *in_n), *out_n = calloc((size_t)n, sizeof *out_n);
    size_t *v = coll == PPU_COLL_ALLTOALLV ? calloc(4 * (size_t)n * n, sizeof *v) : NULL;
    cr_assert(s && sp && in && out && in_n && out_n && (coll != PPU_COLL_ALLTOALLV || v));
    /* alltoallv: rank r sends (r + 3p) % 5 * count / 4 + p % 2 elements to p */
#define VCNT(r, p) ((size_t)(((r) + 3 * (p)) % 5) * count / 4 + (size_t)((p) % 2))
    for (int r = 0; r < n; r++) {
        size_t *sc = v ? v + (size_t)r * 4 * n : NULL;
        switch (coll) {
        case PPU_COLL_ALLGATHER: in_n[r] = count; out_n[r] = count * n; break;
        case PPU_COLL_REDUCE_SCATTER: in_n[r] = count * n; out_n[r] = count; break;
        case PPU_COLL_ALLTOALL: in_n[r] = out_n[r] = count * n; break;
        case PPU_COLL_ALLTOALLV:
            for (int p = 0; p < n; p++) {
                sc[p] = VCNT(r, p);                         /* sendcounts */
                sc[n + p] = in_n[r], in_n[r] += sc[p];      /* sdispls */
                sc[2 * n + p] = VCNT(p, r);                 /* recvcounts */
                sc[3 * n + p] = out_n[r], out_n[r] += sc[2 * n + p];
            }
            break;
        default: in_n[r] = out_n[r] = count; break;
        }
        out[r] = malloc(sizeof(uint64_t) * (out_n[r] + 1));
        in[r] = inplace ? out[r] : malloc(sizeof(uint64_t) * (in_n[r] + 1));
        cr_assert(in[r] && out[r]);
        for (size_t i = 0; i < out_n[r]; i++)
            out[r][i] = ~(uint64_t)0;
        for (size_t i = 0; i < in_n[r]; i++)
            in[r][i] = val(r, i);
        struct ppu_call call = {coll, count, PPU_UINT64, PPU_SUM, root, inplace, sc};
        ppu_result_t res = ppu_plan_build(x, &call, r, algo, proto, &s[r]);
        cr_assert_eq(res, PPU_SUCCESS, "%s %s/%s/%s: rank %d could not build its schedule",
                     sh->name, ppu_coll_name(coll), ppu_algo_name(algo), ppu_proto_name(proto), r);
        sp[r] = &s[r];
        tl->steps += (long long)ppu_sched_nsteps(&s[r]);
    }
    struct schedsim_cfg cfg = {.nranks = n, .nrings = x->nchannels, .rings = x->rings,
                               .ring_slots = g_ring_slots,
                               .peer_slots = g_peer_slots ? g_peer_slots : ppu_plan_peer_slots_min(x),
                               .scratch_elems = x->set.chunk_bytes / 8, .ring_drain = 1};
    char err[1024];
    int bad = schedsim_run(&cfg, sp, in, in_n, out, out_n, err, sizeof err);
    cr_expect(!bad, "%s %s count=%zu root=%d %s/%s%s: %s", sh->name, ppu_coll_name(coll), count,
              root, ppu_algo_name(algo), ppu_proto_name(proto), inplace ? " in place" : "", err);
    /* the reference, from the inputs' formula: want[] per rank */
    size_t most = 0;
    for (int r = 0; r < n; r++)
        most = out_n[r] > most ? out_n[r] : most;
    uint64_t *want = malloc(sizeof *want * (most + 1)), *sum = NULL;
    cr_assert(want);
    if (coll == PPU_COLL_ALLREDUCE || coll == PPU_COLL_REDUCE) {
        sum = calloc(count + 1, sizeof *sum);
        cr_assert(sum);
        for (int q = 0; q < n; q++)
            for (size_t i = 0; i < count; i++)
                sum[i] += val(q, i);
    }
    for (int r = 0; r < n && !bad; r++) {
        if (coll == PPU_COLL_REDUCE && r != root)
            continue; /* only the root's output is defined */
        switch (coll) {
        case PPU_COLL_ALLREDUCE:
        case PPU_COLL_REDUCE: memcpy(want, sum, sizeof *want * count); break;
        case PPU_COLL_BROADCAST:
            for (size_t i = 0; i < count; i++)
                want[i] = val(root, i);
            break;
        case PPU_COLL_ALLGATHER:
            for (size_t i = 0; i < out_n[r]; i++)
                want[i] = val((int)(i / count), i % count);
            break;
        case PPU_COLL_REDUCE_SCATTER:
            for (size_t i = 0; i < count; i++) {
                want[i] = 0;
                for (int q = 0; q < n; q++)
                    want[i] += val(q, (size_t)r * count + i);
            }
            break;
        case PPU_COLL_ALLTOALL: /* block q of r's output: block r of q's input */
            for (size_t i = 0; i < out_n[r]; i++)
                want[i] = val((int)(i / count), (size_t)r * count + i % count);
            break;
        default: { /* alltoallv: q's block for r, at r's receive offset for q */
            const size_t *rv = v + (size_t)r * 4 * n;
            for (int q = 0; q < n; q++) {
                const size_t *qv = v + (size_t)q * 4 * n;
                for (size_t j = 0; j < rv[2 * n + q]; j++)
                    want[rv[3 * n + q] + j] = val(q, qv[n + r] + j);
            }
            break;
        }
        }
        for (size_t i = 0; i < out_n[r] && !bad; i++)
            if (out[r][i] != want[i]) {
                cr_expect_eq(out[r][i], want[i], "%s %s count=%zu root=%d %s/%s%s: rank %d "
                             "element %zu is %016llx, expected %016llx", sh->name,
                             ppu_coll_name(coll), count, root, ppu_algo_name(algo),
                             ppu_proto_name(proto), inplace ? " in place" : "", r, i,
                             (unsigned long long)out[r][i], (unsigned long long)want[i]);
                bad = 1;
            }
    }
    free(want);
    free(sum);
#undef VCNT
    for (int r = 0; r < n; r++) {
        ppu_sched_free(&s[r]);
        if (in[r] != out[r])
            free(in[r]);
        free(out[r]);
    }
    free(s), free(sp), free(in), free(out), free(in_n), free(out_n), free(v);
    tl->cases++;
}

static void check_shape(const struct shape *sh, struct tally *tl)
{
    struct world w;
    make_world(sh, &w);
    check_rings(sh, &w);
    int n = sh->n, big = n > 64;
    /* elements per rank's block: several chunks on small shapes, a few
     * elements (and odd counts) on the large ones */
    size_t per = big ? 3 : 1100;
    const struct {
        enum ppu_coll coll;
        size_t count;
    } calls[] = {
        {PPU_COLL_ALLREDUCE, per * n + 7}, {PPU_COLL_ALLREDUCE, 0},
        /* fewer elements than ranks: most blocks empty (the ring lists only
         * the ranks that hold one when they are under an eighth) */
        {PPU_COLL_ALLREDUCE, 5}, {PPU_COLL_ALLREDUCE, (size_t)n / 3 + 1},
        {PPU_COLL_BROADCAST, per * n + 5}, {PPU_COLL_REDUCE, per * n + 3},
        {PPU_COLL_ALLGATHER, per + 1},     {PPU_COLL_REDUCE_SCATTER, per + 1},
        {PPU_COLL_ALLTOALL, big ? 2 : 600}, {PPU_COLL_ALLTOALLV, big ? 4 : 900},
    };
    for (size_t k = 0; k < sizeof calls / sizeof calls[0]; k++) {
        enum ppu_coll coll = calls[k].coll;
        int root = coll == PPU_COLL_BROADCAST || coll == PPU_COLL_REDUCE ? (n * 2) / 3 : 0;
        for (int algo = 0; algo < PPU_NUM_ALGOS; algo++) {
            struct ppu_call call = {coll, calls[k].count, PPU_UINT64, PPU_SUM, root, 0, NULL};
            if (!ppu_plan_applies(&w.x, &call, algo))
                continue;
            /* a ring all-to-all is n^2/2 steps a rank: beyond 64 ranks the
             * planner never picks it (pairwise applies across servers) */
            if (big && coll == PPU_COLL_ALLTOALL && algo == PPU_ALGO_RING)
                continue;
            for (int proto = 0; proto < (big ? 1 : PPU_NUM_PROTOS); proto++) {
                if (proto == PPU_PROTO_LL && coll == PPU_COLL_ALLTOALLV)
                    continue;
                run_case(sh, &w, coll, calls[k].count, root, algo, proto, 0, tl);
                if (coll == PPU_COLL_ALLREDUCE || coll == PPU_COLL_BROADCAST ||
                    coll == PPU_COLL_REDUCE)
                    run_case(sh, &w, coll, calls[k].count, root, algo, proto, IN_PLACE, tl);
            }
        }
    }
    ppu_plan_ctx_free(&w.x);
    free(w.topo);
}

Test(schedcheck, every_collective_every_algorithm_every_shape, .timeout = 600)
{
    struct tally tl = {0, 0};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        struct tally one = {0, 0};
        check_shape(&shapes[i], &one);
        fprintf(stderr, "schedcheck: %-26s %3d cases, %10lld steps\n", shapes[i].name, one.cases,
                one.steps);
        tl.cases += one.cases;
        tl.steps += one.steps;
    }
    fprintf(stderr, "schedcheck: %zu shapes, %d cases (collective x algorithm x protocol x in "
            "place), %lld steps checked\n", sizeof shapes / sizeof shapes[0], tl.cases, tl.steps);
}

/* Every rank's ring all-reduce of uint64 sums on 8 ranks (rank r with
 * counts[r] elements), zeroed buffers; ring_set_free lets them go. */
struct ring_set {
    struct ppu_sched s[8];
    const struct ppu_sched *sp[8];
    uint64_t *in[8], *out[8];
    size_t in_n[8], out_n[8];
};

static void ring_set_build(const struct world *w, const size_t *counts, struct ring_set *rs)
{
    for (int r = 0; r < w->x.nranks && r < 8; r++) {
        struct ppu_call call = {PPU_COLL_ALLREDUCE, counts[r], PPU_UINT64, PPU_SUM, 0, 0, NULL};
        cr_assert_eq(ppu_plan_build(&w->x, &call, r, PPU_ALGO_RING, PPU_PROTO_SIMPLE, &rs->s[r]),
                     PPU_SUCCESS);
        rs->sp[r] = &rs->s[r];
        rs->in_n[r] = rs->out_n[r] = counts[r];
        rs->in[r] = calloc(counts[r], 8);
        rs->out[r] = calloc(counts[r], 8);
        cr_assert(rs->in[r] && rs->out[r]);
    }
}

static void ring_set_free(const struct world *w, struct ring_set *rs)
{
    for (int r = 0; r < w->x.nranks && r < 8; r++) {
        ppu_sched_free(&rs->s[r]);
        free(rs->in[r]);
        free(rs->out[r]);
    }
}

/* With the fewest slots a host's shared-memory budget leaves a link, no
 * schedule deadlocks: a ring link one more than the chunks the plan keeps
 * in flight (3 with the default PPU_FIFO_SLOTS, whose rings run two chunks
 * at once; 2 with PPU_FIFO_SLOTS=2, one chunk), a peer link 2, or the same
 * 3 across servers, where hierarchical all-reduce runs such rings on peer
 * links. */
Test(schedcheck, fewest_slots_the_budget_gives, .timeout = 600)
{
    const int plan_slots[] = {8, 2};
    for (int k = 0; k < 2; k++) {
        struct ppu_plan_settings set = {.fifo_slots = plan_slots[k]};
        g_plan_slots = plan_slots[k];
        g_ring_slots = ppu_plan_ring_skew(&set) + 1;
        g_peer_slots = 0;
        cr_assert_eq(g_ring_slots, k == 0 ? 3 : 2);
        struct tally tl = {0, 0};
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            if (shapes[i].n <= 256)
                check_shape(&shapes[i], &tl);
        fprintf(stderr, "schedcheck, PPU_FIFO_SLOTS=%d, %d slots a ring link, 2 or %d a peer "
                "link: %d cases, %lld steps\n", g_plan_slots, g_ring_slots, g_ring_slots, tl.cases,
                tl.steps);
    }
}

/* The same ring schedules one slot short (2 a ring link with two chunks in
 * flight) lock up: the floor above is needed, and the checker sees it. */
Test(schedcheck, skewed_ring_needs_its_slots)
{
    struct world w;
    make_world(&shapes[4], &w); /* 8 fullmesh */
    cr_assert_eq(ppu_plan_ring_skew(&w.x.set), 2);
    size_t counts[8];
    for (int r = 0; r < 8; r++)
        counts[r] = 40000; /* many 512-element chunks a block */
    struct ring_set rs;
    ring_set_build(&w, counts, &rs);
    char err[1024];
    for (int slots = 3; slots >= 2; slots--) {
        struct schedsim_cfg cfg = {.nranks = w.x.nranks, .nrings = w.x.nchannels,
                                   .rings = w.x.rings, .ring_slots = slots, .peer_slots = 4,
                                   .scratch_elems = w.x.set.chunk_bytes / 8, .ring_drain = 1};
        err[0] = 0;
        int bad = schedsim_run(&cfg, rs.sp, rs.in, rs.in_n, rs.out, rs.out_n, err, sizeof err);
        if (slots == 3)
            cr_expect_eq(bad, 0, "3 slots a ring link: %s", err);
        else
            cr_expect(bad && strstr(err, "deadlock"), "2 slots a ring link ran: %s", err);
    }
    ring_set_free(&w, &rs);
    ppu_plan_ctx_free(&w.x);
    free(w.topo);
}

/* The checker itself catches a wrong schedule: one rank's all-reduce built
 * for a different count, and a reduction that leaves out a rank. */
Test(schedcheck, catches_broken_schedules)
{
    struct world w;
    make_world(&shapes[4], &w); /* 8 fullmesh */
    int n = w.x.nranks;
    size_t counts[8];
    for (int r = 0; r < 8; r++)
        counts[r] = r == 3 ? 4600 : 4000; /* rank 3 called another count */
    struct ring_set rs;
    ring_set_build(&w, counts, &rs);
    struct schedsim_cfg cfg = {.nranks = n, .nrings = w.x.nchannels, .rings = w.x.rings,
                               .ring_slots = 8, .peer_slots = 4, .scratch_elems = 512};
    char err[1024];
    cr_expect(schedsim_run(&cfg, rs.sp, rs.in, rs.in_n, rs.out, rs.out_n, err, sizeof err) != 0,
              "a rank with another count was not caught");
    ring_set_free(&w, &rs);
    struct ppu_sched s[8];
    const struct ppu_sched *sp[8];
    uint64_t *in[8], *out[8];
    size_t in_n[8], out_n[8];
    /* one-shot where rank 5 skips rank 2's contribution: the sum is off */
    for (int r = 0; r < n; r++) {
        struct ppu_call call = {PPU_COLL_ALLREDUCE, 64, PPU_UINT64, PPU_SUM, 0, 0, NULL};
        cr_assert_eq(ppu_plan_build(&w.x, &call, r, PPU_ALGO_TWOSHOT, PPU_PROTO_SIMPLE, &s[r]),
                     PPU_SUCCESS);
        sp[r] = &s[r];
        in_n[r] = out_n[r] = 64;
        in[r] = malloc(64 * 8);
        out[r] = malloc(64 * 8);
        for (size_t i = 0; i < 64; i++)
            in[r][i] = val(r, i);
    }
    /* rank 5's block is [40, 48): drop the accumulate of the message from rank 2 */
    struct ppu_sched_channel *ch = &s[5].ch[0];
    int dropped = 0;
    for (size_t i = 0; i < ch->nsteps; i++)
        if (ch->steps[i].recv_peer == 2 && (ch->steps[i].flags & PPU_STEP_ACCUM)) {
            ch->steps[i].flags &= ~(uint32_t)PPU_STEP_ACCUM;
            ch->steps[i].flags |= PPU_STEP_TMP_OUT; /* received, but not added */
            dropped = 1;
            break;
        }
    cr_assert(dropped);
    cr_assert_eq(schedsim_run(&cfg, sp, in, in_n, out, out_n, err, sizeof err), 0, "%s", err);
    uint64_t want = 0;
    for (int q = 0; q < n; q++)
        want += val(q, 40);
    cr_expect_neq(out[0][40], want, "a reduction without rank 2 gave the full sum");
    for (int r = 0; r < n; r++) {
        ppu_sched_free(&s[r]);
        free(in[r]);
        free(out[r]);
    }
    ppu_plan_ctx_free(&w.x);
    free(w.topo);
}

/* Hierarchical all-reduce runs its phases inside a server on every ring
 * the server gives it, not one: 2 x 8 full mesh (strides 1, 7, 3, 5),
 * server16 (strides 1 and 15), and a server16 with a link down (not
 * circulant: the channels' rings, restricted to a server). Each ring is a
 * reduce-scatter and an all-gather channel around the rail's; every
 * ring's directed links are its own. The every-shape test runs them. */
Test(schedcheck, hier_allreduce_uses_every_ring)
{
    const struct {
        size_t shape;
        int rings;
    } cases[] = {{10, 4}, {17, 2}, {14, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct shape *sh = &shapes[cases[i].shape];
        struct world w;
        make_world(sh, &w);
        int K = w.x.hier_nrings, L = w.x.per_server;
        cr_expect(K >= cases[i].rings, "%s: %d ring(s) inside a server, want %d or more",
                  sh->name, K, cases[i].rings);
        unsigned char *used = calloc((size_t)L * L, 1);
        cr_assert(used);
        for (int c = 0; c < K; c++)
            for (int j = 0; j < L; j++) {
                int a = w.x.hier_rings[c * L + j], b = w.x.hier_rings[c * L + (j + 1) % L];
                cr_expect(!used[a * L + b], "%s: link %d -> %d on two rings", sh->name, a, b);
                cr_expect(ppu_topo_up(&w.topo[0], a, b), "%s: ring %d goes %d -> %d, no link",
                          sh->name, c, a, b);
                used[a * L + b] = 1;
            }
        free(used);
        struct ppu_call call = {PPU_COLL_ALLREDUCE, 100000, PPU_FLOAT32, PPU_SUM, 0, 0, NULL};
        struct ppu_sched s;
        cr_assert_eq(ppu_plan_build(&w.x, &call, 0, PPU_ALGO_HIER, PPU_PROTO_SIMPLE, &s),
                     PPU_SUCCESS);
        cr_expect_eq(s.nchannels, 2 * K + 1, "%s: %d channels for %d rings", sh->name,
                     s.nchannels, K);
        cr_expect(s.ch[K].after == 0 && s.ch[K].after_n == K,
                  "%s: the rail phase waits for every reduce-scatter", sh->name);
        ppu_sched_free(&s);
        /* hiertree: the rail is the tree all-reduce's four channels (each
         * tree's reduce and broadcast, tree t on lane t), all after the
         * reduce-scatters, and the all-gathers after all four */
        cr_assert_eq(ppu_plan_build(&w.x, &call, 0, PPU_ALGO_HIER_TREE, PPU_PROTO_SIMPLE, &s),
                     PPU_SUCCESS);
        cr_expect_eq(s.nchannels, 2 * K + 4, "%s: hiertree: %d channels for %d rings", sh->name,
                     s.nchannels, K);
        for (int q = 0; q < 4; q++)
            cr_expect(s.ch[K + q].after == 0 && s.ch[K + q].after_n == K &&
                          (s.ch[K + q].nsteps == 0 ||
                           ppu_step_lane(&s.ch[K + q].steps[0]) == q / 2),
                      "%s: hiertree rail channel %d: after %d x %d, not on lane %d", sh->name,
                      K + q, s.ch[K + q].after, s.ch[K + q].after_n, q / 2);
        for (int c = K + 4; c < 2 * K + 4; c++)
            cr_expect(s.ch[c].after == K && s.ch[c].after_n == 4,
                      "%s: hiertree all-gather %d waits for the four rail channels", sh->name, c);
        ppu_sched_free(&s);
        ppu_plan_ctx_free(&w.x);
        free(w.topo);
    }
}

/* The table of step kinds (sched_ring.c) holds only combinations run_step
 * can mean: a source (a message or the input) and a sink (the output or a
 * send); ACCUM updates the output from exactly one source; scratch and
 * in-place inputs are inputs, a scratch output is an output; a message
 * built by reference in the output is sent and not also written there.
 * Every builder's every step is in the table (ppu_sched_add asserts it,
 * and the schedules above and test_sim's replays pass through it). */
Test(schedcheck, step_kinds_are_meaningful)
{
    int n;
    const struct ppu_step_kind *k = ppu_step_kinds(&n);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) {
        uint32_t f = k[i].flags;
        int recv = !!(f & PPU_STEP_RECV), in = !!(f & PPU_STEP_INPUT);
        cr_expect(recv || in, "%s: no source", k[i].what);
        cr_expect(f & (PPU_STEP_OUTPUT | PPU_STEP_SEND), "%s: no sink", k[i].what);
        if (f & PPU_STEP_ACCUM)
            cr_expect((f & PPU_STEP_OUTPUT) && recv + in == 1, "%s: ACCUM", k[i].what);
        if (f & (PPU_STEP_TMP_IN | PPU_STEP_IN_OUT))
            cr_expect(in && !((f & PPU_STEP_TMP_IN) && (f & PPU_STEP_IN_OUT)), "%s", k[i].what);
        if (f & PPU_STEP_TMP_OUT)
            cr_expect(f & PPU_STEP_OUTPUT, "%s: TMP_OUT", k[i].what);
        if (f & PPU_STEP_REF_OUT)
            cr_expect((f & PPU_STEP_SEND) && !(f & PPU_STEP_OUTPUT), "%s: REF_OUT", k[i].what);
        for (int j = 0; j < i; j++)
            cr_expect_neq(k[j].flags, f, "%s listed twice", k[i].what);
        cr_expect_str_eq(ppu_step_kind(f), k[i].what);
    }
    cr_expect_null(ppu_step_kind(0), "a step that does nothing");
    cr_expect_null(ppu_step_kind(PPU_STEP_RECV | PPU_STEP_INPUT | PPU_STEP_OUTPUT | PPU_STEP_ACCUM),
                   "ACCUM from two sources");
    cr_expect_null(ppu_step_kind(PPU_STEP_SEND), "a send of nothing");
}
