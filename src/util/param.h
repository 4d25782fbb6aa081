/* Every PPU_* environment parameter, declared once in param.c with its
 * default, what it allows (kind, range, choices) and help text; read and
 * checked once, on one path. A value the table refuses is an error at
 * init (ppu_param_check: PPU_INVALID_ARGUMENT, a sentence naming the
 * parameter and what it allows), never clamped; until then the default is
 * in force. Overrides are logged at INFO (ENV), secrets without their
 * value. */
#ifndef PPU_PARAM_H
#define PPU_PARAM_H

#include <stddef.h>

#include "ppuccl.h"

enum ppu_param {
    PPU_P_DEBUG,
    PPU_P_DEBUG_SUBSYS,
    PPU_P_DEBUG_FILE,
    PPU_P_TIMEOUT_MS,
    PPU_P_BOOTSTRAP_TIMEOUT_MS,
    PPU_P_SOCKET_IFNAME,
    PPU_P_NET,
    PPU_P_SOCKET_NSOCKS,
    PPU_P_SOCKET_NTHREADS,
    PPU_P_SOCKET_INLINE,
    PPU_P_IB_HCA,
    PPU_P_IB_TC,
    PPU_P_IB_TIMEOUT,
    PPU_P_IB_RETRY_CNT,
    PPU_P_ROOT_ADDR,
    PPU_P_RANK,
    PPU_P_WORLD_SIZE,
    PPU_P_BOOTSTRAP_SECRET,
    PPU_P_BOOTSTRAP_INSECURE,
    PPU_P_TOPO_FILE,
    PPU_P_TOPO_DUMP_FILE,
    PPU_P_SYSFS_ROOT,
    PPU_P_SIM_TOPO,
    PPU_P_SIM_LINKS_DOWN,
    PPU_P_SIM_SERVERS,
    PPU_P_CPU_AFFINITY,
    PPU_P_SIM_STATS_FILE,
    PPU_P_SIM_FAULT,
    PPU_P_SIM_LINK_CAP,
    PPU_P_STATUS,
    PPU_P_ALGO,
    PPU_P_PROTO,
    PPU_P_CHECK_CALLS,
    PPU_P_CHECKSUM,
    PPU_P_SIMD,
    PPU_P_LL_MAX_BYTES,
    PPU_P_P2P_CHUNK_SIZE,
    PPU_P_ONESHOT_MAX_BYTES,
    PPU_P_NCHANNELS,
    PPU_P_CHANNEL_MIN_BYTES,
    PPU_P_CHUNK_SIZE,
    PPU_P_FIFO_SLOTS,
    PPU_P_SPIN,
    PPU_P_CMA,
    PPU_P_CMA_MIN_BYTES,
    PPU_P_COUNT
};

enum ppu_param_kind {
    PPU_PK_STR,    /* text, checked where it is used (a file, an algorithm list) */
    PPU_PK_INT,    /* an integer (decimal, 0x hex) in [min, max] */
    PPU_PK_CHOICE, /* one of choices, any case; empty means unset */
    PPU_PK_LIST,   /* comma list of choices, optionally led by ^ */
};

struct ppu_param_def {
    const char *name;
    const char *def;
    const char *help;
    enum ppu_param_kind kind;
    long long min, max;
    const char *const *choices; /* NULL-terminated */
    int secret;                 /* its value is never logged or printed */
};

const struct ppu_param_def *ppu_param_table(void);
/* The value in force: the environment's, else the default; a choice in
 * the table's spelling. */
const char *ppu_param_str(enum ppu_param p);
/* ppu_param_str without logging the overrides (for the log itself). */
const char *ppu_param_peek(enum ppu_param p);
/* An integer parameter's value; -1 when it has no default and is unset. */
long long ppu_param_int(enum ppu_param p);
/* Whether the environment sets p to a value the table accepts. */
int ppu_param_is_set(enum ppu_param p);
/* PPU_SUCCESS, or PPU_INVALID_ARGUMENT with the first refused value's
 * sentence in err. Every init entry point calls it first. */
ppu_result_t ppu_param_check(char *err, size_t errlen);
/* The one parse path: checks v against p's entry; on success *value is
 * what ppu_param_str returns for it (a choice in the table's spelling) and
 * *ival its integer (-1: empty, unset); else why says what p allows. */
ppu_result_t ppu_param_parse(enum ppu_param p, const char *v, const char **value,
                             long long *ival, char *why, size_t wn);
/* What p allows, for people: "1..64", "0, 1", "ib, socket". */
void ppu_param_allowed(enum ppu_param p, char *buf, size_t n);

#endif
