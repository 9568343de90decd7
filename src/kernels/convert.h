/* convert.h - the storage dtypes (enum tokemb_dtype): one traits table (element size, row bytes, row decoder
 * per ISA, row encoder; in the style of ggml's type_traits_cpu), the scalar conversions (convert.c) and the
 * dequantising gather (gather_dtype.c). Pure loops over valid data; every ISA variant gives the same bits. */
#ifndef TOKEMB_KERNELS_CONVERT_H
#define TOKEMB_KERNELS_CONVERT_H

#include "common/cpu.h"
#include "tokemb.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* IEEE binary16 <-> binary32 (to half: round to nearest even, overflow to inf, NaN kept quiet). */
float tk_f16_to_f32(uint16_t h);
uint16_t tk_f32_to_f16(float f);
/* bfloat16 <-> binary32 (to bf16: round to nearest even, NaN kept quiet with its sign). */
float tk_bf16_to_f32(uint16_t h);
uint16_t tk_f32_to_bf16(float f);

/* Storage rows, dtype = enum tokemb_dtype. Q8_ROW rows are FBGEMM's fused 8-bit row-wise layout:
 * dim uint8 codes, then float scale, then float bias (8 bytes, little-endian, unaligned); the value is
 * (float)q * scale + bias (two roundings, no FMA). Quantisation follows FBGEMM's
 * FloatToFused8BitRowwiseQuantized: bias = min, scale = (max - min) / 255,
 * q = lrintf((x - min) * (255 / (max - min + 1e-8f))) clamped to [0, 255]. src must be finite. */
typedef void (*tk_row_decoder_fn)(const void *row, size_t dim, float *out);
typedef void (*tk_row_encoder_fn)(const float *src, size_t dim, void *row);

/* The dtypes, once: X(enum value, name, suffix of its decode / encode functions, bytes per element,
 * bytes after the dim elements). The traits table and the size helpers below are generated from it (the
 * helpers are switches, so a kernel instantiated for a constant dtype gets constant sizes). */
#define TK_DTYPES(X)                   \
    X(TOKEMB_F32, "F32", f32, 4, 0)    \
    X(TOKEMB_F16, "F16", f16, 2, 0)    \
    X(TOKEMB_BF16, "BF16", bf16, 2, 0) \
    X(TOKEMB_Q8_ROW, "Q8_ROW", q8, 1, 8) /* FBGEMM's fused rows: dim codes, float scale, float bias */

typedef struct {
    const char *name;
    size_t elem_size;                       /* bytes per stored element (Q8_ROW: a code) */
    size_t row_extra;                       /* bytes after the dim elements (Q8_ROW: scale and bias) */
    tk_row_decoder_fn decode[TK_ISA_COUNT]; /* per ISA level (a level without its own: the one below's) */
    tk_row_encoder_fn encode;
} tk_dtype_traits;

enum { TK_DTYPE_COUNT = 4 };
extern const tk_dtype_traits tk_dtype_traits_table[TK_DTYPE_COUNT];

/* The traits of dtype, NULL for an unknown dtype. */
static inline const tk_dtype_traits *tk_dtype_traits_of(int32_t dtype) {
    return dtype >= 0 && dtype < TK_DTYPE_COUNT ? &tk_dtype_traits_table[dtype] : NULL;
}
/* Element size of a storage dtype, 0 for unknown. */
static inline size_t tk_dtype_size(int32_t dtype) {
#define TK_DT_SIZE_CASE(e, name, sfx, esize, extra) \
    case e: return esize;
    switch (dtype) {
        TK_DTYPES(TK_DT_SIZE_CASE)
    default: return 0;
    }
#undef TK_DT_SIZE_CASE
}
/* Bytes a row of dim elements occupies (and a decode reads): codes plus Q8_ROW's scale and bias; 0 for an
 * unknown dtype or when the count overflows. */
static inline size_t tk_dtype_row_bytes_(size_t dim, size_t esize, size_t extra) {
    size_t b;
    if (__builtin_mul_overflow(dim, esize, &b) || __builtin_add_overflow(b, extra, &b)) return 0;
    return b;
}
static inline size_t tk_dtype_row_bytes(int32_t dtype, size_t dim) {
#define TK_DT_ROW_CASE(e, name, sfx, esize, extra) \
    case e: return tk_dtype_row_bytes_(dim, esize, extra);
    switch (dtype) {
        TK_DTYPES(TK_DT_ROW_CASE)
    default: return 0;
    }
#undef TK_DT_ROW_CASE
}

/* Q8_ROW: the scale and bias stored after a row's dim codes, and the value of code q. */
static inline void tk_q8_scale_bias(const uint8_t *row, size_t dim, float *scale, float *bias) {
    memcpy(scale, row + dim, 4);
    memcpy(bias, row + dim + 4, 4);
}
static inline float tk_q8_value(uint8_t q, float scale, float bias) {
    const float p = (float)q * scale;
    return p + bias;
}

/* The row decoder of dtype (a valid one) for this CPU (choose once, call per row). */
tk_row_decoder_fn tk_row_decoder(int32_t dtype);
void tk_row_decode(int32_t dtype, const void *row, size_t dim, float *out);
void tk_row_encode(int32_t dtype, const float *src, size_t dim, void *row);

/* out[i*out_stride + c] = decode(row ids[i])[c]: rows start every row_bytes bytes of table. */
void tk_gather_dtype(int32_t dtype, const void *table, size_t row_bytes, const void *ids, int id_width, size_t n,
                     size_t dim, float *out, size_t out_stride);

#endif
