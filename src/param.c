#include "param.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "log.h"

static const struct ppu_param_def table[PPU_P_COUNT] = {
    [PPU_P_DEBUG] = {"PPU_DEBUG", "WARN", "Log level: NONE, WARN, INFO or TRACE."},
    [PPU_P_DEBUG_SUBSYS] = {"PPU_DEBUG_SUBSYS", "ALL",
        "Comma list of INIT,COLL,NET,TOPO,SHM,BOOT,ENV; a leading ^ excludes."},
    [PPU_P_DEBUG_FILE] = {"PPU_DEBUG_FILE", "",
        "Write logs to this file instead of stderr; %h is the host, %p the pid."},
    [PPU_P_TIMEOUT_MS] = {"PPU_TIMEOUT_MS", "300000",
        "Longest wait on a peer inside a collective before it fails with PPU_TIMEOUT."},
    [PPU_P_BOOTSTRAP_TIMEOUT_MS] = {"PPU_BOOTSTRAP_TIMEOUT_MS", "60000",
        "Longest wait for all ranks to meet at communicator init."},
    [PPU_P_SOCKET_IFNAME] = {"PPU_SOCKET_IFNAME", "",
        "Network interface for bootstrap sockets (e.g. eth0, lo); default: the "
        "first non-loopback interface that is up, else loopback."},
    [PPU_P_NET] = {"PPU_NET", "",
        "Network transport for links between servers: ib (RDMA: libibverbs + librdmacm) or "
        "socket (TCP). Empty: ib when every rank has an RDMA device with an active port, "
        "else socket (PPU_DEBUG=INFO logs the choice)."},
    [PPU_P_SOCKET_NSOCKS] = {"PPU_SOCKET_NSOCKS", "2",
        "TCP connections per network link, 1..8; message i of a link travels on "
        "connection i mod n. Listeners bind to PPU_SOCKET_IFNAME's address."},
    [PPU_P_SOCKET_NTHREADS] = {"PPU_SOCKET_NTHREADS", "1",
        "Progress threads per process moving TCP bytes, 1..4 (at most PPU_SOCKET_NSOCKS "
        "are used); thread k serves connection k mod n of every link. More than 1 measured "
        "slower on a 16-core host (4 ranks, 64 MB all-reduce)."},
    [PPU_P_SOCKET_INLINE] = {"PPU_SOCKET_INLINE", "1",
        "1: a rank's own thread moves TCP bytes while it waits on the network, instead of "
        "idling until a progress thread wakes (2 ranks, 2 servers, this host: 8 B all-reduce "
        "190-240 -> 22-30 us); 0: only the progress threads do."},
    [PPU_P_IB_HCA] = {"PPU_IB_HCA", "",
        "RDMA device for PPU_NET=ib (e.g. mlx5_0): its interface's address is where links "
        "listen. Empty: the device of PPU_SOCKET_IFNAME's address."},
    [PPU_P_ROOT_ADDR] = {"PPU_ROOT_ADDR", "",
        "host:port of the rendezvous root for ppu_comm_init_env; rank 0 listens there."},
    [PPU_P_RANK] = {"PPU_RANK", "", "This process's rank for ppu_comm_init_env."},
    [PPU_P_WORLD_SIZE] = {"PPU_WORLD_SIZE", "", "The rank count for ppu_comm_init_env."},
    [PPU_P_BOOTSTRAP_SECRET] = {"PPU_BOOTSTRAP_SECRET", "",
        "Shared secret string for ppu_comm_init_env with PPU_ROOT_ADDR (default: derived "
        "from the launcher's job id); connections "
        "without it are dropped."},
    [PPU_P_TOPO_FILE] = {"PPU_TOPO_FILE", "",
        "Topology file (XML, see topology/TOPOLOGY_FILE.md) to use instead of the probe "
        "and the presets."},
    [PPU_P_TOPO_DUMP_FILE] = {"PPU_TOPO_DUMP_FILE", "",
        "Rank 0 writes the topology it discovered to this file, in the PPU_TOPO_FILE format."},
    [PPU_P_SYSFS_ROOT] = {"PPU_SYSFS_ROOT", "/sys/class/ppu",
        "Where the hardware probe looks for PPU chips (layout: topology/README.md)."},
    [PPU_P_SIM_TOPO] = {"PPU_SIM_TOPO", "auto",
        "Simulated server wiring: fullmesh8, server16, ring8, hypercube16, or auto "
        "(fullmesh8 up to 8 ranks, server16 up to 16)."},
    [PPU_P_SIM_LINKS_DOWN] = {"PPU_SIM_LINKS_DOWN", "",
        "Links of the simulated topology to mark down, e.g. 0-3,2-5; rings avoid them."},
    [PPU_P_SIM_SERVERS] = {"PPU_SIM_SERVERS", "1",
        "Split the local ranks into this many simulated servers (equal sizes; past 64 ranks "
        "each server holds at most 64, PAI-PPU's 16: N/16)."},
    [PPU_P_CPU_AFFINITY] = {"PPU_CPU_AFFINITY", "1",
        "Bind each rank to the CPUs of its chip's NUMA node when known; 0 leaves it alone."},
    [PPU_P_SIM_STATS_FILE] = {"PPU_SIM_STATS_FILE", "",
        "At communicator destroy, each rank writes 'src dst bytes messages kind' per "
        "link it sent on to this file (kind: icn, host when staged through host memory, "
        "net to another server); %r is the rank."},
    [PPU_P_SIM_FAULT] = {"PPU_SIM_FAULT", "",
        "Faults to inject, comma-separated: link=A-B:down@op=K, link=A-B:delay_us=D, "
        "link=A-B:corrupt@op=K (one bit of each message on A->B flipped in collective K), "
        "rank=R:exit@op=K (collectives counted from 1 per communicator)."},
    [PPU_P_ALGO] = {"PPU_ALGO", "",
        "Algorithms the planner may use: names for every collective (ring,tree,oneshot,"
        "twoshot,pairwise,hier,hiertree) or per collective (allreduce:twoshot;alltoall:ring). A name "
        "that does not apply to a call is logged and the planner chooses."},
    [PPU_P_PROTO] = {"PPU_PROTO", "",
        "Protocols the planner may use, same syntax as PPU_ALGO: ll (data and flag in "
        "one word, small messages) and simple (pipelined chunks)."},
    [PPU_P_CHECK_CALLS] = {"PPU_CHECK_CALLS", "1",
        "1: every message carries its call (collective, sequence number, count, type, op, "
        "root) and ranks that called different things fail with both calls named; 0: off."},
    [PPU_P_CHECKSUM] = {"PPU_CHECKSUM", "0",
        "1: every message carries a checksum of its bytes, checked by the receiver; a "
        "mismatch fails the call naming the link instead of returning the data."},
    [PPU_P_LL_MAX_BYTES] = {"PPU_LL_MAX_BYTES", "8192",
        "Largest message sent with the low-latency protocol; 0 turns it off."},
    [PPU_P_P2P_CHUNK_SIZE] = {"PPU_P2P_CHUNK_SIZE", "131072",
        "Bytes per message on direct peer links (mesh algorithms, all-to-all, send/recv)."},
    [PPU_P_ONESHOT_MAX_BYTES] = {"PPU_ONESHOT_MAX_BYTES", "32768",
        "Largest all-reduce that uses one-shot when ranks form a full mesh."},
    [PPU_P_NCHANNELS] = {"PPU_NCHANNELS", "0",
        "Channels (link-disjoint rings) to use; 0 picks automatically."},
    [PPU_P_CHANNEL_MIN_BYTES] = {"PPU_CHANNEL_MIN_BYTES", "262144",
        "Least bytes a channel carries: smaller calls use fewer channels."},
    [PPU_P_CHUNK_SIZE] = {"PPU_CHUNK_SIZE", "262144",
        "Bytes per pipelined chunk (one FIFO slot) on simulated links."},
    [PPU_P_FIFO_SLOTS] = {"PPU_FIFO_SLOTS", "8",
        "Slots in each ring link's FIFO, 1..64. Links inside a host get fewer (down to 2) when "
        "their ranks' share of a quarter of /dev/shm is smaller (PPU_DEBUG=INFO says so)."},
    [PPU_P_SPIN] = {"PPU_SPIN", "-1",
        "Polls of a peer before a waiting rank yields its core; -1: 2000, or 0 when "
        "this host runs more ranks than it has cores."},
    [PPU_P_CMA] = {"PPU_CMA", "0",
        "1: move large chunks between processes with one kernel copy (process_vm_readv) "
        "instead of through the FIFO. Off by default: slower on the 2-core test host. "
        "Ranks that are threads of one process always pass references."},
    [PPU_P_CMA_MIN_BYTES] = {"PPU_CMA_MIN_BYTES", "65536",
        "Smallest chunk moved by single copy; smaller chunks go through the FIFO."},
};

static const char *values[PPU_P_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_all(void)
{
    for (int i = 0; i < PPU_P_COUNT; i++) {
        const char *env = getenv(table[i].name);
        values[i] = env ? env : table[i].def;
        if (env)
            PPU_INFO(PPU_SUB_ENV, "%s set by environment to '%s' (default '%s')",
                     table[i].name, env, table[i].def);
    }
}

const struct ppu_param_def *ppu_param_table(void) { return table; }

const char *ppu_param_str(enum ppu_param p)
{
    pthread_once(&once, read_all);
    return values[p];
}

long long ppu_param_int(enum ppu_param p)
{
    const char *s = ppu_param_str(p);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || end == s || *end) {
        PPU_WARN(PPU_SUB_ENV, "%s='%s' is not an integer; using default %s",
                 table[p].name, s, table[p].def);
        v = strtoll(table[p].def, NULL, 0);
    }
    return v;
}
