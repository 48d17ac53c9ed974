//! `tnpu_rt_*`: the software NPU runtime, exported to the C++ shim.
use std::ffi::c_void;

use npu_runtime as rt;
use npu_runtime::{DeviceIndex, Event, Stream};

use crate::status::{ffi_call, Error, Result};

/// The shim's mirror of `DeviceStats` (see csrc/shim.h).
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct TnpuStat {
    pub current: i64,
    pub peak: i64,
    pub allocated: i64,
    pub freed: i64,
}

#[repr(C)]
#[derive(Default)]
pub struct TnpuDeviceStats {
    pub allocation: [TnpuStat; 3],
    pub segment: [TnpuStat; 3],
    pub active: [TnpuStat; 3],
    pub inactive_split: [TnpuStat; 3],
    pub allocated_bytes: [TnpuStat; 3],
    pub reserved_bytes: [TnpuStat; 3],
    pub active_bytes: [TnpuStat; 3],
    pub inactive_split_bytes: [TnpuStat; 3],
    pub requested_bytes: [TnpuStat; 3],
    pub num_alloc_retries: i64,
    pub num_ooms: i64,
    pub num_sync_all_streams: i64,
    pub num_device_alloc: i64,
    pub num_device_free: i64,
    pub oversize_allocations: TnpuStat,
    pub oversize_segments: TnpuStat,
    pub max_split_size: i64,
}

fn stat(s: &rt::Stat) -> TnpuStat {
    TnpuStat { current: s.current, peak: s.peak, allocated: s.allocated, freed: s.freed }
}

fn stats3(a: &rt::StatArray) -> [TnpuStat; 3] {
    [stat(&a[0]), stat(&a[1]), stat(&a[2])]
}

unsafe fn write<T>(out: *mut T, value: T) -> Result<()> {
    if out.is_null() {
        return Err(Error::runtime("null output pointer"));
    }
    out.write(value);
    Ok(())
}

pub fn stream(device: DeviceIndex, id: i64) -> Result<Stream> {
    Ok(rt::stream_from_id(device, id)?)
}

#[no_mangle]
pub extern "C" fn tnpu_rt_device_count() -> i32 {
    rt::device_count() as i32
}

#[no_mangle]
pub extern "C" fn tnpu_rt_get_device() -> i32 {
    rt::current_device()
}

#[no_mangle]
pub extern "C" fn tnpu_rt_set_device(device: i32) -> i32 {
    ffi_call(|| Ok(rt::set_current_device(device)?))
}

