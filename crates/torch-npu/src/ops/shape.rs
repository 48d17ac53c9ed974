//! Shape arithmetic shared by the adapters: broadcasting.
use npu_kernels::View;

use crate::status::{Error, Result};

/// The broadcast of two shapes (NumPy rules), or PyTorch's error.
pub fn broadcast_shapes(a: &[i64], b: &[i64], op: &str) -> Result<Vec<i64>> {
    let n = a.len().max(b.len());
    let mut out = vec![0i64; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::runtime(format!(
                    "{op}: The size of tensor a ({da}) must match the size of tensor b ({db}) at \
                     non-singleton dimension {i}"
                )))
            }
        };
    }
    Ok(out)
}

/// `src` as a view with `dst`'s sizes, broadcasting with zero strides.
pub fn expand_to(src: &View, sizes: &[i64], op: &str) -> Result<View> {
    if src.sizes.len() > sizes.len() {
        return Err(Error::runtime(format!(
            "{op}: source of shape {:?} cannot be broadcast to {:?}",
            src.sizes, sizes
        )));
    }
    let lead = sizes.len() - src.sizes.len();
    let mut strides = vec![0i64; sizes.len()];
    for (i, (&n, &s)) in src.sizes.iter().zip(&src.strides).enumerate() {
        let target = sizes[lead + i];
        if n == target {
            strides[lead + i] = s;
        } else if n != 1 {
            return Err(Error::runtime(format!(
                "{op}: source of shape {:?} cannot be broadcast to {:?}",
                src.sizes, sizes
            )));
        }
    }
    Ok(View { ptr: src.ptr, dtype: src.dtype, sizes: sizes.to_vec(), strides })
}

