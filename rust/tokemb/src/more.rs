//! Training (gradients, bags, optimizers, tied logits), positional encoders, files, vocabularies,
//! nearest neighbours and dtype conversion. Same conventions as the crate root: lengths checked
//! before every call, `&self` only for calls the library documents as safe for concurrent readers.
use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::NonNull;

use crate::{check, mul, mut_ptr_or_null, ptr_or_null, sys, want_len, Dtype, Error, Result, Table};

fn opt_ptr<T>(s: Option<&[T]>) -> *const T {
    s.map_or(std::ptr::null(), |s| s.as_ptr())
}
fn opt_mut<T>(s: Option<&mut [T]>) -> *mut T {
    s.map_or(std::ptr::null_mut(), |s| s.as_mut_ptr())
}

/// Bag reduction modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BagMode {
    Sum,
    Mean,
    Max,
}
impl BagMode {
    pub fn code(self) -> i32 {
        match self {
            BagMode::Sum => sys::TOKEMB_SUM,
            BagMode::Mean => sys::TOKEMB_MEAN,
            BagMode::Max => sys::TOKEMB_MAX,
        }
    }
}

/// Fused sparse optimizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    Sgd,
    RowwiseAdagrad,
    Adagrad,
    SparseAdam,
}
impl Optimizer {
    pub fn code(self) -> i32 {
        match self {
            Optimizer::Sgd => sys::TOKEMB_OPTIM_SGD,
            Optimizer::RowwiseAdagrad => sys::TOKEMB_OPTIM_ROWWISE_ADAGRAD,
            Optimizer::Adagrad => sys::TOKEMB_OPTIM_ADAGRAD,
            Optimizer::SparseAdam => sys::TOKEMB_OPTIM_SPARSE_ADAM,
        }
    }
}

/// Nearest-neighbour metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    Dot,
}
impl Metric {
    pub fn code(self) -> i32 {
        match self {
            Metric::Cosine => sys::TOKEMB_METRIC_COSINE,
            Metric::Dot => sys::TOKEMB_METRIC_DOT,
        }
    }
}

fn check_offsets(offsets: &[i64]) -> Result<usize> {
    if offsets.is_empty() {
        return Err(Error::arg("bags: offsets needs n_bags + 1 >= 1 entries (CSR)".into()));
    }
    Ok(offsets.len() - 1)
}

fn path_c(p: &Path) -> Result<CString> {
    let s = p.to_str().ok_or_else(|| Error::arg(format!("path {p:?} is not valid UTF-8")))?;
    CString::new(s).map_err(|_| Error::arg(format!("path {s:?} contains a NUL byte")))
}

fn adopt(out: *mut sys::tokemb_table, readonly: bool) -> Table<'static> {
    Table { raw: NonNull::new(out).expect("libtokemb returned OK with a NULL handle"), readonly, owned: true, _borrow: PhantomData }
}

impl<'a> Table<'a> {
    fn rows_usize(&self) -> usize {
        self.rows() as usize
    }
    fn table_len(&self) -> Result<usize> {
        mul("grad_table", self.rows_usize(), self.dim() as usize)
    }

    // ---- gradients --------------------------------------------------------------------------------

