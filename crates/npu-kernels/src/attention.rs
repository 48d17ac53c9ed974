//! Scaled dot-product attention, forward and backward, without the attention matrix.
//!
//! The forward pass walks each block of query rows over the keys block by block, keeping a
//! running row maximum and row sum (the "online softmax" of FlashAttention), so memory is
//! O(block) per task instead of O(L·S) per head. It returns the output and the row
//! log-sum-exp; the backward pass recomputes the probabilities from the log-sum-exp, once for
//! dK/dV (parallel over key blocks) and once for dQ (parallel over query blocks), so no task
//! ever accumulates into memory another task writes.
//!
//! Semantics are those of `torch.nn.functional.scaled_dot_product_attention`: an additive
//! float mask broadcast over (batch, heads, L, S), a top-left aligned causal mask, dropout on
//! the normalised probabilities scaled by 1/(1-p), rows whose keys are all masked give zeros.
//! Key/value may have fewer heads than the query (grouped-query attention): query head h reads
//! key/value head h / (H / Hk). f16/bf16/f32 compute in f32, f64 in f64.

use gemm::Parallelism;

use crate::cpu::with_avx2;
use crate::dense::{check_float, float_compute, Dense, Operand, P};
use crate::math::Float;
use crate::philox::PhiloxStream;
use crate::reduce::{reduce, ReduceOp};
use crate::scratch::Scratch;
use crate::lanes::{lane_max, sum_of};
use crate::view::{err, par_ranges, sequential, View};
use crate::{DType, KernelError};

const BLOCK_Q: usize = 64;
const BLOCK_K: usize = 256;
/// The forward pass's blocks: larger, so that each key and value block is packed for the
/// product fewer times (measured at (4, 8, 512, 64): 64 x 256 took 11-13 ms, 128 x 512 9-10).
const FWD_BLOCK_Q: usize = 128;
const FWD_BLOCK_K: usize = 512;

/// Dropout of the attention probabilities, drawn from a Philox stream: element
/// `((b·H + h)·L + i)·S + j` of the attention matrix is kept when its uniform is below 1 - p.
#[derive(Clone, Copy, Debug)]
pub struct AttentionDropout {
    pub p: f64,
    pub seed: u64,
    pub offset: u64,
}

impl AttentionDropout {
    /// The 32-bit counters a call consumes for `b·h·l·s` probabilities (whole blocks of 4).
    pub fn counters(b: usize, h: usize, l: usize, s: usize) -> u64 {
        ((b * h * l * s) as u64).div_ceil(4) * 4
    }
}

#[derive(Clone, Copy, Debug)]
pub struct AttentionParams {
    pub scale: f64,
    pub causal: bool,
    pub dropout: Option<AttentionDropout>,
}

/// Problem sizes, read from the views.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    h: usize,
    hk: usize,
    l: usize,
    s: usize,
    d: usize,
    dv: usize,
}

impl Dims {
    fn of(op: &str, q: &View, k: &View, v: &View) -> Result<Dims, KernelError> {
        for (name, t) in [("query", q), ("key", k), ("value", v)] {
            if t.sizes.len() != 4 {
                return Err(err(op, format!("expected 4-D {name} (batch, heads, seq, dim), got {:?}", t.sizes)));
            }
        }
        let z = |t: &View, i: usize| t.sizes[i] as usize;
        let d = Dims { b: z(q, 0), h: z(q, 1), hk: z(k, 1), l: z(q, 2), s: z(k, 2), d: z(q, 3), dv: z(v, 3) };
        if z(k, 0) != d.b || z(v, 0) != d.b || z(v, 1) != d.hk || z(v, 2) != d.s || z(k, 3) != d.d {
            return Err(err(op, format!(
                "incompatible shapes: query {:?}, key {:?}, value {:?}",
                q.sizes, k.sizes, v.sizes
            )));
        }
        if d.hk == 0 && d.h != 0 || d.hk != 0 && d.h % d.hk != 0 {
            return Err(err(op, format!(
                "the number of query heads ({}) must be a multiple of the key/value heads ({})",
                d.h, d.hk
            )));
        }
        Ok(d)
    }

