//! Unary, binary, where and clamp kernels against a naive reference: one element at a time over
//! every multi-index, values converted with the test's own conversion rules (common::write /
//! read), math in f64 rounded once to the compute precision.

mod common;

use common::*;
use npu_kernels::{
    binary, binary_scalar, clamp_scalar, unary, where_, with_sequential, BinaryOp, DType,
    KernelError, Scalar, UnaryOp, View,
};
use proptest::prelude::*;

fn real_dtype() -> impl Strategy<Value = DType> {
    prop::sample::select(REAL.to_vec())
}

/// `v` converted to dtype `dt` (PyTorch's rules, the test's implementation).
fn conv(dt: DType, v: V) -> V {
    read(dt, &write(dt, v))
}

/// The precision float math runs in for a compute dtype: f32 for f16/bf16/f32.
fn math_dtype(compute: DType) -> DType {
    if compute == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// Rounds `x` to the math precision of `compute`.
fn m(compute: DType, x: f64) -> f64 {
    conv(math_dtype(compute), V::F(x)).real()
}

fn as_i64(v: V) -> i64 {
    match v {
        V::B(b) => b as i64,
        V::I(i) => i,
        _ => panic!("not an integer: {v:?}"),
    }
}

fn as_bool(v: V) -> bool {
    match v {
        V::B(b) => b,
        V::I(i) => i != 0,
        V::F(f) | V::C(f, _) => f != 0.0,
    }
}

fn bits(dt: DType) -> u32 {
    dt.size() as u32 * 8
}

fn signed(dt: DType) -> bool {
    dt != DType::U8
}

/// Wraps an i128 result into integer dtype `dt`.
fn wrap(dt: DType, v: i128) -> V {
    conv(dt, V::I(v as i64))
}

/// Tolerances of torch.testing.assert_close for a dtype.
fn tol(dt: DType) -> (f64, f64) {
    match dt {
        DType::F16 => (1e-3, 1e-5),
        DType::BF16 => (1.6e-2, 1e-5),
        DType::F32 => (1.3e-6, 1e-5),
        _ => (1e-7, 1e-7),
    }
}

fn close(got: f64, want: f64, (rtol, atol): (f64, f64)) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= atol + rtol * want.abs()
}

/// The error function by its Taylor series (|x| < 3) or Laplace's continued fraction for erfc:
/// a different algorithm from the crate's Chebyshev fits.
fn ref_erfc_cf(x: f64) -> f64 {
    // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))), x > 0
    let mut f = x;
    for k in (1..200).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

fn ref_erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 3.0 {
        let (mut term, mut sum) = (x, x);
        let x2 = x * x;
        for n in 1..200 {
            term *= -x2 / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        (1.0 - ref_erfc_cf(a)).copysign(x)
    }
}

fn ref_erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < 3.0 {
        1.0 - ref_erf(x)
    } else {
        ref_erfc_cf(x)
    }
}

// ----------------------------------------------------------------------------------------
// unary

/// Whether the kernel accepts the op for this compute dtype (PyTorch's rules).
fn unary_supported(op: UnaryOp, c: DType) -> bool {
    use UnaryOp::*;
    if op.is_predicate() {
        return true;
    }
    if c.is_floating() {
        return op != BitwiseNot;
    }
    if c == DType::Bool {
        return matches!(op, Sign | BitwiseNot);
    }
    matches!(
        op,
        Abs | Neg | Ceil | Floor | Round | Trunc | Sign | Relu | BitwiseNot
    )
}

/// Ops whose float result is correctly rounded (bit-exact against the reference).
fn unary_exact(op: UnaryOp) -> bool {
    use UnaryOp::*;
    op.is_predicate()
        || matches!(
            op,
            Abs | Neg
                | Ceil
                | Floor
                | Round
                | Trunc
                | Frac
                | Sign
                | Sqrt
                | Reciprocal
                | Relu
                | BitwiseNot
        )
}

fn ref_unary(op: UnaryOp, x: V, c: DType) -> V {
    use UnaryOp::*;
    if c.is_floating() {
        let x = x.real();
        let r = match op {
            IsNan => return V::B(x.is_nan()),
            IsInf => return V::B(x.is_infinite()),
            IsPosInf => return V::B(x == f64::INFINITY),
            IsNegInf => return V::B(x == f64::NEG_INFINITY),
            IsFinite => return V::B(x.is_finite()),
            LogicalNot => return V::B(x == 0.0),
            Signbit => return V::B(x.is_sign_negative()),
            Abs => x.abs(),
            Neg => -x,
            Ceil => x.ceil(),
            Floor => x.floor(),
            Round => x.round_ties_even(),
            Trunc => x.trunc(),
            Frac => x - x.trunc(),
            Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Sqrt => x.sqrt(),
            Rsqrt => 1.0 / x.sqrt(),
            Reciprocal => 1.0 / x,
            Exp => x.exp(),
            Exp2 => x.exp2(),
            Expm1 => x.exp_m1(),
            Log => x.ln(),
            Log2 => x.log2(),
            Log10 => x.log10(),
            Log1p => x.ln_1p(),
            Sin => x.sin(),
            Cos => x.cos(),
            Tan => x.tan(),
            Asin => x.asin(),
            Acos => x.acos(),
            Atan => x.atan(),
            Sinh => x.sinh(),
            Cosh => x.cosh(),
            Tanh => x.tanh(),
            // by definition, with the large-|x| forms that avoid overflow
            Asinh => {
                let a = x.abs();
                let r = if a > 1e150 {
                    a.ln() + std::f64::consts::LN_2
                } else if a < 1e-8 {
                    a
                } else {
                    (a + (a * a + 1.0).sqrt()).ln()
                };
                r.copysign(x)
            }
            Acosh => {
                if x < 1.0 {
                    f64::NAN
                } else if x > 1e150 {
                    x.ln() + std::f64::consts::LN_2
                } else {
                    (x + (x * x - 1.0).sqrt()).ln()
                }
            }
            Atanh => {
                if x.abs() < 1e-8 {
                    x
                } else {
                    0.5 * ((1.0 + x) / (1.0 - x)).ln()
                }
            }
            Erf => ref_erf(x),
            Erfc => ref_erfc(x),
            Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Silu => x / (1.0 + (-x).exp()),
            GeluErf => x * 0.5 * (1.0 + ref_erf(x / 2f64.sqrt())),
            GeluTanh => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            }
            BitwiseNot => unreachable!(),
        };
        // math in f32 (or f64), one rounding to the compute dtype
        return conv(c, V::F(m(c, r)));
    }
    if c == DType::Bool {
        let b = as_bool(x);
        return V::B(match op {
            IsNan | IsInf | IsPosInf | IsNegInf | Signbit => false,
            IsFinite => true,
            LogicalNot | BitwiseNot => !b,
            Sign => b,
            _ => unreachable!(),
        });
    }
    let i = as_i64(x) as i128;
    match op {
        IsNan | IsInf | IsPosInf | IsNegInf => V::B(false),
        IsFinite => V::B(true),
        LogicalNot => V::B(i == 0),
        Signbit => V::B(i < 0),
        Abs => wrap(c, i.abs()),
        Neg => wrap(c, -i),
        Ceil | Floor | Round | Trunc => wrap(c, i),
        Sign => wrap(c, i.signum()),
        Relu => wrap(c, i.max(0)),
        BitwiseNot => wrap(c, !i),
        _ => unreachable!(),
    }
}

