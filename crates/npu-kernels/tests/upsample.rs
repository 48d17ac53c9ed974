//! Interpolation against textbook formulas evaluated point by point, and its backward against
//! the adjoint identity <up(x), g> = <x, up_backward(g)>.

mod common;

use common::*;
use npu_kernels::{upsample, upsample_backward, upsample_u8, DType, Interp};

/// The continuous source coordinate of output `o` (PyTorch's half-pixel or corner convention).
fn source(o: i64, n_in: i64, n_out: i64, align: bool) -> f64 {
    if align {
        if n_out > 1 { o as f64 * (n_in - 1) as f64 / (n_out - 1) as f64 } else { 0.0 }
    } else {
        (o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5
    }
}

/// The cubic convolution kernel with a = -0.75, as a function of distance.
fn keys(d: f64) -> f64 {
    let (a, d) = (-0.75, d.abs());
    if d <= 1.0 {
        (a + 2.0) * d.powi(3) - (a + 3.0) * d * d + 1.0
    } else if d < 2.0 {
        a * d.powi(3) - 5.0 * a * d * d + 8.0 * a * d - 4.0 * a
    } else {
        0.0
    }
}

/// (input index, weight) pairs of output `o` along one dim.
fn weights(mode: Interp, o: i64, n_in: i64, n_out: i64) -> Vec<(i64, f64)> {
    match mode {
        Interp::Nearest => vec![(((o as f32 * (n_in as f32 / n_out as f32)).floor() as i64).min(n_in - 1), 1.0)],
        Interp::NearestExact => {
            let s = (n_in as f32 / n_out as f32) as f64;
            let i = (((o as f64 + 0.5) * s) as f32).floor() as i64;
            vec![(i.min(n_in - 1), 1.0)]
        }
        Interp::Linear { align_corners } => {
            let s = source(o, n_in, n_out, align_corners).max(0.0);
            let i0 = (s.floor() as i64).min(n_in - 1);
            let t = s - i0 as f64;
            vec![(i0, 1.0 - t), ((i0 + 1).min(n_in - 1), t)]
        }
        Interp::Cubic { align_corners } => {
            let s = source(o, n_in, n_out, align_corners);
            let i = s.floor() as i64;
            (i - 1..=i + 2).map(|j| (j.clamp(0, n_in - 1), keys(s - j as f64))).collect()
        }
    }
}

fn fill(b: &mut Buf, seed: u64) {
    let mut rng = Rng(seed);
    for i in 0..b.len as i64 {
        let v = (rng.next() % 2001) as f64 / 100.0 - 10.0;
        b.set(i, &write(b.dtype, V::F(v)));
    }
}

/// Planes of 2 × spatial sizes, for every mode and 1 to 3 interpolated dims.
#[test]
fn forward_matches_formulas_and_backward_is_the_adjoint() {
    let modes = [
        Interp::Nearest,
        Interp::NearestExact,
        Interp::Linear { align_corners: false },
        Interp::Linear { align_corners: true },
        Interp::Cubic { align_corners: false },
        Interp::Cubic { align_corners: true },
    ];
    let cases: [(&[i64], &[i64]); 5] = [(&[5], &[11]), (&[7], &[3]), (&[4, 6], &[9, 4]), (&[3, 3], &[6, 6]), (&[2, 3, 4], &[3, 5, 2])];
    for mode in modes {
        for (inp, out) in cases {
            if matches!(mode, Interp::Cubic { .. }) && inp.len() != 2 {
                continue; // PyTorch has bicubic only
            }
            let nd = inp.len();
            let sizes: Vec<i64> = [2, 3].iter().chain(inp).copied().collect();
            let out_sizes: Vec<i64> = [2, 3].iter().chain(out).copied().collect();
            let (mut xb, xv) = Buf::contiguous(DType::F64, &sizes);
            fill(&mut xb, 1);
            let (yb, yv) = Buf::contiguous(DType::F64, &out_sizes);
            upsample(&yv, &xv, mode, &vec![None; nd]).unwrap();
            let (x, y) = (xb.f64s(), yb.f64s());
            let plane_in: i64 = inp.iter().product();
            for (k, idx) in indices(&out_sizes).iter().enumerate() {
                // sum over the product of the per-dim taps
                let mut terms = vec![(0i64, 1.0f64)];
                for d in 0..nd {
                    let w = weights(mode, idx[2 + d], inp[d], out[d]);
                    terms = terms.iter().flat_map(|&(off, a)| w.iter().map(move |&(i, b)| (off * inp[d] + i, a * b))).collect();
                }
                let plane = idx[0] * 3 + idx[1];
                let want: f64 = terms.iter().map(|&(off, w)| w * x[(plane * plane_in + off) as usize]).sum();
                assert!((y[k] - want).abs() < 1e-9, "{mode:?} {inp:?}->{out:?} at {idx:?}: {} vs {want}", y[k]);
            }
            // adjoint: sum(up(x) * g) == sum(x * up_backward(g))
            let (mut gb, gv) = Buf::contiguous(DType::F64, &out_sizes);
            fill(&mut gb, 2);
            let (gib, giv) = Buf::contiguous(DType::F64, &sizes);
            upsample_backward(&giv, &gv, mode, &vec![None; nd]).unwrap();
            let lhs: f64 = y.iter().zip(gb.f64s()).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(gib.f64s()).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-8 * lhs.abs().max(1.0), "{mode:?} {inp:?}->{out:?}: {lhs} vs {rhs}");
        }
    }
}

