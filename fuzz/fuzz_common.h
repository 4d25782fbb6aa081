/* Shared by the fuzz targets: logging goes to /dev/null (INFO, so the log
 * formatting of messages built from fuzzed text still runs), unless the
 * environment says otherwise. Call from LLVMFuzzerInitialize. */
#ifndef PPU_FUZZ_COMMON_H
#define PPU_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_quiet_logs(void)
{
    setenv("PPU_DEBUG", "INFO", 0);
    setenv("PPU_DEBUG_FILE", "/dev/null", 0);
}

/* A property the code under test promised does not hold: a finding. */
#define FUZZ_REQUIRE(cond, ...)                                         \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "fuzz: %s:%d: %s failed: ", __FILE__,        \
                    __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                               \
            fputc('\n', stderr);                                        \
            abort();                                                    \
        }                                                               \
    } while (0)

#endif
