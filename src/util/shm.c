#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

void *ppu_shm_create(const char *name, size_t size, int *err)
{
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    int e = posix_fallocate(fd, 0, (off_t)size);
    void *m = e ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    *err = e ? e : errno;
    close(fd);
    if (m == MAP_FAILED) {
        shm_unlink(name);
        return NULL;
    }
    return m;
}
