//! Streams: ordering, concurrency, asynchrony, sticky errors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use npu_runtime::{device_synchronize, stream_from_id, ErrorKind, Stream, Work};

/// Each test uses its own stream ids on device 0 so tests do not share queues.
fn stream(id: i64) -> Stream {
    stream_from_id(0, id).unwrap()
}

fn ok(f: impl FnOnce() + Send + 'static) -> Work {
    Box::new(move || {
        f();
        Ok(())
    })
}

fn sleeper(ms: u64) -> Work {
    ok(move || std::thread::sleep(Duration::from_millis(ms)))
}

#[test]
fn work_runs_in_submission_order() {
    let s = stream(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..1000 {
        let log = log.clone();
        s.launch("append", ok(move || log.lock().unwrap().push(i))).unwrap();
    }
    s.synchronize().unwrap();
    assert_eq!(*log.lock().unwrap(), (0..1000).collect::<Vec<_>>());
    assert!(s.query());
}

#[test]
fn streams_run_concurrently() {
    let (a, b) = (stream(2), stream(3));
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // a's work can only finish if b's work runs while it is running.
    a.launch(
        "wait_for_flag",
        Box::new(move || {
            let t = Instant::now();
            while !f.load(Ordering::SeqCst) {
                if t.elapsed() > Duration::from_secs(5) {
                    return Err("stream b never ran".into());
                }
                std::thread::yield_now();
            }
            Ok(())
        }),
    )
    .unwrap();
    let f = flag.clone();
    b.launch("set_flag", ok(move || f.store(true, Ordering::SeqCst))).unwrap();
    b.synchronize().unwrap();
    a.synchronize().unwrap();
}

#[test]
fn launch_is_asynchronous_and_synchronize_waits() {
    let s = stream(4);
    let t = Instant::now();
    s.launch("sleep", sleeper(200)).unwrap();
    assert!(t.elapsed() < Duration::from_millis(50), "launch blocked for {:?}", t.elapsed());
    assert!(!s.query());
    s.synchronize().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert!(s.query());
}

#[test]
fn sticky_error_is_reported_once_naming_the_op() {
    let s = stream(5);
    s.launch("index_select", Box::new(|| Err("index 7 is out of bounds for size 3".into()))).unwrap();
    s.launch("second_failure", Box::new(|| Err("not reported: the first error wins".into()))).unwrap();
    let ran_after = Arc::new(AtomicBool::new(false));
    let r = ran_after.clone();
    s.launch("after", ok(move || r.store(true, Ordering::SeqCst))).unwrap();
    let e = s.synchronize().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Kernel);
    assert_eq!(e.msg, "NPU error in index_select: index 7 is out of bounds for size 3");
    assert_eq!(e.to_string(), e.msg);
    assert!(ran_after.load(Ordering::SeqCst), "later work still runs");
    s.synchronize().unwrap(); // cleared once reported
    s.launch("fine", ok(|| ())).unwrap();
    s.synchronize().unwrap();
}

#[test]
fn panics_in_work_become_errors() {
    let s = stream(6);
    s.launch("boom", Box::new(|| panic!("kernel exploded"))).unwrap();
    let e = s.synchronize().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Kernel);
    assert!(e.msg.starts_with("NPU error in boom: panic: kernel exploded"), "{}", e.msg);
    s.launch("fine", ok(|| ())).unwrap();
    s.synchronize().unwrap();
}

#[test]
fn device_synchronize_waits_for_all_streams_and_reports_errors() {
    // Device 1 (if any) so other tests' streams do not interfere.
    if npu_runtime::device_count() < 2 {
        return;
    }
    let a = stream_from_id(1, 7).unwrap();
    let b = stream_from_id(1, 40).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    a.launch("slow", ok(move || {
        std::thread::sleep(Duration::from_millis(100));
        d.store(true, Ordering::SeqCst);
    }))
    .unwrap();
    b.launch("bad_op", Box::new(|| Err("bad".into()))).unwrap();
    let e = device_synchronize(1).unwrap_err();
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(e.msg, "NPU error in bad_op: bad");
    device_synchronize(1).unwrap();
    b.synchronize().unwrap();
}

