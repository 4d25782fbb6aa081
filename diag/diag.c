/* ppu-diag's checks, run by every rank in the same order:
 *   topo  discovery against the expected wiring (rank-local: every rank
 *         holds the same cluster)
 *   icn   every directed ICN link alone (one link a server at a time, all
 *         servers at once), then all of a rank's links at once
 *   net   between servers in log2 rounds: server s with s ^ 2^k, local
 *         index j with local index j (rails in parallel), each direction
 *   coll  all-reduce and all-to-all at three sizes
 * Measurements go to every rank (an all-reduce of the receivers' figures),
 * so every rank finds the same suspects, measures them again and reaches
 * the same verdict. A link is flagged only when the best of all its
 * measurements stays below threshold x the median of the best of the
 * links like it: a busy host can only slow a measurement, never speed it.
 *
 * The tool reads the communicator's cluster (which server each rank is on
 * and each server's link graph) through the library's internal headers,
 * as ppu-topo does. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../src/comm.h"
#include "../sim/sim.h"
#include "../topology/topo_xml.h"
#include "../tools/tool_util.h"
#include "diag.h"

#define MAX_FINDINGS 256

struct finding {
    char kind[24];   /* link_down, link_missing, link_unexpected, chip_missing,
                      * slow_link, slow_network, call_failed */
    char where[64];  /* "2->6", "rank 3", "server 1", "rank 1 -> rank 5" */
    char what[240];
    double measured, expected; /* GB/s where it is a bandwidth, else 0 */
    double confidence;         /* share of measurements below the threshold */
};

/* One directed path measured: an ICN link a->b, or a->b between servers. */
struct path {
    int a, b;      /* ranks */
    int server;    /* ICN: the server; net: a's server */
    int round;     /* when it runs: paths of one round run at once */
    int slot;      /* its place among the paths of its round (CPU pinning) */
    int port_a, port_b;
    double nominal; /* the topology's GB/s, 0 unknown */
    double m[DIAG_MAX_PASSES * 3];   /* GB/s: passes, retests, confirmations */
    double lat[DIAG_MAX_PASSES * 3]; /* us, one-way (half the best round trip) */
    int nm;
    double best, median;         /* GB/s: the best of m, the median best of its like */
    double best_lat, median_lat; /* us: the least of lat, the median of its like */
    int flagged, flagged_lat;
};

