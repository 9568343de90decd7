/* rope.c - rotary position embedding: create, the scaled inverse frequencies of every transformers
 * scaling variant (evaluated in double), cos/sin, and the in-place rotation (forward, backward,
 * strided). Angles p*theta'_i and cos/sin are evaluated in double, so every position up to 2^24 (and
 * far beyond) gets cos/sin correct to float32 rounding; no cache, so results never depend on history. */
#include "posenc/posenc.h"
#include "kernels/rope_kernels.h"

#include <math.h>
#include <string.h>

#define TK_TWO_PI 6.283185307179586476925286766559

/* ---- the RoPE family's parameters ------------------------------------------------------------------ */

static int tk_rope_param_type(int32_t param) {
    switch (param) {
    case TOKEMB_ROPE_SCALING:
    case TOKEMB_ROPE_ORIGINAL_MAX_POS:
    case TOKEMB_ROPE_TRUNCATE:
    case TOKEMB_ROPE_SEQ_LEN: return TK_PE_PARAM_I64;
    case TOKEMB_ROPE_FACTOR:
    case TOKEMB_ROPE_BETA_FAST:
    case TOKEMB_ROPE_BETA_SLOW:
    case TOKEMB_ROPE_LOW_FREQ_FACTOR:
    case TOKEMB_ROPE_HIGH_FREQ_FACTOR:
    case TOKEMB_ROPE_ATTN_FACTOR:
    case TOKEMB_ROPE_MSCALE:
    case TOKEMB_ROPE_MSCALE_ALL_DIM: return TK_PE_PARAM_F64;
    default: return TK_PE_PARAM_NONE;
    }
}

static int32_t tk_rope_set_i64(const char *fn, tokemb_posenc *pe, int32_t param, int64_t value) {
    switch (param) {
    case TOKEMB_ROPE_SCALING:
        if (value < TOKEMB_ROPE_SCALING_NONE || value > TOKEMB_ROPE_SCALING_LONGROPE)
            return tk_error(TOKEMB_INVALID_ARGUMENT,
                            "%s: unknown RoPE scaling %lld (NONE 0, LINEAR 1, DYNAMIC 2, YARN 3, LLAMA3 4, LONGROPE 5)",
                            fn, (long long)value);
        pe->scaling = (int32_t)value;
        break;
    case TOKEMB_ROPE_ORIGINAL_MAX_POS:
        if (value < 1 || value > TK_POS_LIMIT)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: ROPE_ORIGINAL_MAX_POS = %lld must be in [1, 2^53]", fn,
                            (long long)value);
        pe->original_max_pos = value;
        break;
    case TOKEMB_ROPE_SEQ_LEN:
        if (value < 0 || value > TK_POS_LIMIT)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: ROPE_SEQ_LEN = %lld must be in [0, 2^53]", fn,
                            (long long)value);
        pe->seq_len = value;
        break;
    default: /* TOKEMB_ROPE_TRUNCATE */
        if (value != 0 && value != 1)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d takes 0 or 1, not %lld", fn, (int)param,
                            (long long)value);
        pe->truncate = (int32_t)value;
        break;
    }
    tk_rope_refresh(pe);
    return TOKEMB_OK;
}

static int32_t tk_rope_set_f64(const char *fn, tokemb_posenc *pe, int32_t param, double value) {
    const int nonneg =
        param == TOKEMB_ROPE_ATTN_FACTOR || param == TOKEMB_ROPE_MSCALE || param == TOKEMB_ROPE_MSCALE_ALL_DIM;
    if (nonneg ? value < 0 : value <= 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d = %g must be %s", fn, (int)param, value,
                        nonneg ? ">= 0" : "> 0");
    switch (param) {
    case TOKEMB_ROPE_FACTOR: pe->factor = value; break;
    case TOKEMB_ROPE_BETA_FAST: pe->beta_fast = value; break;
    case TOKEMB_ROPE_BETA_SLOW: pe->beta_slow = value; break;
    case TOKEMB_ROPE_LOW_FREQ_FACTOR: pe->low_freq_factor = value; break;
    case TOKEMB_ROPE_HIGH_FREQ_FACTOR: pe->high_freq_factor = value; break;
    case TOKEMB_ROPE_ATTN_FACTOR: pe->attn_factor = value; break;
    case TOKEMB_ROPE_MSCALE: pe->mscale = value; break;
    default: pe->mscale_all_dim = value; break; /* TOKEMB_ROPE_MSCALE_ALL_DIM */
    }
    tk_rope_refresh(pe);
    return TOKEMB_OK;
}

