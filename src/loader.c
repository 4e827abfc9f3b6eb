/* loader.c - streaming GPT-2 checkpoint loader (see loader.h).
 *
 * One file of about 900 lines because it is one state (struct gpt2_loader) read in the order
 * a load runs: creation; the plan made once the header is complete (slots, shapes, storage
 * precision, budget, allocation, a destination per tensor); the conversion of each delivered
 * run of data into the packed matrices (matrix.h); and the precision and budget rules that
 * plan applies (also used before any file is read). Reading the file itself - the length,
 * the header, partial elements, bands of rows - is the stream reader's (safetensors.c).
 */
#include "loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "kernels.h"
#include "quantize.h"
#include "safetensors.h"

#define NO_TENSOR SIZE_MAX

/* Weight slots: the global tensors (GPT2_ST_WTE ...), then GPT2_ST_LAYER_NAMES per layer. */
#define GLOBAL_SLOTS GPT2_ST_GLOBALS
#define LAYER_SLOTS GPT2_ST_LAYER_NAMES
#define LAYER_SLOT(slot) (((slot) - GLOBAL_SLOTS) % LAYER_SLOTS) /* GPT2_ST_LN1_W ... */

#define CLASS_IGNORED (-1)
#define CLASS_ERROR (-2)

/* How a tensor provides its slot: the plain tensor, or one half of a quantized pair. */
enum { VAR_PLAIN = GPT2_ST_PLAIN, VAR_Q8 = GPT2_ST_Q8, VAR_SCALE = GPT2_ST_SCALE };

/* What a segment's bytes become. */
enum seg_kind {
    SEG_SKIP,   /* ignored tensor */
    SEG_FLOAT,  /* float32 destination dst (vectors and tables) */
    SEG_MAT32,  /* an f32 matrix m, written in its packed order (matrix.h), maybe transposed */
    SEG_BAND,   /* an f16 or q8_0 matrix converted from floats through the staging band */
    SEG_Q8,     /* NAME.q8: int8 values placed into m's packed blocks */
    SEG_SCALE,  /* NAME.scale: F16 scales, each beside its packed block (matrix.h) */
    SEG_Q8_UP,  /* NAME.q8 into an f32/f16 matrix (forced precision): dequantized (see up_state) */
    SEG_SCALE_UP /* NAME.scale for such a matrix: kept in up_state until both halves are in */
};

/* A quantized weight loaded into an f32 or f16 matrix. Scales first: each q8 value is
 * dequantized as it arrives. q8 first: the int8 values wait in the first bytes of the
 * matrix's own storage and are widened in place, last element first, when the scales are in
 * (element k's destination starts at byte 2k or 4k >= k, so nothing unread is overwritten). */
typedef struct up_state {
    float *scales;         /* [rows * cols / 32], row-major */
    int8_t *head;          /* room for the values of the first tile (4 rows; see segment_done) */
    int q8_done, scales_done;
} up_state;

/* Where one tensor of the file goes (segs[i] for the header's tensor i). */
typedef struct segment {
    enum seg_kind kind;
    float *dst;          /* SEG_FLOAT destination */
    gpt2_matrix *m;      /* SEG_MAT32 / SEG_BAND / SEG_Q8* / SEG_SCALE* destination */
    up_state *up;        /* SEG_Q8_UP / SEG_SCALE_UP */
    gpt2_st_dtype dtype;
    unsigned es;         /* source bytes per element (1..4 unless SEG_SKIP) */
    size_t rows, cols;   /* SEG_MAT32 / SEG_BAND: the source shape ([in, out] if transposed, else [out, in]) */
    int transposed;      /* SEG_MAT32 / SEG_BAND: the source is a Conv1D [in, out] tensor */
} segment;

struct gpt2_loader {
    gpt2_config cfg;
    uint64_t budget;
    gpt2_precision precision;
    gpt2_pool *pool;          /* converts bands in parallel (NULL: this thread) */
    gpt2_st_reader *reader;   /* reads the file; holds the sticky error */
    const char *source;       /* the reader's source name */
    const gpt2_st_header *hdr;/* the reader's, once the header is complete */
    segment *segs;            /* per tensor of hdr */
    gpt2_weights *w;
    up_state *ups;            /* per slot, for quantized weights loaded as f32/f16 (else NULL) */
    size_t nups;
    int finished;             /* the weights were handed out */
};

static void free_ups(gpt2_loader *ld) {
    for (size_t i = 0; ld->ups && i < ld->nups; i++) free(ld->ups[i].scales);
    free(ld->ups);
    ld->ups = NULL;
    ld->nups = 0;
}

/* After a failure: frees what is no longer needed (the reader keeps the error). */
static void release(gpt2_loader *ld) {
    gpt2_weights_free(ld->w);
    ld->w = NULL;
    free_ups(ld);
}

static const char *tensor_name(const gpt2_st_tensor *t, char out[96]) {
    return gpt2_st_printable(t->name, t->name_len, out);
}

/* ---- creation -------------------------------------------------------------------------- */

/* The reader's callbacks (below): the header's plan, the data's sink, a tensor complete. */
static gpt2_err plan_load(void *ctx, const gpt2_st_header *h, gpt2_st_route *route, gpt2_error *err);
static gpt2_err sink_load(void *ctx, size_t i, uint64_t first, const uint8_t *src, size_t count, gpt2_error *err);
static gpt2_err tensor_done(void *ctx, size_t i, gpt2_error *err);

