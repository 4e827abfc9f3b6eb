/* fuzz_tokenizer.c - libFuzzer harness for tokenizer creation (vocab.json + merges.txt,
 * src/tokenizer.c). Input: vocab.json bytes, a NUL byte, merges.txt bytes (no NUL: the
 * whole input is vocab.json and merges.txt is empty). A tokenizer that is created is then
 * used: fixed texts and the merges text are encoded and must decode back to themselves. */
#include "fuzz_common.h"
#include "utf8.h"

static const char *const texts[] = {
    "Hello world", " Hello world<|endoftext|> it's 12345 \n\n  x", "\xc3\xa9t\xc3\xa9 \xe2\x80\x99s",
    "<|endoftext|><|endoftext|>", "   ", "a\tb\r\nc",
};

static void roundtrip(const gpt2_tokenizer *tok, const char *text, size_t len, int special) {
    if (len > 4096) len = 4096;
    size_t ok_len = utf8_validate((const uint8_t *)text, len);
    int32_t *ids = malloc((len ? len : 1) * sizeof *ids);
    char *back = malloc(3 * len + 3);
    FUZZ_CHECK(ids && back, "malloc");
    size_t n_ids = 99, n_out = 0;
    gpt2_error err;
    gpt2_err rc = gpt2_tokenizer_encode(tok, text, len, special, ids, len, &n_ids, &err);
    if (ok_len < len) {
        FUZZ_CHECK(rc == GPT2_ERR_FORMAT && n_ids == 0, "ill-formed text accepted");
    } else {
        FUZZ_CHECK(rc == GPT2_OK, "encode: %s", err.message);
        FUZZ_CHECK(n_ids <= len, "%zu ids for %zu bytes", n_ids, len);
        size_t total = 0, v = gpt2_tokenizer_vocab_size(tok);
        for (size_t i = 0; i < n_ids; i++) {
            FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < v, "id %d", (int)ids[i]);
            const uint8_t *b;
            size_t bl;
            FUZZ_CHECK(gpt2_tokenizer_token_bytes(tok, ids[i], &b, &bl, NULL) == GPT2_OK, "bytes");
            FUZZ_CHECK(bl >= 1 && bl <= gpt2_tokenizer_max_token_bytes(tok), "token length %zu", bl);
            total += bl;
        }
        FUZZ_CHECK(total == len, "tokens cover %zu of %zu bytes", total, len);
        rc = gpt2_tokenizer_decode(tok, ids, n_ids, back, 3 * len + 3, &n_out, &err);
        FUZZ_CHECK(rc == GPT2_OK && n_out == len && (len == 0 || memcmp(back, text, len) == 0),
                   "decode(encode(text)) != text");
    }
    free(ids);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *vocab = (const char *)data, *merges = "";
    size_t vocab_len = size, merges_len = 0;
    const uint8_t *nul = memchr(data, 0, size);
    if (nul) {
        vocab_len = (size_t)(nul - data);
        merges = (const char *)nul + 1;
        merges_len = size - vocab_len - 1;
    }
    gpt2_tokenizer *tok = (gpt2_tokenizer *)1;
    gpt2_error err;
    memset(&err, 0, sizeof err);
    gpt2_err rc = gpt2_tokenizer_create(vocab, vocab_len, merges, merges_len, &tok, &err);
    if (rc != GPT2_OK) {
        fuzz_check_error(rc, &err);
        FUZZ_CHECK(tok == NULL, "tokenizer set on failure");
        return 0;
    }
    size_t v = gpt2_tokenizer_vocab_size(tok);
    FUZZ_CHECK(v >= 256, "vocab size %zu", v);
    int32_t eot = gpt2_tokenizer_eot_id(tok);
    if (eot >= 0) {
        const uint8_t *b;
        size_t bl;
        FUZZ_CHECK(gpt2_tokenizer_token_bytes(tok, eot, &b, &bl, NULL) == GPT2_OK &&
                   bl == strlen(GPT2_EOT_TEXT) && memcmp(b, GPT2_EOT_TEXT, bl) == 0, "eot bytes");
    }
    FUZZ_CHECK(gpt2_tokenizer_token_bytes(tok, (int32_t)v, &(const uint8_t *){0}, &(size_t){0},
                                          NULL) == GPT2_ERR_RANGE, "id == vocab size accepted");
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        roundtrip(tok, texts[i], strlen(texts[i]), 0);
        roundtrip(tok, texts[i], strlen(texts[i]), 1);
    }
    roundtrip(tok, merges, merges_len, 0);
    gpt2_tokenizer_free(tok);
    return 0;
}
