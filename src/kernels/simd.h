/* kernels/simd.h - the one vocabulary of the kernels: attributes, the x86 guard, the compile-per-ISA macro,
 * the per-ISA vector macros, prefetch helpers and the id accessor. Every kernel file includes this and
 * nothing of the runtime but common/cpu.h (which it pulls in). Not part of the public ABI.
 *
 * The library is compiled for baseline x86-64. A kernel with SIMD variants is written once and compiled
 * once per ISA with a target attribute; tk_cpu_isa() picks the variant at run time. Two forms, one idea
 * (zstd's compile-twice, ggml's simd-mappings):
 *
 *  - Plain C bodies that only need the compiler to use wider instructions: write the body as an
 *    always-inline function `name_body(...)`, then TK_PER_ISA_AVX2(TK_DEFINE_ISA_FN, name, params, args)
 *    defines name_portable and name_avx2 (TK_PER_ISA for AVX-512 as well), and
 *    TK_ISA_PICK_AVX2(name, tk_cpu_isa())(args) / TK_ISA_PICK(...) calls the one for this CPU.
 *
 *  - Bodies with vector code: written against the generic names below (TK_V, TK_VW, TK_VADD, TK_VLD_F16,
 *    TK_VFN(name), TK_VTARGET, ...), which map onto one ISA's set through TK_VISA:
 *        #define TK_VISA avx2
 *        ... functions written with TK_V* ...
 *        #undef TK_VISA
 *    (or a template header included once per TK_VISA, as bags_simd.h). TK_VFN(name) pastes the ISA suffix,
 *    so each instantiation defines its own name_avx2 / name_avx512.
 *
 * Every ISA variant of a kernel gives the same bits as its portable form (docs/performance.md). */
#ifndef TOKEMB_KERNELS_SIMD_H
#define TOKEMB_KERNELS_SIMD_H

#include "common/cpu.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- attributes and the x86 guard ---------------------------------------------------------------- */

#define TK_ALWAYS_INLINE static inline __attribute__((always_inline))

/* 1 when the SIMD variants are built (x86-64 with GCC or Clang), else 0: the only x86 guard. */
#if defined(__x86_64__) && defined(__GNUC__)
#define TK_X86 1
#include <immintrin.h>
#else
#define TK_X86 0
#endif

/* The target attribute of each ISA level of tk_cpu_isa() (cpu.h says what each level guarantees). */
#define TK_TARGET(isa) TK_TARGET_##isa
#define TK_TARGET_portable
#define TK_TARGET_avx2 __attribute__((target("avx2,fma,f16c")))
#define TK_TARGET_avx512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))

#define TK_CAT_(a, b) a##b
#define TK_CAT(a, b) TK_CAT_(a, b)

/* ---- compile-per-ISA ------------------------------------------------------------------------------ */

/* M(isa, ...) once per ISA variant: portable, then on x86-64 avx2 (TK_PER_ISA_AVX2) and avx512 (TK_PER_ISA). */
#if TK_X86
#define TK_PER_ISA_AVX2(M, ...) M(portable, __VA_ARGS__) M(avx2, __VA_ARGS__)
#define TK_PER_ISA(M, ...) TK_PER_ISA_AVX2(M, __VA_ARGS__) M(avx512, __VA_ARGS__)
#else
#define TK_PER_ISA_AVX2(M, ...) M(portable, __VA_ARGS__)
#define TK_PER_ISA(M, ...) M(portable, __VA_ARGS__)
#endif

/* For TK_PER_ISA*: `static void name_<isa> params { name_body args; }` with the ISA's target attribute. */
#define TK_DEFINE_ISA_FN(isa, name, params, args) \
    TK_TARGET(isa) static void name##_##isa params { name##_body args; }

/* The variant of name for ISA level isa (a value of tk_cpu_isa()), as a function designator:
 * TK_ISA_PICK(tk_gather_f32, tk_cpu_isa())(args...). TK_ISA_PICK_AVX2 for kernels built up to AVX2. */
#if TK_X86
#define TK_ISA_PICK_AVX2(name, isa) ((isa) >= TK_ISA_AVX2 ? name##_avx2 : name##_portable)
#define TK_ISA_PICK(name, isa) ((isa) >= TK_ISA_AVX512 ? name##_avx512 : TK_ISA_PICK_AVX2(name, isa))
#else
#define TK_ISA_PICK_AVX2(name, isa) ((void)(isa), name##_portable)
#define TK_ISA_PICK(name, isa) ((void)(isa), name##_portable)
#endif

/* ---- ids ------------------------------------------------------------------------------------------ */

/* Token id i of an id array of id_width 4 (int32) or 8 (int64) bytes. */
static inline int64_t tk_id_at(const void *ids, int id_width, size_t i) {
    return id_width == 8 ? ((const int64_t *)ids)[i] : (int64_t)((const int32_t *)ids)[i];
}

/* ---- prefetch ------------------------------------------------------------------------------------- */

