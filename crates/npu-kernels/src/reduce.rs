//! Reductions over a set of dims: sum, prod, mean, max/min, any/all, nansum, p-norms.
//!
//! Values are converted to the accumulation type `A` (f32, f64, i64; u8 truth values for
//! any/all) and combined in a fixed order that depends only on the shapes and strides, never
//! on the thread count:
//!
//! * **inner scheme** (the src dim with the smallest stride is reduced): each output walks its
//!   reduction index space in rows; contiguous rows are cut into blocks of `PAIRWISE_BASE`
//!   summed with 4 x `LANES` independent accumulators (vectorized), and block and row results are
//!   merged pairwise by a binary-counter cascade. Reduction spaces longer than `BLOCK` are cut
//!   into fixed blocks that run in parallel and are merged the same way.
//! * **column scheme** (the smallest stride is a kept dim of at least 16 elements, e.g. summing
//!   a row-major matrix over dim 0): up to `COL_BYTES` of adjacent outputs are accumulated
//!   together, one contiguous source row at a time (an elementwise, vectorized add), `LEAF`
//!   rows per leaf, leaves merged by a cascade; `COL_BLOCK` rows per parallel task, the tasks'
//!   partial rows merged by a cascade too. No strided inner loops over large strides.
//!
//! Max/min propagate NaN (any NaN gives NaN). The hot loops have an AVX2 copy (`cpu.rs`).

use crate::convert::Element;
use crate::cpu::with_avx2;
use crate::dtype::DType;
use crate::elementwise::{loader, reject_complex, storer, truth_loader, LoadFn, StoreFn, CHUNK};
use crate::view::{err, par_ranges, Layout, Ptr, View};
use crate::KernelError;
use std::ops::Range;

/// Reduction operations. `Norm` is the 2-norm here; [`reduce_norm`] takes any p.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Prod,
    Max,
    Min,
    Amax,
    Amin,
    Any,
    All,
    Mean,
    NanSum,
    Norm,
}

impl ReduceOp {
    /// The ATen name (used in error messages).
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Prod => "prod",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Amax => "amax",
            ReduceOp::Amin => "amin",
            ReduceOp::Any => "any",
            ReduceOp::All => "all",
            ReduceOp::Mean => "mean",
            ReduceOp::NanSum => "nansum",
            ReduceOp::Norm => "linalg.vector_norm",
        }
    }
}

/// Reduction indices per parallel block of the inner scheme (fixed: results must not depend on
/// the number of threads).
const BLOCK: usize = 64 * 1024;
/// Bytes of accumulators (outputs) the column scheme updates together: one row of them stays
/// in L1 while whole source rows stream past.
const COL_BYTES: usize = 16 * 1024;
/// Source rows per leaf of the column scheme's cascade.
const LEAF: usize = 16;
/// Reduction indices (source rows) per parallel block of the column scheme.
const COL_BLOCK: usize = 256;
/// Independent accumulators of a contiguous slice reduction.
const LANES: usize = 16;
/// Blocks of this many elements are reduced by the lanes; blocks are merged pairwise.
const PAIRWISE_BASE: usize = 2048;
/// Work (elements) per parallel task, roughly.
const WORK_GRAIN: usize = 32 * 1024;

/// How values combine.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Comb {
    Sum,
    Prod,
    /// NaN-propagating max/min.
    Max,
    Min,
}

/// Applied to each element after loading.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Map {
    None,
    Abs,
    Square,
    AbsPow(f64),
    NanToZero,
    NonZero,
}

/// Applied to each result.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Fin {
    None,
    Div(f64),
    Sqrt,
    Pow(f64),
    /// 1 for nonzero, else 0 (any/all results).
    Truth,
}

/// An accumulation type.
pub(crate) trait Acc: Element + PartialOrd {
    const ZERO: Self;
    const ONE: Self;
    /// Identity of max (the lowest value, -inf for floats) and of min.
    const LOWEST: Self;
    const HIGHEST: Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn nan(self) -> bool;
    /// NaN for NaN and infinities (x - x), 0 otherwise: summed, it flags a slice that may hold
    /// a NaN.
    fn probe(self) -> Self;
    fn map(self, m: Map) -> Self;
    fn fin(self, f: Fin) -> Self;
}

