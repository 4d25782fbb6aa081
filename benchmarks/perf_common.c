/*
 * perf_common — nccl-tests style benchmark driver (see perf_common.h).
 * No MPI and no libppuccl symbols here: only the enums from ppuccl.h.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>

#include "perf_common.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- datatypes, ops, values -------------------------------------------- */
static const char *const type_names[PPU_NUM_DATATYPES] = {
    "int8", "uint8", "int32", "uint32", "int64", "uint64",
    "half", "bfloat16", "float", "double"};
static const size_t type_sizes[PPU_NUM_DATATYPES] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
static const char *const op_names[PPU_NUM_REDOPS] = {"sum", "prod", "max", "min", "avg"};

size_t perf_type_size(int t) { return t >= 0 && t < PPU_NUM_DATATYPES ? type_sizes[t] : 0; }
const char *perf_type_name(int t) { return t >= 0 && t < PPU_NUM_DATATYPES ? type_names[t] : "?"; }
const char *perf_op_name(int op) { return op >= 0 && op < PPU_NUM_REDOPS ? op_names[op] : "none"; }

static int is_unsigned(int t) { return t == PPU_UINT8 || t == PPU_UINT32 || t == PPU_UINT64; }
static int is_float(int t) { return t >= PPU_FLOAT16; }

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t perf_float_to_half(float f) {
    uint32_t u = f2u(f), sign = (u >> 16) & 0x8000u, abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);   /* NaN */
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* rounds to inf */
    if (abs < 0x38800000u) {                                   /* half subnormal */
        if (abs < 0x33000000u) return (uint16_t)sign;           /* < 2^-25: zero */
        uint32_t e = abs >> 23, m = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;                               /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = abs - 0x38000000u;                             /* rebias 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1);                              /* RNE on 13 bits */
    return (uint16_t)(sign | (r >> 13));
}

float perf_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    if (e == 0x1f) return u2f(sign | 0x7f800000u | (m << 13));
    if (e == 0) { /* zero or subnormal: m * 2^-24 */
        float v = (float)m / 16777216.0f;
        return sign ? -v : v;
    }
    return u2f(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t perf_float_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float perf_bf16_to_float(uint16_t b) { return u2f((uint32_t)b << 16); }

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t perf_hash(const void *buf, size_t bytes) {
    const unsigned char *p = buf;
    uint64_t h = 0x243F6A8885A308D3ull;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = mix64(h ^ w);
    }
    for (; i < bytes; i++) h = mix64(h ^ p[i]);
    return h;
}

int64_t perf_value(int t, int op, int rank, int nranks, size_t idx) {
    uint64_t h = mix64(((uint64_t)rank << 44) ^ (uint64_t)idx);
    if (op == PPU_PROD) { /* |product| == 2: one rank gives 2, the rest +-1 */
        int64_t v = (rank == (int)(idx % (size_t)nranks)) ? 2 : 1;
        return (!is_unsigned(t) && (h & 1)) ? -v : v;
    }
    /* Every partial sum stays within lim, where integers are exact. */
    int64_t lim = t == PPU_INT8 ? 127 : t == PPU_UINT8 ? 255 : t == PPU_BFLOAT16 ? 256
                : t == PPU_FLOAT16 ? 2048 : 100000;
    int64_t m = lim / nranks;
    if (is_unsigned(t)) return (int64_t)(h % (uint64_t)(m + 1));
    return (int64_t)(h % (uint64_t)(2 * m + 1)) - m;
}

int64_t perf_reduce_value(int t, int op, int nranks, size_t idx) {
    int64_t acc = perf_value(t, op, 0, nranks, idx);
    for (int r = 1; r < nranks; r++) {
        int64_t v = perf_value(t, op, r, nranks, idx);
        if (op == PPU_PROD) acc *= v;
        else if (op == PPU_MAX) acc = v > acc ? v : acc;
        else if (op == PPU_MIN) acc = v < acc ? v : acc;
        else acc += v;
    }
    return acc;
}

