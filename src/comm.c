/* Communicator lifecycle: unique ids, init (explicit, threaded, from the
 * environment), destroy, abort, queries, and the registry of live
 * communicators that lets every entry point reject a stale handle. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "comm.h"
#include "window.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/param.h"
#include "util/wait.h"
#include "reg.h"

int ppu_test_stage_slots = -1;

/* ---- registry ---- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ppu_comm **reg;
static size_t reg_n, reg_cap;

static ppu_result_t reg_add(struct ppu_comm *c)
{
    pthread_mutex_lock(&reg_lock);
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? 2 * reg_cap : 16;
        struct ppu_comm **n = realloc(reg, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&reg_lock);
            return PPU_SYSTEM_ERROR;
        }
        reg = n;
        reg_cap = cap;
    }
    reg[reg_n++] = c;
    pthread_mutex_unlock(&reg_lock);
    return PPU_SUCCESS;
}

/* Removes c; returns 0 if it was not registered (already destroyed). */
static int reg_remove(struct ppu_comm *c)
{
    int found = 0;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++)
        if (reg[i] == c) {
            reg[i] = reg[--reg_n];
            found = 1;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

int ppu_comm_is_live(struct ppu_comm *c)
{
    int found = 0;
    if (!c)
        return 0;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n && !found; i++)
        found = reg[i] == c;
    pthread_mutex_unlock(&reg_lock);
    return found;
}

/* ---- ids ---- */

ppu_result_t ppu_get_version(int *version)
{
    if (!version)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_get_version: version is NULL");
    *version = PPU_VERSION_CODE;
    return PPU_SUCCESS;
}

ppu_result_t ppu_get_unique_id(ppu_unique_id_t *id)
{
    if (!id)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_get_unique_id: id is NULL");
    char err[256];
    union ppu_sockaddr root;
    ppu_result_t r = ppu_socket_pick_addr(&root, err, sizeof err);
    if (r != PPU_SUCCESS)
        return ppu_fail(NULL, r, "ppu_get_unique_id: %s", err);
    uint8_t secret[PPU_BOOT_SECRET_BYTES];
    if (getrandom(secret, sizeof secret, 0) != (ssize_t)sizeof secret)
        return ppu_fail(NULL, PPU_SYSTEM_ERROR, "ppu_get_unique_id: getrandom failed");
    r = ppu_bootstrap_root_start(&root, secret, id, err, sizeof err);
    return r == PPU_SUCCESS ? r : ppu_fail(NULL, r, "ppu_get_unique_id: %s", err);
}

/* ---- init ---- */

static void comm_free(struct ppu_comm *c)
{
    ppu_status_close(c);
    ppu_window_close_all(c);
    ppu_comm_disconnect(c); /* no queue pair left that could still send from them */
    ppu_reg_remove_owner(c);
    ppu_plan_free(c);
    ppu_plan_ctx_free(&c->plan);
    ppu_cluster_free(&c->cl);
    ppu_bootstrap_close(c->bs);
    free(c->scratch);
    free(c->fault_buf);
    pthread_mutex_destroy(&c->exec_lock);
    pthread_mutex_destroy(&c->err_lock);
    c->magic = 0;
    free(c);
}

static ppu_result_t comm_init(ppu_comm_t *out, int nranks, ppu_unique_id_t id, int rank,
                              const struct ppu_topo *parent_topo,
                              const struct ppu_cluster *parent_cl, const int *parent_chips);
static void wait_pending(struct ppu_comm *c);

ppu_result_t ppu_comm_init_rank(ppu_comm_t *out, int nranks, ppu_unique_id_t id, int rank)
{
    return comm_init(out, nranks, id, rank, NULL, NULL, NULL);
}

