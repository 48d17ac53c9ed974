//! The global per-device memory API (each test uses its own device).

use npu_runtime::*;

const MIB: usize = 1 << 20;

/// The device for a test, or None when this run has too few devices.
fn device(d: DeviceIndex) -> Option<DeviceIndex> {
    ((d as usize) < device_count()).then_some(d)
}

#[test]
fn alloc_free_and_pointer_queries() {
    let Some(d) = device(2) else { return };
    let s = Stream::default_for(d).unwrap();
    assert!(alloc(d, 0, s).unwrap().is_null());
    let p = alloc(d, 3 * MIB + 1, s).unwrap();
    assert_eq!(device_of_ptr(p), Some(d));
    assert_eq!(device_of_ptr(unsafe { p.add(3 * MIB) }), Some(d));
    assert_eq!(alloc_size(p), Some(3 * MIB + 512));
    assert_eq!(alloc_size(unsafe { p.add(1) }), None);
    assert_eq!(device_of_ptr(&0u8), None);
    // Device memory is host addressable.
    unsafe {
        std::ptr::write_bytes(p, 0xab, 3 * MIB + 1);
        assert_eq!(*p.add(3 * MIB), 0xab);
    }
    let st = memory_stats(d).unwrap();
    assert_eq!(st.allocation[0].current, 1);
    assert_eq!(st.reserved_bytes[0].current, 20 * MIB as i64);
    let (free_mem, total) = mem_get_info(d).unwrap();
    assert_eq!(total, device_capacity(d).unwrap());
    assert_eq!(free_mem, total - 20 * MIB as u64);
    let snap = snapshot(d).unwrap();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].device, d);
    record_stream(p, Stream::from_pool(d, false).unwrap());
    free(p);
    free(std::ptr::null_mut());
    assert_eq!(memory_stats(d).unwrap().allocation[0].current, 0);
    reset_peak_stats(d).unwrap();
    reset_accumulated_stats(d).unwrap();
    assert_eq!(memory_stats(d).unwrap().allocation[0].allocated, 0);
    empty_cache(d).unwrap();
    assert_eq!(memory_stats(d).unwrap().reserved_bytes[0].current, 0);
    assert_eq!(device_of_ptr(p), None, "segment released");
}

#[test]
fn memory_fraction_and_oom_message() {
    let Some(d) = device(3) else { return };
    let s = Stream::default_for(d).unwrap();
    let cap = device_capacity(d).unwrap();
    set_memory_fraction(0.0, d).unwrap();
    let e = alloc(d, 1000, s).unwrap_err();
    assert_eq!(e.kind, ErrorKind::OutOfMemory);
    let head = format!("NPU out of memory. Tried to allocate 1.00 KiB (NPU {d}; {} total capacity;", format_size(cap));
    assert!(e.msg.starts_with(&head), "{}", e.msg);
    assert!(e.msg.contains("0 bytes allowed;"), "{}", e.msg);
    assert_eq!(memory_stats(d).unwrap().num_ooms, 1);
    assert_eq!(set_memory_fraction(2.0, d).unwrap_err().kind, ErrorKind::InvalidArgument);
    set_memory_fraction(1.0, d).unwrap();
    let p = alloc(d, 1000, s).unwrap();
    free(p);
}
