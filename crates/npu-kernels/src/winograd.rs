//! 3x3 convolution with stride 1 by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray,
//! 2015): each 2x2 block of outputs is `A^T [(G g G^T) ⊙ (B^T d B)] A` for the 4x4 input patch
//! `d` under it, so one block takes 16 multiplies instead of 36. Summed over input channels,
//! the 16 element-wise products become 16 independent matrix products
//! `M[e] = U[e] @ V[e]`, `U[e]` `[cy, cx]` from the weights and `V[e]` `[cx, tiles]` from the
//! input, which run on the GEMM kernel: 2.25x fewer multiply-adds than im2col + GEMM. The
//! input gradient is such a convolution too; the weight gradient is the transpose of the same
//! steps (`dU[e] = dM[e] @ V[e]^T`, then `G^T dU G`).
//!
//! The transforms use only additions, subtractions and halvings, so rounding stays close to a
//! direct sum (PyTorch CPU's oneDNN and cuDNN use the same algorithm for such shapes).

use crate::dense::{Mat, P};
use crate::gemm_split;
use crate::scratch::Scratch;
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
}

/// Whether Winograd pays off: enough channels for the products to dominate the transforms,
/// and outputs large enough that few tiles hang over the edge (7x7 computes 8x8).
pub(crate) fn worth_it(s: &Shape) -> bool {
    let (ho, wo) = s.out();
    s.cx >= 16 && s.cy >= 16 && ho >= 12 && wo >= 12 && s.pad[0] <= 2 && s.pad[1] <= 2
}

/// Tiles (columns of `V[e]`) per product, to bound the transformed buffers.
const TARGET_TILES: usize = 512;

