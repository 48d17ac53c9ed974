//! Device memory segments: anonymous private mappings, plus a process-wide registry of the
//! address ranges owned by each device so any pointer can be traced back to its device.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::DeviceIndex;

/// Maps `size` bytes of zeroed, page-aligned memory. MAP_NORESERVE: the device capacity, not
/// the kernel's overcommit heuristics, decides what may be allocated; pages cost RAM only once
/// touched.
pub(crate) fn map(size: usize) -> Option<*mut u8> {
    if size == 0 {
        return None;
    }
    // SAFETY: anonymous mapping with no address hint; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    if size >= HUGE_PAGE {
        // SAFETY: the range was just mapped; the advice only changes how it is backed.
        unsafe { libc::madvise(p, size, libc::MADV_HUGEPAGE) };
    }
    Some(p as *mut u8)
}

const HUGE_PAGE: usize = 2 << 20;

/// Unmaps a range returned by `map`.
///
/// # Safety
/// `ptr`/`size` must be exactly a mapping from `map` that nothing uses any more.
pub(crate) unsafe fn unmap(ptr: *mut u8, size: usize) {
    libc::munmap(ptr as *mut libc::c_void, size);
}

/// start -> (end, device) of every live device segment.
static REGISTRY: RwLock<BTreeMap<usize, (usize, DeviceIndex)>> = RwLock::new(BTreeMap::new());

pub(crate) fn register(start: usize, size: usize, d: DeviceIndex) {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner()).insert(start, (start + size, d));
}

pub(crate) fn unregister(start: usize) {
    REGISTRY.write().unwrap_or_else(|e| e.into_inner()).remove(&start);
}

/// Device owning the segment that contains `addr`, if any.
pub fn device_of_ptr(addr: *const u8) -> Option<DeviceIndex> {
    let a = addr as usize;
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    reg.range(..=a).next_back().filter(|(_, (end, _))| a < *end).map(|(_, (_, d))| *d)
}
