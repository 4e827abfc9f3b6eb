/* weights.c - one-arena allocation of the model parameters (see weights.h). */
#include "weights.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16u /* every tensor starts at a multiple of 64 bytes into the arena */

/* Walks the arena layout in order, counting floats in *cursor. When w is non-NULL, also
 * points each tensor of w at w->arena + its offset. Returns 0 on uint64 overflow. */
typedef struct layout_walk {
    uint64_t cursor; /* floats used so far */
    int overflow;
    gpt2_weights *w; /* NULL: count only */
} layout_walk;

static float *take(layout_walk *lw, uint64_t a, uint64_t b) {
    if (lw->overflow) return NULL;
    if (b != 0 && a > UINT64_MAX / b) { lw->overflow = 1; return NULL; }
    uint64_t n = a * b;
    uint64_t start = lw->cursor;
    if (n > UINT64_MAX - start - ALIGN_FLOATS) { lw->overflow = 1; return NULL; }
    uint64_t end = start + n;
    end = (end + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    lw->cursor = end;
    return lw->w ? lw->w->arena + start : NULL;
}

static void walk_layout(layout_walk *lw, const gpt2_config *c, int untied) {
    uint64_t C = (uint64_t)c->n_embd, V = (uint64_t)c->n_vocab, T = (uint64_t)c->n_ctx;
    uint64_t I = (uint64_t)c->n_inner;
    gpt2_weights *w = lw->w;
    float *p;
    p = take(lw, V, C); if (w) w->wte = p;
    p = take(lw, T, C); if (w) w->wpe = p;
    /* Counting only: every layer has the same aligned size, so measure one and multiply
     * (no loop over a possibly absurd n_layer). */
    int layers_to_walk = w ? c->n_layer : 1;
    uint64_t layer_start = lw->cursor;
    for (int l = 0; l < layers_to_walk && !lw->overflow; l++) {
        gpt2_layer_weights *L = w ? &w->layers[l] : NULL;
        p = take(lw, 1, C); if (L) L->ln1_w = p;
        p = take(lw, 1, C); if (L) L->ln1_b = p;
        p = take(lw, 3 * C, C); if (L) L->qkv_w = p;
        p = take(lw, 1, 3 * C); if (L) L->qkv_b = p;
        p = take(lw, C, C); if (L) L->attn_proj_w = p;
        p = take(lw, 1, C); if (L) L->attn_proj_b = p;
        p = take(lw, 1, C); if (L) L->ln2_w = p;
        p = take(lw, 1, C); if (L) L->ln2_b = p;
        p = take(lw, I, C); if (L) L->fc_w = p;
        p = take(lw, 1, I); if (L) L->fc_b = p;
        p = take(lw, C, I); if (L) L->mlp_proj_w = p;
        p = take(lw, 1, C); if (L) L->mlp_proj_b = p;
    }
    if (!w && !lw->overflow) {
        uint64_t per_layer = lw->cursor - layer_start, more = (uint64_t)c->n_layer - 1;
        if (per_layer != 0 && more > (UINT64_MAX - lw->cursor) / per_layer) lw->overflow = 1;
        else lw->cursor += per_layer * more;
    }
    p = take(lw, 1, C); if (w) w->lnf_w = p;
    p = take(lw, 1, C); if (w) w->lnf_b = p;
    if (untied) {
        p = take(lw, V, C); if (w) w->lm_head = p;
    } else if (w) {
        w->lm_head = w->wte;
    }
}

static int config_sizes_ok(const gpt2_config *c) {
    return c && c->n_layer > 0 && c->n_embd > 0 && c->n_ctx > 0 && c->n_vocab > 0 &&
           c->n_inner > 0 && c->n_head > 0;
}

/* Total floats of the arena; 0 on overflow or invalid config. */
static uint64_t arena_floats(const gpt2_config *c, int untied) {
    if (!config_sizes_ok(c)) return 0;
    layout_walk lw = {0, 0, NULL};
    walk_layout(&lw, c, untied);
    return lw.overflow ? 0 : lw.cursor;
}

uint64_t gpt2_weights_bytes_u64(const gpt2_config *config, int untied_head) {
    uint64_t floats = arena_floats(config, untied_head);
    if (floats == 0 || floats > (UINT64_MAX - 4096) / sizeof(float)) return UINT64_MAX;
    uint64_t layers = (uint64_t)config->n_layer * sizeof(gpt2_layer_weights);
    return floats * sizeof(float) + layers + sizeof(gpt2_weights);
}

size_t gpt2_weights_bytes(const gpt2_config *config, int untied_head) {
    uint64_t b = gpt2_weights_bytes_u64(config, untied_head);
    return b > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)b;
}

gpt2_err gpt2_weights_create(const gpt2_config *config, int untied_head, gpt2_weights **out,
                             gpt2_error *err) {
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_weights_create: out is NULL");
    *out = NULL;
    if (!config_sizes_ok(config))
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_weights_create: config has a non-positive size");
    uint64_t floats = arena_floats(config, untied_head);
    uint64_t total = gpt2_weights_bytes_u64(config, untied_head);
    if (floats == 0 || total == UINT64_MAX || total > (uint64_t)SIZE_MAX)
        return gpt2_fail(err, GPT2_ERR_NOMEM,
                         "the model's weights (%llu bytes) do not fit in this platform's memory",
                         (unsigned long long)total);
    gpt2_weights *w = calloc(1, sizeof *w);
    if (!w) goto nomem;
    w->config = *config;
    w->layers = calloc((size_t)config->n_layer, sizeof *w->layers);
    /* calloc: the pages of a fresh large block are zero without being touched */
    w->arena = calloc((size_t)floats, sizeof(float));
    if (!w->layers || !w->arena) goto nomem;
    w->arena_floats = (size_t)floats;
    layout_walk lw = {0, 0, w};
    walk_layout(&lw, config, untied_head);
    *out = w;
    return GPT2_OK;
nomem:
    gpt2_weights_free(w);
    return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory allocating %llu bytes of weights",
                     (unsigned long long)total);
}

void gpt2_weights_free(gpt2_weights *w) {
    if (!w) return;
    free(w->arena);
    free(w->layers);
    free(w);
}
