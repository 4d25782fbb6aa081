/* PPU_SIM_FAULT: faults injected into the simulated links, to see that
 * every rank returns a clear error instead of hanging. A comma-separated
 * list of
 *   link=A-B:down@op=K       from collective K on, link A->B carries nothing:
 *                            both ends fail the call naming the link
 *   link=A-B:delay_us=D      every message on A->B waits D us before it is sent
 *   link=A-B:corrupt@op=K    in collective K, every message on A->B arrives
 *                            with one bit flipped (caught with PPU_CHECKSUM=1)
 *   link=A-B:gbps=G          A->B carries at most G GB/s (a slow link, as
 *                            ppu-diag must find one; G > 0, fractions allowed)
 *   rank=R:exit@op=K         rank R's process exits as collective K starts
 * Collectives are counted per communicator from 1. Ranks are ranks of the
 * communicator. Every rank reads the same list, so both ends of a link know
 * it is down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "comm.h"
#include "fault.h"
#include "util/param.h"

ppu_result_t ppu_fault_parse(struct ppu_comm *comm)
{
    return ppu_fault_parse_str(comm, ppu_param_str(PPU_P_SIM_FAULT));
}

ppu_result_t ppu_fault_parse_str(struct ppu_comm *comm, const char *spec)
{
    comm->nfaults = 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[96];
        if (len >= sizeof item)
            return ppu_fail(comm, PPU_INVALID_ARGUMENT, "PPU_SIM_FAULT: '%.*s' is too long",
                            (int)len, p);
        memcpy(item, p, len);
        item[len] = '\0';
        if (comm->nfaults == PPU_MAX_FAULTS)
            return ppu_fail(comm, PPU_INVALID_ARGUMENT, "PPU_SIM_FAULT: more than %d faults",
                            PPU_MAX_FAULTS);
        struct ppu_fault *f = &comm->faults[comm->nfaults];
        long long a = -1, b = -1, v = 0; /* not int: "4294967297" must not read as 1 */
        double g = 0;
        int n = 0;
        memset(f, 0, sizeof *f);
        if (sscanf(item, "link=%lld-%lld:down@op=%lld%n", &a, &b, &v, &n) == 3 && !item[n]) {
            *f = (struct ppu_fault){PPU_FAULT_DOWN, a, b, (uint64_t)v, 0, 0};
        } else if (sscanf(item, "link=%lld-%lld:delay_us=%lld%n", &a, &b, &v, &n) == 3 &&
                   !item[n]) {
            *f = (struct ppu_fault){PPU_FAULT_DELAY, a, b, 0, (uint64_t)v, 0};
        } else if (sscanf(item, "link=%lld-%lld:corrupt@op=%lld%n", &a, &b, &v, &n) == 3 &&
                   !item[n]) {
            *f = (struct ppu_fault){PPU_FAULT_CORRUPT, a, b, (uint64_t)v, 0, 0};
        } else if (sscanf(item, "link=%lld-%lld:gbps=%lf%n", &a, &b, &g, &n) == 3 && !item[n]) {
            if (!(g > 0 && g <= 1e9)) /* also NaN */
                return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                                "PPU_SIM_FAULT: '%s': G must be above 0 and at most 1e9 GB/s",
                                item);
            *f = (struct ppu_fault){PPU_FAULT_GBPS, a, b, 0, 0, g};
        } else if (sscanf(item, "rank=%lld:exit@op=%lld%n", &a, &v, &n) == 2 && !item[n]) {
            *f = (struct ppu_fault){PPU_FAULT_EXIT, a, -1, (uint64_t)v, 0, 0};
        } else {
            return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                            "PPU_SIM_FAULT: '%s' is not link=A-B:down@op=K, "
                            "link=A-B:delay_us=D, link=A-B:corrupt@op=K, link=A-B:gbps=G or "
                            "rank=R:exit@op=K",
                            item);
        }
        if (a < 0 || a >= comm->nranks || (f->kind != PPU_FAULT_EXIT &&
                                           (b < 0 || b >= comm->nranks || a == b)))
            return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                            "PPU_SIM_FAULT: '%s' names a rank outside 0..%d", item,
                            comm->nranks - 1);
        if (v < 0)
            return ppu_fail(comm, PPU_INVALID_ARGUMENT, "PPU_SIM_FAULT: '%s': K or D is negative",
                            item);
        comm->nfaults++;
        p += len + (end ? 1 : 0);
    }
    return PPU_SUCCESS;
}

void ppu_fault_at_call(struct ppu_comm *comm)
{
    for (int i = 0; i < comm->nfaults; i++) {
        const struct ppu_fault *f = &comm->faults[i];
        if (f->kind == PPU_FAULT_EXIT && f->a == comm->rank && comm->coll_seq == f->op) {
            fprintf(stderr, "ppuccl: rank %d exits at collective #%llu (PPU_SIM_FAULT)\n",
                    comm->rank, (unsigned long long)f->op);
            fflush(stderr);
            _exit(99);
        }
    }
}

int ppu_fault_link_down(const struct ppu_comm *comm, int from, int to)
{
    for (int i = 0; i < comm->nfaults; i++) {
        const struct ppu_fault *f = &comm->faults[i];
        if (f->kind == PPU_FAULT_DOWN && f->a == from && f->b == to && comm->coll_seq >= f->op)
            return 1;
    }
    return 0;
}

int ppu_fault_link_corrupt(const struct ppu_comm *comm, int from, int to)
{
    for (int i = 0; i < comm->nfaults; i++) {
        const struct ppu_fault *f = &comm->faults[i];
        if (f->kind == PPU_FAULT_CORRUPT && f->a == from && f->b == to && comm->coll_seq == f->op)
            return 1;
    }
    return 0;
}

uint64_t ppu_fault_delay_us(const struct ppu_comm *comm, int from, int to)
{
    uint64_t d = 0;
    for (int i = 0; i < comm->nfaults; i++) {
        const struct ppu_fault *f = &comm->faults[i];
        if (f->kind == PPU_FAULT_DELAY && f->a == from && f->b == to)
            d += f->delay_us;
    }
    return d;
}

double ppu_fault_gbps(const struct ppu_comm *comm, int from, int to)
{
    double g = 0;
    for (int i = 0; i < comm->nfaults; i++) {
        const struct ppu_fault *f = &comm->faults[i];
        if (f->kind == PPU_FAULT_GBPS && f->a == from && f->b == to && (g == 0 || f->gbps < g))
            g = f->gbps;
    }
    return g;
}
