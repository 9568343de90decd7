/* rng_torch.c - torch's CPU default generator and its float32 normal_/uniform_ fills, re-implemented
 * from the algorithm description in shared/reference/pytorch-semantics.md section 4:
 *  - MT19937 seeded with the low 32 bits of the seed (init_genrand), random64 = (first << 32) | second;
 *  - float uniforms (r & 0xFFFFFF) * 2^-24, double uniforms (r64 & (2^53-1)) * 2^-53;
 *  - normal_ on >= 16 contiguous floats: n uniforms, then 16-value Box-Muller blocks (radii from the
 *    first 8, angles from the last 8, cos to the first half), the last 16 positions refilled and
 *    redone when n % 16 != 0, with torch's AVX2 kernel numerics (Cephes-style log and sincos, with the
 *    fused multiply-adds GCC forms when compiling it) emulated portably with fmaf;
 *  - normal_ on < 16 values: the double Box-Muller with the generator's one-value cache.
 * The library is compiled with -ffp-contract=off, so every fusion here is the explicit fmaf. */
#include "kernels/rng_torch.h"

#include <math.h>
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

static void tk_mt_twist(tk_mt *g) {
    uint32_t *s = g->state;
    for (int i = 0; i < 624; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % 624] & 0x7fffffffu);
        uint32_t v = s[(i + 397) % 624] ^ (y >> 1);
        if (y & 1u) v ^= 0x9908b0dfu;
        s[i] = v;
    }
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

void tk_torch_normal_f32(float *x, size_t n, uint64_t seed, double mean, double std) {
    tk_mt g;
    tk_mt_seed(&g, seed);
    if (n >= 16) {
        const float fmean = (float)mean, fstd = (float)std;
        for (size_t i = 0; i < n; i++) x[i] = tk_uniform_f24(&g);
        for (size_t i = 0; i + 16 <= n; i += 16) tk_normal_fill16(x + i, fmean, fstd);
        if (n % 16 != 0) {
            float *tail = x + (n - 16);
            for (int i = 0; i < 16; i++) tail[i] = tk_uniform_f24(&g);
            tk_normal_fill16(tail, fmean, fstd);
        }
        return;
    }
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

void tk_torch_uniform_f32(float *x, size_t n, uint64_t seed, double lo, double hi) {
    tk_mt g;
    tk_mt_seed(&g, seed);
    const float from = (float)lo, to = (float)hi;
    const float range = to - from;
    for (size_t i = 0; i < n; i++) x[i] = fmaf(tk_uniform_f24(&g), range, from);
}
