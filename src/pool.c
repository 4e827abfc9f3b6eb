/* pool.c - see pool.h.
 *
 * A persistent pool: n_threads - 1 worker threads are started once and wait for work; the
 * calling thread of gpt2_pool_run takes part too. One run ("generation") at a time:
 *   run:    publish fn/ctx/n_tasks, reset the task counter, bump the generation (under the
 *           mutex, then broadcast), run tasks itself, then wait until every worker has
 *           reported this generation finished.
 *   worker: spin a little on the generation counter (a run usually follows the previous one
 *           within microseconds: the forward pass calls the pool several times per layer),
 *           then sleep on the condition variable; take tasks from the shared atomic counter
 *           until none are left; report.
 * Tasks are claimed one by one with an atomic fetch-add, so uneven task costs balance out.
 * Builds without threads (WASM without -pthread) have no workers: every pool runs its tasks
 * on the calling thread.
 */
#include "pool.h"

#include <stdlib.h>

#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
#define GPT2_POOL_THREADS 0
#elif defined(__STDC_NO_ATOMICS__)
#define GPT2_POOL_THREADS 0
#else
#define GPT2_POOL_THREADS 1
#endif

#if GPT2_POOL_THREADS
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOL_PAUSE() _mm_pause()
enum { POOL_SPIN = 2000 }; /* pause is tens of cycles: about 0.1 ms in all */
#else
#define POOL_PAUSE() ((void)0)
enum { POOL_SPIN = 50000 }; /* a bare atomic load per turn: about 0.1 ms in all */
#endif

enum { POOL_MAX_THREADS = 256 };

struct gpt2_pool {
    int n_threads; /* workers + the caller */
    int n_workers; /* worker threads actually running */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a new generation or stop */
    pthread_cond_t done; /* the last worker finished the generation */
    /* the current run; written by the caller before the generation is bumped */
    void (*fn)(void *ctx, int task);
    void *ctx;
    int n_tasks;
    atomic_int next;        /* next task to claim */
    atomic_int finished;    /* workers done with this generation */
    atomic_uint generation; /* bumped once per run */
    atomic_int stop;
};

static void run_tasks(gpt2_pool *p) {
    for (;;) {
        int i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= p->n_tasks) break;
        p->fn(p->ctx, i);
    }
}

static void *worker_main(void *arg) {
    gpt2_pool *p = arg;
    /* generation 0 is the pool's creation: a run may start before this thread does */
    unsigned seen = 0;
    for (;;) {
        unsigned g = seen;
        for (int spin = 0; spin < POOL_SPIN; spin++) {
            g = atomic_load_explicit(&p->generation, memory_order_acquire);
            if (g != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
            POOL_PAUSE();
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
                   !atomic_load_explicit(&p->stop, memory_order_relaxed))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        seen = g;
        run_tasks(p);
        if (atomic_fetch_add_explicit(&p->finished, 1, memory_order_acq_rel) + 1 == p->n_workers) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static int available_cores(void) {
#ifdef _SC_NPROCESSORS_ONLN
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n >= 1) return n > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)n;
#endif
    return 1;
}

gpt2_err gpt2_pool_create(int n_threads, gpt2_pool **out, gpt2_error *err) {
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_pool_create: NULL argument");
    *out = NULL;
    if (n_threads <= 0) n_threads = available_cores();
    if (n_threads > POOL_MAX_THREADS)
        return gpt2_fail(err, GPT2_ERR_ARG, "at most %d threads, got %d", POOL_MAX_THREADS, n_threads);
    gpt2_pool *p = calloc(1, sizeof *p);
    if (!p) return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate a thread pool");
    p->n_threads = 1;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot create a mutex");
    }
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot create a condition variable");
    }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot create a condition variable");
    }
    atomic_init(&p->next, 0);
    atomic_init(&p->finished, 0);
    atomic_init(&p->generation, 0);
    atomic_init(&p->stop, 0);
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) {
            gpt2_pool_free(p);
            return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate a thread pool");
        }
        for (int i = 0; i < n_threads - 1; i++) {
            if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
                gpt2_pool_free(p);
                return gpt2_fail(err, GPT2_ERR_NOMEM, "cannot start thread %d of %d", i + 2, n_threads);
            }
            p->n_workers++;
        }
        p->n_threads = n_threads;
    }
    *out = p;
    return GPT2_OK;
}

void gpt2_pool_free(gpt2_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int gpt2_pool_threads(const gpt2_pool *pool) { return pool ? pool->n_threads : 1; }

void gpt2_pool_run(gpt2_pool *p, void (*fn)(void *ctx, int task), void *ctx, int n_tasks) {
    if (n_tasks <= 0) return;
    if (!p || p->n_workers == 0 || n_tasks == 1) {
        for (int i = 0; i < n_tasks; i++) fn(ctx, i);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->finished, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p);
    for (int spin = 0; spin < POOL_SPIN; spin++) {
        if (atomic_load_explicit(&p->finished, memory_order_acquire) == p->n_workers) return;
        POOL_PAUSE();
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->finished, memory_order_acquire) != p->n_workers)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

#else /* no threads: every pool is the calling thread */

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

#endif
