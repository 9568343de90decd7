/* table/table.h - the table struct and the argument checks shared by the API layer (table, train,
 * posenc, io). Not part of the public ABI. */
#ifndef TOKEMB_TABLE_H
#define TOKEMB_TABLE_H

#include "common/common.h"
#include "kernels/convert.h"
#include "kernels/simd.h"

/* ---- table ----------------------------------------------------------------------------------- */
enum { TK_TABLE_OWNED = 1u, TK_TABLE_READONLY = 2u };

struct tokemb_table {
    void *data; /* storage; rows*row_stride elements of dtype */
    int64_t rows, dim, row_stride;
    int32_t dtype;
    uint32_t flags;      /* TK_TABLE_* */
    int64_t padding_idx; /* normalised, or -1 for none */
    double max_norm;     /* <= 0: off */
    double norm_type;
    int32_t scale_grad_by_freq;
    int32_t frozen;
    void *optim; /* optimizer state, owned (see optim.c); NULL until first use */
    void (*optim_free)(void *);
    void (*release)(void *ctx); /* called by tokemb_table_free (e.g. munmap of a mapped file), or NULL */
    void *release_ctx;
    int32_t nontemporal; /* TOKEMB_NONTEMPORAL: 0 off, 1 on, 2 auto (lookup.c) */
};

static inline float *tk_row_f32(const tokemb_table *t, int64_t r) {
    return (float *)t->data + (size_t)r * (size_t)t->row_stride;
}

/* Shared argument checks of the API layer. Each returns TOKEMB_OK or sets the error (prefixed by
 * `fn`) and returns its status. */
int32_t tk_check_table(const char *fn, const tokemb_table *t);
int32_t tk_check_writable(const char *fn, const tokemb_table *t);
/* INVALID_ARGUMENT if the caller's buffer [buf, buf + bytes) overlaps t's storage (results would
 * depend on the thread count); the message names both byte ranges. `what` names the buffer. */
int32_t tk_check_no_overlap(const char *fn, const tokemb_table *t, const void *buf, size_t bytes, const char *what);
/* ids are `id_width` (4 or 8) bytes wide; every id must be in [0, rows). */
int32_t tk_check_ids(const char *fn, const void *ids, int id_width, size_t n, int64_t rows);

/* ---- lookup.c: torch's embedding_renorm_ (max_norm) over validated ids; the table must be writable.
 * Only fails (NO_MEMORY) before any row changes. Also used by the bag lookups (bags.c). */
int32_t tk_renorm(const char *fn, tokemb_table *t, const void *ids, int idw, size_t n);

#endif
