//! softmax / log_softmax (forward and backward) and nll_loss against naive f64 references.

mod common;

use common::*;
use npu_kernels::{nll_loss, nll_loss_backward, softmax, softmax_backward, DType, Reduction, View};
use proptest::prelude::*;

fn tolerance(dt: DType) -> f64 {
    match dt {
        DType::F64 => 1e-12,
        DType::F32 => 1e-5,
        DType::F16 => 2e-3,
        _ => 2e-2,
    }
}

/// A view of `sizes` laid out by `spec`, filled from `vals` (row-major order of the indices).
fn tensor(dt: DType, sizes: &[i64], spec: &Spec, vals: &[f64]) -> (Buf, View) {
    let (strides, len) = spec.layout(sizes);
    let mut b = Buf::new(dt, len);
    for (idx, &v) in indices(sizes).iter().zip(vals) {
        b.set(spec.offset + offset_of(idx, &strides), &write(dt, V::F(v)));
    }
    let v = b.view(sizes, &strides, spec.offset);
    (b, v)
}

/// Reference along `dim` on row-major values.
fn reference(sizes: &[i64], dim: usize, x: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    let flat = |idx: &[i64]| offset_of(idx, &contiguous_strides(sizes)) as usize;
    let n = if sizes.is_empty() { 1 } else { sizes[dim] };
    for idx in indices(sizes) {
        if !sizes.is_empty() && idx[dim] != 0 {
            continue;
        }
        let row: Vec<usize> = (0..n)
            .map(|k| {
                let mut i = idx.clone();
                if !i.is_empty() {
                    i[dim] = k;
                }
                flat(&i)
            })
            .collect();
        let r = f(&row.iter().map(|&p| x[p]).collect::<Vec<_>>());
        for (p, v) in row.iter().zip(r) {
            out[*p] = v;
        }
    }
    out
}

fn softmax_ref(x: &[f64], log: bool) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
    x.iter().map(|v| if log { v - m - s.ln() } else { (v - m).exp() / s }).collect()
}

fn assert_close(got: &[f64], want: &[f64], dt: DType, what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= tolerance(dt) * (1.0 + w.abs()) || (g.is_nan() && w.is_nan());
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn softmax_matches_reference(
        sizes in prop::collection::vec(1i64..6, 0..=3),
        dim_pick in 0usize..3,
        dt in float_dtype(),
        out_f32 in any::<bool>(),
        log in any::<bool>(),
        si in spec(3, false),
        seed in any::<u64>(),
    ) {
        let rank = sizes.len();
        let dim = if rank == 0 { 0 } else { dim_pick % rank };
        let cut = |s: &Spec| {
            let mut perm: Vec<usize> = s.perm.iter().copied().filter(|&d| d < rank).collect();
            if perm.len() != rank { perm = (0..rank).collect(); }
            Spec { perm, steps: s.steps[..rank].to_vec(), bcast: vec![false; rank], offset: s.offset }
        };
        let n: usize = sizes.iter().map(|&s| s as usize).product();
        let mut rng = Rng(seed);
        let x: Vec<f64> = (0..n).map(|_| ((rng.next() % 2001) as f64 - 1000.0) / 100.0).collect();
        let x: Vec<f64> = x.iter().map(|&v| read(dt, &write(dt, V::F(v))).real()).collect();
        let odt = if out_f32 && matches!(dt, DType::F16 | DType::BF16) { DType::F32 } else { dt };
        let (_s, sv) = tensor(dt, &sizes, &cut(&si), &x);
        let (d, dv) = Buf::contiguous(odt, &sizes);
        softmax(&dv, &sv, dim, log).unwrap();
        let want = reference(&sizes, dim, &x, |r| softmax_ref(r, log));
        assert_close(&d.f64s(), &want, odt, &format!("forward log={log} {dt:?} {sizes:?} dim {dim}"));

        // backward, from the reference output
        let g: Vec<f64> = (0..n).map(|_| ((rng.next() % 200) as f64 - 100.0) / 50.0).collect();
        let g: Vec<f64> = g.iter().map(|&v| read(dt, &write(dt, V::F(v))).real()).collect();
        let y: Vec<f64> = want.iter().map(|&v| read(dt, &write(dt, V::F(v))).real()).collect();
        let (_gb, gv) = tensor(dt, &sizes, &Spec::contiguous(rank), &g);
        let (_yb, yv) = tensor(dt, &sizes, &cut(&si), &y);
        let (d, dv) = Buf::contiguous(dt, &sizes);
        softmax_backward(&dv, &gv, &yv, dim, log).unwrap();
        let want = reference(&sizes, dim, &(0..n).map(|i| i as f64).collect::<Vec<_>>(), |idx| {
            let idx: Vec<usize> = idx.iter().map(|&p| p as usize).collect();
            if log {
                let s: f64 = idx.iter().map(|&p| g[p]).sum();
                idx.iter().map(|&p| g[p] - y[p].exp() * s).collect()
            } else {
                let s: f64 = idx.iter().map(|&p| g[p] * y[p]).sum();
                idx.iter().map(|&p| y[p] * (g[p] - s)).collect()
            }
        });
        assert_close(&d.f64s(), &want, dt, &format!("backward log={log} {dt:?} {sizes:?} dim {dim}"));
    }
}

