#include "socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "param.h"
#include "wait.h"

static socklen_t addr_len(const union ppu_sockaddr *a)
{
    return a->sa.sa_family == AF_INET6 ? sizeof a->in6 : sizeof a->in4;
}

int ppu_socket_is_loopback(const union ppu_sockaddr *a)
{
    if (a->sa.sa_family == AF_INET)
        return (ntohl(a->in4.sin_addr.s_addr) >> 24) == 127;
    return a->sa.sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr);
}

void ppu_socket_str(const union ppu_sockaddr *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in4.sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, ntohs(a->in4.sin_port));
    } else {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, ntohs(a->in6.sin6_port));
    }
}

static int skipped_by_default(const char *name)
{
    return !strncmp(name, "docker", 6) || !strncmp(name, "virbr", 5) || !strncmp(name, "veth", 4);
}

ppu_result_t ppu_socket_pick_addr(union ppu_sockaddr *addr, char *err, size_t errlen)
{
    const char *want = ppu_param_str(PPU_P_SOCKET_IFNAME);
    struct ifaddrs *ifs, *ifa;
    if (getifaddrs(&ifs) != 0) {
        snprintf(err, errlen, "getifaddrs failed: %s", strerror(errno));
        return PPU_SYSTEM_ERROR;
    }
    union ppu_sockaddr best, loop;
    int have_best = 0, have_loop = 0;
    for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr || !(ifa->ifa_flags & IFF_UP))
            continue;
        int fam = ifa->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        if (fam == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr))
            continue;
        union ppu_sockaddr a;
        memset(&a, 0, sizeof a);
        memcpy(&a, ifa->ifa_addr, fam == AF_INET ? sizeof a.in4 : sizeof a.in6);
        if (*want) {
            if (strcmp(ifa->ifa_name, want) == 0 && (!have_best || fam == AF_INET)) {
                best = a;
                have_best = 1;
            }
            continue;
        }
        if (ifa->ifa_flags & IFF_LOOPBACK) {
            if (!have_loop || fam == AF_INET) {
                loop = a;
                have_loop = 1;
            }
        } else if (!skipped_by_default(ifa->ifa_name) && (!have_best || (fam == AF_INET &&
                                                          best.sa.sa_family != AF_INET))) {
            best = a;
            have_best = 1;
        }
    }
    freeifaddrs(ifs);
    if (have_best) {
        *addr = best;
    } else if (!*want && have_loop) {
        *addr = loop;
    } else {
        snprintf(err, errlen, *want ? "PPU_SOCKET_IFNAME=%s names no interface that is up "
                                      "with an address" : "no network interface is up%s", want);
        return PPU_INVALID_ARGUMENT;
    }
    addr->in4.sin_port = 0;
    if (addr->sa.sa_family == AF_INET6)
        addr->in6.sin6_port = 0;
    return PPU_SUCCESS;
}

ppu_result_t ppu_socket_parse(const char *s, union ppu_sockaddr *addr)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1])
        return PPU_INVALID_ARGUMENT;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && colon[-1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl >= sizeof host)
        return PPU_INVALID_ARGUMENT;
    memcpy(host, s, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return PPU_INVALID_ARGUMENT;
    memset(addr, 0, sizeof *addr);
    memcpy(addr, res->ai_addr, res->ai_addrlen <= sizeof *addr ? res->ai_addrlen : sizeof *addr);
    freeaddrinfo(res);
    return PPU_SUCCESS;
}

ppu_result_t ppu_socket_listen(union ppu_sockaddr *addr, int *fd_out)
{
    int fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return PPU_SYSTEM_ERROR;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len = addr_len(addr);
    if (bind(fd, &addr->sa, len) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, &addr->sa, &len) != 0) {
        close(fd);
        return PPU_SYSTEM_ERROR;
    }
    *fd_out = fd;
    return PPU_SUCCESS;
}

static ppu_result_t wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int left = ppu_ms_until(deadline);
        if (left == 0)
            return PPU_TIMEOUT;
        int r = poll(&p, 1, left);
        if (r > 0)
            return PPU_SUCCESS;
        if (r < 0 && errno != EINTR)
            return PPU_SYSTEM_ERROR;
    }
}

