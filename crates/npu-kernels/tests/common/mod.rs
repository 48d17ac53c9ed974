//! Test helpers: owned buffers with strided views into them, layouts for proptest, and a naive
//! reference for element conversion that does not use the crate's `Element` trait.
#![allow(dead_code)]

use half::{bf16, f16};
use npu_kernels::{DType, View};
use proptest::prelude::*;

/// Every dtype the real-valued kernels take.
#[allow(dead_code)] // not every test binary uses it
pub const REAL: [DType; 10] = [
    DType::U8,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::F16,
    DType::F32,
    DType::F64,
    DType::Bool,
    DType::BF16,
];

/// 8-byte aligned storage, so that any dtype's elements are aligned.
pub struct Buf {
    words: Vec<u64>,
    pub dtype: DType,
    pub len: usize, // in elements
}

impl Buf {
    pub fn new(dtype: DType, len: usize) -> Buf {
        let words = (len * dtype.size()).div_ceil(8).max(1);
        Buf {
            words: vec![0; words],
            dtype,
            len,
        }
    }
    pub fn bytes(&self) -> &[u8] {
        let n = self.len * self.dtype.size();
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, n) }
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.len * self.dtype.size();
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, n) }
    }
    pub fn elem(&self, off: i64) -> &[u8] {
        let s = self.dtype.size();
        &self.bytes()[off as usize * s..(off as usize + 1) * s]
    }
    pub fn set(&mut self, off: i64, v: &[u8]) {
        let s = self.dtype.size();
        self.bytes_mut()[off as usize * s..(off as usize + 1) * s].copy_from_slice(v);
    }
    pub fn view(&mut self, sizes: &[i64], strides: &[i64], offset: i64) -> View {
        let p = unsafe {
            (self.words.as_mut_ptr() as *mut u8).add(offset as usize * self.dtype.size())
        };
        View {
            ptr: p,
            dtype: self.dtype,
            sizes: sizes.to_vec(),
            strides: strides.to_vec(),
        }
    }
    /// A buffer holding one contiguous tensor.
    pub fn contiguous(dtype: DType, sizes: &[i64]) -> (Buf, View) {
        let n: i64 = sizes.iter().product();
        let mut b = Buf::new(dtype, n as usize);
        let v = b.view(sizes, &contiguous_strides(sizes), 0);
        (b, v)
    }
    pub fn f64s(&self) -> Vec<f64> {
        (0..self.len as i64)
            .map(|i| read(self.dtype, self.elem(i)).real())
            .collect()
    }
}

pub fn contiguous_strides(sizes: &[i64]) -> Vec<i64> {
    let mut st = vec![0; sizes.len()];
    let mut s = 1;
    for d in (0..sizes.len()).rev() {
        st[d] = s;
        s *= sizes[d].max(1);
    }
    st
}

/// All multi-indices of `sizes`, row-major.
pub fn indices(sizes: &[i64]) -> Vec<Vec<i64>> {
    let mut out = vec![vec![]];
    for &n in sizes {
        out = out
            .into_iter()
            .flat_map(|p| (0..n).map(move |i| [p.clone(), vec![i]].concat()))
            .collect();
    }
    out
}

pub fn offset_of(idx: &[i64], strides: &[i64]) -> i64 {
    idx.iter().zip(strides).map(|(i, s)| i * s).sum()
}

/// How a view sits in its buffer: dim order in memory, a step per dim (slicing), broadcast dims
/// (stride 0) and a storage offset.
#[derive(Clone, Debug)]
pub struct Spec {
    pub perm: Vec<usize>,
    pub steps: Vec<i64>,
    pub bcast: Vec<bool>,
    pub offset: i64,
}

