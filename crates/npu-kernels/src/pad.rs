//! Reflection and replication padding of the last 1–3 dims (negative pads crop), and their
//! backward. Every output position reads one input position (mirrored without repeating the
//! edge, or clamped to the edge); the backward adds each output gradient into the input
//! position it read, plane by plane in output order (as PyTorch's CPU loop), planes in parallel.

use crate::scatter::Access;
use crate::view::{err, par_ranges, Ptr, View};
use crate::KernelError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Reflect,
    Replicate,
}

/// Per padded dim: for each output index, the input index it reads.
fn index_maps(op: &str, sizes: &[i64], pads: &[i64], mode: PadMode) -> Result<Vec<Vec<i64>>, KernelError> {
    let k = pads.len() / 2;
    let rank = sizes.len();
    (0..k)
        .map(|j| {
            // pads list the last dim first: (left, right) pairs
            let d = rank - 1 - j;
            let (l, r, n) = (pads[2 * j], pads[2 * j + 1], sizes[d]);
            // a negative pad crops; the result must keep at least one element
            if n + l + r < 1 {
                return Err(err(op, format!("input dimension {d} of size {n} is too small for padding ({l}, {r})")));
            }
            if mode == PadMode::Reflect && (l >= n || r >= n) {
                return Err(err(op, format!(
                    "Padding size should be less than the corresponding input dimension, but got: padding ({l}, {r}) at dimension {d} of input {sizes:?}"
                )));
            }
            if n == 0 && l + r > 0 {
                return Err(err(op, format!("input dimension {d} is empty and cannot be padded")));
            }
            Ok((0..n + l + r)
                .map(|o| {
                    let i = o - l;
                    match mode {
                        PadMode::Reflect if i < 0 => -i,
                        PadMode::Reflect if i >= n => 2 * (n - 1) - i,
                        PadMode::Reflect => i,
                        PadMode::Replicate => i.clamp(0, n - 1),
                    }
                })
                .collect())
        })
        .collect()
}

struct Plan {
    /// planes (leading dims) of the small and the padded view
    planes: Vec<(isize, isize)>,
    /// output sizes of the padded dims, outermost first, and each dim's map
    out_sizes: Vec<i64>,
    maps: Vec<Vec<i64>>,
    small_strides: Vec<i64>,
    big_strides: Vec<i64>,
}

fn plan(op: &str, small: &View, big: &View, pads: &[i64], mode: PadMode) -> Result<Plan, KernelError> {
    small.validate(op)?;
    big.validate(op)?;
    let (rank, k) = (small.sizes.len(), pads.len() / 2);
    if pads.len() % 2 != 0 || k == 0 || k > rank || big.sizes.len() != rank || small.dtype != big.dtype {
        return Err(err(op, format!("bad padding {pads:?} for views {:?} and {:?}", small.sizes, big.sizes)));
    }
    let mut maps = index_maps(op, &small.sizes, pads, mode)?;
    maps.reverse(); // outermost padded dim first
    let lead = rank - k;
    let out_sizes: Vec<i64> = maps.iter().map(|m| m.len() as i64).collect();
    if big.sizes[..lead] != small.sizes[..lead] || big.sizes[lead..] != out_sizes[..] {
        return Err(err(op, format!("padded view {:?} does not match {:?} padded by {pads:?}", big.sizes, small.sizes)));
    }
    let dims = |v: &View| (0..lead).map(|d| (v.sizes[d], v.strides[d])).collect::<Vec<_>>();
    let (ps, pb) = (crate::gather::offsets(&dims(small)), crate::gather::offsets(&dims(big)));
    Ok(Plan {
        planes: ps.into_iter().zip(pb).collect(),
        out_sizes,
        maps,
        small_strides: small.strides[lead..].to_vec(),
        big_strides: big.strides[lead..].to_vec(),
    })
}

impl Plan {
    /// Calls `f(small offset, big offset)` for every padded position of one plane, in order.
    fn each(&self, plane: usize, mut f: impl FnMut(isize, isize)) {
        let (s0, b0) = self.planes[plane];
        let count: i64 = self.out_sizes.iter().product();
        let mut pos = vec![0i64; self.out_sizes.len()];
        for _ in 0..count {
            let (mut so, mut bo) = (s0, b0);
            for (j, &p) in pos.iter().enumerate() {
                so += (self.maps[j][p as usize] * self.small_strides[j]) as isize;
                bo += (p * self.big_strides[j]) as isize;
            }
            f(so, bo);
            crate::view::next_index(&mut pos, &self.out_sizes);
        }
    }
}

/// `dst = pad(src)` with `pads` as `F.pad` lists them (last dim first, left then right).
pub fn pad(dst: &View, src: &View, pads: &[i64], mode: PadMode) -> Result<(), KernelError> {
    let op = "pad";
    let p = plan(op, src, dst, pads, mode)?;
    dst.check_writable(op)?;
    if dst.numel() == 0 {
        return Ok(());
    }
    let size = src.dtype.size();
    let (sp, dp) = (Ptr::new(src.ptr), Ptr::new(dst.ptr));
    par_ranges(p.planes.len(), 1, |planes| {
        for plane in planes {
            p.each(plane, |so, bo| unsafe { std::ptr::copy_nonoverlapping(sp.byte_at(so, size), dp.byte_at(bo, size), size) });
        }
    });
    Ok(())
}

/// The gradient of [`pad`]: `grad_in` (zeroed here) accumulates every element of `grad_out`
/// at the input position it was read from.
pub fn pad_backward(grad_in: &View, grad_out: &View, pads: &[i64], mode: PadMode) -> Result<(), KernelError> {
    let op = "pad_backward";
    let p = plan(op, grad_in, grad_out, pads, mode)?;
    grad_in.check_writable(op)?;
    if grad_in.dtype.is_complex() {
        return Err(err(op, format!("not implemented for '{}'", grad_in.dtype.name())));
    }
    crate::fill::fill(grad_in, crate::Scalar::Int(0))?;
    if grad_out.numel() == 0 {
        return Ok(());
    }
    let size = grad_in.dtype.size();
    let (ip, op_) = (Ptr::new(grad_in.ptr), Ptr::new(grad_out.ptr));
    let acc = Access::new(grad_in.dtype);
    par_ranges(p.planes.len(), 1, |planes| {
        for plane in planes {
            p.each(plane, |so, bo| unsafe {
                let target = ip.byte_at(so, size);
                acc.set(target, acc.add(acc.get(target), acc.get(op_.byte_at(bo, size))));
            });
        }
    });
    Ok(())
}
