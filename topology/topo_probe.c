/* The hardware probe: where a PPU driver would describe its chips. No such
 * driver exists here, so the layout is an assumption, documented in
 * topology/README.md, and tests exercise it with a fake tree:
 *
 *   $PPU_SYSFS_ROOT (default /sys/class/ppu)/ppu<N>/
 *       pci_bus_id   "0000:17:00.0"
 *       numa_node    "0"            (-1 when unknown, as sysfs says)
 *       icn/port<P>/peer_chip   "<M>"   chip on the other end
 *                   peer_port   "<Q>"
 *                   state       "up" | "down"
 *                   gbps        "50"    one direction (optional)
 *                   latency_us  "1.0"   (optional)
 *
 * Chips are numbered by <N>, which must run 0..n-1. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "topo.h"

static int read_str(const char *dir, const char *name, char *buf, size_t len)
{
    char path[2200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return 0;
}

static int read_long(const char *dir, const char *name, long *v)
{
    char buf[64], *end;
    if (read_str(dir, name, buf, sizeof buf) != 0)
        return -1;
    *v = strtol(buf, &end, 10);
    return end != buf && *end == '\0' ? 0 : -2;
}

static int chip_index(const char *name)
{
    char *end;
    if (strncmp(name, "ppu", 3) != 0)
        return -1;
    long v = strtol(name + 3, &end, 10);
    return end != name + 3 && *end == '\0' && v >= 0 && v < 100000 ? (int)v : -1;
}

static ppu_result_t probe_ports(const char *chipdir, int a, struct ppu_topo *t, char *err,
                                size_t errlen)
{
    char icn[1100];
    snprintf(icn, sizeof icn, "%s/icn", chipdir);
    DIR *d = opendir(icn);
    if (!d)
        return PPU_SUCCESS; /* a chip without ICN ports */
    struct dirent *e;
    ppu_result_t r = PPU_SUCCESS;
    while ((e = readdir(d)) && r == PPU_SUCCESS) {
        if (strncmp(e->d_name, "port", 4) != 0)
            continue;
        char pdir[2100], state[16] = "up", num[32];
        snprintf(pdir, sizeof pdir, "%s/%s", icn, e->d_name);
        long peer, pport = PPU_TOPO_NO_PORT, port = strtol(e->d_name + 4, NULL, 10);
        if (read_long(pdir, "peer_chip", &peer) != 0 || peer < 0 || peer >= t->nchips || peer == a) {
            snprintf(err, errlen, "%s/peer_chip is missing or names no other chip (chips 0..%d)",
                     pdir, t->nchips - 1);
            r = PPU_INVALID_ARGUMENT;
            break;
        }
        read_long(pdir, "peer_port", &pport);
        read_str(pdir, "state", state, sizeof state);
        int st = !strcmp(state, "down") ? PPU_LINK_DOWN : PPU_LINK_UP;
        if (t->link[a][peer] == PPU_LINK_NONE)
            ppu_topo_connect(t, a, (int)peer, st);
        else if (st == PPU_LINK_DOWN) /* either end reporting down wins */
            t->link[a][peer] = t->link[peer][a] = PPU_LINK_DOWN;
        t->port[a][peer] = port >= 0 && port < PPU_TOPO_NO_PORT ? (unsigned char)port : PPU_TOPO_NO_PORT;
        if (pport >= 0 && pport < PPU_TOPO_NO_PORT)
            t->port[peer][a] = (unsigned char)pport;
        if (read_str(pdir, "gbps", num, sizeof num) == 0 && atof(num) > 0)
            t->gbps[a][peer] = t->gbps[peer][a] = (float)atof(num);
        if (read_str(pdir, "latency_us", num, sizeof num) == 0 && atof(num) > 0)
            t->latency_us[a][peer] = t->latency_us[peer][a] = (float)atof(num);
    }
    closedir(d);
    return r;
}

ppu_result_t ppu_topo_probe(const char *root, struct ppu_topo *t, char *err, size_t errlen)
{
    DIR *d = opendir(root);
    int n = 0, seen[PPU_TOPO_MAX_CHIPS] = {0};
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            int c = chip_index(e->d_name);
            if (c < 0)
                continue;
            if (c >= PPU_TOPO_MAX_CHIPS) {
                closedir(d);
                snprintf(err, errlen, "%s/%s: more than %d PPU chips", root, e->d_name,
                         PPU_TOPO_MAX_CHIPS);
                return PPU_INVALID_ARGUMENT;
            }
            seen[c] = 1;
            n++;
        }
        closedir(d);
    }
    ppu_topo_init(t, "probe", n);
    snprintf(t->source, sizeof t->source, "probe");
    if (n == 0) {
        PPU_INFO(PPU_SUB_TOPO, "hardware probe: no PPU devices under %s", root);
        return PPU_SUCCESS;
    }
    for (int c = 0; c < n; c++)
        if (!seen[c]) {
            snprintf(err, errlen, "%s: chips must be ppu0..ppu%d but ppu%d is missing", root, n - 1, c);
            return PPU_INVALID_ARGUMENT;
        }
    for (int c = 0; c < n; c++) {
        char dir[512];
        long numa;
        snprintf(dir, sizeof dir, "%s/ppu%d", root, c);
        read_str(dir, "pci_bus_id", t->pci[c], sizeof t->pci[c]);
        t->numa[c] = read_long(dir, "numa_node", &numa) == 0 && numa >= 0 ? (int)numa : -1;
        ppu_result_t r = probe_ports(dir, c, t, err, errlen);
        if (r != PPU_SUCCESS)
            return r;
    }
    PPU_INFO(PPU_SUB_TOPO, "hardware probe: %d PPU chip(s) under %s", n, root);
    return PPU_SUCCESS;
}
