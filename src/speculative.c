/* speculative.c - see speculative.h. */
#include "speculative.h"

#include <stdlib.h>
#include <string.h>

#include "sampler.h"

struct gpt2_speculative {
    gpt2_session *big, *draft;
    int k;
    float *rows; /* [k+1][n_vocab] the big model's logits of one round */
    gpt2_speculative_stats stats;
};

gpt2_err gpt2_speculative_create(gpt2_session *big, gpt2_session *draft, int k, gpt2_speculative **out,
                                 gpt2_error *err) {
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_speculative_create: out is NULL");
    *out = NULL;
    if (!big || !draft) return gpt2_fail(err, GPT2_ERR_ARG, "speculative decoding needs a big and a draft session");
    if (big == draft) return gpt2_fail(err, GPT2_ERR_ARG, "the draft session must differ from the big one");
    if (k < 1 || k > GPT2_SPECULATIVE_MAX_K)
        return gpt2_fail(err, GPT2_ERR_ARG, "draft tokens per round must be from 1 to %d, got %d",
                         GPT2_SPECULATIVE_MAX_K, k);
    const gpt2_config *cb = &gpt2_session_weights(big)->config, *cd = &gpt2_session_weights(draft)->config;
    if (cb->n_vocab != cd->n_vocab)
        return gpt2_fail(err, GPT2_ERR_SHAPE, "the draft model has %d tokens in its vocabulary, the big model %d",
                         cd->n_vocab, cb->n_vocab);
    gpt2_speculative *sp = calloc(1, sizeof *sp);
    if (sp) sp->rows = malloc((size_t)(k + 1) * (size_t)cb->n_vocab * sizeof(float));
    if (!sp || !sp->rows) {
        gpt2_speculative_free(sp);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory for %d rows of logits", k + 1);
    }
    sp->big = big;
    sp->draft = draft;
    sp->k = k;
    *out = sp;
    return GPT2_OK;
}

void gpt2_speculative_free(gpt2_speculative *sp) {
    if (!sp) return;
    free(sp->rows);
    free(sp);
}

gpt2_speculative_stats gpt2_speculative_get_stats(const gpt2_speculative *sp) {
    gpt2_speculative_stats z = {0, 0, 0};
    return sp ? sp->stats : z;
}

/* argmax of logits, or an error when every entry is NaN. */
static gpt2_err pick(const float *logits, int V, int32_t *id, gpt2_error *err) {
    int a = gpt2_argmax(logits, V);
    if (a < 0) return gpt2_fail(err, GPT2_ERR_RANGE, "every logit is NaN");
    *id = a;
    return GPT2_OK;
}

/* Makes the draft session hold the big session's tokens (cuts where they differ). */
static gpt2_err align_draft(gpt2_speculative *sp, gpt2_error *err) {
    const int32_t *tb = gpt2_session_tokens(sp->big), *td = gpt2_session_tokens(sp->draft);
    int nb = gpt2_session_pos(sp->big), nd = gpt2_session_pos(sp->draft);
    int c = 0;
    while (c < nb && c < nd && tb[c] == td[c]) c++;
    gpt2_err rc = GPT2_OK;
    if (c < nd) rc = gpt2_session_cut(sp->draft, c, err);
    if (rc == GPT2_OK && c < nb) rc = gpt2_session_push(sp->draft, tb + c, (size_t)(nb - c), err);
    return rc;
}

gpt2_err gpt2_speculative_step(gpt2_speculative *sp, int max_tokens, int32_t eot, int32_t *out, int *n_out,
                               gpt2_error *err) {
    if (!sp || !out || !n_out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_speculative_step: NULL argument");
    *n_out = 0;
    if (max_tokens < 1) return gpt2_fail(err, GPT2_ERR_ARG, "max_tokens must be >= 1, got %d", max_tokens);
    gpt2_session *big = sp->big;
    const int V = gpt2_session_weights(big)->config.n_vocab, n_ctx = gpt2_session_weights(big)->config.n_ctx;
    const int pos = gpt2_session_pos(big);
    if (pos == 0) return gpt2_fail(err, GPT2_ERR_ARG, "the big session is empty (start it with a prompt)");
    if (pos >= n_ctx) return gpt2_fail(err, GPT2_ERR_RANGE, "the context of %d tokens is full", n_ctx);
    /* Proposals this round: the emitted tokens (k+1 at most) must fit max_tokens and the context. */
    int k = sp->k;
    if (k > max_tokens - 1) k = max_tokens - 1;
    if (k > n_ctx - pos - 1) k = n_ctx - pos - 1;
    const int draft_ctx = gpt2_session_weights(sp->draft)->config.n_ctx; /* a shorter draft stops proposing */
    if (k > draft_ctx - pos) k = draft_ctx - pos;
    gpt2_err rc;
    if (k <= 0) { /* a plain greedy step */
        if ((rc = gpt2_session_sync(big, err)) != GPT2_OK) return rc;
        if ((rc = pick(gpt2_session_logits(big), V, &out[0], err)) != GPT2_OK) return rc;
        if ((rc = gpt2_session_push(big, out, 1, err)) != GPT2_OK) return rc;
        *n_out = 1;
        sp->stats.rounds++;
        return GPT2_OK;
    }
    if ((rc = align_draft(sp, err)) != GPT2_OK) return rc;
    int32_t d[GPT2_SPECULATIVE_MAX_K + 1];
    int kp = 0;
    while (kp < k) {
        if ((rc = gpt2_session_sync(sp->draft, err)) != GPT2_OK) return rc;
        if ((rc = pick(gpt2_session_logits(sp->draft), V, &d[kp], err)) != GPT2_OK) return rc;
        if ((rc = gpt2_session_push(sp->draft, &d[kp], 1, err)) != GPT2_OK) return rc;
        if (d[kp++] == eot) break; /* nothing after the end of the text is needed */
    }
    /* The big model checks every proposal in one pass. */
    if ((rc = gpt2_session_append_rows(big, d, (size_t)kp, sp->rows, err)) != GPT2_OK) return rc;
    int m = 0;
    int32_t own = -1;
    for (;;) {
        if ((rc = pick(sp->rows + (size_t)m * (size_t)V, V, &own, err)) != GPT2_OK) return rc;
        if (m == kp || own != d[m]) break;
        m++;
    }
    /* Emitted: d[0..m) then own, ending at the first eot. */
    int n = 0;
    while (n < m && d[n] != eot) out[n] = d[n], n++;
    int accepted = n;
    if (n < m) out[n] = d[n], n++; /* d[n] == eot, counted as the big model's own token */
    else out[n++] = own;
    /* Both sessions keep the accepted proposals and get the last token uncomputed. */
    int keep = pos + (n - 1);
    if ((rc = gpt2_session_cut(big, keep, err)) != GPT2_OK) return rc;
    if ((rc = gpt2_session_push(big, &out[n - 1], 1, err)) != GPT2_OK) return rc;
    if ((rc = gpt2_session_cut(sp->draft, keep, err)) != GPT2_OK) return rc;
    if ((rc = gpt2_session_push(sp->draft, &out[n - 1], 1, err)) != GPT2_OK) return rc;
    sp->stats.proposed += kp;
    sp->stats.accepted += accepted;
    sp->stats.rounds++;
    *n_out = n;
    return GPT2_OK;
}
