//! bf16 matrix products on AVX512-BF16: `vdpbf16ps` multiplies pairs of bf16 values and adds
//! both (exact) products to f32 accumulators, which is how oneDNN computes PyTorch's CPU bf16
//! matmul on such machines. Both operands are packed once into panels the microkernel
//! streams: A in MR-row panels and B in NR-column panels, each element of a panel being the
//! pair (k, k+1) in one 32-bit word (an odd K is padded with a zero). A tile accumulates over
//! all of K in registers, then is written once: rounded to bf16 (`dst = alpha * acc + beta *
//! dst`), or added to an f32 buffer when the caller sums several products.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::dense::P;
use crate::scratch::Scratch;
use crate::view::par_ranges;

/// Rows and columns of the microkernel's tile: 12 x 2 zmm accumulators of 16 f32.
const MR: usize = 14;
const NR: usize = 32;
/// Columns of B one task covers (its packed panels stay in L2 while A panels stream by).
const NC: usize = 256;
/// Rows of A one task covers.
const MC: usize = 7 * MR;

/// A strided bf16 matrix (raw bits).
pub(crate) type Mat = crate::dense::Mat<u16>;

/// Whether this CPU runs the kernel.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Packs `count` lines (rows of A, columns of B) over depths `0..k` into panels of `width`
/// lines and `kp` pairs of depths (at least `k.div_ceil(2)`) at `out`: word `q * width + l` of
/// panel `p` holds the bf16 pair at depths `2q` (low half) and `2q + 1` (high half) of line
/// `p * width + l`, zero past the end of either. Element (line, depth) is at
/// `x + line * ls + depth * ds`. Writes every word of the `count.div_ceil(width)` panels.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn pack(x: *const u16, ls: isize, ds: isize, count: usize, width: usize, k: usize, kp: usize, out: *mut u32) {
    let pairs = k.div_ceil(2);
    // Pairs whose second depth exists; an odd `k` leaves one half pair at the end.
    let whole = k / 2;
    let po = P(out);
    let xp = P(x as *mut u16);
    let el = |line: usize, depth: usize| *xp.get().offset(line as isize * ls + depth as isize * ds) as u32;
    par_ranges(count.div_ceil(width), 2, |panels| {
        // Lines run along memory in whole panels (B of a row-major product): every panel reads
        // the same depth rows, so the rows are walked in blocks across the panels. A wide B has
        // each row on a page of its own; walking it per panel cost a TLB miss per row and panel.
        let blocked = if ds != 1 && ls == 1 && width == NR { panels.start..panels.end.min(count / NR) } else { 0..0 };
        for q0 in (0..whole).step_by(8) {
            for p in blocked.clone() {
                let panel = po.at(p * kp * width);
                for q in q0..(q0 + 8).min(whole) {
                    let row = |d: usize| &*(xp.get().offset((p * width) as isize + d as isize * ds) as *const [u16; NR]);
                    interleave(row(2 * q), row(2 * q + 1), &mut *(panel.add(q * width) as *mut [u32; NR]));
                }
            }
        }
        for p in panels {
            let panel = po.at(p * kp * width);
            let lines = width.min(count - p * width);
            if blocked.contains(&p) {
                // interleaved above
            } else if ds == 1 {
                // Depth runs along memory: each pair is one (unaligned) 32-bit word, and the
                // panel is the transpose of the lines' words, 16 x 16 at a time where whole.
                let line = |l: usize| xp.get().offset((p * width + l) as isize * ls);
                let done = if lines == width && width % 16 == 0 { whole / 16 * 16 } else { 0 };
                for q0 in (0..done).step_by(16) {
                    for l0 in (0..width).step_by(16) {
                        transpose16(|i| line(l0 + i).add(2 * q0) as *const u32, panel.add(q0 * width + l0), width);
                    }
                }
                for l in 0..lines {
                    let src = line(l);
                    for q in done..whole {
                        *panel.add(q * width + l) = (src.add(2 * q) as *const u32).read_unaligned();
                    }
                }
            } else if ls == 1 {
                for q in 0..whole {
                    let row = |d: usize| std::slice::from_raw_parts(xp.get().offset((p * width) as isize + d as isize * ds), lines);
                    let dst = std::slice::from_raw_parts_mut(panel.add(q * width), lines);
                    for ((d, &a), &b) in dst.iter_mut().zip(row(2 * q)).zip(row(2 * q + 1)) {
                        *d = a as u32 | (b as u32) << 16;
                    }
                }
            } else {
                for l in 0..lines {
                    for q in 0..whole {
                        let line = p * width + l;
                        *panel.add(q * width + l) = el(line, 2 * q) | el(line, 2 * q + 1) << 16;
                    }
                }
            }
            for q in 0..pairs {
                if q == whole {
                    for l in 0..lines {
                        *panel.add(q * width + l) = el(p * width + l, 2 * q);
                    }
                }
                for l in lines..width {
                    *panel.add(q * width + l) = 0;
                }
            }
            std::ptr::write_bytes(panel.add(pairs * width), 0, (kp - pairs) * width);
        }
    });
}

