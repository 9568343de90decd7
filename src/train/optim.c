/* optim.c - fused sparse optimizers whose state belongs to the table (t->optim, freed by
 * tokemb_table_free through t->optim_free). Updates coalesce the gradient (grad.c) and touch only the
 * referenced rows and their state; see docs/training.md for the exact formulas. */
#include "train/train.h"

#include <math.h>
#include <string.h>

typedef struct {
    int32_t kind;
    int64_t steps;
    double lr, wd, eps, beta1, beta2, lr_decay, init_acc;
    float *s1, *s2; /* allocated on the first step */
} tk_optim_state;

static void tk_optim_state_free(void *p) {
    tk_optim_state *s = (tk_optim_state *)p;
    if (!s) return;
    tk_aligned_free(s->s1);
    tk_aligned_free(s->s2);
    tk_free(s);
}

static tk_optim_state *tk_state(const tokemb_table *t) {
    return t->optim_free == tk_optim_state_free ? (tk_optim_state *)t->optim : NULL;
}

int32_t tokemb_optim_select(tokemb_table *t, int32_t kind) {
    static const char fn[] = "tokemb_optim_select";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (kind < TOKEMB_OPTIM_SGD || kind > TOKEMB_OPTIM_SPARSE_ADAM)
        return tk_error(TOKEMB_INVALID_ARGUMENT,
                        "%s: unknown optimizer kind %d (SGD 0, ROWWISE_ADAGRAD 1, ADAGRAD 2, SPARSE_ADAM 3)", fn,
                        (int)kind);
    if (t->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: optimizer updates need F32 storage (dtype %d)", fn, (int)t->dtype);
    tk_optim_state *s = (tk_optim_state *)tk_calloc(1, sizeof *s);
    if (!s) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the optimizer state", fn);
    s->kind = kind;
    s->lr = kind == TOKEMB_OPTIM_SPARSE_ADAM ? 1e-3 : 1e-2;
    s->eps = kind == TOKEMB_OPTIM_ADAGRAD ? 1e-10 : 1e-8;
    s->beta1 = 0.9;
    s->beta2 = 0.999;
    if (t->optim && t->optim_free) t->optim_free(t->optim);
    t->optim = s;
    t->optim_free = tk_optim_state_free;
    return TOKEMB_OK;
}

/* Whether `param` applies to `kind`. */
static int tk_param_applies(int32_t kind, int32_t param) {
    switch (param) {
    case TOKEMB_OPTIM_LR: return 1;
    case TOKEMB_OPTIM_WEIGHT_DECAY: return kind == TOKEMB_OPTIM_SGD || kind == TOKEMB_OPTIM_ROWWISE_ADAGRAD;
    case TOKEMB_OPTIM_EPS: return kind != TOKEMB_OPTIM_SGD;
    case TOKEMB_OPTIM_BETA1:
    case TOKEMB_OPTIM_BETA2: return kind == TOKEMB_OPTIM_SPARSE_ADAM;
    case TOKEMB_OPTIM_LR_DECAY: return kind == TOKEMB_OPTIM_ADAGRAD;
    case TOKEMB_OPTIM_INITIAL_ACCUMULATOR: return kind == TOKEMB_OPTIM_ADAGRAD || kind == TOKEMB_OPTIM_ROWWISE_ADAGRAD;
    default: return -1;
    }
}

static double *tk_param_slot(tk_optim_state *s, int32_t param) {
    switch (param) {
    case TOKEMB_OPTIM_LR: return &s->lr;
    case TOKEMB_OPTIM_WEIGHT_DECAY: return &s->wd;
    case TOKEMB_OPTIM_EPS: return &s->eps;
    case TOKEMB_OPTIM_BETA1: return &s->beta1;
    case TOKEMB_OPTIM_BETA2: return &s->beta2;
    case TOKEMB_OPTIM_LR_DECAY: return &s->lr_decay;
    default: return &s->init_acc;
    }
}

static int32_t tk_check_param(const char *fn, const tokemb_table *t, int32_t param, tk_optim_state **out) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    tk_optim_state *s = tk_state(t);
    if (!s) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: no optimizer selected (call tokemb_optim_select)", fn);
    int ap = tk_param_applies(s->kind, param);
    if (ap < 0) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown optimizer parameter %d", fn, (int)param);
    if (ap == 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d does not apply to optimizer kind %d", fn, (int)param,
                        (int)s->kind);
    *out = s;
    return TOKEMB_OK;
}

