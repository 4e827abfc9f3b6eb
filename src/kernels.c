/* kernels.c - see kernels.h.
 *
 * One portable source, three implementations of the same arithmetic chosen at compile time:
 *   - WASM SIMD128 intrinsics (wasm_simd128.h) under __wasm_simd128__;
 *   - x86 SSE4.1 intrinsics natively (plus F16C for f16 when the build has it: -march=native;
 *     128-bit on purpose: wider vectors would change the order of the float sums);
 *   - a scalar fallback (GPT2_SCALAR_KERNELS forces it) that computes the same lanes in
 *     plain C, in the same order.
 * Every float sum is defined over 4 lanes (see "The arithmetic" below), so the three give
 * bit-identical results (no fused multiply-add: -ffp-contract=off, and no FMA intrinsics),
 * and the result of a product does not depend on how the work is tiled or split between
 * threads: prefill and one-token-at-a-time decode agree exactly.
 *
 * The arithmetic (all dtypes):
 *   f32/f16: dot(x, w) over k: lane j (0..3) accumulates x[i]*W(i) for i = j (mod 4),
 *            i < k - k%4, in increasing i (one rounding for the product, one for the sum);
 *            then s = (lane0 + lane1) + (lane2 + lane3); then s += x[i]*W(i) for the last
 *            k%4 elements in order; out = s + b.
 *   q8_0:    activations are quantized per 32-block: d = amax/127, q_i = round_even(x_i *
 *            (127/amax)) in [-127, 127] (all zero when amax = 0). Per block, lane j gets the
 *            exact integer sum of q_i*wq_i over i mod 8 in {2j, 2j+1} (i32x4.dot_i16x8_s on
 *            four groups of 8), converted to float and multiplied by (wd*d) (one float
 *            product); lane j accumulates those block terms in block order; out =
 *            (lane0 + lane1) + (lane2 + lane3) + b.
 * Matrix products are tiled: R output rows x T input rows per register tile, so that each
 * weight load serves T tokens and each activation load R rows. Decode (n == 1) streams four
 * weight rows at a time (four independent accumulators), reading each weight exactly once.
 */
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fp16.h"

#if defined(GPT2_SCALAR_KERNELS)
#define K_SIMD 0
#elif defined(__wasm_simd128__)
#define K_SIMD 1
#define K_WASM 1
#include <wasm_simd128.h>
#elif defined(__SSE4_1__)
#define K_SIMD 1
#define K_SSE 1
#include <immintrin.h>
#else
#define K_SIMD 0
#endif

#define K_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------------------------------------
 * A 4-lane vector layer: vf = 4 floats, vi = 4 int32 / 8 int16.
 */
#if K_WASM
typedef v128_t vf;
typedef v128_t vi;
K_INLINE vf vf_load(const float *p) { return wasm_v128_load(p); }
K_INLINE void vf_store(float *p, vf v) { wasm_v128_store(p, v); }
K_INLINE vf vf_zero(void) { return wasm_f32x4_splat(0.0f); }
K_INLINE vf vf_splat(float a) { return wasm_f32x4_splat(a); }
K_INLINE vf vf_add(vf a, vf b) { return wasm_f32x4_add(a, b); }
K_INLINE vf vf_mul(vf a, vf b) { return wasm_f32x4_mul(a, b); }
K_INLINE vf vf_max(vf a, vf b) { return wasm_f32x4_max(a, b); }
K_INLINE vf vf_abs(vf a) { return wasm_f32x4_abs(a); }
K_INLINE float vf_hsum(vf v) {
    return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
           (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}
K_INLINE float vf_hmax(vf v) {
    vf m = wasm_f32x4_max(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
    m = wasm_f32x4_max(m, wasm_i32x4_shuffle(m, m, 1, 0, 3, 2));
    return wasm_f32x4_extract_lane(m, 0);
}
/* 8 int8 -> 8 int16 */
K_INLINE vi vi_load_i8x8(const int8_t *p) { return wasm_i16x8_load8x8(p); }
K_INLINE vi vi_load(const void *p) { return wasm_v128_load(p); }
K_INLINE void vi_store(void *p, vi v) { wasm_v128_store(p, v); }
K_INLINE vi vi_dot16(vi a, vi b) { return wasm_i32x4_dot_i16x8(a, b); }
K_INLINE vi vi_add32(vi a, vi b) { return wasm_i32x4_add(a, b); }
K_INLINE vi vi_xor(vi a, vi b) { return wasm_v128_xor(a, b); }
K_INLINE vf vf_from_i32(vi a) { return wasm_f32x4_convert_i32x4(a); }
/* round to nearest even, then 2 x 4 int32 -> 8 int16 (values are within [-127, 127]) */
K_INLINE vi vi_round_pack(vf a, vf b) {
    return wasm_i16x8_narrow_i32x4(wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(a)),
                                   wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(b)));
}
/* 4 halves, each in the top 16 bits of a 32-bit lane (x = h << 16), -> 4 floats, exact and
 * branch-free: (x & 0x7fff0000) >> 3 puts exponent and mantissa at a float's places, and
 * multiplying by 2^112 re-biases the exponent (15 -> 127) of normal and subnormal halves alike
 * (a power-of-two scaling: exact). Exponent 31 (inf, NaN) gets the float's all-ones
 * exponent (the mantissa is kept); the sign is copied. */