    /// The output [B,H,L,Dv] and log-sum-exp [B,H,L] of these inputs.
    fn check_out_lse(&self, op: &str, out: &View, lse: &View) -> Result<(), KernelError> {
        let z = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        if out.sizes != z(&[self.b, self.h, self.l, self.dv]) || lse.sizes != z(&[self.b, self.h, self.l]) {
            return Err(err(op, format!("output shapes {:?} / {:?} do not match the inputs", out.sizes, lse.sizes)));
        }
        Ok(())
    }

    fn group(&self) -> usize {
        if self.hk == 0 { 1 } else { self.h / self.hk }
    }
}

/// The additive mask staged in the compute dtype, with broadcast (stride 0) dims.
struct Mask {
    data: Dense,
    strides: [usize; 4],
}

impl Mask {
    fn new(op: &str, m: &View, dims: &Dims, compute: DType) -> Result<Mask, KernelError> {
        let full = [dims.b, dims.h, dims.l, dims.s];
        if m.sizes.len() != 4 || m.sizes.iter().zip(full).any(|(&n, f)| n as usize != f && n != 1) {
            return Err(err(op, format!("attn_mask of shape {:?} does not broadcast to {:?}", m.sizes, full)));
        }
        let data = Dense::of(m, compute)?;
        let mut strides = [0usize; 4];
        let mut step = 1usize;
        for d in (0..4).rev() {
            let n = m.sizes[d] as usize;
            strides[d] = if n == 1 { 0 } else { step };
            step *= n;
        }
        Ok(Mask { data, strides })
    }

    /// Pointer to element (b, h, i, 0) and the stride along j.
    fn row<T>(&self, b: usize, h: usize, i: usize) -> (*const T, usize) {
        let s = self.strides;
        let off = b * s[0] + h * s[1] + i * s[2];
        (unsafe { self.data.ptr::<T>().add(off) }, s[3])
    }
}

/// Everything a task reads, in the compute dtype, contiguous.
struct Inputs<'a, T> {
    q: P<T>,
    k: P<T>,
    v: P<T>,
    mask: Option<&'a Mask>,
    dims: Dims,
    params: AttentionParams,
    _t: std::marker::PhantomData<T>,
}

unsafe impl<T> Sync for Inputs<'_, T> {}

/// dst[m×n] (row stride `dst_rs`) = (read_dst ? dst : 0) + alpha · lhs[m×k] · rhs[k×n], with
/// explicit (row, column) strides for the operands.
#[allow(clippy::too_many_arguments)]
unsafe fn mm<T: 'static + Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: usize,
    read_dst: bool,
    lhs: *const T,
    (lrs, lcs): (usize, usize),
    rhs: *const T,
    (rrs, rcs): (usize, usize),
    alpha: T,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !read_dst {
            for i in 0..m {
                std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n).fill(T::ZERO);
            }
        }
        return;
    }
    gemm::gemm(
        m, n, k,
        dst, 1, dst_rs as isize, read_dst,
        lhs, lcs as isize, lrs as isize,
        rhs, rcs as isize, rrs as isize,
        T::ONE, alpha, false, false, false, Parallelism::None,
    );
}

impl<T: Float + 'static> Inputs<'_, T> {
    /// Scores of query rows i0..i0+rq against keys j0..j0+ck of head (b, h), scaled, masked
    /// (additive mask, causal), into `s` (row stride `ck`).
    unsafe fn scores(&self, b: usize, h: usize, i0: usize, rq: usize, j0: usize, ck: usize, s: &mut [T]) {
        let Dims { h: nh, hk, l, s: ns, d, .. } = self.dims;
        let hkv = h / self.dims.group();
        let q = self.q.at(((b * nh + h) * l + i0) * d);
        let k = self.k.at(((b * hk + hkv) * ns + j0) * d);
        mm(rq, ck, d, s.as_mut_ptr(), ck, false, q, (d, 1), k, (1, d), T::c(self.params.scale));
        if let Some(mask) = self.mask {
            for r in 0..rq {
                let (mp, step) = mask.row::<T>(b, h, i0 + r);
                let row = &mut s[r * ck..(r + 1) * ck];
                for (c, x) in row.iter_mut().enumerate() {
                    *x = *x + *mp.add((j0 + c) * step);
                }
            }
        }
        if self.params.causal {
            for r in 0..rq {
                // keys j > i are hidden (top-left alignment)
                let first_hidden = (i0 + r + 1).saturating_sub(j0).min(ck);
                s[r * ck + first_hidden..(r + 1) * ck].fill(-T::INFINITY);
            }
        }
    }

