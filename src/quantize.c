/* quantize.c - q8_0 quantization and the streaming checkpoint converter (see quantize.h). */
#include "quantize.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "safetensors.h"

/* ---- primitives ------------------------------------------------------------------------ */

uint16_t gpt2_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf, NaN (kept quiet, top payload bits kept) */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to infinity */
    if (a < 0x38800000u) {                                    /* below 2^-14: a subnormal half */
        if (a < 0x33000000u) return sign;                     /* <= 2^-25 (tie) rounds to 0 */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* value in units of 2^-24 is m >> shift; 14..24 */
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (a - 0x38000000u) >> 13, rem = a & 0x1fffu; /* rebias 127 -> 15 */
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

void gpt2_q8_quantize_block(const float *v, int8_t *q, uint16_t *scale_bits, float *scale) {
    float amax = 0.0f;
    for (int j = 0; j < GPT2_Q8_BLOCK; j++) {
        float a = fabsf(v[j]);
        if (a > amax) amax = a; /* NaN never compares greater */
    }
    uint16_t h = gpt2_f32_to_f16(amax / 127.0f);
    if ((h & 0x7c00u) == 0x7c00u) h = 0x7bffu; /* beyond fp16: the largest half, 65504 */
    float s = gpt2_f16_to_f32(h);
    for (int j = 0; j < GPT2_Q8_BLOCK; j++) {
        float r = s != 0.0f ? v[j] / s : 0.0f;
        int8_t k;
        if (!(r == r)) k = 0;
        else if (r >= 127.0f) k = 127;
        else if (r <= -127.0f) k = -127;
        else k = (int8_t)roundf(r); /* half away from zero */
        q[j] = k;
    }
    if (scale_bits) *scale_bits = h;
    if (scale) *scale = s;
}

/* ---- the converter --------------------------------------------------------------------- */

enum q_state { Q_LEN, Q_HEADER, Q_DATA, Q_DONE, Q_FAILED };

enum op_kind {
    OP_DROP,   /* mask buffers: not written */
    OP_COPY,   /* bytes copied unchanged */
    OP_F16,    /* float elements -> F16, same shape */
    OP_Q8_ROWS,/* [out, in] source -> NAME.q8 streamed row by row, NAME.scale at the end */
    OP_Q8_T    /* Conv1D [in, out] source -> NAME.q8 [out, in] and NAME.scale at the end */
};

typedef struct q_op {
    enum op_kind kind;
    uint64_t begin, end; /* input byte range in the data section */
    gpt2_st_dtype dtype;
    unsigned es;
    size_t rows, cols;   /* source shape (2-D weights) */
    size_t out_rows, in; /* q8: the matrix [out_rows, in] */
} q_op;

struct gpt2_quantizer {
    gpt2_dtype type;
    char *source;
    enum q_state state;
    gpt2_error failure;
    uint64_t received;
    uint8_t len_bytes[8];
    uint64_t header_len, header_have;
    char *header;
    gpt2_st_header *hdr;
    q_op *ops;
    size_t nops, cur;
    uint64_t pos;       /* bytes of the input data section consumed */
    uint8_t carry[4];
    uint64_t out_size;  /* total output file size */
    uint8_t *out;       /* output produced, not yet taken: out[taken .. len) */
    size_t out_len, out_cap, out_taken;
    float *stage;       /* one row, or 32 rows of a Conv1D source */
    int8_t *qbuf;       /* the current Conv1D tensor's q8 output */
    uint16_t *sbuf;     /* the current tensor's scales */
    char summary[256];
};

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 4, 5)))
#endif
static gpt2_err qfail(gpt2_quantizer *q, gpt2_error *err, gpt2_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->failure.message, sizeof q->failure.message, fmt, ap);
    va_end(ap);
    q->failure.code = code;
    q->state = Q_FAILED;
    if (err) *err = q->failure;
    return code;
}

