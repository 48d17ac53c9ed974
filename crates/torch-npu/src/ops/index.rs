//! Data-dependent and multi-input shape ops: masked_select, cat.
use npu_kernels::{DType, View};
use npu_runtime as rt;

use super::elementwise::{output, Variant};
use super::promote::{result_type, Operand};
use super::shape::{broadcast_shapes, expand_to};
use super::{common_device, launch, launch_sized, Ctx, Tensor};
use crate::status::{Error, Result};

/// masked_select(self, mask): its size depends on the mask's values, so it waits for the
/// device (as on CUDA), counts on the host, then gathers on the device.
pub fn masked_select(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let src = ctx.tensor(0)?;
    let mask = ctx.tensor(1)?;
    let device = common_device(&op, &[&src, &mask])?;
    if src.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if mask.dtype() != DType::Bool {
        return Err(Error::runtime(format!(
            "masked_select: expected BoolTensor for mask, got {}",
            mask.dtype().name()
        )));
    }
    let sizes = broadcast_shapes(src.sizes(), mask.sizes(), &op)?;
    let src_view = expand_to(&src.view, &sizes, &op)?;
    let mask_view = expand_to(&mask.view, &sizes, &op)?;
    rt::current_stream(device)?.synchronize()?;
    let n = npu_kernels::count_nonzero(&mask_view).map_err(|e| Error::runtime(e.0))?;
    let out = ctx.new_output(&[n as i64], None, src.dtype(), device)?;
    if n == 0 {
        return Ok(());
    }
    let dst = out.view.clone();
    launch(&op, device, move || npu_kernels::masked_select(&dst, &src_view, &mask_view).map_err(|e| e.0))
}

/// cat(tensors, dim) and cat.out: each input is copied into its slice of the output.
fn cat_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let inputs = ctx.tensor_list(0)?;
    let dim_arg = ctx.int(1);
    if inputs.is_empty() {
        return Err(Error::value("torch.cat(): expected a non-empty list of Tensors"));
    }
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let device = common_device(&op, &refs)?;
    // Legacy behaviour: 1-d empty tensors are skipped whatever their shape.
    let parts: Vec<&Tensor> = inputs.iter().filter(|t| !(t.sizes() == [0])).collect();
    let dtype = result_type(&inputs.iter().map(|t| Operand::Dim(t.dtype())).collect::<Vec<_>>(), ctx.default_float());
    let Some(first) = parts.first() else {
        output(ctx, variant, &[0], dtype, device)?;
        return Ok(());
    };
    let rank = first.sizes().len() as i64;
    if rank == 0 {
        return Err(Error::runtime("zero-dimensional tensor (at position 0) cannot be concatenated"));
    }
    let dim = if dim_arg < 0 { dim_arg + rank } else { dim_arg };
    if dim < 0 || dim >= rank {
        return Err(Error::index(format!(
            "Dimension out of range (expected to be in range of [{}, {}], but got {dim_arg})",
            -rank,
            rank - 1
        )));
    }
    let d = dim as usize;
    let mut sizes = first.sizes().to_vec();
    sizes[d] = 0;
    for (k, t) in parts.iter().enumerate() {
        if t.sizes().len() as i64 != rank {
            return Err(Error::runtime(format!(
                "Tensors must have same number of dimensions: got {rank} and {}",
                t.sizes().len()
            )));
        }
        for i in 0..rank as usize {
            if i != d && t.sizes()[i] != first.sizes()[i] {
                return Err(Error::runtime(format!(
                    "Sizes of tensors must match except in dimension {d}. Expected size {} but got size {} for tensor number {k} in the list.",
                    first.sizes()[i],
                    t.sizes()[i]
                )));
            }
        }
        sizes[d] += t.sizes()[d];
    }
    let out = output(ctx, variant, &sizes, dtype, device)?;
    let mut offset = 0i64;
    for t in parts {
        let n = t.sizes()[d];
        if n > 0 && t.numel() > 0 {
            let mut slice_sizes = out.view.sizes.clone();
            slice_sizes[d] = n;
            let start = offset * out.view.strides[d] * out.dtype().size() as i64;
            let dst = View {
                // SAFETY: the slice starts inside the output (offset < sizes[d]).
                ptr: unsafe { out.view.ptr.offset(start as isize) },
                dtype: out.dtype(),
                sizes: slice_sizes,
                strides: out.view.strides.clone(),
            };
            let src = t.view.clone();
            launch_sized(&op, device, src.numel(), move || npu_kernels::copy(&dst, &src).map_err(|e| e.0))?;
        }
        offset += n;
    }
    Ok(())
}

