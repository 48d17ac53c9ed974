//! Hand-vectorized loops where the compiler cannot vectorize the scalar code, selected at run
//! time by CPU feature. Each function falls back to the scalar conversion.

use half::{bf16, f16};

/// Contiguous f32 -> bf16 as `c10::BFloat16` (round to nearest even, NaN to 0x7FC0).
///
/// # Safety
/// `src` and `dst` must be valid for `n` elements.
pub(crate) unsafe fn f32_to_bf16(src: *const f32, dst: *mut bf16, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512() {
        return x86::f32_to_bf16_avx512(src, dst, n);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return x86::f32_to_bf16(src, dst, n);
    }
    for k in 0..n {
        *dst.add(k) = crate::convert::f32_to_bf16(*src.add(k));
    }
}

/// Contiguous bf16 -> f32 (exact: the bits move up by 16).
///
/// # Safety
/// `src` and `dst` must be valid for `n` elements.
pub(crate) unsafe fn bf16_to_f32(src: *const bf16, dst: *mut f32, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512() {
        return x86::bf16_to_f32_avx512(src, dst, n);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return x86::bf16_to_f32(src, dst, n);
    }
    for k in 0..n {
        *dst.add(k) = (*src.add(k)).to_f32();
    }
}

/// Contiguous f32 -> f16, round to nearest even (F16C `vcvtps2ph`, as PyTorch's vectorized path).
///
/// # Safety
/// `src` and `dst` must be valid for `n` elements.
pub(crate) unsafe fn f32_to_f16(src: *const f32, dst: *mut f16, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx") {
        return x86::f32_to_f16(src, dst, n);
    }
    for k in 0..n {
        *dst.add(k) = f16::from_f32(*src.add(k));
    }
}

