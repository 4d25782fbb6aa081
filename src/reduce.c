/* Reduction kernels: dst = a op b for every datatype x op, host memory.
 *
 * Buffers may be unaligned, and dst may be a or b. Each kernel is one plain
 * loop through element pointers that may be unaligned and may alias
 * (aligned(1), may_alias), which gcc vectorizes at -O3 with a run-time
 * overlap check (dst == a or b passes it; CMakeLists.txt builds this file
 * at -O3 in every build type but Debug). Buffers that overlap other than
 * exactly are never passed (reduce.h). An earlier form copied 512-byte
 * blocks into local arrays so that even -O2 vectorized the combine; gcc
 * made those copies `rep movsq`, and the kernel ran at 4.7 GB/s on 256 KB
 * float chunks against 14.7 GB/s for the plain loop (this 2-core host).
 *
 * float16 and bfloat16 blocks are widened to float, combined in float
 * (combine_block) and rounded back to nearest even.
 *
 * Every kernel is compiled for the baseline and, on x86-64, for AVX2 and
 * AVX-512 (KERNELS below); ppu_reduce2 runs the best the CPU has, or
 * PPU_SIMD's choice (benchmarks/reduce_kernels measures each against
 * memcpy). */
#include <stdatomic.h>
#include <string.h>

#include "reduce.h"
#include "util/log.h"
#include "util/param.h"

#define HALF_BLOCK 256 /* elements per float16/bfloat16 block */

/* Element ops. Integer SUM/PROD only ever run on unsigned types (signed
 * SUM/PROD use the unsigned kernel of the same width: the bits are equal and
 * unsigned arithmetic wraps without undefined behaviour). uint8 operands
 * promote to int, where 255 * 255 cannot overflow. */
#define OP_ADD(x, y) ((x) + (y))
#define OP_MUL(x, y) ((x) * (y))
#define OP_MAX(x, y) ((x) > (y) ? (x) : (y))
#define OP_MIN(x, y) ((x) < (y) ? (x) : (y))
/* Float MAX/MIN return NaN when either operand is NaN. */
#define OP_FMAX(x, y) ((x) > (y) || (x) != (x) ? (x) : (y))
#define OP_FMIN(x, y) ((x) < (y) || (x) != (x) ? (x) : (y))

/* Body of a kernel with parameters (dst, a, b, count): dst[i] = F(a[i], b[i])
 * over elements of type T. */
#define LOOP(T, F)                                                          \
    do {                                                                    \
        typedef T u_ __attribute__((aligned(1), may_alias));                \
        u_ *d_ = dst;                                                       \
        const u_ *a_ = a, *b_ = b;                                          \
        for (size_t i_ = 0; i_ < count; i_++)                               \
            d_[i_] = F(a_[i_], b_[i_]);                                     \
    } while (0)

/* One kernel per type: SUM/PROD/MAX/MIN for unsigned and float types,
 * MAX/MIN for signed types. op is never PPU_AVG here. ATTR: the
 * instruction set it is compiled for (empty: the build's baseline). */
#define UNSIGNED_KERNEL(name, T, ATTR)                                      \
    static ATTR void name(void *dst, const void *a, const void *b,         \
                          size_t count, ppu_redop_t op)                    \
    {                                                                       \
        switch (op) {                                                       \
        case PPU_SUM: LOOP(T, OP_ADD); break;                               \
        case PPU_PROD: LOOP(T, OP_MUL); break;                              \
        case PPU_MAX: LOOP(T, OP_MAX); break;                               \
        case PPU_MIN: LOOP(T, OP_MIN); break;                               \
        default: break;                                                     \
        }                                                                   \
    }
#define SIGNED_KERNEL(name, T, ATTR)                                        \
    static ATTR void name(void *dst, const void *a, const void *b,         \
                          size_t count, ppu_redop_t op)                    \
    {                                                                       \
        if (op == PPU_MAX)                                                  \
            LOOP(T, OP_MAX);                                                \
        else                                                                \
            LOOP(T, OP_MIN);                                                \
    }
