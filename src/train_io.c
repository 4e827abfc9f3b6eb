/* train_io.c - saving a training state (train.h): Hugging Face safetensors + config.json of the
 * trained parameters, and the resumable checkpoint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantize.h"
#include "safetensors.h"
#include "train.h"

/* ---------------------------------------------------------------- safetensors */

/* Tensor i's Hugging Face shape: Conv1D weights [in, out] = [cols, rows]; vectors [n]. */
static int hf_shape(const gpt2_train_tensor *x, uint64_t shape[2]) {
    if (x->rows == 1) {
        shape[0] = (uint64_t)x->cols;
        return 1;
    }
    shape[0] = (uint64_t)(x->conv1d ? x->cols : x->rows);
    shape[1] = (uint64_t)(x->conv1d ? x->rows : x->cols);
    return 2;
}

/* Whether tensor x is written as F16 in an F16 file: the tensors the model holds as matrices
 * (wte, lm_head and the linear weights: exactly the decayed ones); wpe, biases and layer norms,
 * which the model always holds in float32, stay F32, so that a saved model loads back exactly
 * as the model in memory. */
static int stored_f16(const gpt2_train_tensor *x, int f16) { return f16 && x->decay; }

/* Sorted order of the tensors by name (the header lists them so, and the data follows it). */
static int cmp_names(const void *a, const void *b) {
    const gpt2_train_tensor *x = *(const gpt2_train_tensor *const *)a, *y = *(const gpt2_train_tensor *const *)b;
    return strcmp(x->name, y->name);
}

/* The file's header (without the 8-byte length) in w, which the caller frees; its data_bytes is
 * then the size of the data section. */
static gpt2_err st_header(const gpt2_train_tensor **sorted, int n, int f16, gpt2_st_writer *w, gpt2_error *err) {
    gpt2_st_writer_begin(w, "\"format\":\"pt\"");
    for (int i = 0; i < n; i++) {
        uint64_t shape[2];
        int nd = hf_shape(sorted[i], shape), h = stored_f16(sorted[i], f16);
        gpt2_st_writer_add(w, sorted[i]->name, strlen(sorted[i]->name), "", h ? "F16" : "F32", nd, shape,
                           (uint64_t)sorted[i]->rows * (uint64_t)sorted[i]->cols * (h ? 2 : 4));
    }
    return gpt2_st_writer_end(w, err);
}

/* The parameters to save: a tensor table and the value of element (o, i) of tensor k
 * ([out, in] layout), from a training state or from a model's weights. */
typedef struct st_source {
    const gpt2_train_tensor *tab;
    int n;
    const float *params;   /* a training state's float32 parameters, or NULL */
    gpt2_weights *w;       /* else the model's weights */
} st_source;

static float st_value(const st_source *src, int k, size_t o, size_t i) {
    const gpt2_train_tensor *x = &src->tab[k];
    if (src->params) return src->params[x->offset + o * (size_t)x->cols + i];
    const gpt2_matrix *m;
    float *f;
    gpt2_weights_tensor(src->w, k, &m, &f);
    return m ? gpt2_matrix_get(m, (int)o, (int)i) : f[o * (size_t)x->cols + i];
}

static const gpt2_train_tensor **sorted_tensors(const st_source *src) {
    const gpt2_train_tensor **s = malloc((size_t)src->n * sizeof *s);
    if (!s) return NULL;
    for (int i = 0; i < src->n; i++) s[i] = &src->tab[i];
    qsort(s, (size_t)src->n, sizeof *s, cmp_names);
    return s;
}

static uint64_t st_size(const st_source *src, gpt2_dtype dtype) {
    if (dtype != GPT2_DTYPE_F32 && dtype != GPT2_DTYPE_F16) return 0;
    const gpt2_train_tensor **s = sorted_tensors(src);
    if (!s) return 0;
    gpt2_st_writer w;
    uint64_t total = st_header(s, src->n, dtype == GPT2_DTYPE_F16, &w, NULL) == GPT2_OK ? 8 + w.len + w.data_bytes : 0;
    gpt2_st_writer_free(&w);
    free(s);
    return total;
}

