#include "param.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* Choices are matched without regard to case; the value in force is the
 * table's spelling, so callers compare with strcmp. */
static const char *const debug_levels[] = {"NONE", "OFF", "WARN", "INFO", "TRACE", NULL};
static const char *const debug_subsys[] = {"INIT", "COLL", "NET", "TOPO", "SHM",
                                           "BOOT", "ENV",  "ALL", NULL};
static const char *const nets[] = {"ib", "socket", NULL};
static const char *const simds[] = {"avx512", "avx2", "generic", NULL};

#define INT(lo, hi) .kind = PPU_PK_INT, .min = (lo), .max = (hi)

static const struct ppu_param_def table[PPU_P_COUNT] = {
    [PPU_P_DEBUG] = {"PPU_DEBUG", "WARN", "Log level: NONE, WARN, INFO or TRACE.",
        .kind = PPU_PK_CHOICE, .choices = debug_levels},
    [PPU_P_DEBUG_SUBSYS] = {"PPU_DEBUG_SUBSYS", "ALL",
        "Comma list of INIT,COLL,NET,TOPO,SHM,BOOT,ENV; a leading ^ excludes.",
        .kind = PPU_PK_LIST, .choices = debug_subsys},
    [PPU_P_DEBUG_FILE] = {"PPU_DEBUG_FILE", "",
        "Write logs to this file instead of stderr; %h is the host, %p the pid.",
        .kind = PPU_PK_STR},
    [PPU_P_TIMEOUT_MS] = {"PPU_TIMEOUT_MS", "300000",
        "Longest wait on a peer inside a collective before it fails with PPU_TIMEOUT.",
        INT(1, INT32_MAX)},
    [PPU_P_BOOTSTRAP_TIMEOUT_MS] = {"PPU_BOOTSTRAP_TIMEOUT_MS", "60000",
        "Longest wait for all ranks to meet at communicator init.",
        INT(1, INT32_MAX)},
    [PPU_P_SOCKET_IFNAME] = {"PPU_SOCKET_IFNAME", "",
        "Network interface for bootstrap sockets (e.g. eth0, lo); default: the "
        "first non-loopback interface that is up, else loopback.",
        .kind = PPU_PK_STR},
    [PPU_P_NET] = {"PPU_NET", "",
        "Network transport for links between servers: ib (RDMA: libibverbs + librdmacm) or "
        "socket (TCP). Empty: ib when every rank has an RDMA device with an active port, "
        "else socket (PPU_DEBUG=INFO logs the choice).",
        .kind = PPU_PK_CHOICE, .choices = nets},
    [PPU_P_SOCKET_NSOCKS] = {"PPU_SOCKET_NSOCKS", "2",
        "TCP connections per network link; message i of a link travels on "
        "connection i mod n. Listeners bind to PPU_SOCKET_IFNAME's address.",
        INT(1, 8)},
    [PPU_P_SOCKET_NTHREADS] = {"PPU_SOCKET_NTHREADS", "1",
        "Progress threads per process moving TCP bytes (at most PPU_SOCKET_NSOCKS "
        "are used); thread k serves connection k mod n of every link. More than 1 measured "
        "slower on a 16-core host (4 ranks, 64 MB all-reduce).",
        INT(1, 4)},
    [PPU_P_SOCKET_INLINE] = {"PPU_SOCKET_INLINE", "1",
        "1: a rank's own thread moves TCP bytes while it waits on the network, instead of "
        "idling until a progress thread wakes (2 ranks, 2 servers, this host: 8 B all-reduce "
        "190-240 -> 22-30 us); 0: only the progress threads do.",
        INT(0, 1)},
    [PPU_P_IB_HCA] = {"PPU_IB_HCA", "",
        "RDMA device for PPU_NET=ib (e.g. mlx5_0): an address of its interfaces (those its GID "
        "table names, so VLANs and bonds too; never IPv6 link-local) is where links listen and "
        "what they connect from. Empty: the device that has PPU_SOCKET_IFNAME's address; a rank "
        "whose address is on no RDMA device does not count as able to use ib. A device that "
        "cannot write with immediate (iWARP other than erdma) is never taken; naming it fails "
        "with its reason.",
        .kind = PPU_PK_STR},
    [PPU_P_IB_TC] = {"PPU_IB_TC", "-1",
        "Traffic class of RDMA links (RoCE: DSCP << 2 | ECN, e.g. 106 for DSCP 26), for "
        "fabrics that give collectives their own queue; -1: the device's default.",
        INT(-1, 255)},
    [PPU_P_IB_TIMEOUT] = {"PPU_IB_TIMEOUT", "-1",
        "RDMA local ACK timeout, 4.096 us x 2^N before a packet is sent again (large "
        "fabrics: 18-20); -1: what librdmacm derives from the path.",
        INT(-1, 31)},
    [PPU_P_IB_RETRY_CNT] = {"PPU_IB_RETRY_CNT", "7",
        "RDMA transport retries before a link fails with the peer named (0-7).",
        INT(0, 7)},
    [PPU_P_ROOT_ADDR] = {"PPU_ROOT_ADDR", "",
        "host:port of the rendezvous root for ppu_comm_init_env; rank 0 listens there.",
        .kind = PPU_PK_STR},
    [PPU_P_RANK] = {"PPU_RANK", "", "This process's rank for ppu_comm_init_env.",
        INT(0, INT32_MAX - 1)},
    [PPU_P_WORLD_SIZE] = {"PPU_WORLD_SIZE", "", "The rank count for ppu_comm_init_env.",
        INT(1, INT32_MAX)},
    [PPU_P_BOOTSTRAP_SECRET] = {"PPU_BOOTSTRAP_SECRET", "",
        "Shared secret string for ppu_comm_init_env with PPU_ROOT_ADDR; connections without "
        "it are dropped. Required when PPU_ROOT_ADDR is not a loopback address (unless "
        "PPU_BOOTSTRAP_INSECURE=1); never logged.",
        .secret = 1,
        .kind = PPU_PK_STR},
    [PPU_P_BOOTSTRAP_INSECURE] = {"PPU_BOOTSTRAP_INSECURE", "0",
        "1: let ppu_comm_init_env listen on a PPU_ROOT_ADDR other hosts can reach without "
        "PPU_BOOTSTRAP_SECRET (any process that reaches it can join; a warning says so).",
        INT(0, 1)},
    [PPU_P_TOPO_FILE] = {"PPU_TOPO_FILE", "",
        "Topology file (XML, see topology/TOPOLOGY_FILE.md) to use instead of the probe "
        "and the presets.",
        .kind = PPU_PK_STR},
    [PPU_P_TOPO_DUMP_FILE] = {"PPU_TOPO_DUMP_FILE", "",
        "Rank 0 writes the topology it discovered to this file, in the PPU_TOPO_FILE format.",
        .kind = PPU_PK_STR},
    [PPU_P_SYSFS_ROOT] = {"PPU_SYSFS_ROOT", "/sys/class/ppu",
        "Where the hardware probe looks for PPU chips (layout: topology/README.md).",
        .kind = PPU_PK_STR},
    [PPU_P_SIM_TOPO] = {"PPU_SIM_TOPO", "auto",
        "Simulated server wiring: fullmesh8, server16, ring8, hypercube16, switch16, or auto "
        "(fullmesh8 up to 8 ranks, server16 up to 16).",
        .kind = PPU_PK_STR},
    [PPU_P_SIM_LINKS_DOWN] = {"PPU_SIM_LINKS_DOWN", "",
        "Links of the simulated topology to mark down, e.g. 0-3,2-5; rings avoid them.",
        .kind = PPU_PK_STR},
    [PPU_P_SIM_SERVERS] = {"PPU_SIM_SERVERS", "1",
        "Split the local ranks into this many simulated servers (equal sizes; past 64 ranks "
        "each server holds at most 64, PAI-PPU's 16: N/16).",
        INT(1, 1 << 20)},
    [PPU_P_CPU_AFFINITY] = {"PPU_CPU_AFFINITY", "1",
        "Bind each rank to the CPUs of its chip's NUMA node when known; 0 leaves it alone.",
        INT(0, 1)},
    [PPU_P_SIM_STATS_FILE] = {"PPU_SIM_STATS_FILE", "",
        "At communicator destroy, each rank writes 'src dst bytes messages kind' per "
        "link it sent on to this file (kind: icn, host when staged through host memory, "
        "net to another server); %r is the rank.",
        .kind = PPU_PK_STR},
    [PPU_P_SIM_FAULT] = {"PPU_SIM_FAULT", "",
        "Faults to inject, comma-separated: link=A-B:down@op=K, link=A-B:delay_us=D, "
        "link=A-B:corrupt@op=K (one bit of each message on A->B flipped in collective K), "
        "link=A-B:gbps=G (A->B carries at most G GB/s), "
        "rank=R:exit@op=K (collectives counted from 1 per communicator).",
        .kind = PPU_PK_STR},
    [PPU_P_STATUS] = {"PPU_STATUS", "1",
        "1: each rank keeps a record of the call it is in and the peer it waits on in an "
        "owner-only file in /dev/shm, for ppu-diag status and the timeout message; 0: none.",
        INT(0, 1)},
    [PPU_P_SIM_LINK_CAP] = {"PPU_SIM_LINK_CAP", "0",
        "1: pace every ICN link to the bandwidth the topology gives it (its gbps), as the "
        "hardware would; 0 (default): links run as fast as host memory allows.",
        INT(0, 1)},
    [PPU_P_ALGO] = {"PPU_ALGO", "",
        "Algorithms the planner may use: names for every collective (ring,tree,oneshot,"
        "twoshot,pairwise,hier,hiertree) or per collective (allreduce:twoshot;alltoall:ring). A name "
        "that does not apply to a call is logged and the planner chooses (the ring all-to-all "
        "applies up to 512 ranks: past that a rank would list n(n-1)/2 steps a chunk).",
        .kind = PPU_PK_STR},
    [PPU_P_PROTO] = {"PPU_PROTO", "",
        "Protocols the planner may use, same syntax as PPU_ALGO: ll (data and flag in "
        "one word, small messages) and simple (pipelined chunks).",
        .kind = PPU_PK_STR},
    [PPU_P_CHECK_CALLS] = {"PPU_CHECK_CALLS", "1",
        "1: every message carries its call (collective, sequence number, count, type, op, "
        "root) and ranks that called different things fail with both calls named; 0: off.",
        INT(0, 1)},
    [PPU_P_CHECKSUM] = {"PPU_CHECKSUM", "0",
        "1: every message carries a checksum of its bytes, checked by the receiver; a "
        "mismatch fails the call naming the link instead of returning the data.",
        INT(0, 1)},
    [PPU_P_SIMD] = {"PPU_SIMD", "",
        "Instruction set of the reduction kernels: avx512, avx2 (with F16C for float16) or "
        "generic. Empty: the best this CPU has; one it lacks is logged (WARN) and the best "
        "it has is used.",
        .kind = PPU_PK_CHOICE, .choices = simds},
    [PPU_P_LL_MAX_BYTES] = {"PPU_LL_MAX_BYTES", "8192",
        "Largest message sent with the low-latency protocol (rounded up to 8 bytes, at most "
        "PPU_P2P_CHUNK_SIZE); 0 turns it off.",
        INT(0, 1 << 30)},
    [PPU_P_P2P_CHUNK_SIZE] = {"PPU_P2P_CHUNK_SIZE", "131072",
        "Bytes per message on direct peer links (mesh algorithms, all-to-all, send/recv); "
        "rounded down to whole 4 KiB pages, and at most PPU_CHUNK_SIZE.",
        INT(4096, 1 << 30)},
    [PPU_P_ONESHOT_MAX_BYTES] = {"PPU_ONESHOT_MAX_BYTES", "32768",
        "Largest all-reduce that uses one-shot when ranks form a full mesh.",
        INT(0, 1ll << 40)},
    [PPU_P_NCHANNELS] = {"PPU_NCHANNELS", "0",
        "Channels (link-disjoint rings) to use, at most 16; 0 picks automatically.",
        INT(0, 16)}, /* PPU_MAX_CHANNELS (plan_ctx.c asserts it) */
    [PPU_P_CHANNEL_MIN_BYTES] = {"PPU_CHANNEL_MIN_BYTES", "262144",
        "Least bytes a channel carries: smaller calls use fewer channels.",
        INT(0, 1ll << 40)},
    [PPU_P_CHUNK_SIZE] = {"PPU_CHUNK_SIZE", "262144",
        "Bytes per pipelined chunk (one FIFO slot) on simulated links; rounded down to whole "
        "4 KiB pages.",
        INT(4096, 1 << 30)},
    [PPU_P_FIFO_SLOTS] = {"PPU_FIFO_SLOTS", "8",
        "Slots in each ring link's FIFO, at least 2: a ring step receives and sends, and with "
        "one slot every rank would wait for its next to take the message it sent last. With 3 "
        "or more, a ring keeps two chunks of a block in flight (the next starts round while "
        "this one is under way), which needs 3. Links inside a host get fewer (down to 3, or 2 "
        "with PPU_FIFO_SLOTS=2) when their ranks' share of a quarter of /dev/shm is smaller "
        "(PPU_DEBUG=INFO says so).",
        INT(2, 64)},
    [PPU_P_SPIN] = {"PPU_SPIN", "-1",
        "Polls of a peer before a waiting rank yields its core; -1: 2000, or 0 when "
        "this host runs more ranks than it has cores.",
        INT(-1, INT32_MAX)},
    [PPU_P_CMA] = {"PPU_CMA", "0",
        "1: move large chunks between processes with one kernel copy (process_vm_readv) "
        "instead of through the FIFO. Off by default: slower on the 2-core test host. "
        "Ranks that are threads of one process always pass references.",
        INT(0, 1)},
    [PPU_P_CMA_MIN_BYTES] = {"PPU_CMA_MIN_BYTES", "65536",
        "Smallest chunk moved by single copy; smaller chunks go through the FIFO.",
        INT(0, 1ll << 40)},
};
static const char *values[PPU_P_COUNT];
static long long ivals[PPU_P_COUNT];
static unsigned char is_set[PPU_P_COUNT];
static char bad[PPU_P_COUNT][256]; /* why the environment's value is refused, or "" */
static pthread_once_t read_once = PTHREAD_ONCE_INIT;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static int parse_int(const char *s, long long *v)
{
    char *end;
    errno = 0;
    *v = strtoll(s, &end, 0);
    return !errno && end != s && *end == '\0';
}

