/* Every wait on a peer ends: a missing peer turns into PPU_TIMEOUT naming
 * it, and ppu_comm_abort from another thread ends a stuck collective. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ranks.h"

static int rank0_waits_alone(ppu_comm_t comm, int rank, int n, void *arg)
{
    float v[1000] = {0};
    if (rank == 1) {
        usleep(1500 * 1000); /* never calls: rank 0 must give up first */
        return 0;
    }
    ppu_result_t r = ppu_allreduce(v, v, 1000, PPU_FLOAT32, PPU_SUM, comm, NULL);
    const char *msg = ppu_get_last_error(comm);
    if (r != PPU_TIMEOUT || !strstr(msg, "rank 1") || !strstr(msg, "count=1000")) {
        fprintf(stderr, "got %d '%s'\n", r, msg);
        return 1;
    }
    /* the communicator refuses further use instead of corrupting data */
    return ppu_allreduce(v, v, 1000, PPU_FLOAT32, PPU_SUM, comm, NULL) == PPU_INVALID_USAGE ? 0 : 2;
}

Test(timeout, missing_peer_is_named, .timeout = 30 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_TIMEOUT_MS", "400", 1);
    cr_assert_eq(run_ranks(2, rank0_waits_alone, NULL, 20), 0);
}

static void *abort_later(void *p)
{
    usleep(200 * 1000);
    ppu_comm_abort(*(ppu_comm_t *)p);
    return NULL;
}

