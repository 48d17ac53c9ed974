//! Element-wise indexing along one dim: `gather`, and `scatter` (assign, or reduce with sum,
//! prod, mean, amax, amin). Index position p reads or writes the element at p with its `dim`
//! coordinate replaced by `index[p]`, so positions that differ in another coordinate never
//! touch the same element: the kernels run those lines in parallel and walk each line in index
//! order, which makes colliding reductions deterministic (and ordered as PyTorch's CPU loop).
//! Indices are checked before anything is written: one out of range is an error that leaves the
//! destination untouched.

use crate::elementwise::{loader, storer};
use crate::gather::offsets;
use crate::scalar::Scalar;
use crate::view::{err, par_ranges, Ptr, View};
use crate::{DType, KernelError};

/// How `scatter` combines a value with the destination element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScatterReduce {
    Assign,
    Sum,
    Prod,
    Mean,
    Amax,
    Amin,
}

/// What `scatter` writes: elements of a tensor (at the index positions) or one scalar.
#[derive(Clone, Debug)]
pub enum ScatterSrc<'a> {
    Tensor(&'a View),
    Scalar(Scalar),
}

/// 0-dim views as 1-D of one element.
pub(crate) fn rank1(v: &View) -> View {
    if v.sizes.is_empty() {
        View { sizes: vec![1], strides: vec![1], ..v.clone() }
    } else {
        v.clone()
    }
}

/// The lines of `index` along `dim`: element offsets of each line start in each of `views`
/// (which must cover `index`'s sizes outside `dim`), the line length and each view's step.
struct Lines {
    starts: Vec<Vec<isize>>,
    len: usize,
    steps: Vec<isize>,
}

impl Lines {
    fn new(index: &View, dim: usize, views: &[&View]) -> Lines {
        let starts = views
            .iter()
            .map(|v| {
                let dims: Vec<(i64, i64)> = (0..index.sizes.len())
                    .filter(|&d| d != dim)
                    .map(|d| (index.sizes[d], v.strides[d]))
                    .collect();
                offsets(&dims)
            })
            .collect();
        Lines { starts, len: index.sizes[dim] as usize, steps: views.iter().map(|v| v.strides[dim] as isize).collect() }
    }
    fn count(&self) -> usize {
        self.starts[0].len()
    }
}

/// The shape rules of gather (`other` = input) and scatter (`other` = self, `also` = src),
/// for callers that check on the host before launching: only sizes are read.
pub fn check_index_shapes(op: &str, index: &View, dim: usize, other: &View, also: Option<&View>) -> Result<(), KernelError> {
    check_shapes(op, &rank1(index), dim, &rank1(other), also.map(rank1).as_ref())
}

/// Shape rules shared by gather and scatter: same rank, and index no larger than `other` in
/// every dim except `dim` (`also` is checked in every dim).
fn check_shapes(op: &str, index: &View, dim: usize, other: &View, also: Option<&View>) -> Result<(), KernelError> {
    if index.numel() == 0 {
        return Ok(()); // nothing to read or write, whatever the shapes (as PyTorch)
    }
    let r = index.sizes.len();
    if other.sizes.len() != r || also.is_some_and(|a| a.sizes.len() != r) {
        return Err(err(op, "Index tensor must have the same number of dimensions as input tensor".into()));
    }
    if dim >= r {
        return Err(err(op, format!("dim {dim} out of range for rank {r}")));
    }
    for d in 0..r {
        if d != dim && index.sizes[d] > other.sizes[d] {
            return Err(err(op, format!(
                "Size does not match at dimension {d} expected index {:?} to be no larger than self {:?} apart from dimension {dim}",
                index.sizes, other.sizes
            )));
        }
        if let Some(a) = also {
            if index.sizes[d] > a.sizes[d] {
                return Err(err(op, format!(
                    "Expected index {:?} to be no larger than src {:?} in every dimension",
                    index.sizes, a.sizes
                )));
            }
        }
    }
    Ok(())
}

/// Every index as i64, checked against `bound` (negative indices are errors, as in PyTorch).
fn load_indices(op: &str, index: &View, lines: &Lines, bound: i64) -> Result<Vec<i64>, KernelError> {
    if index.dtype.is_floating() || index.dtype.is_complex() || index.dtype == DType::Bool {
        return Err(err(op, format!("{op}(): Expected dtype int64 for index, got {}", index.dtype.name())));
    }
    let (ip, size) = (Ptr::new(index.ptr), index.dtype.size());
    let load = loader::<i64>(index.dtype, None);
    // a line at a time through the loader (one call per element cost more than the gather)
    let mut out = vec![0i64; lines.count() * lines.len];
    for (&s, line) in lines.starts[0].iter().zip(out.chunks_exact_mut(lines.len.max(1))) {
        unsafe { load(ip.byte_at(s, size), lines.steps[0], line) };
    }
    if let Some(v) = out.iter().find(|&&v| v < 0 || v >= bound) {
        return Err(err(op, format!("index {v} is out of bounds for dimension with size {bound}")));
    }
    Ok(out)
}

