/* Topology files: parsing, writing, round trips, error messages, and a
 * fuzz-style robustness test. */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "topo.h"
#include "topo_xml.h"

#define ERRLEN 512

/* ---- helpers --------------------------------------------------------- */

/* Parse from an exactly sized heap copy, so a read past len is an
 * AddressSanitizer error. */
static ppu_result_t parse_exact(const char *text, size_t len, const char *file,
                                struct ppu_topo *t, char *err)
{
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, text, len);
    ppu_result_t r = ppu_topo_parse_xml(copy, len, file, t, err, ERRLEN);
    free(copy);
    return r;
}

static ppu_result_t parse_str(const char *text, struct ppu_topo *t, char *err)
{
    return parse_exact(text, strlen(text), "topo.xml", t, err);
}

static char *dump_to_string(const struct ppu_topo *t, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    cr_assert_not_null(f);
    ppu_result_t r = ppu_topo_dump_xml(t, f);
    fclose(f);
    cr_assert_eq(r, PPU_SUCCESS, "dump failed: %d", r);
    *len = n;
    return buf;
}

static void assert_same(const struct ppu_topo *x, const struct ppu_topo *y)
{
    cr_assert_str_eq(x->name, y->name);
    cr_assert_eq(x->nchips, y->nchips);
    cr_assert_eq(x->nservers, y->nservers);
    cr_assert_eq(x->ports_per_chip, y->ports_per_chip);
    cr_assert_eq(x->link_gbps, y->link_gbps, "link_gbps %.17g vs %.17g", x->link_gbps,
                 y->link_gbps);
    cr_assert_eq(x->link_latency_us, y->link_latency_us);
    int n = x->nchips;
    for (int a = 0; a < n; a++) {
        cr_assert_eq(x->server[a], y->server[a], "server of chip %d", a);
        cr_assert_eq(x->numa[a], y->numa[a], "numa of chip %d", a);
        cr_assert_str_eq(x->pci[a], y->pci[a], "pci of chip %d", a);
        cr_assert_str_eq(x->host[a], y->host[a], "host of chip %d", a);
        for (int b = 0; b < n; b++) {
            cr_assert_eq(x->link[a][b], y->link[a][b], "link %d-%d state", a, b);
            cr_assert_eq(x->gbps[a][b], y->gbps[a][b], "link %d-%d gbps %.9g vs %.9g", a, b,
                         (double)x->gbps[a][b], (double)y->gbps[a][b]);
            cr_assert_eq(x->latency_us[a][b], y->latency_us[a][b], "link %d-%d latency", a, b);
            cr_assert_eq(x->port[a][b], y->port[a][b], "link %d-%d port", a, b);
        }
    }
    cr_assert_eq(x->nnics, y->nnics);
    for (int i = 0; i < x->nnics; i++) {
        const struct ppu_topo_nic *p = &x->nic[i], *q = &y->nic[i];
        cr_assert_str_eq(p->name, q->name, "nic %d", i);
        cr_assert_str_eq(p->pci, q->pci, "nic %d", i);
        cr_assert_eq(p->server, q->server, "nic %d", i);
        cr_assert_eq(p->chip, q->chip, "nic %d", i);
        cr_assert_eq(p->numa, q->numa, "nic %d", i);
        cr_assert_eq(p->gbps, q->gbps, "nic %d", i);
        cr_assert_eq(p->rdma, q->rdma, "nic %d", i);
    }
}

/* Dump t, parse the text back, and compare. */
static void round_trip(const struct ppu_topo *t)
{
    size_t len;
    char *text = dump_to_string(t, &len);
    struct ppu_topo back;
    char err[ERRLEN];
    ppu_result_t r = parse_exact(text, len, "rt.xml", &back, err);
    cr_assert_eq(r, PPU_SUCCESS, "re-parse failed: %s\n%s", err, text);
    cr_assert_str_eq(back.source, "file");
    assert_same(t, &back);
    free(text);
}

/* ---- a good file ----------------------------------------------------- */

/* The example of TOPOLOGY_FILE.md (2 servers x 4 chips). */
static const char example[] =
    "<?xml version=\"1.0\"?>\n"
    "<!-- Two servers with four chips each. -->\n"
    "<ppu_topology version=\"1\" name=\"two_by_four\" ports_per_chip=\"7\"\n"
    "              link_gbps=\"50\" link_latency_us=\"1.0\">\n"
    "  <server id=\"0\" host=\"node01\">\n"
    "    <chip id=\"0\" numa=\"0\" pci=\"0000:17:00.0\"/>\n"
    "    <chip id=\"1\" numa=\"0\" pci=\"0000:2a:00.0\"/>\n"
    "    <chip id=\"2\" numa=\"1\" pci=\"0000:97:00.0\"/>\n"
    "    <chip id=\"3\" numa=\"1\" pci=\"0000:aa:00.0\"/>\n"
    "    <nic name=\"mlx5_0\" chip=\"0\" numa=\"0\" gbps=\"50\" rdma=\"1\" pci=\"0000:18:00.0\"/>\n"
    "    <nic name=\"mlx5_1\" chip=\"2\" numa=\"1\" gbps=\"50\" rdma=\"1\" pci=\"0000:98:00.0\"/>\n"
    "    <nic name=\"eth0\" numa=\"0\" gbps=\"3.125\"/>\n"
    "  </server>\n"
    "  <server id=\"1\" host=\"node02\">\n"
    "    <chip id=\"4\" numa=\"0\" pci=\"0000:17:00.0\"/>\n"
    "    <chip id=\"5\" numa=\"0\" pci=\"0000:2a:00.0\"/>\n"
    "    <chip id=\"6\" numa=\"1\" pci=\"0000:97:00.0\"/>\n"
    "    <chip id=\"7\" numa=\"1\" pci=\"0000:aa:00.0\" host=\"node02-b\"/>\n"
    "    <nic name=\"mlx5_0\" chip=\"4\" numa=\"0\" gbps=\"50\" rdma=\"1\" pci=\"0000:18:00.0\"/>\n"
    "  </server>\n"
    "  <!-- Inside each server, every chip links to every other. -->\n"
    "  <link a=\"0\" b=\"1\" port_a=\"0\" port_b=\"0\"/>\n"
    "  <link a=\"0\" b=\"2\" port_a=\"1\" port_b=\"0\"/>\n"
    "  <link a=\"0\" b=\"3\" port_a=\"2\" port_b=\"0\"/>\n"
    "  <link a=\"1\" b=\"2\" port_a=\"1\" port_b=\"1\"/>\n"
    "  <link a=\"1\" b=\"3\" port_a=\"2\" port_b=\"1\"/>\n"
    "  <link a=\"2\" b=\"3\" port_a=\"2\" port_b=\"2\" state=\"down\"/>\n"
    "  <link a=\"4\" b=\"5\"/>\n"
    "  <link a=\"4\" b=\"6\"/>\n"
    "  <link a=\"4\" b=\"7\"/>\n"
    "  <link a=\"5\" b=\"6\"/>\n"
    "  <link a=\"5\" b=\"7\" gbps=\"25\" latency_us=\"2.5\"/>\n"
    "  <link a=\"6\" b=\"7\"/>\n"
    "  <!-- One cable between the servers. -->\n"
    "  <link a=\"3\" b=\"4\" port_a=\"6\" port_b=\"6\" gbps=\"12.5\" latency_us=\"3\"\n"
    "        state=\"up\"/>\n"
    "</ppu_topology>\n";

