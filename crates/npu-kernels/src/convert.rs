//! Element types and the conversions between them, with PyTorch's CPU semantics (x86-64).
//!
//! Every conversion goes through one of a few "wide" forms (bool, i64, f32, f64, complex f64):
//! the source picks the form that holds it exactly (`Element::cast`) and the destination
//! implements the rule from that form (`Element::from_*`). This gives all 144 dtype pairs from
//! 12 small impls, and each pair monomorphizes into a tight loop.

use crate::dtype::DType;
use half::{bf16, f16};

/// A PyTorch bool element: one byte. Read as `!= 0`, so stray bytes never make a `bool` invalid.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bool8(pub u8);

/// A complex element laid out like `c10::complex<T>`: real part first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Complex<T> {
    pub re: T,
    pub im: T,
}

/// A Rust type that stores one element of a [`DType`].
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    fn from_bool(v: bool) -> Self;
    /// Integer source: wraps into narrower integers like C++ `static_cast`.
    fn from_i64(v: i64) -> Self;
    /// Float source. Float-to-int follows x86's cvtt* (what PyTorch does on this machine).
    fn from_f64(v: f64) -> Self;
    /// Same result as `from_f64(v as f64)` (the widening is exact); overridden for speed.
    #[inline]
    fn from_f32(v: f32) -> Self {
        Self::from_f64(v as f64)
    }
    fn from_complex(re: f64, im: f64) -> Self;
    /// Converts to another element type with PyTorch's `c10::convert` semantics.
    fn cast<D: Element>(self) -> D;
    /// Numeric value (the real part for complex numbers, 0/1 for bool).
    fn to_f64(self) -> f64;
}

/// x86 `cvttsd2si` with a 64-bit result: truncation; NaN and out-of-range give `i64::MIN`.
#[inline]
pub fn f64_to_i64_x86(v: f64) -> i64 {
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v) {
        // SAFETY: in range and not NaN (skips the saturation code of `as`)
        unsafe { v.to_int_unchecked() }
    } else {
        i64::MIN
    }
}

/// x86 `cvttsd2si` with a 32-bit result: truncation; NaN and out-of-range give `i32::MIN`.
#[inline]
pub fn f64_to_i32_x86(v: f64) -> i32 {
    if v > -2_147_483_649.0 && v < 2_147_483_648.0 {
        // SAFETY: in range and not NaN
        unsafe { v.to_int_unchecked() }
    } else {
        i32::MIN
    }
}

/// f32 -> bf16 exactly as `c10::BFloat16`: round to nearest even, every NaN becomes 0x7FC0.
#[inline]
pub fn f32_to_bf16(v: f32) -> bf16 {
    if v.is_nan() {
        return bf16::from_bits(0x7FC0);
    }
    let u = v.to_bits();
    let rounded = u.wrapping_add(0x7FFF + ((u >> 16) & 1));
    bf16::from_bits((rounded >> 16) as u16)
}

