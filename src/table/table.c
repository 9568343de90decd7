/* table.c - tokemb_table: create, wrap, free, accessors, parameters, row access, initialisation. */
#include "table/table.h"
#include "kernels/kernels.h"
#include "kernels/rng_torch.h"
#include "table/storage.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

int32_t tk_check_table(const char *fn, const tokemb_table *t) {
    if (!t) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: table is NULL", fn);
    return TOKEMB_OK;
}

int32_t tk_check_writable(const char *fn, const tokemb_table *t) {
    if (t->flags & TK_TABLE_READONLY)
        return tk_error(TOKEMB_READ_ONLY, "%s: the table wraps read-only memory (TOKEMB_WRAP_READONLY)", fn);
    return TOKEMB_OK;
}

/* Calls with this many ids and more scan them on every thread, in ranges like the work that follows (each
 * thread then finds much of its share of the ids in its own cache): on one thread the scan streams every id
 * from the last-level cache before the work starts; bags of 16-float rows ran 1.5x faster at 2 threads
 * with the scan skipped (an experiment), and 1.3-1.5x faster with it parallel (docs/performance.md, "Tuning
 * record"). The first bad index is the smallest any range reports, so the error is the serial scan's. */
#define TK_IDS_PAR_MIN 32768u
#define TK_IDS_PAR_GRAIN 16384u

typedef struct {
    const void *ids;
    int id_width;
    int64_t rows;
    _Atomic size_t first; /* smallest bad index found, n if none */
} tk_ids_scan;

static void tk_ids_scan_range(void *p, size_t b, size_t e) {
    tk_ids_scan *c = (tk_ids_scan *)p;
    const size_t k = tk_ids_first_bad((const char *)c->ids + b * (size_t)c->id_width, c->id_width, e - b, c->rows);
    if (k == e - b) return;
    size_t cur = atomic_load(&c->first);
    while (b + k < cur && !atomic_compare_exchange_weak(&c->first, &cur, b + k)) {}
}

int32_t tk_check_ids(const char *fn, const void *ids, int id_width, size_t n, int64_t rows) {
    size_t i; /* kernels/gather.c: branch-free, vectorised */
    if (n >= TK_IDS_PAR_MIN && tokemb_get_num_threads() > 1) {
        tk_ids_scan c = {ids, id_width, rows, n};
        tk_parallel_for(n, TK_IDS_PAR_GRAIN, tk_ids_scan_range, &c);
        i = atomic_load(&c.first);
    } else {
        i = tk_ids_first_bad(ids, id_width, n, rows);
    }
    if (TK_UNLIKELY(i < n))
        return tk_error(TOKEMB_OUT_OF_RANGE, "%s: token id %lld at index %zu is outside [0, %lld)", fn,
                        (long long)tk_id_at(ids, id_width, i), i, (long long)rows);
    return TOKEMB_OK;
}

int32_t tk_check_no_overlap(const char *fn, const tokemb_table *t, const void *buf, size_t bytes, const char *what) {
    const uintptr_t a = (uintptr_t)t->data, b = (uintptr_t)buf;
    const size_t tb = (size_t)t->rows * (size_t)t->row_stride * tk_dtype_size(t->dtype);
    if (bytes == 0 || !(b < a + tb && a < b + bytes)) return TOKEMB_OK;
    return tk_error(TOKEMB_INVALID_ARGUMENT,
                    "%s: %s [%p, %p) overlaps the table storage [%p, %p); use a separate buffer", fn, what, buf,
                    (const void *)(b + bytes), t->data, (const void *)(a + tb));
}

