/* What the command-line tools (ppu-sim, ppu-diag) share: sizes on the
 * command line and plots drawn by a Python script. */
#ifndef PPU_TOOL_UTIL_H
#define PPU_TOOL_UTIL_H

#include <stddef.h>

/* "8", "64K", "1.5M", "4GB" (powers of 1024) into *out; -1 if malformed. */
int ppu_tool_parse_size(const char *s, size_t *out);

/* Run `python3 SCRIPT JSON PNG` (PPU_PYTHON or /usr/bin/python3); on
 * failure a sentence on stderr naming prog and what to install. Returns 0
 * when the plot was written. */
int ppu_tool_plot(const char *prog, const char *script, const char *json, const char *png);

#endif
