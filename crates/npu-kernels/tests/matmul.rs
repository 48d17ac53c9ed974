//! The matmul kernel against a naive triple loop over every multi-index.
//!
//! Data are small multiples of 1/4, so every float product and partial sum is exact in f32 and
//! the only rounding is the final one to the output dtype: results must match bit for bit.

mod common;

use common::*;
use npu_kernels::{matmul, with_sequential, DType, Scalar, View};
use proptest::prelude::*;

const DTYPES: [DType; 9] = [
    DType::F32,
    DType::F64,
    DType::F16,
    DType::BF16,
    DType::I64,
    DType::I32,
    DType::I16,
    DType::I8,
    DType::U8,
];

/// A buffer for a view of `sizes` laid out by `spec`, filled with nice values.
fn operand(dt: DType, sizes: &[i64], spec: &Spec, seed: u64) -> (Buf, View) {
    let (strides, len) = spec.layout(sizes);
    let mut b = Buf::new(dt, len);
    let mut rng = Rng(seed);
    for i in 0..len as i64 {
        let r = (rng.next() % 17) as i64 - 8;
        let v = if dt.is_floating() { V::F(r as f64 / 4.0) } else { V::I(r) };
        b.set(i, &write(dt, v));
    }
    let v = b.view(sizes, &strides, spec.offset);
    (b, v)
}

fn at(b: &Buf, v: &View, idx: &[i64]) -> V {
    let base = (v.ptr as usize - b.bytes().as_ptr() as usize) / v.dtype.size();
    read(v.dtype, b.elem(base as i64 + offset_of(idx, &v.strides)))
}

fn pos(b: &Buf, v: &View, idx: &[i64]) -> i64 {
    let base = (v.ptr as usize - b.bytes().as_ptr() as usize) / v.dtype.size();
    base as i64 + offset_of(idx, &v.strides)
}

#[allow(clippy::too_many_arguments)]
fn check(
    dt: DType,
    batch: &[i64],
    (m, k, n): (i64, i64, i64),
    summed: bool,
    specs: [&Spec; 3],
    alpha: f64,
    beta: f64,
    seed: u64,
) {
    let rank = batch.len() + 2;
    let ash: Vec<i64> = batch.iter().copied().chain([m, k]).collect();
    let bsh: Vec<i64> = batch.iter().copied().chain([k, n]).collect();
    let dsh: Vec<i64> = if summed {
        vec![m, n]
    } else {
        batch.iter().copied().chain([m, n]).collect()
    };
    let (ab, av) = operand(dt, &ash, specs[1], seed);
    let (bb, bv) = operand(dt, &bsh, specs[2], seed + 1);
    let (mut db, dv) = operand(dt, &dsh, specs[0], seed + 2);
    let nan_dst = beta == 0.0 && dt.is_floating();
    if nan_dst {
        for i in 0..db.len as i64 {
            db.set(i, &write(dt, V::F(f64::NAN)));
        }
    }
    let mut want = Buf::new(dt, db.len);
    want.bytes_mut().copy_from_slice(db.bytes());
    let float = dt.is_floating();
    let (alpha_s, beta_s) = if float {
        (Scalar::Float(alpha), Scalar::Float(beta))
    } else {
        (Scalar::Int(alpha as i64), Scalar::Int(beta as i64))
    };
    for didx in indices(&dsh) {
        let (i, j) = (didx[didx.len() - 2], didx[didx.len() - 1]);
        let batches: Vec<Vec<i64>> = if summed {
            indices(batch)
        } else {
            vec![didx[..rank - 2].to_vec()]
        };
        let (mut fsum, mut isum) = (0f64, 0i64);
        for bi in &batches {
            for p in 0..k {
                let ai: Vec<i64> = bi.iter().copied().chain([i, p]).collect();
                let bj: Vec<i64> = bi.iter().copied().chain([p, j]).collect();
                let (x, y) = (at(&ab, &av, &ai), at(&bb, &bv, &bj));
                fsum += x.real() * y.real();
                if let (V::I(x), V::I(y)) = (x, y) {
                    isum = isum.wrapping_add(x.wrapping_mul(y));
                }
            }
        }
        let old = at(&db, &dv, &didx);
        let v = if float {
            let o = if beta == 0.0 { 0.0 } else { beta * old.real() };
            // f16/bf16 are computed in f32 and rounded once
            let r = o + alpha * fsum;
            V::F(if dt == DType::F64 { r } else { r as f32 as f64 })
        } else {
            let o = if beta == 0.0 { 0 } else { (beta as i64).wrapping_mul(old.real() as i64) };
            V::I(o.wrapping_add((alpha as i64).wrapping_mul(isum)))
        };
        want.set(pos(&db, &dv, &didx), &write(dt, v));
    }
    let what = format!("{dt:?} batch {batch:?} m{m} k{k} n{n} summed {summed} alpha {alpha} beta {beta} {specs:?}");
    matmul(&dv, &av, &bv, alpha_s, beta_s).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_equal(&db, &want, &what);
}

