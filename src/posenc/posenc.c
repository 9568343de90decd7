/* posenc.c - tokemb_posenc: create/free/parameters for every family, the absolute encoders
 * (sinusoidal, learned) and the fused input embedding with its backward. RoPE lives in rope.c, ALiBi /
 * T5 / Shaw in relpos.c. */
#include "posenc/posenc.h"
#include "train/train.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The absolute families: no parameters. */
static const tk_pe_family tk_pe_sinusoidal = {TK_PE_SINUSOIDAL, "sinusoidal", NULL, NULL, NULL, NULL, NULL};
static const tk_pe_family tk_pe_learned = {TK_PE_LEARNED, "learned", NULL, NULL, NULL, NULL, NULL};

tokemb_posenc *tk_pe_new(const tk_pe_family *family) {
    tokemb_posenc *pe = (tokemb_posenc *)tk_calloc(1, sizeof *pe);
    if (!pe) return NULL;
    pe->kind = family->kind;
    pe->family = family;
    return pe;
}

void tokemb_posenc_free(tokemb_posenc *pe) {
    if (!pe) return;
    tokemb_table_free(pe->table);
    tk_free(pe->freq);
    tk_free(pe->short_factor);
    tk_free(pe->long_factor);
    tk_free(pe->rope_inv);
    tk_free(pe->slopes);
    tk_free(pe->thresholds);
    tk_free(pe);
}

/* ---- sinusoidal --------------------------------------------------------------------------------- */

/* Per layout, freq[i] holds:
 *  INTERLEAVED: w_i = 1 / base^(2i/dim), angle = p * w_i (the seed article's recipe: pos * angle_rates);
 *  CONCAT:      base^(2i/dim), angle = p / freq[i] (HF Marian's pos / np.power(10000, 2*(j//2)/dim));
 *  CONCAT_T2T:  w_i = exp(-i * ln(base) / max(h-1, 1)), angle = p * w_i (t2t / fairseq). */
int32_t tokemb_posenc_create_sinusoidal(int64_t dim, double base, int32_t layout, tokemb_posenc **out) {
    static const char fn[] = "tokemb_posenc_create_sinusoidal";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (dim < 1 || dim > ((int64_t)1 << 40))
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: dim = %lld is outside [1, 2^40]", fn, (long long)dim);
    if (!isfinite(base) || base <= 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: base = %g must be finite and > 0", fn, base);
    if (layout < TOKEMB_INTERLEAVED || layout > TOKEMB_CONCAT_T2T)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown layout %d (INTERLEAVED 0, CONCAT 1, CONCAT_T2T 2)", fn,
                        (int)layout);
    if (layout == TOKEMB_CONCAT_T2T && dim < 2)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: dim = %lld: CONCAT_T2T needs dim >= 2 (h = dim/2 >= 1)", fn,
                        (long long)dim);
    size_t npair = (size_t)((dim + 1) / 2);
    tokemb_posenc *pe = tk_pe_new(&tk_pe_sinusoidal);
    double *freq = (double *)tk_malloc(npair * sizeof(double));
    if (!pe || !freq) {
        tk_free(pe);
        tk_free(freq);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the encoder (dim = %lld)", fn, (long long)dim);
    }
    if (layout == TOKEMB_CONCAT_T2T) {
        int64_t h = dim / 2;
        double inc = log(base) / (double)(h > 1 ? h - 1 : 1);
        for (int64_t i = 0; i < h; i++) freq[i] = exp(-(double)i * inc);
    } else {
        for (size_t i = 0; i < npair; i++) {
            double den = pow(base, (double)(2 * i) / (double)dim);
            freq[i] = layout == TOKEMB_INTERLEAVED ? 1.0 / den : den;
        }
    }
    pe->dim = dim;
    pe->base = base;
    pe->layout = layout;
    pe->freq = freq;
    *out = pe;
    return TOKEMB_OK;
}