static int64_t tk_rope_get_i64(const tokemb_posenc *pe, int32_t param) {
    switch (param) {
    case TOKEMB_ROPE_SCALING: return pe->scaling;
    case TOKEMB_ROPE_ORIGINAL_MAX_POS: return pe->original_max_pos;
    case TOKEMB_ROPE_SEQ_LEN: return pe->seq_len;
    default: return pe->truncate; /* TOKEMB_ROPE_TRUNCATE */
    }
}

static double tk_rope_get_f64(const tokemb_posenc *pe, int32_t param) {
    switch (param) {
    case TOKEMB_ROPE_FACTOR: return pe->factor;
    case TOKEMB_ROPE_BETA_FAST: return pe->beta_fast;
    case TOKEMB_ROPE_BETA_SLOW: return pe->beta_slow;
    case TOKEMB_ROPE_LOW_FREQ_FACTOR: return pe->low_freq_factor;
    case TOKEMB_ROPE_HIGH_FREQ_FACTOR: return pe->high_freq_factor;
    case TOKEMB_ROPE_ATTN_FACTOR: return pe->attn_factor;
    case TOKEMB_ROPE_MSCALE: return pe->mscale;
    default: return pe->mscale_all_dim; /* TOKEMB_ROPE_MSCALE_ALL_DIM */
    }
}

const tk_pe_family tk_pe_rope = {TK_PE_ROPE,      "RoPE",          tk_rope_param_type, tk_rope_set_i64,
                                 tk_rope_set_f64, tk_rope_get_i64, tk_rope_get_f64};

int32_t tokemb_posenc_create_rope(int64_t head_dim, int64_t rotary_dim, double base, int32_t layout,
                                  tokemb_posenc **out) {
    static const char fn[] = "tokemb_posenc_create_rope";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (head_dim < 2 || head_dim > ((int64_t)1 << 30))
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: head_dim = %lld is outside [2, 2^30]", fn, (long long)head_dim);
    if (rotary_dim < 2 || rotary_dim > head_dim || (rotary_dim & 1))
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: rotary_dim = %lld must be even and in [2, head_dim = %lld]", fn,
                        (long long)rotary_dim, (long long)head_dim);
    if (!isfinite(base) || base <= 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: base = %g must be finite and > 0", fn, base);
    if (layout != TOKEMB_NEOX && layout != TOKEMB_GPTJ)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown layout %d (NEOX 0, GPTJ 1)", fn, (int)layout);
    tokemb_posenc *pe = tk_pe_new(&tk_pe_rope);
    if (!pe) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the encoder", fn);
    /* the parameters' documented defaults */
    pe->factor = 1.0;
    pe->beta_fast = 32.0;
    pe->beta_slow = 1.0;
    pe->low_freq_factor = 1.0;
    pe->high_freq_factor = 4.0;
    pe->truncate = 1;
    pe->dim = head_dim;
    pe->rotary_dim = rotary_dim;
    pe->base = base;
    pe->layout = layout;
    pe->scaling = TOKEMB_ROPE_SCALING_NONE;
    pe->rope_inv = (double *)tk_malloc((size_t)(rotary_dim / 2) * sizeof(double));
    if (!pe->rope_inv) {
        tokemb_posenc_free(pe);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %lld frequencies", fn, (long long)(rotary_dim / 2));
    }
    tk_rope_refresh(pe);
    *out = pe;
    return TOKEMB_OK;
}