/* Checks dtype and shape, computes the storage byte count of rows x row_stride. */
static int32_t tk_table_shape(const char *fn, int64_t rows, int64_t dim, int64_t row_stride, int32_t dtype,
                              size_t *bytes) {
    if (rows < 1 || dim < 1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: rows = %lld and dim = %lld must both be >= 1", fn,
                        (long long)rows, (long long)dim);
    if (row_stride < dim)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: row_stride = %lld is smaller than dim = %lld", fn,
                        (long long)row_stride, (long long)dim);
    const tk_dtype_traits *dt = tk_dtype_traits_of(dtype);
    if (!dt)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown dtype %d (F32 0, F16 1, BF16 2, Q8_ROW 3)", fn,
                        (int)dtype);
    /* rows that carry bytes after their dim elements (Q8_ROW: scale and bias) need the room in the stride */
    const int64_t extra = (int64_t)(dt->row_extra / dt->elem_size);
    if (extra && (dim > INT64_MAX - extra || row_stride < dim + extra))
        return tk_error(TOKEMB_INVALID_ARGUMENT,
                        "%s: %s row_stride = %lld elements is smaller than dim + %lld = %lld (codes, scale, bias)", fn,
                        dt->name, (long long)row_stride, (long long)extra,
                        (long long)(dim > INT64_MAX - extra ? INT64_MAX : dim + extra));
    const size_t es = dt->elem_size;
    size_t n;
    if ((uint64_t)rows > SIZE_MAX || (uint64_t)row_stride > SIZE_MAX ||
        tk_mul_overflow((size_t)rows, (size_t)row_stride, &n) || tk_mul_overflow(n, es, bytes) ||
        *bytes > (size_t)PTRDIFF_MAX)
        return tk_error(TOKEMB_OVERFLOW, "%s: %lld rows x %lld elements x %zu bytes overflows", fn, (long long)rows,
                        (long long)row_stride, es);
    return TOKEMB_OK;
}

static tokemb_table *tk_table_new(void) {
    tokemb_table *t = (tokemb_table *)tk_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->padding_idx = -1;
    t->nontemporal = 2; /* TOKEMB_NONTEMPORAL: auto */
    t->max_norm = 0.0;
    t->norm_type = 2.0;
    return t;
}

int32_t tokemb_table_create(int64_t rows, int64_t dim, int32_t dtype, tokemb_table **out) {
    static const char fn[] = "tokemb_table_create";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    size_t bytes = 0;
    /* rows carry their extra bytes (Q8_ROW: float scale and bias) after the dim elements */
    const tk_dtype_traits *dt = tk_dtype_traits_of(dtype);
    const int64_t extra = dt ? (int64_t)(dt->row_extra / dt->elem_size) : 0;
    if (dt && extra && dim > INT64_MAX - extra)
        return tk_error(TOKEMB_OVERFLOW, "%s: dim = %lld plus the %lld extra elements of each row overflows int64", fn,
                        (long long)dim, (long long)extra);
    const int64_t stride = (dim >= 1 && dim <= INT64_MAX - extra) ? dim + extra : dim;
    int32_t st = tk_table_shape(fn, rows, dim, stride, dtype, &bytes);
    if (st) return st;
    tokemb_table *t = tk_table_new();
    if (!t) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the table handle", fn);
    t->data = tk_aligned_alloc(bytes);
    if (!t->data) {
        tk_free(t);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu bytes for %lld x %lld", fn, bytes, (long long)rows,
                        (long long)dim);
    }
    t->rows = rows;
    t->dim = dim;
    t->row_stride = stride;
    t->dtype = dtype;
    t->flags = TK_TABLE_OWNED;
    *out = t;
    return TOKEMB_OK;
}

int32_t tokemb_table_wrap(void *data, int64_t rows, int64_t dim, int64_t row_stride, int32_t dtype, uint32_t flags,
                          tokemb_table **out) {
    static const char fn[] = "tokemb_table_wrap";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (!data) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: data is NULL", fn);
    if (flags & ~TOKEMB_WRAP_READONLY)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown flags 0x%x (only TOKEMB_WRAP_READONLY = 1)", fn,
                        (unsigned)flags);
    size_t bytes = 0;
    int32_t st = tk_table_shape(fn, rows, dim, row_stride, dtype, &bytes);
    if (st) return st;
    tokemb_table *t = tk_table_new();
    if (!t) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the table handle", fn);
    t->data = data;
    t->rows = rows;
    t->dim = dim;
    t->row_stride = row_stride;
    t->dtype = dtype;
    t->flags = (flags & TOKEMB_WRAP_READONLY) ? TK_TABLE_READONLY : 0u;
    *out = t;
    return TOKEMB_OK;
}

void tokemb_table_free(tokemb_table *t) {
    if (!t) return;
    if (t->optim && t->optim_free) t->optim_free(t->optim);
    if (t->flags & TK_TABLE_OWNED) tk_aligned_free(t->data);
    if (t->release) t->release(t->release_ctx);
    tk_free(t);
}

