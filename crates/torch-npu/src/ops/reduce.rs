//! Reductions: sum, mean, and the full max/min.
use npu_kernels::{DType, ReduceOp, View};

use super::elementwise::{output, Variant};
use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

/// Accumulation dtype of a sum-like reduction.
fn accumulator(d: DType) -> DType {
    match d {
        DType::F16 | DType::BF16 | DType::F32 => DType::F32,
        DType::F64 => DType::F64,
        DType::C64 | DType::C128 => d,
        _ => DType::I64,
    }
}

/// Normalises `dims` (negative indices, duplicates) for a tensor of rank `rank`; empty means all.
fn normalize_dims(dims: &[i64], rank: usize, op: &str) -> Result<Vec<usize>> {
    let r = rank.max(1) as i64;
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let nd = if d < 0 { d + r } else { d };
        if nd < 0 || nd >= r {
            return Err(Error::index(format!(
                "{op}: Dimension out of range (expected to be in range of [{}, {}], but got {d})",
                -r,
                r - 1
            )));
        }
        if out.contains(&(nd as usize)) {
            return Err(Error::runtime(format!("{op}: dim {nd} appears multiple times in the list of dims")));
        }
        out.push(nd as usize);
    }
    if rank == 0 {
        return Ok(vec![]);
    }
    out.sort_unstable();
    if out.is_empty() {
        out = (0..rank).collect();
    }
    Ok(out)
}

/// Output sizes of a reduction, and the kernel's view of the output (reduced dims of size 1
/// with stride 0).
fn reduced_shape(src: &[i64], dims: &[usize], keepdim: bool) -> Vec<i64> {
    src.iter()
        .enumerate()
        .filter_map(|(i, &n)| {
            if dims.contains(&i) {
                keepdim.then_some(1)
            } else {
                Some(n)
            }
        })
        .collect()
}

fn kernel_dst(out: &Tensor, src: &[i64], dims: &[usize], keepdim: bool) -> View {
    let mut sizes = Vec::with_capacity(src.len());
    let mut strides = Vec::with_capacity(src.len());
    let mut k = 0;
    for (i, _) in src.iter().enumerate() {
        if dims.contains(&i) {
            sizes.push(1);
            strides.push(0);
            if keepdim {
                k += 1;
            }
        } else {
            sizes.push(out.view.sizes[k]);
            strides.push(out.view.strides[k]);
            k += 1;
        }
    }
    View { ptr: out.view.ptr, dtype: out.dtype(), sizes, strides }
}

fn run(ctx: &Ctx, op: ReduceOp, src: Tensor, dims: Vec<usize>, keepdim: bool, out: Tensor, acc: DType, device: i32) -> Result<()> {
    if out.numel() == 0 {
        return Ok(());
    }
    let dst = kernel_dst(&out, src.sizes(), &dims, keepdim);
    let view = src.view.clone();
    launch(&ctx.op, device, move || npu_kernels::reduce(op, &dst, &view, &dims, acc).map_err(|e| e.0))
}

/// sum(self, *, dtype) / sum.dim_IntList(self, dim, keepdim, *, dtype) / sum.IntList_out / mean.dim / mean.out.
fn sum_like(ctx: &Ctx, op: ReduceOp, with_dims: bool, variant: Variant) -> Result<()> {
    let name = ctx.op.clone();
    let src = ctx.tensor(0)?;
    let device = common_device(&name, &[&src])?;
    if src.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    let (dims, keepdim, dtype_arg) = if with_dims {
        let dims = if ctx.is_none(1) { vec![] } else { ctx.int_list(1)? };
        (dims, ctx.bool(2), ctx.opt_int(3))
    } else {
        (vec![], false, ctx.opt_int(1))
    };
    let dims = normalize_dims(&dims, src.sizes().len(), &name)?;
    let requested = match dtype_arg {
        Some(code) => Some(DType::from_i32(code as i32).ok_or_else(|| Error::type_error(format!("{name}: unsupported dtype")))?),
        None => None,
    };
    let in_dtype = src.dtype();
    let out_dtype = match (op, requested) {
        (_, Some(d)) => d,
        (ReduceOp::Mean, None) => {
            if !(in_dtype.is_floating() || in_dtype.is_complex()) {
                return Err(Error::runtime(format!(
                    "mean(): could not infer output dtype. Input dtype must be either a floating point or complex dtype. Got: {}",
                    in_dtype.name()
                )));
            }
            in_dtype
        }
        _ if in_dtype.is_floating() || in_dtype.is_complex() => in_dtype,
        _ => DType::I64,
    };
    let sizes = reduced_shape(src.sizes(), &dims, keepdim);
    let out = output(ctx, variant, &sizes, out_dtype, device)?;
    let acc = accumulator(out_dtype);
    run(ctx, op, src, dims, keepdim, out, acc, device)
}

pub fn sum(ctx: &Ctx) -> Result<()> {
    sum_like(ctx, ReduceOp::Sum, false, Variant::Functional)
}

pub fn sum_dim(ctx: &Ctx) -> Result<()> {
    sum_like(ctx, ReduceOp::Sum, true, Variant::Functional)
}

pub fn sum_out(ctx: &Ctx) -> Result<()> {
    sum_like(ctx, ReduceOp::Sum, true, Variant::Out)
}

pub fn mean_dim(ctx: &Ctx) -> Result<()> {
    sum_like(ctx, ReduceOp::Mean, true, Variant::Functional)
}

pub fn mean_out(ctx: &Ctx) -> Result<()> {
    sum_like(ctx, ReduceOp::Mean, true, Variant::Out)
}

/// max(self) / min(self): the extreme value of all elements (NaN propagates).
fn extreme(ctx: &Ctx, op: ReduceOp, word: &str) -> Result<()> {
    let src = ctx.tensor(0)?;
    let device = common_device(&ctx.op, &[&src])?;
    if src.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if src.numel() == 0 {
        return Err(Error::runtime(format!(
            "{word}(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction dim with the 'dim' argument."
        )));
    }
    let out = ctx.new_output(&[], None, src.dtype(), device)?;
    let dims: Vec<usize> = (0..src.sizes().len()).collect();
    let acc = src.dtype();
    run(ctx, op, src, dims, false, out, acc, device)
}

pub fn max(ctx: &Ctx) -> Result<()> {
    extreme(ctx, ReduceOp::Max, "max")
}

pub fn min(ctx: &Ctx) -> Result<()> {
    extreme(ctx, ReduceOp::Min, "min")
}
