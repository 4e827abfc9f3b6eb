/* test_speculative.c - greedy speculative decoding (speculative.h, gpt2_generator_set_draft;
 * sampling: test_spec_sampling.c):
 * the tokens equal the float64 reference's greedy tokens (tests/fixtures/tiny-f32
 * expected.json) and the plain greedy generator's, for k = 1..8, with a q8_0 self-draft,
 * an f16 copy and a different model (tiny-bf16: 3 layers, n_ctx 40) as drafts, on the
 * fixture and on the embedded model; past the context with GPT2_CONTEXT_SLIDE too; the
 * counts are consistent; greedy with repetition penalty, logit bias and banned words gives
 * the plain generator's tokens; bad input is refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_util.h"
#include "generate.h"
#include "json.h"
#include "loader.h"
#include "session.h"
#include "speculative.h"
#include "tokenizer.h"

static gpt2_weights *load_as(const char *dir, gpt2_precision prec) {
    gpt2_error err;
    gpt2_loader_options opt = {0, NULL, prec, NULL};
    gpt2_weights *w = NULL;
    CHECK_OK(gpt2_load_dir(dir, &opt, &w, &err), &err);
    return w;
}

/* Greedy generation after prompt, with a draft of k tokens (draft NULL: none). Returns the
 * number of ids; proposed/accepted (may be NULL) receive the generator's counts. */
static int slide_policy; /* test setting: generate with GPT2_CONTEXT_SLIDE */

static int greedy(const gpt2_weights *w, const gpt2_tokenizer *tok, const gpt2_weights *draft, int k,
                  const int32_t *prompt, int n_prompt, int max_new, int ignore_eot, int32_t *out, int cap,
                  gpt2_stop_reason *stop, int *proposed, int *accepted) {
    gpt2_error err;
    gpt2_generate_params p;
    gpt2_generate_params_default(&p);
    p.context_policy = slide_policy ? GPT2_CONTEXT_SLIDE : GPT2_CONTEXT_STOP;
    p.sampler.temperature = 0;
    p.max_new_tokens = max_new;
    p.ignore_eot = ignore_eot;
    gpt2_generator *g = NULL;
    gpt2_session *ds = NULL;
    CHECK_OK(gpt2_generator_create(w, tok, &p, prompt, (size_t)n_prompt, &g, &err), &err);
    if (!g) return 0;
    if (draft) {
        CHECK_OK(gpt2_session_create(draft, 16, &ds, &err), &err);
        CHECK_OK(gpt2_generator_set_draft(g, ds, k, &err), &err);
    }
    int n = run_generator(g, out, cap, stop);
    if (proposed) *proposed = gpt2_generator_draft_proposed(g);
    if (accepted) *accepted = gpt2_generator_draft_accepted(g);
    gpt2_generator_free(g);
    gpt2_session_free(ds);
    return n;
}

static int same_ids(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(int32_t)) == 0);
}

/* Every reference case of tiny-f32 with a greedy continuation, for each draft and k. */
static void reference_cases(const gpt2_weights *w, const gpt2_tokenizer *tok, const gpt2_weights *const *drafts,
                            const char *const *names, int n_drafts) {
    json_doc *doc = read_json("tests/fixtures/tiny-f32/expected.json");
    const json_value *cases = doc ? json_get(json_root(doc), "cases") : NULL;
    CHECK(cases && cases->count >= 5, "reference cases");
    int checked = 0;
    for (size_t i = 0; cases && i < cases->count; i++) {
        const json_value *c = &cases->items[i];
        const json_value *a = json_get(c, "ids"), *b = json_get(c, "greedy");
        if (!a || !b || b->count == 0) continue;
        int32_t ids[64], ref[32], out[64];
        int n_ids = (int)a->count, n_ref = (int)b->count;
        for (int j = 0; j < n_ids; j++) ids[j] = (int32_t)a->items[j].integer;
        for (int j = 0; j < n_ref; j++) ref[j] = (int32_t)b->items[j].integer;
        /* The reference stops at 16 tokens or a full context, and never at <|endoftext|>. */
        gpt2_stop_reason want = n_ids + n_ref >= w->config.n_ctx ? GPT2_STOP_CONTEXT_FULL : GPT2_STOP_MAX_TOKENS;
        for (int d = 0; d < n_drafts; d++)
            for (int k = 1; k <= 8; k++) {
                gpt2_stop_reason stop = GPT2_STOP_NONE;
                int proposed = -1, accepted = -1;
                int n = greedy(w, tok, drafts[d], k, ids, n_ids, 16, 1, out, 64, &stop, &proposed, &accepted);
                CHECK(same_ids(out, n, ref, n_ref) && stop == want, "case %s, draft %s, k %d: %d tokens, stop %s",
                      json_get(c, "name")->str, names[d], k, n, gpt2_stop_reason_name(stop));
                CHECK(accepted >= 0 && accepted <= proposed && accepted <= n, "draft %s k %d: accepted %d of %d",
                      names[d], k, accepted, proposed);
                checked++;
            }
    }
    CHECK(checked == 5 * 8 * n_drafts, "%d reference runs", checked);
    json_free(doc);
}

