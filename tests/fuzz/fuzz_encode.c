/* fuzz_encode.c - libFuzzer harness for the BPE encoder (pre-tokenizer + merges) with the
 * real GPT-2 tokenizer (models/vocab.json + merges.txt, loaded once per process).
 * Input: byte 0 = flags (bit 0: allow_special, bit 1: also try a too-small cap), then the
 * text (any bytes; ill-formed UTF-8 must be rejected with its offset). Well-formed text must
 * get the same ids as a slow reference encoder written here from the regex and merges.txt. */
#include "fuzz_common.h"
#include "utf8.h"

/* ---- reference encoder, written independently of src/tokenizer.c ----------------------
 * The pre-tokenizer follows GPT-2's regex literally, alternative by alternative:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and each piece is merged naively: while some adjacent pair has a merge, merge the pair with
 * the lowest merges.txt rank (leftmost on ties). Ranks come from parsing merges.txt here. */
#include "unicode_tables.h"

typedef struct ref_tok {
    size_t n_vocab;
    int32_t *slots; /* bytes -> id (open addressing, -1 empty) */
    size_t mask;
    uint64_t *pair_keys; /* (left << 32 | right) -> rank, open addressing, UINT64_MAX empty */
    int32_t *pair_rank;
    size_t pair_mask;
} ref_tok;
static ref_tok ref;

static uint64_t ref_hash(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int32_t ref_lookup(const uint8_t *p, size_t n) {
    const gpt2_tokenizer *tok = fuzz_gpt2_tokenizer();
    for (size_t i = ref_hash(p, n) & ref.mask;; i = (i + 1) & ref.mask) {
        int32_t id = ref.slots[i];
        if (id < 0) return -1;
        const uint8_t *b;
        size_t bl;
        gpt2_tokenizer_token_bytes(tok, id, &b, &bl, NULL);
        if (bl == n && memcmp(b, p, n) == 0) return id;
    }
}

static int32_t ref_rank(int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & ref.pair_mask;;
         i = (i + 1) & ref.pair_mask) {
        if (ref.pair_keys[i] == key) return ref.pair_rank[i];
        if (ref.pair_keys[i] == UINT64_MAX) return -1;
    }
}

/* GPT-2's printable alphabet back to bytes: code point -> byte (-1 if not in it). */
static int alphabet_byte(uint32_t cp) {
    static int table[0x144];
    static int ready;
    if (!ready) {
        for (int i = 0; i < 0x144; i++) table[i] = -1;
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            table[printable ? b : 0x100 + extra++] = b;
        }
        ready = 1;
    }
    return cp < 0x144 ? table[cp] : -1;
}

/* UTF-8 text in the alphabet -> bytes; returns the count (input is GPT-2's own merges.txt). */
static size_t alphabet_decode(const char *s, size_t n, uint8_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        uint32_t cp = c < 0x80 ? c : (uint32_t)(c & 0x1F) << 6 | ((uint8_t)s[i + 1] & 0x3F);
        i += c < 0x80 ? 1 : 2; /* every alphabet code point is below U+0800 */
        int b = alphabet_byte(cp);
        FUZZ_CHECK(b >= 0, "merges.txt: code point U+%04X outside the alphabet", (unsigned)cp);
        out[o++] = (uint8_t)b;
    }
    return o;
}

static void ref_init(void) {
    const gpt2_tokenizer *tok = fuzz_gpt2_tokenizer();
    ref.n_vocab = gpt2_tokenizer_vocab_size(tok);
    size_t cap = 1;
    while (cap < 4 * ref.n_vocab) cap *= 2;
    ref.slots = malloc(cap * sizeof *ref.slots);
    FUZZ_CHECK(ref.slots, "malloc");
    memset(ref.slots, 0xFF, cap * sizeof *ref.slots);
    ref.mask = cap - 1;
    for (size_t id = 0; id < ref.n_vocab; id++) {
        const uint8_t *b;
        size_t bl;
        gpt2_tokenizer_token_bytes(tok, (int32_t)id, &b, &bl, NULL);
        size_t i = ref_hash(b, bl) & ref.mask;
        while (ref.slots[i] >= 0) i = (i + 1) & ref.mask;
        ref.slots[i] = (int32_t)id;
    }
    size_t len;
    char *m = fuzz_read_file(GPT2_FUZZ_MODEL_DIR "/merges.txt", &len);
    ref.pair_keys = malloc(cap * sizeof *ref.pair_keys);
    ref.pair_rank = malloc(cap * sizeof *ref.pair_rank);
    FUZZ_CHECK(ref.pair_keys && ref.pair_rank, "malloc");
    memset(ref.pair_keys, 0xFF, cap * sizeof *ref.pair_keys);
    ref.pair_mask = cap - 1;
    int32_t rank = 0;
    uint8_t buf[512];
    for (size_t pos = 0; pos < len;) {
        const char *line = m + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + 1;
        if (n == 0 || (line[0] == '#' && rank == 0)) continue;
        const char *sp = memchr(line, ' ', n);
        FUZZ_CHECK(sp && n < sizeof buf, "merges.txt line");
        size_t la = alphabet_decode(line, (size_t)(sp - line), buf);
        size_t lb = alphabet_decode(sp + 1, n - (size_t)(sp - line) - 1, buf + la);
        int32_t a = ref_lookup(buf, la), b = ref_lookup(buf + la, lb);
        FUZZ_CHECK(a >= 0 && b >= 0, "merges.txt parts");
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & ref.pair_mask;
        while (ref.pair_keys[i] != UINT64_MAX && ref.pair_keys[i] != key) i = (i + 1) & ref.pair_mask;
        if (ref.pair_keys[i] == UINT64_MAX) { /* a repeated pair keeps its first rank */
            ref.pair_keys[i] = key;
            ref.pair_rank[i] = rank;
        }
        rank++;
    }
    free(m);
}

