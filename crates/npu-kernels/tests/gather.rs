//! index_select and index_add against naive references over every multi-index.

mod common;

use common::*;
use npu_kernels::{index_add, index_select, DType, View};
use proptest::prelude::*;

fn filled(dt: DType, sizes: &[i64], spec: &Spec, seed: u64) -> (Buf, View) {
    let (strides, len) = spec.layout(sizes);
    let mut b = Buf::new(dt, len);
    randomize(&mut b, seed);
    let v = b.view(sizes, &strides, spec.offset);
    (b, v)
}

fn at(b: &Buf, v: &View, idx: &[i64]) -> Vec<u8> {
    let base = (v.ptr as usize - b.bytes().as_ptr() as usize) / v.dtype.size();
    b.elem(base as i64 + offset_of(idx, &v.strides)).to_vec()
}

fn index_buf(vals: &[i64]) -> (Buf, View) {
    let (mut b, v) = Buf::contiguous(DType::I64, &[vals.len() as i64]);
    for (i, &x) in vals.iter().enumerate() {
        b.set(i as i64, &write(DType::I64, V::I(x)));
    }
    (b, v)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn index_select_matches_reference(
        sizes in prop::collection::vec(1i64..5, 1..=3),
        dim_pick in 0usize..3,
        dt in dtype().prop_filter("real", |d| !d.is_complex()),
        ss in spec(3, false),
        picks in prop::collection::vec(0i64..100, 0..6),
        seed in any::<u64>(),
    ) {
        let rank = sizes.len();
        let dim = dim_pick % rank;
        let spec = Spec { perm: { let p: Vec<usize> = ss.perm.iter().copied().filter(|&d| d < rank).collect(); p }, steps: ss.steps[..rank].to_vec(), bcast: vec![false; rank], offset: ss.offset };
        let (sb, sv) = filled(dt, &sizes, &spec, seed);
        let n = sizes[dim];
        // some negative indices, counted from the end
        let idx: Vec<i64> = picks.iter().map(|&p| if p % 3 == 0 { -(p % n) - 1 } else { p % n }).collect();
        let (_ib, iv) = index_buf(&idx);
        let mut osz = sizes.clone();
        osz[dim] = idx.len() as i64;
        let (db, dv) = Buf::contiguous(dt, &osz);
        index_select(&dv, &sv, dim, &iv).unwrap();
        for o in indices(&osz) {
            let mut s = o.clone();
            let k = idx[o[dim] as usize];
            s[dim] = if k < 0 { k + n } else { k };
            let got = db.elem(offset_of(&o, &contiguous_strides(&osz))).to_vec();
            prop_assert!(same(dt, &got, &at(&sb, &sv, &s)));
        }
    }
}

#[test]
fn index_select_out_of_range_is_an_error() {
    let (_s, sv) = Buf::contiguous(DType::F32, &[3, 2]);
    let (_i, iv) = index_buf(&[0, 3]);
    let (_d, dv) = Buf::contiguous(DType::F32, &[2, 2]);
    let e = index_select(&dv, &sv, 0, &iv).unwrap_err();
    assert!(e.0.contains("index 3 is out of bounds for dimension with size 3"), "{e}");
}

#[test]
fn index_add_matches_reference() {
    for dt in [DType::F32, DType::F64, DType::BF16] {
        for (skip, by_count) in [(None, false), (Some(1), false), (None, true)] {
            let idx = [2i64, 0, 2, 1, 2];
            let (_i, iv) = index_buf(&idx);
            let (sb, sv) = Buf::contiguous(dt, &[5, 3]);
            let mut sb = sb;
            let vals: Vec<f64> = (0..15).map(|i| i as f64 * 0.25 - 1.0).collect();
            for (i, &v) in vals.iter().enumerate() {
                sb.set(i as i64, &write(dt, V::F(v)));
            }
            let (mut db, dv) = Buf::contiguous(dt, &[4, 3]);
            for i in 0..12 {
                db.set(i, &write(dt, V::F(1.0)));
            }
            index_add(&dv, 0, &iv, &sv, 2.0, skip, by_count).unwrap();
            let mut want = vec![1.0; 12];
            for (k, &i) in idx.iter().enumerate() {
                if skip == Some(i) {
                    continue;
                }
                let count = idx.iter().filter(|&&j| j == i).count() as f64;
                let scale = if by_count { 2.0 / count } else { 2.0 };
                for c in 0..3usize {
                    want[i as usize * 3 + c] += scale * vals[k * 3 + c];
                }
            }
            let got = db.f64s();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-2 * (1.0 + w.abs()), "{dt:?} {skip:?} {by_count}: {got:?} vs {want:?}");
            }
        }
    }
}

#[test]
fn triangles_match_reference() {
    use npu_kernels::triangle;
    for dt in [DType::F32, DType::I64, DType::Bool, DType::F16] {
        for diag in [-2i64, 0, 1, 3] {
            for upper in [true, false] {
                let sizes = [2i64, 3, 4];
                let spec = Spec { perm: vec![1, 0, 2], ..Spec::contiguous(3) };
                let (sb, sv) = filled(dt, &sizes, &spec, (diag + 7) as u64);
                let (db, dv) = Buf::contiguous(dt, &sizes);
                triangle(&dv, &sv, diag, upper).unwrap();
                for idx in indices(&sizes) {
                    let (i, j) = (idx[1], idx[2]);
                    let keep = if upper { j - i >= diag } else { j - i <= diag };
                    let got = db.elem(offset_of(&idx, &contiguous_strides(&sizes))).to_vec();
                    let want = if keep { at(&sb, &sv, &idx) } else { vec![0u8; dt.size()] };
                    assert!(same(dt, &got, &want), "{dt:?} diag {diag} upper {upper} at {idx:?}");
                }
            }
        }
    }
}