Test(topo_xml, parse_example)
{
    struct ppu_topo t;
    char err[ERRLEN];
    cr_assert_eq(parse_str(example, &t, err), PPU_SUCCESS, "%s", err);
    cr_assert_str_eq(t.name, "two_by_four");
    cr_assert_str_eq(t.source, "file");
    cr_assert_eq(t.nchips, 8);
    cr_assert_eq(t.nservers, 2);
    cr_assert_eq(t.ports_per_chip, 7);
    cr_assert_eq(t.link_gbps, 50.0);
    cr_assert_eq(t.link_latency_us, 1.0);
    for (int c = 0; c < 8; c++) {
        cr_assert_eq(t.server[c], c / 4);
        cr_assert_eq(t.numa[c], (c % 4) / 2);
        cr_assert_str_eq(t.host[c], c < 4 ? "node01" : c == 7 ? "node02-b" : "node02");
    }
    cr_assert_str_eq(t.pci[0], "0000:17:00.0");
    cr_assert_str_eq(t.pci[7], "0000:aa:00.0");
    /* Links: both directions, ports per end, defaults and overrides. */
    cr_assert_eq(t.link[0][1], PPU_LINK_UP);
    cr_assert_eq(t.link[1][0], PPU_LINK_UP);
    cr_assert_eq(t.link[2][3], PPU_LINK_DOWN);
    cr_assert_eq(t.link[3][2], PPU_LINK_DOWN);
    cr_assert_eq(t.link[0][4], PPU_LINK_NONE);
    cr_assert_eq(t.link[3][4], PPU_LINK_UP);
    cr_assert_eq(t.port[0][2], 1);
    cr_assert_eq(t.port[2][0], 0);
    cr_assert_eq(t.port[4][5], PPU_TOPO_NO_PORT);
    cr_assert_eq(t.port[3][4], 6);
    cr_assert_eq(t.gbps[0][1], 50.0f);
    cr_assert_eq(t.latency_us[0][1], 1.0f);
    cr_assert_eq(t.gbps[5][7], 25.0f);
    cr_assert_eq(t.gbps[7][5], 25.0f);
    cr_assert_eq(t.latency_us[7][5], 2.5f);
    cr_assert_eq(t.gbps[4][3], 12.5f);
    cr_assert_eq(t.latency_us[3][4], 3.0f);
    int nlinks = 0;
    for (int a = 0; a < 8; a++)
        for (int b = 0; b < 8; b++)
            nlinks += t.link[a][b] != PPU_LINK_NONE;
    cr_assert_eq(nlinks, 2 * 13);
    /* NICs */
    cr_assert_eq(t.nnics, 4);
    cr_assert_str_eq(t.nic[0].name, "mlx5_0");
    cr_assert_eq(t.nic[0].server, 0);
    cr_assert_eq(t.nic[0].chip, 0);
    cr_assert_eq(t.nic[0].numa, 0);
    cr_assert_eq(t.nic[0].gbps, 50.0);
    cr_assert_eq(t.nic[0].rdma, 1);
    cr_assert_str_eq(t.nic[0].pci, "0000:18:00.0");
    cr_assert_eq(t.nic[1].chip, 2);
    cr_assert_str_eq(t.nic[2].name, "eth0");
    cr_assert_eq(t.nic[2].chip, -1);
    cr_assert_eq(t.nic[2].rdma, 0);
    cr_assert_eq(t.nic[2].gbps, 3.125);
    cr_assert_str_eq(t.nic[2].pci, "");
    cr_assert_eq(t.nic[3].server, 1);
    cr_assert_eq(t.nic[3].chip, 4);
    round_trip(&t);
}

/* Syntax variants: single quotes, explicit close tags, comments in odd
 * places, entities, CRLF, any order of ids, defaults. */
