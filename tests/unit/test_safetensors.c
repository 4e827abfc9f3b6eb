/* test_safetensors.c - fp16/bf16 conversion, safetensors header validation, the stream reader
 * and the GPT-2 tensor-name table. */
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

/* ---- the stream reader ---- */

/* What the callbacks saw: the data rebuilt at the offsets the reader named, in file order. */
typedef struct seen {
    uint8_t data[256];  /* the data section as rebuilt from the sink's calls */
    const gpt2_st_header *h;
    size_t done[8], ndone, bad_band;
    int fail_in_sink;
} seen;

static const gpt2_st_delivery plan_how[4] = {GPT2_ST_BANDS, GPT2_ST_ELEMENTS, GPT2_ST_BYTES, GPT2_ST_SKIP};

static gpt2_err plan_cb(void *ctx, const gpt2_st_header *h, gpt2_st_route *route, gpt2_error *err) {
    (void)err;
    seen *s = ctx;
    s->h = h;
    for (size_t i = 0; i < h->count && i < 4; i++) route[i].how = plan_how[i];
    route[0].band_rows = 2; /* "a" is [5, 3] F32: bands of rows 0-1, 2-3, then row 4 */
    route[0].cols = 3;
    return GPT2_OK;
}

static gpt2_err sink_cb(void *ctx, size_t i, uint64_t first, const uint8_t *src, size_t count, gpt2_error *err) {
    seen *s = ctx;
    const gpt2_st_tensor *t = &s->h->tensors[i];
    if (s->fail_in_sink) return gpt2_fail(err, GPT2_ERR_FORMAT, "sink refuses tensor %zu", i);
    size_t unit = plan_how[i] == GPT2_ST_BANDS ? 3 * t->elem_size : plan_how[i] == GPT2_ST_ELEMENTS ? t->elem_size : 1;
    /* whole bands of 2 rows (several at once when they lie in one chunk), or the last row alone */
    if (plan_how[i] == GPT2_ST_BANDS && (first % 2 != 0 || (count % 2 != 0 && first + count != 5))) s->bad_band++;
    if (t->begin + (first + count) * unit <= sizeof s->data)
        memcpy(s->data + t->begin + first * unit, src, count * unit);
    return GPT2_OK;
}

static gpt2_err done_cb(void *ctx, size_t i, gpt2_error *err) {
    (void)err;
    seen *s = ctx;
    if (s->ndone < 8) s->done[s->ndone] = i;
    s->ndone++;
    return GPT2_OK;
}

