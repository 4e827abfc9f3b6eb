/* weights.h - the model's parameters in the layout the kernels want, in a few allocations
 * ("pieces": the globals, one per layer, the separate LM head), none of them large.
 *
 * Every linear weight (qkv, attention projection, MLP fc and projection, the token
 * embedding wte and the LM head) is a gpt2_matrix (matrix.h) W [out, in], i.e. transposed
 * from Hugging Face's Conv1D [in, out] layout, so that y[o] = b[o] + sum_i W(o, i) * x[i],
 * stored in the kernels' packed order (tiles of 4 rows, matrix.h); its dtype is f32, f16
 * or q8_0 (see gpt2_weights_plan).
 * Biases, layer norms and the position embedding wpe are always float32.
 */
#ifndef GPT2_WEIGHTS_H
#define GPT2_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "matrix.h"
#include "status.h"

typedef struct gpt2_layer_weights {
    float *ln1_w, *ln1_b;     /* [C] */
    gpt2_matrix qkv_w;        /* [3C, C]: rows 0..C-1 are q, C..2C-1 k, 2C..3C-1 v */
    float *qkv_b;             /* [3C] */
    gpt2_matrix attn_proj_w;  /* [C, C] */
    float *attn_proj_b;       /* [C] */
    float *ln2_w, *ln2_b;     /* [C] */
    gpt2_matrix fc_w;         /* [n_inner, C] */
    float *fc_b;              /* [n_inner] */
    gpt2_matrix mlp_proj_w;   /* [C, n_inner] */
    float *mlp_proj_b;        /* [C] */
} gpt2_layer_weights;

/* The kinds of linear matrices; every layer's matrix of a kind has the same dtype. */
typedef enum gpt2_matrix_kind {
    GPT2_MAT_WTE,
    GPT2_MAT_LM_HEAD,
    GPT2_MAT_QKV,
    GPT2_MAT_ATTN_PROJ,
    GPT2_MAT_FC,
    GPT2_MAT_MLP_PROJ,
    GPT2_MAT_KINDS
} gpt2_matrix_kind;

/* Storage of a model: whether lm_head is separate from wte, and each matrix kind's dtype.
 * A Q8_0 kind whose matrices have cols % 32 != 0 cannot exist: gpt2_weights_plan_uniform
 * stores such kinds as F16 instead (gpt2_weights_create rejects them). */
typedef struct gpt2_weights_plan {
    int untied_head;
    gpt2_dtype dtype[GPT2_MAT_KINDS]; /* dtype[GPT2_MAT_LM_HEAD] is ignored when tied */
} gpt2_weights_plan;

/* One allocation holding weights: data[0 .. bytes), a multiple of 64 bytes; every tensor in it
 * starts at a multiple of 64 bytes from data. */
typedef struct gpt2_weights_piece {
    void *data;
    size_t bytes;
} gpt2_weights_piece;

/* The pieces of a model, in this order: piece 0 holds wte, wpe, ln_f; piece 1 + l holds layer
 * l's tensors; when the head is untied, piece 1 + n_layer holds lm_head. Holding the weights
 * in pieces keeps every allocation small: a wasm32 heap cannot make one allocation of more
 * than 2 GB (PTRDIFF_MAX), though it can hold almost 4 GB in all. */
typedef struct gpt2_weights_layout {
    uint64_t globals_bytes; /* piece 0 */
    uint64_t layer_bytes;   /* each of the n_layer layer pieces */
    uint64_t head_bytes;    /* the lm_head piece; 0 when tied (no such piece) */
    int n_pieces;           /* 1 + n_layer (+ 1 untied) */
} gpt2_weights_layout;

typedef struct gpt2_weights {
    gpt2_config config;
    gpt2_weights_plan plan;
    gpt2_matrix wte;          /* [n_vocab, C] token embeddings */
    float *wpe;               /* [n_ctx, C] position embeddings */
    gpt2_layer_weights *layers; /* [n_layer] */
    float *lnf_w, *lnf_b;     /* [C] final layer norm */
    gpt2_matrix lm_head;      /* [n_vocab, C]; a copy of wte (same data) when tied */
    int tied_head;            /* lm_head shares wte's storage (the GPT-2 case) */
    uint64_t n_params;        /* parameters stored (a tied head counted once) */
    gpt2_weights_piece *pieces; /* [n_pieces]: the allocations every pointer above points into
                                 * (gpt2_weights_layout's order) */
    int n_pieces;
    size_t arena_bytes;       /* the pieces' bytes in all (what one decoded token streams) */
    struct gpt2_pool *pool;   /* not owned; NULL by default (threads helper) */
    char precision_reason[192]; /* why the loader stored this precision (loader.h); "" otherwise */
} gpt2_weights;

/* A plan with every matrix kind in dtype t, except that under Q8_0 a kind whose cols
 * (n_embd, or n_inner for the MLP projection) is not a multiple of 32 becomes F16. */
gpt2_weights_plan gpt2_weights_plan_uniform(const gpt2_config *config, int untied_head, gpt2_dtype t);

