/* fileio.h - reading a whole file (native): config.json, the tokenizer's files, the CLI's
 * inputs. Streaming a checkpoint is the safetensors reader's (safetensors.h). */
#ifndef GPT2_FILEIO_H
#define GPT2_FILEIO_H

#include <stddef.h>

#include "status.h"

/* Reads the file at path into a new buffer *out (caller frees) of *len bytes plus a NUL.
 * max > 0 caps the size ("PATH is larger than MAX bytes", GPT2_ERR_FORMAT). Errors name the
 * file: "cannot open PATH: reason" (GPT2_ERR_IO), "error reading PATH", "out of memory". */
gpt2_err gpt2_read_file(const char *path, size_t max, char **out, size_t *len, gpt2_error *err);

#endif
