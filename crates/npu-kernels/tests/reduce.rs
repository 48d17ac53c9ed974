//! Reductions, max/min with indices, argmax/argmin, count_nonzero and masked_select against
//! naive references: nested loops over multi-indices, f64 math.

mod common;

use common::*;
use npu_kernels::{
    arg_reduce, count_nonzero, masked_select, nonzero, reduce, reduce_norm, reduce_with_index,
    with_sequential, DType, ReduceOp, View,
};
use proptest::prelude::*;

fn conv(dt: DType, v: V) -> V {
    read(dt, &write(dt, v))
}

/// Test values for reductions: mostly small integers and halves, some tiny fractions, and with
/// probability `special` a NaN, an infinity or a signed zero.
fn fill_values(b: &mut Buf, seed: u64, special: f64, range: f64) {
    let mut rng = Rng(seed);
    for i in 0..b.len as i64 {
        let r = rng.next();
        let u = (r >> 11) as f64 / (1u64 << 53) as f64;
        let v = if u < special {
            match r % 4 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                _ => -0.0,
            }
        } else {
            let k = (rng.next() % 4096) as f64 / 4096.0;
            let x = (k * 2.0 - 1.0) * range;
            if r.is_multiple_of(3) {
                (x * 2.0).round() / 2.0
            } else {
                x
            }
        };
        let v = if b.dtype == DType::Bool {
            V::B(r.is_multiple_of(3))
        } else {
            V::F(v)
        };
        b.set(i, &write(b.dtype, v));
    }
}

/// Sizes of a keepdim result.
fn kept_sizes(sizes: &[i64], dims: &[usize]) -> Vec<i64> {
    sizes
        .iter()
        .enumerate()
        .map(|(d, &n)| {
            if dims.is_empty() || dims.contains(&d) {
                1
            } else {
                n
            }
        })
        .collect()
}

/// For each output multi-index, the source multi-indices it reduces, in row-major order.
fn groups(sizes: &[i64], dims: &[usize]) -> Vec<(Vec<i64>, Vec<Vec<i64>>)> {
    let ks = kept_sizes(sizes, dims);
    indices(&ks)
        .into_iter()
        .map(|o| {
            let sub: Vec<i64> = sizes
                .iter()
                .enumerate()
                .map(|(d, &n)| {
                    if ks[d] == 1 && (dims.is_empty() || dims.contains(&d)) {
                        n
                    } else {
                        1
                    }
                })
                .collect();
            let members = indices(&sub)
                .into_iter()
                .map(|r| o.iter().zip(&r).map(|(&a, &b)| a + b).collect::<Vec<i64>>())
                .collect();
            (o, members)
        })
        .collect()
}

struct Arr {
    buf: Buf,
    strides: Vec<i64>,
    offset: i64,
    sizes: Vec<i64>,
}

impl Arr {
    fn new(dt: DType, sizes: &[i64], spec: &Spec) -> Arr {
        let (strides, len) = spec.layout(sizes);
        let mut buf = Buf::new(dt, len);
        randomize(&mut buf, 99);
        Arr {
            buf,
            strides,
            offset: spec.offset,
            sizes: sizes.to_vec(),
        }
    }
    fn view(&mut self) -> View {
        let (st, off, sz) = (self.strides.clone(), self.offset, self.sizes.clone());
        self.buf.view(&sz, &st, off)
    }
    fn pos(&self, idx: &[i64]) -> i64 {
        self.offset + offset_of(idx, &self.strides)
    }
    fn at(&self, idx: &[i64]) -> V {
        read(self.buf.dtype, self.buf.elem(self.pos(idx)))
    }
}

/// Relative rounding unit of a float dtype (0 for the exact ones).
fn ulp(dt: DType) -> f64 {
    match dt {
        DType::F16 => 1.0 / 1024.0,
        DType::BF16 => 1.0 / 128.0,
        DType::F32 => 1.2e-7,
        DType::F64 => 2.3e-16,
        _ => 0.0,
    }
}

