//! Advanced indexing: `index.Tensor` (`x[idx]`, `x[mask]`), `index_put_` / `_index_put_impl_`
//! (`x[idx] = v`, accumulate) and `nonzero`. Boolean masks become the coordinates of their
//! nonzero elements, which needs their values: the stream is synchronized first, as CUDA does.
use npu_kernels::{DType, View};
use npu_runtime as rt;

use super::elementwise::{output, Variant};
use super::shape::{broadcast_shapes, expand_to};
use super::{common_device, launch, Ctx, DeviceKind, Tensor};
use crate::status::{Error, Result};

/// Host memory the kernel reads (index coordinates from masks or CPU tensors); moved into the
/// launched closure so it outlives the kernel.
type Hold = Vec<Vec<u64>>;

/// A contiguous host copy of `v` (its memory must be readable now).
fn host_copy(v: &View, hold: &mut Hold) -> Result<View> {
    let mut buf = vec![0u64; (v.numel() * v.dtype.size()).div_ceil(8).max(1)];
    let dst = View::contiguous(buf.as_mut_ptr() as *mut u8, v.dtype, &v.sizes);
    npu_kernels::copy(&dst, v).map_err(|e| Error::runtime(e.0))?;
    hold.push(buf);
    Ok(dst)
}

/// A 0-dim host view of a scalar (f64, i64 or bool, as PyTorch wraps Python numbers), with the
/// buffer that holds it.
pub(super) fn scalar_view(s: npu_kernels::Scalar) -> Result<(View, Vec<u64>)> {
    let dtype = match s {
        npu_kernels::Scalar::Float(_) => DType::F64,
        npu_kernels::Scalar::Int(_) => DType::I64,
        npu_kernels::Scalar::Bool(_) => DType::Bool,
        npu_kernels::Scalar::Complex(..) => return Err(Error::use_fallback("complex scalar")),
    };
    let mut buf = vec![0u64; 1];
    let v = View::contiguous(buf.as_mut_ptr() as *mut u8, dtype, &[]);
    npu_kernels::fill(&v, s).map_err(|e| Error::runtime(e.0))?;
    Ok((v, buf))
}

/// The coordinates of the nonzero elements of `mask`, one 1-D int64 view per mask dim.
fn mask_coordinates(mask: &View, hold: &mut Hold) -> Result<Vec<View>> {
    let n = npu_kernels::count_nonzero(mask).map_err(|e| Error::runtime(e.0))?;
    let rank = mask.sizes.len();
    let mut buf = vec![0u64; (n * rank).max(1)];
    let coords = View::contiguous(buf.as_mut_ptr() as *mut u8, DType::I64, &[n as i64, rank as i64]);
    npu_kernels::nonzero(&coords, mask).map_err(|e| Error::runtime(e.0))?;
    let views = (0..rank)
        .map(|k| View {
            ptr: unsafe { coords.ptr.add(k * 8) },
            sizes: vec![n as i64],
            strides: vec![rank as i64],
            dtype: DType::I64,
        })
        .collect();
    hold.push(buf);
    Ok(views)
}

/// What `x[indices]` indexes: the dims, the index views broadcast to one shape, that shape.
struct Plan {
    dims: Vec<usize>,
    views: Vec<View>,
    shape: Vec<i64>,
    hold: Hold,
}

fn plan(op: &str, x: &Tensor, indices: &[Option<Tensor>], device: i32) -> Result<Plan> {
    let rank = x.sizes().len();
    let (mut dims, mut views, mut hold) = (vec![], vec![], Hold::new());
    let mut d = 0usize;
    let mut synced = false;
    for t in indices {
        let Some(t) = t else {
            d += 1;
            continue;
        };
        match t.device {
            DeviceKind::Npu if t.index != device => {
                return Err(Error::runtime(format!(
                    "{op}: indices should be either on cpu or on the same device as the indexed tensor (npu:{device}), got {}",
                    t.describe_device()
                )))
            }
            DeviceKind::Other => return Err(Error::runtime(format!("{op}: indices on {} are not supported", t.describe_device()))),
            _ => {}
        }
        match t.dtype() {
            DType::Bool | DType::U8 => {
                let k = t.sizes().len();
                if d + k > rank {
                    return Err(Error::index(format!("too many indices for tensor of dimension {rank}")));
                }
                for (j, &n) in t.sizes().iter().enumerate() {
                    if n != x.sizes()[d + j] {
                        return Err(Error::index(format!(
                            "The shape of the mask {:?} at index {j} does not match the shape of the indexed tensor {:?} at index {}",
                            t.sizes(), x.sizes(), d + j
                        )));
                    }
                }
                if t.device == DeviceKind::Npu && !synced {
                    rt::current_stream(device)?.synchronize()?;
                    synced = true;
                }
                for (j, v) in mask_coordinates(&t.view, &mut hold)?.into_iter().enumerate() {
                    dims.push(d + j);
                    views.push(v);
                }
                d += k;
            }
            DType::I64 | DType::I32 => {
                if d >= rank {
                    return Err(Error::index(format!("too many indices for tensor of dimension {rank}")));
                }
                let v = if t.device == DeviceKind::Cpu { host_copy(&t.view, &mut hold)? } else { t.view.clone() };
                dims.push(d);
                views.push(v);
                d += 1;
            }
            other => {
                return Err(Error::index(format!(
                    "tensors used as indices must be long, int, byte or bool tensors, got {}",
                    other.name()
                )))
            }
        }
    }
    if d > rank {
        return Err(Error::index(format!("too many indices for tensor of dimension {rank}")));
    }
    if views.is_empty() {
        return Err(Error::use_fallback("indexing without index tensors"));
    }
    let mut shape = views[0].sizes.clone();
    for v in &views[1..] {
        shape = broadcast_shapes(&shape, &v.sizes, op).map_err(|_| {
            Error::index(format!("shape mismatch: indexing tensors could not be broadcast together with shapes {:?}", views.iter().map(|v| v.sizes.clone()).collect::<Vec<_>>()))
        })?;
    }
    let views = views.iter().map(|v| expand_to(v, &shape, op)).collect::<Result<Vec<_>>>()?;
    Ok(Plan { dims, views, shape, hold })
}

