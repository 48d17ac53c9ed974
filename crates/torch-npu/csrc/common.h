// Helpers shared by the shim's translation units.
#pragma once
#include <c10/core/Device.h>
#include <c10/util/Exception.h>

#include <string>
#include <vector>

#include <ATen/core/ivalue.h>

namespace c10 {
class OperatorHandle;
}

#include "shim.h"

namespace torch_npu {

constexpr c10::DeviceType kNpu = c10::DeviceType::PrivateUse1;

// Turns a failed runtime status into the matching c10 exception (and so Python exception).
[[noreturn]] void throw_status(int status, const std::string& context);

// Runs `op` on PyTorch's CPU kernels over the device memory (csrc/fallback.cpp).
void cpu_fallback(const c10::OperatorHandle& op, std::vector<c10::IValue>* stack);

// A tensor over a fresh NpuStorageImpl on the current device (the caller holds the guard),
// contiguous unless `stride` is given (csrc/native_ops.cpp).
at::Tensor empty_on_npu(c10::IntArrayRef size, std::optional<c10::IntArrayRef> stride,
                        c10::ScalarType dtype, std::optional<c10::MemoryFormat> memory_format);

inline void check(int status, const char* context = "") {
  if (status != TNPU_OK) throw_status(status, context);
}

}  // namespace torch_npu
