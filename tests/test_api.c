/* Bad input gets PPU_INVALID_ARGUMENT / PPU_INVALID_USAGE and a sentence
 * naming the argument; no crash, no hang, and the communicator still works
 * afterwards. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "ranks.h"

#define EXPECT_FAIL(call, code, word)                                                      \
    do {                                                                                   \
        ppu_result_t r_ = (call);                                                          \
        cr_expect_eq(r_, code, "%s returned %d (%s), expected %d", #call, r_,            \
                     ppu_get_error_string(r_), code);                                      \
        cr_expect(strstr(ppu_get_last_error(comm_for_msg), word) != NULL,                  \
                  "%s: message '%s' does not name '%s'", #call,                           \
                  ppu_get_last_error(comm_for_msg), word);                                 \
    } while (0)

Test(api, version_and_strings)
{
    int v = 0;
    cr_assert_eq(ppu_get_version(&v), PPU_SUCCESS);
    cr_assert_eq(v, PPU_VERSION_CODE);
    cr_assert_eq(ppu_get_version(NULL), PPU_INVALID_ARGUMENT);
    for (int r = 0; r < PPU_NUM_RESULTS; r++)
        cr_assert(strlen(ppu_get_error_string((ppu_result_t)r)) > 3);
    cr_assert_str_eq(ppu_get_error_string((ppu_result_t)999), "unknown result code");
    cr_assert_eq(ppu_datatype_size(PPU_BFLOAT16), 2);
    cr_assert_eq(ppu_datatype_size((ppu_datatype_t)99), 0);
}

Test(api, init_arguments)
{
    ppu_comm_t comm_for_msg = NULL, c;
    ppu_unique_id_t id;
    cr_assert_eq(ppu_get_unique_id(&id), PPU_SUCCESS);
    EXPECT_FAIL(ppu_get_unique_id(NULL), PPU_INVALID_ARGUMENT, "id");
    EXPECT_FAIL(ppu_comm_init_rank(NULL, 1, id, 0), PPU_INVALID_ARGUMENT, "comm");
    EXPECT_FAIL(ppu_comm_init_rank(&c, 0, id, 0), PPU_INVALID_ARGUMENT, "nranks");
    EXPECT_FAIL(ppu_comm_init_rank(&c, 2, id, 2), PPU_INVALID_ARGUMENT, "rank");
    EXPECT_FAIL(ppu_comm_init_rank(&c, 2, id, -1), PPU_INVALID_ARGUMENT, "rank");
    ppu_unique_id_t bad;
    memset(&bad, 0x5a, sizeof bad);
    EXPECT_FAIL(ppu_comm_init_rank(&c, 1, bad, 0), PPU_INVALID_ARGUMENT, "unique id");
    EXPECT_FAIL(ppu_comm_init_all(NULL, 2), PPU_INVALID_ARGUMENT, "comms");
    EXPECT_FAIL(ppu_comm_init_all(&c, 0), PPU_INVALID_ARGUMENT, "n is 0");
    EXPECT_FAIL(ppu_comm_init_env(NULL), PPU_INVALID_ARGUMENT, "comm");
    EXPECT_FAIL(ppu_stream_create(NULL), PPU_INVALID_ARGUMENT, "stream");
}

Test(api, init_env_without_launcher)
{
    ppu_comm_t comm_for_msg = NULL, c;
    unsetenv("OMPI_COMM_WORLD_RANK");
    unsetenv("PPU_RANK");
    EXPECT_FAIL(ppu_comm_init_env(&c), PPU_INVALID_ARGUMENT, "PPU_RANK");
    setenv("PPU_RANK", "zero", 1);
    setenv("PPU_WORLD_SIZE", "1", 1);
    EXPECT_FAIL(ppu_comm_init_env(&c), PPU_INVALID_ARGUMENT, "not a number");
}

/* One rank: every argument error, then a valid call still works. */
Test(api, allreduce_arguments)
{
    ppu_comm_t comm;
    ppu_unique_id_t id;
    cr_assert_eq(ppu_get_unique_id(&id), PPU_SUCCESS);
    cr_assert_eq(ppu_comm_init_rank(&comm, 1, id, 0), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    ppu_comm_t comm_for_msg = comm;
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8];
    EXPECT_FAIL(ppu_allreduce(NULL, b, 8, PPU_FLOAT32, PPU_SUM, comm, NULL), PPU_INVALID_ARGUMENT, "sendbuf");
    EXPECT_FAIL(ppu_allreduce(a, NULL, 8, PPU_FLOAT32, PPU_SUM, comm, NULL), PPU_INVALID_ARGUMENT, "recvbuf");
    EXPECT_FAIL(ppu_allreduce(a, b, 8, (ppu_datatype_t)10, PPU_SUM, comm, NULL), PPU_INVALID_ARGUMENT, "datatype");
    EXPECT_FAIL(ppu_allreduce(a, b, 8, (ppu_datatype_t)-1, PPU_SUM, comm, NULL), PPU_INVALID_ARGUMENT, "datatype");
    EXPECT_FAIL(ppu_allreduce(a, b, 8, PPU_FLOAT32, (ppu_redop_t)5, comm, NULL), PPU_INVALID_ARGUMENT, "op");
    EXPECT_FAIL(ppu_allreduce(a, b, SIZE_MAX / 2, PPU_FLOAT32, PPU_SUM, comm, NULL), PPU_INVALID_ARGUMENT, "overflow");
    EXPECT_FAIL(ppu_allreduce(a, a + 1, 4, PPU_FLOAT32, PPU_SUM, comm, NULL), PPU_INVALID_ARGUMENT, "overlap");
    comm_for_msg = NULL;
    EXPECT_FAIL(ppu_allreduce(a, b, 8, PPU_FLOAT32, PPU_SUM, NULL, NULL), PPU_INVALID_ARGUMENT, "comm");
    int junk[64] = {0};
    EXPECT_FAIL(ppu_allreduce(a, b, 8, PPU_FLOAT32, PPU_SUM, (ppu_comm_t)junk, NULL), PPU_INVALID_ARGUMENT, "comm");
    /* count 0 with NULL buffers is fine */
    cr_assert_eq(ppu_allreduce(NULL, NULL, 0, PPU_FLOAT32, PPU_SUM, comm, NULL), PPU_SUCCESS);
    cr_assert_eq(ppu_allreduce(a, b, 8, PPU_FLOAT32, PPU_SUM, comm, NULL), PPU_SUCCESS);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    int n = 0, rk = -1;
    cr_assert_eq(ppu_comm_count(comm, &n), PPU_SUCCESS);
    cr_assert_eq(ppu_comm_user_rank(comm, &rk), PPU_SUCCESS);
    cr_assert(n == 1 && rk == 0);
    ppu_result_t ae = PPU_INTERNAL_ERROR;
    cr_assert_eq(ppu_comm_get_async_error(comm, &ae), PPU_SUCCESS);
    cr_assert_eq(ae, PPU_SUCCESS);
    cr_assert_eq(ppu_comm_destroy(comm), PPU_SUCCESS);
    /* after destroy: refused, never touched */
    EXPECT_FAIL(ppu_allreduce(a, b, 8, PPU_FLOAT32, PPU_SUM, comm, NULL), PPU_INVALID_ARGUMENT, "live communicator");
    EXPECT_FAIL(ppu_comm_destroy(comm), PPU_INVALID_ARGUMENT, "live communicator");
    EXPECT_FAIL(ppu_comm_count(comm, &n), PPU_INVALID_ARGUMENT, "live communicator");
    EXPECT_FAIL(ppu_comm_abort(comm), PPU_INVALID_ARGUMENT, "live communicator");
}