Test(topo_xml, parse_syntax_variants)
{
    static const char text[] =
        "<?xml version='1.0' encoding='UTF-8'?>\r\n"
        "<!-- a - b (XML forbids a double dash inside) -->\r\n"
        "<ppu_topology   name = 'a&amp;b&lt;c&gt;&quot;&apos;&#65;&#x42;' >\r\n"
        "  <!-- servers in any order -->\r\n"
        "  <server id='1'><chip id='1'></chip>\t</server>\r\n"
        "  <server\n id=\"0\"\n host=\"h\"\n>\r\n"
        "    <chip id=\"0\" ><!-- inside --></chip >\r\n"
        "    <nic name=\"n\" chip='-1'/>\r\n"
        "  </server>\r\n"
        "  <link b='0' a='1'></link>\r\n"
        "</ppu_topology  >\r\n"
        "<!-- trailing comment -->\r\n";
    struct ppu_topo t;
    char err[ERRLEN];
    cr_assert_eq(parse_str(text, &t, err), PPU_SUCCESS, "%s", err);
    cr_assert_str_eq(t.name, "a&b<c>\"'AB");
    cr_assert_eq(t.nchips, 2);
    cr_assert_eq(t.nservers, 2);
    cr_assert_eq(t.server[0], 0);
    cr_assert_eq(t.server[1], 1);
    cr_assert_str_eq(t.host[0], "h");
    cr_assert_str_eq(t.host[1], "");
    cr_assert_eq(t.numa[0], -1);
    cr_assert_str_eq(t.pci[0], "");
    cr_assert_eq(t.ports_per_chip, 7);
    cr_assert_eq(t.link_gbps, 50.0);
    cr_assert_eq(t.link_latency_us, 1.0);
    cr_assert_eq(t.link[0][1], PPU_LINK_UP);
    cr_assert_eq(t.link[1][0], PPU_LINK_UP);
    cr_assert_eq(t.gbps[1][0], 50.0f);
    cr_assert_eq(t.latency_us[0][1], 1.0f);
    cr_assert_eq(t.port[0][1], PPU_TOPO_NO_PORT);
    cr_assert_eq(t.nnics, 1);
    cr_assert_eq(t.nic[0].chip, -1);
    cr_assert_eq(t.nic[0].server, 0);
    cr_assert_eq(t.nic[0].numa, -1);
    cr_assert_eq(t.nic[0].gbps, 0.0);
    round_trip(&t);
}

/* The name defaults to the file's base name; nothing past len is read. */
Test(topo_xml, name_default_and_length)
{
    static const char text[] =
        "<ppu_topology><server id=\"0\"><chip id=\"0\"/></server></ppu_topology>"
        "<this is junk past len";
    size_t len = strlen(text) - strlen("<this is junk past len");
    struct ppu_topo t;
    char err[ERRLEN];
    cr_assert_eq(ppu_topo_parse_xml(text, len, "/etc/ppu/rack7.xml", &t, err, sizeof err),
                 PPU_SUCCESS, "%s", err);
    cr_assert_str_eq(t.name, "rack7");
    cr_assert_eq(t.nchips, 1);
    cr_assert_eq(t.nservers, 1);
    cr_assert_eq(parse_exact(text, len, "dir/plain", &t, err), PPU_SUCCESS, "%s", err);
    cr_assert_str_eq(t.name, "plain");
    /* The junk is an error once inside len. */
    cr_assert_eq(ppu_topo_parse_xml(text, strlen(text), "x.xml", &t, err, sizeof err),
                 PPU_INVALID_ARGUMENT);
    /* On failure the output is untouched. */
    struct ppu_topo before;
    memset(&before, 0x5a, sizeof before);
    memcpy(&t, &before, sizeof t);
    cr_assert_eq(parse_str("<ppu_topology>", &t, err), PPU_INVALID_ARGUMENT);
    cr_assert_eq(memcmp(&t, &before, sizeof t), 0);
}

/* ---- round trips ----------------------------------------------------- */

static void build_hand(struct ppu_topo *t)
{
    ppu_topo_init(t, "hand <&\"'> built", 8);
    t->nservers = 2;
    t->ports_per_chip = 7;
    t->link_gbps = 46.7;
    t->link_latency_us = 0.7;
    for (int c = 0; c < 8; c++) {
        t->server[c] = c / 4;
        t->numa[c] = c % 2;
        snprintf(t->pci[c], sizeof t->pci[c], "0000:%02x:00.0", 0x10 + c);
        snprintf(t->host[c], sizeof t->host[c], "%s", c < 4 ? "alpha" : "beta");
    }
    snprintf(t->host[7], sizeof t->host[7], "beta\tseven");
    t->numa[5] = -1;
    t->pci[6][0] = '\0';
    /* A full mesh in each server, with ports; some down, some custom. */
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 4; i++)
            for (int j = i + 1; j < 4; j++) {
                int a = 4 * s + i, b = 4 * s + j;
                ppu_topo_connect(t, a, b, PPU_LINK_UP);
                t->port[a][b] = (unsigned char)(j - 1);
                t->port[b][a] = (unsigned char)i;
            }
    ppu_topo_connect(t, 1, 2, PPU_LINK_DOWN);
    t->port[1][2] = 1;
    t->port[2][1] = 1;
    ppu_topo_connect(t, 5, 6, PPU_LINK_DOWN); /* ports left unknown */
    t->gbps[0][3] = t->gbps[3][0] = 12.345678f;
    t->latency_us[0][3] = t->latency_us[3][0] = 3.3f;
    t->gbps[4][7] = t->gbps[7][4] = 0.1f;
    /* Two cables between the servers. */
    ppu_topo_connect(t, 3, 4, PPU_LINK_UP);
    t->port[3][4] = 6;
    t->port[4][3] = 6;
    t->gbps[3][4] = t->gbps[4][3] = 25.0f;
    ppu_topo_connect(t, 0, 7, PPU_LINK_DOWN);
    t->latency_us[0][7] = t->latency_us[7][0] = 1e-3f;
    /* NICs */
    static const struct ppu_topo_nic nics[] = {
        {"mlx5_0", "0000:18:00.0", 0, 0, 0, 50.0, 1},
        {"mlx5_1", "0000:98:00.0", 0, 2, 1, 50.0, 1},
        {"eth0", "", 0, -1, -1, 3.125, 0},
        {"mlx5_0", "0000:18:00.0", 1, 4, 0, 100.0 / 3, 1},
        {"eth\"1&", "", 1, -1, 1, 0, 0},
    };
    t->nnics = (int)(sizeof nics / sizeof nics[0]);
    memcpy(t->nic, nics, sizeof nics);
}

