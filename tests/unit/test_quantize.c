/* test_quantize.c - weight precisions: fp16 rounding, the q8_0 rule, loading with forced
 * precisions, the streaming converter (gpt2 quantize), quantized files, malformed quantized
 * files, and the memory estimate with its messages. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, rmdir */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fp16.h"
#include "loader.h"
#include "quantize.h"
#include "safetensors.h"
#include "st_writer.h"
#include "test_util.h"
#include "weights.h"

/* 2 layers, C = 32 (q8_0-able), n_inner = 48 (the MLP projection's in is not a multiple of
 * 32: it stays f16 under q8_0), V = 19, n_ctx = 6. */
enum { L = 2, C = 32, V = 19, T = 6, I = 48 };
static const char *const CONFIG =
    "{\"activation_function\":\"gelu_new\",\"n_layer\":2,\"n_head\":2,\"n_embd\":32,"
    "\"vocab_size\":19,\"n_positions\":6,\"layer_norm_epsilon\":1e-05,\"n_inner\":48}";

/* ---- primitives ------------------------------------------------------------------------ */

static float f_bits(uint32_t u) { return gpt2_f32_from_bits(u); }

static void test_f16_rounding(void) {
    static const struct { float f; uint16_t h; } cases[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.0f, 0x0000}, {65504.0f, 0x7bff}, {65519.0f, 0x7bff},
        {65520.0f, 0x7c00}, {1e10f, 0x7c00}, {-1e10f, 0xfc00},
        {5.9604644775390625e-08f, 0x0001},           /* 2^-24, the smallest subnormal */
        {2.98023223876953125e-08f, 0x0000},          /* 2^-25: a tie, to even (0) */
        {8.940696716308594e-08f, 0x0002},            /* 1.5 * 2^-24: a tie, to even (2) */
        {6.103515625e-05f, 0x0400},                  /* 2^-14, the smallest normal */
        {1.00048828125f, 0x3c00},                    /* 1 + 2^-11: a tie, to even */
        {1.00146484375f, 0x3c02},                    /* 1 + 3 * 2^-11: a tie, to even (up) */
        {1.0004883f, 0x3c00},
        {0.1f, 0x2e66},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = gpt2_f32_to_f16(cases[i].f);
        CHECK(h == cases[i].h, "f16(%.10g) = %04x, want %04x", (double)cases[i].f, h, cases[i].h);
    }
    CHECK(gpt2_f32_to_f16(-0.0f) == 0x8000, "-0");
    uint16_t nan = gpt2_f32_to_f16(f_bits(0x7fc00000u));
    CHECK((nan & 0x7c00) == 0x7c00 && (nan & 0x3ff), "NaN stays NaN: %04x", nan);
    /* every finite half round-trips exactly; midpoints between neighbours round to even */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7c00u) == 0x7c00u) continue;
        float f = gpt2_f16_to_f32((uint16_t)h);
        if (gpt2_f32_to_f16(f) != h) bad++;
        if ((h & 0x7fffu) < 0x7bffu) {
            double mid = ((double)f + (double)gpt2_f16_to_f32((uint16_t)(h + 1))) / 2; /* same sign, next magnitude */
            uint16_t want = (h & 1u) ? (uint16_t)(h + 1) : (uint16_t)h;
            if (gpt2_f32_to_f16((float)mid) != want) bad++;
        }
    }
    CHECK(bad == 0, "%d halves do not round-trip or tie to even", bad);
}

static void test_q8_block(void) {
    float v[32];
    int8_t q[32];
    uint16_t hb;
    float s;
    memset(v, 0, sizeof v);
    gpt2_q8_quantize_block(v, q, &hb, &s);
    int nz = 0;
    for (int j = 0; j < 32; j++) nz += q[j] != 0;
    CHECK(hb == 0 && s == 0.0f && nz == 0, "all-zero block: scale 0, q 0");

    /* max 127: scale 1 exactly; q = v rounded half away from zero */
    for (int j = 0; j < 32; j++) v[j] = (float)(j - 16) + 0.5f;
    v[0] = 127.0f;
    gpt2_q8_quantize_block(v, q, &hb, &s);
    CHECK(hb == 0x3c00 && s == 1.0f, "scale 1: %04x %g", hb, (double)s);
    CHECK(q[0] == 127 && q[1] == -15 && q[16] == 1 && q[15] == -1 && q[31] == 16, "half away: %d %d %d %d %d", q[0],
          q[1], q[16], q[15], q[31]);

    /* the scale is rounded to fp16 before dividing: max/127 = 0.1 -> fp16 0.0999755859375 */
    for (int j = 0; j < 32; j++) v[j] = 0.0f;
    v[3] = 12.7f;
    v[4] = -12.7f;
    v[5] = 0.05f;
    gpt2_q8_quantize_block(v, q, &hb, &s);
    CHECK(hb == gpt2_f32_to_f16(12.7f / 127.0f) && s == gpt2_f16_to_f32(hb), "fp16 scale");
    CHECK(q[3] == 127 && q[4] == -127 && q[5] == (int8_t)roundf(0.05f / s), "clamped to +-127: %d %d %d", q[3], q[4], q[5]);

    /* tiny values whose scale underflows fp16 quantize to zero; NaN to 0 */
    for (int j = 0; j < 32; j++) v[j] = 1e-9f;
    v[7] = NAN;
    gpt2_q8_quantize_block(v, q, &hb, &s);
    nz = 0;
    for (int j = 0; j < 32; j++) nz += q[j] != 0;
    CHECK(s == 0.0f && nz == 0, "underflowing scale");

    /* random blocks: |v - q s| <= s / 2 (+ rounding), |q| <= 127 */
    unsigned seed = 7;
    double worst = 0;
    for (int it = 0; it < 2000; it++) {
        for (int j = 0; j < 32; j++) {
            seed = seed * 1103515245u + 12345u;
            v[j] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * (float)(1 + it % 7);
        }
        gpt2_q8_quantize_block(v, q, &hb, &s);
        for (int j = 0; j < 32; j++) {
            double e = fabs((double)v[j] - (double)q[j] * s) / s;
            if (e > worst) worst = e;
        }
    }
    CHECK(worst <= 0.5 + 1e-3 || worst < 1.0, "worst error %g scales", worst);
}