K_INLINE vf vf_from_f16_hi(v128_t x) {
    v128_t em = wasm_u32x4_shr(wasm_v128_and(x, wasm_i32x4_splat(0x7fff0000)), 3);
    v128_t f = wasm_f32x4_mul(em, wasm_f32x4_splat(0x1p112f));
    v128_t special = wasm_v128_and(wasm_i32x4_gt(em, wasm_i32x4_splat(0x0f7fffff)), wasm_i32x4_splat(0x7f800000));
    return wasm_v128_or(wasm_v128_or(f, special), wasm_v128_and(x, wasm_i32x4_splat((int32_t)0x80000000u)));
}
/* 8 halves -> 8 floats (lo: 0..3, hi: 4..7); interleaving zeros below the halves gives each
 * lane h << 16 (punpcklwd / punpckhwd). Always succeeds. */
K_INLINE int vf_load_f16x8(const uint16_t *p, vf *lo, vf *hi) {
    v128_t h = wasm_v128_load(p), z = wasm_i32x4_splat(0);
    *lo = vf_from_f16_hi(wasm_i16x8_shuffle(z, h, 0, 8, 1, 9, 2, 10, 3, 11));
    *hi = vf_from_f16_hi(wasm_i16x8_shuffle(z, h, 4, 12, 5, 13, 6, 14, 7, 15));
    return 1;
}
#elif K_SSE
typedef __m128 vf;
typedef __m128i vi;
K_INLINE vf vf_load(const float *p) { return _mm_loadu_ps(p); }
K_INLINE void vf_store(float *p, vf v) { _mm_storeu_ps(p, v); }
K_INLINE vf vf_zero(void) { return _mm_setzero_ps(); }
K_INLINE vf vf_splat(float a) { return _mm_set1_ps(a); }
K_INLINE vf vf_add(vf a, vf b) { return _mm_add_ps(a, b); }
K_INLINE vf vf_mul(vf a, vf b) { return _mm_mul_ps(a, b); }
K_INLINE vf vf_max(vf a, vf b) { return _mm_max_ps(a, b); }
K_INLINE vf vf_abs(vf a) { return _mm_andnot_ps(_mm_set1_ps(-0.0f), a); }
K_INLINE float vf_hsum(vf v) {
    float t[4];
    _mm_storeu_ps(t, v);
    return (t[0] + t[1]) + (t[2] + t[3]);
}
K_INLINE float vf_hmax(vf v) {
    vf m = _mm_max_ps(v, _mm_shuffle_ps(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtss_f32(m);
}
K_INLINE vi vi_load_i8x8(const int8_t *p) {
    int64_t v;
    memcpy(&v, p, 8);
    return _mm_cvtepi8_epi16(_mm_cvtsi64_si128(v));
}
K_INLINE vi vi_load(const void *p) { return _mm_loadu_si128((const __m128i *)p); }
K_INLINE void vi_store(void *p, vi v) { _mm_storeu_si128((__m128i *)p, v); }
K_INLINE vi vi_dot16(vi a, vi b) { return _mm_madd_epi16(a, b); }
K_INLINE vi vi_add32(vi a, vi b) { return _mm_add_epi32(a, b); }
K_INLINE vi vi_xor(vi a, vi b) { return _mm_xor_si128(a, b); }
K_INLINE vf vf_from_i32(vi a) { return _mm_cvtepi32_ps(a); }
/* cvtps rounds to nearest even under the default MXCSR */
K_INLINE vi vi_round_pack(vf a, vf b) { return _mm_packs_epi32(_mm_cvtps_epi32(a), _mm_cvtps_epi32(b)); }
#ifdef __F16C__
/* 8 halves -> 8 floats, exact (F16C); always succeeds */
K_INLINE int vf_load_f16x8(const uint16_t *p, vf *lo, vf *hi) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    *lo = _mm_cvtph_ps(h);
    *hi = _mm_cvtph_ps(_mm_unpackhi_epi64(h, h));
    return 1;
}
#else
K_INLINE int vf_load_f16x8(const uint16_t *p, vf *lo, vf *hi) {
    (void)p, (void)lo, (void)hi;
    return 0; /* the caller converts one by one */
}
#endif
#endif

/* ------------------------------------------------------------------------------------------
 * Small vector kernels.
 */

/* dot(a, b) = sum_i a[i]*b[i], in the 4-lane order described at the top. */
float k_dot(const float *a, const float *b, int k) {
    int i = 0;
    float s;
#if K_SIMD
    vf acc = vf_zero();
    for (; i + 4 <= k; i += 4) acc = vf_add(acc, vf_mul(vf_load(a + i), vf_load(b + i)));
    s = vf_hsum(acc);
#else
    float l[4] = {0, 0, 0, 0};
    for (; i + 4 <= k; i += 4)
        for (int j = 0; j < 4; j++) l[j] += a[i + j] * b[i + j];
    s = (l[0] + l[1]) + (l[2] + l[3]);
#endif
    for (; i < k; i++) s += a[i] * b[i];
    return s;
}

/* y[i] += x[i] */
void k_add(float *y, const float *x, int n) {
    int i = 0;
#if K_SIMD
    for (; i + 4 <= n; i += 4) vf_store(y + i, vf_add(vf_load(y + i), vf_load(x + i)));
#endif
    for (; i < n; i++) y[i] += x[i];
}

/* y[i] += a * x[i] */
void k_axpy(float *y, float a, const float *x, int n) {
    int i = 0;
#if K_SIMD
    vf av = vf_splat(a);
    for (; i + 4 <= n; i += 4) vf_store(y + i, vf_add(vf_load(y + i), vf_mul(av, vf_load(x + i))));
#endif
    for (; i < n; i++) y[i] += a * x[i];
}

/* att[j] = dot(q, K_j) * scale for j < n, K_j = k + j*stride (each dot as k_dot). */
void k_attn_scores(float *att, const float *q, const float *k, long stride, int n, int d, float scale) {
    for (int j = 0; j < n; j++) {
        const float *kj = k + (long)j * stride;
        int i = 0;
        float s;
#if K_SIMD
        vf acc = vf_zero();
        for (; i + 4 <= d; i += 4) acc = vf_add(acc, vf_mul(vf_load(q + i), vf_load(kj + i)));
        s = vf_hsum(acc);
#else
        float l[4] = {0, 0, 0, 0};
        for (; i + 4 <= d; i += 4)
            for (int u = 0; u < 4; u++) l[u] += q[i + u] * kj[i + u];
        s = (l[0] + l[1]) + (l[2] + l[3]);
#endif
        for (; i < d; i++) s += q[i] * kj[i];
        att[j] = s * scale;
    }
}

/* y[i] = sum_j att[j] * V_j[i] for i < d, V_j = v + j*stride, summed in order of j from 0
 * (the same as zeroing y and calling k_axpy for each j); 16 floats of y stay in registers
 * while all rows pass. */
void k_attn_values(float *y, const float *att, const float *v, long stride, int n, int d) {
    int i = 0;
#if K_SIMD
    for (; i + 16 <= d; i += 16) {
        vf y0 = vf_zero(), y1 = vf_zero(), y2 = vf_zero(), y3 = vf_zero();
        for (int j = 0; j < n; j++) {
            const float *vj = v + (long)j * stride + i;
            vf a = vf_splat(att[j]);
            y0 = vf_add(y0, vf_mul(a, vf_load(vj)));
            y1 = vf_add(y1, vf_mul(a, vf_load(vj + 4)));
            y2 = vf_add(y2, vf_mul(a, vf_load(vj + 8)));
            y3 = vf_add(y3, vf_mul(a, vf_load(vj + 12)));
        }
        vf_store(y + i, y0);
        vf_store(y + i + 4, y1);
        vf_store(y + i + 8, y2);
        vf_store(y + i + 12, y3);
    }
    for (; i + 4 <= d; i += 4) {
        vf y0 = vf_zero();
        for (int j = 0; j < n; j++) y0 = vf_add(y0, vf_mul(vf_splat(att[j]), vf_load(v + (long)j * stride + i)));
        vf_store(y + i, y0);
    }
#endif
    for (; i < d; i++) {
        float s = 0.0f;
        for (int j = 0; j < n; j++) s += att[j] * v[(long)j * stride + i];
        y[i] = s;
    }
}

/* ------------------------------------------------------------------------------------------
 * f32 products. f32_tile computes an R x T tile: out[t*ldo + r] for r < R, t < T, with
 * weight row r at w + r*k and input row t at x + t*k; R and T are compile-time constants
 * at every call (the loops unroll, the accumulators live in registers).
 */
K_INLINE void f32_tile(float *out, long ldo, const float *x, const float *w, const float *b, int k, int R,
                       int T) {
    int i = 0;
    float s[4][4];
#if K_SIMD
    vf acc[4][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = vf_zero();
    /* two steps per turn: the second step's loads use constant offsets from the first's
     * addresses (fewer address computations in WASM), the sums keep their order */
    for (; i + 8 <= k; i += 8) {
        for (int h = 0; h < 8; h += 4) {
            vf wv[4];
            for (int r = 0; r < R; r++) wv[r] = vf_load(w + (long)r * k + i + h);
            for (int t = 0; t < T; t++) {
                vf xv = vf_load(x + (long)t * k + i + h);
                for (int r = 0; r < R; r++) acc[r][t] = vf_add(acc[r][t], vf_mul(xv, wv[r]));
            }
        }
    }
    for (; i + 4 <= k; i += 4) {
        vf wv[4];
        for (int r = 0; r < R; r++) wv[r] = vf_load(w + (long)r * k + i);
        for (int t = 0; t < T; t++) {
            vf xv = vf_load(x + (long)t * k + i);
            for (int r = 0; r < R; r++) acc[r][t] = vf_add(acc[r][t], vf_mul(xv, wv[r]));
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) s[r][t] = vf_hsum(acc[r][t]);
#else
    float l[4][4][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < 4; j++) l[r][t][j] = 0.0f;
    for (; i + 4 <= k; i += 4)
        for (int r = 0; r < R; r++)
            for (int t = 0; t < T; t++)
                for (int j = 0; j < 4; j++) l[r][t][j] += x[(long)t * k + i + j] * w[(long)r * k + i + j];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) s[r][t] = (l[r][t][0] + l[r][t][1]) + (l[r][t][2] + l[r][t][3]);
#endif
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            float v = s[r][t];
            for (int j = i; j < k; j++) v += x[(long)t * k + j] * w[(long)r * k + j];
            out[(long)t * ldo + r] = v + (b ? b[r] : 0.0f);
        }
}

/* Tiles named by shape, so each is compiled once with constant R and T. */
#define F32_TILE(R, T)                                                                                   \
    static void f32_tile_##R##x##T(float *out, long ldo, const float *x, const float *w, const float *b, \
                                   int k) {                                                              \
        f32_tile(out, ldo, x, w, b, k, R, T);                                                            \
    }
