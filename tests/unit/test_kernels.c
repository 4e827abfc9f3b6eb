/* test_kernels.c - the kernels of this build (WASM SIMD128, native SSE/AVX or scalar)
 * against the scalar fallback and against float64 math.
 *
 * The scalar fallback is compiled into this test a second time: kernels.c included with
 * GPT2_SCALAR_KERNELS and every public name prefixed ref_. All builds compute the same lanes
 * in the same order (kernels.c), so the build's kernels must equal the scalar ones bit for
 * bit, for every dtype, on random shapes with odd sizes (k, m not multiples of 4/8/16,
 * n = 1..9, row sub-ranges [o0, o1)); rows outside [o0, o1) must stay untouched.
 * Against float64 math:
 *   f32, f16: |out - exact| <= 1e-5 * sum_i |x_i W(o,i)| + 1e-6;
 *   q8_0 (int8 activations): activations are rounded to amax/127 steps, an error of at most
 *     amax_b/254 per element of block b, so |out - exact| <= sum_b (amax_b/254) sum_{i in b}
 *     |W(o,i)| + 1e-5 * sum_i |x_i W(o,i)| + 1e-6.
 * Also: the f16 -> f32 conversion on all 65536 halves, quantized activations against the
 * scalar ones, and pre-quantized q8_0 products against per-call quantization.
 */
#define GPT2_SCALAR_KERNELS 1
#define k_matmul ref_k_matmul
#define k_matmul_rows ref_k_matmul_rows
#define k_matmul_rows_act ref_k_matmul_rows_act
#define k_q8_act_bytes ref_k_q8_act_bytes
#define k_q8_quantize_act ref_k_q8_quantize_act
#define k_matrix_row ref_k_matrix_row
#define k_dot ref_k_dot
#define k_layernorm ref_k_layernorm
#define k_gelu ref_k_gelu
#define k_softmax ref_k_softmax
#define k_add ref_k_add
#define k_axpy ref_k_axpy
#define k_read_bytes ref_k_read_bytes
#define k_attn_scores ref_k_attn_scores
#define k_attn_values ref_k_attn_values
#include "kernels.c"
#undef k_matmul
#undef k_matmul_rows
#undef k_matmul_rows_act
#undef k_q8_act_bytes
#undef k_q8_quantize_act
#undef k_matrix_row
#undef k_dot
#undef k_layernorm
#undef k_gelu
#undef k_softmax
#undef k_add
#undef k_axpy
#undef k_read_bytes
#undef k_attn_scores
#undef k_attn_values
#undef GPT2_SCALAR_KERNELS
#undef GPT2_KERNELS_H
#include "kernels.h" /* the real names, implemented by the build's kernels.c */

#include <stdio.h>
#include <stdlib.h>

#include "check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}
static float frand(void) { return (float)((double)rnd() / 4294967296.0 * 2.0 - 1.0); }
static int irand(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* A random float32 -> half (truncating; any half is fine as test data). */
static uint16_t to_half(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    int e = (int)((u >> 23) & 0xff) - 127 + 15;
    if (e <= 0) return (uint16_t)sign;
    if (e >= 31) return (uint16_t)(sign | 0x7bffu);
    return (uint16_t)(sign | ((uint32_t)e << 10) | ((u >> 13) & 0x3ffu));
}

typedef struct test_matrix {
    gpt2_matrix m;
    void *data;
    float *scales;
    double *deq; /* W(o, i) as doubles */
} test_matrix;

static test_matrix make_matrix(gpt2_dtype t, int rows, int cols) {
    test_matrix tm;
    memset(&tm, 0, sizeof tm);
    size_t count = (size_t)rows * cols;
    tm.deq = malloc(count * sizeof(double));
    if (t == GPT2_DTYPE_F32) {
        float *d = malloc(count * sizeof(float));
        for (size_t i = 0; i < count; i++) tm.deq[i] = d[i] = frand();
        tm.data = d;
    } else if (t == GPT2_DTYPE_F16) {
        uint16_t *d = malloc(count * sizeof(uint16_t));
        for (size_t i = 0; i < count; i++) {
            /* mostly ordinary values, some tiny ones (subnormal halves) */
            float v = (rnd() % 16 == 0) ? frand() * 1e-6f : frand();
            d[i] = to_half(v);
            tm.deq[i] = gpt2_f16_to_f32(d[i]);
        }
        tm.data = d;
    } else {
        int8_t *d = malloc(count);
        int nb = cols / GPT2_Q8_BLOCK;
        tm.scales = malloc((size_t)rows * nb * sizeof(float));
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < nb; b++) tm.scales[r * nb + b] = 0.001f + 0.01f * (float)(rnd() % 100) / 100.0f;
        for (size_t i = 0; i < count; i++) {
            d[i] = (int8_t)(irand(-127, 127));
            tm.deq[i] = (double)d[i] * tm.scales[(i / cols) * nb + (i % cols) / GPT2_Q8_BLOCK];
        }
        tm.data = d;
    }
    tm.m.type = t;
    tm.m.rows = rows;
    tm.m.cols = cols;
    tm.m.data = tm.data;
    tm.m.scales = tm.scales;
    return tm;
}

