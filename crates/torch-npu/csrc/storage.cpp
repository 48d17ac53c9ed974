// NpuStorageImpl: every npu storage carries an NpuStorageDesc (format, base shape, dtype).
#include "storage.h"

#include <ATen/ATen.h>

#include "common.h"

namespace torch_npu {

std::atomic<int64_t> g_private_storages{0};

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

}  // namespace

NpuStorageImpl& npu_storage(const c10::Storage& storage) {
  auto* impl = dynamic_cast<NpuStorageImpl*>(storage.unsafeGetStorageImpl());
  TORCH_CHECK(impl != nullptr, "expected an npu storage");
  return *impl;
}

c10::Storage make_storage(size_t nbytes) {
  auto* allocator = c10::GetAllocator(kNpu);
  return c10::Storage(create(c10::StorageImpl::use_byte_size_t(), static_cast<int64_t>(nbytes),
                             allocator->allocate(nbytes), allocator, true));
}

void register_storage() { c10::SetStorageImplCreate(kNpu, &create); }

}  // namespace torch_npu
