/* train.h - fine-tuning: the backward pass of the model model.c runs, AdamW / SGD, and the
 * deterministic data feeding, in float32.
 *
 * A gpt2_train holds float32 copies of every parameter (f16 and q8_0 weights are up-converted
 * exactly), their gradients, AdamW's two moments (AdamW only) and the activations of one
 * micro-batch of B sequences of T tokens. Matrices are kept row-major [out, in] (the model's
 * W, transposed from Hugging Face's Conv1D [in, out]); nothing else is transposed.
 *
 * Model (as model.c): x = wte[id] + wpe[pos]; per block a = LN1(x), qkv = a Wqkv^T + b,
 * causal softmax(q k^T / sqrt(D)) v per head, x += y Wproj^T + b, x += gelu_new(LN2(x) Wfc^T
 * + b) Wmp^T + b; logits = LNf(x) Whead^T with Whead = wte when the head is tied (wte then
 * receives both gradients) or a separate lm_head parameter otherwise.
 *
 * Loss: the mean over the unmasked targets of -log softmax(logits)[target] (with no mask,
 * the mean over B*T targets). A step of grad_accum micro-batches averages their gradients.
 *
 * Data (gpt2_train_set_data): the token ids of the text (tokenized once, plain text). Window
 * i is tokens [i*T, i*T + T + 1) (inputs the first T, targets the last T; consecutive windows
 * share one token); there are floor((N - 1) / T) windows. Micro-batch k (0 <= k < grad_accum)
 * of step s uses, for b < B, window order[((s*grad_accum + k)*B + b) mod nWindows], where
 * order is the identity (shuffle off) or a permutation drawn once by Fisher-Yates (i from
 * nWindows-1 down to 1 swaps i with j = bounded(i + 1)) from the project's PCG32 (sampler.h)
 * seeded with (seed, GPT2_TRAIN_PCG_STREAM); bounded(n) draws r until r >= 2^32 mod n and
 * returns r mod n (unbiased, as pcg32_boundedrand_r).
 *
 * Optimisers (lr_s = the step's learning rate, see gpt2_train_lr):
 *   gradients first clipped by global norm: if grad_clip > 0 and ||g|| > grad_clip,
 *   g *= grad_clip / ||g|| (||g|| over every parameter, summed in double in a fixed order);
 *   AdamW (PyTorch's): w -= lr_s*wd*w (decayed tensors only), m = b1 m + (1-b1) g,
 *   v = b2 v + (1-b2) g^2, w -= lr_s * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps), t = step+1;
 *   SGD: w -= lr_s * (g + wd*w) (wd only on decayed tensors; no momentum).
 * Weight decay applies to the linear matrices (qkv, attention projection, fc, MLP projection,
 * a separate lm_head) and wte only; never to wpe, biases or layer norms.
 *
 * Threads: the work is split over the pool (pool.h) by output rows, like the forward pass;
 * every value is computed by one task with a fixed order of summation, so results are
 * bit-identical with any number of threads, natively and in WASM.
 *
 * Every function returning gpt2_err fills err (may be NULL) on failure and, unless said
 * otherwise, changes nothing on failure.
 */
#ifndef GPT2_TRAIN_H
#define GPT2_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "weights.h"

#define GPT2_TRAIN_PCG_STREAM 116u /* PCG32 initseq of the shuffle ('t') */

typedef enum gpt2_optimizer { GPT2_OPTIM_ADAMW = 0, GPT2_OPTIM_SGD = 1 } gpt2_optimizer;
typedef enum gpt2_lr_schedule { GPT2_SCHEDULE_CONSTANT = 0, GPT2_SCHEDULE_COSINE = 1 } gpt2_lr_schedule;

