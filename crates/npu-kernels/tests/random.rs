//! Random kernels: exact reference for the bit-level contract (Philox block i / E feeds
//! element i), layout independence, determinism across thread splits, and distribution sanity.

mod common;

use common::*;
use npu_kernels::*;
use proptest::prelude::*;

fn bits32(seed: u64, offset: u64, i: usize) -> u32 {
    PhiloxStream::new(seed, offset).block((i / 4) as u64)[i % 4]
}

fn bits64(seed: u64, offset: u64, i: usize) -> u64 {
    let b = PhiloxStream::new(seed, offset).block((i / 2) as u64);
    let l = 2 * (i % 2);
    b[l] as u64 | (b[l + 1] as u64) << 32
}

/// The kernels under test, as one signature: (dst, seed, offset) -> used.
type Kernel = Box<dyn Fn(&View, u64, u64) -> Result<u64, KernelError>>;

fn kernels() -> Vec<(&'static str, Kernel, Vec<DType>)> {
    let floats = vec![DType::F16, DType::BF16, DType::F32, DType::F64];
    let reals = vec![
        DType::U8,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
    ];
    let with_bool = [reals.clone(), vec![DType::Bool]].concat();
    vec![
        (
            "uniform",
            Box::new(|v: &View, s, o| uniform(v, -1.0, 2.0, s, o)),
            floats.clone(),
        ),
        (
            "normal",
            Box::new(|v: &View, s, o| normal(v, 1.0, 3.0, s, o)),
            floats.clone(),
        ),
        (
            "bernoulli",
            Box::new(|v: &View, s, o| bernoulli_scalar(v, 0.4, s, o)),
            with_bool.clone(),
        ),
        (
            "random_from_to",
            Box::new(|v: &View, s, o| random_from_to(v, -5, 100, s, o)),
            reals.clone(),
        ),
        (
            "random_from_to64",
            Box::new(|v: &View, s, o| random_from_to(v, 0, 1 << 40, s, o)),
            vec![DType::I64, DType::F64, DType::F32],
        ),
        ("random_full", Box::new(random_full), with_bool.clone()),
        (
            "exponential",
            Box::new(|v: &View, s, o| exponential(v, 0.5, s, o)),
            floats.clone(),
        ),
        (
            "geometric",
            Box::new(|v: &View, s, o| geometric(v, 0.3, s, o)),
            reals.clone(),
        ),
        (
            "log_normal",
            Box::new(|v: &View, s, o| log_normal(v, 0.5, 0.7, s, o)),
            floats.clone(),
        ),
        (
            "cauchy",
            Box::new(|v: &View, s, o| cauchy(v, 1.0, 2.0, s, o)),
            floats,
        ),
    ]
}

