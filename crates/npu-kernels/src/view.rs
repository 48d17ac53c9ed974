//! Strided views of raw memory, and the iteration shared by all kernels: dimension coalescing,
//! row-by-row walks over a range of logical (row-major) element indices, and the parallel split.

use crate::dtype::DType;
use crate::KernelError;
use rayon::prelude::*;
use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A tensor view: `ptr` points at the first element (storage offset already applied), strides
/// count elements. Any rank, 0-dim and zero-size included; stride 0 broadcasts.
#[derive(Clone, Debug)]
pub struct View {
    pub ptr: *mut u8,
    pub dtype: DType,
    pub sizes: Vec<i64>,
    pub strides: Vec<i64>,
}

// A view is a description of device memory; the caller (the device executor) owns the memory
// and guarantees it stays valid while a kernel runs.
unsafe impl Send for View {}
unsafe impl Sync for View {}

impl View {
    pub fn new(ptr: *mut u8, dtype: DType, sizes: Vec<i64>, strides: Vec<i64>) -> View {
        View {
            ptr,
            dtype,
            sizes,
            strides,
        }
    }

    /// A contiguous (row-major) view.
    pub fn contiguous(ptr: *mut u8, dtype: DType, sizes: &[i64]) -> View {
        let mut strides = vec![0i64; sizes.len()];
        let mut s = 1i64;
        for d in (0..sizes.len()).rev() {
            strides[d] = s;
            s = s.saturating_mul(sizes[d].max(1));
        }
        View {
            ptr,
            dtype,
            sizes: sizes.to_vec(),
            strides,
        }
    }

    /// Number of elements (0 if a size is negative, saturating on overflow; `validate` rejects both).
    pub fn numel(&self) -> usize {
        let mut n: usize = 1;
        for &s in &self.sizes {
            if s < 0 {
                return 0;
            }
            n = n.saturating_mul(s as usize);
        }
        n
    }

    /// PyTorch's definition: size-1 dims may have any stride; zero-size views are contiguous.
    pub fn is_contiguous(&self) -> bool {
        if self.numel() == 0 {
            return true;
        }
        let mut expected = 1i64;
        for (&size, &stride) in self.sizes.iter().zip(&self.strides).rev() {
            if size != 1 {
                if stride != expected {
                    return false;
                }
                expected = expected.saturating_mul(size);
            }
        }
        self.sizes.len() == self.strides.len()
    }

