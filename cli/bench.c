/* bench.c - `gpt2 bench`: the native rows of the benchmark (npm run bench prints the
 * whole table, WebAssembly rows included, and uses this command for its native rows).
 * One file of about 650 lines: the table (and its cached checkpoints), the rows it runs in
 * child processes (`--row`) and the speculative comparison share options and output formats.
 *
 *   gpt2 bench [--model DIR] [--builds native,native-mt] [--precisions f32,f16,q8_0]
 *              [--quick | --smoke] [--json]
 *
 * Without --model it uses (and makes once) a random GPT-2 124M-shape checkpoint in
 * .bench-cache/ of this checkout: gpt2-124m-f32 written by tools/gpt2_reference.py (python3 +
 * torch), and its f16 / q8_0 copies written by `gpt2 quantize`; each precision then loads its
 * own file. With --model DIR every precision loads DIR, converting while loading.
 *
 * Each configuration is measured in a fresh child process (`gpt2 bench --row ...`, one JSON
 * line), so its peak RSS (VmHWM) is its own. What a row measures (greedy decoding, fixed
 * prompt, warm-up first, medians of --runs):
 *   load s         gpt2_load_dir + tokenizer + thread pool
 *   prefill        one gpt2_forward call over the prompt (128 and 512 tokens), tokens/s
 *   decode         a generator (128 new tokens after a 128-token prompt): tokens/s after the
 *                  first token; time to first token = generator creation to the first token
 *   decode @ctx    single-token steps at 900 tokens of context, tokens/s
 *   stream         time to read every byte of the weights once (the thread pool splits the
 *                  bytes; the best of runs + 4 reads), and decode's share of that roofline:
 *                  stream time / decode time per token
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "generate.h"
#include "kernels.h"
#include "loader.h"
#include "model.h"
#include "pool.h"
#include "quantize.h"
#include "roofline.h"
#include "sampler.h"
#include "tokenizer.h"
#include "weights.h"

#ifndef GPT2_DEFAULT_MODEL_DIR
#define GPT2_DEFAULT_MODEL_DIR "models"
#endif

typedef struct bench_sizes {
    int p1, p2;   /* prefill prompt lengths */
    int dec;      /* new tokens of the decode run (after a p1-token prompt) */
    int ctx;      /* context of the long-context decode */
    int steps;    /* decode steps timed at ctx */
    int runs;     /* median of */
} bench_sizes;

static const bench_sizes SIZES_FULL = {128, 512, 128, 900, 32, 3};
static const bench_sizes SIZES_QUICK = {32, 128, 16, 256, 8, 1};
static const bench_sizes SIZES_SMOKE = {8, 16, 6, 40, 4, 1};

/* The fixed prompt (repeated as needed). */
static const char PROMPT[] =
    "The history of the written word goes back almost six thousand years. Scribes in ancient "
    "Mesopotamia pressed wedge-shaped marks into wet clay, and merchants used those tablets to "
    "count grain, sheep and silver. Over the centuries the marks became signs for sounds, and "
    "the signs became alphabets that traveled along trade routes from one sea to another. ";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Peak resident set (VmHWM) in bytes, 0 if unknown. */
static double peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtod(line + 6, NULL);
    if (f) fclose(f);
    return kb * 1024.0;
}

/* ---- one configuration (the child process) ---- */

static int row_fail(const char *what, const gpt2_error *e) {
    printf("{\"error\":\"%s%s%s\"}\n", what, e ? ": " : "", e ? e->message : "");
    return 1;
}

