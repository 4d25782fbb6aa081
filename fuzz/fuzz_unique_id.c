/* Fuzz the unique-id decoder ppu_id_unpack (src/bootstrap.c). A unique id
 * arrives from another process (a file, MPI, a Python pickle), so its
 * PPU_UNIQUE_ID_BYTES bytes are untrusted.
 *
 * Input: up to PPU_UNIQUE_ID_BYTES bytes of the id (zero-padded). An id
 * that unpacks must pack back to an id that unpacks to the same fields,
 * and its root address must print. */
#include <stdint.h>
#include <string.h>

#include "bootstrap.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ppu_unique_id_t id, id2;
    memset(&id, 0, sizeof id);
    memcpy(id.internal, data, size < sizeof id.internal ? size : sizeof id.internal);
    struct ppu_id_fields f, f2;
    memset(&f, 0xa5, sizeof f);
    ppu_result_t r = ppu_id_unpack(&id, &f);
    if (r != PPU_SUCCESS) {
        FUZZ_REQUIRE(r == PPU_INVALID_ARGUMENT, "result %d", (int)r);
        return 0;
    }
    FUZZ_REQUIRE(f.root.sa.sa_family == AF_INET || f.root.sa.sa_family == AF_INET6,
                 "family %d", f.root.sa.sa_family);
    char s[64];
    ppu_socket_str(&f.root, s, sizeof s);
    FUZZ_REQUIRE(memchr(s, '\0', sizeof s) != NULL, "unterminated address string");
    (void)ppu_socket_is_loopback(&f.root);

    ppu_id_pack(&f, &id2);
    memset(&f2, 0x5a, sizeof f2);
    FUZZ_REQUIRE(ppu_id_unpack(&id2, &f2) == PPU_SUCCESS, "a packed id does not unpack");
    FUZZ_REQUIRE(memcmp(&f, &f2, sizeof f) == 0, "pack/unpack changed the fields (%s)", s);
    return 0;
}