gpt2_err gpt2_quantizer_create(gpt2_dtype type, const char *source, gpt2_quantizer **out, gpt2_error *err) {
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_quantizer_create: out is NULL");
    *out = NULL;
    if (type != GPT2_DTYPE_F16 && type != GPT2_DTYPE_Q8_0)
        return gpt2_fail(err, GPT2_ERR_ARG, "quantize: the output type must be q8_0 or f16");
    const char *src = source ? source : "model.safetensors";
    gpt2_quantizer *q = calloc(1, sizeof *q);
    size_t n = strlen(src);
    if (q) q->source = malloc(n + 1);
    if (!q || !q->source) {
        free(q);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory creating the converter");
    }
    memcpy(q->source, src, n + 1);
    q->type = type;
    q->state = Q_LEN;
    *out = q;
    return GPT2_OK;
}

void gpt2_quantizer_free(gpt2_quantizer *q) {
    if (!q) return;
    free(q->source);
    free(q->header);
    gpt2_st_header_free(q->hdr);
    free(q->ops);
    free(q->out);
    free(q->stage);
    free(q->qbuf);
    free(q->sbuf);
    free(q);
}

size_t gpt2_quantizer_output(gpt2_quantizer *q, const uint8_t **out) {
    if (!q) return 0;
    if (out) *out = q->out + q->out_taken;
    return q->out_len - q->out_taken;
}

void gpt2_quantizer_consume(gpt2_quantizer *q, size_t n) {
    if (!q) return;
    if (n > q->out_len - q->out_taken) n = q->out_len - q->out_taken;
    q->out_taken += n;
    if (q->out_taken == q->out_len) q->out_taken = q->out_len = 0;
}

uint64_t gpt2_quantizer_output_size(const gpt2_quantizer *q) { return q ? q->out_size : 0; }

const char *gpt2_quantizer_summary(const gpt2_quantizer *q) { return q ? q->summary : ""; }

/* Appends n bytes to the output queue; 0 on allocation failure. */
static int put(gpt2_quantizer *q, const void *p, size_t n) {
    if (q->out_taken && q->out_taken == q->out_len) q->out_taken = q->out_len = 0;
    if (n > q->out_cap - q->out_len) {
        if (q->out_taken) { /* drop what was taken before growing */
            memmove(q->out, q->out + q->out_taken, q->out_len - q->out_taken);
            q->out_len -= q->out_taken;
            q->out_taken = 0;
        }
        if (n > q->out_cap - q->out_len) {
            size_t cap = q->out_cap ? q->out_cap : 1 << 16;
            while (cap - q->out_len < n) {
                if (cap > SIZE_MAX / 2) return 0;
                cap *= 2;
            }
            uint8_t *b = realloc(q->out, cap);
            if (!b) return 0;
            q->out = b;
            q->out_cap = cap;
        }
    }
    memcpy(q->out + q->out_len, p, n);
    q->out_len += n;
    return 1;
}

/* ---- header planning ---- */

/* The linear weights, by name without the "transformer." prefix; *conv1d for [in, out]. */
static int is_linear(const char *s, size_t n, int *conv1d) {
    *conv1d = 0;
    if ((n == 10 && !memcmp(s, "wte.weight", 10)) || (n == 14 && !memcmp(s, "lm_head.weight", 14))) return 1;
    if (n < 3 || s[0] != 'h' || s[1] != '.') return 0;
    size_t j = 2;
    while (j < n && s[j] >= '0' && s[j] <= '9') j++;
    if (j == 2 || j >= n || s[j] != '.') return 0;
    static const char *const conv[] = {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                                       "mlp.c_proj.weight"};
    for (size_t k = 0; k < 4; k++)
        if (n - j - 1 == strlen(conv[k]) && !memcmp(s + j + 1, conv[k], n - j - 1)) return *conv1d = 1;
    return 0;
}