gpt2_err gpt2_loader_create(const char *config_json, size_t len, const gpt2_loader_options *opt,
                            gpt2_loader **out, gpt2_error *err) {
    if (!out || (!config_json && len))
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_create: NULL argument");
    *out = NULL;
    gpt2_config cfg;
    gpt2_err rc = gpt2_config_parse(config_json, len, &cfg, err);
    if (rc) return rc;
    uint64_t budget = opt ? opt->memory_budget_bytes : 0;
    gpt2_precision prec = opt ? opt->precision : GPT2_PRECISION_AUTO;
    if ((unsigned)prec > GPT2_PRECISION_Q8_0)
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_create: bad precision %d", (int)prec);
    /* the least this model can take: its forced precision, or q8_0 when stored as is */
    gpt2_weights_plan least = gpt2_weights_plan_uniform(
        &cfg, 0, prec == GPT2_PRECISION_F32 ? GPT2_DTYPE_F32 : prec == GPT2_PRECISION_F16 ? GPT2_DTYPE_F16 : GPT2_DTYPE_Q8_0);
    if (gpt2_model_bytes(&cfg, &least) == UINT64_MAX)
        return gpt2_fail(err, GPT2_ERR_NOMEM, "config.json: the model is too large to address");
    gpt2_err brc = gpt2_check_budget(&cfg, &least, budget, err);
    if (brc) return brc;

    gpt2_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory creating the loader");
    const gpt2_st_callbacks cb = {ld, plan_load, sink_load, tensor_done};
    if ((rc = gpt2_st_reader_create(opt ? opt->source_name : NULL, &cb,
                                    &ld->reader, err))) {
        free(ld);
        return rc;
    }
    ld->source = gpt2_st_reader_source(ld->reader);
    ld->cfg = cfg;
    ld->budget = budget;
    ld->precision = prec;
    ld->pool = opt ? opt->pool : NULL;
    *out = ld;
    return GPT2_OK;
}

void gpt2_loader_free(gpt2_loader *ld) {
    if (!ld) return;
    gpt2_weights_free(ld->w);
    gpt2_st_reader_free(ld->reader);
    free(ld->segs);
    free_ups(ld);
    free(ld);
}

uint64_t gpt2_loader_header_size(const gpt2_loader *ld) {
    return ld ? gpt2_st_reader_header_size(ld->reader) : 0;
}

uint64_t gpt2_loader_bytes_expected(const gpt2_loader *ld) {
    return ld ? gpt2_st_reader_bytes_expected(ld->reader) : 0;
}

uint64_t gpt2_loader_bytes_received(const gpt2_loader *ld) {
    return ld ? gpt2_st_reader_bytes_received(ld->reader) : 0;
}

gpt2_err gpt2_loader_set_file_size(gpt2_loader *ld, uint64_t file_size, gpt2_error *err) {
    if (!ld) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_set_file_size: loader is NULL");
    gpt2_err rc = gpt2_st_reader_set_file_size(ld->reader, file_size, err);
    if (rc) release(ld);
    return rc;
}

/* ---- header validation ----------------------------------------------------------------- */

/* The matrix kind of a slot, or -1 for a float32 vector/table slot. */
static int slot_matrix_kind(int slot) {
    if (slot == GPT2_ST_WTE) return GPT2_MAT_WTE;
    if (slot == GPT2_ST_LM_HEAD) return GPT2_MAT_LM_HEAD;
    if (slot < GLOBAL_SLOTS) return -1;
    switch (LAYER_SLOT(slot)) {
    case GPT2_ST_QKV_W: return GPT2_MAT_QKV;
    case GPT2_ST_ATTN_PROJ_W: return GPT2_MAT_ATTN_PROJ;
    case GPT2_ST_FC_W: return GPT2_MAT_FC;
    case GPT2_ST_MLP_PROJ_W: return GPT2_MAT_MLP_PROJ;
    default: return -1;
    }
}

/* Maps a tensor name to its weight slot, CLASS_IGNORED, or CLASS_ERROR (layer >= n_layer);
 * *variant says whether it is the plain tensor or the .q8 / .scale half of a quantized one. */
static int classify(const gpt2_loader *ld, const gpt2_st_tensor *t, int *variant, gpt2_error *err) {
    gpt2_st_name name;
    gpt2_st_name_parse(t->name, t->name_len, &name);
    *variant = name.variant;
    if (name.in_layer && name.layer >= (uint64_t)ld->cfg.n_layer) {
        char nm[96];
        gpt2_fail(err, GPT2_ERR_SHAPE, "%s: checkpoint has layer %llu (tensor '%s') but config says n_layer=%d",
                  ld->source, (unsigned long long)name.layer, tensor_name(t, nm), ld->cfg.n_layer);
        return CLASS_ERROR;
    }
    if (name.id < 0) return CLASS_IGNORED; /* mask buffers attn.bias / attn.masked_bias, unknown extras */
    return name.id < GLOBAL_SLOTS ? name.id : GLOBAL_SLOTS + (int)name.layer * LAYER_SLOTS + name.id - GLOBAL_SLOTS;
}

/* The expected Hugging Face shape of a slot (ndim 1 or 2); *transposed for Conv1D weights. */
static int expected_shape(const gpt2_config *c, int slot, uint64_t shape[2], int *transposed) {
    uint64_t C = (uint64_t)c->n_embd, V = (uint64_t)c->n_vocab, T = (uint64_t)c->n_ctx,
             I = (uint64_t)c->n_inner;
    *transposed = 0;
    switch (slot) {
    case GPT2_ST_WTE: case GPT2_ST_LM_HEAD: shape[0] = V; shape[1] = C; return 2;
    case GPT2_ST_WPE: shape[0] = T; shape[1] = C; return 2;
    case GPT2_ST_LNF_W: case GPT2_ST_LNF_B: shape[0] = C; return 1;
    default: break;
    }
    switch (LAYER_SLOT(slot)) {
    case GPT2_ST_QKV_W: *transposed = 1; shape[0] = C; shape[1] = 3 * C; return 2;
    case GPT2_ST_QKV_B: shape[0] = 3 * C; return 1;
    case GPT2_ST_ATTN_PROJ_W: *transposed = 1; shape[0] = C; shape[1] = C; return 2;
    case GPT2_ST_FC_W: *transposed = 1; shape[0] = C; shape[1] = I; return 2;
    case GPT2_ST_FC_B: shape[0] = I; return 1;
    case GPT2_ST_MLP_PROJ_W: *transposed = 1; shape[0] = I; shape[1] = C; return 2;
    default: shape[0] = C; return 1; /* layer norms and the C-sized biases */
    }
}

