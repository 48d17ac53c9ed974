// Private storage formats at the op boundary: kernels see only plain (row-major) memory, so a
// tensor whose storage holds a private format is read through a plain copy, and one an op
// writes or views is made plain in place first (and written back to its format after a write).
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/stack.h>

#include <vector>

#include "storage.h"

namespace c10 {
class OperatorHandle;
}

namespace torch_npu {

inline bool any_private_formats() { return g_private_storages.load(std::memory_order_relaxed) > 0; }

// Whether `t` is an npu tensor whose storage holds a private format.
bool has_private_format(const at::Tensor& t);

// Re-lays the storage out in its base (plain) format, in place, on the current stream.
void make_plain_in_place(const c10::Storage& storage);

// Makes every private-format storage among the op's arguments plain in place (view and
// resize ops, whose results alias the storage).
void make_args_plain(const c10::OperatorHandle& op, torch::jit::Stack* stack);

// A tensor of `t`'s values in plain memory (a copy when t's storage holds a private format).
at::Tensor plain_values(const at::Tensor& t);

// Around a computing op: arguments in private formats are replaced by plain copies (read) or
// made plain in place (written); after the op, written ones go back to their formats.
class FormatArgs {
 public:
  FormatArgs(const c10::OperatorHandle& op, torch::jit::Stack* stack, size_t begin, size_t nargs);
  // Call after the op ran and left its results on the stack.
  void finish(torch::jit::Stack* stack);

 private:
  struct Replaced {
    at::Tensor original, copy;
  };
  struct Written {
    at::Tensor tensor;
    int64_t format;
  };
  at::IValue convert(const at::IValue& v, bool writes);
  at::Tensor convert_tensor(const at::Tensor& t, bool writes);
  std::vector<Replaced> replaced_;
  std::vector<Written> written_;
};

}  // namespace torch_npu
