/* loader.h - streaming GPT-2 checkpoint loader (config.json + model.safetensors).
 *
 * The loader is fed the bytes of model.safetensors in order, in chunks of any size (1 byte ..
 * the whole file), so that a browser can stream a fetch() body straight into WASM memory. It
 * reads them with the safetensors stream reader (safetensors.h). Once the header is complete
 * it validates every tensor against the config, checks the memory budget, allocates the
 * weights (gpt2_weights_create) and from then on converts each incoming data byte straight
 * into its destination (F32/F16/BF16 -> the matrix dtype, Conv1D [in, out] -> [out, in]
 * transposed). A matrix converted to f16 or q8_0 is converted a band of source rows at a time
 * (4 rows, or 32 rows of a Conv1D tensor; SIMD kernels, kernels.h), straight from the fed
 * chunk, and split between the threads of opt->pool. There is never a second copy of the data.
 *
 * Checkpoint rules:
 *  - Tensor names as in Hugging Face's GPT-2 (wte.weight, h.0.attn.c_attn.weight, ...), each
 *    optionally prefixed "transformer.". lm_head.weight is optional (absent: tied to wte).
 *  - h.{i}.attn.bias / h.{i}.attn.masked_bias (mask buffers) and any tensor with an unknown
 *    name are skipped without being stored, whatever their dtype. A needed tensor that is
 *    missing, has the wrong shape or a dtype other than F32/F16/BF16 is an error naming it,
 *    as is any h.{i}.* with i >= n_layer, or two tensors for the same weight (e.g. with and
 *    without the prefix).
 *  - A linear weight may instead come quantized as NAME.q8 (I8, [out, in]) + NAME.scale
 *    (F16, [out, in/32]) (docs/quantized-format.md); a missing half, a wrong shape or dtype
 *    is an error naming the tensor.
 *  - The data section must be tiled exactly by the tensors (no holes, no overlap). Bytes past
 *    its end are an error ("has N extra bytes"), as Hugging Face's library also rejects them.
 *
 * Every error is sticky: after a failure, feed/finish return the same code and message.
 */
#ifndef GPT2_LOADER_H
#define GPT2_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pool.h"
#include "status.h"
#include "weights.h"

/* How linear weights are stored in memory (weights.h).
 *  AUTO ("as stored"): F32 and BF16 tensors -> f32, F16 -> f16 (the same values, exactly),
 *       quantized tensors (NAME.q8 + NAME.scale, docs/quantized-format.md) -> q8_0; but when
 *       that does not fit the memory budget, the most precise of F16 and Q8_0 that does
 *       (converted as below). The weights' precision_reason says which and why: "auto: f32
 *       as stored", or "auto: f16, because f32 as stored needs ... but the memory budget is
 *       ..." (a fallback's reason always contains ", because "), or "f16 as asked".
 *  F32 / F16 / Q8_0: converted while streaming (F16 rounds to nearest even; Q8_0 follows the
 *       rule in quantize.h, bit-identical to a file written by `gpt2 quantize`). Under Q8_0 a
 *       matrix kind whose cols is not a multiple of 32 is stored f16 instead (weights.h).
 *       A quantized file loaded as F32 gets the dequantized values q * scale exactly (as F16:
 *       those rounded to fp16). */
typedef enum gpt2_precision {
    GPT2_PRECISION_AUTO = 0,
    GPT2_PRECISION_F32,
    GPT2_PRECISION_F16,
    GPT2_PRECISION_Q8_0,
} gpt2_precision;

typedef struct gpt2_loader_options {
    /* 0 = unlimited; else the model (weights in the chosen precision + one state's KV cache and
     * scratch at full context, gpt2_model_bytes) must fit: checked from config.json at create
     * (with the smallest possible precision when AUTO) and exactly once the header is known,
     * before any large allocation. The GPT2_ERR_NOMEM message names a precision that fits. */
    uint64_t memory_budget_bytes;
    const char *source_name;      /* names the file in messages; NULL = "model.safetensors" */
    gpt2_precision precision;     /* AUTO by default */
    /* Threads that convert matrices to f16 / q8_0 while streaming (NULL: the calling thread
     * alone). Every band of source rows complete in a fed chunk is split between them by
     * output rows; the result does not depend on the threads (each value is written once). */
    gpt2_pool *pool;
} gpt2_loader_options;

