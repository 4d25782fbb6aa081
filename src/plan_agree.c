/* At init every rank states what its plans depend on: the plan-changing
 * settings, the topology it discovered, and its host's core count (the
 * cost model's input). The ranks compare a hash of it through the
 * bootstrap (16 bytes a rank); where any rank's differs, they exchange the
 * statements themselves and every rank fails with the same sentence,
 * naming the setting and which ranks hold which value. Without this, ranks
 * that plan differently fail later and obscurely (a FIFO that is gone, or
 * "different collectives or counts" at the first call).
 *
 * The hash is XXH3 (Debian's libxxhash): fast, well tested, and not ours
 * to maintain; nothing here needs a cryptographic hash. */
#include <arpa/inet.h>
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "check.h"
#include "comm.h"
#include "util/log.h"
#include "util/param.h"

#define STATEMENT_BYTES 1024

/* This build's version, as the ranks compare it (a variable, not the
 * macro, so a test can make some ranks claim another). */
const char *ppu_lib_version = PPU_VERSION_STRING;

/* One "NAME=value" line per input of the plan, in a fixed order. */
static void statement(const struct ppu_comm *comm, const struct ppu_plan_settings *set, char *buf,
                      size_t len)
{
    const struct ppu_cluster *cl = &comm->cl;
    int n = comm->nranks;
    XXH3_state_t *h = XXH3_createState();
    uint64_t topo_hash = 0;
    if (h && XXH3_64bits_reset(h) == XXH_OK) {
        XXH3_64bits_update(h, &n, sizeof n);
        XXH3_64bits_update(h, cl->server, sizeof *cl->server * (size_t)n);
        for (int s = 0; s < cl->nservers; s++) {
            const struct ppu_topo *t = cl->stopo[s];
            if (s > 0 && t == cl->stopo[s - 1])
                continue; /* servers of one preset share its graph */
            XXH3_64bits_update(h, &t->nchips, sizeof t->nchips);
            for (int a = 0; a < t->nchips; a++)
                XXH3_64bits_update(h, t->link[a], (size_t)t->nchips);
        }
        topo_hash = XXH3_64bits_digest(h);
    }
    XXH3_freeState(h);
    memset(buf, 0, len);
    snprintf(buf, len,
             "ppuccl version=%s\n"
             "PPU_ALGO=%s\nPPU_PROTO=%s\nPPU_CHUNK_SIZE=%zu\nPPU_P2P_CHUNK_SIZE=%zu\n"
             "PPU_LL_MAX_BYTES=%zu\nPPU_ONESHOT_MAX_BYTES=%zu\nPPU_CHANNEL_MIN_BYTES=%zu\n"
             "PPU_FIFO_SLOTS=%d\nPPU_NCHANNELS=%d\nPPU_CHECK_CALLS=%d\nPPU_CHECKSUM=%d\n"
             "PPU_SOCKET_NSOCKS=%lld\nPPU_SIM_TOPO=%s\nPPU_SIM_SERVERS=%s\nPPU_SIM_LINKS_DOWN=%s\n"
             "topology=%s from %s, links and servers hashed %016llx\n",
             ppu_lib_version, ppu_param_str(PPU_P_ALGO), ppu_param_str(PPU_P_PROTO),
             set->chunk_bytes,
             set->peer_slot, set->ll_max, set->oneshot_max, set->channel_min_bytes,
             set->fifo_slots, set->nchannels, comm->check_calls, comm->checksum,
             ppu_param_int(PPU_P_SOCKET_NSOCKS), ppu_param_str(PPU_P_SIM_TOPO),
             ppu_param_str(PPU_P_SIM_SERVERS), ppu_param_str(PPU_P_SIM_LINKS_DOWN), cl->name,
             cl->source, (unsigned long long)topo_hash);
}

/* Line k of a statement (without its newline) as [*start, *start + *len). */
static int line_at(const char *s, int k, const char **start, size_t *len)
{
    for (int i = 0; i < k; i++) {
        s = strchr(s, '\n');
        if (!s)
            return 0;
        s++;
    }
    if (!*s)
        return 0;
    const char *e = strchr(s, '\n');
    *start = s;
    *len = e ? (size_t)(e - s) : strlen(s);
    return 1;
}

/* "0-3,7" for the ranks whose line k equals rank first's, appended to buf. */
static size_t ranks_with(const char *all, int n, int k, int first, char *buf, size_t o,
                         size_t len, unsigned char *done)
{
    const char *ref = "", *v;
    size_t rl = 0, vl;
    line_at(all + (size_t)first * STATEMENT_BYTES, k, &ref, &rl);
    int run = -1, any = 0;
    for (int r = first; r <= n; r++) {
        int same = r < n && !done[r] && line_at(all + (size_t)r * STATEMENT_BYTES, k, &v, &vl) &&
                   vl == rl && !memcmp(v, ref, rl);
        if (same) {
            done[r] = 1;
            if (run < 0)
                run = r;
            continue;
        }
        if (run >= 0 && o < len) {
            o += (size_t)snprintf(buf + o, len - o, run == r - 1 ? "%s%d" : "%s%d-%d",
                                  any ? "," : "", run, r - 1);
            any = 1;
        }
        run = -1;
    }
    return o < len ? o : len;
}

/* The sentence for statements that differ: the first line on which any
 * rank differs from rank 0, and every value of it with its ranks. */