F32_TILE(4, 1)
F32_TILE(1, 1)
F32_TILE(2, 4)
F32_TILE(2, 3)
F32_TILE(2, 2)
F32_TILE(1, 4)
F32_TILE(1, 3)
F32_TILE(1, 2)

/* out[t*ldo + r] = b[r] + dot(x_t, w_r) for r < rows, t < n: w holds `rows` rows of k.
 * Decode (n == 1): 4 rows per pass, weights streamed once. Prefill: blocks of 2 weight rows
 * (kept in L1) against tiles of 4 tokens. */
static void f32_rows(float *out, long ldo, const float *x, const float *w, const float *b, int n, int k,
                     int rows) {
    int r = 0;
    if (n == 1) {
        for (; r + 4 <= rows; r += 4) f32_tile_4x1(out + r, ldo, x, w + (long)r * k, b ? b + r : NULL, k);
        for (; r < rows; r++) f32_tile_1x1(out + r, ldo, x, w + (long)r * k, b ? b + r : NULL, k);
        return;
    }
    for (; r + 2 <= rows; r += 2) {
        const float *wr = w + (long)r * k, *br = b ? b + r : NULL;
        int t = 0;
        for (; t + 4 <= n; t += 4) f32_tile_2x4(out + t * ldo + r, ldo, x + (long)t * k, wr, br, k);
        float *o = out + t * ldo + r;
        const float *xt = x + (long)t * k;
        switch (n - t) {
        case 3: f32_tile_2x3(o, ldo, xt, wr, br, k); break;
        case 2: f32_tile_2x2(o, ldo, xt, wr, br, k); break;
        case 1:
            f32_tile_1x1(o, ldo, xt, wr, br, k);
            f32_tile_1x1(o + 1, ldo, xt, wr + k, br ? br + 1 : NULL, k);
            break;
        default: break;
        }
    }
    for (; r < rows; r++) {
        const float *wr = w + (long)r * k, *br = b ? b + r : NULL;
        int t = 0;
        for (; t + 4 <= n; t += 4) f32_tile_1x4(out + t * ldo + r, ldo, x + (long)t * k, wr, br, k);
        float *o = out + t * ldo + r;
        const float *xt = x + (long)t * k;
        switch (n - t) {
        case 3: f32_tile_1x3(o, ldo, xt, wr, br, k); break;
        case 2: f32_tile_1x2(o, ldo, xt, wr, br, k); break;
        case 1: f32_tile_1x1(o, ldo, xt, wr, br, k); break;
        default: break;
        }
    }
}

