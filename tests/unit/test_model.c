/* test_model.c - the forward pass, scoring and greedy generation against the float64
 * PyTorch reference (tools/gpt2_reference.py) on the committed fixtures in tests/fixtures.
 *
 * For every fixture and case in expected.json:
 *   - the tokenizer gives the reference's ids for the case's text;
 *   - last-position logits (one batched prefill) are within 1e-4 of the reference;
 *   - the same logits come out when the prompt is fed one token at a time (KV cache path);
 *   - per-token log-probabilities are within 1e-4 and ranks match;
 *   - greedy generation yields the reference's tokens, and the logits of its last step
 *     are within 1e-4 of the reference's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "generate.h"
#include "json.h"
#include "loader.h"
#include "model.h"
#include "score.h"
#include "tokenizer.h"

#define TOL 1e-4

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* Max |a[i] - ref[i]| over a JSON array of numbers; n must match. */
static double max_abs_diff(const float *a, const json_value *ref, int n) {
    if (!ref || ref->type != JSON_ARRAY || (int)ref->count != n) return INFINITY;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref->items[i].number);
        if (!(d <= worst)) worst = d; /* also catches NaN */
    }
    return worst;
}

static int32_t *ids_of(const json_value *arr, size_t *n) {
    *n = arr && arr->type == JSON_ARRAY ? arr->count : 0;
    int32_t *ids = malloc((*n ? *n : 1) * sizeof(int32_t));
    for (size_t i = 0; ids && i < *n; i++) ids[i] = (int32_t)arr->items[i].integer;
    return ids;
}

