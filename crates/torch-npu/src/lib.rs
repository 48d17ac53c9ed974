//! torch_npu._C: the bridge between PyTorch and the software NPU. The C++ shim (csrc/)
//! registers the device with PyTorch; this crate exports the runtime to it (rt_ffi), serves
//! native ops (ops) and gives Python the device-management API (py_api).
mod fallback;
mod formats;
mod ops;
mod py_api;
mod rt_ffi;
mod status;

use pyo3::prelude::*;

// Launch closures and their views are allocated on the Python thread and freed on a stream
// worker; glibc malloc serializes such cross-thread frees on one arena lock, mimalloc does not.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    fn tnpu_cx_init(err: *mut std::ffi::c_char, len: usize) -> i32;
}

#[pymodule]
#[pyo3(name = "_C")]
fn torch_npu_c(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // PyTorch's C++ ABI changes between releases: refuse to register against another torch.
    let built = env!("TORCH_NPU_BUILT_TORCH_VERSION");
    let installed: String = m.py().import("torch")?.getattr("__version__")?.str()?.extract()?;
    if installed != built {
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "torch_npu was built against torch {built} but torch {installed} is installed; \
             rebuild torch_npu (`make build`) for this torch"
        )));
    }
    let mut err = [0 as std::ffi::c_char; 1024];
    // SAFETY: the buffer outlives the call and its length is passed.
    if unsafe { tnpu_cx_init(err.as_mut_ptr(), err.len()) } != 0 {
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "torch_npu could not register the npu device with PyTorch: {msg}"
        )));
    }
    m.add("__built_torch_version__", env!("TORCH_NPU_BUILT_TORCH_VERSION"))?;
    init_compute_threads(m.py())?;
    py_api::register(m)
}

/// One compute pool for all devices: TORCH_NPU_SIM_THREADS, else torch.get_num_threads().
fn init_compute_threads(py: Python<'_>) -> PyResult<()> {
    let from_env = std::env::var("TORCH_NPU_SIM_THREADS").ok().and_then(|v| v.parse::<usize>().ok());
    let threads = match from_env {
        Some(n) if n > 0 => n,
        _ => py.import("torch")?.call_method0("get_num_threads")?.extract::<usize>()?,
    };
    // Fails only if the pool already exists (a second interpreter in the process): keep it.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("npu-compute-{i}"))
        .build_global();
    Ok(())
}
