//! ASCEND_LAUNCH_BLOCKING mode, switched on for this whole test binary.

use std::time::{Duration, Instant};

use npu_runtime::*;

#[test]
fn blocking_mode_makes_launch_synchronous() {
    set_launch_blocking(true);
    assert!(is_launch_blocking());
    let s = Stream::default_for(0).unwrap();
    let t = Instant::now();
    s.launch("sleep", Box::new(|| {
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }))
    .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(s.query());
    let e = s.launch("index_put", Box::new(|| Err("index 3 out of range".into()))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Kernel);
    assert_eq!(e.msg, "NPU error in index_put: index 3 out of range");
    s.synchronize().unwrap();
    // Small work run inline reports its error at the launch too.
    let e = s.launch_small("gather", || Err("index 9 out of range".into())).unwrap_err();
    assert_eq!(e.msg, "NPU error in gather: index 9 out of range");
    s.synchronize().unwrap();
    set_launch_blocking(false);
    let t = Instant::now();
    s.launch("sleep", Box::new(|| {
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }))
    .unwrap();
    assert!(t.elapsed() < Duration::from_millis(50));
    s.synchronize().unwrap();
}
