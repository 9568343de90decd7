/* tk_test_state.h - checksums of library objects through the public API, for the suites that prove a
 * failed call changed nothing (test_invariants, test_alloc_failures). Include after tk_test.h. */
#ifndef TK_TEST_STATE_H
#define TK_TEST_STATE_H

#include <stdio.h>

/* FNV-1a continued over n more bytes. */
static inline uint64_t tk_mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* A table: shape, stride, dtype, optimizer step count, every parameter, every value as float32 and the
 * raw F32 storage including the gaps of strided wraps. 0 for NULL. No heap use (dim <= 4096). */
static inline uint64_t tk_table_sum(tokemb_table *t) {
    if (!t) return 0;
    uint64_t h = 1469598103934665603ull;
    int64_t rows = tokemb_table_rows(t), dim = tokemb_table_dim(t), stride = tokemb_table_row_stride(t);
    int64_t steps = tokemb_optim_step_count(t);
    int32_t dt = tokemb_table_dtype(t);
    h = tk_mix(h, &rows, 8);
    h = tk_mix(h, &dim, 8);
    h = tk_mix(h, &stride, 8);
    h = tk_mix(h, &dt, 4);
    h = tk_mix(h, &steps, 8);
    const int32_t ip[] = {TOKEMB_PADDING_IDX, TOKEMB_SCALE_GRAD_BY_FREQ, TOKEMB_FROZEN};
    const int32_t fp[] = {TOKEMB_MAX_NORM, TOKEMB_NORM_TYPE};
    for (size_t i = 0; i < 3; i++) {
        int64_t v = 0;
        if (tokemb_table_get_param(t, ip[i], &v) != TOKEMB_OK) fail_msg("get_param %d failed", (int)ip[i]);
        h = tk_mix(h, &v, 8);
    }
    for (size_t i = 0; i < 2; i++) {
        double v = 0;
        if (tokemb_table_get_param_f64(t, fp[i], &v) != TOKEMB_OK) fail_msg("get_param_f64 %d failed", (int)fp[i]);
        h = tk_mix(h, &v, 8);
    }
    float row[4096];
    assert_true(dim <= 4096);
    for (int64_t r = 0; r < rows; r++) {
        if (tokemb_table_read_rows(t, r, 1, row) != TOKEMB_OK) fail_msg("read_rows %lld failed", (long long)r);
        h = tk_mix(h, row, (size_t)dim * sizeof(float));
    }
    float *d = tokemb_table_data(t);
    if (d) h = tk_mix(h, d, (size_t)((rows - 1) * stride + dim) * sizeof(float));
    return h;
}

/* An encoder: dim, every parameter (with the getter's status), its table, and for RoPE the
 * frequencies and attention factor (they reflect every setting, LongRoPE factors included). */
static inline uint64_t tk_posenc_sum(tokemb_posenc *pe) {
    uint64_t h = 1469598103934665603ull;
    int64_t dim = tokemb_posenc_dim(pe);
    h = tk_mix(h, &dim, 8);
    for (int32_t p = 200; p <= 301; p++) {
        if (p == 212) p = 300;
        int64_t iv = 0;
        double fv = 0;
        int32_t s1 = tokemb_posenc_get_param(pe, p, &iv), s2 = tokemb_posenc_get_param_f64(pe, p, &fv);
        h = tk_mix(h, &s1, 4);
        h = tk_mix(h, &s2, 4);
        h = tk_mix(h, &iv, 8);
        h = tk_mix(h, &fv, 8);
    }
    uint64_t ts = tk_table_sum(tokemb_posenc_table(pe));
    h = tk_mix(h, &ts, 8);
    double inv[64], a = 0;
    int64_t scaling = 0;
    if (tokemb_posenc_get_param(pe, TOKEMB_ROPE_SCALING, &scaling) == TOKEMB_OK)
        for (size_t n = 1; n <= 64; n++)
            if (tokemb_posenc_rope_inv_freq(pe, inv, n, &a) == TOKEMB_OK) {
                h = tk_mix(h, inv, n * sizeof(double));
                h = tk_mix(h, &a, sizeof a);
                break;
            }
    return h;
}

/* A vocabulary: its size and every word's bytes. */
static inline uint64_t tk_vocab_sum(tokemb_vocab *v) {
    uint64_t h = 1469598103934665603ull;
    int64_t n = tokemb_vocab_size(v);
    h = tk_mix(h, &n, 8);
    for (int64_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *w = tokemb_vocab_word(v, i, &len);
        h = tk_mix(h, &len, sizeof len);
        if (w) h = tk_mix(h, w, len);
    }
    return h;
}

/* A file's bytes; 0 if it does not exist (or path is NULL). */
static inline uint64_t tk_file_sum(const char *path) {
    if (!path) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t h = 1469598103934665603ull;
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = tk_mix(h, buf, n);
    fclose(f);
    return h;
}

#endif
