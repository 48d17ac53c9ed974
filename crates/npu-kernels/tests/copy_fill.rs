//! copy_ and fill_ against a naive reference: one element at a time, over every multi-index.

mod common;

use common::*;
use npu_kernels::{copy, fill, with_sequential, DType, Scalar, View};
use proptest::prelude::*;

/// Runs `copy` on views laid out by `ds`/`ss` and checks every byte of the destination buffer
/// (elements outside the view must be untouched).
fn check_copy(sizes: &[i64], dt: DType, ds: &Spec, st: DType, ss: &Spec, seed: u64) {
    let (dstrides, dlen) = ds.layout(sizes);
    let (sstrides, slen) = ss.layout(sizes);
    let mut src = Buf::new(st, slen);
    randomize(&mut src, seed);
    let mut dst = Buf::new(dt, dlen);
    randomize(&mut dst, seed ^ 0xdead);
    let mut want = Buf::new(dt, dlen);
    want.bytes_mut().copy_from_slice(dst.bytes());
    for idx in indices(sizes) {
        let v = read(st, src.elem(ss.offset + offset_of(&idx, &sstrides)));
        want.set(ds.offset + offset_of(&idx, &dstrides), &write(dt, v));
    }
    let sv = src.view(sizes, &sstrides, ss.offset);
    let dv = dst.view(sizes, &dstrides, ds.offset);
    copy(&dv, &sv).unwrap();
    assert_same(
        &dst,
        &want,
        &format!(
            "copy {} <- {} sizes {sizes:?} dst {ds:?} src {ss:?}",
            dt.name(),
            st.name()
        ),
    );
}

