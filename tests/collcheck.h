/* One call of one collective, made by every rank and checked against the
 * independent references of refval.h (test_colls.c, test_net.c):
 *
 *     struct cc_case k = {.coll = CC_RD, .dt = PPU_INT8, .op = PPU_MAX,
 *                         .count = 1023, .inplace = 1, .root = 3};
 *     bad += cc_check(comm, rank, nranks, &k);
 *
 * cc_check returns the number of wrong elements (1 if the call failed) and
 * names the call and its first wrong element on stderr. Every call:
 * - uses buffers one byte past malloc's, never aligned to the type;
 * - poisons the output (0xA5) first, then compares every element the
 *   collective writes (reduce: on the root only);
 * - in place, where cc_has_inplace(): all-reduce and reduce into the send
 *   buffer, broadcast from the receive buffer, all-gather from the rank's
 *   own block of the output, reduce-scatter into its block of the input;
 * - alltoallv: rank r sends ((r + 2p) % 4) * count + p elements to p, with
 *   gaps between the blocks on both sides; the gaps must stay poisoned;
 * - sendrecv: one group, an exchange per distance d in .p2p: send to r + d,
 *   receive from r - d (d = 0: the rank itself); a distance d > 0 that is a
 *   multiple of n (one rank) is skipped. The first exchange goes through
 *   the checked output, each other one is compared whole.
 * root is printed for every collective, used by broadcast and reduce. */
#ifndef PPU_TEST_COLLCHECK_H
#define PPU_TEST_COLLCHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ppuccl.h"
#include "refval.h"

enum { CC_AR, CC_BC, CC_RD, CC_AG, CC_RS, CC_A2A, CC_A2AV, CC_P2P, CC_NCOLL };

#define CC_MAX_P2P 4
#define CC_MAX_RANKS 64

struct cc_case {
    int coll;              /* CC_AR .. CC_P2P */
    ppu_datatype_t dt;
    ppu_redop_t op;        /* where cc_has_op() */
    size_t count;          /* elements per rank, or per block */
    int inplace;           /* where cc_has_inplace() */
    int root;
    int p2p[CC_MAX_P2P];   /* sendrecv: distances, each >= 0 */
    int np2p;
};

static inline const char *cc_name(int coll)
{
    static const char *const names[CC_NCOLL] = {"allreduce", "broadcast",      "reduce",
                                                "allgather", "reduce_scatter", "alltoall",
                                                "alltoallv", "sendrecv"};
    return coll >= 0 && coll < CC_NCOLL ? names[coll] : "?";
}

static inline int cc_has_op(int coll)
{
    return coll == CC_AR || coll == CC_RD || coll == CC_RS;
}

static inline int cc_has_inplace(int coll)
{
    return coll != CC_A2A && coll != CC_A2AV && coll != CC_P2P;
}

/* The value rank `from` sends rank `to` at i (all-to-all, sendrecv). */
static inline double cc_a2a_val(int from, int to, size_t i)
{
    return ref_input(from * 64 + to, i, PPU_INT32, PPU_SUM);
}

static inline void cc_store(void *buf, size_t i, ppu_datatype_t dt, double v)
{
    ref_store(buf, i, dt, v, (uint64_t)(int64_t)v);
}

/* alltoallv: elements rank `from` sends rank `to` */
static inline size_t cc_v_count(int from, int to, size_t unit)
{
    return (size_t)((from + 2 * to) % 4) * unit + (size_t)to;
}

/* Elements of n (each es bytes) where got differs from want; the first is
 * named on stderr. */
static inline size_t cc_wrong(const char *got, const char *want, size_t n, size_t es,
                              const char *what, int rank)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(got + i * es, want + i * es, es)) {
            if (!bad)
                fprintf(stderr, "rank %d %s: first wrong element %zu of %zu\n", rank, what, i, n);
            bad++;
        }
    return bad;
}

