#pragma once
#include <c10/core/ScalarType.h>
#include <c10/core/Storage.h>
#include <c10/core/StorageImpl.h>

#include <vector>

namespace torch_npu {

// torch_npu's storage formats (ACL_FORMAT_*); ND is the plain row-major layout.
enum class NpuFormat : int32_t { NCHW = 0, NHWC = 1, ND = 2, NC1HWC0 = 3, FRACTAL_Z = 4, FRACTAL_NZ = 29 };

// What the NPU knows about a storage beyond its bytes: its physical format and the logical
// shape and dtype the format was laid out for (torch_npu's NPUStorageDesc).
struct NpuStorageDesc {
  NpuFormat format = NpuFormat::ND;
  std::vector<int64_t> base_sizes;
  c10::ScalarType dtype = c10::ScalarType::Byte;
};

struct NpuStorageImpl final : public c10::StorageImpl {
  NpuStorageImpl(use_byte_size_t, size_t size_bytes, c10::DataPtr data_ptr, c10::Allocator* allocator,
                 bool resizable)
      : c10::StorageImpl(use_byte_size_t(), size_bytes, std::move(data_ptr), allocator, resizable) {
    desc.base_sizes = {static_cast<int64_t>(size_bytes)};
  }
  NpuStorageDesc desc;
};

// The descriptor of an npu tensor's storage (every npu storage is an NpuStorageImpl).
const NpuStorageDesc& storage_desc(const c10::Storage& storage);

// A new ND storage of `nbytes` from the npu allocator on the current device.
c10::Storage make_storage(size_t nbytes);

}  // namespace torch_npu
