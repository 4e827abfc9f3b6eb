/* constants.c - writes js/constants.js: every constant the JS API shares with the core (status
 * codes, enum names by value, limits, defaults, and the byte layouts of the structs JS reads or
 * writes), taken from the headers themselves. Built for WebAssembly like the module (so sizeof
 * and offsetof are the module's own) and run by the build (wasm/wasm.cmake), which replaces
 * js/constants.js when its text changes. Usage: node constants.cjs > js/constants.js
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "generate.h"
#include "loader.h"
#include "matrix.h"
#include "safetensors.h"
#include "speculative.h"
#include "status.h"
#include "tokenizer.h"
#include "train.h"
#include "weights.h"

/* Names JS uses for enum values the core does not name itself (designated by the enum, so the
 * values are the core's; the counts below are the last value + 1). */
static const char *const err_codes[GPT2_ERR_ABORTED + 1] = {
    [GPT2_OK] = "ok",        [GPT2_ERR_IO] = "io",       [GPT2_ERR_FORMAT] = "format",
    [GPT2_ERR_SHAPE] = "shape", [GPT2_ERR_UNSUPPORTED] = "unsupported", [GPT2_ERR_NOMEM] = "nomem",
    [GPT2_ERR_ARG] = "arg",  [GPT2_ERR_RANGE] = "range", [GPT2_ERR_ABORTED] = "aborted"};
static const char *const context_policies[GPT2_CONTEXT_SLIDE + 1] = {[GPT2_CONTEXT_STOP] = "stop",
                                                                     [GPT2_CONTEXT_SLIDE] = "slide"};
static const char *const optimizers[GPT2_OPTIM_SGD + 1] = {[GPT2_OPTIM_ADAMW] = "adamw", [GPT2_OPTIM_SGD] = "sgd"};
static const char *const schedules[GPT2_SCHEDULE_COSINE + 1] = {[GPT2_SCHEDULE_CONSTANT] = "constant",
                                                               [GPT2_SCHEDULE_COSINE] = "cosine"};
#define COUNT(a) ((int)(sizeof(a) / sizeof(a)[0]))

/* A float as the shortest decimal that reads back as the same float. */
static void print_float(float v) {
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    printf("%s", buf);
}

/* An exported frozen array of names, one per value 0..n-1: name(i). */
#define NAMES(js, comment, n, name_of)                                                        \
    do {                                                                                      \
        printf("\n/** %s */\nexport const %s = Object.freeze([", comment, js);                 \
        for (int i_ = 0; i_ < (n); i_++) printf("%s'%s'", i_ ? ", " : "", name_of);           \
        printf("]);\n");                                                                      \
    } while (0)

/* One struct of LAYOUT: its size, then each FIELD's offset. */
#define STRUCT(js, type) printf("  %s: Object.freeze({ size: %zu", js, sizeof(type))
#define FIELD(js, type, member) printf(", %s: %zu", js, offsetof(type, member))
#define END() printf(" }),\n")

