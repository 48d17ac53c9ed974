//! upsample_* (what `F.interpolate` calls for nearest, nearest-exact, linear, bilinear,
//! trilinear and bicubic), forward and backward. Only the out= overloads are registered: the
//! functional ones are PyTorch's structured wrappers, which allocate the output (in the input's
//! memory format) and call them.
use npu_kernels::{DType, Interp};

use super::elementwise::{output, Variant};
use super::{common_device, launch, Ctx};
use crate::status::{Error, Result};

#[derive(Clone, Copy)]
enum Mode {
    Nearest,
    NearestExact,
    Linear,
    Cubic,
}

impl Mode {
    /// Nearest modes have no align_corners argument.
    fn interp(self, ctx: &Ctx, i: usize) -> Interp {
        match self {
            Mode::Nearest => Interp::Nearest,
            Mode::NearestExact => Interp::NearestExact,
            Mode::Linear => Interp::Linear { align_corners: ctx.bool(i) },
            Mode::Cubic => Interp::Cubic { align_corners: ctx.bool(i) },
        }
    }
    fn has_align(self) -> bool {
        matches!(self, Mode::Linear | Mode::Cubic)
    }
}

fn check_sizes(op: &str, input: &[i64], output_size: &[i64], nd: usize) -> Result<()> {
    if output_size.len() != nd {
        return Err(Error::runtime(format!("{op}: It is expected output_size equals to {nd}, but got size {}", output_size.len())));
    }
    if input.len() != nd + 2 {
        return Err(Error::runtime(format!("{op}: It is expected input_size equals to {}, but got size {}", nd + 2, input.len())));
    }
    let spatial = &input[2..];
    if spatial.iter().chain(output_size).any(|&s| s <= 0) {
        return Err(Error::runtime(format!(
            "{op}: Input and output sizes should be greater than 0, but got input ({spatial:?}) and output ({output_size:?})"
        )));
    }
    Ok(())
}

fn with_output(input: &[i64], output_size: &[i64]) -> Vec<i64> {
    input[..2].iter().chain(output_size).copied().collect()
}

/// uint8 interpolates with nearest modes, and bilinear/bicubic (PyTorch CPU's fixed-point
/// path, [`npu_kernels::upsample_u8`]); 1d and 3d linear take floats only, as on CPU.
fn check_dtype(op: &str, dtype: DType, mode: Mode, nd: usize) -> Result<()> {
    match dtype {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Ok(()),
        DType::U8 if matches!(mode, Mode::Nearest | Mode::NearestExact) || nd == 2 => Ok(()),
        d => Err(Error::runtime(format!("{op}: \"{op}\" not implemented for '{}'", d.name()))),
    }
}

/// (self, output_size, [align_corners,] scales..., *, out).
fn forward(ctx: &Ctx, nd: usize, mode: Mode) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    let output_size = ctx.int_list(1)?;
    // unbatched inputs are batched by F.interpolate; here the rank is always nd + 2
    check_sizes(&op, x.sizes(), &output_size, nd)?;
    check_dtype(&op, x.dtype(), mode, nd)?;
    let first_scale = 2 + mode.has_align() as usize;
    let interp = mode.interp(ctx, 2);
    let scales: Vec<Option<f64>> = (0..nd).map(|d| ctx.opt_double(first_scale + d)).collect();
    let out = output(ctx, Variant::Out, &with_output(x.sizes(), &output_size), x.dtype(), device)?;
    if out.dtype() != x.dtype() {
        return Err(Error::runtime(format!("{op}: expected out dtype {}, got {}", x.dtype().name(), out.dtype().name())));
    }
    let fixed_point = x.dtype() == DType::U8 && matches!(mode, Mode::Linear | Mode::Cubic);
    let (dst, src) = (out.view.clone(), x.view);
    launch(&op, device, move || {
        match interp {
            Interp::Linear { align_corners } | Interp::Cubic { align_corners } if fixed_point => {
                let cubic = matches!(interp, Interp::Cubic { .. });
                npu_kernels::upsample_u8(&dst, &src, cubic, align_corners, [scales[0], scales[1]])
            }
            _ => npu_kernels::upsample(&dst, &src, interp, &scales),
        }
        .map_err(|e| e.0)
    })
}

/// (grad_output, output_size, input_size, [align_corners,] scales..., *, grad_input).
fn backward(ctx: &Ctx, nd: usize, mode: Mode) -> Result<()> {
    let op = ctx.op;
    let g = ctx.tensor(0)?;
    let device = common_device(&op, &[&g])?;
    let (output_size, input_size) = (ctx.int_list(1)?, ctx.int_list(2)?);
    check_sizes(&op, &input_size, &output_size, nd)?;
    if !g.dtype().is_floating() {
        return Err(Error::runtime(format!("{op}: \"{op}\" not implemented for '{}'", g.dtype().name())));
    }
    let want = with_output(&input_size, &output_size);
    if g.sizes() != want.as_slice() {
        return Err(Error::runtime(format!("{op}: expected grad_output of size {want:?}, but got {:?}", g.sizes())));
    }
    let first_scale = 3 + mode.has_align() as usize;
    let interp = mode.interp(ctx, 3);
    let scales: Vec<Option<f64>> = (0..nd).map(|d| ctx.opt_double(first_scale + d)).collect();
    let out = output(ctx, Variant::Out, &input_size, g.dtype(), device)?;
    if out.dtype() != g.dtype() {
        return Err(Error::runtime(format!("{op}: expected grad_input dtype {}, got {}", g.dtype().name(), out.dtype().name())));
    }
    let (dst, gv) = (out.view.clone(), g.view);
    launch(&op, device, move || npu_kernels::upsample_backward(&dst, &gv, interp, &scales).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = {
    use Mode::*;
    &[
        ("upsample_nearest1d.out", |c| forward(c, 1, Nearest)),
        ("upsample_nearest2d.out", |c| forward(c, 2, Nearest)),
        ("upsample_nearest3d.out", |c| forward(c, 3, Nearest)),
        ("_upsample_nearest_exact1d.out", |c| forward(c, 1, NearestExact)),
        ("_upsample_nearest_exact2d.out", |c| forward(c, 2, NearestExact)),
        ("_upsample_nearest_exact3d.out", |c| forward(c, 3, NearestExact)),
        ("upsample_linear1d.out", |c| forward(c, 1, Linear)),
        ("upsample_bilinear2d.out", |c| forward(c, 2, Linear)),
        ("upsample_trilinear3d.out", |c| forward(c, 3, Linear)),
        ("upsample_bicubic2d.out", |c| forward(c, 2, Cubic)),
        ("upsample_nearest1d_backward.grad_input", |c| backward(c, 1, Nearest)),
        ("upsample_nearest2d_backward.grad_input", |c| backward(c, 2, Nearest)),
        ("upsample_nearest3d_backward.grad_input", |c| backward(c, 3, Nearest)),
        ("_upsample_nearest_exact1d_backward.grad_input", |c| backward(c, 1, NearestExact)),
        ("_upsample_nearest_exact2d_backward.grad_input", |c| backward(c, 2, NearestExact)),
        ("_upsample_nearest_exact3d_backward.grad_input", |c| backward(c, 3, NearestExact)),
        ("upsample_linear1d_backward.grad_input", |c| backward(c, 1, Linear)),
        ("upsample_bilinear2d_backward.grad_input", |c| backward(c, 2, Linear)),
        ("upsample_trilinear3d_backward.grad_input", |c| backward(c, 3, Linear)),
        ("upsample_bicubic2d_backward.grad_input", |c| backward(c, 2, Cubic)),
    ]
};
