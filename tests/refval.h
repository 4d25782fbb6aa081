/* Independent reference values for reduction tests: rank r's element i is
 * a small number chosen so any reduction order gives the same exact result,
 * and the expected result is computed here in double/uint64 arithmetic and
 * rounded once. Values repeat with a prime period so checking a 1M-element
 * buffer costs one comparison per element. Each value comes from a hash of
 * (rank, index): no two ranks share a pattern and no short run repeats
 * inside a period, so a block put in the wrong place does not pass. */
#ifndef PPU_TEST_REFVAL_H
#define PPU_TEST_REFVAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ppuccl.h"

#define REF_PERIOD 1009

/* SplitMix64's finalizer: every input bit moves every output bit. */
static inline uint64_t ref_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Rank r's value at i (i taken modulo the period), as a double. */
static inline double ref_input(int r, size_t i, ppu_datatype_t dt, ppu_redop_t op)
{
    uint64_t k = ref_mix((uint64_t)(uint32_t)r << 32 ^ (uint64_t)(i % REF_PERIOD) ^
                         0x9e3779b97f4a7c15ull) >> 8;
    int is_unsigned = dt == PPU_UINT8 || dt == PPU_UINT32 || dt == PPU_UINT64;
    if (op == PPU_PROD) /* +-1, sometimes 2: products stay exact and small */
        return k % 4 == 0 ? 2.0 : (is_unsigned || (k >> 2) % 3 ? 1.0 : -1.0);
    long v = (long)(k % 11);
    return is_unsigned ? (double)v : (double)(v - 5);
}

/* Half / bfloat16 encoders used only by the tests (round to nearest even;
 * inputs here are small integers and their quotients). */
static inline double ref_round_bits(double x, int mant_bits, int min_exp)
{
    if (x == 0 || isnan(x) || isinf(x))
        return x;
    int e;
    frexp(fabs(x), &e); /* |x| in [2^(e-1), 2^e) */
    e -= 1;
    if (e < min_exp)
        e = min_exp;
    double q = ldexp(1.0, e - mant_bits);
    return nearbyint(x / q) * q;
}

static inline uint16_t ref_encode16(double x, int is_bf16)
{
    /* x is already representable: build the bits directly. */
    uint16_t sign = x < 0 ? 0x8000 : 0;
    x = fabs(x);
    if (x == 0)
        return sign;
    int mb = is_bf16 ? 7 : 10, bias = is_bf16 ? 127 : 15;
    int e;
    double m = frexp(x, &e); /* x = m * 2^e, m in [0.5,1) */
    int exp = e - 1 + bias;
    if (exp <= 0) /* subnormal */
        return sign | (uint16_t)lrint(ldexp(x, mb + bias - 1));
    return sign | (uint16_t)(exp << mb) | (uint16_t)(lrint(ldexp(m, mb + 1)) & ((1 << mb) - 1));
}

/* Write v (exact or to be rounded once) as datatype into dst[i]; dst need
 * not be aligned (the tests pass unaligned buffers on purpose). */
static inline void ref_store(void *dst, size_t i, ppu_datatype_t dt, double v, uint64_t iv)
{
    union { uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; float f; double d; } x;
    switch (dt) {
    case PPU_INT8: case PPU_UINT8: x.u8 = (uint8_t)iv; break;
    case PPU_INT32: case PPU_UINT32: x.u32 = (uint32_t)iv; break;
    case PPU_INT64: case PPU_UINT64: x.u64 = iv; break;
    case PPU_FLOAT16: x.u16 = ref_encode16(ref_round_bits(v, 10, -14), 0); break;
    case PPU_BFLOAT16: x.u16 = ref_encode16(ref_round_bits(v, 7, -126), 1); break;
    case PPU_FLOAT32: x.f = (float)v; break;
    case PPU_FLOAT64: x.d = v; break;
    default: return;
    }
    size_t es = ppu_datatype_size(dt);
    memcpy((char *)dst + i * es, &x, es);
}

static inline int ref_is_signed(ppu_datatype_t dt)
{
    return dt == PPU_INT8 || dt == PPU_INT32 || dt == PPU_INT64;
}

/* Rank r's input element i, stored as dt. */
static inline void ref_fill(void *buf, size_t count, int r, ppu_datatype_t dt, ppu_redop_t op)
{
    size_t es = ppu_datatype_size(dt);
    char tmp[8];
    for (size_t i = 0; i < count && i < REF_PERIOD; i++) {
        double v = ref_input(r, i, dt, op);
        ref_store(tmp, 0, dt, v, (uint64_t)(int64_t)v);
        memcpy((char *)buf + i * es, tmp, es);
    }
    for (size_t i = REF_PERIOD; i < count; i++)
        memcpy((char *)buf + i * es, (char *)buf + (i % REF_PERIOD) * es, es);
}

/* The expected result for element i over n ranks, stored as dt into out. */
static inline void ref_expect(void *out, size_t i, int n, ppu_datatype_t dt, ppu_redop_t op)
{
    double acc = ref_input(0, i, dt, op);
    uint64_t iacc = (uint64_t)(int64_t)acc;
    for (int r = 1; r < n; r++) {
        double v = ref_input(r, i, dt, op);
        uint64_t iv = (uint64_t)(int64_t)v;
        switch (op) {
        case PPU_SUM: case PPU_AVG: acc += v; iacc += iv; break;
        case PPU_PROD: acc *= v; iacc *= iv; break;
        case PPU_MAX: acc = v > acc ? v : acc; iacc = (uint64_t)(int64_t)acc; break;
        case PPU_MIN: acc = v < acc ? v : acc; iacc = (uint64_t)(int64_t)acc; break;
        default: break;
        }
    }
    if (op == PPU_AVG) {
        if (dt == PPU_FLOAT16 || dt == PPU_BFLOAT16 || dt == PPU_FLOAT32 || dt == PPU_FLOAT64) {
            acc /= n;
        } else {
            /* integer average: wrap the sum to the type, then divide
             * truncating toward zero in the type's signedness */
            int bits = (int)ppu_datatype_size(dt) * 8;
            uint64_t mask = bits == 64 ? ~0ull : ((1ull << bits) - 1);
            uint64_t s = iacc & mask;
            if (ref_is_signed(dt)) {
                int64_t sv = bits == 64 ? (int64_t)s : (int64_t)(s << (64 - bits)) >> (64 - bits);
                iacc = (uint64_t)(sv / n);
            } else {
                iacc = s / (uint64_t)n;
            }
        }
    }
    ref_store(out, 0, dt, acc, iacc);
}

#endif