/// Buffers for one view: the buffer, its strides and the offset of element 0.
struct Operand {
    buf: Buf,
    strides: Vec<i64>,
    offset: i64,
}

impl Operand {
    fn new(dt: DType, sizes: &[i64], spec: &Spec, seed: u64) -> Operand {
        let (strides, len) = spec.layout(sizes);
        let mut buf = Buf::new(dt, len);
        randomize(&mut buf, seed);
        Operand {
            buf,
            strides,
            offset: spec.offset,
        }
    }
    fn view(&mut self, sizes: &[i64]) -> View {
        let (st, off) = (self.strides.clone(), self.offset);
        self.buf.view(sizes, &st, off)
    }
    fn at(&self, idx: &[i64]) -> V {
        read(
            self.buf.dtype,
            self.buf.elem(self.offset + offset_of(idx, &self.strides)),
        )
    }
    fn pos(&self, idx: &[i64]) -> i64 {
        self.offset + offset_of(idx, &self.strides)
    }
}

/// Checks `got` against `want` element by element (the whole buffer: elements outside the
/// view must be untouched); `approx` compares values with the tolerance of `tol_dt`.
fn compare(got: &Buf, want: &Buf, approx: Option<DType>, what: &str) {
    for i in 0..got.len as i64 {
        let (g, w) = (got.elem(i), want.elem(i));
        let ok = same(got.dtype, g, w)
            || approx.is_some_and(|t| {
                close(read(got.dtype, g).real(), read(got.dtype, w).real(), tol(t))
            });
        assert!(
            ok,
            "{what}: element {i}: got {:?}, want {:?}",
            read(got.dtype, g),
            read(got.dtype, w)
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn check_unary(
    op: UnaryOp,
    sizes: &[i64],
    dt: DType,
    ds: &Spec,
    st: DType,
    ss: &Spec,
    c: DType,
    seed: u64,
) {
    let mut src = Operand::new(st, sizes, ss, seed);
    let mut dst = Operand::new(dt, sizes, ds, seed ^ 0x5555);
    let mut want = Buf::new(dt, dst.buf.len);
    want.bytes_mut().copy_from_slice(dst.buf.bytes());
    let what = format!(
        "{op:?} {} <- {} compute {} sizes {sizes:?} dst {ds:?} src {ss:?}",
        dt.name(),
        st.name(),
        c.name()
    );
    let r = unary(op, &dst.view(sizes), &src.view(sizes), c);
    if !unary_supported(op, c) {
        assert!(r.is_err(), "{what}: expected an error");
        return;
    }
    r.unwrap_or_else(|e| panic!("{what}: {e}"));
    for idx in indices(sizes) {
        let x = conv(c, src.at(&idx));
        want.set(dst.pos(&idx), &write(dt, ref_unary(op, x, c)));
    }
    let approx = (!unary_exact(op) && c.is_floating()).then_some(c);
    compare(&dst.buf, &want, approx, &what);
}

fn unary_op() -> impl Strategy<Value = UnaryOp> {
    prop::sample::select(UnaryOp::ALL.to_vec())
}

/// Sizes plus a destination layout (no broadcast) and `k` input layouts (broadcast allowed).
fn layouts(k: usize) -> impl Strategy<Value = (Vec<i64>, Spec, Vec<Spec>)> {
    shape().prop_flat_map(move |sizes| {
        let r = sizes.len();
        (
            Just(sizes),
            spec(r, false),
            prop::collection::vec(spec(r, true), k),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn unary_matches_reference(
        op in unary_op(),
        (sizes, ds, ins) in layouts(1),
        dt in real_dtype(),
        st in real_dtype(),
        c in real_dtype(),
        seed in any::<u64>(),
    ) {
        // Approximate results are compared in the compute dtype (an int destination would
        // turn a last-bit difference into a different integer).
        let dt = if unary_exact(op) || !c.is_floating() { dt } else { c };
        check_unary(op, &sizes, dt, &ds, st, &ins[0], c, seed);
    }
}

#[test]
fn unary_every_op_and_compute_dtype() {
    // transposed + sliced source, sliced destination, 3x4x5
    let sizes = [3i64, 4, 5];
    let ds = Spec {
        steps: vec![1, 2, 1],
        offset: 1,
        ..Spec::contiguous(3)
    };
    let ss = Spec {
        perm: vec![2, 0, 1],
        steps: vec![1, 1, 2],
        offset: 2,
        ..Spec::contiguous(3)
    };
    for op in UnaryOp::ALL {
        for c in REAL {
            let dt = if unary_exact(op) || !c.is_floating() {
                DType::F64
            } else {
                c
            };
            check_unary(op, &sizes, dt, &ds, c, &ss, c, op as u64 * 31 + c as u64);
            check_unary(
                op,
                &sizes,
                dt,
                &Spec::contiguous(3),
                c,
                &Spec::contiguous(3),
                c,
                op as u64 * 37 + c as u64,
            );
        }
    }
}

// ----------------------------------------------------------------------------------------
// binary

fn binary_supported(op: BinaryOp, c: DType) -> bool {
    use BinaryOp::*;
    if op.is_predicate() {
        return true;
    }
    if c.is_floating() {
        return !matches!(op, BitAnd | BitOr | BitXor | Shl | Shr);
    }
    if c == DType::Bool {
        return matches!(
            op,
            Add | Mul | Maximum | Minimum | Fmax | Fmin | BitAnd | BitOr | BitXor
        );
    }
    !matches!(op, Atan2 | Hypot | Copysign | Xlogy)
}

/// Ops whose float results the reference reproduces bit for bit.
fn binary_exact(op: BinaryOp, alpha: i64) -> bool {
    use BinaryOp::*;
    match op {
        Add | Sub => alpha == 1,
        Pow | Atan2 | Hypot | Xlogy => false,
        _ => true,
    }
}

/// Python's float floor division, with every step rounded to the math precision.
fn ref_div_floor(c: DType, a: f64, b: f64) -> f64 {
    if b == 0.0 {
        return m(c, a / b);
    }
    let md = a % b; // exact
    let mut d = m(c, m(c, a - md) / b);
    if md != 0.0 && ((b < 0.0) != (md < 0.0)) {
        d = m(c, d - 1.0);
    }
    if d == 0.0 {
        return 0f64.copysign(a / b);
    }
    let f = d.floor();
    if m(c, d - f) > 0.5 {
        m(c, f + 1.0)
    } else {
        f
    }
}

#[derive(Debug)]
enum Out {
    Val(V),
    ZeroDiv,
}

fn ref_binary(op: BinaryOp, x: V, y: V, alpha: V, c: DType, scalar_pow: bool) -> Out {
    use BinaryOp::*;
    if c.is_floating() {
        let (a, b, al) = (x.real(), y.real(), alpha.real());
        let mm = |v: f64| m(c, v);
        let pred = |p: bool| Out::Val(V::B(p));
        let r = match op {
            Eq => return pred(a == b),
            Ne => return pred(a != b),
            Lt => return pred(a < b),
            Le => return pred(a <= b),
            Gt => return pred(a > b),
            Ge => return pred(a >= b),
            LogicalAnd => return pred(a != 0.0 && b != 0.0),
            LogicalOr => return pred(a != 0.0 || b != 0.0),
            LogicalXor => return pred((a != 0.0) != (b != 0.0)),
            Add => a + al * b,
            Sub => a - al * b,
            Mul => a * b,
            Div => a / b,
            DivTrunc => mm(a / b).trunc(),
            DivFloor => ref_div_floor(c, a, b),
            Remainder => {
                let md = a % b;
                if md != 0.0 && ((b < 0.0) != (md < 0.0)) {
                    md + b
                } else {
                    md
                }
            }
            Fmod => a % b,
            Pow if scalar_pow && b == 0.5 => a.sqrt(),
            Pow if scalar_pow && b == -0.5 => 1.0 / a.sqrt(),
            Pow if scalar_pow && b == 2.0 => a * a,
            Pow if scalar_pow && b == 3.0 => mm(a * a) * a,
            Pow if scalar_pow && b == -1.0 => 1.0 / a,
            Pow if scalar_pow && b == -2.0 => 1.0 / mm(a * a),
            Pow => a.powf(b),
            Atan2 => a.atan2(b),
            Hypot => a.hypot(b),
            Copysign => a.copysign(b),
            Xlogy => {
                if b.is_nan() {
                    f64::NAN
                } else if a == 0.0 {
                    0.0
                } else {
                    a * b.ln()
                }
            }
            Maximum => {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else if a > b {
                    a
                } else {
                    b
                }
            }
            Minimum => {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else if a < b {
                    a
                } else {
                    b
                }
            }
            Fmax => {
                if a.is_nan() || (!b.is_nan() && b > a) {
                    b
                } else {
                    a
                }
            }
            Fmin => {
                if a.is_nan() || (!b.is_nan() && b < a) {
                    b
                } else {
                    a
                }
            }
            BitAnd | BitOr | BitXor | Shl | Shr => unreachable!(),
        };
        return Out::Val(conv(c, V::F(mm(r))));
    }
    if c == DType::Bool {
        let (a, b, al) = (as_bool(x), as_bool(y), as_bool(alpha));
        return Out::Val(V::B(match op {
            Eq => a == b,
            Ne => a != b,
            Lt => !a & b,
            Le => !a | b,
            Gt => a & !b,
            Ge => a | !b,
            LogicalAnd | Mul | Minimum | Fmin | BitAnd => a & b,
            LogicalOr | Maximum | Fmax | BitOr => a | b,
            LogicalXor | BitXor => a ^ b,
            Add => a | (al & b),
            _ => unreachable!(),
        }));
    }
    let (a, b, al) = (as_i64(x) as i128, as_i64(y) as i128, as_i64(alpha) as i128);
    let w = |v: i128| Out::Val(wrap(c, v));
    let pred = |p: bool| Out::Val(V::B(p));
    let nbits = bits(c);
    if matches!(op, Div | DivTrunc | DivFloor | Remainder | Fmod) && b == 0 {
        return Out::ZeroDiv;
    }
    match op {
        Eq => pred(a == b),
        Ne => pred(a != b),
        Lt => pred(a < b),
        Le => pred(a <= b),
        Gt => pred(a > b),
        Ge => pred(a >= b),
        LogicalAnd => pred(a != 0 && b != 0),
        LogicalOr => pred(a != 0 || b != 0),
        LogicalXor => pred((a != 0) != (b != 0)),
        Add => w(a + al * b),
        Sub => w(a - al * b),
        Mul => w(a * b),
        Div | DivTrunc => w(a / b),
        DivFloor => w(a.div_euclid(b) - if b < 0 && a.rem_euclid(b) != 0 { 1 } else { 0 }),
        Remainder => {
            let r = a % b;
            w(if r != 0 && ((r < 0) != (b < 0)) {
                r + b
            } else {
                r
            })
        }
        Fmod => w(a % b),
        Pow => {
            if b < 0 {
                w(if a == 1 {
                    1
                } else if a == -1 {
                    if b % 2 != 0 {
                        -1
                    } else {
                        1
                    }
                } else {
                    0
                })
            } else {
                // square and multiply modulo 2^bits
                let mask = if nbits == 64 {
                    u64::MAX as u128
                } else {
                    (1u128 << nbits) - 1
                };
                let (mut base, mut e, mut r) = (a as u128 & mask, b, 1u128);
                while e > 0 {
                    if e & 1 == 1 {
                        r = r.wrapping_mul(base) & mask;
                    }
                    base = base.wrapping_mul(base) & mask;
                    e >>= 1;
                }
                w(r as i128)
            }
        }
        Maximum | Fmax => w(a.max(b)),
        Minimum | Fmin => w(a.min(b)),
        BitAnd => w(a & b),
        BitOr => w(a | b),
        BitXor => w(a ^ b),
        Shl => {
            if b < 0 || b >= nbits as i128 {
                w(0)
            } else {
                w(a << b)
            }
        }
        Shr => {
            let max = nbits as i128 - signed(c) as i128;
            if b < 0 || b >= max {
                w(if a < 0 { -1 } else { 0 })
            } else {
                w(a >> b)
            }
        }
        Atan2 | Hypot | Copysign | Xlogy => unreachable!(),
    }
}

/// For an unsigned compute dtype a negative shift amount reads as a large one; the reference
/// sees the value converted to the compute dtype, so nothing to do. For signed ones the
/// reference above checks `b < 0`.
#[allow(clippy::too_many_arguments)]
fn check_binary(
    op: BinaryOp,
    sizes: &[i64],
    dt: DType,
    ds: &Spec,
    at: DType,
    as_: &Spec,
    bt: DType,
    bs: &Spec,
    scalar: Option<Scalar>,
    alpha: i64,
    c: DType,
    seed: u64,
) {
    let mut a = Operand::new(at, sizes, as_, seed);
    let mut b = Operand::new(bt, sizes, bs, seed ^ 0xabc);
    let mut dst = Operand::new(dt, sizes, ds, seed ^ 0x5555);
    let mut want = Buf::new(dt, dst.buf.len);
    want.bytes_mut().copy_from_slice(dst.buf.bytes());
    let what = format!(
        "{op:?} {} <- {}, {} (scalar {scalar:?}) alpha {alpha} compute {} sizes {sizes:?} dst {ds:?} a {as_:?} b {bs:?}",
        dt.name(),
        at.name(),
        bt.name(),
        c.name()
    );
    let al = if c == DType::Bool {
        Scalar::Bool(alpha != 0)
    } else {
        Scalar::Int(alpha)
    };
    let r = match scalar {
        None => binary(op, &dst.view(sizes), &a.view(sizes), &b.view(sizes), al, c),
        Some(s) => binary_scalar(op, &dst.view(sizes), &a.view(sizes), s, al, c),
    };
    let scalar_v = scalar.map(|s| match s {
        Scalar::Bool(v) => V::B(v),
        Scalar::Int(v) => V::I(v),
        Scalar::Float(v) => V::F(v),
        Scalar::Complex(..) => unreachable!(),
    });
    if !binary_supported(op, c) {
        assert!(r.is_err(), "{what}: expected an error");
        return;
    }
    if let (BinaryOp::Pow, Some(sv)) = (op, scalar_v) {
        // the exponent as an integer (floats truncate); negative is an error
        let e = match sv {
            V::B(_) => 0,
            V::I(e) => e,
            V::F(f) => {
                if f <= -1.0 {
                    -1
                } else {
                    0
                }
            }
            V::C(..) => 0,
        };
        if !c.is_floating() && c != DType::Bool && e < 0 {
            let e = r.expect_err(&what);
            assert_eq!(e.0, "Integers to negative integer powers are not allowed.");
            return;
        }
    }
    let opmath = matches!(
        op,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::DivTrunc | BinaryOp::DivFloor
    );
    let mut zero_div = false;
    for idx in indices(sizes) {
        let x = conv(c, a.at(&idx));
        let y = match scalar_v {
            // the scalar of mul/div stays in f32 with f16/bf16 compute
            Some(s) if opmath && c.is_floating() => conv(math_dtype(c), s),
            Some(s) => conv(c, s),
            None => conv(c, b.at(&idx)),
        };
        match ref_binary(op, x, y, V::I(alpha), c, scalar.is_some()) {
            Out::Val(v) => want.set(dst.pos(&idx), &write(dt, v)),
            Out::ZeroDiv => zero_div = true,
        }
    }
    if zero_div {
        let e: KernelError = r.expect_err(&what);
        assert_eq!(e.0, "ZeroDivisionError", "{what}");
        return;
    }
    r.unwrap_or_else(|e| panic!("{what}: {e}"));
    let approx = (!binary_exact(op, alpha) && c.is_floating()).then_some(c);
    compare(&dst.buf, &want, approx, &what);
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    prop::sample::select(BinaryOp::ALL.to_vec())
}

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        any::<bool>().prop_map(Scalar::Bool),
        (-10i64..10).prop_map(Scalar::Int),
        any::<i64>().prop_map(Scalar::Int),
        prop::sample::select(vec![
            0.5,
            -0.5,
            2.0,
            3.0,
            -1.0,
            -2.0,
            0.0,
            -0.0,
            1.5,
            -2.75,
            1e10,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1
        ])
        .prop_map(Scalar::Float),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8000, ..ProptestConfig::default() })]

    #[test]
    fn binary_matches_reference(
        op in binary_op(),
        (sizes, ds, ins) in layouts(2),
        dt in real_dtype(),
        at in real_dtype(),
        bt in real_dtype(),
        c in real_dtype(),
        use_scalar in prop::bool::weighted(0.25),
        s in scalar(),
        alpha in prop_oneof![3 => Just(1i64), 1 => Just(3i64)],
        seed in any::<u64>(),
    ) {
        let exact = binary_exact(op, alpha) || !c.is_floating();
        let dt = if exact { dt } else { c };
        let scalar = use_scalar.then_some(s);
        check_binary(op, &sizes, dt, &ds, at, &ins[0], bt, &ins[1], scalar, alpha, c, seed);
    }
}

#[test]
fn binary_every_op_and_compute_dtype() {
    let sizes = [3i64, 4, 5];
    let ds = Spec {
        steps: vec![1, 2, 1],
        offset: 1,
        ..Spec::contiguous(3)
    };
    let a_spec = Spec {
        perm: vec![2, 0, 1],
        offset: 2,
        ..Spec::contiguous(3)
    };
    let b_spec = Spec {
        bcast: vec![false, true, false],
        steps: vec![1, 1, 3],
        ..Spec::contiguous(3)
    };
    let c3 = Spec::contiguous(3);
    for op in BinaryOp::ALL {
        for c in REAL {
            let dt = if binary_exact(op, 1) || !c.is_floating() {
                DType::F64
            } else {
                c
            };
            let seed = op as u64 * 131 + c as u64;
            check_binary(
                op, &sizes, dt, &ds, c, &a_spec, c, &b_spec, None, 1, c, seed,
            );
            check_binary(op, &sizes, dt, &c3, c, &c3, c, &c3, None, 1, c, seed + 7);
            // a small positive divisor so integer division runs to completion
            let s = Scalar::Int(3);
            check_binary(op, &sizes, dt, &c3, c, &c3, c, &c3, Some(s), 1, c, seed + 9);
            check_binary(
                op,
                &sizes,
                dt,
                &c3,
                c,
                &a_spec,
                c,
                &c3,
                Some(Scalar::Float(-0.5)),
                1,
                c,
                seed + 11,
            );
        }
    }
}

/// In-place (`a.mul_(b)`, `a.mul_(a)`, `a.neg_()`: dst is a), small, and large enough for
/// several threads and blocks of the contiguous shortcut's copy (not a multiple of either).
#[test]
fn in_place() {
    for (c, n) in [(DType::F32, 5000), (DType::I64, 5000), (DType::F16, 5000), (DType::F32, 200_003), (DType::I64, 140_001)] {
        let (mut ab, av) = Buf::contiguous(c, &[n]);
        let (mut bb, bv) = Buf::contiguous(c, &[n]);
        randomize(&mut ab, 1);
        randomize(&mut bb, 2);
        let xa: Vec<V> = (0..n).map(|i| read(c, ab.elem(i))).collect();
        let xb: Vec<V> = (0..n).map(|i| read(c, bb.elem(i))).collect();
        binary(BinaryOp::Mul, &av, &av, &bv, Scalar::Int(1), c).unwrap();
        let mut want = Buf::new(c, n as usize);
        for i in 0..n as usize {
            let r = ref_binary(BinaryOp::Mul, xa[i], xb[i], V::I(1), c, false);
            if let Out::Val(v) = r {
                want.set(i as i64, &write(c, v));
            }
        }
        compare(&ab, &want, None, &format!("in-place mul {c:?}"));
        // unary in place
        unary(UnaryOp::Neg, &av, &av, c).unwrap();
        for i in 0..n as usize {
            let v = read(c, want.elem(i as i64));
            want.set(i as i64, &write(c, ref_unary(UnaryOp::Neg, v, c)));
        }
        compare(&ab, &want, None, &format!("in-place neg {c:?}"));
        // both operands are the output
        binary(BinaryOp::Mul, &av, &av, &av, Scalar::Int(1), c).unwrap();
        for i in 0..n as usize {
            let v = read(c, want.elem(i as i64));
            if let Out::Val(r) = ref_binary(BinaryOp::Mul, v, v, V::I(1), c, false) {
                want.set(i as i64, &write(c, r));
            }
        }
        compare(&ab, &want, None, &format!("in-place square {c:?}"));
        let _ = ab.bytes_mut();
    }
}

/// bf16 add/sub/mul/div with every operand contiguous bf16 of one shape (converted in
/// registers instead of staged): out of place and in place, alpha 1 and not, over enough
/// elements for several threads; random bit patterns include NaNs and infinities.
#[test]
fn bf16_contiguous_arith() {
    let c = DType::BF16;
    let n = 70_000;
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
        for alpha in [1i64, -1] {
            let (mut ab, av) = Buf::contiguous(c, &[n]);
            let (mut bb, bv) = Buf::contiguous(c, &[n]);
            let (ob, ov) = Buf::contiguous(c, &[n]);
            randomize(&mut ab, op as u64 + 10 * alpha.unsigned_abs());
            randomize(&mut bb, op as u64 + 100);
            let mut want = Buf::new(c, n as usize);
            for i in 0..n {
                let (x, y) = (read(c, ab.elem(i)), read(c, bb.elem(i)));
                if let Out::Val(v) = ref_binary(op, x, y, V::I(alpha), c, false) {
                    want.set(i, &write(c, v));
                }
            }
            let approx = (!binary_exact(op, alpha)).then_some(c);
            binary(op, &ov, &av, &bv, Scalar::Int(alpha), c).unwrap();
            compare(&ob, &want, approx, &format!("{op:?} alpha {alpha}"));
            binary(op, &av, &av, &bv, Scalar::Int(alpha), c).unwrap();
            compare(&ab, &want, approx, &format!("{op:?}_ alpha {alpha}"));
        }
    }
}

/// Float unary ops on contiguous bf16 (widened and rounded in registers, not staged): out of
/// place and in place, bit for bit what the staged driver gives (its f32 destination holds
/// the bf16 result widened exactly), over enough elements for several threads; random bit
/// patterns include NaNs and infinities.
#[test]
fn bf16_contiguous_unary() {
    let c = DType::BF16;
    let n = 70_000;
    for op in UnaryOp::ALL {
        if op.is_predicate() || op == UnaryOp::BitwiseNot {
            continue;
        }
        let (mut ab, av) = Buf::contiguous(c, &[n]);
        randomize(&mut ab, op as u64);
        let (wb, wv) = Buf::contiguous(DType::F32, &[n]);
        unary(op, &wv, &av, c).unwrap();
        let want: Vec<u32> = (0..n).map(|i| u32::from_le_bytes(wb.elem(i).try_into().unwrap())).collect();
        let widened = |b: &Buf| -> Vec<u32> {
            (0..n).map(|i| (u16::from_le_bytes(b.elem(i).try_into().unwrap()) as u32) << 16).collect()
        };
        let (ob, ov) = Buf::contiguous(c, &[n]);
        unary(op, &ov, &av, c).unwrap();
        assert!(widened(&ob) == want, "{op:?}: out of place differs from the staged driver");
        unary(op, &av, &av, c).unwrap();
        assert!(widened(&ab) == want, "{op:?}: in place differs from the staged driver");
    }
}

// ----------------------------------------------------------------------------------------
// where, clamp

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn where_matches_reference(
        (sizes, ds, ins) in layouts(1),
        dt in real_dtype(),
        ct in real_dtype(),
        at in real_dtype(),
        bt in real_dtype(),
        seed in any::<u64>(),
    ) {
        let rank = sizes.len();
        let mut cond = Operand::new(ct, &sizes, &ins[0], seed);
        let mut a = Operand::new(at, &sizes, &Spec::contiguous(rank), seed ^ 1);
        let mut b = Operand::new(bt, &sizes, &spec_bcast_last(rank), seed ^ 2);
        let mut dst = Operand::new(dt, &sizes, &ds, seed ^ 3);
        let mut want = Buf::new(dt, dst.buf.len);
        want.bytes_mut().copy_from_slice(dst.buf.bytes());
        where_(&dst.view(&sizes), &cond.view(&sizes), &a.view(&sizes), &b.view(&sizes)).unwrap();
        for idx in indices(&sizes) {
            let v = if as_bool(cond.at(&idx)) { a.at(&idx) } else { b.at(&idx) };
            want.set(dst.pos(&idx), &write(dt, v));
        }
        compare(&dst.buf, &want, None, &format!("where {dt:?} {ct:?} {at:?} {bt:?} {sizes:?}"));
    }

    #[test]
    fn clamp_matches_reference(
        (sizes, _ds, ins) in layouts(1),
        dt in real_dtype(),
        st in real_dtype(),
        c in real_dtype(),
        lo in prop::option::of(scalar()),
        hi in prop::option::of(scalar()),
        seed in any::<u64>(),
    ) {
        let rank = sizes.len();
        let mut src = Operand::new(st, &sizes, &ins[0], seed);
        let mut dst = Operand::new(dt, &sizes, &Spec::contiguous(rank), seed ^ 3);
        let mut want = Buf::new(dt, dst.buf.len);
        want.bytes_mut().copy_from_slice(dst.buf.bytes());
        let r = clamp_scalar(&dst.view(&sizes), &src.view(&sizes), lo, hi, c);
        if lo.is_none() && hi.is_none() {
            prop_assert!(r.is_err());
            return Ok(());
        }
        r.unwrap();
        let sv = |s: Scalar| conv(c, match s {
            Scalar::Bool(v) => V::B(v),
            Scalar::Int(v) => V::I(v),
            Scalar::Float(v) => V::F(v),
            Scalar::Complex(..) => unreachable!(),
        });
        for idx in indices(&sizes) {
            let x = conv(c, src.at(&idx));
            let r = if c.is_floating() {
                let mut v = x.real();
                let (l, h) = (lo.map(|s| sv(s).real()), hi.map(|s| sv(s).real()));
                if l.is_some_and(f64::is_nan) || h.is_some_and(f64::is_nan) {
                    v = f64::NAN;
                }
                if let Some(l) = l { if l > v { v = l } }
                if let Some(h) = h { if h < v { v = h } }
                V::F(v)
            } else if c == DType::Bool {
                let mut v = as_bool(x);
                if let Some(l) = lo { v |= as_bool(sv(l)) }
                if let Some(h) = hi { v &= as_bool(sv(h)) }
                V::B(v)
            } else {
                // bounds outside a narrow integer type saturate to its range
                let bound = |s: Scalar| -> i64 {
                    let range = match c {
                        DType::U8 => Some((0.0, 255.0)),
                        DType::I8 => Some((-128.0, 127.0)),
                        DType::I16 => Some((-32768.0, 32767.0)),
                        DType::I32 => Some((i32::MIN as f64, i32::MAX as f64)),
                        _ => None,
                    };
                    match (range, s) {
                        (Some((a, b)), Scalar::Int(v)) => (v as f64).clamp(a, b) as i64,
                        (Some((a, b)), Scalar::Float(v)) if !v.is_nan() => v.clamp(a, b).trunc() as i64,
                        _ => as_i64(sv(s)),
                    }
                };
                let mut v = as_i64(x);
                if let Some(l) = lo { v = v.max(bound(l)) }
                if let Some(h) = hi { v = v.min(bound(h)) }
                V::I(v)
            };
            want.set(dst.pos(&idx), &write(dt, r));
        }
        compare(&dst.buf, &want, None, &format!("clamp {dt:?} {st:?} {c:?} {lo:?} {hi:?} {sizes:?}"));
    }
}