int32_t tokemb_optim_set_param_f64(tokemb_table *t, int32_t param, double value) {
    static const char fn[] = "tokemb_optim_set_param_f64";
    tk_optim_state *s = NULL;
    int32_t st = tk_check_param(fn, t, param, &s);
    if (st) return st;
    int bad = !isfinite(value) || value < 0.0;
    if ((param == TOKEMB_OPTIM_BETA1 || param == TOKEMB_OPTIM_BETA2) && value >= 1.0) bad = 1;
    if (param == TOKEMB_OPTIM_INITIAL_ACCUMULATOR && s->s1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: the initial accumulator must be set before the first step", fn);
    if (bad)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: value %g is out of range for parameter %d", fn, value,
                        (int)param);
    *tk_param_slot(s, param) = value;
    return TOKEMB_OK;
}

int32_t tokemb_optim_get_param_f64(const tokemb_table *t, int32_t param, double *value) {
    static const char fn[] = "tokemb_optim_get_param_f64";
    tk_optim_state *s = NULL;
    int32_t st = tk_check_param(fn, t, param, &s);
    if (st) return st;
    if (!value) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: value is NULL", fn);
    *value = *tk_param_slot(s, param);
    return TOKEMB_OK;
}

int64_t tokemb_optim_step_count(const tokemb_table *t) {
    if (!t) return -1;
    tk_optim_state *s = tk_state(t);
    return s ? s->steps : -1;
}

/* Checks shared by the steps: optimizer selected, writable, F32. */
static int32_t tk_check_step(const char *fn, tokemb_table *t, tk_optim_state **out) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    tk_optim_state *s = tk_state(t);
    if (!s) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: no optimizer selected (call tokemb_optim_select)", fn);
    if (t->frozen) return tk_error(TOKEMB_READ_ONLY, "%s: the table is frozen (TOKEMB_FROZEN)", fn);
    if ((st = tk_check_writable(fn, t))) return st;
    if (t->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: optimizer updates need F32 storage (dtype %d)", fn, (int)t->dtype);
    *out = s;
    return TOKEMB_OK;
}

/* Allocates the state arrays on first use (before any row changes). */
static int32_t tk_ensure_state(const char *fn, const tokemb_table *t, tk_optim_state *s) {
    if (s->kind == TOKEMB_OPTIM_SGD || s->s1) return TOKEMB_OK;
    size_t n = (size_t)t->rows;
    if (s->kind != TOKEMB_OPTIM_ROWWISE_ADAGRAD && tk_mul_overflow(n, (size_t)t->dim, &n))
        return tk_error(TOKEMB_OVERFLOW, "%s: optimizer state size overflows", fn);
    size_t bytes;
    if (tk_mul_overflow(n, sizeof(float), &bytes))
        return tk_error(TOKEMB_OVERFLOW, "%s: optimizer state size overflows", fn);
    float *s1 = (float *)tk_aligned_alloc(bytes), *s2 = NULL;
    if (s1 && s->kind == TOKEMB_OPTIM_SPARSE_ADAM) s2 = (float *)tk_aligned_alloc(bytes);
    if (!s1 || (s->kind == TOKEMB_OPTIM_SPARSE_ADAM && !s2)) {
        tk_aligned_free(s1);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu bytes of optimizer state", fn, bytes);
    }
    if (s->init_acc != 0.0) {
        float v = (float)s->init_acc;
        for (size_t i = 0; i < n; i++) s1[i] = v;
    }
    s->s1 = s1;
    s->s2 = s2;
    return TOKEMB_OK;
}

typedef struct {
    const tk_optim_args *a;
} tk_optim_ctx;

static void tk_optim_range(void *p, size_t u0, size_t u1) {
    const tk_optim_ctx *c = (const tk_optim_ctx *)p;
    tk_optim_rows_f32(c->a, u0, u1);
}

