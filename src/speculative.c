/* speculative.c - see speculative.h.
 *
 * One round (Leviathan et al. 2023, Chen et al. 2023, "speculative sampling"): with q_i the
 * draft's processed distribution after the first i proposals and p_i the big model's,
 *   draft:  d_i ~ q_i for i < kp (argmax when greedy)
 *   big:    one batched pass gives p_0..p_kp
 *   accept: d_i with probability min(1, p_i(d_i) / q_i(d_i)), in order, while accepted;
 *   reject: the first rejected position draws from max(0, p_i - q_i) (normalised);
 *   all:    after kp accepted proposals, one more token from p_kp.
 * Every emitted token then has exactly the big model's distribution given the tokens
 * before it. Greedy distributions are one-hot: the rule reduces to "keep the proposals
 * that equal the big model's argmax, then its argmax", and no random number is drawn
 * (a ratio of 0 or 1 decides without one).
 */
#include "speculative.h"

#include <stdlib.h>
#include <string.h>

#include "sampler.h"

struct gpt2_speculative {
    gpt2_session *big, *draft;
    int k, n_vocab;
    float *rows;   /* [k+1][n_vocab] the big model's logits of one round */
    double *q;     /* [k][n_vocab] the draft's distributions of one round */
    double *p;     /* [n_vocab] one distribution of the big model, then the residual */
    int32_t *hist; /* [n_ctx] the tokens before a position (the big session's, then proposals) */
    gpt2_speculative_policy policy;
    gpt2_speculative_stats stats;
};

/* The default policy: greedy, a one-hot at the argmax (ties to the lowest id). */
static gpt2_err greedy_dist(void *ctx, const float *logits, const int32_t *tokens, int n_tokens, double *probs,
                            gpt2_error *err) {
    (void)tokens;
    (void)n_tokens;
    const int V = *(const int *)ctx;
    int a = gpt2_argmax(logits, V);
    if (a < 0) return gpt2_fail(err, GPT2_ERR_RANGE, "every logit is NaN");
    memset(probs, 0, (size_t)V * sizeof *probs);
    probs[a] = 1.0;
    return GPT2_OK;
}

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
    const size_t V = (size_t)cb->n_vocab;
    gpt2_speculative *sp = calloc(1, sizeof *sp);
    if (sp) {
        sp->rows = malloc((size_t)(k + 1) * V * sizeof(float));
        sp->q = malloc((size_t)k * V * sizeof(double));
        sp->p = malloc(V * sizeof(double));
        sp->hist = malloc((size_t)cb->n_ctx * sizeof(int32_t));
    }
    if (!sp || !sp->rows || !sp->q || !sp->p || !sp->hist) {
        gpt2_speculative_free(sp);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory for %d rows of logits", k + 1);
    }
    sp->big = big;
    sp->draft = draft;
    sp->k = k;
    sp->n_vocab = cb->n_vocab;
    gpt2_speculative_set_policy(sp, NULL);
    *out = sp;
    return GPT2_OK;
}

void gpt2_speculative_set_policy(gpt2_speculative *sp, const gpt2_speculative_policy *policy) {
    if (!sp) return;
    if (policy && policy->dist) {
        sp->policy = *policy;
        return;
    }
    sp->policy.dist = greedy_dist;
    sp->policy.uniform = NULL;
    sp->policy.ctx = &sp->n_vocab;
}

void gpt2_speculative_free(gpt2_speculative *sp) {
    if (!sp) return;
    free(sp->rows);
    free(sp->q);
    free(sp->p);
    free(sp->hist);
    free(sp);
}

gpt2_speculative_stats gpt2_speculative_get_stats(const gpt2_speculative *sp) {
    gpt2_speculative_stats z = {0, 0, 0};
    return sp ? sp->stats : z;
}

/* A token drawn from weights w (not all zero): the inverse CDF at a uniform number of the
 * policy, or, for a greedy policy (one-hot weights), the token with the largest weight. */
