//! 3x3 convolution with stride 1 by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray,
//! 2015): each 2x2 block of outputs is `A^T [(G g G^T) ⊙ (B^T d B)] A` for the 4x4 input patch
//! `d` under it, so one block takes 16 multiplies instead of 36. Summed over input channels,
//! the 16 element-wise products become 16 independent matrix products
//! `M[e] = V[e] @ U[e]`, `V[e]` `[tiles, cx]` from the input and `U[e]` `[cx, cy]` from the
//! weights, which run on the GEMM kernel: 2.25x fewer multiply-adds than im2col + GEMM. The
//! input gradient is such a convolution too (of the output gradient, with the weights rotated
//! and their channels swapped); the weight gradient is the transpose of the same steps
//! (`dU[e] = dM[e]^T @ V[e]`, then `G^T dU G`).
//!
//! The transformed tiles are laid out channels last, so the input and output transforms run
//! along whole rows of channels (full vectors at any image size, even 7x7); the images are
//! copied channels last once per block. The weight transforms are small products with the
//! 16 x 9 matrix of `G ⊗ G`. The transforms use only additions, subtractions and halvings,
//! so rounding stays close to a direct sum (PyTorch CPU's oneDNN and cuDNN use the same
//! algorithm for such shapes).

use crate::cpu::with_avx2;
use crate::dense::{Mat, P};
use crate::gemm_split;
use crate::scratch::Scratch;
use crate::simd::transpose_f32;
use crate::view::{par_ranges, sequential};

/// A stride-1, dilation-1, single-group 3x3 convolution of f32 planes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub n: usize,
    pub cx: usize,
    pub cy: usize,
    /// input height and width
    pub h: usize,
    pub w: usize,
    /// padding (rows, columns), at most 2 so that every output reads a real input
    pub pad: [usize; 2],
}

impl Shape {
    fn out(&self) -> (usize, usize) {
        (self.h + 2 * self.pad[0] - 2, self.w + 2 * self.pad[1] - 2)
    }
    fn tiles(&self) -> (usize, usize) {
        let (ho, wo) = self.out();
        (ho.div_ceil(2), wo.div_ceil(2))
    }
    /// The padded input the tiles cover (at least `h + 2 * pad` by `w + 2 * pad`).
    fn padded(&self) -> (usize, usize) {
        let (th, tw) = self.tiles();
        (2 * th + 2, 2 * tw + 2)
    }
    /// Blocks of images `(first, count)` whose tiles make one set of products.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> {
        let (th, tw) = self.tiles();
        let (n, nb) = (self.n, TARGET_TILES.div_ceil((th * tw).max(1)).clamp(1, self.n.max(1)));
        (0..n).step_by(nb).map(move |n0| (n0, nb.min(n - n0)))
    }
}

/// Whether Winograd pays off: enough channels for the products to dominate the transforms,
/// and outputs large enough that few tiles hang over the edge (7x7 computes 8x8).
pub(crate) fn worth_it(s: &Shape) -> bool {
    let (ho, wo) = s.out();
    s.cx >= 16 && s.cy >= 16 && ho >= 6 && wo >= 6 && s.pad[0] <= 2 && s.pad[1] <= 2
}

/// The distance between consecutive `V[e]` (or `M[e]`) of `t` tiles by `c` channels: one
/// cache line more than their size, so that the 16 streams a tile transform reads or writes do
/// not all fall in the same L1 set (their sizes are often multiples of 4 KiB).
fn step(t: usize, c: usize) -> usize {
    t * c + 16
}

/// Tiles (rows of `V[e]`) per product, to bound the transformed buffers.
const TARGET_TILES: usize = 1024;

/// `G ⊗ G` as a 16 x 9 matrix: `(G g G^T)[a][b] = sum_k T[a * 4 + b][k] g[k]` for a 3x3 kernel
/// `g` flattened row by row, `G` = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]. `rotated` applies it to
/// the kernel turned by 180 degrees (`g[8 - k]`).
fn kernel_transform(rotated: bool) -> [f32; 144] {
    const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    std::array::from_fn(|i| {
        let (e, k) = (i / 9, i % 9);
        let k = if rotated { 8 - k } else { k };
        G[e / 4][k / 3] * G[e % 4][k % 3]
    })
}

