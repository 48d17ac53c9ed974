//! Matrix products: `dst = beta * dst + alpha * a @ b`, batched, on strided views.
//!
//! f32 and f64 go straight to the `gemm` crate with the views' own strides (transposed and
//! broadcast operands need no copy). bf16 uses AMX tiles (`gemm_amx`) or the AVX512-BF16
//! kernel of `gemm_bf16` where the CPU has them; large f16 products run on AMX too, each f16
//! split into two bf16 (`gemm_f16`). Otherwise f16 and bf16 are staged in f32; either way they
//! accumulate in f32 and round once, as PyTorch's CPU kernels do. Integer types use an exact
//! i64 loop with wrapping arithmetic, which equals PyTorch's result modulo the width of the
//! type.


use crate::convert::Element;
use crate::dense::{Dense, P};
use crate::dense::Mat;
use crate::gemm_split;
use crate::dtype::DType;
use crate::scalar::Scalar;
use crate::view::{err, par_ranges, sequential, View};
use crate::KernelError;

const OP: &str = "matmul";

/// Products smaller than this many multiply-adds run on one thread (the split costs more).
const PAR_MACS: usize = 48 * 48 * 48;

/// `dst[i] = beta * dst[i] + alpha * a[i] @ b[i]` for every batch index `i`.
///
/// `a` is `[batch.., m, k]`, `b` is `[batch.., k, n]` (same batch sizes; stride 0 broadcasts),
/// and `dst` is either `[batch.., m, n]`, or `[m, n]` with `a` and `b` of rank 3, in which case
/// the products over the batch are summed (`addbmm`). All three have one dtype. With
/// `beta == 0` the old contents of `dst` are ignored (NaN included), as in BLAS and PyTorch.
pub fn matmul(dst: &View, a: &View, b: &View, alpha: Scalar, beta: Scalar) -> Result<(), KernelError> {
    for v in [dst, a, b] {
        v.validate(OP)?;
    }
    let shape = Shape::of(dst, a, b)?;
    if shape.m == 0 || shape.n == 0 {
        return Ok(());
    }
    dst.check_writable(OP)?;
    let dtype = dst.dtype;
    let beta_zero = match beta {
        Scalar::Bool(v) => !v,
        Scalar::Int(v) => v == 0,
        Scalar::Float(v) => v == 0.0,
        Scalar::Complex(re, im) => re == 0.0 && im == 0.0,
    };
    match dtype {
        DType::F32 => unsafe { run_float::<f32>(dst, a, b, &shape, alpha, beta, beta_zero) },
        DType::F64 => unsafe { run_float::<f64>(dst, a, b, &shape, alpha, beta, beta_zero) },
        DType::BF16 if crate::gemm_bf16::available() => unsafe { run_bf16(dst, a, b, alpha, beta, beta_zero)? },
        DType::F16 if f16_split_suits(&shape) && unsafe { run_f16(dst, a, b, &shape, alpha, beta, beta_zero)? } => {}
        DType::F16 | DType::BF16 => {
            let (sa, sb) = (Dense::of(a, DType::F32)?, Dense::of(b, DType::F32)?);
            let sd = if beta_zero {
                Dense::zeroed(DType::F32, &dst.sizes)
            } else {
                Dense::of(dst, DType::F32)?
            };
            let staged = Shape::of(&sd.view, &sa.view, &sb.view)?;
            unsafe { run_float::<f32>(&sd.view, &sa.view, &sb.view, &staged, alpha, beta, beta_zero) };
            sd.store(dst)?;
        }
        DType::U8 | DType::I8 | DType::I16 | DType::I32 | DType::I64 => {
            let (sa, sb) = (Dense::of(a, DType::I64)?, Dense::of(b, DType::I64)?);
            let sd = if beta_zero {
                Dense::zeroed(DType::I64, &dst.sizes)
            } else {
                Dense::of(dst, DType::I64)?
            };
            unsafe { run_int(&sd, &sa, &sb, &shape, alpha.to_element(), beta.to_element(), beta_zero) };
            sd.store(dst)?;
        }
        d => return Err(err(OP, format!("\"addmm\" not implemented for '{}'", d.name()))),
    }
    Ok(())
}

/// Problem sizes and the element offsets of every matrix in the batch.
struct Shape {
    m: usize,
    n: usize,
    k: usize,
    /// (dst, a, b) element offsets of each product.
    batches: Vec<(isize, isize, isize)>,
    /// All products accumulate into one `dst` (addbmm).
    summed: bool,
    /// Strides of the last two dims: (row, column) for dst, a, b.
    rc: [(isize, isize); 3],
}

