/* fp16.h - exact IEEE half (binary16) and bfloat16 -> float32 conversion.
 *
 * Every half and bfloat16 value is exactly representable as a float, so these conversions
 * are exact: zeros keep their sign, subnormal halves become normal floats, infinities stay
 * infinite and NaNs stay NaN (payload preserved, shifted into the float's mantissa).
 * Pure bit manipulation: no rounding mode or FPU flag is involved.
 */
#ifndef GPT2_FP16_H
#define GPT2_FP16_H

#include <stdint.h>
#include <string.h>

/* The float whose IEEE-754 bit pattern is u. */
static inline float gpt2_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Converts an IEEE-754 binary16 bit pattern to float (exact). */
static inline float gpt2_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {                 /* inf / NaN */
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {              /* normal: rebias 15 -> 127 */
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {              /* signed zero */
        bits = sign;
    } else {                            /* subnormal: man * 2^-24, with top bit k in 0..9 */
        uint32_t k = 9;
        while (!(man >> k)) k--;
        bits = sign | ((k + 103u) << 23) | ((man << (23u - k)) & 0x7fffffu);
    }
    return gpt2_f32_from_bits(bits);
}

/* Converts a bfloat16 bit pattern (the top half of a float32) to float (exact). */
static inline float gpt2_bf16_to_f32(uint16_t b) {
    return gpt2_f32_from_bits((uint32_t)b << 16);
}

#endif