/// The reference for one output: (value, error scale). NaN/inf values must match exactly.
fn ref_reduce(op: ReduceOp, p: f64, xs: &[V], acc: DType) -> (V, f64) {
    use ReduceOp::*;
    let n = xs.len();
    if matches!(op, Any | All) {
        let t = xs
            .iter()
            .map(|&v| v.real() != 0.0 || matches!(v, V::F(f) if f.is_nan()));
        return (
            V::B(if op == Any {
                t.clone().any(|b| b)
            } else {
                t.clone().all(|b| b)
            }),
            0.0,
        );
    }
    if !acc.is_floating() {
        // integer accumulation in i64 (wrapping)
        let ints: Vec<i64> = xs
            .iter()
            .map(|&v| match conv(DType::I64, v) {
                V::I(i) => i,
                _ => unreachable!(),
            })
            .collect();
        let r: i64 = match op {
            Sum | NanSum => ints.iter().fold(0i64, |a, &b| a.wrapping_add(b)),
            Prod => ints.iter().fold(1i64, |a, &b| a.wrapping_mul(b)),
            Max | Amax => *ints.iter().max().unwrap(),
            Min | Amin => *ints.iter().min().unwrap(),
            _ => unreachable!(),
        };
        return (V::I(r), 0.0);
    }
    let f: Vec<f64> = xs.iter().map(|&v| conv(acc, v).real()).collect();
    let sum_abs: f64 = f.iter().filter(|x| x.is_finite()).map(|x| x.abs()).sum();
    let (r, scale) = match op {
        Sum => (f.iter().sum::<f64>(), sum_abs),
        NanSum => (f.iter().filter(|x| !x.is_nan()).sum::<f64>(), sum_abs),
        Mean => (f.iter().sum::<f64>() / n as f64, sum_abs / n.max(1) as f64),
        Prod => {
            // relative errors of a product add up: allow ~n rounding errors
            let r: f64 = f.iter().product();
            (r, r.abs() * n.max(1) as f64 / 128.0)
        }
        Max | Amax => (
            if f.iter().any(|x| x.is_nan()) {
                f64::NAN
            } else {
                f.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            },
            0.0,
        ),
        Min | Amin => (
            if f.iter().any(|x| x.is_nan()) {
                f64::NAN
            } else {
                f.iter().cloned().fold(f64::INFINITY, f64::min)
            },
            0.0,
        ),
        Norm => {
            let a = f.iter().map(|x| x.abs());
            let r = if p == f64::INFINITY {
                if f.iter().any(|x| x.is_nan()) {
                    f64::NAN
                } else {
                    a.fold(0.0, f64::max)
                }
            } else if p == f64::NEG_INFINITY {
                if f.iter().any(|x| x.is_nan()) {
                    f64::NAN
                } else {
                    a.fold(f64::INFINITY, f64::min)
                }
            } else if p == 0.0 {
                f.iter().filter(|&&x| x != 0.0).count() as f64
            } else {
                // terms and their (positive) sum overflow like the accumulation type does
                let r = |x: f64| conv(acc, V::F(x)).real();
                let terms = a.map(|x| r(x.powf(p)));
                r(terms.fold(0.0, |s, v| s + v)).powf(1.0 / p)
            };
            (r, r.abs())
        }
        Any | All => unreachable!(),
    };
    (V::F(r), scale)
}

#[allow(clippy::too_many_arguments)]
fn check_reduce(
    op: ReduceOp,
    p: f64,
    sizes: &[i64],
    dims: &[usize],
    st: DType,
    ss: &Spec,
    acc: DType,
    dt: DType,
    ds: &Spec,
    seed: u64,
) {
    use ReduceOp::*;
    let mut src = Arr::new(st, sizes, ss);
    let (range, special) = match op {
        Prod => (2.0, 0.02),
        Norm if p.abs() > 1.0 && p.is_finite() => (4.0, 0.02),
        _ => (300.0, 0.03),
    };
    fill_values(&mut src.buf, seed, special, range);
    let ks = kept_sizes(sizes, dims);
    let mut dst = Arr::new(dt, &ks, ds);
    let mut want = Buf::new(dt, dst.buf.len);
    want.bytes_mut().copy_from_slice(dst.buf.bytes());
    let what = format!(
        "{op:?}(p={p}) {} <- {} acc {} sizes {sizes:?} dims {dims:?} src {ss:?} dst {ds:?}",
        dt.name(),
        st.name(),
        acc.name()
    );
    let r = if op == Norm {
        reduce_norm(&dst.view(), &src.view(), dims, p, acc)
    } else {
        reduce(op, &dst.view(), &src.view(), dims, acc)
    };
    let m: i64 = sizes
        .iter()
        .enumerate()
        .filter(|(d, _)| dims.is_empty() || dims.contains(d))
        .map(|(_, &n)| n)
        .product();
    if matches!(op, Mean | Norm) && !acc.is_floating() {
        assert!(r.is_err(), "{what}: expected an error");
        return;
    }
    if m == 0
        && (matches!(op, Max | Min | Amax | Amin)
            || (op == Norm && (p < 0.0 || p == f64::INFINITY)))
    {
        let e = r.expect_err(&what);
        if matches!(op, Max | Min | Amax | Amin) {
            assert!(
                e.0.starts_with(&format!("{}(): Expected reduction dim", op.name())),
                "{}",
                e.0
            );
        }
        return;
    }
    r.unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut scales = vec![0.0; want.len];
    for (o, members) in groups(sizes, dims) {
        let xs: Vec<V> = members.iter().map(|i| src.at(i)).collect();
        let (v, scale) = ref_reduce(op, p, &xs, acc);
        // the result is rounded to the accumulation dtype, then converted to dst
        let v = if acc.is_floating() && !matches!(op, Any | All) {
            conv(acc, v)
        } else {
            v
        };
        let at = dst.pos(&o);
        want.set(at, &write(dt, v));
        scales[at as usize] = scale;
    }
    for i in 0..want.len as i64 {
        let (g, w) = (dst.buf.elem(i), want.elem(i));
        if same(dt, g, w) {
            continue;
        }
        let (gv, wv) = (read(dt, g).real(), read(dt, w).real());
        // -0.0 and 0.0 are equal results (the order of ties is not specified)
        let tol = 8.0 * ulp(acc) * scales[i as usize] * 16.0 + 2.0 * ulp(dt) * wv.abs();
        let ok = (wv.is_finite() && (gv - wv).abs() <= tol) || gv == wv;
        assert!(
            ok,
            "{what}: element {i}: got {gv}, want {wv} (tolerance {tol})"
        );
    }
}