    /// grad_table[rows*dim] += scatter of grad_out[ids.len()*dim] (padding and scale_grad_by_freq
    /// honoured; into a zeroed buffer equal to torch's embedding_dense_backward bit for bit).
    pub fn grad_accumulate(&self, ids: &[i64], grad_out: &[f32], grad_table: &mut [f32]) -> Result<()> {
        self.check_out("grad_accumulate: grad_out", ids.len(), grad_out)?;
        want_len("grad_accumulate: grad_table", grad_table.len(), self.table_len()?)?;
        // SAFETY: lengths checked; reads only shape and parameters of the table.
        check(unsafe {
            sys::tokemb_grad_accumulate(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), ptr_or_null(grad_out), grad_table.as_mut_ptr())
        })
    }
    /// grad_accumulate with int32 ids.
    pub fn grad_accumulate_i32(&self, ids: &[i32], grad_out: &[f32], grad_table: &mut [f32]) -> Result<()> {
        self.check_out("grad_accumulate_i32: grad_out", ids.len(), grad_out)?;
        want_len("grad_accumulate_i32: grad_table", grad_table.len(), self.table_len()?)?;
        // SAFETY: as grad_accumulate.
        check(unsafe {
            sys::tokemb_grad_accumulate_i32(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), ptr_or_null(grad_out), grad_table.as_mut_ptr())
        })
    }
    /// grad_table += onehot(ids)^T x grad_out through sgemm.
    pub fn lookup_onehot_backward(&self, ids: &[i64], grad_out: &[f32], grad_table: &mut [f32]) -> Result<()> {
        self.check_out("lookup_onehot_backward: grad_out", ids.len(), grad_out)?;
        want_len("lookup_onehot_backward: grad_table", grad_table.len(), self.table_len()?)?;
        // SAFETY: as grad_accumulate.
        check(unsafe {
            sys::tokemb_lookup_onehot_backward(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), ptr_or_null(grad_out),
                                               grad_table.as_mut_ptr())
        })
    }
    /// The coalesced gradient: (ascending distinct non-padding ids, their summed rows).
    pub fn grad_coalesce(&self, ids: &[i64], grad_out: &[f32]) -> Result<(Vec<i64>, Vec<f32>)> {
        self.check_out("grad_coalesce: grad_out", ids.len(), grad_out)?;
        let d = self.dim() as usize;
        let mut uids = vec![0i64; ids.len().max(1)];
        let mut rows = vec![0f32; mul("grad_coalesce", ids.len().max(1), d)?];
        let mut nu = 0usize;
        // SAFETY: capacities n and n*dim as documented.
        check(unsafe {
            sys::tokemb_grad_coalesce(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), ptr_or_null(grad_out), uids.as_mut_ptr(),
                                      rows.as_mut_ptr(), &mut nu)
        })?;
        uids.truncate(nu);
        rows.truncate(nu * d);
        Ok((uids, rows))
    }
    /// grad_coalesce with int32 ids.
    pub fn grad_coalesce_i32(&self, ids: &[i32], grad_out: &[f32]) -> Result<(Vec<i64>, Vec<f32>)> {
        self.check_out("grad_coalesce_i32: grad_out", ids.len(), grad_out)?;
        let d = self.dim() as usize;
        let mut uids = vec![0i64; ids.len().max(1)];
        let mut rows = vec![0f32; mul("grad_coalesce_i32", ids.len().max(1), d)?];
        let mut nu = 0usize;
        // SAFETY: as grad_coalesce.
        check(unsafe {
            sys::tokemb_grad_coalesce_i32(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), ptr_or_null(grad_out), uids.as_mut_ptr(),
                                          rows.as_mut_ptr(), &mut nu)
        })?;
        uids.truncate(nu);
        rows.truncate(nu * d);
        Ok((uids, rows))
    }

    // ---- bags ---------------------------------------------------------------------------------------

    fn bag_checks(&self, what: &str, ids_len: usize, offsets: &[i64], psw: Option<&[f32]>, out_len: usize) -> Result<usize> {
        let nb = check_offsets(offsets)?;
        if let Some(w) = psw {
            want_len(&format!("{what}: per_sample_weights"), w.len(), ids_len)?;
        }
        want_len(&format!("{what}: out"), out_len, mul(what, nb, self.dim() as usize)?)?;
        Ok(nb)
    }
    /// EmbeddingBag forward: out[n_bags*dim], offsets CSR (n_bags + 1 entries). Refuses with max_norm set
    /// (see lookup_bags_mut).
    pub fn lookup_bags(&self, ids: &[i64], offsets: &[i64], mode: BagMode, psw: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
        let nb = self.bag_checks("lookup_bags", ids.len(), offsets, psw, out.len())?;
        let t = self.reader("lookup_bags")?;
        // SAFETY: lengths checked; read-only without max_norm.
        check(unsafe {
            sys::tokemb_lookup_bags(t, ptr_or_null(ids), ids.len(), offsets.as_ptr(), nb, mode.code(), opt_ptr(psw), mut_ptr_or_null(out))
        })
    }
    /// lookup_bags with int32 ids.
    pub fn lookup_bags_i32(&self, ids: &[i32], offsets: &[i64], mode: BagMode, psw: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
        let nb = self.bag_checks("lookup_bags_i32", ids.len(), offsets, psw, out.len())?;
        let t = self.reader("lookup_bags_i32")?;
        // SAFETY: as lookup_bags.
        check(unsafe {
            sys::tokemb_lookup_bags_i32(t, ptr_or_null(ids), ids.len(), offsets.as_ptr(), nb, mode.code(), opt_ptr(psw),
                                        mut_ptr_or_null(out))
        })
    }
    /// lookup_bags applying max_norm renormalisation in place.
    pub fn lookup_bags_mut(&mut self, ids: &[i64], offsets: &[i64], mode: BagMode, psw: Option<&[f32]>, out: &mut [f32]) -> Result<()> {
        let nb = self.bag_checks("lookup_bags_mut", ids.len(), offsets, psw, out.len())?;
        // SAFETY: lengths checked; exclusive access.
        check(unsafe {
            sys::tokemb_lookup_bags(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), offsets.as_ptr(), nb, mode.code(), opt_ptr(psw),
                                    mut_ptr_or_null(out))
        })
    }
    /// Backward of lookup_bags: grad_table += ..., grad_psw (SUM with weights) overwritten.
    #[allow(clippy::too_many_arguments)]
    pub fn lookup_bags_backward(&self, ids: &[i64], offsets: &[i64], mode: BagMode, psw: Option<&[f32]>, grad_out: &[f32],
                                grad_table: &mut [f32], grad_psw: Option<&mut [f32]>) -> Result<()> {
        let nb = self.bag_checks("lookup_bags_backward", ids.len(), offsets, psw, grad_out.len())?;
        want_len("lookup_bags_backward: grad_table", grad_table.len(), self.table_len()?)?;
        if let Some(g) = &grad_psw {
            want_len("lookup_bags_backward: grad_per_sample_weights", g.len(), ids.len())?;
        }
        // SAFETY: lengths checked; read-only on the table.
        check(unsafe {
            sys::tokemb_lookup_bags_backward(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), offsets.as_ptr(), nb, mode.code(),
                                             opt_ptr(psw), ptr_or_null(grad_out), grad_table.as_mut_ptr(), opt_mut(grad_psw))
        })
    }
    /// lookup_bags_backward with int32 ids.
    #[allow(clippy::too_many_arguments)]
    pub fn lookup_bags_backward_i32(&self, ids: &[i32], offsets: &[i64], mode: BagMode, psw: Option<&[f32]>, grad_out: &[f32],
                                    grad_table: &mut [f32], grad_psw: Option<&mut [f32]>) -> Result<()> {
        let nb = self.bag_checks("lookup_bags_backward_i32", ids.len(), offsets, psw, grad_out.len())?;
        want_len("lookup_bags_backward_i32: grad_table", grad_table.len(), self.table_len()?)?;
        if let Some(g) = &grad_psw {
            want_len("lookup_bags_backward_i32: grad_per_sample_weights", g.len(), ids.len())?;
        }
        // SAFETY: as lookup_bags_backward.
        check(unsafe {
            sys::tokemb_lookup_bags_backward_i32(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), offsets.as_ptr(), nb, mode.code(),
                                                 opt_ptr(psw), ptr_or_null(grad_out), grad_table.as_mut_ptr(), opt_mut(grad_psw))
        })
    }

    // ---- optimizers -----------------------------------------------------------------------------------

    /// Selects the optimizer (fresh state, default hyper-parameters).
    pub fn optim_select(&mut self, kind: Optimizer) -> Result<()> {
        // SAFETY: exclusive access.
        check(unsafe { sys::tokemb_optim_select(self.raw.as_ptr(), kind.code()) })
    }
    /// Sets a TOKEMB_OPTIM_* hyper-parameter.
    pub fn optim_set(&mut self, param: i32, value: f64) -> Result<()> {
        // SAFETY: exclusive access.
        check(unsafe { sys::tokemb_optim_set_param_f64(self.raw.as_ptr(), param, value) })
    }
    pub fn optim_get(&self, param: i32) -> Result<f64> {
        let mut v = 0f64;
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_optim_get_param_f64(self.raw.as_ptr(), param, &mut v) })?;
        Ok(v)
    }
    /// Steps since optim_select, None without an optimizer.
    pub fn optim_step_count(&self) -> Option<i64> {
        // SAFETY: valid handle.
        let s = unsafe { sys::tokemb_optim_step_count(self.raw.as_ptr()) };
        (s >= 0).then_some(s)
    }
    /// One fused step from the lookup's output gradient.
    pub fn optim_step(&mut self, ids: &[i64], grad_out: &[f32]) -> Result<()> {
        self.check_out("optim_step: grad_out", ids.len(), grad_out)?;
        // SAFETY: lengths checked; exclusive.
        check(unsafe { sys::tokemb_optim_step(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), ptr_or_null(grad_out)) })
    }
    pub fn optim_step_i32(&mut self, ids: &[i32], grad_out: &[f32]) -> Result<()> {
        self.check_out("optim_step_i32: grad_out", ids.len(), grad_out)?;
        // SAFETY: lengths checked; exclusive.
        check(unsafe { sys::tokemb_optim_step_i32(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), ptr_or_null(grad_out)) })
    }
    /// One fused step from a coalesced gradient (strictly increasing ids).
    pub fn optim_step_coalesced(&mut self, unique_ids: &[i64], rows: &[f32]) -> Result<()> {
        self.check_out("optim_step_coalesced: rows", unique_ids.len(), rows)?;
        // SAFETY: lengths checked; exclusive.
        check(unsafe {
            sys::tokemb_optim_step_coalesced(self.raw.as_ptr(), ptr_or_null(unique_ids), unique_ids.len(), ptr_or_null(rows))
        })
    }

    // ---- tied output head ------------------------------------------------------------------------------

    fn hidden_rows(&self, what: &str, hidden: &[f32]) -> Result<usize> {
        let d = self.dim() as usize;
        if hidden.len() % d != 0 {
            return Err(Error::arg(format!("{what}: hidden has {} elements, not a multiple of dim {d}", hidden.len())));
        }
        Ok(hidden.len() / d)
    }
    /// logits[n*rows] = hidden[n*dim] x W^T.
    pub fn logits(&self, hidden: &[f32], logits: &mut [f32]) -> Result<()> {
        let n = self.hidden_rows("logits", hidden)?;
        want_len("logits: logits", logits.len(), mul("logits", n, self.rows_usize())?)?;
        // SAFETY: lengths checked; read-only.
        check(unsafe { sys::tokemb_logits(self.raw.as_ptr(), ptr_or_null(hidden), n, mut_ptr_or_null(logits)) })
    }
    /// grad_hidden = grad_logits x W (overwritten), grad_table += grad_logits^T x hidden (each optional).
    pub fn logits_backward(&self, hidden: &[f32], grad_logits: &[f32], grad_hidden: Option<&mut [f32]>,
                           grad_table: Option<&mut [f32]>) -> Result<()> {
        let n = self.hidden_rows("logits_backward", hidden)?;
        want_len("logits_backward: grad_logits", grad_logits.len(), mul("logits_backward", n, self.rows_usize())?)?;
        if let Some(g) = &grad_hidden {
            want_len("logits_backward: grad_hidden", g.len(), hidden.len())?;
        }
        if let Some(g) = &grad_table {
            want_len("logits_backward: grad_table", g.len(), self.table_len()?)?;
        }
        // SAFETY: lengths checked; read-only on the table.
        check(unsafe {
            sys::tokemb_logits_backward(self.raw.as_ptr(), ptr_or_null(hidden), n, ptr_or_null(grad_logits), opt_mut(grad_hidden),
                                        opt_mut(grad_table))
        })
    }

    // ---- conversion, files, neighbours -------------------------------------------------------------------

    /// A new table holding this one converted to `dtype` (parameters copied).
    pub fn convert(&self, dtype: Dtype) -> Result<Table<'static>> {
        let mut out = std::ptr::null_mut();
        // SAFETY: concurrent-reader call, valid out-pointer.
        check(unsafe { sys::tokemb_table_convert(self.raw.as_ptr(), dtype.code(), &mut out) })?;
        Ok(adopt(out, false))
    }
    /// Atomic .npy save (F32/F16).
    pub fn save_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        let p = path_c(path.as_ref())?;
        // SAFETY: NUL-terminated path.
        check(unsafe { sys::tokemb_npy_save(self.raw.as_ptr(), p.as_ptr()) })
    }
    /// Top-k rows per query vector (queries n*dim): (ids, scores), each n*k, best first.
    pub fn nearest(&self, queries: &[f32], k: usize, metric: Metric, exclude_ids: Option<&[i64]>) -> Result<(Vec<i64>, Vec<f32>)> {
        let n = self.hidden_rows("nearest", queries)?;
        if let Some(e) = exclude_ids {
            want_len("nearest: exclude_ids", e.len(), n)?;
        }
        let mut ids = vec![0i64; mul("nearest", n, k)?];
        let mut sc = vec![0f32; n * k];
        // SAFETY: outputs hold n*k entries; read-only.
        check(unsafe {
            sys::tokemb_nearest(self.raw.as_ptr(), ptr_or_null(queries), n, k, metric.code(), opt_ptr(exclude_ids),
                                mut_ptr_or_null(&mut ids), mut_ptr_or_null(&mut sc))
        })?;
        Ok((ids, sc))
    }
    /// Top-k rows for table rows used as queries (exclude_self: leave the row out of its own results).
    pub fn nearest_ids(&self, ids: &[i64], k: usize, metric: Metric, exclude_self: bool) -> Result<(Vec<i64>, Vec<f32>)> {
        let mut oi = vec![0i64; mul("nearest_ids", ids.len(), k)?];
        let mut sc = vec![0f32; ids.len() * k];
        // SAFETY: outputs hold n*k entries; read-only.
        check(unsafe {
            sys::tokemb_nearest_ids(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), k, metric.code(), exclude_self as i32,
                                    mut_ptr_or_null(&mut oi), mut_ptr_or_null(&mut sc))
        })?;
        Ok((oi, sc))
    }
}

