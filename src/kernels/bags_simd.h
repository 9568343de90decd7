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
#define TK_BAG_BLOCK(NV)                                                                                             \
    for (; c + (NV)*TK_VW <= dim; c += (NV)*TK_VW) {                                                                 \
        TK_V a[NV];                                                                                                  \
        const size_t pfd = tk_bag_pf_ahead((NV)*TK_VW, dt);                                                          \
        for (int k = 0; k < (NV); k++) a[k] = TK_VZERO();                                                            \
        for (size_t j = s; j < e; j++) {                                                                             \
            if (j + pfd < e_all) tk_bag_pf(base + (size_t)tk_id_at(ids, idw, j + pfd) * rb, c, (NV)*TK_VW, dt, dim); \
            int64_t id = tk_id_at(ids, idw, j);                                                                      \
            if (id == pad) continue;                                                                                 \
            const uint8_t *r = base + (size_t)id * rb;                                                               \
            if (dt == TOKEMB_Q8_ROW) { /* torch's embedding_bag_byte: fma(w*scale, q, acc + w*bias) */               \
                tk_bag_q8_sb(r, dim, psw, j, &qsf, &qbf);                                                            \
                const TK_V qs = TK_VSET1(qsf), qb = TK_VSET1(qbf);                                                   \
                for (int k = 0; k < (NV); k++)                                                                       \
                    a[k] = TK_VFMA(qs, TK_VLD_Q8(r + c + (size_t)k * TK_VW), TK_VADD(a[k], qb));                     \
                continue;                                                                                            \
            }                                                                                                        \
            if (kind) w = TK_VSET1(psw[j]);                                                                          \
            for (int k = 0; k < (NV); k++)                                                                           \
                a[k] = TK_VFN(tk_bag_acc)(a[k], TK_VFN(tk_bag_ld)(r, c + (size_t)k * TK_VW, dt), w, kind);           \
        }                                                                                                            \
        for (int k = 0; k < (NV); k++) TK_VSTOREU(o + c + (size_t)k * TK_VW, mean ? TK_VDIV(a[k], dv) : a[k]);       \
    }

TK_VTARGET TK_ALWAYS_INLINE void TK_VFN(tk_bag_sum)(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids,
                                                    int idw, size_t s, size_t e, size_t e_all, int mean,
                                                    const float *psw, int kind, int64_t pad, float *o) {
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

TK_VTARGET TK_ALWAYS_INLINE void TK_VFN(tk_bags_dt)(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids,
                                                    int idw, const int64_t *off, size_t b0, size_t b1, int mean,
                                                    const float *psw, int fused, int64_t pad, float *out) {
    const size_t e_all = (size_t)off[b1];
    for (size_t b = b0; b < b1; b++) {
        const size_t s = (size_t)off[b], e = (size_t)off[b + 1];
        float *o = out + b * dim;
        if (!psw) TK_VFN(tk_bag_sum)(base, rb, dt, dim, ids, idw, s, e, e_all, mean, NULL, 0, pad, o);
        else if (fused) TK_VFN(tk_bag_sum)(base, rb, dt, dim, ids, idw, s, e, e_all, mean, psw, 1, pad, o);
        else TK_VFN(tk_bag_sum)(base, rb, dt, dim, ids, idw, s, e, e_all, mean, psw, 2, pad, o);
    }
}

TK_VTARGET static void TK_VFN(tk_bags)(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids, int idw,
                                       const int64_t *off, size_t b0, size_t b1, int mean, const float *psw, int fused,
                                       int64_t pad, float *out) {
    switch (dt) {
    case TOKEMB_F16:
        TK_VFN(tk_bags_dt)(base, rb, TOKEMB_F16, dim, ids, idw, off, b0, b1, mean, psw, fused, pad, out);
        break;
    case TOKEMB_BF16:
        TK_VFN(tk_bags_dt)(base, rb, TOKEMB_BF16, dim, ids, idw, off, b0, b1, mean, psw, fused, pad, out);
        break;
    case TOKEMB_Q8_ROW:
        TK_VFN(tk_bags_dt)(base, rb, TOKEMB_Q8_ROW, dim, ids, idw, off, b0, b1, mean, psw, fused, pad, out);
        break;
    default: TK_VFN(tk_bags_dt)(base, rb, TOKEMB_F32, dim, ids, idw, off, b0, b1, mean, psw, fused, pad, out);
    }
}