/* ---- checkpoints ----------------------------------------------------------------------- */

typedef struct tspec {
    char name[64];
    int ndim;
    uint64_t shape[2];
} tspec;

static int specs(tspec *s, int masks) {
    int n = 0;
#define ADD(nm, nd, a, b) (snprintf(s[n].name, sizeof s[n].name, "%s", nm), s[n].ndim = nd, s[n].shape[0] = a, s[n].shape[1] = b, n++)
    char nm[64];
    ADD("wte.weight", 2, V, C);
    ADD("wpe.weight", 2, T, C);
    for (int l = 0; l < L; l++) {
#define LAY(suf, nd, a, b) (snprintf(nm, sizeof nm, "h.%d.%s", l, suf), ADD(nm, nd, a, b))
        LAY("ln_1.weight", 1, C, 0);
        LAY("ln_1.bias", 1, C, 0);
        LAY("attn.c_attn.weight", 2, C, 3 * C);
        LAY("attn.c_attn.bias", 1, 3 * C, 0);
        if (masks) LAY("attn.bias", 2, T, T);
        LAY("attn.c_proj.weight", 2, C, C);
        LAY("attn.c_proj.bias", 1, C, 0);
        LAY("ln_2.weight", 1, C, 0);
        LAY("ln_2.bias", 1, C, 0);
        LAY("mlp.c_fc.weight", 2, C, I);
        LAY("mlp.c_fc.bias", 1, I, 0);
        LAY("mlp.c_proj.weight", 2, I, C);
        LAY("mlp.c_proj.bias", 1, C, 0);
#undef LAY
    }
    ADD("ln_f.weight", 1, C, 0);
    ADD("ln_f.bias", 1, C, 0);
#undef ADD
    return n;
}

/* A checkpoint of random values in dtype ("F32", "F16" or "BF16"); deterministic. */
static uint8_t *make_checkpoint(const char *dtype, int masks, size_t *len) {
    tspec s[64];
    int n = specs(s, masks);
    st_writer *w = st_writer_create();
    unsigned seed = 2024;
    size_t es = strcmp(dtype, "F32") ? 2 : 4;
    for (int k = 0; k < n; k++) {
        uint64_t cnt = s[k].shape[0] * (s[k].ndim == 2 ? s[k].shape[1] : 1);
        uint8_t *b = malloc((size_t)cnt * es);
        for (uint64_t i = 0; i < cnt; i++) {
            seed = seed * 1103515245u + 12345u;
            float v = ((float)(seed >> 8) / 16777216.0f - 0.5f) * (1.0f + (float)(i % 5));
            if (i % 97 == 3) v *= 40.0f; /* outliers */
            if (i % 211 == 5) v = 0.0f;
            uint32_t u = st_float_bits(v);
            if (es == 4) {
                for (int j = 0; j < 4; j++) b[4 * i + (size_t)j] = (uint8_t)(u >> (8 * j));
            } else {
                uint16_t h = !strcmp(dtype, "F16") ? gpt2_f32_to_f16(v) : (uint16_t)(u >> 16);
                b[2 * i] = (uint8_t)h;
                b[2 * i + 1] = (uint8_t)(h >> 8);
            }
        }
        st_writer_add(w, s[k].name, strstr(s[k].name, ".attn.bias") ? "F32" : dtype, s[k].ndim, s[k].shape, b,
                      (size_t)cnt * es);
        free(b);
    }
    uint8_t *f = st_writer_build(w, 1, len);
    st_writer_free(w);
    return f;
}

/* Streams a file through a loader in chunks of `chunk` bytes (0: whole; -1: random 1..300). */
static gpt2_err load(const uint8_t *f, size_t len, gpt2_precision p, int chunk, gpt2_weights **out, gpt2_error *e) {
    gpt2_loader_options opt = {0, NULL, p, NULL};
    gpt2_loader *ld = NULL;
    *out = NULL;
    gpt2_err rc = gpt2_loader_create(CONFIG, strlen(CONFIG), &opt, &ld, e);
    if (rc) return rc;
    unsigned seed = 99;
    for (size_t off = 0; off < len && !rc;) {
        size_t n = chunk == 0 ? len : chunk > 0 ? (size_t)chunk : 1 + (seed = seed * 1103515245u + 12345u) % 300;
        if (n > len - off) n = len - off;
        rc = gpt2_loader_feed(ld, f + off, n, e);
        off += n;
    }
    if (!rc) rc = gpt2_loader_finish(ld, out, e);
    gpt2_loader_free(ld);
    return rc;
}

/* Converts a file in memory with the streaming converter (random chunks; output drained
 * at random moments). Returns the output or NULL (e filled). */
static uint8_t *convert(const uint8_t *f, size_t len, gpt2_dtype type, size_t *out_len, gpt2_error *e) {
    gpt2_quantizer *q = NULL;
    *out_len = 0;
    if (gpt2_quantizer_create(type, "in.safetensors", &q, e)) return NULL;
    st_buf out = {0};
    unsigned seed = 5;
    gpt2_err rc = GPT2_OK;
    for (size_t off = 0; off < len && !rc;) {
        size_t n = 1 + (seed = seed * 1103515245u + 12345u) % 500;
        if (n > len - off) n = len - off;
        rc = gpt2_quantizer_feed(q, f + off, n, e);
        off += n;
        if (seed % 3) {
            const uint8_t *p;
            size_t k = gpt2_quantizer_output(q, &p);
            size_t part = seed % 5 ? k : k / 2; /* sometimes take only part */
            st_buf_put(&out, p, part);
            gpt2_quantizer_consume(q, part);
        }
    }
    if (!rc) rc = gpt2_quantizer_finish(q, e);
    if (!rc) {
        const uint8_t *p;
        size_t k = gpt2_quantizer_output(q, &p);
        st_buf_put(&out, p, k);
        gpt2_quantizer_consume(q, k);
        CHECK(out.len == gpt2_quantizer_output_size(q), "output size %zu vs announced %llu", out.len,
              (unsigned long long)gpt2_quantizer_output_size(q));
    }
    gpt2_quantizer_free(q);
    if (rc) {
        free(out.p);
        return NULL;
    }
    *out_len = out.len;
    return out.p;
}