struct diag {
    const struct diag_opts *o;
    ppu_comm_t comm;
    struct ppu_comm *c; /* the same, its inside */
    int rank, n;
    unsigned char *sbuf, *rbuf;
    int failed; /* a call failed: the communicator is unusable */
    char cur[64]; /* the paths being measured (where a failed call points) */
    int ncpu;   /* >0: ranks outnumber this host's CPUs; pin a pair while it is measured */
    cpu_set_t mask; /* this rank's CPUs, restored after each measurement */
    struct finding f[MAX_FINDINGS];
    int nf;
    struct path *icn, *net;
    int nicn, nnet, icn_rounds, net_rounds;
    double *alone_rank; /* all links of a rank at once: GB/s received */
    double coll[2][3];  /* busbw: allreduce, alltoall at three sizes */
    double model[2][3]; /* the timing model's busbw for the same calls, 0 none */
    double mem_gbps;    /* this host's memcpy, bytes read and written a second */
    char model_how[200];
    size_t coll_bytes[3];
    double t0;
    cJSON *topo_json;
    int *srv_off, *srv_rank; /* server s's ranks: srv_rank[srv_off[s] + local index] */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add_finding(struct diag *d, const char *kind, const char *where, double measured,
                        double expected, double confidence, const char *fmt, ...)
{
    if (d->nf == MAX_FINDINGS)
        return;
    for (int i = 0; i < d->nf; i++)
        if (!strcmp(d->f[i].kind, kind) && !strcmp(d->f[i].where, where))
            return; /* said already (both ends of a link, say) */
    struct finding *f = &d->f[d->nf++];
    snprintf(f->kind, sizeof f->kind, "%s", kind);
    snprintf(f->where, sizeof f->where, "%s", where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->what, sizeof f->what, fmt, ap);
    va_end(ap);
    f->measured = measured;
    f->expected = expected;
    f->confidence = confidence;
}

/* A library call failed: the communicator is broken from here on. The
 * error names the link or rank; it is the finding. */
static int call(struct diag *d, ppu_result_t r, const char *what, const char *where)
{
    if (r == PPU_SUCCESS)
        return 0;
    const char *how = "measuring ";
    if (!where[0]) {
        where = d->cur; /* a barrier or exchange after the paths just measured */
        how = "after measuring ";
    }
    if (!d->failed)
        add_finding(d, "call_failed", where, 0, 0, 1, "%s%s%s%s failed on rank %d: %s: %s",
                    where[0] ? how : "", where, where[0] ? ": " : "", what, d->rank,
                    ppu_get_error_string(r), ppu_get_last_error(d->comm));
    d->failed = 1;
    return -1;
}

static int barrier(struct diag *d)
{
    return call(d, ppu_barrier(d->comm, NULL), "ppu_barrier", "");
}

/* Every rank's figures summed into every rank (each slot has one writer). */
static int share(struct diag *d, double *v, size_t n)
{
    if (!n)
        return 0;
    return call(d, ppu_allreduce(v, v, n, PPU_FLOAT64, PPU_SUM, d->comm, NULL),
                "ppu_allreduce (sharing measurements)", "");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const struct ppu_topo *stopo(const struct diag *d, int server)
{
    return d->c->cl.stopo[server];
}

/* ------------------------------------------------------------------ topo */

/* Each server's ranks by local index, built once (the checks ask for
 * them inside loops over links; 16,384 ranks must not mean a scan each). */
static int index_servers(struct diag *d)
{
    const struct ppu_cluster *cl = &d->c->cl;
    d->srv_off = calloc((size_t)cl->nservers + 1, sizeof *d->srv_off);
    d->srv_rank = malloc(((size_t)d->n + 1) * sizeof *d->srv_rank);
    if (!d->srv_off || !d->srv_rank)
        return -1;
    for (int r = 0; r < d->n; r++)
        d->srv_off[cl->server[r] + 1]++;
    for (int s = 0; s < cl->nservers; s++)
        d->srv_off[s + 1] += d->srv_off[s];
    for (int r = 0; r < d->n; r++)
        d->srv_rank[d->srv_off[cl->server[r]] + cl->local[r]] = r;
    return 0;
}

static int server_size(const struct diag *d, int s)
{
    return d->srv_off[s + 1] - d->srv_off[s];
}

/* The rank of server s with local index i. */
static int rank_at(const struct diag *d, int s, int i)
{
    return d->srv_rank[d->srv_off[s] + i];
}

/* The expected graph of server s: the preset for its size, or the file's
 * server s (a file of one server is every server's). */
static int expected_server(const struct diag *d, const struct ppu_topo *file, int s, int size,
                           struct ppu_topo *e, char *err, size_t errlen)
{
    if (d->o->expect_sim) {
        if (ppu_topo_sim_preset(d->o->expect_sim, size, e, err, errlen) != PPU_SUCCESS)
            return -1;
        ppu_topo_restrict(e, size);
        return 0;
    }
    int srv = file->nservers > 1 ? s : 0, ids[PPU_TOPO_MAX_CHIPS], k = 0;
    for (int ch = 0; ch < file->nchips; ch++)
        if (file->server[ch] == srv)
            ids[k++] = ch;
    if (k == 0) {
        snprintf(err, errlen, "the expected topology has no server %d", srv);
        return -1;
    }
    ppu_topo_select(e, file, ids, k);
    return 0;
}

static const char *state_name(int st)
{
    return st == PPU_LINK_UP ? "up" : st == PPU_LINK_DOWN ? "down" : "none";
}

/* The NICs the expected wiring gives server s (its server esrv) against
 * what discovery found there: each by name, present, serving the same
 * chip (its rail), on the same NUMA node, RDMA or not. */
static void check_nics(struct diag *d, int s, const struct ppu_topo *e, int esrv,
                       const struct ppu_topo *t, cJSON *diffs)
{
    char where[32], what[200];
    snprintf(where, sizeof where, "server %d", s);
    for (int i = 0; i < e->nnics; i++) {
        const struct ppu_topo_nic *x = &e->nic[i];
        if (x->server != esrv)
            continue;
        const struct ppu_topo_nic *y = NULL;
        for (int j = 0; j < t->nnics && !y; j++)
            if (t->nic[j].server == s && !strcmp(t->nic[j].name, x->name))
                y = &t->nic[j];
        const char *kind = NULL;
        if (!y) {
            kind = "nic_missing";
            snprintf(what, sizeof what, "server %d has no NIC %s (expected%s%.0d)", s, x->name,
                     x->chip >= 0 ? " serving local chip " : "", x->chip >= 0 ? x->chip : 0);
        } else if (y->chip != x->chip || (x->numa >= 0 && y->numa != x->numa)) {
            kind = "nic_locality";
            snprintf(what, sizeof what, "NIC %s of server %d serves local chip %d on NUMA node %d; "
                     "expected chip %d on node %d", x->name, s, y->chip, y->numa, x->chip, x->numa);
        } else if (y->rdma != x->rdma) {
            kind = "nic_rdma";
            snprintf(what, sizeof what, "NIC %s of server %d is %sRDMA-capable; expected %s", x->name,
                     s, y->rdma ? "" : "not ", x->rdma ? "RDMA" : "not RDMA");
        }
        if (!kind)
            continue;
        add_finding(d, kind, where, 0, 0, 1, "%s", what);
        cJSON *dj = cJSON_CreateObject();
        cJSON_AddStringToObject(dj, "nic", x->name);
        cJSON_AddStringToObject(dj, "kind", kind);
        cJSON_AddStringToObject(dj, "what", what);
        cJSON_AddItemToArray(diffs, dj);
        if (d->rank == 0)
            printf("  %s: %s\n", kind, what);
    }
}

static int check_topo(struct diag *d)
{
    const struct diag_opts *o = d->o;
    d->topo_json = cJSON_CreateObject();
    cJSON *servers = cJSON_AddArrayToObject(d->topo_json, "servers");
    cJSON_AddStringToObject(d->topo_json, "found", d->c->cl.name);
    cJSON_AddStringToObject(d->topo_json, "source", d->c->cl.source);
    const char *exp_name = o->expect_sim ? o->expect_sim : o->expect_file;
    cJSON_AddStringToObject(d->topo_json, "expected", exp_name ? exp_name : "");
    static struct ppu_topo file, e;
    char err[256];
    if (o->expect_file && ppu_topo_load_xml(o->expect_file, &file, err, sizeof err) != PPU_SUCCESS) {
        if (d->rank == 0)
            fprintf(stderr, "ppu-diag: could not run: --expect %s: %s\n", o->expect_file, err);
        return -1;
    }
    int before = d->nf;
    if (d->rank == 0)
        printf("\n== topology: %d ranks on %d server(s), wiring %s (%s)%s%s\n", d->n,
               d->c->cl.nservers, d->c->cl.name, d->c->cl.source, exp_name ? ", expected " : "",
               exp_name ? exp_name : "");
    for (int s = 0; s < d->c->cl.nservers; s++) {
        const struct ppu_topo *t = stopo(d, s);
        int size = server_size(d, s);
        int have_e = exp_name != NULL;
        if (have_e && expected_server(d, &file, s, size, &e, err, sizeof err) != 0) {
            if (d->rank == 0)
                fprintf(stderr, "ppu-diag: could not run: expected wiring: %s\n", err);
            return -1;
        }
        cJSON *sj = cJSON_CreateObject();
        cJSON_AddNumberToObject(sj, "server", s);
        cJSON_AddNumberToObject(sj, "chips", size);
        cJSON *diffs = cJSON_AddArrayToObject(sj, "differences");
        cJSON_AddItemToArray(servers, sj);
        char where[64];
        if (have_e && e.nchips > size) {
            snprintf(where, sizeof where, "server %d", s);
            add_finding(d, "chip_missing", where, size, e.nchips, 1,
                        "server %d has %d chips (ranks); the expected wiring has %d", s, size,
                        e.nchips);
        }
        if (d->rank == 0) {
            printf("server %d (%d chips)%s\n     ", s, size,
                   have_e ? ": + up, . none, D down (expected up), M missing, X not expected" : "");
            for (int j = 0; j < size; j++)
                printf("%3d", rank_at(d, s, j));
            printf("\n");
        }
        for (int i = 0; i < size; i++) {
            if (d->rank == 0)
                printf("  %3d", rank_at(d, s, i));
            for (int j = 0; j < size; j++) {
                int got = i == j ? PPU_LINK_NONE : t->link[i][j];
                int want = !have_e || i == j || i >= e.nchips || j >= e.nchips
                               ? (have_e ? PPU_LINK_NONE : got) : e.link[i][j];
                char mark = got == PPU_LINK_UP ? '+' : got == PPU_LINK_DOWN ? '-' : '.';
                const char *kind = NULL;
                if (i != j && want == PPU_LINK_UP && got == PPU_LINK_DOWN)
                    mark = 'D', kind = "link_down";
                else if (i != j && want == PPU_LINK_UP && got == PPU_LINK_NONE)
                    mark = 'M', kind = "link_missing";
                else if (i != j && want != PPU_LINK_UP && got == PPU_LINK_UP)
                    mark = 'X', kind = "link_unexpected";
                if (i == j)
                    mark = ' ';
                if (d->rank == 0)
                    printf("%3c", mark);
                if (!kind)
                    continue;
                int ra = rank_at(d, s, i), rb = rank_at(d, s, j);
                snprintf(where, sizeof where, "%d->%d", ra, rb);
                char port[24] = "";
                int pt = t->port[i][j] != PPU_TOPO_NO_PORT ? t->port[i][j]
                         : have_e && i < e.nchips && j < e.nchips ? e.port[i][j]
                                                                  : PPU_TOPO_NO_PORT;
                if (pt != PPU_TOPO_NO_PORT)
                    snprintf(port, sizeof port, ", port %d", pt);
                add_finding(d, kind, where, 0, 0, 1, "link %d->%d (server %d%s): found %s, "
                            "expected %s", ra, rb, s, port, state_name(got), state_name(want));
                cJSON *dj = cJSON_CreateObject();
                cJSON_AddStringToObject(dj, "link", where);
                cJSON_AddStringToObject(dj, "found", state_name(got));
                cJSON_AddStringToObject(dj, "expected", state_name(want));
                cJSON_AddItemToArray(diffs, dj);
            }
            if (d->rank == 0)
                printf("\n");
        }
        if (have_e)
            check_nics(d, s, &e, file.nservers > 1 ? s : 0, t, diffs);
    }
    if (d->rank == 0)
        printf("topology: %s\n", !exp_name ? "shown (nothing to compare: no --expect)"
                                 : d->nf == before ? "PASS, as expected"
                                                   : "FAIL, differs from the expected wiring");
    return 0;
}

/* ------------------------------------------------------------- measuring */

#define PINGS 8 /* round trips a latency measurement takes the best of */

/* On a host with more ranks than CPUs a simulated link is as fast as the
 * CPUs its two ranks get: two ranks left on one CPU move half as much as
 * two on two. The pair being measured takes two CPUs of its own (by its
 * slot in the round) so that every link is measured alike. */
static void pin(struct diag *d, const struct path *p, int on)
{
    if (!d->ncpu || (d->rank != p->a && d->rank != p->b))
        return;
    if (!on) {
        sched_setaffinity(0, sizeof d->mask, &d->mask);
        return;
    }
    int want = (2 * p->slot + (d->rank == p->b)) % d->ncpu, k = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &d->mask) || k++ != want)
            continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        sched_setaffinity(0, sizeof one, &one);
        break;
    }
}

