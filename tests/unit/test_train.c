/* test_train.c - fine-tuning (src/train.h) against the float64 PyTorch reference
 * (tools/gpt2_reference.py train -> tests/fixtures/<name>/expected_train.json).
 *
 * For tiny-f32, tiny-f16 (separate lm_head) and tiny-bf16:
 *   - the loss of a batch of 2 windows of the full context, with and without a loss mask, is
 *     within 1e-4 of float64, and every parameter's gradient is within 1e-4 of float64 relative
 *     to the tensor's largest gradient (its max |g|, L2 norm and sampled entries);
 *   - the same gradients, bit for bit, with 2 and 3 threads;
 *   - the losses of 20 SGD steps within 1e-4 and of 20 AdamW steps within 1e-3 (shuffle off);
 * and: gradient accumulation equals the larger batch, shuffling is a deterministic
 * permutation, bad input is refused with a message and nothing changed, write-back puts the
 * trained weights into the model (f32 exactly, f16 rounded) so that scoring uses them, a saved
 * model (safetensors + config.json) loads back with the in-memory logits bit for bit, and a
 * checkpoint resumes with identical losses.
 */
#include <math.h>
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fp16.h"
#include "test_util.h"
#include "pool.h"
#include "quantize.h"
#include "model.h"
#include "score.h"
#include "train.h"

#define GRAD_TOL 1e-4
#define SGD_TOL 1e-4
#define ADAMW_TOL 1e-3

static int32_t *ids_of(const json_value *arr, size_t *n) {
    *n = arr && arr->type == JSON_ARRAY ? arr->count : 0;
    int32_t *ids = malloc((*n ? *n : 1) * sizeof(int32_t));
    for (size_t i = 0; ids && i < *n; i++) ids[i] = (int32_t)arr->items[i].integer;
    return ids;
}

static double num(const json_value *v) { return v && v->type == JSON_NUMBER ? v->number : NAN; }

static double worst_grad; /* largest relative gradient error seen */

/* Offset in our [out, in] layout of flat index k in Hugging Face's layout. */
static size_t our_index(const gpt2_train_tensor *x, int64_t k) {
    if (!x->conv1d) return (size_t)k;
    int64_t in = x->cols, out = x->rows; /* HF shape [in, out] */
    int64_t i = k / out, o = k % out;
    (void)in;
    return (size_t)(o * x->cols + i);
}

static void check_grads(const char *fx, const char *cname, gpt2_train *t, const json_value *grads) {
    const float *g = gpt2_train_array(t, 1);
    int n = gpt2_train_tensor_count(t);
    CHECK(grads && grads->type == JSON_OBJECT && (int)grads->count == n, "%s/%s: %d tensors here, %d in the reference",
          fx, cname, n, grads ? (int)grads->count : -1);
    for (int ti = 0; ti < n; ti++) {
        const gpt2_train_tensor *x = gpt2_train_tensor_at(t, ti);
        const json_value *r = json_get(grads, x->name);
        CHECK(r != NULL, "%s/%s: no reference gradient for %s", fx, cname, x->name);
        if (!r) continue;
        size_t cnt = (size_t)x->rows * x->cols;
        const float *gt = g + x->offset;
        double mx = 0, ss = 0;
        for (size_t i = 0; i < cnt; i++) {
            double a = fabs(gt[i]);
            if (!(a <= mx)) mx = a;
            ss += (double)gt[i] * gt[i];
        }
        double rmax = num(json_get(r, "max_abs"));
        double scale = rmax > 0 ? rmax : 1.0;
        double e1 = fabs(mx - rmax) / scale, e2 = fabs(sqrt(ss) - num(json_get(r, "l2"))) / scale;
        double worst = e1 > e2 ? e1 : e2;
        const json_value *s = json_get(r, "samples");
        for (size_t k = 0; s && k < s->count; k++) {
            int64_t idx = s->items[k].items[0].integer;
            double e = fabs(gt[our_index(x, idx)] - s->items[k].items[1].number) / scale;
            if (!(e <= worst)) worst = e;
        }
        CHECK(worst <= GRAD_TOL, "%s/%s: %s gradient off by %.3g of its max |g| %.3g", fx, cname, x->name, worst,
              rmax);
        if (worst > worst_grad) worst_grad = worst;
    }
}

static gpt2_train *make_train(const gpt2_weights *w, int B, int T, gpt2_optimizer opt, float lr) {
    gpt2_train_options o;
    gpt2_train_options_default(&o);
    o.batch = B;
    o.seq = T;
    o.optimizer = opt;
    o.lr = lr;
    gpt2_train *t = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_train_create(w, &o, 0, &t, &err), &err);
    return t;
}

