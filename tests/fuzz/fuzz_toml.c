// fuzz_toml.c: libFuzzer target for the TOML reader: any byte string must parse or fail with a message,
// never crash, leak or read out of bounds. Replayed over tests/fuzz/corpus/fuzz_toml in CI.
#include "core/toml.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    toml_value *root = NULL;
    if (toml_parse("fuzz", (const char *)data, size, &root) == INF_OK) toml_free(root);
    return 0;
}