Test(topo_xml, round_trip_hand_built)
{
    struct ppu_topo t;
    build_hand(&t);
    char err[ERRLEN];
    cr_assert_eq(ppu_topo_check_xml(&t, err, sizeof err), PPU_SUCCESS, "%s", err);
    round_trip(&t);
}

Test(topo_xml, round_trip_presets)
{
    static const char *const names[] = {"fullmesh8", "server16", "ring8", "hypercube16"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct ppu_topo t;
        char err[ERRLEN];
        cr_assert_eq(ppu_topo_sim_preset(names[i], 1, &t, err, sizeof err), PPU_SUCCESS, "%s",
                     err);
        round_trip(&t);
    }
}

Test(topo_xml, save_and_load_file)
{
    char dir[] = "/tmp/topo_xml_XXXXXX", path[128], err[ERRLEN];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/hand.xml", dir);
    struct ppu_topo t, back;
    build_hand(&t);
    cr_assert_eq(ppu_topo_save_xml(&t, path, err, sizeof err), PPU_SUCCESS, "%s", err);
    cr_assert_eq(ppu_topo_load_xml(path, &back, err, sizeof err), PPU_SUCCESS, "%s", err);
    assert_same(&t, &back);
    cr_assert_str_eq(back.source, "file");
    unlink(path);

    /* Unreadable files: PPU_SYSTEM_ERROR naming the path and the reason. */
    snprintf(path, sizeof path, "%s/missing.xml", dir);
    cr_assert_eq(ppu_topo_load_xml(path, &back, err, sizeof err), PPU_SYSTEM_ERROR);
    cr_assert(strstr(err, path) && strstr(err, strerror(ENOENT)), "%s", err);
    cr_assert_eq(ppu_topo_load_xml(dir, &back, err, sizeof err), PPU_SYSTEM_ERROR);
    cr_assert(strstr(err, dir) && strstr(err, strerror(EISDIR)), "%s", err);
    rmdir(dir);

    /* A topology the format cannot carry is refused, with a reason. */
    t.link[2][5] = PPU_LINK_UP; /* one direction only */
    cr_assert_eq(ppu_topo_save_xml(&t, "/tmp/never_written.xml", err, sizeof err),
                 PPU_INVALID_ARGUMENT);
    cr_assert(strstr(err, "link 2-5"), "%s", err);
    cr_assert_eq(access("/tmp/never_written.xml", F_OK), -1);
    FILE *f = fopen("/dev/null", "w");
    cr_assert_eq(ppu_topo_dump_xml(&t, f), PPU_INVALID_ARGUMENT);
    fclose(f);
}

/* ---- errors ---------------------------------------------------------- */

/* A document: line 1 the declaration, 2 the root, 3 <server id="0">, then
 * nchips chips (lines 4..3+nchips), </server>, then tail from line
 * 5+nchips, then the root's close tag. */
static char *make_doc(int nchips, const char *root_attrs, const char *tail)
{
    size_t cap = 4096 + strlen(tail);
    char *s = malloc(cap);
    size_t o = 0;
    o += (size_t)snprintf(s + o, cap - o, "<?xml version=\"1.0\"?>\n<ppu_topology%s>\n"
                          "  <server id=\"0\" host=\"h\">\n", root_attrs);
    for (int c = 0; c < nchips; c++)
        o += (size_t)snprintf(s + o, cap - o, "    <chip id=\"%d\"/>\n", c);
    snprintf(s + o, cap - o, "  </server>\n%s</ppu_topology>\n", tail);
    return s;
}

static void expect_error(const char *text, const char *where, const char *elem, const char *what)
{
    struct ppu_topo t;
    char err[ERRLEN] = "";
    ppu_result_t r = parse_str(text, &t, err);
    cr_assert_eq(r, PPU_INVALID_ARGUMENT, "accepted:\n%s", text);
    cr_assert(strncmp(err, "topo.xml:", 9) == 0, "message lacks the file: %s", err);
    cr_assert(strstr(err, where), "message lacks '%s': %s", where, err);
    if (elem)
        cr_assert(strstr(err, elem), "message lacks '%s': %s", elem, err);
    if (what)
        cr_assert(strstr(err, what), "message lacks '%s': %s", what, err);
}

static void expect_tail_error(int nchips, const char *tail, const char *where, const char *elem,
                              const char *what)
{
    char *doc = make_doc(nchips, "", tail);
    expect_error(doc, where, elem, what);
    free(doc);
}

