//! Element types, numbered exactly like PyTorch's `c10::ScalarType` so the bridge can cast the
//! integer it gets from ATen straight into a `DType`.

/// Element type of a view. The discriminants are `c10::ScalarType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum DType {
    U8 = 0,
    I8 = 1,
    I16 = 2,
    I32 = 3,
    I64 = 4,
    F16 = 5,
    F32 = 6,
    F64 = 7,
    C64 = 9,
    C128 = 10,
    Bool = 11,
    BF16 = 15,
}

impl DType {
    /// Every supported dtype, in discriminant order.
    pub const ALL: [DType; 12] = [
        DType::U8,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F16,
        DType::F32,
        DType::F64,
        DType::C64,
        DType::C128,
        DType::Bool,
        DType::BF16,
    ];

    /// The dtype with this `c10::ScalarType` number, if supported.
    pub fn from_i32(v: i32) -> Option<DType> {
        DType::ALL.iter().copied().find(|d| *d as i32 == v)
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 | DType::Bool => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 | DType::C64 => 8,
            DType::C128 => 16,
        }
    }

    /// Required alignment of one element in bytes (complex numbers align like their parts).
    pub fn align(self) -> usize {
        match self {
            DType::C64 => 4,
            DType::C128 => 8,
            d => d.size(),
        }
    }

    /// PyTorch's name for the dtype (`c10::toString(ScalarType)`).
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "Byte",
            DType::I8 => "Char",
            DType::I16 => "Short",
            DType::I32 => "Int",
            DType::I64 => "Long",
            DType::F16 => "Half",
            DType::F32 => "Float",
            DType::F64 => "Double",
            DType::C64 => "ComplexFloat",
            DType::C128 => "ComplexDouble",
            DType::Bool => "Bool",
            DType::BF16 => "BFloat16",
        }
    }

    /// Real floating-point dtypes (f16, bf16, f32, f64).
    pub fn is_floating(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    pub fn is_complex(self) -> bool {
        matches!(self, DType::C64 | DType::C128)
    }

    /// Integer dtypes, bool excluded.
    pub fn is_integral(self) -> bool {
        matches!(
            self,
            DType::U8 | DType::I8 | DType::I16 | DType::I32 | DType::I64
        )
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_matches_c10() {
        assert_eq!(DType::from_i32(6), Some(DType::F32));
        assert_eq!(DType::from_i32(15), Some(DType::BF16));
        assert_eq!(DType::from_i32(11), Some(DType::Bool));
        assert_eq!(DType::from_i32(8), None); // ComplexHalf: not supported
        assert_eq!(DType::from_i32(-1), None);
        for d in DType::ALL {
            assert_eq!(DType::from_i32(d as i32), Some(d));
            assert!(d.size() % d.align() == 0);
        }
        assert_eq!(DType::C128.size(), 16);
        assert!(DType::BF16.is_floating() && !DType::C64.is_floating() && DType::C64.is_complex());
    }
}