static int run_row(const char *dir, gpt2_precision precision, int threads, const bench_sizes *z) {
    gpt2_error err;
    gpt2_loader_options lo = {0};
    lo.precision = precision;
    gpt2_tokenizer *tok = NULL;
    gpt2_weights *w = NULL;
    gpt2_pool *pool = NULL;
    double t0 = now_s();
    if (gpt2_tokenizer_load(dir, &tok, &err) != GPT2_OK) return row_fail("tokenizer", &err);
    if (gpt2_pool_create(threads, &pool, &err) != GPT2_OK) return row_fail("pool", &err);
    lo.pool = pool;
    if (gpt2_load_dir(dir, &lo, &w, &err) != GPT2_OK) return row_fail("load", &err);
    w->pool = pool;
    double load_s = now_s() - t0;

    const gpt2_config *c = &w->config;
    int need = z->p2 > z->ctx + z->steps ? z->p2 : z->ctx + z->steps;
    if (need > c->n_ctx || z->p1 + z->dec > c->n_ctx) {
        printf("{\"error\":\"the model's context (%d) is shorter than the benchmark needs (%d)\"}\n", c->n_ctx, need);
        return 1;
    }
    /* prompt ids: the fixed text, repeated until long enough */
    size_t n_ids = 0;
    int32_t *ids = NULL;
    for (size_t reps = 2;; reps *= 2) {
        size_t len = strlen(PROMPT) * reps;
        char *text = malloc(len + 1);
        free(ids);
        ids = malloc(len * sizeof *ids);
        if (!text || !ids) return row_fail("out of memory", NULL);
        for (size_t r = 0; r < reps; r++) memcpy(text + r * strlen(PROMPT), PROMPT, strlen(PROMPT));
        text[len] = '\0';
        if (gpt2_tokenizer_encode(tok, text, len, 0, ids, len, &n_ids, &err) != GPT2_OK) return row_fail("prompt", &err);
        free(text);
        if ((int)n_ids >= need && (int)n_ids >= z->p1) break;
    }
    float *logits = malloc((size_t)c->n_vocab * sizeof(float));
    gpt2_state *s = NULL;
    if (!logits) return row_fail("out of memory", NULL);
    if (gpt2_state_create(w, 64, &s, &err) != GPT2_OK) return row_fail("state", &err);
    double v[16];
    int R = z->runs < 1 ? 1 : z->runs > 16 ? 16 : z->runs;

    /* warm-up: a short prefill and a few decode steps, and one stream */
    uint32_t check = gpt2_weights_stream(w);
    if (gpt2_forward(s, ids, 16 < z->p1 ? 16 : z->p1, logits, 0, &err) != GPT2_OK) return row_fail("forward", &err);
    for (int i = 0; i < 3; i++)
        if (gpt2_forward(s, &ids[i], 1, logits, 0, &err) != GPT2_OK) return row_fail("forward", &err);

    /* roofline */
    double stream_s = 1e30; /* the roofline: the best of several reads */
    for (int r = 0; r < R + 4; r++) {
        double a = now_s();
        check += gpt2_weights_stream(w);
        if (now_s() - a < stream_s) stream_s = now_s() - a;
    }

    /* prefill */
    double pre[2];
    int plen[2] = {z->p1, z->p2};
    for (int k = 0; k < 2; k++) {
        for (int r = 0; r < R; r++) {
            gpt2_state_rewind(s, 0, NULL);
            double a = now_s();
            if (gpt2_forward(s, ids, plen[k], logits, 0, &err) != GPT2_OK) return row_fail("prefill", &err);
            v[r] = now_s() - a;
        }
        pre[k] = plen[k] / median(v, R);
    }

    /* decode: the generator (greedy), dec new tokens after a p1-token prompt */
    double ttft[16];
    for (int r = 0; r < R; r++) {
        gpt2_generate_params gp;
        gpt2_generate_params_default(&gp);
        gp.sampler.temperature = 0;
        gp.max_new_tokens = z->dec;
        gp.ignore_eot = 1;
        gpt2_generator *g = NULL;
        gpt2_piece piece;
        double a = now_s(), first = 0;
        if (gpt2_generator_create(w, tok, &gp, ids, (size_t)z->p1, &g, &err) != GPT2_OK) return row_fail("generate", &err);
        int got = 0;
        for (;;) {
            if (gpt2_generator_next(g, &piece, &err) != GPT2_OK) return row_fail("generate", &err);
            if (piece.id >= 0 && ++got == 1) first = now_s();
            if (piece.stop != GPT2_STOP_NONE) break;
        }
        double b = now_s();
        gpt2_generator_free(g);
        ttft[r] = first - a;
        v[r] = got > 1 ? (got - 1) / (b - first) : 0;
    }
    double decode_tps = median(v, R), ttft_s = median(ttft, R);

    /* decode at ctx tokens of context: single steps */
    gpt2_state_rewind(s, 0, NULL);
    if (gpt2_forward(s, ids, z->ctx, logits, 0, &err) != GPT2_OK) return row_fail("prefill", &err);
    int next = gpt2_argmax(logits, c->n_vocab);
    for (int r = 0; r < R; r++) {
        gpt2_state_rewind(s, z->ctx, NULL);
        double a = now_s();
        for (int i = 0; i < z->steps; i++) {
            int32_t t = next;
            if (gpt2_forward(s, &t, 1, logits, 0, &err) != GPT2_OK) return row_fail("decode", &err);
            next = gpt2_argmax(logits, c->n_vocab);
        }
        v[r] = z->steps / (now_s() - a);
    }
    double decode_ctx_tps = median(v, R);

    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    double file_bytes = stat(path, &st) == 0 ? (double)st.st_size : 0;
    printf("{\"threads\":%d,\"precision\":\"%s\",\"load_s\":%.4f,\"prefill1_tps\":%.3f,"
           "\"prefill2_tps\":%.3f,\"decode_tps\":%.3f,\"decode_ctx_tps\":%.3f,\"ttft_s\":%.5f,"
           "\"rss_bytes\":%.0f,\"stream_s\":%.6f,\"weights_bytes\":%.0f,\"file_bytes\":%.0f,\"checksum\":%u}\n",
           gpt2_pool_threads(pool), gpt2_dtype_name(gpt2_weights_main_dtype(w)), load_s, pre[0], pre[1], decode_tps,
           decode_ctx_tps, ttft_s, peak_rss_bytes(), stream_s, (double)w->arena_bytes, file_bytes, (unsigned)check);
    fflush(stdout);
    gpt2_state_free(s);
    free(logits);
    free(ids);
    gpt2_weights_free(w);
    gpt2_pool_free(pool);
    gpt2_tokenizer_free(tok);
    return 0;
}


