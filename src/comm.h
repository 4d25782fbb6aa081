/* The communicator: what every core file sees. */
#ifndef PPU_COMM_H
#define PPU_COMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../topology/topo.h"
#include "../transports/transport.h"
#include "bootstrap.h"
#include "fault.h"
#include "ppuccl.h"
#include "plan_ctx.h"
#include "schedule.h"
#include "status.h"
#include "util/wait.h"

#define PPU_COMM_MAGIC 0x505055434f4d4d31ull
#define PPU_ERR_LEN 512
#define PPU_PLAN_CACHE 16
#define PPU_MAX_RANKS 65536 /* the bootstrap's limit */

struct ppu_plan {
    int valid;
    enum ppu_coll coll;
    size_t count;
    ppu_datatype_t datatype;
    ppu_redop_t op;
    int root, inplace;
    uint64_t used; /* plan_clock at last use */
    struct ppu_sched sched;
};

struct ppu_link_ref {
    struct ppu_link *link;
    int send; /* 1: this rank sends on it */
};

struct ppu_channel {
    int pos;        /* this rank's position in the channel's ring */
    int prev, next; /* peers */
    struct ppu_link send, recv;
};

#define PPU_MAX_HOOKS 3 /* transports one communicator uses, at most */

struct ppu_comm {
    uint64_t magic;
    int rank, nranks;
    struct ppu_bootstrap *bs;
    struct ppu_topo topo;
    /* while a split communicator connects: its parent's topology (dense,
     * up to 64 ranks) or cluster (two-level), and the parent chip (rank)
     * each new rank holds */
    const struct ppu_topo *parent_topo;
    const struct ppu_cluster *parent_cl;
    const int *parent_chips;
    /* What every schedule depends on (rings, trees, servers, settings, cost
     * model): the same on every rank, agreed at init (plan_agree.c). */
    struct ppu_plan_ctx plan;
    int nchannels; /* plan.nchannels: one ring's send and receive link each */
    struct ppu_channel ch[PPU_MAX_CHANNELS];
    /* The cluster in two levels: each rank's server, each server's link
     * graph (topo above is its dense form, kept only up to 64 ranks). */
    struct ppu_cluster cl;
    /* Direct links to peers, made when a call first needs them (NULL
     * before): over the ICN link between the two chips where the topology
     * has one, between servers the network, else staged through host
     * memory. links[] lists every link this rank set up (ring and peer),
     * for the loops that visit them all: call stamps, failure notices,
     * statistics, close. Memory grows with the links a rank uses. One
     * set of peer links a lane (schedule.h): peer_send[lane * nranks + q]. */
    struct ppu_link **peer_send, **peer_recv;
    struct ppu_link_ref *links;
    int nlinks, links_cap;
    /* what every link of this rank starts from (connect.c link_init) */
    struct ppu_link_params link_base;
    int shm_ring_slots, shm_peer_slots; /* FIFO depth of links inside this host (connect.c) */
    int host_ranks; /* ranks of this communicator on this host (from the bootstrap) */
    int stage_slots; /* reduce into a cached block, then copy to the send slot (exec.c) */
    /* the transport of links between servers (PPU_NET), chosen at connect */
    /* the transports of its links (the registry's, transports/registry.c):
     * inside its server, and to other servers (NULL until a link needs it) */
    const struct ppu_transport *local, *net;
    int ptracer_held; /* counted in ppu_cma_ptracer_users (connect.c) */

    size_t direct_min; /* smallest chunk sent as a reference (PPU_CMA_MIN_BYTES) */
    uint64_t timeout_ns;
    uint64_t next_alive_check; /* when to look for exited peers again */
    struct ppu_waiter wait; /* how the executor waits: spin, yield, nap (wait.h) */
    void *scratch; /* one chunk, for messages read from remote memory */

    pthread_mutex_t exec_lock; /* one collective at a time on the links */
    uint64_t seq;              /* calls issued (phases run) */
    uint64_t coll_seq;         /* collectives issued: the same on every rank */
    int check_calls;           /* PPU_CHECK_CALLS: stamp and check every message */
    int checksum;              /* PPU_CHECKSUM: sum every message, check on receipt */
    int link_cap;              /* PPU_SIM_LINK_CAP: ICN links paced to the topology's gbps */
    /* PPU_SIM_FAULT, PPU_CHECKSUM: the hooked copies of the transports'
     * ops tables (hook.c), one per transport its links use */
    struct ppu_hook {
        const struct ppu_transport_ops *inner;
        struct ppu_comm *comm;
        struct ppu_transport_ops ops;
    } hooks[PPU_MAX_HOOKS];
    const struct ppu_coll_args *cur_call; /* the call running, for the hooks' errors */
    void *fault_buf;           /* PPU_SIM_FAULT corrupt: the damaged copy */
    size_t fault_buf_bytes;
    struct ppu_fault faults[PPU_MAX_FAULTS]; /* PPU_SIM_FAULT */
    int nfaults;
    atomic_int aborted;
    atomic_int pending;        /* queued on streams, not yet finished */
    _Atomic ppu_result_t async_error;
    atomic_int broken;         /* a collective failed mid-way: links unusable */

    struct ppu_plan plans[PPU_PLAN_CACHE]; /* schedules, reused for the same key */
    uint64_t plan_clock;

    int32_t barrier_word; /* ppu_barrier's one-element all-reduce */

    /* windows (window.h): registered, newest first; this rank's control
     * segment and every mapped peer's (NULL: none) */
    struct ppu_window *windows;
    struct ppu_wctl *wctl, **wctl_peer;
    char wctl_name[96];
    uint64_t win_seq; /* window calls issued */
    int win_ids;      /* windows registered: each one's number */
    char **win_io;    /* 4 x nranks pointers the window calls fill in */

