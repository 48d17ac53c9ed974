//! Storage formats against index formulas written out per format: every logical element lands
//! where the format puts it, padding is zero, and reading back (into strided views) round-trips.

mod common;

use common::*;
use npu_kernels::{format_storage_shape, from_format, to_format, DType, Format};

fn cdiv(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Where the element at logical index `i` of `sizes` lives in the storage, by the formulas of
/// the format table (torch_npu's layouts).
fn naive_offset(f: Format, sizes: &[i64], i: &[i64], c0: i64) -> i64 {
    let pad4 = |v: &[i64], fill: i64| -> Vec<i64> {
        match v.len() {
            1 => vec![fill, v[0], fill, fill],
            2 => vec![v[0], v[1], fill, fill],
            3 => vec![v[0], v[1], v[2], fill],
            _ => v.to_vec(),
        }
    };
    match f {
        Format::Nhwc => {
            let ([_, c, h, w], [n, ci, hi, wi]) = (<[i64; 4]>::try_from(sizes).unwrap(), <[i64; 4]>::try_from(i).unwrap());
            ((n * h + hi) * w + wi) * c + ci
        }
        Format::Nc1hwc0 | Format::FractalZ => {
            let s = pad4(sizes, 1);
            let x = pad4(i, 0);
            let (nn, c, h, w) = (s[0], s[1], s[2], s[3]);
            let (n, ci, hi, wi) = (x[0], x[1], x[2], x[3]);
            let c1 = cdiv(c, c0);
            if f == Format::Nc1hwc0 {
                (((n * c1 + ci / c0) * h + hi) * w + wi) * c0 + ci % c0
            } else {
                ((((ci / c0) * h + hi) * w + wi) * cdiv(nn, 16) + n / 16) * 16 * c0 + (n % 16) * c0 + ci % c0
            }
        }
        Format::Ndhwc | Format::Ndc1hwc0 | Format::FractalZ3d => {
            let (nn, c, d, h, w) = (sizes[0], sizes[1], sizes[2], sizes[3], sizes[4]);
            let (n, ci, di, hi, wi) = (i[0], i[1], i[2], i[3], i[4]);
            let c1 = cdiv(c, c0);
            match f {
                Format::Ndhwc => (((n * d + di) * h + hi) * w + wi) * c + ci,
                Format::Ndc1hwc0 => ((((n * d + di) * c1 + ci / c0) * h + hi) * w + wi) * c0 + ci % c0,
                _ => (((((di * c1 + ci / c0) * h + hi) * w + wi) * cdiv(nn, 16) + n / 16) * 16 + n % 16) * c0 + ci % c0,
            }
        }
        Format::FractalNz => {
            let (s, x) = if sizes.len() == 1 { (vec![1, sizes[0]], vec![0, i[0]]) } else { (sizes.to_vec(), i.to_vec()) };
            let r = s.len();
            let (m, k) = (s[r - 2], s[r - 1]);
            let (mi, ki) = (x[r - 2], x[r - 1]);
            let b = (0..r - 2).fold(0, |acc, d| acc * s[d] + x[d]);
            (((b * cdiv(k, c0) + ki / c0) * cdiv(m, 16) + mi / 16) * 16 + mi % 16) * c0 + ki % c0
        }
        _ => offset_of(i, &contiguous_strides(sizes)),
    }
}

#[test]
fn layouts_match_formulas_and_round_trip() {
    let cases: &[(Format, &[i64])] = &[
        (Format::Nd, &[3, 5]),
        (Format::Nchw, &[2, 3, 4, 5]),
        (Format::Nhwc, &[2, 3, 4, 5]),
        (Format::Nc1hwc0, &[2, 17, 3, 2]),
        (Format::Nc1hwc0, &[2, 32, 1, 3]),
        (Format::Nc1hwc0, &[5, 7]),
        (Format::Nc1hwc0, &[19]),
        (Format::FractalZ, &[33, 17, 3, 3]),
        (Format::FractalZ, &[16, 16, 1, 1]),
        (Format::FractalZ, &[3, 40, 2]),
        (Format::Ndhwc, &[2, 3, 2, 3, 4]),
        (Format::Ndc1hwc0, &[2, 18, 2, 3, 2]),
        (Format::FractalZ3d, &[20, 3, 2, 3, 3]),
        (Format::FractalNz, &[8, 100, 30]),
        (Format::FractalNz, &[2, 3, 16, 32]),
        (Format::FractalNz, &[17]),
        (Format::FractalNz, &[0, 5]),
        (Format::Ncdhw, &[1, 2, 3, 4, 5]),
    ];
    for &(f, sizes) in cases {
        for dt in [DType::F16, DType::F32, DType::I8, DType::BF16] {
            let c0 = if dt.size() == 1 { 32 } else { 16 };
            let storage: i64 = format_storage_shape("t", f, sizes, dt).unwrap().iter().product();
            // a transposed source: the logical view's strides are not row-major
            let rank = sizes.len();
            let mut perm_sizes = sizes.to_vec();
            perm_sizes.reverse();
            let (mut sbuf, _) = Buf::contiguous(dt, &perm_sizes);
            randomize(&mut sbuf, 7 + rank as u64);
            let mut rev = contiguous_strides(&perm_sizes);
            rev.reverse();
            let src = sbuf.view(sizes, &rev, 0);
            let mut dbuf = Buf::new(dt, storage as usize);
            randomize(&mut dbuf, 99); // garbage the padding must overwrite
            to_format(dbuf.view(&[storage], &[1], 0).ptr, &src, f).unwrap();
            let mut covered = vec![false; storage as usize];
            for i in indices(sizes) {
                let off = naive_offset(f, sizes, &i, c0);
                covered[off as usize] = true;
                assert_eq!(dbuf.elem(off), sbuf.elem(offset_of(&i, &rev)), "{f:?} {sizes:?} {dt:?} at {i:?}");
            }
            for (k, c) in covered.iter().enumerate() {
                if !c {
                    assert!(dbuf.elem(k as i64).iter().all(|&b| b == 0), "{f:?} {sizes:?}: padding at {k} not zero");
                }
            }
            // back into a strided (transposed) view
            let (mut obuf, _) = Buf::contiguous(dt, &perm_sizes);
            let out = obuf.view(sizes, &rev, 0);
            from_format(&out, dbuf.view(&[storage], &[1], 0).ptr, f).unwrap();
            assert_eq!(obuf.bytes(), sbuf.bytes(), "{f:?} {sizes:?} {dt:?} round trip");
        }
    }
}
