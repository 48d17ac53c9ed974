//! `_scaled_dot_product_fused_attention_overrideable` and its backward: what
//! `F.scaled_dot_product_attention` runs on npu once `csrc/attention.cpp` chooses the
//! "overrideable" backend. Inputs are (batch, heads, seq, dim) or (batch, seq, dim); the mask
//! is additive (PyTorch converts boolean masks before the call) and broadcasts over
//! (batch, heads, L, S).
use npu_kernels::{AttentionDropout, AttentionParams, DType, Scalar, View};

use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

/// A 4-D (batch, heads, seq, dim) view of a 3-D or 4-D attention operand.
fn as_4d(v: &View) -> View {
    if v.sizes.len() == 4 {
        return v.clone();
    }
    let mut w = v.clone();
    w.sizes.insert(1, 1);
    w.strides.insert(1, 0);
    w
}

/// The mask as a 4-D view over (batch, heads, L, S), each dim the full size or 1.
fn mask_4d(op: &str, m: &View, attn: &[i64]) -> Result<View> {
    if m.sizes.len() > attn.len() {
        return Err(Error::runtime(format!("{op}: attn_mask of shape {:?} has more dims than the attention {attn:?}", m.sizes)));
    }
    let pad = attn.len() - m.sizes.len();
    let mut sizes = vec![1; pad];
    let mut strides = vec![0; pad];
    sizes.extend(&m.sizes);
    strides.extend(&m.strides);
    for (i, (&n, &full)) in sizes.iter().zip(attn).enumerate() {
        if n != full && n != 1 {
            return Err(Error::runtime(format!(
                "{op}: attn_mask of shape {:?} cannot be broadcast to the attention shape {attn:?} (dim {i})",
                m.sizes
            )));
        }
    }
    Ok(as_4d(&View { sizes, strides, ..m.clone() }))
}

struct Problem {
    device: i32,
    q: View,
    k: View,
    v: View,
    mask: Option<View>,
    /// (batch, heads, L, S) in the inputs' rank: the shape of the attention matrix.
    attn: Vec<i64>,
    scale: f64,
}

fn problem(op: &str, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, scale: Option<f64>) -> Result<Problem> {
    let mut all = vec![q, k, v];
    all.extend(mask);
    let device = common_device(op, &all)?;
    let rank = q.sizes().len();
    if !(rank == 3 || rank == 4) || k.sizes().len() != rank || v.sizes().len() != rank {
        return Err(Error::runtime(format!(
            "{op}: expected query, key and value of rank 3 or 4, got {:?}, {:?}, {:?}",
            q.sizes(), k.sizes(), v.sizes()
        )));
    }
    for t in [k, v] {
        if t.dtype() != q.dtype() {
            return Err(Error::runtime(format!(
                "{op}: Expected query, key, and value to have the same dtype, but got query.dtype: {} key.dtype: {} and value.dtype: {} instead.",
                q.dtype().name(), k.dtype().name(), v.dtype().name()
            )));
        }
    }
    if !q.dtype().is_floating() || q.dtype().is_complex() {
        return Err(Error::runtime(format!("{op}: \"scaled_dot_product_attention\" not implemented for '{}'", q.dtype().name())));
    }
    let mut attn = q.sizes()[..rank - 1].to_vec();
    attn.push(k.sizes()[rank - 2]);
    let mask = match mask {
        Some(m) => {
            if m.dtype() != q.dtype() {
                return Err(Error::runtime(format!(
                    "{op}: Expected attn_mask dtype to be bool or float or to match query dtype, but got attn_mask.dtype: {} and query.dtype: {} instead.",
                    m.dtype().name(), q.dtype().name()
                )));
            }
            Some(mask_4d(op, &m.view, &attn)?)
        }
        None => None,
    };
    let d = q.sizes()[rank - 1];
    Ok(Problem {
        device,
        q: as_4d(&q.view),
        k: as_4d(&k.view),
        v: as_4d(&v.view),
        mask,
        attn,
        scale: scale.unwrap_or(1.0 / (d as f64).sqrt()),
    })
}