typedef struct gpt2_train_options {
    int batch;                  /* B >= 1 sequences per micro-batch (default 4) */
    int seq;                    /* T in [1, n_ctx] tokens per sequence (default 64) */
    int grad_accum;             /* micro-batches per optimiser step, >= 1 (default 1) */
    gpt2_optimizer optimizer;   /* default AdamW */
    float lr;                   /* > 0 (default 1e-4) */
    float beta1, beta2;         /* in [0, 1) (defaults 0.9, 0.999) */
    float eps;                  /* > 0 (default 1e-8) */
    float weight_decay;         /* >= 0 (default 0; AdamW users typically pass 0.01 .. 0.1) */
    float grad_clip;            /* >= 0; 0 = no clipping (default 1.0) */
    int warmup;                 /* >= 0 steps of linear warm-up: lr * (s+1) / warmup (default 0) */
    gpt2_lr_schedule schedule;  /* after warm-up: constant, or cosine from lr to 0 at total_steps */
    int total_steps;            /* >= 1 when schedule is cosine (default 0) */
    int shuffle;                /* 0 = windows in order; else shuffled with seed */
    uint64_t seed;
} gpt2_train_options;

/* Fills o with the defaults above. */
void gpt2_train_options_default(gpt2_train_options *o);

/* Checks every option against config (GPT2_ERR_ARG / GPT2_ERR_RANGE naming the option). */
gpt2_err gpt2_train_options_check(const gpt2_train_options *o, const gpt2_config *config, gpt2_error *err);

/* Bytes gpt2_train_create allocates for a model of this config (untied_head: a separate
 * lm_head), the optimiser and B x T (params + grads [+ two moments] + activations + scratch);
 * UINT64_MAX on overflow or invalid sizes. The loaded model's own weights are not included. */
uint64_t gpt2_train_bytes(const gpt2_config *config, int untied_head, gpt2_optimizer opt, int batch, int seq);

typedef struct gpt2_train gpt2_train;

/* Checks the options, then that gpt2_train_bytes fits memory_budget_bytes (0 = unlimited;
 * else GPT2_ERR_NOMEM naming the batch x seq that would fit), then allocates the state and
 * copies w's parameters into it as float32. w is only read (and may be freed afterwards). */
gpt2_err gpt2_train_create(const gpt2_weights *w, const gpt2_train_options *o, uint64_t memory_budget_bytes,
                           gpt2_train **out, gpt2_error *err);

/* Releases a training state (NULL is allowed). */
void gpt2_train_free(gpt2_train *t);

/* Runs the work on a pool (not owned; NULL = the calling thread). */
struct gpt2_pool;
void gpt2_train_set_pool(gpt2_train *t, struct gpt2_pool *pool);

/* Sets the training tokens (copied). Fails with GPT2_ERR_ARG for no tokens or fewer than
 * seq + 1 ("shorter than one window"), GPT2_ERR_RANGE for an id outside the vocabulary. */
gpt2_err gpt2_train_set_data(gpt2_train *t, const int32_t *ids, size_t n, gpt2_error *err);

/* Windows of the current data (0 before gpt2_train_set_data). */
size_t gpt2_train_windows(const gpt2_train *t);

/* The window micro-batch k of step s uses for sequence b (see the top of this file). */
size_t gpt2_train_window_of(const gpt2_train *t, int64_t step, int k, int b);

/* Learning rate of step s (0-based) under the options' warm-up and schedule. */
float gpt2_train_lr(const gpt2_train *t, int64_t step);

/* Forward and backward over n_seq <= B sequences of T tokens (inputs, targets [n_seq][T];
 * mask [n_seq][T] of 0/1, or NULL = every target counts): *loss = the mean loss over the
 * counted targets, and grads += weight * d(loss)/d(params). Fails for bad ids, an all-zero
 * mask, or a non-finite loss (GPT2_ERR_RANGE; the gradients are then left as they were). */
gpt2_err gpt2_train_forward_backward(gpt2_train *t, const int32_t *inputs, const int32_t *targets,
                                     const uint8_t *mask, int n_seq, float weight, float *loss, gpt2_error *err);