/* The float32 destination of a vector/table slot (NULL for a matrix slot). */
static float *slot_dst(const gpt2_weights *w, int slot) {
    switch (slot) {
    case GPT2_ST_WPE: return w->wpe;
    case GPT2_ST_LNF_W: return w->lnf_w;
    case GPT2_ST_LNF_B: return w->lnf_b;
    case GPT2_ST_WTE: case GPT2_ST_LM_HEAD: return NULL;
    default: break;
    }
    const gpt2_layer_weights *L = &w->layers[(slot - GLOBAL_SLOTS) / LAYER_SLOTS];
    float *const p[LAYER_SLOTS] = {L->ln1_w, L->ln1_b, NULL,  L->qkv_b, NULL,
                                   L->attn_proj_b, L->ln2_w, L->ln2_b, NULL, L->fc_b,
                                   NULL, L->mlp_proj_b};
    return p[LAYER_SLOT(slot)];
}

/* The matrix of a matrix slot (NULL otherwise). */
static gpt2_matrix *slot_matrix(gpt2_weights *w, int slot) {
    if (slot == GPT2_ST_WTE) return &w->wte;
    if (slot == GPT2_ST_LM_HEAD) return &w->lm_head;
    if (slot < GLOBAL_SLOTS) return NULL;
    gpt2_layer_weights *L = &w->layers[(slot - GLOBAL_SLOTS) / LAYER_SLOTS];
    switch (LAYER_SLOT(slot)) {
    case GPT2_ST_QKV_W: return &L->qkv_w;
    case GPT2_ST_ATTN_PROJ_W: return &L->attn_proj_w;
    case GPT2_ST_FC_W: return &L->fc_w;
    case GPT2_ST_MLP_PROJ_W: return &L->mlp_proj_w;
    default: return NULL;
    }
}

/* "[768, 3072]" */
static void format_shape(const uint64_t *shape, int ndim, char *out, size_t cap) {
    size_t j = 0;
    j += (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && j < cap; i++)
        j += (size_t)snprintf(out + j, cap - j, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    if (j < cap) snprintf(out + j, cap - j, "]");
}

static void slot_name(int slot, char *out, size_t cap) {
    if (slot < GLOBAL_SLOTS) gpt2_st_name_format(slot, 0, out, cap);
    else gpt2_st_name_format(GLOBAL_SLOTS + LAYER_SLOT(slot), (uint64_t)(slot - GLOBAL_SLOTS) / LAYER_SLOTS, out,
                             cap);
}

static gpt2_err check_shape(gpt2_loader *ld, const gpt2_st_tensor *t, const uint64_t *want, int nd,
                            gpt2_error *err) {
    char nm[96];
    if (t->ndim != nd || t->shape[0] != want[0] || (nd == 2 && t->shape[1] != want[1])) {
        char got_s[128], want_s[64];
        format_shape(t->shape, t->ndim, got_s, sizeof got_s);
        format_shape(want, nd, want_s, sizeof want_s);
        return gpt2_fail(err, GPT2_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", ld->source,
                         tensor_name(t, nm), got_s, want_s);
    }
    return GPT2_OK;
}

/* Checks one half of a quantized weight: NAME.q8 I8 [out, in], NAME.scale F16 [out, in/32]. */
static gpt2_err check_quantized(gpt2_loader *ld, const gpt2_st_tensor *t, int slot, int variant, gpt2_error *err) {
    char nm[96], dt[96];
    int rows, cols;
    gpt2_matrix_kind_shape(&ld->cfg, (gpt2_matrix_kind)slot_matrix_kind(slot), &rows, &cols);
    const char *want_dt = variant == VAR_Q8 ? "I8" : "F16";
    if (strcmp(t->dtype_name, want_dt) != 0)
        return gpt2_fail(err, GPT2_ERR_SHAPE, "%s: quantized tensor '%s' has dtype %s, expected %s", ld->source,
                         tensor_name(t, nm), gpt2_st_printable(t->dtype_name, strlen(t->dtype_name), dt), want_dt);
    if (cols % GPT2_Q8_BLOCK)
        return gpt2_fail(err, GPT2_ERR_SHAPE, "%s: tensor '%s': a q8_0 weight needs in %% 32 == 0, but in is %d",
                         ld->source, tensor_name(t, nm), cols);
    uint64_t want[2] = {(uint64_t)rows, variant == VAR_Q8 ? (uint64_t)cols : (uint64_t)cols / GPT2_Q8_BLOCK};
    return check_shape(ld, t, want, 2, err);
}

/* Checks one needed tensor's dtype and shape against its slot. */
static gpt2_err check_tensor(gpt2_loader *ld, const gpt2_st_tensor *t, int slot, int variant, gpt2_error *err) {
    char nm[96];
    if (variant != VAR_PLAIN) return check_quantized(ld, t, slot, variant, err);
    if (t->dtype == GPT2_ST_OTHER) {
        char dt[96];
        return gpt2_fail(err, GPT2_ERR_UNSUPPORTED,
                         "%s: unsupported dtype %s for tensor '%s' (supported: F32, F16, BF16)", ld->source,
                         gpt2_st_printable(t->dtype_name, strlen(t->dtype_name), dt), tensor_name(t, nm));
    }
    uint64_t want[2];
    int transposed;
    int nd = expected_shape(&ld->cfg, slot, want, &transposed);
    return check_shape(ld, t, want, nd, err);
}

/* Dequantized value k (row-major: row k / cols, column k % cols) of a quantized weight going
 * to an f32/f16 matrix, written at its packed place. */
static void put_up(gpt2_matrix *m, size_t k, int8_t q, const float *scales) {
    float v = (float)q * scales[k / GPT2_Q8_BLOCK]; /* exact: 8 x 11 significant bits */
    uint64_t K = (uint64_t)m->cols, at = gpt2_packed_index((uint64_t)m->rows, K, k / K, k % K);
    if (m->type == GPT2_DTYPE_F32) ((float *)m->data)[at] = v;
    else ((uint16_t *)m->data)[at] = gpt2_f32_to_f16(v);
}

/* A segment is complete: a quantized weight whose two halves are both in is finished. */
static void segment_done(const segment *s) {
    if (s->kind != SEG_Q8_UP && s->kind != SEG_SCALE_UP) return;
    up_state *u = s->up;
    int was_waiting = s->kind == SEG_SCALE_UP && u->q8_done; /* q8 arrived first: widen in place */
    if (s->kind == SEG_Q8_UP) u->q8_done = 1;
    else u->scales_done = 1;
    if (was_waiting) {
        /* Widened in place, last element first: an element k of tile g >= 1 goes to byte
         * >= 2 * 4g * cols >= k (packed index >= 4g * cols, k < 4(g+1) * cols), past every
         * value not yet read. The first tile's values are moved aside first. */
        size_t n = (size_t)s->m->rows * (size_t)s->m->cols, head = (size_t)s->m->cols * 4;
        const int8_t *q = s->m->data;
        if (head > n) head = n;
        for (size_t k = n; k-- > head;) put_up(s->m, k, q[k], u->scales);
        memcpy(u->head, q, head);
        for (size_t k = head; k-- > 0;) put_up(s->m, k, u->head[k], u->scales);
    }
    if (u->q8_done && u->scales_done) {
        free(u->scales);
        u->scales = NULL;
    }
}

/* The reader delivers whole bands of rows: to SEG_BAND (run_bands) 4 source rows [out, in]
 * (one packed tile) or 32 of a Conv1D source [in, out] (one block of every output row); to
 * SEG_MAT32 from a Conv1D source, TILE_ROWS rows (transpose_rows). */
enum { BAND_ROWS = 4, TILE_ROWS = 16 };
static size_t band_rows(const segment *s) {
    return s->kind == SEG_MAT32 ? TILE_ROWS : s->transposed ? GPT2_Q8_BLOCK : BAND_ROWS;
}

/* ---- the plan: header -> slots -> storage -> weights -> segments ----------------------- */

/* Which tensor fills each slot, per variant (by_slot[variant * nslots + slot], plain, .q8,
 * .scale; NO_TENSOR if none), and each tensor's slot (CLASS_IGNORED if none) and variant. */
typedef struct slot_map {
    size_t nslots;
    size_t *by_slot;
    int *slot_of, *var_of;
} slot_map;

/* Classifies every tensor, checks the needed ones and that no slot is provided twice. */
static gpt2_err assign_slots(gpt2_loader *ld, const gpt2_st_header *h, slot_map *sm, gpt2_error *err) {
    size_t nslots = sm->nslots = GLOBAL_SLOTS + (size_t)ld->cfg.n_layer * LAYER_SLOTS;
    sm->by_slot = malloc(3 * nslots * sizeof *sm->by_slot);
    sm->slot_of = malloc((h->count ? h->count : 1) * 2 * sizeof *sm->slot_of);
    if (!sm->by_slot || !sm->slot_of)
        return gpt2_fail(err, GPT2_ERR_NOMEM, "%s: out of memory reading the header", ld->source);
    sm->var_of = sm->slot_of + (h->count ? h->count : 1);
    for (size_t s = 0; s < 3 * nslots; s++) sm->by_slot[s] = NO_TENSOR;
    for (size_t i = 0; i < h->count; i++) {
        const gpt2_st_tensor *t = &h->tensors[i];
        int var, slot = sm->slot_of[i] = classify(ld, t, &var, err);
        sm->var_of[i] = var;
        if (slot == CLASS_ERROR) return GPT2_ERR_SHAPE;
        if (slot < 0) continue;
        size_t *cell = &sm->by_slot[(size_t)var * nslots + (size_t)slot];
        size_t other = *cell;
        if (other == NO_TENSOR && var == VAR_PLAIN) {
            other = sm->by_slot[VAR_Q8 * nslots + (size_t)slot];
            if (other == NO_TENSOR) other = sm->by_slot[VAR_SCALE * nslots + (size_t)slot];
        } else if (other == NO_TENSOR) {
            other = sm->by_slot[VAR_PLAIN * nslots + (size_t)slot];
        }
        if (other != NO_TENSOR) {
            char a[96], b[96], what[64];
            slot_name(slot, what, sizeof what);
            return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensors '%s' and '%s' both provide %s", ld->source,
                             tensor_name(&h->tensors[other], a), tensor_name(t, b), what);
        }
        *cell = i;
        gpt2_err rc = check_tensor(ld, t, slot, var, err);
        if (rc) return rc;
    }
    return GPT2_OK;
}

