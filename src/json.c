/* json.c - strict recursive-descent JSON parser (see json.h).
 *
 * Two passes would avoid reallocation, but one pass with growable per-container
 * vectors is simpler: each array/object collects its children in a vector, which joins
 * the document's arena when it closes (see vec_finish). Strings are decoded
 * (escapes resolved) into the arena too, so the input text can be freed after parsing.
 */
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Arena: a linked list of blocks; allocations are 8-byte aligned and never freed singly. */
typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
} arena_block;

struct json_doc {
    arena_block *blocks;
    json_value root;
};

typedef struct parser {
    const char *s;
    size_t len, pos;
    json_doc *doc;
    gpt2_error *err;
} parser;

static void *arena_alloc(json_doc *doc, size_t n) {
    n = (n + 7u) & ~(size_t)7u;
    if (n == 0) n = 8;
    arena_block *b = doc->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (cap > SIZE_MAX - sizeof(arena_block)) return NULL;
        arena_block *nb = malloc(sizeof(arena_block) + cap);
        if (!nb) return NULL;
        nb->next = doc->blocks;
        nb->used = 0;
        nb->cap = cap;
        doc->blocks = nb;
        b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static gpt2_err fail_at(parser *p, gpt2_err code, const char *what) {
    return gpt2_fail(p->err, code, "JSON: %s at byte %zu", what, p->pos);
}

static gpt2_err nomem(parser *p) { return fail_at(p, GPT2_ERR_NOMEM, "out of memory"); }

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at p->pos; returns the value or -1. */
static long read_hex4(parser *p) {
    if (p->len - p->pos < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->s[p->pos + (size_t)i]);
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    p->pos += 4;
    return v;
}

static size_t put_utf8(unsigned char *out, unsigned long cp) {
    if (cp < 0x80) { out[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence starting at s[0..n), or 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned long cp, min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Parses a string starting at the opening quote; the decoded bytes go to the arena.
 * Decoded output is never longer than the escaped input, so one allocation suffices. */
static gpt2_err parse_string(parser *p, const char **out, size_t *out_len) {
    p->pos++; /* opening quote */
    size_t start = p->pos, end = start;
    /* Find the closing quote to size the buffer (escapes skip one char). */
    while (end < p->len && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->len) return fail_at(p, GPT2_ERR_FORMAT, "unterminated string");
    unsigned char *buf = arena_alloc(p->doc, end - start + 1);
    if (!buf) return nomem(p);
    size_t n = 0;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            buf[n] = '\0';
            *out = (const char *)buf;
            *out_len = n;
            return GPT2_OK;
        }
        if (c < 0x20) return fail_at(p, GPT2_ERR_FORMAT, "control character in string");
        if (c == '\\') {
            p->pos++;
            if (p->pos >= p->len) break;
            char e = p->s[p->pos++];
            switch (e) {
            case '"': buf[n++] = '"'; break;
            case '\\': buf[n++] = '\\'; break;
            case '/': buf[n++] = '/'; break;
            case 'b': buf[n++] = '\b'; break;
            case 'f': buf[n++] = '\f'; break;
            case 'n': buf[n++] = '\n'; break;
            case 'r': buf[n++] = '\r'; break;
            case 't': buf[n++] = '\t'; break;
            case 'u': {
                long hi = read_hex4(p);
                if (hi < 0) return fail_at(p, GPT2_ERR_FORMAT, "bad \\u escape");
                unsigned long cp = (unsigned long)hi;
                if (hi >= 0xDC00 && hi <= 0xDFFF)
                    return fail_at(p, GPT2_ERR_FORMAT, "lone low surrogate in \\u escape");
                if (hi >= 0xD800 && hi <= 0xDBFF) {
                    if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                        return fail_at(p, GPT2_ERR_FORMAT, "lone high surrogate in \\u escape");
                    p->pos += 2;
                    long lo = read_hex4(p);
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail_at(p, GPT2_ERR_FORMAT, "bad surrogate pair in \\u escape");
                    cp = 0x10000 + (((unsigned long)hi - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
                }
                /* A \uXXXX escape is 6 input bytes and decodes to at most 3 (4 for a pair of 12). */
                n += put_utf8(buf + n, cp);
                break;
            }
            default: p->pos--; return fail_at(p, GPT2_ERR_FORMAT, "bad escape in string");
            }
            continue;
        }
        size_t k = utf8_seq_len((const unsigned char *)p->s + p->pos, p->len - p->pos);
        if (k == 0) return fail_at(p, GPT2_ERR_FORMAT, "invalid UTF-8 in string");
        memcpy(buf + n, p->s + p->pos, k);
        n += k;
        p->pos += k;
    }
    return fail_at(p, GPT2_ERR_FORMAT, "unterminated string");
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static gpt2_err parse_number(parser *p, json_value *v) {
    size_t start = p->pos;
    int integral = 1;
    if (p->pos < p->len && p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len || !is_digit(p->s[p->pos]))
        return fail_at(p, GPT2_ERR_FORMAT, "bad number");
    if (p->s[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->len && is_digit(p->s[p->pos]))
            return fail_at(p, GPT2_ERR_FORMAT, "leading zero in number");
    } else {
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integral = 0;
        p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos]))
            return fail_at(p, GPT2_ERR_FORMAT, "bad fraction in number");
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integral = 0;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->len || !is_digit(p->s[p->pos]))
            return fail_at(p, GPT2_ERR_FORMAT, "bad exponent in number");
        while (p->pos < p->len && is_digit(p->s[p->pos])) p->pos++;
    }
    /* strtod/strtoll need a NUL-terminated copy; numbers are short. */
    size_t n = p->pos - start;
    char tmp[64];
    if (n >= sizeof tmp) {
        /* Very long literals: only a double approximation is meaningful. */
        char *big = malloc(n + 1);
        if (!big) return nomem(p);
        memcpy(big, p->s + start, n);
        big[n] = '\0';
        v->number = strtod(big, NULL);
        free(big);
        v->is_integer = 0;
    } else {
        memcpy(tmp, p->s + start, n);
        tmp[n] = '\0';
        v->number = strtod(tmp, NULL);
        v->is_integer = 0;
        if (integral) {
            errno = 0;
            long long i = strtoll(tmp, NULL, 10);
            if (errno == 0) {
                v->is_integer = 1;
                v->integer = (int64_t)i;
            }
        }
    }
    v->type = JSON_NUMBER;
    return GPT2_OK;
}

static gpt2_err parse_value(parser *p, json_value *v, int depth);

/* Growable vector of elements of size elem (values or members), kept in a block shaped like
 * the arena's, so that a large one becomes an arena block as it is (no copy: vocab.json's
 * 50k members would otherwise be held twice at the peak of the parse). */
typedef struct vec {
    arena_block *blk; /* data[] holds cap elements; NULL while empty */
    size_t count, cap, elem;
} vec;

enum { VEC_ADOPT_BYTES = 4096 }; /* smaller vectors are copied into the arena's current block */

static int vec_push(vec *a, const void *item) {
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        if (cap > (SIZE_MAX - sizeof(arena_block)) / a->elem) return 0;
        arena_block *b = realloc(a->blk, sizeof(arena_block) + cap * a->elem);
        if (!b) return 0;
        a->blk = b;
        a->cap = cap;
    }
    memcpy((char *)a->blk->data + a->count * a->elem, item, a->elem);
    a->count++;
    return 1;
}

