//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
//! counter-based generator CUDA's curand and PyTorch's CUDA generator use. A value depends only
//! on (key, counter), so any element can be generated independently of the others.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// One Philox4x32 block with 10 rounds.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// The stream of blocks for a generator state (seed, offset). `offset` counts 32-bit values, as
/// PyTorch's philox offset does; kernels consume whole blocks of 4, so block `b` of a kernel is
/// counter `offset / 4 + b` (a 128-bit counter), keyed by the seed.
#[derive(Clone, Copy, Debug)]
pub struct PhiloxStream {
    key: [u32; 2],
    base: u128,
}

impl PhiloxStream {
    pub fn new(seed: u64, offset: u64) -> Self {
        PhiloxStream {
            key: [seed as u32, (seed >> 32) as u32],
            base: (offset / 4) as u128,
        }
    }

    /// Block `b` of this stream: four 32-bit values.
    #[inline]
    pub fn block(&self, b: u64) -> [u32; 4] {
        let c = self.base + b as u128;
        philox4x32_10(
            [
                c as u32,
                (c >> 32) as u32,
                (c >> 64) as u32,
                (c >> 96) as u32,
            ],
            self.key,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random123_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn stream_counter_layout() {
        let s = PhiloxStream::new(0x1234_5678_9abc_def0, 8);
        assert_eq!(
            s.block(3),
            philox4x32_10([5, 0, 0, 0], [0x9abc_def0, 0x1234_5678])
        );
        let s = PhiloxStream::new(1, u64::MAX);
        let c = (u64::MAX / 4) as u128 + 7;
        assert_eq!(
            s.block(7),
            philox4x32_10([c as u32, (c >> 32) as u32, (c >> 64) as u32, 0], [1, 0])
        );
    }
}
