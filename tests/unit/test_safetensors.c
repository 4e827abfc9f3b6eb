/* test_safetensors.c - fp16/bf16 conversion and safetensors header validation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fp16.h"
#include "safetensors.h"
#include "st_writer.h"

/* Reference half decoding by arithmetic, independent of the bit manipulation in fp16.h. */
static double half_reference(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
    double v;
    if (exp == 0) v = ldexp((double)man, -24);
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = ldexp(1024.0 + man, exp - 25);
    return sign ? -v : v;
}

static void test_fp16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = gpt2_f16_to_f32((uint16_t)h);
        double r = half_reference((uint16_t)h);
        int ok = isnan(r) ? isnan(f) : ((double)f == r && !signbit(f) == !signbit(r));
        if (!ok && bad++ < 5) CHECK(ok, "half 0x%04x -> %a, want %a", h, (double)f, r);
    }
    CHECK(bad == 0, "%d half values wrong", bad);
    CHECK(gpt2_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "smallest subnormal");
    CHECK(gpt2_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24), "largest subnormal");
    CHECK(gpt2_f16_to_f32(0x7bff) == 65504.0f, "max half");
    CHECK(gpt2_f16_to_f32(0x3c00) == 1.0f && gpt2_f16_to_f32(0xc000) == -2.0f, "1 and -2");
    CHECK(isinf(gpt2_f16_to_f32(0xfc00)) && gpt2_f16_to_f32(0xfc00) < 0, "-inf");
    CHECK(signbit(gpt2_f16_to_f32(0x8000)) && gpt2_f16_to_f32(0x8000) == 0.0f, "-0");

    bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        float f = gpt2_bf16_to_f32((uint16_t)b);
        uint32_t u;
        memcpy(&u, &f, 4);
        if (u != b << 16 && bad++ < 5) CHECK(0, "bf16 0x%04x -> bits 0x%08x", b, u);
    }
    CHECK(bad == 0, "%d bf16 values wrong", bad);
    CHECK(gpt2_bf16_to_f32(0x3f80) == 1.0f && isnan(gpt2_bf16_to_f32(0x7fc0)), "bf16 1, nan");
}

static gpt2_err parse(const char *hdr, gpt2_st_header **out, gpt2_error *e) {
    return gpt2_st_header_parse(hdr, strlen(hdr), "x.safetensors", out, e);
}

static void test_good_headers(void) {
    gpt2_error e = {0};
    gpt2_st_header *h = NULL;
    /* out of order in the JSON, metadata, padding, every known dtype, a scalar, an empty tensor */
    const char *hdr =
        "{\"b\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[16,28]},"
        "\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[28,36]},"
        "\"z\":{\"dtype\":\"BF16\",\"shape\":[0,5],\"data_offsets\":[36,36]},"
        "\"m\":{\"dtype\":\"BOOL\",\"shape\":[1,1,2,2],\"data_offsets\":[36,40]},"
        "\"q\":{\"dtype\":\"F4_NEW\",\"shape\":[7],\"data_offsets\":[40,44]}}     ";
    CHECK_OK(parse(hdr, &h, &e), &e);
    if (h) {
        CHECK(h->count == 6 && h->data_size == 44, "count %zu size %llu", h->count,
              (unsigned long long)h->data_size);
        CHECK(h->count == 6 && strcmp(h->tensors[0].name, "a") == 0 && strcmp(h->tensors[1].name, "b") == 0,
              "sorted by offset");
        const gpt2_st_tensor *b = gpt2_st_find(h, "b");
        CHECK(b && b->dtype == GPT2_ST_F16 && b->elem_size == 2 && b->ndim == 2 && b->shape[1] == 3 &&
                  b->numel == 6,
              "b parsed");
        const gpt2_st_tensor *s = gpt2_st_find(h, "s");
        CHECK(s && s->ndim == 0 && s->numel == 1 && s->dtype == GPT2_ST_OTHER && s->elem_size == 8, "scalar");
        const gpt2_st_tensor *z = gpt2_st_find(h, "z");
        CHECK(z && z->numel == 0 && z->dtype == GPT2_ST_BF16, "empty");
        const gpt2_st_tensor *q = gpt2_st_find(h, "q");
        CHECK(q && q->elem_size == 0 && strcmp(q->dtype_name, "F4_NEW") == 0, "unknown dtype kept");
        CHECK(gpt2_st_find(h, "__metadata__") == NULL && gpt2_st_find(h, "nope") == NULL, "find");
    }
    gpt2_st_header_free(h);

    CHECK_OK(parse("{}", &h, &e), &e);
    CHECK(h && h->count == 0 && h->data_size == 0, "empty header");
    gpt2_st_header_free(h);
    gpt2_st_header_free(NULL);

    uint8_t le[8] = {0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe};
    CHECK(gpt2_st_read_u64le(le) == 0xfedcba9876543210ull, "u64le");

    /* the writer's output round-trips */
    st_writer *w = st_writer_create();
    float v[6] = {1, -2, 0.5f, 3, 4, 5};
    uint64_t sh[2] = {2, 3};
    st_writer_add_floats(w, "x", "F32", 2, sh, v, 6);
    st_writer_add_floats(w, "y", "BF16", 2, sh, v, 6);
    size_t len;
    uint8_t *f = st_writer_build(w, 1, &len);
    uint64_t n = gpt2_st_read_u64le(f);
    CHECK_OK(gpt2_st_check_header_len(n, len, "w", &e), &e);
    CHECK_OK(gpt2_st_header_parse((const char *)f + 8, (size_t)n, "w", &h, &e), &e);
    CHECK(h && h->data_size == 36 && 8 + n + h->data_size == len, "writer layout");
    gpt2_st_header_free(h);
    free(f);
    st_writer_free(w);
}

