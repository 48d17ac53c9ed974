//! Devices: count, validation, capacity, the thread's current device, and the lazily created
//! per-device state (stream table + caching allocator).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::OnceLock;

use crate::allocator::Allocator;
use crate::config::config;
use crate::error::{ErrorKind, Result, RtError};
use crate::stream::DeviceStreams;
use crate::DeviceIndex;

pub(crate) struct DeviceState {
    pub streams: DeviceStreams,
    pub allocator: Allocator,
}

/// Per-device slots; a slot is filled on first use so idle devices cost nothing.
fn slots() -> &'static [OnceLock<DeviceState>] {
    static SLOTS: OnceLock<Box<[OnceLock<DeviceState>]>> = OnceLock::new();
    SLOTS.get_or_init(|| (0..device_count()).map(|_| OnceLock::new()).collect())
}

/// The state of the one device in use, when exactly one has been used so far (the common
/// case): every device pointer then belongs to it, with no lookup in the segment registry.
pub(crate) fn sole_state() -> Option<&'static DeviceState> {
    let mut used = slots().iter().filter_map(OnceLock::get);
    let first = used.next()?;
    used.next().is_none().then_some(first)
}

pub(crate) fn state(d: DeviceIndex) -> Result<&'static DeviceState> {
    check_device(d)?;
    Ok(slots()[d as usize].get_or_init(|| DeviceState {
        streams: DeviceStreams::new(d),
        allocator: Allocator::global(d, config().capacity, config().alloc.clone()),
    }))
}

/// Number of visible devices (`TORCH_NPU_SIM_DEVICES`, then `ASCEND_RT_VISIBLE_DEVICES`).
pub fn device_count() -> usize {
    config().visible.len()
}

/// Name of the simulated SoC (`TORCH_NPU_SIM_SOC`).
pub fn soc_name() -> String {
    config().soc.clone()
}

pub fn check_device(d: DeviceIndex) -> Result<()> {
    let n = device_count();
    if d < 0 || d as usize >= n {
        return Err(RtError::new(
            ErrorKind::InvalidDevice,
            format!("Invalid device index {d}: the NPU has {n} devices (TORCH_NPU_SIM_DEVICES)"),
        ));
    }
    Ok(())
}

/// Memory capacity of a device in bytes (`TORCH_NPU_SIM_MEMORY`).
pub fn device_capacity(d: DeviceIndex) -> Result<u64> {
    check_device(d)?;
    Ok(config().capacity)
}

thread_local! {
    static CURRENT: Cell<DeviceIndex> = const { Cell::new(0) };
}

pub fn current_device() -> DeviceIndex {
    CURRENT.with(Cell::get)
}

pub fn set_current_device(d: DeviceIndex) -> Result<()> {
    check_device(d)?;
    CURRENT.with(|c| c.set(d));
    Ok(())
}

fn launch_blocking_flag() -> &'static AtomicBool {
    static FLAG: OnceLock<AtomicBool> = OnceLock::new();
    FLAG.get_or_init(|| AtomicBool::new(config().launch_blocking))
}

/// `ASCEND_LAUNCH_BLOCKING=1`: every launch waits for its work and raises its error at the call.
pub fn is_launch_blocking() -> bool {
    launch_blocking_flag().load(Relaxed)
}

/// Overrides `ASCEND_LAUNCH_BLOCKING` for the whole process (e.g. from a debugging API).
pub fn set_launch_blocking(on: bool) {
    launch_blocking_flag().store(on, Relaxed);
}

/// Waits for all streams of `d`, then reports (and clears) the first pending sticky error.
pub fn device_synchronize(d: DeviceIndex) -> Result<()> {
    let ds = state(d)?;
    for st in ds.streams.existing() {
        if !st.wait_all() {
            return Err(crate::stream::deadlock("synchronize the device"));
        }
    }
    match ds.streams.existing().find_map(|st| st.take_error()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Waits for every stream of `d` without consuming errors (used before releasing memory);
/// returns whether it did. From device work it does not wait at all (see `on_any_worker`);
/// the allocator then releases only memory already known to be unused.
pub(crate) fn wait_idle(d: DeviceIndex) -> bool {
    if crate::executor::on_any_worker() {
        return false;
    }
    let Ok(ds) = state(d) else { return false };
    let mut all = true;
    for st in ds.streams.existing() {
        all &= st.wait_all();
    }
    all
}