    /// Key blocks that row block i0..i0+rq can see (causal: none past the last row).
    fn key_end(&self, i0: usize, rq: usize) -> usize {
        if self.params.causal { (i0 + rq).min(self.dims.s) } else { self.dims.s }
    }

    /// Multiplies row r of `p` (keys j0..j0+ck of head (b, h), row i) by the dropout mask
    /// divided by the keep probability.
    fn drop_row(&self, b: usize, h: usize, i: usize, j0: usize, row: &mut [T]) {
        let Some(dp) = self.params.dropout else { return };
        let keep = 1.0 - dp.p;
        let inv = T::c(if keep > 0.0 { 1.0 / keep } else { 0.0 });
        let stream = PhiloxStream::new(dp.seed, dp.offset);
        let Dims { h: nh, l, s, .. } = self.dims;
        let base = (((b * nh + h) * l + i) * s + j0) as u64;
        let mut block = (u64::MAX, [0u32; 4]);
        for (c, x) in row.iter_mut().enumerate() {
            let e = base + c as u64;
            if block.0 != e / 4 {
                block = (e / 4, stream.block(e / 4));
            }
            let u = (block.1[(e % 4) as usize] >> 8) as f64 * (1.0 / (1u64 << 24) as f64);
            *x = if u < keep { *x * inv } else { T::ZERO };
        }
    }
}

/// One step of the online softmax for a row of scores: with `m` the row's maximum so far,
/// returns the new maximum and the sum of `exp(x - new maximum)`, which replace the scores
/// (zeros, and a maximum of -inf, when every score so far is -inf).
#[inline(always)]
fn online_row_body<T: Float>(row: &mut [T], m: T) -> (T, T) {
    let bmax = lane_max(row);
    let new_m = if bmax > m { bmax } else { m };
    if new_m == -T::INFINITY {
        row.fill(T::ZERO);
        return (new_m, T::ZERO);
    }
    // exp and sum in one pass, in 16 lanes (one AVX-512 vector, two AVX2 ones)
    let mut acc = [T::ZERO; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c.iter_mut()) {
            *x = (*x - new_m).exp_softmax();
            *a = *a + *x;
        }
    }
    let mut tail = T::ZERO;
    for x in chunks.into_remainder() {
        *x = (*x - new_m).exp_softmax();
        tail = tail + *x;
    }
    (new_m, sum_of(&acc) + tail)
}

with_avx2! {
    fn online_row<T: Float>(row: &mut [T], m: T) -> (T, T) => online_row_body
}

#[inline(always)]
fn exp_shifted_body<T: Float>(row: &mut [T], m: T) {
    row.iter_mut().for_each(|x| *x = (*x - m).exp_softmax());
}

with_avx2! {
    /// x ← exp(x - m) over a row of scores.
    fn exp_shifted<T: Float>(row: &mut [T], m: T) => exp_shifted_body
}

/// Splits the (batch, head, block) tasks of a pass across threads.
fn tasks(count: usize, f: impl Fn(usize) + Sync) {
    par_ranges(count, 1, |r| r.for_each(&f));
}

