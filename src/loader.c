/* loader.c - streaming GPT-2 checkpoint loader (see loader.h). */
#include "loader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp16.h"
#include "kernels.h"
#include "quantize.h"
#include "safetensors.h"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_IS_LITTLE_ENDIAN 1
#else
#define HOST_IS_LITTLE_ENDIAN 0
#endif

#define DEFAULT_SOURCE "model.safetensors"
#define NO_TENSOR SIZE_MAX

enum loader_state {
    S_LEN,      /* reading the 8-byte header length */
    S_HEADER,   /* buffering the JSON header */
    S_DATA,     /* streaming the data section into the weights */
    S_DONE,     /* every byte arrived; weights ready for finish */
    S_FINISHED, /* weights handed out */
    S_FAILED    /* sticky error in ld->failure */
};

/* Global slots, then GPT2_LAYER_SLOTS per layer. */
enum { SLOT_WTE, SLOT_WPE, SLOT_LNF_W, SLOT_LNF_B, SLOT_LM_HEAD, GLOBAL_SLOTS };
static const char *const global_names[GLOBAL_SLOTS] = {"wte.weight", "wpe.weight", "ln_f.weight",
                                                       "ln_f.bias", "lm_head.weight"};
#define LAYER_SLOTS 12
static const char *const layer_names[LAYER_SLOTS] = {
    "ln_1.weight",        "ln_1.bias",        "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",        "ln_2.bias",
    "mlp.c_fc.weight",    "mlp.c_fc.bias",    "mlp.c_proj.weight",  "mlp.c_proj.bias"};

#define CLASS_IGNORED (-1)
#define CLASS_ERROR (-2)

/* How a tensor provides its slot: the plain tensor, or one half of a quantized pair. */
enum { VAR_PLAIN, VAR_Q8, VAR_SCALE };

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

/* One tensor of the data section, in file order. The segments tile [0, data_size). */
typedef struct segment {
    uint64_t begin, end; /* byte range in the data section */
    enum seg_kind kind;
    float *dst;          /* SEG_FLOAT destination */
    gpt2_matrix *m;      /* SEG_MAT32 / SEG_BAND / SEG_Q8* / SEG_SCALE* destination */
    up_state *up;        /* SEG_Q8_UP / SEG_SCALE_UP */
    gpt2_st_dtype dtype;
    unsigned es;         /* source bytes per element (1..4 unless SEG_SKIP) */
    size_t rows, cols;   /* SEG_MAT32 / SEG_BAND: the source shape ([in, out] if transposed, else [out, in]) */
    int transposed;      /* SEG_MAT32 / SEG_BAND: the source is a Conv1D [in, out] tensor */
    size_t tensor;       /* index into hdr->tensors, for messages */
} segment;

struct gpt2_loader {
    gpt2_config cfg;
    uint64_t budget;
    char *source;
    enum loader_state state;
    gpt2_error failure;  /* valid when state == S_FAILED */
    uint64_t received;   /* bytes consumed from the stream */
    uint64_t file_size;  /* 0 = unknown */
    uint8_t len_bytes[8];
    uint64_t header_len; /* N, valid once 8 bytes arrived */
    char *header;        /* N bytes being buffered (S_HEADER only) */
    uint64_t header_have;
    size_t header_cap;   /* bytes allocated for header: grows with what arrives, up to N */
    uint64_t expected;   /* 8 + N + data_size once the header is validated, else 0 */
    gpt2_st_header *hdr;
    segment *segs;
    size_t nsegs, cur;   /* segs[cur] holds data position pos (cur == nsegs: done) */
    uint64_t pos;        /* bytes of the data section consumed */
    uint8_t carry[4];    /* the partial element straddling a chunk boundary */
    gpt2_weights *w;
    gpt2_precision precision;
    unsigned char *stage; /* SEG_BAND staging of source bytes: a band of BAND_ROWS rows (4, or
                          * 32 of a Conv1D source) that straddles a chunk boundary */
    gpt2_pool *pool;     /* converts bands in parallel (NULL: this thread) */
    up_state *ups;       /* per slot, for quantized weights loaded as f32/f16 (else NULL) */
    size_t nups;
};

static void free_ups(gpt2_loader *ld) {
    for (size_t i = 0; ld->ups && i < ld->nups; i++) free(ld->ups[i].scales);
    free(ld->ups);
    ld->ups = NULL;
    ld->nups = 0;
}

/* ---- errors ---------------------------------------------------------------------------- */

/* Copies the sticky failure into err and returns its code. */
static gpt2_err replay(const gpt2_loader *ld, gpt2_error *err) {
    if (err) *err = ld->failure;
    return ld->failure.code;
}

/* Enters S_FAILED with the message already in ld->failure; frees what is no longer needed. */
static gpt2_err fail_sticky(gpt2_loader *ld, gpt2_error *err) {
    if (ld->failure.code == GPT2_OK) ld->failure.code = GPT2_ERR_FORMAT;
    ld->state = S_FAILED;
    gpt2_weights_free(ld->w);
    ld->w = NULL;
    free(ld->header);
    ld->header = NULL;
    free(ld->stage);
    ld->stage = NULL;
    free_ups(ld);
    return replay(ld, err);
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 4, 5)))
#endif
static gpt2_err fail(gpt2_loader *ld, gpt2_error *err, gpt2_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->failure.message, sizeof ld->failure.message, fmt, ap);
    va_end(ap);
    ld->failure.code = code;
    return fail_sticky(ld, err);
}

static const char *tensor_name(const gpt2_st_tensor *t, char out[96]) {
    return gpt2_st_printable(t->name, t->name_len, out);
}

