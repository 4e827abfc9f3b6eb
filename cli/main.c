/* main.c - the native command-line tool `gpt2` (cli/; the library it uses is src/).
 *
 * One file of about 700 lines because the commands below share one option parser and one
 * way of opening a model; each command is a short function (cmd_*). The two long commands
 * live in their own files: bench.c and finetune.c.
 *
 *   gpt2 generate   [--model DIR] [--prompt TEXT] [sampling options]   stream a continuation
 *                   [--draft DIR [--draft-precision P] [--draft-tokens K]]  (speculative decoding)
 *   gpt2 tokenize   [--model DIR] [--special] < text                   print token ids
 *   gpt2 detokenize [--model DIR] [--ids "1 2 3"] (or ids on stdin)     print text
 *   gpt2 logits     [--model DIR] (--ids "1 2 3" | --prompt TEXT)      last position's logits
 *   gpt2 score      [--model DIR] [--prompt TEXT] (or text on stdin)   per-token log-probabilities
 *   gpt2 info       [--model DIR]                                       config, sizes, memory
 *   gpt2 quantize   IN OUT --type q8_0|f16                              convert a checkpoint
 *   gpt2 bench      [--model DIR] [--quick]                             speed table (bench.c)
 *   gpt2 finetune   --data FILE --out DIR [options]                     train on a text (finetune.c)
 *
 * Errors are one line on stderr ("gpt2: ...") and exit status 1 (2 for usage errors).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#include "cli.h"
#include "generate.h"
#include "loader.h"
#include "quantize.h"
#include "model.h"
#include "pool.h"
#include "sampler.h"
#include "score.h"
#include "speculative.h"
#include "tokenizer.h"
#include "weights.h"

#ifndef GPT2_DEFAULT_MODEL_DIR
#define GPT2_DEFAULT_MODEL_DIR "models"
#endif

/* Draft tokens per round without --draft-tokens (the JS API's DEFAULT_DRAFT_TOKENS;
 * measured: BENCHMARKS.md, speculative decoding). */
#define GPT2_CLI_DRAFT_TOKENS 4

typedef struct options {
    const char *command;
    const char *model_dir;
    const char *prompt;
    const char *ids;
    int special;
    int stats;
    int threads; /* --threads: 0 = one per core */
    gpt2_loader_options load;
    const char *draft_dir;          /* generate --draft DIR: speculative decoding */
    gpt2_loader_options draft_load; /* --draft-precision (default q8_0) */
    int draft_tokens;               /* --draft-tokens (default GPT2_CLI_DRAFT_TOKENS) */
    int draft_options;              /* --draft-precision or --draft-tokens given */
    gpt2_generate_params gen;
    int alternatives;               /* score --alternatives K */
    const char *banned[64];         /* generate --ban WORD */
    int32_t bias_ids[64];           /* generate --bias ID=V */
    float bias[64];
} options;

