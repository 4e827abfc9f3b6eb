/* weights.c - allocation of the model parameters in pieces (see weights.h). */
#include "weights.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model.h"

#define ALIGN_BYTES 64u /* every tensor starts at a multiple of 64 bytes into its piece */

/* Walks the layout of one piece in order, counting bytes in cursor. When base is non-NULL,
 * also returns each tensor's place in it. */
typedef struct layout_walk {
    uint64_t cursor; /* bytes used so far */
    int overflow;
    uint8_t *base;   /* NULL: count only */
} layout_walk;

static uint8_t *take_bytes(layout_walk *lw, uint64_t n) {
    if (lw->overflow) return NULL;
    uint64_t start = lw->cursor;
    if (n == UINT64_MAX || n > UINT64_MAX - start - ALIGN_BYTES) {
        lw->overflow = 1;
        return NULL;
    }
    uint64_t end = start + n;
    end = (end + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES;
    lw->cursor = end;
    /* the padding is zero even in weights whose bytes are otherwise left unset
     * (gpt2_weights_alloc_plan): pieces are compared and copied whole */
    if (lw->base) memset(lw->base + start + n, 0, (size_t)(end - start - n));
    return lw->base ? lw->base + start : NULL;
}

static float *take_floats(layout_walk *lw, uint64_t a, uint64_t b) {
    if (b != 0 && a > UINT64_MAX / 4 / b) {
        lw->overflow = 1;
        return NULL;
    }
    return (float *)(void *)take_bytes(lw, a * b * 4);
}

static void take_matrix(layout_walk *lw, gpt2_matrix *m, gpt2_dtype t, uint64_t rows, uint64_t cols) {
    if (lw->overflow) return;
    if (rows > INT32_MAX || cols > INT32_MAX || (cols && rows > UINT64_MAX / 8 / cols)) {
        lw->overflow = 1;
        return;
    }
    uint64_t data_bytes = gpt2_matrix_bytes(t, rows, cols); /* packed: q8_0 scales included */
    if (data_bytes == UINT64_MAX) {
        lw->overflow = 1;
        return;
    }
    uint8_t *data = take_bytes(lw, data_bytes);
    if (m) {
        m->type = t;
        m->rows = (int)rows;
        m->cols = (int)cols;
        m->data = data;
    }
}

/* Piece 0: wte, wpe, ln_f (w NULL: count only). */
static void walk_globals(layout_walk *lw, const gpt2_config *c, const gpt2_weights_plan *p, gpt2_weights *w) {
    uint64_t C = (uint64_t)c->n_embd, V = (uint64_t)c->n_vocab, T = (uint64_t)c->n_ctx;
    float *f;
    take_matrix(lw, w ? &w->wte : NULL, p->dtype[GPT2_MAT_WTE], V, C);
    f = take_floats(lw, T, C); if (w) w->wpe = f;
    f = take_floats(lw, 1, C); if (w) w->lnf_w = f;
    f = take_floats(lw, 1, C); if (w) w->lnf_b = f;
}

/* One layer's piece (L NULL: count only). */
static void walk_layer(layout_walk *lw, const gpt2_config *c, const gpt2_weights_plan *p, gpt2_layer_weights *L) {
    uint64_t C = (uint64_t)c->n_embd, I = (uint64_t)c->n_inner;
    float *f;
    f = take_floats(lw, 1, C); if (L) L->ln1_w = f;
    f = take_floats(lw, 1, C); if (L) L->ln1_b = f;
    take_matrix(lw, L ? &L->qkv_w : NULL, p->dtype[GPT2_MAT_QKV], 3 * C, C);
    f = take_floats(lw, 1, 3 * C); if (L) L->qkv_b = f;
    take_matrix(lw, L ? &L->attn_proj_w : NULL, p->dtype[GPT2_MAT_ATTN_PROJ], C, C);
    f = take_floats(lw, 1, C); if (L) L->attn_proj_b = f;
    f = take_floats(lw, 1, C); if (L) L->ln2_w = f;
    f = take_floats(lw, 1, C); if (L) L->ln2_b = f;
    take_matrix(lw, L ? &L->fc_w : NULL, p->dtype[GPT2_MAT_FC], I, C);
    f = take_floats(lw, 1, I); if (L) L->fc_b = f;
    take_matrix(lw, L ? &L->mlp_proj_w : NULL, p->dtype[GPT2_MAT_MLP_PROJ], C, I);
    f = take_floats(lw, 1, C); if (L) L->mlp_proj_b = f;
}

/* The untied head's piece (w NULL: count only). */
static void walk_head(layout_walk *lw, const gpt2_config *c, const gpt2_weights_plan *p, gpt2_weights *w) {
    take_matrix(lw, w ? &w->lm_head : NULL, p->dtype[GPT2_MAT_LM_HEAD], (uint64_t)c->n_vocab, (uint64_t)c->n_embd);
}

static int config_sizes_ok(const gpt2_config *c) {
    return c && c->n_layer > 0 && c->n_embd > 0 && c->n_ctx > 0 && c->n_vocab > 0 &&
           c->n_inner > 0 && c->n_head > 0;
}

void gpt2_matrix_kind_shape(const gpt2_config *c, gpt2_matrix_kind k, int *rows, int *cols) {
    int C = c->n_embd, I = c->n_inner;
    switch (k) {
    case GPT2_MAT_WTE: case GPT2_MAT_LM_HEAD: *rows = c->n_vocab; *cols = C; return;
    case GPT2_MAT_QKV: *rows = C <= INT32_MAX / 3 ? 3 * C : INT32_MAX; *cols = C; return;
    case GPT2_MAT_ATTN_PROJ: *rows = C; *cols = C; return;
    case GPT2_MAT_FC: *rows = I; *cols = C; return;
    case GPT2_MAT_MLP_PROJ: *rows = C; *cols = I; return;
    case GPT2_MAT_KINDS: break;
    }
    *rows = *cols = 0;
}

const char *gpt2_matrix_kind_name(gpt2_matrix_kind k) {
    static const char *const names[GPT2_MAT_KINDS] = {"wte", "lm_head", "qkv", "attn_proj", "fc", "mlp_proj"};
    return (unsigned)k < GPT2_MAT_KINDS ? names[k] : "?";
}

gpt2_weights_plan gpt2_weights_plan_uniform(const gpt2_config *config, int untied_head, gpt2_dtype t) {
    gpt2_weights_plan p;
    p.untied_head = untied_head;
    for (int k = 0; k < GPT2_MAT_KINDS; k++) {
        p.dtype[k] = t;
        if (t == GPT2_DTYPE_Q8_0 && config) {
            int rows, cols;
            gpt2_matrix_kind_shape(config, (gpt2_matrix_kind)k, &rows, &cols);
            if (cols % GPT2_Q8_BLOCK) p.dtype[k] = GPT2_DTYPE_F16;
        }
    }
    return p;
}

static int plan_ok(const gpt2_config *c, const gpt2_weights_plan *p) {
    for (int k = 0; k < GPT2_MAT_KINDS; k++) {
        if (p->dtype[k] != GPT2_DTYPE_F32 && p->dtype[k] != GPT2_DTYPE_F16 && p->dtype[k] != GPT2_DTYPE_Q8_0)
            return 0;
        int rows, cols;
        gpt2_matrix_kind_shape(c, (gpt2_matrix_kind)k, &rows, &cols);
        if (p->dtype[k] == GPT2_DTYPE_Q8_0 && cols % GPT2_Q8_BLOCK) return 0;
    }
    return 1;
}

int gpt2_weights_layout_of(const gpt2_config *c, const gpt2_weights_plan *p, gpt2_weights_layout *out) {
    if (!config_sizes_ok(c) || !p || !plan_ok(c, p) || !out) return -1;
    layout_walk g = {0, 0, NULL}, l = {0, 0, NULL}, h = {0, 0, NULL};
    walk_globals(&g, c, p, NULL);
    walk_layer(&l, c, p, NULL);
    if (p->untied_head) walk_head(&h, c, p, NULL);
    if (g.overflow || l.overflow || h.overflow) return -1;
    if (g.cursor > GPT2_MAX_ALLOC || l.cursor > GPT2_MAX_ALLOC || h.cursor > GPT2_MAX_ALLOC) return -1;
    out->globals_bytes = g.cursor;
    out->layer_bytes = l.cursor;
    out->head_bytes = h.cursor;
    out->n_pieces = 1 + c->n_layer + (p->untied_head ? 1 : 0);
    return c->n_layer < INT32_MAX - 1 ? 0 : -1;
}

uint64_t gpt2_weights_plan_bytes(const gpt2_config *config, const gpt2_weights_plan *plan) {
    gpt2_weights_layout lay;
    if (gpt2_weights_layout_of(config, plan, &lay)) return UINT64_MAX;
    uint64_t L = (uint64_t)config->n_layer; /* < 2^31: every sum below stays far from 2^64 */
    if (lay.layer_bytes > (UINT64_MAX / 4) / L) return UINT64_MAX;
    uint64_t pieces = lay.globals_bytes + L * lay.layer_bytes + lay.head_bytes;
    /* allocations: the struct, the layer table, the piece table, and the pieces */
    uint64_t allocs = 3 + (uint64_t)lay.n_pieces;
    uint64_t book = sizeof(gpt2_weights) + L * sizeof(gpt2_layer_weights) +
                    (uint64_t)lay.n_pieces * sizeof(gpt2_weights_piece) + allocs * GPT2_ALLOC_OVERHEAD;
    return pieces > UINT64_MAX / 2 ? UINT64_MAX : pieces + book;
}

uint64_t gpt2_weights_bytes_dtype(const gpt2_config *config, int untied_head, gpt2_dtype t) {
    gpt2_weights_plan p = gpt2_weights_plan_uniform(config, untied_head, t);
    return gpt2_weights_plan_bytes(config, &p);
}

uint64_t gpt2_weights_bytes_u64(const gpt2_config *config, int untied_head) {
    return gpt2_weights_bytes_dtype(config, untied_head, GPT2_DTYPE_F32);
}

size_t gpt2_weights_bytes(const gpt2_config *config, int untied_head) {
    uint64_t b = gpt2_weights_bytes_u64(config, untied_head);
    return b > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)b;
}

