/* generate.c - see generate.h.
 *
 * Text flow per step: token -> gpt2_decoder (whole UTF-8 characters only) -> `pending`
 * (text not yet released) -> released text. With stop sequences, pending keeps back its
 * longest suffix that is a prefix of some stop sequence, so released text never has to
 * be taken back; once a stop sequence appears in pending, the text before it is released
 * and generation ends.
 *
 * Why one file just over 600 lines: the generator's state machine (prefill, sampling, stop
 * sequences, context sliding, truncation) is one loop whose steps share that state.
 */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A banned word: its bytes, and whether it begins with a non-word byte (then any position
 * counts as a word start for it). */
typedef struct banned_word {
    char *bytes;
    size_t len;
    int free_start;
} banned_word;

struct gpt2_generator {
    const gpt2_weights *w;
    const gpt2_tokenizer *tok;
    gpt2_generate_params params;
    char *stop_text[GPT2_MAX_STOP_SEQUENCES]; /* owned copies of params.stop */
    size_t stop_len[GPT2_MAX_STOP_SEQUENCES];
    size_t stop_max;          /* longest stop sequence */
    gpt2_session *session;    /* the tokens and the KV cache */
    int owns_session;
    int n_prompt, n_generated;
    int n_truncated, n_slides;
    int started;
    gpt2_stop_reason stop;
    float *scratch;           /* [n_vocab] copy the sampler may modify */
    gpt2_sampler *sampler;
    gpt2_decoder decoder;
    char *pending;            /* decoded, not yet released text */
    size_t n_pending, cap_pending;
    char *out;                /* released text of the current step */
    size_t cap_out;
    char *dec;                /* one token's decoded text */
    size_t cap_dec;
    /* banned words (see generate.h) */
    banned_word *banned;
    int n_banned;
    int32_t *always;          /* tokens with a banned word at an inner word start */
    size_t n_always;
    char *tail;               /* the last bytes of the text (all of it when tail_whole) */
    size_t tail_len, tail_cap;
    int tail_whole;
    /* speculative decoding (gpt2_generator_set_draft) */
    gpt2_speculative *spec;
    int32_t queue[GPT2_SPECULATIVE_MAX_K + 1]; /* verified tokens not yet emitted */
    int q_head, q_len;
    int round_base;           /* session length at the start of the current round */
    char *tail_save;          /* [tail_cap] the tail while a round's positions are checked */
};

void gpt2_generate_params_default(gpt2_generate_params *p) {
    memset(p, 0, sizeof *p);
    gpt2_sampler_params_default(&p->sampler);
    p->max_new_tokens = 64;
}

const char *gpt2_stop_reason_name(gpt2_stop_reason r) {
    switch (r) {
    case GPT2_STOP_NONE: return "none";
    case GPT2_STOP_MAX_TOKENS: return "max_tokens";
    case GPT2_STOP_EOT: return "eot";
    case GPT2_STOP_SEQUENCE: return "stop_sequence";
    case GPT2_STOP_CONTEXT_FULL: return "context_full";
    }
    return "unknown";
}

/* Removes the verified tokens not yet emitted from the session. */
static void drop_queue(gpt2_generator *g) {
    if (g->q_len > 0) gpt2_session_rewind(g->session, gpt2_session_pos(g->session) - g->q_len, NULL);
    g->q_len = 0;
}

void gpt2_generator_free(gpt2_generator *g) {
    if (!g) return;
    if (!g->owns_session) drop_queue(g);
    gpt2_speculative_free(g->spec);
    for (int i = 0; i < GPT2_MAX_STOP_SEQUENCES; i++) free(g->stop_text[i]);
    if (g->owns_session) gpt2_session_free(g->session);
    gpt2_sampler_free(g->sampler);
    free(g->scratch);
    free(g->pending);
    free(g->out);
    free(g->dec);
    for (int i = 0; i < g->n_banned; i++) free(g->banned[i].bytes);
    free(g->banned);
    free(g->always);
    free(g->tail);
    free(g->tail_save);
    free(g);
}

