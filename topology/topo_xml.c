/* Topology files: parse and write a struct ppu_topo as a small XML document.
 *
 * The format (see also TOPOLOGY_FILE.md):
 *
 *   <?xml version="1.0"?>
 *   <!-- comments are allowed anywhere between elements -->
 *   <ppu_topology version="1" name="two_servers" ports_per_chip="7"
 *                 link_gbps="50" link_latency_us="1.0">
 *     <server id="0" host="node01">
 *       <chip id="0" numa="0" pci="0000:17:00.0"/>
 *       <chip id="1" numa="0"/>
 *       <nic name="mlx5_0" chip="0" numa="0" gbps="50" rdma="1" pci="0000:18:00.0"/>
 *     </server>
 *     <server id="1" host="node02">
 *       <chip id="2" numa="1"/>
 *       <chip id="3" numa="1" host="node02-alias"/>
 *     </server>
 *     <link a="0" b="1" port_a="0" port_b="0" gbps="50" latency_us="1.0" state="up"/>
 *     <link a="2" b="3" state="down"/>
 *   </ppu_topology>
 *
 * <ppu_topology> is the one root element. Attributes, all optional:
 *   version (must be 1), name (default: the file's base name without its
 *   extension), ports_per_chip (1..254, default 7), link_gbps and
 *   link_latency_us (defaults for links, 0..1e9, default 50 and 1.0).
 * <server> inside the root: id (required; servers must be 0..S-1, any
 *   order, each once), host (copied to every chip of the server).
 * <chip> inside a server: id (required, global; chips must be 0..N-1, any
 *   order, each once, N <= PPU_TOPO_MAX_CHIPS), numa (-1..4095, default -1),
 *   pci (<= 19 characters, default ""), host (overrides the server's).
 * <nic> inside a server: name (required, <= 31 characters, unique on the
 *   server), chip (the rail chip, on the same server; -1 or absent: none),
 *   numa (default -1), gbps (default 0 = unknown), rdma (0 or 1, default 0),
 *   pci. At most PPU_TOPO_MAX_NICS.
 * <link> inside the root: a, b (required, distinct chips), port_a, port_b
 *   (0..ports_per_chip-1, a port carries one link; default none), gbps and
 *   latency_us (default: the root's link_gbps, link_latency_us), state (up
 *   or down, default up). A link sets both directions; each pair at most
 *   once. Links and NICs may name chips declared later in the file.
 *
 * Syntax: XML 1.0 as Debian's libexpat reads it (elements, attributes in
 * single or double quotes, self-closing or explicitly closed tags, an
 * <?xml ...?> declaration first, comments, white space, the five
 * predefined entities and character references), less what this format
 * refuses: DOCTYPE (and so entity declarations), CDATA, processing
 * instructions, text content, unknown elements or attributes, names over
 * 32 characters, values over 255 bytes, more than 16 attributes.
 *
 * Every error is PPU_INVALID_ARGUMENT with a sentence
 * "file:line: <element>: what is wrong" (expat's own sentence, with its
 * column, for what is not well-formed XML). The reader makes two passes
 * over the text (the first checks the syntax and collects the chip ids, the
 * second fills the topology in document order) and reads nothing past len. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "topo_xml.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <expat.h>

#include "util/log.h"

#define XML_NAME_MAX 32   /* element and attribute names */
#define XML_VALUE_MAX 255 /* an attribute value, decoded */
#define XML_MAX_ATTRS 16  /* per element */
#define XML_MAX_DEPTH 4   /* root > server > chip, one spare */
#define TOPO_NUMA_MAX 4095
#define TOPO_VALUE_MAX 1e9 /* largest gbps or latency */
#define TOPO_PORTS_MAX (PPU_TOPO_NO_PORT - 1)

/* ---- numbers in the C locale ---------------------------------------- */

/* strtod and printf follow LC_NUMERIC; the file format always uses '.'. */
struct c_numeric {
    locale_t loc, old;
};

static void c_numeric_enter(struct c_numeric *c)
{
    c->loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    c->old = c->loc ? uselocale(c->loc) : (locale_t)0;
}

