//! Kernel micro-benchmarks (timings, never run by the tests): `cargo bench -p npu-kernels --bench micro`.

use npu_kernels::*;
use rayon::prelude::*;
use std::time::Instant;

fn median_ms(mut f: impl FnMut(), reps: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

fn view<T>(v: &mut [T], dt: DType, sizes: &[i64]) -> View {
    View::contiguous(v.as_mut_ptr() as *mut u8, dt, sizes)
}

fn bench() {
    let n = 16 << 20;
    let mut a: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.001).collect();
    let mut b: Vec<f32> = (0..n).map(|i| (i % 777) as f32 * 0.01).collect();
    let mut c = vec![0f32; n];
    let (av, bv, cv) = (
        view(&mut a, DType::F32, &[n as i64]),
        view(&mut b, DType::F32, &[n as i64]),
        view(&mut c, DType::F32, &[n as i64]),
    );
    let t = median_ms(
        || binary(BinaryOp::Add, &cv, &av, &bv, Scalar::Int(1), DType::F32).unwrap(),
        21,
    );
    let gbs = |ms: f64, bytes: usize| bytes as f64 / ms / 1e6;
    println!("add f32 16M: {t:.2} ms ({:.1} GB/s)", gbs(t, 12 * n));
    let (pa, pb) = (&a, &b);
    let tp = median_ms(
        || {
            c.par_chunks_mut(1 << 20).enumerate().for_each(|(k, ch)| {
                let o = k << 20;
                for (i, x) in ch.iter_mut().enumerate() {
                    *x = pa[o + i] + pb[o + i];
                }
            })
        },
        21,
    );
    println!(
        "plain loop, rayon 2 threads: {tp:.2} ms ({:.1} GB/s)",
        gbs(tp, 12 * n)
    );
    let t1 = median_ms(
        || {
            for ((x, y), z) in c.iter_mut().zip(pa).zip(pb) {
                *x = y + z;
            }
        },
        11,
    );
    println!(
        "plain loop, 1 thread: {t1:.2} ms ({:.1} GB/s)",
        gbs(t1, 12 * n)
    );
    let cv = view(&mut c, DType::F32, &[n as i64]);
    let t = median_ms(
        || {
            binary_scalar(
                BinaryOp::Mul,
                &cv,
                &av,
                Scalar::Float(0.5),
                Scalar::Int(1),
                DType::F32,
            )
            .unwrap()
        },
        21,
    );
    println!("mul f32 16M by scalar: {t:.2} ms");
    let t = median_ms(
        || binary(BinaryOp::Add, &av, &av, &bv, Scalar::Int(1), DType::F32).unwrap(),
        21,
    );
    println!("add_ f32 16M in place: {t:.2} ms");
    // broadcast row: (4096, 4096) + (4096,)
    let rowv = View::new(
        b.as_mut_ptr() as *mut u8,
        DType::F32,
        vec![4096, 4096],
        vec![0, 1],
    );
    let a2 = view(&mut a, DType::F32, &[4096, 4096]);
    let c2 = view(&mut c, DType::F32, &[4096, 4096]);
    let t = median_ms(
        || binary(BinaryOp::Add, &c2, &a2, &rowv, Scalar::Int(1), DType::F32).unwrap(),
        21,
    );
    println!("add f32 (4096,4096) + (4096,): {t:.2} ms");
    let colv = View::new(
        b.as_mut_ptr() as *mut u8,
        DType::F32,
        vec![4096, 4096],
        vec![1, 0],
    );
    let t = median_ms(
        || binary(BinaryOp::Add, &c2, &a2, &colv, Scalar::Int(1), DType::F32).unwrap(),
        21,
    );
    println!("add f32 (4096,4096) + (4096,1): {t:.2} ms");
    let at = View::new(
        a.as_mut_ptr() as *mut u8,
        DType::F32,
        vec![4096, 4096],
        vec![1, 4096],
    );
    let t = median_ms(
        || binary(BinaryOp::Add, &c2, &at, &a2, Scalar::Int(1), DType::F32).unwrap(),
        11,
    );
    println!("add f32 (4096,4096) transposed + contiguous: {t:.2} ms");

    // reductions
    let mut out = vec![0f32; 4096];
    let o1 = view(&mut out, DType::F32, &[4096, 1]);
    let t = median_ms(
        || reduce(ReduceOp::Sum, &o1, &a2, &[1], DType::F32).unwrap(),
        21,
    );
    println!(
        "sum (4096,4096) dim 1: {t:.2} ms ({:.1} GB/s)",
        gbs(t, 4 * n)
    );
    let o0 = view(&mut out, DType::F32, &[1, 4096]);
    let t = median_ms(
        || reduce(ReduceOp::Sum, &o0, &a2, &[0], DType::F32).unwrap(),
        21,
    );
    println!(
        "sum (4096,4096) dim 0: {t:.2} ms ({:.1} GB/s)",
        gbs(t, 4 * n)
    );
    let o = view(&mut out, DType::F32, &[1]);
    let t = median_ms(
        || reduce(ReduceOp::Sum, &o, &av, &[], DType::F32).unwrap(),
        21,
    );
    println!("sum f32 16M all: {t:.2} ms ({:.1} GB/s)", gbs(t, 4 * n));
    let t = median_ms(
        || reduce(ReduceOp::Amax, &o, &av, &[], DType::F32).unwrap(),
        21,
    );
    println!("amax f32 16M all: {t:.2} ms");
    let t = median_ms(
        || reduce(ReduceOp::Max, &o1, &a2, &[1], DType::F32).unwrap(),
        11,
    );
    println!("max (4096,4096) dim 1: {t:.2} ms");
    let mut oi = vec![0i64; 4096];
    let oiv = view(&mut oi, DType::I64, &[4096, 1]);
    let t = median_ms(
        || reduce_with_index(ReduceOp::Max, &o1, &oiv, &a2, 1).unwrap(),
        11,
    );
    println!("max+indices (4096,4096) dim 1: {t:.2} ms");
    let oiv0 = view(&mut oi, DType::I64, &[1, 4096]);
    let t = median_ms(
        || reduce_with_index(ReduceOp::Max, &o0, &oiv0, &a2, 0).unwrap(),
        11,
    );
    println!("max+indices (4096,4096) dim 0: {t:.2} ms");

    // unary
    let m = 1 << 20;
    let (a1, c1) = (
        view(&mut a[..m], DType::F32, &[m as i64]),
        view(&mut c[..m], DType::F32, &[m as i64]),
    );
    for op in [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::GeluErf,
        UnaryOp::GeluTanh,
        UnaryOp::Silu,
        UnaryOp::Relu,
    ] {
        let t = median_ms(|| unary(op, &c1, &a1, DType::F32).unwrap(), 11);
        println!("{op:?} f32 1M: {t:.3} ms");
    }
    // half
    let mut h: Vec<half::f16> = (0..n)
        .map(|i| half::f16::from_f32((i % 100) as f32))
        .collect();
    let mut h2 = h.clone();
    let (hv, h2v) = (
        view(&mut h, DType::F16, &[n as i64]),
        view(&mut h2, DType::F16, &[n as i64]),
    );
    let t = median_ms(
        || binary(BinaryOp::Add, &h2v, &hv, &hv, Scalar::Int(1), DType::F16).unwrap(),
        11,
    );
    println!("add f16 16M: {t:.2} ms");
    let t = median_ms(
        || reduce(ReduceOp::Sum, &o, &hv, &[], DType::F32).unwrap(),
        11,
    );
    println!("sum f16 16M (f32 acc): {t:.2} ms");
}

