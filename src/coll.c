/* Public collective entry points: check the arguments once, fill one
 * descriptor, run it inline (NULL stream) or queue it on the stream. */
#include <stdint.h>

#include "check.h"
#include "comm.h"

static ppu_result_t enqueue(struct ppu_coll_args *a, ppu_stream_t stream)
{
    return stream ? ppu_stream_enqueue(stream, a) : ppu_coll_run(a);
}

static ppu_result_t check_common(const char *fn, ppu_comm_t comm, const void *sendbuf,
                                 const void *recvbuf, size_t count, ppu_datatype_t dt)
{
    if (!ppu_comm_is_live(comm))
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "%s: comm is not a live communicator (NULL, destroyed, or never "
                        "initialized)", fn);
    if ((unsigned)dt >= PPU_NUM_DATATYPES)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: datatype %d is not a ppu_datatype_t",
                        fn, (int)dt);
    if (count > SIZE_MAX / 2 / ppu_datatype_size(dt))
        return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                        "%s: count %zu of %s overflows the byte size", fn, count,
                        ppu_datatype_name(dt));
    if (count > 0 && !sendbuf)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: sendbuf is NULL with count %zu", fn,
                        count);
    if (count > 0 && !recvbuf)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: recvbuf is NULL with count %zu", fn,
                        count);
    return PPU_SUCCESS;
}

ppu_result_t ppu_allreduce(const void *sendbuf, void *recvbuf, size_t count,
                           ppu_datatype_t datatype, ppu_redop_t op, ppu_comm_t comm,
                           ppu_stream_t stream)
{
    PPU_CHECK(check_common("ppu_allreduce", comm, sendbuf, recvbuf, count, datatype));
    if ((unsigned)op >= PPU_NUM_REDOPS)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "ppu_allreduce: op %d is not a ppu_redop_t",
                        (int)op);
    if (count > 0 && sendbuf != recvbuf) {
        size_t nb = count * ppu_datatype_size(datatype);
        const char *s = sendbuf, *r = recvbuf;
        if (s < r + nb && r < s + nb)
            return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                            "ppu_allreduce: sendbuf and recvbuf overlap without being equal "
                            "(in place needs sendbuf == recvbuf)");
    }
    struct ppu_coll_args a = {PPU_COLL_ALLREDUCE, sendbuf, recvbuf, count, datatype, op, -1, comm};
    return enqueue(&a, stream);
}
