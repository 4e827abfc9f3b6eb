/* safetensors.c - the safetensors format: header, streaming reader, GPT-2 names, header
 * writer (see safetensors.h).
 *
 * One file of about 720 lines because it is the one place that knows the format: the reader
 * is built on the header validation (and shares its messages), the GPT-2 name table is what
 * both of the reader's users (loader.c, quantize.c) classify tensors with, and the writer
 * makes the headers the reader reads (quantize.c, train_io.c).
 */
#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

uint64_t gpt2_st_read_u64le(const uint8_t b[8]) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

char *gpt2_st_printable(const char *name, size_t len, char out[96]) {
    size_t n = len > 80 ? 80 : len, j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > n) { memcpy(out + j, "...", 3); j += 3; }
    out[j] = '\0';
    return out;
}

gpt2_err gpt2_st_check_header_len(uint64_t n, uint64_t file_size, const char *source,
                                  gpt2_error *err) {
    if (n < 2)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: header length %llu is too small", source,
                         (unsigned long long)n);
    if (n > GPT2_ST_MAX_HEADER)
        return gpt2_fail(err, GPT2_ERR_FORMAT,
                         "%s: header length %llu is larger than %u bytes (not a safetensors file?)",
                         source, (unsigned long long)n, GPT2_ST_MAX_HEADER);
    if (file_size != 0 && (file_size < 8 || n > file_size - 8))
        return gpt2_fail(err, GPT2_ERR_FORMAT,
                         "%s is truncated: header length %llu is past the end of the %llu-byte file",
                         source, (unsigned long long)n, (unsigned long long)file_size);
    return GPT2_OK;
}

static const struct {
    const char *name;
    gpt2_st_dtype dtype;
    unsigned size;
} dtypes[] = {
    {"F32", GPT2_ST_F32, 4},       {"F16", GPT2_ST_F16, 2},       {"BF16", GPT2_ST_BF16, 2},
    {"F64", GPT2_ST_OTHER, 8},     {"I64", GPT2_ST_OTHER, 8},     {"U64", GPT2_ST_OTHER, 8},
    {"I32", GPT2_ST_OTHER, 4},     {"U32", GPT2_ST_OTHER, 4},     {"I16", GPT2_ST_OTHER, 2},
    {"U16", GPT2_ST_OTHER, 2},     {"I8", GPT2_ST_OTHER, 1},      {"U8", GPT2_ST_OTHER, 1},
    {"BOOL", GPT2_ST_OTHER, 1},    {"F8_E4M3", GPT2_ST_OTHER, 1}, {"F8_E5M2", GPT2_ST_OTHER, 1},
};

/* Reads a non-negative JSON integer. */
static int get_u64(const json_value *v, uint64_t *out) {
    if (v->type != JSON_NUMBER || !v->is_integer || v->integer < 0) return 0;
    *out = (uint64_t)v->integer;
    return 1;
}