/* ---- creation -------------------------------------------------------------------------- */

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
    const char *src = opt && opt->source_name ? opt->source_name : DEFAULT_SOURCE;
    size_t slen = strlen(src);
    if (ld) ld->source = malloc(slen + 1);
    if (!ld || !ld->source) {
        free(ld);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory creating the loader");
    }
    memcpy(ld->source, src, slen + 1);
    ld->cfg = cfg;
    ld->budget = budget;
    ld->precision = prec;
    ld->pool = opt ? opt->pool : NULL;
    ld->state = S_LEN;
    *out = ld;
    return GPT2_OK;
}

void gpt2_loader_free(gpt2_loader *ld) {
    if (!ld) return;
    gpt2_weights_free(ld->w);
    gpt2_st_header_free(ld->hdr);
    free(ld->segs);
    free(ld->header);
    free(ld->source);
    free(ld->stage);
    free_ups(ld);
    free(ld);
}

uint64_t gpt2_loader_header_size(const gpt2_loader *ld) {
    return ld && ld->state != S_LEN ? ld->header_len : 0;
}

uint64_t gpt2_loader_bytes_expected(const gpt2_loader *ld) { return ld ? ld->expected : 0; }

uint64_t gpt2_loader_bytes_received(const gpt2_loader *ld) { return ld ? ld->received : 0; }

/* Checks what is known so far against the declared file size. */
static gpt2_err check_file_size(gpt2_loader *ld, gpt2_error *err) {
    uint64_t fs = ld->file_size;
    if (fs == 0) return GPT2_OK;
    if (ld->received > fs)
        return fail(ld, err, GPT2_ERR_FORMAT, "%s: received %llu bytes but the file has %llu",
                    ld->source, (unsigned long long)ld->received, (unsigned long long)fs);
    if (ld->expected) {
        uint64_t data = ld->hdr->data_size;
        uint64_t have = fs - 8 >= ld->header_len ? fs - 8 - ld->header_len : 0; /* fs >= 10 */
        if (ld->expected > fs)
            return fail(ld, err, GPT2_ERR_FORMAT,
                        "%s is truncated: header says %llu bytes of data, file has %llu",
                        ld->source, (unsigned long long)data, (unsigned long long)have);
        if (ld->expected < fs)
            return fail(ld, err, GPT2_ERR_FORMAT, "%s has %llu extra bytes after the tensor data",
                        ld->source, (unsigned long long)(fs - ld->expected));
    } else if (ld->state != S_LEN) {
        gpt2_err rc = gpt2_st_check_header_len(ld->header_len, fs, ld->source, &ld->failure);
        if (rc) return fail_sticky(ld, err);
    }
    return GPT2_OK;
}

gpt2_err gpt2_loader_set_file_size(gpt2_loader *ld, uint64_t file_size, gpt2_error *err) {
    if (!ld) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_set_file_size: loader is NULL");
    if (ld->state == S_FAILED) return replay(ld, err);
    if (file_size < 8 + 2)
        return fail(ld, err, GPT2_ERR_FORMAT, "%s is too small to be a safetensors file (%llu bytes)",
                    ld->source, (unsigned long long)file_size);
    ld->file_size = file_size;
    return check_file_size(ld, err);
}

/* ---- header validation ----------------------------------------------------------------- */

/* The matrix kind of a slot, or -1 for a float32 vector/table slot. */
static int slot_matrix_kind(int slot) {
    if (slot == SLOT_WTE) return GPT2_MAT_WTE;
    if (slot == SLOT_LM_HEAD) return GPT2_MAT_LM_HEAD;
    if (slot < GLOBAL_SLOTS) return -1;
    switch ((slot - GLOBAL_SLOTS) % LAYER_SLOTS) {
    case 2: return GPT2_MAT_QKV;
    case 4: return GPT2_MAT_ATTN_PROJ;
    case 8: return GPT2_MAT_FC;
    case 10: return GPT2_MAT_MLP_PROJ;
    default: return -1;
    }
}

static int classify_base(gpt2_loader *ld, const gpt2_st_tensor *t, const char *s, size_t n);

/* Maps a tensor name to its weight slot, CLASS_IGNORED, or CLASS_ERROR (layer >= n_layer);
 * *variant says whether it is the plain tensor or the .q8 / .scale half of a quantized one. */
static int classify(gpt2_loader *ld, const gpt2_st_tensor *t, int *variant) {
    const char *s = t->name;
    size_t n = t->name_len;
    if (n > 12 && memcmp(s, "transformer.", 12) == 0) s += 12, n -= 12;
    *variant = VAR_PLAIN;
    if (n > 3 && memcmp(s + n - 3, ".q8", 3) == 0) *variant = VAR_Q8, n -= 3;
    else if (n > 6 && memcmp(s + n - 6, ".scale", 6) == 0) *variant = VAR_SCALE, n -= 6;
    int slot = classify_base(ld, t, s, n);
    if (*variant != VAR_PLAIN && slot >= 0 && slot_matrix_kind(slot) < 0) return CLASS_IGNORED;
    return slot;
}

static int classify_base(gpt2_loader *ld, const gpt2_st_tensor *t, const char *s, size_t n) {
    for (int i = 0; i < GLOBAL_SLOTS; i++)
        if (strlen(global_names[i]) == n && memcmp(global_names[i], s, n) == 0) return i;
    if (n < 3 || s[0] != 'h' || s[1] != '.') return CLASS_IGNORED;
    size_t j = 2;
    uint64_t layer = 0;
    while (j < n && s[j] >= '0' && s[j] <= '9') {
        if (layer < 1000000000u) layer = layer * 10 + (uint64_t)(s[j] - '0');
        j++;
    }
    /* "h.<decimal without leading zeros>.<suffix>" */
    if (j == 2 || j >= n || s[j] != '.' || (s[2] == '0' && j > 3)) return CLASS_IGNORED;
    if (layer >= (uint64_t)ld->cfg.n_layer) {
        char nm[96];
        fail(ld, NULL, GPT2_ERR_SHAPE, "%s: checkpoint has layer %llu (tensor '%s') but config says n_layer=%d",
             ld->source, (unsigned long long)layer, tensor_name(t, nm), ld->cfg.n_layer);
        return CLASS_ERROR;
    }
    const char *suf = s + j + 1;
    size_t sn = n - j - 1;
    for (int k = 0; k < LAYER_SLOTS; k++)
        if (strlen(layer_names[k]) == sn && memcmp(layer_names[k], suf, sn) == 0)
            return GLOBAL_SLOTS + (int)layer * LAYER_SLOTS + k;
    return CLASS_IGNORED; /* mask buffers attn.bias / attn.masked_bias, unknown extras */
}

