/* The timing model's replay (sim.h): every replayed rank's schedule, step
 * by step, in time order, over modelled links and resources. */
#include "sim.h"

#include <math.h>
#include <stdint.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

enum res_kind {
    RES_ICN = 0, /* one directed ICN link */
    RES_PORT_TX, /* a chip's switch ports, out and in (switched wiring) */
    RES_PORT_RX,
    RES_HOST_TX, /* a chip's path through host memory, out and in */
    RES_HOST_RX,
    RES_NIC_TX,
    RES_NIC_RX,
    RES_UP,   /* a server's share of the fabric's top tier, out and in */
    RES_DOWN,
    RES_MEM,  /* a chip's memory */
    RES_NKINDS
};

static const char *const res_names[RES_NKINDS] = {
    "icn link", "icn switch port (out)", "icn switch port (in)", "host path (out)",
    "host path (in)", "nic (out)", "nic (in)", "fabric uplink", "fabric downlink", "memory"};

struct sim_res {
    double free_at;
    double bw; /* bytes per us */
    double bytes;
    unsigned char kind;
};

enum link_kind { LINK_ICN = 0, LINK_HOST, LINK_NET };
static const char *const link_kinds[] = {"icn", "host", "net"};

/* One FIFO slot of a link: its message's arrival, its release by the
 * receiver, and the hops its data has made. */
struct sim_slot {
    double arr, cons;
    int hop;
};

struct sim_link {
    uint64_t key;
    int src, dst; /* folded: src on server 0, dst where the message goes */
    int slots;
    uint32_t sent, consumed;
    struct sim_slot *slot; /* per slot: what a step on this link touches, together */
    int wsend, wrecv;         /* channel parked on this link, -1 none */
    int path[4], npath;
    double alpha, bwmin;
    unsigned char kind, has_send, has_recv;
    uint64_t bytes, msgs;
};

/* A step as the replay needs it, one per cache-line third: the replay
 * jumps from channel to channel, and on 16,384 ranks every jump missed the
 * cache three times (the builder's 40-byte step, then its send and receive
 * links in two more arrays). */
struct sim_step {
    double nb;      /* bytes */
    uint32_t flags; /* PPU_STEP_* */
    int32_t slink, rlink; /* -1 none */
};

struct sim_chan {
    size_t st0; /* its first step in the step pool */
    size_t nsteps, idx;
    int rank, after, after_n; /* channels to finish first: after .. + after_n - 1 */
    int waiter, next_waiter;  /* channels waiting on this one: a list through next_waiter */
    double t_free;
    int hops;
    int done;
};

struct ev {
    double t;
    int chan;
};

typedef unsigned __int128 evkey; /* an event as the queue holds it (below) */

/* Layout (full replay; folded, server 0's only are used):
 * [ICN: rank x maxc][port tx, port rx, host tx, host rx, mem: 5 per rank]
 * [NIC tx, rx: per server x nics][up, down: per server] */
struct layout {
    int maxc, nics;
    size_t icn, chip, nic, top, total;
};

static void layout_of(const struct sim *S, struct layout *l)
{
    l->maxc = 1;
    for (int s = 0; s < S->ns; s++)
        if (S->cl->stopo[s]->nchips > l->maxc)
            l->maxc = S->cl->stopo[s]->nchips;
    l->nics = S->p.nics > 0 ? S->p.nics : l->maxc;
    l->icn = 0;
    l->chip = (size_t)S->n * l->maxc;
    l->nic = l->chip + (size_t)S->n * 5;
    l->top = l->nic + (size_t)S->ns * l->nics * 2;
    l->total = l->top + (size_t)S->ns * 2;
}

struct priv {
    /* link table: open addressing on key */
    struct sim_link *links;
    int nlinks, cap;
    int *hash;
    size_t hcap;
    struct sim_slot *pool;
    size_t pool_used, pool_cap;
    struct sim_chan *ch;
    int nch, chcap;
    /* every loaded step, channel after channel; kept from call to call, so
     * a sweep faults its pages in once */
    struct sim_step *steps;
    size_t nsteps, stcap;
    evkey *heap;
    int nheap, heapcap;
    struct layout lay; /* where each kind of resource starts in S->res */
    int rail_ok;       /* the servers' chips are alike round the server (FOLD_RAIL) */
    int rail_broken;   /* a rail-folded call used a server-wide resource */
    int no_rail;       /* replaying again without the rail fold */
    double alpha_min;
};

void sim_params_default(struct sim_params *p)
{
    memset(p, 0, sizeof *p);
    p->icn_gbps = 0; /* the topology's: 50 GB/s a link, 1 us */
    p->icn_us = 0;
    p->nic_gbps = 50; /* 400 Gb/s */
    p->nic_us = 3;
    p->nics = 0;
    p->fabric = SIM_FABRIC_RAIL;
    p->oversub = 1;
    p->hop_us = 1;
    p->host_gbps = 25;
    p->host_us = 3;
    p->mem_gbps = 1600; /* HBM2e, of 2 TB/s */
    p->ll_eff = 0.5;
    p->simple_us = 1;
    p->fold = 1;
    p->max_steps = 20000000;
}

/* ---- resources ---- */

static double icn_gbps(const struct sim *S, int s, int a, int b)
{
    if (S->p.icn_gbps > 0)
        return S->p.icn_gbps;
    double g = S->cl->stopo[s]->gbps[a][b];
    return g > 0 ? g : S->cl->stopo[s]->link_gbps;
}

static double icn_us(const struct sim *S, int s, int a, int b)
{
    if (S->p.icn_us > 0)
        return S->p.icn_us;
    double u = S->cl->stopo[s]->latency_us[a][b];
    return u > 0 ? u : S->cl->stopo[s]->link_latency_us;
}

static void set_res(struct sim_res *r, unsigned char kind, double gbps)
{
    r->kind = kind;
    r->bw = gbps * 1e3; /* GB/s -> bytes/us */
    r->free_at = 0;
    r->bytes = 0;
}