/* Rows and cols of a matrix kind under config. */
void gpt2_matrix_kind_shape(const gpt2_config *config, gpt2_matrix_kind k, int *rows, int *cols);

/* Short name of a matrix kind ("wte", "lm_head", "qkv", "attn_proj", "fc", "mlp_proj"). */
const char *gpt2_matrix_kind_name(gpt2_matrix_kind k);

/* The largest single allocation the weights or a state may make: PTRDIFF_MAX (C's limit on
 * one object; malloc refuses more, e.g. 2 GB - 1 in a wasm32 heap). */
#define GPT2_MAX_ALLOC ((uint64_t)PTRDIFF_MAX)

/* What an allocator adds to each allocation, at most (its header and alignment); counted per
 * allocation in gpt2_weights_plan_bytes and gpt2_model_bytes. */
#define GPT2_ALLOC_OVERHEAD 64u

/* The sizes of the pieces for config and plan. Returns 0 and fills *out, or -1 on overflow, a
 * non-positive size, an impossible plan (Q8_0 with cols % 32 != 0) or a piece larger than
 * GPT2_MAX_ALLOC. */
int gpt2_weights_layout_of(const gpt2_config *config, const gpt2_weights_plan *plan,
                           gpt2_weights_layout *out);

/* Bytes gpt2_weights_create allocates for config and plan: the pieces, GPT2_ALLOC_OVERHEAD per
 * allocation and the bookkeeping (struct, layer table, piece table). UINT64_MAX when
 * gpt2_weights_layout_of fails. */
uint64_t gpt2_weights_plan_bytes(const gpt2_config *config, const gpt2_weights_plan *plan);

/* Float32 sizes (all matrices f32), as before: UINT64_MAX / SIZE_MAX on overflow. */
uint64_t gpt2_weights_bytes_u64(const gpt2_config *config, int untied_head);
size_t gpt2_weights_bytes(const gpt2_config *config, int untied_head);

/* The same for the dtype t applied with gpt2_weights_plan_uniform. */
uint64_t gpt2_weights_bytes_dtype(const gpt2_config *config, int untied_head, gpt2_dtype t);

/* Everything one loaded model needs at its peak: its weights (gpt2_weights_plan_bytes), one
 * state's KV cache and scratch at full context with GPT2_ESTIMATE_BATCH tokens per step
 * (gpt2_state_bytes, model.h), and the working memory of loading and generating
 * (GPT2_ESTIMATE_VOCAB_ROWS rows of n_vocab floats: a session's logits, a generator's and a
 * sampler's buffers; GPT2_ESTIMATE_BAND_ROWS rows of the widest matrix in float32: the
 * loader's staging band; GPT2_ESTIMATE_WORK_BYTES for the rest: the loader's tensor table,
 * a session's tokens). The caller's own buffers (e.g. the chunk a stream is read into) are
 * not counted. UINT64_MAX on overflow or when the state would be one allocation over
 * GPT2_MAX_ALLOC. This is what loaders compare with a memory budget; tools/memory-table.mjs
 * compares it with the peak measured in WebAssembly. */
#define GPT2_ESTIMATE_BATCH 64
#define GPT2_ESTIMATE_VOCAB_ROWS 8
#define GPT2_ESTIMATE_BAND_ROWS 32
#define GPT2_ESTIMATE_WORK_BYTES (128u << 10)
uint64_t gpt2_model_bytes(const gpt2_config *config, const gpt2_weights_plan *plan);

/* Allocates zeroed weights for config and plan, in pieces (gpt2_weights_layout); fails with
 * GPT2_ERR_NOMEM (never crashes, nothing left allocated) if a piece cannot be allocated or a
 * size overflows, GPT2_ERR_ARG for a bad plan. */
gpt2_err gpt2_weights_create_plan(const gpt2_config *config, const gpt2_weights_plan *plan,
                                  gpt2_weights **out, gpt2_error *err);

/* gpt2_weights_create_plan, but the weights' bytes are left unset (not zeroed): for a caller
 * that writes every one of them before reading any (the loader). Clearing gigabytes is a full
 * pass over memory in WebAssembly, whose malloc clears what calloc returns. */
gpt2_err gpt2_weights_alloc_plan(const gpt2_config *config, const gpt2_weights_plan *plan,
                                 gpt2_weights **out, gpt2_error *err);

/* Sets the finite flag (matrix.h) of every f16 matrix from its data (one pass over it);
 * call after writing f16 weights (the loader and training's write-back do). */
void gpt2_weights_check_finite(gpt2_weights *w);

/* gpt2_weights_create_plan with every matrix in float32. */
gpt2_err gpt2_weights_create(const gpt2_config *config, int untied_head, gpt2_weights **out,
                             gpt2_error *err);

/* The dtype holding most of the linear parameters (what "the model's precision" means). */
gpt2_dtype gpt2_weights_main_dtype(const gpt2_weights *w);

/* Releases weights (NULL is allowed). */
void gpt2_weights_free(gpt2_weights *w);

#endif
