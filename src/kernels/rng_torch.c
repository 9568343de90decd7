/* rng_torch.c - torch's CPU default generator and its float32 normal_/uniform_ fills, re-implemented
 * from the algorithm description in shared/reference/pytorch-semantics.md section 4:
 *  - MT19937 seeded with the low 32 bits of the seed (init_genrand), random64 = (first << 32) | second;
 *  - float uniforms (r & 0xFFFFFF) * 2^-24, double uniforms (r64 & (2^53-1)) * 2^-53;
 *  - normal_ on >= 16 contiguous floats: n uniforms, then 16-value Box-Muller blocks (radii from the
 *    first 8, angles from the last 8, cos to the first half), the last 16 positions refilled and
 *    redone when n % 16 != 0, with torch's AVX2 kernel numerics (Cephes-style log and sincos, with the
 *    fused multiply-adds GCC forms when compiling it) emulated portably with fmaf;
 *  - normal_ on < 16 values: the double Box-Muller with the generator's one-value cache;
 *  - any part of a normal_ fill (rows, round-robin rows, column slices) without drawing the stream
 *    before it: MT19937 jump-ahead (below).
 * The library is compiled with -ffp-contract=off, so every fusion here is the explicit fmaf. */
#include "kernels/rng_torch.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

typedef struct {
    uint32_t state[624];
    int next;
} tk_mt;

static void tk_mt_seed(tk_mt *g, uint64_t seed) {
    g->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < 624; j++) g->state[j] = 1812433253u * (g->state[j - 1] ^ (g->state[j - 1] >> 30)) + (uint32_t)j;
    g->next = 624; /* the first draw regenerates the block */
}

static inline uint32_t tk_mt_mix(uint32_t a, uint32_t b, uint32_t m) {
    uint32_t y = (a & 0x80000000u) | (b & 0x7fffffffu);
    return m ^ (y >> 1) ^ ((0u - (y & 1u)) & 0x9908b0dfu);
}

/* s[i] = s[i + 397] ^ twist(s[i], s[i + 1]) for i = 0..623 in order, indices mod 624 (split into
 * three loops without the modulo: the plain advancing of tk_mt_skip runs on this alone). */
static void tk_mt_twist(tk_mt *g) {
    uint32_t *s = g->state;
    int i = 0;
    for (; i < 624 - 397; i++) s[i] = tk_mt_mix(s[i], s[i + 1], s[i + 397]);
    for (; i < 623; i++) s[i] = tk_mt_mix(s[i], s[i + 1], s[i + 397 - 624]);
    s[623] = tk_mt_mix(s[623], s[0], s[396]);
    g->next = 0;
}