macro_rules! int_element {
    ($t:ty, $dt:ident, $from_float:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            #[inline]
            fn from_bool(v: bool) -> Self {
                v as $t
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                let f: fn(f64) -> $t = $from_float;
                f(v)
            }
            #[inline]
            fn from_complex(re: f64, _im: f64) -> Self {
                Self::from_f64(re)
            }
            #[inline]
            fn cast<D: Element>(self) -> D {
                D::from_i64(self as i64)
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

// Narrow signed types convert through int32, uint8 through int64 (c10's special case for
// uint8, which avoids UB on negative floats); then wrap.
int_element!(u8, U8, |v| f64_to_i64_x86(v) as u8);
int_element!(i8, I8, |v| f64_to_i32_x86(v) as i8);
int_element!(i16, I16, |v| f64_to_i32_x86(v) as i16);
int_element!(i32, I32, f64_to_i32_x86);
int_element!(i64, I64, f64_to_i64_x86);

impl Element for Bool8 {
    const DTYPE: DType = DType::Bool;
    #[inline]
    fn from_bool(v: bool) -> Self {
        Bool8(v as u8)
    }
    #[inline]
    fn from_i64(v: i64) -> Self {
        Bool8((v != 0) as u8)
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        Bool8((v != 0.0) as u8) // NaN != 0, so NaN -> true
    }
    #[inline]
    fn from_complex(re: f64, im: f64) -> Self {
        Bool8((re != 0.0 || im != 0.0) as u8)
    }
    #[inline]
    fn cast<D: Element>(self) -> D {
        D::from_bool(self.0 != 0)
    }
    #[inline]
    fn to_f64(self) -> f64 {
        (self.0 != 0) as u8 as f64
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline]
    fn from_bool(v: bool) -> Self {
        v as u8 as f32
    }
    #[inline]
    fn from_i64(v: i64) -> Self {
        v as f32
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline]
    fn from_complex(re: f64, _im: f64) -> Self {
        re as f32
    }
    #[inline]
    fn cast<D: Element>(self) -> D {
        D::from_f32(self)
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    #[inline]
    fn from_bool(v: bool) -> Self {
        v as u8 as f64
    }
    #[inline]
    fn from_i64(v: i64) -> Self {
        v as f64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn from_complex(re: f64, _im: f64) -> Self {
        re
    }
    #[inline]
    fn cast<D: Element>(self) -> D {
        D::from_f64(self)
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

// c10::Half and c10::BFloat16 are built from float only: ints and doubles are rounded to f32
// first (a double rounding that PyTorch has too, e.g. for f64 -> f16).
macro_rules! half_element {
    ($t:ty, $dt:ident, $from_f32:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dt;
            #[inline]
            fn from_bool(v: bool) -> Self {
                Self::from_f32(v as u8 as f32)
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                Self::from_f32(v as f32)
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                Self::from_f32(v as f32)
            }
            #[inline]
            fn from_f32(v: f32) -> Self {
                let f: fn(f32) -> $t = $from_f32;
                f(v)
            }
            #[inline]
            fn from_complex(re: f64, _im: f64) -> Self {
                Self::from_f64(re)
            }
            #[inline]
            fn cast<D: Element>(self) -> D {
                D::from_f32(self.to_f32())
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self.to_f32() as f64
            }
        }
    };
}

half_element!(f16, F16, f16::from_f32);
half_element!(bf16, BF16, f32_to_bf16);

macro_rules! complex_element {
    ($t:ty, $dt:ident) => {
        impl Element for Complex<$t> {
            const DTYPE: DType = DType::$dt;
            #[inline]
            fn from_bool(v: bool) -> Self {
                Complex {
                    re: v as u8 as $t,
                    im: 0.0,
                }
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                Complex {
                    re: v as $t,
                    im: 0.0,
                }
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                Complex {
                    re: v as $t,
                    im: 0.0,
                }
            }
            #[inline]
            fn from_complex(re: f64, im: f64) -> Self {
                Complex {
                    re: re as $t,
                    im: im as $t,
                }
            }
            #[inline]
            fn cast<D: Element>(self) -> D {
                D::from_complex(self.re as f64, self.im as f64)
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self.re as f64
            }
        }
    };
}

complex_element!(f32, C64);
complex_element!(f64, C128);

/// `match`es a non-complex [`DType`], binding `$T` to its element type; `$complex` handles
/// complex dtypes (which the callers reject before dispatching).
macro_rules! dispatch_real {
    ($dt:expr, $T:ident => $body:expr, complex => $complex:expr) => {
        match $dt {
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::DType::I16 => {
                type $T = i16;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::F16 => {
                type $T = half::f16;
                $body
            }
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::Bool => {
                type $T = $crate::convert::Bool8;
                $body
            }
            $crate::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            $crate::DType::C64 | $crate::DType::C128 => $complex,
        }
    };
}

/// `match`es a [`DType`] and runs `$body` with `$T` bound to its element type.
macro_rules! dispatch {
    ($dt:expr, $T:ident => $body:expr) => {
        $crate::convert::dispatch_real!($dt, $T => $body, complex => match $dt {
            $crate::DType::C64 => {
                type $T = $crate::convert::Complex<f32>;
                $body
            }
            _ => {
                type $T = $crate::convert::Complex<f64>;
                $body
            }
        })
    };
}

/// Runs `$body` with `$T` bound to an unsigned type of `$size` bytes (16: `[u64; 2]`), for
/// kernels that move elements as bit patterns without looking at their values.
macro_rules! dispatch_bits {
    ($size:expr, $T:ident => $body:expr) => {
        match $size {
            1 => {
                type $T = u8;
                $body
            }
            2 => {
                type $T = u16;
                $body
            }
            4 => {
                type $T = u32;
                $body
            }
            8 => {
                type $T = u64;
                $body
            }
            _ => {
                type $T = [u64; 2];
                $body
            }
        }
    };
}

/// Like `dispatch!` over the real floating dtypes; `$other` handles the rest.
macro_rules! dispatch_float {
    ($dt:expr, $T:ident => $body:expr, _ => $other:expr) => {
        match $dt {
            $crate::DType::F16 => {
                type $T = half::f16;
                $body
            }
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            _ => $other,
        }
    };
}

pub(crate) use dispatch;
pub(crate) use dispatch_bits;
pub(crate) use dispatch_float;
pub(crate) use dispatch_real;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_to_int_matches_x86() {
        assert_eq!(i32::from_f64(-3.7), -3);
        assert_eq!(i32::from_f64(f64::NAN), i32::MIN);
        assert_eq!(i32::from_f64(1e20), i32::MIN);
        assert_eq!(i32::from_f64(2147483647.9), i32::MAX);
        assert_eq!(i64::from_f64(3e9), 3_000_000_000);
        assert_eq!(i64::from_f64(f64::INFINITY), i64::MIN);
        assert_eq!(u8::from_f64(300.0), 44);
        assert_eq!(u8::from_f64(-1.0), 255);
        assert_eq!(u8::from_f64(4294967301.0), 5); // through int64
        assert_eq!(i8::from_f64(4294967301.0), 0); // through int32: INT_MIN wraps to 0
        assert_eq!(i8::from_f64(255.5), -1);
        assert_eq!(i16::from_f64(-129.9), -129);
        assert_eq!(u8::from_f32(f32::NAN), 0);
    }

    #[test]
    fn bool_and_complex() {
        assert_eq!(Bool8::from_f64(f64::NAN), Bool8(1));
        assert_eq!(Bool8::from_f64(-0.0), Bool8(0));
        assert_eq!(Bool8::from_f64(f64::NEG_INFINITY), Bool8(1));
        assert_eq!(
            Complex {
                re: 0.0f32,
                im: 1.0
            }
            .cast::<Bool8>(),
            Bool8(1)
        );
        assert_eq!(
            Complex {
                re: 2.5f64,
                im: 7.0
            }
            .cast::<u8>(),
            2
        );
        assert_eq!(
            Complex {
                re: -1.5f32,
                im: 7.0
            }
            .cast::<u8>(),
            255
        );
        assert_eq!(Bool8(7).cast::<f32>(), 1.0);
        assert_eq!(3i64.cast::<Complex<f32>>(), Complex { re: 3.0, im: 0.0 });
    }

    #[test]
    fn half_rounding() {
        // 1 + 2^-11 is halfway between two f16 values: ties go to even (1.0).
        assert_eq!(f16::from_f32(1.0 + 2f32.powi(-11)).to_f32(), 1.0);
        // 1 + 3*2^-11 is halfway too: even neighbour is 1 + 2^-9.
        assert_eq!(
            <f16 as Element>::from_f64(1.0 + 3.0 / 2048.0),
            f16::from_f32(1.0 + 2f32.powi(-9))
        );
        // f64 -> f16 rounds via f32 like PyTorch: just above the tie still gives 1.0.
        assert_eq!(
            <f16 as Element>::from_f64(1.0 + 2f64.powi(-11) + 2f64.powi(-40)).to_f32(),
            1.0
        );
        assert_eq!(
            <bf16 as Element>::from_f64(1.0 + 2f64.powi(-8) + 2f64.powi(-40)).to_f32(),
            1.0
        );
        assert_eq!(
            <bf16 as Element>::from_f32(1.0 + 2f32.powi(-8)).to_f32(),
            1.0
        ); // tie to even
        assert_eq!(
            <bf16 as Element>::from_f32(1.0 + 3.0 * 2f32.powi(-8)).to_f32(),
            1.0 + 4.0 * 2f32.powi(-8)
        );
        assert_eq!(f32_to_bf16(f32::NAN).to_bits(), 0x7FC0);
        assert_eq!(f32_to_bf16(-f32::NAN).to_bits(), 0x7FC0);
        assert_eq!(f32_to_bf16(f32::INFINITY).to_bits(), 0x7F80);
        assert_eq!(f32_to_bf16(f32::MAX).to_bits(), 0x7F80); // rounds up to inf
        assert_eq!(<f16 as Element>::from_f64(70000.0).to_f32(), f32::INFINITY);
        assert_eq!(<bf16 as Element>::from_f64(70000.0).to_f32(), 70144.0);
        assert_eq!(<f16 as Element>::from_i64(65520).to_f32(), f32::INFINITY);
    }
}
