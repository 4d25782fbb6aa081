/* The rendezvous survives hostile connections and names missing ranks. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bootstrap.h"
#include "util/wait.h"
#include "ranks.h"

static int connect_root(const ppu_unique_id_t *id)
{
    struct ppu_id_fields f;
    cr_assert_eq(ppu_id_unpack(id, &f), PPU_SUCCESS);
    int fd = socket(f.root.sa.sa_family, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    socklen_t len = f.root.sa.sa_family == AF_INET ? sizeof f.root.in4 : sizeof f.root.in6;
    cr_assert_eq(connect(fd, &f.root.sa, len), 0);
    return fd;
}

/* A bootstrap header as the wire has it: magic, version, type, secret,
 * payload length (big-endian). */
static void raw_hdr(unsigned char hdr[28], uint16_t version, uint16_t type, const uint8_t *secret,
                    uint32_t len)
{
    uint32_t magic = htonl(0x50504231u), l = htonl(len);
    uint16_t v = htons(version), t = htons(type);
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, &v, 2);
    memcpy(hdr + 6, &t, 2);
    memcpy(hdr + 8, secret, 16);
    memcpy(hdr + 24, &l, 4);
}

static int sum_ok(ppu_comm_t comm, int rank, int n, void *arg)
{
    int v = rank + 1, out = 0;
    if (ppu_allreduce(&v, &out, 1, PPU_INT32, PPU_SUM, comm, NULL) != PPU_SUCCESS)
        return 1;
    return out == n * (n + 1) / 2 ? 0 : 2;
}

/* A header with the right magic and version but a wrong secret, raw
 * garbage, a truncated header, and a silent connection all reach the root
 * before the real ranks; init still completes on every rank. */
Test(bootstrap, wrong_secret_and_garbage_are_dropped, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    ppu_unique_id_t id;
    cr_assert_eq(ppu_get_unique_id(&id), PPU_SUCCESS);
    int silent = connect_root(&id); /* slow loris: never sends */

    int fd = connect_root(&id);
    unsigned char hdr[28], wrong[16];
    memset(wrong, 0x77, sizeof wrong); /* not the secret */
    raw_hdr(hdr, PPU_BOOT_VERSION, 1, wrong, 28);
    cr_assert_eq(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);

    int g = connect_root(&id);
    const char junk[] = "GET / HTTP/1.0\r\n\r\n and more bytes that are not ours";
    cr_assert_eq(write(g, junk, sizeof junk), (ssize_t)sizeof junk);

    int t = connect_root(&id);
    cr_assert_eq(write(t, hdr, 5), 5); /* truncated, then closed */
    close(t);

    cr_assert_eq(run_ranks_id(3, &id, sum_ok, NULL, 50), 0, "init failed after hostile connections");
    close(silent);
    close(fd);
    close(g);
}

/* Ranks 0 and 1 of a 3-rank job on id, forked: each must fail init with
 * want and a message holding every one of words (NULL-terminated). */
static void fork_two_of_three(const ppu_unique_id_t *id, ppu_result_t want,
                              const char *const *words, pid_t pids[2])
{
    for (int r = 0; r < 2; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            ppu_comm_t c;
            ppu_result_t res = ppu_comm_init_rank(&c, 3, *id, r);
            const char *msg = ppu_get_last_error(NULL);
            int ok = res == want;
            for (int k = 0; words[k]; k++)
                ok &= strstr(msg, words[k]) != NULL;
            if (!ok)
                fprintf(stderr, "rank %d: result %d, message '%s'\n", r, res, msg);
            _exit(ok ? 0 : 1);
        }
    }
}

static void wait_two(const pid_t pids[2], const char *what)
{
    for (int r = 0; r < 2; r++) {
        int st;
        waitpid(pids[r], &st, 0);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank %d did not %s", r, what);
    }
}

/* Two of three ranks come: both fail with PPU_TIMEOUT and the message
 * names the missing rank. */
