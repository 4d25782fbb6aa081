/* Every PPU_* environment parameter, declared once in param.c with its
 * default and help text, read once, overrides logged at INFO (ENV). */
#ifndef PPU_PARAM_H
#define PPU_PARAM_H

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
    PPU_P_ROOT_ADDR,
    PPU_P_RANK,
    PPU_P_WORLD_SIZE,
    PPU_P_BOOTSTRAP_SECRET,
    PPU_P_TOPO_FILE,
    PPU_P_TOPO_DUMP_FILE,
    PPU_P_SYSFS_ROOT,
    PPU_P_SIM_TOPO,
    PPU_P_SIM_LINKS_DOWN,
    PPU_P_SIM_SERVERS,
    PPU_P_CPU_AFFINITY,
    PPU_P_SIM_STATS_FILE,
    PPU_P_SIM_FAULT,
    PPU_P_ALGO,
    PPU_P_PROTO,
    PPU_P_CHECK_CALLS,
    PPU_P_CHECKSUM,
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

struct ppu_param_def {
    const char *name;
    const char *def;
    const char *help;
};

const struct ppu_param_def *ppu_param_table(void);
/* The value in force: the environment's, else the default. */
const char *ppu_param_str(enum ppu_param p);
/* Integer value; a malformed override is logged and the default used. */
long long ppu_param_int(enum ppu_param p);

#endif