/* Every slot is provided (lm_head optional), and quantized weights come with both halves. */
static gpt2_err check_complete(const gpt2_loader *ld, const slot_map *sm, gpt2_error *err) {
    size_t n = sm->nslots;
    for (size_t s = 0; s < n; s++) {
        size_t plain = sm->by_slot[s], q8 = sm->by_slot[n + s], sc = sm->by_slot[2 * n + s];
        char what[64];
        slot_name((int)s, what, sizeof what);
        if (q8 != NO_TENSOR && sc == NO_TENSOR)
            return gpt2_fail(err, GPT2_ERR_SHAPE,
                             "%s: tensor '%s.scale' is missing (the scales of the quantized '%s.q8')", ld->source,
                             what, what);
        if (sc != NO_TENSOR && q8 == NO_TENSOR)
            return gpt2_fail(err, GPT2_ERR_SHAPE,
                             "%s: tensor '%s.q8' is missing (only its scales '%s.scale' are present)", ld->source,
                             what, what);
        if (plain == NO_TENSOR && q8 == NO_TENSOR && s != GPT2_ST_LM_HEAD)
            return gpt2_fail(err, GPT2_ERR_SHAPE, "%s: tensor '%s' is missing", ld->source, what);
    }
    return GPT2_OK;
}

/* The storage plan as stored (AUTO: per matrix kind, from its tensors) or as forced. */
static gpt2_err plan_storage(const gpt2_loader *ld, const gpt2_st_header *h, const slot_map *sm,
                             gpt2_weights_plan *plan, gpt2_error *err) {
    size_t n = sm->nslots;
    int untied = sm->by_slot[GPT2_ST_LM_HEAD] != NO_TENSOR || sm->by_slot[n + GPT2_ST_LM_HEAD] != NO_TENSOR;
    *plan = gpt2_weights_plan_uniform(&ld->cfg, untied,
                                      ld->precision == GPT2_PRECISION_F16    ? GPT2_DTYPE_F16
                                      : ld->precision == GPT2_PRECISION_Q8_0 ? GPT2_DTYPE_Q8_0
                                                                              : GPT2_DTYPE_F32);
    for (int k = 0; k < GPT2_MAT_KINDS; k++) {
        size_t n_q8 = 0, n_f16 = 0, n_f32 = 0;
        for (size_t s = 0; s < n; s++) {
            if (slot_matrix_kind((int)s) != k) continue;
            if (sm->by_slot[n + s] != NO_TENSOR) n_q8++;
            else if (sm->by_slot[s] != NO_TENSOR) {
                if (h->tensors[sm->by_slot[s]].dtype == GPT2_ST_F16) n_f16++;
                else n_f32++;
            }
        }
        if (n_q8 && (n_f16 || n_f32))
            return gpt2_fail(err, GPT2_ERR_UNSUPPORTED, "%s: the %s weights are partly quantized and partly not",
                             ld->source, gpt2_matrix_kind_name((gpt2_matrix_kind)k));
        if (ld->precision == GPT2_PRECISION_AUTO)
            plan->dtype[k] = n_q8 ? GPT2_DTYPE_Q8_0 : n_f32 ? GPT2_DTYPE_F32 : n_f16 ? GPT2_DTYPE_F16 : GPT2_DTYPE_F32;
    }
    return GPT2_OK;
}

