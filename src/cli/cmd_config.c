// cmd_config.c: placeholder while the command is being written (replaced in this series of commits).
#include "cli.h"
#include <stdio.h>
int cmd_config(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "inferno config: not available yet\n");
    return 1;
}
