//! Caching allocator semantics, on private allocators with small capacities.

use std::time::Duration;

use npu_runtime::config::AllocConf;
use npu_runtime::{round_size, segment_size, Allocator, ErrorKind, Stream};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// A stream of device 0 reserved for one test (ids are fixed so tests do not share them).
fn stream(id: i64) -> Stream {
    npu_runtime::stream_from_id(0, id).unwrap()
}

fn sleeper(ms: u64) -> npu_runtime::Work {
    Box::new(move || {
        std::thread::sleep(Duration::from_millis(ms));
        Ok(())
    })
}

#[test]
fn rounding_and_segment_sizes() {
    assert_eq!(round_size(1), Some(512));
    assert_eq!(round_size(512), Some(512));
    assert_eq!(round_size(513), Some(1024));
    assert_eq!(round_size(usize::MAX), None);
    assert_eq!(segment_size(512), Some(2 * MIB));
    assert_eq!(segment_size(MIB), Some(2 * MIB));
    assert_eq!(segment_size(MIB + 512), Some(20 * MIB));
    assert_eq!(segment_size(10 * MIB - 512), Some(20 * MIB));
    assert_eq!(segment_size(10 * MIB), Some(10 * MIB));
    assert_eq!(segment_size(11 * MIB), Some(12 * MIB));
}

#[test]
fn small_and_large_pools() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let s = stream(1);
    let p_small = a.alloc(1000, s).unwrap();
    let p_mid = a.alloc(2 * MIB, s).unwrap();
    let p_big = a.alloc(29 * MIB + 1, s).unwrap();
    assert_eq!(a.alloc_size(p_small), Some(1024));
    assert_eq!(a.alloc_size(p_mid), Some(2 * MIB));
    assert_eq!(a.alloc_size(p_big), Some(30 * MIB)); // unsplit: the remainder is < 1 MiB
    let st = a.stats();
    assert_eq!(st.segment[1].current, 1);
    assert_eq!(st.segment[2].current, 2);
    assert_eq!(st.reserved_bytes[1].current, 2 * MIB as i64);
    assert_eq!(st.reserved_bytes[2].current, 50 * MIB as i64);
    assert_eq!(st.reserved_bytes[0].current, 52 * MIB as i64);
    assert_eq!(st.allocated_bytes[0].current, (1024 + 32 * MIB) as i64);
    assert_eq!(st.requested_bytes[0].current, (1000 + 31 * MIB + 1) as i64);
    let snap = a.snapshot();
    assert_eq!(snap.len(), 3);
    assert_eq!(snap.iter().filter(|s| s.is_large).count(), 2);
    assert!((p_small as usize).is_multiple_of(512) && (p_mid as usize).is_multiple_of(512));
    for p in [p_small, p_mid, p_big] {
        a.free(p);
    }
}

#[test]
fn split_then_merge_reuses_the_merged_block() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let s = stream(2);
    let pa = a.alloc(512 * KIB, s).unwrap();
    let pb = a.alloc(512 * KIB, s).unwrap();
    let pc = a.alloc(512 * KIB, s).unwrap();
    // All three come from one 2 MiB small segment, in address order.
    assert_eq!(pb as usize, pa as usize + 512 * KIB);
    assert_eq!(pc as usize, pb as usize + 512 * KIB);
    let st = a.stats();
    assert_eq!(st.segment[0].current, 1);
    assert_eq!(st.inactive_split[0].current, 1); // the 512 KiB tail
    assert_eq!(st.inactive_split_bytes[0].current, 512 * KIB as i64);

    a.free(pb);
    a.free(pa);
    let snap = a.snapshot();
    let sizes: Vec<_> = snap[0].blocks.iter().map(|b| (b.size, b.allocated)).collect();
    assert_eq!(sizes, vec![(MIB, false), (512 * KIB, true), (512 * KIB, false)]);
    let st = a.stats();
    assert_eq!(st.inactive_split[0].current, 2);
    assert_eq!(st.inactive_split_bytes[0].current, (MIB + 512 * KIB) as i64);

    // The merged 1 MiB block is the best fit for 1 MiB.
    let pm = a.alloc(MIB, s).unwrap();
    assert_eq!(pm, pa);
    assert_eq!(a.stats().segment[0].current, 1);
    a.free(pm);
    a.free(pc);
    let snap = a.snapshot();
    assert_eq!(snap[0].blocks.len(), 1, "everything merges back into one block");
    let st = a.stats();
    assert_eq!(st.inactive_split[0].current, 0);
    assert_eq!(st.inactive_split_bytes[0].current, 0);
}

