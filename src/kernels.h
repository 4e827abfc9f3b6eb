/* kernels.h - the numeric kernels of the forward pass, float32.
 *
 * One portable source: a 4-lane vector path written with GCC/Clang vector extensions
 * (x86 SSE natively, WASM SIMD128 under -msimd128) and a scalar fallback, chosen at
 * compile time (GPT2_SCALAR_KERNELS forces the fallback). Sums are accumulated in a
 * fixed order, so a given build is deterministic.
 */
#ifndef GPT2_KERNELS_H
#define GPT2_KERNELS_H

#include "matrix.h"

/* out[t*m + o] = b[o] + sum_i x[t*k + i] * w[o*k + i]   for t < n, o < m.
 * x is [n, k], w is [m, k] (one row per output), b is [m] or NULL, out is [n, m].
 * out must not alias x. n == 1 is the decode (matrix-vector) case. */
void k_matmul(float *out, const float *x, const float *w, const float *b, int n, int k, int m);

/* The same product for rows o in [o0, o1) only, with weights w of any dtype (matrix.h):
 * out[t*m + o] = b[o] + sum_i x[t*k + i] * W(o, i), k = w->cols, m = w->rows. Rows outside
 * [o0, o1) of out are not touched, so threads can split the rows between them. */
void k_matmul_rows(float *out, const float *x, const gpt2_matrix *w, const float *b, int n, int o0, int o1);

/* out[0..cols) = row r of w as float32 (embedding lookup for any dtype). */
void k_matrix_row(float *out, const gpt2_matrix *w, int r);

/* Dot product of two length-k vectors. */
float k_dot(const float *a, const float *b, int k);

/* out = (x - mean(x)) / sqrt(var(x) + eps) * g + b over one row of length c
 * (biased variance, as PyTorch's LayerNorm). out may alias x. */
void k_layernorm(float *out, const float *x, const float *g, const float *b, int c, float eps);

/* x[i] = gelu_new(x[i]) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in place. */
void k_gelu(float *x, int n);

/* x[i] = exp(x[i] - max) / sum_j exp(x[j] - max), in place, n >= 1. */
void k_softmax(float *x, int n);

/* y[i] += x[i]. */
void k_add(float *y, const float *x, int n);

/* y[i] += a * x[i]. */
void k_axpy(float *y, float a, const float *x, int n);

#endif