/* "auto", "f32", "f16", "q8_0" -> *out; GPT2_ERR_ARG naming the choices otherwise. */
gpt2_err gpt2_precision_parse(const char *name, gpt2_precision *out, gpt2_error *err);
const char *gpt2_precision_name(gpt2_precision p);

/* Checks that the model described by config/plan fits budget (0 = unlimited); on failure
 * GPT2_ERR_NOMEM with a message such as "the model needs 6.6 GB in f32 (weights + KV cache)
 * but the memory budget is 4.0 GB; in q8_0 it needs 1.9 GB: load with precision 'q8_0'". */
gpt2_err gpt2_check_budget(const gpt2_config *config, const gpt2_weights_plan *plan, uint64_t budget,
                           gpt2_error *err);

/* The loader's choice of precision, also usable before any file is read (e.g. to tell a user
 * what a download will take): plan holds the dtypes as stored (per matrix kind, as the loader
 * reads them from the header; gpt2_weights_plan_uniform for a uniform file) and is changed to
 * what AUTO stores within budget (0 = unlimited); a forced precision keeps plan as given (the
 * forced one) and says "as asked". reason (cap bytes, 192 suffice) gets the weights'
 * precision_reason text. Returns the main dtype of the plan (the one holding most linear
 * parameters). When nothing fits, plan stays as stored: gpt2_check_budget then fails. */
gpt2_dtype gpt2_precision_choose(const gpt2_config *config, gpt2_precision precision, uint64_t budget,
                                 gpt2_weights_plan *plan, char *reason, size_t cap);

typedef struct gpt2_loader gpt2_loader;

/* Parses config.json text and creates a loader. Fails early with GPT2_ERR_NOMEM if even the
 * tied-head model would exceed opt->memory_budget_bytes. opt may be NULL. */
gpt2_err gpt2_loader_create(const char *config_json, size_t len, const gpt2_loader_options *opt,
                            gpt2_loader **out, gpt2_error *err);

/* Optional: declares the total file size (e.g. from Content-Length or stat) before or while
 * feeding, so that a header length past the end, truncation and extra bytes are reported as
 * soon as the header is known instead of at the end of the stream. */
gpt2_err gpt2_loader_set_file_size(gpt2_loader *ld, uint64_t file_size, gpt2_error *err);

/* Feeds the next n bytes of model.safetensors (n may be 0). On the chunk that completes the
 * header, validates it and allocates the weights. */
gpt2_err gpt2_loader_feed(gpt2_loader *ld, const uint8_t *bytes, size_t n, gpt2_error *err);

/* The JSON header length N once the first 8 bytes have arrived, else 0. */
uint64_t gpt2_loader_header_size(const gpt2_loader *ld);

/* Total file size 8 + N + data size once the header has been validated, else 0. */
uint64_t gpt2_loader_bytes_expected(const gpt2_loader *ld);

/* Bytes fed so far (for progress reporting). */
uint64_t gpt2_loader_bytes_received(const gpt2_loader *ld);

/* Ends the stream. Fails if it ended early ("truncated: got X of Y bytes"); on success moves
 * the weights to *out (the caller frees them with gpt2_weights_free). Only succeeds once. */
gpt2_err gpt2_loader_finish(gpt2_loader *ld, gpt2_weights **out, gpt2_error *err);

/* Releases the loader and everything not handed out, including partly loaded weights after
 * an error or an abandoned stream (NULL is allowed). */
void gpt2_loader_free(gpt2_loader *ld);

/* Native convenience: reads dir/config.json and streams dir/model.safetensors through a
 * loader in 4 MiB chunks. Errors name the file. opt->source_name is ignored. */
gpt2_err gpt2_load_dir(const char *dir, const gpt2_loader_options *opt, gpt2_weights **out,
                       gpt2_error *err);

#endif
