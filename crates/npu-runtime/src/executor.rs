//! The execution engine behind one stream: an in-order task queue drained by one worker thread,
//! plus `submitted`/`completed` sequence counters that events and the allocator use to tell
//! whether work has finished without holding any lock.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use crate::error::{ErrorKind, Result, RtError};
use crate::util::{lock, panic_message, spin_until, wait, SPIN};
use crate::DeviceIndex;

/// Device work: returns Err(message) when the kernel finds a problem in the data.
pub type Work = Box<dyn FnOnce() -> std::result::Result<(), String> + Send>;

/// Most tasks a host thread may have queued on one stream; launching more waits, like a full
/// CUDA launch queue. Bounds the memory held by queued closures and by deferred frees when the
/// host runs far ahead of the device.
pub const MAX_QUEUED_PER_STREAM: u64 = 1024;

pub(crate) enum Task {
    Run {
        name: Box<str>,
        work: Work,
        /// Where launch-blocking mode wants the error; `None` makes it sticky on the stream.
        report: Option<Arc<Mutex<Option<RtError>>>>,
    },
    /// Timing marker of an event: stamps the time at which it executes.
    Mark(Arc<OnceLock<Instant>>),
    /// `wait_event`: holds this stream until `stream` has completed `target` tasks.
    Wait(&'static StreamState, u64),
}

struct Queue {
    tasks: VecDeque<Task>,
    worker_started: bool,
    /// The worker is parked on `work_cv` and needs a notify.
    idle: bool,
}

pub(crate) struct StreamState {
    pub device: DeviceIndex,
    pub id: i64,
    queue: Mutex<Queue>,
    work_cv: Condvar,
    /// Tasks ever submitted; incremented under the queue lock so sequence order = queue order.
    submitted: AtomicU64,
    /// Tasks finished, in order: task n is done iff completed >= n.
    completed: AtomicU64,
    done_lock: Mutex<()>,
    done_cv: Condvar,
    /// The smallest task number a thread blocked on `done_cv` waits for (u64::MAX for none):
    /// the worker notifies only when it completes that task, not after every task (a host
    /// thread woken per kernel took the core of the kernel's helper thread each time).
    wake_at: AtomicU64,
    error: Mutex<Option<RtError>>,
}

/// Time host threads have spent blocked on device work (synchronizations, reads of device
/// data, a full launch queue), summed over threads.
static HOST_WAIT_NS: AtomicU64 = AtomicU64::new(0);

/// Total time host threads have waited for the device since the process started.
pub fn host_wait_time() -> std::time::Duration {
    std::time::Duration::from_nanos(HOST_WAIT_NS.load(Relaxed))
}

thread_local! {
    /// The stream whose worker this thread is, to refuse waits that would wait on themselves.
    static WORKER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// True on any stream's worker thread, i.e. inside device work. Such a thread must not block
/// on other streams: one of them may be waiting (through an event) for the work it runs.
pub(crate) fn on_any_worker() -> bool {
    WORKER_OF.with(|w| w.get()) != 0
}

impl StreamState {
    pub fn new(device: DeviceIndex, id: i64) -> Self {
        StreamState {
            device,
            id,
            queue: Mutex::new(Queue { tasks: VecDeque::new(), worker_started: false, idle: false }),
            work_cv: Condvar::new(),
            submitted: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
            wake_at: AtomicU64::new(u64::MAX),
            error: Mutex::new(None),
        }
    }

    pub fn submitted(&self) -> u64 {
        self.submitted.load(SeqCst)
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(SeqCst)
    }

    pub fn is_done(&self, target: u64) -> bool {
        self.completed() >= target
    }

    /// True when called from this stream's own worker (i.e. from inside its work).
    pub fn on_own_worker(&'static self) -> bool {
        WORKER_OF.with(|w| w.get() == self as *const _ as usize)
    }

    /// Enqueues a task; returns its sequence number. Never runs it here.
    pub fn submit(&'static self, task: Task) -> Result<u64> {
        // Throttle host threads only: a worker waiting on another stream's queue could close a
        // cycle with that stream waiting (through an event) on the worker's own stream.
        let backlog_limit = self.submitted().saturating_sub(MAX_QUEUED_PER_STREAM - 1);
        if !self.is_done(backlog_limit) && !on_any_worker() {
            // Full: sleep until half the queue has drained rather than waking (and spinning)
            // once per completed task, which would take a core from the kernels.
            self.wait_for(backlog_limit + MAX_QUEUED_PER_STREAM / 2);
        }
        let mut q = lock(&self.queue);
        if !q.worker_started {
            std::thread::Builder::new()
                .name(format!("npu{}-stream{}", self.device, self.id))
                .spawn(move || self.worker_loop())
                .map_err(|e| RtError::new(ErrorKind::Kernel, format!("cannot start NPU stream worker: {e}")))?;
            q.worker_started = true;
        }
        q.tasks.push_back(task);
        let seq = self.submitted.fetch_add(1, SeqCst) + 1;
        let wake = std::mem::replace(&mut q.idle, false);
        drop(q);
        if wake {
            self.work_cv.notify_one();
        }
        Ok(seq)
    }

    /// Runs `work` on the calling thread if the stream is idle (nothing queued, nothing
    /// running) and its worker is parked, holding the queue lock so no other launch can slip
    /// in before it. A parked worker takes >10 µs to wake; a worker still spinning after its
    /// last task takes the work at once and runs it while the caller goes on (GPT-2's token
    /// loop, a chain of small ops, ran 1.17x faster handing them off). Sequence numbers and
    /// error handling are those of a queued task: the error goes to `report` or becomes the
    /// stream's sticky error. Gives `work` back when the stream is busy or its worker awake.
    pub fn try_run_inline<F>(&'static self, name: &str, work: F, report: bool) -> std::result::Result<Option<RtError>, F>
    where
        F: FnOnce() -> std::result::Result<(), String>,
    {
        let q = lock(&self.queue);
        // Tasks are counted as submitted under this lock, so an empty queue with every
        // submitted task completed means the worker is between tasks.
        let worker_awake = q.worker_started && !q.idle;
        if !q.tasks.is_empty() || self.completed() != self.submitted() || worker_awake {
            return Err(work);
        }
        let err = match catch_unwind(AssertUnwindSafe(work)) {
            Ok(Ok(())) => None,
            Ok(Err(m)) => Some(m),
            Err(p) => Some(format!("panic: {}", panic_message(p.as_ref()))),
        };
        self.submitted.fetch_add(1, SeqCst);
        self.complete_one();
        drop(q);
        let err = err.map(|m| RtError::new(ErrorKind::Kernel, format!("NPU error in {name}: {m}")));
        match err {
            Some(e) if !report => {
                self.set_sticky(e);
                Ok(None)
            }
            other => Ok(other),
        }
    }

    /// Keeps the first error since the last report.
    fn set_sticky(&self, e: RtError) {
        let mut sticky = lock(&self.error);
        if sticky.is_none() {
            *sticky = Some(e);
        }
    }

    /// Blocks until task `target` has completed (spinning briefly first). Returns false,
    /// without waiting, if that would deadlock: called from this stream's worker for work
    /// that has not run yet.
    pub fn wait_for(&'static self, target: u64) -> bool {
        if self.is_done(target) {
            return true;
        }
        if self.on_own_worker() {
            return false;
        }
        let start = Instant::now();
        if !spin_until(SPIN, || self.is_done(target)) {
            let mut g = lock(&self.done_lock);
            // Registered before each check, so that the worker, which bumps `completed` before
            // reading `wake_at`, either is seen here as done or sees this target; and again
            // after each wake-up, since the worker clears it when it notifies.
            while {
                self.wake_at.fetch_min(target, SeqCst);
                !self.is_done(target)
            } {
                g = wait(&self.done_cv, g);
            }
        }
        if !on_any_worker() {
            HOST_WAIT_NS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        }
        true
    }

    /// Waits for everything submitted so far.
    pub fn wait_all(&'static self) -> bool {
        self.wait_for(self.submitted())
    }

    /// Takes the sticky error (the first one since the last report).
    pub fn take_error(&self) -> Option<RtError> {
        lock(&self.error).take()
    }

    fn worker_loop(&'static self) {
        WORKER_OF.with(|w| w.set(self as *const _ as usize));
        loop {
            // Spin without the lock first: launches often come back to back.
            spin_until(SPIN, || self.submitted() > self.completed());
            let task = {
                let mut q = lock(&self.queue);
                loop {
                    if let Some(t) = q.tasks.pop_front() {
                        break t;
                    }
                    q.idle = true;
                    q = wait(&self.work_cv, q);
                }
            };
            self.run(task);
            // Inline tasks run only while the queue is empty and the worker idle, so tasks
            // complete strictly in sequence order either way.
            self.complete_one();
        }
    }

    /// Counts a task as completed and wakes the waiters if one of them waits for it.
    fn complete_one(&self) {
        let done = self.completed.fetch_add(1, SeqCst) + 1;
        if done >= self.wake_at.load(SeqCst) {
            // Taking the lock orders this notify after a waiter's check-then-wait; the
            // waiters that are not done yet register their targets again.
            let _g = lock(&self.done_lock);
            self.wake_at.store(u64::MAX, SeqCst);
            self.done_cv.notify_all();
        }
    }

    fn run(&self, task: Task) {
        match task {
            Task::Run { name, work, report } => {
                let msg = match catch_unwind(AssertUnwindSafe(work)) {
                    Ok(Ok(())) => return,
                    Ok(Err(m)) => m,
                    Err(p) => format!("panic: {}", panic_message(p.as_ref())),
                };
                let err = RtError::new(ErrorKind::Kernel, format!("NPU error in {name}: {msg}"));
                match report {
                    Some(slot) => *lock(&slot) = Some(err),
                    None => self.set_sticky(err),
                }
            }
            Task::Mark(stamp) => {
                let _ = stamp.set(Instant::now());
            }
            Task::Wait(other, target) => {
                other.wait_for(target);
            }
        }
    }
}
