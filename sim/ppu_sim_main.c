/* ppu-sim: predict a collective's time on a cluster nobody here can run,
 * by replaying the library's own schedules (sim.h). */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../tools/tool_util.h"

#include "comm.h" /* ppu_datatype_name, ppu_redop_name */
#include "sim.h"
#include "topo_xml.h"

#ifndef PPU_SIM_PLOT
#define PPU_SIM_PLOT "sim/plot_sim.py"
#endif

static const char *const coll_flag[] = {"allreduce", "broadcast", "reduce", "allgather",
                                        "reduce_scatter", "alltoall"};
static const enum ppu_coll coll_val[] = {PPU_COLL_ALLREDUCE, PPU_COLL_BROADCAST, PPU_COLL_REDUCE,
                                         PPU_COLL_ALLGATHER, PPU_COLL_REDUCE_SCATTER,
                                         PPU_COLL_ALLTOALL};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ppu-sim [options]\n"
        "Predicts a collective on a PPU cluster by replaying, step by step, the schedules\n"
        "ppuccl's planner builds for every rank, over a model of ICN links, NICs and fabric.\n"
        "\ncluster:\n"
        "  --servers S        servers (default 1)\n"
        "  --chips C          chips a server uses (default: all of the wiring's)\n"
        "  --wiring PRESET    fullmesh8, server16 (default), ring8, hypercube16, switch16\n"
        "                     (16 chips, each of its 7 links to one of 7 ICN switch planes)\n"
        "  --topo FILE        a topology file (topology/TOPOLOGY_FILE.md) instead: with\n"
        "                     --servers, its first server's wiring on every server\n"
        "  --down LIST        ICN links down on every server, as \"0-3,2-5\" (local chips)\n"
        "links:\n"
        "  --icn-gbps G --icn-us L    per ICN link and direction (default: the topology's,\n"
        "                             50 GB/s and 1 us)\n"
        "  --switch-planes P  treat the wiring as P switch planes (a chip's ports are shared)\n"
        "  --nic-gbps G --nic-us L    per NIC and direction (default 50 GB/s, 3 us)\n"
        "  --nics K           NICs a server, rail-optimized: chip j uses NIC j mod K\n"
        "                     (default one per chip)\n"
        "  --fabric rail|fattree      between servers (default rail: a NIC reaches the same\n"
        "                     NIC of every server through its rail; other traffic, and all\n"
        "                     of a fat tree's, crosses the top tier)\n"
        "  --oversub R        oversubscription at the top tier (default 1)\n"
        "  --hop-us L         latency the top tier adds (default 1)\n"
        "  --host-gbps G --host-us L  chips of a server with no ICN link (default 25, 3)\n"
        "  --mem-gbps G       a chip's memory, for reductions and copies (default 1600)\n"
        "  --ll-eff E         LL: share of link bandwidth that is data (default 0.5)\n"
        "  --simple-us L      SIMPLE: latency added per message (default 1)\n"
        "work:\n"
        "  --coll NAME        allreduce (default), allgather, reduce_scatter, alltoall,\n"
        "                     broadcast, reduce\n"
        "  -b MIN -e MAX -f FACTOR    sizes in bytes (K, M, G suffixes; default 8 to 1G, x4)\n"
        "  -d TYPE            float32 (default), and every ppuccl datatype\n"
        "  -o OP              sum (default), prod, max, min, avg\n"
        "  -r ROOT            broadcast and reduce (default 0)\n"
        "  --algo NAME|all|auto   auto (default): what the planner chooses; all: every\n"
        "                     algorithm that applies\n"
        "  --proto simple|ll|auto|both   auto (default): the protocol the planner would\n"
        "                     pick for each algorithm (as under PPU_ALGO=NAME); both:\n"
        "                     replay each and keep the faster\n"
        "  --channels N       rings to use (PPU_NCHANNELS); PPU_CHUNK_SIZE and the other\n"
        "                     plan settings are read from the environment as ppuccl reads them\n"
        "  --fold on|off      replay one server when servers are provably alike (default on)\n"
        "  --explain          print the planner's predicted time of each algorithm and\n"
        "                     protocol, size by size, beside the replayed rows\n"
        "  --max-steps N      steps to replay per call at most (default 20000000; 0: no limit)\n"
        "  --jobs N           processes replaying calls side by side (default: the CPUs\n"
        "                     online); the rows and times are the same with any N\n"
        "output:\n"
        "  --json FILE        the rows and the parameters\n"
        "  --png FILE         busbw against size, one line per algorithm (matplotlib)\n"
        "  --stats FILE       bytes and messages per directed link over the job, for the\n"
        "                     first size replayed (PPU_SIM_STATS_FILE's format)\n"
        "  -h, --help\n");
}

