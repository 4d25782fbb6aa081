/* This process's PID namespace, for names of shared-memory segments that
 * say whose they are (a /dev/shm shared between containers holds pids of
 * other namespaces). */
#ifndef PPU_PROC_H
#define PPU_PROC_H

#include <sys/stat.h>

/* The inode of /proc/self/ns/pid; 0 when it cannot be read. */
static inline unsigned long ppu_pid_namespace(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long)st.st_ino : 0;
}

#endif
