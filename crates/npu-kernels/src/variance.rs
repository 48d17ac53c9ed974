//! var / std (with the mean, for var_mean / std_mean): two passes in f64 — the mean, then the
//! sum of squared deviations — divided by N - correction and rounded once to the output dtype.

use crate::binary::{binary, binary_scalar, BinaryOp};
use crate::dense::Dense;
use crate::reduce::{geometry, reduce, ReduceOp};
use crate::unary::{unary, UnaryOp};
use crate::view::View;
use crate::{copy, DType, KernelError, Scalar};

/// `dst` (keepdim layout, like [`reduce`]) gets the variance over `dims` (empty: all), or the
/// standard deviation with `std`; `mean_out` (same layout), when given, the mean. A divisor
/// N - correction <= 0 gives inf (or NaN for 0/0), as in PyTorch.
pub fn variance(dst: &View, mean_out: Option<&View>, src: &View, dims: &[usize], correction: f64, std: bool) -> Result<(), KernelError> {
    let name = if std { "std" } else { "var" };
    let g = geometry(name, dst, src, dims)?;
    if let Some(m) = mean_out {
        geometry(name, m, src, dims)?;
    }
    if !src.dtype.is_floating() {
        return Err(KernelError(format!("{name}: std and var only support floating point and complex dtypes")));
    }
    if dst.numel() == 0 {
        return Ok(());
    }
    let xs = Dense::of(src, DType::F64)?;
    let mean = Dense::zeroed(DType::F64, &dst.sizes);
    reduce(ReduceOp::Mean, &mean.view, &xs.view, dims, DType::F64)?;
    // the mean broadcast back over the reduced dims
    let strides = mean.view.strides.iter().zip(&g.reduced).map(|(&s, &r)| if r { 0 } else { s }).collect();
    let mean_b = View { sizes: src.sizes.clone(), strides, ..mean.view.clone() };
    let dev = Dense::zeroed(DType::F64, &src.sizes);
    binary(BinaryOp::Sub, &dev.view, &xs.view, &mean_b, Scalar::Int(1), DType::F64)?;
    binary(BinaryOp::Mul, &dev.view, &dev.view, &dev.view, Scalar::Int(1), DType::F64)?;
    let out = Dense::zeroed(DType::F64, &dst.sizes);
    reduce(ReduceOp::Sum, &out.view, &dev.view, dims, DType::F64)?;
    let divisor = (g.m as f64 - correction).max(0.0);
    binary_scalar(BinaryOp::Div, &out.view, &out.view, Scalar::Float(divisor), Scalar::Int(1), DType::F64)?;
    if std {
        unary(UnaryOp::Sqrt, &out.view, &out.view, DType::F64)?;
    }
    copy(dst, &out.view)?;
    if let Some(m) = mean_out {
        copy(m, &mean.view)?;
    }
    Ok(())
}