#[test]
fn best_fit_picks_the_smallest_block_that_fits() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let s = stream(3);
    let x1 = a.alloc(4 * MIB, s).unwrap();
    let _g1 = a.alloc(2 * MIB, s).unwrap();
    let x2 = a.alloc(3 * MIB, s).unwrap();
    let _g2 = a.alloc(2 * MIB, s).unwrap();
    assert_eq!(a.stats().segment[0].current, 1);
    a.free(x1);
    a.free(x2);
    // Free: 4 MiB, 3 MiB and the 9 MiB tail.
    assert_eq!(a.alloc(3 * MIB, s).unwrap(), x2);
    assert_eq!(a.alloc(4 * MIB, s).unwrap(), x1);
    // Small pool too: free 8 KiB and 4 KiB holes, ask for 3 KiB.
    let h1 = a.alloc(8 * KIB, s).unwrap();
    let _k1 = a.alloc(512, s).unwrap();
    let h2 = a.alloc(4 * KIB, s).unwrap();
    let _k2 = a.alloc(512, s).unwrap();
    a.free(h1);
    a.free(h2);
    assert_eq!(a.alloc(3 * KIB, s).unwrap(), h2);
}

#[test]
fn blocks_are_cached_per_stream() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let (s1, s2) = (stream(4), stream(5));
    let p = a.alloc(MIB, s1).unwrap();
    a.free(p);
    let q = a.alloc(MIB, s2).unwrap();
    assert_ne!(p, q, "a block freed on one stream is not handed to another");
    assert_eq!(a.stats().segment[0].current, 2);
    assert_eq!(a.alloc(MIB, s1).unwrap(), p);
}

#[test]
fn stats_are_exact_and_return_to_zero() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let s = stream(6);
    let sizes = [100, 4000, 700 * KIB, 3 * MIB, 12 * MIB + 5, 25 * MIB, 600];
    let ptrs: Vec<_> = sizes.iter().map(|&n| a.alloc(n, s).unwrap()).collect();
    let st = a.stats();
    let rounded: usize = sizes.iter().map(|&n| round_size(n).unwrap()).sum();
    assert_eq!(st.allocation[0].current, sizes.len() as i64);
    assert_eq!(st.allocation[1].current, 4);
    assert_eq!(st.allocation[2].current, 3);
    // 25 MiB gets its whole 26 MiB segment: a 1 MiB remainder is not split off.
    assert_eq!(st.allocated_bytes[0].current, (rounded + MIB) as i64);
    assert_eq!(st.active_bytes[0].current, (rounded + MIB) as i64);
    assert_eq!(st.requested_bytes[0].current, sizes.iter().sum::<usize>() as i64);
    // Small: one 2 MiB segment. Large: 3 MiB -> 20 MiB segment, split; 12 MiB+5 fits the
    // 17 MiB remainder (split again); 25 MiB -> its own 26 MiB segment.
    assert_eq!(st.segment[0].current, 3);
    assert_eq!(st.reserved_bytes[0].current, (2 + 20 + 26) as i64 * MIB as i64);
    assert_eq!(st.num_device_alloc, 3);
    let before_free = st.clone();

    for p in ptrs {
        a.free(p);
    }
    let st = a.stats();
    for arr in [&st.allocation, &st.active, &st.allocated_bytes, &st.active_bytes, &st.requested_bytes, &st.inactive_split, &st.inactive_split_bytes] {
        assert!(arr.iter().all(|s| s.current == 0), "{arr:?}");
    }
    assert_eq!(st.allocation[0].allocated, sizes.len() as i64);
    assert_eq!(st.allocation[0].freed, sizes.len() as i64);
    assert_eq!(st.allocated_bytes[0].peak, before_free.allocated_bytes[0].current);
    assert_eq!(st.reserved_bytes[0].current, before_free.reserved_bytes[0].current);

    a.empty_cache();
    let st = a.stats();
    assert_eq!(st.reserved_bytes[0].current, 0);
    assert_eq!(st.segment[0].current, 0);
    assert_eq!(st.num_device_free, 3);
    assert_eq!(a.mem_get_info(), (1 << 30, 1 << 30));
    assert!(a.snapshot().is_empty());
}

