/* session.h - a token sequence with its own KV cache, kept between calls.
 *
 * A session holds tokens[0..pos) and a gpt2_state. Tokens are "computed" once they have
 * run through the model (their keys and values are in the cache); appending computes only
 * the new tokens, so the cost of a call does not grow with the history. A session may
 * also hold a few uncomputed ("pending") tokens at its end - the last token a generation
 * produced, or the token before a rewind point - which run, in one batch, at the start of
 * the next call that needs logits. gpt2_session_computed counts every token the session
 * (and the generations run in it) has sent through the model, for tests and measurements.
 *
 * A session is used by one thread at a time; the weights must outlive it.
 */
#ifndef GPT2_SESSION_H
#define GPT2_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "status.h"
#include "weights.h"

typedef struct gpt2_session gpt2_session;

/* Creates an empty session for w. max_batch (>= 1) bounds the tokens one internal forward
 * step processes (scratch memory; longer appends run in several steps, same results). */
gpt2_err gpt2_session_create(const gpt2_weights *w, int max_batch, gpt2_session **out, gpt2_error *err);

/* Releases a session (NULL is allowed). */
void gpt2_session_free(gpt2_session *s);

/* A new, independent session with the same tokens and a copy of the KV cache
 * (gpt2_state_clone); nothing is recomputed. */
gpt2_err gpt2_session_clone(const gpt2_session *s, gpt2_session **out, gpt2_error *err);

/* Number of tokens in the session (computed or pending). */
int gpt2_session_pos(const gpt2_session *s);

/* The session's tokens [0..gpt2_session_pos), valid until the session next changes. */
const int32_t *gpt2_session_tokens(const gpt2_session *s);

/* Tokens run through the model since the session was created (a clone starts at 0). */
double gpt2_session_computed(const gpt2_session *s);

/* The weights the session runs. */
const gpt2_weights *gpt2_session_weights(const gpt2_session *s);

/* Appends ids[0..n) and runs every uncomputed token. logprobs (may be NULL) receives
 * [n] values: logprobs[i] = log p(ids[i] | all tokens before it) (log-softmax in double,
 * as gpt2_score), NaN for a first token that has nothing before it. Fails without
 * changing the session if an id is outside the vocabulary or the context would overflow
 * (GPT2_ERR_RANGE). n = 0 only computes pending tokens. */
gpt2_err gpt2_session_append(gpt2_session *s, const int32_t *ids, size_t n, float *logprobs, gpt2_error *err);

/* Appends ids[0..n) as pending tokens without running them (they run on the next
 * gpt2_session_append or gpt2_session_sync). Same checks as gpt2_session_append. */
gpt2_err gpt2_session_push(gpt2_session *s, const int32_t *ids, size_t n, gpt2_error *err);

/* Runs the pending tokens, if any. */
gpt2_err gpt2_session_sync(gpt2_session *s, gpt2_error *err);

/* Keeps tokens[0..pos) and forgets the rest (0 <= pos <= gpt2_session_pos). The cache is
 * rewound too; token pos-1 becomes pending (its logits are needed next), so the next call
 * computes one token for it. */
gpt2_err gpt2_session_rewind(gpt2_session *s, int pos, gpt2_error *err);

/* Appends ids[0..n) and runs every uncomputed token in one batch, writing n+1 rows of
 * logits to rows ([n+1][n_vocab]): rows[i] is the next-token distribution after the
 * tokens before ids[i], rows[n] the one after ids[n-1]. The session must hold at least
 * one token before ids. Pending tokens before the last one run first without logits.
 * Same checks as gpt2_session_append. Used to verify a draft's proposals in one pass. */
gpt2_err gpt2_session_append_rows(gpt2_session *s, const int32_t *ids, size_t n, float *rows, gpt2_error *err);

/* Keeps tokens[0..pos) like gpt2_session_rewind, but token pos-1 stays computed when it
 * was: nothing is recomputed, and the logits after it are recomputed (one token) only
 * if a later call needs them before a new token is appended. For callers that already
 * know the next token (speculative decoding). */
gpt2_err gpt2_session_cut(gpt2_session *s, int pos, gpt2_error *err);

/* Keeps only the last `keep` tokens (1 <= keep <= gpt2_session_pos), moved to positions
 * 0..keep-1, and empties the cache: they are pending and run again (with their new
 * positions) on the next call. This is how generation continues past the context. */
gpt2_err gpt2_session_slide(gpt2_session *s, int keep, gpt2_error *err);

/* The logits ([n_vocab]) after the last computed token, or NULL when no token has been
 * computed. They are the next token's logits when no token is pending. */
const float *gpt2_session_logits(const gpt2_session *s);

/* Non-zero when every token has been computed (gpt2_session_logits is then current). */
int gpt2_session_synced(const gpt2_session *s);

#endif
