/* From the bootstrap to working links: pick the server topology, search it
 * for link-disjoint rings, give each channel a ring, and connect one send
 * and one receive link per channel through the transport. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/statvfs.h>

#include "../topology/topo_host.h"
#include "../topology/topo_xml.h"
#include "check.h"
#include "comm.h"
#include "discover.h"
#include "util/log.h"
#include "util/param.h"
#include "util/socket.h"
#include "util/wait.h"

/* Transports log through the core (subsystem NET) without its headers. */
void ppu_transport_log(int level, const char *fmt, ...)
{
    if (!ppu_log_on(level, PPU_SUB_NET))
        return;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ppu_log_emit(level, PPU_SUB_NET, "%s", msg);
}

static int cross_server(const struct ppu_comm *comm, int a, int b)
{
    return comm->cl.server[a] != comm->cl.server[b];
}

/* ---- single copy and Yama ----
 * PPU_CMA=1 lets the peers on this host read this process's buffers with
 * process_vm_readv. Under Yama's ptrace_scope 1 only an ancestor or the
 * process's declared ptracer may, and Yama takes one pid or "any"; several
 * peers read, so the process declares "any", but only while a
 * communicator that uses single copy lives, and only where the scope is 1
 * (0: nothing is needed; 2 and 3: nothing a process declares helps, and
 * the reads fall back to the FIFO). The last such communicator's destroy
 * takes the declaration back. */
static pthread_mutex_t ptracer_lock = PTHREAD_MUTEX_INITIALIZER;
static int ptracer_users;

int ppu_yama_ptrace_scope(void)
{
    FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "r");
    int scope = -1;
    if (f) {
        if (fscanf(f, "%d", &scope) != 1)
            scope = -1;
        fclose(f);
    }
    return scope;
}

int ppu_cma_ptracer_users(void)
{
    pthread_mutex_lock(&ptracer_lock);
    int n = ptracer_users;
    pthread_mutex_unlock(&ptracer_lock);
    return n;
}

static void ptracer_hold(struct ppu_comm *comm)
{
    if (comm->ptracer_held)
        return;
    pthread_mutex_lock(&ptracer_lock);
    if (ptracer_users++ == 0 && ppu_yama_ptrace_scope() == 1 &&
        prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0) != 0)
        PPU_WARN(PPU_SUB_INIT, "rank %d: PPU_CMA=1 under Yama ptrace_scope 1, and "
                 "PR_SET_PTRACER failed: peers' single-copy reads will fall back", comm->rank);
    pthread_mutex_unlock(&ptracer_lock);
    comm->ptracer_held = 1;
}

static void ptracer_release(struct ppu_comm *comm)
{
    if (!comm->ptracer_held)
        return;
    pthread_mutex_lock(&ptracer_lock);
    if (--ptracer_users == 0 && ppu_yama_ptrace_scope() == 1)
        prctl(PR_SET_PTRACER, 0, 0, 0, 0);
    pthread_mutex_unlock(&ptracer_lock);
    comm->ptracer_held = 0;
}

/* PPU_NET=ib's device, checked at every init (not only when a
 * link crosses servers), so a misconfigured job fails the same way on one
 * server as on many. */
static ppu_result_t check_net_params(struct ppu_comm *comm)
{
    const char *net = ppu_param_str(PPU_P_NET);
    char why[160];
    if (*net) {
        const struct ppu_transport *t = ppu_transport_named(net, PPU_REACH_NET);
        if (!t) /* the parameter table's choices and the registry disagree */
            return ppu_fail(comm, PPU_INTERNAL_ERROR, "PPU_NET=%s: no such network transport "
                            "in this build", net);
        if (!t->usable(why, sizeof why))
            return ppu_fail(comm, PPU_INVALID_ARGUMENT, "PPU_NET=%s: %s; choose another "
                            "PPU_NET or leave it unset", net, why);
    }
    if (strlen(ppu_param_str(PPU_P_IB_HCA)) >= sizeof(((struct ppu_link_params *)0)->ib_hca))
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "PPU_IB_HCA='%s': too long for a device name",
                        ppu_param_str(PPU_P_IB_HCA));
    return PPU_SUCCESS;
}

/* The transport between servers: PPU_NET's, or by default ib when every
 * rank has a usable RDMA device (both ends of a link must agree, so the
 * ranks vote through the bootstrap), else socket. */
