/* test_generate.c - the generation loop's policies on the tiny-f32 fixture: streamed text
 * equals the decoded tokens, stop sequences, limits, empty and over-long prompts, seeds. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "generate.h"
#include "loader.h"
#include "tokenizer.h"

typedef struct run {
    char text[4096];
    size_t len;
    int32_t ids[256];
    int n_ids;
    gpt2_stop_reason stop;
    gpt2_err rc;
} run;

static void generate(const gpt2_weights *w, const gpt2_tokenizer *tok, const gpt2_generate_params *p,
                     const char *prompt, run *r) {
    gpt2_error err;
    memset(r, 0, sizeof *r);
    int32_t ids[512];
    size_t n = 0;
    r->rc = gpt2_tokenizer_encode(tok, prompt, strlen(prompt), 0, ids, 512, &n, &err);
    if (r->rc != GPT2_OK) return;
    gpt2_generator *g = NULL;
    r->rc = gpt2_generator_create(w, tok, p, ids, n, &g, &err);
    if (r->rc != GPT2_OK) return;
    gpt2_piece piece;
    do {
        r->rc = gpt2_generator_next(g, &piece, &err);
        if (r->rc != GPT2_OK) break;
        if (piece.id >= 0 && r->n_ids < 256) r->ids[r->n_ids++] = piece.id;
        if (r->len + piece.len < sizeof r->text) {
            memcpy(r->text + r->len, piece.text, piece.len);
            r->len += piece.len;
        }
    } while (piece.stop == GPT2_STOP_NONE);
    r->stop = piece.stop;
    /* After the end, further calls keep returning the same reason and no token. */
    gpt2_generator_next(g, &piece, &err);
    CHECK(piece.id == -1 && piece.len == 0 && piece.stop == r->stop, "calls after the end are empty");
    gpt2_generator_free(g);
}

