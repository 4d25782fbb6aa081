/* fault_matrix: inject each kind of fault into a 4-rank all-reduce job and
 * print, per rank, what its calls returned, how long its failing call
 * took, and what the job left in /dev/shm. Not a test (test_timeout checks
 * the same cases); a table for notes and for people bringing up a cluster.
 *
 *   build/bin/fault_matrix            every case
 *   build/bin/fault_matrix SPEC...    PPU_SIM_FAULT specs of your own */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ppuccl.h"

enum { NR = 4, COUNT = 100001, CALLS = 6, MSG = 200 };

struct rank_out {
    int done, calls, result, wrong;
    double fail_s; /* duration of the call that failed */
    char msg[MSG];
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int shm_segments(void)
{
    int n = 0;
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strncmp(e->d_name, "ppuccl-", 7) == 0;
    if (d)
        closedir(d);
    return n;
}

static void rank_main(int rank, ppu_unique_id_t id, struct rank_out *out)
{
    ppu_comm_t comm;
    if (ppu_comm_init_rank(&comm, NR, id, rank) != PPU_SUCCESS) {
        snprintf(out->msg, MSG, "init: %s", ppu_get_last_error(NULL));
        out->result = -1;
        out->done = 1;
        _exit(1);
    }
    float *v = malloc(COUNT * sizeof *v);
    ppu_result_t r = PPU_SUCCESS;
    for (int it = 0; it < CALLS && r == PPU_SUCCESS; it++) {
        for (int i = 0; i < COUNT; i++)
            v[i] = (float)(rank + i % 3);
        double t0 = now_s();
        r = ppu_allreduce(v, v, COUNT, PPU_FLOAT32, PPU_SUM, comm, NULL);
        out->fail_s = now_s() - t0;
        out->calls = it + 1;
        for (int i = 0; r == PPU_SUCCESS && i < COUNT; i++)
            out->wrong += v[i] != (float)(NR * (NR - 1) / 2 + NR * (i % 3));
    }
    out->result = r;
    snprintf(out->msg, MSG, "%s", r == PPU_SUCCESS ? "" : ppu_get_last_error(comm));
    out->done = 1;
    usleep(300 * 1000); /* the others must not learn of the fault by our exit */
    ppu_comm_destroy(comm);
    free(v);
    _exit(0);
}

static void run_case(const char *spec, const char *extra)
{
    struct rank_out *outs = mmap(NULL, NR * sizeof *outs, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(outs, 0, NR * sizeof *outs);
    int shm_before = shm_segments();
    ppu_unique_id_t id;
    pid_t pid = fork();
    if (pid == 0) { /* a job: its own parameters, its own id */
        setenv("PPU_SIM_FAULT", spec, 1);
        setenv("PPU_TIMEOUT_MS", "20000", 1);
        if (extra) {
            char buf[200];
            snprintf(buf, sizeof buf, "%s", extra);
            for (char *kv = strtok(buf, " "); kv; kv = strtok(NULL, " ")) {
                char *eq = strchr(kv, '=');
                if (eq) {
                    *eq = '\0';
                    setenv(kv, eq + 1, 1);
                }
            }
        }
        if (ppu_get_unique_id(&id) != PPU_SUCCESS)
            _exit(1);
        pid_t ranks[NR];
        for (int r = 0; r < NR; r++)
            if ((ranks[r] = fork()) == 0)
                rank_main(r, id, &outs[r]);
        for (int r = 0; r < NR; r++)
            waitpid(ranks[r], NULL, 0);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    printf("\n### PPU_SIM_FAULT=%s%s%s\n", spec, extra ? " " : "", extra ? extra : "");
    printf("| rank | calls | returned | time of last call (s) | wrong values | message |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int r = 0; r < NR; r++) {
        const struct rank_out *o = &outs[r];
        if (!o->done) {
            printf("| %d | %d | process exited | - | - | - |\n", r, o->calls);
            continue;
        }
        printf("| %d | %d | %s | %.3f | %d | %.160s |\n", r, o->calls,
               o->result < 0 ? "init failed" : ppu_get_error_string((ppu_result_t)o->result),
               o->fail_s, o->wrong, o->msg);
    }
    printf("left in /dev/shm: %d segment(s)\n", shm_segments() - shm_before);
    munmap(outs, NR * sizeof *outs);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run_case(argv[i], NULL);
        return 0;
    }
    run_case("link=1-2:down@op=2", "PPU_ALGO=twoshot");
    run_case("link=1-2:down@op=2", "PPU_ALGO=ring");
    run_case("link=0-1:delay_us=2000,link=3-2:delay_us=500", NULL);
    run_case("link=1-2:corrupt@op=3", "PPU_ALGO=twoshot PPU_CHECKSUM=1");
    run_case("link=1-2:corrupt@op=3", "PPU_ALGO=ring PPU_PROTO=ll PPU_CHUNK_SIZE=4096 PPU_CHECKSUM=1");
    run_case("link=1-2:corrupt@op=3", "PPU_ALGO=twoshot PPU_CHECKSUM=0");
    run_case("rank=2:exit@op=3", NULL);
    return 0;
}
