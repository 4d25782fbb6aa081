/* Hostile input to every public collective, to split and to groups: each
 * bad call returns PPU_INVALID_ARGUMENT or PPU_INVALID_USAGE with a
 * sentence naming what is wrong, touches no peer, and leaves the
 * communicator usable (a valid call afterwards is checked). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "ppuccl.h"

static ppu_comm_t msg_comm; /* whose last error the checks read */

#define EXPECT_FAIL(call, code, word)                                                      \
    do {                                                                                   \
        ppu_result_t r_ = (call);                                                          \
        cr_expect_eq(r_, code, "%s returned %d (%s), expected %d", #call, r_,            \
                     ppu_get_error_string(r_), code);                                      \
        cr_expect(strstr(ppu_get_last_error(msg_comm), word) != NULL,                      \
                  "%s: message '%s' does not name '%s'", #call,                           \
                  ppu_get_last_error(msg_comm), word);                                     \
    } while (0)

/* Two ranks as threads of this process. */
static void two_comms(ppu_comm_t c[2])
{
    cr_assert_eq(ppu_comm_init_all(c, 2), PPU_SUCCESS, "%s", ppu_get_last_error(NULL));
}

struct both {
    ppu_comm_t comm;
    int rank;
    ppu_result_t r;
    float in[8], out[16];
};

/* A valid all-reduce on both ranks (threads): the comm still works. */
static void *allreduce_thread(void *p)
{
    struct both *b = p;
    for (int i = 0; i < 8; i++)
        b->in[i] = (float)(b->rank + i);
    b->r = ppu_allreduce(b->in, b->out, 8, PPU_FLOAT32, PPU_SUM, b->comm, NULL);
    return NULL;
}