enum { R_L, R_N, R_S, R_O };
static int ref_class(const uint8_t *s, size_t n, size_t i, size_t *k) {
    size_t len;
    uint32_t cp;
    utf8_next(s + i, n - i, &len, &cp); /* the text is valid UTF-8 */
    *k = len;
    if (unicode_is_letter(cp)) return R_L;
    if (unicode_is_number(cp)) return R_N;
    if (unicode_is_space(cp)) return R_S;
    return R_O;
}

/* End of the regex match at i. */
static size_t ref_match(const uint8_t *s, size_t n, size_t i) {
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    for (int c = 0; c < 7; c++) {
        size_t m = strlen(contractions[c]);
        if (i + m <= n && memcmp(s + i, contractions[c], m) == 0) return i + m;
    }
    size_t k;
    for (int cls = R_L; cls <= R_O; cls += (cls == R_N ? 2 : 1)) { /* L, N, then O */
        size_t j = i;
        if (s[j] == ' ') j++;
        if (j >= n || ref_class(s, n, j, &k) != cls) continue;
        while (j < n && ref_class(s, n, j, &k) == cls) j += k;
        return j;
    }
    size_t j = i, last = i;
    while (j < n && ref_class(s, n, j, &k) == R_S) { last = j; j += k; }
    FUZZ_CHECK(j > i, "no alternative matched at %zu", i);
    if (j == n) return j;            /* \s+(?!\S) at the end of the text */
    if (last > i) return last;       /* \s+(?!\S) backtracked by one character */
    return j;                        /* \s+ */
}

/* Naive BPE of one piece onto out; returns the new count. */
static size_t ref_bpe(const uint8_t *p, size_t n, int32_t *out, size_t at) {
    int32_t whole = ref_lookup(p, n);
    if (whole >= 0) {
        out[at] = whole;
        return at + 1;
    }
    size_t m = n, *start = malloc(n * sizeof *start), *len = malloc(n * sizeof *len);
    int32_t *id = malloc(n * sizeof *id);
    FUZZ_CHECK(start && len && id, "malloc");
    for (size_t i = 0; i < n; i++) {
        start[i] = i;
        len[i] = 1;
        id[i] = ref_lookup(p + i, 1);
    }
    for (;;) {
        int32_t best = -1;
        size_t at_best = 0;
        for (size_t i = 0; i + 1 < m; i++) {
            int32_t r = ref_rank(id[i], id[i + 1]);
            if (r >= 0 && (best < 0 || r < best)) { best = r; at_best = i; }
        }
        if (best < 0) break;
        len[at_best] += len[at_best + 1];
        id[at_best] = ref_lookup(p + start[at_best], len[at_best]);
        FUZZ_CHECK(id[at_best] >= 0, "merge result not in the vocabulary");
        memmove(start + at_best + 1, start + at_best + 2, (m - at_best - 2) * sizeof *start);
        memmove(len + at_best + 1, len + at_best + 2, (m - at_best - 2) * sizeof *len);
        memmove(id + at_best + 1, id + at_best + 2, (m - at_best - 2) * sizeof *id);
        m--;
    }
    for (size_t i = 0; i < m; i++) out[at++] = id[i];
    free(start);
    free(len);
    free(id);
    return at;
}

static size_t ref_encode(const uint8_t *s, size_t n, int special, int32_t *out) {
    const char *eot = GPT2_EOT_TEXT;
    size_t m = strlen(eot), at = 0, i = 0, seg = 0;
    while (i <= n) {
        int is_eot = special && i + m <= n && memcmp(s + i, eot, m) == 0;
        if (i == n || is_eot) {
            for (size_t j = seg; j < i;) {
                size_t e = ref_match(s, i, j);
                at = ref_bpe(s + j, e - j, out, at);
                j = e;
            }
            if (i == n) break;
            out[at++] = gpt2_tokenizer_eot_id(fuzz_gpt2_tokenizer());
            i += m;
            seg = i;
        } else {
            i++;
        }
    }
    return at;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_gpt2_tokenizer();
    ref_init();
    return 0;
}