pub fn cat(ctx: &Ctx) -> Result<()> {
    cat_impl(ctx, Variant::Functional)
}

pub fn cat_out(ctx: &Ctx) -> Result<()> {
    cat_impl(ctx, Variant::Out)
}

/// `v` with its leading dims merged into one (`[prod(lead), rest..]`), if its strides allow
/// it without a copy.
/// [`merge_leading`] of `v`, or of a contiguous copy of it (returned with the view, which
/// points into it) when its leading dims do not merge. Runs on the stream: it reads the data.
fn merged_or_copied(v: &View, keep: usize) -> std::result::Result<(View, Option<Vec<u64>>), String> {
    if let Some(m) = merge_leading(v, keep) {
        return Ok((m, None));
    }
    let mut buf = vec![0u64; (v.numel() * v.dtype.size()).div_ceil(8).max(1)];
    let dense = View::contiguous(buf.as_mut_ptr() as *mut u8, v.dtype, &v.sizes);
    npu_kernels::copy(&dense, v).map_err(|e| e.0)?;
    let m = merge_leading(&dense, keep).ok_or("a contiguous view always merges")?;
    Ok((m, Some(buf)))
}

fn merge_leading(v: &View, keep: usize) -> Option<View> {
    let r = v.sizes.len();
    if r < keep {
        return None;
    }
    let lead = r - keep;
    let n: i64 = v.sizes[..lead].iter().product();
    // the innermost leading dim's stride, and each outer one must be its inner neighbour's
    // stride times its size (size-1 dims may have any stride)
    let mut stride = if lead == 0 { 1 } else { v.strides[lead - 1] };
    let mut expect = None::<i64>;
    for d in (0..lead).rev() {
        if v.sizes[d] == 1 {
            continue;
        }
        match expect {
            Some(e) if v.strides[d] != e => return None,
            None => stride = v.strides[d],
            _ => {}
        }
        expect = Some(v.strides[d] * v.sizes[d]);
    }
    let sizes = std::iter::once(n).chain(v.sizes[lead..].iter().copied()).collect();
    let strides = std::iter::once(stride).chain(v.strides[lead..].iter().copied()).collect();
    Some(View { sizes, strides, ..v.clone() })
}

fn index_tensor(op: &str, t: &Tensor) -> Result<()> {
    if !matches!(t.dtype(), DType::I64 | DType::I32) {
        return Err(Error::runtime(format!(
            "{op}: Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int; but got {} instead",
            t.dtype().name()
        )));
    }
    Ok(())
}