/// `y[n, cy, ho, wo] += conv(x[n, cx, h, w], w)`, all contiguous f32, with `w` either the
/// weight `[cy, cx, 3, 3]` or, when `rotated`, the weight `[cx, cy, 3, 3]` of the convolution
/// whose input gradient this is (each kernel turned by 180 degrees).
///
/// # Safety
/// The pointers address contiguous tensors of these shapes; `y` is written by no one else.
pub(crate) unsafe fn conv3x3(s: &Shape, x: P<f32>, w: P<f32>, rotated: bool, y: P<f32>) {
    let (th, tw) = s.tiles();
    if s.n == 0 || th * tw == 0 {
        return;
    }
    // U[e] holds the transformed kernels in the weight's own (out, in) order, so the product's
    // right operand [cx, cy] is its transpose unless the weight's channels are swapped.
    let plane = s.cx * s.cy;
    let mut u = Scratch::take::<f32>(16 * plane);
    let up = P(u.ptr::<f32>());
    let t = kernel_transform(rotated);
    let (tm, wm) = (Mat::row_major(t.as_ptr(), 9, false), Mat::row_major(w.get(), 9, true));
    gemm_split::gemm((16, plane, 9), Mat::row_major(up.get(), plane, false), false, tm, wm, 0.0, 1.0, true);
    let b = |e: usize| Mat::row_major(up.at(e * plane), if rotated { s.cy } else { s.cx }, !rotated);
    for (n0, nb) in s.blocks() {
        let t = nb * th * tw;
        let (mut v, mut m) = (Scratch::take::<f32>(16 * step(t, s.cx)), Scratch::take::<f32>(16 * step(t, s.cy)));
        let (vp, mp) = (P(v.ptr::<f32>()), P(m.ptr::<f32>()));
        input_transform(s, x, n0, nb, vp);
        sixteen(|e| {
            let (a, d) = (Mat::row_major(vp.at(e * step(t, s.cx)), s.cx, false), Mat::row_major(mp.at(e * step(t, s.cy)), s.cy, false));
            gemm_split::gemm((t, s.cy, s.cx), d, false, a, b(e), 0.0, 1.0, false);
        });
        output_transform(s, mp, n0, nb, y);
    }
}

/// Runs `product(e)` for the 16 elements of a tile, side by side: each a sequential product on
/// one thread (16 independent products keep both threads busy without splitting any).
fn sixteen(product: impl Fn(usize) + Sync) {
    if sequential() {
        (0..16).for_each(product);
    } else {
        par_ranges(16, 1, |r| r.for_each(&product));
    }
}

/// Images `n0..n0 + nb` of `x` `[n, c, h, w]` as `[nb, ph, pw, c]`, zero around the image.
unsafe fn channels_last(s: &Shape, x: P<f32>, n0: usize, nb: usize) -> Scratch {
    let (ph, pw) = s.padded();
    let mut buf = Scratch::take::<f32>(nb * ph * pw * s.cx);
    let bp = P(buf.ptr::<f32>());
    par_ranges(nb * ph, 1, |r| {
        for row in r {
            channels_last_row(s, x, n0 + row / ph, row % ph, bp.slice(row * pw * s.cx, pw * s.cx));
        }
    });
    buf
}

/// Row `py` of the padded image `img` of `x`, channels last (`pw * cx` values).
unsafe fn channels_last_row(s: &Shape, x: P<f32>, img: usize, py: usize, dst: &mut [f32]) {
    let (c, hw) = (s.cx, s.h * s.w);
    let Some(yy) = py.checked_sub(s.pad[0]).filter(|&yy| yy < s.h) else {
        dst.fill(0.0);
        return;
    };
    let (left, rest) = dst.split_at_mut(s.pad[1] * c);
    let (mid, right) = rest.split_at_mut(s.w * c);
    left.fill(0.0);
    right.fill(0.0);
    transpose_f32(x.at(img * c * hw + yy * s.w), hw, mid.as_mut_ptr(), c, (c, s.w), false);
}

/// `V[e][i * tiles + t][c]` = `B^T d B` for the 4x4 patch `d` of tile t of image n0 + i and
/// channel c, `B^T` = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Jobs are rows of tiles.
unsafe fn input_transform(s: &Shape, x: P<f32>, n0: usize, nb: usize, v: P<f32>) {
    let mut xl = channels_last(s, x, n0, nb);
    let xp = P(xl.ptr::<f32>());
    let ((th, tw), (ph, pw), c) = (s.tiles(), s.padded(), s.cx);
    let t = nb * th * tw;
    par_ranges(nb * th, 1, |r| {
        for job in r {
            let (i, ty) = (job / th, job % th);
            input_row(xp.at((i * ph + 2 * ty) * pw * c), pw, c, tw, v.at(job * tw * c), step(t, c));
        }
    });
}