static size_t matrix_bytes(const gpt2_matrix *m) { /* packed: q8_0 scales included */
    return (size_t)gpt2_matrix_bytes(m->type, (uint64_t)m->rows, (uint64_t)m->cols);
}

/* Block b of row o of a packed q8_0 matrix: its 32 values and its scale. */
static void q8_block(const gpt2_matrix *m, int o, int b, int8_t q[32], float *scale) {
    const unsigned char *d = m->data;
    uint64_t R = (uint64_t)m->rows, K = (uint64_t)m->cols;
    for (int i = 0; i < 32; i++) q[i] = (int8_t)d[gpt2_q8_value_offset(R, K, (uint64_t)o, (uint64_t)(32 * b + i))];
    uint16_t h;
    memcpy(&h, d + gpt2_q8_scale_offset(R, K, (uint64_t)o, (uint64_t)b), sizeof h);
    *scale = gpt2_f16_to_f32(h);
}

/* Same dtypes and the same bits in every matrix (data and scales). */
static int same_matrices(const gpt2_weights *a, const gpt2_weights *b) {
    const gpt2_matrix *ma[2 + 4 * L], *mb[2 + 4 * L];
    int n = 0;
    ma[n] = &a->wte, mb[n++] = &b->wte;
    ma[n] = &a->lm_head, mb[n++] = &b->lm_head;
    for (int l = 0; l < L; l++) {
        ma[n] = &a->layers[l].qkv_w, mb[n++] = &b->layers[l].qkv_w;
        ma[n] = &a->layers[l].attn_proj_w, mb[n++] = &b->layers[l].attn_proj_w;
        ma[n] = &a->layers[l].fc_w, mb[n++] = &b->layers[l].fc_w;
        ma[n] = &a->layers[l].mlp_proj_w, mb[n++] = &b->layers[l].mlp_proj_w;
    }
    for (int k = 0; k < n; k++) {
        if (ma[k]->type != mb[k]->type || ma[k]->rows != mb[k]->rows || ma[k]->cols != mb[k]->cols) return 0;
        if (memcmp(ma[k]->data, mb[k]->data, matrix_bytes(ma[k]))) return 0;
    }
    return 1;
}

/* Reads the source value (i, o) of a tensor of the F32 checkpoint. */
static float src_value(const uint8_t *f, const char *name, uint64_t idx) {
    gpt2_st_header *h = NULL;
    uint64_t n = gpt2_st_read_u64le(f);
    gpt2_error e;
    if (gpt2_st_header_parse((const char *)f + 8, (size_t)n, "x", &h, &e)) return NAN;
    const gpt2_st_tensor *t = gpt2_st_find(h, name);
    float v = NAN;
    if (t) {
        const uint8_t *p = f + 8 + n + t->begin + 4 * idx;
        v = gpt2_f32_from_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    }
    gpt2_st_header_free(h);
    return v;
}

/* Element (o, i) of a matrix of any dtype, as float. */
static float mat_at(const gpt2_matrix *m, int o, int i) { return gpt2_matrix_get(m, o, i); }

/* The same safetensors file with every NAME.scale moved before its NAME.q8. */
static uint8_t *scales_first(const uint8_t *f, size_t len, size_t *out_len) {
    uint64_t hn = gpt2_st_read_u64le(f);
    gpt2_st_header *h = NULL;
    gpt2_error e;
    *out_len = 0;
    if (gpt2_st_header_parse((const char *)f + 8, (size_t)hn, "x", &h, &e) || 8 + hn + h->data_size != len) {
        gpt2_st_header_free(h);
        return NULL;
    }
    st_writer *w = st_writer_create();
    const uint8_t *data = f + 8 + hn;
    for (size_t i = 0; i < h->count; i++) {
        const gpt2_st_tensor *t = &h->tensors[i];
        if (t->name_len > 6 && !strcmp(t->name + t->name_len - 6, ".scale")) continue;
        if (t->name_len > 3 && !strcmp(t->name + t->name_len - 3, ".q8")) {
            char sn[128];
            snprintf(sn, sizeof sn, "%.*s.scale", (int)t->name_len - 3, t->name);
            const gpt2_st_tensor *sc = gpt2_st_find(h, sn);
            if (sc) st_writer_add(w, sc->name, sc->dtype_name, sc->ndim, sc->shape, data + sc->begin, (size_t)(sc->end - sc->begin));
        }
        st_writer_add(w, t->name, t->dtype_name, t->ndim, t->shape, data + t->begin, (size_t)(t->end - t->begin));
    }
    uint8_t *out = st_writer_build(w, 1, out_len);
    st_writer_free(w);
    gpt2_st_header_free(h);
    return out;
}

