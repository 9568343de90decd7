/* storage.h - dtype-generic row access (storage.c) for the API layer. Internal only. */
#ifndef TOKEMB_STORAGE_H
#define TOKEMB_STORAGE_H

#include "table/table.h"

/* Bytes between consecutive rows (row_stride is counted in elements; Q8_ROW elements are bytes). */
static inline size_t tk_row_bytes(const tokemb_table *t) { return (size_t)t->row_stride * tk_dtype_size(t->dtype); }
static inline void *tk_row_ptr(const tokemb_table *t, int64_t r) {
    return (uint8_t *)t->data + (size_t)r * tk_row_bytes(t);
}
/* Row r as float32 (decoded / dequantised) into out[dim]. */
void tk_row_read_f32(const tokemb_table *t, int64_t r, float *out);
/* Stores src[dim] into row r, converting to the storage dtype (Q8_ROW requantises the row). */
void tk_row_write_f32(tokemb_table *t, int64_t r, const float *src);
/* Index of the first non-finite value of src[n], or n. */
size_t tk_first_nonfinite(const float *src, size_t n);

#endif
