//! Device memory API: routes to the caching allocator of the device that owns a pointer.

use crate::allocator::{Allocator, SegmentInfo};
use crate::device;
use crate::error::Result;
use crate::segment::device_of_ptr;
use crate::stats::DeviceStats;
use crate::stream::Stream;
use crate::DeviceIndex;

fn allocator(d: DeviceIndex) -> Result<&'static Allocator> {
    Ok(&device::state(d)?.allocator)
}

/// The allocator that may own `ptr` (each ignores pointers it does not own).
fn owner(ptr: *const u8) -> Option<&'static Allocator> {
    if let Some(s) = device::sole_state() {
        return Some(&s.allocator);
    }
    allocator(device_of_ptr(ptr)?).ok()
}

/// Allocates `size` bytes on device `d` for use on `stream`; null for size 0.
pub fn alloc(d: DeviceIndex, size: usize, stream: Stream) -> Result<*mut u8> {
    allocator(d)?.alloc(size, stream)
}

/// Returns an allocation to its device's cache. Null and unknown pointers are ignored.
pub fn free(ptr: *mut u8) {
    if let Some(a) = owner(ptr) {
        a.free(ptr);
    }
}

/// Declares that `s` uses the allocation at `ptr`, delaying its reuse after free.
pub fn record_stream(ptr: *mut u8, s: Stream) {
    if let Some(a) = owner(ptr) {
        a.record_stream(ptr, s);
    }
}

pub fn empty_cache(d: DeviceIndex) -> Result<()> {
    allocator(d)?.empty_cache();
    Ok(())
}

pub fn memory_stats(d: DeviceIndex) -> Result<DeviceStats> {
    Ok(allocator(d)?.stats())
}

pub fn reset_peak_stats(d: DeviceIndex) -> Result<()> {
    allocator(d)?.reset_peak_stats();
    Ok(())
}

pub fn reset_accumulated_stats(d: DeviceIndex) -> Result<()> {
    allocator(d)?.reset_accumulated_stats();
    Ok(())
}

pub fn set_memory_fraction(fraction: f64, d: DeviceIndex) -> Result<()> {
    allocator(d)?.set_memory_fraction(fraction)
}

pub fn mem_get_info(d: DeviceIndex) -> Result<(u64, u64)> {
    Ok(allocator(d)?.mem_get_info())
}

pub fn snapshot(d: DeviceIndex) -> Result<Vec<SegmentInfo>> {
    Ok(allocator(d)?.snapshot())
}

/// Size of the block behind the live allocation starting at `ptr`.
pub fn alloc_size(ptr: *const u8) -> Option<usize> {
    owner(ptr)?.alloc_size(ptr)
}
