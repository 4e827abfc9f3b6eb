/* api.c - the WebAssembly module's entry points beyond the core's own functions.
 *
 * JS calls core functions directly where their arguments are plain pointers and 32-bit
 * integers (tokenizer, decoder, forward pass, scoring). The wrappers here cover what does
 * not cross the boundary as is: 64-bit integers (passed as doubles, exact up to 2^53),
 * out-parameters returned as results, and the WebAssembly memory budget.
 *
 * Structs of options (gpt2_generate_params, gpt2_train_options) JS writes into memory itself,
 * after the core's *_default function: their layouts, those of the structs JS reads
 * (gpt2_error, gpt2_piece, gpt2_decoder) and every constant JS shares with the core reach JS
 * through js/constants.js, which wasm/constants.c writes from the headers at build time.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "generate.h"
#include "loader.h"
#include "model.h"
#include "pool.h"
#include "quantize.h"
#include "score.h"
#include "session.h"
#include "tokenizer.h"
#include "train.h"
#include "weights.h"

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
#include <emscripten/heap.h> /* emscripten_get_sbrk_ptr, emscripten_get_heap_max */
#define API EMSCRIPTEN_KEEPALIVE
#else
#define API
#endif

#ifdef __EMSCRIPTEN__
/* Bytes the heap can still grow by: the most the memory can grow to (4 GB - 64 KiB with
 * -sMAXIMUM_MEMORY=4GB) minus its current end. The budget of loads and of training. */
static uint64_t memory_left(void) {
    uint64_t used = (uint64_t)*emscripten_get_sbrk_ptr(), limit = (uint64_t)emscripten_get_heap_max();
    return used < limit ? limit - used : 0;
}
#endif

/* The budget a load gets: memory_budget bytes (0 = no limit of the caller's), in WebAssembly
 * capped at memory_left() (see wasm_loader_create). */
static uint64_t load_budget(double memory_budget) {
    uint64_t b = memory_budget > 0 ? (uint64_t)memory_budget : 0;
#ifdef __EMSCRIPTEN__
    uint64_t left = memory_left();
    if (b == 0 || b > left) b = left ? left : 1;
#endif
    return b;
}

/* Creates a loader from config.json bytes; memory_budget in bytes (0 = no limit of the
 * caller's); precision is a gpt2_precision (0 auto, 1 f32, 2 f16, 3 q8_0). In WebAssembly the
 * budget is also capped at what is left above the heap's current end (wasm_heap_end) of the
 * most the memory can grow to (4 GB - 64 KiB with -sMAXIMUM_MEMORY=4GB), so that a model which
 * cannot fit fails at once with a message naming a precision that would, and 'auto' picks
 * one that fits. pool (or NULL) converts while loading (loader.h). Returns the loader or NULL
 * (err filled). */
API gpt2_loader *wasm_loader_create(const char *config, size_t len, double memory_budget, int precision,
                                    gpt2_pool *pool, gpt2_error *err) {
    gpt2_loader_options opt = {0};
    opt.pool = pool;
    opt.memory_budget_bytes = load_budget(memory_budget);
    opt.precision = (gpt2_precision)precision;
    opt.source_name = "model.safetensors";
    gpt2_loader *ld = NULL;
    gpt2_loader_create(config, len, &opt, &ld, err);
    return ld;
}

/* The heap's end (the sbrk pointer): the bytes of memory malloc has taken so far, including the
 * module's static data and stack; 0 outside WebAssembly. WebAssembly memory never shrinks and
 * this module's malloc does not give memory back below it after large frees, so its value after
 * loading and one generation is the peak tools/memory-table.mjs reports. */
API double wasm_heap_end(void) {
#ifdef __EMSCRIPTEN__
    return (double)*emscripten_get_sbrk_ptr();
#else
    return 0;
#endif
}

/* gpt2_loader_set_file_size with the size as a double. */
API int wasm_loader_set_file_size(gpt2_loader *ld, double size, gpt2_error *err) {
    if (!(size >= 0)) return gpt2_fail(err, GPT2_ERR_ARG, "file size must be >= 0");
    return gpt2_loader_set_file_size(ld, (uint64_t)size, err);
}

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
    out[6] = !w->tied_head;
}

/* Parameters the model has (gpt2_weights.n_params: a tied head counted once). */
API double wasm_weights_params(const gpt2_weights *w) { return (double)w->n_params; }

/* Bytes the weights occupy (their pieces and bookkeeping, gpt2_weights_plan_bytes). */
API double wasm_weights_bytes(const gpt2_weights *w) {
    return (double)gpt2_weights_plan_bytes(&w->config, &w->plan);
}

/* The storage dtypes (0 f32, 1 f16, 2 q8_0): out[0] the main one, out[1 + k] matrix kind k
 * (wte, lm_head, qkv, attn_proj, fc, mlp_proj; lm_head = wte's when tied). */