/// Runs a kernel on a fresh contiguous tensor.
fn run(k: &Kernel, dt: DType, sizes: &[i64], seed: u64, offset: u64) -> (Buf, u64) {
    let (b, v) = Buf::contiguous(dt, sizes);
    let used = k(&v, seed, offset).unwrap();
    (b, used)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// uniform, bernoulli and random_from_to against a per-element reference built from the
    /// public Philox stream, on strided destinations; elements outside the view stay untouched.
    #[test]
    fn kernels_match_reference(
        (sizes, ds) in shape().prop_flat_map(|s| { let r = s.len(); (Just(s), spec(r, false)) }),
        which in 0..4usize, wide in any::<bool>(), seed in any::<u64>(), offset in 0u64..1000,
    ) {
        let dt = if wide { DType::F64 } else { DType::F32 };
        let (strides, len) = ds.layout(&sizes);
        let mut dst = Buf::new(dt, len);
        randomize(&mut dst, seed);
        let mut want = Buf::new(dt, len);
        want.bytes_mut().copy_from_slice(dst.bytes());
        let unit = |i: usize| if wide {
            (bits64(seed, offset, i) >> 11) as f64 / 2f64.powi(53)
        } else {
            (bits32(seed, offset, i) >> 8) as f64 / 2f64.powi(24)
        };
        let reference = |i: usize| -> f64 {
            match which {
                0 => {
                    let v = -1.0 + unit(i) * 3.0;
                    let v = if wide { v } else { v as f32 as f64 };
                    if v == 2.0 { -1.0 } else { v }
                }
                1 => (unit(i) < 0.25) as u8 as f64,
                2 => (-7 + (bits32(seed, offset, i) as u64 % 10) as i64) as f64,
                _ => (bits64(seed, offset, i) % (1 << 33)) as f64,
            }
        };
        for (i, idx) in indices(&sizes).iter().enumerate() {
            want.set(ds.offset + offset_of(idx, &strides), &write(dt, V::F(reference(i))));
        }
        let v = dst.view(&sizes, &strides, ds.offset);
        let used = match which {
            0 => uniform(&v, -1.0, 2.0, seed, offset),
            1 => bernoulli_scalar(&v, 0.25, seed, offset),
            2 => random_from_to(&v, -7, 10, seed, offset),
            _ => random_from_to(&v, 0, 1 << 33, seed, offset),
        }.unwrap();
        let numel: u64 = sizes.iter().product::<i64>() as u64;
        let per_block = if which == 3 || (wide && which < 2) { 2 } else { 4 };
        prop_assert_eq!(used, numel.div_ceil(per_block) * 4);
        assert_same(&dst, &want, "random reference");
    }

    /// Every kernel writes the same values to a strided view as to a contiguous one.
    #[test]
    fn strided_output_equals_contiguous(
        (sizes, ds) in shape().prop_flat_map(|s| { let r = s.len(); (Just(s), spec(r, false)) }),
        k in 0..10usize, d in 0..16usize, seed in any::<u64>(), offset in 0u64..100,
    ) {
        let (_, kernel, dtypes) = &kernels()[k];
        let dt = dtypes[d % dtypes.len()];
        let (strides, len) = ds.layout(&sizes);
        let mut dst = Buf::new(dt, len);
        let used = kernel(&dst.view(&sizes, &strides, ds.offset), seed, offset).unwrap();
        let (want, want_used) = run(kernel, dt, &sizes, seed, offset);
        prop_assert_eq!(used, want_used);
        for (i, idx) in indices(&sizes).iter().enumerate() {
            let got = dst.elem(ds.offset + offset_of(idx, &strides));
            prop_assert!(same(dt, got, want.elem(i as i64)), "element {}", i);
        }
    }
}

#[test]
fn parallel_split_gives_the_same_values() {
    let sizes = [1 << 20];
    for (name, k, dtypes) in kernels() {
        for &dt in dtypes
            .iter()
            .filter(|d| matches!(d, DType::F32 | DType::F64 | DType::I64))
        {
            let (par, used) = run(&k, dt, &sizes, 42, 8);
            let (seq, used_seq) = with_sequential(|| run(&k, dt, &sizes, 42, 8));
            assert_eq!(used, used_seq);
            assert_same(&par, &seq, &format!("{name} {}", dt.name()));
        }
    }
    // tensor inputs too, broadcast along one dim
    let sizes = [512i64, 1024];
    let (mut p, _) = Buf::contiguous(DType::F32, &[1024]);
    for i in 0..1024 {
        p.set(i, &(i as f32 / 1023.0).to_le_bytes());
    }
    let pv = p.view(&sizes, &[0, 1], 0);
    let go = || {
        let (b, v) = Buf::contiguous(DType::F64, &sizes);
        bernoulli_tensor(&v, &pv, 1, 0).unwrap();
        let (c, w) = Buf::contiguous(DType::F32, &sizes);
        normal_tensor(&w, &pv, &pv, 1, 0).unwrap();
        (b, c)
    };
    let (b1, c1) = go();
    let (b2, c2) = with_sequential(go);
    assert_same(&b1, &b2, "bernoulli_tensor");
    assert_same(&c1, &c2, "normal_tensor");
}

