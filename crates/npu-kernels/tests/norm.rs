//! layer_norm and batch_norm against f64 references; their gradients against central finite
//! differences of the reference forward (an independent check of the backward formulas).

mod common;

use common::*;
use npu_kernels::{batch_norm, batch_norm_backward, layer_norm, layer_norm_backward, DType, View};

fn tensor(dt: DType, sizes: &[i64], vals: &[f64]) -> (Buf, View) {
    let (mut b, v) = Buf::contiguous(dt, sizes);
    for (i, &x) in vals.iter().enumerate() {
        b.set(i as i64, &write(dt, V::F(x)));
    }
    (b, v)
}

fn data(n: usize, seed: u64) -> Vec<f64> {
    let mut r = Rng(seed);
    (0..n).map(|_| ((r.next() % 1000) as f64 - 500.0) / 100.0).collect()
}

fn ln_ref(x: &[f64], w: &[f64], b: &[f64], n: usize, eps: f64) -> Vec<f64> {
    x.chunks(n)
        .flat_map(|row| {
            let mu = row.iter().sum::<f64>() / n as f64;
            let var = row.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / n as f64;
            let rs = 1.0 / (var + eps).sqrt();
            row.iter().enumerate().map(move |(j, v)| (v - mu) * rs * w[j] + b[j]).collect::<Vec<_>>()
        })
        .collect()
}

fn bn_ref(x: &[f64], w: &[f64], b: &[f64], nb: usize, c: usize, s: usize, eps: f64) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for ch in 0..c {
        let idx: Vec<usize> = (0..nb).flat_map(|i| (0..s).map(move |k| (i * c + ch) * s + k)).collect();
        let mu = idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64;
        let var = idx.iter().map(|&i| (x[i] - mu).powi(2)).sum::<f64>() / idx.len() as f64;
        for &i in &idx {
            y[i] = (x[i] - mu) / (var + eps).sqrt() * w[ch] + b[ch];
        }
    }
    y
}

/// d(sum(f(x) * g))/dx, dw, db by central differences.
fn fd_grads(f: &dyn Fn(&[f64], &[f64], &[f64]) -> Vec<f64>, x: &[f64], w: &[f64], b: &[f64], g: &[f64]) -> [Vec<f64>; 3] {
    let loss = |x: &[f64], w: &[f64], b: &[f64]| f(x, w, b).iter().zip(g).map(|(a, b)| a * b).sum::<f64>();
    let h = 1e-6;
    let d = |which: usize, len: usize| -> Vec<f64> {
        (0..len)
            .map(|i| {
                let mut args = [x.to_vec(), w.to_vec(), b.to_vec()];
                args[which][i] += h;
                let up = loss(&args[0], &args[1], &args[2]);
                args[which][i] -= 2.0 * h;
                let down = loss(&args[0], &args[1], &args[2]);
                (up - down) / (2.0 * h)
            })
            .collect()
    };
    [d(0, x.len()), d(1, w.len()), d(2, b.len())]
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: element {i}: got {g}, want {w}");
    }
}

