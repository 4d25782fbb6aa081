/*
 * gloo_allreduce_perf — Gloo's ring all-reduce over its TCP transport,
 * measured by the same driver as ppu_allreduce_perf (perf_common.c: nccl-tests
 * flags, output columns, validation values and timing), so the two outputs
 * line up row for row.
 *
 *   gloo_allreduce_perf -p 4 -b 1M -e 64M -f 4    fork 4 local ranks
 *   mpirun -np 4 gloo_allreduce_perf -b 1M -e 64M one rank per MPI process
 *                                                 (rank and size from the
 *                                                 environment; one host)
 *
 * Each rank is its own process with its own gloo::rendezvous::Context. They
 * meet through a gloo::rendezvous::FileStore (behind a PrefixStore) in a
 * fresh owner-only directory, removed at exit, and connect a full mesh of
 * gloo::transport::tcp pairs on 127.0.0.1. The collective is the
 * gloo::allreduce() API with AllreduceOptions::Algorithm::RING (reduce-scatter
 * then all-gather around the ring, in segments of at most 1 MiB, the code path
 * PyTorch's Gloo backend uses); out of place it reads the send buffer and
 * writes the receive buffer, in place it is given only the output buffer.
 *
 * Datatypes: int8 uint8 int32 uint32 int64 uint64 half float double; ops:
 * sum prod max min (Gloo has no bfloat16 and no average: those are skipped,
 * or refused when asked for by name). The store directory is a mkdtemp under
 * $TMPDIR (or /tmp) with -p; under mpirun it is $GLOO_PERF_STORE if set, else
 * /tmp/gloo_perf.<uid>.<job id of the mpirun>.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/config.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/types.h>

extern "C" {
#include "perf_common.h"
}

#if !GLOO_HAVE_TRANSPORT_TCP
#error "this Gloo is built without its TCP transport"
#endif

namespace {

const char *prog = "gloo_allreduce_perf";
constexpr double kGuardS = 600;    // -p wall-clock guard when -T is not given
constexpr int kDefaultTimeoutS = 120; // Gloo's per-operation timeout without -T
const char kStorePrefix[] = "gloo_allreduce_perf";

[[noreturn]] void fail(int rank, const char *what, const char *why) {
    fprintf(stderr, "%s: rank %d: %s failed: %s\n", prog, rank, what, why);
    fflush(stdout);
    fflush(stderr);
    _exit(1);
}

struct GlooCtx {
    std::shared_ptr<gloo::Context> ctx;
    int rank, nranks;
};

using Func = gloo::AllreduceOptions::Func;
// gloo/math.h overloads sum<T> & co.; this picks the (out, in1, in2, n) form.
using RawFunc = void (*)(void *, const void *, const void *, size_t);

template <typename T>
RawFunc reduce_fn(int op) {
    switch (op) {
    case PPU_SUM: return &gloo::sum<T>;
    case PPU_PROD: return &gloo::product<T>;
    case PPU_MAX: return &gloo::max<T>;
    case PPU_MIN: return &gloo::min<T>;
    default: return nullptr; // PPU_AVG: Gloo has no average
    }
}

/* One ring all-reduce of count elements of T; send == recv: in place (Gloo
 * then reads and writes the output buffer only). */
template <typename T>
void ring_allreduce(GlooCtx *c, const void *send, void *recv, size_t count, const Func &fn) {
    gloo::AllreduceOptions opts(c->ctx);
    opts.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
    opts.setOutput(static_cast<T *>(recv), count);
    if (send != recv) opts.setInput(static_cast<T *>(const_cast<void *>(send)), count);
    opts.setReduceFunction(fn);
    gloo::allreduce(opts);
}

/* Calls f(T()) with T the C++ type of datatype t; returns
 * false for a datatype Gloo cannot reduce (bfloat16). */