/// Contiguous, with the last dim broadcast (stride 0).
fn spec_bcast_last(rank: usize) -> Spec {
    let mut s = Spec::contiguous(rank);
    if rank > 0 {
        s.bcast[rank - 1] = true;
    }
    s
}

// ----------------------------------------------------------------------------------------
// large inputs: the parallel split and the chunked staging must not change results

#[test]
fn large_results_do_not_depend_on_the_split() {
    let sizes = [3i64, 70001];
    for (op, c, dt) in [
        (BinaryOp::Add, DType::F32, DType::F32),
        (BinaryOp::Mul, DType::F16, DType::F16),
        (BinaryOp::DivFloor, DType::F64, DType::F32),
        (BinaryOp::Maximum, DType::BF16, DType::F32),
        (BinaryOp::Lt, DType::I32, DType::Bool),
    ] {
        let mut a = Operand::new(c, &sizes, &Spec::contiguous(2), 11);
        let bspec = Spec {
            perm: vec![1, 0],
            ..Spec::contiguous(2)
        };
        let mut b = Operand::new(DType::F32, &sizes, &bspec, 12);
        let mut d1 = Operand::new(dt, &sizes, &Spec::contiguous(2), 13);
        let mut d2 = Operand::new(dt, &sizes, &Spec::contiguous(2), 13);
        let (av, bv) = (a.view(&sizes), b.view(&sizes));
        binary(op, &d1.view(&sizes), &av, &bv, Scalar::Int(1), c).unwrap();
        with_sequential(|| binary(op, &d2.view(&sizes), &av, &bv, Scalar::Int(1), c)).unwrap();
        compare(
            &d1.buf,
            &d2.buf,
            None,
            &format!("{op:?} parallel vs sequential"),
        );
        // spot-check against the reference
        for k in [0i64, 1, 5000, 70000] {
            for r in 0..3 {
                let idx = [r, k];
                let x = conv(c, a.at(&idx));
                let y = conv(c, b.at(&idx));
                if let Out::Val(v) = ref_binary(op, x, y, V::I(1), c, false) {
                    let w = write(dt, v);
                    let g = d1.buf.elem(d1.pos(&idx)).to_vec();
                    assert!(
                        same(dt, &g, &w),
                        "{op:?} at {idx:?}: {:?} vs {:?}",
                        read(dt, &g),
                        read(dt, &w)
                    );
                }
            }
        }
    }
}

