//! `fill_` and `zero_`.
use npu_kernels::Scalar;

use super::{common_device, launch, Ctx};
use crate::status::{Error, Result};

fn fill(ctx: &Ctx, value: Scalar) -> Result<()> {
    let dst = ctx.tensor(0)?;
    let device = common_device(&ctx.op, &[&dst])?;
    if dst.numel() > 0 {
        let view = dst.view.clone();
        launch(&ctx.op, device, move || npu_kernels::fill(&view, value).map_err(|e| e.0))?;
    }
    ctx.return_arg(0);
    Ok(())
}

pub fn fill_scalar(ctx: &Ctx) -> Result<()> {
    fill(ctx, ctx.scalar(1)?)
}

pub fn fill_tensor(ctx: &Ctx) -> Result<()> {
    let value = ctx.tensor(1)?;
    if !value.sizes().is_empty() {
        return Err(Error::runtime(format!(
            "fill_ only supports 0-dimension value tensor but got tensor with {} dimensions.",
            value.sizes().len()
        )));
    }
    fill(ctx, ctx.scalar(1)?)
}

pub fn zero(ctx: &Ctx) -> Result<()> {
    fill(ctx, Scalar::Int(0))
}