impl Shape {
    fn of(dst: &View, a: &View, b: &View) -> Result<Shape, KernelError> {
        let (ra, rb, rd) = (a.sizes.len(), b.sizes.len(), dst.sizes.len());
        if ra < 2 || ra != rb || !(rd == ra || (rd == 2 && ra == 3)) {
            return Err(err(
                OP,
                format!("unsupported ranks: dst {:?}, a {:?}, b {:?}", dst.sizes, a.sizes, b.sizes),
            ));
        }
        if a.dtype != b.dtype || a.dtype != dst.dtype {
            return Err(err(
                OP,
                format!(
                    "expected m1 and m2 to have the same dtype, but got: {} != {}",
                    a.dtype.name(),
                    if a.dtype != b.dtype { b.dtype.name() } else { dst.dtype.name() }
                ),
            ));
        }
        let (m, k) = (a.sizes[ra - 2], a.sizes[ra - 1]);
        let (k2, n) = (b.sizes[rb - 2], b.sizes[rb - 1]);
        let summed = rd != ra;
        let batch = &a.sizes[..ra - 2];
        if k != k2
            || batch != &b.sizes[..rb - 2]
            || dst.sizes[rd - 2..] != [m, n]
            || (!summed && &dst.sizes[..rd - 2] != batch)
        {
            return Err(err(
                OP,
                format!(
                    "mat1 and mat2 shapes cannot be multiplied ({:?} and {:?} into {:?})",
                    a.sizes, b.sizes, dst.sizes
                ),
            ));
        }
        let mut batches = Vec::new();
        let count: usize = batch.iter().map(|&s| s as usize).product();
        let mut idx = vec![0i64; batch.len()];
        for _ in 0..count {
            let off = |v: &View| -> isize {
                idx.iter().zip(&v.strides).map(|(&i, &s)| (i * s) as isize).sum()
            };
            let d = if summed { 0 } else { off(dst) };
            batches.push((d, off(a), off(b)));
            for j in (0..idx.len()).rev() {
                idx[j] += 1;
                if idx[j] < batch[j] {
                    break;
                }
                idx[j] = 0;
            }
        }
        let rc = |v: &View| {
            let r = v.strides.len();
            (v.strides[r - 2] as isize, v.strides[r - 1] as isize)
        };
        Ok(Shape {
            m: m as usize,
            n: n as usize,
            k: k as usize,
            batches,
            summed,
            rc: [rc(dst), rc(a), rc(b)],
        })
    }

    fn macs(&self) -> usize {
        self.m.saturating_mul(self.n).saturating_mul(self.k)
    }
}

/// Offsets of every `dst` matrix that gets a result (each once), for empty products.
fn dst_matrices(s: &Shape) -> Vec<isize> {
    if s.summed || s.batches.is_empty() {
        if s.summed {
            vec![0]
        } else {
            vec![]
        }
    } else {
        s.batches.iter().map(|b| b.0).collect()
    }
}

/// # Safety
/// The views were validated and `s` was computed from them.
unsafe fn run_float<T: Element>(
    dst: &View,
    a: &View,
    b: &View,
    s: &Shape,
    alpha: Scalar,
    beta: Scalar,
    beta_zero: bool,
) where
    T: std::ops::Mul<Output = T>,
{
    let (alpha, beta): (T, T) = (alpha.to_element(), beta.to_element());
    let (d, pa, pb) = (P(dst.ptr as *mut T), P(a.ptr as *mut T), P(b.ptr as *mut T));
    let [(drs, dcs), (ars, acs), (brs, bcs)] = s.rc;
    if s.k == 0 || (s.summed && s.batches.is_empty()) {
        // No products: dst = beta * dst.
        for off in dst_matrices(s) {
            for i in 0..s.m as isize {
                for j in 0..s.n as isize {
                    let p = d.get().offset(off + i * drs + j * dcs);
                    *p = if beta_zero { T::from_f64(0.0) } else { beta * *p };
                }
            }
        }
        return;
    }
    let one_product = |(od, oa, ob): (isize, isize, isize), read_dst: bool, beta: T, par: bool| {
        // gemm computes dst = alpha_g * dst + beta_g * lhs @ rhs
        let dst = Mat { ptr: d.get().offset(od), rs: drs, cs: dcs };
        let (lhs, rhs) = (Mat { ptr: pa.get().offset(oa), rs: ars, cs: acs }, Mat { ptr: pb.get().offset(ob), rs: brs, cs: bcs });
        gemm_split::gemm((s.m, s.n, s.k), dst, read_dst, lhs, rhs, beta, alpha, par);
    };
    let par = !sequential() && rayon::current_num_threads() > 1 && s.macs() >= PAR_MACS;
    if s.summed {
        for (i, &off) in s.batches.iter().enumerate() {
            let first = i == 0;
            let read = !(first && beta_zero);
            let scale = if first { beta } else { T::from_f64(1.0) };
            one_product(off, read, scale, par);
        }
    } else if !par && s.batches.len() > 1 {
        // Many small products: one thread each.
        let grain = (PAR_MACS / s.macs().max(1)).max(1);
        par_ranges(s.batches.len(), grain, |r| {
            for &off in &s.batches[r] {
                one_product(off, !beta_zero, beta, false);
            }
        });
    } else {
        for &off in &s.batches {
            one_product(off, !beta_zero, beta, par);
        }
    }
}

