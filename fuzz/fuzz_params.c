/* Fuzz the parsers of PPU_* environment values (README: "Parameters"):
 *   PPU_SIM_FAULT        ppu_fault_parse_str (src/fault.c)
 *   PPU_ALGO, PPU_PROTO  ppu_plan_parse_masks (src/plan.c)
 *   PPU_ROOT_ADDR        ppu_socket_parse (src/util/socket.c)
 *   PPU_SIM_LINKS_DOWN   ppu_topo_set_down (topology/topo.c)
 *   every PPU_* entry    ppu_param_parse (src/util/param.c: integers, choices)
 *
 * Input: the value, as a NUL-terminated string (the input up to its first
 * NUL byte). Every parser sees every input; each checks what its success
 * promises. getaddrinfo is wrapped (-Wl,--wrap=getaddrinfo) to numeric
 * hosts and ports only, so that fuzzed host names never reach DNS. */
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "fault.h"
#include "fuzz_common.h"
#include "util/param.h"
#include "util/socket.h"
#include "topo.h"

#define NRANKS 16

static struct ppu_comm comm;
static struct ppu_topo base, t;

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    struct addrinfo h;
    if (hints)
        h = *hints;
    else
        memset(&h, 0, sizeof h);
    h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    return __real_getaddrinfo(node, service, &h, res);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    pthread_mutex_init(&comm.err_lock, NULL);
    comm.rank = 0;
    comm.nranks = NRANKS;
    char err[256];
    /* Two servers of 8 fully linked chips: pairs across them are no link. */
    if (ppu_topo_sim_build("fullmesh8", 2, 8, &base, err, sizeof err) != PPU_SUCCESS) {
        fprintf(stderr, "fuzz_params: %s\n", err);
        abort();
    }
    return 0;
}

/* What an accepted PPU_SIM_FAULT promises for each item beyond the fields'
 * ranges: the ranks as written (before the ':') are in 0..NRANKS-1, not
 * just after a conversion to int, and the count K or D (after the last
 * '=') is not negative. */
static void check_fault_items(const char *s)
{
    while (*s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char item[128];
        FUZZ_REQUIRE(len < sizeof item, "accepted an item of %zu bytes", len);
        memcpy(item, s, len);
        item[len] = '\0';
        const char *colon = strchr(item, ':'), *eq = strrchr(item, '=');
        FUZZ_REQUIRE(colon && eq, "accepted '%s'", item);
        for (const char *q = item; q < colon;) {
            if (*q < '0' || *q > '9') {
                q++;
                continue;
            }
            unsigned long long v = 0;
            for (; *q >= '0' && *q <= '9'; q++)
                v = v > 1000000000ull ? v : v * 10 + (unsigned)(*q - '0');
            FUZZ_REQUIRE(v < NRANKS, "accepted '%s': rank %llu of %d", item, v, NRANKS);
        }
        FUZZ_REQUIRE(strtoll(eq + 1, NULL, 10) >= 0, "accepted '%s': a negative count", item);
        s += len + (end ? 1 : 0);
    }
}

static void fuzz_fault(const char *s)
{
    if (ppu_fault_parse_str(&comm, s) != PPU_SUCCESS) {
        FUZZ_REQUIRE(comm.last_error[0], "PPU_SIM_FAULT refused without an error");
        return;
    }
    FUZZ_REQUIRE(comm.nfaults >= 0 && comm.nfaults <= PPU_MAX_FAULTS, "%d faults", comm.nfaults);
    for (int i = 0; i < comm.nfaults; i++) {
        const struct ppu_fault *f = &comm.faults[i];
        FUZZ_REQUIRE(f->a >= 0 && f->a < NRANKS, "fault %d names rank %d", i, f->a);
        if (f->kind != PPU_FAULT_EXIT)
            FUZZ_REQUIRE(f->b >= 0 && f->b < NRANKS && f->b != f->a, "fault %d link %d-%d", i,
                         f->a, f->b);
    }
    check_fault_items(s);
}