static void usage(FILE *f) {
    fputs("usage: gpt2 COMMAND [options]\n"
          "commands:\n"
          "  generate    continue a prompt, streaming text to stdout\n"
          "  tokenize    print the token ids of the text on stdin\n"
          "  detokenize  print the text of token ids (--ids or stdin)\n"
          "  logits      print the logits of the last position, one per line\n"
          "  score       print each token's log-probability and rank, and the perplexity\n"
          "  info        print the model's configuration and memory use\n"
          "  quantize    gpt2 quantize IN OUT --type q8_0|f16: convert a checkpoint (IN and OUT are\n"
          "              model folders, or model.safetensors files)\n"
          "  bench       speed benchmark (native rows; see gpt2 bench --help and BENCHMARKS.md)\n"
          "  finetune    train the model on a text file and save it (see gpt2 finetune --help)\n"
          "options:\n"
          "  --model DIR               checkpoint folder (default: " GPT2_DEFAULT_MODEL_DIR ")\n"
          "  --prompt TEXT             prompt text (generate, logits, score; default: stdin for score)\n"
          "  --ids \"1 2 3\"             token ids (logits, detokenize)\n"
          "  --special                 treat <|endoftext|> in text as the special token\n"
          "  --max-tokens N            new tokens to generate (default 64)\n"
          "  --temperature T           0 = greedy (default 1.0)\n"
          "  --top-k K                 keep the K most likely tokens (0 = off)\n"
          "  --top-p P                 nucleus sampling threshold (1 = off)\n"
          "  --repetition-penalty R    penalise tokens already present (1 = off)\n"
          "  --seed N                  random seed (default 0)\n"
          "  --stop TEXT               stop before this text (repeatable, up to 8)\n"
          "  --ban WORD                never generate this word (repeatable, up to 64; rule: src/generate.h)\n"
          "  --bias ID=V               add V to token ID's logit before sampling (repeatable, up to 64;\n"
          "                            V = -inf bans the token)\n"
          "  --alternatives K          score: also print the K most likely tokens at each position\n"
          "  --ignore-eot              keep generating after <|endoftext|>\n"
          "  --context slide|stop      a full context: keep the recent half and go on (default),\n"
          "                            or stop (reason context_full)\n"
          "  --truncate left|error     a prompt longer than the context: drop its oldest tokens\n"
          "                            with a warning (default), or fail\n"
          "  --draft DIR               generate: speculative decoding with this draft model (same\n"
          "                            vocabulary; e.g. the same checkpoint, as q8_0); same text when\n"
          "                            greedy, same distribution when sampling\n"
          "  --draft-precision P       the draft's weights in memory (default q8_0)\n"
          "  --draft-tokens K          tokens the draft proposes per round, 1..16 (default 4)\n"
          "  --stats                   print timings to stderr (generate; with --draft: acceptance)\n"
          "  --threads N               threads for the forward pass (default: one per core)\n"
          "  --precision P             weights in memory: auto (as stored if it fits, else f16, else\n"
          "                            q8_0; default), f32, f16, q8_0\n"
          "  --memory-budget BYTES     fail (naming a precision that fits) if the model would need more\n"
          "                            (suffixes K, M, G: powers of 1024)\n",
          f);
}

static int fail(const char *what, const gpt2_error *err) {
    fprintf(stderr, "gpt2: %s%s%s\n", what ? what : "", what && err ? ": " : "", err ? err->message : "");
    return 1;
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "gpt2: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see gpt2 --help)\n");
    return 2;
}

int gpt2_cli_parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int gpt2_cli_parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return 0;
    *out = (float)v;
    return 1;
}

/* "4294967296", "512M", "4G" (powers of 1024). */
static int parse_bytes(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (s[0] == '-') return 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return 0;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    if (*end || v > (UINT64_MAX >> shift)) return 0;
    *out = (uint64_t)v << shift;
    return 1;
}

static int takes_value(const char *opt) {
    static const char *const names[] = {"--model", "--prompt", "--ids", "--max-tokens", "--top-k", "--seed",
                                        "--temperature", "--top-p", "--repetition-penalty", "--stop",
                                        "--precision", "--memory-budget", "--ban", "--bias", "--alternatives",
                                        "--threads", "--context", "--truncate", "--draft",
                                        "--draft-precision", "--draft-tokens"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(opt, names[i])) return 1;
    return 0;
}

