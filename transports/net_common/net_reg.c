/* The registration cache: see net_reg.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net_reg.h"
#include "../transport.h"

#define LOG_WARN 1
#define LOG_INFO 2

struct net_reg_dom {
    void *dom;        /* NULL: unused */
    void *handle;     /* the registration, or NULL when it failed */
    const struct net_reg_ops *ops;
};

struct net_reg_region {
    struct net_reg_region *next;
    const void *owner;
    uintptr_t lo, hi; /* [lo, hi) */
    struct net_reg_dom d[NET_REG_DOMAINS];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct net_reg_region *regions;
static _Atomic int nregions;

ppu_result_t net_reg_add(const void *owner, const void *addr, size_t bytes, void **region)
{
    struct net_reg_region *r = calloc(1, sizeof *r);
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

static void region_dereg(struct net_reg_region *r)
{
    for (int i = 0; i < NET_REG_DOMAINS; i++)
        if (r->d[i].dom && r->d[i].handle)
            r->d[i].ops->dereg(r->d[i].handle);
}

/* Unlinks the regions that match (lock held), then deregisters and frees
 * them. */
static int remove_where(const void *owner, const struct net_reg_region *only)
{
    struct net_reg_region *gone = NULL, **pp = &regions;
    int n = 0;
    while (*pp) {
        struct net_reg_region *r = *pp;
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
        struct net_reg_region *r = gone;
        gone = r->next;
        region_dereg(r);
        free(r);
    }
    return n;
}

int net_reg_remove(const void *owner, void *region)
{
    if (!region)
        return -1;
    pthread_mutex_lock(&lock);
    int n = remove_where(owner, region);
    pthread_mutex_unlock(&lock);
    return n ? 0 : -1;
}

void net_reg_remove_owner(const void *owner)
{
    if (!atomic_load(&nregions))
        return;
    pthread_mutex_lock(&lock);
    remove_where(owner, NULL);
    pthread_mutex_unlock(&lock);
}

static struct net_reg_region *find(const void *owner, const void *p, size_t n)
{
    uintptr_t lo = (uintptr_t)p, hi = lo + n;
    if (hi < lo)
        return NULL;
    for (struct net_reg_region *r = regions; r; r = r->next)
        if (r->owner == owner && lo >= r->lo && hi <= r->hi)
            return r;
    return NULL;
}

int net_reg_covers(const void *owner, const void *p, size_t n)
{
    if (!atomic_load_explicit(&nregions, memory_order_relaxed))
        return 0;
    pthread_mutex_lock(&lock);
    int yes = find(owner, p, n) != NULL;
    pthread_mutex_unlock(&lock);
    return yes;
}

void *net_reg_get(const void *owner, const void *p, size_t n, void *dom,
                  const struct net_reg_ops *ops)
{
    if (!atomic_load_explicit(&nregions, memory_order_relaxed))
        return NULL;
    void *h = NULL;
    pthread_mutex_lock(&lock);
    struct net_reg_region *r = find(owner, p, n);
    if (r) {
        struct net_reg_dom *d = NULL;
        for (int i = 0; i < NET_REG_DOMAINS && !d; i++)
            if (r->d[i].dom == dom)
                d = &r->d[i];
        if (d) {
            h = d->handle;
        } else {
            for (int i = 0; i < NET_REG_DOMAINS && !d; i++)
                if (!r->d[i].dom)
                    d = &r->d[i];
            if (d) {
                errno = 0;
                h = ops->reg(dom, (void *)r->lo, r->hi - r->lo);
                *d = (struct net_reg_dom){dom, h, ops};
                if (!h)
                    ppu_transport_log(LOG_WARN, "%s: registering %zu bytes at %p failed (%s); "
                                      "messages from it go through the FIFO", ops->name,
                                      (size_t)(r->hi - r->lo), (void *)r->lo,
                                      errno ? strerror(errno) : "no reason given");
                else
                    ppu_transport_log(LOG_INFO, "%s: registered %zu bytes at %p", ops->name,
                                      (size_t)(r->hi - r->lo), (void *)r->lo);
            }
        }
    }
    pthread_mutex_unlock(&lock);
    return h;
}

void net_reg_drop_domain(void *dom)
{
    if (!atomic_load(&nregions))
        return;
    pthread_mutex_lock(&lock);
    for (struct net_reg_region *r = regions; r; r = r->next)
        for (int i = 0; i < NET_REG_DOMAINS; i++)
            if (r->d[i].dom == dom) {
                if (r->d[i].handle)
                    r->d[i].ops->dereg(r->d[i].handle);
                memset(&r->d[i], 0, sizeof r->d[i]);
            }
    pthread_mutex_unlock(&lock);
}

int net_reg_count(void)
{
    return atomic_load(&nregions);
}
