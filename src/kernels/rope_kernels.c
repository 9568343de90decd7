/* rope_kernels.c - the RoPE kernels: cos/sin of one position (vectorised double sincos) and the rotation
 * (portable, AVX2, AVX-512). Every rotation variant performs the same per-element float32 operations
 * (two rounded products and one rounded sum, no FMA contraction), so every variant gives the same bits.
 *
 * The rotation is written as x' = x*C + partner(x)*S with pre-signed sine tables, which is the same
 * arithmetic as a*c - b*s (x - y is x + (-y) in IEEE arithmetic, and b*(-s) = -(b*s) exactly):
 *   NEOX  a' = a*c + b*sa, b' = b*c + a*sb with sa = -s, sb = s forward and sa = s, sb = -s backward;
 *   GPTJ  on interleaved [a0 b0 a1 b1 ...]: C2 = [c0 c0 c1 c1 ...], S2 = [sa0 sb0 sa1 sb1 ...], and
 *         partner(x) = x with each pair swapped. */
#include "rope_kernels.h"
#include "common/common.h"

#include <math.h>

#define TK_ROPE_CHUNK 64 /* pairs whose signed sine (and GPTJ duplicated) tables sit on the stack */

/* ---- cos/sin ------------------------------------------------------------------------------------ */

static void tk_cs_libm(const double *inv, double A, double p, size_t k, float *c, float *s) {
    double phi = p * inv[k];
    c[k] = (float)(A * cos(phi));
    s[k] = (float)(A * sin(phi));
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TK_ROPE_X86 1

/* Minimax coefficients of sin and cos on [-pi/4, pi/4] (the classic fdlibm sets):
 * sin r = r + r^3 (S1 + z S2 + ... + z^5 S6), cos r = 1 - z/2 + z^2 (C1 + ... + z^5 C6), z = r^2. */
static const double tk_S[6] = {-1.66666666666666324348e-01, 8.33333333332248946124e-03,  -1.98412698298579493134e-04,
                               2.75573137070700676789e-06,  -2.50507602534068634195e-08, 1.58969099521155010221e-10};
static const double tk_C[6] = {4.16666666666666019037e-02,  -1.38888888888741095749e-03, 2.48015872894767294178e-05,
                               -2.75573143513906633035e-07, 2.08757232129817482790e-09,  -1.13596475577881948265e-11};
/* pi/2 = P1 + P2 (+ 1.5e-33): P1 is the double nearest pi/2. For |phi| <= 2^30 the quotient n fits in
 * 31 bits, fma(-n, P1, phi) is exact (a multiple of 2^-53 below 2 in magnitude) and the dropped term
 * n * 1.5e-33 stays below 2e-24. */
#define TK_PIO2_1 1.57079632679489655800e+00
#define TK_PIO2_2 6.12323399573676603587e-17
#define TK_SINCOS_LIMIT 1073741824.0 /* 2^30 rad */

/* 4 angles: A*cos and A*sin rounded to float. */
__attribute__((target("avx2,fma"))) static inline void tk_sincos4(__m256d phi, __m256d A, float *c, float *s) {
    const __m256d magic = _mm256_set1_pd(6755399441055744.0); /* 1.5 * 2^52: round to nearest integer */
    __m256d t = _mm256_fmadd_pd(phi, _mm256_set1_pd(0.63661977236758134308), magic);
    __m256d n = _mm256_sub_pd(t, magic);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(TK_PIO2_1), phi);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(TK_PIO2_2), r);
    __m256d z = _mm256_mul_pd(r, r);
    __m256d ps = _mm256_set1_pd(tk_S[5]), pc = _mm256_set1_pd(tk_C[5]);
    for (int i = 4; i >= 0; i--) {
        ps = _mm256_fmadd_pd(ps, z, _mm256_set1_pd(tk_S[i]));
        pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(tk_C[i]));
    }
    __m256d sr = _mm256_fmadd_pd(_mm256_mul_pd(r, z), ps, r);
    __m256d cr =
        _mm256_fmadd_pd(_mm256_mul_pd(z, z), pc, _mm256_fnmadd_pd(_mm256_set1_pd(0.5), z, _mm256_set1_pd(1.0)));
    /* quadrant q = n mod 4 sits in the low bits of t: sin phi = (s, c, -s, -c)[q], cos phi = (c, -s, -c, s)[q] */
    __m256i q = _mm256_castpd_si256(t);
    __m256d swap =
        _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(q, _mm256_set1_epi64x(1)), _mm256_set1_epi64x(1)));
    __m256d sv = _mm256_blendv_pd(sr, cr, swap), cv = _mm256_blendv_pd(cr, sr, swap);
    __m256i sgn_s = _mm256_slli_epi64(_mm256_and_si256(q, _mm256_set1_epi64x(2)), 62);
    __m256i sgn_c =
        _mm256_slli_epi64(_mm256_and_si256(_mm256_add_epi64(q, _mm256_set1_epi64x(1)), _mm256_set1_epi64x(2)), 62);
    sv = _mm256_xor_pd(sv, _mm256_castsi256_pd(sgn_s));
    cv = _mm256_xor_pd(cv, _mm256_castsi256_pd(sgn_c));
    _mm_storeu_ps(c, _mm256_cvtpd_ps(_mm256_mul_pd(A, cv)));
    _mm_storeu_ps(s, _mm256_cvtpd_ps(_mm256_mul_pd(A, sv)));
}