static ppu_result_t pick_net(struct ppu_comm *comm)
{
    const char *net = ppu_param_str(PPU_P_NET);
    if (*net) {
        comm->net = ppu_transport_named(net, PPU_REACH_NET);
        PPU_INFO(PPU_SUB_NET, "rank %d: network transport %s (PPU_NET)", comm->rank, net);
        return PPU_SUCCESS;
    }
    /* Each rank's vote: a bit per network transport it can use, in the
     * registry's order; both ends of a link must agree, so the job takes
     * the first transport every rank can use. */
    uint8_t *vote = calloc((size_t)comm->nranks, 1);
    if (!vote)
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory", comm->rank);
    char why[8][160];
    const struct ppu_transport *nets[8];
    int nn = 0;
    for (int i = 0; ppu_transport_at(i) && nn < 8; i++)
        if (ppu_transport_at(i)->reach & PPU_REACH_NET) {
            nets[nn] = ppu_transport_at(i);
            why[nn][0] = '\0';
            vote[comm->rank] |= (uint8_t)(nets[nn]->usable(why[nn], sizeof why[nn]) << nn);
            nn++;
        }
    ppu_result_t r = ppu_bootstrap_allgather(comm->bs, vote, 1);
    uint8_t all = 0xff;
    for (int q = 0; r == PPU_SUCCESS && q < comm->nranks; q++)
        all &= vote[q];
    int pick = 0, first_no = -1;
    while (pick < nn && !(all >> pick & 1))
        pick++;
    for (int k = 0; k < pick && first_no < 0; k++) /* who kept an earlier one out */
        for (int q = 0; q < comm->nranks && first_no < 0; q++)
            if (!(vote[q] >> k & 1))
                first_no = q;
    free(vote);
    PPU_CHECK(r);
    if (pick == nn)
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: no network transport that every rank "
                        "can use", comm->rank);
    comm->net = nets[pick];
    if (pick == 0)
        PPU_INFO(PPU_SUB_NET, "rank %d: network transport %s (%s)", comm->rank, comm->net->name,
                 why[pick]);
    else if (first_no == comm->rank)
        PPU_INFO(PPU_SUB_NET, "rank %d: network transport %s: %s", comm->rank, comm->net->name,
                 why[0]);
    else
        PPU_INFO(PPU_SUB_NET, "rank %d: network transport %s: rank %d cannot use %s",
                 comm->rank, comm->net->name, first_no, nets[0]->name);
    return PPU_SUCCESS;
}

/* NUMA nodes the kernel lists (0 when it does not say). */
static int numa_nodes(void)
{
    DIR *d = opendir("/sys/devices/system/node");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += !strncmp(e->d_name, "node", 4) && e->d_name[4] >= '0' && e->d_name[4] <= '9';
    if (d)
        closedir(d);
    return n;
}

static void bind_near_chip(struct ppu_comm *comm)
{
    if (ppu_param_int(PPU_P_CPU_AFFINITY) == 0 || numa_nodes() == 1)
        return; /* one NUMA node: nothing to choose, and hwloc's load is half of init */
    struct ppu_host host;
    char err[128], cpus[128];
    if (ppu_host_discover(&host, err, sizeof err) != PPU_SUCCESS)
        return;
    int numa;
    if (comm->topo.nchips > 0) {
        if (!strcmp(comm->topo.source, "preset"))
            ppu_discover_assign_numa(&comm->topo, host.nnuma);
        numa = comm->topo.numa[comm->rank];
    } else { /* a large simulated cluster: chips spread over the host's nodes */
        const struct ppu_cluster *cl = &comm->cl;
        int per = cl->stopo[cl->server[comm->rank]]->nchips;
        numa = host.nnuma > 0 && per > 0 ? cl->local[comm->rank] * host.nnuma / per : -1;
    }
    if (numa < 0)
        return;
    if (ppu_host_bind_numa(numa, cpus, sizeof cpus) == PPU_SUCCESS)
        PPU_INFO(PPU_SUB_TOPO, "rank %d bound to NUMA node %d (CPUs %s), near its chip", comm->rank,
                 numa, cpus);
    else
        PPU_INFO(PPU_SUB_TOPO, "rank %d: could not bind to NUMA node %d", comm->rank, numa);
}

/* More than 64 ranks: the simulated presets, server by server, in the
 * two-level form only (no dense topology holds them). */
static ppu_result_t large_cluster(struct ppu_comm *comm, char *err, size_t errlen)
{
    int n = comm->nranks;
    if (*ppu_param_str(PPU_P_TOPO_FILE)) {
        snprintf(err, errlen, "PPU_TOPO_FILE: a topology file holds at most %d chips today; "
                 "%d ranks run on the simulated presets (PPU_SIM_TOPO, PPU_SIM_SERVERS)",
                 PPU_TOPO_MAX_CHIPS, n);
        return PPU_INVALID_USAGE;
    }
    if (*ppu_param_str(PPU_P_SIM_LINKS_DOWN)) {
        snprintf(err, errlen, "PPU_SIM_LINKS_DOWN applies to communicators of at most %d ranks "
                 "today (this one has %d)", PPU_TOPO_MAX_CHIPS, n);
        return PPU_INVALID_USAGE;
    }
    int servers;
    ppu_result_t r = ppu_discover_sim_servers(n, &servers, err, errlen);
    if (r != PPU_SUCCESS)
        return r;
    int per = n / servers;
    if (per > PPU_TOPO_MAX_CHIPS) {
        snprintf(err, errlen, "%d ranks on %d server(s) is %d chips a server; a server holds "
                 "at most %d: set PPU_SIM_SERVERS (PAI-PPU servers hold 16 chips: "
                 "PPU_SIM_SERVERS=%d)", n, servers, per, PPU_TOPO_MAX_CHIPS, (n + 15) / 16);
        return PPU_INVALID_USAGE;
    }
    return ppu_cluster_sim(&comm->cl, ppu_param_str(PPU_P_SIM_TOPO), servers, per, err, errlen);
}

