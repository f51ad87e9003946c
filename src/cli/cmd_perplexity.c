// cmd_perplexity.c: placeholder while the command is being written (replaced in this series of commits).
#include "cli.h"
#include <stdio.h>
int cmd_perplexity(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "inferno perplexity: not available yet\n");
    return 1;
}
