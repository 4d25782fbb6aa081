/* Unit tests for src/reduce.c: float16/bfloat16 conversions, ppu_reduce2 for
 * every datatype x op, and ppu_reduce_finish for PPU_AVG.
 *
 * Every expected value comes from a reference written here independently of
 * the library: 16-bit float patterns are decoded with ldexp and rounded by a
 * binary search over the patterns, integers are reduced in 64 bits and
 * truncated, float32 in double. Mismatches are counted and the first few
 * printed, with one assertion per case (Criterion reports every assertion,
 * which is too slow per element). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static long failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    if (failures++ < 10) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
}

/* A 16-bit float format: 10 or 7 mantissa bits, exponent bias 15 or 127. */
typedef struct {
    int mant_bits;
    int bias;
    uint16_t inf; /* pattern of +infinity */
} fmt16_t;

static const fmt16_t HALF = {10, 15, 0x7c00};
static const fmt16_t BF16 = {7, 127, 0x7f80};

/* Magnitude of a non-negative pattern p <= fmt.inf, read as if the exponent
 * were unbounded: fmt.inf gives 2^(emax+1), the overflow threshold of IEEE
 * rounding. */
static double pattern_mag(fmt16_t fmt, unsigned p)
{
    unsigned e = p >> fmt.mant_bits, m = p & ((1u << fmt.mant_bits) - 1);
    if (e == 0)
        return ldexp(m, 1 - fmt.bias - fmt.mant_bits);
    return ldexp((double)((1u << fmt.mant_bits) + m), (int)e - fmt.bias - fmt.mant_bits);
}

static int is_nan16(fmt16_t fmt, uint16_t p)
{
    return (p & 0x7fff) > fmt.inf;
}

/* Value of any pattern, NaN and infinities included. */
static double value16(fmt16_t fmt, uint16_t p)
{
    if (is_nan16(fmt, p))
        return NAN;
    double m = (p & 0x7fff) == fmt.inf ? INFINITY : pattern_mag(fmt, p & 0x7fff);
    return (p & 0x8000) ? -m : m;
}

/* v rounded to the nearest pattern, ties to the even one. */
static uint16_t round16(fmt16_t fmt, double v)
{
    if (isnan(v))
        return (uint16_t)(fmt.inf | 0x1); /* some NaN; callers compare NaN-ness */
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    double a = fabs(v);
    if (a >= pattern_mag(fmt, fmt.inf))
        return sign | fmt.inf;
    unsigned lo = 0, hi = fmt.inf; /* invariant: mag(lo) <= a < mag(hi) */
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (pattern_mag(fmt, mid) <= a)
            lo = mid;
        else
            hi = mid;
    }
    double dlo = a - pattern_mag(fmt, lo), dhi = pattern_mag(fmt, hi) - a;
    unsigned r = dlo < dhi ? lo : dhi < dlo ? hi : (lo % 2 == 0 ? lo : hi);
    return (uint16_t)(sign | r);
}

static uint16_t to16(fmt16_t fmt, float f)
{
    return fmt.inf == HALF.inf ? ppu_float_to_half(f) : ppu_float_to_bf16(f);
}

static float from16(fmt16_t fmt, uint16_t p)
{
    return fmt.inf == HALF.inf ? ppu_half_to_float(p) : ppu_bf16_to_float(p);
}

/* ---- conversions -------------------------------------------------------- */

static void check_exhaustive(fmt16_t fmt)
{
    failures = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t p = (uint16_t)i;
        float f = from16(fmt, p);
        uint16_t back = to16(fmt, f);
        if (is_nan16(fmt, p)) {
            if (!isnan(f) || !(fbits(f) & 0x400000u) ||
                !!signbit(f) != !!(p & 0x8000))
                fail("0x%04x -> %08x: want a quiet NaN, same sign", p, fbits(f));
            if (!is_nan16(fmt, back) || (back & 0x8000) != (p & 0x8000))
                fail("NaN 0x%04x -> 0x%04x after round trip", p, back);
            continue;
        }
        double want = value16(fmt, p);
        if ((double)f != want || !!signbit(f) != !!(p & 0x8000))
            fail("0x%04x -> %a, want %a", p, (double)f, want);
        if (back != p)
            fail("0x%04x -> %a -> 0x%04x", p, (double)f, back);
    }
    cr_assert_eq(failures, 0, "%ld conversion mismatches", failures);
}

