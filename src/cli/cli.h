// cli.h: the `inferno` command's subcommands and the small flag-parsing helpers they share.
// The CLI uses the library only through include/inferno.h.
#ifndef INFERNO_CLI_H
#define INFERNO_CLI_H

#include "inferno.h"

#include <stdbool.h>
#include <stdio.h>

// Each subcommand gets argv starting at its own name and returns the process exit code.
int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_synth(int argc, char **argv);

// Flag values: print "inferno <cmd>: <flag>: <problem>" to stderr and return false on a bad value.
bool cli_parse_int(const char *cmd, const char *flag, const char *s, long min, long max, long *out);
bool cli_parse_float(const char *cmd, const char *flag, const char *s, double min, double max, double *out);
// Returns argv[*i + 1] and advances *i, or prints "<flag> needs a value" and returns NULL.
const char *cli_flag_value(const char *cmd, int argc, char **argv, int *i);

// Reads a whole file (at most max bytes) into a NUL-terminated malloc'd buffer; prints the error on failure.
bool cli_read_file(const char *cmd, const char *path, size_t max, char **out, size_t *len);

// Options shared by the commands that generate text (run, chat): model, context, threads, GPU placement
// and sampling. Defaults come from the configuration; flags override them.
typedef struct {
    const char *model;
    long max_tokens, ctx, batch, threads, gpu_layers; // gpu_layers: -1 = auto
    bool gpu_enabled, ctx_default, verbose, seed_set;
    inf_sampler_params sampling;
} cli_gen_opts;

void cli_gen_defaults(cli_gen_opts *o, inf_config *cfg, long max_tokens);
// If argv[*i] is a shared flag, parses it (and its value, advancing *i): returns 1. Returns 0 for another
// flag, -1 after printing the error for a bad value.
int cli_gen_flag(const char *cmd, int argc, char **argv, int *i, inf_config *cfg, cli_gen_opts *o);
// Help lines of the shared flags.
void cli_gen_usage(FILE *out);
// After parsing: a seed from the clock when none was given.
void cli_gen_finish(cli_gen_opts *o);

// Loads the layered configuration (standard files, then environment). Prints the error and returns NULL
// on failure.
inf_config *cli_config_load(const char *cmd);

#endif // INFERNO_CLI_H