static void store_double(void *buf, size_t i, int t, double v) {
    switch (t) {
    case PPU_FLOAT16: ((uint16_t *)buf)[i] = perf_float_to_half((float)v); break;
    case PPU_BFLOAT16: ((uint16_t *)buf)[i] = perf_float_to_bf16((float)v); break;
    case PPU_FLOAT32: ((float *)buf)[i] = (float)v; break;
    default: ((double *)buf)[i] = v; break;
    }
}

void perf_store(void *buf, size_t i, int t, int64_t v) {
    switch (t) {
    case PPU_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
    case PPU_UINT8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    case PPU_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case PPU_UINT32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
    case PPU_INT64: ((int64_t *)buf)[i] = v; break;
    case PPU_UINT64: ((uint64_t *)buf)[i] = (uint64_t)v; break;
    default: store_double(buf, i, t, (double)v); break; /* small ints: exact */
    }
}

void perf_store_result(void *buf, size_t i, int t, int op, int64_t acc, int nranks) {
    if (op != PPU_AVG) { perf_store(buf, i, t, acc); return; }
    if (!is_float(t)) { perf_store(buf, i, t, acc / nranks); return; } /* truncates */
    if (t == PPU_FLOAT64) store_double(buf, i, t, (double)acc / (double)nranks);
    else store_double(buf, i, t, (double)((float)acc / (float)nranks)); /* via float */
}

static double load_float(const void *buf, size_t i, int t) {
    switch (t) {
    case PPU_FLOAT16: return perf_half_to_float(((const uint16_t *)buf)[i]);
    case PPU_BFLOAT16: return perf_bf16_to_float(((const uint16_t *)buf)[i]);
    case PPU_FLOAT32: return ((const float *)buf)[i];
    default: return ((const double *)buf)[i];
    }
}

size_t perf_count_wrong(const void *a, const void *b, size_t n, int t) {
    size_t wrong = 0, ts = perf_type_size(t);
    for (size_t i = 0; i < n; i++) {
        if (is_float(t)) wrong += !(load_float(a, i, t) == load_float(b, i, t));
        else wrong += memcmp((const char *)a + i * ts, (const char *)b + i * ts, ts) != 0;
    }
    return wrong;
}

/* ---- the all-reduce description ---------------------------------------- */
static void ar_counts(size_t count, int nranks, perf_counts_t *c) {
    (void)nranks;
    c->send = c->recv = c->param = count;
    c->inplace_send_off = c->inplace_recv_off = 0;
}
static double ar_bus_factor(int n) { return 2.0 * (n - 1) / n; }
static void ar_fill(void *send, const perf_counts_t *c, int t, int op, int root,
                    int rank, int nranks) {
    (void)root;
    for (size_t i = 0; i < c->send; i++) perf_store(send, i, t, perf_value(t, op, rank, nranks, i));
}
static size_t ar_expected(void *exp, const perf_counts_t *c, int t, int op, int root,
                          int rank, int nranks) {
    (void)root; (void)rank;
    for (size_t i = c->check_lo; i < c->check_hi; i++)
        perf_store_result(exp, i, t, op, perf_reduce_value(t, op, nranks, i), nranks);
    return c->recv;
}
const perf_coll_t perf_coll_allreduce = {
    .name = "allreduce", .uses_op = 1, .counts = ar_counts, .bus_factor = ar_bus_factor,
    .fill = ar_fill, .expected = ar_expected, .split_check = 1};

