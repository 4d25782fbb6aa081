/* ppu-diag: cluster bring-up checks that name the bad chip, link or NIC,
 * and (`ppu-diag status`) what the ppuccl jobs on this host are doing.
 *
 *   ppu-diag -p 8 [--expect-sim fullmesh8] [--json F] [--png F]   fork 8 ranks
 *   mpirun -np 16 ppu-diag [...]                                   one rank a process
 *   ppu-diag status [--json F]                                     the health query
 *
 * Every rank runs the same checks in the same order (diag.c); rank 0
 * prints. Exit code: 0 healthy, 1 findings, 2 could not run. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tools/tool_util.h"
#include "diag.h"

static int usage(FILE *f)
{
    fprintf(f,
            "usage: ppu-diag [-p N] [--expect FILE | --expect-sim PRESET] [--threshold T]\n"
            "                [--bytes B] [--passes K] [--checks LIST] [--json FILE] [--png FILE]\n"
            "                [--guard S]\n"
            "       ppu-diag status [--interval S] [--json FILE]\n"

            "  -p N              fork N local ranks (else one rank a process: mpirun,\n"
            "                    or PPU_RANK/PPU_NRANKS/PPU_ROOT_ADDR)\n"
            "  --expect FILE     the wiring to expect, a topology file (TOPOLOGY_FILE.md)\n"
            "  --expect-sim P    the wiring to expect, a preset (fullmesh8, server16, ...)\n"
            "  --threshold T     flag a link below T x the median of links like it (0.5)\n"
            "  --bytes B         bytes a link measurement moves (default 8M; K, M suffixes)\n"
            "  --passes K        measurements of every link before comparing (3)\n"
            "  --checks LIST     topo,icn,net,coll (default all)\n"
            "  --json FILE       every measurement and finding\n"
            "  --png FILE        heatmap of per-link bandwidth (matplotlib)\n"
            "  --guard S         with -p: kill the ranks after S seconds (default 300)\n"
            "status: every ppuccl communicator of this user on this host, the ranks holding\n"
            "  the others up first, then each rank's call and the peer it waits on\n");
    return f == stderr ? 2 : 0;
}

static int parse_checks(const char *s, int *mask)
{
    *mask = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "topo"))
            *mask |= DIAG_TOPO;
        else if (!strcmp(t, "icn"))
            *mask |= DIAG_ICN;
        else if (!strcmp(t, "net"))
            *mask |= DIAG_NET;
        else if (!strcmp(t, "coll"))
            *mask |= DIAG_COLL;
        else
            return -1;
    }
    return *mask ? 0 : -1;
}

/* -p N: fork N ranks on one unique id; the verdict is rank 0's exit code.
 * Rank 0 makes the id (its bootstrap root thread lives there) and writes
 * it to the others' pipes: the parent forks before any thread exists,
 * which keeps fork() safe (under sanitizers too). */
static int local_rank(const struct diag_opts *o, int r, int n, int (*pipes)[2])
{
    ppu_unique_id_t id;
    if (r == 0) {
        if (ppu_get_unique_id(&id) != PPU_SUCCESS) {
            fprintf(stderr, "ppu-diag: could not run: ppu_get_unique_id: %s\n",
                    ppu_get_last_error(NULL));
            return DIAG_EXIT_CANNOT;
        }
        for (int k = 1; k < n; k++)
            if (write(pipes[k][1], &id, sizeof id) != (ssize_t)sizeof id)
                return DIAG_EXIT_CANNOT;
    } else if (read(pipes[r][0], &id, sizeof id) != (ssize_t)sizeof id) {
        fprintf(stderr, "ppu-diag: could not run: rank %d got no id from rank 0\n", r);
        return DIAG_EXIT_CANNOT;
    }
    ppu_comm_t comm;
    ppu_result_t res = ppu_comm_init_rank(&comm, n, id, r);
    return res == PPU_SUCCESS ? diag_rank(o, comm) : diag_init_failed(res);
}