macro_rules! acc_int {
    ($t:ty) => {
        impl Acc for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn nan(self) -> bool {
                false
            }
            #[inline(always)]
            fn probe(self) -> Self {
                0
            }
            #[inline(always)]
            fn map(self, m: Map) -> Self {
                match m {
                    Map::NonZero => (self != 0) as $t,
                    _ => self,
                }
            }
            #[inline(always)]
            fn fin(self, f: Fin) -> Self {
                match f {
                    Fin::Truth => (self != 0) as $t,
                    _ => self,
                }
            }
        }
    };
}
acc_int!(u8);
acc_int!(i64);

macro_rules! acc_float {
    ($t:ty) => {
        impl Acc for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            fn nan(self) -> bool {
                self != self
            }
            #[inline(always)]
            fn probe(self) -> Self {
                self - self
            }
            #[inline(always)]
            fn map(self, m: Map) -> Self {
                match m {
                    Map::None => self,
                    Map::Abs => self.abs(),
                    Map::Square => self * self,
                    Map::AbsPow(p) => self.abs().powf(p as $t),
                    Map::NanToZero => {
                        if self != self {
                            0.0
                        } else {
                            self
                        }
                    }
                    Map::NonZero => (self != 0.0) as u8 as $t,
                }
            }
            #[inline(always)]
            fn fin(self, f: Fin) -> Self {
                match f {
                    Fin::None => self,
                    Fin::Div(n) => self / n as $t,
                    Fin::Sqrt => self.sqrt(),
                    Fin::Pow(q) => self.powf(q as $t),
                    Fin::Truth => (self != 0.0) as u8 as $t,
                }
            }
        }
    };
}
acc_float!(f32);
acc_float!(f64);

/// max(acc, x) that sticks to NaN: a NaN `x` is taken, and once `acc` is NaN no comparison
/// is true, so it stays.
#[inline(always)]
fn max_nan<A: Acc>(acc: A, x: A) -> A {
    if x.nan() || x > acc {
        x
    } else {
        acc
    }
}

#[inline(always)]
fn min_nan<A: Acc>(acc: A, x: A) -> A {
    if x.nan() || x < acc {
        x
    } else {
        acc
    }
}

#[inline(always)]
pub(crate) fn comb<A: Acc>(c: Comb, x: A, y: A) -> A {
    match c {
        Comb::Sum => x.add(y),
        Comb::Prod => x.mul(y),
        Comb::Max => max_nan(x, y),
        Comb::Min => min_nan(x, y),
    }
}

/// The identity of a combination (max/min: the extreme values; NaN still wins).
fn identity<A: Acc>(c: Comb) -> A {
    match c {
        Comb::Sum => A::ZERO,
        Comb::Prod => A::ONE,
        Comb::Max => A::LOWEST,
        Comb::Min => A::HIGHEST,
    }
}

/// Reduces a slice with 4 x `LANES` independent accumulators, then combines them as a tree.
#[inline(always)]
fn lanes<A: Copy>(xs: &[A], init: A, f: impl Fn(A, A) -> A + Copy) -> A {
    // four groups of LANES, so that four vector additions are in flight
    let (mut acc, mut a1, mut a2, mut a3) = ([init; LANES], [init; LANES], [init; LANES], [init; LANES]);
    let mut it = xs.chunks_exact(4 * LANES);
    for ch in &mut it {
        let (c0, rest) = ch.split_at(LANES);
        let (c1, rest) = rest.split_at(LANES);
        let (c2, c3) = rest.split_at(LANES);
        for j in 0..LANES {
            acc[j] = f(acc[j], c0[j]);
            a1[j] = f(a1[j], c1[j]);
            a2[j] = f(a2[j], c2[j]);
            a3[j] = f(a3[j], c3[j]);
        }
    }
    for j in 0..LANES {
        acc[j] = f(f(acc[j], a1[j]), f(a2[j], a3[j]));
    }
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for j in 0..w {
            acc[j] = f(acc[j], acc[j + w]);
        }
    }
    let mut r = acc[0];
    for &x in it.remainder() {
        r = f(r, x);
    }
    r
}

