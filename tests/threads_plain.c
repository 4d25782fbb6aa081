/* Ranks as threads and streams, without Criterion (whose arena cannot start
 * under ThreadSanitizer): the check a -DPPU_SANITIZE=thread build runs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ppuccl.h"

#define NT 4
#define COUNT 200003

static ppu_comm_t comms[NT];

static void *rank_thread(void *p)
{
    int r = (int)(long)p;
    float *b = malloc(COUNT * sizeof *b);
    for (int i = 0; i < COUNT; i++)
        b[i] = (float)r;
    int ok = ppu_allreduce(b, b, COUNT, PPU_FLOAT32, PPU_SUM, comms[r], NULL) == PPU_SUCCESS &&
             b[0] == 6 && b[COUNT - 1] == 6; /* 0+1+2+3 */
    free(b);
    return (void *)(long)ok;
}

/* ppu_get_last_error(comm) while another thread's calls on comm fail with
 * other sentences: every text read is one whole sentence (TSan: no race). */
static const char *sentence[2];
static volatile int writing = 1;

static void *fail_thread(void *p)
{
    (void)p;
    float a[4];
    for (int i = 0; i < 20000; i++)
        ppu_allreduce(i & 1 ? a : NULL, a, i & 1 ? (size_t)-1 / 2 : 4, PPU_FLOAT32, PPU_SUM,
                      comms[0], NULL);
    __atomic_store_n(&writing, 0, __ATOMIC_RELEASE);
    return NULL;
}

static int last_error_is_stable(void)
{
    float a[4];
    ppu_allreduce(NULL, a, 4, PPU_FLOAT32, PPU_SUM, comms[0], NULL);
    sentence[0] = strdup(ppu_get_last_error(comms[0]));
    ppu_allreduce(a, a, (size_t)-1 / 2, PPU_FLOAT32, PPU_SUM, comms[0], NULL);
    sentence[1] = strdup(ppu_get_last_error(comms[0]));
    pthread_t t;
    pthread_create(&t, NULL, fail_thread, NULL);
    int torn = 0, reads = 0;
    while (__atomic_load_n(&writing, __ATOMIC_ACQUIRE) || reads == 0) {
        const char *m = ppu_get_last_error(comms[0]);
        char copy[512];
        snprintf(copy, sizeof copy, "%s", m);
        torn += strcmp(copy, sentence[0]) != 0 && strcmp(copy, sentence[1]) != 0;
        torn += strcmp(copy, m) != 0; /* the text did not change under us */
        reads++;
    }
    pthread_join(t, NULL);
    if (torn)
        printf("threads_plain: %d of %d reads of the last error were torn\n", torn, reads);
    int differ = strcmp(sentence[0], sentence[1]) != 0;
    free((void *)sentence[0]);
    free((void *)sentence[1]);
    return torn == 0 && differ;
}

int main(void)
{
    if (ppu_comm_init_all(comms, NT) != PPU_SUCCESS) {
        printf("threads_plain: init: %s\n0 passed, 1 failed\n", ppu_get_last_error(NULL));
        return 1;
    }
    int good = last_error_is_stable();
    pthread_t t[NT];
    for (int r = 0; r < NT; r++)
        pthread_create(&t[r], NULL, rank_thread, (void *)(long)r);
    for (int r = 0; r < NT; r++) {
        void *ok;
        pthread_join(t[r], &ok);
        good &= (int)(long)ok;
    }
    /* One thread drives all ranks through streams: 1 -> 4 -> 16 -> 64. */
    ppu_stream_t s[NT];
    double *b[NT];
    for (int r = 0; r < NT; r++) {
        ppu_stream_create(&s[r]);
        b[r] = malloc(COUNT * sizeof(double));
        for (int i = 0; i < COUNT; i++)
            b[r][i] = 1;
    }
    for (int it = 0; it < 3; it++)
        for (int r = 0; r < NT; r++)
            ppu_allreduce(b[r], b[r], COUNT, PPU_FLOAT64, PPU_SUM, comms[r], s[r]);
    for (int r = 0; r < NT; r++) {
        good &= ppu_stream_synchronize(s[r]) == PPU_SUCCESS && b[r][7] == 64 && b[r][COUNT - 1] == 64;
        ppu_stream_destroy(s[r]);
        free(b[r]);
        ppu_comm_destroy(comms[r]);
    }
    printf("threads_plain: %s\n", good ? "1 passed, 0 failed" : "0 passed, 1 failed");
    return !good;
}
