/* fuzz_safetensors.c - libFuzzer harness for the safetensors header (src/safetensors.c):
 * the 8-byte length, the JSON header, dtypes, shapes and data offsets.
 * Input: a whole safetensors file, or (when it starts with '{') a bare JSON header. */
#include "fuzz_common.h"
#include "safetensors.h"

static void check_printable(const char *name, size_t len) {
    char out[96];
    memset(out, 'x', sizeof out);
    FUZZ_CHECK(gpt2_st_printable(name, len, out) == out, "printable return");
    size_t n = strlen(out);
    FUZZ_CHECK(n <= 83 && n == (len > 80 ? 83 : len), "printable length %zu for %zu", n, len);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(out[i] >= 0x20 && out[i] < 0x7f, "unprintable byte in output");
}

static void check_header(const char *text, size_t len, const char *source) {
    gpt2_st_header *h = NULL;
    gpt2_error err;
    memset(&err, 0, sizeof err);
    gpt2_err rc = gpt2_st_header_parse(text, len, source, &h, &err);
    if (rc != GPT2_OK) {
        fuzz_check_error(rc, &err);
        FUZZ_CHECK(h == NULL, "header set on failure");
        FUZZ_CHECK(rc == GPT2_ERR_FORMAT || rc == GPT2_ERR_NOMEM, "code %d", (int)rc);
        FUZZ_CHECK(strncmp(err.message, source, strlen(source)) == 0, "message '%s'", err.message);
        return;
    }
    uint64_t pos = 0;
    for (size_t i = 0; i < h->count; i++) {
        const gpt2_st_tensor *t = &h->tensors[i];
        FUZZ_CHECK(t->begin == pos && t->end >= t->begin, "tensor %zu does not tile", i);
        pos = t->end;
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= GPT2_ST_MAX_DIMS, "ndim %d", t->ndim);
        uint64_t numel = 1;
        int zero = 0;
        for (int d = 0; d < t->ndim; d++) {
            zero |= t->shape[d] == 0;
            if (!zero && t->shape[d] && numel <= UINT64_MAX / t->shape[d]) numel *= t->shape[d];
        }
        if (zero) numel = 0;
        FUZZ_CHECK(t->numel == numel, "numel %llu vs %llu", (unsigned long long)t->numel,
                   (unsigned long long)numel);
        if (t->elem_size)
            FUZZ_CHECK(t->numel * t->elem_size == t->end - t->begin, "size mismatch");
        FUZZ_CHECK(t->dtype_name && t->name && t->name[t->name_len] == '\0', "names");
        FUZZ_CHECK((t->dtype == GPT2_ST_F32) == (strcmp(t->dtype_name, "F32") == 0), "F32");
        FUZZ_CHECK((t->dtype == GPT2_ST_F16) == (strcmp(t->dtype_name, "F16") == 0), "F16");
        FUZZ_CHECK((t->dtype == GPT2_ST_BF16) == (strcmp(t->dtype_name, "BF16") == 0), "BF16");
        if (strlen(t->name) == t->name_len)
            FUZZ_CHECK(gpt2_st_find(h, t->name) == t, "gpt2_st_find");
        check_printable(t->name, t->name_len);
    }
    FUZZ_CHECK(h->data_size == pos, "data_size");
    gpt2_st_header_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 0 && data[0] == '{') {
        check_header((const char *)data, size, "bare");
        return 0;
    }
    if (size < 8) return 0;
    uint64_t n = gpt2_st_read_u64le(data);
    uint64_t want = 0;
    for (int i = 0; i < 8; i++) want |= (uint64_t)data[i] << (8 * i);
    FUZZ_CHECK(n == want, "read_u64le");
    gpt2_error err;
    memset(&err, 0, sizeof err);
    gpt2_err rc = gpt2_st_check_header_len(n, size, "file", &err);
    gpt2_err rc_unknown = gpt2_st_check_header_len(n, 0, "file", NULL);
    if (rc != GPT2_OK) {
        fuzz_check_error(rc, &err);
        return 0;
    }
    FUZZ_CHECK(rc_unknown == GPT2_OK, "a fitting length fails without the file size");
    FUZZ_CHECK(n >= 2 && n <= size - 8, "accepted length %llu of %zu", (unsigned long long)n, size);
    check_header((const char *)data + 8, (size_t)n, "file");
    return 0;
}
