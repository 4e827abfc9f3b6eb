/* matrix.h - a weight matrix in one of the storage precisions the kernels compute with.
 *
 * Every linear layer's weights are [rows, cols] = [out, in], row-major (one output's weights
 * contiguous), so that y[o] = b[o] + sum_i W(o, i) * x[i]. The element W(o, i) is:
 *   GPT2_DTYPE_F32  : ((const float *)data)[o * cols + i]
 *   GPT2_DTYPE_F16  : half_to_float(((const uint16_t *)data)[o * cols + i])   (IEEE binary16)
 *   GPT2_DTYPE_Q8_0 : ((const int8_t *)data)[o * cols + i] * scales[o * (cols / 32) + i / 32]
 *                     (blocks of GPT2_Q8_BLOCK = 32 values along a row share one scale;
 *                      cols must be a multiple of 32)
 */
#ifndef GPT2_MATRIX_H
#define GPT2_MATRIX_H

#include <stddef.h>
#include <stdint.h>

typedef enum gpt2_dtype {
    GPT2_DTYPE_F32 = 0,
    GPT2_DTYPE_F16 = 1,
    GPT2_DTYPE_Q8_0 = 2,
} gpt2_dtype;

enum { GPT2_Q8_BLOCK = 32 };

typedef struct gpt2_matrix {
    gpt2_dtype type;
    int rows, cols;
    const void *data;    /* see above; never NULL for a loaded matrix */
    const float *scales; /* GPT2_DTYPE_Q8_0 only: [rows * cols / 32]; NULL otherwise */
} gpt2_matrix;

/* Short name of a dtype ("f32", "f16", "q8_0"). */
const char *gpt2_dtype_name(gpt2_dtype t);

/* Bytes of storage a rows x cols matrix takes in dtype t (data + scales), UINT64_MAX when
 * t is Q8_0 and cols is not a multiple of 32. */
uint64_t gpt2_matrix_bytes(gpt2_dtype t, uint64_t rows, uint64_t cols);

#endif
