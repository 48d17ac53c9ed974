//! max/min with indices along a dim, and argmax/argmin.
//!
//! The first occurrence of the extreme value wins; NaN counts as the extreme of both max and
//! min, and the first NaN wins (PyTorch's rule).

use crate::dtype::DType;
use crate::elementwise::{loader, reject_complex, storer, LoadFn, StoreFn, CHUNK};
use crate::reduce::{empty_error, geometry, Acc, ReduceOp};
use crate::view::{err, par_ranges, Layout, Ptr, View};
use crate::KernelError;

/// Elements per parallel block of a flattened argmax (fixed, so the split never matters).
const BLOCK: usize = 64 * 1024;
/// Outputs updated together when the reduced dim is not the innermost one.
const COLS: usize = 256;
const WORK_GRAIN: usize = 32 * 1024;

/// Whether `x` replaces the current best `best` (strictly better, or the first NaN).
#[inline(always)]
fn better<A: Acc>(is_max: bool, x: A, best: A) -> bool {
    let strictly = if is_max { x > best } else { x < best };
    strictly || (x.nan() && !best.nan())
}

fn direction(op: ReduceOp, name: &str) -> Result<bool, KernelError> {
    match op {
        ReduceOp::Max | ReduceOp::Amax => Ok(true),
        ReduceOp::Min | ReduceOp::Amin => Ok(false),
        _ => Err(err(
            name,
            format!("{op:?} has no index form (use Max or Min)"),
        )),
    }
}

/// Values and indices (int64) of the max (`ReduceOp::Max`) or min (`ReduceOp::Min`) of `src`
/// along `dim` (PyTorch's `max(dim)` / `min(dim)`). `values` (src's dtype or any other: values
/// are converted) and `indices` have src's sizes with `dim` set to 1 (keepdim layout, any
/// strides). The first occurrence wins; NaN counts as the max and the min, first NaN first.
pub fn reduce_with_index(
    op: ReduceOp,
    values: &View,
    indices: &View,
    src: &View,
    dim: usize,
) -> Result<(), KernelError> {
    let is_max = direction(op, op.name())?;
    arg_dim(op.name(), is_max, Some(values), indices, src, dim)
}

/// argmax (`ReduceOp::Max`) / argmin (`ReduceOp::Min`): with `dim`, indices along it (keepdim
/// layout); without, the row-major index into the flattened `src` (`indices` has one element).
pub fn arg_reduce(
    op: ReduceOp,
    indices: &View,
    src: &View,
    dim: Option<usize>,
) -> Result<(), KernelError> {
    let name = match op {
        ReduceOp::Max | ReduceOp::Amax => "argmax",
        _ => "argmin",
    };
    let is_max = direction(op, name)?;
    match dim {
        Some(d) => arg_dim(name, is_max, None, indices, src, d),
        None => arg_flat(name, is_max, indices, src),
    }
}

/// The compare type for a source dtype: exact for every value.
fn compare_dtype(src: DType) -> DType {
    match src {
        DType::F16 | DType::BF16 | DType::F32 => DType::F32,
        DType::F64 => DType::F64,
        DType::Bool => DType::U8,
        _ => DType::I64,
    }
}

fn arg_dim(
    name: &str,
    is_max: bool,
    values: Option<&View>,
    indices: &View,
    src: &View,
    dim: usize,
) -> Result<(), KernelError> {
    let mut dts = vec![src.dtype, indices.dtype];
    if let Some(v) = values {
        dts.push(v.dtype);
    }
    reject_complex(name, &dts)?;
    let dims = [dim];
    let g = geometry(name, indices, src, &dims)?;
    if let Some(v) = values {
        let gv = geometry(name, v, src, &dims)?;
        v.check_writable(name)?;
        let _ = gv;
    }
    if g.m == 0 {
        return Err(empty_error(name, src, &g, false));
    }
    indices.check_writable(name)?;
    if g.nout == 0 {
        return Ok(());
    }
    match compare_dtype(src.dtype) {
        DType::F32 => ArgDim::<f32>::new(is_max, values, indices, src, dim).run(),
        DType::F64 => ArgDim::<f64>::new(is_max, values, indices, src, dim).run(),
        DType::U8 => ArgDim::<u8>::new(is_max, values, indices, src, dim).run(),
        _ => ArgDim::<i64>::new(is_max, values, indices, src, dim).run(),
    }
    Ok(())
}

