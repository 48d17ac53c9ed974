//! gather / scatter (every reduction) and cumsum / cumprod against naive loops.

mod common;

use common::*;
use npu_kernels::{gather, scan, scatter, DType, Scalar, ScanOp, ScatterReduce, ScatterSrc, View};

fn filled(dt: DType, sizes: &[i64], vals: impl Fn(usize) -> f64) -> (Buf, View) {
    let (mut b, v) = Buf::contiguous(dt, sizes);
    for i in 0..b.len {
        b.set(i as i64, &write(dt, V::F(vals(i))));
    }
    (b, v)
}

fn index_buf(sizes: &[i64], bound: i64, seed: u64) -> (Buf, View, Vec<i64>) {
    let mut rng = Rng(seed);
    let (mut b, v) = Buf::contiguous(DType::I64, sizes);
    let mut vals = vec![];
    for i in 0..b.len {
        let x = (rng.next() % bound as u64) as i64;
        vals.push(x);
        b.set(i as i64, &write(DType::I64, V::I(x)));
    }
    (b, v, vals)
}

/// Position p of `sizes` with `dim` replaced by `i`, as a flat offset in `of` (contiguous).
fn at(p: &[i64], dim: usize, i: i64, of: &[i64]) -> usize {
    let mut q = p.to_vec();
    q[dim] = i;
    offset_of(&q, &contiguous_strides(of)) as usize
}

#[test]
fn gather_matches_loop() {
    for dt in [DType::F32, DType::I64, DType::F16, DType::Bool] {
        let src_sizes = [4, 5, 3];
        let (_sb, sv) = filled(dt, &src_sizes, |i| (i % 7) as f64 - 2.0);
        for dim in 0..3 {
            let isz = [3, 4, 2];
            let (_ib, iv, idx) = index_buf(&isz, src_sizes[dim], 5 + dim as u64);
            let (db, dv) = Buf::contiguous(dt, &isz);
            gather(&dv, &sv, dim, &iv).unwrap();
            let src = _sb.f64s();
            let want: Vec<f64> = indices(&isz).iter().zip(&idx).map(|(p, &i)| src[at(p, dim, i, &src_sizes)]).collect();
            assert_eq!(db.f64s(), want, "{dt:?} dim {dim}");
        }
    }
}

fn naive_scatter(dst: &mut [f64], dsz: &[i64], dim: usize, isz: &[i64], idx: &[i64], src: &[f64], ssz: &[i64], r: ScatterReduce, include_self: bool, int: bool) {
    let mut count = vec![0i64; dst.len()];
    for (p, &i) in indices(isz).iter().zip(idx) {
        let t = at(p, dim, i, dsz);
        let s = src[offset_of(p, &contiguous_strides(ssz)) as usize];
        if count[t] == 0 && !include_self {
            dst[t] = match r {
                ScatterReduce::Prod => 1.0,
                ScatterReduce::Amax => f64::NEG_INFINITY,
                ScatterReduce::Amin => f64::INFINITY,
                _ => 0.0,
            };
        }
        if count[t] == 0 && include_self {
            count[t] = 1;
        }
        count[t] += 1;
        dst[t] = match r {
            ScatterReduce::Assign => s,
            ScatterReduce::Sum | ScatterReduce::Mean => dst[t] + s,
            ScatterReduce::Prod => dst[t] * s,
            ScatterReduce::Amax => dst[t].max(s),
            ScatterReduce::Amin => dst[t].min(s),
        };
    }
    if r == ScatterReduce::Mean {
        for (d, &c) in dst.iter_mut().zip(&count) {
            if c > 0 {
                *d = if int { (*d / c as f64).floor() } else { *d / c as f64 };
            }
        }
    }
}