Test(topo_xml, errors_links)
{
    /* 8 chips: the tail starts on line 13. */
    expect_tail_error(8, "  <link a=\"0\" b=\"9\"/>\n", "topo.xml:13:", "<link>",
                      "attribute b=\"9\" names no chip (chips are 0..7)");
    expect_tail_error(2, "  <link a=\"-1\" b=\"1\"/>\n", "topo.xml:7:", "<link>",
                      "a=\"-1\" names no chip");
    expect_tail_error(2, "  <link a=\"1\" b=\"1\"/>\n", "topo.xml:7:", "<link>",
                      "a and b are the same chip");
    expect_tail_error(2, "  <link a=\"0\" b=\"1\" state=\"sideways\"/>\n", "topo.xml:7:",
                      "<link>", "state=\"sideways\" is not up or down");
    expect_tail_error(2, "  <link a=\"0\" b=\"1\"/>\n  <link b=\"0\" a=\"1\"/>\n", "topo.xml:8:",
                      "<link>", "link 1-0 declared twice (first at line 7)");
    expect_tail_error(2, "  <link a=\"0\"/>\n", "topo.xml:7:", "<link>",
                      "attribute b is missing");
    expect_tail_error(2, "  <link a=\"0\" b=\"1\" gpbs=\"5\"/>\n", "topo.xml:7:", "<link>",
                      "unknown attribute gpbs=\"5\"");
    expect_tail_error(2, "  <lnk a=\"0\" b=\"1\"/>\n", "topo.xml:7:", "<lnk>",
                      "unknown element");
    expect_tail_error(2, "  <link a=\"0\" b=\"1\" a=\"1\"/>\n", "topo.xml:7:", "<link>",
                      "duplicate attribute");
    expect_tail_error(3, "  <link a=\"0\" b=\"1\" port_a=\"7\"/>\n", "topo.xml:8:", "<link>",
                      "port_a=\"7\" is out of range (0..6");
    expect_tail_error(3, "  <link a=\"0\" b=\"1\" port_a=\"3\"/>\n  <link a=\"0\" b=\"2\" "
                      "port_a=\"3\"/>\n", "topo.xml:9:", "<link>",
                      "port 3 of chip 0 already carries its link to chip 1");
    expect_tail_error(2, "  <link a=\"0\" b=\"1\" port_b=\"99999999999999999999999\"/>\n",
                      "topo.xml:7:", "<link>", "out of range");
    /* Links may come before the chips they name. */
    static const char early[] =
        "<ppu_topology>\n<link a=\"0\" b=\"1\"/>\n<server id=\"0\">\n<chip id=\"1\"/>\n"
        "<chip id=\"0\"/>\n</server>\n</ppu_topology>\n";
    struct ppu_topo t;
    char err[ERRLEN];
    cr_assert_eq(parse_str(early, &t, err), PPU_SUCCESS, "%s", err);
    cr_assert_eq(t.link[1][0], PPU_LINK_UP);
}

Test(topo_xml, errors_numbers)
{
    static const struct { const char *value, *what; } bad[] = {
        {"fast", "number expected in attribute gbps=\"fast\""},
        {"50x", "number expected in attribute gbps=\"50x\""},
        {"", "number expected in attribute gbps=\"\""},
        {" 50", "number expected"},
        {"+5", "number expected"},
        {"nan", "number expected"},
        {"NaN", "number expected"},
        {"inf", "number expected"},
        {"-inf", "number expected"},
        {"0x10", "number expected"},
        {"1e", "number expected"},
        {"1.2.3", "number expected"},
        {".", "number expected"},
        {"-5", "gbps=\"-5\" is out of range"},
        {"1e999", "gbps=\"1e999\" is out of range"},
        {"2e9", "is out of range"},
    };
    char tail[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(tail, sizeof tail, "  <link a=\"0\" b=\"1\"\n gbps=\"%s\"/>\n", bad[i].value);
        /* The attribute is on line 8. */
        expect_tail_error(2, tail, "topo.xml:8:", "<link>", bad[i].what);
    }
    static const struct { const char *attr, *what; } bad_int[] = {
        {"numa=\"1.5\"", "whole number expected in attribute numa=\"1.5\""},
        {"numa=\"-2\"", "numa=\"-2\" is out of range (-1..4095)"},
        {"numa=\"0x1\"", "whole number expected"},
        {"numa=\"1 \"", "whole number expected"},
        {"numa=\"99999999999999999999\"", "out of range"},
        {"numa=\"-99999999999999999999\"", "out of range"},
        {"id=\"-1\"", "out of range"},
        {"id=\"+0\"", "whole number expected"},
    };
    for (size_t i = 0; i < sizeof bad_int / sizeof bad_int[0]; i++) {
        char doc[512];
        snprintf(doc, sizeof doc, "<ppu_topology>\n<server id=\"0\">\n<chip id=\"0\"/>\n"
                 "<chip id=\"1\" %s/>\n</server>\n</ppu_topology>\n",
                 strncmp(bad_int[i].attr, "id=", 3) ? bad_int[i].attr : "");
        if (!strncmp(bad_int[i].attr, "id=", 3))
            snprintf(doc, sizeof doc, "<ppu_topology>\n<server id=\"0\">\n<chip id=\"0\"/>\n"
                     "<chip %s/>\n</server>\n</ppu_topology>\n", bad_int[i].attr);
        expect_error(doc, "topo.xml:4:", "<chip>", bad_int[i].what);
    }
    expect_error("<ppu_topology ports_per_chip=\"255\"></ppu_topology>", "topo.xml:1:",
                 "<ppu_topology>",
                 "ports_per_chip=\"255\" is out of range (1..254)");
    expect_error("<ppu_topology link_latency_us=\"-0.5\"></ppu_topology>", "topo.xml:1:",
                 "<ppu_topology>",
                 "out of range");
    expect_error("<ppu_topology version=\"2\"/>", "topo.xml:1:", "<ppu_topology>",
                 "version=\"2\" is not supported");
}

