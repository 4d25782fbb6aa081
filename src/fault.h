/* PPU_SIM_FAULT: injected link and rank faults (fault.c). */
#ifndef PPU_FAULT_H
#define PPU_FAULT_H

#include <stdint.h>
#include "ppuccl.h"

struct ppu_comm;

#define PPU_MAX_FAULTS 16
enum ppu_fault_kind {
    PPU_FAULT_DOWN = 1,
    PPU_FAULT_DELAY,
    PPU_FAULT_EXIT,
    PPU_FAULT_CORRUPT,
    PPU_FAULT_GBPS
};

struct ppu_fault {
    enum ppu_fault_kind kind;
    int a, b;       /* link a->b, or rank a */
    uint64_t op;    /* from this collective (1-based) */
    uint64_t delay_us;
    double gbps;    /* PPU_FAULT_GBPS: the link's bandwidth, GB/s */
};

/* Read PPU_SIM_FAULT into comm->faults; a malformed entry is an error. */
ppu_result_t ppu_fault_parse(struct ppu_comm *comm);
/* The same for the list spec (a PPU_SIM_FAULT value); uses comm->nranks. */
ppu_result_t ppu_fault_parse_str(struct ppu_comm *comm, const char *spec);
/* As a collective starts: a rank told to exit now does. */
void ppu_fault_at_call(struct ppu_comm *comm);
/* Is link from->to down at the current collective? */
int ppu_fault_link_down(const struct ppu_comm *comm, int from, int to);
/* Does link from->to flip a bit of each message in the current collective? */
int ppu_fault_link_corrupt(const struct ppu_comm *comm, int from, int to);
/* Extra delay for each message on from->to. */
uint64_t ppu_fault_delay_us(const struct ppu_comm *comm, int from, int to);
/* The bandwidth from->to is limited to (GB/s), or 0 when it is not. */
double ppu_fault_gbps(const struct ppu_comm *comm, int from, int to);

#endif
