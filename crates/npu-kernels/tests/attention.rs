//! Blocked attention (forward and backward) against the full attention matrix in f64.

mod common;

use common::*;
use npu_kernels::{attention_backward, attention_forward, attention_reference, with_sequential, AttentionDropout, AttentionParams, DType, View};

#[derive(Clone, Copy)]
struct Case {
    b: usize,
    h: usize,
    hk: usize,
    l: usize,
    s: usize,
    d: usize,
    dv: usize,
}

fn filled(dt: DType, sizes: &[i64], rng: &mut Rng, amp: f64) -> (Buf, View, Vec<f64>) {
    let (mut b, v) = Buf::contiguous(dt, sizes);
    for i in 0..b.len {
        let x = ((rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amp;
        b.set(i as i64, &write(dt, V::F(x)));
    }
    let vals = b.f64s();
    (b, v, vals)
}

fn dims(c: Case) -> (usize, usize, usize, usize, usize, usize, usize) {
    (c.b, c.h, c.hk, c.l, c.s, c.d, c.dv)
}

/// The mask in full [B,H,L,S] from one broadcast over `msizes`.
fn expand_mask(m: &[f64], msizes: &[i64; 4], c: Case) -> Vec<f64> {
    let full = [c.b, c.h, c.l, c.s];
    let mut out = Vec::with_capacity(full.iter().product());
    for idx in indices(&full.map(|x| x as i64)) {
        let src: Vec<i64> = idx.iter().zip(msizes).map(|(&i, &n)| if n == 1 { 0 } else { i }).collect();
        out.push(m[offset_of(&src, &contiguous_strides(msizes)) as usize]);
    }
    out
}

/// Naive gradients of sum(out * gout) in f64: (dq, dk, dv, dmask).
#[allow(clippy::type_complexity)]
fn reference_grads(q: &[f64], k: &[f64], v: &[f64], mask: &[f64], go: &[f64], c: Case, scale: f64, causal: bool) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let Case { b, h, hk, l, s, d, dv } = c;
    let (mut dq, mut dk, mut dvv, mut dm) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()], vec![0.0; b * h * l * s]);
    for bi in 0..b {
        for hi in 0..h {
            let hkv = hi / (h / hk);
            let (qo, ko, vo) = ((bi * h + hi) * l, (bi * hk + hkv) * s, (bi * h + hi) * l);
            for i in 0..l {
                let mut p: Vec<f64> = (0..s)
                    .map(|j| {
                        let x: f64 = (0..d).map(|x| q[(qo + i) * d + x] * k[(ko + j) * d + x]).sum::<f64>() * scale + mask[((bi * h + hi) * l + i) * s + j];
                        if causal && j > i { f64::NEG_INFINITY } else { x }
                    })
                    .collect();
                let mx = p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if mx == f64::NEG_INFINITY {
                    continue;
                }
                p.iter_mut().for_each(|x| *x = (*x - mx).exp());
                let t: f64 = p.iter().sum();
                p.iter_mut().for_each(|x| *x /= t);
                let dp: Vec<f64> = (0..s).map(|j| (0..dv).map(|x| go[(vo + i) * dv + x] * v[(ko + j) * dv + x]).sum()).collect();
                let delta: f64 = (0..s).map(|j| p[j] * dp[j]).sum();
                for j in 0..s {
                    let ds = p[j] * (dp[j] - delta);
                    dm[((bi * h + hi) * l + i) * s + j] = ds;
                    for x in 0..dv {
                        dvv[(ko + j) * dv + x] += p[j] * go[(vo + i) * dv + x];
                    }
                    for x in 0..d {
                        dq[(qo + i) * d + x] += scale * ds * k[(ko + j) * d + x];
                        dk[(ko + j) * d + x] += scale * ds * q[(qo + i) * d + x];
                    }
                }
            }
        }
    }
    (dq, dk, dvv, dm)
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}[{i}]: got {g}, want {w}");
    }
}

