//! Per-thread scratch buffers kept between kernel calls. Fresh pages cost a page fault each on
//! first touch: that took a fifth of a 1024 x 1024 bf16 product, and the column buffers of a
//! convolution are as large again. Buffers start on a cache line: an AMX tile load whose rows
//! straddle two lines measured 6x slower (17 ns against 2.6 ns per 1 KiB tile), and an
//! AVX-512 load across a line boundary costs two.

use std::cell::RefCell;

/// Largest buffer kept for a later call (64 MiB); larger ones are freed after use.
const KEEP_LINES: usize = 1 << 20;
/// Buffers kept per thread (a kernel holds at most this many at once).
const KEEP_COUNT: usize = 4;

/// One cache line: the unit (and alignment) of scratch buffers.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u64; 8]);

thread_local! {
    static POOL: RefCell<Vec<Vec<Line>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of at least the bytes asked for, 64-byte aligned. Its contents are initialized
/// (zero when first allocated) but otherwise unspecified: whatever the last user left.
pub(crate) struct Scratch(Vec<Line>);

impl Scratch {
    /// Room for `len` values of `T`, which must be a plain number type (any bit pattern valid).
    pub(crate) fn take<T>(len: usize) -> Scratch {
        debug_assert!(std::mem::align_of::<T>() <= 8);
        let lines = (len * std::mem::size_of::<T>()).div_ceil(64);
        if lines == 0 {
            return Scratch(Vec::new());
        }
        // the smallest kept buffer that is large enough, else the largest (grown below)
        let mut v = POOL.with(|p| {
            let mut p = p.borrow_mut();
            let fit = (0..p.len()).filter(|&i| p[i].len() >= lines).min_by_key(|&i| p[i].len());
            let pick = fit.or_else(|| (0..p.len()).max_by_key(|&i| p[i].len()));
            pick.map(|i| p.swap_remove(i)).unwrap_or_default()
        });
        if v.len() < lines {
            v = vec![Line([0; 8]); lines];
        }
        Scratch(v)
    }

    /// The start of the buffer as `T` (see [`Scratch::take`]).
    pub(crate) fn ptr<T>(&mut self) -> *mut T {
        self.0.as_mut_ptr() as *mut T
    }

    /// The first `len` values of the buffer as a slice of `T`.
    ///
    /// # Safety
    /// As for [`Scratch::take`]: `T` is a plain number type, and `len` is at most what was taken.
    pub(crate) unsafe fn slice<T>(&mut self, len: usize) -> &mut [T] {
        assert!(len * std::mem::size_of::<T>() <= self.0.len() * 64, "scratch buffer too small");
        std::slice::from_raw_parts_mut(self.ptr::<T>(), len)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.len() <= KEEP_LINES {
            let v = std::mem::take(&mut self.0);
            POOL.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < KEEP_COUNT {
                    p.push(v);
                } else if let Some(i) = (0..p.len()).min_by_key(|&i| p[i].len()).filter(|&i| p[i].len() < v.len()) {
                    p[i] = v; // keep the larger of the two
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    #[test]
    fn buffers_are_reused_and_distinct_while_held() {
        let first = {
            let mut a = Scratch::take::<f32>(1000);
            let p = a.ptr::<f32>();
            unsafe { p.write(7.0) };
            p as usize
        };
        let mut a = Scratch::take::<f32>(500);
        assert_eq!(a.ptr::<f32>() as usize, first, "a kept buffer large enough is reused");
        assert_eq!(unsafe { *a.ptr::<f32>() }, 7.0, "contents stay initialized");
        let mut b = Scratch::take::<f64>(10);
        assert_ne!(a.ptr::<u8>(), b.ptr::<u8>(), "two held buffers never alias");
        assert!([a.ptr::<u8>(), b.ptr::<u8>()].iter().all(|p| *p as usize % 64 == 0), "buffers start on a cache line");
        let mut big = Scratch::take::<u32>(3000);
        unsafe { big.ptr::<u32>().add(2999).write(1) };
    }
}
