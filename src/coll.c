/* Public collective entry points: check the arguments once, fill one
 * descriptor, and run it inline (NULL stream), queue it on the stream, or
 * record it in the thread's open group. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "comm.h"

/* The calls of this thread's open group (ppu_group_start depth > 0). */
static __thread struct {
    int depth;
    int n, cap;
    struct ppu_coll_args *ops;
    ppu_stream_t stream;
    ppu_result_t error; /* a call that could not be recorded */
} grp;

static void args_free(struct ppu_coll_args *a, int n)
{
    for (int i = 0; i < n; i++)
        free(a[i].v);
}

static ppu_result_t issue(struct ppu_coll_args *a, ppu_stream_t stream)
{
    if (grp.depth > 0) {
        if (grp.n > 0 && stream != grp.stream) {
            free(a->v);
            return ppu_fail(a->comm, PPU_INVALID_USAGE,
                            "%s inside a group: every call of a group must use the same stream",
                            ppu_coll_name(a->coll));
        }
        if (grp.n == grp.cap) {
            int cap = grp.cap ? 2 * grp.cap : 16;
            struct ppu_coll_args *ops = realloc(grp.ops, (size_t)cap * sizeof *ops);
            if (!ops) {
                free(a->v);
                grp.error = PPU_SYSTEM_ERROR;
                return ppu_fail(a->comm, PPU_SYSTEM_ERROR, "group: out of memory");
            }
            grp.ops = ops;
            grp.cap = cap;
        }
        grp.stream = stream;
        grp.ops[grp.n++] = *a;
        return PPU_SUCCESS;
    }
    if (stream)
        return ppu_stream_enqueue(stream, a, 1);
    ppu_result_t r = ppu_coll_run(a);
    free(a->v);
    return r;
}

ppu_result_t ppu_group_start(void)
{
    grp.depth++;
    return PPU_SUCCESS;
}

ppu_result_t ppu_group_end(void)
{
    if (grp.depth == 0)
        return ppu_fail(NULL, PPU_INVALID_USAGE,
                        "ppu_group_end: no group is open on this thread (more group_end than "
                        "group_start calls)");
    if (--grp.depth > 0)
        return PPU_SUCCESS;
    struct ppu_coll_args *ops = grp.ops;
    int n = grp.n;
    ppu_stream_t stream = grp.stream;
    ppu_result_t err = grp.error;
    grp.ops = NULL;
    grp.n = grp.cap = 0;
    grp.stream = NULL;
    grp.error = PPU_SUCCESS;
    if (n == 0) {
        free(ops);
        return err;
    }
    /* A communicator destroyed while the group was open. */
    for (int i = 0; i < n; i++)
        if (!ppu_comm_is_live(ops[i].comm)) {
            args_free(ops, n);
            free(ops);
            return ppu_fail(NULL, PPU_INVALID_USAGE,
                            "ppu_group_end: a communicator used in the group was destroyed "
                            "before the group ended");
        }
    if (err != PPU_SUCCESS) {
        args_free(ops, n);
        free(ops);
        return ppu_fail(NULL, err, "ppu_group_end: a call of the group could not be recorded");
    }
    if (stream)
        return ppu_stream_enqueue(stream, ops, n); /* takes ops */
    ppu_result_t r = ppu_coll_run_group(ops, n);
    args_free(ops, n);
    free(ops);
    return r;
}

int ppu_group_depth(void)
{
    return grp.depth;
}

int ppu_group_uses(const struct ppu_comm *comm)
{
    for (int i = 0; i < grp.n; i++)
        if (grp.ops[i].comm == comm)
            return 1;
    return 0;
}

static ppu_result_t check_comm(const char *fn, ppu_comm_t comm)
{
    if (!ppu_comm_is_live(comm))
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT,
                        "%s: comm is not a live communicator (NULL, destroyed, or never "
                        "initialized)", fn);
    return PPU_SUCCESS;
}

/* A buffer of count elements: its byte size, or a failure naming it. */
static ppu_result_t check_buf(const char *fn, ppu_comm_t comm, const char *name, const void *buf,
                              size_t count, ppu_datatype_t dt, size_t mult)
{
    if ((unsigned)dt >= PPU_NUM_DATATYPES)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: datatype %d is not a ppu_datatype_t",
                        fn, (int)dt);
    if (count > SIZE_MAX / 4 / ppu_datatype_size(dt) / mult)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: count %zu of %s overflows the byte size",
                        fn, count, ppu_datatype_name(dt));
    if (count > 0 && !buf)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: %s is NULL with count %zu", fn, name,
                        count);
    return PPU_SUCCESS;
}

