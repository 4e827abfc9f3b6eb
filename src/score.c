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

gpt2_err gpt2_score(const gpt2_weights *w, const int32_t *ids, size_t n, float *logprobs, int32_t *ranks,
                    gpt2_error *err) {
    if (!w || !ids) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_score: NULL argument");
    const gpt2_config *c = &w->config;
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
