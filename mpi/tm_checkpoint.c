/* Sharded checkpoints of a tokemb_mpi_table: every rank saves its shard as a safetensors file through
 * the core's atomic saver, rank 0 writes the core's JSON index (tokemb_checkpoint_save_index) once every
 * shard is durable, and a load reads, on every rank, only the rows it owns from whichever files hold
 * them (tokemb_checkpoint_read), so a checkpoint loads at any rank count and sharding - and without
 * MPI through tokemb_checkpoint_load.
 *
 * Shard files carry the save's generation in their names ("emb-00002-of-00004.g3.safetensors" next to
 * "emb.index.json"): a new save never overwrites the files the current index names, so a crash at any
 * point leaves the previous checkpoint whole; the previous generation's files are removed only after
 * the new index has been renamed into place and its folder fsynced. */
#define _GNU_SOURCE
#include "tm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* FNV-1a of the path: every rank must name the same checkpoint. */
static uint64_t tm_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* The folder part of path (with its '/') and the stem of the index name (".index.json" or ".json"
 * removed), or NULL stem when path names a folder. */
static void tm_split(const char *path, size_t *dir_len, char *stem, size_t stem_size) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    *dir_len = (size_t)(base - path);
    size_t n = strlen(base);
    if (n > 11 && strcmp(base + n - 11, ".index.json") == 0) n -= 11;
    else if (n > 5 && strcmp(base + n - 5, ".json") == 0) n -= 5;
    snprintf(stem, stem_size, "%.*s", (int)n, base);
}

/* Rank r's file name and layout row (row_start, row_step, row_count, col_start, col_count): the part of
 * the global table rank r's shard holds. Returns 0, or -1 for a sharding without a layout here. */
static int tm_shard(const tokemb_mpi_table *t, int r, const char *stem, int64_t gen, char *name, size_t size,
                    int64_t *l) {
    snprintf(name, size, "%s-%05d-of-%05d.g%lld.safetensors", stem, r + 1, t->size, (long long)gen);
    l[3] = 0;
    l[4] = t->dim;
    switch (t->sharding) {
    case TOKEMB_MPI_ROW:
        tm_row_block(t->rows, t->size, r, &l[0], &l[2]);
        l[1] = 1;
        return 0;
    case TOKEMB_MPI_ROW_MODULO:
        l[0] = r;
        l[1] = t->size;
        l[2] = (t->rows - r - 1) / t->size + 1; /* rows >= ranks: every rank owns a row */
        return 0;
    case 2: /* TOKEMB_MPI_COLUMN (pinned value; every row, a block of the columns split as ROW splits rows) */
        l[0] = 0;
        l[1] = 1;
        l[2] = t->rows;
        tm_row_block(t->dim, t->size, r, &l[3], &l[4]);
        return 0;
    default: return -1;
    }
}

/* This rank's checks of the path, then rank 0's (hash, length, extra) broadcast and compared, so ranks
 * naming different checkpoints fail together. extra: a value rank 0 decides for everyone. */
static int32_t tm_same_path(const tokemb_mpi_table *t, const char *fn, const char *path, int64_t *extra, int32_t st,
                            char *msg) {
    if (st == TOKEMB_OK && (!path || !path[0]))
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "path is %s", path ? "empty" : "NULL");
    int64_t mine[3] = {0, 0, *extra};
    if (path) {
        mine[0] = (int64_t)tm_hash(path);
        mine[1] = (int64_t)strlen(path);
    }
    int64_t root[3] = {mine[0], mine[1], mine[2]};
    int rc = MPI_Bcast(root, 3, MPI_INT64_T, 0, t->comm);
    if (rc != MPI_SUCCESS && st == TOKEMB_OK) st = tm_mpi_status(rc, fn, "MPI_Bcast", msg);
    if (st == TOKEMB_OK && (root[0] != mine[0] || root[1] != mine[1]))
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "path '%.200s' differs from rank 0's", path);
    *extra = root[2];
    return tm_agree(t->comm, t->rank, t->size, fn, st, msg);
}

