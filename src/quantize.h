/* quantize.h - q8_0 quantization and the streaming checkpoint converter (`gpt2 quantize`).
 *
 * Quantization rule (q8_0, docs/quantized-format.md): a row of a [out, in] weight matrix is
 * cut into blocks of 32 consecutive values v[0..32). Per block
 *     scale = max|v| / 127                 (float32 division)
 *     h     = scale rounded to fp16 (IEEE binary16, round to nearest even; values above the
 *             largest half, 65504, become 65504), s = h widened back to float32
 *     q[j]  = round-half-away-from-zero(v[j] / s) clamped to [-127, 127]   (float32 division)
 * and v[j] ~= q[j] * s. A block whose s is 0 (all zeros, or so small that the scale rounds
 * to 0 in fp16) has q = 0. NaN values quantize to 0. Files store h; memory stores s, so a
 * model quantized while loading and one loaded from a quantized file hold the same bits.
 *
 * The converter reads a Hugging Face GPT-2 model.safetensors (F32, F16 or BF16) as a stream
 * of chunks of any size (with the stream reader, safetensors.h) and produces the converted
 * file as a stream (in file order), holding at most one tensor's quantized output (Conv1D
 * weights must be transposed) and the current band of rows (32 of a Conv1D weight): memory
 * is bounded by the largest weight matrix at 1 byte per value, never the whole file. Output
 * types:
 *   GPT2_DTYPE_F16  : an ordinary Hugging Face F16 checkpoint (every float tensor in F16, the
 *                     Conv1D layouts unchanged, mask buffers dropped).
 *   GPT2_DTYPE_Q8_0 : each linear weight NAME (wte.weight, lm_head.weight, h.N.attn.c_attn.weight,
 *                     h.N.attn.c_proj.weight, h.N.mlp.c_fc.weight, h.N.mlp.c_proj.weight) becomes
 *                     NAME.q8 (I8, [out, in]) and NAME.scale (F16, [out, in/32]); a weight whose
 *                     `in` is not a multiple of 32 stays NAME in F16; other tensors are copied
 *                     unchanged; mask buffers are dropped.
 */
#ifndef GPT2_QUANTIZE_H
#define GPT2_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "matrix.h"
#include "status.h"

/* float32 -> IEEE binary16 bits, round to nearest even (overflow -> infinity, NaN -> NaN). */
uint16_t gpt2_f32_to_f16(float f);

/* Quantizes one block of GPT2_Q8_BLOCK floats by the rule above: q[0..32), the fp16 scale
 * bits *scale_bits and their float32 value *scale (either pointer may be NULL). */
void gpt2_q8_quantize_block(const float *v, int8_t *q, uint16_t *scale_bits, float *scale);

/* ---- the streaming converter ---- */

typedef struct gpt2_quantizer gpt2_quantizer;

/* Creates a converter to type (GPT2_DTYPE_F16 or GPT2_DTYPE_Q8_0). source names the input
 * file in messages (NULL: "model.safetensors"). */
gpt2_err gpt2_quantizer_create(gpt2_dtype type, const char *source, gpt2_quantizer **out, gpt2_error *err);

/* Feeds the next n bytes of the input file. Output becomes available as it is produced. */
gpt2_err gpt2_quantizer_feed(gpt2_quantizer *q, const uint8_t *bytes, size_t n, gpt2_error *err);

/* The output bytes produced and not yet taken: *out points to them (valid until the next
 * call on q). Returns their count. */
size_t gpt2_quantizer_output(gpt2_quantizer *q, const uint8_t **out);

/* Marks n of those bytes as taken (written by the caller). */
void gpt2_quantizer_consume(gpt2_quantizer *q, size_t n);

/* Ends the input: fails if it was truncated or had extra bytes. After success, the last
 * output is available through gpt2_quantizer_output. */
gpt2_err gpt2_quantizer_finish(gpt2_quantizer *q, gpt2_error *err);

/* Total size of the output file once the input header is known (else 0), and a short
 * summary ("12 weights to q8_0, 1 kept in f16 (cols % 32 != 0)") once known. */
uint64_t gpt2_quantizer_output_size(const gpt2_quantizer *q);
const char *gpt2_quantizer_summary(const gpt2_quantizer *q);

void gpt2_quantizer_free(gpt2_quantizer *q);

/* Native convenience: converts in_path to out_path (written to out_path + ".tmp", then
 * renamed; nothing is left behind on failure). Reads and writes in 4 MiB chunks. */
gpt2_err gpt2_quantize_file(const char *in_path, const char *out_path, gpt2_dtype type, char *summary,
                            size_t summary_len, gpt2_error *err);

#endif
