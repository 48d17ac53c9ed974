//! Pooling kernels against naive references written from the definitions.

mod common;

use common::*;
use npu_kernels::{adaptive_avg_pool, adaptive_max_pool, avg_pool, avg_pool_backward, max_pool, max_pool_backward, DType, PoolParams, View};
use proptest::prelude::*;

fn tensor(sizes: &[i64], seed: u64) -> (Buf, View, Vec<f64>) {
    let (mut b, v) = Buf::contiguous(DType::F64, sizes);
    let mut r = Rng(seed);
    let n = v.numel();
    // distinct values, so the maximum is unique
    let mut vals: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 3.0).collect();
    for i in (1..n).rev() {
        vals.swap(i, (r.next() % (i as u64 + 1)) as usize);
    }
    for (i, &x) in vals.iter().enumerate() {
        b.set(i as i64, &write(DType::F64, V::F(x)));
    }
    (b, v, vals)
}

/// Input positions (flat) of output position `o` (multi-index), and the padded window size.
fn window(inp: &[i64], o: &[i64], p: &PoolParams) -> (Vec<usize>, i64) {
    let nd = inp.len();
    let mut out = vec![];
    let mut padded = 1;
    for d in 0..nd {
        let start = o[d] * p.stride[d] - p.padding[d];
        let end = (start + (p.kernel[d] - 1) * p.dilation[d] + 1).min(inp[d] + p.padding[d]);
        padded *= end - start;
    }
    for k in indices(&p.kernel) {
        let pos: Vec<i64> = (0..nd).map(|d| o[d] * p.stride[d] - p.padding[d] + k[d] * p.dilation[d]).collect();
        if pos.iter().zip(inp).all(|(&x, &n)| x >= 0 && x < n) {
            out.push(offset_of(&pos, &contiguous_strides(inp)) as usize);
        }
    }
    (out, padded)
}