/* The reference's batch (windows [0, 1] of T tokens) and optional mask. */
static void gradient_case(const char *fx, const gpt2_weights *w, const int32_t *ids, const json_value *c,
                          gpt2_pool *pool2, gpt2_pool *pool3) {
    const char *cname = json_get(c, "name")->str;
    int T = (int)json_get(c, "seq")->integer, B = 2;
    gpt2_train *t = make_train(w, B, T, GPT2_OPTIM_SGD, 0.1f);
    if (!t) return;
    int32_t *in = malloc((size_t)B * T * 4), *tg = malloc((size_t)B * T * 4);
    uint8_t *mask = NULL;
    const json_value *m = json_get(c, "mask");
    if (m) mask = malloc((size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) {
            in[b * T + i] = ids[b * T + i];
            tg[b * T + i] = ids[b * T + i + 1];
            if (mask) mask[b * T + i] = (uint8_t)m->items[b].items[i].integer;
        }
    gpt2_error err;
    float loss = 0;
    CHECK_OK(gpt2_train_forward_backward(t, in, tg, mask, B, 1.0f, &loss, &err), &err);
    double want = num(json_get(c, "loss"));
    CHECK(fabs(loss - want) <= GRAD_TOL, "%s/%s: loss %.8f, reference %.8f", fx, cname, loss, want);
    check_grads(fx, cname, t, json_get(c, "grads"));

    /* threads: bit-identical gradients */
    size_t P = gpt2_train_param_count(t);
    float *g1 = malloc(P * 4);
    memcpy(g1, gpt2_train_array(t, 1), P * 4);
    gpt2_pool *pools[2] = {pool2, pool3};
    for (int k = 0; k < 2; k++) {
        gpt2_train_zero_grad(t);
        gpt2_train_set_pool(t, pools[k]);
        float l2 = 0;
        CHECK_OK(gpt2_train_forward_backward(t, in, tg, mask, B, 1.0f, &l2, &err), &err);
        CHECK(memcmp(&l2, &loss, 4) == 0 && memcmp(g1, gpt2_train_array(t, 1), P * 4) == 0,
              "%s/%s: %d threads give other gradients or loss (%.9g vs %.9g)", fx, cname,
              gpt2_pool_threads(pools[k]), l2, loss);
    }
    /* accumulation: weight 0.5 twice equals weight 1 (exactly: the halves are exact) */
    gpt2_train_zero_grad(t);
    gpt2_train_set_pool(t, NULL);
    CHECK_OK(gpt2_train_forward_backward(t, in, tg, mask, B, 0.5f, &loss, &err), &err);
    CHECK_OK(gpt2_train_forward_backward(t, in, tg, mask, B, 0.5f, &loss, &err), &err);
    double worst = 0, gmax = 0;
    const float *g2 = gpt2_train_array(t, 1);
    for (size_t i = 0; i < P; i++) {
        if (fabs(g1[i]) > gmax) gmax = fabs(g1[i]);
        if (fabs(g1[i] - g2[i]) > worst) worst = fabs(g1[i] - g2[i]);
    }
    CHECK(worst <= 1e-6 * gmax, "%s/%s: two half-weight passes differ from one by %.3g", fx, cname, worst);
    free(g1);
    free(in);
    free(tg);
    free(mask);
    gpt2_train_free(t);
}

static void run_case(const char *fx, const gpt2_weights *w, const int32_t *ids, size_t n, const char *rname,
                     const json_value *r, double tol) {
    const char *opt = json_get(r, "opt")->str;
    gpt2_train_options o;
    gpt2_train_options_default(&o);
    o.batch = (int)json_get(r, "B")->integer;
    o.seq = (int)json_get(r, "T")->integer;
    o.optimizer = strcmp(opt, "sgd") == 0 ? GPT2_OPTIM_SGD : GPT2_OPTIM_ADAMW;
    o.lr = (float)num(json_get(r, "lr"));
    o.weight_decay = (float)num(json_get(r, "wd"));
    o.grad_clip = (float)num(json_get(r, "clip"));
    o.beta1 = (float)num(json_get(r, "betas")->items + 0);
    o.beta2 = (float)num(json_get(r, "betas")->items + 1);
    o.eps = (float)num(json_get(r, "eps"));
    gpt2_train *t = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_train_create(w, &o, 0, &t, &err), &err);
    if (!t) return;
    CHECK_OK(gpt2_train_set_data(t, ids, n, &err), &err);
    const json_value *losses = json_get(r, "losses");
    double worst = 0;
    for (size_t s = 0; s < losses->count; s++) {
        gpt2_train_stats st;
        CHECK_OK(gpt2_train_step(t, &st, &err), &err);
        double d = fabs(st.loss - losses->items[s].number);
        if (!(d <= worst)) worst = d;
        CHECK(st.step == (int64_t)s + 1, "step count %lld", (long long)st.step);
    }
    CHECK(worst <= tol, "%s/%s: losses off by up to %.3g (tolerance %.0e)", fx, rname, worst, tol);
    /* FNV-1a of the final parameters' bits: equal in the native and WASM logs when the
     * builds agree bit for bit */
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *pb = (const unsigned char *)gpt2_train_array(t, 0);
    for (size_t i = 0; i < gpt2_train_param_count(t) * 4; i++) h = (h ^ pb[i]) * 1099511628211ULL;
    printf("  %s %s: %zu steps, worst loss error %.3g, final loss %.6f, params fnv1a %016llx\n", fx, rname,
           losses->count, worst, losses->items[losses->count - 1].number, (unsigned long long)h);
    gpt2_train_free(t);
}