/* ---- gpt2 bench --speculative: greedy decode with and without a draft ----
 *
 *   gpt2 bench --speculative --model BIG [--precision P] --draft DIR [--draft-precision P]
 *              [--draft-tokens K1,K2,...] [--threads N] [--runs R] [--tokens T]
 *
 * In one process (the weights load once), R rounds each run the plain generator, then one
 * generator per K with the draft (T new greedy tokens after the fixed prompt, <|endoftext|>
 * ignored), so a busy machine slows both alike. Prints one JSON line: load times, the plain
 * tokens/s (median), and per K the tokens/s (median), the median of the per-round ratios to
 * the plain run, the acceptance, and whether every run's tokens equal the plain run's (they
 * must: greedy speculative decoding is exact). scripts/bench/speculative.mjs runs it for the
 * rows of BENCHMARKS.md. */
#define SPEC_MAX_K 8   /* draft token counts per invocation */
#define SPEC_MAX_RUNS 16

static int spec_fail(const char *what, const gpt2_error *e) {
    printf("{\"error\":\"%s%s%s\"}\n", what, e ? ": " : "", e ? e->message : "");
    return 1;
}

/* One greedy generation of `tokens` new tokens (draft NULL: none) into out; its tokens/s
 * (first token to last) into *tps, the draft's counts into *proposed / *accepted. */
