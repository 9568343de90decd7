/* test_invariants.c - the API invariant suite (issue 8).
 *
 * For every public function: NULL for each pointer argument, zero / negative / huge sizes, out-of-range
 * enums, ids and positions, and sizes whose byte count overflows must return the documented status, set a
 * tokemb_last_error() message that names the function, and leave every output buffer and every table
 * byte-for-byte unchanged. Outputs are sentinel-filled and "watched" (checksummed before the call,
 * compared after); tables are checksummed through the public API (shape, parameters, every stored value).
 * Also: every status code has a string, every getter returns what its setter set.
 *
 * tests/check_invariant_coverage.sh fails when an exported function does not appear here as a call. */
#include "tk_test.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the watch list: checksums of everything a failed call must not change ------------------ */

enum { TK_W_BUF, TK_W_TABLE, TK_W_PTR };
typedef struct {
    int kind;
    const void *p;
    size_t n;
    uint64_t sum;
} tk_watch;

static tk_watch g_watch[32];
static int g_nwatch;

static uint64_t tk_mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Checksum of a table through the public API: shape, dtype, every parameter and every stored value. */
static uint64_t tk_table_sum(tokemb_table *t) {
    uint64_t h = 1469598103934665603ull;
    int64_t rows = tokemb_table_rows(t), dim = tokemb_table_dim(t), stride = tokemb_table_row_stride(t);
    int32_t dt = tokemb_table_dtype(t);
    h = tk_mix(h, &rows, 8);
    h = tk_mix(h, &dim, 8);
    h = tk_mix(h, &stride, 8);
    h = tk_mix(h, &dt, 4);
    const int32_t ip[] = {TOKEMB_TABLE_PADDING_IDX, TOKEMB_TABLE_SCALE_GRAD_BY_FREQ, TOKEMB_TABLE_FROZEN};
    const int32_t fp[] = {TOKEMB_TABLE_MAX_NORM, TOKEMB_TABLE_NORM_TYPE};
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
    float *row = (float *)malloc((size_t)dim * sizeof(float));
    assert_non_null(row);
    for (int64_t r = 0; r < rows; r++) {
        if (tokemb_table_read_rows(t, r, 1, row) != TOKEMB_OK) fail_msg("read_rows %lld failed", (long long)r);
        h = tk_mix(h, row, (size_t)dim * sizeof(float));
    }
    free(row);
    /* the raw F32 storage including the gaps of strided wraps */
    float *d = tokemb_table_data(t);
    if (d) h = tk_mix(h, d, (size_t)((rows - 1) * stride + dim) * sizeof(float));
    return h;
}

static uint64_t tk_watch_sum(const tk_watch *w) {
    switch (w->kind) {
    case TK_W_TABLE: return tk_table_sum((tokemb_table *)(uintptr_t)w->p);
    default: return tk_checksum(w->p, w->n);
    }
}

static void watch_clear(void) { g_nwatch = 0; }
static void watch_add(int kind, const void *p, size_t n) {
    assert_true(g_nwatch < 32);
    g_watch[g_nwatch++] = (tk_watch){kind, p, n, 0};
}
/* A buffer the failing calls must not write (fill it with a sentinel first). */
static void watch_buf(const void *p, size_t bytes) { watch_add(TK_W_BUF, p, bytes); }
/* A table the failing calls must not change. */
static void watch_table(tokemb_table *t) { watch_add(TK_W_TABLE, t, 0); }
/* An out-pointer variable (constructors must not write *out on failure). */
static void watch_ptr(const void *pp) { watch_add(TK_W_PTR, pp, sizeof(void *)); }

/* Leaves a recognisable error text from a different function, so a call that fails without setting a
 * message (or that keeps a stale one) is caught. */
static void tk_plant_error(const char *call) {
    if (strncmp(call, "tokemb_set_num_threads", 22) != 0) {
        if (tokemb_set_num_threads(-777) != TOKEMB_INVALID_ARGUMENT) fail_msg("planting an error failed");
    } else {
        tokemb_table *t = NULL;
        if (tokemb_table_create(-777, 1, TOKEMB_F32, &t) != TOKEMB_INVALID_ARGUMENT) fail_msg("planting failed");
    }
}

