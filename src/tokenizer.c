/* tokenizer.c - GPT-2 byte-level BPE tokenizer (see tokenizer.h).
 *
 * One file of about 850 lines because its sections - the byte alphabet, the vocabulary and
 * merge hash tables (loading vocab.json and merges.txt), encoding (pre-tokenization and the
 * BPE merge heap) and streaming decoding - all work on the private struct gpt2_tokenizer and
 * its tables; split into files they would need that struct in a shared private header.
 */
#include "tokenizer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "json.h"
#include "unicode_tables.h"
#include "utf8.h"

/* ------------------------------------------------------------------------------------
 * GPT-2's byte alphabet: vocab.json writes each byte as one printable code point.
 * Bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68 bytes
 * (0x00..0x20, 0x7F..0xA0, 0xAD), in increasing order, become U+0100, U+0101, ...
 * so every code point of the alphabet is below U+0100 + 68 = U+0144.
 * ------------------------------------------------------------------------------------ */
#define ALPHABET_LIMIT 0x144u

typedef struct byte_alphabet {
    uint32_t byte_to_cp[256];
    int16_t cp_to_byte[ALPHABET_LIMIT]; /* -1: not in the alphabet */
} byte_alphabet;

static int byte_is_printable(unsigned b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static void byte_alphabet_init(byte_alphabet *a) {
    uint32_t next_extra = 0x100;
    for (size_t cp = 0; cp < ALPHABET_LIMIT; cp++) a->cp_to_byte[cp] = -1;
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = byte_is_printable(b) ? b : next_extra++;
        a->byte_to_cp[b] = cp;
        a->cp_to_byte[cp] = (int16_t)b;
    }
}

/* Converts alphabet text s[0..len) (UTF-8) to raw bytes in out (room for len bytes:
 * each code point is >= 1 UTF-8 byte and yields exactly 1 byte). Returns the number of
 * bytes, or -1 if s holds ill-formed UTF-8 or a code point outside the alphabet. */
static long alphabet_to_bytes(const byte_alphabet *a, const char *s, size_t len, uint8_t *out) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        size_t k;
        uint32_t cp;
        if (utf8_next(p + i, len - i, &k, &cp) != UTF8_OK) return -1;
        if (cp >= ALPHABET_LIMIT || a->cp_to_byte[cp] < 0) return -1;
        out[n++] = (uint8_t)a->cp_to_byte[cp];
        i += k;
    }
    return (long)n;
}

/* ------------------------------------------------------------------------------------ */

typedef struct merge_slot {
    uint64_t key;   /* (left << 32) | right; MERGE_EMPTY if unused */
    int32_t rank;   /* line order in merges.txt, 0 = merged first */
    int32_t merged; /* id of left+right */
} merge_slot;

#define MERGE_EMPTY UINT64_MAX

struct gpt2_tokenizer {
    size_t n_vocab;
    uint8_t *bytes;   /* all tokens' raw bytes, token id at bytes[offset[id]..offset[id+1]) */
    size_t *offset;   /* n_vocab + 1 entries */
    size_t max_token_bytes;
    int32_t eot;      /* -1 if absent */
    int32_t byte_id[256];
    int32_t *tok_slots; /* open-addressing set of ids keyed by their bytes; -1 = empty */
    size_t tok_mask;    /* slot count - 1 (a power of two minus one) */
    merge_slot *merge_slots;
    size_t merge_mask;
    size_t n_merges;
};

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
}

/* Smallest power of two >= 2 * n (load factor <= 1/2), or 0 on overflow. */
static size_t table_size(size_t n) {
    size_t s = 16;
    while (s < 2 * n) {
        if (s > SIZE_MAX / 4) return 0;
        s *= 2;
    }
    return s;
}

/* The id whose bytes are p[0..n), or -1. */
static int32_t token_lookup(const gpt2_tokenizer *tok, const uint8_t *p, size_t n) {
    size_t i = (size_t)hash_bytes(p, n) & tok->tok_mask;
    for (;;) {
        int32_t id = tok->tok_slots[i];
        if (id < 0) return -1;
        size_t len = tok->offset[id + 1] - tok->offset[id];
        if (len == n && memcmp(tok->bytes + tok->offset[id], p, n) == 0) return id;
        i = (i + 1) & tok->tok_mask;
    }
}