/* The speculative API directly: rounds, counts, a stop token inside a round, the sessions. */
static void direct_api(const gpt2_weights *w, const gpt2_weights *draft, const int32_t *prompt, int n_prompt,
                       const int32_t *plain, int n_plain, const char *name) {
    gpt2_error err;
    for (int k = 1; k <= 8; k++) {
        gpt2_session *big = NULL, *ds = NULL;
        gpt2_speculative *sp = NULL;
        CHECK_OK(gpt2_session_create(w, 16, &big, &err), &err);
        CHECK_OK(gpt2_session_create(draft, 16, &ds, &err), &err);
        if (!big || !ds) break;
        CHECK_OK(gpt2_session_append(big, prompt, (size_t)n_prompt, NULL, &err), &err);
        CHECK_OK(gpt2_speculative_create(big, ds, k, &sp, &err), &err);
        int32_t out[64];
        int n = 0, bad = 0;
        while (sp && n < n_plain) {
            int got = 0;
            if (gpt2_speculative_step(sp, n_plain - n, -1, out + n, &got, &err) != GPT2_OK || got < 1 ||
                got > k + 1) {
                bad = 1;
                break;
            }
            n += got;
        }
        gpt2_speculative_stats st = gpt2_speculative_get_stats(sp);
        CHECK(!bad && same_ids(out, n, plain, n_plain), "%s k %d: speculative steps == plain greedy (%d tokens)", name,
              k, n);
        CHECK(st.accepted <= st.proposed && st.proposed <= k * st.rounds && n == st.accepted + st.rounds,
              "%s k %d: tokens %d = accepted %.0f + rounds %.0f, proposed %.0f", name, k, n, st.accepted, st.rounds,
              st.proposed);
        /* Both sessions end with the prompt and every token, as a plain generation leaves them. */
        CHECK(gpt2_session_pos(big) == n_prompt + n && !memcmp(gpt2_session_tokens(big) + n_prompt, plain,
                                                                (size_t)n * sizeof(int32_t)),
              "%s k %d: big session holds the tokens", name, k);
        gpt2_speculative_free(sp);
        sp = NULL;

        /* A stop token: the 6th plain token ends the text at its first occurrence. */
        int32_t stop_id = plain[5];
        int first = 0;
        while (plain[first] != stop_id) first++;
        CHECK_OK(gpt2_session_rewind(big, n_prompt, &err), &err);
        CHECK_OK(gpt2_speculative_create(big, ds, k, &sp, &err), &err);
        n = 0;
        while (sp && n < n_plain) {
            int got = 0;
            if (gpt2_speculative_step(sp, n_plain - n, stop_id, out + n, &got, &err) != GPT2_OK) break;
            n += got;
            if (out[n - 1] == stop_id) break;
        }
        st = gpt2_speculative_get_stats(sp);
        CHECK(n == first + 1 && same_ids(out, n, plain, n) && n == st.accepted + st.rounds,
              "%s k %d: ends at the stop token (%d of %d tokens)", name, k, n, first + 1);
        CHECK(gpt2_session_pos(big) == n_prompt + n && gpt2_session_pos(ds) == n_prompt + n,
              "%s k %d: sessions hold prompt + %d tokens (%d, %d)", name, k, n, gpt2_session_pos(big),
              gpt2_session_pos(ds));
        /* The session goes on exactly as a plain one: its next logits are the plain next token's. */
        CHECK_OK(gpt2_session_sync(big, &err), &err);
        CHECK(gpt2_argmax(gpt2_session_logits(big), w->config.n_vocab) == plain[n], "%s k %d: session continues",
              name, k);
        gpt2_speculative_free(sp);
        gpt2_session_free(big);
        gpt2_session_free(ds);
    }
}