static gpt2_err parse_tensor(const json_member *m, gpt2_st_tensor *t, const char *source,
                             gpt2_error *err) {
    char nm[96];
    gpt2_st_printable(m->key, m->key_len, nm);
    const json_value *v = &m->value;
    t->name = m->key;
    t->name_len = m->key_len;
    if (v->type != JSON_OBJECT)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: header entry '%s' is not an object", source, nm);

    const json_value *dt = json_get(v, "dtype");
    if (!dt || dt->type != JSON_STRING)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensor '%s' has no \"dtype\" string", source, nm);
    if (memchr(dt->str, '\0', dt->len)) /* so that dtype_name is the whole name as a C string */
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensor '%s' has a \"dtype\" with a NUL byte in it", source, nm);
    t->dtype_name = dt->str;
    t->dtype = GPT2_ST_OTHER;
    t->elem_size = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++) {
        if (strlen(dtypes[i].name) == dt->len && memcmp(dtypes[i].name, dt->str, dt->len) == 0) {
            t->dtype = dtypes[i].dtype;
            t->elem_size = dtypes[i].size;
        }
    }

    const json_value *sh = json_get(v, "shape");
    if (!sh || sh->type != JSON_ARRAY)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensor '%s' has no \"shape\" array", source, nm);
    if (sh->count > GPT2_ST_MAX_DIMS)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensor '%s' has %zu dimensions (at most %d)",
                         source, nm, sh->count, GPT2_ST_MAX_DIMS);
    t->ndim = (int)sh->count;
    t->numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < sh->count; i++) {
        uint64_t d;
        if (!get_u64(&sh->items[i], &d))
            return gpt2_fail(err, GPT2_ERR_FORMAT,
                             "%s: tensor '%s' has a shape entry that is not a non-negative integer",
                             source, nm);
        t->shape[i] = d;
        /* zero anywhere makes the product 0, even after a would-be overflow */
        if (d != 0 && t->numel > UINT64_MAX / d) overflow = 1;
        else t->numel *= d;
    }
    int has_zero = 0;
    for (int i = 0; i < t->ndim; i++) has_zero |= t->shape[i] == 0;
    if (has_zero) t->numel = 0;
    else if (overflow)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensor '%s' has an impossibly large shape",
                         source, nm);

    const json_value *off = json_get(v, "data_offsets");
    if (!off || off->type != JSON_ARRAY || off->count != 2 || !get_u64(&off->items[0], &t->begin) ||
        !get_u64(&off->items[1], &t->end))
        return gpt2_fail(err, GPT2_ERR_FORMAT,
                         "%s: tensor '%s' needs \"data_offsets\": [begin, end] of non-negative integers",
                         source, nm);
    if (t->begin > t->end)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensor '%s' has data_offsets [%llu, %llu] with begin > end",
                         source, nm, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->elem_size != 0) {
        uint64_t len = t->end - t->begin;
        if (t->numel > UINT64_MAX / t->elem_size)
            return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensor '%s' has an impossibly large shape",
                             source, nm);
        if (t->numel * t->elem_size != len)
            return gpt2_fail(err, GPT2_ERR_FORMAT,
                             "%s: tensor '%s' has %llu bytes of data but its shape and dtype %s need %llu",
                             source, nm, (unsigned long long)len, t->dtype_name,
                             (unsigned long long)(t->numel * t->elem_size));
    }
    return GPT2_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const gpt2_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    const gpt2_st_tensor *x = *(const gpt2_st_tensor *const *)a, *y = *(const gpt2_st_tensor *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static gpt2_err check_duplicates(const gpt2_st_header *h, const char *source, gpt2_error *err) {
    if (h->count < 2) return GPT2_OK;
    const gpt2_st_tensor **idx = malloc(h->count * sizeof *idx);
    if (!idx) return gpt2_fail(err, GPT2_ERR_NOMEM, "%s: out of memory", source);
    for (size_t i = 0; i < h->count; i++) idx[i] = &h->tensors[i];
    qsort(idx, h->count, sizeof *idx, cmp_name);
    gpt2_err rc = GPT2_OK;
    for (size_t i = 1; i < h->count; i++) {
        if (cmp_name(&idx[i - 1], &idx[i]) == 0) {
            char nm[96];
            rc = gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", source,
                           gpt2_st_printable(idx[i]->name, idx[i]->name_len, nm));
            break;
        }
    }
    free(idx);
    return rc;
}

/* With tensors sorted by offset, each must start exactly where the previous one ended. */
static gpt2_err check_tiling(gpt2_st_header *h, const char *source, gpt2_error *err) {
    uint64_t pos = 0;
    for (size_t i = 0; i < h->count; i++) {
        const gpt2_st_tensor *t = &h->tensors[i];
        char a[96], b[96];
        if (t->begin < pos) {
            gpt2_st_printable(t->name, t->name_len, b);
            gpt2_st_printable(h->tensors[i - 1].name, h->tensors[i - 1].name_len, a);
            return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", source, a, b);
        }
        if (t->begin > pos)
            return gpt2_fail(err, GPT2_ERR_FORMAT,
                             "%s: bytes %llu..%llu of the data section belong to no tensor (hole)",
                             source, (unsigned long long)pos, (unsigned long long)t->begin);
        pos = t->end;
    }
    h->data_size = pos;
    return GPT2_OK;
}

