/* kernels.c - see kernels.h.
 *
 * One portable source: every kernel has one body, written against a small vector layer (vf =
 * 4 floats, vi = 4 int32 / 8 int16, vd = 2 doubles) that is defined once per target, below:
 *   - WASM SIMD128 intrinsics (wasm_simd128.h) under __wasm_simd128__;
 *   - x86 SSE4.1 intrinsics natively (plus F16C for halves when the build has it:
 *     -march=native; 128-bit on purpose: wider vectors would change the order of the float
 *     sums, and AVX2/AVX-512 builds use this same layer);
 *   - a scalar layer (GPT2_SCALAR_KERNELS forces it, or a target without either) of unions
 *     operated on lane by lane, comparisons giving all-ones lanes as the SIMD ones do.
 * Each operation means the same IEEE operation on every target (no fused multiply-add:
 * -ffp-contract=off, no FMA intrinsics), so the three builds are bit-identical by construction,
 * and the result of a product does not depend on how the work is tiled or split between
 * threads: prefill and one-token-at-a-time decode agree exactly.
 *
 * Why one file over 600 lines: the three definitions of the layer (about 450 lines, most of it
 * the exact f16 and q8_0 conversions each target does differently) and the kernels written on
 * it belong together; split, a reader would check a kernel's bit-identity across three files.
 *
 * The arithmetic (the reduction order every build follows):
 *   f32/f16 (and k_dot, attention scores): dot(x, w) over k, c8 = k - k%8: lane j (0..7)
 *            accumulates x[i]*W(i) for i = j (mod 8), i < c8, in increasing i (one rounding for
 *            the product, one for the sum); then s = ((l0+l4) + (l1+l5)) + ((l2+l6) + (l3+l7));
 *            then s += x[i]*W(i) for the last k%8 elements in order; out = s + b (b = 0 when
 *            there is no bias). Eight independent sums per row: decode keeps 4 rows x 8 lanes
 *            of adds in flight.
 *   q8_0:    activations are quantized per 32-block: d = amax/127, q_i = round_even(x_i *
 *            (127/amax)) in [-127, 127] (all zero when amax = 0). Per block b the exact
 *            integer S_b = sum_i q_i*wq_i (any order: integers), then one float sum over the
 *            blocks in order: s += (float)S_b * (wd_b * d_b); out = s + b.
 * Weights are packed (matrix.h): tiles of 4 rows, read as one sequential stream. f32 register
 * tiles are 4 rows x 1 token (8 accumulators); prefill reuses each weight tile from L1/L2 for
 * every token. q8_0 register tiles are 8 rows x 4 tokens (int accumulators; each weight load
 * serves the 4 tokens, each activation load the 8 rows).
 */
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fp16.h"
#include "quantize.h" /* gpt2_f32_to_f16, gpt2_q8_quantize_block */
#include "sampler.h" /* gpt2_tanh */

#if defined(GPT2_SCALAR_KERNELS)
/* the scalar layer, whatever the target */
#elif defined(__wasm_simd128__)
#define K_WASM 1
#include <wasm_simd128.h>
#elif defined(__SSE4_1__)
#define K_SSE 1
#include <immintrin.h>
#endif

#define K_INLINE static inline __attribute__((always_inline))

/* Source element j of a run at p as a float (exact). */
static inline float src_elem(const unsigned char *p, int type, size_t j) {
    if (type == K_SRC_F32) {
        uint32_t u;
        memcpy(&u, p + 4 * j, 4);
        return gpt2_f32_from_bits(u);
    }
    uint16_t h;
    memcpy(&h, p + 2 * j, 2);
    return type == K_SRC_F16 ? gpt2_f16_to_f32(h) : gpt2_bf16_to_f32(h);
}

static inline size_t src_size(int type) { return type == K_SRC_F32 ? 4 : 2; }

/* A half as gpt2_f32_to_f16 returns it for its exact float value: NaNs made quiet. */
static inline uint16_t half_canonical(uint16_t h) { return (h & 0x7fffu) > 0x7c00u ? (uint16_t)(h | 0x200u) : h; }

/* ------------------------------------------------------------------------------------------
 * The vector layer, once per target: vf = 4 floats, vi = 4 int32 / 8 int16, vd = 2 doubles.
 * Every function means the same lane-wise operation on every target (the scalar layer spells
 * it out); the kernels below use nothing else.
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
/* one 32-bit word (two int16) in every lane */
K_INLINE vi vi_load32_splat(const void *p) { return wasm_v128_load32_splat(p); }
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
 * lane h << 16 (punpcklwd / punpckhwd). */
K_INLINE void vf_load_f16x8(const uint16_t *p, vf *lo, vf *hi) {
    v128_t h = wasm_v128_load(p);
    v128_t e = wasm_v128_and(h, wasm_i16x8_splat(0x7c00));
    if (wasm_v128_any_true(wasm_i16x8_eq(e, wasm_i16x8_splat(0x7c00)))) { /* an inf or NaN among them */
        v128_t z = wasm_i32x4_splat(0);
        *lo = vf_from_f16_hi(wasm_i16x8_shuffle(z, h, 0, 8, 1, 9, 2, 10, 3, 11));
        *hi = vf_from_f16_hi(wasm_i16x8_shuffle(z, h, 4, 12, 5, 13, 6, 14, 7, 15));
        return;
    }
    /* All finite: each half sign-extended to 32 bits and shifted left by 13 has exponent and
     * mantissa at a float's places and the sign in bits 28..31; clearing bits 28..30 leaves
     * the sign in bit 31, and the multiplication by 2^112 re-biases as above (exact; the sign,
     * zeros included, is kept). */
    v128_t m = wasm_i32x4_splat((int32_t)0x8fffffffu), s = wasm_f32x4_splat(0x1p112f);
    *lo = wasm_f32x4_mul(wasm_v128_and(wasm_i32x4_shl(wasm_i32x4_extend_low_i16x8(h), 13), m), s);
    *hi = wasm_f32x4_mul(wasm_v128_and(wasm_i32x4_shl(wasm_i32x4_extend_high_i16x8(h), 13), m), s);
}
/* 4 finite halves (8 bytes; q8_0 scales, which the loader checks) -> 4 floats, exact: each
 * half sign-extended by the load, then vf_load_f16x8's finite path */
K_INLINE vf vf_load_f16x4(const void *p) {
    v128_t h = wasm_i32x4_load16x4(p);
    return wasm_f32x4_mul(wasm_v128_and(wasm_i32x4_shl(h, 13),
                                        wasm_i32x4_splat((int32_t)0x8fffffffu)),
                          wasm_f32x4_splat(0x1p112f));
}
/* 2 doubles (gelu's tanh, see k_gelu) */
typedef v128_t vd;
K_INLINE vd vd_splat(double a) { return wasm_f64x2_splat(a); }
K_INLINE vd vd_add(vd a, vd b) { return wasm_f64x2_add(a, b); }
K_INLINE vd vd_sub(vd a, vd b) { return wasm_f64x2_sub(a, b); }
K_INLINE vd vd_mul(vd a, vd b) { return wasm_f64x2_mul(a, b); }
K_INLINE vd vd_div(vd a, vd b) { return wasm_f64x2_div(a, b); }
K_INLINE vd vd_gt(vd a, vd b) { return wasm_f64x2_gt(a, b); }
K_INLINE vd vd_ne(vd a, vd b) { return wasm_f64x2_ne(a, b); }
K_INLINE vd vd_select(vd mask, vd a, vd b) { return wasm_v128_bitselect(a, b, mask); } /* mask ? a : b */
K_INLINE vd vd_from_f32_lo(vf a) { return wasm_f64x2_promote_low_f32x4(a); }
K_INLINE vd vd_from_f32_hi(vf a) { return wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(a, a, 2, 3, 2, 3)); }
K_INLINE vf vf_from_vd(vd lo, vd hi) {
    return wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5);
}
/* the two lanes of an integer-valued vd (|v| < 2^31) as int32 in lanes 0, 1 */
K_INLINE vi vd_to_i32(vd a) { return wasm_i32x4_trunc_sat_f64x2_zero(a); }
K_INLINE int vi_lane(vi a, int j) { return j ? wasm_i32x4_extract_lane(a, 1) : wasm_i32x4_extract_lane(a, 0); }
K_INLINE vi vi_splat32(int32_t a) { return wasm_i32x4_splat(a); }
K_INLINE vi vi_and(vi a, vi b) { return wasm_v128_and(a, b); }
K_INLINE vi vi_shr32(vi a, int s) { return wasm_i32x4_shr(a, s); }
K_INLINE vi vi_sub32(vi a, vi b) { return wasm_i32x4_sub(a, b); }
/* 2^e for int32 lanes 0, 1 (-1022 <= e <= 1023), from its IEEE bits */
K_INLINE vd vd_pow2(vi e) {
    return wasm_i64x2_shl(wasm_i64x2_extend_low_i32x4(wasm_i32x4_add(e, wasm_i32x4_splat(1023))), 52);
}
K_INLINE vd vd_make(double a, double b) { return wasm_f64x2_make(a, b); }
/* 8 finite halves -> 8 floats equal to their values times 2^-112 (exact, subnormal halves
 * included). The float of a half h is (h << 16) shifted right arithmetically by 3 (exponent
 * and mantissa at a float's places, the sign in bits 28..31) with bits 28..30 cleared; its
 * top 16 bits are (h >> 3 arithmetic) & 0x8fff and its low 16 bits h << 13, computed for 8
 * halves at once in 16-bit lanes and interleaved: 5 operations per 8 halves. */