static ppu_result_t check_op(const char *fn, ppu_comm_t comm, ppu_redop_t op)
{
    if ((unsigned)op >= PPU_NUM_REDOPS)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: op %d is not a ppu_redop_t", fn, (int)op);
    return PPU_SUCCESS;
}

static ppu_result_t check_rank(const char *fn, ppu_comm_t comm, const char *what, int r)
{
    if (r < 0 || r >= comm->nranks)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: %s is %d; it must be 0..%d", fn, what, r,
                        comm->nranks - 1);
    return PPU_SUCCESS;
}

/* Two byte ranges that overlap without being the allowed in-place pair. */
static ppu_result_t check_overlap(const char *fn, ppu_comm_t comm, const void *a, size_t an,
                                  const void *b, size_t bn, const void *inplace_a)
{
    if (!an || !bn || !a || !b || a == inplace_a)
        return PPU_SUCCESS;
    const char *x = a, *y = b;
    if (x < y + bn && y < x + an)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                        "%s: sendbuf and recvbuf overlap but are not the in-place layout", fn);
    return PPU_SUCCESS;
}

static ppu_result_t run(enum ppu_coll coll, const void *sendbuf, void *recvbuf, size_t count,
                        ppu_datatype_t dt, ppu_redop_t op, int root, ppu_comm_t comm,
                        ppu_stream_t stream)
{
    struct ppu_coll_args a = {coll, sendbuf, recvbuf, count, dt, op, root, comm, NULL};
    return issue(&a, stream);
}

ppu_result_t ppu_allreduce(const void *sendbuf, void *recvbuf, size_t count,
                           ppu_datatype_t datatype, ppu_redop_t op, ppu_comm_t comm,
                           ppu_stream_t stream)
{
    const char *fn = "ppu_allreduce";
    PPU_CHECK(check_comm(fn, comm));
    PPU_CHECK(check_buf(fn, comm, "sendbuf", sendbuf, count, datatype, 1));
    PPU_CHECK(check_buf(fn, comm, "recvbuf", recvbuf, count, datatype, 1));
    PPU_CHECK(check_op(fn, comm, op));
    size_t nb = count * ppu_datatype_size(datatype);
    PPU_CHECK(check_overlap(fn, comm, sendbuf, nb, recvbuf, nb, recvbuf));
    return run(PPU_COLL_ALLREDUCE, sendbuf, recvbuf, count, datatype, op, -1, comm, stream);
}

ppu_result_t ppu_broadcast(const void *sendbuf, void *recvbuf, size_t count,
                           ppu_datatype_t datatype, int root, ppu_comm_t comm,
                           ppu_stream_t stream)
{
    const char *fn = "ppu_broadcast";
    PPU_CHECK(check_comm(fn, comm));
    PPU_CHECK(check_rank(fn, comm, "root", root));
    PPU_CHECK(check_buf(fn, comm, "sendbuf", comm->rank == root ? sendbuf : recvbuf, count,
                        datatype, 1));
    PPU_CHECK(check_buf(fn, comm, "recvbuf", recvbuf, count, datatype, 1));
    size_t nb = count * ppu_datatype_size(datatype);
    if (comm->rank == root)
        PPU_CHECK(check_overlap(fn, comm, sendbuf, nb, recvbuf, nb, recvbuf));
    /* sendbuf is read on the root only; elsewhere it plays no part */
    const void *s = comm->rank == root ? sendbuf : recvbuf;
    return run(PPU_COLL_BROADCAST, s, recvbuf, count, datatype, PPU_SUM, root, comm, stream);
}