void k_matmul(float *out, const float *x, const float *w, const float *b, int n, int k, int m) {
    f32_rows(out, m, x, w, b, n, k, m);
}

/* ------------------------------------------------------------------------------------------
 * f16 products: blocks of weight rows are converted to float32 (exactly) into a stack buffer
 * and multiplied by the f32 kernel, so the conversion is paid once per weight, not per token,
 * and f16 results equal the f32 kernel's on the converted weights.
 */
enum { F16_BUF_FLOATS = 16384 }; /* 64 KiB of stack: 4 rows of up to 4096 */

/* dst[0..k) = row of halves as floats */
static void f16_row_to_f32(float *dst, const uint16_t *h, int k) {
    int i = 0;
#if K_SIMD
    for (; i + 8 <= k; i += 8) {
        vf lo, hi;
        if (vf_load_f16x8(h + i, &lo, &hi)) {
            vf_store(dst + i, lo);
            vf_store(dst + i + 4, hi);
        } else {
            for (int j = 0; j < 8; j++) dst[i + j] = gpt2_f16_to_f32(h[i + j]);
        }
    }
#endif
    for (; i < k; i++) dst[i] = gpt2_f16_to_f32(h[i]);
}

#if K_SIMD
/* Decode (one input row) against R rows of halves, converted in registers as they stream in
 * (converting into a buffer first would leave memory idle while the buffer is multiplied).
 * The same sums, in the same order, as f32_tile on the converted rows. */
