/* safetensors.c - safetensors header parsing and validation (see safetensors.h). */
#include "safetensors.h"

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