#[test]
fn integer_division_by_zero_in_a_large_tensor() {
    let n = 200_000i64;
    let (_ab, av) = Buf::contiguous(DType::I64, &[n]);
    let (mut bb, bv) = Buf::contiguous(DType::I64, &[n]);
    for i in 0..n {
        bb.set(i, &(if i == 150_000 { 0i64 } else { 3 }).to_le_bytes());
    }
    let (_db, dv) = Buf::contiguous(DType::I64, &[n]);
    for op in [
        BinaryOp::DivFloor,
        BinaryOp::Remainder,
        BinaryOp::DivTrunc,
        BinaryOp::Fmod,
    ] {
        let e = binary(op, &dv, &av, &bv, Scalar::Int(1), DType::I64).unwrap_err();
        assert_eq!(e.0, "ZeroDivisionError");
    }
    let e = binary_scalar(
        BinaryOp::DivFloor,
        &dv,
        &av,
        Scalar::Int(0),
        Scalar::Int(1),
        DType::I32,
    );
    assert!(e.is_err());
}

// ----------------------------------------------------------------------------------------
// edge cases measured on torch 2.15 (CPU)

fn f32s(v: &[f32]) -> (Buf, View) {
    let (mut b, view) = Buf::contiguous(DType::F32, &[v.len() as i64]);
    for (i, x) in v.iter().enumerate() {
        b.set(i as i64, &x.to_le_bytes());
    }
    (b, view)
}

