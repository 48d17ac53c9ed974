//! Python functions behind torch.npu that PyTorch's generic APIs do not cover: device
//! properties, memory statistics and snapshots, the raw caching-allocator calls, and the
//! CPU-fallback counters.
use std::collections::BTreeMap;

use pyo3::exceptions::{
    PyIndexError, PyNotImplementedError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use npu_runtime as rt;

use crate::status::{self, Error};

fn to_py(py: Python<'_>, e: Error) -> PyErr {
    match e.status {
        status::ERR_OOM => py
            .import("torch")
            .and_then(|t| t.getattr("OutOfMemoryError"))
            .and_then(|cls| cls.call1((e.msg.clone(),)))
            .map(PyErr::from_value)
            .unwrap_or_else(|err| err),
        status::ERR_INDEX => PyIndexError::new_err(e.msg),
        status::ERR_VALUE => PyValueError::new_err(e.msg),
        status::ERR_TYPE => PyTypeError::new_err(e.msg),
        status::ERR_NOT_IMPLEMENTED => PyNotImplementedError::new_err(e.msg),
        _ => PyRuntimeError::new_err(e.msg),
    }
}

fn rt_err(py: Python<'_>, e: rt::RtError) -> PyErr {
    to_py(py, e.into())
}

#[pyfunction]
fn device_count() -> usize {
    rt::device_count()
}

#[pyfunction]
fn current_device() -> i32 {
    rt::current_device()
}

#[pyfunction]
fn set_device(py: Python<'_>, device: i32) -> PyResult<()> {
    rt::set_current_device(device).map_err(|e| rt_err(py, e))
}

#[pyfunction]
fn check_device(py: Python<'_>, device: i32) -> PyResult<()> {
    rt::check_device(device).map_err(|e| rt_err(py, e))
}

#[pyfunction]
fn soc_name() -> String {
    rt::soc_name()
}

#[pyfunction]
fn total_memory(py: Python<'_>, device: i32) -> PyResult<u64> {
    rt::device_capacity(device).map_err(|e| rt_err(py, e))
}

/// Waits for all work on `device`, releasing the GIL (device work never needs it).
#[pyfunction]
fn synchronize(py: Python<'_>, device: i32) -> PyResult<()> {
    py.detach(|| rt::device_synchronize(device)).map_err(|e| rt_err(py, e))
}

extern "C" {
    fn tnpu_cx_drain_autograd(device: i32, err: *mut std::ffi::c_char, len: usize) -> i32;
}

/// Runs one C++-only backward pass on `device`'s autograd engine thread, with the GIL released
/// so that the thread can finish releasing earlier graph tasks (see python/torch_npu/_exit.py).
#[pyfunction]
fn drain_autograd(py: Python<'_>, device: i32) -> PyResult<()> {
    let mut err = [0 as std::ffi::c_char; 512];
    let status = py.detach(|| unsafe { tnpu_cx_drain_autograd(device, err.as_mut_ptr(), err.len()) });
    if status != 0 {
        let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
        return Err(pyo3::exceptions::PyRuntimeError::new_err(msg));
    }
    Ok(())
}

#[pyfunction]
fn launch_blocking() -> bool {
    rt::is_launch_blocking()
}

fn stat_dict<'py>(py: Python<'py>, out: &Bound<'py, PyDict>, name: &str, a: &rt::StatArray) -> PyResult<()> {
    for (pool, s) in ["all", "small_pool", "large_pool"].iter().zip(a.iter()) {
        for (field, v) in [("current", s.current), ("peak", s.peak), ("allocated", s.allocated), ("freed", s.freed)] {
            out.set_item(format!("{name}.{pool}.{field}"), v)?;
        }
    }
    let _ = py;
    Ok(())
}