static void c_numeric_leave(struct c_numeric *c)
{
    if (c->loc) {
        uselocale(c->old);
        freelocale(c->loc);
    }
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* An optional '-' and decimal digits, nothing else. 1: ok, 0: not a
 * number, -1: too large for long long. */
static int scan_int(const char *v, long long *out)
{
    size_t i = 0;
    int neg = 0, overflow = 0;
    unsigned long long x = 0;
    if (v[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (!is_digit(v[i]))
        return 0;
    for (; is_digit(v[i]); i++) {
        if (x > ((unsigned long long)LLONG_MAX - 9) / 10)
            overflow = 1;
        else
            x = x * 10 + (unsigned long long)(v[i] - '0');
    }
    if (v[i] != '\0')
        return 0;
    if (overflow)
        return -1;
    *out = neg ? -(long long)x : (long long)x;
    return 1;
}

/* [-]digits[.digits][e[+-]digits] (or [-].digits...), finite. 1: ok, 0: not
 * a number, -1: out of double range. Call inside c_numeric_enter. */
static int scan_double(const char *v, double *out)
{
    size_t i = 0;
    int nd = 0;
    if (v[i] == '-')
        i++;
    while (is_digit(v[i]))
        i++, nd++;
    if (v[i] == '.') {
        i++;
        while (is_digit(v[i]))
            i++, nd++;
    }
    if (nd == 0)
        return 0;
    if (v[i] == 'e' || v[i] == 'E') {
        int ne = 0;
        i++;
        if (v[i] == '+' || v[i] == '-')
            i++;
        while (is_digit(v[i]))
            i++, ne++;
        if (ne == 0)
            return 0;
    }
    if (v[i] != '\0')
        return 0;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (*end != '\0')
        return 0;
    if (!isfinite(d))
        return -1;
    *out = d;
    return 1;
}

/* Shortest %g text that reads back as exactly v (as a double / a float). */
static void fmt_double(char *buf, size_t n, double v)
{
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void fmt_float(char *buf, size_t n, float v)
{
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, n, "%.*g", p, (double)v);
        if ((float)strtod(buf, NULL) == v)
            return;
    }
}

/* ---- the reader: expat ------------------------------------------------
 * Debian's libexpat (fuzzed continuously upstream) tokenizes: names,
 * quoting, entities and character references, UTF-8, line numbers. What is
 * left here is what the format allows of XML (no DOCTYPE, CDATA,
 * processing instructions or text) and its limits (name and value
 * lengths, attributes per element), checked in expat's callbacks. */

struct xattr {
    char name[XML_NAME_MAX + 1];
    char value[XML_VALUE_MAX + 1];
    size_t line;
    int used;
};

struct xevent {
    char name[XML_NAME_MAX + 1];
    size_t line;
    int nattrs;
    struct xattr attr[XML_MAX_ATTRS];
};

struct xreader {
    const char *s;
    size_t len;
    const char *file;
    char *err;
    size_t errlen;
};

/* Printable copy of v for a message: at most ~40 characters, odd bytes as
 * '?'. */
static const char *show(const char *v, char *buf, size_t n)
{
    size_t o = 0, i = 0;
    for (; v[i] && o + 4 < n && i < 40; i++) {
        unsigned char c = (unsigned char)v[i];
        buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (v[i] && o + 3 < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* elem: the element the message is about, without brackets ("chip",
 * "/server"), or NULL. */
static ppu_result_t xfail(struct xreader *r, size_t line, const char *elem, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ppu_result_t xfail(struct xreader *r, size_t line, const char *elem, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->err && r->errlen) {
        if (elem)
            snprintf(r->err, r->errlen, "%s:%zu: <%s>: %s", r->file, line, elem, msg);
        else
            snprintf(r->err, r->errlen, "%s:%zu: %s", r->file, line, msg);
    }
    return PPU_INVALID_ARGUMENT;
}

/* ---- the topology ---------------------------------------------------- */

enum { E_ROOT, E_SERVER, E_CHIP, E_NIC, E_LINK, E_COUNT };
static const char *const elem_names[E_COUNT] = {"ppu_topology", "server", "chip", "nic", "link"};

struct parser {
    struct xreader r;
    struct xevent ev;
    int pass; /* 1: syntax and chip ids; 2: everything */
    /* the document as read so far (expat's callbacks) */
    XML_Parser xp;
    ppu_result_t res; /* the first error a callback found */
    int stack[XML_MAX_DEPTH];
    size_t stack_line[XML_MAX_DEPTH];
    int depth, root_done, root_seen;
    struct ppu_topo t;
    /* pass 1 */
    unsigned char known[PPU_TOPO_MAX_CHIPS]; /* chip id declared somewhere */
    int known_server[PPU_TOPO_MAX_CHIPS];    /* its server id, -1 unreadable */
    int nknown;
    int server1; /* current server id in pass 1, -1 unreadable */
    /* pass 2 */
    size_t chip_line[PPU_TOPO_MAX_CHIPS]; /* 0: not declared */
    size_t server_line[PPU_TOPO_MAX_CHIPS];
    size_t nic_line[PPU_TOPO_MAX_NICS];
    size_t link_line[PPU_TOPO_MAX_CHIPS][PPU_TOPO_MAX_CHIPS]; /* [min][max] */
    unsigned char port_peer[PPU_TOPO_MAX_CHIPS][PPU_TOPO_NO_PORT]; /* peer chip + 1 */
    int nchips, nservers;
    int server; /* current server id */
    char host[32];
    int name_given;
};

static int kind_of(const char *name)
{
    for (int k = 0; k < E_COUNT; k++)
        if (strcmp(name, elem_names[k]) == 0)
            return k;
    return -1;
}

/* Mark the allowed attributes used; any other is an error. allowed is a
 * NULL-terminated list. */
static ppu_result_t check_attrs(struct parser *p, const char *const *allowed)
{
    struct xevent *ev = &p->ev;
    for (int i = 0; i < ev->nattrs; i++) {
        int ok = 0;
        for (int k = 0; allowed[k]; k++)
            ok |= strcmp(ev->attr[i].name, allowed[k]) == 0;
        if (!ok) {
            char list[160] = "", b[48];
            size_t o = 0;
            for (int k = 0; allowed[k] && o < sizeof list; k++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", k ? ", " : "",
                                      allowed[k]);
            return xfail(&p->r, ev->attr[i].line, ev->name,
                         "unknown attribute %s=\"%s\" (allowed: %s)", ev->attr[i].name,
                         show(ev->attr[i].value, b, sizeof b), list);
        }
    }
    return PPU_SUCCESS;
}

static struct xattr *find_attr(struct xevent *ev, const char *name)
{
    for (int i = 0; i < ev->nattrs; i++)
        if (strcmp(ev->attr[i].name, name) == 0)
            return &ev->attr[i];
    return NULL;
}

static ppu_result_t need_attr(struct parser *p, const char *name, struct xattr **a)
{
    *a = find_attr(&p->ev, name);
    if (!*a)
        return xfail(&p->r, p->ev.line, p->ev.name, "attribute %s is missing", name);
    return PPU_SUCCESS;
}

/* Scan a whole number; fails with a message when the value is not one.
 * *s is scan_int's verdict (< 0: out of the long long range). */
static ppu_result_t scan_whole(struct parser *p, const struct xattr *a, long long *v, int *s)
{
    char b[48];
    *v = 0;
    *s = scan_int(a->value, v);
    if (*s == 0)
        return xfail(&p->r, a->line, p->ev.name, "whole number expected in attribute %s=\"%s\"",
                     a->name, show(a->value, b, sizeof b));
    return PPU_SUCCESS;
}

/* Integer in lo..hi. range: how to describe the range in a message, or
 * NULL for "lo..hi". */
static ppu_result_t get_int(struct parser *p, const struct xattr *a, long long lo, long long hi,
                            const char *range, int *out)
{
    char b[48], rb[64];
    long long v;
    int s;
    ppu_result_t r = scan_whole(p, a, &v, &s);
    if (r != PPU_SUCCESS)
        return r;
    if (s < 0 || v < lo || v > hi) {
        if (!range) {
            snprintf(rb, sizeof rb, "%lld..%lld", lo, hi);
            range = rb;
        }
        return xfail(&p->r, a->line, p->ev.name, "attribute %s=\"%s\" is out of range (%s)",
                     a->name, show(a->value, b, sizeof b), range);
    }
    *out = (int)v;
    return PPU_SUCCESS;
}

static ppu_result_t get_double(struct parser *p, const struct xattr *a, double lo, double hi,
                               double *out)
{
    char b[48];
    double v = 0;
    int s = scan_double(a->value, &v);
    if (s == 0)
        return xfail(&p->r, a->line, p->ev.name, "number expected in attribute %s=\"%s\"",
                     a->name, show(a->value, b, sizeof b));
    if (s < 0 || !(v >= lo && v <= hi))
        return xfail(&p->r, a->line, p->ev.name, "attribute %s=\"%s\" is out of range (%g..%g)",
                     a->name, show(a->value, b, sizeof b), lo, hi);
    *out = v;
    return PPU_SUCCESS;
}

static ppu_result_t get_string(struct parser *p, const struct xattr *a, char *dst, size_t size)
{
    char b[48];
    if (strlen(a->value) >= size)
        return xfail(&p->r, a->line, p->ev.name,
                     "attribute %s=\"%s\" is longer than %zu characters", a->name,
                     show(a->value, b, sizeof b), size - 1);
    memcpy(dst, a->value, strlen(a->value) + 1);
    return PPU_SUCCESS;
}

/* A chip reference (link end, NIC rail) against the ids of pass 1. */
static ppu_result_t get_chip_ref(struct parser *p, const struct xattr *a, int *out)
{
    char b[48], rb[48];
    long long v;
    int s;
    ppu_result_t r = scan_whole(p, a, &v, &s);
    if (r != PPU_SUCCESS)
        return r;
    if (s < 0 || v < 0 || v >= PPU_TOPO_MAX_CHIPS || !p->known[v]) {
        if (p->nknown > 1)
            snprintf(rb, sizeof rb, "chips are 0..%d", p->nknown - 1);
        else if (p->nknown == 1)
            snprintf(rb, sizeof rb, "the only chip is 0");
        else
            snprintf(rb, sizeof rb, "no chip is declared");
        return xfail(&p->r, a->line, p->ev.name, "attribute %s=\"%s\" names no chip (%s)",
                     a->name, show(a->value, b, sizeof b), rb);
    }
    *out = (int)v;
    return PPU_SUCCESS;
}

#define TRY(x)                                  \
    do {                                        \
        ppu_result_t res_ = (x);                \
        if (res_ != PPU_SUCCESS)                \
            return res_;                        \
    } while (0)

static ppu_result_t on_root(struct parser *p)
{
    static const char *const allowed[] = {"version", "name", "ports_per_chip", "link_gbps",
                                          "link_latency_us", NULL};
    struct ppu_topo *t = &p->t;
    struct xattr *a;
    char b[48];
    TRY(check_attrs(p, allowed));
    if ((a = find_attr(&p->ev, "version")) && strcmp(a->value, "1") != 0)
        return xfail(&p->r, a->line, p->ev.name,
                     "version=\"%s\" is not supported (this library reads version 1)",
                     show(a->value, b, sizeof b));
    if ((a = find_attr(&p->ev, "name"))) {
        TRY(get_string(p, a, t->name, sizeof t->name));
        p->name_given = 1;
    }
    if ((a = find_attr(&p->ev, "ports_per_chip")))
        TRY(get_int(p, a, 1, TOPO_PORTS_MAX, NULL, &t->ports_per_chip));
    if ((a = find_attr(&p->ev, "link_gbps")))
        TRY(get_double(p, a, 0, TOPO_VALUE_MAX, &t->link_gbps));
    if ((a = find_attr(&p->ev, "link_latency_us")))
        TRY(get_double(p, a, 0, TOPO_VALUE_MAX, &t->link_latency_us));
    return PPU_SUCCESS;
}

/* The element's id attribute: in range, and declared once (lines[id]
 * remembers where); counts the declaration. what: "chips" or "servers". */
static ppu_result_t declare_id(struct parser *p, const char *what, size_t *lines, int *count,
                               int *id)
{
    struct xattr *a;
    char range[96];
    snprintf(range, sizeof range, "ids 0..%d: at most %d %s, PPU_TOPO_MAX_CHIPS",
             PPU_TOPO_MAX_CHIPS - 1, PPU_TOPO_MAX_CHIPS, what);
    TRY(need_attr(p, "id", &a));
    TRY(get_int(p, a, 0, PPU_TOPO_MAX_CHIPS - 1, range, id));
    if (lines[*id])
        return xfail(&p->r, a->line, p->ev.name, "id %d declared twice (first at line %zu)", *id,
                     lines[*id]);
    lines[*id] = p->ev.line;
    (*count)++;
    return PPU_SUCCESS;
}

static ppu_result_t on_server(struct parser *p)
{
    static const char *const allowed[] = {"id", "host", NULL};
    struct xattr *a;
    int id;
    TRY(check_attrs(p, allowed));
    TRY(declare_id(p, "servers", p->server_line, &p->nservers, &id));
    p->server = id;
    p->host[0] = '\0';
    if ((a = find_attr(&p->ev, "host")))
        TRY(get_string(p, a, p->host, sizeof p->host));
    return PPU_SUCCESS;
}

static ppu_result_t on_chip(struct parser *p)
{
    static const char *const allowed[] = {"id", "numa", "pci", "host", NULL};
    struct ppu_topo *t = &p->t;
    struct xattr *a;
    int id;
    TRY(check_attrs(p, allowed));
    TRY(declare_id(p, "chips", p->chip_line, &p->nchips, &id));
    t->server[id] = p->server;
    snprintf(t->host[id], sizeof t->host[id], "%s", p->host);
    if ((a = find_attr(&p->ev, "numa")))
        TRY(get_int(p, a, -1, TOPO_NUMA_MAX, NULL, &t->numa[id]));
    if ((a = find_attr(&p->ev, "pci")))
        TRY(get_string(p, a, t->pci[id], sizeof t->pci[id]));
    if ((a = find_attr(&p->ev, "host")))
        TRY(get_string(p, a, t->host[id], sizeof t->host[id]));
    return PPU_SUCCESS;
}

static ppu_result_t on_nic(struct parser *p)
{
    static const char *const allowed[] = {"name", "chip", "numa", "gbps", "rdma", "pci", NULL};
    struct ppu_topo *t = &p->t;
    struct xattr *a;
    char b[48];
    TRY(check_attrs(p, allowed));
    if (t->nnics == PPU_TOPO_MAX_NICS)
        return xfail(&p->r, p->ev.line, p->ev.name, "more than %d NICs (the limit "
                     "PPU_TOPO_MAX_NICS)", PPU_TOPO_MAX_NICS);
    struct ppu_topo_nic *nic = &t->nic[t->nnics];
    memset(nic, 0, sizeof *nic);
    nic->server = p->server;
    nic->chip = -1;
    nic->numa = -1;
    TRY(need_attr(p, "name", &a));
    TRY(get_string(p, a, nic->name, sizeof nic->name));
    if (!nic->name[0])
        return xfail(&p->r, a->line, p->ev.name, "name=\"\" is empty");
    for (int i = 0; i < t->nnics; i++)
        if (t->nic[i].server == nic->server && strcmp(t->nic[i].name, nic->name) == 0)
            return xfail(&p->r, a->line, p->ev.name,
                         "name=\"%s\" declared twice on server %d (first at line %zu)",
                         show(nic->name, b, sizeof b), nic->server, p->nic_line[i]);
    if ((a = find_attr(&p->ev, "chip")) && strcmp(a->value, "-1") != 0) {
        TRY(get_chip_ref(p, a, &nic->chip));
        if (p->known_server[nic->chip] != nic->server)
            return xfail(&p->r, a->line, p->ev.name, "chip %d is not on server %d", nic->chip,
                         nic->server);
    }
    if ((a = find_attr(&p->ev, "numa")))
        TRY(get_int(p, a, -1, TOPO_NUMA_MAX, NULL, &nic->numa));
    if ((a = find_attr(&p->ev, "gbps")))
        TRY(get_double(p, a, 0, TOPO_VALUE_MAX, &nic->gbps));
    if ((a = find_attr(&p->ev, "rdma")))
        TRY(get_int(p, a, 0, 1, NULL, &nic->rdma));
    if ((a = find_attr(&p->ev, "pci")))
        TRY(get_string(p, a, nic->pci, sizeof nic->pci));
    p->nic_line[t->nnics++] = p->ev.line;
    return PPU_SUCCESS;
}

static ppu_result_t get_port(struct parser *p, const char *attr, int chip, int peer, int *port)
{
    struct xattr *a = find_attr(&p->ev, attr);
    char range[64];
    *port = PPU_TOPO_NO_PORT;
    if (!a)
        return PPU_SUCCESS;
    snprintf(range, sizeof range, "0..%d, as ports_per_chip is %d", p->t.ports_per_chip - 1,
             p->t.ports_per_chip);
    TRY(get_int(p, a, 0, p->t.ports_per_chip - 1, range, port));
    int other = p->port_peer[chip][*port];
    if (other && other - 1 != peer)
        return xfail(&p->r, a->line, p->ev.name,
                     "port %d of chip %d already carries its link to chip %d", *port, chip,
                     other - 1);
    return PPU_SUCCESS;
}

static ppu_result_t on_link(struct parser *p)
{
    static const char *const allowed[] = {"a", "b", "port_a", "port_b", "gbps", "latency_us",
                                          "state", NULL};
    struct ppu_topo *t = &p->t;
    struct xattr *aa, *ab, *a;
    int ca, cb, pa, pb, state = PPU_LINK_UP;
    double gbps = t->link_gbps, lat = t->link_latency_us;
    char b[48];
    TRY(check_attrs(p, allowed));
    TRY(need_attr(p, "a", &aa));
    TRY(need_attr(p, "b", &ab));
    TRY(get_chip_ref(p, aa, &ca));
    TRY(get_chip_ref(p, ab, &cb));
    if (ca == cb)
        return xfail(&p->r, ab->line, p->ev.name, "a and b are the same chip (%d)", ca);
    size_t *first = &p->link_line[ca < cb ? ca : cb][ca < cb ? cb : ca];
    if (*first)
        return xfail(&p->r, p->ev.line, p->ev.name,
                     "link %d-%d declared twice (first at line %zu)", ca, cb, *first);
    if ((a = find_attr(&p->ev, "state"))) {
        if (strcmp(a->value, "up") == 0)
            state = PPU_LINK_UP;
        else if (strcmp(a->value, "down") == 0)
            state = PPU_LINK_DOWN;
        else
            return xfail(&p->r, a->line, p->ev.name, "state=\"%s\" is not up or down",
                         show(a->value, b, sizeof b));
    }
    TRY(get_port(p, "port_a", ca, cb, &pa));
    TRY(get_port(p, "port_b", cb, ca, &pb));
    if ((a = find_attr(&p->ev, "gbps")))
        TRY(get_double(p, a, 0, TOPO_VALUE_MAX, &gbps));
    if ((a = find_attr(&p->ev, "latency_us")))
        TRY(get_double(p, a, 0, TOPO_VALUE_MAX, &lat));
    *first = p->ev.line;
    if (pa != PPU_TOPO_NO_PORT)
        p->port_peer[ca][pa] = (unsigned char)(cb + 1);
    if (pb != PPU_TOPO_NO_PORT)
        p->port_peer[cb][pb] = (unsigned char)(ca + 1);
    t->link[ca][cb] = t->link[cb][ca] = (unsigned char)state;
    t->gbps[ca][cb] = t->gbps[cb][ca] = (float)gbps;
    t->latency_us[ca][cb] = t->latency_us[cb][ca] = (float)lat;
    t->port[ca][cb] = (unsigned char)pa;
    t->port[cb][ca] = (unsigned char)pb;
    return PPU_SUCCESS;
}

/* Pass 1 notes server and chip ids (quietly: pass 2 reports bad ones). */
static void note_ids(struct parser *p, int kind)
{
    struct xattr *a = find_attr(&p->ev, "id");
    long long v = -1;
    int ok = a && scan_int(a->value, &v) == 1 && v >= 0 && v < PPU_TOPO_MAX_CHIPS;
    if (kind == E_SERVER)
        p->server1 = ok ? (int)v : -1;
    else if (kind == E_CHIP && ok && !p->known[v]) {
        p->known[v] = 1;
        p->known_server[v] = p->server1;
        p->nknown++;
    }
}

static ppu_result_t on_root_end(struct parser *p, size_t line)
{
    struct ppu_topo *t = &p->t;
    if (p->nchips == 0)
        return xfail(&p->r, line, elem_names[E_ROOT],
                     "no chip is declared (chips are <chip> elements inside a <server>)");
    for (int i = 0; i < p->nchips; i++)
        if (!p->chip_line[i])
            return xfail(&p->r, line, elem_names[E_ROOT],
                         "chip ids must be 0..%d (%d chips, any order), but chip %d is missing",
                         p->nchips - 1, p->nchips, i);
    for (int i = 0; i < p->nservers; i++)
        if (!p->server_line[i])
            return xfail(&p->r, line, elem_names[E_ROOT],
                         "server ids must be 0..%d (%d servers, any order), but server %d is "
                         "missing", p->nservers - 1, p->nservers, i);
    t->nchips = p->nchips;
    t->nservers = p->nservers;
    return PPU_SUCCESS;
}

static ppu_result_t on_start(struct parser *p, int kind)
{
    if (p->pass == 1) {
        note_ids(p, kind);
        return PPU_SUCCESS;
    }
    switch (kind) {
    case E_ROOT: return on_root(p);
    case E_SERVER: return on_server(p);
    case E_CHIP: return on_chip(p);
    case E_NIC: return on_nic(p);
    default: return on_link(p);
    }
}

/* A callback's error: kept, and expat stops. */
static void stop(struct parser *p, ppu_result_t r)
{
    if (r == PPU_SUCCESS || p->res != PPU_SUCCESS)
        return;
    p->res = r;
    XML_StopParser(p->xp, XML_FALSE);
}

static size_t xline(const struct parser *p)
{
    return (size_t)XML_GetCurrentLineNumber(p->xp);
}

static const char *open_elem(const struct parser *p)
{
    return p->depth ? elem_names[p->stack[p->depth - 1]] : NULL;
}

/* The line of the text at byte off (1-based). */
static size_t line_at(const struct parser *p, size_t off)
{
    size_t line = 1;
    for (size_t i = 0; i < off && i < p->r.len; i++)
        line += p->r.s[i] == '\n';
    return line;
}

/* The line of attribute name in the start tag at byte tag (expat gives
 * only the tag's): its name outside quotes, followed by '='. */
static size_t attr_line(const struct parser *p, size_t tag, const char *name, size_t line)
{
    const char *s = p->r.s;
    size_t n = strlen(name);
    char q = 0;
    for (size_t i = tag; i < p->r.len && (q || s[i] != '>'); i++) {
        if (s[i] == '\n')
            line++;
        if (q) {
            q = s[i] == q ? 0 : q;
        } else if (s[i] == '"' || s[i] == '\'') {
            q = s[i];
        } else if (i > tag && i + n < p->r.len && (s[i - 1] == ' ' || s[i - 1] == '\t' || s[i - 1] == '\n' ||
                                         s[i - 1] == '\r') && !memcmp(s + i, name, n)) {
            size_t j = i + n;
            while (j < p->r.len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
                j++;
            if (j < p->r.len && s[j] == '=')
                return line;
        }
    }
    return line;
}

/* The name of the tag that holds byte off, for expat's errors inside a tag
 * ("<link a=... a=...>"): the first '<' after the last '>' before off
 * starts it ("" when it names nothing; "/server" for a closing tag). *lt:
 * where that '<' is. */
static void tag_at(const struct parser *p, size_t off, char *name, size_t size, size_t *lt)
{
    const char *s = p->r.s;
    name[0] = '\0';
    *lt = p->r.len;
    size_t end = off < p->r.len ? off : p->r.len, i = end;
    while (i > 0 && s[i - 1] != '>')
        i--;
    while (i < end && s[i] != '<')
        i++;
    if (i >= p->r.len || s[i] != '<')
        return;
    *lt = i++;
    size_t o = 0;
    if (i < p->r.len && s[i] == '/')
        name[o++] = s[i++];
    while (i < p->r.len && o + 1 < size && (isalnum((unsigned char)s[i]) || s[i] == '_' ||
                                             s[i] == '-' || s[i] == '.' || s[i] == ':'))
        name[o++] = s[i++];
    name[o] = '\0';
    if (o == 0 || (o == 1 && name[0] == '/'))
        name[0] = '\0';
}

/* An element's name and attributes, within the format's limits. */
static ppu_result_t take_event(struct parser *p, const char *name, const char **atts)
{
    struct xevent *ev = &p->ev;
    const char *ctx = open_elem(p);
    ev->line = xline(p);
    if (strlen(name) > XML_NAME_MAX)
        return xfail(&p->r, ev->line, ctx, "element name longer than %d characters",
                     XML_NAME_MAX);
    snprintf(ev->name, sizeof ev->name, "%s", name);
    ev->nattrs = 0;
    for (int i = 0; atts[i]; i += 2) {
        if (ev->nattrs == XML_MAX_ATTRS)
            return xfail(&p->r, ev->line, ev->name, "more than %d attributes", XML_MAX_ATTRS);
        if (strlen(atts[i]) > XML_NAME_MAX)
            return xfail(&p->r, ev->line, ev->name, "attribute name longer than %d characters",
                         XML_NAME_MAX);
        if (strlen(atts[i + 1]) > XML_VALUE_MAX)
            return xfail(&p->r, ev->line, ev->name, "the value of attribute %s is longer than "
                         "%d bytes", atts[i], XML_VALUE_MAX);
        struct xattr *x = &ev->attr[ev->nattrs++];
        snprintf(x->name, sizeof x->name, "%s", atts[i]);
        snprintf(x->value, sizeof x->value, "%s", atts[i + 1]);
        x->line = attr_line(p, (size_t)XML_GetCurrentByteIndex(p->xp), x->name, ev->line);
        x->used = 0;
    }
    return PPU_SUCCESS;
}

static ppu_result_t on_open(struct parser *p, const char *name, const char **atts)
{
    TRY(take_event(p, name, atts));
    struct xevent *ev = &p->ev;
    const char *ctx = open_elem(p);
    int kind = kind_of(ev->name);
    if (p->root_done)
        return xfail(&p->r, ev->line, ev->name, "nothing but comments may follow </ppu_topology>");
    if (p->depth == 0 && kind != E_ROOT)
        return xfail(&p->r, ev->line, ev->name, "the root element must be <ppu_topology>");
    if (kind < 0)
        return xfail(&p->r, ev->line, ev->name, "unknown element inside <%s>", ctx);
    int parent = p->depth ? p->stack[p->depth - 1] : -1;
    if (parent == E_CHIP || parent == E_NIC || parent == E_LINK)
        return xfail(&p->r, ev->line, ev->name, "<%s> cannot contain elements", ctx);
    if (p->depth > 0 && kind == E_ROOT)
        return xfail(&p->r, ev->line, ev->name, "there is only one, the root element");
    if ((kind == E_SERVER || kind == E_LINK) && parent != E_ROOT)
        return xfail(&p->r, ev->line, ev->name, "must be inside <ppu_topology>, not <%s>", ctx);
    if ((kind == E_CHIP || kind == E_NIC) && parent != E_SERVER)
        return xfail(&p->r, ev->line, ev->name, "must be inside <server>, not <%s>", ctx);
    if (kind == E_ROOT)
        p->root_seen = 1;
    TRY(on_start(p, kind));
    p->stack[p->depth] = kind; /* depth < 3 here: leaves cannot contain elements */
    p->stack_line[p->depth++] = ev->line;
    return PPU_SUCCESS;
}

static void XMLCALL cb_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct parser *p = ud;
    if (p->res == PPU_SUCCESS)
        stop(p, on_open(p, name, atts));
}

static void XMLCALL cb_end(void *ud, const XML_Char *name)
{
    struct parser *p = ud;
    if (p->res != PPU_SUCCESS || p->depth == 0)
        return;
    if (p->stack[--p->depth] == E_ROOT) { /* expat matched the names */
        p->root_done = 1;
        if (p->pass == 2)
            stop(p, on_root_end(p, xline(p)));
    }
}

static void XMLCALL cb_text(void *ud, const XML_Char *s, int len)
{
    struct parser *p = ud;
    int i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    if (p->res != PPU_SUCCESS || i == len)
        return;
    char text[24], b[48];
    int n = 0;
    while (i + n < len && n < (int)sizeof text - 1 && s[i + n] != '\n')
        n++;
    memcpy(text, s + i, (size_t)n);
    text[n] = '\0';
    stop(p, xfail(&p->r, xline(p), open_elem(p), "unexpected text \"%s\" (only elements and "
                  "comments belong here)", show(text, b, sizeof b)));
}

static void XMLCALL cb_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    struct parser *p = ud;
    stop(p, xfail(&p->r, xline(p), open_elem(p), "processing instructions (<?%s ...?>) are not "
                  "supported", target));
}

static void XMLCALL cb_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int internal)
{
    struct parser *p = ud;
    stop(p, xfail(&p->r, xline(p), NULL, "<!DOCTYPE is not supported (nor entity "
                  "declarations)"));
}

static void XMLCALL cb_cdata(void *ud)
{
    struct parser *p = ud;
    stop(p, xfail(&p->r, xline(p), open_elem(p), "<![CDATA[ is not supported"));
}

/* What expat found wrong, as this format's sentence. */
static ppu_result_t syntax_error(struct parser *p)
{
    enum XML_Error e = XML_GetErrorCode(p->xp);
    size_t line = (size_t)XML_GetErrorLineNumber(p->xp);
    size_t col = (size_t)XML_GetErrorColumnNumber(p->xp) + 1;
    long at = XML_GetErrorByteIndex(p->xp);
    char tag[XML_NAME_MAX + 2];
    size_t lt;
    tag_at(p, at >= 0 ? (size_t)at : p->r.len, tag, sizeof tag, &lt);
    const char *ctx = tag[0] ? tag : open_elem(p);
    if (e == XML_ERROR_UNCLOSED_TOKEN || e == XML_ERROR_UNCLOSED_CDATA_SECTION) {
        line = line_at(p, p->r.len && p->r.s[p->r.len - 1] == '\n' ? p->r.len - 1 : p->r.len);
        if (lt + 4 <= p->r.len && !memcmp(p->r.s + lt, "<!--", 4))
            return xfail(&p->r, line_at(p, lt), open_elem(p), "comment is never closed with -->");
        return xfail(&p->r, line, ctx, "unexpected end of file inside the tag");
    }
    if (tag[0] == '/' && p->depth == 0)
        return xfail(&p->r, line, tag, "closes no open element");
    if (e == XML_ERROR_NO_ELEMENTS) /* the end of the text, as a person counts */
        line = line_at(p, p->r.len && p->r.s[p->r.len - 1] == '\n' ? p->r.len - 1 : p->r.len);
    if (e == XML_ERROR_NO_ELEMENTS && p->depth)
        return xfail(&p->r, line, NULL, "unexpected end of file inside <%s> (opened at line %zu)",
                     ctx, p->stack_line[p->depth - 1]);
    if (e == XML_ERROR_NO_ELEMENTS && !p->root_seen)
        return xfail(&p->r, line, NULL, "no <ppu_topology> element");
    if (e == XML_ERROR_TAG_MISMATCH && p->depth)
        return xfail(&p->r, line, tag[0] ? tag : NULL, "does not close <%s> (opened at line %zu)",
                     open_elem(p), p->stack_line[p->depth - 1]);
    if (e == XML_ERROR_JUNK_AFTER_DOC_ELEMENT)
        return xfail(&p->r, line, tag[0] ? tag : NULL,
                     "nothing but comments may follow </ppu_topology>");
    if (e == XML_ERROR_MISPLACED_XML_PI)
        return xfail(&p->r, line, ctx, "<?xml ...?> may only come before <ppu_topology>");
    return xfail(&p->r, line, ctx, "%s (column %zu)", XML_ErrorString(e), col);
}

static ppu_result_t run_pass(struct parser *p, int pass)
{
    p->pass = pass;
    p->res = PPU_SUCCESS;
    p->depth = p->root_done = p->root_seen = 0;
    p->xp = XML_ParserCreate("UTF-8");
    if (!p->xp) {
        snprintf(p->r.err, p->r.errlen, "%s: out of memory for the XML reader", p->r.file);
        return PPU_SYSTEM_ERROR;
    }
    XML_SetUserData(p->xp, p);
    XML_SetElementHandler(p->xp, cb_start, cb_end);
    XML_SetCharacterDataHandler(p->xp, cb_text);
    XML_SetProcessingInstructionHandler(p->xp, cb_pi);
    XML_SetStartDoctypeDeclHandler(p->xp, cb_doctype);
    XML_SetStartCdataSectionHandler(p->xp, cb_cdata);
    /* expat takes an int length; files are capped far below that
     * (PPU_TOPO_XML_MAX_BYTES), and texts handed in are fed in pieces */
    const char *s = p->r.s;
    size_t left = p->r.len;
    enum XML_Status st = XML_STATUS_OK;
    do {
        int n = left > (1u << 30) ? 1 << 30 : (int)left;
        st = XML_Parse(p->xp, s, n, (size_t)n == left);
        s += n;
        left -= (size_t)n;
    } while (st == XML_STATUS_OK && left);
    ppu_result_t r = p->res;
    if (r == PPU_SUCCESS && st != XML_STATUS_OK)
        r = syntax_error(p);
    XML_ParserFree(p->xp);
    p->xp = NULL;
    return r;
}

static void base_name(const char *filename, char *dst, size_t size)
{
    const char *s = strrchr(filename, '/');
    s = s ? s + 1 : filename;
    const char *dot = strrchr(s, '.');
    size_t n = dot && dot != s ? (size_t)(dot - s) : strlen(s);
    if (n >= size)
        n = size - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    if (!dst[0])
        snprintf(dst, size, "topology");
}

ppu_result_t ppu_topo_parse_xml(const char *text, size_t len, const char *filename,
                                struct ppu_topo *t, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!text && len) {
        snprintf(err, errlen, "ppu_topo_parse_xml: no text");
        return PPU_INVALID_ARGUMENT;
    }
    struct parser *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "cannot parse %s: out of memory", filename ? filename : "topology");
        return PPU_SYSTEM_ERROR;
    }
    p->r.s = text ? text : "";
    p->r.len = len;
    p->r.file = filename ? filename : "<topology>";
    p->r.err = err;
    p->r.errlen = errlen;
    ppu_topo_init(&p->t, "", 0);
    p->t.nservers = 0;
    snprintf(p->t.source, sizeof p->t.source, "file");

    struct c_numeric cn;
    c_numeric_enter(&cn);
    ppu_result_t res = run_pass(p, 1);
    if (res == PPU_SUCCESS)
        res = run_pass(p, 2);
    c_numeric_leave(&cn);

    if (res == PPU_SUCCESS) {
        if (!p->name_given)
            base_name(filename ? filename : "", p->t.name, sizeof p->t.name);
        *t = p->t;
        PPU_INFO(PPU_SUB_TOPO, "topology %s from %s: %d chips on %d servers, %d NICs",
                 t->name, p->r.file, t->nchips, t->nservers, t->nnics);
    } else if (err && errlen && !err[0]) {
        snprintf(err, errlen, "%s: invalid topology file", p->r.file);
    }
    free(p);
    return res;
}

