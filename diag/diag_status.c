/* ppu-diag status: the ppuccl communicators of this user on this host,
 * read from their status board (src/status.h) without touching the job:
 * per communicator, the ranks holding the others up first (dead, stopped,
 * not answering, failed, behind), then every rank's call and wait.
 * Exit 0: nothing stuck, 1: some rank holds others up, 2: bad usage. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../src/comm.h"
#include "../src/util/hash.h"
#include "../src/util/socket.h"
#include "diag.h"

static int cmp_comm(const void *x, const void *y)
{
    const struct ppu_status_view *a = x, *b = y;
    if (a->rec.comm_id != b->rec.comm_id)
        return a->rec.comm_id < b->rec.comm_id ? -1 : 1;
    return a->rec.rank - b->rec.rank;
}

static cJSON *rank_json(const struct ppu_status_view *v, uint64_t maxseq, uint64_t now)
{
    const struct ppu_status_rec *r = &v->rec;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rank", r->rank);
    cJSON_AddNumberToObject(o, "pid", r->pid);
    cJSON_AddStringToObject(o, "host", r->host);
    cJSON_AddStringToObject(o, "state", r->state == PPU_ST_IDLE      ? "idle"
                                        : r->state == PPU_ST_IN_CALL ? "in_call"
                                                                     : "failed");
    cJSON_AddNumberToObject(o, "coll_seq", (double)r->coll_seq);
    if (r->state != PPU_ST_IDLE) {
        cJSON_AddStringToObject(o, "coll", r->coll >= 0 && r->coll < PPU_NUM_COLLS
                                               ? ppu_coll_name(r->coll) : "?");
        cJSON_AddNumberToObject(o, "count", (double)r->count);
        cJSON_AddStringToObject(o, "datatype", ppu_datatype_name((ppu_datatype_t)r->datatype));
        if (r->call_since_ns && now > r->call_since_ns)
            cJSON_AddNumberToObject(o, "in_call_s", (double)(now - r->call_since_ns) / 1e9);
    }
    if (r->state == PPU_ST_IN_CALL && r->wait_kind != PPU_WAIT_NONE) {
        static const char *kinds[] = {"", "data", "slot", "drain"};
        cJSON_AddStringToObject(o, "waits_for", kinds[r->wait_kind]);
        cJSON_AddNumberToObject(o, "waits_on", r->wait_peer);
        char link[32];
        if (r->wait_kind == PPU_WAIT_DATA)
            snprintf(link, sizeof link, "%d->%d", r->wait_peer, r->rank);
        else
            snprintf(link, sizeof link, "%d->%d", r->rank, r->wait_peer);
        cJSON_AddStringToObject(o, "link", link);
    }
    if (r->state == PPU_ST_FAILED)
        cJSON_AddStringToObject(o, "error", r->last_error);
    const char *why = ppu_status_stuck(v, maxseq);
    if (why)
        cJSON_AddStringToObject(o, "stuck", why);
    cJSON_AddBoolToObject(o, "heartbeat", v->moved);
    cJSON_AddBoolToObject(o, "alive", v->alive);
    return o;
}

/* Every communicator of this user on this host as JSON (its "report" is
 * the text ppu-diag status prints); *stuck: ranks holding others up. */
static cJSON *collect(double interval, int *stuck)
{
    struct ppu_status_view *v = NULL;
    int n = ppu_status_scan(0, (int)(interval * 1000), &v);
    uint64_t now = ppu_now_ns();
    if (n > 0)
        qsort(v, (size_t)n, sizeof *v, cmp_comm);
    cJSON *root = cJSON_CreateObject(), *comms = cJSON_AddArrayToObject(root, "communicators");
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    cJSON_AddStringToObject(root, "host", host);
    *stuck = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].rec.comm_id == v[i].rec.comm_id)
            j++;
        uint64_t maxseq = 0;
        int dead = 0;
        for (int k = i; k < j; k++) {
            maxseq = v[k].rec.coll_seq > maxseq ? v[k].rec.coll_seq : maxseq;
            dead += !v[k].alive;
        }
        char id[20];
        snprintf(id, sizeof id, "%016llx", (unsigned long long)v[i].rec.comm_id);
        cJSON *cj = cJSON_CreateObject();
        cJSON_AddStringToObject(cj, "id", id);
        cJSON_AddNumberToObject(cj, "nranks", v[i].rec.nranks);
        cJSON_AddNumberToObject(cj, "ranks_here", j - i);
        cJSON *ranks = cJSON_AddArrayToObject(cj, "ranks");
        for (int k = i; k < j; k++)
            cJSON_AddItemToArray(ranks, rank_json(&v[k], maxseq, now));
        int named = 0;
        if (dead == j - i) {
            /* a job that ended without destroying its communicator: only
             * records of gone processes of this PID namespace get here */
            char line[160];
            snprintf(line, sizeof line, "communicator %s: ended (its %d rank(s) here are gone); "
                     "stale records removed\n", id, j - i);
            cJSON_AddStringToObject(cj, "report", line);
            cJSON_AddBoolToObject(cj, "ended", 1);
            for (int k = i; k < j; k++) {
                char name[160];
                snprintf(name, sizeof name, "/%s", v[k].file);
                shm_unlink(name);
            }
        } else {
            size_t len = 1024 + (size_t)(j - i) * 640;
            char *buf = malloc(len);
            named = buf ? ppu_status_explain(v + i, j - i, now, buf, len) : 0;
            cJSON_AddStringToObject(cj, "report", buf ? buf : "out of memory\n");
            free(buf);
        }
        cJSON_AddNumberToObject(cj, "holding_up", named);
        cJSON_AddItemToArray(comms, cj);
        *stuck += named;
        i = j;
    }
    free(v);
    return root;
}