static int g_invariant_checks; /* how many failing calls were checked (printed at the end) */

static void tk_inv_before(const char *call) {
    for (int i = 0; i < g_nwatch; i++) g_watch[i].sum = tk_watch_sum(&g_watch[i]);
    tk_plant_error(call);
}

static void tk_inv_after(int32_t st, int32_t expected, const char *call, const char *needle) {
    char name[96];
    size_t k = 0;
    while (call[k] && call[k] != '(' && k + 1 < sizeof name) {
        name[k] = call[k];
        k++;
    }
    name[k] = '\0';
    if (st != expected)
        fail_msg("%s returned %d (%s), expected %d (%s); last error: %s", call, (int)st, tokemb_status_string(st),
                 (int)expected, tokemb_status_string(expected), tokemb_last_error());
    const char *msg = tokemb_last_error();
    if (!msg || !msg[0]) fail_msg("%s: failed without a tokemb_last_error() message", call);
    if (strstr(msg, "-777")) fail_msg("%s: failed but left the previous error text '%s'", call, msg);
    if (!strstr(msg, name)) fail_msg("%s: message '%s' does not name the function %s", call, msg, name);
    if (needle && !strstr(msg, needle)) fail_msg("%s: message '%s' lacks '%s'", call, msg, needle);
    for (int i = 0; i < g_nwatch; i++)
        if (tk_watch_sum(&g_watch[i]) != g_watch[i].sum)
            fail_msg("%s: failed with %d but changed watched %s #%d", call, (int)st,
                     g_watch[i].kind == TK_W_TABLE ? "table" : g_watch[i].kind == TK_W_PTR ? "out-pointer" : "buffer",
                     i);
    g_invariant_checks++;
}

/* INV(expected status, substring the message must contain or NULL, call) */
#define INV(expected, needle, call)                                                                            \
    do {                                                                                                       \
        tk_inv_before(#call);                                                                                  \
        int32_t inv_st_ = (call);                                                                              \
        tk_inv_after(inv_st_, (expected), #call, (needle));                                                    \
    } while (0)

/* A seeded F32 table with distinct values. */
static tokemb_table *tk_table(int64_t rows, int64_t dim, uint64_t seed) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, seed, 0.0, 1.0));
    return t;
}

#define SENT(buf) tk_fill_sentinel((buf), sizeof(buf) / sizeof(float))

static const size_t HUGE_N = SIZE_MAX / 2 + 1; /* n * anything >= 2 bytes overflows size_t */

/* ---- status strings, version, errors ----------------------------------------------------------- */

static void test_status_strings(void **state) {
    (void)state;
    const int32_t codes[] = {TOKEMB_OK, TOKEMB_INVALID_ARGUMENT, TOKEMB_OUT_OF_RANGE, TOKEMB_NO_MEMORY, TOKEMB_IO,
                             TOKEMB_FORMAT, TOKEMB_UNSUPPORTED, TOKEMB_OVERFLOW, TOKEMB_READ_ONLY};
    const size_t nc = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < nc; i++) {
        const char *s = tokemb_status_string(codes[i]);
        assert_non_null(s);
        assert_true(s[0] != '\0');
        assert_string_not_equal(s, "unknown status");
        assert_ptr_equal(s, tokemb_status_string(codes[i])); /* static storage */
        for (size_t j = 0; j < i; j++) assert_string_not_equal(s, tokemb_status_string(codes[j]));
    }
    const int32_t bad[] = {1, 2, -9, -10, 100, -100, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_string_equal(tokemb_status_string(bad[i]), "unknown status");
}

static void test_version(void **state) {
    (void)state;
    assert_int_equal(tokemb_version_number(), TOKEMB_VERSION_NUMBER);
    const char *v = tokemb_version_string();
    assert_non_null(v);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", TOKEMB_VERSION_MAJOR, TOKEMB_VERSION_MINOR, TOKEMB_VERSION_PATCH);
    assert_string_equal(v, want);
    assert_string_equal(v, TOKEMB_VERSION_STRING);
}

