/* sampler.c - next-token sampling (see sampler.h).
 *
 * Determinism: everything that decides which token comes out is integer arithmetic (PCG32,
 * the selection algorithms, a total order on tokens) or IEEE double +, -, *, / in a fixed
 * order (gpt2_exp, the sums). No libm call, no qsort, no FMA (the build uses
 * -ffp-contract=off), so x86-64 and WebAssembly agree bit for bit.
 *
 * Token order: token a ranks before token b when its (penalised) logit is larger, or the
 * logits are equal and a < b. This is a total order, so "the k best" and "the most probable
 * prefix" are unique, ties included. Dividing by a temperature T > 0 in double keeps it.
 *
 * Why one file over 600 lines: it holds everything the choice of a token depends on, in the
 * order it is used (the random stream, exp, the selection algorithms, the sampling steps), so
 * that determinism can be checked in one place; the exp table alone is 22 lines. gpt2_exp and
 * gpt2_tanh are shared with the kernels (gelu_new) and training for the same reason.
 */
#include "sampler.h"

#include <math.h> /* isnan / INFINITY macros only; no libm function is called */
#include <stdlib.h>
#include <string.h>

struct gpt2_sampler {
    gpt2_sampler_params params;
    int n_vocab;
    gpt2_pcg32 rng;
    double *w;           /* [n_vocab] unnormalised probabilities exp((l - lmax) / T) */
    uint64_t *keys;      /* [n_vocab] rank keys (see rank_key) partitioned by top-k / top-p */
    unsigned char *seen; /* [n_vocab] repetition-penalty marks; all 0 between calls */
    int32_t *bias_ids;   /* [n_bias] owned copy of params.bias_ids */
    float *bias;         /* [n_bias] owned copy of params.bias */
};

/* ---------------------------------------------------------------- PCG32 */

#define PCG32_MULT 6364136223846793005ULL
#define SAMPLER_STREAM 54u /* initseq of the sampler's PCG32 stream */