static void test_bad_headers(void) {
    static const struct {
        const char *hdr, *needle;
    } cases[] = {
        {"", "malformed"},
        {"{\"a\":", "malformed"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", "malformed"},
        {"[]", "not a JSON object"},
        {"\"x\"", "not a JSON object"},
        {"{\"a\":[1]}", "not an object"},
        {"{\"__metadata__\":[]}", "__metadata__"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype"},
        {"{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype"},
        /* "BF16\0" is no dtype (found by fuzzing: the name must not read as "BF16") */
        {"{\"a\":{\"dtype\":\"BF16\\u0000\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", "NUL byte"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}",
         "impossibly large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}",
         "impossibly large"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", "begin > end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "need 8"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", "need 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         "appears twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "hole"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         "hole"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gpt2_error e = {0};
        gpt2_st_header *h = (gpt2_st_header *)&e; /* must be reset to NULL */
        CHECK_FAILS(parse(cases[i].hdr, &h, &e), GPT2_ERR_FORMAT, &e);
        CHECK(h == NULL, "case %zu: out not cleared", i);
        CHECK(strstr(e.message, cases[i].needle) && strstr(e.message, "x.safetensors"),
              "case %zu: '%s' lacks '%s'", i, e.message, cases[i].needle);
    }
}

static void test_header_len(void) {
    gpt2_error e = {0};
    CHECK_OK(gpt2_st_check_header_len(2, 0, "f", &e), &e);
    CHECK_OK(gpt2_st_check_header_len(100, 108, "f", &e), &e);
    CHECK_FAILS(gpt2_st_check_header_len(0, 0, "f", &e), GPT2_ERR_FORMAT, &e);
    CHECK_FAILS(gpt2_st_check_header_len(1, 0, "f", &e), GPT2_ERR_FORMAT, &e);
    CHECK_FAILS(gpt2_st_check_header_len(GPT2_ST_MAX_HEADER + 1ull, 0, "f", &e), GPT2_ERR_FORMAT, &e);
    CHECK_FAILS(gpt2_st_check_header_len(UINT64_MAX, 0, "f", &e), GPT2_ERR_FORMAT, &e);
    CHECK_FAILS(gpt2_st_check_header_len(101, 108, "f", &e), GPT2_ERR_FORMAT, &e);
    CHECK(strstr(e.message, "past the end") != NULL, "%s", e.message);
    CHECK_FAILS(gpt2_st_check_header_len(10, 5, "f", &e), GPT2_ERR_FORMAT, &e);
}

int main(void) {
    test_fp16();
    test_good_headers();
    test_bad_headers();
    test_header_len();
    return check_summary("test_safetensors");
}