gpt2_err gpt2_st_header_parse(const char *text, size_t len, const char *source,
                              gpt2_st_header **out, gpt2_error *err) {
    if (!out || (!text && len)) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_st_header_parse: NULL argument");
    *out = NULL;
    if (!source) source = "safetensors";
    gpt2_st_header *h = calloc(1, sizeof *h);
    if (!h) return gpt2_fail(err, GPT2_ERR_NOMEM, "%s: out of memory", source);
    gpt2_err rc = json_parse(text ? text : "", len, &h->doc_, err);
    if (rc) {
        if (err) {
            char ctx[128];
            snprintf(ctx, sizeof ctx, "%s: malformed header", source);
            gpt2_error_prefix(err, ctx);
        }
        if (rc != GPT2_ERR_NOMEM) rc = GPT2_ERR_FORMAT;
        if (err) err->code = rc;
        goto fail;
    }
    const json_value *root = json_root(h->doc_);
    if (root->type != JSON_OBJECT) {
        rc = gpt2_fail(err, GPT2_ERR_FORMAT, "%s: header is not a JSON object", source);
        goto fail;
    }
    if (root->count) {
        h->tensors = calloc(root->count, sizeof *h->tensors);
        if (!h->tensors) {
            rc = gpt2_fail(err, GPT2_ERR_NOMEM, "%s: out of memory", source);
            goto fail;
        }
    }
    for (size_t i = 0; i < root->count; i++) {
        const json_member *m = &root->members[i];
        if (m->key_len == 12 && memcmp(m->key, "__metadata__", 12) == 0) {
            if (m->value.type != JSON_OBJECT) {
                rc = gpt2_fail(err, GPT2_ERR_FORMAT, "%s: __metadata__ is not an object", source);
                goto fail;
            }
            continue;
        }
        if ((rc = parse_tensor(m, &h->tensors[h->count], source, err))) goto fail;
        h->count++;
    }
    if ((rc = check_duplicates(h, source, err))) goto fail;
    if (h->count) qsort(h->tensors, h->count, sizeof *h->tensors, cmp_offset);
    if ((rc = check_tiling(h, source, err))) goto fail;
    *out = h;
    return GPT2_OK;
fail:
    gpt2_st_header_free(h);
    return rc;
}

void gpt2_st_header_free(gpt2_st_header *h) {
    if (!h) return;
    json_free(h->doc_);
    free(h->tensors);
    free(h);
}

const gpt2_st_tensor *gpt2_st_find(const gpt2_st_header *h, const char *name) {
    if (!h || !name) return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i < h->count; i++)
        if (h->tensors[i].name_len == n && memcmp(h->tensors[i].name, name, n) == 0)
            return &h->tensors[i];
    return NULL;
}

/* ---- the streaming reader -------------------------------------------------------------- */

enum reader_state {
    R_LEN,    /* reading the 8-byte header length */
    R_HEADER, /* buffering the JSON header */
    R_DATA,   /* streaming the data section to the sink */
    R_DONE,   /* every byte arrived */
    R_FAILED  /* sticky error in r->failure */
};

struct gpt2_st_reader {
    gpt2_st_callbacks cb;
    char *source;
    enum reader_state state;
    gpt2_error failure;  /* valid when state == R_FAILED */
    uint64_t received;   /* bytes consumed from the stream */
    uint64_t file_size;  /* 0 = unknown */
    uint8_t len_bytes[8];
    uint64_t header_len; /* N, valid once 8 bytes arrived */
    char *header;        /* the N bytes being buffered (R_HEADER only) */
    uint64_t header_have;
    size_t header_cap;   /* bytes allocated for header: grows with what arrives, up to N */
    uint64_t expected;   /* 8 + N + data_size once the header is validated, else 0 */
    gpt2_st_header *hdr;
    gpt2_st_route *route;
    size_t cur;          /* the tensor holding data position pos (cur == count: done) */
    uint64_t pos;        /* bytes of the data section consumed */
    uint8_t carry[8];    /* the partial element straddling a chunk boundary */
    uint8_t *stage;      /* a band of rows that straddles a chunk boundary */
};

static gpt2_err replay(const gpt2_st_reader *r, gpt2_error *err) {
    if (err) *err = r->failure;
    return r->failure.code;
}