fn run(dt: DType, c: Case, msizes: Option<[i64; 4]>, causal: bool, seed: u64) {
    let tol = match dt {
        DType::F64 => 1e-10,
        DType::F32 => 2e-5,
        _ => 2e-2,
    };
    let mut rng = Rng(seed);
    let sz = |a: usize, b_: usize, c_: usize, d_: usize| [a as i64, b_ as i64, c_ as i64, d_ as i64];
    let (_qb, qv, q) = filled(dt, &sz(c.b, c.h, c.l, c.d), &mut rng, 1.5);
    let (_kb, kv, k) = filled(dt, &sz(c.b, c.hk, c.s, c.d), &mut rng, 1.5);
    let (_vb, vv, v) = filled(dt, &sz(c.b, c.hk, c.s, c.dv), &mut rng, 1.0);
    let mut mask_buf = msizes.map(|ms| {
        let (mut b, view, mut vals) = filled(dt, &ms, &mut rng, 2.0);
        // hide some keys outright, including every key of row 1 when the mask has rows
        for (i, x) in vals.iter_mut().enumerate() {
            let row = i as i64 / ms[3] % ms[2];
            if i % 7 == 3 || (ms[2] > 1 && row == 1) {
                *x = f64::NEG_INFINITY;
                b.set(i as i64, &write(dt, V::F(*x)));
            }
        }
        (b, view, vals)
    });
    let full_mask = match (&mask_buf, msizes) {
        (Some((_, _, vals)), Some(ms)) => expand_mask(vals, &ms, c),
        _ => vec![0.0; c.b * c.h * c.l * c.s],
    };
    let scale = 1.0 / (c.d.max(1) as f64).sqrt();
    let params = AttentionParams { scale, causal, dropout: None };
    let ldt = if dt == DType::F64 { DType::F64 } else { DType::F32 };
    let (ob, ov) = Buf::contiguous(dt, &sz(c.b, c.h, c.l, c.dv));
    let (_lb, lv) = Buf::contiguous(ldt, &[c.b as i64, c.h as i64, c.l as i64]);
    let mview = mask_buf.as_mut().map(|(_, v, _)| v.clone());
    attention_forward(&ov, &lv, &qv, &kv, &vv, mview.as_ref(), params).unwrap();
    let want = attention_reference(&q, &k, &v, Some(&full_mask), dims(c), scale, causal);
    close("out", &ob.f64s(), &want, tol);

    let (_gb, gv, go) = filled(dt, &sz(c.b, c.h, c.l, c.dv), &mut rng, 1.0);
    let (dqb, dqv) = Buf::contiguous(dt, &qv.sizes);
    let (dkb, dkv) = Buf::contiguous(dt, &kv.sizes);
    let (dvb, dvv) = Buf::contiguous(dt, &vv.sizes);
    let (dmb, dmv) = Buf::contiguous(dt, &sz(c.b, c.h, c.l, c.s));
    attention_backward(&dqv, &dkv, &dvv, Some(&dmv), &gv, &qv, &kv, &vv, mview.as_ref(), &ov, &lv, params).unwrap();
    let (rq, rk, rv, rm) = reference_grads(&q, &k, &v, &full_mask, &go, c, scale, causal);
    close("dq", &dqb.f64s(), &rq, tol * 4.0);
    close("dk", &dkb.f64s(), &rk, tol * 4.0);
    close("dv", &dvb.f64s(), &rv, tol * 4.0);
    close("dmask", &dmb.f64s(), &rm, tol * 4.0);
    if let Some(ms) = msizes {
        // the gradient of a broadcast mask is summed over its broadcast dims
        let (gmb, gmv) = Buf::contiguous(dt, &ms);
        attention_backward(&dqv, &dkv, &dvv, Some(&gmv), &gv, &qv, &kv, &vv, mview.as_ref(), &ov, &lv, params).unwrap();
        let mut want = vec![0.0; gmb.len];
        for (idx, g) in indices(&sz(c.b, c.h, c.l, c.s)).iter().zip(&rm) {
            let src: Vec<i64> = idx.iter().zip(&ms).map(|(&i, &n)| if n == 1 { 0 } else { i }).collect();
            want[offset_of(&src, &contiguous_strides(&ms)) as usize] += g;
        }
        close("dmask summed", &gmb.f64s(), &want, tol * 8.0);
    }
}