int main(void) {
    printf("// constants.js - the constants the JS API shares with the C core, GENERATED from its headers by\n"
           "// wasm/constants.c (npm run build rewrites this file when they change). Do not edit by hand.\n");

    NAMES("ERROR_CODES", "Gpt2Error.code of each gpt2_err value (status.h).", COUNT(err_codes), err_codes[i_]);
    NAMES("STOP_REASONS", "gpt2_stop_reason names by value (generate.h).", GPT2_STOP_CONTEXT_FULL + 1,
          gpt2_stop_reason_name((gpt2_stop_reason)i_));
    NAMES("CONTEXT_POLICIES", "gpt2_context_policy by value (generate.h).", COUNT(context_policies),
          context_policies[i_]);
    NAMES("PRECISIONS", "gpt2_precision by value: the load option `precision` (loader.h).", GPT2_PRECISION_Q8_0 + 1,
          gpt2_precision_name((gpt2_precision)i_));
    NAMES("DTYPES", "gpt2_dtype by value: how weights are stored (matrix.h).", GPT2_DTYPE_Q8_0 + 1,
          gpt2_dtype_name((gpt2_dtype)i_));
    NAMES("MATRIX_KINDS", "gpt2_matrix_kind by value (weights.h).", GPT2_MAT_KINDS,
          gpt2_matrix_kind_name((gpt2_matrix_kind)i_));
    NAMES("OPTIMIZERS", "gpt2_optimizer by value (train.h).", COUNT(optimizers), optimizers[i_]);
    NAMES("SCHEDULES", "gpt2_lr_schedule by value (train.h).", COUNT(schedules), schedules[i_]);

    gpt2_generate_params d;
    gpt2_generate_params_default(&d);
    printf("\n/** Limits and sizes of the core. */\nexport const LIMITS = Object.freeze({\n"
           "  maxStopSequences: %d, // GPT2_MAX_STOP_SEQUENCES (generate.h)\n"
           "  prefillBatch: %d, // GPT2_PREFILL_BATCH: tokens per forward step (generate.h)\n"
           "  draftTokensMax: %d, // GPT2_SPECULATIVE_MAX_K (speculative.h)\n"
           "  maxHeaderBytes: %u, // GPT2_ST_MAX_HEADER: a safetensors header's limit (safetensors.h)\n"
           "  precisionReasonBytes: %zu, // gpt2_weights.precision_reason (weights.h)\n"
           "});\n",
           GPT2_MAX_STOP_SEQUENCES, GPT2_PREFILL_BATCH, GPT2_SPECULATIVE_MAX_K, GPT2_ST_MAX_HEADER,
           sizeof ((gpt2_weights *)0)->precision_reason);
    printf("\n/** gpt2_generate_params_default's values (generate.h, sampler.h). */\n"
           "export const GENERATE_DEFAULTS = Object.freeze({ maxTokens: %d, temperature: ", d.max_new_tokens);
    print_float(d.sampler.temperature);
    printf(", topK: %d, topP: ", d.sampler.top_k);
    print_float(d.sampler.top_p);
    printf(", repetitionPenalty: ");
    print_float(d.sampler.repetition_penalty);
    printf(", seed: %llu, slideKeep: %d });\n", (unsigned long long)d.sampler.seed, d.slide_keep);

    gpt2_train_options t;
    gpt2_train_options_default(&t);
    printf("\n/** gpt2_train_options_default's values (train.h). */\n"
           "export const TRAIN_DEFAULTS = Object.freeze({ batch: %d, seq: %d, gradAccum: %d, optimizer: '%s', lr: ",
           t.batch, t.seq, t.grad_accum, optimizers[t.optimizer]);
    print_float(t.lr);
    const char *names[] = {"beta1", "beta2", "eps", "weightDecay", "gradClip"};
    const float values[] = {t.beta1, t.beta2, t.eps, t.weight_decay, t.grad_clip};
    for (int i = 0; i < 5; i++) {
        printf(", %s: ", names[i]);
        print_float(values[i]);
    }
    printf(", warmup: %d, schedule: '%s' });\n", t.warmup, schedules[t.schedule]);

    printf("\n/** Byte sizes and field offsets of the structs JS reads or writes (wasm32). */\n"
           "export const LAYOUT = Object.freeze({\n");
    STRUCT("error", gpt2_error);
    FIELD("code", gpt2_error, code);
    FIELD("message", gpt2_error, message);
    END();
    STRUCT("piece", gpt2_piece);
    FIELD("id", gpt2_piece, id);
    FIELD("text", gpt2_piece, text);
    FIELD("len", gpt2_piece, len);
    FIELD("stop", gpt2_piece, stop);
    END();
    STRUCT("decoder", gpt2_decoder);
    END();
    STRUCT("generateParams", gpt2_generate_params);
    FIELD("temperature", gpt2_generate_params, sampler.temperature);
    FIELD("topK", gpt2_generate_params, sampler.top_k);
    FIELD("topP", gpt2_generate_params, sampler.top_p);
    FIELD("repetitionPenalty", gpt2_generate_params, sampler.repetition_penalty);
    FIELD("seed", gpt2_generate_params, sampler.seed);
    FIELD("biasIds", gpt2_generate_params, sampler.bias_ids);
    FIELD("bias", gpt2_generate_params, sampler.bias);
    FIELD("nBias", gpt2_generate_params, sampler.n_bias);
    FIELD("maxTokens", gpt2_generate_params, max_new_tokens);
    FIELD("ignoreEot", gpt2_generate_params, ignore_eot);
    FIELD("nStop", gpt2_generate_params, n_stop);
    FIELD("stop", gpt2_generate_params, stop);
    FIELD("nBanned", gpt2_generate_params, n_banned);
    FIELD("bannedWords", gpt2_generate_params, banned_words);
    FIELD("contextPolicy", gpt2_generate_params, context_policy);
    FIELD("slideKeep", gpt2_generate_params, slide_keep);
    FIELD("truncatePrompt", gpt2_generate_params, truncate_prompt);
    END();
    STRUCT("trainOptions", gpt2_train_options);
    FIELD("batch", gpt2_train_options, batch);
    FIELD("seq", gpt2_train_options, seq);
    FIELD("gradAccum", gpt2_train_options, grad_accum);
    FIELD("optimizer", gpt2_train_options, optimizer);
    FIELD("lr", gpt2_train_options, lr);
    FIELD("beta1", gpt2_train_options, beta1);
    FIELD("beta2", gpt2_train_options, beta2);
    FIELD("eps", gpt2_train_options, eps);
    FIELD("weightDecay", gpt2_train_options, weight_decay);
    FIELD("gradClip", gpt2_train_options, grad_clip);
    FIELD("warmup", gpt2_train_options, warmup);
    FIELD("schedule", gpt2_train_options, schedule);
    FIELD("totalSteps", gpt2_train_options, total_steps);
    FIELD("shuffle", gpt2_train_options, shuffle);
    FIELD("seed", gpt2_train_options, seed);
    END();
    printf("});\n");
    return 0;
}
