/* fileio.c - reading a whole file (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gpt2_err gpt2_read_file(const char *path, size_t max, char **out, size_t *len, gpt2_error *err) {
    if (!path || !out || !len) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_read_file: NULL argument");
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return gpt2_fail(err, GPT2_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    gpt2_err rc = GPT2_OK;
    while (!rc && buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (max && n > max) rc = gpt2_fail(err, GPT2_ERR_FORMAT, "%s is larger than %zu bytes", path, max);
        else if (n < cap) break;
        else if (cap > SIZE_MAX / 4) rc = gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory reading %s", path);
        else {
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) free(buf);
            buf = bigger;
            cap *= 2;
        }
    }
    if (!rc && !buf) rc = gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory reading %s", path);
    if (!rc && ferror(f)) rc = gpt2_fail(err, GPT2_ERR_IO, "error reading %s", path);
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return GPT2_OK;
}
