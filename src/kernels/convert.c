/* convert.c - dtype conversions between float32 and the compact storage dtypes (F16, BF16,
 * FBGEMM-style Q8_ROW), portable C plus AVX2/F16C row decoders chosen at run time. */
#include "convert.h"

#include "common/common.h"

#include <math.h>
#include <string.h>

float tk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0x1f) {
        x = sign | 0x7f800000u | (m << 13);
    } else if (e == 0) {
        float f = (float)m * 0x1p-24f; /* exact: subnormal halves are m * 2^-24 */
        memcpy(&x, &f, 4);
        x |= sign;
    } else {
        x = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t tk_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN, quiet */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);                      /* >= 65520: inf */
    if (ax < 0x38800000u) {                                                       /* below 2^-14 */
        float a;
        memcpy(&a, &ax, 4);
        /* a * 2^24 is exact and < 2^10; adding and removing 2^23 rounds it to an integer, ties to even */
        volatile float r = a * 16777216.0f + 8388608.0f;
        return (uint16_t)(sign | (uint16_t)(int)(r - 8388608.0f));
    }
    ax += 0xc8000fffu + ((ax >> 13) & 1u); /* rebias (-112 << 23) and round to nearest even */
    return (uint16_t)(sign | (ax >> 13));
}

float tk_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t tk_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* ---- row decoders ----------------------------------------------------------------------------- */

static void tk_decode_f16_portable(const uint16_t *h, size_t dim, float *out) {
    for (size_t c = 0; c < dim; c++) out[c] = tk_f16_to_f32(h[c]);
}
static void tk_decode_bf16_portable(const uint16_t *h, size_t dim, float *out) {
    for (size_t c = 0; c < dim; c++) out[c] = tk_bf16_to_f32(h[c]);
}
static void tk_decode_q8_portable(const uint8_t *q, size_t dim, float *out) {
    float scale, bias;
    memcpy(&scale, q + dim, 4);
    memcpy(&bias, q + dim + 4, 4);
    for (size_t c = 0; c < dim; c++) {
        float p = (float)q[c] * scale;
        out[c] = p + bias;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TK_HAVE_X86 1

__attribute__((target("avx2,f16c"))) static void tk_decode_f16_avx2(const uint16_t *h, size_t dim, float *out) {
    size_t c = 0;
    for (; c + 8 <= dim; c += 8)
        _mm256_storeu_ps(out + c, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(h + c))));
    for (; c < dim; c++) out[c] = tk_f16_to_f32(h[c]);
}

__attribute__((target("avx2"))) static void tk_decode_bf16_avx2(const uint16_t *h, size_t dim, float *out) {
    size_t c = 0;
    for (; c + 8 <= dim; c += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(h + c)));
        _mm256_storeu_ps(out + c, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    for (; c < dim; c++) out[c] = tk_bf16_to_f32(h[c]);
}

__attribute__((target("avx2"))) static void tk_decode_q8_avx2(const uint8_t *q, size_t dim, float *out) {
    float scale, bias;
    memcpy(&scale, q + dim, 4);
    memcpy(&bias, q + dim + 4, 4);
    const __m256 s = _mm256_set1_ps(scale), b = _mm256_set1_ps(bias);
    size_t c = 0;
    for (; c + 8 <= dim; c += 8) {
        __m128i b8 = _mm_loadl_epi64((const __m128i *)(const void *)(q + c));
        __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b8));
        _mm256_storeu_ps(out + c, _mm256_add_ps(_mm256_mul_ps(v, s), b)); /* unfused, as the portable path */
    }
    for (; c < dim; c++) {
        float p = (float)q[c] * scale;
        out[c] = p + bias;
    }
}

#include <cpuid.h>
/* CPUID.1:ECX bit 29 (F16C); AVX state support is implied by tk_cpu_isa() >= AVX2. */
#include <stdatomic.h>
int tk_cpu_has_f16c(void) {
    static atomic_int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        unsigned a, b, c, d;
        v = (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29))) ? 1 : 0;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}
#else
int tk_cpu_has_f16c(void) { return 0; }
#endif

