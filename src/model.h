/* model.h - the GPT-2 forward pass over a KV cache.
 *
 * A gpt2_state is one sequence being processed: its KV cache and the scratch buffers of
 * the forward pass. gpt2_forward appends tokens to it; prefill passes the whole prompt in
 * one call (matrix-matrix), decode passes one token (matrix-vector).
 */
#ifndef GPT2_MODEL_H
#define GPT2_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "weights.h"

typedef struct gpt2_state gpt2_state;

/* Bytes a state for these weights needs (KV cache for n_ctx positions + scratch for
 * max_batch tokens per step). */
size_t gpt2_state_bytes(const gpt2_config *config, int max_batch);

/* Allocates a state for w; max_batch (>= 1) bounds how many tokens one internal step
 * processes (longer prefills are split into steps of max_batch). w must outlive it. */
gpt2_err gpt2_state_create(const gpt2_weights *w, int max_batch, gpt2_state **out, gpt2_error *err);

/* Releases a state (NULL is allowed). */
void gpt2_state_free(gpt2_state *s);

/* Lets the state's matrix products run on a thread pool (pool.h; NULL = the calling thread
 * only). The pool is not owned and must outlive its use by the state. */
struct gpt2_pool;
void gpt2_state_set_pool(gpt2_state *s, struct gpt2_pool *pool);

/* Number of tokens in the state's cache (the position of the next token). */
int gpt2_state_pos(const gpt2_state *s);

/* Forgets every token from position pos on (0 <= pos <= current position). */
gpt2_err gpt2_state_rewind(gpt2_state *s, int pos, gpt2_error *err);

/* Runs tokens[0..n) at positions pos..pos+n-1 and appends them to the cache.
 * logits (may be NULL) receives [n_vocab] floats for the last token, or [n][n_vocab] for
 * every token when all_logits is non-zero. Fails without changing the state if a token
 * id is out of range or pos + n would exceed n_ctx. */
gpt2_err gpt2_forward(gpt2_state *s, const int32_t *tokens, int n, float *logits, int all_logits,
                      gpt2_error *err);

/* Allocates a new state for the same weights and max_batch holding a copy of src's KV cache
 * (its first gpt2_state_pos(src) positions); the two then evolve independently. The copy
 * uses the same thread pool as src, if any. */
gpt2_err gpt2_state_clone(const gpt2_state *src, gpt2_state **out, gpt2_error *err);

#endif
