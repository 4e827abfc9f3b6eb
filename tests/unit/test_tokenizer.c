/* test_tokenizer.c - GPT-2 tokenizer vs tiktoken reference data, decoding, bad input.
 * Run from the repository root (reads models/ and tests/tokenizer/). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "json.h"
#include "tokenizer.h"
#include "unicode_tables.h"
#include "utf8.h"

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *b = realloc(buf, cap * 2);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    fclose(f);
    *len = n;
    return buf;
}

static double now_seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Encodes and compares with want[0..n_want). Returns 1 on a match. */
static int encode_matches(const gpt2_tokenizer *tok, const char *text, size_t len, int special,
                          const int32_t *want, size_t n_want, const char *name) {
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    size_t n = 0;
    gpt2_error err = {0};
    int ok = 0;
    if (!ids) return 0;
    gpt2_err rc = gpt2_tokenizer_encode(tok, text, len, special, ids, len, &n, &err);
    if (rc != GPT2_OK) {
        fprintf(stderr, "  %s: encode failed: %s\n", name, err.message);
    } else if (n != n_want || (n && memcmp(ids, want, n * sizeof *ids) != 0)) {
        fprintf(stderr, "  %s (special=%d): got %zu ids, want %zu:\n   got ", name, special, n, n_want);
        for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", (int)ids[i]);
        fprintf(stderr, "\n  want ");
        for (size_t i = 0; i < n_want && i < 40; i++) fprintf(stderr, " %d", (int)want[i]);
        fputc('\n', stderr);
    } else {
        ok = 1;
    }
    free(ids);
    return ok;
}

static void test_golden(const gpt2_tokenizer *tok) {
    static const int32_t hello[] = {15496, 995}, space_hello[] = {18435, 995};
    static const int32_t turing[] = {36235, 39141, 18765, 1143, 326, 9061, 561, 530, 1110, 1716,
                                     845, 3665, 11, 475, 772, 339, 714, 407, 5967};
    const char *t = "Alan Turing theorized that computers would one day become very powerful, but even he could not imagine";
    CHECK(encode_matches(tok, "Hello world", 11, 0, hello, 2, "hello"), "Hello world");
    CHECK(encode_matches(tok, " Hello world", 12, 0, space_hello, 2, "space hello"), " Hello world");
    CHECK(encode_matches(tok, t, strlen(t), 0, turing, 19, "turing"), "turing");
    CHECK(gpt2_tokenizer_vocab_size(tok) == 50257, "vocab size %zu", gpt2_tokenizer_vocab_size(tok));
    CHECK(gpt2_tokenizer_eot_id(tok) == 50256, "eot %d", (int)gpt2_tokenizer_eot_id(tok));

    gpt2_error err = {0};
    const uint8_t *b;
    size_t n;
    CHECK_OK(gpt2_tokenizer_token_bytes(tok, 15496, &b, &n, &err), &err);
    CHECK(n == 5 && memcmp(b, "Hello", 5) == 0, "token 15496");
    CHECK_OK(gpt2_tokenizer_token_bytes(tok, 220, &b, &n, &err), &err);
    CHECK(n == 1 && b[0] == ' ', "token 220 is a space");
    CHECK_OK(gpt2_tokenizer_token_bytes(tok, 50256, &b, &n, &err), &err);
    CHECK(n == 13 && memcmp(b, "<|endoftext|>", 13) == 0, "eot bytes");
    CHECK_FAILS(gpt2_tokenizer_token_bytes(tok, 50257, &b, &n, &err), GPT2_ERR_RANGE, &err);
    CHECK_FAILS(gpt2_tokenizer_token_bytes(tok, -1, &b, &n, &err), GPT2_ERR_RANGE, &err);
    CHECK(gpt2_tokenizer_max_token_bytes(tok) >= 13 && gpt2_tokenizer_max_token_bytes(tok) < 256,
          "max token bytes %zu", gpt2_tokenizer_max_token_bytes(tok));

    /* empty text, cap handling */
    int32_t ids[64];
    CHECK_OK(gpt2_tokenizer_encode(tok, "", 0, 1, NULL, 0, &n, &err), &err);
    CHECK(n == 0, "empty text gives %zu ids", n);
    CHECK_FAILS(gpt2_tokenizer_encode(tok, "Hello world", 11, 0, ids, 1, &n, &err), GPT2_ERR_RANGE, &err);
    CHECK_OK(gpt2_tokenizer_encode(tok, "Hello world", 11, 0, ids, 2, &n, &err), &err);
    CHECK(n == 2, "exact cap");
    /* worst case: one id per byte, cap == len */
    const char *bytes_each = "\x01\x02\x03";
    CHECK_OK(gpt2_tokenizer_encode(tok, bytes_each, 3, 0, ids, 3, &n, &err), &err);
    CHECK(n == 3, "3 control bytes -> %zu ids", n);
}

