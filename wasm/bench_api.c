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
 * The native CLI's `gpt2 bench` (src/cli_bench.c) runs the same two loops in C.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "model.h"
#include "pool.h"
#include "weights.h"

#ifdef __EMSCRIPTEN__
#include <emscripten.h>
#define API EMSCRIPTEN_KEEPALIVE
#else
#define API
#endif

#define BENCH_MAX_SLICES 256

/* (the same probe as in src/cli_bench.c) Reads n bytes at c once as 4 interleaved streams (16-byte loads, a cache line of each
 * stream per step, as decode's products read 4 weight rows at a time) and returns the XOR of
 * their 32-bit words. */
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
typedef v128_t rv;
#define RV_LOAD(p) wasm_v128_load(p)
#define RV_XOR(a, b) wasm_v128_xor(a, b)
#define RV_ZERO() wasm_i32x4_splat(0)
#define RV_LANES(v, t) wasm_v128_store(t, v)
#elif defined(__SSE2__)
#include <emmintrin.h>
typedef __m128i rv;
#define RV_LOAD(p) _mm_loadu_si128((const __m128i *)(const void *)(p))
#define RV_XOR(a, b) _mm_xor_si128(a, b)
#define RV_ZERO() _mm_setzero_si128()
#define RV_LANES(v, t) _mm_storeu_si128((__m128i *)(void *)(t), v)
#else
typedef struct rv { uint64_t a, b; } rv;
static rv rv_load(const unsigned char *p) { rv v; memcpy(&v, p, 16); return v; }
static rv rv_xor(rv x, rv y) { rv v = {x.a ^ y.a, x.b ^ y.b}; return v; }
#define RV_LOAD(p) rv_load(p)
#define RV_XOR(a, b) rv_xor(a, b)
#define RV_ZERO() ((rv){0, 0})
#define RV_LANES(v, t) memcpy(t, &(v), 16)
#endif
#define RV_LINE(p) RV_XOR(RV_XOR(RV_LOAD(p), RV_LOAD((p) + 16)), RV_XOR(RV_LOAD((p) + 32), RV_LOAD((p) + 48)))

static uint32_t read4(const unsigned char *c, size_t n) {
    size_t q = (n / 4) & ~(size_t)63;
    const unsigned char *p0 = c, *p1 = c + q, *p2 = c + 2 * q, *p3 = c + 3 * q;
    rv a0 = RV_ZERO(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < q; i += 64) {
        a0 = RV_XOR(a0, RV_LINE(p0 + i));
        a1 = RV_XOR(a1, RV_LINE(p1 + i));
        a2 = RV_XOR(a2, RV_LINE(p2 + i));
        a3 = RV_XOR(a3, RV_LINE(p3 + i));
    }
    uint32_t t[4];
    rv s = RV_XOR(RV_XOR(a0, a1), RV_XOR(a2, a3));
    RV_LANES(s, t);
    return t[0] ^ t[1] ^ t[2] ^ t[3] ^ k_read_bytes(c + 4 * q, n - 4 * q);
}

typedef struct stream_job {
    const unsigned char *base;
    size_t bytes;
    int slices;
    uint32_t sums[BENCH_MAX_SLICES];
} stream_job;

static void stream_task(void *ctx, int i) {
    stream_job *j = ctx;
    /* 64-byte aligned slice boundaries (the arena's tensors start at multiples of 64) */
    size_t a = (j->bytes / (size_t)j->slices * (size_t)i) & ~(size_t)63;
    size_t b = i + 1 == j->slices ? j->bytes : (j->bytes / (size_t)j->slices * (size_t)(i + 1)) & ~(size_t)63;
    j->sums[i] = read4(j->base + a, b - a);
}

/* XOR checksum of the weights arena, read once by the weights' pool (1 thread without one). */
API uint32_t wasm_bench_stream_weights(const gpt2_weights *w) {
    static stream_job job; /* one call at a time (the JS thread) */
    if (!w || !w->arena) return 0;
    int threads = gpt2_pool_threads(w->pool);
    job.base = w->arena;
    job.bytes = w->arena_bytes;
    job.slices = threads < 1 ? 1 : threads > BENCH_MAX_SLICES ? BENCH_MAX_SLICES : threads;
    gpt2_pool_run(w->pool, stream_task, &job, job.slices);
    uint32_t r = 0;
    for (int i = 0; i < job.slices; i++) r ^= job.sums[i];
    return r;
}

/* Runs one token through s (logits: n_vocab floats) and returns the most likely next token
 * (lowest id on ties), or -1 with err filled. */
API int wasm_bench_step(gpt2_state *s, int token, float *logits, int n_vocab, gpt2_error *err) {
    int32_t t = token;
    if (gpt2_forward(s, &t, 1, logits, 0, err) != GPT2_OK) return -1;
    int best = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}
