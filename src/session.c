/* session.c - see session.h.
 *
 * Invariant: tokens[0..n_computed) are in the state's cache (gpt2_state_pos == n_computed),
 * tokens[n_computed..n_tokens) are pending, and when has_logits is set, logits holds the
 * logits after token n_computed-1.
 */
#include "session.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "score.h"

struct gpt2_session {
    const gpt2_weights *w;
    gpt2_state *state;
    int32_t *tokens; /* capacity n_ctx */
    int n_tokens, n_computed;
    int has_logits;
    float *logits; /* [n_vocab] */
    double computed; /* tokens run through the model */
};

void gpt2_session_free(gpt2_session *s) {
    if (!s) return;
    gpt2_state_free(s->state);
    free(s->tokens);
    free(s->logits);
    free(s);
}

/* Allocates the session struct and its buffers (no state). */
static gpt2_err session_alloc(const gpt2_weights *w, gpt2_session **out, gpt2_error *err) {
    const gpt2_config *c = &w->config;
    gpt2_session *s = calloc(1, sizeof *s);
    if (s) {
        s->w = w;
        s->tokens = malloc((size_t)c->n_ctx * sizeof(int32_t));
        s->logits = malloc((size_t)c->n_vocab * sizeof(float));
    }
    if (!s || !s->tokens || !s->logits) {
        gpt2_session_free(s);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory for a session");
    }
    *out = s;
    return GPT2_OK;
}

gpt2_err gpt2_session_create(const gpt2_weights *w, int max_batch, gpt2_session **out, gpt2_error *err) {
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_create: out is NULL");
    *out = NULL;
    if (!w) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_create: weights are NULL");
    gpt2_session *s = NULL;
    gpt2_err rc = session_alloc(w, &s, err);
    if (rc != GPT2_OK) return rc;
    if ((rc = gpt2_state_create(w, max_batch, &s->state, err)) != GPT2_OK) {
        gpt2_session_free(s);
        return rc;
    }
    *out = s;
    return GPT2_OK;
}

gpt2_err gpt2_session_clone(const gpt2_session *src, gpt2_session **out, gpt2_error *err) {
    if (!src || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_clone: NULL argument");
    *out = NULL;
    gpt2_session *s = NULL;
    gpt2_err rc = session_alloc(src->w, &s, err);
    if (rc != GPT2_OK) return rc;
    if ((rc = gpt2_state_clone(src->state, &s->state, err)) != GPT2_OK) {
        gpt2_session_free(s);
        return rc;
    }
    const gpt2_config *c = &src->w->config;
    memcpy(s->tokens, src->tokens, (size_t)src->n_tokens * sizeof(int32_t));
    memcpy(s->logits, src->logits, (size_t)c->n_vocab * sizeof(float));
    s->n_tokens = src->n_tokens;
    s->n_computed = src->n_computed;
    s->has_logits = src->has_logits;
    *out = s;
    return GPT2_OK;
}

int gpt2_session_pos(const gpt2_session *s) { return s ? s->n_tokens : 0; }
const int32_t *gpt2_session_tokens(const gpt2_session *s) { return s ? s->tokens : NULL; }
double gpt2_session_computed(const gpt2_session *s) { return s ? s->computed : 0; }
const gpt2_weights *gpt2_session_weights(const gpt2_session *s) { return s ? s->w : NULL; }
const float *gpt2_session_logits(const gpt2_session *s) { return s && s->has_logits ? s->logits : NULL; }
int gpt2_session_synced(const gpt2_session *s) { return s && s->has_logits && s->n_computed == s->n_tokens; }

/* Checks that ids[0..n) can be appended. */
static gpt2_err check_ids(const gpt2_session *s, const int32_t *ids, size_t n, gpt2_error *err) {
    const gpt2_config *c = &s->w->config;
    if (!ids && n) return gpt2_fail(err, GPT2_ERR_ARG, "session: ids is NULL");
    if (n > (size_t)(c->n_ctx - s->n_tokens))
        return gpt2_fail(err, GPT2_ERR_RANGE,
                         "the session holds %d tokens; %zu more would exceed the context of %d", s->n_tokens, n,
                         c->n_ctx);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->n_vocab)
            return gpt2_fail(err, GPT2_ERR_RANGE, "token id %d at index %zu is outside the vocabulary [0, %d)",
                             (int)ids[i], i, c->n_vocab);
    return GPT2_OK;
}

gpt2_err gpt2_session_push(gpt2_session *s, const int32_t *ids, size_t n, gpt2_error *err) {
    if (!s) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_push: session is NULL");
    gpt2_err rc = check_ids(s, ids, n, err);
    if (rc != GPT2_OK) return rc;
    if (n) memcpy(s->tokens + s->n_tokens, ids, n * sizeof(int32_t));
    s->n_tokens += (int)n;
    return GPT2_OK;
}

gpt2_err gpt2_session_sync(gpt2_session *s, gpt2_error *err) {
    if (!s) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_sync: session is NULL");
    int n = s->n_tokens - s->n_computed;
    if (n == 0 && (s->has_logits || s->n_computed == 0)) return GPT2_OK;
    if (n == 0) { /* after gpt2_session_cut: recompute the last token for its logits */
        gpt2_err rc = gpt2_state_rewind(s->state, s->n_computed - 1, err);
        if (rc != GPT2_OK) return rc;
        s->n_computed--;
        n = 1;
    }
    gpt2_err rc = gpt2_forward(s->state, s->tokens + s->n_computed, n, s->logits, 0, err);
    if (rc != GPT2_OK) return rc;
    s->n_computed += n;
    s->computed += n;
    s->has_logits = 1;
    return GPT2_OK;
}