#[test]
fn seed_and_offset_select_the_stream() {
    for (name, k, dtypes) in kernels() {
        for dt in [dtypes[0], *dtypes.last().unwrap()] {
            let (a, used) = run(&k, dt, &[2000], 5, 0);
            let (b, _) = run(&k, dt, &[2000], 5, 0);
            assert_eq!(a.bytes(), b.bytes(), "{name}: same seed and offset");
            let differ = |x: &Buf| (0..2000).filter(|&i| x.elem(i) != a.elem(i)).count();
            let (c, _) = run(&k, dt, &[2000], 5, used);
            let (d, _) = run(&k, dt, &[2000], 6, 0);
            // bernoulli/bool outputs agree half the time by chance; the rest nearly never
            assert!(
                differ(&c) > 500,
                "{name} {}: offset must change the output",
                dt.name()
            );
            assert!(
                differ(&d) > 500,
                "{name} {}: seed must change the output",
                dt.name()
            );
            // generating 2n at offset o, or n at o then n at o + used(n), gives the same values
            let (whole, _) = run(&k, dt, &[4000], 5, 0);
            let tail = &whole.bytes()[2000 * dt.size()..];
            assert!(
                tail.chunks(dt.size())
                    .zip(c.bytes().chunks(dt.size()))
                    .all(|(x, y)| same(dt, x, y)),
                "{name} {}: continuing at offset + used",
                dt.name()
            );
        }
    }
}

fn sample(k: impl Fn(&View) -> Result<u64, KernelError>, dt: DType, n: usize) -> Vec<f64> {
    let (b, v) = Buf::contiguous(dt, &[n as i64]);
    k(&v).unwrap();
    b.f64s()
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (m, x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n)
}

fn frac(x: &[f64], f: impl Fn(f64) -> bool) -> f64 {
    x.iter().filter(|&&v| f(v)).count() as f64 / x.len() as f64
}

/// |got - want| within 5 standard errors of a proportion p over n samples.
fn assert_prop(got: f64, p: f64, n: usize, what: &str) {
    let tol = 5.0 * (p * (1.0 - p) / n as f64).sqrt();
    assert!((got - p).abs() <= tol, "{what}: {got} vs {p} (tol {tol})");
}

const N: usize = 1 << 20;

#[test]
fn uniform_statistics() {
    for dt in [DType::F32, DType::F64] {
        let x = sample(|v| uniform(v, -2.0, 3.0, 11, 0), dt, N);
        let (m, var) = mean_var(&x);
        assert!(
            (m - 0.5).abs() < 5.0 * (25.0 / 12.0 / N as f64).sqrt(),
            "mean {m}"
        );
        assert!(
            (var - 25.0 / 12.0).abs() < 5.0 * (625.0 / 180.0 / N as f64).sqrt(),
            "var {var}"
        );
        assert!(x.iter().all(|&v| (-2.0..3.0).contains(&v)));
        assert_prop(frac(&x, |v| v < -1.0), 0.2, N, "uniform cdf");
    }
    // low precision: rounding must never produce `to`
    for dt in [DType::F16, DType::BF16] {
        let x = sample(|v| uniform(v, 0.0, 1.0, 3, 0), dt, N);
        assert!(x.iter().all(|&v| (0.0..1.0).contains(&v)), "{}", dt.name());
        assert_prop(frac(&x, |v| v < 0.5), 0.5, N, "half uniform");
    }
}