/// max (or min) of a slice, NaN if it holds one: a plain max/min select per lane (one
/// instruction), then a sum of `probe`s that flags possible NaNs for a second look. Two passes
/// through [`lanes`], each with a closure that captures nothing: one loop doing both, with the
/// direction a run-time flag, was compiled to scalar code.
#[inline(always)]
fn extreme<A: Acc>(xs: &[A], is_max: bool) -> A {
    let r = if is_max {
        lanes(xs, A::LOWEST, |m: A, x: A| if x > m { x } else { m })
    } else {
        lanes(xs, A::HIGHEST, |m: A, x: A| if x < m { x } else { m })
    };
    if lanes(xs, A::ZERO, |p: A, x: A| p.add(x.probe())).nan() {
        if let Some(&n) = xs.iter().find(|x| x.nan()) {
            return n;
        }
    }
    r
}

with_avx2!(
    /// Reduces a slice (sums and products pairwise).
    pub(crate) fn slice_reduce<A: Acc>(c: Comb, xs: &[A]) -> A => slice_reduce_body
);

#[inline(always)]
fn slice_reduce_body<A: Acc>(c: Comb, xs: &[A]) -> A {
    match c {
        Comb::Sum => blocks(c, xs, A::ZERO, |x: A, y: A| x.add(y)),
        Comb::Prod => blocks(c, xs, A::ONE, |x: A, y: A| x.mul(y)),
        Comb::Max => extreme(xs, true),
        Comb::Min => extreme(xs, false),
    }
}

/// Sums and products: blocks of PAIRWISE_BASE reduced by the lanes, blocks merged pairwise
/// (a binary-counter cascade). A function, not a closure, so that it is inlined into the
/// AVX copies of `slice_reduce` (a closure was compiled once, for the baseline target).
#[inline(always)]
fn blocks<A: Acc>(c: Comb, xs: &[A], init: A, f: impl Fn(A, A) -> A + Copy) -> A {
    if xs.len() <= PAIRWISE_BASE {
        return lanes(xs, init, f);
    }
    let mut cas = Cascade::<A>::new(c);
    for blk in xs.chunks(PAIRWISE_BASE) {
        cas.push(lanes(blk, init, f));
    }
    cas.finish()
}

with_avx2!(
    /// `acc[i] = comb(acc[i], xs[i])`.
    fn comb_cols<A: Acc>(c: Comb, acc: &mut [A], xs: &[A]) => comb_cols_body
);

#[inline(always)]
fn comb_cols_body<A: Acc>(c: Comb, acc: &mut [A], xs: &[A]) {
    let xs = &xs[..acc.len()];
    match c {
        Comb::Sum => acc.iter_mut().zip(xs).for_each(|(a, &x)| *a = a.add(x)),
        Comb::Prod => acc.iter_mut().zip(xs).for_each(|(a, &x)| *a = a.mul(x)),
        Comb::Max => acc
            .iter_mut()
            .zip(xs)
            .for_each(|(a, &x)| *a = max_nan(*a, x)),
        Comb::Min => acc
            .iter_mut()
            .zip(xs)
            .for_each(|(a, &x)| *a = min_nan(*a, x)),
    }
}

fn apply_map<A: Acc>(m: Map, xs: &mut [A]) {
    match m {
        Map::None => {}
        Map::Abs => xs.iter_mut().for_each(|x| *x = x.map(Map::Abs)),
        Map::Square => xs.iter_mut().for_each(|x| *x = x.map(Map::Square)),
        Map::NanToZero => xs.iter_mut().for_each(|x| *x = x.map(Map::NanToZero)),
        Map::NonZero => xs.iter_mut().for_each(|x| *x = x.map(Map::NonZero)),
        m => xs.iter_mut().for_each(|x| *x = x.map(m)),
    }
}

/// Merges values in a binary-counter tree: after 2^k pushes the stack holds one value that
/// is the pairwise combination of all of them.
pub(crate) struct Cascade<A> {
    stack: [(A, u32); 64],
    len: usize,
    c: Comb,
}