impl Table<'static> {
    /// A table copied from a 2-D .npy file.
    pub fn load_npy(path: impl AsRef<Path>) -> Result<Table<'static>> {
        let p = path_c(path.as_ref())?;
        let mut out = std::ptr::null_mut();
        // SAFETY: valid path and out-pointer.
        check(unsafe { sys::tokemb_npy_load(p.as_ptr(), &mut out) })?;
        Ok(adopt(out, false))
    }
    /// A read-only zero-copy mapping of a .npy file (the table owns the mapping).
    pub fn mmap_npy(path: impl AsRef<Path>) -> Result<Table<'static>> {
        let p = path_c(path.as_ref())?;
        let mut out = std::ptr::null_mut();
        // SAFETY: valid path and out-pointer.
        check(unsafe { sys::tokemb_npy_mmap(p.as_ptr(), &mut out) })?;
        Ok(adopt(out, true))
    }
    /// Tensor `name` (None: the only one) of a .safetensors file, copied (or mapped with mmap = true).
    pub fn load_safetensors(path: impl AsRef<Path>, name: Option<&str>, mmap: bool) -> Result<Table<'static>> {
        let p = path_c(path.as_ref())?;
        let n = name.map(CString::new).transpose().map_err(|_| Error::arg("tensor name contains a NUL byte".into()))?;
        let np = n.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        let mut out = std::ptr::null_mut();
        // SAFETY: valid strings and out-pointer.
        check(unsafe {
            if mmap {
                sys::tokemb_safetensors_mmap(p.as_ptr(), np, &mut out)
            } else {
                sys::tokemb_safetensors_load(p.as_ptr(), np, &mut out)
            }
        })?;
        Ok(adopt(out, mmap))
    }
}