int64_t tokemb_table_rows(const tokemb_table *t) { return t ? t->rows : -1; }
int64_t tokemb_table_dim(const tokemb_table *t) { return t ? t->dim : -1; }
int64_t tokemb_table_row_stride(const tokemb_table *t) { return t ? t->row_stride : -1; }
int32_t tokemb_table_dtype(const tokemb_table *t) { return t ? t->dtype : -1; }
float *tokemb_table_data(tokemb_table *t) { return (t && t->dtype == TOKEMB_F32) ? (float *)t->data : NULL; }

static int32_t tk_check_row_range(const char *fn, const tokemb_table *t, int64_t row0, size_t n_rows, const void *buf) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (!buf) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: buffer is NULL", fn);
    if (n_rows == 0) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: n_rows is 0", fn);
    if (row0 < 0 || row0 >= t->rows || n_rows > (uint64_t)(t->rows - row0))
        return tk_error(TOKEMB_OUT_OF_RANGE, "%s: rows [%lld, %lld + %zu) are outside [0, %lld)", fn, (long long)row0,
                        (long long)row0, n_rows, (long long)t->rows);
    return TOKEMB_OK;
}

int32_t tokemb_table_read_rows(const tokemb_table *t, int64_t row0, size_t n_rows, float *out) {
    int32_t st = tk_check_row_range("tokemb_table_read_rows", t, row0, n_rows, out);
    if (st) return st;
    const size_t d = (size_t)t->dim;
    for (size_t r = 0; r < n_rows; r++) tk_row_read_f32(t, row0 + (int64_t)r, out + r * d);
    return TOKEMB_OK;
}

int32_t tokemb_table_write_rows(tokemb_table *t, int64_t row0, size_t n_rows, const float *src) {
    static const char fn[] = "tokemb_table_write_rows";
    int32_t st = tk_check_row_range(fn, t, row0, n_rows, src);
    if (st) return st;
    if ((st = tk_check_writable(fn, t))) return st;
    const size_t d = (size_t)t->dim;
    if ((st = tk_check_no_overlap(fn, t, src, n_rows * d * sizeof(float), "src"))) return st;
    if (t->dtype == TOKEMB_Q8_ROW) {
        size_t bad = tk_first_nonfinite(src, n_rows * d);
        if (bad < n_rows * d)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: src[%zu][%zu] = %g is not finite (Q8_ROW storage)", fn,
                            bad / d, bad % d, (double)src[bad]);
    }
    for (size_t r = 0; r < n_rows; r++) tk_row_write_f32(t, row0 + (int64_t)r, src + r * d);
    return TOKEMB_OK;
}

/* A new table of dtype with src's values (through float32) and all of its parameters. */
int32_t tokemb_table_convert(const tokemb_table *src, int32_t dtype, tokemb_table **out) {
    static const char fn[] = "tokemb_table_convert";
    int32_t st = tk_check_table(fn, src);
    if (st) return st;
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (tk_dtype_size(dtype) == 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown dtype %d (F32 0, F16 1, BF16 2, Q8_ROW 3)", fn,
                        (int)dtype);
    const size_t d = (size_t)src->dim;
    float *row = (float *)tk_malloc(d * sizeof(float));
    if (!row) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate a %zu-float row buffer", fn, d);
    if (dtype == TOKEMB_Q8_ROW) {
        for (int64_t r = 0; r < src->rows; r++) {
            tk_row_read_f32(src, r, row);
            size_t c = tk_first_nonfinite(row, d);
            if (c < d) {
                const double bad = (double)row[c];
                tk_free(row);
                return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: row %lld column %zu holds %g; Q8_ROW needs finite values",
                                fn, (long long)r, c, bad);
            }
        }
    }
    tokemb_table *t = NULL;
    if ((st = tokemb_table_create(src->rows, src->dim, dtype, &t))) {
        tk_free(row);
        return st;
    }
    for (int64_t r = 0; r < src->rows; r++) {
        tk_row_read_f32(src, r, row);
        tk_row_write_f32(t, r, row);
    }
    tk_free(row);
    t->padding_idx = src->padding_idx;
    t->max_norm = src->max_norm;
    t->norm_type = src->norm_type;
    t->scale_grad_by_freq = src->scale_grad_by_freq;
    t->frozen = src->frozen;
    t->nontemporal = src->nontemporal;
    *out = t;
    return TOKEMB_OK;
}

/* ---- parameters ---------------------------------------------------------------------------- */

