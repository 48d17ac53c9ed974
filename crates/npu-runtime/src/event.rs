//! Events: a point in a stream's sequence of work, optionally with the time it was reached.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::error::{Result, RtError};
use crate::executor::{StreamState, Task};
use crate::stream::{deadlock, state_of, Stream};
use crate::util::lock;
use crate::DeviceIndex;

#[derive(Clone)]
struct Record {
    stream: &'static StreamState,
    /// Complete once the stream has completed this many tasks.
    target: u64,
    /// Set by the timing marker when it executes (timing events only).
    stamp: Option<Arc<OnceLock<Instant>>>,
}

pub struct Event {
    enable_timing: bool,
    record: Mutex<Option<Record>>,
}

impl Event {
    pub fn new(enable_timing: bool) -> Event {
        Event { enable_timing, record: Mutex::new(None) }
    }

    /// Captures all work submitted to `s` so far; replaces any previous record.
    pub fn record(&self, s: &Stream) -> Result<()> {
        let st = state_of(*s)?;
        let rec = if self.enable_timing {
            // A marker task stamps the time when the stream reaches it.
            let stamp = Arc::new(OnceLock::new());
            let target = st.submit(Task::Mark(stamp.clone()))?;
            Record { stream: st, target, stamp: Some(stamp) }
        } else {
            // No timestamp needed: completion is just the stream passing its current count.
            Record { stream: st, target: st.submitted(), stamp: None }
        };
        *lock(&self.record) = Some(rec);
        Ok(())
    }

    fn current(&self) -> Option<Record> {
        lock(&self.record).clone()
    }

    pub(crate) fn target(&self) -> Option<(&'static StreamState, u64)> {
        self.current().map(|r| (r.stream, r.target))
    }

    /// True if the recorded work has completed (or the event was never recorded).
    pub fn query(&self) -> bool {
        self.current().is_none_or(|r| r.stream.is_done(r.target))
    }

    /// Blocks the host until the recorded work completes; reports the stream's sticky error.
    pub fn synchronize(&self) -> Result<()> {
        let Some(r) = self.current() else { return Ok(()) };
        if !r.stream.wait_for(r.target) {
            return Err(deadlock("synchronize an event"));
        }
        r.stream.take_error().map_or(Ok(()), Err)
    }

    /// Milliseconds between this event and `end` on the device timeline.
    pub fn elapsed_ms(&self, end: &Event) -> Result<f64> {
        if !self.enable_timing || !end.enable_timing {
            return Err(RtError::invalid(
                "Events were not created with timing enabled: create them with enable_timing=True",
            ));
        }
        let (Some(a), Some(b)) = (self.current(), end.current()) else {
            return Err(RtError::invalid("Both events must be recorded before calculating elapsed time"));
        };
        let stamp = |r: &Record| r.stamp.as_ref().and_then(|s| s.get().copied());
        match (stamp(&a), stamp(&b)) {
            (Some(t0), Some(t1)) => Ok(if t1 >= t0 {
                (t1 - t0).as_secs_f64() * 1e3
            } else {
                -((t0 - t1).as_secs_f64() * 1e3)
            }),
            _ => Err(RtError::invalid(
                "Events have not completed: synchronize them before calculating elapsed time",
            )),
        }
    }

    /// Device of the stream the event was last recorded on.
    pub fn device(&self) -> Option<DeviceIndex> {
        self.current().map(|r| r.stream.device)
    }
}
