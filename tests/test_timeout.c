/* Every wait on a peer ends: a missing peer turns into PPU_TIMEOUT naming
 * it, and ppu_comm_abort from another thread ends a stuck collective. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
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
