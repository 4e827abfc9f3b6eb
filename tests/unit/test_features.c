/* test_features.c - the writing-tool features of the C core against the float64 reference
 * (tests/fixtures/NAME/expected_score.json, written by tools/gpt2_reference.py features):
 * scoring with top-k alternatives, sessions (append, fork, rewind, generation that
 * continues a session, computed-token counts), logit bias and banned words. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_util.h"
#include "generate.h"
#include "json.h"
#include "loader.h"
#include "score.h"
#include "session.h"
#include "tokenizer.h"

#define TOL 1e-4

static int32_t *ids_of(const json_value *arr, size_t *n) {
    *n = arr && arr->type == JSON_ARRAY ? arr->count : 0;
    int32_t *ids = malloc((*n ? *n : 1) * sizeof(int32_t));
    for (size_t i = 0; ids && i < *n; i++) ids[i] = (int32_t)arr->items[i].integer;
    return ids;
}

/* Scoring with alternatives: logprobs within TOL, ranks and top-k ids identical (a swap is
 * allowed only between reference logprobs closer than 1e-5). */
static void check_score(const char *fx, const gpt2_weights *w, const json_value *cases, int k) {
    gpt2_error err;
    for (size_t ci = 0; ci < cases->count; ci++) {
        const json_value *c = &cases->items[ci];
        const char *name = json_get(c, "name")->str;
        size_t n;
        int32_t *ids = ids_of(json_get(c, "ids"), &n);
        const json_value *pos = json_get(c, "positions");
        CHECK(pos && pos->count == n - 1, "%s/%s: positions", fx, name);
        float *lp = malloc(n * sizeof(float));
        int32_t *rk = malloc(n * sizeof(int32_t));
        int32_t *ti = malloc((n * (size_t)k + 1) * sizeof(int32_t));
        float *tl = malloc((n * (size_t)k + 1) * sizeof(float));
        CHECK_OK(gpt2_score_topk(w, ids, n, k, lp, rk, ti, tl, &err), &err);
        for (size_t t = 0; t + 1 < n; t++) {
            const json_value *p = &pos->items[t];
            CHECK(fabs(lp[t] - json_get(p, "logprob")->number) <= TOL, "%s/%s[%zu]: logprob", fx, name, t);
            CHECK(rk[t] == (int32_t)json_get(p, "rank")->integer, "%s/%s[%zu]: rank %d", fx, name, t, (int)rk[t]);
            const json_value *rid = json_get(p, "top_ids"), *rlp = json_get(p, "top_logprobs");
            for (int j = 0; j < k; j++) {
                int32_t got = ti[t * (size_t)k + j], want = (int32_t)rid->items[j].integer;
                int tie = 0;
                for (int q = 0; q < k && got != want && !tie; q++)
                    tie = rid->items[q].integer == got &&
                          fabs(rlp->items[q].number - rlp->items[j].number) < 1e-5;
                CHECK(got == want || tie, "%s/%s[%zu]: top %d is %d, want %d", fx, name, t, j, (int)got, (int)want);
                CHECK(fabs(tl[t * (size_t)k + j] - rlp->items[j].number) <= TOL, "%s/%s[%zu]: top logprob %d", fx,
                      name, t, j);
            }
        }
        /* A session appending the same ids in two parts gives the same log-probabilities. */
        gpt2_session *s = NULL;
        CHECK_OK(gpt2_session_create(w, 16, &s, &err), &err);
        float *slp = malloc(n * sizeof(float));
        size_t half = n / 2;
        CHECK_OK(gpt2_session_append(s, ids, half, slp, &err), &err);
        CHECK_OK(gpt2_session_append(s, ids + half, n - half, slp + half, &err), &err);
        CHECK(isnan(slp[0]), "%s/%s: first token has no log-probability", fx, name);
        for (size_t t = 1; t < n; t++)
            CHECK(fabs(slp[t] - json_get(&pos->items[t - 1], "logprob")->number) <= TOL,
                  "%s/%s[%zu]: session logprob", fx, name, t);
        CHECK(gpt2_session_computed(s) == (double)n, "%s/%s: computed %g of %zu", fx, name,
              gpt2_session_computed(s), n);
        gpt2_session_free(s);
        free(slp);
        free(ids);
        free(lp);
        free(rk);
        free(ti);
        free(tl);
    }
}

/* Ranking: the scored tokens' log-probabilities after the context, through a session that
 * is rewound between choices. */
