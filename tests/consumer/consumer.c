/* consumer.c - an out-of-tree program built against an installed tokemb (pkg-config or find_package). */
#include <stdio.h>
#include <string.h>
#include <tokemb.h>

int main(void) {
    if (tokemb_version_number() != TOKEMB_VERSION_NUMBER) {
        fprintf(stderr, "header %d != library %u\n", TOKEMB_VERSION_NUMBER, tokemb_version_number());
        return 1;
    }
    tokemb_table *t = NULL;
    if (tokemb_table_create(6, 3, TOKEMB_F32, &t) || tokemb_table_init_normal(t, 123, 0.0, 1.0)) return 1;
    const int64_t ids[2] = {0, 5};
    float out[6];
    if (tokemb_lookup(t, ids, 2, out)) return 1;
    printf("tokemb %s: row 0 = [%.4f, %.4f, %.4f]\n", tokemb_version_string(), out[0], out[1], out[2]);
    int ok = out[0] > 0.3373f && out[0] < 0.3375f && out[5] < -1.4095f && out[5] > -1.4097f;
    tokemb_table_free(t);
    return ok ? 0 : 1;
}
