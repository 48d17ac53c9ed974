//! Pinned host allocator. The allocator is process-wide, so tests take turns.

use std::sync::Mutex;
use std::time::Duration;

use npu_runtime::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn alignment_pinned_ranges_and_reuse() {
    let _g = serial();
    assert!(host_alloc(0).unwrap().is_null());
    let p = host_alloc(10_000).unwrap();
    assert_eq!(p as usize % 4096, 0);
    assert!(is_pinned(p));
    assert!(is_pinned(unsafe { p.add(9_999) }));
    assert!(!is_pinned(&0u8));
    unsafe { std::ptr::write_bytes(p, 7, 10_000) };
    let (allocated, reserved) = host_stats();
    assert!(allocated >= 16384 && reserved >= allocated);
    host_free(p);
    assert_eq!(host_stats().0, allocated - 16384);
    // Same size class: the cached block comes back.
    let q = host_alloc(12_000).unwrap();
    assert_eq!(q, p);
    assert_eq!(host_stats().1, reserved);
    host_free(q);
    host_free(q); // double free ignored
    host_free(std::ptr::null_mut());
    host_empty_cache();
    assert!(!is_pinned(p));
    assert_eq!(host_stats().1, reserved - 16384);
}

#[test]
fn recorded_streams_defer_reuse() {
    let _g = serial();
    let s = stream_from_id(0, 50).unwrap();
    let p = host_alloc(100_000).unwrap();
    host_record_stream(p, s);
    s.launch("copy_from_pinned", Box::new(|| {
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }))
    .unwrap();
    host_free(p);
    let q = host_alloc(100_000).unwrap();
    assert_ne!(q, p, "reused while the stream may still read it");
    s.synchronize().unwrap();
    host_free(q);
    let (r1, r2) = (host_alloc(100_000).unwrap(), host_alloc(100_000).unwrap());
    let mut got = [r1 as usize, r2 as usize];
    let mut want = [p as usize, q as usize];
    got.sort();
    want.sort();
    assert_eq!(got, want);
    host_free(r1);
    host_free(r2);
    host_empty_cache();
}