/* Inserts id; returns the id already holding the same bytes, or -1 if it was new. */
static int32_t token_insert(gpt2_tokenizer *tok, int32_t id) {
    const uint8_t *p = tok->bytes + tok->offset[id];
    size_t n = tok->offset[id + 1] - tok->offset[id];
    size_t i = (size_t)hash_bytes(p, n) & tok->tok_mask;
    for (;;) {
        int32_t other = tok->tok_slots[i];
        if (other < 0) {
            tok->tok_slots[i] = id;
            return -1;
        }
        size_t len = tok->offset[other + 1] - tok->offset[other];
        if (len == n && memcmp(tok->bytes + tok->offset[other], p, n) == 0) return other;
        i = (i + 1) & tok->tok_mask;
    }
}

static const merge_slot *merge_lookup(const gpt2_tokenizer *tok, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t i = (size_t)hash_pair(key) & tok->merge_mask;
    for (;;) {
        const merge_slot *s = &tok->merge_slots[i];
        if (s->key == key) return s;
        if (s->key == MERGE_EMPTY) return NULL;
        i = (i + 1) & tok->merge_mask;
    }
}

/* Adds a merge unless the pair is already present (the first rank wins). */
static void merge_insert(gpt2_tokenizer *tok, int32_t left, int32_t right, int32_t rank,
                         int32_t merged) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t i = (size_t)hash_pair(key) & tok->merge_mask;
    for (;;) {
        merge_slot *s = &tok->merge_slots[i];
        if (s->key == key) return;
        if (s->key == MERGE_EMPTY) {
            s->key = key;
            s->rank = rank;
            s->merged = merged;
            tok->n_merges++;
            return;
        }
        i = (i + 1) & tok->merge_mask;
    }
}

void gpt2_tokenizer_free(gpt2_tokenizer *tok) {
    if (!tok) return;
    free(tok->bytes);
    free(tok->offset);
    free(tok->tok_slots);
    free(tok->merge_slots);
    free(tok);
}

/* How many bytes of s[0..n) to quote in a message: at most 60, cut at a character
 * boundary so the message stays valid UTF-8 (s is known to be valid UTF-8). */
