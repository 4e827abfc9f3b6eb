/* quantize.c - q8_0 quantization and the streaming checkpoint converter (see quantize.h). */
#include "quantize.h"

#include <errno.h>
#include <math.h>
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

enum op_kind {
    OP_DROP,   /* mask buffers: not written */
    OP_COPY,   /* bytes copied unchanged */
    OP_F16,    /* float elements -> F16, same shape */
    OP_Q8_ROWS,/* [out, in] source -> NAME.q8 streamed row by row, NAME.scale at the end */
    OP_Q8_T    /* Conv1D [in, out] source -> NAME.q8 [out, in] and NAME.scale at the end */
};

typedef struct q_op {
    enum op_kind kind;
    gpt2_st_dtype dtype;
    unsigned es;
    size_t cols;         /* source columns (2-D weights) */
    size_t out_rows, in; /* q8: the matrix [out_rows, in] */
} q_op;

struct gpt2_quantizer {
    gpt2_dtype type;
    gpt2_st_reader *reader; /* reads the input; holds the sticky error */
    const char *source;     /* the reader's source name */
    q_op *ops;              /* per input tensor */
    uint64_t out_size;      /* total output file size */
    uint8_t *out;           /* output produced, not yet taken: out[taken .. len) */
    size_t out_len, out_cap, out_taken;
    int8_t *qbuf;           /* the current Conv1D tensor's q8 output */
    uint16_t *sbuf;         /* the current tensor's scales */
    char summary[256];
};

static gpt2_err plan_convert(void *ctx, const gpt2_st_header *h, gpt2_st_route *route, gpt2_error *err);
static gpt2_err sink_convert(void *ctx, size_t i, uint64_t first, const uint8_t *src, size_t count, gpt2_error *err);
static gpt2_err op_done(void *ctx, size_t i, gpt2_error *err);

gpt2_err gpt2_quantizer_create(gpt2_dtype type, const char *source, gpt2_quantizer **out, gpt2_error *err) {
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_quantizer_create: out is NULL");
    *out = NULL;
    if (type != GPT2_DTYPE_F16 && type != GPT2_DTYPE_Q8_0)
        return gpt2_fail(err, GPT2_ERR_ARG, "quantize: the output type must be q8_0 or f16");
    gpt2_quantizer *q = calloc(1, sizeof *q);
    if (!q) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory creating the converter");
    const gpt2_st_callbacks cb = {q, plan_convert, sink_convert, op_done};
    gpt2_err rc = gpt2_st_reader_create(source, &cb, &q->reader, err);
    if (rc) {
        free(q);
        return rc;
    }
    q->source = gpt2_st_reader_source(q->reader);
    q->type = type;
    *out = q;
    return GPT2_OK;
}

