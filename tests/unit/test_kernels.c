/* test_kernels.c - the kernels of this build (WASM SIMD128, native SSE/AVX or scalar)
 * against the scalar fallback, against the reduction order written out here, and against
 * float64 math.
 *
 * The scalar fallback is compiled into this test a second time: kernels.c included with
 * GPT2_SCALAR_KERNELS and every public name prefixed ref_. All builds compute the same lanes
 * in the same order (kernels.c), so the build's kernels must equal the scalar ones bit for
 * bit, for every dtype, on random shapes with odd sizes (k, m not multiples of 4/8/16,
 * n = 1..9, row sub-ranges [o0, o1)); rows outside [o0, o1) must stay untouched.
 * The order itself is written out independently below (order_dot, order_q8: 8 lanes i mod 8
 * then ((l0+l4)+(l1+l5))+((l2+l6)+(l3+l7)) then the tail; q8_0: exact integer block sums,
 * then blocks in order) on the logical matrix, and every output must equal it bit for bit.
 * Matrices are packed as matrix.h describes; the packing positions are checked to be a
 * one-to-one map onto the storage, with a few positions worked out by hand.
 * Against float64 math:
 *   f32, f16: |out - exact| <= 1e-5 * sum_i |x_i W(o,i)| + 1e-6;
 *   q8_0 (int8 activations): activations are rounded to amax/127 steps, an error of at most
 *     amax_b/254 per element of block b, so |out - exact| <= sum_b (amax_b/254) sum_{i in b}
 *     |W(o,i)| + 1e-5 * sum_i |x_i W(o,i)| + 1e-6.
 * Also: the f16 -> f32 conversion on all 65536 halves, and quantized activations against the
 * scalar ones.
 */
#define GPT2_SCALAR_KERNELS 1
#define k_matmul_rows ref_k_matmul_rows
#define k_q8_act_bytes ref_k_q8_act_bytes
#define k_q8_quantize_act ref_k_q8_quantize_act
#define k_matrix_row ref_k_matrix_row
#define k_dot ref_k_dot
#define k_layernorm ref_k_layernorm
#define k_gelu ref_k_gelu
#define k_gelu_grad ref_k_gelu_grad
#define k_softmax ref_k_softmax
#define k_add ref_k_add
#define k_axpy ref_k_axpy
#define k_read_bytes ref_k_read_bytes
#define k_attn_scores ref_k_attn_scores
#define k_attn_values ref_k_attn_values
#define k_pack_band ref_k_pack_band
#define k_pack_rows ref_k_pack_rows
#define k_f16_all_finite ref_k_f16_all_finite
#include "kernels.c"
#undef k_matmul_rows
#undef k_q8_act_bytes
#undef k_q8_quantize_act
#undef k_matrix_row
#undef k_dot
#undef k_layernorm
#undef k_gelu
#undef k_gelu_grad
#undef k_softmax
#undef k_add
#undef k_axpy
#undef k_read_bytes
#undef k_attn_scores
#undef k_attn_values
#undef k_pack_band
#undef k_pack_rows
#undef k_f16_all_finite
#undef GPT2_SCALAR_KERNELS
#undef GPT2_KERNELS_H
#include "kernels.h" /* the real names, implemented by the build's kernels.c */

#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "quantize.h"

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
    void *data;     /* packed */
    float *w;       /* W(o, i) row-major as floats (f32, f16: the value; q8_0: unused) */
    int8_t *q;      /* q8_0: values row-major */
    float *scales;  /* q8_0: [rows * cols/32] row-major */
    double *deq;    /* W(o, i) as doubles */
} test_matrix;