static int quote_len(const char *s, size_t n) {
    size_t k = n < 60 ? n : 60;
    while (k > 0 && k < n && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
    return (int)k;
}

/* Reads vocab.json into tok->bytes/offset/tok_slots, byte_id and eot. */
static gpt2_err load_vocab(gpt2_tokenizer *tok, const byte_alphabet *alpha, const char *json,
                           size_t json_len, gpt2_error *err) {
    json_doc *doc = NULL;
    gpt2_err rc = json_parse(json, json_len, &doc, err);
    if (rc != GPT2_OK) {
        if (err) gpt2_error_prefix(err, "vocab.json");
        return rc;
    }
    const json_value *root = json_root(doc);
    size_t *len_of = NULL;
    if (root->type != JSON_OBJECT) {
        rc = gpt2_fail(err, GPT2_ERR_FORMAT, "vocab.json: the root is not an object");
        goto done;
    }
    size_t n = root->count;
    if (n < 256) {
        rc = gpt2_fail(err, GPT2_ERR_FORMAT,
                       "vocab.json: %zu tokens, fewer than the 256 single bytes", n);
        goto done;
    }
    if (n > (size_t)INT32_MAX - 1) {
        rc = gpt2_fail(err, GPT2_ERR_FORMAT, "vocab.json: too many tokens (%zu)", n);
        goto done;
    }
    tok->n_vocab = n;
    len_of = calloc(n, sizeof *len_of);
    tok->offset = malloc((n + 1) * sizeof *tok->offset);
    if (!len_of || !tok->offset) {
        rc = gpt2_fail(err, GPT2_ERR_NOMEM, "vocab.json: out of memory");
        goto done;
    }
    /* Pass 1: check every id, decoded length per id (a decoded token is never longer
     * than its key, so the key lengths bound the byte buffer). */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const json_member *m = &root->members[i];
        if (m->value.type != JSON_NUMBER || !m->value.is_integer) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT, "vocab.json: the id of token #%zu \"%.*s\" is not an integer",
                           i, quote_len(m->key, m->key_len), m->key);
            goto done;
        }
        int64_t id = m->value.integer;
        if (id < 0 || (uint64_t)id >= n) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT,
                           "vocab.json: id %lld of token \"%.*s\" is outside [0, %zu)",
                           (long long)id, quote_len(m->key, m->key_len), m->key, n);
            goto done;
        }
        if (len_of[id] != 0) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT, "vocab.json: id %lld is used twice (token \"%.*s\")",
                           (long long)id, quote_len(m->key, m->key_len), m->key);
            goto done;
        }
        if (m->key_len == 0) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT, "vocab.json: id %lld has an empty token",
                           (long long)id);
            goto done;
        }
        len_of[id] = m->key_len; /* provisional (upper bound), fixed in pass 2 */
        total += m->key_len;
    }
    tok->bytes = malloc(total);
    if (!tok->bytes) {
        rc = gpt2_fail(err, GPT2_ERR_NOMEM, "vocab.json: out of memory");
        goto done;
    }
    /* Pass 2: decode each key into a scratch area at its provisional offset... */
    size_t off = 0;
    for (size_t id = 0; id < n; id++) {
        tok->offset[id] = off;
        off += len_of[id];
    }
    tok->offset[n] = off;
    for (size_t i = 0; i < n; i++) {
        const json_member *m = &root->members[i];
        size_t id = (size_t)m->value.integer;
        long k = alphabet_to_bytes(alpha, m->key, m->key_len, tok->bytes + tok->offset[id]);
        if (k < 0) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT,
                           "vocab.json: token \"%.*s\" (id %zu) has a character outside GPT-2's byte alphabet",
                           quote_len(m->key, m->key_len), m->key, id);
            goto done;
        }
        len_of[id] = (size_t)k;
    }
    /* ...then pack the buffer (offsets only shrink, so moving left is safe). */
    off = 0;
    tok->max_token_bytes = 0;
    for (size_t id = 0; id < n; id++) {
        memmove(tok->bytes + off, tok->bytes + tok->offset[id], len_of[id]);
        tok->offset[id] = off;
        off += len_of[id];
        if (len_of[id] > tok->max_token_bytes) tok->max_token_bytes = len_of[id];
    }
    tok->offset[n] = off;

    size_t slots = table_size(n);
    tok->tok_slots = slots ? malloc(slots * sizeof *tok->tok_slots) : NULL;
    if (!tok->tok_slots) {
        rc = gpt2_fail(err, GPT2_ERR_NOMEM, "vocab.json: out of memory");
        goto done;
    }
    memset(tok->tok_slots, 0xFF, slots * sizeof *tok->tok_slots); /* all -1 */
    tok->tok_mask = slots - 1;
    for (size_t id = 0; id < n; id++) {
        int32_t other = token_insert(tok, (int32_t)id);
        if (other >= 0) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT,
                           "vocab.json: ids %d and %zu are the same token", (int)other, id);
            goto done;
        }
    }
    for (unsigned b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;
        tok->byte_id[b] = token_lookup(tok, &byte, 1);
        if (tok->byte_id[b] < 0) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT,
                           "vocab.json: no single-byte token for byte 0x%02X", b);
            goto done;
        }
    }
    tok->eot = token_lookup(tok, (const uint8_t *)GPT2_EOT_TEXT, strlen(GPT2_EOT_TEXT));
    rc = GPT2_OK;
done:
    free(len_of);
    json_free(doc);
    return rc;
}