API void wasm_weights_precision(const gpt2_weights *w, int32_t out[7]) {
    out[0] = (int32_t)gpt2_weights_main_dtype(w);
    for (int k = 0; k < GPT2_MAT_KINDS; k++) out[1 + k] = (int32_t)w->plan.dtype[k];
    if (w->tied_head) out[1 + GPT2_MAT_LM_HEAD] = (int32_t)w->plan.dtype[GPT2_MAT_WTE];
}

/* Why the loader stored this precision (gpt2_weights.precision_reason), NUL-terminated. */
API const char *wasm_weights_precision_reason(const gpt2_weights *w) { return w->precision_reason; }

/* Bytes a model of this config.json needs (weights in precision 1 f32 / 2 f16 / 3 q8_0 + one
 * state's KV cache and scratch: gpt2_model_bytes), or -1 (err filled). */
API double wasm_model_bytes(const char *config, size_t len, int precision, int untied, gpt2_error *err) {
    gpt2_config c;
    if (gpt2_config_parse(config, len, &c, err) != GPT2_OK) return -1;
    gpt2_dtype t = precision == 2 ? GPT2_DTYPE_F16 : precision == 3 ? GPT2_DTYPE_Q8_0 : GPT2_DTYPE_F32;
    gpt2_weights_plan p = gpt2_weights_plan_uniform(&c, untied, t);
    uint64_t b = gpt2_model_bytes(&c, &p);
    return b == UINT64_MAX ? -1 : (double)b;
}

/* What loading a checkpoint of this config.json would store, before its weights are read
 * (the loader's own rule, gpt2_precision_choose): the file's weights stored as `stored`
 * (1 f32, 2 f16, 3 q8_0), untied = a separate lm_head, loaded with precision (0 auto, 1 f32,
 * 2 f16, 3 q8_0) within the budget wasm_loader_create would give (load_budget). Writes the
 * reason (NUL-terminated, at most 192 bytes) and out[0] the bytes needed in the chosen
 * precision, out[1] the budget. Returns the chosen dtype (1 f32, 2 f16, 3 q8_0), or 0 when it
 * does not fit (err: the loader's message, naming a precision that fits), -1 on a bad argument. */
API int wasm_precision_plan(const char *config, size_t len, int stored, int untied, int precision,
                            double memory_budget, char reason[192], double out[2], gpt2_error *err) {
    gpt2_config c;
    if (gpt2_config_parse(config, len, &c, err) != GPT2_OK) return -1;
    if (stored < 1 || stored > 3 || precision < 0 || precision > 3) {
        gpt2_fail(err, GPT2_ERR_ARG, "wasm_precision_plan: bad stored dtype %d or precision %d", stored, precision);
        return -1;
    }
    static const gpt2_dtype dtypes[] = {GPT2_DTYPE_F32, GPT2_DTYPE_F32, GPT2_DTYPE_F16, GPT2_DTYPE_Q8_0};
    gpt2_weights_plan p = gpt2_weights_plan_uniform(&c, untied != 0, dtypes[precision ? precision : stored]);
    uint64_t budget = load_budget(memory_budget);
    /* as gpt2_loader_create checks first: the least the model can take (the forced precision,
     * or q8_0 under auto), with the same message */
    gpt2_weights_plan least = gpt2_weights_plan_uniform(&c, 0, precision ? dtypes[precision] : GPT2_DTYPE_Q8_0);
    if (gpt2_check_budget(&c, &least, budget, err) != GPT2_OK) {
        uint64_t n = gpt2_model_bytes(&c, &least);
        out[0] = n == UINT64_MAX ? -1 : (double)n;
        out[1] = (double)budget;
        reason[0] = 0;
        return 0;
    }
    gpt2_dtype chosen = gpt2_precision_choose(&c, (gpt2_precision)precision, budget, &p, reason, 192);
    uint64_t need = gpt2_model_bytes(&c, &p);
    out[0] = need == UINT64_MAX ? -1 : (double)need;
    out[1] = (double)budget;
    if (gpt2_check_budget(&c, &p, budget, err) != GPT2_OK) return 0;
    return (int)chosen + 1;
}

/* The streaming converter (quantize.h) for JS: type 1 = f16, 2 = q8_0. */
API gpt2_quantizer *wasm_quantizer_create(int type, gpt2_error *err) {
    gpt2_quantizer *q = NULL;
    gpt2_quantizer_create(type == 1 ? GPT2_DTYPE_F16 : type == 2 ? GPT2_DTYPE_Q8_0 : GPT2_DTYPE_F32,
                          "model.safetensors", &q, err);
    return q;
}

/* Start and length of the output produced and not yet taken (consume with gpt2_quantizer_consume). */
API const uint8_t *wasm_quantizer_output_ptr(gpt2_quantizer *q) {
    const uint8_t *p = NULL;
    gpt2_quantizer_output(q, &p);
    return p;
}
API size_t wasm_quantizer_output_len(gpt2_quantizer *q) { return gpt2_quantizer_output(q, NULL); }
API double wasm_quantizer_output_size(const gpt2_quantizer *q) { return (double)gpt2_quantizer_output_size(q); }

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

