//! Stream handles. A `Stream` is a plain (device, id) value; its state (queue, worker,
//! counters) lives in a per-device table and is created on first use.
//! Ids: 0 = default stream, 1..=32 = low-priority pool, 33..=64 = high-priority pool.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use crate::device;
use crate::error::{ErrorKind, Result, RtError};
use crate::executor::{on_any_worker, StreamState, Task, Work};
use crate::util::lock;
use crate::DeviceIndex;

/// Streams per priority in the pool, as in CUDA.
pub const STREAMS_PER_POOL: i64 = 32;
const MAX_ID: i64 = 2 * STREAMS_PER_POOL;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream {
    pub device: DeviceIndex,
    pub id: i64,
}

/// The stream table of one device.
pub(crate) struct DeviceStreams {
    device: DeviceIndex,
    slots: Box<[OnceLock<StreamState>]>,
    /// Round-robin cursors of the low and high priority pools.
    next: [AtomicUsize; 2],
}

impl DeviceStreams {
    pub fn new(device: DeviceIndex) -> Self {
        DeviceStreams {
            device,
            slots: (0..=MAX_ID).map(|_| OnceLock::new()).collect(),
            next: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }

    pub fn get(&'static self, id: i64) -> Result<&'static StreamState> {
        let slot = usize::try_from(id).ok().and_then(|i| self.slots.get(i)).ok_or_else(|| {
            RtError::invalid(format!("Invalid stream id {id} for NPU {}: expected 0..={MAX_ID}", self.device))
        })?;
        Ok(slot.get_or_init(|| StreamState::new(self.device, id)))
    }

    /// Streams that have been used at least once (others have no work to wait for).
    pub fn existing(&'static self) -> impl Iterator<Item = &'static StreamState> {
        self.slots.iter().filter_map(|s| s.get())
    }
}

/// The executor state of a stream; validates device and id.
pub(crate) fn state_of(s: Stream) -> Result<&'static StreamState> {
    device::state(s.device)?.streams.get(s.id)
}

impl Stream {
    pub fn default_for(d: DeviceIndex) -> Result<Stream> {
        device::check_device(d)?;
        Ok(Stream { device: d, id: 0 })
    }

    /// Next stream of the pool of the given priority, round robin like CUDA's stream pool.
    pub fn from_pool(d: DeviceIndex, high_priority: bool) -> Result<Stream> {
        let ds = device::state(d)?;
        let k = ds.streams.next[high_priority as usize].fetch_add(1, Relaxed) as i64 % STREAMS_PER_POOL;
        Ok(Stream { device: d, id: 1 + k + if high_priority { STREAMS_PER_POOL } else { 0 } })
    }

    /// 0 for low (default) priority, -1 for high priority: CUDA's convention.
    pub fn priority(&self) -> i32 {
        if self.id > STREAMS_PER_POOL {
            -1
        } else {
            0
        }
    }

    /// Enqueues `work` after everything submitted earlier to this stream and returns at once.
    /// A failure of the work is sticky on the stream and reported by the next synchronization
    /// as `NPU error in {name}: {msg}`. With launch blocking the call waits and returns it.
    pub fn launch(&self, name: &str, work: Work) -> Result<()> {
        self.launch_with(name, work, device::is_launch_blocking())
    }

    /// `launch` with an explicit launch-blocking mode.
    pub fn launch_with(&self, name: &str, work: Work, blocking: bool) -> Result<()> {
        let st = state_of(*self)?;
        // Device work that launches more work must not block on a stream: stay asynchronous.
        if !blocking || on_any_worker() {
            st.submit(Task::Run { name: name.into(), work, report: None })?;
            return Ok(());
        }
        let slot = Arc::new(Mutex::new(None));
        let seq = st.submit(Task::Run { name: name.into(), work, report: Some(slot.clone()) })?;
        st.wait_for(seq);
        let err = lock(&slot).take();
        err.map_or(Ok(()), Err)
    }

    /// `launch` for work too small to be worth the hand-off to the stream's worker: when the
    /// stream is idle it runs on the calling thread, in the same order and with the same error
    /// reporting as queued work; otherwise it is queued. `work` must not launch work itself.
    pub fn launch_small<F>(&self, name: &str, work: F) -> Result<()>
    where
        F: FnOnce() -> std::result::Result<(), String> + Send + 'static,
    {
        let st = state_of(*self)?;
        let blocking = device::is_launch_blocking();
        if on_any_worker() {
            return self.launch_with(name, Box::new(work), blocking);
        }
        match st.try_run_inline(name, work, blocking) {
            Ok(None) => Ok(()),
            Ok(Some(err)) => Err(err),
            Err(work) => self.launch_with(name, Box::new(work), blocking),
        }
    }

    /// Waits for all submitted work, then reports (and clears) the stream's sticky error.
    pub fn synchronize(&self) -> Result<()> {
        let st = state_of(*self)?;
        if !st.wait_all() {
            return Err(deadlock("synchronize a stream"));
        }
        st.take_error().map_or(Ok(()), Err)
    }

    /// True if all submitted work has completed.
    pub fn query(&self) -> bool {
        state_of(*self).map_or(true, |st| st.is_done(st.submitted()))
    }

    /// Later work on this stream waits until the work recorded by `ev` has completed.
    /// The host does not block. No-op for an unrecorded event or an invalid stream.
    pub fn wait_event(&self, ev: &crate::Event) {
        let Some((src, target)) = ev.target() else { return };
        let Ok(st) = state_of(*self) else { return };
        if std::ptr::eq(src, st) || src.is_done(target) {
            return; // Same stream: already ordered. Done: nothing to wait for.
        }
        let _ = st.submit(Task::Wait(src, target));
    }
}

pub(crate) fn deadlock(what: &str) -> RtError {
    RtError::new(
        ErrorKind::InvalidArgument,
        format!("cannot {what} from work running on that stream: it would wait for itself"),
    )
}

thread_local! {
    /// Current stream id per device, for this thread.
    static CURRENT: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
}

/// This thread's current stream on `d` (the default stream until set).
pub fn current_stream(d: DeviceIndex) -> Result<Stream> {
    device::check_device(d)?;
    let id = CURRENT.with(|c| c.borrow().get(d as usize).copied().unwrap_or(0));
    Ok(Stream { device: d, id })
}

pub fn set_current_stream(s: Stream) -> Result<()> {
    state_of(s)?;
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let i = s.device as usize;
        if c.len() <= i {
            c.resize(i + 1, 0);
        }
        c[i] = s.id;
    });
    Ok(())
}

/// The stream with the given id on `d`, validated.
pub fn stream_from_id(d: DeviceIndex, id: i64) -> Result<Stream> {
    let s = Stream { device: d, id };
    state_of(s)?;
    Ok(s)
}