/* Do a and b share a host, and so CLOCK_MONOTONIC? */
static int one_host(const struct diag *d, const struct path *p)
{
    return d->c->bs->host_hash[p->a] == d->c->bs->host_hash[p->b];
}

static int measure_bw(struct diag *d, const struct path *p, const char *where, double *gbps)
{
    size_t bytes = d->o->bytes;
    if (d->rank == p->a)
        return call(d, ppu_send(d->sbuf, 1, PPU_UINT8, p->b, d->comm, NULL), "ping", where) ||
               call(d, ppu_send(d->sbuf, bytes, PPU_UINT8, p->b, d->comm, NULL), "ppu_send",
                    where) ? -1 : 0;
    if (call(d, ppu_recv(d->rbuf, 1, PPU_UINT8, p->a, d->comm, NULL), "ping", where))
        return -1;
    double t = now_s();
    if (call(d, ppu_recv(d->rbuf, bytes, PPU_UINT8, p->a, d->comm, NULL), "ppu_recv", where))
        return -1;
    t = now_s() - t;
    *gbps = (double)bytes / (t > 1e-9 ? t : 1e-9) / 1e9;
    return 0;
}

static int measure_lat(struct diag *d, const struct path *p, const char *where, double *us)
{
    double best = 1e9;
    int sender = d->rank == p->a;
    for (int k = 0; k < PINGS; k++) {
        if (sender) {
            double t = now_s();
            memcpy(d->sbuf, &t, sizeof t);
            if (call(d, ppu_send(d->sbuf, 8, PPU_UINT8, p->b, d->comm, NULL), "ping", where) ||
                call(d, ppu_recv(d->rbuf, 8, PPU_UINT8, p->b, d->comm, NULL), "pong", where))
                return -1;
            t = now_s() - t;
            best = t < best ? t : best;
        } else {
            if (call(d, ppu_recv(d->rbuf, 8, PPU_UINT8, p->a, d->comm, NULL), "ping", where))
                return -1;
            double sent, got = now_s();
            memcpy(&sent, d->rbuf, sizeof sent);
            best = got - sent < best ? got - sent : best;
            if (call(d, ppu_send(d->sbuf, 8, PPU_UINT8, p->a, d->comm, NULL), "pong", where))
                return -1;
        }
    }
    if (sender != one_host(d, p)) /* one host: b's one-way time; else a's half round trip */
        *us = (best > 0 ? best : 0) * 1e6 / (sender ? 2 : 1);
    return 0;
}

/* a sends the measurement to b; b times it from a one-byte ping on, so the
 * time counts the transfer, not who left the barrier first (*out: GB/s,
 * on b). Or PINGS 8-byte round trips, a->b first: on one host (one clock)
 * each ping carries its send time and b takes the least one-way time, so
 * a slow direction is told from a slow pair (*out: us, on b); across
 * hosts a takes half the least round trip (on a). */
static int measure(struct diag *d, const struct path *p, int lat, double *out)
{
    if (d->rank != p->a && d->rank != p->b)
        return 0;
    char where[64];
    snprintf(where, sizeof where, "%d->%d", p->a, p->b);
    pin(d, p, 1);
    int rc = lat ? measure_lat(d, p, where, out) : measure_bw(d, p, where, out);
    pin(d, p, 0);
    return rc;
}

/* Measure the paths whose index is in sel (all when NULL) once each, a
 * round at a time, and add the figure to each path's list. */
static int measure_paths(struct diag *d, struct path *ps, int np, int rounds, const int *sel)
{
    double *v = calloc(2 * (size_t)np + 1, sizeof *v); /* GB/s, then us */
    if (!v)
        return call(d, PPU_SYSTEM_ERROR, "calloc", "");
    int rc = 0;
    /* a round's bandwidths, then its latencies: a ping must not queue
     * behind another pair's bulk transfer on the same CPUs */
    for (int r = 0; r < rounds && !rc; r++)
        for (int lat = 0; lat < 2 && !rc; lat++) {
            int any = 0;
            size_t o = 0;
            d->cur[0] = '\0';
            for (int i = 0; i < np && !rc; i++) {
                if (ps[i].round != r || (sel && !sel[i]))
                    continue;
                any = 1;
                if (o < sizeof d->cur - 16)
                    o += (size_t)snprintf(d->cur + o, sizeof d->cur - o, "%s%d->%d", o ? ", " : "",
                                          ps[i].a, ps[i].b);
                rc = measure(d, &ps[i], lat, lat ? &v[np + i] : &v[i]);
            }
            if (any && !rc)
                rc = barrier(d);
        }
    d->cur[0] = '\0';
    if (!rc)
        rc = share(d, v, 2 * (size_t)np);
    for (int i = 0; i < np && !rc; i++)
        if ((!sel || sel[i]) && ps[i].nm < DIAG_MAX_PASSES * 3) {
            ps[i].lat[ps[i].nm] = v[np + i];
            ps[i].m[ps[i].nm++] = v[i];
        }
    free(v);
    return rc;
}

/* A latency is flagged when its least is above the median / threshold and
 * at least this much above it (small latencies jitter by more than 2x).
 * Where ranks outnumber the host's CPUs (simulated servers), a ping waits
 * for its receiver to be scheduled, and healthy links' least latencies
 * spread from 1 to 40 us (fullmesh8 on 2 CPUs: 56 links, median 9 us,
 * one link at 40 us in all six passes); there the floor is 100 us, still
 * far below a link that is really late (a 300 us delay reads 367 us). */
#define LAT_FLOOR_US 20.0
#define LAT_FLOOR_SHARED_US 100.0

static int lat_high(const struct diag *d, double us, double med)
{
    return us > med / d->o->threshold &&
           us > med + (d->ncpu ? LAT_FLOOR_SHARED_US : LAT_FLOOR_US);
}

/* Paths "like" each other are compared: an ICN link with the links of its
 * server of the same nominal bandwidth; a network path with all of them.
 * As an order, so that a sort puts each group together. */
typedef int (*kind_fn)(const struct path *, const struct path *);

static int kind_server(const struct path *x, const struct path *y)
{
    if (x->server != y->server)
        return x->server < y->server ? -1 : 1;
    return x->nominal < y->nominal ? -1 : x->nominal > y->nominal;
}

static int kind_all(const struct path *x, const struct path *y)
{
    (void)x;
    (void)y;
    return 0;
}