/* Chooses the precision within the budget and allocates the weights. */
static gpt2_err allocate_weights(gpt2_loader *ld, gpt2_weights_plan *plan, gpt2_error *err) {
    char reason[sizeof ld->w->precision_reason];
    gpt2_precision_choose(&ld->cfg, ld->precision, ld->budget, plan, reason, sizeof reason);
    gpt2_err rc = gpt2_check_budget(&ld->cfg, plan, ld->budget, err);
    if (rc) {
        if (plan->untied_head && err) {
            size_t l = strlen(err->message);
            snprintf(err->message + l, sizeof err->message - l, " (with a separate lm_head)");
        }
        return rc;
    }
    if ((rc = gpt2_weights_alloc_plan(&ld->cfg, plan, &ld->w, err))) return rc; /* every byte is written */
    memcpy(ld->w->precision_reason, reason, sizeof reason);
    return GPT2_OK;
}

/* A quantized weight going to an f32/f16 matrix (forced precision): its up_state. */
static up_state *up_of(gpt2_loader *ld, int slot, const gpt2_matrix *m) {
    if (!ld->ups) {
        ld->nups = GLOBAL_SLOTS + (size_t)ld->cfg.n_layer * LAYER_SLOTS;
        if (!(ld->ups = calloc(ld->nups, sizeof *ld->ups))) return NULL;
    }
    up_state *u = &ld->ups[slot];
    size_t nsc = (size_t)m->rows * (size_t)m->cols / GPT2_Q8_BLOCK;
    if (!u->scales && !(u->scales = malloc(nsc * sizeof(float) + 4 * (size_t)m->cols + 1))) return NULL;
    u->head = (int8_t *)(u->scales + nsc);
    return u;
}

/* Where each tensor's data goes (segs) and how the reader delivers it (route). */
static gpt2_err route_tensors(gpt2_loader *ld, const gpt2_st_header *h, const slot_map *sm,
                              gpt2_st_route *route, gpt2_error *err) {
    if (!(ld->segs = calloc(h->count ? h->count : 1, sizeof *ld->segs)))
        return gpt2_fail(err, GPT2_ERR_NOMEM, "%s: out of memory", ld->source);
    for (size_t i = 0; i < h->count; i++) {
        const gpt2_st_tensor *t = &h->tensors[i];
        segment *s = &ld->segs[i];
        int slot = sm->slot_of[i], var = sm->var_of[i];
        s->kind = SEG_SKIP;
        if (slot < 0) continue;
        uint64_t shape[2];
        expected_shape(&ld->cfg, slot, shape, &s->transposed);
        s->dtype = t->dtype;
        s->es = t->elem_size;
        route[i].how = GPT2_ST_ELEMENTS;
        gpt2_matrix *m = s->m = slot_matrix(ld->w, slot);
        if (!m) {
            s->kind = SEG_FLOAT;
            s->dst = slot_dst(ld->w, slot);
        } else if (var != VAR_PLAIN && m->type != GPT2_DTYPE_Q8_0) {
            if (!(s->up = up_of(ld, slot, m))) return gpt2_fail(err, GPT2_ERR_NOMEM, "%s: out of memory", ld->source);
            s->kind = var == VAR_Q8 ? SEG_Q8_UP : SEG_SCALE_UP;
        } else if (var != VAR_PLAIN) {
            s->kind = var == VAR_Q8 ? SEG_Q8 : SEG_SCALE;
        } else {
            s->kind = m->type == GPT2_DTYPE_F32 ? SEG_MAT32 : SEG_BAND;
            /* fits size_t: the destination of rows * cols values was allocated */
            s->rows = (size_t)shape[0];
            s->cols = (size_t)shape[1];
            if (s->kind == SEG_BAND || s->transposed)
                route[i] = (gpt2_st_route){GPT2_ST_BANDS, band_rows(s), s->cols};
        }
    }
    return GPT2_OK;
}

/* The reader's plan callback: the header is complete and valid. */
static gpt2_err plan_load(void *ctx, const gpt2_st_header *h, gpt2_st_route *route, gpt2_error *err) {
    gpt2_loader *ld = ctx;
    ld->hdr = h;
    slot_map sm = {0, NULL, NULL, NULL};
    gpt2_weights_plan plan;
    gpt2_err rc = assign_slots(ld, h, &sm, err);
    if (!rc) rc = check_complete(ld, &sm, err);
    if (!rc) rc = plan_storage(ld, h, &sm, &plan, err);
    if (!rc) rc = allocate_weights(ld, &plan, err);
    if (!rc) rc = route_tensors(ld, h, &sm, route, err);
    free(sm.by_slot);
    free(sm.slot_of);
    return rc;
}

/* ---- data conversion ------------------------------------------------------------------- */

/* Where row o of a packed f32/f16 matrix keeps column i (matrix.h): chunk columns at
 * row + (i / 4) * stride + i % 4, tail columns (i >= c8) at tail + i - c8. */