int32_t tokemb_mpi_table_save(tokemb_mpi_table *t, const char *path) {
    static const char fn[] = "tokemb_mpi_table_save";
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "", stem[256] = "";
    int32_t st = TOKEMB_OK;
    size_t dl = 0;
    if (path && path[0]) {
        tm_split(path, &dl, stem, sizeof stem);
        if (!stem[0]) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "path '%.200s' names no index file", path);
        else if (strlen(path) + 64 > 4096)
            st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "path '%.200s...' is too long", path);
    }
    char name[320];
    int64_t l[5];
    if (st == TOKEMB_OK && tokemb_table_dtype(t->local) != TOKEMB_F32)
        st = tm_fail(TOKEMB_UNSUPPORTED, msg, "the shard is not F32");
    else if (st == TOKEMB_OK && tm_shard(t, t->rank, stem, 0, name, sizeof name, l) != 0)
        st = tm_fail(TOKEMB_UNSUPPORTED, msg, "sharding %d has no checkpoint layout", (int)t->sharding);
    /* rank 0 picks the generation (the current index's + 1) and remembers that index's files */
    int64_t gen = 1;
    char *old = NULL;
    size_t n_old = 0, old_bytes = 0;
    if (t->rank == 0 && st == TOKEMB_OK && path && path[0]) {
        int64_t g;
        if (tokemb_checkpoint_info(path, NULL, NULL, &g, NULL) == TOKEMB_OK &&
            tokemb_checkpoint_files(path, NULL, 0, &n_old, &old_bytes) == TOKEMB_OK) {
            gen = g < INT64_MAX ? g + 1 : 1;
            old = malloc(old_bytes);
            if (!old || tokemb_checkpoint_files(path, old, old_bytes, &n_old, &old_bytes) != TOKEMB_OK) n_old = 0;
        }
    }
    st = tm_same_path(t, fn, path, &gen, st, msg);
    if (st != TOKEMB_OK) {
        free(old);
        return st;
    }
    /* every rank's shard, through the core's atomic saver */
    char *mine = malloc(dl + 320);
    (void)tm_shard(t, t->rank, stem, gen, name, sizeof name, l);
    if (!mine) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    else {
        snprintf(mine, dl + 320, "%.*s%s", (int)dl, path, name);
        char gs[32], rule[96];
        snprintf(gs, sizeof gs, "%lld", (long long)gen);
        snprintf(rule, sizeof rule, "[%lld, %lld, %lld]", (long long)l[0], (long long)l[1], (long long)l[2]);
        const char *keys[3] = {"format", "tokemb.generation", "tokemb.rows"},
                   *vals[3] = {"tokemb.checkpoint", gs, rule};
        const char *names[1] = {"weight"};
        const tokemb_table *tabs[1] = {t->local};
        int32_t ss = tokemb_safetensors_save_ex(tabs, names, 1, keys, vals, 3, mine);
        if (ss != TOKEMB_OK) st = tm_fail(ss, msg, "%s", tokemb_last_error());
    }
    const int saved = st == TOKEMB_OK;
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    /* every shard is durable: rank 0 writes the index (atomically), then drops the old generation */
    if (st == TOKEMB_OK && t->rank == 0) {
        char *files = malloc((size_t)t->size * 320);
        const char **fp = malloc((size_t)t->size * sizeof *fp);
        int64_t *layout = malloc((size_t)t->size * 5 * sizeof *layout);
        if (!files || !fp || !layout) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        for (int r = 0; st == TOKEMB_OK && r < t->size; r++) {
            fp[r] = files + (size_t)r * 320;
            (void)tm_shard(t, r, stem, gen, files + (size_t)r * 320, 320, layout + 5 * r);
        }
        if (st == TOKEMB_OK) {
            int32_t is = tokemb_checkpoint_save_index(path, t->rows, t->dim, gen, (size_t)t->size, fp, layout);
            if (is != TOKEMB_OK) st = tm_fail(is, msg, "index: %s", tokemb_last_error());
        }
        for (size_t k = 0, o = 0; st == TOKEMB_OK && k < n_old; k++) {
            const char *f = old + o;
            o += strlen(f) + 1;
            int keep = 0;
            for (int r = 0; r < t->size && !keep; r++) keep = strcmp(f, fp[r]) == 0;
            char *p = keep ? NULL : malloc(dl + strlen(f) + 1);
            if (p) {
                sprintf(p, "%.*s%s", (int)dl, path, f);
                (void)unlink(p); /* best effort: a leftover file of an old generation is harmless */
                free(p);
            }
        }
        free(files);
        free(fp);
        free(layout);
    }
    int32_t agreed = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    if (agreed != TOKEMB_OK && saved && mine) (void)unlink(mine); /* no index names it: nothing is left */
    free(mine);
    free(old);
    return agreed;
}

int32_t tokemb_mpi_table_load(tokemb_mpi_table *t, const char *path) {
    static const char fn[] = "tokemb_mpi_table_load";
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    int64_t unused = 0;
    int32_t st = tm_same_path(t, fn, path, &unused, TOKEMB_OK, msg);
    if (st != TOKEMB_OK) return st;
    int64_t V = 0, D = 0, l[5];
    char name[320];
    float *buf = NULL;
    int32_t cs = TOKEMB_OK;
    if (tm_shard(t, t->rank, "", 0, name, sizeof name, l) != 0) /* the part this rank owns, as a layout row */
        st = tm_fail(TOKEMB_UNSUPPORTED, msg, "sharding %d has no checkpoint layout", (int)t->sharding);
    else if ((cs = tokemb_checkpoint_info(path, &V, &D, NULL, NULL)) != TOKEMB_OK)
        st = tm_fail(cs, msg, "%s", tokemb_last_error());
    else if (V != t->rows || D != t->dim)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg,
                     "checkpoint '%.200s' holds a %lld x %lld table, this one is %lld x %lld", path, (long long)V,
                     (long long)D, (long long)t->rows, (long long)t->dim);
    else if (!(buf = malloc((size_t)(l[2] * l[4]) * sizeof *buf))) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    else if ((cs = tokemb_checkpoint_read(path, l[0], l[1], l[2], l[3], l[4], buf)) != TOKEMB_OK)
        st = tm_fail(cs, msg, "%s", tokemb_last_error());
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    if (st == TOKEMB_OK) { /* the shard is an owned, writable table of exactly these l[2] x l[4]: cannot fail */
        cs = tokemb_table_write_rows(t->local, 0, l[2], buf);
        if (cs != TOKEMB_OK) st = tm_fail(cs, msg, "writing the shard: %s", tokemb_last_error());
        st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    }
    free(buf);
    return st;
}