impl<A: Acc> Cascade<A> {
    pub(crate) fn new(c: Comb) -> Self {
        Cascade {
            stack: [(identity::<A>(c), 0); 64],
            len: 0,
            c,
        }
    }
    #[inline]
    pub(crate) fn push(&mut self, v: A) {
        let (mut v, mut level) = (v, 0u32);
        while self.len > 0 && self.stack[self.len - 1].1 == level {
            self.len -= 1;
            v = comb(self.c, self.stack[self.len].0, v);
            level += 1;
        }
        self.stack[self.len] = (v, level);
        self.len += 1;
    }
    pub(crate) fn finish(&self) -> A {
        let mut r: Option<A> = None;
        for &(v, _) in self.stack[..self.len].iter().rev() {
            r = Some(match r {
                None => v,
                Some(r) => comb(self.c, v, r),
            });
        }
        r.unwrap_or_else(|| identity::<A>(self.c))
    }
}

/// The same cascade over columns of `width` values.
struct ColCascade<A> {
    stack: Vec<(Vec<A>, u32)>,
    pool: Vec<Vec<A>>,
    c: Comb,
}

impl<A: Acc> ColCascade<A> {
    fn new(c: Comb) -> Self {
        ColCascade {
            stack: Vec::new(),
            pool: Vec::new(),
            c,
        }
    }
    fn fresh(&mut self, width: usize) -> Vec<A> {
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.resize(width, identity::<A>(self.c));
        v
    }
    fn push(&mut self, mut v: Vec<A>) {
        let mut level = 0u32;
        while let Some((_, l)) = self.stack.last() {
            if *l != level {
                break;
            }
            let (mut below, _) = self.stack.pop().unwrap();
            comb_cols(self.c, &mut below, &v);
            self.pool.push(v);
            v = below;
            level += 1;
        }
        self.stack.push((v, level));
    }
    /// Combines everything into `out` (whose values come after all pushed leaves).
    fn finish(&mut self, out: &mut Vec<A>) {
        while let Some((mut below, _)) = self.stack.pop() {
            comb_cols(self.c, &mut below, out);
            std::mem::swap(out, &mut below);
            self.pool.push(below);
        }
    }
}

/// What to compute, in accumulation type `A`.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) comb: Comb,
    pub(crate) map: Map,
    pub(crate) fin: Fin,
}

/// Reduces `src` over the dims in `dims` (sorted, unique, non-negative; empty means all dims)
/// into `dst`, whose sizes are `src`'s with the reduced dims set to 1 (any strides; size-1
/// dims of a squeezed result can have any stride). `acc` is the accumulation dtype (f32 for
/// f16/bf16, f64 for f64, i64 for integer and bool sums); values are converted to it and the
/// results converted to `dst.dtype`.
///
/// Sums and products are pairwise; `Mean` divides by the reduced count; `Max`/`Min`/`Amax`/
/// `Amin` propagate NaN; `Any`/`All` write 1/0; `Norm` is the 2-norm (see [`reduce_norm`]).
/// Empty reductions give 0 (sums), 1 (`Prod`), false (`Any`), true (`All`), NaN (`Mean`);
/// `Max`/`Min`/`Amax`/`Amin` over an empty dim are errors, as in PyTorch.
pub fn reduce(
    op: ReduceOp,
    dst: &View,
    src: &View,
    dims: &[usize],
    acc: DType,
) -> Result<(), KernelError> {
    reduce_impl(op, dst, src, dims, acc, 2.0)
}

/// The vector p-norm over `dims` (`torch.linalg.vector_norm`): `(sum |x|^p)^(1/p)`, with
/// p = inf / -inf the max / min of `|x|` and p = 0 the count of nonzeros. Float `acc` only.
pub fn reduce_norm(
    dst: &View,
    src: &View,
    dims: &[usize],
    p: f64,
    acc: DType,
) -> Result<(), KernelError> {
    reduce_impl(ReduceOp::Norm, dst, src, dims, acc, p)
}

/// Checked geometry of a reduction: which dims are reduced, and the sizes involved.
pub(crate) struct Geometry {
    pub(crate) reduced: Vec<bool>,
    /// Elements per output.
    pub(crate) m: usize,
    pub(crate) nout: usize,
}