impl Spec {
    pub fn contiguous(rank: usize) -> Spec {
        Spec {
            perm: (0..rank).collect(),
            steps: vec![1; rank],
            bcast: vec![false; rank],
            offset: 0,
        }
    }
    /// Strides and the buffer length (in elements) the view needs.
    pub fn layout(&self, sizes: &[i64]) -> (Vec<i64>, usize) {
        let rank = sizes.len();
        let mut strides = vec![0i64; rank];
        let mut s = 1i64;
        for &d in self.perm.iter().rev() {
            strides[d] = s * self.steps[d];
            s *= sizes[d].max(1) * self.steps[d];
        }
        for (st, &b) in strides.iter_mut().zip(&self.bcast) {
            if b {
                *st = 0;
            }
        }
        let extent: i64 = sizes
            .iter()
            .zip(&strides)
            .map(|(&n, &st)| (n - 1).max(0) * st)
            .sum();
        (strides, (self.offset + extent + 1) as usize)
    }
}

pub fn spec(rank: usize, allow_bcast: bool) -> impl Strategy<Value = Spec> {
    let perm = Just((0..rank).collect::<Vec<usize>>()).prop_shuffle();
    let steps = prop::collection::vec(prop_oneof![3 => Just(1i64), 1 => 2i64..4], rank);
    let bcast = prop::collection::vec(
        if allow_bcast {
            prop_oneof![3 => Just(false), 1 => Just(true)].boxed()
        } else {
            Just(false).boxed()
        },
        rank,
    );
    (perm, steps, bcast, 0i64..3).prop_map(|(perm, steps, bcast, offset)| Spec {
        perm,
        steps,
        bcast,
        offset,
    })
}

pub fn shape() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0i64..6, 0..=4)
}

pub fn dtype() -> impl Strategy<Value = DType> {
    (0..DType::ALL.len()).prop_map(|i| DType::ALL[i])
}

pub fn float_dtype() -> impl Strategy<Value = DType> {
    prop::sample::select(vec![DType::F16, DType::BF16, DType::F32, DType::F64])
}

/// splitmix64: cheap deterministic test data.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
}

/// Fills a buffer with a mix of raw random bit patterns (NaNs, infinities, huge values) and
/// "nice" values (small integers and halves, the rounding and truncation edge cases).
pub fn randomize(b: &mut Buf, seed: u64) {
    let mut rng = Rng(seed);
    for i in 0..b.len as i64 {
        let r = rng.next();
        let bytes = if b.dtype == DType::Bool {
            vec![(r & 1) as u8]
        } else if r.is_multiple_of(2) {
            rng.next()
                .to_le_bytes()
                .iter()
                .chain(rng.next().to_le_bytes().iter())
                .copied()
                .take(b.dtype.size())
                .collect()
        } else {
            let nice = ((r >> 8) % 1200) as f64 / 2.0 - 300.0;
            let im = ((r >> 32) % 8) as f64 - 4.0;
            write(b.dtype, V::C(nice, im))
        };
        b.set(i, &bytes);
    }
}

/// A value in its widest form.
#[derive(Clone, Copy, Debug)]
pub enum V {
    B(bool),
    I(i64),
    F(f64),
    C(f64, f64),
}

impl V {
    pub fn real(self) -> f64 {
        match self {
            V::B(b) => b as u8 as f64,
            V::I(i) => i as f64,
            V::F(f) | V::C(f, _) => f,
        }
    }
}

pub fn read(dt: DType, b: &[u8]) -> V {
    let a2 = |o: usize| [b[o], b[o + 1]];
    let a4 = |o: usize| [b[o], b[o + 1], b[o + 2], b[o + 3]];
    let a8 = |o: usize| std::array::from_fn::<u8, 8, _>(|k| b[o + k]);
    match dt {
        DType::Bool => V::B(b[0] != 0),
        DType::U8 => V::I(b[0] as i64),
        DType::I8 => V::I(b[0] as i8 as i64),
        DType::I16 => V::I(i16::from_le_bytes(a2(0)) as i64),
        DType::I32 => V::I(i32::from_le_bytes(a4(0)) as i64),
        DType::I64 => V::I(i64::from_le_bytes(a8(0))),
        DType::F16 => V::F(f16::from_le_bytes(a2(0)).to_f64()),
        DType::BF16 => V::F(bf16::from_le_bytes(a2(0)).to_f64()),
        DType::F32 => V::F(f32::from_le_bytes(a4(0)) as f64),
        DType::F64 => V::F(f64::from_le_bytes(a8(0))),
        DType::C64 => V::C(
            f32::from_le_bytes(a4(0)) as f64,
            f32::from_le_bytes(a4(4)) as f64,
        ),
        DType::C128 => V::C(f64::from_le_bytes(a8(0)), f64::from_le_bytes(a8(8))),
    }
}