#[test]
fn blocking_launch_returns_the_error_at_the_call() {
    let s = stream(8);
    let t = Instant::now();
    s.launch_with("sleep", sleeper(100), true).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(100));
    let e = s.launch_with("gather", Box::new(|| Err("index out of range".into())), true).unwrap_err();
    assert_eq!(e.msg, "NPU error in gather: index out of range");
    s.synchronize().unwrap(); // not sticky
}

#[test]
fn work_may_launch_onto_other_streams_but_not_wait_for_itself() {
    let (a, b) = (stream(9), stream(10));
    let result = Arc::new(Mutex::new(None));
    let r = result.clone();
    a.launch(
        "outer",
        Box::new(move || {
            b.launch("inner", Box::new(|| Ok(()))).map_err(|e| e.msg)?;
            b.synchronize().map_err(|e| e.msg)?;
            *r.lock().unwrap() = Some(a.synchronize().map_err(|e| e.kind));
            Ok(())
        }),
    )
    .unwrap();
    a.synchronize().unwrap();
    assert_eq!(*result.lock().unwrap(), Some(Err(ErrorKind::InvalidArgument)));
}

#[test]
fn stream_pool_round_robin_and_priorities() {
    let low: Vec<_> = (0..32).map(|_| Stream::from_pool(0, false).unwrap()).collect();
    let mut ids: Vec<_> = low.iter().map(|s| s.id).collect();
    ids.sort();
    assert_eq!(ids, (1..=32).collect::<Vec<_>>());
    assert!(low.iter().all(|s| s.priority() == 0));
    let high = Stream::from_pool(0, true).unwrap();
    assert!((33..=64).contains(&high.id));
    assert_eq!(high.priority(), -1);
    assert_eq!(Stream::default_for(0).unwrap(), Stream { device: 0, id: 0 });
    assert_eq!(Stream::default_for(0).unwrap().priority(), 0);
}

