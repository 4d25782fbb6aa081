/* Topology: presets, ring search, links down, the hardware probe, and what
 * a communicator does with them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "discover.h"
#include "ranks.h"
#include "topo.h"
#include "topo_xml.h"

static int count_links(const struct ppu_topo *t, int state)
{
    int n = 0;
    for (int a = 0; a < t->nchips; a++)
        for (int b = a + 1; b < t->nchips; b++)
            n += t->link[a][b] == state;
    return n;
}

static void check_rings(const struct ppu_topo *t, int min_rings)
{
    int rings[PPU_TOPO_MAX_RINGS][PPU_TOPO_MAX_CHIPS];
    int nr = ppu_topo_find_rings(t, PPU_TOPO_MAX_RINGS, rings);
    cr_assert(nr >= min_rings, "%s: %d rings, expected at least %d", t->name, nr, min_rings);
    unsigned char used[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS] = {{0}};
    for (int r = 0; r < nr; r++) {
        int seen[PPU_TOPO_MAX_CHIPS] = {0};
        for (int i = 0; i < t->nchips; i++) {
            int a = rings[r][i], b = rings[r][(i + 1) % t->nchips];
            cr_assert(!seen[a]++, "%s ring %d visits chip %d twice", t->name, r, a);
            cr_assert(ppu_topo_up(t, a, b), "%s ring %d uses %d->%d, not an up link", t->name, r, a, b);
            cr_assert(!used[a][b]++, "%s: directed link %d->%d in two rings", t->name, a, b);
        }
    }
}

Test(topo, presets_counts_diameters_rings)
{
    static const struct { const char *name; int chips, links, diameter, rings; } want[] = {
        /* rings: the bound, each chip's out-degree (all 7 links; ring8: both
         * directions of its one cycle; hypercube16: 4) */
        {"fullmesh8", 8, 28, 1, 7},
        {"server16", 16, 56, 2, 7},
        {"ring8", 8, 8, 4, 2},
        {"hypercube16", 16, 32, 4, 4},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct ppu_topo t;
        char err[256];
        cr_assert_eq(ppu_topo_sim_preset(want[i].name, 1, &t, err, sizeof err), PPU_SUCCESS, "%s", err);
        cr_expect_eq(t.nchips, want[i].chips, "%s chips", want[i].name);
        cr_expect_eq(count_links(&t, PPU_LINK_UP), want[i].links, "%s links", want[i].name);
        cr_expect_eq(ppu_topo_diameter(&t), want[i].diameter, "%s diameter", want[i].name);
        for (int c = 0; c < t.nchips && !strcmp(want[i].name, "server16"); c++) {
            int deg = 0;
            for (int d = 0; d < t.nchips; d++)
                deg += ppu_topo_up(&t, c, d);
            cr_expect_eq(deg, 7, "server16 chip %d has %d links", c, deg);
        }
        check_rings(&t, want[i].rings);
    }
}

Test(topo, links_down_are_avoided)
{
    struct ppu_topo t;
    char err[256];
    cr_assert_eq(ppu_topo_sim_build("fullmesh8", 1, 8, &t, err, sizeof err), PPU_SUCCESS);
    cr_assert_eq(ppu_topo_set_down(&t, "0-3,2-5", err, sizeof err), PPU_SUCCESS, "%s", err);
    cr_expect_eq(count_links(&t, PPU_LINK_DOWN), 2);
    cr_expect_eq(count_links(&t, PPU_LINK_UP), 26);
    check_rings(&t, 6); /* chips 0,2,3,5 keep 6 links; no ring may use a down one */
    cr_expect_eq(ppu_topo_set_down(&t, "0-9", err, sizeof err), PPU_INVALID_ARGUMENT);
    cr_expect(strstr(err, "0-9 is not a link"), "%s", err);
    cr_expect_eq(ppu_topo_set_down(&t, "0:3", err, sizeof err), PPU_INVALID_ARGUMENT);
    cr_expect(strstr(err, "not a list"), "%s", err);
}