const SMALL: Case = Case { b: 2, h: 2, hk: 2, l: 5, s: 7, d: 4, dv: 3 };
// more query rows and keys than one block of each, uneven
const BLOCKS: Case = Case { b: 1, h: 2, hk: 1, l: 150, s: 200, d: 16, dv: 8 };
// more keys than one block of the forward pass (512), so its running maximum is rescaled
const LONG: Case = Case { b: 1, h: 2, hk: 1, l: 140, s: 600, d: 8, dv: 4 };

#[test]
fn forward_and_backward_match_the_full_matrix() {
    for dt in [DType::F64, DType::F32, DType::F16, DType::BF16] {
        run(dt, SMALL, None, false, 1);
        run(dt, SMALL, None, true, 2);
        run(dt, SMALL, Some([2, 1, 5, 7]), false, 3);
    }
    for dt in [DType::F64, DType::F32] {
        run(dt, BLOCKS, None, false, 4);
        run(dt, BLOCKS, None, true, 5);
        run(dt, BLOCKS, Some([1, 1, 150, 200]), false, 6);
        run(dt, BLOCKS, Some([1, 2, 1, 200]), true, 7);
        run(dt, LONG, Some([1, 1, 140, 600]), false, 10);
    }
}

#[test]
fn more_queries_than_keys_and_grouped_heads() {
    run(DType::F64, Case { b: 1, h: 4, hk: 2, l: 9, s: 3, d: 2, dv: 5 }, None, true, 8);
    run(DType::F64, Case { b: 3, h: 6, hk: 3, l: 70, s: 130, d: 8, dv: 8 }, Some([3, 1, 70, 1]), false, 9);
}

/// The one-pass backward (one thread, or many heads) and the two-pass one (few heads on
/// several threads) give the same bits: causal, with a mask gradient, grouped heads.
#[test]
fn backward_passes_agree_bit_for_bit() {
    let c = Case { b: 1, h: 2, hk: 1, l: 150, s: 200, d: 16, dv: 8 };
    let mut rng = Rng(11);
    let sz = |a: usize, b_: usize, c_: usize, d_: usize| [a as i64, b_ as i64, c_ as i64, d_ as i64];
    let dt = DType::F32;
    let (_qb, qv, _) = filled(dt, &sz(c.b, c.h, c.l, c.d), &mut rng, 1.5);
    let (_kb, kv, _) = filled(dt, &sz(c.b, c.hk, c.s, c.d), &mut rng, 1.5);
    let (_vb, vv, _) = filled(dt, &sz(c.b, c.hk, c.s, c.dv), &mut rng, 1.0);
    let (_mb, mv, _) = filled(dt, &sz(c.b, 1, c.l, c.s), &mut rng, 2.0);
    let (_gb, gv, _) = filled(dt, &sz(c.b, c.h, c.l, c.dv), &mut rng, 1.0);
    let params = AttentionParams { scale: 0.25, causal: true, dropout: None };
    let (_ob, ov) = Buf::contiguous(dt, &sz(c.b, c.h, c.l, c.dv));
    let (_lb, lv) = Buf::contiguous(dt, &[c.b as i64, c.h as i64, c.l as i64]);
    attention_forward(&ov, &lv, &qv, &kv, &vv, Some(&mv), params).unwrap();
    let grads = || {
        let bufs = [&qv.sizes, &kv.sizes, &vv.sizes, &mv.sizes].map(|s| Buf::contiguous(dt, s));
        let [(qb, q), (kb, k), (vb, v), (mb, m)] = bufs;
        attention_backward(&q, &k, &v, Some(&m), &gv, &qv, &kv, &vv, Some(&mv), &ov, &lv, params).unwrap();
        [qb, kb, vb, mb].map(|b| b.f64s())
    };
    let two_pass = grads();
    let one_pass = with_sequential(grads);
    for (what, (a, b)) in ["dq", "dk", "dv", "dmask"].iter().zip(two_pass.iter().zip(&one_pass)) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{what} differs");
    }
}