static void check_fixture(const char *fx, gpt2_pool *pool2, gpt2_pool *pool3) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/expected_train.json", fx);
    json_doc *doc = read_json(path);
    snprintf(path, sizeof path, "tests/fixtures/%s", fx);
    gpt2_weights *w = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_load_dir(path, NULL, &w, &err), &err);
    if (!doc || !w) {
        json_free(doc);
        gpt2_weights_free(w);
        return;
    }
    const json_value *root = json_root(doc);
    size_t n = 0;
    int32_t *ids = ids_of(json_get(root, "ids"), &n);
    CHECK((json_get(root, "tied_head")->type == JSON_TRUE) == (w->tied_head != 0), "%s: head tying", fx);
    worst_grad = 0;
    const json_value *cases = json_get(root, "cases");
    for (size_t i = 0; i < cases->count; i++) gradient_case(fx, w, ids, &cases->items[i], pool2, pool3);
    printf("  %s: worst gradient error %.3g (relative to the tensor's max |g|)\n", fx, worst_grad);
    const json_value *runs = json_get(root, "runs");
    run_case(fx, w, ids, n, "sgd", json_get(runs, "sgd"), SGD_TOL);
    run_case(fx, w, ids, n, "adamw", json_get(runs, "adamw"), ADAMW_TOL);
    free(ids);
    gpt2_weights_free(w);
    json_free(doc);
}

