// PrivateUse1HooksInterface: what ATen asks of a device backend (generators, pinned memory,
// device of a pointer, storage resize).
#include <ATen/core/CachingHostAllocator.h>
#include <ATen/detail/PrivateUse1HooksInterface.h>
#include <c10/core/Allocator.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <cstring>

#include "common.h"
#include "generator.h"

namespace torch_npu {

at::HostAllocator* host_allocator();

namespace {

struct NpuHooks final : public at::PrivateUse1HooksInterface {
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return tnpu_rt_device_count() > 0; }
  void init() const override {}

  bool hasPrimaryContext(c10::DeviceIndex device) const override {
    return tnpu_rt_check_device(device) == TNPU_OK;
  }

  const at::Generator& getDefaultGenerator(c10::DeviceIndex device) const override {
    return default_generator(device);
  }

  at::Generator getNewGenerator(c10::DeviceIndex device) const override {
    return new_generator(device);
  }

  at::Device getDeviceFromPtr(void* data) const override {
    int32_t device = tnpu_rt_device_of_ptr(data);
    TORCH_CHECK(device >= 0, "pointer ", data, " is not npu device memory");
    return at::Device(kNpu, static_cast<c10::DeviceIndex>(device));
  }

  bool isPinnedPtr(const void* data) const override { return tnpu_rt_is_pinned(data) == 1; }

  at::Allocator* getPinnedMemoryAllocator() const override { return host_allocator(); }

  c10::DeviceIndex deviceCount() const override {
    return static_cast<c10::DeviceIndex>(tnpu_rt_device_count());
  }
  void setCurrentDevice(c10::DeviceIndex device) const override { check(tnpu_rt_set_device(device)); }
  c10::DeviceIndex getCurrentDevice() const override {
    return static_cast<c10::DeviceIndex>(tnpu_rt_get_device());
  }
  c10::DeviceIndex exchangeDevice(c10::DeviceIndex device) const override {
    auto old = getCurrentDevice();
    if (device >= 0 && device != old) setCurrentDevice(device);
    return old;
  }
  c10::DeviceIndex maybeExchangeDevice(c10::DeviceIndex device) const override {
    return exchangeDevice(device);
  }

  // UntypedStorage.resize_(): new block, old contents copied after pending work.
  void resizePrivateUse1Bytes(const c10::Storage& storage, size_t newsize) const override {
    auto* impl = storage.unsafeGetStorageImpl();
    TORCH_CHECK(impl->resizable(), "Trying to resize storage that is not resizable");
    int32_t device = storage.device().index();
    const c10::DeviceGuard guard(storage.device());
    auto* allocator = impl->allocator();
    TORCH_CHECK(allocator != nullptr, "Trying to resize storage without an allocator");
    c10::DataPtr fresh = allocator->allocate(newsize);
    size_t keep = std::min(newsize, impl->nbytes());
    if (keep > 0) {
      int64_t stream = 0;
      check(tnpu_rt_current_stream(device, &stream));
      check(tnpu_rt_stream_synchronize(device, stream));
      std::memcpy(fresh.get(), impl->data(), keep);
    }
    impl->set_data_ptr_noswap(std::move(fresh));
    impl->set_nbytes(newsize);
  }
};

NpuHooks g_hooks;

}  // namespace

void register_hooks() { at::RegisterPrivateUse1HooksInterface(&g_hooks); }

}  // namespace torch_npu