typedef struct packed_row {
    size_t row, stride, tail, c8;
} packed_row;

static packed_row packed_row_of(const gpt2_matrix *m, size_t o) {
    size_t K = (size_t)m->cols, rt = (size_t)gpt2_pack_tile_rows((uint64_t)m->rows, o), r = o & 3;
    packed_row p;
    p.c8 = K & ~(size_t)7;
    p.row = (o - r) * K + r * 4;
    p.stride = 4 * rt;
    p.tail = (o - r) * K + p.c8 * rt + r * (K - p.c8);
    return p;
}

static inline size_t packed_at(const packed_row *p, size_t i) {
    return i < p->c8 ? p->row + (i >> 2) * p->stride + (i & 3) : p->tail + (i - p->c8);
}

/* Transposes full source rows [nrows, cols] (elements of es bytes; source row i0 + r is input
 * column i0 + r of every output o) into the packed f32 matrix dst (rows = its cols). Rows are
 * taken TILE_ROWS at a time, so each output's writes are a few runs of 4 consecutive floats
 * and the source tile stays in cache: far faster than one element per destination line. */
#define TRANSPOSE_TILE(LOAD)                                                                \
    for (size_t o = 0; o < cols; o++) {                                                     \
        const uint8_t *p = src + o * es;                                                    \
        packed_row pr = packed_row_of(m, o);                                                \
        for (size_t r = 0; r < nrows; r++) d[packed_at(&pr, i0 + r)] = LOAD(p + r * row_bytes); \
    }
static void transpose_rows(gpt2_st_dtype dtype, const uint8_t *src, size_t nrows, size_t cols,
                           size_t es, const gpt2_matrix *m, size_t i0) {
    size_t row_bytes = cols * es;
    float *d = (float *)m->data;
    switch (dtype) {
    case GPT2_ST_F32: TRANSPOSE_TILE(gpt2_st_load_f32) break;
    case GPT2_ST_F16: TRANSPOSE_TILE(gpt2_st_load_f16) break;
    case GPT2_ST_BF16: TRANSPOSE_TILE(gpt2_st_load_bf16) break;
    case GPT2_ST_OTHER: break;
    }
}

/* SEG_Q8: int8 values e0 .. e0+cnt-1 of a source [out, in] (row-major) into their packed
 * places (matrix.h): row by row, block by block, pairs of columns 2 * (rows in tile) apart. */
static void put_q8_values(gpt2_matrix *m, size_t e0, const uint8_t *src, size_t cnt) {
    size_t K = (size_t)m->cols, o = e0 / K, i = e0 % K;
    while (cnt) {
        size_t rt = (size_t)gpt2_pack_tile_rows((uint64_t)m->rows, o), step = 2 * rt;
        unsigned char *row = (unsigned char *)m->data + (size_t)gpt2_q8_value_offset((uint64_t)m->rows, K, o, 0);
        size_t end = K - i < cnt ? K : i + cnt;
        cnt -= end - i;
        while (i < end) {
            unsigned char *blk = row + (i / GPT2_Q8_BLOCK) * GPT2_Q8_GROUP * rt;
            size_t e = i % GPT2_Q8_BLOCK, stop = i - e + GPT2_Q8_BLOCK < end ? i - e + GPT2_Q8_BLOCK : end;
            for (; i < stop; i++, e++) blk[(e >> 1) * step + (e & 1)] = *src++;
        }
        if (i == K) o++, i = 0;
    }
}

/* SEG_MAT32 from a source [out, in]: elements e0 .. e0+cnt-1 (row-major) into the packed
 * matrix, in runs of consecutive columns (up to a chunk of 4, or the row's tail). */
static void put_f32_rows(const segment *s, size_t e0, const uint8_t *src, size_t cnt) {
    float *d = (float *)s->m->data;
    size_t cols = s->cols, o = e0 / cols, i = e0 % cols;
    packed_row pr = packed_row_of(s->m, o);
    while (cnt) {
        size_t run = i < pr.c8 ? 4 - (i & 3) : cols - i;
        if (run > cnt) run = cnt;
        gpt2_st_decode(s->dtype, src, run, d + packed_at(&pr, i));
        src += run * s->es;
        cnt -= run;
        i += run;
        if (i == cols && cnt) pr = packed_row_of(s->m, ++o), i = 0;
    }
}

static int kernel_src_type(gpt2_st_dtype d) {
    return d == GPT2_ST_F32 ? K_SRC_F32 : d == GPT2_ST_F16 ? K_SRC_F16 : K_SRC_BF16;
}

/* Source rows [r0, r0 + nrows) at src, split between the pool's threads by output rows. */
typedef struct band_job {
    const segment *s;
    const unsigned char *src;
    size_t r0, nrows;
    int outs, per_task; /* output rows in all; per task (a multiple of 4) */
} band_job;

static void band_task(void *ctx, int task) {
    const band_job *j = ctx;
    const segment *s = j->s;
    int o0 = task * j->per_task, o1 = o0 + j->per_task < j->outs ? o0 + j->per_task : j->outs;
    int type = kernel_src_type(s->dtype);
    if (o0 >= o1) return;
    if (!s->transposed) {
        /* outputs are the source rows themselves */
        k_pack_rows(s->m, j->src + (size_t)o0 * s->cols * s->es, type, (int)j->r0 + o0, (int)j->r0 + o1);
        return;
    }
    for (size_t k = 0; k < j->nrows; k += GPT2_Q8_BLOCK) {
        size_t nk = j->nrows - k < GPT2_Q8_BLOCK ? j->nrows - k : GPT2_Q8_BLOCK;
        k_pack_band(s->m, j->src + k * s->cols * s->es, type, s->cols, (int)(j->r0 + k), (int)nk, o0, o1);
    }
}