static int init_res(struct sim *S)
{
    struct layout l;
    layout_of(S, &l);
    S->nres = (int)l.total;
    S->res = calloc(l.total, sizeof *S->res);
    if (!S->res)
        return -1;
    int planes = S->p.switch_planes;
    for (int r = 0; r < S->n; r++) {
        int s = S->cl->server[r], a = S->cl->local[r];
        const struct ppu_topo *t = S->cl->stopo[s];
        for (int b = 0; b < l.maxc; b++)
            set_res(&S->res[l.icn + (size_t)r * l.maxc + b], RES_ICN,
                    b < t->nchips ? icn_gbps(S, s, a, b) : 0);
        double port = (planes > 0 ? planes : t->ports_per_chip) * icn_gbps(S, s, a, a == 0);
        struct sim_res *c = &S->res[l.chip + (size_t)r * 5];
        set_res(&c[0], RES_PORT_TX, port);
        set_res(&c[1], RES_PORT_RX, port);
        set_res(&c[2], RES_HOST_TX, S->p.host_gbps);
        set_res(&c[3], RES_HOST_RX, S->p.host_gbps);
        set_res(&c[4], RES_MEM, S->p.mem_gbps);
    }
    for (int s = 0; s < S->ns; s++) {
        for (int k = 0; k < l.nics; k++) {
            set_res(&S->res[l.nic + ((size_t)s * l.nics + k) * 2], RES_NIC_TX, S->p.nic_gbps);
            set_res(&S->res[l.nic + ((size_t)s * l.nics + k) * 2 + 1], RES_NIC_RX, S->p.nic_gbps);
        }
        double top = l.nics * S->p.nic_gbps / (S->p.oversub > 1 ? S->p.oversub : 1);
        set_res(&S->res[l.top + (size_t)s * 2], RES_UP, top);
        set_res(&S->res[l.top + (size_t)s * 2 + 1], RES_DOWN, top);
    }
    return 0;
}

/* ---- set-up ---- */

int sim_init(struct sim *S, const struct ppu_cluster *cl, const char *name,
             const struct ppu_plan_settings *set, const struct sim_params *p, char *err,
             size_t errlen)
{
    memset(S, 0, sizeof *S);
    S->cl = cl;
    S->p = *p;
    S->n = cl->nranks;
    S->ns = cl->nservers;
    const struct ppu_topo *t0 = cl->stopo[0];
    /* the planner's model: this cluster's links, not this host's */
    struct ppu_model m;
    double g = p->icn_gbps > 0 ? p->icn_gbps : t0->link_gbps;
    double a = p->icn_us > 0 ? p->icn_us : t0->link_latency_us;
    m.alpha_us = a + p->simple_us;
    m.link_gbps[PPU_PROTO_SIMPLE] = g;
    m.link_gbps[PPU_PROTO_LL] = g * p->ll_eff;
    m.mem_gbps[PPU_PROTO_SIMPLE] = p->mem_gbps;
    m.mem_gbps[PPU_PROTO_LL] = p->mem_gbps * p->ll_eff;
    m.net_alpha_us = p->nic_us + p->simple_us;
    m.net_gbps = p->nic_gbps;
    /* switch planes: a message has all of a chip's ports, its messages
     * share them */
    m.chip_gbps = 0;
    m.link_is_copy = 0;
    if (p->switch_planes > 0) {
        for (int q = 0; q < PPU_NUM_PROTOS; q++)
            m.link_gbps[q] *= p->switch_planes;
        m.chip_gbps = g * p->switch_planes;
    }
    /* a fat tree takes every message between servers over its top tier;
     * a rail-optimized fabric only those between rails */
    m.net_top_us = p->fabric == SIM_FABRIC_FATTREE ? 0 : p->hop_us;
    if (p->fabric == SIM_FABRIC_FATTREE)
        m.net_alpha_us += p->hop_us;
    if (ppu_plan_ctx_init(&S->ctx, S->n, cl->server, cl->stopo, name, set, &m, err, errlen) !=
        PPU_SUCCESS)
        return -1;
    S->L = S->ctx.hier_ok || S->ns == 1 ? S->ctx.per_server : 0;
    S->fold_p = 1;
    S->uniform = S->L > 0;
    for (int s = 1; s < S->ns && S->uniform; s++)
        S->uniform = cl->stopo[s] == cl->stopo[0];
    for (int r = 0; r < S->n && S->uniform; r++)
        S->uniform = cl->server[r] == r / S->L;
    struct priv *v = calloc(1, sizeof *v);
    if (!v || init_res(S) != 0) {
        free(v);
        snprintf(err, errlen, "out of memory for the model of %d ranks", S->n);
        ppu_plan_ctx_free(&S->ctx);
        return -1;
    }
    S->priv = v;
    layout_of(S, &v->lay);
    /* FOLD_RAIL: turning chips one place round the server maps the wiring
     * onto itself, each chip has a NIC of its own, and servers meet over
     * their rails (sim.h) */
    if (S->uniform && S->L > 1 && S->ns > 1 && v->lay.nics >= S->L &&
        S->p.fabric == SIM_FABRIC_RAIL && cl->stopo[0]->nchips == S->L) {
        const struct ppu_topo *t = cl->stopo[0];
        int ok = 1, L = S->L;
        for (int x = 0; x < L && ok; x++)
            for (int y = 0; y < L && ok; y++) {
                int x1 = (x + 1) % L, y1 = (y + 1) % L, u = x != y && ppu_topo_up(t, x, y);
                if (u != (x1 != y1 && ppu_topo_up(t, x1, y1)))
                    ok = 0;
                else if (u && (icn_gbps(S, 0, x, y) != icn_gbps(S, 0, x1, y1) ||
                               icn_us(S, 0, x, y) != icn_us(S, 0, x1, y1)))
                    ok = 0;
            }
        /* and every chip's own resources alike: its ports (their speed
         * comes from one of its links), host path and memory */
        for (int x = 1; x < L && ok; x++)
            for (int k = 0; k < 5 && ok; k++)
                ok = S->res[v->lay.chip + (size_t)x * 5 + k].bw == S->res[v->lay.chip + k].bw;
        v->rail_ok = ok;
    }
    return 0;
}

static void priv_reset(struct priv *v)
{
    v->nch = 0;
    v->nsteps = 0;
    v->nlinks = 0;
    v->pool_used = 0;
    v->nheap = 0;
    if (v->hash)
        memset(v->hash, 0xff, sizeof *v->hash * v->hcap);
}

