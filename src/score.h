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

/* log p(target) under softmax(logits[0..n)), computed in double; rank as above. */
double gpt2_logprob_of(const float *logits, int n, int32_t target, int32_t *rank);

#endif