static void run_bands(gpt2_loader *ld, const segment *s, const unsigned char *src, size_t r0, size_t nrows) {
    band_job j = {s, src, r0, nrows, 0, 0};
    j.outs = s->transposed ? (int)s->cols : (int)nrows;
    int threads = gpt2_pool_threads(ld->pool);
    int tasks = threads > 1 ? 4 * threads : 1; /* a few per thread: a busy core balances out */
    j.per_task = ((j.outs + tasks - 1) / tasks + 3) & ~3;
    if (j.per_task < 4) j.per_task = 4;
    tasks = (j.outs + j.per_task - 1) / j.per_task;
    gpt2_pool_run(ld->pool, band_task, &j, tasks);
}

/* Writes source elements e0 .. e0+cnt-1 of segment s. Returns 0, or 1 + the index of a
 * q8_0 scale that is not a finite half (rejected: the kernels take finite scales, matrix.h). */
static size_t emit(gpt2_loader *ld, const segment *s, size_t e0, const uint8_t *src, size_t cnt) {
    switch (s->kind) {
    case SEG_SKIP: return 0;
    case SEG_BAND: run_bands(ld, s, src, e0, cnt); return 0; /* rows e0 .. e0+cnt-1 */
    case SEG_Q8: put_q8_values(s->m, e0, src, cnt); return 0;
    case SEG_SCALE: { /* source [out, in / 32] -> the scale of each packed block */
        uint64_t R = (uint64_t)s->m->rows, K = (uint64_t)s->m->cols, nb = K / GPT2_Q8_BLOCK;
        unsigned char *d = (unsigned char *)s->m->data;
        uint64_t o = e0 / nb, b = e0 % nb;
        for (size_t k = 0; k < cnt; k++) { /* the half's bits as they are */
            uint16_t h = (uint16_t)(src[2 * k] | src[2 * k + 1] << 8);
            if ((h & 0x7c00u) == 0x7c00u) return e0 + k + 1;
            memcpy(d + gpt2_q8_scale_offset(R, K, o, b), &h, sizeof h);
            if (++b == nb) o++, b = 0;
        }
        return 0;
    }
    case SEG_SCALE_UP: gpt2_st_decode(GPT2_ST_F16, src, cnt, s->up->scales + e0); return 0;
    case SEG_Q8_UP:
        if (s->up->scales_done) {
            for (size_t k = 0; k < cnt; k++) put_up(s->m, e0 + k, (int8_t)src[k], s->up->scales);
        } else {
            memcpy((int8_t *)s->m->data + e0, src, cnt); /* widened when the scales are in */
        }
        return 0;
    case SEG_FLOAT: gpt2_st_decode(s->dtype, src, cnt, s->dst + e0); return 0;
    case SEG_MAT32: break;
    }
    if (!s->transposed) {
        put_f32_rows(s, e0, src, cnt);
        return 0;
    }
    /* rows e0 .. e0+cnt-1 of a Conv1D source [rows=in, cols=out]: (i, o) goes to W(o, i) */
    for (size_t r = 0; r < cnt; r += TILE_ROWS)
        transpose_rows(s->dtype, src + r * s->cols * s->es, cnt - r < TILE_ROWS ? cnt - r : TILE_ROWS, s->cols,
                       s->es, s->m, e0 + r);
    return 0;
}

/* The reader's sink: the data of tensor i (elements, or rows for SEG_BAND). */
static gpt2_err sink_load(void *ctx, size_t i, uint64_t first, const uint8_t *src, size_t count, gpt2_error *err) {
    gpt2_loader *ld = ctx;
    const segment *s = &ld->segs[i];
    size_t bad = emit(ld, s, (size_t)first, src, count);
    if (!bad) return GPT2_OK;
    size_t nb = (size_t)s->m->cols / GPT2_Q8_BLOCK;
    char nm[96];
    return gpt2_fail(err, GPT2_ERR_FORMAT, "%s: tensor '%s': the scale of row %zu, block %zu is not a finite number",
                     ld->source, tensor_name(&ld->hdr->tensors[i], nm), (bad - 1) / nb, (bad - 1) % nb);
}

static gpt2_err tensor_done(void *ctx, size_t i, gpt2_error *err) {
    (void)err;
    segment_done(&((gpt2_loader *)ctx)->segs[i]);
    return GPT2_OK;
}

/* ---- feeding --------------------------------------------------------------------------- */

gpt2_err gpt2_loader_feed(gpt2_loader *ld, const uint8_t *bytes, size_t n, gpt2_error *err) {
    if (!ld || (!bytes && n)) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_feed: NULL argument");
    if (ld->finished) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_feed: the loader has already finished");
    gpt2_err rc = gpt2_st_reader_feed(ld->reader, bytes, n, err);
    if (rc) release(ld);
    return rc;
}