static void *tk_error_thread(void *arg) {
    char(*seen)[512] = (char(*)[512])arg;
    /* a fresh thread has no error yet; the main thread's error is not visible here */
    snprintf(seen[0], 512, "%s", tokemb_last_error());
    tokemb_set_num_threads(-4242);
    snprintf(seen[1], 512, "%s", tokemb_last_error());
    return NULL;
}

static void test_last_error_thread_local(void **state) {
    (void)state;
    assert_non_null(tokemb_last_error());
    tokemb_table *t = NULL;
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_create(0, 1, TOKEMB_F32, &t), "rows = 0");
    char mine[512];
    snprintf(mine, sizeof mine, "%s", tokemb_last_error());
    char seen[2][512] = {"x", "x"};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, tk_error_thread, seen), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_string_equal(seen[0], "");
    assert_non_null(strstr(seen[1], "-4242"));
    assert_string_equal(tokemb_last_error(), mine); /* the other thread's failure did not touch ours */
    /* successful calls do not clear it */
    TK_OK(tokemb_set_num_threads(0));
    assert_string_equal(tokemb_last_error(), mine);
}

/* ---- threads ------------------------------------------------------------------------------------ */

static void test_num_threads(void **state) {
    (void)state;
    const int32_t def = tokemb_get_num_threads();
    assert_true(def >= 1);
    const int32_t good[] = {1, 2, 3, 4, 7, 64, 1024};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        TK_OK(tokemb_set_num_threads(good[i]));
        assert_int_equal(tokemb_get_num_threads(), good[i]); /* getter returns what the setter set */
    }
    TK_OK(tokemb_set_num_threads(3));
    const int32_t bad[] = {-1, -1024, 1025, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_set_num_threads(bad[i]));
        assert_int_equal(tokemb_get_num_threads(), 3);
    }
    TK_OK(tokemb_set_num_threads(0));
    assert_int_equal(tokemb_get_num_threads(), def);
}

/* ---- table construction ------------------------------------------------------------------------- */

static void test_table_create_invariants(void **state) {
    (void)state;
    tokemb_table *t = (tokemb_table *)(uintptr_t)0x1234; /* must stay untouched */
    watch_clear();
    watch_ptr(&t);
    INV(TOKEMB_INVALID_ARGUMENT, "out", tokemb_table_create(3, 3, TOKEMB_F32, NULL));
    const int64_t bad_sizes[] = {0, -1, INT64_MIN};
    for (size_t i = 0; i < 3; i++) {
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_create(bad_sizes[i], 3, TOKEMB_F32, &t));
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_create(3, bad_sizes[i], TOKEMB_F32, &t));
    }
    const int32_t bad_dtypes[] = {-1, 4, 99, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_dtypes / sizeof bad_dtypes[0]; i++)
        INV(TOKEMB_INVALID_ARGUMENT, "dtype", tokemb_table_create(3, 3, bad_dtypes[i], &t));
    INV(TOKEMB_OVERFLOW, NULL, tokemb_table_create(INT64_MAX, INT64_MAX, TOKEMB_F32, &t));
    INV(TOKEMB_OVERFLOW, NULL, tokemb_table_create(INT64_MAX / 2, 4, TOKEMB_F32, &t));
    INV(TOKEMB_OVERFLOW, NULL, tokemb_table_create((int64_t)(SIZE_MAX / 8), 2, TOKEMB_F32, &t));
    /* every known dtype: created, or a clean UNSUPPORTED */
    for (int32_t dt = TOKEMB_F32; dt <= TOKEMB_Q8_ROW; dt++) {
        tokemb_table *u = NULL;
        int32_t st = tokemb_table_create(4, 8, dt, &u);
        if (st == TOKEMB_OK) {
            assert_non_null(u);
            assert_int_equal(tokemb_table_dtype(u), dt);
            assert_int_equal(tokemb_table_rows(u), 4);
            assert_int_equal(tokemb_table_dim(u), 8);
            tokemb_table_free(u);
        } else {
            assert_int_equal(st, TOKEMB_UNSUPPORTED);
            assert_null(u);
        }
    }
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)0x1234);
    tokemb_table_free(NULL);
}

