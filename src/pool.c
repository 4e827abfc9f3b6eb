/* pool.c - see pool.h. This first version has no worker threads: every pool runs its
 * tasks on the calling thread. (The threaded implementation replaces the bodies below.) */
#include "pool.h"

#include <stdlib.h>

struct gpt2_pool {
    int n_threads;
};

gpt2_err gpt2_pool_create(int n_threads, gpt2_pool **out, gpt2_error *err) {
    (void)n_threads;
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_pool_create: NULL argument");
    gpt2_pool *p = calloc(1, sizeof *p);
    if (!p) return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate a thread pool");
    p->n_threads = 1;
    *out = p;
    return GPT2_OK;
}

void gpt2_pool_free(gpt2_pool *pool) { free(pool); }

int gpt2_pool_threads(const gpt2_pool *pool) { return pool ? pool->n_threads : 1; }

void gpt2_pool_run(gpt2_pool *pool, void (*fn)(void *ctx, int task), void *ctx, int n_tasks) {
    (void)pool;
    for (int i = 0; i < n_tasks; i++) fn(ctx, i);
}
