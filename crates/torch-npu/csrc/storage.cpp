// NpuStorageImpl: every npu storage carries an NpuStorageDesc (format, base shape, dtype).
#include "storage.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "common.h"

namespace torch_npu {
namespace {

c10::intrusive_ptr<c10::StorageImpl> create(c10::StorageImpl::use_byte_size_t, c10::SymInt size_bytes,
                                            c10::DataPtr data_ptr, c10::Allocator* allocator,
                                            bool resizable) {
  size_t nbytes = static_cast<size_t>(size_bytes.guard_int(__FILE__, __LINE__));
  if (data_ptr.get() == nullptr && nbytes > 0 && allocator != nullptr)
    data_ptr = allocator->allocate(nbytes);
  return c10::make_intrusive<NpuStorageImpl>(c10::StorageImpl::use_byte_size_t(), nbytes,
                                             std::move(data_ptr), allocator, resizable);
}

// torch.ops.npu.get_npu_format(t): the storage format code of an npu tensor.
int64_t get_npu_format(const at::Tensor& self) {
  TORCH_CHECK(self.device().type() == kNpu, "get_npu_format expects an npu tensor, got one on ",
              self.device());
  return static_cast<int64_t>(storage_desc(self.storage()).format);
}

}  // namespace

const NpuStorageDesc& storage_desc(const c10::Storage& storage) {
  auto* impl = dynamic_cast<NpuStorageImpl*>(storage.unsafeGetStorageImpl());
  TORCH_CHECK(impl != nullptr, "expected an npu storage");
  return impl->desc;
}

c10::Storage make_storage(size_t nbytes) {
  auto* allocator = c10::GetAllocator(kNpu);
  return c10::Storage(create(c10::StorageImpl::use_byte_size_t(), static_cast<int64_t>(nbytes),
                             allocator->allocate(nbytes), allocator, true));
}

void register_storage() { c10::SetStorageImplCreate(kNpu, &create); }

TORCH_LIBRARY(npu, m) { m.def("get_npu_format(Tensor self) -> int"); }
// Registered for every backend so that a tensor of another device gets a clear error.
TORCH_LIBRARY_IMPL(npu, CompositeExplicitAutograd, m) { m.impl("get_npu_format", get_npu_format); }

}  // namespace torch_npu