    /// The bytes `[start, end)` that the elements of a non-empty, validated view lie in.
    pub(crate) fn byte_span(&self) -> (usize, usize) {
        let (mut lo, mut hi) = (0i64, 0i64);
        for (&size, &stride) in self.sizes.iter().zip(&self.strides) {
            let reach = (size - 1) * stride;
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        let size = self.dtype.size() as i64;
        let base = self.ptr as i64;
        ((base + lo * size) as usize, (base + (hi + 1) * size) as usize)
    }

    /// Whether two contiguous views of as many elements each cover the very same elements
    /// (same start, same element size): an in-place op's input and output.
    pub(crate) fn same_elements(&self, other: &View) -> bool {
        self.ptr == other.ptr && self.dtype.size() == other.dtype.size()
    }

    /// Whether the two non-empty, validated views share no byte.
    pub(crate) fn disjoint(&self, other: &View) -> bool {
        let (a, b) = (self.byte_span(), other.byte_span());
        a.1 <= b.0 || b.1 <= a.0
    }

    /// Checks that the view can be walked without UB and returns its element count.
    pub(crate) fn validate(&self, op: &str) -> Result<usize, KernelError> {
        if self.sizes.len() != self.strides.len() {
            return Err(err(
                op,
                format!(
                    "view has {} sizes but {} strides",
                    self.sizes.len(),
                    self.strides.len()
                ),
            ));
        }
        let mut n: usize = 1;
        for &s in &self.sizes {
            if s < 0 {
                return Err(err(
                    op,
                    format!("negative size {s} in view {:?}", self.sizes),
                ));
            }
            n = n
                .checked_mul(s as usize)
                .filter(|&n| n <= isize::MAX as usize)
                .ok_or_else(|| err(op, format!("view of size {:?} is too large", self.sizes)))?;
        }
        if n == 0 {
            return Ok(0);
        }
        if self.ptr.is_null() {
            return Err(err(op, "null data pointer".into()));
        }
        if !(self.ptr as usize).is_multiple_of(self.dtype.align()) {
            return Err(err(
                op,
                format!(
                    "data pointer {:p} is not aligned for {}",
                    self.ptr,
                    self.dtype.name()
                ),
            ));
        }
        // Span of the view in bytes must fit isize, so pointer offsets cannot overflow.
        let mut span: i128 = 1;
        for (&size, &stride) in self.sizes.iter().zip(&self.strides) {
            span += (size as i128 - 1) * (stride as i128).abs();
        }
        if span * self.dtype.size() as i128 > isize::MAX as i128 {
            return Err(err(op, "view spans more memory than is addressable".into()));
        }
        Ok(n)
    }

    /// Outputs must not have two elements at one address (PyTorch's `assert_no_internal_overlap`
    /// for the case it can see from strides alone: a broadcast dimension).
    pub(crate) fn check_writable(&self, op: &str) -> Result<(), KernelError> {
        if self
            .sizes
            .iter()
            .zip(&self.strides)
            .any(|(&n, &s)| n > 1 && s == 0)
        {
            return Err(err(
                op,
                "unsupported operation: more than one element of the written-to \
                tensor refers to a single memory location. Please clone() the tensor before \
                performing the operation."
                    .into(),
            ));
        }
        Ok(())
    }
}

pub(crate) fn err(op: &str, msg: String) -> KernelError {
    KernelError(format!("{op}: {msg}"))
}

/// A raw base pointer that closures running on rayon threads may carry.
#[derive(Clone, Copy)]
pub(crate) struct Ptr(*mut u8);
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Ptr {
    pub(crate) fn new(p: *mut u8) -> Ptr {
        Ptr(p)
    }
    /// Typed pointer to element `off` (in elements).
    ///
    /// # Safety
    /// `off` must lie inside a validated view whose element type is `T`.
    #[inline(always)]
    pub(crate) unsafe fn at<T>(self, off: isize) -> *mut T {
        (self.0 as *mut T).offset(off)
    }
    /// Pointer to element `off` of `elem_size`-byte elements.
    ///
    /// # Safety
    /// As for `at`.
    #[inline(always)]
    pub(crate) unsafe fn byte_at(self, off: isize, elem_size: usize) -> *mut u8 {
        self.0.offset(off * elem_size as isize)
    }
}

/// The joint shape of K operands with equal sizes, simplified for iteration: size-1 dims dropped
/// and adjacent dims merged where every operand is contiguous across them. Row-major order of
/// logical indices is preserved, so index `i` here is element `i` of the original view.
pub(crate) struct Layout<const K: usize> {
    shape: Vec<usize>,
    strides: Vec<[isize; K]>,
}

impl<const K: usize> Layout<K> {
    /// `sizes` must have been validated, and every `strides[k]` must have its length.
    pub(crate) fn new(sizes: &[i64], strides: [&[i64]; K]) -> Self {
        let mut shape: Vec<usize> = Vec::with_capacity(sizes.len());
        let mut st: Vec<[isize; K]> = Vec::with_capacity(sizes.len());
        if sizes.contains(&0) {
            return Layout {
                shape: vec![0],
                strides: vec![[0; K]],
            };
        }
        for (d, &size) in sizes.iter().enumerate() {
            let n = size as usize;
            if n == 1 {
                continue;
            }
            let s: [isize; K] = std::array::from_fn(|k| strides[k][d] as isize);
            let mergeable = st.last().is_some_and(|outer| {
                (0..K).all(|k| s[k].checked_mul(n as isize) == Some(outer[k]))
            });
            if mergeable {
                let last = shape.len() - 1;
                shape[last] *= n;
                st[last] = s;
                continue;
            }
            shape.push(n);
            st.push(s);
        }
        if shape.is_empty() {
            shape.push(1);
            st.push([0; K]);
        }
        Layout { shape, strides: st }
    }