static void test_table_wrap_invariants(void **state) {
    (void)state;
    float buf[24];
    for (int i = 0; i < 24; i++) buf[i] = (float)i;
    tokemb_table *t = (tokemb_table *)(uintptr_t)0x1234;
    watch_clear();
    watch_ptr(&t);
    watch_buf(buf, sizeof buf);
    INV(TOKEMB_INVALID_ARGUMENT, "data", tokemb_table_wrap(NULL, 4, 3, 3, TOKEMB_F32, 0, &t));
    INV(TOKEMB_INVALID_ARGUMENT, "out", tokemb_table_wrap(buf, 4, 3, 3, TOKEMB_F32, 0, NULL));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_wrap(buf, 0, 3, 3, TOKEMB_F32, 0, &t));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_wrap(buf, -5, 3, 3, TOKEMB_F32, 0, &t));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_wrap(buf, 4, 0, 3, TOKEMB_F32, 0, &t));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_wrap(buf, 4, INT64_MIN, 3, TOKEMB_F32, 0, &t));
    INV(TOKEMB_INVALID_ARGUMENT, "row_stride", tokemb_table_wrap(buf, 4, 3, 2, TOKEMB_F32, 0, &t));
    INV(TOKEMB_INVALID_ARGUMENT, "row_stride", tokemb_table_wrap(buf, 4, 3, -3, TOKEMB_F32, 0, &t));
    INV(TOKEMB_INVALID_ARGUMENT, "dtype", tokemb_table_wrap(buf, 4, 3, 3, 4, 0, &t));
    INV(TOKEMB_INVALID_ARGUMENT, "dtype", tokemb_table_wrap(buf, 4, 3, 3, -1, 0, &t));
    INV(TOKEMB_INVALID_ARGUMENT, "flags", tokemb_table_wrap(buf, 4, 3, 3, TOKEMB_F32, 2u, &t));
    INV(TOKEMB_INVALID_ARGUMENT, "flags", tokemb_table_wrap(buf, 4, 3, 3, TOKEMB_F32, 0xffffffffu, &t));
    INV(TOKEMB_OVERFLOW, NULL, tokemb_table_wrap(buf, INT64_MAX, 3, INT64_MAX, TOKEMB_F32, 0, &t));
    INV(TOKEMB_OVERFLOW, NULL, tokemb_table_wrap(buf, 2, 3, INT64_MAX / 2, TOKEMB_F32, 0, &t));
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)0x1234);
    /* a successful wrap reports what it was given */
    tokemb_table *w = NULL;
    TK_OK(tokemb_table_wrap(buf, 4, 3, 5, TOKEMB_F32, TOKEMB_WRAP_READONLY, &w));
    assert_int_equal(tokemb_table_rows(w), 4);
    assert_int_equal(tokemb_table_dim(w), 3);
    assert_int_equal(tokemb_table_row_stride(w), 5);
    assert_int_equal(tokemb_table_dtype(w), TOKEMB_F32);
    assert_ptr_equal(tokemb_table_data(w), buf);
    tokemb_table_free(w);
    for (int i = 0; i < 24; i++) assert_true(buf[i] == (float)i); /* free never touches borrowed memory */
}

static void test_table_accessors_null(void **state) {
    (void)state;
    assert_int_equal(tokemb_table_rows(NULL), -1);
    assert_int_equal(tokemb_table_dim(NULL), -1);
    assert_int_equal(tokemb_table_row_stride(NULL), -1);
    assert_int_equal(tokemb_table_dtype(NULL), -1);
    assert_null(tokemb_table_data(NULL));
    tokemb_table_free(NULL);
}

/* ---- rows ---------------------------------------------------------------------------------------- */

