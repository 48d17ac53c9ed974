//! GradScaler's unscale-and-check against a naive reference, over dtypes and strided layouts
//! with NaNs and infinities among the values.

mod common;

use common::*;
use npu_kernels::{unscale_and_check, DType};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn unscale_and_check_matches_reference(
        sizes in shape(),
        sp in spec(4, false),
        dt in float_dtype(),
        seed in any::<u64>(),
        inv in prop_oneof![Just(1.0f32), Just(0.5f32), Just(1.0f32 / 65536.0), Just(0.3f32)],
    ) {
        let sp = Spec { perm: sp.perm.into_iter().filter(|&d| d < sizes.len()).collect(), steps: sp.steps[..sizes.len()].to_vec(), bcast: vec![false; sizes.len()], offset: sp.offset };
        let (strides, len) = sp.layout(&sizes);
        let mut buf = Buf::new(dt, len);
        randomize(&mut buf, seed);
        let before = buf.f64s();
        let view = buf.view(&sizes, &strides, sp.offset);
        let found = unscale_and_check(&view, inv).unwrap();

        let mut want_found = false;
        let mut touched = vec![false; len];
        for idx in indices(&sizes) {
            let off = (sp.offset + offset_of(&idx, &strides)) as usize;
            touched[off] = true;
            let x = before[off];
            want_found |= !x.is_finite();
            let y = match dt {
                DType::F64 => if inv == 1.0 { x } else { x * inv as f64 },
                _ => if inv == 1.0 { x } else { ((x as f32) * inv) as f64 },
            };
            let got = read(dt, buf.elem(off as i64)).real();
            let want = read(dt, &write(dt, V::F(y))).real();
            prop_assert!(got == want || (got.is_nan() && want.is_nan()), "{dt:?} at {off}: {x} * {inv} gave {got}, want {want}");
        }
        prop_assert_eq!(found, want_found);
        // Elements outside the view are left alone.
        let after = buf.f64s();
        for i in 0..len {
            if !touched[i] {
                prop_assert!(after[i] == before[i] || (after[i].is_nan() && before[i].is_nan()));
            }
        }
    }
}