/* The text of every communicator's report; the count holding others up. */
static int print_reports(const cJSON *root)
{
    const cJSON *comms = cJSON_GetObjectItemCaseSensitive(root, "communicators"), *c;
    int k = 0, stuck = 0;
    cJSON_ArrayForEach(c, comms) {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(c, "report");
        const cJSON *held = cJSON_GetObjectItemCaseSensitive(c, "holding_up");
        if (cJSON_IsString(rep))
            printf("%s%s", k++ ? "\n" : "", rep->valuestring);
        if (cJSON_IsNumber(held))
            stuck += held->valueint;
    }
    if (!k)
        printf("no ppuccl communicator of this user runs on this host (or PPU_STATUS=0)\n");
    return stuck;
}

/* ---- a host's records over the network: --serve and --addr ----
 * Both ends hold the same token (PPU_DIAG_TOKEN, else the owner-only file
 * ~/.ppuccl/diag-token, which --serve creates); the client proves it knows
 * it by sending "PPUDIAG1" and the token's XXH128 in hex (40 bytes, the
 * whole request); the server compares in constant time and answers with
 * an 8-byte big-endian length and the JSON, then closes. A client that
 * sends anything else, or too slowly, is dropped: nothing it sends is
 * parsed. */
#define RELAY_MAGIC "PPUDIAG1"
#define RELAY_REQ 40
#define RELAY_MAX_REPLY (64u << 20)