static void test_reader(void) {
    st_writer *w = st_writer_create();
    float a[15], b[7];
    for (int i = 0; i < 15; i++) a[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 7; i++) b[i] = (float)(i * i);
    const uint8_t c[5] = {1, 2, 3, 250, 7}, d[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    st_writer_add_floats(w, "a", "F32", 2, (uint64_t[]){5, 3}, a, 15);
    st_writer_add_floats(w, "b", "F16", 1, (uint64_t[]){7}, b, 7);
    st_writer_add(w, "c", "I8", 1, (uint64_t[]){5}, c, 5);
    st_writer_add(w, "d", "F64", 1, (uint64_t[]){1}, d, 8);
    size_t len;
    uint8_t *f = st_writer_build(w, 1, &len);
    st_writer_free(w);
    size_t data_at = 8 + (size_t)gpt2_st_read_u64le(f), data_len = len - data_at; /* 60 + 14 + 5 + 8 */
    gpt2_error e = {0};
    static const size_t chunks[] = {1, 2, 3, 5, 7, 13, 4096};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        seen s;
        memset(&s, 0, sizeof s);
        gpt2_st_reader *r = NULL;
        const gpt2_st_callbacks cb = {&s, plan_cb, sink_cb, done_cb};
        CHECK_OK(gpt2_st_reader_create("t.safetensors", &cb, &r, &e), &e);
        if (!r) break;
        gpt2_err rc = GPT2_OK;
        for (size_t at = 0; at < len && !rc; at += chunks[k])
            rc = gpt2_st_reader_feed(r, f + at, len - at < chunks[k] ? len - at : chunks[k], &e);
        CHECK(rc == GPT2_OK, "chunk %zu: %s", chunks[k], e.message);
        CHECK_OK(gpt2_st_reader_finish(r, &e), &e);
        CHECK(gpt2_st_reader_bytes_expected(r) == len && gpt2_st_reader_bytes_received(r) == len, "sizes");
        /* every delivered tensor rebuilt byte for byte; the skipped one ("d", F64) never */
        CHECK(data_len == 87 && memcmp(s.data, f + data_at, 79) == 0, "chunk %zu: data differs", chunks[k]);
        CHECK(s.data[79] == 0, "chunk %zu: the skipped tensor was delivered", chunks[k]);
        CHECK(s.bad_band == 0, "chunk %zu: %zu bands not on band boundaries", chunks[k], s.bad_band);
        CHECK(s.ndone == 4 && s.done[0] == 0 && s.done[1] == 1 && s.done[2] == 2 && s.done[3] == 3,
              "chunk %zu: done %zu times", chunks[k], s.ndone);
        gpt2_st_reader_free(r);
    }

    /* errors: truncation names the incomplete tensor; extra bytes; a failing sink is sticky */
    seen s;
    memset(&s, 0, sizeof s);
    const gpt2_st_callbacks cb = {&s, plan_cb, sink_cb, done_cb};
    gpt2_st_reader *r = NULL;
    CHECK_OK(gpt2_st_reader_create(NULL, &cb, &r, &e), &e);
    CHECK_OK(gpt2_st_reader_feed(r, f, data_at + 70, &e), &e);
    CHECK_FAILS(gpt2_st_reader_finish(r, &e), GPT2_ERR_FORMAT, &e);
    CHECK(strstr(e.message, "model.safetensors is truncated") && strstr(e.message, "tensor 'b' is incomplete"), "%s",
          e.message);
    gpt2_st_reader_free(r);
    memset(&s, 0, sizeof s);
    CHECK_OK(gpt2_st_reader_create("x", &cb, &r, &e), &e);
    CHECK_OK(gpt2_st_reader_feed(r, f, len, &e), &e);
    CHECK_FAILS(gpt2_st_reader_feed(r, f, 3, &e), GPT2_ERR_FORMAT, &e);
    CHECK(strstr(e.message, "x has extra bytes after the tensor data (at least 3 more") != NULL, "%s", e.message);
    gpt2_st_reader_free(r);
    memset(&s, 0, sizeof s);
    s.fail_in_sink = 1;
    CHECK_OK(gpt2_st_reader_create("x", &cb, &r, &e), &e);
    CHECK_OK(gpt2_st_reader_set_file_size(r, len, &e), &e);
    CHECK_FAILS(gpt2_st_reader_feed(r, f, len, &e), GPT2_ERR_FORMAT, &e);
    CHECK(!strcmp(e.message, "sink refuses tensor 0"), "%s", e.message);
    gpt2_error again = {0};
    CHECK(gpt2_st_reader_feed(r, f, 1, &again) == GPT2_ERR_FORMAT && !strcmp(again.message, e.message), "sticky feed");
    CHECK(gpt2_st_reader_finish(r, &again) == GPT2_ERR_FORMAT && !strcmp(again.message, e.message), "sticky finish");
    gpt2_st_reader_free(r);
    /* a declared size that disagrees with the header */
    memset(&s, 0, sizeof s);
    CHECK_OK(gpt2_st_reader_create("x", &cb, &r, &e), &e);
    CHECK_OK(gpt2_st_reader_set_file_size(r, len + 5, &e), &e);
    CHECK_FAILS(gpt2_st_reader_feed(r, f, data_at, &e), GPT2_ERR_FORMAT, &e);
    CHECK(strstr(e.message, "x has 5 extra bytes after the tensor data") != NULL, "%s", e.message);
    gpt2_st_reader_free(r);
    free(f);
}