with_avx2! {
    /// The input transform of a row of `tw` tiles: `xp` is its first padded row, `v` the row's
    /// first tile in `V[0]`, `step` the distance between the `V[e]`.
    unsafe fn input_row<>(xp: *const f32, pw: usize, c: usize, tw: usize, v: *mut f32, step: usize) => input_row_body
}

#[inline(always)]
unsafe fn input_row_body(xp: *const f32, pw: usize, c: usize, tw: usize, v: *mut f32, step: usize) {
    for tx in 0..tw {
        let (mut src, mut dst) = ([xp; 16], [v; 16]);
        for k in 0..16 {
            src[k] = xp.add(((k / 4) * pw + 2 * tx + k % 4) * c);
            dst[k] = v.add(k * step + tx * c);
        }
        let mut ch = 0;
        while ch + LANES <= c {
            input_lanes::<LANES>(&src, &dst, ch);
            ch += LANES;
        }
        for ch in ch..c {
            input_lanes::<1>(&src, &dst, ch);
        }
    }
}

/// `B^T d B` for channels `ch..ch + N` of one tile, `d[k]` the patch's pixel (k / 4, k % 4):
/// `B^T` down each column, then along each row.
#[inline(always)]
unsafe fn input_lanes<const N: usize>(src: &[*const f32; 16], dst: &[*mut f32; 16], ch: usize) {
    let mut p = [[0f32; N]; 16];
    for k in 0..16 {
        p[k] = load(src[k].add(ch));
    }
    for col in 0..4 {
        let r = bt([p[col], p[4 + col], p[8 + col], p[12 + col]]);
        for a in 0..4 {
            p[4 * a + col] = r[a];
        }
    }
    for a in 0..4 {
        let r = bt([p[4 * a], p[4 * a + 1], p[4 * a + 2], p[4 * a + 3]]);
        for b in 0..4 {
            store(dst[4 * a + b].add(ch), r[b]);
        }
    }
}

/// `B^T x` for a column `x` of 4 values (each N lanes).
#[inline(always)]
fn bt<const N: usize>([x0, x1, x2, x3]: [[f32; N]; 4]) -> [[f32; N]; 4] {
    [sub(x0, x2), add(x1, x2), sub(x2, x1), sub(x1, x3)]
}

/// Channels per step of the tile transforms: one AVX-512 vector of f32.
const LANES: usize = 16;

#[inline(always)]
unsafe fn load<const N: usize>(p: *const f32) -> [f32; N] {
    std::ptr::read_unaligned(p as *const [f32; N])
}

#[inline(always)]
unsafe fn store<const N: usize>(p: *mut f32, v: [f32; N]) {
    std::ptr::write_unaligned(p as *mut [f32; N], v)
}

#[inline(always)]
fn add<const N: usize>(mut a: [f32; N], b: [f32; N]) -> [f32; N] {
    for i in 0..N {
        a[i] += b[i];
    }
    a
}

#[inline(always)]
fn sub<const N: usize>(mut a: [f32; N], b: [f32; N]) -> [f32; N] {
    for i in 0..N {
        a[i] -= b[i];
    }
    a
}

#[inline(always)]
fn neg<const N: usize>(mut a: [f32; N]) -> [f32; N] {
    for v in &mut a {
        *v = -*v;
    }
    a
}

/// `y += A^T m A` for every tile, `A^T` = [1 1 1 0; 0 1 -1 -1], `m` the 16 products' values;
/// the outputs a tile has past the edge are dropped. Each row of tiles makes two rows of
/// outputs, channels last, then added into `y` channel by channel.
unsafe fn output_transform(s: &Shape, m: P<f32>, n0: usize, nb: usize, y: P<f32>) {
    let ((th, tw), c) = (s.tiles(), s.cy);
    let (t, row) = (nb * th * tw, 2 * tw * c);
    par_ranges(nb * th, 1, |r| {
        let mut buf = vec![0f32; 2 * row];
        for job in r {
            output_tile_row(s, m.at(job * tw * c), step(t, c), &mut buf, y, n0 + job / th, job % th);
        }
    });
}

