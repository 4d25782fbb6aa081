/* Ranks on several (simulated) servers: every link between servers is the
 * TCP transport (net_socket). Every collective against the references of
 * refval.h on 2 servers x 4 ranks, 4 x 2 and 4 x 1, uneven servers from a
 * topology file, ranks as threads, the stats file's net column; the
 * transport's listener turning strangers away and its receiver refusing
 * bad frames; a rank killed mid-job; PPU_NET and PPU_SOCKET_NSOCKS
 * checked at init. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "collcheck.h"
#include "reg.h"
#include "net_ib/net_ib.h"
#include "net_socket/net_socket.h"
#include "ranks.h"
#include "regcheck.h"
#include "transport.h"
#include "util/param.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- every collective, checked (as test_colls.c, fewer types) ---- */

struct plan {
    unsigned colls;   /* bit per collective */
    size_t counts[4]; /* checked at each; 0 and an odd count among them */
    int ncounts;
    int all_types;    /* all-reduce over every datatype and op at counts[2] */
};

static int colls_rank(ppu_comm_t comm, int r, int n, void *arg)
{
    const struct plan *pl = arg;
    /* sendrecv: to the rank n/2 on (another server when the servers are
     * halves) and to the next one, in one group */
    struct cc_case k = {.p2p = {n / 2, 1}, .np2p = 2};
    size_t bad = 0;
    for (int c = 0; c < CC_NCOLL; c++) {
        if (!(pl->colls >> c & 1))
            continue;
        k.coll = c;
        k.root = (c == CC_BC ? n - 1 : n / 2 + 1) % n;
        for (int j = 0; j < pl->ncounts; j++)
            for (int t = 0; t < 2; t++) { /* float32 sum, int8 max */
                if (t && pl->counts[j] > 100000)
                    continue;
                k.dt = t ? PPU_INT8 : PPU_FLOAT32;
                k.op = cc_has_op(c) && t ? PPU_MAX : PPU_SUM;
                k.count = pl->counts[j];
                for (k.inplace = 0; k.inplace < (cc_has_inplace(c) ? 2 : 1); k.inplace++)
                    bad += cc_check(comm, r, n, &k);
            }
    }
    if (pl->all_types && (pl->colls & 1u << CC_AR)) {
        k = (struct cc_case){.coll = CC_AR, .count = pl->counts[2]};
        for (int dt = 0; dt < PPU_NUM_DATATYPES; dt++)
            for (int op = 0; op < PPU_NUM_REDOPS; op++) {
                k.dt = (ppu_datatype_t)dt;
                k.op = (ppu_redop_t)op;
                bad += cc_check(comm, r, n, &k);
            }
    }
    return bad != 0;
}

static void run(int n, const char *servers, const char *algo, const char *proto,
                const struct plan *pl)
{
    setenv("PPU_SIM_SERVERS", servers, 1);
    setenv("PPU_ALGO", algo, 1);
    setenv("PPU_PROTO", proto, 1);
    setenv("PPU_TIMEOUT_MS", "20000", 1); /* a hang fails fast, with its message */
    /* below every Test's .timeout: the ranks are killed before the test */
    int failed = run_ranks(n, colls_rank, (void *)pl, 60);
    cr_expect_eq(failed, 0, "%d ranks on %s servers, PPU_ALGO=%s PPU_PROTO=%s: %d rank(s) failed",
                 n, servers, algo, proto, failed);
}

#define ALL_COLLS ((1u << CC_NCOLL) - 1)

/* 2 servers x 4 ranks: ring and tree all-reduce (the algorithms the
 * planner takes here: the mesh ones need every rank one ICN hop away, so
 * naming them falls back), then every other collective. */
Test(net, every_collective_2x4, .timeout = 400 * PPU_TEST_SLOWDOWN)
{
    struct plan all = {ALL_COLLS, {0, 1, 1023, 65537}, 4, 1};
    run(8, "2", "allreduce:ring", "", &all);
    /* many chunks in flight: FIFOs and socket buffers fill up */
    struct plan big = {1u << CC_AR | 1u << CC_BC | 1u << CC_RD, {1048577}, 1, 0};
    run(8, "2", "allreduce:ring", "", &big);
    struct plan big_n = {1u << CC_AG | 1u << CC_RS | 1u << CC_A2A, {131073}, 1, 0};
    run(8, "2", "", "", &big_n);
    struct plan ar = {1u << CC_AR, {0, 7, 1023, 300007}, 4, 0};
    run(8, "2", "allreduce:tree", "simple", &ar);
    struct plan small = {1u << CC_AR | 1u << CC_AG | 1u << CC_A2A, {0, 3, 257}, 3, 0};
    run(8, "2", "allreduce:tree,twoshot", "ll", &small);
}

Test(net, every_collective_4x2, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    struct plan all = {ALL_COLLS, {0, 1, 1023, 65537}, 4, 0};
    run(8, "4", "", "", &all);
    struct plan ar = {1u << CC_AR, {0, 5, 1023, 300007}, 4, 0};
    run(8, "4", "allreduce:tree", "", &ar);
    /* across servers the planner takes pairwise all-to-all and the
     * hierarchical all-gather and reduce-scatter: the ring forms must
     * still work when named */
    struct plan a2a = {1u << CC_A2A | 1u << CC_AG | 1u << CC_RS, {0, 3, 65537}, 3, 0};
    run(8, "4", "alltoall:ring;allgather:ring;reduce_scatter:ring", "", &a2a);
}

/* 2 servers x 8 ranks (16 processes on this host: small counts) and
 * 3 x 3, every collective. */
Test(net, every_collective_2x8_3x3, .timeout = 400 * PPU_TEST_SLOWDOWN)
{
    struct plan all16 = {ALL_COLLS, {0, 1, 4099}, 3, 0};
    run(16, "2", "", "", &all16);
    struct plan all9 = {ALL_COLLS, {0, 1, 1023, 65537}, 4, 0};
    run(9, "3", "", "", &all9);
}

/* The hierarchical all-reduce (ICN reduce-scatter, rail all-reduce over
 * the network, ICN all-gather): every type and op, odd and zero counts,
 * several chunks a phase, on 2x4, 4x2 and 3x3. */
Test(net, hierarchical_allreduce, .timeout = 400 * PPU_TEST_SLOWDOWN)
{
    struct plan ar = {1u << CC_AR, {0, 7, 1023, 300007}, 4, 1};
    run(8, "2", "allreduce:hier", "", &ar);
    run(8, "4", "allreduce:hier", "", &ar);
    struct plan ar9 = {1u << CC_AR, {0, 1, 1025, 65537}, 4, 0};
    run(9, "3", "allreduce:hier", "", &ar9);
    /* the rail phase on double binary trees: 2, 3 and 4 servers */
    run(8, "4", "allreduce:hiertree", "", &ar);
    run(9, "3", "allreduce:hiertree", "", &ar9);
    run(8, "2", "allreduce:hiertree", "", &ar9);
    /* hierarchical all-gather: rail ring, then a ring per server inside */
    struct plan ag = {1u << CC_AG, {0, 1, 1023, 65537}, 4, 0};
    run(8, "2", "allgather:hier", "", &ag);
    run(8, "4", "allgather:hier", "", &ag);
    run(9, "3", "allgather:hier", "", &ag);
    /* and its mirror, the hierarchical reduce-scatter */
    struct plan rs = {1u << CC_RS, {0, 1, 1023, 65537}, 4, 0};
    run(8, "2", "reduce_scatter:hier", "", &rs);
    run(8, "4", "reduce_scatter:hier", "", &rs);
    run(9, "3", "reduce_scatter:hier", "", &rs);
}

/* Every rank its own server: every link is a network link. */
Test(net, every_collective_4x1, .timeout = 300 * PPU_TEST_SLOWDOWN)
{
    struct plan all = {ALL_COLLS, {0, 1, 1023, 65537}, 4, 0};
    run(4, "4", "", "", &all);
}

/* ---- uneven servers ---- */

/* Write xml to a file of this process (path gets its name) and make it
 * PPU_TOPO_FILE; drop_topo_file undoes both. */