/// Forward: `out` [B,H,L,Dv] and `lse` [B,H,L] (f32, or f64 for f64 inputs) from `q`
/// [B,H,L,D], `k` [B,Hk,S,D], `v` [B,Hk,S,Dv] and an optional additive `mask` whose 4 dims
/// each equal the full size or 1.
pub fn attention_forward(
    out: &View,
    lse: &View,
    q: &View,
    k: &View,
    v: &View,
    mask: Option<&View>,
    params: AttentionParams,
) -> Result<(), KernelError> {
    let op = "scaled_dot_product_attention";
    let mut all = vec![out, lse, q, k, v];
    all.extend(mask);
    check_float(op, &all)?;
    let dims = Dims::of(op, q, k, v)?;
    dims.check_out_lse(op, out, lse)?;
    out.check_writable(op)?;
    lse.check_writable(op)?;
    let compute = float_compute(&[q, k, v]);
    if lse.dtype != compute {
        return Err(err(op, format!("logsumexp must be {}, got {}", compute.name(), lse.dtype.name())));
    }
    match compute {
        DType::F64 => forward_typed::<f64>(out, lse, q, k, v, mask, params, dims, compute),
        _ => forward_typed::<f32>(out, lse, q, k, v, mask, params, dims, compute),
    }
}

#[allow(clippy::too_many_arguments)]
fn forward_typed<T: Float + 'static>(
    out: &View,
    lse: &View,
    q: &View,
    k: &View,
    v: &View,
    mask: Option<&View>,
    params: AttentionParams,
    dims: Dims,
    compute: DType,
) -> Result<(), KernelError> {
    let op = "scaled_dot_product_attention";
    let (qs, ks, vs) = (Operand::of(q, compute)?, Operand::of(k, compute)?, Operand::of(v, compute)?);
    let mask = mask.map(|m| Mask::new(op, m, &dims, compute)).transpose()?;
    let (o, ls) = (Operand::output(out, compute), Operand::output(lse, compute));
    let inp = Inputs::<T> {
        q: P(qs.ptr()), k: P(ks.ptr()), v: P(vs.ptr()), mask: mask.as_ref(), dims, params,
        _t: std::marker::PhantomData,
    };
    let (po, pl) = (P(o.ptr::<T>()), P(ls.ptr::<T>()));
    let Dims { b, h, hk, l, s: ns, dv, .. } = dims;
    let qblocks = l.div_ceil(FWD_BLOCK_Q);
    tasks(b * h * qblocks, |t| unsafe {
        let (bh, qb) = (t / qblocks, t % qblocks);
        let (bi, hi) = (bh / h, bh % h);
        let hkv = hi / dims.group();
        let i0 = qb * FWD_BLOCK_Q;
        let rq = FWD_BLOCK_Q.min(l - i0);
        let orow = po.at((bh * l + i0) * dv);
        let acc = std::slice::from_raw_parts_mut(orow, rq * dv);
        acc.fill(T::ZERO);
        let mut m = vec![-T::INFINITY; rq];
        let mut sum = vec![T::ZERO; rq];
        // (scores are written by the product before they are read)
        let mut scratch = Scratch::take::<T>(rq * FWD_BLOCK_K);
        let s = scratch.slice::<T>(rq * FWD_BLOCK_K);
        let end = inp.key_end(i0, rq);
        for j0 in (0..end).step_by(FWD_BLOCK_K) {
            let ck = FWD_BLOCK_K.min(end - j0);
            let s = &mut s[..rq * ck];
            inp.scores(bi, hi, i0, rq, j0, ck, s);
            for r in 0..rq {
                let row = &mut s[r * ck..(r + 1) * ck];
                let (new_m, row_sum) = online_row(row, m[r]);
                if new_m == -T::INFINITY {
                    continue;
                }
                let rescale = (m[r] - new_m).vexp();
                sum[r] = sum[r] * rescale + row_sum;
                m[r] = new_m;
                if rescale != T::ONE {
                    acc[r * dv..(r + 1) * dv].iter_mut().for_each(|a| *a = *a * rescale);
                }
                inp.drop_row(bi, hi, i0 + r, j0, row);
            }
            let vp = inp.v.at(((bi * hk + hkv) * ns + j0) * dv);
            mm(rq, dv, ck, orow, dv, true, s.as_ptr(), (ck, 1), vp, (dv, 1), T::ONE);
        }
        for r in 0..rq {
            let row = &mut acc[r * dv..(r + 1) * dv];
            let lse_r = pl.at(bh * l + i0 + r);
            if sum[r] > T::ZERO {
                let inv = T::ONE / sum[r];
                row.iter_mut().for_each(|a| *a = *a * inv);
                *lse_r = m[r] + sum[r].ln();
            } else {
                // every key masked: zeros, as PyTorch's safe softmax gives
                row.fill(T::ZERO);
                *lse_r = T::INFINITY;
            }
        }
    });
    o.finish(out)?;
    ls.finish(lse)
}