static ppu_result_t comm_init(ppu_comm_t *out, int nranks, ppu_unique_id_t id, int rank,
                              const struct ppu_topo *parent_topo,
                              const struct ppu_cluster *parent_cl, const int *parent_chips)
{
    if (!out)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_comm_init_rank: comm is NULL");
    char perr[PPU_ERR_LEN];
    if (ppu_param_check(perr, sizeof perr) != PPU_SUCCESS)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_comm_init_rank: %s", perr);
    if (nranks < 1 || nranks > PPU_MAX_RANKS)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_init_rank: nranks is %d; it must be 1..%d", nranks,
                        PPU_MAX_RANKS);
    if (rank < 0 || rank >= nranks)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_init_rank: rank is %d; it must be 0..%d", rank, nranks - 1);
    ppu_log_set_rank(rank);
    struct ppu_comm *c = calloc(1, sizeof *c);
    if (!c)
        return ppu_fail(NULL, PPU_SYSTEM_ERROR, "ppu_comm_init_rank: out of memory");
    c->magic = PPU_COMM_MAGIC;
    c->rank = rank;
    c->nranks = nranks;
    pthread_mutex_init(&c->exec_lock, NULL);
    pthread_mutex_init(&c->err_lock, NULL);
    c->timeout_ns = (uint64_t)ppu_param_int(PPU_P_TIMEOUT_MS) * 1000000ull;
    c->direct_min = (size_t)ppu_param_int(PPU_P_CMA_MIN_BYTES);
    c->check_calls = ppu_param_int(PPU_P_CHECK_CALLS) != 0;
    c->checksum = ppu_param_int(PPU_P_CHECKSUM) != 0;
    c->link_cap = ppu_param_int(PPU_P_SIM_LINK_CAP) != 0;
    struct ppu_plan_settings set;
    char err[PPU_ERR_LEN];
    ppu_result_t r = ppu_plan_settings_read(&set, rank, err, sizeof err);
    if (r == PPU_SUCCESS) {
        c->scratch = aligned_alloc(64, set.chunk_bytes);
        r = c->scratch ? ppu_fault_parse(c) : PPU_SYSTEM_ERROR;
        snprintf(err, sizeof err, "%s", c->scratch ? c->last_error : "out of memory");
    }
    if (r != PPU_SUCCESS) {
        ppu_fail(NULL, r, "ppu_comm_init_rank: %s", err);
        comm_free(c);
        return r;
    }
    uint64_t t0 = ppu_now_ns();
    r = ppu_bootstrap_init(&id, rank, nranks, &c->bs, err, sizeof err);
    if (r != PPU_SUCCESS) {
        ppu_fail(NULL, r, "ppu_comm_init_rank: %s", err);
        comm_free(c);
        return r;
    }
    PPU_INFO(PPU_SUB_INIT, "rank %d: bootstrap %.3f s", rank, (ppu_now_ns() - t0) / 1e9);
    int local = 0, cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 0; i < nranks; i++)
        local += c->bs->host_hash[i] == c->bs->host_hash[rank];
    c->host_ranks = local;
    /* A rank with a core of its own shares its send slots with a reader
     * running at the same time: stage reductions bound for them (exec.c
     * reduce_into_slot). Oversubscribed, the stores measured no dearer and
     * the extra pass cost up to 10% (4 ranks on 2 cores, 16 MB ring). */
    c->stage_slots = ppu_test_stage_slots >= 0 ? ppu_test_stage_slots : local <= cores;
    long long spin = ppu_param_int(PPU_P_SPIN);
    if (spin < 0)
        spin = local > cores ? 0 : 2000;
    c->wait = (struct ppu_waiter){0, (uint64_t)spin, 0, 0, 0};
    double over = cores > 0 ? (double)local / cores : 1;
    if (over > 8) { /* hundreds of ranks a core: nap soon, and longer */
        double cap = over * 20000.0;
        c->wait.yields = 64;
        c->wait.nap_max_ns = cap < 10e6 ? (uint64_t)cap : 10000000ull;
    }
    c->parent_topo = parent_topo;
    c->parent_cl = parent_cl;
    c->parent_chips = parent_chips;
    r = ppu_comm_connect(c, &set, cores);
    c->parent_topo = NULL;
    c->parent_cl = NULL;
    c->parent_chips = NULL;
    if (r == PPU_SUCCESS)
        r = reg_add(c);
    if (r != PPU_SUCCESS) {
        ppu_fail(NULL, r, "ppu_comm_init_rank: %s", c->last_error[0] ? c->last_error
                                                                       : "connection setup failed");
        comm_free(c);
        return r;
    }
    ppu_status_open(c);
    PPU_INFO(PPU_SUB_INIT, "rank %d of %d ready", rank, nranks);
    *out = c;
    return PPU_SUCCESS;
}

struct init_all_arg {
    ppu_comm_t comm;
    ppu_unique_id_t id;
    int n, rank;
    ppu_result_t r;
    char err[PPU_ERR_LEN];
};

