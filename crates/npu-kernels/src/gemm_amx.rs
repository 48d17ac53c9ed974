//! bf16 matrix products on AMX (Intel Sapphire Rapids and later): `tdpbf16ps` multiplies a
//! 16 x 32 bf16 tile of A by a 32 x 16 tile of B, held as 16 rows of depth pairs, into a
//! 16 x 16 tile of f32 accumulators. This is the path oneDNN takes for PyTorch CPU's bf16
//! matmul on such machines, several times the throughput of AVX512-BF16.
//!
//! A is packed into blocks of 32 rows, one contiguous 32 x 32 piece per step of 32 depths, B
//! into panels of 32 columns in the pair layout of `gemm_bf16::pack` (padded with zero pairs to
//! the same depth), so every tile load is whole and reads 1 KiB of consecutive memory. Each
//! microkernel call accumulates a 32 x 32 block of C in four tile registers over one pass of
//! depths; the blocks stay in an f32 buffer between passes and are written out once through
//! `gemm_bf16::write_tile` (rounded to bf16 once, or added to an f32 buffer).
//!
//! On the development VM a tile load costs ~2.6 ns when its rows start on cache lines and
//! ~17 ns when they straddle them, against ~5.5 ns per `tdpbf16ps`: all packed buffers are
//! 64-byte aligned (`Scratch`).
//!
//! The tile registers are used through inline assembly (Rust's AMX intrinsics are unstable).
//! Linux hands a process AMX's tile state only after it asks (`arch_prctl`); without it, or
//! on another CPU, [`available`] is false and the AVX512-BF16 kernel runs instead.

use crate::dense::P;
use crate::gemm_bf16::{pack, write_tile, Mat, Out};
use crate::scratch::Scratch;
use crate::view::par_ranges;

/// Depths per step: one 64-byte tile row of bf16.
const KS: usize = 32;
/// Rows and columns of the block of C one microkernel call computes (2 x 2 tiles of 16 x 16).
const BM: usize = 32;
const BN: usize = 32;
/// Rows of A and columns of B one task covers at most. Its blocks of C live in an f32 buffer
/// (1 MiB) in L2 between passes; the larger the task, the fewer times A and B come from
/// memory (each is read once per task that needs it). On the 2-core Xeon (2 MiB of L2 per
/// core) 2048^3 took 16.7 ms with 128 x 256 tasks and 13.1 ms with 512 x 512 ones.
const MC: usize = 16 * BM;
const NC: usize = 16 * BN;
/// Steps of depth per pass over a task's blocks (256 depths): a block of A (16 KiB) stays in
/// L1 while the task's B panels of the pass (256 KiB) stream from L2.
const KC: usize = 8;

/// Whether this CPU and OS run the kernel (checked once).
pub(crate) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    // CPUID.(7,0):EDX bit 24 AMX-TILE, bit 22 AMX-BF16
    let l7 = std::arch::x86_64::__cpuid_count(7, 0);
    if l7.edx & (1 << 24) == 0 || l7.edx & (1 << 22) == 0 {
        return false;
    }
    // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): the kernel then saves the tile
    // state with the thread's; using the tiles without it is SIGILL
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// Whether a product of this shape is worth the tiles (their padding to 32 rows and depths).
pub(crate) fn suits(m: usize, n: usize, k: usize) -> bool {
    m >= 16 && n >= 16 && k >= KS
}

/// The tile configuration of this thread while alive: all eight tiles 16 rows of 64 bytes
/// (tmm0-3 accumulate C, tmm4-5 hold A, tmm6-7 hold B). Released on drop, so a pool thread
/// does not carry AMX state between kernels.
#[cfg(target_arch = "x86_64")]
struct Tiles;

