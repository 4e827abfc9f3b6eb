/* safetensors.h - parsing and validation of a safetensors header.
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
 * This module does not touch the data section; see loader.h for streaming it.
 */
#ifndef GPT2_SAFETENSORS_H
#define GPT2_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

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

#endif
