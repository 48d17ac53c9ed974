//! Convolution, 1d to 3d, with stride, padding, dilation, groups and the transposed form,
//! forward and backward, as im2col + gemm; 3x3 stride-1 f32 convolutions large enough to pay
//! off go through Winograd's F(2x2, 3x3) instead (`winograd.rs`).
//!
//! Both forms are one linear relation between an "image" X (the side with the larger spatial
//! extent) and a "grid" Y, with the weight seen per group as a matrix Wm `[Cy, Cx*K]`:
//!
//!   Y = Wm @ im2col(X)          (A)  regular forward; transposed backward for the input
//!   X += col2im(Wm^T @ Y)       (B)  regular backward for the input; transposed forward
//!   dWm = sum_n Y @ im2col(X)^T (C)  weight gradient of both
//!
//! For a regular convolution X is the input and Y the output; for a transposed one X is the
//! output and Y the input. Weights are `[G*Cy, Cx, k..]` in both cases, as PyTorch lays them out.
//! f16 and bf16 compute in f32 and round once; f64 computes in f64.

use std::ops::{AddAssign, Mul, Range};

use crate::convert::Element;
use crate::dense::{Operand, P};
use crate::dtype::DType;
use crate::scratch::Scratch;
use crate::dense::Mat;
use crate::gemm_split;
use crate::view::{err, par_ranges, sequential, View};
use crate::winograd;
use crate::KernelError;

const OP: &str = "convolution";

/// Work (multiply-adds) below which a product is not worth splitting across threads.
const PAR_MACS: usize = 64 * 64 * 64;

/// The non-tensor arguments of `aten::convolution`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: Vec<i64>,
    pub padding: Vec<i64>,
    pub dilation: Vec<i64>,
    pub transposed: bool,
    pub output_padding: Vec<i64>,
    pub groups: i64,
}

impl ConvParams {
    /// Spatial sizes of the output for an input of spatial sizes `input` and kernel `kernel`
    /// (PyTorch's formula; may be negative or zero for an input too small).
    pub fn output_size(&self, input: &[i64], kernel: &[i64]) -> Vec<i64> {
        (0..input.len())
            .map(|i| {
                let (s, p, d) = (self.stride[i], self.padding[i], self.dilation[i]);
                if self.transposed {
                    (input[i] - 1) * s - 2 * p + d * (kernel[i] - 1) + self.output_padding[i] + 1
                } else {
                    (input[i] + 2 * p - d * (kernel[i] - 1) - 1).div_euclid(s) + 1
                }
            })
            .collect()
    }
}

/// Spatial geometry, padded to three dims (leading size-1 dims for 1d and 2d).
#[derive(Clone, Copy, Debug)]
struct Geo {
    img: [usize; 3],
    grid: [usize; 3],
    k: [usize; 3],
    s: [usize; 3],
    p: [usize; 3],
    d: [usize; 3],
}

impl Geo {
    fn kernel_len(&self) -> usize {
        self.k.iter().product()
    }
    fn img_len(&self) -> usize {
        self.img.iter().product()
    }
    fn grid_len(&self) -> usize {
        self.grid.iter().product()
    }
    /// im2col is the identity: 1x1 kernel, stride 1, no padding, and (for a transposed
    /// convolution, whose output padding can make the image larger) equal extents.
    fn is_pointwise(&self) -> bool {
        self.k == [1; 3] && self.s == [1; 3] && self.p == [0; 3] && self.img == self.grid
    }
}

/// Batch, groups, channels per group of X and Y, and the geometry.
#[derive(Clone, Copy, Debug)]
struct Problem {
    n: usize,
    g: usize,
    cx: usize,
    cy: usize,
    geo: Geo,
}

impl Problem {
    fn x_len(&self) -> usize {
        self.cx * self.geo.img_len()
    }
    fn y_len(&self) -> usize {
        self.cy * self.geo.grid_len()
    }
    fn w_len(&self) -> usize {
        self.cy * self.cx * self.geo.kernel_len()
    }
    fn macs(&self) -> usize {
        self.w_len() * self.geo.grid_len()
    }
}

fn dims3(v: &[i64], fill: i64) -> [usize; 3] {
    let mut out = [fill as usize; 3];
    for (o, &x) in out[3 - v.len()..].iter_mut().zip(v) {
        *o = x as usize;
    }
    out
}