/* Parses argv into o; returns 0 on success or an exit status. */
static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->model_dir = GPT2_DEFAULT_MODEL_DIR;
    gpt2_generate_params_default(&o->gen);
    o->gen.context_policy = GPT2_CONTEXT_SLIDE;
    o->gen.truncate_prompt = 1;
    o->draft_load.precision = GPT2_PRECISION_Q8_0;
    o->draft_tokens = GPT2_CLI_DRAFT_TOKENS;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    o->command = argv[1];
    if (!strcmp(o->command, "-h") || !strcmp(o->command, "--help") || !strcmp(o->command, "help")) {
        usage(stdout);
        exit(0);
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        int takes = 1;
        if (!strcmp(a, "--special")) { o->special = 1; takes = 0; }
        else if (!strcmp(a, "--stats")) { o->stats = 1; takes = 0; }
        else if (!strcmp(a, "--ignore-eot")) { o->gen.ignore_eot = 1; takes = 0; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        else if (!takes_value(a)) return usage_error("unknown option '%s'", a);
        else if (!v) return usage_error("option %s needs a value", a);
        else if (!strcmp(a, "--model")) o->model_dir = v;
        else if (!strcmp(a, "--prompt")) o->prompt = v;
        else if (!strcmp(a, "--ids")) o->ids = v;
        else if (!strcmp(a, "--max-tokens")) {
            if (!gpt2_cli_parse_long(v, 0, 1 << 30, &n)) return usage_error("--max-tokens needs a whole number >= 0, got '%s'", v);
            o->gen.max_new_tokens = (int)n;
        } else if (!strcmp(a, "--top-k")) {
            if (!gpt2_cli_parse_long(v, 0, 1 << 30, &n)) return usage_error("--top-k needs a whole number >= 0, got '%s'", v);
            o->gen.sampler.top_k = (int)n;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') return usage_error("--seed needs a whole number >= 0, got '%s'", v);
            o->gen.sampler.seed = (uint64_t)s;
        } else if (!strcmp(a, "--temperature")) {
            if (!gpt2_cli_parse_float(v, &o->gen.sampler.temperature)) return usage_error("--temperature needs a number, got '%s'", v);
        } else if (!strcmp(a, "--top-p")) {
            if (!gpt2_cli_parse_float(v, &o->gen.sampler.top_p)) return usage_error("--top-p needs a number, got '%s'", v);
        } else if (!strcmp(a, "--repetition-penalty")) {
            if (!gpt2_cli_parse_float(v, &o->gen.sampler.repetition_penalty))
                return usage_error("--repetition-penalty needs a number, got '%s'", v);
        } else if (!strcmp(a, "--context")) {
            if (!strcmp(v, "slide")) o->gen.context_policy = GPT2_CONTEXT_SLIDE;
            else if (!strcmp(v, "stop")) o->gen.context_policy = GPT2_CONTEXT_STOP;
            else return usage_error("--context must be slide or stop, got '%s'", v);
        } else if (!strcmp(a, "--truncate")) {
            if (!strcmp(v, "left")) o->gen.truncate_prompt = 1;
            else if (!strcmp(v, "error")) o->gen.truncate_prompt = 0;
            else return usage_error("--truncate must be left or error, got '%s'", v);
        } else if (!strcmp(a, "--threads")) {
            long n;
            if (!gpt2_cli_parse_long(v, 1, 256, &n)) return usage_error("--threads needs a whole number from 1 to 256, got '%s'", v);
            o->threads = (int)n;
        } else if (!strcmp(a, "--precision")) {
            gpt2_error e;
            if (gpt2_precision_parse(v, &o->load.precision, &e) != GPT2_OK) return usage_error("%s", e.message);
        } else if (!strcmp(a, "--draft")) {
            o->draft_dir = v;
        } else if (!strcmp(a, "--draft-precision")) {
            gpt2_error e;
            if (gpt2_precision_parse(v, &o->draft_load.precision, &e) != GPT2_OK)
                return usage_error("--draft-precision: %s", e.message);
            o->draft_options = 1;
        } else if (!strcmp(a, "--draft-tokens")) {
            if (!gpt2_cli_parse_long(v, 1, GPT2_SPECULATIVE_MAX_K, &n))
                return usage_error("--draft-tokens needs a whole number from 1 to 16, got '%s'", v);
            o->draft_tokens = (int)n;
            o->draft_options = 1;
        } else if (!strcmp(a, "--memory-budget")) {
            if (!parse_bytes(v, &o->load.memory_budget_bytes))
                return usage_error("--memory-budget needs a size in bytes (e.g. 4G), got '%s'", v);
        } else if (!strcmp(a, "--ban")) {
            if (o->gen.n_banned >= 64) return usage_error("at most 64 --ban options%s", "");
            if (!v[0]) return usage_error("--ban needs a non-empty word%s", "");
            o->banned[o->gen.n_banned++] = v;
            o->gen.banned_words = o->banned;
        } else if (!strcmp(a, "--bias")) {
            const char *eq = strchr(v, '=');
            char idtext[32];
            int k = o->gen.sampler.n_bias;
            if (k >= 64) return usage_error("at most 64 --bias options%s", "");
            if (!eq || (size_t)(eq - v) >= sizeof idtext) return usage_error("--bias needs ID=VALUE, got '%s'", v);
            memcpy(idtext, v, (size_t)(eq - v));
            idtext[eq - v] = '\0';
            if (!gpt2_cli_parse_long(idtext, 0, 1 << 30, &n)) return usage_error("--bias needs ID=VALUE, got '%s'", v);
            o->bias_ids[k] = (int32_t)n;
            if (!strcmp(eq + 1, "-inf")) o->bias[k] = -INFINITY;
            else if (!gpt2_cli_parse_float(eq + 1, &o->bias[k])) return usage_error("--bias needs ID=VALUE, got '%s'", v);
            o->gen.sampler.bias_ids = o->bias_ids;
            o->gen.sampler.bias = o->bias;
            o->gen.sampler.n_bias = k + 1;
        } else if (!strcmp(a, "--alternatives")) {
            if (!gpt2_cli_parse_long(v, 0, 1 << 20, &n)) return usage_error("--alternatives needs a whole number >= 0, got '%s'", v);
            o->alternatives = (int)n;
        } else if (!strcmp(a, "--stop")) {
            if (o->gen.n_stop >= GPT2_MAX_STOP_SEQUENCES) return usage_error("at most 8 --stop options%s", "");
            o->gen.stop[o->gen.n_stop++] = v;
        }
        i += takes;
    }
    return 0;
}