static int is_mask(const char *s, size_t n) {
    return (n > 10 && !memcmp(s + n - 10, ".attn.bias", 10)) ||
           (n > 17 && !memcmp(s + n - 17, ".attn.masked_bias", 17));
}

static int ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && !memcmp(s + n - k, suffix, k);
}

/* A growing JSON text. */
typedef struct jbuf {
    char *p;
    size_t len, cap;
    int oom;
} jbuf;

static void jput(jbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (n + 1 > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (n + 1 > cap - b->len) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jputs(jbuf *b, const char *s) { jput(b, s, strlen(s)); }

static void jstring(jbuf *b, const char *s, size_t n) {
    jputs(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            jput(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            jputs(b, esc);
        } else {
            jput(b, (const char *)&s[i], 1);
        }
    }
    jputs(b, "\"");
}

/* Appends one header entry "name[suffix]": {"dtype", "shape", "data_offsets"}. */
static void jentry(jbuf *b, int *first, const gpt2_st_tensor *t, const char *suffix, const char *dtype, int ndim,
                   const uint64_t *shape, uint64_t begin, uint64_t end) {
    char tmp[64];
    if (!*first) jputs(b, ",");
    *first = 0;
    size_t n = t->name_len, k = strlen(suffix);
    char *name = malloc(n + k + 1);
    if (!name) {
        b->oom = 1;
        return;
    }
    memcpy(name, t->name, n);
    memcpy(name + n, suffix, k + 1);
    jstring(b, name, n + k);
    free(name);
    jputs(b, ":{\"dtype\":\"");
    jputs(b, dtype);
    jputs(b, "\",\"shape\":[");
    for (int d = 0; d < ndim; d++) {
        snprintf(tmp, sizeof tmp, "%s%llu", d ? "," : "", (unsigned long long)shape[d]);
        jputs(b, tmp);
    }
    snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)begin, (unsigned long long)end);
    jputs(b, tmp);
}

