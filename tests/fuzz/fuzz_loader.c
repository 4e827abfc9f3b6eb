/* fuzz_loader.c - libFuzzer harness for the whole checkpoint load path: config.json
 * (gpt2_loader_create) and model.safetensors streamed through gpt2_loader_feed in chunks.
 * Input layout:
 *   byte 0      flags: bit 0 declare the file size before feeding, bit 1 declare it after
 *               the first chunk, bits 2..3 the precision (auto, f32, f16, q8_0),
 *               bits 4..7 seed the chunk sizes
 *   bytes 1..2  L, the config length (little-endian u16, clamped to what is there)
 *   L bytes     config.json
 *   the rest    model.safetensors
 * The memory budget is small (4 MiB), so mutated shapes cannot allocate gigabytes. */
#include "config.h"
#include "fuzz_common.h"
#include "loader.h"

#define BUDGET (4u << 20)

/* xorshift32 */
static uint32_t next_rand(uint32_t *s) {
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* After a failure the error is sticky: feed and finish repeat it. */
static void check_sticky(gpt2_loader *ld, const gpt2_error *first) {
    gpt2_error err;
    uint8_t byte = 0;
    gpt2_err rc = gpt2_loader_feed(ld, &byte, 1, &err);
    FUZZ_CHECK(rc == first->code && strcmp(err.message, first->message) == 0,
               "feed after failure: '%s' then '%s'", first->message, err.message);
    gpt2_weights *w = (gpt2_weights *)1;
    rc = gpt2_loader_finish(ld, &w, &err);
    FUZZ_CHECK(rc == first->code && w == NULL && strcmp(err.message, first->message) == 0,
               "finish after failure");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    uint8_t flags = data[0];
    size_t cfg_len = (size_t)data[1] | (size_t)data[2] << 8;
    if (cfg_len > size - 3) cfg_len = size - 3;
    const char *cfg = (const char *)data + 3;
    const uint8_t *file = data + 3 + cfg_len;
    size_t file_len = size - 3 - cfg_len;

    gpt2_loader_options opt;
    memset(&opt, 0, sizeof opt);
    opt.memory_budget_bytes = BUDGET;
    opt.source_name = "fuzz.safetensors";
    opt.precision = (gpt2_precision)((flags >> 2) & 3);
    gpt2_loader *ld = NULL;
    gpt2_error err;
    memset(&err, 0, sizeof err);
    gpt2_err rc = gpt2_loader_create(cfg, cfg_len, &opt, &ld, &err);
    if (rc != GPT2_OK) {
        fuzz_check_error(rc, &err);
        FUZZ_CHECK(ld == NULL, "loader set on failure");
        return 0;
    }
    gpt2_config c;
    FUZZ_CHECK(gpt2_config_parse(cfg, cfg_len, &c, NULL) == GPT2_OK, "config accepted twice");

    if ((flags & 1) && (rc = gpt2_loader_set_file_size(ld, file_len, &err)) != GPT2_OK) {
        fuzz_check_error(rc, &err);
        check_sticky(ld, &err);
        gpt2_loader_free(ld);
        return 0;
    }
    /* chunk sizes: mostly small and irregular, sometimes large */
    uint32_t seed = 0x9E3779B9u ^ (uint32_t)(flags >> 4) * 2654435761u;
    size_t at = 0, chunks = 0;
    while (at < file_len && rc == GPT2_OK) {
        uint32_t r = next_rand(&seed);
        size_t n;
        switch (r & 3) {
        case 0: n = 1 + (r >> 8) % 3; break;
        case 1: n = 1 + (r >> 8) % 17; break;
        case 2: n = 1 + (r >> 8) % 1024; break;
        default: n = file_len - at; break;
        }
        if (n > file_len - at) n = file_len - at;
        if ((r >> 4) % 16 == 0) { /* an empty feed now and then */
            rc = gpt2_loader_feed(ld, file + at, 0, &err);
            if (rc != GPT2_OK) break;
        }
        rc = gpt2_loader_feed(ld, file + at, n, &err);
        at += n;
        chunks++;
        if (rc == GPT2_OK) FUZZ_CHECK(gpt2_loader_bytes_received(ld) == at, "bytes_received");
        if (rc == GPT2_OK && chunks == 1 && (flags & 2))
            rc = gpt2_loader_set_file_size(ld, file_len, &err);
    }
    gpt2_weights *w = NULL;
    if (rc == GPT2_OK) rc = gpt2_loader_finish(ld, &w, &err);
    if (getenv("FUZZ_VERBOSE")) /* replaying by hand: say what happened */
        fprintf(stderr, "fuzz_loader: precision %d: %s\n", (int)opt.precision,
                rc == GPT2_OK ? "loaded" : err.message);
    if (rc != GPT2_OK) {
        fuzz_check_error(rc, &err);
        FUZZ_CHECK(w == NULL, "weights on failure");
        check_sticky(ld, &err);
        gpt2_loader_free(ld);
        return 0;
    }
    FUZZ_CHECK(w != NULL, "no weights");
    FUZZ_CHECK(gpt2_loader_bytes_expected(ld) == file_len, "bytes_expected %llu, file %zu",
               (unsigned long long)gpt2_loader_bytes_expected(ld), file_len);
    FUZZ_CHECK(gpt2_loader_header_size(ld) + 8 <= file_len, "header size");
    FUZZ_CHECK(memcmp(&w->config, &c, sizeof c) == 0, "weights carry another config");
    gpt2_weights *again = (gpt2_weights *)1;
    FUZZ_CHECK(gpt2_loader_finish(ld, &again, NULL) != GPT2_OK && again == NULL, "second finish");
    gpt2_loader_free(ld);
    gpt2_weights_free(w);
    return 0;
}