/// `dst[c]` = the pair (`lo[c]`, `hi[c]`): one depth row of a panel from two rows of B.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn interleave(lo: &[u16; NR], hi: &[u16; NR], dst: &mut [u32; NR]) {
    // word 2c of a result takes word c of `lo` (index c), word 2c + 1 word c of `hi`
    // (index 32 + c): the first result covers c < 16, the second the rest
    let idx = |half: i16| _mm512_set_epi16(
        47 + half, 15 + half, 46 + half, 14 + half, 45 + half, 13 + half, 44 + half, 12 + half,
        43 + half, 11 + half, 42 + half, 10 + half, 41 + half, 9 + half, 40 + half, 8 + half,
        39 + half, 7 + half, 38 + half, 6 + half, 37 + half, 5 + half, 36 + half, 4 + half,
        35 + half, 3 + half, 34 + half, 2 + half, 33 + half, 1 + half, 32 + half, half,
    );
    let (l, h) = (_mm512_loadu_si512(lo.as_ptr() as *const _), _mm512_loadu_si512(hi.as_ptr() as *const _));
    _mm512_storeu_si512(dst.as_mut_ptr() as *mut _, _mm512_permutex2var_epi16(l, idx(0), h));
    _mm512_storeu_si512(dst.as_mut_ptr().add(16) as *mut _, _mm512_permutex2var_epi16(l, idx(16), h));
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn interleave(lo: &[u16; NR], hi: &[u16; NR], dst: &mut [u32; NR]) {
    for c in 0..NR {
        dst[c] = lo[c] as u32 | (hi[c] as u32) << 16;
    }
}

/// Row `j` of the 16 x 16 words at `dst` (rows `stride` words apart) = word `j` of each of the
/// 16 rows `row(0..16)` (unaligned): a transpose in four rounds of shuffles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(row: impl Fn(usize) -> *const u32, dst: *mut u32, stride: usize) {
    let r: [__m512i; 16] = std::array::from_fn(|i| _mm512_loadu_si512(row(i) as *const _));
    // a[2i], a[2i + 1]: words of rows 2i and 2i + 1 interleaved (each 128-bit lane apart)
    let a: [__m512i; 16] = std::array::from_fn(|x| {
        let (u, v) = (r[x & !1], r[x | 1]);
        if x % 2 == 0 { _mm512_unpacklo_epi32(u, v) } else { _mm512_unpackhi_epi32(u, v) }
    });
    // b[4i + c], lane L: word 4L + c of rows 4i..4i + 4
    let b: [__m512i; 16] = std::array::from_fn(|x| {
        let (i, c) = (x / 4, x % 4);
        let (u, v) = (a[4 * i + c / 2], a[4 * i + 2 + c / 2]);
        if c % 2 == 0 { _mm512_unpacklo_epi64(u, v) } else { _mm512_unpackhi_epi64(u, v) }
    });
    for c in 0..4 {
        let (e0, e1) = (_mm512_shuffle_i32x4::<0x44>(b[c], b[4 + c]), _mm512_shuffle_i32x4::<0xEE>(b[c], b[4 + c]));
        let (f0, f1) = (_mm512_shuffle_i32x4::<0x44>(b[8 + c], b[12 + c]), _mm512_shuffle_i32x4::<0xEE>(b[8 + c], b[12 + c]));
        // word 4L + c of all 16 rows: lane L of b[c], b[4 + c], b[8 + c], b[12 + c]
        let out = [
            _mm512_shuffle_i32x4::<0x88>(e0, f0),
            _mm512_shuffle_i32x4::<0xDD>(e0, f0),
            _mm512_shuffle_i32x4::<0x88>(e1, f1),
            _mm512_shuffle_i32x4::<0xDD>(e1, f1),
        ];
        for (l, v) in out.into_iter().enumerate() {
            _mm512_storeu_si512(dst.add((4 * l + c) * stride) as *mut _, v);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn transpose16(row: impl Fn(usize) -> *const u32, dst: *mut u32, stride: usize) {
    for i in 0..16 {
        for j in 0..16 {
            *dst.add(j * stride + i) = row(i).add(j).read_unaligned();
        }
    }
}

/// Where a product goes.
#[derive(Clone, Copy)]
pub(crate) enum Out {
    /// `c[i * ldc + j] += alpha * acc` (f32).
    F32 { ptr: *mut f32, ldc: usize },
    /// `dst(i, j) = bf16(alpha * acc + beta * dst(i, j))`, the old value ignored without beta.
    Bf16 { ptr: *mut u16, rs: isize, cs: isize, beta: Option<f32> },
}
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// One MR x NR tile at (`i0`, `j0`) over `kp` pairs, of which the `rows` x `cols` corner
/// exists in the output.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(kp: usize, a: *const u32, b: *const u32, out: Out, i0: usize, j0: usize, rows: usize, cols: usize, alpha: f32) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for q in 0..kp {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR) as *const _));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR + 16) as *const _));
        let ap = a.add(q * MR);
        for (r, acc) in acc.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r) as i32));
            acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
            acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
        }
    }
    let mut t = [0f32; MR * NR];
    let al = _mm512_set1_ps(alpha);
    for (r, acc) in acc.iter().enumerate() {
        _mm512_storeu_ps(t.as_mut_ptr().add(r * NR), _mm512_mul_ps(al, acc[0]));
        _mm512_storeu_ps(t.as_mut_ptr().add(r * NR + 16), _mm512_mul_ps(al, acc[1]));
    }
    write_tile(&mut t, NR, out, i0, j0, rows, cols);
}