/// The output sizes of `aten::convolution` for these input and weight sizes, after checking
/// that the two fit each other and the parameters (the checks need no data).
pub fn conv_output_sizes(input: &[i64], weight: &[i64], p: &ConvParams) -> Result<Vec<i64>, KernelError> {
    let r = input.len();
    if !(3..=5).contains(&r) || weight.len() != r {
        return Err(err(
            OP,
            format!("expected 3d to 5d input and a weight of the same rank, got input {input:?} and weight {weight:?}"),
        ));
    }
    let nd = r - 2;
    for (name, v) in [
        ("stride", &p.stride),
        ("padding", &p.padding),
        ("dilation", &p.dilation),
        ("output_padding", &p.output_padding),
    ] {
        if v.len() != nd {
            return Err(err(OP, format!("expected {name} to have {nd} elements, got {v:?}")));
        }
    }
    if p.groups < 1
        || p.stride.iter().any(|&s| s < 1)
        || p.dilation.iter().any(|&d| d < 1)
        || p.padding.iter().any(|&x| x < 0)
        || p.output_padding.iter().any(|&x| x < 0)
        || weight[2..].iter().any(|&k| k < 1)
    {
        return Err(err(OP, format!("invalid parameters {p:?} for weight {weight:?}")));
    }
    let g = p.groups;
    let fits = if p.transposed { weight[0] == input[1] && input[1] % g == 0 } else { weight[1] * g == input[1] && weight[0] % g == 0 };
    if !fits {
        let want = if p.transposed { weight[0] } else { weight[1] * g };
        return Err(err(
            OP,
            format!(
                "Given groups={g}, weight of size {weight:?}, expected input{input:?} to have {want} channels, but got {} channels instead",
                input[1]
            ),
        ));
    }
    let spatial = p.output_size(&input[2..], &weight[2..]);
    if spatial.iter().any(|&s| s < 1) && input[2..].iter().all(|&s| s > 0) {
        return Err(err(OP, format!("Calculated output size {spatial:?} is too small for input {input:?}")));
    }
    let cout = if p.transposed { weight[1] * g } else { weight[0] };
    Ok([input[0], cout].into_iter().chain(spatial.into_iter().map(|s| s.max(0))).collect())
}

/// Checks the shapes of input, weight and output against the parameters and returns the problem.
fn problem(input: &[i64], weight: &[i64], output: &[i64], p: &ConvParams) -> Result<Problem, KernelError> {
    let want = conv_output_sizes(input, weight, p)?;
    if output != want.as_slice() {
        return Err(err(OP, format!("output has shape {output:?}, expected {want:?}")));
    }
    let g = p.groups;
    let (cx, cy) = if p.transposed { (weight[1], input[1] / g) } else { (weight[1], weight[0] / g) };
    let (img, grid) = if p.transposed { (&want[2..], &input[2..]) } else { (&input[2..], &want[2..]) };
    let geo = Geo {
        img: dims3(img, 1),
        grid: dims3(grid, 1),
        k: dims3(&weight[2..], 1),
        s: dims3(&p.stride, 1),
        p: dims3(&p.padding, 0),
        d: dims3(&p.dilation, 1),
    };
    Ok(Problem { n: input[0] as usize, g: g as usize, cx: cx as usize, cy: cy as usize, geo })
}

/// Integer (int64) convolution: exact, wrapping like C++ integer arithmetic; a direct loop
/// (integer convolution is for correctness, not speed). The transposed form scatters each
/// input element into the image positions it reaches.
fn forward_int(out: &View, input: &View, weight: &View, bias: Option<&View>, pr: &Problem, transposed: bool) -> Result<(), KernelError> {
    let x = crate::dense::host_values::<i64>(input)?;
    let w = crate::dense::host_values::<i64>(weight)?;
    let b = bias.map(crate::dense::host_values::<i64>).transpose()?;
    let geo = &pr.geo;
    let (il, gl, kl) = (geo.img_len(), geo.grid_len(), geo.kernel_len());
    let (xc, yc) = (pr.g * pr.cx, pr.g * pr.cy); // channels of the image side and the grid side
    // the image index of grid index `o` and kernel index `k` along dim `a`, if inside
    let at = |a: usize, o: usize, k: usize| -> Option<usize> {
        let i = (o * geo.s[a] + k * geo.d[a]) as isize - geo.p[a] as isize;
        (0..geo.img[a] as isize).contains(&i).then_some(i as usize)
    };
    let unflat = |i: usize, dims: &[usize; 3]| [i / (dims[1] * dims[2]), i / dims[2] % dims[1], i % dims[2]];
    let image_of = |o: usize, k: usize| -> Option<usize> {
        let (o, k) = (unflat(o, &geo.grid), unflat(k, &geo.k));
        Some((at(0, o[0], k[0])? * geo.img[1] + at(1, o[1], k[1])?) * geo.img[2] + at(2, o[2], k[2])?)
    };
    // forward: y (grid side, yc channels) from x (image side, xc channels);
    // transposed: the output is the image side, the input the grid side
    let out_ch = if transposed { xc } else { yc };
    let out_len = if transposed { il } else { gl };
    let mut y = vec![0i64; pr.n * out_ch * out_len];
    for (c, chunk) in y.chunks_mut(out_len).enumerate() {
        let bias = b.as_ref().map_or(0, |b| b[c % out_ch]);
        chunk.fill(bias);
    }
    for n in 0..pr.n {
        for g in 0..pr.g {
            for cy in 0..pr.cy {
                for cx in 0..pr.cx {
                    for o in 0..gl {
                        for k in 0..kl {
                            let Some(i) = image_of(o, k) else { continue };
                            if transposed {
                                // weight [C_in = yc, cx, k..]; input on the grid side
                                let wv = w[((g * pr.cy + cy) * pr.cx + cx) * kl + k];
                                let xv = x[(n * yc + g * pr.cy + cy) * gl + o];
                                let t = &mut y[(n * xc + g * pr.cx + cx) * il + i];
                                *t = t.wrapping_add(xv.wrapping_mul(wv));
                            } else {
                                // weight [C_out = yc, cx, k..]; input on the image side
                                let wv = w[((g * pr.cy + cy) * pr.cx + cx) * kl + k];
                                let xv = x[(n * xc + g * pr.cx + cx) * il + i];
                                let t = &mut y[(n * yc + g * pr.cy + cy) * gl + o];
                                *t = t.wrapping_add(xv.wrapping_mul(wv));
                            }
                        }
                    }
                }
            }
        }
    }
    crate::dense::store_values(out, &y)
}

