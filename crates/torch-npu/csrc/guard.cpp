// DeviceGuardImpl: current device, streams and events for PyTorch's generic machinery
// (DeviceGuard, torch.Stream / torch.Event, torch.accelerator, autograd's stream sync).
#include <c10/core/Allocator.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "common.h"

namespace torch_npu {
namespace {

// Device(npu) without an index means the current device.
c10::DeviceIndex index_of(const c10::Device& d) {
  return d.has_index() ? d.index() : static_cast<c10::DeviceIndex>(tnpu_rt_get_device());
}

c10::Stream make_stream(c10::DeviceIndex device, int64_t id) {
  return c10::Stream(c10::Stream::UNSAFE, c10::Device(kNpu, device), id);
}

struct NpuGuardImpl final : public c10::impl::DeviceGuardImplInterface {
  c10::DeviceType type() const override { return kNpu; }

  c10::Device exchangeDevice(c10::Device d) const override {
    auto old = getDevice();
    if (old.index() != d.index()) setDevice(d);
    return old;
  }

  c10::Device getDevice() const override {
    return c10::Device(kNpu, static_cast<c10::DeviceIndex>(tnpu_rt_get_device()));
  }

  void setDevice(c10::Device d) const override {
    TORCH_CHECK(d.type() == kNpu, "expected an npu device, got ", d);
    check(tnpu_rt_set_device(d.index()));
  }

  void uncheckedSetDevice(c10::Device d) const noexcept override {
    (void)tnpu_rt_set_device(d.index());
  }

  c10::Stream getStream(c10::Device d) const override {
    int64_t id = 0;
    check(tnpu_rt_current_stream(index_of(d), &id));
    return make_stream(index_of(d), id);
  }

  c10::Stream getDefaultStream(c10::Device d) const override {
    check(tnpu_rt_check_device(index_of(d)));
    return make_stream(index_of(d), 0);
  }

  c10::Stream getStreamFromGlobalPool(c10::Device d, bool high_priority) const override {
    int64_t id = 0;
    check(tnpu_rt_pool_stream(index_of(d), high_priority ? 1 : 0, &id));
    return make_stream(index_of(d), id);
  }

  c10::Stream getNewStream(c10::Device d, int priority) const override {
    return getStreamFromGlobalPool(d, priority < 0);
  }

  c10::Stream exchangeStream(c10::Stream s) const override {
    auto old = getStream(s.device());
    check(tnpu_rt_set_current_stream(s.device_index(), s.id()));
    return old;
  }

  void destroyEvent(void* event, const c10::DeviceIndex /*device*/) const noexcept override {
    if (event) tnpu_rt_event_destroy(event);
  }

  void record(void** event, const c10::Stream& stream, const c10::DeviceIndex device,
              const c10::EventFlag flag) const override {
    TORCH_CHECK(device == -1 || device == stream.device_index(), "Event device index ", device,
                " does not match recording stream's device index ", stream.device_index(), ".");
    if (*event == nullptr)
      *event = tnpu_rt_event_create(flag == c10::EventFlag::BACKEND_DEFAULT ? 1 : 0);
    check(tnpu_rt_event_record(*event, stream.device_index(), stream.id()));
  }

  void block(void* event, const c10::Stream& stream) const override {
    if (event) check(tnpu_rt_event_block(event, stream.device_index(), stream.id()));
  }

  bool queryEvent(void* event) const override {
    return event == nullptr || tnpu_rt_event_query(event) == 1;
  }

  c10::DeviceIndex deviceCount() const noexcept override {
    return static_cast<c10::DeviceIndex>(tnpu_rt_device_count());
  }

  bool queryStream(const c10::Stream& stream) const override {
    int done = 0;
    check(tnpu_rt_stream_query(stream.device_index(), stream.id(), &done));
    return done != 0;
  }

  void synchronizeStream(const c10::Stream& stream) const override {
    check(tnpu_rt_stream_synchronize(stream.device_index(), stream.id()));
  }

  void synchronizeEvent(void* event) const override {
    if (event) check(tnpu_rt_event_synchronize(event));
  }

  void synchronizeDevice(const c10::DeviceIndex device) const override {
    check(tnpu_rt_device_synchronize(device));
  }

  void recordDataPtrOnStream(const c10::DataPtr& ptr, const c10::Stream& stream) const override {
    if (ptr.device().type() == kNpu)
      tnpu_rt_record_stream(ptr.get(), stream.device_index(), stream.id());
  }

  double elapsedTime(void* start, void* end, const c10::DeviceIndex /*device*/) const override {
    TORCH_CHECK(start && end, "Both events must be recorded before calculating elapsed time.");
    double ms = 0;
    // CUDA reports misuse here as RuntimeError, whatever the cause.
    if (tnpu_rt_event_elapsed(start, end, &ms) != TNPU_OK) throw_status(TNPU_ERR_RUNTIME, "");
    return ms;
  }
};

}  // namespace

C10_REGISTER_GUARD_IMPL(PrivateUse1, NpuGuardImpl);

}  // namespace torch_npu