#define FLOAT_KERNEL(name, T, ATTR)                                         \
    static ATTR void name(void *dst, const void *a, const void *b,         \
                          size_t count, ppu_redop_t op)                    \
    {                                                                       \
        switch (op) {                                                       \
        case PPU_SUM: LOOP(T, OP_ADD); break;                               \
        case PPU_PROD: LOOP(T, OP_MUL); break;                              \
        case PPU_MAX: LOOP(T, OP_FMAX); break;                              \
        case PPU_MIN: LOOP(T, OP_FMIN); break;                              \
        default: break;                                                     \
        }                                                                   \
    }

/* ---- float16 / bfloat16 conversions ----------------------------------- */

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* cond ? x : y as a bit blend: the conversions below are branch-free (the
 * float ops of their subnormal paths always run) so the block loops
 * vectorize; gcc does not if-convert possibly trapping float ops. */
static inline uint32_t blend(int cond, uint32_t x, uint32_t y)
{
    uint32_t m = 0u - (uint32_t)cond;
    return (x & m) | (y & ~m);
}

static inline uint16_t float_to_half(float f)
{
    uint32_t x = f2u(f);
    uint32_t ax = x & 0x7fffffffu;
    uint32_t sign = (x >> 16) & 0x8000u;
    /* Normal half (|f| >= 2^-14): rebias the exponent (127 -> 15) and round
     * the 13 dropped mantissa bits to nearest even; a carry out of the
     * mantissa correctly bumps the exponent. */
    uint32_t normal = (ax - 0x38000000u + 0xfffu + ((ax >> 13) & 1u)) >> 13;
    /* Subnormal half (|f| < 2^-14): the ulp of floats in [0.5, 1) is 2^-24,
     * the half subnormal step, so adding 0.5f makes the FPU round |f| to a
     * multiple of 2^-24 (nearest even) and the low bits are the result
     * (1024 = the smallest normal, which is also its half encoding). This
     * assumes the default rounding mode; FTZ/DAZ cannot change the result. */
    uint32_t subnormal = f2u(u2f(ax) + 0.5f) - 0x3f000000u;
    uint32_t r = blend(ax < 0x38800000u, subnormal, normal);
    /* 65520 = 65504 + half an ulp, a tie that rounds to the even infinity. */
    r = blend(ax >= 0x477ff000u, 0x7c00u, r);
    /* NaN: keep the top payload bits and force the quiet bit. */
    r = blend(ax > 0x7f800000u, 0x7e00u | ((ax >> 13) & 0x3ffu), r);
    return (uint16_t)(sign | r);
}

static inline float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    /* Normal: rebias the exponent (15 -> 127). */
    uint32_t r = (em << 13) + 0x38000000u;
    /* Subnormal or zero: mantissa * 2^-24, exact in float. */
    uint32_t subnormal = f2u((float)(int32_t)em * 0x1p-24f);
    /* Infinity or NaN; NaNs come out quiet. */
    uint32_t special = 0x7f800000u | (em << 13) | (em > 0x7c00u ? 0x400000u : 0u);
    r = blend(em < 0x400u, subnormal, r);
    r = blend(em >= 0x7c00u, special, r);
    return u2f(sign | r);
}

static inline uint16_t float_to_bf16(float f)
{
    uint32_t x = f2u(f);
    /* Round the 16 dropped bits to nearest even; overflow carries into the
     * exponent and reaches infinity (0x7f80) exactly when it should. */
    uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    uint32_t nan = (x >> 16) | 0x40u; /* quiet */
    return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? nan : r);
}

static inline float bf16_to_float(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    return u2f((b & 0x7fffu) > 0x7f80u ? x | 0x400000u : x);
}

uint16_t ppu_float_to_half(float f) { return float_to_half(f); }
float ppu_half_to_float(uint16_t h) { return half_to_float(h); }
uint16_t ppu_float_to_bf16(float f) { return float_to_bf16(f); }
float ppu_bf16_to_float(uint16_t b) { return bf16_to_float(b); }

/* Loads n (<= HALF_BLOCK) 16-bit elements from src into f as floats; the
 * rest of f is zero. The conversion loop always has the constant length. */
static inline __attribute__((always_inline)) void widen_block(float *f, const void *src,
                                                               size_t n, int bf16)
{
    uint16_t h[HALF_BLOCK];
    if (n == HALF_BLOCK) {
        memcpy(h, src, sizeof h);
    } else {
        memset(h, 0, sizeof h);
        memcpy(h, src, n * sizeof *h);
    }
    if (bf16)
        for (size_t j = 0; j < HALF_BLOCK; j++)
            f[j] = bf16_to_float(h[j]);
    else
        for (size_t j = 0; j < HALF_BLOCK; j++)
            f[j] = half_to_float(h[j]);
}

