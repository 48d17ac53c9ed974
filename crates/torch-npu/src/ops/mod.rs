//! The native op table: ATen op names and the Rust adapters that serve them. An adapter reads
//! the boxed arguments, checks on the host what needs no data (devices, dtypes, shapes), then
//! launches a kernel from npu-kernels on the device's current stream.
use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

use npu_runtime as rt;

use npu_kernels::{BinaryOp, UnaryOp};

use crate::status::{ffi_call, Error, Result};
use elementwise::{Kind, Variant};

mod activation;
mod amp;
mod advanced_index;
mod attention;
mod conv;
mod copy;
mod counting;
mod elementwise;
mod embedding_bag;
mod index;
mod linalg;
mod loss;
mod norm;
mod optim;
mod pad;
mod pair_loss;
mod pool;
mod reduce;
mod scan;
mod scatter;
mod search;
mod promote;
pub mod ctx;
mod fill;
mod foreach;
mod random;
pub mod shape;
pub mod softmax;
mod sort;
mod ternary;
mod tri;
mod unique;
mod upsample;

pub use ctx::{Ctx, DeviceKind, Tensor};

type OpFn = fn(&Ctx) -> Result<()>;

/// How an op name is served: a dedicated adapter, or a generic elementwise one.
#[derive(Clone, Copy)]
enum Adapter {
    Fn(OpFn),
    Binary(BinaryOp, Kind, Variant, Option<usize>),
    Unary(UnaryOp, Kind, Variant),
    /// div with rounding_mode (None, "trunc" or "floor").
    DivMode(Variant),
    Foreach(foreach::Spec),
    Clamp(Variant),
}

impl Adapter {
    fn run(self, ctx: &Ctx) -> Result<()> {
        match self {
            Adapter::Fn(f) => f(ctx),
            Adapter::Binary(op, kind, variant, alpha) => elementwise::binary(ctx, op, kind, variant, alpha),
            Adapter::Unary(op, kind, variant) => elementwise::unary(ctx, op, kind, variant),
            Adapter::DivMode(variant) => elementwise::div_mode(ctx, variant),
            Adapter::Foreach(spec) => foreach::run(ctx, spec),
            Adapter::Clamp(variant) => elementwise::clamp(ctx, variant),
        }
    }
}

