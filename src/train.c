/* train.c - see train.h. Forward with activations, backward, optimisers, data feeding.
 *
 * Why one file over 600 lines: like llm.c, each layer's backward pass sits beside its forward
 * pass, and both share the blocked products (packing, register tiles per target) whose summation
 * order the bit-identity of native, WASM and threaded training depends on. Split apart, the
 * forward/backward pairs and the one order they share would have to be read in several files.
 * Saving and resuming live in train_io.c. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "kernels.h"
#include "pool.h"
#include "quantize.h"
#include "sampler.h"

/* Rows per task of the products (fixed, so the split never depends on the thread count). */
enum { ROW_BLOCK = 16 };

typedef struct layer_params { /* offsets into the param arrays */
    size_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, mp_w, mp_b;
} layer_params;

typedef struct layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *res2, *ln2, *ln2_mean, *ln2_rstd, *fch, *fchg, *res3;
} layer_acts;

struct gpt2_train {
    gpt2_config c;
    gpt2_train_options o;
    int untied;
    int B, T;
    size_t n_params;
    int n_tensors;
    gpt2_train_tensor *tensors;
    size_t wte, wpe, lnf_w, lnf_b, head;
    layer_params *lp;
    float *params, *grads, *m, *v;
    /* activations, N = B*T rows */
    int32_t *inputs, *targets;
    float *row_scale;            /* [N] weight / counted targets, or 0 for masked rows */
    float *encoded;              /* [N][C] */
    layer_acts *la;
    float *lnf, *lnf_mean, *lnf_rstd; /* [N][C], [N], [N] */
    float *probs;                /* [N][V]: logits, then probabilities, then their gradient */
    float *dres, *dA, *dqkv, *dh; /* backward scratch [N][C], [N][C], [N][3C], [N][I] */
    float *datt;                 /* [B*H][T] attention-backward scratch */
    float *losses;               /* [N] per-target loss (double precision reduced later) */
    void *block;                 /* one allocation for everything above but params, grads, m, v */
    int32_t *data;
    size_t n_data, n_windows;
    size_t *order;               /* [n_windows] */
    int64_t step;
    gpt2_pool *pool;
};

void gpt2_train_options_default(gpt2_train_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->batch = 4;
    o->seq = 64;
    o->grad_accum = 1;
    o->optimizer = GPT2_OPTIM_ADAMW;
    o->lr = 1e-4f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = 0.0f;
    o->grad_clip = 1.0f;
    o->schedule = GPT2_SCHEDULE_CONSTANT;
}

gpt2_err gpt2_train_options_check(const gpt2_train_options *o, const gpt2_config *c, gpt2_error *err) {
    if (!o || !c) return gpt2_fail(err, GPT2_ERR_ARG, "training options: NULL argument");
    if (o->batch < 1) return gpt2_fail(err, GPT2_ERR_ARG, "batch must be >= 1, got %d", o->batch);
    if (o->seq < 1 || o->seq > c->n_ctx)
        return gpt2_fail(err, GPT2_ERR_RANGE, "seq must be in 1..%d (the model's context), got %d", c->n_ctx,
                         o->seq);
    if (o->grad_accum < 1) return gpt2_fail(err, GPT2_ERR_ARG, "grad_accum must be >= 1, got %d", o->grad_accum);
    if (o->optimizer != GPT2_OPTIM_ADAMW && o->optimizer != GPT2_OPTIM_SGD)
        return gpt2_fail(err, GPT2_ERR_ARG, "unknown optimizer %d", (int)o->optimizer);
    if (!(o->lr > 0.0f) || !isfinite(o->lr))
        return gpt2_fail(err, GPT2_ERR_ARG, "lr must be a finite number > 0, got %g", (double)o->lr);
    if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f))
        return gpt2_fail(err, GPT2_ERR_ARG, "beta1 must be in [0, 1), got %g", (double)o->beta1);
    if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f))
        return gpt2_fail(err, GPT2_ERR_ARG, "beta2 must be in [0, 1), got %g", (double)o->beta2);
    if (!(o->eps > 0.0f) || !isfinite(o->eps))
        return gpt2_fail(err, GPT2_ERR_ARG, "eps must be a finite number > 0, got %g", (double)o->eps);
    if (!(o->weight_decay >= 0.0f) || !isfinite(o->weight_decay))
        return gpt2_fail(err, GPT2_ERR_ARG, "weight decay must be a finite number >= 0, got %g",
                         (double)o->weight_decay);
    if (!(o->grad_clip >= 0.0f) || !isfinite(o->grad_clip))
        return gpt2_fail(err, GPT2_ERR_ARG, "grad clip must be a finite number >= 0 (0 = off), got %g",
                         (double)o->grad_clip);
    if (o->warmup < 0) return gpt2_fail(err, GPT2_ERR_ARG, "warmup must be >= 0, got %d", o->warmup);
    if (o->schedule != GPT2_SCHEDULE_CONSTANT && o->schedule != GPT2_SCHEDULE_COSINE)
        return gpt2_fail(err, GPT2_ERR_ARG, "unknown schedule %d", (int)o->schedule);
    if (o->schedule == GPT2_SCHEDULE_COSINE && o->total_steps < 1)
        return gpt2_fail(err, GPT2_ERR_ARG, "a cosine schedule needs total_steps >= 1, got %d", o->total_steps);
    return GPT2_OK;
}

/* ---------------------------------------------------------------- platform-independent math
 * libm's tanhf, log, pow and cos round differently in glibc and in Emscripten's musl (measured),
 * so training uses these and gpt2_tanh (sampler.h, shared with the forward pass's gelu), built from IEEE +, -, *, / and sqrt only (and expf, which the forward
 * pass's softmax also uses and which agrees), so native and WASM results are bit-identical. */

/* log(x) for finite x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s),
 * s = (m-1)/(m+1), |s| <= 0.172, by its series to s^31 (error < 1e-17 relative) */
