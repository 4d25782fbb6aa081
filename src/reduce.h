/* Reduction kernels: every datatype x op, host memory. */
#ifndef PPU_REDUCE_H
#define PPU_REDUCE_H

#include <stddef.h>
#include <stdint.h>
#include "ppuccl.h"

/* dst[i] = a[i] op b[i] for i < count. dst may alias a or b (exactly, not
 * partially). PPU_AVG reduces as PPU_SUM; ppu_reduce_finish divides.
 * float16/bfloat16 are computed in float and rounded to nearest even, which
 * is correctly rounded for one operation (24 >= 2*11+2 bits). Integer sums
 * and products wrap modulo 2^bits, also for signed types. */
void ppu_reduce2(void *dst, const void *a, const void *b, size_t count,
                 ppu_datatype_t datatype, ppu_redop_t op);

/* The instruction set ppu_reduce2 runs ("avx512", "avx2", "generic"):
 * PPU_SIMD's, else the best this CPU has, chosen at the first call.
 * ppu_reduce_isa_set switches it (tests, benchmarks): -1 for a name this
 * CPU or build lacks. */
const char *ppu_reduce_isa(void);
int ppu_reduce_isa_set(const char *name);

/* Final step of PPU_AVG: buf[i] = buf[i] / nranks (integers truncate toward
 * zero, floats round to nearest even). No-op for other ops. */
void ppu_reduce_finish(void *buf, size_t count, ppu_datatype_t datatype,
                       ppu_redop_t op, int nranks);

/* IEEE binary16 and bfloat16 conversions, round to nearest even; NaN stays
 * NaN, overflow gives infinity. */
uint16_t ppu_float_to_half(float f);
float ppu_half_to_float(uint16_t h);
uint16_t ppu_float_to_bf16(float f);
float ppu_bf16_to_float(uint16_t b);

/* Checksum of a message (PPU_CHECKSUM): position-dependent sums over 8
 * lanes of 32-bit words, so any single flipped bit, and any two swapped
 * words, change it. Never 0, so 0 can mean "not computed". */
uint64_t ppu_checksum(const void *buf, size_t bytes);

#endif
