//! The caching allocator of one device, with the semantics of PyTorch's CUDA caching allocator:
//! 512-byte rounding; a small pool (requests <= 1 MiB, 2 MiB segments) and a large pool (20 MiB
//! segments below 10 MiB, else rounded to 2 MiB); best fit per (stream, size); split and merge;
//! reuse only on the stream that freed the block, or after `record_stream` streams caught up.
//!
//! Unmapping safety: a freed block may still be read by work queued before the free on its
//! stream. Each segment remembers the stream's submitted count at its latest free, and is only
//! unmapped once the stream has completed that far. That check is exact, so releasing memory
//! never races with concurrent launches; waiting for the device beforehand only makes more
//! segments releasable.

mod snapshot;
pub use snapshot::{BlockInfo, SegmentInfo};

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::config::AllocConf;
use crate::device::wait_idle;
use crate::error::{ErrorKind, Result, RtError};
use crate::executor::StreamState;
use crate::pool::{AddrMap, Arena, Block, BlockId, BlockState, FreePools};
use crate::segment;
use crate::stats::{update, DeviceStats};
use crate::stream::{state_of, Stream};
use crate::util::{format_size, lock};
use crate::DeviceIndex;

pub const MIN_BLOCK_SIZE: usize = 512;
pub const SMALL_SIZE: usize = 1 << 20;
pub const SMALL_BUFFER: usize = 2 << 20;
pub const LARGE_BUFFER: usize = 20 << 20;
pub const MIN_LARGE_ALLOC: usize = 10 << 20;
pub const ROUND_LARGE: usize = 2 << 20;

/// Request size rounded to the allocation granularity (None on overflow).
pub fn round_size(size: usize) -> Option<usize> {
    size.max(1).checked_next_multiple_of(MIN_BLOCK_SIZE)
}

/// Size of the segment mapped for a request of `rounded` bytes.
pub fn segment_size(rounded: usize) -> Option<usize> {
    if rounded <= SMALL_SIZE {
        Some(SMALL_BUFFER)
    } else if rounded < MIN_LARGE_ALLOC {
        Some(LARGE_BUFFER)
    } else {
        rounded.checked_next_multiple_of(ROUND_LARGE)
    }
}

struct Segment {
    size: usize,
    small: bool,
    head: BlockId,
    /// Its stream's submitted count (`sst` of its blocks) at the latest free of any of them.
    last_free_seq: u64,
}

/// A user-freed block waiting for work on recorded streams.
struct Pending {
    block: BlockId,
    free_seq: u64,
    waits: Vec<(&'static StreamState, u64)>,
}

struct Request {
    size: usize,
    rounded: usize,
    seg_size: usize,
    small: bool,
    stream: i64,
}

#[derive(Default)]
struct State {
    arena: Arena,
    pools: FreePools,
    allocated: AddrMap<BlockId>,
    segments: BTreeMap<usize, Segment>,
    pending: Vec<Pending>,
    stats: DeviceStats,
    reserved: u64,
    fraction: f64,
    tick: u64,
}

/// Caching allocator of one device. The global per-device instances are reached through the
/// crate's free functions; `with_capacity` makes an independent one (for tests and tools).
pub struct Allocator {
    device: DeviceIndex,
    capacity: u64,
    max_split: Option<usize>,
    gc_threshold: Option<f64>,
    /// Global instances register their segments so any pointer maps back to its device.
    global: bool,
    state: Mutex<State>,
}

impl Allocator {
    pub(crate) fn global(device: DeviceIndex, capacity: u64, conf: AllocConf) -> Self {
        Self::make(device, capacity, conf, true)
    }

    /// A private allocator for `device` with its own capacity and stats. It uses the device's
    /// streams but not the global pointer registry (`device_of_ptr` does not see its memory).
    #[doc(hidden)]
    pub fn with_capacity(device: DeviceIndex, capacity: u64) -> Self {
        Self::make(device, capacity, AllocConf::default(), false)
    }

    #[doc(hidden)]
    pub fn with_config(device: DeviceIndex, capacity: u64, conf: AllocConf) -> Self {
        Self::make(device, capacity, conf, false)
    }

