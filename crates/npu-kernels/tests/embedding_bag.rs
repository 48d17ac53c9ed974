//! embedding_bag against a naive per-bag loop; its weight gradient against the adjoint
//! identity (the op is linear in the weight for sum and mean) and the per-sample-weight
//! gradient against its definition.

mod common;

use common::*;
use npu_kernels::{embedding_bag, embedding_bag_backward, embedding_bag_psw_backward, BagMode, BagSpec, DType, View};

const IDX: [i64; 10] = [1, 2, 4, 5, 4, 3, 2, 0, 9, 2];
const OFF: [i64; 5] = [0, 2, 2, 5, 9];
const D: usize = 3;

fn ints(vals: &[i64]) -> (Buf, View) {
    let (mut b, v) = Buf::contiguous(DType::I64, &[vals.len() as i64]);
    for (i, &x) in vals.iter().enumerate() {
        b.set(i as i64, &write(DType::I64, V::I(x)));
    }
    (b, v)
}

fn floats(sizes: &[i64], seed: u64) -> (Buf, View) {
    let (mut b, v) = Buf::contiguous(DType::F64, sizes);
    let mut rng = Rng(seed);
    for i in 0..b.len as i64 {
        b.set(i, &write(DType::F64, V::F((rng.next() % 2001) as f64 / 100.0 - 10.0)));
    }
    (b, v)
}

fn bag_of(k: usize) -> usize {
    OFF.iter().rposition(|&o| o as usize <= k).unwrap()
}

#[test]
fn forward_and_gradients() {
    let (_ib, iv) = ints(&IDX);
    let (_ob, ov) = ints(&OFF);
    let (wb, wv) = floats(&[10, D as i64], 1);
    let (pb, pv) = floats(&[10], 2);
    let w = wb.f64s();
    for mode in [BagMode::Sum, BagMode::Mean, BagMode::Max] {
        for pad in [None, Some(2)] {
            for weighted in [false, true] {
                if weighted && mode != BagMode::Sum {
                    continue;
                }
                let nb = OFF.len();
                let (yb, yv) = Buf::contiguous(DType::F64, &[nb as i64, D as i64]);
                let (o2b_b, o2b) = Buf::contiguous(DType::I64, &[10]);
                let (sb, sv) = Buf::contiguous(DType::I64, &[nb as i64]);
                let max_sizes: Vec<i64> = if mode == BagMode::Max { vec![nb as i64, D as i64] } else { vec![nb as i64] };
                let (mb, mv) = Buf::contiguous(DType::I64, &max_sizes);
                let spec = BagSpec { mode, padding_idx: pad, include_last_offset: false };
                embedding_bag(&yv, &o2b, &sv, &mv, &wv, &iv, &ov, weighted.then_some(&pv), spec).unwrap();
                let (y, p) = (yb.f64s(), pb.f64s());
                assert_eq!(o2b_b.f64s(), (0..10).map(|k| bag_of(k) as f64).collect::<Vec<_>>());
                for b in 0..nb {
                    let end = if b + 1 < nb { OFF[b + 1] as usize } else { IDX.len() };
                    let members: Vec<usize> = (OFF[b] as usize..end).filter(|&k| Some(IDX[k]) != pad).collect();
                    for d in 0..D {
                        let vals: Vec<f64> = members.iter().map(|&k| w[IDX[k] as usize * D + d] * if weighted { p[k] } else { 1.0 }).collect();
                        let want = match mode {
                            BagMode::Sum => vals.iter().sum(),
                            _ if vals.is_empty() => 0.0, // an empty bag gives zeros
                            BagMode::Mean => vals.iter().sum::<f64>() / vals.len() as f64,
                            BagMode::Max => vals.iter().copied().fold(f64::MIN, f64::max),
                        };
                        assert!((y[b * D + d] - want).abs() < 1e-12, "{mode:?} pad {pad:?} bag {b}: {} vs {want}", y[b * D + d]);
                    }
                }
                // gradients
                let (gb, gv) = floats(&[nb as i64, D as i64], 3);
                let (gwb, gwv) = Buf::contiguous(DType::F64, &[10, D as i64]);
                embedding_bag_backward(&gwv, &gv, &iv, &o2b, &sv, &mv, weighted.then_some(&pv), mode, pad, false).unwrap();
                let (g, gw) = (gb.f64s(), gwb.f64s());
                if mode == BagMode::Max {
                    let (am, sizes) = (mb.f64s(), sb.f64s());
                    let mut want = vec![0.0; 10 * D];
                    for b in 0..nb {
                        for d in 0..D {
                            if sizes[b] > 0.0 {
                                want[am[b * D + d] as usize * D + d] += g[b * D + d];
                            }
                        }
                    }
                    assert_eq!(gw, want);
                } else {
                    let lhs: f64 = y.iter().zip(&g).map(|(a, b)| a * b).sum();
                    let rhs: f64 = w.iter().zip(&gw).map(|(a, b)| a * b).sum();
                    assert!((lhs - rhs).abs() < 1e-9, "{mode:?} pad {pad:?}: {lhs} vs {rhs}");
                }
                if weighted {
                    let (gpb, gpv) = Buf::contiguous(DType::F64, &[10]);
                    embedding_bag_psw_backward(&gpv, &gv, &wv, &iv, &ov, pad, false).unwrap();
                    for (k, got) in gpb.f64s().into_iter().enumerate() {
                        let want = if Some(IDX[k]) == pad { 0.0 } else { (0..D).map(|d| w[IDX[k] as usize * D + d] * g[bag_of(k) * D + d]).sum() };
                        assert!((got - want).abs() < 1e-12);
                    }
                }
            }
        }
    }
}

#[test]
fn bad_indices_and_offsets_are_errors() {
    let (_wb, wv) = floats(&[10, D as i64], 1);
    let (_yb, yv) = Buf::contiguous(DType::F64, &[1, D as i64]);
    let (_o2b, o2b) = Buf::contiguous(DType::I64, &[2]);
    let (_sb, sv) = Buf::contiguous(DType::I64, &[1]);
    let (_mb, mv) = Buf::contiguous(DType::I64, &[1]);
    let spec = BagSpec { mode: BagMode::Sum, padding_idx: None, include_last_offset: false };
    let (_ob, ov) = ints(&[0]);
    let (_ib, iv) = ints(&[1, 10]);
    assert!(embedding_bag(&yv, &o2b, &sv, &mv, &wv, &iv, &ov, None, spec).is_err());
    let (_jb, jv) = ints(&[1, 2]);
    let (_pb, pv) = ints(&[1]);
    assert!(embedding_bag(&yv, &o2b, &sv, &mv, &wv, &jv, &pv, None, spec).is_err());
}
