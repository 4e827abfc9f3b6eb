/* json.h - a small, strict JSON (RFC 8259) parser that builds a read-only tree.
 *
 * Strictness: no comments, no trailing commas, no leading zeros, no control characters
 * or invalid UTF-8 inside strings, no lone UTF-16 surrogates in \u escapes, nothing but
 * whitespace after the root value, nesting at most JSON_MAX_DEPTH deep. Duplicate
 * object keys are kept in order (callers that care check for them).
 * All memory belongs to the json_doc and is released by json_free.
 */
#ifndef GPT2_JSON_H
#define GPT2_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define JSON_MAX_DEPTH 64

typedef enum json_type {
    JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
} json_type;

typedef struct json_value json_value;
typedef struct json_member json_member;

/* Only the fields of the value's type are meaningful (str/items/members share their storage,
 * as do len/count): test type first. */
struct json_value {
    json_type type;
    int is_integer;        /* JSON_NUMBER: 1 when written without fraction/exponent and fits int64 */
    double number;         /* JSON_NUMBER: the value as a double */
    int64_t integer;       /* JSON_NUMBER: the exact value when is_integer */
    union {
        const char *str;      /* JSON_STRING: decoded UTF-8, NUL-terminated (may hold \0 from \u0000) */
        json_value *items;    /* JSON_ARRAY: items[count] */
        json_member *members; /* JSON_OBJECT: members[count], in document order */
    };
    union {
        size_t len;   /* JSON_STRING: byte length of str */
        size_t count; /* JSON_ARRAY / JSON_OBJECT: number of items / members */
    };
};

struct json_member {
    const char *key;       /* decoded UTF-8, NUL-terminated */
    size_t key_len;
    json_value value;
};

typedef struct json_doc json_doc;

/* Parses text[0..len) into a new document; on failure the message names the byte offset. */
gpt2_err json_parse(const char *text, size_t len, json_doc **out, gpt2_error *err);

/* The root value of a parsed document. */
const json_value *json_root(const json_doc *doc);

/* Releases a document and every value in it (NULL is allowed). */
void json_free(json_doc *doc);

/* The first member of obj named key, or NULL if obj is not an object or has no such member. */
const json_value *json_get(const json_value *obj, const char *key);

#endif