static ppu_result_t pick_topology(struct ppu_comm *comm)
{
    PPU_CHECK(check_net_params(comm));
    char err[512];
    struct ppu_topo *t = &comm->topo;
    int n = comm->nranks;
    ppu_result_t r = PPU_SUCCESS;
    if (comm->parent_cl) {
        /* split of a two-level cluster: the parent's ranks this one's are */
        if (ppu_cluster_select(&comm->cl, comm->parent_cl, comm->parent_chips, n) != PPU_SUCCESS)
            return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory", comm->rank);
    } else if (comm->parent_topo) {
        /* split: the parent's chips that this communicator's ranks hold */
        ppu_topo_select(t, comm->parent_topo, comm->parent_chips, n);
    } else if (n > PPU_TOPO_MAX_CHIPS) {
        if ((r = large_cluster(comm, err, sizeof err)) != PPU_SUCCESS)
            return ppu_fail(comm, r, "%s", err);
    } else {
        r = ppu_discover_topology(n, t, err, sizeof err);
        if (r != PPU_SUCCESS)
            return ppu_fail(comm, r, "%s", err);
        if (t->nchips < n)
            return ppu_fail(comm, PPU_INVALID_USAGE,
                            "topology %s (%s) has %d chips, fewer than the %d ranks", t->name,
                            t->source, t->nchips, n);
        ppu_topo_restrict(t, n);
    }
    if (t->nchips > 0) {
        if (ppu_cluster_from_topo(&comm->cl, t, n) != PPU_SUCCESS)
            return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory", comm->rank);
        if (comm->rank == 0 && *ppu_param_str(PPU_P_TOPO_DUMP_FILE) &&
            ppu_topo_save_xml(t, ppu_param_str(PPU_P_TOPO_DUMP_FILE), err, sizeof err) !=
                PPU_SUCCESS)
            PPU_WARN(PPU_SUB_TOPO, "PPU_TOPO_DUMP_FILE: %s", err);
        char who[256];
        ppu_topo_unreachable(t, who, sizeof who);
        if (who[0])
            return ppu_fail(comm, PPU_INVALID_USAGE,
                            "topology %s: chips %s cannot reach chip 0 over links that are up, "
                            "so no ring joins all %d ranks", t->name, who, n);
    }
    /* ICN links are simulated in shared memory: the chips of one server
     * must be on one host. Between servers the network transport runs, on
     * one host or across hosts. Every rank checks every rank against its
     * server's first, so all of them refuse alike. */
    const struct ppu_cluster *cl = &comm->cl;
    int *lead = malloc(sizeof *lead * (size_t)cl->nservers);
    if (!lead)
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory", comm->rank);
    for (int q = n - 1; q >= 0; q--)
        lead[cl->server[q]] = q;
    for (int q = 0; q < n; q++) {
        int l = lead[cl->server[q]];
        if (comm->bs->host_hash[q] != comm->bs->host_hash[l]) {
            free(lead);
            return ppu_fail(comm, PPU_INVALID_USAGE,
                            "ranks %d and %d are on different hosts, but topology %s puts them "
                            "on one server (%d), whose ICN links this build simulates in one "
                            "host's shared memory: give each host's ranks their own servers "
                            "(PPU_SIM_SERVERS, or a topology file)", l, q, cl->name,
                            t->nchips > 0 ? t->server[q] : cl->server[q]);
        }
    }
    free(lead);
    bind_near_chip(comm);
    return PPU_SUCCESS;
}

/* The plan context from the cluster, then this rank's place on every
 * channel's ring. */
static ppu_result_t build_plan(struct ppu_comm *comm, const struct ppu_plan_settings *set,
                               const struct ppu_model *model)
{
    const struct ppu_cluster *cl = &comm->cl;
    int n = comm->nranks;
    char err[512];
    ppu_result_t r = ppu_plan_ctx_init(&comm->plan, n, cl->server, cl->stopo, cl->name, set,
                                       model, err, sizeof err);
    if (r != PPU_SUCCESS)
        return ppu_fail(comm, r, "%s", err);
    const struct ppu_plan_ctx *x = &comm->plan;
    comm->nchannels = x->nchannels;
    for (int c = 0; c < x->nchannels; c++) {
        struct ppu_channel *ch = &comm->ch[c];
        const int *ring = x->rings + (size_t)c * n;
        for (int i = 0; i < n; i++)
            if (ring[i] == comm->rank)
                ch->pos = i;
        ch->next = ring[(ch->pos + 1) % n];
        ch->prev = ring[(ch->pos + n - 1) % n];
        if (comm->rank == 0) {
            char s[256];
            ppu_topo_ring_str(ring, n, s, sizeof s);
            PPU_INFO(PPU_SUB_INIT, "channel %d ring %s%s", c, s,
                     c >= x->nrings_found ? " (shares links with an earlier channel)" : "");
        }
    }
    PPU_INFO(PPU_SUB_INIT, "topology %s (from %s), %d ranks on %d server(s), %d link-disjoint "
             "ring(s) found, %d channel(s), chunk %zu B", cl->name, cl->source, n, cl->nservers,
             x->nrings_found, x->nchannels, x->set.chunk_bytes);
    return PPU_SUCCESS;
}

