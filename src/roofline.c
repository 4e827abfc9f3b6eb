/* roofline.c - see roofline.h. */
#include "roofline.h"

#include "kernels.h"
#include "pool.h"

enum { MAX_SLICES = 256 };

typedef struct stream_job {
    const gpt2_weights *w; /* its pieces, read as if one after the other */
    size_t bytes;
    int slices;
    uint32_t sums[MAX_SLICES];
} stream_job;

static void stream_task(void *ctx, int i) {
    stream_job *j = ctx;
    /* slice boundaries on 64-byte lines (pieces are multiples of 64 bytes, weights.h) */
    size_t per = j->bytes / (size_t)j->slices;
    size_t a = (per * (size_t)i) & ~(size_t)63;
    size_t b = i + 1 == j->slices ? j->bytes : (per * (size_t)(i + 1)) & ~(size_t)63;
    uint32_t sum = 0;
    size_t at = 0; /* where the piece starts in the sequence */
    for (int p = 0; p < j->w->n_pieces && at < b; p++) {
        const gpt2_weights_piece *pc = &j->w->pieces[p];
        size_t lo = a > at ? a - at : 0, hi = b - at < pc->bytes ? b - at : pc->bytes;
        if (lo < hi) sum ^= k_read_bytes((const unsigned char *)pc->data + lo, hi - lo);
        at += pc->bytes;
    }
    j->sums[i] = sum;
}

uint32_t gpt2_weights_stream(const gpt2_weights *w) {
    if (!w || !w->n_pieces) return 0;
    int threads = gpt2_pool_threads(w->pool);
    stream_job job = {w, w->arena_bytes,
                      threads < 1 ? 1 : threads > MAX_SLICES ? MAX_SLICES : threads, {0}};
    gpt2_pool_run(w->pool, stream_task, &job, job.slices);
    uint32_t r = 0;
    for (int i = 0; i < job.slices; i++) r ^= job.sums[i];
    return r;
}