void gpt2_quantizer_free(gpt2_quantizer *q) {
    if (!q) return;
    gpt2_st_reader_free(q->reader);
    free(q->ops);
    free(q->out);
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

/* Counts while planning. */
typedef struct q_plan {
    gpt2_st_writer hdr; /* the output's header; its data_bytes: the output's data so far */
    size_t n_linear, n_q8, n_kept, max_stage, max_q, max_s;
    char kept[160];     /* names of the weights kept in f16 (the first few) */
} q_plan;

/* Plans tensor t (its op, its header entries in the output). */
static gpt2_err plan_op(gpt2_quantizer *q, const gpt2_st_tensor *t, q_op *op, gpt2_st_route *route, q_plan *p,
                        gpt2_error *err) {
    char nm[96];
    gpt2_st_name name;
    gpt2_st_name_parse(t->name, t->name_len, &name);
    op->dtype = t->dtype;
    op->es = t->elem_size;
    if (name.variant != GPT2_ST_PLAIN && name.linear)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s is already quantized (tensor '%s')", q->source,
                         gpt2_st_printable(t->name, t->name_len, nm));
    int floaty = t->dtype != GPT2_ST_OTHER;
    if (name.mask) {
        op->kind = OP_DROP;
        return GPT2_OK;
    }
    if (name.linear && floaty) {
        if (t->ndim != 2)
            return gpt2_fail(err, GPT2_ERR_SHAPE, "%s: tensor '%s' should have 2 dimensions, has %d", q->source,
                             gpt2_st_printable(t->name, t->name_len, nm), t->ndim);
        p->n_linear++;
        size_t rows = (size_t)t->shape[0];
        op->cols = (size_t)t->shape[1];
        op->out_rows = name.conv1d ? op->cols : rows;
        op->in = name.conv1d ? rows : op->cols;
        if (q->type == GPT2_DTYPE_Q8_0 && op->in % GPT2_Q8_BLOCK == 0) {
            op->kind = name.conv1d ? OP_Q8_T : OP_Q8_ROWS;
            *route = (gpt2_st_route){GPT2_ST_BANDS, name.conv1d ? GPT2_Q8_BLOCK : 1, op->cols};
            uint64_t shape[2] = {op->out_rows, op->in};
            uint64_t numel = t->numel, scales = numel / GPT2_Q8_BLOCK;
            gpt2_st_writer_add(&p->hdr, t->name, t->name_len, ".q8", "I8", 2, shape, numel);
            shape[1] = op->in / GPT2_Q8_BLOCK;
            gpt2_st_writer_add(&p->hdr, t->name, t->name_len, ".scale", "F16", 2, shape, 2 * scales);
            if (name.conv1d && numel > p->max_q) p->max_q = (size_t)numel;
            if (scales > p->max_s) p->max_s = (size_t)scales;
            p->n_q8++;
            return GPT2_OK;
        }
        if (q->type == GPT2_DTYPE_Q8_0) {
            p->n_kept++;
            size_t l = strlen(p->kept);
            if (l < 100)
                snprintf(p->kept + l, sizeof p->kept - l, "%s%s", l ? ", " : "",
                         gpt2_st_printable(t->name, t->name_len, nm));
        }
        op->kind = OP_F16;
    } else {
        op->kind = floaty && q->type == GPT2_DTYPE_F16 ? OP_F16 : OP_COPY;
    }
    if (op->kind == OP_F16) {
        route->how = GPT2_ST_ELEMENTS;
        gpt2_st_writer_add(&p->hdr, t->name, t->name_len, "", "F16", t->ndim, t->shape, 2 * t->numel);
    } else {
        route->how = GPT2_ST_BYTES;
        gpt2_st_writer_add(&p->hdr, t->name, t->name_len, "", t->dtype_name, t->ndim, t->shape, t->end - t->begin);
    }
    return GPT2_OK;
}