int32_t tokemb_posenc_rope_set_longrope_factors(tokemb_posenc *pe, const double *short_factor,
                                                const double *long_factor, size_t n) {
    static const char fn[] = "tokemb_posenc_rope_set_longrope_factors";
    if (!pe) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: encoder is NULL", fn);
    if (pe->kind != TK_PE_ROPE) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: not a RoPE encoder", fn);
    if (!short_factor || !long_factor)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s is NULL", fn, short_factor ? "long_factor" : "short_factor");
    size_t half = (size_t)pe->rotary_dim / 2;
    if (n != half)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: n = %zu, expected rotary_dim/2 = %zu factors", fn, n, half);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(short_factor[i]) || short_factor[i] <= 0)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: short_factor[%zu] = %g must be finite and > 0", fn, i,
                            short_factor[i]);
        if (!isfinite(long_factor[i]) || long_factor[i] <= 0)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: long_factor[%zu] = %g must be finite and > 0", fn, i,
                            long_factor[i]);
    }
    double *s = (double *)tk_malloc(n * sizeof(double)), *l = (double *)tk_malloc(n * sizeof(double));
    if (!s || !l) {
        tk_free(s);
        tk_free(l);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot copy %zu factors", fn, n);
    }
    memcpy(s, short_factor, n * sizeof(double));
    memcpy(l, long_factor, n * sizeof(double));
    tk_free(pe->short_factor);
    tk_free(pe->long_factor);
    pe->short_factor = s;
    pe->long_factor = l;
    tk_rope_refresh(pe);
    return TOKEMB_OK;
}

/* YaRN / DeepSeek get_mscale */
static double tk_yarn_mscale(double s, double m) { return s <= 1.0 ? 1.0 : 0.1 * m * log(s) + 1.0; }

/* transformers' find_correction_dim */
static double tk_yarn_corr_dim(double n_rot, double r, double base, double l0) {
    return r * log(l0 / (n_rot * TK_TWO_PI)) / (2.0 * log(base));
}

/* A configuration error of tk_rope_freqs: reported under fn, or only returned when fn is NULL (the
 * setters' refresh of the cached frequencies must not leave an error message behind a success). */
#define TK_FREQ_ERR(...) (fn ? tk_error(TOKEMB_INVALID_ARGUMENT, __VA_ARGS__) : TOKEMB_INVALID_ARGUMENT)

/* The scaled inv_freq[r/2] and attention factor of the current configuration (transformers'
 * _compute_*_parameters, in double). Checks the configuration as a whole. */