template <typename F>
bool with_type(int t, F &&f) {
    switch (t) {
    case PPU_INT8: f(int8_t()); return true;
    case PPU_UINT8: f(uint8_t()); return true;
    case PPU_INT32: f(int32_t()); return true;
    case PPU_UINT32: f(uint32_t()); return true;
    case PPU_INT64: f(int64_t()); return true;
    case PPU_UINT64: f(uint64_t()); return true;
    case PPU_FLOAT16: f(gloo::float16()); return true; // IEEE binary16, as perf_common's half
    case PPU_FLOAT32: f(float()); return true;
    case PPU_FLOAT64: f(double()); return true;
    default: return false;
    }
}

int be_supports(void *, int t, int op) {
    bool ok = false;
    if (!with_type(t, [&](auto x) { ok = op < 0 || reduce_fn<decltype(x)>(op) != nullptr; })) return 0;
    return ok;
}

int be_run(void *ctx, const void *send, void *recv, size_t count, int t, int op, int) {
    GlooCtx *c = static_cast<GlooCtx *>(ctx);
    try {
        bool ok = with_type(t, [&](auto x) {
            using T = decltype(x);
            RawFunc fn = reduce_fn<T>(op);
            if (!fn) fail(c->rank, "gloo::allreduce", "op not supported by Gloo");
            ring_allreduce<T>(c, send, recv, count, fn);
        });
        if (!ok) fail(c->rank, "gloo::allreduce", "datatype not supported by Gloo");
    } catch (const std::exception &e) {
        fail(c->rank, "gloo::allreduce (ring)", e.what());
    }
    return 0;
}

int be_reduce_double(void *ctx, double *v, size_t n, int is_max) {
    GlooCtx *c = static_cast<GlooCtx *>(ctx);
    try {
        ring_allreduce<double>(c, v, v, n, reduce_fn<double>(is_max ? PPU_MAX : PPU_SUM));
    } catch (const std::exception &e) {
        fail(c->rank, "gloo::allreduce (driver)", e.what());
    }
    return 0;
}

int be_barrier(void *ctx) {
    GlooCtx *c = static_cast<GlooCtx *>(ctx);
    try {
        gloo::BarrierOptions opts(c->ctx);
        gloo::barrier(opts);
    } catch (const std::exception &e) {
        fail(c->rank, "gloo::barrier", e.what());
    }
    return 0;
}

/* Connects rank of nranks through the FileStore in dir, runs the sweep. */
int run_rank(const perf_opts_t *o, const std::string &dir, int rank, int nranks) {
    GlooCtx c{nullptr, rank, nranks};
    std::chrono::seconds timeout(o->timeout_s > 0 ? o->timeout_s : kDefaultTimeoutS);
    try {
        gloo::rendezvous::FileStore files(dir);
        gloo::rendezvous::PrefixStore store(kStorePrefix, files);
        gloo::transport::tcp::attr attr;
        attr.hostname = "127.0.0.1";
        auto dev = gloo::transport::tcp::CreateDevice(attr);
        auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, nranks);
        ctx->setTimeout(timeout);
        ctx->connectFullMesh(store, dev);
        c.ctx = ctx;
    } catch (const std::exception &e) {
        fail(rank, "Gloo rendezvous (FileStore + TCP full mesh)", e.what());
    }
    perf_backend_t be = {"gloo", rank, nranks, &c, be_run, be_barrier, be_reduce_double, be_supports, nullptr, nullptr,
                         nullptr, nullptr, nullptr, nullptr};
    int rc = perf_run(o, &be, &perf_coll_allreduce);
    be_barrier(&c); // nobody tears down its pairs while a peer still reads
    c.ctx.reset();
    return rc;
}

/* rm -r of the store directory (FileStore keeps it flat, but be thorough). */
void remove_tree(const std::string &path) {
    if (DIR *d = opendir(path.c_str())) {
        while (struct dirent *e = readdir(d)) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            std::string p = path + "/" + e->d_name;
            struct stat st;
            if (lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
            else unlink(p.c_str());
        }
        closedir(d);
    }
    rmdir(path.c_str());
}

volatile sig_atomic_t g_stop = 0;
void on_stop(int sig) { g_stop = sig; }