static double det_log(double x) {
    int e;
    double m = frexp(x, &e); /* exact: m in [0.5, 1) */
    if (m < 0.70710678118654752) {
        m *= 2.0;
        e--;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, term = s, sum = 0.0;
    for (int k = 1; k <= 31; k += 2) {
        sum += term / k;
        term *= s2;
    }
    return 2.0 * sum + e * 0.69314718055994530942;
}

/* b^n, n >= 0, by repeated squaring */
static double det_pow(double b, int64_t n) {
    double r = 1.0;
    while (n > 0) {
        if (n & 1) r *= b;
        b *= b;
        n >>= 1;
    }
    return r;
}

/* cos(x) for x in [0, pi]: Taylor series to x^28 on [0, pi/2], cos(x) = -cos(pi - x) above */
static double det_cos(double x) {
    const double pi = 3.14159265358979323846;
    double sign = 1.0;
    if (x > pi / 2) {
        x = pi - x;
        sign = -1.0;
    }
    double x2 = x * x, term = 1.0, sum = 0.0;
    for (int k = 0; k <= 14; k++) {
        sum += term;
        term *= -x2 / ((2 * k + 1) * (2 * k + 2));
    }
    return sign * sum;
}

/* ---------------------------------------------------------------- sizes */

static uint64_t params_of(const gpt2_config *c, int untied) {
    uint64_t C = (uint64_t)c->n_embd, I = (uint64_t)c->n_inner, V = (uint64_t)c->n_vocab;
    uint64_t layer = 4 * C + (3 * C * C + 3 * C) + (C * C + C) + (I * C + I) + (C * I + C);
    return V * C + (uint64_t)c->n_ctx * C + (uint64_t)c->n_layer * layer + 2 * C + (untied ? V * C : 0);
}

/* Floats of the activations and scratch for N = B*T rows. */
static uint64_t act_floats(const gpt2_config *c, uint64_t B, uint64_t T) {
    uint64_t C = (uint64_t)c->n_embd, I = (uint64_t)c->n_inner, V = (uint64_t)c->n_vocab, H = (uint64_t)c->n_head;
    uint64_t N = B * T;
    uint64_t layer = N * C * 8 + 4 * N + 2 * N * I + B * H * T * T;
    return 3 * N /* ints and row scales */ + N * C + (uint64_t)c->n_layer * layer + N * C + 2 * N + N * V +
           N * C * 2 + N * 3 * C + N * I + B * H * T + N;
}

static int config_ok(const gpt2_config *c) {
    return c && c->n_layer > 0 && c->n_head > 0 && c->n_embd > 0 && c->n_embd % c->n_head == 0 && c->n_ctx > 0 &&
           c->n_vocab > 0 && c->n_inner > 0 && c->n_embd <= (1 << 20) && c->n_inner <= (1 << 22) &&
           c->n_vocab <= (1 << 24) && c->n_ctx <= (1 << 20) && c->n_layer <= 4096;
}

uint64_t gpt2_train_bytes(const gpt2_config *c, int untied, gpt2_optimizer opt, int batch, int seq) {
    if (!config_ok(c) || batch < 1 || seq < 1 || seq > c->n_ctx || batch > (1 << 20)) return UINT64_MAX;
    uint64_t P = params_of(c, untied);
    uint64_t arrays = opt == GPT2_OPTIM_ADAMW ? 4 : 2;
    uint64_t f = P * arrays + act_floats(c, (uint64_t)batch, (uint64_t)seq);
    uint64_t tensors = (uint64_t)(4 + 12 * c->n_layer + 1) * sizeof(gpt2_train_tensor);
    uint64_t extra = tensors + (uint64_t)c->n_layer * (sizeof(layer_params) + sizeof(layer_acts)) + 64 * 64;
    if (f > UINT64_MAX / 8) return UINT64_MAX;
    return f * 4 + extra;
}

/* ---------------------------------------------------------------- create */

static void add_tensor(gpt2_train_tensor *tab, int *n, const char *name, int rows, int cols, int decay, int conv1d,
                       size_t *off) {
    gpt2_train_tensor *x = &tab[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->rows = rows;
    x->cols = cols;
    x->offset = *off;
    x->decay = decay;
    x->conv1d = conv1d;
    *off += (size_t)rows * (size_t)cols;
}

int gpt2_train_tensor_table(const gpt2_config *c, int untied, gpt2_train_tensor *tab) {
    if (!config_ok(c)) return 0;
    if (!tab) return 4 + 12 * c->n_layer + (untied ? 1 : 0);
    static const struct { const char *suffix; int rows, cols, decay, conv1d; } per_layer[12] = {
        /* rows, cols in units: 1 = n_embd, 3 = 3*n_embd, 4 = n_inner, 0 = a vector (rows 1) */
        {"ln_1.weight", 0, 1, 0, 0}, {"ln_1.bias", 0, 1, 0, 0},
        {"attn.c_attn.weight", 3, 1, 1, 1}, {"attn.c_attn.bias", 0, 3, 0, 0},
        {"attn.c_proj.weight", 1, 1, 1, 1}, {"attn.c_proj.bias", 0, 1, 0, 0},
        {"ln_2.weight", 0, 1, 0, 0}, {"ln_2.bias", 0, 1, 0, 0},
        {"mlp.c_fc.weight", 4, 1, 1, 1}, {"mlp.c_fc.bias", 0, 4, 0, 0},
        {"mlp.c_proj.weight", 1, 4, 1, 1}, {"mlp.c_proj.bias", 0, 1, 0, 0},
    };
    const int Cn = c->n_embd;
    const int unit[5] = {1, Cn, 0, 3 * Cn, c->n_inner};
    int n = 0;
    size_t off = 0;
    char name[48];
    add_tensor(tab, &n, "wte.weight", c->n_vocab, Cn, 1, 0, &off);
    add_tensor(tab, &n, "wpe.weight", c->n_ctx, Cn, 0, 0, &off);
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < 12; k++) {
            snprintf(name, sizeof name, "h.%d.%s", l, per_layer[k].suffix);
            add_tensor(tab, &n, name, unit[per_layer[k].rows], unit[per_layer[k].cols], per_layer[k].decay,
                       per_layer[k].conv1d, &off);
        }
    add_tensor(tab, &n, "ln_f.weight", 1, Cn, 0, 0, &off);
    add_tensor(tab, &n, "ln_f.bias", 1, Cn, 0, 0, &off);
    if (untied) add_tensor(tab, &n, "lm_head.weight", c->n_vocab, Cn, 1, 0, &off);
    return n;
}

void gpt2_weights_tensor(gpt2_weights *w, int i, const gpt2_matrix **m, float **f) {
    *m = NULL;
    *f = NULL;
    const int L = w->config.n_layer;
    if (i == 0) *m = &w->wte;
    else if (i == 1) *f = w->wpe;
    else if (i < 2 + 12 * L) {
        gpt2_layer_weights *W = &w->layers[(i - 2) / 12];
        switch ((i - 2) % 12) {
        case 0: *f = W->ln1_w; break;
        case 1: *f = W->ln1_b; break;
        case 2: *m = &W->qkv_w; break;
        case 3: *f = W->qkv_b; break;
        case 4: *m = &W->attn_proj_w; break;
        case 5: *f = W->attn_proj_b; break;
        case 6: *f = W->ln2_w; break;
        case 7: *f = W->ln2_b; break;
        case 8: *m = &W->fc_w; break;
        case 9: *f = W->fc_b; break;
        case 10: *m = &W->mlp_proj_w; break;
        default: *f = W->mlp_proj_b; break;
        }
    } else if (i == 2 + 12 * L) *f = w->lnf_w;
    else if (i == 3 + 12 * L) *f = w->lnf_b;
    else if (i == 4 + 12 * L && !w->tied_head) *m = &w->lm_head;
}

static void copy_matrix(float *dst, const gpt2_matrix *m) {
    for (int o = 0; o < m->rows; o++)
        for (int i = 0; i < m->cols; i++) dst[(size_t)o * m->cols + i] = gpt2_matrix_get(m, o, i);
}

static void *carve(char **p, size_t bytes) {
    void *r = *p;
    *p += (bytes + 63) / 64 * 64;
    return r;
}

gpt2_err gpt2_train_create(const gpt2_weights *w, const gpt2_train_options *o, uint64_t budget, gpt2_train **out,
                           gpt2_error *err) {
    if (!w || !o || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_create: NULL argument");
    *out = NULL;
    const gpt2_config *c = &w->config;
    gpt2_err rc = gpt2_train_options_check(o, c, err);
    if (rc != GPT2_OK) return rc;
    int untied = !w->tied_head;
    uint64_t need = gpt2_train_bytes(c, untied, o->optimizer, o->batch, o->seq);
    if (need == UINT64_MAX)
        return gpt2_fail(err, GPT2_ERR_NOMEM, "training state for batch %d x seq %d overflows", o->batch, o->seq);
    if (budget && need > budget) {
        /* what would fit: halve the batch, then the sequence */
        int b = o->batch, s = o->seq;
        while (gpt2_train_bytes(c, untied, o->optimizer, b, s) > budget && (b > 1 || s > 1)) {
            if (b > 1) b /= 2;
            else s /= 2;
        }
        if (gpt2_train_bytes(c, untied, o->optimizer, b, s) <= budget)
            return gpt2_fail(err, GPT2_ERR_NOMEM,
                             "training needs %.1f MB for batch %d x seq %d but the budget is %.1f MB; "
                             "batch %d x seq %d would fit",
                             need / 1e6, o->batch, o->seq, budget / 1e6, b, s);
        uint64_t sgd = gpt2_train_bytes(c, untied, GPT2_OPTIM_SGD, 1, 1);
        if (o->optimizer == GPT2_OPTIM_ADAMW && sgd <= budget)
            return gpt2_fail(err, GPT2_ERR_NOMEM,
                             "training needs %.1f MB for batch %d x seq %d but the budget is %.1f MB; even batch 1 x "
                             "seq 1 does not fit this model with AdamW (its two moments): the sgd optimizer at batch "
                             "1 x seq 1 would (%.1f MB), or use a smaller model",
                             need / 1e6, o->batch, o->seq, budget / 1e6, sgd / 1e6);
        return gpt2_fail(err, GPT2_ERR_NOMEM,
                         "training needs %.1f MB for batch %d x seq %d but the budget is %.1f MB; even batch 1 x "
                         "seq 1 does not fit this model: use a smaller model",
                         need / 1e6, o->batch, o->seq, budget / 1e6);
    }
    if (need > SIZE_MAX)
        return gpt2_fail(err, GPT2_ERR_NOMEM, "training needs %.1f MB for batch %d x seq %d: more than this build can address",
                         need / 1e6, o->batch, o->seq);
    /* Five allocations (the parameter arrays apart from the rest): none over 2 GB for the
     * GPT-2 sizes, which WebAssembly's allocator could not grow by in one step. */
    const size_t np = (size_t)params_of(c, untied), arrays = o->optimizer == GPT2_OPTIM_ADAMW ? 4 : 2;
    gpt2_train *t = calloc(1, sizeof *t);
    void *block = t ? calloc(1, (size_t)need - arrays * np * 4) : NULL;
    float *pa[4] = {NULL, NULL, NULL, NULL};
    int ok = block != NULL;
    for (size_t a = 0; ok && a < arrays; a++) ok = (pa[a] = calloc(np, 4)) != NULL;
    if (!ok) {
        for (int a = 0; a < 4; a++) free(pa[a]);
        free(block);
        free(t);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate %.1f MB for training", need / 1e6);
    }
    t->c = *c;
    t->o = *o;
    t->untied = untied;
    t->B = o->batch;
    t->T = o->seq;
    t->block = block;
    t->pool = w->pool;
    const size_t C = (size_t)c->n_embd, I = (size_t)c->n_inner, V = (size_t)c->n_vocab, L = (size_t)c->n_layer;
    const size_t H = (size_t)c->n_head, B = (size_t)t->B, T = (size_t)t->T, N = B * T;
    t->n_params = (size_t)params_of(c, untied);
    char *p = block;
    t->tensors = carve(&p, (4 + 12 * L + 1) * sizeof(gpt2_train_tensor));
    t->lp = carve(&p, L * sizeof(layer_params));
    t->la = carve(&p, L * sizeof(layer_acts));
    t->params = pa[0];
    t->grads = pa[1];
    t->m = pa[2];
    t->v = pa[3];
    t->inputs = carve(&p, N * 4);
    t->targets = carve(&p, N * 4);
    t->row_scale = carve(&p, N * 4);
    t->encoded = carve(&p, N * C * 4);
    for (size_t l = 0; l < L; l++) {
        layer_acts *a = &t->la[l];
        a->ln1 = carve(&p, N * C * 4);
        a->ln1_mean = carve(&p, N * 4);
        a->ln1_rstd = carve(&p, N * 4);
        a->qkv = carve(&p, N * 3 * C * 4);
        a->att = carve(&p, B * H * T * T * 4);
        a->atty = carve(&p, N * C * 4);
        a->res2 = carve(&p, N * C * 4);
        a->ln2 = carve(&p, N * C * 4);
        a->ln2_mean = carve(&p, N * 4);
        a->ln2_rstd = carve(&p, N * 4);
        a->fch = carve(&p, N * I * 4);
        a->fchg = carve(&p, N * I * 4);
        a->res3 = carve(&p, N * C * 4);
    }
    t->lnf = carve(&p, N * C * 4);
    t->lnf_mean = carve(&p, N * 4);
    t->lnf_rstd = carve(&p, N * 4);
    t->probs = carve(&p, N * V * 4);
    t->dres = carve(&p, N * C * 4);
    t->dA = carve(&p, N * C * 4);
    t->dqkv = carve(&p, N * 3 * C * 4);
    t->dh = carve(&p, N * I * 4);
    t->datt = carve(&p, B * H * T * 4);
    t->losses = carve(&p, N * 4);

    /* tensor table and parameter copy */
    t->n_tensors = gpt2_train_tensor_table(c, untied, t->tensors);
    for (int i = 0; i < t->n_tensors; i++) {
        const gpt2_train_tensor *x = &t->tensors[i];
        const gpt2_matrix *m = NULL;
        float *f = NULL;
        gpt2_weights_tensor((gpt2_weights *)(uintptr_t)w, i, &m, &f); /* only read here */
        if (m) copy_matrix(t->params + x->offset, m);
        else memcpy(t->params + x->offset, f, (size_t)x->rows * x->cols * 4);
    }
    t->wte = t->tensors[0].offset;
    t->wpe = t->tensors[1].offset;
    for (size_t l = 0; l < L; l++) {
        const gpt2_train_tensor *x = &t->tensors[2 + 12 * l];
        layer_params *q = &t->lp[l];
        size_t *fields[12] = {&q->ln1_w, &q->ln1_b, &q->qkv_w, &q->qkv_b, &q->proj_w, &q->proj_b,
                              &q->ln2_w, &q->ln2_b, &q->fc_w,  &q->fc_b,  &q->mp_w,   &q->mp_b};
        for (int k = 0; k < 12; k++) *fields[k] = x[k].offset;
    }
    t->lnf_w = t->tensors[2 + 12 * L].offset;
    t->lnf_b = t->tensors[3 + 12 * L].offset;
    t->head = untied ? t->tensors[4 + 12 * L].offset : t->wte;
    *out = t;
    return GPT2_OK;
}

void gpt2_train_free(gpt2_train *t) {
    if (!t) return;
    free(t->data);
    free(t->order);
    free(t->params);
    free(t->grads);
    free(t->m);
    free(t->v);
    free(t->block);
    free(t);
}

void gpt2_train_set_pool(gpt2_train *t, gpt2_pool *pool) {
    if (t) t->pool = pool;
}

int gpt2_train_tensor_count(const gpt2_train *t) { return t ? t->n_tensors : 0; }

const gpt2_train_tensor *gpt2_train_tensor_at(const gpt2_train *t, int i) {
    return t && i >= 0 && i < t->n_tensors ? &t->tensors[i] : NULL;
}

float *gpt2_train_array(gpt2_train *t, int which) {
    if (!t) return NULL;
    switch (which) {
    case 0: return t->params;
    case 1: return t->grads;
    case 2: return t->m;
    case 3: return t->v;
    }
    return NULL;
}

size_t gpt2_train_param_count(const gpt2_train *t) { return t ? t->n_params : 0; }
const gpt2_config *gpt2_train_config(const gpt2_train *t) { return t ? &t->c : NULL; }
int gpt2_train_tied_head(const gpt2_train *t) { return t ? !t->untied : 0; }
const gpt2_train_options *gpt2_train_options_of(const gpt2_train *t) { return t ? &t->o : NULL; }
int64_t gpt2_train_step_count(const gpt2_train *t) { return t ? t->step : 0; }
void gpt2_train_set_step_count(gpt2_train *t, int64_t step) {
    if (t && step >= 0) t->step = step;
}

/* ---------------------------------------------------------------- data */

static uint32_t pcg_bounded(gpt2_pcg32 *r, uint32_t n) {
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t x = gpt2_pcg32_next(r);
        if (x >= threshold) return x % n;
    }
}

gpt2_err gpt2_train_set_data(gpt2_train *t, const int32_t *ids, size_t n, gpt2_error *err) {
    if (!t || (!ids && n)) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_set_data: NULL argument");
    if (n == 0) return gpt2_fail(err, GPT2_ERR_ARG, "the training text is empty");
    if (n < (size_t)t->T + 1)
        return gpt2_fail(err, GPT2_ERR_ARG,
                         "the training text is shorter than one window: %zu tokens, seq %d needs at least %d", n,
                         t->T, t->T + 1);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->c.n_vocab)
            return gpt2_fail(err, GPT2_ERR_RANGE, "token id %d at index %zu is outside the vocabulary [0, %d)",
                             (int)ids[i], i, t->c.n_vocab);
    size_t nw = (n - 1) / (size_t)t->T;
    if (nw > UINT32_MAX) return gpt2_fail(err, GPT2_ERR_RANGE, "too many training windows (%zu)", nw);
    int32_t *data = malloc(n * sizeof *data);
    size_t *order = malloc(nw * sizeof *order);
    if (!data || !order) {
        free(data);
        free(order);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate the training data (%zu tokens)", n);
    }
    memcpy(data, ids, n * sizeof *data);
    for (size_t i = 0; i < nw; i++) order[i] = i;
    if (t->o.shuffle) {
        gpt2_pcg32 r;
        gpt2_pcg32_seed(&r, t->o.seed, GPT2_TRAIN_PCG_STREAM);
        for (size_t i = nw - 1; i >= 1; i--) {
            size_t j = pcg_bounded(&r, (uint32_t)(i + 1));
            size_t tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
    }
    free(t->data);
    free(t->order);
    t->data = data;
    t->order = order;
    t->n_data = n;
    t->n_windows = nw;
    return GPT2_OK;
}

size_t gpt2_train_windows(const gpt2_train *t) { return t ? t->n_windows : 0; }

size_t gpt2_train_window_of(const gpt2_train *t, int64_t step, int k, int b) {
    if (!t || !t->n_windows) return 0;
    uint64_t idx = ((uint64_t)step * (uint64_t)t->o.grad_accum + (uint64_t)k) * (uint64_t)t->B + (uint64_t)b;
    return t->order[idx % t->n_windows];
}

float gpt2_train_lr(const gpt2_train *t, int64_t s) {
    if (!t) return 0.0f;
    const gpt2_train_options *o = &t->o;
    if (s < o->warmup) return o->lr * (float)(s + 1) / (float)o->warmup;
    if (o->schedule == GPT2_SCHEDULE_COSINE) {
        double span = o->total_steps - o->warmup;
        double f = span > 0 ? (double)(s - o->warmup) / span : 1.0;
        if (f > 1.0) f = 1.0;
        return (float)(o->lr * 0.5 * (1.0 + det_cos(3.14159265358979323846 * f)));
    }
    return o->lr;
}

/* ---------------------------------------------------------------- parallel helpers */

typedef struct range_job {
    void (*fn)(void *ctx, int lo, int hi);
    void *ctx;
    int n, per;
} range_job;

static void range_task(void *c, int task) {
    const range_job *j = c;
    int lo = task * j->per, hi = lo + j->per < j->n ? lo + j->per : j->n;
    j->fn(j->ctx, lo, hi);
}

/* fn(ctx, lo, hi) over [0, n) in blocks of `block` (fixed: the same values whatever the thread
 * count, since every output is computed by exactly one call in a fixed order). */
static void parallel_for(gpt2_train *t, int n, int block, void (*fn)(void *, int, int), void *ctx) {
    if (n <= 0) return;
    if (gpt2_pool_threads(t->pool) <= 1) {
        fn(ctx, 0, n);
        return;
    }
    range_job j = {fn, ctx, n, block};
    gpt2_pool_run(t->pool, range_task, &j, (n + block - 1) / block);
}

/* ---- y[n][O] = x[n][I] W[O][I]^T + b (b may be NULL); split by output rows o */
typedef struct mm_job {
    float *y;
    const float *x, *W, *b, *dy;
    const float *xpack; /* x packed for the tiles (FWD_PACKED), or NULL */
    float *dx, *dW, *db;
    int n, O, I;
} mm_job;

/* ---- the backward products: out(m, j) += sum_k A(m, k) B[k][j], summed in order of k
 *
 * A(m, k) = A[m*am + k*ak] (so dy or its transpose without copying), B row-major [K][n].
 * Every element is one running float sum in order of k, started from out's value: the result
 * is the same whatever the tiling, the K-chunking (partial sums go through out exactly) or the
 * split between threads. The 4 x 16 tiles keep the sums in registers (GCC/clang vector types:
 * lane-wise IEEE multiplies and adds, so SSE/AVX and WASM SIMD round alike). */
typedef float v8 __attribute__((vector_size(32)));
/* the same vector read and written at any float address (no function takes or returns a v8:
 * without AVX, gcc warns that passing one by value changes the ABI, -Wpsabi) */
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
#define v8_load(p) (*(const v8u *)(const void *)(p))
#define v8_store(p, v) (*(v8u *)(void *)(p) = (v))

/* Tiles: GEMM_MT rows x GEMM_JT columns of sums in registers. Natively 8 x 16 (16 AVX registers
 * of sums, of the 32 that AVX-512VL gives; without AVX-512, 4 x 16), in WebAssembly 4 x 8 (its
 * 128-bit vectors: 8 registers of sums). Loop order per task: K in chunks of GEMM_KC, columns in
 * blocks of GEMM_JB (the KC x JB panel of B, 128 KB, stays in L2 while every row tile of the task
 * passes over it), then row tiles, then column tiles. The values do not depend on any of these. */
#if defined(__wasm__)
enum { GEMM_KC = 256, GEMM_MT = 4, GEMM_JT = 8, GEMM_JB = 128 };
#elif defined(__AVX512F__)
enum { GEMM_KC = 256, GEMM_MT = 8, GEMM_JT = 16, GEMM_JB = 128 };
#else
enum { GEMM_KC = 256, GEMM_MT = 4, GEMM_JT = 16, GEMM_JB = 128 };
#endif

typedef struct gemm_job {
    float *out;
    size_t ldo;
    const float *A;
    size_t am, ak;
    const float *B;
    size_t ldb;
    int n, K, zero; /* zero: out starts at 0 (else it is accumulated into) */
} gemm_job;

/* One full GEMM_MT x GEMM_JT tile over k in [k0, k1): o(r, j) += a[r*am + k*ak] * b[k*ldb + j]. */
static inline void gemm_tile(float *o, size_t ldo, const float *a, size_t am, size_t ak, const float *b,
                             size_t ldb, int k0, int k1) {
    enum { H = GEMM_JT / 8 };
    v8 c[GEMM_MT][H];
    for (int r = 0; r < GEMM_MT; r++)
        for (int h = 0; h < H; h++) c[r][h] = v8_load(o + (size_t)r * ldo + 8 * h);
    for (int k = k0; k < k1; k++) {
        const float *br = b + (size_t)k * ldb, *ar = a + (size_t)k * ak;
        v8 bv[H];
        for (int h = 0; h < H; h++) bv[h] = v8_load(br + 8 * h);
        for (int r = 0; r < GEMM_MT; r++) {
            const float s = ar[(size_t)r * am];
            for (int h = 0; h < H; h++) c[r][h] += bv[h] * s;
        }
    }
    for (int r = 0; r < GEMM_MT; r++)
        for (int h = 0; h < H; h++) v8_store(o + (size_t)r * ldo + 8 * h, c[r][h]);
}

/* The tile over packed panels (a as [k][GEMM_MT], b as [k][GEMM_JT]), k in [0, nk): the same sums
 * in the same order as gemm_tile. In WebAssembly, walked by two pointers (each load an immediate
 * offset from them) and not unrolled: V8 then keeps the loop to its loads, products and one
 * interrupt check, and every vector in a register. Unrolled by clang (2 or 4 values of k per
 * iteration, with their loads scheduled together) V8 spilled sums to the stack, and with indices
 * it recomputed each address: both slower (measured on the 124M shapes, 20.8 GMAC/s here against
 * 18.9 for the indexed tile clang unrolled by 4, 16.5 unrolled by 2, 14.5 by 4). */
#if defined(__wasm__)
static inline void gemm_tile_packed(float *o, size_t ldo, const float *a, const float *b, int nk) {
    enum { H = GEMM_JT / 8 };
    v8 c[GEMM_MT][H];
    for (int r = 0; r < GEMM_MT; r++)
        for (int h = 0; h < H; h++) c[r][h] = v8_load(o + (size_t)r * ldo + 8 * h);
    const float *const b_end = b + (size_t)nk * GEMM_JT;
    _Pragma("clang loop unroll(disable)")
    for (; b < b_end; a += GEMM_MT, b += GEMM_JT) {
        v8 bv[H];
        for (int h = 0; h < H; h++) bv[h] = v8_load(b + 8 * h);
        for (int r = 0; r < GEMM_MT; r++)
            for (int h = 0; h < H; h++) c[r][h] += bv[h] * a[r];
    }
    for (int r = 0; r < GEMM_MT; r++)
        for (int h = 0; h < H; h++) v8_store(o + (size_t)r * ldo + 8 * h, c[r][h]);
}
#else
static inline void gemm_tile_packed(float *o, size_t ldo, const float *a, const float *b, int nk) {
    gemm_tile(o, ldo, a, 1, GEMM_MT, b, GEMM_JT, 0, nk);
}
#endif

/* Partial tiles: the same sums, one element at a time. */
static void gemm_edge(float *o, size_t ldo, const float *a, size_t am, size_t ak, const float *b, size_t ldb, int mn,
                      int jn, int k0, int k1) {
    for (int r = 0; r < mn; r++)
        for (int jj = 0; jj < jn; jj++) {
            float sum = o[(size_t)r * ldo + jj];
            for (int k = k0; k < k1; k++) sum += a[(size_t)r * am + (size_t)k * ak] * b[(size_t)k * ldb + jj];
            o[(size_t)r * ldo + jj] = sum;
        }
}

/* Each (K chunk, column block) panel of B is first copied into a buffer, one GEMM_JT-wide tile
 * after the other ([tile][k][GEMM_JT]), and each row tile's GEMM_MT x GEMM_KC slice of A as
 * [k][GEMM_MT]: the tiles then read both sequentially instead of with the strides of the
 * matrices (a few KB apart, which map onto a few cache sets). Copies only: the same values. If
 * the buffer cannot be allocated, the tiles read the matrices in place. */
static void gemm_rows(void *c, int m0, int m1) {
    const gemm_job *g = c;
    if (g->zero)
        for (int m = m0; m < m1; m++) memset(g->out + (size_t)m * g->ldo, 0, (size_t)g->n * sizeof(float));
    float *bp = malloc(((size_t)GEMM_KC * GEMM_JB + (size_t)GEMM_KC * GEMM_MT) * sizeof(float));
    float *ap = bp ? bp + (size_t)GEMM_KC * GEMM_JB : NULL;
    for (int k0 = 0; k0 < g->K; k0 += GEMM_KC) {
        const int k1 = k0 + GEMM_KC < g->K ? k0 + GEMM_KC : g->K, nk = k1 - k0;
        for (int jb = 0; jb < g->n; jb += GEMM_JB) {
            const int je = jb + GEMM_JB < g->n ? jb + GEMM_JB : g->n;
            const int jfull = jb + (je - jb) / GEMM_JT * GEMM_JT; /* end of the full column tiles */
            if (bp)
                for (int j = jb; j < jfull; j += GEMM_JT) {
                    float *dst = bp + (size_t)(j - jb) * nk;
                    for (int k = 0; k < nk; k++)
                        memcpy(dst + (size_t)k * GEMM_JT, g->B + (size_t)(k0 + k) * g->ldb + j, GEMM_JT * sizeof(float));
                }
            for (int m = m0; m < m1; m += GEMM_MT) {
                const int mn = m1 - m < GEMM_MT ? m1 - m : GEMM_MT;
                const float *a = g->A + (size_t)m * g->am;
                if (bp && mn == GEMM_MT && jfull > jb)
                    for (int k = 0; k < nk; k++)
                        for (int r = 0; r < GEMM_MT; r++)
                            ap[(size_t)k * GEMM_MT + r] = a[(size_t)r * g->am + (size_t)(k0 + k) * g->ak];
                for (int j = jb; j < je; j += GEMM_JT) {
                    float *o = g->out + (size_t)m * g->ldo + j;
                    if (j < jfull && mn == GEMM_MT) {
                        if (bp)
                            gemm_tile_packed(o, g->ldo, ap, bp + (size_t)(j - jb) * nk, nk);
                        else
                            gemm_tile(o, g->ldo, a, g->am, g->ak, g->B + j, g->ldb, k0, k1);
                    } else {
                        gemm_edge(o, g->ldo, a, g->am, g->ak, g->B + j, g->ldb, mn, je - j < GEMM_JT ? je - j : GEMM_JT,
                                  k0, k1);
                    }
                }
            }
        }
    }
    free(bp);
}

/* ---- the forward products: y[r][o] = b[o] + dot(x[r], W[o]) over I, split by o
 * Each dot: 8 lanes (lane l sums the products k = l mod 8 of the first I - I%8 in order), then
 * ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)), then the tail in order: the same value whatever the
 * tiling or the thread split. W in blocks of 32 rows. */
static inline float v8_hsum(const v8 *v) {
    const float *a = (const float *)v;
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

static float dot8(const float *a, const float *b, int K) {
    v8 acc = {0};
    int k = 0;
    for (; k + 8 <= K; k += 8) acc += v8_load(a + k) * v8_load(b + k);
    float s = v8_hsum(&acc);
    for (; k < K; k++) s += a[k] * b[k];
    return s;
}

/* Forward tiles: FWD_RT rows of x by FWD_OT rows of W (natively with AVX-512 4 x 4: 16 of its 32
 * registers hold sums; else, and in WebAssembly, 4 x 2). */
#if !defined(__wasm__) && defined(__AVX512F__)
enum { FWD_RT = 4, FWD_OT = 4 };
#else
enum { FWD_RT = 4, FWD_OT = 2 };
#endif

/* Keeps a loaded vector in a register: without it GCC reloads the W rows for every product,
 * twice the loads the tile needs (measured: the forward product ran at half the backward's rate).
 * An empty asm: no instruction, no change to any value. */
#if !defined(__wasm__) && defined(__GNUC__) && defined(__AVX__)
#define IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define IN_REGISTER(v) ((void)0)
#endif

#if defined(__wasm__)
/* One full tile, in WebAssembly. Its vectors hold 4 lanes, so each v8 sum is two halves (lanes
 * 0-3 and 4-7) that meet only in the final sum: one pass over k per half keeps FWD_RT x FWD_OT
 * 4-lane sums live instead of twice as many (16, more than V8 keeps in x86-64's 16 vector
 * registers: the sums went through memory, and the forward products ran at about half the
 * backward's rate). Every lane sums the same products in the same order as fwd_tile below. */
typedef float v4 __attribute__((vector_size(16)));
typedef float v4u __attribute__((vector_size(16), aligned(4), may_alias));
#define v4_load(p) (*(const v4u *)(const void *)(p))

/* Packed operands: the tile's FWD_RT rows of x as [h][k/8][r][4] (lanes 4h..4h+3 of each block
 * of 8, one after the other) and its FWD_OT rows of W as [h][k/8][o][4], each K8 = I & ~7 floats
 * per row. The loop over k then walks one pointer into each and every load is an immediate offset
 * from it (unpacked, V8 computed six addresses per block of k: on the 124M shapes 21.5-21.8
 * GMAC/s packed against 16.8-19.9). Copies only: the same values. */
enum { FWD_PACKED = 1 };

static void fwd_pack(float *dst, const float *src, int rows, int I) {
    const int K8 = I & ~7;
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < K8; k += 8)
            for (int r = 0; r < rows; r++)
                for (int l = 0; l < 4; l++)
                    dst[((size_t)h * (K8 / 8) + k / 8) * rows * 4 + (size_t)r * 4 + l] = src[(size_t)r * I + k + 4 * h + l];
}

static inline void fwd_tile(float *y, size_t ldy, const float *x, const float *w, const float *bias, int I,
                            const float *xt, const float *wt) {
    const int K8 = I & ~7, nb = K8 / 8;
    v4 half[2][FWD_RT][FWD_OT];
    for (int h = 0; h < 2; h++) {
        v4 acc[FWD_RT][FWD_OT];
        for (int r = 0; r < FWD_RT; r++)
            for (int o = 0; o < FWD_OT; o++) acc[r][o] = (v4){0};
        const float *xp = xt + (size_t)h * nb * FWD_RT * 4, *wp = wt + (size_t)h * nb * FWD_OT * 4;
        const float *const x_end = xp + (size_t)nb * FWD_RT * 4;
        _Pragma("clang loop unroll(disable)")
        for (; xp < x_end; xp += FWD_RT * 4, wp += FWD_OT * 4) {
            v4 wv[FWD_OT];
            for (int o = 0; o < FWD_OT; o++) wv[o] = v4_load(wp + 4 * o);
            for (int r = 0; r < FWD_RT; r++) {
                v4 xv = v4_load(xp + 4 * r);
                for (int o = 0; o < FWD_OT; o++) acc[r][o] += xv * wv[o];
            }
        }
        for (int r = 0; r < FWD_RT; r++)
            for (int o = 0; o < FWD_OT; o++) half[h][r][o] = acc[r][o];
    }
    for (int r = 0; r < FWD_RT; r++)
        for (int o = 0; o < FWD_OT; o++) {
            const float *xa = x + (size_t)r * I, *wa = w + (size_t)o * I;
            v4 s = half[0][r][o] + half[1][r][o]; /* lane l + lane l+4, as v8_hsum pairs them */
            float sum = (s[0] + s[1]) + (s[2] + s[3]);
            for (int k = K8; k < I; k++) sum += xa[k] * wa[k];
            y[(size_t)r * ldy + o] = sum + (bias ? bias[o] : 0.0f);
        }
}
#else
enum { FWD_PACKED = 0 }; /* natively the tile reads x and W in place */

static void fwd_pack(float *dst, const float *src, int rows, int I) { (void)dst, (void)src, (void)rows, (void)I; }

/* One full tile: y[r][o] for FWD_RT rows from x and FWD_OT rows from w, in the order above. */
static inline void fwd_tile(float *y, size_t ldy, const float *x, const float *w, const float *bias, int I,
                            const float *xt, const float *wt) {
    (void)xt, (void)wt;
    const int K8 = I & ~7;
    v8 acc[FWD_RT][FWD_OT];
    for (int r = 0; r < FWD_RT; r++)
        for (int o = 0; o < FWD_OT; o++) acc[r][o] = (v8){0};
    for (int k = 0; k < K8; k += 8) {
        v8 wv[FWD_OT];
        for (int o = 0; o < FWD_OT; o++) {
            wv[o] = v8_load(w + (size_t)o * I + k);
            IN_REGISTER(wv[o]);
        }
        for (int r = 0; r < FWD_RT; r++) {
            v8 xv = v8_load(x + (size_t)r * I + k);
            IN_REGISTER(xv);
            for (int o = 0; o < FWD_OT; o++) acc[r][o] += xv * wv[o];
        }
    }
    for (int r = 0; r < FWD_RT; r++)
        for (int o = 0; o < FWD_OT; o++) {
            const float *xa = x + (size_t)r * I, *wa = w + (size_t)o * I;
            float sum = v8_hsum(&acc[r][o]);
            for (int k = K8; k < I; k++) sum += xa[k] * wa[k];
            y[(size_t)r * ldy + o] = sum + (bias ? bias[o] : 0.0f);
        }
}
#endif

/* Blocks of FWD_OB rows of W: with FWD_PACKED, each block is packed once per task and every row
 * tile of x (packed once per product, in matmul_fwd) passes over it. Tiles that are not full,
 * or all of them if a buffer cannot be allocated, take dot8: the same values. */
enum { FWD_OB = 32 };

static void mm_fwd(void *c, int o0, int o1) {
    const mm_job *j = c;
    const int I = j->I, K8 = I & ~7;
    float *wpack = FWD_PACKED && j->xpack ? malloc((size_t)FWD_OB * K8 * sizeof(float) + 1) : NULL;
    const int tiles = !FWD_PACKED || wpack != NULL;
    for (int ob = o0; ob < o1; ob += FWD_OB) {
        const int oe = ob + FWD_OB < o1 ? ob + FWD_OB : o1, ofull = ob + (oe - ob) / FWD_OT * FWD_OT;
        if (wpack)
            for (int o = ob; o < ofull; o += FWD_OT)
                fwd_pack(wpack + (size_t)(o - ob) * K8, j->W + (size_t)o * I, FWD_OT, I);
        for (int r = 0; r < j->n; r += FWD_RT) {
            for (int o = ob; o < oe; o += FWD_OT) {
                if (tiles && r + FWD_RT <= j->n && o < ofull) {
                    fwd_tile(j->y + (size_t)r * j->O + o, (size_t)j->O, j->x + (size_t)r * I, j->W + (size_t)o * I,
                             j->b ? j->b + o : NULL, I, wpack ? j->xpack + (size_t)r * K8 : NULL,
                             wpack ? wpack + (size_t)(o - ob) * K8 : NULL);
                } else {
                    for (int rr = r; rr < r + FWD_RT && rr < j->n; rr++)
                        for (int oo = o; oo < o + FWD_OT && oo < oe; oo++)
                            j->y[(size_t)rr * j->O + oo] = dot8(j->x + (size_t)rr * I, j->W + (size_t)oo * I, I) +
                                                           (j->b ? j->b[oo] : 0.0f);
                }
            }
        }
    }
    free(wpack);
}

static void matmul_fwd(gpt2_train *t, float *y, const float *x, const float *W, const float *b, int n, int O, int I) {
    mm_job j = {.y = y, .x = x, .W = W, .b = b, .n = n, .O = O, .I = I};
    float *xpack = NULL;
    if (FWD_PACKED && (xpack = malloc((size_t)n * (I & ~7) * sizeof(float) + 1)) != NULL)
        for (int r = 0; r + FWD_RT <= n; r += FWD_RT) fwd_pack(xpack + (size_t)r * (I & ~7), x + (size_t)r * I, FWD_RT, I);
    j.xpack = xpack;
    int threads = gpt2_pool_threads(t->pool);
    int per = threads <= 1 ? O : (O + 2 * threads - 1) / (2 * threads);
    parallel_for(t, O, per > 0 ? per : 1, mm_fwd, &j);
    free(xpack);
}

/* Runs gemm_rows over M rows of out, in one contiguous range per task (a couple per thread). */
static void gemm(gpt2_train *t, const gemm_job *g, int M) {
    int threads = gpt2_pool_threads(t->pool);
    int per = threads <= 1 ? M : (M + 2 * threads - 1) / (2 * threads);
    per = (per + GEMM_MT - 1) / GEMM_MT * GEMM_MT;
    parallel_for(t, M, per > 0 ? per : GEMM_MT, gemm_rows, (void *)g);
}

/* db[o] += sum_r dy[r][o], r in order; split by o */
static void bias_grad(void *c, int o0, int o1) {
    const mm_job *j = c;
    for (int o = o0; o < o1; o++) {
        float s = 0.0f;
        for (int r = 0; r < j->n; r++) s += j->dy[(size_t)r * j->O + o];
        j->db[o] += s;
    }
}

/* dx[n][I] = dy[n][O] W[O][I] (overwritten; dx may be NULL), dW[O][I] += dy^T x, db[O] += the column
 * sums of dy (db may be NULL). */
static void matmul_bwd(gpt2_train *t, float *dx, float *dW, float *db, const float *dy, const float *x,
                       const float *W, int n, int O, int I) {
    if (dx) {
        gemm_job g = {dx, (size_t)I, dy, (size_t)O, 1, W, (size_t)I, I, O, 1};
        gemm(t, &g, n);
    }
    gemm_job g = {dW, (size_t)I, dy, 1, (size_t)O, x, (size_t)I, I, n, 0};
    gemm(t, &g, O);
    if (db) {
        mm_job j = {.dy = dy, .db = db, .n = n, .O = O};
        parallel_for(t, O, 256, bias_grad, &j);
    }
}

/* ---- layer norm */
static void layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *g, const float *b,
                          int n, int C, float eps) {
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * C;
        float *o = out + (size_t)r * C;
        double s = 0.0;
        for (int i = 0; i < C; i++) s += xr[i];
        float mu = (float)(s / C);
        double v = 0.0;
        for (int i = 0; i < C; i++) {
            double d = (double)xr[i] - mu;
            v += d * d;
        }
        float rs = (float)(1.0 / sqrt(v / C + (double)eps));
        for (int i = 0; i < C; i++) o[i] = (xr[i] - mu) * rs * g[i] + b[i];
        mean[r] = mu;
        rstd[r] = rs;
    }
}

