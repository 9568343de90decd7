/* fuzz_npy.c - libFuzzer target: the .npy header parser and the copy into a table. */
#include "io/io.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int32_t dt;
    int64_t rows, dim;
    size_t off;
    if (tk_npy_parse("fuzz", data, size, &dt, &rows, &dim, &off) != TOKEMB_OK) return 0;
    if (off > size || (size_t)rows * (size_t)dim * tk_dtype_size(dt) != size - off) __builtin_trap();
    if (size - off > (64u << 20)) return 0;
    tokemb_table *t = NULL;
    if (tokemb_table_create(rows, dim, dt, &t) == TOKEMB_OK) {
        memcpy(t->data, data + off, size - off);
        float row[64];
        if (dim <= 64) tokemb_table_read_rows(t, rows - 1, 1, row);
        tokemb_table_free(t);
    }
    return 0;
}