fn small_op_latency() {
    for n in [1usize, 100, 10_000] {
        let mut a = vec![1f32; n];
        let mut b = vec![2f32; n];
        let mut c = vec![0f32; n];
        let mut h = vec![half::f16::ONE; n];
        let (av, bv, cv) = (
            view(&mut a, DType::F32, &[n as i64]),
            view(&mut b, DType::F32, &[n as i64]),
            view(&mut c, DType::F32, &[n as i64]),
        );
        let hv = view(&mut h, DType::F16, &[n as i64]);
        let reps = 20000;
        let s = Instant::now();
        for _ in 0..reps {
            binary(BinaryOp::Add, &cv, &av, &bv, Scalar::Int(1), DType::F32).unwrap();
        }
        let t_add = s.elapsed().as_secs_f64() / reps as f64 * 1e6;
        let s = Instant::now();
        for _ in 0..reps {
            binary(BinaryOp::Add, &hv, &hv, &hv, Scalar::Int(1), DType::F16).unwrap();
        }
        let t_h = s.elapsed().as_secs_f64() / reps as f64 * 1e6;
        let mut o = [0f32];
        let ov = view(&mut o, DType::F32, &[1]);
        let s = Instant::now();
        for _ in 0..reps {
            reduce(ReduceOp::Sum, &ov, &av, &[], DType::F32).unwrap();
        }
        let t_sum = s.elapsed().as_secs_f64() / reps as f64 * 1e6;
        println!("n={n}: add f32 {t_add:.2} us, add_ f16 {t_h:.2} us, sum {t_sum:.2} us");
    }
}