/// Validates `src`/`dst`/`dims` for a keepdim-layout reduction.
pub(crate) fn geometry(
    name: &str,
    dst: &View,
    src: &View,
    dims: &[usize],
) -> Result<Geometry, KernelError> {
    src.validate(name)?;
    dst.validate(name)?;
    let rank = src.sizes.len();
    if dst.sizes.len() != rank {
        return Err(err(
            name,
            format!(
                "output rank {} does not match input rank {rank} (keepdim layout expected)",
                dst.sizes.len()
            ),
        ));
    }
    let mut reduced = vec![dims.is_empty(); rank];
    for (i, &d) in dims.iter().enumerate() {
        if rank == 0 && d == 0 {
            continue; // dim 0 of a 0-dim tensor is the tensor itself
        }
        if d >= rank {
            return Err(err(
                name,
                format!(
                    "Dimension out of range (expected to be in range of [{}, {}], but got {d})",
                    -(rank.max(1) as i64),
                    rank.max(1) - 1
                ),
            ));
        }
        if i > 0 && dims[i - 1] >= d {
            return Err(err(
                name,
                format!("dims must be sorted and unique, got {dims:?}"),
            ));
        }
        reduced[d] = true;
    }
    for (d, &r) in reduced.iter().enumerate() {
        let want = if r { 1 } else { src.sizes[d] };
        if dst.sizes[d] != want {
            return Err(err(
                name,
                format!(
                    "output size {:?} does not match input size {:?} reduced over {dims:?}",
                    dst.sizes, src.sizes
                ),
            ));
        }
    }
    let m = (0..rank)
        .filter(|&d| reduced[d])
        .map(|d| src.sizes[d] as usize)
        .product();
    let nout = dst.numel();
    Ok(Geometry { reduced, m, nout })
}

/// PyTorch's errors for max/min-like reductions with nothing to reduce.
pub(crate) fn empty_error(name: &str, src: &View, g: &Geometry, all: bool) -> KernelError {
    if all {
        return KernelError(format!(
            "{name}(): Expected reduction dim to be specified for input.numel() == 0. \
             Specify the reduction dim with the 'dim' argument."
        ));
    }
    let d = (0..src.sizes.len())
        .find(|&d| g.reduced[d] && src.sizes[d] == 0)
        .unwrap_or(0);
    KernelError(format!(
        "{name}(): Expected reduction dim {d} to have non-zero size."
    ))
}

fn reduce_impl(
    op: ReduceOp,
    dst: &View,
    src: &View,
    dims: &[usize],
    acc: DType,
    p: f64,
) -> Result<(), KernelError> {
    let name = op.name();
    reject_complex(name, &[dst.dtype, src.dtype, acc])?;
    let g = geometry(name, dst, src, dims)?;
    let float_acc = acc.is_floating();
    use ReduceOp::*;
    if matches!(op, Mean | Norm) && !float_acc {
        return Err(KernelError(match op {
            Mean => format!(
                "mean(): could not infer output dtype. Input dtype must be either a floating \
                 point or complex dtype. Got: {}",
                acc.name()
            ),
            _ => format!(
                "linalg.vector_norm: Expected a floating point or complex tensor as input. Got {}",
                acc.name()
            ),
        }));
    }
    if g.m == 0 {
        if matches!(op, Max | Min | Amax | Amin) {
            return Err(empty_error(name, src, &g, dims.is_empty()));
        }
        if op == Norm && (p < 0.0 || p == f64::INFINITY) {
            return Err(KernelError(format!(
                "linalg.vector_norm cannot compute the {p} norm on an empty tensor because \
                 the operation does not have an identity"
            )));
        }
    }
    dst.check_writable(name)?;
    if g.nout == 0 {
        return Ok(());
    }
    let spec = match op {
        Sum => Spec {
            comb: Comb::Sum,
            map: Map::None,
            fin: Fin::None,
        },
        NanSum => Spec {
            comb: Comb::Sum,
            map: if float_acc { Map::NanToZero } else { Map::None },
            fin: Fin::None,
        },
        Mean => Spec {
            comb: Comb::Sum,
            map: Map::None,
            fin: Fin::Div(g.m as f64),
        },
        Prod => Spec {
            comb: Comb::Prod,
            map: Map::None,
            fin: Fin::None,
        },
        Max | Amax => Spec {
            comb: Comb::Max,
            map: Map::None,
            fin: Fin::None,
        },
        Min | Amin => Spec {
            comb: Comb::Min,
            map: Map::None,
            fin: Fin::None,
        },
        Any => Spec {
            comb: Comb::Max,
            map: Map::None,
            fin: Fin::Truth,
        },
        All => Spec {
            comb: Comb::Min,
            map: Map::None,
            fin: Fin::Truth,
        },
        Norm => {
            let (comb, map, fin) = if p == 2.0 {
                (Comb::Sum, Map::Square, Fin::Sqrt)
            } else if p == 1.0 {
                (Comb::Sum, Map::Abs, Fin::None)
            } else if p == f64::INFINITY {
                (Comb::Max, Map::Abs, Fin::None)
            } else if p == f64::NEG_INFINITY {
                (Comb::Min, Map::Abs, Fin::None)
            } else if p == 0.0 {
                (Comb::Sum, Map::NonZero, Fin::None)
            } else {
                (Comb::Sum, Map::AbsPow(p), Fin::Pow(1.0 / p))
            };
            Spec { comb, map, fin }
        }
    };
    match op {
        Any | All => run::<u8>(
            name,
            dst,
            src,
            &g,
            spec,
            truth_loader::<u8>(src.dtype),
            false,
        ),
        _ => match acc {
            DType::F16 | DType::BF16 | DType::F32 => run::<f32>(
                name,
                dst,
                src,
                &g,
                spec,
                loader::<f32>(src.dtype, None),
                true,
            ),
            DType::F64 => run::<f64>(
                name,
                dst,
                src,
                &g,
                spec,
                loader::<f64>(src.dtype, None),
                true,
            ),
            _ => run::<i64>(
                name,
                dst,
                src,
                &g,
                spec,
                loader::<i64>(src.dtype, None),
                true,
            ),
        },
    }
}

