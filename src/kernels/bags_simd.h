/* bags_simd.h - the register-accumulating bag SUM / MEAN kernel, written once against the vector
 * vocabulary of kernels/simd.h and instantiated per ISA: bags.c includes it once per TK_VISA (avx2, avx512).
 * SUM / MEAN of one bag with the accumulators in registers: columns in blocks of 8, 4, 2 and 1 vectors,
 * then a tail; the bag's rows are walked once per block and the output is written once. Compact rows are
 * decoded in registers, so only their bytes come from memory; each block keeps only a few lines per row
 * in flight (docs/performance.md, "Tuning record").
 * Per column it performs exactly tk_bag_one's operations in the same order (+0.0 start, then per row left
 * to right acc + x, fmaf(w, x, acc) or acc + w*x, for Q8_ROW fmaf(w*scale, q, acc + w*bias); then / count),
 * so every instantiation is bitwise identical to the portable path. `kind`: 0 plain, 1 fused weights,
 * 2 multiply-then-add weights; `dt` and `kind` are constants after inlining. For the block being summed,
 * the rows of the ids tk_bag_pf_ahead() positions ahead (within [s, e_all), so across the bag's end) are
 * prefetched into L2 (TK_PF_LOC). */

TK_VTARGET TK_ALWAYS_INLINE TK_V TK_VFN(tk_bag_acc)(TK_V acc, TK_V x, TK_V w, int kind) {
    if (kind == 0) return TK_VADD(acc, x);
    if (kind == 1) return TK_VFMA(w, x, acc);
    return TK_VADD(acc, TK_VMUL(w, x));
}

/* TK_VW elements of an F32 / F16 / BF16 row from column c as float (F16 needs F16C: the dispatcher checks). */
TK_VTARGET TK_ALWAYS_INLINE TK_V TK_VFN(tk_bag_ld)(const uint8_t *r, size_t c, int dt) {
    switch (dt) {
    case TOKEMB_F16: return TK_VLD_F16(r + 2 * c);
    case TOKEMB_BF16: return TK_VLD_BF16(r + 2 * c);
    default: return TK_VLOADU((const float *)(const void *)r + c);
    }
}

/* The last rem < TK_VW elements from column c, zeros beyond (a full vector load could run past the table's
 * last row): a masked / partial load of just their bytes, then the stored value as float (Q8_ROW: the
 * code itself). */
TK_VTARGET TK_ALWAYS_INLINE TK_V TK_VFN(tk_bag_ld_tail)(const uint8_t *r, size_t c, size_t rem, int dt) {
    switch (dt) {
    case TOKEMB_F16: return TK_VCVT_F16(TK_VPART(r + 2 * c, 2 * rem));
    case TOKEMB_BF16: return TK_VCVT_BF16(TK_VPART(r + 2 * c, 2 * rem));
    case TOKEMB_Q8_ROW: return TK_VCVT_Q8(TK_VPART(r + c, rem));
    default: return TK_VMASKLOAD((const float *)(const void *)r + c, rem);
    }
}

/* One column block of NV vectors: NV accumulators summed over the bag's rows. */
#define TK_BAG_BLOCK(NV)                                                                                       \
    for (; c + (NV)*TK_VW <= dim; c += (NV)*TK_VW) {                                                           \
        TK_V a[NV];                                                                                            \
        const size_t pfd = tk_bag_pf_ahead((NV)*TK_VW, dt);                                                    \
        for (int k = 0; k < (NV); k++) a[k] = TK_VZERO();                                                      \
        for (size_t j = s; j < e; j++) {                                                                       \
            if (j + pfd < e_all)                                                                               \
                tk_bag_pf(base + (size_t)tk_id_at(ids, idw, j + pfd) * rb, c, (NV)*TK_VW, dt, dim, near);      \
            int64_t id = tk_id_at(ids, idw, j);                                                                \
            if (id == pad) continue;                                                                           \
            const uint8_t *r = base + (size_t)id * rb;                                                         \
            if (dt == TOKEMB_Q8_ROW) { /* torch's embedding_bag_byte: fma(w*scale, q, acc + w*bias) */         \
                tk_bag_q8_sb(r, dim, psw, j, &qsf, &qbf);                                                      \
                const TK_V qs = TK_VSET1(qsf), qb = TK_VSET1(qbf);                                             \
                for (int k = 0; k < (NV); k++)                                                                 \
                    a[k] = TK_VFMA(qs, TK_VLD_Q8(r + c + (size_t)k * TK_VW), TK_VADD(a[k], qb));               \
                continue;                                                                                      \
            }                                                                                                  \
            if (kind) w = TK_VSET1(psw[j]);                                                                    \
            for (int k = 0; k < (NV); k++)                                                                     \
                a[k] = TK_VFN(tk_bag_acc)(a[k], TK_VFN(tk_bag_ld)(r, c + (size_t)k * TK_VW, dt), w, kind);     \
        }                                                                                                      \
        for (int k = 0; k < (NV); k++) TK_VSTOREU(o + c + (size_t)k * TK_VW, mean ? TK_VDIV(a[k], dv) : a[k]); \
    }