void sim_free(struct sim *S)
{
    struct priv *v = S->priv;
    if (v) {
        priv_reset(v);
        free(v->links);
        free(v->hash);
        free(v->pool);
        free(v->ch);
        free(v->steps);
        free(v->heap);
        free(v);
    }
    free(S->res);
    ppu_plan_ctx_free(&S->ctx);
    memset(S, 0, sizeof *S);
}

/* ---- links ---- */

/* ring: the ring channel's index, or -1 - lane for a peer link */
static uint64_t link_key(const struct sim *S, int src, int dst, int ring)
{
    return ((uint64_t)src * (uint64_t)S->n + (uint64_t)dst) * (PPU_MAX_CHANNELS + PPU_SCHED_LANES) +
           (uint64_t)(ring + PPU_SCHED_LANES);
}

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static int hash_grow(struct priv *v)
{
    size_t ncap = v->hcap ? v->hcap * 2 : 1024;
    int *h = malloc(sizeof *h * ncap);
    if (!h)
        return -1;
    memset(h, 0xff, sizeof *h * ncap);
    for (int i = 0; i < v->nlinks; i++) {
        size_t j = mix(v->links[i].key) & (ncap - 1);
        while (h[j] >= 0)
            j = (j + 1) & (ncap - 1);
        h[j] = i;
    }
    free(v->hash);
    v->hash = h;
    v->hcap = ncap;
    return 0;
}

static int nic_of(const struct sim *S, const struct layout *l, int r)
{
    return S->cl->local[r] % l->nics;
}

/* Folded by servers, the rank of the first fold_p servers whose per-rank
 * resources (ports, memory) stand for rank r's: r's place in its block. */
static int fold_rep(const struct sim *S, int r)
{
    return (S->cl->server[r] % S->fold_p) * S->L + S->cl->local[r];
}

/* The resources a message from src to dst holds, its latency and kind. */
static void link_path(const struct sim *S, int fold, struct sim_link *k)
{
    const struct priv *v = S->priv;
    struct layout l = v->lay;
    int a = k->src, b = k->dst;
    int sa = S->cl->server[a], sb = S->cl->server[b];
    int la = S->cl->local[a], lb = S->cl->local[b];
    /* resources of a rank and a server: their representatives' when
     * folded (server 0's; or, folded by rails, the server's chip 0: src is
     * one, and dst's chip, port and NIC carry what its chip 0's do) */
    int ra = a, rb = b, qa = sa, qb = sb;
    if (fold == FOLD_SERVER) /* servers 0 .. fold_p - 1 stand for all */
        qa = sa % S->fold_p, qb = sb % S->fold_p, ra = fold_rep(S, a), rb = fold_rep(S, b);
    else if (fold == FOLD_RAIL)
        rb = sb * S->L;
    k->npath = 0;
    if (sa == sb) {
        const struct ppu_topo *t = S->cl->stopo[sa];
        if (ppu_topo_up(t, la, lb)) {
            k->kind = LINK_ICN;
            k->alpha = icn_us(S, sa, la, lb);
            if (S->p.switch_planes > 0) {
                k->path[k->npath++] = (int)(l.chip + (size_t)ra * 5 + 0);
                k->path[k->npath++] = (int)(l.chip + (size_t)rb * 5 + 1);
            } else {
                k->path[k->npath++] = (int)(l.icn + (size_t)ra * l.maxc + lb);
            }
        } else {
            k->kind = LINK_HOST;
            k->alpha = S->p.host_us;
            k->path[k->npath++] = (int)(l.chip + (size_t)ra * 5 + 2);
            k->path[k->npath++] = (int)(l.chip + (size_t)rb * 5 + 3);
        }
    } else {
        k->kind = LINK_NET;
        int na = nic_of(S, &l, a), nb = nic_of(S, &l, b);
        k->alpha = S->p.nic_us;
        k->path[k->npath++] = (int)(l.nic + ((size_t)qa * l.nics + na) * 2);
        /* rail-optimized: a NIC's rail switch reaches the same NIC of
         * every server; other traffic and a fat tree go over the top */
        if (S->p.fabric == SIM_FABRIC_FATTREE || na != nb) {
            k->path[k->npath++] = (int)(l.top + (size_t)qa * 2);
            k->path[k->npath++] = (int)(l.top + (size_t)qb * 2 + 1);
            k->alpha += S->p.hop_us;
            /* a server's share of the top is every chip's: folded by
             * rails, one chip's traffic would stand for sixteen's */
            if (fold == FOLD_RAIL)
                ((struct priv *)S->priv)->rail_broken = 1;
        }
        int nr = fold == FOLD_RAIL ? nic_of(S, &l, rb) : nb; /* the receiving NIC's resource */
        k->path[k->npath++] = (int)(l.nic + ((size_t)qb * l.nics + nr) * 2 + 1);
    }
    k->bwmin = INFINITY;
    for (int i = 0; i < k->npath; i++)
        if (S->res[k->path[i]].bw < k->bwmin)
            k->bwmin = S->res[k->path[i]].bw;
}

/* The link (src, dst, ring); src and dst already folded. */
static int link_get(struct sim *S, int fold, int src, int dst, int ring, int slots)
{
    struct priv *v = S->priv;
    uint64_t key = link_key(S, src, dst, ring);
    if ((size_t)(v->nlinks + 1) * 2 > v->hcap && hash_grow(v) != 0)
        return -1;
    size_t j = mix(key) & (v->hcap - 1);
    while (v->hash[j] >= 0) {
        if (v->links[v->hash[j]].key == key)
            return v->hash[j];
        j = (j + 1) & (v->hcap - 1);
    }
    if (v->nlinks == v->cap) {
        int nc = v->cap ? v->cap * 2 : 256;
        struct sim_link *nl = realloc(v->links, sizeof *nl * (size_t)nc);
        if (!nl)
            return -1;
        v->links = nl;
        v->cap = nc;
    }
    if (v->pool_used + (size_t)slots > v->pool_cap) {
        size_t nc = v->pool_cap ? v->pool_cap * 2 : 4096;
        while (nc < v->pool_used + (size_t)slots)
            nc *= 2;
        struct sim_slot *np = realloc(v->pool, sizeof *np * nc);
        if (!np)
            return -1;
        /* re-point the links' slot arrays into the moved pool */
        for (int i = 0; i < v->nlinks; i++) {
            v->links[i].slot = np + (v->links[i].slot - v->pool);
        }
        v->pool = np;
        v->pool_cap = nc;
    }
    int id = v->nlinks++;
    struct sim_link *k = &v->links[id];
    memset(k, 0, sizeof *k);
    k->key = key;
    k->src = src;
    k->dst = dst;
    k->slots = slots;
    k->slot = v->pool + v->pool_used;
    v->pool_used += (size_t)slots;
    k->wsend = k->wrecv = -1;
    link_path(S, fold, k);
    v->hash[j] = id;
    return id;
}