/* Locality hint of the software prefetches of random table rows (lookup, bags): 2 = prefetcht1, into L2.
 * Measured choice, see docs/performance.md ("Prefetch"). */
#ifndef TK_PF_LOC
#define TK_PF_LOC 2
#endif

/* One cache line at p into L2 (TK_PF_LOC) / into L1. */
#define TK_PREFETCH_L2(p) __builtin_prefetch((p), 0, TK_PF_LOC)
#define TK_PREFETCH_L1(p) __builtin_prefetch((p), 0, 3)

/* The line at p into L2, or into L1 when near (the table fits the last-level cache). */
#define TK_PREFETCH(p, near) ((near) ? TK_PREFETCH_L1(p) : TK_PREFETCH_L2(p))
TK_ALWAYS_INLINE void tk_prefetch(const void *p, int near) { TK_PREFETCH(p, near); }
/* The lines of [p, p + bytes), as tk_prefetch. */
TK_ALWAYS_INLINE void tk_prefetch_bytes(const void *p, size_t bytes, int near) {
    const char *c = (const char *)p;
    for (size_t o = 0; o < bytes; o += 64) TK_PREFETCH(c + o, near);
}

/* ---- vector vocabulary ----------------------------------------------------------------------------
 * Generic names, resolved through TK_VISA (avx2 or avx512) where they are used:
 *   TK_V            vector of TK_VW floats (__m256 / __m512); TK_VTARGET its function attribute;
 *   TK_VFN(name)    name with the ISA suffix (name_avx2);
 *   TK_VZERO(), TK_VSET1(f), TK_VADD(a, b), TK_VMUL(a, b), TK_VFMA(a, b, c) = a*b + c (one rounding),
 *   TK_VDIV(a, b), TK_VLOADU(p), TK_VSTOREU(p, v), TK_VSTREAM(p, v) (non-temporal, p aligned to the vector);
 *   TK_VMASKLOAD(p, rem), TK_VMASKSTORE(p, rem, v): the first rem < TK_VW floats, zeros beyond;
 *   TK_VLD_F16(p), TK_VLD_BF16(p), TK_VLD_Q8(p): TK_VW stored elements at p widened to float (Q8: the codes);
 *   TK_VPART(p, nbytes): the first nbytes (< 2 * TK_VW) at p in a raw vector, zeros beyond (reads no more);
 *   TK_VCVT_F16(raw), TK_VCVT_BF16(raw), TK_VCVT_Q8(raw): the TK_VW elements of such a raw vector as float.
 * F16 widening is exact (vcvtph2ps), BF16 a 16-bit shift, Q8 an exact integer conversion. */
#define TK_VOP(op) TK_CAT(TK_CAT(TK_VEC_, TK_VISA), op)
#define TK_V TK_VOP(_T)
#define TK_VW TK_VOP(_W)
#define TK_VTARGET TK_CAT(TK_TARGET_, TK_VISA)
#define TK_VFN(name) TK_CAT(name##_, TK_VISA)
#define TK_VZERO TK_VOP(_ZERO)
#define TK_VSET1 TK_VOP(_SET1)
#define TK_VADD TK_VOP(_ADD)
#define TK_VMUL TK_VOP(_MUL)
#define TK_VFMA TK_VOP(_FMA)
#define TK_VDIV TK_VOP(_DIV)
#define TK_VLOADU TK_VOP(_LOADU)
#define TK_VSTOREU TK_VOP(_STOREU)
#define TK_VSTREAM TK_VOP(_STREAM)
#define TK_VMASKLOAD TK_VOP(_MASKLOAD)
#define TK_VMASKSTORE TK_VOP(_MASKSTORE)
#define TK_VLD_F16 TK_VOP(_LD_F16)
#define TK_VLD_BF16 TK_VOP(_LD_BF16)
#define TK_VLD_Q8 TK_VOP(_LD_Q8)
#define TK_VPART TK_VOP(_PART)
#define TK_VCVT_F16 TK_VOP(_CVT_F16)
#define TK_VCVT_BF16 TK_VOP(_CVT_BF16)
#define TK_VCVT_Q8 TK_VOP(_CVT_Q8)

#if TK_X86
/* The first n < 16 bytes at p, zeros beyond. */
static inline __m128i tk_part16(const uint8_t *p, size_t n) {
    uint8_t b[16] = {0};
    memcpy(b, p, n);
    __m128i x;
    memcpy(&x, b, 16);
    return x;
}

