/* Multi-process test harness: fork n ranks that share one unique id, run a
 * function in each, and report how many failed. Ranks still running after
 * the time limit are killed, so a hang fails the test instead of stalling
 * the suite. */
#ifndef PPU_TEST_RANKS_H
#define PPU_TEST_RANKS_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ppuccl.h"

typedef int (*rank_fn)(ppu_comm_t comm, int rank, int nranks, void *arg);

/* Runs fn in n forked ranks; returns the number of ranks that failed. */
static inline int run_ranks(int n, rank_fn fn, void *arg, int timeout_s)
{
    ppu_unique_id_t id;
    if (ppu_get_unique_id(&id) != PPU_SUCCESS) {
        fprintf(stderr, "ppu_get_unique_id: %s\n", ppu_get_last_error(NULL));
        return n;
    }
    pid_t pids[64];
    for (int r = 0; r < n; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            ppu_comm_t comm;
            if (ppu_comm_init_rank(&comm, n, id, r) != PPU_SUCCESS) {
                fprintf(stderr, "rank %d init: %s\n", r, ppu_get_last_error(NULL));
                _exit(2);
            }
            int rc = fn(comm, r, n, arg);
            if (ppu_comm_destroy(comm) != PPU_SUCCESS && rc == 0)
                rc = 3;
            fflush(stderr);
            _exit(rc);
        }
    }
    int failed = 0, left = n;
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

#endif
