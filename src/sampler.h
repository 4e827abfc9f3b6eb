/* sampler.h - picks the next token from GPT-2's logits.
 *
 * Pipeline (the order of Hugging Face's generate()):
 *   logit bias -> repetition penalty -> temperature -> top-k -> top-p -> draw from the
 *   renormalised rest.
 *
 * Reproducibility: the same seed gives the same tokens on every platform (x86-64 with gcc or
 * clang, WebAssembly via Emscripten). The random numbers come from PCG32 (O'Neill's
 * pcg32_random_r, XSH-RR output, 64-bit LCG state) implemented here, and the probabilities
 * are computed in double with gpt2_exp (below, no libm) and summed in a fixed order, so
 * nothing depends on the platform's libm or on the sort routine of the C library.
 */
#ifndef GPT2_SAMPLER_H
#define GPT2_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct gpt2_sampler_params {
    float temperature;        /* 0 = greedy (argmax, ties -> lowest id); default 1.0 */
    int top_k;                /* 0 = off (also off when >= n_vocab); default 0 */
    float top_p;              /* (0, 1]; 1.0 = off; default 1.0 */
    float repetition_penalty; /* > 0; 1.0 = off; on tokens seen in history (CTRL/HF rule):
                                 logit > 0 ? logit / p : logit * p; default 1.0 */
    uint64_t seed;            /* PCG32 initstate; default 0 */
    /* Logit bias: bias[i] is added to the logit of token bias_ids[i] before anything else
     * (a repeated id gets the sum). Values are finite or -INFINITY (the token is never
     * picked); a large finite value (e.g. 1e9) makes the token win. Copied by
     * gpt2_sampler_create; default none (n_bias 0, NULL pointers). */
    const int32_t *bias_ids;
    const float *bias;
    int n_bias;
} gpt2_sampler_params;

typedef struct gpt2_sampler gpt2_sampler;

/* Fills p with the defaults: temperature 1, top_k 0, top_p 1, repetition_penalty 1, seed 0. */
void gpt2_sampler_params_default(gpt2_sampler_params *p);

/* Validates p (GPT2_ERR_ARG with the offending value; GPT2_ERR_RANGE for a bias id outside
 * [0, n_vocab)) and allocates a sampler for a vocabulary of n_vocab tokens, its PRNG seeded
 * with p->seed. Free with gpt2_sampler_free. *out is NULL on failure. */
gpt2_err gpt2_sampler_create(const gpt2_sampler_params *p, int n_vocab, gpt2_sampler **out,
                             gpt2_error *err);

/* Picks the next token from logits[n_vocab] into *out_id. history = every token so far
 * (prompt + generated; may be NULL when n_history is 0), used by the repetition penalty.
 * logits is scratch: on success it holds the biased, repetition-penalised logits.
 * Errors: GPT2_ERR_ARG (NULL pointers), GPT2_ERR_RANGE (a history id outside [0, n_vocab),
 * a NaN or +inf logit, a logit the bias or the penalty would overflow to +inf, or every
 * logit -inf); logits is left untouched on all of them except a bias or penalty that
 * drives all logits to -inf.
 * Temperature 0 is greedy and draws no random number. Otherwise one uniform u per call
 * (gpt2_pcg32_double) picks the first surviving id, in ascending id order, whose running
 * sum of exp((logit - max) / T) exceeds u times the survivors' total. Top-k/top-p ties are
 * broken by rank: larger logit first, then lower id. */
gpt2_err gpt2_sampler_sample(gpt2_sampler *s, float *logits, const int32_t *history,
                             size_t n_history, int32_t *out_id, gpt2_error *err);

/* The distribution gpt2_sampler_sample draws from, into probs[n_vocab]: the same checks,
 * bias, penalty, temperature, top-k and top-p, then each survivor's weight divided by the
 * survivors' total (summed in id order); 0 for every other token. Greedy (temperature 0):
 * 1 for the argmax, 0 elsewhere. Draws no random number. logits is scratch as in
 * gpt2_sampler_sample; errors as there. Used by speculative sampling (speculative.h). */