/* AVX2 (+FMA, F16C): 8 floats a vector */
#define TK_VEC_avx2_T __m256
#define TK_VEC_avx2_W 8
#define TK_VEC_avx2_ZERO() _mm256_setzero_ps()
#define TK_VEC_avx2_SET1(f) _mm256_set1_ps(f)
#define TK_VEC_avx2_ADD(a, b) _mm256_add_ps(a, b)
#define TK_VEC_avx2_MUL(a, b) _mm256_mul_ps(a, b)
#define TK_VEC_avx2_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define TK_VEC_avx2_DIV(a, b) _mm256_div_ps(a, b)
#define TK_VEC_avx2_LOADU(p) _mm256_loadu_ps(p)
#define TK_VEC_avx2_STOREU(p, v) _mm256_storeu_ps(p, v)
#define TK_VEC_avx2_STREAM(p, v) _mm256_stream_ps(p, v)
#define TK_VEC_avx2_MASK(rem) \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rem)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define TK_VEC_avx2_MASKLOAD(p, rem) _mm256_maskload_ps(p, TK_VEC_avx2_MASK(rem))
#define TK_VEC_avx2_MASKSTORE(p, rem, v) _mm256_maskstore_ps(p, TK_VEC_avx2_MASK(rem), v)
#define TK_VEC_avx2_CVT_F16(x) _mm256_cvtph_ps(x)
#define TK_VEC_avx2_CVT_BF16(x) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(x), 16))
#define TK_VEC_avx2_CVT_Q8(x) _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(x))
#define TK_VEC_avx2_LD_F16(p) TK_VEC_avx2_CVT_F16(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define TK_VEC_avx2_LD_BF16(p) TK_VEC_avx2_CVT_BF16(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define TK_VEC_avx2_LD_Q8(p) TK_VEC_avx2_CVT_Q8(_mm_loadl_epi64((const __m128i *)(const void *)(p)))
#define TK_VEC_avx2_PART(p, n) tk_part16(p, n)

/* 4 floats in an xmm register, with the AVX2 target's instructions (FMA, F16C): the row of a 4-wide bag
 * (kernels/bags_simd.h). Only the names the small-row bag kernel uses; the loads read exactly 4 elements. */
#define TK_VEC_x4_T __m128
#define TK_VEC_x4_W 4
#define TK_VEC_x4_ZERO() _mm_setzero_ps()
#define TK_VEC_x4_SET1(f) _mm_set1_ps(f)
#define TK_VEC_x4_ADD(a, b) _mm_add_ps(a, b)
#define TK_VEC_x4_MUL(a, b) _mm_mul_ps(a, b)
#define TK_VEC_x4_FMA(a, b, c) _mm_fmadd_ps(a, b, c)
#define TK_VEC_x4_DIV(a, b) _mm_div_ps(a, b)
#define TK_VEC_x4_LOADU(p) _mm_loadu_ps(p)
#define TK_VEC_x4_STOREU(p, v) _mm_storeu_ps(p, v)
#define TK_VEC_x4_LD_F16(p) _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)(p)))
#define TK_VEC_x4_LD_BF16(p) \
    _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p))), 16))
#define TK_VEC_x4_LD_Q8(p) _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(tk_load_u32(p))))
/* The 4 bytes at p as an int (any alignment). */
static inline int tk_load_u32(const void *p) {
    int v;
    memcpy(&v, p, 4);
    return v;
}

/* AVX-512 (F, BW, VL, DQ): 16 floats a vector */
#define TK_VEC_avx512_T __m512
#define TK_VEC_avx512_W 16
#define TK_VEC_avx512_ZERO() _mm512_setzero_ps()
#define TK_VEC_avx512_SET1(f) _mm512_set1_ps(f)
#define TK_VEC_avx512_ADD(a, b) _mm512_add_ps(a, b)
#define TK_VEC_avx512_MUL(a, b) _mm512_mul_ps(a, b)
#define TK_VEC_avx512_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define TK_VEC_avx512_DIV(a, b) _mm512_div_ps(a, b)
#define TK_VEC_avx512_LOADU(p) _mm512_loadu_ps(p)
#define TK_VEC_avx512_STOREU(p, v) _mm512_storeu_ps(p, v)
#define TK_VEC_avx512_STREAM(p, v) _mm512_stream_ps(p, v)
#define TK_VEC_avx512_MASKLOAD(p, rem) _mm512_maskz_loadu_ps((__mmask16)((1u << (rem)) - 1u), p)
#define TK_VEC_avx512_MASKSTORE(p, rem, v) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (rem)) - 1u), v)
#define TK_VEC_avx512_CVT_F16(x) _mm512_cvtph_ps(x)
#define TK_VEC_avx512_CVT_BF16(x) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(x), 16))
#define TK_VEC_avx512_CVT_Q8(x) _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(x)))
#define TK_VEC_avx512_LD_F16(p) TK_VEC_avx512_CVT_F16(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define TK_VEC_avx512_LD_BF16(p) TK_VEC_avx512_CVT_BF16(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define TK_VEC_avx512_LD_Q8(p) \
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))))
#define TK_VEC_avx512_PART(p, n) _mm256_maskz_loadu_epi8((__mmask32)((1ull << (n)) - 1u), p)

/* Non-temporal 4-byte store (baseline SSE2): the head and tail of a streamed row. */
TK_ALWAYS_INLINE void tk_stream_f32(float *d, const float *s) {
    int v;
    memcpy(&v, s, 4);
    _mm_stream_si32((int *)d, v);
}
#define TK_SFENCE() _mm_sfence()
#else
#define TK_SFENCE() ((void)0)
#endif

#endif
