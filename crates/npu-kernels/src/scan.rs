//! Cumulative sum and product along one dim (`cumsum`, `cumprod`). Values are converted to the
//! output dtype and accumulated as PyTorch's CPU kernel does: in f32 for f16/bf16, in f64 for
//! f32/f64, in wrapping i64 for integers and bool; each prefix is rounded once to the output.
//! Lines along `dim` are independent and run in parallel.

use std::ops::Range;

use crate::dense::Operand;
use crate::elementwise::{loader, storer};
use crate::gather::offsets;
use crate::view::{err, par_ranges, Ptr, View};
use crate::{DType, Element, KernelError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanOp {
    Sum,
    Prod,
}

trait Acc: Element {
    const ZERO: Self;
    const ONE: Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
}

macro_rules! float_acc {
    ($t:ty) => {
        impl Acc for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn add(self, o: Self) -> Self { self + o }
            fn mul(self, o: Self) -> Self { self * o }
        }
    };
}
float_acc!(f32);
float_acc!(f64);

impl Acc for i64 {
    const ZERO: Self = 0;
    const ONE: Self = 1;
    fn add(self, o: Self) -> Self { self.wrapping_add(o) }
    fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
}

/// `dst = src.cumsum(dim)` / `cumprod(dim)` with `src` converted to `dst.dtype` first.
pub fn scan(dst: &View, src: &View, dim: usize, op: ScanOp) -> Result<(), KernelError> {
    let name = match op {
        ScanOp::Sum => "cumsum",
        ScanOp::Prod => "cumprod",
    };
    dst.validate(name)?;
    src.validate(name)?;
    dst.check_writable(name)?;
    if dst.sizes != src.sizes {
        return Err(err(name, format!("output size {:?} does not match input {:?}", dst.sizes, src.sizes)));
    }
    if dst.dtype.is_complex() || src.dtype.is_complex() {
        return Err(err(name, format!("\"{name}\" not implemented for '{}'", dst.dtype.name())));
    }
    let rank = dst.sizes.len();
    if dim >= rank.max(1) {
        return Err(err(name, format!("dim {dim} out of range for rank {rank}")));
    }
    if dst.numel() == 0 {
        return Ok(());
    }
    // the input in the output dtype (PyTorch converts before accumulating)
    let src = Operand::of(src, dst.dtype)?;
    let src = match &src {
        Operand::Borrowed(v) => (*v).clone(),
        Operand::Staged(d) => d.view.clone(),
    };
    let (dst, src) = if rank == 0 {
        let one = |v: &View| View { sizes: vec![1], strides: vec![1], ..v.clone() };
        (one(dst), one(&src))
    } else {
        (dst.clone(), src)
    };
    match dst.dtype {
        DType::F16 | DType::BF16 => run::<f32>(&dst, &src, dim, op),
        DType::F32 | DType::F64 => run::<f64>(&dst, &src, dim, op),
        _ => run::<i64>(&dst, &src, dim, op),
    }
    Ok(())
}

fn run<A: Acc>(dst: &View, src: &View, dim: usize, op: ScanOp) {
    let line_dims = |v: &View| -> Vec<(i64, i64)> {
        (0..v.sizes.len()).filter(|&d| d != dim).map(|d| (v.sizes[d], v.strides[d])).collect()
    };
    let (ds, ss) = (offsets(&line_dims(dst)), offsets(&line_dims(src)));
    let n = dst.sizes[dim] as usize;
    let (dstep, sstep) = (dst.strides[dim] as isize, src.strides[dim] as isize);
    let (load, store) = (loader::<A>(src.dtype, None), storer::<A>(dst.dtype, None));
    let (dp, sp, size) = (Ptr::new(dst.ptr), Ptr::new(src.ptr), dst.dtype.size());
    par_ranges(ds.len(), 8192 / n.max(1) + 1, |lines: Range<usize>| {
        let mut buf = vec![A::ZERO; n];
        for l in lines {
            unsafe { load(sp.byte_at(ss[l], size), sstep, &mut buf) };
            let mut acc = if op == ScanOp::Sum { A::ZERO } else { A::ONE };
            for x in buf.iter_mut() {
                acc = if op == ScanOp::Sum { acc.add(*x) } else { acc.mul(*x) };
                *x = acc;
            }
            unsafe { store(&buf, dp.byte_at(ds[l], size), dstep) };
        }
    });
}