/// Rows longer than the kernel's sum lanes (with tails), along the last dim (read in place)
/// and the first (blocks of columns), and with the output written over an input.
#[test]
fn softmax_long_rows_and_in_place() {
    for len in [31i64, 32, 33, 100, 257] {
        for dim in [0usize, 1] {
            for log in [false, true] {
                // along dim 0, 37 columns: blocks of 16 columns and a partial one
                let sizes = if dim == 0 { [len, 37] } else { [3i64, len] };
                let n = (sizes[0] * sizes[1]) as usize;
                let mut rng = Rng(len as u64 * 7 + dim as u64);
                let x: Vec<f64> = (0..n).map(|_| read(DType::F32, &write(DType::F32, V::F(((rng.next() % 2001) as f64 - 1000.0) / 100.0))).real()).collect();
                let want = reference(&sizes, dim, &x, |r| softmax_ref(r, log));
                let what = format!("log={log} {sizes:?} dim {dim}");
                let (_s, sv) = tensor(DType::F32, &sizes, &Spec::contiguous(2), &x);
                let (d, dv) = Buf::contiguous(DType::F32, &sizes);
                softmax(&dv, &sv, dim, log).unwrap();
                assert_close(&d.f64s(), &want, DType::F32, &format!("forward {what}"));
                let (s, sv) = tensor(DType::F32, &sizes, &Spec::contiguous(2), &x);
                softmax(&sv, &sv, dim, log).unwrap();
                assert_close(&s.f64s(), &want, DType::F32, &format!("forward in place {what}"));

                let g: Vec<f64> = (0..n).map(|_| ((rng.next() % 200) as f64 - 100.0) / 64.0).collect();
                let y: Vec<f64> = want.iter().map(|&v| read(DType::F32, &write(DType::F32, V::F(v))).real()).collect();
                let want = reference(&sizes, dim, &(0..n).map(|i| i as f64).collect::<Vec<_>>(), |idx| {
                    let idx: Vec<usize> = idx.iter().map(|&p| p as usize).collect();
                    let s: f64 = idx.iter().map(|&p| if log { g[p] } else { g[p] * y[p] }).sum();
                    idx.iter().map(|&p| if log { g[p] - y[p].exp() * s } else { y[p] * (g[p] - s) }).collect()
                });
                let (_yb, yv) = tensor(DType::F32, &sizes, &Spec::contiguous(2), &y);
                let (gb, gv) = tensor(DType::F32, &sizes, &Spec::contiguous(2), &g);
                let (d, dv) = Buf::contiguous(DType::F32, &sizes);
                softmax_backward(&dv, &gv, &yv, dim, log).unwrap();
                assert_close(&d.f64s(), &want, DType::F32, &format!("backward {what}"));
                softmax_backward(&gv, &gv, &yv, dim, log).unwrap();
                assert_close(&gb.f64s(), &want, DType::F32, &format!("backward into the gradient {what}"));
            }
        }
    }
}

#[test]
fn softmax_edge_values() {
    let x = [f64::NEG_INFINITY, 0.0, 1000.0, f64::NEG_INFINITY];
    let (_s, sv) = tensor(DType::F32, &[4], &Spec::contiguous(1), &x);
    let (d, dv) = Buf::contiguous(DType::F32, &[4]);
    softmax(&dv, &sv, 0, false).unwrap();
    assert_eq!(d.f64s(), vec![0.0, 0.0, 1.0, 0.0]);
    let x = [1.0, f64::NAN];
    let (_s, sv) = tensor(DType::F32, &[2], &Spec::contiguous(1), &x);
    let (d, dv) = Buf::contiguous(DType::F32, &[2]);
    softmax(&dv, &sv, 0, true).unwrap();
    assert!(d.f64s().iter().all(|v| v.is_nan()));
}