#[test]
fn empty_sizes() {
    for c in [
        Case { l: 0, ..SMALL },
        Case { s: 0, ..SMALL },
        Case { d: 0, ..SMALL },
        Case { dv: 0, ..SMALL },
        Case { b: 0, ..SMALL },
    ] {
        run(DType::F64, c, None, false, 10);
    }
}

/// With dropout the forward is still a deterministic function of (q, k, v) for one seed, so
/// its gradient can be checked by finite differences; and kept probabilities average 1 - p.
#[test]
fn dropout_is_consistent_between_passes() {
    let c = Case { b: 1, h: 2, hk: 2, l: 70, s: 140, d: 4, dv: 3 };
    let dt = DType::F64;
    let mut rng = Rng(11);
    let sz = |a: usize, b_: usize, c_: usize, d_: usize| [a as i64, b_ as i64, c_ as i64, d_ as i64];
    let (mut qb, qv, q) = filled(dt, &sz(c.b, c.h, c.l, c.d), &mut rng, 1.0);
    let (_kb, kv, _) = filled(dt, &sz(c.b, c.hk, c.s, c.d), &mut rng, 1.0);
    let (_vb, vv, _) = filled(dt, &sz(c.b, c.hk, c.s, c.dv), &mut rng, 1.0);
    let (_gb, gv, go) = filled(dt, &sz(c.b, c.h, c.l, c.dv), &mut rng, 1.0);
    let params = AttentionParams { scale: 0.5, causal: false, dropout: Some(AttentionDropout { p: 0.3, seed: 42, offset: 8 }) };
    let (ob, ov) = Buf::contiguous(dt, &sz(c.b, c.h, c.l, c.dv));
    let (_lb, lv) = Buf::contiguous(DType::F64, &[1, 2, 70]);
    let objective = |ob: &Buf| ob.f64s().iter().zip(&go).map(|(a, b)| a * b).sum::<f64>();
    attention_forward(&ov, &lv, &qv, &kv, &vv, None, params).unwrap();
    let (dqb, dqv) = Buf::contiguous(dt, &qv.sizes);
    let (_dkb, dkv) = Buf::contiguous(dt, &kv.sizes);
    let (_dvb, dvv) = Buf::contiguous(dt, &vv.sizes);
    attention_backward(&dqv, &dkv, &dvv, None, &gv, &qv, &kv, &vv, None, &ov, &lv, params).unwrap();
    let dq = dqb.f64s();
    for idx in [0usize, 37, 200, 559] {
        let eps = 1e-6;
        let mut at = |x: f64| {
            qb.set(idx as i64, &write(dt, V::F(x)));
            attention_forward(&ov, &lv, &qv, &kv, &vv, None, params).unwrap();
            objective(&ob)
        };
        let numeric = (at(q[idx] + eps) - at(q[idx] - eps)) / (2.0 * eps);
        at(q[idx]);
        assert!((numeric - dq[idx]).abs() < 1e-6 * (1.0 + numeric.abs()), "dq[{idx}]: {} vs {numeric}", dq[idx]);
    }
    // v = ones: each output is the sum of the kept probabilities / (1 - p), 1 on average
    let (mut ones, onesv) = Buf::contiguous(dt, &sz(c.b, c.hk, c.s, 1));
    for i in 0..ones.len {
        ones.set(i as i64, &write(dt, V::F(1.0)));
    }
    let (o1b, o1v) = Buf::contiguous(dt, &sz(c.b, c.h, c.l, 1));
    attention_forward(&o1v, &lv, &qv, &kv, &onesv, None, params).unwrap();
    let mean = o1b.f64s().iter().sum::<f64>() / (c.h * c.l) as f64;
    assert!((mean - 1.0).abs() < 0.05, "mean kept mass {mean}");
    assert!(o1b.f64s().iter().any(|&x| (x - 1.0).abs() > 1e-3), "dropout dropped nothing");
}