/// f32 and f64, the types convolution computes in.
trait Real: Element + AddAssign + Mul<Output = Self> + PartialEq {}
impl Real for f32 {}
impl Real for f64 {}

/// First and one-past-last grid index `o` along one dim whose image index
/// `o * s + k * d - p` falls inside `0..img`.
fn valid_range(grid: usize, img: usize, s: usize, p: usize, kd: usize) -> (usize, usize) {
    let off = kd as isize - p as isize; // image index of o = 0
    let s = s as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let hi = ((img as isize - off) + s - 1).div_euclid(s).clamp(0, grid as isize);
    let lo = lo.min(grid as isize);
    (lo as usize, (hi as usize).max(lo as usize))
}

/// Calls `f(row, image_offset_of_first, lo, hi)` for every grid row (fixed z, y) of one
/// kernel tap; rows entirely in the padding get `None`.
#[inline]
fn for_each_row(geo: &Geo, tap: [usize; 3], mut f: impl FnMut(usize, Option<(isize, usize, usize)>)) {
    let [kz, ky, kx] = tap;
    let (lo, hi) = valid_range(geo.grid[2], geo.img[2], geo.s[2], geo.p[2], kx * geo.d[2]);
    for oz in 0..geo.grid[0] {
        let iz = (oz * geo.s[0] + kz * geo.d[0]) as isize - geo.p[0] as isize;
        for oy in 0..geo.grid[1] {
            let row = oz * geo.grid[1] + oy;
            let iy = (oy * geo.s[1] + ky * geo.d[1]) as isize - geo.p[1] as isize;
            if iz < 0 || iz >= geo.img[0] as isize || iy < 0 || iy >= geo.img[1] as isize || lo >= hi {
                f(row, None);
                continue;
            }
            // image index of grid column 0 (may be negative; only lo..hi are read)
            let ix0 = (kx * geo.d[2]) as isize - geo.p[2] as isize;
            let base = (iz * geo.img[1] as isize + iy) * geo.img[2] as isize + ix0;
            f(row, Some((base, lo, hi)));
        }
    }
}

/// A tap as a shift. With stride 1 along rows and columns and rows as long as the image's,
/// grid position (y, x) of a tap reads image position (y, x) plus a constant, so all the
/// valid rows of a plane are one contiguous run in both, except for the columns that the shift
/// wraps round to the neighbouring row. Copying runs instead of rows matters for small images.
fn is_shift(geo: &Geo) -> bool {
    geo.s[1] == 1 && geo.s[2] == 1 && geo.img[2] == geo.grid[2]
}

/// The elements of one grid plane that a tap reads: grid indices `dst..dst + len` (relative to
/// the plane) from image indices `src..`; in rows `rows`, only columns `cols` are valid.
struct Run {
    src: isize,
    dst: usize,
    len: usize,
    rows: Range<usize>,
    cols: (usize, usize),
}

/// For the shift layout ([`is_shift`]): calls `f(plane_offset, run)` for every grid plane
/// (fixed z) of one tap; a plane that reads only padding gets `None`.
fn for_each_run(geo: &Geo, [kz, ky, kx]: [usize; 3], mut f: impl FnMut(usize, Option<Run>)) {
    let w = geo.grid[2];
    let (ylo, yhi) = valid_range(geo.grid[1], geo.img[1], 1, geo.p[1], ky * geo.d[1]);
    let (xlo, xhi) = valid_range(w, geo.img[2], 1, geo.p[2], kx * geo.d[2]);
    for oz in 0..geo.grid[0] {
        let iz = (oz * geo.s[0] + kz * geo.d[0]) as isize - geo.p[0] as isize;
        let plane = oz * geo.grid[1] * w;
        if iz < 0 || iz >= geo.img[0] as isize || ylo >= yhi || xlo >= xhi {
            f(plane, None);
            continue;
        }
        let iy = (ylo + ky * geo.d[1]) as isize - geo.p[1] as isize;
        let ix = (xlo + kx * geo.d[2]) as isize - geo.p[2] as isize;
        let src = (iz * geo.img[1] as isize + iy) * geo.img[2] as isize + ix;
        let len = (yhi - 1 - ylo) * w + xhi - xlo;
        f(plane, Some(Run { src, dst: ylo * w + xlo, len, rows: ylo..yhi, cols: (xlo, xhi) }));
    }
}