static void tk_decode_f32(const void *row, size_t dim, float *out) { memcpy(out, row, dim * sizeof(float)); }
static void tk_decode_f16_p(const void *row, size_t dim, float *out) { tk_decode_f16_portable((const uint16_t *)row, dim, out); }
static void tk_decode_bf16_p(const void *row, size_t dim, float *out) { tk_decode_bf16_portable((const uint16_t *)row, dim, out); }
static void tk_decode_q8_p(const void *row, size_t dim, float *out) { tk_decode_q8_portable((const uint8_t *)row, dim, out); }
#ifdef TK_HAVE_X86
static void tk_decode_f16_a(const void *row, size_t dim, float *out) { tk_decode_f16_avx2((const uint16_t *)row, dim, out); }
static void tk_decode_bf16_a(const void *row, size_t dim, float *out) { tk_decode_bf16_avx2((const uint16_t *)row, dim, out); }
static void tk_decode_q8_a(const void *row, size_t dim, float *out) { tk_decode_q8_avx2((const uint8_t *)row, dim, out); }
#endif

tk_row_decoder_fn tk_row_decoder(int32_t dtype) {
#ifdef TK_HAVE_X86
    const int avx2 = tk_cpu_isa() >= TK_ISA_AVX2;
    switch (dtype) {
    case TOKEMB_F16: return avx2 && tk_cpu_has_f16c() ? tk_decode_f16_a : tk_decode_f16_p;
    case TOKEMB_BF16: return avx2 ? tk_decode_bf16_a : tk_decode_bf16_p;
    case TOKEMB_Q8_ROW: return avx2 ? tk_decode_q8_a : tk_decode_q8_p;
    default: return tk_decode_f32;
    }
#else
    switch (dtype) {
    case TOKEMB_F16: return tk_decode_f16_p;
    case TOKEMB_BF16: return tk_decode_bf16_p;
    case TOKEMB_Q8_ROW: return tk_decode_q8_p;
    default: return tk_decode_f32;
    }
#endif
}

void tk_row_decode(int32_t dtype, const void *row, size_t dim, float *out) {
#ifdef TK_HAVE_X86
    const int avx2 = tk_cpu_isa() >= TK_ISA_AVX2;
#else
    const int avx2 = 0;
#endif
    switch (dtype) {
    case TOKEMB_F32: memcpy(out, row, dim * sizeof(float)); return;
    case TOKEMB_F16:
#ifdef TK_HAVE_X86
        if (avx2 && tk_cpu_has_f16c()) {
            tk_decode_f16_avx2((const uint16_t *)row, dim, out);
            return;
        }
#endif
        tk_decode_f16_portable((const uint16_t *)row, dim, out);
        return;
    case TOKEMB_BF16:
#ifdef TK_HAVE_X86
        if (avx2) {
            tk_decode_bf16_avx2((const uint16_t *)row, dim, out);
            return;
        }
#endif
        tk_decode_bf16_portable((const uint16_t *)row, dim, out);
        return;
    case TOKEMB_Q8_ROW:
#ifdef TK_HAVE_X86
        if (avx2) {
            tk_decode_q8_avx2((const uint8_t *)row, dim, out);
            return;
        }
#endif
        tk_decode_q8_portable((const uint8_t *)row, dim, out);
        return;
    default: (void)avx2; return;
    }
}

void tk_row_encode(int32_t dtype, const float *src, size_t dim, void *row) {
    switch (dtype) {
    case TOKEMB_F32: memmove(row, src, dim * sizeof(float)); return;
    case TOKEMB_F16: {
        uint16_t *h = (uint16_t *)row;
        for (size_t c = 0; c < dim; c++) h[c] = tk_f32_to_f16(src[c]);
        return;
    }
    case TOKEMB_BF16: {
        uint16_t *h = (uint16_t *)row;
        for (size_t c = 0; c < dim; c++) h[c] = tk_f32_to_bf16(src[c]);
        return;
    }
    case TOKEMB_Q8_ROW: {
        uint8_t *q = (uint8_t *)row;
        float mn = src[0], mx = src[0];
        for (size_t c = 1; c < dim; c++) {
            if (src[c] < mn) mn = src[c];
            if (src[c] > mx) mx = src[c];
        }
        const float range = mx - mn;
        const float scale = range / 255.0f;
        const float inv = 255.0f / (range + 1e-8f);
        for (size_t c = 0; c < dim; c++) {
            long v = lrintf((src[c] - mn) * inv);
            q[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        memcpy(q + dim, &scale, 4);
        memcpy(q + dim + 4, &mn, 4);
        return;
    }
    default: return;
    }
}