int main(void) {
    gpt2_error err;
    gpt2_weights *w = NULL;
    gpt2_tokenizer *tok = NULL;
    CHECK_OK(gpt2_load_dir("tests/fixtures/tiny-f32", NULL, &w, &err), &err);
    CHECK_OK(gpt2_tokenizer_load("tests/fixtures/tiny-f32", &tok, &err), &err);
    if (!w || !tok) return check_summary("test_generate");

    gpt2_generate_params p;
    gpt2_generate_params_default(&p);
    p.max_new_tokens = 30;
    p.ignore_eot = 1;
    p.sampler.seed = 7;
    static run a, b, c;

    /* Streamed pieces concatenate to the decoded ids. */
    generate(w, tok, &p, "The cat sat", &a);
    CHECK(a.rc == GPT2_OK && a.n_ids == 30 && a.stop == GPT2_STOP_MAX_TOKENS, "30 sampled tokens (rc %d, %d ids, %s)",
          a.rc, a.n_ids, gpt2_stop_reason_name(a.stop));
    char whole[4096];
    size_t n_whole = 0;
    CHECK_OK(gpt2_tokenizer_decode(tok, a.ids, (size_t)a.n_ids, whole, sizeof whole, &n_whole, &err), &err);
    CHECK(n_whole == a.len && memcmp(whole, a.text, a.len) == 0, "pieces == decode(ids)");

    /* Same seed, same tokens; another seed, other tokens. */
    generate(w, tok, &p, "The cat sat", &b);
    CHECK(b.n_ids == a.n_ids && memcmp(a.ids, b.ids, sizeof a.ids) == 0, "same seed, same output");
    p.sampler.seed = 8;
    generate(w, tok, &p, "The cat sat", &b);
    CHECK(memcmp(a.ids, b.ids, sizeof a.ids) != 0, "another seed, another output");
    p.sampler.seed = 7;

    /* A stop sequence taken from the middle of the output ends generation before it. */
    if (a.len > 12) {
        char stop[5];
        memcpy(stop, a.text + a.len / 2, 4);
        stop[4] = '\0';
        const char *first = strstr(a.text, stop);
        p.n_stop = 1;
        p.stop[0] = stop;
        generate(w, tok, &p, "The cat sat", &b);
        size_t want = (size_t)(first - a.text);
        CHECK(b.stop == GPT2_STOP_SEQUENCE && b.len == want && memcmp(b.text, a.text, want) == 0,
              "stop sequence '%s': got %zu bytes, want %zu, reason %s", stop, b.len, want, gpt2_stop_reason_name(b.stop));
        /* A stop sequence that never appears changes nothing. */
        p.stop[0] = "\x01never";
        generate(w, tok, &p, "The cat sat", &b);
        CHECK(b.len == a.len && memcmp(b.text, a.text, a.len) == 0 && b.stop == GPT2_STOP_MAX_TOKENS,
              "absent stop sequence: same text");
        p.n_stop = 0;
    }

    /* max_new_tokens = 0 stops at once. */
    p.max_new_tokens = 0;
    generate(w, tok, &p, "The cat sat", &b);
    CHECK(b.rc == GPT2_OK && b.n_ids == 0 && b.len == 0 && b.stop == GPT2_STOP_MAX_TOKENS, "zero tokens");

    /* Empty prompt: conditioned on <|endoftext|>, same as passing it explicitly. */
    p.max_new_tokens = 10;
    p.sampler.temperature = 0;
    generate(w, tok, &p, "", &b);
    CHECK(b.rc == GPT2_OK && b.n_ids == 10, "empty prompt generates");
    int32_t eot = gpt2_tokenizer_eot_id(tok);
    gpt2_generator *g = NULL;
    CHECK_OK(gpt2_generator_create(w, tok, &p, &eot, 1, &g, &err), &err);
    gpt2_piece piece;
    int same = 1;
    for (int i = 0; g && i < 10; i++) {
        gpt2_generator_next(g, &piece, &err);
        same &= piece.id == b.ids[i];
    }
    CHECK(same, "empty prompt == <|endoftext|> prompt");
    gpt2_generator_free(g);

    /* Stopping at <|endoftext|>: the greedy run without ignore_eot ends at the first eot. */
    p.ignore_eot = 0;
    p.max_new_tokens = 60;
    generate(w, tok, &p, "", &c);
    p.ignore_eot = 1;
    generate(w, tok, &p, "", &b);
    int first_eot = -1;
    for (int i = 0; i < b.n_ids; i++)
        if (b.ids[i] == eot) { first_eot = i; break; }
    if (first_eot >= 0)
        CHECK(c.stop == GPT2_STOP_EOT && c.n_ids == first_eot + 1, "stops at eot (%d ids, eot at %d)", c.n_ids, first_eot);
    else
        CHECK(c.stop != GPT2_STOP_EOT && c.n_ids == b.n_ids, "no eot: same run");

    /* The context fills: generation stops with context_full. */
    p.max_new_tokens = 1000;
    generate(w, tok, &p, "Hello there", &b);
    int32_t tmp[64];
    size_t n_prompt = 0;
    gpt2_tokenizer_encode(tok, "Hello there", 11, 0, tmp, 64, &n_prompt, &err);
    CHECK(b.stop == GPT2_STOP_CONTEXT_FULL && (size_t)b.n_ids + n_prompt == (size_t)w->config.n_ctx,
          "context full after %d tokens", b.n_ids);

    /* Bad input: prompt longer than the context, ids out of range, bad params. */
    int32_t longp[200];
    for (int i = 0; i < 200; i++) longp[i] = 10;
    g = NULL;
    CHECK_FAILS(gpt2_generator_create(w, tok, &p, longp, (size_t)w->config.n_ctx + 1, &g, &err), GPT2_ERR_RANGE, &err);
    longp[3] = w->config.n_vocab;
    CHECK_FAILS(gpt2_generator_create(w, tok, &p, longp, 5, &g, &err), GPT2_ERR_RANGE, &err);
    p.max_new_tokens = -1;
    CHECK_FAILS(gpt2_generator_create(w, tok, &p, longp, 2, &g, &err), GPT2_ERR_ARG, &err);
    p.max_new_tokens = 5;
    p.n_stop = 1;
    p.stop[0] = "";
    CHECK_FAILS(gpt2_generator_create(w, tok, &p, longp, 2, &g, &err), GPT2_ERR_ARG, &err);
    p.n_stop = 0;
    p.sampler.top_p = 2.0f;
    CHECK_FAILS(gpt2_generator_create(w, tok, &p, longp, 2, &g, &err), GPT2_ERR_ARG, &err);
    CHECK(g == NULL, "no generator on failure");

    gpt2_tokenizer_free(tok);
    gpt2_weights_free(w);
    return check_summary("test_generate");
}