const CORE_OPS: &[(&str, OpFn)] = &[
    ("_copy_from", copy::copy_from),
    ("fill_.Scalar", fill::fill_scalar),
    ("fill_.Tensor", fill::fill_tensor),
    ("zero_", fill::zero),
    ("arange.start_out", fill::arange_out),
    ("linspace.out", |c| fill::linspace_out(c, false)),
    ("logspace.out", |c| fill::linspace_out(c, true)),
    ("eye.out", |c| fill::eye_out(c, false)),
    ("eye.m_out", |c| fill::eye_out(c, true)),
    ("rsub.Tensor", |c| elementwise::rsub(c, Variant::Functional)),
    ("rsub.Scalar", |c| elementwise::rsub(c, Variant::Functional)),
    ("rsub.Tensor_out", |c| elementwise::rsub(c, Variant::Out)),
    ("rsub.Scalar_out", |c| elementwise::rsub(c, Variant::Out)),
    ("nan_to_num", |c| elementwise::nan_to_num(c, Variant::Functional)),
    ("nan_to_num_", |c| elementwise::nan_to_num(c, Variant::InPlace)),
    ("nan_to_num.out", |c| elementwise::nan_to_num(c, Variant::Out)),
    ("uniform_", random::uniform),
    ("normal_", random::normal),
    ("bernoulli_.float", random::bernoulli_float),
    ("bernoulli_.Tensor", random::bernoulli_tensor),
    ("random_", random::random),
    ("random_.from", random::random_from),
    ("random_.to", random::random_to),
    ("exponential_", random::exponential),
    ("geometric_", random::geometric),
    ("log_normal_", random::log_normal),
    ("cauchy_", random::cauchy),
    ("randperm.generator_out", random::randperm),
    ("normal.Tensor_float", random::normal_tensor_float),
    ("normal.float_Tensor", random::normal_float_tensor),
    ("normal.Tensor_Tensor", random::normal_tensor_tensor),
    ("native_dropout", random::native_dropout),
    ("native_dropout_backward", random::native_dropout_backward),
    ("sum", reduce::sum),
    ("sum.dim_IntList", reduce::sum_dim),
    ("sum.IntList_out", reduce::sum_out),
    ("mean.dim", reduce::mean_dim),
    ("mean.out", reduce::mean_out),
    ("max", reduce::max),
    ("min", reduce::min),
    ("masked_select", index::masked_select),
    ("cat", index::cat),
    ("cat.out", index::cat_out),
    ("index_select", index::index_select),
    ("index_select.out", index::index_select_out),
    ("embedding_dense_backward", index::embedding_dense_backward),
    ("flip", index::flip),
    ("roll", index::roll),
    ("roll.out", index::roll_out),
    ("flip.out", index::flip_out),
    ("unfold_backward", index::unfold_backward),
    ("index_add", index::index_add),
    ("index_add_", index::index_add_),
    ("index_add.out", index::index_add_out),
    ("convolution_overrideable", conv::convolution),
    ("convolution_backward_overrideable", conv::convolution_backward),
    ("mm", linalg::mm),
    ("mm.out", linalg::mm_out),
    ("bmm", linalg::bmm),
    ("bmm.out", linalg::bmm_out),
    ("addmm", linalg::addmm),
    ("addmm_", linalg::addmm_),
    ("addmm.out", linalg::addmm_out),
    ("baddbmm", linalg::baddbmm),
    ("baddbmm_", linalg::baddbmm_),
    ("baddbmm.out", linalg::baddbmm_out),
    ("addbmm", linalg::addbmm),
    ("addbmm_", linalg::addbmm_),
    ("addbmm.out", linalg::addbmm_out),
    ("addmv", linalg::addmv),
    ("addmv_", linalg::addmv_),
    ("addmv.out", linalg::addmv_out),
    ("dot", linalg::dot),
    ("dot.out", linalg::dot_out),
    ("vdot", linalg::dot),
    ("vdot.out", linalg::dot_out),
];

/// Binary families: (name, op, result kind, has alpha). Each gets .Tensor, _.Tensor, .out,
/// and, unless noted, .Scalar and _.Scalar.
const BINARY: &[(&str, BinaryOp, Kind, bool)] = &[
    ("add", BinaryOp::Add, Kind::Promoted, true),
    ("sub", BinaryOp::Sub, Kind::Promoted, true),
    ("mul", BinaryOp::Mul, Kind::Promoted, false),
    ("div", BinaryOp::Div, Kind::Float, false),
];

/// Comparisons: .Tensor, .Scalar, _.Tensor, _.Scalar, .Tensor_out, .Scalar_out.
const COMPARE: &[(&str, BinaryOp)] = &[
    ("eq", BinaryOp::Eq),
    ("ne", BinaryOp::Ne),
    ("lt", BinaryOp::Lt),
    ("le", BinaryOp::Le),
    ("gt", BinaryOp::Gt),
    ("ge", BinaryOp::Ge),
];

/// Bitwise and logical families with .Tensor, _.Tensor, .Tensor_out.
const BITWISE: &[(&str, BinaryOp, Kind)] = &[
    ("bitwise_and", BinaryOp::BitAnd, Kind::Promoted),
    ("bitwise_or", BinaryOp::BitOr, Kind::Promoted),
    ("bitwise_xor", BinaryOp::BitXor, Kind::Promoted),
];