/* Enters R_FAILED with the message already in r->failure (code rc). */
static gpt2_err fail_sticky(gpt2_st_reader *r, gpt2_err rc, gpt2_error *err) {
    r->failure.code = rc != GPT2_OK ? rc : GPT2_ERR_FORMAT;
    r->state = R_FAILED;
    free(r->header);
    r->header = NULL;
    free(r->stage);
    r->stage = NULL;
    return replay(r, err);
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 4, 5)))
#endif
static gpt2_err fail(gpt2_st_reader *r, gpt2_error *err, gpt2_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->failure.message, sizeof r->failure.message, fmt, ap);
    va_end(ap);
    return fail_sticky(r, code, err);
}

gpt2_err gpt2_st_reader_create(const char *source, const gpt2_st_callbacks *cb, gpt2_st_reader **out,
                               gpt2_error *err) {
    if (!out || !cb || !cb->plan || !cb->sink)
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_st_reader_create: NULL argument");
    *out = NULL;
    const char *src = source ? source : "model.safetensors";
    size_t n = strlen(src);
    gpt2_st_reader *r = calloc(1, sizeof *r);
    if (r) r->source = malloc(n + 1);
    if (!r || !r->source) {
        free(r);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    }
    memcpy(r->source, src, n + 1);
    r->cb = *cb;
    *out = r;
    return GPT2_OK;
}

void gpt2_st_reader_free(gpt2_st_reader *r) {
    if (!r) return;
    gpt2_st_header_free(r->hdr);
    free(r->route);
    free(r->header);
    free(r->stage);
    free(r->source);
    free(r);
}

const char *gpt2_st_reader_source(const gpt2_st_reader *r) { return r ? r->source : ""; }

uint64_t gpt2_st_reader_header_size(const gpt2_st_reader *r) {
    return r && r->state != R_LEN ? r->header_len : 0;
}

uint64_t gpt2_st_reader_bytes_expected(const gpt2_st_reader *r) { return r ? r->expected : 0; }

uint64_t gpt2_st_reader_bytes_received(const gpt2_st_reader *r) { return r ? r->received : 0; }

/* Checks what is known so far against the declared file size (r->file_size != 0). */
static gpt2_err check_file_size(gpt2_st_reader *r, gpt2_error *err) {
    uint64_t fs = r->file_size;
    if (fs == 0) return GPT2_OK;
    if (r->received > fs)
        return fail(r, err, GPT2_ERR_FORMAT, "%s: received %llu bytes but the file has %llu", r->source,
                    (unsigned long long)r->received, (unsigned long long)fs);
    if (r->expected) {
        uint64_t have = fs - 8 >= r->header_len ? fs - 8 - r->header_len : 0; /* fs >= 10 */
        if (r->expected > fs)
            return fail(r, err, GPT2_ERR_FORMAT, "%s is truncated: header says %llu bytes of data, file has %llu",
                        r->source, (unsigned long long)r->hdr->data_size, (unsigned long long)have);
        if (r->expected < fs)
            return fail(r, err, GPT2_ERR_FORMAT, "%s has %llu extra bytes after the tensor data", r->source,
                        (unsigned long long)(fs - r->expected));
    } else if (r->state != R_LEN) {
        gpt2_err rc = gpt2_st_check_header_len(r->header_len, fs, r->source, &r->failure);
        if (rc) return fail_sticky(r, rc, err);
    }
    return GPT2_OK;
}

gpt2_err gpt2_st_reader_set_file_size(gpt2_st_reader *r, uint64_t file_size, gpt2_error *err) {
    if (!r) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_st_reader_set_file_size: reader is NULL");
    if (r->state == R_FAILED) return replay(r, err);
    if (file_size < 8 + 2)
        return fail(r, err, GPT2_ERR_FORMAT, "%s is too small to be a safetensors file (%llu bytes)", r->source,
                    (unsigned long long)file_size);
    r->file_size = file_size;
    return check_file_size(r, err);
}

