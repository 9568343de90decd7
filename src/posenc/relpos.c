/* relpos.c - relative schemes: ALiBi slopes and biases, T5 bucketed bias (integer thresholds), Shaw
 * clipped relative indices and embeddings, with the gradients of the learned tables. */
#include "posenc/posenc.h"

#include <math.h>
#include <string.h>

/* ---- ALiBi ---------------------------------------------------------------------------------------- */

/* Official get_slopes: c = 2^floor(log2 n); heads h < c: 2^(-mb*(h+1)/c); then the odd-indexed slopes of
 * the 2c rule, 2^(-mb*(2j+1)/(2c)) for j < n - c. Double, rounded once. Writes pe->slopes (allocated at
 * create). */
static void tk_alibi_compute_slopes(tokemb_posenc *pe) {
    int64_t n = pe->n_heads, c = 1;
    while (c * 2 <= n) c *= 2;
    for (int64_t h = 0; h < c; h++) pe->slopes[h] = (float)exp2(-pe->max_bias * (double)(h + 1) / (double)c);
    for (int64_t j = 0; j < n - c; j++)
        pe->slopes[c + j] = (float)exp2(-pe->max_bias * (double)(2 * j + 1) / (double)(2 * c));
}

/* The ALiBi family's parameters: TOKEMB_ALIBI_CAUSAL (i) and TOKEMB_ALIBI_MAX_BIAS (f, recomputes the slopes). */
static int tk_alibi_param_type(int32_t param) {
    return param == TOKEMB_ALIBI_CAUSAL     ? TK_PE_PARAM_I64
           : param == TOKEMB_ALIBI_MAX_BIAS ? TK_PE_PARAM_F64
                                            : TK_PE_PARAM_NONE;
}
static int32_t tk_alibi_set_i64(const char *fn, tokemb_posenc *pe, int32_t param, int64_t value) {
    if (value != 0 && value != 1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d takes 0 or 1, not %lld", fn, (int)param,
                        (long long)value);
    pe->causal = (int32_t)value;
    return TOKEMB_OK;
}
static int32_t tk_alibi_set_f64(const char *fn, tokemb_posenc *pe, int32_t param, double value) {
    if (value <= 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d = %g must be > 0", fn, (int)param, value);
    pe->max_bias = value;
    tk_alibi_compute_slopes(pe);
    return TOKEMB_OK;
}
static int64_t tk_alibi_get_i64(const tokemb_posenc *pe, int32_t param) {
    (void)param;
    return pe->causal;
}
static double tk_alibi_get_f64(const tokemb_posenc *pe, int32_t param) {
    (void)param;
    return pe->max_bias;
}
const tk_pe_family tk_pe_alibi = {TK_PE_ALIBI,      "ALiBi",          tk_alibi_param_type, tk_alibi_set_i64,
                                  tk_alibi_set_f64, tk_alibi_get_i64, tk_alibi_get_f64};

int32_t tokemb_posenc_create_alibi(int64_t n_heads, tokemb_posenc **out) {
    static const char fn[] = "tokemb_posenc_create_alibi";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (n_heads < 1 || n_heads > 65536)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: n_heads = %lld is outside [1, 65536]", fn, (long long)n_heads);
    tokemb_posenc *pe = tk_pe_new(&tk_pe_alibi);
    float *sl = (float *)tk_malloc((size_t)n_heads * sizeof(float));
    if (!pe || !sl) {
        tk_free(pe);
        tk_free(sl);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the encoder", fn);
    }
    pe->n_heads = n_heads;
    pe->slopes = sl;
    pe->causal = 1; /* the parameters' documented defaults */
    pe->max_bias = 8.0;
    tk_alibi_compute_slopes(pe);
    *out = pe;
    return TOKEMB_OK;
}

int32_t tokemb_posenc_alibi_slopes(const tokemb_posenc *pe, float *out) {
    static const char fn[] = "tokemb_posenc_alibi_slopes";
    if (!pe || !out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s is NULL", fn, pe ? "out" : "encoder");
    if (pe->kind != TK_PE_ALIBI) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: not an ALiBi encoder", fn);
    memcpy(out, pe->slopes, (size_t)pe->n_heads * sizeof(float));
    return TOKEMB_OK;
}

/* T5 and Shaw: no parameters (their tables are trained, their shapes fixed at create). */
static const tk_pe_family tk_pe_t5 = {TK_PE_T5, "T5", NULL, NULL, NULL, NULL, NULL};
static const tk_pe_family tk_pe_shaw = {TK_PE_SHAW, "Shaw", NULL, NULL, NULL, NULL, NULL};

/* ---- T5 ----------------------------------------------------------------------------------------- */

/* transformers' _relative_position_bucket: with N buckets per direction and E = N/2 exact ones, distance
 * n >= E goes to E + min(trunc(ln(n/E)/ln(D/E)*(N-E)), N-E-1). thresholds[v-1] is the smallest n whose
 * real-valued expression reaches v: ceil(E*(D/E)^(v/(N-E))), nudged down by a relative 1e-12 so that
 * exact integer edges (n = 16, 32, 64 for the default bidirectional 32/128) land in the upper bucket, as
 * in transformers' float32 path. */
static void tk_t5_prepare(tokemb_posenc *pe) {
    const int64_t N = pe->half_buckets, E = pe->max_exact, D = pe->max_distance;
    const int64_t m = N - E - 1; /* thresholds v = 1 .. N-E-1 */
    pe->n_thr = m;
    for (int64_t v = 1; v <= m; v++) {
        double t = (double)E * pow((double)D / (double)E, (double)v / (double)(N - E));
        double c = ceil(t * (1.0 - 1e-12));
        pe->thresholds[v - 1] = c < (double)E ? E : c > 9.0e18 ? INT64_MAX : (int64_t)c;
    }
}

static int32_t tk_t5_bucket(const tokemb_posenc *pe, int64_t rel) {
    int64_t ret = 0, n;
    if (pe->bidirectional) {
        if (rel > 0) ret = pe->half_buckets;
        n = rel < 0 ? -rel : rel;
    } else {
        n = rel < 0 ? -rel : 0;
    }
    if (n < pe->max_exact) return (int32_t)(ret + n);
    /* count thresholds <= n (ascending) */
    int64_t lo = 0, hi = pe->n_thr;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (pe->thresholds[mid] <= n) lo = mid + 1;
        else hi = mid;
    }
    return (int32_t)(ret + pe->max_exact + lo);
}

int32_t tokemb_posenc_create_t5(int64_t n_heads, int64_t num_buckets, int64_t max_distance, int32_t bidirectional,
                                tokemb_posenc **out) {
    static const char fn[] = "tokemb_posenc_create_t5";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (n_heads < 1 || n_heads > 65536)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: n_heads = %lld is outside [1, 65536]", fn, (long long)n_heads);
    if (bidirectional != 0 && bidirectional != 1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: bidirectional = %d must be 0 or 1", fn, (int)bidirectional);
    if (num_buckets < (bidirectional ? 4 : 2) || num_buckets > 65536)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: num_buckets = %lld is outside [%d, 65536]", fn,
                        (long long)num_buckets, bidirectional ? 4 : 2);
    int64_t N = bidirectional ? num_buckets / 2 : num_buckets, E = N / 2;
    if (max_distance <= E || max_distance > TK_POS_LIMIT)
        return tk_error(TOKEMB_INVALID_ARGUMENT,
                        "%s: max_distance = %lld must exceed the exact range max_exact = %lld (and be <= 2^53)", fn,
                        (long long)max_distance, (long long)E);
    tokemb_table *t = NULL;
    int32_t st = tk_pe_table_create(fn, num_buckets, n_heads, &t);
    if (st) return st;
    tokemb_posenc *pe = tk_pe_new(&tk_pe_t5);
    int64_t *thr = (int64_t *)tk_malloc((size_t)(N - E > 1 ? N - E - 1 : 1) * sizeof(int64_t));
    if (!pe || !thr) {
        tokemb_table_free(t);
        tk_free(pe);
        tk_free(thr);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the encoder", fn);
    }
    pe->table = t;
    pe->n_heads = n_heads;
    pe->num_buckets = num_buckets;
    pe->max_distance = max_distance;
    pe->bidirectional = bidirectional;
    pe->half_buckets = N;
    pe->max_exact = E;
    pe->thresholds = thr;
    tk_t5_prepare(pe);
    *out = pe;
    return TOKEMB_OK;
}

/* ---- Shaw --------------------------------------------------------------------------------------- */

int32_t tokemb_posenc_create_shaw(int64_t max_distance, int64_t dim, tokemb_posenc **out) {
    static const char fn[] = "tokemb_posenc_create_shaw";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (max_distance < 1 || max_distance > ((int64_t)1 << 30) || dim < 1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: max_distance = %lld must be in [1, 2^30] and dim = %lld >= 1", fn,
                        (long long)max_distance, (long long)dim);
    tokemb_table *t = NULL;
    int32_t st = tk_pe_table_create(fn, 2 * max_distance + 1, dim, &t);
    if (st) return st;
    tokemb_posenc *pe = tk_pe_new(&tk_pe_shaw);
    if (!pe) {
        tokemb_table_free(t);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the encoder", fn);
    }
    pe->table = t;
    pe->dim = dim;
    pe->max_distance = max_distance;
    *out = pe;
    return TOKEMB_OK;
}

static int32_t tk_shaw_index(const tokemb_posenc *pe, int64_t rel) {
    int64_t k = pe->max_distance;
    return (int32_t)((rel < -k ? -k : rel > k ? k : rel) + k);
}

/* ---- shared (q, k) checks ----------------------------------------------------------------------- */

static int32_t tk_rel_check(const char *fn, const tokemb_posenc *pe, int kind_a, int kind_b, size_t q_len, size_t k_len,
                            int64_t q_offset, size_t per_pair, const void *buf, const char *buf_name, size_t *n_pairs) {
    if (!pe) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: encoder is NULL", fn);
    if (pe->kind != kind_a && pe->kind != kind_b)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: not available for this encoder family (%d)", fn, pe->kind);
    if (q_offset < -TK_POS_LIMIT || q_offset > TK_POS_LIMIT || q_len > (size_t)TK_POS_LIMIT ||
        k_len > (size_t)TK_POS_LIMIT)
        return tk_error(TOKEMB_OUT_OF_RANGE, "%s: q_offset = %lld, q_len = %zu or k_len = %zu is beyond 2^53", fn,
                        (long long)q_offset, q_len, k_len);
    size_t n, total;
    if (tk_mul_overflow(q_len, k_len, &n) || tk_mul_overflow(n, per_pair, &total) ||
        tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: q_len = %zu x k_len = %zu x %zu overflows", fn, q_len, k_len, per_pair);
    *n_pairs = n;
    if (n > 0 && !buf) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s is NULL", fn, buf_name);
    return TOKEMB_OK;
}

int32_t tokemb_posenc_buckets(const tokemb_posenc *pe, size_t q_len, size_t k_len, int64_t q_offset, int32_t *out) {
    static const char fn[] = "tokemb_posenc_buckets";
    size_t n;
    int32_t st = tk_rel_check(fn, pe, TK_PE_T5, TK_PE_SHAW, q_len, k_len, q_offset, 1, out, "out", &n);
    if (st || n == 0) return st;
    for (size_t i = 0; i < q_len; i++) {
        int64_t qp = q_offset + (int64_t)i;
        for (size_t j = 0; j < k_len; j++) {
            int64_t rel = (int64_t)j - qp;
            out[i * k_len + j] = pe->kind == TK_PE_T5 ? tk_t5_bucket(pe, rel) : tk_shaw_index(pe, rel);
        }
    }
    return TOKEMB_OK;
}

int32_t tokemb_posenc_attn_bias(const tokemb_posenc *pe, size_t q_len, size_t k_len, int64_t q_offset, float *out) {
    static const char fn[] = "tokemb_posenc_attn_bias";
    size_t n;
    int32_t st = tk_rel_check(fn, pe, TK_PE_ALIBI, TK_PE_T5, q_len, k_len, q_offset, pe ? (size_t)pe->n_heads : 1, out,
                              "out", &n);
    if (st || n == 0) return st;
    const size_t H = (size_t)pe->n_heads;
    if (pe->kind == TK_PE_ALIBI) {
        for (size_t h = 0; h < H; h++) {
            const double m = (double)pe->slopes[h];
            float *o = out + h * n;
            for (size_t i = 0; i < q_len; i++) {
                int64_t qp = q_offset + (int64_t)i;
                for (size_t j = 0; j < k_len; j++) {
                    int64_t d = qp - (int64_t)j;
                    float v;
                    if (pe->causal) v = d < 0 ? -INFINITY : (float)(-(m * (double)d));
                    else v = (float)(-(m * (double)(d < 0 ? -d : d)));
                    o[i * k_len + j] = v;
                }
            }
        }
        return TOKEMB_OK;
    }
    for (size_t i = 0; i < q_len; i++) {
        int64_t qp = q_offset + (int64_t)i;
        for (size_t j = 0; j < k_len; j++) {
            const float *row = tk_row_f32(pe->table, tk_t5_bucket(pe, (int64_t)j - qp));
            for (size_t h = 0; h < H; h++) out[h * n + i * k_len + j] = row[h];
        }
    }
    return TOKEMB_OK;
}

int32_t tokemb_posenc_attn_bias_backward(const tokemb_posenc *pe, size_t q_len, size_t k_len, int64_t q_offset,
                                         const float *grad_bias, float *grad_table) {
    static const char fn[] = "tokemb_posenc_attn_bias_backward";
    size_t n;
    int32_t st = tk_rel_check(fn, pe, TK_PE_T5, TK_PE_T5, q_len, k_len, q_offset, pe ? (size_t)pe->n_heads : 1,
                              grad_bias, "grad_bias", &n);
    if (st || n == 0) return st;
    if (!grad_table) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_table is NULL", fn);
    const size_t H = (size_t)pe->n_heads;
    for (size_t h = 0; h < H; h++)
        for (size_t i = 0; i < q_len; i++) {
            int64_t qp = q_offset + (int64_t)i;
            for (size_t j = 0; j < k_len; j++)
                grad_table[(size_t)tk_t5_bucket(pe, (int64_t)j - qp) * H + h] += grad_bias[h * n + i * k_len + j];
        }
    return TOKEMB_OK;
}

int32_t tokemb_posenc_shaw_embed(const tokemb_posenc *pe, size_t q_len, size_t k_len, int64_t q_offset, float *out) {
    static const char fn[] = "tokemb_posenc_shaw_embed";
    size_t n;
    int32_t st =
        tk_rel_check(fn, pe, TK_PE_SHAW, TK_PE_SHAW, q_len, k_len, q_offset, pe ? (size_t)pe->dim : 1, out, "out", &n);
    if (st || n == 0) return st;
    const size_t d = (size_t)pe->dim;
    for (size_t i = 0; i < q_len; i++) {
        int64_t qp = q_offset + (int64_t)i;
        for (size_t j = 0; j < k_len; j++)
            memcpy(out + (i * k_len + j) * d, tk_row_f32(pe->table, tk_shaw_index(pe, (int64_t)j - qp)),
                   d * sizeof(float));
    }
    return TOKEMB_OK;
}

int32_t tokemb_posenc_shaw_embed_backward(const tokemb_posenc *pe, size_t q_len, size_t k_len, int64_t q_offset,
                                          const float *grad, float *grad_table) {
    static const char fn[] = "tokemb_posenc_shaw_embed_backward";
    size_t n;
    int32_t st = tk_rel_check(fn, pe, TK_PE_SHAW, TK_PE_SHAW, q_len, k_len, q_offset, pe ? (size_t)pe->dim : 1, grad,
                              "grad", &n);
    if (st || n == 0) return st;
    if (!grad_table) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_table is NULL", fn);
    const size_t d = (size_t)pe->dim;
    for (size_t i = 0; i < q_len; i++) {
        int64_t qp = q_offset + (int64_t)i;
        for (size_t j = 0; j < k_len; j++) {
            float *dst = grad_table + (size_t)tk_shaw_index(pe, (int64_t)j - qp) * d;
            const float *g = grad + (i * k_len + j) * d;
            for (size_t c = 0; c < d; c++) dst[c] += g[c];
        }
    }
    return TOKEMB_OK;
}