TK_VTARGET TK_ALWAYS_INLINE void TK_VFN(tk_bag_sum)(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids,
                                                    int idw, size_t s, size_t e, size_t e_all, int mean,
                                                    const float *psw, int kind, int64_t pad, int near, float *o) {
    size_t cnt = 0; /* the divisor of MEAN: SUM skips this pass over the ids */
    if (mean)
        for (size_t j = s; j < e; j++) cnt += tk_id_at(ids, idw, j) != pad;
    const TK_V dv = TK_VSET1((float)(cnt > 0 ? cnt : 1));
    TK_V w = TK_VZERO();
    float qsf = 0.0f, qbf = 0.0f;
    size_t c = 0;
    TK_BAG_BLOCK(8)
    TK_BAG_BLOCK(4)
    TK_BAG_BLOCK(2)
    TK_BAG_BLOCK(1)
    if (c < dim) {
        const size_t rem = dim - c;
        TK_V a0 = TK_VZERO();
        for (size_t j = s; j < e; j++) {
            int64_t id = tk_id_at(ids, idw, j);
            if (id == pad) continue;
            const uint8_t *r = base + (size_t)id * rb;
            const TK_V x = TK_VFN(tk_bag_ld_tail)(r, c, rem, dt);
            if (dt == TOKEMB_Q8_ROW) {
                tk_bag_q8_sb(r, dim, psw, j, &qsf, &qbf);
                a0 = TK_VFMA(TK_VSET1(qsf), x, TK_VADD(a0, TK_VSET1(qbf)));
                continue;
            }
            if (kind) w = TK_VSET1(psw[j]);
            a0 = TK_VFN(tk_bag_acc)(a0, x, w, kind);
        }
        if (mean) a0 = TK_VDIV(a0, dv);
        TK_VMASKSTORE(o + c, rem, a0);
    }
}
#undef TK_BAG_BLOCK

/* ---- rows of 4, 8 or 16 elements: TK_BAG_G bags at once ---------------------------------------------
 * A bag of short rows is one chain of dependent adds (an add and an fma per row for Q8_ROW), so summing one
 * bag at a time waits on that chain's latency (docs/performance.md, "Bags over small rows"). Here TK_BAG_G
 * consecutive bags are summed together, each in its own accumulators (NV vectors of family F: x4, avx2 or
 * avx512, holding the whole row), row t of every bag before row t + 1 of any: each bag still sees exactly
 * tk_bag_one's operations in its order, only the chains of different bags overlap. Rows past the shortest bag
 * of the group follow bag by bag. The row `lead` positions ahead of each row is prefetched, lead = the group's
 * span of ids (at least 16): with bags of equal length that is the same row of the next group's bag. One
 * function per (family, dtype, weights, id type), so the row length, dtype, weighting and id width are
 * constants and the registers are allocated per loop. Taken for F32, F16 and Q8_ROW without weights or with
 * fused weights; BF16 and multiply-then-add weights (padding set) keep the column-block path. */
#define TK_BAG_G 4
#define TK_SOP(F, op) TK_CAT(TK_CAT(TK_VEC_, F), op)
#define TK_UNROLL _Pragma("GCC unroll 8")
/* Elements c.. of a row as stored (F32, F16 widened; Q8_ROW: the codes), one vector of family F. */
#define TK_SLD(F, r, c, dt)                                      \
    ((dt) == TOKEMB_F16      ? TK_SOP(F, _LD_F16)((r) + 2 * (c)) \
     : (dt) == TOKEMB_Q8_ROW ? TK_SOP(F, _LD_Q8)((r) + (c))      \
                             : TK_SOP(F, _LOADU)((const float *)(const void *)(r) + (c)))
