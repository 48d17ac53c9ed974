//! Host scalars (fill values) and PyTorch's overflow check for them.

use crate::convert::Element;
use crate::dtype::DType;
use crate::KernelError;

/// A scalar argument, as `c10::Scalar` carries it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Complex(f64, f64),
}

impl Scalar {
    /// Converts without checking, with the same rules as a tensor copy.
    pub fn to_element<T: Element>(self) -> T {
        match self {
            Scalar::Bool(b) => T::from_bool(b),
            Scalar::Int(i) => T::from_i64(i),
            Scalar::Float(f) => T::from_f64(f),
            Scalar::Complex(re, im) => T::from_complex(re, im),
        }
    }

    /// PyTorch's `checked_convert`: `fill_(300)` on an int8 tensor is an error, not a wrap.
    /// Message as in c10: "value cannot be converted to type int8_t without overflow".
    pub fn check_fits(self, dtype: DType) -> Result<(), KernelError> {
        let overflows = match (self, dtype) {
            (_, DType::Bool) | (Scalar::Bool(_), _) => false, // toBool() is `!= 0`, never checked
            (Scalar::Int(i), d) => int_overflows(i, component(d)),
            (Scalar::Float(f), d) => float_overflows(f, component(d)),
            (Scalar::Complex(re, im), d) if d.is_complex() => {
                float_overflows(re, component(d)) || float_overflows(im, component(d))
            }
            // complex -> real overflows when the imaginary part is non-zero (NaN included)
            (Scalar::Complex(re, im), d) => im != 0.0 || float_overflows(re, d),
        };
        if overflows {
            return Err(KernelError(format!(
                "value cannot be converted to type {} without overflow",
                c_type_name(dtype)
            )));
        }
        Ok(())
    }
}

/// Complex dtypes are checked per component.
fn component(d: DType) -> DType {
    match d {
        DType::C64 => DType::F32,
        DType::C128 => DType::F64,
        d => d,
    }
}

fn int_range(d: DType) -> Option<(i64, i64)> {
    Some(match d {
        DType::U8 => (0, u8::MAX as i64),
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::I64 => (i64::MIN, i64::MAX),
        _ => return None,
    })
}

pub(crate) fn float_max(d: DType) -> f64 {
    match d {
        DType::F16 => 65504.0,
        DType::BF16 => 3.389_531_389_251_535_5e38,
        DType::F32 => f32::MAX as f64,
        _ => f64::MAX,
    }
}

fn int_overflows(i: i64, d: DType) -> bool {
    match d {
        // c10 lets negative values wrap into unsigned types ("a - b" as "a + 255 * b")
        DType::U8 => !(-255..=255).contains(&i),
        d if d.is_integral() => {
            let (lo, hi) = int_range(d).unwrap_or((i64::MIN, i64::MAX));
            i < lo || i > hi
        }
        d => (i as f64).abs() > float_max(d),
    }
}

fn float_overflows(f: f64, d: DType) -> bool {
    match int_range(d) {
        // Measured on torch 2.15: the bound below is inclusive, the one above is max + 1
        // (127.9 fills int8 with 127, 128.0 and -128.5 are errors).
        Some((lo, hi)) => f.is_nan() || f < lo as f64 || f >= hi as f64 + 1.0,
        None => f.is_finite() && f.abs() > float_max(d),
    }
}

/// The C++ type name c10 puts in its overflow message.
pub(crate) fn c_type_name(d: DType) -> &'static str {
    match d {
        DType::U8 => "uint8_t",
        DType::I8 => "int8_t",
        DType::I16 => "int16_t",
        DType::I32 => "int",
        DType::I64 => "int64_t",
        DType::F16 => "c10::Half",
        DType::F32 => "float",
        DType::F64 => "double",
        DType::C64 => "c10::complex<float>",
        DType::C128 => "c10::complex<double>",
        DType::Bool => "bool",
        DType::BF16 => "c10::BFloat16",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(s: Scalar, d: DType) -> bool {
        s.check_fits(d).is_ok()
    }

    #[test]
    fn overflow_rules_match_torch() {
        use DType::{Bool, BF16, C128, C64, F16, F32, I32, I64, I8, U8};
        use Scalar::{Complex, Float, Int};
        assert!(!fits(Int(300), I8) && !fits(Int(-129), I8) && fits(Int(-128), I8));
        assert!(fits(Int(-255), U8) && !fits(Int(-256), U8) && !fits(Int(256), U8));
        assert!(fits(Float(255.99), U8) && !fits(Float(256.0), U8) && !fits(Float(-1e-9), U8));
        assert!(fits(Float(-0.0), U8) && fits(Float(127.9), I8) && !fits(Float(-128.5), I8));
        assert!(fits(Float(2147483647.5), I32) && !fits(Float(f64::NAN), I32));
        assert!(fits(Float(-(2f64.powi(63))), I64) && !fits(Float(2f64.powi(63)), I64));
        assert!(!fits(Float(f64::INFINITY), I8));
        assert!(fits(Float(65504.0), F16) && !fits(Float(65504.1), F16) && !fits(Int(70000), F16));
        assert!(fits(Float(f64::NEG_INFINITY), F16) && fits(Float(f64::NAN), F32));
        assert!(
            !fits(Float(1e300), F32) && !fits(Float(3.39e38), BF16) && fits(Float(3.3895e38), BF16)
        );
        assert!(!fits(Complex(1.0, 2.0), F32) && fits(Complex(2.0, 0.0), I32));
        assert!(!fits(Complex(1.0, f64::NAN), F32) && fits(Complex(f64::NAN, 0.0), F32));
        assert!(
            !fits(Float(1e300), C64) && !fits(Complex(1.0, 1e300), C64) && fits(Float(1e300), C128)
        );
        assert!(fits(Int(2), Bool) && fits(Float(f64::NAN), Bool) && fits(Complex(0.0, 2.0), Bool));
        assert!(fits(Scalar::Bool(true), I8));
        let e = Int(300).check_fits(I8).unwrap_err();
        assert_eq!(
            e.0,
            "value cannot be converted to type int8_t without overflow"
        );
    }

    #[test]
    fn conversion() {
        assert_eq!(Scalar::Int(-1).to_element::<u8>(), 255);
        assert_eq!(Scalar::Float(-3.7).to_element::<i8>(), -3);
        assert_eq!(Scalar::Complex(2.5, 0.0).to_element::<f32>(), 2.5);
        assert_eq!(Scalar::Bool(true).to_element::<f64>(), 1.0);
    }
}
