/* speculative.h - speculative decoding: a draft model proposes, the big model checks.
 *
 * Each round, the draft session proposes up to k tokens (one forward each), drawn from
 * its own distribution q (the policy's: the same sampling transforms as the big model's);
 * the big session runs its pending token and all proposals in ONE batched forward pass
 * (logits for every position). Proposal i is accepted with probability
 * min(1, p_i(x) / q_i(x)), in order; the first rejected one is replaced by a draw from
 * max(0, p_i - q_i) normalised, and after k accepted proposals one more token is drawn from
 * p_k (speculative sampling: Leviathan et al., Chen et al., 2023). Each emitted token then
 * has exactly the big model's distribution p given the tokens before it. Both sessions then
 * cut the rejected tokens (gpt2_session_cut, no recomputation).
 *
 * Greedy (the default policy): p and q are one-hot at the argmax (ties to the lowest id),
 * so the proposals that equal the big model's argmax are kept, then its own argmax: the
 * tokens are exactly the big model's greedy tokens, and no random number is drawn.
 *
 * The draft can be any model with the same vocabulary size, e.g. the same checkpoint in
 * q8_0 (self-speculation) or a smaller GPT-2.
 */
#ifndef GPT2_SPECULATIVE_H
#define GPT2_SPECULATIVE_H

#include <stdint.h>

#include "session.h"
#include "status.h"

#define GPT2_SPECULATIVE_MAX_K 16

typedef struct gpt2_speculative gpt2_speculative;

/* Counts since creation. Every round emits `accepted` draft tokens plus one token of the
 * big model's own, so tokens emitted = accepted + rounds (an <|endoftext|> that ends the
 * text inside the accepted prefix counts as the big model's own token). */
typedef struct gpt2_speculative_stats {
    double proposed; /* draft tokens checked by the big model */
    double accepted; /* of those, emitted */
    double rounds;   /* batched verification passes (or single greedy steps near a limit) */
} gpt2_speculative_stats;

/* Pairs a big session with a draft session (both borrowed: they must outlive the object
 * and must not be used elsewhere while it runs). k = draft tokens per round, 1..16.
 * Fails with GPT2_ERR_ARG for k out of range or NULL sessions, GPT2_ERR_SHAPE when the
 * vocabulary sizes differ. The draft session's tokens are brought in line with the big
 * session's at every round. Where the draft's context is too short for a round (a draft
 * with a shorter n_ctx), the round is a plain step of the big model. */
gpt2_err gpt2_speculative_create(gpt2_session *big, gpt2_session *draft, int k, gpt2_speculative **out,
                                 gpt2_error *err);

/* How tokens are chosen: dist writes the distribution after tokens[0..n_tokens) given one
 * model's logits for that position into probs[n_vocab] (non-negative, summing to 1; the same
 * function serves the big model and the draft), and uniform returns the next number of a
 * uniform generator in [0, 1). A greedy policy has uniform NULL and one-hot distributions. */
typedef struct gpt2_speculative_policy {
    gpt2_err (*dist)(void *ctx, const float *logits, const int32_t *tokens, int n_tokens, double *probs,
                     gpt2_error *err);
    double (*uniform)(void *ctx);
    void *ctx;
} gpt2_speculative_policy;

/* Sets the policy (copied; its ctx is borrowed); NULL or a NULL dist: greedy (the default). */
void gpt2_speculative_set_policy(gpt2_speculative *sp, const gpt2_speculative_policy *policy);

/* Releases the object (not the sessions); NULL is allowed. */
void gpt2_speculative_free(gpt2_speculative *sp);

/* One round: writes 1..min(k+1, max_tokens) tokens to out (capacity max_tokens, or k+1)
 * and their number to *n_out, the next tokens of the big model (greedy, or sampled under
 * the policy) after the big session's tokens. Stops after eot (pass -1 to never stop). Both sessions end up
 * holding every emitted token (the last one uncomputed, as a generator leaves it). The big
 * session must hold at least one token and have room for one more (GPT2_ERR_RANGE). */
gpt2_err gpt2_speculative_step(gpt2_speculative *sp, int max_tokens, int32_t eot, int32_t *out, int *n_out,
                               gpt2_error *err);

/* The counts so far (zeros for NULL). */
gpt2_speculative_stats gpt2_speculative_get_stats(const gpt2_speculative *sp);

#endif
