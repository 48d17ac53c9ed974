//! In-place random ops on the device generator. Each reserves its Philox counters on the
//! host, in call order, so results are reproducible under `torch.npu.manual_seed` whatever
//! the device does concurrently.
use npu_kernels::{BinaryOp, DType, KernelError, Scalar, View};

use super::shape::{broadcast_shapes, expand_to};
use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

/// Counters a kernel may consume for `numel` elements: a 128-bit Philox block per element
/// is an upper bound for every kernel here (randperm included).
fn counters(numel: usize) -> u64 {
    4 * numel as u64
}

fn require_float(op: &str, dtype: DType) -> Result<()> {
    if dtype.is_floating() {
        Ok(())
    } else {
        Err(Error::not_implemented(format!("\"{op}\" not implemented for '{}'", dtype.name())))
    }
}

/// Shared shape of the in-place random ops: `self` is argument 0, the generator is argument
/// `gen_arg`; `kernel` gets the view and (seed, offset).
fn random_inplace<K>(ctx: &Ctx, gen_arg: usize, kernel: K) -> Result<()>
where
    K: FnOnce(&View, u64, u64) -> std::result::Result<u64, KernelError> + Send + 'static,
{
    let dst = ctx.tensor(0)?;
    let device = common_device(ctx.op, &[&dst])?;
    if dst.numel() > 0 {
        let (seed, offset) = ctx.generator(gen_arg, device, counters(dst.numel()))?;
        let view = dst.view.clone();
        launch(ctx.op, device, move || kernel(&view, seed, offset).map(|_| ()).map_err(|e| e.0))?;
    }
    ctx.return_arg(0);
    Ok(())
}

pub fn uniform(ctx: &Ctx) -> Result<()> {
    let (from, to) = (ctx.double(1), ctx.double(2));
    require_float("uniform_", ctx.tensor(0)?.dtype())?;
    if !(from <= to) {
        return Err(Error::runtime(format!(
            "uniform_ expects to return a [from, to) range, but found from={from} > to={to}"
        )));
    }
    random_inplace(ctx, 3, move |v, s, o| npu_kernels::uniform(v, from, to, s, o))
}

pub fn normal(ctx: &Ctx) -> Result<()> {
    let (mean, std) = (ctx.double(1), ctx.double(2));
    require_float("normal_", ctx.tensor(0)?.dtype())?;
    if !(std >= 0.0) {
        return Err(Error::runtime(format!("normal expects std >= 0.0, but found std {std}")));
    }
    random_inplace(ctx, 3, move |v, s, o| npu_kernels::normal(v, mean, std, s, o))
}

pub fn bernoulli_float(ctx: &Ctx) -> Result<()> {
    let p = ctx.double(1);
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::runtime(format!("bernoulli_ expects p to be in [0, 1], but got p={p}")));
    }
    random_inplace(ctx, 2, move |v, s, o| npu_kernels::bernoulli_scalar(v, p, s, o))
}

pub fn bernoulli_tensor(ctx: &Ctx) -> Result<()> {
    let dst = ctx.tensor(0)?;
    let p = ctx.tensor(1)?;
    common_device(ctx.op, &[&dst, &p])?;
    require_float("bernoulli_", p.dtype())?;
    let p = expand_to(&p.view, dst.sizes(), ctx.op)?;
    random_inplace(ctx, 2, move |v, s, o| npu_kernels::bernoulli_tensor(v, &p, s, o))
}

pub fn random(ctx: &Ctx) -> Result<()> {
    random_inplace(ctx, 1, npu_kernels::random_full)
}

/// Largest value `random_` draws for a dtype when no upper bound is given.
fn max_inclusive(dtype: DType) -> Result<u64> {
    Ok(match dtype {
        DType::Bool => 1,
        DType::U8 => u8::MAX as u64,
        DType::I8 => i8::MAX as u64,
        DType::I16 => i16::MAX as u64,
        DType::I32 => i32::MAX as u64,
        DType::I64 => i64::MAX as u64,
        DType::F16 => 1 << 11,
        DType::BF16 => 1 << 8,
        DType::F32 => 1 << 24,
        DType::F64 => 1 << 53,
        other => {
            return Err(Error::not_implemented(format!(
                "\"random_\" not implemented for '{}'",
                other.name()
            )))
        }
    })
}