/// Equal values (the sign of a zero sum is not specified, as in BLAS), NaN equal to NaN.
fn assert_equal(got: &Buf, want: &Buf, what: &str) {
    for i in 0..got.len as i64 {
        let (g, w) = (read(got.dtype, got.elem(i)).real(), read(want.dtype, want.elem(i)).real());
        assert!(g == w || (g.is_nan() && w.is_nan()), "{what}: element {i}: got {g}, want {w}");
    }
}

fn dims() -> impl Strategy<Value = (i64, i64, i64)> {
    let d = prop_oneof![6 => 0i64..7, 1 => 20i64..70];
    (d.clone(), d.clone(), d)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn matmul_matches_reference(
        dt in prop::sample::select(DTYPES.to_vec()),
        batch in prop::collection::vec(0i64..4, 0..=2),
        mkn in dims(),
        summed in prop::bool::weighted(0.2),
        sd in spec(4, false),
        sa in spec(4, true),
        sb in spec(4, true),
        alpha in prop::sample::select(vec![1.0f64, 2.0, -1.0, 0.5]),
        beta in prop::sample::select(vec![0.0f64, 1.0, 0.5, -2.0]),
        seed in any::<u64>(),
    ) {
        let summed = summed && batch.len() == 1;
        let (alpha, beta) = if dt.is_floating() { (alpha, beta) } else { (alpha.round(), beta.round()) };
        let rank = batch.len() + 2;
        let cut = |s: &Spec, r: usize| {
            // a spec for rank r: keep the relative memory order of the first r dims
            let mut perm: Vec<usize> = s.perm.iter().copied().filter(|&d| d < r).collect();
            if perm.len() != r { perm = (0..r).collect(); }
            Spec { perm, steps: s.steps[..r].to_vec(), bcast: s.bcast[..r].to_vec(), offset: s.offset }
        };
        let dr = if summed { 2 } else { rank };
        check(dt, &batch, mkn, summed, [&cut(&sd, dr), &cut(&sa, rank), &cut(&sb, rank)], alpha, beta, seed);
    }
}

/// Products large enough for the gemm crate's blocking and threads, against the split-free run.
#[test]
fn large_products_are_split_without_changing_results() {
    for dt in [DType::F32, DType::BF16, DType::F64] {
        let c = Spec::contiguous(3);
        let t = Spec { perm: vec![0, 2, 1], ..Spec::contiguous(3) };
        let (_a, av) = operand(dt, &[3, 130, 257], &t, 7);
        let (_b, bv) = operand(dt, &[3, 257, 96], &c, 8);
        let (d1, dv1) = operand(dt, &[3, 130, 96], &c, 9);
        let (d2, dv2) = operand(dt, &[3, 130, 96], &c, 9);
        matmul(&dv1, &av, &bv, Scalar::Float(1.0), Scalar::Float(1.0)).unwrap();
        with_sequential(|| matmul(&dv2, &av, &bv, Scalar::Float(1.0), Scalar::Float(1.0))).unwrap();
        assert_same(&d1, &d2, &format!("{dt:?}"));
        // and the first row against the reference
        check(dt, &[3], (130, 257, 96), false, [&c, &t, &c], 1.0, 1.0, 11);
    }
}

/// bf16 with long odd depths (the AVX512-BF16 kernel pads the last pair; on AMX, depths past
/// 256 take several passes), tiles cut at both edges, transposed operands, summed products
/// (addbmm), and on AMX products of several tasks (at most 512 rows by 512 columns each,
/// fewer on small products).
#[test]
fn bf16_products_with_long_odd_depths() {
    let c = Spec::contiguous(3);
    let t = Spec { perm: vec![0, 2, 1], ..Spec::contiguous(3) };
    for (m, k, n) in [(37, 1101, 70), (13, 1025, 33), (1, 600, 5), (140, 40, 270), (530, 300, 40), (40, 300, 530)] {
        check(DType::BF16, &[2], (m, k, n), false, [&c, &t, &c], 1.0, 0.5, 5);
        check(DType::BF16, &[2], (m, k, n), false, [&c, &c, &t], -2.0, 0.0, 6);
        check(DType::BF16, &[2], (m, k, n), true, [&Spec::contiguous(2), &c, &c], 0.5, 1.0, 7);
    }
}

