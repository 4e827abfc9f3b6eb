/* fuzz_config.c - libFuzzer harness for config.json parsing (src/config.c). */
#include <math.h>

#include "config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gpt2_config c;
    memset(&c, 0xA5, sizeof c);
    gpt2_error err;
    memset(&err, 0, sizeof err);
    gpt2_err rc = gpt2_config_parse((const char *)data, size, &c, &err);
    if (rc != GPT2_OK) {
        fuzz_check_error(rc, &err);
        FUZZ_CHECK(strncmp(err.message, "config.json", 11) == 0, "message '%s'", err.message);
        return 0;
    }
    FUZZ_CHECK(c.n_layer >= 1 && c.n_head >= 1 && c.n_embd >= 1 && c.n_ctx >= 1 &&
               c.n_vocab >= 1 && c.n_inner >= 1, "non-positive size");
    FUZZ_CHECK(c.n_embd % c.n_head == 0, "n_embd %d, n_head %d", c.n_embd, c.n_head);
    FUZZ_CHECK(isfinite(c.ln_eps) && c.ln_eps > 0.0f && c.ln_eps <= 1.0f, "ln_eps %g",
               (double)c.ln_eps);
    return 0;
}