/* Reads all of stdin into a NUL-terminated buffer. */
static char *read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) { free(buf); return NULL; }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, stdin);
        n += got;
        if (got == 0) break;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Parses whitespace-separated ids; returns the count or -1 on a bad number. */
static long parse_ids(const char *s, int32_t **out) {
    size_t cap = 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return -1;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ',') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || v < 0 || v > INT32_MAX) { free(ids); return -1; }
        if (n == cap) {
            int32_t *b = realloc(ids, cap * 2 * sizeof *ids);
            if (!b) { free(ids); return -1; }
            ids = b;
            cap *= 2;
        }
        ids[n++] = (int32_t)v;
        s = end;
    }
    *out = ids;
    return (long)n;
}

/* Encodes text into a new id array. */
static gpt2_err encode(const gpt2_tokenizer *tok, const char *text, size_t len, int special, int32_t **ids,
                       size_t *n, gpt2_error *err) {
    *ids = malloc((len ? len : 1) * sizeof(int32_t));
    if (!*ids) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory");
    gpt2_err rc = gpt2_tokenizer_encode(tok, text, len, special, *ids, len, n, err);
    if (rc != GPT2_OK) {
        free(*ids);
        *ids = NULL;
    }
    return rc;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Text for ids: from --ids, or --prompt encoded, or stdin encoded. */
static gpt2_err input_ids(const options *o, const gpt2_tokenizer *tok, int32_t **ids, size_t *n,
                          gpt2_error *err) {
    if (o->ids) {
        long k = parse_ids(o->ids, ids);
        if (k < 0) return gpt2_fail(err, GPT2_ERR_ARG, "--ids must be whole numbers separated by spaces");
        *n = (size_t)k;
        return GPT2_OK;
    }
    if (o->prompt) return encode(tok, o->prompt, strlen(o->prompt), o->special, ids, n, err);
    size_t len;
    char *text = read_stdin(&len);
    if (!text) return gpt2_fail(err, GPT2_ERR_NOMEM, "out of memory reading stdin");
    gpt2_err rc = encode(tok, text, len, o->special, ids, n, err);
    free(text);
    return rc;
}

/* generate: draft (may be NULL) proposes tokens for speculative decoding. */
static int cmd_generate(const options *o, const gpt2_weights *w, const gpt2_tokenizer *tok, const gpt2_weights *draft) {
    gpt2_error err;
    int32_t *ids = NULL;
    size_t n = 0;
    const char *prompt = o->prompt ? o->prompt : "";
    if (encode(tok, prompt, strlen(prompt), o->special, &ids, &n, &err) != GPT2_OK) return fail("prompt", &err);
    gpt2_generator *g = NULL;
    gpt2_session *ds = NULL;
    double t0 = now_seconds();
    if (gpt2_generator_create(w, tok, &o->gen, ids, n, &g, &err) != GPT2_OK ||
        (draft && (gpt2_session_create(draft, GPT2_SPECULATIVE_MAX_K, &ds, &err) != GPT2_OK ||
                   gpt2_generator_set_draft(g, ds, o->draft_tokens, &err) != GPT2_OK))) {
        gpt2_generator_free(g);
        gpt2_session_free(ds);
        free(ids);
        return fail(draft && g ? "draft" : NULL, &err);
    }
    if (gpt2_generator_truncated(g))
        fprintf(stderr, "warning: the prompt was longer than the context: its first %d tokens were dropped\n",
                gpt2_generator_truncated(g));
    fputs(prompt, stdout);
    fflush(stdout);
    double t_first = 0;
    gpt2_piece piece;
    int status = 0;
    for (;;) {
        if (gpt2_generator_next(g, &piece, &err) != GPT2_OK) {
            status = fail(NULL, &err);
            break;
        }
        if (t_first == 0) t_first = now_seconds();
        fwrite(piece.text, 1, piece.len, stdout);
        fflush(stdout);
        if (piece.stop != GPT2_STOP_NONE) break;
    }
    double t1 = now_seconds();
    fputc('\n', stdout);
    fflush(stdout);
    if (o->stats && status == 0) {
        int k = gpt2_generator_count(g);
        fprintf(stderr, "prompt %d tokens, generated %d tokens, stop: %s, first token %.3f s, %.1f tokens/s after it\n",
                gpt2_generator_prompt_tokens(g), k, gpt2_stop_reason_name(piece.stop), t_first - t0,
                k > 1 ? (k - 1) / (t1 - t_first) : 0.0);
        if (draft) {
            int proposed = gpt2_generator_draft_proposed(g), accepted = gpt2_generator_draft_accepted(g);
            fprintf(stderr, "draft: %d of %d proposed tokens accepted (%.1f%%)\n", accepted, proposed,
                    proposed ? 100.0 * accepted / proposed : 0.0);
        }
    }
    gpt2_generator_free(g);
    gpt2_session_free(ds);
    free(ids);
    return status;
}

static int cmd_tokenize(const options *o, const gpt2_tokenizer *tok) {
    gpt2_error err;
    size_t len;
    char *text = o->prompt ? NULL : read_stdin(&len);
    if (!o->prompt && !text) return fail("out of memory reading stdin", NULL);
    const char *src = o->prompt ? o->prompt : text;
    if (o->prompt) len = strlen(o->prompt);
    int32_t *ids = NULL;
    size_t n = 0;
    gpt2_err rc = encode(tok, src, len, o->special, &ids, &n, &err);
    free(text);
    if (rc != GPT2_OK) return fail(NULL, &err);
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
    free(ids);
    return 0;
}

static int cmd_detokenize(const options *o, const gpt2_tokenizer *tok) {
    gpt2_error err;
    int32_t *ids = NULL;
    long n;
    if (o->ids) {
        n = parse_ids(o->ids, &ids);
    } else {
        size_t len;
        char *text = read_stdin(&len);
        if (!text) return fail("out of memory reading stdin", NULL);
        n = parse_ids(text, &ids);
        free(text);
    }
    if (n < 0) return fail("token ids must be whole numbers separated by spaces", NULL);
    gpt2_decoder d;
    gpt2_decoder_init(&d);
    size_t cap = gpt2_decoder_max_output(tok);
    char *buf = malloc(cap);
    int status = 0;
    for (long i = 0; buf && i < n; i++) {
        size_t k = 0;
        if (gpt2_decoder_push(&d, tok, ids[i], buf, cap, &k, &err) != GPT2_OK) {
            status = fail(NULL, &err);
            break;
        }
        fwrite(buf, 1, k, stdout);
    }
    if (buf && status == 0) {
        size_t k = 0;
        gpt2_decoder_finish(&d, buf, cap, &k, NULL);
        fwrite(buf, 1, k, stdout);
    }
    if (!buf) status = fail("out of memory", NULL);
    free(buf);
    free(ids);
    return status;
}

static int cmd_logits(const options *o, const gpt2_weights *w, const gpt2_tokenizer *tok) {
    gpt2_error err;
    if (!o->ids && !o->prompt) return usage_error("logits needs --ids or --prompt%s", "");
    int32_t *ids = NULL;
    size_t n = 0;
    if (input_ids(o, tok, &ids, &n, &err) != GPT2_OK) return fail(NULL, &err);
    gpt2_state *s = NULL;
    float *logits = malloc((size_t)w->config.n_vocab * sizeof(float));
    int status = 0;
    if (!logits) status = fail("out of memory", NULL);
    else if (n == 0) status = fail("no tokens to run", NULL);
    else if (gpt2_state_create(w, n < GPT2_PREFILL_BATCH ? (int)n : GPT2_PREFILL_BATCH, &s, &err) != GPT2_OK ||
             gpt2_forward(s, ids, (int)n, logits, 0, &err) != GPT2_OK)
        status = fail(NULL, &err);
    else
        for (int i = 0; i < w->config.n_vocab; i++) printf("%.9g\n", logits[i]);
    gpt2_state_free(s);
    free(logits);
    free(ids);
    return status;
}

/* Prints bytes with control characters escaped, for one-line-per-token output. */
static void print_escaped(const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\n') fputs("\\n", stdout);
        else if (b[i] == '\t') fputs("\\t", stdout);
        else if (b[i] == '\r') fputs("\\r", stdout);
        else if (b[i] == '\\') fputs("\\\\", stdout);
        else if (b[i] < 0x20) printf("\\x%02x", b[i]);
        else fputc(b[i], stdout);
    }
}

