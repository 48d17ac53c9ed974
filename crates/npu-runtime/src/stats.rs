//! Allocator statistics, laid out like PyTorch's `DeviceStats` so the bridge can hand them to
//! `torch.npu.memory_stats()` unchanged.

/// One counter: `allocated`/`freed` accumulate increments/decrements (counts or bytes).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Stat {
    pub current: i64,
    pub peak: i64,
    pub allocated: i64,
    pub freed: i64,
}

/// Index 0 = all, 1 = small pool, 2 = large pool.
pub type StatArray = [Stat; 3];

#[derive(Clone, Default, Debug)]
pub struct DeviceStats {
    pub allocation: StatArray,
    pub segment: StatArray,
    pub active: StatArray,
    pub inactive_split: StatArray,
    pub allocated_bytes: StatArray,
    pub reserved_bytes: StatArray,
    pub active_bytes: StatArray,
    pub inactive_split_bytes: StatArray,
    pub requested_bytes: StatArray,
    pub num_alloc_retries: i64,
    pub num_ooms: i64,
    pub num_sync_all_streams: i64,
    pub num_device_alloc: i64,
    pub num_device_free: i64,
    pub oversize_allocations: Stat,
    pub oversize_segments: Stat,
    /// Configured `max_split_size` in bytes, -1 when unlimited (as PyTorch reports SIZE_MAX).
    pub max_split_size: i64,
}

impl Stat {
    pub fn update(&mut self, delta: i64) {
        self.current += delta;
        self.peak = self.peak.max(self.current);
        if delta > 0 {
            self.allocated += delta;
        } else {
            self.freed -= delta;
        }
    }
    fn reset_peak(&mut self) {
        self.peak = self.current;
    }
    fn reset_accumulated(&mut self) {
        self.allocated = 0;
        self.freed = 0;
    }
}

/// Updates the "all" entry and the entry of the block's pool.
pub(crate) fn update(arr: &mut StatArray, small: bool, delta: i64) {
    if delta != 0 {
        arr[0].update(delta);
        arr[if small { 1 } else { 2 }].update(delta);
    }
}

impl DeviceStats {
    fn each_stat(&mut self, f: impl Fn(&mut Stat)) {
        for arr in [
            &mut self.allocation,
            &mut self.segment,
            &mut self.active,
            &mut self.inactive_split,
            &mut self.allocated_bytes,
            &mut self.reserved_bytes,
            &mut self.active_bytes,
            &mut self.inactive_split_bytes,
            &mut self.requested_bytes,
        ] {
            arr.iter_mut().for_each(&f);
        }
        f(&mut self.oversize_allocations);
        f(&mut self.oversize_segments);
    }

    pub fn reset_peak(&mut self) {
        self.each_stat(Stat::reset_peak);
    }

    pub fn reset_accumulated(&mut self) {
        self.each_stat(Stat::reset_accumulated);
        self.num_alloc_retries = 0;
        self.num_ooms = 0;
        self.num_sync_all_streams = 0;
        self.num_device_alloc = 0;
        self.num_device_free = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_tracks_peak_and_totals() {
        let mut s = Stat::default();
        s.update(5);
        s.update(-3);
        s.update(2);
        assert_eq!(s, Stat { current: 4, peak: 5, allocated: 7, freed: 3 });
        let mut d = DeviceStats::default();
        update(&mut d.allocation, true, 2);
        update(&mut d.allocation, false, 1);
        update(&mut d.allocation, true, -2);
        assert_eq!(d.allocation[0].current, 1);
        assert_eq!(d.allocation[0].peak, 3);
        assert_eq!(d.allocation[1].peak, 2);
        d.reset_peak();
        assert_eq!(d.allocation[0].peak, 1);
        d.reset_accumulated();
        assert_eq!(d.allocation[0], Stat { current: 1, peak: 1, allocated: 0, freed: 0 });
    }
}