static const char *find_choice(const char *const *choices, const char *s, size_t n)
{
    for (int k = 0; choices[k]; k++)
        if (strlen(choices[k]) == n && strncasecmp(choices[k], s, n) == 0)
            return choices[k];
    return NULL;
}

static void list_choices(const char *const *choices, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int k = 0; choices[k] && o < n; k++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", k ? ", " : "", choices[k]);
}

ppu_result_t ppu_param_parse(enum ppu_param p, const char *v, const char **value,
                             long long *ival, char *why, size_t wn)
{
    const struct ppu_param_def *d = &table[p];
    char allowed[160];
    *value = v;
    *ival = -1; /* unset */
    why[0] = '\0';
    switch (d->kind) {
    case PPU_PK_INT:
        if (!*v)
            return PPU_SUCCESS;
        if (!parse_int(v, ival)) {
            snprintf(why, wn, "%s='%s' is not an integer: it must be %lld..%lld", d->name, v,
                     d->min, d->max);
            return PPU_INVALID_ARGUMENT;
        }
        if (*ival < d->min || *ival > d->max) {
            snprintf(why, wn, "%s=%s is out of range: it must be %lld..%lld", d->name, v, d->min,
                     d->max);
            return PPU_INVALID_ARGUMENT;
        }
        return PPU_SUCCESS;
    case PPU_PK_CHOICE: {
        if (!*v)
            return PPU_SUCCESS;
        const char *c = find_choice(d->choices, v, strlen(v));
        if (c) {
            *value = c;
            return PPU_SUCCESS;
        }
        list_choices(d->choices, allowed, sizeof allowed);
        snprintf(why, wn, "%s='%s' is not one of: %s%s", d->name, v, allowed,
                 *d->def ? "" : " (or unset)");
        return PPU_INVALID_ARGUMENT;
    }
    case PPU_PK_LIST: {
        const char *s = v + (*v == '^');
        while (*s) {
            size_t n = strcspn(s, ",");
            if (n && !find_choice(d->choices, s, n)) {
                list_choices(d->choices, allowed, sizeof allowed);
                snprintf(why, wn, "%s='%s': '%.*s' is not one of: %s (comma-separated; a "
                         "leading ^ excludes)", d->name, v, (int)n, s, allowed);
                return PPU_INVALID_ARGUMENT;
            }
            s += n + (s[n] == ',');
        }
        return PPU_SUCCESS;
    }
    default:
        return PPU_SUCCESS;
    }
}