/* Reads merges.txt into tok->merge_slots. */
static gpt2_err load_merges(gpt2_tokenizer *tok, const byte_alphabet *alpha, const char *txt,
                            size_t len, gpt2_error *err) {
    size_t n_lines = 1, longest = 0, line_start = 0;
    for (size_t i = 0; i < len; i++) {
        if (txt[i] == '\n') {
            n_lines++;
            if (i - line_start > longest) longest = i - line_start;
            line_start = i + 1;
        }
    }
    if (len - line_start > longest) longest = len - line_start;
    size_t slots = table_size(n_lines);
    uint8_t *scratch = malloc(longest + 1);
    tok->merge_slots = slots ? malloc(slots * sizeof *tok->merge_slots) : NULL;
    if (!scratch || !tok->merge_slots) {
        free(scratch);
        return gpt2_fail(err, GPT2_ERR_NOMEM, "merges.txt: out of memory");
    }
    for (size_t i = 0; i < slots; i++) tok->merge_slots[i].key = MERGE_EMPTY;
    tok->merge_mask = slots - 1;

    gpt2_err rc = GPT2_OK;
    size_t pos = 0, line_no = 0;
    int32_t rank = 0;
    while (pos < len) {
        const char *line = txt + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        line_no++;
        if (n > 0 && line[n - 1] == '\r') n--;
        if (n == 0) continue;
        if (line_no == 1 && n >= 8 && memcmp(line, "#version", 8) == 0) continue;
        if (utf8_validate((const uint8_t *)line, n) != n) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT, "merges.txt line %zu: invalid UTF-8", line_no);
            goto done;
        }
        const char *space = memchr(line, ' ', n);
        if (!space || space == line || space == line + n - 1 ||
            memchr(space + 1, ' ', (size_t)(line + n - space - 1))) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT,
                           "merges.txt line %zu: \"%.*s\" is not two tokens separated by one space",
                           line_no, quote_len(line, n), line);
            goto done;
        }
        size_t left_len = (size_t)(space - line), right_len = n - left_len - 1;
        long lb = alphabet_to_bytes(alpha, line, left_len, scratch);
        long rb = lb < 0 ? -1 : alphabet_to_bytes(alpha, space + 1, right_len, scratch + lb);
        if (lb < 0 || rb < 0) {
            rc = gpt2_fail(err, GPT2_ERR_FORMAT,
                           "merges.txt line %zu: \"%.*s\" has a character outside GPT-2's byte alphabet",
                           line_no, quote_len(line, n), line);
            goto done;
        }
        int32_t left = token_lookup(tok, scratch, (size_t)lb);
        int32_t right = token_lookup(tok, scratch + lb, (size_t)rb);
        int32_t merged = token_lookup(tok, scratch, (size_t)(lb + rb));
        if (left < 0 || right < 0 || merged < 0) {
            const char *what = left < 0 ? "left part" : right < 0 ? "right part" : "concatenation";
            rc = gpt2_fail(err, GPT2_ERR_FORMAT,
                           "merges.txt line %zu: \"%.*s\": the %s is not in vocab.json",
                           line_no, quote_len(line, n), line, what);
            goto done;
        }
        merge_insert(tok, left, right, rank, merged);
        rank++;
    }
    if (rank == 0) rc = gpt2_fail(err, GPT2_ERR_FORMAT, "merges.txt: no merges");
done:
    free(scratch);
    return rc;
}

gpt2_err gpt2_tokenizer_create(const char *vocab_json, size_t vocab_len,
                               const char *merges_txt, size_t merges_len,
                               gpt2_tokenizer **out, gpt2_error *err) {
    if (!out) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_tokenizer_create: out is NULL");
    *out = NULL;
    if ((!vocab_json && vocab_len) || (!merges_txt && merges_len))
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_tokenizer_create: NULL buffer");
    if (merges_len > (size_t)INT32_MAX)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "merges.txt: too large");
    gpt2_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return gpt2_fail(err, GPT2_ERR_NOMEM, "tokenizer: out of memory");
    byte_alphabet alpha;
    byte_alphabet_init(&alpha);
    gpt2_err rc = load_vocab(tok, &alpha, vocab_json ? vocab_json : "", vocab_len, err);
    if (rc == GPT2_OK) rc = load_merges(tok, &alpha, merges_txt ? merges_txt : "", merges_len, err);
    if (rc != GPT2_OK) {
        gpt2_tokenizer_free(tok);
        return rc;
    }
    *out = tok;
    return GPT2_OK;
}

gpt2_err gpt2_tokenizer_load(const char *dir, gpt2_tokenizer **out, gpt2_error *err) {
    if (!out || !dir) return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_tokenizer_load: NULL argument");
    *out = NULL;
    size_t dl = strlen(dir);
    char *path = malloc(dl + sizeof "/merges.txt" + 1);
    if (!path) return gpt2_fail(err, GPT2_ERR_NOMEM, "tokenizer: out of memory");
    char *vocab = NULL, *merges = NULL;
    size_t vocab_len = 0, merges_len = 0;
    sprintf(path, "%s/vocab.json", dir);
    gpt2_err rc = gpt2_read_file(path, 0, &vocab, &vocab_len, err);
    if (rc == GPT2_OK) {
        sprintf(path, "%s/merges.txt", dir);
        rc = gpt2_read_file(path, 0, &merges, &merges_len, err);
    }
    if (rc == GPT2_OK) rc = gpt2_tokenizer_create(vocab, vocab_len, merges, merges_len, out, err);
    free(path);
    free(vocab);
    free(merges);
    return rc;
}