#[allow(clippy::too_many_arguments)]
fn nll_case(dt: DType, n: i64, c: i64, s: i64, weighted: bool, reduction: Reduction, ignore: i64, seed: u64) {
    let mut rng = Rng(seed);
    let x: Vec<f64> = (0..n * c * s).map(|_| read(dt, &write(dt, V::F(((rng.next() % 400) as f64 - 200.0) / 37.0))).real()).collect();
    let t: Vec<i64> = (0..n * s).map(|_| if rng.next() % 5 == 0 { ignore } else { (rng.next() % c as u64) as i64 }).collect();
    let w: Vec<f64> = (0..c).map(|k| read(dt, &write(dt, V::F(0.5 + k as f64 * 0.25))).real()).collect();
    // input transposed in memory: [N, S, C] storage seen as [N, C, S]
    let (_xb, xv) = tensor(dt, &[n, c, s], &Spec { perm: vec![0, 2, 1], ..Spec::contiguous(3) }, &x);
    let (mut tb, tv) = Buf::contiguous(DType::I64, &[n, s]);
    for (i, &v) in t.iter().enumerate() {
        tb.set(i as i64, &write(DType::I64, V::I(v)));
    }
    let (_wb, wv) = tensor(dt, &[c], &Spec::contiguous(1), &w);
    let osz: Vec<i64> = if reduction == Reduction::None { vec![n, s] } else { vec![] };
    let (ob, ov) = Buf::contiguous(dt, &osz);
    let (twb, twv) = Buf::contiguous(dt, &[]);
    let weight = weighted.then_some(&wv);
    nll_loss(&ov, &twv, &xv, &tv, weight, reduction, ignore).unwrap();
    let mut losses = vec![];
    let mut wsum = 0.0;
    for i in 0..n {
        for j in 0..s {
            let tt = t[(i * s + j) as usize];
            if tt == ignore {
                losses.push(0.0);
                continue;
            }
            let ww = if weighted { w[tt as usize] } else { 1.0 };
            losses.push(-ww * x[((i * c + tt) * s + j) as usize]);
            wsum += ww;
        }
    }
    let total: f64 = losses.iter().sum();
    let want = match reduction {
        Reduction::None => losses.clone(),
        Reduction::Sum => vec![total],
        Reduction::Mean => vec![total / wsum],
    };
    let what = format!("nll {dt:?} n{n} c{c} s{s} weighted {weighted} {reduction:?}");
    assert_close(&ob.f64s(), &want, dt, &what);
    if reduction != Reduction::None {
        assert_close(&twb.f64s(), &[wsum], dt, &what);
    }
    // backward
    let go: Vec<f64> = (0..osz.iter().product::<i64>()).map(|k| 0.5 + k as f64 * 0.125).collect();
    let (_gob, gov) = tensor(dt, &osz, &Spec::contiguous(osz.len()), &go);
    let (gib, giv) = Buf::contiguous(dt, &[n, c, s]);
    nll_loss_backward(&giv, &gov, &tv, weight, reduction, ignore, &twv).unwrap();
    let mut want = vec![0.0; (n * c * s) as usize];
    for i in 0..n {
        for j in 0..s {
            let tt = t[(i * s + j) as usize];
            if tt == ignore {
                continue;
            }
            let ww = if weighted { w[tt as usize] } else { 1.0 };
            let g = match reduction {
                Reduction::None => go[(i * s + j) as usize],
                Reduction::Sum => go[0],
                Reduction::Mean => go[0] / twb.f64s()[0],
            };
            want[((i * c + tt) * s + j) as usize] = -ww * g;
        }
    }
    assert_close(&gib.f64s(), &want, dt, &format!("{what} backward"));
}

#[test]
fn nll_loss_matches_reference() {
    let mut seed = 1;
    for dt in [DType::F32, DType::F64, DType::BF16] {
        for (n, c, s) in [(5, 4, 1), (3, 7, 6), (0, 3, 1), (1, 1, 1)] {
            for weighted in [false, true] {
                for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                    for ignore in [-100, 2] {
                        nll_case(dt, n, c, s, weighted, reduction, ignore, seed);
                        seed += 1;
                    }
                }
            }
        }
    }
}

#[test]
fn nll_loss_target_out_of_range_is_an_error() {
    let (_xb, xv) = Buf::contiguous(DType::F32, &[2, 3, 1]);
    let (mut tb, tv) = Buf::contiguous(DType::I64, &[2, 1]);
    tb.set(1, &write(DType::I64, V::I(3)));
    let (_ob, ov) = Buf::contiguous(DType::F32, &[]);
    let (_tw, twv) = Buf::contiguous(DType::F32, &[]);
    let e = nll_loss(&ov, &twv, &xv, &tv, None, Reduction::Mean, -100).unwrap_err();
    assert!(e.0.contains("Target 3 is out of bounds"), "{e}");
}
