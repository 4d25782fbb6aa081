/* Internal error propagation: one convention, a trail at INFO level. */
#ifndef PPU_CHECK_H
#define PPU_CHECK_H

#include "util/log.h"
#include "ppuccl.h"

/* Propagate a failing ppu_result_t, logging file:line at INFO. */
#define PPU_CHECK(call)                                                        \
    do {                                                                       \
        ppu_result_t res_ = (call);                                            \
        if (res_ != PPU_SUCCESS) {                                             \
            PPU_INFO(PPU_SUB_ALL, "%s:%d -> %s", __FILE__, __LINE__,           \
                     ppu_get_error_string(res_));                              \
            return res_;                                                       \
        }                                                                      \
    } while (0)

/* Same, but store the result in res and jump to a cleanup label. */
#define PPU_CHECK_GOTO(call, res, label)                                       \
    do {                                                                       \
        (res) = (call);                                                        \
        if ((res) != PPU_SUCCESS) {                                            \
            PPU_INFO(PPU_SUB_ALL, "%s:%d -> %s", __FILE__, __LINE__,           \
                     ppu_get_error_string(res));                               \
            goto label;                                                        \
        }                                                                      \
    } while (0)

/* Record a sentence for ppu_get_last_error (comm may be NULL: thread-local)
 * and return result. Defined in error.c. */
struct ppu_comm;
ppu_result_t ppu_fail(struct ppu_comm *comm, ppu_result_t result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