static int cmd_score(const options *o, const gpt2_weights *w, const gpt2_tokenizer *tok) {
    gpt2_error err;
    int32_t *ids = NULL, *ranks = NULL, *top_ids = NULL;
    float *top_lp = NULL;
    size_t n = 0;
    if (input_ids(o, tok, &ids, &n, &err) != GPT2_OK) return fail(NULL, &err);
    int k = o->alternatives < w->config.n_vocab ? o->alternatives : w->config.n_vocab;
    float *lp = malloc((n ? n : 1) * sizeof(float));
    ranks = malloc((n ? n : 1) * sizeof(int32_t));
    if (k > 0) {
        top_ids = malloc((n ? n : 1) * (size_t)k * sizeof(int32_t));
        top_lp = malloc((n ? n : 1) * (size_t)k * sizeof(float));
    }
    int status = 0;
    if (!lp || !ranks || (k > 0 && (!top_ids || !top_lp))) status = fail("out of memory", NULL);
    else if (gpt2_score_topk(w, ids, n, k, lp, ranks, top_ids, top_lp, &err) != GPT2_OK) status = fail(NULL, &err);
    else {
        double total = 0;
        /* With --alternatives K a sixth column lists ID(LOGPROB) of the K most likely tokens. */
        printf("index\tid\tlogprob\trank\ttoken%s\n", k > 0 ? "\talternatives" : "");
        for (size_t t = 0; t < n; t++) {
            const uint8_t *b;
            size_t len;
            gpt2_tokenizer_token_bytes(tok, ids[t], &b, &len, NULL);
            if (t == 0) printf("0\t%d\t\t\t", (int)ids[0]);
            else {
                printf("%zu\t%d\t%.6f\t%d\t", t, (int)ids[t], lp[t - 1], (int)ranks[t - 1]);
                total += lp[t - 1];
            }
            print_escaped(b, len);
            if (k > 0) {
                printf("\t");
                for (int j = 0; t > 0 && j < k; j++)
                    printf("%s%d(%.6f)", j ? " " : "", (int)top_ids[(t - 1) * (size_t)k + j],
                           top_lp[(t - 1) * (size_t)k + j]);
            }
            printf("\n");
        }
        if (n > 1)
            printf("tokens %zu, total logprob %.6f, perplexity %.4f\n", n, total, exp(-total / (double)(n - 1)));
    }
    free(lp);
    free(ranks);
    free(top_ids);
    free(top_lp);
    free(ids);
    return status;
}