/// Writes the `rows` x `cols` corner of the products `t` (row stride `stride`, already scaled
/// by alpha) to `out` at (`i0`, `j0`).
///
/// # Safety
/// `out` holds that corner, which nothing else accesses meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn write_tile(t: &mut [f32], stride: usize, out: Out, i0: usize, j0: usize, rows: usize, cols: usize) {
    for r in 0..rows {
        let row = &mut t[r * stride..r * stride + cols];
        match out {
            Out::F32 { ptr, ldc } => {
                let c = std::slice::from_raw_parts_mut(ptr.add((i0 + r) * ldc + j0), cols);
                c.iter_mut().zip(row.iter()).for_each(|(c, v)| *c += v);
            }
            Out::Bf16 { ptr, rs, cs, beta } => {
                let p = ptr.offset((i0 + r) as isize * rs + j0 as isize * cs);
                if let Some(b) = beta {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v += b * f32::from_bits((*p.offset(j as isize * cs) as u32) << 16);
                    }
                }
                if cs == 1 {
                    crate::simd::f32_to_bf16(row.as_ptr(), p as *mut half::bf16, cols);
                } else {
                    for (j, &v) in row.iter().enumerate() {
                        *p.offset(j as isize * cs) = crate::convert::f32_to_bf16(v).to_bits();
                    }
                }
            }
        }
    }
}

/// `out = alpha * a @ b` (see [`Out`]) for an `m x k` `a` and a `k x n` `b`, on the global
/// pool (unless the caller runs sequentially).
///
/// # Safety
/// [`available`] is true; `a` and `b` address `m x k` and `k x n` readable elements, `out` an
/// `m x n` writable matrix that nothing else accesses meanwhile.
pub(crate) unsafe fn gemm(m: usize, n: usize, k: usize, a: Mat, b: Mat, out: Out, alpha: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if m == 0 || n == 0 {
            return;
        }
        let kp = k.div_ceil(2);
        let (mpanels, npanels) = (m.div_ceil(MR), n.div_ceil(NR));
        let (alen, blen) = (mpanels * MR * kp, npanels * NR * kp);
        // `pack` writes every word it later reads, padding included
        let mut buf = Scratch::take::<u32>(alen + blen);
        let (ap, bp) = (P(buf.ptr::<u32>()), P(buf.ptr::<u32>().add(alen)));
        pack(a.ptr, a.rs, a.cs, m, MR, k, kp, ap.get());
        pack(b.ptr, b.cs, b.rs, n, NR, k, kp, bp.get());
        let (mtasks, ntasks) = (m.div_ceil(MC), n.div_ceil(NC));
        par_ranges(mtasks * ntasks, 1, |tasks| {
            for task in tasks {
                let (ti, tj) = (task / ntasks, task % ntasks);
                let (p0, p1) = (ti * MC / MR, ((ti + 1) * MC / MR).min(mpanels));
                let (t0, t1) = (tj * NC / NR, ((tj + 1) * NC / NR).min(npanels));
                for t in t0..t1 {
                    let cols = NR.min(n - t * NR);
                    for p in p0..p1 {
                        let rows = MR.min(m - p * MR);
                        tile(kp, ap.at(p * kp * MR), bp.at(t * kp * NR), out, p * MR, t * NR, rows, cols, alpha);
                    }
                }
            }
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k, a, b, out, alpha);
        unreachable!("gemm_bf16::gemm needs AVX512-BF16");
    }
}