/// Binary ops whose overloads do not follow the add/sub pattern, named one by one.
const BINARY_NAMED: &[(BinaryOp, Kind, &[(&str, Variant)])] = {
    use Variant::*;
    &[
        (BinaryOp::Remainder, Kind::Promoted, &[
            ("remainder.Tensor", Functional), ("remainder.Scalar", Functional),
            ("remainder_.Tensor", InPlace), ("remainder_.Scalar", InPlace),
            ("remainder.Tensor_out", Out), ("remainder.Scalar_out", Out),
            ("remainder.Scalar_Tensor", Functional),
        ]),
        (BinaryOp::Fmod, Kind::Promoted, &[
            ("fmod.Tensor", Functional), ("fmod.Scalar", Functional), ("fmod_.Tensor", InPlace),
            ("fmod_.Scalar", InPlace), ("fmod.Tensor_out", Out), ("fmod.Scalar_out", Out),
        ]),
        (BinaryOp::Atan2, Kind::Float, &[("atan2", Functional), ("atan2_", InPlace), ("atan2.out", Out)]),
        (BinaryOp::Hypot, Kind::Promoted, &[("hypot", Functional), ("hypot_", InPlace), ("hypot.out", Out)]),
        (BinaryOp::Maximum, Kind::Promoted, &[("maximum", Functional), ("maximum.out", Out)]),
        // clamp with one bound is maximum / minimum with PyTorch's promotion
        (BinaryOp::Maximum, Kind::Promoted, &[
            ("clamp_min", Functional), ("clamp_min_", InPlace), ("clamp_min.out", Out),
            ("clamp_min.Tensor", Functional), ("clamp_min_.Tensor", InPlace), ("clamp_min.Tensor_out", Out),
        ]),
        (BinaryOp::Minimum, Kind::Promoted, &[
            ("clamp_max", Functional), ("clamp_max_", InPlace), ("clamp_max.out", Out),
            ("clamp_max.Tensor", Functional), ("clamp_max_.Tensor", InPlace), ("clamp_max.Tensor_out", Out),
        ]),
        (BinaryOp::Minimum, Kind::Promoted, &[("minimum", Functional), ("minimum.out", Out)]),
        (BinaryOp::Fmax, Kind::Promoted, &[("fmax", Functional), ("fmax.out", Out)]),
        (BinaryOp::Fmin, Kind::Promoted, &[("fmin", Functional), ("fmin.out", Out)]),
        (BinaryOp::Copysign, Kind::Float, &[
            ("copysign.Tensor", Functional), ("copysign.Scalar", Functional),
            ("copysign_.Tensor", InPlace), ("copysign_.Scalar", InPlace),
            ("copysign.out", Out), ("copysign.Scalar_out", Out),
        ]),
        (BinaryOp::Xlogy, Kind::Float, &[("xlogy.Tensor", Functional), ("xlogy_.Tensor", InPlace)]),
        (BinaryOp::LogicalAnd, Kind::Bool, &[("logical_and", Functional), ("logical_and_", InPlace), ("logical_and.out", Out)]),
        (BinaryOp::LogicalOr, Kind::Bool, &[("logical_or", Functional), ("logical_or_", InPlace), ("logical_or.out", Out)]),
        (BinaryOp::LogicalXor, Kind::Bool, &[("logical_xor", Functional), ("logical_xor_", InPlace), ("logical_xor.out", Out)]),
        (BinaryOp::Shl, Kind::Promoted, &[
            ("bitwise_left_shift.Tensor", Functional), ("bitwise_left_shift_.Tensor", InPlace),
            ("bitwise_left_shift.Tensor_out", Out), ("bitwise_left_shift.Scalar_Tensor", Functional),
        ]),
        (BinaryOp::Shr, Kind::Promoted, &[
            ("bitwise_right_shift.Tensor", Functional), ("bitwise_right_shift_.Tensor", InPlace),
            ("bitwise_right_shift.Tensor_out", Out), ("bitwise_right_shift.Scalar_Tensor", Functional),
        ]),
        (BinaryOp::DivFloor, Kind::Promoted, &[
            ("floor_divide", Functional), ("floor_divide.Scalar", Functional),
            ("floor_divide_.Tensor", InPlace), ("floor_divide_.Scalar", InPlace),
            ("floor_divide.out", Out), ("floor_divide.Scalar_out", Out),
        ]),
    ]
};

