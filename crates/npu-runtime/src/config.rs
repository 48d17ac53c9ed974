//! Environment configuration, read once per process. Parsing is done by pure functions taking
//! the variables' values so that tests do not depend on (or mutate) the process environment.

use std::sync::OnceLock;

pub const DEFAULT_SIM_DEVICES: usize = 8;
pub const DEFAULT_SOC: &str = "Ascend910B1";
/// Upper bound on simulated devices: keeps a typo from allocating millions of device slots.
pub const MAX_SIM_DEVICES: usize = 1024;
const GIB: u64 = 1 << 30;
const MIB: usize = 1 << 20;

/// Options of `PYTORCH_NPU_ALLOC_CONF`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllocConf {
    /// Blocks at least this large are never split (`max_split_size_mb`).
    pub max_split_size: Option<usize>,
    /// Fraction of the allowed memory above which cached blocks are released before mapping
    /// new segments (`garbage_collection_threshold`).
    pub gc_threshold: Option<f64>,
}

/// Process-wide settings, fixed at first use.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Physical (simulated) device behind each visible device index.
    pub visible: Vec<usize>,
    pub soc: String,
    pub capacity: u64,
    pub launch_blocking: bool,
    pub alloc: AllocConf,
}

pub(crate) fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok();
        let sim = parse_device_count(var("TORCH_NPU_SIM_DEVICES").as_deref());
        let capacity = match var("TORCH_NPU_SIM_MEMORY") {
            Some(s) => parse_size(&s).unwrap_or_else(|| {
                eprintln!("torch_npu: ignoring TORCH_NPU_SIM_MEMORY={s:?}: expected a size like 16GiB");
                default_capacity(std::fs::read_to_string("/proc/meminfo").ok().as_deref())
            }),
            None => default_capacity(std::fs::read_to_string("/proc/meminfo").ok().as_deref()),
        };
        let (alloc, warnings) = parse_alloc_conf(var("PYTORCH_NPU_ALLOC_CONF").as_deref().unwrap_or(""));
        for w in warnings {
            eprintln!("torch_npu: PYTORCH_NPU_ALLOC_CONF: {w}");
        }
        Config {
            visible: parse_visible_devices(sim, var("ASCEND_RT_VISIBLE_DEVICES").as_deref()),
            soc: var("TORCH_NPU_SIM_SOC").filter(|s| !s.trim().is_empty()).unwrap_or_else(|| DEFAULT_SOC.into()),
            capacity,
            launch_blocking: parse_flag(var("ASCEND_LAUNCH_BLOCKING").as_deref()),
            alloc,
        }
    })
}

/// `TORCH_NPU_SIM_DEVICES`: a count, default 8; malformed values fall back to the default.
pub fn parse_device_count(s: Option<&str>) -> usize {
    match s.map(str::trim) {
        None | Some("") => DEFAULT_SIM_DEVICES,
        Some(v) => match v.parse::<usize>() {
            Ok(n) => n.min(MAX_SIM_DEVICES),
            Err(_) => {
                eprintln!("torch_npu: ignoring TORCH_NPU_SIM_DEVICES={v:?}: expected a number");
                DEFAULT_SIM_DEVICES
            }
        },
    }
}

/// `ASCEND_RT_VISIBLE_DEVICES`: comma-separated physical ids, renumbered from 0 in the given
/// order. As CUDA does for `CUDA_VISIBLE_DEVICES`, parsing stops at the first malformed,
/// out-of-range or repeated id. Unset means all devices; set but empty means none.
pub fn parse_visible_devices(sim_count: usize, visible: Option<&str>) -> Vec<usize> {
    let Some(list) = visible else {
        return (0..sim_count).collect();
    };
    let mut out = Vec::new();
    for tok in list.split(',') {
        match tok.trim().parse::<usize>() {
            Ok(id) if id < sim_count && !out.contains(&id) => out.push(id),
            _ => break,
        }
    }
    out
}

/// Parses sizes like "16GiB", "512MiB", "1G", "1.5GiB", "4096". Units are binary
/// (K, M, G, T with optional "B"/"iB" suffix, case-insensitive); no unit means bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = (&s[..split], s[split..].trim().to_ascii_lowercase());
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    if num.is_empty() {
        return None;
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(1u64 << shift);
    }
    let f: f64 = num.parse().ok()?;
    let bytes = f * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then(|| bytes.round() as u64)
}

/// Default capacity: the smaller of 64 GiB and 80 % of host RAM (`MemTotal` of /proc/meminfo).
pub fn default_capacity(meminfo: Option<&str>) -> u64 {
    let total_kib = meminfo.and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    match total_kib {
        Some(kib) => (64 * GIB).min(kib.saturating_mul(1024) / 5 * 4),
        None => 64 * GIB,
    }
}