#[test]
fn layer_norm_forward_and_backward() {
    // rows shorter than the kernels' sum lanes, and longer with a tail
    for (n, dt) in [7usize, 70].into_iter().flat_map(|n| [DType::F64, DType::F32, DType::BF16].map(|dt| (n, dt))) {
        let (m, eps) = (4usize, 1e-5);
        let q = |v: Vec<f64>| -> Vec<f64> { v.iter().map(|&x| read(dt, &write(dt, V::F(x))).real()).collect() };
        let (x, w, b, g) = (q(data(m * n, 1)), q(data(n, 2)), q(data(n, 3)), q(data(m * n, 4)));
        let (_xb, xv) = tensor(dt, &[m as i64, n as i64], &x);
        let (_wb, wv) = tensor(dt, &[n as i64], &w);
        let (_bb, bv) = tensor(dt, &[n as i64], &b);
        let (yb, yv) = Buf::contiguous(dt, &[m as i64, n as i64]);
        let (_mb, mv) = Buf::contiguous(dt, &[m as i64, 1]);
        let (_rb, rv) = Buf::contiguous(dt, &[m as i64, 1]);
        layer_norm(&yv, &mv, &rv, &xv, Some(&wv), Some(&bv), n, eps).unwrap();
        let tol = match dt { DType::F64 => 1e-9, DType::F32 => 1e-5, _ => 2e-2 };
        assert_close(&yb.f64s(), &ln_ref(&x, &w, &b, n, eps), tol, &format!("ln forward {dt:?} n {n}"));
        let (_gb, gv) = tensor(dt, &[m as i64, n as i64], &g);
        let (gib, giv) = Buf::contiguous(dt, &[m as i64, n as i64]);
        let (gwb, gwv) = Buf::contiguous(dt, &[n as i64]);
        let (gbb, gbv) = Buf::contiguous(dt, &[n as i64]);
        layer_norm_backward(&gv, &xv, &mv, &rv, Some(&wv), n, Some(&giv), Some(&gwv), Some(&gbv)).unwrap();
        let [dx, dw, db] = fd_grads(&|x, w, b| ln_ref(x, w, b, n, eps), &x, &w, &b, &g);
        let tol = match dt { DType::F64 => 1e-6, DType::F32 => 1e-4, _ => 5e-2 };
        assert_close(&gib.f64s(), &dx, tol, &format!("ln grad_input {dt:?} n {n}"));
        assert_close(&gwb.f64s(), &dw, tol, &format!("ln grad_weight {dt:?} n {n}"));
        assert_close(&gbb.f64s(), &db, tol, &format!("ln grad_bias {dt:?} n {n}"));
    }
}

#[test]
fn batch_norm_training_eval_and_backward() {
    // planes of 37: four 8-lane chunks and a remainder
    let (nb, c, s, eps, momentum) = (3usize, 4usize, 37usize, 1e-5, 0.1);
    for dt in [DType::F64, DType::F32] {
        let (x, w, b, g) = (data(nb * c * s, 5), data(c, 6), data(c, 7), data(nb * c * s, 8));
        let sizes = [nb as i64, c as i64, s as i64];
        let (_xb, xv) = tensor(dt, &sizes, &x);
        let (_wb, wv) = tensor(dt, &[c as i64], &w);
        let (_bb, bv) = tensor(dt, &[c as i64], &b);
        let (rmb, rmv) = tensor(dt, &[c as i64], &vec![0.5; c]);
        let (rvb, rvv) = tensor(dt, &[c as i64], &vec![2.0; c]);
        let (yb, yv) = Buf::contiguous(dt, &sizes);
        let (_smb, smv) = Buf::contiguous(dt, &[c as i64]);
        let (_sib, siv) = Buf::contiguous(dt, &[c as i64]);
        batch_norm(&yv, &xv, Some(&wv), Some(&bv), Some(&rmv), Some(&rvv), Some((&smv, &siv)), true, momentum, eps).unwrap();
        let tol = if dt == DType::F64 { 1e-9 } else { 1e-5 };
        assert_close(&yb.f64s(), &bn_ref(&x, &w, &b, nb, c, s, eps), tol, &format!("bn forward {dt:?}"));
        // running stats moved towards the batch stats (unbiased variance)
        for ch in 0..c {
            let vals: Vec<f64> = (0..nb).flat_map(|i| (0..s).map(move |k| (i * c + ch) * s + k)).map(|i| x[i]).collect();
            let mu = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (vals.len() - 1) as f64;
            assert_close(&[rmb.f64s()[ch]], &[0.9 * 0.5 + 0.1 * mu], tol, "running_mean");
            assert_close(&[rvb.f64s()[ch]], &[0.9 * 2.0 + 0.1 * var], tol, "running_var");
        }
        let (_gb, gv) = tensor(dt, &sizes, &g);
        let (gib, giv) = Buf::contiguous(dt, &sizes);
        let (gwb, gwv) = Buf::contiguous(dt, &[c as i64]);
        let (gbb, gbv) = Buf::contiguous(dt, &[c as i64]);
        batch_norm_backward(&gv, &xv, Some(&wv), None, None, Some(&smv), Some(&siv), true, eps, [Some(&giv), Some(&gwv), Some(&gbv)]).unwrap();
        let [dx, dw, db] = fd_grads(&|x, w, b| bn_ref(x, w, b, nb, c, s, eps), &x, &w, &b, &g);
        let tol = if dt == DType::F64 { 1e-6 } else { 1e-4 };
        assert_close(&gib.f64s(), &dx, tol, &format!("bn grad_input {dt:?}"));
        assert_close(&gwb.f64s(), &dw, tol, &format!("bn grad_weight {dt:?}"));
        assert_close(&gbb.f64s(), &db, tol, &format!("bn grad_bias {dt:?}"));
        // eval: running stats, and the gradient through a fixed affine map
        let (yb, yv) = Buf::contiguous(dt, &sizes);
        let (rm, rv) = (rmb.f64s(), rvb.f64s());
        batch_norm(&yv, &xv, Some(&wv), Some(&bv), Some(&rmv), Some(&rvv), None, false, momentum, eps).unwrap();
        let want: Vec<f64> = (0..x.len()).map(|i| { let ch = (i / s) % c; (x[i] - rm[ch]) / (rv[ch] + eps).sqrt() * w[ch] + b[ch] }).collect();
        assert_close(&yb.f64s(), &want, tol, &format!("bn eval {dt:?}"));
        let (gib, giv) = Buf::contiguous(dt, &sizes);
        batch_norm_backward(&gv, &xv, Some(&wv), Some(&rmv), Some(&rvv), None, None, false, eps, [Some(&giv), None, None]).unwrap();
        let want: Vec<f64> = (0..x.len()).map(|i| { let ch = (i / s) % c; g[i] * w[ch] / (rv[ch] + eps).sqrt() }).collect();
        assert_close(&gib.f64s(), &want, tol, &format!("bn eval grad_input {dt:?}"));
    }
}

