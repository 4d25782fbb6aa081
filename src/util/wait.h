/* Polling a peer: spin briefly, then yield, then sleep, so 16 ranks on 2
 * cores still make progress. Every wait has a deadline. */
#ifndef PPU_WAIT_H
#define PPU_WAIT_H

#include <sched.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t ppu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Milliseconds until deadline (ppu_now_ns time) for poll(): 0 once it has
 * passed, rounded up, at most 1000 s. */
static inline int ppu_ms_until(uint64_t deadline)
{
    uint64_t now = ppu_now_ns();
    if (now >= deadline)
        return 0;
    uint64_t ms = (deadline - now + 999999) / 1000000;
    return ms > 1000000 ? 1000000 : (int)ms;
}

static inline void ppu_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

struct ppu_waiter {
    uint64_t polls;
    uint64_t spin;   /* polls before yielding */
    uint64_t yields; /* then yields before napping (0: 200,000) */
    uint64_t nap_ns, nap_max_ns; /* naps double from 50 us up to nap_max_ns (0: 50 us) */
};

/* One idle round; returns nonzero every 256 rounds so the caller can check
 * its deadline and abort flag without reading the clock on every poll.
 * Many ranks a core (hundreds on this 2-core host) wait best by sleeping
 * soon and longer: a yielding rank is still runnable and takes its turn
 * from the ranks that have work. */
static inline int ppu_wait_idle(struct ppu_waiter *w)
{
    uint64_t n = ++w->polls, yields = w->yields ? w->yields : 200000;
    if (n < w->spin) {
        ppu_cpu_relax();
    } else if (n < w->spin + yields) {
        sched_yield(); /* oversubscribed cores: let the peer run */
    } else {
        uint64_t nap = w->nap_ns ? w->nap_ns : 50000, cap = w->nap_max_ns ? w->nap_max_ns : 50000;
        struct timespec ts = {(time_t)(nap / 1000000000ull), (long)(nap % 1000000000ull)};
        nanosleep(&ts, NULL); /* long waits (~0.1 s+): 50 us naps, or longer ones */
        w->nap_ns = nap * 2 < cap ? nap * 2 : cap;
    }
    return (n & 255) == 0;
}

static inline void ppu_wait_reset(struct ppu_waiter *w)
{
    w->polls = 0;
    w->nap_ns = 0;
}

#endif