/* ------------------------------------------------------------------ banned words */

/* Word bytes: ASCII letters and digits, and every byte of a non-ASCII character. */
static int word_byte(unsigned char b) {
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b >= 0x80;
}

/* The bytes of token id ("" for ids the tokenizer does not know). */
static void token_bytes(const gpt2_generator *g, int32_t id, const uint8_t **b, size_t *len) {
    if (gpt2_tokenizer_token_bytes(g->tok, id, b, len, NULL) != GPT2_OK) {
        *b = (const uint8_t *)"";
        *len = 0;
    }
}

/* Copies the banned words and lists the tokens that contain one at an inner word start
 * (position >= 1 of the token), which are banned at every step. */
static gpt2_err setup_banned(gpt2_generator *g, const gpt2_generate_params *p, gpt2_error *err) {
    if (p->n_banned < 0 || (p->n_banned > 0 && !p->banned_words))
        return gpt2_fail(err, GPT2_ERR_ARG, "banned words: %d entries but no array", p->n_banned);
    if (p->n_banned == 0) return GPT2_OK;
    g->banned = calloc((size_t)p->n_banned, sizeof *g->banned);
    if (!g->banned) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    for (int i = 0; i < p->n_banned; i++) {
        const char *wd = p->banned_words[i];
        if (!wd || !wd[0]) return gpt2_fail(err, GPT2_ERR_ARG, "banned word %d is empty", i + 1);
        size_t n = strlen(wd);
        banned_word *b = &g->banned[g->n_banned++];
        b->bytes = malloc(n);
        if (!b->bytes) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
        memcpy(b->bytes, wd, n);
        b->len = n;
        b->free_start = !word_byte((unsigned char)wd[0]);
        if (n > g->tail_cap) g->tail_cap = n;
    }
    g->tail = malloc(g->tail_cap);
    g->tail_save = malloc(g->tail_cap);
    int V = g->w->config.n_vocab;
    g->always = malloc((size_t)V * sizeof *g->always);
    if (!g->tail || !g->tail_save || !g->always) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    for (int32_t t = 0; t < V; t++) {
        const uint8_t *tb;
        size_t tl;
        token_bytes(g, t, &tb, &tl);
        int hit = 0;
        for (int i = 0; i < g->n_banned && !hit; i++) {
            const banned_word *b = &g->banned[i];
            for (size_t at = 1; at + b->len <= tl && !hit; at++)
                hit = (b->free_start || !word_byte(tb[at - 1])) && memcmp(tb + at, b->bytes, b->len) == 0;
        }
        if (hit) g->always[g->n_always++] = t;
    }
    return GPT2_OK;
}

/* Appends token bytes to the tail (keeping its last tail_cap bytes). */
static void tail_push(gpt2_generator *g, const uint8_t *b, size_t n) {
    size_t cap = g->tail_cap;
    if (g->tail_len + n > cap) g->tail_whole = 0;
    if (n >= cap) {
        memcpy(g->tail, b + (n - cap), cap);
        g->tail_len = cap;
        return;
    }
    if (g->tail_len + n > cap) {
        size_t drop = g->tail_len + n - cap;
        memmove(g->tail, g->tail + drop, g->tail_len - drop);
        g->tail_len -= drop;
    }
    memcpy(g->tail + g->tail_len, b, n);
    g->tail_len += n;
}

/* Fills the tail from the session's tokens (the text before the first generated token). */
static void tail_init(gpt2_generator *g) {
    const int32_t *toks = gpt2_session_tokens(g->session);
    int n = gpt2_session_pos(g->session);
    /* Walk back until tail_cap bytes are covered, then push forwards. */
    int from = n;
    size_t covered = 0;
    while (from > 0 && covered < g->tail_cap) {
        const uint8_t *b;
        size_t l;
        token_bytes(g, toks[from - 1], &b, &l);
        covered += l;
        from--;
    }
    g->tail_len = 0;
    g->tail_whole = from == 0;
    for (int i = from; i < n; i++) {
        const uint8_t *b;
        size_t l;
        token_bytes(g, toks[i], &b, &l);
        tail_push(g, b, l);
    }
    if (from > 0) g->tail_whole = 0;
}