/* ---- links connected on first use ----
 *
 * A rank connects only the links its schedules use, when a call first
 * needs them (NCCL's runtime connect), not every pair at init. Both ends
 * of a link come to it in the same call: a message has a sending and a
 * receiving step, and every rank's schedule of a call matches its peers'
 * (tests/test_schedcheck.c). The transport's four phases run with
 * point-to-point bootstrap messages between the two ranks only:
 *   1 receiver: recv_setup, INFO -> sender
 *   2 sender:   wait INFO, send_connect, ATTACHED -> receiver
 *   3 receiver: wait ATTACHED, recv_finish, FINISHED -> sender
 *   4 sender:   wait FINISHED, send_finish
 * A phase waits only on the peers' earlier phases, so running each phase
 * for every link of every communicator of a group before the next phase
 * cannot deadlock (one thread may drive several ranks). */

enum { TAG_INFO = 1, TAG_ATTACHED = 2, TAG_FINISHED = 3 };
/* a direct peer link on lane 0 (KEY_PEER - lane on the others); else the
 * ring channel's index */
#define KEY_PEER 0xffff
#define IS_PEER_KEY(k) ((k) > KEY_PEER - PPU_SCHED_LANES)

struct link_want {
    struct ppu_comm *comm;
    const struct ppu_coll_args *call; /* the call that needs the link, for errors */
    struct ppu_link *link;
    int peer, key, recv;
    int sent; /* the last TAG_* this rank sent the peer for this link; 0: none */
};

/* What the two ends of a link tell each other while connecting: the
 * transport's info (TAG_INFO), or nothing (TAG_ATTACHED, TAG_FINISHED);
 * or, with failed set, why this end cannot go on, so the other end fails
 * at once with that reason instead of waiting for PPU_TIMEOUT_MS. */
struct connect_msg {
    uint8_t failed;
    uint8_t pad[7];
    char body[256]; /* the info (PPU_CONNECT_INFO_BYTES), or the reason */
};
_Static_assert(PPU_CONNECT_INFO_BYTES <= sizeof(((struct connect_msg *)0)->body), "info fits");

static uint32_t link_tag(int key, int type)
{
    return (uint32_t)type << 16 | (uint32_t)key;
}

/* The transport's word on what a failed phase lacked. */
static const char *why_failed(const struct ppu_link *l, int phase, ppu_result_t r, char *buf,
                              size_t len)
{
    if (l->ops->why_failed)
        return l->ops->why_failed(l, phase, r, buf, len);
    snprintf(buf, len, "see the log");
    return buf;
}

/* Remember a link this rank set up (comm->links). */
static ppu_result_t link_keep(struct ppu_comm *comm, struct ppu_link *l, int send)
{
    for (int i = comm->nlinks - 1; i >= 0 && i >= comm->nlinks - 4; i--)
        if (comm->links[i].link == l) /* set up again after a failure */
            return PPU_SUCCESS;
    if (comm->nlinks == comm->links_cap) {
        int cap = comm->links_cap ? 2 * comm->links_cap : 16;
        struct ppu_link_ref *g = realloc(comm->links, sizeof *g * (size_t)cap);
        if (!g)
            return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory", comm->rank);
        comm->links = g;
        comm->links_cap = cap;
    }
    comm->links[comm->nlinks++] = (struct ppu_link_ref){l, send};
    return PPU_SUCCESS;
}

/* Inside a server the simulated ICN link; between servers the network. */
static void link_init(struct ppu_comm *comm, struct ppu_link *l, int peer, int key)
{
    int net = cross_server(comm, comm->rank, peer);
    ppu_hook_link(comm, l, net ? comm->net->ops : comm->local->ops);
    l->params = comm->link_base;
    l->params.peer_rank = peer;
    if (!net) /* both ends on this host: its shared-memory budget's depth */
        l->params.nslots = IS_PEER_KEY(key) ? comm->shm_peer_slots : comm->shm_ring_slots;
    if (IS_PEER_KEY(key)) {
        /* Where the topology has an ICN link between the two chips the link
         * is that; between servers a network link; otherwise it stands for a
         * path staged through host memory (the stats file says which). */
        l->params.channel = -1;
        l->params.slot_bytes = comm->plan.set.peer_slot;
        if (net)
            l->params.nslots = comm->plan.set.peer_slots;
    } else {
        l->params.channel = key;
    }
}

static int cmp_want(const void *x, const void *y)
{
    const struct link_want *a = x, *b = y;
    if (a->link != b->link)
        return a->link < b->link ? -1 : 1;
    return 0;
}