/* Shift a rank by k servers (folded replay). */
static int shift(const struct sim *S, int r, int k)
{
    long long q = (long long)r + (long long)k * S->L;
    q %= S->n;
    return (int)(q < 0 ? q + S->n : q);
}

/* The image of rank r under a fold's k-th symmetry: k blocks of fold_p
 * servers on (FOLD_SERVER), or k chips on round its own server
 * (FOLD_RAIL, on uniform servers: rank = server * L + local). */
static int image(const struct sim *S, int how, int r, int k)
{
    if (how != FOLD_RAIL)
        return shift(S, r, how == FOLD_SERVER ? k * S->fold_p : k);
    int L = S->L, j = ((r % L + k) % L + L) % L;
    return r - r % L + j;
}

/* Which image of its representative r is: the k above. */
static int image_k(const struct sim *S, int how, int r)
{
    return how == FOLD_RAIL ? r % S->L : S->cl->server[r] / S->fold_p;
}

/* How many images a representative stands for. */
static int images(const struct sim *S, int how)
{
    return how == FOLD_SERVER ? S->ns / S->fold_p : how == FOLD_RAIL ? S->L : 1;
}

/* The i-th representative: the first fold_p servers' ranks, or every
 * server's chip 0. */
static int rep_rank(const struct sim *S, int how, int i)
{
    return how == FOLD_RAIL ? i * S->L : i;
}

/* ---- loading a rank's schedule ---- */

static int add_rank(struct sim *S, int fold, int rank, const struct ppu_sched *s)
{
    struct priv *v = S->priv;
    const int *pos = S->ctx.ring_pos; /* a rank's place on each ring */
    int n = S->n, base = v->nch;
    if (base + s->nchannels > v->chcap) {
        int cap = v->chcap ? v->chcap : 64;
        while (cap < base + s->nchannels)
            cap *= 2;
        struct sim_chan *nc = realloc(v->ch, sizeof *nc * (size_t)cap);
        if (!nc)
            return -1;
        v->ch = nc;
        v->chcap = cap;
    }
    size_t need = v->nsteps + ppu_sched_nsteps(s);
    if (need > v->stcap) {
        size_t cap = v->stcap ? v->stcap : 4096;
        while (cap < need)
            cap *= 2;
        struct sim_step *ns = realloc(v->steps, sizeof *ns * cap);
        if (!ns)
            return -1;
        v->steps = ns;
        v->stcap = cap;
    }
    v->nch += s->nchannels;
    for (int c = 0; c < s->nchannels; c++) {
        const struct ppu_sched_channel *sc = &s->ch[c];
        struct sim_chan *ch = &v->ch[base + c];

        memset(ch, 0, sizeof *ch);
        ch->st0 = v->nsteps;
        ch->nsteps = sc->nsteps;
        ch->rank = rank;
        ch->after = sc->after >= 0 ? base + sc->after : -1;
        ch->after_n = sc->after_n;
        ch->waiter = ch->next_waiter = -1;
        v->nsteps += sc->nsteps;
        /* a channel's steps use a few links over and over (a ring's two,
         * a tree node's parent and children): a small cache by peer and
         * direction saves the hash lookup */
        int mp[2][8], mid[2][8];
        for (int d = 0; d < 2; d++)
            for (int e = 0; e < 8; e++)
                mp[d][e] = -2, mid[d][e] = -1;
#define MEMO(d, peer) (mp[d][((peer) + 1) & 7] == (peer))
#define MEMO_ID(d, peer) mid[d][((peer) + 1) & 7]
#define MEMO_SET(d, peer, id) (mp[d][((peer) + 1) & 7] = (peer), mid[d][((peer) + 1) & 7] = (id))
        for (size_t i = 0; i < sc->nsteps; i++) {
            const struct ppu_step *st = &sc->steps[i];
            struct sim_step *cs = &v->steps[ch->st0 + i];
            cs->nb = (double)st->count * (double)s->esize;
            cs->flags = st->flags;
            cs->slink = cs->rlink = -1;
            /* the cache's key: the peer and its lane (-1: the ring) */
            int sk = st->send_peer >= 0 ? st->send_peer + ppu_step_lane(st) * n : -1;
            int rk = st->recv_peer >= 0 ? st->recv_peer + ppu_step_lane(st) * n : -1;
            if ((st->flags & PPU_STEP_SEND) && MEMO(0, sk)) {
                cs->slink = MEMO_ID(0, sk);
            } else if (st->flags & PPU_STEP_SEND) {
                int ring = st->send_peer >= 0 ? -1 - ppu_step_lane(st) : c;
                int dst = st->send_peer >= 0
                              ? st->send_peer
                              : S->ctx.rings[(size_t)c * n + (pos[(size_t)c * n + rank] + 1) % n];
                int slots = ring >= 0 ? S->ctx.set.fifo_slots : S->ctx.set.peer_slots;
                int id = link_get(S, fold, rank, dst, ring, slots);
                if (id < 0)
                    return -1;
                v->links[id].has_send = 1;
                cs->slink = id;
                MEMO_SET(0, sk, id);
            }
            if ((st->flags & PPU_STEP_RECV) && MEMO(1, rk)) {
                cs->rlink = MEMO_ID(1, rk);
            } else if (st->flags & PPU_STEP_RECV) {
                int ring = st->recv_peer >= 0 ? -1 - ppu_step_lane(st) : c;
                int src = st->recv_peer >= 0
                              ? st->recv_peer
                              : S->ctx.rings[(size_t)c * n + (pos[(size_t)c * n + rank] + n - 1) % n];
                int dst = rank;
                if (fold) { /* the message is the image of one a representative sends */
                    int k = image_k(S, fold, src);
                    src = image(S, fold, src, -k);
                    dst = image(S, fold, dst, -k);
                }
                int slots = ring >= 0 ? S->ctx.set.fifo_slots : S->ctx.set.peer_slots;
                int id = link_get(S, fold, src, dst, ring, slots);
                if (id < 0)
                    return -1;
                v->links[id].has_recv = 1;
                cs->rlink = id;
                MEMO_SET(1, rk, id);
            }
        }
#undef MEMO
#undef MEMO_ID
#undef MEMO_SET
    }
    return 0;
}