static int spec_run(const gpt2_weights *w, const gpt2_tokenizer *tok, const int32_t *ids, size_t n_ids,
                    const gpt2_weights *draft, int k, int tokens, int32_t *out, double *tps, int *proposed,
                    int *accepted, gpt2_error *err) {
    gpt2_generate_params gp;
    gpt2_generate_params_default(&gp);
    gp.sampler.temperature = 0;
    gp.max_new_tokens = tokens;
    gp.ignore_eot = 1;
    gpt2_generator *g = NULL;
    gpt2_session *ds = NULL;
    int rc = 0;
    if (gpt2_generator_create(w, tok, &gp, ids, n_ids, &g, err) != GPT2_OK) return 1;
    if (draft && (gpt2_session_create(draft, 16, &ds, err) != GPT2_OK || gpt2_generator_set_draft(g, ds, k, err) != GPT2_OK))
        rc = 1;
    int got = 0;
    double first = 0;
    gpt2_piece piece;
    while (!rc) {
        if (gpt2_generator_next(g, &piece, err) != GPT2_OK) {
            rc = 1;
            break;
        }
        if (piece.id >= 0) {
            out[got++] = piece.id;
            if (got == 1) first = now_s();
        }
        if (piece.stop != GPT2_STOP_NONE) break;
    }
    double end = now_s();
    *tps = got > 1 ? (got - 1) / (end - first) : 0.0;
    *proposed = gpt2_generator_draft_proposed(g);
    *accepted = gpt2_generator_draft_accepted(g);
    gpt2_generator_free(g);
    gpt2_session_free(ds);
    return rc;
}