static void fuzz_plan(const char *algo, const char *proto)
{
    struct ppu_plan_settings set;
    char err[512] = "";
    memset(&set, 0, sizeof set);
    if (ppu_plan_parse_masks(&set, algo, proto, 1, err, sizeof err) != PPU_SUCCESS) {
        FUZZ_REQUIRE(err[0], "PPU_ALGO/PPU_PROTO refused without an error");
        return;
    }
    for (int c = 0; c < PPU_NUM_COLLS; c++) {
        FUZZ_REQUIRE(!(set.algo_mask[c] >> PPU_NUM_ALGOS), "algo mask %#x", set.algo_mask[c]);
        FUZZ_REQUIRE(!(set.proto_mask[c] >> PPU_NUM_PROTOS), "proto mask %#x",
                     set.proto_mask[c]);
    }
}

static void fuzz_socket(const char *s)
{
    union ppu_sockaddr a;
    if (ppu_socket_parse(s, &a) != PPU_SUCCESS)
        return;
    FUZZ_REQUIRE(a.sa.sa_family == AF_INET || a.sa.sa_family == AF_INET6, "family %d",
                 a.sa.sa_family);
    char buf[64];
    ppu_socket_str(&a, buf, sizeof buf);
    (void)ppu_socket_is_loopback(&a);
}

static void fuzz_links_down(const char *s)
{
    char err[256] = "";
    t = base;
    if (ppu_topo_set_down(&t, s, err, sizeof err) != PPU_SUCCESS) {
        FUZZ_REQUIRE(err[0], "PPU_SIM_LINKS_DOWN refused without an error");
        return;
    }
    /* Only up links went down, both directions. */
    for (int a = 0; a < PPU_TOPO_MAX_CHIPS; a++)
        for (int b = 0; b < PPU_TOPO_MAX_CHIPS; b++) {
            FUZZ_REQUIRE(t.link[a][b] == t.link[b][a], "link %d-%d asymmetric", a, b);
            FUZZ_REQUIRE(t.link[a][b] == base.link[a][b] ||
                             (base.link[a][b] == PPU_LINK_UP && t.link[a][b] == PPU_LINK_DOWN),
                         "link %d-%d went from %d to %d", a, b, base.link[a][b], t.link[a][b]);
        }
}

/* What the table accepts is what it promises: an integer in its range, a
 * choice spelled as the table spells it, a list of known names. */
static void fuzz_table(const char *s)
{
    const struct ppu_param_def *t = ppu_param_table();
    for (int i = 0; i < PPU_P_COUNT; i++) {
        const char *v;
        long long iv;
        char why[256] = "";
        if (ppu_param_parse((enum ppu_param)i, s, &v, &iv, why, sizeof why) != PPU_SUCCESS) {
            FUZZ_REQUIRE(why[0] && strstr(why, t[i].name), "%s refused without naming it",
                         t[i].name);
            continue;
        }
        FUZZ_REQUIRE(v != NULL, "%s: no value", t[i].name);
        if (t[i].kind == PPU_PK_INT && *s)
            FUZZ_REQUIRE(iv >= t[i].min && iv <= t[i].max, "%s accepted %lld", t[i].name, iv);
        if (t[i].kind == PPU_PK_CHOICE && *s) {
            int known = 0;
            for (int k = 0; t[i].choices[k]; k++)
                known |= v == t[i].choices[k];
            FUZZ_REQUIRE(known, "%s accepted '%s'", t[i].name, v);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    comm.last_error[0] = '\0';
    fuzz_fault(s);
    comm.last_error[0] = '\0';
    fuzz_plan(s, "");
    comm.last_error[0] = '\0';
    fuzz_plan("", s);
    fuzz_socket(s);
    fuzz_links_down(s);
    fuzz_table(s);
    free(s);
    return 0;
}
