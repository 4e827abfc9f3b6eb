/* kernels.h - the numeric kernels of the forward pass.
 *
 * One portable source (kernels.c): each kernel written once against a small vector layer
 * defined for WASM SIMD128, for x86 SSE4.1/F16C natively, and as a scalar fallback
 * (GPT2_SCALAR_KERNELS forces it), chosen at compile time. All three compute the same sums
 * in the same order (8 lanes per dot product; q8_0: exact integer block sums, then the
 * blocks in order; see kernels.c), so results are bit-identical across builds and do not
 * depend on tiling or on how rows are split between threads. Weights are read in the packed
 * order of matrix.h.
 */
#ifndef GPT2_KERNELS_H
#define GPT2_KERNELS_H

#include "matrix.h"

/* q8_0 activations: for an input x [n, k] (k a multiple of 32), k_q8_quantize_act writes the
 * per-32-block int8 quantization used by q8_0 products (see kernels.c) into act, which must
 * hold k_q8_act_bytes(n, k) bytes, 4-byte aligned (0 for invalid sizes). The caller owns the
 * buffer (the model keeps one in its state, sized for its widest product) and quantizes once
 * per input, so threads splitting the rows of a product share it. */
size_t k_q8_act_bytes(int n, int k);
void k_q8_quantize_act(void *act, const float *x, int n, int k);

/* The product for rows o in [o0, o1), with packed weights w of any dtype (matrix.h):
 * out[t*m + o] = b[o] + sum_i x[t*k + i] * W(o, i) for t < n, k = w->cols, m = w->rows;
 * x is [n, k], b is [m] or NULL, out is [n, m] and must not alias x. n == 1 is the decode
 * (matrix-vector) case. For q8_0 weights the product reads act (k_q8_quantize_act of this
 * x, n, k) instead of x; for the other dtypes act is ignored (may be NULL). Rows outside
 * [o0, o1) of out are not touched, so threads can split the rows between them. */
void k_matmul_rows(float *out, const float *x, const void *act, const gpt2_matrix *w, const float *b, int n, int o0,
                   int o1);

/* out[0..cols) = row r of w as float32 (embedding lookup for any dtype, from the packed
 * layout: the tied LM head's matrix serves the lookup too). */
void k_matrix_row(float *out, const gpt2_matrix *w, int r);

/* Dot product of two length-k vectors (the 8-lane order of the matrix products). */
float k_dot(const float *a, const float *b, int k);

/* out = (x - mean(x)) / sqrt(var(x) + eps) * g + b over one row of length c
 * (biased variance, as PyTorch's LayerNorm). out may alias x. */
void k_layernorm(float *out, const float *x, const float *g, const float *b, int c, float eps);

/* x[i] = gelu_new(x[i]) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in place. */
void k_gelu(float *x, int n);

/* d[i] *= gelu_new'(x[i]), n >= 0: the backward pass of k_gelu (training), the same float steps
 * and gpt2_tanh in every build. */
void k_gelu_grad(float *d, const float *x, int n);

/* x[i] = exp(x[i] - max) / sum_j exp(x[j] - max), in place, n >= 1. */
void k_softmax(float *x, int n);

/* y[i] += x[i]. */
void k_add(float *y, const float *x, int n);

/* y[i] += a * x[i]. */
void k_axpy(float *y, float a, const float *x, int n);

/* Attention over a KV cache, one head: att[j] = dot(q, K_j) * scale for j < n (each dot as
 * k_dot), with K_j = k + j*stride (d floats). */
void k_attn_scores(float *att, const float *q, const float *k, long stride, int n, int d, float scale);

/* y[0..d) = sum_{j < n} att[j] * V_j, V_j = v + j*stride, summed in order of j (exactly as
 * zeroing y and calling k_axpy(y, att[j], V_j, d) for each j). y must not alias v. */
void k_attn_values(float *y, const float *att, const float *v, long stride, int n, int d);

/* ---- conversion while loading (loader.c): source elements little-endian, of type
 * K_SRC_F32 / K_SRC_F16 / K_SRC_BF16 (4, 2, 2 bytes). The results are bit for bit those of
 * the scalar rules (gpt2_q8_quantize_block for q8_0; for f16, gpt2_f32_to_f16 of the exact
 * float value, so a half source is copied with NaNs made quiet), in every build. */
#define K_SRC_F32 0
#define K_SRC_F16 1
#define K_SRC_BF16 2

/* A band of nk source rows of a Conv1D weight [in, out] (row k holds input column i0 + k of
 * every output; element (k, o) at src + (k * ld + o) * element size) into outputs [o0, o1)
 * of the packed matrix m (an f16 or q8_0 matrix with m->rows = out). i0 is a multiple of 32;
 * for q8_0 nk is 32 (one block per output). */
void k_pack_band(const gpt2_matrix *m, const void *src, int src_type, size_t ld, int i0, int nk, int o0, int o1);

/* Full source rows [o0, o1) of a weight stored [out, in] (row o at src + (o - o0) * cols *
 * element size) into the packed f16 or q8_0 matrix m. */
void k_pack_rows(const gpt2_matrix *m, const void *src, int src_type, int o0, int o1);

/* 1 when none of the n halves at h is an infinity or a NaN, else 0. */
int k_f16_all_finite(const void *h, size_t n);

/* Reads n bytes at p once (one sequential stream, 8 accumulators of 16-byte loads) and returns
 * the XOR of their 32-bit words: times the memory-bandwidth roofline (streaming all weight
 * bytes once). */
uint32_t k_read_bytes(const void *p, size_t n);

#endif