/* Rounds HALF_BLOCK floats back and stores the first n to dst. */
static inline __attribute__((always_inline)) void narrow_block(void *dst, const float *f,
                                                                size_t n, int bf16)
{
    uint16_t h[HALF_BLOCK];
    if (bf16)
        for (size_t j = 0; j < HALF_BLOCK; j++)
            h[j] = float_to_bf16(f[j]);
    else
        for (size_t j = 0; j < HALF_BLOCK; j++)
            h[j] = float_to_half(f[j]);
    if (n == HALF_BLOCK)
        memcpy(dst, h, sizeof h);
    else
        memcpy(dst, h, n * sizeof *h);
}

/* x[j] = x[j] op y[j] over one block of floats. */
static inline __attribute__((always_inline)) void combine_block(float *restrict x,
                                                                 const float *restrict y,
                                                                 ppu_redop_t op)
{
#define COMBINE(F)                                                          \
    for (size_t j = 0; j < HALF_BLOCK; j++)                                 \
        x[j] = F(x[j], y[j]);                                               \
    break
    switch (op) {
    case PPU_SUM: COMBINE(OP_ADD);
    case PPU_PROD: COMBINE(OP_MUL);
    case PPU_MAX: COMBINE(OP_FMAX);
    case PPU_MIN: COMBINE(OP_FMIN);
    default: break;
    }
#undef COMBINE
}

/* float16/bfloat16 blocks: widened, combined in float, rounded back.
 * WIDEN/NARROW: the conversions (software, or F16C's for float16). */
#define HALF_KERNEL(name, ATTR, WIDEN, NARROW)                              \
    static ATTR void name(void *dst, const void *a, const void *b,         \
                          size_t count, ppu_redop_t op, int bf16)          \
    {                                                                       \
        unsigned char *d = dst;                                             \
        const unsigned char *pa = a, *pb = b;                               \
        float x[HALF_BLOCK], y[HALF_BLOCK];                                 \
        while (count > 0) {                                                 \
            size_t n = count < HALF_BLOCK ? count : HALF_BLOCK;             \
            WIDEN(x, pa, n, bf16);                                          \
            WIDEN(y, pb, n, bf16);                                          \
            combine_block(x, y, op);                                        \
            NARROW(d, x, n, bf16);                                          \
            d += 2 * n;                                                     \
            pa += 2 * n;                                                    \
            pb += 2 * n;                                                    \
            count -= n;                                                     \
        }                                                                   \
    }

/* Every kernel for one instruction set S (ISA_S its attribute), and
 * reduce2_S, which picks the kernel of a type; HALF: the float16/bfloat16
 * kernel it uses. */