/* Reads a JSON-lines file into an array of parsed docs. */
static json_doc **read_jsonl(const char *path, size_t *count) {
    size_t len = 0;
    char *text = read_all(path, &len);
    *count = 0;
    if (!text) return NULL;
    size_t cap = 1024, n = 0;
    json_doc **docs = malloc(cap * sizeof *docs);
    size_t pos = 0;
    while (docs && pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (line_len > 0) {
            gpt2_error err = {0};
            json_doc *d = NULL;
            if (json_parse(text + pos, line_len, &d, &err) != GPT2_OK) {
                fprintf(stderr, "%s: %s\n", path, err.message);
                CHECK(0, "bad JSON line in %s", path);
            } else {
                if (n == cap) {
                    json_doc **bigger = realloc(docs, 2 * cap * sizeof *docs);
                    if (!bigger) break;
                    docs = bigger;
                    cap *= 2;
                }
                docs[n++] = d;
            }
        }
        pos += line_len + 1;
    }
    free(text);
    *count = n;
    return docs;
}

static void free_jsonl(json_doc **docs, size_t n) {
    for (size_t i = 0; i < n; i++) json_free(docs[i]);
    free(docs);
}

/* ids array value -> malloc'd int32 array */
static int32_t *json_ids(const json_value *arr, size_t *n) {
    *n = 0;
    if (!arr || arr->type != JSON_ARRAY) return NULL;
    int32_t *ids = malloc((arr->count + 1) * sizeof *ids);
    if (!ids) return NULL;
    for (size_t i = 0; i < arr->count; i++) ids[i] = (int32_t)arr->items[i].integer;
    *n = arr->count;
    return ids;
}

static void test_reference(const gpt2_tokenizer *tok) {
    size_t n_corpus = 0, n_exp = 0;
    json_doc **corpus = read_jsonl("tests/tokenizer/corpus.jsonl", &n_corpus);
    json_doc **exp = read_jsonl("tests/tokenizer/expected.jsonl", &n_exp);
    CHECK(n_corpus > 50 && n_exp >= n_corpus, "corpus %zu, expected %zu", n_corpus, n_exp);
    size_t ok_ord = 0, ok_special = 0, ok_roundtrip = 0, ok_stream = 0, corpus_same = 0;
    size_t max_out = gpt2_decoder_max_output(tok);
    char *piece = malloc(max_out);
    for (size_t i = 0; i < n_exp; i++) {
        const json_value *row = json_root(exp[i]);
        const json_value *name = json_get(row, "name"), *text = json_get(row, "text");
        if (!name || !text || text->type != JSON_STRING) {
            CHECK(0, "expected.jsonl row %zu malformed", i);
            continue;
        }
        if (i < n_corpus) {
            const json_value *ct = json_get(json_root(corpus[i]), "text");
            corpus_same += ct && ct->len == text->len && memcmp(ct->str, text->str, ct->len) == 0;
        }
        size_t n_ids, n_sp;
        int32_t *ids = json_ids(json_get(row, "ids"), &n_ids);
        const json_value *sp = json_get(row, "ids_special");
        int32_t *ids_sp = sp ? json_ids(sp, &n_sp) : NULL;
        ok_ord += encode_matches(tok, text->str, text->len, 0, ids, n_ids, name->str);
        ok_special += encode_matches(tok, text->str, text->len, 1, ids_sp ? ids_sp : ids,
                                     ids_sp ? n_sp : n_ids, name->str);
        /* whole decode and streamed decode both give back the text */
        size_t cap = 3 * text->len + 3, n_out = 0;
        char *out = malloc(cap + 1), *streamed = malloc(cap + 1);
        gpt2_error err = {0};
        if (out && gpt2_tokenizer_decode(tok, ids, n_ids, out, cap, &n_out, &err) == GPT2_OK &&
            n_out == text->len && memcmp(out, text->str, n_out) == 0)
            ok_roundtrip++;
        else
            fprintf(stderr, "  %s: decode does not round-trip (%s)\n", name->str, err.message);
        gpt2_decoder d;
        gpt2_decoder_init(&d);
        size_t total = 0;
        int stream_ok = streamed != NULL && piece != NULL;
        for (size_t k = 0; k < n_ids && stream_ok; k++) {
            size_t np = 0;
            if (gpt2_decoder_push(&d, tok, ids[k], piece, max_out, &np, &err) != GPT2_OK ||
                total + np > cap) {
                stream_ok = 0;
                break;
            }
            memcpy(streamed + total, piece, np);
            total += np;
        }
        if (stream_ok) {
            size_t np = 0;
            stream_ok = gpt2_decoder_finish(&d, piece, max_out, &np, &err) == GPT2_OK && np == 0;
        }
        if (stream_ok && total == text->len && memcmp(streamed, text->str, total) == 0) ok_stream++;
        else fprintf(stderr, "  %s: streamed decode differs\n", name->str);
        free(out);
        free(streamed);
        free(ids);
        free(ids_sp);
    }
    free(piece);
    CHECK(corpus_same == n_corpus, "expected.jsonl is stale: %zu of %zu corpus texts match",
          corpus_same, n_corpus);
    CHECK(ok_ord == n_exp, "ordinary: %zu of %zu cases match tiktoken", ok_ord, n_exp);
    CHECK(ok_special == n_exp, "special allowed: %zu of %zu cases match tiktoken", ok_special, n_exp);
    CHECK(ok_roundtrip == n_exp, "decode round-trips %zu of %zu", ok_roundtrip, n_exp);
    CHECK(ok_stream == n_exp, "streamed decode round-trips %zu of %zu", ok_stream, n_exp);
    printf("tiktoken reference: %zu texts (%zu corpus + %zu generated) x 2 modes: "
           "%zu + %zu match\n", n_exp, n_corpus, n_exp - n_corpus, ok_ord, ok_special);
    free_jsonl(corpus, n_corpus);
    free_jsonl(exp, n_exp);
}