#[test]
fn peak_and_reset() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let s = stream(7);
    let p: Vec<_> = (0..3).map(|_| a.alloc(MIB, s).unwrap()).collect();
    a.free(p[0]);
    a.free(p[1]);
    let st = a.stats();
    assert_eq!(st.allocated_bytes[0].peak, 3 * MIB as i64);
    assert_eq!(st.allocated_bytes[0].current, MIB as i64);
    a.reset_peak_stats();
    let st = a.stats();
    assert_eq!(st.allocated_bytes[0].peak, MIB as i64);
    assert_eq!(st.allocation[0].peak, 1);
    a.reset_accumulated_stats();
    let st = a.stats();
    assert_eq!(st.allocation[0].allocated, 0);
    assert_eq!(st.allocation[0].freed, 0);
    assert_eq!(st.allocation[0].current, 1);
    assert_eq!(st.num_device_alloc, 0);
    a.free(p[2]);
    assert_eq!(a.stats().allocation[0].freed, 1);
}

#[test]
fn out_of_memory_then_recovery() {
    let a = Allocator::with_capacity(0, 64 * MIB as u64);
    let s = stream(8);
    let p = a.alloc(40 * MIB, s).unwrap();
    let e = a.alloc(40 * MIB, s).unwrap_err();
    assert_eq!(e.kind, ErrorKind::OutOfMemory);
    assert!(e.msg.starts_with("NPU out of memory. Tried to allocate 40.00 MiB (NPU 0; 64.00 MiB total capacity; 40.00 MiB already allocated; 24.00 MiB free; 40.00 MiB reserved in total by PyTorch)"), "{}", e.msg);
    let st = a.stats();
    assert_eq!(st.num_ooms, 1);
    assert_eq!(st.num_alloc_retries, 1);
    assert_eq!(st.allocation[0].current, 1);
    // Something that fits still works, and freeing makes room again.
    let small = a.alloc(20 * MIB, s).unwrap();
    a.free(p);
    let q = a.alloc(40 * MIB, s).unwrap();
    a.free(q);
    a.free(small);
    assert_eq!(a.stats().allocated_bytes[0].current, 0);
    // Absurd sizes are an OOM error, not a panic.
    assert_eq!(a.alloc(usize::MAX, s).unwrap_err().kind, ErrorKind::OutOfMemory);
    assert_eq!(a.alloc(usize::MAX / 2, s).unwrap_err().kind, ErrorKind::OutOfMemory);
}

#[test]
fn retry_releases_cached_segments() {
    let a = Allocator::with_capacity(0, 64 * MIB as u64);
    let s = stream(9);
    let p = a.alloc(30 * MIB, s).unwrap();
    a.free(p); // cached, 30 MiB reserved
    let q = a.alloc(40 * MIB, s).unwrap(); // needs the cached segment released first
    let st = a.stats();
    assert_eq!(st.num_alloc_retries, 1);
    assert_eq!(st.num_ooms, 0);
    assert_eq!(st.num_device_free, 1);
    assert_eq!(st.reserved_bytes[0].current, 40 * MIB as i64);
    a.free(q);
}

