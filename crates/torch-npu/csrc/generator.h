#pragma once
#include <ATen/core/Generator.h>

namespace torch_npu {

// The device generator: a Philox (seed, offset) pair, like CUDA's. Random kernels take the
// pair and advance the offset by the counters they consume, so results do not depend on how
// the device splits the work.
struct NpuGeneratorImpl final : public c10::GeneratorImpl {
  explicit NpuGeneratorImpl(c10::DeviceIndex device, uint64_t seed = c10::default_rng_seed_val);

  void set_current_seed(uint64_t seed) override;
  void set_offset(uint64_t offset) override;
  uint64_t get_offset() const override;
  uint64_t current_seed() const override;
  uint64_t seed() override;
  void set_state(const c10::TensorImpl& new_state) override;
  c10::intrusive_ptr<c10::TensorImpl> get_state() const override;
  static c10::DeviceType device_type();

  // Returns (seed, offset) and reserves `increment` counters. Caller holds mutex_.
  std::pair<uint64_t, uint64_t> philox_reserve(uint64_t increment);

 private:
  NpuGeneratorImpl* clone_impl() const override;
  uint64_t seed_;
  uint64_t offset_ = 0;
};

const at::Generator& default_generator(c10::DeviceIndex device);
at::Generator new_generator(c10::DeviceIndex device);

}  // namespace torch_npu
