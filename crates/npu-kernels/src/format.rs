//! The physical layouts of the NPU's storage formats (torch_npu's `npu_format_cast`): how the
//! elements of a tensor of logical shape (N, C, H, W), (N, C, D, H, W) or (..., M, N) are
//! placed in a storage of another shape, padding included, as on the device:
//!
//! | format | storage shape | element (n, c, h, w) / (..., m, k) at |
//! |---|---|---|
//! | NCHW, ND, NCDHW, NCL | the logical shape | the same index |
//! | NHWC | (N, H, W, C) | (n, h, w, c) |
//! | NC1HWC0 | (N, C1, H, W, C0) | (n, c / C0, h, w, c % C0) |
//! | FRACTAL_Z | (C1·H·W, N1, 16, C0) | ((c / C0)·H·W + h·W + w, n / 16, n % 16, c % C0) |
//! | NDHWC | (N, D, H, W, C) | (n, d, h, w, c) |
//! | NDC1HWC0 | (N, D, C1, H, W, C0) | (n, d, c / C0, h, w, c % C0) |
//! | FRACTAL_Z_3D | (D·C1·H·W, N1, 16, C0) | (d·C1·H·W + (c / C0)·H·W + h·W + w, n / 16, n % 16, c % C0) |
//! | FRACTAL_NZ | (..., K1, M1, 16, K0) | (..., k / K0, m / 16, m % 16, k % K0) |
//!
//! C1 = ceil(C / C0), N1 = ceil(N / 16), M1 = ceil(M / 16), K1 = ceil(K / K0); C0 = K0 = 16,
//! or 32 for 1-byte dtypes. Padding elements are zero. 4-D formats take tensors of fewer dims as
//! torch_npu does ((C) as (1, C, 1, 1), (N, C) as (N, C, 1, 1), (N, C, H) as (N, C, H, 1));
//! FRACTAL_NZ takes (K) as (1, K).
//!
//! Every layout is a permutation of logical dims some of which are split into (outer, inner)
//! blocks, so a conversion is a few strided copies: one per combination of "whole blocks" and
//! "last, partial block" of the split dims.

use crate::view::{err, View};
use crate::{DType, KernelError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Nchw,
    Nhwc,
    Nd,
    Nc1hwc0,
    FractalZ,
    Ndhwc,
    FractalNz,
    Ncdhw,
    Ndc1hwc0,
    FractalZ3d,
    Ncl,
}

const CODES: [(Format, i64, &str); 11] = [
    (Format::Nchw, 0, "NCHW"),
    (Format::Nhwc, 1, "NHWC"),
    (Format::Nd, 2, "ND"),
    (Format::Nc1hwc0, 3, "NC1HWC0"),
    (Format::FractalZ, 4, "FRACTAL_Z"),
    (Format::Ndhwc, 27, "NDHWC"),
    (Format::FractalNz, 29, "FRACTAL_NZ"),
    (Format::Ncdhw, 30, "NCDHW"),
    (Format::Ndc1hwc0, 32, "NDC1HWC0"),
    (Format::FractalZ3d, 33, "FRACTAL_Z_3D"),
    (Format::Ncl, 47, "NCL"),
];

impl Format {
    /// The format of an ACL format code (`torch_npu.Format`), if the NPU implements it.
    pub fn from_code(code: i64) -> Option<Format> {
        CODES.iter().find(|c| c.1 == code).map(|c| c.0)
    }

    pub fn code(self) -> i64 {
        CODES.iter().find(|c| c.0 == self).map_or(-1, |c| c.1)
    }

    pub fn name(self) -> &'static str {
        CODES.iter().find(|c| c.0 == self).map_or("?", |c| c.2)
    }

    /// Whether the storage holds the elements in the logical row-major order (a base format).
    pub fn is_plain(self) -> bool {
        matches!(self, Format::Nchw | Format::Nd | Format::Ncdhw | Format::Ncl)
    }

    /// The base format whose logical shape this format lays out (torch_npu's base format).
    pub fn base(self) -> Format {
        match self {
            Format::Nhwc | Format::Nc1hwc0 | Format::FractalZ => Format::Nchw,
            Format::Ndhwc | Format::Ndc1hwc0 | Format::FractalZ3d => Format::Ncdhw,
            Format::FractalNz => Format::Nd,
            f => f,
        }
    }
}

/// How one storage dim is made from a logical dim.
#[derive(Clone, Copy, Debug)]
enum Part {
    Whole,
    /// `ceil(size / block)` blocks.
    Outer(i64),
    /// The position inside a block of `block` elements.
    Inner(i64),
}

/// A format's layout for one logical shape.
struct Layout {
    /// The logical shape, padded to the rank the format works on.
    logical: Vec<i64>,
    /// Storage dims, outermost first, each a part of a logical dim.
    dims: Vec<(usize, Part)>,
    /// The storage shape torch_npu reports (some storage dims merged).
    storage: Vec<i64>,
}

