//! sort and topk against a naive reference: a stable sort of each line's positions by value,
//! NaN above every number, -0.0 equal to 0.0.

mod common;

use common::*;
use npu_kernels::{sort, topk, DType};
use std::cmp::Ordering;

fn cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap(),
    }
}

/// Positions of `line` in stable order (descending keeps equal values in position order).
fn reference(line: &[f64], descending: bool) -> Vec<usize> {
    let mut p: Vec<usize> = (0..line.len()).collect();
    p.sort_by(|&a, &b| {
        let o = cmp(line[a], line[b]);
        if descending { o.reverse() } else { o }
    });
    p
}

/// Lines with many repeats, both zeros, infinities and NaN (floats), laid out as `[lines, n]`
/// and sorted along dim 1, and transposed (`[n, lines]`, sorted along dim 0).
#[test]
fn sort_and_topk_match_a_stable_sort() {
    let specials = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
    for dt in [DType::F32, DType::BF16, DType::F64, DType::I64, DType::U8] {
        for n in [1usize, 5, 33, 200] {
            let lines = 3usize;
            let mut rng = Rng(n as u64 * 31 + dt.size() as u64);
            let x: Vec<f64> = (0..lines * n)
                .map(|_| {
                    let r = rng.next();
                    if dt.is_floating() && r % 7 == 0 {
                        specials[(r / 7 % 5) as usize]
                    } else {
                        (r % 9) as f64 - if dt == DType::U8 { 0.0 } else { 4.0 }
                    }
                })
                .collect();
            for dim in [1usize, 0] {
                let sizes = if dim == 1 { [lines as i64, n as i64] } else { [n as i64, lines as i64] };
                // element (line l, position i) of the logical layout
                let at = |l: usize, i: usize| if dim == 1 { l * n + i } else { i * lines + l };
                let mut src = Buf::new(dt, lines * n);
                for l in 0..lines {
                    for i in 0..n {
                        src.set(at(l, i) as i64, &write(dt, V::F(x[l * n + i])));
                    }
                }
                let sv = src.view(&sizes, &contiguous_strides(&sizes), 0);
                let xs = |l: usize| -> Vec<f64> { (0..n).map(|i| read(dt, src.elem(at(l, i) as i64)).real()).collect() };
                for descending in [false, true] {
                    for k in [0, 1, n / 2, n] {
                        let mut out_sizes = sizes;
                        out_sizes[dim] = k as i64;
                        let (vb, vv) = Buf::contiguous(dt, &out_sizes);
                        let (ib, iv) = Buf::contiguous(DType::I64, &out_sizes);
                        if k == n {
                            sort(&vv, &iv, &sv, dim, descending).unwrap();
                        } else {
                            topk(&vv, &iv, &sv, k, dim, descending).unwrap();
                        }
                        let out_at = |l: usize, j: usize| if dim == 1 { l * k + j } else { j * lines + l };
                        for l in 0..lines {
                            let line = xs(l);
                            let want = &reference(&line, descending)[..k];
                            let got: Vec<usize> = (0..k).map(|j| read(DType::I64, ib.elem(out_at(l, j) as i64)).real() as usize).collect();
                            let what = format!("{dt:?} n {n} dim {dim} descending {descending} k {k} line {l}");
                            assert_eq!(got, want, "indices, {what}");
                            for (j, &p) in want.iter().enumerate() {
                                assert_eq!(vb.elem(out_at(l, j) as i64), src.elem(at(l, p) as i64), "value {j}, {what}");
                            }
                        }
                    }
                }
            }
        }
    }
}