/* Sets the logits of every token banned at this step to -inf. */
static void apply_banned(gpt2_generator *g, float *logits) {
    if (g->n_banned == 0) return;
    for (size_t i = 0; i < g->n_always; i++) logits[g->always[i]] = -INFINITY;
    const int V = g->w->config.n_vocab;
    const char *t = g->tail;
    const size_t tl = g->tail_len;
    for (int i = 0; i < g->n_banned; i++) {
        const banned_word *b = &g->banned[i];
        for (size_t j = 0; j < b->len; j++) {
            /* Does the text end with W[0..j) starting at a word start? */
            if (j > tl || memcmp(t + tl - j, b->bytes, j) != 0) continue;
            int start;
            if (b->free_start) start = 1;
            else if (j == tl) start = g->tail_whole; /* position 0 of the text, or unknown */
            else start = !word_byte((unsigned char)t[tl - j - 1]);
            if (!start) continue;
            /* Ban every token that begins with the rest of W. */
            const char *rest = b->bytes + j;
            size_t rn = b->len - j;
            for (int32_t id = 0; id < V; id++) {
                const uint8_t *tb;
                size_t l;
                token_bytes(g, id, &tb, &l);
                if (l >= rn && memcmp(tb, rest, rn) == 0) logits[id] = -INFINITY;
            }
        }
    }
}

/* ------------------------------------------------------------------ creation */

/* Everything but the session: stop sequences, sampler, buffers, banned words. */
static gpt2_err setup(gpt2_generator *g, const gpt2_generate_params *params, gpt2_error *err) {
    const gpt2_config *c = &g->w->config;
    g->params = *params;
    g->params.banned_words = NULL;
    g->params.n_banned = 0;
    gpt2_err rc;
    for (int i = 0; i < params->n_stop; i++) {
        size_t n = strlen(params->stop[i]);
        g->stop_text[i] = malloc(n + 1);
        if (!g->stop_text[i]) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
        memcpy(g->stop_text[i], params->stop[i], n + 1);
        g->stop_len[i] = n;
        g->params.stop[i] = g->stop_text[i];
        if (n > g->stop_max) g->stop_max = n;
    }
    if ((rc = gpt2_sampler_create(&params->sampler, c->n_vocab, &g->sampler, err)) != GPT2_OK) return rc;
    g->params.sampler.bias_ids = NULL; /* the sampler keeps its own copy */
    g->params.sampler.bias = NULL;
    g->scratch = malloc((size_t)c->n_vocab * sizeof(float));
    /* One token decodes to at most gpt2_decoder_max_output bytes; pending holds that plus
     * a held-back stop-sequence prefix, and one step releases at most all of pending. */
    g->cap_dec = gpt2_decoder_max_output(g->tok);
    g->cap_pending = g->cap_dec + g->stop_max;
    g->cap_out = g->cap_pending;
    g->dec = malloc(g->cap_dec);
    g->out = malloc(g->cap_out);
    g->pending = malloc(g->cap_pending);
    if (!g->scratch || !g->out || !g->pending || !g->dec) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    if ((rc = setup_banned(g, params, err)) != GPT2_OK) return rc;
    gpt2_decoder_init(&g->decoder);
    return GPT2_OK;
}

