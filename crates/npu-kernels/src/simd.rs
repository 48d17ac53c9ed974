//! Hand-vectorized loops where the compiler cannot vectorize the scalar code, selected at run
//! time by CPU feature. Each function falls back to the scalar conversion.

use half::f16;

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
    use half::f16;
    use std::arch::x86_64::*;

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
}
