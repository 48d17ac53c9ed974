//! triu / tril (functional, in-place, out=): causal masks and friends.
use super::elementwise::{output, Variant};
use super::{common_device, launch, Ctx};
use crate::status::{Error, Result};

fn triangle(ctx: &Ctx, upper: bool, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let src = ctx.tensor(0)?;
    let device = common_device(&op, &[&src])?;
    if src.sizes().len() < 2 {
        return Err(Error::runtime(format!("{op}: input tensor must have at least 2 dimensions")));
    }
    let diagonal = ctx.int(1);
    let out = match variant {
        Variant::InPlace => {
            ctx.return_arg(0);
            src.clone()
        }
        _ => output(ctx, variant, src.sizes(), src.dtype(), device)?,
    };
    if out.dtype() != src.dtype() {
        return Err(Error::runtime(format!("{op}: Expected out tensor to have dtype {}, but got {} instead", src.dtype().name(), out.dtype().name())));
    }
    let (d, s) = (out.view.clone(), src.view);
    launch(&op, device, move || npu_kernels::triangle(&d, &s, diagonal, upper).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("triu", |c| triangle(c, true, Variant::Functional)),
    ("triu_", |c| triangle(c, true, Variant::InPlace)),
    ("triu.out", |c| triangle(c, true, Variant::Out)),
    ("tril", |c| triangle(c, false, Variant::Functional)),
    ("tril_", |c| triangle(c, false, Variant::InPlace)),
    ("tril.out", |c| triangle(c, false, Variant::Out)),
];