static test_matrix make_matrix(gpt2_dtype t, int rows, int cols) {
    test_matrix tm;
    memset(&tm, 0, sizeof tm);
    size_t count = (size_t)rows * cols;
    uint64_t R = (uint64_t)rows, K = (uint64_t)cols;
    tm.deq = malloc(count * sizeof(double));
    tm.w = malloc(count * sizeof(float));
    if (t == GPT2_DTYPE_F32) {
        float *d = malloc(count * sizeof(float));
        for (size_t i = 0; i < count; i++) {
            tm.deq[i] = tm.w[i] = frand();
            d[gpt2_packed_index(R, K, i / K, i % K)] = tm.w[i];
        }
        tm.data = d;
    } else if (t == GPT2_DTYPE_F16) {
        uint16_t *d = malloc(count * sizeof(uint16_t));
        for (size_t i = 0; i < count; i++) {
            /* mostly ordinary values, some tiny ones (subnormal halves) */
            float v = (rnd() % 16 == 0) ? frand() * 1e-6f : frand();
            uint16_t h = to_half(v);
            d[gpt2_packed_index(R, K, i / K, i % K)] = h;
            tm.deq[i] = tm.w[i] = gpt2_f16_to_f32(h);
        }
        tm.data = d;
    } else {
        unsigned char *d = malloc(gpt2_matrix_bytes(t, R, K));
        int nb = cols / GPT2_Q8_BLOCK;
        tm.scales = malloc((size_t)rows * nb * sizeof(float));
        tm.q = malloc(count);
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < nb; b++) {
                uint16_t h = to_half(0.001f + 0.01f * (float)(rnd() % 100) / 100.0f); /* scales are halves */
                uint32_t kind = rnd() % 16; /* some subnormal, negative and zero scales */
                if (kind == 0) h = (uint16_t)(1 + rnd() % 0x3ff);
                if (kind == 1) h |= 0x8000u;
                if (kind == 2) h = rnd() % 2 ? 0x8000u : 0;
                tm.scales[r * nb + b] = gpt2_f16_to_f32(h);
                memcpy(d + gpt2_q8_scale_offset(R, K, (uint64_t)r, (uint64_t)b), &h, 2);
            }
        for (size_t i = 0; i < count; i++) {
            tm.q[i] = (int8_t)(irand(-127, 127));
            d[gpt2_q8_value_offset(R, K, i / K, i % K)] = (unsigned char)tm.q[i];
            tm.deq[i] = (double)tm.q[i] * tm.scales[(i / cols) * nb + (i % cols) / GPT2_Q8_BLOCK];
        }
        tm.data = d;
    }
    tm.m.type = t;
    tm.m.rows = rows;
    tm.m.cols = cols;
    tm.m.data = tm.data;
    return tm;
}

static void free_matrix(test_matrix *tm) {
    free(tm->data);
    free(tm->w);
    free(tm->q);
    free(tm->scales);
    free(tm->deq);
}

/* The f32/f16 order, written out: 8 lanes (i mod 8) up to k - k%8, the fixed tree, the tail. */
static float order_dot(const float *x, const float *w, int k) {
    float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int c8 = k - k % 8, i;
    for (i = 0; i < c8; i++) l[i % 8] += x[i] * w[i];
    float s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
    for (; i < k; i++) s += x[i] * w[i];
    return s;
}

/* The q8_0 order, written out: activations quantized per block (d = amax/127, q = nearest-even
 * of x * (127/amax)), exact integer block sums, then s += S_b * (wd_b * d_b) over the blocks. */
static float order_q8(const float *x, const int8_t *q, const float *sc, int k) {
    float s = 0.0f;
    for (int b = 0; b < k / GPT2_Q8_BLOCK; b++) {
        const float *xb = x + b * GPT2_Q8_BLOCK;
        float amax = 0.0f;
        for (int i = 0; i < GPT2_Q8_BLOCK; i++) amax = fabsf(xb[i]) > amax ? fabsf(xb[i]) : amax;
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        int32_t S = 0;
        for (int i = 0; i < GPT2_Q8_BLOCK; i++) S += (int32_t)q[b * GPT2_Q8_BLOCK + i] * (int32_t)nearbyintf(xb[i] * inv);
        s += (float)S * (sc[b] * d);
    }
    return s;
}