/// Tensor names of a .safetensors file, in header order.
pub fn safetensors_names(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let p = path_c(path.as_ref())?;
    let (mut n, mut bytes) = (0usize, 0usize);
    // SAFETY: sizing call with a NULL buffer.
    check(unsafe { sys::tokemb_safetensors_names(p.as_ptr(), std::ptr::null_mut(), 0, &mut n, &mut bytes) })?;
    let mut buf = vec![0u8; bytes.max(1)];
    // SAFETY: buf holds `bytes` bytes.
    check(unsafe { sys::tokemb_safetensors_names(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len(), &mut n, &mut bytes) })?;
    Ok(buf[..bytes].split(|b| *b == 0).take(n).map(|w| String::from_utf8_lossy(w).into_owned()).collect())
}

/// Atomic save of named tables as one .safetensors file.
pub fn save_safetensors(tensors: &[(&str, &Table<'_>)], path: impl AsRef<Path>) -> Result<()> {
    let p = path_c(path.as_ref())?;
    let names: Vec<CString> = tensors
        .iter()
        .map(|(n, _)| CString::new(*n).map_err(|_| Error::arg(format!("tensor name {n:?} contains a NUL byte"))))
        .collect::<Result<_>>()?;
    let name_ptrs: Vec<*const std::os::raw::c_char> = names.iter().map(|c| c.as_ptr()).collect();
    let tabs: Vec<*const sys::tokemb_table> = tensors.iter().map(|(_, t)| t.raw.as_ptr() as *const _).collect();
    // SAFETY: arrays of n valid pointers.
    check(unsafe { sys::tokemb_safetensors_save(ptr_or_null(&tabs), ptr_or_null(&name_ptrs), tabs.len(), p.as_ptr()) })
}

// ------------------------------------------------------------------------------------------------
// Vocabulary and word vectors
// ------------------------------------------------------------------------------------------------

/// Words <-> ids. `Send + Sync` by the same reasoning as `Table`: size/find/word are documented
/// thread-safe readers; `add` takes `&mut self`.
pub struct Vocab {
    raw: NonNull<sys::tokemb_vocab>,
}
// SAFETY: no thread affinity; readers are thread-safe, writers need &mut.
unsafe impl Send for Vocab {}
// SAFETY: see above.
unsafe impl Sync for Vocab {}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocab").field("len", &self.len()).finish()
    }
}