K_INLINE void vf_load_f16x8_s(const uint16_t *p, vf *lo, vf *hi) {
    v128_t h = wasm_v128_load(p);
    v128_t top = wasm_v128_and(wasm_i16x8_shr(h, 3), wasm_i16x8_splat((int16_t)0x8fff)), bot = wasm_i16x8_shl(h, 13);
    *lo = wasm_i16x8_shuffle(bot, top, 0, 8, 1, 9, 2, 10, 3, 11);
    *hi = wasm_i16x8_shuffle(bot, top, 4, 12, 5, 13, 6, 14, 7, 15);
}
/* whether any of 8 halves is an infinity or a NaN */
K_INLINE int f16x8_special(const uint16_t *p) {
    v128_t e = wasm_v128_and(wasm_v128_load(p), wasm_i16x8_splat(0x7c00));
    return wasm_v128_any_true(wasm_i16x8_eq(e, wasm_i16x8_splat(0x7c00)));
}
/* ---- for the conversion while loading (k_pack_band, k_pack_rows) ---- */
/* 4 source elements (K_SRC_*) -> 4 floats, exact */
K_INLINE vf src4(const unsigned char *p, int type) {
    if (type == K_SRC_F32) return wasm_v128_load(p);
    v128_t h = wasm_v128_load64_zero(p);
    if (type == K_SRC_BF16) return wasm_i32x4_shl(wasm_u32x4_extend_low_u16x8(h), 16);
    return vf_from_f16_hi(wasm_i16x8_shuffle(wasm_i32x4_splat(0), h, 0, 8, 1, 9, 2, 10, 3, 11));
}
K_INLINE vf vf_max_num(vf m, vf a) { return wasm_f32x4_pmax(m, a); } /* a > m ? a : m */
K_INLINE vf vf_div(vf a, vf b) { return wasm_f32x4_div(a, b); }
K_INLINE vf vf_sub(vf a, vf b) { return wasm_f32x4_sub(a, b); }
/* no NaN here: pmin/pmax are single instructions (min/max's NaN rules take several) */
K_INLINE vf vf_clamp127(vf a) { return wasm_f32x4_pmin(wasm_f32x4_pmax(a, vf_splat(-127.0f)), vf_splat(127.0f)); }
K_INLINE vf vf_trunc(vf a) { return wasm_f32x4_trunc(a); }
K_INLINE vf vf_and(vf a, vf b) { return wasm_v128_and(a, b); }
K_INLINE vf vf_or(vf a, vf b) { return wasm_v128_or(a, b); }
K_INLINE vf vf_isnum(vf a) { return wasm_f32x4_eq(a, a); }
K_INLINE vf vf_nonzero(vf a) { return wasm_f32x4_ne(a, vf_zero()); }
K_INLINE vf vf_ge(vf a, vf b) { return wasm_f32x4_ge(a, b); }
/* a whole float in [-127, 127] -> int32: adding 1.5 * 2^23 puts it in the low mantissa bits
 * (exact), one integer subtraction takes it out (a saturating conversion is several
 * instructions on x86) */
K_INLINE vi vi_from_f32(vf a) {
    return wasm_i32x4_sub(wasm_f32x4_add(a, vf_splat(12582912.0f)), wasm_i32x4_splat(0x4b400000));
}
/* 4 x 4 int32 in [-127, 127] -> bytes a0 b0 a1 b1 a2 b2 a3 b3 c0 d0 c1 d1 c2 d2 c3 d3 */
K_INLINE vi vi_pairs(vi a, vi b, vi c, vi d) {
    vi x = wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(a, b), wasm_i16x8_narrow_i32x4(c, d));
    return wasm_i8x16_shuffle(x, x, 0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
}
K_INLINE void vf_transpose4(vf *a, vf *b, vf *c, vf *d) {
    vf t0 = wasm_i32x4_shuffle(*a, *b, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(*a, *b, 2, 6, 3, 7);
    vf t2 = wasm_i32x4_shuffle(*c, *d, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(*c, *d, 2, 6, 3, 7);
    *a = wasm_i64x2_shuffle(t0, t2, 0, 2), *b = wasm_i64x2_shuffle(t0, t2, 1, 3);
    *c = wasm_i64x2_shuffle(t1, t3, 0, 2), *d = wasm_i64x2_shuffle(t1, t3, 1, 3);
}
/* 4 rows of 4 halves (8 bytes at p + j*ld bytes) -> 16 halves column-major (r0..r3 of
 * column 0, then column 1, ...), NaNs made quiet, stored at dst */
K_INLINE void h16_transpose4(uint16_t *dst, const unsigned char *p, size_t ld) {
    v128_t a = wasm_v128_load64_zero(p), b = wasm_v128_load64_zero(p + ld);
    v128_t c = wasm_v128_load64_zero(p + 2 * ld), d = wasm_v128_load64_zero(p + 3 * ld);
    v128_t ab = wasm_i16x8_shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11), cd = wasm_i16x8_shuffle(c, d, 0, 8, 1, 9, 2, 10, 3, 11);
    v128_t lo = wasm_i32x4_shuffle(ab, cd, 0, 4, 1, 5), hi = wasm_i32x4_shuffle(ab, cd, 2, 6, 3, 7);
    v128_t e = wasm_i16x8_splat(0x7fff), inf = wasm_i16x8_splat(0x7c00), qb = wasm_i16x8_splat(0x200);
    lo = wasm_v128_or(lo, wasm_v128_and(wasm_i16x8_gt(wasm_v128_and(lo, e), inf), qb));
    hi = wasm_v128_or(hi, wasm_v128_and(wasm_i16x8_gt(wasm_v128_and(hi, e), inf), qb));
    wasm_v128_store(dst, lo);
    wasm_v128_store(dst + 8, hi);
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
K_INLINE vi vi_load32_splat(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_set1_epi32(v);
}
/* cvtps rounds to nearest even under the default MXCSR */
K_INLINE vi vi_round_pack(vf a, vf b) { return _mm_packs_epi32(_mm_cvtps_epi32(a), _mm_cvtps_epi32(b)); }
/* 8 halves -> 8 floats, exact (F16C, else gpt2_f16_to_f32 one by one) */
K_INLINE void vf_load_f16x8(const uint16_t *p, vf *lo, vf *hi) {
#ifdef __F16C__
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    *lo = _mm_cvtph_ps(h);
    *hi = _mm_cvtph_ps(_mm_unpackhi_epi64(h, h));
#else
    float t[8];
    for (int j = 0; j < 8; j++) t[j] = gpt2_f16_to_f32(p[j]);
    *lo = _mm_loadu_ps(t);
    *hi = _mm_loadu_ps(t + 4);
#endif
}
/* 4 halves (8 bytes) -> 4 floats, exact */
K_INLINE vf vf_load_f16x4(const void *p) {
#ifdef __F16C__
    return _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)p));
#else
    uint16_t h[4];
    memcpy(h, p, sizeof h);
    return _mm_setr_ps(gpt2_f16_to_f32(h[0]), gpt2_f16_to_f32(h[1]), gpt2_f16_to_f32(h[2]), gpt2_f16_to_f32(h[3]));