fn part_size(size: i64, part: Part) -> i64 {
    match part {
        Part::Whole => size,
        Part::Outer(b) => (size + b - 1) / b,
        Part::Inner(b) => b,
    }
}

fn layout(op: &str, format: Format, sizes: &[i64], dtype: DType) -> Result<Layout, KernelError> {
    use Part::*;
    let c0 = if dtype.size() == 1 { 32 } else { 16 };
    let rank = sizes.len();
    let need = |lo: usize, hi: usize| -> Result<(), KernelError> {
        if rank < lo || rank > hi {
            let what = if lo == hi { format!("{lo}") } else { format!("{lo} to {hi}") };
            return Err(err(op, format!("the {} format needs a tensor of {what} dims, got {rank} (shape {sizes:?})", format.name())));
        }
        Ok(())
    };
    let to4 = |s: &[i64]| -> Vec<i64> {
        match s.len() {
            1 => vec![1, s[0], 1, 1],
            2 => vec![s[0], s[1], 1, 1],
            3 => vec![s[0], s[1], s[2], 1],
            _ => s.to_vec(),
        }
    };
    let (logical, dims): (Vec<i64>, Vec<(usize, Part)>) = match format {
        f if f.is_plain() => (sizes.to_vec(), (0..rank).map(|d| (d, Whole)).collect()),
        Format::Nhwc => {
            need(4, 4)?;
            (sizes.to_vec(), vec![(0, Whole), (2, Whole), (3, Whole), (1, Whole)])
        }
        Format::Nc1hwc0 => {
            need(1, 4)?;
            (to4(sizes), vec![(0, Whole), (1, Outer(c0)), (2, Whole), (3, Whole), (1, Inner(c0))])
        }
        Format::FractalZ => {
            need(1, 4)?;
            (to4(sizes), vec![(1, Outer(c0)), (2, Whole), (3, Whole), (0, Outer(16)), (0, Inner(16)), (1, Inner(c0))])
        }
        Format::Ndhwc => {
            need(5, 5)?;
            (sizes.to_vec(), vec![(0, Whole), (2, Whole), (3, Whole), (4, Whole), (1, Whole)])
        }
        Format::Ndc1hwc0 => {
            need(5, 5)?;
            (sizes.to_vec(), vec![(0, Whole), (2, Whole), (1, Outer(c0)), (3, Whole), (4, Whole), (1, Inner(c0))])
        }
        Format::FractalZ3d => {
            need(5, 5)?;
            (sizes.to_vec(), vec![(2, Whole), (1, Outer(c0)), (3, Whole), (4, Whole), (0, Outer(16)), (0, Inner(16)), (1, Inner(c0))])
        }
        Format::FractalNz => {
            need(1, usize::MAX)?;
            let logical = if rank == 1 { vec![1, sizes[0]] } else { sizes.to_vec() };
            let (m, k) = (logical.len() - 2, logical.len() - 1);
            let mut dims: Vec<(usize, Part)> = (0..m).map(|d| (d, Whole)).collect();
            dims.extend([(k, Outer(c0)), (m, Outer(16)), (m, Inner(16)), (k, Inner(c0))]);
            (logical, dims)
        }
        _ => unreachable!("every format is matched above"),
    };
    let phys: Vec<i64> = dims.iter().map(|&(d, p)| part_size(logical[d], p)).collect();
    let storage = match format {
        Format::FractalZ => vec![phys[0] * phys[1] * phys[2], phys[3], phys[4], phys[5]],
        Format::FractalZ3d => vec![phys[0] * phys[1] * phys[2] * phys[3], phys[4], phys[5], phys[6]],
        _ => phys,
    };
    Ok(Layout { logical, dims, storage })
}

/// The storage shape of a tensor of logical shape `sizes` in `format` (padding included).
pub fn format_storage_shape(op: &str, format: Format, sizes: &[i64], dtype: DType) -> Result<Vec<i64>, KernelError> {
    Ok(layout(op, format, sizes, dtype)?.storage)
}

