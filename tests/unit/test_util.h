/* test_util.h - helpers several C tests share: reading a file, running a generator to the end.
 * Header-only (static inline functions) like check.h; include after check.h and generate.h. */
#ifndef GPT2_TEST_UTIL_H
#define GPT2_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "generate.h"
#include "json.h"
#include "loader.h"
#include "tokenizer.h"

/* The whole file, NUL-terminated (caller frees), its length in *len; NULL on failure. */
static inline char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* Reads and parses a JSON file (e.g. a fixture's expected values); NULL, with a test
 * failure, when it cannot. The caller frees it with json_free. */
static inline json_doc *read_json(const char *path) {
    size_t len = 0;
    char *text = read_file(path, &len);
    CHECK(text != NULL, "cannot read %s", path);
    if (!text) return NULL;
    json_doc *doc = NULL;
    gpt2_error err;
    CHECK_OK(json_parse(text, len, &doc, &err), &err);
    free(text);
    return doc;
}

/* Loads a checkpoint folder's weights (as stored) and tokenizer; non-zero when both loaded
 * (a failure is a test failure; whatever loaded is still returned, for the caller to free). */
static inline int load_fixture(const char *dir, gpt2_weights **w, gpt2_tokenizer **tok) {
    gpt2_error err;
    *w = NULL;
    *tok = NULL;
    CHECK_OK(gpt2_load_dir(dir, NULL, w, &err), &err);
    CHECK_OK(gpt2_tokenizer_load(dir, tok, &err), &err);
    return *w && *tok;
}

/* Non-zero when a and b hold the same bytes, piece for piece (weights.h). */
static inline int same_pieces(const gpt2_weights *a, const gpt2_weights *b) {
    if (a->n_pieces != b->n_pieces || a->arena_bytes != b->arena_bytes) return 0;
    for (int i = 0; i < a->n_pieces; i++)
        if (a->pieces[i].bytes != b->pieces[i].bytes || memcmp(a->pieces[i].data, b->pieces[i].data, a->pieces[i].bytes))
            return 0;
    return 1;
}

/* Runs a generator to the end; returns the number of tokens written to out (<= cap) and
 * the stop reason in *stop (may be NULL). A failing step is a test failure. */
static inline int run_generator(gpt2_generator *g, int32_t *out, int cap, gpt2_stop_reason *stop) {
    gpt2_error err;
    gpt2_piece piece;
    int n = 0;
    do {
        if (gpt2_generator_next(g, &piece, &err) != GPT2_OK) {
            CHECK(0, "generator_next: %s", err.message);
            break;
        }
        if (piece.id >= 0 && n < cap) out[n++] = piece.id;
    } while (piece.stop == GPT2_STOP_NONE);
    if (stop) *stop = piece.stop;
    return n;
}

#endif