gpt2_err gpt2_session_append(gpt2_session *s, const int32_t *ids, size_t n, float *logprobs, gpt2_error *err) {
    if (!s) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_append: session is NULL");
    gpt2_err rc = check_ids(s, ids, n, err);
    if (rc != GPT2_OK) return rc;
    if (!logprobs) {
        rc = gpt2_session_push(s, ids, n, err);
        return rc == GPT2_OK ? gpt2_session_sync(s, err) : rc;
    }
    /* Scored: the pending tokens first, then the new ones with every position's logits. */
    if ((rc = gpt2_session_sync(s, err)) != GPT2_OK) return rc;
    if (n == 0) return GPT2_OK;
    const int V = s->w->config.n_vocab;
    logprobs[0] = s->has_logits ? (float)gpt2_logprob_of(s->logits, V, ids[0], NULL) : NAN;
    enum { CHUNK = 32 }; /* positions whose logits are held at once */
    size_t rows = n < CHUNK ? n : CHUNK;
    float *buf = malloc(rows * (size_t)V * sizeof(float));
    if (!buf) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory for %zu x %d logits", rows, V);
    memcpy(s->tokens + s->n_tokens, ids, n * sizeof(int32_t));
    for (size_t done = 0; done < n;) {
        size_t step = n - done < rows ? n - done : rows;
        rc = gpt2_forward(s->state, ids + done, (int)step, buf, 1, err);
        if (rc != GPT2_OK) break;
        s->n_tokens += (int)step;
        s->n_computed += (int)step;
        s->computed += (double)step;
        for (size_t t = 0; t < step; t++)
            if (done + t + 1 < n)
                logprobs[done + t + 1] = (float)gpt2_logprob_of(buf + t * (size_t)V, V, ids[done + t + 1], NULL);
        memcpy(s->logits, buf + (step - 1) * (size_t)V, (size_t)V * sizeof(float));
        s->has_logits = 1;
        done += step;
    }
    free(buf);
    return rc;
}

gpt2_err gpt2_session_append_rows(gpt2_session *s, const int32_t *ids, size_t n, float *rows, gpt2_error *err) {
    if (!s || !rows) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_append_rows: NULL argument");
    gpt2_err rc = check_ids(s, ids, n, err);
    if (rc != GPT2_OK) return rc;
    if (s->n_tokens == 0)
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_append_rows: the session needs a token before ids");
    const size_t V = (size_t)s->w->config.n_vocab;
    int np = s->n_tokens - s->n_computed;
    if (np > 1) { /* every pending token but the last, without logits */
        if ((rc = gpt2_forward(s->state, s->tokens + s->n_computed, np - 1, NULL, 0, err)) != GPT2_OK) return rc;
        s->n_computed += np - 1;
        s->computed += np - 1;
        s->has_logits = 0;
        np = 1;
    }
    if (np == 0 && !s->has_logits) { /* logits of the last token unknown (cut): run it again */
        if ((rc = gpt2_state_rewind(s->state, s->n_computed - 1, err)) != GPT2_OK) return rc;
        s->n_computed--;
        np = 1;
    }
    memcpy(s->tokens + s->n_tokens, ids, n * sizeof(int32_t));
    if (np == 1) {
        rc = gpt2_forward(s->state, s->tokens + s->n_computed, (int)n + 1, rows, 1, err);
    } else {
        memcpy(rows, s->logits, V * sizeof(float));
        rc = n ? gpt2_forward(s->state, ids, (int)n, rows + V, 1, err) : GPT2_OK;
    }
    if (rc != GPT2_OK) return rc;
    s->n_tokens += (int)n;
    s->computed += (double)n + np;
    s->n_computed = s->n_tokens;
    memcpy(s->logits, rows + n * V, V * sizeof(float));
    s->has_logits = 1;
    return GPT2_OK;
}

/* Shortens the session to its first pos tokens (verb names the caller in the error). When the
 * cache holds rows past pos, it keeps rows [0, keep) (keep <= pos) and the logits are gone. */
static gpt2_err shorten(gpt2_session *s, int pos, int keep, const char *verb, gpt2_error *err) {
    if (pos < 0 || pos > s->n_tokens)
        return gpt2_fail(err, GPT2_ERR_RANGE, "cannot %s to position %d (the session holds %d tokens)", verb, pos,
                         s->n_tokens);
    if (s->n_computed > pos) {
        gpt2_err rc = gpt2_state_rewind(s->state, keep, err);
        if (rc != GPT2_OK) return rc;
        s->n_computed = keep;
        s->has_logits = 0;
    }
    s->n_tokens = pos;
    return GPT2_OK;
}

gpt2_err gpt2_session_cut(gpt2_session *s, int pos, gpt2_error *err) {
    if (!s) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_cut: session is NULL");
    return shorten(s, pos, pos, "cut", err);
}

gpt2_err gpt2_session_slide(gpt2_session *s, int keep, gpt2_error *err) {
    if (!s) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_slide: session is NULL");
    if (keep < 1 || keep > s->n_tokens)
        return gpt2_fail(err, GPT2_ERR_RANGE, "cannot keep %d tokens (the session holds %d)", keep, s->n_tokens);
    gpt2_err rc = gpt2_state_rewind(s->state, 0, err);
    if (rc != GPT2_OK) return rc;
    memmove(s->tokens, s->tokens + (s->n_tokens - keep), (size_t)keep * sizeof(int32_t));
    s->n_tokens = keep;
    s->n_computed = 0;
    s->has_logits = 0;
    return GPT2_OK;
}

gpt2_err gpt2_session_rewind(gpt2_session *s, int pos, gpt2_error *err) {
    if (!s) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_session_rewind: session is NULL");
    /* The logits after token pos-1 are gone: that token is recomputed next time. */
    return shorten(s, pos, pos > 0 ? pos - 1 : 0, "rewind", err);
}
