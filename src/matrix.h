/* matrix.h - a weight matrix in one of the storage precisions the kernels compute with,
 * stored in the packed order the kernels read.
 *
 * Every linear layer's weights W are [rows, cols] = [out, in]: y[o] = b[o] + sum_i W(o, i) x[i].
 * Storage is packed (written so by the loader as the file streams in; no row-major copy):
 *
 * Tiles of GPT2_PACK_ROWS = 4 rows. Tile g holds rows 4g .. 4g+rt-1 (rt = 4, or fewer for the
 * last tile when rows % 4 != 0) and starts where the tiles before it end (element 4g * cols
 * for f32/f16, byte 4g * cols * 17/16 for q8_0). Inside a tile, with r = o - 4g:
 *
 *   f32 / f16 (elements of 4 or 2 bytes; c8 = cols - cols % 8):
 *     i <  c8: chunk c = i / 4 of 4 columns holds rt rows x 4 values:
 *              element (o, i) at  tile + c*4*rt + r*4 + i%4
 *     i >= c8: the tail columns, row after row:   tile + c8*rt + r*(cols - c8) + (i - c8)
 *     So decode reads a tile as one sequential stream (4 rows x 4 columns, 64 bytes of f32,
 *     at a time); each row's chunks are 16*rt bytes (f32) apart.
 *   q8_0 (cols % 32 == 0; nb = cols / 32 blocks per row; a tile is nb groups of
 *     GPT2_Q8_GROUP = 34 bytes per row, 34*rt bytes):
 *     group b = the rt scales of block b as finite IEEE half floats (the file's fp16 bits as
 *     they are; the loader rejects inf and NaN; scale of (o, b) at tile + b*34*rt + 2*r), then the int8 values of the block as
 *     16 pairs of columns, each pair rt rows x 2 values:
 *     value (o, i), i = 32b + 2p + h, at  tile + b*34*rt + 2*rt + p*2*rt + r*2 + h,
 *     and W(o, i) = value * scale (blocks of GPT2_Q8_BLOCK = 32 columns share one scale,
 *     widened exactly to float32). Each block's scales sit next to its values; 8 bytes
 *     (pmovsx / i16x8.load8x8) hold one pair of columns of the 4 rows, which
 *     i32x4.dot_i16x8_s multiplies by a splat pair of activations. Half scales keep the
 *     weights as small as the file (17/16 bytes per weight), the same as float ones would
 *     compute (every scale is a half: the file format's rule).
 *
 * gpt2_packed_index / gpt2_q8_value_offset / gpt2_q8_scale_offset compute these positions;
 * gpt2_matrix_get reads one element.
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

enum { GPT2_Q8_BLOCK = 32, GPT2_PACK_ROWS = 4, GPT2_Q8_GROUP = GPT2_Q8_BLOCK + 2 };

typedef struct gpt2_matrix {
    gpt2_dtype type;
    int rows, cols;
    const void *data; /* packed as above (q8_0: values and scales); never NULL for a loaded matrix */
    /* f16: 1 when every element is known to be finite (no infinity or NaN), so the f16
     * kernels may take their faster conversion, exact for finite halves only; 0 (unknown) is
     * always safe. Whoever writes an f16 matrix's data sets it (gpt2_weights_check_finite). */
    int finite;
} gpt2_matrix;

/* Short name of a dtype ("f32", "f16", "q8_0"). */
const char *gpt2_dtype_name(gpt2_dtype t);

/* Bytes of storage a rows x cols matrix takes in dtype t (q8_0: values + half scales),
 * UINT64_MAX when t is Q8_0 and cols is not a multiple of 32. */
uint64_t gpt2_matrix_bytes(gpt2_dtype t, uint64_t rows, uint64_t cols);

/* Rows in the tile holding row o (4, or rows % 4 for the last tile). */
static inline uint64_t gpt2_pack_tile_rows(uint64_t rows, uint64_t o) {
    uint64_t base = o & ~(uint64_t)3;
    return rows - base < 4 ? rows - base : 4;
}

/* f32 / f16: index (in elements) of W(o, i) in data. */
static inline uint64_t gpt2_packed_index(uint64_t rows, uint64_t cols, uint64_t o, uint64_t i) {
    uint64_t rt = gpt2_pack_tile_rows(rows, o), r = o & 3, c8 = cols & ~(uint64_t)7;
    uint64_t tile = (o - r) * cols;
    if (i < c8) return tile + (i >> 2) * 4 * rt + r * 4 + (i & 3);
    return tile + c8 * rt + r * (cols - c8) + (i - c8);
}

/* q8_0: byte offset in data of the int8 value of W(o, i). */
static inline uint64_t gpt2_q8_value_offset(uint64_t rows, uint64_t cols, uint64_t o, uint64_t i) {
    uint64_t rt = gpt2_pack_tile_rows(rows, o), r = o & 3;
    uint64_t tile = (o - r) * cols / GPT2_Q8_BLOCK * GPT2_Q8_GROUP, b = i / GPT2_Q8_BLOCK, e = i % GPT2_Q8_BLOCK;
    return tile + b * GPT2_Q8_GROUP * rt + 2 * rt + (e >> 1) * 2 * rt + r * 2 + (e & 1);
}

/* q8_0: byte offset in data of the half scale of block b (columns 32b .. 32b+31) of row o. */
static inline uint64_t gpt2_q8_scale_offset(uint64_t rows, uint64_t cols, uint64_t o, uint64_t b) {
    uint64_t rt = gpt2_pack_tile_rows(rows, o), r = o & 3;
    return (o - r) * cols / GPT2_Q8_BLOCK * GPT2_Q8_GROUP + b * GPT2_Q8_GROUP * rt + 2 * r;
}

/* W(o, i) as a float (exact for every dtype: q8_0 is value * scale in float32). */
float gpt2_matrix_get(const gpt2_matrix *m, int o, int i);

#endif