#[cfg(target_arch = "x86_64")]
impl Tiles {
    unsafe fn configure() -> Tiles {
        #[repr(C, align(64))]
        struct Config([u8; 64]);
        let mut cfg = Config([0; 64]);
        cfg.0[0] = 1; // palette 1
        for t in 0..8 {
            cfg.0[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes()); // bytes per row
            cfg.0[48 + t] = 16; // rows
        }
        std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        Tiles
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for Tiles {
    fn drop(&mut self) {
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// `c` (32 x 32 f32, row stride 32) = the steps of a block of packed A at `a` (see
/// [`pack_rows`]) @ the packed B panel at `b`, over `steps` steps of 32 depths, plus `c` itself
/// when `accumulate`.
///
/// # Safety
/// Tiles are configured on this thread; `a` and `b` hold `steps` whole steps.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block(a: *const u16, b: *const u32, steps: usize, c: *mut f32, accumulate: bool) {
    use std::arch::asm;
    if accumulate {
        asm!(
            "tileloadd tmm0, [{c0} + {s}*1]",
            "tileloadd tmm1, [{c1} + {s}*1]",
            "tileloadd tmm2, [{c2} + {s}*1]",
            "tileloadd tmm3, [{c3} + {s}*1]",
            c0 = in(reg) c,
            c1 = in(reg) c.add(16),
            c2 = in(reg) c.add(16 * BN),
            c3 = in(reg) c.add(16 * BN + 16),
            s = in(reg) BN * 4,
            options(nostack, readonly),
        );
    } else {
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
    }
    let (sa, sb) = (KS * 2, BN * 4);
    for s in 0..steps {
        let (a0, b0) = (a.add(s * BM * KS), b.add(s * (KS / 2) * BN));
        asm!(
            // Tile registers are not renamed: a load waits for the products still reading
            // its register, so each load goes just before the first product that needs it,
            // and the next step's loads overlap this step's last products.
            "tileloadd tmm4, [{a0} + {sa}*1]",
            "tileloadd tmm6, [{b0} + {sb}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {sb}*1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {sa}*1]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) a0,
            a1 = in(reg) a0.add(16 * KS),
            b0 = in(reg) b0,
            b1 = in(reg) b0.add(16),
            sa = in(reg) sa,
            sb = in(reg) sb,
            options(nostack, readonly),
        );
    }
    asm!(
        "tilestored [{c0} + {s}*1], tmm0",
        "tilestored [{c1} + {s}*1], tmm1",
        "tilestored [{c2} + {s}*1], tmm2",
        "tilestored [{c3} + {s}*1], tmm3",
        c0 = in(reg) c,
        c1 = in(reg) c.add(16),
        c2 = in(reg) c.add(16 * BN),
        c3 = in(reg) c.add(16 * BN + 16),
        s = in(reg) BN * 4,
        options(nostack),
    );
}

/// Prefetches piece `piece` of `pieces` of the `len` bytes at `at`, with `HINT` (`_MM_HINT_T1`:
/// into L2; `_MM_HINT_ET0`: into L1, to be written).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch<const HINT: i32>(at: *const u8, len: usize, piece: usize, pieces: usize) {
    let (from, to) = (len * piece / pieces, len * (piece + 1) / pieces);
    for off in (from & !63..to).step_by(64) {
        // SAFETY: a prefetch does not fault, whatever the address
        unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(at.wrapping_add(off) as *const i8) };
    }
}

/// Packs the `m` x `k` matrix `a` into blocks of `BM` rows at `out`, zero past its edges:
/// block `p` holds, for each step `s` of `KS` depths, its rows' depths `s * KS..(s + 1) * KS`
/// as `BM` x `KS` row-major bf16 (2 KiB), so each of its two A tiles is one contiguous 1 KiB
/// load. Rows of A loaded in place would be `2 k` bytes apart: at `k` = 1024 or 2048 every
/// row of a tile falls in the same L1 set, and the block cannot stay in L1.
unsafe fn pack_rows(a: Mat, m: usize, k: usize, blocks: usize, steps: usize, out: *mut u16) {
    let (op, ap) = (P(out), P(a.ptr));
    par_ranges(blocks * BM, 64, |range| {
        for i in range {
            let (p, r) = (i / BM, i % BM);
            let row = |s: usize| std::slice::from_raw_parts_mut(op.at((p * steps + s) * BM * KS + r * KS), KS);
            if i >= m {
                (0..steps).for_each(|s| row(s).fill(0));
                continue;
            }
            let src = ap.get().offset(i as isize * a.rs);
            for s in 0..steps {
                let (dst, d0) = (row(s), s * KS);
                let len = KS.min(k.saturating_sub(d0));
                if a.cs == 1 {
                    std::ptr::copy_nonoverlapping(src.add(d0), dst.as_mut_ptr(), len);
                } else {
                    for (d, p) in dst[..len].iter_mut().enumerate() {
                        *p = *src.offset((d0 + d) as isize * a.cs);
                    }
                }
                dst[len..].fill(0);
            }
        }
    });
}

/// `out = alpha * a @ b` (see [`Out`]) for an `m x k` `a` and a `k x n` `b`, on the global
/// pool (unless the caller runs sequentially).
///
/// # Safety
/// [`available`] is true; `a` and `b` address `m x k` and `k x n` readable elements, `out` an
/// `m x n` writable matrix that nothing else accesses meanwhile.
pub(crate) unsafe fn gemm(m: usize, n: usize, k: usize, a: Mat, b: Mat, out: Out, alpha: f32) {
    gemm_sum(m, n, k, &[a], &[b], &[(0, 0)], out, alpha)
}

/// `out = alpha * sum of as[i] @ bs[j] over the (i, j) of terms`, each operand packed once
/// however many terms use it, and the whole sum accumulated in the tiles' f32 before it is
/// written (the bf16 halves of an f16 product, see `gemm_f16`).
///
/// # Safety
/// As for [`gemm`], for every operand; `terms` is not empty and indexes `as_` and `bs`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_sum(m: usize, n: usize, k: usize, as_: &[Mat], bs: &[Mat], terms: &[(usize, usize)], out: Out, alpha: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_ET0, _MM_HINT_T1};
        if m == 0 || n == 0 {
            return;
        }
        let steps = k.div_ceil(KS);
        let kpad = steps * KS;
        let (mblocks, npanels) = (m.div_ceil(BM), n.div_ceil(BN));
        let (alen, blen) = (mblocks * BM * kpad / 2, npanels * BN * kpad / 2); // in 32-bit words
        // both packings write every word the kernel reads, padding included
        let mut buf = Scratch::take::<u32>(as_.len() * alen + bs.len() * blen);
        let base = P(buf.ptr::<u32>());
        let bbase = as_.len() * alen;
        for (i, a) in as_.iter().enumerate() {
            pack_rows(*a, m, k, mblocks, steps, base.at(i * alen) as *mut u16);
        }
        for (j, b) in bs.iter().enumerate() {
            pack(b.ptr, b.cs, b.rs, n, BN, k, kpad / 2, base.at(bbase + j * blen));
        }
        // the passes over depth of each block of C: (packed A, packed B, first step, steps)
        let passes: Vec<(usize, usize, usize, usize)> = terms
            .iter()
            .flat_map(|&(i, j)| (0..steps).step_by(KC).map(move |s0| (i * alen, bbase + j * blen, s0, KC.min(steps - s0))))
            .collect();
        // smaller tasks when there would be fewer than two per thread
        let (mut mc, mut nc) = (MC, NC);
        while m.div_ceil(mc) * n.div_ceil(nc) < 2 * rayon::current_num_threads() && mc.max(nc) > BM {
            if mc >= nc { mc /= 2 } else { nc /= 2 }
        }
        let (mtasks, ntasks) = (m.div_ceil(mc), n.div_ceil(nc));
        par_ranges(mtasks * ntasks, 1, |tasks| {
            let _tiles = Tiles::configure();
            // the task's blocks of C, block (p, t) at ((p - p0) * nc / BN + t - t0) * BM * BN
            // (aligned like A and B: see `Scratch`)
            let mut acc = Scratch::take::<f32>(mc * nc);
            let accp = P(acc.ptr::<f32>());
            for task in tasks {
                let (ti, tj) = (task / ntasks, task % ntasks);
                let (p0, p1) = (ti * mc / BM, ((ti + 1) * mc / BM).min(mblocks));
                let (t0, t1) = (tj * nc / BN, ((tj + 1) * nc / BN).min(npanels));
                let c = |p: usize, t: usize| accp.at(((p - p0) * (nc / BN) + t - t0) * BM * BN);
                let a_at = |a: usize, p: usize, s: usize| base.at(a + (p * steps + s) * BM * KS / 2) as *const u8;
                let b_at = |b: usize, t: usize, s: usize| base.at(b + t * BN * kpad / 2 + s * (KS / 2) * BN) as *const u8;
                let step_bytes = BM * KS * 2; // of an A block, and of a B panel
                for (x, &(a, b, s0, len)) in passes.iter().enumerate() {
                    let next = passes.get(x + 1);
                    for p in p0..p1 {
                        // the A block this task reads after this one
                        let a_next = match next {
                            _ if p + 1 < p1 => Some((a_at(a, p + 1, s0), len)),
                            Some(&(a2, _, s2, len2)) => Some((a_at(a2, p0, s2), len2)),
                            None => None,
                        };
                        for t in t0..t1 {
                            // Memory reads hidden behind this task's products: a share of the
                            // next A block and of the next pass's B panels goes to L2 with each
                            // block (from memory, a pass's first blocks took ~4x as long).
                            if let Some((a2, len2)) = a_next {
                                prefetch::<_MM_HINT_T1>(a2, len2 * step_bytes, t - t0, t1 - t0);
                            }
                            if let Some(&(_, b2, s2, len2)) = next {
                                prefetch::<_MM_HINT_T1>(b_at(b2, t, s2), len2 * step_bytes, p - p0, p1 - p0);
                            }
                            if x > 0 {
                                // the blocks of C the next call accumulates, into L1
                                let (p2, t2) = if t + 1 < t1 { (p, t + 1) } else { (p + 1, t0) };
                                if p2 < p1 {
                                    prefetch::<_MM_HINT_ET0>(c(p2, t2) as *const u8, BM * BN * 4, 0, 1);
                                }
                            }
                            block(a_at(a, p, s0) as *const u16, b_at(b, t, s0) as *const u32, len, c(p, t), x > 0);
                        }
                    }
                }
                for p in p0..p1 {
                    for t in t0..t1 {
                        let tile = std::slice::from_raw_parts_mut(c(p, t), BM * BN);
                        if alpha != 1.0 {
                            tile.iter_mut().for_each(|v| *v *= alpha);
                        }
                        write_tile(tile, BN, out, p * BM, t * BN, BM.min(m - p * BM), BN.min(n - t * BN));
                    }
                }
            }
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k, as_, bs, terms, out, alpha);
        unreachable!("gemm_amx::gemm needs AMX");
    }
}