/* Applies one step to unique rows (ids[u], g[u]); the state is allocated. */
static void tk_apply(tokemb_table *t, tk_optim_state *s, const int64_t *ids, size_t u, const float *g) {
    s->steps++;
    tk_optim_args a;
    memset(&a, 0, sizeof a);
    a.kind = s->kind; /* TOKEMB_OPTIM_* == TK_OPT_* */
    a.w = (float *)t->data;
    a.w_stride = (size_t)t->row_stride;
    a.dim = (size_t)t->dim;
    a.rows_i64 = ids;
    a.g = g;
    a.g_stride = (size_t)t->dim;
    a.s1 = s->s1;
    a.s2 = s->s2;
    a.lr_f = (float)s->lr;
    a.wd_f = (float)s->wd;
    a.eps_f = (float)s->eps;
    a.one_minus_b1 = (float)(1.0 - s->beta1);
    a.one_minus_b2 = (float)(1.0 - s->beta2);
    double step = (double)s->steps;
    double clr = s->lr / (1.0 + (step - 1.0) * s->lr_decay);
    a.neg_clr_f = (float)(-clr);
    double bc1 = 1.0 - pow(s->beta1, step), bc2 = 1.0 - pow(s->beta2, step);
    a.neg_step_f = (float)(-(s->lr * sqrt(bc2) / bc1));
    if (u == 0) return;
    tk_optim_ctx c = {&a};
    size_t grain = (size_t)16384 / (a.dim ? a.dim : 1);
    tk_parallel_for(u, grain ? grain : 1, tk_optim_range, &c);
}

static int32_t tk_optim_step_impl(const char *fn, tokemb_table *t, const void *ids, int idw, size_t n,
                                  const float *grad_out) {
    tk_optim_state *s = NULL;
    int32_t st = tk_check_step(fn, t, &s);
    if (st) return st;
    if ((st = tk_check_grad_args(fn, t, ids, idw, n, grad_out))) return st;
    if (n == 0) {
        if ((st = tk_ensure_state(fn, t, s))) return st;
        tk_apply(t, s, NULL, 0, NULL);
        return TOKEMB_OK;
    }
    /* every fallible step (scratch, coalescing, state allocation) precedes the first write */
    int64_t *uids = (int64_t *)tk_malloc(n * sizeof(int64_t));
    float *rows = (float *)tk_aligned_alloc(n * (size_t)t->dim * sizeof(float));
    if (!uids || !rows) {
        tk_free(uids);
        tk_aligned_free(rows);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the coalesced gradient of %zu rows", fn, n);
    }
    size_t u = 0;
    st = tk_coalesce(fn, t, ids, idw, n, grad_out, uids, rows, &u);
    if (st == TOKEMB_OK) st = tk_ensure_state(fn, t, s);
    if (st == TOKEMB_OK) tk_apply(t, s, uids, u, rows);
    tk_free(uids);
    tk_aligned_free(rows);
    return st;
}

int32_t tokemb_optim_step(tokemb_table *t, const int64_t *ids, size_t n, const float *grad_out) {
    return tk_optim_step_impl("tokemb_optim_step", t, ids, 8, n, grad_out);
}

int32_t tokemb_optim_step_i32(tokemb_table *t, const int32_t *ids, size_t n, const float *grad_out) {
    return tk_optim_step_impl("tokemb_optim_step_i32", t, ids, 4, n, grad_out);
}

int32_t tokemb_optim_step_coalesced(tokemb_table *t, const int64_t *unique_ids, size_t n_unique, const float *rows) {
    static const char fn[] = "tokemb_optim_step_coalesced";
    tk_optim_state *s = NULL;
    int32_t st = tk_check_step(fn, t, &s);
    if (st) return st;
    if ((st = tk_check_grad_args(fn, t, unique_ids, 8, n_unique, rows))) return st;
    for (size_t i = 1; i < n_unique; i++)
        if (unique_ids[i] <= unique_ids[i - 1])
            return tk_error(TOKEMB_INVALID_ARGUMENT,
                            "%s: unique_ids must be strictly increasing: unique_ids[%zu] = %lld after %lld", fn, i,
                            (long long)unique_ids[i], (long long)unique_ids[i - 1]);
    if ((st = tk_ensure_state(fn, t, s))) return st;
    tk_apply(t, s, unique_ids, n_unique, rows);
    return TOKEMB_OK;
}