#[test]
fn memory_fraction_limits_reserved_memory() {
    let a = Allocator::with_capacity(0, 100 * MIB as u64);
    let s = stream(10);
    a.set_memory_fraction(0.5).unwrap();
    let e = a.alloc(60 * MIB, s).unwrap_err();
    assert_eq!(e.kind, ErrorKind::OutOfMemory);
    assert!(e.msg.contains("50.00 MiB allowed"), "{}", e.msg);
    let p = a.alloc(40 * MIB, s).unwrap();
    assert!(a.alloc(20 * MIB, s).is_err());
    for bad in [1.5, -0.1, f64::NAN] {
        assert_eq!(a.set_memory_fraction(bad).unwrap_err().kind, ErrorKind::InvalidArgument);
    }
    a.set_memory_fraction(1.0).unwrap();
    let q = a.alloc(20 * MIB, s).unwrap();
    a.free(p);
    a.free(q);
}

#[test]
fn max_split_size_keeps_oversize_blocks_whole() {
    let conf = AllocConf { max_split_size: Some(20 * MIB), gc_threshold: None };
    let a = Allocator::with_config(0, 1 << 30, conf);
    let s = stream(11);
    assert_eq!(a.stats().max_split_size, 20 * MIB as i64);
    let big = a.alloc(30 * MIB, s).unwrap();
    let st = a.stats();
    assert_eq!(st.oversize_allocations.current, 1);
    assert_eq!(st.oversize_segments.current, 1);
    a.free(big);
    // A normal request does not carve up the cached oversize block.
    let small = a.alloc(8 * MIB, s).unwrap();
    assert_ne!(small, big);
    assert_eq!(a.stats().segment[0].current, 2);
    // An oversize request that wastes < 20 MiB takes it whole, unsplit.
    let p = a.alloc(25 * MIB, s).unwrap();
    assert_eq!(p, big);
    assert_eq!(a.alloc_size(p), Some(30 * MIB));
    a.free(p);
    a.free(small);
    assert_eq!(a.stats().oversize_allocations.current, 0);
    a.empty_cache();
    assert_eq!(a.stats().oversize_segments.current, 0);
    // Default: no limit reported as -1.
    assert_eq!(Allocator::with_capacity(0, MIB as u64).stats().max_split_size, -1);
}

#[test]
fn garbage_collection_threshold_releases_before_mapping() {
    let conf = AllocConf { max_split_size: None, gc_threshold: Some(0.5) };
    let a = Allocator::with_config(0, 100 * MIB as u64, conf);
    let s = stream(12);
    let pa = a.alloc(30 * MIB, s).unwrap();
    let pb = a.alloc(30 * MIB, s).unwrap();
    a.free(pa); // 60 MiB reserved, above the 50 MiB threshold
    let pc = a.alloc(40 * MIB, s).unwrap();
    let st = a.stats();
    assert_eq!(st.num_device_free, 1, "the cached 30 MiB segment was collected");
    assert_eq!(st.num_alloc_retries, 0);
    assert_eq!(st.reserved_bytes[0].current, 70 * MIB as i64);
    a.free(pb);
    a.free(pc);
}

#[test]
fn record_stream_defers_reuse_until_the_other_stream_is_done() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let (s1, s2) = (stream(13), stream(14));
    let p = a.alloc(1000, s1).unwrap();
    a.record_stream(p, s2);
    s2.launch("slow_reader", sleeper(300)).unwrap();
    a.free(p);
    let st = a.stats();
    assert_eq!(st.allocation[0].current, 0);
    assert_eq!(st.active[0].current, 1, "still in use by s2");
    let q = a.alloc(1000, s1).unwrap();
    assert_ne!(q, p, "reused while s2 may still read it");
    assert!(!s2.query());
    s2.synchronize().unwrap();
    a.free(q);
    // Now the deferred free is processed on the next allocation and p is reusable.
    let r = a.alloc(1000, s1).unwrap();
    assert_eq!(r, p);
    let st = a.stats();
    assert_eq!(st.active[0].current, 1);
    a.free(r);
    assert_eq!(a.stats().active[0].current, 0);
}