/// div with a rounding mode: (name, variant).
const DIV_MODE: &[(&str, Variant)] = &[
    ("div.Tensor_mode", Variant::Functional),
    ("div_.Tensor_mode", Variant::InPlace),
    ("div.out_mode", Variant::Out),
    ("div.Scalar_mode", Variant::Functional),
    ("div_.Scalar_mode", Variant::InPlace),
];

/// Unary families: name, name_, name.out.
const UNARY: &[(&str, UnaryOp, Kind)] = &[
    ("abs", UnaryOp::Abs, Kind::Promoted),
    ("neg", UnaryOp::Neg, Kind::Promoted),
    ("ceil", UnaryOp::Ceil, Kind::Promoted),
    ("floor", UnaryOp::Floor, Kind::Promoted),
    ("trunc", UnaryOp::Trunc, Kind::Promoted),
    ("sqrt", UnaryOp::Sqrt, Kind::Float),
    ("rsqrt", UnaryOp::Rsqrt, Kind::Float),
    ("exp", UnaryOp::Exp, Kind::Float),
    ("log", UnaryOp::Log, Kind::Float),
    ("sin", UnaryOp::Sin, Kind::Float),
    ("cos", UnaryOp::Cos, Kind::Float),
    ("tanh", UnaryOp::Tanh, Kind::Float),
    ("sigmoid", UnaryOp::Sigmoid, Kind::Float),
    ("reciprocal", UnaryOp::Reciprocal, Kind::Float),
    ("erf", UnaryOp::Erf, Kind::Float),
    ("erfc", UnaryOp::Erfc, Kind::Float),
    ("expm1", UnaryOp::Expm1, Kind::Float),
    ("exp2", UnaryOp::Exp2, Kind::Float),
    ("log2", UnaryOp::Log2, Kind::Float),
    ("log10", UnaryOp::Log10, Kind::Float),
    ("log1p", UnaryOp::Log1p, Kind::Float),
    ("tan", UnaryOp::Tan, Kind::Float),
    ("asin", UnaryOp::Asin, Kind::Float),
    ("acos", UnaryOp::Acos, Kind::Float),
    ("atan", UnaryOp::Atan, Kind::Float),
    ("sinh", UnaryOp::Sinh, Kind::Float),
    ("cosh", UnaryOp::Cosh, Kind::Float),
    ("asinh", UnaryOp::Asinh, Kind::Float),
    ("acosh", UnaryOp::Acosh, Kind::Float),
    ("atanh", UnaryOp::Atanh, Kind::Float),
    ("relu", UnaryOp::Relu, Kind::Promoted),
    ("silu", UnaryOp::Silu, Kind::Promoted),
    ("round", UnaryOp::Round, Kind::Promoted),
    ("frac", UnaryOp::Frac, Kind::Promoted),
    ("sign", UnaryOp::Sign, Kind::Promoted),
    // sgn is sign for real numbers (complex inputs take the CPU fallback)
    ("sgn", UnaryOp::Sign, Kind::Promoted),
    ("bitwise_not", UnaryOp::BitwiseNot, Kind::Promoted),
];

/// Predicates: functional only, bool results.
const PREDICATES: &[(&str, UnaryOp)] = &[
    ("isnan", UnaryOp::IsNan),
    ("isinf", UnaryOp::IsInf),
    ("logical_not", UnaryOp::LogicalNot),
    ("isposinf", UnaryOp::IsPosInf),
    ("isneginf", UnaryOp::IsNegInf),
    ("signbit", UnaryOp::Signbit),
];

