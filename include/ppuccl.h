/*
 * ppuccl — collective communication for PPU accelerator clusters.
 *
 * The only public header. Every function returns ppu_result_t; output
 * arguments come last and are written only on success. When a call fails,
 * ppu_get_last_error(comm) (or ppu_get_last_error(NULL) for calls that have
 * no communicator yet) returns a sentence naming what failed and where.
 */
#ifndef PPUCCL_H
#define PPUCCL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the shared library exports: the functions declared here and
 * nothing else (it is built with -fvisibility=hidden). */
#if defined(__GNUC__)
#define PPU_API __attribute__((visibility("default")))
#else
#define PPU_API
#endif

#define PPU_VERSION_MAJOR 0
#define PPU_VERSION_MINOR 1
#define PPU_VERSION_PATCH 0
#define PPU_VERSION_STR_(x) #x
#define PPU_VERSION_STR(x) PPU_VERSION_STR_(x)
#define PPU_VERSION_STRING                                                                    \
    PPU_VERSION_STR(PPU_VERSION_MAJOR) "." PPU_VERSION_STR(PPU_VERSION_MINOR) "."             \
        PPU_VERSION_STR(PPU_VERSION_PATCH)
/* Encoded as major*10000 + minor*100 + patch. */
#define PPU_VERSION_CODE \
    (PPU_VERSION_MAJOR * 10000 + PPU_VERSION_MINOR * 100 + PPU_VERSION_PATCH)

/* Result codes. Values are stable: never renumber, only append. */
typedef enum {
    PPU_SUCCESS = 0,
    PPU_SYSTEM_ERROR = 1,     /* an OS call failed (memory, sockets, shm) */
    PPU_INTERNAL_ERROR = 2,   /* a bug in ppuccl */
    PPU_INVALID_ARGUMENT = 3, /* a bad value was passed */
    PPU_INVALID_USAGE = 4,    /* a valid value at the wrong time */
    PPU_REMOTE_ERROR = 5,     /* a peer failed or broke the protocol */
    PPU_IN_PROGRESS = 6,      /* queued work has not finished yet */
    PPU_TIMEOUT = 7,          /* a wait on a peer passed PPU_TIMEOUT_MS */
    PPU_ABORTED = 8,          /* the communicator was aborted */
    PPU_NUM_RESULTS
} ppu_result_t;

typedef enum {
    PPU_INT8 = 0,
    PPU_UINT8 = 1,
    PPU_INT32 = 2,
    PPU_UINT32 = 3,
    PPU_INT64 = 4,
    PPU_UINT64 = 5,
    PPU_FLOAT16 = 6,
    PPU_BFLOAT16 = 7,
    PPU_FLOAT32 = 8,
    PPU_FLOAT64 = 9,
    PPU_NUM_DATATYPES
} ppu_datatype_t;

typedef enum {
    PPU_SUM = 0,
    PPU_PROD = 1,
    PPU_MAX = 2,
    PPU_MIN = 3,
    PPU_AVG = 4, /* sum, divided once by the rank count at the end */
    PPU_NUM_REDOPS
} ppu_redop_t;

#define PPU_UNIQUE_ID_BYTES 128
/* Opaque rendezvous token: the root's address and a random secret.
 * Create it on one rank with ppu_get_unique_id and hand it to the others. */
typedef struct {
    char internal[PPU_UNIQUE_ID_BYTES];
} ppu_unique_id_t;

typedef struct ppu_comm *ppu_comm_t;
typedef struct ppu_stream *ppu_stream_t;

/* ---- library ---------------------------------------------------------- */
PPU_API ppu_result_t ppu_get_version(int *version);
PPU_API const char *ppu_get_error_string(ppu_result_t result);
/* The last error recorded on comm, or the calling thread's last error for
 * comm == NULL. Never NULL; "" when nothing failed. The text belongs to the
 * calling thread and stays as it is until that thread calls this again,
 * whatever other threads' calls on comm fail meanwhile. */
PPU_API const char *ppu_get_last_error(ppu_comm_t comm);
/* Size in bytes of one element of datatype; 0 for an unknown datatype. */
PPU_API size_t ppu_datatype_size(ppu_datatype_t datatype);