    /// Like `new` but dims where operand `k` has stride 0 are dropped: for writing one value
    /// everywhere, a broadcast destination dim needs to be visited once, not `size` times.
    pub(crate) fn without_broadcast(sizes: &[i64], strides: [&[i64]; K], k: usize) -> Self {
        let keep: Vec<usize> = (0..sizes.len())
            .filter(|&d| !(strides[k][d] == 0 && sizes[d] > 0))
            .collect();
        let sz: Vec<i64> = keep.iter().map(|&d| sizes[d]).collect();
        let st: Vec<Vec<i64>> = (0..K)
            .map(|k| keep.iter().map(|&d| strides[k][d]).collect())
            .collect();
        Layout::new(&sz, std::array::from_fn(|k| st[k].as_slice()))
    }

    /// The simplified dims: sizes and, per dim, the operands' element strides.
    pub(crate) fn dims(&self) -> (&[usize], &[[isize; K]]) {
        (&self.shape, &self.strides)
    }

    pub(crate) fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Element strides of the innermost dim, per operand.
    pub(crate) fn inner_strides(&self) -> [isize; K] {
        self.strides[self.shape.len() - 1]
    }

    /// Calls `f(first_index, offsets, len)` for each run of elements of `range` that lies in one
    /// innermost row: `offsets[k]` is operand k's element offset of `first_index`, and the run
    /// continues with `inner_strides()`.
    #[inline]
    #[allow(clippy::needless_range_loop)] // indexing several parallel arrays reads best
    pub(crate) fn for_each_row(
        &self,
        range: Range<usize>,
        mut f: impl FnMut(usize, [isize; K], usize),
    ) {
        if range.start >= range.end {
            return;
        }
        let nd = self.shape.len();
        let mut idx = vec![0usize; nd];
        let mut rem = range.start;
        for d in (0..nd).rev() {
            idx[d] = rem % self.shape[d];
            rem /= self.shape[d];
        }
        let mut off = [0isize; K];
        for d in 0..nd {
            for k in 0..K {
                off[k] += idx[d] as isize * self.strides[d][k];
            }
        }
        let inner = self.shape[nd - 1];
        let mut i = range.start;
        while i < range.end {
            let len = (inner - idx[nd - 1]).min(range.end - i);
            f(i, off, len);
            i += len;
            if i >= range.end {
                break;
            }
            // Step to the start of the next row, carrying into outer dims.
            idx[nd - 1] += len;
            for k in 0..K {
                off[k] += len as isize * self.strides[nd - 1][k];
            }
            let mut d = nd - 1;
            while d > 0 && idx[d] == self.shape[d] {
                for k in 0..K {
                    off[k] -= self.shape[d] as isize * self.strides[d][k];
                }
                idx[d] = 0;
                d -= 1;
                idx[d] += 1;
                for k in 0..K {
                    off[k] += self.strides[d][k];
                }
            }
        }
    }
}

/// Steps the row-major multi-index `pos` within `sizes` (the last dim fastest; wraps to all
/// zeros after the last position).
pub(crate) fn next_index(pos: &mut [i64], sizes: &[i64]) {
    for d in (0..pos.len()).rev() {
        pos[d] += 1;
        if pos[d] < sizes[d] {
            return;
        }
        pos[d] = 0;
    }
}

thread_local! {
    static SEQUENTIAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every kernel it calls on this thread staying on this thread (no rayon split).
/// Results never depend on the split; this exists to prove that in tests and for callers that
/// must not touch the global pool.
pub fn with_sequential<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SEQUENTIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SEQUENTIAL.with(|s| s.replace(true)));
    f()
}

/// Whether this thread is inside [`with_sequential`].
pub(crate) fn sequential() -> bool {
    SEQUENTIAL.with(|s| s.get())
}

/// Runs `f(i)` for every `i < n`, each call whole on one of the compute threads (the caller
/// included); returns the first error.
pub fn for_each_parallel<E: Send>(n: usize, f: impl Fn(usize) -> Result<(), E> + Sync) -> Result<(), E> {
    let first = std::sync::Mutex::new(None);
    par_ranges(n, 1, |r| {
        for i in r {
            if let Err(e) = f(i) {
                first.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                return;
            }
        }
    });
    first.into_inner().unwrap_or_else(|p| p.into_inner()).map_or(Ok(()), Err)
}