static void *init_all_thread(void *p)
{
    struct init_all_arg *a = p;
    a->r = ppu_comm_init_rank(&a->comm, a->n, a->id, a->rank);
    if (a->r != PPU_SUCCESS)
        snprintf(a->err, sizeof a->err, "%s", ppu_get_last_error(NULL));
    return NULL;
}

ppu_result_t ppu_comm_init_all(ppu_comm_t *comms, int n)
{
    if (!comms)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_comm_init_all: comms is NULL");
    if (n < 1 || n > PPU_MAX_RANKS)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_init_all: n is %d; it must be 1..%d", n, PPU_MAX_RANKS);
    ppu_unique_id_t id;
    PPU_CHECK(ppu_get_unique_id(&id));
    struct init_all_arg *args = calloc((size_t)n, sizeof *args);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    if (!args || !th) {
        free(args);
        free(th);
        return ppu_fail(NULL, PPU_SYSTEM_ERROR, "ppu_comm_init_all: out of memory");
    }
    int started = 0;
    for (; started < n; started++) {
        args[started] = (struct init_all_arg){NULL, id, n, started, PPU_SUCCESS, ""};
        if (pthread_create(&th[started], NULL, init_all_thread, &args[started]) != 0)
            break;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    ppu_result_t r = started == n ? PPU_SUCCESS : PPU_SYSTEM_ERROR;
    int bad = -1;
    for (int i = 0; i < started; i++)
        if (args[i].r != PPU_SUCCESS && bad < 0) {
            r = args[i].r;
            bad = i;
        }
    if (r == PPU_SUCCESS) {
        for (int i = 0; i < n; i++)
            comms[i] = args[i].comm;
    } else {
        for (int i = 0; i < started; i++)
            if (args[i].comm)
                ppu_comm_destroy(args[i].comm);
        if (bad >= 0)
            ppu_fail(NULL, r, "ppu_comm_init_all: rank %d: %s", bad, args[bad].err);
        else
            ppu_fail(NULL, r, "ppu_comm_init_all: could not start %d threads", n);
    }
    free(args);
    free(th);
    return r;
}

/* ---- init from the environment ---- */

/* A launcher's integer (OMPI_COMM_WORLD_RANK and the like): 1 and *v when
 * set, 0 when unset, -1 when it is not a count. */
static int launcher_int(const char *name, int *v)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end || x < 0 || x > INT32_MAX)
        return -1;
    *v = (int)x;
    return 1;
}

/* PPU_RANK / PPU_WORLD_SIZE (the parameter table's, checked), else the
 * launcher's variable. */
static int env_int(enum ppu_param p, const char *launcher, int *v)
{
    if (ppu_param_is_set(p)) {
        *v = (int)ppu_param_int(p);
        return 1;
    }
    return launcher_int(launcher, v);
}

/* A job key shared by the ranks of one mpirun, or NULL. */
static const char *launcher_job_key(void)
{
    const char *k = getenv("PMIX_NAMESPACE");
    if (!k || !*k)
        k = getenv("OMPI_MCA_ess_base_jobid");
    return k && *k ? k : NULL;
}

static void secret_from_string(const char *s, uint8_t *secret)
{
    ppu_hash128(s, strlen(s), secret);
}