typedef struct ln_job {
    float *dx;
    const float *dout, *x, *mean, *rstd, *g;
    int C;
} ln_job;

/* dx[r] += rstd * (dout*g - mean(dout*g) - xhat * mean(dout*g*xhat)), per row */
static void ln_bwd_rows(void *c, int r0, int r1) {
    const ln_job *j = c;
    const int C = j->C;
    for (int r = r0; r < r1; r++) {
        const float *d = j->dout + (size_t)r * C, *xr = j->x + (size_t)r * C;
        float mu = j->mean[r], rs = j->rstd[r];
        double s1 = 0.0, s2 = 0.0;
        for (int i = 0; i < C; i++) {
            float dn = d[i] * j->g[i];
            s1 += dn;
            s2 += (double)dn * ((xr[i] - mu) * rs);
        }
        float m1 = (float)(s1 / C), m2 = (float)(s2 / C);
        float *dx = j->dx + (size_t)r * C;
        for (int i = 0; i < C; i++) {
            float xh = (xr[i] - mu) * rs;
            dx[i] += rs * (d[i] * j->g[i] - m1 - xh * m2);
        }
    }
}

static void layernorm_bwd(gpt2_train *t, float *dx, float *dg, float *db, const float *dout, const float *x,
                          const float *mean, const float *rstd, const float *g, int n, int C) {
    ln_job j = {dx, dout, x, mean, rstd, g, C};
    parallel_for(t, n, ROW_BLOCK, ln_bwd_rows, &j);
    for (int r = 0; r < n; r++) { /* parameter gradients: rows in order */
        const float *d = dout + (size_t)r * C, *xr = x + (size_t)r * C;
        for (int i = 0; i < C; i++) {
            dg[i] += d[i] * ((xr[i] - mean[r]) * rstd[r]);
            db[i] += d[i];
        }
    }
}