struct ArgDim<'a, A> {
    is_max: bool,
    src: &'a View,
    values: Option<&'a View>,
    indices: &'a View,
    dim: usize,
    load: LoadFn<A>,
    store_v: Option<StoreFn<A>>,
    store_i: StoreFn<i64>,
}

/// A shared output buffer that parallel tasks write at disjoint indices.
struct Shared<T>(*mut T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<'a, A: Acc> ArgDim<'a, A> {
    fn new(
        is_max: bool,
        values: Option<&'a View>,
        indices: &'a View,
        src: &'a View,
        dim: usize,
    ) -> Self {
        ArgDim {
            is_max,
            src,
            values,
            indices,
            dim,
            load: loader::<A>(src.dtype, None),
            store_v: values.map(|v| storer::<A>(v.dtype, None)),
            store_i: storer::<i64>(indices.dtype, None),
        }
    }

    fn run(&self) {
        let src = self.src;
        let rank = src.sizes.len();
        let zeros = vec![0i64; rank];
        let vstrides = self
            .values
            .map_or(zeros.as_slice(), |v| v.strides.as_slice());
        let (n, sd) = if rank == 0 {
            (1usize, 0isize)
        } else {
            (src.sizes[self.dim] as usize, src.strides[self.dim] as isize)
        };
        let kept: Vec<usize> = (0..rank)
            .filter(|&d| d != self.dim && src.sizes[d] != 1)
            .collect();
        let col = kept
            .iter()
            .copied()
            .min_by_key(|&d| src.strides[d].unsigned_abs())
            .filter(|&d| {
                (src.strides[d].unsigned_abs() as usize) < sd.unsigned_abs() && src.sizes[d] >= 16
            });
        let others: Vec<usize> = kept.iter().copied().filter(|&d| Some(d) != col).collect();
        let pick = |of: &[i64]| others.iter().map(|&d| of[d]).collect::<Vec<i64>>();
        let outer = Layout::<3>::new(
            &pick(&src.sizes),
            [
                &pick(&src.strides),
                &pick(vstrides),
                &pick(&self.indices.strides),
            ],
        );
        let (sp, vp, ip) = (
            Ptr::new(src.ptr),
            self.values
                .map_or(Ptr::new(std::ptr::null_mut()), |v| Ptr::new(v.ptr)),
            Ptr::new(self.indices.ptr),
        );
        let vsize = self.values.map_or(1, |v| v.dtype.size());
        let isize_ = self.indices.dtype.size();
        let (ssize, same) = (src.dtype.size(), src.dtype == A::DTYPE);
        match col {
            None => {
                let [ks, kv, ki] = outer.inner_strides();
                let grain = (WORK_GRAIN / n).max(1);
                par_ranges(outer.numel(), grain, |range| {
                    let mut buf = vec![A::ZERO; CHUNK.min(n)];
                    outer.for_each_row(range, |_, [so, vo, io], len| {
                        for k in 0..len as isize {
                            let (best, idx) =
                                self.scan(sp, so + k * ks, sd, n, ssize, same, &mut buf);
                            unsafe {
                                if let Some(st) = self.store_v {
                                    st(&[best], vp.byte_at(vo + k * kv, vsize), 1);
                                }
                                (self.store_i)(&[idx], ip.byte_at(io + k * ki, isize_), 1);
                            }
                        }
                    });
                });
            }
            Some(c) => {
                let nc = src.sizes[c] as usize;
                let (cs, cv, ci) = (
                    src.strides[c] as isize,
                    vstrides[c] as isize,
                    self.indices.strides[c] as isize,
                );
                let ncb = nc.div_ceil(COLS);
                let tasks = outer.numel() * ncb;
                let grain = (WORK_GRAIN / (n * COLS.min(nc))).max(1);
                par_ranges(tasks, grain, |range| {
                    let w = COLS.min(nc);
                    let (mut best, mut idx, mut row) =
                        (vec![A::ZERO; w], vec![0i64; w], vec![A::ZERO; w]);
                    for t in range {
                        let (o, cb) = (t / ncb, t % ncb);
                        let mut offs = [0isize; 3];
                        outer.for_each_row(o..o + 1, |_, x, _| offs = x);
                        let c0 = cb * COLS;
                        let w = COLS.min(nc - c0);
                        let base = offs[0] + c0 as isize * cs;
                        unsafe {
                            (self.load)(sp.byte_at(base, ssize), cs, &mut best[..w]);
                            idx[..w].fill(0);
                            for i in 1..n {
                                (self.load)(
                                    sp.byte_at(base + i as isize * sd, ssize),
                                    cs,
                                    &mut row[..w],
                                );
                                for j in 0..w {
                                    if better(self.is_max, row[j], best[j]) {
                                        best[j] = row[j];
                                        idx[j] = i as i64;
                                    }
                                }
                            }
                            if let Some(st) = self.store_v {
                                st(
                                    &best[..w],
                                    vp.byte_at(offs[1] + c0 as isize * cv, vsize),
                                    cv,
                                );
                            }
                            (self.store_i)(
                                &idx[..w],
                                ip.byte_at(offs[2] + c0 as isize * ci, isize_),
                                ci,
                            );
                        }
                    }
                });
            }
        }
    }

    /// The best value and its index among `n` elements from `off` with stride `sd`.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        sp: Ptr,
        off: isize,
        sd: isize,
        n: usize,
        ssize: usize,
        same: bool,
        buf: &mut [A],
    ) -> (A, i64) {
        let mut best = A::ZERO;
        let mut idx = 0i64;
        let mut done = 0usize;
        while done < n {
            let k = CHUNK.min(n - done);
            let xs: &[A] = unsafe {
                if same && sd == 1 {
                    std::slice::from_raw_parts(sp.at::<A>(off + done as isize), k)
                } else {
                    (self.load)(
                        sp.byte_at(off + done as isize * sd, ssize),
                        sd,
                        &mut buf[..k],
                    );
                    &buf[..k]
                }
            };
            let mut j0 = 0;
            if done == 0 {
                best = xs[0];
                j0 = 1;
            }
            for (j, &x) in xs.iter().enumerate().skip(j0) {
                if better(self.is_max, x, best) {
                    best = x;
                    idx = (done + j) as i64;
                }
            }
            done += k;
        }
        (best, idx)
    }
}

