/* fuzz_utf8.c - libFuzzer harness for the UTF-8 helpers (src/utf8.c) and the streaming
 * detokenizer (gpt2_decoder, gpt2_tokenizer_decode) with the real GPT-2 tokenizer.
 * Both are compared with an independent reference decoder (fuzz_common.h).
 * Input: any bytes. Part 1 checks utf8_next / utf8_validate / utf8_encode on them; part 2
 * reads them as token ids, two bytes per id: a high byte >= 0xC0 means the single-byte
 * token of the low byte (so partial characters are common), else the id is
 * (lo | hi << 8) mod (vocab size + 1) (so the out-of-range id vocab_size occurs too). */
#include "fuzz_common.h"
#include "utf8.h"

static int32_t byte_token[256];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const gpt2_tokenizer *tok = fuzz_gpt2_tokenizer();
    fuzz_utf8_reference();
    for (int b = 0; b < 256; b++) byte_token[b] = -1;
    for (size_t id = 0; id < gpt2_tokenizer_vocab_size(tok); id++) {
        const uint8_t *p;
        size_t n;
        if (gpt2_tokenizer_token_bytes(tok, (int32_t)id, &p, &n, NULL) == GPT2_OK && n == 1 &&
            byte_token[p[0]] < 0)
            byte_token[p[0]] = (int32_t)id;
    }
    for (int b = 0; b < 256; b++) FUZZ_CHECK(byte_token[b] >= 0, "no token for byte %d", b);
    return 0;
}

static void check_utf8(const uint8_t *s, size_t len) {
    const fuzz_utf8_ref *r = fuzz_utf8_reference();
    size_t first_bad = len, i = 0;
    for (size_t at = 0; at < len; at++) { /* every offset, aligned or not */
        size_t n = 99;
        uint32_t cp = 1;
        utf8_result res = utf8_next(s + at, len - at, &n, &cp);
        size_t k = 0; /* the reference's longest valid prefix */
        while (k < 4 && at + k < len && fuzz_utf8_is_prefix(r, s + at, k + 1)) k++;
        int complete = k > 0 && (int)k == fuzz_utf8_lead_len(s[at]);
        if (res == UTF8_OK) {
            FUZZ_CHECK(complete && n == k, "OK at %zu: n %zu, reference %zu", at, n, k);
            uint8_t enc[4];
            FUZZ_CHECK(utf8_encode(cp, enc) == n && memcmp(enc, s + at, n) == 0, "re-encoding");
        } else if (res == UTF8_INCOMPLETE) {
            FUZZ_CHECK(!complete && k > 0 && at + k == len && n == k && cp == 0,
                       "INCOMPLETE at %zu: n %zu, reference %zu", at, n, k);
        } else {
            FUZZ_CHECK(res == UTF8_INVALID && cp == 0xFFFD, "result %d", (int)res);
            FUZZ_CHECK(!complete && n == (k ? k : 1) && at + k < len + (k == 0),
                       "INVALID at %zu: n %zu, reference %zu", at, n, k);
        }
        if (at == i) { /* walking character by character */
            if (res == UTF8_OK) i += n;
            else if (first_bad == len) first_bad = at;
        }
    }
    FUZZ_CHECK(utf8_validate(s, len) == first_bad, "validate %zu, want %zu", utf8_validate(s, len),
               first_bad);
    /* utf8_encode on code points made of the input */
    for (size_t at = 0; at + 3 <= len; at += 3) {
        uint32_t cp = ((uint32_t)s[at] << 16 | (uint32_t)s[at + 1] << 8 | s[at + 2]) % 0x110800u;
        uint8_t enc[4];
        size_t n = utf8_encode(cp, enc);
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            FUZZ_CHECK(n == 0, "encoded a non-scalar value");
        } else {
            size_t m;
            uint32_t back;
            FUZZ_CHECK(n >= 1 && utf8_next(enc, n, &m, &back) == UTF8_OK && m == n && back == cp,
                       "encode/next round trip of U+%04X", (unsigned)cp);
        }
    }
}