#[test]
fn record_stream_with_finished_work_frees_at_once() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let (s1, s2) = (stream(15), stream(16));
    let p = a.alloc(1000, s1).unwrap();
    a.record_stream(p, s2);
    a.record_stream(p, s1); // own stream: nothing to do
    a.free(p);
    assert_eq!(a.stats().active[0].current, 0);
    assert_eq!(a.alloc(1000, s1).unwrap(), p);
}

#[test]
fn empty_cache_waits_for_pending_frees() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let (s1, s2) = (stream(17), stream(18));
    let p = a.alloc(5 * MIB, s1).unwrap();
    a.record_stream(p, s2);
    s2.launch("slow_reader", sleeper(100)).unwrap();
    a.free(p);
    a.empty_cache(); // synchronizes the device, so the deferred free completes
    let st = a.stats();
    assert_eq!(st.reserved_bytes[0].current, 0);
    assert_eq!(st.active[0].current, 0);
}

#[test]
fn snapshot_describes_blocks() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let s = stream(19);
    let p = a.alloc(3000, s).unwrap();
    let snap = a.snapshot();
    assert_eq!(snap.len(), 1);
    let seg = &snap[0];
    assert_eq!(seg.address, p as usize);
    assert_eq!(seg.total_size, 2 * MIB);
    assert_eq!((seg.allocated_size, seg.requested_size, seg.active_size), (3072, 3000, 3072));
    assert_eq!(seg.stream, 19);
    assert!(!seg.is_large);
    assert_eq!(seg.blocks.len(), 2);
    assert!(seg.blocks[0].allocated && seg.blocks[0].active);
    assert!(!seg.blocks[1].allocated && !seg.blocks[1].active);
    assert_eq!(seg.blocks[1].size, 2 * MIB - 3072);
    a.free(p);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let a = Allocator::with_capacity(0, 1 << 30);
    let s = stream(20);
    assert!(a.alloc(0, s).unwrap().is_null());
    a.free(std::ptr::null_mut());
    let mut x = 0u8;
    a.free(&mut x); // unknown pointer: ignored
    a.record_stream(&mut x, s);
    assert_eq!(a.alloc_size(&x), None);
    let p = a.alloc(10, s).unwrap();
    a.free(p);
    a.free(p); // double free: ignored
    assert_eq!(a.stats().allocation[0].current, 0);
    if npu_runtime::device_count() > 1 {
        let other = npu_runtime::Stream::default_for(1).unwrap();
        assert_eq!(a.alloc(10, other).unwrap_err().kind, ErrorKind::InvalidArgument);
    }
    let bogus = Stream { device: 0, id: 999 };
    assert_eq!(a.alloc(10, bogus).unwrap_err().kind, ErrorKind::InvalidArgument);
}

#[test]
fn device_work_can_allocate_and_retry_without_deadlock() {
    let a = std::sync::Arc::new(Allocator::with_capacity(0, 64 * MIB as u64));
    let s = stream(21);
    let p = a.alloc(30 * MIB, s).unwrap();
    a.free(p); // cached; the stream has nothing queued, so it may be unmapped
    let a2 = a.clone();
    let got = std::sync::Arc::new(std::sync::Mutex::new(None));
    let g = got.clone();
    s.launch("workspace", Box::new(move || {
        // From a worker the retry cannot wait for streams, but may release what is known free.
        let r = a2.alloc(40 * MIB, s).map_err(|e| e.msg)?;
        *g.lock().unwrap() = Some(r as usize);
        a2.free(r);
        Ok(())
    }))
    .unwrap();
    s.synchronize().unwrap();
    assert!(got.lock().unwrap().is_some());
    assert_eq!(a.stats().num_alloc_retries, 1);
}
