/* loader.h - streaming GPT-2 checkpoint loader (config.json + model.safetensors).
 *
 * The loader is an incremental state machine fed the bytes of model.safetensors in order, in
 * chunks of any size (1 byte .. the whole file), so that a browser can stream a fetch() body
 * straight into WASM memory. It buffers only the 8-byte length and the JSON header. Once the
 * header is complete it validates every tensor against the config, checks the memory budget,
 * allocates the weights (gpt2_weights_create) and from then on converts each incoming data
 * byte straight into its destination: F32/F16/BF16 -> float32, Conv1D [in, out] -> [out, in]
 * transposed by scattering. At most one partial element is carried across chunk boundaries;
 * there is never a second copy of the data.
 *
 * Checkpoint rules:
 *  - Tensor names as in Hugging Face's GPT-2 (wte.weight, h.0.attn.c_attn.weight, ...), each
 *    optionally prefixed "transformer.". lm_head.weight is optional (absent: tied to wte).
 *  - h.{i}.attn.bias / h.{i}.attn.masked_bias (mask buffers) and any tensor with an unknown
 *    name are skipped without being stored, whatever their dtype. A needed tensor that is
 *    missing, has the wrong shape or a dtype other than F32/F16/BF16 is an error naming it,
 *    as is any h.{i}.* with i >= n_layer, or two tensors for the same weight (e.g. with and
 *    without the prefix).
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
#include "status.h"
#include "weights.h"

typedef struct gpt2_loader_options {
    uint64_t memory_budget_bytes; /* 0 = unlimited; else the weights must fit (checked early) */
    const char *source_name;      /* names the file in messages; NULL = "model.safetensors" */
} gpt2_loader_options;

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
