/* config.h - GPT-2 hyper-parameters, read from a Hugging Face config.json. */
#ifndef GPT2_CONFIG_H
#define GPT2_CONFIG_H

#include <stddef.h>

#include "status.h"

typedef struct gpt2_config {
    int n_layer;      /* transformer blocks */
    int n_head;       /* attention heads; n_embd % n_head == 0 */
    int n_embd;       /* model width C */
    int n_ctx;        /* n_positions (fallback n_ctx): rows of wpe, longest context */
    int n_vocab;      /* vocab_size: rows of wte */
    int n_inner;      /* MLP width; config null/absent means 4 * n_embd */
    float ln_eps;     /* layer_norm_epsilon (default 1e-5) */
} gpt2_config;

/* Parses config.json text. Rejects missing or non-positive sizes, n_embd not divisible by
 * n_head, and any activation_function other than "gelu_new" (absent means gelu_new). */
gpt2_err gpt2_config_parse(const char *json, size_t len, gpt2_config *out, gpt2_error *err);

#endif
