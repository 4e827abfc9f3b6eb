/* generate.c - see generate.h.
 *
 * Text flow per step: token -> gpt2_decoder (whole UTF-8 characters only) -> `pending`
 * (text not yet released) -> released text. With stop sequences, pending keeps back its
 * longest suffix that is a prefix of some stop sequence, so released text never has to
 * be taken back; once a stop sequence appears in pending, the text before it is released
 * and generation ends.
 */
#include "generate.h"

#include <stdlib.h>
#include <string.h>

struct gpt2_generator {
    const gpt2_weights *w;
    const gpt2_tokenizer *tok;
    gpt2_generate_params params;
    char *stop_text[GPT2_MAX_STOP_SEQUENCES]; /* owned copies of params.stop */
    size_t stop_len[GPT2_MAX_STOP_SEQUENCES];
    size_t stop_max;          /* longest stop sequence */
    gpt2_state *state;
    gpt2_sampler *sampler;
    int32_t *tokens;          /* prompt + generated, capacity n_ctx */
    int n_tokens, n_prompt, n_generated;
    int started;
    gpt2_stop_reason stop;
    float *logits;            /* [n_vocab] logits of the last step */
    float *scratch;           /* [n_vocab] copy the sampler may modify */
    gpt2_decoder decoder;
    char *pending;            /* decoded, not yet released text */
    size_t n_pending, cap_pending;
    char *out;                /* released text of the current step */
    size_t cap_out;
    char *dec;                /* one token's decoded text */
    size_t cap_dec;
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

void gpt2_generator_free(gpt2_generator *g) {
    if (!g) return;
    for (int i = 0; i < GPT2_MAX_STOP_SEQUENCES; i++) free(g->stop_text[i]);
    gpt2_state_free(g->state);
    gpt2_sampler_free(g->sampler);
    free(g->tokens);
    free(g->logits);
    free(g->scratch);
    free(g->pending);
    free(g->out);
    free(g->dec);
    free(g);
}

gpt2_err gpt2_generator_create(const gpt2_weights *w, const gpt2_tokenizer *tok,
                               const gpt2_generate_params *params, const int32_t *prompt,
                               size_t n_prompt, gpt2_generator **out, gpt2_error *err) {
    if (!w || !tok || !params || !out || (!prompt && n_prompt))
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_generator_create: NULL argument");
    *out = NULL;
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
    int eot = gpt2_tokenizer_eot_id(tok);
    if (n_prompt == 0 && eot < 0)
        return gpt2_fail(err, GPT2_ERR_ARG, "empty prompt, and the vocabulary has no <|endoftext|> to start from");
    size_t n_run = n_prompt ? n_prompt : 1;
    if (n_run > (size_t)c->n_ctx)
        return gpt2_fail(err, GPT2_ERR_RANGE, "the prompt has %zu tokens but the context holds only %d",
                         n_prompt, c->n_ctx);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->n_vocab)
            return gpt2_fail(err, GPT2_ERR_RANGE, "prompt token %d at index %zu is outside the vocabulary",
                             (int)prompt[i], i);

    gpt2_generator *g = calloc(1, sizeof *g);
    if (!g) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    g->w = w;
    g->tok = tok;
    g->params = *params;
    gpt2_err rc = GPT2_OK;
    for (int i = 0; i < params->n_stop; i++) {
        size_t n = strlen(params->stop[i]);
        g->stop_text[i] = malloc(n + 1);
        if (!g->stop_text[i]) { rc = gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory"); goto fail; }
        memcpy(g->stop_text[i], params->stop[i], n + 1);
        g->stop_len[i] = n;
        g->params.stop[i] = g->stop_text[i];
        if (n > g->stop_max) g->stop_max = n;
    }
    /* One prefill step covers prompts of up to 64 tokens; longer ones run in steps of 64
     * (bounded scratch memory, same results). */
    int batch = n_run < 64 ? (int)n_run : 64;
    if ((rc = gpt2_state_create(w, batch, &g->state, err)) != GPT2_OK) goto fail;
    if ((rc = gpt2_sampler_create(&params->sampler, c->n_vocab, &g->sampler, err)) != GPT2_OK) goto fail;
    g->tokens = malloc((size_t)c->n_ctx * sizeof(int32_t));
    g->logits = malloc((size_t)c->n_vocab * sizeof(float));
    g->scratch = malloc((size_t)c->n_vocab * sizeof(float));
    /* One token decodes to at most gpt2_decoder_max_output bytes; pending holds that plus
     * a held-back stop-sequence prefix, and one step releases at most all of pending. */
    g->cap_dec = gpt2_decoder_max_output(tok);
    g->cap_pending = g->cap_dec + g->stop_max;
    g->cap_out = g->cap_pending;
    g->dec = malloc(g->cap_dec);
    g->out = malloc(g->cap_out);
    g->pending = malloc(g->cap_pending);
    if (!g->tokens || !g->logits || !g->scratch || !g->out || !g->pending || !g->dec) {
        rc = gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (n_prompt) memcpy(g->tokens, prompt, n_prompt * sizeof(int32_t));
    else g->tokens[0] = eot;
    g->n_tokens = g->n_prompt = (int)n_run;
    gpt2_decoder_init(&g->decoder);
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
    if (g->n_tokens >= g->w->config.n_ctx) return GPT2_STOP_CONTEXT_FULL;
    return GPT2_STOP_NONE;
}

gpt2_err gpt2_generator_next(gpt2_generator *g, gpt2_piece *piece, gpt2_error *err) {
    if (!g || !piece) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_generator_next: NULL argument");
    piece->id = -1;
    piece->text = g->out;
    piece->len = 0;
    piece->stop = g->stop;
    if (g->stop != GPT2_STOP_NONE) return GPT2_OK;
    const gpt2_config *c = &g->w->config;
    gpt2_err rc;
    if (!g->started) {
        rc = gpt2_forward(g->state, g->tokens, g->n_tokens, g->logits, 0, err);
        if (rc != GPT2_OK) return rc;
        g->started = 1;
    }
    gpt2_stop_reason limit = limit_reached(g);
    if (limit != GPT2_STOP_NONE) {
        finish(g, piece, limit);
        return GPT2_OK;
    }

    memcpy(g->scratch, g->logits, (size_t)c->n_vocab * sizeof(float));
    int32_t id;
    rc = gpt2_sampler_sample(g->sampler, g->scratch, g->tokens, (size_t)g->n_tokens, &id, err);
    if (rc != GPT2_OK) return rc;
    piece->id = id;
    g->tokens[g->n_tokens++] = id;
    g->n_generated++;

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
    /* Run the new token now, so the next call samples at once. */
    return gpt2_forward(g->state, &id, 1, g->logits, 0, err);
}

int gpt2_generator_count(const gpt2_generator *g) { return g ? g->n_generated : 0; }
int gpt2_generator_prompt_tokens(const gpt2_generator *g) { return g ? g->n_prompt : 0; }
const float *gpt2_generator_logits(const gpt2_generator *g) { return g && g->started ? g->logits : NULL; }