static uint32_t tk_mt_next(tk_mt *g) {
    if (g->next >= 624) tk_mt_twist(g);
    uint32_t y = g->state[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static inline float tk_uniform_f24(tk_mt *g) { return (float)(tk_mt_next(g) & 0x00ffffffu) * (1.0f / 16777216.0f); }

static inline double tk_uniform_f53(tk_mt *g) {
    uint64_t hi = tk_mt_next(g), lo = tk_mt_next(g);
    uint64_t r = (hi << 32) | lo;
    return (double)(r & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Cephes-style single-precision log for x in (0, 1], with the AVX2 build's fusions. */
static float tk_cephes_logf(float x) {
    const float min_norm = u2f(0x00800000u);
    if (x < min_norm) x = min_norm;
    uint32_t bits = f2u(x);
    int32_t expo = (int32_t)(bits >> 23) - 0x7f;
    float m = u2f((bits & ~0x7f800000u) | 0x3f000000u); /* mantissa scaled into [0.5, 1) */
    float e = (float)expo + 1.0f;
    float xm;
    if (m < 0.707106781186547524f) {
        e = e - 1.0f;
        xm = (m - 1.0f) + m;
    } else {
        xm = m - 1.0f;
    }
    float z = xm * xm;
    float y = 7.0376836292e-2f;
    y = fmaf(y, xm, -1.1514610310e-1f);
    y = fmaf(y, xm, 1.1676998740e-1f);
    y = fmaf(y, xm, -1.2420140846e-1f);
    y = fmaf(y, xm, 1.4249322787e-1f);
    y = fmaf(y, xm, -1.6668057665e-1f);
    y = fmaf(y, xm, 2.0000714765e-1f);
    y = fmaf(y, xm, -2.4999993993e-1f);
    y = fmaf(y, xm, 3.3333331174e-1f);
    y = y * xm;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(z, -0.5f, y);
    float r = xm + y;
    return fmaf(e, 0.693359375f, r);
}

/* Cephes-style single-precision sincos (range reduction by 4/pi, three-part pi/4), AVX2 fusions. */
static void tk_cephes_sincosf(float x, float *s, float *c) {
    uint32_t sign_sin = f2u(x) & 0x80000000u;
    x = fabsf(x);
    float y = x * 1.27323954473516f;
    int32_t j = (int32_t)y;
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sign_sin = ((uint32_t)j & 4u) << 29;
    bool poly = (j & 2) == 0;
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = ((uint32_t)(~(j - 2)) & 4u) << 29;
    sign_sin ^= swap_sign_sin;
    float z = x * x;
    float yc = fmaf(2.443315711809948e-5f, z, -1.388731625493765e-3f);
    yc = fmaf(yc, z, 4.166664568298827e-2f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = fmaf(-1.9515295891e-4f, z, 8.3321608736e-3f);
    ys = fmaf(ys, z, -1.6666654611e-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    float sv = poly ? ys : yc, cv = poly ? yc : ys;
    *s = u2f(f2u(sv) ^ sign_sin);
    *c = u2f(f2u(cv) ^ sign_cos);
}

/* torch's normal_fill_16 (AVX2 kernel) on 16 uniforms in place. */
static void tk_normal_fill16(float *d, float mean, float std) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * tk_cephes_logf(u1));
        float theta = 6.2831855f * u2;
        float s, c;
        tk_cephes_sincosf(theta, &s, &c);
        d[j] = fmaf(radius * c, std, mean);
        d[j + 8] = fmaf(radius * s, std, mean);
    }
}

/* normal_ on < 16 values: the double Box-Muller with the generator's one-value cache. */
static void tk_torch_normal_f32_small(float *x, size_t n, uint64_t seed, double mean, double std) {
    tk_mt g;
    tk_mt_seed(&g, seed);
    bool have_cached = false;
    double cached = 0.0;
    for (size_t i = 0; i < n; i++) {
        double ret;
        if (have_cached) {
            ret = cached;
            have_cached = false;
        } else {
            double u1 = tk_uniform_f53(&g);
            double u2 = tk_uniform_f53(&g);
            double r = sqrt(-2.0 * log(1.0 - u2));
            double theta = 2.0 * M_PI * u1;
            cached = r * sin(theta);
            have_cached = true;
            ret = r * cos(theta);
        }
        x[i] = (float)(ret * std + mean);
    }
}

/* ---- jump-ahead ------------------------------------------------------------------------------
 * The word sequence of the engine obeys x[k+624] = x[k+397] ^ twist(x[k], x[k+1]); the state
 * W_k = (upper bit of x[k], x[k+1..k+623]) has 19937 bits and advances by a linear map F over GF(2).
 * Its characteristic polynomial p (degree 19937) is found once per process by Berlekamp-Massey over
 * 2*19937 output bits (the minimal polynomial of one output bit's sequence; p is irreducible, so that
 * is p itself). Skipping k draws is then W -> (x^k mod p)(F) W: x^k mod p by square-and-multiply
 * (19937-bit polynomials, O(19937^2/64) word operations per squaring, log2 k squarings), applied to
 * the state by Horner's rule over F (<= 19937 single-word steps and about 10^4 state additions). */
#define TK_MT_DEG 19937
#define TK_PW 312 /* 64-bit words of a polynomial of degree <= 19937 */
/* Below this many draws plain advancing (one twist per 624 draws, no tempering: about 5 instructions
 * per draw) is cheaper than a jump (73 M instructions for 2^23 draws, docs/performance.md). Speed
 * only: the result is the same either way. */
static uint64_t tk_mt_jump_min = UINT64_C(1) << 22; /* a variable so the tests can force either way */

static uint64_t tk_mt_poly[TK_PW + 1];         /* p(x): bit i = coefficient of x^i; one zero word of padding */
static uint64_t tk_mt_poly_shl[64][TK_PW + 1]; /* p(x) * x^b, b < 64 */
static bool tk_mt_poly_ok;                     /* Berlekamp-Massey found degree 19937 */
static pthread_once_t tk_mt_poly_once = PTHREAD_ONCE_INIT;

/* 64 bits of the bit array a starting at bit position pos (a padded by one word). */
static inline uint64_t tk_bits_at(const uint64_t *a, size_t pos) {
    size_t q = pos >> 6, r = pos & 63;
    return r ? (a[q] >> r) | (a[q + 1] << (64 - r)) : a[q];
}

/* c ^= b * x^m over words [0, nw). */
static void tk_poly_xor_shl(uint64_t *c, const uint64_t *b, size_t m, size_t nw) {
    size_t ws = m >> 6, bs = m & 63;
    for (size_t w = nw; w-- > ws;) {
        uint64_t v = b[w - ws] << bs;
        if (bs && w > ws) v |= b[w - ws - 1] >> (64 - bs);
        c[w] ^= v;
    }
}

static void tk_mt_poly_compute(void) {
    enum { N = 2 * TK_MT_DEG, NW = N / 64 + 2 };
    static uint64_t rev[NW], c[NW], b[NW], tmp[NW];
    tk_mt g;
    tk_mt_seed(&g, 5489u);
    for (size_t n = 0; n < N; n++) /* rev bit N-1-n = bit 0 of output n */
        if (tk_mt_next(&g) & 1u) rev[(N - 1 - n) >> 6] |= UINT64_C(1) << ((N - 1 - n) & 63);
    c[0] = b[0] = 1;
    size_t len = 0, m = 1;
    for (size_t n = 0; n < N; n++) {
        uint64_t acc = 0; /* discrepancy: sum over i <= len of c_i * s[n - i] */
        for (size_t w = 0; w <= len / 64; w++) acc ^= c[w] & tk_bits_at(rev, N - 1 - n + 64 * w);
        if (!__builtin_parityll(acc)) {
            m++;
        } else if (2 * len <= n) {
            memcpy(tmp, c, sizeof c);
            tk_poly_xor_shl(c, b, m, NW);
            len = n + 1 - len;
            memcpy(b, tmp, sizeof b);
            m = 1;
        } else {
            tk_poly_xor_shl(c, b, m, NW);
            m++;
        }
    }
    tk_mt_poly_ok = len == TK_MT_DEG;
    if (!tk_mt_poly_ok) return;             /* never expected: jumps then fall back to advancing */
    for (size_t i = 0; i <= TK_MT_DEG; i++) /* p(x) = x^len c(1/x) */
        if (c[(TK_MT_DEG - i) >> 6] >> ((TK_MT_DEG - i) & 63) & 1) tk_mt_poly[i >> 6] |= UINT64_C(1) << (i & 63);
    for (size_t s = 0; s < 64; s++) tk_poly_xor_shl(tk_mt_poly_shl[s], tk_mt_poly, s, TK_PW + 1);
}

/* r = r^2 mod p (r has degree < 19937). */
static void tk_poly_sqr_mod(uint64_t *r) {
    uint64_t a[2 * TK_PW + 1];
    for (size_t w = 0; w < TK_PW; w++) {
        for (int h = 0; h < 2; h++) { /* spread 32 bits to the even positions of 64 */
            uint64_t x = (r[w] >> (32 * h)) & 0xffffffffu;
            x = (x | (x << 16)) & UINT64_C(0x0000ffff0000ffff);
            x = (x | (x << 8)) & UINT64_C(0x00ff00ff00ff00ff);
            x = (x | (x << 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
            x = (x | (x << 2)) & UINT64_C(0x3333333333333333);
            x = (x | (x << 1)) & UINT64_C(0x5555555555555555);
            a[2 * w + h] = x;
        }
    }
    a[2 * TK_PW] = 0;
    /* clear bits 2*19936 .. 19937 from the top: bit i goes with p * x^(i - 19937) */
    for (size_t w = (2 * (TK_MT_DEG - 1)) >> 6; w >= TK_MT_DEG >> 6; w--) {
        for (;;) {
            uint64_t v = a[w];
            if (w == TK_MT_DEG >> 6) v &= ~UINT64_C(0) << (TK_MT_DEG & 63);
            if (!v) break;
            size_t i = 64 * w + 63 - (size_t)__builtin_clzll(v), s = i - TK_MT_DEG;
            const uint64_t *ps = tk_mt_poly_shl[s & 63];
            uint64_t *dst = a + (s >> 6);
            for (size_t k = 0; k <= TK_PW; k++) dst[k] ^= ps[k];
        }
    }
    memcpy(r, a, TK_PW * sizeof *r);
}

/* r = r * x mod p. */
static void tk_poly_mulx_mod(uint64_t *r) {
    for (size_t w = TK_PW; w-- > 1;) r[w] = (r[w] << 1) | (r[w - 1] >> 63);
    r[0] <<= 1;
    if (r[TK_MT_DEG >> 6] >> (TK_MT_DEG & 63) & 1)
        for (size_t w = 0; w < TK_PW; w++) r[w] ^= tk_mt_poly[w];
}

/* r = x^k mod p. */
static void tk_poly_xpow_mod(uint64_t *r, uint64_t k) {
    int t = 0; /* start from x^(k >> t) with k >> t < 19937: no reduction needed for it */
    while ((k >> t) >= TK_MT_DEG) t++;
    memset(r, 0, TK_PW * sizeof *r);
    uint64_t e = k >> t;
    r[e >> 6] = UINT64_C(1) << (e & 63);
    while (t-- > 0) {
        tk_poly_sqr_mod(r);
        if (k >> t & 1) tk_poly_mulx_mod(r);
    }
}

/* g's state array is W_a and its next draw x[a + 624] (next == 624): makes it W_{a+k} (k draws
 * skipped). Horner: acc = F(acc) ^ c_i W for i = deg .. 0, on a circular 624-word buffer. Only the
 * upper bit of the first word is meaningful afterwards, as before. */
static void tk_mt_jump(tk_mt *g, uint64_t k) {
    uint64_t c[TK_PW];
    tk_poly_xpow_mod(c, k);
    uint32_t acc[624] = {0};
    const uint32_t *s = g->state;
    int top = TK_PW * 64 - 1;
    while (top >= 0 && !(c[top >> 6] >> (top & 63) & 1)) top--;
    int pos = 0;
    for (int i = top; i >= 0; i--) {
        int p1 = pos == 623 ? 0 : pos + 1, pm = pos + 397 >= 624 ? pos + 397 - 624 : pos + 397;
        uint32_t y = (acc[pos] & 0x80000000u) | (acc[p1] & 0x7fffffffu);
        acc[pos] = acc[pm] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        pos = p1;
        if (c[i >> 6] >> (i & 63) & 1) {
            for (int j = 0; j < 624 - pos; j++) acc[pos + j] ^= s[j];
            for (int j = 624 - pos; j < 624; j++) acc[j - (624 - pos)] ^= s[j];
        }
    }
    for (int j = 0; j < 624; j++) g->state[j] = acc[(pos + j) % 624];
}

/* Skips k draws: plain advancing (whole blocks by twisting, nothing tempered) for short gaps, the
 * jump for long ones. */
static void tk_mt_skip(tk_mt *g, uint64_t k) {
    uint64_t left = (uint64_t)(624 - g->next);
    if (k > left && k - left >= tk_mt_jump_min) {
        pthread_once(&tk_mt_poly_once, tk_mt_poly_compute);
        if (tk_mt_poly_ok) {
            g->next = 624;
            tk_mt_jump(g, k - left);
            return;
        }
    }
    while (k > 0) {
        if (g->next >= 624) tk_mt_twist(g);
        uint64_t step = (uint64_t)(624 - g->next) < k ? (uint64_t)(624 - g->next) : k;
        g->next += (int)step;
        k -= step;
    }
}

/* ---- normal_ -------------------------------------------------------------------------------------- */

void tk_torch_normal_f32_part(float *out, size_t ld, size_t rows, size_t dim, uint64_t grows, uint64_t gdim,
                              uint64_t row0, uint64_t row_step, uint64_t col0, uint64_t seed, double mean, double std) {
    const uint64_t n = grows * gdim;
    if (n < 16) { /* the cached double Box-Muller over the whole (tiny) tensor */
        float all[16];
        tk_torch_normal_f32_small(all, (size_t)n, seed, mean, std);
        for (size_t l = 0; l < rows; l++)
            memcpy(out + l * ld, all + (row0 + l * row_step) * gdim + col0, dim * sizeof(float));
        return;
    }
    const float fmean = (float)mean, fstd = (float)std;
    /* positions >= tail come from the refilled last 16 (draws n .. n+15) when n % 16 != 0 */
    const uint64_t tail = n % 16 ? n - 16 : n;
    tk_mt g;
    tk_mt_seed(&g, seed);
    uint64_t drawn = 0, cached = UINT64_MAX; /* first draw of the block held in vals */
    float vals[16];
    for (size_t l = 0; l < rows; l++) {
        const uint64_t p = (row0 + l * row_step) * gdim + col0, end = p + dim;
        float *o = out + l * ld;
        for (uint64_t i = p; i < end;) {
            uint64_t first, pos0, stop;
            if (i >= tail) {
                first = n;
                pos0 = n - 16;
                stop = end;
            } else {
                first = pos0 = i & ~UINT64_C(15);
                stop = pos0 + 16 < end ? pos0 + 16 : end;
                if (stop > tail) stop = tail;
            }
            if (first != cached) {
                tk_mt_skip(&g, first - drawn);
                for (int j = 0; j < 16; j++) vals[j] = tk_uniform_f24(&g);
                tk_normal_fill16(vals, fmean, fstd);
                drawn = first + 16;
                cached = first;
            }
            memcpy(o + (i - p), vals + (i - pos0), (size_t)(stop - i) * sizeof(float));
            i = stop;
        }
    }
}

void tk_torch_normal_f32(float *x, size_t n, uint64_t seed, double mean, double std) {
    if (n < 16) {
        tk_torch_normal_f32_small(x, n, seed, mean, std);
        return;
    }
    tk_torch_normal_f32_part(x, n, 1, n, 1, n, 0, 1, 0, seed, mean, std);
}

void tk_torch_uniform_f32(float *x, size_t n, uint64_t seed, double lo, double hi) {
    tk_mt g;
    tk_mt_seed(&g, seed);
    const float from = (float)lo, to = (float)hi;
    const float range = to - from;
    for (size_t i = 0; i < n; i++) x[i] = fmaf(tk_uniform_f24(&g), range, from);
}
