/* Soak: 8 ranks run thousands of mixed collectives with random sizes,
 * datatypes, ops, roots, alignments and in-place layouts, on three
 * communicators at once (the world on stream A, a reordered copy of it on
 * stream B, and the halves of a split inline), and check every result
 * against the independent references of refval.h. Resident memory must not
 * grow between the end of the warm-up and the end of the run: neither the
 * heap in use nor the open descriptors.
 *
 * PPU_SOAK_ROUNDS sets the rounds (3 collectives each; default 1500).
 * Built with -DPPU_SOAK_PLAIN it is a plain program (soak_plain) that a
 * ThreadSanitizer build can run: Criterion cannot start under TSan. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include "ranks.h"
#include "refval.h"

enum { NR = 8, MAXC = 1 << 14, SLACK = 64 };

/* Same stream of choices on every rank: a tiny generator seeded by round. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

struct pick {
    uint64_t s;
};

static unsigned draw(struct pick *p, unsigned n)
{
    p->s = mix(p->s);
    return (unsigned)(p->s % n);
}

enum kind { ALLREDUCE, BROADCAST, REDUCE, ALLGATHER, REDUCE_SCATTER, ALLTOALL, SENDRECV, BARRIER,
            NKINDS };
static const char *kind_name[NKINDS] = {"allreduce", "broadcast", "reduce", "allgather",
                                        "reduce_scatter", "alltoall", "sendrecv", "barrier"};

/* One collective: what was chosen, its buffers, how to check it. */
struct op {
    enum kind k;
    ppu_datatype_t dt;
    ppu_redop_t red;
    size_t count;
    int root, inplace;
    ppu_comm_t comm;
    int rank, n;
    char *send, *recv; /* into the slot's memory, possibly unaligned */
};

struct slot {
    char *mem; /* NR * MAXC * 8 + SLACK bytes, for send and recv each */
    char *mem2;
};

static size_t pick_count(struct pick *p)
{
    switch (draw(p, 8)) {
    case 0: return 0;
    case 1: return 1 + draw(p, 7);
    case 2: case 3: return 1 + draw(p, 300);
    case 4: case 5: return 1 + draw(p, 3000);
    default: return 1 + draw(p, MAXC);
    }
}

/* Rounds of the warm-up: every kind at four sizes and two roots, so that
 * every link the run can use is connected (links are made on first use)
 * before descriptors are counted. */
#define WARM_ROUNDS (4 * NKINDS)

/* Choose an op for comm (every rank draws the same) and fill its input;
 * warm >= 0: the warm-up's op of that round instead of a random kind. */
static void prepare(struct op *o, struct pick *p, ppu_comm_t comm, struct slot *sl, int warm)
{
    memset(o, 0, sizeof *o);
    o->comm = comm;
    ppu_comm_user_rank(comm, &o->rank);
    ppu_comm_count(comm, &o->n);
    o->k = (enum kind)draw(p, NKINDS);
    o->dt = (ppu_datatype_t)draw(p, PPU_NUM_DATATYPES);
    o->red = (ppu_redop_t)draw(p, PPU_NUM_REDOPS);
    o->count = pick_count(p);
    o->root = (int)draw(p, (unsigned)o->n);
    if (warm >= 0) {
        static const size_t sizes[4] = {1, 300, 3000, MAXC};
        o->k = (enum kind)(warm % NKINDS);
        o->dt = PPU_FLOAT32;
        o->count = sizes[warm / NKINDS % 4];
        o->root = warm / NKINDS % 2 ? o->n - 1 : 0;
    }
    o->inplace = draw(p, 3) == 0;
    size_t es = ppu_datatype_size(o->dt), n = (size_t)o->n, c = o->count;
    o->send = sl->mem + draw(p, 8) * (draw(p, 2) ? 1 : es);
    o->recv = sl->mem2 + draw(p, 8) * (draw(p, 2) ? 1 : es);
    /* poison what the op writes, so a call that writes nothing fails */
    size_t out = (o->k == ALLGATHER || o->k == ALLTOALL ? c * n : c) * es;
    memset(o->recv, 0xa5, out);
    ppu_redop_t fill_op = (o->k == ALLREDUCE || o->k == REDUCE || o->k == REDUCE_SCATTER)
                              ? o->red : PPU_SUM;
    switch (o->k) {
    case ALLREDUCE: case REDUCE:
        ref_fill(o->send, c, o->rank, o->dt, fill_op);
        if (o->inplace)
            o->recv = o->send;
        break;
    case BROADCAST:
        ref_fill(o->send, c, o->root, o->dt, PPU_SUM);
        if (o->inplace)
            o->recv = o->send;
        break;
    case ALLGATHER:
        if (o->inplace) {
            ref_fill(o->recv + (size_t)o->rank * c * es, c, o->rank, o->dt, PPU_SUM);
            o->send = o->recv + (size_t)o->rank * c * es;
        } else {
            ref_fill(o->send, c, o->rank, o->dt, PPU_SUM);
        }
        break;
    case REDUCE_SCATTER:
        ref_fill(o->send, c * n, o->rank, o->dt, fill_op);
        if (o->inplace)
            o->recv = o->send + (size_t)o->rank * c * es;
        break;
    case ALLTOALL: case SENDRECV:
        ref_fill(o->send, c * n, o->rank, o->dt, PPU_SUM);
        break;
    default:
        break;
    }
}