/// One unary op on `N` elements (default 1M) of `DT` (f32 or bf16), on one thread and on the
/// pool: `OP=GeluErf N=65536 DT=bf16 cargo bench -p npu-kernels --bench micro -- unary`.
fn one_unary_op() {
    let m: usize = std::env::var("N").map_or(1 << 20, |v| v.parse().unwrap());
    let dt = match std::env::var("DT").as_deref() {
        Ok("bf16") => DType::BF16,
        _ => DType::F32,
    };
    let mut a: Vec<f32> = (0..m).map(|i| (i % 1000) as f32 * 0.01 - 5.0).collect();
    let mut a16: Vec<half::bf16> = a.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let (mut c, mut c16) = (vec![0f32; m], vec![half::bf16::ZERO; m]);
    let (a1, c1) = match dt {
        DType::BF16 => (view(&mut a16, dt, &[m as i64]), view(&mut c16, dt, &[m as i64])),
        _ => (view(&mut a, dt, &[m as i64]), view(&mut c, dt, &[m as i64])),
    };
    let op = std::env::var("OP").unwrap_or("GeluErf".into());
    let op = UnaryOp::ALL
        .into_iter()
        .find(|o| format!("{o:?}") == op)
        .unwrap();
    let name = dt.name();
    let t = median_ms(|| with_sequential(|| unary(op, &c1, &a1, dt).unwrap()), 51);
    println!("{op:?} {name} {m} sequential: {t:.4} ms");
    let t = median_ms(|| unary(op, &c1, &a1, dt).unwrap(), 51);
    println!("{op:?} {name} {m} parallel: {t:.4} ms");
}

/// Square matrix products in f32 and bf16, in GFLOP/s.
fn matmuls() {
    for dt in [DType::F32, DType::BF16] {
        for n in [1024usize, 2048] {
            let bytes = n * n * dt.size();
            let (mut a, mut b, mut c) = (vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]);
            // small nonzero values in either dtype: the bit patterns of 1.0 + i / 1024
            let one = if dt == DType::F32 { 0x3f80_0000u32 } else { 0x3f80 };
            for (i, ch) in a.chunks_mut(dt.size()).chain(b.chunks_mut(dt.size())).enumerate() {
                let v = one | ((i % 127) as u32) << if dt == DType::F32 { 16 } else { 0 };
                ch.copy_from_slice(&v.to_le_bytes()[..dt.size()]);
            }
            let s = [n as i64, n as i64];
            let (av, bv, cv) = (view(&mut a, dt, &s), view(&mut b, dt, &s), view(&mut c, dt, &s));
            let t = median_ms(|| matmul(&cv, &av, &bv, Scalar::Int(1), Scalar::Int(0)).unwrap(), 11);
            println!("matmul {dt:?} {n}: {t:.2} ms ({:.0} GFLOP/s)", 2.0 * (n * n * n) as f64 / t / 1e6);
        }
    }
}

