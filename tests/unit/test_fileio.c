/* test_fileio.c - gpt2_read_file: whole files (empty, with NUL bytes, larger than its first
 * buffer), the size cap, and errors that name the file. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, rmdir */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fileio.h"

static void write_bytes(const char *path, const unsigned char *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(p, 1, n, f) == n, "write %s", path);
    if (f) fclose(f);
}

int main(void) {
    char dir[] = "/tmp/gpt2_test_fileio_XXXXXX", path[256];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return check_summary("test_fileio");
    }
    snprintf(path, sizeof path, "%s/f.bin", dir);
    gpt2_error e = {0};
    static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 300001};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k], len = 1;
        unsigned char *want = malloc(n + 1);
        for (size_t i = 0; i < n; i++) want[i] = (unsigned char)(i * 7 + k); /* NUL bytes included */
        write_bytes(path, want, n);
        char *got = NULL;
        CHECK_OK(gpt2_read_file(path, 0, &got, &len, &e), &e);
        CHECK(got && len == n && memcmp(got, want, n) == 0 && got[n] == '\0', "%zu bytes read back", n);
        free(got);
        if (n > 10) { /* the cap: exactly at it reads, one byte over fails naming the file */
            CHECK_OK(gpt2_read_file(path, n, &got, &len, &e), &e);
            free(got);
            got = (char *)1;
            CHECK_FAILS(gpt2_read_file(path, n - 1, &got, &len, &e), GPT2_ERR_FORMAT, &e);
            CHECK(got == NULL && strstr(e.message, path) && strstr(e.message, "is larger than"), "%s", e.message);
        }
        free(want);
    }
    remove(path);
    char *got = NULL;
    size_t len;
    CHECK_FAILS(gpt2_read_file(path, 0, &got, &len, &e), GPT2_ERR_IO, &e);
    CHECK(got == NULL && strstr(e.message, "cannot open") && strstr(e.message, path), "%s", e.message);
    CHECK_FAILS(gpt2_read_file(NULL, 0, &got, &len, &e), GPT2_ERR_ARG, &e);
    rmdir(dir);
    return check_summary("test_fileio");
}
