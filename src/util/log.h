/* Logging: PPU_DEBUG=WARN|INFO|TRACE, PPU_DEBUG_SUBSYS, PPU_DEBUG_FILE.
 * The level check happens before any formatting, so disabled logs cost a
 * load and a branch. Every line: "host:pid:rank [subsys] LEVEL message". */
#ifndef PPU_LOG_H
#define PPU_LOG_H

#include <stdarg.h>

enum ppu_log_level { PPU_LOG_NONE = 0, PPU_LOG_WARN = 1, PPU_LOG_INFO = 2, PPU_LOG_TRACE = 3 };

enum ppu_log_subsys {
    PPU_SUB_INIT = 1 << 0,
    PPU_SUB_COLL = 1 << 1,
    PPU_SUB_NET = 1 << 2,
    PPU_SUB_TOPO = 1 << 3,
    PPU_SUB_SHM = 1 << 4,
    PPU_SUB_BOOT = 1 << 5,
    PPU_SUB_ENV = 1 << 6,
    PPU_SUB_ALL = 0x7f
};

extern int ppu_log_level_;  /* -1 until configured */
extern int ppu_log_mask_;

void ppu_log_configure(void);
void ppu_log_emit(int level, int subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The rank printed in this thread's log prefix (-1: none). */
void ppu_log_set_rank(int rank);

static inline int ppu_log_on(int level, int subsys)
{
    if (ppu_log_level_ < 0)
        ppu_log_configure();
    return level <= ppu_log_level_ && (subsys & ppu_log_mask_);
}

#define PPU_LOG(level, subsys, ...)                                  \
    do {                                                             \
        if (ppu_log_on((level), (subsys)))                           \
            ppu_log_emit((level), (subsys), __VA_ARGS__);            \
    } while (0)
#define PPU_WARN(subsys, ...) PPU_LOG(PPU_LOG_WARN, subsys, __VA_ARGS__)
#define PPU_INFO(subsys, ...) PPU_LOG(PPU_LOG_INFO, subsys, __VA_ARGS__)
#ifdef PPU_ENABLE_TRACE
#define PPU_TRACE(subsys, ...) PPU_LOG(PPU_LOG_TRACE, subsys, __VA_ARGS__)
#else
#define PPU_TRACE(subsys, ...) do { } while (0)
#endif

#endif
