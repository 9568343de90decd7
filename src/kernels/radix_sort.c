/* radix_sort.c - stable LSD radix sort of (id, position) pairs and segment discovery: the first half of
 * the deterministic scatter-add (see docs/training.md). Cost O(n * passes) with passes = ceil(bits of
 * (rows-1) / 11), e.g. 2 passes for a 128k vocabulary; never O(rows). */
#include "kernels/train_kernels.h"
#include "kernels/simd.h"

#include <string.h>

#define TK_RADIX_MAX_BITS 11u

static unsigned tk_bits_of(uint64_t x) {
    unsigned b = 0;
    while (x) {
        b++;
        x >>= 1;
    }
    return b;
}

size_t tk_sort_ids(const void *ids, int id_width, size_t n, int64_t rows, int64_t skip_id, uint64_t *key, size_t *pos,
                   uint64_t *tmp_key, size_t *tmp_pos) {
    /* filter (drop skip_id), checking on the way whether the kept ids are already sorted */
    size_t m = 0;
    int sorted = 1;
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t id = tk_id_at(ids, id_width, i);
        if (id == skip_id) continue;
        uint64_t k = (uint64_t)id;
        if (k < prev) sorted = 0;
        prev = k;
        key[m] = k;
        pos[m] = i;
        m++;
    }
    if (sorted || m < 2) return m;
    if (m <= 32) { /* stable insertion sort */
        for (size_t i = 1; i < m; i++) {
            uint64_t k = key[i];
            size_t p = pos[i], j = i;
            while (j > 0 && key[j - 1] > k) {
                key[j] = key[j - 1];
                pos[j] = pos[j - 1];
                j--;
            }
            key[j] = k;
            pos[j] = p;
        }
        return m;
    }
    unsigned bits = tk_bits_of((uint64_t)(rows - 1));
    if (bits == 0) return m;
    unsigned passes = (bits + TK_RADIX_MAX_BITS - 1) / TK_RADIX_MAX_BITS;
    unsigned dbits = (bits + passes - 1) / passes;
    size_t buckets = (size_t)1 << dbits;
    size_t count[(size_t)1 << TK_RADIX_MAX_BITS];
    uint64_t *sk = key, *dk = tmp_key;
    size_t *sp = pos, *dp = tmp_pos;
    for (unsigned p = 0; p < passes; p++) {
        unsigned shift = p * dbits;
        uint64_t mask = (uint64_t)buckets - 1;
        memset(count, 0, buckets * sizeof(size_t));
        for (size_t i = 0; i < m; i++) count[(sk[i] >> shift) & mask]++;
        if (count[(sk[0] >> shift) & mask] == m) continue; /* one digit value: the pass is the identity */
        size_t sum = 0;
        for (size_t b = 0; b < buckets; b++) {
            size_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < m; i++) {
            size_t d = count[(sk[i] >> shift) & mask]++;
            dk[d] = sk[i];
            dp[d] = sp[i];
        }
        uint64_t *tk = sk;
        sk = dk;
        dk = tk;
        size_t *tp = sp;
        sp = dp;
        dp = tp;
    }
    if (sk != key) {
        memcpy(key, sk, m * sizeof(uint64_t));
        memcpy(pos, sp, m * sizeof(size_t));
    }
    return m;
}

size_t tk_segments(const uint64_t *key, size_t m, size_t *seg) {
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (i == 0 || key[i] != key[i - 1]) seg[u++] = i;
    seg[u] = m;
    return u;
}