static int32_t tk_rope_freqs(const char *fn, const tokemb_posenc *pe, double *inv, double *attn) {
    const int64_t r = pe->rotary_dim, half = r / 2;
    const double s = pe->factor, l0 = (double)pe->original_max_pos;
    double base = pe->base, A = 1.0;
    int sc = pe->scaling;
    if (sc != TOKEMB_ROPE_SCALING_NONE && sc != TOKEMB_ROPE_SCALING_LINEAR && pe->original_max_pos < 1)
        return TK_FREQ_ERR("%s: RoPE scaling %d needs TOKEMB_ROPE_ORIGINAL_MAX_POS (original_max_position_embeddings)",
                           fn, sc);
    if (sc == TOKEMB_ROPE_SCALING_DYNAMIC && pe->seq_len > pe->original_max_pos) {
        if (r <= 2) return TK_FREQ_ERR("%s: dynamic NTK needs rotary_dim > 2 (exponent r/(r-2))", fn);
        base = base * pow(s * (double)pe->seq_len / l0 - (s - 1.0), (double)r / (double)(r - 2));
    }
    for (int64_t i = 0; i < half; i++) inv[i] = 1.0 / pow(base, (double)(2 * i) / (double)r);
    switch (sc) {
    case TOKEMB_ROPE_SCALING_LINEAR:
        for (int64_t i = 0; i < half; i++) inv[i] /= s;
        break;
    case TOKEMB_ROPE_SCALING_YARN: {
        if (pe->beta_fast < pe->beta_slow)
            return TK_FREQ_ERR("%s: YaRN beta_fast = %g is below beta_slow = %g", fn, pe->beta_fast, pe->beta_slow);
        if (pe->base == 1.0) return TK_FREQ_ERR("%s: YaRN needs base != 1 (ln(base) divides)", fn);
        double low = tk_yarn_corr_dim(pe->beta_fast, (double)r, pe->base, l0);
        double high = tk_yarn_corr_dim(pe->beta_slow, (double)r, pe->base, l0);
        if (pe->truncate) {
            low = floor(low);
            high = ceil(high);
        }
        if (low < 0) low = 0;
        if (high > (double)(r - 1)) high = (double)(r - 1);
        if (low == high) high += 0.001;
        for (int64_t i = 0; i < half; i++) {
            double ramp = ((double)i - low) / (high - low);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            double w = 1.0 - ramp; /* weight of the extrapolated (unscaled) frequency */
            inv[i] = (inv[i] / s) * (1.0 - w) + inv[i] * w;
        }
        if (pe->mscale != 0 && pe->mscale_all_dim != 0)
            A = tk_yarn_mscale(s, pe->mscale) / tk_yarn_mscale(s, pe->mscale_all_dim);
        else A = tk_yarn_mscale(s, 1.0);
        break;
    }
    case TOKEMB_ROPE_SCALING_LLAMA3: {
        const double lo = pe->low_freq_factor, hi = pe->high_freq_factor;
        if (!(hi > lo))
            return TK_FREQ_ERR("%s: llama3 high_freq_factor = %g must exceed low_freq_factor = %g", fn, hi, lo);
        const double low_wl = l0 / lo, high_wl = l0 / hi;
        for (int64_t i = 0; i < half; i++) {
            double wl = TK_TWO_PI / inv[i];
            if (wl < high_wl) continue;
            if (wl > low_wl) {
                inv[i] /= s;
            } else {
                double g = (l0 / wl - lo) / (hi - lo);
                inv[i] = (1.0 - g) * inv[i] / s + g * inv[i];
            }
        }
        break;
    }
    case TOKEMB_ROPE_SCALING_LONGROPE: {
        if (!pe->short_factor)
            return TK_FREQ_ERR("%s: LONGROPE needs its factors (tokemb_posenc_rope_set_longrope_factors)", fn);
        const double *lam = pe->seq_len > pe->original_max_pos ? pe->long_factor : pe->short_factor;
        for (int64_t i = 0; i < half; i++) inv[i] = 1.0 / (lam[i] * pow(pe->base, (double)(2 * i) / (double)r));
        if (s > 1.0) {
            if (pe->original_max_pos < 2)
                return TK_FREQ_ERR("%s: LONGROPE attention factor needs ORIGINAL_MAX_POS >= 2", fn);
            A = sqrt(1.0 + log(s) / log(l0));
        }
        break;
    }
    default: break;
    }
    if (pe->attn_factor > 0) A = pe->attn_factor;
    *attn = A;
    return TOKEMB_OK;
}

void tk_rope_refresh(tokemb_posenc *pe) {
    pe->rope_ok = tk_rope_freqs(NULL, pe, pe->rope_inv, &pe->rope_A) == TOKEMB_OK;
}

/* The frequencies and attention factor of a call: the cached ones, or (for a configuration that does
 * not hold together) the error, reported under fn. */
static int32_t tk_rope_use(const char *fn, const tokemb_posenc *pe, const double **inv, double *A) {
    if (TK_UNLIKELY(!pe->rope_ok)) {
        size_t half = (size_t)pe->rotary_dim / 2;
        double *tmp = (double *)tk_malloc(half * sizeof(double));
        if (!tmp) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu frequencies", fn, half);
        int32_t st = tk_rope_freqs(fn, pe, tmp, A);
        tk_free(tmp);
        /* tk_rope_freqs is a pure function of the configuration: what the refresh rejected fails here
         * too, now with its message */
        return st ? st : tk_error(TOKEMB_INVALID_ARGUMENT, "%s: RoPE configuration changed without a setter", fn);
    }
    *inv = pe->rope_inv;
    *A = pe->rope_A;
    return TOKEMB_OK;
}