/* Compares the generated tables with the classes tiktoken's regex engine uses. */
static void test_unicode_classes(void) {
    size_t len = 0;
    char *text = read_all("tests/tokenizer/unicode_classes.txt", &len);
    CHECK(text != NULL, "cannot read unicode_classes.txt");
    if (!text) return;
    char *cls = malloc(0x110000);
    if (!cls) {
        free(text);
        return;
    }
    memset(cls, 'O', 0x110000);
    char *line = text, *end = text + len;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) nl = end;
        *nl = '\0';
        unsigned long a, b;
        char c;
        if (line[0] != '#' && sscanf(line, "%lx %lx %c", &a, &b, &c) == 3 && a <= b && b < 0x110000)
            memset(cls + a, c, b - a + 1);
        line = nl + 1;
    }
    /* every scalar value must get exactly tiktoken's class: no tolerance for version skew */
    size_t agree = 0, wrong = 0, total = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char mine = unicode_is_letter(cp) ? 'L' : unicode_is_number(cp) ? 'N'
                  : unicode_is_space(cp)  ? 'S' : 'O';
        total++;
        if (mine == cls[cp]) {
            agree++;
        } else {
            if (wrong < 10) fprintf(stderr, "  U+%04X: ours %c, tiktoken %c\n", (unsigned)cp, mine, cls[cp]);
            wrong++;
        }
    }
    CHECK(wrong == 0 && agree == total, "%zu code points classified differently from tiktoken", wrong);
    CHECK(strcmp(UNICODE_TABLES_VERSION, "16.0.0") == 0, "tables are Unicode %s, tiktoken's are 16.0.0",
          UNICODE_TABLES_VERSION);
    CHECK(unicode_is_space(0x85) && unicode_is_space(0xA0) && unicode_is_space(0x3000) &&
          !unicode_is_space(0x1C) && !unicode_is_space(0x200B) && !unicode_is_space(0xFEFF) &&
          !unicode_is_space(0x180E), "White_Space definition");
    CHECK(unicode_is_letter(0x4E00) && unicode_is_letter(0x9FFF) && unicode_is_letter(0xAC00) &&
          unicode_is_letter(0xD7A3) && unicode_is_letter(0x20000) && !unicode_is_letter(0xD800),
          "First/Last ranges");
    /* letters/numbers new in Unicode 15.1 / 16.0 (CJK Extension I, Garay digits, ...) */
    CHECK(unicode_is_letter(0x2EBF0) && unicode_is_letter(0x2EE5D) && unicode_is_letter(0x10D4A) &&
          unicode_is_number(0x10D40) && unicode_is_number(0x10D49) && !unicode_is_letter(0x2EE5E),
          "Unicode 16.0 additions");
    printf("unicode classes (tables %s): %zu of %zu scalar values agree with tiktoken\n",
           UNICODE_TABLES_VERSION, agree, total);
    free(cls);
    free(text);
}

static void test_bad_utf8(const gpt2_tokenizer *tok) {
    static const struct { const char *s; size_t len; size_t at; } cases[] = {
        {"abc\xC0\xAF", 5, 3},          /* overlong '/' */
        {"\xE0\x80\xAF", 3, 0},         /* overlong 3-byte */
        {"\xF0\x80\x80\xAF", 4, 0},     /* overlong 4-byte */
        {"ok \xED\xA0\x80 x", 7, 3},    /* encoded surrogate U+D800 */
        {"x\xED\xBF\xBF", 4, 1},        /* encoded surrogate U+DFFF */
        {"trunc\xE2\x82", 7, 5},        /* truncated at end */
        {"trunc\xE2\x82 more", 12, 5},  /* truncated in the middle */
        {"\xFF", 1, 0},
        {"ab\xFE", 3, 2},
        {"\x80", 1, 0},                 /* lone continuation */
        {"\xF4\x90\x80\x80", 4, 0},     /* above U+10FFFF */
        {"\xF5\x80\x80\x80", 4, 0},
        {"Hello, world. \xC3\x28", 16, 14},
        {"0123456789abcdef\xF0\x9F\x98", 19, 16},
    };
    int32_t ids[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gpt2_error err = {0};
        size_t n = 99;
        char want[64];
        snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", cases[i].at);
        CHECK_FAILS(gpt2_tokenizer_encode(tok, cases[i].s, cases[i].len, 1, ids, 64, &n, &err),
                    GPT2_ERR_FORMAT, &err);
        CHECK(strcmp(err.message, want) == 0 && n == 0, "case %zu: '%s' (want '%s')", i,
              err.message, want);
    }
    /* valid edge cases */
    gpt2_error err = {0};
    size_t n;
    CHECK_OK(gpt2_tokenizer_encode(tok, "\xF4\x8F\xBF\xBF\xEF\xBF\xBF\xED\x9F\xBF\xEE\x80\x80", 13, 0,
                                   ids, 64, &n, &err), &err);
    CHECK_OK(gpt2_tokenizer_encode(tok, "a\0b", 3, 0, ids, 64, &n, &err), &err);
    CHECK(n == 3, "NUL is a character (%zu ids)", n);
}

