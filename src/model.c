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
    float *block;   /* the single allocation */
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

size_t gpt2_state_bytes(const gpt2_config *config, int max_batch) {
    if (!config || max_batch < 1) return 0;
    return state_floats(config, max_batch, NULL) * sizeof(float);
}

gpt2_err gpt2_state_create(const gpt2_weights *w, int max_batch, gpt2_state **out, gpt2_error *err) {
    if (!w || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_state_create: NULL argument");
    if (max_batch < 1) return gpt2_fail(err, GPT2_ERR_ARG, "max_batch must be >= 1, got %d", max_batch);
    *out = NULL;
    const gpt2_config *c = &w->config;
    size_t cache = 0, total = state_floats(c, max_batch, &cache);
    if (total == 0) return gpt2_fail(err, GPT2_ERR_NOMEM, "state size overflows");
    gpt2_state *s = calloc(1, sizeof *s);
    float *block = s ? malloc(total * sizeof(float)) : NULL;
    if (!block) {
        free(s);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate %zu bytes for the KV cache and scratch",
                         total * sizeof(float));
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

/* A matrix product split by output rows over the state's thread pool. */
typedef struct matmul_job {
    float *out;
    const float *x;
    const gpt2_matrix *w;
    const float *b;
    int n, rows_per_task;
} matmul_job;

static void matmul_task(void *ctx, int task) {
    const matmul_job *j = ctx;
    int o0 = task * j->rows_per_task;
    int o1 = o0 + j->rows_per_task < j->w->rows ? o0 + j->rows_per_task : j->w->rows;
    k_matmul_rows(j->out, j->x, j->w, j->b, j->n, o0, o1);
}

/* out[n][w->rows] = x[n][w->cols] W^T + b */
static void matmul(gpt2_state *s, float *out, const float *x, const gpt2_matrix *w, const float *b, int n) {
    int threads = gpt2_pool_threads(s->pool);
    if (threads <= 1) {
        k_matmul_rows(out, x, w, b, n, 0, w->rows);
        return;
    }
    /* a few tasks per thread, each a multiple of 16 rows, so uneven speeds even out */
    int tasks = 4 * threads;
    int per = (w->rows + tasks - 1) / tasks;
    per = (per + 15) / 16 * 16;
    matmul_job j = {out, x, w, b, n, per};
    gpt2_pool_run(s->pool, matmul_task, &j, (w->rows + per - 1) / per);
}

/* Temporary view of a float32 weight array as a matrix. */
static gpt2_matrix f32_matrix(const float *w, int rows, int cols) {
    gpt2_matrix m = {GPT2_DTYPE_F32, rows, cols, w, NULL};
    return m;
}

/* Causal multi-head attention for rows t < n at positions pos + t, reading q from qkv
 * and keys/values from layer l's cache (already holding rows 0..pos+n-1). Writes [n][C]. */
static void attention(gpt2_state *s, int l, int n, float *out) {
    const gpt2_config *c = &s->w->config;
    const int C = c->n_embd, H = c->n_head, D = C / H;
    const float scale = 1.0f / sqrtf((float)D);
    const float *kc = s->k_cache + (size_t)l * c->n_ctx * C;
    const float *vc = s->v_cache + (size_t)l * c->n_ctx * C;
    for (int t = 0; t < n; t++) {
        int p = s->pos + t; /* attends to cache rows 0..p */
        for (int h = 0; h < H; h++) {
            const float *q = s->qkv + (size_t)t * 3 * C + (size_t)h * D;
            for (int j = 0; j <= p; j++) s->att[j] = k_dot(q, kc + (size_t)j * C + (size_t)h * D, D) * scale;
            k_softmax(s->att, p + 1);
            float *y = out + (size_t)t * C + (size_t)h * D;
            memset(y, 0, (size_t)D * sizeof(float));
            for (int j = 0; j <= p; j++) k_axpy(y, s->att[j], vc + (size_t)j * C + (size_t)h * D, D);
        }
    }
}

/* One step of at most max_batch tokens; logits as in gpt2_forward for these rows. */
static void forward_step(gpt2_state *s, const int32_t *tokens, int n, float *logits, int all_logits) {
    const gpt2_weights *w = s->w;
    const gpt2_config *c = &w->config;
    const int C = c->n_embd, F = c->n_inner;
    const size_t ctx_stride = (size_t)c->n_ctx * C;

    for (int t = 0; t < n; t++) {
        float *x = s->x + (size_t)t * C;
        const float *te = w->wte + (size_t)tokens[t] * C, *pe = w->wpe + (size_t)(s->pos + t) * C;
        for (int i = 0; i < C; i++) x[i] = te[i] + pe[i];
    }

    for (int l = 0; l < c->n_layer; l++) {
        const gpt2_layer_weights *L = &w->layers[l];
        for (int t = 0; t < n; t++)
            k_layernorm(s->a + (size_t)t * C, s->x + (size_t)t * C, L->ln1_w, L->ln1_b, C, c->ln_eps);
        gpt2_matrix qkv_w = f32_matrix(L->qkv_w, 3 * C, C), proj_w = f32_matrix(L->attn_proj_w, C, C),
                    fc_w = f32_matrix(L->fc_w, F, C), mproj_w = f32_matrix(L->mlp_proj_w, C, F);
        matmul(s, s->qkv, s->a, &qkv_w, L->qkv_b, n);
        for (int t = 0; t < n; t++) {
            const float *row = s->qkv + (size_t)t * 3 * C;
            size_t at = (size_t)l * ctx_stride + (size_t)(s->pos + t) * C;
            memcpy(s->k_cache + at, row + C, (size_t)C * sizeof(float));
            memcpy(s->v_cache + at, row + 2 * C, (size_t)C * sizeof(float));
        }
        attention(s, l, n, s->a);
        matmul(s, s->h, s->a, &proj_w, L->attn_proj_b, n);
        k_add(s->x, s->h, n * C);

        for (int t = 0; t < n; t++)
            k_layernorm(s->a + (size_t)t * C, s->x + (size_t)t * C, L->ln2_w, L->ln2_b, C, c->ln_eps);
        matmul(s, s->h, s->a, &fc_w, L->fc_b, n);
        k_gelu(s->h, n * F);
        /* s->a is free again: use it for the projection output */
        matmul(s, s->a, s->h, &mproj_w, L->mlp_proj_b, n);
        k_add(s->x, s->a, n * C);
    }

    if (logits) {
        int first = all_logits ? 0 : n - 1;
        for (int t = first; t < n; t++)
            k_layernorm(s->a + (size_t)t * C, s->x + (size_t)t * C, w->lnf_w, w->lnf_b, C, c->ln_eps);
        gpt2_matrix head = f32_matrix(w->lm_head, c->n_vocab, C);
        matmul(s, logits, s->a + (size_t)first * C, &head, NULL, n - first);
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