static void test_read_write_rows_invariants(void **state) {
    (void)state;
    tokemb_table *t = tk_table(6, 4, 1);
    float out[6 * 4 + 8], src[6 * 4];
    SENT(out);
    for (int i = 0; i < 24; i++) src[i] = (float)i;
    watch_clear();
    watch_table(t);
    watch_buf(out, sizeof out);
    watch_buf(src, sizeof src);
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_read_rows(NULL, 0, 1, out));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_read_rows(t, 0, 1, NULL));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_read_rows(t, 0, 0, out));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_read_rows(t, -1, 1, out));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_read_rows(t, 6, 1, out));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_read_rows(t, 3, 4, out));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_read_rows(t, 1, SIZE_MAX, out));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_read_rows(t, INT64_MIN, 1, out));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_read_rows(t, INT64_MAX, 1, out));

    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_write_rows(NULL, 0, 1, src));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_write_rows(t, 0, 1, NULL));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_write_rows(t, 0, 0, src));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_write_rows(t, -1, 1, src));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_write_rows(t, 6, 1, src));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_write_rows(t, 5, 2, src));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_write_rows(t, 0, SIZE_MAX, src));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_write_rows(t, INT64_MIN, 2, src));

    /* read-only wrap: every writer refuses, storage unchanged */
    float ro_buf[6 * 4];
    for (int i = 0; i < 24; i++) ro_buf[i] = (float)(i * 3);
    tokemb_table *ro = NULL;
    TK_OK(tokemb_table_wrap(ro_buf, 6, 4, 4, TOKEMB_F32, TOKEMB_WRAP_READONLY, &ro));
    watch_table(ro);
    watch_buf(ro_buf, sizeof ro_buf);
    INV(TOKEMB_READ_ONLY, NULL, tokemb_table_write_rows(ro, 0, 2, src));

    /* write/read round trip (getter returns what the setter set) */
    watch_clear();
    TK_OK(tokemb_table_write_rows(t, 2, 3, src));
    float back[12];
    TK_OK(tokemb_table_read_rows(t, 2, 3, back));
    assert_memory_equal(back, src, sizeof back);
    tokemb_table_free(ro);
    tokemb_table_free(t);
}

/* ---- parameters ---------------------------------------------------------------------------------- */

static void test_param_invariants(void **state) {
    (void)state;
    tokemb_table *t = tk_table(5, 3, 2);
    TK_OK(tokemb_table_set_param(t, TOKEMB_TABLE_PADDING_IDX, 1));
    TK_OK(tokemb_table_set_param_f64(t, TOKEMB_TABLE_MAX_NORM, 7.5));
    int64_t iv = 0x5a5a5a5a5a5a5a5all;
    double fv = -12345.5;
    watch_clear();
    watch_table(t);
    watch_buf(&iv, sizeof iv);
    watch_buf(&fv, sizeof fv);
    const int32_t unknown[] = {-1, 0, 99, 106, 200, 201, 300, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param(t, unknown[i], 0));
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param_f64(t, unknown[i], 1.0));
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_get_param(t, unknown[i], &iv));
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_get_param_f64(t, unknown[i], &fv));
    }
    /* typed mismatches */
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param(t, TOKEMB_TABLE_MAX_NORM, 1));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param(t, TOKEMB_TABLE_NORM_TYPE, 1));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param_f64(t, TOKEMB_TABLE_PADDING_IDX, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param_f64(t, TOKEMB_TABLE_FROZEN, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_get_param(t, TOKEMB_TABLE_MAX_NORM, &iv));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_get_param_f64(t, TOKEMB_TABLE_SCALE_GRAD_BY_FREQ, &fv));
    /* NULLs */
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param(NULL, TOKEMB_TABLE_PADDING_IDX, 0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param_f64(NULL, TOKEMB_TABLE_MAX_NORM, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_get_param(NULL, TOKEMB_TABLE_PADDING_IDX, &iv));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_get_param(t, TOKEMB_TABLE_PADDING_IDX, NULL));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_get_param_f64(NULL, TOKEMB_TABLE_MAX_NORM, &fv));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_get_param_f64(t, TOKEMB_TABLE_MAX_NORM, NULL));
    /* values */
    const int64_t bad_pad[] = {5, -6, INT64_MAX, INT64_MIN + 1, 1000};
    for (size_t i = 0; i < sizeof bad_pad / sizeof bad_pad[0]; i++)
        INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_table_set_param(t, TOKEMB_TABLE_PADDING_IDX, bad_pad[i]));
    const int64_t bad_flag[] = {2, -1, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof bad_flag / sizeof bad_flag[0]; i++) {
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param(t, TOKEMB_TABLE_FROZEN, bad_flag[i]));
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param(t, TOKEMB_TABLE_SCALE_GRAD_BY_FREQ, bad_flag[i]));
    }
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param_f64(t, TOKEMB_TABLE_MAX_NORM, NAN));
    const double bad_norm[] = {0.0, -0.0, -1.0, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof bad_norm / sizeof bad_norm[0]; i++)
        INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_set_param_f64(t, TOKEMB_TABLE_NORM_TYPE, bad_norm[i]));
    tokemb_table_free(t);
}