fn acc_for(st: DType, pick: u8) -> DType {
    match st {
        DType::F64 => DType::F64,
        d if d.is_floating() => [DType::F32, DType::F32, DType::F64][pick as usize % 3],
        _ => [DType::I64, DType::I64, DType::F32, DType::F64][pick as usize % 4],
    }
}

fn dst_for(acc: DType, st: DType, pick: u8) -> DType {
    if acc.is_floating() {
        let same = if st.is_floating() { st } else { acc };
        [acc, same, DType::F64, DType::F32][pick as usize % 4]
    } else {
        [DType::I64, DType::F64, DType::I32, DType::F32][pick as usize % 4]
    }
}

/// Sizes, a sorted subset of dims (empty = all), src layout (broadcast allowed), dst layout.
fn reduction_case() -> impl Strategy<Value = (Vec<i64>, Vec<usize>, Spec, Spec)> {
    shape().prop_flat_map(|sizes| {
        let r = sizes.len();
        (
            Just(sizes),
            prop::collection::vec(any::<bool>(), r),
            spec(r, true),
            spec(r, false),
        )
            .prop_map(|(sizes, mask, ss, ds)| {
                let dims: Vec<usize> = (0..mask.len()).filter(|&d| mask[d]).collect();
                (sizes, dims, ss, ds)
            })
    })
}