/* Prefetch of a row: its first line, and for F16 / Q8_ROW rows of more than 16 bytes (which need not start on
 * a line) the line of its last byte (Q8_ROW: of its bias); rows of up to 16 bytes rarely cross a line, and
 * their second prefetch cost more than it saved (F16 / Q8_ROW D = 4: 0.88 / 0.92 -> 1.05 / 1.03x FBGEMM).
 * Rows under 64 bytes go into L1 (the ~80 rows in flight are a few KiB), 64-byte F32 rows into L2
 * (TK_PF_LOC) as the other bag blocks: measured, docs/performance.md ("Tuning record"). */
#define TK_SPF(r)                                                                                                 \
    do {                                                                                                          \
        const int near_ = !(dt == TOKEMB_F32 && dim == 16);                                                       \
        const size_t last_ = dt == TOKEMB_Q8_ROW ? dim + 7 : 2 * dim - 1; /* F16 / Q8_ROW: the row's last byte */ \
        TK_PREFETCH(r, near_);                                                                                    \
        if (dt != TOKEMB_F32 && last_ >= 16) TK_PREFETCH((r) + last_, near_);                                     \
    } while (0)
/* Row ID (position j) added into the NV accumulators A (tk_bag_one's step) unless it is the padding index
 * (never for pad < 0: the ids are valid). */