static void read_all(void)
{
    for (int i = 0; i < PPU_P_COUNT; i++) {
        const char *env = getenv(table[i].name);
        is_set[i] = env && *env;
        char why[sizeof bad[0]];
        /* Defaults pass their own checks (test api/param_defaults). */
        ppu_param_parse(i, table[i].def, &values[i], &ivals[i], why, sizeof why);
        if (is_set[i]) {
            const char *v;
            long long iv;
            /* A refused value fails init; until then the default is in force. */
            if (ppu_param_parse(i, env, &v, &iv, bad[i], sizeof bad[i]) == PPU_SUCCESS) {
                values[i] = v;
                ivals[i] = iv;
            }
        }
    }
}

/* Logging is its own step: the log reads its settings through
 * ppu_param_peek, which must not log. */
static void log_all(void)
{
    for (int i = 0; i < PPU_P_COUNT; i++) {
        if (!is_set[i])
            continue;
        if (table[i].secret)
            PPU_INFO(PPU_SUB_ENV, "%s is set by environment (its value is never logged)",
                     table[i].name);
        else if (bad[i][0])
            PPU_INFO(PPU_SUB_ENV, "%s", bad[i]);
        else
            PPU_INFO(PPU_SUB_ENV, "%s set by environment to '%s' (default '%s')", table[i].name,
                     getenv(table[i].name), table[i].def);
    }
}