fn random_range(ctx: &Ctx, from: i64, to: Option<i64>, gen_arg: usize) -> Result<()> {
    let dtype = ctx.tensor(0)?.dtype();
    let range = match to {
        Some(to) => {
            if from >= to {
                return Err(Error::runtime(format!(
                    "random_ expects 'from' to be less than 'to', but got from={from} >= to={to}"
                )));
            }
            to.wrapping_sub(from) as u64
        }
        None => {
            let max = max_inclusive(dtype)?;
            if from as i128 > max as i128 {
                return Err(Error::runtime(format!(
                    "random_ expects 'from' to be at most {max} for dtype {}, but got from={from}",
                    dtype.name()
                )));
            }
            (max as i128 - from as i128 + 1) as u64
        }
    };
    random_inplace(ctx, gen_arg, move |v, s, o| npu_kernels::random_from_to(v, from, range, s, o))
}

pub fn random_from(ctx: &Ctx) -> Result<()> {
    random_range(ctx, ctx.int(1), ctx.opt_int(2), 3)
}

pub fn random_to(ctx: &Ctx) -> Result<()> {
    random_range(ctx, 0, Some(ctx.int(1)), 2)
}

pub fn exponential(ctx: &Ctx) -> Result<()> {
    let lambda = ctx.double(1);
    require_float("exponential_", ctx.tensor(0)?.dtype())?;
    if !(lambda > 0.0) {
        return Err(Error::runtime(format!(
            "exponential_ expects lambda > 0.0, but found lambda={lambda}"
        )));
    }
    random_inplace(ctx, 2, move |v, s, o| npu_kernels::exponential(v, lambda, s, o))
}

pub fn geometric(ctx: &Ctx) -> Result<()> {
    let p = ctx.double(1);
    if !(p > 0.0 && p < 1.0) {
        return Err(Error::runtime(format!("geometric_ expects p to be in (0, 1), but got p={p}")));
    }
    random_inplace(ctx, 2, move |v, s, o| npu_kernels::geometric(v, p, s, o))
}

pub fn log_normal(ctx: &Ctx) -> Result<()> {
    let (mean, std) = (ctx.double(1), ctx.double(2));
    require_float("log_normal_", ctx.tensor(0)?.dtype())?;
    if !(std > 0.0) {
        return Err(Error::runtime(format!("log_normal_ expects std > 0.0, but found std={std}")));
    }
    random_inplace(ctx, 3, move |v, s, o| npu_kernels::log_normal(v, mean, std, s, o))
}

pub fn cauchy(ctx: &Ctx) -> Result<()> {
    let (median, sigma) = (ctx.double(1), ctx.double(2));
    require_float("cauchy_", ctx.tensor(0)?.dtype())?;
    random_inplace(ctx, 3, move |v, s, o| npu_kernels::cauchy(v, median, sigma, s, o))
}

/// randperm.generator_out(int n, *, Generator? generator, Tensor(a!) out)
pub fn randperm(ctx: &Ctx) -> Result<()> {
    let n = ctx.int(0);
    let out = ctx.tensor(2)?;
    let device = common_device(ctx.op, &[&out])?;
    if n < 0 {
        return Err(Error::runtime(format!("randperm: n must be non-negative, got {n}")));
    }
    if out.sizes() != [n] {
        return Err(Error::runtime(format!(
            "randperm: expected out of shape [{n}], got {:?}",
            out.sizes()
        )));
    }
    if n > 0 {
        let (seed, offset) = ctx.generator(1, device, counters(n as usize))?;
        let view = out.view.clone();
        launch(ctx.op, device, move || {
            npu_kernels::randperm(&view, n, seed, offset).map(|_| ()).map_err(|e| e.0)
        })?;
    }
    ctx.return_arg(2);
    Ok(())
}

/// A 0-stride f64 view of `value` over `sizes`; the box must outlive the kernel.
fn scalar_view(value: &f64, sizes: &[i64]) -> View {
    View {
        ptr: value as *const f64 as *mut u8,
        dtype: DType::F64,
        sizes: sizes.to_vec(),
        strides: vec![0; sizes.len()],
    }
}