static void test_param_roundtrip(void **state) {
    (void)state;
    tokemb_table *t = tk_table(7, 2, 3);
    int64_t v;
    double f;
    for (int64_t p = -7; p < 7; p++) {
        TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, p));
        TK_OK(tokemb_table_get_param(t, TOKEMB_PADDING_IDX, &v));
        assert_int_equal(v, p < 0 ? 7 + p : p); /* normalised as torch does */
    }
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, TOKEMB_NO_PADDING));
    TK_OK(tokemb_table_get_param(t, TOKEMB_PADDING_IDX, &v));
    assert_true(v == TOKEMB_NO_PADDING);
    const int32_t flags[] = {TOKEMB_SCALE_GRAD_BY_FREQ, TOKEMB_FROZEN};
    for (size_t i = 0; i < 2; i++)
        for (int64_t x = 1; x >= 0; x--) {
            TK_OK(tokemb_table_set_param(t, flags[i], x));
            TK_OK(tokemb_table_get_param(t, flags[i], &v));
            assert_int_equal(v, x);
        }
    const double norms[] = {0.25, 1.0, 3.5, 1e30};
    for (size_t i = 0; i < 4; i++) {
        TK_OK(tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, norms[i]));
        TK_OK(tokemb_table_get_param_f64(t, TOKEMB_MAX_NORM, &f));
        assert_true(f == norms[i]);
    }
    TK_OK(tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, -1.0)); /* <= 0 disables */
    TK_OK(tokemb_table_get_param_f64(t, TOKEMB_MAX_NORM, &f));
    assert_true(f <= 0.0);
    const double ps[] = {0.5, 1.0, 2.0, 3.0, INFINITY};
    for (size_t i = 0; i < 5; i++) {
        TK_OK(tokemb_table_set_param_f64(t, TOKEMB_NORM_TYPE, ps[i]));
        TK_OK(tokemb_table_get_param_f64(t, TOKEMB_NORM_TYPE, &f));
        assert_true(f == ps[i]);
    }
    tokemb_table_free(t);
}

/* ---- initialisation ------------------------------------------------------------------------------ */

