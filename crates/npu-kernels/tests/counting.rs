//! Counting, searching, unique, linspace and masked_scatter kernels against naive loops.

mod common;

use common::*;
use npu_kernels::{bincount, bincount_size, histc, linspace, masked_scatter, repeat_index, repeat_total, searchsorted, unique_groups, unique_values, DType, Scalar};

fn buf_of(dtype: DType, vals: &[f64], sizes: &[i64]) -> (Buf, npu_kernels::View) {
    let (mut b, v) = Buf::contiguous(dtype, sizes);
    for (i, &x) in vals.iter().enumerate() {
        let val = if dtype.is_floating() { V::F(x) } else { V::I(x as i64) };
        b.set(i as i64, &write(dtype, val));
    }
    (b, v)
}

#[test]
fn repeat_and_bincount_match_loops() {
    let (_rb, rv) = buf_of(DType::I32, &[2.0, 0.0, 3.0, 1.0], &[4]);
    assert_eq!(repeat_total(&rv).unwrap(), 6);
    let (ob, ov) = Buf::contiguous(DType::I32, &[6]);
    repeat_index(&ov, &rv).unwrap();
    assert_eq!(ob.f64s(), vec![0.0, 0.0, 2.0, 2.0, 2.0, 3.0]);
    let (_nb, nv) = buf_of(DType::I64, &[1.0, -1.0], &[2]);
    assert!(repeat_total(&nv).is_err());

    let mut rng = Rng(5);
    let xs: Vec<f64> = (0..500).map(|_| (rng.next() % 17) as f64).collect();
    let ws: Vec<f64> = (0..500).map(|_| (rng.next() % 1000) as f64 / 7.0).collect();
    let (_xb, xv) = buf_of(DType::I16, &xs, &[500]);
    let (_wb, wv) = buf_of(DType::F64, &ws, &[500]);
    let bins = bincount_size(&xv, 20).unwrap();
    assert_eq!(bins, 20);
    let (cb, cv) = Buf::contiguous(DType::I64, &[bins]);
    bincount(&cv, &xv, None).unwrap();
    let (sb, sv) = Buf::contiguous(DType::F64, &[bins]);
    bincount(&sv, &xv, Some(&wv)).unwrap();
    let (mut want_c, mut want_s) = (vec![0.0; bins as usize], vec![0.0; bins as usize]);
    for (x, w) in xs.iter().zip(&ws) {
        want_c[*x as usize] += 1.0;
        want_s[*x as usize] += w;
    }
    assert_eq!(cb.f64s(), want_c);
    assert_eq!(sb.f64s(), want_s);
    // an output too short for the data is an error, not a wild write
    let (_tb, tv) = Buf::contiguous(DType::I64, &[3]);
    assert!(bincount(&tv, &xv, None).is_err());
}

#[test]
fn histc_matches_loop() {
    let mut rng = Rng(9);
    let xs: Vec<f64> = (0..1000).map(|_| (rng.next() % 4001) as f64 / 1000.0 - 2.0).collect();
    let (_xb, xv) = buf_of(DType::F64, &xs, &[1000]);
    let (hb, hv) = Buf::contiguous(DType::F64, &[8]);
    histc(&hv, &xv, -1.0, 1.5).unwrap();
    let mut want = vec![0.0; 8];
    for &x in &xs {
        if (-1.0..=1.5).contains(&x) {
            let b = (((x + 1.0) * 8.0 / 2.5) as usize).min(7);
            want[b] += 1.0;
        }
    }
    assert_eq!(hb.f64s(), want);
    // min == max: the data's range
    histc(&hv, &xv, 0.0, 0.0).unwrap();
    assert_eq!(hb.f64s().iter().sum::<f64>(), 1000.0);
}

#[test]
fn searchsorted_matches_linear_scan() {
    let seq = [-3.0, -1.0, -1.0, 0.0, 2.5, 2.5, 7.0];
    let vals = [-5.0, -1.0, 0.0, 1.0, 2.5, 7.0, 9.0, f64::NAN];
    let (_sb, sv) = buf_of(DType::F32, &seq, &[7]);
    let (_vb, vv) = buf_of(DType::F64, &vals, &[8]);
    for right in [false, true] {
        let (ob, ov) = Buf::contiguous(DType::I64, &[8]);
        searchsorted(&ov, &sv, &vv, None, right).unwrap();
        let want: Vec<f64> = vals.iter().map(|&v| seq.iter().filter(|&&s| if right { s <= v } else { s < v }).count() as f64).collect();
        let want: Vec<f64> = want.iter().zip(&vals).map(|(&w, v)| if v.is_nan() { 7.0 } else { w }).collect();
        assert_eq!(ob.f64s(), want, "right={right}");
    }
    // through a sorter permutation, per row
    let rows = [5.0, 1.0, 3.0, 0.0, 4.0, 2.0];
    let order = [1.0, 2.0, 0.0, 0.0, 2.0, 1.0];
    let (_rb, rv) = buf_of(DType::I64, &rows, &[2, 3]);
    let (_ob2, orv) = buf_of(DType::I64, &order, &[2, 3]);
    let (_qb, qv) = buf_of(DType::I64, &[3.0, 6.0, 2.0, -1.0], &[2, 2]);
    let (pb, pv) = Buf::contiguous(DType::I32, &[2, 2]);
    searchsorted(&pv, &rv, &qv, Some(&orv), false).unwrap();
    assert_eq!(pb.f64s(), vec![1.0, 3.0, 1.0, 0.0]);
}