/* ---- gelu_new */

static void gelu_fwd(float *y, const float *x, size_t n) { /* the forward pass's k_gelu, out of place */
    memcpy(y, x, n * sizeof *y);
    k_gelu(y, (int)n);
}

static void gelu_bwd(float *d, const float *x, size_t n) { /* d *= gelu'(x), in chunks an int counts */
    for (size_t i = 0; i < n; i += 1u << 20) k_gelu_grad(d + i, x + i, (int)(n - i < (1u << 20) ? n - i : 1u << 20));
}

/* ---- attention, one task per (b, h) */
typedef struct att_job {
    gpt2_train *t;
    const float *qkv;
    float *att, *y;
    const float *dy;
    float *dqkv;
} att_job;

static void att_fwd(void *c, int bh0, int bh1) {
    const att_job *j = c;
    const gpt2_train *t = j->t;
    const int C = t->c.n_embd, H = t->c.n_head, D = C / H, T = t->T;
    const float scale = 1.0f / sqrtf((float)D);
    for (int bh = bh0; bh < bh1; bh++) {
        int b = bh / H, h = bh % H;
        const float *base = j->qkv + (size_t)b * T * 3 * C;
        for (int tt = 0; tt < T; tt++) {
            float *a = j->att + ((size_t)bh * T + tt) * T;
            const float *q = base + (size_t)tt * 3 * C + (size_t)h * D;
            k_attn_scores(a, q, base + C + (size_t)h * D, 3 * C, tt + 1, D, scale);
            k_softmax(a, tt + 1);
            k_attn_values(j->y + ((size_t)b * T + tt) * C + (size_t)h * D, a, base + 2 * C + (size_t)h * D, 3 * C,
                          tt + 1, D);
        }
    }
}