static void tk_sinusoidal_row(const tokemb_posenc *pe, int64_t pos, float *row) {
    const int64_t d = pe->dim;
    const double p = (double)pos;
    const double *f = pe->freq;
    switch (pe->layout) {
    case TOKEMB_INTERLEAVED:
        for (int64_t k = 0; k < d; k++) {
            double a = p * f[k / 2];
            row[k] = (float)((k & 1) ? cos(a) : sin(a));
        }
        break;
    case TOKEMB_CONCAT: {
        int64_t c = (d + 1) / 2;
        for (int64_t k = 0; k < c; k++) row[k] = (float)sin(p / f[k]);
        for (int64_t k = c; k < d; k++) row[k] = (float)cos(p / f[k - c]);
        break;
    }
    default: {
        int64_t h = d / 2;
        for (int64_t k = 0; k < h; k++) {
            double a = p * f[k];
            row[k] = (float)sin(a);
            row[h + k] = (float)cos(a);
        }
        if (d & 1) row[d - 1] = 0.0f;
        break;
    }
    }
}

/* ---- learned ------------------------------------------------------------------------------------ */

int32_t tk_pe_table_create(const char *fn, int64_t rows, int64_t dim, tokemb_table **t) {
    int32_t st = tokemb_table_create(rows, dim, TOKEMB_F32, t);
    if (st) {
        char why[400];
        snprintf(why, sizeof why, "%s", tokemb_last_error());
        return tk_error(st, "%s: the encoder's [%lld][%lld] table: %s", fn, (long long)rows, (long long)dim, why);
    }
    return TOKEMB_OK;
}

int32_t tokemb_posenc_create_learned(int64_t max_len, int64_t dim, tokemb_posenc **out) {
    static const char fn[] = "tokemb_posenc_create_learned";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (max_len < 1 || dim < 1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: max_len = %lld and dim = %lld must both be >= 1", fn,
                        (long long)max_len, (long long)dim);
    tokemb_table *t = NULL;
    int32_t st = tk_pe_table_create(fn, max_len, dim, &t);
    if (st) return st;
    tokemb_posenc *pe = tk_pe_new(&tk_pe_learned);
    if (!pe) {
        tokemb_table_free(t);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the encoder", fn);
    }
    pe->table = t;
    pe->dim = dim;
    pe->max_len = max_len;
    *out = pe;
    return TOKEMB_OK;
}

tokemb_table *tokemb_posenc_table(tokemb_posenc *pe) { return pe ? pe->table : NULL; }

int64_t tokemb_posenc_dim(const tokemb_posenc *pe) {
    if (!pe) return -1;
    if (pe->kind == TK_PE_ALIBI || pe->kind == TK_PE_T5) return pe->n_heads;
    return pe->dim;
}

/* ---- encode ------------------------------------------------------------------------------------- */

static int32_t tk_check_positions(const char *fn, const tokemb_posenc *pe, const int64_t *pos, size_t n) {
    if (pe->kind == TK_PE_LEARNED) {
        for (size_t i = 0; i < n; i++)
            if (TK_UNLIKELY(pos[i] < 0 || pos[i] >= pe->max_len))
                return tk_error(TOKEMB_OUT_OF_RANGE,
                                "%s: position %lld at index %zu is outside [0, %lld) (learned table length %lld)", fn,
                                (long long)pos[i], i, (long long)pe->max_len, (long long)pe->max_len);
    } else {
        for (size_t i = 0; i < n; i++)
            if (TK_UNLIKELY(pos[i] < -TK_POS_LIMIT || pos[i] > TK_POS_LIMIT))
                return tk_error(TOKEMB_OUT_OF_RANGE, "%s: position %lld at index %zu is outside [-2^53, 2^53]", fn,
                                (long long)pos[i], i);
    }
    return TOKEMB_OK;
}

typedef struct {
    const tokemb_posenc *pe;
    const int64_t *pos;
    float *out;
} tk_encode_ctx;

static void tk_encode_range(void *p, size_t b, size_t e) {
    const tk_encode_ctx *c = (const tk_encode_ctx *)p;
    const size_t d = (size_t)c->pe->dim;
    if (c->pe->kind == TK_PE_LEARNED) {
        const tokemb_table *t = c->pe->table;
        tk_gather_f32((const float *)t->data, (size_t)t->row_stride, c->pos + b, 8, e - b, d, c->out + b * d, d);
        return;
    }
    for (size_t i = b; i < e; i++) tk_sinusoidal_row(c->pe, c->pos[i], c->out + i * d);
}