fn params() -> impl Strategy<Value = (Vec<i64>, PoolParams)> {
    (1usize..=3).prop_flat_map(|nd| {
        (
            prop::collection::vec(2i64..9, nd),
            prop::collection::vec(1i64..4, nd),
            prop::collection::vec(1i64..4, nd),
            prop::collection::vec(0i64..2, nd),
            prop::collection::vec(1i64..3, nd),
            any::<bool>(),
        )
            .prop_map(|(inp, kernel, stride, padding, dilation, ceil_mode)| {
                let padding = padding.iter().zip(&kernel).map(|(&p, &k)| p.min(k / 2)).collect();
                (inp, PoolParams { kernel, stride, padding, dilation, ceil_mode })
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn pooling_matches_reference((inp, p) in params(), planes in 1i64..3, include_pad in any::<bool>(), seed in any::<u64>()) {
        let osp = p.output_size(&inp);
        prop_assume!(osp.iter().all(|&o| o > 0));
        let sizes: Vec<i64> = std::iter::once(planes).chain(inp.clone()).collect();
        let osizes: Vec<i64> = std::iter::once(planes).chain(osp.clone()).collect();
        let (_x, xv, x) = tensor(&sizes, seed);
        let (il, ol) = (inp.iter().product::<i64>() as usize, osp.iter().product::<i64>() as usize);
        // max
        let (yb, yv) = Buf::contiguous(DType::F64, &osizes);
        let (ib, iv) = Buf::contiguous(DType::I64, &osizes);
        max_pool(&yv, &iv, &xv, &p).unwrap();
        let (mut want_y, mut want_i) = (vec![], vec![]);
        for pl in 0..planes as usize {
            for o in indices(&osp) {
                let (w, _) = window(&inp, &o, &p);
                let best = w.iter().copied().max_by(|&a, &b| x[pl * il + a].partial_cmp(&x[pl * il + b]).unwrap()).unwrap();
                want_y.push(x[pl * il + best]);
                want_i.push(best as f64);
            }
        }
        prop_assert_eq!(yb.f64s(), want_y);
        prop_assert_eq!(ib.f64s(), want_i.clone());
        // max backward: scatter-add at the indices
        let (_g, gv, g) = tensor(&osizes, seed + 1);
        let (gib, giv) = Buf::contiguous(DType::F64, &sizes);
        max_pool_backward(&giv, &gv, &iv, inp.len()).unwrap();
        let mut want = vec![0.0; planes as usize * il];
        for pl in 0..planes as usize {
            for o in 0..ol {
                want[pl * il + want_i[pl * ol + o] as usize] += g[pl * ol + o];
            }
        }
        prop_assert_eq!(gib.f64s(), want);
        // average (no dilation)
        let p = PoolParams { dilation: vec![1; inp.len()], ..p };
        let osp = p.output_size(&inp);
        prop_assume!(osp.iter().all(|&o| o > 0));
        let osizes: Vec<i64> = std::iter::once(planes).chain(osp.clone()).collect();
        let ol = osp.iter().product::<i64>() as usize;
        let (ab, av) = Buf::contiguous(DType::F64, &osizes);
        avg_pool(&av, &xv, &p, include_pad, None).unwrap();
        let (_g, gv, g) = tensor(&osizes, seed + 2);
        let (gib, giv) = Buf::contiguous(DType::F64, &sizes);
        avg_pool_backward(&giv, &gv, &p, include_pad, None).unwrap();
        let (mut want, mut want_g) = (vec![], vec![0.0; planes as usize * il]);
        for pl in 0..planes as usize {
            for (k, o) in indices(&osp).iter().enumerate() {
                let (w, padded) = window(&inp, o, &p);
                let div = if include_pad { padded as f64 } else { w.len() as f64 };
                want.push(w.iter().map(|&i| x[pl * il + i]).sum::<f64>() / div);
                for &i in &w {
                    want_g[pl * il + i] += g[pl * ol + k] / div;
                }
            }
        }
        for (a, b) in ab.f64s().iter().zip(&want) {
            prop_assert!((a - b).abs() < 1e-12);
        }
        for (a, b) in gib.f64s().iter().zip(&want_g) {
            prop_assert!((a - b).abs() < 1e-12);
        }
    }
}

#[test]
fn adaptive_average_matches_reference() {
    let (inp, outp) = ([7i64, 5], [3i64, 2]);
    let (_x, xv, x) = tensor(&[2, 7, 5], 3);
    let (yb, yv) = Buf::contiguous(DType::F64, &[2, 3, 2]);
    adaptive_avg_pool(&yv, &xv, 2, false).unwrap();
    let mut want = vec![];
    for pl in 0..2usize {
        for oy in 0..outp[0] {
            for ox in 0..outp[1] {
                let (y0, y1) = (oy * inp[0] / outp[0], ((oy + 1) * inp[0] + outp[0] - 1) / outp[0]);
                let (x0, x1) = (ox * inp[1] / outp[1], ((ox + 1) * inp[1] + outp[1] - 1) / outp[1]);
                let mut s = 0.0;
                for y in y0..y1 {
                    for xx in x0..x1 {
                        s += x[pl * 35 + (y * 5 + xx) as usize];
                    }
                }
                want.push(s / ((y1 - y0) * (x1 - x0)) as f64);
            }
        }
    }
    for (a, b) in yb.f64s().iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // backward of the mean: each input gets g / window size of every window it is in
    let (gb, gv) = Buf::contiguous(DType::F64, &[2, 7, 5]);
    adaptive_avg_pool(&yv, &gv, 2, true).unwrap();
    let total: f64 = gb.f64s().iter().sum();
    let want_total: f64 = yb.f64s().iter().sum();
    assert!((total - want_total).abs() < 1e-9, "the gradient sums to the sum of grad_output");
}

#[test]
fn adaptive_max_matches_reference() {
    let (inp, outp) = ([7i64, 5], [3i64, 2]);
    let (_x, xv, x) = tensor(&[2, 7, 5], 4);
    let (yb, yv) = Buf::contiguous(DType::F64, &[2, 3, 2]);
    let (ib, iv) = Buf::contiguous(DType::I64, &[2, 3, 2]);
    adaptive_max_pool(&yv, &iv, &xv, 2).unwrap();
    let (mut want, mut want_i) = (vec![], vec![]);
    for pl in 0..2usize {
        for oy in 0..outp[0] {
            for ox in 0..outp[1] {
                let (y0, y1) = (oy * inp[0] / outp[0], ((oy + 1) * inp[0] + outp[0] - 1) / outp[0]);
                let (x0, x1) = (ox * inp[1] / outp[1], ((ox + 1) * inp[1] + outp[1] - 1) / outp[1]);
                let cells = (y0..y1).flat_map(|y| (x0..x1).map(move |xx| (y * 5 + xx) as usize));
                // the first maximum of the window
                let best = cells.fold(None, |b: Option<usize>, i| match b {
                    Some(j) if x[pl * 35 + j] >= x[pl * 35 + i] => Some(j),
                    _ => Some(i),
                });
                want.push(x[pl * 35 + best.unwrap()]);
                want_i.push(best.unwrap() as f64);
            }
        }
    }
    assert_eq!(yb.f64s(), want);
    assert_eq!(ib.f64s(), want_i);
}

#[test]
fn integer_max_and_average_pooling_are_exact() {
    // i64 values beyond 2^53 keep every bit
    let big = 1i64 << 60;
    let vals = [big + 1, big + 3, big + 2, 5, -7, big, 9, 8];
    let (mut xb, xv) = Buf::contiguous(DType::I64, &[1, 2, 4]);
    for (i, &v) in vals.iter().enumerate() {
        xb.set(i as i64, &write(DType::I64, V::I(v)));
    }
    let p = PoolParams { kernel: vec![1, 2], stride: vec![1, 2], padding: vec![0, 0], dilation: vec![1, 1], ceil_mode: false };
    let (yb, yv) = Buf::contiguous(DType::I64, &[1, 1, 2]);
    let (ib, iv) = Buf::contiguous(DType::I64, &[1, 1, 2]);
    let x4 = View { sizes: vec![1, 1, 2, 4], strides: vec![8, 8, 4, 1], ..xv.clone() };
    let p2 = PoolParams { kernel: vec![2, 4], stride: vec![2, 4], ..p.clone() };
    let y4 = View { sizes: vec![1, 1, 1, 1], strides: vec![1, 1, 1, 1], ..yv.clone() };
    let i4 = View { sizes: vec![1, 1, 1, 1], strides: vec![1, 1, 1, 1], ..iv.clone() };
    max_pool(&y4, &i4, &x4, &p2).unwrap();
    let got = i64::from_le_bytes(yb.elem(0).try_into().unwrap());
    assert_eq!(got, big + 3);
    assert_eq!(i64::from_le_bytes(ib.elem(0).try_into().unwrap()), 1);
    // average of (-7, big) and (9, 8) over windows of 2: truncating division
    let xs = View { sizes: vec![1, 1, 4], strides: vec![8, 4, 1], ..xv.clone() };
    let xs = View { ptr: unsafe { xs.ptr.add(4 * 8) }, ..xs };
    let (ab, av) = Buf::contiguous(DType::I64, &[1, 1, 2]);
    let p1 = PoolParams { kernel: vec![2], stride: vec![2], padding: vec![0], dilation: vec![1], ceil_mode: false };
    avg_pool(&av, &xs, &p1, true, None).unwrap();
    let a: Vec<i64> = (0..2).map(|i| i64::from_le_bytes(ab.elem(i).try_into().unwrap())).collect();
    assert_eq!(a, vec![(big - 7) / 2, 8]);
}

/// The 2d max pooling without dilation has its own loop; with ties and NaNs (a NaN wins, a
/// later NaN wins again, ties keep the first), it equals the general path, reached by the
/// same pooling written in 3d with a leading window of 1.
#[test]
fn plain_2d_max_pooling_matches_the_general_path_with_ties_and_nans() {
    let mut r = Rng(7);
    for (h, w, k, s, pad, ceil_mode) in [(9, 11, 3, 2, 1, false), (8, 8, 2, 2, 0, true), (7, 10, 3, 1, 1, false), (10, 9, 3, 3, 1, true), (5, 13, 2, 3, 1, false)] {
        let (mut xb, xv) = Buf::contiguous(DType::F32, &[3, h, w]);
        for i in 0..3 * h * w {
            let v = [0.0, 1.0, 2.0, f32::NAN][(r.next() % 4) as usize];
            xb.set(i, &v.to_le_bytes());
        }
        let p2 = PoolParams { kernel: vec![k, k], stride: vec![s, s], padding: vec![pad, pad], dilation: vec![1, 1], ceil_mode };
        let p3 = PoolParams { kernel: vec![1, k, k], stride: vec![1, s, s], padding: vec![0, pad, pad], dilation: vec![1, 1, 1], ceil_mode };
        let osp = p2.output_size(&[h, w]);
        let (yb, yv) = Buf::contiguous(DType::F32, &[3, osp[0], osp[1]]);
        let (ib, iv) = Buf::contiguous(DType::I64, &[3, osp[0], osp[1]]);
        max_pool(&yv, &iv, &xv, &p2).unwrap();
        let x3 = View { sizes: vec![3, 1, h, w], strides: vec![h * w, h * w, w, 1], ..xv.clone() };
        let (yb3, yv3) = Buf::contiguous(DType::F32, &[3, 1, osp[0], osp[1]]);
        let (ib3, iv3) = Buf::contiguous(DType::I64, &[3, 1, osp[0], osp[1]]);
        max_pool(&yv3, &iv3, &x3, &p3).unwrap();
        assert_eq!(yb.bytes(), yb3.bytes(), "values {h}x{w} k{k} s{s} p{pad}");
        assert_eq!(ib.bytes(), ib3.bytes(), "indices {h}x{w} k{k} s{s} p{pad}");
    }
}