Test(bootstrap, missing_rank_is_named, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_BOOTSTRAP_TIMEOUT_MS", "1500", 1);
    ppu_unique_id_t id;
    cr_assert_eq(ppu_get_unique_id(&id), PPU_SUCCESS);
    pid_t pids[2];
    static const char *const words[] = {"rank(s) 2 of 3", NULL};
    fork_two_of_three(&id, PPU_TIMEOUT, words, pids);
    wait_two(pids, "report the missing rank");
}

/* A member of the job (it knows the secret) that runs another ppuccl: it
 * is told the root's version, and the real ranks fail init with
 * PPU_INVALID_USAGE naming both protocols, instead of waiting for it until
 * the bootstrap timeout. */
Test(bootstrap, other_version_is_named, .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    setenv("PPU_BOOTSTRAP_TIMEOUT_MS", "20000", 1); /* the failure must not be the timeout */
    ppu_unique_id_t id;
    cr_assert_eq(ppu_get_unique_id(&id), PPU_SUCCESS);
    struct ppu_id_fields f;
    cr_assert_eq(ppu_id_unpack(&id, &f), PPU_SUCCESS);
    int fd = connect_root(&id);
    unsigned char hdr[28];
    raw_hdr(hdr, 99, 1, f.secret, PPU_BOOT_HELLO_BYTES); /* a HELLO of protocol 99 */
    cr_assert_eq(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);

    pid_t pids[2];
    static const char *const words[] = {"bootstrap protocol 99", "ppuccl " PPU_VERSION_STRING,
                                        "same ppuccl", NULL};
    fork_two_of_three(&id, PPU_INVALID_USAGE, words, pids);
    /* what the other-version rank reads: an abort naming the root's version */
    unsigned char rh[28];
    char text[512] = "";
    size_t got = 0;
    ssize_t k;
    while (got < sizeof rh && (k = read(fd, rh + got, sizeof rh - got)) > 0)
        got += (size_t)k;
    cr_assert_eq(got, sizeof rh, "no abort header for the other-version rank");
    uint16_t rtype;
    memcpy(&rtype, rh + 6, 2);
    cr_expect_eq(ntohs(rtype), 3, "the reply is not an abort");
    got = 0;
    while (got < sizeof text - 1 && (k = read(fd, text + got, sizeof text - 1 - got)) > 0)
        got += (size_t)k;
    cr_expect(strstr(text, "ppuccl " PPU_VERSION_STRING) != NULL, "abort text: '%s'", text);
    close(fd);
    wait_two(pids, "name the version");
    unsetenv("PPU_BOOTSTRAP_TIMEOUT_MS");
}

/* A rank's listener for point-to-point messages: a connection that never
 * sends, and a sender that connects and writes its message only 1.5 s
 * later (a descheduled thread among thousands), hold up neither each
 * other nor a message sent meanwhile; the slow one is not lost. */
struct boot_arg {
    ppu_unique_id_t id;
    int rank;
    struct ppu_bootstrap *bs;
    ppu_result_t r;
};

static void *boot_thread(void *p)
{
    struct boot_arg *a = p;
    char err[256];
    a->r = ppu_bootstrap_init(&a->id, a->rank, 2, &a->bs, err, sizeof err);
    return NULL;
}

static int connect_to(const union ppu_sockaddr *a)
{
    int fd = socket(a->sa.sa_family, SOCK_STREAM, 0);
    socklen_t len = a->sa.sa_family == AF_INET ? sizeof a->in4 : sizeof a->in6;
    return fd >= 0 && connect(fd, &a->sa, len) == 0 ? fd : -1;
}

