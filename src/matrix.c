/* matrix.c - see matrix.h. */
#include "matrix.h"

const char *gpt2_dtype_name(gpt2_dtype t) {
    switch (t) {
    case GPT2_DTYPE_F32: return "f32";
    case GPT2_DTYPE_F16: return "f16";
    case GPT2_DTYPE_Q8_0: return "q8_0";
    }
    return "?";
}

uint64_t gpt2_matrix_bytes(gpt2_dtype t, uint64_t rows, uint64_t cols) {
    uint64_t n = rows * cols;
    switch (t) {
    case GPT2_DTYPE_F32: return n * 4;
    case GPT2_DTYPE_F16: return n * 2;
    case GPT2_DTYPE_Q8_0:
        if (cols % GPT2_Q8_BLOCK) return UINT64_MAX;
        return n + n / GPT2_Q8_BLOCK * 4;
    }
    return UINT64_MAX;
}
