/* fuzz_common.h - shared helpers for the libFuzzer harnesses (header-only).
 *
 * FUZZ_CHECK(cond, ...) aborts with a message when an invariant of the core's contract is
 * broken (libFuzzer then saves the input as a crash). The core itself must never abort:
 * only the harness does, on a wrong answer.
 */
#ifndef GPT2_FUZZ_COMMON_H
#define GPT2_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "FUZZ_CHECK failed %s:%d: %s: ", __FILE__, __LINE__, \
                    #cond);                                                     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* A failed call must leave a matching code and a non-empty, NUL-terminated message. */
static inline void fuzz_check_error(gpt2_err rc, const gpt2_error *err) {
    FUZZ_CHECK(rc != GPT2_OK, "not an error");
    FUZZ_CHECK(err->code == rc, "err->code %d != rc %d", (int)err->code, (int)rc);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof err->message) != NULL, "message not terminated");
    FUZZ_CHECK(err->message[0] != '\0', "empty message for %s", gpt2_err_name(rc));
}

/* Reads a whole file (harness set-up only; aborts on failure). */
static inline char *fuzz_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz: cannot open %s\n", path);
        abort();
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) abort();
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    fclose(f);
    *len = n;
    return buf;
}

/* The real GPT-2 tokenizer (models/vocab.json + merges.txt), created once per process. */
static inline gpt2_tokenizer *fuzz_gpt2_tokenizer(void) {
    static gpt2_tokenizer *tok;
    if (!tok) {
        gpt2_error err;
        if (gpt2_tokenizer_load(GPT2_FUZZ_MODEL_DIR, &tok, &err) != GPT2_OK) {
            fprintf(stderr, "fuzz: cannot load the GPT-2 tokenizer from %s: %s\n",
                    GPT2_FUZZ_MODEL_DIR, err.message);
            abort();
        }
    }
    return tok;
}

/* Reference UTF-8 decoder written independently of src/utf8.c: it enumerates every
 * Unicode scalar value once and records which 1-, 2- and 3-byte sequences begin a
 * well-formed encoding; a 4-byte sequence is complete iff its 3-byte prefix is a valid
 * prefix and its last byte is a continuation byte. Output follows the "maximal subpart"
 * rule (one U+FFFD per maximal subpart, an incomplete tail at the end -> one U+FFFD). */
typedef struct fuzz_utf8_ref {
    uint8_t p1[256 / 8];
    uint8_t p2[65536 / 8];
    uint8_t *p3; /* 2^24 bits */
} fuzz_utf8_ref;

static inline void fuzz_bit_set(uint8_t *bits, uint32_t i) { bits[i >> 3] |= (uint8_t)(1u << (i & 7)); }
static inline int fuzz_bit_get(const uint8_t *bits, uint32_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }

static inline const fuzz_utf8_ref *fuzz_utf8_reference(void) {
    static fuzz_utf8_ref ref;
    static int ready;
    if (ready) return &ref;
    ref.p3 = calloc((size_t)1 << 21, 1);
    if (!ref.p3) abort();
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        uint8_t b[4];
        int n;
        if (cp < 0x80) { b[0] = (uint8_t)cp; n = 1; }
        else if (cp < 0x800) { b[0] = (uint8_t)(0xC0 + (cp >> 6)); b[1] = (uint8_t)(0x80 + (cp & 63)); n = 2; }
        else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 + (cp >> 12)); b[1] = (uint8_t)(0x80 + ((cp >> 6) & 63));
            b[2] = (uint8_t)(0x80 + (cp & 63)); n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 + (cp >> 18)); b[1] = (uint8_t)(0x80 + ((cp >> 12) & 63));
            b[2] = (uint8_t)(0x80 + ((cp >> 6) & 63)); b[3] = (uint8_t)(0x80 + (cp & 63)); n = 4;
        }
        (void)n;
        fuzz_bit_set(ref.p1, b[0]);
        if (n >= 2) fuzz_bit_set(ref.p2, (uint32_t)b[0] << 8 | b[1]);
        if (n >= 3) fuzz_bit_set(ref.p3, (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2]);
    }
    ready = 1;
    return &ref;
}

/* Declared length of a character from its lead byte (1..4), 0 for a non-lead byte. */
static inline int fuzz_utf8_lead_len(uint8_t b) {
    if (b < 0x80) return 1;
    if (b < 0xC0) return 0;
    if (b < 0xE0) return 2;
    if (b < 0xF0) return 3;
    if (b < 0xF8) return 4;
    return 0;
}

/* Is s[0..k) (1 <= k <= 4) a prefix of some well-formed character's encoding? */
static inline int fuzz_utf8_is_prefix(const fuzz_utf8_ref *r, const uint8_t *s, size_t k) {
    switch (k) {
    case 1: return fuzz_bit_get(r->p1, s[0]);
    case 2: return fuzz_bit_get(r->p2, (uint32_t)s[0] << 8 | s[1]);
    case 3: return fuzz_bit_get(r->p3, (uint32_t)s[0] << 16 | (uint32_t)s[1] << 8 | s[2]);
    case 4: return fuzz_bit_get(r->p3, (uint32_t)s[0] << 16 | (uint32_t)s[1] << 8 | s[2]) &&
                   (s[3] & 0xC0) == 0x80 && fuzz_utf8_lead_len(s[0]) == 4;
    }
    return 0;
}

/* Decodes s[0..n) into out (room for 3 * n bytes); returns the output length. */
static inline size_t fuzz_utf8_ref_decode(const uint8_t *s, size_t n, uint8_t *out) {
    const fuzz_utf8_ref *r = fuzz_utf8_reference();
    size_t i = 0, o = 0;
    while (i < n) {
        size_t k = 0; /* longest valid prefix at i */
        while (k < 4 && i + k < n && fuzz_utf8_is_prefix(r, s + i, k + 1)) k++;
        if (k > 0 && (int)k == fuzz_utf8_lead_len(s[i])) { /* a complete character */
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
            continue;
        }
        out[o++] = 0xEF; out[o++] = 0xBF; out[o++] = 0xBD;
        i += k ? k : 1;
    }
    return o;
}

#endif