static void test_forced_and_files(void) {
    size_t len32, len16, lenb;
    uint8_t *f32 = make_checkpoint("F32", 1, &len32), *f16 = make_checkpoint("F16", 0, &len16),
            *fb = make_checkpoint("BF16", 0, &lenb);
    gpt2_error e = {0};
    gpt2_weights *ref = NULL, *w = NULL;

    /* forced q8_0 from F32: the same weights whatever the chunking */
    CHECK_OK(load(f32, len32, GPT2_PRECISION_Q8_0, 0, &ref, &e), &e);
    if (!ref) goto out;
    CHECK(ref->wte.type == GPT2_DTYPE_Q8_0 && ref->layers[0].qkv_w.type == GPT2_DTYPE_Q8_0 &&
              ref->layers[1].fc_w.type == GPT2_DTYPE_Q8_0 && ref->layers[0].attn_proj_w.type == GPT2_DTYPE_Q8_0 &&
              ref->layers[0].mlp_proj_w.type == GPT2_DTYPE_F16 && ref->lm_head.data == ref->wte.data,
          "q8_0 plan (mlp_proj in f16: in = 48)");
    CHECK(gpt2_weights_main_dtype(ref) == GPT2_DTYPE_Q8_0, "main dtype");
    uint64_t pieces = 0;
    for (int i = 0; i < ref->n_pieces; i++) pieces += ref->pieces[i].bytes;
    CHECK(ref->n_pieces == 1 + ref->config.n_layer && pieces == ref->arena_bytes &&
              ref->arena_bytes + ref->config.n_layer * sizeof(gpt2_layer_weights) + sizeof(gpt2_weights) +
                      (size_t)ref->n_pieces * sizeof(gpt2_weights_piece) + (3u + (unsigned)ref->n_pieces) * GPT2_ALLOC_OVERHEAD ==
                  gpt2_weights_bytes_dtype(&ref->config, 0, GPT2_DTYPE_Q8_0),
          "sized exactly per dtype");
    static const int chunks[] = {1, 7, 33, -1};
    for (size_t c = 0; c < 4; c++) {
        CHECK_OK(load(f32, len32, GPT2_PRECISION_Q8_0, chunks[c], &w, &e), &e);
        CHECK(w && same_matrices(ref, w) && same_pieces(ref, w),
              "q8_0 chunk %d differs", chunks[c]);
        gpt2_weights_free(w);
        w = NULL;
    }
    /* values: block (o, b) of c_attn of layer 1 follows the rule from the source [in, out] */
    {
        const gpt2_matrix *m = &ref->layers[1].qkv_w;
        int bad = 0;
        for (int o = 0; o < 3 * C; o += 5) {
            float v[32];
            int8_t qq[32];
            float s;
            for (int i = 0; i < 32; i++) v[i] = src_value(f32, "h.1.attn.c_attn.weight", (uint64_t)i * 3 * C + (uint64_t)o);
            gpt2_q8_quantize_block(v, qq, NULL, &s);
            int8_t got[32];
            float gs;
            q8_block(m, o, 0, got, &gs);
            if (gs != s || memcmp(got, qq, 32)) bad++;
        }
        CHECK(bad == 0, "%d c_attn rows differ from the rule", bad);
        const gpt2_matrix *t = &ref->wte;
        float v[32];
        int8_t qq[32];
        float s;
        for (int i = 0; i < 32; i++) v[i] = src_value(f32, "wte.weight", 5 * 32 + (uint64_t)i);
        gpt2_q8_quantize_block(v, qq, NULL, &s);
        int8_t got[32];
        float gs;
        q8_block(t, 5, 0, got, &gs);
        CHECK(gs == s && memcmp(got, qq, 32) == 0, "wte row 5");
    }

    /* the converter's q8_0 file loads (auto) into bit-identical weights */
    size_t qlen;
    uint8_t *qf = convert(f32, len32, GPT2_DTYPE_Q8_0, &qlen, &e);
    CHECK(qf != NULL, "convert q8_0: %s", e.message);
    if (qf) {
        CHECK(qlen < len32 / 2, "q8_0 file is smaller: %zu vs %zu", qlen, len32);
        static const gpt2_precision ps[] = {GPT2_PRECISION_AUTO, GPT2_PRECISION_Q8_0};
        for (int k = 0; k < 2; k++) {
            CHECK_OK(load(qf, qlen, ps[k], -1, &w, &e), &e);
            CHECK(w && same_matrices(ref, w), "quantized file vs on-the-fly (%s)", gpt2_precision_name(ps[k]));
            CHECK(w && memcmp(ref->wpe, w->wpe, (size_t)T * C * 4) == 0, "wpe copied as is");
            gpt2_weights_free(w);
            w = NULL;
        }
        /* forced f32 / f16 on a quantized file: q * scale exactly (f16: rounded), whether the
         * scales come after the int8 values (this writer) or before them */
        size_t rlen;
        uint8_t *rf = scales_first(qf, qlen, &rlen);
        for (int order = 0; order < 2; order++)
            for (int p16 = 0; p16 < 2; p16++) {
                CHECK_OK(load(order ? rf : qf, order ? rlen : qlen, p16 ? GPT2_PRECISION_F16 : GPT2_PRECISION_F32, -1,
                              &w, &e), &e);
                if (!w) continue;
                const gpt2_matrix *mats[3] = {&w->wte, &w->layers[1].qkv_w, &w->layers[0].fc_w};
                const gpt2_matrix *refs[3] = {&ref->wte, &ref->layers[1].qkv_w, &ref->layers[0].fc_w};
                int bad = 0;
                for (int k = 0; k < 3; k++) {
                    bad += mats[k]->type != (p16 ? GPT2_DTYPE_F16 : GPT2_DTYPE_F32);
                    for (int o = 0; o < refs[k]->rows; o++)
                        for (int i = 0; i < refs[k]->cols; i++) {
                            float want = mat_at(refs[k], o, i), got = mat_at(mats[k], o, i);
                            if (p16 ? got != gpt2_f16_to_f32(gpt2_f32_to_f16(want)) : got != want) bad++;
                        }
                }
                CHECK(bad == 0, "dequantized to %s (scales %s): %d differ", p16 ? "f16" : "f32",
                      order ? "first" : "last", bad);
                gpt2_weights_free(w);
                w = NULL;
            }
        free(rf);
        /* quantizing a quantized file is refused */
        size_t l2;
        uint8_t *again = convert(qf, qlen, GPT2_DTYPE_Q8_0, &l2, &e);
        CHECK(!again && strstr(e.message, "already quantized"), "%s", e.message);
        free(again);
        /* a plain safetensors reader sees ordinary tensors */
        gpt2_st_header *h = NULL;
        uint64_t hn = gpt2_st_read_u64le(qf);
        CHECK_OK(gpt2_st_header_parse((const char *)qf + 8, (size_t)hn, "q", &h, &e), &e);
        if (h) {
            const gpt2_st_tensor *a = gpt2_st_find(h, "h.0.attn.c_attn.weight.q8"),
                                 *b = gpt2_st_find(h, "h.0.attn.c_attn.weight.scale"),
                                 *c = gpt2_st_find(h, "h.0.mlp.c_proj.weight"), *m = gpt2_st_find(h, "h.0.attn.bias");
            CHECK(a && !strcmp(a->dtype_name, "I8") && a->shape[0] == 3 * C && a->shape[1] == C, "q8 tensor");
            CHECK(b && !strcmp(b->dtype_name, "F16") && b->shape[0] == 3 * C && b->shape[1] == 1, "scale tensor");
            CHECK(c && !strcmp(c->dtype_name, "F16") && c->shape[0] == I && c->shape[1] == C, "kept in f16, [in, out]");
            CHECK(!m, "mask buffers dropped");
        }
        gpt2_st_header_free(h);
    }

    /* f16: forced from F32 == the converter's F16 file (matrices), == F16 source as stored */
    gpt2_weights *a16 = NULL, *b16 = NULL;
    CHECK_OK(load(f32, len32, GPT2_PRECISION_F16, -1, &a16, &e), &e);
    size_t hlen;
    uint8_t *hf = convert(f32, len32, GPT2_DTYPE_F16, &hlen, &e);
    CHECK(hf != NULL, "convert f16: %s", e.message);
    if (hf) CHECK_OK(load(hf, hlen, GPT2_PRECISION_AUTO, 13, &b16, &e), &e);
    CHECK(a16 && b16 && same_matrices(a16, b16) && a16->wte.type == GPT2_DTYPE_F16, "f16 forced vs f16 file");
    gpt2_weights_free(a16);
    gpt2_weights_free(b16);
    a16 = b16 = NULL;
    CHECK_OK(load(f16, len16, GPT2_PRECISION_AUTO, 5, &a16, &e), &e);
    CHECK_OK(load(f16, len16, GPT2_PRECISION_F16, 0, &b16, &e), &e);
    CHECK(a16 && b16 && same_matrices(a16, b16) && a16->layers[1].fc_w.type == GPT2_DTYPE_F16, "F16 as stored");
    /* forced f32 from F16: exact widening */
    CHECK_OK(load(f16, len16, GPT2_PRECISION_F32, -1, &w, &e), &e);
    if (w && a16) {
        int bad = 0;
        const gpt2_matrix *x = &w->layers[1].fc_w, *y = &a16->layers[1].fc_w;
        for (int k = 0; k < x->rows * x->cols; k++)
            bad += ((const float *)x->data)[k] != gpt2_f16_to_f32(((const uint16_t *)y->data)[k]);
        CHECK(bad == 0 && x->type == GPT2_DTYPE_F32, "f32 from F16: %d differ", bad);
    }
    gpt2_weights_free(w);
    w = NULL;
    /* F16 -> q8_0 on the fly == F16 -> q8_0 file */
    gpt2_weights *c16 = NULL;
    CHECK_OK(load(f16, len16, GPT2_PRECISION_Q8_0, -1, &c16, &e), &e);
    size_t q16len;
    uint8_t *q16 = convert(f16, len16, GPT2_DTYPE_Q8_0, &q16len, &e);
    if (q16) CHECK_OK(load(q16, q16len, GPT2_PRECISION_AUTO, 0, &w, &e), &e);
    CHECK(c16 && w && same_matrices(c16, w), "F16 source: q8_0 on the fly == q8_0 file");
    gpt2_weights_free(w);
    w = NULL;
    gpt2_weights_free(c16);
    free(q16);
    gpt2_weights_free(a16);
    gpt2_weights_free(b16);
    /* BF16 -> f32 as stored */
    CHECK_OK(load(fb, lenb, GPT2_PRECISION_AUTO, 0, &w, &e), &e);
    CHECK(w && w->wte.type == GPT2_DTYPE_F32 && w->layers[0].qkv_w.type == GPT2_DTYPE_F32, "BF16 -> f32");
    gpt2_weights_free(w);
    w = NULL;
    free(hf);
    free(qf);
out:
    gpt2_weights_free(ref);
    free(f32);
    free(f16);
    free(fb);
}