#[test]
fn unique_groups_sorted_consecutive_and_by_dim() {
    let xs = [3.0, 1.0, 3.0, f64::NAN, 1.0, 1.0, 2.0];
    let (_xb, xv) = buf_of(DType::F32, &xs, &[7]);
    let g = unique_groups(&xv, None, true).unwrap();
    let (ub, uv) = Buf::contiguous(DType::F32, &[g.first.len() as i64]);
    unique_values(&uv, &xv, None, &g.first).unwrap();
    let u = ub.f64s();
    assert_eq!(&u[..3], &[1.0, 2.0, 3.0]);
    assert!(u[3].is_nan() && u.len() == 4);
    assert_eq!(g.counts, vec![3, 1, 2, 1]);
    assert_eq!(g.inverse, vec![2, 0, 2, 3, 0, 0, 1]);
    let c = unique_groups(&xv, None, false).unwrap();
    assert_eq!(c.counts, vec![1, 1, 1, 1, 2, 1]);
    // columns of [[1, 0, 1], [2, 5, 2]] along dim 1: [0, 5] < [1, 2] (twice)
    let (_mb, mv) = buf_of(DType::I64, &[1.0, 0.0, 1.0, 2.0, 5.0, 2.0], &[2, 3]);
    let d = unique_groups(&mv, Some(1), true).unwrap();
    assert_eq!((d.first.clone(), d.inverse.clone(), d.counts.clone()), (vec![1, 0], vec![1, 0, 1], vec![1, 2]));
    let (vb, vv) = Buf::contiguous(DType::I64, &[2, 2]);
    unique_values(&vv, &mv, Some(1), &d.first).unwrap();
    assert_eq!(vb.f64s(), vec![0.0, 1.0, 5.0, 2.0]);
}

#[test]
fn linspace_ends_exact_and_matches_formula() {
    let (b, v) = Buf::contiguous(DType::F64, &[7]);
    linspace(&v, Scalar::Float(-1.0), Scalar::Float(2.0), None).unwrap();
    let got = b.f64s();
    for (i, g) in got.iter().enumerate() {
        assert!((g - (-1.0 + 0.5 * i as f64)).abs() < 1e-15);
    }
    assert_eq!((got[0], got[6]), (-1.0, 2.0));
    let (ib, iv) = Buf::contiguous(DType::I32, &[4]);
    linspace(&iv, Scalar::Int(0), Scalar::Int(10), None).unwrap();
    assert_eq!(ib.f64s(), vec![0.0, 3.0, 6.0, 10.0]); // truncated: 3.33, 6.67
    let (lb, lv) = Buf::contiguous(DType::F32, &[3]);
    linspace(&lv, Scalar::Int(0), Scalar::Int(2), Some(10.0)).unwrap();
    assert_eq!(lb.f64s(), vec![1.0, 10.0, 100.0]);
    let (_ub, uv) = Buf::contiguous(DType::U8, &[3]);
    assert!(linspace(&uv, Scalar::Int(0), Scalar::Int(300), None).is_err());
}

#[test]
fn masked_scatter_fills_set_positions_in_order() {
    let mut rng = Rng(3);
    let flags: Vec<f64> = (0..24).map(|_| (rng.next() % 2) as f64).collect();
    let (_mb, mv) = buf_of(DType::Bool, &flags, &[4, 6]);
    let (_sb, sv) = buf_of(DType::F32, &(0..30).map(|i| i as f64 + 100.0).collect::<Vec<_>>(), &[30]);
    // self transposed: row-major order of the [4, 6] view walks memory column-wise
    let mut db = Buf::new(DType::F32, 24);
    let dv = db.view(&[4, 6], &[1, 4], 0);
    masked_scatter(&dv, &mv, &sv).unwrap();
    let got = db.f64s();
    let mut k = 0.0;
    for (i, &f) in flags.iter().enumerate() {
        let (r, c) = (i / 6, i % 6);
        let want = if f != 0.0 { k += 1.0; 99.0 + k } else { 0.0 };
        assert_eq!(got[c * 4 + r], want);
    }
    // too few source elements: an error and nothing written
    let (_tb, tv) = buf_of(DType::F32, &[1.0], &[1]);
    let mut eb = Buf::new(DType::F32, 24);
    let ev = eb.view(&[4, 6], &[6, 1], 0);
    assert!(masked_scatter(&ev, &mv, &tv).is_err());
    assert!(eb.f64s().iter().all(|&v| v == 0.0));
}