static int cmd_info(const options *o, const gpt2_weights *w, const gpt2_tokenizer *tok) {
    const gpt2_config *c = &w->config;
    unsigned long long params = (unsigned long long)w->n_params;
    printf("model        %s\n", o->model_dir);
    printf("n_layer      %d\nn_head       %d\nn_embd       %d\nn_ctx        %d\nn_vocab      %d\nn_inner      %d\n",
           c->n_layer, c->n_head, c->n_embd, c->n_ctx, c->n_vocab, c->n_inner);
    printf("ln_eps       %g\n", (double)c->ln_eps);
    printf("lm_head      %s\n", w->tied_head ? "tied to wte" : "separate");
    printf("parameters   %llu\n", params);
    printf("precision    %s (", gpt2_dtype_name(gpt2_weights_main_dtype(w)));
    for (int k = 0; k < GPT2_MAT_KINDS; k++) {
        if (k == GPT2_MAT_LM_HEAD && w->tied_head) continue;
        printf("%s%s %s", k ? ", " : "", gpt2_matrix_kind_name((gpt2_matrix_kind)k), gpt2_dtype_name(w->plan.dtype[k]));
    }
    printf(")\n");
    printf("             %s\n", w->precision_reason);
    printf("weights      %.1f MiB (%llu bytes)\n", (double)gpt2_weights_plan_bytes(c, &w->plan) / 1048576.0,
           (unsigned long long)gpt2_weights_plan_bytes(c, &w->plan));
    printf("kv cache     %.1f MiB (+ scratch, full context)\n", (double)gpt2_state_bytes(c, 1) / 1048576.0);
    printf("tokenizer    %zu tokens, <|endoftext|> = %d\n", gpt2_tokenizer_vocab_size(tok), (int)gpt2_tokenizer_eot_id(tok));
    return 0;
}