/// Zeroes the columns outside `cols` in rows `rows` of a plane with rows `w` long.
fn zero_wrapped<T: Real>(plane: &mut [T], w: usize, rows: Range<usize>, (lo, hi): (usize, usize)) {
    for r in rows {
        plane[r * w..r * w + lo].fill(T::from_f64(0.0));
        plane[r * w + hi..(r + 1) * w].fill(T::from_f64(0.0));
    }
}

fn taps(geo: &Geo) -> impl Iterator<Item = [usize; 3]> + '_ {
    let [a, b, c] = geo.k;
    (0..a).flat_map(move |z| (0..b).flat_map(move |y| (0..c).map(move |x| [z, y, x])))
}

/// Columns a product should have: images whose grids are smaller are batched into one product.
/// A 7x7 grid gives products 49 columns wide, which run ~20 % slower than wider ones, and each
/// product packs the whole weight matrix again (9 MiB at 512 channels, past L2): on the Intel
/// machine, batch 8 at 512 channels took 20-22 ms for both gradients with 2 images a product
/// (64 columns) and 16-17 ms with 4 (192); the forward pass is the same either way.
const TARGET_COLS: usize = 192;
/// Most elements in one column buffer (16 MiB of f32); one image may exceed it.
const COL_BUDGET: usize = 4 << 20;

/// Images per product: enough for [`TARGET_COLS`] within [`COL_BUDGET`], then evened out so
/// that the blocks have equal sizes. Depends on the shapes only, never on the thread count.
fn block_images(pr: &Problem) -> usize {
    let (gl, ckk) = (pr.geo.grid_len().max(1), (pr.cx * pr.geo.kernel_len()).max(1));
    let nb = TARGET_COLS.div_ceil(gl).min(COL_BUDGET / (ckk * gl)).clamp(1, pr.n.max(1));
    pr.n.div_ceil(pr.n.div_ceil(nb).max(1)).max(1)
}

impl Problem {
    /// Image `i`, group `g` of the image side `[n, g*cx, img..]`.
    fn x_at<T>(&self, x: P<T>, i: usize, g: usize) -> *mut T {
        x.at((i * self.g + g) * self.x_len())
    }
    /// Image `i`, group `g` of the grid side `[n, g*cy, grid..]`.
    fn y_at<T>(&self, y: P<T>, i: usize, g: usize) -> *mut T {
        y.at((i * self.g + g) * self.y_len())
    }
}

/// col `[cx*K, nb*L]`, image `i` in columns `i*L..`, from images `n0..n0+nb` (group `g`) of x.
unsafe fn im2col<T: Real>(pr: &Problem, x: P<T>, (n0, nb, g): (usize, usize, usize), col: P<T>, parallel: bool) {
    let geo = &pr.geo;
    let (il, gl, kl) = (geo.img_len(), geo.grid_len(), geo.kernel_len());
    let (w, s, ld, shift) = (geo.grid[2], geo.s[2] as isize, nb * gl, is_shift(geo));
    let body = |job: usize| {
        let (i, c) = (job / pr.cx, job % pr.cx);
        let img = pr.x_at(x, n0 + i, g).add(c * il);
        for (t, tap) in taps(geo).enumerate() {
            let dst = col.at((c * kl + t) * ld + i * gl);
            if shift {
                let pl = geo.grid[1] * w;
                for_each_run(geo, tap, |plane, run| {
                    let out = std::slice::from_raw_parts_mut(dst.add(plane), pl);
                    let Some(r) = run else { return out.fill(T::from_f64(0.0)) };
                    out[..r.rows.start * w].fill(T::from_f64(0.0));
                    out[r.rows.end * w..].fill(T::from_f64(0.0));
                    out[r.dst..r.dst + r.len].copy_from_slice(std::slice::from_raw_parts(img.offset(r.src), r.len));
                    zero_wrapped(out, w, r.rows, r.cols);
                });
                continue;
            }
            for_each_row(geo, tap, |row, span| {
                let out = std::slice::from_raw_parts_mut(dst.add(row * w), w);
                match span {
                    None => out.fill(T::from_f64(0.0)),
                    Some((base, lo, hi)) => {
                        out[..lo].fill(T::from_f64(0.0));
                        out[hi..].fill(T::from_f64(0.0));
                        gather_strided(&mut out[lo..hi], img.offset(base + lo as isize * s), s);
                    }
                }
            });
        }
    };
    jobs(nb * pr.cx, kl * gl, parallel, body);
}

/// `out[o] = src[o * s]`. Stride 2 (the downsampling convolutions) reads pairs, which the
/// compiler turns into vector loads and shuffles; the last value is read alone, since its pair
/// may end past the image.
///
/// # Safety
/// `src.offset(o * s)` is readable for every `o < out.len()`.
unsafe fn gather_strided<T: Real>(out: &mut [T], src: *const T, s: isize) {
    let n = out.len();
    match s {
        1 => out.copy_from_slice(std::slice::from_raw_parts(src, n)),
        2 if n > 0 => {
            let pairs = std::slice::from_raw_parts(src, 2 * (n - 1));
            out.iter_mut().zip(pairs.chunks_exact(2)).for_each(|(o, p)| *o = p[0]);
            out[n - 1] = *src.add(2 * (n - 1));
        }
        _ => out.iter_mut().enumerate().for_each(|(o, v)| *v = *src.offset(o as isize * s)),
    }
}

