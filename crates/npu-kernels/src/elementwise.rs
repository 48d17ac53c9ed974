//! The driver shared by the elementwise kernels (unary, binary, where, clamp).
//!
//! A kernel is a function on slices of one "math" type `M` (f32, f64, an integer type or
//! `Bool8`) producing slices of a result type `R`. The driver walks the output in innermost
//! rows (via [`Layout`]) and hands the kernel each row, a chunk at a time:
//!
//! * an input whose row is contiguous and already of type `M` is passed in place (a slice of
//!   the caller's memory), one with inner stride 0 as a single value ([`Arg::Splat`]), anything
//!   else is converted into a small buffer first ("staged");
//! * the output row is written in place when it is contiguous and of type `R`, else into a
//!   buffer that is then converted and scattered into the destination.
//!
//! So a contiguous same-dtype op runs as one tight loop over plain slices, which the compiler
//! vectorizes, and every other case costs one extra pass over an L1-resident buffer. An input
//! that overlaps the output (in-place ops such as `add_`) is always staged, so no `&[M]` ever
//! aliases the `&mut [R]` being written.

use crate::convert::dispatch_real;
use crate::convert::{Bool8, Element};
use crate::dtype::DType;
use crate::scratch::Scratch;
use crate::simd;
use crate::view::{err, par_ranges, Layout, Ptr, View};
use crate::KernelError;
use half::{bf16, f16};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Elements per staged chunk: buffers of this many elements stay in L1.
pub(crate) const CHUNK: usize = 1024;
/// Split elementwise work across threads from 128K elements: below, waking a pool thread costs
/// about what it saves on a cheap op (in-place add of 64K f32: 15 us split, 9 us whole).
pub(crate) const GRAIN: usize = 64 * 1024;

/// Errors unless no view is complex (complex kernels do not exist yet).
pub(crate) fn reject_complex(name: &str, dtypes: &[DType]) -> Result<(), KernelError> {
    match dtypes.iter().find(|d| d.is_complex()) {
        Some(d) => Err(err(name, format!("unsupported dtype {}", d.name()))),
        None => Ok(()),
    }
}

/// PyTorch's message for an op that has no kernel for a dtype.
pub(crate) fn not_implemented(name: &str, dtype: DType) -> KernelError {
    KernelError(format!("\"{name}\" not implemented for '{}'", dtype.name()))
}

/// One input row as a kernel sees it.
#[derive(Clone, Copy)]
pub(crate) enum Arg<'a, T> {
    Slice(&'a [T]),
    /// Every element of the row has this value (broadcast input or scalar operand).
    Splat(T),
}

impl<T: Copy> Arg<'_, T> {
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> T {
        match self {
            Arg::Slice(s) => s[i],
            Arg::Splat(v) => *v,
        }
    }
}

/// A stored element as the math type `M` a kernel computes in ([`map1!`]): the element
/// itself, or bf16 widened to f32 (exact) in registers.
pub(crate) trait ToMath<M>: Copy {
    fn to_math(self) -> M;
}

impl<T: Element> ToMath<T> for T {
    #[inline(always)]
    fn to_math(self) -> T {
        self
    }
}

