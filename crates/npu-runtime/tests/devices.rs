//! Devices as seen through the process environment (whatever it is for this run).

use npu_runtime::config::{parse_device_count, parse_visible_devices};
use npu_runtime::{check_device, current_device, device_capacity, device_count, set_current_device, soc_name, ErrorKind};

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

#[test]
fn count_follows_the_environment() {
    let sim = parse_device_count(env("TORCH_NPU_SIM_DEVICES").as_deref());
    let visible = parse_visible_devices(sim, env("ASCEND_RT_VISIBLE_DEVICES").as_deref());
    assert_eq!(device_count(), visible.len());
}

#[test]
fn invalid_devices_are_errors() {
    let n = device_count() as i32;
    let e = check_device(n).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidDevice);
    assert_eq!(e.msg, format!("Invalid device index {n}: the NPU has {n} devices (TORCH_NPU_SIM_DEVICES)"));
    assert_eq!(check_device(-1).unwrap_err().kind, ErrorKind::InvalidDevice);
    assert!(device_capacity(n).is_err());
    assert!(set_current_device(n).is_err());
    assert!(npu_runtime::device_synchronize(n).is_err());
    assert!(npu_runtime::alloc(n, 16, npu_runtime::Stream { device: n, id: 0 }).is_err());
    assert!(npu_runtime::memory_stats(-3).is_err());
    if n > 0 {
        check_device(n - 1).unwrap();
        assert!(device_capacity(0).unwrap() > 0);
    }
}

#[test]
fn current_device_is_per_thread() {
    assert_eq!(current_device(), 0);
    if device_count() < 2 {
        return;
    }
    set_current_device(1).unwrap();
    assert_eq!(current_device(), 1);
    std::thread::spawn(|| assert_eq!(current_device(), 0)).join().unwrap();
    set_current_device(0).unwrap();
}

#[test]
fn soc_name_defaults() {
    match env("TORCH_NPU_SIM_SOC") {
        Some(s) if !s.trim().is_empty() => assert_eq!(soc_name(), s),
        _ => assert_eq!(soc_name(), "Ascend910B1"),
    }
}