struct kind_sort {
    const struct path *ps;
    kind_fn kind;
};

static int cmp_kind(const void *a, const void *b, void *arg)
{
    const struct kind_sort *k = arg;
    return k->kind(&k->ps[*(const int *)a], &k->ps[*(const int *)b]);
}

/* Best of each path (most GB/s, least latency), the medians of the best
 * over the paths like it, and which are outliers: each group's medians
 * once, the groups found by sorting (not a scan of every path for each). */
static void judge(struct diag *d, struct path *ps, int np, kind_fn kind)
{
    double *tmp = malloc(2 * ((size_t)np + 1) * sizeof *tmp), *tl = tmp + np + 1;
    int *idx = malloc(((size_t)np + 1) * sizeof *idx);
    if (!tmp || !idx) {
        free(tmp);
        free(idx);
        return;
    }
    for (int i = 0; i < np; i++) {
        idx[i] = i;
        ps[i].best = 0;
        ps[i].best_lat = 1e18;
        for (int k = 0; k < ps[i].nm; k++) {
            if (ps[i].m[k] > ps[i].best)
                ps[i].best = ps[i].m[k];
            if (ps[i].lat[k] < ps[i].best_lat)
                ps[i].best_lat = ps[i].lat[k];
        }
    }
    struct kind_sort ks = {ps, kind};
    qsort_r(idx, (size_t)np, sizeof *idx, cmp_kind, &ks);
    for (int g = 0; g < np;) {
        int e = g;
        while (e < np && kind(&ps[idx[g]], &ps[idx[e]]) == 0)
            e++;
        int n = e - g;
        for (int k = 0; k < n; k++) {
            tmp[k] = ps[idx[g + k]].best;
            tl[k] = ps[idx[g + k]].best_lat;
        }
        double med = median(tmp, n), med_lat = median(tl, n);
        for (int k = g; k < e; k++) {
            struct path *p = &ps[idx[k]];
            p->median = med;
            p->median_lat = med_lat;
            p->flagged = n >= 3 && p->best < d->o->threshold * med;
            p->flagged_lat = n >= 3 && lat_high(d, p->best_lat, med_lat);
        }
        g = e;
    }
    free(idx);
    free(tmp);
}

static int below(const struct diag *d, const struct path *p)
{
    int k = 0;
    for (int i = 0; i < p->nm; i++)
        k += p->m[i] < d->o->threshold * p->median;
    return k;
}

static int above(const struct diag *d, const struct path *p)
{
    int k = 0;
    for (int i = 0; i < p->nm; i++)
        k += lat_high(d, p->lat[i], p->median_lat);
    return k;
}

#define CONFIRM_PAUSE_MS 300 /* before the last sweep of the suspects */

/* Measure, compare, measure the suspects again, compare again; confirm
 * what is left after a pause. */
static int measure_judge(struct diag *d, struct path *ps, int np, int rounds,
                         kind_fn kind, int *retested)
{
    /* A pass that is not counted first: a link's first transfer connects
     * it (links connect on first use) and faults in its buffers, and read
     * 5 to 100 times slower than the passes after it (server16 on 2 CPUs:
     * 0.1-3 GB/s against a 17 GB/s median), so the best of three passes
     * was really the best of two and healthy links sat near the limit. */
    if (measure_paths(d, ps, np, rounds, NULL))
        return -1;
    for (int i = 0; i < np; i++)
        ps[i].nm = 0;
    for (int p = 0; p < d->o->passes; p++)
        if (measure_paths(d, ps, np, rounds, NULL))
            return -1;
    judge(d, ps, np, kind);
    int *sel = calloc((size_t)np + 1, sizeof *sel), ns = 0;
    if (!sel)
        return call(d, PPU_SYSTEM_ERROR, "calloc", "");
    for (int i = 0; i < np; i++)
        ns += sel[i] = ps[i].flagged || ps[i].flagged_lat;
    *retested = ns;
    for (int p = 0; ns && p < d->o->passes; p++)
        if (measure_paths(d, ps, np, rounds, sel)) {
            free(sel);
            return -1;
        }
    if (ns)
        judge(d, ps, np, kind);
    /* only a suspect measured again may be flagged (the medians moved a
     * little with the new figures) */
    int left = 0;
    for (int i = 0; i < np; i++) {
        ps[i].flagged &= sel[i];
        ps[i].flagged_lat &= sel[i];
        left += sel[i] = ps[i].flagged || ps[i].flagged_lat;
    }
    /* Confirm after a pause, against a control: a bad link is bad a moment
     * later too, while a host that stalled one pair for a few hundred
     * milliseconds (a noisy neighbour, CPU steal) made a healthy link look
     * bad in both sweeps (2 to 5 runs in 100 on this 2-CPU host), and one
     * that lost a CPU for seconds (another program's build) read a third
     * of the median on whichever pair ran on it. So each suspect is
     * measured again beside a healthy link like it (the one nearest the
     * median), pass for pass on the same CPUs, and a flag stands only when
     * this last sweep alone is below the limit both against the median
     * and against what the control moved in the same sweep. */
    if (left) {
        struct timespec pause = {0, CONFIRM_PAUSE_MS * 1000000L};
        if (barrier(d))
            left = -1;
        nanosleep(&pause, NULL);
        int *ctl = malloc(2 * ((size_t)np + 1) * sizeof *ctl), *first = ctl + np + 1;
        if (!ctl) {
            free(sel);
            return call(d, PPU_SYSTEM_ERROR, "malloc", "");
        }
        int *want = sel; /* suspects, then their controls */
        for (int i = 0; i < np; i++) {
            ctl[i] = -1;
            first[i] = ps[i].nm;
            if (!sel[i] || sel[i] == 2)
                continue;
            /* nearest the median, in the suspect's slot first (pin()
             * puts a slot's pair on the same CPUs) */
            double gap = 1e300;
            for (int j = 0; j < np; j++) {
                if (j == i || ps[j].flagged || ps[j].flagged_lat || kind(&ps[i], &ps[j]) != 0)
                    continue;
                double g = fabs(ps[j].best - ps[i].median) + (ps[j].slot != ps[i].slot ? 1e200 : 0);
                if (g < gap) {
                    gap = g;
                    ctl[i] = j;
                }
            }
            if (ctl[i] >= 0 && !want[ctl[i]])
                want[ctl[i]] = 2;
        }
        for (int p = 0; left > 0 && p < d->o->passes; p++)
            if (measure_paths(d, ps, np, rounds, want))
                left = -1;
        for (int i = 0; left > 0 && i < np; i++) {
            if (sel[i] != 1)
                continue;
            double best = 0, least = 1e18, cbest = 0, cleast = 1e18;
            for (int k = first[i]; k < ps[i].nm; k++) {
                best = ps[i].m[k] > best ? ps[i].m[k] : best;
                least = ps[i].lat[k] < least ? ps[i].lat[k] : least;
            }
            int c = ctl[i];
            for (int k = c >= 0 ? first[c] : 0; c >= 0 && k < ps[c].nm; k++) {
                cbest = ps[c].m[k] > cbest ? ps[c].m[k] : cbest;
                cleast = ps[c].lat[k] < cleast ? ps[c].lat[k] : cleast;
            }
            ps[i].flagged &= best < d->o->threshold * ps[i].median &&
                             (c < 0 || best < d->o->threshold * cbest);
            ps[i].flagged_lat &= lat_high(d, least, ps[i].median_lat) &&
                                 (c < 0 || lat_high(d, least, cleast));
        }
        free(ctl);
    }
    free(sel);
    return left < 0 ? -1 : 0;
}