static void bad_input(const gpt2_weights *w, const gpt2_tokenizer *tok, const gpt2_weights *other_vocab,
                      const gpt2_weights *draft) {
    gpt2_error err;
    gpt2_session *big = NULL, *ds = NULL, *dv = NULL;
    gpt2_speculative *sp = NULL;
    CHECK_OK(gpt2_session_create(w, 8, &big, &err), &err);
    CHECK_OK(gpt2_session_create(draft, 8, &ds, &err), &err);
    CHECK_OK(gpt2_session_create(other_vocab, 8, &dv, &err), &err);
    CHECK_FAILS(gpt2_speculative_create(big, ds, 0, &sp, &err), GPT2_ERR_ARG, &err);
    CHECK(sp == NULL && strstr(err.message, "from 1 to 16"), "k 0: %s", err.message);
    CHECK_FAILS(gpt2_speculative_create(big, ds, 17, &sp, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_speculative_create(big, dv, 4, &sp, &err), GPT2_ERR_SHAPE, &err);
    CHECK(strstr(err.message, "vocabulary") != NULL, "vocab mismatch: %s", err.message);
    CHECK_FAILS(gpt2_speculative_create(big, big, 4, &sp, &err), GPT2_ERR_ARG, &err);
    CHECK_FAILS(gpt2_speculative_create(NULL, ds, 4, &sp, &err), GPT2_ERR_ARG, &err);
    CHECK_OK(gpt2_speculative_create(big, ds, 4, &sp, &err), &err);
    int32_t out[8];
    int n = -1;
    CHECK_FAILS(gpt2_speculative_step(sp, 4, -1, out, &n, &err), GPT2_ERR_ARG, &err); /* empty session */
    CHECK(n == 0 && strstr(err.message, "empty"), "empty session: %s", err.message);
    CHECK_FAILS(gpt2_speculative_step(sp, 0, -1, out, &n, &err), GPT2_ERR_ARG, &err);
    gpt2_speculative_free(sp);

    /* Through the generator: another vocabulary, bad k, a late draft. */
    gpt2_generate_params p;
    gpt2_generate_params_default(&p);
    int32_t prompt[2] = {10, 20};
    gpt2_generator *g = NULL;
    CHECK_OK(gpt2_generator_create(w, tok, &p, prompt, 2, &g, &err), &err);
    CHECK_FAILS(gpt2_generator_set_draft(g, dv, 4, &err), GPT2_ERR_SHAPE, &err);
    CHECK_FAILS(gpt2_generator_set_draft(g, ds, 20, &err), GPT2_ERR_ARG, &err);
    gpt2_piece piece;
    CHECK_OK(gpt2_generator_next(g, &piece, &err), &err);
    CHECK_FAILS(gpt2_generator_set_draft(g, ds, 4, &err), GPT2_ERR_ARG, &err);
    gpt2_generator_free(g);
    gpt2_session_free(big);
    gpt2_session_free(ds);
    gpt2_session_free(dv);
}

/* Greedy with repetition penalty, logit bias and banned words: the same tokens with a draft
 * as without (the draft's proposals are checked against the transformed argmax). */
static void greedy_transforms(const gpt2_weights *w, const gpt2_tokenizer *tok, const gpt2_weights *const *drafts,
                              int n_drafts) {
    gpt2_error err;
    int32_t bias_ids[2] = {13, 262};
    float bias[2] = {1.5f, -INFINITY};
    const char *banned[2] = {"the", "an"};
    int32_t prompt[3] = {464, 627, 624};
    int runs = 0;
    for (int variant = 0; variant < 3; variant++) {
        gpt2_generate_params p;
        gpt2_generate_params_default(&p);
        p.sampler.temperature = 0;
        p.max_new_tokens = 30;
        p.ignore_eot = 1;
        if (variant == 0) p.sampler.repetition_penalty = 1.6f;
        if (variant == 1) p.sampler.bias_ids = bias_ids, p.sampler.bias = bias, p.sampler.n_bias = 2;
        if (variant == 2) p.banned_words = banned, p.n_banned = 2, p.sampler.repetition_penalty = 0.8f;
        int32_t plain[32], out[32];
        gpt2_stop_reason s0 = GPT2_STOP_NONE, s1 = GPT2_STOP_NONE;
        gpt2_generator *g = NULL;
        CHECK_OK(gpt2_generator_create(w, tok, &p, prompt, 3, &g, &err), &err);
        int n0 = g ? run_generator(g, plain, 32, &s0) : 0;
        gpt2_generator_free(g);
        CHECK(n0 == 30, "variant %d: plain %d tokens", variant, n0);
        for (int d = 0; d < n_drafts; d++)
            for (int k = 1; k <= 6; k += 5) {
                gpt2_session *ds = NULL;
                g = NULL;
                CHECK_OK(gpt2_generator_create(w, tok, &p, prompt, 3, &g, &err), &err);
                CHECK_OK(gpt2_session_create(drafts[d], 8, &ds, &err), &err);
                CHECK_OK(gpt2_generator_set_draft(g, ds, k, &err), &err);
                int n1 = g ? run_generator(g, out, 32, &s1) : 0;
                CHECK(same_ids(out, n1, plain, n0) && s1 == s0, "variant %d, draft %d, k %d: %d tokens", variant, d,
                      k, n1);
                gpt2_generator_free(g);
                gpt2_session_free(ds);
                runs++;
            }
    }
    CHECK(runs == 3 * 2 * n_drafts, "%d runs", runs);
}

/* The embedded model: plain greedy vs q8_0 self-draft, stopping at <|endoftext|> or 48 tokens,
 * in a session (which then holds the same tokens as after a plain generation). */
static void embedded(void) {
    gpt2_error err;
    gpt2_weights *w = load_as("models", GPT2_PRECISION_F32), *q = load_as("models", GPT2_PRECISION_Q8_0);
    gpt2_tokenizer *tok = NULL;
    CHECK_OK(gpt2_tokenizer_load("models", &tok, &err), &err);
    if (!w || !q || !tok) goto done;
    const char *prompts[] = {"It is a truth universally acknowledged", "Mr. Darcy", ""};
    for (int pi = 0; pi < 3; pi++) {
        int32_t ids[64], plain[64], out[64];
        size_t n_ids = 0;
        CHECK_OK(gpt2_tokenizer_encode(tok, prompts[pi], strlen(prompts[pi]), 0, ids, 64, &n_ids, &err), &err);
        gpt2_stop_reason s0 = GPT2_STOP_NONE, s1 = GPT2_STOP_NONE;
        int n0 = greedy(w, tok, NULL, 0, ids, (int)n_ids, 48, 0, plain, 64, &s0, NULL, NULL);
        CHECK(n0 > 8, "plain greedy: %d tokens", n0);
        int total_p = 0, total_a = 0;
        for (int k = 1; k <= 8; k++) {
            int proposed = 0, accepted = 0;
            int n1 = greedy(w, tok, q, k, ids, (int)n_ids, 48, 0, out, 64, &s1, &proposed, &accepted);
            CHECK(same_ids(out, n1, plain, n0) && s1 == s0, "embedded \"%s\" k %d: %d tokens (%s) vs plain %d (%s)",
                  prompts[pi], k, n1, gpt2_stop_reason_name(s1), n0, gpt2_stop_reason_name(s0));
            CHECK(accepted <= proposed, "k %d: accepted %d <= proposed %d", k, accepted, proposed);
            total_p += proposed;
            total_a += accepted;
        }
        /* q8_0 rounding rarely changes the argmax: most proposals of a self-draft hold. */
        CHECK(total_a * 2 > total_p, "\"%s\": q8_0 self-draft accepted %d of %d", prompts[pi], total_a, total_p);
        if (pi == 0) direct_api(w, q, ids, (int)n_ids, plain, n0 < 40 ? n0 : 40, "embedded");
    }
    /* In a session: a second turn sees the same tokens as without a draft. */
    {
        gpt2_generate_params p;
        gpt2_generate_params_default(&p);
        p.sampler.temperature = 0;
        p.max_new_tokens = 20;
        const char *stop = "\n";
        p.n_stop = 1;
        p.stop[0] = stop;
        gpt2_session *a = NULL, *b = NULL, *d = NULL;
        CHECK_OK(gpt2_session_create(w, 16, &a, &err), &err);
        CHECK_OK(gpt2_session_create(w, 16, &b, &err), &err);
        CHECK_OK(gpt2_session_create(q, 16, &d, &err), &err);
        for (int turn = 0; turn < 3 && a && b && d; turn++) {
            gpt2_generator *ga = NULL, *gb = NULL;
            int32_t oa[32], ob[32];
            gpt2_stop_reason sa = GPT2_STOP_NONE, sb = GPT2_STOP_NONE;
            CHECK_OK(gpt2_generator_create_in_session(a, tok, &p, &ga, &err), &err);
            CHECK_OK(gpt2_generator_create_in_session(b, tok, &p, &gb, &err), &err);
            CHECK_OK(gpt2_generator_set_draft(gb, d, 5, &err), &err);
            int na = ga ? run_generator(ga, oa, 32, &sa) : 0, nb = gb ? run_generator(gb, ob, 32, &sb) : 0;
            gpt2_generator_free(ga);
            gpt2_generator_free(gb);
            CHECK(same_ids(oa, na, ob, nb) && sa == sb, "turn %d: %d tokens (%s) both", turn, na,
                  gpt2_stop_reason_name(sa));
            CHECK(same_ids(gpt2_session_tokens(a), gpt2_session_pos(a), gpt2_session_tokens(b), gpt2_session_pos(b)),
                  "turn %d: sessions hold the same %d tokens", turn, gpt2_session_pos(a));
        }
        /* Freed after 3 tokens (a cancelled generation): the session holds those 3, not the
         * verified tokens not yet emitted. */
        if (b && d) {
            gpt2_generator *gb = NULL;
            int before = gpt2_session_pos(b);
            gpt2_piece piece;
            p.n_stop = 0;
            CHECK_OK(gpt2_generator_create_in_session(b, tok, &p, &gb, &err), &err);
            CHECK_OK(gpt2_generator_set_draft(gb, d, 8, &err), &err);
            for (int i = 0; i < 3 && gb; i++) CHECK_OK(gpt2_generator_next(gb, &piece, &err), &err);
            int proposed = gpt2_generator_draft_proposed(gb), accepted = gpt2_generator_draft_accepted(gb);
            gpt2_generator_free(gb);
            CHECK(accepted >= 3 && proposed == 8 && gpt2_session_pos(b) == before + 3,
                  "cancelled after 3 tokens of a round of %d accepted: session %d -> %d", accepted, before,
                  gpt2_session_pos(b));
        }
        gpt2_session_free(a);
        gpt2_session_free(b);
        gpt2_session_free(d);
    }
done:
    gpt2_weights_free(w);
    gpt2_weights_free(q);
    gpt2_tokenizer_free(tok);
}

int main(void) {
    gpt2_error err;
    gpt2_weights *w = load_as("tests/fixtures/tiny-f32", GPT2_PRECISION_AUTO);
    gpt2_weights *q = load_as("tests/fixtures/tiny-f32", GPT2_PRECISION_Q8_0);
    gpt2_weights *h = load_as("tests/fixtures/tiny-f16", GPT2_PRECISION_AUTO);
    gpt2_weights *other = load_as("tests/fixtures/tiny-bf16", GPT2_PRECISION_AUTO);
    gpt2_weights *big_vocab = load_as("models", GPT2_PRECISION_Q8_0);
    gpt2_tokenizer *tok = NULL;
    CHECK_OK(gpt2_tokenizer_load("tests/fixtures/tiny-f32", &tok, &err), &err);
    if (w && q && h && other && big_vocab && tok) {
        CHECK(other->config.n_vocab == w->config.n_vocab && other->config.n_ctx < w->config.n_ctx,
              "tiny-bf16: same vocabulary, shorter context");
        const gpt2_weights *drafts[] = {q, h, other};
        const char *names[] = {"q8_0 self", "tiny-f16", "tiny-bf16"};
        reference_cases(w, tok, drafts, names, 3);
        /* The direct API on the fixture, against the plain generator. */
        int32_t prompt[3] = {464, 627, 624}, plain[40];
        gpt2_stop_reason s = GPT2_STOP_NONE;
        int n = greedy(w, tok, NULL, 0, prompt, 3, 40, 1, plain, 40, &s, NULL, NULL);
        CHECK(n == 40, "plain: 40 tokens");
        direct_api(w, q, prompt, 3, plain, n, "tiny q8_0");
        direct_api(w, other, prompt, 3, plain, n, "tiny-bf16");
        bad_input(w, tok, big_vocab, q);
        greedy_transforms(w, tok, drafts, 3);
        /* Past the context (64): slides, with the same tokens as without a draft. */
        static int32_t a[200], b[200];
        slide_policy = 1;
        int na = greedy(w, tok, NULL, 0, prompt, 3, 200, 1, a, 200, &s, NULL, NULL);
        for (int d = 0; d < 3; d++)
            for (int k = 1; k <= 8; k += 3) {
                gpt2_stop_reason s2 = GPT2_STOP_NONE;
                int nb = greedy(w, tok, drafts[d], k, prompt, 3, 200, 1, b, 200, &s2, NULL, NULL);
                CHECK(na == 200 && same_ids(a, na, b, nb) && s2 == s, "slide, draft %s, k %d: %d tokens", names[d], k,
                      nb);
            }
        slide_policy = 0;
    }
    gpt2_weights_free(w);
    gpt2_weights_free(q);
    gpt2_weights_free(h);
    gpt2_weights_free(other);
    gpt2_weights_free(big_vocab);
    gpt2_tokenizer_free(tok);
    embedded();
    return check_summary("test_speculative");
}