#[test]
fn stream_ids_and_devices_are_validated() {
    assert_eq!(stream_from_id(0, 65).unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(stream_from_id(0, -1).unwrap_err().kind, ErrorKind::InvalidArgument);
    let n = npu_runtime::device_count() as i32;
    assert_eq!(stream_from_id(n, 0).unwrap_err().kind, ErrorKind::InvalidDevice);
    assert_eq!(Stream::from_pool(-1, false).unwrap_err().kind, ErrorKind::InvalidDevice);
    let bogus = Stream { device: n + 3, id: 0 };
    assert!(bogus.launch("x", ok(|| ())).is_err());
    assert!(bogus.synchronize().is_err());
    assert!(bogus.query());
    assert!(npu_runtime::set_current_stream(bogus).is_err());
}

#[test]
fn current_stream_is_per_thread() {
    assert_eq!(npu_runtime::current_stream(0).unwrap().id, 0);
    let s = stream(11);
    npu_runtime::set_current_stream(s).unwrap();
    assert_eq!(npu_runtime::current_stream(0).unwrap(), s);
    std::thread::spawn(|| assert_eq!(npu_runtime::current_stream(0).unwrap().id, 0)).join().unwrap();
    npu_runtime::set_current_stream(Stream::default_for(0).unwrap()).unwrap();
    assert_eq!(npu_runtime::current_stream(0).unwrap().id, 0);
}

#[test]
fn a_full_launch_queue_makes_the_host_wait() {
    let s = stream(12);
    let gate = Arc::new(AtomicBool::new(false));
    let g = gate.clone();
    s.launch("gate", ok(move || {
        while !g.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }))
    .unwrap();
    let launched = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let l = launched.clone();
    let host = std::thread::spawn(move || {
        for _ in 0..npu_runtime::MAX_QUEUED_PER_STREAM + 100 {
            s.launch("noop", ok(|| ())).unwrap();
            l.fetch_add(1, Ordering::SeqCst);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let n = launched.load(Ordering::SeqCst);
    assert!(n < npu_runtime::MAX_QUEUED_PER_STREAM, "{n} launches queued behind a blocked stream");
    gate.store(true, Ordering::SeqCst);
    host.join().unwrap();
    s.synchronize().unwrap();
}

#[test]
fn small_work_on_an_idle_stream_runs_on_the_calling_thread() {
    let s = stream(13);
    let me = std::thread::current().id();
    let ran_on = Arc::new(Mutex::new(None));
    let r = ran_on.clone();
    s.launch_small("small", move || {
        *r.lock().unwrap() = Some(std::thread::current().id());
        Ok(())
    })
    .unwrap();
    assert_eq!(*ran_on.lock().unwrap(), Some(me));
    assert!(s.query());
    // It counts as stream work: an event recorded after it is complete at once.
    let ev = npu_runtime::Event::new(false);
    ev.record(&s).unwrap();
    s.synchronize().unwrap();
    assert!(ev.query());
}

#[test]
fn small_work_behind_queued_work_is_queued_in_order() {
    let s = stream(14);
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    s.launch("slow", ok(move || {
        std::thread::sleep(Duration::from_millis(50));
        l.lock().unwrap().push("slow");
    }))
    .unwrap();
    let l = log.clone();
    let me = std::thread::current().id();
    s.launch_small("small", move || {
        assert_ne!(std::thread::current().id(), me, "queued behind other work, not inline");
        l.lock().unwrap().push("small");
        Ok(())
    })
    .unwrap();
    s.synchronize().unwrap();
    assert_eq!(*log.lock().unwrap(), ["slow", "small"]);
    // Idle again: small work runs after everything above (handed to the worker while it is
    // still awake from its last task, on the caller once the worker has parked).
    let l = log.clone();
    s.launch_small("small2", move || {
        l.lock().unwrap().push("small2");
        Ok(())
    })
    .unwrap();
    s.synchronize().unwrap();
    assert_eq!(*log.lock().unwrap(), ["slow", "small", "small2"]);
    let runs_inline_once_parked = (0..1000).any(|_| {
        std::thread::sleep(Duration::from_millis(1));
        let ran_on = Arc::new(Mutex::new(None));
        let r = ran_on.clone();
        s.launch_small("probe", move || {
            *r.lock().unwrap() = Some(std::thread::current().id());
            Ok(())
        })
        .unwrap();
        s.synchronize().unwrap();
        let on = *ran_on.lock().unwrap();
        on == Some(me)
    });
    assert!(runs_inline_once_parked, "small work on a stream whose worker is parked runs on the caller");
}

#[test]
fn small_work_errors_are_sticky_like_queued_ones() {
    let s = stream(15);
    s.launch_small("bad_index", || Err("index 7 is out of bounds".into())).unwrap();
    s.launch_small("boom", || panic!("kernel bug")).unwrap();
    let e = s.synchronize().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Kernel);
    assert!(e.msg.contains("NPU error in bad_index: index 7 is out of bounds"), "{}", e.msg);
    // Reported once, and the stream goes on working.
    s.synchronize().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    s.launch_small("ok", move || {
        r.store(true, Ordering::SeqCst);
        Ok(())
    })
    .unwrap();
    s.synchronize().unwrap();
    assert!(ran.load(Ordering::SeqCst));
}

#[test]
fn host_wait_time_counts_synchronizations() {
    let s = stream(16);
    let before = npu_runtime::host_wait_time();
    s.launch("sleep", sleeper(50)).unwrap();
    s.synchronize().unwrap();
    assert!(npu_runtime::host_wait_time() - before >= Duration::from_millis(40));
}
