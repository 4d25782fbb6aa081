/* Blocking-with-deadline TCP helpers for the bootstrap. All waits end at
 * the given deadline (CLOCK_MONOTONIC ns) with PPU_TIMEOUT. */
#ifndef PPU_SOCKET_H
#define PPU_SOCKET_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "ppuccl.h"

union ppu_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* The local address to listen on: PPU_SOCKET_IFNAME if set, else the first
 * non-loopback interface that is up, else loopback. err gets a sentence. */
ppu_result_t ppu_socket_pick_addr(union ppu_sockaddr *addr, char *err, size_t errlen);
/* Parse "host:port" / "[v6]:port" (host may be a name). */
ppu_result_t ppu_socket_parse(const char *s, union ppu_sockaddr *addr);
void ppu_socket_str(const union ppu_sockaddr *addr, char *buf, size_t len);
int ppu_socket_is_loopback(const union ppu_sockaddr *addr);

/* Listen on addr (port 0: any); addr gets the bound port. */
ppu_result_t ppu_socket_listen(union ppu_sockaddr *addr, int *fd);
/* Connect, retrying refused connections until the deadline. */
ppu_result_t ppu_socket_connect(const union ppu_sockaddr *addr, uint64_t deadline, int *fd);
/* The same, to an address that was listening: a refused connection means
 * its process is gone (a full backlog drops, it does not refuse), so it is
 * PPU_REMOTE_ERROR at once rather than tried again until deadline. */
ppu_result_t ppu_socket_connect_listening(const union ppu_sockaddr *addr, uint64_t deadline,
                                          int *fd);
ppu_result_t ppu_socket_accept(int lfd, uint64_t deadline, int *fd, union ppu_sockaddr *peer);
ppu_result_t ppu_socket_send(int fd, const void *buf, size_t len, uint64_t deadline);
ppu_result_t ppu_socket_recv(int fd, void *buf, size_t len, uint64_t deadline);
/* Send to one socket while receiving from another (no deadlock when both
 * peers send at once). */
ppu_result_t ppu_socket_sendrecv(int sfd, const void *sbuf, size_t slen, int rfd, void *rbuf,
                                 size_t rlen, uint64_t deadline);

#endif
