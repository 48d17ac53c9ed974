//! unique (sorted), unique_consecutive and their per-slice forms along a dim. The grouping is
//! computed on the host once ([`unique_groups`], which the caller needs anyway to size the
//! outputs); [`unique_values`] then writes the representatives.

use std::cmp::Ordering;

use crate::dense::{host_values, Dense};
use crate::view::{err, View};
use crate::{DType, KernelError};

/// The groups of equal elements (or slices): a representative input position per group, in
/// output order, the group of every input position, and the group sizes.
#[derive(Debug, Default)]
pub struct UniqueGroups {
    pub first: Vec<i64>,
    pub inverse: Vec<i64>,
    pub counts: Vec<i64>,
}

/// A total order for sorting (NaN last, -0 == 0); grouping uses `==`, so NaNs stay apart.
fn order(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

/// Groups the elements of `input` (`dim` None) or its slices along `dim`: sorted ascending
/// (lexicographically for slices) when `sorted`, else runs of consecutive equal ones.
pub fn unique_groups(input: &View, dim: Option<usize>, sorted: bool) -> Result<UniqueGroups, KernelError> {
    const OP: &str = "unique";
    input.validate(OP)?;
    if input.dtype.is_complex() {
        return Err(err(OP, format!("not implemented for '{}'", input.dtype.name())));
    }
    let (count, width, keys) = match dim {
        None => (input.numel(), 1, keys_of(input)?),
        Some(d) => {
            if d >= input.sizes.len() {
                return Err(err(OP, format!("dim {d} out of range for a {}-d tensor", input.sizes.len())));
            }
            // slices along `d` as rows: move `d` first
            let mut perm: Vec<usize> = (0..input.sizes.len()).collect();
            perm.remove(d);
            perm.insert(0, d);
            let moved = View {
                sizes: perm.iter().map(|&p| input.sizes[p]).collect(),
                strides: perm.iter().map(|&p| input.strides[p]).collect(),
                ..input.clone()
            };
            let n = input.sizes[d] as usize;
            let w = if n == 0 { 0 } else { input.numel() / n };
            (n, w, keys_of(&moved)?)
        }
    };
    let row = |i: usize| &keys[i * width..(i + 1) * width];
    let cmp = |a: usize, b: usize| row(a).iter().zip(row(b)).map(|(&x, &y)| order(x, y)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal);
    let equal = |a: usize, b: usize| row(a).iter().zip(row(b)).all(|(x, y)| x == y);
    let mut idx: Vec<usize> = (0..count).collect();
    if sorted {
        idx.sort_by(|&a, &b| cmp(a, b)); // stable: a group's representative is its first occurrence
    }
    let mut g = UniqueGroups { inverse: vec![0; count], ..Default::default() };
    for (k, &i) in idx.iter().enumerate() {
        if k == 0 || !equal(idx[k - 1], i) {
            g.first.push(i as i64);
            g.counts.push(0);
        }
        let group = g.first.len() - 1;
        g.counts[group] += 1;
        g.inverse[i] = group as i64;
    }
    Ok(g)
}

/// Element values in f64 (exact for every dtype but i64/u64 beyond 2^53, which take i64 keys
/// reinterpreted so that their order is kept).
fn keys_of(v: &View) -> Result<Vec<f64>, KernelError> {
    if matches!(v.dtype, DType::I64) {
        // order-preserving and exact: distinct i64 keep distinct, ordered f64 stand-ins
        let ints = host_values::<i64>(v)?;
        let mut sorted: Vec<i64> = ints.clone();
        sorted.sort_unstable();
        sorted.dedup();
        return Ok(ints.iter().map(|x| sorted.binary_search(x).unwrap_or(0) as f64).collect());
    }
    host_values::<f64>(v)
}

/// `dst` = the representatives: `input.flatten()[first]` (`dim` None) or
/// `input.index_select(dim, first)`.
pub fn unique_values(dst: &View, input: &View, dim: Option<usize>, first: &[i64]) -> Result<(), KernelError> {
    let mut index = first.to_vec();
    let iv = View::contiguous(index.as_mut_ptr() as *mut u8, DType::I64, &[first.len() as i64]);
    match dim {
        Some(d) => crate::gather::index_select(dst, input, d, &iv),
        None => {
            let flat = Dense::of(input, input.dtype)?;
            let flat_view = View { sizes: vec![input.numel() as i64], strides: vec![1], ..flat.view.clone() };
            crate::gather::index_select(dst, &flat_view, 0, &iv)
        }
    }
}