static int32_t tk_check_additive(const char *fn, const tokemb_posenc *pe) {
    if (!pe) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: encoder is NULL", fn);
    if (pe->kind != TK_PE_SINUSOIDAL && pe->kind != TK_PE_LEARNED)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: needs a sinusoidal or learned encoder, this one is %s", fn,
                        pe->family->name);
    if (pe->kind == TK_PE_LEARNED && pe->table->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: the learned table is not F32", fn);
    return TOKEMB_OK;
}

int32_t tokemb_posenc_encode(const tokemb_posenc *pe, const int64_t *positions, size_t n, float *out) {
    static const char fn[] = "tokemb_posenc_encode";
    int32_t st = tk_check_additive(fn, pe);
    if (st) return st;
    if (n == 0) return TOKEMB_OK;
    if (!positions) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: positions is NULL with n = %zu", fn, n);
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL with n = %zu", fn, n);
    size_t total;
    if (tk_mul_overflow(n, (size_t)pe->dim, &total) || tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: n = %zu rows of %lld floats overflows", fn, n, (long long)pe->dim);
    if ((st = tk_check_positions(fn, pe, positions, n))) return st;
    tk_encode_ctx ctx = {pe, positions, out};
    size_t grain = pe->kind == TK_PE_LEARNED ? 1024 : (size_t)(4096 / pe->dim + 1);
    tk_parallel_for(n, grain, tk_encode_range, &ctx);
    return TOKEMB_OK;
}

/* ---- fused input embedding ---------------------------------------------------------------------- */

/* Shared validation of tokemb_embed / _backward: everything except the id check. */
static int32_t tk_embed_check(const char *fn, const tokemb_table *tok, const tokemb_posenc *pe, const int64_t *ids,
                              size_t batch, size_t seq, int64_t start_pos, float scale, const void *buf,
                              const char *buf_name, size_t *n_out) {
    int32_t st = tk_check_table(fn, tok);
    if (st) return st;
    if (pe) {
        if ((st = tk_check_additive(fn, pe))) return st;
        if (pe->dim != tok->dim)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: encoder dim %lld differs from the table's dim %lld", fn,
                            (long long)pe->dim, (long long)tok->dim);
    }
    if (!isfinite(scale)) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: scale = %g is not finite", fn, (double)scale);
    if (tok->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: dtype %d tables are not built in this version", fn, (int)tok->dtype);
    size_t n, total;
    if (tk_mul_overflow(batch, seq, &n) || tk_mul_overflow(n, (size_t)tok->dim, &total) ||
        tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: batch = %zu x seq = %zu x dim = %lld overflows", fn, batch, seq,
                        (long long)tok->dim);
    *n_out = n;
    if (n == 0) return TOKEMB_OK;
    if (!ids) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: ids is NULL with batch*seq = %zu", fn, n);
    if (!buf) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s is NULL with batch*seq = %zu", fn, buf_name, n);
    if (pe) {
        int64_t lo = pe->kind == TK_PE_LEARNED ? 0 : -TK_POS_LIMIT;
        int64_t hi = pe->kind == TK_PE_LEARNED ? pe->max_len : TK_POS_LIMIT + 1;
        if (start_pos < lo || start_pos >= hi || (uint64_t)(hi - start_pos) < (uint64_t)seq) {
            int64_t bad = start_pos < lo || start_pos >= hi ? start_pos : start_pos + (int64_t)(hi - start_pos);
            if (pe->kind == TK_PE_LEARNED)
                return tk_error(TOKEMB_OUT_OF_RANGE,
                                "%s: position %lld (start_pos %lld + seq %zu) is outside [0, %lld) (learned table "
                                "length %lld)",
                                fn, (long long)bad, (long long)start_pos, seq, (long long)pe->max_len,
                                (long long)pe->max_len);
            return tk_error(TOKEMB_OUT_OF_RANGE, "%s: positions start_pos %lld .. + seq %zu leave [-2^53, 2^53]", fn,
                            (long long)start_pos, seq);
        }
    }
    return TOKEMB_OK;
}

typedef struct {
    const tokemb_table *tok;
    const int64_t *ids;
    const float *pe_rows; /* [seq][dim] or NULL */
    float *out;
    size_t seq, dim;
    float scale;
} tk_embed_ctx;

/* One pass per token: out = scale * E[id] + PE(position), read straight from the table row. */
static void tk_embed_range(void *p, size_t b, size_t e) {
    const tk_embed_ctx *c = (const tk_embed_ctx *)p;
    for (size_t i = b; i < e; i++) {
        const float *row = tk_row_f32(c->tok, c->ids[i]);
        float *o = c->out + i * c->dim;
        const float *pr = c->pe_rows ? c->pe_rows + (i % c->seq) * c->dim : NULL;
        if (pr)
            for (size_t k = 0; k < c->dim; k++) o[k] = c->scale * row[k] + pr[k];
        else
            for (size_t k = 0; k < c->dim; k++) o[k] = c->scale * row[k];
    }
}

int32_t tokemb_embed(tokemb_table *tok, const tokemb_posenc *pe, const int64_t *ids, size_t batch, size_t seq,
                     int64_t start_pos, float scale, float *out) {
    static const char fn[] = "tokemb_embed";
    size_t n = 0;
    int32_t st = tk_embed_check(fn, tok, pe, ids, batch, seq, start_pos, scale, out, "out", &n);
    if (st || n == 0) return st;
    if ((st = tk_check_ids(fn, ids, 8, n, tok->rows))) return st;
    if (tok->max_norm > 0 && (st = tk_check_writable(fn, tok))) return st;
    const size_t dim = (size_t)tok->dim;
    float *pe_rows = NULL;
    if (pe) {
        /* PE rows once per sequence position (shared by the batch); learned rows are read in place. */
        if (pe->kind == TK_PE_LEARNED) {
            pe_rows = tk_row_f32(pe->table, start_pos); /* created tables: row_stride == dim */
        } else {
            pe_rows = (float *)tk_malloc(seq * dim * sizeof(float));
            if (!pe_rows) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu PE rows", fn, seq);
            for (size_t s = 0; s < seq; s++) tk_sinusoidal_row(pe, start_pos + (int64_t)s, pe_rows + s * dim);
        }
    }
    /* max_norm renormalises the referenced rows first, as tokemb_lookup does (its only failure, the
     * sorted-id scratch, happens before any row changes). */
    if (tok->max_norm > 0) st = tk_renorm(fn, tok, ids, 8, n);
    if (st == TOKEMB_OK) {
        tk_embed_ctx ctx = {tok, ids, pe_rows, out, seq, dim, scale};
        tk_parallel_for(n, 64, tk_embed_range, &ctx);
    }
    if (pe && pe->kind != TK_PE_LEARNED) tk_free(pe_rows);
    return st;
}

int32_t tokemb_embed_backward(const tokemb_table *tok, const tokemb_posenc *pe, const int64_t *ids, size_t batch,
                              size_t seq, int64_t start_pos, float scale, const float *grad_out, float *grad_tok,
                              float *grad_pe) {
    static const char fn[] = "tokemb_embed_backward";
    size_t n = 0;
    int32_t st = tk_embed_check(fn, tok, pe, ids, batch, seq, start_pos, scale, grad_out, "grad_out", &n);
    if (st) return st;
    if (grad_pe && (!pe || pe->kind != TK_PE_LEARNED))
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_pe is given but the encoder is %s (only learned has one)",
                        fn, pe ? pe->family->name : "NULL");
    if (n == 0) return TOKEMB_OK;
    if ((st = tk_check_ids(fn, ids, 8, n, tok->rows))) return st;
    const size_t dim = (size_t)tok->dim;
    if (grad_tok) {
        /* d out / d E[id] = scale: the token gradient is torch's embedding backward of scale * grad_out
         * (the product rounded first, as autograd computes it), through the deterministic scatter-add. */
        const float *g = grad_out;
        float *scaled = NULL;
        if (scale != 1.0f) {
            scaled = (float *)tk_malloc(n * dim * sizeof(float));
            if (!scaled) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu scaled gradient rows", fn, n);
            for (size_t i = 0; i < n * dim; i++) scaled[i] = scale * grad_out[i];
            g = scaled;
        }
        st = tk_grad_accumulate_impl(fn, tok, ids, 8, n, g, grad_tok);
        tk_free(scaled);
        if (st) return st;
    }
    if (grad_pe) {
        for (size_t b = 0; b < batch; b++)
            for (size_t s = 0; s < seq; s++) {
                const float *g = grad_out + (b * seq + s) * dim;
                float *dst = grad_pe + (size_t)(start_pos + (int64_t)s) * dim;
                for (size_t k = 0; k < dim; k++) dst[k] += g[k];
            }
    }
    return TOKEMB_OK;
}