static gpt2_err on_header(gpt2_quantizer *q, gpt2_error *err) {
    gpt2_err rc = gpt2_st_header_parse(q->header, (size_t)q->header_len, q->source, &q->hdr, &q->failure);
    free(q->header);
    q->header = NULL;
    if (rc) {
        q->state = Q_FAILED;
        if (err) *err = q->failure;
        return rc;
    }
    const gpt2_st_header *h = q->hdr;
    q->ops = calloc(h->count ? h->count : 1, sizeof *q->ops);
    if (!q->ops) return qfail(q, err, GPT2_ERR_NOMEM, "out of memory");
    q->nops = h->count;
    jbuf b = {0};
    int first = 1;
    if (q->type == GPT2_DTYPE_Q8_0)
        jputs(&b, "{\"__metadata__\":{\"format\":\"pt\",\"gpt2_wasm.quant\":\"q8_0\",\"gpt2_wasm.version\":\"1\","
                  "\"gpt2_wasm.layout\":\"NAME.q8: I8 [out, in] (Conv1D weights transposed from [in, out]); "
                  "NAME.scale: F16 [out, in/32]; W[o, i] = q8[o, i] * scale[o, i / 32]\","
                  "\"gpt2_wasm.rule\":\"per 32 values: scale = fp16(max|v| / 127), q = round-half-away(v / scale) "
                  "clamped to [-127, 127]\"}");
    else
        jputs(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
    first = 0;
    uint64_t off = 0;
    size_t n_linear = 0, n_q8 = 0, n_kept = 0, max_stage = 0, max_q = 0, max_s = 0;
    char kept[160] = "";
    for (size_t i = 0; i < h->count; i++) {
        const gpt2_st_tensor *t = &h->tensors[i];
        q_op *op = &q->ops[i];
        op->begin = t->begin;
        op->end = t->end;
        op->dtype = t->dtype;
        op->es = t->elem_size;
        const char *s = t->name;
        size_t n = t->name_len;
        char nm[96];
        if (n > 12 && !memcmp(s, "transformer.", 12)) s += 12, n -= 12;
        if (ends_with(s, n, ".weight.q8") || ends_with(s, n, ".weight.scale")) {
            free(b.p);
            return qfail(q, err, GPT2_ERR_FORMAT, "%s is already quantized (tensor '%s')", q->source,
                         gpt2_st_printable(t->name, t->name_len, nm));
        }
        int conv1d, floaty = t->dtype != GPT2_ST_OTHER;
        if (is_mask(s, n)) {
            op->kind = OP_DROP;
            continue;
        }
        if (is_linear(s, n, &conv1d) && floaty) {
            if (t->ndim != 2) {
                free(b.p);
                return qfail(q, err, GPT2_ERR_SHAPE, "%s: tensor '%s' should have 2 dimensions, has %d", q->source,
                             gpt2_st_printable(t->name, t->name_len, nm), t->ndim);
            }
            n_linear++;
            op->rows = (size_t)t->shape[0];
            op->cols = (size_t)t->shape[1];
            op->out_rows = conv1d ? op->cols : op->rows;
            op->in = conv1d ? op->rows : op->cols;
            if (q->type == GPT2_DTYPE_Q8_0 && op->in % GPT2_Q8_BLOCK == 0) {
                op->kind = conv1d ? OP_Q8_T : OP_Q8_ROWS;
                uint64_t shape[2] = {op->out_rows, op->in};
                uint64_t numel = t->numel, scales = numel / GPT2_Q8_BLOCK;
                jentry(&b, &first, t, ".q8", "I8", 2, shape, off, off + numel);
                off += numel;
                shape[1] = op->in / GPT2_Q8_BLOCK;
                jentry(&b, &first, t, ".scale", "F16", 2, shape, off, off + 2 * scales);
                off += 2 * scales;
                size_t stage = conv1d ? GPT2_Q8_BLOCK * op->cols : op->cols;
                if (stage > max_stage) max_stage = stage;
                if (conv1d && numel > max_q) max_q = (size_t)numel;
                if (scales > max_s) max_s = (size_t)scales;
                n_q8++;
                continue;
            }
            if (q->type == GPT2_DTYPE_Q8_0) {
                n_kept++;
                size_t l = strlen(kept);
                if (l < 100) snprintf(kept + l, sizeof kept - l, "%s%s", l ? ", " : "",
                                      gpt2_st_printable(t->name, t->name_len, nm));
            }
            op->kind = OP_F16;
        } else if (floaty && q->type == GPT2_DTYPE_F16) {
            op->kind = OP_F16;
        } else {
            op->kind = OP_COPY;
        }
        if (op->kind == OP_F16) {
            jentry(&b, &first, t, "", "F16", t->ndim, t->shape, off, off + 2 * t->numel);
            off += 2 * t->numel;
        } else {
            jentry(&b, &first, t, "", t->dtype_name, t->ndim, t->shape, off, off + (t->end - t->begin));
            off += t->end - t->begin;
        }
    }
    jputs(&b, "}");
    while (!b.oom && b.len % 8) jputs(&b, " ");
    if (b.oom) {
        free(b.p);
        return qfail(q, err, GPT2_ERR_NOMEM, "out of memory");
    }
    if (n_linear == 0) {
        free(b.p);
        return qfail(q, err, GPT2_ERR_SHAPE, "%s: no GPT-2 weights found (wte.weight, h.N.attn.c_attn.weight, ...)",
                     q->source);
    }
    if (q->type == GPT2_DTYPE_Q8_0)
        snprintf(q->summary, sizeof q->summary, "%zu weights in q8_0%s%s%s", n_q8,
                 n_kept ? ", kept in f16 (in is not a multiple of 32): " : "", kept, n_kept > 0 && strlen(kept) >= 100 ? " ..." : "");
    else
        snprintf(q->summary, sizeof q->summary, "every float tensor in f16 (%zu weights)", n_linear);
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)b.len >> (8 * k));
    q->out_size = 8 + (uint64_t)b.len + off;
    int ok = put(q, len8, 8) && put(q, b.p, b.len);
    free(b.p);
    if (max_stage) q->stage = malloc(max_stage * sizeof(float));
    if (max_q) q->qbuf = malloc(max_q);
    if (max_s) q->sbuf = malloc(max_s * sizeof(uint16_t));
    if (!ok || (max_stage && !q->stage) || (max_q && !q->qbuf) || (max_s && !q->sbuf))
        return qfail(q, err, GPT2_ERR_NOMEM, "out of memory");
    q->state = Q_DATA;
    q->cur = 0;
    q->pos = 0;
    return GPT2_OK;
}