/* Checks the parameters that do not depend on the prompt. */
static gpt2_err check_params(const gpt2_weights *w, const gpt2_tokenizer *tok, const gpt2_generate_params *params,
                             gpt2_error *err) {
    const gpt2_config *c = &w->config;
    if (gpt2_tokenizer_vocab_size(tok) > (size_t)c->n_vocab)
        return gpt2_fail(err, GPT2_ERR_SHAPE, "the tokenizer has %zu tokens but the model only %d",
                         gpt2_tokenizer_vocab_size(tok), c->n_vocab);
    if (params->max_new_tokens < 0)
        return gpt2_fail(err, GPT2_ERR_ARG, "max_new_tokens must be >= 0, got %d", params->max_new_tokens);
    if (params->n_stop < 0 || params->n_stop > GPT2_MAX_STOP_SEQUENCES)
        return gpt2_fail(err, GPT2_ERR_ARG, "at most %d stop sequences, got %d", GPT2_MAX_STOP_SEQUENCES,
                         params->n_stop);
    for (int i = 0; i < params->n_stop; i++)
        if (!params->stop[i] || !params->stop[i][0])
            return gpt2_fail(err, GPT2_ERR_ARG, "stop sequence %d is empty", i + 1);
    if (params->context_policy != GPT2_CONTEXT_STOP && params->context_policy != GPT2_CONTEXT_SLIDE)
        return gpt2_fail(err, GPT2_ERR_ARG, "unknown context policy %d", (int)params->context_policy);
    if (params->slide_keep < 0 || params->slide_keep >= c->n_ctx)
        return gpt2_fail(err, GPT2_ERR_ARG, "slide_keep must be from 1 to %d (0 = half the context), got %d",
                         c->n_ctx - 1, params->slide_keep);
    return GPT2_OK;
}

gpt2_err gpt2_generator_create(const gpt2_weights *w, const gpt2_tokenizer *tok,
                               const gpt2_generate_params *params, const int32_t *prompt,
                               size_t n_prompt, gpt2_generator **out, gpt2_error *err) {
    if (!w || !tok || !params || !out || (!prompt && n_prompt))
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_generator_create: NULL argument");
    *out = NULL;
    const gpt2_config *c = &w->config;
    gpt2_err rc = check_params(w, tok, params, err);
    if (rc != GPT2_OK) return rc;
    int eot = gpt2_tokenizer_eot_id(tok);
    if (n_prompt == 0 && eot < 0)
        return gpt2_fail(err, GPT2_ERR_ARG, "empty prompt, and the vocabulary has no <|endoftext|> to start from");
    size_t n_run = n_prompt ? n_prompt : 1;
    size_t dropped = 0;
    if (n_run > (size_t)c->n_ctx) {
        if (!params->truncate_prompt)
            return gpt2_fail(err, GPT2_ERR_RANGE, "the prompt has %zu tokens but the context holds only %d",
                             n_prompt, c->n_ctx);
        int room = c->n_ctx - params->max_new_tokens;
        size_t keep = (size_t)(room > c->n_ctx / 2 ? room : c->n_ctx / 2);
        if (keep < 1) keep = 1;
        dropped = n_run - keep;
        prompt += dropped;
        n_prompt -= dropped;
        n_run = keep;
    }
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->n_vocab)
            return gpt2_fail(err, GPT2_ERR_RANGE, "prompt token %d at index %zu is outside the vocabulary",
                             (int)prompt[i], i);

    gpt2_generator *g = calloc(1, sizeof *g);
    if (!g) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    g->w = w;
    g->tok = tok;
    /* One prefill step covers prompts of up to GPT2_PREFILL_BATCH tokens; longer ones run in
     * steps of that many (bounded scratch memory, same results). */
    int batch = n_run < GPT2_PREFILL_BATCH ? (int)n_run : GPT2_PREFILL_BATCH;
    if ((rc = gpt2_session_create(w, batch, &g->session, err)) != GPT2_OK) goto fail;
    g->owns_session = 1;
    int32_t start = eot;
    if ((rc = gpt2_session_push(g->session, n_prompt ? prompt : &start, n_run, err)) != GPT2_OK) goto fail;
    if ((rc = setup(g, params, err)) != GPT2_OK) goto fail;
    g->n_prompt = (int)n_run;
    g->n_truncated = (int)dropped;
    *out = g;
    return GPT2_OK;
fail:
    gpt2_generator_free(g);
    return rc;
}