fn i64s(v: &[i64]) -> (Buf, View) {
    let (mut b, view) = Buf::contiguous(DType::I64, &[v.len() as i64]);
    for (i, x) in v.iter().enumerate() {
        b.set(i as i64, &x.to_le_bytes());
    }
    (b, view)
}

fn get_f32(b: &Buf) -> Vec<f32> {
    (0..b.len as i64)
        .map(|i| f32::from_le_bytes(b.elem(i).try_into().unwrap()))
        .collect()
}

fn get_i64(b: &Buf) -> Vec<i64> {
    (0..b.len as i64)
        .map(|i| i64::from_le_bytes(b.elem(i).try_into().unwrap()))
        .collect()
}

/// Bitwise equality of f32 results (NaN equals any NaN).
fn assert_f32s(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what}: got {got:?}, want {want:?}"
        );
    }
}

fn bin_f32(op: BinaryOp, a: &[f32], b: &[f32]) -> Vec<f32> {
    let (_x, xv) = f32s(a);
    let (_y, yv) = f32s(b);
    let (ob, ov) = f32s(&vec![0.0; a.len()]);
    binary(op, &ov, &xv, &yv, Scalar::Int(1), DType::F32).unwrap();
    get_f32(&ob)
}

fn bin_i64(op: BinaryOp, a: &[i64], b: &[i64]) -> Vec<i64> {
    let (_x, xv) = i64s(a);
    let (_y, yv) = i64s(b);
    let (ob, ov) = i64s(&vec![0; a.len()]);
    binary(op, &ov, &xv, &yv, Scalar::Int(1), DType::I64).unwrap();
    get_i64(&ob)
}

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

