/* pool.h - a fixed pool of worker threads that runs data-parallel loops.
 *
 * gpt2_pool_run(pool, fn, ctx, n) calls fn(ctx, i) once for every i in [0, n), spread over
 * the pool's threads (the calling thread takes part), and returns when all calls are done.
 * A NULL pool, or a pool of 1 thread, runs the calls in order on the calling thread, so code
 * written against the pool works unchanged in the single-threaded WASM build.
 */
#ifndef GPT2_POOL_H
#define GPT2_POOL_H

#include "status.h"

typedef struct gpt2_pool gpt2_pool;

/* Creates a pool of n_threads threads in all (n_threads - 1 workers plus the caller);
 * n_threads <= 0 means one per available core. Builds without thread support create a
 * 1-thread pool. */
gpt2_err gpt2_pool_create(int n_threads, gpt2_pool **out, gpt2_error *err);

/* Stops the workers and releases the pool (NULL is allowed). */
void gpt2_pool_free(gpt2_pool *pool);

/* Threads the pool runs work on (1 for NULL). */
int gpt2_pool_threads(const gpt2_pool *pool);

/* Runs fn(ctx, i) for i in [0, n_tasks) and waits for all of them (see above). */
void gpt2_pool_run(gpt2_pool *pool, void (*fn)(void *ctx, int task), void *ctx, int n_tasks);

#endif