/// The engine: `direct_ok` allows reading `src` in place when its dtype is `A`.
fn run<A: Acc>(
    name: &str,
    dst: &View,
    src: &View,
    g: &Geometry,
    spec: Spec,
    load: LoadFn<A>,
    direct_ok: bool,
) -> Result<(), KernelError> {
    let _ = name;
    let rank = src.sizes.len();
    let store = storer::<A>(dst.dtype, None);
    let direct = direct_ok && src.dtype == A::DTYPE && spec.map == Map::None;
    let r = Reducer {
        spec,
        load,
        store,
        direct,
        sptr: Ptr::new(src.ptr),
        ssize: src.dtype.size(),
        dptr: Ptr::new(dst.ptr),
        dsize: dst.dtype.size(),
    };
    let dims = |keep: bool| -> Vec<usize> {
        (0..rank)
            .filter(|&d| g.reduced[d] != keep && src.sizes[d] != 1)
            .collect()
    };
    let (kept, red) = (dims(true), dims(false));
    // The column scheme pays off when the smallest stride belongs to a wide enough kept dim.
    let min_dim = (0..rank)
        .filter(|&d| src.sizes[d] > 1)
        .min_by_key(|&d| src.strides[d].unsigned_abs());
    let pick = |ds: &[usize], of: &[i64]| ds.iter().map(|&d| of[d]).collect::<Vec<i64>>();
    let red_layout = Layout::<1>::new(&pick(&red, &src.sizes), [&pick(&red, &src.strides)]);
    match min_dim {
        Some(v) if !g.reduced[v] && src.sizes[v] >= 16 && g.m > 1 => {
            let others: Vec<usize> = kept.iter().copied().filter(|&d| d != v).collect();
            let outer = Layout::<2>::new(
                &pick(&others, &src.sizes),
                [&pick(&others, &src.strides), &pick(&others, &dst.strides)],
            );
            let col = Column {
                n: src.sizes[v] as usize,
                sstride: src.strides[v] as isize,
                dstride: dst.strides[v] as isize,
            };
            r.columns(&outer, &red_layout, col, g.m);
        }
        _ => {
            let outer = Layout::<2>::new(
                &pick(&kept, &src.sizes),
                [&pick(&kept, &src.strides), &pick(&kept, &dst.strides)],
            );
            r.inner(&outer, &red_layout, g.m, g.nout);
        }
    }
    Ok(())
}

struct Column {
    n: usize,
    sstride: isize,
    dstride: isize,
}

