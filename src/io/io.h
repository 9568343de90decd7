/* io_common.h - shared plumbing of the file formats (io_npy.c, io_safetensors.c, io_text.c):
 * hostile-file-safe mapping, atomic saves, table construction over a mapping, UTF-8 checks.
 * Internal only. */
#ifndef TOKEMB_IO_COMMON_H
#define TOKEMB_IO_COMMON_H

#include "table/table.h"

#include <stdio.h>

/* A whole file mapped read-only (MAP_PRIVATE). size > 0 on success. */
typedef struct {
    const uint8_t *map;
    size_t size;
} tk_map;

/* Test-only operation counter (TOKEMB_TESTING builds, tests/test_io_scaling.c): every hash probe,
 * name comparison and parser loop step adds one, so tests assert on work, not seconds. */
#ifdef TOKEMB_TESTING
extern uint64_t tk_test_io_ops;
#define TK_IO_OP(k) (tk_test_io_ops += (uint64_t)(k))
#else
#define TK_IO_OP(k) ((void)0)
#endif

/* An open regular file and its size when opened. */
typedef struct {
    int fd;
    size_t size;
} tk_file;
/* Opens `path` without blocking (O_NONBLOCK, so a FIFO never waits for a writer), then checks with
 * fstat that it is a non-empty regular file. Errors: INVALID_ARGUMENT (NULL or empty path), IO
 * (missing, unreadable, a directory, FIFO, socket or device), FORMAT (empty file). */
int32_t tk_file_open(const char *fn, const char *path, tk_file *f);
void tk_file_close(tk_file *f);
/* Reads exactly n bytes at off with pread. TOKEMB_IO on an error or a short read (the file shrank
 * since it was opened): copy-mode loads never touch a mapping, so a shrinking file cannot SIGBUS. */
int32_t tk_file_read(const char *fn, const char *path, const tk_file *f, size_t off, void *buf, size_t n);
/* Opens and reads the whole file into a tk_malloc'ed buffer (*out, *len). */
int32_t tk_file_read_all(const char *fn, const char *path, uint8_t **out, size_t *len);
/* Opens `path` as tk_file_open does and maps it (mmap-mode tables only). Errors as tk_file_open, plus
 * IO on mmap failure. */
int32_t tk_map_file(const char *fn, const char *path, tk_map *m);
/* Maps the whole of an open file (f->size bytes). IO on mmap failure. */
int32_t tk_map_fd(const char *fn, const char *path, const tk_file *f, tk_map *m);
void tk_unmap(tk_map *m);
/* Makes the table own the mapping (munmap on tokemb_table_free). Takes `m` over on success. */
int32_t tk_table_adopt_map(const char *fn, tokemb_table *t, tk_map *m);

/* Atomic save: writes to a fresh temp file ".tokemb-<hash of the name>.<pid>.<n>.tmp" (short for any
 * name up to NAME_MAX) in the destination's folder; commit fsyncs, renames over the destination and
 * fsyncs the folder; abort removes the temp file. Nothing appears at the destination unless commit
 * succeeds. The destination is `path`, or the file a symbolic link `path` points to (followed, as
 * np.save does); an existing destination keeps its permission bits. Begin removes the temp files of
 * earlier saves to the same destination whose process is gone (a save killed with SIGKILL). */
typedef struct {
    FILE *fp;
    char *tmp;  /* temp path (tk_malloc) */
    char *path; /* the destination, symlinks resolved (tk_malloc) */
    int failed; /* a write failed (errno saved) */
    int err;
} tk_save;
int32_t tk_save_begin(const char *fn, const char *path, tk_save *s);
void tk_save_write(tk_save *s, const void *p, size_t n);
/* Writes t's rows, dim elements each, without the row-stride gaps. */
void tk_save_rows(tk_save *s, const tokemb_table *t);
int32_t tk_save_commit(const char *fn, tk_save *s);
void tk_save_abort(tk_save *s);

/* Length of a valid UTF-8 prefix: returns the byte index of the first invalid sequence, or n if
 * all of [p, p+n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
size_t tk_utf8_valid_prefix(const uint8_t *p, size_t n);
/* Reads the decimal digits at p[*i..n) as a value below 2^63 and advances *i past them. Returns 1 with
 * *v set, 0 if there is no digit, -1 if the value reaches 2^63 (then *i is unchanged). */
