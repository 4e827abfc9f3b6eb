/* test_context.c - generation at and past the context window (generate.h policies):
 * GPT2_CONTEXT_STOP ends at context_full, GPT2_CONTEXT_SLIDE keeps the most recent tokens and
 * goes on (the continuation after a slide equals a fresh generation from the kept tokens),
 * truncate_prompt drops a long prompt's oldest tokens, and gpt2_session_slide's arguments.
 * Up to the boundary the tokens are the float64 reference's (tests/fixtures/tiny-f32). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_util.h"
#include "generate.h"
#include "json.h"
#include "loader.h"
#include "session.h"
#include "tokenizer.h"

/* The ids and greedy continuation of the reference case named name. */
static int reference_case(const json_value *root, const char *name, int32_t *ids, int *n_ids, int32_t *greedy,
                          int *n_greedy) {
    const json_value *cases = json_get(root, "cases");
    for (size_t i = 0; cases && i < cases->count; i++) {
        const json_value *c = &cases->items[i];
        const json_value *nm = json_get(c, "name");
        if (!nm || strcmp(nm->str, name)) continue;
        const json_value *a = json_get(c, "ids"), *b = json_get(c, "greedy");
        *n_ids = (int)a->count;
        for (size_t j = 0; j < a->count; j++) ids[j] = (int32_t)a->items[j].integer;
        *n_greedy = (int)b->count;
        for (size_t j = 0; j < b->count; j++) greedy[j] = (int32_t)b->items[j].integer;
        return 1;
    }
    return 0;
}