struct Reducer<A> {
    spec: Spec,
    load: LoadFn<A>,
    store: StoreFn<A>,
    direct: bool,
    sptr: Ptr,
    ssize: usize,
    dptr: Ptr,
    dsize: usize,
}

/// A shared output buffer that parallel tasks write at disjoint indices.
struct Shared<A>(*mut A);
unsafe impl<A> Send for Shared<A> {}
unsafe impl<A> Sync for Shared<A> {}

impl<A: Acc> Reducer<A> {
    /// Reduction indices `range` of the output whose source offset is `base`.
    fn reduce_range(
        &self,
        red: &Layout<1>,
        base: isize,
        range: Range<usize>,
        buf: &mut Vec<A>,
    ) -> A {
        let c = self.spec.comb;
        let [rs] = red.inner_strides();
        let mut cas = Cascade::<A>::new(c);
        red.for_each_row(range, |_, [ro], len| unsafe {
            let start = base + ro;
            if self.direct && rs == 1 {
                let xs = std::slice::from_raw_parts(self.sptr.at::<A>(start), len);
                cas.push(slice_reduce(c, xs));
                return;
            }
            if buf.len() < CHUNK.min(len) {
                buf.resize(CHUNK.min(len), A::ZERO);
            }
            let mut done = 0;
            while done < len {
                let k = CHUNK.min(len - done);
                let p = self.sptr.byte_at(start + done as isize * rs, self.ssize);
                (self.load)(p, rs, &mut buf[..k]);
                apply_map(self.spec.map, &mut buf[..k]);
                cas.push(slice_reduce(c, &buf[..k]));
                done += k;
            }
        });
        cas.finish()
    }

    fn store_one(&self, off: isize, v: A) {
        unsafe {
            (self.store)(
                &[v.fin(self.spec.fin)],
                self.dptr.byte_at(off, self.dsize),
                1,
            )
        }
    }

    /// Inner scheme: one output at a time.
    fn inner(&self, outer: &Layout<2>, red: &Layout<1>, m: usize, nout: usize) {
        let [ks, kd] = outer.inner_strides();
        if m <= BLOCK {
            let grain = (WORK_GRAIN / m.max(1)).max(1);
            par_ranges(nout, grain, |range| {
                let mut buf = Vec::new();
                outer.for_each_row(range, |_, [so, do_], len| {
                    for k in 0..len as isize {
                        let v = self.reduce_range(red, so + k * ks, 0..m, &mut buf);
                        self.store_one(do_ + k * kd, v);
                    }
                });
            });
            return;
        }
        // Long reductions: fixed blocks in parallel, then a cascade over each output's blocks.
        let nb = m.div_ceil(BLOCK);
        let mut partial = vec![A::ZERO; nout * nb];
        let out = Shared(partial.as_mut_ptr());
        let out = &out;
        par_ranges(nout * nb, 1, |range| {
            let mut buf = Vec::new();
            for t in range {
                let (o, b) = (t / nb, t % nb);
                let mut base = 0;
                outer.for_each_row(o..o + 1, |_, [so, _], _| base = so);
                let v = self.reduce_range(red, base, b * BLOCK..((b + 1) * BLOCK).min(m), &mut buf);
                unsafe { *out.0.add(t) = v };
            }
        });
        outer.for_each_row(0..nout, |first, [_, do_], len| {
            for k in 0..len {
                let mut cas = Cascade::<A>::new(self.spec.comb);
                for &v in &partial[(first + k) * nb..(first + k + 1) * nb] {
                    cas.push(v);
                }
                self.store_one(do_ + k as isize * kd, cas.finish());
            }
        });
    }

