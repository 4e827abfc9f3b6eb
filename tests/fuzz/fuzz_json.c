/* fuzz_json.c - libFuzzer harness for the JSON parser (src/json.c).
 * Input: any bytes, parsed as one JSON document. On success the whole tree is walked and
 * checked against json.h's promises; on failure the error must be well-formed. */
#include <math.h>

#include "fuzz_common.h"
#include "json.h"
#include "utf8.h"

static void walk(const json_value *v, int depth) {
    FUZZ_CHECK(depth < JSON_MAX_DEPTH, "depth %d", depth);
    switch (v->type) {
    case JSON_NULL: case JSON_FALSE: case JSON_TRUE: break;
    case JSON_NUMBER:
        if (v->is_integer) FUZZ_CHECK((double)v->integer == v->number, "integer %lld vs %.17g",
                                      (long long)v->integer, v->number);
        break;
    case JSON_STRING:
        FUZZ_CHECK(v->str && v->str[v->len] == '\0', "string not terminated");
        FUZZ_CHECK(utf8_validate((const uint8_t *)v->str, v->len) == v->len, "string not UTF-8");
        break;
    case JSON_ARRAY:
        FUZZ_CHECK(v->count == 0 || v->items, "array without items");
        for (size_t i = 0; i < v->count; i++) walk(&v->items[i], depth + 1);
        break;
    case JSON_OBJECT:
        FUZZ_CHECK(v->count == 0 || v->members, "object without members");
        for (size_t i = 0; i < v->count; i++) {
            const json_member *m = &v->members[i];
            FUZZ_CHECK(m->key && m->key[m->key_len] == '\0', "key not terminated");
            FUZZ_CHECK(utf8_validate((const uint8_t *)m->key, m->key_len) == m->key_len, "key not UTF-8");
            if (strlen(m->key) == m->key_len) { /* no \u0000 inside: json_get finds the first */
                const json_value *g = json_get(v, m->key);
                FUZZ_CHECK(g != NULL, "json_get misses a key");
                size_t first = (size_t)((const char *)g - (const char *)&v->members[0].value) /
                               sizeof(json_member);
                FUZZ_CHECK(first <= i && v->members[first].key_len == m->key_len &&
                           memcmp(v->members[first].key, m->key, m->key_len) == 0,
                           "json_get returned another key");
            }
            walk(&m->value, depth + 1);
        }
        break;
    default: FUZZ_CHECK(0, "bad type %d", (int)v->type);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_doc *doc = NULL;
    gpt2_error err;
    memset(&err, 0, sizeof err);
    gpt2_err rc = json_parse((const char *)data, size, &doc, &err);
    if (rc != GPT2_OK) {
        fuzz_check_error(rc, &err);
        FUZZ_CHECK(doc == NULL, "doc set on failure");
        FUZZ_CHECK(rc == GPT2_ERR_FORMAT || rc == GPT2_ERR_NOMEM, "code %d", (int)rc);
        FUZZ_CHECK(strstr(err.message, "at byte ") != NULL, "no offset in '%s'", err.message);
    } else {
        FUZZ_CHECK(doc != NULL, "no doc");
        walk(json_root(doc), 0);
        FUZZ_CHECK(json_get(json_root(doc), NULL) == NULL, "json_get(NULL)");
    }
    json_free(doc);
    /* the same verdict without an error struct */
    json_doc *doc2 = NULL;
    FUZZ_CHECK(json_parse((const char *)data, size, &doc2, NULL) == rc, "verdict changed");
    json_free(doc2);
    return 0;
}