/// group_norm_backward against central differences of a naive f64 group norm.
#[test]
fn group_norm_forward_and_backward() {
    // planes shorter than the kernels' sum lanes, and longer with a tail
    for s in [3usize, 70] {
        group_norm_case(s);
    }
}

fn group_norm_case(s: usize) {
    use npu_kernels::group_norm_backward;
    let (n, c, groups) = (2usize, 4usize, 2usize);
    let d = c / groups;
    let mut rng = Rng(7);
    let mut rand = || ((rng.next() >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
    let x: Vec<f64> = (0..n * c * s).map(|_| rand()).collect();
    let dy: Vec<f64> = (0..n * c * s).map(|_| rand()).collect();
    let w: Vec<f64> = (0..c).map(|_| rand()).collect();
    let b: Vec<f64> = (0..c).map(|_| rand()).collect();
    let stats = |x: &[f64]| -> (Vec<f64>, Vec<f64>) {
        let (mut mean, mut rstd) = (vec![0.0; n * groups], vec![0.0; n * groups]);
        for ni in 0..n {
            for g in 0..groups {
                let vals: Vec<f64> = (g * d..(g + 1) * d).flat_map(|ch| (0..s).map(move |k| (ni * c + ch) * s + k)).map(|i| x[i]).collect();
                let m = vals.iter().sum::<f64>() / vals.len() as f64;
                let v = vals.iter().map(|z| (z - m) * (z - m)).sum::<f64>() / vals.len() as f64;
                mean[ni * groups + g] = m;
                rstd[ni * groups + g] = 1.0 / (v + 1e-5).sqrt();
            }
        }
        (mean, rstd)
    };
    let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        let (mean, rstd) = stats(x);
        (0..n * c * s)
            .map(|i| {
                let (ni, ch) = (i / (c * s), i / s % c);
                let g = ni * groups + ch / d;
                dy[i] * ((x[i] - mean[g]) * rstd[g] * w[ch] + b[ch])
            })
            .sum()
    };
    let (mean, rstd) = stats(&x);
    let sz = [n as i64, c as i64, s as i64];
    // the input, weight and bias gradients computed in `dt`
    let backward = |dt: DType| {
        let (_xb, xv) = tensor(dt, &sz, &x);
        let (_gb, gv) = tensor(dt, &sz, &dy);
        let (_mb, mv) = tensor(dt, &[n as i64, groups as i64], &mean);
        let (_rb, rv) = tensor(dt, &[n as i64, groups as i64], &rstd);
        let (_wb, wv) = tensor(dt, &[c as i64], &w);
        let (gib, giv) = Buf::contiguous(dt, &sz);
        let (gwb, gwv) = Buf::contiguous(dt, &[c as i64]);
        let (gbb, gbv) = Buf::contiguous(dt, &[c as i64]);
        group_norm_backward(&gv, &xv, &mv, &rv, Some(&wv), groups, [Some(&giv), Some(&gwv), Some(&gbv)]).unwrap();
        (gib, gwb, gbb)
    };
    let (gib, gwb, gbb) = backward(DType::F64);

    // the forward against the same reference (f64, and f32 with the affine parameters)
    for dt in [DType::F64, DType::F32] {
        let (xq, xv) = tensor(dt, &sz, &x);
        let xq = xq.f64s();
        let (_wb, wv) = tensor(dt, &[c as i64], &w);
        let (_bb, bv) = tensor(dt, &[c as i64], &b);
        let (yb, yv) = Buf::contiguous(dt, &sz);
        let (mb, mv) = Buf::contiguous(dt, &[n as i64, groups as i64]);
        let (rb, rv) = Buf::contiguous(dt, &[n as i64, groups as i64]);
        npu_kernels::group_norm(&yv, &mv, &rv, &xv, Some(&wv), Some(&bv), groups, 1e-5).unwrap();
        let (mean, rstd) = stats(&xq);
        let wq: Vec<f64> = w.iter().map(|&z| read(dt, &write(dt, V::F(z))).real()).collect();
        let bq: Vec<f64> = b.iter().map(|&z| read(dt, &write(dt, V::F(z))).real()).collect();
        let want: Vec<f64> = (0..n * c * s)
            .map(|i| {
                let (ni, ch) = (i / (c * s), i / s % c);
                let g = ni * groups + ch / d;
                (xq[i] - mean[g]) * rstd[g] * wq[ch] + bq[ch]
            })
            .collect();
        let tol = if dt == DType::F64 { 1e-9 } else { 1e-5 };
        assert_close(&yb.f64s(), &want, tol, &format!("group_norm forward {dt:?}"));
        assert_close(&mb.f64s(), &mean, tol, &format!("group_norm mean {dt:?}"));
        assert_close(&rb.f64s(), &rstd, tol, &format!("group_norm rstd {dt:?}"));
    }

    let eps = 1e-6;
    let numeric = |f: &dyn Fn(f64) -> f64| (f(eps) - f(-eps)) / (2.0 * eps);
    for i in 0..x.len() {
        let want = numeric(&|e| {
            let mut xe = x.clone();
            xe[i] += e;
            loss(&xe, &w, &b)
        });
        assert!((gib.f64s()[i] - want).abs() < 1e-5, "dx[{i}]: {} vs {want}", gib.f64s()[i]);
    }
    for ch in 0..c {
        let ww = numeric(&|e| {
            let mut we = w.clone();
            we[ch] += e;
            loss(&x, &we, &b)
        });
        let bb = numeric(&|e| {
            let mut be = b.clone();
            be[ch] += e;
            loss(&x, &w, &be)
        });
        assert!((gwb.f64s()[ch] - ww).abs() < 1e-5 && (gbb.f64s()[ch] - bb).abs() < 1e-5, "dw/db[{ch}]");
    }

    // the f32 kernel against the f64 one
    let (gib32, gwb32, gbb32) = backward(DType::F32);
    assert_close(&gib32.f64s(), &gib.f64s(), 1e-4, &format!("f32 grad_input, s {s}"));
    assert_close(&gwb32.f64s(), &gwb.f64s(), 1e-4, &format!("f32 grad_weight, s {s}"));
    assert_close(&gbb32.f64s(), &gbb.f64s(), 1e-4, &format!("f32 grad_bias, s {s}"));
}
