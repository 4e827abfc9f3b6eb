/* safetensors.h - the safetensors format: header parsing and validation, a streaming reader,
 * element decoding, and the names of GPT-2's tensors.
 *
 * File layout: an 8-byte little-endian u64 N, N bytes of JSON header (UTF-8, possibly padded
 * with trailing spaces), then the data section. The header maps each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section),
 * plus an optional "__metadata__" object that is ignored.
 *
 * gpt2_st_header_parse validates, for every tensor: dtype is a string, shape an array of
 * non-negative integers (at most GPT2_ST_MAX_DIMS), begin <= end, and for known dtypes
 * end - begin == product(shape) * element size (all uint64, overflow-checked). Across
 * tensors: no duplicate names, no overlaps, and no holes - the tensors tile the data section
 * [0, data_size) exactly, as Hugging Face's safetensors library requires. Dtype strings we do
 * not know (e.g. future sub-byte types) are accepted with elem_size 0 and no size check, so
 * that such tensors can still be skipped; only the caller can decide they are needed.
 *
 * The streaming reader (gpt2_st_reader) is fed a whole file in order, in chunks of any size,
 * and is what both the loader (loader.h) and the converter (quantize.h) read files with. The
 * header writer (gpt2_st_writer) is what the converter and a trained model's save (train.h)
 * write headers with.
 */
#ifndef GPT2_SAFETENSORS_H
#define GPT2_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fp16.h"
#include "status.h"

#define GPT2_ST_MAX_HEADER (100u * 1024u * 1024u) /* same limit as Hugging Face's library */
#define GPT2_ST_MAX_DIMS 8

typedef enum gpt2_st_dtype {
    GPT2_ST_F32,
    GPT2_ST_F16,
    GPT2_ST_BF16,
    GPT2_ST_OTHER /* any other dtype (F64, I8, BOOL, ...): can be skipped, not loaded */
} gpt2_st_dtype;

typedef struct gpt2_st_tensor {
    const char *name;       /* decoded UTF-8, NUL-terminated (owned by the header) */
    size_t name_len;        /* byte length; names may contain \0 via \u0000 */
    const char *dtype_name; /* as written, e.g. "F64"; never holds a NUL byte (owned by the header) */
    gpt2_st_dtype dtype;
    unsigned elem_size;     /* bytes per element; 0 for a dtype string we do not know */
    int ndim;
    uint64_t shape[GPT2_ST_MAX_DIMS];
    uint64_t numel;         /* product of shape (1 for a scalar) */
    uint64_t begin, end;    /* byte range within the data section */
} gpt2_st_tensor;

typedef struct gpt2_st_header {
    size_t count;
    gpt2_st_tensor *tensors; /* sorted by begin offset, i.e. in data-section order */
    uint64_t data_size;      /* bytes in the data section (== the last tensor's end) */
    struct json_doc *doc_;   /* private: owns the strings */
} gpt2_st_header;

/* Decodes the 8-byte little-endian header length. */
uint64_t gpt2_st_read_u64le(const uint8_t bytes[8]);

/* Checks a header length N: 2 <= N <= GPT2_ST_MAX_HEADER and, when file_size is known
 * (non-zero), 8 + N <= file_size. source names the file in messages. */
gpt2_err gpt2_st_check_header_len(uint64_t n, uint64_t file_size, const char *source,
                                  gpt2_error *err);

/* Parses and validates the JSON header text[0..len) (see above) into a new header.
 * Errors are GPT2_ERR_FORMAT (or NOMEM) with messages starting "source: ". */
gpt2_err gpt2_st_header_parse(const char *text, size_t len, const char *source,
                              gpt2_st_header **out, gpt2_error *err);

/* Releases a header (NULL is allowed). */
void gpt2_st_header_free(gpt2_st_header *h);

/* The tensor named name (exact bytes), or NULL. Linear search. */
const gpt2_st_tensor *gpt2_st_find(const gpt2_st_header *h, const char *name);

/* Writes name as printable ASCII into out (at most 80 bytes + "..."), '?' for other bytes;
 * for quoting untrusted names in messages. Returns out. */
char *gpt2_st_printable(const char *name, size_t len, char out[96]);

/* ---- element decoding ---- */

/* One little-endian element as a float (exact for all three). */
static inline float gpt2_st_load_f32(const uint8_t *p) {
    return gpt2_f32_from_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}