/* The links of s that comm has not connected yet, appended to *w. */
static ppu_result_t collect(struct ppu_comm *comm, const struct ppu_sched *s,
                            const struct ppu_coll_args *call,
                            struct link_want **w, size_t *nw, size_t *cap)
{
    for (int c = 0; c < s->nchannels; c++) {
        const struct ppu_sched_channel *ch = &s->ch[c];
        for (size_t i = 0; i < ch->nsteps; i++) {
            const struct ppu_step *st = &ch->steps[i];
            for (int recv = 0; recv < 2; recv++) {
                if (!(st->flags & (recv ? PPU_STEP_RECV : PPU_STEP_SEND)))
                    continue;
                int p = recv ? st->recv_peer : st->send_peer, lane = ppu_step_lane(st);
                int key = KEY_PEER - lane;
                struct ppu_link *l;
                if (p >= 0) {
                    size_t at = (size_t)lane * comm->nranks + p;
                    struct ppu_link **slot = recv ? &comm->peer_recv[at] : &comm->peer_send[at];
                    if (!*slot && !(*slot = calloc(1, sizeof **slot)))
                        return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory",
                                        comm->rank);
                    l = *slot;
                } else if (c < comm->nchannels) {
                    l = recv ? &comm->ch[c].recv : &comm->ch[c].send;
                    p = recv ? comm->ch[c].prev : comm->ch[c].next;
                    key = c;
                } else {
                    return ppu_fail(comm, PPU_INTERNAL_ERROR, "rank %d: a %s step on channel %d "
                                    "has no ring link (a bug in ppuccl)", comm->rank,
                                    ppu_algo_name(s->algo), c);
                }
                if (l->ops)
                    continue;
                if (*nw == *cap) {
                    size_t nc = *cap ? 2 * *cap : 64;
                    struct link_want *g = realloc(*w, nc * sizeof *g);
                    if (!g)
                        return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory",
                                        comm->rank);
                    *w = g;
                    *cap = nc;
                }
                (*w)[(*nw)++] = (struct link_want){comm, call, l, p, key, recv, 0};
            }
        }
    }
    return PPU_SUCCESS;
}

/* "allreduce #3 (count=1000 float32)" */
static const char *call_what(const struct link_want *x, char *buf, size_t len)
{
    snprintf(buf, len, "%s #%llu (count=%zu %s)", ppu_coll_name(x->call->coll),
             (unsigned long long)x->comm->seq, x->call->count,
             ppu_datatype_name(x->call->datatype));
    return buf;
}

/* The peer's next message for link x; a failure it reports fails this
 * rank too, with its reason in *cause. */
static ppu_result_t wait_peer(const struct link_want *x, int type, struct connect_msg *m,
                              uint64_t deadline, char *cause, size_t clen)
{
    struct ppu_comm *comm = x->comm;
    ppu_result_t r = ppu_bootstrap_recv(comm->bs, x->peer, link_tag(x->key, type), m, sizeof *m,
                                        deadline, &comm->aborted);
    int from = x->recv ? x->peer : comm->rank, to = x->recv ? comm->rank : x->peer;
    char what[160];
    call_what(x, what, sizeof what);
    if (r == PPU_SUCCESS && !m->failed)
        return r;
    if (r == PPU_SUCCESS) {
        m->body[sizeof m->body - 1] = '\0';
        snprintf(cause, clen, "%s", m->body);
        return ppu_fail(comm, PPU_REMOTE_ERROR, "%s on rank %d: link %d->%d could not be "
                        "connected: %s", what, comm->rank, from, to, m->body);
    }
    if (r == PPU_TIMEOUT)
        return ppu_fail(comm, PPU_TIMEOUT, "%s on rank %d: link %d->%d (%s) was not connected "
                        "within PPU_TIMEOUT_MS (%llu ms): rank %d did not answer (has it reached "
                        "the same call?)", what, comm->rank, from, to, x->link->ops->name,
                        (unsigned long long)(comm->timeout_ns / 1000000), x->peer);
    if (atomic_load(&comm->aborted))
        return ppu_fail(comm, PPU_ABORTED, "%s on rank %d: the communicator was aborted while "
                        "connecting link %d->%d", what, comm->rank, from, to);
    return ppu_fail(comm, r, "%s on rank %d: link %d->%d (%s): rank %d sent malformed connect "
                    "info", what, comm->rank, from, to, x->link->ops->name, x->peer);
}

static ppu_result_t tell_peer(struct link_want *x, int type, const struct connect_msg *m)
{
    struct ppu_comm *comm = x->comm;
    ppu_result_t r = ppu_bootstrap_send(comm->bs, x->peer, link_tag(x->key, type), m, sizeof *m);
    x->sent = type;
    char what[160];
    if (r != PPU_SUCCESS)
        return ppu_fail(comm, r, "%s on rank %d: could not reach rank %d to connect their link "
                        "(its bootstrap listener does not answer: has it exited?)",
                        call_what(x, what, sizeof what),
                        comm->rank, x->peer);
    return PPU_SUCCESS;
}

/* Tell the peers of the links this rank had not finished that it failed,
 * each on the message it waits for next, so they fail at once with cause
 * (and tell theirs): one rank that cannot connect ends the job's call on
 * every rank within moments, not after PPU_TIMEOUT_MS. */
static void tell_failure(struct link_want *w, size_t nw, const char *cause)
{
    struct connect_msg m;
    memset(&m, 0, sizeof m);
    m.failed = 1;
    snprintf(m.body, sizeof m.body, "%s", cause);
    /* best effort, and bounded: a peer that failed too may have exited */
    uint64_t deadline = ppu_now_ns() + 2000000000ull;
    for (size_t i = 0; i < nw; i++) {
        int next = w[i].recv ? (w[i].sent == 0 ? TAG_INFO : w[i].sent == TAG_INFO ? TAG_FINISHED : 0)
                             : (w[i].sent == 0 ? TAG_ATTACHED : 0);
        if (next)
            ppu_bootstrap_send_until(w[i].comm->bs, w[i].peer, link_tag(w[i].key, next), &m,
                                     sizeof m, deadline);
    }
}

