/* Result strings, the last-error sentences, datatype and op names. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "comm.h"
#include "util/log.h"

static _Thread_local char thread_error[PPU_ERR_LEN];
/* What ppu_get_last_error(comm) returned to this thread: a copy taken under
 * the communicator's lock, so another thread's failure cannot rewrite it
 * while the caller reads it. */
static _Thread_local char thread_copy[PPU_ERR_LEN];

const char *ppu_get_error_string(ppu_result_t r)
{
    switch (r) {
    case PPU_SUCCESS: return "success";
    case PPU_SYSTEM_ERROR: return "system error (an OS call failed)";
    case PPU_INTERNAL_ERROR: return "internal error (a bug in ppuccl)";
    case PPU_INVALID_ARGUMENT: return "invalid argument";
    case PPU_INVALID_USAGE: return "invalid usage";
    case PPU_REMOTE_ERROR: return "remote error (a peer failed or broke the protocol)";
    case PPU_IN_PROGRESS: return "in progress";
    case PPU_TIMEOUT: return "timeout waiting for a peer";
    case PPU_ABORTED: return "communicator aborted";
    default: return "unknown result code";
    }
}

ppu_result_t ppu_fail(struct ppu_comm *comm, ppu_result_t result, const char *fmt, ...)
{
    char msg[PPU_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(thread_error, sizeof thread_error, "%s", msg);
    if (comm) {
        pthread_mutex_lock(&comm->err_lock);
        snprintf(comm->last_error, sizeof comm->last_error, "%s", msg);
        pthread_mutex_unlock(&comm->err_lock);
    }
    PPU_INFO(PPU_SUB_ALL, "%s: %s", ppu_get_error_string(result), msg);
    return result;
}

const char *ppu_get_last_error(ppu_comm_t comm)
{
    if (comm && ppu_comm_is_live(comm)) {
        pthread_mutex_lock(&comm->err_lock);
        memcpy(thread_copy, comm->last_error, sizeof thread_copy);
        pthread_mutex_unlock(&comm->err_lock);
        return thread_copy;
    }
    return thread_error;
}

size_t ppu_datatype_size(ppu_datatype_t dt)
{
    static const size_t sizes[PPU_NUM_DATATYPES] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    return (unsigned)dt < PPU_NUM_DATATYPES ? sizes[dt] : 0;
}

const char *ppu_datatype_name(ppu_datatype_t dt)
{
    static const char *names[PPU_NUM_DATATYPES] = {"int8", "uint8", "int32", "uint32", "int64",
                                                   "uint64", "float16", "bfloat16", "float32",
                                                   "float64"};
    return (unsigned)dt < PPU_NUM_DATATYPES ? names[dt] : "unknown";
}

const char *ppu_redop_name(ppu_redop_t op)
{
    static const char *names[PPU_NUM_REDOPS] = {"sum", "prod", "max", "min", "avg"};
    return (unsigned)op < PPU_NUM_REDOPS ? names[op] : "unknown";
}
