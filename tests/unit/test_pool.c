/* test_pool.c - the thread pool: every task runs exactly once per run, for pools of 1..4
 * threads, many runs in a row, task counts below, at and above the thread count; NULL pools;
 * clean shutdown (the test ends; under ASan/TSan nothing leaks). And the forward pass with a
 * pool: the logits (prefill, all positions, then token-by-token decode) are bit-identical to
 * the single-thread ones in every weight precision. */
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"
#include "loader.h"
#include "model.h"
#include "pool.h"
#include "weights.h"

typedef struct counts {
    atomic_int *hits;
    atomic_long sum;
} counts;

static void count_task(void *ctx, int task) {
    counts *c = ctx;
    atomic_fetch_add(&c->hits[task], 1);
    long s = 0;
    for (int i = 0; i < 1000 * (task % 3); i++) s += i % 7; /* uneven task lengths */
    atomic_fetch_add(&c->sum, (long)task + (s < 0));
}

static void run_and_check(gpt2_pool *p, int n_tasks, int rounds) {
    counts c;
    c.hits = calloc((size_t)(n_tasks > 0 ? n_tasks : 1), sizeof *c.hits);
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < n_tasks; i++) atomic_store(&c.hits[i], 0);
        atomic_store(&c.sum, 0);
        gpt2_pool_run(p, count_task, &c, n_tasks);
        for (int i = 0; i < n_tasks; i++)
            if (atomic_load(&c.hits[i]) != 1) bad++;
        if (atomic_load(&c.sum) != (long)n_tasks * (n_tasks - 1) / 2) bad++;
    }
    CHECK(bad == 0, "%d threads, %d tasks, %d rounds: %d tasks not run exactly once", gpt2_pool_threads(p), n_tasks,
          rounds, bad);
    free(c.hits);
}

/* Logits of ids: all positions of one prefill, then n_more single-token steps. */
static float *run_model(const gpt2_weights *w, const int32_t *ids, int n, int n_more) {
    gpt2_error err;
    gpt2_state *s = NULL;
    int V = w->config.n_vocab;
    float *logits = malloc((size_t)(n + n_more) * V * sizeof(float));
    CHECK_OK(gpt2_state_create(w, 8, &s, &err), &err);
    if (!s || !logits) {
        free(logits);
        gpt2_state_free(s);
        return NULL;
    }
    CHECK_OK(gpt2_forward(s, ids, n, logits, 1, &err), &err);
    for (int t = 0; t < n_more; t++)
        CHECK_OK(gpt2_forward(s, ids + n + t, 1, logits + (size_t)(n + t) * V, 0, &err), &err);
    gpt2_state_free(s);
    return logits;
}

static void test_forward_threads(void) {
    const gpt2_precision precisions[3] = {GPT2_PRECISION_F32, GPT2_PRECISION_F16, GPT2_PRECISION_Q8_0};
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 37 + 5) % 200);
    for (int p = 0; p < 3; p++) {
        gpt2_error err;
        gpt2_weights *w = NULL;
        gpt2_loader_options opt = {0, NULL, precisions[p], NULL};
        CHECK_OK(gpt2_load_dir("tests/fixtures/tiny-f32", &opt, &w, &err), &err);
        if (!w) continue;
        size_t count = (size_t)24 * w->config.n_vocab;
        float *one = run_model(w, ids, 19, 5);
        for (int threads = 2; threads <= 3; threads++) {
            gpt2_pool *pool = NULL;
            CHECK_OK(gpt2_pool_create(threads, &pool, &err), &err);
            w->pool = pool;
            float *many = run_model(w, ids, 19, 5);
            CHECK(one && many && memcmp(one, many, count * sizeof(float)) == 0,
                  "precision %d, %d threads: logits differ from one thread's", (int)precisions[p], threads);
            free(many);
            w->pool = NULL;
            gpt2_pool_free(pool);
        }
        free(one);
        gpt2_weights_free(w);
    }
}

/* Converting while loading on 2 or 3 threads gives the weights of the one-thread load, byte
 * for byte (tasks split the output rows of every band; tiny-f32 has rows that are not a
 * multiple of 4, so the split also cuts through tiles' neighbours). */
static void test_load_threads(void) {
    const gpt2_precision precisions[2] = {GPT2_PRECISION_F16, GPT2_PRECISION_Q8_0};
    const char *const dirs[2] = {"tests/fixtures/tiny-f32", "tests/fixtures/tiny-f16"};
    for (int p = 0; p < 4; p++) {
        gpt2_error err;
        gpt2_weights *one = NULL;
        gpt2_loader_options opt = {0, NULL, precisions[p % 2], NULL};
        const char *dir = dirs[p / 2];
        CHECK_OK(gpt2_load_dir(dir, &opt, &one, &err), &err);
        if (!one) continue;
        for (int threads = 2; threads <= 3; threads++) {
            gpt2_pool *pool = NULL;
            gpt2_weights *many = NULL;
            CHECK_OK(gpt2_pool_create(threads, &pool, &err), &err);
            opt.pool = pool;
            CHECK_OK(gpt2_load_dir(dir, &opt, &many, &err), &err);
            int same = many && many->n_pieces == one->n_pieces;
            for (int i = 0; same && i < one->n_pieces; i++)
                same = one->pieces[i].bytes == many->pieces[i].bytes &&
                       memcmp(one->pieces[i].data, many->pieces[i].data, one->pieces[i].bytes) == 0;
            CHECK(same, "%s as %d loaded on %d threads: the weights differ from one thread's", dir, (int)precisions[p % 2],
                  threads);
            gpt2_weights_free(many);
            gpt2_pool_free(pool);
        }
        gpt2_weights_free(one);
    }
}

int main(void) {
    gpt2_error err;
    test_forward_threads();
    test_load_threads();
    for (int threads = 1; threads <= 4; threads++) {
        gpt2_pool *p = NULL;
        CHECK_OK(gpt2_pool_create(threads, &p, &err), &err);
        if (!p) continue;
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
        CHECK(gpt2_pool_threads(p) == 1, "a build without threads has 1 thread, got %d", gpt2_pool_threads(p));
#else
        CHECK(gpt2_pool_threads(p) == threads, "asked for %d threads, got %d", threads, gpt2_pool_threads(p));
#endif
        run_and_check(p, 0, 3);
        run_and_check(p, 1, 50);
        run_and_check(p, threads, 200);
        run_and_check(p, 37, 500);
        gpt2_pool_free(p);
    }
    gpt2_pool *p = NULL;
    CHECK_OK(gpt2_pool_create(0, &p, &err), &err);
    CHECK(p && gpt2_pool_threads(p) >= 1, "0 threads = one per core");
    run_and_check(p, 100, 100);
    gpt2_pool_free(p);
    run_and_check(NULL, 10, 2);
    CHECK(gpt2_pool_threads(NULL) == 1, "NULL pool: 1 thread");
    gpt2_pool_free(NULL);
    CHECK_FAILS(gpt2_pool_create(1, NULL, &err), GPT2_ERR_ARG, &err);
    return check_summary("test_pool");
}