static void test_init_invariants(void **state) {
    (void)state;
    tokemb_table *t = tk_table(4, 5, 4);
    float ro_buf[20];
    for (int i = 0; i < 20; i++) ro_buf[i] = (float)i;
    tokemb_table *ro = NULL;
    TK_OK(tokemb_table_wrap(ro_buf, 4, 5, 5, TOKEMB_F32, TOKEMB_WRAP_READONLY, &ro));
    watch_clear();
    watch_table(t);
    watch_table(ro);
    watch_buf(ro_buf, sizeof ro_buf);
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_normal(NULL, 1, 0.0, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_normal(t, 1, 0.0, -1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_normal(t, 1, NAN, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_normal(t, 1, 0.0, NAN));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_normal(t, 1, INFINITY, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_normal(t, 1, 0.0, INFINITY));
    INV(TOKEMB_READ_ONLY, NULL, tokemb_table_init_normal(ro, 1, 0.0, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_uniform(NULL, 1, 0.0, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_uniform(t, 1, 1.0, 0.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_uniform(t, 1, NAN, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_uniform(t, 1, 0.0, NAN));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_uniform(t, 1, -INFINITY, 1.0));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_table_init_uniform(t, 1, 0.0, INFINITY));
    INV(TOKEMB_READ_ONLY, NULL, tokemb_table_init_uniform(ro, 1, -1.0, 1.0));
    tokemb_table_free(ro);
    tokemb_table_free(t);
}

/* ---- lookups ------------------------------------------------------------------------------------- */

static void test_lookup_invariants(void **state) {
    (void)state;
    enum { R = 9, D = 4 };
    tokemb_table *t = tk_table(R, D, 5);
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, 2));
    int64_t ids[4] = {0, 3, 8, 1};
    int32_t ids32[4] = {0, 3, 8, 1};
    float out[4 * 8];
    SENT(out);
    watch_clear();
    watch_table(t);
    watch_buf(out, sizeof out);
    watch_buf(ids, sizeof ids);
    watch_buf(ids32, sizeof ids32);
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_lookup(NULL, ids, 4, out));
    INV(TOKEMB_INVALID_ARGUMENT, "ids", tokemb_lookup(t, NULL, 4, out));
    INV(TOKEMB_INVALID_ARGUMENT, "out", tokemb_lookup(t, ids, 4, NULL));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_lookup_i32(NULL, ids32, 4, out));
    INV(TOKEMB_INVALID_ARGUMENT, "ids", tokemb_lookup_i32(t, NULL, 4, out));
    INV(TOKEMB_INVALID_ARGUMENT, "out", tokemb_lookup_i32(t, ids32, 4, NULL));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_lookup_strided(NULL, ids, 4, out, 8));
    INV(TOKEMB_INVALID_ARGUMENT, "ids", tokemb_lookup_strided(t, NULL, 4, out, 8));
    INV(TOKEMB_INVALID_ARGUMENT, "out", tokemb_lookup_strided(t, ids, 4, NULL, 8));
    INV(TOKEMB_INVALID_ARGUMENT, "stride", tokemb_lookup_strided(t, ids, 4, out, 3));
    INV(TOKEMB_INVALID_ARGUMENT, "stride", tokemb_lookup_strided(t, ids, 4, out, -1));
    INV(TOKEMB_INVALID_ARGUMENT, "stride", tokemb_lookup_strided(t, ids, 4, out, INT64_MIN));
    INV(TOKEMB_INVALID_ARGUMENT, NULL, tokemb_lookup_onehot(NULL, ids, 4, out));
    INV(TOKEMB_INVALID_ARGUMENT, "ids", tokemb_lookup_onehot(t, NULL, 4, out));
    INV(TOKEMB_INVALID_ARGUMENT, "out", tokemb_lookup_onehot(t, ids, 4, NULL));
    /* byte counts that overflow size_t (checked before any id is read) */
    INV(TOKEMB_OVERFLOW, NULL, tokemb_lookup(t, ids, HUGE_N, out));
    INV(TOKEMB_OVERFLOW, NULL, tokemb_lookup_i32(t, ids32, HUGE_N, out));
    INV(TOKEMB_OVERFLOW, NULL, tokemb_lookup_onehot(t, ids, HUGE_N, out));
    INV(TOKEMB_OVERFLOW, NULL, tokemb_lookup_strided(t, ids, 4, out, INT64_MAX));
    INV(TOKEMB_OVERFLOW, NULL, tokemb_lookup_strided(t, ids, HUGE_N, out, 8));
    /* out-of-range ids at every position, including the last: nothing is written before validation */
    const int64_t bad[] = {-1, R, INT64_MAX, INT64_MIN, (int64_t)1 << 32};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
        for (size_t pos = 0; pos < 4; pos++) {
            int64_t keep = ids[pos];
            ids[pos] = bad[b];
            watch_clear();
            watch_table(t);
            watch_buf(out, sizeof out);
            watch_buf(ids, sizeof ids);
            INV(TOKEMB_OUT_OF_RANGE, "index", tokemb_lookup(t, ids, 4, out));
            INV(TOKEMB_OUT_OF_RANGE, "index", tokemb_lookup_strided(t, ids, 4, out, 8));
            INV(TOKEMB_OUT_OF_RANGE, "index", tokemb_lookup_onehot(t, ids, 4, out));
            ids[pos] = keep;
            if (bad[b] >= INT32_MIN && bad[b] <= INT32_MAX) {
                int32_t k32 = ids32[pos];
                ids32[pos] = (int32_t)bad[b];
                INV(TOKEMB_OUT_OF_RANGE, "index", tokemb_lookup_i32(t, ids32, 4, out));
                ids32[pos] = k32;
            }
        }
    /* n == 0 is a no-op, NULL buffers allowed */
    TK_OK(tokemb_lookup(t, NULL, 0, NULL));
    TK_OK(tokemb_lookup_i32(t, NULL, 0, NULL));
    TK_OK(tokemb_lookup_onehot(t, NULL, 0, NULL));
    TK_OK(tokemb_lookup_strided(t, NULL, 0, NULL, D));
    tokemb_table_free(t);
}