Test(topo, disconnected_chips_are_named)
{
    struct ppu_topo t;
    char err[256], who[64];
    cr_assert_eq(ppu_topo_sim_build("ring8", 1, 8, &t, err, sizeof err), PPU_SUCCESS);
    cr_assert_eq(ppu_topo_set_down(&t, "0-1,4-5", err, sizeof err), PPU_SUCCESS);
    ppu_topo_unreachable(&t, who, sizeof who);
    cr_expect_str_eq(who, "1,2,3,4");
    cr_expect_eq(ppu_topo_diameter(&t), -1);
    int rings[PPU_TOPO_MAX_RINGS][PPU_TOPO_MAX_CHIPS];
    cr_expect_eq(ppu_topo_find_rings(&t, 4, rings), 0);
    /* servers' chips interleaved, as a topology file may have them:
     * server 0 = {0,2,4}, server 1 = {1,3,5}; chip 4 is cut off */
    ppu_topo_init(&t, "interleaved", 6);
    t.nservers = 2;
    for (int c = 0; c < 6; c++)
        t.server[c] = c % 2;
    ppu_topo_connect(&t, 0, 2, PPU_LINK_UP);
    ppu_topo_connect(&t, 1, 3, PPU_LINK_UP);
    ppu_topo_connect(&t, 3, 5, PPU_LINK_UP);
    ppu_topo_unreachable(&t, who, sizeof who);
    cr_expect_str_eq(who, "4");
}

Test(topo, servers_groups_rails_paths)
{
    struct ppu_topo t;
    char err[256];
    cr_assert_eq(ppu_topo_sim_build("fullmesh8", 2, 4, &t, err, sizeof err), PPU_SUCCESS);
    cr_expect_eq(t.nchips, 8);
    cr_expect_eq(t.nservers, 2);
    for (int c = 0; c < 8; c++)
        cr_expect_eq(t.server[c], c / 4);
    cr_expect_eq(t.link[1][5], PPU_LINK_NONE, "no ICN link between servers");
    int group[PPU_TOPO_MAX_CHIPS];
    cr_expect_eq(ppu_topo_mesh_groups(&t, group), 2);
    /* chip i of each server takes NIC i of its server */
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 4; i++) {
            struct ppu_topo_nic *n = &t.nic[t.nnics++];
            snprintf(n->name, sizeof n->name, "mlx5_%d", s * 4 + i);
            n->server = s;
            n->chip = -1;
        }
    int rail[PPU_TOPO_MAX_CHIPS];
    ppu_topo_rails(&t, rail);
    for (int c = 0; c < 8; c++)
        cr_expect_eq(rail[c], c, "chip %d rail %d", c, rail[c]);
    int hops[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS], next[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS];
    cr_assert_eq(ppu_topo_sim_build("ring8", 1, 8, &t, err, sizeof err), PPU_SUCCESS);
    ppu_topo_hops(&t, hops, next);
    cr_expect_eq(hops[0][4], 4);
    cr_expect_eq(hops[0][6], 2);
    cr_expect_eq(next[0][6], 7);
    cr_expect_eq(next[0][2], 1);
    int parent[PPU_TOPO_MAX_CHIPS];
    cr_expect_eq(ppu_topo_bfs_tree(&t, 0, parent), 4);
    cr_expect_eq(parent[0], -1);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* A fake driver tree: 4 chips, fully connected, link 1-2 reported down by
 * one end, chip 3 on NUMA node 1. */
Test(topo, hardware_probe_reads_the_documented_layout)
{
    char root[128];
    snprintf(root, sizeof root, "/tmp/ppu_sysfs_%d", (int)getpid());
    mkdir(root, 0700);
    for (int c = 0; c < 4; c++) {
        char dir[256], buf[32];
        snprintf(dir, sizeof dir, "%s/ppu%d", root, c);
        mkdir(dir, 0700);
        snprintf(buf, sizeof buf, "0000:%02x:00.0\n", 0x17 + c);
        write_file(dir, "pci_bus_id", buf);
        write_file(dir, "numa_node", c == 3 ? "1\n" : "0\n");
        strcat(dir, "/icn");
        mkdir(dir, 0700);
        int port = 0;
        for (int d = 0; d < 4; d++) {
            if (d == c)
                continue;
            char pdir[300];
            snprintf(pdir, sizeof pdir, "%s/port%d", dir, port++);
            mkdir(pdir, 0700);
            snprintf(buf, sizeof buf, "%d\n", d);
            write_file(pdir, "peer_chip", buf);
            write_file(pdir, "state", c == 1 && d == 2 ? "down\n" : "up\n");
            write_file(pdir, "gbps", "100\n");
        }
    }
    struct ppu_topo t;
    char err[256];
    cr_assert_eq(ppu_topo_probe(root, &t, err, sizeof err), PPU_SUCCESS, "%s", err);
    cr_expect_eq(t.nchips, 4);
    cr_expect_str_eq(t.source, "probe");
    cr_expect_eq(count_links(&t, PPU_LINK_UP), 5);
    cr_expect_eq(t.link[2][1], PPU_LINK_DOWN);
    cr_expect_eq(t.numa[3], 1);
    cr_expect_str_eq(t.pci[2], "0000:19:00.0");
    cr_expect_eq(t.gbps[0][3], 100.0f);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    cr_assert_eq(system(cmd), 0);
    /* no tree at all: no devices, cleanly */
    cr_assert_eq(ppu_topo_probe(root, &t, err, sizeof err), PPU_SUCCESS);
    cr_expect_eq(t.nchips, 0);
}

