/* demo_posenc.c - the positional section of tokemb-demo: attention is order-blind, so positions are
 * encoded. Shows the seed article's positional_encoding(10, 512) (sinusoidal, interleaved sin/cos) and
 * the RoPE relative-position property <R(m)q, R(n)k> = f(n - m), numerically. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <tokemb.h>

#include "demo_sections.h"

static int pe_check(int32_t st, const char *what) {
    if (st != TOKEMB_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, tokemb_status_string(st), tokemb_last_error());
        exit(1);
    }
    return 0;
}

void demo_positional_section(void) {
    printf("\n== Positional encodings ==\n");
    enum { N = 10, D = 512 };
    tokemb_posenc *pe = NULL;
    pe_check(tokemb_posenc_create_sinusoidal(D, 10000.0, TOKEMB_INTERLEAVED, &pe), "create_sinusoidal");
    int64_t pos[N];
    for (int i = 0; i < N; i++) pos[i] = i;
    float *table = (float *)malloc(sizeof(float) * N * D);
    if (!table) exit(1);
    pe_check(tokemb_posenc_encode(pe, pos, N, table), "posenc_encode");
    printf("positional_encoding(10, 512).shape = (1, %d, %d)\n", N, D);
    printf("PE[p][0:6] (sin, cos, sin, cos, ...):\n");
    for (int p = 0; p < 4; p++) {
        printf("  p=%d: [", p);
        for (int k = 0; k < 6; k++) printf("%s%.4f", k ? ", " : "", (double)table[p * D + k]);
        printf(", ...]\n");
    }
    printf("  p=9: [%.4f, %.4f, ..., %.4f, %.4f]\n", (double)table[9 * D], (double)table[9 * D + 1],
           (double)table[9 * D + D - 2], (double)table[9 * D + D - 1]);
    free(table);
    tokemb_posenc_free(pe);

    enum { HD = 64 };
    tokemb_posenc *rope = NULL;
    pe_check(tokemb_posenc_create_rope(HD, HD, 10000.0, TOKEMB_NEOX, &rope), "create_rope");
    float q[HD], k[HD];
    for (int i = 0; i < HD; i++) {
        q[i] = (float)sin(0.37 * i + 0.1);
        k[i] = (float)cos(0.23 * i - 0.4);
    }
    printf("RoPE (head_dim %d): <R(m)q, R(n)k> depends only on n - m:\n", HD);
    const int64_t ms[4] = {0, 10, 500, 20000};
    const int offs[2] = {2, 9};
    for (int o = 0; o < 2; o++)
        for (int c = 0; c < 4; c++) {
            float qq[HD], kk[HD];
            for (int i = 0; i < HD; i++) qq[i] = q[i], kk[i] = k[i];
            int64_t m = ms[c], n = ms[c] + offs[o];
            pe_check(tokemb_rope_apply(rope, qq, 1, 1, &m), "rope_apply");
            pe_check(tokemb_rope_apply(rope, kk, 1, 1, &n), "rope_apply");
            double dot = 0;
            for (int i = 0; i < HD; i++) dot += (double)qq[i] * kk[i];
            printf("  m=%-6lld n=%-6lld n-m=%d  dot=%.6f\n", (long long)m, (long long)n, offs[o], dot);
        }
    tokemb_posenc_free(rope);
}