static void att_bwd(void *c, int bh0, int bh1) {
    const att_job *j = c;
    const gpt2_train *t = j->t;
    const int C = t->c.n_embd, H = t->c.n_head, D = C / H, T = t->T;
    const float scale = 1.0f / sqrtf((float)D);
    for (int bh = bh0; bh < bh1; bh++) {
        int b = bh / H, h = bh % H;
        float *datt = t->datt + (size_t)bh * T;
        const float *base = j->qkv + (size_t)b * T * 3 * C;
        float *dbase = j->dqkv + (size_t)b * T * 3 * C;
        for (int tt = 0; tt < T; tt++) {
            const float *a = j->att + ((size_t)bh * T + tt) * T;
            const float *dy = j->dy + ((size_t)b * T + tt) * C + (size_t)h * D;
            const float *q = base + (size_t)tt * 3 * C + (size_t)h * D;
            float *dq = dbase + (size_t)tt * 3 * C + (size_t)h * D;
            double s = 0.0;
            for (int u = 0; u <= tt; u++) {
                const float *v = base + (size_t)u * 3 * C + 2 * C + (size_t)h * D;
                datt[u] = k_dot(dy, v, D);
                k_axpy(dbase + (size_t)u * 3 * C + 2 * C + (size_t)h * D, a[u], dy, D);
                s += (double)a[u] * datt[u];
            }
            float sf = (float)s;
            for (int u = 0; u <= tt; u++) {
                float ds = a[u] * (datt[u] - sf) * scale;
                if (ds == 0.0f) continue;
                const float *k = base + (size_t)u * 3 * C + C + (size_t)h * D;
                k_axpy(dq, ds, k, D);
                k_axpy(dbase + (size_t)u * 3 * C + C + (size_t)h * D, ds, q, D);
            }
        }
    }
}