Test(bootstrap, p2p_listener_keeps_slow_senders_and_ignores_silent_ones,
     .timeout = 60 * PPU_TEST_SLOWDOWN)
{
    struct boot_arg a[2];
    cr_assert_eq(ppu_get_unique_id(&a[0].id), PPU_SUCCESS);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        a[i].id = a[0].id;
        a[i].rank = i;
        pthread_create(&t[i], NULL, boot_thread, &a[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    cr_assert(a[0].r == PPU_SUCCESS && a[1].r == PPU_SUCCESS);
    struct ppu_bootstrap *b0 = a[0].bs, *b1 = a[1].bs;
    int silent = connect_to(&b0->addr[0]);
    int slow = connect_to(&b0->addr[0]);
    cr_assert(silent >= 0 && slow >= 0);
    /* rank 1's message with tag 7, by hand: header, from, tag, payload */
    unsigned char msg[28 + 8 + 4];
    uint32_t from = htonl(1), tag = htonl(7), pay = 0x12345678;
    raw_hdr(msg, PPU_BOOT_VERSION, 5, b1->secret, 8 + 4);
    memcpy(msg + 28, &from, 4);
    memcpy(msg + 32, &tag, 4);
    memcpy(msg + 36, &pay, 4);
    cr_assert_eq(write(slow, msg, 10), 10); /* a part now, the rest later */
    int quick = 0xabcd;
    cr_assert_eq(ppu_bootstrap_send(b1, 0, 8, &quick, sizeof quick), PPU_SUCCESS);
    int got = 0;
    uint64_t t0 = ppu_now_ns();
    cr_assert_eq(ppu_bootstrap_recv(b0, 1, 8, &got, sizeof got, t0 + 3000000000ull, NULL),
                 PPU_SUCCESS, "a message behind a silent and a slow connection");
    cr_expect_eq(got, 0xabcd);
    cr_expect(ppu_now_ns() - t0 < 1000000000ull, "it waited on the other connections");
    usleep(1500 * 1000);
    cr_assert_eq(write(slow, msg + 10, sizeof msg - 10), (ssize_t)(sizeof msg - 10));
    uint32_t p = 0;
    cr_assert_eq(ppu_bootstrap_recv(b0, 1, 7, &p, sizeof p, ppu_now_ns() + 3000000000ull, NULL),
                 PPU_SUCCESS, "the slow sender's message was lost");
    cr_expect_eq(p, 0x12345678u);
    close(silent);
    close(slow);
    ppu_bootstrap_close(b0);
    ppu_bootstrap_close(b1);
}

/* Past PPU_BOOT_RING_MAX ranks the allgather goes point to point in log2
 * rounds (Bruck): every rank ends with every rank's entry, for an odd
 * count and entries that span several messages a round. */
#define AG_N 101
struct ag_arg {
    ppu_unique_id_t id;
    int rank, ok;
};

static void *ag_thread(void *p)
{
    struct ag_arg *a = p;
    struct ppu_bootstrap *bs;
    char err[256];
    enum { SZ = 300 }; /* 50 entries a round: 15,000 bytes, 4 messages */
    if (ppu_bootstrap_init(&a->id, a->rank, AG_N, &bs, err, sizeof err) != PPU_SUCCESS)
        return NULL;
    unsigned char *all = calloc(AG_N, SZ);
    for (int rep = 0; rep < 2 && all; rep++) {
        memset(all + (size_t)a->rank * SZ, (a->rank * 7 + rep) & 0xff, SZ);
        if (ppu_bootstrap_allgather(bs, all, SZ) != PPU_SUCCESS)
            break;
        int good = 1;
        for (int q = 0; q < AG_N; q++)
            for (int i = 0; i < SZ; i++)
                good &= all[(size_t)q * SZ + i] == ((q * 7 + rep) & 0xff);
        a->ok += good;
    }
    free(all);
    ppu_bootstrap_close(bs);
    return NULL;
}

Test(bootstrap, allgather_past_the_ring_is_exact, .timeout = 120 * PPU_TEST_SLOWDOWN)
{
    static struct ag_arg a[AG_N];
    static pthread_t t[AG_N];
    ppu_unique_id_t id;
    cr_assert_eq(ppu_get_unique_id(&id), PPU_SUCCESS);
    for (int i = 0; i < AG_N; i++) {
        a[i] = (struct ag_arg){id, i, 0};
        pthread_create(&t[i], NULL, ag_thread, &a[i]);
    }
    int bad = 0;
    for (int i = 0; i < AG_N; i++) {
        pthread_join(t[i], NULL);
        bad += a[i].ok != 2;
    }
    cr_expect_eq(bad, 0, "%d of %d ranks did not get every entry twice", bad, AG_N);
}