/// Contiguous f16 -> f32 (exact).
///
/// # Safety
/// `src` and `dst` must be valid for `n` elements.
pub(crate) unsafe fn f16_to_f32(src: *const f16, dst: *mut f32, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx") {
        return x86::f16_to_f32(src, dst, n);
    }
    for k in 0..n {
        *dst.add(k) = (*src.add(k)).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn f32_to_bf16(src: *const f32, dst: *mut bf16, n: usize) {
        let (lsb, bias, nan) = (_mm256_set1_epi32(1), _mm256_set1_epi32(0x7FFF), _mm256_set1_epi32(0x7FC0));
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_loadu_ps(src.add(i));
            let u = _mm256_castps_si256(v);
            // u + 0x7FFF + ((u >> 16) & 1), then the high half; NaN lanes take 0x7FC0
            let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(u), lsb);
            let r = _mm256_srli_epi32::<16>(_mm256_add_epi32(_mm256_add_epi32(u, bias), odd));
            let is_nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            let r = _mm256_blendv_epi8(r, nan, is_nan);
            // pack the 8 u32 (each < 2^16) into 8 u16, in order
            let packed = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(r, r));
            _mm_storeu_si128(dst.add(i) as *mut __m128i, _mm256_castsi256_si128(packed));
            i += 8;
        }
        for k in i..n {
            *dst.add(k) = crate::convert::f32_to_bf16(*src.add(k));
        }
    }

    /// [`f32_to_bf16`] 16 lanes at a time; the AVX2 loop takes the tail.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
    pub(super) unsafe fn f32_to_bf16_avx512(src: *const f32, dst: *mut bf16, n: usize) {
        let (lsb, bias, nan) = (_mm512_set1_epi32(1), _mm512_set1_epi32(0x7FFF), _mm512_set1_epi32(0x7FC0));
        let mut i = 0;
        while i + 16 <= n {
            let v = _mm512_loadu_ps(src.add(i));
            let u = _mm512_castps_si512(v);
            let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(u), lsb);
            let r = _mm512_srli_epi32::<16>(_mm512_add_epi32(_mm512_add_epi32(u, bias), odd));
            let r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v), nan);
            // vpmovdw: each u32 (< 2^16) to its u16, in order
            _mm256_storeu_si256(dst.add(i) as *mut __m256i, _mm512_cvtepi32_epi16(r));
            i += 16;
        }
        f32_to_bf16(src.add(i), dst.add(i), n - i)
    }

    /// [`bf16_to_f32`] 16 lanes at a time; the AVX2 loop takes the tail.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
    pub(super) unsafe fn bf16_to_f32_avx512(src: *const bf16, dst: *mut f32, n: usize) {
        let mut i = 0;
        while i + 16 <= n {
            let h = _mm256_loadu_si256(src.add(i) as *const __m256i);
            let w = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
            _mm512_storeu_ps(dst.add(i), _mm512_castsi512_ps(w));
            i += 16;
        }
        bf16_to_f32(src.add(i), dst.add(i), n - i)
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn bf16_to_f32(src: *const bf16, dst: *mut f32, n: usize) {
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm_loadu_si128(src.add(i) as *const __m128i);
            let w = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h));
            _mm256_storeu_ps(dst.add(i), _mm256_castsi256_ps(w));
            i += 8;
        }
        for k in i..n {
            *dst.add(k) = (*src.add(k)).to_f32();
        }
    }

    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn f32_to_f16(src: *const f32, dst: *mut f16, n: usize) {
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_loadu_ps(src.add(i));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(dst.add(i) as *mut __m128i, h);
            i += 8;
        }
        for k in i..n {
            *dst.add(k) = f16::from_f32(*src.add(k));
        }
    }

    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn f16_to_f32(src: *const f16, dst: *mut f32, n: usize) {
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm_loadu_si128(src.add(i) as *const __m128i);
            _mm256_storeu_ps(dst.add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
        for k in i..n {
            *dst.add(k) = (*src.add(k)).to_f32();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scalar_conversion() {
        let src: Vec<f32> = (0..1000u32)
            .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)))
            .chain([
                1.0 + 2f32.powi(-11),
                65520.0,
                -0.0,
                f32::INFINITY,
                6e-8,
                3e-8,
            ])
            .collect();
        let mut h = vec![f16::ZERO; src.len()];
        unsafe { f32_to_f16(src.as_ptr(), h.as_mut_ptr(), src.len()) };
        for (x, y) in src.iter().zip(&h) {
            let want = f16::from_f32(*x);
            assert!(
                want.to_bits() == y.to_bits() || (want.is_nan() && y.is_nan()),
                "{x}"
            );
        }
        let mut back = vec![0f32; h.len()];
        unsafe { f16_to_f32(h.as_ptr(), back.as_mut_ptr(), h.len()) };
        for (x, y) in h.iter().zip(&back) {
            assert!(x.to_f32().to_bits() == y.to_bits() || y.is_nan());
        }
    }

    /// bf16 both ways against the scalar conversions, bit for bit (NaN included: 0x7FC0),
    /// for every length's tail handling.
    #[test]
    fn bf16_matches_scalar_conversion() {
        let src: Vec<f32> = (0..1003u32)
            .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)))
            .chain([1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8), f32::MAX, -f32::NAN, f32::NAN, -0.0, f32::NEG_INFINITY])
            .collect();
        for n in [src.len(), 7, 8, 9, 0, 16, 17, 25, 31] {
            let mut b = vec![bf16::ZERO; n];
            unsafe { f32_to_bf16(src.as_ptr(), b.as_mut_ptr(), n) };
            for (x, y) in src.iter().zip(&b) {
                assert_eq!(crate::convert::f32_to_bf16(*x).to_bits(), y.to_bits(), "{x}");
            }
            let mut back = vec![0f32; n];
            unsafe { bf16_to_f32(b.as_ptr(), back.as_mut_ptr(), n) };
            for (x, y) in b.iter().zip(&back) {
                assert_eq!(x.to_f32().to_bits(), y.to_bits());
            }
        }
    }
}