/* Passes tensors whose data is complete (zero-length ones too) to done; R_DONE at the end. */
static gpt2_err next_tensors(gpt2_st_reader *r) {
    while (r->cur < r->hdr->count && r->pos == r->hdr->tensors[r->cur].end) {
        gpt2_err rc = r->cb.done ? r->cb.done(r->cb.ctx, r->cur, &r->failure) : GPT2_OK;
        if (rc) return rc;
        r->cur++;
    }
    if (r->cur == r->hdr->count) r->state = R_DONE;
    return GPT2_OK;
}

/* The header is complete: parse and validate it, let the caller plan, stage the bands. */
static gpt2_err on_header(gpt2_st_reader *r, gpt2_error *err) {
    gpt2_err rc = gpt2_st_header_parse(r->header, (size_t)r->header_len, r->source, &r->hdr, &r->failure);
    free(r->header);
    r->header = NULL;
    if (rc) return fail_sticky(r, rc, err);
    const gpt2_st_header *h = r->hdr;
    if (h->data_size > UINT64_MAX - 8 - r->header_len)
        return fail(r, err, GPT2_ERR_FORMAT, "%s: data section size overflows", r->source);
    r->expected = 8 + r->header_len + h->data_size;
    if ((rc = check_file_size(r, err))) return rc;
    if (!(r->route = calloc(h->count ? h->count : 1, sizeof *r->route)))
        return fail(r, err, GPT2_ERR_NOMEM, "%s: out of memory reading the header", r->source);
    if ((rc = r->cb.plan(r->cb.ctx, h, r->route, &r->failure))) return fail_sticky(r, rc, err);
    size_t stage = 0;
    for (size_t i = 0; i < h->count; i++) {
        const gpt2_st_route *rt = &r->route[i];
        const gpt2_st_tensor *t = &h->tensors[i];
        size_t row = rt->cols * t->elem_size;
        if (rt->how == GPT2_ST_ELEMENTS && t->elem_size == 0)
            return fail(r, err, GPT2_ERR_ARG, "%s: tensor %zu planned as elements of an unknown size", r->source, i);
        if (rt->how != GPT2_ST_BANDS || t->end == t->begin) continue;
        if (row == 0 || rt->band_rows == 0 || (t->end - t->begin) % row != 0 || rt->band_rows > SIZE_MAX / row)
            return fail(r, err, GPT2_ERR_ARG, "%s: tensor %zu planned in bands that do not tile it", r->source, i);
        if (rt->band_rows * row > stage) stage = rt->band_rows * row;
    }
    if (stage && !(r->stage = malloc(stage))) return fail(r, err, GPT2_ERR_NOMEM, "%s: out of memory", r->source);
    r->state = R_DATA;
    if ((rc = next_tensors(r))) return fail_sticky(r, rc, err);
    return GPT2_OK;
}

/* GPT2_ST_BANDS: whole bands inside the chunk go to the sink where they lie (all of the
 * chunk's at once); a band that straddles a chunk boundary is gathered in the stage first. */
static gpt2_err deliver_bands(gpt2_st_reader *r, const gpt2_st_route *rt, uint64_t len, size_t off,
                              const uint8_t *p, size_t n) {
    size_t row = rt->cols * r->hdr->tensors[r->cur].elem_size, band = rt->band_rows * row;
    gpt2_err rc = GPT2_OK;
    while (n && !rc) {
        if (off % band == 0 && n >= band) {
            size_t bands = n / band;
            rc = r->cb.sink(r->cb.ctx, r->cur, off / row, p, bands * rt->band_rows, &r->failure);
            p += bands * band;
            n -= bands * band;
            off += bands * band;
            continue;
        }
        size_t b0 = off / band * band, bend = len - b0 < band ? (size_t)len : b0 + band;
        size_t c = bend - off < n ? bend - off : n;
        memcpy(r->stage + (off - b0), p, c);
        p += c;
        n -= c;
        off += c;
        if (off == bend) rc = r->cb.sink(r->cb.ctx, r->cur, b0 / row, r->stage, (bend - b0) / row, &r->failure);
    }
    return rc;
}

