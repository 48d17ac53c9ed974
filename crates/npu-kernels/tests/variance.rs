//! var / std / mean against a naive f64 reference.

mod common;

use common::*;
use npu_kernels::{variance, DType};

#[test]
fn variance_matches_reference() {
    let sizes = [3i64, 4, 5];
    for dt in [DType::F32, DType::F64, DType::BF16] {
        for dims in [vec![], vec![1], vec![0, 2], vec![2], vec![1, 2]] {
            for correction in [0.0, 1.0, 2.5] {
                for std in [false, true] {
                    let (mut xb, _) = Buf::contiguous(dt, &sizes);
                    let mut r = Rng(7);
                    let x: Vec<f64> = (0..60).map(|_| ((r.next() % 1000) as f64 - 500.0) / 64.0).collect();
                    for (i, &v) in x.iter().enumerate() {
                        xb.set(i as i64, &write(dt, V::F(v)));
                    }
                    let x: Vec<f64> = xb.f64s();
                    // transposed view of the same data: dims 0 and 2 swapped in memory order
                    let xv = xb.view(&sizes, &contiguous_strides(&sizes), 0);
                    let osz: Vec<i64> = sizes.iter().enumerate().map(|(d, &n)| if dims.is_empty() || dims.contains(&d) { 1 } else { n }).collect();
                    let (db, dv) = Buf::contiguous(dt, &osz);
                    let (mb, mv) = Buf::contiguous(dt, &osz);
                    variance(&dv, Some(&mv), &xv, &dims, correction, std).unwrap();
                    for o in indices(&osz) {
                        let vals: Vec<f64> = indices(&sizes)
                            .into_iter()
                            .filter(|i| (0..3).all(|d| osz[d] == 1 || i[d] == o[d]))
                            .map(|i| x[offset_of(&i, &contiguous_strides(&sizes)) as usize])
                            .collect();
                        let n = vals.len() as f64;
                        let mean = vals.iter().sum::<f64>() / n;
                        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - correction).max(0.0);
                        let want = if std { var.sqrt() } else { var };
                        let k = offset_of(&o, &contiguous_strides(&osz)) as usize;
                        let tol = if dt == DType::BF16 { 1e-2 } else { 1e-6 };
                        let (g, m) = (db.f64s()[k], mb.f64s()[k]);
                        assert!((g - want).abs() <= tol * (1.0 + want.abs()), "{dt:?} {dims:?} c={correction} std={std}: {g} vs {want}");
                        assert!((m - mean).abs() <= tol * (1.0 + mean.abs()), "mean {m} vs {mean}");
                    }
                }
            }
        }
    }
}

/// Rows longer than the kernel's parallel chunk (with a partial last chunk), reduced whole and
/// per row: the chunks' sums must add up in order.
#[test]
fn variance_of_long_rows() {
    let n = 70_001usize;
    let sizes = [2i64, n as i64];
    let (mut xb, xv) = Buf::contiguous(DType::F32, &sizes);
    let mut r = Rng(11);
    for i in 0..2 * n {
        xb.set(i as i64, &write(DType::F32, V::F(((r.next() % 1000) as f64 - 300.0) / 64.0)));
    }
    let x = xb.f64s();
    for dims in [vec![], vec![1]] {
        let osz: Vec<i64> = if dims.is_empty() { vec![1, 1] } else { vec![2, 1] };
        let (db, dv) = Buf::contiguous(DType::F32, &osz);
        let (mb, mv) = Buf::contiguous(DType::F32, &osz);
        variance(&dv, Some(&mv), &xv, &dims, 1.0, false).unwrap();
        let groups: Vec<&[f64]> = if dims.is_empty() { vec![&x[..]] } else { x.chunks(n).collect() };
        for (k, vals) in groups.iter().enumerate() {
            let len = vals.len() as f64;
            let mean = vals.iter().sum::<f64>() / len;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (len - 1.0);
            let (g, m) = (db.f64s()[k], mb.f64s()[k]);
            assert!((g - var).abs() <= 1e-6 * var, "{dims:?} row {k}: var {g} vs {var}");
            assert!((m - mean).abs() <= 1e-6 * (1.0 + mean.abs()), "{dims:?} row {k}: mean {m} vs {mean}");
        }
    }
}