/* One product: the build's kernel, the scalar one, float64; returns failures seen. */
static void check_product(gpt2_dtype t, int n, int k, int m, int o0, int o1, int with_bias, int finite) {
    test_matrix tm = make_matrix(t, m, k);
    float *x = malloc((size_t)n * k * sizeof(float));
    float *b = with_bias ? malloc((size_t)m * sizeof(float)) : NULL;
    float *out = malloc((size_t)n * m * sizeof(float)), *ref = malloc((size_t)n * m * sizeof(float));
    for (int i = 0; i < n * k; i++) x[i] = frand() * (rnd() % 8 == 0 ? 8.0f : 1.0f);
    if (t == GPT2_DTYPE_F16) {
        /* f16: finite picks the kernels' path for matrices known to be finite (matrix.h);
         * sometimes an input too large for its exact scaling (it must fall back) */
        tm.m.finite = finite;
        if (finite && rnd() % 3 == 0) x[irand(0, n * k - 1)] = 1e5f;
    }
    for (int i = 0; b && i < m; i++) b[i] = frand();
    for (int i = 0; i < n * m; i++) out[i] = ref[i] = NAN;
    void *act = NULL, *ref_act = NULL; /* q8_0: each build's kernels read their own quantization */
    if (t == GPT2_DTYPE_Q8_0) {
        act = malloc(k_q8_act_bytes(n, k));
        k_q8_quantize_act(act, x, n, k);
        ref_act = malloc(ref_k_q8_act_bytes(n, k));
        ref_k_q8_quantize_act(ref_act, x, n, k);
        CHECK(memcmp(act, ref_act, k_q8_act_bytes(n, k)) == 0, "quantized activations differ (n=%d k=%d)", n, k);
    }
    k_matmul_rows(out, x, act, &tm.m, b, n, o0, o1);
    ref_k_matmul_rows(ref, x, ref_act, &tm.m, b, n, o0, o1);
    int bad_exact = 0, bad_order = 0, bad_math = 0, touched = 0;
    double worst = 0;
    for (int tok = 0; tok < n; tok++)
        for (int o = 0; o < m; o++) {
            float v = out[(size_t)tok * m + o];
            if (o < o0 || o >= o1) {
                if (!isnan(v)) touched++;
                continue;
            }
            if (!same_bits(v, ref[(size_t)tok * m + o])) bad_exact++;
            const float *xt = x + (size_t)tok * k;
            float ord = t == GPT2_DTYPE_Q8_0 ? order_q8(xt, tm.q + (size_t)o * k, tm.scales + (size_t)o * (k / GPT2_Q8_BLOCK), k)
                                             : order_dot(xt, tm.w + (size_t)o * k, k);
            if (!same_bits(v, ord + (b ? b[o] : 0.0f))) bad_order++;
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
    CHECK(bad_exact == 0, "%s n=%d k=%d m=%d rows [%d,%d) bias=%d finite=%d: %d outputs differ from the scalar kernel",
          gpt2_dtype_name(t), n, k, m, o0, o1, with_bias, finite, bad_exact);
    CHECK(bad_order == 0, "%s n=%d k=%d m=%d rows [%d,%d): %d outputs differ from the order written out",
          gpt2_dtype_name(t), n, k, m, o0, o1, bad_order);
    CHECK(bad_math == 0, "%s n=%d k=%d m=%d rows [%d,%d): %d outputs outside the float64 bound (worst %.2f x)",
          gpt2_dtype_name(t), n, k, m, o0, o1, bad_math, worst);
    CHECK(touched == 0, "%s n=%d k=%d m=%d rows [%d,%d): %d outputs outside the rows written", gpt2_dtype_name(t),
          n, k, m, o0, o1, touched);
    free(act);
    free(ref_act);
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
    /* GPT-2 shapes and longer inputs (q8_0: several 4-token register tiles and a remainder) */
    check_product(GPT2_DTYPE_F32, 1, 768, 40, 0, 40, 1, 0);
    check_product(GPT2_DTYPE_F16, 5, 768, 21, 3, 20, 1, 0);
    check_product(GPT2_DTYPE_F16, 1, 768, 40, 0, 40, 1, 1); /* decode of finite halves */
    check_product(GPT2_DTYPE_Q8_0, 1, 768, 41, 0, 41, 1, 0);
    check_product(GPT2_DTYPE_Q8_0, 30, 768, 9, 0, 9, 1, 0);
    check_product(GPT2_DTYPE_Q8_0, 30, 768, 9, 2, 7, 0, 1);
    /* rows longer than the f16 stack tile (its element-by-element path); q8_0 of the same length */
    check_product(GPT2_DTYPE_F16, 2, 16400, 3, 0, 3, 1, 0);
    check_product(GPT2_DTYPE_Q8_0, 2, 15424, 3, 0, 3, 1, 0);
}

/* q8_0 scales at the edges of the halves: the largest (65504), the smallest subnormal (2^-24),
 * -0 and -1; every build's kernels (decode and prefill tiles) give the scalar kernel's bits and
 * the order written out. (Scales are finite: the loader rejects inf and NaN, matrix.h.) */
static void test_q8_edge_scales(void) {
    enum { R = 8, K = 64 };
    static const uint16_t scale[4] = {0x7bffu, 0x0001u, 0x8000u, 0xbc00u};
    unsigned char *d = calloc(gpt2_matrix_bytes(GPT2_DTYPE_Q8_0, R, K), 1);
    int8_t q[R * K];
    float sc[R * 2];
    for (int o = 0; o < R; o++)
        for (int i = 0; i < K; i++) {
            q[o * K + i] = (int8_t)irand(-127, 127);
            d[gpt2_q8_value_offset(R, K, (uint64_t)o, (uint64_t)i)] = (unsigned char)q[o * K + i];
            if (i % 32 == 0) {
                memcpy(d + gpt2_q8_scale_offset(R, K, (uint64_t)o, (uint64_t)i / 32), &scale[(o + i / 32) % 4], 2);
                sc[o * 2 + i / 32] = gpt2_f16_to_f32(scale[(o + i / 32) % 4]);
            }
        }
    gpt2_matrix m = {GPT2_DTYPE_Q8_0, R, K, d, 0};
    float x[4 * K], out[4 * R], ref[4 * R];
    for (int i = 0; i < 4 * K; i++) x[i] = frand();
    for (int n = 1; n <= 4; n += 3) {
        _Alignas(16) unsigned char act[4 * K * 2 + 4 * (K / 32) * 16], ref_act[sizeof act];
        CHECK(k_q8_act_bytes(n, K) <= sizeof act, "activation buffer");
        k_q8_quantize_act(act, x, n, K);
        ref_k_q8_quantize_act(ref_act, x, n, K);
        k_matmul_rows(out, x, act, &m, NULL, n, 0, R);
        ref_k_matmul_rows(ref, x, ref_act, &m, NULL, n, 0, R);
        int bad = 0;
        for (int t = 0; t < n; t++)
            for (int o = 0; o < R; o++)
                bad += !same_bits(out[t * R + o], ref[t * R + o]) ||
                       !same_bits(out[t * R + o], order_q8(x + t * K, q + o * K, sc + o * 2, K));
        CHECK(bad == 0, "q8_0 with edge scales, %d tokens: %d outputs differ", n, bad);
    }
    free(d);
}

/* The inputs of round `round` of the gelu tests: the specials (round 0), values near +-7.34 where
 * tanh's argument crosses +-20 (every third round), with `moderate` values in [-4, 4) (every third
 * round after that), else consecutive bit patterns 4099 apart from *pattern on. */
static void gelu_inputs(float *x, int m, int round, int moderate, uint64_t *pattern) {
    static const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-45f, INFINITY, -INFINITY, NAN, 3.4e38f, -3.4e38f};
    for (int i = 0; i < m; i++) {
        if (round == 0 && i < (int)(sizeof specials / sizeof specials[0])) x[i] = specials[i];
        else if (round % 3 == 0) x[i] = (rnd() % 2 ? 1.0f : -1.0f) * (6.5f + 1.5f * (float)rnd() / 4294967296.0f);
        else if (moderate && round % 3 == 1) x[i] = 8.0f * ((float)rnd() / 4294967296.0f - 0.5f);
        else {
            uint32_t u = (uint32_t)*pattern;
            *pattern += 4099;
            memcpy(&x[i], &u, 4);
        }
    }
}