/* -------------------------------------------------------------------- icn */

static int build_icn(struct diag *d)
{
    const struct ppu_cluster *cl = &d->c->cl;
    int cap = 0;
    for (int s = 0; s < cl->nservers; s++) {
        int k = server_size(d, s);
        cap += k * (k - 1);
    }
    d->icn = calloc((size_t)cap + 1, sizeof *d->icn);
    if (!d->icn)
        return -1;
    /* One link a server at a time, every server at once; but where ranks
     * outnumber CPUs (simulated servers on one host) the servers' pairs
     * would share the CPUs and measure each other's load, so there one
     * link of the whole job at a time. */
    int shared = d->ncpu > 0, next = 0;
    for (int s = 0; s < cl->nservers; s++) {
        const struct ppu_topo *t = stopo(d, s);
        int k = server_size(d, s), round = shared ? next : 0;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                if (i == j || !ppu_topo_up(t, i, j))
                    continue;
                struct path *p = &d->icn[d->nicn++];
                p->a = rank_at(d, s, i);
                p->b = rank_at(d, s, j);
                p->server = s;
                p->round = round++;
                p->slot = shared ? 0 : s;
                p->port_a = t->port[i][j] == PPU_TOPO_NO_PORT ? -1 : t->port[i][j];
                p->port_b = t->port[j][i] == PPU_TOPO_NO_PORT ? -1 : t->port[j][i];
                p->nominal = t->gbps[i][j];
            }
        if (round > d->icn_rounds)
            d->icn_rounds = round;
        next = round;
    }
    return 0;
}

/* Every ICN link of every rank at once: what each rank receives a second,
 * over 3 rounds after a first (the first absorbs the skew of ranks
 * leaving the barrier, which on a busy host is milliseconds). */
static int all_at_once(struct diag *d)
{
    size_t per = d->o->bytes / 4 ? d->o->bytes / 4 : 1;
    int nb = 0;
    for (int i = 0; i < d->nicn; i++)
        nb += d->icn[i].b == d->rank;
    unsigned char *rb = malloc(per * (size_t)(nb ? nb : 1));
    if (!rb)
        return call(d, PPU_SYSTEM_ERROR, "malloc", "");
    int rc = barrier(d);
    double t = 0;
    for (int round = 0; round < 4 && !rc; round++) {
        if (round == 1)
            t = now_s();
        ppu_group_start();
        int k = 0;
        for (int i = 0; i < d->nicn && !rc; i++) {
            const struct path *p = &d->icn[i];
            if (p->a == d->rank)
                rc = call(d, ppu_send(d->sbuf, per, PPU_UINT8, p->b, d->comm, NULL), "ppu_send",
                          "");
            else if (p->b == d->rank)
                rc = call(d, ppu_recv(rb + per * (size_t)k++, per, PPU_UINT8, p->a, d->comm, NULL),
                          "ppu_recv", "");
        }
        ppu_result_t r = ppu_group_end();
        if (!rc)
            rc = call(d, r, "all ICN links at once (ppu_group_end)", "");
    }
    t = (now_s() - t) / 3;
    free(rb);
    d->alone_rank = calloc((size_t)d->n, sizeof *d->alone_rank);
    if (!d->alone_rank)
        return call(d, PPU_SYSTEM_ERROR, "calloc", "");
    d->alone_rank[d->rank] = (double)per * nb / (t > 1e-9 ? t : 1e-9) / 1e9;
    return rc ? rc : share(d, d->alone_rank, (size_t)d->n);
}

static void report_paths(struct diag *d, struct path *ps, int np, int icn)
{
    for (int i = 0; i < np; i++) {
        const struct path *p = &ps[i];
        char where[64];
        int sb = d->c->cl.server[p->b];
        if (p->flagged_lat) {
            char servers[48];
            if (icn)
                snprintf(servers, sizeof servers, "server %d", p->server);
            else
                snprintf(servers, sizeof servers, "server %d -> server %d", p->server, sb);
            if (icn)
                snprintf(where, sizeof where, "%d->%d", p->a, p->b);
            else
                snprintf(where, sizeof where, "rank %d -> rank %d", p->a, p->b);
            add_finding(d, "high_latency", where, p->best_lat, p->median_lat,
                        (double)above(d, p) / p->nm,
                        "%s %d->%d (%s): least latency %.1f us of %d measurements, the median "
                        "of its like %.1f us", icn ? "ICN link" : "network", p->a, p->b,
                        servers, p->best_lat, p->nm, p->median_lat);
        }
        if (!p->flagged)
            continue;
        if (icn) {
            char ports[48] = "";
            if (p->port_a >= 0 || p->port_b >= 0)
                snprintf(ports, sizeof ports, ", port %d -> port %d", p->port_a, p->port_b);
            snprintf(where, sizeof where, "%d->%d", p->a, p->b);
            add_finding(d, "slow_link", where, p->best, p->median,
                        (double)below(d, p) / p->nm,
                        "ICN link %d->%d (server %d%s): best %.2f GB/s of %d measurements, "
                        "%.0f%% of the %.2f GB/s median of its server's links",
                        p->a, p->b, p->server, ports, p->best, p->nm,
                        100 * p->best / p->median, p->median);
        } else {
            snprintf(where, sizeof where, "rank %d -> rank %d", p->a, p->b);
            add_finding(d, "slow_network", where, p->best, p->median,
                        (double)below(d, p) / p->nm,
                        "network rank %d (server %d) -> rank %d (server %d): best %.2f GB/s of "
                        "%d measurements, %.0f%% of the %.2f GB/s median between servers",
                        p->a, p->server, p->b, sb, p->best, p->nm, 100 * p->best / p->median,
                        p->median);
        }
    }
}

static int check_icn(struct diag *d)
{
    if (build_icn(d))
        return call(d, PPU_SYSTEM_ERROR, "calloc", "");
    if (d->rank == 0)
        printf("\n== ICN links: %d directed links, one a server at a time, %d pass(es) of "
               "%zu bytes\n", d->nicn, d->o->passes, d->o->bytes);
    int retested = 0, before = d->nf;
    double t = now_s();
    if (measure_judge(d, d->icn, d->nicn, d->icn_rounds, kind_server, &retested))
        return -1;
    report_paths(d, d->icn, d->nicn, 1);
    if (all_at_once(d))
        return -1;
    if (d->rank == 0) {
        printf("%-8s %-6s %-6s %9s %9s %6s %8s %8s  %s\n", "link", "ports", "server",
               "best GB/s", "median", "ratio", "lat us", "median", "");
        for (int i = 0; i < d->nicn; i++) {
            const struct path *p = &d->icn[i];
            char l[24], ports[16];
            snprintf(l, sizeof l, "%d->%d", p->a, p->b);
            if (p->port_a >= 0 || p->port_b >= 0)
                snprintf(ports, sizeof ports, "%d>%d", p->port_a, p->port_b);
            else
                snprintf(ports, sizeof ports, "-");
            if (p->flagged || p->flagged_lat || d->nicn <= 64)
                printf("%-8s %-6s %-6d %9.2f %9.2f %6.2f %8.1f %8.1f  %s%s\n", l, ports,
                       p->server, p->best, p->median, p->median > 0 ? p->best / p->median : 0,
                       p->best_lat, p->median_lat, p->flagged ? "SLOW " : "",
                       p->flagged_lat ? "LATE" : "");
        }
        double *a = malloc(sizeof(double) * (size_t)d->n);
        if (a) {
            memcpy(a, d->alone_rank, sizeof(double) * (size_t)d->n);
            printf("all links at once: median %.2f GB/s received a rank\n", median(a, d->n));
            free(a);
        }
        printf("ICN links: %s (%.1f s; %d suspect(s) measured again)\n",
               d->nf == before ? "PASS" : "FAIL", now_s() - t, retested);
    }
    return 0;
}