/* ---- the event queue: a binary heap on (time, channel) ----
 * An entry is one 128-bit key: the time's bits (a time is never negative,
 * so its IEEE bits order as it does) above the channel. One integer
 * compare orders two entries, without a branch on ties, and pop moves the
 * hole to a leaf along the smaller children before placing the last entry
 * (one compare a level instead of two). */

static evkey ev_key(double t, int chan)
{
    uint64_t b;
    memcpy(&b, &t, sizeof b);
    return (evkey)b << 32 | (uint32_t)chan;
}

static double ev_t(evkey k)
{
    uint64_t b = (uint64_t)(k >> 32);
    double t;
    memcpy(&t, &b, sizeof t);
    return t;
}

static double top_t(const struct priv *v) { return ev_t(v->heap[0]); }

static int push(struct priv *v, double t, int chan)
{
    if (v->nheap == v->heapcap) {
        int nc = v->heapcap ? v->heapcap * 2 : 1024;
        evkey *h = realloc(v->heap, sizeof *h * (size_t)nc);
        if (!h)
            return -1;
        v->heap = h;
        v->heapcap = nc;
    }
    int i = v->nheap++;
    evkey e = ev_key(t, chan);
    while (i > 0) {
        int p = (i - 1) / 2;
        if (e >= v->heap[p])
            break;
        v->heap[i] = v->heap[p];
        i = p;
    }
    v->heap[i] = e;
    return 0;
}

static struct ev pop(struct priv *v)
{
    evkey *h = v->heap, top = h[0], e = h[--v->nheap];
    int n = v->nheap, i = 0;
    if (n > 0) {
        for (int c; (c = 2 * i + 1) < n; i = c) {
            c += c + 1 < n && h[c + 1] < h[c];
            h[i] = h[c];
        }
        while (i > 0 && e < h[(i - 1) / 2]) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = e;
    }
    return (struct ev){ev_t(top), (int)(uint32_t)top};
}

static double maxd(double a, double b) { return a > b ? a : b; }

/* Bytes a step reads and writes in its chip's memory (a message's bytes
 * on the link are the link's). */
static double mem_bytes(uint32_t f, double nb)
{
    double rd = 0, wr = 0;
    if (f & PPU_STEP_RECV)
        rd += nb;
    if (f & PPU_STEP_INPUT)
        rd += nb;
    if (f & PPU_STEP_ACCUM)
        rd += nb;
    if (rd == 0 && (f & PPU_STEP_SEND))
        rd = nb; /* sends from its output */
    if ((f & (PPU_STEP_OUTPUT | PPU_STEP_ACCUM)) || !(f & PPU_STEP_SEND))
        wr = nb;
    return rd + wr;
}

/* Can step st of channel chan run? 0: it waits for a message not yet sent
 * or a slot not yet free, and the channel is parked on that link (the
 * link's other end wakes it); 1: *ready raised to when its message has
 * arrived and its send slot is released. */
static int step_ready(struct priv *v, const struct sim_step *st, int chan, double *ready)
{
    if (st->rlink >= 0) {
        struct sim_link *k = &v->links[st->rlink];
        if (k->sent == k->consumed) {
            k->wrecv = chan;
            return 0;
        }
        *ready = maxd(*ready, k->slot[k->consumed % k->slots].arr);
    }
    if (st->slink >= 0) {
        struct sim_link *k = &v->links[st->slink];
        if (k->sent - k->consumed >= (uint32_t)k->slots) {
            k->wsend = chan;
            return 0;
        }
        if (k->sent >= (uint32_t)k->slots)
            *ready = maxd(*ready, k->slot[(k->sent - k->slots) % k->slots].cons);
    }
    return 1;
}

/* Run the loaded channels to the end. Returns the last end time, or -1
 * (deadlock: why filled). */
