/* config.c - reads GPT-2 hyper-parameters from a Hugging Face config.json (see config.h). */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "json.h"

/* Upper bounds far above any GPT-2 (xl: 48 layers, 1600 wide, 25 heads, 1024 ctx, 50257
 * vocab) that keep every size product well inside uint64 and int arithmetic. */
#define MAX_LAYER 4096
#define MAX_EMBD 65536
#define MAX_CTX (1 << 20)
#define MAX_VOCAB (1 << 24)
#define MAX_INNER (1 << 20)

static const char *type_name(json_type t) {
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_FALSE: case JSON_TRUE: return "a boolean";
    case JSON_NUMBER: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
    }
    return "a value";
}

/* Copies at most 40 bytes of s into out as printable ASCII ('?' for anything else). */
static void printable(const char *s, size_t len, char out[48]) {
    size_t n = len > 40 ? 40 : len, j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > n) { out[j++] = '.'; out[j++] = '.'; out[j++] = '.'; }
    out[j] = '\0';
}

/* Reads obj[key] as an integer in [1, max]. *found = 0 (and OK) when absent or null. */
static gpt2_err get_int(const json_value *obj, const char *key, int64_t max, int *out, int *found,
                        gpt2_error *err) {
    const json_value *v = json_get(obj, key);
    *found = 0;
    if (!v || v->type == JSON_NULL) return GPT2_OK;
    if (v->type != JSON_NUMBER || !v->is_integer)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "config.json: %s must be an integer, got %s", key,
                         v->type == JSON_NUMBER ? "a non-integer number" : type_name(v->type));
    if (v->integer < 1 || v->integer > max)
        return gpt2_fail(err, GPT2_ERR_RANGE, "config.json: %s is %lld, must be between 1 and %lld",
                         key, (long long)v->integer, (long long)max);
    *out = (int)v->integer;
    *found = 1;
    return GPT2_OK;
}

static gpt2_err require_int(const json_value *obj, const char *key, int64_t max, int *out,
                            gpt2_error *err) {
    int found;
    gpt2_err rc = get_int(obj, key, max, out, &found, err);
    if (rc) return rc;
    if (!found) return gpt2_fail(err, GPT2_ERR_FORMAT, "config.json: missing \"%s\"", key);
    return GPT2_OK;
}

/* An optional boolean that must equal want (settings that change GPT-2's math). */
static gpt2_err check_flag(const json_value *obj, const char *key, int want, gpt2_error *err) {
    const json_value *v = json_get(obj, key);
    if (!v || v->type == JSON_NULL) return GPT2_OK;
    if (v->type != JSON_TRUE && v->type != JSON_FALSE)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "config.json: %s must be true or false, got %s",
                         key, type_name(v->type));
    if ((v->type == JSON_TRUE) != want)
        return gpt2_fail(err, GPT2_ERR_UNSUPPORTED, "config.json: %s=%s is not supported", key,
                         want ? "false" : "true");
    return GPT2_OK;
}

static gpt2_err parse_root(const json_value *root, gpt2_config *c, gpt2_error *err) {
    gpt2_err rc;
    char buf[48];
    if (root->type != JSON_OBJECT)
        return gpt2_fail(err, GPT2_ERR_FORMAT, "config.json: expected an object, got %s",
                         type_name(root->type));

    const json_value *mt = json_get(root, "model_type");
    if (mt && mt->type == JSON_STRING && strcmp(mt->str, "gpt2") != 0) {
        printable(mt->str, mt->len, buf);
        return gpt2_fail(err, GPT2_ERR_UNSUPPORTED,
                         "config.json: model_type '%s' is not supported (only gpt2)", buf);
    }
    const json_value *act = json_get(root, "activation_function");
    if (act && act->type != JSON_NULL) {
        if (act->type != JSON_STRING)
            return gpt2_fail(err, GPT2_ERR_FORMAT,
                             "config.json: activation_function must be a string, got %s",
                             type_name(act->type));
        if (act->len != 8 || memcmp(act->str, "gelu_new", 8) != 0) {
            printable(act->str, act->len, buf);
            return gpt2_fail(err, GPT2_ERR_UNSUPPORTED,
                             "config.json: activation_function '%s' is not supported (only gelu_new)",
                             buf);
        }
    }
    if ((rc = check_flag(root, "scale_attn_weights", 1, err))) return rc;
    if ((rc = check_flag(root, "scale_attn_by_inverse_layer_idx", 0, err))) return rc;

    if ((rc = require_int(root, "n_layer", MAX_LAYER, &c->n_layer, err))) return rc;
    if ((rc = require_int(root, "n_head", MAX_EMBD, &c->n_head, err))) return rc;
    if ((rc = require_int(root, "n_embd", MAX_EMBD, &c->n_embd, err))) return rc;
    if ((rc = require_int(root, "vocab_size", MAX_VOCAB, &c->n_vocab, err))) return rc;
    int found;
    if ((rc = get_int(root, "n_positions", MAX_CTX, &c->n_ctx, &found, err))) return rc;
    if (!found) {
        if ((rc = get_int(root, "n_ctx", MAX_CTX, &c->n_ctx, &found, err))) return rc;
        if (!found)
            return gpt2_fail(err, GPT2_ERR_FORMAT, "config.json: missing \"n_positions\" (or \"n_ctx\")");
    }
    if ((rc = get_int(root, "n_inner", MAX_INNER, &c->n_inner, &found, err))) return rc;
    if (!found) {
        if (4 * (int64_t)c->n_embd > MAX_INNER)
            return gpt2_fail(err, GPT2_ERR_RANGE, "config.json: n_embd %d is too large", c->n_embd);
        c->n_inner = 4 * c->n_embd;
    }
    if (c->n_embd % c->n_head != 0)
        return gpt2_fail(err, GPT2_ERR_FORMAT,
                         "config.json: n_embd (%d) is not divisible by n_head (%d)", c->n_embd,
                         c->n_head);

    c->ln_eps = 1e-5f;
    const json_value *eps = json_get(root, "layer_norm_epsilon");
    if (eps && eps->type != JSON_NULL) {
        if (eps->type != JSON_NUMBER)
            return gpt2_fail(err, GPT2_ERR_FORMAT,
                             "config.json: layer_norm_epsilon must be a number, got %s",
                             type_name(eps->type));
        /* must be positive and survive the conversion to float */
        if (!isfinite(eps->number) || !(eps->number > 0.0) || eps->number > 1.0 ||
            (float)eps->number == 0.0f)
            return gpt2_fail(err, GPT2_ERR_RANGE,
                             "config.json: layer_norm_epsilon %g is out of range (0, 1]", eps->number);
        c->ln_eps = (float)eps->number;
    }
    return GPT2_OK;
}

gpt2_err gpt2_config_parse(const char *json, size_t len, gpt2_config *out, gpt2_error *err) {
    if (!out || (!json && len))
        return gpt2_fail(err, GPT2_ERR_ARG, "gpt2_config_parse: NULL argument");
    json_doc *doc = NULL;
    gpt2_err rc = json_parse(json ? json : "", len, &doc, err);
    if (rc) {
        gpt2_error_prefix(err, "config.json");
        return rc;
    }
    gpt2_config c;
    memset(&c, 0, sizeof c);
    rc = parse_root(json_root(doc), &c, err);
    json_free(doc);
    if (rc == GPT2_OK) *out = c;
    return rc;
}
