#include "generator.h"

#include <ATen/ATen.h>
#include <ATen/core/GeneratorForPrivateuseone.h>

#include <cstring>
#include <deque>
#include <mutex>

#include "common.h"

namespace torch_npu {

NpuGeneratorImpl::NpuGeneratorImpl(c10::DeviceIndex device, uint64_t seed)
    : c10::GeneratorImpl(c10::Device(kNpu, device), c10::DispatchKeySet(c10::DispatchKey::PrivateUse1)),
      seed_(seed) {}

void NpuGeneratorImpl::set_current_seed(uint64_t seed) {
  seed_ = seed;
  offset_ = 0;
}

void NpuGeneratorImpl::set_offset(uint64_t offset) { offset_ = offset; }
uint64_t NpuGeneratorImpl::get_offset() const { return offset_; }
uint64_t NpuGeneratorImpl::current_seed() const { return seed_; }

uint64_t NpuGeneratorImpl::seed() {
  auto s = c10::detail::getNonDeterministicRandom(true);
  set_current_seed(s);
  return s;
}

// State layout, as CUDA's: 8 bytes seed, then 8 bytes offset.
c10::intrusive_ptr<c10::TensorImpl> NpuGeneratorImpl::get_state() const {
  auto state = at::empty({16}, at::TensorOptions().dtype(at::kByte));
  auto* p = state.data_ptr<uint8_t>();
  std::memcpy(p, &seed_, 8);
  std::memcpy(p + 8, &offset_, 8);
  return state.getIntrusivePtr();
}

void NpuGeneratorImpl::set_state(const c10::TensorImpl& new_state) {
  TORCH_CHECK_WITH(TypeError, new_state.dtype() == caffe2::TypeMeta::Make<uint8_t>(),
                   "expected an npu generator state of dtype torch.uint8, got ", new_state.dtype());
  TORCH_CHECK_WITH(ValueError, new_state.numel() == 16,
                   "expected an npu generator state of 16 bytes, got ", new_state.numel());
  const auto* p = static_cast<const uint8_t*>(new_state.data());
  std::memcpy(&seed_, p, 8);
  std::memcpy(&offset_, p + 8, 8);
}

std::pair<uint64_t, uint64_t> NpuGeneratorImpl::philox_reserve(uint64_t increment) {
  // Keep offsets multiples of 4: one Philox call yields four 32-bit values.
  uint64_t offset = offset_;
  offset_ += (increment + 3) / 4 * 4;
  return {seed_, offset};
}

c10::DeviceType NpuGeneratorImpl::device_type() { return kNpu; }

NpuGeneratorImpl* NpuGeneratorImpl::clone_impl() const {
  auto* gen = new NpuGeneratorImpl(device().index(), seed_);
  gen->offset_ = offset_;
  return gen;
}

const at::Generator& default_generator(c10::DeviceIndex device) {
  static std::mutex mutex;
  static std::deque<at::Generator> generators;  // deque: references stay valid as it grows
  int32_t count = tnpu_rt_device_count();
  if (device < 0) device = static_cast<c10::DeviceIndex>(tnpu_rt_get_device());
  TORCH_CHECK_WITH(IndexError, device < count, "Invalid device index ", device, ": there are ",
                   count, " npu devices");
  std::lock_guard<std::mutex> lock(mutex);
  while (generators.size() < static_cast<size_t>(count))
    generators.push_back(at::make_generator<NpuGeneratorImpl>(
        static_cast<c10::DeviceIndex>(generators.size())));
  return generators[device];
}

at::Generator new_generator(c10::DeviceIndex device) {
  if (device < 0) device = static_cast<c10::DeviceIndex>(tnpu_rt_get_device());
  check(tnpu_rt_check_device(device));
  return at::make_generator<NpuGeneratorImpl>(device);
}

}  // namespace torch_npu
