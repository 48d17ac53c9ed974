//! Convolution forward and backward against a naive reference that walks every term of the
//! definition: output[n, co, o] gets input[n, ci, o*s - p + k*d] * weight[co, ci, k] (and the
//! transposed convolution is its adjoint). Data are small multiples of 1/2, so every sum is
//! exact in f32 and results must be equal; f16/bf16 round once at the end on both sides.

mod common;

use common::*;
use npu_kernels::{conv_backward, conv_forward, with_sequential, ConvParams, DType, View};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Case {
    dt: DType,
    n: i64,
    g: i64,
    cx: i64,
    cy: i64,
    input_sp: Vec<i64>,
    kernel: Vec<i64>,
    p: ConvParams,
    bias: bool,
    perm: bool,
}

/// A tensor of `sizes` in a buffer, laid out in memory in `order` (a permutation of dims).
struct T {
    buf: Buf,
    view: View,
}

impl T {
    fn new(dt: DType, sizes: &[i64], order: Option<Vec<usize>>, seed: u64) -> T {
        let rank = sizes.len();
        let spec = Spec { perm: order.unwrap_or_else(|| (0..rank).collect()), ..Spec::contiguous(rank) };
        let (strides, len) = spec.layout(sizes);
        let mut buf = Buf::new(dt, len);
        let mut rng = Rng(seed);
        for i in 0..len as i64 {
            buf.set(i, &write(dt, V::F(((rng.next() % 5) as f64 - 2.0) / 2.0)));
        }
        let view = buf.view(sizes, &strides, 0);
        T { buf, view }
    }
    fn zeros(dt: DType, sizes: &[i64]) -> T {
        let (buf, view) = Buf::contiguous(dt, sizes);
        T { buf, view }
    }
    fn off(&self, idx: &[i64]) -> i64 {
        offset_of(idx, &self.view.strides)
    }
    fn get(&self, idx: &[i64]) -> f64 {
        read(self.view.dtype, self.buf.elem(self.off(idx))).real()
    }
    fn values(&self) -> Vec<f64> {
        indices(&self.view.sizes).iter().map(|i| self.get(i)).collect()
    }
}

/// Every term of the convolution: (image index of X, grid index of Y, weight index), with X
/// the input and Y the output of a regular convolution (swapped for a transposed one).
fn terms(c: &Case, img: &[i64], grid: &[i64]) -> Vec<(Vec<i64>, Vec<i64>, Vec<i64>)> {
    let mut out = vec![];
    let nd = img.len();
    for n in 0..c.n {
        for g in 0..c.g {
            for a in 0..c.cy {
                for b in 0..c.cx {
                    for k in indices(&c.kernel) {
                        for o in indices(grid) {
                            let pos: Vec<i64> = (0..nd)
                                .map(|d| o[d] * c.p.stride[d] - c.p.padding[d] + k[d] * c.p.dilation[d])
                                .collect();
                            if pos.iter().zip(img).any(|(&x, &n)| x < 0 || x >= n) {
                                continue;
                            }
                            let xi = [n, g * c.cx + b].into_iter().chain(pos).collect();
                            let yi = [n, g * c.cy + a].into_iter().chain(o.clone()).collect();
                            let wi = [g * c.cy + a, b].into_iter().chain(k.clone()).collect();
                            out.push((xi, yi, wi));
                        }
                    }
                }
            }
        }
    }
    out
}

/// `v` rounded to the dtype's precision (the kernels round once at the end).
fn round(dt: DType, v: f64) -> f64 {
    read(dt, &write(dt, V::F(v))).real()
}

fn assert_values(got: &T, want: &[f64], what: &str) {
    let dt = got.view.dtype;
    for (i, (g, w)) in got.values().iter().zip(want).enumerate() {
        assert!(*g == round(dt, *w), "{what}: element {i}: got {g}, want {w}");
    }
}

