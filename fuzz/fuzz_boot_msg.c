/* Fuzz the checks of bootstrap messages (src/bootstrap.c): what the root
 * and the ranks do with the bytes a connection sends them before they
 * trust it.
 *
 * Input: a wire header (PPU_BOOT_HDR_BYTES: magic, version, type,
 * secret[16], length, big endian) followed by the payload. Every header is
 * checked as each message type in turn (with that type's length limit);
 * when one passes, the payload is decoded as that type: a hello through
 * ppu_boot_check_hello and its address entry, a rank table through
 * ppu_boot_addr_from_wire per entry. The secret is fixed (FUZZ_SECRET);
 * the seeds carry it, so mutations start from headers that pass. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "fuzz_common.h"

/* bootstrap.c's message types and length limits. */
enum { MSG_HELLO = 1, MSG_TABLE = 2, MSG_ABORT = 3, MSG_RING = 4 };
#define MAX_RANKS 65536

static const uint8_t FUZZ_SECRET[PPU_BOOT_SECRET_BYTES] = {
    'p', 'p', 'u', 'c', 'c', 'l', '-', 'f', 'u', 'z', 'z', '-', 'k', 'e', 'y', '!'};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    return 0;
}

static void use_addr(const union ppu_sockaddr *a)
{
    char s[64];
    ppu_socket_str(a, s, sizeof s);
    FUZZ_REQUIRE(memchr(s, '\0', sizeof s) != NULL, "unterminated address string");
    (void)ppu_socket_is_loopback(a);
    FUZZ_REQUIRE(a->sa.sa_family == AF_INET || a->sa.sa_family == AF_INET6,
                 "decoded family %d", a->sa.sa_family);
}

static void decode(int type, const uint8_t *p, size_t n)
{
    union ppu_sockaddr a;
    uint64_t hash;
    if (type == MSG_HELLO) {
        /* As the first hello (nranks 0) and as a later one (nranks 8). */
        for (int nranks = 0; nranks <= 8; nranks += 8) {
            uint32_t rank = UINT32_MAX, size = 0;
            const char *why = NULL;
            ppu_result_t r = ppu_boot_check_hello(p, n, nranks, &rank, &size, &why);
            if (r != PPU_SUCCESS) {
                FUZZ_REQUIRE(r == PPU_REMOTE_ERROR && why && *why, "hello refused without why");
                continue;
            }
            FUZZ_REQUIRE(size >= 1 && size <= MAX_RANKS && rank < size, "rank %u size %u", rank,
                         size);
            FUZZ_REQUIRE(!nranks || (int)size == nranks, "size %u != %d", size, nranks);
            FUZZ_REQUIRE(ppu_boot_addr_from_wire(p + 8, n - 8, &a, &hash) == PPU_SUCCESS,
                         "hello address");
            use_addr(&a);
        }
    } else if (type == MSG_TABLE) {
        for (size_t o = 0; o + PPU_BOOT_ADDR_BYTES <= n; o += PPU_BOOT_ADDR_BYTES) {
            FUZZ_REQUIRE(ppu_boot_addr_from_wire(p + o, n - o, &a, &hash) == PPU_SUCCESS,
                         "table entry");
            use_addr(&a);
        }
        if (n % PPU_BOOT_ADDR_BYTES)
            FUZZ_REQUIRE(ppu_boot_addr_from_wire(p + n - n % PPU_BOOT_ADDR_BYTES,
                                                 n % PPU_BOOT_ADDR_BYTES, &a, &hash) ==
                             PPU_INVALID_ARGUMENT,
                         "short table entry accepted");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct { int type; uint32_t max_len; } kinds[] = {
        {MSG_HELLO, PPU_BOOT_HELLO_BYTES},
        {MSG_TABLE, (uint32_t)MAX_RANKS * PPU_BOOT_ADDR_BYTES},
        {MSG_ABORT, 4096},
        {MSG_RING, 4},
    };
    int passed = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        uint32_t len = UINT32_MAX;
        const char *why = NULL;
        ppu_result_t r = ppu_boot_check_hdr(data, size, FUZZ_SECRET, kinds[k].type,
                                            kinds[k].max_len, &len, &why);
        if (r != PPU_SUCCESS) {
            FUZZ_REQUIRE(r == PPU_REMOTE_ERROR || r == PPU_INVALID_USAGE, "result %d", (int)r);
            FUZZ_REQUIRE(why && *why, "header refused without a reason");
            continue;
        }
        passed++;
        FUZZ_REQUIRE(size >= PPU_BOOT_HDR_BYTES, "accepted %zu bytes as a header", size);
        FUZZ_REQUIRE(len <= kinds[k].max_len, "length %u over %u", len, kinds[k].max_len);
        uint32_t wire_len;
        memcpy(&wire_len, data + PPU_BOOT_HDR_BYTES - 4, 4);
        FUZZ_REQUIRE(len == ntohl(wire_len), "length %u, header says %u", len, ntohl(wire_len));
        /* The receiver reads exactly len payload bytes; a shorter input is
         * a connection that closed early. */
        size_t have = size - PPU_BOOT_HDR_BYTES;
        if (have >= len)
            decode(kinds[k].type, data + PPU_BOOT_HDR_BYTES, len);
    }
    FUZZ_REQUIRE(passed <= 1, "one header passed as %d message types", passed);
    return 0;
}
