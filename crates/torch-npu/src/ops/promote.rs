//! PyTorch's type promotion (c10::promoteTypes and at::result_type), for the adapters.
use npu_kernels::DType;

use super::Tensor;

fn is_float(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
}

fn is_complex(d: DType) -> bool {
    matches!(d, DType::C64 | DType::C128)
}

fn category(d: DType) -> u8 {
    match d {
        DType::Bool => 0,
        _ if is_complex(d) => 3,
        _ if is_float(d) => 2,
        _ => 1,
    }
}

fn int_rank(d: DType) -> u8 {
    match d {
        DType::I8 | DType::U8 => 1,
        DType::I16 => 2,
        DType::I32 => 3,
        _ => 4,
    }
}

/// c10::promoteTypes for the dtypes the NPU supports.
pub fn promote(a: DType, b: DType) -> DType {
    use DType::*;
    if a == b {
        return a;
    }
    match (a, b) {
        (Bool, x) | (x, Bool) => x,
        (U8, I8) | (I8, U8) => I16,
        (F16, BF16) | (BF16, F16) => F32,
        (C64, F64) | (F64, C64) => C128,
        _ if category(a) != category(b) => {
            if category(a) > category(b) {
                a
            } else {
                b
            }
        }
        _ if category(a) == 1 => {
            if int_rank(a) >= int_rank(b) {
                a
            } else {
                b
            }
        }
        _ => {
            // Same category, floating or complex: the wider one.
            if a.size() >= b.size() {
                a
            } else {
                b
            }
        }
    }
}

/// An operand of an op, for promotion: a tensor (dimensioned, 0-dim, or a wrapped Python
/// number) or a Scalar argument.
#[derive(Clone, Copy, Debug)]
pub enum Operand {
    Dim(DType),
    ZeroDim(DType),
    Wrapped(DType),
}

impl Operand {
    pub fn of(t: &Tensor) -> Operand {
        if t.is_wrapped_number {
            Operand::Wrapped(t.dtype())
        } else if t.sizes().is_empty() {
            Operand::ZeroDim(t.dtype())
        } else {
            Operand::Dim(t.dtype())
        }
    }

    /// A Scalar argument: Python numbers promote like wrapped numbers.
    pub fn scalar(s: &npu_kernels::Scalar) -> Operand {
        Operand::Wrapped(match s {
            npu_kernels::Scalar::Bool(_) => DType::Bool,
            npu_kernels::Scalar::Int(_) => DType::I64,
            npu_kernels::Scalar::Float(_) => DType::F64,
            npu_kernels::Scalar::Complex(..) => DType::C128,
        })
    }
}

fn join(acc: Option<DType>, d: DType) -> Option<DType> {
    Some(acc.map_or(d, |a| promote(a, d)))
}

/// at::native's combine_categories: a lower-priority group only matters when it is of a
/// higher category.
fn combine(higher: Option<DType>, lower: Option<DType>) -> Option<DType> {
    let Some(h) = higher else { return lower };
    let Some(l) = lower else { return Some(h) };
    if is_complex(h) {
        return Some(h);
    }
    if is_complex(l) {
        return Some(if is_float(h) { if h == DType::F64 { DType::C128 } else { DType::C64 } } else { l });
    }
    if is_float(h) {
        return Some(h);
    }
    if h == DType::Bool || is_float(l) {
        return Some(promote(h, l));
    }
    Some(h)
}

/// at::result_type over the operands. `default_float` is torch.get_default_dtype().
pub fn result_type(operands: &[Operand], default_float: DType) -> DType {
    let (mut dim, mut zero, mut wrapped) = (None, None, None);
    for op in operands {
        match *op {
            Operand::Dim(d) => dim = join(dim, d),
            Operand::ZeroDim(d) => zero = join(zero, d),
            Operand::Wrapped(d) => {
                let d = if is_float(d) {
                    default_float
                } else if is_complex(d) {
                    if default_float == DType::F64 { DType::C128 } else { DType::C64 }
                } else {
                    d
                };
                wrapped = join(wrapped, d)
            }
        }
    }
    combine(dim, combine(zero, wrapped)).unwrap_or(default_float)
}

/// c10::canCast: whether a result of dtype `from` may be written to an output of `to`.
pub fn can_cast(from: DType, to: DType) -> bool {
    !(category(from) > category(to) || (from != DType::Bool && to == DType::Bool))
}

/// Integral and bool inputs of "floating" ops (sqrt, div, ...) compute in the default dtype.
pub fn to_float(d: DType, default_float: DType) -> DType {
    if is_float(d) || is_complex(d) {
        d
    } else {
        default_float
    }
}
