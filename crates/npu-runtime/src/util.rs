//! Small helpers: poison-tolerant locking, bounded spinning, human-readable sizes.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a thread spins before parking. A park/unpark round trip costs >10 µs on the
/// 2-core VMs this runs on, so a short spin catches back-to-back launches and quick kernels.
pub(crate) const SPIN: Duration = Duration::from_micros(30);

/// Locks ignoring poison: user closures run under our locks only inside `catch_unwind`, so a
/// poisoned lock can only come from a bug in this crate, and the protected state is still
/// consistent enough to go on.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g).unwrap_or_else(|e| e.into_inner())
}

/// Spins until `cond` holds or `limit` has passed; returns whether it holds.
pub(crate) fn spin_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if cond() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= limit {
            return cond();
        }
        // Let a runnable compute thread have this core: on small machines the kernel being
        // waited for may need it.
        std::thread::yield_now();
    }
}

/// Formats a byte count the way PyTorch's OOM messages do ("2.00 GiB").
pub fn format_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        format!("{:.2} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.2} MiB", b / (KIB * KIB))
    } else {
        format!("{:.2} GiB", b / (KIB * KIB * KIB))
    }
}

/// Extracts the message of a caught panic.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_format_like_pytorch() {
        assert_eq!(format_size(100), "100 bytes");
        assert_eq!(format_size(2048), "2.00 KiB");
        assert_eq!(format_size(3 << 20), "3.00 MiB");
        assert_eq!(format_size(3 << 29), "1.50 GiB");
    }

    #[test]
    fn spin_until_times_out() {
        assert!(!spin_until(Duration::from_micros(10), || false));
        assert!(spin_until(Duration::from_micros(10), || true));
    }
}
