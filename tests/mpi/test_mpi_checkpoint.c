/* mpirun -np 1..4: sharded checkpoints. A table saved by k ranks (every k from 1 to the world's size,
 * on sub-communicators) with any sharding (row, row-modulo, and column once the library has it) loads
 * back bitwise at the world's size and at every sub-size with any sharding, on MPI_COMM_SELF, and through the core's tokemb_checkpoint_load in one
 * process; overwriting keeps one generation; missing or mismatched shards, a corrupt index, another
 * shape and differing paths fail with the same status on every rank and leave every shard untouched. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tk_mpi_test.h"

static char dir[256];

static float value(int64_t g, int64_t c, int salt) {
    return (float)((g * 2654435761LL + c * 40503LL + salt * 7919LL) % 100003) / 977.0f - 50.0f;
}

/* The first global column of t's shard on comm: 0 for the row shardings (full rows), the block of a
 * column sharding otherwise (split as the ROW sharding splits rows). */
static int64_t col0_of(tokemb_mpi_table *t, MPI_Comm comm) {
    int64_t D = tokemb_mpi_table_dim(t);
    if (tokemb_table_dim(tokemb_mpi_table_local(t)) == D) return 0;
    int r, P;
    MPI_Comm_rank(comm, &r);
    MPI_Comm_size(comm, &P);
    return r * (D / P) + (r < D % P ? r : D % P);
}

static void fill_shard(tokemb_mpi_table *t, MPI_Comm comm, int salt) {
    tokemb_table *l = tokemb_mpi_table_local(t);
    int64_t W = tokemb_table_dim(l), c0 = col0_of(t, comm);
    for (int64_t r = 0; r < tokemb_table_rows(l); r++) {
        float row[64];
        int64_t g = tokemb_mpi_table_global_row(t, r);
        for (int64_t c = 0; c < W; c++) row[c] = value(g, c0 + c, salt);
        tokemb_table_write_rows(l, r, 1, row);
    }
}

/* Every local row equals the global table of `salt`, bit for bit. */
static int shard_is(tokemb_mpi_table *t, MPI_Comm comm, int salt) {
    tokemb_table *l = tokemb_mpi_table_local(t);
    int64_t W = tokemb_table_dim(l), c0 = col0_of(t, comm);
    const float *d = tokemb_table_data(l);
    for (int64_t r = 0; r < tokemb_table_rows(l); r++)
        for (int64_t c = 0; c < W; c++) {
            float want = value(tokemb_mpi_table_global_row(t, r), c0 + c, salt);
            if (memcmp(&d[r * W + c], &want, sizeof want) != 0) return 0;
        }
    return 1;
}