/// `dst[o * s] += vals[o]`, the inverse of [`gather_strided`].
///
/// # Safety
/// `dst.offset(o * s)` is writable for every `o < vals.len()`, and nothing else accesses
/// that range meanwhile.
unsafe fn scatter_add_strided<T: Real>(dst: *mut T, vals: &[T], s: isize) {
    let n = vals.len();
    match s {
        1 => std::slice::from_raw_parts_mut(dst, n).iter_mut().zip(vals).for_each(|(d, &v)| *d += v),
        2 if n > 0 => {
            let pairs = std::slice::from_raw_parts_mut(dst, 2 * (n - 1));
            pairs.chunks_exact_mut(2).zip(vals).for_each(|(p, &v)| p[0] += v);
            *dst.add(2 * (n - 1)) += vals[n - 1];
        }
        _ => vals.iter().enumerate().for_each(|(o, &v)| *dst.offset(o as isize * s) += v),
    }
}

/// Adds col `[cx*K, nb*L]` (laid out as [`im2col`] writes it) into images `n0..n0+nb` of x.
unsafe fn col2im<T: Real>(pr: &Problem, col: P<T>, x: P<T>, (n0, nb, g): (usize, usize, usize), parallel: bool) {
    let geo = &pr.geo;
    let (il, gl, kl) = (geo.img_len(), geo.grid_len(), geo.kernel_len());
    let (w, s, ld, shift) = (geo.grid[2], geo.s[2] as isize, nb * gl, is_shift(geo));
    let body = |job: usize| {
        let (i, c) = (job / pr.cx, job % pr.cx);
        let img = pr.x_at(x, n0 + i, g).add(c * il);
        for (t, tap) in taps(geo).enumerate() {
            let src = col.at((c * kl + t) * ld + i * gl);
            if shift {
                let pl = geo.grid[1] * w;
                for_each_run(geo, tap, |plane, run| {
                    let Some(r) = run else { return };
                    // the wrapped columns hold what padding positions received: drop them
                    let vals = std::slice::from_raw_parts_mut(src.add(plane), pl);
                    zero_wrapped(vals, w, r.rows, r.cols);
                    let dst = std::slice::from_raw_parts_mut(img.offset(r.src), r.len);
                    dst.iter_mut().zip(&vals[r.dst..r.dst + r.len]).for_each(|(d, &v)| *d += v);
                });
                continue;
            }
            for_each_row(geo, tap, |row, span| {
                if let Some((base, lo, hi)) = span {
                    let vals = &std::slice::from_raw_parts(src.add(row * w), w)[lo..hi];
                    scatter_add_strided(img.offset(base + lo as isize * s), vals, s);
                }
            });
        }
    };
    jobs(nb * pr.cx, kl * gl, parallel, body);
}

/// `dst[c, i*L..] = y(n0+i, g)[c, ..]`: the grid-side rows of a block side by side.
unsafe fn gather<T: Real>(pr: &Problem, y: P<T>, (n0, nb, g): (usize, usize, usize), dst: P<T>, parallel: bool) {
    let gl = pr.geo.grid_len();
    jobs(nb * pr.cy, gl, parallel, |job| {
        let (i, c) = (job / pr.cy, job % pr.cy);
        std::ptr::copy_nonoverlapping(pr.y_at(y, n0 + i, g).add(c * gl), dst.at((c * nb + i) * gl), gl);
    });
}

/// `y(n0+i, g)[c, ..] += src[c, i*L..]`, the inverse of [`gather`], adding.
unsafe fn scatter_add<T: Real>(pr: &Problem, src: P<T>, y: P<T>, (n0, nb, g): (usize, usize, usize), parallel: bool) {
    let gl = pr.geo.grid_len();
    jobs(nb * pr.cy, gl, parallel, |job| {
        let (i, c) = (job / pr.cy, job % pr.cy);
        let d = std::slice::from_raw_parts_mut(pr.y_at(y, n0 + i, g).add(c * gl), gl);
        let s = std::slice::from_raw_parts(src.at((c * nb + i) * gl), gl);
        d.iter_mut().zip(s).for_each(|(d, &v)| *d += v);
    });
}

/// Runs `body` for jobs `0..count`, split across threads when asked and worth it.
fn jobs(count: usize, work_per_job: usize, parallel: bool, body: impl Fn(usize) + Sync) {
    if parallel {
        par_ranges(count, (1 << 15) / work_per_job.max(1) + 1, |r| r.for_each(&body));
    } else {
        (0..count).for_each(body);
    }
}

/// `dst[m, n] = (read ? dst : 0) + op(a) @ op(b)`, row-major, `op` transposing when asked;
/// on every thread when `parallel`.
unsafe fn gemm_rm<T: Real>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    read: bool,
    (a, a_t, lda): (*const T, bool, usize),
    (b, b_t, ldb): (*const T, bool, usize),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !read {
            std::slice::from_raw_parts_mut(dst, m * n).fill(T::from_f64(0.0));
        }
        return;
    }
    let one = T::from_f64(1.0);
    let (d, a, b) = (Mat::row_major(dst, n, false), Mat::row_major(a, lda, a_t), Mat::row_major(b, ldb, b_t));
    gemm_split::gemm((m, n, k), d, read, a, b, one, one, parallel);
}