/* n bytes that all lie inside the current tensor. */
static gpt2_err deliver(gpt2_st_reader *r, const uint8_t *p, size_t n) {
    const gpt2_st_tensor *t = &r->hdr->tensors[r->cur];
    const gpt2_st_route *rt = &r->route[r->cur];
    /* off: bytes of this tensor consumed before (fits size_t: a tensor that is not skipped
     * is one the caller holds in memory) */
    size_t off = (size_t)(r->pos - t->begin), es = t->elem_size;
    r->pos += n;
    switch (rt->how) {
    case GPT2_ST_SKIP: return GPT2_OK;
    case GPT2_ST_BYTES: return r->cb.sink(r->cb.ctx, r->cur, off, p, n, &r->failure);
    case GPT2_ST_BANDS: return deliver_bands(r, rt, t->end - t->begin, off, p, n);
    case GPT2_ST_ELEMENTS: break;
    }
    gpt2_err rc;
    size_t part = off % es;
    if (part) { /* complete the carried partial element */
        size_t c = es - part < n ? es - part : n;
        memcpy(r->carry + part, p, c);
        p += c;
        n -= c;
        off += c;
        if (off % es) return GPT2_OK;
        if ((rc = r->cb.sink(r->cb.ctx, r->cur, off / es - 1, r->carry, 1, &r->failure))) return rc;
    }
    size_t full = n / es;
    if (full && (rc = r->cb.sink(r->cb.ctx, r->cur, off / es, p, full, &r->failure))) return rc;
    p += full * es;
    n -= full * es;
    if (n) memcpy(r->carry, p, n);
    return GPT2_OK;
}

/* R_HEADER: buffers up to n header bytes; the buffer grows with the bytes that arrive. */
static gpt2_err take_header(gpt2_st_reader *r, const uint8_t *bytes, size_t take, gpt2_error *err) {
    if (r->header_have + take > r->header_cap) {
        size_t want = r->header_cap ? r->header_cap : 65536;
        while (want < r->header_have + take) want *= 2;
        if (want > r->header_len) want = (size_t)r->header_len;
        char *grown = realloc(r->header, want);
        if (!grown)
            return fail(r, err, GPT2_ERR_NOMEM, "%s: out of memory for a %llu-byte header", r->source,
                        (unsigned long long)r->header_len);
        r->header = grown;
        r->header_cap = want;
    }
    memcpy(r->header + r->header_have, bytes, take);
    r->header_have += take;
    r->received += take;
    return r->header_have == r->header_len ? on_header(r, err) : GPT2_OK;
}

gpt2_err gpt2_st_reader_feed(gpt2_st_reader *r, const uint8_t *bytes, size_t n, gpt2_error *err) {
    if (!r || (!bytes && n)) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_st_reader_feed: NULL argument");
    if (r->state == R_FAILED) return replay(r, err);
    gpt2_err rc;
    while (n > 0) {
        size_t take;
        switch (r->state) {
        case R_LEN:
            take = 8 - (size_t)r->received < n ? 8 - (size_t)r->received : n;
            memcpy(r->len_bytes + r->received, bytes, take);
            r->received += take;
            if (r->received == 8) {
                r->header_len = gpt2_st_read_u64le(r->len_bytes);
                r->state = R_HEADER;
                rc = gpt2_st_check_header_len(r->header_len, r->file_size, r->source, &r->failure);
                if (rc) return fail_sticky(r, rc, err);
            }
            break;
        case R_HEADER:
            take = r->header_len - r->header_have < n ? (size_t)(r->header_len - r->header_have) : n;
            if ((rc = take_header(r, bytes, take, err))) return rc;
            break;
        case R_DATA: {
            uint64_t left = r->hdr->tensors[r->cur].end - r->pos;
            take = left < n ? (size_t)left : n;
            if ((rc = deliver(r, bytes, take)) || (rc = next_tensors(r))) return fail_sticky(r, rc, err);
            r->received += take;
            break;
        }
        case R_DONE:
            return fail(r, err, GPT2_ERR_FORMAT,
                        "%s has extra bytes after the tensor data (at least %zu more than the %llu "
                        "bytes its header describes)",
                        r->source, n, (unsigned long long)r->expected);
        default: return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_st_reader_feed: bad reader state");
        }
        bytes += take;
        n -= take;
    }
    return GPT2_OK;
}