/// Gradients of [`attention_forward`]: `gq`, `gk`, `gv` (shapes of q, k, v) and, when given,
/// `gmask`, the additive mask's gradient: 4 dims, each the full size or 1 (summed over).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    gq: &View,
    gk: &View,
    gv: &View,
    gmask: Option<&View>,
    gout: &View,
    q: &View,
    k: &View,
    v: &View,
    mask: Option<&View>,
    out: &View,
    lse: &View,
    params: AttentionParams,
) -> Result<(), KernelError> {
    let op = "scaled_dot_product_attention_backward";
    let mut all = vec![gq, gk, gv, gout, q, k, v, out, lse];
    all.extend(mask);
    all.extend(gmask);
    check_float(op, &all)?;
    let dims = Dims::of(op, q, k, v)?;
    for (g, x) in [(gq, q), (gk, k), (gv, v), (gout, out)] {
        if g.sizes != x.sizes {
            return Err(err(op, format!("gradient shape {:?} does not match {:?}", g.sizes, x.sizes)));
        }
    }
    dims.check_out_lse(op, out, lse)?;
    if let Some(g) = gmask {
        let full = [dims.b, dims.h, dims.l, dims.s];
        if g.sizes.len() != 4 || g.sizes.iter().zip(full).any(|(&n, f)| n as usize != f && n != 1) {
            return Err(err(op, format!("attn_mask gradient of shape {:?} does not broadcast to {full:?}", g.sizes)));
        }
        g.check_writable(op)?;
    }
    for g in [gq, gk, gv] {
        g.check_writable(op)?;
    }
    let compute = float_compute(&[q, k, v]);
    match compute {
        DType::F64 => backward_typed::<f64>(gq, gk, gv, gmask, gout, q, k, v, mask, out, lse, params, dims, compute),
        _ => backward_typed::<f32>(gq, gk, gv, gmask, gout, q, k, v, mask, out, lse, params, dims, compute),
    }
}

/// Recomputes, for one block, P (probabilities, dropout not applied) and dS = P ∘ (dP - Δ),
/// with dP = (dO · Vᵀ) ∘ dropout. Leaves P ∘ dropout in `p` and dS in `ds`.
#[allow(clippy::too_many_arguments)]
unsafe fn block_grads<T: Float + 'static>(
    inp: &Inputs<T>,
    go: P<T>,
    lse: P<T>,
    delta: &[T],
    (bi, hi): (usize, usize),
    (i0, rq): (usize, usize),
    (j0, ck): (usize, usize),
    p: &mut [T],
    ds: &mut [T],
) {
    let Dims { h, hk, l, s: ns, dv, .. } = inp.dims;
    let bh = bi * h + hi;
    let hkv = hi / inp.dims.group();
    inp.scores(bi, hi, i0, rq, j0, ck, p);
    for r in 0..rq {
        let m = *lse.at(bh * l + i0 + r);
        let row = &mut p[r * ck..(r + 1) * ck];
        if m == T::INFINITY {
            // the mark of a row with every key masked: no probability anywhere
            row.fill(T::ZERO);
        } else {
            exp_shifted(row, m);
        }
    }
    // dP = dO · Vᵀ
    let gop = go.at((bh * l + i0) * dv);
    let vp = inp.v.at(((bi * hk + hkv) * ns + j0) * dv);
    mm(rq, ck, dv, ds.as_mut_ptr(), ck, false, gop, (dv, 1), vp, (1, dv), T::ONE);
    for r in 0..rq {
        let (prow, drow) = (&mut p[r * ck..(r + 1) * ck], &mut ds[r * ck..(r + 1) * ck]);
        inp.drop_row(bi, hi, i0 + r, j0, drow);
        for (x, g) in prow.iter().zip(drow.iter_mut()) {
            *g = *x * (*g - delta[r]);
        }
        inp.drop_row(bi, hi, i0 + r, j0, prow);
    }
}