static int run_local(struct diag_opts *o)
{
    int n = o->nprocs;
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    int (*pipes)[2] = calloc((size_t)n, sizeof *pipes);
    if (!pids || !pipes) {
        free(pids);
        free(pipes);
        return DIAG_EXIT_CANNOT;
    }
    for (int r = 0; r < n; r++)
        if (pipe(pipes[r]) != 0) {
            fprintf(stderr, "ppu-diag: could not run: pipe: %s\n", strerror(errno));
            return DIAG_EXIT_CANNOT;
        }
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < n; r++) {
        pid_t p = fork();
        if (p < 0) {
            fprintf(stderr, "ppu-diag: could not run: fork: %s\n", strerror(errno));
            for (int k = 0; k < r; k++)
                kill(pids[k], SIGKILL);
            free(pids);
            return DIAG_EXIT_CANNOT;
        }
        if (p == 0) {
            int rc = local_rank(o, r, n, pipes);
            fflush(stdout);
            fflush(stderr);
            _exit(rc);
        }
        pids[r] = p;
    }
    for (int r = 0; r < n; r++) {
        close(pipes[r][0]);
        close(pipes[r][1]);
    }
    free(pipes);
    int rc0 = DIAG_EXIT_CANNOT, left = n, worst = 0;
    time_t t0 = time(NULL);
    while (left > 0) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p > 0) {
            for (int r = 0; r < n; r++)
                if (pids[r] == p) {
                    int code = WIFEXITED(st) ? WEXITSTATUS(st) : DIAG_EXIT_CANNOT;
                    if (!WIFEXITED(st))
                        fprintf(stderr, "ppu-diag: rank %d killed by signal %d\n", r,
                                WTERMSIG(st));
                    if (r == 0)
                        rc0 = code;
                    if (code > worst)
                        worst = code;
                    pids[r] = 0;
                    left--;
                }
            continue;
        }
        if (p < 0 && errno != EINTR)
            break;
        if (time(NULL) - t0 > o->guard_s) {
            fprintf(stderr, "ppu-diag: could not run: %d rank(s) still running after %d s; "
                    "killing them\n", left, o->guard_s);
            for (int r = 0; r < n; r++)
                if (pids[r] > 0)
                    kill(pids[r], SIGKILL);
            worst = DIAG_EXIT_CANNOT;
            t0 = time(NULL) + 3600; /* reap only */
        }
        struct timespec nap = {0, 20 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    free(pids);
    /* a rank that could not run makes the whole run one that could not */
    return worst == DIAG_EXIT_CANNOT ? DIAG_EXIT_CANNOT : rc0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "status"))
        return diag_status_main(argc - 1, argv + 1);
    struct diag_opts o = {.threshold = 0.5, .bytes = 8u << 20, .passes = 3,
                          .checks = DIAG_TOPO | DIAG_ICN | DIAG_NET | DIAG_COLL, .guard_s = 300};
    enum { O_EXPECT = 256, O_EXPECT_SIM, O_THRESH, O_BYTES, O_PASSES, O_CHECKS, O_JSON, O_PNG,
           O_GUARD };
    static const struct option lo[] = {
        {"expect", 1, 0, O_EXPECT}, {"expect-sim", 1, 0, O_EXPECT_SIM},
        {"threshold", 1, 0, O_THRESH}, {"bytes", 1, 0, O_BYTES}, {"passes", 1, 0, O_PASSES},
        {"checks", 1, 0, O_CHECKS}, {"json", 1, 0, O_JSON}, {"png", 1, 0, O_PNG},
        {"guard", 1, 0, O_GUARD}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "p:h", lo, NULL)) != -1) {
        switch (c) {
        case 'p':
            o.nprocs = (int)strtol(optarg, &end, 10);
            if (*end || o.nprocs < 1 || o.nprocs > 4096) {
                fprintf(stderr, "ppu-diag: -p %s: give 1..4096 ranks\n", optarg);
                return 2;
            }
            break;
        case O_EXPECT: o.expect_file = optarg; break;
        case O_EXPECT_SIM: o.expect_sim = optarg; break;
        case O_THRESH:
            o.threshold = strtod(optarg, &end);
            if (*end || !(o.threshold > 0 && o.threshold < 1)) {
                fprintf(stderr, "ppu-diag: --threshold %s: give a fraction between 0 and 1\n",
                        optarg);
                return 2;
            }
            break;
        case O_BYTES:
            if (ppu_tool_parse_size(optarg, &o.bytes) || o.bytes < 1 || o.bytes > (1u << 30)) {
                fprintf(stderr, "ppu-diag: --bytes %s: give 1 to 1G (K, M, G suffixes)\n",
                        optarg);
                return 2;
            }
            break;
        case O_PASSES:
            o.passes = (int)strtol(optarg, &end, 10);
            if (*end || o.passes < 1 || o.passes > DIAG_MAX_PASSES) {
                fprintf(stderr, "ppu-diag: --passes %s: give 1..%d\n", optarg, DIAG_MAX_PASSES);
                return 2;
            }
            break;
        case O_CHECKS:
            if (parse_checks(optarg, &o.checks)) {
                fprintf(stderr, "ppu-diag: --checks %s: a list of topo, icn, net, coll\n",
                        optarg);
                return 2;
            }
            break;
        case O_JSON: o.json = optarg; break;
        case O_PNG: o.png = optarg; break;
        case O_GUARD:
            o.guard_s = (int)strtol(optarg, &end, 10);
            if (*end || o.guard_s < 1) {
                fprintf(stderr, "ppu-diag: --guard %s: give seconds, 1 or more\n", optarg);
                return 2;
            }
            break;
        case 'h': return usage(stdout);
        default: return usage(stderr);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ppu-diag: unexpected argument '%s'\n", argv[optind]);
        return usage(stderr);
    }
    if (o.expect_file && o.expect_sim) {
        fprintf(stderr, "ppu-diag: give --expect or --expect-sim, not both\n");
        return 2;
    }
    /* a dead link must end the run with its name, not wait the library's
     * 300 s default */
    setenv("PPU_TIMEOUT_MS", "20000", 0);
    if (o.nprocs)
        return run_local(&o);
    ppu_comm_t comm;
    ppu_result_t r = ppu_comm_init_env(&comm);
    if (r != PPU_SUCCESS)
        return diag_init_failed(r);
    return diag_rank(&o, comm);
}
