//! Concurrency stress: many host threads allocating, launching work on several streams that
//! fills and checks thread-unique patterns, and freeing. Any early reuse of a block shows up
//! either as an overlapping live range on the host or as a pattern mismatch on a stream.

use std::collections::BTreeMap;
use std::sync::Mutex;

use npu_runtime::*;

const DEVICE: DeviceIndex = 0;
const THREADS: u64 = 8;
const ITERS: u64 = 2500;
const STREAM_IDS: [i64; 4] = [0, 3, 7, 35];

/// Live allocations: start -> end.
static LIVE: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

fn claim(p: usize, len: usize) {
    let mut live = LIVE.lock().unwrap();
    if let Some((&s, &e)) = live.range(..=p).next_back() {
        assert!(e <= p, "block [{p:#x}, +{len}) handed out while [{s:#x}, {e:#x}) is live");
    }
    if let Some((&s, _)) = live.range(p + 1..).next() {
        assert!(p + len <= s, "block [{p:#x}, +{len}) overlaps live block at {s:#x}");
    }
    live.insert(p, p + len);
}

fn release(p: usize) {
    LIVE.lock().unwrap().remove(&p);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Word offsets touched for a buffer of `len` bytes: all of a small one, a sparse sample
/// (every 64 KiB plus the last word) of a large one, to keep page faults and memory traffic
/// modest.
fn offsets(len: usize) -> impl Iterator<Item = usize> {
    let words = len / 8;
    let step = if len <= 64 << 10 { 1 } else { 8192 };
    (0..words).step_by(step).chain(std::iter::once(words - 1))
}

fn fill(p: usize, len: usize, pat: u64) {
    for i in offsets(len) {
        // SAFETY: p..p+len is a live allocation owned by this work's stream.
        unsafe { (p as *mut u64).add(i).write_volatile(pat ^ i as u64) };
    }
}

fn check(p: usize, len: usize, pat: u64) -> std::result::Result<(), String> {
    for i in offsets(len) {
        // SAFETY: as in fill.
        let v = unsafe { (p as *const u64).add(i).read_volatile() };
        if v != pat ^ i as u64 {
            return Err(format!("word {i} of {p:#x} is {v:#x}, expected pattern {pat:#x}: block reused too early"));
        }
    }
    Ok(())
}

fn worker(t: u64) {
    let mut rng = Rng(0x9E3779B97F4A7C15 ^ (t + 1).wrapping_mul(0x2545F4914F6CDD1D));
    let streams: Vec<Stream> = STREAM_IDS.iter().map(|&id| stream_from_id(DEVICE, id).unwrap()).collect();
    let mut held: Vec<usize> = Vec::new();
    for it in 0..ITERS {
        let len = match rng.below(100) {
            0..=9 => (1 << 20) + rng.below(11 << 20) as usize, // large pool
            10..=29 => 8 + rng.below(504) as usize,            // tiny
            _ => 8 + rng.below(64 << 10) as usize,             // small pool
        };
        let len = len & !7;
        let sa = streams[rng.below(streams.len() as u64) as usize];
        let p = alloc(DEVICE, len, sa).unwrap() as usize;
        claim(p, len);
        let pat = (t << 48) | it;
        sa.launch("fill", Box::new(move || {
            fill(p, len, pat);
            Ok(())
        }))
        .unwrap();
        sa.launch("check", Box::new(move || check(p, len, pat))).unwrap();
        if rng.below(3) == 0 {
            // Read it on another stream too, ordered after the fill by an event.
            let sb = streams.iter().copied().find(|s| *s != sa && rng.below(2) == 0).unwrap_or(streams[(STREAM_IDS.iter().position(|&i| i == sa.id).unwrap() + 1) % streams.len()]);
            let ev = Event::new(false);
            ev.record(&sa).unwrap();
            sb.wait_event(&ev);
            sb.launch("check_other_stream", Box::new(move || {
                std::thread::yield_now();
                check(p, len, pat)
            }))
            .unwrap();
            record_stream(p as *mut u8, sb);
        }
        held.push(p);
        while held.len() > 4 || (!held.is_empty() && rng.below(2) == 0) {
            let q = held.swap_remove(rng.below(held.len() as u64) as usize);
            release(q);
            free(q as *mut u8);
        }
    }
    for q in held {
        release(q);
        free(q as *mut u8);
    }
}

#[test]
fn concurrent_alloc_launch_free() {
    let threads: Vec<_> = (0..THREADS).map(|t| std::thread::spawn(move || worker(t))).collect();
    for th in threads {
        th.join().unwrap();
    }
    for id in STREAM_IDS {
        stream_from_id(DEVICE, id).unwrap().synchronize().unwrap();
    }
    device_synchronize(DEVICE).unwrap();
    assert!(LIVE.lock().unwrap().is_empty());

    empty_cache(DEVICE).unwrap();
    let st = memory_stats(DEVICE).unwrap();
    for (name, arr) in [
        ("allocation", &st.allocation),
        ("allocated_bytes", &st.allocated_bytes),
        ("active", &st.active),
        ("active_bytes", &st.active_bytes),
        ("requested_bytes", &st.requested_bytes),
        ("inactive_split", &st.inactive_split),
        ("inactive_split_bytes", &st.inactive_split_bytes),
        ("segment", &st.segment),
        ("reserved_bytes", &st.reserved_bytes),
    ] {
        assert!(arr.iter().all(|s| s.current == 0), "{name}: {arr:?}");
    }
    assert_eq!(st.allocation[0].allocated, (THREADS * ITERS) as i64);
    assert_eq!(st.allocation[0].freed, (THREADS * ITERS) as i64);
    assert_eq!(st.num_device_alloc, st.num_device_free);
    assert!(snapshot(DEVICE).unwrap().is_empty());
    assert_eq!(mem_get_info(DEVICE).unwrap().0, device_capacity(DEVICE).unwrap());
}
