/* optim_rows.c - fused per-row optimizer updates over unique rows (one row per unit of work, so any
 * partition gives the same bits). Formulas and rounding follow docs/training.md. */
#include "kernels/train_kernels.h"
#include "kernels/simd.h"

#include <math.h>

TK_ALWAYS_INLINE void tk_optim_body(const tk_optim_args *a, size_t u0, size_t u1) {
    const size_t dim = a->dim;
    for (size_t u = u0; u < u1; u++) {
        size_t r = a->rows ? (size_t)a->rows[u] : (size_t)a->rows_i64[u];
        float *w = a->w + r * a->w_stride;
        const float *g = a->g + u * a->g_stride;
        switch (a->kind) {
        case TK_OPT_SGD:
            if (a->wd_f != 0.0f)
                for (size_t c = 0; c < dim; c++) w[c] = fmaf(-a->lr_f, fmaf(a->wd_f, w[c], g[c]), w[c]);
            else
                for (size_t c = 0; c < dim; c++) w[c] = fmaf(-a->lr_f, g[c], w[c]);
            break;
        case TK_OPT_ROWWISE_ADAGRAD: {
            double ss = 0.0;
            for (size_t c = 0; c < dim; c++) {
                float gc = a->wd_f != 0.0f ? fmaf(a->wd_f, w[c], g[c]) : g[c];
                ss += (double)gc * (double)gc;
            }
            float h = a->s1[r] + (float)(ss / (double)dim);
            a->s1[r] = h;
            float step = a->lr_f / (sqrtf(h) + a->eps_f);
            for (size_t c = 0; c < dim; c++) {
                float gc = a->wd_f != 0.0f ? fmaf(a->wd_f, w[c], g[c]) : g[c];
                w[c] = fmaf(-step, gc, w[c]);
            }
            break;
        }
        case TK_OPT_ADAGRAD: {
            float *s = a->s1 + r * dim;
            for (size_t c = 0; c < dim; c++) {
                float sc = s[c] + g[c] * g[c];
                s[c] = sc;
                float stdv = sqrtf(sc) + a->eps_f;
                w[c] = fmaf(a->neg_clr_f, g[c] / stdv, w[c]);
            }
            break;
        }
        default: { /* TK_OPT_SPARSE_ADAM */
            float *m = a->s1 + r * dim, *v = a->s2 + r * dim;
            for (size_t c = 0; c < dim; c++) {
                float m0 = m[c], v0 = v[c];
                float um = (g[c] - m0) * a->one_minus_b1;
                float uv = (g[c] * g[c] - v0) * a->one_minus_b2;
                float m1 = m0 + um, v1 = v0 + uv;
                m[c] = m1;
                v[c] = v1;
                float numer = um + m0;
                float denom = sqrtf(uv + v0) + a->eps_f;
                w[c] = w[c] + a->neg_step_f * (numer / denom);
            }
            break;
        }
        }
    }
}

/* tk_optim_portable and tk_optim_avx2: the same body, compiled per ISA */
TK_PER_ISA_AVX2(TK_DEFINE_ISA_FN, tk_optim, (const tk_optim_args *a, size_t u0, size_t u1), (a, u0, u1))

void tk_optim_rows_f32(const tk_optim_args *a, size_t u0, size_t u1) {
    TK_ISA_PICK_AVX2(tk_optim, tk_cpu_isa())(a, u0, u1);
}