static int bench_speculative(const char *model, const char *precision, const char *draft_dir,
                               const char *draft_precision, const char *ks, int threads, int runs, int tokens) {
    gpt2_error err;
    gpt2_loader_options lo = {0}, dlo = {0};
    if (!model || !draft_dir) return spec_fail("--speculative needs --model and --draft", NULL);
    if (gpt2_precision_parse(precision, &lo.precision, &err) != GPT2_OK) return spec_fail("precision", &err);
    if (gpt2_precision_parse(draft_precision, &dlo.precision, &err) != GPT2_OK) return spec_fail("draft precision", &err);
    int k[SPEC_MAX_K], nk = 0;
    for (const char *p = ks; *p && nk < SPEC_MAX_K;) {
        long v;
        char item[16];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item) return spec_fail("--draft-tokens needs K1,K2,... from 1 to 16", NULL);
        memcpy(item, p, len);
        item[len] = '\0';
        if (!gpt2_cli_parse_long(item, 1, GPT2_SPECULATIVE_MAX_K, &v))
            return spec_fail("--draft-tokens needs K1,K2,... from 1 to 16", NULL);
        k[nk++] = (int)v;
        p += len + (p[len] == ',');
    }
    if (nk == 0) return spec_fail("--draft-tokens needs K1,K2,... from 1 to 16", NULL);
    if (runs < 1) runs = 3;
    if (runs > SPEC_MAX_RUNS) runs = SPEC_MAX_RUNS;
    if (tokens < 2) tokens = 64;

    gpt2_tokenizer *tok = NULL;
    gpt2_weights *w = NULL, *d = NULL;
    gpt2_pool *pool = NULL;
    double t0 = now_s();
    if (gpt2_tokenizer_load(model, &tok, &err) != GPT2_OK) return spec_fail("tokenizer", &err);
    if (gpt2_load_dir(model, &lo, &w, &err) != GPT2_OK) return spec_fail("load", &err);
    double load_s = now_s() - t0;
    t0 = now_s();
    if (gpt2_load_dir(draft_dir, &dlo, &d, &err) != GPT2_OK) return spec_fail("draft", &err);
    double draft_load_s = now_s() - t0;
    if (gpt2_pool_create(threads, &pool, &err) != GPT2_OK) return spec_fail("pool", &err);
    w->pool = d->pool = pool;
    int32_t ids[sizeof PROMPT]; /* at most one id per byte */
    size_t n_ids = 0;
    if (gpt2_tokenizer_encode(tok, PROMPT, strlen(PROMPT), 0, ids, sizeof PROMPT, &n_ids, &err) != GPT2_OK)
        return spec_fail("prompt", &err);
    if ((int)n_ids + tokens > w->config.n_ctx) n_ids = (size_t)(w->config.n_ctx - tokens > 1 ? w->config.n_ctx - tokens : 1);
    int32_t *plain = malloc((size_t)tokens * sizeof *plain), *out = malloc((size_t)tokens * sizeof *out);
    if (!plain || !out) return spec_fail("out of memory", NULL);

    double plain_tps[SPEC_MAX_RUNS], tps[SPEC_MAX_K][SPEC_MAX_RUNS], ratio[SPEC_MAX_K][SPEC_MAX_RUNS];
    long prop[SPEC_MAX_K] = {0}, acc[SPEC_MAX_K] = {0};
    int same[SPEC_MAX_K];
    for (int j = 0; j < nk; j++) same[j] = 1;
    int pr, ac;
    /* warm-up: one short plain run (page cache, thread pool) */
    if (spec_run(w, tok, ids, n_ids, NULL, 0, 4, out, &plain_tps[0], &pr, &ac, &err)) return spec_fail("generate", &err);
    for (int r = 0; r < runs; r++) {
        if (spec_run(w, tok, ids, n_ids, NULL, 0, tokens, plain, &plain_tps[r], &pr, &ac, &err))
            return spec_fail("generate", &err);
        for (int j = 0; j < nk; j++) {
            if (spec_run(w, tok, ids, n_ids, d, k[j], tokens, out, &tps[j][r], &pr, &ac, &err))
                return spec_fail("generate with the draft", &err);
            same[j] &= memcmp(out, plain, (size_t)tokens * sizeof *out) == 0;
            prop[j] += pr;
            acc[j] += ac;
            ratio[j][r] = tps[j][r] / plain_tps[r];
        }
    }
    printf("{\"threads\":%d,\"precision\":\"%s\",\"draft_precision\":\"%s\",\"load_s\":%.3f,\"draft_load_s\":%.3f,"
           "\"tokens\":%d,\"runs\":%d,\"plain_tps\":%.4f,\"draft\":[",
           gpt2_pool_threads(pool), gpt2_dtype_name(gpt2_weights_main_dtype(w)),
           gpt2_dtype_name(gpt2_weights_main_dtype(d)), load_s, draft_load_s, tokens, runs,
           median(plain_tps, runs));
    for (int j = 0; j < nk; j++)
        printf("%s{\"k\":%d,\"tps\":%.4f,\"ratio\":%.4f,\"proposed\":%ld,\"accepted\":%ld,\"same\":%s}", j ? "," : "",
               k[j], median(tps[j], runs), median(ratio[j], runs), prop[j], acc[j],
               same[j] ? "true" : "false");
    printf("]}\n");
    fflush(stdout);
    free(plain);
    free(out);
    gpt2_weights_free(w);
    gpt2_weights_free(d);
    gpt2_pool_free(pool);
    gpt2_tokenizer_free(tok);
    return 0;
}

/* ---- the parent: checkpoint, children, table ---- */

