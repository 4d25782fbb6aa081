/* Fuzz the checks of the network transports (net_check_frame in
 * transports/net_common/net_proto.c, net_check_hello in
 * transports/net_socket/net_socket.c): what a listener does with the hello
 * a new connection presents, and what a progress thread does with each
 * 48-byte frame header that arrives on a link.
 *
 * Input: one connection's bytes as a receiver sees them: a hello
 * (struct net_hello, 48 bytes, host byte order), then frames: a header
 * (struct net_frame, 48 bytes) and, for a data frame, its payload. The
 * hello is checked against links of 1..8 sockets (none connected yet, and
 * some connected); the frames are checked as the receiver's socket reads
 * them (message index starting at the hello's socket index, advancing by
 * nsocks per data frame, payload skipped) until one breaks the link, and
 * each header also as the sender would (failure notices and credits only). Every
 * decision is compared with the protocol's rules written out here, so a
 * change of behaviour is a finding too. The nonce and link shape are fixed
 * (FUZZ_NONCE, 4 slots of 4096 bytes); the seeds carry them. The same
 * bytes also go through net_ib's checks (transports/net_ib/net_ib.h): a
 * connection request's private data, connect info, immediate data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "net_ib/net_ib.h"
#include "net_socket/net_socket.h"

#define SLOT_BYTES 4096u
#define NSLOTS 4u

static const uint8_t FUZZ_NONCE[NET_NONCE_BYTES] = {
    'p', 'p', 'u', 'c', 'c', 'l', '-', 'n', 'e', 't', '-', 'n', 'o', 'n', 'c', 'e'};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    return 0;
}

/* The hello's socket index on a link of nsocks sockets, or -1. */
static int check_hello(const uint8_t *data, size_t size, int nsocks, unsigned have)
{
    struct net_hello h;
    memset(&h, 0xa5, sizeof h);
    const char *why = NULL;
    int idx = net_check_hello(data, size, FUZZ_NONCE, nsocks, SLOT_BYTES, NSLOTS, have, &h, &why);
    if (size < sizeof h) {
        FUZZ_REQUIRE(idx == -1, "accepted a %zu-byte hello as socket %d", size, idx);
        FUZZ_REQUIRE(why && *why, "short hello refused without a reason");
        return -1;
    }
    FUZZ_REQUIRE(memcmp(&h, data, sizeof h) == 0, "decoded hello differs from its bytes");
    int ok = h.magic == NET_MAGIC_HELLO && h.version == NET_VERSION &&
             memcmp(h.nonce, FUZZ_NONCE, sizeof h.nonce) == 0 && h.index < nsocks &&
             !(have >> h.index & 1u) && h.nsocks == nsocks && h.slot_bytes == SLOT_BYTES &&
             h.nslots == NSLOTS;
    if (!ok) {
        FUZZ_REQUIRE(idx == -1, "accepted a bad hello as socket %d of %d", idx, nsocks);
        FUZZ_REQUIRE(why && *why, "hello refused without a reason");
        return -1;
    }
    FUZZ_REQUIRE(idx == h.index, "good hello for socket %u of %d gave %d", h.index, nsocks, idx);
    FUZZ_REQUIRE(idx >= 0 && idx < nsocks && !(have >> idx & 1u), "index %d of %d, have 0x%x",
                 idx, nsocks, have);
    return idx;
}

/* One header as a sender reads it: failure notices and credits pass (the
 * credit's value is net_end_credit_in's to judge). */
static void check_at_sender(const uint8_t *p, size_t n)
{
    struct net_frame f;
    const char *why = NULL;
    int t = net_check_frame(p, n, 0, 0, SLOT_BYTES, &f, &why);
    if (t == NET_FRAME_FAIL || t == NET_FRAME_CREDIT) {
        FUZZ_REQUIRE(n >= sizeof f && f.magic == NET_MAGIC_FRAME && f.type == (uint32_t)t,
                     "sender took a frame of type %u as %d", f.type, t);
        return;
    }
    FUZZ_REQUIRE(t == 0, "sender got %d", t);
    FUZZ_REQUIRE(why && *why, "frame refused at the sender without a reason");
    FUZZ_REQUIRE(n < sizeof f || f.magic != NET_MAGIC_FRAME ||
                     (f.type != NET_FRAME_FAIL && f.type != NET_FRAME_CREDIT),
                 "sender refused a failure notice or a credit");
}