fn build_table() -> Vec<(String, Adapter)> {
    use Variant::*;
    let mut t: Vec<(String, Adapter)> =
        CORE_OPS.iter().map(|(n, f)| (n.to_string(), Adapter::Fn(*f))).collect();
    for &(name, op, kind, alpha) in BINARY {
        let a = alpha.then_some(2);
        t.push((format!("{name}.Tensor"), Adapter::Binary(op, kind, Functional, a)));
        t.push((format!("{name}_.Tensor"), Adapter::Binary(op, kind, InPlace, a)));
        t.push((format!("{name}.out"), Adapter::Binary(op, kind, Out, a)));
        t.push((format!("{name}.Scalar"), Adapter::Binary(op, kind, Functional, a)));
        t.push((format!("{name}_.Scalar"), Adapter::Binary(op, kind, InPlace, a)));
    }
    for &(op, kind, names) in BINARY_NAMED {
        for &(name, variant) in names {
            t.push((name.to_string(), Adapter::Binary(op, kind, variant, None)));
        }
    }
    for &(name, variant) in DIV_MODE {
        t.push((name.to_string(), Adapter::DivMode(variant)));
    }
    for &(name, f) in activation::OPS.iter().chain(amp::OPS).chain(advanced_index::OPS).chain(advanced_index::SEARCH_OPS).chain(attention::OPS).chain(optim::OPS).chain(pad::OPS).chain(pair_loss::OPS).chain(scan::OPS).chain(scatter::OPS).chain(sort::OPS).chain(softmax::OPS).chain(loss::OPS).chain(ternary::OPS).chain(norm::OPS).chain(pool::OPS).chain(tri::OPS).chain(reduce::OPS).chain(upsample::OPS).chain(counting::OPS).chain(search::OPS).chain(unique::OPS).chain(index::MASK_OPS).chain(embedding_bag::OPS) {
        t.push((name.to_string(), Adapter::Fn(f)));
    }
    for (name, spec) in foreach::table() {
        t.push((name, Adapter::Foreach(spec)));
    }
    for (name, variant) in [("clamp", Functional), ("clamp_", InPlace), ("clamp.out", Out), ("clamp.Tensor", Functional), ("clamp_.Tensor", InPlace), ("clamp.Tensor_out", Out)] {
        t.push((name.to_string(), Adapter::Clamp(variant)));
    }
    for name in ["pow.Tensor_Tensor", "pow.Tensor_Scalar", "pow.Scalar"] {
        let op = BinaryOp::Pow;
        t.push((name.to_string(), Adapter::Binary(op, Kind::Promoted, Functional, None)));
        t.push((format!("{name}_out"), Adapter::Binary(op, Kind::Promoted, Out, None)));
    }
    t.push(("pow_.Scalar".into(), Adapter::Binary(BinaryOp::Pow, Kind::Promoted, InPlace, None)));
    t.push(("pow_.Tensor".into(), Adapter::Binary(BinaryOp::Pow, Kind::Promoted, InPlace, None)));
    for &(name, op) in COMPARE {
        t.push((format!("{name}.Tensor"), Adapter::Binary(op, Kind::Bool, Functional, None)));
        t.push((format!("{name}.Scalar"), Adapter::Binary(op, Kind::Bool, Functional, None)));
        t.push((format!("{name}_.Tensor"), Adapter::Binary(op, Kind::Bool, InPlace, None)));
        t.push((format!("{name}_.Scalar"), Adapter::Binary(op, Kind::Bool, InPlace, None)));
        t.push((format!("{name}.Tensor_out"), Adapter::Binary(op, Kind::Bool, Out, None)));
        t.push((format!("{name}.Scalar_out"), Adapter::Binary(op, Kind::Bool, Out, None)));
    }
    for &(name, op, kind) in BITWISE {
        t.push((format!("{name}.Tensor"), Adapter::Binary(op, kind, Functional, None)));
        t.push((format!("{name}_.Tensor"), Adapter::Binary(op, kind, InPlace, None)));
        t.push((format!("{name}.Tensor_out"), Adapter::Binary(op, kind, Out, None)));
    }
    for &(name, op, kind) in UNARY {
        t.push((name.to_string(), Adapter::Unary(op, kind, Functional)));
        t.push((format!("{name}_"), Adapter::Unary(op, kind, InPlace)));
        t.push((format!("{name}.out"), Adapter::Unary(op, kind, Out)));
    }
    for &(name, op) in PREDICATES {
        t.push((name.to_string(), Adapter::Unary(op, Kind::Bool, Functional)));
    }
    // logical_not also writes 0/1 into tensors of any dtype
    t.push(("logical_not_".into(), Adapter::Unary(UnaryOp::LogicalNot, Kind::Bool, InPlace)));
    t.push(("logical_not.out".into(), Adapter::Unary(UnaryOp::LogicalNot, Kind::Bool, Out)));
    t
}