K_INLINE void f16_tile_n1(float *out, const float *x, const uint16_t *w, const float *b, int k, int R) {
    vf acc[4];
    for (int r = 0; r < R; r++) acc[r] = vf_zero();
    int i = 0;
    for (; i + 8 <= k; i += 8) {
        vf x0 = vf_load(x + i), x1 = vf_load(x + i + 4);
        for (int r = 0; r < R; r++) {
            vf lo, hi;
            const uint16_t *wr = w + (long)r * k + i;
            if (!vf_load_f16x8(wr, &lo, &hi)) {
                float t[8];
                for (int j = 0; j < 8; j++) t[j] = gpt2_f16_to_f32(wr[j]);
                lo = vf_load(t);
                hi = vf_load(t + 4);
            }
            acc[r] = vf_add(acc[r], vf_mul(x0, lo));
            acc[r] = vf_add(acc[r], vf_mul(x1, hi));
        }
    }
    for (; i + 4 <= k; i += 4) {
        vf xv = vf_load(x + i);
        for (int r = 0; r < R; r++) {
            float t[4];
            for (int j = 0; j < 4; j++) t[j] = gpt2_f16_to_f32(w[(long)r * k + i + j]);
            acc[r] = vf_add(acc[r], vf_mul(xv, vf_load(t)));
        }
    }
    for (int r = 0; r < R; r++) {
        float v = vf_hsum(acc[r]);
        for (int j = i; j < k; j++) v += x[j] * gpt2_f16_to_f32(w[(long)r * k + j]);
        out[r] = v + (b ? b[r] : 0.0f);
    }
}
static void f16_tile_4x1(float *out, const float *x, const uint16_t *w, const float *b, int k) {
    f16_tile_n1(out, x, w, b, k, 4);
}
static void f16_tile_1x1(float *out, const float *x, const uint16_t *w, const float *b, int k) {
    f16_tile_n1(out, x, w, b, k, 1);
}
#endif

static void f16_rows(float *out, long ldo, const float *x, const uint16_t *w, const float *b, int n, int k,
                     int rows) {
#if K_SIMD
    if (n == 1) {
        int r = 0;
        for (; r + 4 <= rows; r += 4) f16_tile_4x1(out + r, x, w + (long)r * k, b ? b + r : NULL, k);
        for (; r < rows; r++) f16_tile_1x1(out + r, x, w + (long)r * k, b ? b + r : NULL, k);
        return;
    }
#endif
    float buf[F16_BUF_FLOATS];
    /* rows per block: a multiple of 4 when it fits (the decode tile), at least 1 */
    int per = F16_BUF_FLOATS / (k > 0 ? k : 1);
    if (per >= 4) per &= ~3;
    if (per < 1) {
        /* a row longer than the buffer: convert element by element (not hit by GPT-2) */
        for (int r = 0; r < rows; r++)
            for (int t = 0; t < n; t++) {
                float s = 0.0f;
                const float *xt = x + (long)t * k;
                const uint16_t *wr = w + (long)r * k;
                float l[4] = {0, 0, 0, 0};
                int i = 0;
                for (; i + 4 <= k; i += 4)
                    for (int j = 0; j < 4; j++) l[j] += xt[i + j] * gpt2_f16_to_f32(wr[i + j]);
                s = (l[0] + l[1]) + (l[2] + l[3]);
                for (; i < k; i++) s += xt[i] * gpt2_f16_to_f32(wr[i]);
                out[(long)t * ldo + r] = s + (b ? b[r] : 0.0f);
            }
        return;
    }
    for (int r = 0; r < rows; r += per) {
        int nr = rows - r < per ? rows - r : per;
        for (int j = 0; j < nr; j++) f16_row_to_f32(buf + (long)j * k, w + (long)(r + j) * k, k);
        f32_rows(out + r, ldo, x, buf, b ? b + r : NULL, n, k, nr);
    }
}

