//! f16 products on AMX's bf16 tiles. Every finite f16 is the exact sum of two bf16: its 11-bit
//! significand rounded to bf16's 8 bits (`hi`), and the remainder (`lo`, at most 3 bits), both
//! normal numbers in bf16's range. So
//!
//! `a @ b = ah @ bh + al @ bh + ah @ bl + al @ bl`,
//!
//! and every product of two bf16 is exact in f32: the four products, summed in AMX's f32 tiles
//! (`gemm_amx::gemm_sum`), accumulate the same exact products PyTorch's CPU f16 matmul
//! accumulates (in another order), rounded once. AMX does the four in less time than f32 FMAs
//! take for one.
//!
//! An infinity or NaN does not split (`inf - inf`): operands holding one are left to the f32
//! path, as are operands with no unit stride.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::dense::{Mat, P};
use crate::scratch::Scratch;
use crate::view::par_ranges;

/// Whether this CPU runs the split (AMX for the products, AVX512-BF16 and -VL for the split
/// itself).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::gemm_bf16::available() && std::arch::is_x86_feature_detected!("avx512vl") && crate::gemm_amx::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The f16 matrix `x` (`rows` x `cols`) split into its bf16 halves `(hi, lo)`, two matrices
/// laid out in `buf` along the same unit-stride axis as `x`. `None` when `x` holds an infinity
/// or NaN, or has no unit stride.
///
/// # Safety
/// `x` addresses `rows` x `cols` readable f16; [`available`].
pub(crate) unsafe fn halves(x: Mat<u16>, rows: usize, cols: usize, buf: &mut Scratch) -> Option<(Mat<u16>, Mat<u16>)> {
    // lines run along memory: rows when cs == 1, else columns
    let (by_rows, lines, len, ls) = match (x.cs, x.rs) {
        (1, _) => (true, rows, cols, x.rs),
        (_, 1) => (false, cols, rows, x.cs),
        _ => return None,
    };
    *buf = Scratch::take::<u16>(2 * lines * len);
    let (out, src) = (P(buf.ptr::<u16>()), P(x.ptr));
    let finite = AtomicBool::new(true);
    par_ranges(lines, (16384 / len.max(1)).max(1), |r| {
        for l in r {
            if !split(src.get().offset(l as isize * ls), len, out.at(l * len), out.at((lines + l) * len)) {
                finite.store(false, Ordering::Relaxed);
                return;
            }
        }
    });
    if !finite.load(Ordering::Relaxed) {
        return None;
    }
    let mat = |ptr| if by_rows { Mat { ptr, rs: len as isize, cs: 1 } } else { Mat { ptr, rs: 1, cs: len as isize } };
    Some((mat(out.get()), mat(out.at(lines * len))))
}

/// `hi[i] + lo[i]` = the f16 `x[i]` exactly, for `i < n`; false (halves unspecified) if some
/// `x[i]` is infinite or NaN.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn split(x: *const u16, n: usize, hi: *mut u16, lo: *mut u16) -> bool {
    // vfpclassps categories: quiet NaN 0x01, +inf 0x08, -inf 0x10, signalling NaN 0x80
    const NOT_FINITE: i32 = 0x01 | 0x08 | 0x10 | 0x80;
    let mut i = 0;
    while i < n {
        let rest = (n - i).min(16);
        let mask = if rest == 16 { 0xFFFF } else { (1u16 << rest) - 1 };
        let v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, x.add(i) as *const i16));
        if _mm512_mask_fpclass_ps_mask::<NOT_FINITE>(mask, v) != 0 {
            return false;
        }
        // f16 values are normal f32s and so are their remainders (multiples of 2^-24):
        // the conversion's flush of subnormals never applies
        let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
        let back = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)));
        let l: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_sub_ps(v, back)));
        _mm256_mask_storeu_epi16(hi.add(i) as *mut i16, mask, h);
        _mm256_mask_storeu_epi16(lo.add(i) as *mut i16, mask, l);
        i += rest;
    }
    true
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn split(_x: *const u16, _n: usize, _hi: *mut u16, _lo: *mut u16) -> bool {
    unreachable!("gemm_f16 needs AMX")
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    /// Every finite f16 splits exactly; infinities and NaN are refused.
    #[test]
    fn every_finite_f16_is_the_sum_of_its_halves() {
        if !available() {
            return;
        }
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let (finite, special): (Vec<u16>, Vec<u16>) = all.iter().partition(|&&b| f16::from_bits(b).is_finite());
        let (mut hi, mut lo) = (vec![0u16; finite.len()], vec![0u16; finite.len()]);
        assert!(unsafe { split(finite.as_ptr(), finite.len(), hi.as_mut_ptr(), lo.as_mut_ptr()) });
        for ((&x, &h), &l) in finite.iter().zip(&hi).zip(&lo) {
            let (h, l) = (bf16::from_bits(h).to_f32(), bf16::from_bits(l).to_f32());
            assert_eq!(h + l, f16::from_bits(x).to_f32(), "{x:#06x}");
        }
        for &s in &special {
            // alone, and as the last of 20 otherwise finite values
            let mut v = vec![0x3C00u16; 20];
            v[19] = s;
            for x in [&v[19..], &v[..]] {
                assert!(!unsafe { split(x.as_ptr(), x.len(), hi.as_mut_ptr(), lo.as_mut_ptr()) }, "{s:#06x}");
            }
        }
    }
}