/* ---- data ---- */

static float load_elem(gpt2_st_dtype dt, const uint8_t *p) {
    switch (dt) {
    case GPT2_ST_F32:
        return gpt2_f32_from_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    case GPT2_ST_F16: return gpt2_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
    case GPT2_ST_BF16: return gpt2_bf16_to_f32((uint16_t)(p[0] | p[1] << 8));
    case GPT2_ST_OTHER: break;
    }
    return 0.0f;
}

/* Processes elements e0 .. e0+cnt-1 of op (complete elements at src). 0 on allocation failure. */
static int process(gpt2_quantizer *q, const q_op *op, size_t e0, const uint8_t *src, size_t cnt) {
    if (op->kind == OP_F16) {
        uint8_t buf[1024];
        while (cnt) {
            size_t k = cnt < 512 ? cnt : 512;
            for (size_t j = 0; j < k; j++) {
                uint16_t h = gpt2_f32_to_f16(load_elem(op->dtype, src + j * op->es));
                buf[2 * j] = (uint8_t)h;
                buf[2 * j + 1] = (uint8_t)(h >> 8);
            }
            if (!put(q, buf, 2 * k)) return 0;
            src += k * op->es;
            cnt -= k;
        }
        return 1;
    }
    /* q8: source [rows, cols]; rows are output rows (OP_Q8_ROWS) or inputs (OP_Q8_T) */
    size_t rows = op->rows, cols = op->cols, r = e0 / cols, c = e0 % cols, nblk = op->in / GPT2_Q8_BLOCK;
    while (cnt) {
        size_t run = cols - c < cnt ? cols - c : cnt;
        size_t band_row = op->kind == OP_Q8_T ? r % GPT2_Q8_BLOCK : 0;
        float *st = q->stage + band_row * cols + c;
        for (size_t j = 0; j < run; j++) st[j] = load_elem(op->dtype, src + j * op->es);
        src += run * op->es;
        cnt -= run;
        c += run;
        if (c < cols) break;
        if (op->kind == OP_Q8_ROWS) {
            int8_t qrow[512];
            for (size_t b = 0; b < nblk; b++) {
                size_t at = b % (sizeof qrow / GPT2_Q8_BLOCK);
                gpt2_q8_quantize_block(q->stage + b * GPT2_Q8_BLOCK, qrow + at * GPT2_Q8_BLOCK, &q->sbuf[r * nblk + b],
                                       NULL);
                if (at == sizeof qrow / GPT2_Q8_BLOCK - 1 || b == nblk - 1)
                    if (!put(q, qrow, (at + 1) * GPT2_Q8_BLOCK)) return 0;
            }
        } else if (band_row == GPT2_Q8_BLOCK - 1) {
            float v[GPT2_Q8_BLOCK];
            size_t i0 = r - band_row, b = i0 / GPT2_Q8_BLOCK;
            for (size_t o = 0; o < cols; o++) {
                for (size_t k = 0; k < GPT2_Q8_BLOCK; k++) v[k] = q->stage[k * cols + o];
                gpt2_q8_quantize_block(v, q->qbuf + o * op->in + i0, &q->sbuf[o * nblk + b], NULL);
            }
        }
        (void)rows;
        r++;
        c = 0;
    }
    return 1;
}