impl ToMath<f32> for bf16 {
    #[inline(always)]
    fn to_math(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

/// The element count, if `dst` and `inputs` are valid contiguous views of `dtype` and of one
/// shape, `dst` writable, and each input apart from `dst` or `dst` itself: the conditions for
/// the bf16 paths that skip the driver's staging. None, having reported nothing, otherwise:
/// the driver then runs the op, or says what is wrong.
pub(crate) fn plain_operands(
    name: &str,
    dtype: DType,
    dst: &View,
    inputs: &[&View],
) -> Option<usize> {
    let fits = |v: &View| v.dtype == dtype && v.sizes == dst.sizes && v.is_contiguous();
    if !fits(dst) || !inputs.iter().all(|v| fits(v)) {
        return None;
    }
    if dst.validate(name).is_err() || inputs.iter().any(|v| v.validate(name).is_err()) {
        return None;
    }
    if dst.check_writable(name).is_err() {
        return None;
    }
    let n = dst.numel();
    let apart = |v: &View| n == 0 || v.disjoint(dst) || v.same_elements(dst);
    inputs.iter().all(|v| apart(v)).then_some(n)
}

/// Reads `out.len()` elements starting at `src` (stride in elements), converted to `M`.
pub(crate) type LoadFn<M> = unsafe fn(*const u8, isize, &mut [M]);
/// Writes `vals` starting at `dst` (stride in elements), converted to the destination dtype.
pub(crate) type StoreFn<R> = unsafe fn(&[R], *mut u8, isize);

#[inline(always)]
fn same<A: Element, B: Element>() -> bool {
    A::DTYPE == B::DTYPE
}

unsafe fn load_cast<S: Element, M: Element>(src: *const u8, stride: isize, out: &mut [M]) {
    let p = src as *const S;
    if stride == 1 {
        if same::<S, f16>() && same::<M, f32>() {
            return simd::f16_to_f32(p as *const f16, out.as_mut_ptr() as *mut f32, out.len());
        }
        if same::<S, bf16>() && same::<M, f32>() {
            return simd::bf16_to_f32(p as *const bf16, out.as_mut_ptr() as *mut f32, out.len());
        }
        for (k, o) in out.iter_mut().enumerate() {
            *o = (*p.add(k)).cast::<M>();
        }
    } else {
        for (k, o) in out.iter_mut().enumerate() {
            *o = (*p.offset(k as isize * stride)).cast::<M>();
        }
    }
}

/// Converts through `H` first: a source read into f16/bf16 compute is rounded to that type.
unsafe fn load_via<S: Element, H: Element, M: Element>(
    src: *const u8,
    stride: isize,
    out: &mut [M],
) {
    if same::<S, H>() {
        return load_cast::<S, M>(src, stride, out);
    }
    let p = src as *const S;
    for (k, o) in out.iter_mut().enumerate() {
        *o = (*p.offset(k as isize * stride)).cast::<H>().cast::<M>();
    }
}

/// Reads the truth value (nonzero) of each element as 0 or 1 of type `M`.
unsafe fn load_truth<S: Element, M: Element>(src: *const u8, stride: isize, out: &mut [M]) {
    let p = src as *const S;
    for (k, o) in out.iter_mut().enumerate() {
        *o = M::from_bool((*p.offset(k as isize * stride)).cast::<Bool8>().0 != 0);
    }
}

unsafe fn store_cast<R: Element, D: Element>(vals: &[R], dst: *mut u8, stride: isize) {
    let p = dst as *mut D;
    if stride == 1 {
        if same::<R, f32>() && same::<D, f16>() {
            return simd::f32_to_f16(vals.as_ptr() as *const f32, p as *mut f16, vals.len());
        }
        if same::<R, f32>() && same::<D, bf16>() {
            return simd::f32_to_bf16(vals.as_ptr() as *const f32, p as *mut bf16, vals.len());
        }
        for (k, v) in vals.iter().enumerate() {
            *p.add(k) = v.cast::<D>();
        }
    } else {
        for (k, v) in vals.iter().enumerate() {
            *p.offset(k as isize * stride) = v.cast::<D>();
        }
    }
}

/// Rounds each value to `H` (the f16/bf16 compute type) before converting to the destination.
unsafe fn store_via<R: Element, H: Element, D: Element>(vals: &[R], dst: *mut u8, stride: isize) {
    if same::<H, D>() {
        return store_cast::<R, D>(vals, dst, stride);
    }
    let p = dst as *mut D;
    for (k, v) in vals.iter().enumerate() {
        *p.offset(k as isize * stride) = v.cast::<H>().cast::<D>();
    }
}

/// The loader from `src` to `M`; with `via` (an f16/bf16 compute dtype) values are rounded to
/// it on the way. `src` must not be complex.
pub(crate) fn loader<M: Element>(src: DType, via: Option<DType>) -> LoadFn<M> {
    match via {
        Some(DType::F16) => {
            dispatch_real!(src, S => load_via::<S, f16, M> as LoadFn<M>, complex => unreachable!())
        }
        Some(DType::BF16) => {
            dispatch_real!(src, S => load_via::<S, bf16, M> as LoadFn<M>, complex => unreachable!())
        }
        _ => dispatch_real!(src, S => load_cast::<S, M> as LoadFn<M>, complex => unreachable!()),
    }
}

/// The loader of truth values (any dtype; nonzero is true) as 0/1 of type `M`.
pub(crate) fn truth_loader<M: Element>(src: DType) -> LoadFn<M> {
    dispatch_real!(src, S => load_truth::<S, M> as LoadFn<M>, complex => unreachable!())
}

/// The storer from `R` to `dst`, rounding through `via` first if given.
pub(crate) fn storer<R: Element>(dst: DType, via: Option<DType>) -> StoreFn<R> {
    match via {
        Some(DType::F16) => {
            dispatch_real!(dst, D => store_via::<R, f16, D> as StoreFn<R>, complex => unreachable!())
        }
        Some(DType::BF16) => {
            dispatch_real!(dst, D => store_via::<R, bf16, D> as StoreFn<R>, complex => unreachable!())
        }
        _ => dispatch_real!(dst, D => store_cast::<R, D> as StoreFn<R>, complex => unreachable!()),
    }
}

/// An input of the driver.
pub(crate) enum Input<'a, M> {
    /// A view (sizes equal to the output's) and how to read it as `M`.
    View(&'a View, LoadFn<M>),
    /// A scalar operand, already converted.
    Const(M),
}

/// The first error any chunk reports; later chunks skip their work once it is set.
pub(crate) struct FirstError {
    set: AtomicBool,
    err: Mutex<Option<KernelError>>,
}

impl FirstError {
    pub(crate) fn new() -> FirstError {
        FirstError {
            set: AtomicBool::new(false),
            err: Mutex::new(None),
        }
    }
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }
    pub(crate) fn record(&self, e: KernelError) {
        let mut g = self.err.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
        self.set.store(true, Ordering::Relaxed);
    }
    pub(crate) fn into_result(self) -> Result<(), KernelError> {
        match self.err.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A kernel on one chunk: `out[i] = f(args[0][i], ..)`. `Err` stops the whole op.
pub(crate) type Kernel<'a, M, R, const N: usize> =
    &'a (dyn Fn(&[Arg<M>; N], &mut [R]) -> Result<(), KernelError> + Sync);

/// How a row of one input reaches the kernel.
#[derive(Clone, Copy, PartialEq)]
enum Feed {
    Direct,
    Staged,
    Splat,
    Const,
}

/// Runs `kernel` over every element of `dst`.
///
/// `direct_in`: inputs whose dtype is `M` may be read in place (false when the compute dtype is
/// f16/bf16: those are read through a rounding loader even if `M` is f32).
/// `direct_out`: results may be written in place when `dst.dtype` is `R` (false when results
/// must be rounded to an f16/bf16 compute dtype on the way).
pub(crate) fn drive<M: Element, R: Element, const N: usize>(
    name: &str,
    dst: &View,
    inputs: [Input<M>; N],
    direct_in: bool,
    store: StoreFn<R>,
    direct_out: bool,
    kernel: Kernel<M, R, N>,
) -> Result<(), KernelError> {
    assert!(N <= 3);
    let n = dst.validate(name)?;
    for inp in &inputs {
        if let Input::View(v, _) = inp {
            v.validate(name)?;
            if v.sizes != dst.sizes {
                return Err(err(
                    name,
                    format!(
                        "input size {:?} does not match output size {:?}",
                        v.sizes, dst.sizes
                    ),
                ));
            }
        }
    }
    if n == 0 {
        return Ok(());
    }
    dst.check_writable(name)?;
    if let Some(r) = contiguous(dst, &inputs, direct_in, direct_out, kernel) {
        return r;
    }

    let zeros = vec![0i64; dst.sizes.len()];
    let strides: [&[i64]; 3] = std::array::from_fn(|k| match inputs.get(k) {
        Some(Input::View(v, _)) => v.strides.as_slice(),
        _ => zeros.as_slice(),
    });
    let layout = Layout::<4>::new(
        &dst.sizes,
        [&dst.strides, strides[0], strides[1], strides[2]],
    );
    let inner = layout.inner_strides();
    let ds = inner[0];
    let out_direct = direct_out && dst.dtype == R::DTYPE && ds == 1;
    let dptr = Ptr::new(dst.ptr);
    let feeds: [Feed; N] = std::array::from_fn(|k| match &inputs[k] {
        Input::Const(_) => Feed::Const,
        Input::View(..) if inner[k + 1] == 0 => Feed::Splat,
        Input::View(v, _) if direct_in && v.dtype == M::DTYPE && inner[k + 1] == 1 => Feed::Direct,
        Input::View(..) => Feed::Staged,
    });
    let ptrs: [Ptr; N] = std::array::from_fn(|k| match &inputs[k] {
        Input::View(v, _) => Ptr::new(v.ptr),
        Input::Const(_) => Ptr::new(std::ptr::null_mut()),
    });
    let loads: [Option<LoadFn<M>>; N] = std::array::from_fn(|k| match &inputs[k] {
        Input::View(_, l) => Some(*l),
        Input::Const(_) => None,
    });
    let consts: [M; N] = std::array::from_fn(|k| match &inputs[k] {
        Input::Const(c) => *c,
        Input::View(..) => M::from_bool(false),
    });
    let (msize, rsize) = (std::mem::size_of::<M>(), std::mem::size_of::<R>());
    let failed = FirstError::new();

    par_ranges(n, GRAIN, |range| {
        if failed.is_set() {
            return;
        }
        let cap = CHUNK.min(range.len());
        let mut bufs: [Vec<M>; N] = std::array::from_fn(|_| Vec::new());
        let mut obuf: Vec<R> = Vec::new();
        layout.for_each_row(range, |_, offs, len| {
            if failed.is_set() {
                return;
            }
            // Decide per row how each input is fed; an in-place input is staged.
            let mut feed = feeds;
            let out_start = unsafe { dptr.byte_at(offs[0], rsize) } as usize;
            for k in 0..N {
                if feed[k] == Feed::Direct && out_direct {
                    let s = unsafe { ptrs[k].byte_at(offs[k + 1], msize) } as usize;
                    if s < out_start + len * rsize && out_start < s + len * msize {
                        feed[k] = Feed::Staged;
                    }
                }
                if feed[k] == Feed::Staged && bufs[k].is_empty() {
                    bufs[k] = vec![M::from_bool(false); cap];
                }
            }
            if !out_direct && obuf.is_empty() {
                obuf = vec![R::from_bool(false); cap];
            }
            let whole = out_direct && !feed.contains(&Feed::Staged);
            let mut done = 0usize;
            while done < len {
                let m = if whole {
                    len - done
                } else {
                    cap.min(len - done)
                };
                unsafe {
                    for k in 0..N {
                        if feed[k] == Feed::Staged {
                            let p = ptrs[k].byte_at(
                                offs[k + 1] + done as isize * inner[k + 1],
                                msize_of_input(&inputs[k]),
                            );
                            (loads[k].unwrap())(p, inner[k + 1], &mut bufs[k][..m]);
                        }
                    }
                    let args: [Arg<M>; N] = std::array::from_fn(|k| match feed[k] {
                        Feed::Const => Arg::Splat(consts[k]),
                        Feed::Splat => {
                            let mut v = [M::from_bool(false)];
                            let p = ptrs[k].byte_at(offs[k + 1], msize_of_input(&inputs[k]));
                            (loads[k].unwrap())(p, 0, &mut v);
                            Arg::Splat(v[0])
                        }
                        Feed::Direct => Arg::Slice(std::slice::from_raw_parts(
                            ptrs[k].at::<M>(offs[k + 1] + done as isize),
                            m,
                        )),
                        Feed::Staged => Arg::Slice(&bufs[k][..m]),
                    });
                    let optr = dptr.byte_at(offs[0] + done as isize * ds, dst.dtype.size());
                    let res = if out_direct {
                        kernel(&args, std::slice::from_raw_parts_mut(optr as *mut R, m))
                    } else {
                        let r = kernel(&args, &mut obuf[..m]);
                        if r.is_ok() {
                            store(&obuf[..m], optr, ds);
                        }
                        r
                    };
                    if let Err(e) = res {
                        failed.record(e);
                        return;
                    }
                }
                done += m;
            }
        });
    });
    failed.into_result()
}

/// Elements an in-place call of the shortcut copies aside at a time: 4 KiB of f32, so the
/// copy and the output block stay in L1 for the kernel's pass (relu_ of 1M f32: 0.068 ms;
/// 0.13 with blocks of 8192, where the two no longer fit; 0.094 through the staged path).
const ALIAS_BLOCK: usize = 1024;

/// The driver's shortcut when every view (validated, non-empty) is contiguous, already of the
/// kernel's types, and either apart from the output or the output itself (an in-place op):
/// the kernel runs on the whole range (a chunk per thread), with no row walk or staging
/// decisions, which were most of a small op's kernel time. An input that is the output is
/// copied aside a block at a time, since the kernel may not read a slice it writes. None
/// when that does not apply.
fn contiguous<M: Element, R: Element, const N: usize>(
    dst: &View,
    inputs: &[Input<M>; N],
    direct_in: bool,
    direct_out: bool,
    kernel: Kernel<M, R, N>,
) -> Option<Result<(), KernelError>> {
    let n = dst.numel();
    let fits = |inp: &Input<M>| match inp {
        Input::Const(_) => true,
        Input::View(v, _) => direct_in && v.dtype == M::DTYPE && v.is_contiguous() && (v.disjoint(dst) || v.same_elements(dst)),
    };
    if !(direct_out && dst.dtype == R::DTYPE && dst.is_contiguous() && inputs.iter().all(fits)) {
        return None;
    }
    let aliased: [bool; N] = std::array::from_fn(|k| matches!(&inputs[k], Input::View(v, _) if v.same_elements(dst)));
    let dptr = Ptr::new(dst.ptr);
    let ptrs: [Ptr; N] = std::array::from_fn(|k| match &inputs[k] {
        Input::View(v, _) => Ptr::new(v.ptr),
        Input::Const(_) => Ptr::new(std::ptr::null_mut()),
    });
    let failed = FirstError::new();
    par_ranges(n, GRAIN, |r| {
        let mut copy = if aliased.contains(&true) { Some(Scratch::take::<M>(ALIAS_BLOCK.min(r.len()))) } else { None };
        let block = if copy.is_some() { ALIAS_BLOCK } else { r.len() };
        let mut start = r.start;
        while start < r.end {
            let len = block.min(r.end - start);
            // SAFETY: every view is contiguous with n elements of its type; inputs are apart
            // from the output, or are the output and read only through their copy; the
            // ranges of the threads are disjoint.
            let out = unsafe { std::slice::from_raw_parts_mut(dptr.at::<R>(start as isize), len) };
            let copied: Option<&[M]> = copy.as_mut().map(|c| unsafe {
                let c = std::slice::from_raw_parts_mut(c.ptr::<M>(), len);
                c.copy_from_slice(std::slice::from_raw_parts(dptr.at::<M>(start as isize), len));
                &*c
            });
            let args: [Arg<M>; N] = std::array::from_fn(|k| match &inputs[k] {
                Input::Const(c) => Arg::Splat(*c),
                Input::View(..) if aliased[k] => Arg::Slice(copied.expect("copied when aliased")),
                Input::View(..) => Arg::Slice(unsafe { std::slice::from_raw_parts(ptrs[k].at::<M>(start as isize), len) }),
            });
            if let Err(e) = kernel(&args, out) {
                failed.record(e);
                return;
            }
            start += len;
        }
    });
    Some(failed.into_result())
}

/// Element size of an input's dtype (its own dtype, not `M`'s).
#[inline(always)]
fn msize_of_input<M>(inp: &Input<M>) -> usize {
    match inp {
        Input::View(v, _) => v.dtype.size(),
        Input::Const(_) => 0,
    }
}

/// `out[i] = body(a[i])`, written `map1!(a, out, |x: T| body)`, with the splat case computed
/// once. A macro rather than a function taking a closure: the body is pasted into the loop, so
/// the compiler always sees (and vectorizes) it, however large it is after inlining. Inputs
/// are read through [`ToMath`].
macro_rules! map1 {
    ($a:expr, $out:expr, |$x:ident $(: $t:ty)?| $body:expr) => {{
        let out = $out;
        match $a {
            $crate::elementwise::Arg::Slice(s) => {
                let s = &s[..out.len()];
                for (o, &$x) in out.iter_mut().zip(s) {
                    let $x $(: $t)? = $crate::elementwise::ToMath::to_math($x);
                    *o = $body;
                }
            }
            $crate::elementwise::Arg::Splat(v) => {
                let $x $(: $t)? = $crate::elementwise::ToMath::to_math(*v);
                let r = $body;
                out.fill(r);
            }
        }
    }};
}
pub(crate) use map1;

/// `out[i] = body(a[i], b[i])`, written `map2!(a, b, out, |x: T, y: T| body)`: one loop per
/// combination of slices and splats, each a plain loop the compiler can vectorize.
macro_rules! map2 {
    ($a:expr, $b:expr, $out:expr, |$x:ident $(: $t:ty)?, $y:ident $(: $u:ty)?| $body:expr) => {{
        let out = $out;
        let n = out.len();
        match ($a, $b) {
            ($crate::elementwise::Arg::Slice(xs), $crate::elementwise::Arg::Slice(ys)) => {
                let (xs, ys) = (&xs[..n], &ys[..n]);
                for i in 0..n {
                    let ($x, $y) = (xs[i], ys[i]);
                    $(let $x: $t = $x;)?
                    $(let $y: $u = $y;)?
                    out[i] = $body;
                }
            }
            ($crate::elementwise::Arg::Slice(xs), $crate::elementwise::Arg::Splat(yv)) => {
                let xs = &xs[..n];
                let $y = *yv;
                $(let $y: $u = $y;)?
                for i in 0..n {
                    let $x = xs[i];
                    $(let $x: $t = $x;)?
                    out[i] = $body;
                }
            }
            ($crate::elementwise::Arg::Splat(xv), $crate::elementwise::Arg::Slice(ys)) => {
                let ys = &ys[..n];
                let $x = *xv;
                $(let $x: $t = $x;)?
                for i in 0..n {
                    let $y = ys[i];
                    $(let $y: $u = $y;)?
                    out[i] = $body;
                }
            }
            ($crate::elementwise::Arg::Splat(xv), $crate::elementwise::Arg::Splat(yv)) => {
                let ($x, $y) = (*xv, *yv);
                $(let $x: $t = $x;)?
                $(let $y: $u = $y;)?
                let r = $body;
                out.fill(r);
            }
        }
    }};
}
pub(crate) use map2;

/// Whether any element of the row is zero (integer division checks its divisor with this).
#[inline]
pub(crate) fn any_zero<M: Copy + PartialEq>(a: &Arg<M>, n: usize, zero: M) -> bool {
    match a {
        Arg::Slice(x) => x[..n].contains(&zero),
        Arg::Splat(v) => n > 0 && *v == zero,
    }
}