impl std::fmt::Debug for PosEnc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PosEnc").field("dim", &self.dim()).finish()
    }
}

impl Drop for Vocab {
    fn drop(&mut self) {
        // SAFETY: owned handle, freed once.
        unsafe { sys::tokemb_vocab_free(self.raw.as_ptr()) }
    }
}

impl Vocab {
    pub fn new() -> Result<Vocab> {
        let mut out = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_vocab_create(&mut out) })?;
        Ok(Vocab { raw: NonNull::new(out).expect("NULL vocab") })
    }
    pub fn len(&self) -> usize {
        // SAFETY: valid handle.
        unsafe { sys::tokemb_vocab_size(self.raw.as_ptr()) }.max(0) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends a word; returns its id.
    pub fn add(&mut self, word: &str) -> Result<i64> {
        let mut id = 0i64;
        // SAFETY: word bytes with explicit length.
        check(unsafe { sys::tokemb_vocab_add(self.raw.as_ptr(), word.as_ptr().cast(), word.len(), &mut id) })?;
        Ok(id)
    }
    pub fn find(&self, word: &str) -> Option<i64> {
        // SAFETY: word bytes with explicit length.
        let i = unsafe { sys::tokemb_vocab_find(self.raw.as_ptr(), word.as_ptr().cast(), word.len()) };
        (i >= 0).then_some(i)
    }
    pub fn word(&self, id: i64) -> Option<String> {
        let mut len = 0usize;
        // SAFETY: returns NULL or a pointer to len bytes owned by the vocabulary (valid while &self).
        let p = unsafe { sys::tokemb_vocab_word(self.raw.as_ptr(), id, &mut len) };
        if p.is_null() {
            return None;
        }
        // SAFETY: p points to len bytes.
        let b = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
        Some(String::from_utf8_lossy(b).into_owned())
    }
}

/// Word-vector file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorsFormat {
    Word2VecBinary,
    Word2VecText,
    Glove,
}
impl VectorsFormat {
    pub fn code(self) -> i32 {
        match self {
            VectorsFormat::Word2VecBinary => sys::TOKEMB_VECTORS_WORD2VEC_BINARY,
            VectorsFormat::Word2VecText => sys::TOKEMB_VECTORS_WORD2VEC_TEXT,
            VectorsFormat::Glove => sys::TOKEMB_VECTORS_GLOVE,
        }
    }
}

unsafe extern "C" fn progress_tramp(user: *mut c_void, done: u64, total: u64) -> i32 {
    // SAFETY: user is the &mut &mut dyn FnMut passed by load_vectors for the duration of the call.
    let f = unsafe { &mut *(user as *mut &mut dyn FnMut(u64, u64) -> bool) };
    // A panic must not unwind into C: treat it as a cancellation.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(done, total))) {
        Ok(true) => 1,
        Ok(false) => 0,
        Err(_) => 1,
    }
}

/// Loads word vectors and their vocabulary. `progress(bytes_done, bytes_total)` returning true cancels
/// (Err with code TOKEMB_CANCELLED).
pub fn load_vectors(path: impl AsRef<Path>, format: VectorsFormat, progress: Option<&mut dyn FnMut(u64, u64) -> bool>)
                    -> Result<(Table<'static>, Vocab)> {
    let p = path_c(path.as_ref())?;
    let (mut t, mut v) = (std::ptr::null_mut(), std::ptr::null_mut());
    let st = match progress {
        Some(f) => {
            let mut f: &mut dyn FnMut(u64, u64) -> bool = f;
            let user = &mut f as *mut &mut dyn FnMut(u64, u64) -> bool as *mut c_void;
            // SAFETY: the trampoline gets a pointer valid for the whole call.
            unsafe { sys::tokemb_vectors_load(p.as_ptr(), format.code(), Some(progress_tramp), user, &mut t, &mut v) }
        }
        // SAFETY: valid path and out-pointers.
        None => unsafe { sys::tokemb_vectors_load(p.as_ptr(), format.code(), None, std::ptr::null_mut(), &mut t, &mut v) },
    };
    check(st)?;
    Ok((adopt(t, false), Vocab { raw: NonNull::new(v).expect("NULL vocab") }))
}

/// Atomic save of table rows with their words.
pub fn save_vectors(table: &Table<'_>, vocab: &Vocab, path: impl AsRef<Path>, format: VectorsFormat) -> Result<()> {
    let p = path_c(path.as_ref())?;
    // SAFETY: valid handles and path.
    check(unsafe { sys::tokemb_vectors_save(table.raw.as_ptr(), vocab.raw.as_ptr(), p.as_ptr(), format.code()) })
}

// ------------------------------------------------------------------------------------------------
// Positional encoders
// ------------------------------------------------------------------------------------------------

/// Sinusoidal layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinusoidalLayout {
    Interleaved,
    Concat,
    ConcatT2t,
}
/// RoPE pairings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    Neox,
    Gptj,
}