/// bf16 products with bf16 multiplies and f32 accumulation (`gemm_amx` where the CPU has AMX
/// and the shape suits it, else `gemm_bf16`), rounded once:
/// straight into `dst`, or, when the products of a batch are summed (addbmm), into an f32
/// copy of it written back at the end.
///
/// # Safety
/// The views were validated; `gemm_bf16::available()`.
unsafe fn run_bf16(dst: &View, a: &View, b: &View, alpha: Scalar, beta: Scalar, beta_zero: bool) -> Result<(), KernelError> {
    use crate::gemm_bf16::{Mat, Out};
    let s = Shape::of(dst, a, b)?;
    let gemm = if crate::gemm_amx::suits(s.m, s.n, s.k) && crate::gemm_amx::available() {
        crate::gemm_amx::gemm
    } else {
        crate::gemm_bf16::gemm
    };
    let (alpha, beta): (f32, f32) = (alpha.to_element(), beta.to_element());
    let [(drs, dcs), (ars, acs), (brs, bcs)] = s.rc;
    let (pa, pb) = (P(a.ptr as *mut u16), P(b.ptr as *mut u16));
    let mats = |oa: isize, ob: isize| {
        (Mat { ptr: pa.get().offset(oa), rs: ars, cs: acs }, Mat { ptr: pb.get().offset(ob), rs: brs, cs: bcs })
    };
    if s.summed {
        let sd = scaled_f32(dst, beta, beta_zero)?;
        for &(_, oa, ob) in &s.batches {
            let (am, bm) = mats(oa, ob);
            gemm(s.m, s.n, s.k, am, bm, Out::F32 { ptr: sd.ptr::<f32>(), ldc: s.n }, alpha);
        }
        return sd.store(dst);
    }
    let pd = P(dst.ptr as *mut u16);
    let one_product = |(od, oa, ob): (isize, isize, isize)| {
        let (am, bm) = mats(oa, ob);
        let out = Out::Bf16 { ptr: pd.get().offset(od), rs: drs, cs: dcs, beta: (!beta_zero).then_some(beta) };
        gemm(s.m, s.n, s.k, am, bm, out, alpha);
    };
    if s.macs() < PAR_MACS && s.batches.len() > 1 {
        // Many small products: one thread each.
        let grain = (PAR_MACS / s.macs().max(1)).max(1);
        par_ranges(s.batches.len(), grain, |r| {
            crate::view::with_sequential(|| s.batches[r].iter().for_each(|&off| one_product(off)))
        });
    } else if s.macs() < PAR_MACS {
        crate::view::with_sequential(|| s.batches.iter().for_each(|&off| one_product(off)));
    } else {
        s.batches.iter().for_each(|&off| one_product(off));
    }
    Ok(())
}

/// A contiguous f32 copy of `beta * dst` (zeros when `beta_zero`, whatever `dst` holds) for
/// products to be added to, then stored back rounded once.
fn scaled_f32(dst: &View, beta: f32, beta_zero: bool) -> Result<Dense, KernelError> {
    if beta_zero {
        return Ok(Dense::zeroed(DType::F32, &dst.sizes));
    }
    let sd = Dense::of(dst, DType::F32)?;
    // SAFETY: sd holds its view's elements, contiguous f32
    unsafe { std::slice::from_raw_parts_mut(sd.ptr::<f32>(), sd.view.numel()) }.iter_mut().for_each(|v| *v *= beta);
    Ok(sd)
}