gpt2_err gpt2_generator_create_in_session(gpt2_session *s, const gpt2_tokenizer *tok,
                                          const gpt2_generate_params *params, gpt2_generator **out,
                                          gpt2_error *err) {
    if (!s || !tok || !params || !out)
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_generator_create_in_session: NULL argument");
    *out = NULL;
    const gpt2_weights *w = gpt2_session_weights(s);
    gpt2_err rc = check_params(w, tok, params, err);
    if (rc != GPT2_OK) return rc;
    int eot = gpt2_tokenizer_eot_id(tok);
    if (gpt2_session_pos(s) == 0 && eot < 0)
        return gpt2_fail(err, GPT2_ERR_ARG, "empty session, and the vocabulary has no <|endoftext|> to start from");
    gpt2_generator *g = calloc(1, sizeof *g);
    if (!g) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    g->w = w;
    g->tok = tok;
    g->session = s;
    if ((rc = setup(g, params, err)) != GPT2_OK) goto fail;
    /* Only now change the session: nothing can fail after this. */
    if (gpt2_session_pos(s) == 0) {
        int32_t start = eot;
        if ((rc = gpt2_session_push(s, &start, 1, err)) != GPT2_OK) goto fail;
    }
    g->n_prompt = gpt2_session_pos(s);
    *out = g;
    return GPT2_OK;
fail:
    gpt2_generator_free(g);
    return rc;
}

/* Finds the first stop sequence in pending; returns its offset or -1. */
static long find_stop(const gpt2_generator *g) {
    long best = -1;
    for (int i = 0; i < g->params.n_stop; i++) {
        size_t n = g->stop_len[i];
        for (size_t at = 0; at + n <= g->n_pending; at++) {
            if (best >= 0 && (long)at >= best) break;
            if (memcmp(g->pending + at, g->stop_text[i], n) == 0) {
                best = (long)at;
                break;
            }
        }
    }
    return best;
}

/* Length of the longest suffix of pending that is a proper prefix of a stop sequence. */
static size_t held_back(const gpt2_generator *g) {
    size_t keep = 0;
    for (int i = 0; i < g->params.n_stop; i++) {
        size_t n = g->stop_len[i];
        for (size_t k = n - 1; k > keep; k--) {
            if (k <= g->n_pending && memcmp(g->pending + g->n_pending - k, g->stop_text[i], k) == 0) {
                keep = k;
                break;
            }
        }
    }
    return keep;
}

/* Moves the first n bytes of pending to the output of this step. */
static void release(gpt2_generator *g, gpt2_piece *piece, size_t n) {
    memcpy(g->out + piece->len, g->pending, n);
    piece->len += n;
    memmove(g->pending, g->pending + n, g->n_pending - n);
    g->n_pending -= n;
}

/* Appends decoded text, then releases what is final; sets g->stop on a stop sequence. */
static void take_text(gpt2_generator *g, const char *text, size_t n, gpt2_piece *piece, int final) {
    memcpy(g->pending + g->n_pending, text, n);
    g->n_pending += n;
    long at = find_stop(g);
    if (at >= 0) {
        release(g, piece, (size_t)at);
        g->n_pending = 0;
        g->stop = GPT2_STOP_SEQUENCE;
        return;
    }
    release(g, piece, final ? g->n_pending : g->n_pending - held_back(g));
}

/* Ends generation with reason r: flushes an incomplete character and releases all text. */
static void finish(gpt2_generator *g, gpt2_piece *piece, gpt2_stop_reason r) {
    if (g->stop == GPT2_STOP_NONE) {
        size_t n = 0;
        gpt2_decoder_finish(&g->decoder, g->dec, g->cap_dec, &n, NULL);
        take_text(g, g->dec, n, piece, 1);
    }
    if (g->stop == GPT2_STOP_NONE) g->stop = r;
    piece->stop = g->stop;
}

/* The token budget or the context is used up (GPT2_STOP_NONE if neither). */
static gpt2_stop_reason limit_reached(const gpt2_generator *g) {
    if (g->n_generated >= g->params.max_new_tokens) return GPT2_STOP_MAX_TOKENS;
    /* queued tokens are in the session already but not yet generated */
    if (gpt2_session_pos(g->session) - g->q_len >= g->w->config.n_ctx && g->params.context_policy != GPT2_CONTEXT_SLIDE)
        return GPT2_STOP_CONTEXT_FULL;
    return GPT2_STOP_NONE;
}

