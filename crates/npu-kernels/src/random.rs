//! Random-number kernels driven by Philox4x32-10.
//!
//! Element `i` of the output (its row-major index over `dst.sizes`) takes its random bits from
//! Philox block `offset / 4 + i / E` of the key `seed`, where E values come out of one block
//! (4 for 32-bit draws, 2 for 64-bit draws). Output is therefore identical however the work is
//! split across threads, and a kernel that writes n elements consumes `ceil(n / E) * 4` counter
//! values: that is the "offset increment" each kernel returns, for the caller's generator.

use crate::convert::{dispatch, dispatch_float, Element};
use crate::dtype::DType;
use crate::philox::PhiloxStream;
use crate::scalar::{c_type_name, float_max};
use crate::view::{err, par_ranges, Layout, Ptr, View};
use crate::KernelError;

/// Philox costs ~10 multiplies per 4 values; splitting pays off from a few thousand elements.
const RANDOM_GRAIN: usize = 16 * 1024;

const TWO_POW_M24: f64 = 1.0 / (1u64 << 24) as f64;
const TWO_POW_M32: f64 = 1.0 / (1u64 << 32) as f64;
const TWO_POW_M52: f64 = 1.0 / (1u64 << 52) as f64;
const TWO_POW_M53: f64 = 1.0 / (1u64 << 53) as f64;

#[inline(always)]
fn join(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}

/// How a kernel wants its uniform numbers.
#[derive(Clone, Copy, PartialEq)]
enum Interval {
    /// [0, 1)
    HalfOpen,
    /// (0, 1): for logarithms and tangents. Midpoints of the grid, so 1 - u is never 0 either.
    Open,
}

#[inline(always)]
fn unit24(x: u32, iv: Interval) -> f64 {
    let k = (x >> 8) as f64;
    match iv {
        Interval::HalfOpen => k * TWO_POW_M24,
        Interval::Open => (k + 0.5) * TWO_POW_M24,
    }
}

#[inline(always)]
fn unit53(x: u64, iv: Interval) -> f64 {
    match iv {
        Interval::HalfOpen => (x >> 11) as f64 * TWO_POW_M53,
        // 52 bits, so that k + 0.5 is exact
        Interval::Open => ((x >> 12) as f64 + 0.5) * TWO_POW_M52,
    }
}

/// Reads element `p` of a tensor input as f64.
type Reader = unsafe fn(*const u8) -> f64;

unsafe fn read_as_f64<T: Element>(p: *const u8) -> f64 {
    (*(p as *const T)).to_f64()
}

fn reader(dt: DType) -> Reader {
    dispatch!(dt, T => read_as_f64::<T> as Reader)
}

/// The core loop: element i of `dst` gets `map(draw(block(i / E))[i % E], a_i, b_i)`, where
/// `a`, `b` are the optional inputs (already broadcast to `dst.sizes`; 0.0 when absent).
/// Returns the counter values consumed.
fn generate<T: Element, X: Copy + Default, const E: usize>(
    dst: &View,
    inputs: [Option<&View>; 2],
    stream: PhiloxStream,
    draw: impl Fn([u32; 4]) -> [X; E] + Sync,
    map: impl Fn(X, f64, f64) -> T + Sync,
) -> u64 {
    let zeros = vec![0i64; dst.sizes.len()];
    let strides = |k: usize| inputs[k].map_or(zeros.as_slice(), |v| v.strides.as_slice());
    let layout = Layout::new(&dst.sizes, [&dst.strides, strides(0), strides(1)]);
    let [ds, sa, sb] = layout.inner_strides();
    let ins = inputs.map(|v| v.map(|v| (Ptr::new(v.ptr), reader(v.dtype), v.dtype.size())));
    let read = |input: Option<(Ptr, Reader, usize)>, off: isize| match input {
        Some((p, r, size)) => unsafe { r(p.byte_at(off, size)) },
        None => 0.0,
    };
    let out = Ptr::new(dst.ptr);
    let n = layout.numel();
    par_ranges(n, RANDOM_GRAIN, |range| {
        let mut cur = u64::MAX;
        let mut vals = [X::default(); E];
        layout.for_each_row(range, |first, [od, oa, ob], len| {
            let mut k = 0;
            while k < len {
                // the rest of the current block's lanes that fall in this row
                let i = first + k;
                let block = (i / E) as u64;
                if block != cur {
                    vals = draw(stream.block(block));
                    cur = block;
                }
                let lane = i % E;
                let m = (E - lane).min(len - k);
                for (l, &x) in vals[lane..lane + m].iter().enumerate() {
                    let kk = (k + l) as isize;
                    let v = match ins {
                        [None, None] => map(x, 0.0, 0.0),
                        _ => map(x, read(ins[0], oa + kk * sa), read(ins[1], ob + kk * sb)),
                    };
                    unsafe { *out.at::<T>(od + kk * ds) = v };
                }
                k += m;
            }
        })
    });
    n.div_ceil(E) as u64 * 4
}