#[no_mangle]
pub extern "C" fn tnpu_rt_check_device(device: i32) -> i32 {
    ffi_call(|| Ok(rt::check_device(device)?))
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_malloc(device: i32, size: usize, out: *mut *mut c_void) -> i32 {
    ffi_call(|| {
        let s = rt::current_stream(device)?;
        let p = rt::alloc(device, size, s)?;
        write(out, p as *mut c_void)
    })
}

#[no_mangle]
pub extern "C" fn tnpu_rt_free(ptr: *mut c_void) {
    let _ = std::panic::catch_unwind(|| rt::free(ptr as *mut u8));
}

#[no_mangle]
pub extern "C" fn tnpu_rt_record_stream(ptr: *mut c_void, device: i32, id: i64) {
    let _ = ffi_call(|| {
        rt::record_stream(ptr as *mut u8, stream(device, id)?);
        Ok(())
    });
}

#[no_mangle]
pub extern "C" fn tnpu_rt_empty_cache() -> i32 {
    ffi_call(|| {
        for d in 0..rt::device_count() as DeviceIndex {
            rt::empty_cache(d)?;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_memory_stats(device: i32, out: *mut TnpuDeviceStats) -> i32 {
    ffi_call(|| {
        let s = rt::memory_stats(device)?;
        write(
            out,
            TnpuDeviceStats {
                allocation: stats3(&s.allocation),
                segment: stats3(&s.segment),
                active: stats3(&s.active),
                inactive_split: stats3(&s.inactive_split),
                allocated_bytes: stats3(&s.allocated_bytes),
                reserved_bytes: stats3(&s.reserved_bytes),
                active_bytes: stats3(&s.active_bytes),
                inactive_split_bytes: stats3(&s.inactive_split_bytes),
                requested_bytes: stats3(&s.requested_bytes),
                num_alloc_retries: s.num_alloc_retries,
                num_ooms: s.num_ooms,
                num_sync_all_streams: s.num_sync_all_streams,
                num_device_alloc: s.num_device_alloc,
                num_device_free: s.num_device_free,
                oversize_allocations: stat(&s.oversize_allocations),
                oversize_segments: stat(&s.oversize_segments),
                max_split_size: s.max_split_size,
            },
        )
    })
}

#[no_mangle]
pub extern "C" fn tnpu_rt_reset_peak_stats(device: i32) -> i32 {
    ffi_call(|| Ok(rt::reset_peak_stats(device)?))
}

#[no_mangle]
pub extern "C" fn tnpu_rt_reset_accumulated_stats(device: i32) -> i32 {
    ffi_call(|| Ok(rt::reset_accumulated_stats(device)?))
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_mem_info(device: i32, free: *mut u64, total: *mut u64) -> i32 {
    ffi_call(|| {
        let (f, t) = rt::mem_get_info(device)?;
        write(free, f)?;
        write(total, t)
    })
}

#[no_mangle]
pub extern "C" fn tnpu_rt_device_of_ptr(ptr: *const c_void) -> i32 {
    rt::device_of_ptr(ptr as *const u8).unwrap_or(-1)
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_current_stream(device: i32, out: *mut i64) -> i32 {
    ffi_call(|| write(out, rt::current_stream(device)?.id))
}

#[no_mangle]
pub extern "C" fn tnpu_rt_set_current_stream(device: i32, id: i64) -> i32 {
    ffi_call(|| Ok(rt::set_current_stream(stream(device, id)?)?))
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_pool_stream(device: i32, high: i32, out: *mut i64) -> i32 {
    ffi_call(|| write(out, Stream::from_pool(device, high != 0)?.id))
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_stream_priority(device: i32, id: i64, out: *mut i32) -> i32 {
    ffi_call(|| write(out, stream(device, id)?.priority()))
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_stream_query(device: i32, id: i64, done: *mut i32) -> i32 {
    ffi_call(|| write(done, stream(device, id)?.query() as i32))
}

#[no_mangle]
pub extern "C" fn tnpu_rt_stream_synchronize(device: i32, id: i64) -> i32 {
    ffi_call(|| Ok(stream(device, id)?.synchronize()?))
}

#[no_mangle]
pub extern "C" fn tnpu_rt_device_synchronize(device: i32) -> i32 {
    ffi_call(|| Ok(rt::device_synchronize(device)?))
}

#[no_mangle]
pub extern "C" fn tnpu_rt_event_create(enable_timing: i32) -> *mut c_void {
    Box::into_raw(Box::new(Event::new(enable_timing != 0))) as *mut c_void
}

/// # Safety
/// `event` comes from `tnpu_rt_event_create` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_event_destroy(event: *mut c_void) {
    if !event.is_null() {
        drop(Box::from_raw(event as *mut Event));
    }
}

unsafe fn event<'a>(p: *mut c_void) -> Result<&'a Event> {
    (p as *const Event).as_ref().ok_or_else(|| Error::runtime("null npu event"))
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_event_record(ev: *mut c_void, device: i32, id: i64) -> i32 {
    ffi_call(|| Ok(event(ev)?.record(&stream(device, id)?)?))
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_event_block(ev: *mut c_void, device: i32, id: i64) -> i32 {
    ffi_call(|| {
        stream(device, id)?.wait_event(event(ev)?);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_event_query(ev: *mut c_void) -> i32 {
    match event(ev) {
        Ok(e) => e.query() as i32,
        Err(_) => 1,
    }
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_event_synchronize(ev: *mut c_void) -> i32 {
    ffi_call(|| Ok(event(ev)?.synchronize()?))
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_event_elapsed(a: *mut c_void, b: *mut c_void, ms: *mut f64) -> i32 {
    ffi_call(|| write(ms, event(a)?.elapsed_ms(event(b)?)?))
}

#[no_mangle]
pub unsafe extern "C" fn tnpu_rt_host_alloc(size: usize, out: *mut *mut c_void) -> i32 {
    ffi_call(|| write(out, rt::host_alloc(size)? as *mut c_void))
}

#[no_mangle]
pub extern "C" fn tnpu_rt_host_free(ptr: *mut c_void) {
    let _ = std::panic::catch_unwind(|| rt::host_free(ptr as *mut u8));
}

#[no_mangle]
pub extern "C" fn tnpu_rt_is_pinned(ptr: *const c_void) -> i32 {
    rt::is_pinned(ptr as *const u8) as i32
}

#[no_mangle]
pub extern "C" fn tnpu_rt_host_record_stream(ptr: *mut c_void, device: i32, id: i64) {
    let _ = ffi_call(|| {
        rt::host_record_stream(ptr as *mut u8, stream(device, id)?);
        Ok(())
    });
}

#[no_mangle]
pub extern "C" fn tnpu_rt_host_empty_cache() {
    let _ = std::panic::catch_unwind(rt::host_empty_cache);
}
