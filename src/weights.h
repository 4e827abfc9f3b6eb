/* weights.h - the model's parameters in the layout the kernels want, in one allocation.
 *
 * All tensors are float32, row-major. Linear layers are stored [out, in] (each output's
 * weights contiguous), i.e. transposed from Hugging Face's Conv1D [in, out] layout, so that
 * y[o] = b[o] + sum_i W[o*in + i] * x[i].
 */
#ifndef GPT2_WEIGHTS_H
#define GPT2_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"

typedef struct gpt2_layer_weights {
    float *ln1_w, *ln1_b;     /* [C] */
    float *qkv_w, *qkv_b;     /* [3C, C], [3C]: rows 0..C-1 are q, C..2C-1 k, 2C..3C-1 v */
    float *attn_proj_w;       /* [C, C] */
    float *attn_proj_b;       /* [C] */
    float *ln2_w, *ln2_b;     /* [C] */
    float *fc_w, *fc_b;       /* [n_inner, C], [n_inner] */
    float *mlp_proj_w;        /* [C, n_inner] */
    float *mlp_proj_b;        /* [C] */
} gpt2_layer_weights;

typedef struct gpt2_weights {
    gpt2_config config;
    float *wte;               /* [n_vocab, C] token embeddings */
    float *wpe;               /* [n_ctx, C] position embeddings */
    gpt2_layer_weights *layers; /* [n_layer] */
    float *lnf_w, *lnf_b;     /* [C] final layer norm */
    float *lm_head;           /* [n_vocab, C]; == wte when tied (the GPT-2 case) */
    float *arena;             /* the single allocation every pointer above points into */
    size_t arena_floats;
} gpt2_weights;

/* Bytes gpt2_weights_create would allocate for this config (untied_head: separate lm_head).
 * Returns SIZE_MAX when the size does not fit in size_t or the config has a non-positive size. */
size_t gpt2_weights_bytes(const gpt2_config *config, int untied_head);

/* The same count in 64 bits (exact even where size_t is 32-bit, e.g. wasm32); UINT64_MAX
 * on overflow or a non-positive size. Each tensor starts at a multiple of 16 floats (64 bytes)
 * from the start of the arena (the arena itself has malloc alignment). */
uint64_t gpt2_weights_bytes_u64(const gpt2_config *config, int untied_head);

/* Allocates zeroed weights for config; fails with GPT2_ERR_NOMEM (never crashes) if the
 * arena cannot be allocated or its size overflows. */
gpt2_err gpt2_weights_create(const gpt2_config *config, int untied_head, gpt2_weights **out,
                             gpt2_error *err);

/* Releases weights (NULL is allowed). */
void gpt2_weights_free(gpt2_weights *w);

#endif