    /// Accumulates reduction indices `range` into `cols` adjacent outputs starting at source
    /// offset `base` (column stride `cs`), leaving the result in `acc`.
    #[allow(clippy::too_many_arguments)]
    fn reduce_cols(
        &self,
        red: &Layout<1>,
        base: isize,
        cs: isize,
        cols: usize,
        range: Range<usize>,
        acc: &mut Vec<A>,
        buf: &mut Vec<A>,
    ) {
        let c = self.spec.comb;
        let cascade = matches!(c, Comb::Sum | Comb::Prod);
        let mut cas = ColCascade::<A>::new(c);
        let mut leaf = cas.fresh(cols);
        let mut rows = 0;
        let [rs] = red.inner_strides();
        if buf.len() < cols {
            buf.resize(cols, A::ZERO);
        }
        red.for_each_row(range, |_, [ro], len| unsafe {
            for k in 0..len as isize {
                let start = base + ro + k * rs;
                if self.direct && cs == 1 {
                    let xs = std::slice::from_raw_parts(self.sptr.at::<A>(start), cols);
                    comb_cols(c, &mut leaf, xs);
                } else {
                    (self.load)(self.sptr.byte_at(start, self.ssize), cs, &mut buf[..cols]);
                    apply_map(self.spec.map, &mut buf[..cols]);
                    comb_cols(c, &mut leaf, &buf[..cols]);
                }
                rows += 1;
                if cascade && rows == LEAF {
                    let next = cas.fresh(cols);
                    cas.push(std::mem::replace(&mut leaf, next));
                    rows = 0;
                }
            }
        });
        cas.finish(&mut leaf);
        *acc = leaf;
    }

    /// Column scheme: blocks of up to `COL_BYTES` worth of outputs along the kept dim `col`,
    /// each summing a fixed block of `COL_BLOCK` reduction indices; blocks are then merged per
    /// output column by a cascade (in block order, so the split never matters).
    fn columns(&self, outer: &Layout<2>, red: &Layout<1>, col: Column, m: usize) {
        let nouter = outer.numel();
        let width = (COL_BYTES / std::mem::size_of::<A>()).max(1);
        let ncb = col.n.div_ceil(width);
        let nrb = m.div_ceil(COL_BLOCK).max(1);
        let tasks = nouter * ncb * nrb;
        let per_task = width.min(col.n) * COL_BLOCK.min(m);
        let grain = (WORK_GRAIN / per_task.max(1)).max(1);
        // partial[(o * nrb + rb) * n + j]: block rb of output column j of outer index o
        let mut partial = if nrb > 1 {
            vec![A::ZERO; nouter * nrb * col.n]
        } else {
            Vec::new()
        };
        let part = Shared(partial.as_mut_ptr());
        let part = &part;
        let locate = |o: usize| {
            let mut offs = [0isize; 2];
            outer.for_each_row(o..o + 1, |_, o2, _| offs = o2);
            offs
        };
        let store_cols = |acc: &mut [A], do_: isize, c0: usize| {
            for v in acc.iter_mut() {
                *v = v.fin(self.spec.fin);
            }
            let p = unsafe {
                self.dptr
                    .byte_at(do_ + c0 as isize * col.dstride, self.dsize)
            };
            unsafe { (self.store)(acc, p, col.dstride) };
        };
        par_ranges(tasks, grain, |range| {
            let (mut acc, mut buf) = (Vec::new(), Vec::new());
            for t in range {
                let (o, rest) = (t / (ncb * nrb), t % (ncb * nrb));
                let (cb, rb) = (rest / nrb, rest % nrb);
                let [so, do_] = locate(o);
                let c0 = cb * width;
                let cols = width.min(col.n - c0);
                let base = so + c0 as isize * col.sstride;
                let rr = rb * COL_BLOCK..((rb + 1) * COL_BLOCK).min(m);
                self.reduce_cols(red, base, col.sstride, cols, rr, &mut acc, &mut buf);
                if nrb == 1 {
                    store_cols(&mut acc, do_, c0);
                } else {
                    let at = (o * nrb + rb) * col.n + c0;
                    unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), part.0.add(at), cols) };
                }
            }
        });
        if nrb == 1 {
            return;
        }
        let partial = &partial;
        par_ranges(nouter * ncb, 1, |range| {
            for t in range {
                let (o, cb) = (t / ncb, t % ncb);
                let [_, do_] = locate(o);
                let c0 = cb * width;
                let cols = width.min(col.n - c0);
                let mut cas = ColCascade::<A>::new(self.spec.comb);
                for rb in 0..nrb {
                    let at = (o * nrb + rb) * col.n + c0;
                    let mut v = cas.fresh(cols);
                    v.copy_from_slice(&partial[at..at + cols]);
                    cas.push(v);
                }
                let mut acc = cas.fresh(cols);
                cas.finish(&mut acc);
                store_cols(&mut acc, do_, c0);
            }
        });
    }
}