/* gelu_new: the build's k_gelu (four at a time, tanh in two double lanes) and the scalar
 * layer's give the bits of the rule written out here (float steps, gpt2_tanh one value at a
 * time) for floats spread over every exponent (each 4099th bit pattern), densely where tanh's
 * argument crosses +-20 (v near +-7.34) and for specials; and they are within 1e-6 |v| (plus
 * 1e-45) of libm's double-precision gelu_new for the finite ones. */
static void test_gelu(void) {
    enum { N = 4096 };
    float *x = malloc(N * sizeof(float)), *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    int bad_bits = 0, bad_math = 0, n = 0;
    uint64_t pattern = 0;
    for (int round = 0; round < 1200; round++) {
        int m = N - round % 7; /* lengths with a tail of 0..3 */
        gelu_inputs(x, m, round, 0, &pattern);
        memcpy(a, x, (size_t)m * sizeof(float));
        memcpy(b, x, (size_t)m * sizeof(float));
        k_gelu(a, m);
        ref_k_gelu(b, m);
        for (int i = 0; i < m; i++, n++) {
            float v = x[i], rule = 0.5f * v * (1.0f + (float)gpt2_tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
            bad_bits += !(same_bits(a[i], rule) || (isnan(a[i]) && isnan(rule)));
            bad_bits += !(same_bits(b[i], rule) || (isnan(b[i]) && isnan(rule)));
            if (!isfinite(v) || fabs(v) > 1e30) continue; /* v^3 overflows the float steps */
            double want = 0.5 * v * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
            /* float steps: errors of a few 1e-8 |v| (1 + tanh cancels for negative v), and
             * half a subnormal step for tiny v */
            bad_math += !(fabs(a[i] - want) <= 1e-6 * fabs(v) + 1e-45);
        }
    }
    CHECK(bad_bits == 0, "gelu: %d of %d outputs (this build's and the scalar layer's) differ from the rule", bad_bits, 2 * n);
    CHECK(bad_math == 0, "gelu: %d of %d outputs off libm's double gelu_new", bad_math, n);
    free(x);
    free(a);
    free(b);
}

/* gelu_new's derivative (training's backward pass): the build's k_gelu_grad and the scalar
 * layer's give the bits of the rule written out here (float steps, gpt2_tanh one value at a
 * time), on the inputs of test_gelu with upstream gradients of either sign; and, for |v| < 100,
 * within 1e-6 (relative to |d| (1 + |v|)) of the derivative of libm's double gelu_new taken
 * by hand. */
static void test_gelu_grad(void) {
    enum { N = 4096 };
    float *x = malloc(N * sizeof(float)), *d = malloc(N * sizeof(float)), *a = malloc(N * sizeof(float)),
          *b = malloc(N * sizeof(float));
    const float s2pi = 0.7978845608028654f;
    int bad_bits = 0, bad_math = 0, n = 0;
    uint64_t pattern = 0;
    for (int round = 0; round < 600; round++) {
        int m = N - round % 7; /* lengths with a tail of 0..3 */
        gelu_inputs(x, m, round, 1, &pattern);
        for (int i = 0; i < m; i++) d[i] = 2.0f * ((float)rnd() / 4294967296.0f - 0.5f);
        memcpy(a, d, (size_t)m * sizeof(float));
        memcpy(b, d, (size_t)m * sizeof(float));
        k_gelu_grad(a, x, m);
        ref_k_gelu_grad(b, x, m);
        for (int i = 0; i < m; i++, n++) {
            float v = x[i], th = (float)gpt2_tanh(s2pi * (v + 0.044715f * v * v * v));
            float du = s2pi * (1.0f + 3.0f * 0.044715f * v * v);
            float rule = d[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du);
            bad_bits += !(same_bits(a[i], rule) || (isnan(a[i]) && isnan(rule)));
            bad_bits += !(same_bits(b[i], rule) || (isnan(b[i]) && isnan(rule)));
            if (!isfinite(v) || fabs(v) >= 100.0) continue;
            const double s = sqrt(2.0 / 3.14159265358979323846), u = s * (v + 0.044715 * v * v * v), t = tanh(u);
            double want = d[i] * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * s * (1.0 + 3.0 * 0.044715 * v * v));
            bad_math += !(fabs(a[i] - want) <= 1e-6 * fabs(d[i]) * (1.0 + fabs(v)) + 1e-45);
        }
    }
    CHECK(bad_bits == 0, "gelu_grad: %d of %d outputs (this build's and the scalar layer's) differ from the rule", bad_bits,
          2 * n);
    CHECK(bad_math == 0, "gelu_grad: %d of %d outputs off the double derivative", bad_math, n);
    free(x);
    free(d);
    free(a);
    free(b);
}