/// Runs `task(i, parallel_inside)` for every `i < tasks`: across threads when there are enough
/// tasks, else one after the other with each task free to use every thread.
fn for_tasks(tasks: usize, macs_per_task: usize, task: impl Fn(usize, bool) + Sync) {
    let t = if sequential() { 1 } else { rayon::current_num_threads() };
    if t > 1 && (tasks >= t || (tasks > 1 && macs_per_task < PAR_MACS)) {
        par_ranges(tasks, 1, |r| r.for_each(|i| task(i, false)));
    } else {
        (0..tasks).for_each(|i| task(i, t > 1 && macs_per_task >= PAR_MACS));
    }
}

/// The blocks of [`block_images`] images: (first image, images).
fn blocks(pr: &Problem) -> impl Iterator<Item = (usize, usize)> {
    let (n, nb) = (pr.n, block_images(pr));
    (0..n.div_ceil(nb)).map(move |b| (b * nb, nb.min(n - b * nb)))
}

/// (A) `y += Wm @ im2col(x)` for every image and group.
unsafe fn op_a<T: Real>(pr: &Problem, x: P<T>, w: P<T>, y: P<T>) {
    let (kl, gl) = (pr.geo.kernel_len(), pr.geo.grid_len());
    let ckk = pr.cx * kl;
    let blocks: Vec<_> = blocks(pr).collect();
    let nb = blocks.first().map_or(1, |b| b.1);
    for_tasks(blocks.len() * pr.g, pr.macs() * nb, |task, inside| {
        let ((n0, nb), g) = (blocks[task / pr.g], task % pr.g);
        let (ld, wg) = (nb * gl, w.at(g * pr.w_len()));
        let direct = pr.geo.is_pointwise() && nb == 1;
        let mut col = Scratch::take::<T>(if direct { 0 } else { ckk * ld });
        let cols = if direct {
            pr.x_at(x, n0, g) as *const T
        } else {
            im2col(pr, x, (n0, nb, g), P(col.ptr()), inside);
            col.ptr()
        };
        if nb == 1 {
            gemm_rm((pr.cy, gl, ckk), pr.y_at(y, n0, g), true, (wg, false, ckk), (cols, false, gl), inside);
        } else {
            let mut out = Scratch::take::<T>(pr.cy * ld);
            gemm_rm((pr.cy, ld, ckk), out.ptr(), false, (wg, false, ckk), (cols, false, ld), inside);
            scatter_add(pr, P(out.ptr()), y, (n0, nb, g), inside);
        }
    });
}

/// (B) `x += col2im(Wm^T @ y)` for every image and group.
unsafe fn op_b<T: Real>(pr: &Problem, y: P<T>, w: P<T>, x: P<T>) {
    let (kl, gl) = (pr.geo.kernel_len(), pr.geo.grid_len());
    let ckk = pr.cx * kl;
    let blocks: Vec<_> = blocks(pr).collect();
    let nb = blocks.first().map_or(1, |b| b.1);
    for_tasks(blocks.len() * pr.g, pr.macs() * nb, |task, inside| {
        let ((n0, nb), g) = (blocks[task / pr.g], task % pr.g);
        let (ld, wg) = (nb * gl, w.at(g * pr.w_len()));
        let mut rows = Scratch::take::<T>(if nb == 1 { 0 } else { pr.cy * ld });
        let ys = if nb == 1 {
            pr.y_at(y, n0, g) as *const T
        } else {
            gather(pr, y, (n0, nb, g), P(rows.ptr()), inside);
            rows.ptr()
        };
        if pr.geo.is_pointwise() && nb == 1 {
            gemm_rm((ckk, gl, pr.cy), pr.x_at(x, n0, g), true, (wg, true, ckk), (ys, false, gl), inside);
        } else {
            let mut col = Scratch::take::<T>(ckk * ld);
            gemm_rm((ckk, ld, pr.cy), col.ptr(), false, (wg, true, ckk), (ys, false, ld), inside);
            col2im(pr, P(col.ptr()), x, (n0, nb, g), inside);
        }
    });
}

/// (C) `dw = sum_n y @ im2col(x)^T` per group. Blocks of images are summed in order, so the
/// result does not depend on the number of threads.
unsafe fn op_c<T: Real>(pr: &Problem, y: P<T>, x: P<T>, dw: P<T>) {
    let (kl, gl) = (pr.geo.kernel_len(), pr.geo.grid_len());
    let ckk = pr.cx * kl;
    for_tasks(pr.g, pr.macs() * pr.n, |g, inside| {
        let dwg = dw.at(g * pr.w_len());
        if pr.n == 0 {
            std::slice::from_raw_parts_mut(dwg, pr.w_len()).fill(T::from_f64(0.0));
        }
        for (b, (n0, nb)) in blocks(pr).enumerate() {
            let ld = nb * gl;
            let direct = pr.geo.is_pointwise() && nb == 1;
            let mut rows = Scratch::take::<T>(if nb == 1 { 0 } else { pr.cy * ld });
            let mut col = Scratch::take::<T>(if direct { 0 } else { ckk * ld });
            let ys = if nb == 1 {
                pr.y_at(y, n0, g) as *const T
            } else {
                gather(pr, y, (n0, nb, g), P(rows.ptr()), inside);
                rows.ptr()
            };
            let cols = if direct {
                pr.x_at(x, n0, g) as *const T
            } else {
                im2col(pr, x, (n0, nb, g), P(col.ptr()), inside);
                col.ptr()
            };
            gemm_rm((pr.cy, ckk, ld), dwg, b > 0, (ys, false, ld), (cols, true, ld), inside);
        }
    });
}