/// f16 products large enough for AMX, where each f16 is split into two bf16 halves, with
/// values that use all 11 bits of the significand (so the remainders are not zero). A has three
/// nonzeros per row in [1, 2), B is dense in (-2, 2): every product and sum is exact in f32, and
/// the result must match the reference bit for bit. B is row-major and transposed; an
/// infinity or NaN in either operand (which does not split) must give the reference's inf/NaN;
/// batched products with a broadcast operand, plain and summed.
#[test]
fn f16_products_with_full_significands() {
    let (m, k, n) = (70i64, 100i64, 90i64);
    let mut rng = common::Rng(3);
    let full = |rng: &mut common::Rng| (1024 + rng.next() % 1024) as f64 / 1024.0 * if rng.next() % 2 == 0 { 1.0 } else { -1.0 };
    let mut a_vals = vec![0f64; (m * k) as usize];
    for i in 0..m as usize {
        for _ in 0..3 {
            let p = (rng.next() % k as u64) as usize;
            a_vals[i * k as usize + p] = full(&mut rng);
        }
    }
    let b_vals: Vec<f64> = (0..k * n).map(|_| full(&mut rng)).collect();
    let special = [None, Some((0usize, f64::INFINITY)), Some((1, f64::NAN)), Some((0, f64::NEG_INFINITY))];
    for (transposed, special) in [false, true].into_iter().flat_map(|t| special.map(|s| (t, s))) {
        let (mut a, mut b) = (a_vals.clone(), b_vals.clone());
        if let Some((which, v)) = special {
            // an element of row 5 of A, or of column 7 of B
            if which == 0 { a[5 * k as usize + 9] = v } else { b[9 * n as usize + 7] = v }
        }
        let (mut ab, av) = Buf::contiguous(DType::F16, &[m, k]);
        let mut bb = Buf::new(DType::F16, (k * n) as usize);
        let bv = if transposed { bb.view(&[k, n], &[1, k], 0) } else { bb.view(&[k, n], &[n, 1], 0) };
        for (i, &x) in a.iter().enumerate() {
            ab.set(i as i64, &write(DType::F16, V::F(x)));
        }
        for p in 0..k {
            for j in 0..n {
                let off = if transposed { j * k + p } else { p * n + j };
                bb.set(off, &write(DType::F16, V::F(b[(p * n + j) as usize])));
            }
        }
        let (mut db, dv) = Buf::contiguous(DType::F16, &[m, n]);
        let mut want = Buf::new(DType::F16, (m * n) as usize);
        for i in 0..m {
            for j in 0..n {
                let r: f64 = (0..k).map(|p| a[(i * k + p) as usize] * b[(p * n + j) as usize]).sum();
                want.set(i * n + j, &write(DType::F16, V::F(r)));
            }
        }
        for i in 0..db.len as i64 {
            db.set(i, &write(DType::F16, V::F(f64::NAN)));
        }
        let what = format!("f16 {m}x{k}x{n} transposed {transposed} special {special:?}");
        matmul(&dv, &av, &bv, Scalar::Float(1.0), Scalar::Float(0.0)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_equal(&db, &want, &what);
    }
    // batches, one operand broadcast over them (split once, used by every product), summed
    let (c, bc) = (Spec::contiguous(3), Spec { bcast: vec![true, false, false], ..Spec::contiguous(3) });
    check(DType::F16, &[3], (m, k, n), false, [&c, &c, &bc], 1.0, 0.5, 12);
    check(DType::F16, &[3], (m, k, n), true, [&Spec::contiguous(2), &bc, &c], 2.0, 1.0, 13);
}

#[test]
fn errors_name_the_problem() {
    let (_a, av) = Buf::contiguous(DType::F32, &[2, 3]);
    let (_b, bv) = Buf::contiguous(DType::F32, &[4, 5]);
    let (_d, dv) = Buf::contiguous(DType::F32, &[2, 5]);
    let e = matmul(&dv, &av, &bv, Scalar::Int(1), Scalar::Int(0)).unwrap_err();
    assert!(e.0.contains("cannot be multiplied"), "{e}");
    let (_b, bv) = Buf::contiguous(DType::F64, &[3, 5]);
    let e = matmul(&dv, &av, &bv, Scalar::Int(1), Scalar::Int(0)).unwrap_err();
    assert!(e.0.contains("same dtype"), "{e}");
    let (_a, av) = Buf::contiguous(DType::Bool, &[2, 3]);
    let (_b, bv) = Buf::contiguous(DType::Bool, &[3, 5]);
    let (_d, dv) = Buf::contiguous(DType::Bool, &[2, 5]);
    let e = matmul(&dv, &av, &bv, Scalar::Int(1), Scalar::Int(0)).unwrap_err();
    assert!(e.0.contains("not implemented for 'Bool'"), "{e}");
}
