/* test_config.c - gpt2_config_parse on the official configs and on bad input. */
#include <string.h>

#include "check.h"
#include "config.h"

/* The fields of Hugging Face's GPT-2 config.json files that matter, plus typical extras. */
#define HF_CONFIG(layers, embd, heads, extra)                                                    \
    "{\n  \"activation_function\": \"gelu_new\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n" \
    "  \"attn_pdrop\": 0.1,\n  \"bos_token_id\": 50256,\n  \"embd_pdrop\": 0.1,\n"              \
    "  \"eos_token_id\": 50256,\n  \"initializer_range\": 0.02,\n"                              \
    "  \"layer_norm_epsilon\": 1e-05,\n  \"model_type\": \"gpt2\",\n  \"n_ctx\": 1024,\n"       \
    "  \"n_embd\": " #embd ",\n  \"n_head\": " #heads ",\n  \"n_layer\": " #layers ",\n"          \
    "  \"n_positions\": 1024,\n  \"resid_pdrop\": 0.1,\n  \"summary_activation\": null,\n"      \
    "  \"summary_first_dropout\": 0.1,\n  \"summary_proj_to_labels\": true,\n"                  \
    "  \"summary_type\": \"cls_index\",\n  \"summary_use_proj\": true,\n"                        \
    "  \"task_specific_params\": {\"text-generation\": {\"do_sample\": true, \"max_length\": 50}},\n" \
    extra "  \"vocab_size\": 50257\n}\n"

static gpt2_err parse(const char *s, gpt2_config *c, gpt2_error *e) {
    return gpt2_config_parse(s, strlen(s), c, e);
}

static void test_official(void) {
    static const struct {
        const char *name, *json;
        int layers, embd, heads;
    } cases[] = {
        {"distilgpt2", HF_CONFIG(6, 768, 12, "  \"_num_labels\": 1,\n"), 6, 768, 12},
        {"gpt2", HF_CONFIG(12, 768, 12, ""), 12, 768, 12},
        {"gpt2-medium", HF_CONFIG(24, 1024, 16, "  \"n_special\": 0,\n  \"predict_special_tokens\": true,\n"),
         24, 1024, 16},
        {"gpt2-large", HF_CONFIG(36, 1280, 20, ""), 36, 1280, 20},
        {"gpt2-xl", HF_CONFIG(48, 1600, 25, "  \"output_past\": true,\n"), 48, 1600, 25},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gpt2_config c;
        gpt2_error e = {0};
        memset(&c, 0xab, sizeof c);
        CHECK_OK(parse(cases[i].json, &c, &e), &e);
        CHECK(c.n_layer == cases[i].layers && c.n_embd == cases[i].embd && c.n_head == cases[i].heads,
              "%s: %d %d %d", cases[i].name, c.n_layer, c.n_embd, c.n_head);
        CHECK(c.n_ctx == 1024 && c.n_vocab == 50257, "%s: ctx %d vocab %d", cases[i].name, c.n_ctx,
              c.n_vocab);
        CHECK(c.n_inner == 4 * cases[i].embd, "%s: n_inner %d", cases[i].name, c.n_inner);
        CHECK(c.ln_eps == 1e-5f, "%s: eps %g", cases[i].name, (double)c.ln_eps);
    }
}

#define MIN_FIELDS "\"n_layer\":2,\"n_head\":2,\"n_embd\":8,\"vocab_size\":11"

static void test_variants(void) {
    gpt2_config c;
    gpt2_error e = {0};
    /* n_ctx fallback; defaults for eps, n_inner, activation */
    CHECK_OK(parse("{" MIN_FIELDS ",\"n_ctx\":5}", &c, &e), &e);
    CHECK(c.n_ctx == 5 && c.n_inner == 32 && c.ln_eps == 1e-5f, "ctx %d inner %d", c.n_ctx, c.n_inner);
    /* n_positions wins over n_ctx */
    CHECK_OK(parse("{" MIN_FIELDS ",\"n_ctx\":5,\"n_positions\":7}", &c, &e), &e);
    CHECK(c.n_ctx == 7, "ctx %d", c.n_ctx);
    /* n_inner explicit and null */
    CHECK_OK(parse("{" MIN_FIELDS ",\"n_positions\":5,\"n_inner\":20}", &c, &e), &e);
    CHECK(c.n_inner == 20, "inner %d", c.n_inner);
    CHECK_OK(parse("{" MIN_FIELDS ",\"n_positions\":5,\"n_inner\":null}", &c, &e), &e);
    CHECK(c.n_inner == 32, "inner %d", c.n_inner);
    CHECK_OK(parse("{" MIN_FIELDS ",\"n_positions\":5,\"layer_norm_epsilon\":0.001}", &c, &e), &e);
    CHECK(c.ln_eps == 0.001f, "eps %g", (double)c.ln_eps);
    CHECK_OK(parse("{" MIN_FIELDS ",\"n_positions\":5,\"activation_function\":\"gelu_new\","
                   "\"scale_attn_weights\":true,\"scale_attn_by_inverse_layer_idx\":false}",
                   &c, &e),
             &e);
    /* NULL error pointer is allowed */
    CHECK(parse("{" MIN_FIELDS ",\"n_positions\":5}", &c, NULL) == GPT2_OK, "NULL err");
    CHECK(parse("{" MIN_FIELDS "}", &c, NULL) == GPT2_ERR_FORMAT, "NULL err on failure");
}