/// Memory statistics in torch.cuda.memory_stats()'s flat key format.
#[pyfunction]
fn memory_stats<'py>(py: Python<'py>, device: i32) -> PyResult<Bound<'py, PyDict>> {
    let s = rt::memory_stats(device).map_err(|e| rt_err(py, e))?;
    let d = PyDict::new(py);
    for (name, a) in [
        ("allocation", &s.allocation),
        ("segment", &s.segment),
        ("active", &s.active),
        ("inactive_split", &s.inactive_split),
        ("allocated_bytes", &s.allocated_bytes),
        ("reserved_bytes", &s.reserved_bytes),
        ("active_bytes", &s.active_bytes),
        ("inactive_split_bytes", &s.inactive_split_bytes),
        ("requested_bytes", &s.requested_bytes),
    ] {
        stat_dict(py, &d, name, a)?;
    }
    for (name, st) in [("oversize_allocations", &s.oversize_allocations), ("oversize_segments", &s.oversize_segments)] {
        for (field, v) in [("current", st.current), ("peak", st.peak), ("allocated", st.allocated), ("freed", st.freed)] {
            d.set_item(format!("{name}.{field}"), v)?;
        }
    }
    d.set_item("num_alloc_retries", s.num_alloc_retries)?;
    d.set_item("num_ooms", s.num_ooms)?;
    d.set_item("num_sync_all_streams", s.num_sync_all_streams)?;
    d.set_item("num_device_alloc", s.num_device_alloc)?;
    d.set_item("num_device_free", s.num_device_free)?;
    d.set_item("max_split_size", s.max_split_size)?;
    Ok(d)
}

#[pyfunction]
fn reset_peak_memory_stats(py: Python<'_>, device: i32) -> PyResult<()> {
    rt::reset_peak_stats(device).map_err(|e| rt_err(py, e))
}

#[pyfunction]
fn reset_accumulated_memory_stats(py: Python<'_>, device: i32) -> PyResult<()> {
    rt::reset_accumulated_stats(device).map_err(|e| rt_err(py, e))
}

#[pyfunction]
fn empty_cache(py: Python<'_>) -> PyResult<()> {
    py.detach(|| (0..rt::device_count() as i32).try_for_each(rt::empty_cache))
        .map_err(|e| rt_err(py, e))
}

#[pyfunction]
fn set_memory_fraction(py: Python<'_>, fraction: f64, device: i32) -> PyResult<()> {
    rt::set_memory_fraction(fraction, device).map_err(|e| rt_err(py, e))
}

#[pyfunction]
fn mem_get_info(py: Python<'_>, device: i32) -> PyResult<(u64, u64)> {
    rt::mem_get_info(device).map_err(|e| rt_err(py, e))
}

/// Segments in torch.cuda.memory_snapshot()'s format.
#[pyfunction]
fn memory_snapshot<'py>(py: Python<'py>, device: i32) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let segments = rt::snapshot(device).map_err(|e| rt_err(py, e))?;
    let mut out = Vec::with_capacity(segments.len());
    for s in segments {
        let d = PyDict::new(py);
        d.set_item("device", s.device)?;
        d.set_item("address", s.address)?;
        d.set_item("total_size", s.total_size)?;
        d.set_item("allocated_size", s.allocated_size)?;
        d.set_item("active_size", s.active_size)?;
        d.set_item("requested_size", s.requested_size)?;
        d.set_item("stream", s.stream)?;
        d.set_item("segment_type", if s.is_large { "large" } else { "small" })?;
        let mut addr = s.address;
        let mut blocks = Vec::with_capacity(s.blocks.len());
        for b in &s.blocks {
            let bd = PyDict::new(py);
            bd.set_item("address", addr)?;
            bd.set_item("size", b.size)?;
            bd.set_item("requested_size", b.requested_size)?;
            let state = if b.allocated { "active_allocated" } else if b.active { "active_pending_free" } else { "inactive" };
            bd.set_item("state", state)?;
            addr += b.size;
            blocks.push(bd);
        }
        d.set_item("blocks", blocks)?;
        out.push(d);
    }
    Ok(out)
}