/* The expected Hugging Face shape of a slot (ndim 1 or 2); *transposed for Conv1D weights. */
static int expected_shape(const gpt2_config *c, int slot, uint64_t shape[2], int *transposed) {
    uint64_t C = (uint64_t)c->n_embd, V = (uint64_t)c->n_vocab, T = (uint64_t)c->n_ctx,
             I = (uint64_t)c->n_inner;
    *transposed = 0;
    switch (slot) {
    case SLOT_WTE: case SLOT_LM_HEAD: shape[0] = V; shape[1] = C; return 2;
    case SLOT_WPE: shape[0] = T; shape[1] = C; return 2;
    case SLOT_LNF_W: case SLOT_LNF_B: shape[0] = C; return 1;
    default: break;
    }
    switch ((slot - GLOBAL_SLOTS) % LAYER_SLOTS) {
    case 2: *transposed = 1; shape[0] = C; shape[1] = 3 * C; return 2;
    case 3: shape[0] = 3 * C; return 1;
    case 4: *transposed = 1; shape[0] = C; shape[1] = C; return 2;
    case 8: *transposed = 1; shape[0] = C; shape[1] = I; return 2;
    case 9: shape[0] = I; return 1;
    case 10: *transposed = 1; shape[0] = I; shape[1] = C; return 2;
    default: shape[0] = C; return 1; /* layer norms and the C-sized biases */
    }
}

/* The float32 destination of a vector/table slot (NULL for a matrix slot). */
static float *slot_dst(const gpt2_weights *w, int slot) {
    switch (slot) {
    case SLOT_WPE: return w->wpe;
    case SLOT_LNF_W: return w->lnf_w;
    case SLOT_LNF_B: return w->lnf_b;
    case SLOT_WTE: case SLOT_LM_HEAD: return NULL;
    default: break;
    }
    const gpt2_layer_weights *L = &w->layers[(slot - GLOBAL_SLOTS) / LAYER_SLOTS];
    float *const p[LAYER_SLOTS] = {L->ln1_w, L->ln1_b, NULL,  L->qkv_b, NULL,
                                   L->attn_proj_b, L->ln2_w, L->ln2_b, NULL, L->fc_b,
                                   NULL, L->mlp_proj_b};
    return p[(slot - GLOBAL_SLOTS) % LAYER_SLOTS];
}