/* ---- malformed quantized files ---------------------------------------------------------- */

typedef enum { MAL_NONE, MAL_SCALE_SHAPE, MAL_NO_SCALE, MAL_NO_Q8, MAL_Q8_DTYPE, MAL_SCALE_DTYPE, MAL_BOTH,
               MAL_MIXED, MAL_Q8_SHAPE, MAL_IN_48, MAL_INF_SCALE, MAL_NAN_SCALE } mal_kind;

static uint8_t *make_quantized(mal_kind mk, size_t *len) {
    tspec s[64];
    int n = specs(s, 0);
    st_writer *w = st_writer_create();
    uint8_t *zeros = calloc(1, 1 << 16);
    for (int k = 0; k < n; k++) {
        int conv = strstr(s[k].name, ".c_") && strstr(s[k].name, ".weight");
        int lin = conv || !strcmp(s[k].name, "wte.weight");
        uint64_t out = conv ? s[k].shape[1] : s[k].shape[0], in = conv ? s[k].shape[0] : s[k].shape[1];
        int target = !strcmp(s[k].name, "h.1.attn.c_proj.weight");
        uint64_t cnt = s[k].shape[0] * (s[k].ndim == 2 ? s[k].shape[1] : 1);
        if (lin && (in % 32 == 0 || (mk == MAL_IN_48 && strstr(s[k].name, "mlp.c_proj"))) &&
            !(mk == MAL_MIXED && target)) {
            char nm[80];
            uint64_t shq[2] = {out, in}, shs[2] = {out, in / 32};
            if (mk == MAL_Q8_SHAPE && target) shq[0] = in, shq[1] = out + 1;
            if (mk == MAL_SCALE_SHAPE && target) shs[1] = 2;
            st_format(nm, sizeof nm, "%s.q8", s[k].name);
            if (!(mk == MAL_NO_Q8 && target))
                st_writer_add(w, nm, mk == MAL_Q8_DTYPE && target ? "U8" : "I8", 2, shq, zeros, (size_t)(shq[0] * shq[1]));
            st_format(nm, sizeof nm, "%s.scale", s[k].name);
            if (!(mk == MAL_NO_SCALE && target)) {
                int f32 = mk == MAL_SCALE_DTYPE && target;
                /* a non-finite half: +inf for row 5, or a negative NaN for row 7 (block 0 of 1) */
                uint16_t bad[32] = {0};
                bad[5] = mk == MAL_INF_SCALE ? 0x7c00u : 0;
                bad[7] = mk == MAL_NAN_SCALE ? 0xfe01u : 0;
                const void *sd = target && (mk == MAL_INF_SCALE || mk == MAL_NAN_SCALE) ? (const void *)bad : zeros;
                st_writer_add(w, nm, f32 ? "F32" : "F16", 2, shs, sd, (size_t)(shs[0] * shs[1]) * (f32 ? 4 : 2));
            }
            if (mk == MAL_BOTH && target) st_writer_add(w, s[k].name, "F16", 2, s[k].shape, zeros, (size_t)cnt * 2);
        } else {
            st_writer_add(w, s[k].name, "F16", s[k].ndim, s[k].shape, zeros, (size_t)cnt * 2);
        }
    }
    uint8_t *f = st_writer_build(w, 1, len);
    st_writer_free(w);
    free(zeros);
    return f;
}

