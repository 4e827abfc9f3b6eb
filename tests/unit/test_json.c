/* test_json.c - the strict JSON parser: valid documents, escapes, and rejected input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

static json_doc *parse_ok(const char *text, gpt2_error *err) {
    json_doc *doc = NULL;
    CHECK_OK(json_parse(text, strlen(text), &doc, err), err);
    return doc;
}

static void expect_bad(const char *text) {
    gpt2_error err;
    json_doc *doc = NULL;
    err.message[0] = '\0';
    gpt2_err rc = json_parse(text, strlen(text), &doc, &err);
    CHECK(rc == GPT2_ERR_FORMAT && doc == NULL && err.message[0], "accepted bad JSON: %s (%s)", text,
          err.message);
    json_free(doc);
}

/* Containers large enough to join the arena as they are (more than 4 KiB of values), nested
 * and at the root (sized by its ':' count, here larger than the member count: colons in
 * strings), keep every value in order. */
static void test_large(void) {
    enum { N = 3000 };
    size_t cap = 64 + (size_t)N * 40;
    char *t = malloc(cap);
    size_t at = 0;
    at += (size_t)snprintf(t + at, cap - at, "{\"a:b\": \"c:d\", \"list\": [");
    for (int i = 0; i < N; i++) at += (size_t)snprintf(t + at, cap - at, "%s%d", i ? "," : "", i * 7 - 5);
    at += (size_t)snprintf(t + at, cap - at, "], \"obj\": {");
    for (int i = 0; i < N; i++) at += (size_t)snprintf(t + at, cap - at, "%s\"k%d\": %d", i ? "," : "", i, -i);
    at += (size_t)snprintf(t + at, cap - at, "}}");
    gpt2_error err;
    json_doc *doc = parse_ok(t, &err);
    if (doc) {
        const json_value *root = json_root(doc), *list = json_get(root, "list"), *obj = json_get(root, "obj");
        CHECK(root->count == 3 && json_get(root, "a:b") && !strcmp(json_get(root, "a:b")->str, "c:d"), "root");
        int bad = !list || list->type != JSON_ARRAY || list->count != N || !obj || obj->type != JSON_OBJECT ||
                  obj->count != N;
        for (int i = 0; !bad && i < N; i++) {
            char k[16];
            snprintf(k, sizeof k, "k%d", i);
            bad += list->items[i].integer != i * 7 - 5 || strcmp(obj->members[i].key, k) ||
                   obj->members[i].value.integer != -i;
        }
        CHECK(bad == 0, "large containers: values out of place");
    }
    json_free(doc);
    free(t);
}

int main(void) {
    gpt2_error err;
    test_large();

    json_doc *doc = parse_ok(" {\"a\": [1, -2.5e3, true, false, null], \"b\": {\"c\": \"x\"}, \"n\": 0} ", &err);
    if (doc) {
        const json_value *root = json_root(doc);
        CHECK(root->type == JSON_OBJECT && root->count == 3, "root object with 3 members");
        const json_value *a = json_get(root, "a");
        CHECK(a && a->type == JSON_ARRAY && a->count == 5, "array a");
        if (a && a->count == 5) {
            CHECK(a->items[0].is_integer && a->items[0].integer == 1, "1");
            CHECK(!a->items[1].is_integer && a->items[1].number == -2500.0, "-2.5e3");
            CHECK(a->items[2].type == JSON_TRUE && a->items[3].type == JSON_FALSE &&
                      a->items[4].type == JSON_NULL, "literals");
        }
        const json_value *c = json_get(json_get(root, "b"), "c");
        CHECK(c && c->type == JSON_STRING && strcmp(c->str, "x") == 0, "nested string");
        CHECK(json_get(root, "zz") == NULL, "absent key");
        CHECK(json_get(json_get(root, "n"), "x") == NULL, "json_get on a non-object");
    }
    json_free(doc);

    /* Escapes: \u0120 is 'Ġ' (C4 A0), a surrogate pair is one 4-byte character, \u0000 kept. */
    doc = parse_ok("[\"\\u0120t\", \"\\ud83d\\ude00\", \"a\\u0000b\", \"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\xc3\xa9\"]", &err);
    if (doc) {
        const json_value *r = json_root(doc);
        CHECK(r->count == 5, "5 strings");
        if (r->count == 5) {
            CHECK(r->items[0].len == 3 && memcmp(r->items[0].str, "\xc4\xa0t", 3) == 0, "\\u0120");
            CHECK(r->items[1].len == 4 && memcmp(r->items[1].str, "\xf0\x9f\x98\x80", 4) == 0, "pair");
            CHECK(r->items[2].len == 3 && memcmp(r->items[2].str, "a\0b", 3) == 0, "\\u0000");
            CHECK(r->items[3].len == 8 && memcmp(r->items[3].str, "\"\\/\b\f\n\r\t", 8) == 0, "escapes");
            CHECK(r->items[4].len == 2, "raw UTF-8");
        }
    }
    json_free(doc);

    /* Large integers stay exact. */
    doc = parse_ok("548105171234", &err);
    if (doc) CHECK(json_root(doc)->is_integer && json_root(doc)->integer == 548105171234LL, "int64");
    json_free(doc);

    const char *bad[] = {
        "", " ", "{", "[1,]", "{\"a\":1,}", "[01]", "[1.]", "[.5]", "[1e]", "[-]", "tru", "nul",
        "{'a':1}", "{\"a\" 1}", "{1:2}", "[1 2]", "\"abc", "\"a\x01\"", "\"\\x\"", "\"\\u12\"",
        "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\xff\"", "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"", "\"\xe2\x82\"", "[1] x", "/* c */ 1", "NaN", "[Infinity]", "+1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_bad(bad[i]);

    /* Nesting limit: 64 levels parse, 65+ are rejected, deep input never overflows the stack. */
    char deep[300];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    expect_bad(deep);
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    doc = parse_ok(deep, &err);
    json_free(doc);

    /* Length is honoured: bytes after len are not read. */
    doc = NULL;
    CHECK_OK(json_parse("[1]garbage", 3, &doc, &err), &err);
    json_free(doc);
    CHECK_FAILS(json_parse(NULL, 0, NULL, &err), GPT2_ERR_ARG, &err);

    return check_summary("test_json");
}
