//! Errors crossing the C ABI: a status code plus a thread-local message.
use std::cell::RefCell;
use std::ffi::{c_char, CString};

use npu_runtime::{ErrorKind, RtError};

pub const OK: i32 = 0;
pub const ERR_RUNTIME: i32 = 1;
pub const ERR_OOM: i32 = 2;
pub const ERR_INDEX: i32 = 3;
pub const ERR_VALUE: i32 = 4;
pub const ERR_TYPE: i32 = 5;
pub const ERR_NOT_IMPLEMENTED: i32 = 6;
/// Not an error: the adapter declines these arguments (e.g. a dtype its kernels lack) and
/// the op runs on the CPU fallback instead. Only valid before any output exists.
pub const USE_FALLBACK: i32 = 7;

/// An error with the Python exception class it should become.
#[derive(Debug, Clone)]
pub struct Error {
    pub status: i32,
    pub msg: String,
}

impl Error {
    pub fn runtime(msg: impl Into<String>) -> Self {
        Error { status: ERR_RUNTIME, msg: msg.into() }
    }
    pub fn value(msg: impl Into<String>) -> Self {
        Error { status: ERR_VALUE, msg: msg.into() }
    }
    pub fn type_error(msg: impl Into<String>) -> Self {
        Error { status: ERR_TYPE, msg: msg.into() }
    }
    pub fn not_implemented(msg: impl Into<String>) -> Self {
        Error { status: ERR_NOT_IMPLEMENTED, msg: msg.into() }
    }
    pub fn use_fallback(why: impl Into<String>) -> Self {
        Error { status: USE_FALLBACK, msg: why.into() }
    }
    pub fn index(msg: impl Into<String>) -> Self {
        Error { status: ERR_INDEX, msg: msg.into() }
    }
}

impl From<RtError> for Error {
    fn from(e: RtError) -> Self {
        let status = match e.kind {
            ErrorKind::OutOfMemory => ERR_OOM,
            ErrorKind::InvalidArgument => ERR_VALUE,
            ErrorKind::InvalidDevice | ErrorKind::Kernel => ERR_RUNTIME,
        };
        Error { status, msg: e.msg }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `e` as this thread's last error and returns its status.
pub fn set_error(e: Error) -> i32 {
    let msg = CString::new(e.msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|m| *m.borrow_mut() = msg);
    e.status
}

/// Runs `f` for an `extern "C"` entry: errors and panics become a status, never an unwind.
pub fn ffi_call(f: impl FnOnce() -> Result<()>) -> i32 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => OK,
        Ok(Err(e)) => set_error(e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            set_error(Error::runtime(format!("internal error in torch_npu: {what}")))
        }
    }
}

#[no_mangle]
pub extern "C" fn tnpu_rt_last_error() -> *const c_char {
    LAST_ERROR.with(|m| m.borrow().as_ptr())
}
