/* st_writer.h - a tiny in-memory safetensors writer for the unit tests (header-only).
 *
 * st_writer_add copies a tensor's raw bytes; st_writer_build lays the tensors out in the order
 * they were added, writes the JSON header (padded with spaces to a multiple of 8, like
 * Hugging Face's writer) and returns the whole file in one malloc'd buffer.
 * st_raw_file builds a file from a hand-written header, for malformed-input tests.
 * Test code only: allocation failure aborts.
 */
#ifndef GPT2_TEST_ST_WRITER_H
#define GPT2_TEST_ST_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_WRITER_MAX 512

typedef struct st_writer_tensor {
    char name[128];
    char dtype[16];
    int ndim;
    uint64_t shape[4];
    uint8_t *bytes;
    size_t nbytes;
} st_writer_tensor;

typedef struct st_writer {
    st_writer_tensor t[ST_WRITER_MAX];
    int n;
} st_writer;

static inline void *st_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "st_writer: out of memory\n");
        abort();
    }
    return p;
}

static inline st_writer *st_writer_create(void) {
    st_writer *w = st_xmalloc(sizeof *w);
    memset(w, 0, sizeof *w);
    return w;
}

static inline void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].bytes);
    free(w);
}

/* Adds a tensor with raw little-endian bytes (copied). */
static inline void st_writer_add(st_writer *w, const char *name, const char *dtype, int ndim,
                                 const uint64_t *shape, const void *bytes, size_t nbytes) {
    if (w->n >= ST_WRITER_MAX) abort();
    st_writer_tensor *t = &w->t[w->n++];
    snprintf(t->name, sizeof t->name, "%.127s", name); /* longer names are cut (none is) */
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->bytes = st_xmalloc(nbytes);
    if (nbytes) memcpy(t->bytes, bytes, nbytes);
    t->nbytes = nbytes;
}

static inline uint32_t st_float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* float -> binary16 for values exactly representable as normal halves (or zero). */
static inline uint16_t st_f32_to_f16_exact(float f) {
    uint32_t u = st_float_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if ((u & 0x7fffffffu) == 0) return sign;
    int32_t e = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    return (uint16_t)(sign | (uint16_t)(e << 10) | (uint16_t)((u >> 13) & 0x3ffu));
}

/* Adds a tensor given as floats, encoded as "F32", "F16" or "BF16" (exact values only). */
static inline void st_writer_add_floats(st_writer *w, const char *name, const char *dtype, int ndim,
                                        const uint64_t *shape, const float *vals, size_t count) {
    size_t es = strcmp(dtype, "F32") == 0 ? 4 : 2;
    uint8_t *b = st_xmalloc(count * es);
    for (size_t i = 0; i < count; i++) {
        uint32_t u = st_float_bits(vals[i]);
        if (es == 4) {
            for (int k = 0; k < 4; k++) b[4 * i + (size_t)k] = (uint8_t)(u >> (8 * k));
        } else {
            uint16_t h = strcmp(dtype, "F16") == 0 ? st_f32_to_f16_exact(vals[i]) : (uint16_t)(u >> 16);
            b[2 * i] = (uint8_t)h;
            b[2 * i + 1] = (uint8_t)(h >> 8);
        }
    }
    st_writer_add(w, name, dtype, ndim, shape, b, count * es);
    free(b);
}

/* Growable byte buffer. */
typedef struct st_buf {
    uint8_t *p;
    size_t len, cap;
} st_buf;

static inline void st_buf_put(st_buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) abort();
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static inline void st_buf_puts(st_buf *b, const char *s) { st_buf_put(b, s, strlen(s)); }

/* File = u64le(header_len) + header + data. */
static inline uint8_t *st_raw_file(const char *header, const void *data, size_t data_len, size_t *len) {
    size_t hl = strlen(header);
    uint8_t *f = st_xmalloc(8 + hl + data_len);
    for (int k = 0; k < 8; k++) f[k] = (uint8_t)((uint64_t)hl >> (8 * k));
    memcpy(f + 8, header, hl);
    if (data_len) memcpy(f + 8 + hl, data, data_len);
    *len = 8 + hl + data_len;
    return f;
}

/* Builds the file (tensors in the order added); metadata adds a "__metadata__" entry. */
static inline uint8_t *st_writer_build(const st_writer *w, int metadata, size_t *len) {
    st_buf h = {0};
    char tmp[256];
    uint64_t off = 0;
    st_buf_puts(&h, "{");
    if (metadata) st_buf_puts(&h, "\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < w->n; i++) {
        const st_writer_tensor *t = &w->t[i];
        if (i || metadata) st_buf_puts(&h, ",");
        snprintf(tmp, sizeof tmp, "\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, t->dtype);
        st_buf_puts(&h, tmp);
        for (int d = 0; d < t->ndim; d++) {
            snprintf(tmp, sizeof tmp, "%s%llu", d ? "," : "", (unsigned long long)t->shape[d]);
            st_buf_puts(&h, tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + t->nbytes));
        st_buf_puts(&h, tmp);
        off += t->nbytes;
    }
    st_buf_puts(&h, "}");
    while (h.len % 8) st_buf_puts(&h, " ");
    st_buf f = {0};
    uint8_t lenb[8];
    for (int k = 0; k < 8; k++) lenb[k] = (uint8_t)((uint64_t)h.len >> (8 * k));
    st_buf_put(&f, lenb, 8);
    st_buf_put(&f, h.p, h.len);
    for (int i = 0; i < w->n; i++) st_buf_put(&f, w->t[i].bytes, w->t[i].nbytes);
    free(h.p);
    *len = f.len;
    return f.p;
}

#endif
