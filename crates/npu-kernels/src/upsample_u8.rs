//! uint8 bilinear and bicubic interpolation (no antialiasing) with PyTorch CPU's fixed-point
//! arithmetic, bit for bit: separable passes (width, then height, through a uint8 image), each
//! output a window of int16 weights summed in i32 with rounding, shifted and clamped to
//! 0..=255. The float weights come from the triangle or cubic (a = -0.75) filter, taps outside
//! the image folded onto the border tap.

use crate::dense::{host_values, store_values};
use crate::view::{err, par_ranges, View};
use crate::{DType, KernelError};

/// One dim's windows: the first input index and the int16 weights of each output.
struct Windows {
    start: Vec<usize>,
    weights: Vec<Vec<i32>>,
    precision: u32,
}

fn filter(cubic: bool, x: f64) -> f64 {
    let x = x.abs();
    if !cubic {
        return if x < 1.0 { 1.0 - x } else { 0.0 };
    }
    let a = -0.75;
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

fn windows(input: i64, output: i64, align_corners: bool, scale: Option<f64>, cubic: bool) -> Windows {
    let k: i64 = if cubic { 4 } else { 2 };
    let support = k / 2;
    let s = if align_corners {
        if output > 1 { (input - 1) as f64 / (output - 1) as f64 } else { 0.0 }
    } else {
        match scale {
            Some(v) if v > 0.0 => 1.0 / v,
            _ => input as f64 / output as f64,
        }
    };
    let (mut start, mut float_w, mut wt_max) = (vec![], vec![], 0f64);
    for i in 0..output {
        let mut real = if align_corners { s * i as f64 } else { s * (i as f64 + 0.5) - 0.5 };
        if !cubic && real < 0.0 {
            real = 0.0;
        }
        // PyTorch floors through f32 (floorf)
        let idx = ((real as f32).floor() as i64).min(input - 1);
        let lambda = (real - idx as f64).clamp(0.0, 1.0);
        let (umin, umax) = (idx - support + 1, idx + support + 1);
        let xmin = umin.max(0);
        let xsize = (umax.min(input) - xmin).clamp(0, k);
        let mut wt = vec![0f64; k as usize];
        let mut w_index = 0i64;
        for j in 0..k {
            wt[j as usize] = 0.0;
            let w = filter(cubic, (j + 1 - support) as f64 - lambda);
            if umin + j <= 0 {
                w_index = 0;
            } else if umin + j >= input - 1 {
                w_index = xsize - 1;
            }
            wt[w_index as usize] += w;
            wt_max = wt_max.max(wt[w_index as usize]);
            w_index += 1;
        }
        wt.truncate(xsize as usize);
        start.push(xmin as usize);
        float_w.push(wt);
    }
    let precision = (0..22u32).find(|&p| (0.5 + wt_max * (1u64 << (p + 1)) as f64) as i64 >= 32768).unwrap_or(22);
    let unit = (1u64 << precision) as f64;
    let weights = float_w
        .iter()
        .map(|ws| ws.iter().map(|&w| {
            let v = w * unit;
            (if v < 0.0 { (v - 0.5) as i32 } else { (v + 0.5) as i32 }) as i16 as i32
        }).collect())
        .collect();
    Windows { start, weights, precision }
}

/// One pass along a dim of `[planes, outer, n, inner]` data (`n` → `win.start.len()`).
fn pass(src: &[u8], planes: usize, n: usize, inner: usize, win: &Windows) -> Vec<u8> {
    let m = win.start.len();
    let mut out = vec![0u8; planes * m * inner];
    let round = 1i32 << (win.precision.max(1) - 1);
    let ptr = crate::dense::P(out.as_mut_ptr());
    par_ranges(planes, 1, |range| {
        for pl in range {
            let (s, o) = (&src[pl * n * inner..(pl + 1) * n * inner], unsafe { ptr.slice(pl * m * inner, m * inner) });
            for (j, (&x0, w)) in win.start.iter().zip(&win.weights).enumerate() {
                for c in 0..inner {
                    let acc = w.iter().enumerate().fold(round, |a, (t, &wt)| a + s[(x0 + t) * inner + c] as i32 * wt);
                    o[j * inner + c] = (acc >> win.precision).clamp(0, 255) as u8;
                }
            }
        }
    });
    out
}

/// `out = interpolate(input)` over the last two dims of uint8 views: bilinear (`cubic` false)
/// or bicubic; `scales` are (height, width).
pub fn upsample_u8(out: &View, input: &View, cubic: bool, align_corners: bool, scales: [Option<f64>; 2]) -> Result<(), KernelError> {
    const OP: &str = "upsample";
    input.validate(OP)?;
    out.validate(OP)?;
    out.check_writable(OP)?;
    let r = input.sizes.len();
    if input.dtype != DType::U8 || out.dtype != DType::U8 || r < 3 || out.sizes.len() != r || out.sizes[..r - 2] != input.sizes[..r - 2] {
        return Err(err(OP, format!("expected uint8 views of equal leading dims, got {:?} {} and {:?} {}", input.sizes, input.dtype.name(), out.sizes, out.dtype.name())));
    }
    let (ih, iw, oh, ow) = (input.sizes[r - 2], input.sizes[r - 1], out.sizes[r - 2], out.sizes[r - 1]);
    if ih <= 0 || iw <= 0 || oh <= 0 || ow <= 0 {
        return Err(err(OP, format!("input and output sizes should be greater than 0, got {:?} and {:?}", input.sizes, out.sizes)));
    }
    let planes = input.sizes[..r - 2].iter().product::<i64>() as usize;
    let mut data = host_values::<u8>(input)?;
    let (ih, iw, oh, ow) = (ih as usize, iw as usize, oh as usize, ow as usize);
    // width first (a pass is skipped where the size does not change), then height
    if iw != ow {
        data = pass(&data, planes * ih, iw, 1, &windows(iw as i64, ow as i64, align_corners, scales[1], cubic));
    }
    if ih != oh {
        data = pass(&data, planes, ih, ow, &windows(ih as i64, oh as i64, align_corners, scales[0], cubic));
    }
    store_values(out, &data)
}
