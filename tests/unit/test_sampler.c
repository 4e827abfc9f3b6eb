/* test_sampler.c - unit tests of src/sampler.c: PCG32 against its published test vector,
 * gpt2_exp against libm, greedy/top-k/top-p/penalty semantics, frequencies against
 * softmax, a golden sequence derived from the PCG32 vector, argument checks, and timing. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "sampler.h"

/* PCG32 demo (pcg-random.org, "pcg32-demo"): seed 42, sequence 54, first six outputs. */
static const uint32_t PCG32_42_54[6] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u,
                                        0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};

/* The uniform the sampler derives from two outputs (documented in sampler.h). */
static double u53(uint32_t a, uint32_t b) {
    return ((double)(a >> 5) * 67108864.0 + (double)(b >> 6)) / 9007199254740992.0;
}

static gpt2_sampler *make(float temp, int top_k, float top_p, float pen, uint64_t seed, int n) {
    gpt2_sampler_params p;
    gpt2_sampler_params_default(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.repetition_penalty = pen;
    p.seed = seed;
    gpt2_sampler *s = NULL;
    gpt2_error err = {0};
    CHECK_OK(gpt2_sampler_create(&p, n, &s, &err), &err);
    return s;
}

/* One draw from a copy of logits (the sampler may modify its input). */
static int32_t draw(gpt2_sampler *s, const float *logits, int n) {
    float buf[64];
    float *x = n <= 64 ? buf : malloc((size_t)n * sizeof *x);
    memcpy(x, logits, (size_t)n * sizeof *x);
    int32_t id = -1;
    gpt2_error err = {0};
    gpt2_err rc = gpt2_sampler_sample(s, x, NULL, 0, &id, &err);
    if (rc != GPT2_OK) CHECK(0, "sample failed: %s", err.message);
    if (x != buf) free(x);
    return id;
}

/* ---------------------------------------------------------------- building blocks */

static void test_pcg32(void) {
    gpt2_pcg32 r;
    gpt2_pcg32_seed(&r, 42, 54);
    for (int i = 0; i < 6; i++) {
        uint32_t v = gpt2_pcg32_next(&r);
        CHECK(v == PCG32_42_54[i], "pcg32(42,54) output %d: 0x%08x, want 0x%08x", i, v,
              PCG32_42_54[i]);
    }
    gpt2_pcg32_seed(&r, 42, 54);
    for (int i = 0; i < 3; i++) {
        double u = gpt2_pcg32_double(&r), want = u53(PCG32_42_54[2 * i], PCG32_42_54[2 * i + 1]);
        CHECK(u == want && u >= 0.0 && u < 1.0, "double %d: %.17g want %.17g", i, u, want);
    }
}

static void test_exp(void) {
    double worst = 0.0, worst_x = 0.0;
    const int N = 2000000;
    for (int i = 0; i <= N; i++) { /* [-100, 0], as used by softmax */
        double x = -100.0 * i / N;
        double ref = exp(x), rel = fabs(gpt2_exp(x) - ref) / ref;
        if (rel > worst) worst = rel, worst_x = x;
    }
    for (int i = 0; i <= N; i++) { /* [-708, 709.7]: the rest of the normal range */
        double x = -708.0 + 1417.7 * i / N;
        double ref = exp(x), rel = fabs(gpt2_exp(x) - ref) / ref;
        if (rel > worst) worst = rel, worst_x = x;
    }
    const double tiny[] = {1e-300, -1e-300, 1e-17, -1e-17, 0.34657359, -0.34657359, 0.5, -0.5};
    for (size_t i = 0; i < sizeof tiny / sizeof *tiny; i++) {
        double x = tiny[i], ref = exp(x), rel = fabs(gpt2_exp(x) - ref) / ref;
        if (rel > worst) worst = rel, worst_x = x;
    }
    printf("gpt2_exp: max relative error vs libm %.3g (at x = %.17g)\n", worst, worst_x);
    CHECK(worst < 1e-13, "gpt2_exp max relative error %g at %.17g", worst, worst_x);
    CHECK(gpt2_exp(0.0) == 1.0, "exp(0) = %.17g", gpt2_exp(0.0));
    CHECK(gpt2_exp(-INFINITY) == 0.0, "exp(-inf) = %g", gpt2_exp(-INFINITY));
    CHECK(gpt2_exp(-746.0) == 0.0, "exp(-746) = %g", gpt2_exp(-746.0));
    CHECK(gpt2_exp(-740.0) > 0.0 && fabs(gpt2_exp(-740.0) / exp(-740.0) - 1) < 1e-6,
          "subnormal exp(-740) = %g", gpt2_exp(-740.0));
    CHECK(isinf(gpt2_exp(710.0)) && isinf(gpt2_exp(INFINITY)), "exp overflow");
    CHECK(fabs(gpt2_exp(709.78) / exp(709.78) - 1) < 1e-13, "exp(709.78) = %g",
          gpt2_exp(709.78));
    CHECK(isnan(gpt2_exp(NAN)), "exp(NaN)");
}

/* gpt2_tanh (gelu_new's tanh, the same bits natively and in WASM) against libm's double tanh:
 * absolute error, which is what gelu's 0.5 x (1 + tanh(u)) sees. */
static void test_tanh(void) {
    double worst = 0.0, worst_x = 0.0;
    const int N = 1000000;
    for (int i = -N; i <= N; i++) {
        double x = 25.0 * i / N, err = fabs(gpt2_tanh(x) - tanh(x));
        if (err > worst) worst = err, worst_x = x;
    }
    printf("gpt2_tanh: max absolute error vs libm %.3g (at x = %.17g)\n", worst, worst_x);
    CHECK(worst < 1e-15, "gpt2_tanh max absolute error %g at %.17g", worst, worst_x);
    CHECK(gpt2_tanh(0.0) == 0.0 && gpt2_tanh(30.0) == 1.0 && gpt2_tanh(-INFINITY) == -1.0, "tanh ends");
    CHECK(isnan(gpt2_tanh(NAN)), "tanh(NaN)");
    for (int i = 0; i <= 1000; i++) { /* odd: tanh(-x) == -tanh(x) is not promised, but close */
        double x = i / 100.0;
        CHECK(fabs(gpt2_tanh(-x) + gpt2_tanh(x)) < 1e-15, "tanh(-%g) = %.17g vs %.17g", x, gpt2_tanh(-x), gpt2_tanh(x));
    }
}

static void test_argmax(void) {
    const float a[] = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
    CHECK(gpt2_argmax(a, 5) == 1, "argmax tie -> lowest: %d", gpt2_argmax(a, 5));
    const float b[] = {NAN, -INFINITY, -1.0f, NAN};
    CHECK(gpt2_argmax(b, 4) == 2, "argmax skips NaN: %d", gpt2_argmax(b, 4));
    const float c[] = {-INFINITY, -INFINITY};
    CHECK(gpt2_argmax(c, 2) == 0, "argmax all -inf: %d", gpt2_argmax(c, 2));
    const float d[] = {NAN};
    CHECK(gpt2_argmax(d, 1) == -1 && gpt2_argmax(a, 0) == -1 && gpt2_argmax(NULL, 3) == -1,
          "argmax degenerate inputs");
}

/* ---------------------------------------------------------------- semantics */

static void test_greedy(void) {
    const float x[] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
    for (uint64_t seed = 0; seed < 20; seed++) {
        gpt2_sampler *s = make(0.0f, 0, 1.0f, 1.0f, seed * 7919u, 5);
        if (!s) return;
        for (int r = 0; r < 5; r++) {
            int32_t id = draw(s, x, 5);
            CHECK(id == 1, "greedy with seed %llu picked %d", (unsigned long long)seed, (int)id);
        }
        gpt2_sampler_free(s);
    }
    /* Greedy draws no random number: the stream continues as if the call never happened. */
    gpt2_sampler *g = make(0.0f, 0, 1.0f, 1.0f, 42, 5);
    gpt2_sampler *t = make(1.0f, 0, 1.0f, 1.0f, 42, 5);
    if (g && t) {
        const float flat[] = {0, 0, 0, 0, 0};
        int32_t a = draw(t, flat, 5);
        draw(g, flat, 5);
        CHECK(a == (int32_t)(u53(PCG32_42_54[0], PCG32_42_54[1]) * 5), "first draw %d", (int)a);
    }
    gpt2_sampler_free(g);
    gpt2_sampler_free(t);
}

/* Random logits with many exact ties (quantised to 0.25). */
static void random_logits(gpt2_pcg32 *r, float *x, int n, float scale) {
    for (int i = 0; i < n; i++) x[i] = (float)((int)(gpt2_pcg32_next(r) % 41) - 20) * scale;
}

static void test_topk1_and_tiny_topp_are_greedy(void) {
    gpt2_pcg32 r;
    gpt2_pcg32_seed(&r, 7, 7);
    const float temps[] = {0.3f, 1.0f, 2.5f, 10.0f};
    float x[40];
    for (int t = 0; t < 4; t++) {
        gpt2_sampler *k1 = make(temps[t], 1, 1.0f, 1.0f, 99, 40);
        gpt2_sampler *p0 = make(temps[t], 0, 1e-6f, 1.0f, 99, 40);
        gpt2_sampler *both = make(temps[t], 3, 1e-6f, 1.0f, 99, 40);
        if (!k1 || !p0 || !both) return;
        for (int rep = 0; rep < 300; rep++) {
            random_logits(&r, x, 40, 0.25f);
            int want = gpt2_argmax(x, 40);
            int32_t a = draw(k1, x, 40), b = draw(p0, x, 40), c = draw(both, x, 40);
            CHECK(a == want && b == want && c == want, "T=%g: top_k=1 %d, top_p tiny %d, both %d, "
                  "argmax %d", (double)temps[t], (int)a, (int)b, (int)c, want);
        }
        gpt2_sampler_free(k1);
        gpt2_sampler_free(p0);
        gpt2_sampler_free(both);
    }
}

/* Draws n_draws tokens and checks frequencies against expected probabilities (within 5
 * standard errors plus 1e-4) and that tokens with probability 0 never appear. */
static void check_frequencies(const char *what, gpt2_sampler *s, const float *x, int n,
                              const double *want, int n_draws) {
    long count[16] = {0};
    for (int d = 0; d < n_draws; d++) {
        int32_t id = draw(s, x, n);
        if (id < 0 || id >= n) {
            CHECK(0, "%s: id %d out of range", what, (int)id);
            return;
        }
        count[id]++;
    }
    for (int i = 0; i < n; i++) {
        double f = (double)count[i] / n_draws;
        double tol = 5.0 * sqrt(want[i] * (1.0 - want[i]) / n_draws) + 1e-4;
        if (want[i] == 0.0)
            CHECK(count[i] == 0, "%s: excluded token %d drawn %ld times", what, i, count[i]);
        else
            CHECK(fabs(f - want[i]) <= tol, "%s: token %d frequency %.5f, want %.5f +- %.5f",
                  what, i, f, want[i], tol);
    }
}

/* softmax(x / T) restricted to keep[] (renormalised), with libm. */
static void softmax_ref(const float *x, int n, double T, const int *keep, double *out) {
    double mx = -INFINITY, z = 0.0;
    for (int i = 0; i < n; i++)
        if (keep[i] && x[i] > mx) mx = x[i];
    for (int i = 0; i < n; i++) z += out[i] = keep[i] ? exp((x[i] - mx) / T) : 0.0;
    for (int i = 0; i < n; i++) out[i] /= z;
}

static void test_statistics(void) {
    const int N = 200000;
    const float x[5] = {1.0f, 2.5f, -0.5f, 0.0f, 2.0f};
    double want[5];
    const int all[5] = {1, 1, 1, 1, 1};
    const float temps[] = {1.0f, 0.7f, 2.0f};
    for (int t = 0; t < 3; t++) {
        gpt2_sampler *s = make(temps[t], 0, 1.0f, 1.0f, 1000 + (uint64_t)t, 5);
        if (!s) return;
        softmax_ref(x, 5, temps[t], all, want);
        char what[64];
        snprintf(what, sizeof what, "plain T=%g", (double)temps[t]);
        check_frequencies(what, s, x, 5, want, N);
        gpt2_sampler_free(s);
    }
    /* top-k = 2 keeps tokens 1 (2.5) and 4 (2.0). */
    {
        const int keep[5] = {0, 1, 0, 0, 1};
        gpt2_sampler *s = make(0.8f, 2, 1.0f, 1.0f, 5, 5);
        if (!s) return;
        softmax_ref(x, 5, 0.8, keep, want);
        check_frequencies("top_k=2", s, x, 5, want, N);
        gpt2_sampler_free(s);
    }
    /* top-p on probabilities 0.4, 0.3, 0.15, 0.1, 0.05 (ids shuffled): cumulative in rank
     * order 0.4, 0.7, 0.85, 0.95, 1. */
    const double probs[5] = {0.15, 0.4, 0.05, 0.1, 0.3};
    float lp[5];
    for (int i = 0; i < 5; i++) lp[i] = (float)log(probs[i]);
    struct { float top_p; int top_k; int keep[5]; } cases[] = {
        {0.35f, 0, {0, 1, 0, 0, 0}}, {0.5f, 0, {0, 1, 0, 0, 1}},  {0.69f, 0, {0, 1, 0, 0, 1}},
        {0.8f, 0, {1, 1, 0, 0, 1}},  {0.9f, 0, {1, 1, 0, 1, 1}},  {0.99f, 0, {1, 1, 1, 1, 1}},
        /* top-k then top-p: top-3 renormalised is 0.47, 0.35, 0.18 (cumulative .47 .82 1) */
        {0.8f, 3, {0, 1, 0, 0, 1}},  {0.85f, 3, {1, 1, 0, 0, 1}}, {0.85f, 4, {1, 1, 0, 0, 1}},
        /* top-4 renormalised: .42 .32 .16 .11 (cumulative .42 .74 .89 1) */
        {0.9f, 4, {1, 1, 0, 1, 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        gpt2_sampler *s = make(1.0f, cases[c].top_k, cases[c].top_p, 1.0f, 77 + c, 5);
        if (!s) return;
        softmax_ref(lp, 5, 1.0, cases[c].keep, want);
        char what[64];
        snprintf(what, sizeof what, "top_k=%d top_p=%g", cases[c].top_k,
                 (double)cases[c].top_p);
        check_frequencies(what, s, lp, 5, want, N / 4);
        gpt2_sampler_free(s);
    }
    /* top-k with tied logits keeps the lowest ids; -inf tokens are never drawn. */
    {
        const float tie[5] = {1.0f, 3.0f, 3.0f, 3.0f, -INFINITY};
        const int keep[5] = {0, 1, 1, 0, 0};
        gpt2_sampler *s = make(1.0f, 2, 1.0f, 1.0f, 3, 5);
        if (!s) return;
        softmax_ref(tie, 5, 1.0, keep, want);
        check_frequencies("top_k=2 ties", s, tie, 5, want, N / 4);
        gpt2_sampler_free(s);
        const int keep2[5] = {1, 1, 1, 1, 0};
        s = make(1.0f, 0, 1.0f, 1.0f, 4, 5);
        if (!s) return;
        softmax_ref(tie, 5, 1.0, keep2, want);
        check_frequencies("-inf masked", s, tie, 5, want, N / 4);
        gpt2_sampler_free(s);
    }
}

/* Rank of token id under (logit desc, id asc): how many tokens rank before it. */
static int rank_of(const float *x, int n, int id) {
    int r = 0;
    for (int i = 0; i < n; i++)
        if (x[i] > x[id] || (x[i] == x[id] && i < id)) r++;
    return r;
}

/* Random vocabularies (many ties): a sampled token never lies outside the reference top-k /
 * nucleus, which the test computes by brute force with libm. */
static void test_truncation_random(void) {
    gpt2_pcg32 r;
    gpt2_pcg32_seed(&r, 2024, 1);
    float x[64];
    int order[64];
    for (int trial = 0; trial < 3000; trial++) {
        int n = 1 + (int)(gpt2_pcg32_next(&r) % 64);
        random_logits(&r, x, n, 0.25f);
        int top_k = (int)(gpt2_pcg32_next(&r) % (unsigned)(n + 2));
        float top_p = (float)(0.05 + 0.95 * gpt2_pcg32_double(&r));
        if (trial % 5 == 0) top_p = 1.0f;
        float T = (float)(0.2 + 2.0 * gpt2_pcg32_double(&r));
        /* reference: rank order, weights, top-k count, nucleus count */
        for (int i = 0; i < n; i++) order[rank_of(x, n, i)] = i;
        int kk = (top_k > 0 && top_k < n) ? top_k : n;
        double mx = x[order[0]], z = 0.0, cum = 0.0;
        for (int j = 0; j < kk; j++) z += exp((x[order[j]] - mx) / T);
        int c = kk;
        double slack_at = -1.0;
        if (top_p < 1.0f) {
            for (int j = 0; j < kk; j++) {
                cum += exp((x[order[j]] - mx) / T);
                if (cum >= (double)top_p * z) {
                    c = j + 1;
                    slack_at = cum - (double)top_p * z;
                    break;
                }
            }
        }
        /* allow one more token when the boundary is within rounding of the threshold */
        int allowed = (slack_at >= 0.0 && slack_at < 1e-12 * z && c < kk) ? c + 1 : c;
        gpt2_sampler *s = make(T, top_k, top_p, 1.0f, (uint64_t)trial, n);
        if (!s) return;
        for (int d = 0; d < 20; d++) {
            int32_t id = draw(s, x, n);
            int rk = (id >= 0 && id < n) ? rank_of(x, n, id) : n;
            CHECK(rk < allowed, "trial %d n=%d top_k=%d top_p=%g T=%g: drew %d of rank %d, "
                  "allowed ranks < %d", trial, n, top_k, (double)top_p, (double)T, (int)id, rk,
                  allowed);
        }
        gpt2_sampler_free(s);
    }
}

static void test_repetition_penalty(void) {
    gpt2_error err = {0};
    gpt2_sampler *s = make(0.0f, 0, 1.0f, 2.0f, 0, 6);
    if (!s) return;
    float x[6] = {2.0f, -2.0f, 0.0f, 1.0f, 3.0f, -0.5f};
    /* token 0 three times, 1 twice: each distinct token is penalised exactly once */
    const int32_t hist[] = {0, 1, 0, 2, 1, 0, 5};
    int32_t id = -1;
    CHECK_OK(gpt2_sampler_sample(s, x, hist, 7, &id, &err), &err);
    const float want[6] = {1.0f, -4.0f, 0.0f, 1.0f, 3.0f, -1.0f};
    for (int i = 0; i < 6; i++)
        CHECK(x[i] == want[i], "penalised logit %d = %g, want %g", i, (double)x[i],
              (double)want[i]);
    CHECK(id == 4, "greedy after penalty: %d", (int)id);
    /* The penalty flips the greedy choice: 3.0 -> 1.5 < 2.0. */
    float y[3] = {3.0f, 2.0f, -1.0f};
    const int32_t h2[] = {0};
    gpt2_sampler_free(s);
    s = make(0.0f, 0, 1.0f, 2.0f, 0, 3);
    if (!s) return;
    CHECK_OK(gpt2_sampler_sample(s, y, h2, 1, &id, &err), &err);
    CHECK(id == 1 && y[0] == 1.5f, "penalty flip: id %d, y0 %g", (int)id, (double)y[0]);
    gpt2_sampler_free(s);
    /* penalty < 1 favours repeats; penalty 1 leaves logits bit-identical */
    s = make(0.0f, 0, 1.0f, 0.5f, 0, 3);
    if (!s) return;
    float z[3] = {1.0f, 1.5f, -1.0f};
    const int32_t h3[] = {0, 2};
    CHECK_OK(gpt2_sampler_sample(s, z, h3, 2, &id, &err), &err);
    CHECK(id == 0 && z[0] == 2.0f && z[2] == -0.5f, "penalty 0.5: id %d z %g %g", (int)id,
          (double)z[0], (double)z[2]);
    gpt2_sampler_free(s);
    s = make(0.0f, 0, 1.0f, 1.0f, 0, 3);
    if (!s) return;
    float u[3] = {0.1f, -0.3f, 0.7f};
    CHECK_OK(gpt2_sampler_sample(s, u, h3, 2, &id, &err), &err);
    CHECK(u[0] == 0.1f && u[2] == 0.7f && id == 2, "penalty 1 is a no-op");
    gpt2_sampler_free(s);
}

/* ---------------------------------------------------------------- reproducibility */

static void test_seeds(void) {
    enum { N = 100, D = 64 };
    float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)((i * 37) % 11) * 0.2f;
    int32_t a[D], b[D], c[D];
    gpt2_sampler *sa = make(1.0f, 50, 0.95f, 1.0f, 123456789, N);
    gpt2_sampler *sb = make(1.0f, 50, 0.95f, 1.0f, 123456789, N);
    gpt2_sampler *sc = make(1.0f, 50, 0.95f, 1.0f, 123456790, N);
    if (!sa || !sb || !sc) return;
    int same = 1, differ = 0;
    for (int d = 0; d < D; d++) {
        a[d] = draw(sa, x, N);
        b[d] = draw(sb, x, N);
        c[d] = draw(sc, x, N);
        same &= a[d] == b[d];
        differ += a[d] != c[d];
    }
    CHECK(same, "same seed gave different sequences");
    CHECK(differ > D / 2, "different seeds agree on %d of %d draws", D - differ, D);
    gpt2_sampler_free(sa);
    gpt2_sampler_free(sb);
    gpt2_sampler_free(sc);
}

/* Golden draws for seed 42, derived from the published PCG32 vector (not from this code):
 * each uniform comes from two published outputs; the token is the inverse CDF (ascending id
 * order over surviving tokens) of softmax computed here with libm. */
static void golden_case(const char *what, const float *x, int n, float T, int top_k) {
    int keep[16];
    double prob[16];
    for (int i = 0; i < n; i++) keep[i] = top_k == 0 || rank_of(x, n, i) < top_k;
    softmax_ref(x, n, T, keep, prob);
    gpt2_sampler *s = make(T, top_k, 1.0f, 1.0f, 42, n);
    if (!s) return;
    for (int d = 0; d < 3; d++) {
        double u = u53(PCG32_42_54[2 * d], PCG32_42_54[2 * d + 1]), cum = 0.0, margin = 1.0;
        int want = -1;
        for (int i = 0; i < n; i++) {
            if (!keep[i]) continue;
            cum += prob[i];
            if (fabs(cum - u) < margin) margin = fabs(cum - u);
            if (want < 0 && u < cum) want = i;
        }
        CHECK(margin > 1e-6, "%s: golden draw %d too close to a bin edge (%g)", what, d, margin);
        int32_t got = draw(s, x, n);
        CHECK(got == want, "%s: draw %d (u = %.6f) gave %d, want %d", what, d, u, (int)got, want);
        printf("golden %s: u = %.6f -> token %d\n", what, u, want);
    }
    gpt2_sampler_free(s);
}

static void test_golden(void) {
    const float x[16] = {0.3f, -1.2f, 0.2f, 0.9f, 0.7f, -0.4f, 1.1f, 0.0f,
                         0.5f, 0.8f,  -0.1f, 0.6f, 0.4f, 1.0f,  -0.7f, 0.1f};
    golden_case("T=1", x, 16, 1.0f, 0);
    golden_case("T=0.6", x, 16, 0.6f, 0);
    golden_case("T=1.3 top_k=6", x, 16, 1.3f, 6);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void) {
    gpt2_error err = {0};
    gpt2_sampler_params p;
    gpt2_sampler *s = (gpt2_sampler *)&p; /* must be reset to NULL on failure */
    gpt2_sampler_params_default(&p);
    CHECK(p.temperature == 1.0f && p.top_k == 0 && p.top_p == 1.0f &&
              p.repetition_penalty == 1.0f && p.seed == 0, "defaults");

    struct { float t; int k; float tp; float pen; const char *needle; } bad[] = {
        {-0.1f, 0, 1.0f, 1.0f, "temperature"}, {NAN, 0, 1.0f, 1.0f, "temperature"},
        {INFINITY, 0, 1.0f, 1.0f, "temperature"}, {1.0f, -1, 1.0f, 1.0f, "top_k"},
        {1.0f, 0, 0.0f, 1.0f, "top_p"}, {1.0f, 0, 1.5f, 1.0f, "top_p must be in (0, 1], got 1.5"},
        {1.0f, 0, -0.2f, 1.0f, "top_p"}, {1.0f, 0, NAN, 1.0f, "top_p"},
        {1.0f, 0, 1.0f, 0.0f, "repetition_penalty"}, {1.0f, 0, 1.0f, -1.0f, "repetition_penalty"},
        {1.0f, 0, 1.0f, NAN, "repetition_penalty"}, {1.0f, 0, 1.0f, INFINITY, "repetition_penalty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gpt2_sampler_params q;
        gpt2_sampler_params_default(&q);
        q.temperature = bad[i].t;
        q.top_k = bad[i].k;
        q.top_p = bad[i].tp;
        q.repetition_penalty = bad[i].pen;
        s = (gpt2_sampler *)&p;
        CHECK_FAILS(gpt2_sampler_create(&q, 10, &s, &err), GPT2_ERR_ARG, &err);
        CHECK(s == NULL && strstr(err.message, bad[i].needle),
              "bad params %zu: message '%s' lacks '%s'", i, err.message, bad[i].needle);
    }
    CHECK_FAILS(gpt2_sampler_create(&p, 0, &s, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_sampler_create(&p, -5, &s, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_sampler_create(NULL, 10, &s, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_sampler_create(&p, 10, NULL, &err), GPT2_ERR_ARG, &err);
    CHECK(gpt2_sampler_create(&p, 0, &s, NULL) == GPT2_ERR_ARG, "NULL err is allowed");
    /* huge top_k is simply "off" */
    p.top_k = 1000000;
    CHECK_OK(gpt2_sampler_create(&p, 4, &s, &err), &err);
    if (!s) return;

    float x[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    const float x0[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    int32_t id = -7;
    const int32_t h_bad[] = {1, 4};
    const int32_t h_neg[] = {-1};
    CHECK_FAILS(gpt2_sampler_sample(NULL, x, NULL, 0, &id, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_sampler_sample(s, NULL, NULL, 0, &id, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_sampler_sample(s, x, NULL, 0, NULL, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_sampler_sample(s, x, NULL, 3, &id, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_sampler_sample(s, x, h_bad, 2, &id, &err), GPT2_ERR_RANGE, &err);
    CHECK(strstr(err.message, "history[1] = 4") != NULL, "message: %s", err.message);
    CHECK_FAILS(gpt2_sampler_sample(s, x, h_neg, 1, &id, &err), GPT2_ERR_RANGE, &err);
    x[2] = NAN;
    CHECK_FAILS(gpt2_sampler_sample(s, x, NULL, 0, &id, &err), GPT2_ERR_RANGE, &err);
    CHECK(strstr(err.message, "NaN") != NULL, "message: %s", err.message);
    x[2] = INFINITY;
    CHECK_FAILS(gpt2_sampler_sample(s, x, NULL, 0, &id, &err), GPT2_ERR_RANGE, &err);
    for (int i = 0; i < 4; i++) x[i] = -INFINITY;
    CHECK_FAILS(gpt2_sampler_sample(s, x, NULL, 0, &id, &err), GPT2_ERR_RANGE, &err);
    CHECK(gpt2_sampler_sample(s, x, NULL, 0, &id, NULL) == GPT2_ERR_RANGE, "NULL err");
    CHECK(id == -7, "out_id untouched on error: %d", (int)id);
    gpt2_sampler_free(s);

    /* rejected history leaves the logits untouched, even with a penalty */
    s = make(1.0f, 0, 1.0f, 1.3f, 0, 4);
    if (!s) return;
    memcpy(x, x0, sizeof x);
    const int32_t h_late[] = {3, 2, 9};
    CHECK_FAILS(gpt2_sampler_sample(s, x, h_late, 3, &id, &err), GPT2_ERR_RANGE, &err);
    CHECK(memcmp(x, x0, sizeof x) == 0, "logits modified by a rejected call");
    /* ... and the penalty marks were not left behind: token 3 is penalised once next time */
    const int32_t h_ok[] = {3, 3};
    CHECK_OK(gpt2_sampler_sample(s, x, h_ok, 2, &id, &err), &err);
    CHECK(x[3] == 3.0f / 1.3f && x[2] == 2.0f, "x3 = %.9g", (double)x[3]);
    gpt2_sampler_free(s);

    /* a penalty < 1 that would overflow a logit to +inf is an error, logits untouched */
    s = make(1.0f, 0, 1.0f, 1e-3f, 0, 4);
    if (!s) return;
    float big[4] = {3e38f, 0.0f, 1.0f, 2.0f};
    const int32_t h0[] = {0, 2};
    CHECK_FAILS(gpt2_sampler_sample(s, big, h0, 2, &id, &err), GPT2_ERR_RANGE, &err);
    CHECK(big[0] == 3e38f && big[2] == 1.0f, "overflowing penalty modified logits");
    gpt2_sampler_free(s);
    gpt2_sampler_free(NULL);
    gpt2_sampler_params_default(NULL);
}

/* ---------------------------------------------------------------- timing (no assertion) */

static double now_seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void time_case(const char *what, const float *x, int n, float T, int top_k, float top_p) {
    gpt2_sampler *s = make(T, top_k, top_p, 1.0f, 1, n);
    float *buf = malloc((size_t)n * sizeof *buf);
    if (!s || !buf) {
        gpt2_sampler_free(s);
        free(buf);
        return;
    }
    gpt2_error err = {0};
    const int reps = 200;
    long checksum = 0;
    double t0 = now_seconds();
    for (int r = 0; r < reps; r++) {
        memcpy(buf, x, (size_t)n * sizeof *buf);
        int32_t id = -1;
        if (gpt2_sampler_sample(s, buf, NULL, 0, &id, &err) != GPT2_OK) {
            CHECK(0, "%s: %s", what, err.message);
            break;
        }
        checksum += id;
    }
    double per = (now_seconds() - t0) / reps;
    printf("timing %-36s %8.1f us/token (incl. copying logits; id sum %ld)\n", what, per * 1e6,
           checksum);
    gpt2_sampler_free(s);
    free(buf);
}

static void test_timing(void) {
    enum { V = 50257 };
    float *x = malloc(V * sizeof *x), *flat = malloc(V * sizeof *flat);
    if (!x || !flat) {
        free(x);
        free(flat);
        return;
    }
    gpt2_pcg32 r;
    gpt2_pcg32_seed(&r, 5, 5);
    for (int i = 0; i < V; i++) {
        /* GPT-2-like: roughly normal, sd ~2.5, with a few strong candidates */
        double g = 0.0;
        for (int j = 0; j < 4; j++) g += gpt2_pcg32_double(&r) - 0.5;
        x[i] = (float)(-80.0 + 4.3 * g);
        flat[i] = (float)(0.01 * (gpt2_pcg32_double(&r) - 0.5)); /* worst case for top-p */
    }
    for (int i = 0; i < 20; i++) x[(i * 2503) % V] = -62.0f - (float)i * 0.5f;

    time_case("50257, top_p=0.9", x, V, 1.0f, 0, 0.9f);
    time_case("50257, top_p=0.9, near-flat logits", flat, V, 1.0f, 0, 0.9f);
    time_case("50257, top_k=40", x, V, 1.0f, 40, 1.0f);
    time_case("50257, top_k=40 top_p=0.9", x, V, 0.8f, 40, 0.9f);
    time_case("50257, no truncation", x, V, 1.0f, 0, 1.0f);
    time_case("50257, greedy", x, V, 0.0f, 0, 1.0f);

    /* sanity on the big vocabulary: a top-p draw lies within the brute-force nucleus */
    gpt2_sampler *s = make(1.0f, 0, 0.9f, 1.0f, 11, V);
    if (s) {
        int32_t id = draw(s, x, V);
        double mx = x[gpt2_argmax(x, V)], z = 0.0, above = 0.0;
        for (int i = 0; i < V; i++) {
            double w = exp(x[i] - mx);
            z += w;
            if (x[i] > x[id] || (x[i] == x[id] && i < id)) above += w;
        }
        CHECK(above < 0.9 * z, "top_p draw %d has mass %g ranked before it", (int)id, above / z);
        gpt2_sampler_free(s);
    }
    free(x);
    free(flat);
}

int main(void) {
    test_pcg32();
    test_exp();
    test_tanh();
    test_argmax();
    test_greedy();
    test_topk1_and_tiny_topp_are_greedy();
    test_statistics();
    test_truncation_random();
    test_repetition_penalty();
    test_seeds();
    test_golden();
    test_errors();
    test_timing();
    return check_summary("test_sampler");
}