static void test_f16_all(void) {
    int bad = 0;
    gpt2_matrix m = {GPT2_DTYPE_F16, 1, 65536, NULL, 0}; /* one row: packed = row-major */
    uint16_t *h = malloc(65536 * sizeof(uint16_t));
    float *f = malloc(65536 * sizeof(float));
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    m.data = h;
    k_matrix_row(f, &m, 0);
    for (int i = 0; i < 65536; i++)
        if (!same_bits(f[i], gpt2_f16_to_f32((uint16_t)i)) && !(isnan(f[i]) && isnan(gpt2_f16_to_f32((uint16_t)i))))
            bad++; /* x86 F16C quiets signalling NaNs: any NaN is a NaN */
    CHECK(bad == 0, "%d of 65536 halves convert differently from gpt2_f16_to_f32", bad);
    /* k_f16_all_finite: each half alone among finite ones, in the 8-wide part and the tail */
    bad = 0;
    for (int i = 0; i < 65536; i++) {
        uint16_t v[11] = {0x3c00, 0x0001, 0x8000, 0x7bff, 0xfbff, 0x0400, 0x1234, 0x3555, 0x0002, 0x4000, 0xc000};
        int want = isfinite(gpt2_f16_to_f32((uint16_t)i)) != 0;
        v[i % 11] = (uint16_t)i;
        bad += k_f16_all_finite(v, 11) != want;
    }
    CHECK(bad == 0, "k_f16_all_finite is wrong for %d halves", bad);
    free(h);
    free(f);
}