__attribute__((target("avx2,fma"))) static void tk_cos_sin_avx2(const double *inv, double A, double p, size_t n,
                                                                float *c, float *s) {
    const __m256d vp = _mm256_set1_pd(p), vA = _mm256_set1_pd(A), lim = _mm256_set1_pd(TK_SINCOS_LIMIT);
    size_t k = 0;
    for (; k < n; k += 4) {
        __m256d phi;
        float cb[4], sb[4], *co = c + k, *so = s + k;
        if (k + 4 <= n) {
            phi = _mm256_mul_pd(vp, _mm256_loadu_pd(inv + k));
        } else { /* the tail as a padded vector: same lane arithmetic as the full vectors */
            double ib[4] = {0, 0, 0, 0};
            for (size_t j = 0; j < n - k; j++) ib[j] = inv[k + j];
            phi = _mm256_mul_pd(vp, _mm256_loadu_pd(ib));
            co = cb;
            so = sb;
        }
        tk_sincos4(phi, vA, co, so);
        if (co == cb)
            for (size_t j = 0; j < n - k; j++) {
                c[k + j] = cb[j];
                s[k + j] = sb[j];
            }
        int big = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_andnot_pd(_mm256_set1_pd(-0.0), phi), lim, _CMP_NLE_UQ));
        if (TK_UNLIKELY(big))
            for (size_t j = 0; j < 4 && k + j < n; j++)
                if (big >> j & 1) tk_cs_libm(inv, A, p, k + j, c, s);
    }
}
#else
#define TK_ROPE_X86 0
#endif

void tk_rope_cos_sin_f32(const double *inv, double A, double p, size_t n, float *c, float *s) {
#if TK_ROPE_X86
    if (tk_cpu_isa() >= TK_ISA_AVX2) {
        tk_cos_sin_avx2(inv, A, p, n, c, s);
        return;
    }
#endif
    for (size_t k = 0; k < n; k++) tk_cs_libm(inv, A, p, k, c, s);
}

/* ---- rotation ----------------------------------------------------------------------------------- */

/* The tables of one chunk of m <= TK_ROPE_CHUNK pairs. NEOX: cc = cos, sa, sb. GPTJ: cc = C2, sa = S2
 * (2m entries each). */
typedef struct {
    float cc[2 * TK_ROPE_CHUNK], sa[2 * TK_ROPE_CHUNK], sb[TK_ROPE_CHUNK];
} tk_rope_tabs;

static void tk_rope_tables(int layout, size_t m, const float *cos, const float *sin, int backward, tk_rope_tabs *t) {
    for (size_t k = 0; k < m; k++) {
        float c = cos[k], s = backward ? sin[k] : -sin[k]; /* s = sa */
        if (layout == 0) {
            t->cc[k] = c;
            t->sa[k] = s;
            t->sb[k] = -s;
        } else {
            t->cc[2 * k] = c;
            t->cc[2 * k + 1] = c;
            t->sa[2 * k] = s;
            t->sa[2 * k + 1] = -s;
        }
    }
}

/* Portable: pairs [0, m) of one head (v points at the chunk's first element). */
static void tk_rot_neox_c(float *va, float *vb, size_t k, size_t m, const tk_rope_tabs *t) {
    for (; k < m; k++) {
        float a = va[k], b = vb[k];
        va[k] = a * t->cc[k] + b * t->sa[k];
        vb[k] = b * t->cc[k] + a * t->sb[k];
    }
}
static void tk_rot_gptj_c(float *v, size_t j, size_t m2, const tk_rope_tabs *t) {
    for (; j < m2; j += 2) {
        float a = v[j], b = v[j + 1];
        v[j] = a * t->cc[j] + b * t->sa[j];
        v[j + 1] = b * t->cc[j + 1] + a * t->sa[j + 1];
    }
}