/* Builds a small vocab/merges pair: the 256 byte tokens + the first n_merges GPT-2
 * merges + <|endoftext|>, in GPT-2's id order. */
static int make_small_vocab(const gpt2_tokenizer *full, size_t n_merges, char **vocab,
                            size_t *vocab_len, char **merges, size_t *merges_len) {
    size_t len;
    char *all = read_all("models/merges.txt", &len);
    if (!all) return 0;
    size_t pos = 0, lines = 0;
    while (pos < len && lines <= n_merges) { /* the #version line + n_merges */
        const char *nl = memchr(all + pos, '\n', len - pos);
        if (!nl) break;
        pos = (size_t)(nl - all) + 1;
        lines++;
    }
    *merges = all;
    *merges_len = pos;
    /* vocab.json from token bytes: ids 0 .. 256+n_merges-1 then eot, written as JSON
     * with \u escapes of GPT-2's byte alphabet code points. */
    size_t n = 256 + n_merges;
    size_t cap = 64 + n * 200;
    char *v = malloc(cap);
    if (!v) return 0;
    size_t o = 0;
    v[o++] = '{';
    for (size_t id = 0; id < n; id++) {
        const uint8_t *b;
        size_t bl;
        if (gpt2_tokenizer_token_bytes(full, (int32_t)id, &b, &bl, NULL) != GPT2_OK) return 0;
        o += (size_t)snprintf(v + o, cap - o, "%s\"", id ? ", " : "");
        for (size_t k = 0; k < bl; k++) {
            unsigned byte = b[k], cp;
            /* the alphabet again, independently: printable bytes map to themselves */
            int printable = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) ||
                            (byte >= 0xAE);
            if (printable) {
                cp = byte;
            } else {
                unsigned idx = 0;
                for (unsigned x = 0; x < byte; x++)
                    idx += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
                cp = 0x100 + idx;
            }
            o += (size_t)snprintf(v + o, cap - o, "\\u%04x", cp);
        }
        o += (size_t)snprintf(v + o, cap - o, "\": %zu", id);
    }
    o += (size_t)snprintf(v + o, cap - o, ", \"<|endoftext|>\": %zu}", n);
    *vocab = v;
    *vocab_len = o;
    return 1;
}

static void test_small_vocab(const gpt2_tokenizer *full) {
    char *vocab = NULL, *merges = NULL;
    size_t vl = 0, ml = 0;
    CHECK(make_small_vocab(full, 1000, &vocab, &vl, &merges, &ml), "building the small vocab");
    gpt2_tokenizer *tok = NULL;
    gpt2_error err = {0};
    CHECK_OK(gpt2_tokenizer_create(vocab, vl, merges, ml, &tok, &err), &err);
    if (tok) {
        CHECK(gpt2_tokenizer_vocab_size(tok) == 1257, "small vocab size %zu", gpt2_tokenizer_vocab_size(tok));
        CHECK(gpt2_tokenizer_eot_id(tok) == 1256, "small eot %d", (int)gpt2_tokenizer_eot_id(tok));
        const char *text = "The quick brown fox: it's 1234 \xE2\x82\xAC and\n\n  \xF0\x9F\x98\x80<|endoftext|>x";
        size_t len = strlen(text), n = 0, n_out = 0;
        int32_t ids[128];
        char out[512];
        CHECK_OK(gpt2_tokenizer_encode(tok, text, len, 1, ids, 128, &n, &err), &err);
        int in_range = 1;
        for (size_t i = 0; i < n; i++) in_range &= ids[i] >= 0 && ids[i] < 1257;
        CHECK(in_range && n < len && ids[n - 2] == 1256, "small vocab ids (%zu)", n);
        /* tokens shared with the full vocab: ids below 1256 are the same tokens, and
         * " the" (merge rank < 1000) is one token */
        CHECK_OK(gpt2_tokenizer_encode(tok, " the", 4, 0, ids, 128, &n, &err), &err);
        CHECK(n == 1 && ids[0] == 262, "' the' -> %zu ids, first %d", n, (int)ids[0]);
        CHECK_OK(gpt2_tokenizer_encode(tok, text, len, 0, ids, 128, &n, &err), &err);
        CHECK_OK(gpt2_tokenizer_decode(tok, ids, n, out, sizeof out, &n_out, &err), &err);
        CHECK(n_out == len && memcmp(out, text, len) == 0, "small vocab round trip");
        gpt2_tokenizer_free(tok);
    }
    free(vocab);
    free(merges);
}

/* A valid minimal vocab: 256 byte tokens (ids 0..255) + extra entries. */
static char *byte_vocab(const char *extra, size_t *len) {
    size_t cap = 256 * 16 + strlen(extra) + 16, o = 0;
    char *v = malloc(cap);
    if (!v) return NULL;
    v[o++] = '{';
    unsigned next = 0x100;
    for (unsigned b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = printable ? b : next++;
        o += (size_t)snprintf(v + o, cap - o, "%s\"\\u%04x\": %u", b ? ", " : "", cp, b);
    }
    o += (size_t)snprintf(v + o, cap - o, "%s}", extra);
    *len = o;
    return v;
}