static void free_matrix(test_matrix *tm) {
    free(tm->data);
    free(tm->scales);
    free(tm->deq);
}

/* One product: the build's kernel, the scalar one, float64; returns failures seen. */
static void check_product(gpt2_dtype t, int n, int k, int m, int o0, int o1, int with_bias, int pre_quantized) {
    test_matrix tm = make_matrix(t, m, k);
    float *x = malloc((size_t)n * k * sizeof(float));
    float *b = with_bias ? malloc((size_t)m * sizeof(float)) : NULL;
    float *out = malloc((size_t)n * m * sizeof(float)), *ref = malloc((size_t)n * m * sizeof(float));
    for (int i = 0; i < n * k; i++) x[i] = frand() * (rnd() % 8 == 0 ? 8.0f : 1.0f);
    for (int i = 0; b && i < m; i++) b[i] = frand();
    for (int i = 0; i < n * m; i++) out[i] = ref[i] = NAN;
    void *act = NULL;
    if (pre_quantized && t == GPT2_DTYPE_Q8_0) {
        act = malloc(k_q8_act_bytes(n, k));
        k_q8_quantize_act(act, x, n, k);
        void *ref_act = malloc(ref_k_q8_act_bytes(n, k));
        ref_k_q8_quantize_act(ref_act, x, n, k);
        CHECK(memcmp(act, ref_act, k_q8_act_bytes(n, k)) == 0, "quantized activations differ (n=%d k=%d)", n, k);
        free(ref_act);
    }
    k_matmul_rows_act(out, x, act, &tm.m, b, n, o0, o1);
    ref_k_matmul_rows(ref, x, &tm.m, b, n, o0, o1);
    int bad_exact = 0, bad_math = 0, touched = 0;
    double worst = 0;
    for (int tok = 0; tok < n; tok++)
        for (int o = 0; o < m; o++) {
            float v = out[(size_t)tok * m + o];
            if (o < o0 || o >= o1) {
                if (!isnan(v)) touched++;
                continue;
            }
            if (!same_bits(v, ref[(size_t)tok * m + o])) bad_exact++;
            double exact = b ? b[o] : 0.0, mag = 0.0, qerr = 0.0;
            for (int i = 0; i < k; i++) {
                double p = (double)x[(size_t)tok * k + i] * tm.deq[(size_t)o * k + i];
                exact += p;
                mag += fabs(p);
            }
            if (t == GPT2_DTYPE_Q8_0)
                for (int blk = 0; blk < k / GPT2_Q8_BLOCK; blk++) {
                    double amax = 0, wsum = 0;
                    for (int i = blk * GPT2_Q8_BLOCK; i < (blk + 1) * GPT2_Q8_BLOCK; i++) {
                        amax = fmax(amax, fabs(x[(size_t)tok * k + i]));
                        wsum += fabs(tm.deq[(size_t)o * k + i]);
                    }
                    qerr += amax / 254.0 * wsum;
                }
            double err = fabs((double)v - exact), tol = qerr + 1e-5 * mag + 1e-6;
            if (!(err <= tol)) bad_math++;
            if (err / (tol) > worst) worst = err / tol;
        }
    CHECK(bad_exact == 0, "%s n=%d k=%d m=%d rows [%d,%d) bias=%d pre=%d: %d outputs differ from the scalar kernel",
          gpt2_dtype_name(t), n, k, m, o0, o1, with_bias, pre_quantized, bad_exact);
    CHECK(bad_math == 0, "%s n=%d k=%d m=%d rows [%d,%d): %d outputs outside the float64 bound (worst %.2f x)",
          gpt2_dtype_name(t), n, k, m, o0, o1, bad_math, worst);
    CHECK(touched == 0, "%s n=%d k=%d m=%d rows [%d,%d): %d outputs outside the rows written", gpt2_dtype_name(t),
          n, k, m, o0, o1, touched);
    free(act);
    free(x);
    free(b);
    free(out);
    free(ref);
    free_matrix(&tm);
}