/* out = dir + "/" + name (name NULL: dir alone); 0 when it does not fit in cap bytes. */
static int path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = name ? snprintf(out, cap, "%s/%s", dir, name) : snprintf(out, cap, "%s", dir);
    return n >= 0 && (size_t)n < cap;
}

int gpt2_cli_copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int ok = a && b;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a && ferror(a)) ok = 0;
    if (a) fclose(a);
    if (b && fclose(b)) ok = 0;
    return ok;
}

/* gpt2 quantize IN OUT --type q8_0|f16 */
static int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--type")) {
            if (i + 1 >= argc) return usage_error("option %s needs a value", "--type");
            type = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("unknown option '%s'", argv[i]);
        } else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else return usage_error("unexpected argument '%s'", argv[i]);
    }
    if (!in || !out) return usage_error("quantize needs IN and OUT%s", "");
    if (!type) return usage_error("quantize needs --type q8_0 or --type f16%s", "");
    gpt2_dtype t;
    if (!strcmp(type, "q8_0")) t = GPT2_DTYPE_Q8_0;
    else if (!strcmp(type, "f16")) t = GPT2_DTYPE_F16;
    else return usage_error("--type must be q8_0 or f16, got '%s'", type);
    struct stat st;
    int dir = stat(in, &st) == 0 && S_ISDIR(st.st_mode);
    char in_path[4096], out_path[4096], summary[256];
    gpt2_error err;
    if (dir) {
        static const char *const small[] = {"config.json", "vocab.json", "merges.txt"};
        if (mkdir(out, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "gpt2: cannot create %s: %s\n", out, strerror(errno));
            return 1;
        }
        for (int k = 0; k < 4; k++) {
            const char *name = k < 3 ? small[k] : "model.safetensors";
            if (!path_join(in_path, sizeof in_path, in, name) || !path_join(out_path, sizeof out_path, out, name))
                return usage_error("path too long: '%s'", strlen(in) > strlen(out) ? in : out);
            if (k < 3 && !gpt2_cli_copy_file(in_path, out_path)) {
                fprintf(stderr, "gpt2: cannot copy %s to %s\n", in_path, out_path);
                return 1;
            }
        }
    } else if (!path_join(in_path, sizeof in_path, in, NULL) || !path_join(out_path, sizeof out_path, out, NULL)) {
        return usage_error("path too long: '%s'", strlen(in) > strlen(out) ? in : out);
    }
    if (gpt2_quantize_file(in_path, out_path, t, summary, sizeof summary, &err) != GPT2_OK) return fail(NULL, &err);
    fprintf(stderr, "wrote %s: %s\n", out_path, summary);
    return 0;
}