/// `map(u, a, b)` with `u` uniform on `iv`: 24 random bits for dtypes of up to 4 bytes (4 draws
/// per block), 53 (or 52 for open) for 8-byte dtypes (2 per block).
fn with_uniform<T: Element>(
    dst: &View,
    inputs: [Option<&View>; 2],
    stream: PhiloxStream,
    iv: Interval,
    map: impl Fn(f64, f64, f64) -> T + Sync,
) -> u64 {
    if T::DTYPE.size() >= 8 {
        let draw = |b: [u32; 4]| [unit53(join(b[0], b[1]), iv), unit53(join(b[2], b[3]), iv)];
        generate::<T, f64, 2>(dst, inputs, stream, draw, map)
    } else {
        generate::<T, f64, 4>(dst, inputs, stream, |b| b.map(|x| unit24(x, iv)), map)
    }
}

/// Box-Muller: u1 in (0, 1], u2 in [0, 1) give two independent standard normals.
#[inline(always)]
fn box_muller(u1: f64, u2: f64) -> [f64; 2] {
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    [r * c, r * s]
}

/// `map(z, a, b)` with `z` standard normal. 32-bit uniforms (tails to 6.7 sigma) for dtypes up
/// to 4 bytes, 53-bit ones (8.6 sigma) for f64.
fn with_normal<T: Element>(
    dst: &View,
    inputs: [Option<&View>; 2],
    stream: PhiloxStream,
    map: impl Fn(f64, f64, f64) -> T + Sync,
) -> u64 {
    if T::DTYPE.size() >= 8 {
        let draw = |b: [u32; 4]| {
            let u1 = ((join(b[0], b[1]) >> 11) + 1) as f64 * TWO_POW_M53;
            box_muller(u1, unit53(join(b[2], b[3]), Interval::HalfOpen))
        };
        generate::<T, f64, 2>(dst, inputs, stream, draw, map)
    } else {
        let draw = |b: [u32; 4]| {
            let pair =
                |x: u32, y: u32| box_muller((x as f64 + 1.0) * TWO_POW_M32, y as f64 * TWO_POW_M32);
            let ([z0, z1], [z2, z3]) = (pair(b[0], b[1]), pair(b[2], b[3]));
            [z0, z1, z2, z3]
        };
        generate::<T, f64, 4>(dst, inputs, stream, draw, map)
    }
}

/// `map(x)` with `x` a uniformly random integer: 32-bit draws (4 per block), or 64-bit draws
/// (2 per block) when `wide`.
fn with_bits<T: Element>(
    dst: &View,
    stream: PhiloxStream,
    wide: bool,
    map: impl Fn(u64) -> T + Sync,
) -> u64 {
    let map = |x: u64, _: f64, _: f64| map(x);
    if wide {
        generate::<T, u64, 2>(
            dst,
            [None, None],
            stream,
            |b| [join(b[0], b[1]), join(b[2], b[3])],
            map,
        )
    } else {
        generate::<T, u64, 4>(dst, [None, None], stream, |b| b.map(|x| x as u64), map)
    }
}