/* This checkout's root (the parent of the default model folder). */
static void repo_root(char *out, size_t cap) {
    snprintf(out, cap, "%s", GPT2_DEFAULT_MODEL_DIR);
    char *slash = strrchr(out, '/');
    if (slash) *slash = '\0';
    else snprintf(out, cap, ".");
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int copy_small(const char *from_dir, const char *to_dir, const char *name) {
    char a[4096], b[4096];
    int n = snprintf(a, sizeof a, "%s/%s", from_dir, name), m = snprintf(b, sizeof b, "%s/%s", to_dir, name);
    return n > 0 && (size_t)n < sizeof a && m > 0 && (size_t)m < sizeof b && gpt2_cli_copy_file(a, b);
}

/* Makes .bench-cache/gpt2-124m-f32 (python3 + torch) if missing; 0 on success. */
static int ensure_f32(const char *root, const char *cache, const char *f32dir) {
    if (is_dir(f32dir)) return 0;
    if (system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr,
                "gpt2 bench: no checkpoint given and none in %s; python3 with torch is needed to make one:\n"
                "  /usr/bin/python3 %s/tools/gpt2_reference.py make --out %s --layers 12 --embd 768 --heads 12 "
                "--ctx 1024 --vocab-from %s/models --std 0.02 --seed 1\n"
                "or pass --model DIR (a Hugging Face GPT-2 folder, e.g. from `npx gpt2-wasm download gpt2`)\n",
                cache, root, f32dir, root);
        return 1;
    }
    mkdir(cache, 0777);
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 '%s/tools/gpt2_reference.py' make --out '%s.tmp' --layers 12 --embd 768 --heads 12 "
             "--ctx 1024 --vocab-from '%s/models' --std 0.02 --seed 1 >&2 && mv '%s.tmp' '%s'",
             root, f32dir, root, f32dir, f32dir);
    fprintf(stderr, "gpt2 bench: making a random GPT-2 124M-shape checkpoint in %s (once)\n", f32dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "gpt2 bench: making the checkpoint failed\n");
        return 1;
    }
    return 0;
}

/* Makes the f16 / q8_0 copy of f32dir (gpt2 quantize) if missing; 0 on success. */
static int ensure_copy(const char *f32dir, const char *dir, gpt2_dtype t) {
    if (is_dir(dir)) return 0;
    char tmp[4096], in[4200], out[4200], summary[256];
    gpt2_error err;
    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return 1;
    if (!copy_small(f32dir, tmp, "config.json") || !copy_small(f32dir, tmp, "vocab.json") ||
        !copy_small(f32dir, tmp, "merges.txt"))
        return 1;
    snprintf(in, sizeof in, "%s/model.safetensors", f32dir);
    snprintf(out, sizeof out, "%s/model.safetensors", tmp);
    fprintf(stderr, "gpt2 bench: writing %s (once)\n", dir);
    if (gpt2_quantize_file(in, out, t, summary, sizeof summary, &err) != GPT2_OK) {
        fprintf(stderr, "gpt2 bench: %s\n", err.message);
        return 1;
    }
    return rename(tmp, dir) != 0;
}

