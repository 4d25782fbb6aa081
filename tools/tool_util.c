#include "tool_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int ppu_tool_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0))
        return -1;
    double mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024.0 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024.0 * 1024 * 1024, end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end || v * mul > 1e18)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

int ppu_tool_plot(const char *prog, const char *script, const char *json, const char *png)
{
    const char *py = getenv("PPU_PYTHON") ? getenv("PPU_PYTHON") : "/usr/bin/python3";
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: --png: fork: %s\n", prog, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        execl(py, py, script, json, png, (char *)NULL);
        fprintf(stderr, "%s: --png: cannot run %s: %s\n", prog, py, strerror(errno));
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "%s: --png %s: the plot failed (%s %s needs matplotlib: "
                "scripts/setup.sh installs python3-matplotlib)\n", prog, png, py, script);
        return -1;
    }
    printf("# wrote %s\n", png);
    return 0;
}