static void test_errors(void) {
    gpt2_config c;
    gpt2_error e = {0};
    static const struct {
        const char *json;
        gpt2_err code;
        const char *needle; /* must appear in the message */
    } cases[] = {
        {"", GPT2_ERR_FORMAT, "config.json"},
        {"{", GPT2_ERR_FORMAT, "config.json"},
        {"[1,2]", GPT2_ERR_FORMAT, "object"},
        {"{\"n_head\":2,\"n_embd\":8,\"vocab_size\":11,\"n_positions\":5}", GPT2_ERR_FORMAT, "n_layer"},
        {"{\"n_layer\":2,\"n_embd\":8,\"vocab_size\":11,\"n_positions\":5}", GPT2_ERR_FORMAT, "n_head"},
        {"{\"n_layer\":2,\"n_head\":2,\"vocab_size\":11,\"n_positions\":5}", GPT2_ERR_FORMAT, "n_embd"},
        {"{\"n_layer\":2,\"n_head\":2,\"n_embd\":8,\"n_positions\":5}", GPT2_ERR_FORMAT, "vocab_size"},
        {"{" MIN_FIELDS "}", GPT2_ERR_FORMAT, "n_positions"},
        {"{" MIN_FIELDS ",\"n_positions\":\"5\"}", GPT2_ERR_FORMAT, "n_positions must be an integer"},
        {"{\"n_layer\":2.5,\"n_head\":2,\"n_embd\":8,\"vocab_size\":11,\"n_positions\":5}",
         GPT2_ERR_FORMAT, "n_layer"},
        {"{\"n_layer\":2e0,\"n_head\":2,\"n_embd\":8,\"vocab_size\":11,\"n_positions\":5}",
         GPT2_ERR_FORMAT, "n_layer"},
        {"{\"n_layer\":true,\"n_head\":2,\"n_embd\":8,\"vocab_size\":11,\"n_positions\":5}",
         GPT2_ERR_FORMAT, "boolean"},
        {"{\"n_layer\":0,\"n_head\":2,\"n_embd\":8,\"vocab_size\":11,\"n_positions\":5}", GPT2_ERR_RANGE,
         "n_layer is 0"},
        {"{\"n_layer\":-3,\"n_head\":2,\"n_embd\":8,\"vocab_size\":11,\"n_positions\":5}",
         GPT2_ERR_RANGE, "n_layer"},
        {"{\"n_layer\":2,\"n_head\":2,\"n_embd\":8,\"vocab_size\":99999999999999,\"n_positions\":5}",
         GPT2_ERR_RANGE, "vocab_size"},
        {"{\"n_layer\":2,\"n_head\":2,\"n_embd\":8,\"vocab_size\":9223372036854775807,\"n_positions\":5}",
         GPT2_ERR_RANGE, "vocab_size"},
        {"{\"n_layer\":2,\"n_head\":3,\"n_embd\":8,\"vocab_size\":11,\"n_positions\":5}", GPT2_ERR_FORMAT,
         "not divisible"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"n_inner\":0}", GPT2_ERR_RANGE, "n_inner"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"n_inner\":\"x\"}", GPT2_ERR_FORMAT, "n_inner"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"activation_function\":\"relu\"}", GPT2_ERR_UNSUPPORTED,
         "activation_function 'relu' is not supported (only gelu_new)"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"activation_function\":\"gelu\"}", GPT2_ERR_UNSUPPORTED,
         "'gelu'"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"activation_function\":7}", GPT2_ERR_FORMAT,
         "activation_function"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"layer_norm_epsilon\":0}", GPT2_ERR_RANGE,
         "layer_norm_epsilon"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"layer_norm_epsilon\":1e-300}", GPT2_ERR_RANGE,
         "layer_norm_epsilon"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"layer_norm_epsilon\":\"1e-5\"}", GPT2_ERR_FORMAT,
         "layer_norm_epsilon"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"model_type\":\"gpt_neo\"}", GPT2_ERR_UNSUPPORTED,
         "gpt_neo"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"scale_attn_by_inverse_layer_idx\":true}",
         GPT2_ERR_UNSUPPORTED, "scale_attn_by_inverse_layer_idx"},
        {"{" MIN_FIELDS ",\"n_positions\":5,\"scale_attn_weights\":false}", GPT2_ERR_UNSUPPORTED,
         "scale_attn_weights"},
        {"{" MIN_FIELDS ",\"n_positions\":5,}", GPT2_ERR_FORMAT, "config.json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_FAILS(parse(cases[i].json, &c, &e), cases[i].code, &e);
        CHECK(strstr(e.message, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i, e.message,
              cases[i].needle);
        CHECK(strncmp(e.message, "config.json", 11) == 0, "case %zu: '%s'", i, e.message);
    }
    CHECK_FAILS(gpt2_config_parse(NULL, 3, &c, &e), GPT2_ERR_ARG, &e);
}

int main(void) {
    test_official();
    test_variants();
    test_errors();
    return check_summary("test_config");
}