/* sendrecv (see the top): exchange 0 sends `send` into `recv`, expecting
 * `want`, and sets *check to the elements cc_check compares; the others
 * use buffers of their own, and add what they got wrong to *bad. */
static inline ppu_result_t cc_sendrecv(ppu_comm_t comm, int r, int n, const struct cc_case *c,
                                       char *send, char *recv, char *want, size_t *check,
                                       size_t *bad)
{
    size_t count = c->count, nb = count * ppu_datatype_size(c->dt);
    char *s[CC_MAX_P2P], *o[CC_MAX_P2P], *w[CC_MAX_P2P];
    int to[CC_MAX_P2P], from[CC_MAX_P2P], on[CC_MAX_P2P];
    for (int k = 0; k < c->np2p; k++) {
        int d = c->p2p[k] % n;
        on[k] = c->p2p[k] == 0 || d != 0;
        to[k] = (r + d) % n;
        from[k] = (r + n - d) % n;
        s[k] = k ? malloc(nb + 1) : send;
        o[k] = k ? malloc(nb + 1) : recv;
        w[k] = k ? malloc(nb + 1) : want;
        if (k)
            memset(o[k], 0xA5, nb);
        for (size_t i = 0; i < count; i++) {
            cc_store(s[k], i, c->dt, cc_a2a_val(r, to[k], i) + k);
            cc_store(w[k], i, c->dt, cc_a2a_val(from[k], r, i) + k);
        }
    }
    ppu_result_t res = PPU_SUCCESS;
    ppu_group_start();
    for (int k = 0; k < c->np2p && res == PPU_SUCCESS; k++) {
        if (!on[k])
            continue;
        res = ppu_send(s[k], count, c->dt, to[k], comm, NULL);
        if (res == PPU_SUCCESS)
            res = ppu_recv(o[k], count, c->dt, from[k], comm, NULL);
    }
    ppu_result_t e = ppu_group_end();
    res = res != PPU_SUCCESS ? res : e;
    *check = c->np2p > 0 && on[0] ? count : 0;
    for (int k = 1; k < c->np2p; k++) {
        if (res == PPU_SUCCESS && on[k] && memcmp(o[k], w[k], nb)) {
            fprintf(stderr, "rank %d sendrecv n=%d dt=%d count=%zu: wrong data from rank %d\n",
                    r, n, c->dt, count, from[k]);
            (*bad)++;
        }
        free(s[k]);
        free(o[k]);
        free(w[k]);
    }
    return res;
}

