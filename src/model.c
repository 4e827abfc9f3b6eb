/* model.c - GPT-2 forward pass (see model.h), readable top to bottom.
 *
 * Per block, for the rows t of the current step (positions p = pos + t):
 *   a   = LayerNorm_1(x)
 *   q|k|v = a Wqkv^T + bqkv            (k, v appended to the cache at p)
 *   y_h = softmax(q_h K_h^T / sqrt(d) over cache rows 0..p) V_h   for each head h
 *   x  += y Wproj^T + bproj
 *   m   = gelu_new(LayerNorm_2(x) Wfc^T + bfc)
 *   x  += m Wmproj^T + bmproj
 * then logits = LayerNorm_f(x) Wte^T (tied head).
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"

struct gpt2_state {
    const gpt2_weights *w;
    int pos;        /* tokens in the cache */
    int max_batch;  /* rows per internal step */
    float *k_cache; /* [n_layer][n_ctx][C] */
    float *v_cache; /* [n_layer][n_ctx][C] */
    /* scratch, rows = max_batch */
    float *x;       /* [B][C] residual stream */
    float *a;       /* [B][C] layer-norm output / attention output */
    float *qkv;     /* [B][3C] */
    float *h;       /* [B][n_inner] MLP hidden; also [B][C] projection output */
    float *att;     /* [n_ctx] attention scores of one head */
    void *act;      /* q8_0 activations of one product (k_q8_quantize_act) of the widest input */
    float *block;   /* the single allocation (all of the above) */
    gpt2_pool *pool; /* not owned; NULL = compute on the calling thread */
};

/* Float counts of the state's buffers; returns 0 on overflow. */
static size_t state_floats(const gpt2_config *c, int max_batch, size_t *cache_floats) {
    size_t C = (size_t)c->n_embd, B = (size_t)max_batch;
    size_t cache = (size_t)c->n_layer * (size_t)c->n_ctx * C;
    if (cache / C / (size_t)c->n_ctx != (size_t)c->n_layer) return 0;
    size_t wide = (size_t)c->n_inner > C ? (size_t)c->n_inner : C;
    size_t scratch = B * (C + C + 3 * C + wide) + (size_t)c->n_ctx;
    if (cache_floats) *cache_floats = cache;
    if (SIZE_MAX / sizeof(float) / 4 < cache || SIZE_MAX / sizeof(float) / 4 < scratch) return 0;
    return 2 * cache + scratch;
}

/* Bytes of the q8_0 activation buffer: max_batch rows of the widest product input. */
static size_t act_bytes(const gpt2_config *c, int max_batch) {
    int wide = c->n_inner > c->n_embd ? c->n_inner : c->n_embd;
    return k_q8_act_bytes(max_batch, wide);
}

size_t gpt2_state_bytes(const gpt2_config *config, int max_batch) {
    if (!config || max_batch < 1) return 0;
    size_t f = state_floats(config, max_batch, NULL);
    if (f == 0) return 0;
    return f * sizeof(float) + act_bytes(config, max_batch); /* the state's single allocation */
}

