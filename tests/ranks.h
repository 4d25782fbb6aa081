/* Multi-process test harness: fork n ranks that share one unique id, run a
 * function in each, and report how many failed. Ranks still running after
 * the time limit are killed, so a hang fails the test instead of stalling
 * the suite. */
#ifndef PPU_TEST_RANKS_H
#define PPU_TEST_RANKS_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ppuccl.h"

/* Sanitizer builds run several times slower: their time limits scale. */
#ifndef PPU_TEST_SLOWDOWN
#define PPU_TEST_SLOWDOWN 1
#endif

typedef int (*rank_fn)(ppu_comm_t comm, int rank, int nranks, void *arg);

/* Rank r's side of the id hand-off: rank 0 creates the id (its bootstrap
 * root thread then lives in rank 0) and writes it to every other rank's
 * pipe. Forking before any thread exists keeps fork() safe even under
 * sanitizers, whose allocators are not fork-safe with threads running. */
static inline int ranks_get_id(int r, int n, int (*pipes)[2], ppu_unique_id_t *id)
{
    if (r == 0) {
        if (ppu_get_unique_id(id) != PPU_SUCCESS)
            return -1;
        for (int k = 1; k < n; k++)
            if (write(pipes[k][1], id, sizeof *id) != (ssize_t)sizeof *id)
                return -1;
        return 0;
    }
    return read(pipes[r][0], id, sizeof *id) == (ssize_t)sizeof *id ? 0 : -1;
}

/* Forks n ranks that share one unique id: given_id, or else one that rank
 * 0 makes and passes on. Rank r exits with child(r, n, &id, arg). Fills
 * pids[0..n); returns 0, or -1 when it could not start them. */
typedef int (*rank_child_fn)(int rank, int nranks, const ppu_unique_id_t *id, void *arg);

static inline int ranks_fork(int n, const ppu_unique_id_t *given_id, rank_child_fn child,
                             void *arg, pid_t *pids)
{
    int pipes[64][2];
    if (n > 64)
        return -1;
    for (int r = 0; r < n; r++)
        if (pipe(pipes[r]) != 0)
            return -1;
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < n; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            ppu_unique_id_t id;
            if (given_id)
                id = *given_id;
            else if (ranks_get_id(r, n, pipes, &id) != 0) {
                fprintf(stderr, "rank %d: no unique id: %s\n", r, ppu_get_last_error(NULL));
                _exit(2);
            }
            int rc = child(r, n, &id, arg);
            fflush(stderr);
            _exit(rc);
        }
    }
    for (int r = 0; r < n; r++) {
        close(pipes[r][0]);
        close(pipes[r][1]);
    }
    return 0;
}

struct ranks_run {
    rank_fn fn;
    void *arg;
};

/* A rank of run_ranks_id: init, fn, destroy. */
static inline int ranks_run_child(int r, int n, const ppu_unique_id_t *id, void *arg)
{
    const struct ranks_run *rr = arg;
    ppu_comm_t comm;
    if (ppu_comm_init_rank(&comm, n, *id, r) != PPU_SUCCESS) {
        fprintf(stderr, "rank %d init: %s\n", r, ppu_get_last_error(NULL));
        return 2;
    }
    int rc = rr->fn(comm, r, n, rr->arg);
    if (ppu_comm_destroy(comm) != PPU_SUCCESS && rc == 0)
        rc = 3;
    return rc;
}

/* Runs fn in n forked ranks; returns the number of ranks that failed. With
 * given_id NULL the ranks make their own id; otherwise they use it. */
static inline int run_ranks_id(int n, const ppu_unique_id_t *given_id, rank_fn fn, void *arg,
                               int timeout_s)
{
    pid_t pids[64];
    struct ranks_run rr = {fn, arg};
    if (ranks_fork(n, given_id, ranks_run_child, &rr, pids) != 0)
        return n;
    int failed = 0, left = n;
    timeout_s *= PPU_TEST_SLOWDOWN;
    time_t end = time(NULL) + timeout_s;
    while (left > 0) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p > 0) {
            left--;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "rank pid %d failed (%s %d)\n", (int)p,
                        WIFEXITED(st) ? "exit" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
                failed++;
            }
        } else if (time(NULL) > end) {
            fprintf(stderr, "ranks still running after %d s: killing them\n", timeout_s);
            for (int r = 0; r < n; r++)
                kill(pids[r], SIGKILL);
            while (waitpid(-1, &st, 0) > 0)
                ;
            return failed + left;
        } else {
            usleep(2000);
        }
    }
    return failed;
}

static inline int run_ranks(int n, rank_fn fn, void *arg, int timeout_s)
{
    return run_ranks_id(n, NULL, fn, arg, timeout_s);
}

/* A rank of ranks_expect_init_error: 0 if init fails as it should. */
static inline int ranks_init_error_child(int r, int n, const ppu_unique_id_t *id, void *arg)
{
    const char *want = arg;
    ppu_comm_t c;
    ppu_result_t res = ppu_comm_init_rank(&c, n, *id, r);
    const char *msg = ppu_get_last_error(NULL);
    if (res == PPU_SUCCESS || !strstr(msg, want)) {
        fprintf(stderr, "rank %d: result %d '%s' (wanted '%s')\n", r, res, msg, want);
        return 1;
    }
    return res == PPU_INVALID_ARGUMENT || res == PPU_INVALID_USAGE ? 0 : 3;
}

/* n ranks whose init must fail, as an invalid argument or usage, with want
 * in the error sentence; returns the number of ranks that did not. */
static inline int ranks_expect_init_error(int n, const char *want)
{
    pid_t pids[64];
    if (ranks_fork(n, NULL, ranks_init_error_child, (void *)want, pids) != 0)
        return n;
    int bad = 0;
    for (int r = 0; r < n; r++) {
        int st;
        waitpid(pids[r], &st, 0);
        bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    return bad;
}

#endif