static gpt2_err st_write(const st_source *src, gpt2_dtype dtype, uint8_t *buf, uint64_t cap, gpt2_error *err) {
    if (dtype != GPT2_DTYPE_F32 && dtype != GPT2_DTYPE_F16)
        return gpt2_fail(err, GPT2_ERR_ARG, "a model is saved as f32 or f16, not %s", gpt2_dtype_name(dtype));
    const gpt2_train_tensor **s = sorted_tensors(src);
    if (!s) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    int n = src->n, f16 = dtype == GPT2_DTYPE_F16;
    gpt2_st_writer w;
    gpt2_err rc = st_header(s, n, f16, &w, err);
    uint64_t need = 8 + w.len + w.data_bytes;
    if (rc == GPT2_OK && cap < need)
        rc = gpt2_fail(err, GPT2_ERR_ARG, "the buffer holds %llu bytes, the file needs %llu", (unsigned long long)cap,
                       (unsigned long long)need);
    if (rc != GPT2_OK) {
        gpt2_st_writer_free(&w);
        free(s);
        return rc;
    }
    size_t h = w.len;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, w.text, h);
    gpt2_st_writer_free(&w);
    uint8_t *p = buf + 8 + h;
    for (int k = 0; k < n; k++) {
        const gpt2_train_tensor *x = s[k];
        int idx = (int)(x - src->tab);
        size_t R = (size_t)x->rows, C = (size_t)x->cols;
        /* element e of the file's row-major order: Conv1D [in, out] is our [out, in] transposed */
        for (size_t e = 0; e < R * C; e++) {
            float v = x->conv1d ? st_value(src, idx, e % R, e / R) : st_value(src, idx, e / C, e % C);
            if (stored_f16(x, f16)) {
                uint16_t hb = gpt2_f32_to_f16(v);
                p[0] = (uint8_t)hb;
                p[1] = (uint8_t)(hb >> 8);
                p += 2;
            } else {
                uint32_t u;
                memcpy(&u, &v, 4);
                for (int b = 0; b < 4; b++) p[b] = (uint8_t)(u >> (8 * b));
                p += 4;
            }
        }
    }
    free(s);
    return GPT2_OK;
}

static st_source train_source(gpt2_train *t) {
    st_source s = {gpt2_train_tensor_at(t, 0), gpt2_train_tensor_count(t), gpt2_train_array(t, 0), NULL};
    return s;
}

uint64_t gpt2_train_safetensors_size(gpt2_train *t, gpt2_dtype dtype) {
    if (!t) return 0;
    st_source s = train_source(t);
    return st_size(&s, dtype);
}

gpt2_err gpt2_train_write_safetensors(gpt2_train *t, gpt2_dtype dtype, uint8_t *buf, uint64_t cap, gpt2_error *err) {
    if (!t || !buf) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_write_safetensors: NULL argument");
    st_source s = train_source(t);
    return st_write(&s, dtype, buf, cap, err);
}

/* A model's weights as a source (its table in a malloc'ed block the caller frees). */
static int weights_source(gpt2_weights *w, st_source *s) {
    int n = gpt2_train_tensor_table(&w->config, !w->tied_head, NULL);
    gpt2_train_tensor *tab = n ? malloc((size_t)n * sizeof *tab) : NULL;
    if (!tab) return 0;
    gpt2_train_tensor_table(&w->config, !w->tied_head, tab);
    s->tab = tab;
    s->n = n;
    s->params = NULL;
    s->w = w;
    return 1;
}

uint64_t gpt2_weights_safetensors_size(gpt2_weights *w, gpt2_dtype dtype) {
    st_source s;
    if (!w || !weights_source(w, &s)) return 0;
    uint64_t r = st_size(&s, dtype);
    free((void *)s.tab);
    return r;
}

gpt2_err gpt2_weights_write_safetensors(gpt2_weights *w, gpt2_dtype dtype, uint8_t *buf, uint64_t cap,
                                        gpt2_error *err) {
    if (!w || !buf) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_weights_write_safetensors: NULL argument");
    st_source s;
    if (!weights_source(w, &s)) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    gpt2_err rc = st_write(&s, dtype, buf, cap, err);
    free((void *)s.tab);
    return rc;
}

size_t gpt2_train_config_json(const gpt2_train *t, gpt2_dtype dtype, char *buf, size_t cap) {
    return t ? gpt2_config_json(gpt2_train_config(t), gpt2_train_tied_head(t), dtype, buf, cap) : 0;
}