size_t gpt2_tokenizer_vocab_size(const gpt2_tokenizer *tok) { return tok ? tok->n_vocab : 0; }

int32_t gpt2_tokenizer_eot_id(const gpt2_tokenizer *tok) { return tok ? tok->eot : -1; }

size_t gpt2_tokenizer_max_token_bytes(const gpt2_tokenizer *tok) {
    return tok ? tok->max_token_bytes : 0;
}

gpt2_err gpt2_tokenizer_token_bytes(const gpt2_tokenizer *tok, int32_t id,
                                    const uint8_t **bytes, size_t *len, gpt2_error *err) {
    if (!tok || !bytes || !len) return gpt2_fail(err, GPT2_ERR_ARG, "token_bytes: NULL argument");
    if (id < 0 || (size_t)id >= tok->n_vocab)
        return gpt2_fail(err, GPT2_ERR_RANGE, "token id %d is outside [0, %zu)", (int)id,
                         tok->n_vocab);
    *bytes = tok->bytes + tok->offset[id];
    *len = tok->offset[id + 1] - tok->offset[id];
    return GPT2_OK;
}

/* ------------------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------------------ */

enum char_class { CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE, CLASS_OTHER };

static enum char_class classify(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CLASS_LETTER;
        if (cp >= '0' && cp <= '9') return CLASS_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CLASS_SPACE;
        return CLASS_OTHER;
    }
    if (unicode_is_letter(cp)) return CLASS_LETTER;
    if (unicode_is_number(cp)) return CLASS_NUMBER;
    if (unicode_is_space(cp)) return CLASS_SPACE;
    return CLASS_OTHER;
}

/* Decodes the (already validated) character at s[i], i < n; *k = its length. */
static uint32_t char_at(const uint8_t *s, size_t n, size_t i, size_t *k) {
    uint32_t cp;
    if (s[i] < 0x80) {
        *k = 1;
        return s[i];
    }
    if (utf8_next(s + i, n - i, k, &cp) != UTF8_OK) { /* unreachable after validation */
        *k = 1;
        return 0xFFFD;
    }
    return cp;
}

/* Length of the pre-token starting at s[i] (i < n), following the GPT-2 pattern's
 * alternatives in order:
 *   1  's|'t|'re|'ve|'m|'ll|'d      (ASCII apostrophe, case-sensitive)
 *   2-4  ' ?X+' for X = \p{L}, \p{N}, [^\s\p{L}\p{N}]   (only U+0020 may lead)
 *   5  \s+(?!\S): a whitespace run reaching the end of text, or else the run minus its
 *      last character (backtracking is per code point) when that leaves >= 1 character
 *   6  \s+: otherwise a single whitespace character followed by non-space. */