int main(void) {
    gpt2_error err;
    gpt2_weights *w = NULL;
    gpt2_tokenizer *tok = NULL;
    CHECK_OK(gpt2_load_dir("tests/fixtures/tiny-f32", NULL, &w, &err), &err);
    CHECK_OK(gpt2_tokenizer_load("tests/fixtures/tiny-f32", &tok, &err), &err);
    json_doc *doc = read_json("tests/fixtures/tiny-f32/expected.json");
    const json_value *root = doc ? json_root(doc) : NULL;
    CHECK(w && tok && root, "fixture and reference loaded");
    if (!w || !tok || !root) return check_summary("test_context");
    const int n_ctx = w->config.n_ctx;

    int32_t ids[256], greedy[64], out[512], fresh[64], kept[256];
    int n_ids = 0, n_greedy = 0;
    CHECK(reference_case(root, "ctx_minus_4", ids, &n_ids, greedy, &n_greedy), "case ctx_minus_4");
    CHECK(n_ids == n_ctx - 4 && n_greedy == 4, "ctx_minus_4 shape");

    gpt2_generate_params p;
    gpt2_generate_params_default(&p);
    p.sampler.temperature = 0;
    p.ignore_eot = 1;
    gpt2_generator *g = NULL;
    gpt2_stop_reason stop;

    /* STOP (the C default): exactly the reference, then context_full. */
    p.max_new_tokens = 50;
    CHECK_OK(gpt2_generator_create(w, tok, &p, ids, (size_t)n_ids, &g, &err), &err);
    int n = run_generator(g, out, 512, &stop);
    gpt2_generator_free(g);
    CHECK(n == 4 && stop == GPT2_STOP_CONTEXT_FULL, "stop policy: 4 tokens then context_full (got %d)", n);
    CHECK(!memcmp(out, greedy, 4 * sizeof(int32_t)), "stop policy: the reference tokens");

    /* SLIDE with several keep sizes. */
    const int keeps[] = {0, 1, 20, n_ctx - 1};
    for (size_t k = 0; k < sizeof keeps / sizeof keeps[0]; k++) {
        int keep = keeps[k] ? keeps[k] : n_ctx / 2;
        p.context_policy = GPT2_CONTEXT_SLIDE;
        p.slide_keep = keeps[k];
        p.max_new_tokens = 10;
        CHECK_OK(gpt2_generator_create(w, tok, &p, ids, (size_t)n_ids, &g, &err), &err);
        n = run_generator(g, out, 512, &stop);
        int slides = gpt2_generator_slides(g);
        gpt2_generator_free(g);
        CHECK(n == 10 && stop == GPT2_STOP_MAX_TOKENS, "slide keep %d: 10 tokens (got %d, stop %d)", keep, n, stop);
        CHECK(slides >= 1, "slide keep %d: slid (%d)", keep, slides);
        CHECK(!memcmp(out, greedy, 4 * sizeof(int32_t)), "slide keep %d: the reference up to the boundary", keep);
        if (slides == 1) {
            /* After the slide: a fresh STOP generation from the kept tokens gives the rest. */
            memcpy(kept, ids, (size_t)n_ids * sizeof(int32_t));
            memcpy(kept + n_ids, out, 4 * sizeof(int32_t));
            gpt2_generate_params q = p;
            q.context_policy = GPT2_CONTEXT_STOP;
            q.slide_keep = 0;
            q.max_new_tokens = 6;
            CHECK_OK(gpt2_generator_create(w, tok, &q, kept + n_ctx - keep, (size_t)keep, &g, &err), &err);
            int nf = run_generator(g, fresh, 64, NULL);
            gpt2_generator_free(g);
            CHECK(nf == 6 && !memcmp(out + 4, fresh, 6 * sizeof(int32_t)),
                  "slide keep %d: continuation == fresh generation from the kept tokens", keep);
        }
    }

    /* Many slides from the empty prompt. */
    p.slide_keep = 0;
    p.max_new_tokens = 4 * n_ctx;
    CHECK_OK(gpt2_generator_create(w, tok, &p, NULL, 0, &g, &err), &err);
    n = run_generator(g, out, 512, &stop);
    CHECK(gpt2_generator_count(g) == 4 * n_ctx && stop == GPT2_STOP_MAX_TOKENS, "long generation finishes");
    CHECK(gpt2_generator_slides(g) >= 6, "long generation slides repeatedly (%d)", gpt2_generator_slides(g));
    gpt2_generator_free(g);

    /* Truncation: 10 extra tokens in front of ctx_minus_4, 4 new tokens -> 60 kept. */
    int32_t longp[256];
    for (int i = 0; i < 10; i++) longp[i] = ids[0];
    memcpy(longp + 10, ids, (size_t)n_ids * sizeof(int32_t));
    p.context_policy = GPT2_CONTEXT_STOP;
    p.max_new_tokens = 4;
    CHECK_FAILS(gpt2_generator_create(w, tok, &p, longp, (size_t)n_ids + 10, &g, &err), GPT2_ERR_RANGE, &err);
    p.truncate_prompt = 1;
    CHECK_OK(gpt2_generator_create(w, tok, &p, longp, (size_t)n_ids + 10, &g, &err), &err);
    CHECK(gpt2_generator_truncated(g) == 10, "10 tokens dropped (%d)", gpt2_generator_truncated(g));
    n = run_generator(g, out, 512, &stop);
    gpt2_generator_free(g);
    CHECK(n == 4 && !memcmp(out, greedy, 4 * sizeof(int32_t)), "truncated prompt continues as the reference");
    /* A huge maxTokens still keeps half the context. */
    p.max_new_tokens = 1000;
    CHECK_OK(gpt2_generator_create(w, tok, &p, longp, (size_t)n_ids + 10, &g, &err), &err);
    CHECK(gpt2_generator_prompt_tokens(g) == n_ctx / 2, "keeps n_ctx/2 (%d)", gpt2_generator_prompt_tokens(g));
    gpt2_generator_free(g);

    /* Bad parameters and gpt2_session_slide's arguments. */
    p.truncate_prompt = 0;
    p.max_new_tokens = 4;
    p.slide_keep = n_ctx;
    CHECK_FAILS(gpt2_generator_create(w, tok, &p, ids, 4, &g, &err), GPT2_ERR_ARG, &err);
    p.slide_keep = -1;
    CHECK_FAILS(gpt2_generator_create(w, tok, &p, ids, 4, &g, &err), GPT2_ERR_ARG, &err);
    p.slide_keep = 0;
    p.context_policy = (gpt2_context_policy)7;
    CHECK_FAILS(gpt2_generator_create(w, tok, &p, ids, 4, &g, &err), GPT2_ERR_ARG, &err);
    gpt2_session *s = NULL;
    CHECK_OK(gpt2_session_create(w, 8, &s, &err), &err);
    CHECK_OK(gpt2_session_append(s, ids, 10, NULL, &err), &err);
    CHECK_FAILS(gpt2_session_slide(s, 0, &err), GPT2_ERR_RANGE, &err);
    CHECK_FAILS(gpt2_session_slide(s, 11, &err), GPT2_ERR_RANGE, &err);
    CHECK_FAILS(gpt2_session_slide(NULL, 1, &err), GPT2_ERR_ARG, &err);
    CHECK_OK(gpt2_session_slide(s, 3, &err), &err);
    CHECK(gpt2_session_pos(s) == 3 && !memcmp(gpt2_session_tokens(s), ids + 7, 3 * sizeof(int32_t)),
          "slide keeps the last tokens");
    CHECK_OK(gpt2_session_sync(s, &err), &err);
    CHECK(gpt2_session_synced(s), "recomputed after a slide");
    gpt2_session_free(s);

    json_free(doc);
    gpt2_tokenizer_free(tok);
    gpt2_weights_free(w);
    return check_summary("test_context");
}
