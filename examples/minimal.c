/* minimal.c - the README's C example: create, initialise like nn.Embedding, look up. */
#include <stdio.h>
#include <tokemb.h>

int main(void) {
    tokemb_table *t = NULL;
    if (tokemb_table_create(6, 3, TOKEMB_F32, &t) != TOKEMB_OK ||
        tokemb_table_init_normal(t, 123, 0.0, 1.0) != TOKEMB_OK) {
        fprintf(stderr, "tokemb: %s\n", tokemb_last_error());
        return 1;
    }
    const int64_t ids[4] = {2, 3, 5, 1};
    float out[4 * 3];
    if (tokemb_lookup(t, ids, 4, out) != TOKEMB_OK) {
        fprintf(stderr, "tokemb: %s\n", tokemb_last_error());
        tokemb_table_free(t);
        return 1;
    }
    for (int i = 0; i < 4; i++)
        printf("id %lld -> [% .4f, % .4f, % .4f]\n", (long long)ids[i], out[3 * i], out[3 * i + 1], out[3 * i + 2]);
    int64_t bad = 6;
    if (tokemb_lookup(t, &bad, 1, out) == TOKEMB_OUT_OF_RANGE) printf("error: %s\n", tokemb_last_error());
    tokemb_table_free(t);
    return 0;
}