static double replay(struct sim *S, int proto, int *max_hops, char *why,
                     size_t wlen)
{
    struct priv *v = S->priv;
    struct layout l;
    layout_of(S, &l);
    double end = 0, extra = proto == PPU_PROTO_SIMPLE ? S->p.simple_us : 0;
    double eff = proto == PPU_PROTO_LL ? S->p.ll_eff : 1;
    for (int i = 0; i < v->nch; i++)
        if (push(v, 0, i) != 0)
            return -2;
    int left = v->nch;
    while (v->nheap > 0) {
        struct ev e = pop(v);
        struct sim_chan *ch = &v->ch[e.chan];

        /* run this channel's steps while none of another channel is due
         * earlier (what the queue holds): no push and pop per step */
        for (double t = e.t;;) {
            if (ch->done)
                break;
            if (ch->t_free > t) {
                /* woken by a message before its last step's memory work
                 * ended (it parked early, below): back in time order */
                t = ch->t_free;
                if (v->nheap > 0 && top_t(v) < t) {
                    if (push(v, t, e.chan) != 0)
                        return -2;
                    break;
                }
            }
            int first = -1; /* the first unfinished channel it runs after */
            for (int i = 0; ch->after >= 0 && i < ch->after_n && first < 0; i++)
                if (!v->ch[ch->after + i].done)
                    first = ch->after + i;
            if (first >= 0) {
                ch->next_waiter = v->ch[first].waiter;
                v->ch[first].waiter = e.chan;
                break;
            }
            if (ch->idx == ch->nsteps) {
                ch->done = 1;
                left--;
                end = maxd(end, t);
                for (int w = ch->waiter; w >= 0; w = v->ch[w].next_waiter)
                    if (push(v, t, w) != 0)
                        return -2;
                ch->waiter = -1;
                break;
            }
            const struct sim_step *st = &v->steps[ch->st0 + ch->idx];
            struct sim_link *rl = st->rlink >= 0 ? &v->links[st->rlink] : NULL;
            struct sim_link *sl = st->slink >= 0 ? &v->links[st->slink] : NULL;
            double ready = t;
            if (!step_ready(v, st, e.chan, &ready))
                break;
            if (ready > t) {
                if (v->nheap == 0 || ready <= top_t(v)) {
                    t = ready; /* nothing else is due first */
                    continue;
                }
                if (push(v, ready, e.chan) != 0)
                    return -2;
                break;
            }
            /* run the step at t */
            double nb = st->nb;
            int hops = ch->hops;
            if (rl) {
                int h = rl->slot[rl->consumed % rl->slots].hop;
                hops = h > hops ? h : hops;
            }
            struct sim_res *mem =
                &S->res[l.chip +
                        (size_t)(S->folded == FOLD_SERVER ? fold_rep(S, ch->rank) : ch->rank) * 5 +
                        4];
            double mb = mem_bytes(st->flags, nb);
            double c0 = maxd(t, mem->free_at), cend = c0 + mb / mem->bw;
            mem->free_at = cend;
            mem->bytes += mb;
            double tend = cend;
            if (sl) {
                /* the path's resources in series, each first come first
                 * served: a message enters a resource once it has entered
                 * the one before and the resource is free, and leaves it
                 * no earlier than it left the one before (cut-through) */
                double wire = nb / eff, in = t, done = t;
                for (int i = 0; i < sl->npath; i++) {
                    struct sim_res *r = &S->res[sl->path[i]];
                    in = maxd(in, r->free_at);
                    done = maxd(done, in + wire / r->bw);
                    r->free_at = done;
                    r->bytes += wire;
                }
                double out = maxd(done, cend);
                uint32_t m = sl->sent % sl->slots;
                sl->slot[m].arr = out + sl->alpha + extra;
                sl->slot[m].hop = hops + 1;
                sl->sent++;
                sl->bytes += (uint64_t)nb;
                sl->msgs++;
                if (sl->wrecv >= 0) {
                    if (push(v, sl->slot[m].arr, sl->wrecv) != 0)
                        return -2;
                    sl->wrecv = -1;
                }
            }
            if (rl) {
                rl->slot[rl->consumed % rl->slots].cons = tend;
                rl->consumed++;
                if (rl->wsend >= 0) {
                    if (push(v, tend, rl->wsend) != 0)
                        return -2;
                    rl->wsend = -1;
                }
            }
            ch->hops = hops;
            if (hops > *max_hops)
                *max_hops = hops;
            ch->idx++;
            ch->t_free = tend;
            if (v->nheap > 0 && tend > top_t(v)) {
                /* wake up once, when the next step can run: parked on
                 * the link it waits for, or at its message's arrival or
                 * its slot's release (the loop's entry keeps time order
                 * when the message comes before tend) */
                double when = tend;
                if (ch->idx < ch->nsteps &&
                    !step_ready(v, &v->steps[ch->st0 + ch->idx], e.chan, &when))
                    break;
                if (push(v, when, e.chan) != 0)
                    return -2;
                break;
            }
            t = tend;
        }
    }
    if (left > 0) {
        size_t o = 0;
        o += (size_t)snprintf(why, wlen, "the schedules deadlock: %d channel(s) never finish", left);
        for (int i = 0, shown = 0; i < v->nch && shown < 3 && o < wlen; i++) {
            struct sim_chan *ch = &v->ch[i];
            if (ch->done)
                continue;
            shown++;
            o += (size_t)snprintf(why + o, wlen - o, "%s rank %d step %zu/%zu", shown == 1 ? ":" : ";",
                                  ch->rank, ch->idx, ch->nsteps);
        }
        return -1;
    }
    return end;
}

/* ---- folding ---- */

/* Is b (the schedule of rank a's image k servers on) a's steps shifted by
 * k servers? 1 exactly, 2 with counts that differ by one element, 0 no. */
static int same_shifted(const struct sim *S, int how, const struct ppu_sched *a,
                        const struct ppu_sched *b, int k)
{
    if (a->nchannels != b->nchannels || a->tmp_bytes != b->tmp_bytes)
        return 0;
    int res = 1;
    for (int c = 0; c < a->nchannels; c++) {
        const struct ppu_sched_channel *x = &a->ch[c], *y = &b->ch[c];
        if (x->nsteps != y->nsteps || x->after != y->after || x->after_n != y->after_n ||
            x->in_tmp != y->in_tmp ||
            x->out_tmp != y->out_tmp)
            return 0;
        for (size_t i = 0; i < x->nsteps; i++) {
            const struct ppu_step *p = &x->steps[i], *q = &y->steps[i];
            if (p->flags != q->flags)
                return 0;
            /* the rings are checked for a server shift (rings_shift), not
             * for a turn round the server: there a ring step proves nothing */
            if (how == FOLD_RAIL && (((p->flags & PPU_STEP_SEND) && p->send_peer < 0) ||
                                     ((p->flags & PPU_STEP_RECV) && p->recv_peer < 0)))
                return 0;
            if ((p->send_peer < 0) != (q->send_peer < 0) ||
                (p->send_peer >= 0 && image(S, how, p->send_peer, k) != q->send_peer))
                return 0;
            if ((p->recv_peer < 0) != (q->recv_peer < 0) ||
                (p->recv_peer >= 0 && image(S, how, p->recv_peer, k) != q->recv_peer))
                return 0;
            if (p->count != q->count) {
                if (p->count + 1 != q->count && q->count + 1 != p->count)
                    return 0;
                res = 2;
            }
        }
    }
    return res;
}

/* The rings: is the next rank of r's image (P servers on) its next's
 * image, on every ring? */
static int rings_shift(const struct sim *S, int P)
{
    const int *pos = S->ctx.ring_pos;
    int n = S->n;
    for (int c = 0; c < S->ctx.nchannels; c++)
        for (int r = 0; r < n; r++) {
            int nx = S->ctx.rings[(size_t)c * n + (pos[(size_t)c * n + r] + 1) % n];
            int r2 = shift(S, r, P);
            int nx2 = S->ctx.rings[(size_t)c * n + (pos[(size_t)c * n + r2] + 1) % n];
            if (nx2 != shift(S, nx, P))
                return 0;
        }
    return 1;
}

/* ---- one call ---- */

static void free_scheds(struct ppu_sched *s, int n)
{
    for (int i = 0; s && i < n; i++)
        ppu_sched_free(&s[i]);
    free(s);
}

struct stat_row {
    int src, dst;
    uint64_t bytes, msgs;
    int kind;
};