Test(convert, half_exhaustive_round_trip) { check_exhaustive(HALF); }
Test(convert, bf16_exhaustive_round_trip) { check_exhaustive(BF16); }

static void check_round(fmt16_t fmt, float f)
{
    uint16_t got = to16(fmt, f);
    if (isnan(f)) {
        if (!is_nan16(fmt, got))
            fail("NaN %08x -> 0x%04x, want NaN", fbits(f), got);
        return;
    }
    uint16_t want = round16(fmt, f);
    if (got != want)
        fail("%a (%08x) -> 0x%04x, want 0x%04x", (double)f, fbits(f), got, want);
}

static void check_rounding(fmt16_t fmt)
{
    failures = 0;
    /* Every tie between neighbouring patterns (incl. the one between the
     * largest finite value and the overflow threshold), and the floats just
     * either side of it, both signs. */
    for (unsigned p = 0; p < fmt.inf; p++) {
        float mid = (float)((pattern_mag(fmt, p) + pattern_mag(fmt, p + 1)) / 2);
        if ((double)mid != (pattern_mag(fmt, p) + pattern_mag(fmt, p + 1)) / 2)
            fail("midpoint above 0x%04x is not a float", p);
        float cases[3] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
        for (int i = 0; i < 3; i++) {
            check_round(fmt, cases[i]);
            check_round(fmt, -cases[i]);
        }
    }
    /* Random floats: a quarter any bit pattern, the rest with exponents
     * around the format's range (subnormals, overflow). */
    int elo = 127 - fmt.bias - fmt.mant_bits - 4, ehi = 127 + fmt.bias + 3;
    if (elo < 0)
        elo = 0;
    if (ehi > 255)
        ehi = 255;
    for (int i = 0; i < 400000; i++) {
        uint64_t r = rnd();
        uint32_t bits = (uint32_t)r;
        if (i % 4 != 0) {
            uint32_t e = (uint32_t)(elo + (int)((r >> 32) % (uint64_t)(ehi - elo)));
            bits = (bits & 0x807fffffu) | (e << 23);
            /* Bias the low mantissa bits towards exact ties sometimes. */
            if (i % 8 == 1)
                bits &= ~0x1fffu;
        }
        check_round(fmt, bitsf(bits));
    }
    float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN,
                        bitsf(0x7f800001u), 1e-45f, 3.4028235e38f, 65504.0f,
                        65519.996f, 65520.0f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f};
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++)
        check_round(fmt, specials[i]);
    cr_assert_eq(failures, 0, "%ld rounding mismatches", failures);
}

Test(convert, half_rounding) { check_rounding(HALF); }
Test(convert, bf16_rounding) { check_rounding(BF16); }