static size_t pretoken_len(const uint8_t *s, size_t n, size_t i) {
    size_t k;
    uint32_t c = char_at(s, n, i, &k);
    if (c == '\'' && i + 1 < n) {
        uint8_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    enum char_class cls = classify(c);
    size_t j = i + k; /* end of the match so far */
    if (c == ' ' && j < n) {
        size_t k2;
        enum char_class next = classify(char_at(s, n, j, &k2));
        if (next != CLASS_SPACE) {
            cls = next;
            j += k2;
        }
    }
    if (cls != CLASS_SPACE) {
        while (j < n) {
            size_t k2;
            if (classify(char_at(s, n, j, &k2)) != cls) break;
            j += k2;
        }
        return j - i;
    }
    size_t last = i; /* start of the run's last character */
    while (j < n) {
        size_t k2;
        if (classify(char_at(s, n, j, &k2)) != CLASS_SPACE) break;
        last = j;
        j += k2;
    }
    if (j == n || last == i) return j - i;
    return last - i;
}

/* Per-call scratch for BPE over one pre-token of up to cap bytes. */
typedef struct bpe_heap_item {
    int32_t rank;
    int32_t pos;   /* start byte of the left symbol */
    int32_t left;  /* ids seen when the item was pushed (for staleness checks) */
    int32_t right;
} bpe_heap_item;

typedef struct bpe_scratch {
    size_t cap;
    int32_t *id;   /* symbol starting at byte p: id[p]; -1 if p starts no symbol */
    int32_t *next; /* start of the following symbol, or -1 */
    int32_t *prev; /* start of the preceding symbol, or -1 */
    bpe_heap_item *heap;
    size_t heap_n;
} bpe_scratch;

static void bpe_scratch_free(bpe_scratch *b) {
    free(b->id);
    free(b->next);
    free(b->prev);
    free(b->heap);
}

static int bpe_scratch_reserve(bpe_scratch *b, size_t n) {
    if (n <= b->cap) return 1;
    if (n > (size_t)INT32_MAX / 4 || n > SIZE_MAX / (3 * sizeof(bpe_heap_item))) return 0;
    bpe_scratch_free(b);
    memset(b, 0, sizeof *b);
    b->id = malloc(n * sizeof *b->id);
    b->next = malloc(n * sizeof *b->next);
    b->prev = malloc(n * sizeof *b->prev);
    /* at most n-1 initial pairs plus 2 new pairs per merge (<= n-1 merges) */
    b->heap = malloc(3 * n * sizeof *b->heap);
    if (!b->id || !b->next || !b->prev || !b->heap) {
        bpe_scratch_free(b);
        memset(b, 0, sizeof *b);
        return 0;
    }
    b->cap = n;
    return 1;
}

/* Heap order: lower rank first, then leftmost. */
static int heap_less(const bpe_heap_item *a, const bpe_heap_item *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_scratch *b, bpe_heap_item it) {
    size_t i = b->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&it, &b->heap[parent])) break;
        b->heap[i] = b->heap[parent];
        i = parent;
    }
    b->heap[i] = it;
}

static bpe_heap_item heap_pop(bpe_scratch *b) {
    bpe_heap_item top = b->heap[0], last = b->heap[--b->heap_n];
    size_t i = 0, n = b->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&b->heap[c + 1], &b->heap[c])) c++;
        if (!heap_less(&b->heap[c], &last)) break;
        b->heap[i] = b->heap[c];
        i = c;
    }
    if (n > 0) b->heap[i] = last;
    return top;
}

static void push_pair(const gpt2_tokenizer *tok, bpe_scratch *b, int32_t pos) {
    if (pos < 0) return;
    int32_t nx = b->next[pos];
    if (nx < 0) return;
    const merge_slot *m = merge_lookup(tok, b->id[pos], b->id[nx]);
    if (!m) return;
    bpe_heap_item it = {m->rank, pos, b->id[pos], b->id[nx]};
    heap_push(b, it);
}

typedef struct id_sink {
    int32_t *ids;
    size_t cap, n;
} id_sink;

static int sink_put(id_sink *out, int32_t id) {
    if (out->n >= out->cap) return 0;
    out->ids[out->n++] = id;
    return 1;
}

/* BPE-encodes one pre-token p[0..n) (n >= 1) onto out. Returns GPT2_OK, GPT2_ERR_RANGE
 * (out full) or GPT2_ERR_NOMEM. */
static gpt2_err bpe_piece(const gpt2_tokenizer *tok, const uint8_t *p, size_t n,
                          bpe_scratch *b, id_sink *out) {
    if (n == 1) return sink_put(out, tok->byte_id[p[0]]) ? GPT2_OK : GPT2_ERR_RANGE;
    int32_t whole = token_lookup(tok, p, n);
    if (whole >= 0 && whole != tok->eot) return sink_put(out, whole) ? GPT2_OK : GPT2_ERR_RANGE;
    if (!bpe_scratch_reserve(b, n)) return GPT2_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        b->id[i] = tok->byte_id[p[i]];
        b->next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        b->prev[i] = (int32_t)i - 1;
    }
    b->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(tok, b, (int32_t)i);
    /* Invariant: every adjacent pair that has a merge has a heap item; an item is stale
     * unless its left symbol still starts at pos with the same id and is followed by the
     * same right id. Symbols only grow, so equal ids at pos mean equal spans. */
    while (b->heap_n > 0) {
        bpe_heap_item it = heap_pop(b);
        int32_t pos = it.pos, nx = b->next[pos];
        if (b->id[pos] != it.left || nx < 0 || b->id[nx] != it.right) continue;
        const merge_slot *m = merge_lookup(tok, it.left, it.right);
        b->id[pos] = m->merged;
        b->id[nx] = -1;
        b->next[pos] = b->next[nx];
        if (b->next[nx] >= 0) b->prev[b->next[nx]] = pos;
        push_pair(tok, b, b->prev[pos]);
        push_pair(tok, b, pos);
    }
    for (int32_t pos = 0; pos >= 0; pos = b->next[pos])
        if (!sink_put(out, b->id[pos])) return GPT2_ERR_RANGE;
    return GPT2_OK;
}