    /* the status board (status.h): this rank's record, NULL without one */
    struct ppu_status_rec *status;
    char status_name[96];

    pthread_mutex_t err_lock;
    char last_error[PPU_ERR_LEN];
};

/* A collective as queued on a stream or run inline. */
struct ppu_coll_args {
    enum ppu_coll coll;
    const void *sendbuf;
    void *recvbuf;
    size_t count;
    ppu_datatype_t datatype;
    ppu_redop_t op;
    int root; /* broadcast, reduce; the peer of send and recv */
    struct ppu_comm *comm;
    size_t *v; /* alltoallv: sendcounts, sdispls, recvcounts, rdispls (4 x nranks), owned */
};

/* The stamp every message of a call carries (with PPU_CHECK_CALLS), so a
 * receiver finds a peer that called something else (exec.c): the
 * collective, its number on the communicator, count, type, op and root.
 * ppu_call_str: the stamp as the error names it ("broadcast #3
 * count=1024 float32 root=4000"). */
void ppu_call_stamp(const struct ppu_comm *comm, const struct ppu_coll_args *a, uint64_t c[2]);
int ppu_call_str(const uint64_t c[2], char *buf, size_t len);

/* comm registry: is this pointer a live communicator? */
int ppu_comm_is_live(struct ppu_comm *comm);
/* Set up links and rings after the bootstrap (connect.c). */
ppu_result_t ppu_comm_connect(struct ppu_comm *comm, const struct ppu_plan_settings *set,
                              int cores);
/* At init, once the topology is known: every rank's plan-changing
 * settings, topology and core count compared through the bootstrap
 * (plan_agree.c). Ranks that would plan differently all fail with
 * PPU_INVALID_USAGE naming the setting and which ranks hold which value;
 * the first thing compared is ppu_lib_version (PPU_VERSION_STRING; a
 * variable so tests can change it), so ranks of different ppuccl builds
 * fail naming both versions.
 * *over: the most ranks a core on any host, the cost model's input. */
ppu_result_t ppu_plan_agree(struct ppu_comm *comm, const struct ppu_plan_settings *set, int cores,
                            double *over);
extern const char *ppu_lib_version;
/* Gives link l of comm its ops over transport inner: inner's own, or,
 * with PPU_SIM_FAULT or PPU_CHECKSUM, the communicator's copy with the data
 * calls wrapped (hook.c), and the link's hook state. */
void ppu_hook_link(struct ppu_comm *comm, struct ppu_link *l,
                   const struct ppu_transport_ops *inner);
/* Communicators of this process that use single copy (PPU_CMA=1); the
 * process lets any same-user process read it (Yama PR_SET_PTRACER) only
 * while this is above 0. ppu_yama_ptrace_scope: Yama's scope, -1 without
 * Yama. */
int ppu_cma_ptracer_users(void);
int ppu_yama_ptrace_scope(void);
void ppu_comm_disconnect(struct ppu_comm *comm);
/* Connect the links that the schedules (scheds[i] on comms[i], one group,
 * for calls[i]) use and that are not connected yet, with their peers
 * (connect.c). */
struct ppu_coll_args;
ppu_result_t ppu_links_ensure(struct ppu_comm *const *comms, const struct ppu_sched *const *scheds,
                              const struct ppu_coll_args *const *calls, int n);
/* Run collectives to completion on the calling thread (exec.c): one call,
 * or a group's calls together. */
ppu_result_t ppu_coll_run(struct ppu_coll_args *args);
/* The communicator is unusable: refuse later calls and post a failure
 * notice on every link so that peers blocked on this rank stop waiting. */
void ppu_comm_mark_failed(struct ppu_comm *comm);
ppu_result_t ppu_coll_run_group(struct ppu_coll_args *args, int n);
/* Queue collectives on a stream, run as one group (stream.c); the stream
 * takes the args (and their v arrays). */
ppu_result_t ppu_stream_enqueue(struct ppu_stream *stream, struct ppu_coll_args *args, int n);
/* The schedule for one call: from the plan cache, or built into *owned
 * (and *sched == owned) for calls that are not cached (plan.c). */
ppu_result_t ppu_plan_get(struct ppu_comm *comm, const struct ppu_coll_args *a,
                          struct ppu_sched *owned, const struct ppu_sched **sched);
/* The p2p ops of a group on one communicator as one schedule. */
ppu_result_t ppu_plan_p2p(struct ppu_comm *comm, struct ppu_coll_args *const *ops, int n,
                          struct ppu_sched *s);
/* Drop the communicator's cached schedules. */
void ppu_plan_free(struct ppu_comm *comm);
/* Depth of this thread's open group (coll.c). */
int ppu_group_depth(void);
/* Has this thread's open group recorded a call on comm? */
int ppu_group_uses(const struct ppu_comm *comm);

const char *ppu_datatype_name(ppu_datatype_t dt);
const char *ppu_redop_name(ppu_redop_t op);

/* Whether a waiting rank should look for exited peers now: at most every
 * 0.1 s a communicator, whoever waits (the executor, a window call). A
 * look may cost a TCP connection (ppu_bootstrap_peer_gone). Yes takes the
 * turn. */
#define PPU_ALIVE_CHECK_NS 100000000ull
static inline int ppu_alive_check_due(struct ppu_comm *comm, uint64_t now)
{
    if (now < comm->next_alive_check)
        return 0;
    comm->next_alive_check = now + PPU_ALIVE_CHECK_NS;
    return 1;
}

/* Tests: 1 or 0 forces comm->stage_slots for communicators made after it
 * is set (forked ranks inherit it); -1, the default, decides by cores. */
extern int ppu_test_stage_slots;

#endif
