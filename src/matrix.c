/* matrix.c - see matrix.h. */
#include "matrix.h"

#include <string.h>

#include "fp16.h"

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
        return n / GPT2_Q8_BLOCK * GPT2_Q8_GROUP;
    }
    return UINT64_MAX;
}

float gpt2_matrix_get(const gpt2_matrix *m, int o, int i) {
    uint64_t R = (uint64_t)m->rows, C = (uint64_t)m->cols;
    switch (m->type) {
    case GPT2_DTYPE_F32: return ((const float *)m->data)[gpt2_packed_index(R, C, (uint64_t)o, (uint64_t)i)];
    case GPT2_DTYPE_F16:
        return gpt2_f16_to_f32(((const uint16_t *)m->data)[gpt2_packed_index(R, C, (uint64_t)o, (uint64_t)i)]);
    case GPT2_DTYPE_Q8_0: {
        const unsigned char *d = m->data;
        uint16_t h;
        memcpy(&h, d + gpt2_q8_scale_offset(R, C, (uint64_t)o, (uint64_t)i / GPT2_Q8_BLOCK), sizeof h);
        return (float)(int8_t)d[gpt2_q8_value_offset(R, C, (uint64_t)o, (uint64_t)i)] * gpt2_f16_to_f32(h);
    }
    }
    return 0.0f;
}
