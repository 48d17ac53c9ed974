//! unique (_unique, _unique2, unique_dim) and unique_consecutive (unique_dim_consecutive). The
//! number of groups sizes the outputs, so the stream is waited for and the grouping computed
//! on the host; the values are then gathered on the stream.
use npu_kernels::{DType, View};
use npu_runtime as rt;

use super::{common_device, launch, Ctx};
use crate::status::{Error, Result};

struct Want {
    dim: Option<i64>,
    sorted: bool,
    inverse: bool,
    counts: bool,
    /// _unique returns (values, inverse) only
    pair: bool,
}

fn run(ctx: &Ctx, w: Want) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    if x.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    let rank = x.sizes().len() as i64;
    let dim = match w.dim {
        None => None,
        Some(d) => {
            let r = rank.max(1);
            if d < -r || d >= r {
                return Err(Error::index(format!("{op}: Dimension out of range (expected to be in range of [{}, {}], but got {d})", -r, r - 1)));
            }
            Some(d.rem_euclid(r) as usize)
        }
    };
    if let Some(d) = dim {
        if rank == 0 {
            return Err(Error::use_fallback("unique along a dim of a 0-dim tensor"));
        }
        if x.sizes()[d] == 0 {
            if x.sizes().iter().filter(|&&s| s == 0).count() != 1 {
                return Err(Error::runtime(format!("{op}: Number of zero sized dimensions is more than one, so unique cannot be applied ")));
            }
            ctx.new_output(x.sizes(), None, x.dtype(), device)?;
            ctx.new_output(&[0], None, DType::I64, device)?;
            ctx.new_output(&[0], None, DType::I64, device)?;
            return Ok(());
        }
    }
    rt::current_stream(device)?.synchronize()?;
    let g = npu_kernels::unique_groups(&x.view, dim, w.sorted).map_err(|e| Error::runtime(e.0))?;
    let groups = g.first.len() as i64;
    let values_sizes = match dim {
        None => vec![groups],
        Some(d) => {
            let mut s = x.sizes().to_vec();
            s[d] = groups;
            s
        }
    };
    let values = ctx.new_output(&values_sizes, None, x.dtype(), device)?;
    let (inv_sizes, count_sizes) = match dim {
        Some(d) => (vec![x.sizes()[d]], vec![groups]),
        None => (if w.inverse { x.sizes().to_vec() } else { vec![0] }, if w.counts { vec![groups] } else { vec![0] }),
    };
    let inverse = ctx.new_output(&inv_sizes, None, DType::I64, device)?;
    let counts = if w.pair { None } else { Some(ctx.new_output(&count_sizes, None, DType::I64, device)?) };
    let (vd, src) = (values.view.clone(), x.view);
    let iv = (inverse.numel() > 0).then(|| inverse.view.clone());
    let cv = counts.filter(|c| c.numel() > 0).map(|c| c.view.clone());
    launch(&op, device, move || {
        let store = |dst: &View, vals: &[i64]| -> std::result::Result<(), String> {
            let src = View::contiguous(vals.as_ptr() as *mut u8, DType::I64, &dst.sizes);
            npu_kernels::copy(dst, &src).map_err(|e| e.0)
        };
        npu_kernels::unique_values(&vd, &src, dim, &g.first).map_err(|e| e.0)?;
        if let Some(iv) = &iv {
            store(iv, &g.inverse)?;
        }
        if let Some(cv) = &cv {
            store(cv, &g.counts)?;
        }
        Ok(())
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    // (self, sorted, return_inverse, return_counts)
    ("_unique2", |c| run(c, Want { dim: None, sorted: true, inverse: c.bool(2), counts: c.bool(3), pair: false })),
    // (self, sorted, return_inverse)
    ("_unique", |c| run(c, Want { dim: None, sorted: true, inverse: c.bool(2), counts: false, pair: true })),
    // (self, return_inverse, return_counts, dim?)
    ("unique_consecutive", |c| run(c, Want { dim: c.opt_int(3), sorted: false, inverse: c.bool(1), counts: c.bool(2), pair: false })),
    // (self, dim, sorted, return_inverse, return_counts)
    ("unique_dim", |c| run(c, Want { dim: Some(c.int(1)), sorted: true, inverse: true, counts: true, pair: false })),
    // (self, dim, return_inverse, return_counts)
    ("unique_dim_consecutive", |c| run(c, Want { dim: Some(c.int(1)), sorted: false, inverse: true, counts: true, pair: false })),
];