/* Bad input: refused with a message, nothing changed. */
static void check_bad_input(void) {
    gpt2_weights *w = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_load_dir("tests/fixtures/tiny-f32", NULL, &w, &err), &err);
    if (!w) return;
    gpt2_train_options o;
    gpt2_train_options_default(&o);
    gpt2_train *t = NULL;
    o.seq = w->config.n_ctx + 1;
    CHECK_FAILS(gpt2_train_create(w, &o, 0, &t, &err), GPT2_ERR_RANGE, &err);
    CHECK(t == NULL && strstr(err.message, "seq"), "seq over context: '%s'", err.message);
    o.seq = 16;
    o.lr = 0.0f;
    CHECK_FAILS(gpt2_train_create(w, &o, 0, &t, &err), GPT2_ERR_ARG, &err);
    o.lr = -1.0f;
    CHECK_FAILS(gpt2_train_create(w, &o, 0, &t, &err), GPT2_ERR_ARG, &err);
    o.lr = NAN;
    CHECK_FAILS(gpt2_train_create(w, &o, 0, &t, &err), GPT2_ERR_ARG, &err);
    CHECK(strstr(err.message, "lr") != NULL, "lr message: '%s'", err.message);
    o.lr = 1e-3f;
    o.beta2 = 1.0f;
    CHECK_FAILS(gpt2_train_create(w, &o, 0, &t, &err), GPT2_ERR_ARG, &err);
    o.beta2 = 0.999f;
    o.batch = 0;
    CHECK_FAILS(gpt2_train_create(w, &o, 0, &t, &err), GPT2_ERR_ARG, &err);
    o.batch = 2;
    /* memory budget: refused before allocating, naming what fits */
    uint64_t need = gpt2_train_bytes(&w->config, 0, o.optimizer, 2, 16);
    CHECK(need > 0 && need != UINT64_MAX, "estimate %llu", (unsigned long long)need);
    CHECK_FAILS(gpt2_train_create(w, &o, need - 1, &t, &err), GPT2_ERR_NOMEM, &err);
    CHECK(strstr(err.message, "batch 1 x seq 16 would fit") != NULL, "budget message: '%s'", err.message);
    /* nothing fits with AdamW, SGD at 1 x 1 does: the message says so; below that, another model */
    uint64_t sgd11 = gpt2_train_bytes(&w->config, 0, GPT2_OPTIM_SGD, 1, 1);
    uint64_t adam11 = gpt2_train_bytes(&w->config, 0, GPT2_OPTIM_ADAMW, 1, 1);
    CHECK(sgd11 < adam11, "sgd %llu, adamw %llu", (unsigned long long)sgd11, (unsigned long long)adam11);
    CHECK_FAILS(gpt2_train_create(w, &o, adam11 - 1, &t, &err), GPT2_ERR_NOMEM, &err);
    CHECK(strstr(err.message, "the sgd optimizer at batch 1 x seq 1 would") != NULL, "adamw message: '%s'", err.message);
    CHECK_FAILS(gpt2_train_create(w, &o, sgd11 - 1, &t, &err), GPT2_ERR_NOMEM, &err);
    CHECK(strstr(err.message, "use a smaller model") != NULL && strstr(err.message, "sgd") == NULL, "message: '%s'",
          err.message);
    CHECK_OK(gpt2_train_create(w, &o, need, &t, &err), &err);
    if (!t) {
        gpt2_weights_free(w);
        return;
    }
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (int32_t)(i * 31 % w->config.n_vocab);
    CHECK_FAILS(gpt2_train_step(t, NULL, &err), GPT2_ERR_ARG, &err); /* no data yet */
    CHECK_FAILS(gpt2_train_set_data(t, ids, 0, &err), GPT2_ERR_ARG, &err);
    CHECK(strstr(err.message, "empty") != NULL, "empty: '%s'", err.message);
    CHECK_FAILS(gpt2_train_set_data(t, ids, 16, &err), GPT2_ERR_ARG, &err);
    CHECK(strstr(err.message, "shorter than one window") != NULL, "short: '%s'", err.message);
    CHECK(gpt2_train_windows(t) == 0, "data set despite errors");
    ids[5] = w->config.n_vocab;
    CHECK_FAILS(gpt2_train_set_data(t, ids, 40, &err), GPT2_ERR_RANGE, &err);
    ids[5] = 7;
    CHECK_OK(gpt2_train_set_data(t, ids, 40, &err), &err);
    CHECK(gpt2_train_windows(t) == 2, "floor(39/16) = 2 windows, got %zu", gpt2_train_windows(t));
    uint8_t zero_mask[32] = {0};
    CHECK_FAILS(gpt2_train_forward_backward(t, ids, ids + 1, zero_mask, 2, 1.0f, NULL, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_train_update(t, 0.0f, NULL, &err), GPT2_ERR_ARG, &err);
    /* NaN loss: a NaN parameter makes the loss NaN; the step is refused, nothing else changes */
    float *P = gpt2_train_array(t, 0);
    const gpt2_train_tensor *lnf = NULL;
    for (int i = 0; i < gpt2_train_tensor_count(t); i++)
        if (strcmp(gpt2_train_tensor_at(t, i)->name, "ln_f.weight") == 0) lnf = gpt2_train_tensor_at(t, i);
    CHECK(lnf != NULL, "no ln_f.weight tensor");
    if (lnf) {
        P[lnf->offset + 3] = NAN;
        size_t np = gpt2_train_param_count(t);
        float *before = malloc(np * 4);
        memcpy(before, P, np * 4);
        CHECK_FAILS(gpt2_train_step(t, NULL, &err), GPT2_ERR_RANGE, &err);
        CHECK(strstr(err.message, "NaN") != NULL, "NaN message: '%s'", err.message);
        CHECK(memcmp(before, P, np * 4) == 0 && gpt2_train_step_count(t) == 0, "a NaN step changed the parameters");
        int grads_zero = 1;
        for (size_t i = 0; i < np; i++) grads_zero &= gpt2_train_array(t, 1)[i] == 0.0f;
        CHECK(grads_zero, "gradients left behind by a refused step");
        free(before);
    }
    gpt2_train_free(t);
    gpt2_weights_free(w);
}