static int32_t tk_check_rope(const char *fn, const tokemb_posenc *pe) {
    if (!pe) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: encoder is NULL", fn);
    if (pe->kind != TK_PE_ROPE) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: not a RoPE encoder", fn);
    return TOKEMB_OK;
}

int32_t tokemb_posenc_rope_inv_freq(const tokemb_posenc *pe, double *inv_freq, size_t n, double *attn_factor) {
    static const char fn[] = "tokemb_posenc_rope_inv_freq";
    int32_t st = tk_check_rope(fn, pe);
    if (st) return st;
    size_t half = (size_t)pe->rotary_dim / 2;
    if (inv_freq && n != half)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: n = %zu, expected rotary_dim/2 = %zu", fn, n, half);
    double *tmp = (double *)tk_malloc(half * sizeof(double));
    if (!tmp) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu frequencies", fn, half);
    double A;
    st = tk_rope_freqs(fn, pe, tmp, &A);
    if (st == TOKEMB_OK) {
        if (inv_freq) memcpy(inv_freq, tmp, half * sizeof(double));
        if (attn_factor) *attn_factor = A;
    }
    tk_free(tmp);
    return st;
}

static int32_t tk_check_rope_positions(const char *fn, const int64_t *pos, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (TK_UNLIKELY(pos[i] < 0 || pos[i] > TK_POS_LIMIT))
            return tk_error(TOKEMB_OUT_OF_RANGE, "%s: position %lld at index %zu is outside [0, 2^53]", fn,
                            (long long)pos[i], i);
    return TOKEMB_OK;
}

int32_t tokemb_posenc_rope_cos_sin(const tokemb_posenc *pe, const int64_t *positions, size_t n, float *cos_out,
                                   float *sin_out) {
    static const char fn[] = "tokemb_posenc_rope_cos_sin";
    int32_t st = tk_check_rope(fn, pe);
    if (st) return st;
    if (n == 0) return TOKEMB_OK;
    if (!positions || !cos_out || !sin_out)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: positions, cos_out and sin_out must be non-NULL with n = %zu", fn,
                        n);
    size_t half = (size_t)pe->rotary_dim / 2, total;
    if (tk_mul_overflow(n, half, &total) || tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: n = %zu x %zu pairs overflows", fn, n, half);
    if ((st = tk_check_rope_positions(fn, positions, n))) return st;
    const double *inv = NULL;
    double A;
    if ((st = tk_rope_use(fn, pe, &inv, &A))) return st;
    for (size_t t = 0; t < n; t++)
        tk_rope_cos_sin_f32(inv, A, (double)positions[t], half, cos_out + t * half, sin_out + t * half);
    return TOKEMB_OK;
}

/* ---- application -------------------------------------------------------------------------------- */

#define TK_ROPE_BLOCK 64 /* pairs whose cos/sin sit on the stack at once */

typedef struct {
    float *x;
    const int64_t *pos;
    const double *inv;
    double A;
    size_t seq, n_heads, half;
    size_t sb, sh, ss; /* element strides of batch, head, seq */
    int layout, backward;
} tk_rope_ctx;

static void tk_rope_range(void *p, size_t b, size_t e) {
    const tk_rope_ctx *c = (const tk_rope_ctx *)p;
    float cs[TK_ROPE_BLOCK], sn[TK_ROPE_BLOCK];
    for (size_t it = b; it < e; it++) {
        size_t bi = it / c->seq, si = it % c->seq;
        float *tok = c->x + bi * c->sb + si * c->ss;
        for (size_t k0 = 0; k0 < c->half; k0 += TK_ROPE_BLOCK) {
            size_t m = c->half - k0 < TK_ROPE_BLOCK ? c->half - k0 : TK_ROPE_BLOCK;
            tk_rope_cos_sin_f32(c->inv + k0, c->A, (double)c->pos[it], m, cs, sn);
            tk_rope_rotate_f32(tok, c->n_heads, c->sh, c->layout, c->half, k0, m, cs, sn, c->backward);
        }
    }
}

