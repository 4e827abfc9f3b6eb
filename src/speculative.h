/* speculative.h - greedy speculative decoding: a draft model proposes, the big model checks.
 *
 * Each round, the draft session proposes up to k tokens greedily (one forward each); the
 * big session runs its pending token and all k proposals in ONE batched forward pass
 * (logits for every position), keeps the longest prefix of proposals that agree with its
 * own argmax, and adds its own next token (the first one it disagreed on, or the one
 * after all k). Both sessions then cut the rejected tokens (gpt2_session_cut, no
 * recomputation). The tokens are exactly the big model's greedy tokens (argmax, ties to
 * the lowest id): the draft only decides how many are computed per pass.
 *
 * The draft can be any model with the same vocabulary size, e.g. the same checkpoint in q8_0 (self-speculation) or a smaller GPT-2.
 * Sampling (temperature > 0) is not implemented.
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
 * with a shorter n_ctx), the round is a plain greedy step of the big model. */
gpt2_err gpt2_speculative_create(gpt2_session *big, gpt2_session *draft, int k, gpt2_speculative **out,
                                 gpt2_error *err);

/* Releases the object (not the sessions); NULL is allowed. */
void gpt2_speculative_free(gpt2_speculative *sp);

/* One round: writes 1..min(k+1, max_tokens) tokens to out (capacity max_tokens, or k+1)
 * and their number to *n_out, the next tokens of the big model's greedy decoding after
 * the big session's tokens. Stops after eot (pass -1 to never stop). Both sessions end up
 * holding every emitted token (the last one uncomputed, as a generator leaves it). The big
 * session must hold at least one token and have room for one more (GPT2_ERR_RANGE). */
gpt2_err gpt2_speculative_step(gpt2_speculative *sp, int max_tokens, int32_t eot, int32_t *out, int *n_out,
                               gpt2_error *err);

/* The counts so far (zeros for NULL). */
gpt2_speculative_stats gpt2_speculative_get_stats(const gpt2_speculative *sp);

#endif