#[test]
fn normal_statistics() {
    for dt in [DType::F32, DType::F64] {
        let x = sample(|v| normal(v, 1.5, 2.0, 12, 0), dt, N);
        let (m, var) = mean_var(&x);
        assert!((m - 1.5).abs() < 5.0 * 2.0 / (N as f64).sqrt(), "mean {m}");
        assert!(
            (var - 4.0).abs() < 5.0 * (32.0 / N as f64).sqrt(),
            "var {var}"
        );
        assert_prop(
            frac(&x, |v| (v - 1.5).abs() < 2.0),
            0.682_689_49,
            N,
            "within 1 sigma",
        );
        assert_prop(
            frac(&x, |v| (v - 1.5).abs() < 4.0),
            0.954_499_74,
            N,
            "within 2 sigma",
        );
    }
    // per-element mean and std
    let n = 1 << 18;
    let (mut mean, _) = Buf::contiguous(DType::F64, &[2]);
    mean.set(0, &(-10.0f64).to_le_bytes());
    mean.set(1, &(10.0f64).to_le_bytes());
    let (mut std, _) = Buf::contiguous(DType::F16, &[1]);
    std.set(0, &half::f16::from_f32(0.5).to_le_bytes());
    let mv = mean.view(&[n, 2], &[0, 1], 0);
    let sv = std.view(&[n, 2], &[0, 0], 0);
    let (out, ov) = Buf::contiguous(DType::F32, &[n, 2]);
    normal_tensor(&ov, &mv, &sv, 9, 0).unwrap();
    let x = out.f64s();
    for (col, mu) in [(0, -10.0), (1, 10.0)] {
        let c: Vec<f64> = x.iter().skip(col).step_by(2).copied().collect();
        let (m, var) = mean_var(&c);
        assert!(
            (m - mu).abs() < 5.0 * 0.5 / (n as f64).sqrt(),
            "col {col} mean {m}"
        );
        assert!(
            (var - 0.25).abs() < 5.0 * (2.0 * 0.0625 / n as f64).sqrt(),
            "col {col} var {var}"
        );
    }
}