#if TK_ROPE_X86
__attribute__((target("avx2"))) static void tk_rot_avx2(float *x, size_t n_heads, size_t head_stride, int layout,
                                                        size_t half, size_t m, const tk_rope_tabs *t) {
    for (size_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_stride;
        if (layout == 0) {
            float *va = v, *vb = v + half;
            size_t k = 0;
            for (; k + 8 <= m; k += 8) {
                __m256 a = _mm256_loadu_ps(va + k), b = _mm256_loadu_ps(vb + k), c = _mm256_loadu_ps(t->cc + k);
                _mm256_storeu_ps(va + k,
                                 _mm256_add_ps(_mm256_mul_ps(a, c), _mm256_mul_ps(b, _mm256_loadu_ps(t->sa + k))));
                _mm256_storeu_ps(vb + k,
                                 _mm256_add_ps(_mm256_mul_ps(b, c), _mm256_mul_ps(a, _mm256_loadu_ps(t->sb + k))));
            }
            tk_rot_neox_c(va, vb, k, m, t);
        } else {
            size_t j = 0;
            for (; j + 8 <= 2 * m; j += 8) {
                __m256 a = _mm256_loadu_ps(v + j);
                __m256 p = _mm256_mul_ps(_mm256_permute_ps(a, 0xB1), _mm256_loadu_ps(t->sa + j));
                _mm256_storeu_ps(v + j, _mm256_add_ps(_mm256_mul_ps(a, _mm256_loadu_ps(t->cc + j)), p));
            }
            tk_rot_gptj_c(v, j, 2 * m, t);
        }
    }
}

__attribute__((target("avx512f"))) static void tk_rot_avx512(float *x, size_t n_heads, size_t head_stride, int layout,
                                                             size_t half, size_t m, const tk_rope_tabs *t) {
    const size_t w = layout == 0 ? m : 2 * m; /* floats per head part */
    const __mmask16 tail = (__mmask16)((1u << (w % 16)) - 1u);
    const size_t full = w - w % 16;
    for (size_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_stride;
        if (layout == 0) {
            float *va = v, *vb = v + half;
            for (size_t k = 0; k < w; k += 16) {
                __mmask16 mk = k < full ? (__mmask16)0xFFFF : tail;
                __m512 a = _mm512_maskz_loadu_ps(mk, va + k), b = _mm512_maskz_loadu_ps(mk, vb + k);
                __m512 c = _mm512_maskz_loadu_ps(mk, t->cc + k);
                __m512 ra = _mm512_add_ps(_mm512_mul_ps(a, c), _mm512_mul_ps(b, _mm512_maskz_loadu_ps(mk, t->sa + k)));
                __m512 rb = _mm512_add_ps(_mm512_mul_ps(b, c), _mm512_mul_ps(a, _mm512_maskz_loadu_ps(mk, t->sb + k)));
                _mm512_mask_storeu_ps(va + k, mk, ra);
                _mm512_mask_storeu_ps(vb + k, mk, rb);
            }
        } else {
            for (size_t j = 0; j < w; j += 16) {
                __mmask16 mk = j < full ? (__mmask16)0xFFFF : tail;
                __m512 a = _mm512_maskz_loadu_ps(mk, v + j);
                __m512 p = _mm512_mul_ps(_mm512_permute_ps(a, 0xB1), _mm512_maskz_loadu_ps(mk, t->sa + j));
                _mm512_mask_storeu_ps(v + j, mk,
                                      _mm512_add_ps(_mm512_mul_ps(a, _mm512_maskz_loadu_ps(mk, t->cc + j)), p));
            }
        }
    }
}
#endif

static void tk_rot_portable(float *x, size_t n_heads, size_t head_stride, int layout, size_t half, size_t m,
                            const tk_rope_tabs *t) {
    for (size_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_stride;
        if (layout == 0) tk_rot_neox_c(v, v + half, 0, m, t);
        else tk_rot_gptj_c(v, 0, 2 * m, t);
    }
}

void tk_rope_rotate_f32(float *x, size_t n_heads, size_t head_stride, int layout, size_t half, size_t pair0,
                        size_t n_pairs, const float *cos, const float *sin, int backward) {
    tk_rope_tabs t;
    const int isa = tk_cpu_isa();
    for (size_t k0 = 0; k0 < n_pairs; k0 += TK_ROPE_CHUNK) {
        size_t m = n_pairs - k0 < TK_ROPE_CHUNK ? n_pairs - k0 : TK_ROPE_CHUNK;
        tk_rope_tables(layout, m, cos + k0, sin + k0, backward, &t);
        float *xc = x + (layout == 0 ? pair0 + k0 : 2 * (pair0 + k0));
#if TK_ROPE_X86
        if (isa >= TK_ISA_AVX512) {
            tk_rot_avx512(xc, n_heads, head_stride, layout, half, m, &t);
            continue;
        }
        if (isa >= TK_ISA_AVX2) {
            tk_rot_avx2(xc, n_heads, head_stride, layout, half, m, &t);
            continue;
        }
#endif
        (void)isa;
        tk_rot_portable(xc, n_heads, head_stride, layout, half, m, &t);
    }
}