static void test_bad_files(void) {
    gpt2_error err = {0};
    gpt2_tokenizer *tok = (gpt2_tokenizer *)&err; /* must be reset to NULL on failure */
    const char *merges = "#version: 0.2\nh e\n";
    size_t vl;
    char *good = byte_vocab(", \"he\": 256", &vl);

    CHECK_OK(gpt2_tokenizer_create(good, vl, merges, strlen(merges), &tok, &err), &err);
    if (tok) {
        int32_t ids[16];
        size_t n = 0;
        CHECK_OK(gpt2_tokenizer_encode(tok, "hehe h", 6, 1, ids, 16, &n, &err), &err);
        /* "hehe" -> he he; " h" -> bytes ' ' 'h' (ids = byte values here) */
        CHECK(n == 4 && ids[0] == 256 && ids[1] == 256 && ids[2] == ' ' && ids[3] == 'h',
              "tiny encode");
        CHECK(gpt2_tokenizer_eot_id(tok) == -1, "no eot in tiny vocab");
        /* without an eot token, allow_special encodes the literal as text */
        CHECK_OK(gpt2_tokenizer_encode(tok, "<|endoftext|>", 13, 1, ids, 13, &n, &err), &err);
        CHECK(n > 1, "literal eot without special token");
        gpt2_tokenizer_free(tok);
    }
    /* CRLF, no #version, no trailing newline, blank lines */
    const char *crlf = "h e\r\n\r\n";
    CHECK_OK(gpt2_tokenizer_create(good, vl, crlf, strlen(crlf), &tok, &err), &err);
    gpt2_tokenizer_free(tok);
    CHECK_OK(gpt2_tokenizer_create(good, vl, "h e", 3, &tok, &err), &err);
    gpt2_tokenizer_free(tok);

    struct { const char *vocab; const char *merges; const char *what; } bad[] = {
        {"", "h e", "empty vocab"},
        {"[1, 2]", "h e", "vocab not an object"},
        {"{}", "h e", "empty object"},
        {"{\"a\": 1", "h e", "truncated JSON"},
        {NULL, "", "empty merges"},
        {NULL, "#version: 0.2\n", "only a version line"},
        {NULL, "h e\nx\n", "merge line without a space"},
        {NULL, "h e\nh  e\n", "two spaces"},
        {NULL, "h e f\n", "three parts"},
        {NULL, "h \u0100\u0100\u0100\n", "unknown right part"},
        {NULL, "\xE4\xB8\xAD e\n", "character outside the alphabet"},
        {NULL, "h e\nt h\n", "concatenation not in vocab"},
        {NULL, "h e\n\xFF e\n", "invalid UTF-8 in merges"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *v = bad[i].vocab ? bad[i].vocab : good;
        size_t len = bad[i].vocab ? strlen(bad[i].vocab) : vl;
        tok = (gpt2_tokenizer *)&err;
        CHECK_FAILS(gpt2_tokenizer_create(v, len, bad[i].merges, strlen(bad[i].merges), &tok, &err),
                    GPT2_ERR_FORMAT, &err);
        CHECK(tok == NULL, "%s: out not reset", bad[i].what);
        printf("  rejected (%s): %s\n", bad[i].what, err.message);
    }
    /* vocab defects appended to a valid byte vocab */
    const char *extras[] = {
        ", \"he\": \"256\"",   /* string id */
        ", \"he\": 256.5",     /* fractional id */
        ", \"he\": 3",         /* duplicate id */
        ", \"he\": 257",       /* out of range (n = 257) */
        ", \"he\": -1",
        ", \"he\": 256, \"he\": 257", /* duplicate token */
        ", \"\": 256",         /* empty token */
        ", \"\\u4e2d\": 256",  /* outside the byte alphabet */
    };
    for (size_t i = 0; i < sizeof extras / sizeof extras[0]; i++) {
        size_t len;
        char *v = byte_vocab(extras[i], &len);
        tok = NULL;
        CHECK_FAILS(gpt2_tokenizer_create(v, len, "h e", 3, &tok, &err), GPT2_ERR_FORMAT, &err);
        printf("  rejected (vocab%s): %s\n", extras[i], err.message);
        free(v);
    }
    /* missing single-byte token: byte 0xFF's entry replaced by "he" */
    {
        size_t len;
        char *v = byte_vocab("", &len);
        char *p = v ? strstr(v, "\"\\u00ff\": 255") : NULL;
        CHECK(p != NULL, "byte vocab layout");
        if (p) {
            memcpy(p, "\"he\"    ", 8); /* same length: "he" plus JSON whitespace */
            CHECK_FAILS(gpt2_tokenizer_create(v, len, "h e", 3, &tok, &err), GPT2_ERR_FORMAT, &err);
            printf("  rejected (missing byte token): %s\n", err.message);
        }
        free(v);
        const char *tiny = "{\"a\": 0, \"b\": 1}";
        CHECK_FAILS(gpt2_tokenizer_create(tiny, strlen(tiny), "a b", 3, &tok, &err),
                    GPT2_ERR_FORMAT, &err);
    }
    CHECK_FAILS(gpt2_tokenizer_load("no/such/dir", &tok, &err), GPT2_ERR_IO, &err);
    CHECK_FAILS(gpt2_tokenizer_create(NULL, 5, "a b", 3, &tok, &err), GPT2_ERR_ARG, &err);
    /* NULL err is allowed everywhere */
    CHECK(gpt2_tokenizer_create("[]", 2, "a b", 3, &tok, NULL) == GPT2_ERR_FORMAT, "NULL err");
    CHECK(gpt2_tokenizer_create(good, vl, "x y", 3, &tok, NULL) == GPT2_ERR_FORMAT, "NULL err merges");
    free(good);
}

/* Streaming decoder: hand-made byte sequences, then TextDecoder reference rows. */
static void test_decoder(const gpt2_tokenizer *tok) {
    /* the single-byte tokens' ids, found by encoding: GPT-2 maps byte b to token
     * byte_id(b); get them through token_bytes search over the first 256 ids */
    int32_t byte_id[256];
    for (int i = 0; i < 256; i++) byte_id[i] = -1;
    for (int32_t id = 0; id < 256; id++) {
        const uint8_t *b;
        size_t n;
        if (gpt2_tokenizer_token_bytes(tok, id, &b, &n, NULL) == GPT2_OK && n == 1) byte_id[b[0]] = id;
    }
    int all = 1;
    for (int i = 0; i < 256; i++) all &= byte_id[i] >= 0;
    CHECK(all, "ids 0..255 are the single bytes");
    if (!all) return;

    gpt2_decoder d;
    gpt2_error err = {0};
    char out[64];
    size_t n;
    /* "é" = C3 A9 split over two tokens */
    gpt2_decoder_init(&d);
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xC3], out, sizeof out, &n, &err), &err);
    CHECK(n == 0 && d.n_pending == 1, "nothing before the character completes");
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xA9], out, sizeof out, &n, &err), &err);
    CHECK(n == 2 && memcmp(out, "\xC3\xA9", 2) == 0 && d.n_pending == 0, "é completes");
    /* emoji F0 9F 98 80 over four tokens */
    const uint8_t emoji[4] = {0xF0, 0x9F, 0x98, 0x80};
    for (int i = 0; i < 4; i++) {
        CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[emoji[i]], out, sizeof out, &n, &err), &err);
        CHECK(n == (i == 3 ? 4u : 0u), "emoji byte %d -> %zu bytes", i, n);
    }
    CHECK(memcmp(out, emoji, 4) == 0, "emoji");
    /* broken: E2 82 then 'A' -> U+FFFD (for E2 82) then 'A' */
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xE2], out, sizeof out, &n, &err), &err);
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0x82], out, sizeof out, &n, &err), &err);
    CHECK(n == 0, "E2 82 pending");
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id['A'], out, sizeof out, &n, &err), &err);
    CHECK(n == 4 && memcmp(out, "\xEF\xBF\xBD" "A", 4) == 0, "E2 82 41 -> FFFD A");
    /* F0 80: F0 is a maximal subpart of its own, then 80 is one more */
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xF0], out, sizeof out, &n, &err), &err);
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0x80], out, sizeof out, &n, &err), &err);
    CHECK(n == 6 && memcmp(out, "\xEF\xBF\xBD\xEF\xBF\xBD", 6) == 0, "F0 80 -> 2 x FFFD");
    /* surrogate ED A0 80 -> 3 x FFFD ; C0 AF -> 2 x FFFD; FF -> FFFD */
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xED], out, sizeof out, &n, &err), &err);
    CHECK(n == 0, "ED pending");
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xA0], out, sizeof out, &n, &err), &err);
    CHECK(n == 6, "ED A0 -> FFFD FFFD (%zu)", n);
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xFF], out, sizeof out, &n, &err), &err);
    CHECK(n == 3, "FF -> FFFD");
    /* finish flushes an incomplete tail as one U+FFFD */
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xF0], out, sizeof out, &n, &err), &err);
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0x9F], out, sizeof out, &n, &err), &err);
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0x98], out, sizeof out, &n, &err), &err);
    CHECK(n == 0 && d.n_pending == 3, "3 pending");
    CHECK_FAILS(gpt2_decoder_finish(&d, out, 2, &n, &err), GPT2_ERR_RANGE, &err);
    CHECK(d.n_pending == 3, "state kept after a failed finish");
    CHECK_OK(gpt2_decoder_finish(&d, out, sizeof out, &n, &err), &err);
    CHECK(n == 3 && memcmp(out, "\xEF\xBF\xBD", 3) == 0 && d.n_pending == 0, "finish -> FFFD");
    CHECK_OK(gpt2_decoder_finish(&d, out, 0, &n, &err), &err);
    CHECK(n == 0, "finish on empty state");
    /* cap too small leaves the state unchanged */
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xC3], out, sizeof out, &n, &err), &err);
    CHECK_FAILS(gpt2_decoder_push(&d, tok, byte_id[0xA9], out, 1, &n, &err), GPT2_ERR_RANGE, &err);
    CHECK(d.n_pending == 1 && d.pending[0] == 0xC3, "state kept after a failed push");
    CHECK_OK(gpt2_decoder_push(&d, tok, byte_id[0xA9], out, 2, &n, &err), &err);
    CHECK_FAILS(gpt2_decoder_push(&d, tok, 50257, out, sizeof out, &n, &err), GPT2_ERR_RANGE, &err);
    /* whole decode: size query, too-small cap, invalid id */
    int32_t seq[3] = {byte_id[0xC3], byte_id[0xA9], byte_id[0xC3]};
    CHECK_OK(gpt2_tokenizer_decode(tok, seq, 3, NULL, 0, &n, &err), &err);
    CHECK(n == 5, "size query %zu", n);
    CHECK_FAILS(gpt2_tokenizer_decode(tok, seq, 3, out, 4, &n, &err), GPT2_ERR_RANGE, &err);
    CHECK(n == 5, "needed size reported");
    seq[1] = -5;
    CHECK_FAILS(gpt2_tokenizer_decode(tok, seq, 3, out, sizeof out, &n, &err), GPT2_ERR_RANGE, &err);

    /* TextDecoder reference (tools/make_tokenizer_expected.mjs) */
    size_t rows = 0, good = 0;
    json_doc **docs = read_jsonl("tests/tokenizer/decoder_expected.jsonl", &rows);
    size_t cap = gpt2_decoder_max_output(tok);
    char *buf = malloc(cap), *whole = malloc(64 * cap);
    for (size_t r = 0; r < rows && buf && whole; r++) {
        const json_value *row = json_root(docs[r]);
        const json_value *ids = json_get(row, "ids"), *pieces = json_get(row, "pieces"),
                         *tail = json_get(row, "tail");
        if (!ids || !pieces || !tail || ids->count != pieces->count || ids->count > 60) continue;
        int ok = 1;
        size_t total = 0, want_total = 0;
        gpt2_decoder_init(&d);
        int32_t idv[64];
        for (size_t k = 0; k < ids->count; k++) {
            idv[k] = (int32_t)ids->items[k].integer;
            const json_value *p = &pieces->items[k];
            ok &= gpt2_decoder_push(&d, tok, idv[k], buf, cap, &n, &err) == GPT2_OK &&
                  n == p->len && memcmp(buf, p->str, n) == 0;
            want_total += p->len;
        }
        ok &= gpt2_decoder_finish(&d, buf, cap, &n, &err) == GPT2_OK && n == tail->len &&
              memcmp(buf, tail->str, n) == 0;
        want_total += tail->len;
        /* whole-sequence decode equals the concatenation */
        ok &= gpt2_tokenizer_decode(tok, idv, ids->count, whole, 64 * cap, &total, &err) == GPT2_OK &&
              total == want_total;
        good += (size_t)ok;
        if (!ok) fprintf(stderr, "  decoder row %zu differs from TextDecoder\n", r);
    }
    CHECK(rows >= 100 && good == rows, "streaming decoder: %zu of %zu TextDecoder cases", good, rows);
    printf("streaming decoder: %zu of %zu TextDecoder(stream) cases match\n", good, rows);
    free(buf);
    free(whole);
    free_jsonl(docs, rows);
}

