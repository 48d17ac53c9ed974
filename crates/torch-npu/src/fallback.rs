//! Bookkeeping for the CPU fallback (csrc/fallback.cpp): per-op call counts and the switch
//! that turns the fallback into an error.
use std::collections::BTreeMap;
use std::ffi::{c_char, CStr};
use std::sync::{Mutex, OnceLock};

fn counts() -> &'static Mutex<BTreeMap<String, u64>> {
    static COUNTS: OnceLock<Mutex<BTreeMap<String, u64>>> = OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

/// `TORCH_NPU_FALLBACK_CPU_DISABLE=1`, read at each call so tests can flip it.
pub fn disabled() -> bool {
    std::env::var("TORCH_NPU_FALLBACK_CPU_DISABLE").is_ok_and(|v| v == "1")
}

pub fn snapshot() -> BTreeMap<String, u64> {
    counts().lock().map(|c| c.clone()).unwrap_or_default()
}

pub fn reset() {
    if let Ok(mut c) = counts().lock() {
        c.clear();
    }
}

#[no_mangle]
pub extern "C" fn tnpu_fallback_disabled() -> i32 {
    disabled() as i32
}

/// Counts one call of `op`; returns 1 on its first call since the last reset (warn once).
///
/// # Safety
/// `op` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tnpu_fallback_note(op: *const c_char) -> i32 {
    let name = CStr::from_ptr(op).to_string_lossy().into_owned();
    let Ok(mut c) = counts().lock() else { return 0 };
    let n = c.entry(name).or_insert(0);
    *n += 1;
    (*n == 1) as i32
}