static bool tk_param_is_f64(int32_t p) { return p == TOKEMB_MAX_NORM || p == TOKEMB_NORM_TYPE; }
static bool tk_param_is_i64(int32_t p) {
    return p == TOKEMB_PADDING_IDX || p == TOKEMB_SCALE_GRAD_BY_FREQ || p == TOKEMB_FROZEN || p == TOKEMB_NONTEMPORAL;
}

static int32_t tk_param_kind_error(const char *fn, int32_t param) {
    if (tk_param_is_f64(param))
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d is a double; use the _f64 setter/getter", fn,
                        (int)param);
    if (tk_param_is_i64(param))
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d is an int64; use the int64 setter/getter", fn,
                        (int)param);
    return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown table parameter %d (valid: 100..105)", fn, (int)param);
}

int32_t tokemb_table_set_param(tokemb_table *t, int32_t param, int64_t value) {
    static const char fn[] = "tokemb_table_set_param";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    switch (param) {
    case TOKEMB_PADDING_IDX:
        if (value == TOKEMB_NO_PADDING) {
            t->padding_idx = -1;
            return TOKEMB_OK;
        }
        if (value < -t->rows || value >= t->rows)
            return tk_error(TOKEMB_OUT_OF_RANGE, "%s: padding_idx %lld is outside [-%lld, %lld)", fn, (long long)value,
                            (long long)t->rows, (long long)t->rows);
        t->padding_idx = value < 0 ? t->rows + value : value;
        return TOKEMB_OK;
    case TOKEMB_NONTEMPORAL:
        if (value < 0 || value > 2)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: nontemporal takes 0 (off), 1 (on) or 2 (auto), got %lld", fn,
                            (long long)value);
        t->nontemporal = (int32_t)value;
        return TOKEMB_OK;
    case TOKEMB_SCALE_GRAD_BY_FREQ:
    case TOKEMB_FROZEN:
        if (value != 0 && value != 1)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: parameter %d takes 0 or 1, got %lld", fn, (int)param,
                            (long long)value);
        if (param == TOKEMB_FROZEN) t->frozen = (int32_t)value;
        else t->scale_grad_by_freq = (int32_t)value;
        return TOKEMB_OK;
    default: return tk_param_kind_error(fn, param);
    }
}

int32_t tokemb_table_set_param_f64(tokemb_table *t, int32_t param, double value) {
    static const char fn[] = "tokemb_table_set_param_f64";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    switch (param) {
    case TOKEMB_MAX_NORM:
        if (isnan(value)) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: max_norm is NaN", fn);
        t->max_norm = value > 0 ? value : 0.0;
        return TOKEMB_OK;
    case TOKEMB_NORM_TYPE:
        if (!(value > 0))
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: norm_type %g must be > 0 (INFINITY allowed)", fn, value);
        t->norm_type = value;
        return TOKEMB_OK;
    default: return tk_param_kind_error(fn, param);
    }
}

int32_t tokemb_table_get_param(const tokemb_table *t, int32_t param, int64_t *value) {
    static const char fn[] = "tokemb_table_get_param";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (!value) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: value is NULL", fn);
    switch (param) {
    case TOKEMB_PADDING_IDX: *value = t->padding_idx < 0 ? TOKEMB_NO_PADDING : t->padding_idx; return TOKEMB_OK;
    case TOKEMB_SCALE_GRAD_BY_FREQ: *value = t->scale_grad_by_freq; return TOKEMB_OK;
    case TOKEMB_FROZEN: *value = t->frozen; return TOKEMB_OK;
    case TOKEMB_NONTEMPORAL: *value = t->nontemporal; return TOKEMB_OK;
    default: return tk_param_kind_error(fn, param);
    }
}

int32_t tokemb_table_get_param_f64(const tokemb_table *t, int32_t param, double *value) {
    static const char fn[] = "tokemb_table_get_param_f64";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (!value) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: value is NULL", fn);
    switch (param) {
    case TOKEMB_MAX_NORM: *value = t->max_norm; return TOKEMB_OK;
    case TOKEMB_NORM_TYPE: *value = t->norm_type; return TOKEMB_OK;
    default: return tk_param_kind_error(fn, param);
    }
}

/* ---- initialisation ------------------------------------------------------------------------- */

typedef void (*tk_fill_fn)(float *x, size_t n, uint64_t seed, double a, double b);

/* Runs a torch fill over the table as if it were a contiguous [rows, dim] tensor, then zeroes the
 * padding row. Contiguous tables are filled in place; strided wraps go through a scratch buffer. */
