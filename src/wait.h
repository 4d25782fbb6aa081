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
    uint64_t spin; /* polls before yielding */
};

/* One idle round; returns nonzero every 256 rounds so the caller can check
 * its deadline and abort flag without reading the clock on every poll. */
static inline int ppu_wait_idle(struct ppu_waiter *w)
{
    uint64_t n = ++w->polls;
    if (n < w->spin) {
        ppu_cpu_relax();
    } else if (n < w->spin + 200000) {
        sched_yield(); /* oversubscribed cores: let the peer run */
    } else {
        struct timespec ts = {0, 50000}; /* long waits (~0.1 s+): 50 us naps */
        nanosleep(&ts, NULL);
    }
    return (n & 255) == 0;
}

static inline void ppu_wait_reset(struct ppu_waiter *w) { w->polls = 0; }

#endif