uint32_t gpt2_pcg32_next(gpt2_pcg32 *r) {
    uint64_t old = r->state;
    r->state = old * PCG32_MULT + r->inc;
    /* XSH-RR: xorshift the high bits down, then rotate by the top 5 bits. */
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

void gpt2_pcg32_seed(gpt2_pcg32 *r, uint64_t initstate, uint64_t initseq) {
    r->state = 0;
    r->inc = (initseq << 1) | 1u;
    gpt2_pcg32_next(r);
    r->state += initstate;
    gpt2_pcg32_next(r);
}

double gpt2_pcg32_double(gpt2_pcg32 *r) {
    uint32_t a = gpt2_pcg32_next(r) >> 5; /* 27 bits */
    uint32_t b = gpt2_pcg32_next(r) >> 6; /* 26 bits */
    /* Both steps are exact in double: the integer has 53 bits, the scale is a power of 2. */
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

/* ---------------------------------------------------------------- exp */

/* 2^k as a double for -1022 <= k <= 1023, from its IEEE-754 bits. */
static double pow2i(int k) {
    uint64_t bits = (uint64_t)(k + 1023) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* gpt2_exp2_j64[j] = 2^(j/64), correctly rounded (computed to 60 digits with Python's decimal). */
const double gpt2_exp2_j64[64] = {
    0x1.0000000000000p+0, 0x1.02c9a3e778061p+0, 0x1.059b0d3158574p+0,
    0x1.0874518759bc8p+0, 0x1.0b5586cf9890fp+0, 0x1.0e3ec32d3d1a2p+0,
    0x1.11301d0125b51p+0, 0x1.1429aaea92de0p+0, 0x1.172b83c7d517bp+0,
    0x1.1a35beb6fcb75p+0, 0x1.1d4873168b9aap+0, 0x1.2063b88628cd6p+0,
    0x1.2387a6e756238p+0, 0x1.26b4565e27cddp+0, 0x1.29e9df51fdee1p+0,
    0x1.2d285a6e4030bp+0, 0x1.306fe0a31b715p+0, 0x1.33c08b26416ffp+0,
    0x1.371a7373aa9cbp+0, 0x1.3a7db34e59ff7p+0, 0x1.3dea64c123422p+0,
    0x1.4160a21f72e2ap+0, 0x1.44e086061892dp+0, 0x1.486a2b5c13cd0p+0,
    0x1.4bfdad5362a27p+0, 0x1.4f9b2769d2ca7p+0, 0x1.5342b569d4f82p+0,
    0x1.56f4736b527dap+0, 0x1.5ab07dd485429p+0, 0x1.5e76f15ad2148p+0,
    0x1.6247eb03a5585p+0, 0x1.6623882552225p+0, 0x1.6a09e667f3bcdp+0,
    0x1.6dfb23c651a2fp+0, 0x1.71f75e8ec5f74p+0, 0x1.75feb564267c9p+0,
    0x1.7a11473eb0187p+0, 0x1.7e2f336cf4e62p+0, 0x1.82589994cce13p+0,
    0x1.868d99b4492edp+0, 0x1.8ace5422aa0dbp+0, 0x1.8f1ae99157736p+0,
    0x1.93737b0cdc5e5p+0, 0x1.97d829fde4e50p+0, 0x1.9c49182a3f090p+0,
    0x1.a0c667b5de565p+0, 0x1.a5503b23e255dp+0, 0x1.a9e6b5579fdbfp+0,
    0x1.ae89f995ad3adp+0, 0x1.b33a2b84f15fbp+0, 0x1.b7f76f2fb5e47p+0,
    0x1.bcc1e904bc1d2p+0, 0x1.c199bdd85529cp+0, 0x1.c67f12e57d14bp+0,
    0x1.cb720dcef9069p+0, 0x1.d072d4a07897cp+0, 0x1.d5818dcfba487p+0,
    0x1.da9e603db3285p+0, 0x1.dfc97337b9b5fp+0, 0x1.e502ee78b3ff6p+0,
    0x1.ea4afa2a490dap+0, 0x1.efa1bee615a27p+0, 0x1.f50765b6e4540p+0,
    0x1.fa7c1819e90d8p+0,
};

/* The body of gpt2_exp, static inline so that the softmax loop can inline it. */
static inline double exp_impl(double x) {
    if (x != x) return x;                      /* NaN */
    if (x > 709.782712893384) return INFINITY; /* e^x > DBL_MAX */
    if (x < -745.2) return 0.0;                /* below half the smallest subnormal */

    /* Range reduction: n = round(x * 64 / ln2), r = x - n ln2/64, so |r| <= ln2/128 (plus
     * rounding) and e^x = 2^k * 2^(j/64) * e^r with n = 64 k + j, 0 <= j < 64.
     * ln2/64 = LN2_64_HI + LN2_64_LO with LN2_64_HI's low 32 mantissa bits zero, so
     * n * LN2_64_HI is exact (|n| < 2^17) and the reduction loses nothing significant. */
    double nd = (x * GPT2_EXP_INV_LN2_64 + GPT2_EXP_SHIFT) - GPT2_EXP_SHIFT;
    /* n + 2^20 > 0 (|n| < 70000, nd is an exact integer), so the split is plain bit work */
    uint32_t biased = (uint32_t)((int32_t)nd + (1 << 20));
    int j = (int)(biased & 63u);
    int k = (int)(biased >> 6) - (1 << 14);
    double r = (x - nd * GPT2_EXP_LN2_64_HI) - nd * GPT2_EXP_LN2_64_LO;

    /* e^r by its degree-5 Taylor polynomial (Horner); the first omitted term is
     * |r|^6 / 720 < 0.00542^6 / 720 < 4e-17, below double rounding. */
    double p = 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    double y = gpt2_exp2_j64[j] * p;

    /* Scale by 2^k. k = 1024 happens just below the overflow bound; k < -1022 gives a
     * subnormal: scale exactly into the normal range first so that only the last
     * multiplication rounds. */
    if (k > 1023) return (y * 2.0) * pow2i(k - 1);
    if (k < -1022) return (y * pow2i(k + 1022)) * pow2i(-1022);
    return y * pow2i(k);
}

double gpt2_exp(double x) { return exp_impl(x); }

double gpt2_tanh(double x) {
    if (x != x) return x;
    if (x > 20.0) return 1.0; /* 1 - tanh(20) < 1e-17: 1 in double */
    if (x < -20.0) return -1.0;
    return 1.0 - 2.0 / (exp_impl(2.0 * x) + 1.0);
}

/* ---------------------------------------------------------------- argmax */

int gpt2_argmax(const float *x, int n) {
    if (!x || n <= 0) return -1;
    int best = -1;
    float bv = 0.0f; /* x[best], kept in a register */
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        if (best < 0 || x[i] > bv) { /* strict >: ties keep the lower index */
            best = i;
            bv = x[i];
        }
    }
    return best;
}

/* ---------------------------------------------------------------- params, lifetime */

void gpt2_sampler_params_default(gpt2_sampler_params *p) {
    if (!p) return;
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->repetition_penalty = 1.0f;
    p->seed = 0;
    p->bias_ids = NULL;
    p->bias = NULL;
    p->n_bias = 0;
}

static gpt2_err check_params(const gpt2_sampler_params *p, gpt2_error *err) {
    if (!(p->temperature >= 0.0f) || isinf(p->temperature))
        return gpt2_fail(err, GPT2_ERR_ARG, "temperature must be a finite number >= 0, got %g",
                         (double)p->temperature);
    if (p->top_k < 0)
        return gpt2_fail(err, GPT2_ERR_ARG, "top_k must be >= 0 (0 = off), got %d", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return gpt2_fail(err, GPT2_ERR_ARG, "top_p must be in (0, 1], got %g", (double)p->top_p);
    if (!(p->repetition_penalty > 0.0f) || isinf(p->repetition_penalty))
        return gpt2_fail(err, GPT2_ERR_ARG,
                         "repetition_penalty must be a finite number > 0 (1 = off), got %g",
                         (double)p->repetition_penalty);
    if (p->n_bias < 0 || (p->n_bias > 0 && (!p->bias_ids || !p->bias)))
        return gpt2_fail(err, GPT2_ERR_ARG, "logit bias: %d entries but no ids or values", p->n_bias);
    for (int i = 0; i < p->n_bias; i++)
        if (isnan(p->bias[i]) || p->bias[i] == INFINITY)
            return gpt2_fail(err, GPT2_ERR_ARG,
                             "logit bias of token %d must be a finite number or -Infinity, got %g",
                             (int)p->bias_ids[i], (double)p->bias[i]);
    return GPT2_OK;
}

gpt2_err gpt2_sampler_create(const gpt2_sampler_params *p, int n_vocab, gpt2_sampler **out,
                             gpt2_error *err) {
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_sampler_create: out is NULL");
    *out = NULL;
    if (!p) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_sampler_create: params is NULL");
    if (n_vocab <= 0)
        return gpt2_fail(err, GPT2_ERR_ARG, "n_vocab must be > 0, got %d", n_vocab);
    gpt2_err rc = check_params(p, err);
    if (rc != GPT2_OK) return rc;

    for (int i = 0; i < p->n_bias; i++)
        if (p->bias_ids[i] < 0 || p->bias_ids[i] >= n_vocab)
            return gpt2_fail(err, GPT2_ERR_RANGE, "logit bias: token id %d is outside the vocabulary [0, %d)",
                             (int)p->bias_ids[i], n_vocab);

    gpt2_sampler *s = calloc(1, sizeof *s);
    if (!s) return gpt2_fail(err, GPT2_ERR_NOMEM, "sampler: out of memory");
    s->params = *p;
    s->n_vocab = n_vocab;
    if (p->n_bias > 0) {
        s->bias_ids = malloc((size_t)p->n_bias * sizeof *s->bias_ids);
        s->bias = malloc((size_t)p->n_bias * sizeof *s->bias);
        int *slot = malloc((size_t)n_vocab * sizeof *slot); /* id -> entry, or -1 */
        if (!s->bias_ids || !s->bias || !slot) {
            free(slot);
            gpt2_sampler_free(s);
            return gpt2_fail(err, GPT2_ERR_NOMEM, "sampler: out of memory for the logit bias");
        }
        for (int i = 0; i < n_vocab; i++) slot[i] = -1;
        /* One entry per id, in first-seen order, holding the sum of its values (the
         * float sum in the order given, as adding them one by one would give). */
        int m = 0;
        for (int i = 0; i < p->n_bias; i++) {
            int j = slot[p->bias_ids[i]];
            if (j < 0) {
                slot[p->bias_ids[i]] = m;
                s->bias_ids[m] = p->bias_ids[i];
                s->bias[m++] = p->bias[i];
            } else {
                s->bias[j] += p->bias[i];
            }
        }
        free(slot);
        s->params.n_bias = m;
    }
    s->params.bias_ids = s->bias_ids;
    s->params.bias = s->bias;
    s->w = malloc((size_t)n_vocab * sizeof *s->w);
    s->keys = malloc((size_t)n_vocab * sizeof *s->keys);
    s->seen = calloc((size_t)n_vocab, 1);
    if (!s->w || !s->keys || !s->seen) {
        gpt2_sampler_free(s);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "sampler: out of memory for a %d-token vocabulary",
                         n_vocab);
    }
    gpt2_pcg32_seed(&s->rng, p->seed, SAMPLER_STREAM);
    *out = s;
    return GPT2_OK;
}

void gpt2_sampler_free(gpt2_sampler *s) {
    if (!s) return;
    free(s->w);
    free(s->keys);
    free(s->seen);
    free(s->bias_ids);
    free(s->bias);
    free(s);
}

/* ---------------------------------------------------------------- selection */

/* Rank key: a 64-bit integer that is larger exactly when a token ranks before another
 * (larger logit, then lower id), so selection compares plain integers. High half: the
 * logit's IEEE bits mapped to an unsigned integer with the same order as the floats
 * (negative: invert all bits; otherwise: set the sign bit), -0 folded into +0 because the
 * floats compare equal. Low half: ~id, so a lower id gives a larger key. Keys are unique. */
static uint64_t rank_key(float logit, int32_t id) {
    uint32_t b;
    logit = logit + 0.0f; /* IEEE: -0 + +0 = +0; any other value is unchanged */
    memcpy(&b, &logit, sizeof b);
    uint32_t negative = 0u - (b >> 31); /* all ones for negative logits, else 0 */
    b ^= negative | 0x80000000u;
    return ((uint64_t)b << 32) | (uint64_t)(~(uint32_t)id);
}

static int32_t key_id(uint64_t key) { return (int32_t)(~(uint32_t)key); }

static void swap_keys(uint64_t *a, int i, int j) {
    uint64_t t = a[i];
    a[i] = a[j];
    a[j] = t;
}

/* Partitions a[lo..hi) (hi > lo) around a median-of-three pivot. Returns s such that
 * a[lo..s) > a[s] (the pivot) > a[s+1..hi). */
static int partition(uint64_t *a, int lo, int hi) {
    int mid = lo + (hi - lo) / 2, last = hi - 1;
    /* Order a[lo] >= a[mid] >= a[last], then park the median at last. */
    if (a[mid] > a[lo]) swap_keys(a, mid, lo);
    if (a[last] > a[mid]) swap_keys(a, last, mid);
    if (a[mid] > a[lo]) swap_keys(a, mid, lo);
    swap_keys(a, mid, last);
    uint64_t pivot = a[last];
    int store = lo;
    /* Branch-free Lomuto: a[lo..store) > pivot >= a[store..j). Always swap, advance store
     * only when the key belongs to the left side (no mispredicted branch per key). */
    for (int j = lo; j < last; j++) {
        uint64_t v = a[j];
        a[j] = a[store];
        a[store] = v;
        store += v > pivot;
    }
    swap_keys(a, store, last);
    return store;
}

/* Heapsort of a[0..n) into descending order. Used when quickselect degenerates and to put
 * a small set of survivors in id order. */
static void sift_down(uint64_t *a, int root, int n) {
    /* min-heap: the root is the smallest key */
    for (;;) {
        int child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && a[child + 1] < a[child]) child++;
        if (a[root] <= a[child]) return;
        swap_keys(a, root, child);
        root = child;
    }
}

static void sort_desc(uint64_t *a, int n) {
    for (int i = n / 2 - 1; i >= 0; i--) sift_down(a, i, n);
    for (int end = n - 1; end > 0; end--) {
        swap_keys(a, 0, end); /* smallest remaining key goes to the back */
        sift_down(a, 0, end);
    }
}

/* Quickselect rounds before falling back to the heapsort: ~4 log2(n) + 16. */
static int select_budget(int n) {
    int b = 16;
    while (n > 1) {
        n >>= 1;
        b += 4;
    }
    return b;
}

/* Reorders a[0..n) so that a[0..k) are the k largest keys (in no particular order);
 * 0 < k < n. Expected O(n). */
static void quickselect_top_k(uint64_t *a, int n, int k) {
    int lo = 0, hi = n, budget = select_budget(n);
    /* Invariant: a[0..lo) > a[lo..hi) > a[hi..n) elementwise; lo <= k <= hi. */
    while (hi - lo > 1) {
        if (budget-- == 0) {
            sort_desc(a + lo, hi - lo);
            return;
        }
        int s = partition(a, lo, hi);
        if (s == k || s == k - 1) return;
        if (s > k)
            hi = s;
        else
            lo = s + 1;
    }
}

/* Writes the keys of the k best-ranked tokens of l[0..n) to a[0..k) (in no particular
 * order); 0 < k < n. Small k: one pass keeping a min-heap of the k best keys seen, O(n log k)
 * worst case but the heap rarely changes. Otherwise quickselect on all keys, expected O(n). */
static void select_top_k(const float *l, uint64_t *a, int n, int k) {
    if (k <= n / 64) {
        for (int i = 0; i < k; i++) a[i] = rank_key(l[i], i);
        for (int i = k / 2 - 1; i >= 0; i--) sift_down(a, i, k);
        for (int i = k; i < n; i++) {
            uint64_t key = rank_key(l[i], i);
            if (key > a[0]) { /* beats the worst of the k best so far */
                a[0] = key;
                sift_down(a, 0, k);
            }
        }
        return;
    }
    for (int i = 0; i < n; i++) a[i] = rank_key(l[i], i);
    quickselect_top_k(a, n, k);
}

/* Nucleus: given keys a[0..m) of tokens with weights w (total mass >= target > 0),
 * reorders a so that a[0..c) are the c best-ranked tokens, where c is the smallest count
 * whose mass reaches target, and returns c (>= 1). Expected O(m): partition around a
 * pivot, sum the better side, and continue only in the side that contains the boundary.
 * If rounding keeps the sums just short of target, returns the set judged sufficient. */
static int select_nucleus(const double *w, uint64_t *a, int m, double target) {
    int lo = 0, hi = m, budget = select_budget(m);
    double acc = 0.0;
    /* Invariant: a[0..lo) > a[lo..hi) > a[hi..m) elementwise; acc = mass of a[0..lo),
     * acc < target; the boundary c lies in (lo, hi]. */
    while (lo < hi) {
        if (budget-- == 0) {
            sort_desc(a + lo, hi - lo);
            for (int j = lo; j < hi; j++) {
                acc += w[key_id(a[j])];
                if (acc >= target) return j + 1;
            }
            return hi;
        }
        int s = partition(a, lo, hi);
        double better = 0.0; /* mass of a[lo..s), the tokens ranked before the pivot */
        for (int j = lo; j < s; j++) better += w[key_id(a[j])];
        double pivot_w = w[key_id(a[s])];
        if (acc + better >= target) {
            hi = s; /* s > lo here, since acc < target */
        } else if (acc + better + pivot_w >= target) {
            return s + 1;
        } else {
            acc = acc + better + pivot_w;
            lo = s + 1;
        }
    }
    return hi;
}

/* ---------------------------------------------------------------- sampling */

/* The CTRL / Hugging Face repetition penalty: a seen token's logit moves towards "less
 * likely" - divided by p when positive, multiplied by p when negative (p > 1 penalises). */
static float penalise(float logit, float p) {
    return logit > 0.0f ? logit / p : logit * p;
}

/* Everything before the draw: checks, logit bias, repetition penalty, temperature, top-k,
 * top-p. On success *best is the argmax of the biased, penalised logits; *m_out is -1 for
 * greedy (temperature 0), else the survivors are every id (*m_out == n_vocab) or the ids of
 * s->keys[0..*m_out), with weights s->w[id] = exp((l - lmax) / T). */
static gpt2_err filter(gpt2_sampler *s, float *logits, const int32_t *history, size_t n_history, int *best_out,
                       int *m_out, gpt2_error *err) {
    const int n = s->n_vocab;
    const gpt2_sampler_params *p = &s->params;
    float *l = logits;

    for (size_t h = 0; h < n_history; h++)
        if (history[h] < 0 || history[h] >= n)
            return gpt2_fail(err, GPT2_ERR_RANGE,
                             "history[%zu] = %d is not a token id in [0, %d)", h,
                             (int)history[h], n);
    /* One pass: reject NaN / +inf and find the argmax (ties -> lowest id). */
    int best = 0;
    float bv = l[0];
    for (int i = 0; i < n; i++) {
        float v = l[i];
        if (isnan(v)) return gpt2_fail(err, GPT2_ERR_RANGE, "logit of token %d is NaN", i);
        if (v == INFINITY)
            return gpt2_fail(err, GPT2_ERR_RANGE, "logit of token %d is +inf", i);
        if (v > bv) {
            best = i;
            bv = v;
        }
    }

    /* Logit bias. Checked first (a sum that overflows to +inf is an error, logits untouched),
     * then applied. */
    if (p->n_bias > 0) {
        for (int i = 0; i < p->n_bias; i++) /* ids are distinct (merged at creation) */
            if (l[p->bias_ids[i]] + p->bias[i] == INFINITY)
                return gpt2_fail(err, GPT2_ERR_RANGE, "logit of token %d overflows to +inf with its bias",
                                 (int)p->bias_ids[i]);
        for (int i = 0; i < p->n_bias; i++) l[p->bias_ids[i]] += p->bias[i];
        best = gpt2_argmax(l, n); /* >= 0: no NaN (-inf + -inf = -inf, finite + -inf = -inf) */
    }

    /* Repetition penalty, once per distinct token of history. Pass 1 marks the tokens and
     * checks that no penalised logit overflows to +inf (possible only for p < 1); pass 2
     * applies the penalty and clears the marks, so logits stays untouched on error. */
    if (p->repetition_penalty != 1.0f && n_history > 0) {
        int overflow = -1;
        for (size_t h = 0; h < n_history; h++) {
            int32_t t = history[h];
            if (s->seen[t]) continue;
            s->seen[t] = 1;
            if (penalise(l[t], p->repetition_penalty) == INFINITY) overflow = t;
        }
        for (size_t h = 0; h < n_history; h++) {
            int32_t t = history[h];
            if (!s->seen[t]) continue;
            s->seen[t] = 0;
            if (overflow < 0) l[t] = penalise(l[t], p->repetition_penalty);
        }
        if (overflow >= 0)
            return gpt2_fail(err, GPT2_ERR_RANGE,
                             "logit of token %d overflows to +inf under repetition_penalty %g",
                             overflow, (double)p->repetition_penalty);
        best = gpt2_argmax(l, n); /* >= 0: no NaN */
    }

    if (l[best] == -INFINITY)
        return gpt2_fail(err, GPT2_ERR_RANGE, "every logit is -inf: nothing to sample");
    *best_out = best;
    *m_out = -1;
    if (p->temperature == 0.0f) return GPT2_OK; /* greedy */

    /* Temperature and softmax numerator: w_i = exp((l_i - l_max) / T) in double, so the best
     * token has weight exactly 1 and nothing overflows. Normalisation is deferred: every
     * decision below compares partial sums against (a fraction of) a total mass. */
    const double lmax = l[best], T = p->temperature;
    double *w = s->w;
    uint64_t *a = s->keys;
    const int k = (p->top_k > 0 && p->top_k < n) ? p->top_k : n;
    const int use_top_p = p->top_p < 1.0f;
    int m = n; /* tokens a[0..m) survive the filters so far */

    if (k < n) {
        /* Top-k by partial selection; only the survivors need a weight. */
        select_top_k(l, a, n, k);
        m = k;
        for (int j = 0; j < m; j++) {
            int32_t id = key_id(a[j]);
            w[id] = exp_impl(((double)l[id] - lmax) / T);
        }
    } else {
        for (int i = 0; i < n; i++) w[i] = exp_impl(((double)l[i] - lmax) / T);
        if (use_top_p)
            for (int i = 0; i < n; i++) a[i] = rank_key(l[i], i);
    }

    if (use_top_p) {
        /* Top-p: keep the smallest best-ranked prefix whose probability, i.e. mass / Z over
         * the top-k survivors, reaches top_p; compared as mass >= top_p * Z. */
        double z = 0.0;
        for (int j = 0; j < m; j++) z += w[key_id(a[j])];
        m = select_nucleus(w, a, m, (double)p->top_p * z);
    }
    *m_out = m;
    return GPT2_OK;
}

/* The NULL checks the public functions share. */
static gpt2_err check_call(const char *fn, const gpt2_sampler *s, const float *logits, const int32_t *history,
                           size_t n_history, const void *out, gpt2_error *err) {
    if (!s) return gpt2_fail(err, GPT2_ERR_ARG, "%s: sampler is NULL", fn);
    if (!logits) return gpt2_fail(err, GPT2_ERR_ARG, "%s: logits is NULL", fn);
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "%s: output is NULL", fn);
    if (!history && n_history > 0)
        return gpt2_fail(err, GPT2_ERR_ARG, "%s: history is NULL but n_history is %zu", fn, n_history);
    return GPT2_OK;
}

gpt2_err gpt2_sampler_sample(gpt2_sampler *s, float *logits, const int32_t *history,
                             size_t n_history, int32_t *out_id, gpt2_error *err) {
    gpt2_err rc = check_call("gpt2_sampler_sample", s, logits, history, n_history, out_id, err);
    int best = 0, m = 0;
    if (rc == GPT2_OK) rc = filter(s, logits, history, n_history, &best, &m, err);
    if (rc != GPT2_OK) return rc;
    if (m < 0) { /* greedy; draws nothing, so the seed is irrelevant */
        *out_id = best;
        return GPT2_OK;
    }
    const int n = s->n_vocab;
    const float *l = logits;
    const double *w = s->w;
    uint64_t *a = s->keys;

    /* Draw by inverting the CDF over the survivors in ascending id order: the first id whose
     * running mass exceeds u * total, u uniform in [0, 1). The sums run in id order whichever
     * way the survivors are enumerated, so the result does not depend on the path taken. */
    const double u = gpt2_pcg32_double(&s->rng);
    double total = 0.0, acc = 0.0;
    int32_t pick = -1, last_positive = best;
    if (m == n) {
        for (int i = 0; i < n; i++) total += w[i];
        const double target = u * total;
        for (int i = 0; i < n && pick < 0; i++) {
            acc += w[i];
            if (w[i] > 0.0) last_positive = i;
            if (target < acc) pick = i; /* strict: a zero-weight token is never picked */
        }
    } else if (m <= n / 64) {
        /* Few survivors: sort their ids (key ~id descending = id ascending). */
        for (int j = 0; j < m; j++) a[j] = (uint64_t)(~(uint32_t)key_id(a[j]));
        sort_desc(a, m);
        for (int j = 0; j < m; j++) total += w[key_id(a[j])];
        const double target = u * total;
        for (int j = 0; j < m && pick < 0; j++) {
            int32_t id = key_id(a[j]);
            acc += w[id];
            if (w[id] > 0.0) last_positive = id;
            if (target < acc) pick = id;
        }
    } else {
        /* Many survivors: scan all ids; survivors are the keys >= the smallest kept key.
         * Non-survivors add +0.0, which leaves a non-negative sum bit-identical, so these
         * sums equal the ones of the paths above; the select avoids a branch per id. */
        uint64_t cut = a[0];
        for (int j = 1; j < m; j++)
            if (a[j] < cut) cut = a[j];
        for (int i = 0; i < n; i++) total += rank_key(l[i], i) >= cut ? w[i] : 0.0;
        const double target = u * total;
        for (int i = 0; i < n && pick < 0; i++) {
            double wi = rank_key(l[i], i) >= cut ? w[i] : 0.0;
            acc += wi;
            if (wi > 0.0) last_positive = i;
            if (target < acc) pick = i;
        }
    }
    /* If u * total rounded up to total, no running mass exceeded it: the draw then belongs
     * to the last survivor with non-zero weight. */
    *out_id = pick >= 0 ? pick : last_positive;
    return GPT2_OK;
}

gpt2_err gpt2_sampler_distribution(gpt2_sampler *s, float *logits, const int32_t *history, size_t n_history,
                                   double *probs, gpt2_error *err) {
    gpt2_err rc = check_call("gpt2_sampler_distribution", s, logits, history, n_history, probs, err);
    int best = 0, m = 0;
    if (rc == GPT2_OK) rc = filter(s, logits, history, n_history, &best, &m, err);
    if (rc != GPT2_OK) return rc;
    const int n = s->n_vocab;
    memset(probs, 0, (size_t)n * sizeof *probs);
    if (m < 0) {
        probs[best] = 1.0;
        return GPT2_OK;
    }
    if (m == n)
        memcpy(probs, s->w, (size_t)n * sizeof *probs);
    else
        for (int j = 0; j < m; j++) probs[key_id(s->keys[j])] = s->w[key_id(s->keys[j])];
    double total = 0.0; /* in id order, as gpt2_sampler_sample sums */
    for (int i = 0; i < n; i++) total += probs[i];
    for (int i = 0; i < n; i++) probs[i] /= total; /* total >= 1: the best token weighs 1 */
    return GPT2_OK;
}

int gpt2_sampler_is_greedy(const gpt2_sampler *s) { return s && s->params.temperature == 0.0f; }

double gpt2_sampler_uniform(gpt2_sampler *s) { return s ? gpt2_pcg32_double(&s->rng) : 0.0; }

int32_t gpt2_draw_index(const double *w, int n, double u) {
    if (!w || n <= 0) return -1;
    double total = 0.0;
    for (int i = 0; i < n; i++) total += w[i];
    if (!(total > 0.0)) return -1;
    const double target = u * total;
    double acc = 0.0;
    int32_t last_positive = -1;
    for (int i = 0; i < n; i++) {
        acc += w[i];
        if (w[i] > 0.0) last_positive = i;
        if (target < acc) return i; /* strict: a zero weight is never drawn */
    }
    return last_positive; /* u * total rounded up to total */
}
