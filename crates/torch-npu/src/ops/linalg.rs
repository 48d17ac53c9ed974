//! Matrix products: mm, bmm, addmm, baddbmm, addbmm, addmv, dot (and vdot for real dtypes),
//! each as functional, in-place and out= overloads. `matmul`, `linear`, `mv` and `outer` are
//! composites in PyTorch that end up here. One kernel serves them all: npu_kernels::matmul.
use npu_kernels::{DType, Scalar, View};

use super::elementwise::{output, Variant};
use super::shape::expand_to;
use super::{common_device, launch, Ctx, DeviceKind, Tensor};
use crate::status::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Mm,
    Bmm,
    Addmm,
    Baddbmm,
    Addbmm,
    Addmv,
    Dot,
}

impl Form {
    /// Whether the op takes `self` as a bias, followed by beta and alpha.
    fn has_bias(self) -> bool {
        matches!(self, Form::Addmm | Form::Baddbmm | Form::Addbmm | Form::Addmv)
    }
    /// Expected ranks of the two factors.
    fn ranks(self) -> (usize, usize) {
        match self {
            Form::Mm | Form::Addmm => (2, 2),
            Form::Bmm | Form::Baddbmm | Form::Addbmm => (3, 3),
            Form::Addmv => (2, 1),
            Form::Dot => (1, 1),
        }
    }
}

fn rank_error(op: &str, form: Form, which: usize, t: &Tensor) -> Error {
    let (name, want) = match (form, which) {
        (Form::Mm | Form::Addmm, 0) => ("self", "a matrix"),
        (Form::Mm | Form::Addmm, _) => ("mat2", "a matrix"),
        (Form::Bmm | Form::Baddbmm | Form::Addbmm, 0) => ("batch1", "a 3D tensor"),
        (Form::Bmm | Form::Baddbmm | Form::Addbmm, _) => ("batch2", "a 3D tensor"),
        (Form::Addmv, 0) => ("mat", "a matrix"),
        (Form::Addmv, _) => ("vec", "a vector"),
        (Form::Dot, _) => ("both arguments", "1D tensors"),
    };
    Error::runtime(format!("{op}: {name} must be {want}, got {}-D tensor", t.sizes().len()))
}

/// The factors as the kernel's `[batch.., m, k] @ [batch.., k, n]`, and the result's sizes.
fn kernel_shapes(op: &str, form: Form, a: &Tensor, b: &Tensor) -> Result<(View, View, Vec<i64>)> {
    let (sa, sb) = (a.sizes(), b.sizes());
    let mismatch = || {
        Error::runtime(format!(
            "{op}: mat1 and mat2 shapes cannot be multiplied ({} and {})",
            sa.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("x"),
            sb.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("x"),
        ))
    };
    let (mut va, mut vb) = (a.view.clone(), b.view.clone());
    let out = match form {
        Form::Mm | Form::Addmm => {
            if sa[1] != sb[0] {
                return Err(mismatch());
            }
            vec![sa[0], sb[1]]
        }
        Form::Bmm | Form::Baddbmm | Form::Addbmm => {
            if sb[0] != sa[0] || sb[1] != sa[2] {
                return Err(Error::runtime(format!(
                    "{op}: Expected size for first two dimensions of batch2 tensor to be: [{}, {}] but got: [{}, {}].",
                    sa[0], sa[2], sb[0], sb[1]
                )));
            }
            if form == Form::Addbmm {
                vec![sa[1], sb[2]]
            } else {
                vec![sa[0], sa[1], sb[2]]
            }
        }
        Form::Addmv => {
            if sa[1] != sb[0] {
                return Err(Error::runtime(format!(
                    "{op}: size mismatch, got input ({}), mat ({}x{}), vec ({})",
                    sa[0], sa[0], sa[1], sb[0]
                )));
            }
            vb = View { sizes: vec![sb[0], 1], strides: vec![b.view.strides[0], 1], ..vb };
            vec![sa[0]]
        }
        Form::Dot => {
            if sa[0] != sb[0] {
                return Err(Error::runtime(format!(
                    "{op}: inconsistent tensor size, expected tensor [{}] and src [{}] to have the same number of elements, but got {} and {} elements respectively",
                    sa[0], sb[0], sa[0], sb[0]
                )));
            }
            va = View { sizes: vec![1, sa[0]], strides: vec![1, a.view.strides[0]], ..va };
            vb = View { sizes: vec![sb[0], 1], strides: vec![b.view.strides[0], 1], ..vb };
            vec![]
        }
    };
    Ok((va, vb, out))
}

/// The output as the kernel's `[.., m, n]` view.
fn kernel_dst(form: Form, out: &Tensor) -> View {
    match form {
        Form::Addmv => View { sizes: vec![out.sizes()[0], 1], strides: vec![out.view.strides[0], 1], ..out.view.clone() },
        Form::Dot => View { sizes: vec![1, 1], strides: vec![1, 1], ..out.view.clone() },
        _ => out.view.clone(),
    }
}

fn scalar_is_zero(s: Scalar) -> bool {
    match s {
        Scalar::Bool(v) => !v,
        Scalar::Int(v) => v == 0,
        Scalar::Float(v) => v == 0.0,
        Scalar::Complex(re, im) => re == 0.0 && im == 0.0,
    }
}

fn overlaps(a: &View, b: &View) -> bool {
    let range = |v: &View| {
        let span: i64 = v.sizes.iter().zip(&v.strides).map(|(&n, &s)| (n - 1).max(0) * s).sum();
        (v.ptr as usize, v.ptr as usize + (span as usize + 1) * v.dtype.size())
    };
    let ((a0, a1), (b0, b1)) = (range(a), range(b));
    a.sizes.iter().all(|&n| n > 0) && b.sizes.iter().all(|&n| n > 0) && a0 < b1 && b0 < a1
}

