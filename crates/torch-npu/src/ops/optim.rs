//! `_fused_adam_`, `_fused_adamw_`, `_fused_sgd_` (and their `.tensor_lr` overloads): what
//! `torch.optim.Adam/AdamW/SGD(fused=True)` call. The whole parameter list is one launch; step
//! counts, a tensor learning rate, the GradScaler's scale and found_inf are device tensors, read
//! on the stream when the update runs (as CUDA's kernels read them).
use npu_kernels::{AdamConfig, DType, SgdConfig, View};

use super::{common_device, launch, Ctx, DeviceKind, Tensor};
use crate::status::{Error, Result};

/// The value of a one-element tensor, as f64.
pub(super) fn read_scalar(v: &View) -> std::result::Result<f64, String> {
    let mut x = 0f64;
    let dst = View::contiguous(&mut x as *mut f64 as *mut u8, DType::F64, &[]);
    let src = View { sizes: vec![], strides: vec![], ..v.clone() };
    npu_kernels::copy(&dst, &src).map_err(|e| e.0)?;
    Ok(x)
}

/// Stores `x` (converted to the tensor's dtype) into a one-element tensor.
pub(super) fn write_scalar(v: &View, mut x: f64) -> std::result::Result<(), String> {
    let src = View::contiguous(&mut x as *mut f64 as *mut u8, DType::F64, &[]);
    let dst = View { sizes: vec![], strides: vec![], ..v.clone() };
    npu_kernels::copy(&dst, &src).map_err(|e| e.0)
}

/// A scalar argument that is a float or a one-element tensor (host tensors are read now).
#[derive(Clone)]
enum Value {
    Now(f64),
    OnStream(View),
}

impl Value {
    fn get(&self) -> std::result::Result<f64, String> {
        match self {
            Value::Now(x) => Ok(*x),
            Value::OnStream(v) => read_scalar(v),
        }
    }
}

fn value_arg(ctx: &Ctx, i: usize, tensor: bool) -> Result<Value> {
    if !tensor {
        return Ok(Value::Now(ctx.double(i)));
    }
    let t = ctx.tensor(i)?;
    one_element(ctx.op, &t, "lr")?;
    Ok(match t.device {
        DeviceKind::Cpu => Value::Now(read_scalar(&t.view).map_err(Error::runtime)?),
        _ => Value::OnStream(t.view),
    })
}

fn one_element(op: &str, t: &Tensor, what: &str) -> Result<()> {
    if t.numel() != 1 {
        return Err(Error::runtime(format!("{op}: {what} must have one element, got shape {:?}", t.sizes())));
    }
    Ok(())
}

/// grad_scale and found_inf (optional, one element each, on the device).
fn scaler_args(ctx: &Ctx, i: usize) -> Result<(Option<View>, Option<View>)> {
    let mut out = [None, None];
    for (k, name) in ["grad_scale", "found_inf"].iter().enumerate() {
        if let Some(t) = ctx.opt_tensor(i + k)? {
            one_element(ctx.op, &t, name)?;
            out[k] = Some(t.view);
        }
    }
    let [a, b] = out;
    Ok((a, b))
}

/// Every parameter's tensors (position `i` of each non-empty list) must share one dense
/// layout for the fused kernels; other layouts go to PyTorch's CPU kernel.
fn check_layouts(op: &str, views: &[Vec<View>]) -> Result<()> {
    for i in 0..views[0].len() {
        let group: Vec<&View> = views.iter().filter_map(|l| l.get(i)).filter(|v| v.sizes == views[0][i].sizes).collect();
        npu_kernels::fused_layout(op, &group).map_err(|_| Error::use_fallback("parameters that are not dense"))?;
    }
    Ok(())
}

/// Lists that must have one tensor per parameter (or be empty when `optional`).
fn lists(ctx: &Ctx, idx: &[usize], optional: &[bool]) -> Result<Vec<Vec<Tensor>>> {
    let op = ctx.op;
    let all: Vec<Vec<Tensor>> = idx.iter().map(|&i| ctx.tensor_list(i)).collect::<Result<_>>()?;
    let n = all[0].len();
    for (k, l) in all.iter().enumerate() {
        if !(l.len() == n || (optional[k] && l.is_empty())) {
            return Err(Error::runtime(format!("{op}: Tensor lists must have the same number of tensors, got {n} and {}", l.len())));
        }
    }
    Ok(all)
}