/// The [`winograd`] shape of a regular 2d 3x3 convolution with stride 1 in f32, when it
/// applies and pays off.
fn winograd_shape(pr: &Problem, ct: DType, transposed: bool) -> Option<winograd::Shape> {
    let g = &pr.geo;
    let fits = !transposed && ct == DType::F32 && pr.g == 1 && g.k == [1, 3, 3] && g.s == [1; 3] && g.d == [1; 3];
    let s = winograd::Shape { n: pr.n, cx: pr.cx, cy: pr.cy, h: g.img[1], w: g.img[2], pad: [g.p[1], g.p[2]] };
    (fits && g.img[0] == 1 && g.p[0] == 0 && winograd::worth_it(&s)).then_some(s)
}

/// The input gradient of a [`winograd_shape`] convolution as a convolution of the output
/// gradient: the same geometry with the channels swapped and padding `2 - p`.
fn input_grad_shape(pr: &Problem) -> Option<winograd::Shape> {
    let g = &pr.geo;
    let pad = [2usize.checked_sub(g.p[1])?, 2usize.checked_sub(g.p[2])?];
    let s = winograd::Shape { n: pr.n, cx: pr.cy, cy: pr.cx, h: g.grid[1], w: g.grid[2], pad };
    winograd::worth_it(&s).then_some(s)
}

/// The f32 view of a compute-type pointer (only called when the compute type is f32).
fn cast<T>(p: P<T>) -> P<f32> {
    P(p.get() as *mut f32)
}

/// Fills each channel of `[n, c, len]` with `bias[c]`, or zero.
unsafe fn init_channels<T: Real>(dst: P<T>, n: usize, c: usize, len: usize, bias: Option<P<T>>) {
    par_ranges(n * c, (1 << 16) / len.max(1) + 1, |r| {
        for i in r {
            let v = bias.map_or(T::from_f64(0.0), |b| *b.at(i % c));
            std::slice::from_raw_parts_mut(dst.at(i * len), len).fill(v);
        }
    });
}

/// `db[c] = sum over batch and space of dy[n, c, ..]`, accumulated in f64.
unsafe fn bias_grad<T: Real>(dy: P<T>, n: usize, c: usize, len: usize, db: P<T>) {
    par_ranges(c, 1, |r| {
        for ch in r {
            let mut acc = 0f64;
            for b in 0..n {
                let s = std::slice::from_raw_parts(dy.at((b * c + ch) * len), len);
                acc += s.iter().map(|v| v.to_f64()).sum::<f64>();
            }
            *db.at(ch) = T::from_f64(acc);
        }
    });
}

fn compute_dtype(op: &str, views: &[&View]) -> Result<DType, KernelError> {
    let d = views[0].dtype;
    if let Some(v) = views.iter().find(|v| v.dtype != d) {
        return Err(err(
            op,
            format!("Input type ({}) and weight type ({}) should be the same", d.name(), v.dtype.name()),
        ));
    }
    match d {
        DType::F32 | DType::F16 | DType::BF16 => Ok(DType::F32),
        DType::F64 => Ok(DType::F64),
        d => Err(err(op, format!("\"slow_conv2d_cpu\" not implemented for '{}'", d.name()))),
    }
}

fn check_vec(op: &str, name: &str, v: &View, len: i64) -> Result<(), KernelError> {
    if v.sizes != [len] {
        return Err(err(op, format!("expected {name} of shape [{len}], got {:?}", v.sizes)));
    }
    Ok(())
}

/// `out = convolution(input, weight) + bias` (the forward of `aten::convolution`).
pub fn conv_forward(
    out: &View,
    input: &View,
    weight: &View,
    bias: Option<&View>,
    p: &ConvParams,
) -> Result<(), KernelError> {
    let mut all = vec![out, input, weight];
    all.extend(bias);
    for v in &all {
        v.validate(OP)?;
    }
    let int = all.iter().all(|v| v.dtype == DType::I64);
    let ct = if int { DType::I64 } else { compute_dtype(OP, &all)? };
    let pr = problem(&input.sizes, &weight.sizes, &out.sizes, p)?;
    if let Some(b) = bias {
        check_vec(OP, "bias", b, out.sizes[1])?;
    }
    if out.numel() == 0 {
        return Ok(());
    }
    out.check_writable(OP)?;
    match ct {
        DType::I64 => forward_int(out, input, weight, bias, &pr, p.transposed),
        DType::F64 => unsafe { forward::<f64>(out, input, weight, bias, &pr, p.transposed) },
        _ => unsafe { forward::<f32>(out, input, weight, bias, &pr, p.transposed) },
    }
}

