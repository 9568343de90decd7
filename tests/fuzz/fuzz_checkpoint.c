/* fuzz_checkpoint.c - libFuzzer target: the sharded checkpoint index parser (strict JSON over the
 * safetensors primitives) and its layout validation; a valid index's shape must be positive. */
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int64_t rows = 0, dim = 0;
    size_t n = 0;
    if (tk_checkpoint_parse("fuzz", data, size, &rows, &dim, &n) == TOKEMB_OK && (rows < 1 || dim < 1 || n < 1))
        __builtin_trap();
    return 0;
}