fn adam(ctx: &Ctx, decoupled: bool, tensor_lr: bool) -> Result<()> {
    let op = ctx.op;
    let l = lists(ctx, &[0, 1, 2, 3, 4, 5], &[false, false, false, false, true, false])?;
    if l[0].is_empty() {
        return Ok(());
    }
    let amsgrad = ctx.bool(11);
    if amsgrad && l[4].len() != l[0].len() {
        return Err(Error::runtime(format!("{op}: amsgrad needs one max_exp_avg_sq per parameter")));
    }
    let refs: Vec<&Tensor> = l.iter().flatten().collect();
    let device = common_device(&op, &refs)?;
    let lr = value_arg(ctx, 6, tensor_lr)?;
    let cfg = AdamConfig {
        lr: 0.0,
        beta1: ctx.double(7),
        beta2: ctx.double(8),
        weight_decay: ctx.double(9),
        eps: ctx.double(10),
        amsgrad,
        maximize: ctx.bool(12),
        decoupled,
    };
    let (scale, found_inf) = scaler_args(ctx, 13)?;
    let views: Vec<Vec<View>> = l.iter().map(|list| list.iter().map(|t| t.view.clone()).collect()).collect();
    for s in &l[5] {
        one_element(&op, s, "state_steps")?;
    }
    check_layouts(&op, &views[..5])?;
    launch(&op, device, move || {
        if found_inf.as_ref().map(read_scalar).transpose()?.is_some_and(|f| f != 0.0) {
            return Ok(());
        }
        let grad_scale = scale.as_ref().map(read_scalar).transpose()?;
        let cfg = AdamConfig { lr: lr.get()?, ..cfg };
        for i in 0..views[0].len() {
            let step = read_scalar(&views[5][i])?;
            let max = if amsgrad { Some(&views[4][i]) } else { None };
            npu_kernels::fused_adam(&views[0][i], &views[1][i], &views[2][i], &views[3][i], max, step, grad_scale, &cfg)
                .map_err(|e| e.0)?;
        }
        Ok(())
    })
}

fn sgd(ctx: &Ctx, tensor_lr: bool) -> Result<()> {
    let op = ctx.op;
    let l = lists(ctx, &[0, 1, 2], &[false, false, true])?;
    if l[0].is_empty() {
        return Ok(());
    }
    let momentum = ctx.double(4);
    if momentum != 0.0 && l[2].len() != l[0].len() {
        return Err(Error::runtime(format!("{op}: momentum != 0 needs one momentum buffer per parameter")));
    }
    let refs: Vec<&Tensor> = l.iter().flatten().collect();
    let device = common_device(&op, &refs)?;
    let lr = value_arg(ctx, 5, tensor_lr)?;
    let cfg = SgdConfig {
        lr: 0.0,
        weight_decay: ctx.double(3),
        momentum,
        dampening: ctx.double(6),
        nesterov: ctx.bool(7),
        maximize: ctx.bool(8),
        first_step: ctx.bool(9),
    };
    let (scale, found_inf) = scaler_args(ctx, 10)?;
    let views: Vec<Vec<View>> = l.iter().map(|list| list.iter().map(|t| t.view.clone()).collect()).collect();
    check_layouts(&op, &views)?;
    launch(&op, device, move || {
        if found_inf.as_ref().map(read_scalar).transpose()?.is_some_and(|f| f != 0.0) {
            return Ok(());
        }
        let grad_scale = scale.as_ref().map(read_scalar).transpose()?;
        let cfg = SgdConfig { lr: lr.get()?, ..cfg };
        for i in 0..views[0].len() {
            let buf = if momentum != 0.0 { Some(&views[2][i]) } else { None };
            npu_kernels::fused_sgd(&views[0][i], &views[1][i], buf, grad_scale, &cfg).map_err(|e| e.0)?;
        }
        Ok(())
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("_fused_adam_", |c| adam(c, false, false)),
    ("_fused_adam_.tensor_lr", |c| adam(c, false, true)),
    ("_fused_adamw_", |c| adam(c, true, false)),
    ("_fused_adamw_.tensor_lr", |c| adam(c, true, true)),
    ("_fused_sgd_", |c| sgd(c, false)),
    ("_fused_sgd_.tensor_lr", |c| sgd(c, true)),
];
