/* Streams: an in-order queue of collectives served by one worker thread,
 * so the caller can compute while communication runs. */
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "comm.h"

struct task {
    struct ppu_coll_args *args; /* n calls run as one group, owned */
    int n;
    struct task *next;
};

struct ppu_stream {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct task *head, *tail;
    int busy;
    int stop;
    ppu_result_t error; /* first error since the last synchronize */
};

static void *worker(void *p)
{
    struct ppu_stream *s = p;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->stop)
            pthread_cond_wait(&s->cond, &s->lock);
        if (!s->head)
            break;
        struct task *t = s->head;
        s->head = t->next;
        if (!s->head)
            s->tail = NULL;
        s->busy = 1;
        pthread_mutex_unlock(&s->lock);

        ppu_result_t r = ppu_coll_run_group(t->args, t->n);
        for (int i = 0; i < t->n; i++) {
            struct ppu_comm *comm = t->args[i].comm;
            if (r != PPU_SUCCESS) {
                ppu_result_t none = PPU_SUCCESS;
                atomic_compare_exchange_strong(&comm->async_error, &none, r);
            }
            free(t->args[i].v);
            atomic_fetch_sub(&comm->pending, 1);
        }
        free(t->args);
        free(t);

        pthread_mutex_lock(&s->lock);
        if (r != PPU_SUCCESS && s->error == PPU_SUCCESS)
            s->error = r;
        s->busy = 0;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

ppu_result_t ppu_stream_create(ppu_stream_t *out)
{
    if (!out)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_stream_create: stream is NULL");
    struct ppu_stream *s = calloc(1, sizeof *s);
    if (!s)
        return ppu_fail(NULL, PPU_SYSTEM_ERROR, "ppu_stream_create: out of memory");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        free(s);
        return ppu_fail(NULL, PPU_SYSTEM_ERROR, "ppu_stream_create: cannot start its thread");
    }
    *out = s;
    return PPU_SUCCESS;
}

ppu_result_t ppu_stream_enqueue(struct ppu_stream *s, struct ppu_coll_args *args, int n)
{
    struct ppu_comm *comm0 = args->comm;
    struct task *t = malloc(sizeof *t);
    struct ppu_coll_args *own = n == 1 ? malloc(sizeof *own) : args;
    if (!t || !own) {
        free(t);
        for (int i = 0; i < n; i++)
            free(args[i].v);
        if (n == 1)
            free(own);
        else
            free(args);
        return ppu_fail(comm0, PPU_SYSTEM_ERROR, "stream enqueue: out of memory");
    }
    if (n == 1)
        *own = *args;
    t->args = own;
    t->n = n;
    t->next = NULL;
    for (int i = 0; i < n; i++)
        atomic_fetch_add(&own[i].comm->pending, 1);
    pthread_mutex_lock(&s->lock);
    if (s->tail)
        s->tail->next = t;
    else
        s->head = t;
    s->tail = t;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return PPU_SUCCESS;
}

ppu_result_t ppu_stream_synchronize(ppu_stream_t s)
{
    if (!s)
        return PPU_SUCCESS; /* the NULL stream is always complete */
    pthread_mutex_lock(&s->lock);
    while (s->head || s->busy)
        pthread_cond_wait(&s->cond, &s->lock);
    ppu_result_t r = s->error;
    s->error = PPU_SUCCESS;
    pthread_mutex_unlock(&s->lock);
    return r;
}

ppu_result_t ppu_stream_query(ppu_stream_t s)
{
    if (!s)
        return PPU_SUCCESS;
    pthread_mutex_lock(&s->lock);
    ppu_result_t r = (s->head || s->busy) ? PPU_IN_PROGRESS : s->error;
    pthread_mutex_unlock(&s->lock);
    return r;
}

ppu_result_t ppu_stream_destroy(ppu_stream_t s)
{
    if (!s)
        return ppu_fail(NULL, PPU_INVALID_ARGUMENT, "ppu_stream_destroy: stream is NULL");
    ppu_stream_synchronize(s);
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
    return PPU_SUCCESS;
}