Test(topo_xml, errors_chips_and_servers)
{
    expect_error("<ppu_topology>\n<server id=\"0\">\n<chip id=\"2\"/>\n<chip id=\"2\"/>\n"
                 "</server>\n</ppu_topology>\n",
                 "topo.xml:4:", "<chip>", "id 2 declared twice (first at line 3)");
    expect_error("<ppu_topology>\n<server id=\"0\">\n<chip id=\"0\"/>\n<chip id=\"2\"/>\n"
                 "</server>\n</ppu_topology>\n",
                 "topo.xml:6:", "<ppu_topology>", "chip 1 is missing");
    expect_error("<ppu_topology>\n<server id=\"0\">\n<chip id=\"0\"/>\n</server>\n"
                 "<server id=\"2\">\n<chip id=\"1\"/>\n</server>\n</ppu_topology>\n",
                 "topo.xml:8:", "<ppu_topology>", "server 1 is missing");
    expect_error("<ppu_topology>\n<server id=\"0\"/>\n<server id=\"0\"/>\n</ppu_topology>\n",
                 "topo.xml:3:", "<server>", "id 0 declared twice (first at line 2)");
    expect_error("<ppu_topology>\n<server id=\"0\">\n</server>\n</ppu_topology>\n",
                 "topo.xml:4:", "<ppu_topology>", "no chip is declared");
    expect_error("<ppu_topology/>", "topo.xml:1:", "<ppu_topology>", "no chip is declared");
    expect_error("<ppu_topology>\n<server host=\"x\">\n</server></ppu_topology>", "topo.xml:2:",
                 "<server>",
                 "attribute id is missing");
    expect_error("<ppu_topology>\n<chip id=\"0\"/>\n</ppu_topology>\n", "topo.xml:2:", "<chip>",
                 "must be inside <server>");
    expect_error("<ppu_topology>\n<server id=\"0\">\n<server id=\"1\"/>", "topo.xml:3:",
                 "<server>", "must be inside <ppu_topology>, not <server>");
    expect_error("<ppu_topology>\n<server id=\"0\">\n<chip id=\"0\">\n<chip id=\"1\"/>\n",
                 "topo.xml:4:", "<chip>", "<chip> cannot contain elements");
    expect_error("<ppu_topology>\n<server id=\"0\">\n"
                 "<chip id=\"0\" pci=\"0000:00:00.0-way-too-long\"/>\n</server></ppu_topology>",
                 "topo.xml:3:", "<chip>", "longer than 19 characters");
    /* Limits */
    expect_tail_error(1, "<server id=\"1\">\n<chip id=\"64\"/>\n</server>\n", "topo.xml:7:",
                      "<chip>", "at most 64 chips, PPU_TOPO_MAX_CHIPS");
    expect_tail_error(1, "<server id=\"64\">\n</server>\n", "topo.xml:6:", "<server>",
                      "at most 64 servers, PPU_TOPO_MAX_CHIPS");
    /* 65 NICs: the 65th is on line 4 + 65. */
    size_t cap = 65 * 64 + 256, o = 0;
    char *doc = malloc(cap);
    o += (size_t)snprintf(doc + o, cap - o,
                          "<ppu_topology>\n<server id=\"0\">\n<chip id=\"0\"/>\n");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(doc + o, cap - o, "<nic name=\"eth%d\"/>\n", i);
    snprintf(doc + o, cap - o, "</server>\n</ppu_topology>\n");
    expect_error(doc, "topo.xml:68:", "<nic>", "more than 64 NICs (the limit PPU_TOPO_MAX_NICS)");
    free(doc);
    /* 64 chips on 64 servers is fine. */
    cap = 64 * 80 + 256;
    o = 0;
    doc = malloc(cap);
    o += (size_t)snprintf(doc + o, cap - o, "<ppu_topology>\n");
    for (int i = 63; i >= 0; i--)
        o += (size_t)snprintf(doc + o, cap - o, "<server id=\"%d\"><chip id=\"%d\"/></server>\n",
                              i, 63 - i);
    snprintf(doc + o, cap - o, "</ppu_topology>\n");
    struct ppu_topo t;
    char err[ERRLEN];
    cr_assert_eq(parse_str(doc, &t, err), PPU_SUCCESS, "%s", err);
    cr_assert_eq(t.nchips, 64);
    cr_assert_eq(t.nservers, 64);
    cr_assert_eq(t.server[0], 63);
    free(doc);
}

Test(topo_xml, errors_nics)
{
    expect_tail_error(2, "<server id=\"1\">\n<chip id=\"2\"/>\n<nic name=\"m\" chip=\"0\"/>\n"
                      "</server>\n", "topo.xml:9:", "<nic>", "chip 0 is not on server 1");
    expect_tail_error(2, "<server id=\"1\">\n<chip id=\"2\"/>\n<nic name=\"m\" chip=\"3\"/>\n"
                      "</server>\n", "topo.xml:9:", "<nic>",
                      "chip=\"3\" names no chip (chips are 0..2)");
    expect_tail_error(2, "<server id=\"1\">\n<chip id=\"2\"/>\n<nic name=\"m\"/>\n"
                      "<nic name=\"m\"/>\n</server>\n", "topo.xml:10:", "<nic>",
                      "name=\"m\" declared twice on server 1 (first at line 9)");
    expect_tail_error(2, "<server id=\"1\">\n<chip id=\"2\"/>\n<nic chip=\"2\"/>\n</server>\n",
                      "topo.xml:9:", "<nic>", "attribute name is missing");
    expect_tail_error(2, "<server id=\"1\">\n<chip id=\"2\"/>\n<nic name=\"m\" rdma=\"2\"/>\n"
                      "</server>\n", "topo.xml:9:", "<nic>", "rdma=\"2\" is out of range (0..1)");
    expect_tail_error(2, "<server id=\"1\">\n<chip id=\"2\"/>\n<nic name=\"m\" speed=\"2\"/>\n"
                      "</server>\n", "topo.xml:9:", "<nic>",
                      "unknown attribute speed=\"2\" (allowed: name, chip, numa, gbps, rdma, pci)");
    expect_tail_error(2, "<nic name=\"m\"/>\n", "topo.xml:7:", "<nic>", "must be inside <server>");
}