/* Exhaustive UTF-8 checks of utf8_next against a direct definition. */
static void test_utf8(void) {
    size_t bad = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        uint8_t b[4];
        size_t k = utf8_encode(cp, b), n;
        uint32_t got;
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            bad += k != 0;
            continue;
        }
        bad += k == 0 || utf8_next(b, k, &n, &got) != UTF8_OK || n != k || got != cp ||
               utf8_validate(b, k) != k;
        for (size_t cut = 1; cut < k; cut++)
            bad += utf8_next(b, cut, &n, &got) != UTF8_INCOMPLETE || n != cut;
    }
    CHECK(bad == 0, "%zu utf8 round-trip failures", bad);
    /* every 2-byte input: valid iff it decodes to a scalar value that re-encodes the same */
    size_t mismatches = 0;
    for (unsigned x = 0; x < 65536; x++) {
        uint8_t s[2] = {(uint8_t)(x >> 8), (uint8_t)x};
        size_t v = utf8_validate(s, 2);
        int want_valid = (s[0] < 0x80 && s[1] < 0x80) ||
                         (s[0] >= 0xC2 && s[0] <= 0xDF && s[1] >= 0x80 && s[1] <= 0xBF);
        mismatches += (v == 2) != want_valid;
    }
    CHECK(mismatches == 0, "%zu two-byte validation mismatches", mismatches);
}

