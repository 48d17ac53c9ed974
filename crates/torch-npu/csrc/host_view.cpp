// npu::_host_view: a CPU tensor over an npu tensor's memory, for the hccl backend's zero-copy
// staging. The software NPU's device memory is host memory, so Gloo can read and write it in
// place instead of through two copies. The view keeps the npu storage alive; it does not order
// anything, so the caller reads it only after the device work that writes the tensor is done
// (and queues no device work on it while the view is in use).
#include <ATen/ops/from_blob.h>
#include <torch/library.h>

#include "formats.h"

namespace torch_npu {
namespace {

at::Tensor host_view(const at::Tensor& self) {
  TORCH_CHECK(self.device().type() == c10::DeviceType::PrivateUse1, "npu::_host_view: expected an npu tensor, got ",
              self.device());
  TORCH_CHECK(!has_private_format(self),
              "npu::_host_view: the tensor's storage has a private format; cast it to a plain format first");
  c10::Storage keep = self.storage();
  return at::from_blob(
      self.data_ptr(), self.sizes(), self.strides(), [keep](void*) {}, self.options().device(c10::kCPU));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(npu, m) { m.def("_host_view(Tensor(a) self) -> Tensor(a)"); }

TORCH_LIBRARY_IMPL(npu, CompositeExplicitAutograd, m) { m.impl("_host_view", host_view); }

}  // namespace torch_npu