/// Scaled dot-product attention forward and backward at the benchmark's shape
/// (B=4, H=8, S=512, D=64), f32, with and without a causal mask.
fn attention() {
    let (b, h, s, d) = (4usize, 8usize, 512usize, 64usize);
    let n = b * h * s * d;
    let mut data: Vec<Vec<f32>> = (0..8)
        .map(|k| (0..n).map(|i| ((i * 7 + k * 13) % 101) as f32 * 0.02 - 1.0).collect())
        .collect();
    let mut lse = vec![0f32; b * h * s];
    let sizes = [b as i64, h as i64, s as i64, d as i64];
    let v: Vec<View> = data.iter_mut().map(|x| view(x, DType::F32, &sizes)).collect();
    let lv = view(&mut lse, DType::F32, &[b as i64, h as i64, s as i64]);
    for causal in [false, true] {
        let p = AttentionParams { scale: 0.125, causal, dropout: None };
        let tf = median_ms(|| attention_forward(&v[3], &lv, &v[0], &v[1], &v[2], None, p).unwrap(), 11);
        let tb = median_ms(
            || attention_backward(&v[5], &v[6], &v[7], None, &v[4], &v[0], &v[1], &v[2], None, &v[3], &lv, p).unwrap(),
            11,
        );
        println!("attention (4, 8, 512, 64) f32 causal={causal}: forward {tf:.2} ms, backward {tb:.2} ms");
    }
}

/// Convolutions at batch 8 in f32, forward and the gradients: the benchmark's 3x3 ResNet stage
/// shapes, resnet18's 7x7/2 stem (weight gradient only, as in training) and a 3x3/2 conv.
fn convolutions() {
    // `-- conv 256` times only the shapes whose input channel count is given (`3`: the stem).
    let only: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    // (input channels, output channels, kernel, stride, input size): the benchmark's 3x3 shapes,
    // then resnet18's stem and a downsampling 3x3 at 112x112 input
    let shapes = [(64usize, 64usize, 3usize, 1usize, 56usize), (128, 128, 3, 1, 28), (256, 256, 3, 1, 14), (512, 512, 3, 1, 7), (3, 64, 7, 2, 112), (64, 128, 3, 2, 28)];
    for (ci, co, k, st, hw) in shapes {
        if !only.is_empty() && !only.contains(&ci) {
            continue;
        }
        let p = ConvParams {
            stride: vec![st as i64; 2],
            padding: vec![(k / 2) as i64; 2],
            dilation: vec![1, 1],
            transposed: false,
            output_padding: vec![0, 0],
            groups: 1,
        };
        let xs = vec![8, ci as i64, hw as i64, hw as i64];
        let ws = vec![co as i64, ci as i64, k as i64, k as i64];
        let ys = conv_output_sizes(&xs, &ws, &p).unwrap();
        let sizes = [xs.clone(), ws.clone(), ys.clone(), ys, xs, ws];
        let mut bufs: Vec<Vec<f32>> = sizes
            .iter()
            .enumerate()
            .map(|(j, s)| (0..s.iter().product::<i64>() as usize).map(|i| ((i * 7 + j * 3) % 97) as f32 * 0.01 - 0.5).collect())
            .collect();
        let v: Vec<View> = bufs.iter_mut().zip(&sizes).map(|(b, s)| view(b, DType::F32, s)).collect();
        // the stem's input is the image: no gradient for it
        let gi = (ci > 3).then_some(&v[4]);
        let tf = median_ms(|| conv_forward(&v[2], &v[0], &v[1], None, &p).unwrap(), 11);
        let tb = median_ms(|| conv_backward(&v[3], &v[0], &v[1], &p, gi, Some(&v[5]), None).unwrap(), 11);
        println!("conv2d {k}x{k}/{st} {ci}->{co}ch {hw}x{hw} b8 f32: forward {tf:.2} ms, backward {tb:.2} ms");
    }
}

/// Binary add at sizes that stay in L2 (the optimizer's per-parameter updates): in place, into a
/// third buffer, and a plain loop, each timed as the mean of 200 calls.
fn cached_adds() {
    for n in [65536usize, 589824] {
        let mut a: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.001).collect();
        let mut b: Vec<f32> = (0..n).map(|i| (i % 777) as f32 * 0.01).collect();
        let mut c = vec![0f32; n];
        let (av, bv, cv) = (view(&mut a, DType::F32, &[n as i64]), view(&mut b, DType::F32, &[n as i64]), view(&mut c, DType::F32, &[n as i64]));
        let us = |f: &mut dyn FnMut()| median_ms(|| (0..200).for_each(|_| f()), 5) * 5.0;
        let inplace = us(&mut || binary(BinaryOp::Add, &av, &av, &bv, Scalar::Int(1), DType::F32).unwrap());
        let out = us(&mut || binary(BinaryOp::Add, &cv, &av, &bv, Scalar::Int(1), DType::F32).unwrap());
        println!("add f32 {n}: in place {inplace:.1} us, out of place {out:.1} us");
    }
}