#endif
}
typedef __m128d vd;
K_INLINE vd vd_splat(double a) { return _mm_set1_pd(a); }
K_INLINE vd vd_add(vd a, vd b) { return _mm_add_pd(a, b); }
K_INLINE vd vd_sub(vd a, vd b) { return _mm_sub_pd(a, b); }
K_INLINE vd vd_mul(vd a, vd b) { return _mm_mul_pd(a, b); }
K_INLINE vd vd_div(vd a, vd b) { return _mm_div_pd(a, b); }
K_INLINE vd vd_gt(vd a, vd b) { return _mm_cmpgt_pd(a, b); }
K_INLINE vd vd_ne(vd a, vd b) { return _mm_cmpneq_pd(a, b); }
K_INLINE vd vd_select(vd mask, vd a, vd b) { return _mm_blendv_pd(b, a, mask); }
K_INLINE vd vd_from_f32_lo(vf a) { return _mm_cvtps_pd(a); }
K_INLINE vd vd_from_f32_hi(vf a) { return _mm_cvtps_pd(_mm_movehl_ps(a, a)); }
K_INLINE vf vf_from_vd(vd lo, vd hi) { return _mm_movelh_ps(_mm_cvtpd_ps(lo), _mm_cvtpd_ps(hi)); }
K_INLINE vi vd_to_i32(vd a) { return _mm_cvttpd_epi32(a); }
K_INLINE int vi_lane(vi a, int j) { return j ? _mm_extract_epi32(a, 1) : _mm_cvtsi128_si32(a); }
K_INLINE vi vi_splat32(int32_t a) { return _mm_set1_epi32(a); }
K_INLINE vi vi_and(vi a, vi b) { return _mm_and_si128(a, b); }
K_INLINE vi vi_shr32(vi a, int s) { return _mm_srai_epi32(a, s); }
K_INLINE vi vi_sub32(vi a, vi b) { return _mm_sub_epi32(a, b); }
K_INLINE vd vd_pow2(vi e) {
    return _mm_castsi128_pd(_mm_slli_epi64(_mm_cvtepi32_epi64(_mm_add_epi32(e, _mm_set1_epi32(1023))), 52));
}
K_INLINE vd vd_make(double a, double b) { return _mm_setr_pd(a, b); }
K_INLINE void vf_load_f16x8_s(const uint16_t *p, vf *lo, vf *hi) { /* as in the WASM layer */
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i top = _mm_and_si128(_mm_srai_epi16(h, 3), _mm_set1_epi16((short)0x8fff)), bot = _mm_slli_epi16(h, 13);
    *lo = _mm_castsi128_ps(_mm_unpacklo_epi16(bot, top));
    *hi = _mm_castsi128_ps(_mm_unpackhi_epi16(bot, top));
}
K_INLINE int f16x8_special(const uint16_t *p) {
    __m128i e = _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)p), _mm_set1_epi16(0x7c00));
    return _mm_movemask_epi8(_mm_cmpeq_epi16(e, _mm_set1_epi16(0x7c00))) != 0;
}
/* ---- for the conversion while loading (k_pack_band, k_pack_rows) ---- */
K_INLINE vf src4(const unsigned char *p, int type) {
    if (type == K_SRC_F32) return _mm_loadu_ps((const float *)(const void *)p);
    __m128i h = _mm_loadl_epi64((const __m128i *)(const void *)p);
    if (type == K_SRC_BF16) return _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16));
    return vf_load_f16x4(p); /* exact, F16C or not */
}
K_INLINE vf vf_max_num(vf m, vf a) { return _mm_max_ps(a, m); } /* a > m ? a : m */
K_INLINE vf vf_div(vf a, vf b) { return _mm_div_ps(a, b); }
K_INLINE vf vf_sub(vf a, vf b) { return _mm_sub_ps(a, b); }
K_INLINE vf vf_clamp127(vf a) { return _mm_min_ps(_mm_max_ps(a, _mm_set1_ps(-127.0f)), _mm_set1_ps(127.0f)); }
K_INLINE vf vf_trunc(vf a) { return _mm_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC); }
K_INLINE vf vf_and(vf a, vf b) { return _mm_and_ps(a, b); }
K_INLINE vf vf_or(vf a, vf b) { return _mm_or_ps(a, b); }
K_INLINE vf vf_isnum(vf a) { return _mm_cmpord_ps(a, a); }
K_INLINE vf vf_nonzero(vf a) { return _mm_cmpneq_ps(a, _mm_setzero_ps()); }
K_INLINE vf vf_ge(vf a, vf b) { return _mm_cmpge_ps(a, b); }
K_INLINE vi vi_from_f32(vf a) { return _mm_cvttps_epi32(a); }
K_INLINE vi vi_pairs(vi a, vi b, vi c, vi d) {
    vi x = _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
    return _mm_shuffle_epi8(x, _mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15));
}
K_INLINE void vf_transpose4(vf *a, vf *b, vf *c, vf *d) { _MM_TRANSPOSE4_PS(*a, *b, *c, *d); }
K_INLINE void h16_transpose4(uint16_t *dst, const unsigned char *p, size_t ld) {
    __m128i a = _mm_loadl_epi64((const __m128i *)(const void *)p), b = _mm_loadl_epi64((const __m128i *)(const void *)(p + ld));
    __m128i c = _mm_loadl_epi64((const __m128i *)(const void *)(p + 2 * ld));
    __m128i d = _mm_loadl_epi64((const __m128i *)(const void *)(p + 3 * ld));
    __m128i ab = _mm_unpacklo_epi16(a, b), cd = _mm_unpacklo_epi16(c, d);
    __m128i lo = _mm_unpacklo_epi32(ab, cd), hi = _mm_unpackhi_epi32(ab, cd);
    __m128i e = _mm_set1_epi16(0x7fff), inf = _mm_set1_epi16(0x7c00), qb = _mm_set1_epi16(0x200);
    lo = _mm_or_si128(lo, _mm_and_si128(_mm_cmpgt_epi16(_mm_and_si128(lo, e), inf), qb));
    hi = _mm_or_si128(hi, _mm_and_si128(_mm_cmpgt_epi16(_mm_and_si128(hi, e), inf), qb));
    _mm_storeu_si128((__m128i *)(void *)dst, lo);
    _mm_storeu_si128((__m128i *)(void *)(dst + 8), hi);
}
#else
/* The scalar fallback: the same 4-lane operations on plain arrays, lane by lane (comparisons
 * give all-ones lanes, as the SIMD ones do, so the bitwise operations mean the same). */
typedef union vf {
    float f[4];
    uint32_t u[4];
} vf;
typedef union vi {
    int32_t i32[4];
    uint32_t u32[4];
    int16_t i16[8];
} vi;
typedef union vd {
    double d[2];
    uint64_t u[2];
} vd;
K_INLINE vf vf_load(const float *p) {
    vf v;
    memcpy(v.f, p, sizeof v.f);
    return v;
}
K_INLINE void vf_store(float *p, vf v) { memcpy(p, v.f, sizeof v.f); }
K_INLINE vf vf_splat(float a) {
    vf v = {{a, a, a, a}};
    return v;
}
K_INLINE vf vf_zero(void) { return vf_splat(0.0f); }
K_INLINE vf vf_make(float a, float b, float c, float d) {
    vf v = {{a, b, c, d}};
    return v;
}
/* r.LANE[j] = EXPR for each lane j, with a, b the inputs' lanes */
#define K_LANEWISE(T, name, N, LANE, EXPR)                          \
    K_INLINE T name(T x, T y) {                                     \
        T r;                                                        \
        for (int j = 0; j < N; j++) {                               \
            r.LANE[j] = (EXPR);                                     \
        }                                                           \
        return r;                                                   \
    }
