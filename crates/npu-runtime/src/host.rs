//! Pinned host memory: a caching allocator of page-aligned blocks, sized to powers of two like
//! PyTorch's CachingHostAllocator. Blocks used by streams (`host_record_stream`) are reused
//! only after the work submitted to those streams by the time of the free has completed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::error::{ErrorKind, Result, RtError};
use crate::executor::StreamState;
use crate::segment;
use crate::stream::{state_of, Stream};
use crate::util::lock;

const MIN_HOST_BLOCK: usize = 4096;

struct HostBlock {
    size: usize,
    allocated: bool,
    uses: Vec<&'static StreamState>,
}

#[derive(Default)]
struct HostState {
    /// Every mapped block by address (allocated, pending or cached).
    blocks: BTreeMap<usize, HostBlock>,
    /// Cached blocks by size.
    free: HashMap<usize, Vec<usize>>,
    /// Freed blocks waiting for streams: (address, stream, target).
    pending: Vec<(usize, Vec<(&'static StreamState, u64)>)>,
    allocated_bytes: u64,
    reserved_bytes: u64,
}

static HOST: Mutex<Option<HostState>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut HostState) -> R) -> R {
    f(lock(&HOST).get_or_insert_with(HostState::default))
}

impl HostState {
    fn process_pending(&mut self) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].1.iter().all(|&(s, t)| s.is_done(t)) {
                let (ptr, _) = self.pending.swap_remove(i);
                let size = self.blocks[&ptr].size;
                self.free.entry(size).or_default().push(ptr);
            } else {
                i += 1;
            }
        }
    }

    /// The block containing `addr`, if any.
    fn containing(&mut self, addr: usize) -> Option<(usize, &mut HostBlock)> {
        let (&start, b) = self.blocks.range_mut(..=addr).next_back()?;
        (addr < start + b.size).then_some((start, b))
    }
}

/// Allocates page-aligned pinned host memory; null for size 0.
pub fn host_alloc(size: usize) -> Result<*mut u8> {
    if size == 0 {
        return Ok(std::ptr::null_mut());
    }
    let rounded = size.max(MIN_HOST_BLOCK).checked_next_power_of_two().ok_or_else(|| {
        RtError::new(ErrorKind::OutOfMemory, format!("cannot allocate {size} bytes of pinned host memory"))
    })?;
    with(|h| {
        h.process_pending();
        let ptr = match h.free.get_mut(&rounded).and_then(Vec::pop) {
            Some(p) => p,
            None => {
                let p = segment::map(rounded).ok_or_else(|| {
                    RtError::new(
                        ErrorKind::OutOfMemory,
                        format!("out of pinned host memory trying to allocate {}", crate::util::format_size(rounded as u64)),
                    )
                })? as usize;
                h.blocks.insert(p, HostBlock { size: rounded, allocated: false, uses: Vec::new() });
                h.reserved_bytes += rounded as u64;
                p
            }
        };
        h.blocks.get_mut(&ptr).expect("host allocator bug: lost block").allocated = true;
        h.allocated_bytes += rounded as u64;
        Ok(ptr as *mut u8)
    })
}

/// Returns a block to the cache; unknown pointers are ignored.
pub fn host_free(ptr: *mut u8) {
    with(|h| {
        let Some(b) = h.blocks.get_mut(&(ptr as usize)).filter(|b| b.allocated) else { return };
        b.allocated = false;
        let size = b.size;
        let waits: Vec<_> = std::mem::take(&mut b.uses)
            .into_iter()
            .map(|s| (s, s.submitted()))
            .filter(|&(s, t)| !s.is_done(t))
            .collect();
        h.allocated_bytes -= size as u64;
        if waits.is_empty() {
            h.free.entry(size).or_default().push(ptr as usize);
        } else {
            h.pending.push((ptr as usize, waits));
        }
    })
}

/// Declares that work on `s` uses the pinned block containing `ptr`.
pub fn host_record_stream(ptr: *mut u8, s: Stream) {
    let Ok(st) = state_of(s) else { return };
    with(|h| {
        if let Some((_, b)) = h.containing(ptr as usize).filter(|(_, b)| b.allocated) {
            if !b.uses.iter().any(|u| std::ptr::eq(*u, st)) {
                b.uses.push(st);
            }
        }
    })
}

/// True for any address inside memory obtained from `host_alloc` and still mapped (cached
/// blocks stay pinned, as with cudaHostAlloc'd memory).
pub fn is_pinned(ptr: *const u8) -> bool {
    with(|h| h.containing(ptr as usize).is_some())
}

/// Unmaps every cached block (blocks still waiting for streams stay).
pub fn host_empty_cache() {
    with(|h| {
        h.process_pending();
        for (_, ptrs) in h.free.drain() {
            for p in ptrs {
                if let Some(b) = h.blocks.remove(&p) {
                    h.reserved_bytes -= b.size as u64;
                    // SAFETY: a cached block is neither allocated nor awaited by any stream.
                    unsafe { segment::unmap(p as *mut u8, b.size) };
                }
            }
        }
    })
}

/// (allocated bytes, reserved bytes) of the pinned host allocator.
pub fn host_stats() -> (u64, u64) {
    with(|h| (h.allocated_bytes, h.reserved_bytes))
}
