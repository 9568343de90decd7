/* fuzz_safetensors.c - libFuzzer target: the strict safetensors JSON header parser, then every 2-D
 * storable tensor is copied into a table and its last row read back. */
#include "io/io.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tk_st_header h;
    if (tk_st_parse("fuzz", data, size, &h) != TOKEMB_OK) return 0;
    for (size_t i = 0; i < h.n; i++) {
        const tk_st_tensor *d = &h.t[i];
        if (d->begin > d->end || d->end > size || strlen(d->name) != d->name_len) __builtin_trap();
        if (d->dtype < 0 || d->ndim != 2 || d->shape[0] < 1 || d->shape[1] < 1 || d->end - d->begin > (64u << 20))
            continue;
        tokemb_table *t = NULL;
        if (tokemb_table_create(d->shape[0], d->shape[1], d->dtype, &t) != TOKEMB_OK) continue;
        memcpy(t->data, data + d->begin, (size_t)(d->end - d->begin));
        float row[64];
        if (d->shape[1] <= 64) tokemb_table_read_rows(t, d->shape[0] - 1, 1, row);
        tokemb_table_free(t);
    }
    tk_st_header_free(&h);
    return 0;
}