static size_t count_eot(const char *s, size_t n) {
    size_t c = 0, m = strlen(GPT2_EOT_TEXT);
    for (size_t i = 0; i + m <= n;) {
        if (memcmp(s + i, GPT2_EOT_TEXT, m) == 0) { c++; i += m; }
        else i++;
    }
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const gpt2_tokenizer *tok = fuzz_gpt2_tokenizer();
    int special = data[0] & 1, small_cap = data[0] & 2;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = malloc((len ? len : 1) * sizeof *ids);
    FUZZ_CHECK(ids, "malloc");
    size_t n_ids = 12345;
    gpt2_error err;
    memset(&err, 0, sizeof err);
    gpt2_err rc = gpt2_tokenizer_encode(tok, text, len, special, ids, len, &n_ids, &err);
    size_t bad = utf8_validate((const uint8_t *)text, len);
    if (bad < len) {
        fuzz_check_error(rc, &err);
        char want[64];
        snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", bad);
        FUZZ_CHECK(rc == GPT2_ERR_FORMAT && n_ids == 0 && strcmp(err.message, want) == 0,
                   "got '%s', want '%s'", err.message, want);
        free(ids);
        return 0;
    }
    FUZZ_CHECK(rc == GPT2_OK, "encode failed: %s", err.message);
    FUZZ_CHECK(n_ids <= len, "%zu ids for %zu bytes", n_ids, len);
    int32_t eot = gpt2_tokenizer_eot_id(tok);
    size_t n_eot = 0, v = gpt2_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n_ids; i++) {
        FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < v, "id %d", (int)ids[i]);
        n_eot += ids[i] == eot;
    }
    FUZZ_CHECK(n_eot == (special ? count_eot(text, len) : 0), "%zu end-of-text ids", n_eot);

    /* the same ids as the reference encoder */
    if (len <= 2048) {
        int32_t *want = malloc((len ? len : 1) * sizeof *want);
        FUZZ_CHECK(want, "malloc");
        size_t n_want = ref_encode((const uint8_t *)text, len, special, want);
        size_t d = 0;
        while (d < n_ids && d < n_want && ids[d] == want[d]) d++;
        FUZZ_CHECK(n_want == n_ids && d == n_ids, "differs from the reference at id #%zu (%d vs %d), %zu vs %zu ids",
                   d, d < n_ids ? (int)ids[d] : -1, d < n_want ? (int)want[d] : -1, n_ids, n_want);
        free(want);
    }

    /* decode(encode(text)) == text, whole and streamed */
    size_t n_out = 0;
    char *back = malloc(3 * len + 3);
    FUZZ_CHECK(back, "malloc");
    rc = gpt2_tokenizer_decode(tok, ids, n_ids, back, 3 * len + 3, &n_out, &err);
    FUZZ_CHECK(rc == GPT2_OK && n_out == len && memcmp(back, text, len) == 0,
               "decode(encode(text)) != text");
    gpt2_decoder d;
    gpt2_decoder_init(&d);
    size_t cap = gpt2_decoder_max_output(tok), at = 0;
    char *piece = malloc(cap);
    FUZZ_CHECK(piece, "malloc");
    for (size_t i = 0; i < n_ids; i++) {
        size_t k = 0;
        FUZZ_CHECK(gpt2_decoder_push(&d, tok, ids[i], piece, cap, &k, &err) == GPT2_OK, "push");
        FUZZ_CHECK(at + k <= len && memcmp(piece, text + at, k) == 0, "streamed text differs");
        at += k;
    }
    size_t k = 0;
    FUZZ_CHECK(gpt2_decoder_finish(&d, piece, cap, &k, &err) == GPT2_OK && k == 0, "finish");
    FUZZ_CHECK(at == len, "streamed %zu of %zu bytes", at, len);
    free(piece);
    free(back);

    /* a cap one short of the answer must fail cleanly, and must not write past it */
    if (small_cap && n_ids > 0) {
        int32_t *few = n_ids > 1 ? malloc((n_ids - 1) * sizeof *few) : NULL; /* exactly cap */
        FUZZ_CHECK(few || n_ids == 1, "malloc");
        size_t got = 1;
        rc = gpt2_tokenizer_encode(tok, text, len, special, few, n_ids - 1, &got, &err);
        FUZZ_CHECK(rc == GPT2_ERR_RANGE && got == 0, "small cap: rc %d", (int)rc);
        free(few);
        few = malloc(n_ids * sizeof *few);
        FUZZ_CHECK(few, "malloc");
        rc = gpt2_tokenizer_encode(tok, text, len, special, few, n_ids, &got, &err);
        FUZZ_CHECK(rc == GPT2_OK && got == n_ids && memcmp(few, ids, n_ids * sizeof *ids) == 0,
                   "exact cap gives other ids");
        free(few);
    }
    free(ids);
    return 0;
}