/* Shuffling: a permutation of the windows, the same for the same seed, another for another. */
static void check_shuffle(void) {
    gpt2_weights *w = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_load_dir("tests/fixtures/tiny-f32", NULL, &w, &err), &err);
    if (!w) return;
    enum { N = 8 * 37 + 1 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = i % 100;
    size_t order[3][37];
    uint64_t seeds[3] = {42, 42, 7};
    for (int k = 0; k < 3; k++) {
        gpt2_train_options o;
        gpt2_train_options_default(&o);
        o.batch = 1;
        o.seq = 8;
        o.shuffle = 1;
        o.seed = seeds[k];
        gpt2_train *t = NULL;
        CHECK_OK(gpt2_train_create(w, &o, 0, &t, &err), &err);
        if (!t) continue;
        CHECK_OK(gpt2_train_set_data(t, ids, N, &err), &err);
        int seen[37] = {0}, moved = 0;
        for (int s = 0; s < 37; s++) {
            order[k][s] = gpt2_train_window_of(t, s, 0, 0);
            if (order[k][s] < 37) seen[order[k][s]]++;
            moved += order[k][s] != (size_t)s;
        }
        int perm = 1;
        for (int i = 0; i < 37; i++) perm &= seen[i] == 1;
        CHECK(perm && moved > 20, "seed %llu: not a shuffled permutation (%d moved)", (unsigned long long)seeds[k],
              moved);
        CHECK(gpt2_train_window_of(t, 37, 0, 0) == order[k][0], "the order does not repeat after an epoch");
        gpt2_train_free(t);
    }
    CHECK(memcmp(order[0], order[1], sizeof order[0]) == 0, "same seed, different order");
    CHECK(memcmp(order[0], order[2], sizeof order[0]) != 0, "different seeds, same order");
    gpt2_weights_free(w);
}

/* Write-back: the model then holds the trained weights (f32 exactly, f16 rounded) and scoring
 * through the inference path gives the training loss. */
static void check_write_back(const char *fx) {
    char dir[128];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", fx);
    gpt2_weights *w = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_load_dir(dir, NULL, &w, &err), &err);
    if (!w) return;
    const int T = 32;
    gpt2_train *t = make_train(w, 2, T, GPT2_OPTIM_ADAMW, 1e-2f);
    if (!t) {
        gpt2_weights_free(w);
        return;
    }
    int32_t ids[2 * T + 1];
    for (int i = 0; i <= 2 * T; i++) ids[i] = (int32_t)((i * 97 + 5) % w->config.n_vocab);
    CHECK_OK(gpt2_train_set_data(t, ids, 2 * T + 1, &err), &err);
    for (int s = 0; s < 3; s++) CHECK_OK(gpt2_train_step(t, NULL, &err), &err);
    float before[T];
    CHECK_OK(gpt2_score(w, ids, T + 1, before, NULL, &err), &err);
    CHECK_OK(gpt2_train_write_back(t, w, &err), &err);
    const float *P = gpt2_train_array(t, 0);
    const gpt2_train_tensor *x = gpt2_train_tensor_at(t, 2 + 2); /* h.0.attn.c_attn.weight */
    int exact = 1;
    for (int o = 0; o < x->rows; o += 7)
        for (int i = 0; i < x->cols; i += 5) {
            float p = P[x->offset + (size_t)o * x->cols + i];
            float want = w->layers[0].qkv_w.type == GPT2_DTYPE_F16 ? gpt2_f16_to_f32(gpt2_f32_to_f16(p)) : p;
            exact &= gpt2_matrix_get(&w->layers[0].qkv_w, o, i) == want;
        }
    CHECK(exact, "%s: written-back qkv weights differ from the trained ones", fx);
    float after[T];
    CHECK_OK(gpt2_score(w, ids, T + 1, after, NULL, &err), &err);
    double mean_before = 0, mean_after = 0;
    for (int i = 0; i < T; i++) {
        mean_before -= before[i] / T;
        mean_after -= after[i] / T;
    }
    float loss = 0;
    CHECK_OK(gpt2_train_loss(t, ids, ids + 1, NULL, 1, &loss, &err), &err);
    double tol = w->layers[0].qkv_w.type == GPT2_DTYPE_F32 ? 1e-4 : 2e-2; /* f16 rounding of the weights */
    CHECK(fabs(mean_after - loss) <= tol && fabs(mean_before - loss) > 10 * tol,
          "%s: scored loss %.6f after write-back (%.6f before), training loss %.6f", fx, mean_after, mean_before, loss);
    CHECK_FAILS(gpt2_train_write_back(t, NULL, &err), GPT2_ERR_ARG, &err);
    gpt2_train_free(t);
    gpt2_weights_free(w);
}