/* With PPU_ROOT_ADDR: rank 0 listens there; everyone derives the same id. */
static ppu_result_t id_from_root_addr(const char *addr, int rank, ppu_unique_id_t *id)
{
    struct ppu_id_fields f;
    memset(&f, 0, sizeof f);
    if (ppu_socket_parse(addr, &f.root) != PPU_SUCCESS)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_init_env: PPU_ROOT_ADDR='%s' is not host:port", addr);
    /* The secret authenticates every connection of the job (bootstrap and
     * links). A launcher's job id is no secret (anyone who can see the
     * job list, or guess, has it), so a root that other hosts can reach
     * needs PPU_BOOTSTRAP_SECRET, or the user's explicit consent. */
    const char *sec = ppu_param_str(PPU_P_BOOTSTRAP_SECRET);
    const char *key = launcher_job_key();
    char where[80];
    ppu_socket_str(&f.root, where, sizeof where);
    if (*sec) {
        secret_from_string(sec, f.secret);
        if (strlen(sec) < 16)
            PPU_WARN(PPU_SUB_BOOT, "PPU_BOOTSTRAP_SECRET is %zu characters; a guessable secret "
                                   "lets others join the job (use 16 or more random ones)",
                     strlen(sec));
    } else if (!ppu_socket_is_loopback(&f.root) && !ppu_param_int(PPU_P_BOOTSTRAP_INSECURE)) {
        return ppu_fail(NULL, PPU_INVALID_USAGE,
                        "ppu_comm_init_env: PPU_ROOT_ADDR=%s is reachable from other hosts and "
                        "PPU_BOOTSTRAP_SECRET is not set, so any process that can reach it could "
                        "join this job. Give every rank the same secret (export "
                        "PPU_BOOTSTRAP_SECRET=$(head -c 24 /dev/urandom | base64); mpirun -x "
                        "PPU_BOOTSTRAP_SECRET ...), or set PPU_BOOTSTRAP_INSECURE=1 to accept "
                        "the risk", addr);
    } else {
        if (key)
            secret_from_string(key, f.secret);
        PPU_WARN(PPU_SUB_BOOT, "PPU_ROOT_ADDR=%s without PPU_BOOTSTRAP_SECRET: any process that "
                               "can reach %s can join this job%s", addr, where,
                 key ? " (the launcher's job id is the only secret, and it is guessable)" : "");
    }
    if (rank != 0) {
        ppu_id_pack(&f, id);
        return PPU_SUCCESS;
    }
    char err[256];
    ppu_result_t r = ppu_bootstrap_root_start(&f.root, f.secret, id, err, sizeof err);
    return r == PPU_SUCCESS ? r : ppu_fail(NULL, r, "ppu_comm_init_env: %s", err);
}

/* Without PPU_ROOT_ADDR, ranks of one mpirun on one host meet through an
 * owner-only file named after the job: rank 0 writes the id, others read. */
static ppu_result_t id_from_file(const char *key, int rank, ppu_unique_id_t *id, char *path,
                                 size_t plen)
{
    uint8_t h[PPU_BOOT_SECRET_BYTES];
    secret_from_string(key, h);
    snprintf(path, plen, "/tmp/ppuccl-%u-%02x%02x%02x%02x%02x%02x%02x%02x.id", (unsigned)getuid(),
             h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
    if (rank == 0) {
        PPU_CHECK(ppu_get_unique_id(id));
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
        int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, id, sizeof *id) != (ssize_t)sizeof *id || close(fd) != 0 ||
            rename(tmp, path) != 0) {
            if (fd >= 0)
                unlink(tmp);
            return ppu_fail(NULL, PPU_SYSTEM_ERROR, "ppu_comm_init_env: cannot write %s: %s",
                            path, strerror(errno));
        }
        return PPU_SUCCESS;
    }
    uint64_t deadline = ppu_now_ns() + (uint64_t)ppu_param_int(PPU_P_BOOTSTRAP_TIMEOUT_MS) * 1000000ull;
    for (;;) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            struct stat st;
            ssize_t n = -1;
            if (fstat(fd, &st) == 0 && st.st_uid == getuid() && !(st.st_mode & 077))
                n = read(fd, id, sizeof *id);
            close(fd);
            if (n == (ssize_t)sizeof *id)
                return PPU_SUCCESS;
        }
        if (ppu_now_ns() > deadline)
            return ppu_fail(NULL, PPU_TIMEOUT, "ppu_comm_init_env: rank %d found no id from rank 0 "
                            "in %s (set PPU_ROOT_ADDR for jobs across hosts)", rank, path);
        usleep(10000);
    }
}

ppu_result_t ppu_comm_init_env(ppu_comm_t *comm)
{
    if (!comm)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_comm_init_env: comm is NULL");
    char perr[PPU_ERR_LEN];
    if (ppu_param_check(perr, sizeof perr) != PPU_SUCCESS)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_comm_init_env: %s", perr);
    int rank = -1, size = -1, lsize = -1;
    int hr = env_int(PPU_P_RANK, "OMPI_COMM_WORLD_RANK", &rank);
    int hs = env_int(PPU_P_WORLD_SIZE, "OMPI_COMM_WORLD_SIZE", &size);
    if (hr <= 0 || hs <= 0)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_init_env: set PPU_RANK and PPU_WORLD_SIZE (or launch with "
                        "mpirun, which sets OMPI_COMM_WORLD_RANK/SIZE)%s",
                        hr < 0 || hs < 0 ? "; a value there is not a number" : "");
    const char *root = ppu_param_str(PPU_P_ROOT_ADDR);
    const char *key = launcher_job_key();
    ppu_unique_id_t id;
    char path[512] = "";
    ppu_result_t r;
    if (*root) {
        r = id_from_root_addr(root, rank, &id);
    } else if (key && launcher_int("OMPI_COMM_WORLD_LOCAL_SIZE", &lsize) > 0 && lsize == size) {
        r = id_from_file(key, rank, &id, path, sizeof path);
    } else {
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_init_env: PPU_ROOT_ADDR is not set (host:port where rank 0 "
                        "listens); it is only optional under mpirun on a single host");
    }
    if (r != PPU_SUCCESS)
        return r;
    r = ppu_comm_init_rank(comm, size, id, rank);
    if (rank == 0 && path[0])
        unlink(path);
    return r;
}