/* Runs case c on rank r of n; returns its wrong elements, or 1 on an error. */
static inline size_t cc_check(ppu_comm_t comm, int r, int n, const struct cc_case *c)
{
    int coll = c->coll, root = c->root, inplace = c->inplace;
    ppu_datatype_t dt = c->dt;
    ppu_redop_t op = c->op;
    if (n > CC_MAX_RANKS || c->np2p > CC_MAX_P2P) {
        fprintf(stderr, "rank %d: %d ranks, %d distances: more than collcheck.h holds\n", r, n,
                c->np2p);
        return 1;
    }
    size_t count = c->count, es = ppu_datatype_size(dt), nb = count * es, N = (size_t)n;
    size_t sbytes = coll == CC_RS || coll == CC_A2A ? nb * N : nb;
    size_t rbytes = coll == CC_AG || coll == CC_A2A ? nb * N : nb;
    /* alltoallv: counts and displacements (elements) of each peer's block */
    size_t vs[CC_MAX_RANKS], vsd[CC_MAX_RANKS], vr[CC_MAX_RANKS], vrd[CC_MAX_RANKS];
    if (coll == CC_A2AV) {
        sbytes = rbytes = 0;
        for (int p = 0; p < n; p++) {
            vs[p] = cc_v_count(r, p, count);
            vsd[p] = sbytes / es + 3; /* 3 elements before each block sent */
            sbytes += (vs[p] + 3) * es;
            vr[p] = cc_v_count(p, r, count);
            vrd[p] = rbytes / es + 1; /* 1 before each block received */
            rbytes += (vr[p] + 1) * es;
        }
        sbytes += 3 * es;
        rbytes += es;
    }
    char *sraw = malloc(sbytes + rbytes + 2), *rraw = malloc(rbytes + 2),
         *want = malloc(rbytes + 1);
    char *send = sraw + 1, *recv = rraw + 1; /* not aligned to the type */
    memset(recv, 0xA5, rbytes);
    size_t check = rbytes / es, bad = 0;
    ppu_result_t res = PPU_SUCCESS;
    char what[160];
    snprintf(what, sizeof what, "%s n=%d dt=%d op=%d count=%zu inplace=%d root=%d",
             cc_name(coll), n, dt, op, count, inplace, root);
    switch (coll) {
    case CC_AR:
    case CC_RD:
        ref_fill(send, count, r, dt, op);
        if (inplace)
            recv = send;
        for (size_t i = 0; i < count; i++)
            ref_expect(want + i * es, i % REF_PERIOD, n, dt, op);
        if (coll == CC_AR) {
            res = ppu_allreduce(send, recv, count, dt, op, comm, NULL);
        } else {
            res = ppu_reduce(send, recv, count, dt, op, root, comm, NULL);
            if (r != root)
                check = 0;
        }
        break;
    case CC_BC:
        if (r == root)
            ref_fill(send, count, r, dt, PPU_SUM);
        if (inplace && r == root)
            memcpy(recv, send, nb);
        ref_fill(want, count, root, dt, PPU_SUM);
        res = ppu_broadcast(inplace ? recv : send, recv, count, dt, root, comm, NULL);
        break;
    case CC_AG:
        for (int q = 0; q < n; q++)
            ref_fill(want + (size_t)q * nb, count, q, dt, PPU_SUM);
        ref_fill(send, count, r, dt, PPU_SUM);
        if (inplace) {
            memcpy(recv + (size_t)r * nb, send, nb);
            send = recv + (size_t)r * nb;
        }
        res = ppu_allgather(send, recv, count, dt, comm, NULL);
        break;
    case CC_RS:
        ref_fill(send, count * N, r, dt, op);
        for (size_t i = 0; i < count; i++)
            ref_expect(want + i * es, ((size_t)r * count + i) % REF_PERIOD, n, dt, op);
        if (inplace)
            recv = send + (size_t)r * nb;
        res = ppu_reduce_scatter(send, recv, count, dt, op, comm, NULL);
        check = count;
        break;
    case CC_A2A:
        for (int p = 0; p < n; p++)
            for (size_t i = 0; i < count; i++) {
                cc_store(send, (size_t)p * count + i, dt, cc_a2a_val(r, p, i));
                cc_store(want, (size_t)p * count + i, dt, cc_a2a_val(p, r, i));
            }
        res = ppu_alltoall(send, recv, count, dt, comm, NULL);
        break;
    case CC_A2AV:
        memcpy(want, recv, rbytes); /* the gaps stay poisoned */
        for (int p = 0; p < n; p++) {
            for (size_t i = 0; i < vs[p]; i++)
                cc_store(send, vsd[p] + i, dt, cc_a2a_val(r, p, i));
            for (size_t i = 0; i < vr[p]; i++)
                cc_store(want, vrd[p] + i, dt, cc_a2a_val(p, r, i));
        }
        res = ppu_alltoallv(send, vs, vsd, recv, vr, vrd, dt, comm, NULL);
        break;
    case CC_P2P:
        res = cc_sendrecv(comm, r, n, c, send, recv, want, &check, &bad);
        break;
    }
    if (res != PPU_SUCCESS) {
        fprintf(stderr, "rank %d %s: %s\n", r, what, ppu_get_last_error(comm));
        bad = 1;
    } else {
        bad += cc_wrong(recv, want, check, es, what, r);
    }
    free(sraw);
    free(rraw);
    free(want);
    return bad;
}

#endif