static uint32_t lcg_next(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

/* Random bytes (biased towards UTF-8 lead/continuation bytes, spaces and ASCII):
 * encode must either reject with the first bad offset or succeed within cap = len,
 * and valid text must decode back to itself. */
static void test_fuzz_encode(const gpt2_tokenizer *tok) {
    static const uint8_t pool[] = {' ', ' ', '\t', '\n', 'a', 'Z', '1', '!', '\'', 's', '<', '|',
                                   0xC3, 0xA9, 0xE4, 0xB8, 0xAD, 0xF0, 0x9F, 0x98, 0x80, 0xC2,
                                   0xA0, 0xE3, 0x80, 0xED, 0xA0, 0xFF, 0xC0, 0xF4, 0x90, 0x8F};
    uint32_t state = 7;
    uint8_t text[300];
    int32_t ids[300];
    char out[1000];
    size_t accepted = 0, rejected = 0, failures = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = lcg_next(&state) % 40 + (iter % 100 == 0 ? 250 : 0);
        if (iter % 3 == 0) { /* raw bytes */
            for (size_t i = 0; i < len; i++)
                text[i] = (lcg_next(&state) & 3) ? pool[lcg_next(&state) % sizeof pool]
                                                 : (uint8_t)lcg_next(&state);
        } else { /* whole characters: ASCII, Latin-1, any BMP, any plane */
            static const uint32_t limit[4] = {0x80, 0x100, 0x10000, 0x110000};
            size_t o = 0;
            while (o + 4 <= len) {
                uint32_t cp = lcg_next(&state) % limit[lcg_next(&state) % 4];
                o += utf8_encode(cp, text + o);
            }
            len = o;
        }
        size_t n = 0, n_out = 0, bad = utf8_validate(text, len);
        gpt2_error err = {0};
        gpt2_err rc = gpt2_tokenizer_encode(tok, (const char *)text, len, (int)(iter & 1), ids, len,
                                            &n, &err);
        if (bad < len) {
            char want[64];
            snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", bad);
            failures += rc != GPT2_ERR_FORMAT || strcmp(err.message, want) != 0;
            rejected++;
            continue;
        }
        accepted++;
        if (rc != GPT2_OK || n > len) {
            failures++;
            continue;
        }
        rc = gpt2_tokenizer_decode(tok, ids, n, out, sizeof out, &n_out, &err);
        failures += rc != GPT2_OK || n_out != len || memcmp(out, text, len) != 0;
    }
    CHECK(failures == 0, "%zu fuzz failures", failures);
    printf("fuzz encode: %zu valid texts round-tripped, %zu invalid rejected\n", accepted, rejected);
}

