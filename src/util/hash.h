/* Hashes that are not checksums of user data, and the compare for secrets.
 * Every such hash in the library is XXH3 (Debian's libxxhash), so there is
 * no hand-written one to keep right; a checksum of payloads is reduce.c's
 * own (it must be cheap per byte and is tested there). */
#ifndef PPU_UTIL_HASH_H
#define PPU_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

static inline uint64_t ppu_hash64(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

/* 16 bytes of hash, e.g. a secret derived from a string. */
static inline void ppu_hash128(const void *p, size_t n, uint8_t out[16])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
    memcpy(out, c.digest, 16);
}

/* a[0..n) == b[0..n), in time that does not depend on where they differ
 * (secrets and nonces from the network). */
static inline int ppu_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

#endif