/// normal(mean, std) with a tensor for either or both: a new tensor of mean's (or std's)
/// dtype and the broadcast shape.
fn normal_out_of_place(
    ctx: &Ctx,
    mean: std::result::Result<Tensor, f64>,
    std: std::result::Result<Tensor, f64>,
) -> Result<()> {
    let op = ctx.op;
    let tensors: Vec<&Tensor> = [mean.as_ref().ok(), std.as_ref().ok()].into_iter().flatten().collect();
    let device = common_device(op, &tensors)?;
    let dtype = tensors[0].dtype();
    for t in &tensors {
        require_float("normal", t.dtype())?;
    }
    if let Err(s) = std {
        if !(s >= 0.0) {
            return Err(Error::runtime(format!("normal expects std >= 0.0, but found std {s}")));
        }
    }
    let sizes = match (&mean, &std) {
        (Ok(m), Ok(s)) => broadcast_shapes(m.sizes(), s.sizes(), op)?,
        (Ok(t), Err(_)) | (Err(_), Ok(t)) => t.sizes().to_vec(),
        (Err(_), Err(_)) => unreachable!("one argument is a tensor"),
    };
    let out = ctx.new_output(&sizes, None, dtype, device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    let (seed, offset) = ctx.generator(2, device, counters(out.numel()))?;
    let scalars = Box::new([mean.as_ref().err().copied().unwrap_or(0.0), std.as_ref().err().copied().unwrap_or(0.0)]);
    let mean_view = match &mean {
        Ok(m) => expand_to(&m.view, &sizes, op)?,
        Err(_) => scalar_view(&scalars[0], &sizes),
    };
    let std_view = match &std {
        Ok(s) => expand_to(&s.view, &sizes, op)?,
        Err(_) => scalar_view(&scalars[1], &sizes),
    };
    let dst = out.view.clone();
    launch(op, device, move || {
        let _keep = scalars;
        npu_kernels::normal_tensor(&dst, &mean_view, &std_view, seed, offset).map(|_| ()).map_err(|e| e.0)
    })
}

pub fn normal_tensor_float(ctx: &Ctx) -> Result<()> {
    normal_out_of_place(ctx, Ok(ctx.tensor(0)?), Err(ctx.double(1)))
}

pub fn normal_float_tensor(ctx: &Ctx) -> Result<()> {
    normal_out_of_place(ctx, Err(ctx.double(0)), Ok(ctx.tensor(1)?))
}

pub fn normal_tensor_tensor(ctx: &Ctx) -> Result<()> {
    normal_out_of_place(ctx, Ok(ctx.tensor(0)?), Ok(ctx.tensor(1)?))
}

/// native_dropout(input, p, train?) -> (output, mask): with training (or `train` None), keep
/// each element with probability 1 - p and scale it by 1 / (1 - p); else copy.
pub fn native_dropout(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    let p = ctx.double(1);
    let train = ctx.is_none(2) || ctx.bool(2);
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::runtime(format!("{op}: dropout probability has to be between 0 and 1, but got {p}")));
    }
    if x.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    let out = ctx.new_output(x.sizes(), None, x.dtype(), device)?;
    let mask = ctx.new_output(x.sizes(), None, DType::Bool, device)?;
    if x.numel() == 0 {
        return Ok(());
    }
    let (dtype, numel) = (x.dtype(), x.numel());
    let (o, m, xv) = (out.view, mask.view, x.view);
    if !train {
        return launch(&op, device, move || {
            npu_kernels::copy(&o, &xv).map_err(|e| e.0)?;
            npu_kernels::fill(&m, Scalar::Bool(true)).map_err(|e| e.0)
        });
    }
    let keep = 1.0 - p;
    let scale = if keep == 0.0 { 0.0 } else { 1.0 / keep };
    let (seed, offset) = ctx.default_generator(device, counters(numel))?;
    launch(&op, device, move || {
        npu_kernels::bernoulli_scalar(&m, keep, seed, offset).map_err(|e| e.0)?;
        npu_kernels::binary(BinaryOp::Mul, &o, &xv, &m, Scalar::Int(1), dtype).map_err(|e| e.0)?;
        npu_kernels::binary_scalar(BinaryOp::Mul, &o, &o, Scalar::Float(scale), Scalar::Int(1), dtype).map_err(|e| e.0)
    })
}

/// native_dropout_backward(grad_output, mask, scale) -> grad_output * mask * scale
pub fn native_dropout_backward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (g, mask) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &mask])?;
    let scale = ctx.double(2);
    if mask.dtype() != DType::Bool {
        return Err(Error::runtime(format!("{op}: Mask should be Bool Scalar Type {}", mask.dtype().name())));
    }
    if g.dtype().is_complex() {
        return Err(Error::use_fallback("complex gradient"));
    }
    let sizes = broadcast_shapes(g.sizes(), mask.sizes(), &op)?;
    // grad * mask * scale: an integer or bool gradient times the float scale gives the
    // default float dtype, as on CPU
    let dtype = if g.dtype().is_floating() { g.dtype() } else { ctx.default_float() };
    let out = ctx.new_output(&sizes, None, dtype, device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    let (o, gv, mv, masked) = (out.view.clone(), expand_to(&g.view, &sizes, &op)?, expand_to(&mask.view, &sizes, &op)?, g.dtype());
    launch(&op, device, move || {
        npu_kernels::binary(BinaryOp::Mul, &o, &gv, &mv, Scalar::Int(1), masked).map_err(|e| e.0)?;
        npu_kernels::binary_scalar(BinaryOp::Mul, &o, &o, Scalar::Float(scale), Scalar::Int(1), dtype).map_err(|e| e.0)
    })
}