static int cmp_row(const void *x, const void *y)
{
    const struct stat_row *a = x, *b = y;
    if (a->src != b->src)
        return a->src < b->src ? -1 : 1;
    return (a->dst > b->dst) - (a->dst < b->dst);
}

static int write_stats(struct sim *S, FILE *f)
{
    struct priv *v = S->priv;
    int copies = images(S, S->folded);
    size_t nrows = (size_t)v->nlinks * copies, o = 0;
    struct stat_row *rows = malloc(sizeof *rows * (nrows ? nrows : 1));
    if (!rows)
        return -1;
    for (int k = 0; k < copies; k++)
        for (int i = 0; i < v->nlinks; i++) {
            const struct sim_link *l = &v->links[i];
            rows[o++] = (struct stat_row){image(S, S->folded, l->src, k),
                                          image(S, S->folded, l->dst, k), l->bytes, l->msgs,
                                          l->kind};
        }
    qsort(rows, o, sizeof *rows, cmp_row);
    /* channels that share a pair of ranks add up, as the library's files do */
    for (size_t i = 0; i < o;) {
        struct stat_row r = rows[i++];
        while (i < o && rows[i].src == r.src && rows[i].dst == r.dst) {
            r.bytes += rows[i].bytes;
            r.msgs += rows[i].msgs;
            i++;
        }
        fprintf(f, "%d %d %llu %llu %s\n", r.src, r.dst, (unsigned long long)r.bytes,
                (unsigned long long)r.msgs, link_kinds[r.kind]);
    }
    free(rows);
    return 0;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int run_call(struct sim *S, const struct ppu_call *c, int algo, int proto,
                    struct sim_result *res, FILE *stats);

int sim_run(struct sim *S, const struct ppu_call *c, int algo, int proto,
            struct sim_result *res, FILE *stats)
{
    double t0 = wall();
    int r = run_call(S, c, algo, proto, res, stats);
    res->wall_s = wall() - t0;
    return r;
}

static int run_call(struct sim *S, const struct ppu_call *c, int algo, int proto,
                    struct sim_result *res, FILE *stats)
{
    struct priv *v = S->priv;
    memset(res, 0, sizeof *res);
    res->busiest = "";
    if (!ppu_plan_applies(&S->ctx, c, algo)) {
        snprintf(res->why, sizeof res->why, "%s does not apply to %s here", ppu_algo_name(algo),
                 ppu_coll_name(c->coll));
        return -1;
    }
    int n = S->n, L = S->L;
    /* folded by servers: a block of P servers stands for all, when every
     * rank's schedule is its image's P servers on (P = 1 first; more for
     * schedules whose pattern repeats over several servers, as a sparse
     * ring's does) */
    int fold = S->p.fold && S->uniform && S->ns > 1;
    int rail = S->p.fold && v->rail_ok && !v->no_rail;
    S->fold_p = 1;
    /* schedules held at once: the representatives' when the replay may
     * fold (grown as P grows); else each rank's is built, loaded and freed
     * in turn */
    int nb = 0, cap = fold || rail ? L : 1;
    struct ppu_sched *sc = calloc((size_t)cap, sizeof *sc);
    if (!sc)
        goto oom;
    int ret = -1;
    /* A ring all-to-all's rank holds n(n-1)/2 steps or more (each block
     * travels to its rank hop by hop): past the budget before it is built. */
    if (c->coll == PPU_COLL_ALLTOALL && algo == PPU_ALGO_RING && S->p.max_steps > 0 &&
        c->count > 0 && (double)n * (n - 1) / 2 * (fold ? L : n) > (double)S->p.max_steps) {
        res->skipped = 1;
        snprintf(res->why, sizeof res->why, "at least %.3g steps to replay (budget %lld)",
                 (double)n * (n - 1) / 2 * (fold ? L : n), S->p.max_steps);
        free(sc);
        return 0;
    }
    /* the first rank's steps tell whether the whole replay fits the budget */
    if (ppu_plan_build(&S->ctx, c, 0, algo, proto, &sc[0]) != PPU_SUCCESS)
        goto oom;
    nb = 1;
    long long s0 = (long long)ppu_sched_nsteps(&sc[0]), budget = S->p.max_steps;
    int over_server = budget > 0 && s0 * L > budget, over_rail = budget > 0 && s0 * S->ns > budget;
    if ((!fold || over_server) && (!rail || over_rail) && budget > 0 && s0 * n > budget) {
        long long est = fold ? s0 * L : rail ? s0 * S->ns : s0 * n;
        res->skipped = 1;
        snprintf(res->why, sizeof res->why, "about %lld steps to replay (budget %lld)%s", est,
                 budget, fold || rail ? "" : ": these schedules do not fold");
        free_scheds(sc, nb);
        return 0;
    }
    int how = FOLD_NONE, kind = 1;
    /* FOLD_SERVER with P servers: rank j of the first P against its images
     * 1, U/2 and U-1 blocks on (U = servers / P), rank by rank, so that a
     * schedule that does not fold fails at its first rank; P = 1, then the
     * fold by rails (one chip a server), then P = 2, 3, ... up to 64
     * servers or the budget */
    for (int phase = 0; how == FOLD_NONE; phase++) {
        if (phase != 1) { /* by servers, P of them */
            int P = phase == 0 ? 1 : phase;
            if (!fold || P > S->ns / 2 || P > 64 || (budget > 0 && s0 * L * P > budget)) {
                if (phase == 0)
                    continue;
                break;
            }
            int ok = S->ns % P == 0 && rings_shift(S, P), U = S->ns / P;
            int ks[4] = {0, 1, U / 2, U - 1};
            S->fold_p = P;
            kind = 1;
            if (ok && nb < P * L) { /* room for the block's schedules */
                struct ppu_sched *g = realloc(sc, sizeof *sc * (size_t)P * L);
                if (!g)
                    goto oom;
                sc = g;
                memset(sc + nb, 0, sizeof *sc * (size_t)(P * L - nb));
            }
            for (int j = 0; j < P * L && ok; j++) {
                if (j >= nb) {
                    if (ppu_plan_build(&S->ctx, c, j, algo, proto, &sc[j]) != PPU_SUCCESS)
                        goto oom;
                    nb = j + 1;
                }
                for (int i = 1; i < 4 && ok; i++) {
                    if (ks[i] < 1 || ks[i] == ks[i - 1])
                        continue;
                    struct ppu_sched t;
                    if (ppu_plan_build(&S->ctx, c, image(S, FOLD_SERVER, j, ks[i]), algo, proto,
                                       &t) != PPU_SUCCESS)
                        goto oom;
                    int m = same_shifted(S, FOLD_SERVER, &sc[j], &t, ks[i]);
                    ppu_sched_free(&t);
                    if (!m)
                        ok = 0;
                    else if (m == 2)
                        kind = 2;
                }
            }
            if (ok)
                how = FOLD_SERVER;
            else
                S->fold_p = 1;
            continue;
        }
        if (!rail || over_rail)
            continue;
        /* FOLD_RAIL: server k's chip 0, which chip j must be turned, for
         * server 0 and servers 1, S/2 and S-1 */
        int ok = 1, ks[4] = {0, 1, S->ns / 2, S->ns - 1};
        kind = 1;
        for (int j = nb; j < L; j++) {
            if (ppu_plan_build(&S->ctx, c, j, algo, proto, &sc[j]) != PPU_SUCCESS)
                goto oom;
            nb = j + 1;
        }
        for (int i = 0; i < 4 && ok; i++) {
            if (i > 0 && (ks[i] < 1 || ks[i] == ks[i - 1]))
                continue;
            struct ppu_sched z = {0}, *zero = &sc[0];
            if (i > 0) {
                if (ppu_plan_build(&S->ctx, c, ks[i] * L, algo, proto, &z) != PPU_SUCCESS)
                    goto oom;
                zero = &z;
            }
            for (int j = 1; j < L && ok; j++) {
                struct ppu_sched t, *one = i == 0 ? &sc[j] : &t;
                if (i > 0 && ppu_plan_build(&S->ctx, c, ks[i] * L + j, algo, proto, &t) !=
                                 PPU_SUCCESS) {
                    ppu_sched_free(&z);
                    goto oom;
                }
                int m = same_shifted(S, FOLD_RAIL, zero, one, j);
                if (i > 0)
                    ppu_sched_free(&t);
                if (!m)
                    ok = 0;
                else if (m == 2)
                    kind = 2;
            }
            ppu_sched_free(&z);
        }
        if (ok)
            how = FOLD_RAIL;
    }
    if (how == FOLD_NONE && budget > 0 && s0 * n > budget) { /* not symmetric: every rank */
        res->skipped = 1;
        if (rail && over_rail) /* not tried: over the budget even so */
            snprintf(res->why, sizeof res->why, "about %lld steps to replay folded by rails "
                     "(budget %lld), %lld without", s0 * S->ns, budget, s0 * n);
        else
            snprintf(res->why, sizeof res->why, "about %lld steps to replay (budget %lld): "
                     "these schedules do not fold", s0 * n, budget);
        free_scheds(sc, nb);
        return 0;
    }
    int nrep = how == FOLD_SERVER ? S->fold_p * L : how == FOLD_RAIL ? S->ns : n;
    S->folded = how;
    res->fold = how ? kind : 0;
    res->fold_by = how;
    res->fold_servers = how == FOLD_SERVER ? S->fold_p : 0;
    res->ranks_replayed = nrep;
    priv_reset(v);
    v->rail_broken = 0;
    long long steps = 0;
    for (int i = 0; i < nrep; i++) {
        int r = rep_rank(S, how, i);
        struct ppu_sched t, *one = r < nb ? &sc[r] : &t;
        if (r >= nb && ppu_plan_build(&S->ctx, c, r, algo, proto, &t) != PPU_SUCCESS)
            goto oom;
        steps += (long long)ppu_sched_nsteps(one);
        int bad = add_rank(S, how, r, one);
        ppu_sched_free(one); /* the replay has its own copy of the steps */
        if (bad)
            goto oom;
    }
    if (how == FOLD_RAIL && v->rail_broken) { /* a server-wide resource: no rail fold */
        free_scheds(sc, nb);
        v->no_rail = 1;
        int again = run_call(S, c, algo, proto, res, stats);
        v->no_rail = 0;
        return again;
    }
    for (int i = 0; i < S->nres; i++) {
        S->res[i].free_at = 0;
        S->res[i].bytes = 0;
    }
    for (int i = 0; i < v->nlinks; i++)
        if (!v->links[i].has_send || !v->links[i].has_recv) {
            const struct sim_link *k = &v->links[i];
            snprintf(res->why, sizeof res->why, "link %d->%d is %s but never %s", k->src, k->dst,
                     k->has_send ? "sent on" : "received from",
                     k->has_send ? "received from" : "sent on");
            goto out;
        }
    int hops = 0;
    double t = replay(S, proto, &hops, res->why, sizeof res->why);
    if (t == -2)
        goto oom;
    if (t < 0)
        goto out;
    for (int i = 0; i < v->nlinks; i++)
        if (v->links[i].sent != v->links[i].consumed) {
            snprintf(res->why, sizeof res->why, "%u message(s) left unread on link %d->%d",
                     v->links[i].sent - v->links[i].consumed, v->links[i].src, v->links[i].dst);
            goto out;
        }
    res->time_us = t;
    res->steps = steps;
    res->steps_job = steps * images(S, how);
    double eff = proto == PPU_PROTO_LL ? S->p.ll_eff : 1, amin = INFINITY;
    for (int i = 0; i < S->nres; i++) {
        double b = S->res[i].bytes / S->res[i].bw;
        if (S->res[i].bytes > 0 && b > res->bound_bw_us) {
            res->bound_bw_us = b;
            res->busiest = res_names[S->res[i].kind];
        }
    }
    (void)eff;
    for (int i = 0; i < v->nlinks; i++) {
        double a = v->links[i].alpha + (proto == PPU_PROTO_SIMPLE ? S->p.simple_us : 0);
        if (a < amin)
            amin = a;
    }
    res->bound_lat_us = v->nlinks ? hops * amin : 0;
    if (stats && write_stats(S, stats) != 0)
        goto oom;
    ret = 0;
out:
    free_scheds(sc, nb);
    return ret;
oom:
    snprintf(res->why, sizeof res->why, "out of memory (or a schedule that cannot be built) "
             "replaying %s on %d ranks", ppu_algo_name(algo), n);
    free_scheds(sc, nb);
    return -1;
}