static void explain(const char *all, int n, char *buf, size_t len)
{
    unsigned char *done = calloc((size_t)n, 1);
    const char *ref = "", *v;
    size_t rl = 0, vl;
    int k = 0, diff = 0;
    for (; !diff && line_at(all, k, &ref, &rl); k++)
        for (int r = 1; r < n && !diff; r++)
            diff = !line_at(all + (size_t)r * STATEMENT_BYTES, k, &v, &vl) || vl != rl ||
                   memcmp(v, ref, rl);
    k--;
    if (!done || !diff) {
        snprintf(buf, len, "the ranks' plan inputs differ (their hashes do)");
        free(done);
        return;
    }
    const char *eq = memchr(ref, '=', rl);
    int nl = eq ? (int)(eq - ref) : (int)rl;
    /* the library's own version: not a setting, and not only a plan matter */
    int version = k == 0;
    size_t o = (size_t)snprintf(buf, len, "%s: %.*s is",
                                version ? "the ranks run different ppuccl builds"
                                        : "the ranks would plan differently",
                                nl, ref);
    int groups = 0;
    for (int r = 0; r < n && o < len; r++) {
        if (done[r])
            continue;
        if (!line_at(all + (size_t)r * STATEMENT_BYTES, k, &v, &vl)) {
            done[r] = 1;
            continue;
        }
        const char *ve = memchr(v, '=', vl);
        int off = ve ? (int)(ve - v) + 1 : 0;
        if (groups++ == 8) {
            o += (size_t)snprintf(buf + o, len - o, "; and other values");
            break;
        }
        if ((int)vl == off)
            o += (size_t)snprintf(buf + o, len - o, "%s unset on rank(s) ", groups > 1 ? ";" : "");
        else
            o += (size_t)snprintf(buf + o, len - o, "%s '%.*s' on rank(s) ",
                                  groups > 1 ? ";" : "", (int)vl - off, v + off);
        if (o < len)
            o = ranks_with(all, n, k, r, buf, o, len, done);
    }
    if (o < len && version)
        snprintf(buf + o, len - o, ". Every rank must load the same ppuccl (check "
                 "LD_LIBRARY_PATH and the install on every host)");
    else if (o < len)
        snprintf(buf + o, len - o, ". Every rank must use the same value: it changes the "
                 "schedules the ranks build");
    free(done);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The most ranks a core on any host: ranks per host (from the bootstrap's
 * host hashes) over that host's core count. */
static double job_oversubscription(const struct ppu_comm *comm, const int32_t *cores)
{
    int n = comm->nranks;
    uint64_t *h = malloc(sizeof *h * (size_t)n);
    if (!h)
        return 1;
    memcpy(h, comm->bs->host_hash, sizeof *h * (size_t)n);
    qsort(h, (size_t)n, sizeof *h, cmp_u64);
    double over = 1;
    for (int r = 0; r < n; r++) {
        uint64_t key = comm->bs->host_hash[r];
        const uint64_t *at = bsearch(&key, h, (size_t)n, sizeof *h, cmp_u64);
        size_t lo = (size_t)(at - h), hi = lo;
        while (lo > 0 && h[lo - 1] == key)
            lo--;
        while (hi < (size_t)n && h[hi] == key)
            hi++;
        double o = cores[r] > 0 ? (double)(hi - lo) / cores[r] : 1;
        over = o > over ? o : over;
    }
    free(h);
    return over;
}

ppu_result_t ppu_plan_agree(struct ppu_comm *comm, const struct ppu_plan_settings *set, int cores,
                            double *over)
{
    int n = comm->nranks;
    char mine[STATEMENT_BYTES];
    statement(comm, set, mine, sizeof mine);
    struct wire {
        uint64_t hash;
        int32_t cores;
        int32_t pad;
    } *all = calloc((size_t)n, sizeof *all);
    int32_t *cr = malloc(sizeof *cr * (size_t)n);
    if (!all || !cr) {
        free(all);
        free(cr);
        return ppu_fail(comm, PPU_SYSTEM_ERROR, "rank %d: out of memory", comm->rank);
    }
    uint64_t hash = XXH3_64bits(mine, strlen(mine));
    all[comm->rank] = (struct wire){htobe64(hash), (int32_t)htonl((uint32_t)cores), 0};
    ppu_result_t r = ppu_bootstrap_allgather(comm->bs, all, sizeof *all);
    int same = 1;
    for (int q = 0; r == PPU_SUCCESS && q < n; q++) {
        same &= all[q].hash == all[0].hash;
        cr[q] = (int32_t)ntohl((uint32_t)all[q].cores);
    }
    free(all);
    if (r != PPU_SUCCESS) {
        free(cr);
        return ppu_fail(comm, r, "rank %d: could not compare plan settings with the other ranks "
                        "(bootstrap exchange failed)", comm->rank);
    }
    *over = job_oversubscription(comm, cr);
    free(cr);
    if (same) {
        PPU_INFO(PPU_SUB_INIT, "rank %d: plan inputs agreed (hash %016llx; cost model for %.2f "
                 "ranks a core)", comm->rank, (unsigned long long)hash, *over);
        return PPU_SUCCESS;
    }
    /* Someone differs: everyone sends its statement, everyone names the
     * same difference. */
    char *texts = calloc((size_t)n, STATEMENT_BYTES), why[PPU_ERR_LEN];
    if (!texts)
        return ppu_fail(comm, PPU_INVALID_USAGE, "rank %d: the ranks' plan settings differ (and "
                        "there was no memory to say how)", comm->rank);
    memcpy(texts + (size_t)comm->rank * STATEMENT_BYTES, mine, STATEMENT_BYTES);
    r = ppu_bootstrap_allgather(comm->bs, texts, STATEMENT_BYTES);
    if (r == PPU_SUCCESS)
        explain(texts, n, why, sizeof why);
    else
        snprintf(why, sizeof why, "the ranks' plan settings differ (their hashes do)");
    free(texts);
    return ppu_fail(comm, PPU_INVALID_USAGE, "%s", why);
}
