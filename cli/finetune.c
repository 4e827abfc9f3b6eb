/* finetune.c - `gpt2 finetune`: train a model on a text file and save it as a Hugging Face
 * folder (src/train.h has the rules: data windows, loss, optimisers).
 *
 *   gpt2 finetune --data FILE --out DIR [--model DIR] [--steps N] [--batch B] [--seq T] [--lr LR]
 *       [--optimizer adamw|sgd] [--weight-decay W] [--beta1 B1] [--beta2 B2] [--eps E]
 *       [--grad-clip C] [--grad-accum K] [--warmup N] [--schedule constant|cosine]
 *       [--shuffle off|SEED] [--val-fraction F --eval-every K] [--threads N] [--save-every K]
 *       [--save-dtype f32|f16] [--memory-budget BYTES] [--json] [--resume] [--force] [--no-save]
 *
 * --out receives model.safetensors, config.json, vocab.json, merges.txt (an ordinary Hugging
 * Face GPT-2 folder) and finetune-state.bin (the checkpoint --resume continues from: same
 * --model, --data and options; --steps is the total). Every check (options, the data, --out
 * already holding a model without --force, the memory budget) happens before any training or
 * any write. One line per step on stdout ("step 3/20  loss 5.1234  lr 1.00e-04  812 tok/s
 * 1.2 s", plus "val 5.3 " on evaluation steps), or with --json one object per line:
 * {"step":3,"steps":20,"loss":5.1234,"lr":0.0001,"grad_norm":1.7,"tokens_per_second":812,
 *  "elapsed":1.2[,"val_loss":5.3]}. --no-save trains without --out and writes nothing (what
 * npm run bench times).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#include "cli.h"
#include "fileio.h"
#include "loader.h"
#include "pool.h"
#include "tokenizer.h"
#include "train.h"

#ifndef GPT2_DEFAULT_MODEL_DIR
#define GPT2_DEFAULT_MODEL_DIR "models"
#endif


typedef struct ft_options {
    const char *model, *data, *out;
    long steps;
    gpt2_train_options train;
    float val_fraction;
    long eval_every, save_every;
    int threads, json, resume, force, no_save;
    gpt2_dtype save_dtype;
    uint64_t budget;
} ft_options;

static const char FT_USAGE[] =
    "usage: gpt2 finetune --data FILE --out DIR [options]\n"
    "  --model DIR             checkpoint to start from (default: " GPT2_DEFAULT_MODEL_DIR ")\n"
    "  --data FILE             training text (UTF-8, tokenized as plain text)\n"
    "  --out DIR               where the trained model is written (a Hugging Face folder)\n"
    "  --steps N               optimiser steps in all (default 100)\n"
    "  --batch B               sequences per micro-batch (default 4)\n"
    "  --seq T                 tokens per sequence, at most the model's context (default 64)\n"
    "  --grad-accum K          micro-batches per step (default 1)\n"
    "  --lr LR                 learning rate > 0 (default 1e-4)\n"
    "  --optimizer adamw|sgd   (default adamw)\n"
    "  --weight-decay W        on the matrices and wte (default 0)\n"
    "  --beta1 B --beta2 B --eps E   AdamW (defaults 0.9, 0.999, 1e-8)\n"
    "  --grad-clip C           clip the gradients' global norm at C; 0 = off (default 1)\n"
    "  --warmup N              steps of linear warm-up (default 0)\n"
    "  --schedule constant|cosine   learning rate after warm-up (cosine: to 0 at --steps)\n"
    "  --shuffle off|SEED      window order (default off)\n"
    "  --val-fraction F        hold out the last F of the text (0 <= F < 1, default 0)\n"
    "  --eval-every K          evaluate the held-out text every K steps (default: at the end)\n"
    "  --save-every K          also save every K steps\n"
    "  --save-dtype f32|f16    weights in the saved model.safetensors (default f32)\n"
    "  --threads N             threads (default: one per core)\n"
    "  --memory-budget BYTES   refuse to start if training would need more (K, M, G suffixes)\n"
    "  --json                  one JSON object per step\n"
    "  --resume                continue from DIR/finetune-state.bin\n"
    "  --force                 overwrite a model already in --out\n"
    "  --no-save               train and report only: no --out, nothing written (benchmarks)\n";

static int ft_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "gpt2 finetune: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see gpt2 finetune --help)\n");
    return 2;
}

static int ft_fail(const char *what, const gpt2_error *err) {
    fprintf(stderr, "gpt2 finetune: %s%s%s\n", what ? what : "", what && err ? ": " : "", err ? err->message : "");
    return 1;
}

static int parse(int argc, char **argv, ft_options *o) {
    memset(o, 0, sizeof *o);
    o->model = GPT2_DEFAULT_MODEL_DIR;
    o->steps = 100;
    o->save_dtype = GPT2_DTYPE_F32;
    gpt2_train_options_default(&o->train);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(FT_USAGE, stdout);
            exit(0);
        }
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if (!strcmp(a, "--resume")) { o->resume = 1; continue; }
        if (!strcmp(a, "--force")) { o->force = 1; continue; }
        if (!strcmp(a, "--no-save")) { o->no_save = 1; continue; }
        static const char *const valued[] = {"--model", "--data", "--out", "--steps", "--batch", "--seq",
                                             "--grad-accum", "--lr", "--optimizer", "--weight-decay", "--beta1",
                                             "--beta2", "--eps", "--grad-clip", "--warmup", "--schedule",
                                             "--shuffle", "--val-fraction", "--eval-every", "--save-every",
                                             "--save-dtype", "--threads", "--memory-budget"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) known |= !strcmp(a, valued[k]);
        if (!known) return ft_usage("unknown option '%s'", a);
        if (!v) return ft_usage("option %s needs a value", a);
        i++;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--steps")) {
            if (!gpt2_cli_parse_long(v, 1, 1L << 30, &o->steps)) return ft_usage("--steps needs a whole number >= 1, got '%s'", v);
        } else if (!strcmp(a, "--batch")) {
            if (!gpt2_cli_parse_long(v, 1, 1 << 20, &n)) return ft_usage("--batch needs a whole number >= 1, got '%s'", v);
            o->train.batch = (int)n;
        } else if (!strcmp(a, "--seq")) {
            if (!gpt2_cli_parse_long(v, 1, 1 << 20, &n)) return ft_usage("--seq needs a whole number >= 1, got '%s'", v);
            o->train.seq = (int)n;
        } else if (!strcmp(a, "--grad-accum")) {
            if (!gpt2_cli_parse_long(v, 1, 1 << 20, &n)) return ft_usage("--grad-accum needs a whole number >= 1, got '%s'", v);
            o->train.grad_accum = (int)n;
        } else if (!strcmp(a, "--warmup")) {
            if (!gpt2_cli_parse_long(v, 0, 1L << 30, &n)) return ft_usage("--warmup needs a whole number >= 0, got '%s'", v);
            o->train.warmup = (int)n;
        } else if (!strcmp(a, "--eval-every")) {
            if (!gpt2_cli_parse_long(v, 1, 1L << 30, &o->eval_every)) return ft_usage("--eval-every needs a whole number >= 1, got '%s'", v);
        } else if (!strcmp(a, "--save-every")) {
            if (!gpt2_cli_parse_long(v, 1, 1L << 30, &o->save_every)) return ft_usage("--save-every needs a whole number >= 1, got '%s'", v);
        } else if (!strcmp(a, "--threads")) {
            if (!gpt2_cli_parse_long(v, 0, 1024, &n)) return ft_usage("--threads needs a whole number 0..1024, got '%s'", v);
            o->threads = (int)n;
        } else if (!strcmp(a, "--lr")) {
            if (!gpt2_cli_parse_float(v, &o->train.lr)) return ft_usage("--lr needs a number, got '%s'", v);
        } else if (!strcmp(a, "--weight-decay")) {
            if (!gpt2_cli_parse_float(v, &o->train.weight_decay)) return ft_usage("--weight-decay needs a number, got '%s'", v);
        } else if (!strcmp(a, "--beta1")) {
            if (!gpt2_cli_parse_float(v, &o->train.beta1)) return ft_usage("--beta1 needs a number, got '%s'", v);
        } else if (!strcmp(a, "--beta2")) {
            if (!gpt2_cli_parse_float(v, &o->train.beta2)) return ft_usage("--beta2 needs a number, got '%s'", v);
        } else if (!strcmp(a, "--eps")) {
            if (!gpt2_cli_parse_float(v, &o->train.eps)) return ft_usage("--eps needs a number, got '%s'", v);
        } else if (!strcmp(a, "--grad-clip")) {
            if (!gpt2_cli_parse_float(v, &o->train.grad_clip)) return ft_usage("--grad-clip needs a number, got '%s'", v);
        } else if (!strcmp(a, "--val-fraction")) {
            if (!gpt2_cli_parse_float(v, &o->val_fraction) || !(o->val_fraction >= 0.0f && o->val_fraction < 1.0f))
                return ft_usage("--val-fraction needs a number in [0, 1), got '%s'", v);
        } else if (!strcmp(a, "--optimizer")) {
            if (!strcmp(v, "adamw")) o->train.optimizer = GPT2_OPTIM_ADAMW;
            else if (!strcmp(v, "sgd")) o->train.optimizer = GPT2_OPTIM_SGD;
            else return ft_usage("--optimizer is adamw or sgd, got '%s'", v);
        } else if (!strcmp(a, "--schedule")) {
            if (!strcmp(v, "constant")) o->train.schedule = GPT2_SCHEDULE_CONSTANT;
            else if (!strcmp(v, "cosine")) o->train.schedule = GPT2_SCHEDULE_COSINE;
            else return ft_usage("--schedule is constant or cosine, got '%s'", v);
        } else if (!strcmp(a, "--save-dtype")) {
            if (!strcmp(v, "f32")) o->save_dtype = GPT2_DTYPE_F32;
            else if (!strcmp(v, "f16")) o->save_dtype = GPT2_DTYPE_F16;
            else return ft_usage("--save-dtype is f32 or f16, got '%s'", v);
        } else if (!strcmp(a, "--shuffle")) {
            if (!strcmp(v, "off")) o->train.shuffle = 0;
            else {
                char *end;
                errno = 0;
                unsigned long long s = strtoull(v, &end, 10);
                if (errno || end == v || *end || v[0] == '-')
                    return ft_usage("--shuffle is off or a seed (a whole number >= 0), got '%s'", v);
                o->train.shuffle = 1;
                o->train.seed = (uint64_t)s;
            }
        } else if (!strcmp(a, "--memory-budget")) {
            char *end;
            errno = 0;
            unsigned long long b = strtoull(v, &end, 10);
            unsigned shift = 0;
            if (*end == 'K' || *end == 'k') shift = 10, end++;
            else if (*end == 'M' || *end == 'm') shift = 20, end++;
            else if (*end == 'G' || *end == 'g') shift = 30, end++;
            if (errno || end == v || *end || v[0] == '-' || b > (UINT64_MAX >> shift))
                return ft_usage("--memory-budget needs a byte count (K, M, G suffixes), got '%s'", v);
            o->budget = (uint64_t)b << shift;
        }
    }
    if (!o->data) return ft_usage("%s", "--data FILE is required");
    if (o->no_save && (o->out || o->resume || o->save_every))
        return ft_usage("%s", "--no-save writes nothing: it takes no --out, --resume or --save-every");
    if (!o->out && !o->no_save) return ft_usage("%s", "--out DIR is required");
    o->train.total_steps = (int)o->steps;
    return 0;
}

/* Writes len bytes to dir/name through a temporary file renamed into place. */
static int put_file(const char *dir, const char *name, const void *data, size_t len, gpt2_error *err) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f)) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return gpt2_fail(err, GPT2_ERR_IO, "cannot write %s: %s", path, strerror(errno)) != GPT2_OK;
    }
    return 0;
}

