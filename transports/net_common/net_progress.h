/* One progress thread per process and transport: the registry of the
 * links it serves, its start and stop, and the wake-up protocol, shared by
 * net_socket and net_ib. Each transport supplies `round`, which serves
 * every link once (non-blocking) or, when told to nap, waits up to nap_ms
 * for its own events or the wake-up descriptor.
 *
 * Wake-up: the core publishes a counter (head, tail, local_failed) with a
 * sequentially consistent store, then calls net_progress_kick, which loads
 * `sleeping` the same way; the thread sets `sleeping` before its round
 * reads the counters. So either the round sees what the core published, or
 * the core sees the thread asleep and writes the eventfd. A core's help
 * (net_progress_help) may move bytes while the thread naps on a poll set
 * built before; whatever it changes that the thread's poll set would miss
 * (a credit that lets other sockets send) kicks the thread. */
#ifndef PPU_NET_PROGRESS_H
#define PPU_NET_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "net_proto.h"

struct net_progress {
    const char *thread_name; /* at most 15 characters */
    /* One round over links[0..n): returns nonzero when anything moved.
     * nap_ms > 0: nothing moved lately, so it may block up to nap_ms in
     * poll() with wake_fd among its descriptors; when wake_fd is readable
     * it calls net_progress_woken. */
    int (*round)(struct net_progress *g, struct net_end **links, int n, int nap_ms, int wake_fd);
    /* Optional: serve links[0..n) once without blocking, from another
     * thread (net_progress_help); `serve` and `lock` are held, so it must
     * not add or remove links. */
    int (*help)(struct net_progress *g, struct net_end **links, int n);
    /* memory the thread's rounds keep between calls (theirs to grow with
     * realloc); freed when the thread stops */
    void *scratch;
    size_t scratch_bytes;
    /* the same for help, under `serve`; freed when the thread stops */
    void *help_scratch;
    size_t help_scratch_bytes;
    /* the rest is the registry's own */
    pthread_mutex_t life; /* start, stop, registration */
    pthread_mutex_t lock; /* links, n, gen, ack, stop */
    pthread_mutex_t serve; /* held while a thread moves bytes of these links (round or help) */
    pthread_cond_t acked;
    struct net_end **links;
    int n, cap;
    uint64_t gen, ack; /* list version; the version the thread has taken */
    int stop, running;
    _Atomic pid_t pid; /* read by net_progress_help without `life`: links now register while other ranks run */
    pthread_t thread;
    _Atomic int evfd;
    _Atomic int sleeping;     /* the thread may block in its round */
    _Atomic int wake_pending; /* an eventfd write it has not read yet */
};

#define NET_PROGRESS_INIT(name, fn, helpfn)                                                      \
    {.thread_name = (name), .round = (fn), .help = (helpfn), .life = PTHREAD_MUTEX_INITIALIZER,  \
     .lock = PTHREAD_MUTEX_INITIALIZER, .serve = PTHREAD_MUTEX_INITIALIZER,                      \
     .acked = PTHREAD_COND_INITIALIZER, .evfd = -1}

/* Wake the thread when it naps (force: always). */
void net_progress_kick(struct net_progress *g, int force);
/* Called by a round that found wake_fd readable: consumes the wake-up. */
void net_progress_woken(struct net_progress *g, int wake_fd);
/* Start serving e (the first link starts the thread; in a forked child
 * the parent's thread is forgotten and a new one starts). */
ppu_result_t net_progress_add(struct net_progress *g, struct net_end *e);
/* After this the thread no longer touches e; the last link stops it. */
void net_progress_remove(struct net_progress *g, struct net_end *e);
/* A core thread that would otherwise idle while it waits on a link serves
 * every link of g once itself (g->help), unless g's thread is serving
 * them right now; nonzero when anything moved. On a host with fewer cores
 * than threads this does the thread's work without a switch to it, and
 * anywhere it saves the thread's wake-up on the critical path. */
int net_progress_help(struct net_progress *g);

#endif
