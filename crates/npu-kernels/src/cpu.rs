//! Run-time CPU feature checks for the hot loops that are compiled three times: for the baseline
//! target, with AVX2+FMA and with AVX-512 enabled (the same source, so results are identical:
//! Rust never contracts or reassociates float operations, whatever the target features, and an
//! explicit `mul_add` is one rounding everywhere, a libm call on the baseline target).

/// Whether AVX2 and FMA may be used (the check is cached by std after the first call).
#[inline]
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether AVX-512 (F, BW, DQ, VL) may be used.
#[inline]
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name` (dispatching at run time) from `$body` (an `#[inline(always)]` function
/// with the same signature): an AVX-512 or AVX2 copy of the body is used when the CPU has it.
macro_rules! with_avx2 {
    (
        $(#[$m:meta])*
        $vis:vis fn $name:ident<$($g:ident: $bound:path),*>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        => $body:ident
    ) => {
        $(#[$m])*
        $vis fn $name<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? {
            $crate::cpu::with_avx2!(unsafe fn dispatch<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? => $body);
            // SAFETY: `$body` is a safe function, and `dispatch` picks a copy of it compiled
            // for features the CPU has
            unsafe { dispatch::<$($g),*>($($arg),*) }
        }
    };
    // The same for an `unsafe fn` body (raw pointers): the caller upholds the body's contract.
    (
        $(#[$m:meta])*
        $vis:vis unsafe fn $name:ident<$($g:ident: $bound:path),*>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        => $body:ident
    ) => {
        $(#[$m])*
        $vis unsafe fn $name<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn avx512<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? {
                    $body::<$($g),*>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2<$($g: $bound),*>($($arg: $ty),*) $(-> $ret)? {
                    $body::<$($g),*>($($arg),*)
                }
                if $crate::cpu::avx512() {
                    return avx512::<$($g),*>($($arg),*);
                }
                if $crate::cpu::avx2() {
                    return avx2::<$($g),*>($($arg),*);
                }
            }
            $body::<$($g),*>($($arg),*)
        }
    };
}
pub(crate) use with_avx2;
