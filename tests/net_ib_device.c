/* The RDMA transport on a real device: every collective on 2 simulated
 * servers x 4 ranks and 4 x 2 with PPU_NET=ib, checked against refval.h
 * (collcheck.h), the hierarchical all-reduce, all-reduce and all-gather
 * from registered memory (ppu_comm_register: messages written straight
 * from the user's buffers), and a rank killed mid-job (every other rank
 * must return an error, not hang).
 *
 * Where no RDMA device with an active port exists it prints why and exits
 * 77, which ctest reports as skipped (net_ib_device). The protocol the
 * transport shares with net_socket (FIFO, credits, frame checks, ordering:
 * transports/net_common) runs in test_net on every machine, and the
 * RDMA-specific checks (immediate data, connection request, connect info)
 * in test_net's net_ib_* tests.
 *
 * Usage: net_ib_device [PPU_IB_HCA] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "collcheck.h"
#include "net_ib/net_ib.h"
#include "ranks.h"
#include "regcheck.h"

static int colls(ppu_comm_t comm, int r, int n, void *arg)
{
    (void)arg;
    static const size_t counts[] = {0, 1, 1023, 262147};
    struct cc_case k = {.p2p = {n / 2, 1}, .np2p = 2};
    size_t bad = 0;
    for (int c = 0; c < CC_NCOLL; c++) {
        k.coll = c;
        k.root = (n / 2 + 1) % n;
        for (size_t j = 0; j < sizeof counts / sizeof counts[0]; j++) {
            k.count = counts[j];
            k.dt = j % 2 ? PPU_INT8 : PPU_FLOAT32;
            k.op = cc_has_op(c) && j % 2 ? PPU_MAX : PPU_SUM;
            for (k.inplace = 0; k.inplace < (cc_has_inplace(c) ? 2 : 1); k.inplace++)
                bad += cc_check(comm, r, n, &k);
        }
    }
    return bad != 0;
}

/* Buffers registered with the communicator, so large ring messages are
 * RDMA writes from them (2 gather entries; the keys the registration cache
 * handed out must grow): regcheck.h's calls and checks. Run
 * with every rank on its own server and ring algorithms: every rank's ring
 * link is then an RDMA link (hierarchical forms send on peer links, which
 * copy). */
static int registered(ppu_comm_t comm, int r, int n, void *arg)
{
    (void)arg;
    uint64_t found, keyed;
    /* 12 MB a rank: every chunk is a direct send */
    int bad = reg_collectives(comm, r, n, (size_t)3 << 20, 3, 1, &found, &keyed);
    if (!bad && keyed == 0) {
        fprintf(stderr, "net_ib_device: rank %d sent nothing from registered memory\n", r);
        bad = 1;
    }
    return bad;
}

static int victim(ppu_comm_t comm, int r, int n, void *arg)
{
    (void)n;
    (void)arg;
    static float buf[1 << 16];
    for (int i = 0; i < 50; i++) {
        if (r == 1 && i == 20)
            raise(SIGKILL);
        if (ppu_allreduce(buf, buf, 1 << 16, PPU_FLOAT32, PPU_SUM, comm, NULL) != PPU_SUCCESS)
            return i >= 20 ? 0 : 1; /* an error after the kill: what we want */
    }
    return 1; /* every call succeeded although a rank died */
}

static int step(const char *what, int n, const char *servers, const char *algo, rank_fn fn,
                int want_failed)
{
    setenv("PPU_SIM_SERVERS", servers, 1);
    setenv("PPU_ALGO", algo, 1);
    int failed = run_ranks(n, fn, NULL, 120);
    int ok = failed == want_failed;
    printf("net_ib_device: %-40s %d ranks on %s servers: %s (%d rank(s) failed, %d expected)\n",
           what, n, servers, ok ? "ok" : "FAILED", failed, want_failed);
    fflush(stdout);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *hca = argc > 1 ? argv[1] : getenv("PPU_IB_HCA");
    char what[200];
    if (!ppu_net_ib_usable(hca, what, sizeof what)) {
        printf("net_ib_device: SKIPPED: %s. The RDMA transport's device tests need an RDMA "
               "device with an active port; its shared protocol is tested in test_net.\n", what);
        return 77;
    }
    printf("net_ib_device: using %s\n", what);
    if (hca)
        setenv("PPU_IB_HCA", hca, 1);
    setenv("PPU_NET", "ib", 1);
    setenv("PPU_TIMEOUT_MS", "20000", 1);
    setenv("PPU_DEBUG", "WARN", 0);
    int bad = 0;
    bad += step("every collective", 8, "2", "", colls, 0);
    bad += step("every collective", 8, "4", "", colls, 0);
    bad += step("every collective, ring all-reduce", 8, "2", "allreduce:ring", colls, 0);
    bad += step("every collective, hier all-reduce", 8, "2", "allreduce:hier", colls, 0);
    bad += step("registered buffers, ring", 8, "8", "allreduce:ring;allgather:ring", registered,
                0);
    bad += step("a rank killed: the others return errors", 8, "2", "", victim, 1);
    printf("net_ib_device: %s\n", bad ? "FAILED" : "passed");
    return bad != 0;
}