/* The reader's plan callback: plans every tensor, writes the output's length and header. */
static gpt2_err plan_convert(void *ctx, const gpt2_st_header *h, gpt2_st_route *route, gpt2_error *err) {
    gpt2_quantizer *q = ctx;
    if (!(q->ops = calloc(h->count ? h->count : 1, sizeof *q->ops)))
        return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    q_plan p;
    memset(&p, 0, sizeof p);
    if (q->type == GPT2_DTYPE_Q8_0)
        gpt2_st_writer_begin(&p.hdr, "\"format\":\"pt\",\"gpt2_wasm.quant\":\"q8_0\",\"gpt2_wasm.version\":\"1\","
                                     "\"gpt2_wasm.layout\":\"NAME.q8: I8 [out, in] (Conv1D weights transposed from [in, out]); "
                                     "NAME.scale: F16 [out, in/32]; W[o, i] = q8[o, i] * scale[o, i / 32]\","
                                     "\"gpt2_wasm.rule\":\"per 32 values: scale = fp16(max|v| / 127), q = "
                                     "round-half-away(v / scale) clamped to [-127, 127]\"");
    else
        gpt2_st_writer_begin(&p.hdr, "\"format\":\"pt\"");
    gpt2_err rc = GPT2_OK;
    for (size_t i = 0; i < h->count && !rc; i++) rc = plan_op(q, &h->tensors[i], &q->ops[i], &route[i], &p, err);
    if (!rc) rc = gpt2_st_writer_end(&p.hdr, err);
    if (!rc && p.n_linear == 0)
        rc = gpt2_fail(err, GPT2_ERR_SHAPE, "%s: no GPT-2 weights found (wte.weight, h.N.attn.c_attn.weight, ...)",
                       q->source);
    if (rc) {
        gpt2_st_writer_free(&p.hdr);
        return rc;
    }
    if (q->type == GPT2_DTYPE_Q8_0)
        snprintf(q->summary, sizeof q->summary, "%zu weights in q8_0%s%s%s", p.n_q8,
                 p.n_kept ? ", kept in f16 (in is not a multiple of 32): " : "", p.kept,
                 p.n_kept > 0 && strlen(p.kept) >= 100 ? " ..." : "");
    else
        snprintf(q->summary, sizeof q->summary, "every float tensor in f16 (%zu weights)", p.n_linear);
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)p.hdr.len >> (8 * k));
    q->out_size = 8 + (uint64_t)p.hdr.len + p.hdr.data_bytes;
    int ok = put(q, len8, 8) && put(q, p.hdr.text, p.hdr.len);
    gpt2_st_writer_free(&p.hdr);
    if (p.max_q) q->qbuf = malloc(p.max_q);
    if (p.max_s) q->sbuf = malloc(p.max_s * sizeof(uint16_t));
    if (!ok || (p.max_q && !q->qbuf) || (p.max_s && !q->sbuf)) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    return GPT2_OK;
}

/* ---- data ---- */

/* The reader's sink: the data of tensor i (bytes, elements, or rows of a q8 weight). */
static gpt2_err sink_convert(void *ctx, size_t i, uint64_t first, const uint8_t *src, size_t count, gpt2_error *err) {
    gpt2_quantizer *q = ctx;
    const q_op *op = &q->ops[i];
    size_t es = op->es, cols = op->cols, nblk = op->in / GPT2_Q8_BLOCK;
    float v[512];
    if (op->kind == OP_COPY && !put(q, src, count)) goto oom;
    if (op->kind == OP_F16) {
        uint8_t buf[1024];
        while (count) {
            size_t k = count < 512 ? count : 512;
            gpt2_st_decode(op->dtype, src, k, v);
            for (size_t j = 0; j < k; j++) {
                uint16_t h = gpt2_f32_to_f16(v[j]);
                buf[2 * j] = (uint8_t)h;
                buf[2 * j + 1] = (uint8_t)(h >> 8);
            }
            if (!put(q, buf, 2 * k)) goto oom;
            src += k * es;
            count -= k;
        }
    }
    if (op->kind == OP_Q8_ROWS) { /* rows first .. first+count-1, each an output row */
        for (size_t r = (size_t)first; r < first + count; r++, src += cols * es) {
            int8_t qrow[512];
            for (size_t b = 0; b < nblk; b++) {
                size_t at = b % (sizeof qrow / GPT2_Q8_BLOCK);
                gpt2_st_decode(op->dtype, src + b * GPT2_Q8_BLOCK * es, GPT2_Q8_BLOCK, v);
                gpt2_q8_quantize_block(v, qrow + at * GPT2_Q8_BLOCK, &q->sbuf[r * nblk + b], NULL);
                if ((at == sizeof qrow / GPT2_Q8_BLOCK - 1 || b == nblk - 1) && !put(q, qrow, (at + 1) * GPT2_Q8_BLOCK))
                    goto oom;
            }
        }
    }
    if (op->kind == OP_Q8_T) { /* bands of 32 rows: one block of every output row */
        for (size_t i0 = (size_t)first; i0 < first + count; i0 += GPT2_Q8_BLOCK, src += GPT2_Q8_BLOCK * cols * es) {
            for (size_t o = 0; o < cols; o++) {
                for (size_t k = 0; k < GPT2_Q8_BLOCK; k++) v[k] = gpt2_st_load(op->dtype, src + (k * cols + o) * es);
                gpt2_q8_quantize_block(v, q->qbuf + o * op->in + i0, &q->sbuf[o * nblk + i0 / GPT2_Q8_BLOCK], NULL);
            }
        }
    }
    return GPT2_OK;
oom:
    return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
}

