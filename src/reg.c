/* The registration cache: see reg.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reg.h"
#include "../transports/transport.h"

#define LOG_WARN 1
#define LOG_INFO 2

struct ppu_reg_dom {
    void *dom;        /* NULL: unused */
    void *handle;     /* the registration; NULL while ops->reg runs (without the
                       * lock), and after it failed */
    const struct ppu_reg_ops *ops;
};

struct ppu_reg_region {
    struct ppu_reg_region *next;
    const void *owner;
    uintptr_t lo, hi; /* [lo, hi) */
    struct ppu_reg_dom d[PPU_REG_DOMAINS];
    int full_logged;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct ppu_reg_region *regions;
static _Atomic int nregions;

ppu_result_t ppu_reg_add(const void *owner, const void *addr, size_t bytes, void **region)
{
    struct ppu_reg_region *r = calloc(1, sizeof *r);
    if (!r)
        return PPU_SYSTEM_ERROR;
    r->owner = owner;
    r->lo = (uintptr_t)addr;
    r->hi = r->lo + bytes;
    pthread_mutex_lock(&lock);
    r->next = regions;
    regions = r;
    atomic_fetch_add(&nregions, 1);
    pthread_mutex_unlock(&lock);
    *region = r;
    return PPU_SUCCESS;
}

static void region_dereg(struct ppu_reg_region *r)
{
    for (int i = 0; i < PPU_REG_DOMAINS; i++)
        if (r->d[i].dom && r->d[i].handle)
            r->d[i].ops->dereg(r->d[i].handle);
}

/* Unlinks the regions that match (lock held), then deregisters and frees
 * them. */
static int remove_where(const void *owner, const struct ppu_reg_region *only)
{
    struct ppu_reg_region *gone = NULL, **pp = &regions;
    int n = 0;
    while (*pp) {
        struct ppu_reg_region *r = *pp;
        if (r->owner == owner && (!only || r == only)) {
            *pp = r->next;
            r->next = gone;
            gone = r;
            n++;
        } else {
            pp = &r->next;
        }
    }
    atomic_fetch_sub(&nregions, n);
    while (gone) {
        struct ppu_reg_region *r = gone;
        gone = r->next;
        region_dereg(r);
        free(r);
    }
    return n;
}

int ppu_reg_remove(const void *owner, void *region)
{
    if (!region)
        return -1;
    pthread_mutex_lock(&lock);
    int n = remove_where(owner, region);
    pthread_mutex_unlock(&lock);
    return n ? 0 : -1;
}

void ppu_reg_remove_owner(const void *owner)
{
    if (!atomic_load(&nregions))
        return;
    pthread_mutex_lock(&lock);
    remove_where(owner, NULL);
    pthread_mutex_unlock(&lock);
}

static _Atomic uint64_t n_found, n_keyed;

static struct ppu_reg_region *find(const void *owner, const void *p, size_t n)
{
    uintptr_t lo = (uintptr_t)p, hi = lo + n;
    if (hi < lo || n == 0)
        return NULL;
    for (struct ppu_reg_region *r = regions; r; r = r->next)
        if (r->owner == owner && lo >= r->lo && hi <= r->hi) {
            atomic_fetch_add_explicit(&n_found, 1, memory_order_relaxed);
            return r;
        }
    return NULL;
}

int ppu_reg_covers(const void *owner, const void *p, size_t n)
{
    if (!atomic_load_explicit(&nregions, memory_order_relaxed))
        return 0;
    pthread_mutex_lock(&lock);
    int yes = find(owner, p, n) != NULL;
    pthread_mutex_unlock(&lock);
    return yes;
}

int ppu_reg_get(const void *owner, const void *p, size_t n, void *dom,
                const struct ppu_reg_ops *ops, uint64_t *key)
{
    if (!atomic_load_explicit(&nregions, memory_order_relaxed))
        return 0;
    pthread_mutex_lock(&lock);
    struct ppu_reg_region *r = find(owner, p, n);
    struct ppu_reg_dom *d = NULL, *fresh = NULL;
    for (int i = 0; r && i < PPU_REG_DOMAINS && !d; i++)
        if (r->d[i].dom == dom)
            d = &r->d[i];
    for (int i = 0; r && !d && i < PPU_REG_DOMAINS && !fresh; i++)
        if (!r->d[i].dom)
            fresh = &r->d[i];
    if (r && !d && !fresh && !r->full_logged) {
        r->full_logged = 1;
        ppu_transport_log(LOG_WARN, "%s: %zu bytes at %p are registered with %d devices already; "
                          "messages from it to another go through the FIFO", ops->name,
                          (size_t)(r->hi - r->lo), (void *)r->lo, PPU_REG_DOMAINS);
    }
    if (fresh) {
        /* claimed, then registered without the lock (see reg.h) */
        *fresh = (struct ppu_reg_dom){dom, NULL, ops};
        void *addr = (void *)r->lo;
        size_t bytes = (size_t)(r->hi - r->lo);
        pthread_mutex_unlock(&lock);
        errno = 0;
        void *h = ops->reg(dom, addr, bytes);
        int err = errno;
        if (!h)
            ppu_transport_log(LOG_WARN, "%s: registering %zu bytes at %p failed (%s); messages "
                              "from it go through the FIFO", ops->name, bytes, addr,
                              err ? strerror(err) : "no reason given");
        else
            ppu_transport_log(LOG_INFO, "%s: registered %zu bytes at %p", ops->name, bytes, addr);
        pthread_mutex_lock(&lock);
        fresh->handle = h;
        d = fresh;
    }
    int ok = d && d->handle;
    if (ok) {
        *key = ops->key(d->handle);
        atomic_fetch_add_explicit(&n_keyed, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&lock);
    return ok;
}

void ppu_reg_drop_domain(void *dom)
{
    if (!atomic_load(&nregions))
        return;
    pthread_mutex_lock(&lock);
    for (struct ppu_reg_region *r = regions; r; r = r->next)
        for (int i = 0; i < PPU_REG_DOMAINS; i++)
            if (r->d[i].dom == dom) {
                if (r->d[i].handle)
                    r->d[i].ops->dereg(r->d[i].handle);
                memset(&r->d[i], 0, sizeof r->d[i]);
            }
    pthread_mutex_unlock(&lock);
}

int ppu_reg_count(void)
{
    return atomic_load(&nregions);
}

void ppu_reg_stats(uint64_t *found, uint64_t *keyed)
{
    *found = atomic_load(&n_found);
    *keyed = atomic_load(&n_keyed);
}