#define KERNELS(S, HALF)                                                    \
    UNSIGNED_KERNEL(reduce_u8_##S, uint8_t, ISA_##S)                        \
    UNSIGNED_KERNEL(reduce_u32_##S, uint32_t, ISA_##S)                      \
    UNSIGNED_KERNEL(reduce_u64_##S, uint64_t, ISA_##S)                      \
    SIGNED_KERNEL(reduce_i8_##S, int8_t, ISA_##S)                           \
    SIGNED_KERNEL(reduce_i32_##S, int32_t, ISA_##S)                         \
    SIGNED_KERNEL(reduce_i64_##S, int64_t, ISA_##S)                         \
    FLOAT_KERNEL(reduce_f32_##S, float, ISA_##S)                            \
    FLOAT_KERNEL(reduce_f64_##S, double, ISA_##S)                           \
    static ISA_##S void reduce2_##S(void *dst, const void *a, const void *b, \
                                    size_t count, ppu_datatype_t datatype,  \
                                    ppu_redop_t op)                         \
    {                                                                       \
        int minmax = op == PPU_MAX || op == PPU_MIN;                        \
        switch (datatype) {                                                 \
        case PPU_INT8:                                                      \
            (minmax ? reduce_i8_##S : reduce_u8_##S)(dst, a, b, count, op); \
            break;                                                          \
        case PPU_UINT8: reduce_u8_##S(dst, a, b, count, op); break;         \
        case PPU_INT32:                                                     \
            (minmax ? reduce_i32_##S : reduce_u32_##S)(dst, a, b, count, op); \
            break;                                                          \
        case PPU_UINT32: reduce_u32_##S(dst, a, b, count, op); break;       \
        case PPU_INT64:                                                     \
            (minmax ? reduce_i64_##S : reduce_u64_##S)(dst, a, b, count, op); \
            break;                                                          \
        case PPU_UINT64: reduce_u64_##S(dst, a, b, count, op); break;       \
        case PPU_FLOAT16: HALF(dst, a, b, count, op, 0); break;             \
        case PPU_BFLOAT16: HALF(dst, a, b, count, op, 1); break;            \
        case PPU_FLOAT32: reduce_f32_##S(dst, a, b, count, op); break;      \
        case PPU_FLOAT64: reduce_f64_##S(dst, a, b, count, op); break;      \
        default: break;                                                     \
        }                                                                   \
    }

#define ISA_generic
HALF_KERNEL(reduce_half_generic, ISA_generic, widen_block, narrow_block)
KERNELS(generic, reduce_half_generic)

typedef void (*reduce2_fn)(void *dst, const void *a, const void *b, size_t count,
                           ppu_datatype_t datatype, ppu_redop_t op);

#if defined(__x86_64__) && defined(__GNUC__)
/* x86-64: AVX2 and AVX-512 copies of every kernel, the same C compiled
 * for wider vectors (AVX-512 at 512 bits: gcc prefers 256 by default),
 * float16 converted by F16C (vcvtph2ps / vcvtps2ph, round to nearest
 * even: the same bits as the software conversion, NaN payloads included),
 * and bfloat16 (no conversion instruction before AVX512_BF16) by the
 * software conversion's integer steps written as AVX2 vector ops: gcc
 * vectorized the scalar form poorly (10 GB/s at 1 MB against 48 for
 * float16 here). Chosen at the first reduction (PPU_SIMD). */
#include <cpuid.h>
#include <immintrin.h>

#define ISA_avx2 __attribute__((target("avx2,f16c")))
#ifdef __clang__ /* clang sizes vectors by target; it ignores a target string it cannot parse */
#define ISA_avx512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,f16c")))
#else
#define ISA_avx512                                                                      \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,f16c,"               \
                          "prefer-vector-width=512")))
#endif

/* 8 16-bit elements as floats: float16 through F16C, bfloat16 shifted
 * into the top half (a NaN made quiet, as bf16_to_float does). */
static inline __attribute__((always_inline, target("avx2,f16c"))) __m256
widen8(const void *p, int bf16)
{
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    if (!bf16)
        return _mm256_cvtph_ps(v);
    __m256i w = _mm256_cvtepu16_epi32(v);
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x7fff)),
                                     _mm256_set1_epi32(0x7f80));
    return _mm256_castsi256_ps(_mm256_or_si256(
        _mm256_slli_epi32(w, 16), _mm256_and_si256(nan, _mm256_set1_epi32(0x400000))));
}

/* 8 floats rounded to nearest even into 16-bit elements at p: float16
 * through F16C; bfloat16 by float_to_bf16's integer steps (a NaN quiet). */
static inline __attribute__((always_inline, target("avx2,f16c"))) void
narrow8(void *p, __m256 v, int bf16)
{
    if (!bf16) {
        _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
        return;
    }
    __m256i x = _mm256_castps_si256(v), hi = _mm256_srli_epi32(x, 16);
    __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)),
                         _mm256_and_si256(hi, _mm256_set1_epi32(1))), 16);
    __m256i nan = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                        _mm256_set1_epi32(0x7f800000));
    r = _mm256_blendv_epi8(r, nan, is_nan); /* every lane <= 0xffff */
    /* packus packs each 128-bit half: lanes 0-3 and 4-7 land in quarters 0
     * and 2 */
    __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xd8);
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(pk));
}

/* x op y, 8 lanes; MAX/MIN give NaN where x is NaN (OP_FMAX's order). */
#define VOP_SUM(x, y) _mm256_add_ps(x, y)
#define VOP_PROD(x, y) _mm256_mul_ps(x, y)
#define VOP_MAX(x, y)                                                                     \
    _mm256_blendv_ps(y, x, _mm256_or_ps(_mm256_cmp_ps(x, y, _CMP_GT_OQ),                  \
                                        _mm256_cmp_ps(x, x, _CMP_UNORD_Q)))