/* -------------------------------------------------------------------- net */

static int build_net(struct diag *d)
{
    const struct ppu_cluster *cl = &d->c->cl;
    int S = cl->nservers, cap = 0;
    for (int k = 1; k < S; k <<= 1)
        cap += 2 * d->n;
    d->net = calloc((size_t)cap + 1, sizeof *d->net);
    if (!d->net)
        return -1;
    int round = 0;
    for (int k = 1; k < S; k <<= 1, round += 2)
        for (int dir = 0; dir < 2; dir++) {
            int first = d->nnet;
            for (int s = 0; s < S; s++) {
                int s2 = s ^ k;
                if ((s & k) || s2 >= S)
                    continue; /* s is the low one of the pair */
                int src = dir ? s2 : s, dst = dir ? s : s2;
                int m = server_size(d, src) < server_size(d, dst) ? server_size(d, src)
                                                                   : server_size(d, dst);
                for (int j = 0; j < m; j++) {
                    struct path *p = &d->net[d->nnet];
                    p->slot = d->nnet++ - first;
                    p->a = rank_at(d, src, j);
                    p->b = rank_at(d, dst, j);
                    p->server = src;
                    p->round = round + dir;
                    p->port_a = p->port_b = -1;
                }
            }
        }
    d->net_rounds = round;
    return 0;
}

static int check_net(struct diag *d)
{
    if (d->c->cl.nservers < 2) {
        if (d->rank == 0)
            printf("\n== network: one server, nothing to measure\n");
        return 0;
    }
    if (build_net(d))
        return call(d, PPU_SYSTEM_ERROR, "calloc", "");
    int S = d->c->cl.nservers, lg = 0;
    while ((1 << lg) < S)
        lg++;
    if (d->rank == 0)
        printf("\n== network: %d servers, %d round(s) of pairs x 2 directions, rails in "
               "parallel, %d pass(es) of %zu bytes\n", S, lg, d->o->passes, d->o->bytes);
    int retested = 0, before = d->nf;
    double t = now_s();
    if (measure_judge(d, d->net, d->nnet, d->net_rounds, kind_all, &retested))
        return -1;
    report_paths(d, d->net, d->nnet, 0);
    /* a rank slow towards two or more partners: its NIC, not a pair */
    int *cnt = calloc(2 * (size_t)d->n + 1, sizeof *cnt); /* per rank: paths, slow ones */
    if (!cnt)
        return call(d, PPU_SYSTEM_ERROR, "calloc", "");
    for (int i = 0; i < d->nnet; i++) {
        const struct path *p = &d->net[i];
        cnt[2 * p->a]++;
        cnt[2 * p->b]++;
        cnt[2 * p->a + 1] += p->flagged;
        cnt[2 * p->b + 1] += p->flagged;
    }
    for (int r = 0; r < d->n; r++) {
        int all = cnt[2 * r], slow = cnt[2 * r + 1];
        if (slow >= 2) {
            char where[32];
            snprintf(where, sizeof where, "rank %d", r);
            add_finding(d, "slow_nic", where, 0, 0, (double)slow / all,
                        "rank %d (server %d): %d of its %d network paths are slow: its NIC or "
                        "rail", r, d->c->cl.server[r], slow, all);
        }
    }
    free(cnt);
    double el = now_s() - t;
    if (d->rank == 0) {
        printf("%-18s %-14s %9s %9s %6s %8s %8s\n", "path", "servers", "best GB/s", "median",
               "ratio", "lat us", "median");
        for (int i = 0; i < d->nnet; i++) {
            const struct path *p = &d->net[i];
            if (!p->flagged && !p->flagged_lat && d->nnet > 64)
                continue;
            char l[40], sv[24];
            snprintf(l, sizeof l, "rank %d -> %d", p->a, p->b);
            snprintf(sv, sizeof sv, "%d -> %d", p->server, d->c->cl.server[p->b]);
            printf("%-18s %-14s %9.2f %9.2f %6.2f %8.1f %8.1f  %s%s\n", l, sv, p->best,
                   p->median, p->median > 0 ? p->best / p->median : 0, p->best_lat,
                   p->median_lat, p->flagged ? "SLOW " : "", p->flagged_lat ? "LATE" : "");
        }
        /* what the same pattern takes on 1,024 servers: 10 rounds, each
         * direction, each pass, at the median measured here */
        double med = d->net[0].median > 0 ? d->net[0].median : 1;
        double per = (double)d->o->bytes / (med * 1e9) + 50e-6;
        printf("network: %s (%.1f s; %d suspect(s) measured again); on 1,024 servers the same "
               "pattern is 10 rounds x 2 directions x %d passes = %.2f s at %.2f GB/s a NIC, "
               "plus one more pass for suspects\n", d->nf == before ? "PASS" : "FAIL", el,
               retested, d->o->passes, 20.0 * d->o->passes * per, med);
    }
    return 0;
}

/* ------------------------------------------------------------------- coll */

static double median_of(const struct path *ps, int np, int lat)
{
    double *t = malloc(((size_t)np + 1) * sizeof *t);
    if (!t || np == 0) {
        free(t);
        return 0;
    }
    for (int i = 0; i < np; i++)
        t[i] = lat ? ps[i].best_lat : ps[i].best;
    double m = median(t, np);
    free(t);
    return m;
}

static double memcpy_gbps(void)
{
    size_t n = 16u << 20;
    char *a = malloc(n), *b = malloc(n);
    double best = 0;
    if (a && b) {
        memset(a, 1, n);
        memset(b, 2, n);
        for (int k = 0; k < 3; k++) {
            double t = now_s();
            memcpy(b, a, n);
            t = now_s() - t;
            double g = 2.0 * (double)n / (t > 1e-9 ? t : 1e-9) / 1e9;
            best = g > best ? g : best;
        }
    }
    free(a);
    free(b);
    return best;
}

/* What the timing model (sim/) predicts for the calls just measured, with
 * the algorithm this communicator's planner chose and the links as this
 * run measured them: each ICN link at its median alone, latencies at
 * their medians, the network at its median pair, and each chip's memory
 * at this host's memcpy shared by the ranks on a CPU (on a host with more
 * ranks than CPUs the copies, not the links, are what runs out). */