fn opt_double(ctx: &Ctx, i: usize) -> Option<f64> {
    (!ctx.is_none(i)).then(|| ctx.double(i))
}

fn check_p(op: &str, p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::runtime(format!("{op}: dropout probability has to be between 0 and 1, but got {p}")));
    }
    Ok(())
}

fn lse_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 { DType::F64 } else { DType::F32 }
}

/// (query, key, value, attn_bias?, dropout_p, is_causal, return_debug_mask, *, scale?) ->
/// (output, logsumexp, cum_seq_q, cum_seq_k, max_q, max_k, philox_seed, philox_offset, debug_attn_mask)
fn forward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (q, k, v, bias) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2)?, ctx.opt_tensor(3)?);
    let (p, causal) = (ctx.double(4), ctx.bool(5));
    if ctx.bool(6) {
        return Err(Error::not_implemented(format!("{op}: return_debug_mask=True is not supported on npu")));
    }
    check_p(&op, p)?;
    let pb = problem(&op, &q, &k, &v, bias.as_ref(), opt_double(ctx, 7))?;
    let rank = q.sizes().len();
    let mut out_sizes = q.sizes()[..rank - 1].to_vec();
    out_sizes.push(v.sizes()[rank - 1]);
    let out = ctx.new_output(&out_sizes, None, q.dtype(), pb.device)?;
    let lse = ctx.new_output(&q.sizes()[..rank - 1], None, lse_dtype(q.dtype()), pb.device)?;
    ctx.return_undefined(); // cum_seq_q, cum_seq_k: dense batches only
    ctx.return_undefined();
    ctx.return_int(pb.attn[rank - 2]);
    ctx.return_int(pb.attn[rank - 1]);
    let q4 = &pb.q;
    let dropout = if p > 0.0 {
        let (s4, k4) = (&q4.sizes, &pb.k.sizes);
        let n = AttentionDropout::counters(s4[0] as usize, s4[1] as usize, s4[2] as usize, k4[2] as usize);
        let (seed, offset) = ctx.default_generator(pb.device, n)?;
        // Kept on the device for the backward pass, as CUDA's flash attention does.
        let st = ctx.new_output(&[], None, DType::I64, pb.device)?;
        let ot = ctx.new_output(&[], None, DType::I64, pb.device)?;
        let (sv, ov) = (st.view, ot.view);
        launch(&op, pb.device, move || {
            npu_kernels::fill(&sv, Scalar::Int(seed as i64)).map_err(|e| e.0)?;
            npu_kernels::fill(&ov, Scalar::Int(offset as i64)).map_err(|e| e.0)
        })?;
        Some(AttentionDropout { p, seed, offset })
    } else {
        ctx.return_undefined();
        ctx.return_undefined();
        None
    };
    ctx.return_undefined(); // debug_attn_mask
    let params = AttentionParams { scale: pb.scale, causal, dropout };
    let (o4, l4) = (as_4d(&out.view), lse_4d(&lse.view));
    let Problem { q, k, v, mask, .. } = pb;
    launch(&op, pb.device, move || {
        npu_kernels::attention_forward(&o4, &l4, &q, &k, &v, mask.as_ref(), params).map_err(|e| e.0)
    })
}

/// logsumexp as (batch, heads, L).
fn lse_4d(v: &View) -> View {
    if v.sizes.len() == 3 {
        return v.clone();
    }
    let mut w = v.clone();
    w.sizes.insert(1, 1);
    w.strides.insert(1, 0);
    w
}

