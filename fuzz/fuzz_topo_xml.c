/* Fuzz the topology file parser (topology/topo_xml.c).
 *
 * The input is the file's bytes (not NUL-terminated: the parser must read
 * nothing past len, which ASan checks as libFuzzer's buffer is exactly
 * size bytes). Beyond "no crash", it checks what topo_xml.h promises:
 *   - on failure the topology is left unchanged and err holds a sentence;
 *   - on success ppu_topo_check_xml accepts the result, ppu_topo_dump_xml
 *     writes it, and parsing that text gives the same topology back, but
 *     for the documented exception (TOPOLOGY_FILE.md, "Writing"): NICs are
 *     written grouped by server, so they read back in server order. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "topo_xml.h"

static struct ppu_topo t, t2, want;
static unsigned char pattern[sizeof(struct ppu_topo)];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    memset(pattern, 0x5a, sizeof pattern);
    return 0;
}

static int same_str(const char *a, const char *b, size_t size)
{
    return strncmp(a, b, size) == 0;
}

/* 0 when equal, else which field differs (for the message). */
static const char *topo_diff(const struct ppu_topo *a, const struct ppu_topo *b)
{
    if (!same_str(a->name, b->name, sizeof a->name)) return "name";
    if (!same_str(a->source, b->source, sizeof a->source)) return "source";
    if (a->nchips != b->nchips) return "nchips";
    if (a->nservers != b->nservers) return "nservers";
    if (a->ports_per_chip != b->ports_per_chip) return "ports_per_chip";
    if (a->link_gbps != b->link_gbps) return "link_gbps";
    if (a->link_latency_us != b->link_latency_us) return "link_latency_us";
    for (int x = 0; x < PPU_TOPO_MAX_CHIPS; x++) {
        if (a->server[x] != b->server[x]) return "server[]";
        if (a->numa[x] != b->numa[x]) return "numa[]";
        if (!same_str(a->pci[x], b->pci[x], sizeof a->pci[x])) return "pci[]";
        if (!same_str(a->host[x], b->host[x], sizeof a->host[x])) return "host[]";
        for (int y = 0; y < PPU_TOPO_MAX_CHIPS; y++) {
            if (a->link[x][y] != b->link[x][y]) return "link[][]";
            if (a->port[x][y] != b->port[x][y]) return "port[][]";
            if (a->link[x][y] == PPU_LINK_NONE)
                continue;
            if (a->gbps[x][y] != b->gbps[x][y]) return "gbps[][]";
            if (a->latency_us[x][y] != b->latency_us[x][y]) return "latency_us[][]";
        }
    }
    if (a->nnics != b->nnics) return "nnics";
    for (int i = 0; i < a->nnics; i++) {
        const struct ppu_topo_nic *p = &a->nic[i], *q = &b->nic[i];
        if (!same_str(p->name, q->name, sizeof p->name)) return "nic[].name";
        if (!same_str(p->pci, q->pci, sizeof p->pci)) return "nic[].pci";
        if (p->server != q->server || p->chip != q->chip || p->numa != q->numa ||
            p->gbps != q->gbps || p->rdma != q->rdma)
            return "nic[] fields";
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    memcpy(&t, pattern, sizeof t);
    err[0] = 'x';
    err[1] = '\0';
    ppu_result_t r = ppu_topo_parse_xml((const char *)data, size, "fuzz.xml", &t, err, sizeof err);
    if (r != PPU_SUCCESS) {
        FUZZ_REQUIRE(r == PPU_INVALID_ARGUMENT, "result %d", (int)r);
        FUZZ_REQUIRE(memcmp(&t, pattern, sizeof t) == 0, "a failed parse changed the topology");
        FUZZ_REQUIRE(memchr(err, '\0', sizeof err) && err[0] && strcmp(err, "x") != 0,
                     "no error sentence");
        return 0;
    }

    FUZZ_REQUIRE(ppu_topo_check_xml(&t, err, sizeof err) == PPU_SUCCESS,
                 "parsed topology fails ppu_topo_check_xml: %s", err);

    /* Write it and read it back. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    FUZZ_REQUIRE(f != NULL, "open_memstream");
    r = ppu_topo_dump_xml(&t, f);
    fclose(f);
    FUZZ_REQUIRE(r == PPU_SUCCESS, "ppu_topo_dump_xml failed (%d)", (int)r);
    memcpy(&t2, pattern, sizeof t2);
    r = ppu_topo_parse_xml(text, len, "fuzz.xml", &t2, err, sizeof err);
    FUZZ_REQUIRE(r == PPU_SUCCESS, "the dump does not parse: %s\n%s", err, text);
    want = t; /* NICs stably sorted by server */
    for (int i = 1; i < want.nnics; i++) {
        struct ppu_topo_nic nic = want.nic[i];
        int j = i;
        for (; j > 0 && want.nic[j - 1].server > nic.server; j--)
            want.nic[j] = want.nic[j - 1];
        want.nic[j] = nic;
    }
    const char *diff = topo_diff(&want, &t2);
    FUZZ_REQUIRE(diff == NULL, "dump and re-parse changed %s\n%s", diff, text);
    free(text);
    return 0;
}