static int32_t tk_rope_run(const char *fn, const tokemb_posenc *pe, float *x, size_t batch, size_t n_heads, size_t seq,
                           size_t sb, size_t sh, size_t ss, const int64_t *positions, int backward) {
    int32_t st = tk_check_rope(fn, pe);
    if (st) return st;
    size_t n;
    if (tk_mul_overflow(batch, seq, &n)) return tk_error(TOKEMB_OVERFLOW, "%s: batch x seq overflows", fn);
    if (n == 0) return TOKEMB_OK;
    if (n_heads == 0) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: n_heads is 0", fn);
    if (!x) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: x is NULL", fn);
    if (!positions) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: positions is NULL", fn);
    /* the largest element offset touched must fit */
    size_t a, bb, cc, last;
    if (tk_mul_overflow(batch - 1, sb, &a) || tk_mul_overflow(n_heads - 1, sh, &bb) ||
        tk_mul_overflow(seq - 1, ss, &cc) || __builtin_add_overflow(a, bb, &last) ||
        __builtin_add_overflow(last, cc, &last) || __builtin_add_overflow(last, (size_t)pe->dim, &last) ||
        tk_mul_overflow(last, sizeof(float), &last))
        return tk_error(TOKEMB_OVERFLOW, "%s: the extent of x overflows", fn);
    if ((st = tk_check_rope_positions(fn, positions, n))) return st;
    size_t half = (size_t)pe->rotary_dim / 2;
    const double *inv = NULL;
    double A;
    if ((st = tk_rope_use(fn, pe, &inv, &A))) return st;
    tk_rope_ctx ctx = {x, positions, inv, A, seq, n_heads, half, sb, sh, ss, pe->layout, backward};
    /* a worker thread costs tens of microseconds to start: each gets >= ~128K pairs (~25 us of work) */
    size_t work = n_heads * half + 1;
    tk_parallel_for(n, 131072 / work + 1, tk_rope_range, &ctx);
    return TOKEMB_OK;
}

static int32_t tk_rope_contiguous(const char *fn, const tokemb_posenc *pe, float *x, size_t n_tokens, size_t n_heads,
                                  const int64_t *positions, int backward) {
    size_t hd = pe ? (size_t)pe->dim : 0, tok_stride;
    if (tk_mul_overflow(n_heads, hd, &tok_stride))
        return tk_error(TOKEMB_OVERFLOW, "%s: n_heads = %zu x head_dim = %zu overflows", fn, n_heads, hd);
    return tk_rope_run(fn, pe, x, 1, n_heads, n_tokens, 0, hd, tok_stride, positions, backward);
}

int32_t tokemb_rope_apply(const tokemb_posenc *pe, float *x, size_t n_tokens, size_t n_heads,
                          const int64_t *positions) {
    return tk_rope_contiguous("tokemb_rope_apply", pe, x, n_tokens, n_heads, positions, 0);
}

int32_t tokemb_rope_apply_backward(const tokemb_posenc *pe, float *grad, size_t n_tokens, size_t n_heads,
                                   const int64_t *positions) {
    return tk_rope_contiguous("tokemb_rope_apply_backward", pe, grad, n_tokens, n_heads, positions, 1);
}

int32_t tokemb_posenc_rope_apply_strided(const tokemb_posenc *pe, float *x, size_t batch, size_t n_heads, size_t seq,
                                         int64_t stride_batch, int64_t stride_head, int64_t stride_seq,
                                         const int64_t *positions, int32_t backward) {
    static const char fn[] = "tokemb_posenc_rope_apply_strided";
    if (stride_batch < 0 || stride_head < 0 || stride_seq < 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: strides (%lld, %lld, %lld) must be >= 0", fn,
                        (long long)stride_batch, (long long)stride_head, (long long)stride_seq);
    if (backward != 0 && backward != 1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: backward = %d must be 0 or 1", fn, (int)backward);
    return tk_rope_run(fn, pe, x, batch, n_heads, seq, (size_t)stride_batch, (size_t)stride_head, (size_t)stride_seq,
                       positions, backward);
}