static ppu_result_t issue(struct op *o, ppu_stream_t st)
{
    ppu_comm_t cm = o->comm;
    size_t c = o->count;
    switch (o->k) {
    case ALLREDUCE: return ppu_allreduce(o->send, o->recv, c, o->dt, o->red, cm, st);
    case BROADCAST: return ppu_broadcast(o->send, o->recv, c, o->dt, o->root, cm, st);
    case REDUCE: return ppu_reduce(o->send, o->recv, c, o->dt, o->red, o->root, cm, st);
    case ALLGATHER: return ppu_allgather(o->send, o->recv, c, o->dt, cm, st);
    case REDUCE_SCATTER: return ppu_reduce_scatter(o->send, o->recv, c, o->dt, o->red, cm, st);
    case ALLTOALL: return ppu_alltoall(o->send, o->recv, c, o->dt, cm, st);
    case SENDRECV: { /* a ring shift: send to the next rank, receive from the previous */
        int n = o->n;
        ppu_group_start();
        ppu_send(o->send, c, o->dt, (o->rank + 1) % n, cm, st);
        ppu_recv(o->recv, c, o->dt, (o->rank + n - 1) % n, cm, st);
        return ppu_group_end();
    }
    case BARRIER: return ppu_barrier(cm, st);
    default: return PPU_INTERNAL_ERROR;
    }
}

/* Compare got[0..count) with the reference of rank src's fill (src >= 0),
 * or the reduction over n ranks at offset off (src < 0). */
static int same(const char *got, size_t count, ppu_datatype_t dt, int src, size_t off, int n,
                ppu_redop_t red)
{
    size_t es = ppu_datatype_size(dt);
    char want[8];
    for (size_t i = 0; i < count; i++) {
        size_t j = (off + i) % REF_PERIOD; /* refval's fills repeat with this period */
        if (src >= 0) {
            double v = ref_input(src, j, dt, PPU_SUM);
            ref_store(want, 0, dt, v, (uint64_t)(int64_t)v);
        } else {
            ref_expect(want, j, n, dt, red);
        }
        if (memcmp(got + i * es, want, es) != 0)
            return 0;
    }
    return 1;
}

static int check(const struct op *o)
{
    size_t es = ppu_datatype_size(o->dt), c = o->count;
    int n = o->n, r = o->rank;
    switch (o->k) {
    case ALLREDUCE: return same(o->recv, c, o->dt, -1, 0, n, o->red);
    case REDUCE: return r != o->root || same(o->recv, c, o->dt, -1, 0, n, o->red);
    case BROADCAST: return same(o->recv, c, o->dt, o->root, 0, n, PPU_SUM);
    case ALLGATHER:
        for (int p = 0; p < n; p++)
            if (!same(o->recv + (size_t)p * c * es, c, o->dt, p, 0, n, PPU_SUM))
                return 0;
        return 1;
    case REDUCE_SCATTER: return same(o->recv, c, o->dt, -1, (size_t)r * c, n, o->red);
    case ALLTOALL: /* block p came from rank p's block r */
        for (int p = 0; p < n; p++)
            if (!same(o->recv + (size_t)p * c * es, c, o->dt, p, (size_t)r * c, n, PPU_SUM))
                return 0;
        return 1;
    case SENDRECV: return same(o->recv, c, o->dt, (r + n - 1) % n, 0, n, PPU_SUM);
    default: return 1;
    }
}

/* Heap bytes in use (malloc's own count: a leak shows here even when the
 * pages stay resident anyway) and open descriptors. */
static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