#define VOP_MIN(x, y)                                                                     \
    _mm256_blendv_ps(y, x, _mm256_or_ps(_mm256_cmp_ps(x, y, _CMP_LT_OQ),                  \
                                        _mm256_cmp_ps(x, x, _CMP_UNORD_Q)))
#define HALF_LOOP(VOP, BF)                                                                \
    for (; i + 8 <= count; i += 8)                                                        \
        narrow8(d + i, VOP(widen8(pa + i, BF), widen8(pb + i, BF)), BF)

/* float16/bfloat16 in one pass (8 elements widened, combined, rounded
 * back), the last count % 8 through zero-padded copies. OP_FMAX/OP_FMIN
 * pick x when x is NaN; so does VOP_MAX/VOP_MIN. */
static __attribute__((target("avx2,f16c"))) void
reduce_half_x86(void *dst, const void *a, const void *b, size_t count, ppu_redop_t op, int bf16)
{
    uint16_t *d = dst;
    const uint16_t *pa = a, *pb = b;
    size_t i = 0;
#define HALF_OPS(BF)                                                                      \
    switch (op) {                                                                         \
    case PPU_SUM: HALF_LOOP(VOP_SUM, BF); break;                                          \
    case PPU_PROD: HALF_LOOP(VOP_PROD, BF); break;                                        \
    case PPU_MAX: HALF_LOOP(VOP_MAX, BF); break;                                          \
    case PPU_MIN: HALF_LOOP(VOP_MIN, BF); break;                                          \
    default: return;                                                                      \
    }
    if (bf16)
        HALF_OPS(1)
    else
        HALF_OPS(0)
#undef HALF_OPS
    if (i < count) {
        uint16_t ta[8] = {0}, tb[8] = {0}, td[8];
        size_t n = count - i;
        memcpy(ta, pa + i, n * sizeof *ta);
        memcpy(tb, pb + i, n * sizeof *tb);
        __m256 x = widen8(ta, bf16), y = widen8(tb, bf16);
        switch (op) {
        case PPU_SUM: x = VOP_SUM(x, y); break;
        case PPU_PROD: x = VOP_PROD(x, y); break;
        case PPU_MAX: x = VOP_MAX(x, y); break;
        default: x = VOP_MIN(x, y); break;
        }
        narrow8(td, x, bf16);
        memcpy(d + i, td, n * sizeof *td);
    }
}
#undef HALF_LOOP

KERNELS(avx2, reduce_half_x86)
KERNELS(avx512, reduce_half_x86)

static int cpu_has(int isa)
{
    unsigned eax, ebx, ecx = 0, edx;
    __builtin_cpu_init();
    /* F16C from CPUID (clang's __builtin_cpu_supports does not know it);
     * the avx2 check covers the OS saving the AVX registers */
    int f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    int v3 = __builtin_cpu_supports("avx2") && f16c;
    if (isa == 0)
        return v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    return isa == 1 ? v3 : 1;
}
#else
static int cpu_has(int isa) { return isa == 2; }
#endif

/* Best first; the last is always there. */
static const struct {
    const char *name;
    reduce2_fn fn;
} isas[] = {
#if defined(__x86_64__) && defined(__GNUC__)
    {"avx512", reduce2_avx512},
    {"avx2", reduce2_avx2},
#else
    {"avx512", NULL},
    {"avx2", NULL},
#endif
    {"generic", reduce2_generic},
};
enum { NUM_ISAS = sizeof isas / sizeof isas[0] };

static _Atomic int isa_now = -1; /* index into isas; -1 not chosen yet */

int ppu_reduce_isa_set(const char *name)
{
    for (int i = 0; i < NUM_ISAS; i++)
        if (strcmp(isas[i].name, name) == 0) {
            if (!isas[i].fn || !cpu_has(i))
                return -1;
            atomic_store_explicit(&isa_now, i, memory_order_relaxed);
            return 0;
        }
    return -1;
}