/// A positional encoder (any family), freed on Drop. The learned parameters of the learned, T5 and Shaw
/// families are a [`Table`] owned by the encoder ([`PosEnc::table`] / [`PosEnc::table_mut`]).
/// `Send + Sync`: the encode/apply/bias/buckets/embed functions are documented as safe for concurrent
/// use; setters and table writes take `&mut self`.
pub struct PosEnc {
    raw: NonNull<sys::tokemb_posenc>,
    table: Option<Table<'static>>, // not owned (owned = false): freed with the encoder
    rotary_dim: usize,
}
// SAFETY: see the type documentation.
unsafe impl Send for PosEnc {}
// SAFETY: see the type documentation.
unsafe impl Sync for PosEnc {}

impl Drop for PosEnc {
    fn drop(&mut self) {
        // SAFETY: owned handle, freed once; the borrowed table has owned = false.
        unsafe { sys::tokemb_posenc_free(self.raw.as_ptr()) }
    }
}

impl PosEnc {
    fn adopt(out: *mut sys::tokemb_posenc, rotary_dim: usize) -> PosEnc {
        let raw = NonNull::new(out).expect("NULL posenc");
        // SAFETY: valid handle.
        let t = unsafe { sys::tokemb_posenc_table(raw.as_ptr()) };
        let table = NonNull::new(t).map(|raw| Table { raw, readonly: false, owned: false, _borrow: PhantomData });
        PosEnc { raw, table, rotary_dim }
    }
    pub fn sinusoidal(dim: i64, base: f64, layout: SinusoidalLayout) -> Result<PosEnc> {
        let l = match layout {
            SinusoidalLayout::Interleaved => sys::TOKEMB_INTERLEAVED,
            SinusoidalLayout::Concat => sys::TOKEMB_CONCAT,
            SinusoidalLayout::ConcatT2t => sys::TOKEMB_CONCAT_T2T,
        };
        let mut out = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_posenc_create_sinusoidal(dim, base, l, &mut out) })?;
        Ok(PosEnc::adopt(out, 0))
    }
    pub fn learned(max_len: i64, dim: i64) -> Result<PosEnc> {
        let mut out = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_posenc_create_learned(max_len, dim, &mut out) })?;
        Ok(PosEnc::adopt(out, 0))
    }
    pub fn rope(head_dim: i64, rotary_dim: i64, base: f64, layout: RopeLayout) -> Result<PosEnc> {
        let l = match layout {
            RopeLayout::Neox => sys::TOKEMB_NEOX,
            RopeLayout::Gptj => sys::TOKEMB_GPTJ,
        };
        let mut out = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_posenc_create_rope(head_dim, rotary_dim, base, l, &mut out) })?;
        Ok(PosEnc::adopt(out, rotary_dim as usize))
    }
    pub fn alibi(n_heads: i64) -> Result<PosEnc> {
        let mut out = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_posenc_create_alibi(n_heads, &mut out) })?;
        Ok(PosEnc::adopt(out, 0))
    }
    pub fn t5(n_heads: i64, num_buckets: i64, max_distance: i64, bidirectional: bool) -> Result<PosEnc> {
        let mut out = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_posenc_create_t5(n_heads, num_buckets, max_distance, bidirectional as i32, &mut out) })?;
        Ok(PosEnc::adopt(out, 0))
    }
    pub fn shaw(max_distance: i64, dim: i64) -> Result<PosEnc> {
        let mut out = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_posenc_create_shaw(max_distance, dim, &mut out) })?;
        Ok(PosEnc::adopt(out, 0))
    }

    pub fn as_ptr(&self) -> *mut sys::tokemb_posenc {
        self.raw.as_ptr()
    }
    /// Output row length (sinusoidal/learned/Shaw), head_dim (RoPE) or head count (ALiBi/T5).
    pub fn dim(&self) -> usize {
        // SAFETY: valid handle.
        unsafe { sys::tokemb_posenc_dim(self.raw.as_ptr()) }.max(0) as usize
    }
    /// The encoder's learned table (learned, T5, Shaw).
    pub fn table(&self) -> Option<&Table<'static>> {
        self.table.as_ref()
    }
    pub fn table_mut(&mut self) -> Option<&mut Table<'static>> {
        self.table.as_mut()
    }
    pub fn set_param(&mut self, param: i32, value: i64) -> Result<()> {
        // SAFETY: exclusive access.
        check(unsafe { sys::tokemb_posenc_set_param(self.raw.as_ptr(), param, value) })
    }
    pub fn set_param_f64(&mut self, param: i32, value: f64) -> Result<()> {
        // SAFETY: exclusive access.
        check(unsafe { sys::tokemb_posenc_set_param_f64(self.raw.as_ptr(), param, value) })
    }
    pub fn get_param(&self, param: i32) -> Result<i64> {
        let mut v = 0i64;
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_posenc_get_param(self.raw.as_ptr(), param, &mut v) })?;
        Ok(v)
    }
    pub fn get_param_f64(&self, param: i32) -> Result<f64> {
        let mut v = 0f64;
        // SAFETY: valid out-pointer.
        check(unsafe { sys::tokemb_posenc_get_param_f64(self.raw.as_ptr(), param, &mut v) })?;
        Ok(v)
    }

    /// Absolute encodings out[positions.len()*dim] (sinusoidal, learned).
    pub fn encode(&self, positions: &[i64], out: &mut [f32]) -> Result<()> {
        want_len("encode: out", out.len(), mul("encode", positions.len(), self.dim())?)?;
        // SAFETY: lengths checked.
        check(unsafe { sys::tokemb_posenc_encode(self.raw.as_ptr(), ptr_or_null(positions), positions.len(), mut_ptr_or_null(out)) })
    }

    fn rope_len(&self, what: &str, x: &[f32], n_heads: usize, positions: &[i64]) -> Result<()> {
        let per_token = mul(what, n_heads, self.dim())?;
        want_len(what, x.len(), mul(what, positions.len(), per_token)?)
    }
    /// Rotates x[n_tokens][n_heads][head_dim] in place (n_tokens = positions.len()).
    pub fn rope_apply(&self, x: &mut [f32], n_heads: usize, positions: &[i64]) -> Result<()> {
        self.rope_len("rope_apply: x", x, n_heads, positions)?;
        // SAFETY: lengths checked.
        check(unsafe { sys::tokemb_rope_apply(self.raw.as_ptr(), mut_ptr_or_null(x), positions.len(), n_heads, ptr_or_null(positions)) })
    }
    /// The backward of rope_apply (rotation by -theta), in place.
    pub fn rope_apply_backward(&self, grad: &mut [f32], n_heads: usize, positions: &[i64]) -> Result<()> {
        self.rope_len("rope_apply_backward: grad", grad, n_heads, positions)?;
        // SAFETY: lengths checked.
        check(unsafe {
            sys::tokemb_rope_apply_backward(self.raw.as_ptr(), mut_ptr_or_null(grad), positions.len(), n_heads, ptr_or_null(positions))
        })
    }
    /// Strided RoPE (e.g. [batch][heads][seq][head_dim]); strides in elements; positions [batch*seq].
    #[allow(clippy::too_many_arguments)]
    pub fn rope_apply_strided(&self, x: &mut [f32], batch: usize, n_heads: usize, seq: usize, strides: [usize; 3],
                              positions: &[i64], backward: bool) -> Result<()> {
        want_len("rope_apply_strided: positions", positions.len(), mul("rope_apply_strided", batch, seq)?)?;
        if batch > 0 && n_heads > 0 && seq > 0 {
            let last = mul("rope", batch - 1, strides[0])?
                .checked_add(mul("rope", n_heads - 1, strides[1])?)
                .and_then(|v| v.checked_add((seq - 1) * strides[2]))
                .and_then(|v| v.checked_add(self.dim()))
                .ok_or_else(|| Error::arg("rope_apply_strided: extent overflows".into()))?;
            if x.len() < last {
                return Err(Error::arg(format!("rope_apply_strided: x has {} elements, the strides reach {last}", x.len())));
            }
        }
        // SAFETY: every addressed element lies inside x (checked above).
        check(unsafe {
            sys::tokemb_posenc_rope_apply_strided(self.raw.as_ptr(), mut_ptr_or_null(x), batch, n_heads, seq, strides[0] as i64,
                                           strides[1] as i64, strides[2] as i64, ptr_or_null(positions), backward as i32)
        })
    }
    /// (inv_freq [rotary_dim/2], attention factor) of the current RoPE configuration.
    pub fn rope_inv_freq(&self) -> Result<(Vec<f64>, f64)> {
        let mut f = vec![0f64; self.rotary_dim / 2];
        let mut a = 0f64;
        // SAFETY: f holds rotary_dim/2 values.
        check(unsafe { sys::tokemb_posenc_rope_inv_freq(self.raw.as_ptr(), mut_ptr_or_null(&mut f), f.len(), &mut a) })?;
        Ok((f, a))
    }
    /// (cos, sin), each [positions.len()][rotary_dim/2].
    pub fn rope_cos_sin(&self, positions: &[i64]) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = mul("rope_cos_sin", positions.len(), self.rotary_dim / 2)?;
        let (mut c, mut s) = (vec![0f32; n], vec![0f32; n]);
        // SAFETY: outputs sized n*(rotary_dim/2).
        check(unsafe {
            sys::tokemb_posenc_rope_cos_sin(self.raw.as_ptr(), ptr_or_null(positions), positions.len(), mut_ptr_or_null(&mut c),
                                     mut_ptr_or_null(&mut s))
        })?;
        Ok((c, s))
    }
    /// LongRoPE short/long factors (rotary_dim/2 each).
    pub fn rope_set_longrope_factors(&mut self, short: &[f64], long: &[f64]) -> Result<()> {
        want_len("longrope: short_factor", short.len(), self.rotary_dim / 2)?;
        want_len("longrope: long_factor", long.len(), self.rotary_dim / 2)?;
        // SAFETY: lengths checked.
        check(unsafe { sys::tokemb_posenc_rope_set_longrope_factors(self.raw.as_ptr(), short.as_ptr(), long.as_ptr(), short.len()) })
    }
    /// ALiBi slopes [n_heads].
    pub fn alibi_slopes(&self) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.dim()];
        // SAFETY: out holds n_heads values.
        check(unsafe { sys::tokemb_posenc_alibi_slopes(self.raw.as_ptr(), mut_ptr_or_null(&mut out)) })?;
        Ok(out)
    }
    /// Attention bias out[n_heads][q_len][k_len] (ALiBi, T5).
    pub fn attn_bias(&self, q_len: usize, k_len: usize, q_offset: i64, out: &mut [f32]) -> Result<()> {
        want_len("attn_bias: out", out.len(), mul("attn_bias", mul("attn_bias", self.dim(), q_len)?, k_len)?)?;
        // SAFETY: lengths checked.
        check(unsafe { sys::tokemb_posenc_attn_bias(self.raw.as_ptr(), q_len, k_len, q_offset, mut_ptr_or_null(out)) })
    }
    /// T5 bias backward: grad_table[num_buckets*n_heads] += scatter of grad_bias[n_heads*q_len*k_len].
    pub fn attn_bias_backward(&self, q_len: usize, k_len: usize, q_offset: i64, grad_bias: &[f32], grad_table: &mut [f32]) -> Result<()> {
        want_len("attn_bias_backward: grad_bias", grad_bias.len(), mul("attn_bias", mul("attn_bias", self.dim(), q_len)?, k_len)?)?;
        let tl = self.table.as_ref().map_or(0, |t| (t.rows() * t.dim()) as usize);
        want_len("attn_bias_backward: grad_table", grad_table.len(), tl)?;
        // SAFETY: lengths checked.
        check(unsafe {
            sys::tokemb_posenc_attn_bias_backward(self.raw.as_ptr(), q_len, k_len, q_offset, ptr_or_null(grad_bias),
                                                  mut_ptr_or_null(grad_table))
        })
    }
    /// Bucket (T5) or clipped relative index (Shaw) matrix out[q_len][k_len].
    pub fn buckets(&self, q_len: usize, k_len: usize, q_offset: i64, out: &mut [i32]) -> Result<()> {
        want_len("buckets: out", out.len(), mul("buckets", q_len, k_len)?)?;
        // SAFETY: lengths checked.
        check(unsafe { sys::tokemb_posenc_buckets(self.raw.as_ptr(), q_len, k_len, q_offset, mut_ptr_or_null(out)) })
    }
    /// Shaw: out[q_len][k_len][dim] = table[index(i, j)].
    pub fn shaw_embed(&self, q_len: usize, k_len: usize, q_offset: i64, out: &mut [f32]) -> Result<()> {
        want_len("shaw_embed: out", out.len(), mul("shaw", mul("shaw", q_len, k_len)?, self.dim())?)?;
        // SAFETY: lengths checked.
        check(unsafe { sys::tokemb_posenc_shaw_embed(self.raw.as_ptr(), q_len, k_len, q_offset, mut_ptr_or_null(out)) })
    }
    /// Shaw backward into grad_table[(2k+1)*dim].
    pub fn shaw_embed_backward(&self, q_len: usize, k_len: usize, q_offset: i64, grad: &[f32], grad_table: &mut [f32]) -> Result<()> {
        want_len("shaw_embed_backward: grad", grad.len(), mul("shaw", mul("shaw", q_len, k_len)?, self.dim())?)?;
        let tl = self.table.as_ref().map_or(0, |t| (t.rows() * t.dim()) as usize);
        want_len("shaw_embed_backward: grad_table", grad_table.len(), tl)?;
        // SAFETY: lengths checked.
        check(unsafe {
            sys::tokemb_posenc_shaw_embed_backward(self.raw.as_ptr(), q_len, k_len, q_offset, ptr_or_null(grad), mut_ptr_or_null(grad_table))
        })
    }
}

