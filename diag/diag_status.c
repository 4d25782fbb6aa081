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

#include <cjson/cJSON.h>

#include "../src/comm.h"
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

int diag_status_main(int argc, char **argv)
{
    const char *json = NULL;
    double interval = 0.5;
    static const struct option lo[] = {{"json", 1, 0, 'j'}, {"interval", 1, 0, 'i'},
                                       {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'j': json = optarg; break;
        case 'i':
            interval = strtod(optarg, &end);
            if (*end || !(interval >= 0.05 && interval <= 60)) {
                fprintf(stderr, "ppu-diag status: --interval %s: give 0.05 to 60 seconds\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            printf("usage: ppu-diag status [--interval S] [--json FILE]\n"
                   "  every ppuccl communicator of this user on this host: the ranks holding\n"
                   "  the others up first, then each rank's call and the peer it waits on.\n"
                   "  --interval S  heartbeats are compared S seconds apart (0.5)\n"
                   "  --json FILE   the same as JSON\n"
                   "exit 0: nothing stuck, 1: a rank holds others up, 2: bad usage\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ppu-diag status: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    struct ppu_status_view *v = NULL;
    int n = ppu_status_scan(0, (int)(interval * 1000), &v);
    uint64_t now = ppu_now_ns();
    qsort(v, (size_t)n, sizeof *v, cmp_comm);
    cJSON *root = cJSON_CreateObject(), *comms = cJSON_AddArrayToObject(root, "communicators");
    int stuck_total = 0, ncomm = 0;
    if (n == 0)
        printf("no ppuccl communicator of this user runs on this host (or PPU_STATUS=0)\n");
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].rec.comm_id == v[i].rec.comm_id)
            j++;
        uint64_t maxseq = 0;
        for (int k = i; k < j; k++)
            if (v[k].rec.coll_seq > maxseq)
                maxseq = v[k].rec.coll_seq;
        int dead = 0;
        for (int k = i; k < j; k++)
            dead += !v[k].alive;
        if (dead == j - i) {
            /* a job that ended without destroying its communicator: only
             * records of gone processes of this PID namespace get here */
            printf("%scommunicator %016llx: ended (its %d rank(s) here are gone); stale records "
                   "removed\n", ncomm++ ? "\n" : "", (unsigned long long)v[i].rec.comm_id, j - i);
            for (int k = i; k < j; k++) {
                char name[160];
                snprintf(name, sizeof name, "/%s", v[k].file);
                shm_unlink(name);
            }
            i = j;
            continue;
        }
        cJSON *cj = cJSON_CreateObject();
        char id[20];
        snprintf(id, sizeof id, "%016llx", (unsigned long long)v[i].rec.comm_id);
        cJSON_AddStringToObject(cj, "id", id);
        cJSON_AddNumberToObject(cj, "nranks", v[i].rec.nranks);
        cJSON_AddNumberToObject(cj, "ranks_here", j - i);
        cJSON *ranks = cJSON_AddArrayToObject(cj, "ranks");
        for (int k = i; k < j; k++)
            cJSON_AddItemToArray(ranks, rank_json(&v[k], maxseq, now));
        size_t len = 1024 + (size_t)(j - i) * 640;
        char *buf = malloc(len);
        int named = buf ? ppu_status_explain(v + i, j - i, now, buf, len) : 0;
        if (buf) {
            printf("%s%s", ncomm ? "\n" : "", buf);
            cJSON_AddStringToObject(cj, "report", buf);
        }
        free(buf);
        cJSON_AddNumberToObject(cj, "holding_up", named);
        cJSON_AddItemToArray(comms, cj);
        stuck_total += named;
        ncomm++;
        i = j;
    }
    int rc = stuck_total ? 1 : 0;
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
    free(v);
    return rc;
}