/* Runs `gpt2 bench --row ...` in a child; its stdout line into out. 0 on success. */
static int run_child(const char *self, const char *dir, const char *precision, int threads, const bench_sizes *z,
                     char *out, size_t cap) {
    char th[16], sz[96];
    snprintf(th, sizeof th, "%d", threads);
    snprintf(sz, sizeof sz, "%d,%d,%d,%d,%d,%d", z->p1, z->p2, z->dec, z->ctx, z->steps, z->runs);
    char *args[] = {(char *)self, "bench", "--row", "--model", (char *)dir, "--precision", (char *)precision,
                    "--threads", th, "--sizes", sz, NULL};
    int fd[2];
    if (pipe(fd) != 0) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(self, args);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(fd[0], out + n, cap - 1 - n)) > 0) n += (size_t)k;
    out[n] = '\0';
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static double num(const char *json, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(json, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}

/* 3 significant digits at most, whole numbers from 100 on. */
static void fmt_sig(char *out, double v) {
    if (v >= 100) snprintf(out, 32, "%.0f", v);
    else if (v >= 10) snprintf(out, 32, "%.1f", v);
    else if (v >= 1) snprintf(out, 32, "%.2f", v);
    else snprintf(out, 32, "%.3g", v);
}

static void print_header(const bench_sizes *z) {
    printf("| build | threads | precision | file MB | load s | prefill %d tok/s | prefill %d tok/s | decode tok/s "
           "(%d new after %d) | decode tok/s @%d ctx | first token ms (%d prompt) | peak RSS MB | RSS / file | "
           "stream weights ms | decode %% of roofline |\n",
           z->p1, z->p2, z->dec, z->p1, z->ctx, z->p1);
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static int usage_bench(void) {
    fputs("usage: gpt2 bench [--model DIR] [--builds native,native-mt] [--precisions f32,f16,q8_0] [--quick | --smoke]\n"
          "                  [--runs N] [--json]\n"
          "       gpt2 bench --speculative --model BIG [--precision P] --draft DIR [--draft-precision P]\n"
          "                  [--draft-tokens K1,K2,...] [--threads N] [--runs R] [--tokens T]\n"
          "  the native rows of the benchmark (npm run bench prints the WebAssembly rows too; see BENCHMARKS.md).\n"
          "  Without --model: a random GPT-2 124M-shape checkpoint made once in .bench-cache/ (python3 + torch),\n"
          "  and its f16 / q8_0 copies; --smoke: tests/fixtures/tiny-f32 and tiny sizes.\n"
          "  --speculative: greedy decode with and without the draft, alternated, one JSON line\n"
          "  (scripts/bench/speculative.mjs).\n",
          stdout);
    return 0;
}

int gpt2_cli_bench(int argc, char **argv) {
    const char *model = NULL, *builds = "native", *precisions = "f32,f16,q8_0", *precision = "auto";
    int row = 0, json = 0, threads = 1, runs = 0, speculative = 0, spec_tokens = 64;
    const char *draft = NULL, *draft_precision = "q8_0", *draft_tokens = "4";
    bench_sizes z = SIZES_FULL;
    int smoke = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--row")) row = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--speculative")) speculative = 1;
        else if (!strcmp(a, "--quick")) z = SIZES_QUICK;
        else if (!strcmp(a, "--smoke")) z = SIZES_SMOKE, smoke = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage_bench();
        else if (!v) {
            fprintf(stderr, "gpt2: unknown option or missing value '%s' (see gpt2 bench --help)\n", a);
            return 2;
        } else {
            i++;
            if (!strcmp(a, "--model")) model = v;
            else if (!strcmp(a, "--builds")) builds = v;
            else if (!strcmp(a, "--precisions")) precisions = v;
            else if (!strcmp(a, "--precision")) precision = v;
            else if (!strcmp(a, "--threads")) threads = atoi(v);
            else if (!strcmp(a, "--runs")) runs = atoi(v);
            else if (!strcmp(a, "--draft")) draft = v;
            else if (!strcmp(a, "--draft-precision")) draft_precision = v;
            else if (!strcmp(a, "--draft-tokens")) draft_tokens = v;
            else if (!strcmp(a, "--tokens")) spec_tokens = atoi(v);
            else if (!strcmp(a, "--sizes")) {
                if (sscanf(v, "%d,%d,%d,%d,%d,%d", &z.p1, &z.p2, &z.dec, &z.ctx, &z.steps, &z.runs) != 6) {
                    fprintf(stderr, "gpt2: --sizes needs P1,P2,DEC,CTX,STEPS,RUNS\n");
                    return 2;
                }
            } else {
                fprintf(stderr, "gpt2: unknown option '%s' (see gpt2 bench --help)\n", a);
                return 2;
            }
        }
    }
    if (speculative)
        return bench_speculative(model, precision, draft, draft_precision, draft_tokens, threads, runs, spec_tokens);
    if (runs > 0) z.runs = runs;
    if (row) {
        gpt2_precision p;
        gpt2_error err;
        if (!model) model = GPT2_DEFAULT_MODEL_DIR;
        if (gpt2_precision_parse(precision, &p, &err) != GPT2_OK) return row_fail("precision", &err);
        return run_row(model, p, threads, &z);
    }

    char root[2048], cache[2100], dirs[3][2200];
    const char *names[3] = {"f32", "f16", "q8_0"};
    repo_root(root, sizeof root);
    snprintf(cache, sizeof cache, "%s/.bench-cache", root);
    int own_files = 0;
    if (!model && smoke) {
        static char fixture[2150];
        snprintf(fixture, sizeof fixture, "%s/tests/fixtures/tiny-f32", root);
        model = fixture;
    }
    if (!model) {
        own_files = 1;
        for (int k = 0; k < 3; k++) snprintf(dirs[k], sizeof dirs[k], "%s/gpt2-124m-%s", cache, names[k]);
        if (ensure_f32(root, cache, dirs[0])) return 1;
    } else {
        for (int k = 0; k < 3; k++) snprintf(dirs[k], sizeof dirs[k], "%s", model);
    }

    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) snprintf(self, sizeof self, "%s", argv[0]);
    else self[sl] = '\0';

    if (json) printf("[\n");
    else {
        printf("model: %s%s\n", own_files ? cache : model,
               own_files ? " (random GPT-2 124M shape; each precision loads its own file)"
                         : " (each precision converted while loading)");
        print_header(&z);
    }
    int first = 1;
    char list[256];
    snprintf(list, sizeof list, "%s", builds);
    for (char *save = NULL, *b = strtok_r(list, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
        char plist[256];
        snprintf(plist, sizeof plist, "%s", precisions);
        for (char *s2 = NULL, *p = strtok_r(plist, ",", &s2); p; p = strtok_r(NULL, ",", &s2)) {
            int k = !strcmp(p, "f32") ? 0 : !strcmp(p, "f16") ? 1 : !strcmp(p, "q8_0") ? 2 : -1;
            char out[4096] = "", reason[512] = "";
            int th = !strcmp(b, "native") ? 1 : !strcmp(b, "native-mt") ? 0 : -1;
            if (k < 0) snprintf(reason, sizeof reason, "unknown precision");
            else if (th < 0) snprintf(reason, sizeof reason, "WebAssembly rows: npm run bench");
            else if (own_files && k > 0 && ensure_copy(dirs[0], dirs[k], k == 1 ? GPT2_DTYPE_F16 : GPT2_DTYPE_Q8_0))
                snprintf(reason, sizeof reason, "cannot write the %s copy", p);
            else if (run_child(self, dirs[k], p, th, &z, out, sizeof out) || strstr(out, "\"error\"")) {
                const char *e = strstr(out, "\"error\":\"");
                snprintf(reason, sizeof reason, "%.*s", e ? (int)strcspn(e + 9, "\"") : 12, e ? e + 9 : "child failed");
            }
            if (json) {
                if (!first) printf(",\n");
                if (reason[0])
                    printf("{\"build\":\"%s\",\"precision\":\"%s\",\"na\":\"%s\"}", b, p, reason);
                else {
                    out[strcspn(out, "\n")] = '\0';
                    char *brace = strrchr(out, '}');
                    if (brace) *brace = '\0';
                    printf("{\"build\":\"%s\",%s}", b, out + 1);
                }
            } else if (reason[0]) {
                printf("| %s | | %s | n/a (%s) | | | | | | | | | | |\n", b, p, reason);
            } else {
                double d = num(out, "decode_tps"), st = num(out, "stream_s"), fb = num(out, "file_bytes");
                char c[11][32];
                double vals[11] = {fb / 1e6, num(out, "load_s"), num(out, "prefill1_tps"), num(out, "prefill2_tps"), d,
                                   num(out, "decode_ctx_tps"), num(out, "ttft_s") * 1000, num(out, "rss_bytes") / 1e6,
                                   fb > 0 ? num(out, "rss_bytes") / fb : 0, st * 1000, 0};
                for (int q = 0; q < 10; q++) fmt_sig(c[q], vals[q]);
                printf("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% |\n", b,
                       num(out, "threads"), p, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9],
                       d > 0 ? 100.0 * st * d : 0);
            }
            fflush(stdout);
            first = 0;
        }
    }
    if (json) printf("\n]\n");
    return 0; /* a row that cannot be measured is reported as n/a, not as a failure */
}