static inline float gpt2_st_load_f16(const uint8_t *p) { return gpt2_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static inline float gpt2_st_load_bf16(const uint8_t *p) { return gpt2_bf16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static inline float gpt2_st_load(gpt2_st_dtype dtype, const uint8_t *p) {
    return dtype == GPT2_ST_F32 ? gpt2_st_load_f32(p) : dtype == GPT2_ST_F16 ? gpt2_st_load_f16(p)
         : dtype == GPT2_ST_BF16 ? gpt2_st_load_bf16(p) : 0.0f;
}

/* Decodes cnt elements of dtype (F32, F16 or BF16) at src into dst[0..cnt); nothing for
 * GPT2_ST_OTHER. Inline: the loader calls it for runs of a few elements. */
static inline void gpt2_st_decode(gpt2_st_dtype dtype, const uint8_t *src, size_t cnt, float *dst) {
    switch (dtype) {
    case GPT2_ST_F32:
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(dst, src, cnt * sizeof(float));
#else
        for (size_t k = 0; k < cnt; k++) dst[k] = gpt2_st_load_f32(src + 4 * k);
#endif
        break;
    case GPT2_ST_F16: for (size_t k = 0; k < cnt; k++) dst[k] = gpt2_st_load_f16(src + 2 * k); break;
    case GPT2_ST_BF16: for (size_t k = 0; k < cnt; k++) dst[k] = gpt2_st_load_bf16(src + 2 * k); break;
    case GPT2_ST_OTHER: break;
    }
}

/* ---- the streaming reader ----
 *
 * Fed the bytes of a file in order. It buffers the 8-byte length and the JSON header (the
 * buffer grows with the bytes that arrive, doubling from 64 KiB up to the claimed length, at
 * most GPT2_ST_MAX_HEADER: a stream that merely claims a huge header cannot make it allocate
 * that up front), validates the header, asks
 * the plan callback how each tensor is to be delivered, then hands the data to the sink
 * straight from the fed chunks: at most one partial element is carried across a chunk
 * boundary, and only a band of rows that straddles one is gathered in a staging buffer.
 * Errors are sticky: after a failure feed and finish repeat the same code and message.
 * Messages begin with the source name ("model.safetensors is truncated: got ..."). */

typedef enum gpt2_st_delivery {
    GPT2_ST_SKIP = 0,  /* the tensor's bytes are passed over */
    GPT2_ST_BYTES,     /* raw bytes: first is a byte offset within the tensor */
    GPT2_ST_ELEMENTS,  /* whole elements (elem_size > 0): first is an element index */
    GPT2_ST_BANDS      /* whole bands of band_rows rows of cols elements (the last band may be
                        * shorter): first is a row index, count a number of rows */
} gpt2_st_delivery;

typedef struct gpt2_st_route {
    gpt2_st_delivery how;
    size_t band_rows, cols; /* GPT2_ST_BANDS: rows per band, elements per row (they must tile
                             * the tensor: its bytes a multiple of cols * elem_size) */
} gpt2_st_route;

typedef struct gpt2_st_callbacks {
    void *ctx;
    /* The header is complete and valid (and agrees with a declared file size): fill route[i]
     * for each of h->count tensors (all GPT2_ST_SKIP on entry). h stays valid until the
     * reader is freed. */
    gpt2_err (*plan)(void *ctx, const gpt2_st_header *h, gpt2_st_route *route, gpt2_error *err);
    /* Data of tensor i, as its route says: count elements / bytes / rows from first, at src. */
    gpt2_err (*sink)(void *ctx, size_t i, uint64_t first, const uint8_t *src, size_t count, gpt2_error *err);
    /* Tensor i is complete (every tensor, in file order, skipped ones too). May be NULL. */
    gpt2_err (*done)(void *ctx, size_t i, gpt2_error *err);
} gpt2_st_callbacks;
/* A callback that fails writes its message into err and returns its code: the reader's
 * sticky error. */

typedef struct gpt2_st_reader gpt2_st_reader;

/* source names the file in messages (copied; NULL: "model.safetensors"). */
gpt2_err gpt2_st_reader_create(const char *source, const gpt2_st_callbacks *cb, gpt2_st_reader **out,
                               gpt2_error *err);

/* Optional: the total file size (e.g. from Content-Length or stat), so that a header length
 * past the end, truncation and extra bytes are reported as soon as the header is known. */
gpt2_err gpt2_st_reader_set_file_size(gpt2_st_reader *r, uint64_t file_size, gpt2_error *err);

/* Feeds the next n bytes (n may be 0). */
gpt2_err gpt2_st_reader_feed(gpt2_st_reader *r, const uint8_t *bytes, size_t n, gpt2_error *err);

/* Ends the stream: GPT2_OK once every byte the header describes has arrived, else the
 * truncation error ("is empty", "is truncated: got X of Y bytes (tensor 'T' is incomplete)"). */
gpt2_err gpt2_st_reader_finish(gpt2_st_reader *r, gpt2_error *err);

/* The source name as given to create. */
const char *gpt2_st_reader_source(const gpt2_st_reader *r);

/* The header length N once the first 8 bytes have arrived, else 0. */
uint64_t gpt2_st_reader_header_size(const gpt2_st_reader *r);

/* The file size 8 + N + data size once the header has been validated, else 0. */
uint64_t gpt2_st_reader_bytes_expected(const gpt2_st_reader *r);

/* Bytes fed so far. */
uint64_t gpt2_st_reader_bytes_received(const gpt2_st_reader *r);

/* Releases the reader (NULL is allowed). */
void gpt2_st_reader_free(gpt2_st_reader *r);

/* Native convenience: declares the size of the file at path and streams it into r in 4 MiB
 * chunks, calling after(ctx, err) after each chunk when not NULL (e.g. to write output);
 * then finishes r. Errors name path. */
gpt2_err gpt2_st_reader_feed_file(gpt2_st_reader *r, const char *path, gpt2_err (*after)(void *ctx, gpt2_error *err),
                                  void *ctx, gpt2_error *err);

/* ---- writing a header ----
 * The JSON text grows entry by entry; each entry's data_offsets start where the previous
 * entry's data ended, so entries are added in the order of their data. */
typedef struct gpt2_st_writer {
    char *text;          /* the header so far, NUL-terminated (owned; gpt2_st_writer_free) */
    size_t len, cap;
    uint64_t data_bytes; /* the data the entries so far take */
    int oom;             /* an allocation failed: the text is incomplete */
} gpt2_st_writer;

/* Starts a header in w (overwritten): {"__metadata__":{ metadata }, where metadata is the
 * object's members as JSON text, e.g. "\"format\":\"pt\"". */
void gpt2_st_writer_begin(gpt2_st_writer *w, const char *metadata);

/* Appends ,"NAME SUFFIX":{"dtype":"DTYPE","shape":[...],"data_offsets":[b,b+bytes]} with
 * b = w->data_bytes (NAME's n bytes escaped as a JSON string; SUFFIX plain ASCII), and adds
 * bytes to w->data_bytes. */
void gpt2_st_writer_add(gpt2_st_writer *w, const char *name, size_t n, const char *suffix, const char *dtype, int ndim,
                        const uint64_t *shape, uint64_t bytes);

/* Closes the header and pads it with spaces to a multiple of 8 bytes (the data that follows
 * stays aligned). Fails (GPT2_ERR_NOMEM) if any step could not allocate. */
gpt2_err gpt2_st_writer_end(gpt2_st_writer *w, gpt2_error *err);

/* Frees w's text (w may be zeroed or ended). */
void gpt2_st_writer_free(gpt2_st_writer *w);

/* ---- GPT-2's tensor names ----
 * As in Hugging Face's GPT-2, each optionally prefixed "transformer.": the global tensors,
 * and per layer "h.{i}.NAME" (i decimal without leading zeros). A linear weight may come as
 * the two halves NAME.q8 and NAME.scale of a quantized weight (docs/quantized-format.md). */
enum { GPT2_ST_WTE, GPT2_ST_WPE, GPT2_ST_LNF_W, GPT2_ST_LNF_B, GPT2_ST_LM_HEAD, GPT2_ST_GLOBALS };
enum { /* per layer: id GPT2_ST_GLOBALS + one of these */
    GPT2_ST_LN1_W, GPT2_ST_LN1_B, GPT2_ST_QKV_W, GPT2_ST_QKV_B, GPT2_ST_ATTN_PROJ_W, GPT2_ST_ATTN_PROJ_B,
    GPT2_ST_LN2_W, GPT2_ST_LN2_B, GPT2_ST_FC_W, GPT2_ST_FC_B, GPT2_ST_MLP_PROJ_W, GPT2_ST_MLP_PROJ_B,
    GPT2_ST_LAYER_NAMES
};
enum { GPT2_ST_PLAIN, GPT2_ST_Q8, GPT2_ST_SCALE };

typedef struct gpt2_st_name {
    int id;         /* GPT2_ST_WTE .. GPT2_ST_LM_HEAD, or GPT2_ST_GLOBALS + a per-layer index;
                     * -1: not a weight of GPT-2 (unknown names, mask buffers, .q8 / .scale of
                     * a tensor that is not a linear weight) */
    int variant;    /* GPT2_ST_PLAIN, or GPT2_ST_Q8 / GPT2_ST_SCALE (a quantized half) */
    int in_layer;   /* the name is "h.{i}.<anything>" (layer holds i, capped near 10^9) */
    uint64_t layer;
    int mask;       /* h.{i}.attn.bias or h.{i}.attn.masked_bias: an attention mask buffer */
    int linear;     /* a linear weight: wte, lm_head and the four per-layer matrices */
    int conv1d;     /* stored as a Conv1D [in, out] (the four per-layer matrices) */
} gpt2_st_name;

/* Classifies the tensor name s[0..n). */
void gpt2_st_name_parse(const char *s, size_t n, gpt2_st_name *out);

/* The name of id (in layer) without prefix or variant, e.g. "h.3.attn.c_attn.weight". */
void gpt2_st_name_format(int id, uint64_t layer, char *out, size_t cap);

#endif