/// Pairs of (storage view, logical view) of equal shapes that together cover every logical
/// element once. `logical` is a view of the logical tensor (any strides); `storage` points at
/// the first element of the storage.
fn regions(l: &Layout, storage: *mut u8, logical: &View) -> Vec<(View, View)> {
    // The logical view at the format's rank: padding dims have size 1.
    let ls: Vec<i64> = if logical.sizes == l.logical {
        logical.strides.clone()
    } else {
        let mut s = logical.strides.clone();
        match (logical.sizes.len(), l.logical.len()) {
            (1, 2) => s.insert(0, 0),           // (K) as (1, K)
            (1, 4) => s = vec![0, s[0], 0, 0],  // (C) as (1, C, 1, 1)
            (_, 4) => s.resize(4, 0),           // (N, C[, H]) padded at the end
            _ => unreachable!("layout() pads only to these ranks"),
        }
        s
    };
    let phys: Vec<i64> = l.dims.iter().map(|&(d, p)| part_size(l.logical[d], p)).collect();
    let mut pstride = vec![1i64; phys.len()];
    for i in (0..phys.len().saturating_sub(1)).rev() {
        pstride[i] = pstride[i + 1] * phys[i + 1];
    }
    let split: Vec<usize> = {
        let mut v: Vec<usize> = l.dims.iter().filter(|(_, p)| matches!(p, Part::Outer(_))).map(|&(d, _)| d).collect();
        v.dedup();
        v
    };
    let esize = logical.dtype.size() as isize;
    let mut out = vec![];
    // Bit k of `choice` picks the partial last block (1) or the whole blocks (0) of split[k].
    'choices: for choice in 0..(1u32 << split.len()) {
        let (mut sv_sizes, mut sv_strides, mut lv_sizes, mut lv_strides) = (vec![], vec![], vec![], vec![]);
        let (mut soff, mut loff) = (0i64, 0i64);
        for (j, &(d, part)) in l.dims.iter().enumerate() {
            let size = l.logical[d];
            let partial = split.iter().position(|&s| s == d).is_some_and(|k| choice >> k & 1 == 1);
            match part {
                Part::Whole => {
                    sv_sizes.push(size);
                    sv_strides.push(pstride[j]);
                    lv_sizes.push(size);
                    lv_strides.push(ls[d]);
                }
                Part::Outer(b) if partial => soff += size / b * pstride[j],
                Part::Outer(b) => {
                    sv_sizes.push(size / b);
                    sv_strides.push(pstride[j]);
                    lv_sizes.push(size / b);
                    lv_strides.push(b * ls[d]);
                }
                Part::Inner(b) => {
                    let n = if partial { size % b } else { b };
                    if partial {
                        loff += size / b * b * ls[d];
                    }
                    sv_sizes.push(n);
                    sv_strides.push(pstride[j]);
                    lv_sizes.push(n);
                    lv_strides.push(ls[d]);
                }
            }
        }
        if lv_sizes.contains(&0) {
            continue 'choices;
        }
        // SAFETY: offsets stay inside the storage and the logical view (they address elements
        // of the region, which is non-empty).
        let (sp, lp) = unsafe { (storage.offset(soff as isize * esize), logical.ptr.offset(loff as isize * esize)) };
        out.push((View::new(sp, logical.dtype, sv_sizes, sv_strides), View::new(lp, logical.dtype, lv_sizes, lv_strides)));
    }
    out
}

/// Lays the tensor `src` out in `format` in the storage at `dst` (which must hold the storage
/// shape's elements of `src.dtype`), zeroing the padding.
pub fn to_format(dst: *mut u8, src: &View, format: Format) -> Result<(), KernelError> {
    let op = "npu_format_cast";
    src.validate(op)?;
    let l = layout(op, format, &src.sizes, src.dtype)?;
    let n: i64 = l.storage.iter().product();
    if !format.is_plain() {
        // SAFETY: the caller guarantees the storage holds `n` elements.
        unsafe { std::ptr::write_bytes(dst, 0, n as usize * src.dtype.size()) };
    }
    for (s, lv) in regions(&l, dst, src) {
        crate::copy::copy(&s, &lv)?;
    }
    Ok(())
}

/// Reads the tensor laid out in `format` in the storage at `src` into `dst` (any strides).
pub fn from_format(dst: &View, src: *const u8, format: Format) -> Result<(), KernelError> {
    let op = "npu_format_cast";
    dst.validate(op)?;
    dst.check_writable(op)?;
    let l = layout(op, format, &dst.sizes, dst.dtype)?;
    for (s, lv) in regions(&l, src as *mut u8, dst) {
        crate::copy::copy(&lv, &s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for (f, c, _) in CODES {
            assert_eq!(Format::from_code(c), Some(f));
            assert_eq!(f.code(), c);
        }
        assert_eq!(Format::from_code(12), None);
    }

    #[test]
    fn storage_shapes() {
        let s = |f, sizes: &[i64], dt| format_storage_shape("t", f, sizes, dt).unwrap();
        assert_eq!(s(Format::Nc1hwc0, &[2, 17, 3, 4], DType::F16), vec![2, 2, 3, 4, 16]);
        assert_eq!(s(Format::Nc1hwc0, &[2, 17, 3, 4], DType::I8), vec![2, 1, 3, 4, 32]);
        assert_eq!(s(Format::FractalZ, &[33, 17, 3, 3], DType::F32), vec![18, 3, 16, 16]);
        assert_eq!(s(Format::FractalNz, &[8, 100, 30], DType::F16), vec![8, 2, 7, 16, 16]);
        assert_eq!(s(Format::FractalNz, &[5], DType::F16), vec![1, 1, 16, 16]);
        assert_eq!(s(Format::Nhwc, &[2, 3, 4, 5], DType::F32), vec![2, 4, 5, 3]);
        assert_eq!(s(Format::FractalZ3d, &[20, 3, 2, 3, 3], DType::F16), vec![18, 2, 16, 16]);
        assert!(format_storage_shape("t", Format::Nhwc, &[2, 3], DType::F32).unwrap_err().0.contains("NHWC format needs a tensor of 4 dims"));
    }
}