/// `dst[p] = src[p with dim ← index[p]]`; `dst` has `index`'s sizes and `src`'s dtype.
pub fn gather(dst: &View, src: &View, dim: usize, index: &View) -> Result<(), KernelError> {
    const OP: &str = "gather";
    let (dst, src, index) = (rank1(dst), rank1(src), rank1(index));
    for v in [&dst, &src, &index] {
        v.validate(OP)?;
    }
    dst.check_writable(OP)?;
    check_shapes(OP, &index, dim, &src, None)?;
    if dst.sizes != index.sizes || dst.dtype != src.dtype {
        return Err(err(OP, format!("output {:?} {} must have the index's sizes {:?} and dtype {}", dst.sizes, dst.dtype.name(), index.sizes, src.dtype.name())));
    }
    if index.numel() == 0 {
        return Ok(());
    }
    let lines = Lines::new(&index, dim, &[&index, &src, &dst]);
    let idx = load_indices(OP, &index, &lines, src.sizes[dim])?;
    let (sp, dp) = (Ptr::new(src.ptr), Ptr::new(dst.ptr));
    crate::convert::dispatch_bits!(src.dtype.size(), T => gather_lines::<T>(&lines, &idx, sp, dp));
    Ok(())
}

/// Moves gather's elements as `T`-sized bit patterns (a copy of a run-time size was a call
/// per element).
fn gather_lines<T: Copy>(lines: &Lines, idx: &[i64], sp: Ptr, dp: Ptr) {
    par_ranges(lines.count(), 4096 / lines.len.max(1) + 1, |ls| unsafe {
        for l in ls {
            let (s0, d0) = (lines.starts[1][l], lines.starts[2][l]);
            for (k, &i) in idx[l * lines.len..(l + 1) * lines.len].iter().enumerate() {
                *dp.at::<T>(d0 + k as isize * lines.steps[2]) = *sp.at::<T>(s0 + i as isize * lines.steps[1]);
            }
        }
    });
}

/// One element read and written as f64 (floats) or i64 (integers and bool).
#[derive(Clone, Copy)]
pub(crate) enum Num {
    F(f64),
    I(i64),
}

fn combine(r: ScatterReduce, a: Num, b: Num) -> Num {
    use ScatterReduce::*;
    match (a, b) {
        (Num::F(a), Num::F(b)) => Num::F(match r {
            Assign => b,
            Sum | Mean => a + b,
            Prod => a * b,
            // NaN wins, as in PyTorch's scatter_reduce
            Amax => if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) },
            Amin => if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) },
        }),
        (Num::I(a), Num::I(b)) => Num::I(match r {
            Assign => b,
            Sum | Mean => a.wrapping_add(b),
            Prod => a.wrapping_mul(b),
            Amax => a.max(b),
            Amin => a.min(b),
        }),
        _ => b,
    }
}

pub(crate) struct Access {
    load_f: crate::elementwise::LoadFn<f64>,
    load_i: crate::elementwise::LoadFn<i64>,
    store_f: crate::elementwise::StoreFn<f64>,
    store_i: crate::elementwise::StoreFn<i64>,
    float: bool,
}

impl Access {
    pub(crate) fn new(dtype: DType) -> Access {
        Access {
            load_f: loader::<f64>(dtype, None),
            load_i: loader::<i64>(dtype, None),
            store_f: storer::<f64>(dtype, None),
            store_i: storer::<i64>(dtype, None),
            float: dtype.is_floating(),
        }
    }
    pub(crate) fn add(&self, a: Num, b: Num) -> Num {
        combine(ScatterReduce::Sum, a, b)
    }
    pub(crate) unsafe fn get(&self, p: *const u8) -> Num {
        if self.float {
            let mut v = [0.0];
            (self.load_f)(p, 1, &mut v);
            Num::F(v[0])
        } else {
            let mut v = [0i64];
            (self.load_i)(p, 1, &mut v);
            Num::I(v[0])
        }
    }
    pub(crate) unsafe fn set(&self, p: *mut u8, v: Num) {
        match v {
            Num::F(x) => (self.store_f)(&[x], p, 1),
            Num::I(x) => (self.store_i)(&[x], p, 1),
        }
    }
}