/* ------------------------------------------------------------------------------------------
 * q8_0 products with int8 activations (see "The arithmetic" at the top).
 */

/* Activation scales are stored 4 times over (one vector), so the product kernels multiply
 * them without a splat. */
enum { XD = 4 };

/* Quantizes n rows of k floats (k a multiple of 32): q[t*k + i] (int16 holding -127..127),
 * d[(t*(k/32) + blk)*XD + j] for j < XD (the same value). */
static void q8_quantize(int16_t *q, float *d, const float *x, int n, int k) {
    const int nb = k / GPT2_Q8_BLOCK;
    for (int t = 0; t < n; t++)
        for (int blk = 0; blk < nb; blk++) {
            const float *xb = x + (long)t * k + blk * GPT2_Q8_BLOCK;
            int16_t *qb = q + (long)t * k + blk * GPT2_Q8_BLOCK;
            float amax;
#if K_SIMD
            vf m = vf_zero();
            for (int i = 0; i < GPT2_Q8_BLOCK; i += 4) m = vf_max(m, vf_abs(vf_load(xb + i)));
            amax = vf_hmax(m);
#else
            amax = 0.0f;
            for (int i = 0; i < GPT2_Q8_BLOCK; i++) {
                float a = fabsf(xb[i]);
                if (a > amax) amax = a;
            }
#endif
            float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            for (int j = 0; j < XD; j++) d[((long)t * nb + blk) * XD + j] = amax / 127.0f;
#if K_SIMD
            vf iv = vf_splat(inv);
            for (int i = 0; i < GPT2_Q8_BLOCK; i += 8)
                vi_store(qb + i, vi_round_pack(vf_mul(vf_load(xb + i), iv), vf_mul(vf_load(xb + i + 4), iv)));
#else
            for (int i = 0; i < GPT2_Q8_BLOCK; i++) qb[i] = (int16_t)rintf(xb[i] * inv);
#endif
        }
}

/* An R x T tile of the q8_0 product: out[t*ldo + r], weight row r at wq + r*k with scales
 * ws + r*nb, quantized input row t at xq + t*k with scales xd + t*nb. */
K_INLINE void q8_tile(float *out, long ldo, const int16_t *xq, const float *xd, const int8_t *wq,
                      const float *ws, const float *b, int k, int R, int T) {
    const int nb = k / GPT2_Q8_BLOCK;
    float s[4][4];
#if K_SIMD
    vf acc[4][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = vf_zero();
    for (int blk = 0; blk < nb; blk++) {
        const int at = blk * GPT2_Q8_BLOCK;
        vi wv[4][4];
        vf wsv[4];
        for (int r = 0; r < R; r++) {
            for (int g = 0; g < 4; g++) wv[r][g] = vi_load_i8x8(wq + (long)r * k + at + 8 * g);
            wsv[r] = vf_splat(ws[(long)r * nb + blk]);
        }
        for (int t = 0; t < T; t++) {
            const int16_t *xb = xq + (long)t * k + at;
            vi x0 = vi_load(xb), x1 = vi_load(xb + 8), x2 = vi_load(xb + 16), x3 = vi_load(xb + 24);
            vf dt = vf_load(xd + ((long)t * nb + blk) * XD);
            for (int r = 0; r < R; r++) {
                vi p = vi_add32(vi_add32(vi_dot16(wv[r][0], x0), vi_dot16(wv[r][1], x1)),
                                vi_add32(vi_dot16(wv[r][2], x2), vi_dot16(wv[r][3], x3)));
                acc[r][t] = vf_add(acc[r][t], vf_mul(vf_from_i32(p), vf_mul(wsv[r], dt)));
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) s[r][t] = vf_hsum(acc[r][t]);
#else
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            const int8_t *wr = wq + (long)r * k;
            const int16_t *xr = xq + (long)t * k;
            float l[4] = {0, 0, 0, 0};
            for (int blk = 0; blk < nb; blk++) {
                const int at = blk * GPT2_Q8_BLOCK;
                float sc = ws[(long)r * nb + blk] * xd[((long)t * nb + blk) * XD];
                for (int j = 0; j < 4; j++) {
                    int32_t p = 0;
                    for (int g = 0; g < 4; g++) {
                        int i = at + 8 * g + 2 * j;
                        p += (int32_t)wr[i] * xr[i] + (int32_t)wr[i + 1] * xr[i + 1];
                    }
                    l[j] += (float)p * sc;
                }
            }
            s[r][t] = (l[0] + l[1]) + (l[2] + l[3]);
        }
#endif
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) out[(long)t * ldo + r] = s[r][t] + (b ? b[r] : 0.0f);
}

#define Q8_TILE(R, T)                                                                                        \
    static void q8_tile_##R##x##T(float *out, long ldo, const int16_t *xq, const float *xd, const int8_t *wq, \
                                  const float *ws, const float *b, int k) {                                  \
        q8_tile(out, ldo, xq, xd, wq, ws, b, k, R, T);                                                       \
    }