static int copy_into(const char *from_dir, const char *to_dir, const char *name, gpt2_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", from_dir, name);
    size_t len = 0;
    char *data = NULL;
    if (gpt2_read_file(path, 0, &data, &len, err)) return 1;
    int rc = put_file(to_dir, name, data, len, err);
    free(data);
    return rc;
}

static int exists(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* Saves the model folder and the checkpoint into o->out. */
static int save_all(const ft_options *o, gpt2_train *t, gpt2_error *err) {
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST) {
        gpt2_fail(err, GPT2_ERR_IO, "cannot create %s: %s", o->out, strerror(errno));
        return 1;
    }
    uint64_t size = gpt2_train_safetensors_size(t, o->save_dtype);
    uint8_t *buf = size <= SIZE_MAX ? malloc((size_t)size) : NULL;
    if (!buf) {
        gpt2_fail(err, GPT2_ERR_NOMEM, "cannot allocate %llu bytes to save the model", (unsigned long long)size);
        return 1;
    }
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/finetune-state.bin", o->out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char config[2048];
    size_t clen = gpt2_train_config_json(t, o->save_dtype, config, sizeof config);
    int rc = gpt2_train_write_safetensors(t, o->save_dtype, buf, size, err) != GPT2_OK ||
             put_file(o->out, "model.safetensors", buf, (size_t)size, err) ||
             put_file(o->out, "config.json", config, clen, err);
    free(buf);
    if (!rc && gpt2_train_checkpoint_save(t, tmp, err) != GPT2_OK) rc = 1;
    if (!rc && rename(tmp, path) != 0) rc = gpt2_fail(err, GPT2_ERR_IO, "cannot write %s", path) != GPT2_OK;
    if (rc) remove(tmp);
    if (rc) return 1;
    if (strcmp(o->model, o->out) != 0 &&
        (copy_into(o->model, o->out, "vocab.json", err) || copy_into(o->model, o->out, "merges.txt", err)))
        return 1;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int gpt2_cli_finetune(int argc, char **argv) {
    ft_options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    gpt2_error err;
    /* --out: refuse to overwrite a model (checked before anything else is done) */
    int has_model = !o.no_save && (exists(o.out, "model.safetensors") || exists(o.out, "config.json"));
    if (o.resume && !exists(o.out, "finetune-state.bin"))
        return ft_usage("--resume: %s holds no finetune-state.bin", o.out);
    if (has_model && !o.force && !o.resume)
        return ft_usage("--out %s already holds a model: pass --force to overwrite it", o.out);

    size_t text_len = 0;
    char *text = NULL;
    if (gpt2_read_file(o.data, 0, &text, &text_len, &err)) return ft_fail(NULL, &err);
    if (text_len == 0) {
        free(text);
        fprintf(stderr, "gpt2 finetune: the training text %s is empty\n", o.data);
        return 1;
    }
    gpt2_tokenizer *tok = NULL;
    gpt2_weights *w = NULL;
    gpt2_pool *pool = NULL;
    gpt2_train *t = NULL;
    int32_t *ids = NULL;
    rc = 1;
    if (gpt2_tokenizer_load(o.model, &tok, &err) != GPT2_OK) goto done;
    ids = malloc((text_len + 1) * sizeof *ids);
    size_t n = 0;
    if (!ids) {
        gpt2_fail(&err, GPT2_ERR_NOMEM, "out of memory for the tokens");
        goto done;
    }
    if (gpt2_tokenizer_encode(tok, text, text_len, 0, ids, text_len + 1, &n, &err) != GPT2_OK) {
        gpt2_error_prefix(&err, o.data);
        goto done;
    }
    size_t n_val = (size_t)((double)n * o.val_fraction), n_train = n - n_val;
    if (n_val > 0 && n_val < (size_t)o.train.seq + 1) {
        gpt2_fail(&err, GPT2_ERR_ARG, "the held-out part (%zu tokens) is shorter than one window of %d + 1 tokens",
                  n_val, o.train.seq);
        goto done;
    }
    gpt2_loader_options lo = {0};
    lo.memory_budget_bytes = o.budget;
    if (gpt2_pool_create(o.threads, &pool, &err) != GPT2_OK) goto done;
    lo.pool = pool;
    if (gpt2_load_dir(o.model, &lo, &w, &err) != GPT2_OK) goto done;
    w->pool = pool;
    uint64_t model_bytes = gpt2_model_bytes(&w->config, &w->plan);
    uint64_t budget = o.budget ? (o.budget > model_bytes ? o.budget - model_bytes : 1) : 0;
    if (gpt2_train_create(w, &o.train, budget, &t, &err) != GPT2_OK) goto done;
    if (gpt2_train_set_data(t, ids, n_train, &err) != GPT2_OK) goto done;
    if (o.resume) {
        char path[4096];
        snprintf(path, sizeof path, "%s/finetune-state.bin", o.out);
        if (gpt2_train_checkpoint_load(t, path, &err) != GPT2_OK) goto done;
    }
    if (!o.json)
        fprintf(stderr, "gpt2 finetune: %zu tokens (%zu training windows of %d, %zu held out), %zu parameters, %d threads\n",
                n, gpt2_train_windows(t), o.train.seq, n_val, gpt2_train_param_count(t), gpt2_pool_threads(pool));
    double t0 = now_s();
    const double tokens_per_step = (double)o.train.batch * o.train.seq * o.train.grad_accum;
    for (int64_t s = gpt2_train_step_count(t); s < o.steps; s++) {
        double ts = now_s();
        gpt2_train_stats st;
        if (gpt2_train_step(t, &st, &err) != GPT2_OK) {
            gpt2_error_prefix(&err, "training stopped");
            goto done;
        }
        double dt = now_s() - ts, el = now_s() - t0;
        int last = st.step == o.steps;
        float val = NAN;
        if (n_val > 0 && (last || (o.eval_every && st.step % o.eval_every == 0)) &&
            gpt2_train_evaluate(t, ids + n_train, n_val, &val, &err) != GPT2_OK)
            goto done;
        if (o.json) {
            printf("{\"step\":%lld,\"steps\":%ld,\"loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens_per_second\":%.1f,"
                   "\"elapsed\":%.3f",
                   (long long)st.step, o.steps, (double)st.loss, (double)st.lr, (double)st.grad_norm,
                   tokens_per_step / dt, el);
            if (!isnan(val)) printf(",\"val_loss\":%.9g", (double)val);
            printf("}\n");
        } else {
            printf("step %lld/%ld  loss %.4f", (long long)st.step, o.steps, (double)st.loss);
            if (!isnan(val)) printf("  val %.4f", (double)val);
            printf("  lr %.2e  %.0f tok/s  %.1f s\n", (double)st.lr, tokens_per_step / dt, el);
        }
        fflush(stdout);
        if (!last && o.save_every && st.step % o.save_every == 0 && save_all(&o, t, &err)) goto done;
    }
    if (!o.no_save && save_all(&o, t, &err)) goto done;
    if (!o.json && !o.no_save) fprintf(stderr, "gpt2 finetune: saved %s\n", o.out);
    rc = 0;
done:
    if (rc) ft_fail(NULL, &err);
    gpt2_train_free(t);
    gpt2_weights_free(w);
    gpt2_pool_free(pool);
    gpt2_tokenizer_free(tok);
    free(ids);
    free(text);
    return rc;
}