size_t gpt2_config_json(const gpt2_config *c, int tied_head, gpt2_dtype dtype, char *buf, size_t cap) {
    if (!c) return 0;
    char eps[32];
    snprintf(eps, sizeof eps, "%.9g", (double)c->ln_eps);
    int n = snprintf(buf, buf ? cap : 0,
                     "{\n"
                     "  \"activation_function\": \"gelu_new\",\n"
                     "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
                     "  \"bos_token_id\": 50256,\n"
                     "  \"eos_token_id\": 50256,\n"
                     "  \"layer_norm_epsilon\": %s,\n"
                     "  \"model_type\": \"gpt2\",\n"
                     "  \"n_ctx\": %d,\n"
                     "  \"n_embd\": %d,\n"
                     "  \"n_head\": %d,\n"
                     "  \"n_inner\": %d,\n"
                     "  \"n_layer\": %d,\n"
                     "  \"n_positions\": %d,\n"
                     "  \"scale_attn_weights\": true,\n"
                     "  \"tie_word_embeddings\": %s,\n"
                     "  \"torch_dtype\": \"%s\",\n"
                     "  \"vocab_size\": %d\n"
                     "}\n",
                     eps, c->n_ctx, c->n_embd, c->n_head, c->n_inner, c->n_layer, c->n_ctx,
                     tied_head ? "true" : "false", dtype == GPT2_DTYPE_F16 ? "float16" : "float32",
                     c->n_vocab);
    return n < 0 ? 0 : (size_t)n;
}

/* ---------------------------------------------------------------- checkpoint
 * "GPT2TRN1", u32 version 2, u32 optimizer, i64 step, u64 n_params, i32 n_vocab, n_ctx, n_embd,
 * n_head, n_layer, n_inner, tied head (0/1), 0; then params [, m, v] as little-endian float32
 * (the host's order: every supported host is little-endian). */

static const char CKPT_MAGIC[8] = {'G', 'P', 'T', '2', 'T', 'R', 'N', '1'};
enum { CKPT_VERSION = 2, CKPT_SHAPE = 8, CKPT_HEADER = 8 + 4 + 4 + 8 + 8 + 4 * CKPT_SHAPE };

static int arrays_of(const gpt2_train *t) { return gpt2_train_options_of(t)->optimizer == GPT2_OPTIM_ADAMW ? 3 : 1; }

uint64_t gpt2_train_checkpoint_size(const gpt2_train *t) {
    if (!t) return 0;
    return CKPT_HEADER + (uint64_t)arrays_of(t) * gpt2_train_param_count(t) * 4;
}

/* The model shape recorded in a checkpoint: n_vocab, n_ctx, n_embd, n_head, n_layer, n_inner,
 * tied head, 0. */
static void ckpt_shape(const gpt2_train *t, int32_t shape[CKPT_SHAPE]) {
    const gpt2_config *c = gpt2_train_config(t);
    int32_t v[CKPT_SHAPE] = {c->n_vocab, c->n_ctx, c->n_embd, c->n_head, c->n_layer, c->n_inner,
                             gpt2_train_tied_head(t) ? 1 : 0, 0};
    memcpy(shape, v, sizeof v);
}

/* The checkpoint's header for t. */
static void ckpt_header(gpt2_train *t, uint8_t h[CKPT_HEADER]) {
    uint32_t version = CKPT_VERSION, opt = (uint32_t)gpt2_train_options_of(t)->optimizer;
    int64_t step = gpt2_train_step_count(t);
    uint64_t np = gpt2_train_param_count(t);
    int32_t shape[CKPT_SHAPE];
    ckpt_shape(t, shape);
    memcpy(h, CKPT_MAGIC, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &opt, 4);
    memcpy(h + 16, &step, 8);
    memcpy(h + 24, &np, 8);
    memcpy(h + 32, shape, sizeof shape);
}

/* Checks a header against t and the total length; *step gets its step count. */
static gpt2_err ckpt_check(gpt2_train *t, const uint8_t *h, uint64_t len, int64_t *step, gpt2_error *err) {
    if (len < CKPT_HEADER || memcmp(h, CKPT_MAGIC, 8) != 0)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "not a fine-tuning checkpoint (bad magic)");
    uint32_t version, opt;
    uint64_t np;
    int32_t got[CKPT_SHAPE], want[CKPT_SHAPE];
    memcpy(&version, h + 8, 4);
    memcpy(&opt, h + 12, 4);
    memcpy(step, h + 16, 8);
    memcpy(&np, h + 24, 8);
    memcpy(got, h + 32, sizeof got);
    ckpt_shape(t, want);
    if (version != CKPT_VERSION)
        return gpt2_fail(err, GPT2_ERR_UNSUPPORTED, "checkpoint version %u is not supported (this build reads %d)",
                         version, CKPT_VERSION);
    if (opt != (uint32_t)gpt2_train_options_of(t)->optimizer)
        return gpt2_fail(err, GPT2_ERR_ARG, "the checkpoint was made with the %s optimizer",
                         opt == GPT2_OPTIM_SGD ? "sgd" : opt == GPT2_OPTIM_ADAMW ? "adamw" : "an unknown");
    if (memcmp(got, want, sizeof got) != 0 || np != gpt2_train_param_count(t))
        return gpt2_fail(err, GPT2_ERR_SHAPE,
                         "the checkpoint is of another model: %d layers, %d heads, width %d, vocabulary %d, context "
                         "%d, MLP %d, %s head; this model has %d, %d, %d, %d, %d, %d, %s",
                         got[4], got[3], got[2], got[0], got[1], got[5], got[6] ? "tied" : "separate", want[4], want[3],
                         want[2], want[0], want[1], want[5], want[6] ? "tied" : "separate");
    if (*step < 0) return gpt2_fail(err, GPT2_ERR_FORMAT, "the checkpoint's step count is negative");
    if (len != gpt2_train_checkpoint_size(t))
        return gpt2_fail(err, GPT2_ERR_FORMAT, "the checkpoint has %llu bytes, expected %llu", (unsigned long long)len,
                         (unsigned long long)gpt2_train_checkpoint_size(t));
    return GPT2_OK;
}