/* The frames after the hello, as socket idx of nsocks reads them. */
static void check_frames(const uint8_t *p, size_t n, uint64_t pos, unsigned nsocks)
{
    for (;;) {
        check_at_sender(p, n);
        struct net_frame f;
        memset(&f, 0xa5, sizeof f);
        const char *why = NULL;
        int t = net_check_frame(p, n, 1, pos, SLOT_BYTES, &f, &why);
        if (n < sizeof f) {
            FUZZ_REQUIRE(t == 0, "accepted %zu bytes as a frame header", n);
            FUZZ_REQUIRE(why && *why, "short frame refused without a reason");
            return; /* the connection closed before a whole header */
        }
        FUZZ_REQUIRE(memcmp(&f, p, sizeof f) == 0, "decoded frame differs from its bytes");
        if (f.magic == NET_MAGIC_FRAME && f.type == NET_FRAME_FAIL) {
            FUZZ_REQUIRE(t == NET_FRAME_FAIL, "failure notice gave %d", t);
            p += sizeof f;
            n -= sizeof f;
            continue;
        }
        int ok = f.magic == NET_MAGIC_FRAME && f.type == NET_FRAME_DATA && f.seq == pos &&
                 f.bytes <= SLOT_BYTES;
        if (!ok) {
            FUZZ_REQUIRE(t == 0, "took a bad frame (type %u, message %llu of %llu bytes, %llu "
                         "due) as %d", f.type, (unsigned long long)f.seq,
                         (unsigned long long)f.bytes, (unsigned long long)pos, t);
            FUZZ_REQUIRE(why && *why, "frame refused without a reason");
            return; /* the link is broken: nothing more is read */
        }
        FUZZ_REQUIRE(t == NET_FRAME_DATA, "good data frame gave %d", t);
        FUZZ_REQUIRE(f.bytes <= SLOT_BYTES && f.seq == pos, "message %llu of %llu bytes",
                     (unsigned long long)f.seq, (unsigned long long)f.bytes);
        p += sizeof f;
        n -= sizeof f;
        if (n < f.bytes)
            return; /* closed in the middle of the payload */
        p += f.bytes;
        n -= (size_t)f.bytes;
        pos += nsocks;
    }
}

/* The same bytes as net_ib would meet them: a connection request's
 * private data, connect info, and (first 4 bytes) immediate data. */
static void check_ib(const uint8_t *data, size_t size)
{
    struct net_ib_req q;
    const char *why = NULL;
    int r = net_ib_check_req(data, size, FUZZ_NONCE, &q, &why);
    if (size >= sizeof q) {
        struct net_ib_req w;
        memcpy(&w, data, sizeof w);
        int ok = w.magic == NET_IB_MAGIC_REQ && w.version == NET_IB_VERSION &&
                 !memcmp(w.nonce, FUZZ_NONCE, NET_IB_NONCE_BYTES) && w.ctl_addr != 0;
        FUZZ_REQUIRE(r == (ok ? 0 : -1), "request check gave %d, rules say %d", r, ok);
        FUZZ_REQUIRE(ok || (why && *why), "request refused without a reason");
    } else {
        FUZZ_REQUIRE(r == -1 && why && *why, "a short request was taken");
    }
    struct net_ib_info in;
    why = NULL;
    r = net_ib_check_info(data, size, SLOT_BYTES, NSLOTS, &in, &why);
    FUZZ_REQUIRE(r == 0 || (why && *why), "connect info refused without a reason");
    if (r == 0)
        FUZZ_REQUIRE(in.slot_bytes == SLOT_BYTES && in.nslots == NSLOTS &&
                         in.stride >= NET_IB_HDR + SLOT_BYTES && in.slots_addr && in.ctl_addr,
                     "connect info of another shape was taken");
    if (size >= 4) {
        uint32_t imm;
        memcpy(&imm, data, 4);
        uint64_t due = size;
        int k = net_ib_check_imm(imm, 1, due, &why);
        FUZZ_REQUIRE(k == -1 || k == NET_IB_IMM_FAIL ||
                         (k == NET_IB_IMM_DATA && (imm & NET_IB_IMM_MASK) ==
                                                      ((uint32_t)due & NET_IB_IMM_MASK)),
                     "receiver took immediate 0x%08x as %d", imm, k);
        k = net_ib_check_imm(imm, 0, 0, &why);
        FUZZ_REQUIRE(k == -1 || k == NET_IB_IMM_FAIL || k == NET_IB_IMM_CREDIT,
                     "sender took immediate 0x%08x as %d", imm, k);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_ib(data, size);
    int opened = -1, on_nsocks = 1;
    for (int nsocks = 1; nsocks <= NET_MAX_SOCKS; nsocks++) {
        unsigned all = (1u << nsocks) - 1;
        static const unsigned haves[] = {0x00, 0x55, 0xaa, 0xfe};
        for (size_t k = 0; k < sizeof haves / sizeof haves[0]; k++) {
            unsigned have = haves[k] & all;
            if (have == all)
                continue; /* a complete link reads no more hellos */
            int idx = check_hello(data, size, nsocks, have);
            if (idx >= 0 && k == 0) {
                FUZZ_REQUIRE(opened < 0, "one hello opened links of %d and %d sockets",
                             on_nsocks, nsocks);
                opened = idx;
                on_nsocks = nsocks;
            }
        }
    }
    if (size >= sizeof(struct net_hello))
        check_frames(data + sizeof(struct net_hello), size - sizeof(struct net_hello),
                     opened >= 0 ? (uint64_t)opened : 0, (unsigned)on_nsocks);
    return 0;
}