    fn make(device: DeviceIndex, capacity: u64, conf: AllocConf, global: bool) -> Self {
        let stats = DeviceStats {
            max_split_size: conf.max_split_size.map_or(-1, |m| m as i64),
            ..Default::default()
        };
        Allocator {
            device,
            capacity,
            max_split: conf.max_split_size,
            gc_threshold: conf.gc_threshold,
            global,
            state: Mutex::new(State { stats, fraction: 1.0, ..Default::default() }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn oversize(&self, size: usize) -> bool {
        self.max_split.is_some_and(|m| size >= m)
    }

    /// Memory this allocator may reserve: capacity times the memory fraction.
    fn allowed(&self, fraction: f64) -> u64 {
        if fraction >= 1.0 {
            self.capacity
        } else {
            (self.capacity as f64 * fraction) as u64
        }
    }

    pub fn alloc(&self, size: usize, stream: Stream) -> Result<*mut u8> {
        if size == 0 {
            return Ok(std::ptr::null_mut());
        }
        if stream.device != self.device {
            return Err(RtError::invalid(format!(
                "cannot allocate on NPU {} for a stream of NPU {}",
                self.device, stream.device
            )));
        }
        let sst = state_of(stream)?;
        let req = round_size(size).and_then(|rounded| {
            Some(Request { size, rounded, seg_size: segment_size(rounded)?, small: rounded <= SMALL_SIZE, stream: stream.id })
        });
        let Some(req) = req else {
            let mut g = self.lock();
            g.stats.num_ooms += 1;
            return Err(self.oom(&g, size));
        };

        let mut g = self.lock();
        g.process_pending();
        if let Some(p) = self.try_alloc(&mut g, &req, sst) {
            return Ok(p);
        }
        // Slow path: let every stream catch up (without our lock: work may allocate), so that
        // all cached segments become releasable, release them and try once more.
        drop(g);
        let synced = wait_idle(self.device);
        let mut g = self.lock();
        g.stats.num_alloc_retries += 1;
        g.stats.num_sync_all_streams += synced as i64;
        g.process_pending();
        self.release_cached(&mut g, None);
        if let Some(p) = self.try_alloc(&mut g, &req, sst) {
            return Ok(p);
        }
        g.stats.num_ooms += 1;
        Err(self.oom(&g, req.rounded))
    }

    fn try_alloc(&self, g: &mut State, req: &Request, sst: &'static StreamState) -> Option<*mut u8> {
        if let Some(id) = self.take_free(g, req) {
            return Some(self.use_block(g, id, req));
        }
        if let Some(t) = self.gc_threshold {
            let limit = (t * self.allowed(g.fraction) as f64) as u64;
            if g.reserved > limit {
                self.release_cached(g, Some(limit));
            }
        }
        let id = self.new_segment(g, req, sst)?;
        Some(self.use_block(g, id, req))
    }

    /// Best-fit cached block for the request, removed from its pool.
    fn take_free(&self, g: &mut State, req: &Request) -> Option<BlockId> {
        let (size, id) = g.pools.best_fit(req.small, req.stream, req.rounded)?;
        if let Some(m) = self.max_split {
            // Oversize blocks serve only oversize requests, and only if they waste < 20 MiB.
            if (req.rounded < m && size >= m) || (req.rounded >= m && size >= req.rounded + LARGE_BUFFER) {
                return None;
            }
        }
        let State { arena, pools, .. } = g;
        pools.remove(&arena[id]);
        Some(id)
    }

    fn new_segment(&self, g: &mut State, req: &Request, sst: &'static StreamState) -> Option<BlockId> {
        if g.reserved + req.seg_size as u64 > self.allowed(g.fraction) {
            return None;
        }
        let ptr = segment::map(req.seg_size)? as usize;
        if self.global {
            segment::register(ptr, req.seg_size, self.device);
        }
        let id = g.arena.insert(Block {
            ptr,
            size: req.seg_size,
            requested: 0,
            stream: req.stream,
            sst,
            small: req.small,
            state: BlockState::Free,
            prev: None,
            next: None,
            seg: ptr,
            uses: Vec::new(),
            freed_tick: 0,
        });
        g.segments.insert(
            ptr,
            Segment { size: req.seg_size, small: req.small, head: id, last_free_seq: 0 },
        );
        g.reserved += req.seg_size as u64;
        let s = &mut g.stats;
        update(&mut s.segment, req.small, 1);
        update(&mut s.reserved_bytes, req.small, req.seg_size as i64);
        s.num_device_alloc += 1;
        if self.oversize(req.seg_size) {
            s.oversize_segments.update(1);
        }
        Some(id)
    }

    /// Hands out free block `id` (not in a pool), splitting off the unused tail if worthwhile.
    fn use_block(&self, g: &mut State, id: BlockId, req: &Request) -> *mut u8 {
        let State { arena, pools, stats, allocated, .. } = g;
        let (size, small) = (arena[id].size, arena[id].small);
        if arena[id].is_split() {
            // It stops being an inactive split block.
            update(&mut stats.inactive_split, small, -1);
            update(&mut stats.inactive_split_bytes, small, -(size as i64));
        }
        let remaining = size - req.rounded;
        let split = if small {
            remaining >= MIN_BLOCK_SIZE
        } else {
            !self.oversize(req.rounded) && remaining > SMALL_SIZE
        };
        if split {
            let b = &arena[id];
            let rest = Block {
                ptr: b.ptr + req.rounded,
                size: remaining,
                requested: 0,
                stream: b.stream,
                sst: b.sst,
                small,
                state: BlockState::Free,
                prev: Some(id),
                next: b.next,
                seg: b.seg,
                uses: Vec::new(),
                freed_tick: b.freed_tick,
            };
            let rid = arena.insert(rest);
            if let Some(n) = arena[rid].next {
                arena[n].prev = Some(rid);
            }
            arena[id].next = Some(rid);
            arena[id].size = req.rounded;
            pools.insert(&arena[rid], rid);
            update(&mut stats.inactive_split, small, 1);
            update(&mut stats.inactive_split_bytes, small, remaining as i64);
        }
        let b = &mut arena[id];
        b.state = BlockState::Allocated;
        b.requested = req.size;
        allocated.insert(b.ptr, id);
        let size = b.size as i64;
        update(&mut stats.allocation, small, 1);
        update(&mut stats.allocated_bytes, small, size);
        update(&mut stats.active, small, 1);
        update(&mut stats.active_bytes, small, size);
        update(&mut stats.requested_bytes, small, req.size as i64);
        if self.oversize(b.size) {
            stats.oversize_allocations.update(1);
        }
        b.ptr as *mut u8
    }

    /// Returns a block to the cache. Unknown pointers are ignored.
    pub fn free(&self, ptr: *mut u8) {
        let mut g = self.lock();
        let Some(id) = g.allocated.remove(&(ptr as usize)) else { return };
        let State { arena, stats, .. } = &mut *g;
        let b = &mut arena[id];
        update(&mut stats.allocation, b.small, -1);
        update(&mut stats.allocated_bytes, b.small, -(b.size as i64));
        update(&mut stats.requested_bytes, b.small, -(b.requested as i64));
        if self.oversize(b.size) {
            stats.oversize_allocations.update(-1);
        }
        // Everything queued so far on the block's own stream may still use it.
        let free_seq = b.sst.submitted();
        let waits: Vec<_> = std::mem::take(&mut b.uses)
            .into_iter()
            .map(|s| (s, s.submitted()))
            .filter(|&(s, t)| !s.is_done(t))
            .collect();
        if waits.is_empty() {
            g.free_block(id, free_seq);
        } else {
            b.state = BlockState::Pending;
            g.pending.push(Pending { block: id, free_seq, waits });
        }
    }

    /// Marks the allocation at `ptr` as used by `s`: when freed, it is reused only after the
    /// work submitted to `s` by then has completed.
    pub fn record_stream(&self, ptr: *mut u8, s: Stream) {
        let Ok(st) = state_of(s) else { return };
        let mut g = self.lock();
        let Some(&id) = g.allocated.get(&(ptr as usize)) else { return };
        let b = &mut g.arena[id];
        if !std::ptr::eq(b.sst, st) && !b.uses.iter().any(|u| std::ptr::eq(*u, st)) {
            b.uses.push(st);
        }
    }

    /// Waits for the device, then unmaps every cached segment that holds no allocation.
    pub fn empty_cache(&self) {
        let synced = wait_idle(self.device);
        let mut g = self.lock();
        g.stats.num_sync_all_streams += synced as i64;
        g.process_pending();
        self.release_cached(&mut g, None);
    }

    /// Unmaps fully free segments whose stream has finished with them, oldest first, until
    /// reserved memory is at most `limit` (all of them if None).
    fn release_cached(&self, g: &mut State, limit: Option<u64>) {
        let mut victims: Vec<(u64, usize)> = g
            .segments
            .iter()
            .filter(|(_, s)| {
                let head = &g.arena[s.head];
                head.state == BlockState::Free && head.next.is_none() && head.sst.is_done(s.last_free_seq)
            })
            .map(|(&ptr, s)| (g.arena[s.head].freed_tick, ptr))
            .collect();
        victims.sort_unstable();
        for (_, ptr) in victims {
            if limit.is_some_and(|l| g.reserved <= l) {
                break;
            }
            self.release_segment(g, ptr);
        }
    }

    fn release_segment(&self, g: &mut State, ptr: usize) {
        let Some(seg) = g.segments.remove(&ptr) else { return };
        let b = g.arena.remove(seg.head);
        g.pools.remove(&b);
        if self.global {
            segment::unregister(ptr);
        }
        // SAFETY: the whole segment is free and its stream has completed all work queued
        // before its last free, so nothing can access it any more.
        unsafe { segment::unmap(ptr as *mut u8, seg.size) };
        g.reserved -= seg.size as u64;
        let s = &mut g.stats;
        update(&mut s.segment, seg.small, -1);
        update(&mut s.reserved_bytes, seg.small, -(seg.size as i64));
        s.num_device_free += 1;
        if self.oversize(seg.size) {
            s.oversize_segments.update(-1);
        }
    }

    fn oom(&self, g: &State, tried: usize) -> RtError {
        let allowed = self.allowed(g.fraction);
        let allowed = if allowed < self.capacity { format!("{} allowed; ", format_size(allowed)) } else { String::new() };
        RtError::new(
            ErrorKind::OutOfMemory,
            format!(
                "NPU out of memory. Tried to allocate {} (NPU {}; {} total capacity; {} already allocated; \
                 {} free; {allowed}{} reserved in total by PyTorch) If reserved memory is >> allocated \
                 memory try setting max_split_size_mb in PYTORCH_NPU_ALLOC_CONF to avoid fragmentation.",
                format_size(tried as u64),
                self.device,
                format_size(self.capacity),
                format_size(g.stats.allocated_bytes[0].current.max(0) as u64),
                format_size(self.capacity.saturating_sub(g.reserved)),
                format_size(g.reserved),
            ),
        )
    }

    pub fn stats(&self) -> DeviceStats {
        self.lock().stats.clone()
    }

    pub fn reset_peak_stats(&self) {
        self.lock().stats.reset_peak();
    }

    pub fn reset_accumulated_stats(&self) {
        self.lock().stats.reset_accumulated();
    }

    pub fn set_memory_fraction(&self, fraction: f64) -> Result<()> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(RtError::invalid(format!("invalid memory fraction {fraction}: expected a value in [0, 1]")));
        }
        self.lock().fraction = fraction;
        Ok(())
    }

    /// (free, total): total is the capacity, free what this process has not reserved.
    pub fn mem_get_info(&self) -> (u64, u64) {
        (self.capacity.saturating_sub(self.lock().reserved), self.capacity)
    }

    /// Size of the block backing the live allocation starting at `ptr`.
    pub fn alloc_size(&self, ptr: *const u8) -> Option<usize> {
        let g = self.lock();
        g.allocated.get(&(ptr as usize)).map(|&id| g.arena[id].size)
    }
}

impl State {
    /// Puts a block back in its pool, merging it with free neighbours.
    fn free_block(&mut self, id: BlockId, free_seq: u64) {
        self.tick += 1;
        let State { arena, pools, stats, segments, tick, .. } = self;
        let (small, size) = (arena[id].small, arena[id].size);
        update(&mut stats.active, small, -1);
        update(&mut stats.active_bytes, small, -(size as i64));
        let seg = segments.get_mut(&arena[id].seg).expect("allocator bug: block without segment");
        seg.last_free_seq = seg.last_free_seq.max(free_seq);

        // Merged neighbours were inactive split blocks; the result may be one again.
        let (mut d_count, mut d_bytes) = (0i64, 0i64);
        if let Some(p) = arena[id].prev.filter(|&p| arena[p].state == BlockState::Free) {
            pools.remove(&arena[p]);
            let pb = arena.remove(p);
            d_count -= 1;
            d_bytes -= pb.size as i64;
            let b = &mut arena[id];
            b.ptr = pb.ptr;
            b.size += pb.size;
            b.prev = pb.prev;
            if let Some(pp) = pb.prev {
                arena[pp].next = Some(id);
            }
            if seg.head == p {
                seg.head = id;
            }
        }
        if let Some(n) = arena[id].next.filter(|&n| arena[n].state == BlockState::Free) {
            pools.remove(&arena[n]);
            let nb = arena.remove(n);
            d_count -= 1;
            d_bytes -= nb.size as i64;
            let b = &mut arena[id];
            b.size += nb.size;
            b.next = nb.next;
            if let Some(nn) = nb.next {
                arena[nn].prev = Some(id);
            }
        }
        let b = &mut arena[id];
        b.state = BlockState::Free;
        b.freed_tick = *tick;
        if b.is_split() {
            d_count += 1;
            d_bytes += b.size as i64;
        }
        update(&mut stats.inactive_split, small, d_count);
        update(&mut stats.inactive_split_bytes, small, d_bytes);
        pools.insert(&arena[id], id);
    }

    /// Frees pending blocks whose recorded streams have caught up.
    fn process_pending(&mut self) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].waits.iter().all(|&(s, t)| s.is_done(t)) {
                let p = self.pending.swap_remove(i);
                self.free_block(p.block, p.free_seq);
            } else {
                i += 1;
            }
        }
    }
}

impl Drop for Allocator {
    /// Private allocators give their memory back; global ones live as long as the process.
    fn drop(&mut self) {
        wait_idle(self.device);
        let g = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for (&ptr, seg) in &g.segments {
            if self.global {
                segment::unregister(ptr);
            }
            // SAFETY: the allocator is gone, so are its users; its streams have been drained.
            unsafe { segment::unmap(ptr as *mut u8, seg.size) };
        }
    }
}