/// Boolean environment flags: "1", "true", "yes", "on" (case-insensitive).
pub fn parse_flag(s: Option<&str>) -> bool {
    matches!(s.map(|v| v.trim().to_ascii_lowercase()).as_deref(), Some("1" | "true" | "yes" | "on"))
}

/// Parses `PYTORCH_NPU_ALLOC_CONF` ("key:value,key:value"). Returns the options and warnings
/// for anything ignored; never fails, because a bad option must not make the device unusable.
pub fn parse_alloc_conf(s: &str) -> (AllocConf, Vec<String>) {
    let mut conf = AllocConf::default();
    let mut warnings = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once(':') else {
            warnings.push(format!("ignoring {item:?}: expected key:value"));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "max_split_size_mb" => match value.parse::<usize>() {
                // Like PyTorch: never below the 20 MiB large-segment size, or splitting breaks.
                Ok(mb) => conf.max_split_size = Some(mb.max(20).saturating_mul(MIB)),
                Err(_) => warnings.push(format!("ignoring max_split_size_mb:{value}: expected a number of MiB")),
            },
            "garbage_collection_threshold" => match value.parse::<f64>() {
                Ok(t) if t > 0.0 && t < 1.0 => conf.gc_threshold = Some(t),
                _ => warnings.push(format!(
                    "ignoring garbage_collection_threshold:{value}: expected a value in (0, 1)"
                )),
            },
            _ => warnings.push(format!("ignoring unknown option {key:?}")),
        }
    }
    (conf, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_devices_select_and_renumber() {
        assert_eq!(parse_visible_devices(8, None), (0..8).collect::<Vec<_>>());
        assert_eq!(parse_visible_devices(8, Some("0,2,5")), vec![0, 2, 5]);
        assert_eq!(parse_visible_devices(8, Some(" 3 , 1")), vec![3, 1]);
        // Stops at the first invalid entry, like CUDA_VISIBLE_DEVICES.
        assert_eq!(parse_visible_devices(8, Some("1,9,2")), vec![1]);
        assert_eq!(parse_visible_devices(8, Some("1,x,2")), vec![1]);
        assert_eq!(parse_visible_devices(8, Some("1,1,2")), vec![1]);
        assert_eq!(parse_visible_devices(8, Some("-1,2")), Vec::<usize>::new());
        assert_eq!(parse_visible_devices(8, Some("")), Vec::<usize>::new());
        assert_eq!(parse_visible_devices(2, Some("0,1,2")), vec![0, 1]);
    }

    #[test]
    fn device_count_parsing() {
        assert_eq!(parse_device_count(None), 8);
        assert_eq!(parse_device_count(Some("2")), 2);
        assert_eq!(parse_device_count(Some("0")), 0);
        assert_eq!(parse_device_count(Some("lots")), 8);
        assert_eq!(parse_device_count(Some("99999999")), MAX_SIM_DEVICES);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16GiB"), Some(16 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size(" 64 kb "), Some(64 << 10));
        assert_eq!(parse_size("2t"), Some(2 << 40));
        assert_eq!(parse_size("GiB"), None);
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("99999999999T"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn default_capacity_from_meminfo() {
        let mi = "MemTotal:       24000000 kB\nMemFree:        1000 kB\n";
        assert_eq!(default_capacity(Some(mi)), 24000000 * 1024 / 5 * 4);
        let big = "MemTotal:       1000000000 kB\n";
        assert_eq!(default_capacity(Some(big)), 64 << 30);
        assert_eq!(default_capacity(None), 64 << 30);
    }

    #[test]
    fn flags() {
        assert!(parse_flag(Some("1")));
        assert!(parse_flag(Some("TRUE")));
        assert!(!parse_flag(Some("0")));
        assert!(!parse_flag(None));
    }

    #[test]
    fn alloc_conf() {
        let (c, w) = parse_alloc_conf("max_split_size_mb:128, garbage_collection_threshold:0.6");
        assert_eq!(c.max_split_size, Some(128 << 20));
        assert_eq!(c.gc_threshold, Some(0.6));
        assert!(w.is_empty());
        let (c, w) = parse_alloc_conf("max_split_size_mb:4,expandable_segments:True,bogus");
        assert_eq!(c.max_split_size, Some(20 << 20));
        assert_eq!(w.len(), 2);
        let (c, w) = parse_alloc_conf("garbage_collection_threshold:1.5,max_split_size_mb:x");
        assert_eq!(c, AllocConf::default());
        assert_eq!(w.len(), 2);
        assert_eq!(parse_alloc_conf("").0, AllocConf::default());
    }
}