static int token_proof(char out[33], int create)
{
    char tok[256] = "";
    const char *env = getenv("PPU_DIAG_TOKEN");
    if (env && *env) {
        snprintf(tok, sizeof tok, "%s", env);
    } else {
        const char *home = getenv("HOME");
        char dir[512], path[600];
        snprintf(dir, sizeof dir, "%s/.ppuccl", home && *home ? home : "/tmp");
        snprintf(path, sizeof path, "%s/diag-token", dir);
        FILE *f = fopen(path, "r");
        if (!f && create) {
            uint8_t r[32];
            mkdir(dir, 0700);
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
            if (fd >= 0 && getrandom(r, sizeof r, 0) == (ssize_t)sizeof r) {
                for (int i = 0; i < 32; i++)
                    snprintf(tok + 2 * i, 3, "%02x", r[i]);
                ssize_t w = write(fd, tok, 64);
                (void)w;
            }
            if (fd >= 0)
                close(fd);
            f = fopen(path, "r");
        }
        struct stat st;
        if (!f || fstat(fileno(f), &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
            fprintf(stderr, "ppu-diag status: no token: set PPU_DIAG_TOKEN, or give both hosts "
                    "the owner-only file %s (ppu-diag status --serve makes one)\n", path);
            if (f)
                fclose(f);
            return -1;
        }
        if (!fgets(tok, sizeof tok, f))
            tok[0] = '\0';
        fclose(f);
        tok[strcspn(tok, "\r\n")] = '\0';
    }
    if (!tok[0]) {
        fprintf(stderr, "ppu-diag status: the token is empty\n");
        return -1;
    }
    uint8_t h[16];
    ppu_hash128(tok, strlen(tok), h);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    return 0;
}

static int serve(const char *where, double interval, int max_requests)
{
    char proof[33];
    if (token_proof(proof, 1) != 0)
        return 2;
    union ppu_sockaddr addr;
    char spec[300];
    snprintf(spec, sizeof spec, strchr(where, ':') ? "%s" : "127.0.0.1:%s", where);
    int lfd;
    if (ppu_socket_parse(spec, &addr) != PPU_SUCCESS || ppu_socket_listen(&addr, &lfd) != PPU_SUCCESS) {
        fprintf(stderr, "ppu-diag status: --serve %s: cannot listen there\n", where);
        return 2;
    }
    char shown[128];
    ppu_socket_str(&addr, shown, sizeof shown);
    printf("ppu-diag status: serving this host's records at %s\n", shown);
    fflush(stdout);
    for (int served = 0; max_requests <= 0 || served < max_requests;) {
        int fd;
        union ppu_sockaddr peer;
        if (ppu_socket_accept(lfd, ppu_now_ns() + 3600ull * 1000000000ull, &fd, &peer) !=
            PPU_SUCCESS)
            continue;
        char req[RELAY_REQ];
        char who[128];
        ppu_socket_str(&peer, who, sizeof who);
        int ok = ppu_socket_recv(fd, req, sizeof req, ppu_now_ns() + 2000000000ull) == PPU_SUCCESS &&
                 (memcmp(req, RELAY_MAGIC, 8) == 0) & ppu_ct_equal(req + 8, proof, 32);
        if (!ok) {
            fprintf(stderr, "ppu-diag status: dropped a request from %s (no valid token)\n", who);
            close(fd);
            continue;
        }
        int stuck;
        cJSON *root = collect(interval, &stuck);
        char *text = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        size_t len = text ? strlen(text) : 0;
        uint8_t hdr[8];
        for (int i = 0; i < 8; i++)
            hdr[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        uint64_t dl = ppu_now_ns() + 10000000000ull;
        if (ppu_socket_send(fd, hdr, 8, dl) == PPU_SUCCESS && len)
            ppu_socket_send(fd, text, len, dl);
        cJSON_free(text);
        close(fd);
        served++;
    }
    close(lfd);
    return 0;
}

static cJSON *query(const char *where)
{
    char proof[33];
    if (token_proof(proof, 0) != 0)
        return NULL;
    union ppu_sockaddr addr;
    int fd;
    uint64_t dl = ppu_now_ns() + 20000000000ull;
    if (ppu_socket_parse(where, &addr) != PPU_SUCCESS ||
        ppu_socket_connect(&addr, ppu_now_ns() + 5000000000ull, &fd) != PPU_SUCCESS) {
        fprintf(stderr, "ppu-diag status: --addr %s: cannot connect (is ppu-diag status --serve "
                "running there?)\n", where);
        return NULL;
    }
    char req[RELAY_REQ];
    memcpy(req, RELAY_MAGIC, 8);
    memcpy(req + 8, proof, 32);
    uint8_t hdr[8];
    cJSON *root = NULL;
    if (ppu_socket_send(fd, req, sizeof req, dl) == PPU_SUCCESS &&
        ppu_socket_recv(fd, hdr, 8, dl) == PPU_SUCCESS) {
        uint64_t len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | hdr[i];
        char *text = len <= RELAY_MAX_REPLY ? malloc(len + 1) : NULL;
        if (text && ppu_socket_recv(fd, text, len, dl) == PPU_SUCCESS) {
            text[len] = '\0';
            root = cJSON_Parse(text);
        }
        free(text);
    }
    close(fd);
    if (!root)
        fprintf(stderr, "ppu-diag status: --addr %s: no answer (a wrong token is dropped "
                "without one)\n", where);
    return root;
}

int diag_status_main(int argc, char **argv)
{
    const char *json = NULL, *serve_at = NULL, *addr = NULL;
    double interval = 0.5;
    int max_req = 0;
    static const struct option lo[] = {{"json", 1, 0, 'j'}, {"interval", 1, 0, 'i'},
                                       {"serve", 1, 0, 's'}, {"addr", 1, 0, 'a'},
                                       {"requests", 1, 0, 'n'}, {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'j': json = optarg; break;
        case 's': serve_at = optarg; break;
        case 'a': addr = optarg; break;
        case 'n':
            max_req = (int)strtol(optarg, &end, 10);
            if (*end || max_req < 1) {
                fprintf(stderr, "ppu-diag status: --requests %s: give 1 or more\n", optarg);
                return 2;
            }
            break;
        case 'i':
            interval = strtod(optarg, &end);
            if (*end || !(interval >= 0.05 && interval <= 60)) {
                fprintf(stderr, "ppu-diag status: --interval %s: give 0.05 to 60 seconds\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            printf("usage: ppu-diag status [--interval S] [--json FILE] [--addr HOST:PORT]\n"
                   "       ppu-diag status --serve [HOST:]PORT [--requests N]\n"
                   "  every ppuccl communicator of this user on this host: the ranks holding\n"
                   "  the others up first, then each rank's call and the peer it waits on.\n"
                   "  --interval S     heartbeats are compared S seconds apart (0.5)\n"
                   "  --json FILE      the same as JSON\n"
                   "  --serve ADDR     answer --addr queries for this host's records (token:\n"
                   "                   PPU_DIAG_TOKEN or ~/.ppuccl/diag-token, made if missing)\n"
                   "  --addr HOST:PORT ask the host where --serve runs, with the same token\n"
                   "exit 0: nothing stuck, 1: a rank holds others up, 2: bad usage or no answer\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ppu-diag status: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (serve_at && addr) {
        fprintf(stderr, "ppu-diag status: give --serve or --addr, not both\n");
        return 2;
    }
    if (serve_at)
        return serve(serve_at, interval, max_req);
    int stuck = 0;
    cJSON *root = addr ? query(addr) : collect(interval, &stuck);
    if (!root)
        return 2;
    stuck = print_reports(root);
    int rc = stuck ? 1 : 0;
    if (json) {
        char *text = cJSON_Print(root);
        FILE *f = text ? fopen(json, "w") : NULL;
        if (!f || fputs(text, f) < 0) {
            fprintf(stderr, "ppu-diag status: --json %s: cannot write\n", json);
            rc = 2;
        }
        if (f)
            fclose(f);
        cJSON_free(text);
    }
    cJSON_Delete(root);
    return rc;
}