/* Encodes ordinary text s[0..n) (valid UTF-8) onto out. */
static gpt2_err encode_ordinary(const gpt2_tokenizer *tok, const uint8_t *s, size_t n,
                                bpe_scratch *b, id_sink *out) {
    size_t i = 0;
    while (i < n) {
        size_t k = pretoken_len(s, n, i);
        gpt2_err rc = bpe_piece(tok, s + i, k, b, out);
        if (rc != GPT2_OK) return rc;
        i += k;
    }
    return GPT2_OK;
}

/* Offset of the first "<|endoftext|>" in s[from..n), or n. */
static size_t find_eot(const uint8_t *s, size_t n, size_t from) {
    static const char pat[] = GPT2_EOT_TEXT;
    const size_t m = sizeof pat - 1;
    while (from + m <= n) {
        const uint8_t *lt = memchr(s + from, '<', n - m + 1 - from);
        if (!lt) return n;
        size_t at = (size_t)(lt - s);
        if (memcmp(lt, pat, m) == 0) return at;
        from = at + 1;
    }
    return n;
}

gpt2_err gpt2_tokenizer_encode(const gpt2_tokenizer *tok, const char *text, size_t len,
                               int allow_special, int32_t *ids, size_t cap, size_t *n_ids,
                               gpt2_error *err) {
    if (n_ids) *n_ids = 0;
    if (!tok || !n_ids || (!text && len) || (!ids && cap))
        return gpt2_fail(err, GPT2_ERR_ARG, "encode: NULL argument");
    if (len > (size_t)INT32_MAX)
        return gpt2_fail(err, GPT2_ERR_RANGE, "encode: text of %zu bytes is too long", len);
    const uint8_t *s = (const uint8_t *)text;
    size_t bad = utf8_validate(s, len);
    if (bad < len) return gpt2_fail(err, GPT2_ERR_FORMAT, "invalid UTF-8 at byte %zu", bad);
    id_sink out = {ids, cap, 0};
    bpe_scratch b;
    memset(&b, 0, sizeof b);
    gpt2_err rc = GPT2_OK;
    size_t pos = 0;
    const size_t eot_len = strlen(GPT2_EOT_TEXT);
    while (pos < len && rc == GPT2_OK) {
        size_t stop = (allow_special && tok->eot >= 0) ? find_eot(s, len, pos) : len;
        rc = encode_ordinary(tok, s + pos, stop - pos, &b, &out);
        if (rc == GPT2_OK && stop < len) {
            if (!sink_put(&out, tok->eot)) rc = GPT2_ERR_RANGE;
            stop += eot_len;
        }
        pos = stop;
    }
    bpe_scratch_free(&b);
    if (rc == GPT2_ERR_RANGE)
        return gpt2_fail(err, rc, "encode: more than %zu ids (cap >= text length always suffices)", cap);
    if (rc == GPT2_ERR_NOMEM) return gpt2_fail(err, rc, "encode: out of memory");
    *n_ids = out.n;
    return GPT2_OK;
}

/* ------------------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------------------ */

typedef struct text_sink {
    char *out; /* NULL: count only */
    size_t cap, n;
    int overflow;
} text_sink;

/* Appends p[0..k) while it fits; afterwards only counts (n = the size needed). */
static void sink_write(text_sink *t, const uint8_t *p, size_t k) {
    if (!t->out || t->overflow) {
        t->n += k;
        return;
    }
    if (k > t->cap - t->n) {
        t->overflow = 1;
    } else {
        memcpy(t->out + t->n, p, k);
    }
    t->n += k;
}