fn arg_flat(name: &str, is_max: bool, indices: &View, src: &View) -> Result<(), KernelError> {
    reject_complex(name, &[src.dtype, indices.dtype])?;
    let n = src.validate(name)?;
    if indices.validate(name)? != 1 {
        return Err(err(
            name,
            format!(
                "indices must have one element, got size {:?}",
                indices.sizes
            ),
        ));
    }
    if n == 0 {
        return Err(KernelError(format!(
            "{name}(): Expected reduction dim to be specified for input.numel() == 0."
        )));
    }
    let idx = match compare_dtype(src.dtype) {
        DType::F32 => flat::<f32>(is_max, src, n),
        DType::F64 => flat::<f64>(is_max, src, n),
        DType::U8 => flat::<u8>(is_max, src, n),
        _ => flat::<i64>(is_max, src, n),
    };
    let st = storer::<i64>(indices.dtype, None);
    unsafe { st(&[idx], indices.ptr, 1) };
    Ok(())
}

/// The flat index of the best element of `src` (n > 0 elements).
fn flat<A: Acc>(is_max: bool, src: &View, n: usize) -> i64 {
    let layout = Layout::<1>::new(&src.sizes, [&src.strides]);
    let [st] = layout.inner_strides();
    let load = loader::<A>(src.dtype, None);
    let (sp, ssize) = (Ptr::new(src.ptr), src.dtype.size());
    let nb = n.div_ceil(BLOCK);
    let mut parts: Vec<(A, i64)> = vec![(A::ZERO, -1); nb];
    let out = Shared(parts.as_mut_ptr());
    let out = &out;
    par_ranges(nb, 1, |range| {
        let mut buf = [A::ZERO; CHUNK];
        for b in range {
            let mut best: Option<(A, i64)> = None;
            layout.for_each_row(b * BLOCK..((b + 1) * BLOCK).min(n), |first, [off], len| {
                let mut done = 0;
                while done < len {
                    let k = CHUNK.min(len - done);
                    unsafe {
                        load(
                            sp.byte_at(off + done as isize * st, ssize),
                            st,
                            &mut buf[..k],
                        )
                    };
                    for (j, &x) in buf[..k].iter().enumerate() {
                        let i = (first + done + j) as i64;
                        match best {
                            Some((bv, _)) if !better(is_max, x, bv) => {}
                            _ => best = Some((x, i)),
                        }
                    }
                    done += k;
                }
            });
            unsafe { *out.0.add(b) = best.expect("non-empty block") };
        }
    });
    let mut best = parts[0];
    for &(v, i) in &parts[1..] {
        if better(is_max, v, best.0) {
            best = (v, i);
        }
    }
    best.1
}
