//! Safe wrapper of libtokemb: token embedding tables, training entry points, positional encoders
//! ([`PosEnc`]), files, vocabularies and nearest neighbours.
//!
//! * [`Table`] owns (or borrows, for [`Table::wrap`]) a `tokemb_table*` and frees it on `Drop`.
//! * Every fallible call returns [`Result<T>`]; [`Error`] carries the library's status code and the
//!   thread-local `tokemb_last_error()` text read on the same thread right after the failure.
//! * Slices replace pointers: every length is checked in Rust *before* the call (an `Error` with
//!   `TOKEMB_INVALID_ARGUMENT` and a message naming the slice), so the library never reads or writes
//!   past a Rust buffer.
//!
//! # Thread safety (why `Table: Send + Sync`)
//! The library's rules (include/tokemb.h, docs/threading.md): a table may be read by any number of
//! threads at once; calls that modify it need exclusive access; error text is thread-local (no error
//! state lives in a handle); a handle has no thread affinity (it can be freed on any thread). So:
//! * `Send`: a handle may move between threads (no thread-local ownership, `tokemb_table_free` from
//!   any thread is fine). A wrapped table borrows `&'a mut [f32]` / `&'a [f32]`, which are `Send`.
//! * `Sync`: every `&self` method calls only functions documented as safe for concurrent readers
//!   (`rows`, `dim`, `read_rows`, `get_param`, `lookup_onehot`, and [`Table::lookup`] — which refuses
//!   to run when `max_norm` is set, because a renormalising lookup writes into the table). Everything
//!   that writes (setters, init, `write_rows`, renormalising lookups via [`Table::lookup_mut`],
//!   optimizer steps) takes `&mut self`, so the borrow checker provides the exclusive access.
//! * [`set_num_threads`] is process-wide and atomic in the library, so it is a free function.
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::CStr;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

pub use tokemb_sys as sys;

mod more;
pub use more::*;

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

/// The kind of a failure (the library's pinned status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    OutOfRange,
    NoMemory,
    Io,
    Format,
    Unsupported,
    Overflow,
    ReadOnly,
    /// A progress callback cancelled a load.
    Cancelled,
    /// A status this wrapper does not know (a newer library).
    Other(i32),
}

impl ErrorKind {
    pub fn from_code(code: i32) -> ErrorKind {
        match code {
            sys::TOKEMB_INVALID_ARGUMENT => ErrorKind::InvalidArgument,
            sys::TOKEMB_OUT_OF_RANGE => ErrorKind::OutOfRange,
            sys::TOKEMB_NO_MEMORY => ErrorKind::NoMemory,
            sys::TOKEMB_IO => ErrorKind::Io,
            sys::TOKEMB_FORMAT => ErrorKind::Format,
            sys::TOKEMB_UNSUPPORTED => ErrorKind::Unsupported,
            sys::TOKEMB_OVERFLOW => ErrorKind::Overflow,
            sys::TOKEMB_READ_ONLY => ErrorKind::ReadOnly,
            sys::TOKEMB_CANCELLED => ErrorKind::Cancelled,
            c => ErrorKind::Other(c),
        }
    }
}

/// A failed call: the status `code` (negative `TOKEMB_*` value) and the library's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: i32,
    pub message: String,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::from_code(self.code)
    }
    /// An error detected by the wrapper before calling the library (wrong slice length, ...).
    fn arg(message: String) -> Error {
        Error { code: sys::TOKEMB_INVALID_ARGUMENT, message }
    }
    fn from_status(code: i32) -> Error {
        Error { code, message: last_error() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", status_string(self.code), self.code, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn check(status: i32) -> Result<()> {
    if status == sys::TOKEMB_OK {
        Ok(())
    } else {
        Err(Error::from_status(status))
    }
}

fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the library returns NUL-terminated strings (static or thread-local, valid until the next call).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The calling thread's last library error text.
pub fn last_error() -> String {
    // SAFETY: no arguments; returns a valid C string.
    cstr(unsafe { sys::tokemb_last_error() })
}

/// Static text for a status code ("out of range", ...).
pub fn status_string(status: i32) -> String {
    // SAFETY: any value is accepted.
    cstr(unsafe { sys::tokemb_status_string(status) })
}

/// The loaded library's "MAJOR.MINOR.PATCH".
pub fn version_string() -> String {
    // SAFETY: no arguments.
    cstr(unsafe { sys::tokemb_version_string() })
}

/// The loaded library's MAJOR*10000 + MINOR*100 + PATCH.
pub fn version_number() -> u32 {
    // SAFETY: no arguments.
    unsafe { sys::tokemb_version_number() }
}

/// Threads the library's own loops use (0 restores the default). Process-wide; results never depend on it.
pub fn set_num_threads(n: i32) -> Result<()> {
    // SAFETY: plain value.
    check(unsafe { sys::tokemb_set_num_threads(n) })
}

pub fn get_num_threads() -> i32 {
    // SAFETY: no arguments.
    unsafe { sys::tokemb_get_num_threads() }
}

// ------------------------------------------------------------------------------------------------
// Length checks
// ------------------------------------------------------------------------------------------------

fn want_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::arg(format!("{what}: slice has {got} elements, expected {want}")));
    }
    Ok(())
}