static long rss_kb(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int soak(ppu_comm_t world, int rank, int n, void *arg)
{
    int rounds = *(int *)arg;
    ppu_comm_t rev, half; /* the world in reverse order; even and odd ranks */
    if (ppu_comm_split(world, 0, n - rank, &rev) != PPU_SUCCESS ||
        ppu_comm_split(world, rank % 2, rank, &half) != PPU_SUCCESS) {
        fprintf(stderr, "rank %d: split: %s\n", rank, ppu_get_last_error(world));
        return 1;
    }
    ppu_stream_t sa, sb;
    if (ppu_stream_create(&sa) != PPU_SUCCESS || ppu_stream_create(&sb) != PPU_SUCCESS)
        return 2;
    size_t bytes = (size_t)NR * MAXC * 8 + SLACK;
    struct slot sl[3];
    for (int i = 0; i < 3; i++) {
        sl[i].mem = malloc(bytes);
        sl[i].mem2 = malloc(bytes);
        memset(sl[i].mem, 0, bytes);
        memset(sl[i].mem2, 0, bytes);
    }
    ppu_comm_t comms[3] = {world, rev, half};
    ppu_stream_t streams[3] = {sa, sb, NULL};
    int bad = 0, colls = 0, warm = rounds / 10 > WARM_ROUNDS ? rounds / 10 : WARM_ROUNDS;
    long rss_warm = 0;
    size_t heap_warm = 0;
    int fds_warm = 0;
    for (int round = 0; round < rounds && !bad; round++) {
        if (round == warm) {
            rss_warm = rss_kb();
            heap_warm = heap_bytes();
            fds_warm = open_fds();
        }
        struct op ops[3];
        for (int k = 0; k < 3; k++) {
            /* the halves draw from their own sequence: they are separate jobs */
            struct pick p = {(uint64_t)round * 4 + (uint64_t)k + (k == 2 ? 1000003ull * (rank % 2) : 0)};
            prepare(&ops[k], &p, comms[k], &sl[k], round < WARM_ROUNDS ? round : -1);
            ppu_result_t r = issue(&ops[k], streams[k]);
            if (r != PPU_SUCCESS) {
                fprintf(stderr, "rank %d round %d: %s count=%zu dt=%d: %s\n", rank, round,
                        kind_name[ops[k].k], ops[k].count, (int)ops[k].dt,
                        ppu_get_last_error(comms[k]));
                bad = 1;
            }
        }
        if (ppu_stream_synchronize(sa) != PPU_SUCCESS || ppu_stream_synchronize(sb) != PPU_SUCCESS) {
            fprintf(stderr, "rank %d round %d: stream: %s / %s\n", rank, round,
                    ppu_get_last_error(world), ppu_get_last_error(rev));
            bad = 1;
        }
        for (int k = 0; k < 3 && !bad; k++) {
            colls++;
            if (!check(&ops[k])) {
                fprintf(stderr, "rank %d round %d comm %d: %s count=%zu dt=%d op=%d root=%d inplace=%d: "
                        "wrong result\n", rank, round, k, kind_name[ops[k].k], ops[k].count,
                        (int)ops[k].dt, (int)ops[k].red, ops[k].root,
                        ops[k].inplace);
                bad = 1;
            }
        }
    }
    long rss_end = rss_kb();
    size_t heap_end = heap_bytes();
    int fds_end = open_fds();
    /* the plan cache and stream queues are bounded: once warm, the heap
     * stays put (a few KiB of slack for allocator bookkeeping) */
    if (!bad && (heap_end > heap_warm + 64 * 1024 || fds_end != fds_warm)) {
        fprintf(stderr, "rank %d: heap in use grew from %zu to %zu bytes, fds %d -> %d\n", rank,
                heap_warm, heap_end, fds_warm, fds_end);
        bad = 1;
    }
    if (rank == 0)
        fprintf(stderr, "soak: %d collectives per rank checked; heap in use %zu -> %zu bytes, "
                "fds %d -> %d, resident %ld -> %ld KiB (shared FIFO pages count once touched)\n",
                colls, heap_warm, heap_end, fds_warm, fds_end, rss_warm, rss_end);
    ppu_stream_destroy(sa);
    ppu_stream_destroy(sb);
    ppu_comm_destroy(rev);
    ppu_comm_destroy(half);
    for (int i = 0; i < 3; i++) {
        free(sl[i].mem);
        free(sl[i].mem2);
    }
    return bad;
}

static int rounds_from_env(int dflt)
{
    const char *e = getenv("PPU_SOAK_ROUNDS");
    return e && atoi(e) > 0 ? atoi(e) : dflt;
}

#ifdef PPU_SOAK_PLAIN
int main(void)
{
    int rounds = rounds_from_env(150);
    setenv("PPU_TIMEOUT_MS", "120000", 1);
    int failed = run_ranks(NR, soak, &rounds, 600);
    printf("soak_plain: %d rounds on %d ranks: %d rank(s) failed\n", rounds, NR, failed);
    return failed != 0;
}
#else
#include <criterion/criterion.h>

Test(soak, mixed_collectives_8_ranks, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    int rounds = rounds_from_env(PPU_TEST_SLOWDOWN > 1 ? 500 : 1500);
    setenv("PPU_TIMEOUT_MS", "60000", 1);
    cr_expect_eq(run_ranks(NR, soak, &rounds, 280), 0);
}
#endif