/* Registered memory: argument errors, a handle from another communicator
 * or deregistered twice is refused, and a registration left at destroy is
 * freed with the communicator (LeakSanitizer would report it). */
Test(api, register_arguments)
{
    ppu_comm_t c[2];
    cr_assert_eq(ppu_comm_init_all(c, 2), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    ppu_comm_t comm_for_msg = c[0];
    static char buf[4096];
    void *h = (void *)1, *h2 = NULL, *h3 = NULL;
    EXPECT_FAIL(ppu_comm_register(c[0], buf, sizeof buf, NULL), PPU_INVALID_ARGUMENT, "handle");
    EXPECT_FAIL(ppu_comm_register(c[0], NULL, 8, &h), PPU_INVALID_ARGUMENT, "buf");
    cr_expect_null(h, "a failed registration must not leave a handle behind");
    EXPECT_FAIL(ppu_comm_register(c[0], buf, 0, &h), PPU_INVALID_ARGUMENT, "bytes");
    EXPECT_FAIL(ppu_comm_register(c[0], buf, SIZE_MAX, &h), PPU_INVALID_ARGUMENT, "bytes");
    cr_assert_eq(ppu_comm_register(c[0], buf, sizeof buf, &h), PPU_SUCCESS);
    cr_assert_eq(ppu_comm_register(c[0], buf + 100, 10, &h2), PPU_SUCCESS, "overlap is allowed");
    cr_assert_eq(ppu_comm_register(c[1], buf, sizeof buf, &h3), PPU_SUCCESS);
    EXPECT_FAIL(ppu_comm_deregister(c[0], NULL), PPU_INVALID_ARGUMENT, "handle");
    EXPECT_FAIL(ppu_comm_deregister(c[0], h3), PPU_INVALID_ARGUMENT, "another");
    int junk;
    EXPECT_FAIL(ppu_comm_deregister(c[0], &junk), PPU_INVALID_ARGUMENT, "handle");
    cr_assert_eq(ppu_comm_deregister(c[0], h), PPU_SUCCESS);
    EXPECT_FAIL(ppu_comm_deregister(c[0], h), PPU_INVALID_ARGUMENT, "already");
    comm_for_msg = NULL;
    EXPECT_FAIL(ppu_comm_register(NULL, buf, 8, &h), PPU_INVALID_ARGUMENT, "comm");
    cr_assert_eq(ppu_comm_destroy(c[0]), PPU_SUCCESS); /* h2 still registered */
    cr_assert_eq(ppu_comm_deregister(c[1], h3), PPU_SUCCESS,
                 "destroying one communicator dropped another's registration");
    cr_assert_eq(ppu_comm_destroy(c[1]), PPU_SUCCESS);
}

/* Four ranks all pass bad arguments; none communicates, and the next valid
 * all-reduce on every rank is still correct. */
static int bad_then_good(ppu_comm_t comm, int rank, int n, void *arg)
{
    double v[3] = {rank, 1, 2}, out[3];
    if (ppu_allreduce(v, NULL, 3, PPU_FLOAT64, PPU_SUM, comm, NULL) != PPU_INVALID_ARGUMENT)
        return 10;
    if (ppu_allreduce(v, out, 3, PPU_FLOAT64, (ppu_redop_t)42, comm, NULL) != PPU_INVALID_ARGUMENT)
        return 11;
    if (ppu_allreduce(v, out, 3, PPU_FLOAT64, PPU_SUM, comm, NULL) != PPU_SUCCESS)
        return 12;
    return out[0] == n * (n - 1) / 2.0 && out[1] == n && out[2] == 2 * n ? 0 : 13;
}

Test(api, bad_input_leaves_peers_intact, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    cr_assert_eq(run_ranks(4, bad_then_good, NULL, 50), 0);
}

/* Ranks whose settings would make them plan differently: every rank's
 * init fails at once with the setting named and who holds which value
 * (before, PPU_CHUNK_SIZE on half the ranks failed as "internal error ...
 * its FIFO is gone" and PPU_ALGO at the first call). */
struct mismatch {
    const char *var, *value, *want;
};

static int mismatch_child(int r, int n, const ppu_unique_id_t *id, void *arg)
{
    const struct mismatch *m = arg;
    if (r >= n / 2) /* rank 0 has read its settings already (it made the id) */
        setenv(m->var, m->value, 1);
    ppu_comm_t c;
    ppu_result_t res = ppu_comm_init_rank(&c, n, *id, r);
    const char *msg = ppu_get_last_error(NULL);
    if (res != PPU_INVALID_USAGE || !strstr(msg, m->want)) {
        fprintf(stderr, "rank %d: result %d '%s' (wanted '%s')\n", r, res, msg, m->want);
        if (res == PPU_SUCCESS)
            ppu_comm_destroy(c);
        return 1;
    }
    return 0;
}

Test(api, init_mismatched_plan_settings, .timeout = 120)
{
    const struct mismatch cases[] = {
        {"PPU_CHUNK_SIZE", "65536", "PPU_CHUNK_SIZE is '262144' on rank(s) 0-1; '65536' on rank(s) 2-3"},
        {"PPU_NCHANNELS", "1", "PPU_NCHANNELS is '0' on rank(s) 0-1; '1' on rank(s) 2-3"},
        {"PPU_ALGO", "allreduce:twoshot", "PPU_ALGO is unset on rank(s) 0-1; 'allreduce:twoshot' on rank(s) 2-3"},
        {"PPU_FIFO_SLOTS", "4", "PPU_FIFO_SLOTS is '8' on rank(s) 0-1; '4' on rank(s) 2-3"},
        {"PPU_SIM_LINKS_DOWN", "0-1", "PPU_SIM_LINKS_DOWN is unset on rank(s) 0-1; '0-1' on rank(s) 2-3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pid_t pids[4];
        cr_assert_eq(ranks_fork(4, NULL, mismatch_child, (void *)&cases[i], pids), 0);
        int bad = 0;
        for (int r = 0; r < 4; r++) {
            int st;
            waitpid(pids[r], &st, 0);
            bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
        }
        cr_expect_eq(bad, 0, "%s: %d of 4 ranks did not fail init naming it", cases[i].var, bad);
    }
}