int main(int argc, char **argv) {
    options o;
    if (argc >= 2 && !strcmp(argv[1], "quantize")) return cmd_quantize(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "bench")) return gpt2_cli_bench(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "finetune")) return gpt2_cli_finetune(argc, argv);
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    const char *known[] = {"generate", "tokenize", "detokenize", "logits", "score", "info"};
    int ok = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= !strcmp(o.command, known[i]);
    if (!ok) return usage_error("unknown command '%s'", o.command);
    if (o.draft_dir && strcmp(o.command, "generate")) return usage_error("--draft applies to generate only%s", "");
    if (o.draft_options && !o.draft_dir)
        return usage_error("--draft-precision and --draft-tokens need --draft%s", "");

    gpt2_error err;
    gpt2_tokenizer *tok = NULL;
    if (gpt2_tokenizer_load(o.model_dir, &tok, &err) != GPT2_OK) return fail(NULL, &err);
    if (!strcmp(o.command, "tokenize") || !strcmp(o.command, "detokenize")) {
        rc = !strcmp(o.command, "tokenize") ? cmd_tokenize(&o, tok) : cmd_detokenize(&o, tok);
        gpt2_tokenizer_free(tok);
        return rc;
    }
    gpt2_pool *pool = NULL; /* converts while loading; every forward pass on w uses it */
    if (gpt2_pool_create(o.threads, &pool, &err) != GPT2_OK) {
        gpt2_tokenizer_free(tok);
        return fail(NULL, &err);
    }
    gpt2_weights *w = NULL;
    o.load.pool = pool;
    if (gpt2_load_dir(o.model_dir, &o.load, &w, &err) != GPT2_OK) {
        gpt2_pool_free(pool);
        gpt2_tokenizer_free(tok);
        return fail(NULL, &err);
    }
    /* 'auto' took a smaller precision than the file's (loader.h): say so */
    if (strstr(w->precision_reason, ", because ")) fprintf(stderr, "gpt2: precision %s\n", w->precision_reason);
    w->pool = pool;
    gpt2_weights *draft = NULL;
    if (o.draft_dir) {
        if (gpt2_load_dir(o.draft_dir, &o.draft_load, &draft, &err) != GPT2_OK) {
            gpt2_weights_free(w);
            gpt2_pool_free(pool);
            gpt2_tokenizer_free(tok);
            return fail("draft", &err);
        }
        draft->pool = pool;
    }
    if (!strcmp(o.command, "generate")) rc = cmd_generate(&o, w, tok, draft);
    else if (!strcmp(o.command, "logits")) rc = cmd_logits(&o, w, tok);
    else if (!strcmp(o.command, "score")) rc = cmd_score(&o, w, tok);
    else rc = cmd_info(&o, w, tok);
    gpt2_weights_free(w);
    gpt2_weights_free(draft);
    gpt2_pool_free(pool);
    gpt2_tokenizer_free(tok);
    return rc;
}