/// Whether f16 products of this shape go to AMX as bf16 halves (`gemm_f16`): large enough that
/// splitting the operands costs less than the f32 path's slower products.
fn f16_split_suits(s: &Shape) -> bool {
    s.macs() >= PAR_MACS && crate::gemm_amx::suits(s.m, s.n, s.k) && crate::gemm_f16::available()
}

/// f16 products as bf16 halves on AMX (`gemm_f16`), accumulated in an f32 copy of `dst` and
/// rounded once, as the f32 path does. Every operand is split first: `Ok(false)`, with `dst`
/// untouched, when one does not split (an infinity or NaN, no unit stride).
///
/// # Safety
/// The views were validated and `s` was computed from them; `gemm_f16::available()`.
unsafe fn run_f16(dst: &View, a: &View, b: &View, s: &Shape, alpha: Scalar, beta: Scalar, beta_zero: bool) -> Result<bool, KernelError> {
    use crate::gemm_bf16::Out;
    use crate::gemm_f16::halves;
    use crate::scratch::Scratch;
    let [_, (ars, acs), (brs, bcs)] = s.rc;
    let (pa, pb) = (P(a.ptr as *mut u16), P(b.ptr as *mut u16));
    // each distinct operand matrix split once (a broadcast one serves every batch)
    let mut bufs = Vec::new();
    let mut split_a = std::collections::HashMap::new();
    let mut split_b = std::collections::HashMap::new();
    for &(_, oa, ob) in &s.batches {
        for (map, off, ptr, (rs, cs), (rows, cols)) in
            [(&mut split_a, oa, pa, (ars, acs), (s.m, s.k)), (&mut split_b, ob, pb, (brs, bcs), (s.k, s.n))]
        {
            if !map.contains_key(&off) {
                let mut buf = Scratch::take::<u16>(0);
                let Some((hi, lo)) = halves(Mat { ptr: ptr.get().offset(off), rs, cs }, rows, cols, &mut buf) else {
                    return Ok(false);
                };
                map.insert(off, [hi, lo]);
                bufs.push(buf);
            }
        }
    }
    let (alpha, beta): (f32, f32) = (alpha.to_element(), beta.to_element());
    let sd = scaled_f32(dst, beta, beta_zero)?;
    // (a hi, b hi), (a lo, b hi), (a hi, b lo), (a lo, b lo)
    let terms = [(0, 0), (1, 0), (0, 1), (1, 1)];
    for (i, &(_, oa, ob)) in s.batches.iter().enumerate() {
        // sd is contiguous: product i's matrix is the i-th, or the only one when summed
        let c = sd.ptr::<f32>().add(if s.summed { 0 } else { i * s.m * s.n });
        crate::gemm_amx::gemm_sum(s.m, s.n, s.k, &split_a[&oa], &split_b[&ob], &terms, Out::F32 { ptr: c, ldc: s.n }, alpha);
    }
    drop(bufs);
    sd.store(dst)?;
    Ok(true)
}

/// Exact integer products on contiguous i64 staging buffers.
///
/// # Safety
/// The buffers hold the shapes `s` describes (contiguous).
unsafe fn run_int(dst: &Dense, a: &Dense, b: &Dense, s: &Shape, alpha: i64, beta: i64, beta_zero: bool) {
    let (m, n, k) = (s.m, s.n, s.k);
    let count = s.batches.len();
    let (pd, pa, pb) = (P(dst.ptr::<i64>()), P(a.ptr::<i64>()), P(b.ptr::<i64>()));
    let rows = if s.summed { m } else { count * m };
    par_ranges(rows, (PAR_MACS / (n * k.max(1)).max(1)).max(1), |r| {
        for row in r {
            let (bi, i) = (row / m, row % m);
            let out = std::slice::from_raw_parts_mut(pd.get().add((if s.summed { 0 } else { bi * m } + i) * n), n);
            let mut acc = vec![0i64; n];
            let batches = if s.summed { 0..count } else { bi..bi + 1 };
            for bb in batches {
                let arow = std::slice::from_raw_parts(pa.get().add((bb * m + i) * k), k);
                for (p, &x) in arow.iter().enumerate() {
                    let brow = std::slice::from_raw_parts(pb.get().add((bb * k + p) * n), n);
                    for (c, &y) in acc.iter_mut().zip(brow) {
                        *c = c.wrapping_add(x.wrapping_mul(y));
                    }
                }
            }
            for (o, c) in out.iter_mut().zip(acc) {
                let old = if beta_zero { 0 } else { beta.wrapping_mul(*o) };
                *o = old.wrapping_add(alpha.wrapping_mul(c));
            }
        }
    });
}