static void check_case(const char *fixture, const gpt2_weights *w, const gpt2_tokenizer *tok,
                       const json_value *c) {
    gpt2_error err;
    const json_value *name_v = json_get(c, "name");
    const char *name = name_v ? name_v->str : "?";
    const json_value *text = json_get(c, "text");
    const json_value *special = json_get(c, "allow_special");
    int allow_special = special && special->type == JSON_TRUE;
    size_t n = 0, n_greedy = 0;
    int32_t *ids = ids_of(json_get(c, "ids"), &n);
    int32_t *greedy = ids_of(json_get(c, "greedy"), &n_greedy);
    const int V = w->config.n_vocab;
    float *logits = malloc((size_t)V * sizeof(float));
    float *logits_step = malloc((size_t)V * sizeof(float));
    CHECK(ids && greedy && logits && logits_step && text && n > 0, "%s/%s: fixture case readable", fixture, name);
    if (!ids || !greedy || !logits || !logits_step || !text || n == 0) goto out;

    /* Tokenizer agrees with the reference's own BPE. */
    int32_t *enc = malloc((text->len + 1) * sizeof(int32_t));
    size_t n_enc = 0;
    CHECK_OK(gpt2_tokenizer_encode(tok, text->str, text->len, allow_special, enc, text->len, &n_enc, &err), &err);
    CHECK(n_enc == n && memcmp(enc, ids, n * sizeof(int32_t)) == 0, "%s/%s: tokenizer ids differ from the reference",
          fixture, name);
    free(enc);

    /* Batched prefill. */
    gpt2_state *s = NULL;
    CHECK_OK(gpt2_state_create(w, 16, &s, &err), &err);
    if (!s) goto out;
    CHECK_OK(gpt2_forward(s, ids, (int)n, logits, 0, &err), &err);
    double d = max_abs_diff(logits, json_get(c, "logits_last"), V);
    CHECK(d <= TOL, "%s/%s: prefill logits differ by %g", fixture, name, d);

    /* Token-by-token through the KV cache. */
    CHECK_OK(gpt2_state_rewind(s, 0, &err), &err);
    for (size_t t = 0; t < n; t++) CHECK_OK(gpt2_forward(s, ids + t, 1, logits_step, 0, &err), &err);
    d = max_abs_diff(logits_step, json_get(c, "logits_last"), V);
    CHECK(d <= TOL, "%s/%s: step-by-step logits differ by %g", fixture, name, d);
    gpt2_state_free(s);

    /* Scoring. */
    if (n > 1) {
        float *lp = malloc(n * sizeof(float));
        int32_t *rk = malloc(n * sizeof(int32_t));
        CHECK_OK(gpt2_score(w, ids, n, lp, rk, &err), &err);
        const json_value *ref_lp = json_get(c, "logprobs"), *ref_rk = json_get(c, "ranks");
        d = max_abs_diff(lp, ref_lp, (int)n - 1);
        CHECK(d <= TOL, "%s/%s: logprobs differ by %g", fixture, name, d);
        int rank_bad = 0;
        for (size_t t = 0; ref_rk && t + 1 < n && t < ref_rk->count; t++) rank_bad += rk[t] != ref_rk->items[t].integer;
        CHECK(ref_rk && ref_rk->count == n - 1 && rank_bad == 0, "%s/%s: %d ranks differ", fixture, name, rank_bad);
        free(lp);
        free(rk);
    }

    /* Greedy generation (the reference does not stop at <|endoftext|>). */
    gpt2_generate_params p;
    gpt2_generate_params_default(&p);
    p.sampler.temperature = 0;
    p.max_new_tokens = n_greedy ? (int)n_greedy : 16;
    p.ignore_eot = 1;
    gpt2_generator *g = NULL;
    CHECK_OK(gpt2_generator_create(w, tok, &p, ids, n, &g, &err), &err);
    int32_t got[64];
    int n_got = 0;
    gpt2_piece piece;
    do {
        if (gpt2_generator_next(g, &piece, &err) != GPT2_OK) break;
        if (piece.id >= 0 && n_got < 64) got[n_got++] = piece.id;
    } while (piece.stop == GPT2_STOP_NONE);
    CHECK(n_got == (int)n_greedy && memcmp(got, greedy, n_greedy * sizeof(int32_t)) == 0,
          "%s/%s: greedy continuation differs (%d tokens, want %zu)", fixture, name, n_got, n_greedy);
    if (n_greedy) {
        d = max_abs_diff(gpt2_generator_logits(g), json_get(c, "greedy_logits_last"), V);
        CHECK(d <= TOL, "%s/%s: logits of the last greedy step differ by %g", fixture, name, d);
        CHECK(piece.stop == GPT2_STOP_MAX_TOKENS || piece.stop == GPT2_STOP_CONTEXT_FULL, "%s/%s: stop reason %s",
              fixture, name, gpt2_stop_reason_name(piece.stop));
    } else {
        CHECK(piece.stop == GPT2_STOP_CONTEXT_FULL, "%s/%s: a full context stops at once (got %s)", fixture, name,
              gpt2_stop_reason_name(piece.stop));
    }
    gpt2_generator_free(g);
out:
    free(ids);
    free(greedy);
    free(logits);
    free(logits_step);
}

static void check_fixture(const char *fixture) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", fixture);
    snprintf(path, sizeof path, "%s/expected.json", dir);
    gpt2_error err;
    size_t len;
    char *text = read_file(path, &len);
    CHECK(text != NULL, "cannot read %s", path);
    if (!text) return;
    json_doc *doc = NULL;
    CHECK_OK(json_parse(text, len, &doc, &err), &err);
    free(text);
    gpt2_weights *w = NULL;
    gpt2_tokenizer *tok = NULL;
    CHECK_OK(gpt2_load_dir(dir, NULL, &w, &err), &err);
    CHECK_OK(gpt2_tokenizer_load(dir, &tok, &err), &err);
    const json_value *cases = json_get(json_root(doc), "cases");
    CHECK(cases && cases->type == JSON_ARRAY && cases->count >= 5, "%s: expected.json has cases", fixture);
    if (w && tok && cases) {
        for (size_t i = 0; i < cases->count; i++) check_case(fixture, w, tok, &cases->items[i]);
        printf("%s: %zu cases\n", fixture, cases->count);
    }
    gpt2_tokenizer_free(tok);
    gpt2_weights_free(w);
    json_free(doc);
}

int main(void) {
    check_fixture("tiny-f32");
    check_fixture("tiny-f16");
    check_fixture("tiny-bf16");
    return check_summary("test_model");
}
