#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "param.h"

int ppu_log_level_ = -1;
int ppu_log_mask_ = PPU_SUB_ALL;

static FILE *log_file;
static char log_host[64];
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static _Thread_local int log_rank = -1;

static const struct { const char *name; int bit; } subsys_names[] = {
    {"INIT", PPU_SUB_INIT}, {"COLL", PPU_SUB_COLL}, {"NET", PPU_SUB_NET},
    {"TOPO", PPU_SUB_TOPO}, {"SHM", PPU_SUB_SHM},   {"BOOT", PPU_SUB_BOOT},
    {"ENV", PPU_SUB_ENV},   {"ALL", PPU_SUB_ALL},
};

static const char *subsys_name(int bit)
{
    for (size_t i = 0; i < sizeof subsys_names / sizeof subsys_names[0]; i++)
        if (subsys_names[i].bit == bit)
            return subsys_names[i].name;
    return "?";
}

/* "INIT,COLL" or "^NET" (everything but NET). */
static int parse_mask(const char *s)
{
    int invert = (*s == '^');
    int mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s + invert);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        for (size_t i = 0; i < sizeof subsys_names / sizeof subsys_names[0]; i++)
            if (strcasecmp(tok, subsys_names[i].name) == 0)
                mask |= subsys_names[i].bit;
    return invert ? (PPU_SUB_ALL & ~mask) : mask;
}

/* "path.%h.%p": %h host, %p pid. */
static FILE *open_log_file(const char *pattern)
{
    char path[512];
    size_t o = 0;
    for (const char *p = pattern; *p && o + 1 < sizeof path; p++) {
        if (p[0] == '%' && p[1] == 'h') {
            o += (size_t)snprintf(path + o, sizeof path - o, "%s", log_host);
            p++;
        } else if (p[0] == '%' && p[1] == 'p') {
            o += (size_t)snprintf(path + o, sizeof path - o, "%d", (int)getpid());
            p++;
        } else {
            path[o++] = *p;
        }
        if (o >= sizeof path)
            o = sizeof path - 1;
    }
    path[o] = '\0';
    FILE *f = fopen(path, "a");
    if (f)
        setvbuf(f, NULL, _IOLBF, 0);
    return f;
}

static void configure_once(void)
{
    gethostname(log_host, sizeof log_host - 1);
    char *dot = strchr(log_host, '.');
    if (dot)
        *dot = '\0';
    int level = PPU_LOG_WARN;
    /* Through the parameter table (peek: reading must not log); a value
     * it refuses leaves the default here and fails init. */
    const char *lv = ppu_param_peek(PPU_P_DEBUG);
    if (*lv) {
        if (!strcasecmp(lv, "NONE") || !strcasecmp(lv, "OFF")) level = PPU_LOG_NONE;
        else if (!strcasecmp(lv, "WARN")) level = PPU_LOG_WARN;
        else if (!strcasecmp(lv, "INFO")) level = PPU_LOG_INFO;
        else if (!strcasecmp(lv, "TRACE")) level = PPU_LOG_TRACE;
    }
    const char *sub = ppu_param_peek(PPU_P_DEBUG_SUBSYS);
    ppu_log_mask_ = (sub && *sub) ? parse_mask(sub) : PPU_SUB_ALL;
    const char *file = ppu_param_peek(PPU_P_DEBUG_FILE);
    log_file = (file && *file) ? open_log_file(file) : NULL;
    if (!log_file)
        log_file = stderr;
    __atomic_store_n(&ppu_log_level_, level, __ATOMIC_RELEASE);
}

void ppu_log_configure(void) { pthread_once(&log_once, configure_once); }

void ppu_log_set_rank(int rank) { log_rank = rank; }

void ppu_log_emit(int level, int subsys, const char *fmt, ...)
{
    static const char *lvl[] = {"NONE", "WARN", "INFO", "TRACE"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char rank[16] = "-";
    if (log_rank >= 0)
        snprintf(rank, sizeof rank, "%d", log_rank);
    /* One fprintf per line so lines from threads do not interleave. */
    fprintf(log_file, "%s:%d:%s [%s] %s %s\n", log_host, (int)getpid(), rank,
            subsys_name(subsys), lvl[level], msg);
}