/* The mean loss over n_seq <= B sequences (forward only; gradients untouched). */
gpt2_err gpt2_train_loss(gpt2_train *t, const int32_t *inputs, const int32_t *targets, const uint8_t *mask,
                         int n_seq, float *loss, gpt2_error *err);

/* Sets every gradient to zero. */
void gpt2_train_zero_grad(gpt2_train *t);

/* Clips the gradients, applies one optimiser step with learning rate lr (> 0) and zeroes the
 * gradients; *grad_norm (may be NULL) gets the norm before clipping. Refuses (GPT2_ERR_RANGE,
 * parameters unchanged, gradients zeroed) when the gradient norm is not finite. */
gpt2_err gpt2_train_update(gpt2_train *t, float lr, float *grad_norm, gpt2_error *err);

typedef struct gpt2_train_stats {
    int64_t step;     /* steps done, this one included */
    float loss;       /* mean over the step's micro-batches */
    float grad_norm;  /* before clipping */
    float lr;
} gpt2_train_stats;

/* One step on the data: grad_accum micro-batches fed as documented above, then
 * gpt2_train_update with gpt2_train_lr(step). Fails before any work without data; on a
 * non-finite loss or gradient nothing changes (GPT2_ERR_RANGE). */
gpt2_err gpt2_train_step(gpt2_train *t, gpt2_train_stats *stats, gpt2_error *err);

/* Mean loss over every window of ids (windows as for training: floor((n-1)/T) of them, B at a
 * time); a held-out evaluation. GPT2_ERR_ARG when ids hold less than one window. */
gpt2_err gpt2_train_evaluate(gpt2_train *t, const int32_t *ids, size_t n, float *loss, gpt2_error *err);

/* Steps done so far, and setting it (resuming: the step counts the bias correction and the
 * data position). */
int64_t gpt2_train_step_count(const gpt2_train *t);
void gpt2_train_set_step_count(gpt2_train *t, int64_t step);

/* The parameter tensors, in a fixed order: wte, wpe, then per layer ln_1.{weight,bias},
 * attn.c_attn.{weight,bias}, attn.c_proj.{weight,bias}, ln_2.{weight,bias}, mlp.c_fc.{weight,
 * bias}, mlp.c_proj.{weight,bias}, then ln_f.{weight,bias} and lm_head.weight when untied.
 * Names are Hugging Face's (without "transformer."); rows x cols as stored here (matrices
 * [out, in]; vectors rows 1). */
typedef struct gpt2_train_tensor {
    char name[48];
    int rows, cols;
    size_t offset; /* in floats, into the params / grads / moments arrays */
    int decay;     /* weight decay applies */
    int conv1d;    /* a Conv1D weight: Hugging Face stores its transpose */
} gpt2_train_tensor;

int gpt2_train_tensor_count(const gpt2_train *t);

/* The same table for a model of this config without a training state: fills tab (may be NULL)
 * and returns the number of tensors (0 for an invalid config). Offsets are in floats of a
 * packed float32 copy of every parameter. */
int gpt2_train_tensor_table(const gpt2_config *config, int untied_head, gpt2_train_tensor *tab);

/* Where tensor i of the table lives in w: *m for a matrix (wte, the linear weights, a separate
 * lm_head), else *f for a float32 vector or wpe. */
void gpt2_weights_tensor(gpt2_weights *w, int i, const gpt2_matrix **m, float **f);
const gpt2_train_tensor *gpt2_train_tensor_at(const gpt2_train *t, int i);

/* The float arrays (each of gpt2_train_param_count floats, laid out by the tensor table):
 * 0 = params, 1 = grads, 2 = AdamW m, 3 = AdamW v (NULL for SGD). Writable, for checkpoints. */
float *gpt2_train_array(gpt2_train *t, int which);
size_t gpt2_train_param_count(const gpt2_train *t);

/* Writes the trained parameters into w (same config and head tying as the weights the state
 * was created from) in w's storage precision: f32 exactly, f16 rounded to nearest even, q8_0
 * re-quantized by quantize.h's rule. */