/// Launches `work` on the current stream of `device`, naming it `op` in asynchronous errors.
pub fn launch<F>(op: &str, device: i32, work: F) -> Result<()>
where
    F: FnOnce() -> std::result::Result<(), String> + Send + 'static,
{
    let stream = rt::current_stream(device)?;
    stream.launch(op, Box::new(work))?;
    Ok(())
}

/// Work on at most this many elements runs on the calling thread when the stream is idle and
/// its worker parked (`Stream::launch_small`): below it waking the worker costs more than the
/// kernel, and the result stays in the cache of the core that reads it next. A worker still
/// awake takes it instead, and runs it while the caller prepares the next op.
const INLINE_MAX_ELEMENTS: usize = 4096;

/// `launch` for work on `numel` elements that launches nothing itself.
pub fn launch_sized<F>(op: &str, device: i32, numel: usize, work: F) -> Result<()>
where
    F: FnOnce() -> std::result::Result<(), String> + Send + 'static,
{
    if numel > INLINE_MAX_ELEMENTS {
        return launch(op, device, work);
    }
    rt::current_stream(device)?.launch_small(op, work)?;
    Ok(())
}

/// The npu device all `tensors` are on. 0-dim CPU tensors are allowed (read as scalars).
pub fn common_device(op: &str, tensors: &[&Tensor]) -> Result<i32> {
    let mut device: Option<&Tensor> = None;
    for t in tensors {
        let ok = match (t.device, device) {
            (DeviceKind::Npu, None) => {
                device = Some(t);
                true
            }
            (DeviceKind::Npu, Some(d)) => d.index == t.index,
            (DeviceKind::Cpu, _) => t.sizes().is_empty(),
            (DeviceKind::Other, _) => false,
        };
        if !ok {
            let first = device.map_or_else(|| "npu".to_string(), |d| d.describe_device());
            return Err(Error::runtime(format!(
                "Expected all tensors to be on the same device, but found at least two devices, \
                 {first} and {}! (when checking arguments for {op})",
                t.describe_device()
            )));
        }
    }
    device
        .map(|d| d.index)
        .ok_or_else(|| Error::runtime(format!("{op}: expected at least one npu tensor")))
}

/// An entry of the op table: the name it is registered under ("add.Tensor"), the schema
/// name errors give ("aten::add"), and its adapter.
struct Entry {
    name: std::ffi::CString,
    schema: String,
    adapter: Adapter,
}

fn table() -> &'static [Entry] {
    static TABLE: OnceLock<Vec<Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        build_table()
            .into_iter()
            .map(|(n, adapter)| Entry {
                schema: format!("aten::{}", n.split('.').next().unwrap_or(&n)),
                name: std::ffi::CString::new(n).expect("op names have no NUL"),
                adapter,
            })
            .collect()
    })
}

pub fn names() -> impl Iterator<Item = &'static str> {
    table().iter().map(|e| e.name.to_str().unwrap_or(""))
}

#[no_mangle]
pub extern "C" fn tnpu_op_count() -> usize {
    table().len()
}

#[no_mangle]
pub extern "C" fn tnpu_op_name(index: usize) -> *const c_char {
    table().get(index).map_or(std::ptr::null(), |e| e.name.as_ptr())
}

/// # Safety
/// `ctx` is the shim's call context for this op.
#[no_mangle]
pub unsafe extern "C" fn tnpu_op_run(index: usize, ctx: *mut c_void) -> i32 {
    let Some(entry) = table().get(index) else {
        return crate::status::set_error(Error::runtime("unknown npu op"));
    };
    ffi_call(|| {
        let ctx = Ctx::new(ctx, &entry.schema);
        entry.adapter.run(&ctx).map_err(|mut e| {
            if !e.msg.contains(ctx.op) {
                e.msg = format!("{}: {}", ctx.op, e.msg);
            }
            e
        })
    })
}
