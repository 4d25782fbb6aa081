/* The rendezvous survives hostile connections and names missing ranks. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bootstrap.h"
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
    raw_hdr(hdr, 2, 1, wrong, 28);
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