/// Strided (channels-last) f32 input and a given scale factor: the scale, not the size ratio,
/// sets the source coordinates.
#[test]
fn strided_input_and_explicit_scale() {
    let (n, c, h, w) = (1i64, 3i64, 4i64, 5i64);
    let mut xb = Buf::new(DType::F32, (n * c * h * w) as usize);
    fill(&mut xb, 3);
    let cl = xb.view(&[n, c, h, w], &[h * w * c, 1, w * c, c], 0);
    let (cb, cv) = Buf::contiguous(DType::F32, &[n, c, h, w]);
    npu_kernels::copy(&cv, &cl).unwrap();
    let (ab, av) = Buf::contiguous(DType::F32, &[n, c, 7, 9]);
    let (bb, bv) = Buf::contiguous(DType::F32, &[n, c, 7, 9]);
    let mode = Interp::Linear { align_corners: false };
    upsample(&av, &cl, mode, &[Some(1.75), Some(1.8)]).unwrap();
    upsample(&bv, &cv, mode, &[Some(1.75), Some(1.8)]).unwrap();
    assert_eq!(ab.f64s(), bb.f64s());
    // with scale 1.75 along h, output row 1 samples (1.5 / 1.75 - 0.5) = 0.357...
    let (x, a) = (cb.f64s(), ab.f64s());
    let t = (1.5f64 / 1.75 - 0.5) as f32 as f64;
    let sw = ((0.5f64 / 1.8 - 0.5).max(0.0)) as f32 as f64;
    let want = (1.0 - t) * ((1.0 - sw) * x[0]) + t * ((1.0 - sw) * x[w as usize]);
    assert!((a[9] - want).abs() < 1e-5, "{} vs {want}", a[9]);
}

#[test]
fn bad_sizes_and_dtypes_are_errors() {
    let (_xb, xv) = Buf::contiguous(DType::F32, &[1, 1, 0, 4]);
    let (_yb, yv) = Buf::contiguous(DType::F32, &[1, 1, 3, 4]);
    assert!(upsample(&yv, &xv, Interp::Nearest, &[None, None]).is_err());
    let (_ib, iv) = Buf::contiguous(DType::I32, &[1, 1, 2, 2]);
    let (_jb, jv) = Buf::contiguous(DType::I32, &[1, 1, 4, 4]);
    assert!(upsample(&jv, &iv, Interp::Nearest, &[None, None]).is_err());
    let (_ub, uv) = Buf::contiguous(DType::U8, &[1, 1, 2, 2]);
    let (_vb, vv) = Buf::contiguous(DType::U8, &[1, 1, 4, 4]);
    assert!(upsample(&vv, &uv, Interp::Nearest, &[None, None]).is_ok());
    assert!(upsample(&vv, &uv, Interp::Linear { align_corners: false }, &[None, None]).is_err());
}

/// The uint8 fixed-point path rounds the float interpolation (weights to int16, sums to the
/// nearest byte, once per pass): within 1 of it per pass, and exact on a constant image.
#[test]
fn uint8_fixed_point_follows_the_float_path() {
    for cubic in [false, true] {
        for (inp, out, align) in [([5i64, 7], [9i64, 4], false), ([6, 6], [6, 13], true), ([8, 3], [3, 3], false)] {
            let sizes = [2i64, inp[0], inp[1]];
            let out_sizes = [2i64, out[0], out[1]];
            let (mut xb, xv) = Buf::contiguous(DType::U8, &sizes);
            let (mut fb, fv) = Buf::contiguous(DType::F64, &sizes);
            let mut rng = Rng(11);
            for i in 0..xb.len as i64 {
                let v = (rng.next() % 256) as i64;
                xb.set(i, &write(DType::U8, V::I(v)));
                fb.set(i, &write(DType::F64, V::F(v as f64)));
            }
            let (yb, yv) = Buf::contiguous(DType::U8, &out_sizes);
            upsample_u8(&yv, &xv, cubic, align, [None, None]).unwrap();
            let (gb, gv) = Buf::contiguous(DType::F64, &out_sizes);
            let mode = if cubic { Interp::Cubic { align_corners: align } } else { Interp::Linear { align_corners: align } };
            upsample(&gv, &fv, mode, &[None, None]).unwrap();
            for (a, b) in yb.f64s().iter().zip(gb.f64s()) {
                // two passes, each rounding to a byte (and cubic overshoot clamped)
                assert!((a - b.clamp(0.0, 255.0)).abs() <= 2.0, "{cubic} {inp:?}->{out:?}: {a} vs {b}");
            }
        }
    }
    let (mut cb, cv) = Buf::contiguous(DType::U8, &[1, 4, 5]);
    for i in 0..20 {
        cb.set(i, &write(DType::U8, V::I(77)));
    }
    let (ob, ov) = Buf::contiguous(DType::U8, &[1, 9, 3]);
    upsample_u8(&ov, &cv, true, false, [None, None]).unwrap();
    assert!(ob.f64s().iter().all(|&v| v == 77.0));
}