int tk_parse_u63(const uint8_t *p, size_t n, size_t *i, uint64_t *v);

/* Little-endian loads. */
static inline uint16_t tk_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t tk_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t tk_le64(const uint8_t *p) { return (uint64_t)tk_le32(p) | ((uint64_t)tk_le32(p + 4) << 32); }

/* ---- parsers over memory (also the libFuzzer entry points) ---------------------------------- */
/* A cursor over header text (the npy dict literal, the safetensors JSON). Errors name the file byte
 * offset (base + i), what was expected and what was found. */
typedef struct {
    const char *fn;   /* the API function, for messages */
    const char *what; /* "npy header", "safetensors header" */
    const uint8_t *p;
    size_t i, n; /* cursor and end within p */
    size_t base; /* file offset of p[0] */
} tk_cursor;
/* TOKEMB_FORMAT: "<fn>: <what> byte <offset>: expected <expected>, found <char, byte or the end>". */
int32_t tk_cursor_fail(const tk_cursor *c, const char *expected);
/* Skips spaces, tabs and line breaks. */
void tk_cursor_ws(tk_cursor *c);
/* Skips white space, then consumes ch if it is next. */
bool tk_cursor_eat(tk_cursor *c, char ch);

/* JSON over a cursor (strict, as the safetensors header): a string - validated UTF-8 and escapes, no
 * raw control character, no NUL - stored as a tk_malloc'ed NUL-terminated copy when out != NULL; a
 * non-negative integer below 2^63 without sign, fraction, exponent or leading zeros. */
int32_t tk_json_str(tk_cursor *j, char **out, size_t *out_len);
int32_t tk_json_uint(tk_cursor *j, uint64_t *v);

/* npy: parses the header of buf[0..len). On success: dtype (F32/F16), rows, dim and the data offset;
 * rows*dim*size is checked to equal len - offset. */
int32_t tk_npy_parse(const char *fn, const uint8_t *buf, size_t len, int32_t *dtype, int64_t *rows, int64_t *dim,
                     size_t *offset);

/* safetensors: one tensor's description. */
typedef struct {
    char *name; /* NUL-terminated UTF-8, tk_malloc */
    size_t name_len;
    size_t name_at;                        /* file offsets: the name's opening quote, the description's '{', */
    size_t value_at, shape_at, offsets_at; /* the shape's '[', the data_offsets' '[' */
    int32_t dtype;                         /* TOKEMB_F32/F16/BF16, or -1 for a dtype tokemb cannot store */
    char dtype_str[16];
    int32_t ndim;
    int64_t shape[8];
    uint64_t begin, end; /* absolute file offsets */
} tk_st_tensor;
typedef struct {
    tk_st_tensor *t;
    size_t n;
    char *meta;        /* __metadata__ pairs "key\0value\0..." in header order (tk_malloc), or NULL */
    size_t meta_bytes; /* bytes of meta */
    size_t meta_n;     /* number of pairs */
} tk_st_header;
int32_t tk_st_parse(const char *fn, const uint8_t *buf, size_t len, tk_st_header *h);
/* Opens `path`, reads the 8-byte length and the JSON header with pread and parses them against the
 * file size (nothing past the header is read). On success the caller owns *f and *h. */
int32_t tk_st_read_header(const char *fn, const char *path, tk_file *f, tk_st_header *h);
void tk_st_header_free(tk_st_header *h);

/* A sharded checkpoint's JSON index in buf[0..len): parsed strictly and its layout validated (checkpoint.c;
 * the fuzz entry). */
int32_t tk_checkpoint_parse(const char *fn, const uint8_t *buf, size_t len, int64_t *rows, int64_t *dim,
                            size_t *n_files);

/* word2vec binary/text and GloVe over memory (format = enum tokemb_vectors_format, AUTO included). */
int32_t tk_vectors_parse(const char *fn, const uint8_t *buf, size_t len, int32_t format, tokemb_progress_fn cb,
                         void *user, tokemb_table **out_t, tokemb_vocab **out_v);
/* The same with tokemb_vectors_load_ex's limit (0 = all) and flags (already validated). */
int32_t tk_vectors_parse_ex(const char *fn, const uint8_t *buf, size_t len, int32_t format, int64_t limit,
                            uint32_t flags, tokemb_progress_fn cb, void *user, tokemb_table **out_t,
                            tokemb_vocab **out_v);

#endif