/* ---- communicators ---------------------------------------------------- */
/* Starts the rendezvous root in this process and returns its token. */
PPU_API ppu_result_t ppu_get_unique_id(ppu_unique_id_t *id);
/* Collective over nranks processes (or threads) that share the same id. */
PPU_API ppu_result_t ppu_comm_init_rank(ppu_comm_t *comm, int nranks,
                                        ppu_unique_id_t id, int rank);
/* n communicators inside this process, rank i in comms[i]; each is then
 * driven by its own thread or its own stream. */
PPU_API ppu_result_t ppu_comm_init_all(ppu_comm_t *comms, int n);
/* Rank and size from the environment: PPU_RANK / PPU_WORLD_SIZE /
 * PPU_ROOT_ADDR, or Open MPI's OMPI_COMM_WORLD_RANK / _SIZE. */
PPU_API ppu_result_t ppu_comm_init_env(ppu_comm_t *comm);
/* Waits for the communicator's queued work, then frees it. */
PPU_API ppu_result_t ppu_comm_destroy(ppu_comm_t comm);
/* Stops in-flight work on every stream, then frees the communicator.
 * Safe to call from any thread. */
PPU_API ppu_result_t ppu_comm_abort(ppu_comm_t comm);
PPU_API ppu_result_t ppu_comm_count(ppu_comm_t comm, int *count);
PPU_API ppu_result_t ppu_comm_user_rank(ppu_comm_t comm, int *rank);
/* The first error raised asynchronously (stream workers), or PPU_SUCCESS. */
PPU_API ppu_result_t ppu_comm_get_async_error(ppu_comm_t comm, ppu_result_t *async_error);
/* Registers [buf, buf + bytes) with comm for its RDMA links (PPU_NET=ib):
 * large messages from it are then written straight from it into the peer,
 * instead of being copied into the link's registered FIFO first. The
 * registration with each device is made on first use and kept until
 * ppu_comm_deregister, or until comm is destroyed; the memory must stay
 * allocated until then, and no call may use it while it is deregistered.
 * Optional: any buffer works unregistered, and links that need no
 * registration (ICN, TCP) ignore it. *handle is for ppu_comm_deregister. */
PPU_API ppu_result_t ppu_comm_register(ppu_comm_t comm, const void *buf, size_t bytes, void **handle);
PPU_API ppu_result_t ppu_comm_deregister(ppu_comm_t comm, void *handle);

/* ---- symmetric memory and windows --------------------------------------- */
/* Memory the ranks on one server can map from each other (shared memory
 * the library owns; on a PPU, device memory the chips reach over ICN).
 * ppu_mem_free(NULL) does nothing. */
PPU_API ppu_result_t ppu_mem_alloc(size_t size, void **ptr);
PPU_API ppu_result_t ppu_mem_free(void *ptr);

/* Collective: every rank registers a buffer of the same size from
 * ppu_mem_alloc. Afterwards, when all ranks are on one server and host, a
 * collective whose buffers all lie in windows (on every rank; any offsets)
 * reads the ranks' inputs and writes their outputs directly, with no FIFO
 * and no staging: all-reduce (each rank reduces its share from every
 * input into every output: about 2 x the bytes of memory traffic a rank),
 * reduce, reduce-scatter, broadcast, all-gather and all-to-all (each byte
 * copied once; all-to-all not in place). Other calls and buffers run as
 * before. Deregister before ppu_mem_free. */
typedef struct ppu_window *ppu_window_t;
PPU_API ppu_result_t ppu_comm_window_register(ppu_comm_t comm, void *buf, size_t size,
                                              ppu_window_t *win);
PPU_API ppu_result_t ppu_comm_window_deregister(ppu_comm_t comm, ppu_window_t win);

/* ---- streams ---------------------------------------------------------- */
/* A stream is an in-order host work queue served by its own thread.
 * Passing NULL as a stream runs the call on the caller's thread. */
PPU_API ppu_result_t ppu_stream_create(ppu_stream_t *stream);
/* Waits for all queued work; returns the first error it raised. */
PPU_API ppu_result_t ppu_stream_synchronize(ppu_stream_t stream);
/* PPU_SUCCESS when idle, PPU_IN_PROGRESS while work is queued, or the
 * first error queued work raised. */
PPU_API ppu_result_t ppu_stream_query(ppu_stream_t stream);
PPU_API ppu_result_t ppu_stream_destroy(ppu_stream_t stream);

