/* Ranks as threads and streams, without Criterion (whose arena cannot start
 * under ThreadSanitizer): the check a -DPPU_SANITIZE=thread build runs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

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

int main(void)
{
    if (ppu_comm_init_all(comms, NT) != PPU_SUCCESS) {
        printf("threads_plain: init: %s\n0 passed, 1 failed\n", ppu_get_last_error(NULL));
        return 1;
    }
    int good = 1;
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