/// Validates the output view; returns its element count.
fn output(dst: &View, op: &str) -> Result<usize, KernelError> {
    let n = dst.validate(op)?;
    if n > 0 {
        dst.check_writable(op)?;
    }
    Ok(n)
}

/// Validates a tensor input that must already be broadcast to `dst`'s sizes.
fn input(dst: &View, v: &View, op: &str, what: &str) -> Result<(), KernelError> {
    v.validate(op)?;
    if v.sizes != dst.sizes {
        return Err(err(
            op,
            format!(
                "{what} of size {:?} is not broadcast to the output size {:?}",
                v.sizes, dst.sizes
            ),
        ));
    }
    if v.dtype.is_complex() {
        return Err(err(
            op,
            format!("unsupported dtype {} for {what}", v.dtype.name()),
        ));
    }
    Ok(())
}

/// First element of `v` (in memory-walk order) for which `bad` holds.
fn find(v: &View, bad: impl Fn(f64) -> bool) -> Option<f64> {
    let layout = Layout::new(&v.sizes, [&v.strides]);
    let [stride] = layout.inner_strides();
    let (p, read, size) = (Ptr::new(v.ptr), reader(v.dtype), v.dtype.size());
    let mut found = None;
    layout.for_each_row(0..layout.numel(), |_, [off], len| {
        if found.is_none() {
            found = (0..len as isize)
                .map(|k| unsafe { read(p.byte_at(off + k * stride, size)) })
                .find(|&x| bad(x));
        }
    });
    found
}

fn unsupported(op: &str, dt: DType) -> KernelError {
    err(op, format!("unsupported dtype {}", dt.name()))
}