#define TK_SSTEP(F, NV, A, ID, j)                                                                                     \
    do {                                                                                                              \
        const int64_t id_ = (ID);                                                                                     \
        if (id_ != pad) {                                                                                             \
            const uint8_t *r_ = base + (size_t)id_ * rb;                                                              \
            if (dt == TOKEMB_Q8_ROW) {                                                                                \
                float qs_, qb_;                                                                                       \
                tk_bag_q8_sb(r_, dim, kind ? psw : NULL, j, &qs_, &qb_);                                              \
                const TK_SOP(F, _T) vs_ = TK_SOP(F, _SET1)(qs_), vb_ = TK_SOP(F, _SET1)(qb_);                         \
                for (int k_ = 0; k_ < (NV); k_++)                                                                     \
                    A[k_] = TK_SOP(F, _FMA)(vs_, TK_SLD(F, r_, k_ * TK_SOP(F, _W), dt), TK_SOP(F, _ADD)(A[k_], vb_)); \
            } else {                                                                                                  \
                for (int k_ = 0; k_ < (NV); k_++) {                                                                   \
                    const TK_SOP(F, _T) x_ = TK_SLD(F, r_, k_ * TK_SOP(F, _W), dt);                                   \
                    A[k_] = kind ? TK_SOP(F, _FMA)(TK_SOP(F, _SET1)(psw[j]), x_, A[k_]) : TK_SOP(F, _ADD)(A[k_], x_); \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
    } while (0)
/* The bags [b, b + G) (G = TK_BAG_G or 1) summed and written out (MEAN: / count of non-padding rows). */
#define TK_SGROUP(F, NV, G, IT)                                                                                \
    do {                                                                                                       \
        TK_SOP(F, _T) a[G][NV];                                                                                \
        const IT *ip[G];                                                                                       \
        size_t s[G], len[G], m = SIZE_MAX;                                                                     \
        TK_UNROLL for (int g = 0; g < (G); g++) {                                                              \
            s[g] = (size_t)off[b + (size_t)g], len[g] = (size_t)off[b + (size_t)g + 1] - s[g];                 \
            ip[g] = idp + s[g];                                                                                \
            if (len[g] < m) m = len[g];                                                                        \
            TK_UNROLL for (int k = 0; k < (NV); k++) a[g][k] = TK_SOP(F, _ZERO)();                             \
        }                                                                                                      \
        const size_t span = (size_t)off[b + (G)] - s[0], lead = span > 16 ? span : 16;                         \
        const size_t lim = e_all > s[(G)-1] + lead ? e_all - s[(G)-1] - lead : 0; /* prefetch while t < lim */ \
        for (size_t t = 0; t < m; t++) {                                                                       \
            if (t < lim) TK_UNROLL for (int g = 0; g < (G); g++) TK_SPF(base + (size_t)ip[g][t + lead] * rb);  \
            TK_UNROLL for (int g = 0; g < (G); g++) TK_SSTEP(F, NV, a[g], ip[g][t], s[g] + t);                 \
        }                                                                                                      \
        TK_UNROLL for (int g = 0; g < (G); g++) for (size_t t = m; t < len[g]; t++) {                          \
            if (t < lim) TK_SPF(base + (size_t)ip[g][t + lead] * rb);                                          \
            TK_SSTEP(F, NV, a[g], ip[g][t], s[g] + t);                                                         \
        }                                                                                                      \
        TK_UNROLL for (int g = 0; g < (G); g++) {                                                              \
            float *o_ = out + (b + (size_t)g) * dim;                                                           \
            size_t c_ = len[g];                                                                                \
            if (mean && pad >= 0)                                                                              \
                for (size_t t = 0; t < len[g]; t++) c_ -= ip[g][t] == pad;                                     \
            const TK_SOP(F, _T) dv_ = TK_SOP(F, _SET1)((float)(c_ > 0 ? c_ : 1));                              \
            TK_UNROLL for (int k = 0; k < (NV); k++)                                                           \
                TK_SOP(F, _STOREU)(o_ + k * TK_SOP(F, _W), mean ? TK_SOP(F, _DIV)(a[g][k], dv_) : a[g][k]);    \
        }                                                                                                      \
    } while (0)
/* One variant: rows of NV vectors of family F, dtype TOKEMB_<DT>, weights KIND (0 none, 1 fused), ids IT. */
#define TK_SFN(F, NV, DT, KIND, IT)                                                                          \
    TK_VTARGET __attribute__((noinline)) static void TK_VFN(tk_bsm_##F##NV##DT##KIND##IT)(                   \
        const uint8_t *base, size_t rb, const void *ids, const int64_t *off, size_t b0, size_t b1, int mean, \
        const float *psw, int64_t pad, float *out) {                                                         \
        const int dt = TOKEMB_##DT, kind = KIND;                                                             \
        const size_t dim = (NV)*TK_SOP(F, _W), e_all = (size_t)off[b1];                                      \
        const IT *idp = (const IT *)ids;                                                                     \
        size_t b = b0;                                                                                       \
        for (; b + TK_BAG_G <= b1; b += TK_BAG_G) TK_SGROUP(F, NV, TK_BAG_G, IT);                            \
        for (; b < b1; b++) TK_SGROUP(F, NV, 1, IT);                                                         \
        (void)kind;                                                                                          \
    }
#define TK_SFN_ALL(F, NV)             \
    TK_SFN(F, NV, F32, 0, int32_t)    \
    TK_SFN(F, NV, F32, 0, int64_t)    \
    TK_SFN(F, NV, F32, 1, int32_t)    \
    TK_SFN(F, NV, F32, 1, int64_t)    \
    TK_SFN(F, NV, F16, 0, int32_t)    \
    TK_SFN(F, NV, F16, 0, int64_t)    \
    TK_SFN(F, NV, F16, 1, int32_t)    \
    TK_SFN(F, NV, F16, 1, int64_t)    \
    TK_SFN(F, NV, Q8_ROW, 0, int32_t) \
    TK_SFN(F, NV, Q8_ROW, 0, int64_t) \
    TK_SFN(F, NV, Q8_ROW, 1, int32_t) \
    TK_SFN(F, NV, Q8_ROW, 1, int64_t)
/* The variant of family F for dt (F32, F16 or Q8_ROW), weights and id width. */
#define TK_SPICK(F, NV)                                                                                                \
    (dt == TOKEMB_F32                                                                                                  \
         ? (psw ? (idw == 8 ? TK_VFN(tk_bsm_##F##NV##F32##1##int64_t) : TK_VFN(tk_bsm_##F##NV##F32##1##int32_t))       \
                : (idw == 8 ? TK_VFN(tk_bsm_##F##NV##F32##0##int64_t) : TK_VFN(tk_bsm_##F##NV##F32##0##int32_t)))      \
     : dt == TOKEMB_F16                                                                                                \
         ? (psw ? (idw == 8 ? TK_VFN(tk_bsm_##F##NV##F16##1##int64_t) : TK_VFN(tk_bsm_##F##NV##F16##1##int32_t))       \
                : (idw == 8 ? TK_VFN(tk_bsm_##F##NV##F16##0##int64_t) : TK_VFN(tk_bsm_##F##NV##F16##0##int32_t)))      \
         : (psw ? (idw == 8 ? TK_VFN(tk_bsm_##F##NV##Q8_ROW##1##int64_t) : TK_VFN(tk_bsm_##F##NV##Q8_ROW##1##int32_t)) \
                : (idw == 8 ? TK_VFN(tk_bsm_##F##NV##Q8_ROW##0##int64_t)                                               \
                            : TK_VFN(tk_bsm_##F##NV##Q8_ROW##0##int32_t))))

/* Rows this ISA's small-row path takes: 4, 8 and 16 elements for AVX2 (one xmm, one ymm, two ymm), 16 for
 * AVX-512 (one zmm; its 4- and 8-element rows are the AVX2 ones, bags.c dispatches them there). */
#if TK_VW == 16
TK_SFN_ALL(avx512, 1)
#define TK_BAG_SMALL_DIMS(dim) ((dim) == 16)
#define TK_BAG_SMALL_PICK(dim) TK_SPICK(avx512, 1)
#else
TK_SFN_ALL(x4, 1)
TK_SFN_ALL(avx2, 1)
TK_SFN_ALL(avx2, 2)
#define TK_BAG_SMALL_DIMS(dim) ((dim) == 4 || (dim) == 8 || (dim) == 16)
#define TK_BAG_SMALL_PICK(dim) ((dim) == 4 ? TK_SPICK(x4, 1) : (dim) == 8 ? TK_SPICK(avx2, 1) : TK_SPICK(avx2, 2))
#endif
#undef TK_SFN_ALL
#undef TK_SFN
#undef TK_SGROUP
#undef TK_SSTEP
#undef TK_SPF
#undef TK_SLD
#undef TK_SOP
#undef TK_UNROLL

TK_VTARGET TK_ALWAYS_INLINE void TK_VFN(tk_bags_dt)(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids,
                                                    int idw, const int64_t *off, size_t b0, size_t b1, int mean,
                                                    const float *psw, int fused, int64_t pad, int near, float *out) {
    if (dt != TOKEMB_BF16 && (!psw || fused) && TK_BAG_SMALL_DIMS(dim)) {
        TK_BAG_SMALL_PICK(dim)(base, rb, ids, off, b0, b1, mean, psw, pad, out);
        return;
    }
    const size_t e_all = (size_t)off[b1];
    for (size_t b = b0; b < b1; b++) {
        const size_t s = (size_t)off[b], e = (size_t)off[b + 1];
        float *o = out + b * dim;
        /* unweighted bags, the common case: id width and prefetch level as constants (no branch per row on
         * either; float32 D = 64: 50 -> 34 instructions per row, 2-3 % faster; Q8_ROW D = 32-256 5-20 %
         * faster in paired runs) */
#define TK_BAG_K0(IDW, NEAR) TK_VFN(tk_bag_sum)(base, rb, dt, dim, ids, IDW, s, e, e_all, mean, NULL, 0, pad, NEAR, o)
        if (!psw && dt != TOKEMB_BF16) {
            if (idw == 8) near ? TK_BAG_K0(8, 1) : TK_BAG_K0(8, 0);
            else near ? TK_BAG_K0(4, 1) : TK_BAG_K0(4, 0);
        } else if (!psw) TK_VFN(tk_bag_sum)(base, rb, dt, dim, ids, idw, s, e, e_all, mean, NULL, 0, pad, near, o);
#undef TK_BAG_K0
        else if (fused) TK_VFN(tk_bag_sum)(base, rb, dt, dim, ids, idw, s, e, e_all, mean, psw, 1, pad, near, o);
        else TK_VFN(tk_bag_sum)(base, rb, dt, dim, ids, idw, s, e, e_all, mean, psw, 2, pad, near, o);
    }
}

TK_VTARGET static void TK_VFN(tk_bags)(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids, int idw,
                                       const int64_t *off, size_t b0, size_t b1, int mean, const float *psw, int fused,
                                       int64_t pad, int near, float *out) {
    switch (dt) {
    case TOKEMB_F16:
        TK_VFN(tk_bags_dt)(base, rb, TOKEMB_F16, dim, ids, idw, off, b0, b1, mean, psw, fused, pad, near, out);
        break;
    case TOKEMB_BF16:
        TK_VFN(tk_bags_dt)(base, rb, TOKEMB_BF16, dim, ids, idw, off, b0, b1, mean, psw, fused, pad, near, out);
        break;
    case TOKEMB_Q8_ROW:
        TK_VFN(tk_bags_dt)(base, rb, TOKEMB_Q8_ROW, dim, ids, idw, off, b0, b1, mean, psw, fused, pad, near, out);
        break;
    default: TK_VFN(tk_bags_dt)(base, rb, TOKEMB_F32, dim, ids, idw, off, b0, b1, mean, psw, fused, pad, near, out);
    }
}
#undef TK_BAG_SMALL_DIMS
#undef TK_BAG_SMALL_PICK
#undef TK_SPICK
#undef TK_BAG_G
