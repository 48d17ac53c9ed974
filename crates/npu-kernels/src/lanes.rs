//! Sums and maxima over a row in many independent lanes. Plain loops over fixed-size chunks,
//! so the compiler turns the lanes into vectors (and several independent accumulator chains:
//! one chain would wait on the add latency at every step). Sums in lanes are also more
//! accurate than one running sum. The lane order is fixed, so results do not depend on the
//! CPU's vector width.
//!
//! Each takes slices, not an index closure: indexing `x[i + k]` through a closure kept its
//! bounds checks and left the loop scalar.

use crate::cpu::with_avx2;
use crate::math::Float;

/// Lanes of a sum: 32 (two AVX-512 vectors of f32, four of f64).
const LANES: usize = 32;

/// Adds the lanes pairwise, then the tail elements in order.
#[inline(always)]
fn finish<F: Float>(mut acc: [F; LANES], tail: impl Iterator<Item = F>) -> F {
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            acc[i] = acc[i] + acc[i + w];
        }
        w /= 2;
    }
    tail.fold(acc[0], |s, v| s + v)
}

/// `sum(f(x))` over a slice.
#[inline(always)]
pub(crate) fn lane_sum_map<T: Copy, F: Float>(xs: &[T], f: impl Fn(T) -> F) -> F {
    let mut acc = [F::ZERO; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        let c: &[T; LANES] = c.try_into().expect("chunks of LANES");
        // element by element: `[T; N]::map` is not inlined, so `f` would leave the caller's
        // target features (an exp in it became calls to `fmaf`)
        for k in 0..LANES {
            acc[k] = acc[k] + f(c[k]);
        }
    }
    finish(acc, rest.iter().map(|&x| f(x)))
}

/// `sum(x)`.
#[inline(always)]
pub(crate) fn sum_of<F: Float>(xs: &[F]) -> F {
    lane_sum_map(xs, |x| x)
}

/// `sum(f(a[i], b[i]))` over two slices of `a`'s length.
#[inline(always)]
pub(crate) fn lane_sum_zip<A: Copy, B: Copy, F: Float>(a: &[A], b: &[B], f: impl Fn(A, B) -> F) -> F {
    let b = &b[..a.len()];
    let mut acc = [F::ZERO; LANES];
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        let ca: &[A; LANES] = ca.try_into().expect("chunks of LANES");
        let cb: &[B; LANES] = cb.try_into().expect("chunks of LANES");
        for k in 0..LANES {
            acc[k] = acc[k] + f(ca[k], cb[k]);
        }
    }
    let tail = a.len() / LANES * LANES;
    finish(acc, a[tail..].iter().zip(&b[tail..]).map(|(&x, &y)| f(x, y)))
}

/// `sum(f(a[i], b[i], c[i]))` over three slices of `a`'s length.
#[inline(always)]
pub(crate) fn lane_sum_zip3<A: Copy, B: Copy, C: Copy, F: Float>(a: &[A], b: &[B], c: &[C], f: impl Fn(A, B, C) -> F) -> F {
    let (b, c) = (&b[..a.len()], &c[..a.len()]);
    let mut acc = [F::ZERO; LANES];
    for ((ca, cb), cc) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)).zip(c.chunks_exact(LANES)) {
        let ca: &[A; LANES] = ca.try_into().expect("chunks of LANES");
        let cb: &[B; LANES] = cb.try_into().expect("chunks of LANES");
        let cc: &[C; LANES] = cc.try_into().expect("chunks of LANES");
        for k in 0..LANES {
            acc[k] = acc[k] + f(ca[k], cb[k], cc[k]);
        }
    }
    let tail = a.len() / LANES * LANES;
    finish(acc, a[tail..].iter().zip(&b[tail..]).zip(&c[tail..]).map(|((&x, &y), &z)| f(x, y, z)))
}

with_avx2!(pub(crate) fn moment_sum<F: Float>(xs: &[F], mu: f64, squares: bool) -> f64 => moment_sum_body);

/// `sum(x)`, or `sum((x - mu)^2)` when `squares`, in f64 over lanes (for means and variances).
#[inline(always)]
fn moment_sum_body<F: Float>(xs: &[F], mu: f64, squares: bool) -> f64 {
    if squares {
        lane_sum_map(xs, |v: F| (v.to_f64() - mu) * (v.to_f64() - mu))
    } else {
        lane_sum_map(xs, |v: F| v.to_f64())
    }
}

/// The maximum in 16 independent lanes (one AVX-512 vector of f32); NaNs are skipped, so
/// callers that must propagate them let the NaN flow through their arithmetic instead.
#[inline(always)]
pub(crate) fn lane_max<F: Float>(xs: &[F]) -> F {
    let mut acc = [-F::INFINITY; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    // halve the lanes (a short dependency chain, where 16 scalar steps wait on each other)
    let mut w = 8;
    while w > 0 {
        for i in 0..w {
            acc[i] = if acc[i + w] > acc[i] { acc[i + w] } else { acc[i] };
        }
        w /= 2;
    }
    let mut m = acc[0];
    for &x in rest {
        m = if x > m { x } else { m };
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the lane count, against a plain f64 sum and maximum.
    #[test]
    fn lane_reductions_match_plain_loops() {
        for n in [0usize, 1, 7, 15, 16, 31, 32, 33, 63, 64, 65, 100, 1000] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.25).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 11 % 13) as f32) * 0.5).collect();
            let c: Vec<f64> = (0..n).map(|i| (i % 5) as f64).collect();
            let plain = |f: &dyn Fn(usize) -> f64| (0..n).map(f).sum::<f64>();
            assert_eq!(sum_of(&a) as f64, plain(&|i| a[i] as f64), "sum_of, n = {n}");
            assert_eq!(lane_sum_map(&a, |x| (x as f64) * 2.0), plain(&|i| a[i] as f64 * 2.0), "n = {n}");
            assert_eq!(lane_sum_zip(&a, &b, |x, y| x as f64 * y as f64), plain(&|i| a[i] as f64 * b[i] as f64), "n = {n}");
            assert_eq!(
                lane_sum_zip3(&a, &b, &c, |x, y, z| x as f64 * y as f64 + z),
                plain(&|i| a[i] as f64 * b[i] as f64 + c[i]),
                "n = {n}"
            );
            let max = a.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            assert_eq!(lane_max(&a), max, "n = {n}");
        }
    }
}