/// Formats like C++ streams do for the values in error messages (`nan`, `inf`, `1e-10`).
fn num(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if v == 0.0 || (1e-4..1e16).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Fills a float `dst` with values uniform in `[from, to)`.
pub fn uniform(dst: &View, from: f64, to: f64, seed: u64, offset: u64) -> Result<u64, KernelError> {
    let op = "uniform_";
    let n = output(dst, op)?;
    dispatch_float!(dst.dtype, T => {
        let max = float_max(T::DTYPE);
        let name = c_type_name(T::DTYPE);
        for (what, v) in [("from", from), ("to", to)] {
            if !(-max..=max).contains(&v) {
                return Err(KernelError(format!("{what} is out of bounds for {name}")));
            }
        }
        if from > to {
            return Err(KernelError(format!(
                "{op} expects to return a [from, to) range, but found from={} > to={}",
                num(from), num(to)
            )));
        }
        if to - from > max {
            return Err(KernelError(format!(
                "{op} expects to-from <= std::numeric_limits<{name}>::max(), but found to={} and \
                 from={} which result in to-from to exceed the limit", num(to), num(from)
            )));
        }
        if n == 0 {
            return Ok(0);
        }
        let (lo, hi) = (T::from_f64(from), T::from_f64(to).to_f64());
        let stream = PhiloxStream::new(seed, offset);
        Ok(with_uniform::<T>(dst, [None, None], stream, Interval::HalfOpen, move |u, _, _| {
            // Rounding to the dtype can land on `to`; like CUDA's kernel, map that to `from`.
            let v = T::from_f64(from + u * (to - from));
            if v.to_f64() == hi { lo } else { v }
        }))
    }, _ => Err(unsupported(op, dst.dtype)))
}

/// Fills a float `dst` with normal values N(mean, std^2) (Box-Muller).
pub fn normal(dst: &View, mean: f64, std: f64, seed: u64, offset: u64) -> Result<u64, KernelError> {
    let op = "normal_";
    let n = output(dst, op)?;
    if std.is_nan() || std < 0.0 {
        return Err(KernelError(format!(
            "normal expects std >= 0.0, but found std {}",
            num(std)
        )));
    }
    dispatch_float!(dst.dtype, T => {
        if n == 0 {
            return Ok(0);
        }
        let stream = PhiloxStream::new(seed, offset);
        Ok(with_normal::<T>(dst, [None, None], stream, move |z, _, _| T::from_f64(mean + std * z)))
    }, _ => Err(unsupported(op, dst.dtype)))
}

/// Like `normal` with per-element `mean` and `std` (broadcast to `dst.sizes`, any real dtype).
pub fn normal_tensor(
    dst: &View,
    mean: &View,
    std: &View,
    seed: u64,
    offset: u64,
) -> Result<u64, KernelError> {
    let op = "normal";
    let n = output(dst, op)?;
    input(dst, mean, op, "mean")?;
    input(dst, std, op, "std")?;
    if !dst.dtype.is_floating() {
        return Err(unsupported(op, dst.dtype));
    }
    if n == 0 {
        return Ok(0);
    }
    if find(std, |s| s.is_nan() || s < 0.0).is_some() {
        return Err(KernelError(
            "normal expects all elements of std >= 0.0".into(),
        ));
    }
    let stream = PhiloxStream::new(seed, offset);
    dispatch_float!(dst.dtype, T => Ok(with_normal::<T>(dst, [Some(mean), Some(std)], stream,
        |z, m, s| T::from_f64(m + s * z))), _ => Err(unsupported(op, dst.dtype)))
}

/// Writes 1 with probability `p`, else 0, into a `dst` of any real dtype or bool.
pub fn bernoulli_scalar(dst: &View, p: f64, seed: u64, offset: u64) -> Result<u64, KernelError> {
    let op = "bernoulli_";
    let n = output(dst, op)?;
    if !(0.0..=1.0).contains(&p) {
        return Err(KernelError(format!(
            "{op} expects p to be in [0, 1], but got p={}",
            num(p)
        )));
    }
    if dst.dtype.is_complex() {
        return Err(unsupported(op, dst.dtype));
    }
    if n == 0 {
        return Ok(0);
    }
    let stream = PhiloxStream::new(seed, offset);
    Ok(
        dispatch!(dst.dtype, T => with_uniform::<T>(dst, [None, None], stream, Interval::HalfOpen,
        move |u, _, _| T::from_bool(u < p))),
    )
}

/// Like `bernoulli_scalar` with per-element probabilities `p` (broadcast to `dst.sizes`).
pub fn bernoulli_tensor(dst: &View, p: &View, seed: u64, offset: u64) -> Result<u64, KernelError> {
    let op = "bernoulli_";
    let n = output(dst, op)?;
    input(dst, p, op, "p")?;
    if dst.dtype.is_complex() {
        return Err(unsupported(op, dst.dtype));
    }
    if n == 0 {
        return Ok(0);
    }
    if let Some(bad) = find(p, |x| !(0.0..=1.0).contains(&x)) {
        return Err(KernelError(format!(
            "bernoulli: p must be in [0, 1], got {}",
            num(bad)
        )));
    }
    let stream = PhiloxStream::new(seed, offset);
    Ok(
        dispatch!(dst.dtype, T => with_uniform::<T>(dst, [Some(p), None], stream,
        Interval::HalfOpen, |u, p, _| T::from_bool(u < p))),
    )
}

/// Uniform integers in `[from, from + range)`; `range == 0` stands for 2^64 (`random_()` on
/// int64 with from = i64::MIN and no `to`). Bool takes range 2. Like PyTorch, the draw is
/// reduced modulo `range`, from 64 random bits when `range >= 2^32`, else from 32.
pub fn random_from_to(
    dst: &View,
    from: i64,
    range: u64,
    seed: u64,
    offset: u64,
) -> Result<u64, KernelError> {
    let op = "random_";
    let n = output(dst, op)?;
    if dst.dtype.is_complex() {
        return Err(unsupported(op, dst.dtype));
    }
    if n == 0 {
        return Ok(0);
    }
    let stream = PhiloxStream::new(seed, offset);
    let wide = range == 0 || range >= 1 << 32;
    Ok(
        dispatch!(dst.dtype, T => with_bits::<T>(dst, stream, wide, move |x| {
            let r = if range == 0 { x } else { x % range };
            T::from_i64(from.wrapping_add(r as i64))
        })),
    )
}

/// `random_()` without bounds: floats uniform on the integers `[0, 2^mantissa_digits]`, integers
/// on `[0, max]`, bool on {0, 1}.
pub fn random_full(dst: &View, seed: u64, offset: u64) -> Result<u64, KernelError> {
    let op = "random_";
    let n = output(dst, op)?;
    let modulus: u64 = match dst.dtype {
        DType::F16 => (1 << 11) + 1,
        DType::BF16 => (1 << 8) + 1,
        DType::F32 => (1 << 24) + 1,
        DType::F64 => (1 << 53) + 1,
        DType::U8 => 1 << 8,
        DType::I8 => 1 << 7,
        DType::I16 => 1 << 15,
        DType::I32 => 1 << 31,
        DType::I64 => 1 << 63,
        DType::Bool => 2,
        DType::C64 | DType::C128 => return Err(unsupported(op, dst.dtype)),
    };
    if n == 0 {
        return Ok(0);
    }
    let stream = PhiloxStream::new(seed, offset);
    let wide = modulus > 1 << 32;
    Ok(dispatch!(dst.dtype, T => with_bits::<T>(dst, stream, wide,
        move |x| T::from_i64((x % modulus) as i64))))
}

/// Machine epsilon of a float dtype.
fn epsilon(dt: DType) -> f64 {
    match dt {
        DType::F16 => 1.0 / 1024.0,
        DType::BF16 => 1.0 / 128.0,
        DType::F32 => f32::EPSILON as f64,
        _ => f64::EPSILON,
    }
}

/// Exponential values with rate `lambda` (> 0): `-ln(u) / lambda`, never 0.
pub fn exponential(dst: &View, lambda: f64, seed: u64, offset: u64) -> Result<u64, KernelError> {
    let op = "exponential_";
    let n = output(dst, op)?;
    if lambda.is_nan() || lambda <= 0.0 {
        return Err(KernelError(format!(
            "{op} expects lambda > 0.0, but found lambda={}",
            num(lambda)
        )));
    }
    dispatch_float!(dst.dtype, T => {
        if n == 0 {
            return Ok(0);
        }
        // As PyTorch: logs within eps/2 of 0 are clamped to -eps/2 so that the value does not
        // round to 0 in the output dtype.
        let half_eps = epsilon(T::DTYPE) / 2.0;
        let stream = PhiloxStream::new(seed, offset);
        Ok(with_uniform::<T>(dst, [None, None], stream, Interval::Open, move |u, _, _| {
            let log = if u >= 1.0 - half_eps { -half_eps } else { u.ln() };
            T::from_f64(-log / lambda)
        }))
    }, _ => Err(unsupported(op, dst.dtype)))
}

/// Geometric values (number of Bernoulli(p) trials up to the first success, so >= 1) into any
/// real dtype.
pub fn geometric(dst: &View, p: f64, seed: u64, offset: u64) -> Result<u64, KernelError> {
    let op = "geometric_";
    let n = output(dst, op)?;
    if !(p > 0.0 && p < 1.0) {
        return Err(KernelError(format!(
            "{op} expects p to be in (0, 1), but got p={}",
            num(p)
        )));
    }
    if dst.dtype.is_complex() || dst.dtype == DType::Bool {
        return Err(unsupported(op, dst.dtype));
    }
    if n == 0 {
        return Ok(0);
    }
    let log_q = (-p).ln_1p();
    let stream = PhiloxStream::new(seed, offset);
    Ok(
        dispatch!(dst.dtype, T => with_uniform::<T>(dst, [None, None], stream, Interval::Open,
        move |u, _, _| T::from_f64((u.ln() / log_q).ceil()))),
    )
}

/// Log-normal values: `exp(N(mean, std^2))`, `std > 0`.
pub fn log_normal(
    dst: &View,
    mean: f64,
    std: f64,
    seed: u64,
    offset: u64,
) -> Result<u64, KernelError> {
    let op = "log_normal_";
    let n = output(dst, op)?;
    if std.is_nan() || std <= 0.0 {
        return Err(KernelError(format!(
            "{op} expects std > 0.0, but found std={}",
            num(std)
        )));
    }
    dispatch_float!(dst.dtype, T => {
        if n == 0 {
            return Ok(0);
        }
        let stream = PhiloxStream::new(seed, offset);
        Ok(with_normal::<T>(dst, [None, None], stream,
            move |z, _, _| T::from_f64((mean + std * z).exp())))
    }, _ => Err(unsupported(op, dst.dtype)))
}

/// Cauchy values: `median + sigma * tan(pi * (u - 1/2))`, `sigma > 0`.
pub fn cauchy(
    dst: &View,
    median: f64,
    sigma: f64,
    seed: u64,
    offset: u64,
) -> Result<u64, KernelError> {
    let op = "cauchy_";
    let n = output(dst, op)?;
    if sigma.is_nan() || sigma <= 0.0 {
        return Err(KernelError(format!(
            "{op} expects sigma > 0.0, but found sigma={}",
            num(sigma)
        )));
    }
    dispatch_float!(dst.dtype, T => {
        if n == 0 {
            return Ok(0);
        }
        let stream = PhiloxStream::new(seed, offset);
        Ok(with_uniform::<T>(dst, [None, None], stream, Interval::Open, move |u, _, _| {
            T::from_f64(median + sigma * (std::f64::consts::PI * (u - 0.5)).tan())
        }))
    }, _ => Err(unsupported(op, dst.dtype)))
}

/// A uniformly random permutation of `0..n` into the 1-d `dst` of size `n` (integer or float
/// dtype). Fisher-Yates; swap `i` takes its 64-bit draw from block `i / 2`, so this consumes
/// `ceil(n / 2) * 4` counter values.
pub fn randperm(dst: &View, n: i64, seed: u64, offset: u64) -> Result<u64, KernelError> {
    let op = "randperm";
    if n < 0 {
        return Err(err(op, format!("n must be non-negative, got {n}")));
    }
    output(dst, op)?;
    if dst.sizes != [n] {
        return Err(err(
            op,
            format!("output must be 1-d of size [{n}], got {:?}", dst.sizes),
        ));
    }
    // The largest value, n - 1, must be exact in the dtype.
    let limit: i64 = match dst.dtype {
        DType::U8 => 1 << 8,
        DType::I8 => 1 << 7,
        DType::I16 => 1 << 15,
        DType::I32 => 1 << 31,
        DType::I64 => i64::MAX,
        DType::F16 => (1 << 11) + 1,
        DType::BF16 => (1 << 8) + 1,
        DType::F32 => (1 << 24) + 1,
        DType::F64 => (1 << 53) + 1,
        DType::Bool | DType::C64 | DType::C128 => return Err(unsupported(op, dst.dtype)),
    };
    if n > limit {
        return Err(KernelError(format!(
            "n cannot be greater than {limit} for {} type.",
            dst.dtype.name()
        )));
    }
    let n = n as usize;
    if n == 0 {
        return Ok(0);
    }
    let mut perm: Vec<i64> = Vec::new();
    perm.try_reserve_exact(n)
        .map_err(|_| err(op, format!("cannot allocate {n} elements of host memory")))?;
    perm.extend(0..n as i64);
    let stream = PhiloxStream::new(seed, offset);
    let mut block = [0u32; 4];
    for i in (1..n).rev() {
        if i == n - 1 || i % 2 == 1 {
            block = stream.block((i / 2) as u64);
        }
        let x = if i % 2 == 0 {
            join(block[0], block[1])
        } else {
            join(block[2], block[3])
        };
        // Multiply-shift maps x onto 0..=i (bias below i / 2^64).
        let j = ((x as u128 * (i as u128 + 1)) >> 64) as usize;
        perm.swap(i, j);
    }
    let stride = dst.strides[0] as isize;
    let out = Ptr::new(dst.ptr);
    dispatch!(dst.dtype, T => {
        for (k, &v) in perm.iter().enumerate() {
            unsafe { *out.at::<T>(k as isize * stride) = T::from_i64(v) };
        }
    });
    Ok(n.div_ceil(2) as u64 * 4)
}