ppu_result_t ppu_topo_load_xml(const char *path, struct ppu_topo *t, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open topology file %s: %s", path, strerror(errno));
        return PPU_SYSTEM_ERROR;
    }
    size_t cap = 64 << 10, n = 0;
    char *buf = malloc(cap);
    ppu_result_t res = PPU_SUCCESS;
    if (!buf) {
        snprintf(err, errlen, "cannot read topology file %s: out of memory", path);
        res = PPU_SYSTEM_ERROR;
    }
    while (res == PPU_SUCCESS) {
        if (n == cap) {
            if (cap > PPU_TOPO_XML_MAX_BYTES) {
                snprintf(err, errlen, "topology file %s is larger than %u bytes", path,
                         (unsigned)PPU_TOPO_XML_MAX_BYTES);
                res = PPU_INVALID_ARGUMENT;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                snprintf(err, errlen, "cannot read topology file %s: out of memory", path);
                res = PPU_SYSTEM_ERROR;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "cannot read topology file %s: %s", path, strerror(errno));
                res = PPU_SYSTEM_ERROR;
            }
            break;
        }
    }
    fclose(f);
    if (res == PPU_SUCCESS && n > PPU_TOPO_XML_MAX_BYTES) {
        snprintf(err, errlen, "topology file %s is larger than %u bytes", path,
                 (unsigned)PPU_TOPO_XML_MAX_BYTES);
        res = PPU_INVALID_ARGUMENT;
    }
    if (res == PPU_SUCCESS)
        res = ppu_topo_parse_xml(buf, n, path, t, err, errlen);
    free(buf);
    return res;
}