static gpt2_err draw(const gpt2_speculative *sp, const double *w, int V, int32_t *id, gpt2_error *err) {
    int32_t t = -1;
    if (sp->policy.uniform) {
        t = gpt2_draw_index(w, V, sp->policy.uniform(sp->policy.ctx));
    } else {
        double best = 0.0;
        for (int i = 0; i < V; i++)
            if (w[i] > best) best = w[i], t = i;
    }
    if (t < 0) return gpt2_fail(err, GPT2_ERR_RANGE, "no token has a non-zero probability");
    *id = t;
    return GPT2_OK;
}

/* The big session's tokens into sp->hist (the history of a round's first position). */
static int big_history(gpt2_speculative *sp) {
    int n = gpt2_session_pos(sp->big);
    memcpy(sp->hist, gpt2_session_tokens(sp->big), (size_t)n * sizeof(int32_t));
    return n;
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
    const gpt2_speculative_policy *pol = &sp->policy;
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
    big_history(sp);
    if (k <= 0) { /* a plain step of the big model */
        if ((rc = gpt2_session_sync(big, err)) != GPT2_OK) return rc;
        if ((rc = pol->dist(pol->ctx, gpt2_session_logits(big), sp->hist, pos, sp->p, err)) != GPT2_OK) return rc;
        if ((rc = draw(sp, sp->p, V, &out[0], err)) != GPT2_OK) return rc;
        if ((rc = gpt2_session_push(big, out, 1, err)) != GPT2_OK) return rc;
        *n_out = 1;
        sp->stats.rounds++;
        return GPT2_OK;
    }
    if ((rc = align_draft(sp, err)) != GPT2_OK) return rc;
    int32_t *d = sp->hist + pos; /* the proposals follow the history */
    int kp = 0;
    while (kp < k) {
        double *q = sp->q + (size_t)kp * (size_t)V;
        if ((rc = gpt2_session_sync(sp->draft, err)) != GPT2_OK) return rc;
        if ((rc = pol->dist(pol->ctx, gpt2_session_logits(sp->draft), sp->hist, pos + kp, q, err)) != GPT2_OK)
            return rc;
        if ((rc = draw(sp, q, V, &d[kp], err)) != GPT2_OK) return rc;
        if ((rc = gpt2_session_push(sp->draft, &d[kp], 1, err)) != GPT2_OK) return rc;
        if (d[kp++] == eot) break; /* nothing after the end of the text is needed */
    }
    /* The big model checks every proposal in one pass. */
    if ((rc = gpt2_session_append_rows(big, d, (size_t)kp, sp->rows, err)) != GPT2_OK) return rc;
    int m = 0; /* proposals accepted */
    int32_t own = -1;
    for (;; m++) {
        double *p = sp->p;
        if ((rc = pol->dist(pol->ctx, sp->rows + (size_t)m * (size_t)V, sp->hist, pos + m, p, err)) != GPT2_OK)
            return rc;
        if (m == kp) { /* every proposal held: one more token from the big model */
            if ((rc = draw(sp, p, V, &own, err)) != GPT2_OK) return rc;
            break;
        }
        const double *q = sp->q + (size_t)m * (size_t)V;
        const double ratio = p[d[m]] / q[d[m]]; /* q[d[m]] > 0: d[m] was drawn from q */
        int accept = ratio >= 1.0;
        if (!accept && ratio > 0.0) {
            if (!pol->uniform) return gpt2_fail(err, GPT2_ERR_ARG, "a greedy policy gave a distribution that is not one-hot");
            accept = pol->uniform(pol->ctx) < ratio;
        }
        if (accept) continue;
        /* Rejected: the residual max(0, p - q), or p itself if rounding left nothing of it. */
        double mass = 0.0;
        for (int i = 0; i < V; i++) {
            double r = p[i] - q[i];
            p[i] = r > 0.0 ? r : 0.0;
            mass += p[i];
        }
        if (!(mass > 0.0) &&
            (rc = pol->dist(pol->ctx, sp->rows + (size_t)m * (size_t)V, sp->hist, pos + m, p, err)) != GPT2_OK)
            return rc;
        if ((rc = draw(sp, p, V, &own, err)) != GPT2_OK) return rc;
        break;
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