uint64_t gpt2_model_bytes(const gpt2_config *config, const gpt2_weights_plan *plan) {
    uint64_t w = gpt2_weights_plan_bytes(config, plan);
    if (w == UINT64_MAX) return UINT64_MAX;
    /* the state: model.c's own count, which is 0 when it overflows size_t */
    uint64_t state = gpt2_state_bytes(config, GPT2_ESTIMATE_BATCH);
    if (state == 0 || state > GPT2_MAX_ALLOC) return UINT64_MAX;
    /* sizes are positive and below 2^31 (config.h), so these products stay below 2^62 */
    uint64_t V = (uint64_t)config->n_vocab, C = (uint64_t)config->n_embd, I = (uint64_t)config->n_inner;
    uint64_t wide = I > C ? I : C;
    uint64_t work = GPT2_ESTIMATE_VOCAB_ROWS * V * 4 + GPT2_ESTIMATE_BAND_ROWS * wide * 4 + GPT2_ESTIMATE_WORK_BYTES;
    /* the state's allocations (struct, block, q8_0 buffer) */
    state += 3 * GPT2_ALLOC_OVERHEAD;
    if (w > UINT64_MAX / 4 || state > UINT64_MAX / 4) return UINT64_MAX;
    return w + state + work;
}

static gpt2_err create_plan(const gpt2_config *config, const gpt2_weights_plan *plan, int zeroed,
                            gpt2_weights **out, gpt2_error *err) {
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_weights_create: out is NULL");
    *out = NULL;
    if (!config_sizes_ok(config))
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_weights_create: config has a non-positive size");
    if (!plan || !plan_ok(config, plan))
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_weights_create: bad storage plan (q8_0 needs cols %% 32 == 0)");
    gpt2_weights_layout lay;
    uint64_t total = gpt2_weights_plan_bytes(config, plan);
    if (gpt2_weights_layout_of(config, plan, &lay) || total == UINT64_MAX || total > (uint64_t)SIZE_MAX)
        return gpt2_fail(err, GPT2_ERR_NOMEM,
                         "the model's weights (%llu bytes) do not fit in this platform's memory",
                         (unsigned long long)total);
    gpt2_weights *w = calloc(1, sizeof *w);
    if (!w) goto nomem;
    w->config = *config;
    w->plan = *plan;
    w->tied_head = !plan->untied_head;
    w->layers = calloc((size_t)config->n_layer, sizeof *w->layers);
    w->pieces = calloc((size_t)lay.n_pieces, sizeof *w->pieces);
    if (!w->layers || !w->pieces) goto nomem;
    w->n_pieces = lay.n_pieces;
    for (int i = 0; i < lay.n_pieces; i++) {
        uint64_t n = i == 0 ? lay.globals_bytes : i <= config->n_layer ? lay.layer_bytes : lay.head_bytes;
        /* calloc: natively the pages of a fresh large block are zero without being touched,
         * but WebAssembly's malloc clears them (a pass over all the memory); a caller that
         * writes every byte (the loader) skips that */
        w->pieces[i].data = zeroed ? calloc((size_t)n, 1) : malloc((size_t)n);
        if (!w->pieces[i].data) goto nomem;
        w->pieces[i].bytes = (size_t)n;
        w->arena_bytes += (size_t)n;
    }
    layout_walk lw = {0, 0, w->pieces[0].data};
    walk_globals(&lw, config, plan, w);
    for (int l = 0; l < config->n_layer; l++) {
        layout_walk ll = {0, 0, w->pieces[1 + l].data};
        walk_layer(&ll, config, plan, &w->layers[l]);
    }
    if (plan->untied_head) {
        layout_walk lh = {0, 0, w->pieces[1 + config->n_layer].data};
        walk_head(&lh, config, plan, w);
    } else {
        w->lm_head = w->wte;
    }
    uint64_t C = (uint64_t)config->n_embd, V = (uint64_t)config->n_vocab, I = (uint64_t)config->n_inner;
    uint64_t per_layer = 4 * C + 3 * C * C + 3 * C + C * C + C + I * C + I + C * I + C;
    w->n_params = V * C * (plan->untied_head ? 2 : 1) + (uint64_t)config->n_ctx * C +
                  (uint64_t)config->n_layer * per_layer + 2 * C;
    *out = w;
    return GPT2_OK;
nomem:
    gpt2_weights_free(w);
    return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory allocating %llu bytes of weights",
                     (unsigned long long)total);
}