/// Splits `0..n` into contiguous chunks of at least `grain` indices and runs `f` on each,
/// in parallel on rayon's global pool when there is enough work for two chunks.
pub(crate) fn par_ranges(n: usize, grain: usize, f: impl Fn(Range<usize>) + Sync) {
    let threads = rayon::current_num_threads();
    let grain = grain.max(1);
    if n < 2 * grain || threads <= 1 || SEQUENTIAL.with(|s| s.get()) {
        f(0..n);
        return;
    }
    // A few chunks per thread so an unlucky slow thread does not hold everyone up.
    let chunk = n.div_ceil(threads * 4).max(grain);
    let chunks = n.div_ceil(chunk);
    let run = |c: usize| f(c * chunk..((c + 1) * chunk).min(n));
    if rayon::current_thread_index().is_some() {
        // Already on a pool thread (nested parallelism): rayon's own splitting.
        (0..chunks).into_par_iter().for_each(run);
    } else {
        shared_chunks(chunks, threads - 1, &run);
    }
}

/// The chunks of one `shared_chunks` call, claimed one at a time by the calling thread from the
/// front and by helper jobs on the pool from the back. The caller (a stream's worker) so keeps
/// to the front of the range from one kernel to the next, and a kernel over the tensors the
/// last one wrote finds that part in its own core's cache.
struct Shared {
    /// The unclaimed chunks `front..back`, as `back << 32 | front`.
    ends: AtomicU64,
    done: AtomicUsize,
    panicked: AtomicBool,
    /// The caller's `f`, lifetime erased: dereferenced only after claiming a chunk, and the
    /// caller returns only once every claimed chunk is done (see `claim_and_run`).
    f: *const (dyn Fn(usize) + Sync),
}
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// Runs chunks until none is left. A panic is caught and recorded (the remaining chunks
    /// are then claimed without running), so the caller never waits for a chunk forever.
    fn claim_and_run(&self, from_back: bool) {
        while let Some(c) = self.claim(from_back) {
            if !self.panicked.load(Ordering::Relaxed) {
                // SAFETY: chunk `c` is claimed and not done, so the caller is still waiting
                // in `shared_chunks` and `f` is alive.
                let f = unsafe { &*self.f };
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c))).is_err() {
                    self.panicked.store(true, Ordering::Relaxed);
                }
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }

    /// The next chunk from the front or the back, if any is left.
    fn claim(&self, from_back: bool) -> Option<usize> {
        let mut cur = self.ends.load(Ordering::Relaxed);
        loop {
            let (front, back) = (cur & 0xFFFF_FFFF, cur >> 32);
            if front >= back {
                return None;
            }
            let (next, c) = if from_back { ((back - 1) << 32 | front, back - 1) } else { (back << 32 | (front + 1), front) };
            match self.ends.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(c as usize),
                Err(now) => cur = now,
            }
        }
    }
}