static void check_rank(const char *fx, const gpt2_weights *w, const json_value *cases) {
    gpt2_error err;
    gpt2_session *s = NULL;
    CHECK_OK(gpt2_session_create(w, 64, &s, &err), &err);
    for (size_t ci = 0; ci < cases->count; ci++) {
        const json_value *choices = json_get(&cases->items[ci], "choices");
        for (size_t j = 0; j < choices->count; j++) {
            const json_value *ch = &choices->items[j];
            size_t nc, ns;
            int32_t *ctx = ids_of(json_get(ch, "context"), &nc);
            int32_t *sc = ids_of(json_get(ch, "scored"), &ns);
            CHECK_OK(gpt2_session_rewind(s, 0, &err), &err);
            CHECK_OK(gpt2_session_append(s, ctx, nc, NULL, &err), &err);
            float lp[64];
            CHECK_OK(gpt2_session_append(s, sc, ns, lp, &err), &err);
            double total = 0;
            for (size_t t = 0; t < ns; t++) total += lp[t];
            CHECK(fabs(total - json_get(ch, "logprob")->number) <= TOL * (double)ns, "%s: rank %s total %g", fx,
                  json_get(ch, "choice")->str, total);
            free(ctx);
            free(sc);
        }
    }
    gpt2_session_free(s);
}

/* Greedy generation with a logit bias or banned words equals the reference's. */
static void check_bans(const char *fx, const gpt2_weights *w, const gpt2_tokenizer *tok, const json_value *cases) {
    gpt2_error err;
    for (size_t ci = 0; ci < cases->count; ci++) {
        const json_value *c = &cases->items[ci];
        const char *name = json_get(c, "name")->str;
        size_t n, ng;
        int32_t *ids = ids_of(json_get(c, "ids"), &n);
        int32_t *want = ids_of(json_get(c, "greedy"), &ng);
        gpt2_generate_params p;
        gpt2_generate_params_default(&p);
        p.sampler.temperature = 0;
        p.ignore_eot = 1;
        p.max_new_tokens = (int)ng;
        int32_t bias_id[4];
        float bias_v[4];
        const char *words[4];
        const json_value *lb = json_get(c, "logit_bias"), *bw = json_get(c, "banned_words");
        for (size_t i = 0; lb && i < lb->count; i++) {
            bias_id[i] = (int32_t)atoi(lb->members[i].key);
            const json_value *v = &lb->members[i].value;
            bias_v[i] = v->type == JSON_STRING ? -INFINITY : (float)v->number;
            p.sampler.n_bias++;
        }
        p.sampler.bias_ids = bias_id;
        p.sampler.bias = bias_v;
        for (size_t i = 0; bw && i < bw->count; i++) words[p.n_banned++] = bw->items[i].str;
        p.banned_words = words;
        gpt2_generator *g = NULL;
        CHECK_OK(gpt2_generator_create(w, tok, &p, ids, n, &g, &err), &err);
        int32_t got[64];
        int m = g ? run_generator(g, got, 64, NULL) : 0;
        CHECK(m == (int)ng && memcmp(got, want, ng * sizeof(int32_t)) == 0, "%s/%s: greedy with controls", fx, name);
        gpt2_generator_free(g);
        free(ids);
        free(want);
    }
}

static void check_fixture(const char *fx) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", fx);
    snprintf(path, sizeof path, "%s/expected_score.json", dir);
    gpt2_error err;
    json_doc *doc = read_json(path);
    if (!doc) return;
    gpt2_weights *w = NULL;
    gpt2_tokenizer *tok = NULL;
    CHECK_OK(gpt2_load_dir(dir, NULL, &w, &err), &err);
    CHECK_OK(gpt2_tokenizer_load(dir, &tok, &err), &err);
    if (doc && w && tok) {
        const json_value *root = json_root(doc);
        check_score(fx, w, json_get(root, "score"), (int)json_get(root, "top_k")->integer);
        check_rank(fx, w, json_get(root, "rank"));
        check_bans(fx, w, tok, json_get(root, "bans"));
    }
    json_free(doc);
    gpt2_weights_free(w);
    gpt2_tokenizer_free(tok);
}