/* ---- the LM head's softmax and cross-entropy, per row */
typedef struct ce_job {
    gpt2_train *t;
    int backward;
} ce_job;

static void ce_rows(void *c, int r0, int r1) {
    const ce_job *j = c;
    gpt2_train *t = j->t;
    const int V = t->c.n_vocab;
    for (int r = r0; r < r1; r++) {
        float *p = t->probs + (size_t)r * V;
        float mx = p[0];
        for (int v = 1; v < V; v++)
            if (p[v] > mx) mx = p[v];
        double sum = 0.0;
        int tg = t->targets[r];
        float lt = p[tg];
        for (int v = 0; v < V; v++) {
            p[v] = expf(p[v] - mx);
            sum += p[v];
        }
        t->losses[r] = (float)((double)mx + det_log(sum) - (double)lt);
        if (!j->backward) continue;
        float w = t->row_scale[r];
        float inv = (float)(1.0 / sum);
        for (int v = 0; v < V; v++) p[v] = p[v] * inv * w;
        p[tg] -= w;
    }
}

/* ---------------------------------------------------------------- forward / backward */

typedef struct add_job {
    float *y;
    const float *a, *b;
} add_job;

static void forward(gpt2_train *t, int n_seq) {
    const gpt2_config *c = &t->c;
    const int C = c->n_embd, I = c->n_inner, T = t->T, n = n_seq * T, L = c->n_layer;
    const float *P = t->params;
    for (int r = 0; r < n; r++) {
        float *x = t->encoded + (size_t)r * C;
        const float *te = P + t->wte + (size_t)t->inputs[r] * C, *pe = P + t->wpe + (size_t)(r % T) * C;
        for (int i = 0; i < C; i++) x[i] = te[i] + pe[i];
    }
    for (int l = 0; l < L; l++) {
        const layer_params *q = &t->lp[l];
        layer_acts *a = &t->la[l];
        const float *x = l == 0 ? t->encoded : t->la[l - 1].res3;
        layernorm_fwd(a->ln1, a->ln1_mean, a->ln1_rstd, x, P + q->ln1_w, P + q->ln1_b, n, C, c->ln_eps);
        matmul_fwd(t, a->qkv, a->ln1, P + q->qkv_w, P + q->qkv_b, n, 3 * C, C);
        att_job aj = {t, a->qkv, a->att, a->atty, NULL, NULL};
        parallel_for(t, n_seq * c->n_head, 1, att_fwd, &aj);
        matmul_fwd(t, a->res2, a->atty, P + q->proj_w, P + q->proj_b, n, C, C);
        k_add(a->res2, x, n * C);
        layernorm_fwd(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, P + q->ln2_w, P + q->ln2_b, n, C, c->ln_eps);
        matmul_fwd(t, a->fch, a->ln2, P + q->fc_w, P + q->fc_b, n, I, C);
        gelu_fwd(a->fchg, a->fch, (size_t)n * I);
        matmul_fwd(t, a->res3, a->fchg, P + q->mp_w, P + q->mp_b, n, C, I);
        k_add(a->res3, a->res2, n * C);
    }
    layernorm_fwd(t->lnf, t->lnf_mean, t->lnf_rstd, t->la[L - 1].res3, P + t->lnf_w, P + t->lnf_b, n, C, c->ln_eps);
    matmul_fwd(t, t->probs, t->lnf, P + t->head, NULL, n, c->n_vocab, C);
}

