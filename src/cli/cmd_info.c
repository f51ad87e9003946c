// cmd_info.c: placeholder while the command is being written (replaced in this series of commits).
#include "cli.h"
#include <stdio.h>
int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "inferno info: not available yet\n");
    return 1;
}