/* Sessions on tiny-f32: computed-token counts, fork, rewind, generation that continues. */
static void check_sessions(void) {
    gpt2_error err;
    gpt2_weights *w;
    gpt2_tokenizer *tok;
    if (!load_fixture("tests/fixtures/tiny-f32", &w, &tok)) return;
    const char *text = "The quick brown fox jumps over the lazy dog.";
    int32_t ids[64];
    size_t n = 0;
    CHECK_OK(gpt2_tokenizer_encode(tok, text, strlen(text), 0, ids, 64, &n, &err), &err);

    gpt2_generate_params p;
    gpt2_generate_params_default(&p);
    p.sampler.temperature = 0;
    p.ignore_eot = 1;
    p.max_new_tokens = 10;

    /* Reference: one plain generator over the prompt, 20 tokens. */
    int32_t plain[32];
    gpt2_generator *g = NULL;
    p.max_new_tokens = 20;
    CHECK_OK(gpt2_generator_create(w, tok, &p, ids, n, &g, &err), &err);
    int np = run_generator(g, plain, 32, NULL);
    gpt2_generator_free(g);
    CHECK(np == 20, "plain generation");

    /* Session: the prompt, then two generations of 10; only new tokens are computed. */
    gpt2_session *s = NULL;
    CHECK_OK(gpt2_session_create(w, 64, &s, &err), &err);
    CHECK_OK(gpt2_session_append(s, ids, n, NULL, &err), &err);
    CHECK(gpt2_session_computed(s) == (double)n, "append computes the prompt once");
    /* gpt2_top_logprobs on the session's logits agrees with gpt2_logprob_of and the ranks. */
    {
        const float *lg = gpt2_session_logits(s);
        int32_t top[3];
        float tlp[3];
        gpt2_top_logprobs(lg, w->config.n_vocab, 3, top, tlp);
        for (int j = 0; j < 3; j++) {
            int32_t rank;
            double want = gpt2_logprob_of(lg, w->config.n_vocab, top[j], &rank);
            CHECK(fabs(tlp[j] - want) < 1e-6 && rank == j, "top %d: %g vs %g, rank %d", j, tlp[j], want, (int)rank);
        }
    }
    p.max_new_tokens = 10;
    int32_t got[32];
    CHECK_OK(gpt2_generator_create_in_session(s, tok, &p, &g, &err), &err);
    CHECK(gpt2_generator_prompt_tokens(g) == (int)n, "prompt tokens = session length");
    int a = run_generator(g, got, 32, NULL);
    gpt2_generator_free(g);
    CHECK(gpt2_session_computed(s) == (double)(n + 9), "first generation: 9 new tokens run (last pending): %g",
          gpt2_session_computed(s));
    CHECK(gpt2_session_pos(s) == (int)n + 10, "session holds the generated tokens");
    CHECK_OK(gpt2_generator_create_in_session(s, tok, &p, &g, &err), &err);
    int b = run_generator(g, got + a, 32 - a, NULL);
    gpt2_generator_free(g);
    CHECK(a == 10 && b == 10 && memcmp(got, plain, 20 * sizeof(int32_t)) == 0,
          "two session generations == one generation of 20");
    CHECK(gpt2_session_computed(s) == (double)(n + 19), "second generation: 10 more tokens run (%g)",
          gpt2_session_computed(s));

    /* Fork: same continuation, nothing recomputed; the original is unaffected. */
    gpt2_session *f = NULL;
    CHECK_OK(gpt2_session_clone(s, &f, &err), &err);
    CHECK(gpt2_session_computed(f) == 0 && gpt2_session_pos(f) == gpt2_session_pos(s), "fork copies, runs nothing");
    int32_t c1[16], c2[16];
    p.max_new_tokens = 5;
    CHECK_OK(gpt2_generator_create_in_session(f, tok, &p, &g, &err), &err);
    run_generator(g, c1, 16, NULL);
    gpt2_generator_free(g);
    CHECK(gpt2_session_computed(f) == 5, "fork: the pending token + 4 new ones (%g)", gpt2_session_computed(f));
    CHECK_OK(gpt2_generator_create_in_session(s, tok, &p, &g, &err), &err);
    run_generator(g, c2, 16, NULL);
    gpt2_generator_free(g);
    CHECK(memcmp(c1, c2, sizeof c1[0] * 5) == 0, "fork and original continue alike");

    /* Rewind to the prompt: generation repeats the plain continuation, one token recomputed. */
    double before = gpt2_session_computed(s);
    CHECK_OK(gpt2_session_rewind(s, (int)n, &err), &err);
    CHECK(gpt2_session_pos(s) == (int)n, "rewind");
    CHECK_OK(gpt2_generator_create_in_session(s, tok, &p, &g, &err), &err);
    run_generator(g, got, 32, NULL);
    gpt2_generator_free(g);
    CHECK(memcmp(got, plain, 5 * sizeof(int32_t)) == 0, "after rewind: the same continuation");
    CHECK(gpt2_session_computed(s) - before == 5, "after rewind: 1 recomputed + 4 new (%g)",
          gpt2_session_computed(s) - before);

    /* Errors leave the session unchanged. */
    int32_t bad = 99999;
    CHECK_FAILS(gpt2_session_append(s, &bad, 1, NULL, &err), GPT2_ERR_RANGE, &err);
    CHECK_FAILS(gpt2_session_rewind(s, 1000, &err), GPT2_ERR_RANGE, &err);
    int32_t many[80] = {0};
    CHECK_FAILS(gpt2_session_append(s, many, 80, NULL, &err), GPT2_ERR_RANGE, &err);
    CHECK(gpt2_session_pos(s) == (int)n + 5, "unchanged after errors");

    /* An empty session generates from <|endoftext|>, like an empty prompt. */
    gpt2_session *e = NULL;
    CHECK_OK(gpt2_session_create(w, 8, &e, &err), &err);
    CHECK_OK(gpt2_generator_create_in_session(e, tok, &p, &g, &err), &err);
    run_generator(g, c1, 16, NULL);
    gpt2_generator_free(g);
    CHECK_OK(gpt2_generator_create(w, tok, &p, NULL, 0, &g, &err), &err);
    run_generator(g, c2, 16, NULL);
    gpt2_generator_free(g);
    CHECK(memcmp(c1, c2, 5 * sizeof(int32_t)) == 0 && gpt2_session_tokens(e)[0] == gpt2_tokenizer_eot_id(tok),
          "empty session == empty prompt");

    gpt2_session_free(e);
    gpt2_session_free(f);
    gpt2_session_free(s);
    gpt2_weights_free(w);
    gpt2_tokenizer_free(tok);
}