#[allow(clippy::too_many_arguments)]
fn backward_typed<T: Float + 'static>(
    gq: &View,
    gk: &View,
    gv: &View,
    gmask: Option<&View>,
    gout: &View,
    q: &View,
    k: &View,
    v: &View,
    mask: Option<&View>,
    out: &View,
    lse: &View,
    params: AttentionParams,
    dims: Dims,
    compute: DType,
) -> Result<(), KernelError> {
    let op = "scaled_dot_product_attention_backward";
    let (qs, ks, vs) = (Operand::of(q, compute)?, Operand::of(k, compute)?, Operand::of(v, compute)?);
    let (os, gos, ls) = (Operand::of(out, compute)?, Operand::of(gout, compute)?, Operand::of(lse, compute)?);
    let mask = mask.map(|m| Mask::new(op, m, &dims, compute)).transpose()?;
    let Dims { b, h, hk, l, s: ns, d, dv } = dims;
    let (dq, dk, dv_) = (Operand::output(gq, compute), Operand::output(gk, compute), Operand::output(gv, compute));
    // The mask gradient in full [B,H,L,S]; summed over the mask's broadcast dims at the end.
    let full = [b, h, l, ns].map(|x| x as i64);
    let dm = gmask.map(|g| if g.sizes == full { Operand::output(g, compute) } else { Operand::Staged(Dense::zeroed(compute, &full)) });
    let inp = Inputs::<T> {
        q: P(qs.ptr()), k: P(ks.ptr()), v: P(vs.ptr()), mask: mask.as_ref(), dims, params,
        _t: std::marker::PhantomData,
    };
    let scale = T::c(params.scale);
    let (go, lp) = (P(gos.ptr::<T>()), P(ls.ptr::<T>()));
    // Δ_i = Σ_d dO_id · O_id (equals Σ_j P_ij dP_ij, dropout included)
    let mut delta = vec![T::ZERO; b * h * l];
    {
        let (po, pd) = (P(os.ptr::<T>()), P(delta.as_mut_ptr()));
        par_ranges(b * h * l, 1024 / dv.max(1) + 1, |rows| unsafe {
            for r in rows {
                let (o, g) = (po.slice(r * dv, dv), go.slice(r * dv, dv));
                *pd.at(r) = o.iter().zip(g.iter()).fold(T::ZERO, |a, (&x, &y)| a + x * y);
            }
        });
    }
    let delta = &delta;
    let (pdk, pdv, pdq) = (P(dk.ptr::<T>()), P(dv_.ptr::<T>()), P(dq.ptr::<T>()));
    let pdm = dm.as_ref().map(|m| P(m.ptr::<T>()));
    let group = dims.group();
    if sequential() || b * hk >= 2 * rayon::current_num_threads() {
        // One thread, or enough heads to share out: one task per (batch, kv head) owns its dK,
        // dV and dQ, so each block's probabilities are computed once. The two passes below
        // (for few heads) recompute them for dQ. Both sum every gradient in the same order, so
        // the results are the same bits.
        tasks(b * hk, |t| unsafe {
            let (bi, hkv) = (t / hk, t % hk);
            let (kdst, vdst) = (pdk.at(t * ns * d), pdv.at(t * ns * dv));
            std::slice::from_raw_parts_mut(kdst, ns * d).fill(T::ZERO);
            std::slice::from_raw_parts_mut(vdst, ns * dv).fill(T::ZERO);
            // (block_grads writes every element of both before reading it)
            let (mut pb, mut db) = (Scratch::take::<T>(BLOCK_Q * BLOCK_K), Scratch::take::<T>(BLOCK_Q * BLOCK_K));
            let (p, ds) = (pb.slice::<T>(BLOCK_Q * BLOCK_K), db.slice::<T>(BLOCK_Q * BLOCK_K));
            for hi in hkv * group..(hkv + 1) * group {
                let bh = bi * h + hi;
                for i0 in (0..l).step_by(BLOCK_Q) {
                    let rq = BLOCK_Q.min(l - i0);
                    let qdst = pdq.at((bh * l + i0) * d);
                    std::slice::from_raw_parts_mut(qdst, rq * d).fill(T::ZERO);
                    let end = inp.key_end(i0, rq);
                    for j0 in (0..end).step_by(BLOCK_K) {
                        // whole key blocks for dK and dV, as the first pass below
                        let ck = BLOCK_K.min(ns - j0);
                        let (p, ds) = (&mut p[..rq * ck], &mut ds[..rq * ck]);
                        block_grads(&inp, go, lp, &delta[bh * l + i0..], (bi, hi), (i0, rq), (j0, ck), p, ds);
                        if let Some(pm) = pdm {
                            for r in 0..rq {
                                pm.slice((bh * l + i0 + r) * ns + j0, ck).copy_from_slice(&ds[r * ck..(r + 1) * ck]);
                            }
                        }
                        let gop = go.at((bh * l + i0) * dv);
                        mm(ck, dv, rq, vdst.add(j0 * dv), dv, true, p.as_ptr(), (1, ck), gop, (dv, 1), T::ONE);
                        let qp = inp.q.at((bh * l + i0) * d);
                        mm(ck, d, rq, kdst.add(j0 * d), d, true, ds.as_ptr(), (1, ck), qp, (d, 1), scale);
                        // dQ over the keys these rows see, as the second pass below
                        let kp = inp.k.at((t * ns + j0) * d);
                        mm(rq, d, BLOCK_K.min(end - j0), qdst, d, true, ds.as_ptr(), (ck, 1), kp, (d, 1), scale);
                    }
                    if let Some(pm) = pdm {
                        for r in 0..rq {
                            pm.slice((bh * l + i0 + r) * ns, ns)[end..].fill(T::ZERO);
                        }
                    }
                }
            }
        });
    } else {
        // dK and dV: one task per (batch, kv head, key block), over every query row that sees it.
        let kblocks = ns.div_ceil(BLOCK_K);
        tasks(b * hk * kblocks, |t| unsafe {
            let (bk, kb) = (t / kblocks, t % kblocks);
            let (bi, hkv) = (bk / hk, bk % hk);
            let j0 = kb * BLOCK_K;
            let ck = BLOCK_K.min(ns - j0);
            let (kdst, vdst) = (pdk.at((bk * ns + j0) * d), pdv.at((bk * ns + j0) * dv));
            std::slice::from_raw_parts_mut(kdst, ck * d).fill(T::ZERO);
            std::slice::from_raw_parts_mut(vdst, ck * dv).fill(T::ZERO);
            let (mut pb, mut db) = (Scratch::take::<T>(BLOCK_Q * ck), Scratch::take::<T>(BLOCK_Q * ck));
            let (p, ds) = (pb.slice::<T>(BLOCK_Q * ck), db.slice::<T>(BLOCK_Q * ck));
            for hi in hkv * group..(hkv + 1) * group {
                let bh = bi * h + hi;
                // causal: rows before j0 see none of this block
                let first = if params.causal { j0 / BLOCK_Q * BLOCK_Q } else { 0 };
                for i0 in (first..l).step_by(BLOCK_Q) {
                    let rq = BLOCK_Q.min(l - i0);
                    let (p, ds) = (&mut p[..rq * ck], &mut ds[..rq * ck]);
                    block_grads(&inp, go, lp, &delta[bh * l + i0..], (bi, hi), (i0, rq), (j0, ck), p, ds);
                    if let Some(pm) = pdm {
                        for r in 0..rq {
                            let dst = pm.slice((bh * l + i0 + r) * ns + j0, ck);
                            dst.copy_from_slice(&ds[r * ck..(r + 1) * ck]);
                        }
                    }
                    // dV += (P∘Z)ᵀ · dO ; dK += scale · dSᵀ · Q
                    let gop = go.at((bh * l + i0) * dv);
                    mm(ck, dv, rq, vdst, dv, true, p.as_ptr(), (1, ck), gop, (dv, 1), T::ONE);
                    let qp = inp.q.at((bh * l + i0) * d);
                    mm(ck, d, rq, kdst, d, true, ds.as_ptr(), (1, ck), qp, (d, 1), scale);
                }
                if let Some(pm) = pdm {
                    // rows a causal mask hides from this block entirely: zero gradient
                    for i in 0..first.min(l) {
                        pm.slice((bh * l + i) * ns + j0, ck).fill(T::ZERO);
                    }
                }
            }
        });
        // dQ: one task per (batch, head, query block), over the keys it sees.
        let qblocks = l.div_ceil(BLOCK_Q);
        tasks(b * h * qblocks, |t| unsafe {
            let (bh, qb) = (t / qblocks, t % qblocks);
            let (bi, hi) = (bh / h, bh % h);
            let hkv = hi / group;
            let i0 = qb * BLOCK_Q;
            let rq = BLOCK_Q.min(l - i0);
            let qdst = pdq.at((bh * l + i0) * d);
            std::slice::from_raw_parts_mut(qdst, rq * d).fill(T::ZERO);
            let (mut pb, mut db) = (Scratch::take::<T>(rq * BLOCK_K), Scratch::take::<T>(rq * BLOCK_K));
            let (p, ds) = (pb.slice::<T>(rq * BLOCK_K), db.slice::<T>(rq * BLOCK_K));
            let end = inp.key_end(i0, rq);
            for j0 in (0..end).step_by(BLOCK_K) {
                let ck = BLOCK_K.min(end - j0);
                let (p, ds) = (&mut p[..rq * ck], &mut ds[..rq * ck]);
                block_grads(&inp, go, lp, &delta[bh * l + i0..], (bi, hi), (i0, rq), (j0, ck), p, ds);
                let kp = inp.k.at(((bi * hk + hkv) * ns + j0) * d);
                mm(rq, d, ck, qdst, d, true, ds.as_ptr(), (ck, 1), kp, (d, 1), scale);
            }
            if let Some(pm) = pdm {
                // keys past a causal block end were never visited by the dK pass for these rows
                for r in 0..rq {
                    let row = pm.slice((bh * l + i0 + r) * ns, ns);
                    row[end..].fill(T::ZERO);
                }
            }
        });
    }
    dq.finish(gq)?;
    dk.finish(gk)?;
    dv_.finish(gv)?;
    match (dm, gmask) {
        (Some(Operand::Staged(full_grad)), Some(g)) if g.sizes != full => {
            let dims: Vec<usize> = (0..4).filter(|&i| g.sizes[i] != full[i]).collect();
            reduce(ReduceOp::Sum, g, &full_grad.view, &dims, compute)?;
        }
        (Some(m), Some(g)) => m.finish(g)?,
        _ => {}
    }
    Ok(())
}

