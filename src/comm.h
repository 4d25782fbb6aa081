/* The communicator: what every core file sees. */
#ifndef PPU_COMM_H
#define PPU_COMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../topology/topo.h"
#include "../transports/transport.h"
#include "bootstrap.h"
#include "ppuccl.h"
#include "schedule.h"

#define PPU_MAX_CHANNELS 16
#define PPU_COMM_MAGIC 0x505055434f4d4d31ull
#define PPU_ERR_LEN 512

struct ppu_channel {
    int ring[PPU_TOPO_MAX_CHIPS]; /* ranks in ring order */
    int pos;                      /* this rank's position in ring */
    int prev, next;               /* peers */
    struct ppu_link send, recv;
};

struct ppu_comm {
    uint64_t magic;
    int rank, nranks;
    struct ppu_bootstrap *bs;
    struct ppu_topo topo;
    int nchannels;
    struct ppu_channel ch[PPU_MAX_CHANNELS];
    /* Direct links to every peer, when all ranks form one mesh group. */
    int mesh;
    struct ppu_link mesh_send[PPU_TOPO_MAX_CHIPS], mesh_recv[PPU_TOPO_MAX_CHIPS];
    size_t oneshot_max; /* PPU_ONESHOT_MAX_BYTES */
    size_t mesh_slot;   /* bytes in one mesh-link slot: the largest one-shot call */
    int algo_forced;    /* PPU_ALGO: -1 auto, else enum ppu_algo */

    size_t chunk_bytes;
    size_t channel_min_bytes; /* PPU_CHANNEL_MIN_BYTES */
    size_t direct_min; /* smallest chunk sent as a reference (PPU_CMA_MIN_BYTES) */
    uint64_t timeout_ns;
    uint64_t spin;
    void *scratch; /* one chunk, for messages read from remote memory */

    pthread_mutex_t exec_lock; /* one collective at a time on the links */
    uint64_t seq;              /* collectives issued */
    atomic_int aborted;
    atomic_int pending;        /* queued on streams, not yet finished */
    _Atomic ppu_result_t async_error;
    atomic_int broken;         /* a collective failed mid-way: links unusable */

    struct ppu_sched plan; /* the last schedule, reused for the same key */
    int plan_valid;

    pthread_mutex_t err_lock;
    char last_error[PPU_ERR_LEN];
};

/* A collective as queued on a stream or run inline. */
enum ppu_coll { PPU_COLL_ALLREDUCE = 0 };

struct ppu_coll_args {
    enum ppu_coll coll;
    const void *sendbuf;
    void *recvbuf;
    size_t count;
    ppu_datatype_t datatype;
    ppu_redop_t op;
    int root;
    struct ppu_comm *comm;
};

/* comm registry: is this pointer a live communicator? */
int ppu_comm_is_live(struct ppu_comm *comm);
/* Set up links and rings after the bootstrap (connect.c). */
ppu_result_t ppu_comm_connect(struct ppu_comm *comm);
void ppu_comm_disconnect(struct ppu_comm *comm);
/* Run one collective to completion on the calling thread (exec.c). */
ppu_result_t ppu_coll_run(struct ppu_coll_args *args);
/* Queue one collective on a stream (stream.c). */
ppu_result_t ppu_stream_enqueue(struct ppu_stream *stream, const struct ppu_coll_args *args);

const char *ppu_datatype_name(ppu_datatype_t dt);
const char *ppu_redop_name(ppu_redop_t op);

#endif