/// The outputs of tile row `ty` of image `img`: `m` is the row's first tile in `M[0]`, `step`
/// the distance between the `M[e]`, `buf` room for two rows of outputs channels last.
unsafe fn output_tile_row(s: &Shape, m: *const f32, step: usize, buf: &mut [f32], y: P<f32>, img: usize, ty: usize) {
    let ((_, tw), (ho, wo), c) = (s.tiles(), s.out(), s.cy);
    let row = 2 * tw * c;
    output_row(m, step, c, tw, buf.as_mut_ptr(), row);
    for k in 0..2 {
        let oy = 2 * ty + k;
        if oy >= ho {
            break;
        }
        transpose_f32(buf[k * row..].as_ptr(), c, y.at(img * c * ho * wo + oy * wo), ho * wo, (wo, c), true);
    }
}

with_avx2! {
    /// The output transform of a row of `tw` tiles: `m` is the row's first tile in `M[0]`,
    /// `step` the distance between the `M[e]`; the two rows of outputs go to `out`, `row` apart.
    unsafe fn output_row<>(m: *const f32, step: usize, c: usize, tw: usize, out: *mut f32, row: usize) => output_row_body
}

#[inline(always)]
unsafe fn output_row_body(m: *const f32, step: usize, c: usize, tw: usize, out: *mut f32, row: usize) {
    for tx in 0..tw {
        let (mut src, mut dst) = ([m; 16], [out; 4]);
        for (e, p) in src.iter_mut().enumerate() {
            *p = m.add(e * step + tx * c);
        }
        for (q, p) in dst.iter_mut().enumerate() {
            *p = out.add((q / 2) * row + (2 * tx + q % 2) * c);
        }
        let mut ch = 0;
        while ch + LANES <= c {
            output_lanes::<LANES>(&src, &dst, ch);
            ch += LANES;
        }
        for ch in ch..c {
            output_lanes::<1>(&src, &dst, ch);
        }
    }
}

/// `A^T m A` for channels `ch..ch + N` of one tile: `A^T` down each column, then along the
/// two rows.
#[inline(always)]
unsafe fn output_lanes<const N: usize>(src: &[*const f32; 16], dst: &[*mut f32; 4], ch: usize) {
    let mut p = [[0f32; N]; 16];
    for e in 0..16 {
        p[e] = load(src[e].add(ch));
    }
    let mut s = [[[0f32; N]; 4]; 2];
    for b in 0..4 {
        [s[0][b], s[1][b]] = at([p[b], p[4 + b], p[8 + b], p[12 + b]]);
    }
    for k in 0..2 {
        let [y0, y1] = at(s[k]);
        store(dst[2 * k].add(ch), y0);
        store(dst[2 * k + 1].add(ch), y1);
    }
}

/// `A^T x` for a column `x` of 4 values (each N lanes).
#[inline(always)]
fn at<const N: usize>([x0, x1, x2, x3]: [[f32; N]; 4]) -> [[f32; N]; 2] {
    [add(add(x0, x1), x2), sub(sub(x1, x2), x3)]
}

/// `dw[cy, cx, 3, 3] = ` the weight gradient of [`conv3x3`] (not rotated) for `x` and `dy`
/// (overwritten): the 16 products' gradients `dU[e] = dM[e]^T @ V[e]`, with `dM` = `A dy A^T`
/// per output tile, summed over blocks of images in order, then `dw = G^T dU G` per (cy, cx).
///
/// # Safety
/// As for [`conv3x3`]; `dy` is `[n, cy, ho, wo]` and `dw` is written by no one else.
pub(crate) unsafe fn weight_grad(s: &Shape, x: P<f32>, dy: P<f32>, dw: P<f32>) {
    let (th, tw) = s.tiles();
    let plane = s.cy * s.cx;
    let mut du = Scratch::take::<f32>(16 * plane);
    let dup = P(du.ptr::<f32>());
    if s.n == 0 || th * tw == 0 {
        dup.slice(0, 16 * plane).fill(0.0);
    }
    for (n0, nb) in s.blocks() {
        let t = nb * th * tw;
        let (mut v, mut m) = (Scratch::take::<f32>(16 * step(t, s.cx)), Scratch::take::<f32>(16 * step(t, s.cy)));
        let (vp, mp) = (P(v.ptr::<f32>()), P(m.ptr::<f32>()));
        input_transform(s, x, n0, nb, vp);
        grad_output_transform(s, dy, n0, nb, mp);
        sixteen(|e| {
            let (a, b) = (Mat::row_major(mp.at(e * step(t, s.cy)), s.cy, true), Mat::row_major(vp.at(e * step(t, s.cx)), s.cx, false));
            let d = Mat::row_major(dup.at(e * plane), s.cx, false);
            gemm_split::gemm((s.cy, s.cx, t), d, n0 > 0, a, b, 1.0, 1.0, false);
        });
    }
    // dw[p][k] = sum_e dU[e][p] T[e][k] over the (out, in) pairs p
    let t = kernel_transform(false);
    let (a, b) = (Mat::row_major(dup.get(), plane, true), Mat::row_major(t.as_ptr(), 9, false));
    gemm_split::gemm((plane, 9, 16), Mat::row_major(dw.get(), 9, false), false, a, b, 0.0, 1.0, true);
}

