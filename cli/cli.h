/* cli.h - what the native tool's source files in cli/ share: the subcommands that live in
 * their own file, and the number parsing every subcommand's options use. */
#ifndef GPT2_CLI_H
#define GPT2_CLI_H

/* `gpt2 bench ...` (bench.c) and `gpt2 finetune ...` (finetune.c): argv as main got
 * it (argv[1] is the subcommand); the process exit status. */
int gpt2_cli_bench(int argc, char **argv);
int gpt2_cli_finetune(int argc, char **argv);

/* s as a whole decimal number in [lo, hi] into *out: 1, or 0 (nothing written) when s is not
 * one or is out of range. */
int gpt2_cli_parse_long(const char *s, long lo, long hi, long *out);

/* s as a finite number (strtod syntax) into *out as a float: 1, or 0 when it is not one. */
int gpt2_cli_parse_float(const char *s, float *out);

/* Copies the file from to the file to byte for byte (small files: config.json, vocab.json,
 * merges.txt): 1 on success, 0 on any failure. */
int gpt2_cli_copy_file(const char *from, const char *to);

#endif