/// Runs `f(0..chunks)` on the calling thread (not a pool thread) and on up to `helpers` jobs
/// spawned on the pool. The caller starts at once and takes chunks itself: no wait for a pool
/// thread to wake before the work starts, and none for one that woke too late to get a chunk
/// (rayon's `par_iter` from outside the pool waits for both, at tens of µs per kernel on these
/// VMs). Returns when every chunk is done; re-raises a panic of `f`.
fn shared_chunks(chunks: usize, helpers: usize, f: &(dyn Fn(usize) + Sync)) {
    // SAFETY: only the lifetime is erased; see `Shared::f`.
    let f: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
    let shared = Arc::new(Shared {
        ends: AtomicU64::new((chunks as u64) << 32),
        done: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        f,
    });
    for _ in 0..helpers.min(chunks - 1) {
        let s = shared.clone();
        rayon::spawn(move || s.claim_and_run(true));
    }
    shared.claim_and_run(false);
    // The last chunks finish on other threads within about one chunk's time.
    while shared.done.load(Ordering::Acquire) < chunks {
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    if shared.panicked.load(Ordering::Relaxed) {
        panic!("a parallel kernel chunk panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_chunks_run_each_chunk_once_from_many_threads() {
        std::thread::scope(|sc| {
            for t in 0..4 {
                sc.spawn(move || {
                    for round in 0..200 {
                        let chunks = 1 + (t * 7 + round) % 13;
                        let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
                        shared_chunks(chunks, 1 + round % 3, &|c| {
                            hits[c].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }

    #[test]
    fn for_each_parallel_runs_each_index_once_and_returns_an_error() {
        let hits: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
        let r: Result<(), ()> = for_each_parallel(hits.len(), |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        assert!(r.is_ok() && hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        let r = for_each_parallel(37, |i| if i % 10 == 3 { Err(i) } else { Ok(()) });
        assert!(matches!(r, Err(i) if i % 10 == 3));
        assert_eq!(for_each_parallel(0, |_| Err(())), Ok(()));
    }

    #[test]
    fn a_panicking_chunk_is_reraised_after_the_others() {
        let done = AtomicUsize::new(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shared_chunks(8, 1, &|c| {
                if c == 3 {
                    panic!("chunk 3");
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        }));
        assert!(r.is_err());
        // Nothing runs after the call returned; the chunks claimed after the panic may be skipped.
        let d = done.load(Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(done.load(Ordering::Relaxed), d);
    }

    fn rows<const K: usize>(l: &Layout<K>, r: Range<usize>) -> Vec<(usize, [isize; K], usize)> {
        let mut v = vec![];
        l.for_each_row(r, |i, o, n| v.push((i, o, n)));
        v
    }

    #[test]
    fn coalesces_contiguous_and_drops_unit_dims() {
        let l = Layout::new(&[2, 1, 3, 4], [&[12, 99, 4, 1], &[12, 5, 4, 1]]);
        assert_eq!(l.shape, vec![24]);
        assert_eq!(l.inner_strides(), [1, 1]);
        // transposed second operand blocks the merge of the last two dims
        let l = Layout::new(&[2, 3, 4], [&[12, 4, 1], &[12, 1, 3]]);
        assert_eq!(l.shape, vec![2, 3, 4]);
        let l = Layout::new(&[], [&[]]);
        assert_eq!((l.shape.clone(), l.numel()), (vec![1], 1));
        let l = Layout::new(&[3, 0], [&[1, 1]]);
        assert_eq!(l.numel(), 0);
    }

    #[test]
    fn rows_cover_partial_ranges() {
        let l = Layout::new(&[3, 4], [&[10, 2]]);
        assert_eq!(
            rows(&l, 2..9),
            vec![(2, [4], 2), (4, [10], 4), (8, [20], 1)]
        );
        assert_eq!(rows(&l, 0..12).len(), 3);
        assert!(rows(&l, 5..5).is_empty());
    }

    #[test]
    fn broadcast_dims_dropped_for_writes() {
        let l = Layout::<1>::without_broadcast(&[4, 3], [&[0, 1]], 0);
        assert_eq!(l.numel(), 3);
    }

    #[test]
    fn validation() {
        let mut buf = [0u64; 4];
        let p = buf.as_mut_ptr() as *mut u8;
        assert!(View::new(p, DType::F32, vec![2], vec![1, 1])
            .validate("t")
            .is_err());
        assert!(View::new(p, DType::F32, vec![-1], vec![1])
            .validate("t")
            .is_err());
        assert!(
            View::new(std::ptr::null_mut(), DType::F32, vec![2], vec![1])
                .validate("t")
                .is_err()
        );
        assert_eq!(
            View::new(std::ptr::null_mut(), DType::F32, vec![0], vec![1])
                .validate("t")
                .unwrap(),
            0
        );
        assert!(View::new(p.wrapping_add(1), DType::F32, vec![1], vec![1])
            .validate("t")
            .is_err());
        assert!(View::new(p, DType::F32, vec![i64::MAX, 2], vec![1, 1])
            .validate("t")
            .is_err());
        assert!(View::new(p, DType::F32, vec![2, 2], vec![i64::MAX / 2, 1])
            .validate("t")
            .is_err());
        assert!(View::new(p, DType::F32, vec![2, 3], vec![0, 1])
            .check_writable("t")
            .is_err());
        assert!(View::new(p, DType::F32, vec![1, 3], vec![0, 1])
            .check_writable("t")
            .is_ok());
        assert!(View::contiguous(p, DType::F32, &[2, 3]).is_contiguous());
        assert!(!View::new(p, DType::F32, vec![2, 3], vec![1, 2]).is_contiguous());
        assert!(View::new(p, DType::F32, vec![2, 1], vec![1, 7]).is_contiguous());
    }
}