unsafe fn forward<T: Real>(
    out: &View,
    input: &View,
    weight: &View,
    bias: Option<&View>,
    pr: &Problem,
    transposed: bool,
) -> Result<(), KernelError> {
    let ct = T::DTYPE;
    let (xi, wi) = (Operand::of(input, ct)?, Operand::of(weight, ct)?);
    let bi = bias.map(|b| Operand::of(b, ct)).transpose()?;
    let o = Operand::output(out, ct);
    let (op, ip, wp) = (P(o.ptr::<T>()), P(xi.ptr::<T>()), P(wi.ptr::<T>()));
    let bp = bi.as_ref().map(|b| P(b.ptr::<T>()));
    let spatial: usize = out.sizes[2..].iter().map(|&s| s as usize).product();
    init_channels(op, pr.n, out.sizes[1] as usize, spatial, bp);
    if let Some(ws) = winograd_shape(pr, ct, transposed) {
        winograd::conv3x3(&ws, cast(ip), cast(wp), false, cast(op));
    } else if transposed {
        op_b(pr, ip, wp, op);
    } else {
        op_a(pr, ip, wp, op);
    }
    o.finish(out)
}

/// The gradients of `aten::convolution` with respect to the input, the weight and the bias;
/// each is computed only when its view is given.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(
    grad_out: &View,
    input: &View,
    weight: &View,
    p: &ConvParams,
    grad_input: Option<&View>,
    grad_weight: Option<&View>,
    grad_bias: Option<&View>,
) -> Result<(), KernelError> {
    const BOP: &str = "convolution_backward";
    let mut all = vec![grad_out, input, weight];
    all.extend(grad_input);
    all.extend(grad_weight);
    all.extend(grad_bias);
    for v in &all {
        v.validate(BOP)?;
    }
    let ct = compute_dtype(BOP, &all)?;
    let pr = problem(&input.sizes, &weight.sizes, &grad_out.sizes, p)?;
    if grad_input.is_some_and(|g| g.sizes != input.sizes) || grad_weight.is_some_and(|g| g.sizes != weight.sizes) {
        return Err(err(BOP, "gradient shapes must match input and weight".into()));
    }
    if let Some(b) = grad_bias {
        check_vec(BOP, "grad_bias", b, grad_out.sizes[1])?;
    }
    for g in [grad_input, grad_weight, grad_bias].into_iter().flatten() {
        g.check_writable(BOP)?;
    }
    match ct {
        DType::F64 => unsafe { backward::<f64>(grad_out, input, weight, &pr, p.transposed, [grad_input, grad_weight, grad_bias]) },
        _ => unsafe { backward::<f32>(grad_out, input, weight, &pr, p.transposed, [grad_input, grad_weight, grad_bias]) },
    }
}

unsafe fn backward<T: Real>(
    grad_out: &View,
    input: &View,
    weight: &View,
    pr: &Problem,
    transposed: bool,
    [gi, gw, gb]: [Option<&View>; 3],
) -> Result<(), KernelError> {
    let ct = T::DTYPE;
    let dy = Operand::of(grad_out, ct)?;
    let dyp = P(dy.ptr::<T>());
    if let Some(gi) = gi {
        let w = Operand::of(weight, ct)?;
        let o = Operand::output(gi, ct);
        let op = P(o.ptr::<T>());
        let spatial: usize = gi.sizes[2..].iter().map(|&s| s as usize).product();
        init_channels(op, pr.n, gi.sizes[1] as usize, spatial, None);
        if let Some(ws) = winograd_shape(pr, ct, transposed).and_then(|_| input_grad_shape(pr)) {
            // grad_input = conv(grad_out, w') with w'[c][o] = w[o][c] rotated by 180 degrees
            winograd::conv3x3(&ws, cast(dyp), cast(P(w.ptr::<T>())), true, cast(op));
        } else if transposed {
            op_a(pr, dyp, P(w.ptr::<T>()), op);
        } else {
            op_b(pr, dyp, P(w.ptr::<T>()), op);
        }
        o.finish(gi)?;
    }
    if let Some(gw) = gw {
        let x = Operand::of(input, ct)?;
        let o = Operand::output(gw, ct);
        let (y, xx) = if transposed { (P(x.ptr::<T>()), dyp) } else { (dyp, P(x.ptr::<T>())) };
        if let Some(ws) = winograd_shape(pr, ct, transposed) {
            winograd::weight_grad(&ws, cast(xx), cast(y), cast(P(o.ptr::<T>())));
        } else {
            op_c(pr, y, xx, P(o.ptr::<T>()));
        }
        o.finish(gw)?;
    }
    if let Some(gb) = gb {
        let o = Operand::output(gb, ct);
        let spatial: usize = grad_out.sizes[2..].iter().map(|&s| s as usize).product();
        bias_grad(dyp, pr.n, grad_out.sizes[1] as usize, spatial, P(o.ptr::<T>()));
        o.finish(gb)?;
    }
    Ok(())
}