Test(convert, spot_values)
{
    cr_assert_eq(ppu_float_to_half(1.0f), 0x3c00);
    cr_assert_eq(ppu_float_to_half(-2.0f), 0xc000);
    cr_assert_eq(ppu_float_to_half(65504.0f), 0x7bff);
    cr_assert_eq(ppu_float_to_half(65520.0f), 0x7c00);
    cr_assert_eq(ppu_float_to_half(0x1p-24f), 0x0001);
    cr_assert_eq(ppu_float_to_half(0x1p-25f), 0x0000);
    cr_assert_eq(ppu_float_to_half(0x1.8p-24f), 0x0002); /* tie to even */
    cr_assert_eq(ppu_float_to_half(-0.0f), 0x8000);
    cr_assert_eq(ppu_float_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(ppu_float_to_bf16(bitsf(0x3f808000u)), 0x3f80); /* tie, even */
    cr_assert_eq(ppu_float_to_bf16(bitsf(0x3f818000u)), 0x3f82); /* tie, up */
    cr_assert_eq(ppu_float_to_bf16(3.4028235e38f), 0x7f80);
    cr_assert_eq(ppu_half_to_float(0x3555), 0x1.554p-2f);
    cr_assert_eq(ppu_bf16_to_float(0xc2f7), -123.5f);
}

/* ---- ppu_reduce2 -------------------------------------------------------- */

static const size_t dt_size[PPU_NUM_DATATYPES] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
static const char *dt_name[PPU_NUM_DATATYPES] = {
    "int8", "uint8", "int32", "uint32", "int64", "uint64",
    "float16", "bfloat16", "float32", "float64"};

static int is_signed_int(ppu_datatype_t dt)
{
    return dt == PPU_INT8 || dt == PPU_INT32 || dt == PPU_INT64;
}

static int is_int(ppu_datatype_t dt) { return dt <= PPU_UINT64; }

/* Integer element i of buf, sign- or zero-extended to 64 bits. */
static uint64_t load_int(const unsigned char *buf, size_t i, ppu_datatype_t dt)
{
    const unsigned char *p = buf + i * dt_size[dt];
    switch (dt) {
    case PPU_INT8: { int8_t v; memcpy(&v, p, 1); return (uint64_t)(int64_t)v; }
    case PPU_UINT8: { uint8_t v; memcpy(&v, p, 1); return v; }
    case PPU_INT32: { int32_t v; memcpy(&v, p, 4); return (uint64_t)(int64_t)v; }
    case PPU_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

/* Stores the low bits of v (little endian, as the host is). */
static void store_int(unsigned char *buf, size_t i, ppu_datatype_t dt, uint64_t v)
{
    for (size_t k = 0; k < dt_size[dt]; k++)
        buf[i * dt_size[dt] + k] = (unsigned char)(v >> (8 * k));
}

/* Floating element i as a double (exact for every format). */
static double load_float(const unsigned char *buf, size_t i, ppu_datatype_t dt)
{
    const unsigned char *p = buf + i * dt_size[dt];
    uint16_t h;
    float f;
    double d;
    switch (dt) {
    case PPU_FLOAT16: memcpy(&h, p, 2); return value16(HALF, h);
    case PPU_BFLOAT16: memcpy(&h, p, 2); return value16(BF16, h);
    case PPU_FLOAT32: memcpy(&f, p, 4); return f;
    default: memcpy(&d, p, 8); return d;
    }
}

/* Rounds v to dt (one rounding from the double, which is exact or, for
 * bfloat16/float32 sums, innocuous: 53 >= 2p + 2) and stores it. */
static void store_float(unsigned char *buf, size_t i, ppu_datatype_t dt, double v)
{
    unsigned char *p = buf + i * dt_size[dt];
    uint16_t h;
    float f;
    switch (dt) {
    case PPU_FLOAT16: h = round16(HALF, v); memcpy(p, &h, 2); break;
    case PPU_BFLOAT16: h = round16(BF16, v); memcpy(p, &h, 2); break;
    case PPU_FLOAT32: f = (float)v; memcpy(p, &f, 4); break;
    default: memcpy(p, &v, 8); break;
    }
}

static uint64_t ref_int(uint64_t x, uint64_t y, ppu_redop_t op, int sgn)
{
    switch (op) {
    case PPU_SUM: case PPU_AVG: return x + y;
    case PPU_PROD: return x * y;
    case PPU_MAX: return sgn ? ((int64_t)x > (int64_t)y ? x : y) : (x > y ? x : y);
    default: return sgn ? ((int64_t)x < (int64_t)y ? x : y) : (x < y ? x : y);
    }
}

static double ref_float(double x, double y, ppu_redop_t op)
{
    switch (op) {
    case PPU_SUM: case PPU_AVG: return x + y;
    case PPU_PROD: return x * y;
    case PPU_MAX: return isnan(x) || isnan(y) ? NAN : (x > y ? x : y);
    default: return isnan(x) || isnan(y) ? NAN : (x < y ? x : y);
    }
}

/* Random operand data: integers any bits; floats mostly moderate values of
 * mixed magnitude (so that sums cancel and round), some any bits (NaN,
 * infinity, subnormals, overflow). */
static void fill(unsigned char *buf, size_t count, ppu_datatype_t dt)
{
    for (size_t i = 0; i < count; i++) {
        uint64_t r = rnd();
        int raw = is_int(dt) || r % 8 == 0;
        if (dt == PPU_FLOAT16)
            raw = 1; /* 5 exponent bits: any pattern is a fine operand */
        if (raw) {
            store_int(buf, i, dt, rnd());
            continue;
        }
        double v = ldexp((double)(int32_t)(r >> 32), -(int)(r % 48));
        if (dt == PPU_FLOAT64)
            v *= 1.0 + ldexp((double)(rnd() >> 12), -52); /* use all 53 bits */
        store_float(buf, i, dt, v);
    }
}

/* Element i of got against want: integers bit for bit; floats bit for bit,
 * NaN for NaN, and for MAX/MIN a zero for a zero of either sign. */
static int same_element(const unsigned char *got, const unsigned char *want,
                        size_t i, ppu_datatype_t dt, ppu_redop_t op)
{
    size_t sz = dt_size[dt];
    if (memcmp(got + i * sz, want + i * sz, sz) == 0)
        return 1;
    if (is_int(dt))
        return 0;
    double g = load_float(got, i, dt), w = load_float(want, i, dt);
    if (isnan(g) && isnan(w))
        return 1;
    return (op == PPU_MAX || op == PPU_MIN) && g == 0 && w == 0;
}

enum { MODE_SEPARATE, MODE_ALIAS_A, MODE_ALIAS_B, MODE_UNALIGNED, MODE_UNALIGNED_A,
       MODE_UNALIGNED_B, NUM_MODES };
static const char *mode_name[NUM_MODES] = {"separate", "dst=a", "dst=b", "unaligned",
                                           "unaligned dst=a", "unaligned dst=b"};

static void check_reduce2(ppu_datatype_t dt, ppu_redop_t op, size_t count, int mode)
{
    size_t sz = dt_size[dt], bytes = count * sz;
    unsigned char *ma = malloc(bytes + 16), *mb = malloc(bytes + 16);
    unsigned char *md = malloc(bytes + 16), *want = malloc(bytes);
    cr_assert(ma && mb && md && want);
    int unaligned = mode >= MODE_UNALIGNED;
    unsigned char *a = ma + (unaligned ? 1 : 0), *b = mb + (unaligned ? 3 : 0);
    unsigned char *d = md + (unaligned ? 5 : 0);
    fill(a, count, dt);
    fill(b, count, dt);
    memset(md, 0xa5, bytes + 16);
    for (size_t i = 0; i < count; i++) {
        if (is_int(dt))
            store_int(want, i, dt, ref_int(load_int(a, i, dt), load_int(b, i, dt), op,
                                           is_signed_int(dt)));
        else
            store_float(want, i, dt, ref_float(load_float(a, i, dt), load_float(b, i, dt), op));
    }
    unsigned char *dst = mode == MODE_ALIAS_A || mode == MODE_UNALIGNED_A   ? a
                         : mode == MODE_ALIAS_B || mode == MODE_UNALIGNED_B ? b
                                                                            : d;
    ppu_reduce2(dst, a, b, count, dt, op);
    long bad = 0;
    for (size_t i = 0; i < count; i++)
        if (!same_element(dst, want, i, dt, op) && bad++ == 0)
            fail("%s op %d count %zu %s: element %zu differs", dt_name[dt], (int)op,
                 count, mode_name[mode], i);
    if (mode == MODE_SEPARATE || mode == MODE_UNALIGNED) {
        /* Nothing written outside dst. */
        unsigned char *end = d + bytes, *stop = md + bytes + 16;
        for (unsigned char *q = md; q < stop; q++)
            if ((q < d || q >= end) && *q != 0xa5) {
                fail("%s count %zu %s: wrote outside dst", dt_name[dt], count,
                     mode_name[mode]);
                break;
            }
    }
    free(ma);
    free(mb);
    free(md);
    free(want);
}

/* Every instruction set the CPU has (the kernels are compiled once for
 * each), every op, count and placement, against the reference. */
static void check_reduce2_type(ppu_datatype_t dt)
{
    static const size_t counts[] = {1, 7, 255, 256, 257, 1023, 4099};
    static const char *const isa[] = {"generic", "avx2", "avx512"};
    int ran = 0;
    failures = 0;
    for (int k = 0; k < 3; k++) {
        if (ppu_reduce_isa_set(isa[k]) != 0) {
            cr_log_info("%s: this CPU has no %s; not run", dt_name[dt], isa[k]);
            continue;
        }
        cr_assert_str_eq(ppu_reduce_isa(), isa[k]);
        ran++;
        long before = failures;
        for (int op = 0; op < PPU_NUM_REDOPS; op++)
            for (size_t c = 0; c < sizeof counts / sizeof *counts; c++)
                for (int mode = 0; mode < NUM_MODES; mode++)
                    check_reduce2(dt, (ppu_redop_t)op, counts[c], mode);
        if (failures > before)
            cr_log_error("%s: %ld failing cases with %s", dt_name[dt], failures - before, isa[k]);
    }
    cr_assert(ran >= 1, "the generic kernels always run");
    cr_assert_eq(failures, 0, "%s: %ld failing cases", dt_name[dt], failures);
}

Test(reduce2, isa_choice)
{
    cr_assert_eq(ppu_reduce_isa_set("sse9"), -1, "an unknown instruction set is refused");
    cr_assert_eq(ppu_reduce_isa_set("generic"), 0);
    cr_assert_str_eq(ppu_reduce_isa(), "generic");
}

Test(reduce2, int8) { check_reduce2_type(PPU_INT8); }
Test(reduce2, uint8) { check_reduce2_type(PPU_UINT8); }
Test(reduce2, int32) { check_reduce2_type(PPU_INT32); }
Test(reduce2, uint32) { check_reduce2_type(PPU_UINT32); }
Test(reduce2, int64) { check_reduce2_type(PPU_INT64); }
Test(reduce2, uint64) { check_reduce2_type(PPU_UINT64); }
Test(reduce2, float16) { check_reduce2_type(PPU_FLOAT16); }
Test(reduce2, bfloat16) { check_reduce2_type(PPU_BFLOAT16); }
Test(reduce2, float32) { check_reduce2_type(PPU_FLOAT32); }
Test(reduce2, float64) { check_reduce2_type(PPU_FLOAT64); }

Test(reduce2, wraps_and_spot_values)
{
    int8_t a8[3] = {127, -128, -7}, b8[3] = {1, -1, 3}, d8[3];
    ppu_reduce2(d8, a8, b8, 3, PPU_INT8, PPU_SUM);
    cr_assert(d8[0] == -128 && d8[1] == 127 && d8[2] == -4);
    ppu_reduce2(d8, a8, b8, 3, PPU_INT8, PPU_PROD);
    cr_assert(d8[0] == 127 && d8[1] == -128 && d8[2] == -21);
    ppu_reduce2(d8, a8, b8, 3, PPU_INT8, PPU_MIN);
    cr_assert(d8[0] == 1 && d8[1] == -128 && d8[2] == -7);
    int64_t a64[1] = {INT64_MAX}, b64[1] = {2}, d64[1];
    ppu_reduce2(d64, a64, b64, 1, PPU_INT64, PPU_PROD);
    cr_assert_eq(d64[0], -2);
    ppu_reduce2(d64, a64, b64, 1, PPU_INT64, PPU_AVG);
    cr_assert_eq(d64[0], INT64_MIN + 1);
    float fa[2] = {NAN, 1.0f}, fb[2] = {1.0f, NAN}, fd[2];
    ppu_reduce2(fd, fa, fb, 2, PPU_FLOAT32, PPU_MAX);
    cr_assert(isnan(fd[0]) && isnan(fd[1]));
    ppu_reduce2(fd, fa, fb, 2, PPU_FLOAT32, PPU_MIN);
    cr_assert(isnan(fd[0]) && isnan(fd[1]));
    /* count 0 touches nothing */
    ppu_reduce2(NULL, NULL, NULL, 0, PPU_FLOAT32, PPU_SUM);
}

/* ---- ppu_reduce_finish -------------------------------------------------- */

static void check_finish(ppu_datatype_t dt, int nranks)
{
    size_t count = 1023, sz = dt_size[dt], bytes = count * sz;
    unsigned char *mem = malloc(bytes + 1), *orig = malloc(bytes), *want = malloc(bytes);
    cr_assert(mem && orig && want);
    unsigned char *buf = mem + 1; /* unaligned */
    fill(orig, count, dt);
    for (size_t i = 0; i < count; i++) {
        if (is_signed_int(dt))
            store_int(want, i, dt, (uint64_t)((int64_t)load_int(orig, i, dt) / nranks));
        else if (is_int(dt))
            store_int(want, i, dt, load_int(orig, i, dt) / (uint64_t)nranks);
        else if (dt == PPU_FLOAT64) {
            double v = load_float(orig, i, dt) / nranks;
            memcpy(want + i * 8, &v, 8);
        } else /* the double quotient rounds innocuously to <= 24 bits */
            store_float(want, i, dt, load_float(orig, i, dt) / nranks);
    }
    /* Other ops leave the buffer alone. */
    for (int op = 0; op < PPU_NUM_REDOPS; op++) {
        if (op == PPU_AVG)
            continue;
        memcpy(buf, orig, bytes);
        ppu_reduce_finish(buf, count, dt, (ppu_redop_t)op, nranks);
        if (memcmp(buf, orig, bytes) != 0)
            fail("%s: finish with op %d changed the buffer", dt_name[dt], op);
    }
    memcpy(buf, orig, bytes);
    ppu_reduce_finish(buf, count, dt, PPU_AVG, nranks);
    for (size_t i = 0; i < count; i++)
        if (!same_element(buf, want, i, dt, PPU_AVG)) {
            fail("%s AVG / %d: element %zu differs", dt_name[dt], nranks, i);
            break;
        }
    free(mem);
    free(orig);
    free(want);
}

Test(finish, avg_all_types)
{
    static const int nranks[] = {1, 2, 3, 7, 8, 1000};
    failures = 0;
    for (int dt = 0; dt < PPU_NUM_DATATYPES; dt++)
        for (size_t n = 0; n < sizeof nranks / sizeof *nranks; n++)
            check_finish((ppu_datatype_t)dt, nranks[n]);
    cr_assert_eq(failures, 0, "%ld failing cases", failures);
}

Test(finish, avg_spot_values)
{
    int32_t v[4] = {-7, 7, -1, INT32_MIN};
    ppu_reduce_finish(v, 4, PPU_INT32, PPU_AVG, 2);
    cr_assert(v[0] == -3 && v[1] == 3 && v[2] == 0 && v[3] == INT32_MIN / 2);
    int8_t w[2] = {-128, 127};
    ppu_reduce_finish(w, 2, PPU_INT8, PPU_AVG, 3);
    cr_assert(w[0] == -42 && w[1] == 42);
    uint16_t h[2] = {ppu_float_to_half(3.0f), ppu_float_to_half(-1.0f)};
    ppu_reduce_finish(h, 2, PPU_FLOAT16, PPU_AVG, 2);
    cr_assert(ppu_half_to_float(h[0]) == 1.5f && ppu_half_to_float(h[1]) == -0.5f);
    double d[1] = {1.0};
    ppu_reduce_finish(d, 1, PPU_FLOAT64, PPU_AVG, 3);
    cr_assert_eq(d[0], 1.0 / 3.0);
}