/* ---- argument parsing -------------------------------------------------- */
static int parse_size(const char *s, size_t *out) {
    char *end;
    if (!*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    default: break;
    }
    if (end == s || *end || v > (unsigned long long)SIZE_MAX / mul) return -1;
    *out = (size_t)(v * mul);
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_name(const char *s, const char *const *names, int n) {
    if (!strcmp(s, "all")) return PERF_ALL;
    for (int i = 0; i < n; i++) if (!strcmp(s, names[i])) return i;
    static const struct { const char *alias; int t; } aliases[] = {
        {"char", PPU_INT8}, {"int", PPU_INT32}, {"float16", PPU_FLOAT16},
        {"bf16", PPU_BFLOAT16}, {"float32", PPU_FLOAT32}, {"float64", PPU_FLOAT64}};
    if (names == type_names)
        for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
            if (!strcmp(s, aliases[i].alias)) return aliases[i].t;
    return -2;
}

static void usage(const char *prog, FILE *f) {
    fprintf(f, "usage: %s [-b minbytes] [-e maxbytes] [-f factor | -i stepbytes] [-n iters]\n"
               "  [-w warmup] [-c 0|1] [-d type|all] [-o sum|prod|max|min|avg|all] [-r root]\n"
               "  [-z 0|1] [-T timeout_s] [-p nprocs] [-R 0|1|2] [-J file] [-h]\n"
               "  -R 1 registers the buffers with the library (ppuccl: ppu_comm_register);\n"
               "  -R 2 allocates them as symmetric memory registered as windows (ppuccl)\n"
               "  -J file: rank 0 writes every row and the parameters as JSON\n"
               "  sizes accept K/M/G suffixes (powers of 1024); types: int8 uint8 int32 uint32\n"
               "  int64 uint64 half bfloat16 float double\n", prog);
}

int perf_parse_args(int argc, char **argv, perf_opts_t *o) {
    static const struct option longopts[] = {
        {"minbytes", 1, 0, 'b'}, {"maxbytes", 1, 0, 'e'}, {"stepfactor", 1, 0, 'f'},
        {"stepbytes", 1, 0, 'i'}, {"iters", 1, 0, 'n'}, {"warmup_iters", 1, 0, 'w'},
        {"check", 1, 0, 'c'}, {"datatype", 1, 0, 'd'}, {"op", 1, 0, 'o'},
        {"root", 1, 0, 'r'}, {"blocking", 1, 0, 'z'}, {"timeout", 1, 0, 'T'},
        {"nprocs", 1, 0, 'p'}, {"register", 1, 0, 'R'}, {"json", 1, 0, 'J'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *prog = argc > 0 ? argv[0] : "perf";
    *o = (perf_opts_t){8, 64u << 20, 2.0, 0, 20, 5, 1, PPU_FLOAT32, PPU_SUM, 0, 0, 0, 0, 0, NULL};
    int c, bad = 0;
    opterr = 0;
    optind = 1;
    while (!bad && (c = getopt_long(argc, argv, ":b:e:f:i:n:w:c:d:o:r:z:T:p:R:J:h", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'b': bad = parse_size(optarg, &o->min_bytes); break;
        case 'e': bad = parse_size(optarg, &o->max_bytes); break;
        case 'f':
            o->factor = strtod(optarg, &end);
            bad = end == optarg || *end || !(o->factor > 1.0 && o->factor < 1e6);
            o->step = 0;
            break;
        case 'i': bad = parse_size(optarg, &o->step) || o->step == 0; break;
        case 'n': bad = parse_int(optarg, 1, 1 << 30, &o->iters); break;
        case 'w': bad = parse_int(optarg, 0, 1 << 30, &o->warmup); break;
        case 'c': bad = parse_int(optarg, 0, 1, &o->check); break;
        case 'd': o->dtype = parse_name(optarg, type_names, PPU_NUM_DATATYPES); bad = o->dtype == -2; break;
        case 'o': o->op = parse_name(optarg, op_names, PPU_NUM_REDOPS); bad = o->op == -2; break;
        case 'r': bad = parse_int(optarg, 0, 1 << 30, &o->root); break;
        case 'z': bad = parse_int(optarg, 0, 1, &o->blocking); break;
        case 'T': bad = parse_int(optarg, 0, 1 << 24, &o->timeout_s); break;
        case 'p': bad = parse_int(optarg, 1, 4096, &o->nprocs); break;
        case 'R': bad = parse_int(optarg, 0, 2, &o->reg); break;
        case 'J': o->json = optarg; bad = !*optarg; break;
        case 'h': usage(prog, stdout); return 1;
        case ':':
            fprintf(stderr, "%s: option -%c needs a value\n", prog, optopt);
            usage(prog, stderr);
            return 2;
        default:
            if (optopt) fprintf(stderr, "%s: unknown option -%c\n", prog, optopt);
            else fprintf(stderr, "%s: unknown option %s\n", prog, argv[optind - 1]);
            usage(prog, stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "%s: bad value '%s' for -%c\n", prog, optarg, c);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return 2;
    }
    if (o->min_bytes > o->max_bytes) {
        fprintf(stderr, "%s: minbytes (%zu) > maxbytes (%zu)\n", prog, o->min_bytes, o->max_bytes);
        return 2;
    }
    return 0;
}

/* ---- the sweep ---------------------------------------------------------- */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_alarm(int sig) {
    static const char msg[] = "perf: timeout (-T) expired, exiting\n";
    (void)sig;
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(124);
}

static size_t next_size(const perf_opts_t *o, size_t s) {
    size_t n = o->step ? s + o->step : (size_t)((double)s * o->factor);
    return n > s ? n : s + 1;
}

#define HOSTCH 16 /* hostname characters exchanged per rank */
static int print_header(const perf_opts_t *o, const perf_backend_t *be, const perf_coll_t *coll) {
    size_t per = 1 + HOSTCH, n = (size_t)be->nranks * per;
    double *v = calloc(n, sizeof *v);
    char host[256] = "";
    if (!v) return -1;
    gethostname(host, sizeof host - 1);
    v[be->rank * per] = (double)getpid();
    for (size_t i = 0; i < HOSTCH && host[i]; i++) v[be->rank * per + 1 + i] = (unsigned char)host[i];
    if (be->reduce_double(be->ctx, v, n, 0)) { free(v); return -1; }
    if (be->rank == 0) {
        printf("# %s %s perf: minBytes %zu maxBytes %zu step: ", be->name, coll->name,
               o->min_bytes, o->max_bytes);
        if (o->step) printf("%zu(bytes)", o->step); else printf("%g(factor)", o->factor);
        printf(" warmup iters: %d iters: %d validation: %d nranks %d\n#\n# Using devices\n",
               o->warmup, o->iters, o->check, be->nranks);
        for (int r = 0; r < be->nranks; r++) {
            char h[HOSTCH + 1] = "";
            for (size_t i = 0; i < HOSTCH; i++) h[i] = (char)v[r * per + 1 + i];
            printf("#  Rank %2d Pid %6ld on %10s\n", r, (long)v[r * per], h);
        }
        printf("#\n#%62s%-35s%s\n", "", "out-of-place", "in-place");
        printf("#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong\n");
        printf("#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)  (GB/s)  (GB/s)\n");
        fflush(stdout);
    }
    free(v);
    return 0;
}

typedef struct {
    char *send, *recv, *exp;
    double bw_sum;
    long bw_n;
    double wrong;
    cJSON *rows, *row; /* -J: rank 0's rows, and the one being measured */
} sweep_t;

/* -J: the rows and the run's parameters, as nccl-tests' JSON output
 * would hold them; takes rows. */
static int write_json(const perf_opts_t *o, const perf_backend_t *be, const perf_coll_t *coll,
                      cJSON *rows, double avg_busbw) {
    cJSON *root = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(root, "params");
    cJSON_AddStringToObject(root, "collective", coll->name);
    cJSON_AddStringToObject(root, "backend", be->name);
    cJSON_AddNumberToObject(root, "nranks", be->nranks);
    cJSON_AddNumberToObject(p, "minbytes", (double)o->min_bytes);
    cJSON_AddNumberToObject(p, "maxbytes", (double)o->max_bytes);
    cJSON_AddNumberToObject(p, "stepfactor", o->step ? 0 : o->factor);
    cJSON_AddNumberToObject(p, "stepbytes", (double)o->step);
    cJSON_AddNumberToObject(p, "iters", o->iters);
    cJSON_AddNumberToObject(p, "warmup_iters", o->warmup);
    cJSON_AddNumberToObject(p, "check", o->check);
    cJSON_AddStringToObject(p, "datatype", o->dtype == PERF_ALL ? "all" : perf_type_name(o->dtype));
    cJSON_AddStringToObject(p, "op", o->op == PERF_ALL ? "all" : perf_op_name(o->op));
    cJSON_AddNumberToObject(p, "root", o->root);
    cJSON_AddNumberToObject(p, "register", o->reg);
    cJSON_AddItemToObject(root, "rows", rows);
    cJSON_AddNumberToObject(root, "avg_busbw_gbps", avg_busbw);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    FILE *f = text ? fopen(o->json, "w") : NULL;
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    cJSON_free(text);
    if (!ok) fprintf(stderr, "perf: -J %s: cannot write it\n", o->json);
    return ok ? 0 : -1;
}

/* One row group: check run (separate), warmup, timed loop. In place, send
 * and recv lie in sw->recv, which holds max(send, recv) elements. */
static int run_place(const perf_opts_t *o, const perf_backend_t *be, const perf_coll_t *coll,
                     sweep_t *sw, const perf_counts_t *c, int t, int op, int in_place) {
    size_t ts = perf_type_size(t), rk = (size_t)be->rank;
    size_t nbuf = in_place && c->send > c->recv ? c->send : c->recv;
    char *sendp = in_place ? sw->recv + rk * c->inplace_send_off * ts : sw->send;
    char *recvp = in_place ? sw->recv + rk * c->inplace_recv_off * ts : sw->recv;
    double wrong = 0;
    if (o->check) {
        coll->fill(sw->send, c, t, op, o->root, be->rank, be->nranks);
        memset(sw->recv, 0xff, nbuf * ts); /* NaN / -1 sentinel */
        if (in_place) memcpy(sendp, sw->send, c->send * ts);
        if (be->run(be->ctx, sendp, recvp, c->param, t, op, o->root)) return -1;
        perf_counts_t cc = *c;
        cc.check_lo = 0;
        cc.check_hi = c->recv;
        int split = coll->split_check && (double)be->nranks * (double)c->recv > (double)(1 << 24);
        if (split) { /* this rank's 1/n of the elements */
            cc.check_lo = c->recv * rk / (size_t)be->nranks;
            cc.check_hi = c->recv * (rk + 1) / (size_t)be->nranks;
        }
        size_t n = coll->expected(sw->exp, &cc, t, op, o->root, be->rank, be->nranks);
        if (split) {
            wrong = (double)perf_count_wrong(recvp + cc.check_lo * ts, sw->exp + cc.check_lo * ts,
                                             cc.check_hi - cc.check_lo, t);
            /* and every rank holds the same result: max and min of a hash agree */
            double h[2];
            h[0] = (double)(perf_hash(recvp, c->recv * ts) >> 11);
            h[1] = -h[0];
            if (be->reduce_double(be->ctx, h, 2, 1)) return -1;
            if (h[0] != -h[1] && be->rank == 0) wrong += 1;
        } else {
            wrong = (double)perf_count_wrong(recvp, sw->exp, n, t);
        }
        if (be->reduce_double(be->ctx, &wrong, 1, 0)) return -1;
        sw->wrong += wrong;
    }
    for (int i = 0; i < o->warmup; i++)
        if (be->run(be->ctx, sendp, recvp, c->param, t, op, o->root)) return -1;
    if (be->barrier(be->ctx)) return -1;
    double t0 = now_s();
    for (int i = 0; i < o->iters; i++)
        if (be->run(be->ctx, sendp, recvp, c->param, t, op, o->root)) return -1;
    double sec = (now_s() - t0) / o->iters;
    if (be->reduce_double(be->ctx, &sec, 1, 1)) return -1;
    double bytes = (double)(c->send > c->recv ? c->send : c->recv) * (double)ts;
    double algbw = sec > 0 ? bytes / sec / 1e9 : 0, busbw = algbw * coll->bus_factor(be->nranks);
    double us = sec * 1e6;
    sw->bw_sum += busbw;
    sw->bw_n++;
    if (be->rank == 0 && sw->row) {
        cJSON *pl = cJSON_AddObjectToObject(sw->row, in_place ? "in_place" : "out_of_place");
        cJSON_AddNumberToObject(pl, "time_us", us);
        cJSON_AddNumberToObject(pl, "algbw_gbps", algbw);
        cJSON_AddNumberToObject(pl, "busbw_gbps", busbw);
        if (o->check)
            cJSON_AddNumberToObject(pl, "wrong", wrong);
        else
            cJSON_AddNullToObject(pl, "wrong");
    }
    if (be->rank == 0) {
        printf(us >= 10000.0 ? "  %7.0f" : us >= 100.0 ? "  %7.1f" : "  %7.2f", us);
        printf("  %6.2f  %6.2f", algbw, busbw);
        if (o->check) printf("  %6.0f", wrong); else printf("  %6s", "N/A");
    }
    return 0;
}

int perf_run(const perf_opts_t *o, const perf_backend_t *be, const perf_coll_t *coll) {
    int types[PPU_NUM_DATATYPES], ops[PPU_NUM_REDOPS], nt = 0, nop = 0, rc = 0;
    if (coll->uses_root && o->root >= be->nranks) {
        if (be->rank == 0) fprintf(stderr, "perf: root %d >= nranks %d\n", o->root, be->nranks);
        return 2;
    }
    for (int t = 0; t < PPU_NUM_DATATYPES; t++) {
        if (o->dtype != PERF_ALL && t != o->dtype) continue;
        if (be->supports && !be->supports(be->ctx, t, coll->uses_op ? PPU_SUM : -1)) {
            if (o->dtype != PERF_ALL) {
                if (be->rank == 0)
                    fprintf(stderr, "perf: datatype %s is not supported by %s\n", perf_type_name(t), be->name);
                return 2;
            }
            if (be->rank == 0) printf("# skipping datatype %s: not supported by %s\n", perf_type_name(t), be->name);
            continue;
        }
        types[nt++] = t;
    }
    if (!coll->uses_op) ops[nop++] = -1;
    else for (int op = 0; op < PPU_NUM_REDOPS; op++) if (o->op == PERF_ALL || op == o->op) ops[nop++] = op;
    if (o->timeout_s > 0) {
        signal(SIGALRM, on_alarm);
        alarm((unsigned)o->timeout_s);
    }
    if (print_header(o, be, coll)) return 1;

    /* Buffers sized for the largest row of any datatype; recv also holds
     * both sides of an in-place call. */
    size_t maxs = 1, maxr = 1;
    for (int k = 0; k < nt; k++) {
        perf_counts_t c;
        size_t ts = perf_type_size(types[k]);
        coll->counts(o->max_bytes / ts, be->nranks, &c);
        if (c.send * ts > maxs) maxs = c.send * ts;
        if (c.recv * ts > maxr) maxr = c.recv * ts;
        if (!coll->no_inplace && c.send * ts > maxr) maxr = c.send * ts;
    }
    sweep_t sw = {NULL, NULL, malloc(maxr), 0, 0, 0, NULL, NULL};
    if (o->json && be->rank == 0)
        sw.rows = cJSON_CreateArray();
    void *regs[2] = {NULL, NULL}; /* -R 1: the buffers' registrations; -R 2: windows */
    int sym = o->reg == 2;
    if (sym && (!be->mem_alloc || !be->win_reg)) {
        fprintf(stderr, "perf: -R 2: this backend has no symmetric memory\n");
        free(sw.exp);
        return 1;
    }
    if (sym) { /* a failure leaves the pointer NULL: reported below */
        void *ps = NULL, *pr = NULL;
        if (be->mem_alloc(be->ctx, maxs, &ps) == 0)
            be->mem_alloc(be->ctx, maxr, &pr);
        sw.send = ps;
        sw.recv = pr;
    } else {
        sw.send = malloc(maxs);
        sw.recv = malloc(maxr);
    }
    if (!sw.send || !sw.recv || !sw.exp) {
        fprintf(stderr, "perf: rank %d: cannot allocate %zu + 2 x %zu bytes\n", be->rank, maxs, maxr);
        rc = 1;
        goto out;
    }
    memset(sw.send, 0, maxs);
    memset(sw.recv, 0, maxr);
    if (sym && (be->win_reg(be->ctx, sw.send, maxs, &regs[0]) ||
                be->win_reg(be->ctx, sw.recv, maxr, &regs[1]))) {
        fprintf(stderr, "perf: rank %d: -R 2: registering the windows failed\n", be->rank);
        rc = 1;
        goto out;
    }
    if (o->reg == 1 && (!be->reg || be->reg(be->ctx, sw.send, maxs, &regs[0]) ||
                        be->reg(be->ctx, sw.recv, maxr, &regs[1]))) {
        fprintf(stderr, "perf: rank %d: -R 1: %s\n", be->rank,
                be->reg ? "registering the buffers failed" : "this backend registers nothing");
        rc = 1;
        goto out;
    }
    for (int k = 0; k < nt && !rc; k++) {
        int t = types[k];
        size_t ts = perf_type_size(t);
        for (int j = 0; j < nop && !rc; j++) {
            if (be->supports && !be->supports(be->ctx, t, ops[j])) {
                if (be->rank == 0) printf("# skipping %s %s: not supported by %s\n",
                                          perf_type_name(t), perf_op_name(ops[j]), be->name);
                continue;
            }
            for (size_t s = o->min_bytes; s <= o->max_bytes && !rc; s = next_size(o, s)) {
                perf_counts_t c;
                size_t count = s / ts;
                if (count == 0) continue; /* below one element */
                coll->counts(count, be->nranks, &c);
                if (c.param == 0) continue;
                if (be->rank == 0)
                    printf("%12zu  %12zu  %8s  %6s  %6d", (c.send > c.recv ? c.send : c.recv) * ts,
                           c.param, perf_type_name(t), perf_op_name(ops[j]),
                           coll->uses_root ? o->root : -1);
                if (sw.rows) {
                    sw.row = cJSON_CreateObject();
                    cJSON_AddNumberToObject(sw.row, "size", (double)((c.send > c.recv ? c.send : c.recv) * ts));
                    cJSON_AddNumberToObject(sw.row, "count", (double)c.param);
                    cJSON_AddStringToObject(sw.row, "type", perf_type_name(t));
                    cJSON_AddStringToObject(sw.row, "redop", perf_op_name(ops[j]));
                    cJSON_AddNumberToObject(sw.row, "root", coll->uses_root ? o->root : -1);
                    cJSON_AddItemToArray(sw.rows, sw.row);
                }
                for (int place = 0; place < 2 && !rc; place++) {
                    if (place && coll->no_inplace) {
                        if (be->rank == 0) printf("  %7s  %6s  %6s  %6s", "N/A", "N/A", "N/A", "N/A");
                        continue;
                    }
                    if (run_place(o, be, coll, &sw, &c, t, ops[j], place)) {
                        fprintf(stderr, "\nperf: rank %d: %s failed (%zu bytes %s %s)\n", be->rank,
                                coll->name, s, perf_type_name(t), perf_op_name(ops[j]));
                        rc = 1;
                    }
                }
                if (be->rank == 0) { printf("\n"); fflush(stdout); }
            }
        }
    }
    if (!rc && be->rank == 0) {
        printf("# Out of bounds values : %.0f %s\n", sw.wrong, sw.wrong > 0 ? "FAILED" : "OK");
        printf("# Avg bus bandwidth    : %g\n#\n", sw.bw_n ? sw.bw_sum / (double)sw.bw_n : 0.0);
        fflush(stdout);
    }
    if (!rc && sw.wrong > 0) rc = 1;
    if (!rc && sw.rows && write_json(o, be, coll, sw.rows, sw.bw_n ? sw.bw_sum / (double)sw.bw_n : 0))
        rc = 1;
    sw.rows = NULL; /* write_json took it */
out:
    cJSON_Delete(sw.rows);
    for (int k = 0; k < 2; k++)
        if (regs[k] && (sym ? be->win_dereg : be->dereg)(be->ctx, regs[k]) && !rc) rc = 1;
    if (sym) {
        if (sw.send) be->mem_free(be->ctx, sw.send);
        if (sw.recv) be->mem_free(be->ctx, sw.recv);
        sw.send = sw.recv = NULL;
    }
    free(sw.send);
    free(sw.recv);
    free(sw.exp);
    if (o->timeout_s > 0) alarm(0);
    return rc;
}

void perf_kill_ranks(const pid_t *pids, int n, int sig)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], sig);
}

int perf_fork_ranks(const char *prog, pid_t *pids, int n, int (*rank_main)(int rank, void *arg),
                    void *arg)
{
    fflush(stdout);
    fflush(stderr);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "%s: fork of rank %d failed: %s\n", prog, i, strerror(errno));
            perf_kill_ranks(pids, n, SIGKILL);
            return 1;
        }
        if (pid == 0) {
            int rc = rank_main(i, arg);
            fflush(stdout);
            fflush(stderr);
            _exit(rc);
        }
        pids[i] = pid;
    }
    return 0;
}