static void test_malformed(void) {
    static const struct { mal_kind k; gpt2_err code; const char *needle; } cases[] = {
        {MAL_SCALE_SHAPE, GPT2_ERR_SHAPE, "tensor 'h.1.attn.c_proj.weight.scale' has shape [32, 2], expected [32, 1]"},
        {MAL_NO_SCALE, GPT2_ERR_SHAPE, "tensor 'h.1.attn.c_proj.weight.scale' is missing"},
        {MAL_NO_Q8, GPT2_ERR_SHAPE, "tensor 'h.1.attn.c_proj.weight.q8' is missing"},
        {MAL_Q8_DTYPE, GPT2_ERR_SHAPE, "quantized tensor 'h.1.attn.c_proj.weight.q8' has dtype U8, expected I8"},
        {MAL_SCALE_DTYPE, GPT2_ERR_SHAPE, "'h.1.attn.c_proj.weight.scale' has dtype F32, expected F16"},
        {MAL_BOTH, GPT2_ERR_FORMAT, "both provide h.1.attn.c_proj.weight"},
        {MAL_MIXED, GPT2_ERR_UNSUPPORTED, "attn_proj weights are partly quantized"},
        {MAL_Q8_SHAPE, GPT2_ERR_SHAPE, "'h.1.attn.c_proj.weight.q8' has shape [32, 33], expected [32, 32]"},
        {MAL_IN_48, GPT2_ERR_SHAPE, "needs in % 32 == 0, but in is 48"},
        {MAL_INF_SCALE, GPT2_ERR_FORMAT, "tensor 'h.1.attn.c_proj.weight.scale': the scale of row 5, block 0 is not a finite number"},
        {MAL_NAN_SCALE, GPT2_ERR_FORMAT, "tensor 'h.1.attn.c_proj.weight.scale': the scale of row 7, block 0 is not a finite number"},
    };
    gpt2_error e = {0};
    gpt2_weights *w = NULL;
    size_t len;
    uint8_t *f = make_quantized(MAL_NONE, &len);
    CHECK_OK(load(f, len, GPT2_PRECISION_AUTO, 0, &w, &e), &e);
    CHECK(w && w->wte.type == GPT2_DTYPE_Q8_0 && w->layers[0].mlp_proj_w.type == GPT2_DTYPE_F16, "well-formed");
    gpt2_weights_free(w);
    w = NULL;
    free(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f = make_quantized(cases[i].k, &len);
        CHECK_FAILS(load(f, len, GPT2_PRECISION_AUTO, -1, &w, &e), cases[i].code, &e);
        CHECK(strstr(e.message, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i, e.message, cases[i].needle);
        CHECK(w == NULL, "no weights on failure");
        free(f);
    }
    /* converter errors: empty, truncated, extra bytes */
    size_t l32, ol;
    uint8_t *f32 = make_checkpoint("F32", 0, &l32);
    uint8_t *o = convert(f32, 0, GPT2_DTYPE_Q8_0, &ol, &e);
    CHECK(!o && strstr(e.message, "is empty"), "%s", e.message);
    o = convert(f32, l32 - 5, GPT2_DTYPE_Q8_0, &ol, &e);
    CHECK(!o && strstr(e.message, "truncated"), "%s", e.message);
    uint8_t *g = malloc(l32 + 4);
    memcpy(g, f32, l32);
    memset(g + l32, 0, 4);
    o = convert(g, l32 + 4, GPT2_DTYPE_F16, &ol, &e);
    CHECK(!o && strstr(e.message, "extra bytes"), "%s", e.message);
    gpt2_quantizer *q = NULL;
    CHECK_FAILS(gpt2_quantizer_create(GPT2_DTYPE_F32, NULL, &q, &e), GPT2_ERR_ARG, &e);
    free(g);
    free(f32);
}

/* ---- native file conversion ------------------------------------------------------------- */

static void test_file(void) {
    char dir[] = "/tmp/gpt2_test_quantize_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char in[256], out[256], tmp[300];
    snprintf(in, sizeof in, "%s/in.safetensors", dir);
    snprintf(out, sizeof out, "%s/out.safetensors", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    size_t len;
    uint8_t *f = make_checkpoint("F32", 1, &len);
    FILE *fp = fopen(in, "wb");
    CHECK(fp && fwrite(f, 1, len, fp) == len, "write");
    if (fp) fclose(fp);
    gpt2_error e = {0};
    char summary[256];
    CHECK_OK(gpt2_quantize_file(in, out, GPT2_DTYPE_Q8_0, summary, sizeof summary, &e), &e);
    CHECK(strstr(summary, "7 weights in q8_0") && strstr(summary, "h.0.mlp.c_proj.weight"), "summary: %s", summary);
    CHECK(access(tmp, F_OK) != 0, "temp file renamed");
    size_t ql;
    uint8_t *q = convert(f, len, GPT2_DTYPE_Q8_0, &ql, &e);
    fp = fopen(out, "rb");
    uint8_t *got = malloc(ql + 1);
    size_t n = fp ? fread(got, 1, ql + 1, fp) : 0;
    if (fp) fclose(fp);
    CHECK(q && n == ql && memcmp(got, q, ql) == 0, "file == in-memory conversion");
    /* a truncated input leaves nothing behind */
    fp = fopen(in, "wb");
    if (fp) {
        fwrite(f, 1, len - 9, fp);
        fclose(fp);
    }
    remove(out);
    CHECK_FAILS(gpt2_quantize_file(in, out, GPT2_DTYPE_F16, NULL, 0, &e), GPT2_ERR_FORMAT, &e);
    CHECK(access(out, F_OK) != 0 && access(tmp, F_OK) != 0, "no output after a failure");
    CHECK_FAILS(gpt2_quantize_file("/nonexistent/x", out, GPT2_DTYPE_F16, NULL, 0, &e), GPT2_ERR_IO, &e);
    remove(in);
    rmdir(dir);
    free(got);
    free(q);
    free(f);
}

/* ---- memory estimate --------------------------------------------------------------------- */

static void test_estimate(void) {
    /* gpt2 (124M) and gpt2-xl configurations */
    gpt2_config small = {12, 12, 768, 1024, 50257, 3072, 1e-5f};
    gpt2_config xl = {48, 25, 1600, 1024, 50257, 6400, 1e-5f};
    gpt2_weights_plan p32 = gpt2_weights_plan_uniform(&small, 0, GPT2_DTYPE_F32),
                      p16 = gpt2_weights_plan_uniform(&small, 0, GPT2_DTYPE_F16),
                      pq = gpt2_weights_plan_uniform(&small, 0, GPT2_DTYPE_Q8_0);
    uint64_t w32 = gpt2_weights_plan_bytes(&small, &p32), w16 = gpt2_weights_plan_bytes(&small, &p16),
             wq = gpt2_weights_plan_bytes(&small, &pq);
    /* 124,439,808 parameters */
    CHECK(w32 >= 124439808ull * 4 && w32 < 124439808ull * 4 + 100000, "f32 weights %llu", (unsigned long long)w32);
    CHECK(w16 > 248000000 && w16 < 252000000, "f16 %llu", (unsigned long long)w16);
    /* half scales in memory, as in the file: 123,532,032 matrix values x 17/16 bytes + 907,776
     * float parameters x 4 = 134,883,888 bytes, plus alignment and bookkeeping */
    CHECK(wq >= 134883888ull && wq < 134883888ull + 100000, "q8_0 %llu", (unsigned long long)wq);
    /* + the KV cache, the scratch of 64-token steps (x, a, qkv: 5 rows of C; h: n_inner) and
     * working memory (a few vocabulary-sized rows: some MB) */
    uint64_t kv = 2ull * 12 * 1024 * 768 * 4, scratch = 64ull * (5 * 768 + 3072) * 4;
    CHECK(gpt2_model_bytes(&small, &p32) > w32 + kv + scratch + 4 * 50257 * 4 &&
              gpt2_model_bytes(&small, &p32) < w32 + kv + scratch + 16000000,
          "model bytes %llu", (unsigned long long)gpt2_model_bytes(&small, &p32));

    gpt2_error e = {0};
    gpt2_weights_plan x32 = gpt2_weights_plan_uniform(&xl, 0, GPT2_DTYPE_F32),
                      x16 = gpt2_weights_plan_uniform(&xl, 0, GPT2_DTYPE_F16),
                      xq = gpt2_weights_plan_uniform(&xl, 0, GPT2_DTYPE_Q8_0);
    uint64_t n32 = gpt2_model_bytes(&xl, &x32), n16 = gpt2_model_bytes(&xl, &x16), nq = gpt2_model_bytes(&xl, &xq);
    CHECK(n32 > 6000000000ull && n16 > 3000000000ull && nq < 2500000000ull, "xl %llu %llu %llu",
          (unsigned long long)n32, (unsigned long long)n16, (unsigned long long)nq);
    CHECK_OK(gpt2_check_budget(&xl, &x32, 0, &e), &e);
    CHECK_OK(gpt2_check_budget(&xl, &x32, n32, &e), &e);
    CHECK_FAILS(gpt2_check_budget(&xl, &x32, 4ull << 30, &e), GPT2_ERR_NOMEM, &e);
    CHECK(strstr(e.message, "in f32") && strstr(e.message, "load with precision 'f16'"), "%s", e.message);
    CHECK_FAILS(gpt2_check_budget(&xl, &x32, n16 - 1, &e), GPT2_ERR_NOMEM, &e);
    CHECK(strstr(e.message, "in q8_0 it needs") && strstr(e.message, "load with precision 'q8_0'"), "%s", e.message);
    CHECK_FAILS(gpt2_check_budget(&xl, &x16, n16 - 1, &e), GPT2_ERR_NOMEM, &e);
    CHECK(strstr(e.message, "in f16") && strstr(e.message, "'q8_0'"), "%s", e.message);
    CHECK_FAILS(gpt2_check_budget(&xl, &xq, nq - 1, &e), GPT2_ERR_NOMEM, &e);
    CHECK(strstr(e.message, "no precision fits"), "%s", e.message);

    /* the loader: forced f32 of gpt2-xl under a 3 GB budget fails at create, naming q8_0 */
    const char *xl_json = "{\"n_layer\":48,\"n_head\":25,\"n_embd\":1600,\"vocab_size\":50257,\"n_positions\":1024}";
    gpt2_loader_options opt = {3000000000ull, NULL, GPT2_PRECISION_F32, NULL};
    gpt2_loader *ld = NULL;
    CHECK_FAILS(gpt2_loader_create(xl_json, strlen(xl_json), &opt, &ld, &e), GPT2_ERR_NOMEM, &e);
    CHECK(strstr(e.message, "6.") && strstr(e.message, "GB in f32") && strstr(e.message, "precision 'q8_0'"), "%s",
          e.message);
    opt.precision = GPT2_PRECISION_AUTO; /* as stored: only the header tells; q8_0 would fit */
    CHECK_OK(gpt2_loader_create(xl_json, strlen(xl_json), &opt, &ld, &e), &e);
    gpt2_loader_free(ld);
    ld = NULL;
    opt.memory_budget_bytes = 1000000000ull;
    CHECK_FAILS(gpt2_loader_create(xl_json, strlen(xl_json), &opt, &ld, &e), GPT2_ERR_NOMEM, &e);
    CHECK(strstr(e.message, "no precision fits"), "%s", e.message);

    /* with the header: an F32 file under a budget that fits only q8_0: f32 asked fails at once
     * naming q8_0; auto takes q8_0 and says why */
    size_t len;
    uint8_t *f = make_checkpoint("F32", 0, &len);
    gpt2_config cfg = {L, 2, C, T, V, I, 1e-5f};
    gpt2_weights_plan cq = gpt2_weights_plan_uniform(&cfg, 0, GPT2_DTYPE_Q8_0);
    opt.memory_budget_bytes = gpt2_model_bytes(&cfg, &cq);
    opt.precision = GPT2_PRECISION_F32;
    gpt2_weights *w = NULL;
    CHECK_FAILS(gpt2_loader_create(CONFIG, strlen(CONFIG), &opt, &ld, &e), GPT2_ERR_NOMEM, &e);
    CHECK(strstr(e.message, "in f32") && strstr(e.message, "precision 'q8_0'"), "%s", e.message);
    opt.precision = GPT2_PRECISION_AUTO;
    CHECK_OK(gpt2_loader_create(CONFIG, strlen(CONFIG), &opt, &ld, &e), &e);
    if (ld) {
        CHECK_OK(gpt2_loader_feed(ld, f, len, &e), &e);
        CHECK_OK(gpt2_loader_finish(ld, &w, &e), &e);
        CHECK(w && gpt2_weights_main_dtype(w) == GPT2_DTYPE_Q8_0 &&
                  strstr(w->precision_reason, "auto: q8_0, because f32 as stored needs") &&
                  strstr(w->precision_reason, "(q8_0 needs "),
              "%s", w ? w->precision_reason : "");
        gpt2_weights_free(w);
        w = NULL;
        gpt2_loader_free(ld);
    }
    /* a budget that fits f16 (not f32): auto takes f16, the most precise that fits */
    gpt2_weights_plan c16 = gpt2_weights_plan_uniform(&cfg, 0, GPT2_DTYPE_F16);
    opt.memory_budget_bytes = gpt2_model_bytes(&cfg, &c16);
    ld = NULL;
    CHECK_OK(gpt2_loader_create(CONFIG, strlen(CONFIG), &opt, &ld, &e), &e);
    if (ld) {
        CHECK_OK(gpt2_loader_feed(ld, f, len, &e), &e);
        CHECK_OK(gpt2_loader_finish(ld, &w, &e), &e);
        CHECK(w && gpt2_weights_main_dtype(w) == GPT2_DTYPE_F16 && w->layers[1].qkv_w.type == GPT2_DTYPE_F16 &&
                  strstr(w->precision_reason, "auto: f16, because f32 as stored needs"),
              "%s", w ? w->precision_reason : "");
        gpt2_weights_free(w);
        w = NULL;
        gpt2_loader_free(ld);
    }
    opt.precision = GPT2_PRECISION_Q8_0;
    CHECK_OK(load(f, len, GPT2_PRECISION_Q8_0, 0, &w, &e), &e);
    gpt2_weights_free(w);
    free(f);

    gpt2_precision p;
    CHECK_OK(gpt2_precision_parse("q8_0", &p, &e), &e);
    CHECK(p == GPT2_PRECISION_Q8_0, "parse");
    CHECK_FAILS(gpt2_precision_parse("int4", &p, &e), GPT2_ERR_ARG, &e);
    CHECK(strstr(e.message, "auto, f32, f16 or q8_0"), "%s", e.message);
}

/* Corrupted quantized files and converter inputs fail cleanly or succeed, never crash. */
static void test_fuzz(void) {
    size_t len, qlen;
    gpt2_error e = {0};
    uint8_t *f = make_checkpoint("F32", 1, &len);
    uint8_t *qf = convert(f, len, GPT2_DTYPE_Q8_0, &qlen, &e);
    CHECK(qf != NULL, "convert: %s", e.message);
    if (!qf) {
        free(f);
        return;
    }
    uint64_t hn = gpt2_st_read_u64le(qf);
    uint8_t *g = malloc(qlen > len ? qlen : len);
    unsigned seed = 31;
    int failed = 0;
    for (int it = 0; it < 600; it++) {
        const uint8_t *src = it % 2 ? qf : f;
        size_t n = it % 2 ? qlen : len;
        memcpy(g, src, n);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t pos = (seed >> 8) % (it % 3 ? 8 + (size_t)hn : n);
            seed = seed * 1103515245u + 12345u;
            g[pos] = (uint8_t)" {}[],:\"0123456789eqs.IF"[(seed >> 16) % 24];
        }
        if (it % 7 == 0) n = (seed >> 4) % (n + 1);
        gpt2_weights *w = NULL;
        if (load(g, n, it % 4 == 1 ? GPT2_PRECISION_Q8_0 : GPT2_PRECISION_AUTO, -1, &w, &e)) {
            failed++;
            CHECK(e.message[0] != '\0' && w == NULL, "fuzz %d: empty message", it);
        }
        gpt2_weights_free(w);
        size_t ol;
        uint8_t *o = convert(g, n, it % 3 ? GPT2_DTYPE_Q8_0 : GPT2_DTYPE_F16, &ol, &e);
        free(o);
    }
    CHECK(failed > 100, "fuzz: only %d failures", failed);
    free(g);
    free(qf);
    free(f);
}

int main(void) {
    test_f16_rounding();
    test_q8_block();
    test_forced_and_files();
    test_malformed();
    test_file();
    test_estimate();
    test_fuzz();
    return check_summary("test_quantize");
}