Test(timeout, abort_ends_a_stuck_collective, .timeout = 30 * PPU_TEST_SLOWDOWN)
{
    ppu_unique_id_t id;
    cr_assert_eq(ppu_get_unique_id(&id), PPU_SUCCESS);
    pid_t peer = fork();
    if (peer == 0) { /* joins, then never calls the collective */
        ppu_comm_t c;
        if (ppu_comm_init_rank(&c, 2, id, 1) != PPU_SUCCESS)
            _exit(1);
        sleep(3);
        _exit(0);
    }
    ppu_comm_t comm;
    cr_assert_eq(ppu_comm_init_rank(&comm, 2, id, 0), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    pthread_t t;
    pthread_create(&t, NULL, abort_later, &comm);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int v = 1;
    ppu_result_t r = ppu_allreduce(&v, &v, 1, PPU_INT32, PPU_SUM, comm, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_join(t, NULL);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    cr_expect_eq(r, PPU_ABORTED, "got %d", r);
    cr_expect(s < 1.0, "abort took %.3f s", s);
    kill(peer, SIGKILL);
    waitpid(peer, NULL, 0);
}

/* A rank killed mid-job: every other rank returns PPU_REMOTE_ERROR naming
 * it within a few seconds, long before PPU_TIMEOUT_MS. */
static int rank2_dies(ppu_comm_t comm, int rank, int n, void *arg)
{
    enum { COUNT = 1 << 20 };
    float *v = calloc(COUNT, sizeof *v);
    for (int it = 0; it < 3; it++)
        if (ppu_allreduce(v, v, COUNT, PPU_FLOAT32, PPU_SUM, comm, NULL) != PPU_SUCCESS)
            return 1;
    if (rank == 2)
        raise(SIGKILL);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ppu_result_t r = PPU_SUCCESS;
    for (int it = 0; it < 50 && r == PPU_SUCCESS; it++)
        r = ppu_allreduce(v, v, COUNT, PPU_FLOAT32, PPU_SUM, comm, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    const char *msg = ppu_get_last_error(comm);
    free(v);
    /* its neighbours see rank 2 go; ranks further on see a neighbour that
     * failed and left, and name every rank gone, rank 2 among them */
    const char *gone = strstr(msg, "ranks gone: ");
    int named = strstr(msg, "rank 2 has exited") ||
                (gone && (strstr(gone, " 2,") || strstr(gone, " 2)") || strstr(gone, ", 2")));
    int bad = r != PPU_REMOTE_ERROR || !named || s > 5.0;
    if (bad)
        fprintf(stderr, "rank %d: got %d after %.2f s: '%s'\n", rank, r, s, msg);
    usleep(500 * 1000); /* survivors stay up while the others look */
    return bad;
}

Test(timeout, dead_peer_is_named_fast, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_TIMEOUT_MS", "60000", 1);
    cr_expect_eq(run_ranks(4, rank2_dies, NULL, 40), 1, "only the killed rank may fail");
}

static int one_allreduce(ppu_comm_t comm, int rank, int n, void *arg)
{
    int v = 1;
    return ppu_allreduce(&v, &v, 1, PPU_INT32, PPU_SUM, comm, NULL) != PPU_SUCCESS || v != n;
}

/* A segment left by a job that died while connecting (its creator's pid
 * is gone) is removed by the next job; one of a live process is kept, and
 * so is one whose creator ran in another PID namespace (a container
 * sharing /dev/shm: its pid means nothing here) or whose name does not say
 * (an older build). */
Test(timeout, crashed_jobs_segments_are_cleaned, .timeout = 30 * PPU_TEST_SLOWDOWN)
{
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    struct stat st;
    cr_assert_eq(stat("/proc/self/ns/pid", &st), 0);
    unsigned long ns = (unsigned long)st.st_ino;
    char stale[96], live[96], other_ns[96], old[96];
    snprintf(stale, sizeof stale, "/dev/shm/ppuccl-%lu-%d-0123456789abcdef", ns, (int)dead);
    snprintf(live, sizeof live, "/dev/shm/ppuccl-%lu-%d-0123456789abcdef", ns, (int)getpid());
    snprintf(other_ns, sizeof other_ns, "/dev/shm/ppuccl-%lu-%d-0123456789abcdef", ns + 1,
             (int)dead);
    snprintf(old, sizeof old, "/dev/shm/ppuccl-%d-0123456789abcdef", (int)dead);
    const char *files[] = {stale, live, other_ns, old};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(files[i], "w");
        cr_assert(f, "%s", files[i]);
        fclose(f);
    }
    cr_assert_eq(run_ranks(2, one_allreduce, NULL, 20), 0);
    cr_expect_neq(access(stale, F_OK), 0, "%s is still there", stale);
    cr_expect_eq(access(live, F_OK), 0, "%s of a live process was removed", live);
    cr_expect_eq(access(other_ns, F_OK), 0, "%s of another PID namespace was removed", other_ns);
    cr_expect_eq(access(old, F_OK), 0, "%s (no namespace in its name) was removed", old);
    unlink(live);
    unlink(other_ns);
    unlink(old);
}

/* Ranks that call different things fail with both calls named. */
static int mismatch(ppu_comm_t comm, int rank, int n, void *arg)
{
    int kind = *(int *)arg;
    float v[4096] = {0};
    ppu_result_t r;
    if (kind == 0) /* count */
        r = ppu_allreduce(v, v, rank == 1 ? 2048 : 1024, PPU_FLOAT32, PPU_SUM, comm, NULL);
    else if (kind == 1) /* collective */
        r = rank == 1 ? ppu_broadcast(v, v, 1024, PPU_FLOAT32, 0, comm, NULL)
                      : ppu_allreduce(v, v, 1024, PPU_FLOAT32, PPU_SUM, comm, NULL);
    else /* op */
        r = ppu_allreduce(v, v, 1024, PPU_FLOAT32, rank == 1 ? PPU_MAX : PPU_SUM, comm, NULL);
    const char *msg = ppu_get_last_error(comm);
    static const char *want[3] = {"rank 1 called allreduce #1 count=2048 float32 sum",
                                  "rank 1 called broadcast #1 count=1024 float32 root=0",
                                  "rank 1 called allreduce #1 count=1024 float32 max"};
    if (r == PPU_SUCCESS)
        return 1;
    /* the ranks that read from rank 1 name it; the others stop at the
     * timeout, or name the rank that called like them but stopped */
    int named = strstr(msg, "mismatched calls") &&
                (strstr(msg, want[kind]) || strstr(msg, "called allreduce #1 count=1024"));
    int ok = named || r == PPU_TIMEOUT || r == PPU_REMOTE_ERROR;
    if (!ok)
        fprintf(stderr, "rank %d: %d '%s'\n", rank, r, msg);
    if (named && strstr(msg, want[kind])) { /* the test looks for this mark */
        char mark[64];
        snprintf(mark, sizeof mark, "/tmp/ppu_mismatch_%d", (int)getppid());
        fclose(fopen(mark, "w"));
    }
    return !ok;
}

static void expect_mismatch(int kind)
{
    setenv("PPU_TIMEOUT_MS", "1500", 1);
    setenv("PPU_ALGO", "ring", 1);
    char mark[64];
    snprintf(mark, sizeof mark, "/tmp/ppu_mismatch_%d", (int)getpid());
    unlink(mark);
    cr_expect_eq(run_ranks(4, mismatch, &kind, 30), 0);
    cr_expect_eq(access(mark, F_OK), 0, "no rank named rank 1's call");
    unlink(mark);
}

Test(timeout, mismatched_count_named) { expect_mismatch(0); }
Test(timeout, mismatched_collective_named) { expect_mismatch(1); }
Test(timeout, mismatched_op_named) { expect_mismatch(2); }

/* PPU_SIM_FAULT: every rank ends with an error (or the right result) in
 * seconds, whatever was injected: the rank that sees the fault fails and
 * posts a failure notice on its links; the ranks blocked on it stop at
 * once. PPU_TIMEOUT_MS is 20 s, so a test that passes did not wait for it. */
struct fault_case {
    const char *want;  /* in the error of want_rank; NULL: every call succeeds */
    int want_rank;
    int silent;        /* 1: no error expected, but some rank's data is wrong */
    int *wrong_ranks;  /* silent: shared memory, ranks that saw wrong data */
};

static int faulty(ppu_comm_t comm, int rank, int n, void *arg)
{
    const struct fault_case *fc = arg;
    enum { COUNT = 100001 };
    float *v = malloc(COUNT * sizeof *v);
    ppu_result_t r = PPU_SUCCESS;
    int it, wrong = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (it = 0; it < 6 && r == PPU_SUCCESS; it++) {
        for (int i = 0; i < COUNT; i++)
            v[i] = (float)(rank + i % 3);
        r = ppu_allreduce(v, v, COUNT, PPU_FLOAT32, PPU_SUM, comm, NULL);
        for (int i = 0; r == PPU_SUCCESS && i < COUNT; i++)
            wrong += v[i] != (float)(n * (n - 1) / 2 + n * (i % 3));
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    free(v);
    const char *msg = ppu_get_last_error(comm);
    int bad;
    if (fc->silent)
        bad = r != PPU_SUCCESS; /* wrong data is counted by the caller */
    else if (!fc->want)
        bad = r != PPU_SUCCESS || wrong;
    else
        bad = r != PPU_REMOTE_ERROR || wrong || s > 5.0 ||
              (rank == fc->want_rank && !strstr(msg, fc->want));
    if (bad)
        fprintf(stderr, "rank %d: %d after %d calls, %.2f s, %d wrong: '%s'\n", rank, r, it, s,
                wrong, msg);
    usleep(300 * 1000); /* stay up: the others must not learn of it by our exit */
    if (fc->silent && wrong)
        __atomic_add_fetch(fc->wrong_ranks, 1, __ATOMIC_SEQ_CST);
    return bad;
}

Test(timeout, fault_rank_exit, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_TIMEOUT_MS", "20000", 1);
    setenv("PPU_SIM_FAULT", "rank=2:exit@op=3", 1);
    struct fault_case fc = {"rank 2 has exited", 1, 0, NULL};
    cr_expect_eq(run_ranks(4, faulty, &fc, 30), 1, "only rank 2 (exit code 99) may fail");
}

Test(timeout, fault_link_down, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_TIMEOUT_MS", "20000", 1);
    setenv("PPU_ALGO", "twoshot", 1); /* every link carries data */
    setenv("PPU_SIM_FAULT", "link=1-2:down@op=2", 1);
    struct fault_case fc = {"link 1->2 is down", 2, 0, NULL};
    cr_expect_eq(run_ranks(4, faulty, &fc, 30), 0);
}

Test(timeout, fault_link_delay, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_SIM_FAULT", "link=0-1:delay_us=2000,link=3-2:delay_us=500", 1);
    struct fault_case fc = {NULL, -1, 0, NULL};
    cr_expect_eq(run_ranks(4, faulty, &fc, 30), 0);
}

/* link=A-B:gbps=G: A->B carries at most G GB/s, the other direction is
 * not slowed, and the data arrives intact. Only the lower bound on the
 * slow direction's time is checked (a loaded host can only slow it). */
static int slow_link(ppu_comm_t comm, int rank, int n, void *arg)
{
    (void)n;
    (void)arg;
    enum { BYTES = 4 << 20, ROUNDS = 3 };
    unsigned char *b = malloc(BYTES);
    int bad = 0;
    double t[2] = {0, 0};
    for (int dir = 0; dir < 2 && !bad; dir++) { /* 0: 0->1 (slow), 1: 1->0 */
        int sender = dir == 0 ? 0 : 1;
        struct timespec a, z;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int k = 0; k < ROUNDS && !bad; k++) {
            if (rank == sender) {
                memset(b, 17 + k + dir, BYTES);
                bad |= ppu_send(b, BYTES, PPU_UINT8, 1 - rank, comm, NULL) != PPU_SUCCESS;
            } else {
                memset(b, 0, BYTES);
                bad |= ppu_recv(b, BYTES, PPU_UINT8, 1 - rank, comm, NULL) != PPU_SUCCESS;
                for (int i = 0; i < BYTES && !bad; i += 4093)
                    bad |= b[i] != (unsigned char)(17 + k + dir);
            }
        }
        bad |= ppu_barrier(comm, NULL) != PPU_SUCCESS;
        clock_gettime(CLOCK_MONOTONIC, &z);
        t[dir] = (double)(z.tv_sec - a.tv_sec) + (double)(z.tv_nsec - a.tv_nsec) / 1e9;
    }
    free(b);
    /* 12 MiB at 0.25 GB/s: 50 ms; allow the pacing's slack */
    if (!bad && t[0] < 0.040) {
        fprintf(stderr, "rank %d: 12 MiB over a 0.25 GB/s link took only %.3f s\n", rank, t[0]);
        bad = 1;
    }
    if (rank == 0)
        fprintf(stderr, "slow link 0->1: %.3f s, 1->0: %.3f s for 12 MiB\n", t[0], t[1]);
    return bad;
}

Test(timeout, fault_link_slow, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_SIM_FAULT", "link=0-1:gbps=0.25", 1);
    cr_expect_eq(run_ranks(2, slow_link, NULL, 30), 0);
}

/* With PPU_CHECKSUM=1 a corrupted message is an error naming the link on
 * the receiving rank, and every other rank fails fast too. LL (small
 * chunks), simple, and messages read from the sender's memory all carry
 * the sum. */
static void corrupt_caught(const char *algo, const char *proto)
{
    setenv("PPU_TIMEOUT_MS", "20000", 1);
    setenv("PPU_CHECKSUM", "1", 1);
    setenv("PPU_ALGO", algo, 1);
    setenv("PPU_PROTO", proto, 1);
    setenv("PPU_SIM_FAULT", "link=1-2:corrupt@op=3", 1);
    struct fault_case fc = {"checksum mismatch on link 1->2", 2, 0, NULL};
    cr_expect_eq(run_ranks(4, faulty, &fc, 30), 0, "%s %s", algo, proto);
}

Test(timeout, fault_corrupt_caught_twoshot, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    corrupt_caught("twoshot", "simple");
}

Test(timeout, fault_corrupt_caught_ring_ll, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_CHUNK_SIZE", "4096", 1); /* ring chunks small enough for LL */
    corrupt_caught("ring", "ll");
}

Test(timeout, fault_corrupt_caught_ring_simple, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    corrupt_caught("ring", "simple");
}

/* The same fault without checksums: no error, and wrong data on some rank
 * (what PPU_CHECKSUM is for; it also shows the fault really corrupts). */
Test(timeout, fault_corrupt_unchecked_is_wrong_data, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_ALGO", "twoshot", 1);
    setenv("PPU_SIM_FAULT", "link=1-2:corrupt@op=3", 1);
    int *shared = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);
    cr_assert(shared != MAP_FAILED);
    *shared = 0;
    struct fault_case fc = {NULL, -1, 1, shared};
    cr_expect_eq(run_ranks(4, faulty, &fc, 30), 0, "no rank may see an error");
    cr_expect(*shared >= 1, "the corrupted call must have left wrong data on some rank");
    munmap(shared, sizeof(int));
}

Test(timeout, fault_spec_malformed_refused)
{
    ppu_comm_t c[2];
    /* a bad entry, and words of the reason it must be refused for */
    const char *bad[][2] = {{"link=1-2:corrupt", "is not"}, {"link=1-9:down@op=1", "outside"},
                            {"rank=0:exit", "is not"}, {"bogus", "is not"},
                            {"link=1-1:delay_us=5", "outside"},
                            {"link=0-1:gbps=0", "above 0"}, {"link=0-1:gbps=-2", "above 0"},
                            {"link=0-1:gbps=nan", "above 0"}, {"link=0-1:gbps=2x", "is not"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        /* parameters are read once per process: check in a child each;
         * two ranks, so that link 0-1 exists */
        pid_t pid = fork();
        if (pid == 0) {
            setenv("PPU_SIM_FAULT", bad[i][0], 1);
            ppu_result_t r = ppu_comm_init_all(c, 2);
            const char *msg = ppu_get_last_error(NULL);
            if (r != PPU_INVALID_ARGUMENT || !strstr(msg, "PPU_SIM_FAULT") ||
                !strstr(msg, bad[i][1])) {
                fprintf(stderr, "'%s': %d '%s'\n", bad[i][0], r, msg);
                _exit(1);
            }
            _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "'%s' was not refused as it should be",
                  bad[i][0]);
    }
}