static void predict(struct diag *d, const size_t *bytes)
{
    struct sim_params p;
    sim_params_default(&p);
    if (d->icn && d->nicn) {
        p.icn_gbps = median_of(d->icn, d->nicn, 0);
        p.icn_us = median_of(d->icn, d->nicn, 1);
    }
    if (d->net && d->nnet) {
        p.nic_gbps = median_of(d->net, d->nnet, 0);
        p.nic_us = median_of(d->net, d->nnet, 1);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double share = cpus > 0 && d->c->host_ranks > cpus ? (double)cpus / d->c->host_ranks : 1;
    p.mem_gbps = d->mem_gbps > 0 ? d->mem_gbps * share : p.mem_gbps;
    p.simple_us = 0; /* in the measured latency already */
    snprintf(d->model_how, sizeof d->model_how,
             "ICN %.2f GB/s %.1f us a link, network %.2f GB/s %.1f us, memory %.1f GB/s",
             p.icn_gbps, p.icn_us, p.nic_gbps, p.nic_us, p.mem_gbps);
    struct sim S;
    char err[256];
    if (sim_init(&S, &d->c->cl, "ppu-diag", &d->c->plan.set, &p, err, sizeof err) != 0) {
        snprintf(d->model_how, sizeof d->model_how, "no model: %.180s", err);
        return;
    }
    double n = d->n;
    for (int c = 0; c < 2; c++)
        for (int z = 0; z < 3; z++) {
            struct ppu_call call = {c ? PPU_COLL_ALLTOALL : PPU_COLL_ALLREDUCE,
                                    c ? bytes[z] / 4 / (size_t)d->n : bytes[z] / 4,
                                    PPU_FLOAT32, PPU_SUM, 0, 0, NULL};
            int algo, proto;
            char why[600];
            ppu_plan_choose(&d->c->plan, &call, &algo, &proto, why, sizeof why);
            struct sim_result res;
            if (sim_run(&S, &call, algo, proto, &res, NULL) != 0 || res.skipped ||
                res.time_us <= 0)
                continue;
            double alg = (double)bytes[z] / (res.time_us * 1e-6) / 1e9;
            d->model[c][z] = c == 0 ? alg * 2 * (n - 1) / n : alg * (n - 1) / n;
        }
    sim_free(&S);
}

static int check_coll(struct diag *d)
{
    static const size_t sizes[3] = {64 << 10, 1 << 20, 16 << 20};
    size_t max = sizes[2];
    float *s = malloc(max), *r = malloc(max);
    if (!s || !r) {
        free(s);
        free(r);
        return call(d, PPU_SYSTEM_ERROR, "malloc", "");
    }
    memset(s, 0, max);
    int rc = 0;
    double n = d->n;
    for (int c = 0; c < 2 && !rc; c++)
        for (int z = 0; z < 3 && !rc; z++) {
            size_t bytes = sizes[z] / (size_t)d->n * (size_t)d->n; /* all-to-all divides it */
            double t[5];
            for (int it = 0; it < 5 && !rc; it++) {
                rc = barrier(d);
                double t0 = now_s();
                if (!rc && c == 0)
                    rc = call(d, ppu_allreduce(s, r, bytes / 4, PPU_FLOAT32, PPU_SUM, d->comm,
                                               NULL), "ppu_allreduce", "");
                else if (!rc)
                    rc = call(d, ppu_alltoall(s, r, bytes / 4 / (size_t)d->n, PPU_FLOAT32,
                                              d->comm, NULL), "ppu_alltoall", "");
                t[it] = now_s() - t0;
                double mx = t[it];
                if (!rc)
                    rc = call(d, ppu_allreduce(&mx, &mx, 1, PPU_FLOAT64, PPU_MAX, d->comm, NULL),
                              "ppu_allreduce", "");
                t[it] = mx;
            }
            if (rc)
                break;
            double med = median(t, 5);
            double alg = (double)bytes / med / 1e9;
            d->coll[c][z] = c == 0 ? alg * 2 * (n - 1) / n : alg * (n - 1) / n;
            d->coll_bytes[z] = bytes;
        }
    free(s);
    free(r);
    if (!rc && d->rank == 0) {
        d->mem_gbps = memcpy_gbps();
        predict(d, d->coll_bytes);
        printf("\n== collectives: busbw GB/s, median of 5, against the timing model (%s)\n",
               d->model_how);
        printf("%-10s %22s %22s %22s\n", "", "64 KiB", "1 MiB", "16 MiB");
        printf("%-10s %22s %22s %22s\n", "", "measured model ratio", "measured model ratio",
               "measured model ratio");
        for (int c = 0; c < 2; c++) {
            printf("%-10s", c ? "alltoall" : "allreduce");
            for (int z = 0; z < 3; z++)
                printf(" %8.2f %6.2f %6.2f", d->coll[c][z], d->model[c][z],
                       d->model[c][z] > 0 ? d->coll[c][z] / d->model[c][z] : 0);
            printf("\n");
        }
    }
    return rc;
}

/* ----------------------------------------------------------------- output */

static cJSON *paths_json(const struct path *ps, int np, int icn, const struct diag *d)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < np; i++) {
        const struct path *p = &ps[i];
        cJSON *o = cJSON_CreateObject();
        char l[40];
        snprintf(l, sizeof l, icn ? "%d->%d" : "rank %d -> rank %d", p->a, p->b);
        cJSON_AddStringToObject(o, icn ? "link" : "path", l);
        cJSON_AddNumberToObject(o, "src", p->a);
        cJSON_AddNumberToObject(o, "dst", p->b);
        cJSON_AddNumberToObject(o, "server", p->server);
        cJSON_AddNumberToObject(o, "dst_server", d->c->cl.server[p->b]);
        cJSON_AddNumberToObject(o, "src_local", d->c->cl.local[p->a]);
        cJSON_AddNumberToObject(o, "dst_local", d->c->cl.local[p->b]);
        if (icn) {
            cJSON_AddNumberToObject(o, "port_src", p->port_a);
            cJSON_AddNumberToObject(o, "port_dst", p->port_b);
            cJSON_AddNumberToObject(o, "nominal_gbps", p->nominal);
        }
        cJSON_AddItemToObject(o, "gbps", cJSON_CreateDoubleArray(p->m, p->nm));
        cJSON_AddNumberToObject(o, "best_gbps", p->best);
        cJSON_AddNumberToObject(o, "median_like_gbps", p->median);
        cJSON_AddItemToObject(o, "latency_us", cJSON_CreateDoubleArray(p->lat, p->nm));
        cJSON_AddNumberToObject(o, "best_latency_us", p->best_lat);
        cJSON_AddNumberToObject(o, "median_like_latency_us", p->median_lat);
        cJSON_AddBoolToObject(o, "flagged", p->flagged);
        cJSON_AddBoolToObject(o, "flagged_latency", p->flagged_lat);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static int write_json(struct diag *d, const char *path, double seconds, const char *verdict)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "ranks", d->n);
    cJSON_AddNumberToObject(root, "servers", d->c->cl.nservers);
    cJSON_AddNumberToObject(root, "threshold", d->o->threshold);
    cJSON_AddNumberToObject(root, "passes", d->o->passes);
    cJSON_AddNumberToObject(root, "bytes", (double)d->o->bytes);
    cJSON_AddStringToObject(root, "verdict", verdict);
    cJSON_AddNumberToObject(root, "seconds", seconds);
    cJSON *checks = cJSON_AddObjectToObject(root, "checks");
    if (d->topo_json) {
        cJSON_AddItemToObject(checks, "topo", d->topo_json);
        d->topo_json = NULL;
    }
    if (d->icn) {
        cJSON *ij = cJSON_AddObjectToObject(checks, "icn");
        cJSON_AddItemToObject(ij, "links", paths_json(d->icn, d->nicn, 1, d));
        if (d->alone_rank)
            cJSON_AddItemToObject(ij, "all_at_once_gbps",
                                  cJSON_CreateDoubleArray(d->alone_rank, d->n));
    }
    if (d->net) {
        cJSON *nj = cJSON_AddObjectToObject(checks, "net");
        cJSON_AddItemToObject(nj, "paths", paths_json(d->net, d->nnet, 0, d));
    }
    if (d->coll_bytes[0]) {
        cJSON *cj = cJSON_AddArrayToObject(checks, "coll");
        for (int c = 0; c < 2; c++)
            for (int z = 0; z < 3; z++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "coll", c ? "alltoall" : "allreduce");
                cJSON_AddNumberToObject(o, "bytes", (double)d->coll_bytes[z]);
                cJSON_AddNumberToObject(o, "busbw_gbps", d->coll[c][z]);
                cJSON_AddNumberToObject(o, "model_busbw_gbps", d->model[c][z]);
                cJSON_AddItemToArray(cj, o);
            }
    }
    cJSON *fs = cJSON_AddArrayToObject(root, "findings");
    for (int i = 0; i < d->nf; i++) {
        const struct finding *f = &d->f[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", f->kind);
        cJSON_AddStringToObject(o, "where", f->where);
        cJSON_AddStringToObject(o, "what", f->what);
        if (f->expected > 0) {
            cJSON_AddNumberToObject(o, "measured", f->measured);
            cJSON_AddNumberToObject(o, "expected", f->expected);
        }
        cJSON_AddNumberToObject(o, "confidence", f->confidence);
        cJSON_AddItemToArray(fs, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    FILE *f = text ? fopen(path, "w") : NULL;
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0)
        ok = 0;
    cJSON_free(text);
    if (!ok)
        fprintf(stderr, "ppu-diag: --json %s: %s\n", path, strerror(errno));
    return ok ? 0 : -1;
}

static void verdict_table(const struct diag *d)
{
    printf("\n== verdict: %s, %d finding(s)\n", d->nf ? "FINDINGS" : "HEALTHY", d->nf);
    if (!d->nf)
        return;
    printf("%-16s %-20s %10s %10s %6s  %s\n", "kind", "where", "measured", "expected", "conf",
           "what");
    for (int i = 0; i < d->nf; i++) {
        const struct finding *f = &d->f[i];
        char m[16] = "", e[16] = "";
        if (f->expected > 0) {
            snprintf(m, sizeof m, "%.2f", f->measured);
            snprintf(e, sizeof e, "%.2f", f->expected);
        }
        printf("%-16s %-20s %10s %10s %5.0f%%  %s\n", f->kind, f->where, m, e,
               100 * f->confidence, f->what);
    }
}

/* After a failed call: the ranks on this host whose own call failed
 * first say why (their status records), so the verdict names the link a
 * failure started from, not only the rank that told this one. */
static void failed_ranks(struct diag *d)
{
    if (!d->c->status)
        return;
    struct ppu_status_view *v = NULL;
    int n = ppu_status_scan(d->c->status->comm_id, 0, &v);
    for (int i = 0; i < n; i++) {
        const struct ppu_status_rec *r = &v[i].rec;
        if (r->state != PPU_ST_FAILED || r->rank == d->rank || strstr(r->last_error, "has failed"))
            continue; /* only the ranks that did not fail because another did */
        int a, b;
        const char *l = strstr(r->last_error, "link ");
        char where[32];
        if (l && sscanf(l, "link %d->%d is down", &a, &b) == 2) {
            snprintf(where, sizeof where, "%d->%d", a, b);
            add_finding(d, "link_dead", where, 0, 0, 1, "link %d->%d carries nothing (rank %d: "
                        "%.160s)", a, b, r->rank, r->last_error);
        } else {
            snprintf(where, sizeof where, "rank %d", r->rank);
            add_finding(d, "call_failed", where, 0, 0, 1, "rank %d's call failed: %.180s", r->rank,
                        r->last_error);
        }
    }
    free(v);
}

int diag_init_failed(ppu_result_t r)
{
    fprintf(stderr, "ppu-diag: could not run: communicator init failed: %s: %s\n",
            ppu_get_error_string(r), ppu_get_last_error(NULL));
    return DIAG_EXIT_CANNOT;
}

int diag_rank(const struct diag_opts *o, ppu_comm_t comm)
{
    struct diag *d = calloc(1, sizeof *d);
    if (!d)
        return DIAG_EXIT_CANNOT;
    d->o = o;
    d->comm = comm;
    d->c = comm;
    d->t0 = now_s();
    ppu_comm_user_rank(comm, &d->rank);
    ppu_comm_count(comm, &d->n);
    if (index_servers(d) != 0) {
        fprintf(stderr, "ppu-diag: could not run: out of memory\n");
        ppu_comm_destroy(comm);
        free(d->srv_off);
        free(d->srv_rank);
        free(d);
        return DIAG_EXIT_CANNOT;
    }
    if (sched_getaffinity(0, sizeof d->mask, &d->mask) == 0 && CPU_COUNT(&d->mask) >= 2 &&
        d->c->host_ranks > CPU_COUNT(&d->mask))
        d->ncpu = CPU_COUNT(&d->mask);
    size_t buf = o->bytes > 4 ? o->bytes : 4;
    d->sbuf = malloc(buf);
    d->rbuf = malloc(buf);
    int rc = 0;
    if (!d->sbuf || !d->rbuf) {
        fprintf(stderr, "ppu-diag: could not run: no memory for two %zu-byte buffers\n", buf);
        rc = -2;
    } else {
        memset(d->sbuf, 0x5a, buf);
    }
    if (!rc && (o->checks & DIAG_TOPO) && check_topo(d) != 0)
        rc = -2;
    if (!rc && (o->checks & DIAG_ICN))
        check_icn(d);
    if (!rc && !d->failed && (o->checks & DIAG_NET))
        check_net(d);
    if (!rc && !d->failed && (o->checks & DIAG_COLL))
        check_coll(d);
    if (d->failed && d->rank == 0)
        failed_ranks(d);
    double secs = now_s() - d->t0;
    int code = rc ? DIAG_EXIT_CANNOT : d->nf ? DIAG_EXIT_FINDINGS : DIAG_EXIT_HEALTHY;
    if (d->rank == 0 && !rc) {
        verdict_table(d);
        printf("# %d ranks, %.1f s\n", d->n, secs);
        char tmp[64] = "";
        const char *jpath = o->json;
        if (!jpath && o->png) {
            snprintf(tmp, sizeof tmp, "/tmp/ppu_diag_%d.json", (int)getpid());
            jpath = tmp;
        }
        if (jpath && write_json(d, jpath, secs, d->nf ? "findings" : "healthy") != 0)
            code = DIAG_EXIT_CANNOT;
        else if (o->png && ppu_tool_plot("ppu-diag", PPU_DIAG_PLOT, jpath, o->png) != 0)
            code = DIAG_EXIT_CANNOT;
        if (tmp[0])
            unlink(tmp);
    } else if (d->failed && d->rank != 0) {
        fprintf(stderr, "ppu-diag: rank %d: %s\n", d->rank, d->f[d->nf - 1].what);
    }
    fflush(stdout);
    if (!d->failed) {
        ppu_comm_destroy(comm);
    } else {
        if (d->rank != 0) { /* rank 0 reads the failed ranks' records first */
            struct timespec ts = {0, 500 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        ppu_comm_abort(comm);
    }
    cJSON_Delete(d->topo_json);
    free(d->srv_off);
    free(d->srv_rank);
    free(d->icn);
    free(d->net);
    free(d->alone_rank);
    free(d->sbuf);
    free(d->rbuf);
    free(d);
    return code;
}