gpt2_err gpt2_loader_finish(gpt2_loader *ld, gpt2_weights **out, gpt2_error *err) {
    if (!ld || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_finish: NULL argument");
    *out = NULL;
    if (ld->finished)
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_finish: the weights were already handed out");
    gpt2_err rc = gpt2_st_reader_finish(ld->reader, err);
    if (rc) {
        release(ld);
        return rc;
    }
    gpt2_weights_check_finite(ld->w); /* the f16 kernels' fast path (matrix.h) */
    *out = ld->w;
    ld->w = NULL;
    ld->finished = 1;
    return GPT2_OK;
}

/* ---- native convenience ---------------------------------------------------------------- */

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + (size_t)slash + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

#define MAX_CONFIG_BYTES (1u << 20)

gpt2_err gpt2_load_dir(const char *dir, const gpt2_loader_options *opt, gpt2_weights **out,
                       gpt2_error *err) {
    if (!dir || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_load_dir: NULL argument");
    *out = NULL;
    char *cfg_path = join_path(dir, "config.json"), *st_path = join_path(dir, "model.safetensors");
    char *cfg = NULL;
    gpt2_loader *ld = NULL;
    size_t cfg_len;
    gpt2_loader_options o = {0, NULL, GPT2_PRECISION_AUTO, NULL};
    if (opt) o = *opt;
    o.source_name = st_path;
    gpt2_err rc = !cfg_path || !st_path ? gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory")
                                        : gpt2_read_file(cfg_path, MAX_CONFIG_BYTES, &cfg, &cfg_len, err);
    if (!rc) rc = gpt2_loader_create(cfg, cfg_len, &o, &ld, err);
    if (!rc) rc = gpt2_st_reader_feed_file(ld->reader, st_path, NULL, NULL, err);
    if (!rc) rc = gpt2_loader_finish(ld, out, err);
    gpt2_loader_free(ld);
    free(cfg);
    free(cfg_path);
    free(st_path);
    return rc;
}

/* ---- precision and memory budget ------------------------------------------------------- */

static const char *const precision_names[] = {"auto", "f32", "f16", "q8_0"};

const char *gpt2_precision_name(gpt2_precision p) {
    return (unsigned)p <= GPT2_PRECISION_Q8_0 ? precision_names[p] : "?";
}

gpt2_err gpt2_precision_parse(const char *name, gpt2_precision *out, gpt2_error *err) {
    if (!name || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_precision_parse: NULL argument");
    for (int i = 0; i <= GPT2_PRECISION_Q8_0; i++)
        if (!strcmp(name, precision_names[i])) {
            *out = (gpt2_precision)i;
            return GPT2_OK;
        }
    char shown[96];
    return gpt2_fail(err, GPT2_ERR_ARG, "unknown precision '%s' (choose auto, f32, f16 or q8_0)",
                     gpt2_st_printable(name, strlen(name), shown));
}

/* "6.6 GB", "135.2 MB", "3012 bytes" ("more than can be addressed" for UINT64_MAX) */
static void format_bytes(uint64_t n, char out[32]) {
    if (n == UINT64_MAX) snprintf(out, 32, "more than can be addressed");
    else if (n >= 1000000000u) snprintf(out, 32, "%.1f GB", (double)n / 1e9);
    else if (n >= 1000000u) snprintf(out, 32, "%.1f MB", (double)n / 1e6);
    else snprintf(out, 32, "%llu bytes", (unsigned long long)n);
}

/* The plan's main precision: the dtype holding most linear parameters. */
static gpt2_dtype plan_main_dtype(const gpt2_config *config, const gpt2_weights_plan *plan) {
    gpt2_weights tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.config = *config;
    tmp.plan = *plan;
    return gpt2_weights_main_dtype(&tmp);
}

/* The most precise precision smaller than main whose uniform plan (*p, *alt bytes) fits the
 * budget, or -1. */
static int smaller_fit(const gpt2_config *cfg, int untied, gpt2_dtype main, uint64_t budget, gpt2_weights_plan *p,
                       uint64_t *alt) {
    for (int t = (int)main + 1; t <= GPT2_DTYPE_Q8_0; t++) {
        *p = gpt2_weights_plan_uniform(cfg, untied, (gpt2_dtype)t);
        if ((*alt = gpt2_model_bytes(cfg, p)) <= budget) return t;
    }
    return -1;
}

/* AUTO keeps the plan as stored when it fits the budget, else takes the most precise smaller
 * precision that does (f16, then q8_0); a forced precision is kept. Says why in reason.
 * When nothing fits, the plan stays as stored and gpt2_check_budget reports it. */
gpt2_dtype gpt2_precision_choose(const gpt2_config *cfg, gpt2_precision precision, uint64_t budget,
                                 gpt2_weights_plan *plan, char *reason, size_t cap) {
    gpt2_dtype stored = plan_main_dtype(cfg, plan);
    if (precision != GPT2_PRECISION_AUTO) {
        snprintf(reason, cap, "%s as asked", gpt2_dtype_name(stored));
        return stored;
    }
    uint64_t need = gpt2_model_bytes(cfg, plan), alt;
    if (!budget || need <= budget) {
        snprintf(reason, cap, "auto: %s as stored%s", gpt2_dtype_name(stored), budget ? " (fits the memory budget)" : "");
        return stored;
    }
    gpt2_weights_plan p;
    int t = smaller_fit(cfg, plan->untied_head, stored, budget, &p, &alt);
    if (t < 0) {
        snprintf(reason, cap, "auto: %s as stored (nothing fits)", gpt2_dtype_name(stored));
        return stored;
    }
    char need_s[32], budget_s[32], alt_s[32];
    format_bytes(need, need_s);
    format_bytes(budget, budget_s);
    format_bytes(alt, alt_s);
    snprintf(reason, cap, "auto: %s, because %s as stored needs %s but the memory budget is %s (%s needs %s)",
             gpt2_dtype_name((gpt2_dtype)t), gpt2_dtype_name(stored), need_s, budget_s, gpt2_dtype_name((gpt2_dtype)t),
             alt_s);
    *plan = p;
    return plan_main_dtype(cfg, plan);
}

gpt2_err gpt2_check_budget(const gpt2_config *config, const gpt2_weights_plan *plan, uint64_t budget,
                           gpt2_error *err) {
    if (!config || !plan) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_check_budget: NULL argument");
    uint64_t need = gpt2_model_bytes(config, plan), alt;
    if (need == UINT64_MAX && !budget)
        return gpt2_fail(err, GPT2_ERR_NOMEM, "the model is too large to address");
    if (!budget || need <= budget) return GPT2_OK;
    gpt2_dtype main = plan_main_dtype(config, plan);
    char need_s[32], budget_s[32], alt_s[32];
    format_bytes(need, need_s);
    format_bytes(budget, budget_s);
    gpt2_weights_plan p;
    int t = smaller_fit(config, plan->untied_head, main, budget, &p, &alt);
    if (t >= 0) {
        const char *name = gpt2_dtype_name((gpt2_dtype)t);
        format_bytes(alt, alt_s);
        return gpt2_fail(err, GPT2_ERR_NOMEM,
                         "the model needs %s in %s (weights + KV cache) but the memory budget is %s; "
                         "in %s it needs %s: load with precision '%s'",
                         need_s, gpt2_dtype_name(main), budget_s, name, alt_s, name);
    }
    p = gpt2_weights_plan_uniform(config, plan->untied_head, GPT2_DTYPE_Q8_0);
    format_bytes(gpt2_model_bytes(config, &p), alt_s);
    return gpt2_fail(err, GPT2_ERR_NOMEM,
                     "the model needs %s in %s (weights + KV cache) but the memory budget is %s; "
                     "no precision fits (even q8_0 needs %s)",
                     need_s, gpt2_dtype_name(main), budget_s, alt_s);
}