static void still_works(ppu_comm_t c[2])
{
    struct both b[2] = {{c[0], 0, PPU_INTERNAL_ERROR, {0}, {0}},
                        {c[1], 1, PPU_INTERNAL_ERROR, {0}, {0}}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, allreduce_thread, &b[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(b[k].r, PPU_SUCCESS, "%s", ppu_get_last_error(c[k]));
        for (int i = 0; i < 8; i++)
            cr_expect_eq(b[k].out[i], (float)(1 + 2 * i));
    }
}

Test(validate, rooted_and_gathering_collectives)
{
    ppu_comm_t c[2];
    two_comms(c);
    ppu_comm_t comm = c[0];
    msg_comm = comm;
    float a[64] = {0}, b[64] = {0};
    EXPECT_FAIL(ppu_broadcast(a, b, 8, PPU_FLOAT32, 2, comm, NULL), PPU_INVALID_ARGUMENT, "root is 2");
    EXPECT_FAIL(ppu_broadcast(a, b, 8, PPU_FLOAT32, -1, comm, NULL), PPU_INVALID_ARGUMENT, "root is -1");
    EXPECT_FAIL(ppu_broadcast(NULL, b, 8, PPU_FLOAT32, 0, comm, NULL), PPU_INVALID_ARGUMENT, "sendbuf");
    EXPECT_FAIL(ppu_broadcast(a, NULL, 8, PPU_FLOAT32, 0, comm, NULL), PPU_INVALID_ARGUMENT, "recvbuf");
    EXPECT_FAIL(ppu_broadcast(a, b, 8, (ppu_datatype_t)99, 0, comm, NULL), PPU_INVALID_ARGUMENT, "datatype 99");
    EXPECT_FAIL(ppu_broadcast(a, a + 1, 8, PPU_FLOAT32, 0, comm, NULL), PPU_INVALID_ARGUMENT, "overlap");
    EXPECT_FAIL(ppu_reduce(a, b, 8, PPU_FLOAT32, (ppu_redop_t)7, 0, comm, NULL), PPU_INVALID_ARGUMENT, "op 7");
    EXPECT_FAIL(ppu_reduce(a, b, 8, PPU_FLOAT32, PPU_SUM, 5, comm, NULL), PPU_INVALID_ARGUMENT, "root is 5");
    EXPECT_FAIL(ppu_reduce(a, NULL, 8, PPU_FLOAT32, PPU_SUM, 0, comm, NULL), PPU_INVALID_ARGUMENT, "recvbuf");
    EXPECT_FAIL(ppu_reduce(NULL, b, 8, PPU_FLOAT32, PPU_SUM, 1, comm, NULL), PPU_INVALID_ARGUMENT, "sendbuf");
    EXPECT_FAIL(ppu_allgather(a, NULL, 8, PPU_INT32, comm, NULL), PPU_INVALID_ARGUMENT, "recvbuf");
    EXPECT_FAIL(ppu_allgather(a, b, SIZE_MAX / 4, PPU_INT32, comm, NULL), PPU_INVALID_ARGUMENT, "overflow");
    EXPECT_FAIL(ppu_allgather(a, a + 4, 8, PPU_INT32, comm, NULL), PPU_INVALID_ARGUMENT, "overlap");
    EXPECT_FAIL(ppu_reduce_scatter(NULL, b, 8, PPU_FLOAT64, PPU_MAX, comm, NULL), PPU_INVALID_ARGUMENT, "sendbuf");
    EXPECT_FAIL(ppu_reduce_scatter(a, b, 8, PPU_FLOAT64, (ppu_redop_t)-2, comm, NULL), PPU_INVALID_ARGUMENT, "op -2");
    EXPECT_FAIL(ppu_reduce_scatter(a, a + 3, 4, PPU_FLOAT32, PPU_SUM, comm, NULL), PPU_INVALID_ARGUMENT, "overlap");
    EXPECT_FAIL(ppu_alltoall(a, b, 8, (ppu_datatype_t)-3, comm, NULL), PPU_INVALID_ARGUMENT, "datatype -3");
    EXPECT_FAIL(ppu_alltoall(a, a, 8, PPU_FLOAT32, comm, NULL), PPU_INVALID_ARGUMENT, "overlap");
    EXPECT_FAIL(ppu_alltoall(a, NULL, 8, PPU_FLOAT32, comm, NULL), PPU_INVALID_ARGUMENT, "recvbuf");
    size_t cnt[2] = {2, 2}, dsp[2] = {0, 2}, big[2] = {SIZE_MAX / 2, 1}, self_bad[2] = {3, 2};
    EXPECT_FAIL(ppu_alltoallv(a, NULL, dsp, b, cnt, dsp, PPU_FLOAT32, comm, NULL), PPU_INVALID_ARGUMENT, "sendcounts");
    EXPECT_FAIL(ppu_alltoallv(a, cnt, dsp, b, cnt, NULL, PPU_FLOAT32, comm, NULL), PPU_INVALID_ARGUMENT, "rdispls");
    EXPECT_FAIL(ppu_alltoallv(a, big, dsp, b, cnt, dsp, PPU_FLOAT32, comm, NULL), PPU_INVALID_ARGUMENT, "overflows");
    EXPECT_FAIL(ppu_alltoallv(a, self_bad, dsp, b, cnt, dsp, PPU_FLOAT32, comm, NULL), PPU_INVALID_ARGUMENT, "sends itself 3");
    EXPECT_FAIL(ppu_alltoallv(a, cnt, dsp, NULL, cnt, dsp, PPU_FLOAT32, comm, NULL), PPU_INVALID_ARGUMENT, "recvbuf");
    EXPECT_FAIL(ppu_alltoallv(a, cnt, dsp, b, cnt, dsp, (ppu_datatype_t)12, comm, NULL), PPU_INVALID_ARGUMENT, "datatype 12");
    EXPECT_FAIL(ppu_send(a, 8, PPU_FLOAT32, 2, comm, NULL), PPU_INVALID_ARGUMENT, "peer is 2");
    EXPECT_FAIL(ppu_send(NULL, 8, PPU_FLOAT32, 1, comm, NULL), PPU_INVALID_ARGUMENT, "sendbuf");
    EXPECT_FAIL(ppu_recv(a, 8, PPU_FLOAT32, -1, comm, NULL), PPU_INVALID_ARGUMENT, "peer is -1");
    EXPECT_FAIL(ppu_recv(NULL, 8, PPU_FLOAT32, 1, comm, NULL), PPU_INVALID_ARGUMENT, "recvbuf");
    EXPECT_FAIL(ppu_send(a, 8, PPU_FLOAT32, 0, comm, NULL), PPU_INVALID_USAGE, "same group");
    msg_comm = NULL;
    EXPECT_FAIL(ppu_barrier(NULL, NULL), PPU_INVALID_ARGUMENT, "ppu_barrier: comm");
    EXPECT_FAIL(ppu_alltoall(a, b, 1, PPU_FLOAT32, NULL, NULL), PPU_INVALID_ARGUMENT, "ppu_alltoall: comm");
    EXPECT_FAIL(ppu_reduce_scatter(a, b, 1, PPU_FLOAT32, PPU_SUM, NULL, NULL), PPU_INVALID_ARGUMENT, "comm");
    EXPECT_FAIL(ppu_recv(a, 1, PPU_FLOAT32, 0, NULL, NULL), PPU_INVALID_ARGUMENT, "comm");
    still_works(c);
    for (int i = 0; i < 2; i++)
        cr_expect_eq(ppu_comm_destroy(c[i]), PPU_SUCCESS);
}

Test(validate, split_arguments)
{
    ppu_comm_t c[2], n;
    two_comms(c);
    msg_comm = c[0];
    EXPECT_FAIL(ppu_comm_split(c[0], 0, 0, NULL), PPU_INVALID_ARGUMENT, "newcomm");
    EXPECT_FAIL(ppu_comm_split(c[0], -5, 0, &n), PPU_INVALID_ARGUMENT, "color is -5");
    ppu_group_start();
    EXPECT_FAIL(ppu_comm_split(c[0], 0, 0, &n), PPU_INVALID_USAGE, "inside a group");
    cr_expect_eq(ppu_group_end(), PPU_SUCCESS);
    msg_comm = NULL;
    EXPECT_FAIL(ppu_comm_split(NULL, 0, 0, &n), PPU_INVALID_ARGUMENT, "comm");
    still_works(c);
    for (int i = 0; i < 2; i++)
        cr_expect_eq(ppu_comm_destroy(c[i]), PPU_SUCCESS);
}

Test(validate, groups_unbalanced_and_destroy_inside)
{
    ppu_comm_t c[2];
    two_comms(c);
    msg_comm = NULL;
    EXPECT_FAIL(ppu_group_end(), PPU_INVALID_USAGE, "no group is open");
    /* destroy while this thread's group holds a call on the comm: refused,
     * and the group can still be given up cleanly */
    float a[4] = {1, 2, 3, 4}, b[4];
    cr_assert_eq(ppu_group_start(), PPU_SUCCESS);
    cr_assert_eq(ppu_allreduce(a, b, 4, PPU_FLOAT32, PPU_SUM, c[0], NULL), PPU_SUCCESS);
    msg_comm = c[0];
    EXPECT_FAIL(ppu_comm_destroy(c[0]), PPU_INVALID_USAGE, "ppu_group_end first");
    /* a call on another stream inside the same group is refused */
    ppu_stream_t s;
    cr_assert_eq(ppu_stream_create(&s), PPU_SUCCESS);
    EXPECT_FAIL(ppu_allreduce(a, b, 4, PPU_FLOAT32, PPU_SUM, c[0], s), PPU_INVALID_USAGE, "same stream");
    /* abort is allowed inside a group: the group's end then refuses it */
    cr_expect_eq(ppu_comm_abort(c[0]), PPU_SUCCESS);
    msg_comm = NULL;
    EXPECT_FAIL(ppu_group_end(), PPU_INVALID_USAGE, "destroyed before the group ended");
    EXPECT_FAIL(ppu_group_end(), PPU_INVALID_USAGE, "no group is open");
    cr_expect_eq(ppu_stream_destroy(s), PPU_SUCCESS);
    cr_expect_eq(ppu_comm_abort(c[1]), PPU_SUCCESS);
}

/* After ppu_comm_abort the handle is dead: every entry point refuses it by
 * name, nothing crashes (the handle is looked up, never dereferenced). */
Test(validate, use_after_abort)
{
    ppu_comm_t c[2];
    two_comms(c);
    ppu_comm_t x = c[0];
    cr_assert_eq(ppu_comm_abort(x), PPU_SUCCESS);
    msg_comm = NULL;
    float a[8] = {0}, b[16] = {0};
    size_t cnt[2] = {1, 1}, dsp[2] = {0, 1};
    int n;
    ppu_comm_t nc;
    ppu_result_t ae;
    EXPECT_FAIL(ppu_allreduce(a, b, 8, PPU_FLOAT32, PPU_SUM, x, NULL), PPU_INVALID_ARGUMENT, "ppu_allreduce: comm is not a live");
    EXPECT_FAIL(ppu_broadcast(a, b, 8, PPU_FLOAT32, 0, x, NULL), PPU_INVALID_ARGUMENT, "ppu_broadcast: comm");
    EXPECT_FAIL(ppu_reduce(a, b, 8, PPU_FLOAT32, PPU_SUM, 0, x, NULL), PPU_INVALID_ARGUMENT, "ppu_reduce: comm");
    EXPECT_FAIL(ppu_allgather(a, b, 4, PPU_FLOAT32, x, NULL), PPU_INVALID_ARGUMENT, "ppu_allgather: comm");
    EXPECT_FAIL(ppu_reduce_scatter(b, a, 4, PPU_FLOAT32, PPU_SUM, x, NULL), PPU_INVALID_ARGUMENT, "ppu_reduce_scatter: comm");
    EXPECT_FAIL(ppu_alltoall(a, b, 1, PPU_FLOAT32, x, NULL), PPU_INVALID_ARGUMENT, "ppu_alltoall: comm");
    EXPECT_FAIL(ppu_alltoallv(a, cnt, dsp, b, cnt, dsp, PPU_FLOAT32, x, NULL), PPU_INVALID_ARGUMENT, "ppu_alltoallv: comm");
    EXPECT_FAIL(ppu_send(a, 1, PPU_FLOAT32, 1, x, NULL), PPU_INVALID_ARGUMENT, "ppu_send: comm");
    EXPECT_FAIL(ppu_recv(a, 1, PPU_FLOAT32, 1, x, NULL), PPU_INVALID_ARGUMENT, "ppu_recv: comm");
    EXPECT_FAIL(ppu_barrier(x, NULL), PPU_INVALID_ARGUMENT, "ppu_barrier: comm");
    EXPECT_FAIL(ppu_comm_split(x, 0, 0, &nc), PPU_INVALID_ARGUMENT, "ppu_comm_split: comm");
    EXPECT_FAIL(ppu_comm_count(x, &n), PPU_INVALID_ARGUMENT, "comm");
    EXPECT_FAIL(ppu_comm_user_rank(x, &n), PPU_INVALID_ARGUMENT, "comm");
    EXPECT_FAIL(ppu_comm_get_async_error(x, &ae), PPU_INVALID_ARGUMENT, "comm");
    EXPECT_FAIL(ppu_comm_destroy(x), PPU_INVALID_ARGUMENT, "ppu_comm_destroy: comm");
    EXPECT_FAIL(ppu_comm_abort(x), PPU_INVALID_ARGUMENT, "ppu_comm_abort: comm");
    /* the other rank's comm is alive; its peer is gone, so it is aborted too */
    cr_expect_eq(ppu_comm_count(c[1], &n), PPU_SUCCESS);
    cr_expect_eq(ppu_comm_abort(c[1]), PPU_SUCCESS);
}