/// Scatters `src` (or a scalar) into `dst` (which holds `self` already) at the index positions,
/// combining by `reduce`. `include_self = false` (scatter_reduce) starts every element that
/// receives a value from the reduction's identity instead of its current value; `Mean` divides
/// by the number of values an element received (+1 with `include_self`), flooring for integers.
pub fn scatter(
    dst: &View,
    dim: usize,
    index: &View,
    src: ScatterSrc,
    reduce: ScatterReduce,
    include_self: bool,
) -> Result<(), KernelError> {
    const OP: &str = "scatter";
    let (dst, index) = (rank1(dst), rank1(index));
    let src_view = match &src {
        ScatterSrc::Tensor(v) => Some(rank1(v)),
        ScatterSrc::Scalar(_) => None,
    };
    dst.validate(OP)?;
    index.validate(OP)?;
    dst.check_writable(OP)?;
    if let Some(s) = &src_view {
        s.validate(OP)?;
        if s.dtype != dst.dtype {
            return Err(err(OP, format!("Expected self.dtype to be equal to src.dtype ({} vs {})", dst.dtype.name(), s.dtype.name())));
        }
    }
    if dst.dtype.is_complex() && reduce != ScatterReduce::Assign {
        return Err(err(OP, format!("reductions are not implemented for '{}'", dst.dtype.name())));
    }
    check_shapes(OP, &index, dim, &dst, src_view.as_ref())?;
    if index.numel() == 0 {
        return Ok(());
    }
    let mut views = vec![&index, &dst];
    views.extend(src_view.as_ref());
    let lines = Lines::new(&index, dim, &views);
    let idx = load_indices(OP, &index, &lines, dst.sizes[dim])?;
    let size = dst.dtype.size();
    let dp = Ptr::new(dst.ptr);
    let sp = src_view.as_ref().map(|s| Ptr::new(s.ptr));
    // the scalar, encoded once in dst's dtype
    let mut scalar_bytes = [0u8; 16];
    if let ScatterSrc::Scalar(s) = src {
        s.check_fits(dst.dtype)?;
        let tmp = View::contiguous(scalar_bytes.as_mut_ptr(), dst.dtype, &[]);
        crate::fill::fill(&tmp, s)?;
    }
    let scalar_bytes = scalar_bytes;
    let acc = Access::new(dst.dtype);
    let float = dst.dtype.is_floating();
    let identity = |r: ScatterReduce| match (r, float) {
        (ScatterReduce::Prod, true) => Num::F(1.0),
        (ScatterReduce::Prod, false) => Num::I(1),
        (ScatterReduce::Amax, true) => Num::F(f64::NEG_INFINITY),
        (ScatterReduce::Amin, true) => Num::F(f64::INFINITY),
        (ScatterReduce::Amax, false) => Num::I(i64::MIN),
        (ScatterReduce::Amin, false) => Num::I(i64::MAX),
        (_, true) => Num::F(0.0),
        (_, false) => Num::I(0),
    };
    let src_at = |l: usize, k: usize| -> *const u8 {
        match sp {
            Some(p) => unsafe { p.byte_at(lines.starts[2][l] + k as isize * lines.steps[2], size) },
            None => scalar_bytes.as_ptr(),
        }
    };
    par_ranges(lines.count(), 4096 / lines.len.max(1) + 1, |ls| unsafe {
        // per element of a line: how many values it received (0: not started yet)
        let mut counts = vec![0i64; dst.sizes[dim] as usize];
        let mut touched: Vec<i64> = Vec::new();
        for l in ls {
            let d0 = lines.starts[1][l];
            let line_idx = &idx[l * lines.len..(l + 1) * lines.len];
            if reduce == ScatterReduce::Assign {
                for (k, &i) in line_idx.iter().enumerate() {
                    std::ptr::copy_nonoverlapping(src_at(l, k), dp.byte_at(d0 + i as isize * lines.steps[1], size), size);
                }
                continue;
            }
            for &i in &touched {
                counts[i as usize] = 0;
            }
            touched.clear();
            for (k, &i) in line_idx.iter().enumerate() {
                let target = dp.byte_at(d0 + i as isize * lines.steps[1], size);
                let count = &mut counts[i as usize];
                let current = if *count > 0 || include_self { acc.get(target) } else { identity(reduce) };
                if *count == 0 {
                    touched.push(i);
                    *count = include_self as i64;
                }
                *count += 1;
                acc.set(target, combine(reduce, current, acc.get(src_at(l, k))));
            }
            if reduce == ScatterReduce::Mean {
                for &i in &touched {
                    let n = counts[i as usize];
                    let target = dp.byte_at(d0 + i as isize * lines.steps[1], size);
                    let v = match acc.get(target) {
                        Num::F(x) => Num::F(x / n as f64),
                        Num::I(x) => Num::I(x.div_euclid(n)),
                    };
                    acc.set(target, v);
                }
            }
        }
    });
    Ok(())
}
