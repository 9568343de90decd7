//! Raw `extern "C"` declarations for libtokemb, generated from include/tokemb.h by
//! scripts/tokemb_header.py (`--rust`). Do not edit by hand: tests/check_rust_sys.sh
//! compares every name, arity and parameter type with the header.
#![allow(non_camel_case_types, non_upper_case_globals, clippy::all)]

/// Opaque handle (`typedef struct tokemb_table tokemb_table;`).
#[repr(C)]
pub struct tokemb_table {
    _private: [u8; 0],
    _not_send_sync: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
}

/// Opaque handle (`typedef struct tokemb_posenc tokemb_posenc;`).
#[repr(C)]
pub struct tokemb_posenc {
    _private: [u8; 0],
    _not_send_sync: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
}

/// Opaque handle (`typedef struct tokemb_vocab tokemb_vocab;`).
#[repr(C)]
pub struct tokemb_vocab {
    _private: [u8; 0],
    _not_send_sync: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
}

pub type tokemb_task_fn = Option<unsafe extern "C" fn(*mut std::os::raw::c_void, usize)>;

pub type tokemb_parallel_fn = Option<unsafe extern "C" fn(*mut std::os::raw::c_void, usize, tokemb_task_fn, *mut std::os::raw::c_void)>;

pub type tokemb_progress_fn = Option<unsafe extern "C" fn(*mut std::os::raw::c_void, u64, u64) -> i32>;

// ---- #define constants
pub const TOKEMB_VERSION_MAJOR: i32 = 1;
pub const TOKEMB_VERSION_MINOR: i32 = 0;
pub const TOKEMB_VERSION_PATCH: i32 = 0;
pub const TOKEMB_VERSION_NUMBER: u32 = 10000;
pub const TOKEMB_VERSION_STRING: &str = "1.0.0";
pub const TOKEMB_WRAP_READONLY: u32 = 1;
pub const TOKEMB_NO_PADDING: i64 = -9223372036854775808;

// ---- enum tokemb_status
pub const TOKEMB_OK: i32 = 0;
pub const TOKEMB_INVALID_ARGUMENT: i32 = -1;
pub const TOKEMB_OUT_OF_RANGE: i32 = -2;
pub const TOKEMB_NO_MEMORY: i32 = -3;
pub const TOKEMB_IO: i32 = -4;
pub const TOKEMB_FORMAT: i32 = -5;
pub const TOKEMB_UNSUPPORTED: i32 = -6;
pub const TOKEMB_OVERFLOW: i32 = -7;
pub const TOKEMB_READ_ONLY: i32 = -8;
pub const TOKEMB_CANCELLED: i32 = -9;

// ---- enum tokemb_dtype
pub const TOKEMB_F32: i32 = 0;
pub const TOKEMB_F16: i32 = 1;
pub const TOKEMB_BF16: i32 = 2;
pub const TOKEMB_Q8_ROW: i32 = 3;

// ---- enum tokemb_table_param
pub const TOKEMB_PADDING_IDX: i32 = 100;
pub const TOKEMB_MAX_NORM: i32 = 101;
pub const TOKEMB_NORM_TYPE: i32 = 102;
pub const TOKEMB_SCALE_GRAD_BY_FREQ: i32 = 103;
pub const TOKEMB_FROZEN: i32 = 104;

// ---- enum tokemb_bag_mode
pub const TOKEMB_SUM: i32 = 0;
pub const TOKEMB_MEAN: i32 = 1;
pub const TOKEMB_MAX: i32 = 2;

// ---- enum tokemb_optim_kind
pub const TOKEMB_OPTIM_SGD: i32 = 0;
pub const TOKEMB_OPTIM_ROWWISE_ADAGRAD: i32 = 1;
pub const TOKEMB_OPTIM_ADAGRAD: i32 = 2;
pub const TOKEMB_OPTIM_SPARSE_ADAM: i32 = 3;