/* The matrix of a matrix slot (NULL otherwise). */
static gpt2_matrix *slot_matrix(gpt2_weights *w, int slot) {
    if (slot == SLOT_WTE) return &w->wte;
    if (slot == SLOT_LM_HEAD) return &w->lm_head;
    if (slot < GLOBAL_SLOTS) return NULL;
    gpt2_layer_weights *L = &w->layers[(slot - GLOBAL_SLOTS) / LAYER_SLOTS];
    switch ((slot - GLOBAL_SLOTS) % LAYER_SLOTS) {
    case 2: return &L->qkv_w;
    case 4: return &L->attn_proj_w;
    case 8: return &L->fc_w;
    case 10: return &L->mlp_proj_w;
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
    if (slot < GLOBAL_SLOTS) snprintf(out, cap, "%s", global_names[slot]);
    else
        snprintf(out, cap, "h.%d.%s", (slot - GLOBAL_SLOTS) / LAYER_SLOTS,
                 layer_names[(slot - GLOBAL_SLOTS) % LAYER_SLOTS]);
}

static gpt2_err check_shape(gpt2_loader *ld, const gpt2_st_tensor *t, const uint64_t *want, int nd,
                            gpt2_error *err) {
    char nm[96];
    if (t->ndim != nd || t->shape[0] != want[0] || (nd == 2 && t->shape[1] != want[1])) {
        char got_s[128], want_s[64];
        format_shape(t->shape, t->ndim, got_s, sizeof got_s);
        format_shape(want, nd, want_s, sizeof want_s);
        return fail(ld, err, GPT2_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", ld->source,
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
        return fail(ld, err, GPT2_ERR_SHAPE, "%s: quantized tensor '%s' has dtype %s, expected %s", ld->source,
                    tensor_name(t, nm), gpt2_st_printable(t->dtype_name, strlen(t->dtype_name), dt), want_dt);
    if (cols % GPT2_Q8_BLOCK)
        return fail(ld, err, GPT2_ERR_SHAPE, "%s: tensor '%s': a q8_0 weight needs in %% 32 == 0, but in is %d",
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
        return fail(ld, err, GPT2_ERR_UNSUPPORTED,
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

/* Moves past zero-length segments and segments fully consumed; S_DONE at the end. */
static void skip_finished_segments(gpt2_loader *ld) {
    while (ld->cur < ld->nsegs && ld->pos == ld->segs[ld->cur].end) segment_done(&ld->segs[ld->cur++]);
    if (ld->cur == ld->nsegs) ld->state = S_DONE;
}

/* SEG_BAND converts source rows a band at a time (emit_band). */
enum { BAND_ROWS = 4 };
static size_t band_rows(const segment *s) { return s->transposed ? GPT2_Q8_BLOCK : BAND_ROWS; }

/* The header is complete: validate it against the config, allocate, plan the data. */
static gpt2_err on_header(gpt2_loader *ld, gpt2_error *err) {
    gpt2_err rc = gpt2_st_header_parse(ld->header, (size_t)ld->header_len, ld->source, &ld->hdr,
                                       &ld->failure);
    free(ld->header);
    ld->header = NULL;
    if (rc) return fail_sticky(ld, err);
    const gpt2_st_header *h = ld->hdr;
    if (h->data_size > UINT64_MAX - 8 - ld->header_len)
        return fail(ld, err, GPT2_ERR_FORMAT, "%s: data section size overflows", ld->source);
    ld->expected = 8 + ld->header_len + h->data_size;
    if ((rc = check_file_size(ld, err))) return rc;

    /* Which tensor (if any) fills each slot, per variant (plain, .q8, .scale). */
    size_t nslots = GLOBAL_SLOTS + (size_t)ld->cfg.n_layer * LAYER_SLOTS;
    size_t *by_slot = malloc(3 * nslots * sizeof *by_slot);
    int *slot_of = malloc((h->count ? h->count : 1) * 2 * sizeof *slot_of);
    if (!by_slot || !slot_of) {
        free(by_slot);
        free(slot_of);
        return fail(ld, err, GPT2_ERR_NOMEM, "%s: out of memory reading the header", ld->source);
    }
    int *var_of = slot_of + (h->count ? h->count : 1);
    for (size_t s = 0; s < 3 * nslots; s++) by_slot[s] = NO_TENSOR;
    for (size_t i = 0; i < h->count && !rc; i++) {
        const gpt2_st_tensor *t = &h->tensors[i];
        int var;
        int slot = classify(ld, t, &var);
        slot_of[i] = slot;
        var_of[i] = var;
        if (slot == CLASS_ERROR) rc = fail_sticky(ld, err);
        if (slot < 0) continue;
        size_t *cell = &by_slot[(size_t)var * nslots + (size_t)slot];
        size_t other = *cell;
        if (other == NO_TENSOR && var == VAR_PLAIN) {
            other = by_slot[VAR_Q8 * nslots + (size_t)slot];
            if (other == NO_TENSOR) other = by_slot[VAR_SCALE * nslots + (size_t)slot];
        } else if (other == NO_TENSOR) {
            other = by_slot[VAR_PLAIN * nslots + (size_t)slot];
        }
        if (other != NO_TENSOR) {
            char a[96], b[96], what[64];
            slot_name(slot, what, sizeof what);
            rc = fail(ld, err, GPT2_ERR_FORMAT, "%s: tensors '%s' and '%s' both provide %s", ld->source,
                      tensor_name(&h->tensors[other], a), tensor_name(t, b), what);
            break;
        }
        *cell = i;
        rc = check_tensor(ld, t, slot, var, err);
    }
    for (size_t s = 0; s < nslots && !rc; s++) {
        size_t plain = by_slot[s], q8 = by_slot[nslots + s], sc = by_slot[2 * nslots + s];
        char what[64];
        slot_name((int)s, what, sizeof what);
        if (q8 != NO_TENSOR && sc == NO_TENSOR)
            rc = fail(ld, err, GPT2_ERR_SHAPE, "%s: tensor '%s.scale' is missing (the scales of the quantized '%s.q8')",
                      ld->source, what, what);
        else if (sc != NO_TENSOR && q8 == NO_TENSOR)
            rc = fail(ld, err, GPT2_ERR_SHAPE, "%s: tensor '%s.q8' is missing (only its scales '%s.scale' are present)",
                      ld->source, what, what);
        else if (plain == NO_TENSOR && q8 == NO_TENSOR && s != SLOT_LM_HEAD)
            rc = fail(ld, err, GPT2_ERR_SHAPE, "%s: tensor '%s' is missing", ld->source, what);
    }
    int untied = !rc && (by_slot[SLOT_LM_HEAD] != NO_TENSOR || by_slot[nslots + SLOT_LM_HEAD] != NO_TENSOR);

    /* The storage plan: per matrix kind, from the sources (AUTO) or the forced precision. */
    gpt2_weights_plan plan = gpt2_weights_plan_uniform(
        &ld->cfg, untied, ld->precision == GPT2_PRECISION_F16 ? GPT2_DTYPE_F16
                          : ld->precision == GPT2_PRECISION_Q8_0 ? GPT2_DTYPE_Q8_0 : GPT2_DTYPE_F32);
    for (int k = 0; k < GPT2_MAT_KINDS && !rc; k++) {
        size_t n_q8 = 0, n_f16 = 0, n_f32 = 0;
        for (size_t s = 0; s < nslots; s++) {
            if (slot_matrix_kind((int)s) != k) continue;
            if (by_slot[nslots + s] != NO_TENSOR) n_q8++;
            else if (by_slot[s] != NO_TENSOR) {
                if (h->tensors[by_slot[s]].dtype == GPT2_ST_F16) n_f16++;
                else n_f32++;
            }
        }
        if (n_q8 && (n_f16 || n_f32)) {
            rc = fail(ld, err, GPT2_ERR_UNSUPPORTED, "%s: the %s weights are partly quantized and partly not",
                      ld->source, gpt2_matrix_kind_name((gpt2_matrix_kind)k));
        } else if (ld->precision == GPT2_PRECISION_AUTO) {
            plan.dtype[k] = n_q8 ? GPT2_DTYPE_Q8_0 : n_f32 ? GPT2_DTYPE_F32 : n_f16 ? GPT2_DTYPE_F16 : GPT2_DTYPE_F32;
        }
    }
    free(by_slot);
    if (rc) {
        free(slot_of);
        return rc;
    }
    char reason[sizeof ld->w->precision_reason];
    gpt2_precision_choose(&ld->cfg, ld->precision, ld->budget, &plan, reason, sizeof reason);

    if ((rc = gpt2_check_budget(&ld->cfg, &plan, ld->budget, &ld->failure))) {
        free(slot_of);
        if (untied) {
            size_t l = strlen(ld->failure.message);
            snprintf(ld->failure.message + l, sizeof ld->failure.message - l, " (with a separate lm_head)");
        }
        return fail_sticky(ld, err);
    }
    rc = gpt2_weights_alloc_plan(&ld->cfg, &plan, &ld->w, &ld->failure); /* every byte is written */
    if (!rc) memcpy(ld->w->precision_reason, reason, sizeof reason);
    ld->segs = rc ? NULL : malloc((h->count ? h->count : 1) * sizeof *ld->segs);
    if (rc || !ld->segs) {
        free(slot_of);
        if (!rc) return fail(ld, err, GPT2_ERR_NOMEM, "%s: out of memory", ld->source);
        return fail_sticky(ld, err);
    }
    size_t stage_bytes = 0;
    for (size_t i = 0; i < h->count; i++) {
        const gpt2_st_tensor *t = &h->tensors[i];
        segment *s = &ld->segs[i];
        memset(s, 0, sizeof *s);
        s->begin = t->begin;
        s->end = t->end;
        s->tensor = i;
        s->kind = SEG_SKIP;
        if (slot_of[i] < 0) continue;
        uint64_t shape[2];
        int transposed;
        expected_shape(&ld->cfg, slot_of[i], shape, &transposed);
        s->dtype = t->dtype;
        s->es = t->elem_size;
        gpt2_matrix *m = slot_matrix(ld->w, slot_of[i]);
        if (!m) {
            s->kind = SEG_FLOAT;
            s->dst = slot_dst(ld->w, slot_of[i]);
        } else if (var_of[i] != VAR_PLAIN && m->type != GPT2_DTYPE_Q8_0) {
            /* a quantized weight into an f32/f16 matrix (forced precision) */
            if (!ld->ups) {
                ld->nups = GLOBAL_SLOTS + (size_t)ld->cfg.n_layer * LAYER_SLOTS;
                ld->ups = calloc(ld->nups, sizeof *ld->ups);
                if (!ld->ups) {
                    free(slot_of);
                    return fail(ld, err, GPT2_ERR_NOMEM, "%s: out of memory", ld->source);
                }
            }
            up_state *u = &ld->ups[slot_of[i]];
            size_t nsc = (size_t)m->rows * (size_t)m->cols / GPT2_Q8_BLOCK;
            if (!u->scales && !(u->scales = malloc(nsc * sizeof(float) + 4 * (size_t)m->cols + 1))) {
                free(slot_of);
                return fail(ld, err, GPT2_ERR_NOMEM, "%s: out of memory", ld->source);
            }
            u->head = (int8_t *)(u->scales + nsc);
            s->kind = var_of[i] == VAR_Q8 ? SEG_Q8_UP : SEG_SCALE_UP;
            s->m = m;
            s->up = u;
        } else if (var_of[i] == VAR_Q8) {
            s->kind = SEG_Q8;
            s->m = m;
        } else if (var_of[i] == VAR_SCALE) {
            s->kind = SEG_SCALE;
            s->m = m;
        } else if (m->type == GPT2_DTYPE_F32) {
            s->kind = SEG_MAT32;
            s->m = m;
            s->transposed = transposed;
            /* fits size_t: the destination of rows * cols floats was allocated */
            s->rows = (size_t)shape[0];
            s->cols = (size_t)shape[1];
        } else {
            s->kind = SEG_BAND;
            s->m = m;
            s->transposed = transposed;
            s->rows = (size_t)shape[0];
            s->cols = (size_t)shape[1];
            size_t need = band_rows(s) * s->cols * s->es;
            if (need > stage_bytes) stage_bytes = need;
        }
    }
    free(slot_of);
    if (stage_bytes && !(ld->stage = malloc(stage_bytes)))
        return fail(ld, err, GPT2_ERR_NOMEM, "%s: out of memory", ld->source);
    ld->nsegs = h->count;
    ld->cur = 0;
    ld->pos = 0;
    ld->state = S_DATA;
    skip_finished_segments(ld);
    return GPT2_OK;
}

/* ---- data conversion ------------------------------------------------------------------- */

static inline uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Converts cnt little-endian source elements to floats at dst[0], dst[stride], ... */
static void convert(gpt2_st_dtype dtype, const uint8_t *src, size_t cnt, float *dst, size_t stride) {
    switch (dtype) {
    case GPT2_ST_F32:
        if (stride == 1 && HOST_IS_LITTLE_ENDIAN) {
            memcpy(dst, src, cnt * sizeof(float));
        } else {
            for (size_t k = 0; k < cnt; k++) dst[k * stride] = gpt2_f32_from_bits(load_le32(src + 4 * k));
        }
        break;
    case GPT2_ST_F16:
        for (size_t k = 0; k < cnt; k++)
            dst[k * stride] = gpt2_f16_to_f32((uint16_t)(src[2 * k] | src[2 * k + 1] << 8));
        break;
    case GPT2_ST_BF16:
        for (size_t k = 0; k < cnt; k++)
            dst[k * stride] = gpt2_bf16_to_f32((uint16_t)(src[2 * k] | src[2 * k + 1] << 8));
        break;
    case GPT2_ST_OTHER:
        break; /* never planned into a destination */
    }
}

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
#define TILE_ROWS 16
#define TRANSPOSE_TILE(LOAD)                                                                \
    for (size_t o = 0; o < cols; o++) {                                                     \
        const uint8_t *p = src + o * es;                                                    \
        packed_row pr = packed_row_of(m, o);                                                \
        for (size_t r = 0; r < nrows; r++) d[packed_at(&pr, i0 + r)] = LOAD(p + r * row_bytes); \
    }
static inline float load_f32(const uint8_t *p) { return gpt2_f32_from_bits(load_le32(p)); }
static inline float load_f16(const uint8_t *p) { return gpt2_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static inline float load_bf16(const uint8_t *p) { return gpt2_bf16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static void transpose_rows(gpt2_st_dtype dtype, const uint8_t *src, size_t nrows, size_t cols,
                           size_t es, const gpt2_matrix *m, size_t i0) {
    size_t row_bytes = cols * es;
    float *d = (float *)m->data;
    switch (dtype) {
    case GPT2_ST_F32: TRANSPOSE_TILE(load_f32) break;
    case GPT2_ST_F16: TRANSPOSE_TILE(load_f16) break;
    case GPT2_ST_BF16: TRANSPOSE_TILE(load_bf16) break;
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
        convert(s->dtype, src, run, d + packed_at(&pr, i), 1);
        src += run * s->es;
        cnt -= run;
        i += run;
        if (i == cols && cnt) pr = packed_row_of(s->m, ++o), i = 0;
    }
}

/* SEG_BAND converts source rows a band at a time (kernels.h): BAND_ROWS (4) rows of a
 * source [out, in] are one packed tile, and GPT2_Q8_BLOCK (32) rows of a Conv1D source [in,
 * out] complete one block of every output row. */

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

/* SEG_BAND: source elements e0 .. e0+cnt-1. Whole bands inside the chunk are converted where
 * they lie (all of the chunk's at once); a band that straddles a chunk boundary is gathered in
 * the stage first. A last band of fewer rows (rows % band != 0) is converted when complete. */
static void emit_band(gpt2_loader *ld, const segment *s, size_t e0, const uint8_t *src, size_t cnt) {
    const size_t rows = s->rows, cols = s->cols, es = s->es, B = band_rows(s);
    size_t r = e0 / cols, c = e0 % cols;
    while (cnt) {
        if (r % B == 0 && c == 0 && cnt >= B * cols) {
            size_t n = cnt / (B * cols) * B;
            run_bands(ld, s, src, r, n);
            src += n * cols * es;
            cnt -= n * cols;
            r += n;
            continue;
        }
        size_t run = cols - c < cnt ? cols - c : cnt;
        memcpy(ld->stage + ((r % B) * cols + c) * es, src, run * es);
        src += run * es;
        cnt -= run;
        c += run;
        if (c < cols) break;
        r++;
        c = 0;
        if (r % B == 0 || r == rows) {
            size_t first = (r - 1) / B * B;
            run_bands(ld, s, ld->stage, first, r - first);
        }
    }
}

/* Writes source elements e0 .. e0+cnt-1 of segment s. Returns 0, or 1 + the index of a
 * q8_0 scale that is not a finite half (rejected: the kernels take finite scales, matrix.h). */
static size_t emit(gpt2_loader *ld, const segment *s, size_t e0, const uint8_t *src, size_t cnt) {
    switch (s->kind) {
    case SEG_SKIP: return 0;
    case SEG_BAND: emit_band(ld, s, e0, src, cnt); return 0;
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
    case SEG_SCALE_UP: convert(GPT2_ST_F16, src, cnt, s->up->scales + e0, 1); return 0;
    case SEG_Q8_UP:
        if (s->up->scales_done) {
            for (size_t k = 0; k < cnt; k++) put_up(s->m, e0 + k, (int8_t)src[k], s->up->scales);
        } else {
            memcpy((int8_t *)s->m->data + e0, src, cnt); /* widened when the scales are in */
        }
        return 0;
    case SEG_FLOAT: convert(s->dtype, src, cnt, s->dst + e0, 1); return 0;
    case SEG_MAT32: break;
    }
    if (!s->transposed) {
        put_f32_rows(s, e0, src, cnt);
        return 0;
    }
    /* source (i, o) of [rows=in, cols=out] goes to W(o, i) */
    size_t i = e0 / s->cols, o = e0 % s->cols;
    float *d = (float *)s->m->data;
    while (cnt) {
        if (o == 0 && cnt >= s->cols) { /* whole rows: tiled */
            size_t nrows = cnt / s->cols;
            if (nrows > TILE_ROWS) nrows = TILE_ROWS;
            transpose_rows(s->dtype, src, nrows, s->cols, s->es, s->m, i);
            src += nrows * s->cols * s->es;
            cnt -= nrows * s->cols;
            i += nrows;
            continue;
        }
        /* a partial row (chunk boundary): element by element */
        size_t run = s->cols - o < cnt ? s->cols - o : cnt;
        for (size_t k = 0; k < run; k++) {
            packed_row pr = packed_row_of(s->m, o + k);
            convert(s->dtype, src + k * s->es, 1, d + packed_at(&pr, i), 1);
        }
        src += run * s->es;
        cnt -= run;
        i++;
        o = 0;
    }
    return 0;
}

/* Consumes n bytes that all lie inside the current segment; returns emit's verdict. */
static size_t consume(gpt2_loader *ld, const uint8_t *p, size_t n) {
    const segment *s = &ld->segs[ld->cur];
    ld->pos += n;
    if (s->kind == SEG_SKIP) return 0;
    /* off: bytes of this segment consumed before this call (fits size_t: the segment's
     * elements fit in the allocated arena and es <= 4) */
    size_t off = (size_t)(ld->pos - n - s->begin), es = s->es;
    size_t part = off % es;
    if (part) { /* complete the carried partial element */
        size_t c = es - part < n ? es - part : n;
        memcpy(ld->carry + part, p, c);
        p += c;
        n -= c;
        off += c;
        if (off % es) return 0;
        size_t bad = emit(ld, s, off / es - 1, ld->carry, 1);
        if (bad) return bad;
    }
    size_t full = n / es;
    if (full) {
        size_t bad = emit(ld, s, off / es, p, full);
        if (bad) return bad;
        p += full * es;
        n -= full * es;
    }
    if (n) memcpy(ld->carry, p, n);
    return 0;
}

/* ---- feeding --------------------------------------------------------------------------- */

gpt2_err gpt2_loader_feed(gpt2_loader *ld, const uint8_t *bytes, size_t n, gpt2_error *err) {
    if (!ld || (!bytes && n)) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_feed: NULL argument");
    if (ld->state == S_FAILED) return replay(ld, err);
    if (ld->state == S_FINISHED)
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_feed: the loader has already finished");
    gpt2_err rc;
    while (n > 0) {
        size_t take;
        switch (ld->state) {
        case S_LEN:
            take = 8 - (size_t)ld->received < n ? 8 - (size_t)ld->received : n;
            memcpy(ld->len_bytes + ld->received, bytes, take);
            ld->received += take;
            if (ld->received == 8) {
                ld->header_len = gpt2_st_read_u64le(ld->len_bytes);
                ld->state = S_HEADER;
                rc = gpt2_st_check_header_len(ld->header_len, ld->file_size, ld->source, &ld->failure);
                if (rc) return fail_sticky(ld, err);
            }
            break;
        case S_HEADER:
            take = ld->header_len - ld->header_have < n ? (size_t)(ld->header_len - ld->header_have) : n;
            /* The buffer grows with the bytes that actually arrive (doubling, from 64 KiB), so a
             * stream that merely claims a huge header cannot make us allocate it up front. */
            if (ld->header_have + take > ld->header_cap) {
                size_t want = ld->header_cap ? ld->header_cap : 65536;
                while (want < ld->header_have + take) want *= 2;
                if (want > ld->header_len) want = (size_t)ld->header_len;
                char *grown = realloc(ld->header, want);
                if (!grown)
                    return fail(ld, err, GPT2_ERR_NOMEM, "%s: out of memory for a %llu-byte header",
                                ld->source, (unsigned long long)ld->header_len);
                ld->header = grown;
                ld->header_cap = want;
            }
            memcpy(ld->header + ld->header_have, bytes, take);
            ld->header_have += take;
            ld->received += take;
            if (ld->header_have == ld->header_len && (rc = on_header(ld, err))) return rc;
            break;
        case S_DATA: {
            uint64_t left = ld->segs[ld->cur].end - ld->pos;
            take = left < n ? (size_t)left : n;
            size_t bad = consume(ld, bytes, take);
            if (bad) {
                const segment *s = &ld->segs[ld->cur];
                size_t nb = (size_t)s->m->cols / GPT2_Q8_BLOCK;
                char nm[96];
                return fail(ld, err, GPT2_ERR_FORMAT,
                            "%s: tensor '%s': the scale of row %zu, block %zu is not a finite number",
                            ld->source, tensor_name(&ld->hdr->tensors[s->tensor], nm), (bad - 1) / nb,
                            (bad - 1) % nb);
            }
            ld->received += take;
            skip_finished_segments(ld);
            break;
        }
        case S_DONE:
            return fail(ld, err, GPT2_ERR_FORMAT,
                        "%s has extra bytes after the tensor data (at least %zu more than the %llu "
                        "bytes its header describes)",
                        ld->source, n, (unsigned long long)ld->expected);
        default:
            return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_feed: bad loader state");
        }
        bytes += take;
        n -= take;
    }
    return GPT2_OK;
}

gpt2_err gpt2_loader_finish(gpt2_loader *ld, gpt2_weights **out, gpt2_error *err) {
    if (!ld || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_finish: NULL argument");
    *out = NULL;
    char nm[96];
    switch (ld->state) {
    case S_FAILED: return replay(ld, err);
    case S_FINISHED:
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_finish: the weights were already handed out");
    case S_LEN:
        if (ld->received == 0) return fail(ld, err, GPT2_ERR_FORMAT, "%s is empty", ld->source);
        return fail(ld, err, GPT2_ERR_FORMAT,
                    "%s is truncated: got %llu bytes, the header length alone takes 8", ld->source,
                    (unsigned long long)ld->received);
    case S_HEADER:
        return fail(ld, err, GPT2_ERR_FORMAT, "%s is truncated: got %llu of the %llu header bytes",
                    ld->source, (unsigned long long)ld->header_have,
                    (unsigned long long)ld->header_len);
    case S_DATA:
        return fail(ld, err, GPT2_ERR_FORMAT,
                    "%s is truncated: got %llu of %llu bytes (tensor '%s' is incomplete)", ld->source,
                    (unsigned long long)ld->received, (unsigned long long)ld->expected,
                    tensor_name(&ld->hdr->tensors[ld->segs[ld->cur].tensor], nm));
    case S_DONE:
        gpt2_weights_check_finite(ld->w); /* the f16 kernels' fast path (matrix.h) */
        *out = ld->w;
        ld->w = NULL;
        ld->state = S_FINISHED;
        return GPT2_OK;
    }
    return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_loader_finish: bad loader state");
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
#define CHUNK_BYTES (4u << 20)

/* Reads a small text file whole into *out (caller frees). */
static gpt2_err read_small_file(const char *path, char **out, size_t *len, gpt2_error *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return gpt2_fail(err, GPT2_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(MAX_CONFIG_BYTES + 1);
    if (!buf) {
        fclose(f);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MAX_CONFIG_BYTES) {
        free(buf);
        if (bad) return gpt2_fail(err, GPT2_ERR_IO, "error reading %s", path);
        return gpt2_fail(err, GPT2_ERR_FORMAT, "%s is larger than %u bytes", path, MAX_CONFIG_BYTES);
    }
    *out = buf;
    *len = n;
    return GPT2_OK;
}

gpt2_err gpt2_load_dir(const char *dir, const gpt2_loader_options *opt, gpt2_weights **out,
                       gpt2_error *err) {
    if (!dir || !out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_load_dir: NULL argument");
    *out = NULL;
    char *cfg_path = join_path(dir, "config.json"), *st_path = join_path(dir, "model.safetensors");
    char *cfg = NULL;
    uint8_t *chunk = NULL;
    gpt2_loader *ld = NULL;
    FILE *f = NULL;
    size_t cfg_len;
    gpt2_err rc;
    if (!cfg_path || !st_path) {
        rc = gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = read_small_file(cfg_path, &cfg, &cfg_len, err))) goto done;
    gpt2_loader_options o = {0, NULL, GPT2_PRECISION_AUTO, NULL};
    if (opt) o = *opt;
    o.source_name = st_path;
    if ((rc = gpt2_loader_create(cfg, cfg_len, &o, &ld, err))) goto done;
    f = fopen(st_path, "rb");
    if (!f) {
        rc = gpt2_fail(err, GPT2_ERR_IO, "cannot open %s: %s", st_path, strerror(errno));
        goto done;
    }
    /* the size lets a bad header length or truncation fail before streaming everything */
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size >= 0 && (rc = gpt2_loader_set_file_size(ld, (uint64_t)size, err))) goto done;
    }
    if (fseek(f, 0, SEEK_SET) != 0) {
        rc = gpt2_fail(err, GPT2_ERR_IO, "cannot seek in %s", st_path);
        goto done;
    }
    chunk = malloc(CHUNK_BYTES);
    if (!chunk) {
        rc = gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        size_t n = fread(chunk, 1, CHUNK_BYTES, f);
        if ((rc = gpt2_loader_feed(ld, chunk, n, err))) goto done;
        if (n < CHUNK_BYTES) break;
    }
    if (ferror(f)) {
        rc = gpt2_fail(err, GPT2_ERR_IO, "error reading %s", st_path);
        goto done;
    }
    rc = gpt2_loader_finish(ld, out, err);
done:
    if (f) fclose(f);
    gpt2_loader_free(ld);
    free(chunk);
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

/* "6.6 GB", "135.2 MB", "3012 bytes" */
static void format_bytes(uint64_t n, char *out, size_t cap) {
    if (n >= 1000000000u) snprintf(out, cap, "%.1f GB", (double)n / 1e9);
    else if (n >= 1000000u) snprintf(out, cap, "%.1f MB", (double)n / 1e6);
    else snprintf(out, cap, "%llu bytes", (unsigned long long)n);
}

/* The plan's main precision: the dtype holding most linear parameters. */
static gpt2_dtype plan_main_dtype(const gpt2_config *config, const gpt2_weights_plan *plan) {
    gpt2_weights tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.config = *config;
    tmp.plan = *plan;
    return gpt2_weights_main_dtype(&tmp);
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
    uint64_t need = gpt2_model_bytes(cfg, plan);
    if (!budget || need <= budget) {
        snprintf(reason, cap, "auto: %s as stored%s", gpt2_dtype_name(stored), budget ? " (fits the memory budget)" : "");
        return stored;
    }
    for (int t = (int)stored + 1; t <= GPT2_DTYPE_Q8_0; t++) {
        gpt2_weights_plan p = gpt2_weights_plan_uniform(cfg, plan->untied_head, (gpt2_dtype)t);
        uint64_t alt = gpt2_model_bytes(cfg, &p);
        if (alt <= budget) {
            char need_s[32], budget_s[32], alt_s[32];
            if (need == UINT64_MAX) snprintf(need_s, sizeof need_s, "more than can be addressed");
            else format_bytes(need, need_s, sizeof need_s);
            format_bytes(budget, budget_s, sizeof budget_s);
            format_bytes(alt, alt_s, sizeof alt_s);
            snprintf(reason, cap, "auto: %s, because %s as stored needs %s but the memory budget is %s (%s needs %s)",
                     gpt2_dtype_name((gpt2_dtype)t), gpt2_dtype_name(stored), need_s, budget_s,
                     gpt2_dtype_name((gpt2_dtype)t), alt_s);
            *plan = p;
            return plan_main_dtype(cfg, plan);
        }
    }
    snprintf(reason, cap, "auto: %s as stored (nothing fits)", gpt2_dtype_name(stored));
    return stored;
}

gpt2_err gpt2_check_budget(const gpt2_config *config, const gpt2_weights_plan *plan, uint64_t budget,
                           gpt2_error *err) {
    if (!config || !plan) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_check_budget: NULL argument");
    uint64_t need = gpt2_model_bytes(config, plan);
    if (need == UINT64_MAX && !budget)
        return gpt2_fail(err, GPT2_ERR_NOMEM, "the model is too large to address");
    if (!budget || need <= budget) return GPT2_OK;
    gpt2_dtype main = plan_main_dtype(config, plan);
    char need_s[32], budget_s[32], alt_s[32];
    if (need == UINT64_MAX) snprintf(need_s, sizeof need_s, "more than can be addressed");
    else format_bytes(need, need_s, sizeof need_s);
    format_bytes(budget, budget_s, sizeof budget_s);
    /* the most precise smaller precision that fits */
    static const gpt2_dtype order[] = {GPT2_DTYPE_F32, GPT2_DTYPE_F16, GPT2_DTYPE_Q8_0};
    static const char *const opt_name[] = {"f32", "f16", "q8_0"};
    for (int i = 0; i < 3; i++) {
        if (order[i] <= main) continue; /* not smaller than what was asked */
        gpt2_weights_plan p = gpt2_weights_plan_uniform(config, plan->untied_head, order[i]);
        uint64_t alt = gpt2_model_bytes(config, &p);
        if (alt <= budget) {
            format_bytes(alt, alt_s, sizeof alt_s);
            return gpt2_fail(err, GPT2_ERR_NOMEM,
                             "the model needs %s in %s (weights + KV cache) but the memory budget is %s; "
                             "in %s it needs %s: load with precision '%s'",
                             need_s, gpt2_dtype_name(main), budget_s, opt_name[i], alt_s, opt_name[i]);
        }
    }
    gpt2_weights_plan q = gpt2_weights_plan_uniform(config, plan->untied_head, GPT2_DTYPE_Q8_0);
    format_bytes(gpt2_model_bytes(config, &q), alt_s, sizeof alt_s);
    return gpt2_fail(err, GPT2_ERR_NOMEM,
                     "the model needs %s in %s (weights + KV cache) but the memory budget is %s; "
                     "no precision fits (even q8_0 needs %s)",
                     need_s, gpt2_dtype_name(main), budget_s, alt_s);
}
