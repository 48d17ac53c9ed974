//! Data structures of the caching allocator: blocks in an index arena (neighbours linked by
//! id so split/merge is O(1)), and the free pools ordered for best-fit search.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::{Index, IndexMut};

use crate::executor::StreamState;

pub(crate) type BlockId = usize;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BlockState {
    Allocated,
    /// Freed by the user, but recorded streams may still use it: not reusable yet.
    Pending,
    /// In a free pool.
    Free,
}

pub(crate) struct Block {
    pub ptr: usize,
    pub size: usize,
    /// Size the user asked for (meaningful while allocated).
    pub requested: usize,
    /// Stream the block's segment was allocated for; reuse is limited to it.
    pub stream: i64,
    /// That stream's state (to read its submitted count when the block is freed).
    pub sst: &'static StreamState,
    pub small: bool,
    pub state: BlockState,
    pub prev: Option<BlockId>,
    pub next: Option<BlockId>,
    /// Start address of the segment (key of the allocator's segment map).
    pub seg: usize,
    /// Other streams that used the block (`record_stream`).
    pub uses: Vec<&'static StreamState>,
    /// When it was last freed, for garbage collection (oldest first).
    pub freed_tick: u64,
}

impl Block {
    /// Part of a segment that has been split (as opposed to spanning the whole segment).
    pub fn is_split(&self) -> bool {
        self.prev.is_some() || self.next.is_some()
    }
}

#[derive(Default)]
pub(crate) struct Arena {
    blocks: Vec<Option<Block>>,
    spare: Vec<BlockId>,
}

impl Arena {
    pub fn insert(&mut self, b: Block) -> BlockId {
        match self.spare.pop() {
            Some(id) => {
                self.blocks[id] = Some(b);
                id
            }
            None => {
                self.blocks.push(Some(b));
                self.blocks.len() - 1
            }
        }
    }

    pub fn remove(&mut self, id: BlockId) -> Block {
        let b = self.blocks[id].take().expect("allocator bug: removing a dead block");
        self.spare.push(id);
        b
    }
}

impl Index<BlockId> for Arena {
    type Output = Block;
    fn index(&self, id: BlockId) -> &Block {
        self.blocks[id].as_ref().expect("allocator bug: dead block id")
    }
}

impl IndexMut<BlockId> for Arena {
    fn index_mut(&mut self, id: BlockId) -> &mut Block {
        self.blocks[id].as_mut().expect("allocator bug: dead block id")
    }
}

/// Free blocks keyed by (stream, size, address): a range query from (stream, size, 0) finds
/// the smallest block of that stream that fits, lowest address first.
#[derive(Default)]
pub(crate) struct FreePools {
    pools: [BTreeMap<(i64, usize, usize), BlockId>; 2],
}

impl FreePools {
    fn pool(&mut self, small: bool) -> &mut BTreeMap<(i64, usize, usize), BlockId> {
        &mut self.pools[small as usize]
    }

    pub fn insert(&mut self, b: &Block, id: BlockId) {
        self.pool(b.small).insert((b.stream, b.size, b.ptr), id);
    }

    pub fn remove(&mut self, b: &Block) {
        self.pool(b.small).remove(&(b.stream, b.size, b.ptr));
    }

    /// Smallest free block of `stream` with at least `size` bytes (not removed).
    pub fn best_fit(&self, small: bool, stream: i64, size: usize) -> Option<(usize, BlockId)> {
        let (&(s, sz, _), &id) = self.pools[small as usize].range((stream, size, 0)..).next()?;
        (s == stream).then_some((sz, id))
    }
}

/// Hashes block addresses for the map of live allocations. Addresses are distinct multiples
/// of 512, so one multiply spreads them well; SipHash (the default) cost a few percent of a
/// small op's time for nothing, as the keys are not attacker-chosen.
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, x: usize) {
        self.0 = ((x as u64) >> 9).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Live allocations by address.
pub(crate) type AddrMap<V> = HashMap<usize, V, BuildHasherDefault<AddrHasher>>;