static void backward(gpt2_train *t, int n_seq) {
    const gpt2_config *c = &t->c;
    const int C = c->n_embd, I = c->n_inner, T = t->T, n = n_seq * T, L = c->n_layer, V = c->n_vocab;
    const float *P = t->params;
    float *G = t->grads;
    /* probs now holds d loss / d logits */
    matmul_bwd(t, t->dA, G + t->head, NULL, t->probs, t->lnf, P + t->head, n, V, C);
    memset(t->dres, 0, (size_t)n * C * 4);
    layernorm_bwd(t, t->dres, G + t->lnf_w, G + t->lnf_b, t->dA, t->la[L - 1].res3, t->lnf_mean, t->lnf_rstd,
                  P + t->lnf_w, n, C);
    for (int l = L - 1; l >= 0; l--) {
        const layer_params *q = &t->lp[l];
        layer_acts *a = &t->la[l];
        const float *x = l == 0 ? t->encoded : t->la[l - 1].res3;
        /* MLP: dres is d res3 */
        matmul_bwd(t, t->dh, G + q->mp_w, G + q->mp_b, t->dres, a->fchg, P + q->mp_w, n, C, I);
        gelu_bwd(t->dh, a->fch, (size_t)n * I);
        matmul_bwd(t, t->dA, G + q->fc_w, G + q->fc_b, t->dh, a->ln2, P + q->fc_w, n, I, C);
        layernorm_bwd(t, t->dres, G + q->ln2_w, G + q->ln2_b, t->dA, a->res2, a->ln2_mean, a->ln2_rstd,
                      P + q->ln2_w, n, C);
        /* attention: dres is d res2 */
        matmul_bwd(t, t->dA, G + q->proj_w, G + q->proj_b, t->dres, a->atty, P + q->proj_w, n, C, C);
        memset(t->dqkv, 0, (size_t)n * 3 * C * 4);
        att_job aj = {t, a->qkv, a->att, NULL, t->dA, t->dqkv};
        parallel_for(t, n_seq * c->n_head, 1, att_bwd, &aj);
        matmul_bwd(t, t->dA, G + q->qkv_w, G + q->qkv_b, t->dqkv, a->ln1, P + q->qkv_w, n, 3 * C, C);
        layernorm_bwd(t, t->dres, G + q->ln1_w, G + q->ln1_b, t->dA, x, a->ln1_mean, a->ln1_rstd, P + q->ln1_w,
                      n, C);
    }
    for (int r = 0; r < n; r++) { /* embeddings, rows in order */
        const float *d = t->dres + (size_t)r * C;
        k_add(G + t->wte + (size_t)t->inputs[r] * C, d, C);
        k_add(G + t->wpe + (size_t)(r % T) * C, d, C);
    }
}

/* Validates a micro-batch and copies it in; sets the row scales (weight / counted targets). */
static gpt2_err load_batch(gpt2_train *t, const int32_t *inputs, const int32_t *targets, const uint8_t *mask,
                           int n_seq, float weight, gpt2_error *err) {
    if (!inputs || !targets) return gpt2_fail(err, GPT2_ERR_ARG, "training batch: NULL inputs or targets");
    if (n_seq < 1 || n_seq > t->B)
        return gpt2_fail(err, GPT2_ERR_ARG, "a micro-batch holds 1..%d sequences, got %d", t->B, n_seq);
    if (!isfinite(weight) || !(weight > 0.0f))
        return gpt2_fail(err, GPT2_ERR_ARG, "gradient weight must be finite and > 0, got %g", (double)weight);
    const int n = n_seq * t->T;
    int counted = 0;
    for (int r = 0; r < n; r++) {
        if (inputs[r] < 0 || inputs[r] >= t->c.n_vocab || targets[r] < 0 || targets[r] >= t->c.n_vocab)
            return gpt2_fail(err, GPT2_ERR_RANGE, "token id %d at index %d is outside the vocabulary [0, %d)",
                             (int)(inputs[r] < 0 || inputs[r] >= t->c.n_vocab ? inputs[r] : targets[r]), r,
                             t->c.n_vocab);
        counted += !mask || mask[r];
    }
    if (counted == 0) return gpt2_fail(err, GPT2_ERR_ARG, "the loss mask leaves no target");
    memcpy(t->inputs, inputs, (size_t)n * 4);
    memcpy(t->targets, targets, (size_t)n * 4);
    for (int r = 0; r < n; r++) t->row_scale[r] = (!mask || mask[r]) ? weight / (float)counted : 0.0f;
    return GPT2_OK;
}

static float mean_loss(const gpt2_train *t, int n) {
    double s = 0.0;
    int counted = 0;
    for (int r = 0; r < n; r++)
        if (t->row_scale[r] != 0.0f) {
            s += t->losses[r];
            counted++;
        }
    return (float)(s / counted);
}

static gpt2_err run_batch(gpt2_train *t, int n_seq, int do_backward, float *loss, gpt2_error *err) {
    forward(t, n_seq);
    ce_job cj = {t, do_backward}; /* loss per row and, for training, d loss / d logits in place */
    parallel_for(t, n_seq * t->T, ROW_BLOCK, ce_rows, &cj);
    float l = mean_loss(t, n_seq * t->T);
    if (!isfinite(l))
        return gpt2_fail(err, GPT2_ERR_RANGE, "the loss is %s: nothing was changed (lower the learning rate?)",
                         isnan(l) ? "NaN" : "infinite");
    if (do_backward) backward(t, n_seq);
    if (loss) *loss = l;
    return GPT2_OK;
}

gpt2_err gpt2_train_forward_backward(gpt2_train *t, const int32_t *inputs, const int32_t *targets,
                                     const uint8_t *mask, int n_seq, float weight, float *loss, gpt2_error *err) {
    if (!t) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_forward_backward: NULL state");
    gpt2_err rc = load_batch(t, inputs, targets, mask, n_seq, weight, err);
    if (rc != GPT2_OK) return rc;
    return run_batch(t, n_seq, 1, loss, err);
}

gpt2_err gpt2_train_loss(gpt2_train *t, const int32_t *inputs, const int32_t *targets, const uint8_t *mask,
                         int n_seq, float *loss, gpt2_error *err) {
    if (!t) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_loss: NULL state");
    gpt2_err rc = load_batch(t, inputs, targets, mask, n_seq, 1.0f, err);
    if (rc != GPT2_OK) return rc;
    return run_batch(t, n_seq, 0, loss, err);
}