static ppu_result_t connect_phase(struct link_want *x, int phase, uint64_t deadline, char *cause,
                                  size_t clen)
{
    struct ppu_comm *comm = x->comm;
    struct ppu_link *l = x->link;
    struct connect_msg m;
    ppu_result_t r;
    int peer = x->peer, me = comm->rank;
    memset(&m, 0, sizeof m);
    switch (phase) {
    case 1:
        PPU_CHECK(link_keep(comm, l, 0));
        link_init(comm, l, peer, x->key);
        if ((r = l->ops->recv_setup(l, m.body)) != PPU_SUCCESS) {
            char hint[200];
            ppu_fail(comm, r, "rank %d could not set up the receiving end of link %d->%d (%s: "
                     "%s)", me, peer, me, l->ops->name, why_failed(l, 1, r, hint, sizeof hint));
            l->ops = NULL;
            return r;
        }
        return tell_peer(x, TAG_INFO, &m);
    case 2:
        PPU_CHECK(link_keep(comm, l, 1));
        link_init(comm, l, peer, x->key);
        PPU_CHECK(wait_peer(x, TAG_INFO, &m, deadline, cause, clen));
        if ((r = l->ops->send_connect(l, m.body)) != PPU_SUCCESS) {
            char hint[200];
            ppu_fail(comm, r, "rank %d could not connect the sending end of link %d->%d (%s: %s)",
                     me, me, peer, l->ops->name, why_failed(l, 2, r, hint, sizeof hint));
            l->ops = NULL;
            return r;
        }
        memset(&m, 0, sizeof m);
        return tell_peer(x, TAG_ATTACHED, &m);
    case 3:
        PPU_CHECK(wait_peer(x, TAG_ATTACHED, &m, deadline, cause, clen));
        if ((r = l->ops->recv_finish(l)) != PPU_SUCCESS)
            return ppu_fail(comm, r, "rank %d: link %d->%d (%s) did not complete its setup: %s",
                            me, peer, me, l->ops->name,
                            r == PPU_TIMEOUT ? "its sender did not connect within "
                                               "PPU_BOOTSTRAP_TIMEOUT_MS (see the log)"
                                             : "see the log");
        return tell_peer(x, TAG_FINISHED, &m);
    default:
        PPU_CHECK(wait_peer(x, TAG_FINISHED, &m, deadline, cause, clen));
        if ((r = l->ops->send_finish(l)) != PPU_SUCCESS)
            return ppu_fail(comm, r, "rank %d: link %d->%d (%s) did not complete its setup", me,
                            me, peer, l->ops->name);
        return PPU_SUCCESS;
    }
}

ppu_result_t ppu_links_ensure(struct ppu_comm *const *comms, const struct ppu_sched *const *scheds,
                              const struct ppu_coll_args *const *calls, int n)
{
    struct link_want *w = NULL;
    size_t nw = 0, cap = 0;
    ppu_result_t r = PPU_SUCCESS;
    for (int i = 0; i < n && r == PPU_SUCCESS; i++)
        r = collect(comms[i], scheds[i], calls[i], &w, &nw, &cap);
    if (r != PPU_SUCCESS || nw == 0) {
        free(w);
        return r;
    }
    /* one entry a link (a link serves many steps) */
    qsort(w, nw, sizeof *w, cmp_want);
    size_t u = 0;
    for (size_t i = 0; i < nw; i++)
        if (u == 0 || w[u - 1].link != w[i].link)
            w[u++] = w[i];
    nw = u;
    uint64_t now = ppu_now_ns();
    char cause[256] = ""; /* a peer's reason, passed on as it came */
    size_t at = 0;
    for (int phase = 1; phase <= 4 && r == PPU_SUCCESS; phase++)
        for (at = 0; at < nw && r == PPU_SUCCESS; at++)
            if (w[at].recv == (phase % 2 == 1))
                r = connect_phase(&w[at], phase, now + w[at].comm->timeout_ns, cause,
                                  sizeof cause);
    if (r != PPU_SUCCESS) {
        if (!cause[0]) /* this rank's own failure: its sentence */
            snprintf(cause, sizeof cause, "%s", ppu_get_last_error(w[at - 1].comm));
        tell_failure(w, nw, cause);
    }
    if (r == PPU_SUCCESS)
        for (size_t i = 0; i < nw; i++)
            PPU_INFO(PPU_SUB_INIT, "rank %d: connected link %d->%d (%s, %s) on first use",
                     w[i].comm->rank, w[i].recv ? w[i].peer : w[i].comm->rank,
                     w[i].recv ? w[i].comm->rank : w[i].peer, w[i].link->ops->name,
                     IS_PEER_KEY(w[i].key) ? "peer link" : "ring");
    free(w);
    return r;
}

/* What network links need: the address to listen on (PPU_SOCKET_IFNAME's
 * choice, as the bootstrap's), connections per link, deadlines. */