ppu_result_t ppu_reduce(const void *sendbuf, void *recvbuf, size_t count,
                        ppu_datatype_t datatype, ppu_redop_t op, int root, ppu_comm_t comm,
                        ppu_stream_t stream)
{
    const char *fn = "ppu_reduce";
    PPU_CHECK(check_comm(fn, comm));
    PPU_CHECK(check_rank(fn, comm, "root", root));
    PPU_CHECK(check_op(fn, comm, op));
    PPU_CHECK(check_buf(fn, comm, "sendbuf", sendbuf, count, datatype, 1));
    if (comm->rank == root) {
        PPU_CHECK(check_buf(fn, comm, "recvbuf", recvbuf, count, datatype, 1));
        size_t nb = count * ppu_datatype_size(datatype);
        PPU_CHECK(check_overlap(fn, comm, sendbuf, nb, recvbuf, nb, recvbuf));
    }
    return run(PPU_COLL_REDUCE, sendbuf, comm->rank == root ? recvbuf : NULL, count, datatype, op,
               root, comm, stream);
}

ppu_result_t ppu_allgather(const void *sendbuf, void *recvbuf, size_t sendcount,
                           ppu_datatype_t datatype, ppu_comm_t comm, ppu_stream_t stream)
{
    const char *fn = "ppu_allgather";
    PPU_CHECK(check_comm(fn, comm));
    PPU_CHECK(check_buf(fn, comm, "sendbuf", sendbuf, sendcount, datatype, 1));
    PPU_CHECK(check_buf(fn, comm, "recvbuf", recvbuf, sendcount, datatype, (size_t)comm->nranks));
    size_t nb = sendcount * ppu_datatype_size(datatype);
    const char *mine = recvbuf ? (const char *)recvbuf + (size_t)comm->rank * nb : NULL;
    PPU_CHECK(check_overlap(fn, comm, sendbuf, nb, recvbuf, nb * (size_t)comm->nranks, mine));
    return run(PPU_COLL_ALLGATHER, sendbuf, recvbuf, sendcount, datatype, PPU_SUM, -1, comm,
               stream);
}

ppu_result_t ppu_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                ppu_datatype_t datatype, ppu_redop_t op, ppu_comm_t comm,
                                ppu_stream_t stream)
{
    const char *fn = "ppu_reduce_scatter";
    PPU_CHECK(check_comm(fn, comm));
    PPU_CHECK(check_op(fn, comm, op));
    PPU_CHECK(check_buf(fn, comm, "sendbuf", sendbuf, recvcount, datatype, (size_t)comm->nranks));
    PPU_CHECK(check_buf(fn, comm, "recvbuf", recvbuf, recvcount, datatype, 1));
    size_t nb = recvcount * ppu_datatype_size(datatype);
    const char *mine = sendbuf ? (const char *)sendbuf + (size_t)comm->rank * nb : NULL;
    PPU_CHECK(check_overlap(fn, comm, recvbuf, nb, sendbuf, nb * (size_t)comm->nranks, mine));
    return run(PPU_COLL_REDUCE_SCATTER, sendbuf, recvbuf, recvcount, datatype, op, -1, comm,
               stream);
}

ppu_result_t ppu_alltoall(const void *sendbuf, void *recvbuf, size_t count,
                          ppu_datatype_t datatype, ppu_comm_t comm, ppu_stream_t stream)
{
    const char *fn = "ppu_alltoall";
    PPU_CHECK(check_comm(fn, comm));
    size_t n = (size_t)comm->nranks;
    PPU_CHECK(check_buf(fn, comm, "sendbuf", sendbuf, count, datatype, n));
    PPU_CHECK(check_buf(fn, comm, "recvbuf", recvbuf, count, datatype, n));
    size_t nb = count * ppu_datatype_size(datatype) * n;
    PPU_CHECK(check_overlap(fn, comm, sendbuf, nb, recvbuf, nb, NULL));
    return run(PPU_COLL_ALLTOALL, sendbuf, recvbuf, count, datatype, PPU_SUM, -1, comm, stream);
}