/// index_select(self, dim, index) and index_select.out.
fn index_select_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (src, index) = (ctx.tensor(0)?, ctx.tensor(2)?);
    let device = common_device(&op, &[&src, &index])?;
    index_tensor(&op, &index)?;
    if index.sizes().len() > 1 {
        return Err(Error::index(format!("{op}: index_select(): Index is supposed to be a vector")));
    }
    let dim = super::softmax::wrap_dim(&op, ctx.int(1), src.sizes().len())?;
    let mut sizes = src.sizes().to_vec();
    if !sizes.is_empty() {
        sizes[dim] = index.numel() as i64;
    } else if index.numel() != 1 {
        return Err(Error::index(format!("{op}: index_select(): Index to scalar can have only 1 value, got {} value(s)", index.numel())));
    }
    let out = output(ctx, variant, &sizes, src.dtype(), device)?;
    if out.dtype() != src.dtype() {
        return Err(Error::runtime(format!("{op}: index_select(): self and result must have the same scalar type")));
    }
    if out.numel() == 0 {
        return Ok(());
    }
    if src.sizes().get(dim).copied().unwrap_or(1) == 0 {
        return Err(Error::index(format!("{op}: index_select(): self indexing axis dim should be positive")));
    }
    let (d, s, i) = (out.view.clone(), src.view, index.view);
    launch_sized(&op, device, d.numel(), move || npu_kernels::index_select(&d, &s, dim, &i).map_err(|e| e.0))
}

pub fn index_select(ctx: &Ctx) -> Result<()> {
    index_select_impl(ctx, Variant::Functional)
}

pub fn index_select_out(ctx: &Ctx) -> Result<()> {
    index_select_impl(ctx, Variant::Out)
}

/// embedding_dense_backward(grad_output, indices, num_weights, padding_idx,
/// scale_grad_by_freq): the rows of grad_output summed into the rows of the weight they came
/// from.
pub fn embedding_dense_backward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (g, indices) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &indices])?;
    index_tensor(&op, &indices)?;
    let (num, padding, by_freq) = (ctx.int(2), ctx.int(3), ctx.bool(4));
    if !g.dtype().is_floating() {
        return Err(Error::use_fallback("non-float gradient"));
    }
    let d = *g.sizes().last().unwrap_or(&1);
    let rows = |v: &View, keep: usize| v.sizes[..v.sizes.len() - keep].iter().product::<i64>();
    if rows(&g.view, 1) != rows(&indices.view, 0) {
        return Err(Error::runtime(format!("{op}: grad_output {:?} does not match indices {:?}", g.sizes(), indices.sizes())));
    }
    let out = ctx.new_output(&[num, d], None, g.dtype(), device)?;
    let (dst, gv, iv) = (out.view.clone(), g.view, indices.view);
    let skip = (padding >= 0).then_some(padding);
    launch(&op, device, move || {
        // e.g. token-type ids expanded over the batch (stride 0) do not merge: copy them
        let (src, _g) = merged_or_copied(&gv, 1)?;
        let (idx, _i) = merged_or_copied(&iv, 0)?;
        npu_kernels::fill(&dst, npu_kernels::Scalar::Int(0)).map_err(|e| e.0)?;
        npu_kernels::index_add(&dst, 0, &idx, &src, 1.0, skip, by_freq).map_err(|e| e.0)
    })
}

/// index_add(self, dim, index, source, *, alpha), index_add_ and index_add.out.
fn index_add_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (s, index, source) = (ctx.tensor(0)?, ctx.tensor(2)?, ctx.tensor(3)?);
    let device = common_device(&op, &[&s, &index, &source])?;
    index_tensor(&op, &index)?;
    if s.dtype().is_complex() || source.dtype() != s.dtype() {
        return Err(Error::use_fallback("complex or mixed dtypes"));
    }
    let alpha = ctx.scalar_f64(4)?;
    if !s.dtype().is_floating() && alpha.fract() != 0.0 {
        return Err(Error::runtime(format!("{op}: For integral input tensors, argument alpha must not be a floating point number.")));
    }
    let dim = super::softmax::wrap_dim(&op, ctx.int(1), s.sizes().len())?;
    let out = match variant {
        Variant::InPlace => {
            ctx.return_arg(0);
            s.clone()
        }
        _ => output(ctx, variant, s.sizes(), s.dtype(), device)?,
    };
    let (d, self_view, i, src) = (out.view.clone(), s.view.clone(), index.view, source.view);
    let copy_self = variant != Variant::InPlace;
    launch(&op, device, move || {
        if copy_self {
            npu_kernels::copy(&d, &self_view).map_err(|e| e.0)?;
        }
        npu_kernels::index_add(&d, dim, &i, &src, alpha, None, false).map_err(|e| e.0)
    })
}