/* ---- split ---- */

struct split_entry {
    int32_t color, key;
    ppu_unique_id_t id; /* the new communicator's id, filled by its first rank */
};

static int cmp_split(const void *x, const void *y)
{
    const struct split_entry *a = x, *b = y;
    return a->key != b->key ? (a->key < b->key ? -1 : 1) : 0;
}

ppu_result_t ppu_comm_split(ppu_comm_t comm, int color, int key, ppu_comm_t *newcomm)
{
    const char *fn = "ppu_comm_split";
    if (!ppu_comm_is_live(comm))
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "%s: comm is not a live communicator", fn);
    if (!newcomm)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: newcomm is NULL", fn);
    if (color < 0 && color != PPU_SPLIT_NOCOLOR)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                        "%s: color is %d; it must be >= 0 or PPU_SPLIT_NOCOLOR", fn, color);
    if (ppu_group_depth() > 0)
        return ppu_fail(comm, PPU_INVALID_USAGE, "%s: cannot be called inside a group", fn);
    *newcomm = NULL;
    int n = comm->nranks;
    struct split_entry *all = calloc((size_t)n, sizeof *all);
    int *members = calloc((size_t)n, sizeof *members);
    if (!all || !members) {
        free(all);
        free(members);
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "%s: out of memory", fn);
    }
    /* Round 1: everyone's color and key. Round 2: the first rank of each
     * color (by key, then rank) makes the new communicator's id. The
     * bootstrap is the parent's; no collective may run meanwhile. */
    pthread_mutex_lock(&comm->exec_lock);
    all[comm->rank].color = color;
    all[comm->rank].key = key;
    ppu_result_t r = ppu_bootstrap_allgather(comm->bs, all, sizeof *all);
    int nm = 0, me = -1;
    if (r == PPU_SUCCESS && color != PPU_SPLIT_NOCOLOR) {
        /* members ordered by key, ties by parent rank (stable: insertion) */
        for (int i = 0; i < n; i++)
            if (all[i].color == color) {
                int j = nm++;
                while (j > 0 && cmp_split(&all[i], &all[members[j - 1]]) < 0) {
                    members[j] = members[j - 1];
                    j--;
                }
                members[j] = i;
            }
        for (int j = 0; j < nm; j++)
            if (members[j] == comm->rank)
                me = j;
    }
    memset(&all[comm->rank].id, 0, sizeof all[comm->rank].id);
    if (r == PPU_SUCCESS && me == 0)
        r = ppu_get_unique_id(&all[comm->rank].id);
    /* a rank that failed to make an id still joins the exchange, so that
     * nobody waits for it; its members then fail to connect */
    ppu_result_t r2 = ppu_bootstrap_allgather(comm->bs, all, sizeof *all);
    pthread_mutex_unlock(&comm->exec_lock);
    if (r == PPU_SUCCESS)
        r = r2;
    if (r == PPU_SUCCESS && me >= 0) {
        /* rank i of comm holds chip i of comm->topo (dense), or is rank i
         * of its cluster (two-level: past 64 ranks) */
        int dense = comm->topo.nchips > 0;
        r = comm_init(newcomm, nm, all[members[0]].id, me, dense ? &comm->topo : NULL,
                      dense ? NULL : &comm->cl, members);
        if (r != PPU_SUCCESS)
            ppu_fail(comm, r, "%s: color %d: %s", fn, color, ppu_get_last_error(NULL));
    } else if (r != PPU_SUCCESS) {
        ppu_fail(comm, r, "%s: exchanging colors over the bootstrap failed", fn);
    }
    free(all);
    free(members);
    return r;
}

/* ---- teardown ---- */

static void wait_pending(struct ppu_comm *c)
{
    struct ppu_waiter w = {0, 100, 0, 0, 0};
    while (atomic_load(&c->pending) > 0)
        ppu_wait_idle(&w);
}