gpt2_err gpt2_state_create(const gpt2_weights *w, int max_batch, gpt2_state **out, gpt2_error *err) {
    if (!w || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_state_create: NULL argument");
    if (max_batch < 1) return gpt2_fail(err, GPT2_ERR_ARG, "max_batch must be >= 1, got %d", max_batch);
    *out = NULL;
    const gpt2_config *c = &w->config;
    size_t cache = 0, total = state_floats(c, max_batch, &cache);
    if (total == 0) return gpt2_fail(err, GPT2_ERR_NOMEM, "state size overflows");
    size_t bytes = total * sizeof(float) + act_bytes(c, max_batch);
    gpt2_state *s = calloc(1, sizeof *s);
    float *block = s ? malloc(bytes) : NULL;
    if (!block) {
        free(s);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate %zu bytes for the KV cache and scratch", bytes);
    }
    size_t C = (size_t)c->n_embd, B = (size_t)max_batch;
    size_t wide = (size_t)c->n_inner > C ? (size_t)c->n_inner : C;
    s->w = w;
    s->max_batch = max_batch;
    s->block = block;
    s->k_cache = block;
    s->v_cache = s->k_cache + cache;
    s->x = s->v_cache + cache;
    s->a = s->x + B * C;
    s->qkv = s->a + B * C;
    s->h = s->qkv + B * 3 * C;
    s->att = s->h + B * wide;
    s->act = s->att + c->n_ctx; /* float-aligned, as k_q8_quantize_act needs */
    *out = s;
    return GPT2_OK;
}

void gpt2_state_free(gpt2_state *s) {
    if (!s) return;
    free(s->block);
    free(s);
}

void gpt2_state_set_pool(gpt2_state *s, gpt2_pool *pool) {
    if (s) s->pool = pool;
}

int gpt2_state_pos(const gpt2_state *s) { return s ? s->pos : 0; }

gpt2_err gpt2_state_rewind(gpt2_state *s, int pos, gpt2_error *err) {
    if (!s) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_state_rewind: NULL state");
    if (pos < 0 || pos > s->pos)
        return gpt2_fail(err, GPT2_ERR_RANGE, "cannot rewind to position %d (state holds %d tokens)", pos,
                         s->pos);
    s->pos = pos; /* cache rows >= pos are overwritten by later tokens */
    return GPT2_OK;
}

/* A matrix product split by output rows over the thread pool (the state's, else the
 * weights'). For q8_0 weights the activations are quantized once, here, into the state's
 * buffer, and shared by the threads. */
typedef struct matmul_job {
    float *out;
    const float *x;
    const void *act; /* q8_0: x quantized by k_q8_quantize_act, or NULL */
    const gpt2_matrix *w;
    const float *b;
    int n, rows_per_task;
    int gelu; /* apply gelu_new to the outputs (each task to its own rows) */
} matmul_job;

static void matmul_task(void *ctx, int task) {
    const matmul_job *j = ctx;
    int o0 = task * j->rows_per_task;
    int o1 = o0 + j->rows_per_task < j->w->rows ? o0 + j->rows_per_task : j->w->rows;
    k_matmul_rows(j->out, j->x, j->act, j->w, j->b, j->n, o0, o1);
    if (j->gelu)
        for (int t = 0; t < j->n; t++) k_gelu(j->out + (size_t)t * j->w->rows + o0, o1 - o0);
}

/* out[n][w->rows] = x[n][w->cols] W^T + b, then gelu_new elementwise when gelu is set (in
 * the same tasks, so the threads share it too) */
static void matmul(gpt2_state *s, float *out, const float *x, const gpt2_matrix *w, const float *b, int n,
                   int gelu) {
    gpt2_pool *pool = s->pool ? s->pool : s->w->pool;
    int threads = gpt2_pool_threads(pool);
    void *act = w->type == GPT2_DTYPE_Q8_0 ? s->act : NULL; /* room for n <= max_batch rows of any input */
    if (act) k_q8_quantize_act(act, x, n, w->cols);
    if (threads <= 1) {
        k_matmul_rows(out, x, act, w, b, n, 0, w->rows);
        if (gelu) k_gelu(out, n * w->rows);
    } else {
        /* a few tasks per thread, each a multiple of 16 rows (whole packed tiles), so uneven
         * speeds even out */
        int tasks = 4 * threads;
        int per = (w->rows + tasks - 1) / tasks;
        per = (per + 15) / 16 * 16;
        matmul_job j = {out, x, act, w, b, n, per, gelu};
        gpt2_pool_run(pool, matmul_task, &j, (w->rows + per - 1) / per);
    }
}

/* Causal multi-head attention for rows t < n at positions pos + t, reading q from qkv
 * and keys/values from layer l's cache (already holding rows 0..pos+n-1). Writes [n][C].
 * Heads are independent: one pool task per head, each with its own scores buffer on the
 * stack (or s->att, on the calling thread, when the context is longer than that buffer).
 * Per head the tokens run innermost, so the head's cache rows stay in cache between them. */
enum { ATT_STACK_FLOATS = 2048 };

typedef struct attn_job {
    gpt2_state *s;
    int l, n;
    float *out;
} attn_job;

static void attention_head(const attn_job *job, int h, float *att) {
    const gpt2_state *s = job->s;
    const gpt2_config *c = &s->w->config;
    const int C = c->n_embd, H = c->n_head, D = C / H;
    const float scale = 1.0f / sqrtf((float)D);
    const float *kc = s->k_cache + (size_t)job->l * c->n_ctx * C + (size_t)h * D;
    const float *vc = s->v_cache + (size_t)job->l * c->n_ctx * C + (size_t)h * D;
    for (int t = 0; t < job->n; t++) {
        int p = s->pos + t; /* attends to cache rows 0..p */
        const float *q = s->qkv + (size_t)t * 3 * C + (size_t)h * D;
        k_attn_scores(att, q, kc, C, p + 1, D, scale);
        k_softmax(att, p + 1);
        k_attn_values(job->out + (size_t)t * C + (size_t)h * D, att, vc, C, p + 1, D);
    }
}

static void attention_task(void *ctx, int h) {
    float att[ATT_STACK_FLOATS];
    attention_head(ctx, h, att);
}

static void attention(gpt2_state *s, int l, int n, float *out) {
    const gpt2_config *c = &s->w->config;
    gpt2_pool *pool = s->pool ? s->pool : s->w->pool;
    attn_job job = {s, l, n, out};
    if (gpt2_pool_threads(pool) > 1 && c->n_ctx <= ATT_STACK_FLOATS) {
        gpt2_pool_run(pool, attention_task, &job, c->n_head);
        return;
    }
    for (int h = 0; h < c->n_head; h++) attention_head(&job, h, s->att);
}

/* ---- the per-row steps of the forward pass ---- */

/* x[t] = wte[tokens[t]] + wpe[pos + t] for t < n */
static void embed(gpt2_state *s, const int32_t *tokens, int n) {
    const gpt2_weights *w = s->w;
    const int C = w->config.n_embd;
    for (int t = 0; t < n; t++) {
        float *x = s->x + (size_t)t * C;
        k_matrix_row(x, &w->wte, tokens[t]);
        k_add(x, w->wpe + (size_t)(s->pos + t) * C, C);
    }
}

/* out[t] = LayerNorm(x[t]; g, b) for the n rows of C floats at x */
static void layernorm_rows(const gpt2_state *s, float *out, const float *x, const float *g, const float *b, int n) {
    const gpt2_config *c = &s->w->config;
    for (int t = 0; t < n; t++)
        k_layernorm(out + (size_t)t * c->n_embd, x + (size_t)t * c->n_embd, g, b, c->n_embd, c->ln_eps);
}

/* The keys and values of rows t < n of s->qkv into layer l's cache at positions pos + t. */
static void cache_store(gpt2_state *s, int l, int n) {
    const gpt2_config *c = &s->w->config;
    const size_t C = (size_t)c->n_embd;
    for (int t = 0; t < n; t++) {
        const float *row = s->qkv + (size_t)t * 3 * C;
        size_t at = ((size_t)l * c->n_ctx + (size_t)(s->pos + t)) * C;
        memcpy(s->k_cache + at, row + C, C * sizeof(float));
        memcpy(s->v_cache + at, row + 2 * C, C * sizeof(float));
    }
}

/* One step of at most max_batch tokens; logits as in gpt2_forward for these rows. */
static void forward_step(gpt2_state *s, const int32_t *tokens, int n, float *logits, int all_logits) {
    const gpt2_weights *w = s->w;
    const int C = w->config.n_embd;

    embed(s, tokens, n);
    for (int l = 0; l < w->config.n_layer; l++) {
        const gpt2_layer_weights *L = &w->layers[l];
        layernorm_rows(s, s->a, s->x, L->ln1_w, L->ln1_b, n);
        matmul(s, s->qkv, s->a, &L->qkv_w, L->qkv_b, n, 0);
        cache_store(s, l, n);
        attention(s, l, n, s->a);
        matmul(s, s->h, s->a, &L->attn_proj_w, L->attn_proj_b, n, 0);
        k_add(s->x, s->h, n * C);

        layernorm_rows(s, s->a, s->x, L->ln2_w, L->ln2_b, n);
        matmul(s, s->h, s->a, &L->fc_w, L->fc_b, n, 1); /* with gelu_new */
        matmul(s, s->a, s->h, &L->mlp_proj_w, L->mlp_proj_b, n, 0); /* s->a is free again */
        k_add(s->x, s->a, n * C);
    }

    if (logits) { /* all rows, or the last */
        const size_t first = all_logits ? 0 : (size_t)(n - 1) * C;
        layernorm_rows(s, s->a + first, s->x + first, w->lnf_w, w->lnf_b, all_logits ? n : 1);
        matmul(s, logits, s->a + first, &w->lm_head, NULL, all_logits ? n : 1, 0);
    }
    s->pos += n;
}

gpt2_err gpt2_forward(gpt2_state *s, const int32_t *tokens, int n, float *logits, int all_logits,
                      gpt2_error *err) {
    if (!s || (!tokens && n > 0)) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_forward: NULL argument");
    const gpt2_config *c = &s->w->config;
    if (n < 1) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_forward: no tokens");
    if (n > c->n_ctx - s->pos)
        return gpt2_fail(err, GPT2_ERR_RANGE, "%d tokens do not fit: %d of the context's %d positions are used",
                         n, s->pos, c->n_ctx);
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->n_vocab)
            return gpt2_fail(err, GPT2_ERR_RANGE, "token id %d at index %d is outside the vocabulary [0, %d)",
                             (int)tokens[t], t, c->n_vocab);
    for (int done = 0; done < n;) {
        int step = n - done < s->max_batch ? n - done : s->max_batch;
        int last = done + step == n;
        float *out = NULL;
        if (logits && all_logits) out = logits + (size_t)done * c->n_vocab;
        else if (logits && last) out = logits;
        forward_step(s, tokens + done, step, out, all_logits);
        done += step;
    }
    return GPT2_OK;
}

/* ---- gpt2_state_clone (sessions: fork a KV cache) ---- */

gpt2_err gpt2_state_clone(const gpt2_state *src, gpt2_state **out, gpt2_error *err) {
    if (!src || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_state_clone: NULL argument");
    *out = NULL;
    gpt2_state *s = NULL;
    gpt2_err rc = gpt2_state_create(src->w, src->max_batch, &s, err);
    if (rc != GPT2_OK) return rc;
    const gpt2_config *c = &src->w->config;
    size_t C = (size_t)c->n_embd, rows = (size_t)src->pos * C, layer = (size_t)c->n_ctx * C;
    for (int l = 0; l < c->n_layer; l++) { /* only the rows in use, layer by layer */
        memcpy(s->k_cache + (size_t)l * layer, src->k_cache + (size_t)l * layer, rows * sizeof(float));
        memcpy(s->v_cache + (size_t)l * layer, src->v_cache + (size_t)l * layer, rows * sizeof(float));
    }
    s->pos = src->pos;
    s->pool = src->pool;
    *out = s;
    return GPT2_OK;
}