/* ---- collectives ------------------------------------------------------ */
/* In place when sendbuf == recvbuf. */
PPU_API ppu_result_t ppu_allreduce(const void *sendbuf, void *recvbuf, size_t count,
                                   ppu_datatype_t datatype, ppu_redop_t op,
                                   ppu_comm_t comm, ppu_stream_t stream);

/* Every rank's root-rank buffer goes to all: count elements from sendbuf on
 * root into recvbuf on every rank (sendbuf is read on root only; in place
 * when sendbuf == recvbuf on root). */
PPU_API ppu_result_t ppu_broadcast(const void *sendbuf, void *recvbuf, size_t count,
                                   ppu_datatype_t datatype, int root, ppu_comm_t comm,
                                   ppu_stream_t stream);
/* Reduce count elements from every rank into recvbuf on root (recvbuf is
 * not touched, and may be NULL, on other ranks). */
PPU_API ppu_result_t ppu_reduce(const void *sendbuf, void *recvbuf, size_t count,
                                ppu_datatype_t datatype, ppu_redop_t op, int root,
                                ppu_comm_t comm, ppu_stream_t stream);
/* sendcount elements from every rank land at recvbuf + rank * sendcount.
 * In place when sendbuf == recvbuf + rank * sendcount. */
PPU_API ppu_result_t ppu_allgather(const void *sendbuf, void *recvbuf, size_t sendcount,
                                   ppu_datatype_t datatype, ppu_comm_t comm,
                                   ppu_stream_t stream);
/* sendbuf holds nranks blocks of recvcount; rank r receives the reduction
 * of block r. In place when recvbuf == sendbuf + rank * recvcount. */
PPU_API ppu_result_t ppu_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                        ppu_datatype_t datatype, ppu_redop_t op,
                                        ppu_comm_t comm, ppu_stream_t stream);
/* Block p of sendbuf (count elements) goes to rank p, which stores it as
 * its block r. sendbuf and recvbuf must not overlap. */
PPU_API ppu_result_t ppu_alltoall(const void *sendbuf, void *recvbuf, size_t count,
                                  ppu_datatype_t datatype, ppu_comm_t comm,
                                  ppu_stream_t stream);
/* As MPI_Alltoallv: sendcounts[p] elements from sendbuf + sdispls[p] go to
 * rank p, recvcounts[p] elements from rank p land at recvbuf + rdispls[p]
 * (counts and displacements in elements). The arrays are copied. */
PPU_API ppu_result_t ppu_alltoallv(const void *sendbuf, const size_t *sendcounts,
                                   const size_t *sdispls, void *recvbuf,
                                   const size_t *recvcounts, const size_t *rdispls,
                                   ppu_datatype_t datatype, ppu_comm_t comm,
                                   ppu_stream_t stream);
/* Point to point. Sends and receives between a pair of ranks match in the
 * order they were issued; counts and datatypes must agree. A send to or
 * receive from the calling rank itself works inside a group. */
PPU_API ppu_result_t ppu_send(const void *sendbuf, size_t count, ppu_datatype_t datatype,
                              int peer, ppu_comm_t comm, ppu_stream_t stream);
PPU_API ppu_result_t ppu_recv(void *recvbuf, size_t count, ppu_datatype_t datatype,
                              int peer, ppu_comm_t comm, ppu_stream_t stream);
/* Returns once every rank has called it. */
PPU_API ppu_result_t ppu_barrier(ppu_comm_t comm, ppu_stream_t stream);

/* ---- groups ----------------------------------------------------------- */
/* Calls between ppu_group_start and ppu_group_end (per thread, nestable)
 * are only recorded; the outermost ppu_group_end issues them together, so
 * a set of sends and receives, or collectives on several communicators
 * driven by one thread, completes where one call at a time would wait
 * forever. Calls in a group must all use the same stream. Argument errors
 * are reported by the call itself; errors while running by ppu_group_end. */
PPU_API ppu_result_t ppu_group_start(void);
PPU_API ppu_result_t ppu_group_end(void);

/* ---- communicator split ----------------------------------------------- */
/* Collective over comm: ranks passing the same color form a new
 * communicator, ordered by key, then by rank in comm. A rank passing
 * PPU_SPLIT_NOCOLOR gets *newcomm = NULL. */
#define PPU_SPLIT_NOCOLOR (-1)
PPU_API ppu_result_t ppu_comm_split(ppu_comm_t comm, int color, int key, ppu_comm_t *newcomm);

#ifdef __cplusplus
}
#endif
#endif /* PPUCCL_H */