/* With GPT2_CONTEXT_SLIDE and a full context: keep the most recent tokens (see generate.h). */
static gpt2_err make_room(gpt2_generator *g, gpt2_error *err) {
    const int n_ctx = g->w->config.n_ctx;
    if (g->params.context_policy != GPT2_CONTEXT_SLIDE || gpt2_session_pos(g->session) < n_ctx) return GPT2_OK;
    int keep = g->params.slide_keep > 0 && g->params.slide_keep < n_ctx ? g->params.slide_keep : n_ctx / 2;
    if (keep < 1) keep = 1;
    gpt2_err rc = gpt2_session_slide(g->session, keep, err);
    if (rc == GPT2_OK) g->n_slides++;
    return rc;
}

int gpt2_generator_truncated(const gpt2_generator *g) { return g ? g->n_truncated : 0; }
int gpt2_generator_slides(const gpt2_generator *g) { return g ? g->n_slides : 0; }

/* The speculative policy (speculative.h): the distribution gpt2_sampler_sample draws from after
 * tokens[0..n), banned words included, for either model's logits. The generator's tail holds
 * the text up to the round's start (round_base tokens); the round's proposals are added to
 * it for this position only. */
static gpt2_err spec_dist(void *ctx, const float *logits, const int32_t *tokens, int n, double *probs,
                          gpt2_error *err) {
    gpt2_generator *g = ctx;
    memcpy(g->scratch, logits, (size_t)g->w->config.n_vocab * sizeof(float));
    if (g->n_banned) {
        const size_t len = g->tail_len;
        const int whole = g->tail_whole;
        memcpy(g->tail_save, g->tail, len);
        for (int i = g->round_base; i < n; i++) {
            const uint8_t *b;
            size_t l;
            token_bytes(g, tokens[i], &b, &l);
            tail_push(g, b, l);
        }
        apply_banned(g, g->scratch);
        memcpy(g->tail, g->tail_save, len);
        g->tail_len = len;
        g->tail_whole = whole;
    }
    return gpt2_sampler_distribution(g->sampler, g->scratch, tokens, (size_t)n, probs, err);
}

static double spec_uniform(void *ctx) { return gpt2_sampler_uniform(((gpt2_generator *)ctx)->sampler); }

gpt2_err gpt2_generator_set_draft(gpt2_generator *g, gpt2_session *draft, int k, gpt2_error *err) {
    if (!g || !draft) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_generator_set_draft: NULL argument");
    if (g->started || g->spec)
        return gpt2_fail(err, GPT2_ERR_ARG, "the draft must be set once, before the first token");
    gpt2_err rc = gpt2_speculative_create(g->session, draft, k, &g->spec, err);
    if (rc != GPT2_OK) return rc;
    gpt2_speculative_policy policy = {spec_dist, gpt2_sampler_is_greedy(g->sampler) ? NULL : spec_uniform, g};
    gpt2_speculative_set_policy(g->spec, &policy);
    return GPT2_OK;
}

int gpt2_generator_draft_proposed(const gpt2_generator *g) {
    return g ? (int)gpt2_speculative_get_stats(g->spec).proposed : 0;
}
int gpt2_generator_draft_accepted(const gpt2_generator *g) {
    return g ? (int)gpt2_speculative_get_stats(g->spec).accepted : 0;
}

/* The next token from the speculative rounds (a new round when none is queued). */
static gpt2_err next_verified(gpt2_generator *g, int32_t *id, gpt2_error *err) {
    if (g->q_len == 0) {
        gpt2_err rc0 = make_room(g, err); /* a round starts with room in the context */
        if (rc0 != GPT2_OK) return rc0;
        int32_t eot = g->params.ignore_eot ? -1 : gpt2_tokenizer_eot_id(g->tok);
        int n = 0;
        g->round_base = gpt2_session_pos(g->session);
        gpt2_err rc = gpt2_speculative_step(g->spec, g->params.max_new_tokens - g->n_generated, eot, g->queue, &n, err);
        if (rc != GPT2_OK) return rc;
        g->q_head = 0;
        g->q_len = n;
    }
    *id = g->queue[g->q_head++];
    g->q_len--;
    return GPT2_OK;
}

