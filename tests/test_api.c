/* Bad input gets PPU_INVALID_ARGUMENT / PPU_INVALID_USAGE and a sentence
 * naming the argument; no crash, no hang, and the communicator still works
 * afterwards. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "comm.h"
#include "util/param.h"
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
    /* PPU_RANK='zero': api/param_refused_values (parameters are read once
     * a process); the launcher's variables are read at each call */
    setenv("OMPI_COMM_WORLD_RANK", "zero", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
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
    if (r >= n / 2 && !strcmp(m->var, "version")) /* these ranks are another build */
        ppu_lib_version = m->value;
    else if (r >= n / 2) /* rank 0 has read its settings already (it made the id) */
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
        {"version", "0.0.9", "the ranks run different ppuccl builds: ppuccl version is '"
         PPU_VERSION_STRING "' on rank(s) 0-1; '0.0.9' on rank(s) 2-3. Every rank must load the "
         "same ppuccl"},
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

/* ---- parameters: one table, one parse path, refused values name the
 * parameter and its range; secrets never reach the log ---- */

struct refused {
    const char *var, *value, *want;
    int env_init; /* through ppu_comm_init_env (PPU_RANK, PPU_WORLD_SIZE) */
};

/* fn(arg) in a fresh process (parameters are read once per process): 1
 * when it exited 0. */
static int in_fresh_process(int (*fn)(const void *), const void *arg)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(fn(arg));
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int refused_child(const void *arg)
{
    const struct refused *c = arg;
    setenv(c->var, c->value, 1);
    ppu_comm_t comm;
    ppu_result_t r;
    if (c->env_init) {
        setenv("PPU_ROOT_ADDR", "127.0.0.1:1", 1);
        r = ppu_comm_init_env(&comm);
    } else {
        ppu_unique_id_t id;
        memset(&id, 0, sizeof id);
        r = ppu_comm_init_rank(&comm, 1, id, 0); /* refused before the id is used */
    }
    const char *msg = ppu_get_last_error(NULL);
    if (r != PPU_INVALID_ARGUMENT || !strstr(msg, c->want)) {
        fprintf(stderr, "%s=%s: result %d '%s' (wanted '%s')\n", c->var, c->value, r, msg,
                c->want);
        return 1;
    }
    return 0;
}

Test(api, param_refused_values, .timeout = 60)
{
    const struct refused cases[] = {
        {"PPU_TIMEOUT_MS", "-5", "PPU_TIMEOUT_MS=-5 is out of range: it must be 1..2147483647", 0},
        {"PPU_TIMEOUT_MS", "10s", "PPU_TIMEOUT_MS='10s' is not an integer", 0},
        {"PPU_TIMEOUT_MS", "99999999999999999999", "is not an integer", 0},
        {"PPU_BOOTSTRAP_TIMEOUT_MS", "0", "PPU_BOOTSTRAP_TIMEOUT_MS=0 is out of range", 0},
        {"PPU_FIFO_SLOTS", "65", "PPU_FIFO_SLOTS=65 is out of range: it must be 2..64", 0},
        {"PPU_FIFO_SLOTS", "1", "PPU_FIFO_SLOTS=1 is out of range: it must be 2..64", 0},
        {"PPU_NCHANNELS", "17", "PPU_NCHANNELS=17 is out of range: it must be 0..16", 0},
        {"PPU_NCHANNELS", "-1", "PPU_NCHANNELS=-1 is out of range", 0},
        {"PPU_CHUNK_SIZE", "100", "PPU_CHUNK_SIZE=100 is out of range: it must be 4096..", 0},
        {"PPU_SOCKET_NSOCKS", "9", "PPU_SOCKET_NSOCKS=9 is out of range: it must be 1..8", 0},
        {"PPU_CHECKSUM", "2", "PPU_CHECKSUM=2 is out of range: it must be 0..1", 0},
        {"PPU_SPIN", "-2", "PPU_SPIN=-2 is out of range", 0},
        {"PPU_NET", "rdma", "PPU_NET='rdma' is not one of: ib, socket (or unset)", 0},
        {"PPU_DEBUG", "LOUD", "PPU_DEBUG='LOUD' is not one of: NONE, OFF, WARN, INFO, TRACE", 0},
        {"PPU_DEBUG_SUBSYS", "INIT,FOO", "PPU_DEBUG_SUBSYS='INIT,FOO': 'FOO' is not one of", 0},
        {"PPU_RANK", "-1", "PPU_RANK=-1 is out of range", 1},
        {"PPU_WORLD_SIZE", "many", "PPU_WORLD_SIZE='many' is not an integer", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect(in_fresh_process(refused_child, &cases[i]), "%s=%s was not refused naming it",
                  cases[i].var, cases[i].value);
}

/* Choices are taken in any case and read back in the table's spelling;
 * hex integers and empty values (unset) are accepted. */
static int accepted_child(const void *arg)
{
    setenv("PPU_NET", "SOCKET", 1);
    setenv("PPU_DEBUG", "warn", 1);
    setenv("PPU_DEBUG_SUBSYS", "^net,Init", 1);
    setenv("PPU_FIFO_SLOTS", "0x10", 1);
    setenv("PPU_TIMEOUT_MS", "", 1);
    char err[256];
    if (ppu_param_check(err, sizeof err) != PPU_SUCCESS) {
        fprintf(stderr, "refused: %s\n", err);
        return 1;
    }
    return strcmp(ppu_param_str(PPU_P_NET), "socket") != 0 ||
           ppu_param_int(PPU_P_FIFO_SLOTS) != 16 || ppu_param_int(PPU_P_TIMEOUT_MS) != 300000 ||
           ppu_param_is_set(PPU_P_TIMEOUT_MS);
}

Test(api, param_accepted_values)
{
    cr_expect(in_fresh_process(accepted_child, NULL));
}

/* Every default passes the table's own checks, and every parameter the
 * library reads is in the table (a name that is not fails here). */
Test(api, param_defaults)
{
    const struct ppu_param_def *t = ppu_param_table();
    for (int i = 0; i < PPU_P_COUNT; i++) {
        cr_assert(t[i].name && t[i].def && t[i].help && strncmp(t[i].name, "PPU_", 4) == 0,
                  "entry %d is incomplete", i);
        if (t[i].kind == PPU_PK_INT && *t[i].def) {
            char *end;
            long long v = strtoll(t[i].def, &end, 0);
            cr_expect(*end == '\0' && v >= t[i].min && v <= t[i].max,
                      "%s's default '%s' is outside %lld..%lld", t[i].name, t[i].def, t[i].min,
                      t[i].max);
        }
        if (t[i].kind == PPU_PK_CHOICE && *t[i].def) {
            int found = 0;
            for (int k = 0; t[i].choices[k]; k++)
                found |= strcmp(t[i].choices[k], t[i].def) == 0;
            cr_expect(found, "%s's default '%s' is not one of its choices", t[i].name, t[i].def);
        }
    }
    char err[256];
    cr_expect_eq(ppu_param_check(err, sizeof err), PPU_SUCCESS, "%s", err);
}

/* PPU_DEBUG=INFO logs every override, but a secret only as "set". */
static int secret_child(const void *arg)
{
    const char *log = arg;
    setenv("PPU_DEBUG", "INFO", 1);
    setenv("PPU_DEBUG_FILE", log, 1);
    setenv("PPU_BOOTSTRAP_SECRET", "hunter2-do-not-print", 1);
    /* a port that was free a moment ago */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) != 0)
        return 3;
    close(s);
    char root[64];
    snprintf(root, sizeof root, "127.0.0.1:%d", ntohs(a.sin_port));
    setenv("PPU_ROOT_ADDR", root, 1);
    setenv("PPU_RANK", "0", 1);
    setenv("PPU_WORLD_SIZE", "1", 1);
    ppu_comm_t c;
    ppu_result_t r = ppu_comm_init_env(&c);
    if (r == PPU_SUCCESS)
        ppu_comm_destroy(c);
    return r == PPU_SUCCESS ? 0 : 2;
}

Test(api, secret_never_logged, .timeout = 60)
{
    char log[] = "/tmp/ppu-secret-log-XXXXXX";
    int fd = mkstemp(log);
    cr_assert_geq(fd, 0);
    close(fd);
    int ok = in_fresh_process(secret_child, log);
    FILE *f = fopen(log, "r");
    cr_assert(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(log);
    cr_expect(ok, "init_env with a secret failed: %s", buf);
    cr_expect(strstr(buf, "PPU_BOOTSTRAP_SECRET is set") != NULL, "log: %s", buf);
    cr_expect(strstr(buf, "PPU_ROOT_ADDR set by environment") != NULL, "log: %s", buf);
    cr_expect(strstr(buf, "hunter2") == NULL, "the secret is in the log: %s", buf);
}

/* A root other hosts can reach needs a secret (or explicit consent). */
static int insecure_child(const void *arg)
{
    int consent = *(const int *)arg;
    setenv("PPU_ROOT_ADDR", "192.0.2.1:29500", 1); /* TEST-NET-1: not loopback */
    setenv("PPU_RANK", "1", 1);
    setenv("PPU_WORLD_SIZE", "2", 1);
    setenv("PPU_BOOTSTRAP_TIMEOUT_MS", "300", 1);
    setenv("PPU_DEBUG", "NONE", 1);
    if (consent)
        setenv("PPU_BOOTSTRAP_INSECURE", "1", 1);
    ppu_comm_t c;
    ppu_result_t r = ppu_comm_init_env(&c);
    const char *msg = ppu_get_last_error(NULL);
    int refused = r == PPU_INVALID_USAGE &&
                  strstr(msg, "PPU_ROOT_ADDR=192.0.2.1:29500 is reachable from other hosts and "
                              "PPU_BOOTSTRAP_SECRET is not set") != NULL;
    if (r == PPU_SUCCESS)
        ppu_comm_destroy(c);
    if (refused != !consent)
        fprintf(stderr, "consent %d: result %d '%s'\n", consent, r, msg);
    return refused == !consent ? 0 : 1;
}

Test(api, root_addr_needs_secret, .timeout = 60)
{
    for (int consent = 0; consent < 2; consent++)
        cr_expect(in_fresh_process(insecure_child, &consent), "consent %d", consent);
}

/* PPU_CMA=1: the process lets same-user processes read it (Yama
 * PR_SET_PTRACER_ANY where ptrace_scope is 1) only while a communicator
 * that uses single copy lives; destroying the last one takes it back.
 * Before, the declaration was made at every init and never undone. */
Test(api, cma_ptracer_only_while_used, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_CMA", "1", 1);
    cr_assert_eq(ppu_cma_ptracer_users(), 0);
    ppu_comm_t a[2], b[2];
    cr_assert_eq(ppu_comm_init_all(a, 2), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    cr_expect_eq(ppu_cma_ptracer_users(), 2);
    cr_assert_eq(ppu_comm_init_all(b, 2), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
    cr_expect_eq(ppu_cma_ptracer_users(), 4);
    for (int i = 0; i < 2; i++)
        cr_expect_eq(ppu_comm_destroy(a[i]), PPU_SUCCESS);
    cr_expect_eq(ppu_cma_ptracer_users(), 2, "the second pair still reads by single copy");
    for (int i = 0; i < 2; i++)
        cr_expect_eq(ppu_comm_destroy(b[i]), PPU_SUCCESS);
    cr_expect_eq(ppu_cma_ptracer_users(), 0, "nothing uses single copy: no ptracer left");
    cr_log_info("Yama ptrace_scope here: %d (-1: no Yama, the prctl itself is not made)",
                ppu_yama_ptrace_scope());
}

/* The call stamp names roots of every size a job can have (it held 8
 * bits of the root: rank 256 read as 0), and tells apart calls that
 * differ only there. */
Test(api, call_stamp_holds_large_roots)
{
    struct ppu_comm comm;
    memset(&comm, 0, sizeof comm);
    comm.coll_seq = 5;
    struct ppu_coll_args a = {.coll = PPU_COLL_BROADCAST, .count = 123,
                              .datatype = PPU_FLOAT32, .op = PPU_SUM, .root = 4000};
    uint64_t c[2], d[2];
    char s[160];
    ppu_call_stamp(&comm, &a, c);
    ppu_call_str(c, s, sizeof s);
    cr_expect_str_eq(s, "broadcast #5 count=123 float32 root=4000");
    a.root = 65535;
    ppu_call_stamp(&comm, &a, d);
    ppu_call_str(d, s, sizeof s);
    cr_expect_str_eq(s, "broadcast #5 count=123 float32 root=65535");
    a.root = 4000 + 256;
    ppu_call_stamp(&comm, &a, d);
    cr_expect(c[0] != d[0] || c[1] != d[1], "roots 4000 and 4256 stamped alike");
    a.coll = PPU_COLL_REDUCE;
    a.root = 0;
    a.count = 1ull << 39;
    ppu_call_stamp(&comm, &a, d);
    ppu_call_str(d, s, sizeof s);
    cr_expect_str_eq(s, "reduce #5 count=549755813888 float32 sum root=0");
}