static void check_decoder(const uint8_t *data, size_t size) {
    const gpt2_tokenizer *tok = fuzz_gpt2_tokenizer();
    size_t v = gpt2_tokenizer_vocab_size(tok), n = size / 2;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    FUZZ_CHECK(ids, "malloc");
    size_t nbytes = 0, n_valid = n;
    for (size_t i = 0; i < n; i++) {
        uint8_t lo = data[2 * i], hi = data[2 * i + 1];
        ids[i] = hi >= 0xC0 ? byte_token[lo] : (int32_t)((lo | (unsigned)hi << 8) % (v + 1));
        if ((size_t)ids[i] == v) { n_valid = i; break; }
        const uint8_t *p;
        size_t k;
        FUZZ_CHECK(gpt2_tokenizer_token_bytes(tok, ids[i], &p, &k, NULL) == GPT2_OK, "bytes");
        nbytes += k;
    }
    /* the reference: decode the concatenated bytes of ids[0..n_valid) */
    uint8_t *cat = malloc(nbytes + 1), *want = malloc(3 * nbytes + 3);
    FUZZ_CHECK(cat && want, "malloc");
    size_t at = 0;
    for (size_t i = 0; i < n_valid; i++) {
        const uint8_t *p;
        size_t k;
        gpt2_tokenizer_token_bytes(tok, ids[i], &p, &k, NULL);
        memcpy(cat + at, p, k);
        at += k;
    }
    size_t want_len = fuzz_utf8_ref_decode(cat, nbytes, want);
    gpt2_error err;

    /* whole-sequence decode: size query, too small, exact */
    size_t need = 0;
    gpt2_err rc = gpt2_tokenizer_decode(tok, ids, n_valid, NULL, 0, &need, &err);
    FUZZ_CHECK(rc == GPT2_OK && need == want_len, "size query %zu, want %zu", need, want_len);
    char *out = malloc(want_len + 1);
    FUZZ_CHECK(out, "malloc");
    size_t got = 0;
    if (want_len > 0) {
        rc = gpt2_tokenizer_decode(tok, ids, n_valid, out, want_len - 1, &got, &err);
        FUZZ_CHECK(rc == GPT2_ERR_RANGE && got == want_len, "short buffer: rc %d got %zu", (int)rc, got);
    }
    rc = gpt2_tokenizer_decode(tok, ids, n_valid, out, want_len, &got, &err);
    FUZZ_CHECK(rc == GPT2_OK && got == want_len && memcmp(out, want, want_len) == 0,
               "decode differs from the reference");
    if (n_valid < n) {
        rc = gpt2_tokenizer_decode(tok, ids, n_valid + 1, out, want_len, &got, &err);
        FUZZ_CHECK(rc == GPT2_ERR_RANGE, "out-of-range id decoded");
    }

    /* streaming: each push first with a cap that may be too small (then d must not change),
     * then with the documented bound; the output must equal the reference */
    gpt2_decoder d;
    gpt2_decoder_init(&d);
    size_t cap = gpt2_decoder_max_output(tok), pos = 0;
    char *piece = malloc(cap);
    FUZZ_CHECK(piece, "malloc");
    for (size_t i = 0; i < n_valid; i++) {
        gpt2_decoder before = d;
        size_t k = 0, small = data[2 * i] % 8;
        rc = gpt2_decoder_push(&d, tok, ids[i], piece, small, &k, &err);
        if (rc == GPT2_OK) {
            FUZZ_CHECK(k <= small, "wrote past a small cap");
        } else {
            FUZZ_CHECK(rc == GPT2_ERR_RANGE && k == 0 && memcmp(&before, &d, sizeof d) == 0,
                       "failed push changed the decoder");
            rc = gpt2_decoder_push(&d, tok, ids[i], piece, cap, &k, &err);
            FUZZ_CHECK(rc == GPT2_OK && k <= cap, "push with max_output: %s", err.message);
        }
        FUZZ_CHECK(d.n_pending <= 3, "n_pending %d", d.n_pending);
        FUZZ_CHECK(pos + k <= want_len && memcmp(piece, want + pos, k) == 0, "streamed text differs");
        pos += k;
    }
    if (n_valid < n) {
        gpt2_decoder before = d;
        size_t k = 7;
        rc = gpt2_decoder_push(&d, tok, ids[n_valid], piece, cap, &k, &err);
        FUZZ_CHECK(rc == GPT2_ERR_RANGE && k == 0 && memcmp(&before, &d, sizeof d) == 0,
                   "out-of-range push");
    }
    size_t k = 0;
    if (d.n_pending) {
        gpt2_decoder before = d;
        rc = gpt2_decoder_finish(&d, piece, 2, &k, &err);
        FUZZ_CHECK(rc == GPT2_ERR_RANGE && memcmp(&before, &d, sizeof d) == 0, "finish cap 2");
    }
    rc = gpt2_decoder_finish(&d, piece, 3, &k, &err);
    FUZZ_CHECK(rc == GPT2_OK && d.n_pending == 0, "finish");
    FUZZ_CHECK(pos + k == want_len && memcmp(piece, want + pos, k) == 0, "finish output differs");
    free(piece);
    free(out);
    free(cat);
    free(want);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_utf8(data, size);
    check_decoder(data, size);
    return 0;
}
