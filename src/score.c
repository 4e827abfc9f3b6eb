/* score.c - see score.h. */
#include "score.h"

#include <math.h>
#include <stdlib.h>

#include "model.h"

/* log softmax(x)[target] = x[target] - max - log(sum_j exp(x[j] - max)) */
double gpt2_logprob_of(const float *logits, int n, int32_t target, int32_t *rank) {
    float mx = logits[0];
    for (int j = 1; j < n; j++)
        if (logits[j] > mx) mx = logits[j];
    double sum = 0.0;
    int32_t above = 0;
    for (int j = 0; j < n; j++) {
        sum += exp((double)logits[j] - (double)mx);
        if (logits[j] > logits[target]) above++;
    }
    if (rank) *rank = above;
    return (double)logits[target] - (double)mx - log(sum);
}

void gpt2_top_logprobs(const float *logits, int n, int k, int32_t *top_ids, float *top_logprobs) {
    if (k <= 0 || n <= 0) return;
    if (k > n) k = n;
    /* Insertion into a list kept sorted (best first): ids are visited in ascending order,
     * so a later id with an equal logit ranks after the earlier ones. */
    int filled = 0;
    for (int j = 0; j < n; j++) {
        float v = logits[j];
        if (filled == k && !(v > logits[top_ids[k - 1]])) continue;
        int at = filled < k ? filled++ : k - 1;
        while (at > 0 && v > logits[top_ids[at - 1]]) {
            top_ids[at] = top_ids[at - 1];
            at--;
        }
        top_ids[at] = j;
    }
    if (!top_logprobs) return;
    float mx = logits[top_ids[0]];
    double sum = 0.0;
    for (int j = 0; j < n; j++) sum += exp((double)logits[j] - (double)mx);
    double lse = log(sum);
    for (int j = 0; j < k; j++) top_logprobs[j] = (float)((double)logits[top_ids[j]] - (double)mx - lse);
}

gpt2_err gpt2_score(const gpt2_weights *w, const int32_t *ids, size_t n, float *logprobs, int32_t *ranks,
                    gpt2_error *err) {
    return gpt2_score_topk(w, ids, n, 0, logprobs, ranks, NULL, NULL, err);
}

gpt2_err gpt2_score_topk(const gpt2_weights *w, const int32_t *ids, size_t n, int k, float *logprobs,
                         int32_t *ranks, int32_t *top_ids, float *top_logprobs, gpt2_error *err) {
    if (!w || !ids) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_score: NULL argument");
    const gpt2_config *c = &w->config;
    if (k < 0 || k > c->n_vocab)
        return gpt2_fail(err, GPT2_ERR_ARG, "the number of alternatives must be in [0, %d], got %d", c->n_vocab, k);
    if (k > 0 && (!top_ids || !top_logprobs)) {
        if (!top_ids && !top_logprobs) k = 0;
        else return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_score_topk: top_ids and top_logprobs must both be given");
    }
    if (n < 1) return gpt2_fail(err, GPT2_ERR_ARG, "nothing to score: the text has no tokens");
    if (n > (size_t)c->n_ctx)
        return gpt2_fail(err, GPT2_ERR_RANGE, "the text has %zu tokens but the context holds only %d", n,
                         c->n_ctx);
    enum { CHUNK = 32 }; /* positions whose logits are held at once */
    gpt2_state *s = NULL;
    gpt2_err rc = gpt2_state_create(w, CHUNK, &s, err);
    if (rc != GPT2_OK) return rc;
    float *logits = malloc((size_t)CHUNK * (size_t)c->n_vocab * sizeof(float));
    if (!logits) {
        gpt2_state_free(s);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory for %d x %d logits", CHUNK, c->n_vocab);
    }
    /* Positions 0..n-2 predict tokens 1..n-1. */
    for (size_t done = 0; done + 1 < n && rc == GPT2_OK;) {
        size_t step = n - 1 - done < CHUNK ? n - 1 - done : CHUNK;
        rc = gpt2_forward(s, ids + done, (int)step, logits, 1, err);
        for (size_t t = 0; t < step && rc == GPT2_OK; t++) {
            int32_t rank;
            double lp = gpt2_logprob_of(logits + t * (size_t)c->n_vocab, c->n_vocab, ids[done + t + 1], &rank);
            if (logprobs) logprobs[done + t] = (float)lp;
            if (ranks) ranks[done + t] = rank;
            if (k > 0) {
                /* The alternatives' log-probabilities from the target's: same max and sum. */
                const float *row = logits + t * (size_t)c->n_vocab;
                int32_t *ti = top_ids + (done + t) * (size_t)k;
                float *tl = top_logprobs + (done + t) * (size_t)k;
                gpt2_top_logprobs(row, c->n_vocab, k, ti, NULL);
                double target = (double)row[ids[done + t + 1]];
                for (int j = 0; j < k; j++) tl[j] = (float)(lp + ((double)row[ti[j]] - target));
            }
        }
        done += step;
    }
    if (rc == GPT2_OK && n == 1) {
        /* still validate the single id */
        if (ids[0] < 0 || ids[0] >= c->n_vocab)
            rc = gpt2_fail(err, GPT2_ERR_RANGE, "token id %d is outside the vocabulary [0, %d)", (int)ids[0],
                           c->n_vocab);
    }
    free(logits);
    gpt2_state_free(s);
    return rc;
}