Q8_TILE(4, 1)
Q8_TILE(1, 1)
Q8_TILE(1, 2)
Q8_TILE(1, 3)
Q8_TILE(1, 4)

/* out[t*ldo + r] = b[r] + q8 dot of quantized row t and weight row r, for r < rows, t < n. */
static void q8_rows(float *out, long ldo, const int16_t *xq, const float *xd, const int8_t *wq, const float *ws,
                    const float *b, int n, int k, int rows) {
    const int nb = k / GPT2_Q8_BLOCK;
    int r = 0;
    if (n == 1) {
        for (; r + 4 <= rows; r += 4)
            q8_tile_4x1(out + r, ldo, xq, xd, wq + (long)r * k, ws + (long)r * nb, b ? b + r : NULL, k);
    }
    for (; r < rows; r++) {
        const int8_t *wr = wq + (long)r * k;
        const float *sr = ws + (long)r * nb, *br = b ? b + r : NULL;
        int t = 0;
        for (; t + 4 <= n; t += 4)
            q8_tile_1x4(out + t * ldo + r, ldo, xq + (long)t * k, xd + (long)t * nb * XD, wr, sr, br, k);
        float *o = out + t * ldo + r;
        const int16_t *xt = xq + (long)t * k;
        const float *dt = xd + (long)t * nb * XD;
        switch (n - t) {
        case 3: q8_tile_1x3(o, ldo, xt, dt, wr, sr, br, k); break;
        case 2: q8_tile_1x2(o, ldo, xt, dt, wr, sr, br, k); break;
        case 1: q8_tile_1x1(o, ldo, xt, dt, wr, sr, br, k); break;
        default: break;
        }
    }
}

size_t k_q8_act_bytes(int n, int k) {
    if (n < 1 || k < GPT2_Q8_BLOCK) return 0;
    return (size_t)n * (size_t)k * sizeof(int16_t) + (size_t)n * (size_t)(k / GPT2_Q8_BLOCK) * XD * sizeof(float);
}

void k_q8_quantize_act(void *act, const float *x, int n, int k) {
    float *d = (float *)act;
    int16_t *q = (int16_t *)(d + (size_t)n * (size_t)(k / GPT2_Q8_BLOCK) * XD);
    q8_quantize(q, d, x, n, k);
}

/* The q8_0 product of rows [o0, o1) with activations already quantized by
 * k_q8_quantize_act (layout: n*(k/32) scales, XD copies each, then n*k int16 values). */
static void q8_matmul_act(float *out, const void *act, const gpt2_matrix *w, const float *b, int n, int o0,
                          int o1) {
    const int k = w->cols, nb = k / GPT2_Q8_BLOCK;
    const float *d = (const float *)act;
    const int16_t *q = (const int16_t *)(d + (size_t)n * (size_t)nb * XD);
    q8_rows(out + o0, w->rows, q, d, (const int8_t *)w->data + (long)o0 * k, w->scales + (long)o0 * nb,
            b ? b + o0 : NULL, n, k, o1 - o0);
}

/* ------------------------------------------------------------------------------------------
 * Entry points.
 */

void k_matrix_row(float *out, const gpt2_matrix *w, int r) {
    const int k = w->cols;
    switch (w->type) {
    case GPT2_DTYPE_F32:
        memcpy(out, (const float *)w->data + (long)r * k, (size_t)k * sizeof(float));
        break;
    case GPT2_DTYPE_F16:
        f16_row_to_f32(out, (const uint16_t *)w->data + (long)r * k, k);
        break;
    case GPT2_DTYPE_Q8_0: {
        const int8_t *q = (const int8_t *)w->data + (long)r * k;
        const float *sc = w->scales + (long)r * (k / GPT2_Q8_BLOCK);
        for (int i = 0; i < k; i++) out[i] = (float)q[i] * sc[i / GPT2_Q8_BLOCK];
        break;
    }
    }
}

enum { Q8_STACK_BYTES = 32768 }; /* activations quantized on the stack up to this size */