gpt2_err gpt2_st_reader_finish(gpt2_st_reader *r, gpt2_error *err) {
    if (!r) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_st_reader_finish: NULL argument");
    char nm[96];
    switch (r->state) {
    case R_FAILED: return replay(r, err);
    case R_DONE: return GPT2_OK;
    case R_LEN:
        if (r->received == 0) return fail(r, err, GPT2_ERR_FORMAT, "%s is empty", r->source);
        return fail(r, err, GPT2_ERR_FORMAT, "%s is truncated: got %llu bytes, the header length alone takes 8",
                    r->source, (unsigned long long)r->received);
    case R_HEADER:
        return fail(r, err, GPT2_ERR_FORMAT, "%s is truncated: got %llu of the %llu header bytes", r->source,
                    (unsigned long long)r->header_have, (unsigned long long)r->header_len);
    case R_DATA: {
        const gpt2_st_tensor *t = &r->hdr->tensors[r->cur];
        return fail(r, err, GPT2_ERR_FORMAT, "%s is truncated: got %llu of %llu bytes (tensor '%s' is incomplete)",
                    r->source, (unsigned long long)r->received, (unsigned long long)r->expected,
                    gpt2_st_printable(t->name, t->name_len, nm));
    }
    }
    return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_st_reader_finish: bad reader state");
}

#define CHUNK_BYTES (4u << 20)

gpt2_err gpt2_st_reader_feed_file(gpt2_st_reader *r, const char *path, gpt2_err (*after)(void *ctx, gpt2_error *err),
                                  void *ctx, gpt2_error *err) {
    if (!r || !path) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_st_reader_feed_file: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return gpt2_fail(err, GPT2_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    uint8_t *chunk = malloc(CHUNK_BYTES);
    gpt2_err rc = chunk ? GPT2_OK : gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    /* the size lets a bad header length or truncation fail before streaming everything */
    if (!rc && fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0) rc = gpt2_st_reader_set_file_size(r, (uint64_t)size, err);
    }
    if (!rc && fseek(f, 0, SEEK_SET) != 0) rc = gpt2_fail(err, GPT2_ERR_IO, "cannot seek in %s", path);
    for (size_t n = CHUNK_BYTES; !rc && n == CHUNK_BYTES;) {
        n = fread(chunk, 1, CHUNK_BYTES, f);
        if (!(rc = gpt2_st_reader_feed(r, chunk, n, err)) && after) rc = after(ctx, err);
    }
    if (!rc && ferror(f)) rc = gpt2_fail(err, GPT2_ERR_IO, "error reading %s", path);
    if (!rc) rc = gpt2_st_reader_finish(r, err);
    fclose(f);
    free(chunk);
    return rc;
}

/* ---- GPT-2's tensor names -------------------------------------------------------------- */

static const char *const global_names[GPT2_ST_GLOBALS] = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias",
                                                          "lm_head.weight"};
/* per layer; then the two mask buffers */
static const char *const layer_names[GPT2_ST_LAYER_NAMES + 2] = {
    "ln_1.weight",     "ln_1.bias",        "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight",     "ln_2.bias",          "mlp.c_fc.weight",  "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias", "attn.bias",         "attn.masked_bias"};

static int is_name(const char *name, const char *s, size_t n) { return strlen(name) == n && !memcmp(name, s, n); }

