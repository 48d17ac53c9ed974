//! addcmul, addcdiv and lerp against f64 references, with broadcast and strided operands.

mod common;

use common::*;
use npu_kernels::{ternary, DType, Scalar, TernaryOp, Third, View};

fn filled(dt: DType, sizes: &[i64], strides: &[i64], seed: u64, positive: bool) -> (Buf, View, Vec<f64>) {
    let len = sizes.iter().zip(strides).map(|(&n, &s)| (n - 1) * s).sum::<i64>() + 1;
    let mut b = Buf::new(dt, len as usize);
    let mut rng = Rng(seed);
    for i in 0..len {
        let r = (rng.next() % 41) as f64 / 4.0 - 5.0;
        let v = if positive { r.abs() + 0.5 } else { r };
        let v = if dt.is_floating() { V::F(v) } else { V::I(v as i64) };
        b.set(i, &write(dt, v));
    }
    let view = b.view(sizes, strides, 0);
    let vals = indices(sizes).iter().map(|i| read(dt, b.elem(offset_of(i, strides))).real()).collect();
    (b, view, vals)
}

fn tolerance(dt: DType) -> f64 {
    match dt {
        DType::F64 => 1e-12,
        DType::F32 => 1e-6,
        DType::F16 => 1e-3,
        DType::BF16 => 8e-3,
        _ => 0.0,
    }
}

#[test]
fn ternary_ops_match_reference() {
    let sizes = [3i64, 4];
    for dt in [DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I16] {
        for op in [TernaryOp::Addcmul, TernaryOp::Addcdiv, TernaryOp::Lerp] {
            if !dt.is_floating() && op != TernaryOp::Addcmul {
                continue;
            }
            for scalar_weight in [false, true] {
                if scalar_weight && op != TernaryOp::Lerp {
                    continue;
                }
                let (_a, av, a) = filled(dt, &sizes, &[1, 3], 1, false); // transposed
                let (_b, bv, b) = filled(dt, &sizes, &[0, 1], 2, false); // broadcast rows
                let (_c, cv, c) = if op == TernaryOp::Lerp {
                    let (buf, v, vals) = filled(dt, &sizes, &[4, 1], 3, true);
                    (buf, v, vals.iter().map(|x| (x - 0.5) / 11.0).collect::<Vec<_>>())
                } else {
                    filled(dt, &sizes, &[4, 1], 3, true)
                };
                // lerp weights in [0, 1): refill c with them
                let mut cb = _c;
                if op == TernaryOp::Lerp {
                    for (i, &w) in c.iter().enumerate() {
                        cb.set(i as i64, &write(dt, V::F(w)));
                    }
                }
                let c: Vec<f64> = (0..c.len()).map(|i| read(dt, cb.elem(i as i64)).real()).collect();
                let value = if dt.is_floating() { 0.75 } else { 3.0 };
                let weight = 0.625;
                let (d, dv) = Buf::contiguous(dt, &sizes);
                let third = if scalar_weight { Third::Scalar(Scalar::Float(weight)) } else { Third::View(&cv) };
                let vs = if dt.is_floating() { Scalar::Float(value) } else { Scalar::Int(value as i64) };
                ternary(op, &dv, &av, &bv, third, vs, dt).unwrap();
                for i in 0..12 {
                    let w = if scalar_weight { weight } else { c[i] };
                    let want = match op {
                        TernaryOp::Addcmul => a[i] + value * b[i] * c[i],
                        TernaryOp::Addcdiv => a[i] + value * b[i] / c[i],
                        TernaryOp::Lerp => a[i] + w * (b[i] - a[i]),
                    };
                    let got = d.f64s()[i];
                    let t = tolerance(dt);
                    assert!((got - want).abs() <= t * (1.0 + want.abs()), "{op:?} {dt:?} #{i}: got {got}, want {want}");
                }
            }
        }
    }
    let (_a, av) = Buf::contiguous(DType::I32, &[2]);
    let e = ternary(TernaryOp::Addcdiv, &av, &av, &av, Third::View(&av), Scalar::Int(1), DType::I32).unwrap_err();
    assert!(e.0.contains("Integer division with addcdiv"));
}
