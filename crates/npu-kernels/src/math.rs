//! Scalar math with PyTorch's CPU semantics: the float and integer traits the elementwise and
//! reduction kernels are generic over, and `erf`/`erfc` (not in Rust's stable std).

use crate::convert::{Bool8, Element};
use std::ops::{Add, Div, Mul, Neg, Rem, Sub};

/// f32 and f64: the types float math runs in (f16/bf16 compute in f32).
pub(crate) trait Float:
    Element
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Rem<Output = Self>
    + Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    const NAN: Self;
    const INFINITY: Self;
    /// Whether polynomial approximations may stop at single precision.
    const SINGLE: bool;
    fn c(v: f64) -> Self;
    fn abs(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn round_even(self) -> Self;
    fn trunc(self) -> Self;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn exp2(self) -> Self;
    fn exp_m1(self) -> Self;
    fn ln(self) -> Self;
    fn log2(self) -> Self;
    fn log10(self) -> Self;
    fn ln_1p(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tan(self) -> Self;
    fn asin(self) -> Self;
    fn acos(self) -> Self;
    fn atan(self) -> Self;
    fn sinh(self) -> Self;
    fn cosh(self) -> Self;
    fn tanh(self) -> Self;
    fn asinh(self) -> Self;
    fn acosh(self) -> Self;
    fn atanh(self) -> Self;
    fn powf(self, e: Self) -> Self;
    fn atan2(self, x: Self) -> Self;
    fn hypot(self, y: Self) -> Self;
    fn copysign(self, s: Self) -> Self;
    fn is_nan(self) -> bool;
    fn is_infinite(self) -> bool;
    fn is_finite(self) -> bool;
    fn is_sign_negative(self) -> bool;
    fn to64(self) -> f64;
}

macro_rules! float_impl {
    ($t:ty, $single:expr) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAN: Self = <$t>::NAN;
            const INFINITY: Self = <$t>::INFINITY;
            const SINGLE: bool = $single;
            #[inline(always)]
            fn c(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            #[inline(always)]
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
            #[inline(always)]
            fn round_even(self) -> Self {
                <$t>::round_ties_even(self)
            }
            #[inline(always)]
            fn trunc(self) -> Self {
                <$t>::trunc(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn exp2(self) -> Self {
                <$t>::exp2(self)
            }
            #[inline(always)]
            fn exp_m1(self) -> Self {
                <$t>::exp_m1(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn log2(self) -> Self {
                <$t>::log2(self)
            }
            #[inline(always)]
            fn log10(self) -> Self {
                <$t>::log10(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline(always)]
            fn tan(self) -> Self {
                <$t>::tan(self)
            }
            #[inline(always)]
            fn asin(self) -> Self {
                <$t>::asin(self)
            }
            #[inline(always)]
            fn acos(self) -> Self {
                <$t>::acos(self)
            }
            #[inline(always)]
            fn atan(self) -> Self {
                <$t>::atan(self)
            }
            #[inline(always)]
            fn sinh(self) -> Self {
                <$t>::sinh(self)
            }
            #[inline(always)]
            fn cosh(self) -> Self {
                <$t>::cosh(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn asinh(self) -> Self {
                <$t>::asinh(self)
            }
            #[inline(always)]
            fn acosh(self) -> Self {
                <$t>::acosh(self)
            }
            #[inline(always)]
            fn atanh(self) -> Self {
                <$t>::atanh(self)
            }
            #[inline(always)]
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
            #[inline(always)]
            fn atan2(self, x: Self) -> Self {
                <$t>::atan2(self, x)
            }
            #[inline(always)]
            fn hypot(self, y: Self) -> Self {
                <$t>::hypot(self, y)
            }
            #[inline(always)]
            fn copysign(self, s: Self) -> Self {
                <$t>::copysign(self, s)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                self != self
            }
            #[inline(always)]
            fn is_infinite(self) -> bool {
                <$t>::is_infinite(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn is_sign_negative(self) -> bool {
                <$t>::is_sign_negative(self)
            }
            #[inline(always)]
            fn to64(self) -> f64 {
                self as f64
            }
        }
    };
}

float_impl!(f32, true);
float_impl!(f64, false);

/// The integer element types, with PyTorch's (C++) semantics for their arithmetic.
pub(crate) trait Int: Element + Ord + Eq {
    const ZERO: Self;
    const ONE: Self;
    fn wadd(self, o: Self) -> Self;
    fn wsub(self, o: Self) -> Self;
    fn wmul(self, o: Self) -> Self;
    fn wneg(self) -> Self;
    fn wabs(self) -> Self;
    /// Truncating division; `MIN / -1` wraps (the divisor must not be 0).
    fn wdiv(self, o: Self) -> Self;
    /// C remainder (sign of the dividend); `MIN % -1` is 0 (the divisor must not be 0).
    fn wrem(self, o: Self) -> Self;
    fn is_neg(self) -> bool;
    fn not(self) -> Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    /// `a << b` as ATen's lshift: 0 when `b` is negative or at least the bit width.
    fn shl_aten(self, b: Self) -> Self;
    /// `a >> b` as ATen's rshift: shifts by `bits - signed` when `b` is negative or too large.
    fn shr_aten(self, b: Self) -> Self;
    /// ATen's integer `pow`: negative exponents give 0, except for bases 1 and -1.
    fn pow_aten(self, b: Self) -> Self;
}

macro_rules! int_impl {
    ($t:ty, $u:ty, $s:ty) => {
        impl Int for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            #[inline(always)]
            fn wadd(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn wsub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn wmul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn wneg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn wabs(self) -> Self {
                if self < 0 {
                    self.wrapping_neg()
                } else {
                    self
                }
            }
            #[inline(always)]
            fn wdiv(self, o: Self) -> Self {
                self.wrapping_div(o)
            }
            #[inline(always)]
            fn wrem(self, o: Self) -> Self {
                self.wrapping_rem(o)
            }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn is_neg(self) -> bool {
                self < 0
            }
            #[inline(always)]
            fn not(self) -> Self {
                !self
            }
            #[inline(always)]
            fn and(self, o: Self) -> Self {
                self & o
            }
            #[inline(always)]
            fn or(self, o: Self) -> Self {
                self | o
            }
            #[inline(always)]
            fn xor(self, o: Self) -> Self {
                self ^ o
            }
            #[inline(always)]
            fn shl_aten(self, b: Self) -> Self {
                if (b as $s) < 0 || (b as $u) >= <$t>::BITS as $u {
                    0
                } else {
                    ((self as $u) << b) as $t
                }
            }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn shr_aten(self, b: Self) -> Self {
                let signed = <$t>::MIN != 0;
                let max = <$t>::BITS - signed as u32;
                if (b as $s) < 0 || (b as $u) >= max as $u {
                    if signed {
                        self >> (max.min(<$t>::BITS - 1))
                    } else {
                        0
                    }
                } else {
                    self >> b
                }
            }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn pow_aten(self, b: Self) -> Self {
                let (mut a, mut b) = (self, b);
                if b < 0 {
                    return if a == 1 {
                        1
                    } else if a.wrapping_add(1) == 0 && <$t>::MIN != 0 {
                        // base -1: the sign follows the exponent's parity
                        if b % 2 != 0 {
                            a
                        } else {
                            1
                        }
                    } else {
                        0
                    };
                }
                let mut r: $t = 1;
                while b != 0 {
                    if b & 1 != 0 {
                        r = r.wrapping_mul(a);
                    }
                    b /= 2;
                    a = a.wrapping_mul(a);
                }
                r
            }
        }
    };
}

int_impl!(u8, u8, i8);
int_impl!(i8, u8, i8);
int_impl!(i16, u16, i16);
int_impl!(i32, u32, i32);
int_impl!(i64, u64, i64);

/// The truth value of a bool element (any nonzero byte is true).
#[inline(always)]
pub(crate) fn truth(b: Bool8) -> bool {
    b.0 != 0
}

#[inline(always)]
pub(crate) fn b8(v: bool) -> Bool8 {
    Bool8(v as u8)
}

// erf and erfc. Rust's std does not have them (yet). Chebyshev interpolants computed offline
// at 40 digits (mpmath) for three smooth functions:
//   erf(x)/x as a function of z = x^2 on [0, 1]               (|x| <= 1)
//   erfcx(x) = exp(x^2) erfc(x) on [1, 2] and [2, 4]
//   x erfcx(x) as a function of u = 1/x^2 on [0, 1/16]         (x >= 4)
// The full series are accurate to ~1e-16 relative; single precision uses a prefix of each.
/// Chebyshev coefficients on [0, 1]; the first 8 suffice for f32.
const ERF_SMALL: [f64; 13] = [
    9.7547693938265409598e-1,
    -1.4226120510371364238e-1,
    1.0035582187599795576e-2,
    -5.7687646997674847651e-4,
    2.7419931252196061034e-5,
    -1.1043175507344507604e-6,
    3.848875542034503695e-8,
    -1.180858253387546697e-9,
    3.2334215826050909646e-11,
    -7.9910159470045487582e-13,
    1.7990725113961455612e-14,
    -3.7186354878186926382e-16,
    7.1035990037142529712e-18,
];
const ERF_SMALL_F32: usize = 8;
/// Chebyshev coefficients on [1, 2]; the first 11 suffice for f32.
const ERFCX_1_2: [f64; 18] = [
    3.3142728163945198303e-1,
    -8.5002137706743194168e-2,
    9.9511273414661154111e-3,
    -1.0810888102208325048e-3,
    1.1023243631194950258e-4,
    -1.0636830518218601001e-5,
    9.7750126804790563943e-7,
    -8.5979228678883160072e-8,
    7.2677084117248423455e-9,
    -5.9235438405925421095e-10,
    4.6683928572294156695e-11,
    -3.5661277015677501653e-12,
    2.6458779519104522156e-13,
    -1.9101658673527566022e-14,
    1.3439765884798289381e-15,
    -9.2287905490943258079e-17,
    6.1926730846439105629e-18,
    -4.0652224326488764456e-19,
];
const ERFCX_1_2_F32: usize = 11;
/// Chebyshev coefficients on [2, 4]; the first 12 suffice for f32.
const ERFCX_2_4: [f64; 20] = [
    1.8742956902622409307e-1,
    -5.7946528836690967785e-2,
    8.5952473873965326996e-3,
    -1.2284613640242593737e-3,
    1.6974366686180486953e-4,
    -2.2738329337044562795e-5,
    2.9598443788048780997e-6,
    -3.7513575581379711372e-7,
    4.6372828761738247083e-8,
    -5.5994553925640879241e-9,
    6.6131608966799159755e-10,
    -7.6482715221998167747e-11,
    8.6709043258765937469e-12,
    -9.6454562743821085143e-13,
    1.0536827959360625658e-13,
    -1.1312630906760667228e-14,
    1.1945180669174575961e-15,
    -1.241310752580407046e-16,
    1.2702463231854360038e-17,
    -1.2807258736638549485e-18,
];
const ERFCX_2_4_F32: usize = 12;
/// Chebyshev coefficients on [0, 0.0625]; the first 8 suffice for f32.
const ERFCX_INV: [f64; 16] = [
    5.559256934251759709e-1,
    -8.0903320921157129928e-3,
    1.6776836928685167479e-4,
    -5.5310416338083639923e-6,
    2.4436936404634718765e-7,
    -1.3327004395823596701e-8,
    8.5502748917201479217e-10,
    -6.2540076013495206153e-11,
    5.1017351668693378739e-12,
    -4.566948477703340168e-13,
    4.4310635988433544492e-14,
    -4.6146100764621053395e-15,
    5.1180308718668582135e-16,
    -6.0064595094112052609e-17,
    7.41914386314289012e-18,
    -9.6015590843174442734e-19,
];
const ERFCX_INV_F32: usize = 8;

#[inline(always)]
fn series(c: &[f64], single_terms: usize, single: bool) -> &[f64] {
    if single {
        &c[..single_terms]
    } else {
        c
    }
}

/// Sum of the Chebyshev series `c` at `t` in [-1, 1].
#[inline(always)]
fn clenshaw(c: &[f64], t: f64) -> f64 {
    let (mut b1, mut b2) = (0.0f64, 0.0f64);
    for &cj in c[1..].iter().rev() {
        let b0 = 2.0 * t * b1 - b2 + cj;
        b2 = b1;
        b1 = b0;
    }
    t * b1 - b2 + c[0]
}

/// exp(x^2) erfc(x) for x >= 1 (x = +inf gives 0).
#[inline]
fn erfcx_ge1(x: f64, single: bool) -> f64 {
    if x < 2.0 {
        clenshaw(series(&ERFCX_1_2, ERFCX_1_2_F32, single), 2.0 * x - 3.0)
    } else if x < 4.0 {
        clenshaw(series(&ERFCX_2_4, ERFCX_2_4_F32, single), x - 3.0)
    } else {
        let u = 1.0 / (x * x);
        clenshaw(series(&ERFCX_INV, ERFCX_INV_F32, single), 32.0 * u - 1.0) / x
    }
}

/// The error function; `single` allows stopping at single-precision accuracy.
#[inline]
pub(crate) fn erf(x: f64, single: bool) -> f64 {
    let a = x.abs();
    if a <= 1.0 {
        let z = x * x;
        x * clenshaw(series(&ERF_SMALL, ERF_SMALL_F32, single), 2.0 * z - 1.0)
    } else if a < 6.0 {
        (1.0 - (-a * a).exp() * erfcx_ge1(a, single)).copysign(x)
    } else if a.is_nan() {
        x
    } else {
        1.0f64.copysign(x)
    }
}

/// The complementary error function 1 - erf(x), accurate in relative terms for large x.
#[inline]
pub(crate) fn erfc(x: f64, single: bool) -> f64 {
    let a = x.abs();
    if a <= 1.0 {
        1.0 - erf(x, single)
    } else if a.is_nan() {
        x
    } else {
        let e = (-a * a).exp() * erfcx_ge1(a, single);
        if x > 0.0 {
            e
        } else {
            2.0 - e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_semantics_match_aten() {
        // measured on torch 2.15
        assert_eq!(1i8.shl_aten(7), -128);
        assert_eq!(1i8.shl_aten(8), 0);
        assert_eq!(1i8.shl_aten(-1), 0);
        assert_eq!((-8i8).shr_aten(9), -1);
        assert_eq!((-8i8).shr_aten(1), -4);
        assert_eq!(1i8.shr_aten(8), 0);
        assert_eq!(255u8.shr_aten(7), 1);
        assert_eq!(255u8.shr_aten(8), 0);
        assert_eq!(128u8.shr_aten(200), 0);
        assert_eq!(1u8.shl_aten(7), 128);
        assert_eq!(128u8.shl_aten(200), 0);
        assert_eq!(255u8.shl_aten(1), 254);
        assert_eq!(1i64.shl_aten(63), i64::MIN);
        assert_eq!((-5i64).shr_aten(64), -1);
        assert_eq!(5i64.shr_aten(-1), 0);
        assert_eq!(2i64.pow_aten(-1), 0);
        assert_eq!(1i64.pow_aten(-2), 1);
        assert_eq!((-1i64).pow_aten(-3), -1);
        assert_eq!((-1i64).pow_aten(-2), 1);
        assert_eq!(0i64.pow_aten(-1), 0);
        assert_eq!(3i64.pow_aten(0), 1);
        assert_eq!(3i8.pow_aten(5), -13);
        assert_eq!(2i8.pow_aten(7), -128);
        assert_eq!(i8::MIN.wdiv(-1), i8::MIN);
        assert_eq!(i64::MIN.wrem(-1), 0);
        assert_eq!(255u8.pow_aten(2), 1);
    }

    #[test]
    fn erf_accuracy() {
        // reference values from mpmath (40 digits)
        let cases: [(f64, f64, f64); 8] = [
            (1e-300, 1.1283791670955126e-300, 1.0),
            (0.1, 0.1124629160182849, 0.8875370839817151),
            (0.5, 0.5204998778130465, 0.4795001221869535),
            (1.0, 0.8427007929497149, 0.15729920705028513),
            (1.5, 0.9661051464753108, 0.033894853524689274),
            (2.5, 0.9995930479825550, 4.069520174449590e-4),
            (5.0, 0.9999999999984626, 1.5374597944280349e-12),
            (10.0, 1.0, 2.088487583762545e-45),
        ];
        for (x, e, ec) in cases {
            let rel = |a: f64, b: f64| ((a - b) / b).abs();
            assert!(rel(erf(x, false), e) < 1e-15, "erf({x})");
            assert!(rel(erf(-x, false), -e) < 1e-15, "erf(-{x})");
            assert!(rel(erfc(x, false), ec) < 1e-13, "erfc({x}) = {}", erfc(x, false));
            assert!(rel(erfc(-x, false), 2.0 - ec) < 1e-15, "erfc(-{x})");
            assert!(rel(erf(x, true), e) < 1e-8, "erf32({x})");
            assert!(rel(erfc(x, true), ec) < 1e-8, "erfc32({x})");
        }
        assert_eq!(erfc(30.0, false), 0.0);
        assert_eq!(erf(f64::INFINITY, false), 1.0);
        assert_eq!(erf(f64::NEG_INFINITY, false), -1.0);
        assert_eq!(erfc(f64::NEG_INFINITY, false), 2.0);
        assert_eq!(erfc(f64::INFINITY, false), 0.0);
        assert!(erf(f64::NAN, false).is_nan() && erfc(f64::NAN, true).is_nan());
        assert!(erf(-0.0, false).is_sign_negative());
    }
}