fn mul(what: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| Error { code: sys::TOKEMB_OVERFLOW, message: format!("{what}: {a} x {b} overflows") })
}

fn ptr_or_null<T>(s: &[T]) -> *const T {
    if s.is_empty() {
        std::ptr::null()
    } else {
        s.as_ptr()
    }
}

fn mut_ptr_or_null<T>(s: &mut [T]) -> *mut T {
    if s.is_empty() {
        std::ptr::null_mut()
    } else {
        s.as_mut_ptr()
    }
}

// ------------------------------------------------------------------------------------------------
// Tables
// ------------------------------------------------------------------------------------------------

/// Storage dtypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
    Q8Row,
}

impl Dtype {
    pub fn code(self) -> i32 {
        match self {
            Dtype::F32 => sys::TOKEMB_F32,
            Dtype::F16 => sys::TOKEMB_F16,
            Dtype::Bf16 => sys::TOKEMB_BF16,
            Dtype::Q8Row => sys::TOKEMB_Q8_ROW,
        }
    }
    pub fn from_code(c: i32) -> Option<Dtype> {
        match c {
            sys::TOKEMB_F32 => Some(Dtype::F32),
            sys::TOKEMB_F16 => Some(Dtype::F16),
            sys::TOKEMB_BF16 => Some(Dtype::Bf16),
            sys::TOKEMB_Q8_ROW => Some(Dtype::Q8Row),
            _ => None,
        }
    }
}

/// An embedding table: `rows` vectors of `dim` values. `'a` is the lifetime of wrapped memory
/// (`'static` for tables the library owns).
pub struct Table<'a> {
    raw: NonNull<sys::tokemb_table>,
    readonly: bool,
    owned: bool,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: see the crate documentation (thread-safety rules of the library).
unsafe impl Send for Table<'_> {}
// SAFETY: every &self method is a documented concurrent-reader call; writers take &mut self.
unsafe impl Sync for Table<'_> {}

impl Drop for Table<'_> {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: we own the handle; it is freed exactly once.
            unsafe { sys::tokemb_table_free(self.raw.as_ptr()) }
        }
    }
}

impl fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table").field("rows", &self.rows()).field("dim", &self.dim()).field("dtype", &self.dtype()).finish()
    }
}

fn new_handle(out: *mut sys::tokemb_table) -> NonNull<sys::tokemb_table> {
    NonNull::new(out).expect("libtokemb returned OK with a NULL handle")
}

impl Table<'static> {
    /// A zero-filled table owned by the library.
    pub fn new(rows: i64, dim: i64, dtype: Dtype) -> Result<Table<'static>> {
        let mut out = std::ptr::null_mut();
        // SAFETY: out is a valid out-pointer.
        check(unsafe { sys::tokemb_table_create(rows, dim, dtype.code(), &mut out) })?;
        Ok(Table { raw: new_handle(out), readonly: false, owned: true, _borrow: PhantomData })
    }

    /// A new F32 table holding a copy of `data` (`rows` x `dim`, row-major).
    pub fn from_slice(data: &[f32], rows: i64, dim: i64) -> Result<Table<'static>> {
        let mut t = Table::new(rows, dim, Dtype::F32)?;
        t.write_rows(0, data)?;
        Ok(t)
    }
}

fn wrap_len(rows: i64, dim: i64, row_stride: i64) -> Result<usize> {
    if rows < 1 || dim < 1 || row_stride < dim {
        return Err(Error::arg(format!("wrap: rows {rows} and dim {dim} must be >= 1 and row_stride {row_stride} >= dim")));
    }
    let last = mul("wrap", (rows - 1) as usize, row_stride as usize)?;
    last.checked_add(dim as usize).ok_or_else(|| Error::arg("wrap: size overflows".into()))
}

