/* kernels.c - see kernels.h. */
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fp16.h"

#if !defined(GPT2_SCALAR_KERNELS) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__SSE2__) || defined(__wasm_simd128__) || defined(__ARM_NEON))
#define GPT2_VEC4 1
/* 4 floats; aligned(4) so loads through it need only float alignment. */
typedef float v4 __attribute__((vector_size(16), aligned(4)));

static inline v4 v4_load(const float *p) {
    v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline float v4_sum(v4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }
#endif

float k_dot(const float *a, const float *b, int k) {
    int i = 0;
    float s = 0.0f;
#ifdef GPT2_VEC4
    /* Four independent accumulators hide the add latency. */
    v4 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (; i + 16 <= k; i += 16) {
        s0 += v4_load(a + i) * v4_load(b + i);
        s1 += v4_load(a + i + 4) * v4_load(b + i + 4);
        s2 += v4_load(a + i + 8) * v4_load(b + i + 8);
        s3 += v4_load(a + i + 12) * v4_load(b + i + 12);
    }
    for (; i + 4 <= k; i += 4) s0 += v4_load(a + i) * v4_load(b + i);
    s = v4_sum((s0 + s1) + (s2 + s3));
#endif
    for (; i < k; i++) s += a[i] * b[i];
    return s;
}

#ifdef GPT2_VEC4
/* Four outputs rows against one input row: each x load is shared by four weight rows. */
static void dot_1x4(const float *x, const float *w, int k, float out[4]) {
    const float *w0 = w, *w1 = w + k, *w2 = w + 2 * (long)k, *w3 = w + 3 * (long)k;
    v4 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    int i = 0;
    for (; i + 4 <= k; i += 4) {
        v4 xv = v4_load(x + i);
        s0 += xv * v4_load(w0 + i);
        s1 += xv * v4_load(w1 + i);
        s2 += xv * v4_load(w2 + i);
        s3 += xv * v4_load(w3 + i);
    }
    float r0 = v4_sum(s0), r1 = v4_sum(s1), r2 = v4_sum(s2), r3 = v4_sum(s3);
    for (; i < k; i++) {
        r0 += x[i] * w0[i];
        r1 += x[i] * w1[i];
        r2 += x[i] * w2[i];
        r3 += x[i] * w3[i];
    }
    out[0] = r0; out[1] = r1; out[2] = r2; out[3] = r3;
}
#endif

/* f32 weights, output rows [o0, o1). */
static void matmul_f32_rows(float *out, const float *x, const float *w, const float *b, int n, int k, int m,
                            int o0, int o1) {
    /* Loop order: blocks of output rows outermost, so a block of weights (4 rows) stays in
     * cache while every input row passes over it; weights are read from memory once. */
    int o = o0;
#ifdef GPT2_VEC4
    for (; o + 4 <= o1; o += 4) {
        const float *wo = w + (long)o * k;
        for (int t = 0; t < n; t++) {
            float r[4];
            dot_1x4(x + (long)t * k, wo, k, r);
            float *dst = out + (long)t * m + o;
            for (int j = 0; j < 4; j++) dst[j] = r[j] + (b ? b[o + j] : 0.0f);
        }
    }
#endif
    for (; o < o1; o++) {
        const float *wo = w + (long)o * k;
        for (int t = 0; t < n; t++)
            out[(long)t * m + o] = k_dot(x + (long)t * k, wo, k) + (b ? b[o] : 0.0f);
    }
}

void k_matmul(float *out, const float *x, const float *w, const float *b, int n, int k, int m) {
    matmul_f32_rows(out, x, w, b, n, k, m, 0, m);
}

void k_matrix_row(float *out, const gpt2_matrix *w, int r) {
    const int k = w->cols;
    switch (w->type) {
    case GPT2_DTYPE_F32:
        memcpy(out, (const float *)w->data + (long)r * k, (size_t)k * sizeof(float));
        break;
    case GPT2_DTYPE_F16: {
        const uint16_t *h = (const uint16_t *)w->data + (long)r * k;
        for (int i = 0; i < k; i++) out[i] = gpt2_f16_to_f32(h[i]);
        break;
    }
    case GPT2_DTYPE_Q8_0: {
        const int8_t *q = (const int8_t *)w->data + (long)r * k;
        const float *sc = w->scales + (long)r * (k / GPT2_Q8_BLOCK);
        for (int i = 0; i < k; i++) out[i] = (float)q[i] * sc[i / GPT2_Q8_BLOCK];
        break;
    }
    }
}

/* Scalar reference for any dtype: one output at a time, weights dequantized on the fly. */
static void matmul_any_rows(float *out, const float *x, const gpt2_matrix *w, const float *b, int n, int o0,
                            int o1) {
    const int k = w->cols, m = w->rows;
    for (int o = o0; o < o1; o++) {
        for (int t = 0; t < n; t++) {
            const float *xt = x + (long)t * k;
            float s = 0.0f;
            if (w->type == GPT2_DTYPE_F16) {
                const uint16_t *h = (const uint16_t *)w->data + (long)o * k;
                for (int i = 0; i < k; i++) s += xt[i] * gpt2_f16_to_f32(h[i]);
            } else { /* Q8_0: per block, sum q*x then scale */
                const int8_t *q = (const int8_t *)w->data + (long)o * k;
                const float *sc = w->scales + (long)o * (k / GPT2_Q8_BLOCK);
                for (int blk = 0; blk < k / GPT2_Q8_BLOCK; blk++) {
                    float bs = 0.0f;
                    for (int i = blk * GPT2_Q8_BLOCK; i < (blk + 1) * GPT2_Q8_BLOCK; i++) bs += xt[i] * (float)q[i];
                    s += bs * sc[blk];
                }
            }
            out[(long)t * m + o] = s + (b ? b[o] : 0.0f);
        }
    }
}

void k_matmul_rows(float *out, const float *x, const gpt2_matrix *w, const float *b, int n, int o0, int o1) {
    if (w->type == GPT2_DTYPE_F32)
        matmul_f32_rows(out, x, (const float *)w->data, b, n, w->cols, w->rows, o0, o1);
    else
        matmul_any_rows(out, x, w, b, n, o0, o1);
}

void k_layernorm(float *out, const float *x, const float *g, const float *b, int c, float eps) {
    /* Two passes (mean, then variance of the centred values) for accuracy. */
    float mean = 0.0f;
    for (int i = 0; i < c; i++) mean += x[i];
    mean /= (float)c;
    float var = 0.0f;
    for (int i = 0; i < c; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    var /= (float)c;
    float inv = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < c; i++) out[i] = (x[i] - mean) * inv * g[i] + b[i];
}

void k_gelu(float *x, int n) {
    const float s2pi = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(s2pi * (v + 0.044715f * v * v * v)));
    }
}

void k_softmax(float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void k_add(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += x[i];
}

void k_axpy(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}