#[test]
fn scatter_every_reduction_matches_loop() {
    use ScatterReduce::*;
    for dt in [DType::F64, DType::I64] {
        for r in [Assign, Sum, Prod, Mean, Amax, Amin] {
            for include_self in [true, false] {
                for dim in 0..2 {
                    let dsz = [5, 6];
                    let isz = [4, 5];
                    let ssz = [4, 6];
                    let (mut db, dv) = filled(dt, &dsz, |i| (i % 5) as f64 + 1.0);
                    let (sb, sv) = filled(dt, &ssz, |i| (i % 4) as f64 - 1.5 + if dt == DType::I64 { 0.5 } else { 0.0 });
                    let (_ib, iv, idx) = index_buf(&isz, dsz[dim], 17 + dim as u64);
                    let mut want = db.f64s();
                    let srcv = sb.f64s();
                    if r == Assign {
                        // duplicate indices make assignment order-dependent: use a permutation-free index
                        continue;
                    }
                    naive_scatter(&mut want, &dsz, dim, &isz, &idx, &srcv, &ssz, r, include_self, dt == DType::I64);
                    scatter(&dv, dim, &iv, ScatterSrc::Tensor(&sv), r, include_self).unwrap();
                    let got = db.f64s();
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() < 1e-9, "{dt:?} {r:?} self={include_self} dim {dim}: {got:?} vs {want:?}");
                    }
                    let _ = &mut db;
                }
            }
        }
    }
    // assignment with distinct indices, and a scalar source
    let (db, dv) = filled(DType::F32, &[3, 4], |_| 0.0);
    let (_ib, iv) = filled(DType::I64, &[1, 4], |i| [2.0, 0.0, 1.0, 2.0][i]);
    scatter(&dv, 0, &iv, ScatterSrc::Scalar(Scalar::Float(7.0)), Assign, true).unwrap();
    assert_eq!(db.f64s(), vec![0., 7., 0., 0., 0., 0., 7., 0., 7., 0., 0., 7.]);
}

#[test]
fn out_of_range_index_is_an_error_and_writes_nothing() {
    let (db, dv) = filled(DType::F32, &[3], |i| i as f64);
    let (_ib, iv) = filled(DType::I64, &[2], |i| [1.0, 3.0][i]);
    let (_sb, sv) = filled(DType::F32, &[2], |_| 9.0);
    let e = scatter(&dv, 0, &iv, ScatterSrc::Tensor(&sv), ScatterReduce::Sum, true).unwrap_err();
    assert!(e.0.contains("index 3 is out of bounds"), "{}", e.0);
    assert_eq!(db.f64s(), vec![0.0, 1.0, 2.0]);
    let (_nb, nv) = filled(DType::I64, &[1], |_| -1.0);
    let (_ob, ov) = Buf::contiguous(DType::F32, &[1]);
    assert!(gather(&ov, &dv, 0, &nv).unwrap_err().0.contains("out of bounds"));
}

#[test]
fn scans_match_loop() {
    for (dt, out) in [(DType::F32, DType::F32), (DType::F16, DType::F16), (DType::I32, DType::I64), (DType::Bool, DType::I64), (DType::F64, DType::F32)] {
        let sizes = [3, 70, 4];
        let (sb, sv) = filled(dt, &sizes, |i| ((i * 7) % 11) as f64 / 4.0 - 1.0);
        for dim in 0..3 {
            for op in [ScanOp::Sum, ScanOp::Prod] {
                let (ob, ov) = Buf::contiguous(out, &sizes);
                scan(&ov, &sv, dim, op).unwrap();
                // reference: values converted to the output dtype, accumulated in f64, rounded per prefix
                let src: Vec<f64> = sb.f64s().iter().map(|&x| read(out, &write(out, V::F(x))).real()).collect();
                let mut want = vec![0.0; src.len()];
                for p in indices(&sizes) {
                    if p[dim] != 0 {
                        continue;
                    }
                    let mut acc = if op == ScanOp::Sum { 0.0 } else { 1.0 };
                    for i in 0..sizes[dim] {
                        let o = at(&p, dim, i, &sizes);
                        acc = if op == ScanOp::Sum { acc + src[o] } else { acc * src[o] };
                        want[o] = read(out, &write(out, V::F(acc))).real();
                    }
                }
                let got = ob.f64s();
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let tol = if out == DType::F16 { 2e-3 * (1.0 + w.abs()) } else { 1e-6 * (1.0 + w.abs()) };
                    assert!((g - w).abs() <= tol || (g.is_nan() && w.is_nan()), "{dt:?}->{out:?} {op:?} dim {dim} [{i}]: {g} vs {w}");
                }
            }
        }
    }
}