static const uint8_t replacement_char[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */

/* Runs the streaming rule over pending[0..n_pending) followed by in[0..n): writes the
 * complete part to t and leaves the incomplete tail (<= 3 bytes) in *pending_out. */
static void decode_stream(const uint8_t *pending, size_t n_pending, const uint8_t *in,
                          size_t n, text_sink *t, gpt2_decoder *pending_out) {
    size_t total = n_pending + n, i = 0;
    pending_out->n_pending = 0;
    while (i < total) {
        uint8_t tmp[4];
        const uint8_t *p;
        size_t avail;
        if (i < n_pending) { /* the character straddles the held-back bytes */
            avail = 0;
            for (size_t j = i; j < total && avail < 4; j++)
                tmp[avail++] = j < n_pending ? pending[j] : in[j - n_pending];
            p = tmp;
        } else {
            p = in + (i - n_pending);
            avail = total - i;
        }
        size_t k;
        uint32_t cp;
        utf8_result r = utf8_next(p, avail, &k, &cp);
        if (r == UTF8_OK) {
            sink_write(t, p, k);
        } else if (r == UTF8_INVALID) {
            sink_write(t, replacement_char, 3);
        } else { /* incomplete: hold back; k = avail <= 3 bytes */
            for (size_t j = 0; j < k; j++) pending_out->pending[j] = p[j];
            pending_out->n_pending = (uint8_t)k;
        }
        i += k;
    }
}

void gpt2_decoder_init(gpt2_decoder *d) {
    if (d) memset(d, 0, sizeof *d);
}

size_t gpt2_decoder_max_output(const gpt2_tokenizer *tok) {
    return 3 * (gpt2_tokenizer_max_token_bytes(tok) + 3);
}

gpt2_err gpt2_decoder_push(gpt2_decoder *d, const gpt2_tokenizer *tok, int32_t id,
                           char *out, size_t cap, size_t *n_out, gpt2_error *err) {
    if (n_out) *n_out = 0;
    if (!d || !tok || !n_out || (!out && cap))
        return gpt2_fail(err, GPT2_ERR_ARG, "decoder_push: NULL argument");
    const uint8_t *bytes = NULL;
    size_t len = 0;
    gpt2_err rc = gpt2_tokenizer_token_bytes(tok, id, &bytes, &len, err);
    if (rc != GPT2_OK) return rc;
    text_sink t = {out, cap, 0, 0};
    gpt2_decoder next;
    decode_stream(d->pending, d->n_pending > 3 ? 3 : d->n_pending, bytes, len, &t, &next);
    if (t.n > cap)
        return gpt2_fail(err, GPT2_ERR_RANGE, "decoder_push: %zu bytes of output do not fit in %zu",
                         t.n, cap);
    *d = next;
    *n_out = t.n;
    return GPT2_OK;
}

gpt2_err gpt2_decoder_finish(gpt2_decoder *d, char *out, size_t cap, size_t *n_out,
                             gpt2_error *err) {
    if (n_out) *n_out = 0;
    if (!d || !n_out || (!out && cap))
        return gpt2_fail(err, GPT2_ERR_ARG, "decoder_finish: NULL argument");
    if (d->n_pending == 0) return GPT2_OK;
    if (cap < 3)
        return gpt2_fail(err, GPT2_ERR_RANGE, "decoder_finish: needs 3 bytes of output, has %zu", cap);
    memcpy(out, replacement_char, 3);
    *n_out = 3;
    gpt2_decoder_init(d);
    return GPT2_OK;
}

gpt2_err gpt2_tokenizer_decode(const gpt2_tokenizer *tok, const int32_t *ids, size_t n,
                               char *out, size_t cap, size_t *n_out, gpt2_error *err) {
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!ids && n)) return gpt2_fail(err, GPT2_ERR_ARG, "decode: NULL argument");
    text_sink t = {out, out ? cap : 0, 0, 0};
    gpt2_decoder d;
    gpt2_decoder_init(&d);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *bytes = NULL;
        size_t len = 0;
        gpt2_err rc = gpt2_tokenizer_token_bytes(tok, ids[i], &bytes, &len, err);
        if (rc != GPT2_OK) {
            if (err) gpt2_error_prefix(err, "decode");
            return rc;
        }
        gpt2_decoder next;
        decode_stream(d.pending, d.n_pending, bytes, len, &t, &next);
        d = next;
    }
    if (d.n_pending) sink_write(&t, replacement_char, 3);
    *n_out = t.n;
    if (t.overflow)
        return gpt2_fail(err, GPT2_ERR_RANGE, "decode: needs %zu bytes of output, has %zu", t.n, cap);
    return GPT2_OK;
}