pub fn index_add(ctx: &Ctx) -> Result<()> {
    index_add_impl(ctx, Variant::Functional)
}

pub fn index_add_(ctx: &Ctx) -> Result<()> {
    index_add_impl(ctx, Variant::InPlace)
}

pub fn index_add_out(ctx: &Ctx) -> Result<()> {
    index_add_impl(ctx, Variant::Out)
}

/// flip(self, dims) and flip.out: a copy read through a view with the flipped dims' strides
/// negated.
fn flip_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    let rank = x.sizes().len();
    let mut seen = vec![false; rank.max(1)];
    let mut src = x.view.clone();
    for d in ctx.int_list(1)? {
        let w = super::softmax::wrap_dim(&op, d, rank)?;
        if std::mem::replace(&mut seen[w], true) {
            return Err(Error::runtime(format!("{op}: dim {w} appears multiple times in the list of dims")));
        }
        if rank == 0 || src.sizes[w] <= 1 || x.numel() == 0 {
            continue;
        }
        let last = (src.sizes[w] - 1) * src.strides[w] * src.dtype.size() as i64;
        src.ptr = src.ptr.wrapping_offset(last as isize);
        src.strides[w] = -src.strides[w];
    }
    let out = output(ctx, variant, x.sizes(), x.dtype(), device)?;
    let dst = out.view.clone();
    launch(&op, device, move || npu_kernels::copy(&dst, &src).map_err(|e| e.0))
}

pub fn flip(ctx: &Ctx) -> Result<()> {
    flip_impl(ctx, Variant::Functional)
}

pub fn flip_out(ctx: &Ctx) -> Result<()> {
    flip_impl(ctx, Variant::Out)
}

/// `v` narrowed to `start..start + len` along `dim`.
fn narrow(v: &View, dim: usize, start: i64, len: i64) -> View {
    let mut w = v.clone();
    w.ptr = w.ptr.wrapping_offset((start * v.strides[dim]) as isize * v.dtype.size() as isize);
    w.sizes[dim] = len;
    w
}

/// dst = src rolled by `shift` (in 0..n) along `dim`: two slice copies.
fn roll_dim(dst: &View, src: &View, dim: usize, shift: i64) -> std::result::Result<(), String> {
    let n = src.sizes[dim];
    npu_kernels::copy(&narrow(dst, dim, shift, n - shift), &narrow(src, dim, 0, n - shift)).map_err(|e| e.0)?;
    npu_kernels::copy(&narrow(dst, dim, 0, shift), &narrow(src, dim, n - shift, shift)).map_err(|e| e.0)
}