const struct ppu_param_def *ppu_param_table(void) { return table; }

const char *ppu_param_peek(enum ppu_param p)
{
    pthread_once(&read_once, read_all);
    return values[p];
}

const char *ppu_param_str(enum ppu_param p)
{
    pthread_once(&read_once, read_all);
    pthread_once(&log_once, log_all);
    return values[p];
}

long long ppu_param_int(enum ppu_param p)
{
    ppu_param_str(p);
    return ivals[p];
}

int ppu_param_is_set(enum ppu_param p)
{
    pthread_once(&read_once, read_all);
    return is_set[p] && !bad[p][0];
}

ppu_result_t ppu_param_check(char *err, size_t errlen)
{
    pthread_once(&read_once, read_all);
    pthread_once(&log_once, log_all);
    for (int i = 0; i < PPU_P_COUNT; i++)
        if (bad[i][0]) {
            snprintf(err, errlen, "%s", bad[i]);
            return PPU_INVALID_ARGUMENT;
        }
    return PPU_SUCCESS;
}

void ppu_param_allowed(enum ppu_param p, char *buf, size_t n)
{
    const struct ppu_param_def *d = &table[p];
    char list[160];
    switch (d->kind) {
    case PPU_PK_INT:
        if (d->min == 0 && d->max == 1)
            snprintf(buf, n, "0, 1");
        else
            snprintf(buf, n, "%lld..%lld", d->min, d->max);
        break;
    case PPU_PK_CHOICE:
        list_choices(d->choices, list, sizeof list);
        snprintf(buf, n, "%s", list);
        break;
    case PPU_PK_LIST:
        list_choices(d->choices, list, sizeof list);
        snprintf(buf, n, "list of %s", list);
        break;
    default:
        snprintf(buf, n, "%s", d->secret ? "text, never logged" : "text");
    }
}