impl<'a> Table<'a> {
    /// Wraps `data` (row r at data[r*row_stride..][..dim]) without copying; the table borrows it mutably.
    pub fn wrap(data: &'a mut [f32], rows: i64, dim: i64, row_stride: i64) -> Result<Table<'a>> {
        let need = wrap_len(rows, dim, row_stride)?;
        if data.len() < need {
            return Err(Error::arg(format!("wrap: slice has {} elements, {rows} rows of stride {row_stride} need {need}", data.len())));
        }
        let mut out = std::ptr::null_mut();
        // SAFETY: the slice covers every element the table can address and outlives the table ('a).
        check(unsafe { sys::tokemb_table_wrap(data.as_mut_ptr().cast(), rows, dim, row_stride, sys::TOKEMB_F32, 0, &mut out) })?;
        Ok(Table { raw: new_handle(out), readonly: false, owned: true, _borrow: PhantomData })
    }

    /// Wraps shared memory read-only (TOKEMB_WRAP_READONLY): every writing call fails with ReadOnly.
    pub fn wrap_readonly(data: &'a [f32], rows: i64, dim: i64, row_stride: i64) -> Result<Table<'a>> {
        let need = wrap_len(rows, dim, row_stride)?;
        if data.len() < need {
            return Err(Error::arg(format!("wrap: slice has {} elements, {rows} rows of stride {row_stride} need {need}", data.len())));
        }
        let mut out = std::ptr::null_mut();
        // SAFETY: READONLY: the library never writes through the pointer (it refuses with READ_ONLY).
        check(unsafe {
            sys::tokemb_table_wrap(data.as_ptr() as *mut std::ffi::c_void, rows, dim, row_stride, sys::TOKEMB_F32,
                                   sys::TOKEMB_WRAP_READONLY, &mut out)
        })?;
        Ok(Table { raw: new_handle(out), readonly: true, owned: true, _borrow: PhantomData })
    }

    /// The raw handle (still owned by this Table).
    pub fn as_ptr(&self) -> *mut sys::tokemb_table {
        self.raw.as_ptr()
    }

    pub fn rows(&self) -> i64 {
        // SAFETY: valid handle.
        unsafe { sys::tokemb_table_rows(self.raw.as_ptr()) }
    }
    pub fn dim(&self) -> i64 {
        // SAFETY: valid handle.
        unsafe { sys::tokemb_table_dim(self.raw.as_ptr()) }
    }
    pub fn row_stride(&self) -> i64 {
        // SAFETY: valid handle.
        unsafe { sys::tokemb_table_row_stride(self.raw.as_ptr()) }
    }
    pub fn dtype(&self) -> Dtype {
        // SAFETY: valid handle.
        Dtype::from_code(unsafe { sys::tokemb_table_dtype(self.raw.as_ptr()) }).expect("unknown dtype")
    }
    fn dim_usize(&self) -> usize {
        self.dim() as usize
    }
    fn storage_len(&self) -> usize {
        ((self.rows() - 1) * self.row_stride() + self.dim()) as usize
    }

    /// The F32 storage (row r at `[r*row_stride..][..dim]`), or None for other dtypes.
    pub fn as_slice(&self) -> Option<&[f32]> {
        // SAFETY: tokemb_table_data takes a non-const pointer but only returns the storage address.
        let p = unsafe { sys::tokemb_table_data(self.raw.as_ptr()) };
        // SAFETY: F32 storage of storage_len() elements, alive as long as &self.
        NonNull::new(p).map(|p| unsafe { std::slice::from_raw_parts(p.as_ptr(), self.storage_len()) })
    }

    /// Mutable F32 storage; None for other dtypes and for read-only wraps.
    pub fn as_mut_slice(&mut self) -> Option<&mut [f32]> {
        if self.readonly {
            return None;
        }
        let len = self.storage_len();
        // SAFETY: as above, and &mut self gives exclusive access.
        let p = unsafe { sys::tokemb_table_data(self.raw.as_ptr()) };
        NonNull::new(p).map(|p| unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), len) })
    }

    /// Copies rows [row0, row0 + out.len()/dim) into `out` as float32.
    pub fn read_rows(&self, row0: i64, out: &mut [f32]) -> Result<()> {
        let d = self.dim_usize();
        if out.is_empty() || out.len() % d != 0 {
            return Err(Error::arg(format!("read_rows: out has {} elements, not a positive multiple of dim {d}", out.len())));
        }
        // SAFETY: out holds n_rows*dim floats.
        check(unsafe { sys::tokemb_table_read_rows(self.raw.as_ptr(), row0, out.len() / d, out.as_mut_ptr()) })
    }

    /// Every row as a Vec (rows*dim float32).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let mut v = vec![0f32; mul("to_vec", self.rows() as usize, self.dim_usize())?];
        self.read_rows(0, &mut v)?;
        Ok(v)
    }

    /// Overwrites rows [row0, row0 + src.len()/dim) from `src`.
    pub fn write_rows(&mut self, row0: i64, src: &[f32]) -> Result<()> {
        let d = self.dim_usize();
        if src.is_empty() || src.len() % d != 0 {
            return Err(Error::arg(format!("write_rows: src has {} elements, not a positive multiple of dim {d}", src.len())));
        }
        // SAFETY: src holds n_rows*dim floats; &mut self is exclusive.
        check(unsafe { sys::tokemb_table_write_rows(self.raw.as_ptr(), row0, src.len() / d, src.as_ptr()) })
    }

    /// Sets an int64 parameter (TOKEMB_TABLE_*).
    pub fn set_param(&mut self, param: i32, value: i64) -> Result<()> {
        // SAFETY: valid handle, exclusive.
        check(unsafe { sys::tokemb_table_set_param(self.raw.as_ptr(), param, value) })
    }
    pub fn set_param_f64(&mut self, param: i32, value: f64) -> Result<()> {
        // SAFETY: valid handle, exclusive.
        check(unsafe { sys::tokemb_table_set_param_f64(self.raw.as_ptr(), param, value) })
    }
    pub fn get_param(&self, param: i32) -> Result<i64> {
        let mut v = 0i64;
        // SAFETY: valid handle and out-pointer.
        check(unsafe { sys::tokemb_table_get_param(self.raw.as_ptr(), param, &mut v) })?;
        Ok(v)
    }
    pub fn get_param_f64(&self, param: i32) -> Result<f64> {
        let mut v = 0f64;
        // SAFETY: valid handle and out-pointer.
        check(unsafe { sys::tokemb_table_get_param_f64(self.raw.as_ptr(), param, &mut v) })?;
        Ok(v)
    }
    /// padding_idx (None clears it); negative values count from the end as in torch.
    pub fn set_padding_idx(&mut self, idx: Option<i64>) -> Result<()> {
        self.set_param(sys::TOKEMB_PADDING_IDX, idx.unwrap_or(sys::TOKEMB_NO_PADDING))
    }
    pub fn padding_idx(&self) -> Option<i64> {
        match self.get_param(sys::TOKEMB_PADDING_IDX) {
            Ok(v) if v != sys::TOKEMB_NO_PADDING => Some(v),
            _ => None,
        }
    }
    /// max_norm (None or <= 0 disables).
    pub fn set_max_norm(&mut self, max_norm: Option<f64>) -> Result<()> {
        self.set_param_f64(sys::TOKEMB_MAX_NORM, max_norm.unwrap_or(0.0))
    }
    pub fn max_norm(&self) -> Option<f64> {
        self.get_param_f64(sys::TOKEMB_MAX_NORM).ok().filter(|v| *v > 0.0)
    }

    /// torch.manual_seed(seed); nn.init.normal_(w, mean, std), bit for bit; padding row zeroed.
    pub fn init_normal(&mut self, seed: u64, mean: f64, std: f64) -> Result<()> {
        // SAFETY: exclusive access.
        check(unsafe { sys::tokemb_table_init_normal(self.raw.as_ptr(), seed, mean, std) })
    }
    /// This table's part of torch.manual_seed(seed); nn.init.normal_(w, mean, std) on a larger
    /// w[global_rows, global_dim]: row l = global row row0 + l * row_step, columns [col0, col0 + dim),
    /// bit for bit, without drawing the whole random stream (MT19937 jump-ahead); own padding row zeroed.
    #[allow(clippy::too_many_arguments)]
    pub fn init_normal_shard(
        &mut self,
        seed: u64,
        mean: f64,
        std: f64,
        global_rows: i64,
        global_dim: i64,
        row0: i64,
        row_step: i64,
        col0: i64,
    ) -> Result<()> {
        // SAFETY: exclusive access; the library checks every range.
        check(unsafe {
            sys::tokemb_table_init_normal_shard(
                self.raw.as_ptr(),
                seed,
                mean,
                std,
                global_rows,
                global_dim,
                row0,
                row_step,
                col0,
            )
        })
    }
    /// torch.manual_seed(seed); nn.init.uniform_(w, lo, hi), bit for bit; padding row zeroed.
    pub fn init_uniform(&mut self, seed: u64, lo: f64, hi: f64) -> Result<()> {
        // SAFETY: exclusive access.
        check(unsafe { sys::tokemb_table_init_uniform(self.raw.as_ptr(), seed, lo, hi) })
    }

    /// The handle for a call the library declares non-const only because max_norm may renormalise:
    /// allowed through &self when max_norm is off.
    fn reader(&self, what: &str) -> Result<*mut sys::tokemb_table> {
        if self.max_norm().is_some() {
            return Err(Error::arg(format!("{what}: max_norm is set, so the call renormalises rows in place; use the _mut variant")));
        }
        Ok(self.raw.as_ptr())
    }

    fn check_out(&self, what: &str, n: usize, out: &[f32]) -> Result<()> {
        want_len(what, out.len(), mul(what, n, self.dim_usize())?)
    }

    /// out[i*dim..][..dim] = row ids[i]. Read-only: refuses (InvalidArgument) when max_norm is set,
    /// since a renormalising lookup writes into the table — use [`Table::lookup_mut`] then.
    pub fn lookup(&self, ids: &[i64], out: &mut [f32]) -> Result<()> {
        self.check_out("lookup: out", ids.len(), out)?;
        if self.max_norm().is_some() {
            return Err(Error::arg("lookup: max_norm is set, so the lookup renormalises rows in place; use lookup_mut".into()));
        }
        // SAFETY: lengths checked; no max_norm means the call only reads the table.
        check(unsafe { sys::tokemb_lookup(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), mut_ptr_or_null(out)) })
    }
    /// lookup with int32 ids.
    pub fn lookup_i32(&self, ids: &[i32], out: &mut [f32]) -> Result<()> {
        self.check_out("lookup_i32: out", ids.len(), out)?;
        if self.max_norm().is_some() {
            return Err(Error::arg("lookup_i32: max_norm is set; use lookup_mut".into()));
        }
        // SAFETY: as lookup.
        check(unsafe { sys::tokemb_lookup_i32(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), mut_ptr_or_null(out)) })
    }
    /// lookup that applies max_norm renormalisation (in place) if set.
    pub fn lookup_mut(&mut self, ids: &[i64], out: &mut [f32]) -> Result<()> {
        self.check_out("lookup_mut: out", ids.len(), out)?;
        // SAFETY: lengths checked; &mut self is exclusive.
        check(unsafe { sys::tokemb_lookup(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), mut_ptr_or_null(out)) })
    }
    /// A Vec-returning lookup.
    pub fn lookup_vec(&self, ids: &[i64]) -> Result<Vec<f32>> {
        let mut out = vec![0f32; mul("lookup_vec", ids.len(), self.dim_usize())?];
        self.lookup(ids, &mut out)?;
        Ok(out)
    }
    /// Row i written at out[i*out_row_stride..][..dim] (out_row_stride >= dim).
    pub fn lookup_strided(&self, ids: &[i64], out: &mut [f32], out_row_stride: usize) -> Result<()> {
        let d = self.dim_usize();
        if out_row_stride < d {
            return Err(Error::arg(format!("lookup_strided: out_row_stride {out_row_stride} < dim {d}")));
        }
        if !ids.is_empty() {
            let need = mul("lookup_strided", ids.len() - 1, out_row_stride)? + d;
            if out.len() < need {
                return Err(Error::arg(format!("lookup_strided: out has {} elements, needs {need}", out.len())));
            }
        }
        if self.max_norm().is_some() {
            return Err(Error::arg("lookup_strided: max_norm is set; use lookup_mut".into()));
        }
        // SAFETY: lengths checked, read-only call.
        check(unsafe {
            sys::tokemb_lookup_strided(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), mut_ptr_or_null(out), out_row_stride as i64)
        })
    }
    /// The same rows through one-hot x W (BLAS sgemm).
    pub fn lookup_onehot(&self, ids: &[i64], out: &mut [f32]) -> Result<()> {
        self.check_out("lookup_onehot: out", ids.len(), out)?;
        // SAFETY: lengths checked; a read-only call.
        check(unsafe { sys::tokemb_lookup_onehot(self.raw.as_ptr(), ptr_or_null(ids), ids.len(), mut_ptr_or_null(out)) })
    }
}