/// (grad_out, query, key, value, attn_bias, grad_input_mask[4], out, logsumexp, cum_seq_q,
/// cum_seq_k, max_q, max_k, dropout_p, is_causal, philox_seed, philox_offset, *, scale?) ->
/// (grad_query, grad_key, grad_value, grad_attn_bias)
fn backward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let Some(go) = ctx.opt_tensor(0)? else {
        // no gradient flows into the output: none flows out (as CUDA's kernels answer)
        (0..4).for_each(|_| ctx.return_undefined());
        return Ok(());
    };
    let (q, k, v) = (ctx.tensor(1)?, ctx.tensor(2)?, ctx.tensor(3)?);
    let bias = ctx.opt_tensor(4)?;
    let want = ctx.bool_list(5)?;
    let (out, lse) = (ctx.tensor(6)?, ctx.tensor(7)?);
    let (p, causal) = (ctx.double(12), ctx.bool(13));
    check_p(&op, p)?;
    let pb = problem(&op, &q, &k, &v, bias.as_ref(), opt_double(ctx, 16))?;
    common_device(&op, &[&go, &out, &lse, &q])?;
    let rank = q.sizes().len();
    if go.sizes() != out.sizes() || go.dtype() != q.dtype() || out.dtype() != q.dtype() {
        return Err(Error::runtime(format!(
            "{op}: grad_out ({:?}, {}) must match out ({:?}, {})",
            go.sizes(), go.dtype().name(), out.sizes(), out.dtype().name()
        )));
    }
    if lse.sizes() != &q.sizes()[..rank - 1] || lse.dtype() != lse_dtype(q.dtype()) {
        return Err(Error::runtime(format!("{op}: logsumexp of shape {:?} and dtype {} does not come from this forward", lse.sizes(), lse.dtype().name())));
    }
    let dropout_state = if p > 0.0 {
        let (s, o) = (ctx.opt_tensor(14)?, ctx.opt_tensor(15)?);
        match (s, o) {
            (Some(s), Some(o)) if s.dtype() == DType::I64 && o.dtype() == DType::I64 && s.numel() == 1 && o.numel() == 1 => {
                common_device(&op, &[&s, &o, &q])?;
                Some((s.view, o.view))
            }
            _ => return Err(Error::runtime(format!("{op}: dropout_p > 0 needs the philox_seed and philox_offset of the forward"))),
        }
    } else {
        None
    };
    let gq = ctx.new_output(q.sizes(), None, q.dtype(), pb.device)?;
    let gk = ctx.new_output(k.sizes(), None, k.dtype(), pb.device)?;
    let gv = ctx.new_output(v.sizes(), None, v.dtype(), pb.device)?;
    let gmask = match (&bias, want.get(3).copied().unwrap_or(false)) {
        (Some(b), true) => {
            let g = ctx.new_output(b.sizes(), None, b.dtype(), pb.device)?;
            Some(mask_4d(&op, &g.view, &pb.attn)?)
        }
        _ => {
            ctx.return_undefined();
            None
        }
    };
    let (gq4, gk4, gv4, go4, o4, l4) = (as_4d(&gq.view), as_4d(&gk.view), as_4d(&gv.view), as_4d(&go.view), as_4d(&out.view), lse_4d(&lse.view));
    let (scale, device) = (pb.scale, pb.device);
    let Problem { q, k, v, mask, .. } = pb;
    launch(&op, device, move || {
        // The seed and offset tensors are read here, in stream order after the forward wrote them.
        let dropout = dropout_state.map(|(s, o)| unsafe {
            AttentionDropout { p, seed: *(s.ptr as *const i64) as u64, offset: *(o.ptr as *const i64) as u64 }
        });
        let params = AttentionParams { scale, causal, dropout };
        npu_kernels::attention_backward(&gq4, &gk4, &gv4, gmask.as_ref(), &go4, &q, &k, &v, mask.as_ref(), &o4, &l4, params)
            .map_err(|e| e.0)
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("_scaled_dot_product_fused_attention_overrideable", forward),
    ("_scaled_dot_product_fused_attention_overrideable_backward", backward),
];