/* Creates a generator from params, a gpt2_generate_params JS filled (gpt2_generate_params_default,
 * then the options given; its layout reaches JS through js/constants.js). With session != NULL
 * the generation continues that session (prompt/n_prompt are ignored). Returns the generator or
 * NULL (err filled). */
API gpt2_generator *wasm_generator_create(const gpt2_weights *w, const gpt2_tokenizer *tok,
                                          const gpt2_generate_params *params, const int32_t *prompt,
                                          size_t n_prompt, gpt2_session *session, gpt2_error *err) {
    gpt2_generator *g = NULL;
    if (session) gpt2_generator_create_in_session(session, tok, params, &g, err);
    else gpt2_generator_create(w, tok, params, prompt, n_prompt, &g, err);
    return g;
}

/* Creates an empty session (its own KV cache); NULL on error. */
API gpt2_session *wasm_session_create(const gpt2_weights *w, int max_batch, gpt2_error *err) {
    gpt2_session *s = NULL;
    gpt2_session_create(w, max_batch, &s, err);
    return s;
}

/* A copy of a session (tokens and KV cache); NULL on error. */
API gpt2_session *wasm_session_clone(const gpt2_session *src, gpt2_error *err) {
    gpt2_session *s = NULL;
    gpt2_session_clone(src, &s, err);
    return s;
}

/* ---- threads (the threaded build; elsewhere a pool has 1 thread) ---- */

/* Creates a pool of n threads in all (n - 1 workers + the caller; n <= 0: one per core).
 * Returns the pool or NULL (err filled). */
API gpt2_pool *wasm_pool_create(int n, gpt2_error *err) {
    gpt2_pool *p = NULL;
    gpt2_pool_create(n, &p, err);
    return p;
}

/* Threads of a pool (1 in builds without threads). */
API int wasm_pool_threads(const gpt2_pool *p) { return gpt2_pool_threads(p); }

/* Makes the weights' forward passes use pool (not owned; NULL = the calling thread only). */
API void wasm_weights_set_pool(gpt2_weights *w, gpt2_pool *pool) { w->pool = pool; }


/* ---- fine-tuning (train.h) ---- */

/* Creates a training state for w with options o (a gpt2_train_options JS filled:
 * gpt2_train_options_default, then the options given; its layout reaches JS through
 * js/constants.js). The memory budget is what is left of the 4 GB address space, so a model
 * that cannot be trained fails at once naming a batch x seq that fits. Returns the state or
 * NULL (err filled). */
API gpt2_train *wasm_train_create(const gpt2_weights *w, const gpt2_train_options *o, gpt2_error *err) {
    uint64_t budget = 0;
#ifdef __EMSCRIPTEN__
    budget = memory_left();
    if (budget == 0) budget = 1;
#endif
    gpt2_train *t = NULL;
    gpt2_train_create(w, o, budget, &t, err);
    return t;
}

/* One step; out receives steps done, loss, gradient norm and learning rate. */
API int wasm_train_step(gpt2_train *t, float out[4], gpt2_error *err) {
    gpt2_train_stats st;
    gpt2_err rc = gpt2_train_step(t, &st, err);
    if (rc == GPT2_OK) {
        out[0] = (float)st.step;
        out[1] = st.loss;
        out[2] = st.grad_norm;
        out[3] = st.lr;
    }
    return rc;
}

/* The resumable checkpoint (train.h): its size in bytes, written into buf (cap bytes), or read
 * from buf (len bytes; checked before anything changes). Sizes as doubles (exact below 2^53). */
API double wasm_train_checkpoint_size(const gpt2_train *t) { return (double)gpt2_train_checkpoint_size(t); }
API int wasm_train_checkpoint_write(gpt2_train *t, uint8_t *buf, double cap, gpt2_error *err) {
    return gpt2_train_checkpoint_write(t, buf, cap > 0 ? (uint64_t)cap : 0, err);
}
API int wasm_train_checkpoint_read(gpt2_train *t, const uint8_t *buf, double len, gpt2_error *err) {
    return gpt2_train_checkpoint_read(t, buf, len > 0 ? (uint64_t)len : 0, err);
}

/* Steps done by a training state (after a checkpoint read: the checkpoint's). */
API double wasm_train_step_count(const gpt2_train *t) { return (double)gpt2_train_step_count(t); }

/* Size of the model's safetensors file in dtype (0 f32, 1 f16), as a double. */
API double wasm_weights_safetensors_size(gpt2_weights *w, int dtype) {
    return (double)gpt2_weights_safetensors_size(w, (gpt2_dtype)dtype);
}

/* Writes it into buf (cap bytes). */
API int wasm_weights_write_safetensors(gpt2_weights *w, int dtype, uint8_t *buf, double cap, gpt2_error *err) {
    return gpt2_weights_write_safetensors(w, (gpt2_dtype)dtype, buf, cap > 0 ? (uint64_t)cap : 0, err);
}

/* The model's config.json text into buf; returns its length (see gpt2_config_json). */
API size_t wasm_weights_config_json(const gpt2_weights *w, int dtype, char *buf, size_t cap) {
    return gpt2_config_json(&w->config, w->tied_head, (gpt2_dtype)dtype, buf, cap);
}