gpt2_err gpt2_train_write_back(const gpt2_train *t, gpt2_weights *w, gpt2_error *err);

/* The model's configuration, whether its head is tied to wte, and the options in use. */
const gpt2_config *gpt2_train_config(const gpt2_train *t);
int gpt2_train_tied_head(const gpt2_train *t);
const gpt2_train_options *gpt2_train_options_of(const gpt2_train *t);

/* ---- saving (train_io.c) ---- */

/* Bytes of the model.safetensors gpt2_train_write_safetensors writes (0 for a dtype other than
 * F32 / F16). */
uint64_t gpt2_train_safetensors_size(gpt2_train *t, gpt2_dtype dtype);

/* Writes the trained parameters as a Hugging Face GPT-2 model.safetensors into buf (cap bytes,
 * at least gpt2_train_safetensors_size): names as in the tensor table (lm_head.weight only when
 * untied), Conv1D weights transposed back to [in, out], F32 (exact) or F16 (the matrices wte,
 * lm_head and the linear weights rounded to nearest even; wpe, biases and layer norms stay F32,
 * as the model holds them, so an f16 model saves and loads back exactly); header sorted by name after {"__metadata__":{"format":"pt"}}, padded with spaces to a
 * multiple of 8 bytes, data in the header's order. */
gpt2_err gpt2_train_write_safetensors(gpt2_train *t, gpt2_dtype dtype, uint8_t *buf, uint64_t cap, gpt2_error *err);

/* The same file from a model's weights (any storage precision; values read exactly with
 * gpt2_matrix_get): what saving a model fine-tuned in memory (after gpt2_train_write_back)
 * writes. For an f32 model it equals the training state's file byte for byte. */
uint64_t gpt2_weights_safetensors_size(gpt2_weights *w, gpt2_dtype dtype);
gpt2_err gpt2_weights_write_safetensors(gpt2_weights *w, gpt2_dtype dtype, uint8_t *buf, uint64_t cap,
                                        gpt2_error *err);

/* config.json text for a model of config c (tied_head: no separate lm_head), as below. */
size_t gpt2_config_json(const gpt2_config *c, int tied_head, gpt2_dtype dtype, char *buf, size_t cap);

/* The config.json text of the trained model (torch_dtype float32 or float16) into buf (may be
 * NULL); returns its length (snprintf's convention: buf holds it when the length < cap). */
size_t gpt2_train_config_json(const gpt2_train *t, gpt2_dtype dtype, char *buf, size_t cap);

/* The resumable checkpoint: "GPT2TRN1", u32 version 2, u32 optimizer, i64 steps done, u64
 * parameter count, eight i32 (n_vocab, n_ctx, n_embd, n_head, n_layer, n_inner, tied head 0/1,
 * 0), then the float32 parameters and, for AdamW, the two moments, little-endian. The same
 * bytes natively and in WASM. Reading checks the magic, version, optimizer, model shape,
 * parameter count and length before changing anything (GPT2_ERR_FORMAT, _UNSUPPORTED, _ARG,
 * _SHAPE), then restores parameters, moments and the step count and zeroes the gradients.
 * The training options and data are not recorded: resuming with other ones continues with
 * those. */
uint64_t gpt2_train_checkpoint_size(const gpt2_train *t);
gpt2_err gpt2_train_checkpoint_write(gpt2_train *t, uint8_t *buf, uint64_t cap, gpt2_error *err);
gpt2_err gpt2_train_checkpoint_read(gpt2_train *t, const uint8_t *buf, uint64_t len, gpt2_error *err);

/* The same as a file, written and read in place (no copy in memory). Loading checks the header
 * and the file's length first; only an I/O error while reading the arrays can leave the state
 * partly restored. */
gpt2_err gpt2_train_checkpoint_save(gpt2_train *t, const char *path, gpt2_error *err);
gpt2_err gpt2_train_checkpoint_load(gpt2_train *t, const char *path, gpt2_error *err);

#endif
