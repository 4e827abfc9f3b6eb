/* generate.h - token-by-token text generation: prompt prefill, sampling, streaming-safe
 * decoding, stop conditions. One step API serves the native CLI and the WASM/JS layer
 * (which needs to yield between tokens for AbortSignal and async iteration).
 *
 * Policies:
 *  - An empty prompt is conditioned on <|endoftext|> (GPT-2's unconditional start);
 *    a vocabulary without it makes an empty prompt an error.
 *  - A prompt longer than the context (n_ctx tokens) is an error naming both lengths, or,
 *    with truncate_prompt, loses its oldest tokens: the last max(n_ctx - max_new_tokens,
 *    n_ctx / 2) tokens are kept (gpt2_generator_truncated says how many were dropped).
 *  - When the context fills up: with GPT2_CONTEXT_STOP generation ends (reason
 *    context_full); with GPT2_CONTEXT_SLIDE the session keeps its most recent
 *    slide_keep tokens (default n_ctx / 2), recomputes their cache at positions
 *    0..slide_keep-1, and generation goes on (gpt2_generator_slides counts the slides).
 *  - Generation ends at max_new_tokens, at <|endoftext|> (unless ignore_eot), at a stop
 *    sequence (the text before it is emitted, the stop sequence itself is not), or when
 *    the context is full (GPT2_STOP_CONTEXT_FULL).
 *  - Logit bias (params.sampler.bias_ids/bias): added to the logits before sampling
 *    (-INFINITY bans a token); see sampler.h.
 *  - Banned words (params.banned_words): the text never gains an occurrence of a banned
 *    word that starts at a word start. Rule, on raw token bytes: let T be the bytes of
 *    every token so far (prompt or session history included) and W a banned word. A
 *    position p of T+B is a word start when p = 0, or the byte before it is not a word
 *    byte (ASCII letter or digit, or any byte >= 0x80), or W itself begins with a non-word
 *    byte. Token t (bytes B) is banned at this step when W occurs in T+B at a word start
 *    and ends inside B. Consequences: W is banned in both its " W" and "W" forms whatever
 *    tokens would spell it (one token, several, or a tail of a longer token); when the
 *    text so far ends with a prefix of W at a word start (e.g. " Eliz" for "Elizabeth"),
 *    every token that would complete it is banned, while tokens that only extend the
 *    prefix or leave it are allowed; words that begin with W ("cats" for "cat") are
 *    banned too (the tokens cannot know how the word would end), words that contain W
 *    later ("concat") are not. Matching is byte-exact (case-sensitive). Checking costs
 *    O(n_vocab) per step per word and prefix state, on top of a once-per-generation scan.
 */
#ifndef GPT2_GENERATE_H
#define GPT2_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "sampler.h"
#include "session.h"
#include "speculative.h"
#include "status.h"
#include "tokenizer.h"
#include "weights.h"

#define GPT2_MAX_STOP_SEQUENCES 8

/* Tokens one forward step runs: a longer prompt is prefilled in steps of this many (the
 * max_batch of the generator's own session; the JS API's sessions use it too). */
#define GPT2_PREFILL_BATCH 64

typedef enum gpt2_stop_reason {
    GPT2_STOP_NONE = 0,     /* not finished */
    GPT2_STOP_MAX_TOKENS,   /* max_new_tokens were generated */
    GPT2_STOP_EOT,          /* the model produced <|endoftext|> */
    GPT2_STOP_SEQUENCE,     /* a stop sequence appeared in the text */
    GPT2_STOP_CONTEXT_FULL  /* no room left in the context window */
} gpt2_stop_reason;

typedef enum gpt2_context_policy {
    GPT2_CONTEXT_STOP = 0,  /* a full context ends generation (GPT2_STOP_CONTEXT_FULL) */
    GPT2_CONTEXT_SLIDE      /* keep the most recent tokens and go on */
} gpt2_context_policy;

typedef struct gpt2_generate_params {
    gpt2_sampler_params sampler;
    int max_new_tokens;                          /* >= 0; default 64 */
    int ignore_eot;                              /* non-zero: keep going past <|endoftext|> */
    int n_stop;                                  /* number of stop sequences used */
    const char *stop[GPT2_MAX_STOP_SEQUENCES];   /* NUL-terminated UTF-8, non-empty; copied */
    int n_banned;                                /* number of banned words */
    const char *const *banned_words;             /* [n_banned] NUL-terminated, non-empty; copied */
    gpt2_context_policy context_policy;          /* default GPT2_CONTEXT_STOP */
    int slide_keep;                              /* tokens kept by a slide; 0 = n_ctx / 2 */
    int truncate_prompt;                         /* non-zero: drop a long prompt's oldest tokens */
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

/* Prepares generation that continues session s: the session's tokens are the prompt (an
 * empty session starts from <|endoftext|>, which is appended to it), and every generated
 * token is appended to the session (the last one as a pending token, computed by the
 * session's next call). Only uncomputed tokens run: the cost does not depend on the
 * history. s must outlive the generator and must not be used while it runs;
 * gpt2_generator_prompt_tokens is the session's length at the start. */
gpt2_err gpt2_generator_create_in_session(gpt2_session *s, const gpt2_tokenizer *tok,
                                          const gpt2_generate_params *params, gpt2_generator **out,
                                          gpt2_error *err);

/* Produces the next token (the first call also runs the prompt). After a piece with
 * stop != GPT2_STOP_NONE, further calls return an empty piece with the same reason. */
gpt2_err gpt2_generator_next(gpt2_generator *g, gpt2_piece *piece, gpt2_error *err);

/* Prompt tokens dropped by truncate_prompt, and context slides so far. */
int gpt2_generator_truncated(const gpt2_generator *g);
int gpt2_generator_slides(const gpt2_generator *g);

/* Number of tokens generated so far, and number of prompt tokens actually run. */
int gpt2_generator_count(const gpt2_generator *g);
int gpt2_generator_prompt_tokens(const gpt2_generator *g);

/* The logits the last token was sampled from (after the step that produced it),
 * before sampling changed them: [n_vocab] floats, or NULL before the first step and
 * with a draft (gpt2_generator_set_draft). */
const float *gpt2_generator_logits(const gpt2_generator *g);

/* Speculative decoding (speculative.h): the generator's tokens come from rounds in which
 * the draft session proposes k (1..16) tokens and the big model checks them in one
 * batched pass. Every sampling option applies (temperature, top-k, top-p, repetition
 * penalty, logit bias, banned words), to the draft's distribution and the big model's
 * alike. Greedy: the text is exactly the greedy text without a draft. Sampling: each token
 * has exactly the distribution it has without a draft (speculative sampling), drawn with
 * the generator's seeded PRNG, so a seed gives the same text on every platform, though not
 * the text the same seed gives without a draft (the draws are used differently). Call
 * before the first gpt2_generator_next. The draft session is borrowed (its tokens are
 * replaced by the generator's) and must outlive the generator. When generation ends
 * (or the generator is freed) with verified tokens not yet emitted, they are removed
 * from the generator's session, so it ends as without a draft. */
gpt2_err gpt2_generator_set_draft(gpt2_generator *g, gpt2_session *draft, int k, gpt2_error *err);

/* Draft tokens checked and accepted so far (0 without a draft). */
int gpt2_generator_draft_proposed(const gpt2_generator *g);
int gpt2_generator_draft_accepted(const gpt2_generator *g);

/* Releases a generator (NULL is allowed). */
void gpt2_generator_free(gpt2_generator *g);

#endif