ppu_result_t ppu_alltoallv(const void *sendbuf, const size_t *sendcounts, const size_t *sdispls,
                           void *recvbuf, const size_t *recvcounts, const size_t *rdispls,
                           ppu_datatype_t datatype, ppu_comm_t comm, ppu_stream_t stream)
{
    const char *fn = "ppu_alltoallv";
    PPU_CHECK(check_comm(fn, comm));
    if (!sendcounts || !sdispls || !recvcounts || !rdispls)
        return ppu_fail(comm, PPU_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                        !sendcounts ? "sendcounts" : !sdispls ? "sdispls"
                        : !recvcounts ? "recvcounts" : "rdispls");
    size_t n = (size_t)comm->nranks, send_end = 0, recv_end = 0;
    PPU_CHECK(check_buf(fn, comm, "sendbuf", sendbuf, 0, datatype, 1));
    size_t lim = SIZE_MAX / 8 / ppu_datatype_size(datatype);
    for (size_t p = 0; p < n; p++) {
        if (sendcounts[p] > lim || sdispls[p] > lim || recvcounts[p] > lim || rdispls[p] > lim)
            return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                            "%s: a count or displacement for rank %zu overflows the byte size", fn, p);
        if (sendcounts[p] && sdispls[p] + sendcounts[p] > send_end)
            send_end = sdispls[p] + sendcounts[p];
        if (recvcounts[p] && rdispls[p] + recvcounts[p] > recv_end)
            recv_end = rdispls[p] + recvcounts[p];
    }
    if (sendcounts[comm->rank] != recvcounts[comm->rank])
        return ppu_fail(comm, PPU_INVALID_ARGUMENT,
                        "%s: rank %d sends itself %zu elements but receives %zu", fn, comm->rank,
                        sendcounts[comm->rank], recvcounts[comm->rank]);
    PPU_CHECK(check_buf(fn, comm, "sendbuf", sendbuf, send_end, datatype, 1));
    PPU_CHECK(check_buf(fn, comm, "recvbuf", recvbuf, recv_end, datatype, 1));
    size_t es = ppu_datatype_size(datatype);
    PPU_CHECK(check_overlap(fn, comm, sendbuf, send_end * es, recvbuf, recv_end * es, NULL));
    struct ppu_coll_args a = {PPU_COLL_ALLTOALLV, sendbuf, recvbuf, 0, datatype, PPU_SUM, -1,
                              comm, malloc(4 * n * sizeof(size_t))};
    if (!a.v)
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "%s: out of memory", fn);
    memcpy(a.v, sendcounts, n * sizeof(size_t));
    memcpy(a.v + n, sdispls, n * sizeof(size_t));
    memcpy(a.v + 2 * n, recvcounts, n * sizeof(size_t));
    memcpy(a.v + 3 * n, rdispls, n * sizeof(size_t));
    a.count = send_end; /* for messages */
    return issue(&a, stream);
}

static ppu_result_t p2p(const char *fn, enum ppu_coll coll, const void *sbuf, void *rbuf,
                        size_t count, ppu_datatype_t dt, int peer, ppu_comm_t comm,
                        ppu_stream_t stream)
{
    PPU_CHECK(check_comm(fn, comm));
    PPU_CHECK(check_buf(fn, comm, coll == PPU_COLL_SEND ? "sendbuf" : "recvbuf",
                        coll == PPU_COLL_SEND ? sbuf : rbuf, count, dt, 1));
    PPU_CHECK(check_rank(fn, comm, "peer", peer));
    if (peer == comm->rank && grp.depth == 0)
        return ppu_fail(comm, PPU_INVALID_USAGE,
                        "%s: peer is the calling rank %d; a send to self needs its receive in "
                        "the same group (ppu_group_start/ppu_group_end)", fn, peer);
    return run(coll, sbuf, rbuf, count, dt, PPU_SUM, peer, comm, stream);
}

ppu_result_t ppu_send(const void *sendbuf, size_t count, ppu_datatype_t datatype, int peer,
                      ppu_comm_t comm, ppu_stream_t stream)
{
    return p2p("ppu_send", PPU_COLL_SEND, sendbuf, NULL, count, datatype, peer, comm, stream);
}

ppu_result_t ppu_recv(void *recvbuf, size_t count, ppu_datatype_t datatype, int peer,
                      ppu_comm_t comm, ppu_stream_t stream)
{
    return p2p("ppu_recv", PPU_COLL_RECV, NULL, recvbuf, count, datatype, peer, comm, stream);
}

ppu_result_t ppu_barrier(ppu_comm_t comm, ppu_stream_t stream)
{
    PPU_CHECK(check_comm("ppu_barrier", comm));
    /* A one-element all-reduce: nobody leaves before everyone arrived. Its
     * buffer lives in the communicator, for calls queued on streams too. */
    return run(PPU_COLL_ALLREDUCE, &comm->barrier_word, &comm->barrier_word, 1, PPU_INT32,
               PPU_MAX, -1, comm, stream);
}