#[test]
fn torch_max_min_nan_and_signed_zero() {
    use BinaryOp::*;
    let x = [NAN, 1., NAN, 2., 0.0, -0.0];
    let y = [1., NAN, NAN, 3., -0.0, 0.0];
    assert_f32s(
        &bin_f32(Maximum, &x, &y),
        &[NAN, NAN, NAN, 3., -0.0, 0.0],
        "maximum",
    );
    assert_f32s(
        &bin_f32(Minimum, &x, &y),
        &[NAN, NAN, NAN, 2., -0.0, 0.0],
        "minimum",
    );
    assert_f32s(
        &bin_f32(Fmax, &x, &y),
        &[1., 1., NAN, 3., 0.0, -0.0],
        "fmax",
    );
    assert_f32s(
        &bin_f32(Fmin, &x, &y),
        &[1., 1., NAN, 2., 0.0, -0.0],
        "fmin",
    );
}

#[test]
fn torch_division_semantics() {
    use BinaryOp::*;
    // integer floor division, trunc division, remainder, fmod with negatives
    let a = [-7, 7, -7, 7, 0, -1];
    let b = [2, -2, -2, 2, 3, 3];
    assert_eq!(bin_i64(DivFloor, &a, &b), [-4, -4, 3, 3, 0, -1]);
    assert_eq!(bin_i64(DivTrunc, &a, &b), [-3, -3, 3, 3, 0, 0]);
    assert_eq!(bin_i64(Remainder, &a, &b), [1, -1, -1, 1, 0, 2]);
    assert_eq!(bin_i64(Fmod, &a, &b), [-1, 1, -1, 1, 0, -1]);
    // i64::MIN // -1 wraps (torch itself dies with SIGFPE); int8 wraps like torch
    assert_eq!(bin_i64(DivFloor, &[i64::MIN], &[-1]), [i64::MIN]);
    assert_eq!(bin_i64(Remainder, &[i64::MIN], &[-1]), [0]);
    // float floor division
    let x = [5., -5., 5., -5., 1., -1., 0.0, -0.0, INF, 5., NAN, 0.];
    let y = [3., 3., -3., -3., 0., 0., 3., 3., 3., INF, 1., -1.];
    assert_f32s(
        &bin_f32(DivFloor, &x, &y),
        &[1., -2., -2., 1., INF, -INF, 0., -0., NAN, 0., NAN, -0.],
        "div_floor",
    );
    let x = [5., -5., 5., -5., 1., -0.0, 0.0, INF, 5., -5., 5., -5., 0.];
    let y = [3., 3., -3., -3., 0., 3., -3., 3., INF, INF, -INF, -INF, 0.];
    assert_f32s(
        &bin_f32(Remainder, &x, &y),
        &[2., 1., -1., -2., NAN, -0., 0., NAN, 5., INF, -INF, -5., NAN],
        "remainder",
    );
    assert_f32s(
        &bin_f32(Fmod, &[5., -5., -0.0, 5.], &[3., 3., 3., 0.]),
        &[2., -2., -0., NAN],
        "fmod",
    );
    assert_f32s(
        &bin_f32(DivTrunc, &[5., -5., 1., -1., 0.], &[3., 3., 0., 0., 0.]),
        &[1., -1., INF, -INF, NAN],
        "div_trunc",
    );
    assert_f32s(
        &bin_f32(Div, &[1., -1., 0., 1.], &[0., 0., 0., -0.0]),
        &[INF, -INF, NAN, -INF],
        "div",
    );
    assert_f32s(
        &bin_f32(
            DivFloor,
            &[1., -1., 0., 1., -1., 0.],
            &[0., 0., 0., -0.0, -0.0, -0.0],
        ),
        &[INF, -INF, NAN, -INF, INF, NAN],
        "div_floor by zero",
    );
    // integer division by zero
    let (_x, xv) = i64s(&[1, 2]);
    let (_y, yv) = i64s(&[1, 0]);
    let (_o, ov) = i64s(&[0, 0]);
    for op in [Div, DivTrunc, DivFloor, Remainder, Fmod] {
        let e = binary(op, &ov, &xv, &yv, Scalar::Int(1), DType::I64).unwrap_err();
        assert_eq!(e.0, "ZeroDivisionError");
    }
    let e = binary_scalar(
        Remainder,
        &ov,
        &xv,
        Scalar::Int(0),
        Scalar::Int(1),
        DType::I64,
    );
    assert_eq!(e.unwrap_err().0, "ZeroDivisionError");
}