static ppu_result_t net_params(struct ppu_comm *comm, struct ppu_link_params *p, char *addr,
                               size_t alen)
{
    union ppu_sockaddr a;
    char err[256];
    ppu_result_t r = ppu_socket_pick_addr(&a, err, sizeof err);
    if (r != PPU_SUCCESS)
        return ppu_fail(comm, r, "rank %d: no address for network links: %s", comm->rank, err);
    ppu_socket_str(&a, addr, alen);
    char *port = strrchr(addr, ':');
    if (port)
        *port = '\0';
    memset(&p->listen_addr, 0, sizeof p->listen_addr);
    memcpy(&p->listen_addr, &a, a.sa.sa_family == AF_INET6 ? sizeof a.in6 : sizeof a.in4);
    p->nsocks = (int)ppu_param_int(PPU_P_SOCKET_NSOCKS);
    p->nthreads = (int)ppu_param_int(PPU_P_SOCKET_NTHREADS);
    snprintf(p->ib_hca, sizeof p->ib_hca, "%s", ppu_param_str(PPU_P_IB_HCA));
    p->ib_tc = (int)ppu_param_int(PPU_P_IB_TC);
    p->ib_timeout = (int)ppu_param_int(PPU_P_IB_TIMEOUT);
    p->ib_retry = (int)ppu_param_int(PPU_P_IB_RETRY_CNT);
    long long st = ppu_param_int(PPU_P_BOOTSTRAP_TIMEOUT_MS);
    uint64_t ct = comm->timeout_ns / 1000000ull;
    p->setup_timeout_ms = st > 0 && st < 0x7fffffff ? (int)st : 0x7fffffff;
    p->close_timeout_ms = ct > 0 && ct < 0x7fffffff ? (int)ct : 0x7fffffff;
    return PPU_SUCCESS;
}

/* FIFO depth of the links inside this host from its shared-memory budget:
 * a quarter of /dev/shm shared by the ranks of this host, each of which may
 * receive on a link per channel and on a peer link from each server mate.
 * Slots halve (ring first) until that fits, never below what the schedules
 * need to run without deadlock (tests/test_schedcheck.c): a ring link one
 * more than the chunks the plan keeps in flight on it (3 with the default
 * PPU_FIFO_SLOTS), a peer link 2, or 3 where hierarchical all-reduce runs
 * such rings on peer links. Both ends of such a link are on this host and
 * compute the same; slot sizes, which the plan depends on, do not change. */
static void shm_budget(struct ppu_comm *comm)
{
    const struct ppu_plan_settings *set = &comm->plan.set;
    int here = comm->host_ranks, mates = comm->plan.per_server - 1;
    struct statvfs vs;
    double total = statvfs("/dev/shm", &vs) == 0 ? (double)vs.f_blocks * vs.f_frsize : 0;
    double share = total / 4 / (here > 0 ? here : 1);
    int ring = set->fifo_slots, peer = set->peer_slots, rmin = ppu_plan_ring_skew(set) + 1;
    int pmin = ppu_plan_peer_slots_min(&comm->plan);
    for (;;) {
        double need = (double)comm->nchannels * ring * set->chunk_bytes +
                      (double)(mates > 0 ? mates : 0) * peer * set->peer_slot;
        if (total == 0 || need <= share || (ring <= rmin && peer <= pmin))
            break;
        if (ring > rmin && (double)ring * set->chunk_bytes >= (double)peer * set->peer_slot)
            ring = ring / 2 > rmin ? ring / 2 : rmin;
        else if (peer > pmin)
            peer = peer / 2 > pmin ? peer / 2 : pmin;
        else
            ring = ring / 2 > rmin ? ring / 2 : rmin;
    }
    comm->shm_ring_slots = ring < set->fifo_slots ? ring : set->fifo_slots;
    comm->shm_peer_slots = peer < set->peer_slots ? peer : set->peer_slots;
    if (comm->shm_ring_slots != set->fifo_slots || comm->shm_peer_slots != set->peer_slots)
        PPU_INFO(PPU_SUB_SHM, "rank %d: %d ranks on this host share a quarter of /dev/shm "
                 "(%.0f MB each): %d slots a ring link (PPU_FIFO_SLOTS %d), %d a peer link",
                 comm->rank, here, share / 1e6, comm->shm_ring_slots, set->fifo_slots,
                 comm->shm_peer_slots);
}