static void use_topo_file(char *path, size_t len, const char *what, const char *xml)
{
    snprintf(path, len, "/tmp/ppu_net_%s_%d.xml", what, (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(xml, f);
    fclose(f);
    setenv("PPU_TOPO_FILE", path, 1);
}

static void drop_topo_file(const char *path)
{
    unsetenv("PPU_TOPO_FILE");
    unlink(path);
}

/* PPU_SIM_SERVERS splits ranks evenly: 3 servers for 8 ranks is refused at
 * init. Servers of different sizes are supported from a topology file:
 * 3 + 3 + 2 chips run every collective. */
Test(net, uneven_servers, .timeout = 250 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_SIM_SERVERS", "3", 1);
    cr_expect_eq(ranks_expect_init_error(8, "PPU_SIM_SERVERS=3 must divide the 8 ranks"), 0);
    unsetenv("PPU_SIM_SERVERS");
    char path[64];
    use_topo_file(path, sizeof path, "uneven", "<ppu_topology version=\"1\" name=\"uneven332\">\n"
               "  <server id=\"0\"><chip id=\"0\"/><chip id=\"1\"/><chip id=\"2\"/></server>\n"
               "  <server id=\"1\"><chip id=\"3\"/><chip id=\"4\"/><chip id=\"5\"/></server>\n"
               "  <server id=\"2\"><chip id=\"6\"/><chip id=\"7\"/></server>\n"
               "  <link a=\"0\" b=\"1\"/><link a=\"0\" b=\"2\"/><link a=\"1\" b=\"2\"/>\n"
               "  <link a=\"3\" b=\"4\"/><link a=\"3\" b=\"5\"/><link a=\"4\" b=\"5\"/>\n"
               "  <link a=\"6\" b=\"7\"/>\n"
               "</ppu_topology>\n");
    struct plan all = {ALL_COLLS, {0, 1, 1023, 65537}, 4, 0};
    run(8, "1", "", "", &all);
    struct plan ar = {1u << CC_AR, {0, 1023, 65537}, 3, 0};
    run(8, "1", "allreduce:tree", "", &ar);
    drop_topo_file(path);
}

/* Servers that are not runs of consecutive ranks (ranks 0, 2, 4 on one,
 * 1, 3, 5 on the other): the hierarchical forms must find each rank's
 * server mates and rail by server, not by rank order. */
Test(net, interleaved_servers, .timeout = 250 * PPU_TEST_SLOWDOWN)
{
    char path[64];
    use_topo_file(path, sizeof path, "interleaved", "<ppu_topology version=\"1\" name=\"interleaved\">\n"
               "  <server id=\"0\"><chip id=\"0\"/><chip id=\"2\"/><chip id=\"4\"/></server>\n"
               "  <server id=\"1\"><chip id=\"1\"/><chip id=\"3\"/><chip id=\"5\"/></server>\n"
               "  <link a=\"0\" b=\"2\"/><link a=\"2\" b=\"4\"/><link a=\"0\" b=\"4\"/>\n"
               "  <link a=\"1\" b=\"3\"/><link a=\"3\" b=\"5\"/><link a=\"1\" b=\"5\"/>\n"
               "</ppu_topology>\n");
    struct plan all = {ALL_COLLS, {0, 1, 1023, 65537}, 4, 0};
    run(6, "1", "", "", &all);
    struct plan h = {1u << CC_AR | 1u << CC_AG | 1u << CC_RS, {0, 5, 1023, 65537}, 4, 1};
    run(6, "1", "allreduce:hier;allgather:hier;reduce_scatter:hier", "", &h);
    run(6, "1", "allreduce:hiertree", "", &h);
    drop_topo_file(path);
}

/* ---- ranks as threads of one process, one progress thread ---- */

struct th_arg {
    ppu_comm_t comm;
    int rank, n, bad;
};

static void *th_rank(void *p)
{
    struct th_arg *a = p;
    enum { CNT = 100003 };
    float *v = malloc(CNT * sizeof *v);
    for (int it = 0; it < 5 && !a->bad; it++) {
        for (int i = 0; i < CNT; i++)
            v[i] = (float)(a->rank + i % 7 + it);
        if (ppu_allreduce(v, v, CNT, PPU_FLOAT32, PPU_SUM, a->comm, NULL) != PPU_SUCCESS) {
            fprintf(stderr, "rank %d: %s\n", a->rank, ppu_get_last_error(a->comm));
            a->bad = 1;
        }
        for (int i = 0; i < CNT && !a->bad; i++)
            if (v[i] != (float)(a->n * (a->n - 1) / 2 + a->n * (i % 7 + it)))
                a->bad = 1;
    }
    free(v);
    return NULL;
}

Test(net, ranks_as_threads, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    enum { N = 4 };
    setenv("PPU_SIM_SERVERS", "2", 1);
    setenv("PPU_TIMEOUT_MS", "20000", 1);
    ppu_comm_t comms[N];
    cr_assert_eq(ppu_comm_init_all(comms, N), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    struct th_arg a[N];
    pthread_t t[N];
    for (int r = 0; r < N; r++) {
        a[r] = (struct th_arg){comms[r], r, N, 0};
        pthread_create(&t[r], NULL, th_rank, &a[r]);
    }
    for (int r = 0; r < N; r++) {
        pthread_join(t[r], NULL);
        cr_expect_eq(a[r].bad, 0, "rank %d", r);
    }
    for (int r = 0; r < N; r++)
        cr_expect_eq(ppu_comm_destroy(comms[r]), PPU_SUCCESS);
}

/* ---- the stats file marks network links ---- */

static int some_allreduces(ppu_comm_t comm, int r, int n, void *arg)
{
    (void)arg;
    enum { CNT = 1 << 18 };
    float *v = calloc(CNT, sizeof *v);
    int bad = 0;
    for (int it = 0; it < 3 && !bad; it++)
        bad = ppu_allreduce(v, v, CNT, PPU_FLOAT32, PPU_SUM, comm, NULL) != PPU_SUCCESS;
    int32_t x = r, y = -1;
    ppu_group_start();
    ppu_send(&x, 1, PPU_INT32, (r + n / 2) % n, comm, NULL);
    ppu_recv(&y, 1, PPU_INT32, (r + n - n / 2) % n, comm, NULL);
    bad |= ppu_group_end() != PPU_SUCCESS || y != (r + n - n / 2) % n;
    free(v);
    return bad;
}

Test(net, stats_file_marks_network_links, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    char pat[64], path[80];
    snprintf(pat, sizeof pat, "/tmp/ppu_net_stats_%d_%%r.txt", (int)getpid());
    setenv("PPU_SIM_STATS_FILE", pat, 1);
    setenv("PPU_SIM_SERVERS", "2", 1);
    cr_assert_eq(run_ranks(8, some_allreduces, NULL, 40), 0);
    int net = 0, icn = 0;
    for (int r = 0; r < 8; r++) {
        snprintf(path, sizeof path, "/tmp/ppu_net_stats_%d_%d.txt", (int)getpid(), r);
        FILE *f = fopen(path, "r");
        cr_assert(f, "rank %d wrote no stats", r);
        int src, dst;
        unsigned long long bytes, msgs;
        char kind[16];
        while (fscanf(f, "%d %d %llu %llu %15s", &src, &dst, &bytes, &msgs, kind) == 5) {
            int cross = src / 4 != dst / 4;
            cr_expect_str_eq(kind, cross ? "net" : "icn", "%d->%d", src, dst);
            cr_expect_gt(bytes, 0ull);
            net += cross;
            icn += !cross;
        }
        fclose(f);
        unlink(path);
    }
    cr_expect_gt(net, 0, "some bytes crossed servers");
    cr_expect_gt(icn, 0, "some stayed inside a server");
}

/* ---- PPU_NET and PPU_SOCKET_NSOCKS ---- */

Test(net, net_parameters_checked_at_init, .timeout = 200 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_SIM_SERVERS", "2", 1);
    setenv("PPU_NET", "ib", 1);
    char why[200];
    if (!ppu_net_ib_usable(NULL, why, sizeof why)) /* a device: net_ib_device runs it */
        cr_expect_eq(ranks_expect_init_error(2, "PPU_NET=ib: "), 0);
    setenv("PPU_IB_HCA", "no-such-hca0", 1);
    cr_expect_eq(ranks_expect_init_error(2, "PPU_NET=ib: "), 0);
    unsetenv("PPU_IB_HCA");
    setenv("PPU_NET", "carrier-pigeon", 1);
    cr_expect_eq(ranks_expect_init_error(2, "PPU_NET='carrier-pigeon' is not one of: ib, socket"), 0);
    setenv("PPU_NET", "socket", 1);
    setenv("PPU_SOCKET_NSOCKS", "9", 1);
    cr_expect_eq(ranks_expect_init_error(2, "PPU_SOCKET_NSOCKS=9"), 0);
    /* 1 and 8 connections per link work */
    struct plan p = {1u << CC_AR | 1u << CC_A2A | 1u << CC_P2P, {0, 1023, 65537}, 3, 0};
    setenv("PPU_SOCKET_NSOCKS", "1", 1);
    run(4, "2", "", "", &p);
    setenv("PPU_SOCKET_NSOCKS", "8", 1);
    run(4, "4", "", "", &p);
    /* several progress threads, each with its share of every link's sockets */
    setenv("PPU_SOCKET_NTHREADS", "5", 1);
    cr_expect_eq(ranks_expect_init_error(2, "PPU_SOCKET_NTHREADS=5"), 0);
    setenv("PPU_SOCKET_NTHREADS", "3", 1);
    setenv("PPU_SOCKET_NSOCKS", "4", 1);
    run(4, "2", "", "", &p);
    unsetenv("PPU_SOCKET_NTHREADS");
    /* the ranks' own threads move no network bytes: the progress threads
     * alone (what every other test here runs with is the default, 1) */
    setenv("PPU_SOCKET_INLINE", "2", 1);
    cr_expect_eq(ranks_expect_init_error(2, "PPU_SOCKET_INLINE=2"), 0);
    setenv("PPU_SOCKET_INLINE", "0", 1);
    run(4, "2", "", "", &p);
    unsetenv("PPU_SOCKET_INLINE");
}

/* ---- a rank killed mid-job ---- */

static int victim_dies(ppu_comm_t comm, int rank, int n, void *arg)
{
    (void)n;
    int victim = *(const int *)arg;
    enum { COUNT = 1 << 19 };
    float *v = calloc(COUNT, sizeof *v);
    for (int it = 0; it < 2; it++)
        if (ppu_allreduce(v, v, COUNT, PPU_FLOAT32, PPU_SUM, comm, NULL) != PPU_SUCCESS) {
            fprintf(stderr, "rank %d: %s\n", rank, ppu_get_last_error(comm));
            return 1;
        }
    /* Unlike a shared-memory FIFO, a process's unsent messages die with it:
     * the victim lets its last ones leave, then dies while the others wait
     * on it in the next all-reduce. */
    if (rank == victim) {
        usleep(300 * 1000);
        raise(SIGKILL);
    }
    double t0 = now_s();
    ppu_result_t r = PPU_SUCCESS;
    for (int it = 0; it < 200 && r == PPU_SUCCESS; it++)
        r = ppu_allreduce(v, v, COUNT, PPU_FLOAT32, PPU_SUM, comm, NULL);
    double s = now_s() - t0;
    const char *msg = ppu_get_last_error(comm);
    free(v);
    /* every rank names the victim among the ranks gone */
    char gone[32];
    snprintf(gone, sizeof gone, "ranks gone: %d)", victim);
    int bad = r != PPU_REMOTE_ERROR || s > 5.0 || !strstr(msg, gone);
    if (bad || getenv("PPU_TEST_VERBOSE"))
        fprintf(stderr, "rank %d: got %d after %.2f s: '%s'\n", rank, r, s, msg);
    usleep(500 * 1000); /* survivors stay up while the others look */
    return bad;
}

/* Rank 6 of 2 x 4: its own server's ranks see its process gone, the other
 * server's see its connections close or a neighbour's failure notice.
 * Then every rank its own server: only the network tells. */
Test(net, killed_rank_ends_every_wait, .timeout = 150 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_TIMEOUT_MS", "20000", 1);
    int victim = 6;
    setenv("PPU_SIM_SERVERS", "2", 1);
    cr_expect_eq(run_ranks(8, victim_dies, &victim, 60), 1, "only the killed rank may fail");
    victim = 1;
    setenv("PPU_SIM_SERVERS", "4", 1);
    cr_expect_eq(run_ranks(4, victim_dies, &victim, 60), 1, "only the killed rank may fail");
}

/* ---- the transport alone: listener and frames ---- */

static void link_params(struct ppu_link *l, int self, int peer, int nsocks)
{
    memset(l, 0, sizeof *l);
    l->ops = &ppu_net_socket_ops;
    l->params.self_rank = self;
    l->params.peer_rank = peer;
    l->params.slot_bytes = 4096;
    l->params.nslots = 4;
    l->params.nsocks = nsocks;
    l->params.setup_timeout_ms = 10000;
    l->params.close_timeout_ms = 5000;
    struct sockaddr_in *a = (struct sockaddr_in *)&l->params.listen_addr;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static int dial(const struct net_info *ni)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(ni->port)};
    memcpy(&a.sin_addr, ni->addr, 4);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s",
              strerror(errno));
    return fd;
}

static struct net_hello hello_for(const struct net_info *ni, int index)
{
    struct net_hello h;
    memset(&h, 0, sizeof h);
    h.magic = NET_MAGIC_HELLO;
    h.version = NET_VERSION;
    h.index = (uint16_t)index;
    h.nsocks = ni->nsocks;
    h.nslots = ni->nslots;
    memcpy(h.nonce, ni->nonce, sizeof h.nonce);
    h.slot_bytes = ni->slot_bytes;
    return h;
}

/* Readable within a second, then 0 bytes: the receiver closed it. */
static int closed_by_peer(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    char b[64];
    return poll(&p, 1, 1000) == 1 && recv(fd, b, sizeof b, 0) <= 0;
}

static int log_has(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    char line[1200];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, what) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* A garbage connection, a wrong-nonce hello, an out-of-range index and a
 * connection that stalls mid-hello reach the listener before the real
 * sender: each is dropped and logged, the link completes at once (the
 * stall does not hold it up), and messages flow with their stamps. */
Test(net, listener_rejects_strangers, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    char logpath[64];
    snprintf(logpath, sizeof logpath, "/tmp/ppu_net_log_%d.txt", (int)getpid());
    setenv("PPU_DEBUG_FILE", logpath, 1);
    struct ppu_link rl, sl;
    link_params(&rl, 1, 0, 2);
    link_params(&sl, 0, 1, 2);
    char info[PPU_CONNECT_INFO_BYTES];
    cr_assert_eq(rl.ops->recv_setup(&rl, info), PPU_SUCCESS);
    struct net_info ni;
    memcpy(&ni, info, sizeof ni);
    cr_assert_eq(ni.nsocks, 2);

    int garbage = dial(&ni);
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: y\r\n\r\n";
    cr_assert_eq(write(garbage, junk, sizeof junk), (ssize_t)sizeof junk);
    int stranger = dial(&ni);
    struct net_hello h = hello_for(&ni, 0);
    h.nonce[3] ^= 0x40;
    cr_assert_eq(write(stranger, &h, sizeof h), (ssize_t)sizeof h);
    int bad_index = dial(&ni);
    h = hello_for(&ni, 5);
    cr_assert_eq(write(bad_index, &h, sizeof h), (ssize_t)sizeof h);
    int staller = dial(&ni);
    h = hello_for(&ni, 1);
    cr_assert_eq(write(staller, &h, 10), 10);

    cr_assert_eq(sl.ops->send_connect(&sl, info), PPU_SUCCESS);
    double t0 = now_s();
    cr_assert_eq(rl.ops->recv_finish(&rl), PPU_SUCCESS);
    cr_expect_lt(now_s() - t0, 1.5, "the stalled connection held the link up");
    cr_assert_eq(sl.ops->send_finish(&sl), PPU_SUCCESS);
    cr_expect(closed_by_peer(garbage));
    cr_expect(closed_by_peer(stranger));
    cr_expect(closed_by_peer(bad_index));
    cr_expect(closed_by_peer(staller));

    /* 40 messages of 0..4096 bytes through a 4-slot FIFO, in order */
    int sent = 0, got = 0, bad = 0;
    double end = now_s() + 10;
    while (got < 40 && now_s() < end) {
        void *slot;
        if (sent < 40 && sl.ops->send_reserve(&sl, &slot) == PPU_SUCCESS) {
            size_t nb = (size_t)(sent * 977) % 4097;
            for (size_t i = 0; i < nb; i++)
                ((unsigned char *)slot)[i] = (unsigned char)(sent * 31 + i);
            sl.call[0] = (uint64_t)sent;
            sl.call[1] = 0xabcdef00ull + (uint64_t)sent;
            sl.sum = (uint64_t)sent * 7;
            cr_assert_eq(sl.ops->send_commit(&sl, nb), PPU_SUCCESS);
            sent++;
        }
        struct ppu_msg m;
        if (rl.ops->recv_peek(&rl, &m) == PPU_SUCCESS) {
            size_t nb = (size_t)(got * 977) % 4097;
            bad += m.bytes != nb || m.call[0] != (uint64_t)got ||
                   m.call[1] != 0xabcdef00ull + (uint64_t)got || m.sum != (uint64_t)got * 7;
            for (size_t i = 0; i < nb && i < m.bytes; i++)
                bad += ((const unsigned char *)m.ptr)[i] != (unsigned char)(got * 31 + i);
            char copy[16];
            if (m.bytes >= 16) {
                cr_assert_eq(rl.ops->recv_read(&rl, copy, m.bytes - 16, 16), PPU_SUCCESS);
                bad += memcmp(copy, (const char *)m.ptr + m.bytes - 16, 16) != 0;
            }
            cr_assert_eq(rl.ops->recv_release(&rl), PPU_SUCCESS);
            got++;
        }
    }
    cr_expect_eq(got, 40);
    cr_expect_eq(bad, 0);
    cr_expect_eq(sl.msgs, 40u);
    cr_expect(!rl.ops->peer_gone(&rl) && !rl.ops->peer_failed(&rl));
    cr_expect(!sl.ops->peer_gone(&sl) && !sl.ops->peer_failed(&sl));
    /* a failure notice from the receiver reaches the sender */
    rl.ops->set_failed(&rl);
    end = now_s() + 3;
    while (!sl.ops->peer_failed(&sl) && now_s() < end)
        usleep(1000);
    cr_expect(sl.ops->peer_failed(&sl), "the sender did not see the receiver's notice");
    sl.ops->close(&sl);
    /* the sender closed: the receiver's next message will not come */
    end = now_s() + 3;
    while (!rl.ops->peer_gone(&rl) && now_s() < end)
        usleep(1000);
    cr_expect(rl.ops->peer_gone(&rl));
    rl.ops->close(&rl);
    close(garbage);
    close(stranger);
    close(bad_index);
    close(staller);
    cr_expect(log_has(logpath, "not a ppuccl connection"), "garbage not logged");
    cr_expect(log_has(logpath, "wrong nonce"), "wrong nonce not logged");
    cr_expect(log_has(logpath, "out of range"), "bad index not logged");
    cr_expect(log_has(logpath, "no complete hello"), "stall not logged");
    unlink(logpath);
}

/* A raw sender with the right hello, then: a good frame (delivered), a
 * failure notice (seen), a frame longer than a slot (the link breaks; no
 * byte past the slot is read). On a second link a bad magic breaks it, on
 * a third the connection closes (peer gone). */
static void raw_link(struct ppu_link *rl, int *fd)
{
    link_params(rl, 1, 0, 1);
    char info[PPU_CONNECT_INFO_BYTES];
    cr_assert_eq(rl->ops->recv_setup(rl, info), PPU_SUCCESS);
    struct net_info ni;
    memcpy(&ni, info, sizeof ni);
    *fd = dial(&ni);
    struct net_hello h = hello_for(&ni, 0);
    cr_assert_eq(write(*fd, &h, sizeof h), (ssize_t)sizeof h);
    cr_assert_eq(rl->ops->recv_finish(rl), PPU_SUCCESS);
}

static void frame(int fd, uint32_t magic, uint32_t type, uint64_t seq, uint64_t bytes,
                  const void *payload, size_t plen)
{
    struct net_frame f = {magic, type, seq, bytes, {seq, 42}, 0};
    cr_assert_eq(write(fd, &f, sizeof f), (ssize_t)sizeof f);
    if (plen)
        cr_assert_eq(write(fd, payload, plen), (ssize_t)plen);
}

static int wait_for(int (*fn)(struct ppu_link *), struct ppu_link *l)
{
    double end = now_s() + 3;
    while (!fn(l) && now_s() < end)
        usleep(1000);
    return fn(l);
}

Test(net, receiver_refuses_bad_frames, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_DEBUG", "NONE", 1);
    struct ppu_link rl;
    int fd;
    raw_link(&rl, &fd);
    char payload[5000];
    memset(payload, 0x5a, sizeof payload);
    frame(fd, NET_MAGIC_FRAME, NET_FRAME_DATA, 0, 100, payload, 100);
    struct ppu_msg m;
    double end = now_s() + 3;
    while (rl.ops->recv_peek(&rl, &m) != PPU_SUCCESS && now_s() < end)
        usleep(1000);
    cr_assert_eq(m.bytes, 100u);
    cr_expect_eq(m.call[0], 0u);
    cr_expect_eq(m.call[1], 42u);
    cr_expect_eq(((const char *)m.ptr)[99], 0x5a);
    rl.ops->recv_release(&rl);
    frame(fd, NET_MAGIC_FRAME, NET_FRAME_FAIL, 0, 0, NULL, 0);
    cr_expect(wait_for(rl.ops->peer_failed, &rl), "notice not seen");
    rl.ops->close(&rl);
    close(fd);

    raw_link(&rl, &fd);
    frame(fd, NET_MAGIC_FRAME, NET_FRAME_DATA, 0, 4097, payload, sizeof payload);
    cr_expect(wait_for(rl.ops->peer_failed, &rl), "an oversized frame was not refused");
    cr_expect_eq(rl.ops->recv_peek(&rl, &m), PPU_IN_PROGRESS);
    rl.ops->close(&rl);
    close(fd);

    raw_link(&rl, &fd);
    frame(fd, 0xdeadbeef, NET_FRAME_DATA, 0, 10, payload, 10);
    cr_expect(wait_for(rl.ops->peer_failed, &rl), "a bad magic was not refused");
    cr_expect_eq(rl.ops->recv_peek(&rl, &m), PPU_IN_PROGRESS);
    rl.ops->close(&rl);
    close(fd);

    raw_link(&rl, &fd);
    frame(fd, NET_MAGIC_FRAME, NET_FRAME_DATA, 3, 10, payload, 10); /* message 0 was due */
    cr_expect(wait_for(rl.ops->peer_failed, &rl), "an out-of-order frame was not refused");
    rl.ops->close(&rl);
    close(fd);

    raw_link(&rl, &fd);
    close(fd);
    cr_expect(wait_for(rl.ops->peer_gone, &rl), "a closed connection was not seen");
    cr_expect(!rl.ops->peer_failed(&rl));
    rl.ops->close(&rl);
}

/* Credits (net_proto.h): a receiver hands back its release count once it
 * has released half of its 4-slot window, and a sender that writes past
 * the window (a fifth message while the first four are unreleased) breaks
 * the link instead of overwriting a slot in use. */
Test(net, credits_flow_back_and_bind_the_sender, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_DEBUG", "NONE", 1);
    struct ppu_link rl;
    int fd;
    char payload[64];
    memset(payload, 7, sizeof payload);
    raw_link(&rl, &fd);
    for (uint64_t i = 0; i < 4; i++)
        frame(fd, NET_MAGIC_FRAME, NET_FRAME_DATA, i, 64, payload, 64);
    struct ppu_msg m;
    for (int i = 0; i < 2; i++) {
        double end = now_s() + 3;
        while (rl.ops->recv_peek(&rl, &m) != PPU_SUCCESS && now_s() < end)
            usleep(1000);
        cr_assert_eq(m.call[0], (uint64_t)i, "message %d not delivered in order", i);
        rl.ops->recv_release(&rl);
    }
    struct net_frame c;
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(read(fd, &c, sizeof c), (ssize_t)sizeof c, "no credit came back");
    cr_expect_eq(c.magic, NET_MAGIC_FRAME);
    cr_expect_eq(c.type, (uint32_t)NET_FRAME_CREDIT);
    cr_expect_eq(c.seq, 2u, "credit should report 2 releases");
    cr_expect(!rl.ops->peer_failed(&rl));
    /* messages 4 and 5 fit the credit; 6 does not (2 and 3 are held) */
    frame(fd, NET_MAGIC_FRAME, NET_FRAME_DATA, 4, 64, payload, 64);
    frame(fd, NET_MAGIC_FRAME, NET_FRAME_DATA, 5, 64, payload, 64);
    usleep(100000);
    cr_expect(!rl.ops->peer_failed(&rl), "messages within credit were refused");
    frame(fd, NET_MAGIC_FRAME, NET_FRAME_DATA, 6, 64, payload, 64);
    cr_expect(wait_for(rl.ops->peer_failed, &rl), "a message without credit was not refused");
    cr_expect_eq(rl.ops->recv_peek(&rl, &m), PPU_SUCCESS);
    cr_expect_eq(m.call[0], 2u, "the held message 2 changed");
    rl.ops->close(&rl);
    close(fd);
}

/* Hierarchical all-reduce of fewer elements than a server has ranks: most
 * ranks' shards are empty, so their rail phase has no steps. Such a rank's
 * all-gather must still wait for its reduce-scatter: it once started at
 * once, and when both phases waited on the same peer link the all-gather
 * could take the reduce-scatter's message (a hang, about once in 3000
 * calls here, or swapped values). The race needs timing, so this runs
 * many calls, on a reordered communicator on one stream while the world
 * runs all-reduces on another. */
static int tiny_hier(ppu_comm_t world, int rank, int n, void *arg)
{
    (void)arg;
    ppu_comm_t rev;
    ppu_stream_t sa, sb;
    if (ppu_comm_split(world, 0, n - rank, &rev) != PPU_SUCCESS ||
        ppu_stream_create(&sa) != PPU_SUCCESS || ppu_stream_create(&sb) != PPU_SUCCESS)
        return 1;
    static float big[5000], bigo[5000];
    int rc = 0;
    for (int i = 0; i < 1500 && rc == 0; i++) {
        int32_t in[3], out[3];
        size_t cnt = 1 + (size_t)(i % 3); /* 1..3 elements over 4 ranks a server */
        for (size_t k = 0; k < cnt; k++)
            in[k] = rank * 7 + i + (int32_t)k;
        if (ppu_allreduce(in, out, cnt, PPU_INT32, PPU_MAX, rev, sb) != PPU_SUCCESS ||
            ppu_allreduce(big, bigo, (size_t)(i * 37) % 5000, PPU_FLOAT32, PPU_SUM, world, sa) !=
                PPU_SUCCESS ||
            ppu_stream_synchronize(sb) != PPU_SUCCESS || ppu_stream_synchronize(sa) != PPU_SUCCESS) {
            fprintf(stderr, "rank %d call %d: %s%s\n", rank, i, ppu_get_last_error(rev),
                    ppu_get_last_error(world));
            rc = 1;
        }
        for (size_t k = 0; k < cnt && rc == 0; k++)
            if (out[k] != (n - 1) * 7 + i + (int32_t)k) {
                fprintf(stderr, "rank %d call %d: element %zu is %d, want %d\n", rank, i, k,
                        out[k], (n - 1) * 7 + i + (int)k);
                rc = 1;
            }
    }
    ppu_stream_destroy(sa);
    ppu_stream_destroy(sb);
    ppu_comm_destroy(rev);
    return rc;
}

Test(net, hier_empty_shards_keep_phase_order, .timeout = 200 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_SIM_SERVERS", "2", 1);
    setenv("PPU_ALGO", "allreduce:hier", 1);
    setenv("PPU_TIMEOUT_MS", "10000", 1);
    cr_expect_eq(run_ranks(8, tiny_hier, NULL, 150), 0);
}

/* ---- the registration cache (reg.h), on a stand-in device ---- */

static struct {
    int regs, deregs;
    void *last_dom, *last_addr;
    size_t last_bytes;
    int live;
} mock;

static void *mock_reg(void *dom, void *addr, size_t bytes)
{
    mock.regs++;
    mock.last_dom = dom, mock.last_addr = addr, mock.last_bytes = bytes;
    if (dom == (void *)0xbad) {
        errno = ENOMEM;
        return NULL;
    }
    mock.live++;
    int *h = malloc(sizeof *h); /* a leak here shows under LeakSanitizer */
    *h = (int)(uintptr_t)dom;
    return h;
}

static void mock_dereg(void *h)
{
    mock.deregs++;
    mock.live--;
    free(h);
}

static uint64_t mock_key(void *h)
{
    return (uint64_t)(uintptr_t)h;
}

static const struct ppu_reg_ops mock_ops = {"mock", mock_reg, mock_dereg, mock_key};

/* The key of [p, p + n)'s registration in dom, or 0 when there is none. */
static uint64_t key_of(const void *owner, const void *p, size_t n, void *dom)
{
    uint64_t k = 0;
    return ppu_reg_get(owner, p, n, dom, &mock_ops, &k) ? k : 0;
}

Test(net, registration_cache)
{
    setenv("PPU_DEBUG", "NONE", 1);
    static char buf[1000];
    int owner_a, owner_b;
    void *d1 = (void *)0x10, *d2 = (void *)0x20;
    void *r1, *r2;
    uint64_t found0, keyed0, found, keyed;
    ppu_reg_stats(&found0, &keyed0);
    cr_assert_eq(ppu_reg_count(), 0);
    cr_assert_eq(key_of(&owner_a, buf, 8, d1), 0, "nothing is registered yet");
    cr_assert_eq(ppu_reg_add(&owner_a, buf, sizeof buf, &r1), PPU_SUCCESS);
    /* what a region holds */
    cr_expect(ppu_reg_covers(&owner_a, buf + 10, 100));
    cr_expect(ppu_reg_covers(&owner_a, buf, sizeof buf));
    cr_expect(!ppu_reg_covers(&owner_a, buf + 990, 20), "a range past the end is not held");
    cr_expect(!ppu_reg_covers(&owner_a, (void *)((uintptr_t)buf - 1), 2),
              "a range before the start is not held");
    cr_expect(!ppu_reg_covers(&owner_a, buf + 10, SIZE_MAX), "a range that wraps is not held");
    cr_expect(!ppu_reg_covers(&owner_a, buf + 10, 0), "an empty range is not held");
    cr_expect(!ppu_reg_covers(&owner_b, buf + 10, 100), "another owner's region was used");
    cr_expect(mock.regs == 0, "asking whether memory is registered registered it");
    /* first use registers the whole region, once per domain */
    uint64_t k1 = key_of(&owner_a, buf + 10, 100, d1);
    cr_assert_neq(k1, 0);
    cr_expect(mock.regs == 1 && mock.last_dom == d1 && mock.last_addr == buf &&
              mock.last_bytes == sizeof buf, "registered %zu bytes at %p, want the region",
              mock.last_bytes, mock.last_addr);
    cr_expect_eq(key_of(&owner_a, buf + 500, 500, d1), k1, "not reused");
    cr_expect_eq(mock.regs, 1);
    uint64_t k2 = key_of(&owner_a, buf, 1, d2);
    cr_expect(k2 && k2 != k1 && mock.regs == 2, "a second device needs its own registration");
    cr_expect_eq(key_of(&owner_b, buf, 1, d1), 0);
    /* a failed registration is logged once and not tried again */
    cr_expect_eq(key_of(&owner_a, buf, 1, (void *)0xbad), 0);
    cr_expect_eq(key_of(&owner_a, buf, 1, (void *)0xbad), 0);
    cr_expect_eq(mock.regs, 3, "a failed registration was retried");
    /* more devices than a region keeps: no registration, nothing breaks */
    cr_expect_neq(key_of(&owner_a, buf, 1, (void *)0x30), 0);
    cr_expect_eq(key_of(&owner_a, buf, 1, (void *)0x40), 0);
    cr_expect_eq(mock.regs, 4);
    /* asks that found a region, and keys handed out, are counted */
    ppu_reg_stats(&found, &keyed);
    cr_expect_eq(keyed - keyed0, 4, "%llu keys handed out, want 4",
                 (unsigned long long)(keyed - keyed0));
    cr_expect_eq(found - found0, 9, "%llu asks found a region, want 9",
                 (unsigned long long)(found - found0));
    /* a device that goes away takes its registrations with it; a later
     * use registers again */
    ppu_reg_drop_domain(d1);
    cr_expect_eq(mock.deregs, 1);
    cr_expect_neq(key_of(&owner_a, buf, 1, d1), 0);
    cr_expect_eq(mock.regs, 5, "no new registration after the device went away");
    /* removal: only by the owner, once, and everywhere */
    cr_assert_eq(ppu_reg_add(&owner_b, buf, sizeof buf, &r2), PPU_SUCCESS);
    cr_expect_eq(ppu_reg_remove(&owner_b, r1), -1, "another owner removed a region");
    cr_expect_eq(ppu_reg_remove(&owner_a, r1), 0);
    cr_expect_eq(ppu_reg_remove(&owner_a, r1), -1, "a region was removed twice");
    cr_expect_eq(mock.live, 0, "%d registration(s) outlived their region", mock.live);
    cr_expect(!ppu_reg_covers(&owner_a, buf, 1));
    cr_expect(ppu_reg_covers(&owner_b, buf, 1), "removing one owner's region removed another's");
    cr_expect_neq(key_of(&owner_b, buf, 1, d1), 0);
    ppu_reg_remove_owner(&owner_b);
    cr_expect_eq(ppu_reg_count(), 0);
    cr_expect_eq(mock.live, 0);
}

/* The executor's side of registered memory, over TCP links told to act as
 * RDMA links do (net_socket_test_registered_only): large ring messages go
 * by reference only from memory registered with the communicator (the
 * registration cache counts the asks that found it), and are copied into
 * the FIFO otherwise; the values are right both ways. */
static int registered_rank(ppu_comm_t comm, int r, int n, void *arg)
{
    int reg = *(const int *)arg;
    uint64_t found, keyed;
    /* 1 MB of floats a rank: chunks above PPU_CMA_MIN_BYTES */
    int bad = reg_collectives(comm, r, n, (size_t)1 << 18, 2, reg, &found, &keyed);
    if (!bad && reg != (found > 0)) {
        fprintf(stderr, "rank %d: %llu sends found registered memory, with%s registration\n", r,
                (unsigned long long)found, reg ? "" : "out");
        bad = 6;
    }
    return bad;
}

Test(net, sends_only_from_registered_memory, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_SIM_SERVERS", "4", 1); /* every ring link crosses servers */
    setenv("PPU_ALGO", "allreduce:ring;allgather:ring", 1);
    setenv("PPU_TIMEOUT_MS", "20000", 1);
    net_socket_test_registered_only = 1; /* the forked ranks inherit it */
    for (int reg = 1; reg >= 0; reg--) {
        int failed = run_ranks(4, registered_rank, &reg, 90);
        cr_expect_eq(failed, 0, "%s registered buffers: %d rank(s) failed",
                     reg ? "with" : "without", failed);
    }
    net_socket_test_registered_only = 0;
}

/* ---- net_ib's own checks (no device needed) ---- */

Test(net, net_ib_immediate_data)
{
    const char *why = NULL;
    /* data: the low 30 bits of the index, checked against the one due */
    uint64_t big = (3ull << 30) + 5;
    cr_expect_eq(net_ib_check_imm(net_ib_imm(NET_IB_IMM_DATA, big), 1, big, &why),
                 NET_IB_IMM_DATA);
    cr_expect_eq(net_ib_check_imm(net_ib_imm(NET_IB_IMM_DATA, 6), 1, 5, &why), -1);
    cr_expect(why && strstr(why, "where another was due"));
    /* a sender takes credits and notices, never data */
    cr_expect_eq(net_ib_check_imm(net_ib_imm(NET_IB_IMM_CREDIT, 9), 0, 0, &why),
                 NET_IB_IMM_CREDIT);
    cr_expect_eq(net_ib_check_imm(net_ib_imm(NET_IB_IMM_DATA, 0), 0, 0, &why), -1);
    /* a receiver takes notices, never credits; kind 3 is nothing */
    cr_expect_eq(net_ib_check_imm(net_ib_imm(NET_IB_IMM_FAIL, 1), 1, 0, &why), NET_IB_IMM_FAIL);
    cr_expect_eq(net_ib_check_imm(net_ib_imm(NET_IB_IMM_CREDIT, 1), 1, 0, &why), -1);
    cr_expect_eq(net_ib_check_imm(3u << 30, 1, 0, &why), -1);
    cr_expect_eq(net_ib_check_imm(3u << 30, 0, 0, &why), -1);
}

Test(net, net_ib_connection_request_and_info)
{
    uint8_t nonce[NET_IB_NONCE_BYTES];
    for (int i = 0; i < NET_IB_NONCE_BYTES; i++)
        nonce[i] = (uint8_t)(i * 13 + 1);
    struct net_ib_req q = {NET_IB_MAGIC_REQ, NET_IB_VERSION, 0, {0}, 0x1000, 7, 3};
    memcpy(q.nonce, nonce, sizeof nonce);
    struct net_ib_req out;
    const char *why = NULL;
    cr_expect_eq(net_ib_check_req(&q, sizeof q, nonce, &out, &why), 0);
    cr_expect_eq(out.ctl_addr, 0x1000u);
    cr_expect_eq(net_ib_check_req(&q, sizeof q - 1, nonce, &out, &why), -1, "short");
    cr_expect_eq(net_ib_check_req(NULL, 0, nonce, &out, &why), -1, "no private data");
    q.nonce[15] ^= 1;
    cr_expect_eq(net_ib_check_req(&q, sizeof q, nonce, &out, &why), -1);
    cr_expect(strstr(why, "wrong nonce"), "%s", why);
    q.nonce[15] ^= 1;
    q.version = NET_IB_VERSION + 1;
    cr_expect_eq(net_ib_check_req(&q, sizeof q, nonce, &out, &why), -1);
    q.version = NET_IB_VERSION;
    q.magic = NET_MAGIC_HELLO; /* a net_socket hello is not an RDMA request */
    cr_expect_eq(net_ib_check_req(&q, sizeof q, nonce, &out, &why), -1);

    char raw[PPU_CONNECT_INFO_BYTES] = {0};
    struct net_ib_info in = {.magic = NET_IB_MAGIC_INFO, .version = NET_IB_VERSION,
                             .family = AF_INET, .slot_bytes = 4096, .nslots = 8,
                             .slots_addr = 0x10000, .stride = 4096 + NET_IB_HDR,
                             .ctl_addr = 0x20000};
    memcpy(raw, &in, sizeof in);
    struct net_ib_info got;
    cr_expect_eq(net_ib_check_info(raw, sizeof raw, 4096, 8, &got, &why), 0);
    cr_expect_eq(net_ib_check_info(raw, sizeof raw, 8192, 8, &got, &why), -1);
    cr_expect(strstr(why, "PPU_FIFO_SLOTS"), "%s", why);
    in.stride = 4096; /* no room for the header */
    memcpy(raw, &in, sizeof in);
    cr_expect_eq(net_ib_check_info(raw, sizeof raw, 4096, 8, &got, &why), -1);
    struct net_info sock = {.magic = NET_MAGIC_INFO, .version = NET_VERSION};
    memcpy(raw, &sock, sizeof sock); /* the receiver runs net_socket */
    cr_expect_eq(net_ib_check_info(raw, sizeof raw, 4096, 8, &got, &why), -1);
    cr_expect(strstr(why, "another transport"), "%s", why);
}

/* The registry (transports/registry.c) is the one list of transports: the
 * names PPU_NET accepts are exactly its network transports, every entry
 * has ops, a usable() and a description, and a server's links have one. */
Test(net, registry_matches_ppu_net, .timeout = 10)
{
    const struct ppu_param_def *def = &ppu_param_table()[PPU_P_NET];
    int nnet = 0;
    for (int i = 0; ppu_transport_at(i); i++) {
        const struct ppu_transport *t = ppu_transport_at(i);
        cr_expect(t->name && t->ops && t->usable && t->describe, "entry %d is incomplete", i);
        cr_expect_eq(ppu_transport_of(t->ops), t);
        char why[160] = "";
        int u = t->usable(why, sizeof why);
        cr_expect(why[0], "%s: usable() = %d without saying why", t->name, u);
        if (!(t->reach & PPU_REACH_NET))
            continue;
        nnet++;
        int listed = 0;
        for (int k = 0; def->choices[k]; k++)
            listed |= !strcmp(def->choices[k], t->name);
        cr_expect(listed, "network transport %s is not a PPU_NET choice", t->name);
    }
    int nchoices = 0;
    while (def->choices[nchoices]) {
        cr_expect_not_null(ppu_transport_named(def->choices[nchoices], PPU_REACH_NET),
                           "PPU_NET=%s names no transport", def->choices[nchoices]);
        nchoices++;
    }
    cr_expect_eq(nchoices, nnet);
    cr_expect_not_null(ppu_transport_named(NULL, PPU_REACH_SERVER));
    cr_expect_null(ppu_transport_named("carrier-pigeon", PPU_REACH_NET));
}

/* RDMA write-with-immediate completions: some providers report byte_len 0
 * (nothing was consumed from a receive buffer), so 0 is taken as well as
 * the header's length; any other length still breaks the link. */
Test(net, ib_write_len_accepts_zero)
{
    cr_expect(net_ib_write_len_ok(0, NET_IB_HDR + 100));
    cr_expect(net_ib_write_len_ok(NET_IB_HDR + 100, NET_IB_HDR + 100));
    cr_expect(!net_ib_write_len_ok(NET_IB_HDR + 99, NET_IB_HDR + 100));
    cr_expect(!net_ib_write_len_ok(100, NET_IB_HDR + 100));
}

/* A registration that hits RLIMIT_MEMLOCK says so (the limit, what the
 * process would pin, ulimit -l, CAP_IPC_LOCK), not "Cannot allocate
 * memory" alone; where the limit cannot be the cause it does not blame it. */
Test(net, ib_memlock_named)
{
    char m[400];
    net_ib_reg_failed(ENOMEM, 2u << 20, 7u << 20, 8ull << 20, 0, m, sizeof m);
    cr_expect(strstr(m, "RLIMIT_MEMLOCK is 8388608 bytes") && strstr(m, "would lock 9437184") &&
              strstr(m, "ulimit -l") && strstr(m, "CAP_IPC_LOCK"), "%s", m);
    net_ib_reg_failed(ENOMEM, 1024, 0, 8ull << 20, 1, m, sizeof m); /* privileged */
    cr_expect(strstr(m, "failed (") && !strstr(m, "RLIMIT_MEMLOCK"), "%s", m);
    net_ib_reg_failed(EINVAL, 1024, 0, 8ull << 20, 0, m, sizeof m);
    cr_expect(!strstr(m, "RLIMIT_MEMLOCK"), "%s", m);
}

/* Connection setup (net_ib_cm_step): the passive side is up once its
 * accept succeeded, without waiting for ESTABLISHED (which needs the active
 * side to read CONNECT_RESPONSE, which it does only after the core's next
 * message from the passive side: waiting deadlocked every link); a late
 * ESTABLISHED changes nothing; a second request is rejected; a request that
 * is not the link's is rejected and the link waits on; rejections,
 * unreachable peers and errors end the link, during setup and after. */
Test(net, ib_cm_passive_up_at_accept)
{
    struct net_ib_cm c = {0};
    cr_expect_eq(net_ib_cm_step(&c, NET_IB_EV_CONNECT_REQUEST), NET_IB_ACT_ACCEPT);
    cr_expect_eq(net_ib_cm_accepted(&c, -1), NET_IB_ACT_NONE, "a stranger's request");
    cr_expect(!c.up && !c.failed);
    cr_expect_eq(net_ib_cm_step(&c, NET_IB_EV_CONNECT_REQUEST), NET_IB_ACT_ACCEPT);
    cr_expect_eq(net_ib_cm_accepted(&c, 1), NET_IB_ACT_UP);
    cr_expect(c.up, "up at accept, before ESTABLISHED");
    cr_expect_eq(net_ib_cm_step(&c, NET_IB_EV_ESTABLISHED), NET_IB_ACT_NONE);
    cr_expect_eq(net_ib_cm_step(&c, NET_IB_EV_CONNECT_REQUEST), NET_IB_ACT_REJECT);
    cr_expect_eq(net_ib_cm_step(&c, NET_IB_EV_DISCONNECTED), NET_IB_ACT_FAIL);
    struct net_ib_cm f = {0};
    net_ib_cm_step(&f, NET_IB_EV_CONNECT_REQUEST);
    cr_expect_eq(net_ib_cm_accepted(&f, 0), NET_IB_ACT_FAIL);
}

Test(net, ib_cm_active)
{
    static const enum net_ib_cm_ev up[] = {NET_IB_EV_CONNECT_RESPONSE, NET_IB_EV_ESTABLISHED};
    for (int i = 0; i < 2; i++) {
        struct net_ib_cm c = {.active = 1};
        cr_expect_eq(net_ib_cm_step(&c, NET_IB_EV_OTHER), NET_IB_ACT_NONE);
        cr_expect_eq(net_ib_cm_step(&c, up[i]), NET_IB_ACT_UP);
        cr_expect_eq(net_ib_cm_step(&c, NET_IB_EV_ESTABLISHED), NET_IB_ACT_NONE);
        cr_expect_eq(net_ib_cm_step(&c, NET_IB_EV_UNREACHABLE), NET_IB_ACT_FAIL, "after setup");
    }
    static const enum net_ib_cm_ev bad[] = {NET_IB_EV_REJECTED, NET_IB_EV_UNREACHABLE,
                                            NET_IB_EV_CONNECT_ERROR};
    for (int i = 0; i < 3; i++) {
        struct net_ib_cm c = {.active = 1};
        cr_expect_eq(net_ib_cm_step(&c, bad[i]), NET_IB_ACT_FAIL, "event %d", i);
        cr_expect(!c.up && c.failed);
    }
}

/* A device being removed: the link ends and releases what it holds of the
 * device at once (only marking it gone kept the device's objects until
 * close, and the kernel could not remove it), during setup and after,
 * on either side; once. */
Test(net, ib_device_removal_releases)
{
    for (int active = 0; active < 2; active++) {
        struct net_ib_cm c = {.active = active};
        cr_expect_eq(net_ib_cm_step(&c, NET_IB_EV_DEVICE_REMOVAL), NET_IB_ACT_RELEASE);
        cr_expect(c.failed && !c.up);
        struct net_ib_cm u = {.active = active};
        if (active)
            net_ib_cm_step(&u, NET_IB_EV_ESTABLISHED);
        else
            net_ib_cm_step(&u, NET_IB_EV_CONNECT_REQUEST), net_ib_cm_accepted(&u, 1);
        cr_assert(u.up);
        cr_expect_eq(net_ib_cm_step(&u, NET_IB_EV_DEVICE_REMOVAL), NET_IB_ACT_RELEASE);
        cr_expect_eq(net_ib_cm_step(&u, NET_IB_EV_DEVICE_REMOVAL), NET_IB_ACT_NONE, "twice");
        cr_expect_eq(net_ib_cm_step(&u, NET_IB_EV_DISCONNECTED), NET_IB_ACT_NONE);
    }
}

/* A process forked after ppuccl looked at the RDMA devices does not use
 * them (their state does not survive a fork): usable says why, so the
 * child takes TCP, or fails naming the reason under PPU_NET=ib. */
Test(net, ib_forked_child_refuses_rdma)
{
    char what[512], first[512];
    if (strstr((ppu_net_ib_usable("", first, sizeof first), first), "no RDMA transport"))
        cr_skip_test("this build has no RDMA transport");
    cr_assert_eq(net_ib_forked(what, sizeof what), 0, "the process that looked first");
    pid_t pid = fork();
    if (pid == 0) {
        int f = net_ib_forked(what, sizeof what);
        char why[512];
        int u = ppu_net_ib_usable("", why, sizeof why);
        _exit(f == 1 && strstr(what, "was forked from pid") && u == 0 &&
                      strstr(why, "PPU_NET=socket") ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the forked child must refuse RDMA, naming why");
}

/* The progress thread's nap with more links than the old poll set held
 * (64): each device's one completion channel stands for all its links'
 * queues, so 200 links on three devices poll five descriptors (three
 * channels, the connection manager's, the wake-up, last), and every link's
 * channel is among them; before, links past the 64th were in no poll set
 * and were served by a 1 ms time-out. */
Test(net, ib_one_channel_per_device_past_64_links)
{
    enum { N = 200 };
    int chan[N], set[N + 2];
    for (int i = 0; i < N; i++)
        chan[i] = i % 7 == 3 ? 12 : i % 2 ? 10 : 11; /* the third device first seen at 3 */
    int np = net_ib_poll_set(chan, N, 40, 41, set);
    cr_assert_eq(np, 5, "%d descriptors", np);
    cr_expect(set[0] == 11 && set[1] == 10 && set[2] == 12, "channels %d %d %d", set[0], set[1],
              set[2]);
    cr_expect(set[3] == 40 && set[4] == 41, "then the cm channel and the wake-up");
    for (int i = 0; i < N; i++) {
        int in = 0;
        for (int k = 0; k < np - 2; k++)
            in |= set[k] == chan[i];
        cr_expect(in, "link %d's channel is not polled", i);
    }
    cr_expect_eq(net_ib_poll_set(chan, 0, 40, 41, set), 2, "no links: cm and wake-up");
    cr_expect_eq(net_ib_poll_set(chan, N, -1, 41, set), 4, "no cm channel");
    cr_expect_eq(set[3], 41);
}

/* ---- net_ib's choice of device and address (net_ib_choose) ---- */

static struct net_ib_ifaddr ib_if(const char *ifname, const char *ip)
{
    struct net_ib_ifaddr a;
    memset(&a, 0, sizeof a);
    snprintf(a.ifname, sizeof a.ifname, "%s", ifname);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.addr;
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a.addr;
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return a;
}

/* The usual layout: management on eth0 (the address TCP takes), RDMA on
 * ens1f0, whose device's GID table also names a VLAN on it; rxe0, a
 * software device on a veth, has no active port. */
static const struct net_ib_devview ib_devs[] = {
    {.name = "rxe0", .active = 0, .nifs = 1, .ifs = {"veth0"}},
    {.name = "mlx5_0", .active = 1, .nifs = 2, .ifs = {"ens1f0", "ens1f0.100"}},
};

static int ib_pick(const struct net_ib_ifaddr *as, int na, const char *hca, const char *chosen,
                   int *addr, char *why)
{
    struct net_ib_ifaddr c = ib_if("-", chosen);
    int dev = -1;
    *addr = -1;
    int ok = net_ib_choose(ib_devs, 2, as, na, hca, (struct sockaddr *)&c.addr, &dev, addr, why,
                           400);
    return ok ? dev : -1;
}

Test(net, ib_address_without_rdma_device_refused)
{
    struct net_ib_ifaddr as[] = {ib_if("lo", "127.0.0.1"), ib_if("eth0", "10.0.0.5"),
                                 ib_if("ens1f0", "fe80::1"), ib_if("ens1f0", "192.168.1.5"),
                                 ib_if("veth0", "172.17.0.2")};
    char why[400] = "";
    int addr;
    /* TCP's address is eth0's, which no RDMA device has: not ib (today's
     * code counted the rank RDMA-capable because a port was active) */
    cr_expect_eq(ib_pick(as, 5, "", "10.0.0.5", &addr, why), -1);
    cr_expect(strstr(why, "interface eth0") && strstr(why, "PPU_IB_HCA") &&
              strstr(why, "mlx5_0: ens1f0 ens1f0.100"), "%s", why);
    /* an address of a device without an active port is no better */
    cr_expect_eq(ib_pick(as, 5, "", "172.17.0.2", &addr, why), -1);
    cr_expect_eq(ib_pick(as, 5, NULL, "127.0.0.1", &addr, why), -1, "loopback");
    cr_expect(strstr(why, "loopback"), "%s", why);
    cr_expect_eq(ib_pick(as, 5, NULL, "10.9.9.9", &addr, why), -1, "an address on no interface");
    /* TCP's address on the RDMA interface: ib, there */
    cr_expect_eq(ib_pick(as, 5, NULL, "192.168.1.5", &addr, why), 1, "%s", why);
    cr_expect_eq(addr, 3);
}

Test(net, ib_hca_address_from_gid_interfaces)
{
    char why[400] = "";
    int addr;
    /* PPU_IB_HCA: its address, whatever TCP took; the IPv6 link-local one
     * is passed over */
    struct net_ib_ifaddr as[] = {ib_if("eth0", "10.0.0.5"), ib_if("ens1f0", "fe80::1"),
                                 ib_if("ens1f0", "192.168.1.5")};
    cr_expect_eq(ib_pick(as, 3, "mlx5_0", "10.0.0.5", &addr, why), 1, "%s", why);
    cr_expect_eq(addr, 2);
    /* RoCE on a VLAN: the GID table's interface, not device/net's */
    struct net_ib_ifaddr vlan[] = {ib_if("eth0", "10.0.0.5"), ib_if("ens1f0.100", "fd00::7"),
                                   ib_if("ens1f0.100", "192.168.100.5")};
    cr_expect_eq(ib_pick(vlan, 3, "mlx5_0", "10.0.0.5", &addr, why), 1, "%s", why);
    cr_expect_eq(addr, 2, "the family of TCP's address first");
    cr_expect_eq(ib_pick(vlan, 3, "mlx5_0", "2001:db8::1", &addr, why), 1, "%s", why);
    cr_expect_eq(addr, 1);
    cr_expect_eq(ib_pick(vlan, 3, "", "192.168.100.5", &addr, why), 1, "%s", why);
    /* only a link-local address: refused */
    struct net_ib_ifaddr ll[] = {ib_if("eth0", "10.0.0.5"), ib_if("ens1f0", "fe80::1")};
    cr_expect_eq(ib_pick(ll, 2, "mlx5_0", "10.0.0.5", &addr, why), -1);
    cr_expect(strstr(why, "link-local"), "%s", why);
    /* no such device, or none active */
    cr_expect_eq(ib_pick(as, 3, "mlx4_0", "10.0.0.5", &addr, why), -1);
    cr_expect(strstr(why, "no such RDMA device") && strstr(why, "rxe0"), "%s", why);
    cr_expect_eq(ib_pick(as, 3, "rxe0", "10.0.0.5", &addr, why), -1);
    cr_expect(strstr(why, "no active port"), "%s", why);
}

/* ---- iWARP (erdma) ---- */

/* Which devices links use, from probed facts (net_ib_dev_eligible): every
 * InfiniBand and RoCE device; of iWARP devices only erdma's, whose provider
 * writes with immediate (the old code refused every iWARP device by its
 * transport type); the others each refused with their reason; the driver
 * sysfs names counts over the device's name, which can be renamed. */
Test(net, ib_device_eligibility_probed)
{
    struct net_ib_traits t;
    char why[200] = "";
    struct net_ib_probe roce = {"mlx5_0", "mlx5_core", NET_IB_TR_IB, 1, 0};
    cr_expect(net_ib_dev_eligible(&roce, &t, why, sizeof why));
    cr_expect(!t.iwarp && !t.ipv4_only);
    cr_expect_str_eq(t.kind, "RoCE");
    struct net_ib_probe ib = {"mlx5_1", "mlx5_core", NET_IB_TR_IB, 1, 1};
    cr_expect(net_ib_dev_eligible(&ib, &t, why, sizeof why));
    cr_expect_str_eq(t.kind, "InfiniBand");
    /* erdma: used, with iWARP's rules, over IPv4 only */
    struct net_ib_probe er = {"erdma_0", "erdma", NET_IB_TR_IWARP, 1, 0};
    cr_expect(net_ib_dev_eligible(&er, &t, why, sizeof why), "%s", why);
    cr_expect(t.iwarp && t.ipv4_only);
    cr_expect_str_eq(t.kind, "iWARP (erdma)");
    struct net_ib_probe renamed = {"rdma0", "erdma", NET_IB_TR_IWARP, 1, 0};
    cr_expect(net_ib_dev_eligible(&renamed, &t, why, sizeof why), "renamed: the driver counts");
    struct net_ib_probe nodrv = {"erdma_1", "", NET_IB_TR_IWARP, 1, 0};
    cr_expect(net_ib_dev_eligible(&nodrv, &t, why, sizeof why), "no driver in sysfs: the name");
    cr_expect(t.iwarp);
    /* other iWARP providers: refused, each naming device, driver and reason */
    struct net_ib_probe cx = {"cxgb4_0", "iw_cxgb4", NET_IB_TR_IWARP, 1, 0};
    cr_expect(!net_ib_dev_eligible(&cx, &t, why, sizeof why));
    cr_expect(strstr(why, "cxgb4_0") && strstr(why, "iw_cxgb4") && strstr(why, "firmware"),
              "%s", why);
    struct net_ib_probe siw = {"erdma_fake", "siw", NET_IB_TR_IWARP, 1, 0};
    cr_expect(!net_ib_dev_eligible(&siw, &t, why, sizeof why), "the driver over the name");
    cr_expect(strstr(why, "soft-iWARP"), "%s", why);
    struct net_ib_probe iw = {"irdma0", "irdma", NET_IB_TR_IWARP, 1, 0};
    cr_expect(!net_ib_dev_eligible(&iw, &t, why, sizeof why));
    cr_expect(strstr(why, "iWARP mode"), "%s", why);
    struct net_ib_probe rocev2 = {"irdma1", "irdma", NET_IB_TR_IB, 1, 0};
    cr_expect(net_ib_dev_eligible(&rocev2, &t, why, sizeof why), "irdma in RoCEv2 mode");
    struct net_ib_probe unknown = {"foo0", "", NET_IB_TR_IWARP, 1, 0};
    cr_expect(!net_ib_dev_eligible(&unknown, &t, why, sizeof why));
    cr_expect(strstr(why, "RFC 5040"), "%s", why);
    struct net_ib_probe usnic = {"usnic_0", "enic", NET_IB_TR_OTHER, 1, 0};
    cr_expect(!net_ib_dev_eligible(&usnic, &t, why, sizeof why));
}

/* net_ib_choose with a refused device (never chosen; PPU_IB_HCA naming it
 * fails with its reason) and an IPv4-only one (erdma: IPv6 passed over). */
Test(net, ib_choose_refused_and_ipv4_only)
{
    const struct net_ib_devview devs[] = {
        {.name = "cxgb4_0", .active = 1, .nifs = 1, .ifs = {"ens2"},
         .refused = "iWARP device cxgb4_0 (driver iw_cxgb4) not used: firmware"},
        {.name = "erdma_0", .active = 1, .nifs = 1, .ifs = {"eth0"}, .iwarp = 1,
         .ipv4_only = 1},
    };
    struct net_ib_ifaddr as[] = {ib_if("ens2", "192.168.2.5"), ib_if("eth0", "fd00::5"),
                                 ib_if("eth0", "10.0.0.5")};
    char why[400] = "";
    int dev = -1, addr = -1;
    struct net_ib_ifaddr c = ib_if("-", "192.168.2.5");
    cr_expect(!net_ib_choose(devs, 2, as, 3, "", (struct sockaddr *)&c.addr, &dev, &addr, why,
                             sizeof why), "the refused device's address");
    cr_expect(strstr(why, "cxgb4_0 (not used)"), "%s", why);
    cr_expect(!net_ib_choose(devs, 2, as, 3, "cxgb4_0", (struct sockaddr *)&c.addr, &dev, &addr,
                             why, sizeof why));
    cr_expect(strstr(why, "PPU_IB_HCA=cxgb4_0") && strstr(why, "iw_cxgb4"), "%s", why);
    c = ib_if("-", "10.0.0.5");
    cr_expect(net_ib_choose(devs, 2, as, 3, "", (struct sockaddr *)&c.addr, &dev, &addr, why,
                            sizeof why), "%s", why);
    cr_expect(dev == 1 && addr == 2);
    c = ib_if("-", "fd00::5");
    cr_expect(!net_ib_choose(devs, 2, as, 3, "", (struct sockaddr *)&c.addr, &dev, &addr, why,
                             sizeof why), "IPv6 on erdma");
    cr_expect(strstr(why, "IPv4 only") && strstr(why, "erdma_0"), "%s", why);
    cr_expect(net_ib_choose(devs, 2, as, 3, "erdma_0", (struct sockaddr *)&c.addr, &dev, &addr,
                            why, sizeof why), "%s", why);
    cr_expect_eq(addr, 2, "its IPv4 address, whatever the family TCP took");
    cr_expect(!net_ib_choose(devs, 2, as, 2, "erdma_0", (struct sockaddr *)&c.addr, &dev, &addr,
                             why, sizeof why), "only IPv6");
    cr_expect(strstr(why, "no IPv4 address"), "%s", why);
}

/* iWARP: the active side sends first (rdma_connect(3)). The passive side
 * (the receiver) posts nothing, not even a failure notice, until a write
 * from the active side arrived; over InfiniBand and RoCE it posts once up,
 * as before; the active side always may. */
Test(net, ib_iwarp_passive_sends_after_active)
{
    struct net_ib_cm p = {.iwarp = 1};
    net_ib_cm_step(&p, NET_IB_EV_CONNECT_REQUEST);
    cr_assert_eq(net_ib_cm_accepted(&p, 1), NET_IB_ACT_UP);
    cr_expect(!net_ib_cm_may_send(&p), "up, but the active side has not written yet");
    cr_expect_eq(net_ib_cm_step(&p, NET_IB_EV_ESTABLISHED), NET_IB_ACT_NONE);
    cr_expect(!net_ib_cm_may_send(&p), "ESTABLISHED is no write from the active side");
    net_ib_cm_heard(&p);
    cr_expect(net_ib_cm_may_send(&p));
    struct net_ib_cm a = {.active = 1, .iwarp = 1};
    cr_expect_eq(net_ib_cm_step(&a, NET_IB_EV_ESTABLISHED), NET_IB_ACT_UP);
    cr_expect(net_ib_cm_may_send(&a), "the active side sends first");
    struct net_ib_cm r = {0};
    net_ib_cm_step(&r, NET_IB_EV_CONNECT_REQUEST);
    net_ib_cm_accepted(&r, 1);
    cr_expect(net_ib_cm_may_send(&r), "RoCE/InfiniBand: no such rule");
    /* close does not wait for a notice iWARP never let this end post (it
     * passes notice_done || !may_send) */
    struct net_ib_cm q = {.iwarp = 1, .up = 1};
    cr_expect(!net_ib_close_waits(1, 0 || !net_ib_cm_may_send(&q), 0, 0, 1000));
    cr_expect(net_ib_close_waits(1, 0 || !net_ib_cm_may_send(&p), 0, 0, 1000), "heard: it waits");
}

/* Private data: the connection request's fits InfiniBand's 56 bytes and
 * the 128 this transport counts on over iWARP; larger is refused with the
 * limit named; the accept carries none. */
Test(net, ib_private_data_limits)
{
    char why[160] = "";
    cr_expect(net_ib_pdata_fits(0, 0, sizeof(struct net_ib_req), why, sizeof why));
    cr_expect(net_ib_pdata_fits(1, 0, sizeof(struct net_ib_req), why, sizeof why));
    cr_expect(net_ib_pdata_fits(1, 1, 0, why, sizeof why));
    cr_expect(net_ib_pdata_fits(0, 0, 56, why, sizeof why));
    cr_expect(!net_ib_pdata_fits(0, 0, 57, why, sizeof why));
    cr_expect(strstr(why, "57 bytes") && strstr(why, "56 at most"), "%s", why);
    cr_expect(net_ib_pdata_fits(0, 1, 196, why, sizeof why));
    cr_expect(!net_ib_pdata_fits(0, 1, 197, why, sizeof why));
    cr_expect(net_ib_pdata_fits(1, 0, 128, why, sizeof why));
    cr_expect(!net_ib_pdata_fits(1, 1, 129, why, sizeof why));
    cr_expect(strstr(why, "iWARP") && strstr(why, "accept"), "%s", why);
}

/* No loopback over iWARP: a receiver on an address of this host is refused
 * before any connection is tried, with a sentence naming rank, interface,
 * device and what to do; another host's address, or RoCE, goes ahead. */
Test(net, ib_iwarp_no_loopback)
{
    struct net_ib_ifaddr mine[] = {ib_if("lo", "127.0.0.1"), ib_if("eth0", "10.0.0.5"),
                                   ib_if("eth0", "fd00::5")};
    char why[320] = "";
    struct net_ib_ifaddr peer = ib_if("-", "10.0.0.5");
    cr_expect(net_ib_loopback_refused(1, (struct sockaddr *)&peer.addr, mine, 3, 3, "erdma_0",
                                      why, sizeof why));
    cr_expect(strstr(why, "rank 3") && strstr(why, "eth0") && strstr(why, "erdma_0") &&
              strstr(why, "PPU_NET=socket"), "%s", why);
    peer = ib_if("-", "fd00::5");
    cr_expect(net_ib_loopback_refused(1, (struct sockaddr *)&peer.addr, mine, 3, 3, "erdma_0",
                                      why, sizeof why), "IPv6 too");
    peer = ib_if("-", "10.0.0.6");
    cr_expect(!net_ib_loopback_refused(1, (struct sockaddr *)&peer.addr, mine, 3, 3, "erdma_0",
                                       why, sizeof why), "another host");
    peer = ib_if("-", "10.0.0.5");
    cr_expect(!net_ib_loopback_refused(0, (struct sockaddr *)&peer.addr, mine, 3, 3, "mlx5_0",
                                       why, sizeof why), "RoCE loops back in the adapter");
}

/* The send queue, counted (net_ib_sq_post): one request in `every` is
 * signaled, and any the caller must hear of; a full queue takes nothing
 * until a signaled request's completion, which finishes those before it. */
Test(net, ib_send_queue_signals_every_nth)
{
    struct net_ib_sq q = {.depth = 8, .every = 4};
    static const int want[8] = {0, 0, 0, 1, 0, 0, 0, 1};
    for (int i = 0; i < 8; i++)
        cr_expect_eq(net_ib_sq_post(&q, 0), want[i], "post %d", i);
    cr_expect_eq(net_ib_sq_post(&q, 1), -1, "a full queue took a request");
    cr_expect_eq(q.posted, 8);
    net_ib_sq_done(&q, 3); /* the first signaled one: four requests finished */
    cr_expect_eq(q.done, 4);
    cr_expect_eq(net_ib_sq_post(&q, 1), 1, "a request the caller must hear of is signaled");
    cr_expect_eq(net_ib_sq_post(&q, 0), 0, "the count starts again after a signaled one");
    net_ib_sq_done(&q, 1); /* late, or out of order: never backwards */
    cr_expect_eq(q.done, 4);
    /* never more than `every` unsignaled in a row: a full queue always
     * holds a signaled request that will free it */
    struct net_ib_sq r = {.depth = 64, .every = 32};
    int run = 0, most = 0;
    for (int i = 0; i < 64; i++) {
        run = net_ib_sq_post(&r, 0) ? 0 : run + 1;
        most = run > most ? run : most;
    }
    cr_expect_eq(most, 31);
    /* control writes: inline where 8 bytes fit */
    cr_expect(net_ib_ctl_inline(8) && net_ib_ctl_inline(220));
    cr_expect(!net_ib_ctl_inline(0) && !net_ib_ctl_inline(4));
}

/* Close after a failed call waits for the failure notice's completion,
 * not its posting (destroying the queue pair at once flushed it, and the
 * peer read "gone" instead of "failed"), within a bound; async events end
 * the links they concern. */
Test(net, ib_notice_completes_before_close_and_async_events)
{
    cr_expect(net_ib_close_waits(1, 0, 0, 0, 1000), "the notice is posted, not delivered");
    cr_expect(net_ib_close_waits(1, 0, 0, 999, 1000));
    cr_expect(!net_ib_close_waits(1, 0, 0, 1000, 1000), "the wait is bounded");
    cr_expect(!net_ib_close_waits(1, 1, 0, 0, 1000), "delivered");
    cr_expect(!net_ib_close_waits(1, 0, 1, 0, 1000), "the link is gone: nothing to wait for");
    cr_expect(!net_ib_close_waits(0, 0, 0, 0, 1000), "no failure, no notice");
    cr_expect(net_ib_async_ends(NET_IB_ASYNC_DEVICE_FATAL, 0, 1, 0));
    cr_expect(net_ib_async_ends(NET_IB_ASYNC_PORT_DOWN, 2, 2, 0));
    cr_expect(!net_ib_async_ends(NET_IB_ASYNC_PORT_DOWN, 1, 2, 0), "another port went down");
    cr_expect(net_ib_async_ends(NET_IB_ASYNC_QP_ERROR, 0, 1, 1));
    cr_expect(!net_ib_async_ends(NET_IB_ASYNC_QP_ERROR, 0, 1, 0), "another link's queue pair");
    cr_expect(net_ib_async_ends(NET_IB_ASYNC_CQ_ERROR, 0, 1, 1));
    cr_expect(!net_ib_async_ends(NET_IB_ASYNC_OTHER, 1, 1, 1), "a port coming up ends nothing");
}