void gpt2_st_name_parse(const char *s, size_t n, gpt2_st_name *out) {
    memset(out, 0, sizeof *out);
    out->id = -1;
    if (n > 12 && memcmp(s, "transformer.", 12) == 0) s += 12, n -= 12;
    if (n > 3 && memcmp(s + n - 3, ".q8", 3) == 0) out->variant = GPT2_ST_Q8, n -= 3;
    else if (n > 6 && memcmp(s + n - 6, ".scale", 6) == 0) out->variant = GPT2_ST_SCALE, n -= 6;
    for (int i = 0; i < GPT2_ST_GLOBALS; i++)
        if (is_name(global_names[i], s, n)) out->id = i;
    if (out->id < 0 && n >= 3 && s[0] == 'h' && s[1] == '.') {
        size_t j = 2;
        uint64_t layer = 0;
        for (; j < n && s[j] >= '0' && s[j] <= '9'; j++)
            if (layer < 1000000000u) layer = layer * 10 + (uint64_t)(s[j] - '0');
        if (j > 2 && j < n && s[j] == '.' && !(s[2] == '0' && j > 3)) {
            out->in_layer = 1;
            out->layer = layer;
            for (int k = 0; k < GPT2_ST_LAYER_NAMES + 2; k++) {
                if (!is_name(layer_names[k], s + j + 1, n - j - 1)) continue;
                if (k < GPT2_ST_LAYER_NAMES) out->id = GPT2_ST_GLOBALS + k;
                else out->mask = out->variant == GPT2_ST_PLAIN;
            }
        }
    }
    int k = out->id - GPT2_ST_GLOBALS;
    out->conv1d = k == GPT2_ST_QKV_W || k == GPT2_ST_ATTN_PROJ_W || k == GPT2_ST_FC_W || k == GPT2_ST_MLP_PROJ_W;
    out->linear = out->conv1d || out->id == GPT2_ST_WTE || out->id == GPT2_ST_LM_HEAD;
    if (out->variant != GPT2_ST_PLAIN && !out->linear) out->id = -1;
}

void gpt2_st_name_format(int id, uint64_t layer, char *out, size_t cap) {
    if (id >= 0 && id < GPT2_ST_GLOBALS) snprintf(out, cap, "%s", global_names[id]);
    else if (id >= GPT2_ST_GLOBALS && id < GPT2_ST_GLOBALS + GPT2_ST_LAYER_NAMES)
        snprintf(out, cap, "h.%llu.%s", (unsigned long long)layer, layer_names[id - GPT2_ST_GLOBALS]);
    else snprintf(out, cap, "?");
}

/* ---------------------------------------------------------------- writing a header */

static void w_put(gpt2_st_writer *w, const char *s, size_t n) {
    if (w->oom) return;
    if (n + 1 > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 4096;
        while (n + 1 > cap - w->len) cap *= 2;
        char *p = realloc(w->text, cap);
        if (!p) {
            w->oom = 1;
            return;
        }
        w->text = p;
        w->cap = cap;
    }
    memcpy(w->text + w->len, s, n);
    w->len += n;
    w->text[w->len] = '\0';
}

static void w_puts(gpt2_st_writer *w, const char *s) { w_put(w, s, strlen(s)); }

void gpt2_st_writer_begin(gpt2_st_writer *w, const char *metadata) {
    memset(w, 0, sizeof *w);
    w_puts(w, "{\"__metadata__\":{");
    w_puts(w, metadata);
    w_puts(w, "}");
}

void gpt2_st_writer_add(gpt2_st_writer *w, const char *name, size_t n, const char *suffix, const char *dtype, int ndim,
                        const uint64_t *shape, uint64_t bytes) {
    char tmp[64];
    w_puts(w, ",\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '"' || c == '\\') snprintf(tmp, sizeof tmp, "\\%c", c);
        else if (c < 0x20) snprintf(tmp, sizeof tmp, "\\u%04x", c);
        else snprintf(tmp, sizeof tmp, "%c", c);
        w_puts(w, tmp);
    }
    w_puts(w, suffix);
    w_puts(w, "\":{\"dtype\":\"");
    w_puts(w, dtype);
    w_puts(w, "\",\"shape\":[");
    for (int d = 0; d < ndim; d++) {
        snprintf(tmp, sizeof tmp, "%s%llu", d ? "," : "", (unsigned long long)shape[d]);
        w_puts(w, tmp);
    }
    snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)w->data_bytes,
             (unsigned long long)(w->data_bytes + bytes));
    w_puts(w, tmp);
    w->data_bytes += bytes;
}

gpt2_err gpt2_st_writer_end(gpt2_st_writer *w, gpt2_error *err) {
    w_puts(w, "}");
    while (!w->oom && w->len % 8) w_puts(w, " ");
    return w->oom ? gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory") : GPT2_OK;
}

void gpt2_st_writer_free(gpt2_st_writer *w) {
    if (!w) return;
    free(w->text);
    memset(w, 0, sizeof *w);
}