ppu_result_t ppu_comm_connect(struct ppu_comm *comm, const struct ppu_plan_settings *set,
                              int cores)
{
    uint64_t t0 = ppu_now_ns();
    PPU_CHECK(pick_topology(comm));
    uint64_t t1 = ppu_now_ns();
    /* Ranks that would plan differently stop here, all of them, by name;
     * the cost model's input is the job's, not this host's. */
    double over;
    PPU_CHECK(ppu_plan_agree(comm, set, cores, &over));
    uint64_t t2 = ppu_now_ns();
    struct ppu_model model;
    ppu_plan_model_sim(&model, over);
    PPU_CHECK(build_plan(comm, set, &model));
    PPU_INFO(PPU_SUB_INIT, "rank %d: topology %.3f s, plan agreement %.3f s, plan %.3f s",
             comm->rank, (t1 - t0) / 1e9, (t2 - t1) / 1e9, (ppu_now_ns() - t2) / 1e9);
    int n = comm->nranks, nc = comm->nchannels;
    comm->peer_send = calloc((size_t)n * PPU_SCHED_LANES, sizeof *comm->peer_send);
    comm->peer_recv = calloc((size_t)n * PPU_SCHED_LANES, sizeof *comm->peer_recv);
    if (!comm->peer_send || !comm->peer_recv)
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory", comm->rank);
    if (n == 1)
        return PPU_SUCCESS;
    /* Between threads of one process, messages always go by reference (no
     * copy). Across processes single copy is opt-in: on this 2-core host the
     * FIFO, whose slots stay in cache, measured faster (5-6 vs 4-4.6 GB/s
     * busbw, 2 ranks, 256 KB-64 MB). */
    int allow_cma = ppu_param_int(PPU_P_CMA) != 0;
    if (allow_cma)
        ptracer_hold(comm);
    comm->local = ppu_transport_named(NULL, PPU_REACH_SERVER);
    struct ppu_link_params p;
    memset(&p, 0, sizeof p);
    p.self_rank = comm->rank;
    p.slot_bytes = comm->plan.set.chunk_bytes;
    p.nslots = comm->plan.set.fifo_slots;
    p.allow_direct = 1;
    p.allow_cma = allow_cma;
    p.reg_owner = comm;
    p.ll_bytes = comm->plan.set.ll_max;
    int nnet = 0, any_net = 0; /* peers on other servers: this rank's, any rank's */
    for (int q = 0; q < n; q++) {
        nnet += cross_server(comm, comm->rank, q);
        any_net |= cross_server(comm, 0, q);
    }
    if (any_net)
        PPU_CHECK(pick_net(comm));
    char addr[80] = "";
    if (nnet)
        PPU_CHECK(net_params(comm, &p, addr, sizeof addr));
    comm->link_base = p;
    shm_budget(comm);
    /* No link yet: each is connected when a call first needs it. */
    char what[300];
    comm->local->describe(&p, addr, what, sizeof what);
    PPU_INFO(PPU_SUB_INIT, "rank %d: %d channel(s)%s; links connected on first use over %s "
             "inside its server", comm->rank, nc,
             comm->plan.mesh ? ", every rank one ICN hop away" : "", what);
    if (nnet) {
        int ring_net = 0;
        for (int c = 0; c < nc; c++)
            ring_net += cross_server(comm, comm->rank, comm->ch[c].next) +
                        cross_server(comm, comm->rank, comm->ch[c].prev);
        comm->net->describe(&p, addr, what, sizeof what);
        PPU_INFO(PPU_SUB_INIT, "rank %d: links to the %d rank(s) on other servers over %s; %d of "
                 "its %d ring link(s) cross servers", comm->rank, nnet, what, ring_net, 2 * nc);
    }
    return PPU_SUCCESS;
}

static int cmp_stat_row(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y; /* dst is the first field */
    return (a > b) - (a < b);
}

static void write_stats(struct ppu_comm *comm)
{
    const char *pat = ppu_param_str(PPU_P_SIM_STATS_FILE);
    if (!*pat)
        return;
    char path[512];
    size_t o = 0;
    for (const char *p = pat; *p && o < sizeof path - 16; p++) {
        if (p[0] == '%' && p[1] == 'r') {
            o += (size_t)snprintf(path + o, sizeof path - o, "%d", comm->rank);
            p++;
        } else {
            path[o++] = *p;
        }
    }
    path[o] = '\0';
    FILE *f = fopen(path, "a");
    if (!f) {
        PPU_WARN(PPU_SUB_INIT, "cannot write PPU_SIM_STATS_FILE %s", path);
        return;
    }
    /* One line per destination: channels that share a link add up. */
    struct stat_row {
        int dst;
        uint64_t bytes, msgs;
    } *rows = calloc((size_t)comm->nlinks + 1, sizeof *rows);
    int nrows = 0;
    for (int i = 0; rows && i < comm->nlinks; i++)
        if (comm->links[i].send && comm->links[i].link->ops)
            rows[nrows++] = (struct stat_row){comm->links[i].link->params.peer_rank,
                                              comm->links[i].link->bytes,
                                              comm->links[i].link->msgs};
    qsort(rows, (size_t)nrows, sizeof *rows, cmp_stat_row);
    for (int i = 0; i < nrows;) {
        int dst = rows[i].dst;
        uint64_t bytes = 0, msgs = 0;
        for (; i < nrows && rows[i].dst == dst; i++) {
            bytes += rows[i].bytes;
            msgs += rows[i].msgs;
        }
        /* the links it sent on; "net": to another server over the network
         * transport; "host": no ICN link, staged through host memory */
        if (msgs > 0)
            fprintf(f, "%d %d %llu %llu %s\n", comm->rank, dst, (unsigned long long)bytes,
                    (unsigned long long)msgs,
                    cross_server(comm, comm->rank, dst)            ? "net"
                    : ppu_cluster_icn_up(&comm->cl, comm->rank, dst) ? "icn"
                                                                     : "host");
    }
    free(rows);
    fclose(f);
}

void ppu_comm_disconnect(struct ppu_comm *comm)
{
    write_stats(comm);
    ptracer_release(comm);
    for (int i = 0; i < comm->nlinks; i++) {
        struct ppu_link *l = comm->links[i].link;
        if (l->ops)
            l->ops->close(l);
        l->ops = NULL;
    }
    for (size_t p = 0; p < (size_t)comm->nranks * PPU_SCHED_LANES; p++) {
        if (comm->peer_send)
            free(comm->peer_send[p]);
        if (comm->peer_recv)
            free(comm->peer_recv[p]);
    }
    free(comm->peer_send);
    free(comm->peer_recv);
    free(comm->links);
    comm->peer_send = comm->peer_recv = NULL;
    comm->links = NULL;
    comm->nlinks = comm->links_cap = 0;
}