/* -p N: a fresh store directory, N forked ranks, wait, clean up. No Gloo
 * object (and so no thread) exists in the parent when it forks. */
int run_local(const perf_opts_t *o) {
    int n = o->nprocs, rc = 0;
    const char *tmp = getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/gloo_perf.XXXXXX";
    if (!mkdtemp(&templ[0])) {
        fprintf(stderr, "%s: mkdtemp %s: %s\n", prog, templ.c_str(), strerror(errno));
        return 1;
    }
    const std::string dir = templ;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    pid_t *pids = static_cast<pid_t *>(calloc((size_t)n, sizeof *pids));
    if (!pids) { perror(prog); remove_tree(dir); return 1; }
    struct local_job { const perf_opts_t *o; const std::string *dir; int n; } job = {o, &dir, n};
    rc = perf_fork_ranks(prog, pids, n, [](int i, void *arg) -> int {
        const local_job *j = static_cast<const local_job *>(arg);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        return run_rank(j->o, *j->dir, i, j->n);
    }, &job);
    double guard = o->timeout_s > 0 ? o->timeout_s + 2.0 : kGuardS;
    int wrc = perf_wait_ranks(prog, pids, n, guard, &g_stop);
    if (rc == 0) rc = wrc;
    free(pids);
    remove_tree(dir);
    return rc;
}

int env_int(const char *a, const char *b, int *v) {
    const char *s = getenv(a);
    if ((!s || !*s) && b) s = getenv(b);
    if (!s || !*s) return 0;
    char *end;
    long x = strtol(s, &end, 10);
    if (*end || x < 0 || x > 1000000) return -1;
    *v = (int)x;
    return 1;
}

/* Under a launcher: rank and size from PPU_RANK / PPU_WORLD_SIZE or Open
 * MPI's variables, one store directory per mpirun job on this host. */
int run_launched(const perf_opts_t *o) {
    int rank = -1, size = -1;
    int hr = env_int("PPU_RANK", "OMPI_COMM_WORLD_RANK", &rank);
    int hs = env_int("PPU_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", &size);
    if (hr <= 0 || hs <= 0 || size < 1 || rank >= size) {
        fprintf(stderr, "%s: give -p NPROCS to fork local ranks, or run under mpirun "
                        "(OMPI_COMM_WORLD_RANK/SIZE or PPU_RANK/PPU_WORLD_SIZE)\n", prog);
        return 2;
    }
    std::string dir;
    if (const char *s = getenv("GLOO_PERF_STORE"); s && *s) {
        dir = s;
    } else {
        const char *job = getenv("PMIX_NAMESPACE");
        if (!job || !*job) job = getenv("OMPI_MCA_ess_base_jobid");
        if (!job || !*job) {
            fprintf(stderr, "%s: no mpirun job id (PMIX_NAMESPACE / OMPI_MCA_ess_base_jobid): "
                            "set GLOO_PERF_STORE to a directory shared by the ranks\n", prog);
            return 2;
        }
        std::string key = job;
        for (char &ch : key)
            if (!isalnum((unsigned char)ch) && ch != '-' && ch != '_') ch = '_';
        dir = "/tmp/gloo_perf." + std::to_string(getuid()) + "." + key;
    }
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: mkdir %s: %s\n", prog, dir.c_str(), strerror(errno));
        return 1;
    }
    struct stat st;
    if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
        fprintf(stderr, "%s: %s is not a directory owned by this user\n", prog, dir.c_str());
        return 1;
    }
    int rc = run_rank(o, dir, rank, size); // ends with a barrier: the store is no longer read
    if (rank == 0 && !getenv("GLOO_PERF_STORE")) remove_tree(dir);
    return rc;
}

} // namespace

int main(int argc, char **argv) {
    if (argc > 0) prog = argv[0];
    perf_opts_t opts;
    int rc = perf_parse_args(argc, argv, &opts);
    if (rc) return rc == 1 ? 0 : rc; // 1: -h
    return opts.nprocs ? run_local(&opts) : run_launched(&opts);
}
