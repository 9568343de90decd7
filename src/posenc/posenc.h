/* posenc/posenc.h - the tokemb_posenc struct shared by posenc.c, rope.c and relpos.c, and the family
 * interface through which the generic code reaches a family's own parameters. Not part of the public ABI. */
#ifndef TOKEMB_POSENC_INTERNAL_H
#define TOKEMB_POSENC_INTERNAL_H

#include "table/table.h"

enum { TK_PE_SINUSOIDAL = 1, TK_PE_LEARNED, TK_PE_ROPE, TK_PE_ALIBI, TK_PE_T5, TK_PE_SHAW };

/* Largest |position| the encoders accept: every integer up to here is exact in double, so p*theta is a
 * single correctly rounded product. */
#define TK_POS_LIMIT ((int64_t)1 << 53)

/* What a family defines and owns (ops of a small vtable, filled in by the family's file): its name and its
 * parameters. The generic posenc.c knows no family: tokemb_posenc_set_param / get_param ask
 * param_type(param) (0 = not a parameter of this family) and call the typed setter / getter, which
 * validates the value (the generic code has checked the type and, for doubles, that it is finite). */
enum { TK_PE_PARAM_NONE = 0, TK_PE_PARAM_I64 = 1, TK_PE_PARAM_F64 = 2 };
typedef struct tk_pe_family {
    int kind;                         /* TK_PE_* */
    const char *name;                 /* in error messages */
    int (*param_type)(int32_t param); /* NULL: no parameters */
    int32_t (*set_i64)(const char *fn, tokemb_posenc *pe, int32_t param, int64_t value);
    int32_t (*set_f64)(const char *fn, tokemb_posenc *pe, int32_t param, double value);
    int64_t (*get_i64)(const tokemb_posenc *pe, int32_t param);
    double (*get_f64)(const tokemb_posenc *pe, int32_t param);
} tk_pe_family;

struct tokemb_posenc {
    int kind; /* family->kind */
    const tk_pe_family *family;
    int64_t dim; /* sinusoidal / learned / Shaw: row length; RoPE: head_dim */
    double base;
    int32_t layout;
    double *freq;        /* sinusoidal: per-pair frequency (or denominator, see posenc.c) */
    tokemb_table *table; /* learned [max_len][dim], T5 [num_buckets][n_heads], Shaw [2k+1][dim] */
    int64_t max_len;     /* learned: rows */

    /* RoPE */
    int64_t rotary_dim;
    int32_t scaling;
    double factor, beta_fast, beta_slow, low_freq_factor, high_freq_factor, attn_factor, mscale, mscale_all_dim;
    int64_t original_max_pos, seq_len;
    int32_t truncate;
    double *short_factor, *long_factor; /* LongRoPE, rotary_dim/2 each, NULL until set */
    double *rope_inv;                   /* rotary_dim/2 scaled inverse frequencies of the current configuration */
    double rope_A;                      /* its attention factor */
    int rope_ok;                        /* 0: the configuration does not hold together (the call reports why) */

    /* ALiBi */
    int64_t n_heads;
    int32_t causal;
    double max_bias;
    float *slopes;

    /* T5 / Shaw */
    int64_t num_buckets, max_distance;
    int32_t bidirectional;
    int64_t *thresholds; /* T5: smallest n of bucket max_exact + v, v = 1 .. n_thr */
    int64_t n_thr, max_exact, half_buckets;
};

/* The families with parameters (rope.c, relpos.c), listed by params.c. */
extern const tk_pe_family tk_pe_rope, tk_pe_alibi;

/* posenc.c: a zeroed encoder of `family`; NULL if allocation fails. Every create function starts from it
 * and sets its own family's parameters to their documented defaults. */
tokemb_posenc *tk_pe_new(const tk_pe_family *family);
/* posenc.c: the F32 table a learned / T5 / Shaw encoder owns; errors are reported under `fn`. */
int32_t tk_pe_table_create(const char *fn, int64_t rows, int64_t dim, tokemb_table **t);

/* rope.c: recomputes the cached frequencies after a parameter change (setters have exclusive access). */
void tk_rope_refresh(tokemb_posenc *pe);

#endif