/* The op's input is complete: write what was held back (q8 data of Conv1D, the scales). */
static int finish_op(gpt2_quantizer *q, const q_op *op) {
    size_t n = op->out_rows * op->in;
    if (op->kind == OP_Q8_T && !put(q, q->qbuf, n)) return 0;
    if (op->kind == OP_Q8_T || op->kind == OP_Q8_ROWS) {
        size_t ns = n / GPT2_Q8_BLOCK;
        for (size_t k = 0; k < ns; k++) { /* little-endian */
            uint8_t b2[2] = {(uint8_t)q->sbuf[k], (uint8_t)(q->sbuf[k] >> 8)};
            if (!put(q, b2, 2)) return 0;
        }
    }
    return 1;
}

/* Moves past finished ops (writing their held-back output); Q_DONE at the end. */
static int advance(gpt2_quantizer *q) {
    while (q->cur < q->nops && q->pos == q->ops[q->cur].end) {
        if (!finish_op(q, &q->ops[q->cur])) return 0;
        q->cur++;
    }
    if (q->cur == q->nops) q->state = Q_DONE;
    return 1;
}

/* n bytes that lie inside the current op. */
static int consume_data(gpt2_quantizer *q, const uint8_t *p, size_t n) {
    const q_op *op = &q->ops[q->cur];
    q->pos += n;
    if (op->kind == OP_DROP) return 1;
    if (op->kind == OP_COPY) return put(q, p, n);
    size_t off = (size_t)(q->pos - n - op->begin), es = op->es, part = off % es;
    if (part) {
        size_t c = es - part < n ? es - part : n;
        memcpy(q->carry + part, p, c);
        p += c;
        n -= c;
        off += c;
        if (off % es) return 1;
        if (!process(q, op, off / es - 1, q->carry, 1)) return 0;
    }
    size_t full = n / es;
    if (full && !process(q, op, off / es, p, full)) return 0;
    p += full * es;
    n -= full * es;
    if (n) memcpy(q->carry, p, n);
    return 1;
}

gpt2_err gpt2_quantizer_feed(gpt2_quantizer *q, const uint8_t *bytes, size_t n, gpt2_error *err) {
    if (!q || (!bytes && n)) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_quantizer_feed: NULL argument");
    if (q->state == Q_FAILED) {
        if (err) *err = q->failure;
        return q->failure.code;
    }
    while (n > 0) {
        size_t take;
        switch (q->state) {
        case Q_LEN:
            take = 8 - (size_t)q->received < n ? 8 - (size_t)q->received : n;
            memcpy(q->len_bytes + q->received, bytes, take);
            q->received += take;
            if (q->received == 8) {
                q->header_len = gpt2_st_read_u64le(q->len_bytes);
                gpt2_error e;
                gpt2_err rc = gpt2_st_check_header_len(q->header_len, 0, q->source, &e);
                if (rc) return qfail(q, err, rc, "%s", e.message);
                q->header = malloc((size_t)q->header_len);
                if (!q->header) return qfail(q, err, GPT2_ERR_NOMEM, "out of memory for the header");
                q->state = Q_HEADER;
            }
            break;
        case Q_HEADER:
            take = q->header_len - q->header_have < n ? (size_t)(q->header_len - q->header_have) : n;
            memcpy(q->header + q->header_have, bytes, take);
            q->header_have += take;
            q->received += take;
            if (q->header_have == q->header_len) {
                gpt2_err rc = on_header(q, err);
                if (rc) return rc;
                if (!advance(q)) return qfail(q, err, GPT2_ERR_NOMEM, "out of memory");
            }
            break;
        case Q_DATA: {
            uint64_t left = q->ops[q->cur].end - q->pos;
            take = left < n ? (size_t)left : n;
            if (!consume_data(q, bytes, take) || (q->pos == q->ops[q->cur].end && !advance(q)))
                return qfail(q, err, GPT2_ERR_NOMEM, "out of memory");
            q->received += take;
            break;
        }
        case Q_DONE:
            return qfail(q, err, GPT2_ERR_FORMAT, "%s has extra bytes after the tensor data", q->source);
        default:
            return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_quantizer_feed: bad state");
        }
        bytes += take;
        n -= take;
    }
    return GPT2_OK;
}