#[test]
fn torch_pow_semantics() {
    use BinaryOp::Pow;
    assert_eq!(
        bin_i64(Pow, &[2, 1, -1, -1, 0, 3], &[-1, -2, -3, -2, -1, 0]),
        [0, 1, -1, 1, 0, 1]
    );
    let (_x, xv) = i64s(&[2, 3]);
    let (_o, ov) = i64s(&[0, 0]);
    let e = binary_scalar(Pow, &ov, &xv, Scalar::Int(-1), Scalar::Int(1), DType::I64).unwrap_err();
    assert_eq!(e.0, "Integers to negative integer powers are not allowed.");
    // int8 overflow wraps: 3^5 = 243 -> -13
    let (mut b8, v8) = Buf::contiguous(DType::I8, &[1]);
    b8.set(0, &[3]);
    let (mut e8, ev8) = Buf::contiguous(DType::I8, &[1]);
    e8.set(0, &[5]);
    let (o8, ov8) = Buf::contiguous(DType::I8, &[1]);
    binary(Pow, &ov8, &v8, &ev8, Scalar::Int(1), DType::I8).unwrap();
    assert_eq!(o8.elem(0), [(-13i8) as u8]);
    // scalar exponents take ATen's shortcuts: sqrt for 0.5 (sqrt(-inf) = nan, sqrt(-0) = -0)
    let x = [-INF, -0.0, -4.0, 0.0, 3.0];
    let (_xb, xv) = f32s(&x);
    let (ob, ov) = f32s(&[0.0; 5]);
    let run = |e: f64| {
        binary_scalar(Pow, &ov, &xv, Scalar::Float(e), Scalar::Int(1), DType::F32).unwrap();
        get_f32(&ob)
    };
    assert_f32s(&run(0.5), &[NAN, -0.0, NAN, 0.0, 3f32.sqrt()], "pow 0.5");
    assert_f32s(
        &run(-0.5),
        &[NAN, -INF, NAN, INF, 1.0 / 3f32.sqrt()],
        "pow -0.5",
    );
    assert_f32s(&run(3.0), &[-INF, -0.0, -64.0, 0.0, 27.0], "pow 3");
    assert_f32s(&run(-2.0), &[0.0, INF, 0.0625, INF, 1.0 / 9.0], "pow -2");
    assert_f32s(&run(1.5), &[INF, 0.0, NAN, 0.0, 3f32.powf(1.5)], "pow 1.5");
    // tensor exponents use pow itself: pow(-inf, 0.5) = inf
    assert_f32s(
        &bin_f32(Pow, &[-INF, 1., 1., -1.], &[0.5, NAN, INF, INF]),
        &[INF, 1., 1., 1.],
        "pow",
    );
}

#[test]
fn torch_bool_arithmetic() {
    use BinaryOp::*;
    let mk = |v: &[bool]| {
        let (mut b, view) = Buf::contiguous(DType::Bool, &[v.len() as i64]);
        for (i, &x) in v.iter().enumerate() {
            b.set(i as i64, &[x as u8]);
        }
        (b, view)
    };
    let (_a, av) = mk(&[true, false, true, false]);
    let (_b, bv) = mk(&[true, true, false, false]);
    let (ob, ov) = mk(&[false; 4]);
    let run = |op: BinaryOp, alpha: Scalar| {
        binary(op, &ov, &av, &bv, alpha, DType::Bool).map(|_| ob.bytes().to_vec())
    };
    assert_eq!(run(Add, Scalar::Bool(true)).unwrap(), [1, 1, 1, 0]);
    assert_eq!(run(Add, Scalar::Int(2)).unwrap(), [1, 1, 1, 0]);
    assert_eq!(run(Mul, Scalar::Int(1)).unwrap(), [1, 0, 0, 0]);
    assert_eq!(run(Maximum, Scalar::Int(1)).unwrap(), [1, 1, 1, 0]);
    assert_eq!(run(Lt, Scalar::Int(1)).unwrap(), [0, 1, 0, 0]);
    assert_eq!(run(BitXor, Scalar::Int(1)).unwrap(), [0, 1, 1, 0]);
    assert!(run(Sub, Scalar::Int(1))
        .unwrap_err()
        .0
        .contains("Subtraction, the `-` operator"));
    assert!(run(DivFloor, Scalar::Int(1)).is_err());
    assert!(run(Shl, Scalar::Int(1)).is_err());
    assert!(run(Pow, Scalar::Int(1)).is_err());
    let (_u, uv) = mk(&[true, false, true, false]);
    assert!(unary(UnaryOp::Neg, &ov, &uv, DType::Bool)
        .unwrap_err()
        .0
        .contains("Negation"));
    assert!(unary(UnaryOp::Sqrt, &ov, &uv, DType::Bool).is_err());
    assert!(unary(UnaryOp::Abs, &ov, &uv, DType::Bool).is_err());
    unary(UnaryOp::Sign, &ov, &uv, DType::Bool).unwrap();
    assert_eq!(ob.bytes(), [1, 0, 1, 0]);
    // but bool promoted to float compute works: sqrt(True) = 1.0
    let (fb, fv) = f32s(&[0.0; 4]);
    unary(UnaryOp::Sqrt, &fv, &uv, DType::F32).unwrap();
    assert_f32s(&get_f32(&fb), &[1.0, 0.0, 1.0, 0.0], "sqrt(bool)");
    assert!(unary(UnaryOp::BitwiseNot, &fv, &fv, DType::F32).is_err());
}