// ---- enum tokemb_optim_param
pub const TOKEMB_OPTIM_LR: i32 = 400;
pub const TOKEMB_OPTIM_WEIGHT_DECAY: i32 = 401;
pub const TOKEMB_OPTIM_EPS: i32 = 402;
pub const TOKEMB_OPTIM_BETA1: i32 = 403;
pub const TOKEMB_OPTIM_BETA2: i32 = 404;
pub const TOKEMB_OPTIM_LR_DECAY: i32 = 405;
pub const TOKEMB_OPTIM_INITIAL_ACCUMULATOR: i32 = 406;

// ---- enum tokemb_sinusoidal_layout
pub const TOKEMB_INTERLEAVED: i32 = 0;
pub const TOKEMB_CONCAT: i32 = 1;
pub const TOKEMB_CONCAT_T2T: i32 = 2;

// ---- enum tokemb_rope_layout
pub const TOKEMB_NEOX: i32 = 0;
pub const TOKEMB_GPTJ: i32 = 1;

// ---- enum tokemb_rope_scaling
pub const TOKEMB_ROPE_SCALING_NONE: i32 = 0;
pub const TOKEMB_ROPE_SCALING_LINEAR: i32 = 1;
pub const TOKEMB_ROPE_SCALING_DYNAMIC: i32 = 2;
pub const TOKEMB_ROPE_SCALING_YARN: i32 = 3;
pub const TOKEMB_ROPE_SCALING_LLAMA3: i32 = 4;
pub const TOKEMB_ROPE_SCALING_LONGROPE: i32 = 5;

// ---- enum tokemb_posenc_param
pub const TOKEMB_ROPE_SCALING: i32 = 200;
pub const TOKEMB_ROPE_FACTOR: i32 = 201;
pub const TOKEMB_ROPE_ORIGINAL_MAX_POS: i32 = 202;
pub const TOKEMB_ROPE_BETA_FAST: i32 = 203;
pub const TOKEMB_ROPE_BETA_SLOW: i32 = 204;
pub const TOKEMB_ROPE_LOW_FREQ_FACTOR: i32 = 205;
pub const TOKEMB_ROPE_HIGH_FREQ_FACTOR: i32 = 206;
pub const TOKEMB_ROPE_ATTN_FACTOR: i32 = 207;
pub const TOKEMB_ROPE_MSCALE: i32 = 208;
pub const TOKEMB_ROPE_MSCALE_ALL_DIM: i32 = 209;
pub const TOKEMB_ROPE_TRUNCATE: i32 = 210;
pub const TOKEMB_ROPE_SEQ_LEN: i32 = 211;
pub const TOKEMB_ALIBI_CAUSAL: i32 = 300;
pub const TOKEMB_ALIBI_MAX_BIAS: i32 = 301;

// ---- enum tokemb_vectors_format
pub const TOKEMB_VECTORS_WORD2VEC_BINARY: i32 = 0;
pub const TOKEMB_VECTORS_WORD2VEC_TEXT: i32 = 1;
pub const TOKEMB_VECTORS_GLOVE: i32 = 2;
pub const TOKEMB_VECTORS_AUTO: i32 = 3;

// ---- enum tokemb_vectors_flags
pub const TOKEMB_VECTORS_UNICODE_STRICT: i32 = 0;
pub const TOKEMB_VECTORS_UNICODE_IGNORE: i32 = 1;
pub const TOKEMB_VECTORS_UNICODE_REPLACE: i32 = 2;
pub const TOKEMB_VECTORS_UNICODE_MASK: i32 = 3;

// ---- enum tokemb_metric
pub const TOKEMB_METRIC_COSINE: i32 = 0;
pub const TOKEMB_METRIC_DOT: i32 = 1;

// ---- enum tokemb_table_param_experimental (experimental block: outside the stable ABI, may change in any release)
pub const TOKEMB_NONTEMPORAL: i32 = 105;