gpt2_err gpt2_quantizer_finish(gpt2_quantizer *q, gpt2_error *err) {
    if (!q) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_quantizer_finish: NULL argument");
    switch (q->state) {
    case Q_FAILED:
        if (err) *err = q->failure;
        return q->failure.code;
    case Q_DONE: return GPT2_OK;
    case Q_LEN:
        if (q->received == 0) return qfail(q, err, GPT2_ERR_FORMAT, "%s is empty", q->source);
        /* fall through */
    default:
        return qfail(q, err, GPT2_ERR_FORMAT, "%s is truncated: got %llu bytes", q->source,
                     (unsigned long long)q->received);
    }
}

/* ---- native convenience ---- */

#define CHUNK (4u << 20)

static int drain(gpt2_quantizer *q, FILE *f) {
    const uint8_t *p;
    size_t n = gpt2_quantizer_output(q, &p);
    if (n && fwrite(p, 1, n, f) != n) return 0;
    gpt2_quantizer_consume(q, n);
    return 1;
}

gpt2_err gpt2_quantize_file(const char *in_path, const char *out_path, gpt2_dtype type, char *summary,
                            size_t summary_len, gpt2_error *err) {
    if (!in_path || !out_path) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_quantize_file: NULL argument");
    size_t ol = strlen(out_path);
    char *tmp = malloc(ol + 5);
    uint8_t *chunk = malloc(CHUNK);
    gpt2_quantizer *q = NULL;
    FILE *in = NULL, *out = NULL;
    gpt2_err rc = GPT2_OK;
    if (!tmp || !chunk) {
        rc = gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(tmp, out_path, ol);
    memcpy(tmp + ol, ".tmp", 5);
    if ((rc = gpt2_quantizer_create(type, in_path, &q, err))) goto done;
    if (!(in = fopen(in_path, "rb"))) {
        rc = gpt2_fail(err, GPT2_ERR_IO, "cannot open %s: %s", in_path, strerror(errno));
        goto done;
    }
    if (!(out = fopen(tmp, "wb"))) {
        rc = gpt2_fail(err, GPT2_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto done;
    }
    for (;;) {
        size_t n = fread(chunk, 1, CHUNK, in);
        if ((rc = gpt2_quantizer_feed(q, chunk, n, err))) goto done;
        if (!drain(q, out)) {
            rc = gpt2_fail(err, GPT2_ERR_IO, "error writing %s: %s", tmp, strerror(errno));
            goto done;
        }
        if (n < CHUNK) break;
    }
    if (ferror(in)) {
        rc = gpt2_fail(err, GPT2_ERR_IO, "error reading %s", in_path);
        goto done;
    }
    if ((rc = gpt2_quantizer_finish(q, err))) goto done;
    if (!drain(q, out)) {
        rc = gpt2_fail(err, GPT2_ERR_IO, "error writing %s: %s", tmp, strerror(errno));
        goto done;
    }
    int bad = fclose(out);
    out = NULL;
    if (bad) {
        rc = gpt2_fail(err, GPT2_ERR_IO, "error writing %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (rename(tmp, out_path) != 0) {
        rc = gpt2_fail(err, GPT2_ERR_IO, "cannot rename %s to %s: %s", tmp, out_path, strerror(errno));
        goto done;
    }
    if (summary && summary_len) snprintf(summary, summary_len, "%s", gpt2_quantizer_summary(q));
done:
    if (in) fclose(in);
    if (out) fclose(out);
    if (rc && tmp) remove(tmp);
    gpt2_quantizer_free(q);
    free(chunk);
    free(tmp);
    return rc;
}