/// `dM[e][i * tiles + t][c]` = `A g A^T` for the 2x2 block `g` of `dy` under tile t of image
/// n0 + i (zero past the edge), `A` = [1 0; 1 1; 1 -1; 0 -1]: the transpose of
/// [`output_transform`]. Each row of tiles first copies its two rows of `dy` channels last.
unsafe fn grad_output_transform(s: &Shape, dy: P<f32>, n0: usize, nb: usize, m: P<f32>) {
    let ((th, tw), (ho, wo), c) = (s.tiles(), s.out(), s.cy);
    let (t, row) = (nb * th * tw, 2 * tw * c);
    par_ranges(nb * th, 1, |r| {
        let mut buf = vec![0f32; 2 * row];
        for job in r {
            let (i, ty) = (job / th, job % th);
            buf.fill(0.0);
            for k in 0..2 {
                let oy = 2 * ty + k;
                if oy >= ho {
                    break;
                }
                let src = dy.at((n0 + i) * c * ho * wo + oy * wo);
                transpose_f32(src, ho * wo, buf[k * row..].as_mut_ptr(), c, (c, wo), false);
            }
            grad_row(buf.as_ptr(), row, c, tw, m.at(job * tw * c), step(t, c));
        }
    });
}

with_avx2! {
    /// The gradient transform of a row of `tw` tiles: `g` holds the two rows of `dy` under it,
    /// `row` apart, channels last; `m` is the row's first tile in `dM[0]`, `step` the distance
    /// between the `dM[e]`.
    unsafe fn grad_row<>(g: *const f32, row: usize, c: usize, tw: usize, m: *mut f32, step: usize) => grad_row_body
}

#[inline(always)]
unsafe fn grad_row_body(g: *const f32, row: usize, c: usize, tw: usize, m: *mut f32, step: usize) {
    for tx in 0..tw {
        let (mut src, mut dst) = ([g; 4], [m; 16]);
        for (q, p) in src.iter_mut().enumerate() {
            *p = g.add((q / 2) * row + (2 * tx + q % 2) * c);
        }
        for (e, p) in dst.iter_mut().enumerate() {
            *p = m.add(e * step + tx * c);
        }
        let mut ch = 0;
        while ch + LANES <= c {
            grad_lanes::<LANES>(&src, &dst, ch);
            ch += LANES;
        }
        for ch in ch..c {
            grad_lanes::<1>(&src, &dst, ch);
        }
    }
}

/// `A g A^T` for channels `ch..ch + N` of one tile's 2x2 block `g`: `A` down each column,
/// then along the four rows.
#[inline(always)]
unsafe fn grad_lanes<const N: usize>(src: &[*const f32; 4], dst: &[*mut f32; 16], ch: usize) {
    let g = |q: usize| load::<N>(src[q].add(ch));
    let (c0, c1) = (a([g(0), g(2)]), a([g(1), g(3)]));
    for r in 0..4 {
        let row = a([c0[r], c1[r]]);
        for b in 0..4 {
            store(dst[4 * r + b].add(ch), row[b]);
        }
    }
}

/// `A x` for a column `x` of 2 values (each N lanes).
#[inline(always)]
fn a<const N: usize>([x0, x1]: [[f32; N]; 2]) -> [[f32; N]; 4] {
    [x0, add(x0, x1), sub(x0, x1), neg(x1)]
}
