//! The negative log-likelihood loss (`nll_loss`, `nll_loss2d`) and its backward. Inputs are
//! seen as `[N, C, S]` (S = 1 without spatial dims) with targets `[N, S]`; sums accumulate in
//! f64. A target outside `[0, C)` that is not `ignore_index` is an error, found while the
//! kernel runs.

use crate::elementwise::{loader, storer};
use crate::view::{err, View};
use crate::{DType, KernelError};

/// How per-element losses are combined (ATen's `at::Reduction` numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None = 0,
    Mean = 1,
    Sum = 2,
}

impl Reduction {
    pub fn from_i64(v: i64) -> Option<Reduction> {
        match v {
            0 => Some(Reduction::None),
            1 => Some(Reduction::Mean),
            2 => Some(Reduction::Sum),
            _ => None,
        }
    }
}

const OP: &str = "nll_loss";

/// One element of `v` at element offset `off`, as f64.
unsafe fn get(v: &View, off: isize) -> f64 {
    let mut x = [0f64];
    loader::<f64>(v.dtype, None)(v.ptr.offset(off * v.dtype.size() as isize), 1, &mut x);
    x[0]
}

unsafe fn get_i64(v: &View, off: isize) -> i64 {
    let mut x = [0i64];
    loader::<i64>(v.dtype, None)(v.ptr.offset(off * v.dtype.size() as isize), 1, &mut x);
    x[0]
}

unsafe fn set(v: &View, off: isize, x: f64) {
    storer::<f64>(v.dtype, None)(&[x], v.ptr.offset(off * v.dtype.size() as isize), 1);
}

fn off2(v: &View, a: i64, b: i64) -> isize {
    (a * v.strides[0] + b * v.strides[1]) as isize
}

fn off3(v: &View, a: i64, b: i64, c: i64) -> isize {
    (a * v.strides[0] + b * v.strides[1] + c * v.strides[2]) as isize
}

struct Geometry {
    n: i64,
    c: i64,
    s: i64,
}

fn geometry(input_sizes: &[i64], target: &View, weight: Option<&View>) -> Result<Geometry, KernelError> {
    if input_sizes.len() != 3 || target.sizes.len() != 2 {
        return Err(err(OP, format!("expected input [N, C, S] and target [N, S], got {input_sizes:?} and {:?}", target.sizes)));
    }
    let (n, c, s) = (input_sizes[0], input_sizes[1], input_sizes[2]);
    if target.sizes != [n, s] {
        return Err(err(OP, format!("target size {:?} does not match input size {input_sizes:?}", target.sizes)));
    }
    if target.dtype.is_floating() || target.dtype.is_complex() || target.dtype == DType::Bool {
        return Err(err(OP, format!("expected an integer target, got {}", target.dtype.name())));
    }
    if let Some(w) = weight {
        if w.sizes != [c] {
            return Err(err(OP, format!("weight of size {:?} does not match {c} classes", w.sizes)));
        }
    }
    Ok(Geometry { n, c, s })
}

/// The class of element (i, j), or None when ignored; an error when out of range.
unsafe fn class(target: &View, i: i64, j: i64, c: i64, ignore_index: i64) -> Result<Option<i64>, KernelError> {
    let t = get_i64(target, off2(target, i, j));
    if t == ignore_index {
        return Ok(None);
    }
    if t < 0 || t >= c {
        return Err(err(OP, format!("Target {t} is out of bounds.")));
    }
    Ok(Some(t))
}

/// `out` is `[N, S]` for `Reduction::None`, else 0-dim; `total_weight` is 0-dim (the sum of
/// the weights of the counted targets; 0 with `Reduction::None`).
pub fn nll_loss(
    out: &View,
    total_weight: &View,
    input: &View,
    target: &View,
    weight: Option<&View>,
    reduction: Reduction,
    ignore_index: i64,
) -> Result<(), KernelError> {
    for v in [out, total_weight, input, target].into_iter().chain(weight) {
        v.validate(OP)?;
    }
    let g = geometry(&input.sizes, target, weight)?;
    let want_out: Vec<i64> = if reduction == Reduction::None { vec![g.n, g.s] } else { vec![] };
    if out.sizes != want_out || !total_weight.sizes.is_empty() {
        return Err(err(OP, format!("output of size {:?}, expected {want_out:?}", out.sizes)));
    }
    unsafe {
        let mut sum = 0f64;
        let mut wsum = 0f64;
        for i in 0..g.n {
            for j in 0..g.s {
                let (loss, w) = match class(target, i, j, g.c, ignore_index)? {
                    None => (0.0, 0.0),
                    Some(t) => {
                        let w = weight.map_or(1.0, |wv| get(wv, (t * wv.strides[0]) as isize));
                        (-w * get(input, off3(input, i, t, j)), w)
                    }
                };
                if reduction == Reduction::None {
                    set(out, off2(out, i, j), loss);
                }
                sum += loss;
                wsum += w;
            }
        }
        match reduction {
            Reduction::None => set(total_weight, 0, 0.0),
            Reduction::Sum => {
                set(out, 0, sum);
                set(total_weight, 0, wsum);
            }
            Reduction::Mean => {
                set(out, 0, sum / wsum);
                set(total_weight, 0, wsum);
            }
        }
    }
    Ok(())
}

/// `grad_input` (`[N, C, S]`) of [`nll_loss`]: zero except `-w[t] * g` at each counted target,
/// with `g` from `grad_output` (`[N, S]` for `Reduction::None`, else 0-dim, divided by
/// `total_weight` for `Reduction::Mean`).
pub fn nll_loss_backward(
    grad_input: &View,
    grad_output: &View,
    target: &View,
    weight: Option<&View>,
    reduction: Reduction,
    ignore_index: i64,
    total_weight: &View,
) -> Result<(), KernelError> {
    for v in [grad_input, grad_output, target, total_weight].into_iter().chain(weight) {
        v.validate(OP)?;
    }
    let g = geometry(&grad_input.sizes, target, weight)?;
    let want: Vec<i64> = if reduction == Reduction::None { vec![g.n, g.s] } else { vec![] };
    if grad_output.sizes != want || !total_weight.sizes.is_empty() {
        return Err(err(OP, format!("grad_output of size {:?}, expected {want:?}", grad_output.sizes)));
    }
    grad_input.check_writable(OP)?;
    crate::fill(grad_input, crate::Scalar::Int(0))?;
    unsafe {
        let scale = match reduction {
            Reduction::None => None,
            Reduction::Sum => Some(get(grad_output, 0)),
            Reduction::Mean => Some(get(grad_output, 0) / get(total_weight, 0)),
        };
        for i in 0..g.n {
            for j in 0..g.s {
                let Some(t) = class(target, i, j, g.c, ignore_index)? else { continue };
                let w = weight.map_or(1.0, |wv| get(wv, (t * wv.strides[0]) as isize));
                let go = scale.unwrap_or_else(|| get(grad_output, off2(grad_output, i, j)));
                set(grad_input, off3(grad_input, i, t, j), -w * go);
            }
        }
    }
    Ok(())
}