static const char *p(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Files in the folder whose name starts with prefix. */
static int count_files(const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' || prefix[0] == '.') n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

/* Shardings 0, 1 and, where the library has it, 2 (TOKEMB_MPI_COLUMN, merged from another branch):
 * probed by creating a table on comm (collective, so every rank of comm gets the same answer). */
static int has_sharding(MPI_Comm comm, int64_t V, int64_t D, int32_t sh) {
    if (sh < 2) return 1;
    tokemb_mpi_table *t = NULL;
    if (tokemb_mpi_table_create(comm, V, D, sh, &t) != TOKEMB_OK) return 0;
    tokemb_mpi_table_free(t);
    return 1;
}

/* Loads path into fresh tables of every sharding on comm; each must equal `salt`. */
static void check_load(MPI_Comm comm, const char *path, int64_t V, int64_t D, int salt, const char *what) {
    for (int32_t sh = 0; sh <= 2; sh++) {
        if (!has_sharding(comm, V, D, sh)) continue;
        tokemb_mpi_table *t = NULL;
        CHECK(tokemb_mpi_table_create(comm, V, D, sh, &t) == TOKEMB_OK, "create: %s", tokemb_mpi_last_error());
        int32_t st = tokemb_mpi_table_load(t, path);
        CHECK(st == TOKEMB_OK, "%s: load (sharding %d): %s", what, (int)sh, tokemb_mpi_last_error());
        CHECK(shard_is(t, comm, salt), "%s: loaded rows differ (sharding %d)", what, (int)sh);
        tokemb_mpi_table_free(t);
    }
}

/* One process, no MPI: the core assembles the whole table. */
static void check_core_load(const char *path, int64_t V, int64_t D, int salt) {
    tokemb_table *f = NULL;
    CHECK(tokemb_checkpoint_load(path, &f) == TOKEMB_OK, "core load: %s", tokemb_last_error());
    if (!f) return;
    CHECK(tokemb_table_rows(f) == V && tokemb_table_dim(f) == D, "core load shape");
    const float *d = tokemb_table_data(f);
    int same = 1;
    for (int64_t g = 0; g < V; g++)
        for (int64_t c = 0; c < D; c++) {
            float want = value(g, c, salt);
            same &= memcmp(&d[g * D + c], &want, sizeof want) == 0;
        }
    CHECK(same, "core load differs from the concatenation");
    tokemb_table_free(f);
}

/* Save with k = 1..size ranks (sub-communicators of the first k ranks), load everywhere. */
static void test_resharding(int64_t V, int64_t D) {
    for (int k = 1; k <= size; k++) {
        for (int32_t sh = 0; sh <= 2; sh++) {
            if (!has_sharding(MPI_COMM_WORLD, V, D, sh)) continue; /* then every sub-size has it too */
            char name[64];
            snprintf(name, sizeof name, "r%d_%d_%lld.index.json", k, (int)sh, (long long)V);
            const char *path = p(name);
            int salt = k * 10 + sh;
            MPI_Comm sub;
            MPI_Comm_split(MPI_COMM_WORLD, rank < k ? 0 : MPI_UNDEFINED, rank, &sub);
            if (sub != MPI_COMM_NULL) {
                tokemb_mpi_table *t = NULL;
                CHECK(tokemb_mpi_table_create(sub, V, D, sh, &t) == TOKEMB_OK, "create");
                fill_shard(t, sub, salt);
                int32_t st = tokemb_mpi_table_save(t, path);
                CHECK(st == TOKEMB_OK, "save at np %d: %s", k, tokemb_mpi_last_error());
                tokemb_mpi_table_free(t);
            }
            MPI_Barrier(MPI_COMM_WORLD);
            /* the same checkpoint loaded at the world's size and at k ranks, both shardings */
            check_load(MPI_COMM_WORLD, path, V, D, salt, "world");
            if (sub != MPI_COMM_NULL) {
                check_load(sub, path, V, D, salt, "saving communicator");
                MPI_Comm_free(&sub);
            }
            if (rank == size - 1) {
                check_load(MPI_COMM_SELF, path, V, D, salt, "MPI_COMM_SELF");
                check_core_load(path, V, D, salt);
            }
            MPI_Barrier(MPI_COMM_WORLD);
        }
    }
}

/* Saving twice: generation 2 replaces generation 1, whose files are removed. */
static void test_overwrite(void) {
    const int64_t V = 23, D = 5;
    tokemb_mpi_table *t = NULL;
    CHECK(tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, TOKEMB_MPI_ROW, &t) == TOKEMB_OK, "create");
    fill_shard(t, MPI_COMM_WORLD, 1);
    CHECK(tokemb_mpi_table_save(t, p("ow.index.json")) == TOKEMB_OK, "save 1: %s", tokemb_mpi_last_error());
    fill_shard(t, MPI_COMM_WORLD, 2);
    CHECK(tokemb_mpi_table_save(t, p("ow.index.json")) == TOKEMB_OK, "save 2: %s", tokemb_mpi_last_error());
    int64_t gen = 0;
    CHECK(tokemb_checkpoint_info(p("ow.index.json"), NULL, NULL, &gen, NULL) == TOKEMB_OK && gen == 2,
          "generation %lld", (long long)gen);
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(count_files("ow-") == size, "%d shard files after two saves, expected %d", count_files("ow-"), size);
    CHECK(count_files(".tokemb-") == 0, "temp files left");
    check_load(MPI_COMM_WORLD, p("ow.index.json"), V, D, 2, "after overwrite");
    /* a save killed before its index: generation 3's files exist, the index still names generation 2,
     * which loads whole; the next save (generation 3 again) replaces the leftovers */
    char stray[128];
    snprintf(stray, sizeof stray, "ow-00001-of-%05d.g3.safetensors", size);
    if (rank == 0) {
        FILE *f = fopen(p(stray), "w");
        fputs("partial", f);
        fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    check_load(MPI_COMM_WORLD, p("ow.index.json"), V, D, 2, "after a killed save");
    fill_shard(t, MPI_COMM_WORLD, 3);
    CHECK(tokemb_mpi_table_save(t, p("ow.index.json")) == TOKEMB_OK, "save 3: %s", tokemb_mpi_last_error());
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(count_files("ow-") == size, "%d shard files after the third save, expected %d", count_files("ow-"), size);
    check_load(MPI_COMM_WORLD, p("ow.index.json"), V, D, 3, "after the third save");
    tokemb_mpi_table_free(t);
}

/* A failing call: the same status on every rank, the message contains `needle`, shard unchanged. */
static void expect_fail(int32_t st, int32_t want, const char *needle, tokemb_mpi_table *t, int salt, const char *what) {
    CHECK(st == want, "%s: status %d, expected %d (%s)", what, (int)st, (int)want, tokemb_mpi_last_error());
    CHECK(strstr(tokemb_mpi_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what, tokemb_mpi_last_error(),
          needle);
    int all = 0, mine = st;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    CHECK(all == mine, "%s: ranks disagree on the status", what);
    if (t) CHECK(shard_is(t, MPI_COMM_WORLD, salt), "%s: the shard changed on a failed load", what);
}

static void test_faults(void) {
    const int64_t V = 29, D = 3;
    tokemb_mpi_table *src = NULL, *t = NULL, *other = NULL;
    CHECK(tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, TOKEMB_MPI_ROW, &src) == TOKEMB_OK, "create");
    CHECK(tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, TOKEMB_MPI_ROW_MODULO, &t) == TOKEMB_OK, "create");
    CHECK(tokemb_mpi_table_create(MPI_COMM_WORLD, V + 1, D, TOKEMB_MPI_ROW, &other) == TOKEMB_OK, "create");
    fill_shard(src, MPI_COMM_WORLD, 5);
    fill_shard(t, MPI_COMM_WORLD, 6);
    const char *path = p("f.index.json");
    CHECK(tokemb_mpi_table_save(src, path) == TOKEMB_OK, "save: %s", tokemb_mpi_last_error());
    MPI_Barrier(MPI_COMM_WORLD);

    /* another shape */
    expect_fail(tokemb_mpi_table_load(other, path), TOKEMB_INVALID_ARGUMENT, "holds a 29 x 3 table, this one is 30 x 3",
                NULL, 0, "shape");
    /* different paths on different ranks (with one rank: a NULL path) */
    expect_fail(tokemb_mpi_table_load(t, size > 1 && rank == size - 1 ? p("g.index.json")
                                         : size > 1                   ? path
                                                                      : NULL),
                TOKEMB_INVALID_ARGUMENT, size > 1 ? "differs from rank 0's" : "path is NULL", t, 6, "paths");
    /* the last rank's shard is missing: every rank fails, even those that do not read it */
    char last[128];
    snprintf(last, sizeof last, "f-%05d-of-%05d.g1.safetensors", size, size);
    char hold[600];
    snprintf(hold, sizeof hold, "%s.hold", p(last));
    if (rank == 0) rename(p(last), hold);
    MPI_Barrier(MPI_COMM_WORLD);
    expect_fail(tokemb_mpi_table_load(t, path), TOKEMB_IO, last, t, 6, "missing shard");
    CHECK(strstr(tokemb_mpi_last_error(), "f.index.json' byte") != NULL, "no index byte in '%s'",
          tokemb_mpi_last_error());
    /* a shard of another shape in its place */
    if (rank == 0) {
        tokemb_table *w = NULL;
        tokemb_table_create(2, D, TOKEMB_F32, &w);
        const tokemb_table *tabs[1] = {w};
        const char *names[1] = {"weight"};
        tokemb_safetensors_save(tabs, names, 1, p(last));
        tokemb_table_free(w);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    expect_fail(tokemb_mpi_table_load(t, path), TOKEMB_FORMAT, "[2, 3]", t, 6, "shard shape");
    if (rank == 0) rename(hold, p(last));
    MPI_Barrier(MPI_COMM_WORLD);
    /* a corrupt index: the byte offset is named */
    if (rank == 0) {
        FILE *f = fopen(p("bad.index.json"), "w");
        fputs("{\"format\": \"tokemb.checkpoint\", \"version\": 1, \"generation\": 1, \"dtype\": \"F32\", "
              "\"shape\": [29, 3], \"files\": [{\"file\": \"f-00001-of-0000",
              f);
        fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    expect_fail(tokemb_mpi_table_load(t, p("bad.index.json")), TOKEMB_FORMAT, "bad.index.json' byte 117", t, 6,
                "corrupt index");
    expect_fail(tokemb_mpi_table_load(t, p("none.index.json")), TOKEMB_IO, "No such file", t, 6, "missing index");
    /* the checkpoint itself is intact: it still loads */
    check_load(MPI_COMM_WORLD, path, V, D, 5, "after the faults");

    /* a failed save writes no index and leaves no shard: shard names from ".hidden" are refused by the
     * index writer after every rank has written its file */
    int before = count_files(".hidden");
    expect_fail(tokemb_mpi_table_save(src, p(".hidden.index.json")), TOKEMB_INVALID_ARGUMENT, "not starting with '.'",
                NULL, 0, "bad shard names");
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(count_files(".hidden") == before, "a failed save left files");
    expect_fail(tokemb_mpi_table_save(src, p("no/such/dir/x.index.json")), TOKEMB_IO, "no/such/dir", NULL, 0,
                "save into a missing folder");
    expect_fail(tokemb_mpi_table_save(src, p("")), TOKEMB_INVALID_ARGUMENT, "names no index file", NULL, 0,
                "folder path");
    tokemb_mpi_table_free(src);
    tokemb_mpi_table_free(t);
    tokemb_mpi_table_free(other);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    if (rank == 0) {
        snprintf(dir, sizeof dir, "%s/tokemb_mpi_ckpt_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(dir)) dir[0] = 0;
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(dir[0] != 0, "mkdtemp");
    test_resharding(11, 4);
    test_resharding(1000, 7);
    test_overwrite();
    test_faults();
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) failures++;
    }
    return tk_mpi_finish();
}
