//! Reductions: sum, mean, prod, nansum, amax/amin, any/all, max/min (full and along a dim,
//! with indices), argmax/argmin and linalg_vector_norm.
use npu_kernels::{DType, ReduceOp, View};

use super::elementwise::{output, Variant};
use super::{common_device, launch, launch_sized, Ctx, Tensor};
use crate::status::{Error, Result};

/// `self` (argument 0) and its device; complex inputs go to the CPU fallback (the reduction
/// kernels are real-only).
fn real_input(ctx: &Ctx) -> Result<(Tensor, i32)> {
    let src = ctx.tensor(0)?;
    let device = common_device(ctx.op, &[&src])?;
    if src.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    Ok((src, device))
}

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
    launch_sized(ctx.op, device, view.numel(), move || npu_kernels::reduce(op, &dst, &view, &dims, acc).map_err(|e| e.0))
}

/// sum(self, *, dtype) / sum.dim_IntList(self, dim, keepdim, *, dtype) / sum.IntList_out / mean.dim / mean.out.
fn sum_like(ctx: &Ctx, op: ReduceOp, with_dims: bool, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let (src, device) = real_input(ctx)?;
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
    let (src, device) = real_input(ctx)?;
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

/// How a reduction names the dims it reduces.
#[derive(Clone, Copy)]
enum Dims {
    /// No dim argument: everything.
    All,
    /// An int[] (or int[]?) argument; empty or None means everything.
    List(usize),
    /// A single int argument.
    One(usize),
}

/// How the result dtype is chosen.
#[derive(Clone, Copy, PartialEq)]
enum Out {
    /// Integers and bool widen to int64 (sum, prod, nansum); a dtype argument overrides.
    Widen(Option<usize>),
    /// The input dtype (amax, amin).
    Same,
    /// Bool, except uint8 inputs keep uint8 (any, all).
    Truth,
}

/// A reduction: `dims`/`keepdim` arguments, output rule and variant.
fn reduction(ctx: &Ctx, op: ReduceOp, dims: Dims, keepdim_arg: Option<usize>, out_rule: Out, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let (src, device) = real_input(ctx)?;
    let rank = src.sizes().len();
    let dims = match dims {
        Dims::All => vec![],
        Dims::List(i) => if ctx.is_none(i) { vec![] } else { ctx.int_list(i)? },
        Dims::One(i) => vec![ctx.int(i)],
    };
    let dims = normalize_dims(&dims, rank, &name)?;
    let keepdim = keepdim_arg.is_some_and(|i| ctx.bool(i));
    let in_dtype = src.dtype();
    let out_dtype = match out_rule {
        Out::Widen(Some(i)) if !ctx.is_none(i) => {
            DType::from_i32(ctx.int(i) as i32).ok_or_else(|| Error::type_error(format!("{name}: unsupported dtype")))?
        }
        Out::Widen(_) if in_dtype.is_floating() => in_dtype,
        Out::Widen(_) => DType::I64,
        Out::Same => in_dtype,
        Out::Truth if in_dtype == DType::U8 => DType::U8,
        Out::Truth => DType::Bool,
    };
    if matches!(op, ReduceOp::Amax | ReduceOp::Amin) && src.numel() == 0 && dims.iter().any(|&d| src.sizes()[d] == 0) {
        return Err(Error::index(format!(
            "{name}: Expected reduction dim {} to have non-zero size.",
            dims.iter().find(|&&d| src.sizes()[d] == 0).copied().unwrap_or(0)
        )));
    }
    if op == ReduceOp::NanSum && !in_dtype.is_floating() && out_rule != Out::Same {
        // nansum of integers is sum
        return run_reduction(ctx, ReduceOp::Sum, src, dims, keepdim, out_dtype, variant, device);
    }
    run_reduction(ctx, op, src, dims, keepdim, out_dtype, variant, device)
}

#[allow(clippy::too_many_arguments)]
fn run_reduction(ctx: &Ctx, op: ReduceOp, src: Tensor, dims: Vec<usize>, keepdim: bool, out_dtype: DType, variant: Variant, device: i32) -> Result<()> {
    let sizes = reduced_shape(src.sizes(), &dims, keepdim);
    let out = output(ctx, variant, &sizes, out_dtype, device)?;
    let acc = match op {
        ReduceOp::Any | ReduceOp::All => DType::Bool,
        ReduceOp::Amax | ReduceOp::Amin | ReduceOp::Max | ReduceOp::Min => src.dtype(),
        _ => accumulator(out_dtype),
    };
    run(ctx, op, src, dims, keepdim, out, acc, device)
}

/// max.dim / min.dim (self, dim, keepdim) -> (values, indices)
fn with_index(ctx: &Ctx, op: ReduceOp) -> Result<()> {
    let name = ctx.op;
    let (src, device) = real_input(ctx)?;
    let rank = src.sizes().len();
    let dim = super::softmax::wrap_dim(&name, ctx.int(1), rank)?;
    let keepdim = ctx.bool(2);
    if rank > 0 && src.sizes()[dim] == 0 {
        return Err(Error::index(format!(
            "{name}: Expected reduction dim {dim} to have non-zero size."
        )));
    }
    let dims = if rank == 0 { vec![] } else { vec![dim] };
    let sizes = reduced_shape(src.sizes(), &dims, keepdim);
    let values = ctx.new_output(&sizes, None, src.dtype(), device)?;
    let indices = ctx.new_output(&sizes, None, DType::I64, device)?;
    if values.numel() == 0 {
        return Ok(());
    }
    let (vv, iv) = (kernel_dst(&values, src.sizes(), &dims, keepdim), kernel_dst(&indices, src.sizes(), &dims, keepdim));
    let sv = src.view.clone();
    let (sv, vv, iv) = if rank == 0 {
        let one = |v: View| View { sizes: vec![1], strides: vec![1], ..v };
        (one(sv), one(vv), one(iv))
    } else {
        (sv, vv, iv)
    };
    launch(&name, device, move || npu_kernels::reduce_with_index(op, &vv, &iv, &sv, if rank == 0 { 0 } else { dim }).map_err(|e| e.0))
}

/// argmax / argmin (self, dim?, keepdim)
fn arg(ctx: &Ctx, op: ReduceOp, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let (src, device) = real_input(ctx)?;
    let rank = src.sizes().len();
    let keepdim = ctx.bool(2);
    let dim = if ctx.is_none(1) { None } else { Some(super::softmax::wrap_dim(&name, ctx.int(1), rank)?) };
    let word = if op == ReduceOp::Max { "argmax" } else { "argmin" };
    if src.numel() == 0 && (dim.is_none() || src.sizes().get(dim.unwrap_or(0)) == Some(&0)) {
        return Err(Error::index(format!("{name}: Expected reduction dim to be specified for input.numel() == 0.").replace("argmax", word)));
    }
    let (sizes, kdims): (Vec<i64>, Vec<usize>) = match dim {
        Some(d) if rank > 0 => (reduced_shape(src.sizes(), &[d], keepdim), vec![d]),
        _ if keepdim => (vec![1; rank], (0..rank).collect()),
        _ => (vec![], (0..rank).collect()),
    };
    let out = output(ctx, variant, &sizes, DType::I64, device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    let sv = src.view.clone();
    let (iv, kdim) = match dim {
        Some(d) if rank > 0 => (kernel_dst(&out, src.sizes(), &kdims, keepdim), Some(d)),
        _ => (View { sizes: vec![1], strides: vec![1], ..out.view.clone() }, None),
    };
    launch_sized(&name, device, sv.numel(), move || npu_kernels::arg_reduce(op, &iv, &sv, kdim).map_err(|e| e.0))
}

/// linalg_vector_norm(self, ord, dim?, keepdim, *, dtype) and .out
fn vector_norm(ctx: &Ctx, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let (src, device) = real_input(ctx)?;
    if !src.dtype().is_floating() {
        return Err(Error::runtime(format!(
            "{name}: linalg.vector_norm: Expected a floating point or complex tensor as input. Got {}",
            src.dtype().name()
        )));
    }
    let p = ctx.scalar_f64(1)?;
    let dims = if ctx.is_none(2) { vec![] } else { ctx.int_list(2)? };
    let out_dtype = if ctx.is_none(4) { src.dtype() } else { DType::from_i32(ctx.int(4) as i32).unwrap_or(src.dtype()) };
    norm_into(ctx, &src, device, p, &dims, ctx.bool(3), out_dtype, variant)
}

/// The legacy `norm` out= overloads (what `torch.dist`, `pairwise_distance` and the triplet
/// losses reach): .out(self, p?, dim, keepdim), .dtype_out(self, p?, dim, keepdim, *, dtype),
/// .Scalar_out(self, p) and .ScalarOpt_dtype_out(self, p?, *, dtype). A missing p is 2.
fn legacy_norm(ctx: &Ctx, with_dim: bool, with_dtype: bool) -> Result<()> {
    let name = ctx.op;
    let (src, device) = real_input(ctx)?;
    if !src.dtype().is_floating() {
        return Err(Error::runtime(format!(
            "{name}: norm(): input dtype should be either floating point or complex. Got {} instead.",
            src.dtype().name()
        )));
    }
    let p = if ctx.is_none(1) { 2.0 } else { ctx.scalar_f64(1)? };
    let (dims, keepdim) = if with_dim { (ctx.int_list(2)?, ctx.bool(3)) } else { (vec![], false) };
    let dtype_arg = if with_dim { 4 } else { 2 };
    let out_dtype = if with_dtype { DType::from_i32(ctx.int(dtype_arg) as i32).unwrap_or(src.dtype()) } else { src.dtype() };
    norm_into(ctx, &src, device, p, &dims, keepdim, out_dtype, Variant::Out)
}

#[allow(clippy::too_many_arguments)]
fn norm_into(ctx: &Ctx, src: &Tensor, device: i32, p: f64, dims: &[i64], keepdim: bool, out_dtype: DType, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let dims = normalize_dims(dims, src.sizes().len(), &name)?;
    if p < 0.0 && src.numel() == 0 {
        return Err(Error::runtime(format!("{name}: linalg.vector_norm cannot compute the {p} norm on an empty tensor because the operation does not have an identity")));
    }
    let sizes = reduced_shape(src.sizes(), &dims, keepdim);
    let out = output(ctx, variant, &sizes, out_dtype, device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    let acc = accumulator(out_dtype);
    let dst = kernel_dst(&out, src.sizes(), &dims, keepdim);
    let sv = src.view.clone();
    launch(&name, device, move || npu_kernels::reduce_norm(&dst, &sv, &dims, p, acc).map_err(|e| e.0))
}

/// var / std (.correction, and .correction_out), and var_mean / std_mean:
/// (self, dim?, *, correction?, keepdim)
fn var_std(ctx: &Ctx, std: bool, with_mean: bool, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let (src, device) = real_input(ctx)?;
    if !src.dtype().is_floating() {
        return Err(Error::runtime(format!("{name}: std and var only support floating point and complex dtypes")));
    }
    let dims = if ctx.is_none(1) { vec![] } else { ctx.int_list(1)? };
    let dims = normalize_dims(&dims, src.sizes().len(), &name)?;
    let correction = if ctx.is_none(2) { 1.0 } else { ctx.scalar_f64(2)? };
    let keepdim = ctx.bool(3);
    let sizes = reduced_shape(src.sizes(), &dims, keepdim);
    let out = output(ctx, variant, &sizes, src.dtype(), device)?;
    let mean = if with_mean { Some(ctx.new_output(&sizes, None, src.dtype(), device)?) } else { None };
    if out.numel() == 0 {
        return Ok(());
    }
    let dst = kernel_dst(&out, src.sizes(), &dims, keepdim);
    let mv = mean.map(|m| kernel_dst(&m, src.sizes(), &dims, keepdim));
    let sv = src.view.clone();
    launch(&name, device, move || npu_kernels::variance(&dst, mv.as_ref(), &sv, &dims, correction, std).map_err(|e| e.0))
}

use Dims::{List, One};
use Out::{Same, Truth, Widen};

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("prod", |c| reduction(c, ReduceOp::Prod, Dims::All, None, Widen(Some(1)), Variant::Functional)),
    ("prod.dim_int", |c| reduction(c, ReduceOp::Prod, One(1), Some(2), Widen(Some(3)), Variant::Functional)),
    ("prod.int_out", |c| reduction(c, ReduceOp::Prod, One(1), Some(2), Widen(Some(3)), Variant::Out)),
    ("nansum", |c| reduction(c, ReduceOp::NanSum, List(1), Some(2), Widen(Some(3)), Variant::Functional)),
    ("nansum.out", |c| reduction(c, ReduceOp::NanSum, List(1), Some(2), Widen(Some(3)), Variant::Out)),
    ("amax", |c| reduction(c, ReduceOp::Amax, List(1), Some(2), Same, Variant::Functional)),
    ("amax.out", |c| reduction(c, ReduceOp::Amax, List(1), Some(2), Same, Variant::Out)),
    ("amin", |c| reduction(c, ReduceOp::Amin, List(1), Some(2), Same, Variant::Functional)),
    ("amin.out", |c| reduction(c, ReduceOp::Amin, List(1), Some(2), Same, Variant::Out)),
    ("any", |c| reduction(c, ReduceOp::Any, Dims::All, None, Truth, Variant::Functional)),
    ("any.dim", |c| reduction(c, ReduceOp::Any, One(1), Some(2), Truth, Variant::Functional)),
    ("any.dims", |c| reduction(c, ReduceOp::Any, List(1), Some(2), Truth, Variant::Functional)),
    ("any.out", |c| reduction(c, ReduceOp::Any, One(1), Some(2), Truth, Variant::Out)),
    ("any.dims_out", |c| reduction(c, ReduceOp::Any, List(1), Some(2), Truth, Variant::Out)),
    ("any.all_out", |c| reduction(c, ReduceOp::Any, Dims::All, None, Truth, Variant::Out)),
    ("all", |c| reduction(c, ReduceOp::All, Dims::All, None, Truth, Variant::Functional)),
    ("all.dim", |c| reduction(c, ReduceOp::All, One(1), Some(2), Truth, Variant::Functional)),
    ("all.dims", |c| reduction(c, ReduceOp::All, List(1), Some(2), Truth, Variant::Functional)),
    ("all.out", |c| reduction(c, ReduceOp::All, One(1), Some(2), Truth, Variant::Out)),
    ("all.dims_out", |c| reduction(c, ReduceOp::All, List(1), Some(2), Truth, Variant::Out)),
    ("all.all_out", |c| reduction(c, ReduceOp::All, Dims::All, None, Truth, Variant::Out)),
    ("max.dim", |c| with_index(c, ReduceOp::Max)),
    ("min.dim", |c| with_index(c, ReduceOp::Min)),
    ("argmax", |c| arg(c, ReduceOp::Max, Variant::Functional)),
    ("argmax.out", |c| arg(c, ReduceOp::Max, Variant::Out)),
    ("argmin", |c| arg(c, ReduceOp::Min, Variant::Functional)),
    ("argmin.out", |c| arg(c, ReduceOp::Min, Variant::Out)),
    ("var.correction", |c| var_std(c, false, false, Variant::Functional)),
    ("var.correction_out", |c| var_std(c, false, false, Variant::Out)),
    ("std.correction", |c| var_std(c, true, false, Variant::Functional)),
    ("std.correction_out", |c| var_std(c, true, false, Variant::Out)),
    ("var_mean.correction", |c| var_std(c, false, true, Variant::Functional)),
    ("std_mean.correction", |c| var_std(c, true, true, Variant::Functional)),
    ("linalg_vector_norm", |c| vector_norm(c, Variant::Functional)),
    ("linalg_vector_norm.out", |c| vector_norm(c, Variant::Out)),
    ("norm.out", |c| legacy_norm(c, true, false)),
    ("norm.dtype_out", |c| legacy_norm(c, true, true)),
    ("norm.Scalar_out", |c| legacy_norm(c, false, false)),
    ("norm.ScalarOpt_dtype_out", |c| legacy_norm(c, false, true)),
];