static int32_t tk_table_fill(const char *fn, tokemb_table *t, tk_fill_fn fill, uint64_t seed, double a, double b) {
    int32_t st;
    if ((st = tk_check_writable(fn, t))) return st;
    if (t->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: initialisation needs F32 storage (dtype %d)", fn, (int)t->dtype);
    const size_t d = (size_t)t->dim, rows = (size_t)t->rows, n = rows * d;
    if (t->row_stride == t->dim) {
        fill((float *)t->data, n, seed, a, b);
    } else {
        float *tmp = (float *)tk_malloc(n * sizeof(float));
        if (!tmp) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu bytes of scratch", fn, n * sizeof(float));
        fill(tmp, n, seed, a, b);
        for (size_t r = 0; r < rows; r++) memcpy(tk_row_f32(t, (int64_t)r), tmp + r * d, d * sizeof(float));
        tk_free(tmp);
    }
    if (t->padding_idx >= 0) memset(tk_row_f32(t, t->padding_idx), 0, d * sizeof(float));
    return TOKEMB_OK;
}

int32_t tokemb_table_init_normal(tokemb_table *t, uint64_t seed, double mean, double std) {
    static const char fn[] = "tokemb_table_init_normal";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (!isfinite(mean) || !isfinite(std) || std < 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: mean = %g and std = %g must be finite with std >= 0", fn, mean,
                        std);
    return tk_table_fill(fn, t, tk_torch_normal_f32, seed, mean, std);
}

int32_t tokemb_table_init_normal_shard(tokemb_table *t, uint64_t seed, double mean, double std, int64_t global_rows,
                                       int64_t global_dim, int64_t row0, int64_t row_step, int64_t col0) {
    static const char fn[] = "tokemb_table_init_normal_shard";
    int32_t st;
    if ((st = tk_check_table(fn, t)) || (st = tk_check_writable(fn, t))) return st;
    if (t->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: initialisation needs F32 storage (dtype %d)", fn, (int)t->dtype);
    if (!isfinite(mean) || !isfinite(std) || std < 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: mean = %g and std = %g must be finite with std >= 0", fn, mean,
                        std);
    if (global_rows < 1 || global_dim < 1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: global shape [%lld, %lld] must have rows, dim >= 1", fn,
                        (long long)global_rows, (long long)global_dim);
    /* the stream reaches n + 16 draws: keep n below 2^62 */
    if (global_rows > (INT64_C(1) << 62) / global_dim)
        return tk_error(TOKEMB_OVERFLOW, "%s: global shape [%lld, %lld] has more than 2^62 elements", fn,
                        (long long)global_rows, (long long)global_dim);
    if (row0 < 0 || row0 >= global_rows || row_step < 1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: row0 = %lld must lie in [0, %lld) and row_step = %lld be >= 1",
                        fn, (long long)row0, (long long)global_rows, (long long)row_step);
    if ((global_rows - 1 - row0) / row_step < t->rows - 1)
        return tk_error(TOKEMB_OUT_OF_RANGE,
                        "%s: the table's %lld rows at global rows %lld + l * %lld pass the last global row %lld", fn,
                        (long long)t->rows, (long long)row0, (long long)row_step, (long long)(global_rows - 1));
    if (col0 < 0 || col0 > global_dim - t->dim)
        return tk_error(TOKEMB_OUT_OF_RANGE, "%s: columns [%lld, %lld + %lld) are outside the global dim %lld", fn,
                        (long long)col0, (long long)col0, (long long)t->dim, (long long)global_dim);
    tk_torch_normal_f32_part((float *)t->data, (size_t)t->row_stride, (size_t)t->rows, (size_t)t->dim,
                             (uint64_t)global_rows, (uint64_t)global_dim, (uint64_t)row0, (uint64_t)row_step,
                             (uint64_t)col0, seed, mean, std);
    if (t->padding_idx >= 0) memset(tk_row_f32(t, t->padding_idx), 0, (size_t)t->dim * sizeof(float));
    return TOKEMB_OK;
}

int32_t tokemb_table_init_uniform(tokemb_table *t, uint64_t seed, double lo, double hi) {
    static const char fn[] = "tokemb_table_init_uniform";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: bounds [%g, %g) must be finite with lo <= hi", fn, lo, hi);
    return tk_table_fill(fn, t, tk_torch_uniform_f32, seed, lo, hi);
}