static double since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + 1e-9 * (double)(now.tv_nsec - t0->tv_nsec);
}

int perf_wait_ranks(const char *prog, pid_t *pids, int n, double guard_s,
                    volatile sig_atomic_t *stop)
{
    enum { FAIL_GRACE_S = 10 }; /* after one rank fails, the others get this long */
    int live = 0, rc = 0, killed = 0;
    for (int i = 0; i < n; i++)
        live += pids[i] > 0;
    struct timespec t0, nap = {0, 10 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double deadline = guard_s;
    while (live > 0) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid < 0 && errno != EINTR)
            break;
        if (pid > 0) {
            int i = 0;
            while (i < n && pids[i] != pid)
                i++;
            if (i == n)
                continue;
            pids[i] = 0;
            live--;
            int bad = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
            if (bad && !killed) {
                if (WIFEXITED(st))
                    fprintf(stderr, "%s: rank %d (pid %d) exited with code %d\n", prog, i,
                            (int)pid, WEXITSTATUS(st));
                else
                    fprintf(stderr, "%s: rank %d (pid %d) killed by signal %d (%s)\n", prog, i,
                            (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
            }
            if (bad && rc == 0) {
                rc = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
                if (since(&t0) + FAIL_GRACE_S < deadline)
                    deadline = since(&t0) + FAIL_GRACE_S;
            }
            continue;
        }
        if (!killed && stop && *stop) {
            fprintf(stderr, "%s: %s; killing %d rank(s)\n", prog, strsignal(*stop), live);
            perf_kill_ranks(pids, n, SIGKILL);
            killed = 1;
            if (rc == 0)
                rc = 128 + *stop;
        }
        double el = since(&t0);
        if (!killed && el > deadline) {
            fprintf(stderr, "%s: %d rank(s) still running after %.0f s; killing them\n", prog,
                    live, el);
            perf_kill_ranks(pids, n, SIGKILL);
            killed = 1;
            if (rc == 0)
                rc = 1;
        }
        nanosleep(&nap, NULL);
    }
    return rc;
}