extern "C" {
    pub fn tokemb_version_string() -> *const std::os::raw::c_char;
    pub fn tokemb_version_number() -> u32;
    pub fn tokemb_status_string(status: i32) -> *const std::os::raw::c_char;
    pub fn tokemb_last_error() -> *const std::os::raw::c_char;
    pub fn tokemb_set_num_threads(n: i32) -> i32;
    pub fn tokemb_get_num_threads() -> i32;
    pub fn tokemb_set_parallel_for(fn_: tokemb_parallel_fn, host_ctx: *mut std::os::raw::c_void);
    pub fn tokemb_use_host_openmp() -> i32;
    pub fn tokemb_table_convert(src: *const tokemb_table, dtype: i32, out: *mut *mut tokemb_table) -> i32;
    pub fn tokemb_table_create(rows: i64, dim: i64, dtype: i32, out: *mut *mut tokemb_table) -> i32;
    pub fn tokemb_table_wrap(data: *mut std::os::raw::c_void, rows: i64, dim: i64, row_stride: i64, dtype: i32, flags: u32, out: *mut *mut tokemb_table) -> i32;
    pub fn tokemb_table_free(t: *mut tokemb_table);
    pub fn tokemb_table_rows(t: *const tokemb_table) -> i64;
    pub fn tokemb_table_dim(t: *const tokemb_table) -> i64;
    pub fn tokemb_table_row_stride(t: *const tokemb_table) -> i64;
    pub fn tokemb_table_dtype(t: *const tokemb_table) -> i32;
    pub fn tokemb_table_data(t: *mut tokemb_table) -> *mut f32;
    pub fn tokemb_table_read_rows(t: *const tokemb_table, row0: i64, n_rows: usize, out: *mut f32) -> i32;
    pub fn tokemb_table_write_rows(t: *mut tokemb_table, row0: i64, n_rows: usize, src: *const f32) -> i32;
    pub fn tokemb_table_set_param(t: *mut tokemb_table, param: i32, value: i64) -> i32;
    pub fn tokemb_table_set_param_f64(t: *mut tokemb_table, param: i32, value: f64) -> i32;
    pub fn tokemb_table_get_param(t: *const tokemb_table, param: i32, value: *mut i64) -> i32;
    pub fn tokemb_table_get_param_f64(t: *const tokemb_table, param: i32, value: *mut f64) -> i32;
    pub fn tokemb_table_init_normal(t: *mut tokemb_table, seed: u64, mean: f64, std: f64) -> i32;
    pub fn tokemb_table_init_normal_shard(t: *mut tokemb_table, seed: u64, mean: f64, std: f64, global_rows: i64, global_dim: i64, row0: i64, row_step: i64, col0: i64) -> i32;
    pub fn tokemb_table_init_uniform(t: *mut tokemb_table, seed: u64, lo: f64, hi: f64) -> i32;
    pub fn tokemb_lookup(t: *mut tokemb_table, ids: *const i64, n: usize, out: *mut f32) -> i32;
    pub fn tokemb_lookup_i32(t: *mut tokemb_table, ids: *const i32, n: usize, out: *mut f32) -> i32;
    pub fn tokemb_lookup_strided(t: *mut tokemb_table, ids: *const i64, n: usize, out: *mut f32, out_row_stride: i64) -> i32;
    pub fn tokemb_grad_accumulate(t: *const tokemb_table, ids: *const i64, n: usize, grad_out: *const f32, grad_table: *mut f32) -> i32;
    pub fn tokemb_grad_accumulate_i32(t: *const tokemb_table, ids: *const i32, n: usize, grad_out: *const f32, grad_table: *mut f32) -> i32;
    pub fn tokemb_grad_coalesce(t: *const tokemb_table, ids: *const i64, n: usize, grad_out: *const f32, out_ids: *mut i64, out_rows: *mut f32, n_unique: *mut usize) -> i32;
    pub fn tokemb_grad_coalesce_i32(t: *const tokemb_table, ids: *const i32, n: usize, grad_out: *const f32, out_ids: *mut i64, out_rows: *mut f32, n_unique: *mut usize) -> i32;
    pub fn tokemb_lookup_onehot(t: *const tokemb_table, ids: *const i64, n: usize, out: *mut f32) -> i32;
    pub fn tokemb_lookup_onehot_backward(t: *const tokemb_table, ids: *const i64, n: usize, grad_out: *const f32, grad_table: *mut f32) -> i32;
    pub fn tokemb_lookup_bags(t: *mut tokemb_table, ids: *const i64, n: usize, offsets: *const i64, n_bags: usize, mode: i32, per_sample_weights: *const f32, out: *mut f32) -> i32;
    pub fn tokemb_lookup_bags_i32(t: *mut tokemb_table, ids: *const i32, n: usize, offsets: *const i64, n_bags: usize, mode: i32, per_sample_weights: *const f32, out: *mut f32) -> i32;
    pub fn tokemb_lookup_bags_backward(t: *const tokemb_table, ids: *const i64, n: usize, offsets: *const i64, n_bags: usize, mode: i32, per_sample_weights: *const f32, grad_out: *const f32, grad_table: *mut f32, grad_per_sample_weights: *mut f32) -> i32;
    pub fn tokemb_lookup_bags_backward_i32(t: *const tokemb_table, ids: *const i32, n: usize, offsets: *const i64, n_bags: usize, mode: i32, per_sample_weights: *const f32, grad_out: *const f32, grad_table: *mut f32, grad_per_sample_weights: *mut f32) -> i32;
    pub fn tokemb_optim_select(t: *mut tokemb_table, kind: i32) -> i32;
    pub fn tokemb_optim_set_param_f64(t: *mut tokemb_table, param: i32, value: f64) -> i32;
    pub fn tokemb_optim_get_param_f64(t: *const tokemb_table, param: i32, value: *mut f64) -> i32;
    pub fn tokemb_optim_step_count(t: *const tokemb_table) -> i64;
    pub fn tokemb_optim_step(t: *mut tokemb_table, ids: *const i64, n: usize, grad_out: *const f32) -> i32;
    pub fn tokemb_optim_step_i32(t: *mut tokemb_table, ids: *const i32, n: usize, grad_out: *const f32) -> i32;
    pub fn tokemb_optim_step_coalesced(t: *mut tokemb_table, unique_ids: *const i64, n_unique: usize, rows: *const f32) -> i32;
    pub fn tokemb_logits(t: *const tokemb_table, hidden: *const f32, n: usize, logits: *mut f32) -> i32;
    pub fn tokemb_logits_backward(t: *const tokemb_table, hidden: *const f32, n: usize, grad_logits: *const f32, grad_hidden: *mut f32, grad_table: *mut f32) -> i32;
    pub fn tokemb_posenc_create_sinusoidal(dim: i64, base: f64, layout: i32, out: *mut *mut tokemb_posenc) -> i32;
    pub fn tokemb_posenc_create_learned(max_len: i64, dim: i64, out: *mut *mut tokemb_posenc) -> i32;
    pub fn tokemb_posenc_create_rope(head_dim: i64, rotary_dim: i64, base: f64, layout: i32, out: *mut *mut tokemb_posenc) -> i32;
    pub fn tokemb_posenc_create_alibi(n_heads: i64, out: *mut *mut tokemb_posenc) -> i32;
    pub fn tokemb_posenc_create_t5(n_heads: i64, num_buckets: i64, max_distance: i64, bidirectional: i32, out: *mut *mut tokemb_posenc) -> i32;
    pub fn tokemb_posenc_create_shaw(max_distance: i64, dim: i64, out: *mut *mut tokemb_posenc) -> i32;
    pub fn tokemb_posenc_free(pe: *mut tokemb_posenc);
    pub fn tokemb_posenc_set_param(pe: *mut tokemb_posenc, param: i32, value: i64) -> i32;
    pub fn tokemb_posenc_set_param_f64(pe: *mut tokemb_posenc, param: i32, value: f64) -> i32;
    pub fn tokemb_posenc_get_param(pe: *const tokemb_posenc, param: i32, value: *mut i64) -> i32;
    pub fn tokemb_posenc_get_param_f64(pe: *const tokemb_posenc, param: i32, value: *mut f64) -> i32;
    pub fn tokemb_posenc_table(pe: *mut tokemb_posenc) -> *mut tokemb_table;
    pub fn tokemb_posenc_dim(pe: *const tokemb_posenc) -> i64;
    pub fn tokemb_posenc_encode(pe: *const tokemb_posenc, positions: *const i64, n: usize, out: *mut f32) -> i32;
    pub fn tokemb_embed(tok: *mut tokemb_table, pe: *const tokemb_posenc, ids: *const i64, batch: usize, seq: usize, start_pos: i64, scale: f32, out: *mut f32) -> i32;
    pub fn tokemb_embed_backward(tok: *const tokemb_table, pe: *const tokemb_posenc, ids: *const i64, batch: usize, seq: usize, start_pos: i64, scale: f32, grad_out: *const f32, grad_tok: *mut f32, grad_pe: *mut f32) -> i32;
    pub fn tokemb_rope_apply(pe: *const tokemb_posenc, x: *mut f32, n_tokens: usize, n_heads: usize, positions: *const i64) -> i32;
    pub fn tokemb_rope_apply_backward(pe: *const tokemb_posenc, grad: *mut f32, n_tokens: usize, n_heads: usize, positions: *const i64) -> i32;
    pub fn tokemb_posenc_rope_apply_strided(pe: *const tokemb_posenc, x: *mut f32, batch: usize, n_heads: usize, seq: usize, stride_batch: i64, stride_head: i64, stride_seq: i64, positions: *const i64, backward: i32) -> i32;
    pub fn tokemb_posenc_rope_inv_freq(pe: *const tokemb_posenc, inv_freq: *mut f64, n: usize, attn_factor: *mut f64) -> i32;
    pub fn tokemb_posenc_rope_cos_sin(pe: *const tokemb_posenc, positions: *const i64, n: usize, cos_out: *mut f32, sin_out: *mut f32) -> i32;
    pub fn tokemb_posenc_rope_set_longrope_factors(pe: *mut tokemb_posenc, short_factor: *const f64, long_factor: *const f64, n: usize) -> i32;
    pub fn tokemb_posenc_alibi_slopes(pe: *const tokemb_posenc, out: *mut f32) -> i32;
    pub fn tokemb_posenc_attn_bias(pe: *const tokemb_posenc, q_len: usize, k_len: usize, q_offset: i64, out: *mut f32) -> i32;
    pub fn tokemb_posenc_attn_bias_backward(pe: *const tokemb_posenc, q_len: usize, k_len: usize, q_offset: i64, grad_bias: *const f32, grad_table: *mut f32) -> i32;
    pub fn tokemb_posenc_buckets(pe: *const tokemb_posenc, q_len: usize, k_len: usize, q_offset: i64, out: *mut i32) -> i32;
    pub fn tokemb_posenc_shaw_embed(pe: *const tokemb_posenc, q_len: usize, k_len: usize, q_offset: i64, out: *mut f32) -> i32;
    pub fn tokemb_posenc_shaw_embed_backward(pe: *const tokemb_posenc, q_len: usize, k_len: usize, q_offset: i64, grad: *const f32, grad_table: *mut f32) -> i32;
    pub fn tokemb_npy_load(path: *const std::os::raw::c_char, out: *mut *mut tokemb_table) -> i32;
    pub fn tokemb_npy_mmap(path: *const std::os::raw::c_char, out: *mut *mut tokemb_table) -> i32;
    pub fn tokemb_npy_save(t: *const tokemb_table, path: *const std::os::raw::c_char) -> i32;
    pub fn tokemb_safetensors_load(path: *const std::os::raw::c_char, name: *const std::os::raw::c_char, out: *mut *mut tokemb_table) -> i32;
    pub fn tokemb_safetensors_mmap(path: *const std::os::raw::c_char, name: *const std::os::raw::c_char, out: *mut *mut tokemb_table) -> i32;
    pub fn tokemb_safetensors_names(path: *const std::os::raw::c_char, buf: *mut std::os::raw::c_char, buf_size: usize, n_names: *mut usize, bytes_needed: *mut usize) -> i32;
    pub fn tokemb_safetensors_save(tables: *const *const tokemb_table, names: *const *const std::os::raw::c_char, n: usize, path: *const std::os::raw::c_char) -> i32;
    pub fn tokemb_safetensors_save_ex(tables: *const *const tokemb_table, names: *const *const std::os::raw::c_char, n: usize, meta_keys: *const *const std::os::raw::c_char, meta_values: *const *const std::os::raw::c_char, n_meta: usize, path: *const std::os::raw::c_char) -> i32;
    pub fn tokemb_safetensors_metadata(path: *const std::os::raw::c_char, buf: *mut std::os::raw::c_char, buf_size: usize, n_pairs: *mut usize, bytes_needed: *mut usize) -> i32;
    pub fn tokemb_checkpoint_save_index(path: *const std::os::raw::c_char, rows: i64, dim: i64, generation: i64, n_files: usize, files: *const *const std::os::raw::c_char, layout: *const i64) -> i32;
    pub fn tokemb_checkpoint_info(path: *const std::os::raw::c_char, rows: *mut i64, dim: *mut i64, generation: *mut i64, n_files: *mut usize) -> i32;
    pub fn tokemb_checkpoint_files(path: *const std::os::raw::c_char, buf: *mut std::os::raw::c_char, buf_size: usize, n_files: *mut usize, bytes_needed: *mut usize) -> i32;
    pub fn tokemb_checkpoint_read(path: *const std::os::raw::c_char, row_start: i64, row_step: i64, row_count: i64, col_start: i64, col_count: i64, out: *mut f32) -> i32;
    pub fn tokemb_checkpoint_load(path: *const std::os::raw::c_char, out: *mut *mut tokemb_table) -> i32;
    pub fn tokemb_vocab_create(out: *mut *mut tokemb_vocab) -> i32;
    pub fn tokemb_vocab_free(v: *mut tokemb_vocab);
    pub fn tokemb_vocab_size(v: *const tokemb_vocab) -> i64;
    pub fn tokemb_vocab_add(v: *mut tokemb_vocab, word: *const std::os::raw::c_char, len: usize, id: *mut i64) -> i32;
    pub fn tokemb_vocab_find(v: *const tokemb_vocab, word: *const std::os::raw::c_char, len: usize) -> i64;
    pub fn tokemb_vocab_word(v: *const tokemb_vocab, id: i64, len: *mut usize) -> *const std::os::raw::c_char;
    pub fn tokemb_vectors_load(path: *const std::os::raw::c_char, format: i32, progress: tokemb_progress_fn, user: *mut std::os::raw::c_void, out_table: *mut *mut tokemb_table, out_vocab: *mut *mut tokemb_vocab) -> i32;
    pub fn tokemb_vectors_load_ex(path: *const std::os::raw::c_char, format: i32, limit: i64, flags: u32, progress: tokemb_progress_fn, user: *mut std::os::raw::c_void, out_table: *mut *mut tokemb_table, out_vocab: *mut *mut tokemb_vocab) -> i32;
    pub fn tokemb_vectors_save(t: *const tokemb_table, v: *const tokemb_vocab, path: *const std::os::raw::c_char, format: i32) -> i32;
    pub fn tokemb_nearest(t: *const tokemb_table, queries: *const f32, n_queries: usize, k: usize, metric: i32, exclude_ids: *const i64, out_ids: *mut i64, out_scores: *mut f32) -> i32;
    pub fn tokemb_nearest_ex(t: *const tokemb_table, queries: *const f32, n_queries: usize, k: usize, metric: i32, exclude_ids: *const i64, progress: tokemb_progress_fn, user: *mut std::os::raw::c_void, out_ids: *mut i64, out_scores: *mut f32) -> i32;
    pub fn tokemb_nearest_ids(t: *const tokemb_table, ids: *const i64, n: usize, k: usize, metric: i32, exclude_self: i32, out_ids: *mut i64, out_scores: *mut f32) -> i32;
}
