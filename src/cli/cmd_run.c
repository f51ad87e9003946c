// cmd_run.c: placeholder while the command is being written (replaced in this series of commits).
#include "cli.h"
#include <stdio.h>
int cmd_run(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "inferno run: not available yet\n");
    return 1;
}
