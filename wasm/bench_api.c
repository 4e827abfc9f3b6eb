/* bench_api.c - small entry points for the benchmark (scripts/bench.mjs, `npm run bench`).
 *
 * V8 keeps a running WebAssembly call in the code it started with (no on-stack replacement),
 * so the benchmark drives every timed loop from JavaScript, one call per step, after a
 * warm-up; these functions are the steps:
 *
 *   wasm_bench_stream_weights(w)      reads every byte of the weights arena once, split over
 *                                     the weights' thread pool (the roofline of decode: one
 *                                     decoded token streams every weight once); returns a
 *                                     checksum so the reads cannot be optimised away.
 *   wasm_bench_step(s, token, logits) one decode step (gpt2_forward of one token) and the
 *                                     greedy next token (argmax of the logits), or -1 on error.
 *
 * The native CLI's `gpt2 bench` (cli/bench.c) runs the same two loops in C (gpt2_weights_stream,
 * gpt2_forward + gpt2_argmax).
 */
#include <stdint.h>

#include "model.h"
#include "roofline.h"
#include "sampler.h"
#include "weights.h"

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
#define API EMSCRIPTEN_KEEPALIVE
#else
#define API
#endif

/* XOR checksum of the weights arena, read once by the weights' pool (roofline.h). */
API uint32_t wasm_bench_stream_weights(const gpt2_weights *w) { return gpt2_weights_stream(w); }

/* Runs one token through s (logits: n_vocab floats) and returns the most likely next token
 * (lowest id on ties), or -1 with err filled. */
API int wasm_bench_step(gpt2_state *s, int token, float *logits, int n_vocab, gpt2_error *err) {
    int32_t t = token;
    if (gpt2_forward(s, &t, 1, logits, 0, err) != GPT2_OK) return -1;
    return gpt2_argmax(logits, n_vocab);
}