/// `y[n, cy, ho, wo] += conv(x[n, cx, h, w], w[cy, cx, 3, 3])`, all contiguous f32.
///
/// # Safety
/// The pointers address contiguous tensors of these shapes; `y` is written by no one else.
pub(crate) unsafe fn conv3x3(s: &Shape, x: P<f32>, w: P<f32>, y: P<f32>) {
    let (th, tw) = s.tiles();
    let tpi = th * tw;
    if s.n == 0 || tpi == 0 {
        return;
    }
    let mut u = Scratch::take::<f32>(16 * s.cy * s.cx);
    let up = P(u.ptr::<f32>());
    filter_transform(s, w, up);
    let nb = TARGET_TILES.div_ceil(tpi).clamp(1, s.n);
    for n0 in (0..s.n).step_by(nb) {
        let nb = nb.min(s.n - n0);
        let t = nb * tpi;
        let (mut v, mut m) = (Scratch::take::<f32>(16 * s.cx * t), Scratch::take::<f32>(16 * s.cy * t));
        let (vp, mp) = (P(v.ptr::<f32>()), P(m.ptr::<f32>()));
        input_transform(s, x, n0, nb, vp);
        sixteen(|e| {
            let (a, b, d) = (up.at(e * s.cy * s.cx), vp.at(e * s.cx * t), mp.at(e * s.cy * t));
            let (a, b) = (Mat::row_major(a, s.cx, false), Mat::row_major(b, t, false));
            gemm_split::gemm((s.cy, t, s.cx), Mat::row_major(d, t, false), false, a, b, 0.0, 1.0, false);
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

/// `U[e][o][c]` = `G g G^T` for the 3x3 kernel `g` of (o, c), `G` = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
unsafe fn filter_transform(s: &Shape, w: P<f32>, u: P<f32>) {
    let plane = s.cy * s.cx;
    par_ranges(plane, 256, |r| {
        for oc in r {
            let g = std::slice::from_raw_parts(w.at(oc * 9), 9);
            let col = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
            // G g: 4 rows of 3
            let gg: [[f32; 3]; 4] = {
                let c0 = col(g[0], g[3], g[6]);
                let c1 = col(g[1], g[4], g[7]);
                let c2 = col(g[2], g[5], g[8]);
                std::array::from_fn(|i| [c0[i], c1[i], c2[i]])
            };
            for (i, row) in gg.iter().enumerate() {
                let t = col(row[0], row[1], row[2]);
                for (j, &v) in t.iter().enumerate() {
                    *u.at((i * 4 + j) * plane + oc) = v;
                }
            }
        }
    });
}

/// `V[e][c][i * tiles + t]` = `B^T d B` for the 4x4 patch `d` of tile t of image n0 + i,
/// `B^T` = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Each plane is first copied into a
/// zero-bordered buffer, so every tile reads without bounds checks, and both halves of the
/// transform run along whole rows (loops the compiler vectorizes).
unsafe fn input_transform(s: &Shape, x: P<f32>, n0: usize, nb: usize, v: P<f32>) {
    let (th, tw) = s.tiles();
    let (tpi, t) = (th * tw, nb * th * tw);
    let (ph, pw) = (2 * th + 2, 2 * tw + 2); // the padded plane the tiles cover
    par_ranges(nb * s.cx, 1, |r| {
        let mut buf = vec![0f32; ph * pw + 4 * pw];
        let (plane, rows) = buf.split_at_mut(ph * pw);
        for job in r {
            let (i, c) = (job / s.cx, job % s.cx);
            let img = std::slice::from_raw_parts(x.at(((n0 + i) * s.cx + c) * s.h * s.w), s.h * s.w);
            plane.fill(0.0);
            for yy in 0..s.h.min(ph - s.pad[0]) {
                let dst = &mut plane[(yy + s.pad[0]) * pw + s.pad[1]..][..s.w.min(pw - s.pad[1])];
                dst.copy_from_slice(&img[yy * s.w..][..dst.len()]);
            }
            let col0 = i * tpi;
            for ty in 0..th {
                // B^T along the 4 rows of this tile row, for every column at once
                let r: [&[f32]; 4] = std::array::from_fn(|k| &plane[(2 * ty + k) * pw..][..pw]);
                let (c0, rest) = rows.split_at_mut(pw);
                let (c1, rest) = rest.split_at_mut(pw);
                let (c2, c3) = rest.split_at_mut(pw);
                for j in 0..pw {
                    c0[j] = r[0][j] - r[2][j];
                    c1[j] = r[1][j] + r[2][j];
                    c2[j] = r[2][j] - r[1][j];
                    c3[j] = r[1][j] - r[3][j];
                }
                // then B along the columns of each tile, written tile after tile
                for (a, ca) in [&*c0, &*c1, &*c2, &*c3].into_iter().enumerate() {
                    let out = |b: usize| std::slice::from_raw_parts_mut(v.at(((a * 4 + b) * s.cx + c) * t + col0 + ty * tw), tw);
                    let (o0, o1, o2, o3) = (out(0), out(1), out(2), out(3));
                    for tx in 0..tw {
                        let q = &ca[2 * tx..2 * tx + 4];
                        o0[tx] = q[0] - q[2];
                        o1[tx] = q[1] + q[2];
                        o2[tx] = q[2] - q[1];
                        o3[tx] = q[1] - q[3];
                    }
                }
            }
        }
    });
}

/// `y += A^T m A` for every tile, `A^T` = [1 1 1 0; 0 1 -1 -1], `m` the 16 products' values;
/// the outputs a tile has past the edge are dropped. Rows of tiles at a time, as above.
unsafe fn output_transform(s: &Shape, m: P<f32>, n0: usize, nb: usize, y: P<f32>) {
    let (th, tw) = s.tiles();
    let (ho, wo) = s.out();
    let (tpi, t) = (th * tw, nb * th * tw);
    par_ranges(nb * s.cy, 1, |r| {
        let mut buf = vec![0f32; 8 * tw + 4 * tw];
        let (sums, rows) = buf.split_at_mut(8 * tw);
        for job in r {
            let (i, o) = (job / s.cy, job % s.cy);
            let out = std::slice::from_raw_parts_mut(y.at(((n0 + i) * s.cy + o) * ho * wo), ho * wo);
            let col0 = i * tpi;
            for ty in 0..th {
                let e = |a: usize, b: usize| std::slice::from_raw_parts(m.at(((a * 4 + b) * s.cy + o) * t + col0 + ty * tw), tw);
                // A^T along the rows of each tile: sums[(k * 4 + b)] for output row k and column b
                for b in 0..4 {
                    let (e0, e1, e2, e3) = (e(0, b), e(1, b), e(2, b), e(3, b));
                    let (s0, s1) = sums.split_at_mut(4 * tw);
                    let (s0, s1) = (&mut s0[b * tw..][..tw], &mut s1[b * tw..][..tw]);
                    for tx in 0..tw {
                        s0[tx] = e0[tx] + e1[tx] + e2[tx];
                        s1[tx] = e1[tx] - e2[tx] - e3[tx];
                    }
                }
                // then A along the columns, into two output rows of 2 * tw values
                for k in 0..2 {
                    let oy = 2 * ty + k;
                    if oy >= ho {
                        break;
                    }
                    let q = |b: usize| &sums[(k * 4 + b) * tw..][..tw];
                    let (q0, q1, q2, q3) = (q(0), q(1), q(2), q(3));
                    let row = &mut rows[..2 * tw];
                    for tx in 0..tw {
                        row[2 * tx] = q0[tx] + q1[tx] + q2[tx];
                        row[2 * tx + 1] = q1[tx] - q2[tx] - q3[tx];
                    }
                    for (d, &val) in out[oy * wo..][..wo].iter_mut().zip(row.iter()) {
                        *d += val;
                    }
                }
            }
        }
    });
}

/// `dw[cy, cx, 3, 3] = ` the weight gradient of [`conv3x3`] for `x` and `dy` (overwritten):
/// the 16 products' gradients `dU[e] = dM[e] @ V[e]^T`, with `dM` = `A dy A^T` per output tile,
/// summed over blocks of images in order, then `dw = G^T dU G` per (cy, cx).
///
/// # Safety
/// As for [`conv3x3`]; `dy` is `[n, cy, ho, wo]` and `dw` is written by no one else.
pub(crate) unsafe fn weight_grad(s: &Shape, x: P<f32>, dy: P<f32>, dw: P<f32>) {
    let (th, tw) = s.tiles();
    let tpi = th * tw;
    let mut du = Scratch::take::<f32>(16 * s.cy * s.cx);
    let dup = P(du.ptr::<f32>());
    std::slice::from_raw_parts_mut(dup.get(), 16 * s.cy * s.cx).fill(0.0);
    let nb = TARGET_TILES.div_ceil(tpi.max(1)).clamp(1, s.n.max(1));
    for n0 in (0..s.n).step_by(nb) {
        let nb = nb.min(s.n - n0);
        let t = nb * tpi;
        let (mut v, mut m) = (Scratch::take::<f32>(16 * s.cx * t), Scratch::take::<f32>(16 * s.cy * t));
        let (vp, mp) = (P(v.ptr::<f32>()), P(m.ptr::<f32>()));
        input_transform(s, x, n0, nb, vp);
        grad_output_transform(s, dy, n0, nb, mp);
        sixteen(|e| {
            let (a, b, d) = (mp.at(e * s.cy * t), vp.at(e * s.cx * t), dup.at(e * s.cy * s.cx));
            let (a, b) = (Mat::row_major(a, t, false), Mat::row_major(b, t, true));
            gemm_split::gemm((s.cy, s.cx, t), Mat::row_major(d, s.cx, false), true, a, b, 1.0, 1.0, false);
        });
    }
    // dw = G^T dU G, G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]
    let plane = s.cy * s.cx;
    par_ranges(plane, 256, |r| {
        for oc in r {
            let u = |a: usize, b: usize| *dup.at((a * 4 + b) * plane + oc);
            let gt = |u0: f32, u1: f32, u2: f32, u3: f32| [u0 + 0.5 * (u1 + u2), 0.5 * (u1 - u2), 0.5 * (u1 + u2) + u3];
            let cols: [[f32; 3]; 4] = std::array::from_fn(|b| gt(u(0, b), u(1, b), u(2, b), u(3, b)));
            let rows: [[f32; 3]; 3] = std::array::from_fn(|p| gt(cols[0][p], cols[1][p], cols[2][p], cols[3][p]));
            std::slice::from_raw_parts_mut(dw.at(oc * 9), 9).copy_from_slice(rows.as_flattened());
        }
    });
}

/// `dM[e][o][i * tiles + t]` = `A dy A^T` for the 2x2 block of `dy` under tile t of image
/// n0 + i (zero past the edge), `A` = [1 0; 1 1; 1 -1; 0 -1]: the transpose of
/// [`output_transform`].
unsafe fn grad_output_transform(s: &Shape, dy: P<f32>, n0: usize, nb: usize, m: P<f32>) {
    let (th, tw) = s.tiles();
    let (ho, wo) = s.out();
    let (tpi, t, pw) = (th * tw, nb * th * tw, 2 * tw);
    par_ranges(nb * s.cy, 1, |r| {
        let mut buf = vec![0f32; 2 * pw + 4 * pw];
        let (pair, rows) = buf.split_at_mut(2 * pw);
        for job in r {
            let (i, o) = (job / s.cy, job % s.cy);
            let g = std::slice::from_raw_parts(dy.at(((n0 + i) * s.cy + o) * ho * wo), ho * wo);
            let col0 = i * tpi;
            for ty in 0..th {
                // the tile row's two rows of dy, zero past the edge
                for k in 0..2 {
                    let dst = &mut pair[k * pw..][..pw];
                    dst.fill(0.0);
                    if 2 * ty + k < ho {
                        dst[..wo].copy_from_slice(&g[(2 * ty + k) * wo..][..wo]);
                    }
                }
                let (d0, d1) = pair.split_at(pw);
                // A along the rows: row a of every tile, for every column at once
                let (r0, rest) = rows.split_at_mut(pw);
                let (r1, rest) = rest.split_at_mut(pw);
                let (r2, r3) = rest.split_at_mut(pw);
                for j in 0..pw {
                    r0[j] = d0[j];
                    r1[j] = d0[j] + d1[j];
                    r2[j] = d0[j] - d1[j];
                    r3[j] = -d1[j];
                }
                // then A^T along the columns of each tile
                for (a, ra) in [&*r0, &*r1, &*r2, &*r3].into_iter().enumerate() {
                    let out = |b: usize| std::slice::from_raw_parts_mut(m.at(((a * 4 + b) * s.cy + o) * t + col0 + ty * tw), tw);
                    let (o0, o1, o2, o3) = (out(0), out(1), out(2), out(3));
                    for tx in 0..tw {
                        let q = &ra[2 * tx..2 * tx + 2];
                        o0[tx] = q[0];
                        o1[tx] = q[0] + q[1];
                        o2[tx] = q[0] - q[1];
                        o3[tx] = -q[1];
                    }
                }
            }
        }
    });
}