/// Row kernels on one thread, in ms: softmax and log_softmax over (1024, 1024) and layer norm
/// over (1024, 256) (TinyGPT's shapes), forward and backward.
fn row_kernels() {
    let fill = |n: usize, k: usize| -> Vec<f32> { (0..n).map(|i| ((i * 7 + k * 13) % 101) as f32 * 0.05 - 2.5).collect() };
    let one = |f: &mut dyn FnMut()| median_ms(|| with_sequential(&mut *f), 21);
    let n = 1024 * 1024;
    let (mut x, mut y, mut g, mut d) = (fill(n, 0), fill(n, 1), fill(n, 2), fill(n, 3));
    let sizes = [1024i64, 1024];
    let (xv, yv, gv, dv) = (view(&mut x, DType::F32, &sizes), view(&mut y, DType::F32, &sizes), view(&mut g, DType::F32, &sizes), view(&mut d, DType::F32, &sizes));
    for log in [false, true] {
        let tf = one(&mut || softmax(&yv, &xv, 1, log).unwrap());
        let tb = one(&mut || softmax_backward(&dv, &gv, &yv, 1, log).unwrap());
        println!("{} (1024, 1024) f32 one thread: forward {tf:.3} ms, backward {tb:.3} ms", if log { "log_softmax" } else { "softmax" });
    }
    let (rows, cols) = (1024usize, 256usize);
    let (mut x, mut y, mut dy, mut dx) = (fill(rows * cols, 0), fill(rows * cols, 1), fill(rows * cols, 2), fill(rows * cols, 3));
    let (mut w, mut b, mut gw, mut gb) = (fill(cols, 4), fill(cols, 5), fill(cols, 6), fill(cols, 7));
    let (mut mean, mut rstd) = (vec![0f32; rows], vec![1f32; rows]);
    let sizes = [rows as i64, cols as i64];
    let (xv, yv, dyv, dxv) = (view(&mut x, DType::F32, &sizes), view(&mut y, DType::F32, &sizes), view(&mut dy, DType::F32, &sizes), view(&mut dx, DType::F32, &sizes));
    let c = [cols as i64];
    let (wv, bv, gwv, gbv) = (view(&mut w, DType::F32, &c), view(&mut b, DType::F32, &c), view(&mut gw, DType::F32, &c), view(&mut gb, DType::F32, &c));
    let (mv, rv) = (view(&mut mean, DType::F32, &[rows as i64, 1]), view(&mut rstd, DType::F32, &[rows as i64, 1]));
    let tf = one(&mut || layer_norm(&yv, &mv, &rv, &xv, Some(&wv), Some(&bv), cols, 1e-5).unwrap());
    let tb = one(&mut || layer_norm_backward(&dyv, &xv, &mv, &rv, Some(&wv), cols, Some(&dxv), Some(&gwv), Some(&gbv)).unwrap());
    println!("layer_norm (1024, 256) f32 one thread: forward {tf:.3} ms, backward {tb:.3} ms");
}

fn main() {
    if std::env::args().any(|a| a == "rows") {
        return row_kernels();
    }
    if std::env::args().any(|a| a == "cached") {
        return cached_adds();
    }
    if std::env::args().any(|a| a == "conv") {
        return convolutions();
    }
    // `cargo bench -p npu-kernels --bench micro -- matmul` runs only the products.
    if std::env::args().any(|a| a == "matmul") {
        return matmuls();
    }
    if std::env::args().any(|a| a == "attention") {
        return attention();
    }
    if std::env::args().any(|a| a == "unary") {
        return one_unary_op();
    }
    bench();
    small_op_latency();
    one_unary_op();
    matmuls();
}