/* Learning-rate schedule: linear warm-up, then constant or cosine to 0 (checked with libm's cos). */
static void check_schedule(void) {
    gpt2_weights *w = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_load_dir("tests/fixtures/tiny-f32", NULL, &w, &err), &err);
    if (!w) return;
    gpt2_train_options o;
    gpt2_train_options_default(&o);
    o.batch = 1;
    o.seq = 8;
    o.lr = 0.01f;
    o.warmup = 4;
    o.schedule = GPT2_SCHEDULE_COSINE;
    o.total_steps = 20;
    gpt2_train *t = NULL;
    CHECK_OK(gpt2_train_create(w, &o, 0, &t, &err), &err);
    for (int s = 0; t && s < 24; s++) {
        double want = s < 4 ? 0.01 * (s + 1) / 4 : 0.01 * 0.5 * (1 + cos(M_PI * (s < 20 ? s - 4 : 16) / 16.0));
        float got = gpt2_train_lr(t, s);
        CHECK(fabs(got - want) <= 1e-8 + 1e-6 * want, "cosine lr at step %d: %.9g, want %.9g", s, got, want);
    }
    gpt2_train_free(t);
    o.schedule = GPT2_SCHEDULE_COSINE;
    o.total_steps = 0;
    CHECK_FAILS(gpt2_train_create(w, &o, 0, &t, &err), GPT2_ERR_ARG, &err);
    gpt2_weights_free(w);
}

/* Gradient accumulation: 2 micro-batches of 1 sequence per step = 1 batch of 2 (same windows). */
static void check_accumulation(void) {
    gpt2_weights *w = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_load_dir("tests/fixtures/tiny-bf16", NULL, &w, &err), &err);
    if (!w) return;
    int32_t ids[8 * 16 + 1];
    for (int i = 0; i <= 8 * 16; i++) ids[i] = (int32_t)((i * 37 + 11) % w->config.n_vocab);
    float loss[2][4];
    gpt2_train *ts[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        gpt2_train_options o;
        gpt2_train_options_default(&o);
        o.batch = k ? 1 : 2;
        o.grad_accum = k ? 2 : 1;
        o.seq = 16;
        o.optimizer = GPT2_OPTIM_SGD; /* AdamW would magnify rounding in near-zero gradients */
        o.lr = 0.05f;
        CHECK_OK(gpt2_train_create(w, &o, 0, &ts[k], &err), &err);
        if (!ts[k]) continue;
        CHECK_OK(gpt2_train_set_data(ts[k], ids, 8 * 16 + 1, &err), &err);
        CHECK(gpt2_train_window_of(ts[k], 1, k ? 1 : 0, k ? 0 : 1) == 3, "step 1's last window is 3");
        for (int s = 0; s < 4; s++) {
            gpt2_train_stats st;
            CHECK_OK(gpt2_train_step(ts[k], &st, &err), &err);
            loss[k][s] = st.loss;
        }
    }
    if (ts[0] && ts[1]) {
        double worst = 0;
        for (int s = 0; s < 4; s++) worst = fmax(worst, fabs(loss[0][s] - loss[1][s]));
        CHECK(worst <= 1e-5, "accumulated steps' losses differ by %.3g from the larger batch", worst);
        size_t np = gpt2_train_param_count(ts[0]);
        const float *a = gpt2_train_array(ts[0], 0), *b = gpt2_train_array(ts[1], 0);
        double dmax = 0;
        for (size_t i = 0; i < np; i++) dmax = fmax(dmax, fabs(a[i] - b[i]));
        CHECK(dmax <= 1e-5, "accumulated parameters differ by %.3g", dmax);
    }
    gpt2_train_free(ts[0]);
    gpt2_train_free(ts[1]);
    gpt2_weights_free(w);
}

/* A q8_0 model trains in float32 and gets its weights back re-quantized by quantize.h's rule,
 * at the packed positions of matrix.h. */
static void check_q8(void) {
    gpt2_weights *w = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_load_dir("tests/fixtures/tiny-q8", NULL, &w, &err), &err);
    if (!w) return;
    CHECK(w->layers[0].fc_w.type == GPT2_DTYPE_Q8_0, "tiny-q8 loads as q8_0");
    gpt2_train *t = make_train(w, 2, 16, GPT2_OPTIM_ADAMW, 1e-2f);
    int32_t ids[2 * 16 + 1];
    for (int i = 0; i <= 2 * 16; i++) ids[i] = (int32_t)((i * 53 + 7) % w->config.n_vocab);
    if (t) {
        /* the float32 parameters start as the dequantized weights, exactly */
        const gpt2_train_tensor *x = gpt2_train_tensor_at(t, 2 + 8); /* h.0.mlp.c_fc.weight */
        const float *P = gpt2_train_array(t, 0) + x->offset;
        int same = 1;
        for (int o = 0; o < x->rows; o++)
            for (int i = 0; i < x->cols; i++) same &= P[(size_t)o * x->cols + i] == gpt2_matrix_get(&w->layers[0].fc_w, o, i);
        CHECK(same, "q8_0 weights up-converted exactly");
        CHECK_OK(gpt2_train_set_data(t, ids, 2 * 16 + 1, &err), &err);
        for (int s = 0; s < 2; s++) CHECK_OK(gpt2_train_step(t, NULL, &err), &err);
        CHECK_OK(gpt2_train_write_back(t, w, &err), &err);
        int ok = 1;
        for (int o = 0; o < x->rows; o++)
            for (int b = 0; b < x->cols / 32; b++) {
                int8_t q[32];
                float scale;
                gpt2_q8_quantize_block(P + (size_t)o * x->cols + 32 * b, q, NULL, &scale);
                for (int e = 0; e < 32; e++) ok &= gpt2_matrix_get(&w->layers[0].fc_w, o, 32 * b + e) == (float)q[e] * scale;
            }
        CHECK(ok, "written-back q8_0 weights are not the re-quantized trained ones");
    }
    gpt2_train_free(t);
    gpt2_weights_free(w);
}

