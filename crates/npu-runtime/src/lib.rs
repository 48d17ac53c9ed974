//! The software NPU: an in-process model of an Ascend device. Devices with their own memory
//! (a caching allocator over mmap'd segments), asynchronous in-order streams with worker
//! threads, events with timing, sticky asynchronous errors and launch blocking, and a pinned
//! host allocator. It knows nothing about PyTorch or about what launched work computes.
//!
//! Every entry point is thread safe and reports bad input as `Err`, never by panicking.

mod allocator;
pub mod config;
mod device;
mod error;
mod event;
mod executor;
mod host;
mod memory;
mod pool;
mod segment;
mod stats;
mod stream;
mod util;

pub type DeviceIndex = i32;

pub use allocator::{round_size, segment_size, Allocator, BlockInfo, SegmentInfo};
pub use device::{
    check_device, current_device, device_capacity, device_count, device_synchronize, is_launch_blocking,
    set_current_device, set_launch_blocking, soc_name,
};
pub use error::{ErrorKind, Result, RtError};
pub use event::Event;
pub use executor::{host_wait_time, Work, MAX_QUEUED_PER_STREAM};
pub use host::{host_alloc, host_empty_cache, host_free, host_record_stream, host_stats, is_pinned};
pub use memory::{
    alloc, alloc_size, empty_cache, free, mem_get_info, memory_stats, record_stream, reset_accumulated_stats,
    reset_peak_stats, set_memory_fraction, snapshot,
};
pub use segment::device_of_ptr;
pub use stats::{DeviceStats, Stat, StatArray};
pub use stream::{current_stream, set_current_stream, stream_from_id, Stream, STREAMS_PER_POOL};
pub use util::format_size;