fn reduce_op() -> impl Strategy<Value = (ReduceOp, f64)> {
    use ReduceOp::*;
    prop_oneof![
        prop::sample::select(vec![
            Sum, Prod, Max, Min, Amax, Amin, Any, All, Mean, NanSum
        ])
        .prop_map(|o| (o, 2.0)),
        prop::sample::select(vec![
            2.0,
            1.0,
            0.0,
            3.0,
            0.5,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY
        ])
        .prop_map(|p| (Norm, p)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn reduce_matches_reference(
        (op, p) in reduce_op(),
        (sizes, dims, ss, ds) in reduction_case(),
        st in prop::sample::select(REAL.to_vec()),
        pick in any::<u8>(),
        seed in any::<u64>(),
    ) {
        let acc = acc_for(st, pick);
        let dt = match op {
            ReduceOp::Any | ReduceOp::All => [DType::Bool, DType::U8, DType::F32][pick as usize % 3],
            _ => dst_for(acc, st, pick / 4),
        };
        check_reduce(op, p, &sizes, &dims, st, &ss, acc, dt, &ds, seed);
    }
}

#[test]
fn reduce_every_op_and_dtype() {
    use ReduceOp::*;
    let sizes = [4i64, 5, 6];
    let transposed = Spec {
        perm: vec![2, 0, 1],
        offset: 1,
        ..Spec::contiguous(3)
    };
    let c3 = Spec::contiguous(3);
    for st in REAL {
        for op in [
            Sum, Prod, Max, Min, Amax, Amin, Any, All, Mean, NanSum, Norm,
        ] {
            for dims in [vec![], vec![0], vec![1], vec![2], vec![0, 2], vec![0, 1, 2]] {
                for (k, ss) in [&c3, &transposed].into_iter().enumerate() {
                    let acc = acc_for(st, k as u8);
                    let dt = if matches!(op, Any | All) {
                        DType::Bool
                    } else {
                        dst_for(acc, st, 0)
                    };
                    let seed = st as u64 * 1000 + op as u64 * 10 + k as u64;
                    check_reduce(op, 2.0, &sizes, &dims, st, ss, acc, dt, &c3, seed);
                }
            }
        }
    }
}

/// Shapes large enough for the blocked, column and parallel paths; results must equal the
/// single-threaded run bit for bit and be close to the f64 reference.
#[test]
fn large_reductions() {
    use ReduceOp::*;
    let cases: [(&[i64], &[usize], DType, ReduceOp); 9] = [
        (&[3, 200_000], &[1], DType::F32, Sum),     // inner, blocked
        (&[70_000, 20], &[0], DType::F32, Sum),     // column, blocked over rows
        (&[5000, 300], &[0], DType::F64, Mean),     // column, two column blocks
        (&[300, 5000], &[1], DType::F16, Sum),      // inner, staged f16
        (&[64, 64, 64], &[0, 2], DType::BF16, Sum), // mixed
        (&[200_000, 3], &[0], DType::F32, Norm), // smallest stride kept but narrow: inner, strided
        (&[1000, 100], &[0], DType::F32, Max),
        (&[100, 1000], &[1], DType::I32, Sum),
        (&[100_000, 20], &[0], DType::F32, Prod),
    ];
    for (sizes, dims, st, op) in cases {
        let mut src = Arr::new(st, sizes, &Spec::contiguous(sizes.len()));
        fill_values(&mut src.buf, 5, 0.0, if op == Prod { 1.0 } else { 10.0 });
        if op == Prod {
            // values near 1 so that products stay finite
            for i in 0..src.buf.len as i64 {
                let v = read(st, src.buf.elem(i)).real();
                src.buf.set(i, &write(st, V::F(1.0 + v / 1e4)));
            }
        }
        let acc = acc_for(st, 0);
        let ks = kept_sizes(sizes, dims);
        let mut d1 = Arr::new(DType::F64, &ks, &Spec::contiguous(ks.len()));
        let mut d2 = Arr::new(DType::F64, &ks, &Spec::contiguous(ks.len()));
        let sv = src.view();
        reduce(op, &d1.view(), &sv, dims, acc).unwrap();
        with_sequential(|| reduce(op, &d2.view(), &sv, dims, acc)).unwrap();
        assert_eq!(
            d1.buf.bytes(),
            d2.buf.bytes(),
            "{op:?} {sizes:?} parallel vs sequential"
        );
        let gs = groups(sizes, dims);
        for (k, (o, members)) in gs.iter().enumerate() {
            if k % 7 != 0 && k + 1 != gs.len() {
                continue;
            }
            let xs: Vec<V> = members.iter().map(|i| src.at(i)).collect();
            let (w, scale) = ref_reduce(op, 2.0, &xs, acc);
            let g = d1.at(o).real();
            let tol = 1e-5 * scale + 1e-6 * w.real().abs();
            assert!(
                (g - w.real()).abs() <= tol,
                "{op:?} {sizes:?} at {o:?}: got {g}, want {}",
                w.real()
            );
        }
    }
}

#[test]
fn sum_of_16m_f32_is_accurate() {
    let n = 16 * 1024 * 1024i64;
    let mut src = vec![0.1f32; n as usize];
    let sv = View::contiguous(src.as_mut_ptr() as *mut u8, DType::F32, &[n]);
    let mut out = [0f32; 1];
    let ov = View::contiguous(out.as_mut_ptr() as *mut u8, DType::F32, &[1]);
    reduce(ReduceOp::Sum, &ov, &sv, &[], DType::F32).unwrap();
    let exact = 0.1f32 as f64 * n as f64;
    let rel = ((out[0] as f64 - exact) / exact).abs();
    assert!(
        rel < 1e-5,
        "sum {} vs {exact}: relative error {rel}",
        out[0]
    );
    // the same over dim 0 of a (4096, 4096) view and over dim 1
    let mut cols = vec![0f32; 4096];
    let sv2 = View::contiguous(src.as_mut_ptr() as *mut u8, DType::F32, &[4096, 4096]);
    for (dim, shape) in [(0usize, [1i64, 4096]), (1, [4096, 1])] {
        let cv = View::contiguous(cols.as_mut_ptr() as *mut u8, DType::F32, &shape);
        reduce(ReduceOp::Sum, &cv, &sv2, &[dim], DType::F32).unwrap();
        let e = 0.1f32 as f64 * 4096.0;
        assert!(
            cols.iter().all(|&c| ((c as f64 - e) / e).abs() < 1e-6),
            "dim {dim}: {}",
            cols[0]
        );
    }
}

// ----------------------------------------------------------------------------------------
// max/min with indices, argmax/argmin

/// (value, index) of the first max/min along a list (NaN wins, first NaN first).
fn ref_arg(is_max: bool, xs: &[f64]) -> (f64, i64) {
    let mut best = (xs[0], 0i64);
    for (i, &x) in xs.iter().enumerate().skip(1) {
        let better = if is_max { x > best.0 } else { x < best.0 };
        if better || (x.is_nan() && !best.0.is_nan()) {
            best = (x, i as i64);
        }
    }
    best
}

/// Exact value of an element as f64 (all dtypes but large i64 are exact; compare ints as i128).
fn key(v: V) -> f64 {
    v.real()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn max_with_index_matches_reference(
        (sizes, _dims, ss, ds) in reduction_case(),
        dim_pick in any::<usize>(),
        st in prop::sample::select(REAL.to_vec()),
        is_max in any::<bool>(),
        seed in any::<u64>(),
        wide in any::<bool>(),
    ) {
        let rank = sizes.len();
        // a wide kept dim sometimes, for the column path
        let mut sizes = sizes;
        if wide && rank >= 2 {
            sizes[rank - 1] = 40;
        }
        let dim = if rank == 0 { 0 } else { dim_pick % rank };
        let mut src = Arr::new(st, &sizes, &ss);
        fill_values(&mut src.buf, seed, 0.05, 4.0);
        let ks = kept_sizes(&sizes, &[dim]);
        let mut vals = Arr::new(st, &ks, &ds);
        let mut idx = Arr::new(DType::I64, &ks, &Spec::contiguous(ks.len()));
        let op = if is_max { ReduceOp::Max } else { ReduceOp::Min };
        let r = reduce_with_index(op, &vals.view(), &idx.view(), &src.view(), dim);
        let mut argi = Arr::new(DType::I64, &ks, &Spec::contiguous(ks.len()));
        let r2 = arg_reduce(op, &argi.view(), &src.view(), Some(dim));
        let n = if rank == 0 { 1 } else { sizes[dim] };
        if n == 0 {
            let e = r.unwrap_err();
            prop_assert_eq!(e.0, format!("{}(): Expected reduction dim {dim} to have non-zero size.", op.name()));
            prop_assert!(r2.is_err());
            return Ok(());
        }
        r.unwrap();
        r2.unwrap();
        for (o, members) in groups(&sizes, &[dim]) {
            let xs: Vec<f64> = members.iter().map(|i| key(src.at(i))).collect();
            let (wv, wi) = ref_arg(is_max, &xs);
            let gv = key(vals.at(&o));
            let gi = idx.at(&o).real() as i64;
            prop_assert!(gi == wi && (gv == wv || (gv.is_nan() && wv.is_nan())),
                "{op:?} {st:?} {sizes:?} dim {dim} at {o:?}: got ({gv}, {gi}), want ({wv}, {wi})");
            prop_assert_eq!(argi.at(&o).real() as i64, wi);
        }
    }

    #[test]
    fn flat_argmax_matches_reference(
        (sizes, _dims, ss, _ds) in reduction_case(),
        st in prop::sample::select(REAL.to_vec()),
        is_max in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut src = Arr::new(st, &sizes, &ss);
        fill_values(&mut src.buf, seed, 0.05, 4.0);
        let mut out = Arr::new(DType::I64, &[], &Spec::contiguous(0));
        let op = if is_max { ReduceOp::Max } else { ReduceOp::Min };
        let r = arg_reduce(op, &out.view(), &src.view(), None);
        let all = indices(&sizes);
        if all.is_empty() {
            let e = r.unwrap_err();
            let name = if is_max { "argmax" } else { "argmin" };
            prop_assert_eq!(e.0, format!("{name}(): Expected reduction dim to be specified for input.numel() == 0."));
            return Ok(());
        }
        r.unwrap();
        let xs: Vec<f64> = all.iter().map(|i| key(src.at(i))).collect();
        prop_assert_eq!(out.at(&[]).real() as i64, ref_arg(is_max, &xs).1);
    }

    #[test]
    fn count_and_masked_select_match_reference(
        (sizes, _dims, ss, ms) in reduction_case(),
        st in prop::sample::select(REAL.to_vec()),
        mt in prop::sample::select(REAL.to_vec()),
        seed in any::<u64>(),
    ) {
        let mut src = Arr::new(st, &sizes, &ss);
        randomize(&mut src.buf, seed);
        let mut mask = Arr::new(mt, &sizes, &ms);
        fill_values(&mut mask.buf, seed ^ 7, 0.1, 1.0);
        let all = indices(&sizes);
        let sel: Vec<&Vec<i64>> = all.iter().filter(|i| {
            let v = mask.at(i);
            v.real() != 0.0 || v.real().is_nan()
        }).collect();
        prop_assert_eq!(count_nonzero(&mask.view()).unwrap(), sel.len());
        let (mut ob, ov) = Buf::contiguous(st, &[sel.len() as i64]);
        masked_select(&ov, &src.view(), &mask.view()).unwrap();
        for (k, i) in sel.iter().enumerate() {
            prop_assert!(same(st, ob.elem(k as i64), src.buf.elem(src.pos(i))));
        }
        let _ = ob.bytes_mut();
        // a wrong output size is an error
        let (_b2, bad) = Buf::contiguous(st, &[sel.len() as i64 + 1]);
        prop_assert!(masked_select(&bad, &src.view(), &mask.view()).is_err());
        // nonzero: the coordinates of the same elements, in the same order
        let rank = sizes.len() as i64;
        let (nb, nv) = Buf::contiguous(DType::I64, &[sel.len() as i64, rank]);
        nonzero(&nv, &mask.view()).unwrap();
        let got: Vec<i64> = (0..sel.len() as i64 * rank).map(|k| i64::from_le_bytes(nb.elem(k).try_into().unwrap())).collect();
        prop_assert_eq!(got, sel.iter().flat_map(|i| i.iter().copied()).collect::<Vec<i64>>());
        if !sel.is_empty() {
            let (_b3, short) = Buf::contiguous(DType::I64, &[sel.len() as i64 - 1, rank]);
            prop_assert!(nonzero(&short, &mask.view()).is_err());
        }
    }
}

#[test]
fn large_argmax_count_and_select() {
    let n = 300_000i64;
    let mut src = Arr::new(DType::F32, &[n], &Spec::contiguous(1));
    fill_values(&mut src.buf, 3, 0.0, 100.0);
    src.buf.set(250_001, &1000f32.to_le_bytes());
    src.buf.set(280_000, &1000f32.to_le_bytes());
    let mut out = Arr::new(DType::I64, &[], &Spec::contiguous(0));
    arg_reduce(ReduceOp::Max, &out.view(), &src.view(), None).unwrap();
    assert_eq!(out.at(&[]).real(), 250_001.0);
    src.buf.set(290_000, &f32::NAN.to_le_bytes());
    arg_reduce(ReduceOp::Min, &out.view(), &src.view(), None).unwrap();
    assert_eq!(out.at(&[]).real(), 290_000.0);
    // transposed 2-d flat argmax counts in row-major order of the view
    let mut t = Arr::new(
        DType::F32,
        &[600, 500],
        &Spec {
            perm: vec![1, 0],
            ..Spec::contiguous(2)
        },
    );
    fill_values(&mut t.buf, 4, 0.0, 100.0);
    let p = t.pos(&[321, 123]);
    t.buf.set(p, &5000f32.to_le_bytes());
    arg_reduce(ReduceOp::Max, &out.view(), &t.view(), None).unwrap();
    assert_eq!(out.at(&[]).real(), (321 * 500 + 123) as f64);
    // count / masked_select across blocks
    let mut mask = Arr::new(DType::Bool, &[n], &Spec::contiguous(1));
    for i in 0..n {
        mask.buf.set(i, &[(i % 3 == 0) as u8]);
    }
    let c = count_nonzero(&mask.view()).unwrap();
    assert_eq!(c, (n as usize).div_ceil(3));
    let (ob, ov) = Buf::contiguous(DType::F32, &[c as i64]);
    masked_select(&ov, &src.view(), &mask.view()).unwrap();
    for k in [0usize, 1, 21845, 21846, c - 1] {
        assert_eq!(ob.elem(k as i64), src.buf.elem(3 * k as i64));
    }
    // nonzero across blocks, rows and a transposed layout: the (i, j, k) of 3-d mask (70, 40, 50)
    // stored k-major, nonzero where (i + 2j + 3k) % 97 == 0 (gaps longer than a row), against
    // the row-major walk
    let sizes = [70i64, 40, 50];
    let mut m3 = Arr::new(DType::F32, &sizes, &Spec { perm: vec![2, 0, 1], ..Spec::contiguous(3) });
    let mut want = Vec::new();
    for idx in indices(&sizes) {
        let hit = (idx[0] + 2 * idx[1] + 3 * idx[2]) % 97 == 0;
        let p = m3.pos(&idx);
        m3.buf.set(p, &(if hit { -0.5f32 } else { -0.0f32 }).to_le_bytes());
        if hit {
            want.extend_from_slice(&idx);
        }
    }
    let rows = want.len() as i64 / 3;
    assert_eq!(count_nonzero(&m3.view()).unwrap() as i64, rows);
    let (nb, nv) = Buf::contiguous(DType::I64, &[rows, 3]);
    nonzero(&nv, &m3.view()).unwrap();
    let got: Vec<i64> = (0..rows * 3).map(|k| i64::from_le_bytes(nb.elem(k).try_into().unwrap())).collect();
    assert!(got == want, "nonzero of a transposed 3-d mask");
}

// ----------------------------------------------------------------------------------------
// edge cases measured on torch 2.15 (CPU)

fn run1(op: ReduceOp, vals: &[f32], out_dt: DType, acc: DType) -> Result<f64, String> {
    let mut src = vals.to_vec();
    let sv = View::contiguous(
        src.as_mut_ptr() as *mut u8,
        DType::F32,
        &[vals.len() as i64],
    );
    let (ob, ov) = Buf::contiguous(out_dt, &[1]);
    reduce(op, &ov, &sv, &[], acc).map_err(|e| e.0)?;
    Ok(read(out_dt, ob.elem(0)).real())
}

#[test]
fn torch_reduction_edge_cases() {
    use ReduceOp::*;
    let nan = f32::NAN;
    // empty reductions
    let mut none: [f32; 0] = [];
    let ev = View::contiguous(none.as_mut_ptr() as *mut u8, DType::F32, &[0, 3]);
    let (ob, ov) = Buf::contiguous(DType::F32, &[1, 3]);
    let get = |b: &Buf| {
        (0..3)
            .map(|i| read(DType::F32, b.elem(i)).real())
            .collect::<Vec<_>>()
    };
    reduce(Sum, &ov, &ev, &[0], DType::F32).unwrap();
    assert_eq!(get(&ob), [0.0; 3]);
    reduce(Prod, &ov, &ev, &[0], DType::F32).unwrap();
    assert_eq!(get(&ob), [1.0; 3]);
    reduce(Mean, &ov, &ev, &[0], DType::F32).unwrap();
    assert!(get(&ob).iter().all(|v| v.is_nan()));
    reduce(Any, &ov, &ev, &[0], DType::F32).unwrap();
    assert_eq!(get(&ob), [0.0; 3]);
    reduce(All, &ov, &ev, &[0], DType::F32).unwrap();
    assert_eq!(get(&ob), [1.0; 3]);
    reduce_norm(&ov, &ev, &[0], 2.0, DType::F32).unwrap();
    assert_eq!(get(&ob), [0.0; 3]);
    let e = reduce(Amax, &ov, &ev, &[0], DType::F32).unwrap_err();
    assert_eq!(
        e.0,
        "amax(): Expected reduction dim 0 to have non-zero size."
    );
    let (_o1, o1) = Buf::contiguous(DType::F32, &[1, 1]);
    let e = reduce(Max, &o1, &ev, &[], DType::F32).unwrap_err();
    assert_eq!(
        e.0,
        "max(): Expected reduction dim to be specified for input.numel() == 0. Specify the reduction dim with the 'dim' argument."
    );
    let e = reduce_norm(&ov, &ev, &[0], f64::INFINITY, DType::F32).unwrap_err();
    assert!(e
        .0
        .contains("cannot compute the inf norm on an empty tensor"));
    let e = reduce_norm(&ov, &ev, &[0], -0.5, DType::F32).unwrap_err();
    assert_eq!(e.0, "linalg.vector_norm cannot compute the -0.5 norm on an empty tensor because the operation does not have an identity");
    // reducing dim 1 (size 3) of a (0, 3) tensor is fine: empty output
    let (_o0, o0) = Buf::contiguous(DType::F32, &[0, 1]);
    reduce(Amax, &o0, &ev, &[1], DType::F32).unwrap();

    // NaN propagation
    assert!(run1(Max, &[1., nan, 3.], DType::F32, DType::F32)
        .unwrap()
        .is_nan());
    assert!(run1(Amin, &[1., nan, 3.], DType::F32, DType::F32)
        .unwrap()
        .is_nan());
    assert_eq!(
        run1(NanSum, &[nan, 1., 2.], DType::F32, DType::F32).unwrap(),
        3.0
    );
    assert!(run1(
        Sum,
        &[f32::INFINITY, f32::NEG_INFINITY],
        DType::F32,
        DType::F32
    )
    .unwrap()
    .is_nan());
    assert!(run1(Prod, &[2., nan, 0.], DType::F32, DType::F32)
        .unwrap()
        .is_nan());
    assert_eq!(run1(Any, &[nan], DType::Bool, DType::F32).unwrap(), 1.0);
    assert_eq!(run1(Any, &[-0.0], DType::Bool, DType::F32).unwrap(), 0.0);
    assert_eq!(
        run1(All, &[0.0, nan], DType::Bool, DType::F32).unwrap(),
        0.0
    );
    // norms
    let norm = |p: f64, v: &[f32]| {
        let mut s = v.to_vec();
        let sv = View::contiguous(s.as_mut_ptr() as *mut u8, DType::F32, &[v.len() as i64]);
        let (ob, ov) = Buf::contiguous(DType::F32, &[1]);
        reduce_norm(&ov, &sv, &[0], p, DType::F32).unwrap();
        read(DType::F32, ob.elem(0)).real()
    };
    assert_eq!(norm(2.0, &[3., 4.]), 5.0);
    assert_eq!(norm(1.0, &[3., -4.]), 7.0);
    assert_eq!(norm(f64::INFINITY, &[3., -4.]), 4.0);
    assert_eq!(norm(f64::NEG_INFINITY, &[3., -4.]), 3.0);
    assert_eq!(norm(0.0, &[3., 0., -4.]), 2.0);
    assert!((norm(3.0, &[3., -4.]) - 4.4979).abs() < 1e-4);
    assert_eq!(norm(-1.0, &[3., 4., 0.]), 0.0);
    assert!((norm(-2.0, &[3., 4.]) - 2.4).abs() < 1e-6);
    assert!((norm(0.5, &[3., 4., 0.]) - 13.9282).abs() < 1e-4);
    assert!(norm(f64::INFINITY, &[3., nan]).is_nan());

    // integer and bool sums accumulate in i64; u8 any() writes 0/1
    let mut b = vec![1u8, 1, 0, 1];
    let bv = View::contiguous(b.as_mut_ptr(), DType::Bool, &[4]);
    let (ib, iv) = Buf::contiguous(DType::I64, &[1]);
    reduce(Sum, &iv, &bv, &[], DType::I64).unwrap();
    assert_eq!(read(DType::I64, ib.elem(0)).real(), 3.0);
    let mut u = vec![200u8, 200];
    let uv = View::contiguous(u.as_mut_ptr(), DType::U8, &[2]);
    reduce(Sum, &iv, &uv, &[], DType::I64).unwrap();
    assert_eq!(read(DType::I64, ib.elem(0)).real(), 400.0);
    let (ab, av) = Buf::contiguous(DType::U8, &[1]);
    reduce(Any, &av, &uv, &[], DType::U8).unwrap();
    assert_eq!(ab.elem(0), [1]);
    reduce(Max, &av, &bv, &[], DType::I64).unwrap();
    assert_eq!(ab.elem(0), [1]);
    let e = reduce(Mean, &iv, &uv, &[], DType::I64).unwrap_err();
    assert!(e.0.starts_with("mean(): could not infer output dtype"));
    let e = reduce_norm(&iv, &uv, &[], 2.0, DType::I64).unwrap_err();
    assert!(e
        .0
        .starts_with("linalg.vector_norm: Expected a floating point"));

    // mean of 10000 f16 0.1 is 0.1; sum of 10000 f16 10.0 overflows f16
    let mut h = vec![half::f16::from_f32(0.1); 10000];
    let hv = View::contiguous(h.as_mut_ptr() as *mut u8, DType::F16, &[10000]);
    let (hb, hov) = Buf::contiguous(DType::F16, &[1]);
    reduce(Mean, &hov, &hv, &[], DType::F32).unwrap();
    assert_eq!(
        read(DType::F16, hb.elem(0)).real(),
        half::f16::from_f32(0.1).to_f64()
    );
    let mut h10 = vec![half::f16::from_f32(10.0); 10000];
    let hv10 = View::contiguous(h10.as_mut_ptr() as *mut u8, DType::F16, &[10000]);
    reduce(Sum, &hov, &hv10, &[], DType::F32).unwrap();
    assert_eq!(read(DType::F16, hb.elem(0)).real(), f64::INFINITY);

    // max/min with index: first occurrence, NaN wins, first NaN first
    let arg = |op: ReduceOp, v: &[f32]| {
        let mut s = v.to_vec();
        let sv = View::contiguous(s.as_mut_ptr() as *mut u8, DType::F32, &[v.len() as i64]);
        let (vb, vv) = Buf::contiguous(DType::F32, &[1]);
        let (ib, iv) = Buf::contiguous(DType::I64, &[1]);
        reduce_with_index(op, &vv, &iv, &sv, 0).unwrap();
        (
            read(DType::F32, vb.elem(0)).real(),
            read(DType::I64, ib.elem(0)).real() as i64,
        )
    };
    assert_eq!(arg(Max, &[1., 3., 3.]), (3.0, 1));
    assert_eq!(arg(Min, &[3., 1., 1.]), (1.0, 1));
    let (v, i) = arg(Max, &[1., nan, 3., nan]);
    assert!(v.is_nan() && i == 1);
    let (v, i) = arg(Min, &[nan, 1., nan]);
    assert!(v.is_nan() && i == 0);
    // 0-dim input
    let mut z = [3.0f32];
    let zv = View::contiguous(z.as_mut_ptr() as *mut u8, DType::F32, &[]);
    let (vb, vv) = Buf::contiguous(DType::F32, &[]);
    let (ib, iv) = Buf::contiguous(DType::I64, &[]);
    reduce_with_index(Max, &vv, &iv, &zv, 0).unwrap();
    assert_eq!(
        (
            read(DType::F32, vb.elem(0)).real(),
            read(DType::I64, ib.elem(0)).real()
        ),
        (3.0, 0.0)
    );
    reduce(Sum, &vv, &zv, &[], DType::F32).unwrap();
    assert_eq!(read(DType::F32, vb.elem(0)).real(), 3.0);
}

#[test]
fn bad_geometry_is_an_error() {
    let mut s = vec![0f32; 6];
    let sv = View::contiguous(s.as_mut_ptr() as *mut u8, DType::F32, &[2, 3]);
    let (_b, wrong) = Buf::contiguous(DType::F32, &[2]);
    assert!(reduce(ReduceOp::Sum, &wrong, &sv, &[1], DType::F32).is_err());
    let (_b, ok) = Buf::contiguous(DType::F32, &[2, 1]);
    assert!(reduce(ReduceOp::Sum, &ok, &sv, &[3], DType::F32).is_err());
    assert!(reduce(ReduceOp::Sum, &ok, &sv, &[1, 1], DType::F32).is_err());
    let (_b, c) = Buf::contiguous(DType::C64, &[2, 1]);
    assert!(reduce(ReduceOp::Sum, &c, &sv, &[1], DType::F32)
        .unwrap_err()
        .0
        .contains("unsupported dtype"));
}

/// max and min over rows long enough for the vector lanes (and their tails), with a NaN, an
/// infinity or neither somewhere in the row: NaN wins, else the plain extreme.
#[test]
fn extremes_of_long_rows() {
    for n in [1usize, 63, 64, 65, 200, 1000] {
        for special in [None, Some(f64::NAN), Some(f64::INFINITY), Some(f64::NEG_INFINITY)] {
            for at in [0, n / 2, n - 1] {
                let mut x: Vec<f64> = (0..n).map(|i| ((i * 37 % 101) as f64 - 50.0) * 0.5).collect();
                if let Some(v) = special {
                    x[at] = v;
                }
                let (mut sb, sv) = Buf::contiguous(DType::F32, &[n as i64]);
                for (i, &v) in x.iter().enumerate() {
                    sb.set(i as i64, &write(DType::F32, V::F(v)));
                }
                for (op, want) in [
                    (ReduceOp::Amax, if x.iter().any(|v| v.is_nan()) { f64::NAN } else { x.iter().cloned().fold(f64::NEG_INFINITY, f64::max) }),
                    (ReduceOp::Amin, if x.iter().any(|v| v.is_nan()) { f64::NAN } else { x.iter().cloned().fold(f64::INFINITY, f64::min) }),
                ] {
                    let (db, dv) = Buf::contiguous(DType::F32, &[1]);
                    reduce(op, &dv, &sv, &[0], DType::F32).unwrap();
                    let got = db.f64s()[0];
                    assert!(got == want || (got.is_nan() && want.is_nan()), "{op:?} n {n} {special:?} at {at}: got {got}, want {want}");
                }
            }
        }
    }
}