ppu_result_t ppu_comm_destroy(ppu_comm_t comm)
{
    if (!ppu_comm_is_live(comm))
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_destroy: comm is not a live communicator (NULL, already "
                        "destroyed, or never initialized)");
    if (ppu_group_uses(comm))
        return ppu_fail(comm, PPU_INVALID_USAGE,
                        "ppu_comm_destroy: this thread's open group has calls on comm; call "
                        "ppu_group_end first (or ppu_comm_abort to give them up)");
    wait_pending(comm);
    if (!reg_remove(comm))
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_comm_destroy: comm was destroyed twice");
    pthread_mutex_lock(&comm->exec_lock); /* no collective in flight */
    pthread_mutex_unlock(&comm->exec_lock);
    comm_free(comm);
    return PPU_SUCCESS;
}

ppu_result_t ppu_comm_abort(ppu_comm_t comm)
{
    if (!ppu_comm_is_live(comm))
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "ppu_comm_abort: comm is not a live communicator");
    atomic_store(&comm->aborted, 1);
    wait_pending(comm); /* queued work sees the flag and fails at once */
    if (!reg_remove(comm))
        return PPU_SUCCESS; /* another thread finished the teardown */
    pthread_mutex_lock(&comm->exec_lock);
    ppu_comm_mark_failed(comm); /* peers waiting on this rank stop at once */
    pthread_mutex_unlock(&comm->exec_lock);
    comm_free(comm);
    return PPU_SUCCESS;
}

/* ---- queries ---- */

#define CHECK_LIVE(fn, comm)                                                               \
    do {                                                                                   \
        if (!ppu_comm_is_live(comm))                                                       \
            return ppu_fail(NULL, PPU_INVALID_ARGUMENT,                                    \
                            fn ": comm is not a live communicator (NULL, destroyed, or "   \
                               "never initialized)");                                      \
    } while (0)

ppu_result_t ppu_comm_count(ppu_comm_t comm, int *count)
{
    CHECK_LIVE("ppu_comm_count", comm);
    if (!count)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_comm_count: count is NULL");
    *count = comm->nranks;
    return PPU_SUCCESS;
}

/* ---- registered memory (reg.h) ---- */

ppu_result_t ppu_comm_register(ppu_comm_t comm, const void *buf, size_t bytes, void **handle)
{
    CHECK_LIVE("ppu_comm_register", comm);
    if (!handle)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_comm_register: handle is NULL");
    *handle = NULL;
    if (!buf)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_comm_register: buf is NULL");
    if (bytes == 0)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_comm_register: bytes is 0");
    if ((uintptr_t)buf + bytes < (uintptr_t)buf)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                        "ppu_comm_register: bytes (%zu) runs past the end of the address space",
                        bytes);
    if (ppu_reg_add(comm, buf, bytes, handle) != PPU_SUCCESS)
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "ppu_comm_register: out of memory");
    PPU_INFO(PPU_SUB_INIT, "rank %d: registered %zu bytes at %p", comm->rank, bytes, buf);
    return PPU_SUCCESS;
}

ppu_result_t ppu_comm_deregister(ppu_comm_t comm, void *handle)
{
    CHECK_LIVE("ppu_comm_deregister", comm);
    if (!handle)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_comm_deregister: handle is NULL");
    /* not under a collective that sends from it: queued calls finish first */
    wait_pending(comm);
    pthread_mutex_lock(&comm->exec_lock);
    int gone = ppu_reg_remove(comm, handle);
    pthread_mutex_unlock(&comm->exec_lock);
    if (gone != 0)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                        "ppu_comm_deregister: handle is not a registration of this communicator "
                        "(deregistered already, or made on another)");
    return PPU_SUCCESS;
}

ppu_result_t ppu_comm_user_rank(ppu_comm_t comm, int *rank)
{
    CHECK_LIVE("ppu_comm_user_rank", comm);
    if (!rank)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_comm_user_rank: rank is NULL");
    *rank = comm->rank;
    return PPU_SUCCESS;
}

ppu_result_t ppu_comm_get_async_error(ppu_comm_t comm, ppu_result_t *async_error)
{
    CHECK_LIVE("ppu_comm_get_async_error", comm);
    if (!async_error)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                        "ppu_comm_get_async_error: async_error is NULL");
    *async_error = atomic_load(&comm->async_error);
    return PPU_SUCCESS;
}