#define COUNT (1 << 20)

static int sum_check(ppu_comm_t comm, int rank, int n, void *arg)
{
    int *v = malloc(COUNT * sizeof *v);
    for (int i = 0; i < COUNT; i++)
        v[i] = rank + i % 3;
    int bad = ppu_allreduce(v, v, COUNT, PPU_INT32, PPU_SUM, comm, NULL) != PPU_SUCCESS;
    for (int i = 0; i < COUNT && !bad; i++)
        bad = v[i] != n * (n - 1) / 2 + n * (i % 3);
    free(v);
    return bad;
}

/* 8 ranks on fullmesh8 with 0-3 and 2-5 down: correct, and the per-link
 * counters show no byte on a down link. */
Test(topo, allreduce_with_links_down, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    char pat[64];
    snprintf(pat, sizeof pat, "/tmp/ppu_down_%d.%%r", (int)getpid());
    setenv("PPU_SIM_STATS_FILE", pat, 1);
    setenv("PPU_SIM_TOPO", "fullmesh8", 1);
    setenv("PPU_SIM_LINKS_DOWN", "0-3,2-5", 1);
    setenv("PPU_NCHANNELS", "4", 1);
    cr_assert_eq(run_ranks(8, sum_check, NULL, 100), 0);
    int links = 0;
    for (int r = 0; r < 8; r++) {
        char path[80];
        snprintf(path, sizeof path, "/tmp/ppu_down_%d.%d", (int)getpid(), r);
        FILE *f = fopen(path, "r");
        cr_assert(f);
        int src, dst;
        unsigned long long bytes, msgs;
        while (fscanf(f, "%d %d %llu %llu %*s", &src, &dst, &bytes, &msgs) == 4) {
            int down = (src == 0 && dst == 3) || (src == 3 && dst == 0) || (src == 2 && dst == 5) ||
                       (src == 5 && dst == 2);
            cr_expect(!down || bytes == 0, "down link %d->%d carried %llu bytes", src, dst, bytes);
            links++;
        }
        fclose(f);
        unlink(path);
    }
    cr_expect_eq(links, 8 * 4, "4 channels x 8 ranks send links");
}

Test(topo, init_names_disconnected_chips, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_SIM_TOPO", "ring8", 1);
    setenv("PPU_SIM_LINKS_DOWN", "0-1,4-5", 1);
    cr_assert_eq(ranks_expect_init_error(8, "chips 1,2,3,4 cannot reach chip 0"), 0);
}

/* Several servers are supported (the network transport: test_net.c);
 * PPU_SIM_SERVERS must split the ranks evenly. */
Test(topo, init_refuses_uneven_sim_servers, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_SIM_SERVERS", "3", 1);
    cr_assert_eq(ranks_expect_init_error(4, "PPU_SIM_SERVERS=3 must divide"), 0);
}

/* 4 ranks on a topology file with link 0-2 down; rank 0 dumps what it
 * discovered, and the dump loads back to the same links. */
Test(topo, communicator_on_a_topology_file, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    struct ppu_topo t, back;
    char err[256], in[64], out[64];
    snprintf(in, sizeof in, "/tmp/ppu_topo_in_%d.xml", (int)getpid());
    snprintf(out, sizeof out, "/tmp/ppu_topo_out_%d.xml", (int)getpid());
    cr_assert_eq(ppu_topo_sim_build("fullmesh8", 1, 4, &t, err, sizeof err), PPU_SUCCESS);
    cr_assert_eq(ppu_topo_set_down(&t, "0-2", err, sizeof err), PPU_SUCCESS);
    cr_assert_eq(ppu_topo_save_xml(&t, in, err, sizeof err), PPU_SUCCESS, "%s", err);
    setenv("PPU_TOPO_FILE", in, 1);
    setenv("PPU_TOPO_DUMP_FILE", out, 1);
    cr_assert_eq(run_ranks(4, sum_check, NULL, 50), 0);
    cr_assert_eq(ppu_topo_load_xml(out, &back, err, sizeof err), PPU_SUCCESS, "%s", err);
    cr_expect_eq(back.nchips, 4);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            cr_expect_eq(back.link[a][b], t.link[a][b], "link %d-%d", a, b);
    cr_expect_eq(back.link[0][2], PPU_LINK_DOWN);
    unlink(in);
    unlink(out);
}