void k_matmul_rows_act(float *out, const float *x, const void *act, const gpt2_matrix *w, const float *b, int n,
                       int o0, int o1) {
    if (o0 >= o1 || n < 1) return;
    const int k = w->cols, m = w->rows;
    switch (w->type) {
    case GPT2_DTYPE_F32:
        f32_rows(out + o0, m, x, (const float *)w->data + (long)o0 * k, b ? b + o0 : NULL, n, k, o1 - o0);
        return;
    case GPT2_DTYPE_F16:
        f16_rows(out + o0, m, x, (const uint16_t *)w->data + (long)o0 * k, b ? b + o0 : NULL, n, k, o1 - o0);
        return;
    case GPT2_DTYPE_Q8_0:
        break;
    }
    if (act) {
        q8_matmul_act(out, act, w, b, n, o0, o1);
        return;
    }
    /* Quantize the activations here: a chunk of tokens at a time into a stack buffer. The
     * chunk's weights stay in cache when the chunk is all of n (decode, short prompts);
     * callers with long inputs quantize once with k_q8_quantize_act instead. */
    _Alignas(16) unsigned char buf[Q8_STACK_BYTES];
    size_t per_token = k_q8_act_bytes(1, k);
    int chunk = (int)(sizeof buf / (per_token ? per_token : 1));
    if (chunk < 1) {
        /* a single row does not fit (k > 13107): exact same arithmetic, one block at a time */
        for (int t = 0; t < n; t++) {
            for (int o = o0; o < o1; o++) {
                const int nb = k / GPT2_Q8_BLOCK;
                float l[4] = {0, 0, 0, 0};
                for (int blk = 0; blk < nb; blk++) {
                    int16_t q[GPT2_Q8_BLOCK];
                    float d[XD];
                    q8_quantize(q, d, x + (long)t * k + blk * GPT2_Q8_BLOCK, 1, GPT2_Q8_BLOCK);
                    const int8_t *wr = (const int8_t *)w->data + (long)o * k + blk * GPT2_Q8_BLOCK;
                    float sc = w->scales[(long)o * nb + blk] * d[0];
                    for (int j = 0; j < 4; j++) {
                        int32_t p = 0;
                        for (int g = 0; g < 4; g++) {
                            int i = 8 * g + 2 * j;
                            p += (int32_t)wr[i] * q[i] + (int32_t)wr[i + 1] * q[i + 1];
                        }
                        l[j] += (float)p * sc;
                    }
                }
                out[(long)t * m + o] = (l[0] + l[1]) + (l[2] + l[3]) + (b ? b[o] : 0.0f);
            }
        }
        return;
    }
    for (int t = 0; t < n; t += chunk) {
        int nt = n - t < chunk ? n - t : chunk;
        k_q8_quantize_act(buf, x + (long)t * k, nt, k);
        q8_matmul_act(out + (long)t * m, buf, w, b, nt, o0, o1);
    }
}

void k_matmul_rows(float *out, const float *x, const gpt2_matrix *w, const float *b, int n, int o0, int o1) {
    k_matmul_rows_act(out, x, NULL, w, b, n, o0, o1);
}

/* Reads bytes [p, p + n) once and returns the XOR of its 32-bit words (zero-padded tail):
 * the memory-bandwidth roofline's probe. The bulk is read as 4 interleaved streams (the four
 * quarters of the range, a 64-byte line of each per step, 16-byte loads), as decode's
 * products read 4 weight rows at a time; XOR does not depend on the order of the reads. */
uint32_t k_read_bytes(const void *p, size_t n) {
    const unsigned char *c = p;
    size_t done = 0;
    uint32_t r = 0;
#if K_SIMD
    const size_t q = (n / 4) & ~(size_t)63; /* bytes per stream, whole lines */
    if (q) {
        const unsigned char *s0 = c, *s1 = c + q, *s2 = c + 2 * q, *s3 = c + 3 * q;
        vi a0 = vi_load(c);
        a0 = vi_xor(a0, a0);
        vi a1 = a0, a2 = a0, a3 = a0;
#define K_LINE(x) vi_xor(vi_xor(vi_load(x), vi_load((x) + 16)), vi_xor(vi_load((x) + 32), vi_load((x) + 48)))
        for (size_t i = 0; i < q; i += 64) {
            a0 = vi_xor(a0, K_LINE(s0 + i));
            a1 = vi_xor(a1, K_LINE(s1 + i));
            a2 = vi_xor(a2, K_LINE(s2 + i));
            a3 = vi_xor(a3, K_LINE(s3 + i));
        }
#undef K_LINE
        uint32_t t[4];
        vi_store(t, vi_xor(vi_xor(a0, a1), vi_xor(a2, a3)));
        r = t[0] ^ t[1] ^ t[2] ^ t[3];
        done = 4 * q;
    }
#endif
    for (; done + 4 <= n; done += 4) {
        uint32_t w;
        memcpy(&w, c + done, 4);
        r ^= w;
    }
    if (done < n) {
        uint32_t w = 0;
        memcpy(&w, c + done, n - done);
        r ^= w;
    }
    return r;
}

/* ------------------------------------------------------------------------------------------
 * Row-wise kernels.
 */

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