/// roll(self, shifts, dims) and roll.out: with no dims the flattened tensor rolls.
fn roll_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    let (shifts, dims) = (ctx.int_list(1)?, ctx.int_list(2)?);
    let rank = x.sizes().len();
    if shifts.is_empty() {
        return Err(Error::runtime(format!("{op}: `shifts` required")));
    }
    if !dims.is_empty() && shifts.len() != dims.len() {
        return Err(Error::runtime(format!("{op}: shifts and dimensions must align. shifts: {}, dims:{}", shifts.len(), dims.len())));
    }
    if dims.is_empty() && shifts.len() != 1 {
        return Err(Error::runtime(format!("{op}: shifts and dimensions must align. shifts: {}, dims:0", shifts.len())));
    }
    let out = output(ctx, variant, x.sizes(), x.dtype(), device)?;
    if out.dtype() != x.dtype() {
        return Err(Error::runtime(format!("{op}: Expected out tensor to have dtype {}, but got {} instead", x.dtype().name(), out.dtype().name())));
    }
    let (dst, src, numel) = (out.view.clone(), x.view.clone(), x.numel() as i64);
    // (dim, shift in 0..n) per rolled dim; the flattened case works on 1-D views
    let plan: Vec<(usize, i64)> = if dims.is_empty() {
        vec![(0, if numel == 0 { 0 } else { shifts[0].rem_euclid(numel) })]
    } else {
        dims.iter()
            .zip(&shifts)
            .map(|(&d, &s)| {
                let d = super::softmax::wrap_dim(&op, d, rank)?;
                let n = x.sizes().get(d).copied().unwrap_or(1);
                Ok((d, if n == 0 { 0 } else { s.rem_euclid(n) }))
            })
            .collect::<Result<_>>()?
    };
    let flat = dims.is_empty();
    if flat && !dst.is_contiguous() {
        return Err(Error::use_fallback("flattened roll into a non-contiguous out="));
    }
    launch(&op, device, move || {
        if numel == 0 {
            return Ok(());
        }
        // flattened: both sides seen as 1-D (the input copied when it does not flatten)
        let (src, dst, _hold) = if flat {
            let (s, keep) = merged_or_copied(&src, 0)?;
            (s, View::contiguous(dst.ptr, dst.dtype, &[numel]), keep)
        } else {
            (src, dst, None)
        };
        let mut current = src;
        let mut _scratch: Option<Vec<u64>> = None;
        for (k, &(d, s)) in plan.iter().enumerate() {
            if k > 0 {
                // each further dim rolls what the previous step wrote: read it from a copy
                let mut buf = vec![0u64; (numel as usize * dst.dtype.size()).div_ceil(8)];
                let v = View::contiguous(buf.as_mut_ptr() as *mut u8, dst.dtype, &dst.sizes);
                npu_kernels::copy(&v, &dst).map_err(|e| e.0)?;
                _scratch = Some(buf);
                current = v;
            }
            roll_dim(&dst, &current, d, s)?;
        }
        Ok(())
    })
}

pub fn roll(ctx: &Ctx) -> Result<()> {
    roll_impl(ctx, Variant::Functional)
}

pub fn roll_out(ctx: &Ctx) -> Result<()> {
    roll_impl(ctx, Variant::Out)
}

/// masked_scatter_(self, mask, source) and the functional masked_scatter: the set positions
/// of `mask` (broadcast to self) take source's elements in order.
fn masked_scatter_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (x, mask, source) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2)?);
    let device = common_device(&op, &[&x, &mask, &source])?;
    if mask.dtype() != DType::Bool {
        return Err(Error::runtime(format!("{op}: masked_scatter_ only supports boolean masks, but got mask with dtype {}", mask.dtype().name())));
    }
    if source.dtype() != x.dtype() {
        return Err(Error::runtime(format!(
            "{op}: masked_scatter: expected self and source to have same dtypes but got {} and {}",
            x.dtype().name(),
            source.dtype().name()
        )));
    }
    if x.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    let sizes = match variant {
        // in place: the mask broadcasts to self, never the other way
        Variant::InPlace => x.sizes().to_vec(),
        _ => broadcast_shapes(x.sizes(), mask.sizes(), &op)?,
    };
    let mask_view = expand_to(&mask.view, &sizes, &op)?;
    let (dst, src_view) = match variant {
        Variant::InPlace => {
            ctx.return_arg(0);
            (x.view.clone(), source.view)
        }
        _ => {
            let out = output(ctx, variant, &sizes, x.dtype(), device)?;
            let (dst, xv) = (out.view.clone(), expand_to(&x.view, &sizes, &op)?);
            launch(&op, device, {
                let dst = dst.clone();
                move || npu_kernels::copy(&dst, &xv).map_err(|e| e.0)
            })?;
            (dst, source.view)
        }
    };
    launch(&op, device, move || npu_kernels::masked_scatter(&dst, &mask_view, &src_view).map_err(|e| e.0))
}