#[test]
fn bernoulli_statistics() {
    for dt in [DType::Bool, DType::U8, DType::F32, DType::F64, DType::I64] {
        let x = sample(|v| bernoulli_scalar(v, 0.3, 13, 0), dt, N);
        assert!(x.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_prop(frac(&x, |v| v == 1.0), 0.3, N, dt.name());
    }
    assert!(sample(|v| bernoulli_scalar(v, 1.0, 1, 0), DType::F32, 1000)
        .iter()
        .all(|&v| v == 1.0));
    assert!(sample(|v| bernoulli_scalar(v, 0.0, 1, 0), DType::F32, 1000)
        .iter()
        .all(|&v| v == 0.0));
    // per-element p: column j has p = j / 4
    let (mut p, _) = Buf::contiguous(DType::BF16, &[4]);
    for j in 0..4 {
        p.set(j, &half::bf16::from_f32(j as f32 / 4.0).to_le_bytes());
    }
    let n = 1 << 18;
    let pv = p.view(&[n, 4], &[0, 1], 0);
    let (out, ov) = Buf::contiguous(DType::U8, &[n, 4]);
    bernoulli_tensor(&ov, &pv, 2, 0).unwrap();
    for j in 0..4 {
        let c: Vec<f64> = out
            .bytes()
            .iter()
            .skip(j)
            .step_by(4)
            .map(|&b| b as f64)
            .collect();
        assert_prop(
            frac(&c, |v| v == 1.0),
            j as f64 / 4.0,
            n as usize,
            "bernoulli_tensor",
        );
    }
}

#[test]
fn integer_ranges() {
    let n = 700_000;
    for dt in [DType::I32, DType::F32, DType::I8] {
        let x = sample(|v| random_from_to(v, -3, 7, 14, 0), dt, n);
        for k in -3..4 {
            assert_prop(
                frac(&x, |v| v == k as f64),
                1.0 / 7.0,
                n,
                "random_from_to bucket",
            );
        }
        assert!(x
            .iter()
            .all(|&v| (-3.0..4.0).contains(&v) && v.fract() == 0.0));
    }
    let x = sample(|v| random_from_to(v, 0, 2, 1, 0), DType::Bool, 10_000);
    assert_prop(frac(&x, |v| v == 1.0), 0.5, 10_000, "bool");
    // 64-bit draws
    let range = 1u64 << 40;
    let x = sample(|v| random_from_to(v, 1 << 41, range, 15, 0), DType::I64, N);
    assert!(x
        .iter()
        .all(|&v| v >= 2f64.powi(41) && v < 2f64.powi(41) + range as f64));
    let (m, _) = mean_var(&x);
    let want = 2f64.powi(41) + range as f64 / 2.0;
    assert!(
        (m - want).abs() < 5.0 * range as f64 / (12.0 * N as f64).sqrt(),
        "mean {m}"
    );
    // range 0 means the full 64-bit range
    let (b, v) = Buf::contiguous(DType::I64, &[10_000]);
    random_from_to(&v, i64::MIN, 0, 16, 0).unwrap();
    let neg = b
        .bytes()
        .chunks(8)
        .filter(|c| i64::from_le_bytes((*c).try_into().unwrap()) < 0)
        .count();
    assert_prop(neg as f64 / 10_000.0, 0.5, 10_000, "full range sign");
}

#[test]
fn random_full_ranges() {
    let check = |dt: DType, max: f64| {
        let x = sample(|v| random_full(v, 17, 0), dt, 200_000);
        assert!(
            x.iter().all(|&v| v >= 0.0 && v <= max && v.fract() == 0.0),
            "{}",
            dt.name()
        );
        x
    };
    check(DType::F16, 2048.0);
    check(DType::BF16, 256.0);
    check(DType::F32, 16_777_216.0);
    check(DType::F64, 2f64.powi(53));
    check(DType::I64, 2f64.powi(63));
    check(DType::I8, 127.0);
    let x = check(DType::U8, 255.0);
    let mut seen = [false; 256];
    x.iter().for_each(|&v| seen[v as usize] = true);
    assert!(seen.iter().all(|&s| s));
    let x = check(DType::Bool, 1.0);
    assert_prop(frac(&x, |v| v == 1.0), 0.5, x.len(), "bool");
}

#[test]
fn continuous_distributions() {
    // exponential(lambda = 2): mean 1/2, variance 1/4, strictly positive
    for dt in [DType::F32, DType::F64] {
        let x = sample(|v| exponential(v, 2.0, 18, 0), dt, N);
        let (m, var) = mean_var(&x);
        assert!(
            (m - 0.5).abs() < 5.0 * 0.5 / (N as f64).sqrt(),
            "exp mean {m}"
        );
        assert!((var - 0.25).abs() < 0.01, "exp var {var}");
        assert!(x.iter().all(|&v| v > 0.0));
    }
    assert!(sample(|v| exponential(v, 1.0, 19, 0), DType::F16, N)
        .iter()
        .all(|&v| v > 0.0));
    // geometric(p = 0.2): integers >= 1, mean 5, variance 20
    for dt in [DType::F32, DType::I32] {
        let x = sample(|v| geometric(v, 0.2, 20, 0), dt, N);
        let (m, _) = mean_var(&x);
        assert!(
            (m - 5.0).abs() < 5.0 * (20.0 / N as f64).sqrt(),
            "geometric mean {m}"
        );
        assert!(x.iter().all(|&v| v >= 1.0 && v.fract() == 0.0));
        assert_prop(frac(&x, |v| v == 1.0), 0.2, N, "geometric P(1)");
    }
    // log-normal(0, 0.5): median 1, mean exp(0.125)
    let x = sample(|v| log_normal(v, 0.0, 0.5, 21, 0), DType::F64, N);
    assert_prop(frac(&x, |v| v < 1.0), 0.5, N, "log-normal median");
    let (m, var) = mean_var(&x);
    assert!(
        (m - 0.125f64.exp()).abs() < 5.0 * (var / N as f64).sqrt(),
        "log-normal mean {m}"
    );
    assert!(x.iter().all(|&v| v > 0.0));
    // cauchy(1, 2): median 1, quartiles at 1 -/+ 2
    let x = sample(|v| cauchy(v, 1.0, 2.0, 22, 0), DType::F32, N);
    assert_prop(frac(&x, |v| v < 1.0), 0.5, N, "cauchy median");
    assert_prop(
        frac(&x, |v| (v - 1.0).abs() < 2.0),
        0.5,
        N,
        "cauchy quartiles",
    );
    assert!(x.iter().all(|v| v.is_finite()));
}

#[test]
fn randperm_is_a_uniform_permutation() {
    for dt in [DType::I64, DType::I32, DType::F32, DType::F16] {
        let n = 2000;
        let (b, v) = Buf::contiguous(dt, &[n]);
        assert_eq!(randperm(&v, n, 3, 0).unwrap(), 4000);
        let mut x: Vec<i64> = b.f64s().iter().map(|&v| v as i64).collect();
        let first = x.clone();
        x.sort();
        assert_eq!(x, (0..n).collect::<Vec<_>>(), "{}", dt.name());
        assert_ne!(first, x, "not shuffled");
    }
    // strided output and determinism
    let mut buf = Buf::new(DType::I64, 20);
    let sv = buf.view(&[10], &[2], 0);
    randperm(&sv, 10, 9, 4).unwrap();
    let (c, cv) = Buf::contiguous(DType::I64, &[10]);
    randperm(&cv, 10, 9, 4).unwrap();
    let strided: Vec<f64> = buf.f64s().into_iter().step_by(2).collect();
    assert_eq!(strided, c.f64s());
    // all 6 orders of 3 elements equally likely
    let runs = 30_000;
    let mut counts = std::collections::HashMap::new();
    for s in 0..runs {
        let (b, v) = Buf::contiguous(DType::I64, &[3]);
        randperm(&v, 3, s, 0).unwrap();
        *counts.entry(b.bytes().to_vec()).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 6);
    for &c in counts.values() {
        assert_prop(
            c as f64 / runs as f64,
            1.0 / 6.0,
            runs as usize,
            "randperm order",
        );
    }
}

#[test]
fn argument_errors() {
    let (_keep, f) = Buf::contiguous(DType::F32, &[4]);
    let (_keep2, i) = Buf::contiguous(DType::I32, &[4]);
    let msg = |r: Result<u64, KernelError>| r.unwrap_err().0;
    assert_eq!(
        msg(uniform(&i, 0.0, 1.0, 0, 0)),
        "uniform_: unsupported dtype Int"
    );
    assert_eq!(
        msg(uniform(&f, 1.0, 0.0, 0, 0)),
        "uniform_ expects to return a [from, to) range, but found from=1 > to=0"
    );
    assert_eq!(
        msg(uniform(&f, 0.0, f64::INFINITY, 0, 0)),
        "to is out of bounds for float"
    );
    assert_eq!(
        msg(normal(&f, 0.0, -1.0, 0, 0)),
        "normal expects std >= 0.0, but found std -1"
    );
    assert_eq!(
        msg(normal(&i, 0.0, 1.0, 0, 0)),
        "normal_: unsupported dtype Int"
    );
    assert_eq!(
        msg(bernoulli_scalar(&f, 2.0, 0, 0)),
        "bernoulli_ expects p to be in [0, 1], but got p=2"
    );
    assert_eq!(
        msg(bernoulli_scalar(&f, f64::NAN, 0, 0)),
        "bernoulli_ expects p to be in [0, 1], but got p=nan"
    );
    assert_eq!(
        msg(exponential(&f, 0.0, 0, 0)),
        "exponential_ expects lambda > 0.0, but found lambda=0"
    );
    assert_eq!(
        msg(geometric(&f, 1.0, 0, 0)),
        "geometric_ expects p to be in (0, 1), but got p=1"
    );
    assert_eq!(
        msg(log_normal(&f, 0.0, 0.0, 0, 0)),
        "log_normal_ expects std > 0.0, but found std=0"
    );
    assert_eq!(
        msg(cauchy(&f, 0.0, -1.0, 0, 0)),
        "cauchy_ expects sigma > 0.0, but found sigma=-1"
    );
    let (_kb, b) = Buf::contiguous(DType::Bool, &[4]);
    assert_eq!(
        msg(geometric(&b, 0.5, 0, 0)),
        "geometric_: unsupported dtype Bool"
    );
    let (_kc, c) = Buf::contiguous(DType::C64, &[4]);
    assert_eq!(
        msg(random_full(&c, 0, 0)),
        "random_: unsupported dtype ComplexFloat"
    );
    // tensor arguments
    let (mut p, pv) = Buf::contiguous(DType::F32, &[4]);
    p.set(2, &1.5f32.to_le_bytes());
    assert_eq!(
        msg(bernoulli_tensor(&f, &pv, 0, 0)),
        "bernoulli: p must be in [0, 1], got 1.5"
    );
    p.set(2, &(-1.0f32).to_le_bytes());
    assert_eq!(
        msg(normal_tensor(&f, &pv, &pv, 0, 0)),
        "normal expects all elements of std >= 0.0"
    );
    let short = View {
        sizes: vec![2],
        strides: vec![1],
        ..pv.clone()
    };
    assert!(msg(normal_tensor(&f, &short, &pv, 0, 0)).contains("not broadcast"));
    // outputs
    let alias = View {
        sizes: vec![4, 4],
        strides: vec![0, 1],
        ..f.clone()
    };
    assert!(msg(uniform(&alias, 0.0, 1.0, 0, 0)).contains("more than one element"));
    let (_kh, h) = Buf::contiguous(DType::F16, &[2050]);
    assert_eq!(
        msg(randperm(&h, 2050, 0, 0)),
        "n cannot be greater than 2049 for Half type."
    );
    let (_ku, u) = Buf::contiguous(DType::U8, &[257]);
    assert!(randperm(&u, 257, 0, 0).is_err());
    assert!(randperm(&f, 5, 0, 0).unwrap_err().0.contains("size [5]"));
    assert!(randperm(&f, -1, 0, 0).is_err());
    // zero-size outputs consume nothing
    let (_kz, z) = Buf::contiguous(DType::F32, &[0, 3]);
    assert_eq!(uniform(&z, 0.0, 1.0, 0, 0).unwrap(), 0);
    assert_eq!(
        randperm(
            &View {
                sizes: vec![0],
                strides: vec![1],
                ..z.clone()
            },
            0,
            0,
            0
        )
        .unwrap(),
        0
    );
}

#[test]
fn offset_increments() {
    let (_k1, f) = Buf::contiguous(DType::F32, &[10]);
    let (_k2, d) = Buf::contiguous(DType::F64, &[10]);
    let (_k3, l) = Buf::contiguous(DType::I64, &[10]);
    assert_eq!(uniform(&f, 0.0, 1.0, 0, 0).unwrap(), 12);
    assert_eq!(uniform(&d, 0.0, 1.0, 0, 0).unwrap(), 20);
    assert_eq!(normal(&f, 0.0, 1.0, 0, 0).unwrap(), 12);
    assert_eq!(normal(&d, 0.0, 1.0, 0, 0).unwrap(), 20);
    assert_eq!(random_from_to(&l, 0, 10, 0, 0).unwrap(), 12);
    assert_eq!(random_from_to(&l, 0, 1 << 32, 0, 0).unwrap(), 20);
    assert_eq!(random_full(&l, 0, 0).unwrap(), 20);
    assert_eq!(randperm(&l, 10, 0, 0).unwrap(), 20);
    // 0-dim tensors hold one element
    let (_k4, s) = Buf::contiguous(DType::F32, &[]);
    assert_eq!(uniform(&s, 0.0, 1.0, 0, 0).unwrap(), 4);
}