static float *ckpt_array(gpt2_train *t, int a) { return gpt2_train_array(t, a == 0 ? 0 : a + 1); }

gpt2_err gpt2_train_checkpoint_write(gpt2_train *t, uint8_t *buf, uint64_t cap, gpt2_error *err) {
    if (!t || !buf) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_checkpoint_write: NULL argument");
    if (cap < gpt2_train_checkpoint_size(t))
        return gpt2_fail(err, GPT2_ERR_ARG, "the checkpoint buffer is too small");
    ckpt_header(t, buf);
    uint64_t np = gpt2_train_param_count(t);
    for (int a = 0; a < arrays_of(t); a++) memcpy(buf + CKPT_HEADER + (uint64_t)a * np * 4, ckpt_array(t, a), np * 4);
    return GPT2_OK;
}

gpt2_err gpt2_train_checkpoint_read(gpt2_train *t, const uint8_t *buf, uint64_t len, gpt2_error *err) {
    if (!t || !buf) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_checkpoint_read: NULL argument");
    int64_t step = 0;
    gpt2_err rc = ckpt_check(t, buf, len, &step, err);
    if (rc != GPT2_OK) return rc;
    uint64_t np = gpt2_train_param_count(t);
    for (int a = 0; a < arrays_of(t); a++) memcpy(ckpt_array(t, a), buf + CKPT_HEADER + (uint64_t)a * np * 4, np * 4);
    gpt2_train_zero_grad(t);
    gpt2_train_set_step_count(t, step);
    return GPT2_OK;
}

gpt2_err gpt2_train_checkpoint_save(gpt2_train *t, const char *path, gpt2_error *err) {
    if (!t || !path) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_checkpoint_save: NULL argument");
    FILE *f = fopen(path, "wb");
    if (!f) return gpt2_fail(err, GPT2_ERR_IO, "cannot create %s", path);
    uint8_t h[CKPT_HEADER];
    ckpt_header(t, h);
    size_t np = gpt2_train_param_count(t);
    int ok = fwrite(h, 1, sizeof h, f) == sizeof h;
    for (int a = 0; ok && a < arrays_of(t); a++) ok = fwrite(ckpt_array(t, a), 4, np, f) == np;
    if (fclose(f) != 0) ok = 0;
    return ok ? GPT2_OK : gpt2_fail(err, GPT2_ERR_IO, "cannot write %s", path);
}

gpt2_err gpt2_train_checkpoint_load(gpt2_train *t, const char *path, gpt2_error *err) {
    if (!t || !path) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_train_checkpoint_load: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return gpt2_fail(err, GPT2_ERR_IO, "cannot open %s", path);
    uint8_t h[CKPT_HEADER];
    long len = -1;
    if (fread(h, 1, sizeof h, f) == sizeof h && fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    int64_t step = 0;
    gpt2_err rc = len < 0 ? gpt2_fail(err, GPT2_ERR_FORMAT, "%s is not a fine-tuning checkpoint", path)
                          : ckpt_check(t, h, (uint64_t)len, &step, err);
    size_t np = gpt2_train_param_count(t);
    if (rc == GPT2_OK && fseek(f, CKPT_HEADER, SEEK_SET) != 0) rc = gpt2_fail(err, GPT2_ERR_IO, "cannot read %s", path);
    for (int a = 0; rc == GPT2_OK && a < arrays_of(t); a++)
        if (fread(ckpt_array(t, a), 4, np, f) != np) rc = gpt2_fail(err, GPT2_ERR_IO, "cannot read %s", path);
    fclose(f);
    if (rc != GPT2_OK) return rc;
    gpt2_train_zero_grad(t);
    gpt2_train_set_step_count(t, step);
    return GPT2_OK;
}
