// cmd_quantize.c: placeholder while the command is being written (replaced in this series of commits).
#include "cli.h"
#include <stdio.h>
int cmd_quantize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "inferno quantize: not available yet\n");
    return 1;
}