K_LANEWISE(vf, vf_add, 4, f, x.f[j] + y.f[j])
K_LANEWISE(vf, vf_sub, 4, f, x.f[j] - y.f[j])
K_LANEWISE(vf, vf_mul, 4, f, x.f[j] * y.f[j])
K_LANEWISE(vf, vf_div, 4, f, x.f[j] / y.f[j])
K_LANEWISE(vf, vf_max, 4, f, x.f[j] > y.f[j] ? x.f[j] : y.f[j])
K_LANEWISE(vf, vf_and, 4, u, x.u[j] & y.u[j])
K_LANEWISE(vf, vf_or, 4, u, x.u[j] | y.u[j])
K_LANEWISE(vf, vf_ge, 4, u, x.f[j] >= y.f[j] ? ~0u : 0u)
K_LANEWISE(vi, vi_add32, 4, u32, x.u32[j] + y.u32[j])
K_LANEWISE(vi, vi_sub32, 4, u32, x.u32[j] - y.u32[j])
K_LANEWISE(vi, vi_xor, 4, u32, x.u32[j] ^ y.u32[j])
K_LANEWISE(vi, vi_and, 4, u32, x.u32[j] & y.u32[j])
K_LANEWISE(vi, vi_dot16, 4, i32, (int32_t)x.i16[2 * j] * y.i16[2 * j] + (int32_t)x.i16[2 * j + 1] * y.i16[2 * j + 1])
K_LANEWISE(vd, vd_add, 2, d, x.d[j] + y.d[j])
K_LANEWISE(vd, vd_sub, 2, d, x.d[j] - y.d[j])
K_LANEWISE(vd, vd_mul, 2, d, x.d[j] * y.d[j])
K_LANEWISE(vd, vd_div, 2, d, x.d[j] / y.d[j])
K_LANEWISE(vd, vd_gt, 2, u, x.d[j] > y.d[j] ? ~(uint64_t)0 : 0)
K_LANEWISE(vd, vd_ne, 2, u, x.d[j] != y.d[j] ? ~(uint64_t)0 : 0)
#undef K_LANEWISE
K_INLINE vf vf_abs(vf a) { return vf_make(fabsf(a.f[0]), fabsf(a.f[1]), fabsf(a.f[2]), fabsf(a.f[3])); }
K_INLINE float vf_hsum(vf v) { return (v.f[0] + v.f[1]) + (v.f[2] + v.f[3]); }
K_INLINE float vf_hmax(vf v) {
    float a = v.f[0] > v.f[2] ? v.f[0] : v.f[2], b = v.f[1] > v.f[3] ? v.f[1] : v.f[3];
    return a > b ? a : b;
}
K_INLINE vi vi_load_i8x8(const int8_t *p) {
    vi v;
    for (int j = 0; j < 8; j++) v.i16[j] = p[j];
    return v;
}
K_INLINE vi vi_load(const void *p) {
    vi v;
    memcpy(&v, p, sizeof v);
    return v;
}
K_INLINE void vi_store(void *p, vi v) { memcpy(p, &v, sizeof v); }
K_INLINE vf vf_from_i32(vi a) { return vf_make((float)a.i32[0], (float)a.i32[1], (float)a.i32[2], (float)a.i32[3]); }
K_INLINE vi vi_splat32(int32_t a) {
    vi v = {{a, a, a, a}};
    return v;
}
K_INLINE vi vi_load32_splat(const void *p) {
    int32_t w;
    memcpy(&w, p, 4);
    return vi_splat32(w);
}
K_INLINE vi vi_round_pack(vf a, vf b) {
    vi v;
    for (int j = 0; j < 4; j++) v.i16[j] = (int16_t)rintf(a.f[j]), v.i16[4 + j] = (int16_t)rintf(b.f[j]);
    return v;
}
K_INLINE void vf_load_f16x8(const uint16_t *p, vf *lo, vf *hi) {
    for (int j = 0; j < 4; j++) lo->f[j] = gpt2_f16_to_f32(p[j]), hi->f[j] = gpt2_f16_to_f32(p[4 + j]);
}
K_INLINE vf vf_load_f16x4(const void *p) {
    uint16_t h[4];
    memcpy(h, p, sizeof h);
    return vf_make(gpt2_f16_to_f32(h[0]), gpt2_f16_to_f32(h[1]), gpt2_f16_to_f32(h[2]), gpt2_f16_to_f32(h[3]));
}
K_INLINE void vf_load_f16x8_s(const uint16_t *p, vf *lo, vf *hi) { /* times 2^-112: exact */
    for (int j = 0; j < 4; j++)
        lo->f[j] = gpt2_f16_to_f32(p[j]) * 0x1p-112f, hi->f[j] = gpt2_f16_to_f32(p[4 + j]) * 0x1p-112f;
}
K_INLINE int f16x8_special(const uint16_t *p) {
    int any = 0;
    for (int j = 0; j < 8; j++) any |= (p[j] & 0x7c00) == 0x7c00;
    return any;
}
K_INLINE vd vd_make(double a, double b) {
    vd v = {{a, b}};
    return v;
}
K_INLINE vd vd_splat(double a) { return vd_make(a, a); }
K_INLINE vd vd_select(vd mask, vd a, vd b) { /* mask ? a : b, bit by bit */
    for (int j = 0; j < 2; j++) a.u[j] = (a.u[j] & mask.u[j]) | (b.u[j] & ~mask.u[j]);
    return a;
}
K_INLINE vd vd_from_f32_lo(vf a) { return vd_make(a.f[0], a.f[1]); }
K_INLINE vd vd_from_f32_hi(vf a) { return vd_make(a.f[2], a.f[3]); }
K_INLINE vf vf_from_vd(vd lo, vd hi) { return vf_make((float)lo.d[0], (float)lo.d[1], (float)hi.d[0], (float)hi.d[1]); }
K_INLINE vi vd_to_i32(vd a) {
    vi v = {{(int32_t)a.d[0], (int32_t)a.d[1], 0, 0}};
    return v;
}
K_INLINE int vi_lane(vi a, int j) { return a.i32[j]; }
K_INLINE vi vi_shr32(vi a, int s) {
    for (int j = 0; j < 4; j++) a.i32[j] = a.i32[j] < 0 ? ~(~a.i32[j] >> s) : a.i32[j] >> s; /* arithmetic */
    return a;
}
K_INLINE vd vd_pow2(vi e) {
    vd v;
    for (int j = 0; j < 2; j++) v.u[j] = (uint64_t)(e.i32[j] + 1023) << 52;
    return v;
}
/* ---- for the conversion while loading (k_pack_band, k_pack_rows) ---- */
K_INLINE vf src4(const unsigned char *p, int type) {
    vf v;
    for (int j = 0; j < 4; j++) v.f[j] = src_elem(p, type, (size_t)j);
    return v;
}
K_INLINE vf vf_max_num(vf m, vf a) { return vf_max(a, m); } /* a > m ? a : m */
K_INLINE vf vf_clamp127(vf a) {
    for (int j = 0; j < 4; j++) a.f[j] = a.f[j] < -127.0f ? -127.0f : a.f[j] > 127.0f ? 127.0f : a.f[j];
    return a;
}
K_INLINE vf vf_trunc(vf a) { return vf_make(truncf(a.f[0]), truncf(a.f[1]), truncf(a.f[2]), truncf(a.f[3])); }
K_INLINE vf vf_isnum(vf a) {
    for (int j = 0; j < 4; j++) a.u[j] = a.f[j] == a.f[j] ? ~0u : 0u;
    return a;
}
K_INLINE vf vf_nonzero(vf a) {
    for (int j = 0; j < 4; j++) a.u[j] = a.f[j] != 0.0f ? ~0u : 0u;
    return a;
}
K_INLINE vi vi_from_f32(vf a) {
    vi v = {{(int32_t)a.f[0], (int32_t)a.f[1], (int32_t)a.f[2], (int32_t)a.f[3]}};
    return v;
}
K_INLINE vi vi_pairs(vi a, vi b, vi c, vi d) {
    vi v;
    int8_t *o = (int8_t *)&v;
    for (int j = 0; j < 4; j++)
        o[2 * j] = (int8_t)a.i32[j], o[2 * j + 1] = (int8_t)b.i32[j], o[8 + 2 * j] = (int8_t)c.i32[j],
        o[9 + 2 * j] = (int8_t)d.i32[j];
    return v;
}
K_INLINE void vf_transpose4(vf *a, vf *b, vf *c, vf *d) {
    vf *r[4] = {a, b, c, d}, t[4] = {*a, *b, *c, *d};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) r[i]->f[j] = t[j].f[i];
}
K_INLINE void h16_transpose4(uint16_t *dst, const unsigned char *p, size_t ld) {
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            uint16_t h;
            memcpy(&h, p + r * ld + 2 * (size_t)c, 2);
            dst[4 * c + r] = half_canonical(h);
        }
}
#endif


/* ------------------------------------------------------------------------------------------
 * Small vector kernels.
 */

/* The 8-lane sum of two accumulators (lanes 0..3 in a, 4..7 in b), in the order above. */
K_INLINE float lanes8(vf a, vf b) { return vf_hsum(vf_add(a, b)); }

/* dot(a, b) = sum_i a[i]*b[i], in the 8-lane order described at the top. */
float k_dot(const float *a, const float *b, int k) {
    vf a0 = vf_zero(), a1 = vf_zero();
    int i = 0;
    for (; i + 8 <= k; i += 8) {
        a0 = vf_add(a0, vf_mul(vf_load(a + i), vf_load(b + i)));
        a1 = vf_add(a1, vf_mul(vf_load(a + i + 4), vf_load(b + i + 4)));
    }
    float s = lanes8(a0, a1);
    for (; i < k; i++) s += a[i] * b[i];
    return s;
}