static void test_products(void) {
    const gpt2_dtype types[3] = {GPT2_DTYPE_F32, GPT2_DTYPE_F16, GPT2_DTYPE_Q8_0};
    for (int it = 0; it < 150; it++) {
        gpt2_dtype t = types[it % 3];
        int k = t == GPT2_DTYPE_Q8_0 ? GPT2_Q8_BLOCK * irand(1, 12) : irand(1, 200);
        int m = irand(1, 37);
        int n = 1 + it % 9;
        int o0 = irand(0, m - 1), o1 = irand(o0 + 1, m);
        if (it % 5 == 0) o0 = 0, o1 = m;
        check_product(t, n, k, m, o0, o1, it % 4 != 0, it % 2);
    }
    /* GPT-2 shapes and longer inputs (q8_0: more tokens than one stack chunk) */
    check_product(GPT2_DTYPE_F32, 1, 768, 40, 0, 40, 1, 0);
    check_product(GPT2_DTYPE_F16, 5, 768, 21, 3, 20, 1, 0);
    check_product(GPT2_DTYPE_Q8_0, 1, 768, 41, 0, 41, 1, 0);
    check_product(GPT2_DTYPE_Q8_0, 30, 768, 9, 0, 9, 1, 0);
    check_product(GPT2_DTYPE_Q8_0, 30, 768, 9, 2, 7, 0, 1);
    /* rows longer than the kernels' stack buffers (their fallback paths) */
    check_product(GPT2_DTYPE_F16, 2, 16400, 3, 0, 3, 1, 0);
    check_product(GPT2_DTYPE_Q8_0, 2, 15424, 3, 0, 3, 1, 0);
}

static void test_f16_all(void) {
    int bad = 0;
    gpt2_matrix m = {GPT2_DTYPE_F16, 1, 65536, NULL, NULL};
    uint16_t *h = malloc(65536 * sizeof(uint16_t));
    float *f = malloc(65536 * sizeof(float));
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    m.data = h;
    k_matrix_row(f, &m, 0);
    for (int i = 0; i < 65536; i++)
        if (!same_bits(f[i], gpt2_f16_to_f32((uint16_t)i)) && !(isnan(f[i]) && isnan(gpt2_f16_to_f32((uint16_t)i))))
            bad++; /* x86 F16C quiets signalling NaNs: any NaN is a NaN */
    CHECK(bad == 0, "%d of 65536 halves convert differently from gpt2_f16_to_f32", bad);
    free(h);
    free(f);
}

static void test_vectors(void) {
    for (int it = 0; it < 50; it++) {
        int n = irand(1, 100);
        float a[100], b[100], y1[100], y2[100];
        for (int i = 0; i < n; i++) a[i] = frand(), b[i] = frand(), y1[i] = y2[i] = frand();
        CHECK(same_bits(k_dot(a, b, n), ref_k_dot(a, b, n)), "k_dot n=%d", n);
        float s = frand();
        k_axpy(y1, s, a, n);
        ref_k_axpy(y2, s, a, n);
        CHECK(memcmp(y1, y2, (size_t)n * sizeof(float)) == 0, "k_axpy n=%d", n);
        k_add(y1, b, n);
        ref_k_add(y2, b, n);
        CHECK(memcmp(y1, y2, (size_t)n * sizeof(float)) == 0, "k_add n=%d", n);
    }
}

/* The attention kernels: bit-identical to the scalar ones and to k_dot / zero + k_axpy. */
static void test_attention(void) {
    for (int it = 0; it < 40; it++) {
        int d = irand(1, 70), n = irand(1, 30);
        long stride = d + irand(0, 9);
        float *kv = malloc((size_t)n * stride * sizeof(float)), q[70], att[30], att2[30], y[70], y2[70], y3[70];
        for (long i = 0; i < n * stride; i++) kv[i] = frand();
        for (int i = 0; i < d; i++) q[i] = frand();
        float scale = 0.125f;
        k_attn_scores(att, q, kv, stride, n, d, scale);
        ref_k_attn_scores(att2, q, kv, stride, n, d, scale);
        int bad = 0;
        for (int j = 0; j < n; j++) {
            if (!same_bits(att[j], att2[j])) bad++;
            if (!same_bits(att[j], k_dot(q, kv + j * stride, d) * scale)) bad++;
        }
        CHECK(bad == 0, "k_attn_scores d=%d n=%d: %d differ", d, n, bad);
        k_attn_values(y, att, kv, stride, n, d);
        ref_k_attn_values(y2, att, kv, stride, n, d);
        memset(y3, 0, sizeof y3);
        for (int j = 0; j < n; j++) k_axpy(y3, att[j], kv + j * stride, d);
        CHECK(memcmp(y, y2, (size_t)d * sizeof(float)) == 0 && memcmp(y, y3, (size_t)d * sizeof(float)) == 0,
              "k_attn_values d=%d n=%d", d, n);
        free(kv);
    }
}

static void test_read_bytes(void) {
    unsigned char buf[300];
    for (int i = 0; i < 300; i++) buf[i] = (unsigned char)rnd();
    for (int n = 0; n <= 300; n += 7)
        for (int off = 0; off < 3; off++)
            CHECK(k_read_bytes(buf + off, (size_t)(n - off > 0 ? n - off : 0)) ==
                      ref_k_read_bytes(buf + off, (size_t)(n - off > 0 ? n - off : 0)),
                  "k_read_bytes n=%d off=%d", n, off);
}

int main(void) {
    test_read_bytes();
    test_attention();
    test_products();
    test_f16_all();
    test_vectors();
    return check_summary("test_kernels");
}