/* Randomly corrupted small vocab/merges files must fail cleanly or load. */
static void test_fuzz_files(void) {
    size_t vl;
    char *vocab = byte_vocab(", \"he\": 256, \"ll\": 257, \"hell\": 258", &vl);
    const char merges[] = "#version: 0.2\nh e\nl l\nhe ll\n";
    size_t ml = sizeof merges - 1;
    char *v = malloc(vl), *m = malloc(ml);
    uint32_t state = 99;
    size_t loaded = 0, failed = 0, bad_codes = 0;
    for (int iter = 0; iter < 3000 && vocab && v && m; iter++) {
        memcpy(v, vocab, vl);
        memcpy(m, merges, ml);
        int flips = 1 + (int)(lcg_next(&state) % 3);
        for (int k = 0; k < flips; k++) {
            if (lcg_next(&state) & 1) v[lcg_next(&state) % vl] = (char)lcg_next(&state);
            else m[lcg_next(&state) % ml] = (char)lcg_next(&state);
        }
        size_t cut_v = (lcg_next(&state) % 8 == 0) ? lcg_next(&state) % vl : vl;
        size_t cut_m = (lcg_next(&state) % 8 == 0) ? lcg_next(&state) % ml : ml;
        gpt2_tokenizer *tok = NULL;
        gpt2_error err = {0};
        gpt2_err rc = gpt2_tokenizer_create(v, cut_v, m, cut_m, &tok, &err);
        if (rc == GPT2_OK) {
            int32_t ids[16];
            size_t n;
            loaded++;
            bad_codes += gpt2_tokenizer_encode(tok, "hello", 5, 1, ids, 16, &n, &err) != GPT2_OK;
            gpt2_tokenizer_free(tok);
        } else {
            failed++;
            bad_codes += rc != GPT2_ERR_FORMAT || tok != NULL || err.message[0] == '\0';
        }
    }
    CHECK(bad_codes == 0, "%zu corrupted files gave an unexpected result", bad_codes);
    printf("fuzz files: %zu loaded, %zu rejected\n", loaded, failed);
    free(vocab);
    free(v);
    free(m);
}

static void test_speed(const char *dir) {
    gpt2_error err = {0};
    gpt2_tokenizer *tok = NULL;
    double t0 = now_seconds();
    CHECK_OK(gpt2_tokenizer_load(dir, &tok, &err), &err);
    double t1 = now_seconds();
    if (!tok) return;
    size_t len = 0;
    char *corpus = read_all("tests/tokenizer/corpus.jsonl", &len);
    size_t want = 100000, n = 0;
    char *text = malloc(want);
    int32_t *ids = malloc(want * sizeof *ids);
    if (corpus && text && ids && len > 0) {
        /* ~100 KB of the corpus file itself (valid UTF-8 JSON text, many scripts) */
        size_t o = 0;
        while (o < want) {
            size_t k = len < want - o ? len : want - o;
            memcpy(text + o, corpus, k);
            o += k;
        }
        size_t end = want;
        while (end > 0 && utf8_validate((const uint8_t *)text, end) != end) end--;
        double t2 = now_seconds();
        CHECK_OK(gpt2_tokenizer_encode(tok, text, end, 0, ids, want, &n, &err), &err);
        double t3 = now_seconds();
        printf("speed: load %.1f ms; encode %zu bytes -> %zu ids in %.1f ms (%.1f MB/s)\n",
               (t1 - t0) * 1e3, end, n, (t3 - t2) * 1e3, end / (t3 - t2) / 1e6);
    }
    free(corpus);
    free(text);
    free(ids);
    gpt2_tokenizer_free(tok);
}

int main(void) {
    gpt2_error err = {0};
    gpt2_tokenizer *tok = NULL;
    test_utf8();
    test_unicode_classes();
    CHECK_OK(gpt2_tokenizer_load("models", &tok, &err), &err);
    if (tok) {
        test_golden(tok);
        test_reference(tok);
        test_bad_utf8(tok);
        test_small_vocab(tok);
        test_decoder(tok);
        test_fuzz_encode(tok);
        gpt2_tokenizer_free(tok);
    }
    test_bad_files();
    test_fuzz_files();
    test_speed("models");
    return check_summary("test_tokenizer");
}
