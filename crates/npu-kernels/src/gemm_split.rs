//! One matrix product of the `gemm` crate, split across the pool by this crate's fork-join.
//!
//! The crate's own `Parallelism::Rayon` enters rayon once per block of its loops. From a stream
//! worker, which is outside the pool, each entry is a cross-thread wake-up and a sleep on a
//! latch: products of up to a few hundred million multiply-adds ran at half the machine's
//! speed. Here each thread runs a sequential product on its own slice of rows (or columns) of
//! the output, and the caller works one slice itself ([`par_ranges`]).

use crate::dense::Mat;
use crate::view::{par_ranges, sequential};

/// Multiply-adds below which a product runs on one thread.
const PAR_MACS: usize = 48 * 48 * 48;

/// `dst = beta * a @ b + (read_dst ? alpha * dst : 0)` for an `m x k` `a` and a `k x n` `b`
/// (the `gemm` crate's convention for alpha and beta), on every thread of the pool when
/// `parallel`, the product is large enough and the caller is not running sequentially.
///
/// # Safety
/// The operands address `m x k`, `k x n` and `m x n` valid elements; nothing else writes
/// `dst` meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<T: Copy + Send + Sync + 'static>(
    (m, n, k): (usize, usize, usize),
    dst: Mat<T>,
    read_dst: bool,
    a: Mat<T>,
    b: Mat<T>,
    alpha: T,
    beta: T,
    parallel: bool,
) {
    let one = |(m, n): (usize, usize), dst: Mat<T>, a: Mat<T>, b: Mat<T>| {
        #[rustfmt::skip]
        gemm::gemm(m, n, k, dst.ptr, dst.cs, dst.rs, read_dst, a.ptr, a.cs, a.rs, b.ptr, b.cs, b.rs,
                   alpha, beta, false, false, false, gemm::Parallelism::None);
    };
    let threads = if !parallel || sequential() { 1 } else { rayon::current_num_threads() };
    if threads <= 1 || m * n * k < PAR_MACS || m == 0 || n == 0 {
        return one((m, n), dst, a, b);
    }
    // Slices of whole microkernel tiles (16-row panels, 48 columns), about one per thread.
    let (long, align) = if m >= n { (m, 16) } else { (n, 48) };
    let size = long.div_ceil(threads).div_ceil(align) * align;
    par_ranges(long.div_ceil(size), 1, |r| {
        for s in r {
            let (lo, hi) = (s * size, ((s + 1) * size).min(long));
            if m >= n {
                one((hi - lo, n), dst.offset(lo, 0), a.offset(lo, 0), b);
            } else {
                one((m, hi - lo), dst.offset(0, lo), a, b.offset(0, lo));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::gemm;
    use crate::dense::Mat;

    /// Split products (tall, wide, thin; transposed operands; reading dst) equal a naive loop.
    #[test]
    fn split_products_match_naive() {
        // all above PAR_MACS, so split (tall by rows, wide by columns), with edge slices
        for &(m, n, k) in &[(301, 7, 90), (7, 403, 80), (64, 64, 64), (130, 129, 17), (1, 2000, 100)] {
            for (at, bt, read) in [(false, false, false), (true, false, true), (false, true, true), (true, true, false)] {
                let val = |i: usize| ((i * 7919) % 23) as f64 - 11.0;
                let a: Vec<f64> = (0..m * k).map(val).collect();
                let b: Vec<f64> = (0..k * n).map(|i| val(i + 5)).collect();
                let mut c: Vec<f64> = (0..m * n).map(|i| val(i + 9)).collect();
                let ga = |i: usize, p: usize| if at { a[p * m + i] } else { a[i * k + p] };
                let gb = |p: usize, j: usize| if bt { b[j * k + p] } else { b[p * n + j] };
                let want: Vec<f64> = (0..m * n)
                    .map(|ij| {
                        let (i, j) = (ij / n, ij % n);
                        let dot: f64 = (0..k).map(|p| ga(i, p) * gb(p, j)).sum();
                        3.0 * dot + if read { 0.5 * c[ij] } else { 0.0 }
                    })
                    .collect();
                let am = Mat::row_major(a.as_ptr(), if at { m } else { k }, at);
                let bm = Mat::row_major(b.as_ptr(), if bt { k } else { n }, bt);
                unsafe { gemm((m, n, k), Mat::row_major(c.as_mut_ptr(), n, false), read, am, bm, 0.5, 3.0, true) };
                assert_eq!(c, want, "{m}x{n}x{k} at={at} bt={bt} read={read}");
            }
        }
    }
}