/* ---- writing ---------------------------------------------------------- */

static int terminated(const char *s, size_t size) { return memchr(s, '\0', size) != NULL; }

static int value_ok(double v) { return v >= 0 && v <= TOPO_VALUE_MAX; }

ppu_result_t ppu_topo_check_xml(const struct ppu_topo *t, char *err, size_t errlen)
{
#define BAD(...)                                    \
    do {                                            \
        snprintf(err, errlen, __VA_ARGS__);         \
        return PPU_INVALID_ARGUMENT;                \
    } while (0)
    int n = t->nchips;
    if (n < 1 || n > PPU_TOPO_MAX_CHIPS)
        BAD("topology has %d chips, not 1..%d", n, PPU_TOPO_MAX_CHIPS);
    if (t->nservers < 1 || t->nservers > PPU_TOPO_MAX_CHIPS)
        BAD("topology has %d servers, not 1..%d", t->nservers, PPU_TOPO_MAX_CHIPS);
    if (!terminated(t->name, sizeof t->name))
        BAD("topology name is not terminated");
    if (t->ports_per_chip < 1 || t->ports_per_chip > TOPO_PORTS_MAX)
        BAD("ports_per_chip %d is not 1..%d", t->ports_per_chip, TOPO_PORTS_MAX);
    if (!value_ok(t->link_gbps) || !value_ok(t->link_latency_us))
        BAD("link_gbps %g or link_latency_us %g is not 0..%g", t->link_gbps, t->link_latency_us,
            TOPO_VALUE_MAX);
    for (int c = 0; c < n; c++) {
        if (t->server[c] < 0 || t->server[c] >= t->nservers)
            BAD("chip %d is on server %d of %d", c, t->server[c], t->nservers);
        if (t->numa[c] < -1 || t->numa[c] > TOPO_NUMA_MAX)
            BAD("chip %d has NUMA node %d, not -1..%d", c, t->numa[c], TOPO_NUMA_MAX);
        if (!terminated(t->pci[c], sizeof t->pci[c]) || !terminated(t->host[c], sizeof t->host[c]))
            BAD("chip %d has an unterminated pci or host string", c);
    }
    unsigned char used[PPU_TOPO_MAX_CHIPS][PPU_TOPO_NO_PORT];
    memset(used, 0, sizeof used);
    for (int a = 0; a < n; a++) {
        if (t->link[a][a] != PPU_LINK_NONE)
            BAD("chip %d links to itself", a);
        for (int b = a + 1; b < n; b++) {
            int s = t->link[a][b];
            if (s == PPU_LINK_NONE && t->link[b][a] == PPU_LINK_NONE)
                continue;
            if (s != t->link[b][a] || (s != PPU_LINK_UP && s != PPU_LINK_DOWN))
                BAD("link %d-%d has states %d and %d", a, b, s, t->link[b][a]);
            if (t->gbps[a][b] != t->gbps[b][a] || !value_ok(t->gbps[a][b]))
                BAD("link %d-%d has bandwidths %g and %g", a, b, (double)t->gbps[a][b],
                    (double)t->gbps[b][a]);
            if (t->latency_us[a][b] != t->latency_us[b][a] || !value_ok(t->latency_us[a][b]))
                BAD("link %d-%d has latencies %g and %g", a, b, (double)t->latency_us[a][b],
                    (double)t->latency_us[b][a]);
            int ends[2][2] = {{a, b}, {b, a}};
            for (int e = 0; e < 2; e++) {
                int x = ends[e][0], y = ends[e][1], port = t->port[x][y];
                if (port == PPU_TOPO_NO_PORT)
                    continue;
                if (port >= t->ports_per_chip)
                    BAD("link %d-%d uses port %d of chip %d, beyond ports_per_chip %d", a, b,
                        port, x, t->ports_per_chip);
                if (used[x][port])
                    BAD("port %d of chip %d carries two links", port, x);
                used[x][port] = 1;
            }
        }
    }
    if (t->nnics < 0 || t->nnics > PPU_TOPO_MAX_NICS)
        BAD("topology has %d NICs, not 0..%d", t->nnics, PPU_TOPO_MAX_NICS);
    for (int i = 0; i < t->nnics; i++) {
        const struct ppu_topo_nic *c = &t->nic[i];
        if (!terminated(c->name, sizeof c->name) || !c->name[0] ||
            !terminated(c->pci, sizeof c->pci))
            BAD("NIC %d has an empty or unterminated name or pci", i);
        if (c->server < 0 || c->server >= t->nservers)
            BAD("NIC %s is on server %d of %d", c->name, c->server, t->nservers);
        if (c->chip < -1 || c->chip >= n || (c->chip >= 0 && t->server[c->chip] != c->server))
            BAD("NIC %s names chip %d, which is not on its server %d", c->name, c->chip,
                c->server);
        if (c->numa < -1 || c->numa > TOPO_NUMA_MAX || !value_ok(c->gbps) ||
            (c->rdma != 0 && c->rdma != 1))
            BAD("NIC %s has numa %d, gbps %g, rdma %d out of range", c->name, c->numa, c->gbps,
                c->rdma);
        for (int j = 0; j < i; j++)
            if (t->nic[j].server == c->server && strcmp(t->nic[j].name, c->name) == 0)
                BAD("NIC name %s appears twice on server %d", c->name, c->server);
    }
    return PPU_SUCCESS;
#undef BAD
}