/// PyTorch (x86) float -> integer: truncate; out of range or NaN gives the minimum of the
/// conversion width, 64 bits for int64 and uint8, 32 bits for the other integer types.
fn float_to_int(dt: DType, f: f64) -> i64 {
    let wide = matches!(dt, DType::I64 | DType::U8);
    let (lo, hi) = if wide {
        (-(2f64.powi(63)), 2f64.powi(63))
    } else {
        (-(2f64.powi(31)), 2f64.powi(31))
    };
    let t = f.trunc();
    if f.is_nan() || t < lo || t >= hi {
        if wide {
            i64::MIN
        } else {
            i32::MIN as i64
        }
    } else {
        t as i128 as i64
    }
}

/// Encodes `v` as dtype `dt`, one element at a time, with PyTorch's conversion rules.
pub fn write(dt: DType, v: V) -> Vec<u8> {
    let (re, im) = match v {
        V::B(b) => (b as u8 as f64, 0.0),
        V::I(i) => (i as f64, 0.0),
        V::F(f) => (f, 0.0),
        V::C(r, i) => (r, i),
    };
    // the f32 a value rounds to first (ints round straight to f32, not via f64)
    let as_f32 = match v {
        V::I(i) => i as f32,
        _ => re as f32,
    };
    match dt {
        DType::Bool => vec![(re != 0.0 || im != 0.0 || matches!(v, V::I(i) if i != 0)) as u8],
        DType::U8 | DType::I8 | DType::I16 | DType::I32 | DType::I64 => {
            let i = match v {
                V::B(b) => b as i64,
                V::I(i) => i,
                V::F(f) | V::C(f, _) => float_to_int(dt, f),
            };
            i.to_le_bytes()[..dt.size()].to_vec() // two's complement wrap
        }
        DType::F32 => as_f32.to_le_bytes().to_vec(),
        DType::F64 => match v {
            V::I(i) => (i as f64).to_le_bytes().to_vec(),
            _ => re.to_le_bytes().to_vec(),
        },
        DType::F16 => f16::from_f32(as_f32).to_le_bytes().to_vec(),
        // c10::BFloat16 turns every NaN into the positive quiet NaN 0x7FC0
        DType::BF16 if as_f32.is_nan() => 0x7FC0u16.to_le_bytes().to_vec(),
        DType::BF16 => bf16::from_f32(as_f32).to_le_bytes().to_vec(),
        DType::C64 => [as_f32.to_le_bytes(), (im as f32).to_le_bytes()].concat(),
        DType::C128 => {
            let r = match v {
                V::I(i) => i as f64,
                _ => re,
            };
            [r.to_le_bytes(), im.to_le_bytes()].concat()
        }
    }
}

/// Element equality: same bytes, or both NaN (payloads may legitimately differ).
pub fn same(dt: DType, a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let nan = |x: V| match x {
        V::F(f) => f.is_nan(),
        _ => false,
    };
    match dt {
        DType::C64 => same(DType::F32, &a[..4], &b[..4]) && same(DType::F32, &a[4..], &b[4..]),
        DType::C128 => same(DType::F64, &a[..8], &b[..8]) && same(DType::F64, &a[8..], &b[8..]),
        _ => nan(read(dt, a)) && nan(read(dt, b)),
    }
}

/// Compares two buffers element by element; reports the first difference.
pub fn assert_same(got: &Buf, want: &Buf, what: &str) {
    assert_eq!(got.len, want.len);
    for i in 0..got.len as i64 {
        let (g, w) = (got.elem(i), want.elem(i));
        assert!(
            same(got.dtype, g, w),
            "{what}: element {i} differs: got {:?} ({g:?}), want {:?} ({w:?})",
            read(got.dtype, g),
            read(got.dtype, w)
        );
    }
}