/// The reference the tests check against: the attention matrix in full, in f64.
#[doc(hidden)]
pub fn attention_reference(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    mask: Option<&[f64]>,
    (b, h, hk, l, s, d, dv): (usize, usize, usize, usize, usize, usize, usize),
    scale: f64,
    causal: bool,
) -> Vec<f64> {
    let mut out = vec![0.0; b * h * l * dv];
    for bi in 0..b {
        for hi in 0..h {
            let hkv = hi / (h / hk);
            for i in 0..l {
                let mut sc: Vec<f64> = (0..s)
                    .map(|j| {
                        let dotp: f64 = (0..d).map(|x| q[((bi * h + hi) * l + i) * d + x] * k[((bi * hk + hkv) * s + j) * d + x]).sum();
                        let mut x = dotp * scale + mask.map_or(0.0, |m| m[((bi * h + hi) * l + i) * s + j]);
                        if causal && j > i {
                            x = f64::NEG_INFINITY;
                        }
                        x
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if mx == f64::NEG_INFINITY {
                    continue;
                }
                sc.iter_mut().for_each(|x| *x = (*x - mx).exp());
                let tot: f64 = sc.iter().sum();
                for c in 0..dv {
                    out[((bi * h + hi) * l + i) * dv + c] = (0..s).map(|j| sc[j] / tot * v[((bi * hk + hkv) * s + j) * dv + c]).sum();
                }
            }
        }
    }
    out
}
