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
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            return x86::f32_to_bf16_avx512bf16(src, dst, n);
        }
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

/// `dst[j * dst_stride + i] (+)= src[i * src_stride + j]` for `i < rows`, `j < cols`: a
/// transposed copy of a strided f32 block, added to `dst` when `accumulate`. Layout changes
/// (channels first <-> channels last) that otherwise run a scalar load and store per value.
///
/// # Safety
/// Both blocks are valid for those elements and do not overlap.
pub(crate) unsafe fn transpose_f32(
    src: *const f32,
    src_stride: usize,
    dst: *mut f32,
    dst_stride: usize,
    (rows, cols): (usize, usize),
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512() {
        return x86::transpose_f32_avx512(src, src_stride, dst, dst_stride, (rows, cols), accumulate);
    }
    transpose_f32_scalar(src, src_stride, dst, dst_stride, (rows, cols), accumulate)
}

/// [`transpose_f32`] one value at a time, in 16 x 16 blocks so both sides stay in cache lines
/// already loaded.
unsafe fn transpose_f32_scalar(
    src: *const f32,
    src_stride: usize,
    dst: *mut f32,
    dst_stride: usize,
    (rows, cols): (usize, usize),
    accumulate: bool,
) {
    for r0 in (0..rows).step_by(16) {
        for c0 in (0..cols).step_by(16) {
            for j in c0..(c0 + 16).min(cols) {
                for i in r0..(r0 + 16).min(rows) {
                    let (v, d) = (*src.add(i * src_stride + j), dst.add(j * dst_stride + i));
                    *d = if accumulate { *d + v } else { v };
                }
            }
        }
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

    /// [`f32_to_bf16`] with AVX512-BF16's conversion (round to nearest even), 4 instructions
    /// per 16 lanes where the integer rounding takes 9. It flushes subnormals to zero and keeps
    /// NaN payloads, which `c10::BFloat16` does not: lanes of 16 holding either take the
    /// integer rounding instead.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,avx512bf16")]
    pub(super) unsafe fn f32_to_bf16_avx512bf16(src: *const f32, dst: *mut bf16, n: usize) {
        // vfpclassps categories: quiet NaN 0x01, subnormal 0x20, signalling NaN 0x80
        const SPECIAL: i32 = 0x01 | 0x20 | 0x80;
        let mut i = 0;
        while i + 16 <= n {
            let v = _mm512_loadu_ps(src.add(i));
            if _mm512_fpclass_ps_mask::<SPECIAL>(v) == 0 {
                let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm256_storeu_si256(dst.add(i) as *mut __m256i, h);
            } else {
                f32_to_bf16_avx512(src.add(i), dst.add(i), 16);
            }
            i += 16;
        }
        f32_to_bf16_avx512(src.add(i), dst.add(i), n - i)
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

    /// [`super::transpose_f32`] in 16 x 16 blocks held in registers; masked loads and stores
    /// take the partial blocks at the edges.
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
    pub(super) unsafe fn transpose_f32_avx512(
        src: *const f32,
        src_stride: usize,
        dst: *mut f32,
        dst_stride: usize,
        (rows, cols): (usize, usize),
        accumulate: bool,
    ) {
        let mask = |n: usize| if n >= 16 { 0xFFFF } else { ((1u32 << n) - 1) as __mmask16 };
        for r0 in (0..rows).step_by(16) {
            let nr = (rows - r0).min(16);
            for c0 in (0..cols).step_by(16) {
                let nc = (cols - c0).min(16);
                let mut r = [_mm512_setzero_ps(); 16];
                for (i, v) in r.iter_mut().enumerate().take(nr) {
                    *v = _mm512_maskz_loadu_ps(mask(nc), src.add((r0 + i) * src_stride + c0));
                }
                transpose16(&mut r);
                for (j, &v) in r.iter().enumerate().take(nc) {
                    let d = dst.add((c0 + j) * dst_stride + r0);
                    let v = if accumulate { _mm512_add_ps(_mm512_maskz_loadu_ps(mask(nr), d), v) } else { v };
                    _mm512_mask_storeu_ps(d, mask(nr), v);
                }
            }
        }
    }

    /// Transposes the 16 x 16 matrix whose rows are `r`: interleaving 32-bit, then 64-bit
    /// elements leaves `u[4k + m]`'s 128-bit lane L holding rows 4k..4k+3 of column 4L + m;
    /// two rounds of lane shuffles gather each column's four lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose16(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for k in 0..8 {
            t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
        }
        let (pd, ps) = (_mm512_castps_pd, _mm512_castpd_ps);
        let mut u = [_mm512_setzero_ps(); 16];
        for k in 0..4 {
            let (a, b, c, d) = (pd(t[4 * k]), pd(t[4 * k + 1]), pd(t[4 * k + 2]), pd(t[4 * k + 3]));
            u[4 * k] = ps(_mm512_unpacklo_pd(a, c));
            u[4 * k + 1] = ps(_mm512_unpackhi_pd(a, c));
            u[4 * k + 2] = ps(_mm512_unpacklo_pd(b, d));
            u[4 * k + 3] = ps(_mm512_unpackhi_pd(b, d));
        }
        for m in 0..4 {
            // lanes (0, 2) and (1, 3) of rows 0-7, then of rows 8-15
            let v0 = _mm512_shuffle_f32x4::<0x88>(u[m], u[4 + m]);
            let v1 = _mm512_shuffle_f32x4::<0xDD>(u[m], u[4 + m]);
            let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + m], u[12 + m]);
            let v3 = _mm512_shuffle_f32x4::<0xDD>(u[8 + m], u[12 + m]);
            r[m] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
            r[4 + m] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
            r[8 + m] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
            r[12 + m] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
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
    /// for every length's tail handling. The first three blocks of 16: plain values (the
    /// AVX512-BF16 instruction's), then one with a subnormal and one with a NaN payload (the
    /// integer rounding's).
    #[test]
    fn bf16_matches_scalar_conversion() {
        let block = |special: f32| (0..16).map(move |k| if k == 5 { special } else { 1.0 + k as f32 / 3.0 });
        let src: Vec<f32> = block(0.1)
            .chain(block(1e-39))
            .chain(block(f32::from_bits(0x7FA0_0001)))
            .chain((0..1003u32).map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761))))
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

    /// Transposed copies and sums against the plain loop: whole and partial 16 x 16 blocks,
    /// strides wider than the block, empty blocks.
    #[test]
    fn transpose_matches_loop() {
        for (rows, cols) in [(16, 16), (3, 5), (17, 33), (40, 7), (1, 16), (0, 4), (64, 56)] {
            let (ss, ds) = (cols + 3, rows + 5);
            let src: Vec<f32> = (0..rows * ss).map(|i| i as f32 * 0.5 - 7.0).collect();
            for accumulate in [false, true] {
                let init: Vec<f32> = (0..cols * ds).map(|i| (i % 11) as f32).collect();
                let (mut got, mut scalar) = (init.clone(), init.clone());
                unsafe {
                    transpose_f32(src.as_ptr(), ss, got.as_mut_ptr(), ds, (rows, cols), accumulate);
                    transpose_f32_scalar(src.as_ptr(), ss, scalar.as_mut_ptr(), ds, (rows, cols), accumulate);
                }
                let mut want = init.clone();
                for i in 0..rows {
                    for j in 0..cols {
                        let v = src[i * ss + j];
                        want[j * ds + i] = if accumulate { want[j * ds + i] + v } else { v };
                    }
                }
                assert_eq!(got, want, "{rows}x{cols} accumulate {accumulate}");
                assert_eq!(scalar, want, "scalar {rows}x{cols} accumulate {accumulate}");
            }
        }
    }
}