/* max_norm lookups modify the table: a bad id anywhere must stop every renormalisation; a READONLY wrap
 * refuses. */
static void test_lookup_max_norm_invariants(void **state) {
    (void)state;
    enum { R = 6, D = 3 };
    tokemb_table *t = tk_table(R, D, 6);
    TK_OK(tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, 0.01)); /* every row exceeds it */
    float ro_buf[R * D];
    for (int i = 0; i < R * D; i++) ro_buf[i] = (float)(i + 1);
    tokemb_table *ro = NULL;
    TK_OK(tokemb_table_wrap(ro_buf, R, D, D, TOKEMB_F32, TOKEMB_WRAP_READONLY, &ro));
    TK_OK(tokemb_table_set_param_f64(ro, TOKEMB_MAX_NORM, 0.01));
    int64_t ids[3] = {0, 1, R};
    int32_t ids32[3] = {0, 1, R};
    float out[3 * D];
    SENT(out);
    watch_clear();
    watch_table(t);
    watch_table(ro);
    watch_buf(ro_buf, sizeof ro_buf);
    watch_buf(out, sizeof out);
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_lookup(t, ids, 3, out));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_lookup_i32(t, ids32, 3, out));
    INV(TOKEMB_OUT_OF_RANGE, NULL, tokemb_lookup_strided(t, ids, 3, out, D));
    ids[2] = 2;
    ids32[2] = 2;
    INV(TOKEMB_READ_ONLY, NULL, tokemb_lookup(ro, ids, 3, out));
    INV(TOKEMB_READ_ONLY, NULL, tokemb_lookup_i32(ro, ids32, 3, out));
    INV(TOKEMB_READ_ONLY, NULL, tokemb_lookup_strided(ro, ids, 3, out, D));
    /* the one-hot path never renormalises: it works on a read-only wrap */
    watch_clear();
    TK_OK(tokemb_lookup_onehot(ro, ids, 3, out));
    assert_memory_equal(out, ro_buf, sizeof out);
    tokemb_table_free(ro);
    tokemb_table_free(t);
}

/* Strided lookups never touch the gap elements between output rows. */
static void test_lookup_strided_gaps(void **state) {
    (void)state;
    tokemb_table *t = tk_table(5, 3, 7);
    int64_t ids[3] = {4, 0, 2};
    float out[3 * 7];
    SENT(out);
    TK_OK(tokemb_lookup_strided(t, ids, 3, out, 7));
    const uint32_t s = 0x7fc0beefu;
    for (int r = 0; r < 3; r++) {
        float row[3];
        TK_OK(tokemb_table_read_rows(t, ids[r], 1, row));
        assert_memory_equal(out + r * 7, row, sizeof row);
        for (int c = 3; c < 7; c++) assert_memory_equal(out + r * 7 + c, &s, 4);
    }
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_last_error_thread_local),
        cmocka_unit_test(test_num_threads),
        cmocka_unit_test(test_table_create_invariants),
        cmocka_unit_test(test_table_wrap_invariants),
        cmocka_unit_test(test_table_accessors_null),
        cmocka_unit_test(test_read_write_rows_invariants),
        cmocka_unit_test(test_param_invariants),
        cmocka_unit_test(test_param_roundtrip),
        cmocka_unit_test(test_init_invariants),
        cmocka_unit_test(test_lookup_invariants),
        cmocka_unit_test(test_lookup_max_norm_invariants),
        cmocka_unit_test(test_lookup_strided_gaps),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("invariant checks of failing calls: %d\n", g_invariant_checks);
    return rc;
}