/// torch.npu.caching_allocator_alloc: raw device memory from the caching allocator.
#[pyfunction]
fn caching_allocator_alloc(py: Python<'_>, size: usize, device: i32, stream: i64) -> PyResult<usize> {
    let s = rt::stream_from_id(device, stream).map_err(|e| rt_err(py, e))?;
    rt::alloc(device, size, s).map(|p| p as usize).map_err(|e| rt_err(py, e))
}

#[pyfunction]
fn caching_allocator_delete(ptr: usize) {
    rt::free(ptr as *mut u8);
}

#[pyfunction]
fn stream_priority(py: Python<'_>, device: i32, stream: i64) -> PyResult<i32> {
    rt::stream_from_id(device, stream).map(|s| s.priority()).map_err(|e| rt_err(py, e))
}

/// Elapsed milliseconds between two recorded events, given their `event_id`s (the runtime
/// events the guard created). torch.Event.elapsed_time refuses subclasses, so
/// torch.npu.Event measures through here.
#[pyfunction]
fn event_elapsed_time(py: Python<'_>, start: usize, end: usize) -> PyResult<f64> {
    if start == 0 || end == 0 {
        return Err(PyRuntimeError::new_err(
            "Both events must be recorded before calculating elapsed time.",
        ));
    }
    // SAFETY: non-zero event ids are live `Event`s created by tnpu_rt_event_create and owned
    // by the torch.Event objects the caller holds.
    let (a, b) = unsafe { (&*(start as *const rt::Event), &*(end as *const rt::Event)) };
    py.detach(|| a.elapsed_ms(b)).map_err(|e| PyRuntimeError::new_err(e.msg))
}

#[pyfunction]
fn fallback_counts() -> BTreeMap<String, u64> {
    crate::fallback::snapshot()
}

#[pyfunction]
fn reset_fallback_counts() {
    crate::fallback::reset()
}

/// Seconds host threads have spent waiting for the device since start.
#[pyfunction]
fn host_wait_time() -> f64 {
    rt::host_wait_time().as_secs_f64()
}

#[pyfunction]
fn native_ops() -> Vec<&'static str> {
    crate::ops::names().collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(device_count, m)?)?;
    m.add_function(wrap_pyfunction!(current_device, m)?)?;
    m.add_function(wrap_pyfunction!(set_device, m)?)?;
    m.add_function(wrap_pyfunction!(check_device, m)?)?;
    m.add_function(wrap_pyfunction!(soc_name, m)?)?;
    m.add_function(wrap_pyfunction!(total_memory, m)?)?;
    m.add_function(wrap_pyfunction!(synchronize, m)?)?;
    m.add_function(wrap_pyfunction!(launch_blocking, m)?)?;
    m.add_function(wrap_pyfunction!(drain_autograd, m)?)?;
    m.add_function(wrap_pyfunction!(memory_stats, m)?)?;
    m.add_function(wrap_pyfunction!(reset_peak_memory_stats, m)?)?;
    m.add_function(wrap_pyfunction!(reset_accumulated_memory_stats, m)?)?;
    m.add_function(wrap_pyfunction!(empty_cache, m)?)?;
    m.add_function(wrap_pyfunction!(set_memory_fraction, m)?)?;
    m.add_function(wrap_pyfunction!(mem_get_info, m)?)?;
    m.add_function(wrap_pyfunction!(memory_snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(caching_allocator_alloc, m)?)?;
    m.add_function(wrap_pyfunction!(caching_allocator_delete, m)?)?;
    m.add_function(wrap_pyfunction!(stream_priority, m)?)?;
    m.add_function(wrap_pyfunction!(event_elapsed_time, m)?)?;
    m.add_function(wrap_pyfunction!(fallback_counts, m)?)?;
    m.add_function(wrap_pyfunction!(reset_fallback_counts, m)?)?;
    m.add_function(wrap_pyfunction!(native_ops, m)?)?;
    m.add_function(wrap_pyfunction!(host_wait_time, m)?)?;
    Ok(())
}