fn run(c: &Case) {
    let dt = c.dt;
    let nd = c.kernel.len();
    let (cin, cout) = if c.p.transposed { (c.g * c.cy, c.g * c.cx) } else { (c.g * c.cx, c.g * c.cy) };
    let in_sizes: Vec<i64> = [c.n, cin].into_iter().chain(c.input_sp.clone()).collect();
    let w_sizes: Vec<i64> = [c.g * c.cy, c.cx].into_iter().chain(c.kernel.clone()).collect();
    let out_sp = c.p.output_size(&c.input_sp, &c.kernel);
    let out_sizes: Vec<i64> = [c.n, cout].into_iter().chain(out_sp.clone()).collect();
    // channels-last style input when asked: a non-contiguous view
    let order = c.perm.then(|| [0].into_iter().chain(2..nd + 2).chain([1]).collect());
    let input = T::new(dt, &in_sizes, order, 1);
    let weight = T::new(dt, &w_sizes, None, 2);
    let bias = T::new(dt, &[cout], None, 3);
    let grad_out = T::new(dt, &out_sizes, None, 4);
    let (img, grid) = if c.p.transposed { (&out_sp, &c.input_sp) } else { (&c.input_sp, &out_sp) };
    let terms = terms(c, img, grid);

    // forward
    let out = T::zeros(dt, &out_sizes);
    let mut want = vec![0f64; out.view.numel()];
    let flat = |sizes: &[i64], idx: &[i64]| offset_of(idx, &contiguous_strides(sizes)) as usize;
    if c.bias {
        for idx in indices(&out_sizes) {
            want[flat(&out_sizes, &idx)] = bias.get(&[idx[1]]);
        }
    }
    for (xi, yi, wi) in &terms {
        let w = weight.get(wi);
        if c.p.transposed {
            want[flat(&out_sizes, xi)] += w * input.get(yi);
        } else {
            want[flat(&out_sizes, yi)] += w * input.get(xi);
        }
    }
    let what = format!("{c:?}");
    conv_forward(&out.view, &input.view, &weight.view, c.bias.then_some(&bias.view), &c.p)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_values(&out, &want, &format!("forward {what}"));

    // backward
    let gi = T::zeros(dt, &in_sizes);
    let gw = T::zeros(dt, &w_sizes);
    let gb = T::zeros(dt, &[cout]);
    let (mut want_gi, mut want_gw) = (vec![0f64; gi.view.numel()], vec![0f64; gw.view.numel()]);
    let mut want_gb = vec![0f64; cout as usize];
    for idx in indices(&out_sizes) {
        want_gb[idx[1] as usize] += grad_out.get(&idx);
    }
    for (xi, yi, wi) in &terms {
        let w = weight.get(wi);
        if c.p.transposed {
            // X is the output: grad_out indexes it; Y is the input
            want_gi[flat(&in_sizes, yi)] += w * grad_out.get(xi);
            want_gw[flat(&w_sizes, wi)] += input.get(yi) * grad_out.get(xi);
        } else {
            want_gi[flat(&in_sizes, xi)] += w * grad_out.get(yi);
            want_gw[flat(&w_sizes, wi)] += grad_out.get(yi) * input.get(xi);
        }
    }
    conv_backward(&grad_out.view, &input.view, &weight.view, &c.p, Some(&gi.view), Some(&gw.view), Some(&gb.view))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_values(&gi, &want_gi, &format!("grad_input {what}"));
    assert_values(&gw, &want_gw, &format!("grad_weight {what}"));
    assert_values(&gb, &want_gb, &format!("grad_bias {what}"));
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=3).prop_flat_map(|nd| {
        (
            (
                prop::sample::select(vec![DType::F32, DType::F64, DType::F16, DType::BF16]),
                0i64..3,
                1i64..=3,
                0i64..3,
                1i64..3,
            ),
            prop::collection::vec(1i64..7, nd),
            prop::collection::vec(1i64..4, nd),
            prop::collection::vec(1i64..4, nd),
            prop::collection::vec(0i64..3, nd),
            prop::collection::vec(1i64..3, nd),
            any::<bool>(),
            prop::collection::vec(0i64..3, nd),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|((dt, n, g, cx, cy), input_sp, kernel, stride, padding, dilation, transposed, op, bias, perm)| {
                // output padding must be smaller than stride or dilation
                let output_padding = if transposed {
                    op.iter().enumerate().map(|(i, &x)| x.min(stride[i].max(dilation[i]) - 1)).collect()
                } else {
                    vec![0; op.len()]
                };
                Case {
                    dt,
                    n,
                    g,
                    cx,
                    cy,
                    input_sp,
                    kernel,
                    p: ConvParams { stride, padding, dilation, transposed, output_padding, groups: g },
                    bias,
                    perm,
                }
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn convolution_matches_reference(c in case()) {
        let out_sp = c.p.output_size(&c.input_sp, &c.kernel);
        prop_assume!(out_sp.iter().all(|&s| s > 0));
        run(&c);
    }
}

/// ResNet-like shapes, large enough to take the threaded paths, equal to the sequential run.
#[test]
fn threaded_paths_match_reference_and_sequential_run() {
    let p = |s: i64, pad: i64, g: i64| ConvParams {
        stride: vec![s, s],
        padding: vec![pad, pad],
        dilation: vec![1, 1],
        transposed: false,
        output_padding: vec![0, 0],
        groups: g,
    };
    for (n, g, cx, cy, hw, k, params) in [
        (4, 1, 16, 32, 14, 3, p(1, 1, 1)),
        (1, 1, 32, 64, 12, 3, p(2, 1, 1)),
        (3, 1, 64, 32, 9, 1, p(1, 0, 1)),
        (2, 16, 1, 1, 10, 3, p(1, 1, 16)),
        // Winograd F(2x2, 3x3): odd outputs (edge tiles), paddings 0 and 2 (the input
        // gradient then pads 2 and 0), and images in two blocks (144 tiles each)
        (3, 1, 17, 16, 15, 3, p(1, 1, 1)),
        (2, 1, 16, 18, 15, 3, p(1, 0, 1)),
        (2, 1, 16, 18, 12, 3, p(1, 2, 1)),
        (5, 1, 16, 16, 24, 3, p(1, 1, 1)),
        // Winograd on small grids: 7x7 (a row and column of tiles half past the edge), and
        // 6x6 outputs of 8x8 inputs without padding
        (3, 1, 16, 20, 7, 3, p(1, 1, 1)),
        (2, 1, 18, 16, 8, 3, p(1, 0, 1)),
        // small grids: images are batched into products, in blocks of unequal sizes
        (5, 1, 4, 8, 6, 3, p(1, 1, 1)),
        (3, 1, 8, 8, 7, 1, p(1, 0, 1)),
        (4, 2, 3, 4, 5, 3, p(1, 1, 2)),
        (5, 1, 4, 6, 6, 3, ConvParams { transposed: true, output_padding: vec![1, 1], ..p(2, 1, 1) }),
    ] {
        let c = Case {
            dt: DType::F32,
            n,
            g,
            cx,
            cy,
            input_sp: vec![hw, hw],
            kernel: vec![k, k],
            p: params,
            bias: true,
            perm: false,
        };
        run(&c);
        with_sequential(|| run(&c));
    }
}

#[test]
fn bad_shapes_are_errors() {
    let x = T::zeros(DType::F32, &[1, 3, 5, 5]);
    let w = T::zeros(DType::F32, &[4, 2, 3, 3]);
    let out = T::zeros(DType::F32, &[1, 4, 3, 3]);
    let p = ConvParams {
        stride: vec![1, 1],
        padding: vec![0, 0],
        dilation: vec![1, 1],
        transposed: false,
        output_padding: vec![0, 0],
        groups: 1,
    };
    assert!(conv_forward(&out.view, &x.view, &w.view, None, &p).unwrap_err().0.contains("expected input[1, 3, 5, 5] to have 2 channels"));
    let w = T::zeros(DType::F32, &[4, 3, 3, 3]);
    let bad_out = T::zeros(DType::F32, &[1, 4, 4, 4]);
    assert!(conv_forward(&bad_out.view, &x.view, &w.view, None, &p).unwrap_err().0.contains("expected"));
    let xi = T::zeros(DType::I64, &[1, 3, 5, 5]);
    assert!(conv_forward(&out.view, &xi.view, &w.view, None, &p).unwrap_err().0.contains("should be the same"));
}

/// int64 convolution (a direct loop of its own) gives the f64 path's values on small integers,
/// forward and transposed, with groups, stride, padding and dilation, and keeps every bit of
/// large values.
#[test]
fn int64_convolution_is_exact() {
    let cases = [
        (vec![2i64, 4, 7, 6], vec![6i64, 2, 3, 2], ConvParams { stride: vec![2, 1], padding: vec![1, 0], dilation: vec![1, 2], transposed: false, output_padding: vec![0, 0], groups: 2 }),
        (vec![1, 2, 9], vec![4, 2, 3], ConvParams { stride: vec![1], padding: vec![2], dilation: vec![1], transposed: false, output_padding: vec![0], groups: 1 }),
        (vec![2, 4, 3, 5], vec![4, 3, 2, 3], ConvParams { stride: vec![2, 3], padding: vec![0, 1], dilation: vec![1, 1], transposed: true, output_padding: vec![1, 2], groups: 2 }),
        (vec![1, 2, 3, 2, 4], vec![2, 1, 2, 2, 2], ConvParams { stride: vec![1, 2, 1], padding: vec![0, 0, 1], dilation: vec![1, 1, 2], transposed: true, output_padding: vec![0, 1, 0], groups: 1 }),
    ];
    for (xs, ws, p) in cases {
        let spatial = p.output_size(&xs[2..], &ws[2..]);
        let out_ch = if p.transposed { ws[1] * p.groups } else { ws[0] };
        let os: Vec<i64> = [xs[0], out_ch].into_iter().chain(spatial).collect();
        let fill = |dt: DType, sizes: &[i64], seed: u64| {
            let (mut b, v) = Buf::contiguous(dt, sizes);
            let mut rng = Rng(seed);
            for i in 0..b.len as i64 {
                let val = (rng.next() % 11) as i64 - 5;
                b.set(i, &write(dt, if dt == DType::I64 { V::I(val) } else { V::F(val as f64) }));
            }
            (b, v)
        };
        let (_xi, xiv) = fill(DType::I64, &xs, 1);
        let (_wi, wiv) = fill(DType::I64, &ws, 2);
        let (_bi, biv) = fill(DType::I64, &[os[1]], 3);
        let (_xf, xfv) = fill(DType::F64, &xs, 1);
        let (_wf, wfv) = fill(DType::F64, &ws, 2);
        let (_bf, bfv) = fill(DType::F64, &[os[1]], 3);
        let (yi, yiv) = Buf::contiguous(DType::I64, &os);
        let (yf, yfv) = Buf::contiguous(DType::F64, &os);
        conv_forward(&yiv, &xiv, &wiv, Some(&biv), &p).unwrap();
        conv_forward(&yfv, &xfv, &wfv, Some(&bfv), &p).unwrap();
        assert_eq!(yi.f64s(), yf.f64s(), "{p:?}");
    }
    // 2^40 * 2^20 products: exact in i64, not in f64
    let (mut xb, xv) = Buf::contiguous(DType::I64, &[1, 1, 2]);
    let (mut wb, wv) = Buf::contiguous(DType::I64, &[1, 1, 2]);
    for (i, (a, b)) in [((1i64 << 40) + 1, (1i64 << 20) + 1), (3, 5)].iter().enumerate() {
        xb.set(i as i64, &write(DType::I64, V::I(*a)));
        wb.set(i as i64, &write(DType::I64, V::I(*b)));
    }
    let (yb, yv) = Buf::contiguous(DType::I64, &[1, 1, 1]);
    let p = ConvParams { stride: vec![1], padding: vec![0], dilation: vec![1], transposed: false, output_padding: vec![0], groups: 1 };
    conv_forward(&yv, &xv, &wv, None, &p).unwrap();
    let want = ((1i64 << 40) + 1) * ((1i64 << 20) + 1) + 15;
    assert_eq!(i64::from_le_bytes(yb.elem(0).try_into().unwrap()), want);
}