static int parse_num(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "ppu-sim: %s %s: it must be a number in [%g, %g]\n", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static double bus_factor(enum ppu_coll c, int n)
{
    switch (c) {
    case PPU_COLL_ALLREDUCE: return n > 1 ? 2.0 * (n - 1) / n : 0;
    case PPU_COLL_ALLGATHER:
    case PPU_COLL_REDUCE_SCATTER:
    case PPU_COLL_ALLTOALL: return n > 1 ? (double)(n - 1) / n : 0;
    default: return 1;
    }
}

struct row {
    size_t bytes, count;
    int algo, proto, planner, fastest;
    struct sim_result r;
    double algbw, busbw;
};

/* The protocol the planner picks for c when PPU_ALGO names algorithm a
 * (its cost model over the protocols PPU_PROTO allows). */
static int planner_proto(struct sim *S, const struct ppu_call *c, int a)
{
    unsigned saved = S->ctx.set.algo_mask[c->coll];
    int pa, pp;
    char why[600];
    S->ctx.set.algo_mask[c->coll] = 1u << a;
    ppu_plan_choose(&S->ctx, c, &pa, &pp, why, sizeof why);
    S->ctx.set.algo_mask[c->coll] = saved;
    return pa == a ? pp : PPU_PROTO_SIMPLE;
}

/* One size of the sweep: its call and the planner's choice. */
struct size_info {
    struct ppu_call c;
    size_t bytes;
    int palgo, pproto;
};

/* One algorithm at one size: the row kept (the faster protocol where
 * several are replayed), or none. */
struct item {
    int size, algo;
    int have, failed;
    struct row row;
};

/* What every item's replay needs. */
struct sweep {
    struct sim *S;
    enum ppu_coll coll;
    int n, autop, want_proto, both;
    size_t ll_max;
    FILE *sf; /* --stats: written by the first item's first replay */
};

static void replay_item(const struct sweep *w, const struct size_info *si, struct item *it,
                        int first)
{
    int a = it->algo, n = w->n;
    size_t bytes = si->bytes, count = si->c.count;
    struct row best;
    int have = 0,
        aproto = w->autop ? si->pproto : planner_proto(w->S, &si->c, a);
    for (int q = 0; q < PPU_NUM_PROTOS; q++) {
        if (w->want_proto >= 0 ? q != w->want_proto : w->both ? 0 : q != aproto)
            continue;
        /* LL only where the planner would allow it: a message per slot */
        if (q == PPU_PROTO_LL && w->want_proto < 0 &&
            (n < 2 || bytes / (size_t)n > w->ll_max || !w->ll_max))
            continue;
        struct row rw;
        memset(&rw, 0, sizeof rw);
        rw.bytes = bytes;
        rw.count = count;
        rw.algo = a;
        rw.proto = q;
        rw.planner = a == si->palgo && q == si->pproto;
        FILE *st = w->sf && first && !have ? w->sf : NULL;
        if (sim_run(w->S, &si->c, a, q, &rw.r, st) != 0) {
            fprintf(stderr, "ppu-sim: %s %zu B %s/%s: %s\n", ppu_coll_name(w->coll), bytes,
                    ppu_algo_name(a), ppu_proto_name(q), rw.r.why);
            it->failed++;
            continue;
        }
        if (!rw.r.skipped && rw.r.time_us > 0) {
            rw.algbw = (double)bytes / rw.r.time_us / 1e3;
            rw.busbw = rw.algbw * bus_factor(w->coll, n);
        }
        if (!have || (!rw.r.skipped && (best.r.skipped || rw.r.time_us < best.r.time_us)))
            best = rw, have = 1;
    }
    it->have = have;
    if (have)
        it->row = best;
}

/* An item as a process sends it back: its index and what it found. */
struct item_msg {
    int index;
    struct item it;
};

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static int replay_here(const struct sweep *w, const struct size_info *sizes, struct item *items,
                       int nitems)
{
    for (int i = 0; i < nitems; i++)
        replay_item(w, &sizes[items[i].size], &items[i], i == 0);
    return 0;
}

/* Room for one more of n elements of size elem in *p (capacity *cap,
 * doubled from first): 0, or -1 out of memory. */
static int grow(void *p, int *cap, int n, int first, size_t elem)
{
    if (n < *cap)
        return 0;
    int nc = *cap ? 2 * *cap : first;
    void *more = realloc(*(void **)p, elem * (size_t)nc);
    if (!more)
        return -1;
    *(void **)p = more;
    *cap = nc;
    return 0;
}

/* Replay every item, in jobs processes side by side. Each process is a
 * fork of this one after the model was built (it shares the cluster and
 * the plan context, and replays in its own memory), takes the next item
 * from a counter they share (the costly ones, small sizes on many ranks,
 * do not pile up in one process), and sends it back through its pipe as
 * a whole struct (the same binary on both ends, so a row's static strings
 * are at the same addresses). 0, or -1 (errno). */
static int replay_items(const struct sweep *w, const struct size_info *sizes,
                        struct item *items, int nitems, int jobs)
{
    if (jobs > nitems)
        jobs = nitems;
    _Atomic int *next = jobs > 1 ? mmap(NULL, sizeof *next, PROT_READ | PROT_WRITE,
                                        MAP_SHARED | MAP_ANONYMOUS, -1, 0)
                                 : MAP_FAILED;
    if (next == MAP_FAILED) /* one process (or no shared page): here, in order */
        return replay_here(w, sizes, items, nitems);
    atomic_init(next, 0);
    fflush(NULL);
    pid_t pid[1024];
    struct pollfd pf[1024];
    int started = 0, rc = 0, got = 0;
    for (int j = 0; j < jobs; j++) {
        int pp[2];
        if (pipe(pp) != 0)
            break;
        pid[j] = fork();
        if (pid[j] < 0) {
            close(pp[0]);
            close(pp[1]);
            break;
        }
        if (pid[j] == 0) {
            close(pp[0]);
            for (int k = 0; k < j; k++)
                close(pf[k].fd);
            for (int i; (i = atomic_fetch_add(next, 1)) < nitems;) {
                struct item_msg m = {i, items[i]};
                replay_item(w, &sizes[m.it.size], &m.it, i == 0);
                if (write_all(pp[1], &m, sizeof m) != 0)
                    _exit(3);
            }
            _exit(w->sf && fflush(w->sf) != 0 ? 4 : 0); /* --stats written whole, or an error */
        }
        close(pp[1]);
        pf[started++] = (struct pollfd){pp[0], POLLIN, 0};
    }
    if (started == 0) { /* no process could start: here, in order */
        munmap((void *)next, sizeof *next);
        return replay_here(w, sizes, items, nitems);
    }
    /* read whatever any process sends until every pipe is closed */
    for (int open = started; open > 0;) {
        if (poll(pf, (nfds_t)started, -1) < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        for (int j = 0; j < started; j++) {
            if (pf[j].fd < 0 || !(pf[j].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            struct item_msg m;
            char *p = (char *)&m;
            size_t left = sizeof m;
            while (left > 0) { /* a message is written whole; read it whole */
                ssize_t k = read(pf[j].fd, p, left);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0)
                    break;
                p += k;
                left -= (size_t)k;
            }
            if (left == sizeof m) { /* end of this process's pipe */
                close(pf[j].fd);
                pf[j].fd = -1;
                open--;
                continue;
            }
            if (left > 0 || m.index < 0 || m.index >= nitems) {
                rc = -1;
                errno = EPROTO;
                close(pf[j].fd);
                pf[j].fd = -1;
                open--;
                continue;
            }
            items[m.index] = m.it;
            got++;
        }
    }
    for (int j = 0; j < started; j++) {
        if (pf[j].fd >= 0)
            close(pf[j].fd);
        int st;
        if (waitpid(pid[j], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            rc = -1;
            errno = ECHILD;
        }
    }
    munmap((void *)next, sizeof *next);
    if (rc == 0 && got != nitems) {
        rc = -1;
        errno = EPIPE;
    }
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum { O_SERVERS = 256, O_CHIPS, O_WIRING, O_TOPO, O_DOWN, O_ICN_GBPS, O_ICN_US, O_PLANES,
       O_NIC_GBPS, O_NIC_US, O_NICS, O_FABRIC, O_OVERSUB, O_HOP_US, O_HOST_GBPS, O_HOST_US,
       O_MEM_GBPS, O_LL_EFF, O_SIMPLE_US, O_COLL, O_ALGO, O_PROTO, O_CHANNELS, O_FOLD,
       O_MAX_STEPS, O_JSON, O_PNG, O_STATS, O_JOBS, O_EXPLAIN };

/* What a run holds, freed by main whichever way the run ends. */
struct run {
    struct ppu_topo *one;
    struct ppu_cluster cl;
    struct sim S;
    struct row *rows;
    FILE *sf;
    cJSON *json;
    char *text;
};

static int run_sim(int argc, char **argv, struct run *R)
{
    static const struct option longopts[] = {
        {"servers", 1, 0, O_SERVERS}, {"chips", 1, 0, O_CHIPS}, {"wiring", 1, 0, O_WIRING},
        {"topo", 1, 0, O_TOPO}, {"down", 1, 0, O_DOWN}, {"icn-gbps", 1, 0, O_ICN_GBPS},
        {"icn-us", 1, 0, O_ICN_US}, {"switch-planes", 1, 0, O_PLANES},
        {"nic-gbps", 1, 0, O_NIC_GBPS}, {"nic-us", 1, 0, O_NIC_US}, {"nics", 1, 0, O_NICS},
        {"fabric", 1, 0, O_FABRIC}, {"oversub", 1, 0, O_OVERSUB}, {"hop-us", 1, 0, O_HOP_US},
        {"host-gbps", 1, 0, O_HOST_GBPS}, {"host-us", 1, 0, O_HOST_US},
        {"mem-gbps", 1, 0, O_MEM_GBPS}, {"ll-eff", 1, 0, O_LL_EFF},
        {"simple-us", 1, 0, O_SIMPLE_US}, {"coll", 1, 0, O_COLL}, {"algo", 1, 0, O_ALGO},
        {"proto", 1, 0, O_PROTO}, {"channels", 1, 0, O_CHANNELS}, {"fold", 1, 0, O_FOLD},
        {"max-steps", 1, 0, O_MAX_STEPS}, {"json", 1, 0, O_JSON}, {"png", 1, 0, O_PNG},
        {"stats", 1, 0, O_STATS}, {"jobs", 1, 0, O_JOBS}, {"explain", 0, 0, O_EXPLAIN},
        {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    struct sim_params p;
    sim_params_default(&p);
    int servers = 1, chips = 0, root = 0, channels = -1, explain = 0;
    const char *wiring = "server16", *topo_file = NULL, *down = NULL, *algo_s = "auto",
               *proto_s = "auto", *json = NULL, *png = NULL, *stats = NULL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = ncpu > 1 ? (int)(ncpu < 64 ? ncpu : 64) : 1;
    enum ppu_coll coll = PPU_COLL_ALLREDUCE;
    ppu_datatype_t dt = PPU_FLOAT32;
    ppu_redop_t op = PPU_SUM;
    size_t minb = 8, maxb = (size_t)1 << 30;
    double factor = 4, v;
    int o;
    while ((o = getopt_long(argc, argv, "b:e:f:d:o:r:h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case O_SERVERS: bad = parse_num("--servers", optarg, 1, 65536, &v); servers = (int)v; break;
        case O_CHIPS: bad = parse_num("--chips", optarg, 1, PPU_TOPO_MAX_CHIPS, &v); chips = (int)v; break;
        case O_WIRING: wiring = optarg; break;
        case O_TOPO: topo_file = optarg; break;
        case O_DOWN: down = optarg; break;
        case O_ICN_GBPS: bad = parse_num("--icn-gbps", optarg, 1e-6, 1e9, &p.icn_gbps); break;
        case O_ICN_US: bad = parse_num("--icn-us", optarg, 1e-6, 1e9, &p.icn_us); break;
        case O_PLANES: bad = parse_num("--switch-planes", optarg, 1, 64, &v); p.switch_planes = (int)v; break;
        case O_NIC_GBPS: bad = parse_num("--nic-gbps", optarg, 1e-6, 1e9, &p.nic_gbps); break;
        case O_NIC_US: bad = parse_num("--nic-us", optarg, 0, 1e9, &p.nic_us); break;
        case O_NICS: bad = parse_num("--nics", optarg, 1, PPU_TOPO_MAX_CHIPS, &v); p.nics = (int)v; break;
        case O_FABRIC:
            if (!strcmp(optarg, "rail"))
                p.fabric = SIM_FABRIC_RAIL;
            else if (!strcmp(optarg, "fattree"))
                p.fabric = SIM_FABRIC_FATTREE;
            else {
                fprintf(stderr, "ppu-sim: --fabric %s: it must be rail or fattree\n", optarg);
                bad = 1;
            }
            break;
        case O_OVERSUB: bad = parse_num("--oversub", optarg, 1, 1e6, &p.oversub); break;
        case O_HOP_US: bad = parse_num("--hop-us", optarg, 0, 1e9, &p.hop_us); break;
        case O_HOST_GBPS: bad = parse_num("--host-gbps", optarg, 1e-6, 1e9, &p.host_gbps); break;
        case O_HOST_US: bad = parse_num("--host-us", optarg, 0, 1e9, &p.host_us); break;
        case O_MEM_GBPS: bad = parse_num("--mem-gbps", optarg, 1e-6, 1e12, &p.mem_gbps); break;
        case O_LL_EFF: bad = parse_num("--ll-eff", optarg, 0.01, 1, &p.ll_eff); break;
        case O_SIMPLE_US: bad = parse_num("--simple-us", optarg, 0, 1e9, &p.simple_us); break;
        case O_COLL: {
            size_t i = 0;
            while (i < sizeof coll_val / sizeof coll_val[0] && strcmp(coll_flag[i], optarg))
                i++;
            if (i == sizeof coll_val / sizeof coll_val[0]) {
                fprintf(stderr, "ppu-sim: --coll %s: it must be allreduce, allgather, "
                        "reduce_scatter, alltoall, broadcast or reduce\n", optarg);
                bad = 1;
            } else {
                coll = coll_val[i];
            }
            break;
        }
        case O_ALGO: algo_s = optarg; break;
        case O_PROTO: proto_s = optarg; break;
        case O_CHANNELS: bad = parse_num("--channels", optarg, 1, PPU_MAX_CHANNELS, &v); channels = (int)v; break;
        case O_FOLD:
            if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
                fprintf(stderr, "ppu-sim: --fold %s: it must be on or off\n", optarg);
                bad = 1;
            }
            p.fold = !strcmp(optarg, "on");
            break;
        case O_MAX_STEPS: bad = parse_num("--max-steps", optarg, 0, 1e15, &v); p.max_steps = (long long)v; break;
        case O_JSON: json = optarg; break;
        case O_PNG: png = optarg; break;
        case O_STATS: stats = optarg; break;
        case O_JOBS: bad = parse_num("--jobs", optarg, 1, 1024, &v); jobs = (int)v; break;
        case O_EXPLAIN: explain = 1; break;
        case 'b': bad = ppu_tool_parse_size(optarg, &minb); if (bad) fprintf(stderr, "ppu-sim: -b %s: not a size\n", optarg); break;
        case 'e': bad = ppu_tool_parse_size(optarg, &maxb); if (bad) fprintf(stderr, "ppu-sim: -e %s: not a size\n", optarg); break;
        case 'f': bad = parse_num("-f", optarg, 1.0001, 1e6, &factor); break;
        case 'd': {
            int i = 0;
            while (i < PPU_NUM_DATATYPES && strcmp(ppu_datatype_name((ppu_datatype_t)i), optarg))
                i++;
            if (i == PPU_NUM_DATATYPES) {
                fprintf(stderr, "ppu-sim: -d %s: not a datatype (float32, float16, ...)\n", optarg);
                bad = 1;
            }
            dt = (ppu_datatype_t)i;
            break;
        }
        case 'o': {
            int i = 0;
            while (i < PPU_NUM_REDOPS && strcmp(ppu_redop_name((ppu_redop_t)i), optarg))
                i++;
            if (i == PPU_NUM_REDOPS) {
                fprintf(stderr, "ppu-sim: -o %s: not an operation (sum, prod, max, min, avg)\n", optarg);
                bad = 1;
            }
            op = (ppu_redop_t)i;
            break;
        }
        case 'r': bad = parse_num("-r", optarg, 0, 1 << 30, &v); root = (int)v; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "ppu-sim: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (minb > maxb) {
        fprintf(stderr, "ppu-sim: -b %zu is above -e %zu\n", minb, maxb);
        return 2;
    }

    /* the cluster */
    char err[512] = "";
    struct ppu_topo *one = R->one = calloc(1, sizeof *one);
    struct ppu_cluster *cl = &R->cl;
    if (!one) {
        fprintf(stderr, "ppu-sim: out of memory\n");
        return 2;
    }
    int from_file_cluster = 0;
    if (topo_file) {
        if (ppu_topo_load_xml(topo_file, one, err, sizeof err) != PPU_SUCCESS) {
            fprintf(stderr, "ppu-sim: %s\n", err);
            return 2;
        }
        from_file_cluster = servers == 1 && one->nservers > 1;
        if (!from_file_cluster && one->nservers > 1) { /* its first server's wiring */
            int members[PPU_TOPO_MAX_CHIPS], m = 0;
            for (int i = 0; i < one->nchips; i++)
                if (one->server[i] == one->server[0])
                    members[m++] = i;
            struct ppu_topo t;
            ppu_topo_select(&t, one, members, m);
            *one = t;
        }
    } else if (ppu_topo_sim_preset(wiring, 0, one, err, sizeof err) != PPU_SUCCESS) {
        fprintf(stderr, "ppu-sim: --wiring %s: %s\n", wiring, err);
        return 2;
    }
    if (chips > 0) {
        if (from_file_cluster || chips > one->nchips) {
            fprintf(stderr, "ppu-sim: --chips %d: the wiring %s has %d chip(s) a server\n",
                    chips, one->name, from_file_cluster ? 0 : one->nchips);
            return 2;
        }
        ppu_topo_restrict(one, chips);
    }
    if (down && ppu_topo_set_down(one, down, err, sizeof err) != PPU_SUCCESS) {
        fprintf(stderr, "ppu-sim: --down %s: %s\n", down, err);
        return 2;
    }
    if (p.switch_planes == 0)
        p.switch_planes = one->switch_planes;
    if (from_file_cluster) {
        if (ppu_cluster_from_topo(cl, one, one->nchips) != PPU_SUCCESS) {
            fprintf(stderr, "ppu-sim: out of memory\n");
            return 2;
        }
    } else {
        long long total = (long long)servers * one->nchips;
        if (total > 65536) { /* PPU_MAX_RANKS */
            fprintf(stderr, "ppu-sim: --servers %d x %d chips is %lld ranks; at most %d\n",
                    servers, one->nchips, total, 65536);
            return 2;
        }
        /* one wiring for every server */
        cl->nranks = (int)total;
        cl->nservers = servers;
        cl->server = malloc(sizeof *cl->server * (size_t)total);
        cl->local = malloc(sizeof *cl->local * (size_t)total);
        cl->stopo = malloc(sizeof *cl->stopo * (size_t)servers);
        if (!cl->server || !cl->local || !cl->stopo) {
            fprintf(stderr, "ppu-sim: out of memory\n");
            return 2;
        }
        for (int q = 0; q < cl->nranks; q++) {
            cl->server[q] = q / one->nchips;
            cl->local[q] = q % one->nchips;
        }
        for (int s = 0; s < servers; s++)
            cl->stopo[s] = one;
        snprintf(cl->name, sizeof cl->name, "%dx%.20s", servers, one->name);
    }
    int n = cl->nranks;
    if ((coll == PPU_COLL_BROADCAST || coll == PPU_COLL_REDUCE) && root >= n) {
        fprintf(stderr, "ppu-sim: -r %d: the root must be below the %d ranks\n", root, n);
        return 2;
    }

    /* the plan settings, as ppuccl reads them; --channels over PPU_NCHANNELS */
    struct ppu_plan_settings set;
    if (ppu_plan_settings_read(&set, 1, err, sizeof err) != PPU_SUCCESS) {
        fprintf(stderr, "ppu-sim: %s\n", err);
        return 2;
    }
    if (channels > 0)
        set.nchannels = channels;
    int want_algo = -1, all = !strcmp(algo_s, "all"), autop = !strcmp(algo_s, "auto");
    if (!all && !autop) {
        for (int a = 0; a < PPU_NUM_ALGOS; a++)
            if (!strcmp(ppu_algo_name(a), algo_s))
                want_algo = a;
        if (want_algo < 0 || want_algo == PPU_ALGO_DIRECT) {
            fprintf(stderr, "ppu-sim: --algo %s: not an algorithm (ring, tree, oneshot, twoshot, "
                    "pairwise, hier, hiertree), all or auto\n", algo_s);
            return 2;
        }
    }
    int want_proto = -1, both = !strcmp(proto_s, "both");
    if (strcmp(proto_s, "auto") && !both) {
        for (int q = 0; q < PPU_NUM_PROTOS; q++)
            if (!strcmp(ppu_proto_name(q), proto_s))
                want_proto = q;
        if (want_proto < 0) {
            fprintf(stderr, "ppu-sim: --proto %s: it must be simple, ll, auto or both\n", proto_s);
            return 2;
        }
    }

    double t0 = now_s();
    struct sim *S = &R->S;
    if (sim_init(S, cl, cl->name, &set, &p, err, sizeof err) != 0) {
        fprintf(stderr, "ppu-sim: %s\n", err);
        return 2;
    }
    printf("# ppu-sim %s: %d rank(s), %d server(s) x %d chip(s) (%s), %d channel(s), fabric %s "
           "(oversub %.3g), %d NIC(s)/server\n",
           ppu_coll_name(coll), n, cl->nservers, n / cl->nservers, one->name, S->ctx.nchannels,
           p.fabric == SIM_FABRIC_RAIL ? "rail" : "fattree", p.oversub,
           p.nics > 0 ? p.nics : one->nchips);
    printf("# icn %.4g GB/s %.3g us a link%s, nic %.4g GB/s %.3g us, mem %.4g GB/s, ll_eff %.2g, "
           "simple +%.3g us\n",
           p.icn_gbps > 0 ? p.icn_gbps : one->link_gbps, p.icn_us > 0 ? p.icn_us : one->link_latency_us,
           p.switch_planes > 0 ? " (switched)" : "", p.nic_gbps, p.nic_us, p.mem_gbps, p.ll_eff,
           p.simple_us);
    printf("#%12s %12s %8s %6s %5s %12s %8s %8s  %-9s %-6s %5s  %s\n", "size(B)", "count", "type",
           "redop", "root", "time(us)", "algbw", "busbw", "algo", "proto", "fold", "limit");

    size_t nrows = 0, caprows = 64;
    struct row *rows = R->rows = malloc(sizeof *rows * caprows);
    if (!rows) {
        fprintf(stderr, "ppu-sim: out of memory\n");
        return 2;
    }
    FILE *sf = NULL;
    if (stats && !(sf = R->sf = fopen(stats, "w"))) {
        fprintf(stderr, "ppu-sim: --stats %s: %s\n", stats, strerror(errno));
        return 2;
    }
    int agree = 0, compared = 0, failed = 0, unreplayed = 0;
    size_t es = ppu_datatype_size(dt);
    /* the calls to replay: each size's applicable algorithms, in order */
    struct size_info *sizes = NULL;
    struct item *items = NULL;
    int nsizes = 0, nitems = 0, capsz = 0, capit = 0;
    for (double sz = (double)minb; sz <= (double)maxb * 1.000001; sz *= factor) {
        size_t bytes = (size_t)sz;
        int per = coll == PPU_COLL_ALLGATHER || coll == PPU_COLL_REDUCE_SCATTER ||
                  coll == PPU_COLL_ALLTOALL;
        size_t count = bytes / es / (per ? (size_t)n : 1);
        struct ppu_call c = {coll, count, dt, op, root, 0, NULL};
        if (bytes == 0 && factor > 1 && minb == 0)
            sz = 1 / factor; /* from 0 on to 1 */
        bytes = ppu_plan_call_bytes(&S->ctx, &c);
        if (grow(&sizes, &capsz, nsizes, 32, sizeof *sizes) != 0)
            return fprintf(stderr, "ppu-sim: out of memory\n"), 2;
        struct size_info *si = &sizes[nsizes++];
        si->c = c;
        si->bytes = bytes;
        char why[600];
        ppu_plan_choose(&S->ctx, &c, &si->palgo, &si->pproto, why, sizeof why);
        if (explain)
            printf("# planner at %zu B: %s\n", (size_t)bytes, why);
        if (want_algo >= 0 && !ppu_plan_applies(&S->ctx, &c, want_algo))
            printf("# %zu B: %s does not apply to %s on %d ranks here\n", (size_t)bytes,
                   ppu_algo_name(want_algo), ppu_coll_name(coll), S->n);
        for (int a = 0; a < PPU_NUM_ALGOS; a++) {
            if (a == PPU_ALGO_DIRECT || !ppu_plan_applies(&S->ctx, &c, a))
                continue;
            if ((autop && a != si->palgo) || (want_algo >= 0 && a != want_algo))
                continue;
            if (grow(&items, &capit, nitems, 64, sizeof *items) != 0)
                return fprintf(stderr, "ppu-sim: out of memory\n"), 2;
            items[nitems++] = (struct item){nsizes - 1, a, 0, 0, {0}};
        }
    }
    struct sweep sw = {S, coll, n, autop, want_proto, both, set.ll_max, sf};
    if (replay_items(&sw, sizes, items, nitems, jobs) != 0) {
        free(sizes);
        free(items);
        fprintf(stderr, "ppu-sim: could not run the replays side by side (%s)\n",
                strerror(errno));
        return 2;
    }
    for (int k = 0, i = 0; k < nsizes; k++) {
        const struct size_info *si = &sizes[k];
        size_t first = nrows;
        for (; i < nitems && items[i].size == k; i++) {
            failed += items[i].failed;
            if (!items[i].have)
                continue;
            if (nrows == caprows) {
                caprows *= 2;
                struct row *more = realloc(rows, sizeof *rows * caprows);
                if (!more)
                    return fprintf(stderr, "ppu-sim: out of memory\n"), 2;
                rows = R->rows = more;
            }
            rows[nrows++] = items[i].row;
        }
        /* the model's fastest of this size, against the planner's choice;
         * on a tie (a call of 0 elements takes no time in any), the
         * planner's is the fastest */
        size_t fast = nrows;
        for (size_t i2 = first; i2 < nrows; i2++)
            if (!rows[i2].r.skipped &&
                (fast == nrows || rows[i2].r.time_us < rows[fast].r.time_us ||
                 (rows[i2].r.time_us == rows[fast].r.time_us && rows[i2].algo == si->palgo)))
                fast = i2;
        if (fast < nrows)
            rows[fast].fastest = 1;
        /* a choice over the step budget is neither right nor wrong */
        int chosen_skipped = 0;
        for (size_t i2 = first; i2 < nrows; i2++)
            chosen_skipped |= rows[i2].planner && rows[i2].r.skipped;
        if (all && fast < nrows && chosen_skipped) {
            unreplayed++;
        } else if (all && fast < nrows) {
            compared++;
            agree += rows[fast].algo == si->palgo;
        }
        for (size_t i2 = first; i2 < nrows; i2++) {
            const struct row *w = &rows[i2];
            if (w->r.skipped) {
                printf(" %12zu %12zu %8s %6s %5d %12s %8s %8s  %-9s %-6s %5s  skipped: %s%s\n",
                       w->bytes, w->count, ppu_datatype_name(dt), ppu_redop_name(op), root, "-",
                       "-", "-", ppu_algo_name(w->algo), ppu_proto_name(w->proto), "-", w->r.why,
                       all && w->planner ? " (planner's)" : "");
                continue;
            }
            const char *lim = w->r.bound_bw_us >= w->r.bound_lat_us ? w->r.busiest : "latency";
            static const char *const folds[2][3] = {{"no", "yes", "~"}, {"no", "rail", "rail~"}};
            char fw[16]; /* folded by blocks of P servers: "Psrv" */
            if (w->r.fold_servers > 1)
                snprintf(fw, sizeof fw, "%dsrv%s", w->r.fold_servers, w->r.fold == 2 ? "~" : "");
            else
                snprintf(fw, sizeof fw, "%s", folds[w->r.fold_by == FOLD_RAIL][w->r.fold]);
            printf(" %12zu %12zu %8s %6s %5d %12.2f %8.2f %8.2f  %-9s %-6s %5s  %s%s%s  [%.2fs]\n", w->bytes,
                   w->count, ppu_datatype_name(dt), ppu_redop_name(op), root, w->r.time_us,
                   w->algbw, w->busbw, ppu_algo_name(w->algo), ppu_proto_name(w->proto),
                   fw, lim,
                   all && w->fastest ? " *fastest" : "", all && w->planner ? " (planner's)" : "",
                   w->r.wall_s);
        }
    }
    fflush(stdout);
    free(sizes);
    free(items);
    double took = now_s() - t0;
    if (all)
        printf("# the planner chose the model's fastest algorithm at %d of %d size(s)\n", agree,
               compared);
    if (all && unreplayed)
        printf("# at %d more size(s) the planner's choice is over --max-steps: not replayed, "
               "not compared\n", unreplayed);
    printf("# %zu row(s) in %.2f s\n", nrows, took);
    if (sf) {
        R->sf = NULL;
        if (fclose(sf) != 0) {
            fprintf(stderr, "ppu-sim: --stats %s: %s\n", stats, strerror(errno));
            return 2;
        }
    }

    if (json || png) {
        cJSON *root_j = R->json = cJSON_CreateObject(), *par = cJSON_AddObjectToObject(root_j, "params");
        cJSON_AddStringToObject(par, "collective", ppu_coll_name(coll));
        cJSON_AddStringToObject(par, "wiring", one->name);
        cJSON_AddNumberToObject(par, "ranks", n);
        cJSON_AddNumberToObject(par, "servers", cl->nservers);
        cJSON_AddNumberToObject(par, "chips_per_server", n / cl->nservers);
        cJSON_AddNumberToObject(par, "channels", S->ctx.nchannels);
        cJSON_AddNumberToObject(par, "icn_gbps", p.icn_gbps > 0 ? p.icn_gbps : one->link_gbps);
        cJSON_AddNumberToObject(par, "icn_us", p.icn_us > 0 ? p.icn_us : one->link_latency_us);
        cJSON_AddNumberToObject(par, "switch_planes", p.switch_planes);
        cJSON_AddNumberToObject(par, "nic_gbps", p.nic_gbps);
        cJSON_AddNumberToObject(par, "nic_us", p.nic_us);
        cJSON_AddNumberToObject(par, "nics", p.nics > 0 ? p.nics : one->nchips);
        cJSON_AddStringToObject(par, "fabric", p.fabric == SIM_FABRIC_RAIL ? "rail" : "fattree");
        cJSON_AddNumberToObject(par, "oversub", p.oversub);
        cJSON_AddNumberToObject(par, "mem_gbps", p.mem_gbps);
        cJSON_AddNumberToObject(par, "ll_eff", p.ll_eff);
        cJSON_AddNumberToObject(par, "simple_us", p.simple_us);
        cJSON_AddStringToObject(par, "datatype", ppu_datatype_name(dt));
        cJSON *arr = cJSON_AddArrayToObject(root_j, "rows");
        for (size_t i = 0; i < nrows; i++) {
            const struct row *w = &rows[i];
            cJSON *o2 = cJSON_CreateObject();
            cJSON_AddNumberToObject(o2, "bytes", (double)w->bytes);
            cJSON_AddNumberToObject(o2, "count", (double)w->count);
            cJSON_AddStringToObject(o2, "algo", ppu_algo_name(w->algo));
            cJSON_AddStringToObject(o2, "proto", ppu_proto_name(w->proto));
            cJSON_AddBoolToObject(o2, "planner", w->planner);
            cJSON_AddBoolToObject(o2, "fastest", w->fastest);
            if (w->r.skipped) {
                cJSON_AddStringToObject(o2, "skipped", w->r.why);
            } else {
                cJSON_AddNumberToObject(o2, "time_us", w->r.time_us);
                cJSON_AddNumberToObject(o2, "algbw", w->algbw);
                cJSON_AddNumberToObject(o2, "busbw", w->busbw);
                cJSON_AddNumberToObject(o2, "bound_bw_us", w->r.bound_bw_us);
                cJSON_AddNumberToObject(o2, "bound_lat_us", w->r.bound_lat_us);
                cJSON_AddStringToObject(o2, "busiest", w->r.busiest);
                cJSON_AddNumberToObject(o2, "fold", w->r.fold);
                cJSON_AddStringToObject(o2, "fold_by", w->r.fold_by == FOLD_RAIL     ? "rails"
                                                       : w->r.fold_by == FOLD_SERVER ? "servers"
                                                                                     : "none");
                cJSON_AddNumberToObject(o2, "fold_servers", w->r.fold_servers);
                cJSON_AddNumberToObject(o2, "steps_replayed", (double)w->r.steps);
                cJSON_AddNumberToObject(o2, "steps_job", (double)w->r.steps_job);
                cJSON_AddNumberToObject(o2, "replay_s", w->r.wall_s);
            }
            cJSON_AddItemToArray(arr, o2);
        }
        char *text = R->text = cJSON_Print(root_j);
        char tmpj[64] = "";
        const char *jpath = json;
        if (!jpath) {
            snprintf(tmpj, sizeof tmpj, "/tmp/ppu_sim_%d.json", (int)getpid());
            jpath = tmpj;
        }
        FILE *jf = text ? fopen(jpath, "w") : NULL;
        int wrote = jf && fputs(text, jf) >= 0;
        if (jf && fclose(jf) != 0)
            wrote = 0;
        if (!wrote) {
            fprintf(stderr, "ppu-sim: --json %s: %s\n", jpath, strerror(errno));
            return 2;
        }
        if (png) {
            int prc = ppu_tool_plot("ppu-sim", PPU_SIM_PLOT, jpath, png);
            if (tmpj[0])
                unlink(tmpj);
            if (prc != 0)
                return 2;
        }
    }
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    /* Each call builds and frees schedules of tens of megabytes. Left to
     * mmap, every one of them is faulted in afresh (a third of a folded
     * ring's time); kept in the heap, a sweep faults its pages once. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, INT32_MAX);
    struct run R;
    memset(&R, 0, sizeof R);
    int rc = run_sim(argc, argv, &R);
    if (R.sf)
        fclose(R.sf);
    cJSON_free(R.text);
    cJSON_Delete(R.json);
    free(R.rows);
    sim_free(&R.S);
    ppu_cluster_free(&R.cl);
    free(R.one);
    return rc;
}