/// equal(self, other): same sizes and equal values (after type promotion; NaN is unequal).
/// Waits for the stream, as the result is a Python bool.
fn equal(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (a, b) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&a, &b])?;
    if a.dtype().is_complex() || b.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if a.sizes() != b.sizes() {
        ctx.return_bool(false);
        return Ok(());
    }
    rt::current_stream(device)?.synchronize()?;
    let n = a.numel();
    let mut flags = vec![0u8; n.max(1)];
    let eq = View::contiguous(flags.as_mut_ptr(), DType::Bool, a.sizes());
    let compute = super::promote::promote(a.dtype(), b.dtype());
    npu_kernels::binary(npu_kernels::BinaryOp::Eq, &eq, &a.view, &b.view, npu_kernels::Scalar::Int(1), compute)
        .map_err(|e| Error::runtime(e.0))?;
    ctx.return_bool(flags[..n].iter().all(|&f| f != 0));
    Ok(())
}

pub const MASK_OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("masked_scatter_", |c| masked_scatter_impl(c, Variant::InPlace)),
    ("masked_scatter", |c| masked_scatter_impl(c, Variant::Functional)),
    ("masked_scatter.out", |c| masked_scatter_impl(c, Variant::Out)),
    ("equal", equal),
];

/// unfold_backward(grad_in, input_sizes, dim, size, step): the gradient of `unfold` (a view):
/// window `i` of the input, `[i * step, i * step + size)` along `dim`, gets the gradient of
/// output slice `i` (whose last dim walks the window); overlapping windows add up, in order.
pub fn unfold_backward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let g = ctx.tensor(0)?;
    let device = common_device(&op, &[&g])?;
    let sizes = ctx.int_list(1)?;
    let (size, step) = (ctx.int(3), ctx.int(4));
    let rank = sizes.len();
    let dim = if rank == 0 { 0 } else { super::softmax::wrap_dim(&op, ctx.int(2), rank)? };
    if g.dtype().is_complex() {
        return Err(Error::use_fallback("complex gradient"));
    }
    let n_dim = if rank == 0 { 1 } else { sizes[dim] };
    let windows = if size > n_dim || step < 1 { -1 } else { (n_dim - size) / step + 1 };
    // a 0-dim input unfolds to just the window dim
    let mut want: Vec<i64> = sizes.clone();
    if rank > 0 {
        want[dim] = windows;
    }
    want.push(size);
    if windows < 0 || g.sizes() != want.as_slice() {
        return Err(Error::runtime(format!("{op}: grad of size {:?} does not match unfold({dim}, {size}, {step}) of {sizes:?}", g.sizes())));
    }
    let out = ctx.new_output(&sizes, None, g.dtype(), device)?;
    // a 0-dim input unfolds like a vector of one
    let gi = if rank == 0 { View { sizes: vec![1], strides: vec![1], ..out.view.clone() } } else { out.view.clone() };
    let dtype = g.dtype();
    let gv = g.view;
    launch(&op, device, move || {
        npu_kernels::fill(&gi, npu_kernels::Scalar::Int(0)).map_err(|e| e.0)?;
        for i in 0..windows {
            let dst = narrow(&gi, dim, i * step, size);
            if rank == 0 {
                npu_kernels::binary(npu_kernels::BinaryOp::Add, &dst, &dst, &gv, npu_kernels::Scalar::Int(1), dtype).map_err(|e| e.0)?;
                continue;
            }
            // output slice i, its window dim (last) moved to `dim`
            let mut src = narrow(&gv, dim, i, 1);
            src.sizes.remove(dim);
            src.strides.remove(dim);
            let (ws, wt) = (src.sizes.pop().unwrap_or(1), src.strides.pop().unwrap_or(1));
            src.sizes.insert(dim, ws);
            src.strides.insert(dim, wt);
            npu_kernels::binary(npu_kernels::BinaryOp::Add, &dst, &dst, &src, npu_kernels::Scalar::Int(1), dtype).map_err(|e| e.0)?;
        }
        Ok(())
    })
}