/* Banned words under sampling, with the banned spellings pushed up by a logit bias: the
 * word never appears at a word start in the generated bytes. */
static void check_banned_sampling(void) {
    gpt2_error err;
    gpt2_weights *w;
    gpt2_tokenizer *tok;
    if (!load_fixture("tests/fixtures/tiny-f32", &w, &tok)) return;
    const char *words[] = {"the", "an"};
    /* Favour every token whose bytes start with a piece of a banned word. */
    int32_t bias_id[1300];
    float bias_v[1300];
    int nb = 0;
    for (int32_t id = 0; id < (int32_t)gpt2_tokenizer_vocab_size(tok) && nb < 1300; id++) {
        const uint8_t *b;
        size_t l;
        gpt2_tokenizer_token_bytes(tok, id, &b, &l, NULL);
        const char *s = (const char *)b;
        if ((l >= 1 && (s[0] == 't' || s[0] == 'h' || s[0] == 'a' || s[0] == 'n')) || (l >= 2 && s[0] == ' ' && (s[1] == 't' || s[1] == 'a'))) {
            bias_id[nb] = id;
            bias_v[nb++] = 4.0f;
        }
    }
    /* 8 generations of 56 tokens (the fixture's context is 64) per round. */
    for (int round = 0; round < 2; round++) {
        int hits = 0, total = 0;
        for (int seed = 1; seed <= 8; seed++) {
            gpt2_generate_params p;
            gpt2_generate_params_default(&p);
            p.sampler.seed = (uint64_t)seed;
            p.sampler.bias_ids = bias_id;
            p.sampler.bias = bias_v;
            p.sampler.n_bias = nb;
            p.ignore_eot = 1;
            p.max_new_tokens = 56;
            p.banned_words = words;
            p.n_banned = round ? 2 : 0; /* round 0: the control, where the words do appear */
            const char *prompt = "Once upon a time";
            int32_t ids[16];
            size_t n = 0;
            gpt2_tokenizer_encode(tok, prompt, strlen(prompt), 0, ids, 16, &n, &err);
            gpt2_generator *g = NULL;
            CHECK_OK(gpt2_generator_create(w, tok, &p, ids, n, &g, &err), &err);
            int32_t out[64];
            int m = g ? run_generator(g, out, 64, NULL) : 0;
            gpt2_generator_free(g);
            total += m;
            /* The whole text's bytes: prompt + generated. */
            char text[64 * 16 + 64];
            size_t tl = 0, gen_from = 0;
            for (size_t i = 0; i < n + (size_t)m; i++) {
                const uint8_t *b;
                size_t l;
                gpt2_tokenizer_token_bytes(tok, i < n ? ids[i] : out[i - n], &b, &l, NULL);
                memcpy(text + tl, b, l);
                tl += l;
                if (i + 1 == n) gen_from = tl;
            }
            for (int k = 0; k < 2; k++) {
                size_t wl = strlen(words[k]);
                for (size_t at = 0; at + wl <= tl; at++) {
                    if (at + wl <= gen_from || memcmp(text + at, words[k], wl) != 0) continue;
                    unsigned char prev = at ? (unsigned char)text[at - 1] : ' ';
                    int word = (prev >= 'a' && prev <= 'z') || (prev >= 'A' && prev <= 'Z') ||
                               (prev >= '0' && prev <= '9') || prev >= 0x80;
                    if (!word) hits++;
                }
            }
        }
        CHECK(total == 8 * 56, "%d tokens sampled", total);
        if (round == 0) CHECK(hits >= 5, "control: the words appear without the ban (%d times)", hits);
        else CHECK(hits == 0, "banned words appear %d times", hits);
    }
    gpt2_weights_free(w);
    gpt2_tokenizer_free(tok);
}

int main(void) {
    check_fixture("tiny-f32");
    check_fixture("tiny-f16");
    check_fixture("tiny-bf16");
    check_sessions();
    check_banned_sampling();
    return check_summary("test_features");
}