Test(topo_xml, errors_syntax)
{
    expect_error("<ppu_topology>\n  <server id=\"0\">\n    <chip id=\"0\"/>\n",
                 "topo.xml:3:", NULL, "unexpected end of file inside <server> (opened at line 2)");
    expect_error("<ppu_topology>\n  <server id=\"0\">\n    <chip id=\"0\"/>\n\n\n  ",
                 "topo.xml:6:", NULL, "unexpected end of file inside <server>");
    expect_error("<ppu_topology>\n<server id=\"0\">\n<chip id=\"0\"\n", "topo.xml:3:", "<chip>",
                 "unexpected end of file inside the tag");
    /* the value runs on to the next line, where its '<' is refused */
    expect_error("<ppu_topology>\n<server id=\"0\">\n<chip id=\"0/>\n</server>\n",
                 "topo.xml:4:", NULL, "not well-formed");
    expect_error("<ppu_topology>\n<server id=\"0\">\n<chip id=\"0\">\n</server>\n",
                 "topo.xml:4:", "</server>", "does not close <chip> (opened at line 3)");
    expect_error("<ppu_topology>\n<server id=\"0\">\n hello <chip id=\"0\"/>\n",
                 "topo.xml:3:", "<server>", "unexpected text \"hello \"");
    expect_error("<ppu_topology>\n<!-- never\nclosed\n", "topo.xml:2:", NULL,
                 "comment is never closed");
    expect_error("<ppu_topology>\n<server id=0>\n", "topo.xml:2:", "<server>",
                 "not well-formed (invalid token) (column 12)");
    expect_error("<ppu_topology>\n<server id=\"0\"host=\"a\">\n", "topo.xml:2:", "<server>",
                 "not well-formed");
    expect_error("<ppu_topology>\n<server id=\"0\" / >\n", "topo.xml:2:", "<server>",
                 "not well-formed");
    expect_error("<ppu_topology>\n<server id=\"0\" host=\"a<b\"/>\n", "topo.xml:2:",
                 "<server>", "not well-formed (invalid token) (column 23)");
    expect_error("<ppu_topology>\n<server id=\"0\" host=\"a&b\"/>\n", "topo.xml:2:",
                 "<server>", "not well-formed");
    expect_error("<ppu_topology>\n<server id=\"0\" host=\"&nbsp;\"/>\n", "topo.xml:2:",
                 "<server>", "undefined entity");
    expect_error("<ppu_topology>\n<server id=\"0\" host=\"&#0;\"/>\n", "topo.xml:2:",
                 "<server>", "reference to invalid character number");
    expect_error("<ppu_topology>\n<server id=\"0\" host=\"&#xD800;\"/>\n", "topo.xml:2:",
                 "<server>", "reference to invalid character number");
    expect_error("<?xml version=\"1.0\"?>\n<!DOCTYPE x>\n<ppu_topology/>", "topo.xml:2:", NULL,
                 "<!DOCTYPE");
    expect_error("<?php echo 1; ?>\n", "topo.xml:1:", NULL, "processing instructions");
    expect_error("<ppu_topology>\n<?xml version=\"1.0\"?>\n", "topo.xml:2:", "<ppu_topology>",
                 "<?xml ...?> may only come before");
    expect_error("<topology>\n</topology>\n", "topo.xml:1:", "<topology>",
                 "the root element must be <ppu_topology>");
    expect_error("", "topo.xml:1:", NULL, "no <ppu_topology> element");
    expect_error("  \n\n <!-- c -->\n", "topo.xml:3:", NULL, "no <ppu_topology> element");
    expect_error("<ppu_topology>\n<server id=\"0\"><chip id=\"0\"/></server>\n</ppu_topology>\n"
                 "<ppu_topology>\n", "topo.xml:4:", "<ppu_topology>",
                 "nothing but comments may follow");
    expect_error("<ppu_topology>\n<server id=\"0\"><chip id=\"0\"/></server>\n</ppu_topology>\n"
                 "junk\n", "topo.xml:4:", NULL, "nothing but comments may follow");
    expect_error("<ppu_topology>\n</server>\n", "topo.xml:2:", "</server>",
                 "does not close <ppu_topology>");
    expect_error("</ppu_topology>\n", "topo.xml:1:", "</ppu_topology>", "closes no open element");
    expect_error("<ppu_topology name=\"a-name-that-is-longer-than-31-chars\"/>", "topo.xml:1:",
                 "<ppu_topology>", "longer than 31 characters");
    expect_error("<ppu_topology>\n<server id=\"0\" host=\"a\" host=\"b\"/>\n", "topo.xml:2:",
                 "<server>", "duplicate attribute");
    expect_error("<ppu_topology>\n< server id=\"0\"/>\n", "topo.xml:2:", "<ppu_topology>",
                 "not well-formed");
    /* A long value is refused, not truncated. */
    char doc[1024];
    snprintf(doc, sizeof doc, "<ppu_topology name=\"%0300d\">", 0);
    expect_error(doc, "topo.xml:1:", "<ppu_topology>", "longer than 255 bytes");
    /* Unknown attribute lists the allowed ones. */
    expect_error("<ppu_topology>\n<server id=\"0\"><chip id=\"0\" nuna=\"1\"/>\n"
                 "</server></ppu_topology>", "topo.xml:2:",
                 "<chip>", "unknown attribute nuna=\"1\" (allowed: id, numa, pci, host)");
}

/* Hostile inputs: deep nesting, huge values, many attributes, long runs of
 * markup characters, an over-sized file. */
Test(topo_xml, hostile_inputs)
{
    size_t n = 1 << 20;
    char *buf = malloc(n + 64);
    struct ppu_topo t;
    char err[ERRLEN];
    static const char *const units[] = {"<server id=\"0\">", "<", "\"", "<!--", "<?xml",
                                        "<ppu_topology ", "a=\"1\" ", "&#x1F600;", " ", "\n"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t o = (size_t)snprintf(buf, n, "<ppu_topology name=\"");
        if (u < 2 || u == 5)
            o = (size_t)snprintf(buf, n, "<ppu_topology>");
        size_t ul = strlen(units[u]);
        while (o + ul <= n) {
            memcpy(buf + o, units[u], ul);
            o += ul;
        }
        err[0] = '\0';
        cr_assert_eq(parse_exact(buf, o, "big.xml", &t, err), PPU_INVALID_ARGUMENT, "unit %zu", u);
        cr_assert(strncmp(err, "big.xml:", 8) == 0, "%s", err);
    }
    /* An over-sized file is refused before parsing. */
    char path[] = "/tmp/topo_xml_big_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    memset(buf, ' ', n);
    for (size_t w = 0; w <= PPU_TOPO_XML_MAX_BYTES / n; w++)
        cr_assert_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
    cr_assert_eq(ppu_topo_load_xml(path, &t, err, sizeof err), PPU_INVALID_ARGUMENT);
    cr_assert(strstr(err, path) && strstr(err, "larger than"), "%s", err);
    unlink(path);
    free(buf);
}

