/* score.h - how likely a model finds a text: per-token log-probabilities and ranks. */
#ifndef GPT2_SCORE_H
#define GPT2_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "weights.h"

/* For t = 1..n-1: logprobs[t-1] = log p(ids[t] | ids[0..t)) (log-softmax computed in double)
 * and ranks[t-1] = the number of tokens the model scored strictly higher than ids[t]
 * (0 = the model's top choice). Either output may be NULL. n must be in [1, n_ctx];
 * the first token has no prediction. */
gpt2_err gpt2_score(const gpt2_weights *w, const int32_t *ids, size_t n, float *logprobs, int32_t *ranks,
                    gpt2_error *err);

/* gpt2_score plus the k most likely tokens at each position (the "alternatives"): for
 * t = 1..n-1 and j = 0..k-1, top_ids[(t-1)*k + j] and top_logprobs[(t-1)*k + j] are the id
 * and log-probability of the j-th most likely token given ids[0..t) (most likely first; equal
 * logits: lower id first, the sampler's order). 0 <= k <= n_vocab; the top arrays may be NULL
 * when k is 0. Every output may be NULL. */
gpt2_err gpt2_score_topk(const gpt2_weights *w, const int32_t *ids, size_t n, int k, float *logprobs,
                         int32_t *ranks, int32_t *top_ids, float *top_logprobs, gpt2_error *err);

/* log p(target) under softmax(logits[0..n)), computed in double; rank as above. */
double gpt2_logprob_of(const float *logits, int n, int32_t target, int32_t *rank);

/* The k largest of logits[0..n) (0 <= k <= n), largest first, equal logits lower id first:
 * ids into top_ids[0..k), log-softmax values (double, as gpt2_logprob_of) into top_logprobs
 * (may be NULL). */
void gpt2_top_logprobs(const float *logits, int n, int k, int32_t *top_ids, float *top_logprobs);

#endif
