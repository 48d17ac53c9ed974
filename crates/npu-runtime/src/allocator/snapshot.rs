//! Allocator snapshots: the layout of every segment, for `torch.npu.memory_snapshot()`.

use super::{Allocator, BlockState};
use crate::DeviceIndex;

#[derive(Clone, Debug)]
pub struct BlockInfo {
    pub size: usize,
    pub requested_size: usize,
    pub allocated: bool,
    /// Allocated, or freed but still waiting for recorded streams.
    pub active: bool,
}

#[derive(Clone, Debug)]
pub struct SegmentInfo {
    pub device: DeviceIndex,
    pub address: usize,
    pub total_size: usize,
    pub requested_size: usize,
    pub allocated_size: usize,
    pub active_size: usize,
    pub stream: i64,
    pub is_large: bool,
    pub blocks: Vec<BlockInfo>,
}

impl Allocator {
    /// Layout of every segment, in address order.
    pub fn snapshot(&self) -> Vec<SegmentInfo> {
        let g = self.lock();
        g.segments
            .iter()
            .map(|(&address, seg)| {
                let mut info = SegmentInfo {
                    device: self.device,
                    address,
                    total_size: seg.size,
                    requested_size: 0,
                    allocated_size: 0,
                    active_size: 0,
                    stream: g.arena[seg.head].stream,
                    is_large: !seg.small,
                    blocks: Vec::new(),
                };
                let mut cur = Some(seg.head);
                while let Some(id) = cur {
                    let b = &g.arena[id];
                    let allocated = b.state == BlockState::Allocated;
                    let active = b.state != BlockState::Free;
                    info.blocks.push(BlockInfo {
                        size: b.size,
                        requested_size: if allocated { b.requested } else { 0 },
                        allocated,
                        active,
                    });
                    if allocated {
                        info.allocated_size += b.size;
                        info.requested_size += b.requested;
                    }
                    if active {
                        info.active_size += b.size;
                    }
                    cur = b.next;
                }
                info
            })
            .collect()
    }
}