/* ---- GPT-2's tensor names ---- */

static void test_names(void) {
    static const struct {
        const char *name;
        int id, variant, in_layer, layer, mask, linear, conv1d;
    } cases[] = {
        {"wte.weight", GPT2_ST_WTE, GPT2_ST_PLAIN, 0, 0, 0, 1, 0},
        {"transformer.wpe.weight", GPT2_ST_WPE, GPT2_ST_PLAIN, 0, 0, 0, 0, 0},
        {"ln_f.bias", GPT2_ST_LNF_B, GPT2_ST_PLAIN, 0, 0, 0, 0, 0},
        {"lm_head.weight.q8", GPT2_ST_LM_HEAD, GPT2_ST_Q8, 0, 0, 0, 1, 0},
        {"h.0.attn.c_attn.weight", GPT2_ST_GLOBALS + GPT2_ST_QKV_W, GPT2_ST_PLAIN, 1, 0, 0, 1, 1},
        {"transformer.h.11.mlp.c_proj.weight.scale", GPT2_ST_GLOBALS + GPT2_ST_MLP_PROJ_W, GPT2_ST_SCALE, 1, 11, 0, 1,
         1},
        {"h.3.mlp.c_fc.bias", GPT2_ST_GLOBALS + GPT2_ST_FC_B, GPT2_ST_PLAIN, 1, 3, 0, 0, 0},
        {"h.2.ln_2.weight", GPT2_ST_GLOBALS + GPT2_ST_LN2_W, GPT2_ST_PLAIN, 1, 2, 0, 0, 0},
        {"h.5.attn.bias", -1, GPT2_ST_PLAIN, 1, 5, 1, 0, 0},
        {"h.5.attn.masked_bias", -1, GPT2_ST_PLAIN, 1, 5, 1, 0, 0},
        {"h.7.ln_1.bias.q8", -1, GPT2_ST_Q8, 1, 7, 0, 0, 0},  /* only linear weights come quantized */
        {"h.40.unknown", -1, GPT2_ST_PLAIN, 1, 40, 0, 0, 0}, /* a layer, even when the rest is unknown */
        {"h.01.ln_1.bias", -1, GPT2_ST_PLAIN, 0, 0, 0, 0, 0}, /* leading zero: not a layer */
        {"h..ln_1.bias", -1, GPT2_ST_PLAIN, 0, 0, 0, 0, 0},
        {"wte.weights", -1, GPT2_ST_PLAIN, 0, 0, 0, 0, 0},
        {"model.wte.weight", -1, GPT2_ST_PLAIN, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gpt2_st_name n;
        gpt2_st_name_parse(cases[i].name, strlen(cases[i].name), &n);
        CHECK(n.id == cases[i].id && n.variant == cases[i].variant && n.in_layer == cases[i].in_layer &&
                  (!n.in_layer || n.layer == (uint64_t)cases[i].layer) && n.mask == cases[i].mask &&
                  n.linear == cases[i].linear && n.conv1d == cases[i].conv1d,
              "%s: id %d variant %d layer %d/%llu mask %d linear %d conv1d %d", cases[i].name, n.id, n.variant,
              n.in_layer, (unsigned long long)n.layer, n.mask, n.linear, n.conv1d);
    }
    char out[64];
    gpt2_st_name_format(GPT2_ST_GLOBALS + GPT2_ST_ATTN_PROJ_W, 9, out, sizeof out);
    CHECK(!strcmp(out, "h.9.attn.c_proj.weight"), "%s", out);
    gpt2_st_name_format(GPT2_ST_LNF_W, 0, out, sizeof out);
    CHECK(!strcmp(out, "ln_f.weight"), "%s", out);
}

int main(void) {
    test_fp16();
    test_good_headers();
    test_bad_headers();
    test_header_len();
    test_reader();
    test_names();
    return check_summary("test_safetensors");
}
