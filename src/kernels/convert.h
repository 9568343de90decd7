/* convert.h - storage dtype conversion kernels (convert.c) and the dequantising gather
 * (gather_dtype.c). Pure loops over valid data. Every ISA variant gives the same bits. */
#ifndef TOKEMB_KERNELS_CONVERT_H
#define TOKEMB_KERNELS_CONVERT_H

#include <stddef.h>
#include <stdint.h>

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
void tk_row_decode(int32_t dtype, const void *row, size_t dim, float *out);
void tk_row_encode(int32_t dtype, const float *src, size_t dim, void *row);
/* The decoder tk_row_decode uses for dtype on this CPU (choose once, call per row). */
typedef void (*tk_row_decoder_fn)(const void *row, size_t dim, float *out);
tk_row_decoder_fn tk_row_decoder(int32_t dtype);

/* 1 when the CPU has F16C (and the build targets x86-64 with GCC/Clang), else 0. Cached. */
int tk_cpu_has_f16c(void);

/* out[i*out_stride + c] = decode(row ids[i])[c]: rows start every row_bytes bytes of table. */
void tk_gather_dtype(int32_t dtype, const void *table, size_t row_bytes, const void *ids, int id_width, size_t n,
                     size_t dim, float *out, size_t out_stride);

#endif