static int isa_index(void)
{
    int i = atomic_load_explicit(&isa_now, memory_order_relaxed);
    if (i >= 0)
        return i;
    const char *want = ppu_param_str(PPU_P_SIMD);
    if (want[0] && ppu_reduce_isa_set(want) == 0)
        return atomic_load_explicit(&isa_now, memory_order_relaxed);
    for (i = 0; i < NUM_ISAS; i++)
        if (isas[i].fn && cpu_has(i))
            break;
    if (want[0])
        PPU_WARN(PPU_SUB_ENV, "PPU_SIMD=%s: this CPU (or this build) lacks it; the "
                 "reduction kernels use %s", want, isas[i].name);
    atomic_store_explicit(&isa_now, i, memory_order_relaxed);
    return i;
}

const char *ppu_reduce_isa(void) { return isas[isa_index()].name; }

void ppu_reduce2(void *dst, const void *a, const void *b, size_t count,
                 ppu_datatype_t datatype, ppu_redop_t op)
{
    if (count == 0)
        return;
    if (op == PPU_AVG)
        op = PPU_SUM;
    if (op != PPU_SUM && op != PPU_PROD && op != PPU_MAX && op != PPU_MIN)
        return;
    isas[isa_index()].fn(dst, a, b, count, datatype, op);
}

/* ---- AVG finish --------------------------------------------------------- */

/* buf[i] = buf[i] / nranks for elements of type T, dividing in type W. */
#define DIVIDE_LOOP(T, W)                                                   \
    do {                                                                    \
        unsigned char *p_ = buf;                                            \
        W n_ = (W)nranks;                                                   \
        for (size_t i_ = 0; i_ < count; i_++, p_ += sizeof(T)) {            \
            T v_;                                                           \
            memcpy(&v_, p_, sizeof v_);                                     \
            v_ = (T)((W)v_ / n_);                                           \
            memcpy(p_, &v_, sizeof v_);                                     \
        }                                                                   \
    } while (0)

static void finish_half(void *buf, size_t count, int nranks, int bf16)
{
    unsigned char *p = buf;
    float x[HALF_BLOCK];
    float n = (float)nranks;
    while (count > 0) {
        size_t m = count < HALF_BLOCK ? count : HALF_BLOCK;
        widen_block(x, p, m, bf16);
        for (size_t j = 0; j < HALF_BLOCK; j++)
            x[j] /= n;
        narrow_block(p, x, m, bf16);
        p += 2 * m;
        count -= m;
    }
}

void ppu_reduce_finish(void *buf, size_t count, ppu_datatype_t datatype,
                       ppu_redop_t op, int nranks)
{
    if (op != PPU_AVG || count == 0 || nranks <= 1)
        return;
    switch (datatype) {
    case PPU_INT8: DIVIDE_LOOP(int8_t, int32_t); break;
    case PPU_UINT8: DIVIDE_LOOP(uint8_t, uint32_t); break;
    case PPU_INT32: DIVIDE_LOOP(int32_t, int64_t); break;
    case PPU_UINT32: DIVIDE_LOOP(uint32_t, uint32_t); break;
    case PPU_INT64: DIVIDE_LOOP(int64_t, int64_t); break;
    case PPU_UINT64: DIVIDE_LOOP(uint64_t, uint64_t); break;
    case PPU_FLOAT16: finish_half(buf, count, nranks, 0); break;
    case PPU_BFLOAT16: finish_half(buf, count, nranks, 1); break;
    case PPU_FLOAT32: DIVIDE_LOOP(float, float); break;
    case PPU_FLOAT64: DIVIDE_LOOP(double, double); break;
    default: break;
    }
}

uint64_t ppu_checksum(const void *buf, size_t bytes)
{
    enum { LANES = 8 };
    const unsigned char *p = buf;
    uint64_t a[LANES] = {0}, b[LANES] = {0};
    size_t i = 0;
    for (; i + 4 * LANES <= bytes; i += 4 * LANES) {
        uint32_t w[LANES];
        memcpy(w, p + i, sizeof w);
        for (int k = 0; k < LANES; k++) {
            a[k] += w[k];
            b[k] += a[k];
        }
    }
    uint64_t tail[LANES] = {0};
    for (size_t j = 0; i + j < bytes; j++)
        tail[j / 4] |= (uint64_t)p[i + j] << (8 * (j % 4));
    uint64_t h = 0x9e3779b97f4a7c15ull ^ bytes;
    for (int k = 0; k < LANES; k++) {
        a[k] += tail[k];
        b[k] += a[k];
        h = (h ^ a[k]) * 0x100000001b3ull;
        h = (h ^ b[k]) * 0x100000001b3ull;
    }
    return h ? h : 1;
}