fn product(ctx: &Ctx, form: Form, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let first = if form.has_bias() { 1 } else { 0 };
    let (a, b) = (ctx.tensor(first)?, ctx.tensor(first + 1)?);
    let bias = if form.has_bias() { Some(ctx.tensor(0)?) } else { None };
    let mut all: Vec<&Tensor> = vec![&a, &b];
    all.extend(bias.as_ref());
    for t in &all {
        if t.device == DeviceKind::Cpu {
            return Err(Error::runtime(format!(
                "Expected all tensors to be on the same device, but found at least two devices, npu:{} and cpu! (when checking arguments for {op})",
                a.index.max(b.index).max(0)
            )));
        }
    }
    let device = common_device(&op, &all)?;
    let (ra, rb) = form.ranks();
    if form == Form::Dot && (a.sizes().len() != 1 || b.sizes().len() != 1) {
        return Err(Error::runtime(format!(
            "{op}: 1D tensors expected, but got {}D and {}D tensors",
            a.sizes().len(),
            b.sizes().len()
        )));
    }
    if a.sizes().len() != ra {
        return Err(rank_error(&op, form, 0, &a));
    }
    if b.sizes().len() != rb {
        return Err(rank_error(&op, form, 1, &b));
    }
    let dtype = a.dtype();
    if dtype.is_complex() || b.dtype().is_complex() || bias.as_ref().is_some_and(|t| t.dtype().is_complex()) {
        return Err(Error::use_fallback("complex input"));
    }
    if b.dtype() != dtype {
        return Err(Error::runtime(format!(
            "{op}: expected mat1 and mat2 to have the same dtype, but got: {} != {}",
            dtype.name(),
            b.dtype().name()
        )));
    }
    if let Some(t) = &bias {
        if t.dtype() != dtype {
            return Err(Error::runtime(format!(
                "{op}: self and mat2 must have the same dtype, but got {} and {}",
                t.dtype().name(),
                dtype.name()
            )));
        }
    }
    if dtype == DType::Bool {
        return Err(Error::runtime(format!("{op}: \"addmm_impl_cpu_\" not implemented for 'Bool'")));
    }
    let (beta, alpha) = if form.has_bias() {
        (ctx.scalar(first + 2)?, ctx.scalar(first + 3)?)
    } else {
        (Scalar::Int(0), Scalar::Int(1))
    };
    // (PyTorch CPU truncates a float alpha or beta for integer tensors; the kernel does too)
    let (va, vb, sizes) = kernel_shapes(&op, form, &a, &b)?;
    let out = match variant {
        Variant::InPlace => {
            let out = ctx.tensor(0)?;
            if out.sizes() != sizes.as_slice() {
                return Err(Error::runtime(format!(
                    "{op}: The input tensor must have shape {:?} to be updated in place, got {:?}",
                    sizes,
                    out.sizes()
                )));
            }
            ctx.return_arg(0);
            out
        }
        _ => {
            let out = output(ctx, variant, &sizes, dtype, device)?;
            if out.dtype() != dtype {
                return Err(Error::runtime(format!(
                    "{op}: Expected out tensor to have dtype {}, but got {} instead",
                    dtype.name(),
                    out.dtype().name()
                )));
            }
            out
        }
    };
    if out.numel() == 0 {
        return Ok(());
    }
    let dst = kernel_dst(form, &out);
    if overlaps(&dst, &va) || overlaps(&dst, &vb) {
        return Err(Error::runtime(format!(
            "{op}: unsupported operation: some elements of the input tensor and the written-to tensor refer to a single memory location. Please clone() the tensor before performing the operation."
        )));
    }
    let beta = if scalar_is_zero(beta) { Scalar::Int(0) } else { beta };
    // The bias goes into the output first (unless it is the output, or beta drops it).
    let bias_src = match (&bias, variant) {
        (Some(t), Variant::Functional | Variant::Out) if !scalar_is_zero(beta) => Some(expand_to(&t.view, out.sizes(), &op)?),
        _ => None,
    };
    let out_view = out.view.clone();
    launch(&op, device, move || {
        if let Some(src) = &bias_src {
            npu_kernels::copy(&out_view, src).map_err(|e| e.0)?;
        }
        npu_kernels::matmul(&dst, &va, &vb, alpha, beta).map_err(|e| e.0)
    })
}

macro_rules! adapters {
    ($($name:ident => $form:ident, $variant:ident;)*) => {
        $(pub fn $name(ctx: &Ctx) -> Result<()> {
            product(ctx, Form::$form, Variant::$variant)
        })*
    };
}

adapters! {
    mm => Mm, Functional;
    mm_out => Mm, Out;
    bmm => Bmm, Functional;
    bmm_out => Bmm, Out;
    addmm => Addmm, Functional;
    addmm_ => Addmm, InPlace;
    addmm_out => Addmm, Out;
    baddbmm => Baddbmm, Functional;
    baddbmm_ => Baddbmm, InPlace;
    baddbmm_out => Baddbmm, Out;
    addbmm => Addbmm, Functional;
    addbmm_ => Addbmm, InPlace;
    addbmm_out => Addbmm, Out;
    addmv => Addmv, Functional;
    addmv_ => Addmv, InPlace;
    addmv_out => Addmv, Out;
    dot => Dot, Functional;
    dot_out => Dot, Out;
}
