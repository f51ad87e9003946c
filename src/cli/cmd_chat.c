// cmd_chat.c: placeholder while the command is being written (replaced in this series of commits).
#include "cli.h"
#include <stdio.h>
int cmd_chat(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "inferno chat: not available yet\n");
    return 1;
}
