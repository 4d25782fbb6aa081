/* The network transports' progress thread: see net_progress.h. */
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "net_progress.h"

#define SPIN_ROUNDS 64 /* idle rounds (yielding between them) before the thread naps */
#define NAP_MS 100     /* its longest nap; a wake-up cuts it short */
#define LOG_WARN 1

void net_progress_kick(struct net_progress *g, int force)
{
    if (!force && !atomic_load_explicit(&g->sleeping, memory_order_seq_cst))
        return;
    if (atomic_exchange_explicit(&g->wake_pending, 1, memory_order_acq_rel))
        return;
    uint64_t one = 1;
    int fd = atomic_load_explicit(&g->evfd, memory_order_relaxed);
    if (fd >= 0 && write(fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, so the thread wakes anyway */
    }
}

void net_progress_woken(struct net_progress *g, int wake_fd)
{
    uint64_t v;
    if (read(wake_fd, &v, sizeof v) < 0) {
        /* EAGAIN: another round will see it */
    }
    atomic_store_explicit(&g->wake_pending, 0, memory_order_seq_cst);
}

static void *progress_main(void *arg)
{
    struct net_progress *g = arg;
    struct net_end **ls = NULL;
    int nl = 0, lcap = 0, idle = 0;
    uint64_t seen = ~0ull;
    for (;;) {
        pthread_mutex_lock(&g->lock);
        int stop = g->stop;
        if (!stop && g->gen != seen) {
            if (g->n > lcap) {
                struct net_end **nls = realloc(ls, (size_t)g->n * sizeof *nls);
                if (!nls) {
                    pthread_mutex_unlock(&g->lock);
                    ppu_transport_log(LOG_WARN, "%s: progress thread out of memory",
                                      g->thread_name);
                    usleep(10000);
                    continue;
                }
                ls = nls;
                lcap = g->n;
            }
            if (g->n)
                memcpy(ls, g->links, (size_t)g->n * sizeof *ls);
            nl = g->n;
            seen = g->gen;
            g->ack = seen;
            pthread_cond_broadcast(&g->acked);
        }
        pthread_mutex_unlock(&g->lock);
        if (stop)
            break;
        int nap = idle >= SPIN_ROUNDS;
        if (nap) /* before the round reads the counters: see net_progress_kick */
            atomic_store_explicit(&g->sleeping, 1, memory_order_seq_cst);
        int moved = g->round(g, ls, nl, nap ? NAP_MS : 0,
                             atomic_load_explicit(&g->evfd, memory_order_relaxed));
        if (nap)
            atomic_store_explicit(&g->sleeping, 0, memory_order_relaxed);
        if (moved)
            idle = 0;
        else if (++idle < SPIN_ROUNDS)
            sched_yield();
    }
    free(ls);
    return NULL;
}

int net_progress_help(struct net_progress *g)
{
    /* in a forked child that has not started its own thread, the links
     * listed are the parent's: not ours to serve */
    if (!g->help || g->pid != getpid() || pthread_mutex_trylock(&g->serve) != 0)
        return 0;
    /* the list cannot change (net_progress_remove) while it is served */
    pthread_mutex_lock(&g->lock);
    int moved = g->n ? g->help(g, g->links, g->n) : 0;
    pthread_mutex_unlock(&g->lock);
    pthread_mutex_unlock(&g->serve);
    return moved;
}

ppu_result_t net_progress_add(struct net_progress *g, struct net_end *e)
{
    ppu_result_t r = PPU_SUCCESS;
    pthread_mutex_lock(&g->life);
    if (g->running && g->pid != getpid()) {
        /* a forked child: the parent's thread is not here, and a lock it
         * (or a core's help) held at the fork stays held in this copy */
        g->running = 0;
        g->n = 0;
        pthread_mutex_init(&g->lock, NULL);
        pthread_mutex_init(&g->serve, NULL);
        pthread_cond_init(&g->acked, NULL);
        int fd = atomic_exchange(&g->evfd, -1);
        if (fd >= 0)
            close(fd);
    }
    if (!g->running) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) {
            r = PPU_SYSTEM_ERROR;
        } else {
            atomic_store(&g->evfd, fd);
            atomic_store(&g->sleeping, 0);
            atomic_store(&g->wake_pending, 0);
            pthread_mutex_lock(&g->lock);
            g->stop = 0;
            g->gen = g->ack = 0;
            pthread_mutex_unlock(&g->lock);
            /* signals go to the application's threads, not this one */
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            int err = pthread_create(&g->thread, NULL, progress_main, g);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            if (err != 0) {
                atomic_store(&g->evfd, -1);
                close(fd);
                r = PPU_SYSTEM_ERROR;
            } else {
                pthread_setname_np(g->thread, g->thread_name);
                g->running = 1;
                g->pid = getpid();
            }
        }
    }
    if (r == PPU_SUCCESS) {
        pthread_mutex_lock(&g->lock);
        if (g->n == g->cap) {
            int cap = g->cap ? 2 * g->cap : 64;
            struct net_end **nl = realloc(g->links, (size_t)cap * sizeof *nl);
            if (nl) {
                g->links = nl;
                g->cap = cap;
            }
        }
        if (g->n < g->cap) {
            g->links[g->n++] = e;
            g->gen++;
        } else {
            r = PPU_SYSTEM_ERROR;
        }
        pthread_mutex_unlock(&g->lock);
    }
    pthread_mutex_unlock(&g->life);
    if (r == PPU_SUCCESS)
        net_progress_kick(g, 1);
    return r;
}

void net_progress_remove(struct net_progress *g, struct net_end *e)
{
    pthread_mutex_lock(&g->life);
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < g->n; i++)
        if (g->links[i] == e) {
            g->links[i] = g->links[--g->n];
            break;
        }
    uint64_t mine = ++g->gen;
    int last = g->n == 0;
    if (last)
        g->stop = 1;
    pthread_mutex_unlock(&g->lock);
    net_progress_kick(g, 1);
    if (last) {
        pthread_join(g->thread, NULL);
        free(g->scratch);
        g->scratch = NULL;
        g->scratch_bytes = 0;
        pthread_mutex_lock(&g->serve);
        free(g->help_scratch);
        g->help_scratch = NULL;
        g->help_scratch_bytes = 0;
        pthread_mutex_unlock(&g->serve);
        int fd = atomic_exchange(&g->evfd, -1);
        close(fd);
        g->running = 0;
    } else {
        pthread_mutex_lock(&g->lock);
        while (g->ack < mine)
            pthread_cond_wait(&g->acked, &g->lock);
        pthread_mutex_unlock(&g->lock);
    }
    pthread_mutex_unlock(&g->life);
}
