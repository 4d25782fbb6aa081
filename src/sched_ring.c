/* Ring all-reduce as a schedule. With n ranks the channel's share of the
 * buffer is cut into n blocks; block b ends up reduced on the rank at ring
 * position b. At position p:
 *   send block p-1 (input)
 *   n-2 times: recv block p-s-2, add input, send it on
 *   recv block p, add input, finish, write output, send  (last RS step)
 *   n-2 times: recv block p-t-1, write output, send it on (all-gather)
 *   recv block p+1, write output
 * Every block is cut into the same number of chunks so that sender and
 * receiver agree on every message; empty chunks are skipped on both sides. */
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

static void block_range(size_t start, size_t len, int n, int b, size_t *bs, size_t *bl)
{
    size_t base = len / (size_t)n, rem = len % (size_t)n, ub = (size_t)b;
    *bs = start + ub * base + (ub < rem ? ub : rem);
    *bl = base + (ub < rem ? 1 : 0);
}

static void add(struct ppu_sched_channel *c, uint32_t flags, size_t off, size_t cnt)
{
    if (cnt == 0)
        return;
    c->steps[c->nsteps++] = (struct ppu_step){flags, -1, -1, off, cnt};
}

ppu_result_t ppu_sched_ring_allreduce(struct ppu_sched *s, size_t count, int n,
                                      const int *ring_pos, int nchannels,
                                      size_t chunk_elems, ppu_redop_t op)
{
    memset(s, 0, sizeof *s);
    s->nchannels = nchannels;
    uint32_t fin = op == PPU_AVG ? PPU_STEP_FINISH : 0;
    for (int c = 0; c < nchannels; c++) {
        size_t cstart, clen;
        block_range(0, count, nchannels, c, &cstart, &clen);
        size_t biggest = (clen + (size_t)n - 1) / (size_t)n;
        size_t iters = biggest ? (biggest + chunk_elems - 1) / chunk_elems : 0;
        size_t per_iter = n == 1 ? 1 : 2 * (size_t)n - 1;
        struct ppu_sched_channel *ch = &s->ch[c];
        ch->steps = malloc(sizeof *ch->steps * (iters * per_iter + 1));
        if (!ch->steps) {
            ppu_sched_free(s);
            return PPU_SYSTEM_ERROR;
        }
        int p = ring_pos[c];
        for (size_t it = 0; it < iters; it++) {
            /* chunk it of block b: [off, off + cnt) */
#define CHUNK(b, off, cnt)                                                         \
    do {                                                                           \
        size_t bs_, bl_;                                                           \
        block_range(cstart, clen, n, (((b) % n) + n) % n, &bs_, &bl_);             \
        size_t lo_ = it * chunk_elems;                                             \
        (off) = bs_ + lo_;                                                         \
        (cnt) = lo_ < bl_ ? (bl_ - lo_ < chunk_elems ? bl_ - lo_ : chunk_elems) : 0; \
    } while (0)
            size_t off, cnt;
            if (n == 1) {
                CHUNK(0, off, cnt);
                add(ch, PPU_STEP_INPUT | PPU_STEP_OUTPUT | fin, off, cnt);
                continue;
            }
            CHUNK(p - 1, off, cnt);
            add(ch, PPU_STEP_INPUT | PPU_STEP_SEND, off, cnt);
            for (int st = 0; st < n - 2; st++) {
                CHUNK(p - st - 2, off, cnt);
                add(ch, PPU_STEP_RECV | PPU_STEP_INPUT | PPU_STEP_SEND, off, cnt);
            }
            CHUNK(p, off, cnt);
            add(ch, PPU_STEP_RECV | PPU_STEP_INPUT | fin | PPU_STEP_OUTPUT | PPU_STEP_SEND, off, cnt);
            for (int t = 0; t < n - 2; t++) {
                CHUNK(p - t - 1, off, cnt);
                add(ch, PPU_STEP_RECV | PPU_STEP_OUTPUT | PPU_STEP_SEND, off, cnt);
            }
            CHUNK(p + 1, off, cnt);
            add(ch, PPU_STEP_RECV | PPU_STEP_OUTPUT, off, cnt);
#undef CHUNK
        }
    }
    return PPU_SUCCESS;
}

void ppu_sched_free(struct ppu_sched *s)
{
    for (int c = 0; c < s->nchannels; c++) {
        free(s->ch[c].steps);
        s->ch[c].steps = NULL;
    }
    s->nchannels = 0;
}

ppu_result_t ppu_sched_oneshot_allreduce(struct ppu_sched *s, size_t count, int n, int rank,
                                         ppu_redop_t op)
{
    memset(s, 0, sizeof *s);
    s->nchannels = 1;
    s->algo = PPU_ALGO_ONESHOT;
    struct ppu_sched_channel *ch = &s->ch[0];
    ch->steps = malloc(sizeof *ch->steps * (2 * (size_t)n + 1));
    if (!ch->steps)
        return PPU_SYSTEM_ERROR;
    if (count == 0)
        return PPU_SUCCESS;
    for (int k = 1; k < n; k++) { /* everyone sends first: nobody waits to send */
        int p = (rank + k) % n;
        ch->steps[ch->nsteps++] = (struct ppu_step){PPU_STEP_INPUT | PPU_STEP_SEND, (int16_t)p, -1, 0, count};
    }
    for (int r = 0; r < n; r++) {
        uint32_t acc = r == 0 ? 0 : PPU_STEP_ACCUM;
        uint32_t from = r == rank ? PPU_STEP_INPUT : PPU_STEP_RECV;
        ch->steps[ch->nsteps++] = (struct ppu_step){from | acc | PPU_STEP_OUTPUT | PPU_STEP_TMP_OUT, -1,
                                                    (int16_t)(r == rank ? -1 : r), 0, count};
    }
    ch->steps[ch->nsteps++] = (struct ppu_step){PPU_STEP_INPUT | PPU_STEP_TMP_IN | PPU_STEP_OUTPUT |
                                                (op == PPU_AVG ? PPU_STEP_FINISH : 0), -1, -1, 0, count};
    return PPU_SUCCESS;
}