#[test]
fn copy_every_dtype_pair() {
    let sizes = [3i64, 4, 5];
    let layouts = [
        (Spec::contiguous(3), Spec::contiguous(3)),
        // transposed source
        (
            Spec::contiguous(3),
            Spec {
                perm: vec![2, 0, 1],
                ..Spec::contiguous(3)
            },
        ),
        // sliced destination, broadcast + stepped source
        (
            Spec {
                steps: vec![1, 2, 1],
                offset: 1,
                ..Spec::contiguous(3)
            },
            Spec {
                steps: vec![1, 1, 3],
                bcast: vec![false, true, false],
                offset: 2,
                ..Spec::contiguous(3)
            },
        ),
    ];
    for dt in DType::ALL {
        for st in DType::ALL {
            for (k, (ds, ss)) in layouts.iter().enumerate() {
                check_copy(
                    &sizes,
                    dt,
                    ds,
                    st,
                    ss,
                    (dt as u64) << 8 | (st as u64) << 16 | k as u64,
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn copy_matches_reference(
        (sizes, ds, ss) in shape().prop_flat_map(|s| { let r = s.len(); (Just(s), spec(r, false), spec(r, true)) }),
        dt in dtype(), st in dtype(), seed in any::<u64>(),
    ) {
        check_copy(&sizes, dt, &ds, st, &ss, seed);
    }

    #[test]
    fn fill_matches_reference(
        (sizes, ds) in shape().prop_flat_map(|s| { let r = s.len(); (Just(s), spec(r, true)) }),
        dt in dtype(),
        value in prop_oneof![
            any::<bool>().prop_map(Scalar::Bool),
            (-300i64..300).prop_map(Scalar::Int),
            any::<i64>().prop_map(Scalar::Int),
            (-600i32..600).prop_map(|x| Scalar::Float(x as f64 / 2.0)),
            any::<f64>().prop_map(Scalar::Float),
            Just(Scalar::Float(f64::NAN)),
            ((-4i32..4), (-2i32..2)).prop_map(|(r, i)| Scalar::Complex(r as f64 * 1.5, i as f64)),
        ],
        seed in any::<u64>(),
    ) {
        let (strides, len) = ds.layout(&sizes);
        let mut dst = Buf::new(dt, len);
        randomize(&mut dst, seed);
        let mut want = Buf::new(dt, len);
        want.bytes_mut().copy_from_slice(dst.bytes());
        let v = match value {
            Scalar::Bool(b) => V::B(b),
            Scalar::Int(i) => V::I(i),
            Scalar::Float(f) => V::F(f),
            Scalar::Complex(r, i) => V::C(r, i),
        };
        let fits = value.check_fits(dt).is_ok();
        if fits {
            for idx in indices(&sizes) {
                want.set(ds.offset + offset_of(&idx, &strides), &write(dt, v));
            }
        }
        let r = fill(&dst.view(&sizes, &strides, ds.offset), value);
        prop_assert_eq!(r.is_ok(), fits, "{:?}", r);
        assert_same(&dst, &want, &format!("fill {} with {value:?}", dt.name()));
    }
}

#[test]
fn fill_checks_overflow_like_torch() {
    let (b, v) = Buf::contiguous(DType::I8, &[3]);
    let e = fill(&v, Scalar::Int(300)).unwrap_err();
    assert_eq!(
        e.0,
        "value cannot be converted to type int8_t without overflow"
    );
    assert_eq!(b.bytes(), &[0, 0, 0]); // untouched
    fill(&v, Scalar::Float(-3.7)).unwrap();
    assert_eq!(b.bytes(), &[253, 253, 253]);
    let (b, v) = Buf::contiguous(DType::U8, &[2]);
    fill(&v, Scalar::Int(-255)).unwrap();
    assert_eq!(b.bytes(), &[1, 1]);
    let (b, v) = Buf::contiguous(DType::Bool, &[2]);
    fill(&v, Scalar::Float(f64::NAN)).unwrap();
    assert_eq!(b.bytes(), &[1, 1]);
    let (_keep, v) = Buf::contiguous(DType::F16, &[2]);
    assert!(fill(&v, Scalar::Float(70000.0)).is_err());
    assert!(fill(&v, Scalar::Float(f64::INFINITY)).is_ok());
}

#[test]
fn fill_broadcast_destination() {
    // torch allows fill_ on an expanded tensor: every alias gets the value.
    let mut b = Buf::new(DType::F32, 3);
    let v = b.view(&[4, 3], &[0, 1], 0);
    fill(&v, Scalar::Float(2.5)).unwrap();
    assert_eq!(b.f64s(), vec![2.5; 3]);
}

/// Conversion edge cases, checked against values measured on torch 2.15 (x86-64).
#[test]
fn conversion_edge_cases() {
    fn conv(st: DType, dt: DType, vals: &[f64]) -> Vec<f64> {
        let (mut s, sv) = Buf::contiguous(st, &[vals.len() as i64]);
        for (i, &x) in vals.iter().enumerate() {
            s.set(i as i64, &write(st, V::F(x)));
        }
        let (d, dv) = Buf::contiguous(dt, &[vals.len() as i64]);
        copy(&dv, &sv).unwrap();
        d.f64s()
    }
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    // any -> bool is != 0; NaN and inf are true
    assert_eq!(
        conv(DType::F32, DType::Bool, &[nan, inf, -inf, 0.0, -0.0, 1e-30]),
        vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    );
    // truncation toward zero
    assert_eq!(
        conv(DType::F64, DType::I32, &[-3.7, 3.7, -0.5, 2147483647.9]),
        vec![-3.0, 3.0, 0.0, 2147483647.0]
    );
    // out of range and NaN: x86 gives INT_MIN, narrower types wrap from int32, uint8 from int64
    let big = [
        2f64.powi(32) + 5.0,
        -(2f64.powi(31)) - 1.0,
        65543.0,
        300.0,
        -1.0,
        nan,
    ];
    assert_eq!(
        conv(DType::F64, DType::I32, &big),
        vec![
            -2147483648.0,
            -2147483648.0,
            65543.0,
            300.0,
            -1.0,
            -2147483648.0
        ]
    );
    assert_eq!(
        conv(DType::F64, DType::U8, &big),
        vec![5.0, 255.0, 7.0, 44.0, 255.0, 0.0]
    );
    assert_eq!(
        conv(DType::F64, DType::I8, &big),
        vec![0.0, 0.0, 7.0, 44.0, -1.0, 0.0]
    );
    assert_eq!(conv(DType::F64, DType::I64, &[3e9, 1e19, nan])[0], 3e9);
    assert_eq!(
        conv(DType::F64, DType::I64, &[1e19, nan, -inf]),
        vec![-(2f64.powi(63)); 3]
    );
    // f32 -> f16 ties to even: 1 + 2^-11 -> 1, 1 + 3 * 2^-11 -> 1 + 2^-9
    let t = 2f64.powi(-11);
    assert_eq!(
        conv(
            DType::F32,
            DType::F16,
            &[1.0 + t, 1.0 + 3.0 * t, 65520.0, 65519.0]
        ),
        vec![1.0, 1.0 + 4.0 * t, inf, 65504.0]
    );
    // f64 -> f16 rounds through f32 (double rounding, like PyTorch): just above a tie gives 1.0
    assert_eq!(
        conv(DType::F64, DType::F16, &[1.0 + t + 2f64.powi(-40)]),
        vec![1.0]
    );
    // bf16: ties to even, and through f32 from f64
    let b = 2f64.powi(-8);
    assert_eq!(
        conv(DType::F32, DType::BF16, &[1.0 + b, 1.0 + 3.0 * b, 70000.0]),
        vec![1.0, 1.0 + 4.0 * b, 70144.0]
    );
    assert_eq!(
        conv(DType::F64, DType::BF16, &[1.0 + b + 2f64.powi(-40)]),
        vec![1.0]
    );
    assert!(conv(DType::F32, DType::BF16, &[nan])[0].is_nan());
    // f16/bf16 -> int goes through float
    assert_eq!(
        conv(DType::BF16, DType::U8, &[255.5, 65543.0]),
        vec![0.0, 0.0]
    ); // 256, 65536
    assert_eq!(
        conv(DType::F16, DType::I32, &[65543.0, -3.5]),
        vec![-2147483648.0, -3.0]
    ); // inf
       // int -> float rounds to nearest
    let (mut s, sv) = Buf::contiguous(DType::I64, &[1]);
    s.set(0, &((1i64 << 62) + (1 << 38) + 1).to_le_bytes());
    let (d, dv) = Buf::contiguous(DType::F32, &[1]);
    copy(&dv, &sv).unwrap();
    assert_eq!(d.f64s(), vec![4.611686568183202e18]);
}

#[test]
fn complex_conversions() {
    let (mut s, sv) = Buf::contiguous(DType::C64, &[4]);
    for (i, (r, im)) in [(0.0f32, 1.0f32), (0.0, 0.0), (f32::NAN, 0.0), (-1.5, 7.0)]
        .iter()
        .enumerate()
    {
        s.set(i as i64, &[r.to_le_bytes(), im.to_le_bytes()].concat());
    }
    let (d, dv) = Buf::contiguous(DType::Bool, &[4]);
    copy(&dv, &sv).unwrap();
    assert_eq!(d.bytes(), &[1, 0, 1, 1]);
    let (d, dv) = Buf::contiguous(DType::U8, &[4]);
    copy(&dv, &sv).unwrap();
    assert_eq!(d.bytes(), &[0, 0, 0, 255]); // real part, then float -> uint8 rules
    let (d, dv) = Buf::contiguous(DType::F64, &[4]);
    copy(&dv, &sv).unwrap();
    assert_eq!(d.f64s()[3], -1.5);
    let (d, dv) = Buf::contiguous(DType::C128, &[4]);
    copy(&dv, &sv).unwrap();
    assert_eq!(read(DType::C128, d.elem(3)).real(), -1.5);
    assert!(matches!(read(DType::C128, d.elem(0)), V::C(r, i) if r == 0.0 && i == 1.0));
    // real -> complex: imaginary part 0
    let (mut s, sv) = Buf::contiguous(DType::I16, &[1]);
    s.set(0, &(-7i16).to_le_bytes());
    let (d, dv) = Buf::contiguous(DType::C64, &[1]);
    copy(&dv, &sv).unwrap();
    assert!(matches!(read(DType::C64, d.elem(0)), V::C(r, i) if r == -7.0 && i == 0.0));
}

#[test]
fn copy_onto_itself_and_in_place_conversion() {
    let (mut b, v) = Buf::contiguous(DType::F32, &[5]);
    for i in 0..5 {
        b.set(i, &(i as f32 + 0.5).to_le_bytes());
    }
    copy(&v, &v).unwrap();
    assert_eq!(b.f64s(), vec![0.5, 1.5, 2.5, 3.5, 4.5]);
    // same memory, another dtype of the same size: converts element by element in place
    let iv = View {
        dtype: DType::I32,
        ..v.clone()
    };
    copy(&iv, &v).unwrap();
    let ints: Vec<i32> = b
        .bytes()
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(ints, vec![0, 1, 2, 3, 4]);
}

#[test]
fn copy_rejects_bad_views() {
    let (_ka, a) = Buf::contiguous(DType::F32, &[2, 3]);
    let (_kb, b) = Buf::contiguous(DType::F32, &[3, 2]);
    assert!(copy(&a, &b).unwrap_err().0.contains("does not match"));
    let bad = View {
        strides: vec![1],
        ..a.clone()
    };
    assert!(copy(&bad, &a).is_err());
    let neg = View {
        sizes: vec![-1, 3],
        ..a.clone()
    };
    assert!(copy(&neg, &neg).is_err());
    let overlap = View {
        strides: vec![0, 1],
        ..a.clone()
    };
    assert!(copy(&overlap, &a)
        .unwrap_err()
        .0
        .contains("more than one element"));
    let null = View {
        ptr: std::ptr::null_mut(),
        ..a.clone()
    };
    assert!(copy(&null, &a).is_err());
    // zero-size views need no memory at all
    let empty = View {
        ptr: std::ptr::null_mut(),
        dtype: DType::F64,
        sizes: vec![0, 3],
        strides: vec![3, 1],
    };
    copy(
        &empty,
        &View {
            dtype: DType::I8,
            ..empty.clone()
        },
    )
    .unwrap();
    fill(&empty, Scalar::Int(1)).unwrap();
}

/// Copies whose two inner dims are transposed between the operands go through square tiles:
/// both directions, partial tiles at both edges, outer dims, a broadcast source, each element
/// size.
#[test]
fn transposed_copies() {
    let c = Spec::contiguous(3);
    let t = Spec { perm: vec![0, 2, 1], ..Spec::contiguous(3) };
    let b = Spec { bcast: vec![false, false, true], ..t.clone() };
    for dt in [DType::U8, DType::BF16, DType::F32, DType::I64, DType::C128] {
        for (ds, ss) in [(&c, &t), (&t, &c), (&c, &b)] {
            for sizes in [[3i64, 70, 45], [1, 64, 33], [2, 31, 90]] {
                check_copy(&sizes, dt, ds, dt, ss, 11);
            }
        }
    }
}

/// Large tensors take the parallel path; it must give the same bytes as the sequential one.
#[test]
fn parallel_copy_matches_sequential() {
    let sizes = [300i64, 1000];
    let mut src = Buf::new(DType::F32, 300_000);
    randomize(&mut src, 7);
    for (dt, sstrides) in [
        (DType::F16, [1000i64, 1]),
        (DType::F32, [1, 300]),
        (DType::F32, [1000, 1]),
        (DType::I64, [0, 1]),
    ] {
        let sv = src.view(&sizes, &sstrides, 0);
        let (par, pv) = Buf::contiguous(dt, &sizes);
        copy(&pv, &sv).unwrap();
        let (seq, qv) = Buf::contiguous(dt, &sizes);
        with_sequential(|| copy(&qv, &sv)).unwrap();
        assert_same(&par, &seq, "parallel vs sequential");
        // and both agree with the reference on a sample of elements
        for i in (0..300_000i64).step_by(997) {
            let idx = [i / 1000, i % 1000];
            let v = read(DType::F32, src.elem(offset_of(&idx, &sstrides)));
            assert!(same(dt, par.elem(i), &write(dt, v)));
        }
    }
}