/* ---- robustness ------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static size_t rnd_below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A parsed topology must be self-consistent, and must write and read back
 * unchanged. */
static void check_consistent(const struct ppu_topo *t)
{
    int n = t->nchips;
    cr_assert(n >= 1 && n <= PPU_TOPO_MAX_CHIPS, "nchips %d", n);
    cr_assert(t->nservers >= 1 && t->nservers <= n, "nservers %d", t->nservers);
    cr_assert(t->ports_per_chip >= 1 && t->ports_per_chip < PPU_TOPO_NO_PORT);
    cr_assert(t->nnics >= 0 && t->nnics <= PPU_TOPO_MAX_NICS);
    for (int a = 0; a < n; a++) {
        cr_assert(t->server[a] >= 0 && t->server[a] < t->nservers);
        cr_assert_eq(t->link[a][a], PPU_LINK_NONE, "self link on %d", a);
        for (int b = 0; b < n; b++) {
            cr_assert_eq(t->link[a][b], t->link[b][a], "asymmetric link %d-%d", a, b);
            cr_assert(t->link[a][b] <= PPU_LINK_DOWN);
            cr_assert_eq(t->gbps[a][b], t->gbps[b][a]);
            cr_assert(isfinite(t->gbps[a][b]) && t->gbps[a][b] >= 0);
            cr_assert(isfinite(t->latency_us[a][b]) && t->latency_us[a][b] >= 0);
            cr_assert(t->port[a][b] == PPU_TOPO_NO_PORT || t->port[a][b] < t->ports_per_chip);
        }
    }
    for (int i = 0; i < t->nnics; i++) {
        cr_assert(t->nic[i].server >= 0 && t->nic[i].server < t->nservers);
        cr_assert(t->nic[i].chip == -1 ||
                  (t->nic[i].chip >= 0 && t->nic[i].chip < n &&
                   t->server[t->nic[i].chip] == t->nic[i].server));
    }
    char err[ERRLEN];
    cr_assert_eq(ppu_topo_check_xml(t, err, sizeof err), PPU_SUCCESS, "%s", err);
    round_trip(t);
}

/* Returns 1 when the parse succeeded. */
static int parse_any(const char *text, size_t len)
{
    struct ppu_topo t;
    char err[ERRLEN];
    err[0] = '\0';
    ppu_result_t r = parse_exact(text, len, "fuzz.xml", &t, err);
    cr_assert(r == PPU_SUCCESS || r == PPU_INVALID_ARGUMENT, "result %d", r);
    if (r == PPU_SUCCESS) {
        check_consistent(&t);
        return 1;
    }
    cr_assert(strncmp(err, "fuzz.xml:", 9) == 0, "bad message '%s'", err);
    cr_assert_gt(strlen(err), strlen("fuzz.xml:1: "), "empty message");
    return 0;
}

static char *server16_dump(size_t *len)
{
    struct ppu_topo t;
    char err[ERRLEN];
    cr_assert_eq(ppu_topo_sim_preset("server16", 1, &t, err, sizeof err), PPU_SUCCESS);
    return dump_to_string(&t, len);
}

Test(topo_xml, fuzz_prefixes, .timeout = 60)
{
    size_t len;
    char *text = server16_dump(&len);
    double t0 = now_s();
    int ok = 0;
    for (size_t k = 0; k <= len; k++)
        ok += parse_any(text, k);
    cr_assert_geq(ok, 1);
    cr_log_info("fuzz_prefixes: %zu prefixes, %d parsed, %.3f s", len + 1, ok, now_s() - t0);
    free(text);
}

static void fuzz(const char *base, size_t base_len, int iterations, uint64_t seed,
                 const char *label)
{
    static const char inserts[] = "<\"=>0123456789/'&- \n";
    size_t cap = base_len * 4 + 1024;
    char *buf = malloc(cap);
    int ok = 0;
    double t0 = now_s();
    rng_state = seed;
    for (int it = 0; it < iterations; it++) {
        memcpy(buf, base, base_len);
        size_t len = base_len;
        int nmut = 1 + (int)rnd_below(4);
        for (int m = 0; m < nmut; m++) {
            size_t at = rnd_below(len + 1), span;
            switch (rnd_below(5)) {
            case 0: /* flip a byte (a random value or one bit) */
                if (len)
                    buf[rnd_below(len)] ^= (char)(rnd() & 1 ? 1u << rnd_below(8) : rnd_below(256));
                break;
            case 1: /* delete a range */
                span = 1 + rnd_below(16);
                if (at + span > len)
                    span = len - at;
                memmove(buf + at, buf + at + span, len - at - span);
                len -= span;
                break;
            case 2: { /* duplicate a range */
                size_t from = rnd_below(len + 1);
                span = 1 + rnd_below(64);
                if (from + span > len)
                    span = len - from;
                if (len + span > cap)
                    break;
                memmove(buf + at + span, buf + at, len - at);
                memmove(buf + at, buf + (from < at ? from : from + span), span);
                len += span;
                break;
            }
            default: /* insert a markup character or a digit */
                if (len + 1 > cap)
                    break;
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = inserts[rnd_below(sizeof inserts - 1)];
                len++;
                break;
            }
        }
        ok += parse_any(buf, len);
    }
    cr_log_info("%s: %d iterations (seed %llu), %d parsed, %d rejected, %.3f s", label,
                iterations, (unsigned long long)seed, ok, iterations - ok, now_s() - t0);
    free(buf);
}

Test(topo_xml, fuzz_random, .timeout = 120)
{
    size_t len;
    char *text = server16_dump(&len);
    fuzz(text, len, 20000, 0x9e3779b97f4a7c15ull, "fuzz_random server16");
    free(text);
}

/* The same on a file with every element and attribute. */
Test(topo_xml, fuzz_random_rich, .timeout = 120)
{
    fuzz(example, strlen(example), 5000, 12345, "fuzz_random example");
}