#[test]
fn torch_f16_overflow_and_rounding() {
    let mk = |v: &[f32]| {
        let (mut b, view) = Buf::contiguous(DType::F16, &[v.len() as i64]);
        for (i, &x) in v.iter().enumerate() {
            b.set(i as i64, &half::f16::from_f32(x).to_le_bytes());
        }
        (b, view)
    };
    let (_a, av) = mk(&[60000.0, 300.0, 1.0, 2.5]);
    let (_b, bv) = mk(&[60000.0, 300.0, 0.0001, 0.0]);
    let (ob, ov) = mk(&[0.0; 4]);
    let get = || -> Vec<f32> {
        (0..4)
            .map(|i| half::f16::from_le_bytes(ob.elem(i).try_into().unwrap()).to_f32())
            .collect()
    };
    binary(BinaryOp::Add, &ov, &av, &bv, Scalar::Int(1), DType::F16).unwrap();
    assert_eq!(get()[0], f32::INFINITY);
    binary(BinaryOp::Mul, &ov, &av, &bv, Scalar::Int(1), DType::F16).unwrap();
    assert_eq!(get()[1], f32::INFINITY);
    // f16 compute into an f32 destination still rounds to f16 once: 1 + 0.0001 -> 1.0
    let (fb, fv) = f32s(&[0.0; 4]);
    binary(BinaryOp::Add, &fv, &av, &bv, Scalar::Int(1), DType::F16).unwrap();
    assert_eq!(get_f32(&fb), [f32::INFINITY, 600.0, 1.0, 2.5]);
    unary(UnaryOp::Round, &ov, &av, DType::F16).unwrap();
    assert_eq!(get()[3], 2.0); // half to even
}

#[test]
fn torch_unary_special_values() {
    use UnaryOp::*;
    let x = [INF, -INF, NAN, -0.0, 0.0, -100.0, 100.0, 3.0, -3.0, 0.5];
    let run = |op: UnaryOp| {
        let (_a, av) = f32s(&x);
        let (ob, ov) = f32s(&[0.0; 10]);
        unary(op, &ov, &av, DType::F32).unwrap();
        get_f32(&ob)
    };
    assert_f32s(
        &run(Sign),
        &[1., -1., 0., 0., 0., -1., 1., 1., -1., 1.],
        "sign",
    );
    let sign = run(Sign);
    assert!(sign[2].is_sign_positive() && sign[3].is_sign_positive());
    assert_f32s(
        &run(Relu),
        &[INF, 0., NAN, -0.0, 0., 0., 100., 3., 0., 0.5],
        "relu",
    );
    assert_f32s(
        &run(Frac),
        &[NAN, NAN, NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5],
        "frac",
    );
    let s = run(Sigmoid);
    assert_eq!((s[0], s[1], s[3], s[5], s[6]), (1.0, 0.0, 0.5, 0.0, 1.0));
    let g = run(GeluErf);
    assert!(
        g[0] == INF && g[1].is_nan() && g[2].is_nan() && g[5] == 0.0 && g[5].is_sign_negative()
    );
    // GELU's erf is PyTorch CPU's approximation (absolute error < 1.5e-7, times |x| / 2)
    assert!((g[7] - 2.9959502).abs() < 1e-6 && (g[8] + 0.0040496886).abs() < 5e-7);
    let g = run(GeluTanh);
    assert!(g[0] == INF && g[1].is_nan() && (g[7] - 2.9963627).abs() < 1e-6);
    let s = run(Silu);
    assert!(s[0] == INF && s[1].is_nan() && s[5] == 0.0 && s[5].is_sign_negative());
    assert_f32s(&run(Rsqrt)[..5], &[0.0, NAN, NAN, -INF, INF], "rsqrt");
    let e = run(Erf);
    assert_eq!((e[0], e[1], e[5]), (1.0, -1.0, -1.0));
    assert!((e[9] - 0.5204999).abs() < 1e-7);
    let e = run(Erfc);
    assert_eq!((e[0], e[1], e[6]), (0.0, 2.0, 0.0));
    assert!((e[7] - 2.209_049_7e-5).abs() < 1e-11);
    let sb = run(Signbit);
    assert_eq!(
        sb.iter().map(|&v| v as u8).collect::<Vec<_>>(),
        [0, 1, 0, 1, 0, 1, 0, 0, 1, 0]
    );
    // large arguments of the inverse hyperbolics
    let (_a, av) = f32s(&[3e38, -3e38, 1e-30]);
    let (ob, ov) = f32s(&[0.0; 3]);
    unary(Asinh, &ov, &av, DType::F32).unwrap();
    let r = get_f32(&ob);
    assert!((r[0] - 89.29).abs() < 0.01 && (r[1] + 89.29).abs() < 0.01 && r[2] == 1e-30);
    unary(Acosh, &ov, &av, DType::F32).unwrap();
    let r = get_f32(&ob);
    assert!((r[0] - 89.29).abs() < 0.01 && r[1].is_nan());
    // abs / neg of the most negative int8 wrap
    let (mut ib, iv) = Buf::contiguous(DType::I8, &[1]);
    ib.set(0, &[0x80]);
    let (io, iov) = Buf::contiguous(DType::I8, &[1]);
    unary(Abs, &iov, &iv, DType::I8).unwrap();
    assert_eq!(io.elem(0), [0x80]);
    assert!(unary(Frac, &iov, &iv, DType::I8).is_err());
    assert!(unary(Sqrt, &iov, &iv, DType::I8).is_err());
}

#[test]
fn torch_clamp_semantics() {
    let x = [NAN, 1., 5., -5., -0.0];
    let (_a, av) = f32s(&x);
    let (ob, ov) = f32s(&[0.0; 5]);
    let run = |lo: Option<f64>, hi: Option<f64>| {
        clamp_scalar(
            &ov,
            &av,
            lo.map(Scalar::Float),
            hi.map(Scalar::Float),
            DType::F32,
        )
        .unwrap();
        get_f32(&ob)
    };
    assert_f32s(
        &run(Some(-2.), Some(2.)),
        &[NAN, 1., 2., -2., -0.0],
        "clamp",
    );
    assert_f32s(
        &run(Some(3.), Some(2.)),
        &[NAN, 2., 2., 2., 2.],
        "clamp min > max",
    );
    assert_f32s(&run(Some(f64::NAN), Some(2.)), &[NAN; 5], "clamp nan bound");
    assert_f32s(&run(Some(0.0), None), &[NAN, 1., 5., 0., -0.0], "clamp -0");
    assert!(clamp_scalar(&ov, &av, None, None, DType::F32).is_err());
}

#[test]
fn complex_is_rejected() {
    let (_a, av) = Buf::contiguous(DType::C64, &[2]);
    let (_o, ov) = Buf::contiguous(DType::C64, &[2]);
    let e = unary(UnaryOp::Neg, &ov, &av, DType::C64).unwrap_err();
    assert!(e.0.contains("unsupported dtype"), "{}", e.0);
    assert!(binary(BinaryOp::Add, &ov, &av, &av, Scalar::Int(1), DType::C64).is_err());
}
