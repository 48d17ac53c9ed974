// Device and pinned-host allocators: PyTorch's allocator interfaces over the Rust runtime's
// caching allocators. Neither takes the GIL (deleters can run with it held).
#include <ATen/core/CachingHostAllocator.h>
#include <c10/core/CachingDeviceAllocator.h>

#include <cstring>

#include "common.h"

namespace torch_npu {
namespace {

void npu_delete(void* ptr) { tnpu_rt_free(ptr); }
void host_delete(void* ptr) { tnpu_rt_host_free(ptr); }

void to_stat(const TnpuStat& s, c10::CachingAllocator::Stat& out) {
  out.current = s.current;
  out.peak = s.peak;
  out.allocated = s.allocated;
  out.freed = s.freed;
}

void to_array(const TnpuStat* s, c10::CachingAllocator::StatArray& out) {
  for (int i = 0; i < 3; ++i) to_stat(s[i], out[i]);
}

struct NpuAllocator final : public c10::DeviceAllocator {
  c10::DataPtr allocate(size_t n) override {
    int32_t device = tnpu_rt_get_device();
    void* ptr = nullptr;
    int st = tnpu_rt_malloc(device, n, &ptr);
    if (st != TNPU_OK) throw_status(st, "");
    return {ptr, ptr, &npu_delete, c10::Device(kNpu, static_cast<c10::DeviceIndex>(device))};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &npu_delete; }

  // Device memory is host-addressable; order the copy after the work queued on the stream.
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    int32_t device = tnpu_rt_get_device();
    int64_t stream = 0;
    check(tnpu_rt_current_stream(device, &stream));
    check(tnpu_rt_stream_synchronize(device, stream));
    std::memcpy(dest, src, count);
  }

  bool initialized() override { return true; }

  void emptyCache(c10::MempoolId_t /*mempool_id*/) override { check(tnpu_rt_empty_cache()); }

  void recordStream(const c10::DataPtr& ptr, c10::Stream stream) override {
    tnpu_rt_record_stream(ptr.get(), stream.device_index(), stream.id());
  }

  c10::CachingDeviceAllocator::DeviceStats getDeviceStats(c10::DeviceIndex device) override {
    TnpuDeviceStats s{};
    check(tnpu_rt_memory_stats(device, &s));
    c10::CachingDeviceAllocator::DeviceStats out;
    to_array(s.allocation, out.allocation);
    to_array(s.segment, out.segment);
    to_array(s.active, out.active);
    to_array(s.inactive_split, out.inactive_split);
    to_array(s.allocated_bytes, out.allocated_bytes);
    to_array(s.reserved_bytes, out.reserved_bytes);
    to_array(s.active_bytes, out.active_bytes);
    to_array(s.inactive_split_bytes, out.inactive_split_bytes);
    to_array(s.requested_bytes, out.requested_bytes);
    out.num_alloc_retries = s.num_alloc_retries;
    out.num_ooms = s.num_ooms;
    out.num_sync_all_streams = s.num_sync_all_streams;
    out.num_device_alloc = s.num_device_alloc;
    out.num_device_free = s.num_device_free;
    to_stat(s.oversize_allocations, out.oversize_allocations);
    to_stat(s.oversize_segments, out.oversize_segments);
    out.max_split_size = s.max_split_size;
    return out;
  }

  void resetAccumulatedStats(c10::DeviceIndex device) override {
    check(tnpu_rt_reset_accumulated_stats(device));
  }

  void resetPeakStats(c10::DeviceIndex device) override { check(tnpu_rt_reset_peak_stats(device)); }

  std::pair<size_t, size_t> getMemoryInfo(c10::DeviceIndex device) override {
    uint64_t free_bytes = 0, total = 0;
    check(tnpu_rt_mem_info(device, &free_bytes, &total));
    return {free_bytes, total};
  }
};

// Pinned host memory: page-aligned host blocks the runtime can copy from asynchronously.
struct NpuHostAllocator final : public at::HostAllocator {
  c10::DataPtr allocate(size_t n) override {
    void* ptr = nullptr;
    if (n > 0) check(tnpu_rt_host_alloc(n, &ptr));
    return {ptr, ptr, &host_delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &host_delete; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }

  bool record_event(void* ptr, void* /*ctx*/, c10::Stream stream) override {
    tnpu_rt_host_record_stream(ptr, stream.device_index(), stream.id());
    return true;
  }

  void empty_cache() override { tnpu_rt_host_empty_cache(); }
  at::HostStats get_stats() override { return {}; }
  void reset_accumulated_stats() override {}
  void reset_peak_stats() override {}
};

NpuAllocator g_npu_allocator;
NpuHostAllocator g_host_allocator;

}  // namespace

at::HostAllocator* host_allocator() { return &g_host_allocator; }

REGISTER_ALLOCATOR(c10::DeviceType::PrivateUse1, &g_npu_allocator)
REGISTER_HOST_ALLOCATOR(at::kPrivateUse1, &g_host_allocator)

}  // namespace torch_npu