/* The reader's done callback: tensor i is complete, write what was held back (q8 data of a
 * Conv1D weight, the scales). */
static gpt2_err op_done(void *ctx, size_t i, gpt2_error *err) {
    gpt2_quantizer *q = ctx;
    const q_op *op = &q->ops[i];
    size_t n = op->out_rows * op->in;
    if (op->kind == OP_Q8_T && !put(q, q->qbuf, n)) goto oom;
    if (op->kind == OP_Q8_T || op->kind == OP_Q8_ROWS) {
        for (size_t k = 0; k < n / GPT2_Q8_BLOCK; k++) { /* little-endian */
            uint8_t b2[2] = {(uint8_t)q->sbuf[k], (uint8_t)(q->sbuf[k] >> 8)};
            if (!put(q, b2, 2)) goto oom;
        }
    }
    return GPT2_OK;
oom:
    return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
}

gpt2_err gpt2_quantizer_feed(gpt2_quantizer *q, const uint8_t *bytes, size_t n, gpt2_error *err) {
    if (!q || (!bytes && n)) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_quantizer_feed: NULL argument");
    return gpt2_st_reader_feed(q->reader, bytes, n, err);
}

gpt2_err gpt2_quantizer_finish(gpt2_quantizer *q, gpt2_error *err) {
    if (!q) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_quantizer_finish: NULL argument");
    return gpt2_st_reader_finish(q->reader, err);
}

/* ---- native convenience ---- */

typedef struct drain_ctx {
    gpt2_quantizer *q;
    FILE *out;
    const char *path;
} drain_ctx;

/* Writes the output produced so far. */
static gpt2_err drain(void *ctx, gpt2_error *err) {
    drain_ctx *d = ctx;
    const uint8_t *p;
    size_t n = gpt2_quantizer_output(d->q, &p);
    if (n && fwrite(p, 1, n, d->out) != n)
        return gpt2_fail(err, GPT2_ERR_IO, "error writing %s: %s", d->path, strerror(errno));
    gpt2_quantizer_consume(d->q, n);
    return GPT2_OK;
}

gpt2_err gpt2_quantize_file(const char *in_path, const char *out_path, gpt2_dtype type, char *summary,
                            size_t summary_len, gpt2_error *err) {
    if (!in_path || !out_path) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_quantize_file: NULL argument");
    size_t ol = strlen(out_path);
    char *tmp = malloc(ol + 5);
    drain_ctx d = {NULL, NULL, tmp};
    gpt2_err rc =
        tmp ? gpt2_quantizer_create(type, in_path, &d.q, err) : gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    if (!rc) {
        memcpy(tmp, out_path, ol);
        memcpy(tmp + ol, ".tmp", 5);
        if (!(d.out = fopen(tmp, "wb"))) rc = gpt2_fail(err, GPT2_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    if (!rc) rc = gpt2_st_reader_feed_file(d.q->reader, in_path, drain, &d, err);
    if (d.out && fclose(d.out) != 0 && !rc)
        rc = gpt2_fail(err, GPT2_ERR_IO, "error writing %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, out_path) != 0)
        rc = gpt2_fail(err, GPT2_ERR_IO, "cannot rename %s to %s: %s", tmp, out_path, strerror(errno));
    if (!rc && summary && summary_len) snprintf(summary, summary_len, "%s", gpt2_quantizer_summary(d.q));
    if (rc && d.out) remove(tmp);
    gpt2_quantizer_free(d.q);
    free(tmp);
    return rc;
}
