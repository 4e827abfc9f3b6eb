/* api.c - the WebAssembly module's entry points beyond the core's own functions.
 *
 * JS calls core functions directly where their arguments are plain pointers and 32-bit
 * integers (tokenizer, decoder, forward pass, scoring). The wrappers here cover what does
 * not cross the boundary as is: structs of options, 64-bit integers (passed as doubles,
 * exact up to 2^53) and out-parameters returned as results.
 *
 * Layouts JS reads directly (wasm32, checked below):
 *   gpt2_error  { int32 code @0; char message[256] @4 }
 *   gpt2_piece  { int32 id @0; const char *text @4; uint32 len @8; int32 stop @12 }
 *   gpt2_decoder: 4 bytes, opaque to JS
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "generate.h"
#include "loader.h"
#include "model.h"
#include "score.h"
#include "tokenizer.h"
#include "weights.h"

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
#define API EMSCRIPTEN_KEEPALIVE
#else
#define API
#endif

_Static_assert(offsetof(gpt2_error, message) == 4, "gpt2_error layout");
#if UINTPTR_MAX == 0xFFFFFFFFu
_Static_assert(offsetof(gpt2_piece, text) == 4 && offsetof(gpt2_piece, len) == 8 &&
                   offsetof(gpt2_piece, stop) == 12 && sizeof(gpt2_piece) == 16,
               "gpt2_piece layout");
#endif
_Static_assert(sizeof(gpt2_decoder) <= 8, "gpt2_decoder fits the 8 bytes JS allocates");

/* Creates a loader from config.json bytes; memory_budget in bytes (0 = unlimited).
 * Returns the loader or NULL (err filled). */
API gpt2_loader *wasm_loader_create(const char *config, size_t len, double memory_budget, gpt2_error *err) {
    gpt2_loader_options opt = {0};
    opt.memory_budget_bytes = memory_budget > 0 ? (uint64_t)memory_budget : 0;
    opt.source_name = "model.safetensors";
    gpt2_loader *ld = NULL;
    gpt2_loader_create(config, len, &opt, &ld, err);
    return ld;
}

/* gpt2_loader_set_file_size with the size as a double. */
API int wasm_loader_set_file_size(gpt2_loader *ld, double size, gpt2_error *err) {
    if (!(size >= 0)) return gpt2_fail(err, GPT2_ERR_ARG, "file size must be >= 0");
    return gpt2_loader_set_file_size(ld, (uint64_t)size, err);
}

/* Total bytes of model.safetensors once its header is known (else 0), as a double. */
API double wasm_loader_bytes_expected(const gpt2_loader *ld) { return (double)gpt2_loader_bytes_expected(ld); }

/* Ends the stream; returns the weights (the caller owns them) or NULL (err filled). */
API gpt2_weights *wasm_loader_finish(gpt2_loader *ld, gpt2_error *err) {
    gpt2_weights *w = NULL;
    gpt2_loader_finish(ld, &w, err);
    return w;
}

/* Writes the config as 7 numbers: n_layer, n_head, n_embd, n_ctx, n_vocab, n_inner, and
 * whether lm_head is separate from wte. */
API void wasm_weights_config(const gpt2_weights *w, int32_t out[7]) {
    const gpt2_config *c = &w->config;
    out[0] = c->n_layer;
    out[1] = c->n_head;
    out[2] = c->n_embd;
    out[3] = c->n_ctx;
    out[4] = c->n_vocab;
    out[5] = c->n_inner;
    out[6] = w->lm_head != w->wte;
}

/* Bytes the weights occupy. */
API double wasm_weights_bytes(const gpt2_weights *w) {
    return (double)gpt2_weights_bytes(&w->config, w->lm_head != w->wte);
}

/* Creates a tokenizer from vocab.json and merges.txt bytes; NULL on error. */
API gpt2_tokenizer *wasm_tokenizer_create(const char *vocab, size_t vocab_len, const char *merges,
                                          size_t merges_len, gpt2_error *err) {
    gpt2_tokenizer *tok = NULL;
    gpt2_tokenizer_create(vocab, vocab_len, merges, merges_len, &tok, err);
    return tok;
}

/* Creates a state for the forward pass; NULL on error. */
API gpt2_state *wasm_state_create(const gpt2_weights *w, int max_batch, gpt2_error *err) {
    gpt2_state *s = NULL;
    gpt2_state_create(w, max_batch, &s, err);
    return s;
}

/* Creates a generator. stops points to n_stop NUL-terminated strings; seed is a whole
 * number up to 2^53. Returns the generator or NULL (err filled). */
API gpt2_generator *wasm_generator_create(const gpt2_weights *w, const gpt2_tokenizer *tok, const int32_t *prompt,
                                          size_t n_prompt, int max_new_tokens, float temperature, int top_k,
                                          float top_p, float repetition_penalty, double seed, int ignore_eot,
                                          const char *const *stops, int n_stop, gpt2_error *err) {
    gpt2_generate_params p;
    gpt2_generate_params_default(&p);
    p.max_new_tokens = max_new_tokens;
    p.sampler.temperature = temperature;
    p.sampler.top_k = top_k;
    p.sampler.top_p = top_p;
    p.sampler.repetition_penalty = repetition_penalty;
    if (!(seed >= 0 && seed <= 9007199254740992.0)) {
        gpt2_fail(err, GPT2_ERR_ARG, "seed must be a whole number from 0 to 2^53");
        return NULL;
    }
    p.sampler.seed = (uint64_t)seed;
    p.ignore_eot = ignore_eot;
    if (n_stop < 0 || n_stop > GPT2_MAX_STOP_SEQUENCES) {
        gpt2_fail(err, GPT2_ERR_ARG, "at most %d stop sequences, got %d", GPT2_MAX_STOP_SEQUENCES, n_stop);
        return NULL;
    }
    p.n_stop = n_stop;
    for (int i = 0; i < n_stop; i++) p.stop[i] = stops[i];
    gpt2_generator *g = NULL;
    gpt2_generator_create(w, tok, &p, prompt, n_prompt, &g, err);
    return g;
}