/* Logits of every position of ids under w (one prefill). */
static float *all_logits(const gpt2_weights *w, const int32_t *ids, int n) {
    gpt2_state *s = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_state_create(w, 64, &s, &err), &err);
    float *out = malloc((size_t)n * w->config.n_vocab * sizeof *out);
    if (s && out) CHECK_OK(gpt2_forward(s, ids, n, out, 1, &err), &err);
    gpt2_state_free(s);
    return out;
}

/* Save (safetensors + config.json from the training state), load again: the logits are those
 * of the written-back model in memory, bit for bit (f32; f16 saves the same rounding the
 * write-back stores). The checkpoint resumes with identical losses. */
static void check_save_roundtrip(const char *fx, gpt2_dtype dtype) {
    char dir[128];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", fx);
    gpt2_weights *w = NULL, *w0 = NULL, *w2 = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_load_dir(dir, NULL, &w, &err), &err);
    CHECK_OK(gpt2_load_dir(dir, NULL, &w0, &err), &err);
    enum { T = 16 };
    int32_t ids[4 * T + 1];
    if (!w || !w0) goto done;
    for (int i = 0; i <= 4 * T; i++) ids[i] = (int32_t)((i * 131 + 3) % w->config.n_vocab);
    gpt2_train *t = make_train(w, 2, T, GPT2_OPTIM_ADAMW, 1e-2f);
    if (!t) goto done;
    CHECK_OK(gpt2_train_set_data(t, ids, 4 * T + 1, &err), &err);
    for (int s = 0; s < 2; s++) CHECK_OK(gpt2_train_step(t, NULL, &err), &err);
    /* checkpoint after 2 steps, then 2 more steps */
    uint64_t csize = gpt2_train_checkpoint_size(t);
    uint8_t *ckpt = malloc(csize);
    CHECK_OK(gpt2_train_checkpoint_write(t, ckpt, csize, &err), &err);
    float losses[2], resumed[2];
    for (int s = 0; s < 2; s++) {
        gpt2_train_stats st;
        CHECK_OK(gpt2_train_step(t, &st, &err), &err);
        losses[s] = st.loss;
    }
    CHECK_OK(gpt2_train_write_back(t, w, &err), &err);
    float *a = all_logits(w, ids, 20);

    uint64_t size = gpt2_train_safetensors_size(t, dtype);
    uint8_t *file = malloc(size);
    CHECK_OK(gpt2_train_write_safetensors(t, dtype, file, size, &err), &err);
    char config[1024];
    size_t clen = gpt2_train_config_json(t, dtype, config, sizeof config);
    CHECK(clen > 0 && clen < sizeof config, "config.json length %zu", clen);
    gpt2_loader *ld = NULL;
    CHECK_OK(gpt2_loader_create(config, clen, NULL, &ld, &err), &err);
    if (ld) {
        CHECK_OK(gpt2_loader_feed(ld, file, (size_t)size, &err), &err);
        CHECK_OK(gpt2_loader_finish(ld, &w2, &err), &err);
    }
    gpt2_loader_free(ld);
    if (w2) {
        CHECK(w2->tied_head == w->tied_head && gpt2_weights_main_dtype(w2) == gpt2_weights_main_dtype(w),
              "%s: reloaded model differs in tying or precision", fx);
        float *b = all_logits(w2, ids, 20);
        CHECK(a && b && memcmp(a, b, (size_t)20 * w->config.n_vocab * 4) == 0,
              "%s: logits after save + load differ from the model in memory", fx);
        free(b);
    }
    /* the model in memory (after write-back) saves to the same bytes */
    uint64_t wsize = gpt2_weights_safetensors_size(w, dtype);
    uint8_t *wfile = malloc(wsize ? wsize : 1);
    CHECK(wsize == size, "%s: weights file %llu bytes, training state's %llu", fx, (unsigned long long)wsize,
          (unsigned long long)size);
    CHECK_OK(gpt2_weights_write_safetensors(w, dtype, wfile, wsize, &err), &err);
    CHECK(wsize == size && memcmp(wfile, file, size) == 0, "%s: the model saves other bytes than the state", fx);
    free(wfile);
    CHECK_FAILS(gpt2_train_write_safetensors(t, dtype, file, size - 1, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_train_write_safetensors(t, GPT2_DTYPE_Q8_0, file, size, &err), GPT2_ERR_ARG, &err);

    /* resume: a fresh state from the original weights + the checkpoint repeats steps 3 and 4 */
    gpt2_train *r = make_train(w0, 2, T, GPT2_OPTIM_ADAMW, 1e-2f);
    if (r) {
        CHECK_OK(gpt2_train_set_data(r, ids, 4 * T + 1, &err), &err);
        size_t np = gpt2_train_param_count(r);
        float *p0 = malloc(np * 4);
        memcpy(p0, gpt2_train_array(r, 0), np * 4);
        ckpt[0] ^= 1;
        CHECK_FAILS(gpt2_train_checkpoint_read(r, ckpt, csize, &err), GPT2_ERR_FORMAT, &err);
        ckpt[0] ^= 1;
        CHECK_FAILS(gpt2_train_checkpoint_read(r, ckpt, csize - 4, &err), GPT2_ERR_FORMAT, &err);
        /* another shape with as many parameters (n_head at header bytes 44..47: 4 -> 2) */
        int32_t heads = 0, two = 2;
        memcpy(&heads, ckpt + 44, 4);
        CHECK(heads == w->config.n_head, "%s: the checkpoint records %d heads, the model has %d", fx, heads,
              w->config.n_head);
        memcpy(ckpt + 44, &two, 4);
        CHECK_FAILS(gpt2_train_checkpoint_read(r, ckpt, csize, &err), GPT2_ERR_SHAPE, &err);
        CHECK(strstr(err.message, "another model") != NULL, "shape mismatch message: %s", err.message);
        memcpy(ckpt + 44, &heads, 4);
        /* a version this build does not read */
        ckpt[8] ^= 3;
        CHECK_FAILS(gpt2_train_checkpoint_read(r, ckpt, csize, &err), GPT2_ERR_UNSUPPORTED, &err);
        ckpt[8] ^= 3;
        CHECK(memcmp(p0, gpt2_train_array(r, 0), np * 4) == 0 && gpt2_train_step_count(r) == 0,
              "a refused checkpoint changed the state");
        CHECK_OK(gpt2_train_checkpoint_read(r, ckpt, csize, &err), &err);
        CHECK(gpt2_train_step_count(r) == 2, "resumed at step %lld", (long long)gpt2_train_step_count(r));
        for (int s = 0; s < 2; s++) {
            gpt2_train_stats st;
            CHECK_OK(gpt2_train_step(r, &st, &err), &err);
            resumed[s] = st.loss;
        }
        CHECK(memcmp(losses, resumed, sizeof losses) == 0, "%s: resumed losses %.9g %.9g, uninterrupted %.9g %.9g",
              fx, resumed[0], resumed[1], losses[0], losses[1]);
        free(p0);
        gpt2_train_free(r);
    }
    free(a);
    free(file);
    free(ckpt);
    gpt2_train_free(t);
done:
    gpt2_weights_free(w);
    gpt2_weights_free(w0);
    gpt2_weights_free(w2);
}

int main(void) {
    gpt2_pool *pool2 = NULL, *pool3 = NULL;
    gpt2_error err;
    CHECK_OK(gpt2_pool_create(2, &pool2, &err), &err);
    CHECK_OK(gpt2_pool_create(3, &pool3, &err), &err);
    const char *fixtures[] = {"tiny-f32", "tiny-f16", "tiny-bf16"};
    for (int i = 0; i < 3; i++) check_fixture(fixtures[i], pool2, pool3);
    check_bad_input();
    check_shuffle();
    check_write_back("tiny-f32");
    check_write_back("tiny-f16");
    check_schedule();
    check_accumulation();
    check_q8();
    check_save_roundtrip("tiny-f32", GPT2_DTYPE_F32);
    check_save_roundtrip("tiny-f16", GPT2_DTYPE_F16);
    gpt2_pool_free(pool2);
    gpt2_pool_free(pool3);
    return check_summary("test_train");
}
