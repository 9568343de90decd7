/* convert.c - the storage dtypes: conversions between float32 and the compact dtypes (F16, BF16,
 * FBGEMM-style Q8_ROW), their row decoders (portable and AVX2) and encoders, and the traits table. */
#include "kernels/convert.h"
#include "kernels/simd.h"
#include "tokemb.h"

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
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);                        /* >= 65520: inf */
    if (ax < 0x38800000u) {                                                          /* below 2^-14 */
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

/* ---- row decoders and encoders ---------------------------------------------------------------- */

static void tk_decode_f32(const void *row, size_t dim, float *out) { memcpy(out, row, dim * sizeof(float)); }
static void tk_decode_f16(const void *row, size_t dim, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    for (size_t c = 0; c < dim; c++) out[c] = tk_f16_to_f32(h[c]);
}
static void tk_decode_bf16(const void *row, size_t dim, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    for (size_t c = 0; c < dim; c++) out[c] = tk_bf16_to_f32(h[c]);
}
static void tk_decode_q8(const void *row, size_t dim, float *out) {
    const uint8_t *q = (const uint8_t *)row;
    float scale, bias;
    tk_q8_scale_bias(q, dim, &scale, &bias);
    for (size_t c = 0; c < dim; c++) out[c] = tk_q8_value(q[c], scale, bias);
}

#if TK_X86
#define TK_VISA avx2
TK_VTARGET static void TK_VFN(tk_decode_f16)(const void *row, size_t dim, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    size_t c = 0;
    for (; c + TK_VW <= dim; c += TK_VW) TK_VSTOREU(out + c, TK_VLD_F16(h + c));
    for (; c < dim; c++) out[c] = tk_f16_to_f32(h[c]);
}

TK_VTARGET static void TK_VFN(tk_decode_bf16)(const void *row, size_t dim, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    size_t c = 0;
    for (; c + TK_VW <= dim; c += TK_VW) TK_VSTOREU(out + c, TK_VLD_BF16(h + c));
    for (; c < dim; c++) out[c] = tk_bf16_to_f32(h[c]);
}

TK_VTARGET static void TK_VFN(tk_decode_q8)(const void *row, size_t dim, float *out) {
    const uint8_t *q = (const uint8_t *)row;
    float scale, bias;
    tk_q8_scale_bias(q, dim, &scale, &bias);
    const TK_V s = TK_VSET1(scale), b = TK_VSET1(bias);
    size_t c = 0;
    for (; c + TK_VW <= dim; c += TK_VW) TK_VSTOREU(out + c, TK_VADD(TK_VMUL(TK_VLD_Q8(q + c), s), b)); /* unfused */
    for (; c < dim; c++) out[c] = tk_q8_value(q[c], scale, bias);
}
#undef TK_VISA
#define tk_decode_f32_avx2 tk_decode_f32 /* memcpy either way */
#define TK_DECODERS(name) \
    { name, name##_avx2, name##_avx2 } /* no AVX-512 decoders: the AVX2 ones */
#else
#define TK_DECODERS(name) \
    { name, name, name }
#endif

static void tk_encode_f32(const float *src, size_t dim, void *row) { memmove(row, src, dim * sizeof(float)); }
static void tk_encode_f16(const float *src, size_t dim, void *row) {
    uint16_t *h = (uint16_t *)row;
    for (size_t c = 0; c < dim; c++) h[c] = tk_f32_to_f16(src[c]);
}
static void tk_encode_bf16(const float *src, size_t dim, void *row) {
    uint16_t *h = (uint16_t *)row;
    for (size_t c = 0; c < dim; c++) h[c] = tk_f32_to_bf16(src[c]);
}
static void tk_encode_q8(const float *src, size_t dim, void *row) {
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
}

/* ---- the traits table ----------------------------------------------------------------------------- */

#define TK_DT_TRAITS(e, name, sfx, esize, extra) \
    [e] = {name, esize, extra, TK_DECODERS(tk_decode_##sfx), tk_encode_##sfx},
const tk_dtype_traits tk_dtype_traits_table[TK_DTYPE_COUNT] = {TK_DTYPES(TK_DT_TRAITS)};
#undef TK_DT_TRAITS

tk_row_decoder_fn tk_row_decoder(int32_t dtype) { return tk_dtype_traits_table[dtype].decode[tk_cpu_isa()]; }

void tk_row_decode(int32_t dtype, const void *row, size_t dim, float *out) { tk_row_decoder(dtype)(row, dim, out); }

void tk_row_encode(int32_t dtype, const float *src, size_t dim, void *row) {
    tk_dtype_traits_table[dtype].encode(src, dim, row);
}
