//! Reflection and replication padding (and their backward) against naive index loops.

mod common;

use common::*;
use npu_kernels::{pad, pad_backward, DType, PadMode};

/// The input index output index `o` reads along a dim of size `n` padded on the left by `l`.
fn source(o: i64, l: i64, n: i64, mode: PadMode) -> i64 {
    let i = o - l;
    match mode {
        PadMode::Reflect => if i < 0 { -i } else if i >= n { 2 * (n - 1) - i } else { i },
        PadMode::Replicate => i.clamp(0, n - 1),
    }
}

#[test]
fn pad_and_backward_match_loops() {
    for mode in [PadMode::Reflect, PadMode::Replicate] {
        for (sizes, pads) in [(vec![2i64, 7], vec![2i64, 3]), (vec![2, 6], vec![-1, 2]), (vec![1, 4, 5], vec![-2, 1, 1, -1]), (vec![2, 4, 5], vec![1, 2, 3, 0]), (vec![1, 3, 4, 5], vec![1, 1, 2, 0, 0, 2])] {
            let k = pads.len() / 2;
            let r = sizes.len();
            let mut out_sizes = sizes.clone();
            for j in 0..k {
                out_sizes[r - 1 - j] += pads[2 * j] + pads[2 * j + 1];
            }
            let (mut xb, xv) = Buf::contiguous(DType::F64, &sizes);
            for i in 0..xb.len {
                xb.set(i as i64, &write(DType::F64, V::F(i as f64 * 0.5 - 3.0)));
            }
            let (ob, ov) = Buf::contiguous(DType::F64, &out_sizes);
            pad(&ov, &xv, &pads, mode).unwrap();
            let x = xb.f64s();
            let (gb, gv) = Buf::contiguous(DType::F64, &sizes);
            let (mut yb, yv) = Buf::contiguous(DType::F64, &out_sizes);
            for i in 0..yb.len {
                yb.set(i as i64, &write(DType::F64, V::F((i % 7) as f64 - 2.0)));
            }
            pad_backward(&gv, &yv, &pads, mode).unwrap();
            let (mut want_g, y) = (vec![0.0; x.len()], yb.f64s());
            for (flat, idx) in indices(&out_sizes).iter().enumerate() {
                let mut src = idx.clone();
                for j in 0..k {
                    let d = r - 1 - j;
                    src[d] = source(idx[d], pads[2 * j], sizes[d], mode);
                }
                let s = offset_of(&src, &contiguous_strides(&sizes)) as usize;
                assert_eq!(ob.f64s()[flat], x[s], "{mode:?} {sizes:?} {pads:?} at {idx:?}");
                want_g[s] += y[flat];
            }
            assert_eq!(gb.f64s(), want_g, "{mode:?} {sizes:?} {pads:?} backward");
        }
    }
    // reflect padding must be smaller than the dim
    let (_b, v) = Buf::contiguous(DType::F32, &[1, 3]);
    let (_o, o) = Buf::contiguous(DType::F32, &[1, 9]);
    assert!(pad(&o, &v, &[3, 3], PadMode::Reflect).is_err());
}