/// index.Tensor(self, indices) and index.Tensor_out.
fn index_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    let indices = ctx.opt_tensor_list(1)?;
    let p = plan(&op, &x, &indices, device)?;
    let shape = npu_kernels::index_result_shape(x.sizes(), &p.dims, &p.shape);
    let out = output(ctx, variant, &shape, x.dtype(), device)?;
    if out.dtype() != x.dtype() {
        return Err(Error::runtime(format!("{op}: expected out dtype {}, got {}", x.dtype().name(), out.dtype().name())));
    }
    let (dst, src, Plan { dims, views, hold, .. }) = (out.view.clone(), x.view, p);
    launch(&op, device, move || {
        let _hold = hold;
        npu_kernels::index_gather(&dst, &src, &dims, &views).map_err(|e| e.0)
    })
}

/// index_put_(self, indices, values, accumulate), _index_put_impl_(..., unsafe) and the
/// functional index_put.
fn index_put_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (x, values) = (ctx.tensor(0)?, ctx.tensor(2)?);
    let device = common_device(&op, &[&x, &values])?;
    let accumulate = ctx.bool(3);
    let indices = ctx.opt_tensor_list(1)?;
    if values.dtype() != x.dtype() {
        return Err(Error::runtime(format!(
            "{op}: Index put requires the source and destination dtypes match, got {} for the destination and {} for the source.",
            x.dtype().name(), values.dtype().name()
        )));
    }
    let mut p = plan(&op, &x, &indices, device)?;
    let vview = if values.device == DeviceKind::Cpu { host_copy(&values.view, &mut p.hold)? } else { values.view.clone() };
    let out = match variant {
        Variant::InPlace => {
            ctx.return_arg(0);
            x.clone()
        }
        _ => output(ctx, variant, x.sizes(), x.dtype(), device)?,
    };
    let copy_self = variant != Variant::InPlace;
    let (dst, src, Plan { dims, views, hold, .. }) = (out.view.clone(), x.view, p);
    launch(&op, device, move || {
        let _hold = hold;
        if copy_self {
            npu_kernels::copy(&dst, &src).map_err(|e| e.0)?;
        }
        npu_kernels::index_put(&dst, &dims, &views, &vview, accumulate).map_err(|e| e.0)
    })
}

/// nonzero(self) and nonzero.out: [count, rank] int64, synchronizing to learn the count.
fn nonzero_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    if x.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    rt::current_stream(device)?.synchronize()?;
    let n = npu_kernels::count_nonzero(&x.view).map_err(|e| Error::runtime(e.0))?;
    let out = output(ctx, variant, &[n as i64, x.sizes().len() as i64], DType::I64, device)?;
    if out.dtype() != DType::I64 {
        return Err(Error::runtime(format!("{op}: Expected object of scalar type Long as out, but got {}", out.dtype().name())));
    }
    let (dst, src) = (out.view.clone(), x.view);
    launch(&op, device, move || npu_kernels::nonzero(&dst, &src).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("index.Tensor", |c| index_impl(c, Variant::Functional)),
    ("index.Tensor_out", |c| index_impl(c, Variant::Out)),
    ("index_put_", |c| index_put_impl(c, Variant::InPlace)),
    ("_index_put_impl_", |c| index_put_impl(c, Variant::InPlace)),
    ("index_put", |c| index_put_impl(c, Variant::Functional)),
    ("nonzero", |c| nonzero_impl(c, Variant::Functional)),
    ("nonzero.out", |c| nonzero_impl(c, Variant::Out)),
];

/// isin.Tensor_Tensor / isin.Tensor_Scalar (elements, test, *, assume_unique, invert) and .out.
fn isin_impl(ctx: &Ctx, scalar_test: bool, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let elements = ctx.tensor(0)?;
    let mut hold = Hold::new();
    let (device, test) = if scalar_test {
        let (v, buf) = scalar_view(ctx.scalar(1)?)?;
        hold.push(buf);
        (common_device(&op, &[&elements])?, v)
    } else {
        let t = ctx.tensor(1)?;
        let device = common_device(&op, &[&elements, &t])?;
        let v = if t.device == DeviceKind::Cpu { host_copy(&t.view, &mut hold)? } else { t.view.clone() };
        (device, v)
    };
    if elements.dtype().is_complex() || test.dtype.is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    let invert = ctx.bool(3);
    let out = output(ctx, variant, elements.sizes(), DType::Bool, device)?;
    if out.dtype() != DType::Bool {
        return Err(Error::runtime(format!("{op}: Expected out tensor to have dtype bool, but got {} instead", out.dtype().name())));
    }
    let (dst, ev) = (out.view.clone(), elements.view);
    launch(&op, device, move || {
        let _hold = hold;
        npu_kernels::isin(&dst, &ev, &test, invert).map_err(|e| e.0)
    })
}

pub const SEARCH_OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("isin.Tensor_Tensor", |c| isin_impl(c, false, Variant::Functional)),
    ("isin.Tensor_Tensor_out", |c| isin_impl(c, false, Variant::Out)),
    ("isin.Tensor_Scalar", |c| isin_impl(c, true, Variant::Functional)),
    ("isin.Tensor_Scalar_out", |c| isin_impl(c, true, Variant::Out)),
];