/* Moves a finished vector into the arena: copied when small, else its block (trimmed to
 * size) joins the arena behind the current block. */
static void *vec_finish(parser *p, vec *a) {
    size_t n = a->count * a->elem;
    arena_block *b = a->blk;
    a->blk = NULL;
    if (n < VEC_ADOPT_BYTES) {
        void *out = arena_alloc(p->doc, n);
        if (out && n) memcpy(out, b->data, n);
        free(b);
        return out;
    }
    arena_block *t = realloc(b, sizeof(arena_block) + n); /* shrinking: in place */
    if (t) b = t;
    b->used = b->cap = n;
    arena_block *head = p->doc->blocks;
    if (head) {
        b->next = head->next;
        head->next = b;
    } else {
        b->next = NULL;
        p->doc->blocks = b;
    }
    return b->data;
}

static gpt2_err parse_array(parser *p, json_value *v, int depth) {
    vec items = {NULL, 0, 0, sizeof(json_value)};
    gpt2_err rc = GPT2_OK;
    p->pos++; /* '[' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
    } else {
        for (;;) {
            json_value item;
            if ((rc = parse_value(p, &item, depth + 1)) != GPT2_OK) goto out;
            if (!vec_push(&items, &item)) { rc = nomem(p); goto out; }
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
            if (p->pos < p->len && p->s[p->pos] == ']') { p->pos++; break; }
            rc = fail_at(p, GPT2_ERR_FORMAT, "expected ',' or ']' in array");
            goto out;
        }
    }
    v->type = JSON_ARRAY;
    v->count = items.count;
    v->items = vec_finish(p, &items);
    if (!v->items) return nomem(p);
    return GPT2_OK;
out:
    free(items.blk);
    return rc;
}

/* Makes room for cap elements at once (0: nothing to do, or no memory: vec_push grows it). */
static void vec_reserve(vec *a, size_t cap) {
    if (cap <= a->cap || cap > (SIZE_MAX - sizeof(arena_block)) / a->elem) return;
    arena_block *b = realloc(a->blk, sizeof(arena_block) + cap * a->elem);
    if (b) a->blk = b, a->cap = cap;
}

static gpt2_err parse_object(parser *p, json_value *v, int depth) {
    vec members = {NULL, 0, 0, sizeof(json_member)};
    gpt2_err rc = GPT2_OK;
    if (depth == 0) { /* the root (vocab.json: 50k members): sized once by its ':' count, an upper
                       * bound, instead of doubling (each copy would stay in the peak) */
        size_t colons = 0;
        for (size_t i = p->pos; i < p->len; i++) colons += p->s[i] == ':';
        vec_reserve(&members, colons);
    }
    p->pos++; /* '{' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
    } else {
        for (;;) {
            json_member m;
            memset(&m, 0, sizeof m);
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                rc = fail_at(p, GPT2_ERR_FORMAT, "expected a string key in object");
                goto out;
            }
            if ((rc = parse_string(p, &m.key, &m.key_len)) != GPT2_OK) goto out;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                rc = fail_at(p, GPT2_ERR_FORMAT, "expected ':' after object key");
                goto out;
            }
            p->pos++;
            if ((rc = parse_value(p, &m.value, depth + 1)) != GPT2_OK) goto out;
            if (!vec_push(&members, &m)) { rc = nomem(p); goto out; }
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
            if (p->pos < p->len && p->s[p->pos] == '}') { p->pos++; break; }
            rc = fail_at(p, GPT2_ERR_FORMAT, "expected ',' or '}' in object");
            goto out;
        }
    }
    v->type = JSON_OBJECT;
    v->count = members.count;
    v->members = vec_finish(p, &members);
    if (!v->members) return nomem(p);
    return GPT2_OK;
out:
    free(members.blk);
    return rc;
}

static int match_word(parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0) return 0;
    p->pos += n;
    return 1;
}

static gpt2_err parse_value(parser *p, json_value *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth >= JSON_MAX_DEPTH) return fail_at(p, GPT2_ERR_FORMAT, "nesting too deep");
    skip_ws(p);
    if (p->pos >= p->len) return fail_at(p, GPT2_ERR_FORMAT, "unexpected end of input");
    char c = p->s[p->pos];
    switch (c) {
    case '{': return parse_object(p, v, depth);
    case '[': return parse_array(p, v, depth);
    case '"':
        v->type = JSON_STRING;
        return parse_string(p, &v->str, &v->len);
    case 't':
        if (match_word(p, "true")) { v->type = JSON_TRUE; return GPT2_OK; }
        break;
    case 'f':
        if (match_word(p, "false")) { v->type = JSON_FALSE; return GPT2_OK; }
        break;
    case 'n':
        if (match_word(p, "null")) { v->type = JSON_NULL; return GPT2_OK; }
        break;
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, v);
    }
    return fail_at(p, GPT2_ERR_FORMAT, "unexpected character");
}

gpt2_err json_parse(const char *text, size_t len, json_doc **out, gpt2_error *err) {
    if (!out || (!text && len)) return gpt2_fail(err, GPT2_ERR_ARG, "json_parse: NULL argument");
    *out = NULL;
    json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) return gpt2_fail(err, GPT2_ERR_NOMEM, "JSON: out of memory");
    parser p = {text ? text : "", len, 0, doc, err};
    gpt2_err rc = parse_value(&p, &doc->root, 0);
    if (rc == GPT2_OK) {
        skip_ws(&p);
        if (p.pos != p.len) rc = fail_at(&p, GPT2_ERR_FORMAT, "trailing characters after the value");
    }
    if (rc != GPT2_OK) {
        json_free(doc);
        return rc;
    }
    *out = doc;
    return GPT2_OK;
}

const json_value *json_root(const json_doc *doc) { return doc ? &doc->root : NULL; }

void json_free(json_doc *doc) {
    if (!doc) return;
    arena_block *b = doc->blocks;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(doc);
}

const json_value *json_get(const json_value *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->count; i++) {
        const json_member *m = &obj->members[i];
        if (m->key_len == n && memcmp(m->key, key, n) == 0) return &m->value;
    }
    return NULL;
}
