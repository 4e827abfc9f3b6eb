/* generate.h - token-by-token text generation: prompt prefill, sampling, streaming-safe
 * decoding, stop conditions. One step API serves the native CLI and the WASM/JS layer
 * (which needs to yield between tokens for AbortSignal and async iteration).
 *
 * Policies:
 *  - An empty prompt is conditioned on <|endoftext|> (GPT-2's unconditional start);
 *    a vocabulary without it makes an empty prompt an error.
 *  - A prompt longer than the context (n_ctx tokens) is an error naming both lengths.
 *  - Generation ends at max_new_tokens, at <|endoftext|> (unless ignore_eot), at a stop
 *    sequence (the text before it is emitted, the stop sequence itself is not), or when
 *    the context is full (GPT2_STOP_CONTEXT_FULL).
 */
#ifndef GPT2_GENERATE_H
#define GPT2_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "sampler.h"
#include "status.h"
#include "tokenizer.h"
#include "weights.h"

#define GPT2_MAX_STOP_SEQUENCES 8

typedef enum gpt2_stop_reason {
    GPT2_STOP_NONE = 0,     /* not finished */
    GPT2_STOP_MAX_TOKENS,   /* max_new_tokens were generated */
    GPT2_STOP_EOT,          /* the model produced <|endoftext|> */
    GPT2_STOP_SEQUENCE,     /* a stop sequence appeared in the text */
    GPT2_STOP_CONTEXT_FULL  /* no room left in the context window */
} gpt2_stop_reason;

typedef struct gpt2_generate_params {
    gpt2_sampler_params sampler;
    int max_new_tokens;                          /* >= 0; default 64 */
    int ignore_eot;                              /* non-zero: keep going past <|endoftext|> */
    int n_stop;                                  /* number of stop sequences used */
    const char *stop[GPT2_MAX_STOP_SEQUENCES];   /* NUL-terminated UTF-8, non-empty; copied */
} gpt2_generate_params;

/* One step's output. text points into the generator and is valid until the next call. */
typedef struct gpt2_piece {
    int32_t id;              /* the token sampled this step, or -1 if none (finished) */
    const char *text;        /* newly final text (may be empty while a character or a
                                possible stop sequence is incomplete) */
    size_t len;
    gpt2_stop_reason stop;   /* != GPT2_STOP_NONE on the final step */
} gpt2_piece;

typedef struct gpt2_generator gpt2_generator;

/* Fills p with the defaults (sampler defaults, 64 new tokens, no stop sequences). */
void gpt2_generate_params_default(gpt2_generate_params *p);

/* A short name for a stop reason ("max_tokens", "eot", "stop_sequence", "context_full"). */
const char *gpt2_stop_reason_name(gpt2_stop_reason r);

/* Prepares generation after prompt[0..n_prompt) (token ids). Validates everything; the
 * prompt is run on the first gpt2_generator_next call. w and tok must outlive it. */
gpt2_err gpt2_generator_create(const gpt2_weights *w, const gpt2_tokenizer *tok,
                               const gpt2_generate_params *params, const int32_t *prompt,
                               size_t n_prompt, gpt2_generator **out, gpt2_error *err);

/* Produces the next token (the first call also runs the prompt). After a piece with
 * stop != GPT2_STOP_NONE, further calls return an empty piece with the same reason. */
gpt2_err gpt2_generator_next(gpt2_generator *g, gpt2_piece *piece, gpt2_error *err);

/* Number of tokens generated so far, and number of prompt tokens actually run. */
int gpt2_generator_count(const gpt2_generator *g);
int gpt2_generator_prompt_tokens(const gpt2_generator *g);

/* The logits the last token was sampled from (after the step that produced it),
 * before sampling changed them: [n_vocab] floats, or NULL before the first step. */
const float *gpt2_generator_logits(const gpt2_generator *g);

/* Releases a generator (NULL is allowed). */
void gpt2_generator_free(gpt2_generator *g);

#endif