static void put_attr(FILE *f, const char *name, const char *v)
{
    fprintf(f, " %s=\"", name);
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "&#%u;", (unsigned)c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

static void put_int(FILE *f, const char *name, int v) { fprintf(f, " %s=\"%d\"", name, v); }

ppu_result_t ppu_topo_dump_xml(const struct ppu_topo *t, FILE *f)
{
    char err[256], num[40];
    if (ppu_topo_check_xml(t, err, sizeof err) != PPU_SUCCESS) {
        PPU_WARN(PPU_SUB_TOPO, "cannot write topology %.31s: %s", t->name, err);
        return PPU_INVALID_ARGUMENT;
    }
    struct c_numeric cn;
    c_numeric_enter(&cn);
    int n = t->nchips, nlinks = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            nlinks += t->link[a][b] != PPU_LINK_NONE;
    fprintf(f, "<?xml version=\"1.0\"?>\n<!-- written by ppuccl: chips %d, servers %d, "
               "links %d, NICs %d -->\n<ppu_topology version=\"1\"", n, t->nservers, nlinks,
            t->nnics);
    put_attr(f, "name", t->name);
    put_int(f, "ports_per_chip", t->ports_per_chip);
    fmt_double(num, sizeof num, t->link_gbps);
    put_attr(f, "link_gbps", num);
    fmt_double(num, sizeof num, t->link_latency_us);
    put_attr(f, "link_latency_us", num);
    fputs(">\n", f);
    for (int s = 0; s < t->nservers; s++) {
        const char *host = "";
        int content = 0;
        for (int c = 0; c < n && !content; c++)
            if (t->server[c] == s) {
                host = t->host[c];
                content = 1;
            }
        for (int i = 0; i < t->nnics; i++)
            content |= t->nic[i].server == s;
        fprintf(f, "  <server");
        put_int(f, "id", s);
        if (host[0])
            put_attr(f, "host", host);
        fputs(content ? ">\n" : "/>\n", f);
        if (!content)
            continue;
        for (int c = 0; c < n; c++) {
            if (t->server[c] != s)
                continue;
            fprintf(f, "    <chip");
            put_int(f, "id", c);
            if (t->numa[c] != -1)
                put_int(f, "numa", t->numa[c]);
            if (t->pci[c][0])
                put_attr(f, "pci", t->pci[c]);
            if (strcmp(t->host[c], host) != 0)
                put_attr(f, "host", t->host[c]);
            fputs("/>\n", f);
        }
        for (int i = 0; i < t->nnics; i++) {
            const struct ppu_topo_nic *c = &t->nic[i];
            if (c->server != s)
                continue;
            fprintf(f, "    <nic");
            put_attr(f, "name", c->name);
            if (c->chip >= 0)
                put_int(f, "chip", c->chip);
            if (c->numa != -1)
                put_int(f, "numa", c->numa);
            if (c->gbps != 0) {
                fmt_double(num, sizeof num, c->gbps);
                put_attr(f, "gbps", num);
            }
            if (c->rdma)
                put_int(f, "rdma", c->rdma);
            if (c->pci[0])
                put_attr(f, "pci", c->pci);
            fputs("/>\n", f);
        }
        fputs("  </server>\n", f);
    }
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            if (t->link[a][b] == PPU_LINK_NONE)
                continue;
            fprintf(f, "  <link");
            put_int(f, "a", a);
            put_int(f, "b", b);
            if (t->port[a][b] != PPU_TOPO_NO_PORT)
                put_int(f, "port_a", t->port[a][b]);
            if (t->port[b][a] != PPU_TOPO_NO_PORT)
                put_int(f, "port_b", t->port[b][a]);
            if (t->gbps[a][b] != (float)t->link_gbps) {
                fmt_float(num, sizeof num, t->gbps[a][b]);
                put_attr(f, "gbps", num);
            }
            if (t->latency_us[a][b] != (float)t->link_latency_us) {
                fmt_float(num, sizeof num, t->latency_us[a][b]);
                put_attr(f, "latency_us", num);
            }
            if (t->link[a][b] == PPU_LINK_DOWN)
                put_attr(f, "state", "down");
            fputs("/>\n", f);
        }
    fputs("</ppu_topology>\n", f);
    c_numeric_leave(&cn);
    if (fflush(f) != 0 || ferror(f))
        return PPU_SYSTEM_ERROR;
    return PPU_SUCCESS;
}

ppu_result_t ppu_topo_save_xml(const struct ppu_topo *t, const char *path, char *err,
                               size_t errlen)
{
    char why[256];
    if (ppu_topo_check_xml(t, why, sizeof why) != PPU_SUCCESS) {
        snprintf(err, errlen, "cannot save topology to %s: %s", path, why);
        return PPU_INVALID_ARGUMENT;
    }
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        snprintf(err, errlen, "cannot save topology to %s: out of memory", path);
        return PPU_SYSTEM_ERROR;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write topology file %s: %s", tmp, strerror(errno));
        free(tmp);
        return PPU_SYSTEM_ERROR;
    }
    ppu_result_t res = ppu_topo_dump_xml(t, f);
    int saved = errno;
    if (fclose(f) != 0 && res == PPU_SUCCESS) {
        saved = errno;
        res = PPU_SYSTEM_ERROR;
    }
    if (res == PPU_SUCCESS && rename(tmp, path) != 0) {
        saved = errno;
        res = PPU_SYSTEM_ERROR;
    }
    if (res != PPU_SUCCESS) {
        snprintf(err, errlen, "cannot write topology file %s: %s", path, strerror(saved));
        unlink(tmp);
    }
    free(tmp);
    return res;
}