static ppu_result_t connect_until(const union ppu_sockaddr *addr, uint64_t deadline, int *fd_out,
                                  int refused_is_gone)
{
    for (;;) {
        int fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return PPU_SYSTEM_ERROR;
        int rc = connect(fd, &addr->sa, addr_len(addr));
        if (rc != 0 && errno == EINPROGRESS) {
            ppu_result_t w = wait_fd(fd, POLLOUT, deadline);
            if (w != PPU_SUCCESS) {
                close(fd);
                return w;
            }
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            rc = soerr ? -1 : 0;
            errno = soerr;
        }
        if (rc == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            *fd_out = fd;
            return PPU_SUCCESS;
        }
        int e = errno;
        close(fd);
        if (e == ECONNREFUSED && refused_is_gone)
            return PPU_REMOTE_ERROR;
        /* EADDRNOTAVAIL: no ephemeral port free just now (they come back) */
        if (e != ECONNREFUSED && e != ECONNRESET && e != ETIMEDOUT && e != EAGAIN &&
            e != EADDRNOTAVAIL)
            return PPU_SYSTEM_ERROR;
        if (ppu_ms_until(deadline) == 0)
            return PPU_TIMEOUT;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

ppu_result_t ppu_socket_connect(const union ppu_sockaddr *addr, uint64_t deadline, int *fd_out)
{
    return connect_until(addr, deadline, fd_out, 0);
}

ppu_result_t ppu_socket_connect_listening(const union ppu_sockaddr *addr, uint64_t deadline,
                                          int *fd_out)
{
    return connect_until(addr, deadline, fd_out, 1);
}

ppu_result_t ppu_socket_accept(int lfd, uint64_t deadline, int *fd_out, union ppu_sockaddr *peer)
{
    for (;;) {
        ppu_result_t w = wait_fd(lfd, POLLIN, deadline);
        if (w != PPU_SUCCESS)
            return w;
        socklen_t len = sizeof *peer;
        int fd = accept4(lfd, &peer->sa, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            *fd_out = fd;
            return PPU_SUCCESS;
        }
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
            return PPU_SYSTEM_ERROR;
    }
}

ppu_result_t ppu_socket_sendrecv(int sfd, const void *sbuf, size_t slen, int rfd, void *rbuf,
                                 size_t rlen, uint64_t deadline)
{
    size_t sent = 0, got = 0;
    while (sent < slen || got < rlen) {
        struct pollfd p[2];
        int np = 0, si = -1, ri = -1;
        if (sent < slen) {
            p[np] = (struct pollfd){sfd, POLLOUT, 0};
            si = np++;
        }
        if (got < rlen) {
            p[np] = (struct pollfd){rfd, POLLIN, 0};
            ri = np++;
        }
        int left = ppu_ms_until(deadline);
        if (left == 0)
            return PPU_TIMEOUT;
        int r = poll(p, (nfds_t)np, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return PPU_SYSTEM_ERROR;
        if (si >= 0 && p[si].revents) {
            ssize_t n = send(sfd, (const char *)sbuf + sent, slen - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                return PPU_REMOTE_ERROR;
        }
        if (ri >= 0 && p[ri].revents) {
            ssize_t n = recv(rfd, (char *)rbuf + got, rlen - got, MSG_DONTWAIT);
            if (n > 0)
                got += (size_t)n;
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                return PPU_REMOTE_ERROR; /* peer closed or reset */
        }
    }
    return PPU_SUCCESS;
}

ppu_result_t ppu_socket_send(int fd, const void *buf, size_t len, uint64_t deadline)
{
    return ppu_socket_sendrecv(fd, buf, len, -1, NULL, 0, deadline);
}

ppu_result_t ppu_socket_recv(int fd, void *buf, size_t len, uint64_t deadline)
{
    return ppu_socket_sendrecv(-1, NULL, 0, fd, buf, len, deadline);
}
