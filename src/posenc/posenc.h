/* posenc_internal.h - the tokemb_posenc struct shared by posenc.c, rope.c and relpos.c.
 * Nothing here is part of the public ABI. */
#ifndef TOKEMB_POSENC_INTERNAL_H
#define TOKEMB_POSENC_INTERNAL_H

#include "table/table.h"

enum { TK_PE_SINUSOIDAL = 1, TK_PE_LEARNED, TK_PE_ROPE, TK_PE_ALIBI, TK_PE_T5, TK_PE_SHAW };

/* Largest |position| the encoders accept: every integer up to here is exact in double, so p*theta is a
 * single correctly rounded product. */
#define TK_POS_LIMIT ((int64_t)1 << 53)

struct tokemb_posenc {
    int kind;
    int64_t dim;          /* sinusoidal / learned / Shaw: row length; RoPE: head_dim */
    double base;
    int32_t layout;
    double *freq;         /* sinusoidal: per-pair frequency (or denominator, see posenc.c) */
    tokemb_table *table;  /* learned [max_len][dim], T5 [num_buckets][n_heads], Shaw [2k+1][dim] */
    int64_t max_len;      /* learned: rows */

    /* RoPE */
    int64_t rotary_dim;
    int32_t scaling;
    double factor, beta_fast, beta_slow, low_freq_factor, high_freq_factor, attn_factor, mscale, mscale_all_dim;
    int64_t original_max_pos, seq_len;
    int32_t truncate;
    double *short_factor, *long_factor; /* LongRoPE, rotary_dim/2 each, NULL until set */
    double *rope_inv;     /* rotary_dim/2 scaled inverse frequencies of the current configuration */
    double rope_A;        /* its attention factor */
    int rope_ok;          /* 0: the configuration does not hold together (the call reports why) */

    /* ALiBi */
    int64_t n_heads;
    int32_t causal;
    double max_bias;
    float *slopes;

    /* T5 / Shaw */
    int64_t num_buckets, max_distance;
    int32_t bidirectional;
    int64_t *thresholds;  /* T5: smallest n of bucket max_exact + v, v = 1 .. n_thr */
    int64_t n_thr, max_exact, half_buckets;
};

/* posenc.c: a zeroed encoder of `kind` with every parameter at its documented default; NULL if
 * allocation fails. Every create function starts from it. */
tokemb_posenc *tk_pe_new(int kind);
/* posenc.c: the F32 table a learned / T5 / Shaw encoder owns; errors are reported under `fn`. */
int32_t tk_pe_table_create(const char *fn, int64_t rows, int64_t dim, tokemb_table **t);

/* rope.c: recomputes the cached frequencies after a parameter change (setters have exclusive access). */
void tk_rope_refresh(tokemb_posenc *pe);

/* relpos.c */
int32_t tk_alibi_compute_slopes(tokemb_posenc *pe);
int32_t tk_t5_prepare(tokemb_posenc *pe);

#endif