/// Fused input embedding out[batch*seq*dim] = scale * tok[ids] + pe(start_pos + s) (pe: sinusoidal,
/// learned or None). Refuses a token table with max_norm set (the call would write into it).
#[allow(clippy::too_many_arguments)]
pub fn embed(tok: &Table<'_>, pe: Option<&PosEnc>, ids: &[i64], batch: usize, seq: usize, start_pos: i64, scale: f32,
             out: &mut [f32]) -> Result<()> {
    want_len("embed: ids", ids.len(), mul("embed", batch, seq)?)?;
    tok.check_out("embed: out", ids.len(), out)?;
    let t = tok.reader("embed")?;
    // SAFETY: lengths checked; read-only without max_norm.
    check(unsafe {
        sys::tokemb_embed(t, pe.map_or(std::ptr::null(), |p| p.raw.as_ptr()), ptr_or_null(ids), batch, seq, start_pos, scale,
                          mut_ptr_or_null(out))
    })
}

/// Backward of [`embed`]: grad_tok[rows*dim] and/or grad_pe (learned table size) accumulate.
#[allow(clippy::too_many_arguments)]
pub fn embed_backward(tok: &Table<'_>, pe: Option<&PosEnc>, ids: &[i64], batch: usize, seq: usize, start_pos: i64, scale: f32,
                      grad_out: &[f32], grad_tok: Option<&mut [f32]>, grad_pe: Option<&mut [f32]>) -> Result<()> {
    want_len("embed_backward: ids", ids.len(), mul("embed", batch, seq)?)?;
    tok.check_out("embed_backward: grad_out", ids.len(), grad_out)?;
    if let Some(g) = &grad_tok {
        want_len("embed_backward: grad_tok", g.len(), tok.table_len()?)?;
    }
    if let Some(g) = &grad_pe {
        let tl = pe.and_then(|p| p.table()).map_or(0, |t| (t.rows() * t.dim()) as usize);
        want_len("embed_backward: grad_pe", g.len(), tl)?;
    }
    // SAFETY: lengths checked; read-only on tok and pe.
    check(unsafe {
        sys::tokemb_embed_backward(tok.raw.as_ptr(), pe.map_or(std::ptr::null(), |p| p.raw.as_ptr()), ptr_or_null(ids), batch, seq,
                                   start_pos, scale, ptr_or_null(grad_out), opt_mut(grad_tok), opt_mut(grad_pe))
    })
}