/* y[i] += x[i] */
void k_add(float *y, const float *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vf_store(y + i, vf_add(vf_load(y + i), vf_load(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

/* y[i] += a * x[i] */
void k_axpy(float *y, float a, const float *x, int n) {
    int i = 0;
    vf av = vf_splat(a);
    for (; i + 4 <= n; i += 4) vf_store(y + i, vf_add(vf_load(y + i), vf_mul(av, vf_load(x + i))));
    for (; i < n; i++) y[i] += a * x[i];
}

/* att[j] = dot(q, K_j) * scale for j < n, K_j = k + j*stride (each dot as k_dot). */
void k_attn_scores(float *att, const float *q, const float *k, long stride, int n, int d, float scale) {
    for (int j = 0; j < n; j++) att[j] = k_dot(q, k + (long)j * stride, d) * scale;
}

/* y[i] = sum_j att[j] * V_j[i] for i < d, V_j = v + j*stride, summed in order of j from 0
 * (the same as zeroing y and calling k_axpy for each j); 16 floats of y stay in registers
 * while all rows pass. */
void k_attn_values(float *y, const float *att, const float *v, long stride, int n, int d) {
    int i = 0;
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
    for (; i < d; i++) {
        float s = 0.0f;
        for (int j = 0; j < n; j++) s += att[j] * v[(long)j * stride + i];
        y[i] = s;
    }
}

/* ------------------------------------------------------------------------------------------
 * f32 products on packed tiles (matrix.h). f32_kern computes R rows (r0 .. r0+R-1 of a tile
 * of rt rows) for one input row: out[r] = b[r] + dot(x, row r0 + r). R is a compile-time
 * constant at every call (the loops unroll, the 2R accumulators live in registers).
 */
K_INLINE void f32_kern(float *out, const float *x, const float *tile, int rt, int r0, const float *b, int k, int R) {
    const int c8 = k & ~7;
    const long cs = 4L * rt; /* floats from one column chunk to the next */
    vf acc[4][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = vf_zero();
    const float *p = tile + 4L * r0;
    for (int i = 0; i < c8; i += 8, p += 2 * cs) {
        vf x0 = vf_load(x + i), x1 = vf_load(x + i + 4);
        for (int r = 0; r < R; r++) {
            acc[r][0] = vf_add(acc[r][0], vf_mul(x0, vf_load(p + 4 * r)));
            acc[r][1] = vf_add(acc[r][1], vf_mul(x1, vf_load(p + cs + 4 * r)));
        }
    }
    const int nt = k - c8;
    const float *tail = tile + (long)c8 * rt + (long)r0 * nt;
    for (int r = 0; r < R; r++) {
        float s = lanes8(acc[r][0], acc[r][1]);
        for (int j = 0; j < nt; j++) s += x[c8 + j] * tail[r * nt + j];
        out[r] = s + (b ? b[r] : 0.0f);
    }
}

/* A full tile (rt = 4, a compile-time constant: every load is at a fixed offset from one
 * pointer) against one input row. */
static void f32_kern_full(float *out, const float *x, const float *tile, const float *b, int k) {
    f32_kern(out, x, tile, 4, 0, b, k, 4);
}

/* Row r0 of a tile of rt rows against one input row. */
static void f32_kern_row(float *out, const float *x, const float *tile, int rt, int r0, const float *b, int k) {
    f32_kern(out, x, tile, rt, r0, b, k, 1);
}

/* Rows [ra, rb) of one packed tile of rt rows (tile data at `tile`), for n input rows;
 * out and b point at the tile's first row. A full tile is streamed once per input row:
 * decode reads it from memory as one sequential stream, prefill from L1/L2 once per token
 * (measured faster, natively and in WASM, than 2x3 or 4x2 register tiles of rows x tokens:
 * 8 accumulators, fixed-offset loads and no spills). */
static void f32_tile_rows(float *out, long ldo, const float *x, const float *tile, int rt, int ra, int rb,
                          const float *b, int n, int k) {
    if (ra == 0 && rb == 4) {
        for (int t = 0; t < n; t++) f32_kern_full(out + t * ldo, x + (long)t * k, tile, b, k);
        return;
    }
    for (int r = ra; r < rb; r++)
        for (int t = 0; t < n; t++)
            f32_kern_row(out + t * ldo + r, x + (long)t * k, tile, rt, r, b ? b + r : NULL, k);
}

/* Runs BODY for each tile holding rows of [o0, o1) of a packed matrix of `rows` rows, with
 * base (the tile's first row), rt (its rows) and [ra, rb) (its rows to compute) defined. */
#define FOR_TILES(o0, o1, rows, BODY)                                          \
    for (int base = (o0) & ~3; base < (o1); base += 4) {                      \
        const int rt = (rows) - base < 4 ? (rows) - base : 4;                 \
        const int ra = (o0) > base ? (o0) - base : 0;                         \
        const int rb = (o1) - base < rt ? (o1) - base : rt;                   \
        BODY                                                                  \
    }

static void f32_rows(float *out, long ldo, const float *x, const gpt2_matrix *w, const float *b, int n, int o0,
                     int o1) {
    const int k = w->cols;
    const float *data = w->data;
    FOR_TILES(o0, o1, w->rows, {
        f32_tile_rows(out + base, ldo, x, data + (size_t)base * k, rt, ra, rb, b ? b + base : NULL, n, k);
    })
}

/* ------------------------------------------------------------------------------------------
 * f16 products. Decode converts the halves in registers as they stream in (converting into
 * a buffer first would leave memory idle while the buffer is multiplied); prefill converts
 * one tile into a stack buffer (the same packed order, as floats: exact) and runs the f32
 * kernels on it, so the conversion is paid once per weight, not per token. Either way the
 * sums are the f32 kernel's on the converted weights.
 */
/* 128 KiB of stack (+32 KiB for the scaled input): a tile of up to 4 x 8192, so every GPT-2
 * shape takes the tiled paths (gpt2-large's and gpt2-xl's MLP projections are 5120 and 6400
 * wide; with 4 x 4096 they fell to dot_any, element by element: f16 decode of gpt2-xl ran at
 * a tenth of its speed). Native threads have 8 MB of stack, WebAssembly's 5 MB / 2 MB. */
enum { F16_BUF_FLOATS = 32768 };

/* dst[0..n) = halves as floats */
static void f16_to_f32(float *dst, const uint16_t *h, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        vf lo, hi;
        vf_load_f16x8(h + i, &lo, &hi);
        vf_store(dst + i, lo);
        vf_store(dst + i + 4, hi);
    }
    for (; i < n; i++) dst[i] = gpt2_f16_to_f32(h[i]);
}

/* Decode against one full tile of halves: rows 0,1 then 2,3 of each 4-column chunk are one
 * 8-half load each. The same sums as f32_kern_full on the converted tile. FIN (a constant at
 * each call): the matrix holds finite halves only and xw = x * 2^112 (exact: |x| < 2^16), so
 * the halves are read as w * 2^-112 with integer operations alone (vf_load_f16x8_s) and
 * xw * (w * 2^-112) is the same real number as x * w: every product rounds as the f32
 * kernel's does and the sums are bit for bit the same. Else xw = x and any halves. */
K_INLINE void f16_kern_4x1_any(float *out, const float *x, const float *xw, const uint16_t *tile, const float *b,
                               int k, int FIN) {
    const int c8 = k & ~7;
    vf acc[4][2];
    for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = vf_zero();
    const uint16_t *p = tile;
    for (int i = 0; i < c8; i += 8, p += 32) {
        for (int h = 0; h < 2; h++) {
            vf xv = vf_load(xw + i + 4 * h), w0, w1, w2, w3;
            if (FIN) {
                vf_load_f16x8_s(p + 16 * h, &w0, &w1);
                vf_load_f16x8_s(p + 16 * h + 8, &w2, &w3);
            } else {
                vf_load_f16x8(p + 16 * h, &w0, &w1);
                vf_load_f16x8(p + 16 * h + 8, &w2, &w3);
            }
            acc[0][h] = vf_add(acc[0][h], vf_mul(xv, w0));
            acc[1][h] = vf_add(acc[1][h], vf_mul(xv, w1));
            acc[2][h] = vf_add(acc[2][h], vf_mul(xv, w2));
            acc[3][h] = vf_add(acc[3][h], vf_mul(xv, w3));
        }
    }
    const int nt = k - c8;
    for (int r = 0; r < 4; r++) {
        float s = lanes8(acc[r][0], acc[r][1]);
        for (int j = 0; j < nt; j++) s += x[c8 + j] * gpt2_f16_to_f32(p[r * nt + j]);
        out[r] = s + (b ? b[r] : 0.0f);
    }
}
static void f16_kern_4x1(float *out, const float *x, const uint16_t *tile, const float *b, int k) {
    f16_kern_4x1_any(out, x, x, tile, b, k, 0);
}
static void f16_kern_4x1_finite(float *out, const float *x, const float *xs, const uint16_t *tile, const float *b,
                                int k) {
    f16_kern_4x1_any(out, x, xs, tile, b, k, 1);
}

/* xs = x * 2^112 for k values; 0 when some |x| >= 2^16 (or NaN) would not scale exactly. */
static int scale_up(float *xs, const float *x, int k) {
    int ok = 1;
    for (int i = 0; i < k; i++) {
        ok &= fabsf(x[i]) < 65536.0f;
        xs[i] = x[i] * 0x1p112f;
    }
    return ok;
}

int k_f16_all_finite(const void *h, size_t n) {
    const uint16_t *p = h;
    size_t i = 0;
    int special = 0;
    for (; i + 8 <= n; i += 8) special |= f16x8_special(p + i);
    for (; i < n; i++) special |= (p[i] & 0x7c00) == 0x7c00;
    return !special;
}

/* One output (row o, input row xt) of any f32/f16 matrix, element by element, in the 8-lane
 * order: for rows longer than the stack buffer (no published GPT-2 shape). */
static float dot_any(const float *xt, const gpt2_matrix *w, int o) {
    const int k = w->cols, c8 = k & ~7;
    vf a0 = vf_zero(), a1 = vf_zero();
    int i = 0;
    for (; i < c8; i += 8) {
        float wi[8];
        for (int j = 0; j < 8; j++) wi[j] = gpt2_matrix_get(w, o, i + j);
        a0 = vf_add(a0, vf_mul(vf_load(xt + i), vf_load(wi)));
        a1 = vf_add(a1, vf_mul(vf_load(xt + i + 4), vf_load(wi + 4)));
    }
    float s = lanes8(a0, a1);
    for (; i < k; i++) s += xt[i] * gpt2_matrix_get(w, o, i);
    return s;
}

static void f16_rows(float *out, long ldo, const float *x, const gpt2_matrix *w, const float *b, int n, int o0,
                     int o1) {
    const int k = w->cols;
    const uint16_t *data = w->data;
    if (4L * k > F16_BUF_FLOATS) {
        for (int o = o0; o < o1; o++)
            for (int t = 0; t < n; t++) out[(long)t * ldo + o] = dot_any(x + (long)t * k, w, o) + (b ? b[o] : 0.0f);
        return;
    }
    float buf[F16_BUF_FLOATS], xs[F16_BUF_FLOATS / 4];
    const int fast = n == 1 && w->finite && scale_up(xs, x, k);
    FOR_TILES(o0, o1, w->rows, {
        const uint16_t *tile = data + (size_t)base * k;
        if (fast && ra == 0 && rb == 4) {
            f16_kern_4x1_finite(out + base, x, xs, tile, b ? b + base : NULL, k);
        } else if (n == 1 && ra == 0 && rb == 4) {
            f16_kern_4x1(out + base, x, tile, b ? b + base : NULL, k);
        } else {
            f16_to_f32(buf, tile, (long)rt * k);
            f32_tile_rows(out + base, ldo, x, buf, rt, ra, rb, b ? b + base : NULL, n, k);
        }
    })
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
            vf m = vf_zero();
            for (int i = 0; i < GPT2_Q8_BLOCK; i += 4) m = vf_max(m, vf_abs(vf_load(xb + i)));
            float amax = vf_hmax(m);
            float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            vf_store(d + ((long)t * nb + blk) * XD, vf_splat(amax / 127.0f));
            vf iv = vf_splat(inv);
            for (int i = 0; i < GPT2_Q8_BLOCK; i += 8)
                vi_store(qb + i, vi_round_pack(vf_mul(vf_load(xb + i), iv), vf_mul(vf_load(xb + i + 4), iv)));
        }
}

/* NT consecutive full tiles (4 rows each; NT = 1 or 2) of q8_0 weights against T quantized
 * input rows (xq + t*k, scales xd + t*nb*XD): out[t*ldo + 4j + r] for tile j, r < 4. Per pair
 * of columns, one 8-byte load holds the pair for a tile's 4 rows; a splat of the pair of
 * activations (shared by the NT tiles) and one i32x4.dot_i16x8_s give the 4 rows' partial
 * integer sums (exact in any order; with one input row, two accumulators alternate for
 * latency). Then one float step per block: acc += (float)S * (wd * d). */
K_INLINE void q8_kern(float *out, long ldo, const int16_t *xq, const float *xd, const unsigned char *tile,
                      const float *b, int k, int NT, int T) {
    const int nb = k / GPT2_Q8_BLOCK, H = T == 1 ? 2 : 1;
    const long ts = (long)nb * GPT2_Q8_GROUP * 4; /* bytes from one tile to the next */
    vf acc[2][4];
    for (int j = 0; j < NT; j++)
        for (int t = 0; t < T; t++) acc[j][t] = vf_zero();
    const unsigned char *p = tile;
    for (int blk = 0; blk < nb; blk++, p += GPT2_Q8_GROUP * 4) {
        vi is[2][4][2];
        for (int pp = 0; pp < H; pp++) { /* the first pair(s) start the sums */
            vi w[2];
            for (int j = 0; j < NT; j++) w[j] = vi_load_i8x8((const int8_t *)(p + j * ts + 8 + 8 * pp));
            for (int t = 0; t < T; t++) {
                vi xs = vi_load32_splat(xq + (long)t * k + blk * GPT2_Q8_BLOCK + 2 * pp);
                for (int j = 0; j < NT; j++) is[j][t][pp] = vi_dot16(w[j], xs);
            }
        }
        for (int pp = H; pp < 16; pp++) {
            const int h = pp % H;
            vi w[2];
            for (int j = 0; j < NT; j++) w[j] = vi_load_i8x8((const int8_t *)(p + j * ts + 8 + 8 * pp));
            for (int t = 0; t < T; t++) {
                vi xs = vi_load32_splat(xq + (long)t * k + blk * GPT2_Q8_BLOCK + 2 * pp);
                for (int j = 0; j < NT; j++) is[j][t][h] = vi_add32(is[j][t][h], vi_dot16(w[j], xs));
            }
        }
        for (int t = 0; t < T; t++) {
            vf d = vf_load(xd + ((long)t * nb + blk) * XD);
            for (int j = 0; j < NT; j++) {
                vi S = H == 2 ? vi_add32(is[j][t][0], is[j][t][1]) : is[j][t][0];
                vf ws = vf_load_f16x4(p + j * ts);
                acc[j][t] = vf_add(acc[j][t], vf_mul(vf_from_i32(S), vf_mul(ws, d)));
            }
        }
    }
    for (int j = 0; j < NT; j++) {
        vf bv = b ? vf_load(b + 4 * j) : vf_zero();
        for (int t = 0; t < T; t++) vf_store(out + (long)t * ldo + 4 * j, vf_add(acc[j][t], bv));
    }
}

/* Decode: one full tile against one input row, as one sequential stream; the same sums as
 * q8_kern with NT = T = 1, its two alternating integer accumulators spelled out (q8_kern
 * with NT = T = 1 measured slower in WASM decode). */
static void q8_kern_decode(float *out, const int16_t *xq, const float *xd, const unsigned char *tile, const float *b,
                           int k) {
    const int nb = k / GPT2_Q8_BLOCK;
    vf acc = vf_zero();
    const unsigned char *p = tile;
    for (int blk = 0; blk < nb; blk++, p += GPT2_Q8_GROUP * 4) {
        const int8_t *wq = (const int8_t *)(p + 8);
        const int16_t *xb = xq + blk * GPT2_Q8_BLOCK;
        vi w0 = vi_load_i8x8(wq), w1 = vi_load_i8x8(wq + 8);
        vi s0 = vi_dot16(w0, vi_load32_splat(xb)), s1 = vi_dot16(w1, vi_load32_splat(xb + 2));
        for (int pp = 2; pp < 16; pp += 2) {
            w0 = vi_load_i8x8(wq + 8 * pp);
            w1 = vi_load_i8x8(wq + 8 * pp + 8);
            s0 = vi_add32(s0, vi_dot16(w0, vi_load32_splat(xb + 2 * pp)));
            s1 = vi_add32(s1, vi_dot16(w1, vi_load32_splat(xb + 2 * pp + 2)));
        }
        vf ws = vf_load_f16x4(p);
        acc = vf_add(acc, vf_mul(vf_from_i32(vi_add32(s0, s1)), vf_mul(ws, vf_load(xd + (long)blk * XD))));
    }
    vf bv = b ? vf_load(b) : vf_zero();
    vf_store(out, vf_add(acc, bv));
}

/* n (> 1) input rows against NT full tiles (at tile; outputs out, bias b at their first row),
 * 4 input rows at a time. */
K_INLINE void q8_tiles(float *out, long ldo, const int16_t *q, const float *d, const unsigned char *tile,
                       const float *b, int n, int k, int NT) {
    const int nb = k / GPT2_Q8_BLOCK;
    int t = 0;
    for (; t + 4 <= n; t += 4) q8_kern(out + t * ldo, ldo, q + (long)t * k, d + (long)t * nb * XD, tile, b, k, NT, 4);
    const int16_t *qt = q + (long)t * k;
    const float *dt = d + (long)t * nb * XD;
    float *ot = out + t * ldo;
    if (n - t == 3) q8_kern(ot, ldo, qt, dt, tile, b, k, NT, 3);
    if (n - t == 2) q8_kern(ot, ldo, qt, dt, tile, b, k, NT, 2);
    if (n - t == 1 && NT == 2) q8_kern(ot, ldo, qt, dt, tile, b, k, 2, 1);
    if (n - t == 1 && NT == 1) q8_kern_decode(ot, qt, dt, tile, b, k);
}
static void q8_two_tiles(float *out, long ldo, const int16_t *q, const float *d, const unsigned char *tile,
                         const float *b, int n, int k) {
    q8_tiles(out, ldo, q, d, tile, b, n, k, 2);
}
static void q8_one_tile(float *out, long ldo, const int16_t *q, const float *d, const unsigned char *tile,
                        const float *b, int n, int k) {
    q8_tiles(out, ldo, q, d, tile, b, n, k, 1);
}

/* One output of row o (any tile) for one quantized input row, value by value. */
static float q8_dot_any(const int16_t *xq, const float *xd, const gpt2_matrix *w, int o) {
    const int k = w->cols, nb = k / GPT2_Q8_BLOCK;
    const unsigned char *d = w->data;
    float s = 0.0f;
    for (int blk = 0; blk < nb; blk++) {
        int32_t S = 0;
        for (int i = blk * GPT2_Q8_BLOCK; i < (blk + 1) * GPT2_Q8_BLOCK; i++)
            S += (int32_t)(int8_t)d[gpt2_q8_value_offset((uint64_t)w->rows, (uint64_t)k, (uint64_t)o, (uint64_t)i)] * xq[i];
        uint16_t ws;
        memcpy(&ws, d + gpt2_q8_scale_offset((uint64_t)w->rows, (uint64_t)k, (uint64_t)o, (uint64_t)blk), sizeof ws);
        s += (float)S * (gpt2_f16_to_f32(ws) * xd[blk * XD]);
    }
    return s;
}

/* out[t*ldo + o] for o in [o0, o1), t < n, from quantized activations (q, d). Prefill takes
 * full tiles two at a time (8 rows share each activation load); decode one at a time (one
 * sequential stream, measured much faster than two); partial tiles row by row. */
static void q8_rows(float *out, long ldo, const int16_t *q, const float *d, const gpt2_matrix *w, const float *b,
                    int n, int o0, int o1) {
    const int k = w->cols, nb = k / GPT2_Q8_BLOCK;
    const unsigned char *data = w->data;
    const size_t tile_bytes = (size_t)nb * GPT2_Q8_GROUP * 4;
    const int first = (o0 + 3) / 4 * 4 < o1 ? (o0 + 3) / 4 * 4 : o1; /* the first full tile's row */
    const int full_end = first + (o1 - first) / 4 * 4;                /* the end of the last one */
    int o = o0;
    for (int stage = 0; stage < 2; stage++) {
        /* stage 0: the rows before the first full tile, then the full tiles; stage 1: the rest */
        for (int end = stage ? o1 : first; o < end; o++)
            for (int t = 0; t < n; t++)
                out[(long)t * ldo + o] = q8_dot_any(q + (long)t * k, d + (long)t * nb * XD, w, o) + (b ? b[o] : 0.0f);
        if (stage == 0 && n == 1)
            for (; o < full_end; o += 4)
                q8_kern_decode(out + o, q, d, data + (size_t)o / 4 * tile_bytes, b ? b + o : NULL, k);
        if (stage == 0 && n > 1) {
            for (; o + 8 <= full_end; o += 8)
                q8_two_tiles(out + o, ldo, q, d, data + (size_t)o / 4 * tile_bytes, b ? b + o : NULL, n, k);
            if (o < full_end)
                q8_one_tile(out + o, ldo, q, d, data + (size_t)o / 4 * tile_bytes, b ? b + o : NULL, n, k), o += 4;
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
    q8_rows(out, w->rows, q, d, w, b, n, o0, o1);
}

/* ------------------------------------------------------------------------------------------
 * Entry points.
 */

void k_matrix_row(float *out, const gpt2_matrix *w, int r) {
    const int k = w->cols, rt = (int)gpt2_pack_tile_rows((uint64_t)w->rows, (uint64_t)r), rr = r & 3;
    const int c8 = k & ~7, nt = k - c8;
    const size_t base = (size_t)(r - rr) * (size_t)k; /* the tile's first element (f32/f16) */
    switch (w->type) {
    case GPT2_DTYPE_F32: {
        const float *tile = (const float *)w->data + base;
        for (int i = 0; i < c8; i += 4) memcpy(out + i, tile + (long)i * rt + 4 * rr, 4 * sizeof(float));
        memcpy(out + c8, tile + (long)c8 * rt + (long)rr * nt, (size_t)nt * sizeof(float));
        break;
    }
    case GPT2_DTYPE_F16: {
        const uint16_t *tile = (const uint16_t *)w->data + base;
        for (int i = 0; i < c8; i += 8) { /* two chunks of this row, converted together */
            uint16_t h[8];
            memcpy(h, tile + (long)i * rt + 4 * rr, 4 * sizeof(uint16_t));
            memcpy(h + 4, tile + (long)(i + 4) * rt + 4 * rr, 4 * sizeof(uint16_t));
            f16_to_f32(out + i, h, 8);
        }
        f16_to_f32(out + c8, tile + (long)c8 * rt + (long)rr * nt, nt);
        break;
    }
    case GPT2_DTYPE_Q8_0:
        for (int i = 0; i < k; i++) out[i] = gpt2_matrix_get(w, r, i);
        break;
    }
}

void k_matmul_rows(float *out, const float *x, const void *act, const gpt2_matrix *w, const float *b, int n,
                   int o0, int o1) {
    if (o0 >= o1 || n < 1) return;
    const int m = w->rows;
    switch (w->type) {
    case GPT2_DTYPE_F32: f32_rows(out, m, x, w, b, n, o0, o1); return;
    case GPT2_DTYPE_F16: f16_rows(out, m, x, w, b, n, o0, o1); return;
    case GPT2_DTYPE_Q8_0: q8_matmul_act(out, act, w, b, n, o0, o1); return;
    }
}

/* Reads bytes [p, p + n) once and returns the XOR of its 32-bit words (zero-padded tail):
 * the memory-bandwidth roofline's probe. The bulk is read in order as one stream (as decode
 * reads its packed tiles), 128 bytes per step into 8 independent accumulators of 16-byte
 * loads (a plain read loop); XOR does not depend on the order of the reads. */
uint32_t k_read_bytes(const void *p, size_t n) {
    const unsigned char *c = p;
    size_t done = 0;
    uint32_t r = 0;
    const size_t q = n & ~(size_t)127;
    if (q) {
        vi a[8];
        for (int j = 0; j < 8; j++) a[j] = vi_load(c + 16 * j);
        for (size_t i = 128; i < q; i += 128)
            for (int j = 0; j < 8; j++) a[j] = vi_xor(a[j], vi_load(c + i + 16 * j));
        vi s = vi_xor(vi_xor(vi_xor(a[0], a[1]), vi_xor(a[2], a[3])), vi_xor(vi_xor(a[4], a[5]), vi_xor(a[6], a[7])));
        uint32_t t[4];
        vi_store(t, s);
        r = t[0] ^ t[1] ^ t[2] ^ t[3];
        done = q;
    }
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

/* gpt2_tanh on two lanes, step for step (sampler.h): the same bits. Lanes beyond +-20 are
 * computed on a clamped copy and replaced by +-1; NaN lanes by themselves. Inside +-20,
 * e^(2x) needs none of gpt2_exp's special cases (|2x| <= 40). */
K_INLINE vd vd_tanh(vd x) {
    const vd lim = vd_splat(20.0), nlim = vd_splat(-20.0);
    vd hi = vd_gt(x, lim), lo = vd_gt(nlim, x), nan = vd_ne(x, x);
    vd y = vd_select(hi, lim, vd_select(lo, nlim, vd_select(nan, vd_splat(0.0), x)));
    y = vd_add(y, y); /* 2x: exact */
    vd sh = vd_splat(GPT2_EXP_SHIFT);
    vd nd = vd_sub(vd_add(vd_mul(y, vd_splat(GPT2_EXP_INV_LN2_64)), sh), sh);
    vi biased = vi_add32(vd_to_i32(nd), vi_splat32(1 << 20));
    vi j = vi_and(biased, vi_splat32(63)), k = vi_sub32(vi_shr32(biased, 6), vi_splat32(1 << 14));
    vd r = vd_sub(vd_sub(y, vd_mul(nd, vd_splat(GPT2_EXP_LN2_64_HI))), vd_mul(nd, vd_splat(GPT2_EXP_LN2_64_LO)));
    vd p = vd_splat(1.0 / 120.0);
    p = vd_add(vd_mul(p, r), vd_splat(1.0 / 24.0));
    p = vd_add(vd_mul(p, r), vd_splat(1.0 / 6.0));
    p = vd_add(vd_mul(p, r), vd_splat(0.5));
    p = vd_add(vd_mul(p, r), vd_splat(1.0));
    p = vd_add(vd_mul(p, r), vd_splat(1.0));
    vd e = vd_mul(vd_mul(vd_make(gpt2_exp2_j64[vi_lane(j, 0)], gpt2_exp2_j64[vi_lane(j, 1)]), p), vd_pow2(k));
    vd one = vd_splat(1.0);
    vd t = vd_sub(one, vd_div(vd_splat(2.0), vd_add(e, one)));
    return vd_select(hi, one, vd_select(lo, vd_splat(-1.0), vd_select(nan, x, t)));
}

/* gelu_new's tanh(s (v + 0.044715 v^3)), s = sqrt(2/pi), in float steps with gpt2_tanh (not libm's
 * tanhf: the same bits natively and in WASM, sampler.h); four at a time with gpt2_tanh in two
 * double lanes, the same bits. */
static const float GELU_S = 0.7978845608028654f;

static float gelu_tanh1(float v) { return (float)gpt2_tanh(GELU_S * (v + 0.044715f * v * v * v)); }

K_INLINE vf gelu_tanh4(vf v) {
    vf u = vf_mul(vf_splat(GELU_S), vf_add(v, vf_mul(vf_mul(vf_mul(vf_splat(0.044715f), v), v), v)));
    return vf_from_vd(vd_tanh(vd_from_f32_lo(u)), vd_tanh(vd_from_f32_hi(u)));
}

void k_gelu(float *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        vf v = vf_load(x + i);
        vf_store(x + i, vf_mul(vf_mul(vf_splat(0.5f), v), vf_add(vf_splat(1.0f), gelu_tanh4(v))));
    }
    for (; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + gelu_tanh1(x[i]));
}

/* d[i] *= gelu_new'(x[i]) = 0.5 (1 + th) + 0.5 x (1 - th^2) du/dx, th = tanh u, u = s (x + 0.044715 x^3),
 * du/dx = s (1 + 3 * 0.044715 x^2): the tail loop's float steps, four at a time as k_gelu. */
void k_gelu_grad(float *d, const float *x, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        vf v = vf_load(x + i), th = gelu_tanh4(v), one = vf_splat(1.0f);
        vf du = vf_mul(vf_splat(GELU_S), vf_add(one, vf_mul(vf_mul(vf_splat(3.0f * 0.044715f), v), v)));
        vf g = vf_add(vf_mul(vf_splat(0.5f), vf_add(one, th)),
                      vf_mul(vf_mul(vf_mul(vf_splat(0.5f), v), vf_sub(one, vf_mul(th, th))), du));
        vf_store(d + i, vf_mul(vf_load(d + i), g));
    }
    for (; i < n; i++) {
        float v = x[i], th = gelu_tanh1(v), du = GELU_S * (1.0f + 3.0f * 0.044715f * v * v);
        d[i] *= 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du;
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

/* ------------------------------------------------------------------------------------------
 * Conversion while loading (kernels.h): source bands into packed f16 / q8_0 matrices.
 *
 * q8_0 works on "lane vectors": 4 consecutive outputs (one packed tile) of one input column,
 * which is how a Conv1D source row holds them (and what a 4x4 transpose of 4 [out, in] rows
 * gives). A block of 32 inputs is 32 lane vectors; each lane is one output row's block, and
 * every step of gpt2_q8_quantize_block is done lane-wise with the same IEEE operations (the
 * max of |v| ignoring NaN, the float division by the fp16-rounded scale, clamping, rounding
 * half away from zero as trunc(r) +- 1 when |r - trunc(r)| >= 0.5: exact for |r| <= 127), so
 * the bytes are those of the scalar rule. The int8 values then land as the tile's pairs of
 * columns (matrix.h) with two narrowing packs and one byte shuffle per two pairs.
 * Partial tiles, tail columns and f16 from f32/bf16 sources take the scalar rule value by
 * value (in every build; the scalar layer runs the lane vectors lane by lane).
 */
/* The scalar rule for one block (v[32]) of row o, block b of a q8_0 matrix. */
static void q8_put_block(const gpt2_matrix *m, int o, int b, const float *v) {
    const uint64_t R = (uint64_t)m->rows, K = (uint64_t)m->cols;
    unsigned char *base = (unsigned char *)(uintptr_t)m->data;
    int8_t q[GPT2_Q8_BLOCK];
    uint16_t sc;
    gpt2_q8_quantize_block(v, q, &sc, NULL);
    memcpy(base + gpt2_q8_scale_offset(R, K, (uint64_t)o, (uint64_t)b), &sc, sizeof sc);
    unsigned char *d = base + gpt2_q8_value_offset(R, K, (uint64_t)o, (uint64_t)b * GPT2_Q8_BLOCK);
    const size_t step = 2 * (size_t)gpt2_pack_tile_rows(R, (uint64_t)o);
    for (int p = 0; p < GPT2_Q8_BLOCK / 2; p++) memcpy(d + p * step, q + 2 * p, 2);
}

/* Element (o, i) of an f16 matrix: the half of the float v. */
static inline void f16_put(const gpt2_matrix *m, int o, int i, uint16_t h) {
    ((uint16_t *)(uintptr_t)m->data)[gpt2_packed_index((uint64_t)m->rows, (uint64_t)m->cols, (uint64_t)o, (uint64_t)i)] = h;
}

/* One block of a full tile from 32 lane vectors v (lane r = row r's value): the 4 scales and
 * the 128 value bytes at blk (matrix.h), by gpt2_q8_quantize_block's rule lane by lane. */
static void q8_put_lanes(unsigned char *blk, const vf *v) {
    vf amax = vf_zero();
    for (int k = 0; k < GPT2_Q8_BLOCK; k++) amax = vf_max_num(amax, vf_abs(v[k]));
    float a[4], s[4];
    uint16_t hs[4];
    vf_store(a, amax);
    for (int r = 0; r < 4; r++) {
        uint16_t h = gpt2_f32_to_f16(a[r] / 127.0f);
        if ((h & 0x7c00u) == 0x7c00u) h = 0x7bffu;
        hs[r] = h;
        s[r] = gpt2_f16_to_f32(h);
    }
    vf sv = vf_load(s), ok = vf_nonzero(sv);
    vf half = vf_splat(0.5f), one = vf_splat(1.0f), sign = vf_splat(-0.0f);
    vi q[GPT2_Q8_BLOCK];
    for (int k = 0; k < GPT2_Q8_BLOCK; k++) {
        vf r = vf_div(v[k], sv);
        r = vf_clamp127(vf_and(r, vf_and(vf_isnum(r), ok)));
        vf t = vf_trunc(r);
        vf adj = vf_and(vf_ge(vf_abs(vf_sub(r, t)), half), vf_or(vf_and(r, sign), one));
        q[k] = vi_from_f32(vf_add(t, adj));
    }
    memcpy(blk, hs, sizeof hs); /* the 4 half scales, then the values (matrix.h) */
    for (int j = 0; j < GPT2_Q8_BLOCK / 4; j++) vi_store(blk + sizeof hs + 16 * j, vi_pairs(q[4 * j], q[4 * j + 1], q[4 * j + 2], q[4 * j + 3]));
}

/* The scalar rule for outputs [o0, o1) of a band (k_pack_band's arguments). */
static void pack_band_scalar(const gpt2_matrix *m, const unsigned char *s, int src_type, size_t ld, int i0, int nk,
                             int o0, int o1) {
    const size_t es = src_size(src_type);
    for (int o = o0; o < o1; o++) {
        if (m->type == GPT2_DTYPE_Q8_0) {
            float v[GPT2_Q8_BLOCK];
            for (int k = 0; k < GPT2_Q8_BLOCK; k++) v[k] = src_elem(s + (k * ld + (size_t)o) * es, src_type, 0);
            q8_put_block(m, o, i0 / GPT2_Q8_BLOCK, v);
        } else {
            for (int k = 0; k < nk; k++) f16_put(m, o, i0 + k, gpt2_f32_to_f16(src_elem(s + (k * ld + (size_t)o) * es, src_type, 0)));
        }
    }
}

/* [*a, *b): the full tiles among outputs [o0, o1) of an m->rows-row matrix (empty: *a = *b = o0) */
static void full_tiles(int rows, int o0, int o1, int *a, int *b) {
    *a = (o0 + 3) & ~3;
    *b = (o1 < (rows & ~3) ? o1 : (rows & ~3)) & ~3;
    if (*b < *a) *a = *b = o0;
}

void k_pack_band(const gpt2_matrix *m, const void *src, int src_type, size_t ld, int i0, int nk, int o0, int o1) {
    const unsigned char *s = src;
    const size_t es = src_size(src_type), rowb = ld * es;
    const int K = m->cols, c8 = K & ~7;
    int a, b; /* [a, b): the full tiles, in lane vectors (f16 from f16 only); the rest by the scalar rule */
    full_tiles(m->rows, o0, o1, &a, &b);
    if (m->type != GPT2_DTYPE_Q8_0 && src_type != K_SRC_F16) a = b = o0;
    if (m->type == GPT2_DTYPE_Q8_0) {
        const size_t nb = (size_t)K / GPT2_Q8_BLOCK;
        for (int o = a; o < b; o += 4) {
            vf v[GPT2_Q8_BLOCK];
            for (int k = 0; k < GPT2_Q8_BLOCK; k++) v[k] = src4(s + k * rowb + (size_t)o * es, src_type);
            q8_put_lanes((unsigned char *)(uintptr_t)m->data + ((size_t)o / 4 * nb + (size_t)i0 / GPT2_Q8_BLOCK) * (GPT2_Q8_GROUP * 4), v);
        }
    } else {
        int kc = nk & ~3; /* whole chunks of 4 inputs before the tail columns */
        if (i0 + kc > c8) kc = c8 > i0 ? (c8 - i0) & ~3 : 0;
        for (int o = a; o < b; o += 4) {
            uint16_t *tile = (uint16_t *)(uintptr_t)m->data + (size_t)o * K;
            for (int k = 0; k < kc; k += 4) h16_transpose4(tile + (size_t)(i0 + k) * 4, s + k * rowb + (size_t)o * 2, rowb);
            for (int k = kc; k < nk; k++)
                for (int r = 0; r < 4; r++) {
                    uint16_t h;
                    memcpy(&h, s + k * rowb + (size_t)(o + r) * 2, 2);
                    f16_put(m, o + r, i0 + k, half_canonical(h));
                }
        }
    }
    pack_band_scalar(m, s, src_type, ld, i0, nk, o0, a);
    pack_band_scalar(m, s, src_type, ld, i0, nk, b, o1);
}

/* The scalar rule for rows [ra, rb) of k_pack_rows (source row o at src + (o - o0) * row bytes). */
static void pack_rows_scalar(const gpt2_matrix *m, const unsigned char *s, int src_type, int o0, int ra, int rb) {
    const int K = m->cols;
    const size_t rowb = (size_t)K * src_size(src_type);
    for (int o = ra; o < rb; o++) {
        const unsigned char *row = s + (size_t)(o - o0) * rowb;
        if (m->type == GPT2_DTYPE_Q8_0) {
            for (int blk = 0; blk < K / GPT2_Q8_BLOCK; blk++) {
                float v[GPT2_Q8_BLOCK];
                for (int k = 0; k < GPT2_Q8_BLOCK; k++) v[k] = src_elem(row, src_type, (size_t)blk * GPT2_Q8_BLOCK + k);
                q8_put_block(m, o, blk, v);
            }
        } else if (src_type == K_SRC_F16) {
            for (int i = 0; i < K; i++) {
                uint16_t h;
                memcpy(&h, row + 2 * (size_t)i, 2);
                f16_put(m, o, i, half_canonical(h));
            }
        } else {
            for (int i = 0; i < K; i++) f16_put(m, o, i, gpt2_f32_to_f16(src_elem(row, src_type, (size_t)i)));
        }
    }
}

void k_pack_rows(const gpt2_matrix *m, const void *src, int src_type, int o0, int o1) {
    const unsigned char *s = src;
    const int K = m->cols, nb = K / GPT2_Q8_BLOCK;
    const size_t es = src_size(src_type), rowb = (size_t)K * es;
    int a, b; /* [a, b): q8_0's full tiles, 4 rows transposed into lane vectors; the rest by the scalar rule */
    full_tiles(m->rows, o0, o1, &a, &b);
    if (m->type != GPT2_DTYPE_Q8_0) a = b = o0;
    for (int o = a; o < b; o += 4) {
        const unsigned char *t = s + (size_t)(o - o0) * rowb;
        for (int blk = 0; blk < nb; blk++) {
            vf v[GPT2_Q8_BLOCK];
            for (int k = 0; k < GPT2_Q8_BLOCK; k += 4) {
                size_t at = ((size_t)blk * GPT2_Q8_BLOCK + k) * es;
                v[k] = src4(t + at, src_type), v[k + 1] = src4(t + rowb + at, src_type);
                v[k + 2] = src4(t + 2 * rowb + at, src_type), v[k + 3] = src4(t + 3 * rowb + at, src_type);
                vf_transpose4(&v[k], &v[k + 1], &v[k + 2], &v[k + 3]);
            }
            q8_put_lanes((unsigned char *)(uintptr_t)m->data + ((size_t)o / 4 * nb + (size_t)blk) * (GPT2_Q8_GROUP * 4), v);
        }
    }
    pack_rows_scalar(m, s, src_type, o0, o0, a);
    pack_rows_scalar(m, s, src_type, o0, b, o1);
}