void gpt2_train_zero_grad(gpt2_train *t) {
    if (t) memset(t->grads, 0, t->n_params * 4);
}

/* ---------------------------------------------------------------- optimiser */

typedef struct opt_job {
    gpt2_train *t;
    const gpt2_train_tensor *x;
    float lr, clip_scale, bc1, bc2;
} opt_job;

static void opt_rows(void *c, int e0, int e1) {
    const opt_job *j = c;
    gpt2_train *t = j->t;
    const gpt2_train_options *o = &t->o;
    float wd = j->x->decay ? o->weight_decay : 0.0f;
    float *w = t->params + j->x->offset, *g = t->grads + j->x->offset;
    if (o->optimizer == GPT2_OPTIM_SGD) {
        for (int e = e0; e < e1; e++) w[e] -= j->lr * (g[e] * j->clip_scale + wd * w[e]);
        return;
    }
    /* The settings in locals: read through pointers, the compiler would have to assume that the
     * stores to w, m and v change them, and could not vectorise the loop (WebAssembly: 4 lanes,
     * the same operations per element, so the same values). */
    float *m = t->m + j->x->offset, *v = t->v + j->x->offset;
    const float lr = j->lr, clip = j->clip_scale, b1 = o->beta1, b2 = o->beta2, eps = o->eps, bc1 = j->bc1,
                bc2 = j->bc2;
    for (int e = e0; e < e1; e++) {
        float gr = g[e] * clip;
        w[e] -= lr * wd * w[e];
        m[e] = b1 * m[e] + (1.0f - b1) * gr;
        v[e] = b2 * v[e] + (1.0f - b2) * gr * gr;
        float mh = m[e] / bc1, vh = v[e] / bc2;
        w[e] -= lr * mh / (sqrtf(vh) + eps);
    }
}

gpt2_err gpt2_train_update(gpt2_train *t, float lr, float *grad_norm, gpt2_error *err) {
    if (!t) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_update: NULL state");
    if (!(lr > 0.0f) || !isfinite(lr))
        return gpt2_fail(err, GPT2_ERR_ARG, "lr must be a finite number > 0, got %g", (double)lr);
    double ss = 0.0;
    for (size_t i = 0; i < t->n_params; i++) ss += (double)t->grads[i] * t->grads[i];
    double norm = sqrt(ss);
    if (grad_norm) *grad_norm = (float)norm;
    if (!isfinite(norm)) {
        gpt2_train_zero_grad(t);
        return gpt2_fail(err, GPT2_ERR_RANGE, "the gradient norm is not finite: the step was skipped");
    }
    float clip_scale = 1.0f;
    if (t->o.grad_clip > 0.0f && norm > t->o.grad_clip) clip_scale = (float)(t->o.grad_clip / norm);
    int64_t step = t->step + 1;
    opt_job j = {t, NULL, lr, clip_scale, (float)(1.0 - det_pow(t->o.beta1, step)),
                 (float)(1.0 - det_pow(t->o.beta2, step))};
    for (int i = 0; i < t->n_tensors; i++) {
        j.x = &t->tensors[i];
        parallel_for(t, j.x->rows * j.x->cols, 4096, opt_rows, &j);
    }
    t->step = step;
    gpt2_train_zero_grad(t);
    return GPT2_OK;
}

gpt2_err gpt2_train_step(gpt2_train *t, gpt2_train_stats *stats, gpt2_error *err) {
    if (!t) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_step: NULL state");
    if (!t->n_windows) return gpt2_fail(err, GPT2_ERR_ARG, "no training data (gpt2_train_set_data)");
    const int B = t->B, T = t->T, K = t->o.grad_accum;
    int32_t *in = malloc((size_t)B * T * 2 * sizeof *in);
    if (!in) return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate a batch");
    int32_t *tg = in + (size_t)B * T;
    double loss_sum = 0.0;
    gpt2_err rc = GPT2_OK;
    for (int k = 0; k < K && rc == GPT2_OK; k++) {
        for (int b = 0; b < B; b++) {
            size_t w = gpt2_train_window_of(t, t->step, k, b);
            const int32_t *src = t->data + w * (size_t)T;
            memcpy(in + (size_t)b * T, src, (size_t)T * 4);
            memcpy(tg + (size_t)b * T, src + 1, (size_t)T * 4);
        }
        float l = 0.0f;
        rc = gpt2_train_forward_backward(t, in, tg, NULL, B, 1.0f / (float)K, &l, err);
        loss_sum += l;
    }
    free(in);
    if (rc != GPT2_OK) {
        gpt2_train_zero_grad(t);
        return rc;
    }
    float lr = gpt2_train_lr(t, t->step), norm = 0.0f;
    rc = gpt2_train_update(t, lr, &norm, err);
    if (rc != GPT2_OK) return rc;
    if (stats) {
        stats->step = t->step;
        stats->loss = (float)(loss_sum / K);
        stats->grad_norm = norm;
        stats->lr = lr;
    }
    return GPT2_OK;
}

gpt2_err gpt2_train_evaluate(gpt2_train *t, const int32_t *ids, size_t n, float *loss, gpt2_error *err) {
    if (!t || (!ids && n) || !loss) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_evaluate: NULL argument");
    const int B = t->B, T = t->T;
    if (n < (size_t)T + 1)
        return gpt2_fail(err, GPT2_ERR_ARG, "the held-out text is shorter than one window (%zu tokens, needs %d)",
                         n, T + 1);
    size_t nw = (n - 1) / (size_t)T;
    int32_t *in = malloc((size_t)B * T * 2 * sizeof *in);
    if (!in) return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate a batch");
    int32_t *tg = in + (size_t)B * T;
    double sum = 0.0;
    gpt2_err rc = GPT2_OK;
    for (size_t w0 = 0; w0 < nw && rc == GPT2_OK; w0 += (size_t)B) {
        int ns = nw - w0 < (size_t)B ? (int)(nw - w0) : B;
        for (int b = 0; b < ns; b++) {
            memcpy(in + (size_t)b * T, ids + (w0 + b) * T, (size_t)T * 4);
            memcpy(tg + (size_t)b * T, ids + (w0 + b) * T + 1, (size_t)T * 4);
        }
        float l = 0.0f;
        rc = gpt2_train_loss(t, in, tg, NULL, ns, &l, err);
        sum += (double)l * ns;
    }
    free(in);
    if (rc == GPT2_OK) *loss = (float)(sum / (double)nw);
    return rc;
}

/* ---------------------------------------------------------------- write back */

static void store_matrix(const gpt2_matrix *m, const float *src) {
    const uint64_t R = (uint64_t)m->rows, Cc = (uint64_t)m->cols;
    void *data = (void *)(uintptr_t)m->data; /* the weights' own arena */
    for (uint64_t o = 0; o < R; o++) {
        const float *row = src + o * Cc;
        switch (m->type) {
        case GPT2_DTYPE_F32:
            for (uint64_t i = 0; i < Cc; i++) ((float *)data)[gpt2_packed_index(R, Cc, o, i)] = row[i];
            break;
        case GPT2_DTYPE_F16:
            for (uint64_t i = 0; i < Cc; i++)
                ((uint16_t *)data)[gpt2_packed_index(R, Cc, o, i)] = gpt2_f32_to_f16(row[i]);
            break;
        case GPT2_DTYPE_Q8_0:
            for (uint64_t b = 0; b < Cc / GPT2_Q8_BLOCK; b++) {
                int8_t q[GPT2_Q8_BLOCK];
                uint16_t scale = 0;
                gpt2_q8_quantize_block(row + b * GPT2_Q8_BLOCK, q, &scale, NULL);
                unsigned char *d = data;
                memcpy(d + gpt2_q8_scale_offset(R, Cc, o, b), &scale, sizeof scale);
                for (uint64_t e = 0; e < GPT2_Q8_BLOCK; e++)
                    d[gpt2_q8_value_offset(R, Cc, o, b * GPT2_Q8_BLOCK + e)] = (unsigned char)q[e];
            }
            break;
        }
    }
}

gpt2_err gpt2_train_write_back(const gpt2_train *t, gpt2_weights *w, gpt2_error *err) {
    if (!t || !w) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_write_back: NULL argument");
    const gpt2_config *a = &t->c, *b = &w->config;
    if (a->n_layer != b->n_layer || a->n_embd != b->n_embd || a->n_head != b->n_head || a->n_ctx != b->n_ctx ||
        a->n_vocab != b->n_vocab || a->n_inner != b->n_inner || t->untied != !w->tied_head)
        return gpt2_fail(err, GPT2_ERR_SHAPE, "the weights do not have the shape of the trained model");
    for (int i = 0; i < t->n_tensors; i++) {
        const gpt2_train_tensor *x = &t->tensors[i];
        const gpt2_matrix *m = NULL;
        float *f = NULL;
        gpt2_weights_tensor(w, i, &m, &f);
        if (m) store_matrix(m, t->params + x->offset);
        else memcpy(f, t->params + x->offset, (size_t)x->rows * x->cols * 4);
    }
    gpt2_weights_check_finite(w); /* f16 values may have overflowed to infinity */
    return GPT2_OK;
}