static void test_vectors(void) {
    for (int it = 0; it < 50; it++) {
        int n = irand(1, 100);
        float a[100], b[100], y1[100], y2[100];
        for (int i = 0; i < n; i++) a[i] = frand(), b[i] = frand(), y1[i] = y2[i] = frand();
        CHECK(same_bits(k_dot(a, b, n), ref_k_dot(a, b, n)), "k_dot n=%d", n);
        CHECK(same_bits(k_dot(a, b, n), order_dot(a, b, n)), "k_dot n=%d: not the order written out", n);
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

/* k_read_bytes: the XOR of the little-endian 32-bit words (tail zero-padded), worked out here
 * byte by byte, from this build and the scalar layer. */
static void test_read_bytes(void) {
    unsigned char buf[300];
    for (int i = 0; i < 300; i++) buf[i] = (unsigned char)rnd();
    for (int n = 0; n <= 300; n += 7)
        for (int off = 0; off < 3; off++) {
            size_t len = (size_t)(n - off > 0 ? n - off : 0);
            uint32_t want = 0;
            for (size_t i = 0; i < len; i++) want ^= (uint32_t)buf[off + i] << (8 * (i % 4));
            CHECK(k_read_bytes(buf + off, len) == want && ref_k_read_bytes(buf + off, len) == want,
                  "k_read_bytes n=%d off=%d", n, off);
        }
}

/* Every element (and q8_0 scale) of a packed matrix has its own place, and together they fill
 * the storage exactly; a few places worked out by hand from matrix.h's description. */
static void test_packing(void) {
    const int shapes[][2] = {{1, 8}, {3, 12}, {4, 9}, {6, 12}, {9, 21}, {13, 64}, {5, 96}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint64_t R = (uint64_t)shapes[s][0], K = (uint64_t)shapes[s][1];
        for (int q8 = 0; q8 < 2; q8++) {
            if (q8 && K % 32) continue;
            uint64_t bytes = gpt2_matrix_bytes(q8 ? GPT2_DTYPE_Q8_0 : GPT2_DTYPE_F32, R, K);
            unsigned char *hit = calloc(bytes, 1);
            int bad = 0;
            for (uint64_t o = 0; o < R; o++)
                for (uint64_t i = 0; i < K; i++) {
                    uint64_t at = q8 ? gpt2_q8_value_offset(R, K, o, i) : 4 * gpt2_packed_index(R, K, o, i);
                    for (int j = 0; j < (q8 ? 1 : 4); j++) bad += at + j >= bytes || hit[at + j]++;
                    if (q8 && i % 32 == 0) {
                        uint64_t sc = gpt2_q8_scale_offset(R, K, o, i / 32);
                        for (int j = 0; j < 2; j++) bad += sc + j >= bytes || hit[sc + j]++;
                    }
                }
            for (uint64_t j = 0; j < bytes; j++) bad += hit[j] != 1;
            CHECK(bad == 0, "packing %dx%d %s: %d bytes not covered exactly once", (int)R, (int)K, q8 ? "q8_0" : "f32", bad);
            free(hit);
        }
    }
    /* 6 x 12: tile 1 holds rows 4, 5 (rt = 2) from element 48; c8 = 8. (5, 9): tail column
     * 1 of row 1 of the tile: 48 + 8*2 + 1*4 + 1 = 69. (5, 6): chunk 1, row 1, column 2:
     * 48 + 1*4*2 + 1*4 + 2 = 62. (2, 3): tile 0, chunk 0, row 2: 2*4 + 3 = 11. */
    CHECK(gpt2_packed_index(6, 12, 5, 9) == 69 && gpt2_packed_index(6, 12, 5, 6) == 62 &&
              gpt2_packed_index(6, 12, 2, 3) == 11,
          "packed f32 positions");
    /* q8_0 5 x 96 (nb = 3): tile 0 groups are 4*34 = 136 bytes (4 half scales, then 16 pairs
     * of 4 rows). (2, 37): block 1, pair 2, h 1: 136 + 8 + 2*8 + 2*2 + 1 = 165; scale (3, 2):
     * 272 + 3*2 = 278. Tile 1 (row 4, rt = 1) starts at 4*3*34 = 408: (4, 33): block 1 (34
     * bytes each), 408 + 34 + 2 + 0*2 + 1 = 445. */
    CHECK(gpt2_q8_value_offset(5, 96, 2, 37) == 165 && gpt2_q8_scale_offset(5, 96, 3, 2) == 278 &&
              gpt2_q8_value_offset(5, 96, 4, 33) == 445,
          "packed q8_0 positions");
}

/* A source value for the conversion tests: mostly ordinary, with the awkward ones mixed in
 * (zeros of both signs, subnormal halves, values past the largest half, infinities, NaNs,
 * ties of the q8_0 rounding: k + 0.5 times a power of two). */
static float awkward(void) {
    switch (rnd() % 24) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return frand() * 1e-6f;
    case 3: return frand() * 1e5f;
    case 4: return (rnd() & 1) ? INFINITY : -INFINITY;
    case 5: return NAN;
    case 6: return (float)(irand(-127, 126)) + 0.5f;
    case 7: return ldexpf((float)irand(-255, 255), irand(-30, 10));
    default: return frand();
    }
}

/* One source element of type t holding v (f16 / bf16: rounded / truncated; any value will do). */
static void put_src(unsigned char *p, int t, float v) {
    if (t == K_SRC_F32) memcpy(p, &v, 4);
    else {
        uint32_t u;
        memcpy(&u, &v, 4);
        uint16_t h = t == K_SRC_F16 ? gpt2_f32_to_f16(v) : (uint16_t)(u >> 16);
        if (t == K_SRC_F16 && rnd() % 40 == 0) h = (uint16_t)(0x7c01 + rnd() % 0x3fe); /* signalling NaNs too */
        memcpy(p, &h, 2);
    }
}
static float get_src(const unsigned char *p, int t) {
    if (t == K_SRC_F32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return t == K_SRC_F16 ? gpt2_f16_to_f32(h) : gpt2_bf16_to_f32(h);
}

/* k_pack_band / k_pack_rows against the rules applied here value by value: q8_0 blocks by
 * gpt2_q8_quantize_block, f16 by gpt2_f32_to_f16 of the exact value; every byte of the
 * packed storage compared (so nothing is left unwritten either), for every source type,
 * output counts that are not multiples of 4, and output ranges split as threads split them. */
static void test_pack(void) {
    const int shapes[][2] = {{8, 32}, {13, 64}, {6, 96}, {50, 128}, {7, 40}, {5, 37}}; /* rows (out), cols (in) */
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
        for (int dt = 1; dt <= 2; dt++)
            for (int t = 0; t < 3; t++)
                for (int transposed = 0; transposed < 2; transposed++) {
                    const int R = shapes[sh][0], K = shapes[sh][1];
                    const gpt2_dtype type = (gpt2_dtype)dt;
                    if (type == GPT2_DTYPE_Q8_0 && K % 32) continue;
                    const size_t es = t == K_SRC_F32 ? 4 : 2, bytes = (size_t)gpt2_matrix_bytes(type, (uint64_t)R, (uint64_t)K);
                    /* source: [in, out] (Conv1D) or [out, in] */
                    unsigned char *src = malloc((size_t)R * K * es);
                    for (size_t e = 0; e < (size_t)R * K; e++) put_src(src + e * es, t, awkward());
                    unsigned char *want = malloc(bytes), *got = malloc(bytes);
                    memset(want, 0xa5, bytes);
                    gpt2_matrix mg = {type, R, K, got, 0};
                    for (int o = 0; o < R; o++)
                        for (int b = 0; b < (type == GPT2_DTYPE_Q8_0 ? K / 32 : 1); b++) {
                            const int i0 = type == GPT2_DTYPE_Q8_0 ? 32 * b : 0, n = type == GPT2_DTYPE_Q8_0 ? 32 : K;
                            float v[512];
                            for (int k = 0; k < n; k++) {
                                size_t e = transposed ? (size_t)(i0 + k) * R + o : (size_t)o * K + i0 + k;
                                v[k] = get_src(src + e * es, t);
                            }
                            if (type == GPT2_DTYPE_F16) {
                                for (int k = 0; k < n; k++) {
                                    uint16_t h = gpt2_f32_to_f16(v[k]);
                                    memcpy(want + 2 * gpt2_packed_index((uint64_t)R, (uint64_t)K, (uint64_t)o, (uint64_t)k), &h, 2);
                                }
                                continue;
                            }
                            int8_t q[32];
                            uint16_t sc;
                            gpt2_q8_quantize_block(v, q, &sc, NULL);
                            memcpy(want + gpt2_q8_scale_offset((uint64_t)R, (uint64_t)K, (uint64_t)o, (uint64_t)b), &sc, 2);
                            for (int k = 0; k < 32; k++)
                                want[gpt2_q8_value_offset((uint64_t)R, (uint64_t)K, (uint64_t)o, (uint64_t)(i0 + k))] = (unsigned char)q[k];
                        }
                    /* this build's kernels, then the scalar layer's, outputs split in two uneven
                     * parts (as between threads) */
                    for (int scalar = 0; scalar < 2; scalar++) {
                        int cut = irand(0, R);
                        memset(got, 0x5a, bytes);
                        for (int part = 0; part < 2; part++) {
                            int o0 = part ? cut : 0, o1 = part ? R : cut;
                            if (!transposed) {
                                (scalar ? ref_k_pack_rows : k_pack_rows)(&mg, src + (size_t)o0 * K * es, t, o0, o1);
                                continue;
                            }
                            for (int i0 = 0; i0 < K; i0 += 32)
                                (scalar ? ref_k_pack_band : k_pack_band)(&mg, src + (size_t)i0 * R * es, t, (size_t)R, i0,
                                                                         K - i0 < 32 ? K - i0 : 32, o0, o1);
                        }
                        size_t bad = 0;
                        for (size_t j = 0; j < bytes; j++) bad += want[j] != got[j];
                        CHECK(bad == 0, "pack %s %dx%d from %s (%s, %s): %zu of %zu bytes differ", gpt2_dtype_name(type), R, K,
                              t == 0 ? "F32" : t == 1 ? "F16" : "BF16", transposed ? "Conv1D" : "rows",
                              scalar ? "scalar layer" : "this build", bad, bytes);
                    }
                    free(src);
                    free(want);
                    free(got);
                }
}

int main(void) {
    test_pack();
    test_packing();
    test_read_bytes();
    test_attention();
    test_products();
    test_q8_edge_scales();
    test_gelu();
    test_gelu_grad();
    test_f16_all();
    test_vectors();
    return check_summary("test_kernels");
}
