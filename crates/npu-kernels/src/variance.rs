//! var / std (with the mean, for var_mean / std_mean): two passes in f64 — the mean, then the
//! sum of squared deviations — divided by N - correction and rounded once to the output dtype.

use crate::binary::{binary, binary_scalar, BinaryOp};
use crate::dense::{Dense, P};
use crate::lanes::moment_sum;
use crate::math::Float;
use crate::reduce::{geometry, reduce, ReduceOp};
use crate::unary::{unary, UnaryOp};
use crate::view::{par_ranges, View};
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
    let trailing = g.reduced.windows(2).all(|w| w[1] || !w[0]);
    if src.is_contiguous() && trailing && g.m > 0 {
        match src.dtype {
            DType::F32 => return contiguous_rows::<f32>(dst, mean_out, src, g.nout, g.m, correction, std),
            DType::F64 => return contiguous_rows::<f64>(dst, mean_out, src, g.nout, g.m, correction, std),
            _ => {}
        }
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

/// Elements per parallel task of [`contiguous_rows`]; fixed, so results do not depend on the
/// number of threads.
const CHUNK: usize = 1 << 15;

/// The same for a contiguous `src` reduced over trailing dims: `rows` rows of `n` elements,
/// read in place. Each pass sums fixed chunks of the rows in parallel (a whole-tensor reduction
/// is one long row), then adds a row's chunks in order.
#[allow(clippy::too_many_arguments)]
fn contiguous_rows<F: Float>(dst: &View, mean_out: Option<&View>, src: &View, rows: usize, n: usize, correction: f64, std: bool) -> Result<(), KernelError> {
    // SAFETY: `src` is a validated contiguous view of `rows * n` elements of `F`
    let xs = unsafe { std::slice::from_raw_parts(src.ptr as *const F, rows * n) };
    let per_row = n.div_ceil(CHUNK);
    let chunk = |t: usize| {
        let (r, c) = (t / per_row, t % per_row);
        &xs[r * n + c * CHUNK..r * n + ((c + 1) * CHUNK).min(n)]
    };
    // sums of each row's chunks of f(chunk, row), added in order per row
    let row_sums = |f: &(dyn Fn(&[F], usize) -> f64 + Sync)| -> Vec<f64> {
        let mut parts = vec![0f64; rows * per_row];
        let out = P(parts.as_mut_ptr());
        par_ranges(rows * per_row, (CHUNK / n.min(CHUNK)).max(1), |ts| {
            for t in ts {
                // SAFETY: each task writes its own slot
                unsafe { *out.at(t) = f(chunk(t), t / per_row) };
            }
        });
        parts.chunks(per_row).map(|p| p.iter().sum()).collect()
    };
    let mean: Vec<f64> = row_sums(&|c, _| moment_sum(c, 0.0, false)).iter().map(|s| s / n as f64).collect();
    let divisor = (n as f64 - correction).max(0.0);
    let out: Vec<f64> = row_sums(&|c, r| moment_sum(c, mean[r], true))
        .iter()
        .map(|s| if std { (s / divisor).sqrt() } else { s / divisor })
        .collect();
    store(dst, &out)?;
    if let Some(m) = mean_out {
        store(m, &mean)?;
    }
    Ok(())
}

/// Writes `vals` (one per output, in order) into the keepdim-layout view `v`.
fn store(v: &View, vals: &[f64]) -> Result<(), KernelError> {
    let mut vals = vals.to_vec();
    let src = View::contiguous(vals.as_mut_ptr() as *mut u8, DType::F64, &v.sizes);
    copy(v, &src)
}