gpt2_err gpt2_sampler_distribution(gpt2_sampler *s, float *logits, const int32_t *history, size_t n_history,
                                   double *probs, gpt2_error *err);

/* Non-zero when s is greedy (temperature 0). */
int gpt2_sampler_is_greedy(const gpt2_sampler *s);

/* The next uniform double in [0, 1) of s's PRNG (gpt2_pcg32_double); 0 for NULL. */
double gpt2_sampler_uniform(gpt2_sampler *s);

/* Frees a sampler; NULL is a no-op. */
void gpt2_sampler_free(gpt2_sampler *s);

/* Index of the largest of x[0..n), ties -> lowest index; NaN entries are ignored.
 * Returns -1 if x is NULL, n <= 0 or every entry is NaN. */
int gpt2_argmax(const float *x, int n);

/* --- Building blocks, public so that tests can check them against references. --- */

/* PCG32 (pcg-random.org, "pcg32_random_r"): state advances by the 64-bit LCG
 * state * 6364136223846793005 + inc; output is the XSH-RR permutation of the old state. */
typedef struct gpt2_pcg32 {
    uint64_t state;
    uint64_t inc; /* always odd */
} gpt2_pcg32;

/* pcg32_srandom_r: seeds r with initstate on stream initseq. The sampler uses
 * (initstate = params.seed, initseq = 54), so seed 42 gives the published demo stream. */
void gpt2_pcg32_seed(gpt2_pcg32 *r, uint64_t initstate, uint64_t initseq);

/* Next 32-bit output. */
uint32_t gpt2_pcg32_next(gpt2_pcg32 *r);

/* Uniform double in [0, 1) with 53 random bits from two outputs a, b:
 * ((a >> 5) * 2^26 + (b >> 6)) / 2^53. */
double gpt2_pcg32_double(gpt2_pcg32 *r);

/* Inverse CDF in id order: the first i whose running sum of w[0..i] exceeds u * (sum of
 * all w), for weights w[0..n) >= 0 and u in [0, 1); the last i with w[i] > 0 when rounding
 * leaves none. -1 when w is NULL, n <= 0 or the sum is not > 0. */
int32_t gpt2_draw_index(const double *w, int n, double u);

/* e^x without libm: x = (64 k + j) ln2/64 + r with |r| <= ln2/128 (Cody-Waite two-part
 * constant), e^x = 2^k * 2^(j/64) * e^r with a correctly rounded 64-entry table for
 * 2^(j/64) and a degree-5 Taylor polynomial for e^r. Relative error < 5e-16 (measured) for normal
 * results; 0 below -745.2, +inf above 709.79, NaN for NaN. Deterministic (IEEE double
 * +, -, * only, in a fixed order). */
double gpt2_exp(double x);

/* tanh(x) = 1 - 2 / (e^(2x) + 1) with gpt2_exp, in double (+-1 beyond |x| > 20; NaN for NaN).
 * libm's tanhf rounds differently in glibc and in Emscripten's musl, so gelu_new (inference
 * and training) uses this one: native and WASM results stay bit-identical. */
double gpt2_tanh(double x);

/* gpt2_exp's constants, shared with the kernels' 2-lane gelu (kernels.c), which must follow
 * the same steps: n = round(x * 64/ln2) (adding and subtracting GPT2_EXP_SHIFT), r = (x - n HI)
 * - n LO, p = Horner of 1/120, 1/24, 1/6, 1/2, 1, 1 in r, e^x = (gpt2_exp2_j64[n mod 64] * p) *
 * 2^floor(n / 64). */
#define GPT2_EXP_INV_LN2_64 0x1.71547652b82fep+6 /* 64 / ln2 */
#define GPT2_EXP_LN2_64_HI 0x1.62e4200000000p-7  /* ln2/64, its low 32 mantissa bits zero */
#define GPT2_EXP_LN2_64_LO 0x1.fdf473de6af28p-28 /* ln2/64 - GPT2_EXP_LN2_64_HI */
#define GPT2_EXP_SHIFT 0x1.8p52                  /* adding it rounds to an integer (ties to even) */
/* 2^(j/64), j = 0..63, correctly rounded */
extern const double gpt2_exp2_j64[64];

#endif
