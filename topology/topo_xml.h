/* Topology files: a small XML format describing a struct ppu_topo (servers,
 * chips, NICs and ICN links). The format is documented at the top of
 * topo_xml.c and in TOPOLOGY_FILE.md. Depends on util (logging) only. */
#ifndef PPU_TOPO_XML_H
#define PPU_TOPO_XML_H

#include <stddef.h>
#include <stdio.h>

#include "ppuccl.h"
#include "topo.h"

/* Largest file ppu_topo_load_xml reads. */
#define PPU_TOPO_XML_MAX_BYTES (8u << 20)

/* Parse len bytes of text (need not be NUL-terminated; nothing past len is
 * read). filename is used in messages and, when the file gives no name,
 * for t->name (its base name without extension); it may be NULL. On
 * success t holds the topology (t->source is "file"); on failure t is left
 * unchanged, the result is PPU_INVALID_ARGUMENT and err gets a sentence
 * "file:line: <element>: what is wrong" (PPU_SYSTEM_ERROR if out of
 * memory). */
ppu_result_t ppu_topo_parse_xml(const char *text, size_t len, const char *filename,
                                struct ppu_topo *t, char *err, size_t errlen);

/* Read path (at most PPU_TOPO_XML_MAX_BYTES) and parse it. An unreadable
 * file gives PPU_SYSTEM_ERROR and a sentence naming path and the reason. */
ppu_result_t ppu_topo_load_xml(const char *path, struct ppu_topo *t, char *err, size_t errlen);

/* Write t in the same format. PPU_INVALID_ARGUMENT (nothing written) when t
 * holds something the format cannot carry or the parser would reject;
 * PPU_SYSTEM_ERROR when writing fails. */
ppu_result_t ppu_topo_dump_xml(const struct ppu_topo *t, FILE *f);

/* Dump t into path (replaced atomically through a temporary file). err gets
 * a sentence on failure. */
ppu_result_t ppu_topo_save_xml(const struct ppu_topo *t, const char *path, char *err,
                               size_t errlen);

/* Check that t can be written and read back unchanged; on failure err gets
 * a sentence naming the first problem. */
ppu_result_t ppu_topo_check_xml(const struct ppu_topo *t, char *err, size_t errlen);

#endif