gpt2_err gpt2_weights_create_plan(const gpt2_config *config, const gpt2_weights_plan *plan,
                                  gpt2_weights **out, gpt2_error *err) {
    return create_plan(config, plan, 1, out, err);
}

gpt2_err gpt2_weights_alloc_plan(const gpt2_config *config, const gpt2_weights_plan *plan,
                                 gpt2_weights **out, gpt2_error *err) {
    return create_plan(config, plan, 0, out, err);
}

static void check_finite(gpt2_matrix *m) {
    if (m->type == GPT2_DTYPE_F16) m->finite = k_f16_all_finite(m->data, (size_t)m->rows * (size_t)m->cols);
}

void gpt2_weights_check_finite(gpt2_weights *w) {
    if (!w) return;
    check_finite(&w->wte);
    if (w->tied_head) w->lm_head = w->wte;
    else check_finite(&w->lm_head);
    for (int l = 0; l < w->config.n_layer; l++) {
        gpt2_layer_weights *L = &w->layers[l];
        check_finite(&L->qkv_w);
        check_finite(&L->attn_proj_w);
        check_finite(&L->fc_w);
        check_finite(&L->mlp_proj_w);
    }
}

gpt2_err gpt2_weights_create(const gpt2_config *config, int untied_head, gpt2_weights **out,
                             gpt2_error *err) {
    gpt2_weights_plan p = gpt2_weights_plan_uniform(config, untied_head, GPT2_DTYPE_F32);
    return gpt2_weights_create_plan(config, &p, out, err);
}

gpt2_dtype gpt2_weights_main_dtype(const gpt2_weights *w) {
    uint64_t per[3] = {0, 0, 0};
    for (int k = 0; k < GPT2_MAT_KINDS; k++) {
        if (k == GPT2_MAT_LM_HEAD && !w->plan.untied_head) continue;
        int rows, cols;
        gpt2_matrix_kind_shape(&w->config, (gpt2_matrix_kind)k, &rows, &cols);
        uint64_t n = (uint64_t)rows * (uint64_t)cols;
        if (k != GPT2_MAT_WTE && k != GPT2_MAT_LM_HEAD) n *= (uint64_t)w->config.n_layer;
        per[w->plan.dtype[k]] += n;
    }
    int best = 0;
    for (int t = 1; t < 3; t++)
        if (per[t] > per[best]) best = t;
    return (gpt2_dtype)best;
}

void gpt2_weights_free(gpt2_weights *w) {
    if (!w) return;
    for (int i = 0; w->pieces && i < w->n_pieces; i++) free(w->pieces[i].data);
    free(w->pieces);
    free(w->layers);
    free(w);
}