static gpt2_err generator_step(gpt2_generator *g, gpt2_piece *piece, gpt2_error *err);

gpt2_err gpt2_generator_next(gpt2_generator *g, gpt2_piece *piece, gpt2_error *err) {
    gpt2_err rc = generator_step(g, piece, err);
    if (rc == GPT2_OK && g->spec && g->stop != GPT2_STOP_NONE) drop_queue(g);
    return rc;
}

static gpt2_err generator_step(gpt2_generator *g, gpt2_piece *piece, gpt2_error *err) {
    if (!g || !piece) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_generator_next: NULL argument");
    piece->id = -1;
    piece->text = g->out;
    piece->len = 0;
    piece->stop = g->stop;
    if (g->stop != GPT2_STOP_NONE) return GPT2_OK;
    const gpt2_config *c = &g->w->config;
    gpt2_err rc;
    if (!g->started) {
        /* The prompt (or whatever the session has not computed yet). */
        if ((rc = make_room(g, err)) != GPT2_OK) return rc;
        rc = gpt2_session_sync(g->session, err);
        if (rc != GPT2_OK) return rc;
        if (g->n_banned) tail_init(g);
        g->started = 1;
    }
    gpt2_stop_reason limit = limit_reached(g);
    if (limit != GPT2_STOP_NONE) {
        finish(g, piece, limit);
        return GPT2_OK;
    }

    int32_t id;
    if (g->spec) {
        /* The token is in the session already (verified by the big model). */
        if ((rc = next_verified(g, &id, err)) != GPT2_OK) return rc;
    } else {
        memcpy(g->scratch, gpt2_session_logits(g->session), (size_t)c->n_vocab * sizeof(float));
        apply_banned(g, g->scratch);
        rc = gpt2_sampler_sample(g->sampler, g->scratch, gpt2_session_tokens(g->session),
                                 (size_t)gpt2_session_pos(g->session), &id, err);
        if (rc != GPT2_OK) return rc;
        /* The token joins the session uncomputed; it runs below, or in the session's next call. */
        if ((rc = gpt2_session_push(g->session, &id, 1, err)) != GPT2_OK) return rc;
    }
    piece->id = id;
    g->n_generated++;
    if (g->n_banned) {
        const uint8_t *b;
        size_t l;
        token_bytes(g, id, &b, &l);
        tail_push(g, b, l);
    }

    if (id == gpt2_tokenizer_eot_id(g->tok) && !g->params.ignore_eot) {
        finish(g, piece, GPT2_STOP_EOT);
        return GPT2_OK;
    }
    size_t n = 0;
    rc = gpt2_decoder_push(&g->decoder, g->tok, id, g->dec, g->cap_dec, &n, err);
    if (rc != GPT2_OK) return rc;
    take_text(g, g->dec, n, piece, 0);
    if (g->stop != GPT2_STOP_NONE) {
        piece->stop = g->stop;
        return GPT2_OK;
    }
    /* Stop as soon as the limit is known, so the last token's piece carries the reason
     * (and the logits that chose it stay readable). */
    if ((limit = limit_reached(g)) != GPT2_STOP_NONE) {
        finish(g, piece, limit);
        return GPT2_OK;
    }
    if (g->spec) return GPT2_OK; /* the next round runs it with the proposals */
    /* Run the new token now, so the next call samples at once. */
    if ((rc = make_room(g, err)) != GPT2_OK) return rc;
    return gpt2_session_sync(g->session, err);
}

int gpt2_generator_count(const gpt2_generator *g) { return g ? g->n_generated : 0; }
int gpt2_generator_prompt_tokens(const gpt2_generator *g) { return g ? g->n_prompt : 0; }
const float *gpt2_generator_logits(const gpt2_generator *g) {
    return g && g->started && !g->spec ? gpt2_session_logits(g->session) : NULL;
}
